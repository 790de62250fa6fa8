//! CONNECT (§3.1) and CONNACK (§3.2).

use bytes::{Bytes, BytesMut};

use super::error::{DecodeError, EncodeError};
use super::properties::{
    block_len, check_response_topic, read_block, ConnAckProperties, ConnectProperties,
    WillProperties,
};
use super::reason::{allowed, ReasonCode};
use super::types::{MqttStr, Protocol, QoS};
use super::wire::{binary_len, check_field, check_remaining, frame_len, write_frame, Reader};
use crate::topic::validate_topic_name;

/// Packet type nibble of CONNECT.
pub const CONNECT: u8 = 1;
/// Packet type nibble of CONNACK.
pub const CONNACK: u8 = 2;

/// A client's request to open a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    /// Protocol name and level sent by the client; every later packet is read with it.
    pub protocol: Protocol,
    /// Clean Session (3.1.1) / Clean Start (5.0).
    pub clean_start: bool,
    /// Seconds; 0 disables keep alive.
    pub keep_alive_secs: u16,
    /// MQTT 5 properties; always empty in 3.1.1.
    pub properties: ConnectProperties,
    /// May be empty: the server assigns one (5.0) or requires clean session (3.1.1).
    pub client_id: MqttStr,
    /// Message published when the connection ends abnormally.
    pub will: Option<Will>,
    /// User name.
    pub username: Option<MqttStr>,
    /// Password (binary data).
    pub password: Option<Bytes>,
}

/// The Will of a CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Will {
    /// Topic name the Will is published to.
    pub topic: MqttStr,
    /// Application message.
    pub payload: Bytes,
    /// QoS of the Will.
    pub qos: QoS,
    /// Publish the Will as retained.
    pub retain: bool,
    /// MQTT 5 Will properties.
    pub properties: WillProperties,
}

mod flag {
    pub const RESERVED: u8 = 0x01;
    pub const CLEAN_START: u8 = 0x02;
    pub const WILL: u8 = 0x04;
    pub const WILL_QOS_SHIFT: u8 = 3;
    pub const WILL_RETAIN: u8 = 0x20;
    pub const PASSWORD: u8 = 0x40;
    pub const USERNAME: u8 = 0x80;
}

impl Connect {
    /// A CONNECT with defaults: clean start, keep alive 60 s, no will, no credentials.
    pub fn new(protocol: Protocol, client_id: impl Into<MqttStr>) -> Connect {
        Connect {
            protocol,
            clean_start: true,
            keep_alive_secs: 60,
            properties: ConnectProperties::default(),
            client_id: client_id.into(),
            will: None,
            username: None,
            password: None,
        }
    }

    pub(crate) fn decode(body: Bytes) -> Result<Connect, DecodeError> {
        let mut r = Reader::new(body);
        let name = r.binary()?;
        let level = r.u8()?;
        let protocol = match (&name[..], level) {
            (b"MQTT", 4) => Protocol::V311,
            (b"MQTT", 5) => Protocol::V5,
            (b"MQIsdp", 3) => Protocol::V31,
            (b"MQTT", l) | (b"MQIsdp", l) => {
                return Err(DecodeError::UnsupportedProtocolVersion(l))
            }
            _ => return Err(DecodeError::InvalidProtocolName),
        };
        let flags = r.u8()?;
        let will_qos_bits = (flags >> flag::WILL_QOS_SHIFT) & 0x03;
        let has_will = flags & flag::WILL != 0;
        let bad_flags = flags & flag::RESERVED != 0 // [MQTT-3.1.2-3]
            || (!has_will && (will_qos_bits != 0 || flags & flag::WILL_RETAIN != 0)) // [MQTT-3.1.2-11/13/15]
            || will_qos_bits == 3 // [MQTT-3.1.2-14]
            // [MQTT-3.1.2-22]: 3.1.1 forbids a password without a user name.
            || (!protocol.is_v5() && flags & flag::PASSWORD != 0 && flags & flag::USERNAME == 0);
        if bad_flags {
            return Err(DecodeError::InvalidConnectFlags(flags));
        }
        let keep_alive_secs = r.u16()?;
        let properties = if protocol.is_v5() {
            ConnectProperties::decode(read_block(&mut r)?, CONNECT)?
        } else {
            ConnectProperties::default()
        };
        let client_id = r.string()?;
        let will = if has_will {
            let properties = if protocol.is_v5() {
                let properties = WillProperties::decode(read_block(&mut r)?, 0)?;
                check_response_topic(properties.response_topic.as_ref())?;
                properties
            } else {
                WillProperties::default()
            };
            let topic = r.string()?;
            validate_topic_name(&topic).map_err(DecodeError::TopicNameInvalid)?;
            let payload = r.binary()?;
            Some(Will {
                topic,
                payload,
                qos: QoS::from_bits(will_qos_bits)?,
                retain: flags & flag::WILL_RETAIN != 0,
                properties,
            })
        } else {
            None
        };
        let username = if flags & flag::USERNAME != 0 {
            Some(r.string()?)
        } else {
            None
        };
        let password = if flags & flag::PASSWORD != 0 {
            Some(r.binary()?)
        } else {
            None
        };
        r.finish()?;
        Ok(Connect {
            protocol,
            clean_start: flags & flag::CLEAN_START != 0,
            keep_alive_secs,
            properties,
            client_id,
            will,
            username,
            password,
        })
    }

    fn remaining_len(&self) -> Result<usize, EncodeError> {
        let v5 = self.protocol.is_v5();
        let mut len = binary_len(self.protocol.name().as_bytes()) + 1 + 1 + 2;
        if v5 {
            len += block_len(self.properties.checked_len()?);
        }
        check_field(self.client_id.len())?;
        len += binary_len(self.client_id.as_bytes());
        if let Some(will) = &self.will {
            if v5 {
                len += block_len(will.properties.checked_len()?);
            }
            check_field(will.topic.len())?;
            check_field(will.payload.len())?;
            len += binary_len(will.topic.as_bytes()) + binary_len(&will.payload);
        }
        if let Some(u) = &self.username {
            check_field(u.len())?;
            len += binary_len(u.as_bytes());
        }
        if let Some(p) = &self.password {
            check_field(p.len())?;
            len += binary_len(p);
        }
        check_remaining(len)?;
        Ok(len)
    }

    /// Encodes the packet at the end of `out`.
    pub fn encode(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        let remaining = self.remaining_len()?;
        let v5 = self.protocol.is_v5();
        let mut flags = 0u8;
        if self.clean_start {
            flags |= flag::CLEAN_START;
        }
        if let Some(will) = &self.will {
            flags |= flag::WILL | ((will.qos as u8) << flag::WILL_QOS_SHIFT);
            if will.retain {
                flags |= flag::WILL_RETAIN;
            }
        }
        if self.username.is_some() {
            flags |= flag::USERNAME;
        }
        if self.password.is_some() {
            flags |= flag::PASSWORD;
        }
        write_frame(out, frame_len(remaining), |w| {
            w.put_header(CONNECT << 4, remaining);
            w.put_binary(self.protocol.name().as_bytes());
            w.put_u8(self.protocol.level());
            w.put_u8(flags);
            w.put_u16(self.keep_alive_secs);
            if v5 {
                w.put_var_int(self.properties.encoded_len());
                self.properties.write(w);
            }
            w.put_binary(self.client_id.as_bytes());
            if let Some(will) = &self.will {
                if v5 {
                    w.put_var_int(will.properties.encoded_len());
                    will.properties.write(w);
                }
                w.put_binary(will.topic.as_bytes());
                w.put_binary(&will.payload);
            }
            if let Some(u) = &self.username {
                w.put_binary(u.as_bytes());
            }
            if let Some(p) = &self.password {
                w.put_binary(p);
            }
        });
        Ok(())
    }
}

/// The server's answer to CONNECT.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnAck {
    /// The server resumed a stored session [MQTT-3.2.2-2].
    pub session_present: bool,
    /// MQTT 5 reason code; mapped to a 3.1.1 return code when encoded for 3.1.1.
    pub reason_code: ReasonCode,
    /// MQTT 5 properties.
    pub properties: ConnAckProperties,
}

impl ConnAck {
    pub(crate) fn decode(body: Bytes, protocol: Protocol) -> Result<ConnAck, DecodeError> {
        let mut r = Reader::new(body);
        let ack_flags = r.u8()?;
        if ack_flags & 0xFE != 0 {
            return Err(DecodeError::InvalidHeaderFlags {
                packet_type: CONNACK,
                flags: ack_flags,
            });
        }
        let code = r.u8()?;
        let (reason_code, properties) = if protocol.is_v5() {
            if !allowed::CONNACK.contains(&code) {
                return Err(DecodeError::InvalidReasonCode {
                    packet_type: CONNACK,
                    code,
                });
            }
            let props = ConnAckProperties::decode(read_block(&mut r)?, CONNACK)?;
            (ReasonCode(code), props)
        } else {
            let rc = ReasonCode::from_v3_connack(code).ok_or(DecodeError::InvalidReasonCode {
                packet_type: CONNACK,
                code,
            })?;
            (rc, ConnAckProperties::default())
        };
        r.finish()?;
        Ok(ConnAck {
            session_present: ack_flags & 1 != 0,
            reason_code,
            properties,
        })
    }

    /// Encodes the packet at the end of `out`.
    pub fn encode(&self, protocol: Protocol, out: &mut BytesMut) -> Result<(), EncodeError> {
        let v5 = protocol.is_v5();
        let props_len = if v5 {
            self.properties.checked_len()?
        } else {
            0
        };
        let remaining = 2 + if v5 { block_len(props_len) } else { 0 };
        check_remaining(remaining)?;
        let code = if v5 {
            self.reason_code.0
        } else {
            self.reason_code.to_v3_connack()
        };
        write_frame(out, frame_len(remaining), |w| {
            w.put_header(CONNACK << 4, remaining);
            w.put_u8(self.session_present as u8);
            w.put_u8(code);
            if v5 {
                w.put_var_int(props_len);
                self.properties.write(w);
            }
        });
        Ok(())
    }
}
