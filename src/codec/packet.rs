//! The packet enum, fixed header parsing (§2.1) and the decode / encode entry points.

use bytes::{Buf, BytesMut};

use super::ack::{PubResponse, PUBACK, PUBCOMP, PUBREC, PUBREL};
use super::connect::{ConnAck, Connect, CONNACK, CONNECT};
use super::control::{Auth, Disconnect, AUTH, DISCONNECT, PINGREQ, PINGRESP};
use super::error::{DecodeError, EncodeError};
use super::publish::{Publish, PUBLISH};
use super::subscribe::{
    SubAck, Subscribe, UnsubAck, Unsubscribe, SUBACK, SUBSCRIBE, UNSUBACK, UNSUBSCRIBE,
};
use super::types::Protocol;
use super::wire::parse_var_int;

/// Every MQTT control packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// Client opens a session.
    Connect(Box<Connect>),
    /// Server answers CONNECT.
    ConnAck(ConnAck),
    /// An application message.
    Publish(Publish),
    /// QoS 1 acknowledgement.
    PubAck(PubResponse),
    /// QoS 2, step 1 acknowledgement.
    PubRec(PubResponse),
    /// QoS 2, release.
    PubRel(PubResponse),
    /// QoS 2, completion.
    PubComp(PubResponse),
    /// Add subscriptions.
    Subscribe(Subscribe),
    /// Answer to SUBSCRIBE.
    SubAck(SubAck),
    /// Remove subscriptions.
    Unsubscribe(Unsubscribe),
    /// Answer to UNSUBSCRIBE.
    UnsubAck(UnsubAck),
    /// Keep-alive probe.
    PingReq,
    /// Keep-alive answer.
    PingResp,
    /// End of the connection.
    Disconnect(Disconnect),
    /// Extended authentication (MQTT 5).
    Auth(Auth),
}

/// Where a complete frame sits at the start of a read buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Packet type nibble.
    pub packet_type: u8,
    /// Flags nibble.
    pub flags: u8,
    /// Bytes of fixed header (1 + remaining-length bytes).
    pub header_len: usize,
    /// Remaining length.
    pub remaining: usize,
}

impl FrameHeader {
    /// Size of the whole frame.
    #[inline]
    pub fn frame_len(&self) -> usize {
        self.header_len + self.remaining
    }
}

/// Reads the fixed header at the start of `buf`. `Ok(None)` while the header or the body is
/// still incomplete; a frame larger than `max_packet_bytes` fails as soon as its size is known,
/// before its body arrives.
#[inline]
pub fn parse_frame_header(
    buf: &[u8],
    max_packet_bytes: usize,
) -> Result<Option<FrameHeader>, DecodeError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let Some((remaining, n)) = parse_var_int(&buf[1..])? else {
        return Ok(None);
    };
    let header = FrameHeader {
        packet_type: first >> 4,
        flags: first & 0x0F,
        header_len: 1 + n,
        remaining: remaining as usize,
    };
    if header.frame_len() > max_packet_bytes {
        return Err(DecodeError::PacketTooLarge {
            size: header.frame_len(),
            max: max_packet_bytes,
        });
    }
    if buf.len() < header.frame_len() {
        return Ok(None);
    }
    Ok(Some(header))
}

/// The fixed-header checks every decoder applies: the type and flags are checked from the
/// first byte alone, before the rest of the frame arrives; then the size. `Ok(None)` while
/// the frame is incomplete.
#[inline(always)]
pub(crate) fn check_frame(
    buf: &[u8],
    protocol: Protocol,
    max_packet_bytes: usize,
) -> Result<Option<FrameHeader>, DecodeError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let (packet_type, flags) = (first >> 4, first & 0x0F);
    if packet_type == 0 || (packet_type == AUTH && !protocol.is_v5()) {
        return Err(DecodeError::UnknownPacketType(packet_type));
    }
    if let Some(required) = required_flags(packet_type) {
        if flags != required {
            return Err(DecodeError::InvalidHeaderFlags { packet_type, flags });
        }
    }
    parse_frame_header(buf, max_packet_bytes)
}

/// The flags nibble each packet type requires (PUBLISH: any; checked by its decoder).
fn required_flags(packet_type: u8) -> Option<u8> {
    match packet_type {
        PUBLISH => None,
        PUBREL | SUBSCRIBE | UNSUBSCRIBE => Some(0x02),
        _ => Some(0x00),
    }
}

impl Packet {
    /// Decodes one packet from the front of `buf`.
    ///
    /// `Ok(None)`: the frame is incomplete; nothing was consumed or copied. `Ok(Some(_))`: the
    /// frame was split off `buf` and the packet's strings and payload are slices of it.
    /// `protocol` is the connection's version (CONNECT carries its own).
    #[inline]
    pub fn decode(
        buf: &mut BytesMut,
        protocol: Protocol,
        max_packet_bytes: usize,
    ) -> Result<Option<Packet>, DecodeError> {
        // The type and flags are checked from the first byte alone, before the rest of the
        // frame arrives.
        let Some(header) = check_frame(buf, protocol, max_packet_bytes)? else {
            return Ok(None);
        };
        let mut frame = buf.split_to(header.frame_len());
        // `advance` moves the start pointer; a second `split_to` would cost a reference
        // count increment and decrement.
        frame.advance(header.header_len);
        let body = frame.freeze();
        let packet = match header.packet_type {
            PUBLISH => Packet::Publish(Publish::decode(header.flags, body, protocol)?),
            PUBACK => Packet::PubAck(PubResponse::decode(PUBACK, body, protocol)?),
            PUBREC => Packet::PubRec(PubResponse::decode(PUBREC, body, protocol)?),
            PUBREL => Packet::PubRel(PubResponse::decode(PUBREL, body, protocol)?),
            PUBCOMP => Packet::PubComp(PubResponse::decode(PUBCOMP, body, protocol)?),
            CONNECT => Packet::Connect(Box::new(Connect::decode(body)?)),
            CONNACK => Packet::ConnAck(ConnAck::decode(body, protocol)?),
            SUBSCRIBE => Packet::Subscribe(Subscribe::decode(body, protocol)?),
            SUBACK => Packet::SubAck(SubAck::decode(body, protocol)?),
            UNSUBSCRIBE => Packet::Unsubscribe(Unsubscribe::decode(body, protocol)?),
            UNSUBACK => Packet::UnsubAck(UnsubAck::decode(body, protocol)?),
            PINGREQ | PINGRESP => {
                if !body.is_empty() {
                    return Err(DecodeError::TrailingBytes(body.len()));
                }
                if header.packet_type == PINGREQ {
                    Packet::PingReq
                } else {
                    Packet::PingResp
                }
            }
            DISCONNECT => Packet::Disconnect(Disconnect::decode(body, protocol)?),
            AUTH => Packet::Auth(Auth::decode(body)?),
            other => return Err(DecodeError::UnknownPacketType(other)),
        };
        Ok(Some(packet))
    }

    /// Encodes the packet at the end of `out` for a connection speaking `protocol`
    /// (CONNECT uses its own `protocol` field).
    pub fn encode(&self, protocol: Protocol, out: &mut BytesMut) -> Result<(), EncodeError> {
        match self {
            Packet::Connect(c) => c.encode(out),
            Packet::ConnAck(c) => c.encode(protocol, out),
            Packet::Publish(p) => p.encode(protocol, out),
            Packet::PubAck(a) => a.encode(PUBACK, protocol, out),
            Packet::PubRec(a) => a.encode(PUBREC, protocol, out),
            Packet::PubRel(a) => a.encode(PUBREL, protocol, out),
            Packet::PubComp(a) => a.encode(PUBCOMP, protocol, out),
            Packet::Subscribe(s) => s.encode(protocol, out),
            Packet::SubAck(s) => s.encode(protocol, out),
            Packet::Unsubscribe(u) => u.encode(protocol, out),
            Packet::UnsubAck(u) => u.encode(protocol, out),
            Packet::PingReq => {
                out.extend_from_slice(&[PINGREQ << 4, 0]);
                Ok(())
            }
            Packet::PingResp => {
                out.extend_from_slice(&[PINGRESP << 4, 0]);
                Ok(())
            }
            Packet::Disconnect(d) => d.encode(protocol, out),
            Packet::Auth(a) => a.encode(protocol, out),
        }
    }

    /// The packet type nibble.
    pub fn packet_type(&self) -> u8 {
        match self {
            Packet::Connect(_) => CONNECT,
            Packet::ConnAck(_) => CONNACK,
            Packet::Publish(_) => PUBLISH,
            Packet::PubAck(_) => PUBACK,
            Packet::PubRec(_) => PUBREC,
            Packet::PubRel(_) => PUBREL,
            Packet::PubComp(_) => PUBCOMP,
            Packet::Subscribe(_) => SUBSCRIBE,
            Packet::SubAck(_) => SUBACK,
            Packet::Unsubscribe(_) => UNSUBSCRIBE,
            Packet::UnsubAck(_) => UNSUBACK,
            Packet::PingReq => PINGREQ,
            Packet::PingResp => PINGRESP,
            Packet::Disconnect(_) => DISCONNECT,
            Packet::Auth(_) => AUTH,
        }
    }
}
