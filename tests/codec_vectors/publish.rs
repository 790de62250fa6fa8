//! PUBLISH (§3.3) and PUBACK .. PUBCOMP (§3.4-§3.7).

use super::*;

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
