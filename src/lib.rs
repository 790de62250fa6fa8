//! # shardmq
//!
//! A thread-per-core, shared-nothing MQTT 3.1.1 / 5.0 broker for Linux.
//!
//! ```text
//!             one io_uring event loop per core, pinned (shard i runs on core i)
//!  clients ─► SO_REUSEPORT listener (one per shard, same port) ─► connection tasks
//!             │  codec (pure)  →  session state machine (pure, takes `now`)  →  shard state
//!             │  local subscription trie        (filter → this shard's subscribers)
//!             │  interest trie                  (filter → which OTHER shards have subscribers)
//!             │  retained partition, client-id registry partition, keepalive sweep
//!             └─ mesh: two bounded SPSC channels per ordered pair of shards, batched
//!                      (data: forwards, retained sets; control: what a waiting client needs)
//! ```
//!
//! ## Module map
//!
//! | module | owns | I/O? |
//! | --- | --- | --- |
//! | [`codec`] | the MQTT 3.1.1 / 5.0 wire format, zero-copy decode, single-reserve encode | pure |
//! | [`topic`] | topic name / filter rules, the subscription trie, the retained index | pure |
//! | [`session`] | per-client state: subscriptions, in-flight window, queue, Will | pure |
//! | [`shard`] | what one core owns: connections, routing, interest, registry, retained, timers | pure |
//! | [`config`] | every setting and every limit, with defaults and validation | reads its files at start |
//! | [`auth`] | who may connect: mosquitto password files, admission of a CONNECT | pure |
//! | [`acl`] | which topics a client may use: mosquitto ACL files | pure |
//! | [`tls`] | the server certificate, key and client CA as a rustls configuration | pure |
//! | [`ws`] | MQTT over WebSocket: the opening handshake and the frames (RFC 6455) | pure |
//! | [`runtime`] | io_uring event loops (one pinned thread per shard), sockets, the clock, the mesh | the only I/O |
//!
//! ## The pure / runtime rule
//!
//! Everything outside `runtime` is deterministic: it never touches a socket, the clock or
//! io_uring, and time comes in as an argument. That keeps the protocol testable without a
//! network and lets the runtime be replaced without touching the protocol.
//!
//! ## What the shards share
//!
//! Messages cross shards only through the mesh. Besides it the shards share two atomics: the
//! mesh channels' message counts (backpressure) and one count of open connections
//! ([`shard::ConnectionGauge`], for `limits.max_connections`: a connection moves to the shard
//! of its session after CONNECT, so no per-shard share could bound the total). Each is
//! touched once per batch or once per connect and close, never per message.

#![warn(missing_docs)]

pub mod acl;
pub mod auth;
pub mod codec;
pub mod config;
pub mod runtime;
pub mod session;
pub mod shard;
pub mod tls;
pub mod topic;
pub mod ws;
