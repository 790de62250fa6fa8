//! What the broker keeps for one client id: subscriptions, unacknowledged messages in both
//! directions, the Will, and the client's announced capabilities.
//!
//! A session outlives its connection when Session Expiry (MQTT 5) or Clean Session = 0
//! (3.1.1) asks for it, and moves between shards as a value when the client reconnects
//! elsewhere. It holds no I/O handles and never reads the clock.

pub mod message;
mod outbound;

pub use message::{Delivery, Message, Retired, SharedMessage};
pub use outbound::{Inflight, InflightState, Outbound};

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::ops::{Deref, DerefMut};

use crate::codec::{MqttStr, Protocol, SubscriptionOptions, Will};

/// A session's subscriptions by filter. The hasher has fixed keys and no per-map state:
/// each map holds one client's own filters, at most `max_subscriptions_per_client`, so hash
/// flooding can only slow that client.
pub type SubscriptionMap = HashMap<MqttStr, Subscription, BuildHasherDefault<ahash::AHasher>>;

/// The subscriptions of a session, boxed and only once it has one: publish-only devices,
/// the bulk of a fleet, pay 8 bytes instead of the 32 of an empty map.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subscriptions(Option<Box<SubscriptionMap>>);

impl Subscriptions {
    /// How many filters the session holds.
    pub fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |m| m.len())
    }

    /// True when it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True when the session holds exactly `filter`.
    pub fn contains_key(&self, filter: &str) -> bool {
        self.0.as_ref().is_some_and(|m| m.contains_key(filter))
    }

    /// Adds or replaces the subscription of `filter`; returns the one it replaced.
    pub fn insert(&mut self, filter: MqttStr, subscription: Subscription) -> Option<Subscription> {
        self.0
            .get_or_insert_with(Box::default)
            .insert(filter, subscription)
    }

    /// Removes the subscription of `filter`, freeing the map with the last one.
    pub fn remove_entry(&mut self, filter: &str) -> Option<(MqttStr, Subscription)> {
        let map = self.0.as_mut()?;
        let removed = map.remove_entry(filter);
        if map.is_empty() {
            self.0 = None;
        }
        removed
    }

    /// The filters, in no particular order.
    pub fn keys(&self) -> impl Iterator<Item = &MqttStr> {
        self.0.iter().flat_map(|m| m.keys())
    }
}

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

/// One subscription of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscription {
    /// Options of the SUBSCRIBE entry.
    pub options: SubscriptionOptions,
    /// Subscription Identifier of the SUBSCRIBE, if any.
    pub id: Option<u32>,
}

/// What the client told us it can take (CONNECT properties), with 3.1.1 defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientLimits {
    /// Receive Maximum: QoS 1/2 messages it accepts unacknowledged.
    pub receive_maximum: u16,
    /// Maximum Packet Size it accepts [MQTT-3.1.2-24].
    pub max_packet_bytes: u32,
    /// Topic Alias Maximum: aliases we may use towards it.
    pub topic_alias_maximum: u16,
    /// Request Problem Information: reason strings / user properties allowed on acks.
    pub problem_information: bool,
}

impl Default for ClientLimits {
    fn default() -> ClientLimits {
        ClientLimits {
            receive_maximum: u16::MAX,
            max_packet_bytes: u32::MAX,
            topic_alias_maximum: 0,
            problem_information: true,
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
    pub client_id: Box<str>,
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
    pub will: Option<Box<Will>>,
    /// The client's announced limits.
    pub limits: ClientLimits,
}

impl Session {
    /// A fresh session.
    pub fn new(client_id: MqttStr, generation: u64, protocol: Protocol) -> Session {
        Session {
            // Boxed exactly: 16 bytes in the session instead of a 32-byte shared buffer handle.
            client_id: Box::from(client_id.as_str()),
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
