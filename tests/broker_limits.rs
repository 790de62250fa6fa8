//! Limits and malformed input against the real broker (two shards): every bad packet
//! closes only its own connection (MQTT 5: with the right DISCONNECT reason), and the
//! configured bounds answer with the documented codes.

mod common;

use common::*;
use std::time::{Duration, Instant};

/// Reserved fixed-header flags [MQTT-2.2.2-1, MQTT-2.2.2-2]: SUBSCRIBE / UNSUBSCRIBE /
/// PUBREL with flags other than 0010, PINGREQ with flags → malformed (0x81), connection
/// closed; others unaffected.
#[test]
fn reserved_header_flags_close_mqtt_2_2_2_2() {
    let broker = Broker::start();
    let mut by = Bystander::new(&broker);
    for protocol in [Protocol::V311, Protocol::V5] {
        let props: &[u8] = if protocol.is_v5() { &[0] } else { &[] };
        let mut sub = vec![0x80, 0, 0x00, 0x01];
        sub.extend_from_slice(props);
        sub.extend_from_slice(&[0x00, 0x01, b'a', 0x00]);
        sub[1] = (sub.len() - 2) as u8;
        abuse(&broker, protocol, &sub, ReasonCode::MALFORMED_PACKET);
        by.check();
        abuse(
            &broker,
            protocol,
            &[0x60, 0x02, 0x00, 0x01],
            ReasonCode::MALFORMED_PACKET,
        );
        by.check();
        abuse(
            &broker,
            protocol,
            &[0xC1, 0x00],
            ReasonCode::MALFORMED_PACKET,
        );
        by.check();
        let mut unsub = vec![0xA0, 0, 0x00, 0x01];
        unsub.extend_from_slice(props);
        unsub.extend_from_slice(&[0x00, 0x01, b'a']);
        unsub[1] = (unsub.len() - 2) as u8;
        abuse(&broker, protocol, &unsub, ReasonCode::MALFORMED_PACKET);
        by.check();
    }
}

/// PUBLISH with QoS 3 [MQTT-3.3.1-4] or DUP on QoS 0 [MQTT-3.3.1-2] is malformed.
#[test]
fn publish_qos3_and_dup_qos0_close_mqtt_3_3_1_4() {
    let broker = Broker::start();
    let mut by = Bystander::new(&broker);
    for protocol in [Protocol::V311, Protocol::V5] {
        let v5 = protocol.is_v5();
        let mut q3 = vec![0x36, 0, 0x00, 0x01, b'a', 0x00, 0x01];
        if v5 {
            q3.push(0);
        }
        q3[1] = (q3.len() - 2) as u8;
        abuse(&broker, protocol, &q3, ReasonCode::MALFORMED_PACKET);
        by.check();
        let mut dup0 = vec![0x38, 0, 0x00, 0x01, b'a'];
        if v5 {
            dup0.push(0);
        }
        dup0[1] = (dup0.len() - 2) as u8;
        abuse(&broker, protocol, &dup0, ReasonCode::MALFORMED_PACKET);
        by.check();
    }
}

/// Bad UTF-8 in a topic name [MQTT-1.5.3-1] and U+0000 [MQTT-1.5.3-2] are malformed
/// (0x81); the connection closes, others keep working.
#[test]
fn bad_utf8_topic_closes_mqtt_1_5_3_1() {
    let broker = Broker::start();
    let mut by = Bystander::new(&broker);
    for protocol in [Protocol::V311, Protocol::V5] {
        for topic in [
            &[b'a', 0xC3, 0x28][..],
            &[b'a', 0xED, 0xA0, 0x80],
            &[b'a', 0x00],
        ] {
            let mut m = vec![0x30, 0];
            m.extend_from_slice(&(topic.len() as u16).to_be_bytes());
            m.extend_from_slice(topic);
            if protocol.is_v5() {
                m.push(0);
            }
            m.extend_from_slice(b"payload");
            m[1] = (m.len() - 2) as u8;
            abuse(&broker, protocol, &m, ReasonCode::MALFORMED_PACKET);
            by.check();
        }
        // In a SUBSCRIBE filter too.
        let mut s = vec![0x82, 0, 0x00, 0x01];
        if protocol.is_v5() {
            s.push(0);
        }
        s.extend_from_slice(&[0x00, 0x02, 0xFF, 0xFE, 0x00]);
        s[1] = (s.len() - 2) as u8;
        abuse(&broker, protocol, &s, ReasonCode::MALFORMED_PACKET);
        by.check();
    }
}

/// Wildcards in a topic name [MQTT-3.3.2-2] → 5.0 DISCONNECT 0x90 (Topic Name invalid).
#[test]
fn wildcard_in_topic_name_disconnect_0x90_mqtt_3_3_2_2() {
    let broker = Broker::start();
    let mut by = Bystander::new(&broker);
    for topic in ["a/+", "a/#", "#", "+"] {
        let bytes = encode(
            &Packet::Publish(publish(topic, b"x", QoS::AtMostOnce)),
            Protocol::V5,
        );
        abuse(
            &broker,
            Protocol::V5,
            &bytes,
            ReasonCode::TOPIC_NAME_INVALID,
        );
        by.check();
        let bytes = encode(
            &Packet::Publish(publish(topic, b"x", QoS::AtMostOnce)),
            Protocol::V311,
        );
        abuse(
            &broker,
            Protocol::V311,
            &bytes,
            ReasonCode::TOPIC_NAME_INVALID,
        );
        by.check();
    }
}

/// Invalid topic filters [MQTT-4.7.1-1, -2]: `a/#/b`, `a+`, `#a` in SUBSCRIBE close the
/// connection (5.0: 0x8F Topic Filter invalid).
#[test]
fn invalid_topic_filter_mqtt_4_7_1_1() {
    let broker = Broker::start();
    let mut by = Bystander::new(&broker);
    for filter in ["a/#/b", "a+", "#a", "a/b#", ""] {
        let s = Subscribe {
            packet_id: 1,
            filters: vec![SubscribeFilter {
                filter: filter.into(),
                options: SubscriptionOptions::qos(QoS::AtMostOnce),
            }],
            ..Subscribe::default()
        };
        let bytes = encode(&Packet::Subscribe(s), Protocol::V5);
        abuse(
            &broker,
            Protocol::V5,
            &bytes,
            ReasonCode::TOPIC_FILTER_INVALID,
        );
        by.check();
    }
}

/// SUBSCRIBE without filters [MQTT-3.8.3-3 (3.1.1) / protocol error (5.0)], packet id 0
/// [MQTT-2.3.1-1], a remaining length over 4 bytes [MQTT-1.5.5 / §2.2.3], an unknown packet
/// type 0, a truncated packet body: each closes the connection.
#[test]
fn structural_errors_close_connection() {
    let broker = Broker::start();
    let mut by = Bystander::new(&broker);
    // SUBSCRIBE id 1, no filters (3.1.1).
    abuse(
        &broker,
        Protocol::V311,
        &[0x82, 0x02, 0x00, 0x01],
        ReasonCode::PROTOCOL_ERROR,
    );
    by.check();
    abuse(
        &broker,
        Protocol::V5,
        &[0x82, 0x03, 0x00, 0x01, 0x00],
        ReasonCode::PROTOCOL_ERROR,
    );
    by.check();
    // QoS 1 PUBLISH with packet id 0.
    abuse(
        &broker,
        Protocol::V311,
        &[0x32, 0x05, 0x00, 0x01, b'a', 0x00, 0x00],
        ReasonCode::PROTOCOL_ERROR,
    );
    by.check();
    abuse(
        &broker,
        Protocol::V5,
        &[0x32, 0x06, 0x00, 0x01, b'a', 0x00, 0x00, 0x00],
        ReasonCode::PROTOCOL_ERROR,
    );
    by.check();
    // Remaining length with five bytes.
    abuse(
        &broker,
        Protocol::V5,
        &[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01],
        ReasonCode::MALFORMED_PACKET,
    );
    by.check();
    // Packet type 0.
    abuse(
        &broker,
        Protocol::V5,
        &[0x00, 0x00],
        ReasonCode::MALFORMED_PACKET,
    );
    by.check();
    // PUBACK whose length cuts the packet id.
    abuse(
        &broker,
        Protocol::V5,
        &[0x40, 0x01, 0x00],
        ReasonCode::MALFORMED_PACKET,
    );
    by.check();
    // A PUBLISH topic length running past the packet.
    abuse(
        &broker,
        Protocol::V311,
        &[0x30, 0x03, 0x00, 0x09, b'a'],
        ReasonCode::MALFORMED_PACKET,
    );
    by.check();
    // AUTH from a 3.1.1 client.
    abuse(
        &broker,
        Protocol::V311,
        &[0xF0, 0x00],
        ReasonCode::MALFORMED_PACKET,
    );
    by.check();
    // Server-only packets from a client: CONNACK, SUBACK (5.0: protocol error).
    abuse(
        &broker,
        Protocol::V5,
        &[0x20, 0x03, 0x00, 0x00, 0x00],
        ReasonCode::PROTOCOL_ERROR,
    );
    by.check();
}

/// 5.0 property errors: a property not allowed in PUBLISH (Session Expiry) is malformed
/// (0x81); a duplicate single property is a protocol error (0x82) (§2.2.2.2, §3.3.2.3).
#[test]
fn bad_properties_close_connection() {
    let broker = Broker::start();
    let mut by = Bystander::new(&broker);
    // PUBLISH "a" QoS 0, properties: Session Expiry Interval (0x11) = 1.
    abuse(
        &broker,
        Protocol::V5,
        &[
            0x30, 0x09, 0x00, 0x01, b'a', 0x05, 0x11, 0x00, 0x00, 0x00, 0x01,
        ],
        ReasonCode::MALFORMED_PACKET,
    );
    by.check();
    // PUBLISH with Content Type twice.
    abuse(
        &broker,
        Protocol::V5,
        &[
            0x30, 0x0C, 0x00, 0x01, b'a', 0x08, 0x03, 0x00, 0x01, b'x', 0x03, 0x00, 0x01, b'y',
        ],
        ReasonCode::PROTOCOL_ERROR,
    );
    by.check();
}

/// `max_topic_bytes` / `max_topic_levels`: PUBLISH over them → DISCONNECT 0x90; SUBSCRIBE
/// over them → SUBACK 0x8F (3.1.1: 0x80), the connection stays.
#[test]
fn topic_length_and_level_limits() {
    let broker = Broker::with_config("[limits]\nmax_topic_bytes = 32\nmax_topic_levels = 4\n");
    let mut by = Bystander::new(&broker);
    let long = "x".repeat(40);
    let deep = "a/b/c/d/e";
    for topic in [long.as_str(), deep] {
        let bytes = encode(
            &Packet::Publish(publish(topic, b"x", QoS::AtMostOnce)),
            Protocol::V5,
        );
        abuse(
            &broker,
            Protocol::V5,
            &bytes,
            ReasonCode::TOPIC_NAME_INVALID,
        );
        by.check();
        let mut c = broker.v5(&unique("s"));
        let ack = c.subscribe(topic, QoS::AtMostOnce);
        assert_eq!(ack.reason_codes, vec![ReasonCode::TOPIC_FILTER_INVALID]);
        c.ping();
        let mut c = broker.v311(&unique("s3"));
        let ack = c.subscribe(topic, QoS::AtMostOnce);
        assert_eq!(ack.reason_codes, vec![ReasonCode::UNSPECIFIED_ERROR]);
        c.ping();
    }
    // At the limit: fine.
    let mut c = broker.v5(&unique("ok"));
    c.sub("a/b/c/d", QoS::AtMostOnce);
    c.publish("a/b/c/d", b"ok", QoS::AtMostOnce, false);
    c.recv_publish();
}

/// `max_subscriptions_per_client`: a subscription over the quota gets 0x97 (3.1.1: 0x80);
/// replacing an existing one is still allowed.
#[test]
fn subscription_quota() {
    let broker = Broker::with_config("[limits]\nmax_subscriptions_per_client = 2\n");
    let mut c = broker.v5(&unique("q"));
    c.sub("q/1", QoS::AtMostOnce);
    c.sub("q/2", QoS::AtMostOnce);
    assert_eq!(
        c.subscribe("q/3", QoS::AtMostOnce).reason_codes,
        vec![ReasonCode::QUOTA_EXCEEDED]
    );
    c.sub("q/2", QoS::AtLeastOnce);
    c.unsubscribe("q/1");
    c.sub("q/3", QoS::AtMostOnce);
    let mut c = broker.v311(&unique("q3"));
    c.sub("q/1", QoS::AtMostOnce);
    c.sub("q/2", QoS::AtMostOnce);
    assert_eq!(
        c.subscribe("q/3", QoS::AtMostOnce).reason_codes,
        vec![ReasonCode::UNSPECIFIED_ERROR]
    );
}

/// A client that connects and never sends anything is not served, and dozens of half-open
/// and garbage connections do not disturb the broker.
#[test]
fn garbage_connections_do_not_disturb_others() {
    let broker = Broker::start();
    let mut by = Bystander::new(&broker);
    let mut idle: Vec<Client> = (0..20).map(|_| broker.raw()).collect();
    for (i, c) in idle.iter_mut().enumerate() {
        // A complete frame (type byte, length 62, body) that is not a valid CONNECT.
        let mut garbage: Vec<u8> = vec![((i * 37) as u8) & 0xF0 | 0x01, 62];
        garbage.extend((0..62).map(|j| (i * 31 + j * 17) as u8));
        if i % 2 == 0 {
            c.send_raw(&garbage);
        }
    }
    by.check();
    for c in idle.iter_mut().step_by(2) {
        c.expect_closed();
    }
    by.check();
}

/// Attempts connections one at a time; those refused must get CONNACK 0x97 Quota exceeded
/// and be closed. Returns the accepted ones.
fn connect_up_to_limit(broker: &Broker, attempts: usize, prefix: &str) -> Vec<Client> {
    let mut accepted = Vec::new();
    for _ in 0..attempts {
        let (mut c, ack) = broker.connect(connect_v5(&unique(prefix), true, 0));
        if ack.reason_code == ReasonCode::SUCCESS {
            accepted.push(c);
        } else {
            assert_eq!(ack.reason_code, ReasonCode::QUOTA_EXCEEDED);
            c.expect_closed();
        }
    }
    accepted
}

/// `max_connections` counts connections on all shards together: exactly that many are
/// accepted however the kernel spreads them over the two shards; the rest get CONNACK 0x97
/// Quota exceeded (3.1.1: 0x03 Server unavailable) and are closed; once clients leave, new
/// ones are accepted again.
#[test]
fn max_connections_refused_with_quota_exceeded() {
    let broker = Broker::with_config("[limits]\nmax_connections = 3\n");
    let accepted = connect_up_to_limit(&broker, 12, "mc");
    assert_eq!(accepted.len(), 3, "accepted with max_connections = 3");
    let mut raw = broker.raw();
    raw.send(&Packet::Connect(Box::new(Connect::new(
        Protocol::V311,
        unique("mc311"),
    ))));
    assert_eq!(raw.read_raw(4, WAIT), [0x20, 0x02, 0x00, 0x03]);
    drop(raw);
    for c in accepted {
        c.disconnect();
    }
    std::thread::sleep(std::time::Duration::from_millis(100));
    let again = connect_up_to_limit(&broker, 6, "mc-again");
    assert_eq!(again.len(), 3, "accepted again after the first three left");
}

/// A reconnecting client moves to the shard that holds its session (half the time the
/// other shard); it still counts once, on whichever shard it ends up: with four sessions
/// resumed the broker is full, and each one that leaves frees exactly one place.
#[test]
fn max_connections_counts_connections_moved_to_their_session() {
    let broker = Broker::with_config("[limits]\nmax_connections = 4\n");
    let ids: Vec<String> = (0..4).map(|_| unique("mc-moved")).collect();
    for id in &ids {
        let (c, ack) = broker.connect(connect_v5(id, true, 300));
        assert_eq!(ack.reason_code, ReasonCode::SUCCESS);
        c.disconnect();
    }
    std::thread::sleep(std::time::Duration::from_millis(100));
    for round in 0..3 {
        let mut resumed = Vec::new();
        for id in &ids {
            let (c, ack) = broker.connect(connect_v5(id, false, 300));
            assert_eq!(ack.reason_code, ReasonCode::SUCCESS, "round {round}");
            assert!(ack.session_present, "round {round}");
            resumed.push(c);
        }
        assert!(
            connect_up_to_limit(&broker, 4, "mc-extra").is_empty(),
            "round {round}: accepted beyond max_connections = 4"
        );
        resumed.pop().expect("four").disconnect();
        std::thread::sleep(std::time::Duration::from_millis(100));
        let one = connect_up_to_limit(&broker, 4, "mc-one");
        assert_eq!(
            one.len(),
            1,
            "round {round}: places freed by one disconnect"
        );
        drop(one);
        for c in resumed {
            c.disconnect();
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// A client still sending when the broker ends its connection reads the broker's reason
/// [MQTT-3.14.4-2]: the broker closes its side after the DISCONNECT and discards what
/// follows (lingering close), so the client's writes succeed and its reads end in EOF.
/// Closing with input unread would reset the connection: the writes below would fail, and
/// a client library reporting the error first never sees 0x95 (paho: "Unspecified error").
/// The drain is bounded: a client that never stops sending is cut off within seconds.
#[test]
fn a_client_still_sending_reads_the_disconnect_before_the_close() {
    let broker = Broker::with_config("[limits]\nmax_packet_bytes = 1024\n");
    let (mut c, _) = broker.connect(Connect::new(Protocol::V5, unique("sender")));
    // A PUBLISH announcing 16 MiB (more than the sockets buffer), then its body in 64 KiB
    // writes.
    let mut packet = vec![0x30];
    let mut remaining = 16usize << 20;
    loop {
        let byte = (remaining % 128) as u8;
        remaining /= 128;
        packet.push(if remaining > 0 { byte | 0x80 } else { byte });
        if remaining == 0 {
            break;
        }
    }
    c.try_send_raw(&packet).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    for i in 0..256 {
        c.try_send_raw(&chunk)
            .unwrap_or_else(|e| panic!("write {i} after the broker's DISCONNECT: {e}"));
    }
    let rest = c.read_to_close().expect("a clean close (EOF), not a reset");
    assert_eq!(rest[0], 0xE0, "DISCONNECT: {rest:02x?}");
    assert_eq!(rest[2], ReasonCode::PACKET_TOO_LARGE.0, "{rest:02x?}");

    // A client that keeps sending is closed once the drain's bound passes.
    let (mut c, _) = broker.connect(Connect::new(Protocol::V5, unique("endless")));
    c.try_send_raw(&packet).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let cut = loop {
        if c.try_send_raw(&chunk).is_err() {
            break true;
        }
        if std::time::Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(cut, "still draining after 20 s");
}

/// Open descriptors of a process (Linux).
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// `limits.close_timeout_secs`: a client that sends DISCONNECT and then reads nothing, while
/// the broker still has output for it, does not hold its socket and session forever. The
/// socket is shut down after the timeout (`close_timeouts`), the session detaches, and a QoS
/// 1 message that arrived meanwhile is delivered on the next connection [MQTT-3.1.2-5].
#[test]
fn closing_connection_that_never_reads_is_shut_down_after_close_timeout() {
    let broker = Broker::with_config("sys_interval_secs = 1\n[limits]\nclose_timeout_secs = 1\n");
    let id = unique("unread");
    let topic = unique("unread/t");
    let mut p = broker.v311(&unique("pub"));
    let baseline = open_fds(broker.pid());
    let (mut c, _) = broker.connect(connect_v5(&id, true, 300));
    c.sub(&topic, QoS::AtLeastOnce);
    back_up_output(&mut p, &topic);
    c.send(&Packet::Disconnect(Disconnect::new(ReasonCode::SUCCESS)));
    std::thread::sleep(Duration::from_millis(200));
    p.publish(&topic, b"kept", QoS::AtLeastOnce, false);
    assert_eq!(
        open_fds(broker.pid()),
        baseline + 1,
        "the unread socket is open"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while open_fds(broker.pid()) > baseline && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        open_fds(broker.pid()),
        baseline,
        "the socket of a client that never reads is closed after close_timeout_secs"
    );
    assert!(wait_counter(&broker, "close_timeouts", 1) >= 1);
    drop(c);
    let (mut c, ack) = broker.connect(connect_v5(&id, false, 300));
    assert!(ack.session_present);
    let m = c.recv_publish();
    assert_eq!(&m.payload[..], b"kept");
    c.expect_nothing();
}

/// The shard's receive pool survives clients that go away in every way, and what it
/// delivers stays intact across its buffers' ends. Where the kernel allows it (Linux 6.12+)
/// receives take only part of a pool buffer and the shard tracks where each one starts (a
/// wrong start corrupts every packet after the first: this test fails then); a buffer lost
/// on a close would empty the 32-buffer pool within these 300 closes, with data in flight
/// on some of them. Then payloads that cross many buffer boundaries (the pool is 8 MiB)
/// must arrive byte for byte.
#[test]
fn receive_pool_survives_closes_and_keeps_payloads_intact() {
    use std::os::fd::AsRawFd;
    let broker = Broker::start();
    let mut by = Bystander::new(&broker);
    for round in 0..3 {
        let mut clients: Vec<Client> = (0..100)
            .map(|i| broker.v311(&unique(&format!("closer{round}-{i}"))))
            .collect();
        for (i, c) in clients.iter_mut().enumerate() {
            if i % 3 == 0 {
                // Part of a PUBLISH: the connection holds an incomplete packet when it goes.
                c.send_raw(&[0x30, 20, 0, 3, b'a', b'/', b'b']);
            }
            if i % 2 == 0 {
                let off = libc::linger {
                    l_onoff: 1,
                    l_linger: 0,
                };
                // SAFETY: a valid socket and a `linger` of the right size: close sends RST.
                unsafe {
                    libc::setsockopt(
                        c.stream.tcp().as_raw_fd(),
                        libc::SOL_SOCKET,
                        libc::SO_LINGER,
                        &off as *const libc::linger as *const libc::c_void,
                        std::mem::size_of::<libc::linger>() as libc::socklen_t,
                    )
                };
            }
        }
        drop(clients);
        by.check();
    }
    // 12 MiB through the pool in messages of sizes that do not divide its buffers.
    let topic = unique("pool");
    let mut sub = broker.v5(&unique("pool-sub"));
    sub.sub(&topic, QoS::AtLeastOnce);
    let mut publ = broker.v311(&unique("pool-pub"));
    let mut sent = 0usize;
    for (n, size) in [1usize, 77, 1_000, 4_093, 16_385, 100_003, 300_007]
        .iter()
        .cycle()
        .enumerate()
    {
        if sent > 12 << 20 {
            break;
        }
        let payload: Vec<u8> = (0..*size).map(|j| (n * 131 + j * 7) as u8).collect();
        publ.publish(&topic, &payload, QoS::AtLeastOnce, false);
        let got = sub.recv_publish();
        assert_eq!(got.payload.len(), payload.len(), "message {n}");
        assert!(
            got.payload[..] == payload[..],
            "message {n} of {size} B corrupted"
        );
        sent += size;
    }
    by.check();
}
