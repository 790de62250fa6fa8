//! PUBLISH (§3.3), and the encode-once / send-to-many form used for fan-out.

use std::ops::Range;

use bytes::{Buf, Bytes, BytesMut};

use super::error::{DecodeError, EncodeError};
use super::properties::{block_len, block_range, check_response_topic, PublishProperties};
use super::types::{validate_topic_name_utf8, MqttStr, Protocol, QoS};
use super::wire::{binary_len, check_field, check_remaining, frame_len, write_frame, Reader};

/// Packet type nibble of PUBLISH.
pub const PUBLISH: u8 = 3;

const DUP: u8 = 0x08;
const RETAIN: u8 = 0x01;

/// An application message on its way to or from a client.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Publish {
    /// This is a redelivery [MQTT-3.3.1-1].
    pub dup: bool,
    /// Delivery guarantee.
    pub qos: QoS,
    /// Retain on the server / was retained.
    pub retain: bool,
    /// Topic name; empty in MQTT 5 when a Topic Alias stands in for it.
    pub topic: MqttStr,
    /// Packet identifier; 0 for QoS 0.
    pub packet_id: u16,
    /// MQTT 5 properties.
    pub properties: PublishProperties,
    /// Application payload, a slice of the received frame.
    pub payload: Bytes,
}

impl Publish {
    /// A QoS 0 message with no properties.
    pub fn new(topic: impl Into<MqttStr>, payload: impl Into<Bytes>) -> Publish {
        Publish {
            topic: topic.into(),
            payload: payload.into(),
            ..Publish::default()
        }
    }

    #[inline(always)]
    pub(crate) fn decode(
        flags: u8,
        mut body: Bytes,
        protocol: Protocol,
    ) -> Result<Publish, DecodeError> {
        let layout = PublishLayout::parse(flags, &body, protocol)?;
        let properties = if layout.properties.is_empty() {
            PublishProperties::default()
        } else {
            PublishProperties::decode(Reader::new(body.slice(layout.properties.clone())), PUBLISH)?
        };
        layout.check_topic_or_alias(properties.topic_alias)?;
        check_response_topic(properties.response_topic.as_ref())?;
        let topic = if layout.topic.is_empty() {
            MqttStr::default()
        } else {
            MqttStr::from_validated(body.slice(layout.topic.clone()))
        };
        // The payload takes over the frame's reference instead of adding one.
        body.advance(layout.payload_start);
        Ok(Publish {
            dup: layout.dup,
            qos: layout.qos,
            retain: layout.retain,
            topic,
            packet_id: layout.packet_id,
            properties,
            payload: body,
        })
    }

    #[inline]
    fn header_byte(&self) -> u8 {
        header_byte(self.qos, self.dup, self.retain)
    }

    /// Remaining length and property length for this protocol.
    #[inline]
    fn lengths(&self, protocol: Protocol) -> Result<(usize, usize), EncodeError> {
        check_field(self.topic.len())?;
        let props_len = if protocol.is_v5() {
            self.properties.checked_len()?
        } else {
            0
        };
        let mut remaining = binary_len(self.topic.as_bytes()) + self.payload.len();
        if self.qos != QoS::AtMostOnce {
            remaining += 2;
        }
        if protocol.is_v5() {
            remaining += block_len(props_len);
        }
        check_remaining(remaining)?;
        Ok((remaining, props_len))
    }

    /// Size of the whole encoded frame, to compare with a client's Maximum Packet Size.
    pub fn encoded_len(&self, protocol: Protocol) -> Result<usize, EncodeError> {
        Ok(frame_len(self.lengths(protocol)?.0))
    }

    /// Encodes the packet at the end of `out`.
    #[inline]
    pub fn encode(&self, protocol: Protocol, out: &mut BytesMut) -> Result<(), EncodeError> {
        if self.qos != QoS::AtMostOnce && self.packet_id == 0 {
            return Err(EncodeError::ZeroPacketId);
        }
        self.encode_with_id(protocol, self.packet_id, out)
    }

    #[inline]
    fn encode_with_id(
        &self,
        protocol: Protocol,
        packet_id: u16,
        out: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        let (remaining, props_len) = self.lengths(protocol)?;
        write_frame(out, frame_len(remaining), |w| {
            w.put_header(self.header_byte(), remaining);
            w.put_binary(self.topic.as_bytes());
            if self.qos != QoS::AtMostOnce {
                w.put_u16(packet_id);
            }
            if protocol.is_v5() {
                w.put_var_int(props_len);
                if props_len != 0 {
                    self.properties.write(w);
                }
            }
            w.put_slice(&self.payload);
        });
        Ok(())
    }

    /// Encodes once for many receivers: the frame is shared, and only the packet
    /// identifier and DUP flag differ per receiver (see [`EncodedPublish::write`]).
    pub fn encode_shared(&self, protocol: Protocol) -> Result<EncodedPublish, EncodeError> {
        let mut out = BytesMut::new();
        self.encode_with_id(protocol, 0, &mut out)?;
        let packet_id_offset = if self.qos == QoS::AtMostOnce {
            0
        } else {
            let remaining = self.lengths(protocol)?.0;
            frame_len(remaining) - remaining + binary_len(self.topic.as_bytes())
        };
        Ok(EncodedPublish {
            frame: out.freeze(),
            packet_id_offset,
        })
    }
}

#[inline]
fn header_byte(qos: QoS, dup: bool, retain: bool) -> u8 {
    let mut b = (PUBLISH << 4) | ((qos as u8) << 1);
    if dup {
        b |= DUP;
    }
    if retain {
        b |= RETAIN;
    }
    b
}

/// A PUBLISH without properties, written from borrowed parts: what a broker sends for most
/// messages. Building a [`Publish`] for each receiver instead would clone the topic and the
/// payload (two reference counts, shared with the core that received the message) and fill
/// a property block that stays empty. The bytes are those of [`Publish::encode`] with no
/// properties.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BarePublish<'a> {
    /// This is a redelivery [MQTT-3.3.1-1].
    pub dup: bool,
    /// Delivery guarantee.
    pub qos: QoS,
    /// Retain flag.
    pub retain: bool,
    /// Topic name.
    pub topic: &'a str,
    /// Packet identifier; 0 for QoS 0.
    pub packet_id: u16,
    /// Application payload.
    pub payload: &'a [u8],
}

impl BarePublish<'_> {
    /// Encodes the packet at the end of `out`.
    #[inline]
    pub fn encode(&self, protocol: Protocol, out: &mut BytesMut) -> Result<(), EncodeError> {
        let with_id = self.qos != QoS::AtMostOnce;
        if with_id && self.packet_id == 0 {
            return Err(EncodeError::ZeroPacketId);
        }
        check_field(self.topic.len())?;
        let mut remaining = binary_len(self.topic.as_bytes()) + self.payload.len();
        if with_id {
            remaining += 2;
        }
        if protocol.is_v5() {
            remaining += block_len(0);
        }
        check_remaining(remaining)?;
        write_frame(out, frame_len(remaining), |w| {
            w.put_header(header_byte(self.qos, self.dup, self.retain), remaining);
            w.put_binary(self.topic.as_bytes());
            if with_id {
                w.put_u16(self.packet_id);
            }
            if protocol.is_v5() {
                w.put_var_int(0);
            }
            w.put_slice(self.payload);
        });
        Ok(())
    }
}

/// A PUBLISH encoded once and copied into each receiver's write buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedPublish {
    /// The whole frame.
    pub frame: Bytes,
    /// Offset of the 2-byte packet identifier; 0 for QoS 0 (there is none).
    pub packet_id_offset: usize,
}

impl EncodedPublish {
    /// Appends the frame to `out`, patching in this receiver's packet identifier and DUP flag.
    #[inline]
    pub fn write(&self, packet_id: u16, dup: bool, out: &mut BytesMut) {
        let start = out.len();
        out.extend_from_slice(&self.frame);
        if self.packet_id_offset != 0 {
            let at = start + self.packet_id_offset;
            out[at..at + 2].copy_from_slice(&packet_id.to_be_bytes());
            if dup {
                out[start] |= DUP;
            } else {
                out[start] &= !DUP;
            }
        }
    }

    /// Frame size, for Maximum Packet Size checks.
    #[inline]
    pub fn len(&self) -> usize {
        self.frame.len()
    }

    /// Never true for a real frame; present for API symmetry.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.frame.is_empty()
    }
}

/// Where the fields of a PUBLISH body are, checked by the one set of rules that both the owned
/// decoder ([`Publish`]) and the borrowed one ([`super::PublishView`]) use. Everything is
/// validated except the contents of the property block, which the caller decodes.
pub(crate) struct PublishLayout {
    pub dup: bool,
    pub qos: QoS,
    pub retain: bool,
    /// The topic name's bytes (validated: UTF-8, no U+0000, no wildcards).
    pub topic: Range<usize>,
    pub packet_id: u16,
    /// The property block without its length prefix (empty in MQTT 3.1.1).
    pub properties: Range<usize>,
    pub payload_start: usize,
}

impl PublishLayout {
    /// Reads the fixed-header flags and the variable header of `body`.
    #[inline(always)]
    pub(crate) fn parse(
        flags: u8,
        body: &[u8],
        protocol: Protocol,
    ) -> Result<PublishLayout, DecodeError> {
        let qos = QoS::from_bits((flags >> 1) & 0x03)?;
        let dup = flags & DUP != 0;
        if dup && qos == QoS::AtMostOnce {
            return Err(DecodeError::DupOnQoS0);
        }
        let topic_len = read_u16(body, 0)? as usize;
        let topic = 2..2 + topic_len;
        let topic_bytes = body.get(topic.clone()).ok_or(DecodeError::Truncated)?;
        // Wildcards are rejected here [MQTT-3.3.2-2].
        validate_topic_name_utf8(topic_bytes)?;
        let mut at = topic.end;
        let packet_id = if qos == QoS::AtMostOnce {
            0
        } else {
            let id = read_u16(body, at)?;
            at += 2;
            if id == 0 {
                return Err(DecodeError::ZeroPacketId);
            }
            id
        };
        let mut properties = at..at;
        if protocol.is_v5() {
            properties = block_range(body, at)?;
            at = properties.end;
        }
        Ok(PublishLayout {
            dup,
            qos,
            retain: flags & RETAIN != 0,
            topic,
            packet_id,
            properties,
            payload_start: at,
        })
    }

    /// An empty topic needs a Topic Alias [MQTT-3.3.2-8]; checked after the properties.
    #[inline]
    pub(crate) fn check_topic_or_alias(&self, topic_alias: Option<u16>) -> Result<(), DecodeError> {
        if self.topic.is_empty() && topic_alias.is_none() {
            return Err(DecodeError::EmptyTopicWithoutAlias);
        }
        Ok(())
    }
}

#[inline(always)]
fn read_u16(body: &[u8], at: usize) -> Result<u16, DecodeError> {
    match body.get(at..at + 2) {
        Some(s) => Ok(u16::from_be_bytes([s[0], s[1]])),
        None => Err(DecodeError::Truncated),
    }
}
