//! Malformed CONNECT packets (§3.1), and what the encoder refuses to frame.

use super::*;

#[test]
fn invalid_connect_flags() {
    let bad = DecodeError::InvalidConnectFlags;
    // [MQTT-3.1.2-3] reserved bit 0.
    rejects(&connect(V3, 0x03, b"\x00\x01c"), V3, bad(0x03), MALFORMED);
    rejects(&connect(V5, 0x03, b"\x00\x01c"), V5, bad(0x03), MALFORMED);
    // [MQTT-3.1.2-13] Will QoS without the Will flag.
    rejects(&connect(V3, 0x0A, b"\x00\x01c"), V3, bad(0x0A), MALFORMED);
    // [MQTT-3.1.2-15] Will Retain without the Will flag.
    rejects(&connect(V3, 0x22, b"\x00\x01c"), V3, bad(0x22), MALFORMED);
    // [MQTT-3.1.2-14] Will QoS 3.
    rejects(
        &connect(V3, 0x1E, b"\x00\x01c\x00\x01t\x00\x00"),
        V3,
        bad(0x1E),
        MALFORMED,
    );
    rejects(
        &connect(V5, 0x1E, b"\x00\x01c\x00\x00\x01t\x00\x00"),
        V5,
        bad(0x1E),
        MALFORMED,
    );
    // [MQTT-3.1.2-22] 3.1.1 / 3.1: a password needs a user name.
    rejects(
        &connect(V3, 0x42, b"\x00\x01c\x00\x01p"),
        V3,
        bad(0x42),
        MALFORMED,
    );
    rejects(
        &connect(Protocol::V31, 0x42, b"\x00\x01c\x00\x01p"),
        V3,
        bad(0x42),
        MALFORMED,
    );
}

#[test]
fn unsupported_protocol_mqtt_3_1_2_1_and_2() {
    let code = ReasonCode::UNSUPPORTED_PROTOCOL_VERSION;
    rejects(
        &framed(0x10, b"\x00\x04MQTX\x04\x02\x00\x3C\x00\x01c"),
        V3,
        DecodeError::InvalidProtocolName,
        code,
    );
    rejects(
        &framed(0x10, b"\x00\x04MQTT\x06\x02\x00\x3C\x00\x01c"),
        V3,
        DecodeError::UnsupportedProtocolVersion(6),
        code,
    );
    rejects(
        &framed(0x10, b"\x00\x04MQTT\x03\x02\x00\x3C\x00\x01c"),
        V3,
        DecodeError::UnsupportedProtocolVersion(3),
        code,
    );
    rejects(
        &framed(0x10, b"\x00\x06MQIsdp\x04\x02\x00\x3C\x00\x01c"),
        V3,
        DecodeError::UnsupportedProtocolVersion(4),
        code,
    );
}

#[test]
fn every_decode_error_has_the_right_reason_code() {
    use DecodeError::*;
    let cases = [
        (MalformedRemainingLength, 0x81),
        (PacketTooLarge { size: 2, max: 1 }, 0x95),
        (UnknownPacketType(0), 0x81),
        (
            InvalidHeaderFlags {
                packet_type: 6,
                flags: 0,
            },
            0x81,
        ),
        (Truncated, 0x81),
        (TrailingBytes(1), 0x81),
        (InvalidUtf8, 0x81),
        (NullCharacter, 0x81),
        (InvalidQoS, 0x81),
        (DupOnQoS0, 0x81),
        (InvalidProtocolName, 0x84),
        (UnsupportedProtocolVersion(6), 0x84),
        (InvalidConnectFlags(1), 0x81),
        (InvalidSubscriptionOptions(0xC0), 0x81),
        (SubscriptionOptionValue(0x30), 0x82),
        (NoLocalOnSharedSubscription, 0x82),
        (ZeroPacketId, 0x82),
        (NoTopicFilters, 0x82),
        (NoReasonCodes, 0x81),
        (
            InvalidReasonCode {
                packet_type: 4,
                code: 1,
            },
            0x81,
        ),
        (UnknownProperty(0x7F), 0x81),
        (
            PropertyNotAllowed {
                id: 0x11,
                packet_type: 3,
            },
            0x81,
        ),
        (DuplicateProperty(1), 0x82),
        (InvalidPropertyValue(1), 0x82),
        (TopicAliasZero, 0x94),
        (EmptyTopicWithoutAlias, 0x82),
        (TopicNameInvalid(TopicError::WildcardInName), 0x90),
        (TopicFilterInvalid(TopicError::Empty), 0x8F),
    ];
    for (e, code) in cases {
        assert_eq!(e.reason_code(), ReasonCode(code), "{e:?}");
    }
}

#[test]
fn encode_rejects_what_cannot_be_framed() {
    let mut out = BytesMut::new();
    let p = Publish {
        qos: QoS::AtLeastOnce,
        topic: MqttStr::from_static("t"),
        ..Default::default()
    };
    assert_eq!(p.encode(V3, &mut out), Err(EncodeError::ZeroPacketId));
    let long = "x".repeat(65_536);
    let p = Publish::new(long.as_str(), bytes::Bytes::new());
    assert_eq!(
        p.encode(V3, &mut out),
        Err(EncodeError::FieldTooLong(65_536))
    );
    assert_eq!(
        PubResponse::new(0).encode(PUBACK, V3, &mut out),
        Err(EncodeError::ZeroPacketId)
    );
    assert!(out.is_empty(), "nothing written on failure");
}

#[test]
fn encode_rejects_property_strings_over_65535_bytes() {
    // A 16-bit length prefix cannot describe them; writing `len as u16` would corrupt the
    // frame.
    let long = MqttStr::from("r".repeat(70_000));
    let mut out = BytesMut::new();
    let p = Publish {
        properties: PublishProperties {
            response_topic: Some(long.clone()),
            ..Default::default()
        },
        ..Publish::new("t", bytes::Bytes::new())
    };
    assert_eq!(
        p.encode(V5, &mut out),
        Err(EncodeError::FieldTooLong(70_000))
    );
    assert!(p.encode_shared(V5).is_err());
    assert!(p.encoded_len(V5).is_err());
    // 3.1.1 has no properties: nothing to reject.
    assert!(p.encode(V3, &mut BytesMut::new()).is_ok());
    let d = Disconnect {
        reason_code: ReasonCode::SUCCESS,
        properties: DisconnectProperties {
            user_properties: vec![(MqttStr::from("k"), long.clone())],
            ..Default::default()
        },
    };
    assert_eq!(
        Packet::Disconnect(d).encode(V5, &mut out),
        Err(EncodeError::FieldTooLong(70_000))
    );
    let mut c = Connect::new(V5, "c");
    c.properties.authentication_data = Some(bytes::Bytes::from(vec![0; 70_000]));
    assert_eq!(c.encode(&mut out), Err(EncodeError::FieldTooLong(70_000)));
    let a = PubResponse {
        packet_id: 1,
        reason_code: ReasonCode::SUCCESS,
        properties: AckProperties {
            reason_string: Some(long),
            ..Default::default()
        },
    };
    assert_eq!(
        a.encode(PUBACK, V5, &mut out),
        Err(EncodeError::FieldTooLong(70_000))
    );
    assert!(out.is_empty(), "nothing written on failure");
}

#[test]
fn encode_rejects_subscription_identifiers_out_of_range() {
    // 1..=268,435,455 [MQTT-3.8.2.1.2]; anything else does not fit a 4-byte variable byte
    // integer (and used to trip the frame writer's length assertion).
    let mut out = BytesMut::new();
    for bad in [0, 268_435_456, u32::MAX] {
        let p = Publish {
            properties: PublishProperties {
                subscription_identifiers: vec![bad],
                ..Default::default()
            },
            ..Publish::new("t", bytes::Bytes::new())
        };
        assert_eq!(
            p.encode(V5, &mut out),
            Err(EncodeError::InvalidPropertyValue(0x0B)),
            "{bad}"
        );
        let s = Subscribe {
            packet_id: 1,
            properties: SubscribeProperties {
                subscription_identifier: Some(bad),
                ..Default::default()
            },
            filters: vec![SubscribeFilter {
                filter: MqttStr::from("a"),
                options: SubscriptionOptions::default(),
            }],
        };
        assert_eq!(
            s.encode(V5, &mut out),
            Err(EncodeError::InvalidPropertyValue(0x0B))
        );
    }
    assert!(out.is_empty());
}
