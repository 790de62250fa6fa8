//! Borrowed decoding: the packets of the message flow read in place from a receive buffer.
//!
//! [`Packet::decode`](super::Packet::decode) splits each frame off the buffer as shared
//! `Bytes`, which is what a broker needs for a payload it keeps. A reader that only looks at
//! a packet and moves on (an acknowledgement, a load generator's subscriber) would pay for the
//! shared header's allocation, reference counting, and a copy when the buffer grows again.
//! [`PacketView::decode`] applies exactly the same checks (the layout parsers are shared with
//! the owned decoders) and hands out slices of the buffer; the caller then advances the
//! buffer by the frame length it returns. Property blocks are rare on these packets: a view
//! holds the validated block, and `decode_properties` builds the owned type from a copy.

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
    /// The MQTT 5 property block, already validated (empty when there is none); see
    /// [`PublishView::decode_properties`].
    pub properties: &'a [u8],
    /// Application payload.
    pub payload: &'a [u8],
}

/// A PUBACK, PUBREC, PUBREL or PUBCOMP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckView<'a> {
    /// Which of the four (PUBACK..PUBCOMP).
    pub packet_type: u8,
    /// The PUBLISH being acknowledged.
    pub packet_id: u16,
    /// MQTT 5 reason code (Success when absent on the wire).
    pub reason_code: ReasonCode,
    /// The MQTT 5 property block, already validated (empty when there is none); see
    /// [`AckView::decode_properties`].
    pub properties: &'a [u8],
}

impl PublishView<'_> {
    /// The properties as the owned type (copied: views are for readers that rarely need them).
    pub fn decode_properties(&self) -> Result<PublishProperties, DecodeError> {
        publish_properties(self.properties)
    }
}

impl AckView<'_> {
    /// The properties as the owned type (copied).
    pub fn decode_properties(&self) -> Result<AckProperties, DecodeError> {
        ack_properties(self.properties, self.packet_type)
    }
}

fn publish_properties(block: &[u8]) -> Result<PublishProperties, DecodeError> {
    if block.is_empty() {
        return Ok(PublishProperties::default());
    }
    let properties =
        PublishProperties::decode(Reader::new(Bytes::copy_from_slice(block)), PUBLISH)?;
    super::properties::check_response_topic(properties.response_topic.as_ref())?;
    Ok(properties)
}

fn ack_properties(block: &[u8], packet_type: u8) -> Result<AckProperties, DecodeError> {
    if block.is_empty() {
        return Ok(AckProperties::default());
    }
    AckProperties::decode(Reader::new(Bytes::copy_from_slice(block)), packet_type)
}

/// The first packet of a receive buffer, read in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PacketView<'a> {
    /// An application message.
    Publish(PublishView<'a>),
    /// A QoS 1 / QoS 2 acknowledgement.
    Ack(AckView<'a>),
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
                let properties = &body[layout.properties];
                // Validated now, so a view is only ever handed out for a valid packet.
                ack_properties(properties, header.packet_type)?;
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
    let properties = &body[layout.properties.clone()];
    if properties.is_empty() {
        layout.check_topic_or_alias(None)?;
    } else {
        // Validated now, so a view is only ever handed out for a valid packet.
        layout.check_topic_or_alias(publish_properties(properties)?.topic_alias)?;
    }
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
