//! The application message as the broker routes it: immutable and shared by reference
//! count between subscribers and shards.

use bytes::Bytes;
use std::sync::Arc;

use crate::codec::{MqttStr, PublishProperties, QoS};

/// A routed application message. Created once per PUBLISH received; every subscriber and
/// every shard that needs it holds an `Arc` to the same one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Topic name (never an alias).
    pub topic: MqttStr,
    /// Payload bytes.
    pub payload: Bytes,
    /// QoS it was published with.
    pub qos: QoS,
    /// RETAIN flag as published.
    pub retain: bool,
    /// MQTT 5 properties forwarded to subscribers, without Topic Alias and Subscription
    /// Identifiers (those are per receiver). `None` when there are none: no allocation.
    pub properties: Option<Arc<PublishProperties>>,
    /// Absolute expiry on the broker's clock (ms), from Message Expiry Interval.
    pub expires_at_ms: Option<u64>,
}

/// A message shared between subscribers and shards.
pub type SharedMessage = Arc<Message>;

impl Message {
    /// True once the Message Expiry Interval has passed [MQTT-3.3.2-5].
    #[inline]
    pub fn is_expired(&self, now_ms: u64) -> bool {
        matches!(self.expires_at_ms, Some(t) if now_ms >= t)
    }

    /// Remaining lifetime in whole seconds, to forward in place of the original interval
    /// [MQTT-3.3.2-6]. Rounded up so a message that is still alive never says 0.
    pub fn remaining_expiry_secs(&self, now_ms: u64) -> Option<u32> {
        self.expires_at_ms.map(|t| {
            (t.saturating_sub(now_ms))
                .div_ceil(1000)
                .min(u32::MAX as u64) as u32
        })
    }
}

/// One message on its way to one subscriber: the per-receiver parts of the PUBLISH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The shared message.
    pub message: SharedMessage,
    /// min(published QoS, granted QoS).
    pub qos: QoS,
    /// RETAIN flag to send (Retain As Published, or 1 for retained messages on subscribe).
    pub retain: bool,
    /// Identifiers of the matching subscriptions (usually none: no allocation).
    pub subscription_ids: Vec<u32>,
}
