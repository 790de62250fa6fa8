//! `$SYS` topics: the broker's counters, published retained under `$SYS/broker/` every
//! `sys_interval_secs`, summed over both shards.

mod common;

use common::*;
use std::time::{Duration, Instant};

/// Reads `$SYS` messages until `topic` carries a value for which `done` holds.
#[track_caller]
fn wait_for_value(c: &mut Client, topic: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = None;
    while Instant::now() < deadline {
        if let Recv::Packet(Packet::Publish(p)) = c.recv(Duration::from_millis(500)) {
            let value = String::from_utf8_lossy(&p.payload).to_string();
            if p.topic.as_str() == topic {
                if done(&value) {
                    return value;
                }
                last = Some(value);
            }
        }
    }
    panic!("{topic}: last value {last:?}");
}

#[test]
fn counters_are_published_under_sys_and_only_the_broker_publishes_there() {
    let broker = Broker::with_config("sys_interval_secs = 1\n");
    let mut everything = broker.v5(&unique("all"));
    everything.sub("#", QoS::AtMostOnce);
    let mut ops = broker.v5(&unique("ops"));
    ops.sub("$SYS/broker/#", QoS::AtMostOnce);
    let version = wait_for_value(&mut ops, "$SYS/broker/version", |_| true);
    assert!(version.starts_with("shardmq "), "{version}");
    assert_eq!(
        wait_for_value(&mut ops, "$SYS/broker/shards", |_| true),
        "2"
    );

    // Publishes on both shards are summed: 20 from clients spread by the kernel.
    let topic = unique("counted");
    for _ in 0..4 {
        let mut p = broker.v5(&unique("pub"));
        for _ in 0..5 {
            p.publish(&topic, b"x", QoS::AtLeastOnce, false);
        }
    }
    wait_for_value(&mut ops, "$SYS/broker/messages/received", |v| {
        v.parse::<u64>().is_ok_and(|n| n >= 20)
    });
    wait_for_value(&mut ops, "$SYS/broker/counters/connections_accepted", |v| {
        v.parse::<u64>().is_ok_and(|n| n >= 6)
    });

    // A client may not publish there [MQTT-4.7.2-1 reserves `$` topics for the server].
    let mut faker = broker.v5(&unique("faker"));
    let id = faker.next_packet_id();
    let mut fake = publish("$SYS/broker/version", b"fake", QoS::AtLeastOnce);
    fake.packet_id = id;
    fake.retain = true;
    faker.send(&Packet::Publish(fake));
    let ack = faker.wait_for("PUBACK", |p| matches!(p, Packet::PubAck(_)));
    assert!(
        matches!(&ack, Packet::PubAck(a) if a.reason_code == ReasonCode::NOT_AUTHORIZED),
        "{ack:?}"
    );
    let mut late = broker.v5(&unique("late"));
    late.sub("$SYS/broker/version", QoS::AtMostOnce);
    let retained = late.recv_publish();
    assert!(retained.payload.starts_with(b"shardmq "), "{retained:?}");

    // `#` never matches them; the counted messages did arrive.
    let mut seen = 0;
    while let Recv::Packet(Packet::Publish(p)) = everything.recv(QUIET) {
        assert!(!p.topic.starts_with('$'), "{p:?}");
        seen += 1;
    }
    assert_eq!(seen, 20);
}

/// After the first publication only what changed is sent again: on an idle broker,
/// `uptime` every interval, and not the counters that stayed put.
#[test]
fn unchanged_values_are_not_published_again() {
    let broker = Broker::with_config("sys_interval_secs = 1\n");
    let mut ops = broker.v5(&unique("ops"));
    ops.sub("$SYS/broker/#", QoS::AtMostOnce);
    // The retained values, then two intervals more.
    wait_for_value(&mut ops, "$SYS/broker/version", |_| true);
    let deadline = Instant::now() + Duration::from_millis(2600);
    let mut seen: Vec<String> = Vec::new();
    while Instant::now() < deadline {
        if let Recv::Packet(Packet::Publish(p)) = ops.recv(Duration::from_millis(200)) {
            seen.push(p.topic.to_string());
        }
    }
    let uptimes = seen.iter().filter(|t| t.ends_with("/uptime")).count();
    assert!(uptimes >= 1, "uptime is republished: {seen:?}");
    for fixed in [
        "version",
        "shards",
        "counters/protocol_errors",
        "counters/takeovers",
    ] {
        let topic = format!("$SYS/broker/{fixed}");
        assert!(
            seen.iter().filter(|t| **t == topic).count() <= 1,
            "{topic} was republished unchanged: {seen:?}"
        );
    }
}

#[test]
fn an_interval_of_zero_publishes_nothing() {
    let broker = Broker::with_config("sys_interval_secs = 0\n");
    let mut ops = broker.v5(&unique("ops"));
    ops.sub("$SYS/#", QoS::AtMostOnce);
    ops.expect_nothing_for(Duration::from_millis(1500));
}

/// A Will may not publish under `$SYS` any more than a PUBLISH may: the CONNECT is refused
/// (5.0: CONNACK 0x87; 3.1.1: return code 5), and the broker's retained value stays.
#[test]
fn a_will_under_sys_is_refused() {
    let broker = Broker::with_config("sys_interval_secs = 1\n");
    for protocol in [Protocol::V311, Protocol::V5] {
        let mut connect = Connect::new(protocol, unique("sys-will"));
        let mut w = will("$SYS/broker/version", b"fake", QoS::AtMostOnce);
        w.retain = true;
        connect.will = Some(w);
        let (c, ack) = broker.connect(connect);
        assert_eq!(ack.reason_code, ReasonCode::NOT_AUTHORIZED, "{protocol:?}");
        c.drop_connection();
    }
    let mut ops = broker.v5(&unique("ops"));
    ops.sub("$SYS/broker/version", QoS::AtMostOnce);
    let version = wait_for_value(&mut ops, "$SYS/broker/version", |_| true);
    assert!(version.starts_with("shardmq "), "{version}");
}

/// `clients/connected` counts the clients that got CONNACK, not every open socket: three
/// sockets that never send CONNECT do not count.
#[test]
fn clients_connected_counts_only_connected_clients() {
    let broker = Broker::with_config("sys_interval_secs = 1\n");
    let _silent: Vec<std::net::TcpStream> = (0..3)
        .map(|_| std::net::TcpStream::connect(broker.addr).unwrap())
        .collect();
    let _other = broker.v311(&unique("other"));
    let mut ops = broker.v5(&unique("ops"));
    ops.sub("$SYS/broker/clients/connected", QoS::AtMostOnce);
    // Retained values may be from before the last two connected: wait for the count.
    let deadline = Instant::now() + Duration::from_secs(4);
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Recv::Packet(Packet::Publish(p)) = ops.recv(Duration::from_millis(500)) {
            last = String::from_utf8_lossy(&p.payload).to_string();
        }
    }
    assert_eq!(last, "2", "two clients connected, three silent sockets");
}
