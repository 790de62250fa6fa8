//! The fixed header (§2.1): reserved flags, remaining length, packet size, truncation.

use super::*;

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
