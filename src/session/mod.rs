//! What the broker keeps for one client id: subscriptions, unacknowledged messages in both
//! directions, the Will, and the client's announced capabilities.
//!
//! A session outlives its connection when Session Expiry (MQTT 5) or Clean Session = 0
//! (3.1.1) asks for it, and moves between shards as a value when the client reconnects
//! elsewhere. It holds no I/O handles and never reads the clock.

mod message;
mod outbound;

pub use message::{Delivery, Message, SharedMessage};
pub use outbound::{Inflight, InflightState, Outbound};

use ahash::AHashMap;

use crate::codec::{MqttStr, Protocol, SubscriptionOptions, Will};

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

/// The per-client state that survives reconnection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The client identifier.
    pub client_id: MqttStr,
    /// Registry generation: tells an old owner's messages from the current one's.
    pub generation: u64,
    /// Protocol of the last connection.
    pub protocol: Protocol,
    /// Seconds the session outlives its connection (0: ends with it).
    pub expiry_secs: u32,
    /// Topic filter (as subscribed, `$share/...` included) → subscription.
    pub subscriptions: AHashMap<MqttStr, Subscription>,
    /// Broker → client messages.
    pub outbound: Outbound,
    /// Client → broker QoS 2 packet ids received and not yet released (PUBREL).
    pub inbound_qos2: Vec<u16>,
    /// The Will of the current or last connection.
    pub will: Option<Will>,
    /// The client's announced limits.
    pub limits: ClientLimits,
}

impl Session {
    /// A fresh session.
    pub fn new(client_id: MqttStr, generation: u64, protocol: Protocol) -> Session {
        Session {
            client_id,
            generation,
            protocol,
            expiry_secs: 0,
            subscriptions: AHashMap::new(),
            outbound: Outbound::default(),
            inbound_qos2: Vec::new(),
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
