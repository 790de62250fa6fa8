//! PUBLISH (§3.3), the SUBSCRIBE family (§3.8-§3.11) and reason codes (§2.4).

use super::*;

#[test]
fn qos_3_mqtt_3_3_1_4() {
    rejects_both(
        &[0x36, 0x05, 0x00, 0x01, b't', 0x00, 0x01],
        DecodeError::InvalidQoS,
        MALFORMED,
    );
    // SUBSCRIBE requested QoS 3: malformed in 3.1.1 [MQTT-3-8.3-4], a Protocol Error in
    // 5.0 (§3.8.3.1).
    rejects(
        &[0x82, 0x06, 0x00, 0x01, 0x00, 0x01, b'a', 0x03],
        V3,
        DecodeError::InvalidQoS,
        MALFORMED,
    );
    rejects(
        &[0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, b'a', 0x03],
        V5,
        DecodeError::SubscriptionOptionValue(0x03),
        PROTOCOL_ERROR,
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
    // 5.0: bits 6-7 reserved, a malformed packet [MQTT-3.8.3-5].
    rejects(
        &[0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, b'a', 0x40],
        V5,
        DecodeError::InvalidSubscriptionOptions(0x40),
        MALFORMED,
    );
    // Retain Handling 3 and Maximum QoS 3 are Protocol Errors (§3.8.3.1).
    for options in [0x30, 0x03] {
        rejects(
            &[0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, b'a', options],
            V5,
            DecodeError::SubscriptionOptionValue(options),
            PROTOCOL_ERROR,
        );
    }
}

/// [MQTT-1.5.5-1]: a variable byte integer uses the fewest bytes its value needs; a longer
/// form (a last byte of 0 after a continuation) is malformed, wherever it appears.
#[test]
fn variable_byte_integer_not_in_shortest_form_mqtt_1_5_5_1() {
    // PINGREQ whose remaining length 0 is written in two bytes.
    rejects(
        &[0xC0, 0x80, 0x00],
        V5,
        DecodeError::MalformedRemainingLength,
        MALFORMED,
    );
    // A PUBLISH whose property length 0 is written in two bytes.
    rejects(
        &[0x30, 0x05, 0x00, 0x01, b't', 0x80, 0x00],
        V5,
        DecodeError::MalformedRemainingLength,
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
