//! CONNECT / CONNACK against the real broker (two shards): validation, return and reason
//! codes, client identifiers, Clean Start / Session Present, keep alive.

mod common;

use common::*;
use std::time::{Duration, Instant};

/// [MQTT-3.2.2-1]/[MQTT-3.2.2-3]: a 3.1.1 CONNACK accepting a clean session is exactly
/// `20 02 00 00`.
#[test]
fn connack_v311_byte_exact_mqtt_3_2_2_1() {
    let broker = Broker::start();
    let mut c = broker.raw();
    c.send_raw(&raw_connect(b"MQTT", 4, 0x02, b"exact"));
    assert_eq!(c.read_raw(4, WAIT), vec![0x20, 0x02, 0x00, 0x00]);
    c.expect_nothing();
}

/// [MQTT-3.1.0-1]: the first packet must be CONNECT, otherwise the connection is closed.
#[test]
fn first_packet_not_connect_is_closed_mqtt_3_1_0_1() {
    let broker = Broker::start();
    let mut c = broker.raw();
    c.send_raw(&[0xC0, 0x00]); // PINGREQ
    assert!(
        c.expect_closed().is_empty(),
        "nothing is sent before closing"
    );
    let mut c = broker.raw();
    c.send(&Packet::Publish(publish("a/b", b"x", QoS::AtMostOnce)));
    assert!(c.expect_closed().is_empty());
    // An incomplete frame is enough: its first byte says it is not a CONNECT, so the
    // connection closes now, long before the CONNECT deadline (10 s by default).
    let mut c = broker.raw();
    let started = Instant::now();
    c.send_raw(&[0x30, 0x7F, 0x00]); // PUBLISH announcing 127 bytes, 1 sent
    assert!(c.expect_closed().is_empty());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "closed only at the deadline"
    );
    // The broker still serves others.
    broker.v311(&unique("after")).ping();
}

/// [MQTT-3.1.0-2]: a second CONNECT is a protocol violation: closed (MQTT 5: DISCONNECT 0x82).
#[test]
fn second_connect_closes_mqtt_3_1_0_2() {
    let broker = Broker::start();
    let mut c = broker.v311(&unique("twice"));
    c.send(&Packet::Connect(Box::new(Connect::new(
        Protocol::V311,
        "again",
    ))));
    let seen = c.expect_closed();
    assert!(
        seen.is_empty(),
        "3.1.1 has no DISCONNECT from the server: {seen:?}"
    );

    let mut c = broker.v5(&unique("twice5"));
    c.send(&Packet::Connect(Box::new(Connect::new(
        Protocol::V5,
        "again",
    ))));
    c.expect_disconnect(ReasonCode::PROTOCOL_ERROR);
}

/// [MQTT-3.1.2-2] (3.1.1): an unsupported protocol level gets CONNACK return code 0x01 and
/// the connection is closed. (5.0 §3.1.2.2 allows CONNACK 0x84; a level the server does not
/// speak is answered in the 3.1.1 format, which every client version can read.)
#[test]
fn unsupported_protocol_level_connack_0x01_mqtt_3_1_2_2() {
    let broker = Broker::start();
    for level in [3u8, 6, 0x7f] {
        let mut c = broker.raw();
        c.send_raw(&raw_connect(b"MQTT", level, 0x02, b"lvl"));
        let bytes = c.read_raw(4, WAIT);
        assert!(
            bytes == [0x20, 0x02, 0x00, 0x01] || bytes.starts_with(&[0x20, 0x03, 0x00, 0x84]),
            "level {level}: expected CONNACK 0x01 (3.1.1) or 0x84 (5.0), got {bytes:02x?}"
        );
        c.expect_closed();
    }
}

/// [MQTT-3.1.2-1]: a protocol name other than "MQTT" (or 3.1's "MQIsdp") closes the
/// connection.
#[test]
fn bad_protocol_name_is_closed_mqtt_3_1_2_1() {
    let broker = Broker::start();
    let mut c = broker.raw();
    c.send_raw(&raw_connect(b"MQTX", 4, 0x02, b"name"));
    let seen = c.expect_closed();
    assert!(
        seen.iter()
            .all(|p| matches!(p, Packet::ConnAck(a) if a.reason_code.is_error())),
        "{seen:?}"
    );
}

/// [MQTT-3.1.2-3]: the reserved CONNECT flag must be 0, otherwise the connection closes.
#[test]
fn reserved_connect_flag_closes_mqtt_3_1_2_3() {
    let broker = Broker::start();
    let mut c = broker.raw();
    c.send_raw(&raw_connect(b"MQTT", 4, 0x03, b"rsv"));
    assert!(c.expect_closed().is_empty());
}

/// [MQTT-3.1.2-13]/[MQTT-3.1.2-15]: Will QoS / Will Retain set without the Will flag, and
/// [MQTT-3.1.2-14] Will QoS 3, are malformed: the connection closes.
#[test]
fn bad_will_flags_close_mqtt_3_1_2_13_14_15() {
    let broker = Broker::start();
    for flags in [0x02 | 0x08, 0x02 | 0x20, 0x02 | 0x04 | 0x18] {
        let mut c = broker.raw();
        c.send_raw(&raw_connect(b"MQTT", 4, flags, b"willflags"));
        assert!(c.expect_closed().is_empty(), "flags {flags:#04x}");
    }
}

/// [MQTT-3.1.2-22] (3.1.1): a password without a user name is malformed.
#[test]
fn password_without_username_v311_closes_mqtt_3_1_2_22() {
    let broker = Broker::start();
    let mut frame = raw_connect(b"MQTT", 4, 0x02 | 0x40, b"pw");
    frame.extend_from_slice(&[0x00, 0x02, b'p', b'w']);
    frame[1] += 4;
    let mut c = broker.raw();
    c.send_raw(&frame);
    assert!(c.expect_closed().is_empty());
}

/// [MQTT-3.1.3-8] (3.1.1): an empty client id with Clean Session 0 gets CONNACK 0x02
/// (`20 02 00 02`) and the connection closes.
#[test]
fn empty_client_id_without_clean_session_v311_rejected_mqtt_3_1_3_8() {
    let broker = Broker::start();
    let mut c = broker.raw();
    c.send_raw(&raw_connect(b"MQTT", 4, 0x00, b""));
    assert_eq!(c.read_raw(4, WAIT), vec![0x20, 0x02, 0x00, 0x02]);
    assert!(c.expect_closed().is_empty());
}

/// [MQTT-3.1.3-6]/[MQTT-3.1.3-7] (3.1.1): an empty client id with Clean Session 1 is
/// accepted, and the client works.
#[test]
fn empty_client_id_with_clean_session_v311_accepted_mqtt_3_1_3_6() {
    let broker = Broker::start();
    let (mut c, ack) = broker.connect(connect_v311("", true));
    assert_eq!(ack.reason_code, ReasonCode::SUCCESS);
    assert!(!ack.session_present);
    let topic = unique("anon");
    c.sub(&topic, QoS::AtLeastOnce);
    c.publish(&topic, b"hi", QoS::AtLeastOnce, false);
    assert_eq!(&c.recv_publish().payload[..], b"hi");
}

/// [MQTT-3.1.3-6] (5.0)/[MQTT-3.2.2-16]: an empty client id is assigned one, returned as
/// Assigned Client Identifier; two clients get different ids.
#[test]
fn empty_client_id_v5_assigned_mqtt_3_2_2_16() {
    let broker = Broker::start();
    let (mut a, ack_a) = broker.connect(Connect::new(Protocol::V5, ""));
    let (_b, ack_b) = broker.connect(Connect::new(Protocol::V5, ""));
    assert_eq!(ack_a.reason_code, ReasonCode::SUCCESS);
    let id_a = ack_a
        .properties
        .assigned_client_identifier
        .expect("assigned id");
    let id_b = ack_b
        .properties
        .assigned_client_identifier
        .expect("assigned id");
    assert!(!id_a.is_empty());
    assert_ne!(id_a, id_b);
    let topic = unique("assigned");
    a.sub(&topic, QoS::AtMostOnce);
    a.publish(&topic, b"x", QoS::AtMostOnce, false);
    a.recv_publish();
    // A named client gets no Assigned Client Identifier.
    let (_c, ack) = broker.connect(Connect::new(Protocol::V5, unique("named")));
    assert!(ack.properties.assigned_client_identifier.is_none());
}

/// MQTT 5 CONNACK announces the broker's limits: Receive Maximum (max_inflight), Maximum
/// Packet Size (max_packet_bytes) and Topic Alias Maximum [MQTT-3.2.2-17..22 context].
#[test]
fn v5_connack_properties_announce_limits() {
    let broker = Broker::with_config(
        "[limits]\nmax_inflight = 7\nmax_packet_bytes = 5000\ntopic_alias_maximum = 9\n",
    );
    let (_c, ack) = broker.connect(Connect::new(Protocol::V5, unique("props")));
    assert_eq!(ack.properties.receive_maximum, Some(7));
    assert_eq!(ack.properties.maximum_packet_size, Some(5000));
    assert_eq!(ack.properties.topic_alias_maximum, Some(9));
}

/// [MQTT-3.2.2-1] (3.1.1 clean session) / [MQTT-3.2.2-2] (5.0 clean start): a clean
/// connection always has Session Present 0; [MQTT-3.1.2-6]: and the old session is gone.
#[test]
fn clean_start_discards_session_mqtt_3_1_2_6() {
    let broker = Broker::start();
    let id = unique("clean");
    let topic = unique("clean/t");
    let (mut c, ack) = broker.connect(connect_v311(&id, false));
    assert!(!ack.session_present);
    c.sub(&topic, QoS::AtLeastOnce);
    c.disconnect();
    let (c, ack) = broker.connect(connect_v311(&id, true));
    assert!(!ack.session_present, "clean session must not resume");
    c.disconnect();
    // The subscription went with the session.
    let (mut c, ack) = broker.connect(connect_v311(&id, false));
    assert!(!ack.session_present);
    let mut p = broker.v311(&unique("pub"));
    p.publish(&topic, b"x", QoS::AtLeastOnce, false);
    c.expect_nothing();
}

/// [MQTT-3.2.2-2] (3.1.1): Clean Session 0 with a stored session resumes it: Session
/// Present 1, subscriptions kept.
#[test]
fn persistent_session_v311_session_present_mqtt_3_2_2_2() {
    let broker = Broker::start();
    let id = unique("persist311");
    let topic = unique("p311/t");
    let (mut c, _) = broker.connect(connect_v311(&id, false));
    c.sub(&topic, QoS::AtLeastOnce);
    c.disconnect();
    let (mut c, ack) = broker.connect(connect_v311(&id, false));
    assert!(ack.session_present);
    let mut p = broker.v311(&unique("pub"));
    p.publish(&topic, b"kept", QoS::AtLeastOnce, false);
    assert_eq!(&c.recv_publish().payload[..], b"kept");
}

/// [MQTT-3.2.2-3] (5.0): Clean Start 0 without a stored session: Session Present 0.
#[test]
fn resume_without_session_has_session_present_0() {
    let broker = Broker::start();
    let (_c, ack) = broker.connect(connect_v5(&unique("nosess"), false, 60));
    assert_eq!(ack.reason_code, ReasonCode::SUCCESS);
    assert!(!ack.session_present);
}

/// [MQTT-4.12.0-1]: an Authentication Method the server does not support gets CONNACK
/// 0x8C (Bad authentication method) and the connection closes.
#[test]
fn unsupported_auth_method_connack_0x8c() {
    let broker = Broker::start();
    let mut connect = Connect::new(Protocol::V5, unique("auth"));
    connect.properties.authentication_method = Some("SCRAM-SHA-1".into());
    let (mut c, ack) = broker.connect(connect);
    assert_eq!(ack.reason_code, ReasonCode::BAD_AUTHENTICATION_METHOD);
    c.expect_closed();
}

/// Packets sent right behind CONNECT (before CONNACK arrives) are processed in order
/// after it [MQTT-3.1.4-5 context: the server processes them once accepted].
#[test]
fn packets_pipelined_after_connect_are_processed_in_order() {
    let broker = Broker::start();
    let topic = unique("pipe");
    let mut c = broker.raw();
    c.protocol = Protocol::V5;
    let mut bytes = encode(
        &Packet::Connect(Box::new(Connect::new(Protocol::V5, unique("pipe")))),
        Protocol::V5,
    );
    bytes.extend(encode(
        &Packet::Subscribe(Subscribe {
            packet_id: 1,
            filters: vec![SubscribeFilter {
                filter: topic.as_str().into(),
                options: SubscriptionOptions::qos(QoS::AtLeastOnce),
            }],
            ..Subscribe::default()
        }),
        Protocol::V5,
    ));
    let mut p = publish(&topic, b"self", QoS::AtLeastOnce);
    p.packet_id = 2;
    bytes.extend(encode(&Packet::Publish(p), Protocol::V5));
    c.send_raw(&bytes);
    assert!(
        matches!(c.expect_packet(), Packet::ConnAck(a) if a.reason_code == ReasonCode::SUCCESS)
    );
    assert!(matches!(c.expect_packet(), Packet::SubAck(a) if a.packet_id == 1));
    let got = c.recv_publish();
    assert_eq!(&got.payload[..], b"self");
    c.wait_for(
        "PUBACK",
        |p| matches!(p, Packet::PubAck(a) if a.packet_id == 2),
    );
}

/// Server Keep Alive (5.0 §3.2.2.3.14): with `max_keepalive_secs`, a client asking for more
/// (or for 0) is told the server's value [MQTT-3.2.2-21]. A 3.1.1 client cannot be told: one
/// asking for more (or for 0) is refused with return code 2 (as mosquitto does) instead of
/// being cut off later as if it had died, and one within the cap keeps its own value.
#[test]
fn server_keep_alive_lowers_requested_keepalive_mqtt_3_2_2_21() {
    let broker = Broker::with_config("[limits]\nmax_keepalive_secs = 1\n");
    for keep_alive_secs in [600, 0] {
        let mut connect = Connect::new(Protocol::V311, unique("ka311"));
        connect.keep_alive_secs = keep_alive_secs;
        let (_c, ack) = broker.connect(connect);
        assert_eq!(
            ack.reason_code,
            ReasonCode::CLIENT_IDENTIFIER_NOT_VALID,
            "3.1.1 keep alive {keep_alive_secs}"
        );
    }
    let mut connect = Connect::new(Protocol::V311, unique("ka311-ok"));
    connect.keep_alive_secs = 1;
    let (mut within, ack) = broker.connect(connect);
    assert_eq!(ack.reason_code, ReasonCode::SUCCESS);
    within.ping();
    let mut connect = Connect::new(Protocol::V5, unique("ka"));
    connect.keep_alive_secs = 600;
    let (mut c, ack) = broker.connect(connect);
    assert_eq!(ack.properties.server_keep_alive, Some(1));
    let mut connect = Connect::new(Protocol::V5, unique("ka0"));
    connect.keep_alive_secs = 0;
    let (_c0, ack) = broker.connect(connect);
    assert_eq!(ack.properties.server_keep_alive, Some(1));
    // Within the limit: no Server Keep Alive.
    let broker2 = Broker::with_config("[limits]\nmax_keepalive_secs = 100\n");
    let mut connect = Connect::new(Protocol::V5, unique("ka-ok"));
    connect.keep_alive_secs = 30;
    let (_c2, ack) = broker2.connect(connect);
    assert_eq!(ack.properties.server_keep_alive, None);
    // The server enforces its own value: silent for 1.5 s → DISCONNECT 0x8D.
    c.expect_disconnect(ReasonCode::KEEP_ALIVE_TIMEOUT);
}

/// [MQTT-3.1.2-24]: the server closes a connection silent for 1.5 × keep alive; 3.1.1 gets
/// no DISCONNECT, 5.0 gets DISCONNECT 0x8D; a client that pings stays.
#[test]
fn keepalive_timeout_closes_mqtt_3_1_2_24() {
    let broker = Broker::start();
    let mut c311 = {
        let mut connect = Connect::new(Protocol::V311, unique("ka311"));
        connect.keep_alive_secs = 1;
        broker.connect(connect).0
    };
    let mut c5 = {
        let mut connect = Connect::new(Protocol::V5, unique("ka5"));
        connect.keep_alive_secs = 1;
        broker.connect(connect).0
    };
    let mut alive = {
        let mut connect = Connect::new(Protocol::V5, unique("ka-alive"));
        connect.keep_alive_secs = 1;
        broker.connect(connect).0
    };
    let start = std::time::Instant::now();
    let mut closed311 = false;
    let mut closed5 = false;
    while start.elapsed() < Duration::from_secs(4) && !(closed311 && closed5) {
        alive.ping();
        if !closed311 {
            if let Recv::Closed = c311.recv(Duration::from_millis(200)) {
                closed311 = true;
            }
        }
        if !closed5 {
            match c5.recv(Duration::from_millis(200)) {
                Recv::Packet(Packet::Disconnect(d)) => {
                    assert_eq!(d.reason_code, ReasonCode::KEEP_ALIVE_TIMEOUT);
                    c5.expect_closed();
                    closed5 = true;
                }
                Recv::Closed => panic!("5.0 connection closed without DISCONNECT 0x8D"),
                Recv::Packet(p) => panic!("unexpected {p:?}"),
                Recv::Timeout => {}
            }
        }
    }
    assert!(
        closed311 && closed5,
        "keep alive 1 s: both must be closed within 4 s"
    );
    assert!(
        start.elapsed() >= Duration::from_millis(1000),
        "closed before 1.5 x keep alive: {:?}",
        start.elapsed()
    );
    alive.ping();
}

/// Keep alive 0 turns the mechanism off [MQTT-3.1.2-23 context]: a silent client stays.
#[test]
fn keepalive_zero_is_never_timed_out() {
    let broker = Broker::start();
    let mut connect = Connect::new(Protocol::V311, unique("ka-off"));
    connect.keep_alive_secs = 0;
    let (mut c, _) = broker.connect(connect);
    c.expect_nothing_for(Duration::from_millis(1800));
    c.ping();
}
