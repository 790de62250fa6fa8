//! Deterministic multi-shard simulation of routing, the SUBACK barrier and takeover.
//!
//! Several pure [`Shard`]s are wired by in-memory per-pair FIFO queues whose batches are
//! delivered in a random (seeded) interleaving, with publishes injected between mesh steps.
//! Invariants: every QoS 1 publish reaches every matching subscriber (whose SUBACK came
//! first) exactly once and in per-publisher order; a session taken over by a connection on
//! another shard receives everything published after its new CONNACK, with session present.
//! The seed is printed; rerun one with `SIM_SEED=<seed> cargo test --test simulation`.

use bytes::BytesMut;
use std::collections::{HashMap, VecDeque};

use shardmq::codec::{
    Connect, Packet, Protocol, PubResponse, Publish, QoS, ReasonCode, Subscribe, SubscribeFilter,
    SubscriptionOptions,
};
use shardmq::config::Config;
use shardmq::shard::{Key, MeshMsg, Shard};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[derive(Clone)]
struct Client {
    shard: usize,
    key: Key,
    pending: BytesMut,
}

struct Sim {
    shards: Vec<Shard>,
    links: HashMap<(usize, usize), VecDeque<Vec<MeshMsg>>>,
    rng: Rng,
    now: u64,
}

impl Sim {
    fn new(n: usize, seed: u64) -> Sim {
        Sim {
            shards: (0..n)
                .map(|i| Shard::new(i, n, Config::default(), 7))
                .collect(),
            links: HashMap::new(),
            rng: Rng(seed | 1),
            now: 1_000,
        }
    }

    fn collect(&mut self) {
        let n = self.shards.len();
        for from in 0..n {
            for to in 0..n {
                let batch = self.shards[from].take_outbox(to);
                if !batch.is_empty() {
                    self.links.entry((from, to)).or_default().push_back(batch);
                }
            }
        }
    }

    /// Delivers one random pending batch. False when nothing is in flight.
    fn step(&mut self) -> bool {
        self.collect();
        let busy: Vec<(usize, usize)> = self
            .links
            .iter()
            .filter(|(_, q)| !q.is_empty())
            .map(|(k, _)| *k)
            .collect();
        if busy.is_empty() {
            return false;
        }
        let mut busy = busy;
        busy.sort_unstable();
        let (from, to) = busy[self.rng.below(busy.len())];
        let batch = self
            .links
            .get_mut(&(from, to))
            .unwrap()
            .pop_front()
            .unwrap();
        self.now += 1;
        self.shards[to].on_mesh(from, batch, self.now);
        true
    }

    fn settle(&mut self, clients: &mut [Client]) {
        loop {
            while self.step() {}
            // Input that waited behind a barrier.
            let mut progressed = false;
            for c in clients.iter_mut() {
                if !c.pending.is_empty() {
                    let before = c.pending.len();
                    self.shards[c.shard].on_input(c.key, &mut c.pending, self.now);
                    progressed |= c.pending.len() != before;
                }
            }
            self.collect();
            if !progressed && self.links.values().all(|q| q.is_empty()) {
                return;
            }
        }
    }

    fn connect(&mut self, shard: usize, client_id: &str) -> Client {
        let key = self.shards[shard].accept(self.now);
        let mut c = Connect::new(Protocol::V5, client_id);
        c.clean_start = false;
        c.keep_alive_secs = 0;
        c.properties.session_expiry_interval = Some(300);
        let mut client = Client {
            shard,
            key,
            pending: BytesMut::new(),
        };
        self.send(&mut client, &Packet::Connect(Box::new(c)));
        client
    }

    fn send(&mut self, c: &mut Client, p: &Packet) {
        p.encode(Protocol::V5, &mut c.pending).unwrap();
        self.shards[c.shard].on_input(c.key, &mut c.pending, self.now);
    }

    fn read(&mut self, c: &Client) -> Vec<Packet> {
        let Some(conn) = self.shards[c.shard].conn_mut(c.key) else {
            return Vec::new();
        };
        let mut out = std::mem::take(&mut conn.out);
        let mut packets = Vec::new();
        while let Some(p) = Packet::decode(&mut out, Protocol::V5, usize::MAX).unwrap() {
            packets.push(p);
        }
        packets
    }
}

fn run(seed: u64) {
    let shards = 3;
    let mut sim = Sim::new(shards, seed);
    let topics = ["t/0", "t/1", "t/2", "t/3"];
    let filters = ["t/0", "t/1", "t/2", "t/3", "t/+", "#"];
    let mut subs: Vec<Client> = Vec::new();
    let mut sub_filter = Vec::new();
    for i in 0..10 {
        let shard = sim.rng.below(shards);
        subs.push(sim.connect(shard, &format!("sub{i}")));
        sub_filter.push(filters[i % filters.len()]);
    }
    sim.settle(&mut subs);
    for (i, c) in subs.iter_mut().enumerate() {
        let s = Subscribe {
            packet_id: 1,
            filters: vec![SubscribeFilter {
                filter: sub_filter[i].into(),
                options: SubscriptionOptions::qos(QoS::AtLeastOnce),
            }],
            ..Subscribe::default()
        };
        sim.send(c, &Packet::Subscribe(s));
    }
    sim.settle(&mut subs);
    for c in &subs {
        let got = sim.read(c);
        assert!(
            matches!(got.first(), Some(Packet::ConnAck(_))),
            "seed {seed}: {got:?}"
        );
        assert!(
            got.iter().any(|p| matches!(p, Packet::SubAck(_))),
            "seed {seed}: no SUBACK: {got:?}"
        );
    }

    let mut pubs: Vec<Client> = (0..4)
        .map(|i| {
            let shard = sim.rng.below(shards);
            sim.connect(shard, &format!("pub{i}"))
        })
        .collect();
    sim.settle(&mut pubs);
    for p in &pubs {
        sim.read(p);
    }

    // Publishes interleaved with random mesh steps; halfway, sub0 is taken over by a new
    // connection on another shard.
    let total = 200u32;
    let mut sent: Vec<(usize, u32, &str)> = Vec::new();
    let mut taken_over = false;
    for n in 0..total {
        let p = sim.rng.below(pubs.len());
        let topic = topics[sim.rng.below(topics.len())];
        let mut m = Publish::new(topic, n.to_be_bytes().to_vec());
        m.qos = QoS::AtLeastOnce;
        m.packet_id = (n + 1) as u16;
        let mut pc = pubs[p].clone();
        sim.send(&mut pc, &Packet::Publish(m));
        pubs[p] = pc;
        sent.push((p, n, topic));
        for _ in 0..sim.rng.below(4) {
            sim.step();
        }
        if n == total / 2 && !taken_over {
            taken_over = true;
            let old = subs[0].clone();
            let shard = (old.shard + 1 + sim.rng.below(shards - 1)) % shards;
            let new = sim.connect(shard, "sub0");
            sim.settle(&mut subs);
            let old_out = sim.read(&old);
            // Messages written to the old connection before the takeover are redelivered
            // (DUP) to the new one; the old one must end with DISCONNECT 0x8E.
            assert!(
                old_out.iter().any(|p| matches!(p, Packet::Disconnect(d)
                    if d.reason_code == ReasonCode::SESSION_TAKEN_OVER)),
                "seed {seed}: old connection not told 0x8E: {old_out:?}"
            );
            let now = sim.now;
            sim.shards[old.shard].on_closed(old.key, now);
            subs[0] = new;
        }
    }
    sim.settle(&mut pubs);

    // Drain: subscribers acknowledge everything until the broker has nothing left.
    let mut received: Vec<Vec<u32>> = vec![Vec::new(); subs.len()];
    let mut connacks = 0;
    for _ in 0..1000 {
        let mut any = false;
        for i in 0..subs.len() {
            let packets = sim.read(&subs[i]);
            for p in packets {
                any = true;
                match p {
                    Packet::Publish(m) => {
                        received[i].push(u32::from_be_bytes(m.payload[..4].try_into().unwrap()));
                        let mut c = subs[i].clone();
                        sim.send(&mut c, &Packet::PubAck(PubResponse::new(m.packet_id)));
                        subs[i] = c;
                    }
                    Packet::ConnAck(a) => {
                        assert!(a.session_present, "seed {seed}: session lost on takeover");
                        connacks += 1;
                    }
                    Packet::PubAck(_) | Packet::SubAck(_) => {}
                    other => panic!("seed {seed}: unexpected {other:?}"),
                }
            }
        }
        sim.settle(&mut subs);
        if !any {
            break;
        }
    }
    assert_eq!(
        connacks, 1,
        "seed {seed}: one CONNACK for the new sub0 connection"
    );

    for (i, got) in received.iter().enumerate() {
        let filter = sub_filter[i];
        let expected: Vec<u32> = sent
            .iter()
            .filter(|(_, _, t)| shardmq::topic::filter_matches(filter, t))
            .map(|(_, n, _)| *n)
            .collect();
        let mut unique = got.clone();
        unique.sort_unstable();
        unique.dedup();
        if i == 0 {
            // Known gap (see the closing note of issue 3): a forward already in flight to the
            // old shard when it ships the session is not redirected. Everything published
            // after the new connection's CONNACK must arrive.
            let after: Vec<u32> = expected
                .iter()
                .copied()
                .filter(|n| *n > total / 2)
                .collect();
            let missing: Vec<u32> = after
                .iter()
                .copied()
                .filter(|n| unique.binary_search(n).is_err())
                .collect();
            assert!(
                missing.is_empty(),
                "seed {seed}: taken-over session lost {missing:?}"
            );
            continue;
        }
        let mut want = expected.clone();
        want.sort_unstable();
        assert_eq!(
            unique, want,
            "seed {seed}: subscriber {i} ({filter}) lost messages"
        );
        {
            assert_eq!(got.len(), expected.len(), "seed {seed}: duplicates at {i}");
            // Per publisher, the order of sending is kept.
            for p in 0..pubs.len() {
                let order: Vec<u32> = got
                    .iter()
                    .copied()
                    .filter(|n| sent[*n as usize].0 == p)
                    .collect();
                assert!(
                    order.windows(2).all(|w| w[0] < w[1]),
                    "seed {seed}: subscriber {i} reordered publisher {p}: {order:?}"
                );
            }
        }
    }
}

#[test]
fn routing_and_takeover_under_random_interleavings() {
    let base = std::env::var("SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    let runs = if std::env::var("SIM_SEED").is_ok() {
        1
    } else {
        30
    };
    for i in 0..runs {
        let seed = base.wrapping_add(i);
        println!("simulation seed {seed}");
        run(seed);
    }
}
