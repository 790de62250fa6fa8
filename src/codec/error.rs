//! Typed decode and encode failures, each carrying the reason code the spec asks for.

use thiserror::Error;

use super::reason::ReasonCode;
use crate::topic::TopicError;

/// Why a frame could not be decoded. [`DecodeError::reason_code`] gives the MQTT 5 reason
/// code to put in the CONNACK or DISCONNECT that closes the connection.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// A variable byte integer (the remaining length, a property length or identifier, a
    /// Subscription Identifier) uses more than 4 bytes, or more than its shortest form
    /// [MQTT-1.5.5-1].
    #[error("variable byte integer longer than 4 bytes or not in its shortest form")]
    MalformedRemainingLength,
    /// The frame is larger than this side accepts (Maximum Packet Size).
    #[error("packet of {size} bytes exceeds the maximum of {max} bytes")]
    PacketTooLarge {
        /// Size of the whole frame, fixed header included.
        size: usize,
        /// The configured maximum.
        max: usize,
    },
    /// Packet type 0, or AUTH before MQTT 5.
    #[error("unknown or reserved packet type {0}")]
    UnknownPacketType(u8),
    /// The fixed header's flag bits differ from the required value [MQTT-2.1.3-1].
    #[error("invalid fixed header flags {flags:#06b} for packet type {packet_type}")]
    InvalidHeaderFlags {
        /// The packet type nibble.
        packet_type: u8,
        /// The flags nibble received.
        flags: u8,
    },
    /// A field runs past the end of the packet.
    #[error("packet ends in the middle of a field")]
    Truncated,
    /// Bytes left over after the last field.
    #[error("{0} unexpected bytes after the last field")]
    TrailingBytes(usize),
    /// A string is not well-formed UTF-8 [MQTT-1.5.4-1].
    #[error("string is not valid UTF-8")]
    InvalidUtf8,
    /// A string contains U+0000 [MQTT-1.5.4-2].
    #[error("string contains U+0000")]
    NullCharacter,
    /// QoS bits set to 3 [MQTT-3.3.1-4].
    #[error("QoS 3 is not a valid QoS")]
    InvalidQoS,
    /// DUP set on a QoS 0 PUBLISH [MQTT-3.3.1-2].
    #[error("DUP flag set on a QoS 0 PUBLISH")]
    DupOnQoS0,
    /// Protocol name is neither "MQTT" nor "MQIsdp" [MQTT-3.1.2-1].
    #[error("unknown protocol name")]
    InvalidProtocolName,
    /// Protocol level is not 3, 4 or 5 [MQTT-3.1.2-2].
    #[error("unsupported protocol level {0}")]
    UnsupportedProtocolVersion(u8),
    /// CONNECT flags break [MQTT-3.1.2-3], [MQTT-3.1.2-11..15] or [MQTT-3.1.2-22].
    #[error("invalid CONNECT flags {0:#010b}")]
    InvalidConnectFlags(u8),
    /// Reserved bits of the subscription options are set [MQTT-3.8.3-5].
    #[error("invalid subscription options {0:#010b}")]
    InvalidSubscriptionOptions(u8),
    /// Retain Handling or Maximum QoS is 3 in the subscription options: a Protocol Error
    /// (§3.8.3.1), not a malformed packet.
    #[error("subscription options {0:#010b}: Retain Handling or Maximum QoS of 3")]
    SubscriptionOptionValue(u8),
    /// No Local on a shared subscription [MQTT-3.8.3-4].
    #[error("No Local set on a shared subscription")]
    NoLocalOnSharedSubscription,
    /// A packet identifier of 0 where one is required [MQTT-2.2.1-3].
    #[error("packet identifier 0")]
    ZeroPacketId,
    /// SUBSCRIBE or UNSUBSCRIBE without any filter [MQTT-3.8.3-2], [MQTT-3.10.3-2].
    #[error("no topic filters")]
    NoTopicFilters,
    /// SUBACK / UNSUBACK without reason codes.
    #[error("no reason codes")]
    NoReasonCodes,
    /// A reason code the packet type does not allow.
    #[error("reason code {code:#04x} is not valid in packet type {packet_type}")]
    InvalidReasonCode {
        /// The packet type nibble.
        packet_type: u8,
        /// The code received.
        code: u8,
    },
    /// An unknown property identifier.
    #[error("unknown property identifier {0:#04x}")]
    UnknownProperty(u8),
    /// A property that the packet type does not allow [MQTT-2.2.2].
    #[error("property {id:#04x} is not allowed in packet type {packet_type}")]
    PropertyNotAllowed {
        /// The property identifier.
        id: u8,
        /// The packet type nibble (0 for Will properties).
        packet_type: u8,
    },
    /// A property that may appear once appeared twice.
    #[error("property {0:#04x} appears more than once")]
    DuplicateProperty(u8),
    /// A property value out of its range (e.g. Receive Maximum 0).
    #[error("invalid value for property {0:#04x}")]
    InvalidPropertyValue(u8),
    /// Topic Alias 0 [MQTT-3.3.2-8].
    #[error("topic alias 0")]
    TopicAliasZero,
    /// An empty topic without a Topic Alias [MQTT-3.3.2-1], [MQTT-4.7.3-1].
    #[error("empty topic name without a topic alias")]
    EmptyTopicWithoutAlias,
    /// A PUBLISH or Will topic name is invalid (wildcards).
    #[error("invalid topic name: {0}")]
    TopicNameInvalid(TopicError),
    /// A SUBSCRIBE / UNSUBSCRIBE topic filter is invalid.
    #[error("invalid topic filter: {0}")]
    TopicFilterInvalid(TopicError),
    /// A Response Topic that is not a valid topic name: empty or with wildcards
    /// ([MQTT-3.3.2-14]; the same for a Will's, §3.1.3.2.6).
    #[error("invalid Response Topic: {0}")]
    ResponseTopicInvalid(TopicError),
}

impl DecodeError {
    /// The MQTT 5 reason code for the CONNACK or DISCONNECT that reports this error.
    pub fn reason_code(&self) -> ReasonCode {
        use DecodeError::*;
        match self {
            PacketTooLarge { .. } => ReasonCode::PACKET_TOO_LARGE,
            UnsupportedProtocolVersion(_) | InvalidProtocolName => {
                ReasonCode::UNSUPPORTED_PROTOCOL_VERSION
            }
            TopicNameInvalid(_) => ReasonCode::TOPIC_NAME_INVALID,
            TopicFilterInvalid(_) => ReasonCode::TOPIC_FILTER_INVALID,
            TopicAliasZero => ReasonCode::TOPIC_ALIAS_INVALID,
            DuplicateProperty(_)
            | ZeroPacketId
            | NoTopicFilters
            | NoLocalOnSharedSubscription
            | EmptyTopicWithoutAlias
            | SubscriptionOptionValue(_)
            | ResponseTopicInvalid(_)
            | InvalidPropertyValue(_) => ReasonCode::PROTOCOL_ERROR,
            MalformedRemainingLength
            | UnknownPacketType(_)
            | InvalidHeaderFlags { .. }
            | Truncated
            | TrailingBytes(_)
            | InvalidUtf8
            | NullCharacter
            | InvalidQoS
            | DupOnQoS0
            | InvalidConnectFlags(_)
            | InvalidSubscriptionOptions(_)
            | NoReasonCodes
            | InvalidReasonCode { .. }
            | UnknownProperty(_)
            | PropertyNotAllowed { .. } => ReasonCode::MALFORMED_PACKET,
        }
    }
}

/// Why a packet could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncodeError {
    /// The packet's remaining length exceeds 268,435,455 bytes.
    #[error("packet too large to encode ({0} bytes of remaining length)")]
    PacketTooLarge(usize),
    /// A string or binary field is longer than 65,535 bytes.
    #[error("field of {0} bytes exceeds the 65,535-byte limit")]
    FieldTooLong(usize),
    /// The packet has no form in this protocol version (AUTH before MQTT 5).
    #[error("packet type {0} does not exist in this protocol version")]
    NotInProtocol(u8),
    /// A packet that requires a packet identifier has 0.
    #[error("packet identifier 0")]
    ZeroPacketId,
    /// A property value the wire format cannot carry (a Subscription Identifier outside
    /// 1..=268,435,455).
    #[error("invalid value for property {0:#04x}")]
    InvalidPropertyValue(u8),
}
