//! SUBSCRIBE / SUBACK (§3.8, §3.9) and UNSUBSCRIBE / UNSUBACK (§3.10, §3.11).

use super::*;

#[test]
fn subscribe_v311() {
    let bytes = cat(&[
        &[0x82, 0x0C, 0x00, 0x0A],
        &[0x00, 0x03],
        b"a/#",
        &[0x01],
        &[0x00, 0x01],
        b"+",
        &[0x02],
    ]);
    let sub = Subscribe {
        packet_id: 10,
        properties: SubscribeProperties::default(),
        filters: vec![
            SubscribeFilter {
                filter: s("a/#"),
                options: SubscriptionOptions::qos(QoS::AtLeastOnce),
            },
            SubscribeFilter {
                filter: s("+"),
                options: SubscriptionOptions::qos(QoS::ExactlyOnce),
            },
        ],
    };
    both_ways_v3(&bytes, Packet::Subscribe(sub));
}

#[test]
fn subscribe_v5_options_and_properties() {
    let bytes = cat(&[
        &[0x82, 0x16, 0x00, 0x0A],
        &[0x09, 0x0B, 0x2A],
        &[0x26, 0x00, 0x01, b'k', 0x00, 0x01, b'v'],
        &[0x00, 0x03],
        b"a/#",
        // QoS 1 | No Local | Retain As Published | Retain Handling 2.
        &[0x2D],
        &[0x00, 0x01],
        b"+",
        &[0x00],
    ]);
    let sub = Subscribe {
        packet_id: 10,
        properties: SubscribeProperties {
            subscription_identifier: Some(42),
            user_properties: vec![up("k", "v")],
        },
        filters: vec![
            SubscribeFilter {
                filter: s("a/#"),
                options: SubscriptionOptions {
                    qos: QoS::AtLeastOnce,
                    no_local: true,
                    retain_as_published: true,
                    retain_handling: RetainHandling::Never,
                },
            },
            SubscribeFilter {
                filter: s("+"),
                options: SubscriptionOptions::default(),
            },
        ],
    };
    both_ways(&bytes, Protocol::V5, Packet::Subscribe(sub));
}

#[test]
fn subscribe_v5_shared_subscription() {
    let bytes = cat(&[
        &[0x82, 0x10, 0x00, 0x01, 0x00, 0x00, 0x0A],
        b"$share/g/#",
        &[0x11],
    ]);
    let sub = Subscribe {
        packet_id: 1,
        properties: SubscribeProperties::default(),
        filters: vec![SubscribeFilter {
            filter: s("$share/g/#"),
            options: SubscriptionOptions {
                qos: QoS::AtLeastOnce,
                retain_handling: RetainHandling::OnNewSubscription,
                ..Default::default()
            },
        }],
    };
    both_ways(&bytes, Protocol::V5, Packet::Subscribe(sub));
}

#[test]
fn suback_v311() {
    both_ways_v3(
        &[0x90, 0x05, 0x00, 0x0A, 0x01, 0x02, 0x80],
        Packet::SubAck(SubAck {
            packet_id: 10,
            properties: AckProperties::default(),
            reason_codes: vec![
                ReasonCode::GRANTED_QOS_1,
                ReasonCode::GRANTED_QOS_2,
                ReasonCode::UNSPECIFIED_ERROR,
            ],
        }),
    );
}

#[test]
fn suback_v5() {
    let bytes = cat(&[
        &[0x90, 0x0D, 0x00, 0x0A, 0x05, 0x1F, 0x00, 0x02],
        b"ok",
        &[0x00, 0x01, 0x02, 0x87, 0xA2],
    ]);
    both_ways(
        &bytes,
        Protocol::V5,
        Packet::SubAck(SubAck {
            packet_id: 10,
            properties: AckProperties {
                reason_string: Some(s("ok")),
                ..Default::default()
            },
            reason_codes: vec![
                ReasonCode::GRANTED_QOS_0,
                ReasonCode::GRANTED_QOS_1,
                ReasonCode::GRANTED_QOS_2,
                ReasonCode::NOT_AUTHORIZED,
                ReasonCode::WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED,
            ],
        }),
    );
}

#[test]
fn suback_v5_failure_codes_become_0x80_in_v311() {
    let ack = Packet::SubAck(SubAck {
        packet_id: 1,
        properties: AckProperties::default(),
        reason_codes: vec![ReasonCode::NOT_AUTHORIZED],
    });
    assert_eq!(encode(&ack, Protocol::V311), [0x90, 0x03, 0x00, 0x01, 0x80]);
}

#[test]
fn unsubscribe_v311() {
    let bytes = cat(&[
        &[0xA2, 0x0A, 0x00, 0x0B, 0x00, 0x03],
        b"a/b",
        &[0x00, 0x01],
        b"#",
    ]);
    both_ways_v3(
        &bytes,
        Packet::Unsubscribe(Unsubscribe {
            packet_id: 11,
            properties: UnsubscribeProperties::default(),
            filters: vec![s("a/b"), s("#")],
        }),
    );
}

#[test]
fn unsubscribe_v5() {
    let bytes = cat(&[&[0xA2, 0x08, 0x00, 0x0B, 0x00, 0x00, 0x03], b"a/b"]);
    both_ways(
        &bytes,
        Protocol::V5,
        Packet::Unsubscribe(Unsubscribe {
            packet_id: 11,
            properties: UnsubscribeProperties::default(),
            filters: vec![s("a/b")],
        }),
    );
    let bytes = cat(&[
        &[0xA2, 0x0F, 0x00, 0x0B, 0x07],
        &[0x26, 0x00, 0x01, b'k', 0x00, 0x01, b'v'],
        &[0x00, 0x03],
        b"a/b",
    ]);
    both_ways(
        &bytes,
        Protocol::V5,
        Packet::Unsubscribe(Unsubscribe {
            packet_id: 11,
            properties: UnsubscribeProperties {
                user_properties: vec![up("k", "v")],
            },
            filters: vec![s("a/b")],
        }),
    );
}

#[test]
fn unsuback_v311() {
    both_ways_v3(
        &[0xB0, 0x02, 0x00, 0x0B],
        Packet::UnsubAck(UnsubAck {
            packet_id: 11,
            ..Default::default()
        }),
    );
}

#[test]
fn unsuback_v5() {
    both_ways(
        &[0xB0, 0x05, 0x00, 0x0B, 0x00, 0x00, 0x11],
        Protocol::V5,
        Packet::UnsubAck(UnsubAck {
            packet_id: 11,
            properties: AckProperties::default(),
            reason_codes: vec![ReasonCode::SUCCESS, ReasonCode::NO_SUBSCRIPTION_EXISTED],
        }),
    );
}
