//! UTF-8 strings (§1.5.4) and topic names and filters (§4.7).

use super::*;

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
