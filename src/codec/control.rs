//! PINGREQ / PINGRESP (§3.12, §3.13), DISCONNECT (§3.14) and AUTH (§3.15).

use bytes::{Bytes, BytesMut};

use super::error::{DecodeError, EncodeError};
use super::properties::{block_len, read_block, AuthProperties, DisconnectProperties};
use super::reason::{allowed, ReasonCode};
use super::types::Protocol;
use super::wire::{check_remaining, frame_len, write_frame, Reader};

/// Packet type nibble of PINGREQ.
pub const PINGREQ: u8 = 12;
/// Packet type nibble of PINGRESP.
pub const PINGRESP: u8 = 13;
/// Packet type nibble of DISCONNECT.
pub const DISCONNECT: u8 = 14;
/// Packet type nibble of AUTH.
pub const AUTH: u8 = 15;

/// The end of a connection, from either side.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Disconnect {
    /// MQTT 5 reason code; 0x00 is a normal disconnection (the Will is discarded).
    pub reason_code: ReasonCode,
    /// MQTT 5 properties.
    pub properties: DisconnectProperties,
}

/// Extended authentication exchange (MQTT 5 only).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Auth {
    /// Success, Continue authentication or Re-authenticate.
    pub reason_code: ReasonCode,
    /// Method and data.
    pub properties: AuthProperties,
}

/// Reads the optional "reason code, then optional properties" tail shared by DISCONNECT and
/// AUTH [MQTT-3.14.2.1], [MQTT-3.15.2.1].
fn decode_reason_tail<P>(
    body: Bytes,
    packet_type: u8,
    allowed: &[u8],
    decode_props: impl FnOnce(Reader) -> Result<P, DecodeError>,
) -> Result<(ReasonCode, Option<P>), DecodeError> {
    let mut r = Reader::new(body);
    if r.remaining() == 0 {
        return Ok((ReasonCode::SUCCESS, None));
    }
    let code = r.u8()?;
    if !allowed.contains(&code) {
        return Err(DecodeError::InvalidReasonCode { packet_type, code });
    }
    let props = if r.remaining() > 0 {
        Some(decode_props(read_block(&mut r)?)?)
    } else {
        None
    };
    r.finish()?;
    Ok((ReasonCode(code), props))
}

fn encode_reason_tail(
    first: u8,
    code: ReasonCode,
    props_len: usize,
    write_props: impl FnOnce(&mut super::wire::FrameWriter<'_>),
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    if code == ReasonCode::SUCCESS && props_len == 0 {
        out.extend_from_slice(&[first, 0]);
        return Ok(());
    }
    let remaining = if props_len == 0 {
        1
    } else {
        1 + block_len(props_len)
    };
    check_remaining(remaining)?;
    write_frame(out, frame_len(remaining), |w| {
        w.put_header(first, remaining);
        w.put_u8(code.0);
        if props_len > 0 {
            w.put_var_int(props_len);
            write_props(w);
        }
    });
    Ok(())
}

impl Disconnect {
    /// A DISCONNECT with this reason and no properties.
    pub fn new(reason_code: ReasonCode) -> Disconnect {
        Disconnect {
            reason_code,
            properties: DisconnectProperties::default(),
        }
    }

    pub(crate) fn decode(body: Bytes, protocol: Protocol) -> Result<Disconnect, DecodeError> {
        if !protocol.is_v5() {
            Reader::new(body).finish()?;
            return Ok(Disconnect::default());
        }
        let (reason_code, props) =
            decode_reason_tail(body, DISCONNECT, allowed::DISCONNECT, |r| {
                DisconnectProperties::decode(r, DISCONNECT)
            })?;
        Ok(Disconnect {
            reason_code,
            properties: props.unwrap_or_default(),
        })
    }

    /// Encodes the packet at the end of `out` (3.1.1: just the two header bytes).
    pub fn encode(&self, protocol: Protocol, out: &mut BytesMut) -> Result<(), EncodeError> {
        if !protocol.is_v5() {
            out.extend_from_slice(&[DISCONNECT << 4, 0]);
            return Ok(());
        }
        let props_len = self.properties.checked_len()?;
        encode_reason_tail(
            DISCONNECT << 4,
            self.reason_code,
            props_len,
            |w| self.properties.write(w),
            out,
        )
    }
}

impl Auth {
    pub(crate) fn decode(body: Bytes) -> Result<Auth, DecodeError> {
        let (reason_code, props) = decode_reason_tail(body, AUTH, allowed::AUTH, |r| {
            AuthProperties::decode(r, AUTH)
        })?;
        Ok(Auth {
            reason_code,
            properties: props.unwrap_or_default(),
        })
    }

    /// Encodes the packet at the end of `out`; AUTH exists only in MQTT 5.
    pub fn encode(&self, protocol: Protocol, out: &mut BytesMut) -> Result<(), EncodeError> {
        if !protocol.is_v5() {
            return Err(EncodeError::NotInProtocol(AUTH));
        }
        let props_len = self.properties.checked_len()?;
        encode_reason_tail(
            AUTH << 4,
            self.reason_code,
            props_len,
            |w| self.properties.write(w),
            out,
        )
    }
}
