//! PUBACK (§3.4), PUBREC (§3.5), PUBREL (§3.6) and PUBCOMP (§3.7): one shape, four types.

use std::ops::Range;

use bytes::{Bytes, BytesMut};

use super::error::{DecodeError, EncodeError};
use super::properties::{block_len, block_range, AckProperties};
use super::reason::{allowed, ReasonCode};
use super::types::Protocol;
use super::wire::{check_remaining, frame_len, write_frame, Reader};

/// Packet type nibble of PUBACK.
pub const PUBACK: u8 = 4;
/// Packet type nibble of PUBREC.
pub const PUBREC: u8 = 5;
/// Packet type nibble of PUBREL.
pub const PUBREL: u8 = 6;
/// Packet type nibble of PUBCOMP.
pub const PUBCOMP: u8 = 7;

/// The body of a QoS 1 / QoS 2 acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PubResponse {
    /// The PUBLISH being acknowledged.
    pub packet_id: u16,
    /// MQTT 5 reason code (Success when absent on the wire).
    pub reason_code: ReasonCode,
    /// MQTT 5 properties.
    pub properties: AckProperties,
}

impl PubResponse {
    /// A successful acknowledgement of `packet_id`.
    pub fn new(packet_id: u16) -> PubResponse {
        PubResponse {
            packet_id,
            ..PubResponse::default()
        }
    }

    pub(crate) fn decode(
        packet_type: u8,
        body: Bytes,
        protocol: Protocol,
    ) -> Result<PubResponse, DecodeError> {
        let layout = AckLayout::parse(packet_type, &body, protocol)?;
        let properties = if layout.properties.is_empty() {
            AckProperties::default()
        } else {
            AckProperties::decode(Reader::new(body.slice(layout.properties)), packet_type)?
        };
        Ok(PubResponse {
            packet_id: layout.packet_id,
            reason_code: layout.reason_code,
            properties,
        })
    }

    /// Encodes the packet at the end of `out` as `packet_type` (PUBACK..PUBCOMP).
    #[inline]
    pub fn encode(
        &self,
        packet_type: u8,
        protocol: Protocol,
        out: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        if self.packet_id == 0 {
            return Err(EncodeError::ZeroPacketId);
        }
        let first = (packet_type << 4) | if packet_type == PUBREL { 0x02 } else { 0 };
        if !protocol.is_v5()
            || (self.reason_code == ReasonCode::SUCCESS && self.properties.is_empty())
        {
            write_frame(out, 4, |w| {
                w.put_header(first, 2);
                w.put_u16(self.packet_id);
            });
            return Ok(());
        }
        let props_len = self.properties.checked_len()?;
        let remaining = if props_len == 0 {
            3
        } else {
            3 + block_len(props_len)
        };
        check_remaining(remaining)?;
        write_frame(out, frame_len(remaining), |w| {
            w.put_header(first, remaining);
            w.put_u16(self.packet_id);
            w.put_u8(self.reason_code.0);
            if props_len > 0 {
                w.put_var_int(props_len);
                self.properties.write(w);
            }
        });
        Ok(())
    }
}

/// The fields of a PUBACK / PUBREC / PUBREL / PUBCOMP body, checked by the rules both the owned
/// decoder ([`PubResponse`]) and the borrowed one ([`super::AckView`]) use; the caller decodes
/// the contents of the property block.
pub(crate) struct AckLayout {
    pub packet_id: u16,
    pub reason_code: ReasonCode,
    /// The property block without its length prefix; empty when absent.
    pub properties: Range<usize>,
}

impl AckLayout {
    #[inline(always)]
    pub(crate) fn parse(
        packet_type: u8,
        body: &[u8],
        protocol: Protocol,
    ) -> Result<AckLayout, DecodeError> {
        let packet_id = match body.get(..2) {
            Some(s) => u16::from_be_bytes([s[0], s[1]]),
            None => return Err(DecodeError::Truncated),
        };
        if packet_id == 0 {
            return Err(DecodeError::ZeroPacketId);
        }
        let mut layout = AckLayout {
            packet_id,
            reason_code: ReasonCode::SUCCESS,
            properties: 0..0,
        };
        let mut at = 2;
        if protocol.is_v5() && body.len() > at {
            // [MQTT-3.4.2-1]: reason code and properties may be omitted.
            let code = body[at];
            at += 1;
            let allowed = if matches!(packet_type, PUBACK | PUBREC) {
                allowed::PUBACK_PUBREC
            } else {
                allowed::PUBREL_PUBCOMP
            };
            if !allowed.contains(&code) {
                return Err(DecodeError::InvalidReasonCode { packet_type, code });
            }
            layout.reason_code = ReasonCode(code);
            if body.len() > at {
                layout.properties = block_range(body, at)?;
                at = layout.properties.end;
            }
        }
        if body.len() > at {
            return Err(DecodeError::TrailingBytes(body.len() - at));
        }
        Ok(layout)
    }
}
