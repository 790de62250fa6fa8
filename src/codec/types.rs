//! Small value types shared by every packet: protocol level, QoS, and the zero-copy string.

use bytes::Bytes;
use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

use super::error::DecodeError;

/// The protocol a connection speaks, fixed by its CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// MQTT 3.1: protocol name "MQIsdp", level 3. Encoded like 3.1.1.
    V31,
    /// MQTT 3.1.1: protocol name "MQTT", level 4.
    V311,
    /// MQTT 5.0: protocol name "MQTT", level 5.
    V5,
}

impl Protocol {
    /// The protocol level byte of the CONNECT variable header.
    pub fn level(self) -> u8 {
        match self {
            Protocol::V31 => 3,
            Protocol::V311 => 4,
            Protocol::V5 => 5,
        }
    }

    /// The protocol name of the CONNECT variable header.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::V31 => "MQIsdp",
            Protocol::V311 | Protocol::V5 => "MQTT",
        }
    }

    /// Properties, reason codes and AUTH exist only in MQTT 5.
    #[inline]
    pub fn is_v5(self) -> bool {
        matches!(self, Protocol::V5)
    }
}

/// Quality of service of a message or a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(u8)]
pub enum QoS {
    /// At most once.
    #[default]
    AtMostOnce = 0,
    /// At least once.
    AtLeastOnce = 1,
    /// Exactly once.
    ExactlyOnce = 2,
}

impl QoS {
    /// Parses the two QoS bits; 3 is malformed [MQTT-3.3.1-4].
    #[inline]
    pub fn from_bits(bits: u8) -> Result<QoS, DecodeError> {
        match bits {
            0 => Ok(QoS::AtMostOnce),
            1 => Ok(QoS::AtLeastOnce),
            2 => Ok(QoS::ExactlyOnce),
            _ => Err(DecodeError::InvalidQoS),
        }
    }
}

/// A UTF-8 string that is a slice of a received frame (or a static / owned buffer).
///
/// Decoding validates once (UTF-8, no U+0000 [MQTT-1.5.4-1, MQTT-1.5.4-2]) and then hands
/// out `&str` without copying; cloning is a reference-count increment.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct MqttStr(Bytes);

impl MqttStr {
    /// A string from a literal; no allocation.
    pub const fn from_static(s: &'static str) -> MqttStr {
        MqttStr(Bytes::from_static(s.as_bytes()))
    }

    /// Validates bytes as an MQTT string: UTF-8 and no U+0000.
    #[inline]
    pub fn try_from_bytes(bytes: Bytes) -> Result<MqttStr, DecodeError> {
        validate_mqtt_utf8(&bytes)?;
        Ok(MqttStr(bytes))
    }

    /// Validates bytes as a string without wildcards (a topic name, or an empty topic).
    #[inline]
    pub(crate) fn try_topic_name(bytes: Bytes) -> Result<MqttStr, DecodeError> {
        validate_topic_name_utf8(&bytes)?;
        Ok(MqttStr(bytes))
    }

    /// Wraps bytes the caller already validated as a topic name or MQTT string.
    #[inline]
    pub(crate) fn from_validated(bytes: Bytes) -> MqttStr {
        debug_assert!(std::str::from_utf8(&bytes).is_ok());
        MqttStr(bytes)
    }

    /// The string slice.
    #[inline]
    pub fn as_str(&self) -> &str {
        // SAFETY: every constructor checks or guarantees UTF-8.
        unsafe { std::str::from_utf8_unchecked(&self.0) }
    }

    /// The underlying shared bytes.
    #[inline]
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }

    /// Gives up the string, keeping the shared bytes.
    pub fn into_bytes(self) -> Bytes {
        self.0
    }
}

/// Checks UTF-8 well-formedness and the absence of U+0000, ASCII fast path first.
#[inline]
pub(crate) fn validate_mqtt_utf8(bytes: &[u8]) -> Result<(), DecodeError> {
    // Branch-free reductions (no early exit) vectorise; errors are the rare case.
    let mut nul = false;
    let mut high = 0u8;
    for &b in bytes {
        nul |= b == 0;
        high |= b;
    }
    check_scan(bytes, nul, high)
}

/// Like [`validate_mqtt_utf8`], and also rejects the wildcards '+' and '#' of a topic name
/// in the same single pass. The caller decides about the empty string.
#[inline]
pub(crate) fn validate_topic_name_utf8(bytes: &[u8]) -> Result<(), DecodeError> {
    use crate::topic::TopicError;
    let mut nul = false;
    let mut wild = false;
    let mut high = 0u8;
    for &b in bytes {
        nul |= b == 0;
        wild |= (b == b'+') | (b == b'#');
        high |= b;
    }
    check_scan(bytes, nul, high)?;
    if wild {
        return Err(DecodeError::TopicNameInvalid(TopicError::WildcardInName));
    }
    Ok(())
}

#[inline]
fn check_scan(bytes: &[u8], nul: bool, high: u8) -> Result<(), DecodeError> {
    if nul {
        return Err(DecodeError::NullCharacter);
    }
    if high >= 0x80 && std::str::from_utf8(bytes).is_err() {
        return Err(DecodeError::InvalidUtf8);
    }
    Ok(())
}

impl Deref for MqttStr {
    type Target = str;
    #[inline]
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for MqttStr {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl Hash for MqttStr {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl fmt::Debug for MqttStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for MqttStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&str> for MqttStr {
    fn from(s: &str) -> MqttStr {
        MqttStr(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl From<String> for MqttStr {
    fn from(s: String) -> MqttStr {
        MqttStr(Bytes::from(s))
    }
}

impl PartialEq<str> for MqttStr {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for MqttStr {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}
