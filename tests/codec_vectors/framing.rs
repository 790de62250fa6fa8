//! Framing (several packets in one buffer, a four-byte remaining length) and zero-copy decoding.

use super::*;

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
