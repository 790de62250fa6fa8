//! CONNECT (§3.1) and CONNACK (§3.2).

use super::*;

#[test]
fn connect_v311_minimal() {
    let bytes = cat(&[
        &[0x10, 0x0F],
        &[0x00, 0x04],
        b"MQTT",
        &[0x04, 0x02, 0x00, 0x3C],
        &[0x00, 0x03],
        b"abc",
    ]);
    let c = Connect::new(Protocol::V311, "abc");
    both_ways(&bytes, Protocol::V311, Packet::Connect(Box::new(c)));
}

#[test]
fn connect_v31_mqisdp_level_3() {
    let bytes = cat(&[
        &[0x10, 0x11],
        &[0x00, 0x06],
        b"MQIsdp",
        &[0x03, 0x02, 0x00, 0x3C],
        &[0x00, 0x03],
        b"abc",
    ]);
    let c = Connect::new(Protocol::V31, "abc");
    // The connection's protocol does not matter: CONNECT carries its own.
    both_ways(&bytes, Protocol::V311, Packet::Connect(Box::new(c.clone())));
    both_ways(&bytes, Protocol::V31, Packet::Connect(Box::new(c)));
}

#[test]
fn connect_v311_will_username_password() {
    // Flags: user name 0x80, password 0x40, will retain 0x20, will QoS 1 0x08, will 0x04,
    // clean session 0x02 = 0xEE.
    let bytes = cat(&[
        &[0x10, 0x1D],
        &[0x00, 0x04],
        b"MQTT",
        &[0x04, 0xEE, 0x00, 0x0A],
        &[0x00, 0x01],
        b"c",
        &[0x00, 0x03],
        b"w/t",
        &[0x00, 0x03],
        b"bye",
        &[0x00, 0x01],
        b"u",
        &[0x00, 0x01],
        b"p",
    ]);
    let c = Connect {
        protocol: Protocol::V311,
        clean_start: true,
        keep_alive_secs: 10,
        properties: ConnectProperties::default(),
        client_id: s("c"),
        will: Some(Will {
            topic: s("w/t"),
            payload: Bytes::from_static(b"bye"),
            qos: QoS::AtLeastOnce,
            retain: true,
            properties: WillProperties::default(),
        }),
        username: Some(s("u")),
        password: Some(Bytes::from_static(b"p")),
    };
    both_ways(&bytes, Protocol::V311, Packet::Connect(Box::new(c)));
}

#[test]
fn connect_v311_empty_client_id_persistent_session() {
    // Clean session 0, keep alive 0, zero-length client id: valid on the wire
    // (the server answers with return code 0x02, not a decode error) [MQTT-3.1.3-8].
    let bytes = cat(&[
        &[0x10, 0x0C],
        &[0x00, 0x04],
        b"MQTT",
        &[0x04, 0x00, 0x00, 0x00],
        &[0x00, 0x00],
    ]);
    let mut c = Connect::new(Protocol::V311, "");
    c.clean_start = false;
    c.keep_alive_secs = 0;
    both_ways(&bytes, Protocol::V311, Packet::Connect(Box::new(c)));
}

#[test]
fn connect_v5_properties_will_properties_username() {
    // Flags: user name 0x80, will 0x04 (QoS 0, no retain), clean start 0x02 = 0x86.
    let bytes = cat(&[
        &[0x10, 0x31],
        &[0x00, 0x04],
        b"MQTT",
        &[0x05, 0x86, 0x00, 0x1E],
        // Properties (15): Session Expiry 120, Receive Maximum 16, User Property k=v.
        &[0x0F],
        &[0x11, 0x00, 0x00, 0x00, 0x78],
        &[0x21, 0x00, 0x10],
        &[0x26, 0x00, 0x01, b'k', 0x00, 0x01, b'v'],
        &[0x00, 0x02],
        b"id",
        // Will properties (7): Will Delay 5, Payload Format Indicator 1.
        &[0x07],
        &[0x18, 0x00, 0x00, 0x00, 0x05],
        &[0x01, 0x01],
        &[0x00, 0x01],
        b"t",
        &[0x00, 0x00],
        &[0x00, 0x04],
        b"user",
    ]);
    let c = Connect {
        protocol: Protocol::V5,
        clean_start: true,
        keep_alive_secs: 30,
        properties: ConnectProperties {
            session_expiry_interval: Some(120),
            receive_maximum: Some(16),
            user_properties: vec![up("k", "v")],
            ..Default::default()
        },
        client_id: s("id"),
        will: Some(Will {
            topic: s("t"),
            payload: Bytes::new(),
            qos: QoS::AtMostOnce,
            retain: false,
            properties: WillProperties {
                will_delay_interval: Some(5),
                payload_format_indicator: Some(1),
                ..Default::default()
            },
        }),
        username: Some(s("user")),
        password: None,
    };
    both_ways(&bytes, Protocol::V5, Packet::Connect(Box::new(c)));
}

#[test]
fn connect_v5_password_without_username_is_allowed() {
    // MQTT 5 dropped [MQTT-3.1.2-22]: a password without a user name is valid.
    let bytes = cat(&[
        &[0x10, 0x12],
        &[0x00, 0x04],
        b"MQTT",
        &[0x05, 0x42, 0x00, 0x00, 0x00],
        &[0x00, 0x01],
        b"c",
        &[0x00, 0x02, 0xFF, 0x00],
    ]);
    let mut c = Connect::new(Protocol::V5, "c");
    c.keep_alive_secs = 0;
    c.password = Some(Bytes::from_static(&[0xFF, 0x00]));
    both_ways(&bytes, Protocol::V5, Packet::Connect(Box::new(c)));
}

#[test]
fn connack_v311() {
    both_ways_v3(
        &[0x20, 0x02, 0x01, 0x00],
        Packet::ConnAck(ConnAck {
            session_present: true,
            ..Default::default()
        }),
    );
    // 3.1.1 return code 5 (not authorized) maps to MQTT 5 0x87 and back.
    both_ways_v3(
        &[0x20, 0x02, 0x00, 0x05],
        Packet::ConnAck(ConnAck {
            reason_code: ReasonCode::NOT_AUTHORIZED,
            ..Default::default()
        }),
    );
    both_ways_v3(
        &[0x20, 0x02, 0x00, 0x01],
        Packet::ConnAck(ConnAck {
            reason_code: ReasonCode::UNSUPPORTED_PROTOCOL_VERSION,
            ..Default::default()
        }),
    );
}

#[test]
fn connack_v5() {
    both_ways(
        &[0x20, 0x03, 0x00, 0x00, 0x00],
        Protocol::V5,
        Packet::ConnAck(ConnAck::default()),
    );
    both_ways(
        &[0x20, 0x03, 0x00, 0x87, 0x00],
        Protocol::V5,
        Packet::ConnAck(ConnAck {
            reason_code: ReasonCode::NOT_AUTHORIZED,
            ..Default::default()
        }),
    );
    let bytes = cat(&[
        &[0x20, 0x11, 0x01, 0x00, 0x0E],
        &[0x21, 0x00, 0x0A],
        &[0x24, 0x01],
        &[0x12, 0x00, 0x03],
        b"abc",
        &[0x22, 0x00, 0x05],
    ]);
    both_ways(
        &bytes,
        Protocol::V5,
        Packet::ConnAck(ConnAck {
            session_present: true,
            reason_code: ReasonCode::SUCCESS,
            properties: ConnAckProperties {
                receive_maximum: Some(10),
                maximum_qos: Some(1),
                assigned_client_identifier: Some(s("abc")),
                topic_alias_maximum: Some(5),
                ..Default::default()
            },
        }),
    );
}
