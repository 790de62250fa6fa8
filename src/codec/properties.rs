//! MQTT 5 properties (§2.2.2): one typed struct per packet family.
//!
//! Each struct lists exactly the properties its packets may carry, so a property that is not
//! allowed, or that appears twice when it may appear once, is rejected while decoding. Strings
//! and binary values are slices of the received frame.

use std::ops::Range;

use bytes::Bytes;

use super::error::{DecodeError, EncodeError};
use super::types::MqttStr;
use super::wire::{
    binary_len, check_field, parse_var_int, var_int_len, FrameWriter, Reader, MAX_VAR_INT,
};

/// Property identifiers (§2.2.2.2).
pub mod id {
    #![allow(missing_docs)]
    pub const PAYLOAD_FORMAT_INDICATOR: u8 = 0x01;
    pub const MESSAGE_EXPIRY_INTERVAL: u8 = 0x02;
    pub const CONTENT_TYPE: u8 = 0x03;
    pub const RESPONSE_TOPIC: u8 = 0x08;
    pub const CORRELATION_DATA: u8 = 0x09;
    pub const SUBSCRIPTION_IDENTIFIER: u8 = 0x0B;
    pub const SESSION_EXPIRY_INTERVAL: u8 = 0x11;
    pub const ASSIGNED_CLIENT_IDENTIFIER: u8 = 0x12;
    pub const SERVER_KEEP_ALIVE: u8 = 0x13;
    pub const AUTHENTICATION_METHOD: u8 = 0x15;
    pub const AUTHENTICATION_DATA: u8 = 0x16;
    pub const REQUEST_PROBLEM_INFORMATION: u8 = 0x17;
    pub const WILL_DELAY_INTERVAL: u8 = 0x18;
    pub const REQUEST_RESPONSE_INFORMATION: u8 = 0x19;
    pub const RESPONSE_INFORMATION: u8 = 0x1A;
    pub const SERVER_REFERENCE: u8 = 0x1C;
    pub const REASON_STRING: u8 = 0x1F;
    pub const RECEIVE_MAXIMUM: u8 = 0x21;
    pub const TOPIC_ALIAS_MAXIMUM: u8 = 0x22;
    pub const TOPIC_ALIAS: u8 = 0x23;
    pub const MAXIMUM_QOS: u8 = 0x24;
    pub const RETAIN_AVAILABLE: u8 = 0x25;
    pub const USER_PROPERTY: u8 = 0x26;
    pub const MAXIMUM_PACKET_SIZE: u8 = 0x27;
    pub const WILDCARD_SUBSCRIPTION_AVAILABLE: u8 = 0x28;
    pub const SUBSCRIPTION_IDENTIFIER_AVAILABLE: u8 = 0x29;
    pub const SHARED_SUBSCRIPTION_AVAILABLE: u8 = 0x2A;
}

/// A user property: a name/value pair that may repeat and whose order is kept
/// [MQTT-3.3.2-18].
pub type UserProperty = (MqttStr, MqttStr);

/// Rejects out-of-range one-byte values: the flags that must be 0 or 1, and Maximum QoS.
fn check_byte(property: u8, v: u8) -> Result<u8, DecodeError> {
    if v > 1 {
        return Err(DecodeError::InvalidPropertyValue(property));
    }
    Ok(v)
}

/// Rejects zeros where the spec forbids them (Receive Maximum, Topic Alias).
fn check_u16(property: u8, v: u16) -> Result<u16, DecodeError> {
    match (property, v) {
        (id::TOPIC_ALIAS, 0) => Err(DecodeError::TopicAliasZero),
        (id::RECEIVE_MAXIMUM, 0) => Err(DecodeError::InvalidPropertyValue(property)),
        _ => Ok(v),
    }
}

/// Rejects zeros where the spec forbids them (Maximum Packet Size).
fn check_u32(property: u8, v: u32) -> Result<u32, DecodeError> {
    if property == id::MAXIMUM_PACKET_SIZE && v == 0 {
        return Err(DecodeError::InvalidPropertyValue(property));
    }
    Ok(v)
}

/// Subscription identifiers are 1..=268,435,455 [MQTT-3.8.2.1.2].
fn check_var_int(property: u8, v: u32) -> Result<u32, DecodeError> {
    if v == 0 {
        return Err(DecodeError::InvalidPropertyValue(property));
    }
    Ok(v)
}

macro_rules! kind_ty {
    (byte) => {
        u8
    };
    (u16) => {
        u16
    };
    (u32) => {
        u32
    };
    (var_int) => {
        u32
    };
    (str) => {
        MqttStr
    };
    (bin) => {
        Bytes
    };
    (pair) => {
        UserProperty
    };
}

macro_rules! slot_ty {
    (once, $kind:ident) => { Option<kind_ty!($kind)> };
    (many, $kind:ident) => { Vec<kind_ty!($kind)> };
}

macro_rules! read_kind {
    (byte, $r:expr, $id:expr) => {
        check_byte($id, $r.u8()?)?
    };
    (u16, $r:expr, $id:expr) => {
        check_u16($id, $r.u16()?)?
    };
    (u32, $r:expr, $id:expr) => {
        check_u32($id, $r.u32()?)?
    };
    (var_int, $r:expr, $id:expr) => {
        check_var_int($id, $r.var_int()?)?
    };
    (str, $r:expr, $id:expr) => {
        $r.string()?
    };
    (bin, $r:expr, $id:expr) => {
        $r.binary()?
    };
    (pair, $r:expr, $id:expr) => {
        ($r.string()?, $r.string()?)
    };
}

macro_rules! kind_len {
    (byte, $v:expr) => {{
        let _ = $v;
        1
    }};
    (u16, $v:expr) => {{
        let _ = $v;
        2
    }};
    (u32, $v:expr) => {{
        let _ = $v;
        4
    }};
    (var_int, $v:expr) => {
        var_int_len(*$v as usize)
    };
    (str, $v:expr) => {
        binary_len($v.as_bytes())
    };
    (bin, $v:expr) => {
        binary_len($v)
    };
    (pair, $v:expr) => {
        binary_len($v.0.as_bytes()) + binary_len($v.1.as_bytes())
    };
}

macro_rules! write_kind {
    (byte, $w:expr, $v:expr) => {
        $w.put_u8(*$v)
    };
    (u16, $w:expr, $v:expr) => {
        $w.put_u16(*$v)
    };
    (u32, $w:expr, $v:expr) => {
        $w.put_u32(*$v)
    };
    (var_int, $w:expr, $v:expr) => {
        $w.put_var_int(*$v as usize)
    };
    (str, $w:expr, $v:expr) => {
        $w.put_binary($v.as_bytes())
    };
    (bin, $w:expr, $v:expr) => {
        $w.put_binary($v)
    };
    (pair, $w:expr, $v:expr) => {{
        $w.put_binary($v.0.as_bytes());
        $w.put_binary($v.1.as_bytes())
    }};
}

macro_rules! check_kind {
    (str, $v:expr, $id:expr) => {
        check_field($v.len())?
    };
    (bin, $v:expr, $id:expr) => {
        check_field($v.len())?
    };
    (pair, $v:expr, $id:expr) => {{
        check_field($v.0.len())?;
        check_field($v.1.len())?
    }};
    (var_int, $v:expr, $id:expr) => {
        if *$v == 0 || *$v > MAX_VAR_INT {
            return Err(EncodeError::InvalidPropertyValue($id));
        }
    };
    ($other:ident, $v:expr, $id:expr) => {{
        let _ = $v;
    }};
}

macro_rules! slot_set {
    (once, $slot:expr, $value:expr, $id:expr) => {{
        if $slot.is_some() {
            return Err(DecodeError::DuplicateProperty($id));
        }
        $slot = Some($value);
    }};
    (many, $slot:expr, $value:expr, $id:expr) => {
        $slot.push($value)
    };
}

macro_rules! properties {
    ($(
        $(#[$meta:meta])*
        $name:ident {
            $( $(#[$fmeta:meta])* $mult:ident $field:ident : $kind:ident = $id:path, )*
        }
    )*) => {$(
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq, Eq)]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: slot_ty!($mult, $kind), )*
        }

        impl $name {
            /// True when no property is set (encodes as a zero property length).
            #[inline]
            pub fn is_empty(&self) -> bool {
                true $( && slot_is_empty!($mult, self.$field) )*
            }

            /// Reads a property block (length already consumed into `r`).
            pub(crate) fn decode(mut r: Reader, packet_type: u8) -> Result<Self, DecodeError> {
                let mut props = Self::default();
                while r.remaining() > 0 {
                    let property = r.var_int()?;
                    let property = u8::try_from(property)
                        .map_err(|_| DecodeError::UnknownProperty(0xFF))?;
                    match property {
                        $( $id => { let v = read_kind!($kind, r, $id); slot_set!($mult, props.$field, v, $id) } )*
                        other => return Err(not_allowed(other, packet_type)),
                    }
                }
                Ok(props)
            }

            /// Size of the properties, without the property length prefix.
            pub fn encoded_len(&self) -> usize {
                let mut len = 0;
                $( slot_for_each!($mult, self.$field, |v| len += 1 + kind_len!($kind, v)); )*
                len
            }

            /// Size of the properties, without the property length prefix, after checking
            /// that every value can be encoded (strings and binary data fit their 16-bit
            /// length, variable byte integers are in range).
            #[inline]
            pub(crate) fn checked_len(&self) -> Result<usize, EncodeError> {
                if self.is_empty() {
                    return Ok(0);
                }
                let mut len = 0;
                $( slot_for_each!($mult, self.$field, |v| {
                    check_kind!($kind, v, $id);
                    len += 1 + kind_len!($kind, v)
                }); )*
                Ok(len)
            }

            /// Writes the properties, without the property length prefix.
            pub(crate) fn write(&self, w: &mut FrameWriter<'_>) {
                $( slot_for_each!($mult, self.$field, |v| { w.put_u8($id); write_kind!($kind, w, v) }); )*
            }
        }
    )*};
}

macro_rules! slot_is_empty {
    (once, $slot:expr) => {
        $slot.is_none()
    };
    (many, $slot:expr) => {
        $slot.is_empty()
    };
}

macro_rules! slot_for_each {
    (once, $slot:expr, |$v:ident| $body:expr) => {
        if let Some($v) = &$slot {
            $body;
        }
    };
    (many, $slot:expr, |$v:ident| $body:expr) => {
        for $v in &$slot {
            $body;
        }
    };
}

/// Distinguishes an identifier that exists but is not allowed here from an unknown one.
fn not_allowed(property: u8, packet_type: u8) -> DecodeError {
    use id::*;
    const KNOWN: &[u8] = &[
        PAYLOAD_FORMAT_INDICATOR,
        MESSAGE_EXPIRY_INTERVAL,
        CONTENT_TYPE,
        RESPONSE_TOPIC,
        CORRELATION_DATA,
        SUBSCRIPTION_IDENTIFIER,
        SESSION_EXPIRY_INTERVAL,
        ASSIGNED_CLIENT_IDENTIFIER,
        SERVER_KEEP_ALIVE,
        AUTHENTICATION_METHOD,
        AUTHENTICATION_DATA,
        REQUEST_PROBLEM_INFORMATION,
        WILL_DELAY_INTERVAL,
        REQUEST_RESPONSE_INFORMATION,
        RESPONSE_INFORMATION,
        SERVER_REFERENCE,
        REASON_STRING,
        RECEIVE_MAXIMUM,
        TOPIC_ALIAS_MAXIMUM,
        TOPIC_ALIAS,
        MAXIMUM_QOS,
        RETAIN_AVAILABLE,
        USER_PROPERTY,
        MAXIMUM_PACKET_SIZE,
        WILDCARD_SUBSCRIPTION_AVAILABLE,
        SUBSCRIPTION_IDENTIFIER_AVAILABLE,
        SHARED_SUBSCRIPTION_AVAILABLE,
    ];
    if KNOWN.contains(&property) {
        DecodeError::PropertyNotAllowed {
            id: property,
            packet_type,
        }
    } else {
        DecodeError::UnknownProperty(property)
    }
}

properties! {
    /// CONNECT properties (§3.1.2.11).
    ConnectProperties {
        /// Seconds the session outlives the connection; 0xFFFFFFFF is never.
        once session_expiry_interval: u32 = id::SESSION_EXPIRY_INTERVAL,
        /// How many QoS 1/2 PUBLISH the client accepts unacknowledged.
        once receive_maximum: u16 = id::RECEIVE_MAXIMUM,
        /// Largest packet the client accepts.
        once maximum_packet_size: u32 = id::MAXIMUM_PACKET_SIZE,
        /// Highest topic alias the client accepts from the server.
        once topic_alias_maximum: u16 = id::TOPIC_ALIAS_MAXIMUM,
        /// Asks for Response Information in CONNACK.
        once request_response_information: byte = id::REQUEST_RESPONSE_INFORMATION,
        /// 0: no Reason String or User Properties except on PUBLISH/CONNACK/DISCONNECT.
        once request_problem_information: byte = id::REQUEST_PROBLEM_INFORMATION,
        /// Name/value pairs.
        many user_properties: pair = id::USER_PROPERTY,
        /// Extended authentication method.
        once authentication_method: str = id::AUTHENTICATION_METHOD,
        /// Extended authentication data.
        once authentication_data: bin = id::AUTHENTICATION_DATA,
    }

    /// Will properties (§3.1.3.2).
    WillProperties {
        /// Seconds to wait after the connection ends before publishing the Will.
        once will_delay_interval: u32 = id::WILL_DELAY_INTERVAL,
        /// 1: the payload is UTF-8.
        once payload_format_indicator: byte = id::PAYLOAD_FORMAT_INDICATOR,
        /// Lifetime of the Will message in seconds.
        once message_expiry_interval: u32 = id::MESSAGE_EXPIRY_INTERVAL,
        /// MIME type of the payload.
        once content_type: str = id::CONTENT_TYPE,
        /// Topic for a response.
        once response_topic: str = id::RESPONSE_TOPIC,
        /// Correlates a response with its request.
        once correlation_data: bin = id::CORRELATION_DATA,
        /// Name/value pairs.
        many user_properties: pair = id::USER_PROPERTY,
    }

    /// CONNACK properties (§3.2.2.3).
    ConnAckProperties {
        /// Session expiry the server will use, when it differs from the request.
        once session_expiry_interval: u32 = id::SESSION_EXPIRY_INTERVAL,
        /// How many QoS 1/2 PUBLISH the server accepts unacknowledged.
        once receive_maximum: u16 = id::RECEIVE_MAXIMUM,
        /// Highest QoS the server supports (absent: 2).
        once maximum_qos: byte = id::MAXIMUM_QOS,
        /// 0: retained messages are not supported.
        once retain_available: byte = id::RETAIN_AVAILABLE,
        /// Largest packet the server accepts.
        once maximum_packet_size: u32 = id::MAXIMUM_PACKET_SIZE,
        /// The client id the server assigned to an empty one.
        once assigned_client_identifier: str = id::ASSIGNED_CLIENT_IDENTIFIER,
        /// Highest topic alias the server accepts from the client.
        once topic_alias_maximum: u16 = id::TOPIC_ALIAS_MAXIMUM,
        /// Human-readable diagnostics.
        once reason_string: str = id::REASON_STRING,
        /// Name/value pairs.
        many user_properties: pair = id::USER_PROPERTY,
        /// 0: wildcard subscriptions are not supported.
        once wildcard_subscription_available: byte = id::WILDCARD_SUBSCRIPTION_AVAILABLE,
        /// 0: subscription identifiers are not supported.
        once subscription_identifiers_available: byte = id::SUBSCRIPTION_IDENTIFIER_AVAILABLE,
        /// 0: shared subscriptions are not supported.
        once shared_subscription_available: byte = id::SHARED_SUBSCRIPTION_AVAILABLE,
        /// Keep alive the client must use instead of its own.
        once server_keep_alive: u16 = id::SERVER_KEEP_ALIVE,
        /// Basis for response topics.
        once response_information: str = id::RESPONSE_INFORMATION,
        /// Another server to use.
        once server_reference: str = id::SERVER_REFERENCE,
        /// Extended authentication method.
        once authentication_method: str = id::AUTHENTICATION_METHOD,
        /// Extended authentication data.
        once authentication_data: bin = id::AUTHENTICATION_DATA,
    }

    /// PUBLISH properties (§3.3.2.3).
    PublishProperties {
        /// 1: the payload is UTF-8.
        once payload_format_indicator: byte = id::PAYLOAD_FORMAT_INDICATOR,
        /// Lifetime in seconds; the server forwards the remaining lifetime.
        once message_expiry_interval: u32 = id::MESSAGE_EXPIRY_INTERVAL,
        /// Stands in for the topic name on this connection.
        once topic_alias: u16 = id::TOPIC_ALIAS,
        /// Topic for a response.
        once response_topic: str = id::RESPONSE_TOPIC,
        /// Correlates a response with its request.
        once correlation_data: bin = id::CORRELATION_DATA,
        /// Name/value pairs, forwarded unaltered [MQTT-3.3.2-17].
        many user_properties: pair = id::USER_PROPERTY,
        /// Identifiers of the matching subscriptions (server to client only).
        many subscription_identifiers: var_int = id::SUBSCRIPTION_IDENTIFIER,
        /// MIME type of the payload.
        once content_type: str = id::CONTENT_TYPE,
    }

    /// PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK and UNSUBACK properties.
    AckProperties {
        /// Human-readable diagnostics.
        once reason_string: str = id::REASON_STRING,
        /// Name/value pairs.
        many user_properties: pair = id::USER_PROPERTY,
    }

    /// SUBSCRIBE properties (§3.8.2.1).
    SubscribeProperties {
        /// Returned in every PUBLISH that this subscription matches.
        once subscription_identifier: var_int = id::SUBSCRIPTION_IDENTIFIER,
        /// Name/value pairs.
        many user_properties: pair = id::USER_PROPERTY,
    }

    /// UNSUBSCRIBE properties (§3.10.2.1).
    UnsubscribeProperties {
        /// Name/value pairs.
        many user_properties: pair = id::USER_PROPERTY,
    }

    /// DISCONNECT properties (§3.14.2.2).
    DisconnectProperties {
        /// New session expiry (client to server only).
        once session_expiry_interval: u32 = id::SESSION_EXPIRY_INTERVAL,
        /// Human-readable diagnostics.
        once reason_string: str = id::REASON_STRING,
        /// Name/value pairs.
        many user_properties: pair = id::USER_PROPERTY,
        /// Another server to use.
        once server_reference: str = id::SERVER_REFERENCE,
    }

    /// AUTH properties (§3.15.2.2).
    AuthProperties {
        /// Extended authentication method.
        once authentication_method: str = id::AUTHENTICATION_METHOD,
        /// Extended authentication data.
        once authentication_data: bin = id::AUTHENTICATION_DATA,
        /// Human-readable diagnostics.
        once reason_string: str = id::REASON_STRING,
        /// Name/value pairs.
        many user_properties: pair = id::USER_PROPERTY,
    }
}

/// Reads a property length and the block it announces.
#[inline]
pub(crate) fn read_block(r: &mut Reader) -> Result<Reader, DecodeError> {
    let len = r.var_int()? as usize;
    r.sub(len)
}

/// Where the property block that starts (with its length) at `at` of `body` lies, without
/// its length prefix; checked against the end of `body`.
#[inline(always)]
pub(crate) fn block_range(body: &[u8], at: usize) -> Result<Range<usize>, DecodeError> {
    let (len, n) = parse_var_int(&body[at..])?.ok_or(DecodeError::Truncated)?;
    let start = at + n;
    let end = start
        .checked_add(len as usize)
        .filter(|&end| end <= body.len())
        .ok_or(DecodeError::Truncated)?;
    Ok(start..end)
}

/// Size of a property block with its length prefix.
#[inline]
pub(crate) fn block_len(props_len: usize) -> usize {
    var_int_len(props_len) + props_len
}

/// A Response Topic must be a valid topic name, not empty and without wildcards
/// [MQTT-3.3.2-14]; the broker forwards it, so it is checked where it arrives.
pub(crate) fn check_response_topic(topic: Option<&MqttStr>) -> Result<(), DecodeError> {
    match topic {
        Some(t) => crate::topic::validate_topic_name(t).map_err(DecodeError::ResponseTopicInvalid),
        None => Ok(()),
    }
}
