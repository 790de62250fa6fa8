//! Takeover of a persistent session by connections on either shard while messages flow
//! (two shards, the real broker). A new connection on another shard than the session's is
//! moved to the session's shard (socket, CONNECT and the bytes behind it), so the session
//! and its subscriptions never change shard and no message in flight is lost.

mod common;

use common::*;
use std::time::{Duration, Instant};

/// Payload number of a test message.
fn number(p: &Publish) -> u32 {
    u32::from_be_bytes(p.payload[..4].try_into().expect("4-byte payload"))
}

/// A publisher keeps publishing QoS 1 while a persistent subscriber is taken over again and
/// again by new connections, which the kernel spreads over both shards (the session was
/// created on shard 0). Every message arrives; a message arrives twice only as a DUP
/// redelivery of one that the old connection had not acknowledged; the first copies keep
/// the publishing order [MQTT-4.6.0-6].
#[test]
fn qos1_stream_survives_repeated_cross_shard_takeovers() {
    const MESSAGES: u32 = 3000;
    const MIN_TAKEOVERS: usize = 24;
    let broker = Broker::start();
    let topic = unique("stream");
    let (mut sub, id) = broker.v5_on_shard(0, 300);
    sub.sub(&topic, QoS::AtLeastOnce);

    let addr = broker.addr;
    let publisher = {
        let topic = topic.clone();
        std::thread::spawn(move || {
            let (mut p, _) = Client::connect(addr, connect_v5(&unique("streampub"), true, 0));
            for n in 0..MESSAGES {
                p.publish(&topic, &n.to_be_bytes(), QoS::AtLeastOnce, false);
                if n % 10 == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        })
    };

    // (number, DUP) in order of arrival, over all connections.
    let mut got: Vec<(u32, bool)> = Vec::new();
    let mut takeovers = 0;
    while takeovers < MIN_TAKEOVERS || !publisher.is_finished() {
        // Read (and acknowledge) for a moment on the current connection.
        let until = Instant::now() + Duration::from_millis(10);
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            match sub.recv(left) {
                Recv::Packet(Packet::Publish(p)) => {
                    got.push((number(&p), p.dup));
                    sub.ack(&p);
                }
                Recv::Packet(other) => panic!("unexpected {other:?}"),
                Recv::Timeout => break,
                Recv::Closed => panic!("subscriber closed"),
            }
        }
        let (next, ack) = Client::connect(addr, connect_v5(&id, false, 300));
        assert!(ack.session_present, "takeover {takeovers}: session lost");
        // The old connection: what it got before 0x8E counts as received (unacknowledged,
        // so it comes again with DUP on the new one).
        let mut told = false;
        for p in sub.expect_closed() {
            match p {
                Packet::Publish(p) => got.push((number(&p), p.dup)),
                Packet::Disconnect(d) => {
                    assert_eq!(d.reason_code, ReasonCode::SESSION_TAKEN_OVER);
                    told = true;
                }
                other => panic!("unexpected {other:?} on the old connection"),
            }
        }
        assert!(told, "takeover {takeovers}: no DISCONNECT 0x8E");
        sub = next;
        takeovers += 1;
    }
    publisher.join().expect("publisher");

    let mut seen = vec![false; MESSAGES as usize];
    let mut first = Vec::new();
    let mut note = |n: u32, dup: bool, first: &mut Vec<u32>| {
        assert!(n < MESSAGES, "unknown message {n}");
        if seen[n as usize] {
            assert!(dup, "message {n} delivered twice without DUP");
        } else {
            seen[n as usize] = true;
            first.push(n);
        }
    };
    for &(n, dup) in &got {
        note(n, dup, &mut first);
    }
    let deadline = Instant::now() + WAIT;
    while first.len() < MESSAGES as usize {
        let left = deadline.saturating_duration_since(Instant::now());
        match sub.recv(left) {
            Recv::Packet(Packet::Publish(p)) => {
                note(number(&p), p.dup, &mut first);
                sub.ack(&p);
            }
            Recv::Packet(other) => panic!("unexpected {other:?}"),
            other => {
                let missing: Vec<usize> = (0..MESSAGES as usize).filter(|&n| !seen[n]).collect();
                panic!(
                    "{other:?} after {takeovers} takeovers; {} messages missing: {:?}",
                    missing.len(),
                    &missing[..missing.len().min(20)]
                );
            }
        }
    }
    assert!(
        first.windows(2).all(|w| w[0] < w[1]),
        "publishing order not kept"
    );
}

/// CONNECT, SUBSCRIBE and PUBLISH in one write, on connections that the kernel spreads over
/// both shards while the session lives on shard 0: the packets behind the CONNECT move with
/// a connection handed to the session's shard and are answered in order, and the session
/// keeps its old subscription as well.
#[test]
fn packets_pipelined_behind_connect_survive_the_move() {
    let broker = Broker::start();
    let (mut first, id) = broker.v5_on_shard(0, 300);
    let old_topic = unique("pipe-old");
    first.sub(&old_topic, QoS::AtLeastOnce);
    first.disconnect();
    let mut p = broker.v5(&unique("pipe-pub"));
    for round in 0..12u8 {
        let topic = unique("pipe");
        p.publish(&old_topic, &[round], QoS::AtLeastOnce, false);
        let mut bytes = encode(
            &Packet::Connect(Box::new(connect_v5(&id, false, 300))),
            Protocol::V5,
        );
        let subscribe = Subscribe {
            packet_id: 1,
            filters: vec![SubscribeFilter {
                filter: topic.as_str().into(),
                options: SubscriptionOptions::qos(QoS::AtLeastOnce),
            }],
            ..Subscribe::default()
        };
        bytes.extend(encode(&Packet::Subscribe(subscribe), Protocol::V5));
        let mut echo = publish(&topic, &[round], QoS::AtLeastOnce);
        echo.packet_id = 2;
        bytes.extend(encode(&Packet::Publish(echo), Protocol::V5));
        let mut c = broker.raw();
        c.protocol = Protocol::V5;
        c.send_raw(&bytes);
        match c.expect_packet() {
            Packet::ConnAck(a) => assert!(a.session_present, "round {round}"),
            other => panic!("round {round}: expected CONNACK, got {other:?}"),
        }
        // The queued message on the old subscription, the SUBACK, the PUBACK and the echo
        // of our own publish (no_local is off), the first three in this order.
        let mut queued = false;
        let mut suback = false;
        let mut puback = false;
        let mut echoed = false;
        while !(queued && suback && puback && echoed) {
            match c.expect_packet() {
                Packet::Publish(m) if m.topic.as_str() == old_topic => {
                    assert_eq!(&m.payload[..], &[round], "round {round}");
                    assert!(!suback, "round {round}: queued message after SUBACK");
                    queued = true;
                    c.ack(&m);
                }
                Packet::SubAck(a) => {
                    assert_eq!(a.packet_id, 1);
                    suback = true;
                }
                Packet::PubAck(a) => {
                    assert_eq!(a.packet_id, 2);
                    assert!(suback, "round {round}: PUBACK before SUBACK");
                    puback = true;
                }
                Packet::Publish(m) if m.topic.as_str() == topic => {
                    assert_eq!(&m.payload[..], &[round], "round {round}");
                    echoed = true;
                    c.ack(&m);
                }
                other => panic!("round {round}: unexpected {other:?}"),
            }
        }
        c.expect_nothing_for(Duration::from_millis(20));
        c.disconnect();
    }
}

/// Forty connections with one client id, sent back to back over both shards while the
/// session lives on shard 0, so that takeovers overlap with connections moving between the
/// shards. Each gets CONNACK first, never a silent close; every one but the last is then
/// taken over with DISCONNECT 0x8E [MQTT-3.1.4-3]; exactly one stays connected.
#[test]
fn every_connection_of_a_takeover_burst_gets_connack() {
    const CONNECTIONS: usize = 40;
    let broker = Broker::start();
    let (first, id) = broker.v5_on_shard(0, 300);
    let mut clients: Vec<Client> = (0..CONNECTIONS)
        .map(|_| {
            let mut c = broker.raw();
            c.protocol = Protocol::V5;
            c.send(&Packet::Connect(Box::new(connect_v5(&id, false, 300))));
            c
        })
        .collect();
    let mut still_open = 0;
    for (i, c) in clients.iter_mut().enumerate() {
        match c.recv(Duration::from_secs(5)) {
            Recv::Packet(Packet::ConnAck(ack)) => {
                assert_eq!(
                    ack.reason_code,
                    ReasonCode::SUCCESS,
                    "connection {i}: {ack:?}"
                );
                assert!(ack.session_present, "connection {i}: {ack:?}");
            }
            other => panic!("connection {i}: expected CONNACK first, got {other:?}"),
        }
        match c.recv(Duration::from_secs(2)) {
            Recv::Timeout => still_open += 1,
            Recv::Packet(Packet::Disconnect(d)) => {
                assert_eq!(
                    d.reason_code,
                    ReasonCode::SESSION_TAKEN_OVER,
                    "connection {i}"
                );
                assert!(matches!(c.recv(WAIT), Recv::Closed), "connection {i}");
            }
            other => panic!("connection {i}: expected DISCONNECT 0x8E or nothing, got {other:?}"),
        }
    }
    assert_eq!(still_open, 1, "connections left connected");
    drop(first);
}

/// A burst of connections with one client id, each with a Will of its own (no delay): every
/// connection that is taken over closes without DISCONNECT from its client, so its Will is
/// published [MQTT-3.1.2-8], whether it was taken over after its CONNACK or while its
/// CONNECT was still being answered (a broker answering CONNECTs one at a time would have
/// attached it and taken it over at once). Only the last connection's Will stays unsent.
#[test]
fn every_connection_taken_over_in_a_burst_publishes_its_will() {
    const CONNECTIONS: usize = 40;
    let broker = Broker::start();
    let will_topic = unique("burst-will");
    let mut watcher = broker.v5(&unique("watch"));
    watcher.sub(&format!("{will_topic}/#"), QoS::AtLeastOnce);
    let (first, id) = broker.v5_on_shard(0, 300);
    let mut clients: Vec<Client> = (0..CONNECTIONS)
        .map(|i| {
            let mut c = broker.raw();
            c.protocol = Protocol::V5;
            let mut connect = connect_v5(&id, false, 300);
            connect.will = Some(will(
                &format!("{will_topic}/{i}"),
                i.to_string().as_bytes(),
                QoS::AtLeastOnce,
            ));
            c.send(&Packet::Connect(Box::new(connect)));
            c
        })
        .collect();
    let mut taken_over = Vec::new();
    for (i, c) in clients.iter_mut().enumerate() {
        assert!(
            matches!(c.recv(WAIT), Recv::Packet(Packet::ConnAck(_))),
            "connection {i}: no CONNACK"
        );
        if let Recv::Packet(Packet::Disconnect(d)) = c.recv(Duration::from_secs(2)) {
            assert_eq!(
                d.reason_code,
                ReasonCode::SESSION_TAKEN_OVER,
                "connection {i}"
            );
            taken_over.push(i);
        }
    }
    assert_eq!(taken_over.len(), CONNECTIONS - 1, "connections taken over");
    let mut wills: Vec<usize> = (0..taken_over.len())
        .map(|_| {
            let p = watcher.recv_publish();
            watcher.ack(&p);
            std::str::from_utf8(&p.payload).unwrap().parse().unwrap()
        })
        .collect();
    wills.sort_unstable();
    assert_eq!(wills, taken_over, "the Wills published");
    watcher.expect_nothing();
    drop(first);
}
