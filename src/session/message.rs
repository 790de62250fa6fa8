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

/// A `$share/{name}/{filter}` group, named once per group and shared by the deliveries
/// made for it: a member's session that ends before acknowledging one hands it back to the
/// group (§4.8.2).
#[derive(Debug, PartialEq, Eq)]
pub struct ShareGroup {
    /// The plain filter (without `$share/{name}/`).
    pub filter: MqttStr,
    /// The share name.
    pub name: MqttStr,
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
    /// The shared-subscription group this receiver was chosen for, if any.
    pub share_group: Option<Arc<ShareGroup>>,
}

/// Messages whose last flow ended (PUBACK, PUBCOMP), released together after a batch of
/// input instead of one by one.
///
/// Releasing a message decrements its reference count, a locked instruction on a cache line
/// that has usually gone cold (the message was sent a round trip ago, and often made on
/// another shard). Dropped one at a time each miss stalls the shard in turn: at full speed
/// that drop was the broker's largest single cost (5% of its samples in p2p QoS 1). Here each
/// message's counter is prefetched when it retires, and the batch is dropped after the input
/// that acknowledged it has been decoded, so the misses overlap.
#[derive(Debug, Default)]
pub struct Retired {
    messages: Vec<SharedMessage>,
}

impl Retired {
    /// Most messages held before a release is forced (one 4 KiB receive holds at most
    /// 1,024 PUBACKs).
    pub const MAX: usize = 1024;

    /// Holds `message` until [`Retired::release`], or releases all at once when
    /// [`Retired::MAX`] are held.
    #[inline]
    pub fn push(&mut self, message: SharedMessage) {
        if self.messages.len() >= Self::MAX {
            self.release();
        }
        prefetch_counts(&message);
        self.messages.push(message);
    }

    /// Drops every held message.
    #[inline]
    pub fn release(&mut self) {
        self.messages.clear();
    }

    /// Messages held.
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    /// True when none are held.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }
}

/// Starts loading the cache line of `message`'s reference counts (they sit just before the
/// data in the `Arc`'s allocation).
#[inline]
fn prefetch_counts(message: &SharedMessage) {
    prefetch_at((Arc::as_ptr(message) as *const i8).wrapping_sub(16));
}

/// Starts loading all of `message`'s fixed part (counts and fields, two cache lines), for a
/// message about to be read that has likely gone cold: the next one in a queue, or one
/// another shard made.
#[inline]
pub fn prefetch(message: &SharedMessage) {
    let counts = (Arc::as_ptr(message) as *const i8).wrapping_sub(16);
    prefetch_at(counts);
    prefetch_at(counts.wrapping_add(64));
}

#[inline]
fn prefetch_at(address: *const i8) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: SSE is part of x86_64's baseline, and a prefetch never faults, whatever
        // the address.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(address) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = address;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retired_messages_live_until_released() {
        let message = Arc::new(Message {
            topic: "t".into(),
            payload: Default::default(),
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: None,
            expires_at_ms: None,
        });
        let mut retired = Retired::default();
        for _ in 0..Retired::MAX {
            retired.push(message.clone());
        }
        assert_eq!(Arc::strong_count(&message), Retired::MAX + 1);
        retired.push(message.clone());
        assert_eq!(retired.len(), 1, "a full batch is released first");
        assert_eq!(Arc::strong_count(&message), 2);
        retired.release();
        assert!(retired.is_empty());
        assert_eq!(Arc::strong_count(&message), 1);
    }
}
