//! What one core owns: its connections and sessions, its part of the subscription trie, its
//! partition of the client-id registry and of the retained messages, its timers.
//!
//! Everything here is pure: the runtime hands in bytes, mesh messages and the current time
//! (ms on a clock shared by all shards) and takes out bytes (in each [`Conn`]'s `out`) and
//! mesh messages (the per-peer outboxes, one per lane). A connection waiting for other
//! shards is `blocked`; its next packets wait, which keeps per-connection order.

mod client_index;
mod conn;
mod connect;
mod decode;
mod deliver;
mod gauge;
mod handback;
mod handover;
mod interest;
mod mesh;
mod metrics;
mod peers;
mod pressure;
mod publish;
mod route;
mod router;
mod slab;
mod subscribe;
mod sys;
mod timers;

pub use conn::{Conn, ConnState};
pub use gauge::ConnectionGauge;
pub use mesh::{Adoption, MeshMsg, MovingConnection, RetainSetCounts, ShardId};
pub use metrics::Metrics;
pub use slab::{Key, Slab};
pub use sys::is_sys_topic;

use ahash::AHashMap;
use bytes::BytesMut;
use std::collections::VecDeque;

use crate::codec::{Disconnect, MqttStr, Packet, Protocol, ReasonCode, CONNECT};
use crate::config::Config;
use crate::session::{Retired, Session};
use crate::topic::{FilterTable, RetainedIndex};
use router::FilterEntry;
use timers::Timers;

/// A session on this shard and its link to a live connection.
#[derive(Debug)]
pub struct SessionSlot {
    /// The session state (it never leaves this shard while it lives).
    pub session: Session,
    /// Its connection, while connected.
    pub conn: Option<Key>,
    /// A Will waits for its Will Delay Interval (MQTT 5) while the client is away.
    pub will_pending: bool,
    /// Taken over by a connection on another shard that is moving here: no expiry runs
    /// until it arrives (or word comes that it ended).
    pub awaiting_connection: bool,
    /// A SUBSCRIBE of this session waits to send retained messages: live deliveries note
    /// their topics in it meanwhile (see `subscribe::PendingSubscribe::live_topics`).
    pub retained_pending: bool,
}

/// The home shard's record of where a client id's session lives: the owner shard in the
/// top 8 bits, the registry generation in the other 56 (2^56 connects per home shard
/// before it wraps), so that an entry takes 16 bytes of table with its key instead of 24.
#[derive(Debug, Clone, Copy)]
struct RegistryEntry(u64);

impl RegistryEntry {
    const GENERATION_BITS: u32 = 56;
    /// Generations are counted modulo 2^56.
    const GENERATION_MASK: u64 = (1 << Self::GENERATION_BITS) - 1;

    fn new(shard: ShardId, generation: u64) -> RegistryEntry {
        debug_assert!(shard < crate::config::MAX_SHARDS);
        debug_assert!(generation <= Self::GENERATION_MASK);
        RegistryEntry(((shard as u64) << Self::GENERATION_BITS) | generation)
    }

    /// The shard that holds the session.
    fn shard(self) -> ShardId {
        (self.0 >> Self::GENERATION_BITS) as ShardId
    }

    /// The generation of the session's current claim.
    fn generation(self) -> u64 {
        self.0 & Self::GENERATION_MASK
    }
}

/// An operation waiting for answers from other shards.
#[derive(Debug)]
enum Pending {
    /// CONNACK waits for the client id's home shard (and maybe the session's shard).
    Connect {
        /// The waiting connection.
        conn: Key,
        /// Its client id (to release the claim if the connection is gone by then).
        client_id: MqttStr,
    },
    /// SUBACK waits for interest acknowledgements and retained answers.
    Subscribe(Box<subscribe::PendingSubscribe>),
    /// A retained query for one filter of a pending SUBSCRIBE.
    Retained {
        /// Token of the pending SUBSCRIBE.
        subscribe: u64,
        /// Granted QoS of that filter.
        qos: crate::codec::QoS,
    },
}

/// Deterministic hash shared by all shards: client id → home shard, topic → retained
/// partition. Every shard must compute the same value, so the seeds are fixed.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    ahash::RandomState::with_seeds(0x5ad1, 0x6d71, 0x7368, 0x6172).hash_one(bytes)
}

/// A subscriber with a backed-up queue slows publishers only while it acknowledges: after
/// this long without an acknowledgement it is considered stalled.
pub const STALLED_SUBSCRIBER_MS: u64 = 1000;

/// One shard's whole state.
pub struct Shard {
    id: ShardId,
    shards: usize,
    config: Config,
    conns: Slab<Conn>,
    sessions: Slab<SessionSlot>,
    by_client: client_index::ClientIndex,
    /// Subscriptions of this shard's sessions and the other shards' interest, by filter.
    filters: FilterTable<FilterEntry>,
    /// The other shards' ordinary interest in exact filters (the rest is in `filters`).
    exact_interest: interest::ExactInterest,
    /// Home partition of the registry, keyed by [`stable_hash`] of the client id: 24 bytes
    /// per client. Two ids with one 64-bit hash (odds 2^-64 per pair) would share an entry;
    /// the takeover protocol checks the id itself, so that costs at most a missed takeover.
    registry: AHashMap<u64, RegistryEntry>,
    next_generation: u64,
    retained: RetainedIndex<publish::RetainedValue>,
    pending: AHashMap<u64, Pending>,
    /// SUBSCRIBEs waiting for the other shards to acknowledge an interest change.
    subscribes_awaiting_acks: usize,
    next_token: u64,
    /// Per peer: messages for its data lane (forwards), sent as one batch per loop turn.
    outbox: Vec<Vec<MeshMsg>>,
    /// Per peer: messages for its control lane ([`MeshMsg::is_control`]).
    control_outbox: Vec<Vec<MeshMsg>>,
    /// Per peer: retained sets sent to it, and handled from it (see
    /// [`MeshMsg::is_control`]).
    retain_sets_sent: Vec<u64>,
    retain_sets_handled: Vec<u64>,
    /// Retained queries waiting for retained sets they must see (bounded by the SUBSCRIBEs
    /// in flight; see [`MeshMsg::RetainQuery`]).
    parked_retain_queries: Vec<peers::ParkedRetainQuery>,
    /// Remembered routes of publishers that repeat a topic (bounded; see [`route::Routes`]).
    routes: route::Routes,
    local_queue: VecDeque<MeshMsg>,
    /// Messages acknowledged during the current input, released after it.
    retired: Retired,
    timers: Timers,
    metrics: Metrics,
    assigned_ids: u64,
    instance: u64,
    shutting_down: bool,
    draining: bool,
    scratch: Vec<router::Target>,
    ready: Vec<Key>,
    /// QoS 1/2 messages waiting behind full in-flight windows of connected clients.
    online_queued: usize,
    /// Connected sessions whose queue is at least half of `max_queued_messages`.
    full_sessions: Vec<Key>,
    /// Full sessions the shard no longer waits for because waiting would hold other
    /// receivers of their messages back to their pace (see [`Shard::note_shared_delivery`]).
    unwaited: Vec<Key>,
    /// When the queues of connected sessions not waited for were last summed, and the sum
    /// (see [`Shard::delivery_pressure`]).
    not_waited_queued: std::cell::Cell<Option<(u64, usize)>>,
    /// Per peer: the rest of a batch whose first messages brought a queue near its limit,
    /// taken up again before that peer's next batch ([`Shard::resume_mesh`]).
    held_mesh: Vec<VecDeque<MeshMsg>>,
    /// Connections moving to the shard of their session, until the runtime hands them over.
    handovers: AHashMap<Key, handover::HandOver>,
    /// Connections adopted from other shards, with their sockets, for the runtime.
    adopted: Vec<(Key, u64)>,
    /// Per connected client, its rules from `auth.acl_file` (empty without one).
    access: AHashMap<Key, crate::acl::ClientRules>,
    /// Reused for the ACL patterns' `%c` / `%u` replacements.
    acl_scratch: String,
    /// The certificate names of TLS connections that have not sent CONNECT yet
    /// (`tls.use_identity_as_username`); None: a certificate without a Common Name.
    peer_identities: AHashMap<Key, Option<Box<str>>>,
    /// `$SYS` publishing (shard 0).
    sys: sys::SysState,
    /// Open connections on all shards, shared with them (`limits.max_connections`).
    gauge: ConnectionGauge,
}

impl Shard {
    /// A shard `id` of `shards`. `instance` makes assigned client ids unique across restarts;
    /// every shard of one broker gets a clone of the same `gauge`.
    pub fn new(
        id: ShardId,
        shards: usize,
        config: Config,
        instance: u64,
        gauge: ConnectionGauge,
    ) -> Shard {
        assert!(id < shards && shards <= crate::config::MAX_SHARDS);
        Shard {
            id,
            shards,
            config,
            conns: Slab::default(),
            sessions: Slab::default(),
            by_client: Default::default(),
            filters: FilterTable::new(),
            exact_interest: interest::ExactInterest::default(),
            registry: AHashMap::new(),
            next_generation: 1,
            retained: RetainedIndex::new(),
            pending: AHashMap::new(),
            subscribes_awaiting_acks: 0,
            next_token: 1,
            outbox: (0..shards).map(|_| Vec::new()).collect(),
            control_outbox: (0..shards).map(|_| Vec::new()).collect(),
            retain_sets_sent: vec![0; shards],
            retain_sets_handled: vec![0; shards],
            parked_retain_queries: Vec::new(),
            routes: route::Routes::default(),
            local_queue: VecDeque::new(),
            retired: Retired::default(),
            timers: Timers::default(),
            metrics: Metrics::default(),
            assigned_ids: 0,
            instance,
            shutting_down: false,
            draining: false,
            scratch: Vec::new(),
            ready: Vec::new(),
            online_queued: 0,
            full_sessions: Vec::new(),
            unwaited: Vec::new(),
            not_waited_queued: std::cell::Cell::new(None),
            held_mesh: (0..shards).map(|_| VecDeque::new()).collect(),
            handovers: AHashMap::new(),
            adopted: Vec::new(),
            access: AHashMap::new(),
            acl_scratch: String::new(),
            peer_identities: AHashMap::new(),
            sys: sys::SysState::default(),
            gauge,
        }
    }

    /// This shard's index.
    pub fn id(&self) -> ShardId {
        self.id
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Counters.
    pub fn metrics(&self) -> Metrics {
        self.metrics
    }

    /// Live connections.
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// Connections with a session attached: CONNACK sent and not closed. Not those still in
    /// a TLS or WebSocket handshake, before CONNECT, refused, or closing. A scan, for `$SYS`.
    pub(super) fn connected_clients(&self) -> usize {
        self.conns
            .iter()
            .filter(|(_, c)| c.session.is_some() && !c.is_closing())
            .count()
    }

    /// Sessions held (connected or not).
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Registers a new connection (CONNECT not yet received).
    pub fn accept(&mut self, now_ms: u64) -> Key {
        self.metrics.connections_accepted += 1;
        self.gauge.opened();
        let key = self.conns.insert(Conn::new(now_ms));
        self.watch_connection(key, now_ms);
        key
    }

    /// The connection, for the runtime to see what it has waiting to be sent and decoded.
    #[inline]
    pub fn conn(&self, key: Key) -> Option<&Conn> {
        self.conns.get(key)
    }

    /// The connection, for the runtime to flush its output and register its waker.
    #[inline]
    pub fn conn_mut(&mut self, key: Key) -> Option<&mut Conn> {
        self.conns.get_mut(key)
    }

    /// Decodes and handles packets from `input` until it holds no complete packet, the
    /// connection blocks on other shards, or it closes. Unconsumed bytes stay in `input`.
    pub fn on_input(&mut self, key: Key, input: &mut BytesMut, now_ms: u64) {
        let max_packet = self.config.limits.max_packet_bytes as usize;
        loop {
            let before = input.len();
            self.decode_packets(key, input, max_packet, now_ms);
            self.drain_local(now_ms);
            // A SUBSCRIBE or CONNECT served on this shard alone unblocks during the drain:
            // go on with the packets behind it.
            let resumable = self.conns.get(key).is_some_and(|c| c.can_process_input());
            if !resumable || input.is_empty() || input.len() == before {
                break;
            }
        }
        self.retired.release();
    }

    fn decode_packets(&mut self, key: Key, input: &mut BytesMut, max_packet: usize, now_ms: u64) {
        loop {
            let Some(conn) = self.conns.get_mut(key) else {
                return;
            };
            if !conn.can_process_input() {
                break;
            }
            if matches!(conn.state, ConnState::AwaitingConnect)
                && input.first().is_some_and(|&b| b >> 4 != CONNECT)
            {
                // [MQTT-3.1.0-1]: the first packet must be CONNECT. Its type is known from
                // the first byte: close now, not when the rest of the frame (or the CONNECT
                // deadline) arrives.
                self.metrics.protocol_errors += 1;
                self.close(key, None);
                input.clear();
                break;
            }
            let protocol = conn.protocol;
            match decode::next_packet(input, protocol, max_packet) {
                Ok(Some(decode::Decoded::Packet(packet))) => {
                    conn.last_packet_ms = now_ms;
                    self.on_packet(key, packet, now_ms);
                }
                Ok(Some(decode::Decoded::PubAck(packet_id))) => {
                    conn.last_packet_ms = now_ms;
                    self.on_puback(key, packet_id, now_ms);
                }
                Ok(Some(decode::Decoded::PubComp(packet_id))) => {
                    conn.last_packet_ms = now_ms;
                    self.on_pubcomp(key, packet_id, now_ms);
                }
                Ok(None) => break,
                Err(e) => {
                    if matches!(e, crate::codec::DecodeError::PacketTooLarge { .. }) {
                        self.metrics.packets_too_large += 1;
                    }
                    self.metrics.protocol_errors += 1;
                    tracing::debug!(shard = self.id, error = %e, "closing connection on bad packet");
                    let awaiting_connect = matches!(conn.state, ConnState::AwaitingConnect);
                    if awaiting_connect
                        && matches!(e, crate::codec::DecodeError::UnsupportedProtocolVersion(_))
                    {
                        // [MQTT-3.1.2-2]: CONNACK 0x01 (in the 3.1.1 form every client
                        // version reads; 5.0 allows 0x84 here), then close.
                        self.refuse_connect(key, ReasonCode::UNSUPPORTED_PROTOCOL_VERSION);
                        input.clear();
                        break;
                    }
                    self.fail_connection(key, e.reason_code());
                    input.clear();
                    break;
                }
            }
        }
    }

    fn on_packet(&mut self, key: Key, packet: Packet, now_ms: u64) {
        let awaiting_connect = matches!(
            self.conns.get(key).map(|c| &c.state),
            Some(ConnState::AwaitingConnect)
        );
        match packet {
            Packet::Connect(connect) if awaiting_connect => self.on_connect(key, connect, now_ms),
            // [MQTT-3.1.0-1]: the first packet must be CONNECT; [MQTT-3.1.0-2]: only one.
            _ if awaiting_connect => self.close(key, None),
            Packet::Connect(_) => self.fail_connection(key, ReasonCode::PROTOCOL_ERROR),
            Packet::Publish(p) => self.on_publish(key, p, now_ms),
            Packet::PubAck(a) => self.on_puback(key, a.packet_id, now_ms),
            Packet::PubRec(a) => self.on_pubrec(key, a, now_ms),
            Packet::PubRel(a) => self.on_pubrel(key, a.packet_id),
            Packet::PubComp(a) => self.on_pubcomp(key, a.packet_id, now_ms),
            Packet::Subscribe(s) => self.on_subscribe(key, s, now_ms),
            Packet::Unsubscribe(u) => self.on_unsubscribe(key, u),
            Packet::PingReq => self.write(key, &Packet::PingResp),
            Packet::Disconnect(d) => self.on_disconnect(key, d),
            // Only a client that named an Authentication Method in its CONNECT may send
            // AUTH (§4.12), and such a CONNECT is refused: any AUTH here is a Protocol Error.
            Packet::Auth(_) => self.fail_connection(key, ReasonCode::PROTOCOL_ERROR),
            // Packets only a server sends.
            Packet::ConnAck(_) | Packet::SubAck(_) | Packet::UnsubAck(_) | Packet::PingResp => {
                self.fail_connection(key, ReasonCode::PROTOCOL_ERROR)
            }
        }
    }

    /// Encodes a packet into the connection's output and wakes its task.
    fn write(&mut self, key: Key, packet: &Packet) {
        if let Some(conn) = self.conns.get_mut(key) {
            if conn.is_closing() {
                return;
            }
            if let Err(e) = packet.encode(conn.protocol, conn.out()) {
                tracing::warn!(error = %e, "could not encode a packet");
            }
            self.notify(key);
        }
    }

    /// Puts a connection on the ready list: the runtime flushes its output, or notices that
    /// it was unblocked or is closing.
    #[inline]
    fn notify(&mut self, key: Key) {
        if let Some(conn) = self.conns.get_mut(key) {
            if !conn.ready {
                conn.ready = true;
                self.ready.push(key);
            }
        }
    }

    /// Moves the ready list into `into` (cleared first) and resets the connections' flags.
    pub fn take_ready(&mut self, into: &mut Vec<Key>) {
        into.clear();
        std::mem::swap(into, &mut self.ready);
        for &key in into.iter() {
            if let Some(conn) = self.conns.get_mut(key) {
                conn.ready = false;
            }
        }
    }

    /// Ends a connection after a protocol violation: MQTT 5 gets a DISCONNECT with the
    /// reason (after CONNECT), then the socket closes once the output is flushed.
    fn fail_connection(&mut self, key: Key, reason: ReasonCode) {
        self.close(key, Some(reason));
    }

    /// Starts closing: optional DISCONNECT (MQTT 5 only, and only once connected), then the
    /// runtime flushes and calls [`Shard::on_closed`].
    fn close(&mut self, key: Key, reason: Option<ReasonCode>) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.is_closing() {
            return;
        }
        if let (Some(reason), Protocol::V5, ConnState::Active) =
            (reason, conn.protocol, &conn.state)
        {
            // A code only CONNACK may carry (a malformed second CONNECT decodes as 0x84)
            // becomes what it is once connected: a Protocol Error [MQTT-3.1.0-2].
            let reason = if reason.allowed_in_disconnect() {
                reason
            } else {
                ReasonCode::PROTOCOL_ERROR
            };
            let _ = Packet::Disconnect(Disconnect::new(reason)).encode(conn.protocol, conn.out());
        }
        conn.state = ConnState::Closing;
        conn.blocked = false;
        self.notify(key);
    }

    /// Starts shutting down: MQTT 5 clients get DISCONNECT 0x8B, everyone is closed after
    /// their output is flushed; Wills of closed connections are not published.
    pub fn shutdown(&mut self) {
        self.shutting_down = true;
        for key in self.conns.keys() {
            if let Some(conn) = self.conns.get_mut(key) {
                conn.will_on_close = false;
            }
            self.close(key, Some(ReasonCode::SERVER_SHUTTING_DOWN));
        }
    }

    /// True once [`Shard::shutdown`] ran.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down
    }

    /// Allocates an operation token.
    fn token(&mut self) -> u64 {
        let t = self.next_token;
        self.next_token += 1;
        t
    }

    /// The runtime's connection task ended (peer closed, I/O error, or a close we asked
    /// for was flushed). Detaches the session: Will, expiry, or the end of the session.
    pub fn on_closed(&mut self, key: Key, now_ms: u64) {
        let Some(conn) = self.conns.remove(key) else {
            return;
        };
        self.gauge.closed();
        self.access.remove(&key);
        self.peer_identities.remove(&key);
        if let Some(h) = self.handovers.remove(&key) {
            // It ended before it could move: its session's shard parks the session.
            self.abandon_handover(h);
        }
        // A connection closed while `Connecting` leaves its claim pending: the answer finds
        // no connection and parks the session offline (see `on_claimed`).
        if let Some(session_key) = conn.session {
            self.detach_session(session_key, conn.will_on_close, now_ms);
        }
        self.drain_local(now_ms);
    }

    /// Runs the timers: keep alive, CONNECT deadline, delayed Wills, session expiry, `$SYS`.
    pub fn tick(&mut self, now_ms: u64) {
        self.run_timers(now_ms);
        self.sys_tick(now_ms);
        self.drain_local(now_ms);
    }

    /// Home shard of a client id.
    fn home_shard(&self, client_id: &str) -> ShardId {
        (stable_hash(client_id.as_bytes()) % self.shards as u64) as ShardId
    }

    /// Retained partition of a topic.
    fn retained_shard(&self, topic: &str) -> ShardId {
        (stable_hash(topic.as_bytes()) % self.shards as u64) as ShardId
    }
}
