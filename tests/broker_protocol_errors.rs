//! Protocol errors a client can make in well-formed packets, against the real broker (two
//! shards): each closes only that connection, MQTT 5 with the reason code the
//! specification names, and a bystander keeps receiving.

mod common;

use common::*;

/// §4.12: only a client that named an Authentication Method in its CONNECT may send AUTH;
/// this broker refuses such a CONNECT, so an AUTH after CONNACK is a Protocol Error (0x82).
/// DISCONNECT cannot carry 0x8C (§3.14.2.1).
#[test]
fn auth_after_connack_is_a_protocol_error() {
    let broker = Broker::start();
    let mut by = Bystander::new(&broker);
    abuse(
        &broker,
        Protocol::V5,
        &[0xF0, 0x00],
        ReasonCode::PROTOCOL_ERROR,
    );
    by.check();
}

/// [MQTT-3.1.0-2]: a second CONNECT is a Protocol Error, also when it names a protocol
/// level the broker does not speak: the DISCONNECT says 0x82, never CONNACK's 0x84.
#[test]
fn second_connect_with_unknown_level_gets_0x82_mqtt_3_1_0_2() {
    let broker = Broker::start();
    let mut by = Bystander::new(&broker);
    abuse(
        &broker,
        Protocol::V5,
        &raw_connect(b"MQTT", 6, 0x02, b"again"),
        ReasonCode::PROTOCOL_ERROR,
    );
    by.check();
}

/// [MQTT-3.3.4-6]: a PUBLISH from a client must not carry a Subscription Identifier.
#[test]
fn subscription_identifier_from_client_mqtt_3_3_4_6() {
    let broker = Broker::start();
    let mut by = Bystander::new(&broker);
    let topic = unique("subid");
    let mut watcher = broker.v5(&unique("watch"));
    watcher.sub(&topic, QoS::AtLeastOnce);
    let (mut c, _) = broker.connect(Connect::new(Protocol::V5, unique("subid-pub")));
    let mut m = Publish::new(topic.as_str(), b"x".to_vec());
    m.properties.subscription_identifiers = vec![5];
    c.send(&Packet::Publish(m));
    c.expect_disconnect(ReasonCode::PROTOCOL_ERROR);
    watcher.expect_nothing();
    by.check();
}

/// [MQTT-3.3.2-14]: a Response Topic has no wildcards, and as a topic name it is not empty
/// [MQTT-4.7.3-1]. The broker would forward it, so it refuses it where it arrives: in a
/// PUBLISH (DISCONNECT 0x82) and in a Will (§3.1.3.2.6; the CONNECT is refused).
#[test]
fn invalid_response_topic_is_refused_mqtt_3_3_2_14() {
    let broker = Broker::start();
    let mut by = Bystander::new(&broker);
    let topic = unique("resp");
    let mut watcher = broker.v5(&unique("watch"));
    watcher.sub(&topic, QoS::AtLeastOnce);
    for bad in ["reply/#", "reply/+/x", ""] {
        let (mut c, _) = broker.connect(Connect::new(Protocol::V5, unique("resp-pub")));
        let mut m = Publish::new(topic.as_str(), b"x".to_vec());
        m.properties.response_topic = Some(bad.into());
        c.send(&Packet::Publish(m));
        c.expect_disconnect(ReasonCode::PROTOCOL_ERROR);
        by.check();

        let mut connect = Connect::new(Protocol::V5, unique("resp-will"));
        let mut w = will(&topic, b"will", QoS::AtMostOnce);
        w.properties.response_topic = Some(bad.into());
        connect.will = Some(w);
        let mut raw = broker.raw();
        raw.protocol = Protocol::V5;
        raw.send(&Packet::Connect(Box::new(connect)));
        let seen = raw.expect_closed();
        assert!(
            seen.iter().all(|p| match p {
                Packet::ConnAck(a) => a.reason_code != ReasonCode::SUCCESS,
                _ => false,
            }),
            "a Will with Response Topic {bad:?} was accepted: {seen:?}"
        );
        by.check();
    }
    watcher.expect_nothing();
    // A valid one is forwarded unchanged.
    let (mut c, _) = broker.connect(Connect::new(Protocol::V5, unique("resp-ok")));
    let mut m = Publish::new(topic.as_str(), b"ok".to_vec());
    m.properties.response_topic = Some("reply/to/me".into());
    c.send(&Packet::Publish(m));
    let got = watcher.recv_publish();
    assert_eq!(
        got.properties.response_topic.as_deref(),
        Some("reply/to/me")
    );
}

/// §3.1.2.11.10: Authentication Data without an Authentication Method is a Protocol Error:
/// CONNACK 0x82.
#[test]
fn authentication_data_without_method_refused() {
    let broker = Broker::start();
    let mut connect = Connect::new(Protocol::V5, unique("authdata"));
    connect.properties.authentication_data = Some(b"secret".to_vec().into());
    let (mut c, ack) = broker.connect(connect);
    assert_eq!(ack.reason_code, ReasonCode::PROTOCOL_ERROR);
    assert!(c.expect_closed().is_empty());
}

/// §3.8.3.1: Retain Handling 3 and Maximum QoS 3 are Protocol Errors (0x82); a reserved
/// option bit makes the SUBSCRIBE malformed (0x81) [MQTT-3.8.3-5].
#[test]
fn subscription_option_values_mqtt_3_8_3_5() {
    let broker = Broker::start();
    let mut by = Bystander::new(&broker);
    let subscribe = |options: u8| vec![0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, b'a', options];
    abuse(
        &broker,
        Protocol::V5,
        &subscribe(0x30),
        ReasonCode::PROTOCOL_ERROR,
    );
    by.check();
    abuse(
        &broker,
        Protocol::V5,
        &subscribe(0x03),
        ReasonCode::PROTOCOL_ERROR,
    );
    by.check();
    abuse(
        &broker,
        Protocol::V5,
        &subscribe(0x40),
        ReasonCode::MALFORMED_PACKET,
    );
    by.check();
}

/// [MQTT-1.5.5-1]: a variable byte integer in more bytes than its value needs is malformed.
#[test]
fn overlong_variable_byte_integer_mqtt_1_5_5_1() {
    let broker = Broker::start();
    let mut by = Bystander::new(&broker);
    for protocol in [Protocol::V311, Protocol::V5] {
        // PINGREQ with its remaining length 0 in two bytes.
        abuse(
            &broker,
            protocol,
            &[0xC0, 0x80, 0x00],
            ReasonCode::MALFORMED_PACKET,
        );
        by.check();
    }
}

/// MQTT 3.1 (`MQIsdp`, level 3): the client id has 1 to 23 characters whatever the Clean
/// Session flag (an empty one gets return code 2), and the CONNACK's first byte is
/// reserved there: no Session Present bit, even when a session is resumed.
#[test]
fn mqtt_3_1_client_ids_and_connack() {
    let broker = Broker::start();
    let mut c = broker.raw();
    c.send_raw(&raw_connect(b"MQIsdp", 3, 0x02, b""));
    assert_eq!(c.read_raw(4, WAIT), vec![0x20, 0x02, 0x00, 0x02]);
    assert!(c.expect_closed().is_empty());

    let id = unique("v31");
    let mut first = broker.raw();
    first.send_raw(&raw_connect(b"MQIsdp", 3, 0x00, id.as_bytes()));
    assert_eq!(first.read_raw(4, WAIT), vec![0x20, 0x02, 0x00, 0x00]);
    first.send_raw(&[0xE0, 0x00]); // DISCONNECT
    assert!(first.expect_closed().is_empty());
    let mut again = broker.raw();
    again.send_raw(&raw_connect(b"MQIsdp", 3, 0x00, id.as_bytes()));
    assert_eq!(
        again.read_raw(4, WAIT),
        vec![0x20, 0x02, 0x00, 0x00],
        "MQTT 3.1 CONNACK with a reserved bit set"
    );
}
