//! Which other shards have ordinary subscribers of each exact (wildcard-free) filter.
//!
//! Every subscribed device of a fleet (`dev/{id}/cmd`) puts its filter's interest on every
//! other shard, so this is the one structure that grows with devices × shards. It holds
//! only what a PUBLISH needs from it, a shard bitmask per filter text: a 24-byte map slot
//! and the key, about 70 B per filter per shard against 110 B for a full
//! [`FilterEntry`](super::router::FilterEntry) in the filter table and ~250 B in a trie.
//! Wildcard filters, and the interest of shared-subscription groups, stay in the filter
//! table.

use ahash::AHashMap;

use super::mesh::ShardId;

/// Exact filter → bit per shard that has ordinary subscribers of it.
#[derive(Debug, Default)]
pub struct ExactInterest {
    shards_by_filter: AHashMap<Box<str>, u64>,
    /// Changes so far: remembered routes compare it (with the filter table's generation).
    changes: u64,
}

impl ExactInterest {
    /// Records that `shard` has (`add`) or no longer has ordinary subscribers of `filter`.
    ///
    /// A change that changes nothing (an interest announced again by a SUBSCRIBE that waits
    /// for the acknowledgements) does not move [`changes`](Self::changes), so the
    /// publishers' remembered routes stay valid.
    pub fn apply(&mut self, filter: &str, shard: ShardId, add: bool) {
        let bit = 1u64 << shard;
        if add {
            match self.shards_by_filter.get_mut(filter) {
                Some(mask) if *mask & bit != 0 => return,
                Some(mask) => *mask |= bit,
                None => {
                    self.shards_by_filter.insert(Box::from(filter), bit);
                }
            }
            self.changes += 1;
            return;
        }
        let Some(mask) = self.shards_by_filter.get_mut(filter) else {
            return;
        };
        if *mask & bit == 0 {
            return;
        }
        self.changes += 1;
        *mask &= !bit;
        if *mask == 0 {
            self.shards_by_filter.remove(filter);
            crate::topic::shrink_if_sparse(&mut self.shards_by_filter);
        }
    }

    /// The shards interested in exactly `topic` (0 when none).
    #[inline]
    pub fn shards_for(&self, topic: &str) -> u64 {
        if self.shards_by_filter.is_empty() {
            return 0;
        }
        self.shards_by_filter.get(topic).copied().unwrap_or(0)
    }

    /// Moves whenever an answer of [`shards_for`](Self::shards_for) may have changed.
    #[inline]
    pub fn changes(&self) -> u64 {
        self.changes
    }

    /// Filters with interest.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.shards_by_filter.len()
    }

    /// True when no other shard has an exact subscription.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.shards_by_filter.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filter_is_interesting_while_any_shard_subscribes() {
        let mut i = ExactInterest::default();
        assert_eq!(i.shards_for("dev/1/cmd"), 0);
        i.apply("dev/1/cmd", 1, true);
        i.apply("dev/1/cmd", 3, true);
        i.apply("dev/1/cmd", 3, true); // Repeated: no change.
        assert_eq!(i.shards_for("dev/1/cmd"), 0b1010);
        assert_eq!(i.shards_for("dev/1"), 0);
        i.apply("dev/1/cmd", 1, false);
        assert_eq!(i.shards_for("dev/1/cmd"), 0b1000);
        i.apply("dev/1/cmd", 1, false); // Already gone: no change.
        i.apply("other", 2, false); // Never there.
        i.apply("dev/1/cmd", 3, false);
        assert_eq!(i.shards_for("dev/1/cmd"), 0);
        assert!(i.is_empty());
    }

    #[test]
    fn every_change_moves_the_counter() {
        let mut i = ExactInterest::default();
        let c0 = i.changes();
        i.apply("a", 1, true);
        let c1 = i.changes();
        assert_ne!(c0, c1);
        i.apply("a", 1, false);
        assert_ne!(i.changes(), c1);
        let c2 = i.changes();
        let _ = i.shards_for("a");
        assert_eq!(i.changes(), c2, "reads do not move it");
        i.apply("a", 1, true);
        let c3 = i.changes();
        assert_ne!(c3, c2);
        i.apply("a", 1, true);
        i.apply("a", 2, false);
        assert_eq!(
            i.changes(),
            c3,
            "changes that change nothing do not move it"
        );
    }

    #[test]
    fn a_mostly_empty_map_shrinks() {
        let mut i = ExactInterest::default();
        for n in 0..10_000 {
            i.apply(&format!("dev/{n}/cmd"), 1, true);
        }
        let full = i.shards_by_filter.capacity();
        for n in 0..9_990 {
            i.apply(&format!("dev/{n}/cmd"), 1, false);
        }
        assert!(i.shards_by_filter.capacity() < full / 100);
        assert_eq!(i.len(), 10);
        assert_eq!(i.shards_for("dev/9999/cmd"), 0b10);
    }
}
