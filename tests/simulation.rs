//! Deterministic multi-shard simulation of routing, the SUBACK barrier and takeover.
//!
//! Several pure [`Shard`]s are wired by in-memory per-pair queues (two lanes) whose batches are
//! delivered in a random (seeded) interleaving, with publishes injected between mesh steps.
//! A connection that moves to the shard of its session (takeover) is handed over at a random
//! step, as the runtime would once its socket is idle, carrying the bytes its client sent
//! meanwhile. Subscribers acknowledge late and at random, so takeovers meet in-flight and
//! queued messages.
//!
//! Invariants: every QoS 1/2 publish reaches every matching subscriber (whose SUBACK came
//! first) and in per-publisher order; a subscriber that never reconnects gets each message
//! exactly once; the persistent session `sub0`, taken over several times (mostly by
//! connections on other shards, sometimes overlapping) while messages flow, gets every
//! message published before, during and after the takeovers, each once plus only DUP
//! redeliveries, with Session Present on every CONNACK.
//! A second run checks retained state: per topic never older after newer, and the last
//! message in the end, for subscribers on both shards (`retained_state_under_random_...`).
//! The seed is printed; rerun one with `SIM_SEED=<seed> cargo test --test simulation`, or
//! many with `SIM_RUNS=<n>`.

mod sim;

use std::collections::HashSet;

use shardmq::codec::{
    Packet, Publish, QoS, ReasonCode, Subscribe, SubscribeFilter, SubscriptionOptions,
};
use sim::{packets, publishes, Sim};

fn run(seed: u64) {
    let shards = 3;
    let mut sim = Sim::new(shards, seed);
    let topics = ["t/0", "t/1", "t/2", "t/3"];
    let filters = ["t/0", "t/1", "t/2", "t/3", "t/+", "#"];
    // Connections of each logical subscriber, oldest first.
    let mut subs: Vec<Vec<usize>> = Vec::new();
    let mut sub_filter = Vec::new();
    for i in 0..10 {
        let shard = sim.rng.below(shards);
        let window = 1 + sim.rng.below(6) as u16;
        subs.push(vec![sim.connect(shard, &format!("sub{i}"), window)]);
        sub_filter.push(filters[i % filters.len()]);
    }
    sim.settle();
    for (i, conns) in subs.iter().enumerate() {
        let s = Subscribe {
            packet_id: 1,
            filters: vec![SubscribeFilter {
                filter: sub_filter[i].into(),
                options: SubscriptionOptions::qos(QoS::ExactlyOnce),
            }],
            ..Subscribe::default()
        };
        sim.send(conns[0], &Packet::Subscribe(s));
    }
    sim.settle();
    for conns in &subs {
        let log = packets(&sim, conns[0]);
        assert!(
            matches!(log.first(), Some(Packet::ConnAck(_))),
            "seed {seed}: {log:?}"
        );
        assert!(
            log.iter().any(|p| matches!(p, Packet::SubAck(_))),
            "seed {seed}: no SUBACK: {log:?}"
        );
    }

    let pubs: Vec<usize> = (0..4)
        .map(|i| {
            let shard = sim.rng.below(shards);
            sim.connect(shard, &format!("pub{i}"), 100)
        })
        .collect();
    sim.settle();

    // Publishes interleaved with random mesh steps and late acknowledgements; sub0 is taken
    // over at random moments (two takeovers may overlap), mostly from another shard; some of
    // the new connections are closed by their client at a random moment (before, during or
    // after their move).
    let total = 300u32;
    let mut takeovers: Vec<u32> = (0..4)
        .map(|_| sim.rng.below(total as usize) as u32)
        .collect();
    takeovers.sort_unstable();
    let mut sent: Vec<(usize, u32, &str)> = Vec::new();
    let mut doomed: Vec<usize> = Vec::new();
    for n in 0..total {
        let p = sim.rng.below(pubs.len());
        let topic = topics[sim.rng.below(topics.len())];
        let mut m = Publish::new(topic, n.to_be_bytes().to_vec());
        m.qos = if sim.rng.below(3) == 0 {
            QoS::ExactlyOnce
        } else {
            QoS::AtLeastOnce
        };
        m.packet_id = (n + 1) as u16;
        sim.send(pubs[p], &Packet::Publish(m));
        sent.push((p, n, topic));
        for _ in 0..sim.rng.below(4) {
            sim.step();
        }
        if sim.rng.below(8) == 0 {
            let c = sim.rng.below(sim.clients.len());
            sim.ack_all(c);
            sim.pump();
        }
        for _ in takeovers.iter().filter(|&&t| t == n) {
            let current = *subs[0].last().unwrap();
            let shard = match sim.clients[current].at {
                Some((s, _)) if sim.rng.below(4) != 0 => {
                    (s + 1 + sim.rng.below(shards - 1)) % shards
                }
                _ => sim.rng.below(shards),
            };
            let window = 1 + sim.rng.below(6) as u16;
            let new = sim.connect(shard, "sub0", window);
            subs[0].push(new);
            if sim.rng.below(4) == 0 {
                doomed.push(new);
            }
        }
        for &c in &doomed {
            if !sim.clients[c].aborted && sim.rng.below(4) == 0 {
                sim.abort(c);
            }
        }
    }
    for c in doomed {
        sim.abort(c);
    }
    sim.settle();
    // The session is still there: one more takeover once everything settled.
    let shard = sim.rng.below(shards);
    let window = 1 + sim.rng.below(6) as u16;
    let last = sim.connect(shard, "sub0", window);
    subs[0].push(last);
    sim.settle();

    // Drain: everyone acknowledges everything until the broker has nothing left.
    sim.drain();

    // sub0: every CONNACK after the first says Session Present; the last connection is
    // connected, every other one ended (one that was connected with 0x8E, unless its client
    // closed it).
    let conns = &subs[0];
    let live: Vec<usize> = conns
        .iter()
        .copied()
        .filter(|&c| sim.clients[c].at.is_some())
        .collect();
    assert_eq!(live, [last], "seed {seed}: live sub0 connections");
    for (j, &c) in conns.iter().enumerate() {
        let log = packets(&sim, c);
        let connacks: Vec<bool> = log
            .iter()
            .filter_map(|p| match p {
                Packet::ConnAck(a) => Some(a.session_present),
                _ => None,
            })
            .collect();
        assert!(
            connacks.iter().all(|&present| present || j == 0) && connacks.len() <= 1,
            "seed {seed}: sub0 connection {j}: CONNACKs {connacks:?}"
        );
        if !sim.clients[c].aborted {
            // Superseded before it was attached (even while it moved between shards), a
            // connection still gets its CONNACK, then 0x8E: never a silent close.
            assert!(
                connacks.len() == 1,
                "seed {seed}: sub0 connection {j} without CONNACK: {log:?}"
            );
        }
        if sim.clients[c].at.is_none() {
            assert!(
                sim.clients[c].closed,
                "seed {seed}: sub0 connection {j} lost in transit"
            );
            if !connacks.is_empty() && !sim.clients[c].aborted {
                assert!(
                    matches!(log.last(), Some(Packet::Disconnect(d))
                        if d.reason_code == ReasonCode::SESSION_TAKEN_OVER),
                    "seed {seed}: sub0 connection {j} not told 0x8E: {log:?}"
                );
            }
        }
    }
    // One session per client id: none duplicated or lost by the takeovers.
    let sessions: usize = sim.shards.iter().map(|s| s.session_count()).sum();
    assert_eq!(sessions, 14, "seed {seed}: sessions");
    // Connections moved between shards are counted once: with none in transit, the shared
    // gauge is what the shards hold.
    let held: usize = sim.shards.iter().map(|s| s.connection_count()).sum();
    assert_eq!(sim.gauge.open(), held, "seed {seed}: connection gauge");

    for (i, conns) in subs.iter().enumerate() {
        let filter = sub_filter[i];
        let expected: Vec<u32> = sent
            .iter()
            .filter(|(_, _, t)| shardmq::topic::filter_matches(filter, t))
            .map(|(_, n, _)| *n)
            .collect();
        let got = publishes(&sim, conns);
        let mut seen = HashSet::new();
        let mut first = Vec::new();
        for &(n, dup) in &got {
            if seen.insert(n) {
                first.push(n);
            } else {
                assert!(dup, "seed {seed}: subscriber {i} got {n} twice without DUP");
            }
        }
        if conns.len() == 1 {
            assert_eq!(got.len(), first.len(), "seed {seed}: duplicates at {i}");
        }
        let mut unique = first.clone();
        unique.sort_unstable();
        let missing: Vec<u32> = expected
            .iter()
            .copied()
            .filter(|n| unique.binary_search(n).is_err())
            .collect();
        assert!(
            missing.is_empty(),
            "seed {seed}: subscriber {i} ({filter}, {} connections) lost {missing:?}",
            conns.len()
        );
        assert_eq!(
            unique.len(),
            expected.len(),
            "seed {seed}: subscriber {i} ({filter}) got unexpected messages"
        );
        // Per publisher, the order of sending is kept.
        for p in 0..pubs.len() {
            let order: Vec<u32> = first
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

/// Runs `run` with `SIM_SEED` (once) or with 30 seeds from the clock (`SIM_RUNS` of them),
/// printing each seed first.
fn for_each_seed(label: &str, run: fn(u64)) {
    let base = std::env::var("SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    let runs = std::env::var("SIM_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if std::env::var("SIM_SEED").is_ok() {
            1
        } else {
            30
        });
    for i in 0..runs {
        let seed = base.wrapping_add(i);
        println!("{label} seed {seed}");
        run(seed);
    }
}

#[test]
fn routing_and_takeover_under_random_interleavings() {
    for_each_seed("simulation", run);
}

/// Clean Start from another shard: the old connection gets 0x8E, the old session (and its
/// subscription) is gone, the new one is fresh, and the client id has one session.
#[test]
fn clean_start_takeover_from_another_shard_starts_fresh() {
    for seed in 0..50 {
        let mut sim = Sim::new(3, seed);
        let old = sim.connect(0, "x", 10);
        sim.settle();
        let s = Subscribe {
            packet_id: 1,
            filters: vec![SubscribeFilter {
                filter: "a/b".into(),
                options: SubscriptionOptions::qos(QoS::AtLeastOnce),
            }],
            ..Subscribe::default()
        };
        sim.send(old, &Packet::Subscribe(s));
        sim.settle();
        let new = sim.connect_with(1 + (seed as usize % 2), "x", 10, true);
        sim.settle();
        let publisher = sim.connect(2, "p", 10);
        sim.settle();
        let mut m = Publish::new("a/b", 0u32.to_be_bytes().to_vec());
        m.qos = QoS::AtLeastOnce;
        m.packet_id = 1;
        sim.send(publisher, &Packet::Publish(m));
        sim.settle();
        let old_log = packets(&sim, old);
        assert!(
            matches!(old_log.last(), Some(Packet::Disconnect(d))
                if d.reason_code == ReasonCode::SESSION_TAKEN_OVER),
            "seed {seed}: {old_log:?}"
        );
        let new_log = packets(&sim, new);
        assert!(
            matches!(new_log.as_slice(), [Packet::ConnAck(a)] if !a.session_present),
            "seed {seed}: {new_log:?}"
        );
        assert!(sim.clients[new].at.is_some(), "seed {seed}: not connected");
        let sessions: usize = sim.shards.iter().map(|s| s.session_count()).sum();
        assert_eq!(sessions, 2, "seed {seed}: sessions");
    }
}

/// Retained state across two shards under random interleavings of the mesh's two lanes
/// (a control batch may overtake data): one publisher per topic sends numbered retained
/// messages, a watcher on each shard keeps every publish forwarded (so a forward and the
/// retained set of one message race), and clients on random shards subscribe at random
/// moments, the publishers too, right after publishing. Every subscriber sees, per topic,
/// never an older message after a newer one, and ends with the topic's last message
/// [MQTT-3.3.1-5, MQTT-3.3.1-9]. A retained set on the control lane broke the first (a
/// subscriber on the owning shard got the newest retained message, then older forwards);
/// a retained query answered before the sets its shard sent first broke the second.
#[test]
fn retained_state_under_random_interleavings() {
    for_each_seed("retained simulation", run_retained);
}

fn run_retained(seed: u64) {
    // Two to four shards: from three on, a topic's publisher, its retained partition and a
    // subscriber can each be on a shard of their own.
    let shards = 2 + (seed % 3) as usize;
    let mut sim = Sim::new(shards, seed);
    // With watchers every shard already forwards every topic to every other; without, a
    // SUBSCRIBE's interest change races the publishes.
    let watchers = sim.rng.below(2) == 0;
    let topics = ["r/0", "r/1", "r/2", "r/3"];
    let filters = ["r/+", "#", "r/0", "r/1", "r/2", "r/3"];
    let subscribe = |sim: &mut Sim, client: usize, filter: &str, packet_id: u16| {
        let s = Subscribe {
            packet_id,
            filters: vec![SubscribeFilter {
                filter: filter.into(),
                options: SubscriptionOptions::qos(QoS::AtLeastOnce),
            }],
            ..Subscribe::default()
        };
        sim.send(client, &Packet::Subscribe(s));
    };
    let pubs: Vec<usize> = (0..topics.len())
        .map(|i| {
            let shard = sim.rng.below(shards);
            sim.connect(shard, &format!("rp{i}"), 100)
        })
        .collect();
    let mut subscribers: Vec<(usize, &str)> = Vec::new();
    for shard in (0..shards).filter(|_| watchers) {
        let watcher = sim.connect(shard, &format!("watcher{shard}"), 100);
        sim.settle();
        subscribe(&mut sim, watcher, "r/#", 1);
        subscribers.push((watcher, "r/#"));
    }
    sim.settle();
    let mut last: [Option<u32>; 4] = [None; 4];
    for n in 0..200u32 {
        let k = sim.rng.below(topics.len());
        let mut m = Publish::new(topics[k], n.to_be_bytes().to_vec());
        m.qos = QoS::AtLeastOnce;
        m.retain = true;
        m.packet_id = (n + 1) as u16;
        sim.send(pubs[k], &Packet::Publish(m));
        last[k] = Some(n);
        if sim.rng.below(12) == 0 {
            // Its own topic, right behind its publish.
            subscribe(&mut sim, pubs[k], topics[k], 60_000 + n as u16);
            subscribers.push((pubs[k], topics[k]));
        }
        if sim.rng.below(6) == 0 {
            let shard = sim.rng.below(shards);
            let window = 1 + sim.rng.below(6) as u16;
            let c = sim.connect(shard, &format!("rs{n}"), window);
            let filter = filters[sim.rng.below(filters.len())];
            subscribe(&mut sim, c, filter, 1);
            subscribers.push((c, filter));
        }
        sim.meanwhile();
    }
    sim.drain();
    for &(c, filter) in &subscribers {
        for (k, topic) in topics.iter().enumerate() {
            if !shardmq::topic::filter_matches(filter, topic) {
                continue;
            }
            let got: Vec<(u32, bool)> = packets(&sim, c)
                .into_iter()
                .filter_map(|p| match p {
                    Packet::Publish(m) if m.topic.as_str() == *topic => Some((
                        u32::from_be_bytes(m.payload[..4].try_into().unwrap()),
                        m.retain,
                    )),
                    _ => None,
                })
                .collect();
            assert!(
                got.windows(2).all(|w| w[0].0 <= w[1].0),
                "seed {seed}: client {c} ({filter}) got an older {topic} after a newer: {got:?}"
            );
            assert_eq!(
                got.last().map(|g| g.0),
                last[k],
                "seed {seed}: client {c} ({filter}) did not end with the last {topic}: {got:?}"
            );
        }
    }
}

/// A shared subscription group whose members come and go on random shards while messages
/// flow, under random interleavings of the mesh's two lanes: a new member subscribes, and
/// an older one unsubscribes only once the new one has its SUBACK, so the group always has
/// a member. Every QoS 1 message goes to exactly one member [MQTT-4.8.2-2]; none is lost
/// (`shared_undeliverable` stays 0). Members are often alone, so a forward for the group
/// that overtook the interest change announcing the only member (data overtaking control)
/// would find no member.
#[test]
fn shared_group_members_coming_and_going() {
    for_each_seed("shared group simulation", run_shared);
}

fn run_shared(seed: u64) {
    let shards = 3;
    let group = "$share/g/s/#";
    let mut sim = Sim::new(shards, seed);
    let join = |sim: &mut Sim, n: usize| {
        let shard = sim.rng.below(shards);
        let window = 1 + sim.rng.below(6) as u16;
        let c = sim.connect(shard, &format!("member{n}"), window);
        let s = Subscribe {
            packet_id: 1,
            filters: vec![SubscribeFilter {
                filter: group.into(),
                options: SubscriptionOptions::qos(QoS::AtLeastOnce),
            }],
            ..Subscribe::default()
        };
        sim.send(c, &Packet::Subscribe(s));
        c
    };
    let subacked = |sim: &Sim, c: usize| {
        packets(sim, c)
            .iter()
            .any(|p| matches!(p, Packet::SubAck(_)))
    };
    let pubs: Vec<usize> = (0..3)
        .map(|i| {
            let shard = sim.rng.below(shards);
            sim.connect(shard, &format!("sp{i}"), 100)
        })
        .collect();
    let mut members = vec![join(&mut sim, 0)];
    sim.settle();
    let mut active = members.clone();
    let total = 300u32;
    for n in 0..total {
        let p = sim.rng.below(pubs.len());
        let mut m = Publish::new(format!("s/{}", n % 5).as_str(), n.to_be_bytes().to_vec());
        m.qos = QoS::AtLeastOnce;
        m.packet_id = (n + 1) as u16;
        sim.send(pubs[p], &Packet::Publish(m));
        if sim.rng.below(10) == 0 && active.len() < 3 {
            let c = join(&mut sim, members.len());
            members.push(c);
            active.push(c);
        }
        // The oldest member leaves once a newer one has its SUBACK.
        if active.len() > 1 && sim.rng.below(6) == 0 && subacked(&sim, active[1]) {
            let leaving = active.remove(0);
            let u = shardmq::codec::Unsubscribe {
                packet_id: 2,
                filters: vec![group.into()],
                ..Default::default()
            };
            sim.send(leaving, &Packet::Unsubscribe(u));
        }
        sim.meanwhile();
    }
    sim.drain();
    let undeliverable: u64 = sim
        .shards
        .iter()
        .map(|s| s.metrics().shared_undeliverable)
        .sum();
    let mut owner: Vec<Option<usize>> = vec![None; total as usize];
    for &c in &members {
        for (n, dup) in publishes(&sim, &[c]) {
            match owner[n as usize] {
                None => owner[n as usize] = Some(c),
                Some(o) => assert!(
                    o == c && dup,
                    "seed {seed}: message {n} went to client {o} and to client {c}"
                ),
            }
        }
    }
    let lost: Vec<u32> = (0..total)
        .filter(|&n| owner[n as usize].is_none())
        .collect();
    assert!(
        lost.is_empty(),
        "seed {seed}: lost {lost:?} (shared_undeliverable {undeliverable})"
    );
    assert_eq!(undeliverable, 0, "seed {seed}: shared_undeliverable");
}
