//! Byte-exact vectors for every MQTT control packet in MQTT 3.1 / 3.1.1 and 5.0, written by
//! hand from the specifications, checked in both directions: the bytes decode to the packet,
//! and the packet encodes to exactly the bytes. Plus the zero-copy guarantee of decode.

use bytes::{Bytes, BytesMut};
use shardmq::codec::*;

const MAX: usize = MAX_FRAME_BYTES;

fn s(v: &'static str) -> MqttStr {
    MqttStr::from_static(v)
}

fn up(k: &'static str, v: &'static str) -> UserProperty {
    (s(k), s(v))
}

/// Decodes exactly one packet that fills `bytes`.
fn decode_all(bytes: &[u8], protocol: Protocol) -> Packet {
    let mut buf = BytesMut::from(bytes);
    let packet = Packet::decode(&mut buf, protocol, MAX)
        .unwrap_or_else(|e| panic!("decode {bytes:02x?}: {e}"))
        .expect("complete frame");
    assert!(buf.is_empty(), "{} bytes left over", buf.len());
    packet
}

fn encode(packet: &Packet, protocol: Protocol) -> Vec<u8> {
    let mut out = BytesMut::new();
    packet.encode(protocol, &mut out).expect("encode");
    out.to_vec()
}

/// The bytes decode to `packet` and `packet` encodes to the bytes.
fn both_ways(bytes: &[u8], protocol: Protocol, packet: Packet) {
    assert_eq!(decode_all(bytes, protocol), packet, "decode {bytes:02x?}");
    assert_eq!(encode(&packet, protocol), bytes, "encode {packet:?}");
}

/// Both ways in MQTT 3.1.1 and MQTT 3.1 (which encode identically).
fn both_ways_v3(bytes: &[u8], packet: Packet) {
    both_ways(bytes, Protocol::V311, packet.clone());
    both_ways(bytes, Protocol::V31, packet);
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

// ---------------------------------------------------------------- CONNECT (§3.1)

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

// ---------------------------------------------------------------- CONNACK (§3.2)

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

// ---------------------------------------------------------------- PUBLISH (§3.3)

#[test]
fn publish_v311_qos0() {
    let bytes = cat(&[&[0x30, 0x0A, 0x00, 0x03], b"a/b", b"hello"]);
    both_ways_v3(&bytes, Packet::Publish(Publish::new("a/b", &b"hello"[..])));
}

#[test]
fn publish_v311_qos1_dup_retain() {
    let bytes = cat(&[&[0x3B, 0x0C, 0x00, 0x03], b"a/b", &[0x00, 0x0A], b"hello"]);
    let p = Publish {
        dup: true,
        qos: QoS::AtLeastOnce,
        retain: true,
        topic: s("a/b"),
        packet_id: 10,
        properties: PublishProperties::default(),
        payload: Bytes::from_static(b"hello"),
    };
    both_ways_v3(&bytes, Packet::Publish(p));
}

#[test]
fn publish_v311_qos2_empty_payload() {
    let bytes = cat(&[&[0x34, 0x05, 0x00, 0x01], b"t", &[0xFF, 0xFF]]);
    let p = Publish {
        qos: QoS::ExactlyOnce,
        topic: s("t"),
        packet_id: 0xFFFF,
        ..Default::default()
    };
    both_ways_v3(&bytes, Packet::Publish(p));
}

#[test]
fn publish_v311_two_byte_remaining_length() {
    // 200 bytes of payload: remaining length 205 = 0xCD 0x01 (§1.5.5 / §2.2.3 example).
    let payload = vec![0xAB; 200];
    let bytes = cat(&[&[0x30, 0xCD, 0x01, 0x00, 0x03], b"a/b", &payload]);
    both_ways_v3(
        &bytes,
        Packet::Publish(Publish::new("a/b", Bytes::from(payload))),
    );
}

#[test]
fn publish_v5_qos0_no_properties() {
    let bytes = cat(&[&[0x30, 0x08, 0x00, 0x03], b"a/b", &[0x00], b"hi"]);
    both_ways(
        &bytes,
        Protocol::V5,
        Packet::Publish(Publish::new("a/b", &b"hi"[..])),
    );
}

#[test]
fn publish_v5_qos1_all_properties() {
    let bytes = cat(&[
        &[0x32, 0x2D, 0x00, 0x03],
        b"a/b",
        &[0x00, 0x01],
        &[0x23], // property length 35
        &[0x01, 0x01],
        &[0x02, 0x00, 0x00, 0x00, 0x3C],
        &[0x23, 0x00, 0x07],
        &[0x08, 0x00, 0x01, b'r'],
        &[0x09, 0x00, 0x02, 0x01, 0x02],
        &[0x26, 0x00, 0x01, b'k', 0x00, 0x01, b'v'],
        &[0x0B, 0x05],
        &[0x0B, 0x80, 0x01],
        &[0x03, 0x00, 0x01, b'j'],
        b"hi",
    ]);
    let p = Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: false,
        topic: s("a/b"),
        packet_id: 1,
        properties: PublishProperties {
            payload_format_indicator: Some(1),
            message_expiry_interval: Some(60),
            topic_alias: Some(7),
            response_topic: Some(s("r")),
            correlation_data: Some(Bytes::from_static(&[1, 2])),
            user_properties: vec![up("k", "v")],
            subscription_identifiers: vec![5, 128],
            content_type: Some(s("j")),
        },
        payload: Bytes::from_static(b"hi"),
    };
    both_ways(&bytes, Protocol::V5, Packet::Publish(p));
}

#[test]
fn publish_v5_empty_topic_with_alias() {
    // [MQTT-3.3.2-1] allows a zero-length topic when a Topic Alias is present.
    let bytes = [0x30, 0x07, 0x00, 0x00, 0x03, 0x23, 0x00, 0x01, b'x'];
    let p = Publish {
        topic: s(""),
        properties: PublishProperties {
            topic_alias: Some(1),
            ..Default::default()
        },
        payload: Bytes::from_static(b"x"),
        ..Default::default()
    };
    both_ways(&bytes, Protocol::V5, Packet::Publish(p));
}

#[test]
fn publish_utf8_topic() {
    // "é/€" is 2 + 1 + 3 bytes of UTF-8.
    let bytes = cat(&[&[0x30, 0x08, 0x00, 0x06], "é/€".as_bytes()]);
    both_ways_v3(&bytes, Packet::Publish(Publish::new("é/€", Bytes::new())));
}

#[test]
fn publish_encode_shared_patches_id_and_dup() {
    let p = Publish {
        qos: QoS::AtLeastOnce,
        topic: s("a/b"),
        packet_id: 1,
        payload: Bytes::from_static(b"hello"),
        ..Default::default()
    };
    for protocol in [Protocol::V311, Protocol::V5] {
        let shared = p.encode_shared(protocol).unwrap();
        assert_eq!(shared.len(), p.encoded_len(protocol).unwrap());
        let mut out = BytesMut::new();
        shared.write(0x1234, false, &mut out);
        shared.write(7, true, &mut out);
        let mut expect = p.clone();
        expect.packet_id = 0x1234;
        assert_eq!(
            decode_all(&out[..shared.len()], protocol),
            Packet::Publish(expect.clone())
        );
        let mut direct = BytesMut::new();
        expect.encode(protocol, &mut direct).unwrap();
        assert_eq!(&out[..shared.len()], &direct[..]);
        expect.packet_id = 7;
        expect.dup = true;
        assert_eq!(
            decode_all(&out[shared.len()..], protocol),
            Packet::Publish(expect)
        );
    }
    // QoS 0: nothing to patch.
    let q0 = Publish::new("a", &b"x"[..]);
    let shared = q0.encode_shared(Protocol::V311).unwrap();
    assert_eq!(shared.packet_id_offset, 0);
    let mut out = BytesMut::new();
    shared.write(0, false, &mut out);
    assert_eq!(&out[..], &[0x30, 0x04, 0x00, 0x01, b'a', b'x']);
}

// ---------------------------------------------------------------- PUBACK .. PUBCOMP (§3.4-§3.7)

fn ack(t: u8, r: PubResponse) -> Packet {
    match t {
        PUBACK => Packet::PubAck(r),
        PUBREC => Packet::PubRec(r),
        PUBREL => Packet::PubRel(r),
        PUBCOMP => Packet::PubComp(r),
        _ => unreachable!(),
    }
}

#[test]
fn pub_responses_v311() {
    for (t, first) in [
        (PUBACK, 0x40),
        (PUBREC, 0x50),
        (PUBREL, 0x62),
        (PUBCOMP, 0x70),
    ] {
        both_ways_v3(&[first, 0x02, 0x12, 0x34], ack(t, PubResponse::new(0x1234)));
    }
}

#[test]
fn pub_responses_v5_short_form() {
    // [MQTT-3.4.2-1]: Success without properties omits the reason code.
    for (t, first) in [
        (PUBACK, 0x40),
        (PUBREC, 0x50),
        (PUBREL, 0x62),
        (PUBCOMP, 0x70),
    ] {
        both_ways(
            &[first, 0x02, 0x00, 0x01],
            Protocol::V5,
            ack(t, PubResponse::new(1)),
        );
        // The long forms of the same packet decode equally (encode picks the short form).
        let long = decode_all(&[first, 0x03, 0x00, 0x01, 0x00], Protocol::V5);
        assert_eq!(long, ack(t, PubResponse::new(1)));
        let long = decode_all(&[first, 0x04, 0x00, 0x01, 0x00, 0x00], Protocol::V5);
        assert_eq!(long, ack(t, PubResponse::new(1)));
    }
}

#[test]
fn pub_responses_v5_reason_and_properties() {
    both_ways(
        &[0x40, 0x03, 0x00, 0x01, 0x10],
        Protocol::V5,
        ack(
            PUBACK,
            PubResponse {
                packet_id: 1,
                reason_code: ReasonCode::NO_MATCHING_SUBSCRIBERS,
                properties: AckProperties::default(),
            },
        ),
    );
    let bytes = cat(&[
        &[0x50, 0x0A, 0x00, 0x02, 0x80, 0x06, 0x1F, 0x00, 0x03],
        b"bad",
    ]);
    both_ways(
        &bytes,
        Protocol::V5,
        ack(
            PUBREC,
            PubResponse {
                packet_id: 2,
                reason_code: ReasonCode::UNSPECIFIED_ERROR,
                properties: AckProperties {
                    reason_string: Some(s("bad")),
                    ..Default::default()
                },
            },
        ),
    );
    both_ways(
        &[0x62, 0x03, 0x00, 0x05, 0x92],
        Protocol::V5,
        ack(
            PUBREL,
            PubResponse {
                packet_id: 5,
                reason_code: ReasonCode::PACKET_IDENTIFIER_NOT_FOUND,
                properties: AckProperties::default(),
            },
        ),
    );
    // Success with a user property: the reason code must be present.
    let bytes = cat(&[
        &[0x70, 0x0B, 0x00, 0x06, 0x00, 0x07],
        &[0x26, 0x00, 0x01, b'k', 0x00, 0x01, b'v'],
    ]);
    both_ways(
        &bytes,
        Protocol::V5,
        ack(
            PUBCOMP,
            PubResponse {
                packet_id: 6,
                reason_code: ReasonCode::SUCCESS,
                properties: AckProperties {
                    user_properties: vec![up("k", "v")],
                    ..Default::default()
                },
            },
        ),
    );
}

// ---------------------------------------------------------------- SUBSCRIBE / SUBACK (§3.8, §3.9)

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

// ---------------------------------------------------------------- UNSUBSCRIBE / UNSUBACK (§3.10, §3.11)

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

// ---------------------------------------------------------------- PINGREQ / PINGRESP (§3.12, §3.13)

#[test]
fn ping() {
    for p in [Protocol::V31, Protocol::V311, Protocol::V5] {
        both_ways(&[0xC0, 0x00], p, Packet::PingReq);
        both_ways(&[0xD0, 0x00], p, Packet::PingResp);
    }
}

// ---------------------------------------------------------------- DISCONNECT (§3.14)

#[test]
fn disconnect_v311() {
    both_ways_v3(&[0xE0, 0x00], Packet::Disconnect(Disconnect::default()));
}

#[test]
fn disconnect_v5() {
    both_ways(
        &[0xE0, 0x00],
        Protocol::V5,
        Packet::Disconnect(Disconnect::default()),
    );
    // [MQTT-3.14.2.1]: Normal disconnection may be written out explicitly.
    assert_eq!(
        decode_all(&[0xE0, 0x01, 0x00], Protocol::V5),
        Packet::Disconnect(Disconnect::default())
    );
    both_ways(
        &[0xE0, 0x01, 0x04],
        Protocol::V5,
        Packet::Disconnect(Disconnect::new(ReasonCode::DISCONNECT_WITH_WILL_MESSAGE)),
    );
    let bytes = cat(&[
        &[0xE0, 0x0B, 0x8E, 0x09],
        &[0x11, 0x00, 0x00, 0x00, 0x00],
        &[0x1C, 0x00, 0x01, b's'],
    ]);
    both_ways(
        &bytes,
        Protocol::V5,
        Packet::Disconnect(Disconnect {
            reason_code: ReasonCode::SESSION_TAKEN_OVER,
            properties: DisconnectProperties {
                session_expiry_interval: Some(0),
                server_reference: Some(s("s")),
                ..Default::default()
            },
        }),
    );
}

// ---------------------------------------------------------------- AUTH (§3.15, MQTT 5 only)

#[test]
fn auth_v5() {
    both_ways(&[0xF0, 0x00], Protocol::V5, Packet::Auth(Auth::default()));
    let bytes = cat(&[
        &[0xF0, 0x0F, 0x18, 0x0D],
        &[0x15, 0x00, 0x05],
        b"SCRAM",
        &[0x16, 0x00, 0x02, 0x01, 0x02],
    ]);
    both_ways(
        &bytes,
        Protocol::V5,
        Packet::Auth(Auth {
            reason_code: ReasonCode::CONTINUE_AUTHENTICATION,
            properties: AuthProperties {
                authentication_method: Some(s("SCRAM")),
                authentication_data: Some(Bytes::from_static(&[1, 2])),
                ..Default::default()
            },
        }),
    );
}

#[test]
fn auth_does_not_encode_before_v5() {
    let mut out = BytesMut::new();
    assert_eq!(
        Packet::Auth(Auth::default()).encode(Protocol::V311, &mut out),
        Err(EncodeError::NotInProtocol(AUTH))
    );
    assert!(out.is_empty());
}

// ---------------------------------------------------------------- framing

#[test]
fn several_packets_in_one_buffer() {
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&[0xC0, 0x00]);
    buf.extend_from_slice(&[0x40, 0x02, 0x00, 0x01]);
    buf.extend_from_slice(&[0x30, 0x04, 0x00, 0x01, b't', b'x']);
    buf.extend_from_slice(&[0xE0]); // start of the next frame
    let p = Protocol::V311;
    assert_eq!(Packet::decode(&mut buf, p, MAX), Ok(Some(Packet::PingReq)));
    assert_eq!(
        Packet::decode(&mut buf, p, MAX),
        Ok(Some(Packet::PubAck(PubResponse::new(1))))
    );
    assert_eq!(
        Packet::decode(&mut buf, p, MAX),
        Ok(Some(Packet::Publish(Publish::new("t", &b"x"[..]))))
    );
    assert_eq!(Packet::decode(&mut buf, p, MAX), Ok(None));
    assert_eq!(&buf[..], &[0xE0]);
    buf.extend_from_slice(&[0x00]);
    assert_eq!(
        Packet::decode(&mut buf, p, MAX),
        Ok(Some(Packet::Disconnect(Disconnect::default())))
    );
    assert!(buf.is_empty());
}

#[test]
fn four_byte_remaining_length_is_accepted() {
    // The largest remaining length, 268,435,455 = FF FF FF 7F [MQTT-1.5.5]: the header
    // parses and the decoder waits for the body.
    let mut buf = BytesMut::from(&[0x30, 0xFF, 0xFF, 0xFF, 0x7F, 0x00][..]);
    assert_eq!(Packet::decode(&mut buf, Protocol::V311, MAX), Ok(None));
    assert_eq!(buf.len(), 6);
    let h = parse_frame_header(&[0x30, 0xFF, 0xFF, 0xFF, 0x7F], MAX);
    assert_eq!(h, Ok(None));
    let h = parse_frame_header(&[0x30, 0x80, 0x01], MAX).unwrap();
    assert_eq!(h, None, "128-byte body not there yet");
}

// ---------------------------------------------------------------- zero copy

/// The address range of a buffer's allocation (compared, never dereferenced).
#[derive(Clone, Copy)]
struct Region(usize, usize);

impl Region {
    fn of(buf: &BytesMut) -> Region {
        Region(buf.as_ptr() as usize, buf.capacity())
    }
}

fn inside(outer: Region, inner: &[u8]) -> bool {
    let i = inner.as_ptr() as usize;
    !inner.is_empty() && i >= outer.0 && i + inner.len() <= outer.0 + outer.1
}

#[test]
fn decoded_publish_points_into_the_frame() {
    for protocol in [Protocol::V311, Protocol::V5] {
        let p = Publish {
            qos: QoS::AtLeastOnce,
            topic: s("sensors/room1/temp"),
            packet_id: 9,
            properties: if protocol.is_v5() {
                PublishProperties {
                    user_properties: vec![up("key", "value")],
                    correlation_data: Some(Bytes::from_static(b"corr")),
                    ..Default::default()
                }
            } else {
                PublishProperties::default()
            },
            payload: Bytes::from(vec![7u8; 300]),
            ..Default::default()
        };
        let mut buf = BytesMut::with_capacity(4096);
        p.encode(protocol, &mut buf).unwrap();
        // A second frame behind it, as in a real read buffer.
        Packet::PingReq.encode(protocol, &mut buf).unwrap();
        let frame = Region::of(&buf);
        let Some(Packet::Publish(d)) = Packet::decode(&mut buf, protocol, MAX).unwrap() else {
            panic!("not a publish")
        };
        assert_eq!(d, p);
        assert!(inside(frame, &d.payload), "payload was copied");
        assert!(inside(frame, d.topic.as_bytes()), "topic was copied");
        if protocol.is_v5() {
            let (k, v) = &d.properties.user_properties[0];
            assert!(inside(frame, k.as_bytes()) && inside(frame, v.as_bytes()));
            assert!(inside(
                frame,
                d.properties.correlation_data.as_ref().unwrap()
            ));
        }
        // The rest of the buffer is still the same allocation.
        assert!(inside(frame, &buf));
        assert_eq!(
            Packet::decode(&mut buf, protocol, MAX),
            Ok(Some(Packet::PingReq))
        );
    }
}

#[test]
fn decoded_connect_points_into_the_frame() {
    let mut c = Connect::new(Protocol::V5, "client-1");
    c.username = Some(s("user"));
    c.password = Some(Bytes::from_static(b"secret"));
    let mut buf = BytesMut::new();
    c.encode(&mut buf).unwrap();
    let frame = Region::of(&buf);
    let Some(Packet::Connect(d)) = Packet::decode(&mut buf, Protocol::V311, MAX).unwrap() else {
        panic!("not a connect")
    };
    assert_eq!(*d, c);
    assert!(inside(frame, d.client_id.as_bytes()));
    assert!(inside(frame, d.username.as_ref().unwrap().as_bytes()));
    assert!(inside(frame, d.password.as_ref().unwrap()));
}

#[test]
fn publish_view_reads_in_place_and_leaves_the_buffer_alone() {
    // PUBLISH QoS 1, v3.1.1: topic "a/b", packet id 10, payload "hi"; then a PUBACK for 7.
    let bytes = cat(&[
        &[0x32, 0x09, 0x00, 0x03],
        b"a/b",
        &[0x00, 0x0A],
        b"hi",
        &[0x40, 0x02, 0x00, 0x07],
    ]);
    let (view, len) = PacketView::decode(&bytes, Protocol::V311, MAX)
        .unwrap()
        .unwrap();
    assert_eq!(len, 11);
    let PacketView::Publish(p) = view else {
        panic!("not a publish: {view:?}")
    };
    assert_eq!((p.qos, p.packet_id, p.topic), (QoS::AtLeastOnce, 10, "a/b"));
    assert_eq!(p.payload, b"hi");
    // Slices of the caller's buffer, not copies.
    assert_eq!(p.payload.as_ptr(), bytes[9..].as_ptr());
    assert_eq!(p.topic.as_ptr(), bytes[4..].as_ptr());
    let (view, len) = PacketView::decode(&bytes[11..], Protocol::V311, MAX)
        .unwrap()
        .unwrap();
    assert_eq!(len, 4);
    let PacketView::Ack(a) = view else {
        panic!("not an ack: {view:?}")
    };
    assert_eq!((a.packet_type, a.packet_id), (PUBACK, 7));
    // An incomplete frame is `None`; a SUBACK is someone else's job.
    assert_eq!(
        PacketView::decode(&bytes[..10], Protocol::V311, MAX),
        Ok(None)
    );
    assert_eq!(
        PacketView::decode(&[0x90, 0x03, 0x00, 0x01, 0x00], Protocol::V311, MAX),
        Ok(Some((PacketView::Other, 5)))
    );
    // The same errors as the owned decoder: packet id 0 [MQTT-2.2.1-3].
    assert_eq!(
        PacketView::decode(&[0x40, 0x02, 0x00, 0x00], Protocol::V311, MAX),
        Err(DecodeError::ZeroPacketId)
    );
}
