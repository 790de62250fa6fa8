//! Byte-exact vectors for every MQTT control packet in MQTT 3.1 / 3.1.1 and 5.0, written by
//! hand from the specifications, checked in both directions: the bytes decode to the packet,
//! and the packet encodes to exactly the bytes. Plus the zero-copy guarantee of decode.

mod connect;
mod control;
mod framing;
mod publish;
mod subscribe;

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
