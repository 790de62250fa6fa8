//! PUBLISH / SUBSCRIBE flows against the real broker (two shards): QoS 0/1/2, packet ids,
//! exactly-once, ordering, the in-flight window, topic matching, retained messages.

mod common;

use common::*;

/// QoS 0, 1 and 2 end to end for 3.1.1 and 5.0 [MQTT-4.3.1-1, MQTT-4.3.2-1, MQTT-4.3.3-1]:
/// QoS 1/2 deliveries carry a non-zero packet id [MQTT-2.3.1-1] and complete their flows.
#[test]
fn qos_0_1_2_round_trip_mqtt_4_3() {
    let broker = Broker::start();
    for protocol in [Protocol::V311, Protocol::V5] {
        let topic = unique("qos/t");
        let mut sub = broker.connect(Connect::new(protocol, unique("sub"))).0;
        sub.sub(&topic, QoS::ExactlyOnce);
        let mut publ = broker.connect(Connect::new(protocol, unique("pub"))).0;
        for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
            let payload = format!("{protocol:?}-{qos:?}");
            publ.publish(&topic, payload.as_bytes(), qos, false);
            let got = sub.recv_publish();
            assert_eq!(got.qos, qos);
            assert_eq!(got.topic, topic.as_str());
            assert_eq!(&got.payload[..], payload.as_bytes());
            assert!(!got.retain && !got.dup);
            if qos == QoS::AtMostOnce {
                assert_eq!(got.packet_id, 0);
            } else {
                assert_ne!(got.packet_id, 0);
            }
        }
        sub.expect_nothing();
    }
}

/// 3.1.1 acknowledgements are byte exact: PUBACK `40 02 id`, PUBREC `50 02 id`, PUBCOMP
/// `70 02 id` [MQTT-3.4, 3.5, 3.7], and PUBREL from the server is `62 02 id` [MQTT-3.6.1-1].
#[test]
fn v311_acks_byte_exact_mqtt_3_6_1_1() {
    let broker = Broker::start();
    let topic = unique("acks");
    let mut sub = broker.v311(&unique("sub"));
    sub.sub(&topic, QoS::ExactlyOnce);
    let mut c = broker.v311(&unique("pub"));
    let mut p = publish(&topic, b"1", QoS::AtLeastOnce);
    p.packet_id = 0x1234;
    c.send(&Packet::Publish(p));
    assert_eq!(c.read_raw(4, WAIT), [0x40, 0x02, 0x12, 0x34]);
    let mut p = publish(&topic, b"2", QoS::ExactlyOnce);
    p.packet_id = 0x0102;
    c.send(&Packet::Publish(p));
    assert_eq!(c.read_raw(4, WAIT), [0x50, 0x02, 0x01, 0x02]);
    c.send_raw(&[0x62, 0x02, 0x01, 0x02]);
    assert_eq!(c.read_raw(4, WAIT), [0x70, 0x02, 0x01, 0x02]);
    // The subscriber's side of QoS 2: PUBREC → PUBREL bytes.
    sub.recv_publish();
    let got = match sub.wait_for("PUBLISH", |p| matches!(p, Packet::Publish(_))) {
        Packet::Publish(p) => p,
        _ => unreachable!(),
    };
    assert_eq!(got.qos, QoS::ExactlyOnce);
    let id = got.packet_id.to_be_bytes();
    sub.send_raw(&[0x50, 0x02, id[0], id[1]]);
    assert_eq!(sub.read_raw(4, WAIT), [0x62, 0x02, id[0], id[1]]);
    sub.send_raw(&[0x70, 0x02, id[0], id[1]]);
    sub.expect_nothing();
}

/// The delivered QoS is the minimum of the published QoS and the granted QoS
/// [MQTT-3.8.4-8] (5.0) / §3.8.4 (3.1.1).
#[test]
fn delivered_qos_is_minimum_mqtt_3_8_4_8() {
    let broker = Broker::start();
    let topic = unique("min");
    let mut s0 = broker.v5(&unique("s0"));
    s0.sub(&topic, QoS::AtMostOnce);
    let mut s1 = broker.v5(&unique("s1"));
    s1.sub(&topic, QoS::AtLeastOnce);
    let mut p = broker.v5(&unique("p"));
    p.publish(&topic, b"q2", QoS::ExactlyOnce, false);
    assert_eq!(s0.recv_publish().qos, QoS::AtMostOnce);
    assert_eq!(s1.recv_publish().qos, QoS::AtLeastOnce);
    p.publish(&topic, b"q0", QoS::AtMostOnce, false);
    assert_eq!(s1.recv_publish().qos, QoS::AtMostOnce);
}

/// Exactly once [MQTT-4.3.3-10] (5.0) / [MQTT-4.3.3-2] (3.1.1): a QoS 2 PUBLISH repeated
/// with the same packet id before PUBREL is acknowledged again but delivered once; after
/// PUBREL the id starts a new message.
#[test]
fn qos2_duplicate_before_pubrel_delivered_once_mqtt_4_3_3_10() {
    let broker = Broker::start();
    for protocol in [Protocol::V311, Protocol::V5] {
        let topic = unique("eo");
        let mut sub = broker.connect(Connect::new(protocol, unique("sub"))).0;
        sub.sub(&topic, QoS::ExactlyOnce);
        let mut c = broker.connect(Connect::new(protocol, unique("pub"))).0;
        let mut p = publish(&topic, b"once", QoS::ExactlyOnce);
        p.packet_id = 9;
        c.send(&Packet::Publish(p.clone()));
        c.wait_for(
            "PUBREC",
            |x| matches!(x, Packet::PubRec(a) if a.packet_id == 9),
        );
        p.dup = true;
        c.send(&Packet::Publish(p.clone()));
        c.send(&Packet::Publish(p.clone()));
        c.wait_for(
            "PUBREC",
            |x| matches!(x, Packet::PubRec(a) if a.packet_id == 9),
        );
        c.wait_for(
            "PUBREC",
            |x| matches!(x, Packet::PubRec(a) if a.packet_id == 9),
        );
        c.send(&Packet::PubRel(PubResponse::new(9)));
        c.wait_for(
            "PUBCOMP",
            |x| matches!(x, Packet::PubComp(a) if a.packet_id == 9),
        );
        assert_eq!(&sub.recv_publish().payload[..], b"once");
        sub.expect_nothing();
        // Same id after PUBCOMP: a new message.
        let mut p2 = publish(&topic, b"again", QoS::ExactlyOnce);
        p2.packet_id = 9;
        c.publish_packet(p2);
        assert_eq!(&sub.recv_publish().payload[..], b"again");
    }
}

/// A PUBREL for an unknown packet id is answered with PUBCOMP (5.0: reason 0x92)
/// [MQTT-4.3.3-11 context], and the connection stays.
#[test]
fn pubrel_unknown_id_gets_pubcomp() {
    let broker = Broker::start();
    let mut c = broker.v5(&unique("rel"));
    c.send(&Packet::PubRel(PubResponse::new(77)));
    match c.expect_packet() {
        Packet::PubComp(a) => {
            assert_eq!(a.packet_id, 77);
            assert_eq!(a.reason_code, ReasonCode::PACKET_IDENTIFIER_NOT_FOUND);
        }
        other => panic!("{other:?}"),
    }
    c.ping();
}

/// Ordering [MQTT-4.6.0-6]: 1000 QoS 1 messages from one publisher on one topic arrive in
/// the order sent (3.1.1 and 5.0 subscribers), pipelined without waiting for PUBACKs.
#[test]
fn ordering_1000_qos1_in_order_mqtt_4_6_0_6() {
    let broker = Broker::start();
    let topic = unique("order");
    let mut subs: Vec<Client> = (0..4)
        .map(|i| {
            let proto = if i % 2 == 0 {
                Protocol::V311
            } else {
                Protocol::V5
            };
            let mut c = broker.connect(Connect::new(proto, unique("osub"))).0;
            c.sub(&topic, QoS::AtLeastOnce);
            c
        })
        .collect();
    let mut p = broker.v311(&unique("opub"));
    let n = 1000u32;
    let mut bytes = Vec::new();
    for i in 0..n {
        let mut m = publish(&topic, &i.to_be_bytes(), QoS::AtLeastOnce);
        m.packet_id = (i % 60000 + 1) as u16;
        bytes.extend(encode(&Packet::Publish(m), Protocol::V311));
    }
    p.send_raw(&bytes);
    for s in &mut subs {
        for i in 0..n {
            let got = s.recv_publish();
            assert_eq!(
                u32::from_be_bytes(got.payload[..4].try_into().unwrap()),
                i,
                "out of order"
            );
        }
    }
    let mut acks = 0;
    while acks < n {
        match p.expect_packet() {
            Packet::PubAck(_) => acks += 1,
            other => panic!("{other:?}"),
        }
    }
}

/// The in-flight window is bounded by the client's Receive Maximum [MQTT-3.3.4-9]: with
/// Receive Maximum 2 only two QoS 1/2 PUBLISH are unacknowledged; each ack lets one more
/// through, and nothing is lost.
#[test]
fn inflight_window_bounded_by_receive_maximum_mqtt_3_3_4_9() {
    let broker = Broker::start();
    let topic = unique("win");
    let mut connect = Connect::new(Protocol::V5, unique("win-sub"));
    connect.properties.receive_maximum = Some(2);
    let (mut sub, _) = broker.connect(connect);
    sub.sub(&topic, QoS::ExactlyOnce);
    let mut p = broker.v5(&unique("win-pub"));
    for i in 0..6u8 {
        let qos = if i % 2 == 0 {
            QoS::AtLeastOnce
        } else {
            QoS::ExactlyOnce
        };
        p.publish(&topic, &[i], qos, false);
    }
    let a = sub.expect_publish();
    let b = sub.expect_publish();
    assert_eq!((a.payload[0], b.payload[0]), (0, 1));
    sub.expect_nothing();
    // QoS 1 acked: one more.
    sub.ack(&a);
    let c = sub.expect_publish();
    assert_eq!(c.payload[0], 2);
    sub.expect_nothing();
    // QoS 2: PUBREC frees the slot only at PUBCOMP? MQTT 5 §4.9 counts until PUBCOMP.
    sub.ack(&b);
    let d = sub.expect_publish();
    assert_eq!(d.payload[0], 3);
    sub.expect_nothing();
    sub.ack(&c);
    sub.ack(&d);
    let e = sub.recv_publish();
    let f = sub.recv_publish();
    assert_eq!((e.payload[0], f.payload[0]), (4, 5));
    sub.expect_nothing();
}

/// The broker's `max_inflight` caps the window of 3.1.1 clients too (they announce no
/// Receive Maximum).
#[test]
fn inflight_window_capped_by_max_inflight_v311() {
    let broker = Broker::with_config("[limits]\nmax_inflight = 3\n");
    let topic = unique("cap");
    let mut sub = broker.v311(&unique("cap-sub"));
    sub.sub(&topic, QoS::AtLeastOnce);
    let mut p = broker.v311(&unique("cap-pub"));
    for i in 0..5u8 {
        p.publish(&topic, &[i], QoS::AtLeastOnce, false);
    }
    let first: Vec<Publish> = (0..3).map(|_| sub.expect_publish()).collect();
    sub.expect_nothing();
    for m in &first {
        sub.ack(m);
    }
    assert_eq!(sub.recv_publish().payload[0], 3);
    assert_eq!(sub.recv_publish().payload[0], 4);
}

/// Topic matching [MQTT-4.7.1-2, MQTT-4.7.1-3]: `#` includes the parent level, `+` matches
/// exactly one level (also an empty one), and filters are case sensitive [MQTT-4.7.3-4].
#[test]
fn wildcard_matching_mqtt_4_7_1() {
    let broker = Broker::start();
    let root = unique("m");
    let mut s = broker.v5(&unique("wild"));
    s.sub(&format!("{root}/a/#"), QoS::AtMostOnce);
    let mut s2 = broker.v5(&unique("plus"));
    s2.sub(&format!("{root}/+/c"), QoS::AtMostOnce);
    let mut p = broker.v5(&unique("p"));
    for (topic, hash, plus) in [
        (format!("{root}/a"), true, false),
        (format!("{root}/a/b/c"), true, false),
        (format!("{root}/a/c"), true, true),
        (format!("{root}//c"), false, true),
        (format!("{root}/A/c"), false, true),
        (format!("{root}/b/c/d"), false, false),
        (format!("{root}/A"), false, false),
    ] {
        p.publish(&topic, topic.as_bytes(), QoS::AtMostOnce, false);
        p.ping();
        if hash {
            assert_eq!(s.recv_publish().topic, topic.as_str());
        }
        if plus {
            assert_eq!(s2.recv_publish().topic, topic.as_str());
        }
    }
    s.expect_nothing();
    s2.expect_nothing();
}

/// `$` topics [MQTT-4.7.2-1]: `#` and `+/...` do not match topics starting with `$`; a
/// filter starting with `$` does.
#[test]
fn dollar_topics_not_matched_by_wildcards_mqtt_4_7_2_1() {
    let broker = Broker::start();
    let mut all = broker.v5(&unique("all"));
    all.sub("#", QoS::AtMostOnce);
    let mut plus = broker.v5(&unique("plus"));
    plus.sub("+/x", QoS::AtMostOnce);
    plus.sub("+", QoS::AtMostOnce);
    let mut dollar = broker.v5(&unique("dollar"));
    dollar.sub("$test/#", QoS::AtMostOnce);
    let mut p = broker.v5(&unique("p"));
    p.publish("$test/x", b"d", QoS::AtMostOnce, false);
    p.publish("$SYS", b"d", QoS::AtMostOnce, false);
    assert_eq!(dollar.recv_publish().topic, "$test/x");
    all.expect_nothing();
    plus.expect_nothing();
    p.publish("plain/x", b"p", QoS::AtMostOnce, false);
    assert_eq!(all.recv_publish().topic, "plain/x");
    assert_eq!(plus.recv_publish().topic, "plain/x");
}

/// Overlapping subscriptions of one client [MQTT-3.3.5-1 (3.1.1) / MQTT-3.3.4-2 (5.0)]:
/// the message is delivered once (no duplicates across the overlap), with the highest
/// granted QoS.
#[test]
fn overlapping_subscriptions_deliver_once_with_max_qos() {
    let broker = Broker::start();
    let root = unique("ov");
    let mut s = broker.v311(&unique("ov-sub"));
    s.sub(&format!("{root}/#"), QoS::AtMostOnce);
    s.sub(&format!("{root}/+"), QoS::ExactlyOnce);
    s.sub(&format!("{root}/x"), QoS::AtLeastOnce);
    let mut p = broker.v311(&unique("ov-pub"));
    p.publish(&format!("{root}/x"), b"1", QoS::ExactlyOnce, false);
    let got = s.recv_publish();
    assert_eq!(got.qos, QoS::ExactlyOnce);
    s.expect_nothing();
}

/// A repeated SUBSCRIBE to the same filter replaces the subscription [MQTT-3.8.4-3]: one
/// delivery, with the new QoS.
#[test]
fn resubscribe_replaces_subscription_mqtt_3_8_4_3() {
    let broker = Broker::start();
    let topic = unique("re");
    let mut s = broker.v5(&unique("re-sub"));
    s.sub(&topic, QoS::AtMostOnce);
    s.sub(&topic, QoS::AtLeastOnce);
    let mut p = broker.v5(&unique("re-pub"));
    p.publish(&topic, b"x", QoS::ExactlyOnce, false);
    assert_eq!(s.recv_publish().qos, QoS::AtLeastOnce);
    s.expect_nothing();
}

/// UNSUBSCRIBE stops delivery [MQTT-3.10.4-1]; UNSUBACK carries one reason per filter in
/// 5.0, 0x11 for a filter that was not subscribed [MQTT-3.11.3-1].
#[test]
fn unsubscribe_stops_delivery_mqtt_3_10_4_1() {
    let broker = Broker::start();
    let topic = unique("un");
    let mut s = broker.v5(&unique("un-sub"));
    s.sub(&topic, QoS::AtLeastOnce);
    let ack = s.unsubscribe(&topic);
    assert_eq!(ack.reason_codes, vec![ReasonCode::SUCCESS]);
    let ack = s.unsubscribe(&topic);
    assert_eq!(ack.reason_codes, vec![ReasonCode::NO_SUBSCRIPTION_EXISTED]);
    let mut p = broker.v5(&unique("un-pub"));
    p.publish(&topic, b"x", QoS::AtLeastOnce, false);
    s.expect_nothing();
    // 3.1.1 UNSUBACK is exactly `b0 02 id`.
    let mut c = broker.v311(&unique("un311"));
    c.send_raw(&[0xA2, 0x05, 0x00, 0x2A, 0x00, 0x01, b'z']);
    assert_eq!(c.read_raw(4, WAIT), [0xB0, 0x02, 0x00, 0x2A]);
}

/// One SUBSCRIBE with several filters gets one SUBACK with a code per filter, in order
/// [MQTT-3.8.4-4, MQTT-3.9.3-1]; 3.1.1 bytes are exact.
#[test]
fn suback_codes_in_order_mqtt_3_9_3_1() {
    let broker = Broker::start();
    let mut c = broker.v311(&unique("multi"));
    // SUBSCRIBE id 5: "a" QoS 2, "b" QoS 0, "c" QoS 1.
    c.send_raw(&[
        0x82, 0x0E, 0x00, 0x05, 0x00, 0x01, b'a', 0x02, 0x00, 0x01, b'b', 0x00, 0x00, 0x01, b'c',
        0x01,
    ]);
    assert_eq!(
        c.read_raw(7, WAIT),
        [0x90, 0x05, 0x00, 0x05, 0x02, 0x00, 0x01]
    );
}

/// Retained messages [MQTT-3.3.1-5..11 (3.1.1)]: stored, sent to new subscribers with
/// RETAIN 1, replaced by the next retained message (QoS 0 too), deleted by an empty
/// payload, and live deliveries to existing subscriptions have RETAIN 0 (3.1.1).
#[test]
fn retained_set_replace_delete_mqtt_3_3_1_5_to_11() {
    let broker = Broker::start();
    let topic = unique("ret");
    let mut p = broker.v311(&unique("ret-pub"));
    let mut live = broker.v311(&unique("ret-live"));
    live.sub(&topic, QoS::AtLeastOnce);
    p.publish(&topic, b"one", QoS::AtLeastOnce, true);
    let got = live.recv_publish();
    assert!(
        !got.retain,
        "[MQTT-3.3.1-9]: live delivery has RETAIN 0 in 3.1.1"
    );
    let mut s = broker.v311(&unique("ret-new"));
    s.sub(&topic, QoS::AtLeastOnce);
    let got = s.recv_publish();
    assert!(got.retain, "[MQTT-3.3.1-8]");
    assert_eq!(&got.payload[..], b"one");
    assert_eq!(got.qos, QoS::AtLeastOnce);
    // Replaced, by a QoS 0 message too [MQTT-3.3.1-7].
    p.publish(&topic, b"two", QoS::AtMostOnce, true);
    p.ping();
    let mut s = broker.v311(&unique("ret-new2"));
    s.sub(&topic, QoS::AtLeastOnce);
    let got = s.recv_publish();
    assert_eq!(&got.payload[..], b"two");
    assert_eq!(got.qos, QoS::AtMostOnce);
    s.expect_nothing();
    // Deleted by an empty retained message [MQTT-3.3.1-10/11], which existing subscribers
    // still receive [MQTT-3.3.1-12 (5.0: 3.3.1-6)].
    let mut before = broker.v311(&unique("ret-before"));
    before.sub(&topic, QoS::AtLeastOnce);
    before.recv_publish();
    p.publish(&topic, b"", QoS::AtLeastOnce, true);
    let got = before.recv_publish();
    assert!(got.payload.is_empty());
    let mut s = broker.v311(&unique("ret-gone"));
    s.sub(&topic, QoS::AtLeastOnce);
    s.expect_nothing();
    // A non-retained publish does not touch the retained message.
    p.publish(&topic, b"keep", QoS::AtLeastOnce, true);
    p.publish(&topic, b"transient", QoS::AtLeastOnce, false);
    let mut s = broker.v311(&unique("ret-keep"));
    s.sub(&topic, QoS::AtLeastOnce);
    assert_eq!(&s.recv_publish().payload[..], b"keep");
    s.expect_nothing();
}

/// Retained messages match wildcard filters; many retained topics, one wildcard
/// subscription gets each exactly once [MQTT-3.3.1-6].
#[test]
fn retained_wildcard_subscribe_gets_all_mqtt_3_3_1_6() {
    let broker = Broker::start();
    let root = unique("rw");
    let mut p = broker.v5(&unique("rw-pub"));
    let n = 20;
    for i in 0..n {
        p.publish(
            &format!("{root}/{i}/v"),
            format!("{i}").as_bytes(),
            QoS::AtLeastOnce,
            true,
        );
    }
    p.publish(&format!("{root}/other"), b"no", QoS::AtLeastOnce, true);
    let mut s = broker.v5(&unique("rw-sub"));
    s.sub(&format!("{root}/+/v"), QoS::AtLeastOnce);
    let mut seen: Vec<String> = (0..n).map(|_| s.recv_publish().topic.to_string()).collect();
    s.expect_nothing();
    seen.sort();
    let mut want: Vec<String> = (0..n).map(|i| format!("{root}/{i}/v")).collect();
    want.sort();
    assert_eq!(seen, want);
}

/// 3.1.1 has no Receive Maximum: a client may have any number of QoS 2 PUBLISH awaiting
/// PUBREL (bounded by the packet id space) and must not be disconnected for it
/// [MQTT-4.3.3 (3.1.1): no such limit; only 5.0 §3.3.4 allows DISCONNECT 0x93]. Here: 300
/// pipelined before the first PUBREL, more than the default `max_inflight` of 256.
#[test]
fn v311_many_qos2_awaiting_pubrel_not_disconnected() {
    let broker = Broker::start();
    let topic = unique("q2burst");
    let mut sub = broker.v311(&unique("sub"));
    sub.sub(&topic, QoS::AtMostOnce);
    let mut c = broker.v311(&unique("burst"));
    let mut bytes = Vec::new();
    for id in 1..=300u16 {
        let mut m = publish(&topic, &id.to_be_bytes(), QoS::ExactlyOnce);
        m.packet_id = id;
        bytes.extend(encode(&Packet::Publish(m), Protocol::V311));
    }
    c.send_raw(&bytes);
    for id in 1..=300u16 {
        match c.expect_packet() {
            Packet::PubRec(a) => assert_eq!(a.packet_id, id),
            other => panic!("expected PUBREC {id}, got {other:?}"),
        }
    }
    for id in 1..=300u16 {
        c.send(&Packet::PubRel(PubResponse::new(id)));
        c.wait_for(
            "PUBCOMP",
            |p| matches!(p, Packet::PubComp(a) if a.packet_id == id),
        );
    }
    for id in 1..=300u16 {
        assert_eq!(sub.recv_publish().payload[..], id.to_be_bytes());
    }
}
