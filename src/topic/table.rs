//! [`FilterTable`]: a shard's filters, exact ones in a hash map and wildcard ones in a
//! [`TopicTrie`].
//!
//! An IoT fleet subscribes mostly to filters of its own with no wildcard (`dev/{id}/cmd`),
//! and every such filter sits on every shard: its subscribers on one, its interest on the
//! others. Stored in the trie, one costs three nodes' worth (the `{id}` node in the `dev`
//! map, its one-child vector, the `cmd` node and the boxed value: ~250 B per shard), so a
//! subscribed device cost ~250 B more for each shard added (measured: 0.8 KB at 1 shard, 2.6
//! KB at 8). In a map keyed by the whole filter it is one slot and one key. A PUBLISH looks
//! its topic up once in the map and walks the trie for the wildcard filters only, which for
//! such a fleet is a near-empty trie.

use std::fmt;

use ahash::AHashMap;

use super::trie::TopicTrie;

/// Topic filters → one value each, matched against topic names; same contract as
/// [`TopicTrie`] (filters validated and stripped of `$share/{group}/` first), and every
/// result is the same: only where each filter is kept differs.
pub struct FilterTable<V> {
    /// Filters without a `+` or `#` level, by their text.
    exact: AHashMap<Box<str>, V>,
    /// Filters with a wildcard level.
    wildcard: TopicTrie<V>,
    /// Mutable accesses to `exact` (see [`FilterTable::generation`]).
    exact_changes: u64,
}

/// A map is shrunk once it is used below a quarter of its capacity, and not below this.
const SHRINK_ABOVE_CAPACITY: usize = 64;

/// Gives a map's memory back once it is used below a quarter of its capacity (to twice its
/// length), so that memory returns to what it was before a burst of entries came and went:
/// the filter maps hold one entry per subscribed device.
pub fn shrink_if_sparse<K: Eq + std::hash::Hash, V>(map: &mut AHashMap<K, V>) {
    let (len, capacity) = (map.len(), map.capacity());
    if capacity > SHRINK_ABOVE_CAPACITY && len < capacity / 4 {
        map.shrink_to(len * 2);
    }
}

/// True when the filter has no wildcard level, so it matches exactly one topic name: itself.
pub fn is_exact_filter(filter: &str) -> bool {
    !filter.split('/').any(|level| level == "+" || level == "#")
}

impl<V> Default for FilterTable<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V> FilterTable<V> {
    /// An empty table. Allocates nothing until the first insert.
    pub fn new() -> Self {
        FilterTable {
            exact: AHashMap::new(),
            wildcard: TopicTrie::new(),
            exact_changes: 0,
        }
    }

    /// Changes whenever a value or the set of filters may have changed (every `&mut`
    /// access counts): a match result remembered with it is current while it is equal.
    #[inline]
    pub fn generation(&self) -> u64 {
        // Both parts only grow, so the sum moves whenever either does.
        self.wildcard.generation().wrapping_add(self.exact_changes)
    }

    /// Number of filters holding a value. O(1).
    pub fn len(&self) -> usize {
        self.exact.len() + self.wildcard.len()
    }

    /// True when no filter holds a value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Filters kept in the map (no wildcard). A memory diagnostic.
    pub fn exact_len(&self) -> usize {
        self.exact.len()
    }

    /// The value stored for exactly this filter (no wildcard expansion).
    pub fn get(&self, filter: &str) -> Option<&V> {
        if is_exact_filter(filter) {
            self.exact.get(filter)
        } else {
            self.wildcard.get(filter)
        }
    }

    /// The value stored for exactly this filter, mutably.
    pub fn get_mut(&mut self, filter: &str) -> Option<&mut V> {
        if is_exact_filter(filter) {
            self.exact_changes += 1;
            self.exact.get_mut(filter)
        } else {
            self.wildcard.get_mut(filter)
        }
    }

    /// The value for this filter, created with `make` when the filter has none.
    pub fn entry_or_insert_with(&mut self, filter: &str, make: impl FnOnce() -> V) -> &mut V {
        if !is_exact_filter(filter) {
            return self.wildcard.entry_or_insert_with(filter, make);
        }
        self.exact_changes += 1;
        // Looked up first so that an existing filter allocates no key.
        if !self.exact.contains_key(filter) {
            self.exact.insert(Box::from(filter), make());
        }
        self.exact
            .get_mut(filter)
            .expect("present: found or just inserted")
    }

    /// Stores `value` for `filter`, returning the value it replaces.
    pub fn insert(&mut self, filter: &str, value: V) -> Option<V> {
        let mut value = Some(value);
        let slot = self.entry_or_insert_with(filter, || value.take().expect("taken once"));
        value.map(|v| std::mem::replace(slot, v))
    }

    /// Removes the filter's value and returns it; memory returns to what it was before the
    /// filter was first inserted (the map shrinks once it is mostly empty).
    pub fn remove(&mut self, filter: &str) -> Option<V> {
        if !is_exact_filter(filter) {
            return self.wildcard.remove(filter);
        }
        self.exact_changes += 1;
        let v = self.exact.remove(filter);
        shrink_if_sparse(&mut self.exact);
        v
    }

    /// Calls `f` with the value of every stored filter that matches the topic name `topic`,
    /// each exactly once, in no particular order; the rules of
    /// [`TopicTrie::for_each_match`]. An exact filter matches only the topic it spells,
    /// `$` topics included ([MQTT-4.7.2-1] concerns wildcards only).
    ///
    /// Cost: one hash lookup of the topic (skipped while no exact filter is stored) plus
    /// the trie walk over the wildcard filters.
    #[inline]
    pub fn for_each_match<'a>(&'a self, topic: &str, mut f: impl FnMut(&'a V)) {
        if !self.exact.is_empty() {
            if let Some(v) = self.exact.get(topic) {
                f(v);
            }
        }
        if !self.wildcard.is_empty() {
            self.wildcard.for_each_match(topic, f);
        }
    }

    /// Calls `f` with every stored filter and its value, in no particular order. For tests
    /// and debugging.
    pub fn for_each<'a>(&'a self, mut f: impl FnMut(&str, &'a V)) {
        for (filter, v) in &self.exact {
            f(filter, v);
        }
        self.wildcard.for_each(f);
    }
}

impl<V: fmt::Debug> fmt::Debug for FilterTable<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        self.for_each(|filter, v| {
            m.entry(&filter, v);
        });
        m.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::super::trie::tests::{
        check_against_reference, filter, impl_filter_store, topic, FilterStore,
    };
    use super::*;
    use proptest::prelude::*;

    fn matches_of(t: &FilterTable<String>, topic: &str) -> Vec<String> {
        let mut out = Vec::new();
        t.for_each_match(topic, |v| out.push(v.clone()));
        out.sort();
        out
    }

    #[test]
    fn exact_filters_are_the_ones_without_a_wildcard_level() {
        for f in ["a", "a/b", "/", "", "$SYS/x", "a+/b", "a#", "dev/1/cmd"] {
            assert!(is_exact_filter(f), "{f}");
        }
        for f in ["#", "+", "a/+", "a/#", "+/b", "a/+/c", "$SYS/#"] {
            assert!(!is_exact_filter(f), "{f}");
        }
    }

    #[test]
    fn exact_and_wildcard_filters_match_together() {
        let mut t = FilterTable::new();
        for f in ["dev/1/cmd", "dev/+/cmd", "#", "$SYS/broker", "dev/1"] {
            t.insert(f, f.to_string());
        }
        assert_eq!(t.exact_len(), 3);
        assert_eq!(t.len(), 5);
        assert_eq!(
            matches_of(&t, "dev/1/cmd"),
            vec!["#", "dev/+/cmd", "dev/1/cmd"]
        );
        // [MQTT-4.7.2-1]: `#` does not match a `$` topic; the exact filter does.
        assert_eq!(matches_of(&t, "$SYS/broker"), vec!["$SYS/broker"]);
        assert_eq!(matches_of(&t, "dev/1"), vec!["#", "dev/1"]);
        assert_eq!(t.get("dev/+/cmd").map(String::as_str), Some("dev/+/cmd"));
        assert_eq!(t.remove("dev/1/cmd").as_deref(), Some("dev/1/cmd"));
        assert_eq!(matches_of(&t, "dev/1/cmd"), vec!["#", "dev/+/cmd"]);
    }

    /// A remembered route is current while the generation is unchanged: a change to an
    /// exact filter must move it like a change to the trie.
    #[test]
    fn generation_moves_on_every_mutable_access() {
        let mut t: FilterTable<u32> = FilterTable::new();
        let mut last = t.generation();
        let mut moved = |t: &FilterTable<u32>, what: &str| {
            assert_ne!(t.generation(), last, "{what}");
            last = t.generation();
        };
        t.insert("a/b", 1);
        moved(&t, "insert exact");
        t.insert("a/+", 1);
        moved(&t, "insert wildcard");
        *t.get_mut("a/b").unwrap() += 1;
        moved(&t, "get_mut exact");
        *t.get_mut("a/+").unwrap() += 1;
        moved(&t, "get_mut wildcard");
        t.remove("a/b");
        moved(&t, "remove exact");
        let g = t.generation();
        let _ = (t.get("a/+"), t.len());
        t.for_each_match("a/b", |_| {});
        assert_eq!(t.generation(), g, "reads do not move it");
    }

    #[test]
    fn a_mostly_empty_map_shrinks() {
        let mut t = FilterTable::new();
        for i in 0..10_000 {
            t.insert(&format!("dev/{i}/cmd"), i);
        }
        let full = t.exact.capacity();
        for i in 0..9_990 {
            assert_eq!(t.remove(&format!("dev/{i}/cmd")), Some(i));
        }
        assert!(t.exact.capacity() < full / 100, "{}", t.exact.capacity());
        assert_eq!(t.get("dev/9999/cmd"), Some(&9999));
    }

    impl_filter_store!(FilterTable<String>);

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Every topic finds exactly the stored filters that match it by the reference rule,
        /// before and after removals; `topic()` spells filters without wildcards, so both
        /// kinds are common.
        #[test]
        fn agrees_with_reference(
            filters in prop::collection::vec(filter(), 0..40),
            exact in prop::collection::vec(topic(), 0..20),
            topics in prop::collection::vec(topic(), 1..20),
            remove_mask in prop::collection::vec(any::<bool>(), 60),
        ) {
            let all: Vec<String> = filters.into_iter().chain(exact).collect();
            check_against_reference(&mut FilterTable::new(), &all, &topics, &remove_mask)?;
        }
    }
}
