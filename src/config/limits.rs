//! The bounds the broker enforces and the mesh's channel sizes, with their defaults. Each
//! limit names its policy (what happens when it is hit) and the metric that counts it;
//! `Config::validate` checks their ranges.

use serde::Deserialize;

/// What to do with a connection whose outgoing buffer is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SlowConsumerPolicy {
    /// Drop QoS 0 messages for that subscriber (counted); QoS 1/2 wait in its queue.
    #[default]
    Drop,
    /// Disconnect the subscriber (MQTT 5: reason 0x97 Quota exceeded).
    Disconnect,
}

/// Every bound the broker enforces. Each names its policy and metric.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Connections open on the whole broker, all shards counted together. Over it: CONNACK
    /// 0x97 Quota exceeded (3.1.1: 0x03 Server unavailable) and close. Metric:
    /// `connections_rejected`. 0 (the default) means as many as the open-file limit allows;
    /// a value above that limit stops startup with the fix to apply.
    pub max_connections: u64,
    /// Largest packet accepted from a client, also announced as Maximum Packet Size.
    /// Over it: DISCONNECT 0x95 and close. Metric: `packets_too_large`.
    pub max_packet_bytes: u32,
    /// Receive Maximum announced to clients: QoS 2 PUBLISH awaiting PUBREL per client. Over it:
    /// DISCONNECT 0x93. Also caps the outgoing in-flight window. Metric:
    /// `receive_maximum_exceeded`.
    pub max_inflight: u16,
    /// QoS 1/2 messages queued per session (offline, or beyond the in-flight window). Over it:
    /// the message is dropped for that session. Metric: `queue_drops`.
    pub max_queued_messages: usize,
    /// Bytes waiting to be written to one socket. Over it QoS 0 messages are dropped (or the
    /// client disconnected, see `slow_consumer`); QoS 1/2 wait in the session queue.
    /// Metric: `qos0_drops`, `slow_consumer_disconnects`.
    pub max_outgoing_bytes: usize,
    /// Policy for subscribers whose outgoing buffer is full.
    pub slow_consumer: SlowConsumerPolicy,
    /// Subscriptions per client. Over it: SUBACK 0x97 Quota exceeded for that filter
    /// (3.1.1: 0x80). Metric: `subscription_quota_hits`.
    pub max_subscriptions_per_client: usize,
    /// Bytes in a topic name or filter. Over it: 0x90 / 0x8F. Metric: `topic_rejects`.
    pub max_topic_bytes: usize,
    /// Levels in a topic name or filter. Over it: 0x90 / 0x8F. Metric: `topic_rejects`.
    pub max_topic_levels: usize,
    /// Cap on Session Expiry Interval (seconds); longer requests are lowered and the
    /// CONNACK says so. 3.1.1 persistent sessions get this value.
    pub max_session_expiry_secs: u32,
    /// Largest keep alive accepted; a client asking for more (or for 0) gets this value as
    /// Server Keep Alive (MQTT 5). 0 accepts whatever the client asks.
    pub max_keepalive_secs: u16,
    /// Topic Alias Maximum announced to clients (aliases they may use towards us).
    pub topic_alias_maximum: u16,
    /// Seconds a new connection may take to send CONNECT; then it is closed (no CONNACK).
    pub connect_timeout_secs: u16,
    /// Seconds the broker keeps flushing a connection it is closing (after a DISCONNECT, a
    /// keep-alive timeout, an error) to a client that does not read; then the socket is
    /// shut down without the rest. Metric: `close_timeouts`.
    pub close_timeout_secs: u16,
    /// QoS 1/2 messages a shard may hold queued for connected subscribers before it stops
    /// reading from publishers (backpressure instead of `queue_drops`). Metric:
    /// `delivery_backpressure`.
    pub backpressure_queued_messages: usize,
}

/// Cross-shard channel sizing.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MeshConfig {
    /// Batches each SPSC channel holds.
    pub channel_batches: usize,
    /// Messages one channel may hold before its sending shard stops reading publishing
    /// sockets: bounds the time a forward waits for a peer that is busy delivering.
    pub channel_messages: usize,
    /// Messages a shard may hold for one peer before it stops reading publishing sockets.
    pub outbox_high_water: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 0,
            max_packet_bytes: 1024 * 1024,
            max_inflight: 256,
            max_queued_messages: 1000,
            max_outgoing_bytes: 1024 * 1024,
            slow_consumer: SlowConsumerPolicy::Drop,
            max_subscriptions_per_client: 1000,
            max_topic_bytes: 1024,
            max_topic_levels: 32,
            max_session_expiry_secs: 7 * 24 * 3600,
            max_keepalive_secs: 0,
            topic_alias_maximum: 32,
            connect_timeout_secs: 10,
            close_timeout_secs: 10,
            backpressure_queued_messages: 10_000,
        }
    }
}

impl Default for MeshConfig {
    fn default() -> MeshConfig {
        MeshConfig {
            channel_batches: 256,
            channel_messages: 512,
            outbox_high_water: 8192,
        }
    }
}
