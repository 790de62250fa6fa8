//! Strategies: arbitrary valid packets of every type, for both protocol versions.

use bytes::Bytes;
use proptest::prelude::*;
use shardmq::codec::*;

pub(super) fn mqtt_str() -> impl Strategy<Value = MqttStr> {
    "[a-zA-Z0-9 _é€𝄞/-]{0,10}".prop_map(MqttStr::from)
}

pub(super) fn binary() -> impl Strategy<Value = Bytes> {
    prop::collection::vec(any::<u8>(), 0..12).prop_map(Bytes::from)
}

pub(super) fn payload() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        4 => prop::collection::vec(any::<u8>(), 0..40),
        1 => prop::collection::vec(any::<u8>(), 100..300),
    ]
    .prop_map(Bytes::from)
}

pub(super) fn topic_name() -> impl Strategy<Value = MqttStr> {
    "[a-z0-9$é]{0,4}(/[a-zA-Z0-9 €]{0,4}){0,3}"
        .prop_filter("non-empty", |s| !s.is_empty())
        .prop_map(MqttStr::from)
}

pub(super) fn topic_filter(v5: bool) -> impl Strategy<Value = MqttStr> {
    let level = prop_oneof![Just("+".to_string()), "[a-z0-9é]{0,4}"];
    let plain = (prop::collection::vec(level, 1..4), any::<bool>()).prop_map(|(levels, hash)| {
        let mut f = levels.join("/");
        if hash {
            f.push_str(if f.is_empty() { "#" } else { "/#" });
        }
        if f.is_empty() {
            f.push('+');
        }
        f
    });
    let shared = v5;
    (plain, "[a-z]{1,4}", any::<bool>()).prop_map(move |(f, group, share)| {
        if shared && share {
            MqttStr::from(format!("$share/{group}/{f}"))
        } else {
            MqttStr::from(f)
        }
    })
}

pub(super) fn qos() -> impl Strategy<Value = QoS> {
    prop_oneof![
        Just(QoS::AtMostOnce),
        Just(QoS::AtLeastOnce),
        Just(QoS::ExactlyOnce)
    ]
}

pub(super) fn packet_id() -> impl Strategy<Value = u16> {
    1..=u16::MAX
}

pub(super) fn flag() -> impl Strategy<Value = u8> {
    0u8..=1
}

pub(super) fn user_props() -> impl Strategy<Value = Vec<UserProperty>> {
    prop::collection::vec((mqtt_str(), mqtt_str()), 0..3)
}

pub(super) fn opt<T: std::fmt::Debug + Clone>(
    s: impl Strategy<Value = T>,
) -> impl Strategy<Value = Option<T>> {
    prop::option::weighted(0.3, s)
}

pub(super) fn var_int() -> impl Strategy<Value = u32> {
    prop_oneof![1u32..=127, 128u32..=16_383, 16_384u32..=268_435_455]
}

pub(super) fn reason(codes: &'static [u8]) -> impl Strategy<Value = ReasonCode> {
    prop::sample::select(codes).prop_map(ReasonCode)
}

pub(super) const CONNACK_V5: &[u8] = &[
    0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97,
    0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F,
];
/// MQTT 5 codes that 3.1.1 return codes 0-5 map to and from.
pub(super) const CONNACK_V3: &[u8] = &[0x00, 0x84, 0x85, 0x88, 0x86, 0x87];
pub(super) const PUBACK_PUBREC: &[u8] = &[0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99];
pub(super) const PUBREL_PUBCOMP: &[u8] = &[0x00, 0x92];
pub(super) const SUBACK_V5: &[u8] = &[
    0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2,
];
pub(super) const SUBACK_V3: &[u8] = &[0x00, 0x01, 0x02, 0x80];
pub(super) const UNSUBACK_V5: &[u8] = &[0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91];
pub(super) const DISCONNECT_V5: &[u8] = &[
    0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95,
    0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2,
];
pub(super) const AUTH_V5: &[u8] = &[0x00, 0x18, 0x19];

pub(super) fn connect_props() -> impl Strategy<Value = ConnectProperties> {
    (
        opt(any::<u32>()),
        opt(1..=u16::MAX),
        opt(1..=u32::MAX),
        opt(any::<u16>()),
        opt(flag()),
        opt(flag()),
        user_props(),
        opt(mqtt_str()),
        opt(binary()),
    )
        .prop_map(|(a, b, c, d, e, f, g, h, i)| ConnectProperties {
            session_expiry_interval: a,
            receive_maximum: b,
            maximum_packet_size: c,
            topic_alias_maximum: d,
            request_response_information: e,
            request_problem_information: f,
            user_properties: g,
            authentication_method: h,
            authentication_data: i,
        })
}

pub(super) fn will_props() -> impl Strategy<Value = WillProperties> {
    (
        opt(any::<u32>()),
        opt(flag()),
        opt(any::<u32>()),
        opt(mqtt_str()),
        opt(topic_name()),
        opt(binary()),
        user_props(),
    )
        .prop_map(|(a, b, c, d, e, f, g)| WillProperties {
            will_delay_interval: a,
            payload_format_indicator: b,
            message_expiry_interval: c,
            content_type: d,
            response_topic: e,
            correlation_data: f,
            user_properties: g,
        })
}

pub(super) fn connack_props() -> impl Strategy<Value = ConnAckProperties> {
    (
        (
            opt(any::<u32>()),
            opt(1..=u16::MAX),
            opt(flag()),
            opt(flag()),
            opt(1..=u32::MAX),
            opt(mqtt_str()),
            opt(any::<u16>()),
            opt(mqtt_str()),
        ),
        (
            user_props(),
            opt(flag()),
            opt(flag()),
            opt(flag()),
            opt(any::<u16>()),
            opt(mqtt_str()),
            opt(mqtt_str()),
            opt(mqtt_str()),
            opt(binary()),
        ),
    )
        .prop_map(|((a, b, c, d, e, f, g, h), (i, j, k, l, m, n, o, p, q))| {
            ConnAckProperties {
                session_expiry_interval: a,
                receive_maximum: b,
                maximum_qos: c,
                retain_available: d,
                maximum_packet_size: e,
                assigned_client_identifier: f,
                topic_alias_maximum: g,
                reason_string: h,
                user_properties: i,
                wildcard_subscription_available: j,
                subscription_identifiers_available: k,
                shared_subscription_available: l,
                server_keep_alive: m,
                response_information: n,
                server_reference: o,
                authentication_method: p,
                authentication_data: q,
            }
        })
}

pub(super) fn publish_props() -> impl Strategy<Value = PublishProperties> {
    (
        opt(flag()),
        opt(any::<u32>()),
        opt(1..=u16::MAX),
        opt(topic_name()),
        opt(binary()),
        user_props(),
        prop::collection::vec(var_int(), 0..3),
        opt(mqtt_str()),
    )
        .prop_map(|(a, b, c, d, e, f, g, h)| PublishProperties {
            payload_format_indicator: a,
            message_expiry_interval: b,
            topic_alias: c,
            response_topic: d,
            correlation_data: e,
            user_properties: f,
            subscription_identifiers: g,
            content_type: h,
        })
}

pub(super) fn ack_props() -> impl Strategy<Value = AckProperties> {
    (opt(mqtt_str()), user_props()).prop_map(|(reason_string, user_properties)| AckProperties {
        reason_string,
        user_properties,
    })
}

pub(super) fn v5(protocol: Protocol) -> bool {
    protocol.is_v5()
}

pub(super) fn connect(protocol: Protocol) -> impl Strategy<Value = Packet> {
    let v5 = v5(protocol);
    let will = (topic_name(), binary(), qos(), any::<bool>(), will_props()).prop_map(
        move |(topic, payload, qos, retain, properties)| Will {
            topic,
            payload,
            qos,
            retain,
            properties: if v5 { properties } else { Default::default() },
        },
    );
    (
        any::<bool>(),
        any::<u16>(),
        connect_props(),
        mqtt_str(),
        opt(will),
        opt(mqtt_str()),
        opt(binary()),
    )
        .prop_map(
            move |(clean_start, keep_alive_secs, props, client_id, will, username, password)| {
                // [MQTT-3.1.2-22]: before MQTT 5 a password needs a user name.
                let username = if !v5 && password.is_some() && username.is_none() {
                    Some(MqttStr::from_static("u"))
                } else {
                    username
                };
                Packet::Connect(Box::new(Connect {
                    protocol,
                    clean_start,
                    keep_alive_secs,
                    properties: if v5 { props } else { Default::default() },
                    client_id,
                    will,
                    username,
                    password,
                }))
            },
        )
}

pub(super) fn connack(protocol: Protocol) -> impl Strategy<Value = Packet> {
    let v5 = v5(protocol);
    (
        any::<bool>(),
        reason(if v5 { CONNACK_V5 } else { CONNACK_V3 }),
        connack_props(),
    )
        .prop_map(move |(session_present, reason_code, properties)| {
            Packet::ConnAck(ConnAck {
                session_present,
                reason_code,
                properties: if v5 { properties } else { Default::default() },
            })
        })
}

pub(super) fn publish(protocol: Protocol) -> impl Strategy<Value = Packet> {
    let v5 = v5(protocol);
    (
        qos(),
        any::<bool>(),
        any::<bool>(),
        topic_name(),
        any::<bool>(),
        packet_id(),
        publish_props(),
        payload(),
    )
        .prop_map(
            move |(qos, dup, retain, topic, drop_topic, id, properties, payload)| {
                let mut p = Publish {
                    dup: dup && qos != QoS::AtMostOnce,
                    qos,
                    retain,
                    topic,
                    packet_id: if qos == QoS::AtMostOnce { 0 } else { id },
                    properties: if v5 { properties } else { Default::default() },
                    payload,
                };
                // MQTT 5: a Topic Alias may stand in for the topic [MQTT-3.3.2-1].
                if drop_topic && p.properties.topic_alias.is_some() {
                    p.topic = MqttStr::default();
                }
                Packet::Publish(p)
            },
        )
}

pub(super) fn pub_response(protocol: Protocol) -> impl Strategy<Value = Packet> {
    let v5 = v5(protocol);
    (
        0usize..4,
        packet_id(),
        any::<prop::sample::Index>(),
        ack_props(),
    )
        .prop_map(move |(kind, packet_id, code, properties)| {
            let codes = if kind < 2 {
                PUBACK_PUBREC
            } else {
                PUBREL_PUBCOMP
            };
            let r = PubResponse {
                packet_id,
                reason_code: if v5 {
                    ReasonCode(*code.get(codes))
                } else {
                    ReasonCode::SUCCESS
                },
                properties: if v5 { properties } else { Default::default() },
            };
            match kind {
                0 => Packet::PubAck(r),
                1 => Packet::PubRec(r),
                2 => Packet::PubRel(r),
                _ => Packet::PubComp(r),
            }
        })
}

pub(super) fn subscribe(protocol: Protocol) -> impl Strategy<Value = Packet> {
    let v5 = v5(protocol);
    let filter = (
        topic_filter(v5),
        qos(),
        any::<bool>(),
        any::<bool>(),
        0u8..3,
    )
        .prop_map(move |(filter, qos, no_local, rap, rh)| {
            let shared = filter.starts_with("$share/");
            let options = if v5 {
                SubscriptionOptions {
                    qos,
                    // [MQTT-3.8.3-4]: No Local is not allowed on a shared subscription.
                    no_local: no_local && !shared,
                    retain_as_published: rap,
                    retain_handling: match rh {
                        0 => RetainHandling::OnSubscribe,
                        1 => RetainHandling::OnNewSubscription,
                        _ => RetainHandling::Never,
                    },
                }
            } else {
                SubscriptionOptions::qos(qos)
            };
            SubscribeFilter { filter, options }
        });
    (
        packet_id(),
        opt(var_int()),
        user_props(),
        prop::collection::vec(filter, 1..4),
    )
        .prop_map(move |(packet_id, sub_id, ups, filters)| {
            Packet::Subscribe(Subscribe {
                packet_id,
                properties: if v5 {
                    SubscribeProperties {
                        subscription_identifier: sub_id,
                        user_properties: ups,
                    }
                } else {
                    Default::default()
                },
                filters,
            })
        })
}

pub(super) fn suback(protocol: Protocol) -> impl Strategy<Value = Packet> {
    let v5 = v5(protocol);
    (
        packet_id(),
        ack_props(),
        prop::collection::vec(reason(if v5 { SUBACK_V5 } else { SUBACK_V3 }), 1..5),
    )
        .prop_map(move |(packet_id, properties, reason_codes)| {
            Packet::SubAck(SubAck {
                packet_id,
                properties: if v5 { properties } else { Default::default() },
                reason_codes,
            })
        })
}

pub(super) fn unsubscribe(protocol: Protocol) -> impl Strategy<Value = Packet> {
    let v5 = v5(protocol);
    (
        packet_id(),
        user_props(),
        prop::collection::vec(topic_filter(v5), 1..4),
    )
        .prop_map(move |(packet_id, user_properties, filters)| {
            Packet::Unsubscribe(Unsubscribe {
                packet_id,
                properties: if v5 {
                    UnsubscribeProperties { user_properties }
                } else {
                    Default::default()
                },
                filters,
            })
        })
}

pub(super) fn unsuback(protocol: Protocol) -> impl Strategy<Value = Packet> {
    let v5 = v5(protocol);
    (
        packet_id(),
        ack_props(),
        prop::collection::vec(reason(UNSUBACK_V5), 1..5),
    )
        .prop_map(move |(packet_id, properties, reason_codes)| {
            Packet::UnsubAck(if v5 {
                UnsubAck {
                    packet_id,
                    properties,
                    reason_codes,
                }
            } else {
                UnsubAck {
                    packet_id,
                    ..Default::default()
                }
            })
        })
}

pub(super) fn disconnect(protocol: Protocol) -> impl Strategy<Value = Packet> {
    let v5 = v5(protocol);
    (
        reason(DISCONNECT_V5),
        opt(any::<u32>()),
        opt(mqtt_str()),
        user_props(),
        opt(mqtt_str()),
    )
        .prop_map(move |(reason_code, a, b, c, d)| {
            Packet::Disconnect(if v5 {
                Disconnect {
                    reason_code,
                    properties: DisconnectProperties {
                        session_expiry_interval: a,
                        reason_string: b,
                        user_properties: c,
                        server_reference: d,
                    },
                }
            } else {
                Disconnect::default()
            })
        })
}

pub(super) fn auth() -> impl Strategy<Value = Packet> {
    (
        reason(AUTH_V5),
        opt(mqtt_str()),
        opt(binary()),
        opt(mqtt_str()),
        user_props(),
    )
        .prop_map(|(reason_code, a, b, c, d)| {
            Packet::Auth(Auth {
                reason_code,
                properties: AuthProperties {
                    authentication_method: a,
                    authentication_data: b,
                    reason_string: c,
                    user_properties: d,
                },
            })
        })
}

/// Any valid packet for a connection speaking `protocol`.
pub(super) fn packet(protocol: Protocol) -> BoxedStrategy<Packet> {
    let base = prop_oneof![
        1 => connect(protocol),
        1 => connack(protocol),
        4 => publish(protocol),
        2 => pub_response(protocol),
        1 => subscribe(protocol),
        1 => suback(protocol),
        1 => unsubscribe(protocol),
        1 => unsuback(protocol),
        1 => Just(Packet::PingReq),
        1 => Just(Packet::PingResp),
        1 => disconnect(protocol),
    ];
    if protocol.is_v5() {
        prop_oneof![10 => base, 1 => auth()].boxed()
    } else {
        base.boxed()
    }
}

pub(super) fn protocol() -> impl Strategy<Value = Protocol> {
    prop_oneof![
        Just(Protocol::V31),
        Just(Protocol::V311),
        Just(Protocol::V5)
    ]
}

pub(super) fn packet_any_protocol() -> impl Strategy<Value = (Protocol, Packet)> {
    protocol().prop_flat_map(|p| (Just(p), packet(p)))
}
