//! MQTT 5 features against the real broker (two shards): Topic Alias both ways, Message
//! Expiry, Subscription Identifiers, No Local, Retain Handling / Retain As Published,
//! properties passed through, Maximum Packet Size, server-sent DISCONNECT reasons and the
//! SIGTERM shutdown.

mod common;

use bytes::Bytes;
use common::*;
use std::time::Duration;

/// Client → server Topic Alias (§3.3.2.3.4): a PUBLISH with topic + alias sets the alias,
/// later PUBLISH with an empty topic use it; subscribers always see the full topic name.
#[test]
fn topic_alias_client_to_server_mqtt_3_3_2_12() {
    let broker = Broker::start();
    let topic = unique("alias/in");
    let mut sub = broker.v5(&unique("sub"));
    sub.sub(&topic, QoS::AtLeastOnce);
    let mut p = broker.v5(&unique("pub"));
    let mut m = publish(&topic, b"1", QoS::AtLeastOnce);
    m.properties.topic_alias = Some(3);
    p.publish_packet(m);
    let mut m = publish("", b"2", QoS::AtLeastOnce);
    m.properties.topic_alias = Some(3);
    p.publish_packet(m);
    for want in [&b"1"[..], b"2"] {
        let got = sub.recv_publish();
        assert_eq!(got.topic, topic.as_str());
        assert_eq!(&got.payload[..], want);
        assert_eq!(got.properties.topic_alias, None);
    }
    // Re-mapping the alias to another topic [MQTT-3.3.2-12 context].
    let other = unique("alias/other");
    sub.sub(&other, QoS::AtLeastOnce);
    let mut m = publish(&other, b"3", QoS::AtLeastOnce);
    m.properties.topic_alias = Some(3);
    p.publish_packet(m);
    let mut m = publish("", b"4", QoS::AtLeastOnce);
    m.properties.topic_alias = Some(3);
    p.publish_packet(m);
    assert_eq!(sub.recv_publish().topic, other.as_str());
    assert_eq!(sub.recv_publish().topic, other.as_str());
}

/// Topic Alias errors close the connection: an alias above the server's Topic Alias
/// Maximum → DISCONNECT 0x94 [MQTT-3.3.2-9]; an empty topic with an alias that was never
/// set → 0x82 [MQTT-3.3.2-10 context]; alias 0 → 0x94 [MQTT-3.3.2-8].
#[test]
fn topic_alias_errors_mqtt_3_3_2_8_9() {
    let broker = Broker::with_config("[limits]\ntopic_alias_maximum = 4\n");
    let mut c = broker.v5(&unique("a1"));
    let mut m = publish("a/b", b"x", QoS::AtMostOnce);
    m.properties.topic_alias = Some(5);
    c.send(&Packet::Publish(m));
    c.expect_disconnect(ReasonCode::TOPIC_ALIAS_INVALID);

    let mut c = broker.v5(&unique("a2"));
    let mut m = publish("", b"x", QoS::AtMostOnce);
    m.properties.topic_alias = Some(2);
    c.send(&Packet::Publish(m));
    c.expect_disconnect(ReasonCode::PROTOCOL_ERROR);

    let mut c = broker.v5(&unique("a3"));
    // PUBLISH "a" QoS 0, properties: Topic Alias (0x23) = 0.
    c.send_raw(&[0x30, 0x07, 0x00, 0x01, b'a', 0x03, 0x23, 0x00, 0x00]);
    c.expect_disconnect(ReasonCode::TOPIC_ALIAS_INVALID);

    // Topic Alias Maximum 0: no alias is allowed.
    let broker = Broker::with_config("[limits]\ntopic_alias_maximum = 0\n");
    let (mut c, ack) = broker.connect(Connect::new(Protocol::V5, unique("a4")));
    assert_eq!(ack.properties.topic_alias_maximum, None);
    let mut m = publish("a/b", b"x", QoS::AtMostOnce);
    m.properties.topic_alias = Some(1);
    c.send(&Packet::Publish(m));
    c.expect_disconnect(ReasonCode::TOPIC_ALIAS_INVALID);
}

/// Server → client Topic Alias: only when the client announced Topic Alias Maximum
/// [MQTT-3.3.2-9/10 context: the server MUST NOT send an alias above it, nor any without
/// it]; the first PUBLISH carries topic + alias, the next ones only the alias.
#[test]
fn topic_alias_server_to_client() {
    let broker = Broker::start();
    let root = unique("alias/out");
    let mut connect = Connect::new(Protocol::V5, unique("aliased"));
    connect.properties.topic_alias_maximum = Some(2);
    let (mut sub, _) = broker.connect(connect);
    sub.sub(&format!("{root}/#"), QoS::AtMostOnce);
    let mut plain = broker.v5(&unique("plain"));
    plain.sub(&format!("{root}/#"), QoS::AtMostOnce);
    let mut p = broker.v5(&unique("pub"));
    let topics: Vec<String> = (0..4).map(|i| format!("{root}/{i}")).collect();
    let mut map = std::collections::HashMap::new();
    let mut alias_only = 0;
    for _round in 0..2 {
        for t in &topics {
            p.publish(t, b"x", QoS::AtMostOnce, false);
            let got = sub.recv_publish();
            let resolved = match got.properties.topic_alias {
                Some(a) => {
                    assert!(
                        (1..=2).contains(&a),
                        "alias {a} above the client's maximum 2"
                    );
                    if got.topic.is_empty() {
                        alias_only += 1;
                        map.get(&a).cloned().expect("alias used before it was set")
                    } else {
                        map.insert(a, got.topic.to_string());
                        got.topic.to_string()
                    }
                }
                None => got.topic.to_string(),
            };
            assert_eq!(&resolved, t);
            let got = plain.recv_publish();
            assert_eq!(
                got.properties.topic_alias, None,
                "client without Topic Alias Maximum"
            );
            assert_eq!(got.topic, t.as_str());
        }
    }
    assert!(!map.is_empty(), "the broker never used a topic alias");
    assert!(
        alias_only > 0,
        "the broker never sent a PUBLISH with the alias only"
    );
}

/// Message Expiry [MQTT-3.3.2-5]: a queued message whose interval passed while the
/// subscriber was offline is not delivered; [MQTT-3.3.2-6]: a delivered one carries the
/// remaining interval, lowered by the time it waited.
#[test]
fn message_expiry_mqtt_3_3_2_5_and_6() {
    let broker = Broker::start();
    let id = unique("exp");
    let topic = unique("exp/t");
    let (mut c, _) = broker.connect(connect_v5(&id, true, 300));
    c.sub(&topic, QoS::AtLeastOnce);
    c.disconnect();
    let mut p = broker.v5(&unique("pub"));
    let mut short = publish(&topic, b"short", QoS::AtLeastOnce);
    short.properties.message_expiry_interval = Some(1);
    p.publish_packet(short);
    let mut long = publish(&topic, b"long", QoS::AtLeastOnce);
    long.properties.message_expiry_interval = Some(20);
    p.publish_packet(long);
    std::thread::sleep(Duration::from_millis(2100));
    let (mut c, ack) = broker.connect(connect_v5(&id, false, 300));
    assert!(ack.session_present);
    let got = c.recv_publish();
    assert_eq!(&got.payload[..], b"long");
    let left = got
        .properties
        .message_expiry_interval
        .expect("remaining expiry");
    assert!(
        (1..=18).contains(&left),
        "remaining interval {left} not decremented"
    );
    c.expect_nothing();
    // A live delivery keeps (about) the original interval.
    let mut m = publish(&topic, b"live", QoS::AtLeastOnce);
    m.properties.message_expiry_interval = Some(100);
    p.publish_packet(m);
    let got = c.recv_publish();
    assert!(matches!(
        got.properties.message_expiry_interval,
        Some(99..=100)
    ));
}

/// Retained messages expire too [MQTT-3.3.2-5]: not sent to a new subscriber afterwards.
#[test]
fn retained_message_expires() {
    let broker = Broker::start();
    let topic = unique("rexp");
    let mut p = broker.v5(&unique("pub"));
    let mut m = publish(&topic, b"soon gone", QoS::AtLeastOnce);
    m.retain = true;
    m.properties.message_expiry_interval = Some(1);
    p.publish_packet(m);
    let mut s = broker.v5(&unique("early"));
    s.sub(&topic, QoS::AtLeastOnce);
    assert_eq!(&s.recv_publish().payload[..], b"soon gone");
    std::thread::sleep(Duration::from_millis(1300));
    let mut s = broker.v5(&unique("late"));
    s.sub(&topic, QoS::AtLeastOnce);
    s.expect_nothing();
}

/// Subscription Identifiers [MQTT-3.3.4-3, MQTT-3.3.4-4, MQTT-3.3.4-5 (5.0)]: a matching
/// PUBLISH carries the identifier of the subscription; overlapping subscriptions give one
/// PUBLISH with all identifiers or one PUBLISH per subscription; a subscription without an
/// identifier adds none; retained messages carry it too.
#[test]
fn subscription_identifiers_mqtt_3_3_4_3() {
    let broker = Broker::start();
    let root = unique("sid");
    let mut s = broker.v5(&unique("sub"));
    s.subscribe_opts(
        &format!("{root}/a"),
        SubscriptionOptions::qos(QoS::AtLeastOnce),
        Some(7),
    );
    s.subscribe_opts(
        &format!("{root}/+"),
        SubscriptionOptions::qos(QoS::AtLeastOnce),
        Some(300_000),
    );
    s.subscribe_opts(
        &format!("{root}/#"),
        SubscriptionOptions::qos(QoS::AtLeastOnce),
        None,
    );
    let mut p = broker.v5(&unique("pub"));
    p.publish(&format!("{root}/a"), b"x", QoS::AtLeastOnce, false);
    let first = s.recv_publish();
    let mut ids = first.properties.subscription_identifiers.clone();
    if let Recv::Packet(Packet::Publish(more)) = s.recv(Duration::from_millis(300)) {
        s.ack(&more);
        ids.extend(more.properties.subscription_identifiers.iter().copied());
        if let Recv::Packet(Packet::Publish(more)) = s.recv(Duration::from_millis(300)) {
            s.ack(&more);
            ids.extend(more.properties.subscription_identifiers.iter().copied());
        }
    }
    ids.sort();
    assert_eq!(ids, vec![7, 300_000]);
    // Only the `#` subscription (no id) matches a deeper topic.
    p.publish(&format!("{root}/a/b"), b"y", QoS::AtLeastOnce, false);
    let got = s.recv_publish();
    assert!(got.properties.subscription_identifiers.is_empty());
    s.expect_nothing();
    // Retained: the identifier of the new subscription.
    let rt = unique("sid-ret");
    p.publish(&rt, b"r", QoS::AtLeastOnce, true);
    let mut s2 = broker.v5(&unique("sub2"));
    s2.subscribe_opts(&rt, SubscriptionOptions::qos(QoS::AtLeastOnce), Some(42));
    let got = s2.recv_publish();
    assert!(got.retain);
    assert_eq!(got.properties.subscription_identifiers, vec![42]);
}

/// No Local [MQTT-3.8.3-3]: with No Local set the publisher's own messages are not sent
/// back to it; other subscribers (and its subscriptions without No Local) are not affected.
#[test]
fn no_local_mqtt_3_8_3_3() {
    let broker = Broker::start();
    let topic = unique("nl");
    let mut me = broker.v5(&unique("me"));
    me.subscribe_opts(
        &topic,
        sub_opts(QoS::AtLeastOnce, true, false, RetainHandling::OnSubscribe),
        None,
    );
    let mut other = broker.v5(&unique("other"));
    other.sub(&topic, QoS::AtLeastOnce);
    me.publish(&topic, b"mine", QoS::AtLeastOnce, false);
    assert_eq!(&other.recv_publish().payload[..], b"mine");
    me.expect_nothing();
    other.publish(&topic, b"theirs", QoS::AtLeastOnce, false);
    assert_eq!(&me.recv_publish().payload[..], b"theirs");
    assert_eq!(&other.recv_publish().payload[..], b"theirs");
    // No Local on a shared subscription is a protocol error [MQTT-3.8.3-4].
    let mut bad = broker.v5(&unique("bad"));
    bad.send(&Packet::Subscribe(Subscribe {
        packet_id: 1,
        filters: vec![SubscribeFilter {
            filter: format!("$share/g/{topic}").as_str().into(),
            options: sub_opts(QoS::AtMostOnce, true, false, RetainHandling::OnSubscribe),
        }],
        ..Subscribe::default()
    }));
    bad.expect_disconnect(ReasonCode::PROTOCOL_ERROR);
}

/// Retain Handling [MQTT-3.3.1-9, -10, -11 (5.0)]: 0 sends retained messages on every
/// SUBSCRIBE, 1 only when the subscription is new, 2 never.
#[test]
fn retain_handling_0_1_2_mqtt_3_3_1_9_to_11() {
    let broker = Broker::start();
    let topic = unique("rh");
    let mut p = broker.v5(&unique("pub"));
    p.publish(&topic, b"kept", QoS::AtLeastOnce, true);
    let mut s = broker.v5(&unique("sub"));
    let opts = |rh| sub_opts(QoS::AtLeastOnce, false, false, rh);
    // 0: each time.
    s.subscribe_opts(&topic, opts(RetainHandling::OnSubscribe), None);
    assert!(s.recv_publish().retain);
    s.subscribe_opts(&topic, opts(RetainHandling::OnSubscribe), None);
    assert!(s.recv_publish().retain);
    s.unsubscribe(&topic);
    // 1: new subscription only.
    s.subscribe_opts(&topic, opts(RetainHandling::OnNewSubscription), None);
    assert!(s.recv_publish().retain);
    s.subscribe_opts(&topic, opts(RetainHandling::OnNewSubscription), None);
    s.expect_nothing();
    s.unsubscribe(&topic);
    // 2: never.
    s.subscribe_opts(&topic, opts(RetainHandling::Never), None);
    s.expect_nothing();
    // Wildcard with 2 as well.
    let mut s2 = broker.v5(&unique("sub2"));
    s2.subscribe_opts("#", opts(RetainHandling::Never), None);
    s2.expect_nothing();
}

/// Retain As Published [MQTT-3.3.1-12, MQTT-3.3.1-13 (5.0)]: with it, live deliveries keep
/// RETAIN 1; without it RETAIN is 0. Retained messages sent on SUBSCRIBE always have 1.
#[test]
fn retain_as_published_mqtt_3_3_1_12_13() {
    let broker = Broker::start();
    let topic = unique("rap");
    let mut rap = broker.v5(&unique("rap"));
    rap.subscribe_opts(
        &topic,
        sub_opts(QoS::AtLeastOnce, false, true, RetainHandling::OnSubscribe),
        None,
    );
    let mut norap = broker.v5(&unique("norap"));
    norap.sub(&topic, QoS::AtLeastOnce);
    let mut p = broker.v5(&unique("pub"));
    p.publish(&topic, b"r", QoS::AtLeastOnce, true);
    assert!(rap.recv_publish().retain);
    assert!(!norap.recv_publish().retain);
    p.publish(&topic, b"n", QoS::AtLeastOnce, false);
    assert!(!rap.recv_publish().retain);
    assert!(!norap.recv_publish().retain);
}

/// Properties pass through unaltered [MQTT-3.3.2-4 payload format, MQTT-3.3.2-15/16
/// Response Topic / Correlation Data, MQTT-3.3.2-17/18 user properties in order,
/// MQTT-3.3.2-20 Content Type], to 5.0 subscribers on both shards; 3.1.1 subscribers get
/// the bare message.
#[test]
fn publish_properties_passed_through_mqtt_3_3_2_17() {
    let broker = Broker::start();
    let topic = unique("props");
    let mut subs: Vec<Client> = (0..4)
        .map(|_| {
            let mut c = broker.v5(&unique("sub"));
            c.sub(&topic, QoS::AtLeastOnce);
            c
        })
        .collect();
    let mut old = broker.v311(&unique("old"));
    old.sub(&topic, QoS::AtLeastOnce);
    let mut p = broker.v5(&unique("pub"));
    let mut m = publish(&topic, "héllo".as_bytes(), QoS::AtLeastOnce);
    let props = &mut m.properties;
    props.payload_format_indicator = Some(1);
    props.content_type = Some("text/plain; charset=utf-8".into());
    props.response_topic = Some("reply/here".into());
    props.correlation_data = Some(Bytes::from_static(&[0, 1, 2, 0xff]));
    props.user_properties = vec![
        ("z".into(), "1".into()),
        ("a".into(), "2".into()),
        ("z".into(), "3".into()),
    ];
    let sent = m.properties.clone();
    p.publish_packet(m);
    for s in &mut subs {
        let got = s.recv_publish();
        assert_eq!(
            got.properties.payload_format_indicator,
            sent.payload_format_indicator
        );
        assert_eq!(got.properties.content_type, sent.content_type);
        assert_eq!(got.properties.response_topic, sent.response_topic);
        assert_eq!(got.properties.correlation_data, sent.correlation_data);
        assert_eq!(got.properties.user_properties, sent.user_properties);
        assert_eq!(&got.payload[..], "héllo".as_bytes());
    }
    let got = old.recv_publish();
    assert_eq!(&got.payload[..], "héllo".as_bytes());
}

/// Maximum Packet Size, server → client [MQTT-3.1.2-24, MQTT-3.1.2-25]: a client that
/// announced 100 bytes never receives a larger PUBLISH (it is dropped for that client
/// only), smaller ones still arrive, and other clients get everything.
#[test]
fn client_maximum_packet_size_mqtt_3_1_2_25() {
    let broker = Broker::start();
    let topic = unique("mps");
    let mut connect = Connect::new(Protocol::V5, unique("small"));
    connect.properties.maximum_packet_size = Some(100);
    let (mut small, _) = broker.connect(connect);
    small.sub(&topic, QoS::AtLeastOnce);
    let mut big = broker.v5(&unique("big"));
    big.sub(&topic, QoS::AtLeastOnce);
    let mut p = broker.v5(&unique("pub"));
    p.publish(&topic, &[7u8; 200], QoS::AtLeastOnce, false);
    p.publish(&topic, &[1u8; 10], QoS::AtLeastOnce, false);
    p.publish(&topic, &[8u8; 90], QoS::AtMostOnce, false);
    let got = small.recv_publish();
    assert_eq!(got.payload.len(), 10);
    small.expect_nothing();
    assert_eq!(big.recv_publish().payload.len(), 200);
    assert_eq!(big.recv_publish().payload.len(), 10);
    assert_eq!(big.recv_publish().payload.len(), 90);
    // Retained messages too.
    let rt = unique("mps-ret");
    p.publish(&rt, &[9u8; 300], QoS::AtLeastOnce, true);
    small.sub(&rt, QoS::AtLeastOnce);
    small.expect_nothing();
}

/// Topic Alias with Maximum Packet Size [MQTT-3.1.2-25], §3.3.2.3.4: a PUBLISH dropped
/// because it is too large for the client must not leave behind the alias it would have set
/// up, or the next, smaller message on the topic arrives as an alias the client never
/// learned (a Protocol Error on the client's side).
#[test]
fn dropped_oversize_publish_sets_up_no_topic_alias() {
    let broker = Broker::start();
    let topic = unique("alias-mps");
    let mut connect = Connect::new(Protocol::V5, unique("small-aliased"));
    connect.properties.maximum_packet_size = Some(100);
    connect.properties.topic_alias_maximum = Some(4);
    let (mut small, _) = broker.connect(connect);
    small.sub(&topic, QoS::AtMostOnce);
    let mut p = broker.v5(&unique("pub"));
    // A property makes the broker write the full form, which is where aliases are set up.
    let mut big = Publish::new(topic.as_str(), vec![7u8; 200]);
    big.properties.content_type = Some("x".into());
    p.send(&Packet::Publish(big));
    for _ in 0..2 {
        let mut m = Publish::new(topic.as_str(), b"fits".to_vec());
        m.properties.content_type = Some("x".into());
        p.send(&Packet::Publish(m));
    }
    let first = small.recv_publish();
    assert_eq!(&first.payload[..], b"fits");
    assert_eq!(
        first.topic,
        topic.as_str(),
        "the first PUBLISH the client sees must name its topic (alias {:?})",
        first.properties.topic_alias
    );
    let second = small.recv_publish();
    assert_eq!(&second.payload[..], b"fits");
    if second.topic.is_empty() {
        assert_eq!(second.properties.topic_alias, first.properties.topic_alias);
    }
    small.expect_nothing();
}

/// Maximum Packet Size, client → server [MQTT-3.2.2-... §3.2.2.3.6 / §4.13]: a packet larger
/// than `max_packet_bytes` ends the connection with DISCONNECT 0x95 (3.1.1: closed); other
/// connections keep working.
#[test]
fn packet_too_large_disconnect_0x95() {
    let broker = Broker::with_config("[limits]\nmax_packet_bytes = 1024\n");
    let topic = unique("big");
    let mut bystander = broker.v5(&unique("by"));
    bystander.sub(&topic, QoS::AtLeastOnce);
    let (mut c, ack) = broker.connect(Connect::new(Protocol::V5, unique("large")));
    assert_eq!(ack.properties.maximum_packet_size, Some(1024));
    c.send(&Packet::Publish(publish(
        &topic,
        &[0u8; 2000],
        QoS::AtMostOnce,
    )));
    c.expect_disconnect(ReasonCode::PACKET_TOO_LARGE);
    let mut c = broker.v311(&unique("large311"));
    c.send(&Packet::Publish(publish(
        &topic,
        &[0u8; 2000],
        QoS::AtMostOnce,
    )));
    assert!(c.expect_closed().is_empty());
    // Exactly at the limit is fine.
    let mut ok = broker.v5(&unique("ok"));
    let mut m = publish(&topic, b"", QoS::AtLeastOnce);
    let overhead = m.encoded_len(Protocol::V5).unwrap();
    // The remaining length takes one more byte once the packet is over 127 bytes.
    let payload_len = 1024 - overhead - 1;
    m.payload = Bytes::from(vec![1u8; payload_len]);
    assert_eq!(m.encoded_len(Protocol::V5).unwrap(), 1024);
    ok.publish_packet(m);
    assert_eq!(bystander.recv_publish().payload.len(), payload_len);
}

/// Receive Maximum, client → server [§3.3.4 / §4.9]: more unacknowledged QoS 2 PUBLISH than
/// the broker's Receive Maximum (`max_inflight`) → DISCONNECT 0x93.
#[test]
fn receive_maximum_exceeded_disconnect_0x93() {
    let broker = Broker::with_config("[limits]\nmax_inflight = 2\n");
    let (mut c, ack) = broker.connect(Connect::new(Protocol::V5, unique("flood")));
    assert_eq!(ack.properties.receive_maximum, Some(2));
    for id in 1..=3u16 {
        let mut m = publish("rm/t", b"x", QoS::ExactlyOnce);
        m.packet_id = id;
        c.send(&Packet::Publish(m));
    }
    c.expect_disconnect(ReasonCode::RECEIVE_MAXIMUM_EXCEEDED);
    // Within the window (PUBREL frees a slot): fine.
    let mut c = broker.v5(&unique("fine"));
    for _ in 0..5 {
        c.publish("rm/t", b"x", QoS::ExactlyOnce, false);
    }
    c.ping();
}

/// SIGTERM: MQTT 5 clients get DISCONNECT 0x8B (Server shutting down), 3.1.1 clients are
/// closed, and the process exits with status 0.
#[test]
fn sigterm_sends_0x8b_and_exits_0() {
    let mut broker = Broker::start();
    let mut v5: Vec<Client> = (0..4).map(|_| broker.v5(&unique("v5"))).collect();
    let mut v3 = broker.v311(&unique("v3"));
    broker.signal(libc::SIGTERM);
    for c in &mut v5 {
        c.expect_disconnect(ReasonCode::SERVER_SHUTTING_DOWN);
    }
    assert!(v3.expect_closed().is_empty());
    let status = broker
        .wait_exit(Duration::from_secs(10))
        .expect("broker did not exit after SIGTERM");
    assert!(status.success(), "exit status {status:?}");
}

/// During the shutdown grace (while clients that do not read are still being flushed) the
/// broker no longer listens: a new client is refused by the kernel, not accepted and then
/// turned away with CONNACK 0x88. Before the fix its CONNECT got CONNACK 0x88.
#[test]
fn no_connection_is_accepted_during_the_shutdown_grace() {
    let mut broker = Broker::start();
    let topic = unique("grace");
    let mut reader_that_stopped = broker.v5(&unique("stopped"));
    reader_that_stopped.sub(&topic, QoS::AtMostOnce);
    let mut publisher = broker.v5(&unique("grace-pub"));
    back_up_output(&mut publisher, &topic);
    broker.signal(libc::SIGTERM);
    publisher.expect_disconnect(ReasonCode::SERVER_SHUTTING_DOWN);
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        broker.is_running(),
        "still flushing the client that does not read"
    );
    match std::net::TcpStream::connect(broker.addr) {
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}"),
        Ok(_) => {
            let (_, ack) = broker.connect(Connect::new(Protocol::V5, "late"));
            panic!("accepted during the shutdown grace: {ack:?}");
        }
    }
    let status = broker.wait_exit(Duration::from_secs(10)).expect("exit");
    assert!(status.success());
    drop(reader_that_stopped);
}

/// SIGINT behaves like SIGTERM.
#[test]
fn sigint_exits_0() {
    let mut broker = Broker::start();
    let mut c = broker.v5(&unique("c"));
    broker.signal(libc::SIGINT);
    c.expect_disconnect(ReasonCode::SERVER_SHUTTING_DOWN);
    let status = broker.wait_exit(Duration::from_secs(10)).expect("exit");
    assert!(status.success());
}

/// 5.0 §4.3.3 / §4.9: a PUBREC with an error reason (0x80 or above) from the receiver ends
/// the QoS 2 flow without PUBREL and frees its slot in the in-flight window.
#[test]
fn pubrec_error_ends_qos2_flow() {
    let broker = Broker::start();
    let topic = unique("recerr");
    let mut connect = Connect::new(Protocol::V5, unique("sub"));
    connect.properties.receive_maximum = Some(1);
    let (mut sub, _) = broker.connect(connect);
    sub.sub(&topic, QoS::ExactlyOnce);
    let mut p = broker.v5(&unique("pub"));
    p.publish(&topic, b"1", QoS::ExactlyOnce, false);
    p.publish(&topic, b"2", QoS::ExactlyOnce, false);
    let first = sub.expect_publish();
    sub.expect_nothing();
    let mut rec = PubResponse::new(first.packet_id);
    rec.reason_code = ReasonCode::UNSPECIFIED_ERROR;
    sub.send(&Packet::PubRec(rec));
    // No PUBREL; the next message takes the slot.
    let second = sub.expect_publish();
    assert_eq!(&second.payload[..], b"2");
    sub.ack(&second);
    sub.expect_nothing();
}
