//! Property tests over generated valid packets (every packet type, both protocol versions,
//! every property), frame splitting at every byte offset, and a seeded random-bytes /
//! mutated-frame run that must never panic.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use shardmq::codec::*;

const MAX: usize = MAX_FRAME_BYTES;

// ---------------------------------------------------------------- strategies

fn mqtt_str() -> impl Strategy<Value = MqttStr> {
    "[a-zA-Z0-9 _é€𝄞/-]{0,10}".prop_map(MqttStr::from)
}

fn binary() -> impl Strategy<Value = Bytes> {
    prop::collection::vec(any::<u8>(), 0..12).prop_map(Bytes::from)
}

fn payload() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        4 => prop::collection::vec(any::<u8>(), 0..40),
        1 => prop::collection::vec(any::<u8>(), 100..300),
    ]
    .prop_map(Bytes::from)
}

fn topic_name() -> impl Strategy<Value = MqttStr> {
    "[a-z0-9$é]{0,4}(/[a-zA-Z0-9 €]{0,4}){0,3}"
        .prop_filter("non-empty", |s| !s.is_empty())
        .prop_map(MqttStr::from)
}

fn topic_filter(v5: bool) -> impl Strategy<Value = MqttStr> {
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

fn qos() -> impl Strategy<Value = QoS> {
    prop_oneof![
        Just(QoS::AtMostOnce),
        Just(QoS::AtLeastOnce),
        Just(QoS::ExactlyOnce)
    ]
}

fn packet_id() -> impl Strategy<Value = u16> {
    1..=u16::MAX
}

fn flag() -> impl Strategy<Value = u8> {
    0u8..=1
}

fn user_props() -> impl Strategy<Value = Vec<UserProperty>> {
    prop::collection::vec((mqtt_str(), mqtt_str()), 0..3)
}

fn opt<T: std::fmt::Debug + Clone>(
    s: impl Strategy<Value = T>,
) -> impl Strategy<Value = Option<T>> {
    prop::option::weighted(0.3, s)
}

fn var_int() -> impl Strategy<Value = u32> {
    prop_oneof![1u32..=127, 128u32..=16_383, 16_384u32..=268_435_455]
}

fn reason(codes: &'static [u8]) -> impl Strategy<Value = ReasonCode> {
    prop::sample::select(codes).prop_map(ReasonCode)
}

const CONNACK_V5: &[u8] = &[
    0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97,
    0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F,
];
/// MQTT 5 codes that 3.1.1 return codes 0-5 map to and from.
const CONNACK_V3: &[u8] = &[0x00, 0x84, 0x85, 0x88, 0x86, 0x87];
const PUBACK_PUBREC: &[u8] = &[0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99];
const PUBREL_PUBCOMP: &[u8] = &[0x00, 0x92];
const SUBACK_V5: &[u8] = &[
    0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2,
];
const SUBACK_V3: &[u8] = &[0x00, 0x01, 0x02, 0x80];
const UNSUBACK_V5: &[u8] = &[0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91];
const DISCONNECT_V5: &[u8] = &[
    0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95,
    0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2,
];
const AUTH_V5: &[u8] = &[0x00, 0x18, 0x19];

fn connect_props() -> impl Strategy<Value = ConnectProperties> {
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

fn will_props() -> impl Strategy<Value = WillProperties> {
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

fn connack_props() -> impl Strategy<Value = ConnAckProperties> {
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

fn publish_props() -> impl Strategy<Value = PublishProperties> {
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

fn ack_props() -> impl Strategy<Value = AckProperties> {
    (opt(mqtt_str()), user_props()).prop_map(|(reason_string, user_properties)| AckProperties {
        reason_string,
        user_properties,
    })
}

fn v5(protocol: Protocol) -> bool {
    protocol.is_v5()
}

fn connect(protocol: Protocol) -> impl Strategy<Value = Packet> {
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

fn connack(protocol: Protocol) -> impl Strategy<Value = Packet> {
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

fn publish(protocol: Protocol) -> impl Strategy<Value = Packet> {
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

fn pub_response(protocol: Protocol) -> impl Strategy<Value = Packet> {
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

fn subscribe(protocol: Protocol) -> impl Strategy<Value = Packet> {
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

fn suback(protocol: Protocol) -> impl Strategy<Value = Packet> {
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

fn unsubscribe(protocol: Protocol) -> impl Strategy<Value = Packet> {
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

fn unsuback(protocol: Protocol) -> impl Strategy<Value = Packet> {
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

fn disconnect(protocol: Protocol) -> impl Strategy<Value = Packet> {
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

fn auth() -> impl Strategy<Value = Packet> {
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
fn packet(protocol: Protocol) -> BoxedStrategy<Packet> {
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

fn protocol() -> impl Strategy<Value = Protocol> {
    prop_oneof![
        Just(Protocol::V31),
        Just(Protocol::V311),
        Just(Protocol::V5)
    ]
}

fn packet_any_protocol() -> impl Strategy<Value = (Protocol, Packet)> {
    protocol().prop_flat_map(|p| (Just(p), packet(p)))
}

// ---------------------------------------------------------------- helpers

fn encode(packet: &Packet, protocol: Protocol) -> BytesMut {
    let mut out = BytesMut::new();
    packet
        .encode(protocol, &mut out)
        .expect("valid packet encodes");
    out
}

fn decode_one(frame: &[u8], protocol: Protocol) -> Packet {
    let mut buf = BytesMut::from(frame);
    let p = Packet::decode(&mut buf, protocol, MAX)
        .unwrap_or_else(|e| panic!("{frame:02x?}: {e:?}"))
        .expect("complete");
    assert!(buf.is_empty());
    p
}

/// The borrowed decoder must agree with the owned one on the same bytes: same `None`, same
/// error, same fields, same frame length.
fn assert_view_agrees(buf: &[u8], protocol: Protocol, max: usize) {
    let owned = Packet::decode(&mut BytesMut::from(buf), protocol, max);
    let view = PacketView::decode(buf, protocol, max);
    match (view, owned) {
        (Ok(None), Ok(None)) => {}
        (Err(a), Err(b)) => assert_eq!(a, b, "errors differ on {buf:02x?}"),
        (Ok(Some((PacketView::Other, len))), owned) => {
            let ty = buf[0] >> 4;
            assert!(
                !(3..=7).contains(&ty),
                "{buf:02x?}: view says Other for type {ty}"
            );
            assert!(len <= buf.len());
            if let Ok(Some(p)) = owned {
                assert_eq!(p.packet_type(), ty);
            }
        }
        (Ok(Some((PacketView::Publish(v), len))), Ok(Some(Packet::Publish(p)))) => {
            assert_eq!((v.dup, v.qos, v.retain), (p.dup, p.qos, p.retain));
            assert_eq!(v.topic, p.topic.as_str());
            assert_eq!(v.packet_id, p.packet_id);
            assert_eq!(v.decode_properties().unwrap(), p.properties);
            assert_eq!(v.payload, &p.payload[..]);
            assert_eq!(len, frame_len_of(buf));
        }
        (Ok(Some((PacketView::Ack(v), len))), Ok(Some(p))) => {
            let a = match &p {
                Packet::PubAck(a) | Packet::PubRec(a) | Packet::PubRel(a) | Packet::PubComp(a) => a,
                other => panic!("{buf:02x?}: view Ack, owned {other:?}"),
            };
            assert_eq!(v.packet_type, p.packet_type());
            assert_eq!((v.packet_id, v.reason_code), (a.packet_id, a.reason_code));
            assert_eq!(v.decode_properties().unwrap(), a.properties);
            assert_eq!(len, frame_len_of(buf));
        }
        (view, owned) => panic!("{buf:02x?}: view {view:?}, owned {owned:?}"),
    }
}

fn frame_len_of(buf: &[u8]) -> usize {
    parse_frame_header(buf, usize::MAX)
        .unwrap()
        .unwrap()
        .frame_len()
}

// ---------------------------------------------------------------- properties

proptest! {
    #![proptest_config(Config { cases: 3000, failure_persistence: None, ..Config::default() })]

    /// encode → decode gives the packet back, and encode is deterministic and canonical.
    #[test]
    fn roundtrip((protocol, p) in packet_any_protocol()) {
        let frame = encode(&p, protocol);
        if let Packet::Publish(publish) = &p {
            prop_assert_eq!(publish.encoded_len(protocol).unwrap(), frame.len());
            let shared = publish.encode_shared(protocol).unwrap();
            let mut out = BytesMut::new();
            shared.write(publish.packet_id, publish.dup, &mut out);
            prop_assert_eq!(&out[..], &frame[..], "encode_shared differs from encode");
        }
        let header = parse_frame_header(&frame, MAX).unwrap().unwrap();
        prop_assert_eq!(header.frame_len(), frame.len());
        let back = decode_one(&frame, protocol);
        assert_view_agrees(&frame, protocol, MAX);
        prop_assert_eq!(&back, &p);
        prop_assert_eq!(&encode(&back, protocol)[..], &frame[..]);
    }

    /// Every valid frame split at every byte offset: the prefix is `Ok(None)` and stays in
    /// the buffer untouched; the rest completes the same packet.
    #[test]
    fn split_at_every_offset((protocol, p) in packet_any_protocol()) {
        let frame = encode(&p, protocol);
        // Long frames: every offset of the header and the first 64 bytes, then a stride.
        let offsets = (0..frame.len()).filter(|&i| i < 64 || i % 17 == 0 || i + 3 > frame.len());
        for at in offsets {
            let mut buf = BytesMut::with_capacity(frame.len());
            buf.extend_from_slice(&frame[..at]);
            let ptr = buf.as_ptr();
            prop_assert_eq!(Packet::decode(&mut buf, protocol, MAX), Ok(None), "split at {}", at);
            prop_assert_eq!(&buf[..], &frame[..at]);
            prop_assert_eq!(buf.as_ptr(), ptr);
            buf.extend_from_slice(&frame[at..]);
            prop_assert_eq!(Packet::decode(&mut buf, protocol, MAX), Ok(Some(p.clone())));
            prop_assert!(buf.is_empty());
        }
    }

    /// Two frames back to back decode one after the other.
    #[test]
    fn back_to_back((protocol, a, b) in protocol().prop_flat_map(|p| (Just(p), packet(p), packet(p)))) {
        let mut buf = encode(&a, protocol);
        buf.extend_from_slice(&encode(&b, protocol));
        prop_assert_eq!(Packet::decode(&mut buf, protocol, MAX), Ok(Some(a)));
        prop_assert_eq!(Packet::decode(&mut buf, protocol, MAX), Ok(Some(b)));
        prop_assert!(buf.is_empty());
    }
}

#[test]
fn every_vector_split_at_every_offset() {
    // The full split check (every offset, no stride) on a large generated sample.
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]),
    );
    let strategy = packet_any_protocol();
    for _ in 0..300 {
        let (protocol, p) = strategy.new_tree(&mut runner).unwrap().current();
        let frame = encode(&p, protocol);
        for at in 0..frame.len() {
            let mut buf = BytesMut::from(&frame[..at]);
            assert_eq!(Packet::decode(&mut buf, protocol, MAX), Ok(None));
            assert_eq!(&buf[..], &frame[..at]);
            buf.extend_from_slice(&frame[at..]);
            assert_eq!(Packet::decode(&mut buf, protocol, MAX), Ok(Some(p.clone())));
        }
    }
}

// ---------------------------------------------------------------- random bytes

/// SplitMix64: small, seedable, good enough to drive mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
}

/// Decodes everything in `input` with every protocol; whatever decodes must re-encode and
/// decode to the same packet. Returns how many packets decoded.
fn decode_stream(input: &[u8], max: usize) -> usize {
    let mut decoded = 0;
    for protocol in [Protocol::V31, Protocol::V311, Protocol::V5] {
        let mut buf = BytesMut::from(input);
        loop {
            let before = buf.len();
            assert_view_agrees(&buf, protocol, max);
            match Packet::decode(&mut buf, protocol, max) {
                Ok(Some(p)) => {
                    decoded += 1;
                    assert!(buf.len() < before, "decode made no progress");
                    let mut again = BytesMut::new();
                    // CONNECT re-encodes with its own protocol.
                    p.encode(protocol, &mut again)
                        .unwrap_or_else(|e| panic!("{input:02x?}: {p:?} does not encode: {e}"));
                    let back = Packet::decode(&mut again, protocol, MAX);
                    assert_eq!(back, Ok(Some(p)), "input {input:02x?}");
                    assert!(again.is_empty());
                }
                Ok(None) => {
                    assert_eq!(buf.len(), before);
                    break;
                }
                Err(_) => break,
            }
        }
    }
    decoded
}

#[test]
fn random_and_mutated_frames_never_panic() {
    let seed: u64 = std::env::var("CODEC_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5EED_C0DE_2024);
    let iterations: usize = std::env::var("CODEC_FUZZ_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000);
    println!(
        "random decode: seed {seed} ({iterations} iterations); rerun with CODEC_FUZZ_SEED={seed}"
    );
    let mut rng = Rng(seed);

    // A corpus of valid frames from the proptest strategies, seeded from the same seed.
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
    );
    let strategy = packet_any_protocol();
    let corpus: Vec<Vec<u8>> = (0..500)
        .map(|_| {
            let (protocol, p) = strategy.new_tree(&mut runner).unwrap().current();
            encode(&p, protocol).to_vec()
        })
        .collect();

    let mut decoded = 0;
    let mut input = Vec::with_capacity(512);
    for i in 0..iterations {
        input.clear();
        match i % 4 {
            // Pure random bytes, with a plausible first byte half of the time.
            0 => {
                let n = rng.below(48);
                input.extend((0..n).map(|_| rng.byte()));
                if !input.is_empty() && rng.next() & 1 == 0 {
                    input[0] = (input[0] & 0xF0) | [0, 0, 2, 0][rng.below(4)];
                    if input.len() > 1 {
                        input[1] = (input.len() - 2).min(127) as u8;
                    }
                }
            }
            // A valid frame with a few bytes changed.
            1 | 2 => {
                input.extend_from_slice(&corpus[rng.below(corpus.len())]);
                for _ in 0..1 + rng.below(3) {
                    let at = rng.below(input.len());
                    match rng.below(4) {
                        0 => input[at] = rng.byte(),
                        1 => input[at] ^= 1 << rng.below(8),
                        2 => input[at] = [0x00, 0x7F, 0x80, 0xFF, b'+', b'#'][rng.below(6)],
                        _ => input[at] = input[at].wrapping_add(1),
                    }
                }
            }
            // Two valid frames spliced, truncated or extended.
            _ => {
                let a = &corpus[rng.below(corpus.len())];
                let b = &corpus[rng.below(corpus.len())];
                input.extend_from_slice(a);
                input.extend_from_slice(b);
                match rng.below(3) {
                    0 => input.truncate(rng.below(input.len() + 1)),
                    1 => {
                        let n = rng.below(input.len());
                        input.drain(..n);
                    }
                    _ => input.extend((0..rng.below(8)).map(|_| rng.byte())),
                }
            }
        }
        let max = if rng.below(8) == 0 {
            rng.below(64)
        } else {
            MAX
        };
        decoded += decode_stream(&input, max);
    }
    println!("random decode: {decoded} packets decoded and round-tripped");
    assert!(
        decoded > iterations / 4,
        "mutations too destructive to be useful"
    );
}
