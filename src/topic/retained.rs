//! [`RetainedIndex`]: the retained messages of one partition, found by exact topic in O(1)
//! and by wildcard filter by walking only the matching branches of a trie of topic names.
//!
//! Retained messages are partitioned across shards by hash of topic (DESIGN.md). A
//! SUBSCRIBE with an exact filter asks one partition and hits the hash map; a wildcard
//! filter asks every partition, and each walks its name trie. Neither ever scans all the
//! retained messages of the partition.

use std::fmt;
use std::sync::Arc;

use ahash::AHashMap;

use super::children::Children;
use super::matching::{classify, split_level, FilterLevel};

/// Marks a name-trie node where no stored topic ends.
const NO_SLOT: u32 = u32::MAX;

/// Retained messages of one partition, keyed by topic name.
///
/// Values live in a slab; the hash map (exact lookups) and the name trie (wildcard lookups)
/// both refer to a slab index, so a value is stored once and a wildcard match reaches it
/// without hashing its topic again. The topic text is stored once, as an `Arc<str>` shared
/// by the map key and the slab entry, and handed to the caller on each match (a PUBLISH to
/// the new subscriber needs it).
///
/// Topic names are taken as given (validate them with
/// [`validate_topic_name`](super::validate_topic_name)); a name that contains `+` or `#`
/// is stored literally and never panics. Lookups recurse once per level of the stored
/// names, so stack depth is bounded by the broker's limit on topic levels.
pub struct RetainedIndex<V> {
    by_topic: AHashMap<Arc<str>, u32>,
    slots: Vec<Option<Entry<V>>>,
    /// Slab indexes free for reuse, so churn does not grow the slab.
    free: Vec<u32>,
    root: NameNode,
}

struct Entry<V> {
    topic: Arc<str>,
    value: V,
}

/// One level of the name trie: no wildcards, so just a slot and literal children.
struct NameNode {
    slot: u32,
    children: Children<NameNode>,
}

impl NameNode {
    fn new() -> Self {
        NameNode {
            slot: NO_SLOT,
            children: Children::default(),
        }
    }

    fn count_nodes(&self) -> usize {
        let mut n = 1;
        self.children.for_each(|_, c| n += c.count_nodes());
        n
    }
}

impl<V> Default for RetainedIndex<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V> RetainedIndex<V> {
    /// An empty index. Allocates nothing until the first insert.
    pub fn new() -> Self {
        RetainedIndex {
            by_topic: AHashMap::default(),
            slots: Vec::new(),
            free: Vec::new(),
            root: NameNode::new(),
        }
    }

    /// Number of retained topics. O(1).
    #[inline]
    pub fn len(&self) -> usize {
        self.by_topic.len()
    }

    /// True when nothing is retained.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.by_topic.is_empty()
    }

    /// Number of name-trie nodes, the root included; `1` when empty. A memory diagnostic
    /// showing that removal prunes.
    pub fn node_count(&self) -> usize {
        self.root.count_nodes()
    }

    /// The retained value for exactly this topic name. One hash lookup.
    #[inline]
    pub fn get(&self, topic: &str) -> Option<&V> {
        let idx = *self.by_topic.get(topic)?;
        self.entry(idx).map(|e| &e.value)
    }

    /// The retained value for exactly this topic name, mutably.
    pub fn get_mut(&mut self, topic: &str) -> Option<&mut V> {
        let idx = *self.by_topic.get(topic)?;
        self.slots
            .get_mut(idx as usize)
            .and_then(Option::as_mut)
            .map(|e| &mut e.value)
    }

    /// Retains `value` under `topic`, returning the value it replaces. Replacing touches
    /// only the hash map; a new topic also adds its path to the name trie.
    pub fn insert(&mut self, topic: &str, value: V) -> Option<V> {
        if let Some(&idx) = self.by_topic.get(topic) {
            if let Some(e) = self.slots.get_mut(idx as usize).and_then(Option::as_mut) {
                return Some(std::mem::replace(&mut e.value, value));
            }
        }
        let topic: Arc<str> = Arc::from(topic);
        let entry = Some(Entry {
            topic: Arc::clone(&topic),
            value,
        });
        let idx = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = entry;
                i
            }
            None => {
                let i = u32::try_from(self.slots.len())
                    .ok()
                    .filter(|&i| i != NO_SLOT)
                    .expect("fewer than 2^32 - 1 retained messages per partition");
                self.slots.push(entry);
                i
            }
        };
        let mut node = &mut self.root;
        let mut rest = &*topic;
        loop {
            let (level, next) = split_level(rest);
            node = node.children.get_or_insert_with(level, NameNode::new);
            match next {
                Some(n) => rest = n,
                None => break,
            }
        }
        node.slot = idx;
        self.by_topic.insert(topic, idx);
        None
    }

    /// Removes the retained value of `topic` (a retained PUBLISH with an empty payload)
    /// and prunes the name-trie nodes left empty.
    pub fn remove(&mut self, topic: &str) -> Option<V> {
        let idx = self.by_topic.remove(topic)?;
        remove_name(&mut self.root, topic);
        let entry = self.slots.get_mut(idx as usize)?.take()?;
        if self.by_topic.is_empty() {
            // Back to baseline: the slab holds nothing live.
            self.slots.clear();
            self.free.clear();
        } else {
            self.free.push(idx);
        }
        Some(entry.value)
    }

    /// Removes everything.
    pub fn clear(&mut self) {
        *self = Self::new();
    }

    /// Calls `f(topic, value)` for every retained topic that matches the topic filter
    /// `filter` (plain, not `$share/...`), each once, in no particular order. MQTT rules,
    /// including that a filter starting with `+` or `#` does not match `$` topics
    /// [MQTT-4.7.2-1].
    ///
    /// A filter without wildcards is one hash lookup. A wildcard filter walks the name
    /// trie, descending into one child per literal level and every child per `+`; the
    /// subtree under `#` is emitted whole. The work is bounded by the nodes on matching
    /// paths, never by the number of retained messages.
    pub fn for_each_match<'a>(&'a self, filter: &str, mut f: impl FnMut(&'a str, &'a V)) {
        if !filter.bytes().any(|b| b == b'+' || b == b'#') {
            if let Some(&idx) = self.by_topic.get(filter) {
                if let Some(e) = self.entry(idx) {
                    f(&e.topic, &e.value);
                }
            }
            return;
        }
        let (level, next) = split_level(filter);
        let root = &self.root;
        match classify(level, next.is_none()) {
            FilterLevel::Multi => root.children.for_each(|name, child| {
                if !name.starts_with('$') {
                    self.emit_subtree(child, &mut f);
                }
            }),
            FilterLevel::Single => root.children.for_each(|name, child| {
                if !name.starts_with('$') {
                    self.walk(child, next, &mut f);
                }
            }),
            FilterLevel::Literal(lit) => {
                if let Some(child) = root.children.get(lit) {
                    self.walk(child, next, &mut f);
                }
            }
        }
    }

    /// Calls `f(topic, value)` for every retained message. For tests, debugging and
    /// moving a partition.
    pub fn for_each<'a>(&'a self, mut f: impl FnMut(&'a str, &'a V)) {
        for e in self.slots.iter().flatten() {
            f(&e.topic, &e.value);
        }
    }

    #[inline]
    fn entry(&self, idx: u32) -> Option<&Entry<V>> {
        self.slots.get(idx as usize).and_then(Option::as_ref)
    }

    #[inline]
    fn emit<'a, F: FnMut(&'a str, &'a V)>(&'a self, node: &NameNode, f: &mut F) {
        if node.slot != NO_SLOT {
            if let Some(e) = self.entry(node.slot) {
                f(&e.topic, &e.value);
            }
        }
    }

    /// `node` has consumed the filter levels before `rest`.
    fn walk<'a, F: FnMut(&'a str, &'a V)>(
        &'a self,
        node: &'a NameNode,
        rest: Option<&str>,
        f: &mut F,
    ) {
        let Some(rest) = rest else {
            self.emit(node, f);
            return;
        };
        let (level, next) = split_level(rest);
        match classify(level, next.is_none()) {
            // `<path>/#` matches `<path>` itself and everything below.
            FilterLevel::Multi => self.emit_subtree(node, f),
            FilterLevel::Single => node.children.for_each(|_, child| self.walk(child, next, f)),
            FilterLevel::Literal(lit) => {
                if let Some(child) = node.children.get(lit) {
                    self.walk(child, next, f);
                }
            }
        }
    }

    fn emit_subtree<'a, F: FnMut(&'a str, &'a V)>(&'a self, node: &'a NameNode, f: &mut F) {
        self.emit(node, f);
        node.children
            .for_each(|_, child| self.emit_subtree(child, f));
    }
}

/// Clears the slot at the end of `topic` below `node` and prunes the children left with
/// neither a slot nor children. Returns whether the topic was found.
fn remove_name(node: &mut NameNode, topic: &str) -> bool {
    let (level, next) = split_level(topic);
    let Some(child) = node.children.get_mut(level) else {
        return false;
    };
    let found = match next {
        Some(n) => remove_name(child, n),
        None => std::mem::replace(&mut child.slot, NO_SLOT) != NO_SLOT,
    };
    if found && child.slot == NO_SLOT && child.children.is_empty() {
        node.children.remove(level);
    }
    found
}

impl<V: fmt::Debug> fmt::Debug for RetainedIndex<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut entries = Vec::with_capacity(self.len());
        self.for_each(|t, v| entries.push((t.to_owned(), v)));
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        f.debug_map().entries(entries).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::super::matching::filter_matches;
    use super::super::trie::tests::{filter, topic};
    use super::*;
    use proptest::prelude::*;

    fn matches_of(r: &RetainedIndex<u32>, filter: &str) -> Vec<String> {
        let mut out = Vec::new();
        r.for_each_match(filter, |t, v| {
            assert_eq!(r.get(t), Some(v));
            out.push(t.to_owned());
        });
        out.sort();
        out
    }

    #[test]
    fn spec_examples() {
        let mut r = RetainedIndex::new();
        let topics = [
            "sport/tennis/player1",
            "sport/tennis/player1/ranking",
            "sport/tennis/player1/score/wimbledon",
            "sport/tennis/player2",
            "sport",
            "sport/",
            "/finance",
            "finance",
            "/",
            "$SYS/monitor/Clients",
            "$SYS",
        ];
        for (i, t) in topics.iter().enumerate() {
            assert_eq!(r.insert(t, i as u32), None);
        }
        assert_eq!(r.len(), topics.len());
        assert_eq!(
            matches_of(&r, "sport/tennis/player1/#"),
            [
                "sport/tennis/player1",
                "sport/tennis/player1/ranking",
                "sport/tennis/player1/score/wimbledon"
            ]
        );
        assert_eq!(matches_of(&r, "sport/+"), ["sport/"]);
        assert_eq!(
            matches_of(&r, "sport/tennis/+"),
            ["sport/tennis/player1", "sport/tennis/player2"]
        );
        assert_eq!(matches_of(&r, "+"), ["finance", "sport"]);
        assert_eq!(matches_of(&r, "+/+"), ["/", "/finance", "sport/"]);
        assert_eq!(matches_of(&r, "/+"), ["/", "/finance"]);
        assert_eq!(matches_of(&r, "#").len(), topics.len() - 2);
        assert_eq!(matches_of(&r, "$SYS/#"), ["$SYS", "$SYS/monitor/Clients"]);
        assert_eq!(matches_of(&r, "+/monitor/Clients"), Vec::<String>::new());
        assert_eq!(matches_of(&r, "$SYS/monitor/+"), ["$SYS/monitor/Clients"]);
        assert_eq!(matches_of(&r, "sport"), ["sport"]);
        assert_eq!(matches_of(&r, "nope"), Vec::<String>::new());
    }

    #[test]
    fn replace_remove_prune() {
        let mut r = RetainedIndex::new();
        assert_eq!(r.node_count(), 1);
        for i in 0..3000u32 {
            r.insert(&format!("d/{}/{}", i % 50, i), i);
        }
        assert_eq!(r.insert("d/0/0", 7), Some(0));
        assert_eq!(r.get("d/0/0"), Some(&7));
        *r.get_mut("d/0/0").unwrap() = 0;
        assert_eq!(r.len(), 3000);
        assert_eq!(matches_of(&r, "d/3/#").len(), 60);
        assert_eq!(matches_of(&r, "d/+/42"), ["d/42/42"]);
        for i in (0..3000u32).step_by(2) {
            assert_eq!(r.remove(&format!("d/{}/{}", i % 50, i)), Some(i));
        }
        assert_eq!(r.remove("d/0/0"), None);
        assert_eq!(r.len(), 1500);
        // Freed slots are reused.
        r.insert("x", 1);
        assert_eq!(r.slots.len(), 3000);
        r.remove("x");
        for i in (1..3000u32).step_by(2) {
            assert_eq!(r.remove(&format!("d/{}/{}", i % 50, i)), Some(i));
        }
        assert!(r.is_empty());
        assert_eq!(r.node_count(), 1);
        assert!(r.slots.is_empty());
        assert_eq!(format!("{r:?}"), "{}");
    }

    #[test]
    fn prefix_topics_keep_each_other() {
        let mut r = RetainedIndex::new();
        r.insert("a", 1);
        r.insert("a/b", 2);
        r.insert("a/b/c", 3);
        assert_eq!(r.remove("a/b"), Some(2));
        assert_eq!(matches_of(&r, "a/#"), ["a", "a/b/c"]);
        assert_eq!(r.remove("a"), Some(1));
        assert_eq!(matches_of(&r, "#"), ["a/b/c"]);
        assert_eq!(r.node_count(), 4);
        r.remove("a/b/c");
        assert_eq!(r.node_count(), 1);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn agrees_with_reference(
            topics in prop::collection::vec(topic(), 0..40),
            filters in prop::collection::vec(filter(), 1..20),
            remove_mask in prop::collection::vec(any::<bool>(), 40),
        ) {
            let mut r = RetainedIndex::new();
            let mut distinct: Vec<String> = Vec::new();
            for (i, t) in topics.iter().enumerate() {
                let old = r.insert(t, i as u32);
                prop_assert_eq!(old.is_none(), !distinct.contains(t));
                if old.is_none() { distinct.push(t.clone()); }
                prop_assert_eq!(r.len(), distinct.len());
            }
            let check = |r: &RetainedIndex<u32>, live: &[String]| -> Result<(), TestCaseError> {
                for f in &filters {
                    let got = matches_of(r, f);
                    let mut want: Vec<String> = live.iter()
                        .filter(|t| filter_matches(f, t)).cloned().collect();
                    want.sort();
                    prop_assert_eq!(&got, &want, "filter {:?}", f);
                }
                Ok(())
            };
            check(&r, &distinct)?;
            let (gone, kept): (Vec<_>, Vec<_>) = distinct.iter().cloned().enumerate()
                .partition(|(i, _)| remove_mask[*i % remove_mask.len()]);
            for (_, t) in &gone {
                prop_assert!(r.remove(t).is_some());
                prop_assert!(r.remove(t).is_none());
            }
            let kept: Vec<String> = kept.into_iter().map(|(_, t)| t).collect();
            prop_assert_eq!(r.len(), kept.len());
            check(&r, &kept)?;
            for t in &kept {
                prop_assert!(r.remove(t).is_some());
            }
            prop_assert!(r.is_empty());
            prop_assert_eq!(r.node_count(), 1);
        }
    }
}
