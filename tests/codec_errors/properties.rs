//! Properties (§2.2.2): not allowed on the packet, duplicated, out of range.

use super::*;

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
