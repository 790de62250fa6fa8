//! Messages between shards. Every cross-shard interaction is one of these, sent in batches
//! over one of two SPSC channels of the ordered pair, each FIFO: the data lane (publishes
//! and retained messages for subscribers) and the control lane (everything a waiting client
//! or a peer's bookkeeping depends on; see [`MeshMsg::is_control`]).

use bytes::BytesMut;

use crate::codec::{Connect, MqttStr};
use crate::session::SharedMessage;

use super::metrics::Metrics;

/// Index of a shard.
pub type ShardId = usize;

/// A shared subscription group's message sent to a shard for one of its members.
#[derive(Debug, Clone)]
pub struct GroupForward {
    /// The plain filter (without `$share/{group}/`).
    pub filter: MqttStr,
    /// The share name.
    pub group: MqttStr,
    /// Shards that had the message and passed it on (bit per shard): a shard whose members
    /// have all left, or are away, passes it to one that has not had it
    /// ([`crate::shard::router::SharedGroup::place`]).
    pub visited: u64,
    /// Times every shard it knew members on had had it, and it started again from a shard
    /// that has members now (they moved while it was on its way); at most
    /// [`MAX_GROUP_ROUNDS`].
    pub rounds: u8,
}

/// Rounds a shared group's message may make before it counts as undeliverable: members
/// that keep moving between shards faster than the message cannot make it loop for ever.
pub const MAX_GROUP_ROUNDS: u8 = 3;

/// Counts per shard, indexed by [`ShardId`]: retained sets sent or to wait for.
pub type RetainSetCounts = Box<[u64]>;

/// One cross-shard message.
#[derive(Debug)]
pub enum MeshMsg {
    /// A publish for the receiving shard's subscribers. Sent once per interested shard.
    Forward {
        /// The message.
        message: SharedMessage,
        /// Deliver to the shard's ordinary subscriptions.
        ordinary: bool,
        /// Shared subscription groups this shard was chosen for.
        groups: Vec<GroupForward>,
        /// The message also goes to receivers outside this shard: a subscriber here that
        /// is behind must not hold them back ([`crate::shard::Shard::delivery_pressure`]).
        shared: bool,
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
        /// Retained sets the acknowledging shard had sent to each shard by then (None: not
        /// one yet). They are of publishes it handled before it knew of the subscriber, so
        /// no live copy went to it: the SUBSCRIBE's retained queries wait for them
        /// ([`MeshMsg::RetainQuery`]).
        retain_sets_sent: Option<RetainSetCounts>,
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
    /// To the shard holding the previous session: end its connection, keep the session (or
    /// replace it with a fresh one on Clean Start) and ask for the new connection.
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
        /// Drop the session instead of keeping it.
        clean_start: bool,
    },
    /// From the home shard, for a client id without a session: the new connection's shard
    /// owns it now and creates a fresh session.
    Claimed {
        /// Operation token.
        token: u64,
        /// Generation of the new owner.
        generation: u64,
    },
    /// From the shard holding the session, to the shard of a new connection: move the
    /// connection here (answered with [`MeshMsg::Adopt`]). Sessions never move.
    Redirect {
        /// Operation token on the connection's shard.
        token: u64,
        /// Generation of the session waiting for the connection.
        generation: u64,
        /// The session continues (CONNACK Session Present).
        session_present: bool,
    },
    /// The connection asked for by [`MeshMsg::Redirect`], or word that it ended first.
    Adopt(Box<Adoption>),
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
        /// Per shard, the retained sets it had sent to this one that the answer must
        /// include: the asking shard's own, and those each other shard had sent when it
        /// acknowledged the SUBSCRIBE's interest change. Answered once all are handled
        /// (they travel on the data lane, this on the control lane).
        after_retain_sets: RetainSetCounts,
    },
    /// Answer to a retained query.
    RetainReply {
        /// Operation token.
        token: u64,
        /// Matching retained messages.
        messages: Vec<SharedMessage>,
        /// [`MeshMsg::RetainFenced`] answers the asking shard is to wait for.
        fences: u32,
    },
    /// From a retained partition to a shard that set one of the messages of a reply: answer
    /// the asking shard with [`MeshMsg::RetainFenced`] on the data lane, behind every
    /// forward sent to it before that set. Without it the reply could reach the subscriber
    /// before older live messages of the same publisher that were still on their way.
    RetainFence {
        /// The shard that asked.
        subscriber: ShardId,
        /// Its query token.
        token: u64,
    },
    /// Every forward sent before the fence was asked for is ahead of this.
    RetainFenced {
        /// The query token.
        token: u64,
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
        /// The counters; boxed so that this rare message does not make every message of
        /// the mesh, forwards included, its size (232 bytes against 80).
        metrics: Box<Metrics>,
    },
}

impl MeshMsg {
    /// True for the messages of the control lane, which a shard takes even while it leaves
    /// the data lane unread (under delivery pressure, or with a batch held): a peer's SUBACK
    /// or CONNACK waits for them, and none of them adds to a subscriber's queue beyond what
    /// its own client asked for (the retained messages of a SUBSCRIBE).
    ///
    /// The data lane keeps what must stay in order with forwards: the forwards themselves,
    /// the retained sets (a shard's retained messages must never be ahead of the forwards
    /// it handled: a SUBSCRIBE there would get the newest retained message, then older live
    /// ones), the retained replies (a SUBSCRIBE leaves out a retained message whose topic
    /// a live message reached it on first, which needs the peer's forwards and its reply in
    /// the order it sent them) and the fences (the same for the forwards of a third shard
    /// that set a message of the reply). A retained query overtakes forwards but never a
    /// retained set it must see: it names how many each shard had sent, and the owner
    /// answers once it handled as many (`Shard::on_retain_query`), so a client that
    /// publishes a retained message and then subscribes gets it [MQTT-3.3.1-5].
    ///
    /// A data message never overtakes a control message sent before it: the runtime takes a
    /// peer's control lane before each of its data batches.
    pub fn is_control(&self) -> bool {
        !matches!(
            self,
            MeshMsg::Forward { .. }
                | MeshMsg::RetainSet { .. }
                | MeshMsg::RetainReply { .. }
                | MeshMsg::RetainFenced { .. }
        )
    }
}

/// A connection moving to the shard that holds its session (see `connect.rs`).
#[derive(Debug)]
pub struct Adoption {
    /// The client id.
    pub client_id: MqttStr,
    /// Generation of the session it belongs to (a later takeover makes it stale).
    pub generation: u64,
    /// CONNACK Session Present.
    pub session_present: bool,
    /// The connection; None when it ended before it could move (the session goes offline).
    pub connection: Option<MovingConnection>,
}

impl Adoption {
    /// The message without its connection yet (or for good, when it ended before moving).
    pub(crate) fn new(client_id: MqttStr, generation: u64, session_present: bool) -> Box<Adoption> {
        Box::new(Adoption {
            client_id,
            generation,
            session_present,
            connection: None,
        })
    }
}

/// What a connection carries from one shard to another.
#[derive(Debug)]
pub struct MovingConnection {
    /// The runtime's handle of the socket (a file descriptor; opaque to shards).
    pub socket: u64,
    /// The CONNECT being answered.
    pub connect: Box<Connect>,
    /// The client id was assigned by the broker.
    pub assigned_id: bool,
    /// Bytes received after the CONNECT (pipelined packets), not yet decoded.
    pub input: BytesMut,
}
