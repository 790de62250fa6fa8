//! Messages between shards. Every cross-shard interaction is one of these, sent over the
//! bounded SPSC channel of the ordered pair (FIFO per pair), in batches.

use crate::codec::MqttStr;
use crate::session::{Session, SharedMessage};

use super::metrics::Metrics;

/// Index of a shard.
pub type ShardId = usize;

/// One cross-shard message.
#[derive(Debug)]
pub enum MeshMsg {
    /// A publish for the receiving shard's subscribers. Sent once per interested shard.
    Forward {
        /// The message.
        message: SharedMessage,
        /// Deliver to the shard's ordinary subscriptions.
        ordinary: bool,
        /// Shared subscription groups (plain filter, group) this shard was chosen for.
        groups: Vec<(MqttStr, MqttStr)>,
    },
    /// The sender's first subscriber to `filter` (or to `group` on it) appeared / left.
    Interest {
        /// Plain filter (without `$share/g/`).
        filter: MqttStr,
        /// Shared subscription group, if any.
        group: Option<MqttStr>,
        /// Added (0→1) or removed (1→0).
        add: bool,
        /// Answer with [`MeshMsg::InterestAck`] when non-zero (a SUBACK waits for it).
        token: u64,
    },
    /// The interest change with this token is applied.
    InterestAck {
        /// Token of the change.
        token: u64,
    },
    /// To the home shard of a client id: a connection on `from` wants it.
    Claim {
        /// The client id.
        client_id: MqttStr,
        /// Operation token on `from`.
        token: u64,
        /// Drop any previous session (Clean Start).
        clean_start: bool,
    },
    /// To the shard holding the previous session: hand it over (or drop it).
    TakeOver {
        /// The client id.
        client_id: MqttStr,
        /// Generation of the session to take.
        previous_generation: u64,
        /// Where the new connection is.
        new_shard: ShardId,
        /// Operation token there.
        token: u64,
        /// Generation given to the new owner.
        generation: u64,
        /// Drop the session instead of shipping it.
        clean_start: bool,
    },
    /// Answer to a claim: the generation, and the previous session if it continues.
    Claimed {
        /// Operation token.
        token: u64,
        /// Generation of the new owner.
        generation: u64,
        /// The previous session, shipped whole.
        session: Option<Box<Session>>,
    },
    /// To the home shard: the session with this generation ended.
    Release {
        /// The client id.
        client_id: MqttStr,
        /// Its generation.
        generation: u64,
    },
    /// To the retained partition owning the topic: set (Some) or clear (None).
    RetainSet {
        /// Topic name.
        topic: MqttStr,
        /// The message, or None to delete.
        message: Option<SharedMessage>,
    },
    /// Retained messages matching a filter, asked by a subscribing connection.
    RetainQuery {
        /// Filter to match.
        filter: MqttStr,
        /// Operation token on the asking shard.
        token: u64,
    },
    /// Answer to a retained query.
    RetainReply {
        /// Operation token.
        token: u64,
        /// Matching retained messages.
        messages: Vec<SharedMessage>,
    },
    /// Asks for counters (answered with [`MeshMsg::Stats`]).
    StatsQuery {
        /// Token.
        token: u64,
    },
    /// Counters of the sending shard.
    Stats {
        /// Token.
        token: u64,
        /// The counters.
        metrics: Metrics,
    },
}
