//! Per-shard counters: plain integers, never shared; gathered over the mesh on request.

use serde::Serialize;

/// Counters of one shard. Every limit has a counter for its hits.
#[derive(Debug, Default, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Metrics {
    /// Connections accepted.
    pub connections_accepted: u64,
    /// Connections refused by `max_connections`.
    pub connections_rejected: u64,
    /// CONNECTs refused by `auth` (bad user name or password, or anonymous not allowed).
    pub auth_failures: u64,
    /// PUBLISHes and subscriptions refused by `auth.acl_file`, and client PUBLISHes to
    /// `$SYS`.
    pub acl_denials: u64,
    /// TLS connections closed by a failed handshake or a bad record (no certificate, an
    /// unknown CA, not TLS at all).
    pub tls_failures: u64,
    /// TLS handshake receives left for a later loop turn, over a turn's budget (a reconnect
    /// storm: the handshakes queue so the shard's other connections keep being served).
    pub tls_handshakes_deferred: u64,
    /// WebSocket connections closed for a refused opening request or a bad frame.
    pub websocket_failures: u64,
    /// PUBLISH packets received from clients.
    pub publishes_received: u64,
    /// PUBLISH packets written to clients.
    pub publishes_sent: u64,
    /// Messages forwarded to other shards (one per interested shard).
    pub mesh_forwards: u64,
    /// QoS 0 messages dropped for slow subscribers (`max_outgoing_bytes`).
    pub qos0_drops: u64,
    /// QoS 1/2 messages dropped because a session queue was full (`max_queued_messages`).
    pub queue_drops: u64,
    /// Messages not sent because they exceed the client's Maximum Packet Size.
    pub oversize_drops: u64,
    /// Messages dropped because their Message Expiry Interval passed.
    pub expired_drops: u64,
    /// Slow subscribers disconnected (`slow_consumer = "disconnect"`).
    pub slow_consumer_disconnects: u64,
    /// Packets over `max_packet_bytes`.
    pub packets_too_large: u64,
    /// Clients disconnected for exceeding Receive Maximum (0x93).
    pub receive_maximum_exceeded: u64,
    /// SUBSCRIBE filters refused by `max_subscriptions_per_client`.
    pub subscription_quota_hits: u64,
    /// Topics refused by `max_topic_bytes` / `max_topic_levels`.
    pub topic_rejects: u64,
    /// Malformed packets and protocol errors.
    pub protocol_errors: u64,
    /// Keep-alive timeouts.
    pub keepalive_timeouts: u64,
    /// Connections shut down with output still unsent because the client did not read it
    /// within `close_timeout_secs` of the broker closing them.
    pub close_timeouts: u64,
    /// Session takeovers handled as the old owner.
    pub takeovers: u64,
    /// Connections moved to the shard of their session (takeover from another shard).
    pub handovers: u64,
    /// Wills published.
    pub wills_published: u64,
    /// Times the mesh outbox passed its high-water mark.
    pub mesh_backpressure: u64,
    /// Times queued deliveries passed `backpressure_queued_messages`.
    pub delivery_backpressure: u64,
    /// Times a subscriber behind stopped being waited for because its messages also went
    /// to other receivers (it drops by policy instead of slowing them all).
    pub slow_subscribers: u64,
    /// Shared-subscription messages passed on to another shard of the group: none of this
    /// shard's members was online, or the last one had left (the interest the sender had
    /// was older than its leaving).
    pub shared_passed_on: u64,
    /// Shared-subscription messages dropped: the group's last member, on every shard, left
    /// while the message was on its way.
    pub shared_undeliverable: u64,
    /// Shared-subscription messages handed back to their group: the member's session ended
    /// before it acknowledged them (§4.8.2).
    pub shared_handed_back: u64,
    /// Live messages on topics past the 1,024 a SUBSCRIBE waiting for retained messages
    /// notes: a retained message of such a topic may still follow the newer live one.
    pub live_topics_unnoted: u64,
    /// MQTT 3.1 / 3.1.1 CONNECTs refused for a Keep Alive of 0 or above
    /// `limits.max_keepalive_secs` (they cannot be told a Server Keep Alive).
    pub keepalive_refusals: u64,
    /// Clients connected (CONNACK sent, not closed) on the shards gathered: a gauge, filled
    /// in for `$SYS/broker/clients/connected`, not a counter.
    #[serde(skip)]
    pub clients_connected: u64,
}

impl Metrics {
    /// Adds another shard's counters.
    pub fn add(&mut self, o: &Metrics) {
        macro_rules! sum {
            ($($f:ident),*) => { $( self.$f += o.$f; )* };
        }
        sum!(
            connections_accepted,
            connections_rejected,
            auth_failures,
            acl_denials,
            tls_failures,
            tls_handshakes_deferred,
            websocket_failures,
            publishes_received,
            publishes_sent,
            mesh_forwards,
            qos0_drops,
            queue_drops,
            oversize_drops,
            expired_drops,
            slow_consumer_disconnects,
            packets_too_large,
            receive_maximum_exceeded,
            subscription_quota_hits,
            topic_rejects,
            protocol_errors,
            keepalive_timeouts,
            close_timeouts,
            takeovers,
            handovers,
            wills_published,
            mesh_backpressure,
            delivery_backpressure,
            slow_subscribers,
            shared_passed_on,
            shared_undeliverable,
            shared_handed_back,
            live_topics_unnoted,
            keepalive_refusals,
            clients_connected
        );
    }
}
