//! Malformed and forbidden input: each case asserts the exact [`DecodeError`] and the MQTT 5
//! reason code the broker reports for it. Normative statements are cited as [MQTT-x.y.z-n].

mod connect_encode;
mod framing;
mod packets;
mod properties;
mod strings_topics;

use bytes::BytesMut;
use shardmq::codec::*;
use shardmq::topic::TopicError;

const MAX: usize = MAX_FRAME_BYTES;
const V3: Protocol = Protocol::V311;
const V5: Protocol = Protocol::V5;

const MALFORMED: ReasonCode = ReasonCode::MALFORMED_PACKET;
const PROTOCOL_ERROR: ReasonCode = ReasonCode::PROTOCOL_ERROR;

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// Decodes `bytes` and asserts the error and its reason code.
#[track_caller]
fn rejects(bytes: &[u8], protocol: Protocol, error: DecodeError, code: ReasonCode) {
    rejects_max(bytes, protocol, MAX, error, code)
}

#[track_caller]
fn rejects_max(bytes: &[u8], protocol: Protocol, max: usize, error: DecodeError, code: ReasonCode) {
    let mut buf = BytesMut::from(bytes);
    let got = Packet::decode(&mut buf, protocol, max);
    assert_eq!(got, Err(error.clone()), "{bytes:02x?} in {protocol:?}");
    assert_eq!(error.reason_code(), code, "reason code of {error:?}");
}

/// Both 3.1.1 and 5.0.
#[track_caller]
fn rejects_both(bytes: &[u8], error: DecodeError, code: ReasonCode) {
    rejects(bytes, V3, error.clone(), code);
    rejects(bytes, V5, error, code);
}

/// A CONNECT body from the part after the protocol name.
fn connect(protocol: Protocol, flags: u8, rest: &[u8]) -> Vec<u8> {
    let name: &[u8] = if protocol == Protocol::V31 {
        b"\x00\x06MQIsdp"
    } else {
        b"\x00\x04MQTT"
    };
    let mut body = cat(&[name, &[protocol.level(), flags, 0x00, 0x3C]]);
    if protocol.is_v5() {
        body.push(0x00);
    }
    body.extend_from_slice(rest);
    framed(0x10, &body)
}

/// A frame with a one-byte remaining length.
fn framed(first: u8, body: &[u8]) -> Vec<u8> {
    assert!(body.len() < 128);
    cat(&[&[first, body.len() as u8], body])
}
