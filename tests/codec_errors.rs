//! Malformed and forbidden input: each case asserts the exact [`DecodeError`] and the MQTT 5
//! reason code the broker reports for it. Normative statements are cited as [MQTT-x.y.z-n].

use bytes::BytesMut;
use shardmq::codec::*;
use shardmq::topic::TopicError;

const MAX: usize = MAX_FRAME_BYTES;
const V3: Protocol = Protocol::V311;
const V5: Protocol = Protocol::V5;

const MALFORMED: ReasonCode = ReasonCode::MALFORMED_PACKET;
const PROTOCOL_ERROR: ReasonCode = ReasonCode::PROTOCOL_ERROR;

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// Decodes `bytes` and asserts the error and its reason code.
#[track_caller]
fn rejects(bytes: &[u8], protocol: Protocol, error: DecodeError, code: ReasonCode) {
    rejects_max(bytes, protocol, MAX, error, code)
}

#[track_caller]
fn rejects_max(bytes: &[u8], protocol: Protocol, max: usize, error: DecodeError, code: ReasonCode) {
    let mut buf = BytesMut::from(bytes);
    let got = Packet::decode(&mut buf, protocol, max);
    assert_eq!(got, Err(error.clone()), "{bytes:02x?} in {protocol:?}");
    assert_eq!(error.reason_code(), code, "reason code of {error:?}");
}

/// Both 3.1.1 and 5.0.
#[track_caller]
fn rejects_both(bytes: &[u8], error: DecodeError, code: ReasonCode) {
    rejects(bytes, V3, error.clone(), code);
    rejects(bytes, V5, error, code);
}

/// A CONNECT body from the part after the protocol name.
fn connect(protocol: Protocol, flags: u8, rest: &[u8]) -> Vec<u8> {
    let name: &[u8] = if protocol == Protocol::V31 {
        b"\x00\x06MQIsdp"
    } else {
        b"\x00\x04MQTT"
    };
    let mut body = cat(&[name, &[protocol.level(), flags, 0x00, 0x3C]]);
    if protocol.is_v5() {
        body.push(0x00);
    }
    body.extend_from_slice(rest);
    framed(0x10, &body)
}

/// A frame with a one-byte remaining length.
fn framed(first: u8, body: &[u8]) -> Vec<u8> {
    assert!(body.len() < 128);
    cat(&[&[first, body.len() as u8], body])
}

// ---------------------------------------------------------------- fixed header (§2.1)

#[test]
fn reserved_flags_mqtt_2_1_3_1() {
    let bad = |packet_type, flags| DecodeError::InvalidHeaderFlags { packet_type, flags };
    // [MQTT-3.6.1-1] PUBREL flags must be 0010.
    rejects_both(&[0x60, 0x02, 0x00, 0x01], bad(PUBREL, 0), MALFORMED);
    // [MQTT-3.8.1-1] SUBSCRIBE flags must be 0010.
    rejects_both(
        &cat(&[&[0x80, 0x06, 0x00, 0x01, 0x00, 0x01], b"a", &[0x00]]),
        bad(SUBSCRIBE, 0),
        MALFORMED,
    );
    // [MQTT-3.10.1-1] UNSUBSCRIBE flags must be 0010.
    rejects_both(
        &[0xA0, 0x05, 0x00, 0x01, 0x00, 0x01, b'a'],
        bad(UNSUBSCRIBE, 0),
        MALFORMED,
    );
    // Every other packet (except PUBLISH) has flags 0000.
    rejects_both(&[0x42, 0x02, 0x00, 0x01], bad(PUBACK, 2), MALFORMED);
    rejects_both(&[0x51, 0x02, 0x00, 0x01], bad(PUBREC, 1), MALFORMED);
    rejects_both(&[0x78, 0x02, 0x00, 0x01], bad(PUBCOMP, 8), MALFORMED);
    rejects_both(&[0xC1, 0x00], bad(PINGREQ, 1), MALFORMED);
    rejects_both(&[0xD2, 0x00], bad(PINGRESP, 2), MALFORMED);
    rejects_both(&[0xE4, 0x00], bad(DISCONNECT, 4), MALFORMED);
    rejects_both(&[0x2F, 0x02, 0x00, 0x00], bad(CONNACK, 0xF), MALFORMED);
    rejects_both(&[0x92, 0x03, 0x00, 0x01, 0x00], bad(SUBACK, 2), MALFORMED);
    rejects_both(&[0xB2, 0x02, 0x00, 0x01], bad(UNSUBACK, 2), MALFORMED);
    rejects(&[0xF1, 0x00], V5, bad(AUTH, 1), MALFORMED);
    let c = connect(V3, 0x02, b"\x00\x01c");
    let mut c1 = c.clone();
    c1[0] = 0x11;
    rejects(&c1, V3, bad(CONNECT, 1), MALFORMED);
}

#[test]
fn reserved_flags_are_checked_before_the_body_arrives() {
    // PUBREL with flags 0 is rejected from its header alone.
    rejects_both(
        &[0x60, 0x02],
        DecodeError::InvalidHeaderFlags {
            packet_type: PUBREL,
            flags: 0,
        },
        MALFORMED,
    );
}

#[test]
fn connack_reserved_acknowledge_flags_mqtt_3_2_2_1() {
    rejects_both(
        &[0x20, 0x02, 0x02, 0x00],
        DecodeError::InvalidHeaderFlags {
            packet_type: CONNACK,
            flags: 0x02,
        },
        MALFORMED,
    );
}

#[test]
fn remaining_length_over_four_bytes_mqtt_1_5_5() {
    rejects_both(
        &[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01],
        DecodeError::MalformedRemainingLength,
        MALFORMED,
    );
    // Already known after the fifth byte: the sixth need not arrive.
    rejects_both(
        &[0xC0, 0x80, 0x80, 0x80, 0x80],
        DecodeError::MalformedRemainingLength,
        MALFORMED,
    );
    // Four continuation bytes alone: still incomplete.
    let mut buf = BytesMut::from(&[0x30, 0x80, 0x80, 0x80][..]);
    assert_eq!(Packet::decode(&mut buf, V3, MAX), Ok(None));
    assert_eq!(buf.len(), 4);
}

#[test]
fn packet_too_large_0x95() {
    let too_large = |size, max| DecodeError::PacketTooLarge { size, max };
    // A 10-byte PUBLISH against a 9-byte limit.
    let frame = cat(&[&[0x30, 0x08, 0x00, 0x01], b"t", b"12345"]);
    assert_eq!(frame.len(), 10);
    rejects_max(
        &frame,
        V3,
        9,
        too_large(10, 9),
        ReasonCode::PACKET_TOO_LARGE,
    );
    rejects_max(
        &frame,
        V5,
        9,
        too_large(10, 9),
        ReasonCode::PACKET_TOO_LARGE,
    );
    // Exactly the limit is fine.
    let mut buf = BytesMut::from(&frame[..]);
    assert!(matches!(
        Packet::decode(&mut buf, V3, 10),
        Ok(Some(Packet::Publish(_)))
    ));
}

#[test]
fn packet_too_large_is_rejected_from_the_header_alone() {
    // Only the fixed header of a 1,000,000-byte body is here: rejected without waiting.
    // 1,000,000 = 0x0F4240 -> C0 84 3D.
    let header = [0x30, 0xC0, 0x84, 0x3D];
    let size = 4 + 1_000_000;
    rejects_max(
        &header,
        V3,
        1024,
        DecodeError::PacketTooLarge { size, max: 1024 },
        ReasonCode::PACKET_TOO_LARGE,
    );
    assert_eq!(
        parse_frame_header(&header, 1024),
        Err(DecodeError::PacketTooLarge { size, max: 1024 })
    );
    // Under the limit, the same header just waits for the body.
    let mut buf = BytesMut::from(&header[..]);
    assert_eq!(Packet::decode(&mut buf, V3, MAX), Ok(None));
    assert_eq!(&buf[..], &header);
}

#[test]
fn unknown_packet_type() {
    // Type 0 is reserved (both versions).
    rejects_both(&[0x00, 0x00], DecodeError::UnknownPacketType(0), MALFORMED);
    // AUTH (15) does not exist in 3.1.1 / 3.1.
    rejects(
        &[0xF0, 0x00],
        V3,
        DecodeError::UnknownPacketType(15),
        MALFORMED,
    );
    rejects(
        &[0xF0, 0x00],
        Protocol::V31,
        DecodeError::UnknownPacketType(15),
        MALFORMED,
    );
}

#[test]
fn trailing_bytes() {
    rejects_both(
        &[0xC0, 0x01, 0x00],
        DecodeError::TrailingBytes(1),
        MALFORMED,
    );
    rejects_both(
        &[0xD0, 0x02, 0x00, 0x00],
        DecodeError::TrailingBytes(2),
        MALFORMED,
    );
    rejects(
        &[0x40, 0x03, 0x00, 0x01, 0x00],
        V3,
        DecodeError::TrailingBytes(1),
        MALFORMED,
    );
    rejects(
        &[0xB0, 0x03, 0x00, 0x01, 0x00],
        V3,
        DecodeError::TrailingBytes(1),
        MALFORMED,
    );
    rejects(
        &[0xE0, 0x01, 0x00],
        V3,
        DecodeError::TrailingBytes(1),
        MALFORMED,
    );
    rejects(
        &[0x20, 0x03, 0x00, 0x00, 0x00],
        V3,
        DecodeError::TrailingBytes(1),
        MALFORMED,
    );
    // MQTT 5: after reason code and properties.
    rejects(
        &[0x40, 0x05, 0x00, 0x01, 0x00, 0x00, 0xAA],
        V5,
        DecodeError::TrailingBytes(1),
        MALFORMED,
    );
    rejects(
        &[0xE0, 0x03, 0x00, 0x00, 0xAA],
        V5,
        DecodeError::TrailingBytes(1),
        MALFORMED,
    );
    rejects(
        &[0xF0, 0x03, 0x00, 0x00, 0xAA],
        V5,
        DecodeError::TrailingBytes(1),
        MALFORMED,
    );
    rejects(
        &[0x20, 0x04, 0x00, 0x00, 0x00, 0xAA],
        V5,
        DecodeError::TrailingBytes(1),
        MALFORMED,
    );
    // CONNECT with a byte after the last field.
    rejects(
        &connect(V3, 0x02, b"\x00\x01c\xAA"),
        V3,
        DecodeError::TrailingBytes(1),
        MALFORMED,
    );
    rejects(
        &connect(V5, 0x02, b"\x00\x01c\xAA"),
        V5,
        DecodeError::TrailingBytes(1),
        MALFORMED,
    );
}

#[test]
fn truncated_fields() {
    // Topic length 5 but only 1 byte of body follows.
    rejects_both(
        &[0x30, 0x03, 0x00, 0x05, b'a'],
        DecodeError::Truncated,
        MALFORMED,
    );
    // QoS 1 without room for the packet identifier.
    rejects_both(
        &[0x32, 0x04, 0x00, 0x01, b'a', 0x00],
        DecodeError::Truncated,
        MALFORMED,
    );
    // PUBACK with one byte of packet identifier.
    rejects_both(&[0x40, 0x01, 0x00], DecodeError::Truncated, MALFORMED);
    // Property length beyond the packet.
    rejects(
        &[0x30, 0x05, 0x00, 0x01, b't', 0x09, 0x01],
        V5,
        DecodeError::Truncated,
        MALFORMED,
    );
    // A property value cut short (Message Expiry needs 4 bytes).
    rejects(
        &[0x30, 0x07, 0x00, 0x01, b't', 0x02, 0x02, 0x00, 0x00],
        V5,
        DecodeError::Truncated,
        MALFORMED,
    );
    // CONNECT whose user-name flag promises a field that is missing.
    rejects(
        &connect(V3, 0x82, b"\x00\x01c"),
        V3,
        DecodeError::Truncated,
        MALFORMED,
    );
}

// ---------------------------------------------------------------- strings (§1.5.4)

#[test]
fn malformed_utf8_mqtt_1_5_4_1() {
    // PUBLISH topic with an invalid byte sequence.
    rejects_both(
        &[0x30, 0x04, 0x00, 0x02, 0xC3, 0x28],
        DecodeError::InvalidUtf8,
        MALFORMED,
    );
    rejects_both(
        &[0x30, 0x03, 0x00, 0x01, 0xFF],
        DecodeError::InvalidUtf8,
        MALFORMED,
    );
    // Surrogate U+D800 encoded as ED A0 80 is not UTF-8.
    rejects_both(
        &[0x30, 0x05, 0x00, 0x03, 0xED, 0xA0, 0x80],
        DecodeError::InvalidUtf8,
        MALFORMED,
    );
    // Overlong encoding of '/'.
    rejects_both(
        &[0x30, 0x04, 0x00, 0x02, 0xC0, 0xAF],
        DecodeError::InvalidUtf8,
        MALFORMED,
    );
    // CONNECT client identifier.
    rejects(
        &connect(V3, 0x02, b"\x00\x02\xC3\x28"),
        V3,
        DecodeError::InvalidUtf8,
        MALFORMED,
    );
    // SUBSCRIBE filter.
    rejects(
        &[0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 0x80, 0x00],
        V3,
        DecodeError::InvalidUtf8,
        MALFORMED,
    );
    rejects(
        &[0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 0x80, 0x00],
        V5,
        DecodeError::InvalidUtf8,
        MALFORMED,
    );
    // MQTT 5 User Property value.
    let p = cat(&[&[
        0x30, 0x0B, 0x00, 0x01, b't', 0x07, 0x26, 0x00, 0x01, b'k', 0x00, 0x01, 0xFE,
    ]]);
    rejects(&p, V5, DecodeError::InvalidUtf8, MALFORMED);
}

#[test]
fn null_character_mqtt_1_5_4_2() {
    rejects_both(
        &[0x30, 0x05, 0x00, 0x03, b'a', 0x00, b'b'],
        DecodeError::NullCharacter,
        MALFORMED,
    );
    rejects(
        &connect(V3, 0x02, b"\x00\x02c\x00"),
        V3,
        DecodeError::NullCharacter,
        MALFORMED,
    );
    rejects(
        &connect(V5, 0x82, b"\x00\x01c\x00\x01\x00"),
        V5,
        DecodeError::NullCharacter,
        MALFORMED,
    );
    rejects(
        &[0xA2, 0x05, 0x00, 0x01, 0x00, 0x01, 0x00],
        V3,
        DecodeError::NullCharacter,
        MALFORMED,
    );
    rejects(
        &[0xA2, 0x06, 0x00, 0x01, 0x00, 0x00, 0x01, 0x00],
        V5,
        DecodeError::NullCharacter,
        MALFORMED,
    );
    // Reason String property.
    rejects(
        &[0x40, 0x08, 0x00, 0x01, 0x80, 0x04, 0x1F, 0x00, 0x01, 0x00],
        V5,
        DecodeError::NullCharacter,
        MALFORMED,
    );
}

// ---------------------------------------------------------------- topics (§4.7)

#[test]
fn wildcards_in_topic_name_mqtt_3_3_2_2() {
    let e = DecodeError::TopicNameInvalid(TopicError::WildcardInName);
    let code = ReasonCode::TOPIC_NAME_INVALID;
    rejects(
        &[0x30, 0x05, 0x00, 0x03, b'a', b'/', b'+'],
        V3,
        e.clone(),
        code,
    );
    rejects(
        &[0x30, 0x06, 0x00, 0x03, b'a', b'/', b'+', 0x00],
        V5,
        e.clone(),
        code,
    );
    rejects(&[0x30, 0x03, 0x00, 0x01, b'#'], V3, e.clone(), code);
    rejects(&[0x30, 0x04, 0x00, 0x01, b'#', 0x00], V5, e.clone(), code);
    rejects(
        &[0x32, 0x06, 0x00, 0x02, b'a', b'#', 0x00, 0x01],
        V3,
        e.clone(),
        code,
    );
    rejects(
        &[0x32, 0x07, 0x00, 0x02, b'a', b'#', 0x00, 0x01, 0x00],
        V5,
        e.clone(),
        code,
    );
    // The Will Topic is a topic name too [MQTT-3.1.3-11].
    rejects(
        &connect(V3, 0x06, b"\x00\x01c\x00\x01+\x00\x00"),
        V3,
        e.clone(),
        code,
    );
    rejects(
        &connect(V5, 0x06, b"\x00\x01c\x00\x00\x01#\x00\x00"),
        V5,
        e,
        code,
    );
}

#[test]
fn empty_topic_name() {
    // 3.1.1 [MQTT-4.7.3-1]; MQTT 5 without a Topic Alias [MQTT-3.3.2-1].
    rejects(
        &[0x30, 0x02, 0x00, 0x00],
        V3,
        DecodeError::EmptyTopicWithoutAlias,
        PROTOCOL_ERROR,
    );
    rejects(
        &[0x30, 0x03, 0x00, 0x00, 0x00],
        V5,
        DecodeError::EmptyTopicWithoutAlias,
        PROTOCOL_ERROR,
    );
    // An empty Will Topic.
    rejects(
        &connect(V3, 0x06, b"\x00\x01c\x00\x00\x00\x00"),
        V3,
        DecodeError::TopicNameInvalid(TopicError::Empty),
        ReasonCode::TOPIC_NAME_INVALID,
    );
}

#[test]
fn topic_alias_zero_mqtt_3_3_2_8() {
    rejects(
        &[0x30, 0x07, 0x00, 0x01, b't', 0x03, 0x23, 0x00, 0x00],
        V5,
        DecodeError::TopicAliasZero,
        ReasonCode::TOPIC_ALIAS_INVALID,
    );
}

#[test]
fn invalid_topic_filters_0x8f() {
    let code = ReasonCode::TOPIC_FILTER_INVALID;
    let sub = |filter: &[u8], v5: bool| {
        let mut body = vec![0x00, 0x01];
        if v5 {
            body.push(0x00);
        }
        body.extend_from_slice(&(filter.len() as u16).to_be_bytes());
        body.extend_from_slice(filter);
        body.push(0x00);
        framed(0x82, &body)
    };
    let unsub = |filter: &[u8], v5: bool| {
        let mut body = vec![0x00, 0x01];
        if v5 {
            body.push(0x00);
        }
        body.extend_from_slice(&(filter.len() as u16).to_be_bytes());
        body.extend_from_slice(filter);
        framed(0xA2, &body)
    };
    let cases: &[(&[u8], TopicError)] = &[
        // [MQTT-4.7.1-1] '#' must be last and a whole level.
        (b"a/#/b", TopicError::MisplacedMultiLevelWildcard),
        (b"a#", TopicError::MisplacedMultiLevelWildcard),
        (b"#/", TopicError::MisplacedMultiLevelWildcard),
        // [MQTT-4.7.1-2] '+' must be a whole level.
        (b"a/b+", TopicError::MisplacedSingleLevelWildcard),
        (b"+a/b", TopicError::MisplacedSingleLevelWildcard),
        // [MQTT-4.7.3-1] at least one character.
        (b"", TopicError::Empty),
        // [MQTT-4.8.2-1/2] shared subscriptions.
        (b"$share/g", TopicError::InvalidSharedFilter),
        (b"$share/g+/a", TopicError::InvalidSharedFilter),
    ];
    for (filter, err) in cases {
        let e = DecodeError::TopicFilterInvalid(*err);
        rejects(&sub(filter, false), V3, e.clone(), code);
        rejects(&sub(filter, true), V5, e.clone(), code);
        rejects(&unsub(filter, false), V3, e.clone(), code);
        rejects(&unsub(filter, true), V5, e, code);
    }
}

// ---------------------------------------------------------------- PUBLISH (§3.3)

#[test]
fn qos_3_mqtt_3_3_1_4() {
    rejects_both(
        &[0x36, 0x05, 0x00, 0x01, b't', 0x00, 0x01],
        DecodeError::InvalidQoS,
        MALFORMED,
    );
    // SUBSCRIBE requested QoS 3 [MQTT-3.8.3-4] (3.1.1) / malformed options (5.0).
    rejects(
        &[0x82, 0x06, 0x00, 0x01, 0x00, 0x01, b'a', 0x03],
        V3,
        DecodeError::InvalidQoS,
        MALFORMED,
    );
    rejects(
        &[0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, b'a', 0x03],
        V5,
        DecodeError::InvalidQoS,
        MALFORMED,
    );
}

#[test]
fn dup_on_qos0_mqtt_3_3_1_2() {
    rejects_both(
        &[0x38, 0x03, 0x00, 0x01, b't'],
        DecodeError::DupOnQoS0,
        MALFORMED,
    );
}

#[test]
fn packet_id_zero_mqtt_2_2_1_3() {
    let e = DecodeError::ZeroPacketId;
    rejects_both(
        &[0x32, 0x05, 0x00, 0x01, b't', 0x00, 0x00],
        e.clone(),
        PROTOCOL_ERROR,
    );
    rejects_both(
        &[0x34, 0x05, 0x00, 0x01, b't', 0x00, 0x00],
        e.clone(),
        PROTOCOL_ERROR,
    );
    for first in [0x40, 0x50, 0x62, 0x70] {
        rejects_both(&[first, 0x02, 0x00, 0x00], e.clone(), PROTOCOL_ERROR);
    }
    rejects_both(
        &[0x82, 0x06, 0x00, 0x00, 0x00, 0x01, b'a', 0x00],
        e.clone(),
        PROTOCOL_ERROR,
    );
    rejects_both(
        &[0xA2, 0x05, 0x00, 0x00, 0x00, 0x01, b'a'],
        e.clone(),
        PROTOCOL_ERROR,
    );
    rejects_both(&[0x90, 0x03, 0x00, 0x00, 0x00], e.clone(), PROTOCOL_ERROR);
    rejects(&[0xB0, 0x02, 0x00, 0x00], V3, e, PROTOCOL_ERROR);
}

// ---------------------------------------------------------------- SUBSCRIBE family (§3.8-§3.11)

#[test]
fn subscribe_without_filters_mqtt_3_8_3_2() {
    rejects(
        &[0x82, 0x02, 0x00, 0x01],
        V3,
        DecodeError::NoTopicFilters,
        PROTOCOL_ERROR,
    );
    rejects(
        &[0x82, 0x03, 0x00, 0x01, 0x00],
        V5,
        DecodeError::NoTopicFilters,
        PROTOCOL_ERROR,
    );
}

#[test]
fn unsubscribe_without_filters_mqtt_3_10_3_2() {
    rejects(
        &[0xA2, 0x02, 0x00, 0x01],
        V3,
        DecodeError::NoTopicFilters,
        PROTOCOL_ERROR,
    );
    rejects(
        &[0xA2, 0x03, 0x00, 0x01, 0x00],
        V5,
        DecodeError::NoTopicFilters,
        PROTOCOL_ERROR,
    );
}

#[test]
fn subscription_options_reserved_bits() {
    // 3.1.1: bits 2-7 of the requested QoS byte are reserved [MQTT-3.8.3-4].
    rejects(
        &[0x82, 0x06, 0x00, 0x01, 0x00, 0x01, b'a', 0x04],
        V3,
        DecodeError::InvalidSubscriptionOptions(0x04),
        MALFORMED,
    );
    // 5.0: bits 6-7 reserved [MQTT-3.8.3-5], Retain Handling 3 is malformed.
    rejects(
        &[0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, b'a', 0x40],
        V5,
        DecodeError::InvalidSubscriptionOptions(0x40),
        MALFORMED,
    );
    rejects(
        &[0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, b'a', 0x30],
        V5,
        DecodeError::InvalidSubscriptionOptions(0x30),
        MALFORMED,
    );
}

#[test]
fn no_local_on_shared_subscription_mqtt_3_8_3_4() {
    let body = cat(&[&[0x00, 0x01, 0x00, 0x00, 0x0A], b"$share/g/#", &[0x04]]);
    rejects(
        &framed(0x82, &body),
        V5,
        DecodeError::NoLocalOnSharedSubscription,
        PROTOCOL_ERROR,
    );
}

#[test]
fn ack_lists_without_reason_codes() {
    rejects(
        &[0x90, 0x02, 0x00, 0x01],
        V3,
        DecodeError::NoReasonCodes,
        MALFORMED,
    );
    rejects(
        &[0x90, 0x03, 0x00, 0x01, 0x00],
        V5,
        DecodeError::NoReasonCodes,
        MALFORMED,
    );
    rejects(
        &[0xB0, 0x03, 0x00, 0x01, 0x00],
        V5,
        DecodeError::NoReasonCodes,
        MALFORMED,
    );
}

// ---------------------------------------------------------------- reason codes (§2.4)

#[test]
fn bad_reason_codes() {
    let bad = |packet_type, code| DecodeError::InvalidReasonCode { packet_type, code };
    // PUBACK may not carry 0x81; PUBREL only 0x00 / 0x92.
    rejects(
        &[0x40, 0x03, 0x00, 0x01, 0x81],
        V5,
        bad(PUBACK, 0x81),
        MALFORMED,
    );
    rejects(
        &[0x50, 0x03, 0x00, 0x01, 0x92],
        V5,
        bad(PUBREC, 0x92),
        MALFORMED,
    );
    rejects(
        &[0x62, 0x03, 0x00, 0x01, 0x10],
        V5,
        bad(PUBREL, 0x10),
        MALFORMED,
    );
    rejects(
        &[0x70, 0x03, 0x00, 0x01, 0x80],
        V5,
        bad(PUBCOMP, 0x80),
        MALFORMED,
    );
    // SUBACK: 3.1.1 knows only 0x00-0x02 and 0x80 [MQTT-3.9.3-2].
    rejects(
        &[0x90, 0x03, 0x00, 0x01, 0x03],
        V3,
        bad(SUBACK, 0x03),
        MALFORMED,
    );
    rejects(
        &[0x90, 0x04, 0x00, 0x01, 0x00, 0x03],
        V5,
        bad(SUBACK, 0x03),
        MALFORMED,
    );
    rejects(
        &[0xB0, 0x04, 0x00, 0x01, 0x00, 0x10],
        V5,
        bad(UNSUBACK, 0x10),
        MALFORMED,
    );
    rejects(&[0xE0, 0x01, 0x05], V5, bad(DISCONNECT, 0x05), MALFORMED);
    rejects(&[0xF0, 0x01, 0x01], V5, bad(AUTH, 0x01), MALFORMED);
    // CONNACK: 3.1.1 return codes 0-5 [MQTT-3.2.2-5]; MQTT 5 list of §3.2.2.2.
    rejects(&[0x20, 0x02, 0x00, 0x06], V3, bad(CONNACK, 0x06), MALFORMED);
    rejects(
        &[0x20, 0x03, 0x00, 0x01, 0x00],
        V5,
        bad(CONNACK, 0x01),
        MALFORMED,
    );
    rejects(
        &[0x20, 0x03, 0x00, 0x8E, 0x00],
        V5,
        bad(CONNACK, 0x8E),
        MALFORMED,
    );
}

// ---------------------------------------------------------------- properties (§2.2.2)

#[test]
fn property_not_allowed_on_packet() {
    let bad = |id, packet_type| DecodeError::PropertyNotAllowed { id, packet_type };
    // Session Expiry Interval on PUBLISH.
    rejects(
        &[0x30, 0x09, 0x00, 0x01, b't', 0x05, 0x11, 0, 0, 0, 1],
        V5,
        bad(0x11, PUBLISH),
        MALFORMED,
    );
    // Topic Alias on CONNECT.
    rejects(
        &connect_with_props(&[0x23, 0x00, 0x01]),
        V5,
        bad(0x23, CONNECT),
        MALFORMED,
    );
    // Will Delay Interval on CONNECT (belongs to the Will properties).
    rejects(
        &connect_with_props(&[0x18, 0, 0, 0, 1]),
        V5,
        bad(0x18, CONNECT),
        MALFORMED,
    );
    // Reason String on SUBSCRIBE.
    rejects(
        &[
            0x82, 0x0B, 0x00, 0x01, 0x04, 0x1F, 0x00, 0x01, b'x', 0x00, 0x01, b'a', 0x00,
        ],
        V5,
        bad(0x1F, SUBSCRIBE),
        MALFORMED,
    );
    // Subscription Identifier on UNSUBSCRIBE.
    rejects(
        &[0xA2, 0x07, 0x00, 0x01, 0x02, 0x0B, 0x01, 0x00, 0x00],
        V5,
        bad(0x0B, UNSUBSCRIBE),
        MALFORMED,
    );
    // Server Reference on PUBACK.
    rejects(
        &[0x40, 0x08, 0x00, 0x01, 0x00, 0x04, 0x1C, 0x00, 0x01, b's'],
        V5,
        bad(0x1C, PUBACK),
        MALFORMED,
    );
    // Content Type on DISCONNECT.
    rejects(
        &[0xE0, 0x06, 0x00, 0x04, 0x03, 0x00, 0x01, b'j'],
        V5,
        bad(0x03, DISCONNECT),
        MALFORMED,
    );
    // Maximum QoS on AUTH.
    rejects(
        &[0xF0, 0x04, 0x18, 0x02, 0x24, 0x01],
        V5,
        bad(0x24, AUTH),
        MALFORMED,
    );
    // Session Expiry Interval in the Will properties (packet type 0 there).
    rejects(
        &connect(
            V5,
            0x06,
            b"\x00\x01c\x05\x11\x00\x00\x00\x01\x00\x01t\x00\x00",
        ),
        V5,
        bad(0x11, 0),
        MALFORMED,
    );
    // An identifier that does not exist at all.
    rejects(
        &[0x30, 0x06, 0x00, 0x01, b't', 0x02, 0x7F, 0x00],
        V5,
        DecodeError::UnknownProperty(0x7F),
        MALFORMED,
    );
}

fn connect_with_props(props: &[u8]) -> Vec<u8> {
    let body = cat(&[
        b"\x00\x04MQTT\x05\x02\x00\x3C",
        &[props.len() as u8],
        props,
        b"\x00\x01c",
    ]);
    framed(0x10, &body)
}

#[test]
fn duplicate_property_0x82() {
    // Message Expiry Interval twice on PUBLISH [MQTT-2.2.2-?: "It is a Protocol Error to
    // include ... more than once"].
    rejects(
        &[
            0x30, 0x0E, 0x00, 0x01, b't', 0x0A, 0x02, 0, 0, 0, 1, 0x02, 0, 0, 0, 2,
        ],
        V5,
        DecodeError::DuplicateProperty(0x02),
        PROTOCOL_ERROR,
    );
    // Receive Maximum twice on CONNECT.
    rejects(
        &connect_with_props(&[0x21, 0x00, 0x01, 0x21, 0x00, 0x02]),
        V5,
        DecodeError::DuplicateProperty(0x21),
        PROTOCOL_ERROR,
    );
    // Reason String twice on PUBACK.
    rejects(
        &[
            0x40, 0x0C, 0x00, 0x01, 0x80, 0x08, 0x1F, 0x00, 0x01, b'a', 0x1F, 0x00, 0x01, b'b',
        ],
        V5,
        DecodeError::DuplicateProperty(0x1F),
        PROTOCOL_ERROR,
    );
    // Subscription Identifier twice on SUBSCRIBE (once there; many only on PUBLISH).
    rejects(
        &[
            0x82, 0x0B, 0x00, 0x01, 0x04, 0x0B, 0x01, 0x0B, 0x02, 0x00, 0x01, b'a', 0x00,
        ],
        V5,
        DecodeError::DuplicateProperty(0x0B),
        PROTOCOL_ERROR,
    );
    // User Property and PUBLISH's Subscription Identifier may repeat.
    let ok = [
        0x30, 0x0A, 0x00, 0x01, b't', 0x04, 0x0B, 0x01, 0x0B, 0x02, 0xAA, 0xBB,
    ];
    let mut buf = BytesMut::from(&ok[..]);
    let Ok(Some(Packet::Publish(p))) = Packet::decode(&mut buf, V5, MAX) else {
        panic!()
    };
    assert_eq!(p.properties.subscription_identifiers, vec![1, 2]);
    assert_eq!(&p.payload[..], &[0xAA, 0xBB]);
}

#[test]
fn property_values_out_of_range() {
    // Receive Maximum 0 [MQTT-3.1.2-?], Maximum Packet Size 0, Payload Format Indicator 2,
    // Subscription Identifier 0 [MQTT-3.8.2.1.2].
    rejects(
        &connect_with_props(&[0x21, 0x00, 0x00]),
        V5,
        DecodeError::InvalidPropertyValue(0x21),
        PROTOCOL_ERROR,
    );
    rejects(
        &connect_with_props(&[0x27, 0, 0, 0, 0]),
        V5,
        DecodeError::InvalidPropertyValue(0x27),
        PROTOCOL_ERROR,
    );
    rejects(
        &connect_with_props(&[0x19, 0x02]),
        V5,
        DecodeError::InvalidPropertyValue(0x19),
        PROTOCOL_ERROR,
    );
    rejects(
        &[0x30, 0x06, 0x00, 0x01, b't', 0x02, 0x01, 0x02],
        V5,
        DecodeError::InvalidPropertyValue(0x01),
        PROTOCOL_ERROR,
    );
    rejects(
        &[
            0x82, 0x09, 0x00, 0x01, 0x02, 0x0B, 0x00, 0x00, 0x01, b'a', 0x00,
        ],
        V5,
        DecodeError::InvalidPropertyValue(0x0B),
        PROTOCOL_ERROR,
    );
}

// ---------------------------------------------------------------- CONNECT (§3.1)

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

// ---------------------------------------------------------------- encode errors

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
