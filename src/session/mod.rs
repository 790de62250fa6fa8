//! What the broker keeps for one client id: subscriptions, unacknowledged messages in both
//! directions, the Will, and the client's announced capabilities.
//!
//! A session outlives its connection when Session Expiry (MQTT 5) or Clean Session = 0
//! (3.1.1) asks for it, and moves between shards as a value when the client reconnects
//! elsewhere. It holds no I/O handles and never reads the clock.

mod client_id;
pub mod message;
mod outbound;
mod will;

pub use client_id::ClientId;
pub use message::{Delivery, Message, Retired, ShareGroup, SharedMessage};
pub use outbound::{Inflight, InflightState, Outbound};
pub use will::StoredWill;

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::ops::{Deref, DerefMut};

use crate::codec::{MqttStr, Protocol, SubscriptionOptions};

/// A session's subscriptions by filter, once it has more than [`FEW_SUBSCRIPTIONS`]. The
/// hasher has fixed keys and no per-map state: each map holds one client's own filters, at
/// most `max_subscriptions_per_client`, so hash flooding can only slow that client.
pub type SubscriptionMap = HashMap<MqttStr, Subscription, BuildHasherDefault<ahash::AHasher>>;

/// Subscriptions kept in a plain vector, searched linearly, before a map takes over. A
/// device subscribes to one or two filters; a map holding one took 256 bytes (four buckets
/// and the box), the vector 48.
pub const FEW_SUBSCRIPTIONS: usize = 8;

/// The subscriptions of a session, boxed and only once it has one: publish-only devices,
/// the bulk of a fleet, pay 8 bytes instead of the 32 of an empty map.
#[derive(Debug, Clone, Default)]
pub struct Subscriptions(Option<Box<SubscriptionSet>>);

#[derive(Debug, Clone)]
enum SubscriptionSet {
    /// Up to [`FEW_SUBSCRIPTIONS`], unordered, allocated to the exact count.
    Few(Vec<(MqttStr, Subscription)>),
    Many(SubscriptionMap),
}

impl Subscriptions {
    /// How many filters the session holds.
    pub fn len(&self) -> usize {
        match self.0.as_deref() {
            None => 0,
            Some(SubscriptionSet::Few(v)) => v.len(),
            Some(SubscriptionSet::Many(m)) => m.len(),
        }
    }

    /// True when it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The subscription of exactly `filter`.
    pub fn get(&self, filter: &str) -> Option<&Subscription> {
        match self.0.as_deref()? {
            SubscriptionSet::Few(v) => v.iter().find(|(f, _)| f.as_str() == filter).map(|e| &e.1),
            SubscriptionSet::Many(m) => m.get(filter),
        }
    }

    /// True when the session holds exactly `filter`.
    pub fn contains_key(&self, filter: &str) -> bool {
        self.get(filter).is_some()
    }

    /// Adds or replaces the subscription of `filter`; returns the one it replaced.
    pub fn insert(&mut self, filter: MqttStr, subscription: Subscription) -> Option<Subscription> {
        let set = self
            .0
            .get_or_insert_with(|| Box::new(SubscriptionSet::Few(Vec::new())));
        if let SubscriptionSet::Few(v) = &mut **set {
            if let Some(e) = v.iter_mut().find(|(f, _)| *f == filter) {
                return Some(std::mem::replace(&mut e.1, subscription));
            }
            if v.len() < FEW_SUBSCRIPTIONS {
                v.reserve_exact(1);
                v.push((filter, subscription));
                return None;
            }
            let map: SubscriptionMap = v.drain(..).collect();
            **set = SubscriptionSet::Many(map);
        }
        match &mut **set {
            SubscriptionSet::Many(m) => m.insert(filter, subscription),
            SubscriptionSet::Few(_) => unreachable!("converted above"),
        }
    }

    /// Removes the subscription of `filter`, freeing the set with the last one (and going
    /// back to a vector once a map has shrunk to half the vector's limit).
    pub fn remove_entry(&mut self, filter: &str) -> Option<(MqttStr, Subscription)> {
        let set = self.0.as_deref_mut()?;
        let removed = match set {
            SubscriptionSet::Few(v) => {
                let i = v.iter().position(|(f, _)| f.as_str() == filter)?;
                let e = v.swap_remove(i);
                v.shrink_to_fit();
                e
            }
            SubscriptionSet::Many(m) => {
                let e = m.remove_entry(filter)?;
                if m.len() <= FEW_SUBSCRIPTIONS / 2 {
                    *set = SubscriptionSet::Few(m.drain().collect());
                }
                e
            }
        };
        if self.is_empty() {
            self.0 = None;
        }
        Some(removed)
    }

    /// The filters, in no particular order.
    pub fn keys(&self) -> Box<dyn Iterator<Item = &MqttStr> + '_> {
        match self.0.as_deref() {
            None => Box::new(std::iter::empty()),
            Some(SubscriptionSet::Few(v)) => Box::new(v.iter().map(|(f, _)| f)),
            Some(SubscriptionSet::Many(m)) => Box::new(m.keys()),
        }
    }
}

/// Equal when they hold the same filters with the same subscriptions, whatever the order
/// or the representation.
impl PartialEq for Subscriptions {
    fn eq(&self, other: &Subscriptions) -> bool {
        self.len() == other.len()
            && self
                .keys()
                .all(|f| self.get(f.as_str()) == other.get(f.as_str()))
    }
}

impl Eq for Subscriptions {}

/// The outgoing state, allocated on first use: most idle sessions never need it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LazyOutbound(Option<Box<Outbound>>);

static EMPTY_OUTBOUND: Outbound = Outbound::new();

impl Deref for LazyOutbound {
    type Target = Outbound;
    fn deref(&self) -> &Outbound {
        self.0.as_deref().unwrap_or(&EMPTY_OUTBOUND)
    }
}

impl DerefMut for LazyOutbound {
    fn deref_mut(&mut self) -> &mut Outbound {
        self.0.get_or_insert_with(Default::default)
    }
}

impl LazyOutbound {
    /// The outgoing state, if any was allocated, leaving none.
    pub fn take(&mut self) -> Option<Box<Outbound>> {
        self.0.take()
    }
}

/// One subscription of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscription {
    /// Options of the SUBSCRIBE entry.
    pub options: SubscriptionOptions,
    /// Subscription Identifier of the SUBSCRIBE, if any.
    pub id: Option<u32>,
}

/// What the client told us it can take (CONNECT properties), with 3.1.1 defaults. Request
/// Problem Information is not kept: the broker sends no Reason String and no User Property
/// on any packet it originates, so a client's 0 [MQTT-3.1.2-29] is honoured by construction
/// (and the limits stay 8 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientLimits {
    /// Receive Maximum: QoS 1/2 messages it accepts unacknowledged.
    pub receive_maximum: u16,
    /// Maximum Packet Size it accepts [MQTT-3.1.2-24].
    pub max_packet_bytes: u32,
    /// Topic Alias Maximum: aliases we may use towards it.
    pub topic_alias_maximum: u16,
}

impl Default for ClientLimits {
    fn default() -> ClientLimits {
        ClientLimits {
            receive_maximum: u16::MAX,
            max_packet_bytes: u32::MAX,
            topic_alias_maximum: 0,
        }
    }
}

/// Client → broker QoS 2 packet ids received and not yet released (PUBREL): boxed, and
/// only while there are some, since most sessions never hold one (8 bytes instead of 24).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[allow(clippy::box_collection)] // The box is the point: 8 bytes in every session, not 24.
pub struct InboundQos2(Option<Box<Vec<u16>>>);

impl InboundQos2 {
    /// True when `packet_id` waits for its PUBREL.
    pub fn contains(&self, packet_id: u16) -> bool {
        self.0.as_ref().is_some_and(|ids| ids.contains(&packet_id))
    }

    /// How many packet ids wait for their PUBREL.
    pub fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |ids| ids.len())
    }

    /// True when none waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records a received QoS 2 packet id (the caller checked it is not there yet).
    pub fn insert(&mut self, packet_id: u16) {
        self.0.get_or_insert_with(Box::default).push(packet_id);
    }

    /// Forgets `packet_id`; false when it was not there.
    pub fn remove(&mut self, packet_id: u16) -> bool {
        let Some(ids) = self.0.as_mut() else {
            return false;
        };
        let Some(i) = ids.iter().position(|&id| id == packet_id) else {
            return false;
        };
        ids.swap_remove(i);
        if ids.is_empty() {
            self.0 = None;
        }
        true
    }
}

/// The per-client state that survives reconnection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The client identifier.
    pub client_id: ClientId,
    /// Registry generation: tells an old owner's messages from the current one's.
    pub generation: u64,
    /// Protocol of the last connection.
    pub protocol: Protocol,
    /// Seconds the session outlives its connection (0: ends with it).
    pub expiry_secs: u32,
    /// Topic filter (as subscribed, `$share/...` included) → subscription.
    pub subscriptions: Subscriptions,
    /// Broker → client messages.
    pub outbound: LazyOutbound,
    /// Client → broker QoS 2 packet ids received and not yet released (PUBREL).
    pub inbound_qos2: InboundQos2,
    /// The Will of the current or last connection.
    pub will: Option<Box<StoredWill>>,
    /// The client's announced limits.
    pub limits: ClientLimits,
}

impl Session {
    /// A fresh session.
    pub fn new(client_id: MqttStr, generation: u64, protocol: Protocol) -> Session {
        Session {
            // Copied exactly, one pointer wide: 8 bytes in the session instead of a 32-byte
            // shared buffer handle.
            client_id: ClientId::new(client_id.as_str()),
            generation,
            protocol,
            expiry_secs: 0,
            subscriptions: Subscriptions::default(),
            outbound: LazyOutbound::default(),
            inbound_qos2: InboundQos2::default(),
            will: None,
            limits: ClientLimits::default(),
        }
    }

    /// How many QoS 1/2 messages may be unacknowledged towards the client.
    #[inline]
    pub fn send_window(&self, broker_max_inflight: u16) -> usize {
        self.limits.receive_maximum.min(broker_max_inflight) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::QoS;

    fn sub(id: u32) -> Subscription {
        Subscription {
            options: SubscriptionOptions::qos(QoS::AtLeastOnce),
            id: Some(id),
        }
    }

    /// Every connected device holds a session for its whole life: what an idle one costs is
    /// mostly this struct (and the shard's slot around it).
    #[test]
    fn a_session_stays_one_cache_line() {
        assert_eq!(std::mem::size_of::<ClientLimits>(), 8);
        assert_eq!(std::mem::size_of::<Session>(), 64);
    }

    /// Insert, replace and remove behave like a map on both sides of the vector's limit, and
    /// the set is freed with its last filter.
    #[test]
    fn subscriptions_act_as_a_map_across_both_representations() {
        let mut s = Subscriptions::default();
        let n = FEW_SUBSCRIPTIONS as u32 * 3;
        for i in 0..n {
            assert_eq!(s.insert(MqttStr::from(format!("f/{i}")), sub(i)), None);
            assert_eq!(s.len(), i as usize + 1);
        }
        assert_eq!(s.insert(MqttStr::from("f/3"), sub(99)), Some(sub(3)));
        assert_eq!(s.get("f/3"), Some(&sub(99)));
        assert_eq!(s.keys().count(), n as usize);
        for i in (0..n).rev() {
            let (f, _) = s.remove_entry(&format!("f/{i}")).expect("present");
            assert_eq!(f.as_str(), format!("f/{i}"));
            assert!(!s.contains_key(&format!("f/{i}")));
            assert_eq!(s.len(), i as usize);
            for j in 0..i {
                assert!(
                    s.contains_key(&format!("f/{j}")),
                    "f/{j} lost removing f/{i}"
                );
            }
        }
        assert!(s.0.is_none(), "the last removal frees the set");
        assert_eq!(s.remove_entry("f/0"), None);
    }

    #[test]
    fn subscriptions_compare_by_content() {
        let mut a = Subscriptions::default();
        let mut b = Subscriptions::default();
        for i in 0..3 {
            a.insert(MqttStr::from(format!("f/{i}")), sub(i));
        }
        for i in (0..3).rev() {
            b.insert(MqttStr::from(format!("f/{i}")), sub(i));
        }
        assert_eq!(a, b);
        b.insert(MqttStr::from("f/1"), sub(7));
        assert_ne!(a, b);
    }
}
