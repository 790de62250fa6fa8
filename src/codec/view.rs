//! Borrowed decoding: the packets of the message flow read in place from a receive buffer.
//!
//! [`Packet::decode`](super::Packet::decode) splits each frame off the buffer as shared
//! `Bytes`, which is what a broker needs for a payload it keeps. A reader that only looks at
//! a packet and moves on (an acknowledgement, a load generator's subscriber) would pay for the
//! shared header's allocation, reference counting, and a copy when the buffer grows again.
//! [`PacketView::decode`] applies exactly the same checks (the layout parsers are shared with
//! the owned decoders) and hands out slices of the buffer; the caller then advances the
//! buffer by the frame length it returns. Property blocks are rare on these packets; when
//! present they are decoded from a copy into the owned property types.

use bytes::Bytes;

use super::ack::{AckLayout, PUBACK, PUBCOMP, PUBREC, PUBREL};
use super::error::DecodeError;
use super::packet::check_frame;
use super::properties::{AckProperties, PublishProperties};
use super::publish::{PublishLayout, PUBLISH};
use super::reason::ReasonCode;
use super::types::{Protocol, QoS};
use super::wire::Reader;

/// A PUBLISH whose topic and payload are slices of the receive buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishView<'a> {
    /// This is a redelivery [MQTT-3.3.1-1].
    pub dup: bool,
    /// Delivery guarantee.
    pub qos: QoS,
    /// Retain flag.
    pub retain: bool,
    /// Topic name (validated); empty when a Topic Alias stands in for it.
    pub topic: &'a str,
    /// Packet identifier; 0 for QoS 0.
    pub packet_id: u16,
    /// MQTT 5 properties (decoded from a copy; default and free when there are none).
    pub properties: PublishProperties,
    /// Application payload.
    pub payload: &'a [u8],
}

/// A PUBACK, PUBREC, PUBREL or PUBCOMP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckView {
    /// Which of the four (PUBACK..PUBCOMP).
    pub packet_type: u8,
    /// The PUBLISH being acknowledged.
    pub packet_id: u16,
    /// MQTT 5 reason code (Success when absent on the wire).
    pub reason_code: ReasonCode,
    /// MQTT 5 properties (default and free when there are none).
    pub properties: AckProperties,
}

/// The first packet of a receive buffer, read in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PacketView<'a> {
    /// An application message.
    Publish(PublishView<'a>),
    /// A QoS 1 / QoS 2 acknowledgement.
    Ack(AckView),
    /// A complete frame of another type: decode it with `Packet::decode`.
    Other,
}

impl<'a> PacketView<'a> {
    /// Reads the packet at the start of `buf` and the size of its frame.
    ///
    /// `Ok(None)`: the frame is incomplete. Errors are those `Packet::decode` reports for the
    /// same bytes. For `Other`, nothing beyond the fixed header was checked.
    #[inline]
    pub fn decode(
        buf: &'a [u8],
        protocol: Protocol,
        max_packet_bytes: usize,
    ) -> Result<Option<(PacketView<'a>, usize)>, DecodeError> {
        let Some(header) = check_frame(buf, protocol, max_packet_bytes)? else {
            return Ok(None);
        };
        let frame_len = header.frame_len();
        let body = &buf[header.header_len..frame_len];
        let view = match header.packet_type {
            PUBLISH => PacketView::Publish(publish(header.flags, body, protocol)?),
            PUBACK | PUBREC | PUBREL | PUBCOMP => {
                let layout = AckLayout::parse(header.packet_type, body, protocol)?;
                let properties = if layout.properties.is_empty() {
                    AckProperties::default()
                } else {
                    let block = Bytes::copy_from_slice(&body[layout.properties]);
                    AckProperties::decode(Reader::new(block), header.packet_type)?
                };
                PacketView::Ack(AckView {
                    packet_type: header.packet_type,
                    packet_id: layout.packet_id,
                    reason_code: layout.reason_code,
                    properties,
                })
            }
            _ => PacketView::Other,
        };
        Ok(Some((view, frame_len)))
    }
}

#[inline(always)]
fn publish(flags: u8, body: &[u8], protocol: Protocol) -> Result<PublishView<'_>, DecodeError> {
    let layout = PublishLayout::parse(flags, body, protocol)?;
    let properties = if layout.properties.is_empty() {
        PublishProperties::default()
    } else {
        let block = Bytes::copy_from_slice(&body[layout.properties.clone()]);
        PublishProperties::decode(Reader::new(block), PUBLISH)?
    };
    layout.check_topic_or_alias(&properties)?;
    // SAFETY: the layout parser validated the topic as UTF-8.
    let topic = unsafe { std::str::from_utf8_unchecked(&body[layout.topic.clone()]) };
    Ok(PublishView {
        dup: layout.dup,
        qos: layout.qos,
        retain: layout.retain,
        topic,
        packet_id: layout.packet_id,
        properties,
        payload: &body[layout.payload_start..],
    })
}
