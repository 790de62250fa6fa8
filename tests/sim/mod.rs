//! The simulation's harness: pure shards wired by in-memory mesh queues, and simulated
//! clients that speak MQTT to them (see `tests/simulation.rs` for what it checks).

use bytes::BytesMut;
use std::collections::{HashMap, VecDeque};

use shardmq::codec::{Connect, Packet, Protocol, PubResponse, QoS};
use shardmq::config::Config;
use shardmq::shard::{ConnectionGauge, Key, MeshMsg, Shard};

/// Seeded xorshift: the whole run follows from the printed seed.
pub struct Rng(u64);

impl Rng {
    /// Seeds through splitmix64, so that neighbouring seeds give unrelated runs.
    pub fn new(seed: u64) -> Rng {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)).max(1))
    }
    pub fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// A client and its one connection. The index in [`Sim::clients`] is the socket handle
/// that travels with a handed-over connection.
pub struct SimClient {
    /// Where the connection is; None while it moves between shards or once closed.
    pub at: Option<(usize, Key)>,
    /// The connection ended (either side closed it).
    pub closed: bool,
    /// The client closed its socket (a connection in transit is closed on arrival).
    pub aborted: bool,
    /// Bytes sent and not yet taken by a shard.
    pub pending: BytesMut,
    /// Every packet received, with a sequence number over all clients.
    pub log: Vec<(u64, Packet)>,
    /// Received QoS 1/2 publishes not acknowledged yet: (packet id, QoS).
    pub unacked: Vec<(u16, QoS)>,
}

/// Shards, the mesh queues between them (two lanes per ordered pair, each FIFO; a control
/// batch may overtake data, never the reverse), and the clients.
pub struct Sim {
    pub shards: Vec<Shard>,
    /// Batches in flight from one shard to another, by lane (true: control).
    pub links: HashMap<(usize, usize, bool), VecDeque<Vec<MeshMsg>>>,
    pub rng: Rng,
    pub now: u64,
    pub clients: Vec<SimClient>,
    pub received: u64,
    /// The shards' shared count of open connections (`limits.max_connections`).
    pub gauge: ConnectionGauge,
}

impl Sim {
    pub fn new(n: usize, seed: u64) -> Sim {
        let gauge = ConnectionGauge::default();
        Sim {
            shards: (0..n)
                .map(|i| Shard::new(i, n, Config::default(), 7, gauge.clone()))
                .collect(),
            gauge,
            links: HashMap::new(),
            rng: Rng::new(seed),
            now: 1_000,
            clients: Vec::new(),
            received: 0,
        }
    }

    pub fn collect(&mut self) {
        let n = self.shards.len();
        for from in 0..n {
            for to in 0..n {
                let control = self.shards[from].take_control_outbox(to);
                if !control.is_empty() {
                    let link = self.links.entry((from, to, true)).or_default();
                    link.push_back(control);
                }
                let batch = self.shards[from].take_outbox(to);
                if !batch.is_empty() {
                    let link = self.links.entry((from, to, false)).or_default();
                    link.push_back(batch);
                }
            }
        }
    }

    /// Connections waiting for the runtime to move them.
    pub fn handing_over(&mut self) -> Vec<usize> {
        let mut ids = Vec::new();
        for (i, c) in self.clients.iter().enumerate() {
            if let Some((s, k)) = c.at {
                if self.shards[s]
                    .conn_mut(k)
                    .is_some_and(|conn| conn.is_handing_over())
                {
                    ids.push(i);
                }
            }
        }
        ids
    }

    /// Delivers one random pending batch or moves one random handed-over connection. False
    /// when nothing is in flight.
    pub fn step(&mut self) -> bool {
        self.collect();
        let mut busy: Vec<(usize, usize, bool)> = self
            .links
            .iter()
            .filter(|(_, q)| !q.is_empty())
            .map(|(k, _)| *k)
            .collect();
        busy.sort_unstable();
        let moving = self.handing_over();
        if busy.is_empty() && moving.is_empty() {
            return false;
        }
        self.now += 1;
        let pick = self.rng.below(busy.len() + moving.len());
        if pick < busy.len() {
            let (from, to, control) = busy[pick];
            let batch = self
                .links
                .get_mut(&(from, to, control))
                .unwrap()
                .pop_front()
                .unwrap();
            if !control {
                // As the runtime does: the control lane before each data batch (a data
                // message never overtakes a control message sent before it).
                let earlier: Vec<_> = self
                    .links
                    .get_mut(&(from, to, true))
                    .map(|q| q.drain(..).collect())
                    .unwrap_or_default();
                for c in earlier {
                    self.shards[to].on_mesh_control(from, c, self.now);
                    self.adopt(to);
                }
                self.shards[to].on_mesh(from, batch, self.now);
            } else {
                self.shards[to].on_mesh_control(from, batch, self.now);
            }
            self.adopt(to);
        } else {
            let ci = moving[pick - busy.len()];
            let (s, k) = self.clients[ci].at.unwrap();
            let mut unread = std::mem::take(&mut self.clients[ci].pending);
            assert!(self.shards[s].hand_over(k, ci as u64, &mut unread));
            assert!(unread.is_empty());
            self.clients[ci].at = None;
        }
        self.pump();
        true
    }

    /// Connections shard `to` adopted: their bytes go back in front of the client's.
    pub fn adopt(&mut self, to: usize) {
        let mut adopted = Vec::new();
        self.shards[to].take_adopted(&mut adopted);
        for (key, socket) in adopted {
            let c = &mut self.clients[socket as usize];
            assert!(c.at.is_none() && !c.closed, "adopted twice");
            if c.aborted {
                // Its client is gone: the runtime sees the end of the stream at once.
                c.closed = true;
                self.shards[to].on_closed(key, self.now);
                continue;
            }
            c.at = Some((to, key));
            let conn = self.shards[to].conn_mut(key).unwrap();
            let mut input = conn.take_input();
            input.extend_from_slice(&c.pending);
            c.pending = input;
        }
    }

    /// The runtime's part for every connection: output to the client, closes, and input
    /// that waited behind a barrier.
    pub fn pump(&mut self) {
        loop {
            let mut progressed = false;
            for i in 0..self.clients.len() {
                let Some((s, k)) = self.clients[i].at else {
                    continue;
                };
                let Some(conn) = self.shards[s].conn_mut(k) else {
                    self.clients[i].at = None;
                    self.clients[i].closed = true;
                    continue;
                };
                let mut out = conn.take_out();
                let closing = conn.is_closing();
                while let Some(p) = Packet::decode(&mut out, Protocol::V5, usize::MAX).unwrap() {
                    self.on_packet(i, p);
                }
                if closing {
                    self.shards[s].on_closed(k, self.now);
                    self.clients[i].at = None;
                    self.clients[i].closed = true;
                    progressed = true;
                    continue;
                }
                if !self.clients[i].pending.is_empty() {
                    let before = self.clients[i].pending.len();
                    let mut pending = std::mem::take(&mut self.clients[i].pending);
                    self.shards[s].on_input(k, &mut pending, self.now);
                    progressed |= pending.len() != before;
                    self.clients[i].pending = pending;
                }
            }
            if !progressed {
                return;
            }
        }
    }

    /// The client closes its socket without DISCONNECT.
    pub fn abort(&mut self, i: usize) {
        let c = &mut self.clients[i];
        // A connection the broker already closed is not the client's doing.
        c.aborted |= !c.closed;
        if let Some((s, k)) = c.at.take() {
            c.closed = true;
            self.shards[s].on_closed(k, self.now);
            self.pump();
        }
    }

    /// The client side: acknowledge now or later (QoS 1 PUBACK, QoS 2 PUBREC), complete
    /// QoS 2 flows in both directions.
    pub fn on_packet(&mut self, i: usize, p: Packet) {
        match &p {
            Packet::Publish(m) if m.qos != QoS::AtMostOnce => {
                if self.rng.below(2) == 0 {
                    self.ack(i, m.packet_id, m.qos);
                } else {
                    self.clients[i].unacked.push((m.packet_id, m.qos));
                }
            }
            Packet::PubRec(r) => self.write(i, &Packet::PubRel(PubResponse::new(r.packet_id))),
            Packet::PubRel(r) => self.write(i, &Packet::PubComp(PubResponse::new(r.packet_id))),
            _ => {}
        }
        self.received += 1;
        self.clients[i].log.push((self.received, p));
    }

    pub fn ack(&mut self, i: usize, id: u16, qos: QoS) {
        let p = match qos {
            QoS::ExactlyOnce => Packet::PubRec(PubResponse::new(id)),
            _ => Packet::PubAck(PubResponse::new(id)),
        };
        self.write(i, &p);
    }

    /// Acknowledges everything client `i` still owes.
    pub fn ack_all(&mut self, i: usize) {
        for (id, qos) in std::mem::take(&mut self.clients[i].unacked) {
            self.ack(i, id, qos);
        }
    }

    /// Bytes from the client; a shard takes them at the next pump.
    pub fn write(&mut self, i: usize, p: &Packet) {
        p.encode(Protocol::V5, &mut self.clients[i].pending)
            .unwrap();
    }

    pub fn send(&mut self, i: usize, p: &Packet) {
        self.write(i, p);
        self.pump();
    }

    /// Steps until no mesh message, move or input is left.
    pub fn settle(&mut self) {
        self.pump();
        while self.step() {}
    }

    /// Between two client actions: up to five mesh steps, and now and then a client that
    /// acknowledges all it owes.
    pub fn meanwhile(&mut self) {
        for _ in 0..self.rng.below(6) {
            self.step();
        }
        if self.rng.below(4) == 0 {
            let c = self.rng.below(self.clients.len());
            self.ack_all(c);
            self.pump();
        }
    }

    /// Everyone acknowledges everything until the broker has nothing left to send.
    pub fn drain(&mut self) {
        for _ in 0..1000 {
            let before: usize = self.clients.iter().map(|c| c.log.len()).sum();
            for i in 0..self.clients.len() {
                self.ack_all(i);
            }
            self.settle();
            let after: usize = self.clients.iter().map(|c| c.log.len()).sum();
            if before == after && self.clients.iter().all(|c| c.unacked.is_empty()) {
                return;
            }
        }
    }

    pub fn connect(&mut self, shard: usize, client_id: &str, receive_maximum: u16) -> usize {
        self.connect_with(shard, client_id, receive_maximum, false)
    }

    pub fn connect_with(
        &mut self,
        shard: usize,
        client_id: &str,
        receive_maximum: u16,
        clean_start: bool,
    ) -> usize {
        let key = self.shards[shard].accept(self.now);
        let mut c = Connect::new(Protocol::V5, client_id);
        c.clean_start = clean_start;
        c.keep_alive_secs = 0;
        c.properties.session_expiry_interval = Some(300);
        c.properties.receive_maximum = Some(receive_maximum);
        self.clients.push(SimClient {
            at: Some((shard, key)),
            closed: false,
            aborted: false,
            pending: BytesMut::new(),
            log: Vec::new(),
            unacked: Vec::new(),
        });
        let i = self.clients.len() - 1;
        self.send(i, &Packet::Connect(Box::new(c)));
        i
    }
}

/// Payload numbers a logical subscriber received over its connections, in order of
/// arrival, with the DUP flag.
pub fn publishes(sim: &Sim, conns: &[usize]) -> Vec<(u32, bool)> {
    let mut all: Vec<&(u64, Packet)> = conns
        .iter()
        .flat_map(|&c| sim.clients[c].log.iter())
        .collect();
    all.sort_by_key(|(seq, _)| *seq);
    all.into_iter()
        .filter_map(|(_, p)| match p {
            Packet::Publish(m) => {
                let n = u32::from_be_bytes(m.payload[..4].try_into().unwrap());
                Some((n, m.dup))
            }
            _ => None,
        })
        .collect()
}

pub fn packets(sim: &Sim, client: usize) -> Vec<&Packet> {
    sim.clients[client].log.iter().map(|(_, p)| p).collect()
}
