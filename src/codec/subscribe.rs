//! SUBSCRIBE (§3.8), SUBACK (§3.9), UNSUBSCRIBE (§3.10) and UNSUBACK (§3.11).

use bytes::{Bytes, BytesMut};

use super::error::{DecodeError, EncodeError};
use super::properties::{
    block_len, read_block, AckProperties, SubscribeProperties, UnsubscribeProperties,
};
use super::reason::{allowed, ReasonCode};
use super::types::{MqttStr, Protocol, QoS};
use super::wire::{binary_len, check_field, check_remaining, frame_len, write_frame, Reader};
use crate::topic::{is_shared_filter, validate_topic_filter};

/// Packet type nibble of SUBSCRIBE.
pub const SUBSCRIBE: u8 = 8;
/// Packet type nibble of SUBACK.
pub const SUBACK: u8 = 9;
/// Packet type nibble of UNSUBSCRIBE.
pub const UNSUBSCRIBE: u8 = 10;
/// Packet type nibble of UNSUBACK.
pub const UNSUBACK: u8 = 11;

/// When retained messages are sent for a new subscription (MQTT 5 §3.8.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(u8)]
pub enum RetainHandling {
    /// Send retained messages at subscribe time.
    #[default]
    OnSubscribe = 0,
    /// Send them only when the subscription did not exist before.
    OnNewSubscription = 1,
    /// Never send them.
    Never = 2,
}

/// The options byte of one SUBSCRIBE entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SubscriptionOptions {
    /// Maximum QoS the subscriber receives.
    pub qos: QoS,
    /// Do not receive own publishes (MQTT 5).
    pub no_local: bool,
    /// Keep the RETAIN flag of forwarded messages (MQTT 5).
    pub retain_as_published: bool,
    /// When to send retained messages (MQTT 5).
    pub retain_handling: RetainHandling,
}

impl SubscriptionOptions {
    /// Options with this QoS and every MQTT 5 option at its default.
    pub fn qos(qos: QoS) -> SubscriptionOptions {
        SubscriptionOptions {
            qos,
            ..SubscriptionOptions::default()
        }
    }

    fn decode(b: u8, protocol: Protocol) -> Result<SubscriptionOptions, DecodeError> {
        // [MQTT-3.8.3-5] reserved bits 6-7 (MQTT 5); 3.1.1 reserves bits 2-7 [MQTT-3-8.3-4].
        let reserved = if protocol.is_v5() { 0xC0 } else { 0xFC };
        if b & reserved != 0 {
            return Err(DecodeError::InvalidSubscriptionOptions(b));
        }
        let retain_handling = match (b >> 4) & 0x03 {
            0 => RetainHandling::OnSubscribe,
            1 => RetainHandling::OnNewSubscription,
            2 => RetainHandling::Never,
            _ => return Err(DecodeError::SubscriptionOptionValue(b)),
        };
        // QoS 3: malformed in 3.1.1 [MQTT-3-8.3-4], a Protocol Error in 5.0 (§3.8.3.1).
        let qos = QoS::from_bits(b & 0x03).map_err(|e| {
            if protocol.is_v5() {
                DecodeError::SubscriptionOptionValue(b)
            } else {
                e
            }
        })?;
        Ok(SubscriptionOptions {
            qos,
            no_local: b & 0x04 != 0,
            retain_as_published: b & 0x08 != 0,
            retain_handling,
        })
    }

    fn encode(&self, protocol: Protocol) -> u8 {
        let mut b = self.qos as u8;
        if protocol.is_v5() {
            b |= (self.no_local as u8) << 2;
            b |= (self.retain_as_published as u8) << 3;
            b |= (self.retain_handling as u8) << 4;
        }
        b
    }
}

/// One filter of a SUBSCRIBE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeFilter {
    /// Topic filter, possibly `$share/{group}/{filter}`.
    pub filter: MqttStr,
    /// Its options.
    pub options: SubscriptionOptions,
}

/// A request to add subscriptions.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Subscribe {
    /// Packet identifier, echoed by SUBACK.
    pub packet_id: u16,
    /// MQTT 5 properties.
    pub properties: SubscribeProperties,
    /// At least one filter [MQTT-3.8.3-2].
    pub filters: Vec<SubscribeFilter>,
}

fn read_packet_id(r: &mut Reader) -> Result<u16, DecodeError> {
    match r.u16()? {
        0 => Err(DecodeError::ZeroPacketId),
        id => Ok(id),
    }
}

fn read_filter(r: &mut Reader) -> Result<MqttStr, DecodeError> {
    let filter = r.string()?;
    validate_topic_filter(&filter).map_err(DecodeError::TopicFilterInvalid)?;
    Ok(filter)
}

impl Subscribe {
    pub(crate) fn decode(body: Bytes, protocol: Protocol) -> Result<Subscribe, DecodeError> {
        let mut r = Reader::new(body);
        let packet_id = read_packet_id(&mut r)?;
        let properties = if protocol.is_v5() {
            SubscribeProperties::decode(read_block(&mut r)?, SUBSCRIBE)?
        } else {
            SubscribeProperties::default()
        };
        let mut filters = Vec::new();
        while r.remaining() > 0 {
            let filter = read_filter(&mut r)?;
            let options = SubscriptionOptions::decode(r.u8()?, protocol)?;
            if options.no_local && is_shared_filter(&filter) {
                return Err(DecodeError::NoLocalOnSharedSubscription);
            }
            filters.push(SubscribeFilter { filter, options });
        }
        if filters.is_empty() {
            return Err(DecodeError::NoTopicFilters);
        }
        Ok(Subscribe {
            packet_id,
            properties,
            filters,
        })
    }

    fn lengths(&self, protocol: Protocol) -> Result<(usize, usize), EncodeError> {
        if self.packet_id == 0 {
            return Err(EncodeError::ZeroPacketId);
        }
        let props_len = if protocol.is_v5() {
            self.properties.checked_len()?
        } else {
            0
        };
        let mut remaining = 2 + if protocol.is_v5() {
            block_len(props_len)
        } else {
            0
        };
        for f in &self.filters {
            check_field(f.filter.len())?;
            remaining += binary_len(f.filter.as_bytes()) + 1;
        }
        check_remaining(remaining)?;
        Ok((remaining, props_len))
    }

    /// Encodes the packet at the end of `out`.
    pub fn encode(&self, protocol: Protocol, out: &mut BytesMut) -> Result<(), EncodeError> {
        let (remaining, props_len) = self.lengths(protocol)?;
        write_frame(out, frame_len(remaining), |w| {
            w.put_header((SUBSCRIBE << 4) | 0x02, remaining);
            w.put_u16(self.packet_id);
            if protocol.is_v5() {
                w.put_var_int(props_len);
                if props_len != 0 {
                    self.properties.write(w);
                }
            }
            for f in &self.filters {
                w.put_binary(f.filter.as_bytes());
                w.put_u8(f.options.encode(protocol));
            }
        });
        Ok(())
    }
}

/// The answer to SUBSCRIBE: one reason code per filter, in order [MQTT-3.8.4-6].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SubAck {
    /// Packet identifier of the SUBSCRIBE.
    pub packet_id: u16,
    /// MQTT 5 properties.
    pub properties: AckProperties,
    /// Granted QoS (0x00-0x02) or a failure (0x80 and above).
    pub reason_codes: Vec<ReasonCode>,
}

/// The 3.1.1 SUBACK return code for an MQTT 5 reason code (any failure is 0x80).
fn v3_suback_code(rc: ReasonCode) -> u8 {
    if rc.0 <= 2 {
        rc.0
    } else {
        0x80
    }
}

fn decode_ack_codes(
    r: &mut Reader,
    packet_type: u8,
    allowed: &[u8],
) -> Result<Vec<ReasonCode>, DecodeError> {
    let mut codes = Vec::with_capacity(r.remaining());
    while r.remaining() > 0 {
        let code = r.u8()?;
        if !allowed.contains(&code) {
            return Err(DecodeError::InvalidReasonCode { packet_type, code });
        }
        codes.push(ReasonCode(code));
    }
    if codes.is_empty() {
        return Err(DecodeError::NoReasonCodes);
    }
    Ok(codes)
}

impl SubAck {
    pub(crate) fn decode(body: Bytes, protocol: Protocol) -> Result<SubAck, DecodeError> {
        let mut r = Reader::new(body);
        let packet_id = read_packet_id(&mut r)?;
        let properties = if protocol.is_v5() {
            AckProperties::decode(read_block(&mut r)?, SUBACK)?
        } else {
            AckProperties::default()
        };
        let allowed: &[u8] = if protocol.is_v5() {
            allowed::SUBACK
        } else {
            &[0x00, 0x01, 0x02, 0x80]
        };
        let reason_codes = decode_ack_codes(&mut r, SUBACK, allowed)?;
        Ok(SubAck {
            packet_id,
            properties,
            reason_codes,
        })
    }

    /// Encodes the packet at the end of `out`.
    pub fn encode(&self, protocol: Protocol, out: &mut BytesMut) -> Result<(), EncodeError> {
        encode_ack_list(
            SUBACK,
            self.packet_id,
            &self.properties,
            &self.reason_codes,
            protocol,
            true,
            out,
        )
    }
}

fn encode_ack_list(
    packet_type: u8,
    packet_id: u16,
    properties: &AckProperties,
    codes: &[ReasonCode],
    protocol: Protocol,
    codes_in_v3: bool,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    let v5 = protocol.is_v5();
    let props_len = if v5 { properties.checked_len()? } else { 0 };
    let codes_len = if v5 || codes_in_v3 { codes.len() } else { 0 };
    let remaining = 2 + codes_len + if v5 { block_len(props_len) } else { 0 };
    check_remaining(remaining)?;
    write_frame(out, frame_len(remaining), |w| {
        w.put_header(packet_type << 4, remaining);
        w.put_u16(packet_id);
        if v5 {
            w.put_var_int(props_len);
            properties.write(w);
            for rc in codes {
                w.put_u8(rc.0);
            }
        } else if codes_in_v3 {
            for rc in codes {
                w.put_u8(v3_suback_code(*rc));
            }
        }
    });
    Ok(())
}

/// A request to remove subscriptions.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Unsubscribe {
    /// Packet identifier, echoed by UNSUBACK.
    pub packet_id: u16,
    /// MQTT 5 properties.
    pub properties: UnsubscribeProperties,
    /// At least one filter [MQTT-3.10.3-2].
    pub filters: Vec<MqttStr>,
}

impl Unsubscribe {
    pub(crate) fn decode(body: Bytes, protocol: Protocol) -> Result<Unsubscribe, DecodeError> {
        let mut r = Reader::new(body);
        let packet_id = read_packet_id(&mut r)?;
        let properties = if protocol.is_v5() {
            UnsubscribeProperties::decode(read_block(&mut r)?, UNSUBSCRIBE)?
        } else {
            UnsubscribeProperties::default()
        };
        let mut filters = Vec::new();
        while r.remaining() > 0 {
            filters.push(read_filter(&mut r)?);
        }
        if filters.is_empty() {
            return Err(DecodeError::NoTopicFilters);
        }
        Ok(Unsubscribe {
            packet_id,
            properties,
            filters,
        })
    }

    /// Encodes the packet at the end of `out`.
    pub fn encode(&self, protocol: Protocol, out: &mut BytesMut) -> Result<(), EncodeError> {
        if self.packet_id == 0 {
            return Err(EncodeError::ZeroPacketId);
        }
        let v5 = protocol.is_v5();
        let props_len = if v5 {
            self.properties.checked_len()?
        } else {
            0
        };
        let mut remaining = 2 + if v5 { block_len(props_len) } else { 0 };
        for f in &self.filters {
            check_field(f.len())?;
            remaining += binary_len(f.as_bytes());
        }
        check_remaining(remaining)?;
        write_frame(out, frame_len(remaining), |w| {
            w.put_header((UNSUBSCRIBE << 4) | 0x02, remaining);
            w.put_u16(self.packet_id);
            if v5 {
                w.put_var_int(props_len);
                self.properties.write(w);
            }
            for f in &self.filters {
                w.put_binary(f.as_bytes());
            }
        });
        Ok(())
    }
}

/// The answer to UNSUBSCRIBE (reason codes exist only in MQTT 5).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UnsubAck {
    /// Packet identifier of the UNSUBSCRIBE.
    pub packet_id: u16,
    /// MQTT 5 properties.
    pub properties: AckProperties,
    /// One per filter (MQTT 5); empty in 3.1.1.
    pub reason_codes: Vec<ReasonCode>,
}

impl UnsubAck {
    pub(crate) fn decode(body: Bytes, protocol: Protocol) -> Result<UnsubAck, DecodeError> {
        let mut r = Reader::new(body);
        let packet_id = read_packet_id(&mut r)?;
        if !protocol.is_v5() {
            r.finish()?;
            return Ok(UnsubAck {
                packet_id,
                ..UnsubAck::default()
            });
        }
        let properties = AckProperties::decode(read_block(&mut r)?, UNSUBACK)?;
        let reason_codes = decode_ack_codes(&mut r, UNSUBACK, allowed::UNSUBACK)?;
        Ok(UnsubAck {
            packet_id,
            properties,
            reason_codes,
        })
    }

    /// Encodes the packet at the end of `out`.
    pub fn encode(&self, protocol: Protocol, out: &mut BytesMut) -> Result<(), EncodeError> {
        encode_ack_list(
            UNSUBACK,
            self.packet_id,
            &self.properties,
            &self.reason_codes,
            protocol,
            false,
            out,
        )
    }
}
