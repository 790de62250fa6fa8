//! A count every shard shares: open client connections, for `limits.max_connections`.
//!
//! The kernel picks the shard that accepts a connection, and after CONNECT the connection
//! moves to the shard that holds its session, so no per-shard share bounds the total (a
//! fleet whose sessions all live on one shard would pile up there), and an uneven spread
//! would refuse clients while another shard has room. One relaxed atomic add per accept and
//! per close is the whole cost.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Client connections open across all shards (clones share the count).
#[derive(Debug, Clone, Default)]
pub struct ConnectionGauge(Arc<AtomicUsize>);

impl ConnectionGauge {
    /// A connection was accepted.
    pub(super) fn opened(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection's socket closed (a connection that moves to another shard stays open).
    pub(super) fn closed(&self) {
        let before = self.0.fetch_sub(1, Ordering::Relaxed);
        debug_assert!(before > 0, "more connections closed than opened");
    }

    /// Connections open now, on every shard.
    pub fn open(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}
