//! [`TopicTrie`]: topic filters → one value each, matched against topic names in time that
//! does not depend on how many filters are stored.
//!
//! This is what every PUBLISH goes through, twice per shard (the local subscription trie
//! and the interest trie of DESIGN.md), so the match path allocates nothing and touches one
//! node per matching filter level:
//!
//! - a node keeps its `+` child and its `#` value in dedicated fields, so a match step is
//!   one literal lookup plus two field reads, never a search for `"+"` among the literals;
//! - `#` is always the last level, so a `#` "child" can have no children of its own and is
//!   stored as a bare `Option<V>` on its parent, not as a node;
//! - literal children live in a small vector or, past a threshold, a hash map
//!   ([`Children`]).

use std::fmt;

use super::children::Children;
use super::matching::{classify, is_dollar_topic, split_level, FilterLevel};

/// Maps plain topic filters to one value each and finds the values of all filters that
/// match a topic name.
///
/// What the value is belongs to the caller: on a shard's local trie it is the set of local
/// subscribers of the filter, in the interest trie a bitmask of the other shards that have
/// subscribers. Keeping one value per filter, rather than one entry per subscriber, keeps
/// the trie's size proportional to distinct filters and lets the caller choose its
/// subscriber representation.
///
/// Filters are taken as given: validate them first with
/// [`validate_topic_filter`](super::validate_topic_filter), and strip `$share/{group}/`
/// (see [`parse_shared_filter`](super::parse_shared_filter)) — a shared filter passed in
/// whole would be stored as the literal levels `$share`, `{group}`, …. Invalid filters do
/// not panic: a `#` that is not the last level is a literal, as is `a+`.
///
/// Matching recurses once per topic level that still has a matching node, so its stack
/// depth is bounded by the deepest stored filter, which the broker bounds by configuration.
pub struct TopicTrie<V> {
    root: Node<V>,
    len: usize,
    /// Bumped by every call that can change a value or the set of filters, so that a
    /// cached match result can tell it is still current.
    generation: u64,
}

/// One level of the trie. The path from the root spells the filter.
struct Node<V> {
    /// Value of the filter ending exactly here. Boxed, like `multi`: most nodes are steps
    /// on the way to a filter and hold neither, and a parent keeps its children inline (in
    /// a vector or a map's table), so a value stored in place made every node as large as
    /// two values (208 bytes with the shard's `FilterEntry`, 48 now).
    value: Option<Box<V>>,
    /// Value of the filter `<path>/#` (or `#` at the root).
    multi: Option<Box<V>>,
    /// The `+` child. Boxed: most nodes have none, and `None` is one word.
    single: Option<Box<Node<V>>>,
    /// Literal children by level string.
    children: Children<Node<V>>,
}

impl<V> Node<V> {
    fn new() -> Self {
        Node {
            value: None,
            multi: None,
            single: None,
            children: Children::default(),
        }
    }

    /// A node holding nothing can be pruned from its parent.
    fn is_empty(&self) -> bool {
        self.value.is_none()
            && self.multi.is_none()
            && self.single.is_none()
            && self.children.is_empty()
    }

    fn count_nodes(&self) -> usize {
        let mut n = 1 + self.single.as_deref().map_or(0, Node::count_nodes);
        self.children.for_each(|_, c| n += c.count_nodes());
        n
    }
}

impl<V> Default for TopicTrie<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V> TopicTrie<V> {
    /// An empty trie. Allocates nothing until the first insert.
    pub fn new() -> Self {
        TopicTrie {
            root: Node::new(),
            len: 0,
            generation: 0,
        }
    }

    /// Changes whenever a value or the set of filters may have changed (every `&mut`
    /// access counts): a match result remembered with it is current while it is equal.
    #[inline]
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Number of filters holding a value. O(1).
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no filter holds a value (the trie is then back to a bare root).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of nodes, the root included; `1` when empty. A memory diagnostic: it shows
    /// that removal prunes, and it is a cheap proxy for the trie's size in metrics. O(nodes).
    pub fn node_count(&self) -> usize {
        self.root.count_nodes()
    }

    /// The value stored for exactly this filter (no wildcard expansion: `a/+` finds the
    /// value of the filter `a/+`, not of `a/b`).
    pub fn get(&self, filter: &str) -> Option<&V> {
        let mut node = &self.root;
        let mut rest = filter;
        loop {
            let (level, next) = split_level(rest);
            match classify(level, next.is_none()) {
                FilterLevel::Multi => return node.multi.as_deref(),
                FilterLevel::Single => node = node.single.as_deref()?,
                FilterLevel::Literal(lit) => node = node.children.get(lit)?,
            }
            match next {
                Some(n) => rest = n,
                None => return node.value.as_deref(),
            }
        }
    }

    /// The value stored for exactly this filter, mutably (to add or remove one subscriber
    /// of an existing filter without a second lookup).
    pub fn get_mut(&mut self, filter: &str) -> Option<&mut V> {
        self.generation += 1;
        let mut node = &mut self.root;
        let mut rest = filter;
        loop {
            let (level, next) = split_level(rest);
            match classify(level, next.is_none()) {
                FilterLevel::Multi => return node.multi.as_deref_mut(),
                FilterLevel::Single => node = node.single.as_deref_mut()?,
                FilterLevel::Literal(lit) => node = node.children.get_mut(lit)?,
            }
            match next {
                Some(n) => rest = n,
                None => return node.value.as_deref_mut(),
            }
        }
    }

    /// The value for this filter, created with `make` (and the path of nodes to it) when the
    /// filter has none. The one insert primitive: a subscribe adds itself to the returned
    /// set, and the caller sees a 0→1 change when `make` ran (e.g. to broadcast interest).
    pub fn entry_or_insert_with(&mut self, filter: &str, make: impl FnOnce() -> V) -> &mut V {
        self.generation += 1;
        let mut node = &mut self.root;
        let mut rest = filter;
        let slot = loop {
            let (level, next) = split_level(rest);
            match classify(level, next.is_none()) {
                FilterLevel::Multi => break &mut node.multi,
                FilterLevel::Single => {
                    node = node.single.get_or_insert_with(|| Box::new(Node::new()));
                }
                FilterLevel::Literal(lit) => {
                    node = node.children.get_or_insert_with(lit, Node::new);
                }
            }
            match next {
                Some(n) => rest = n,
                None => break &mut node.value,
            }
        };
        if slot.is_none() {
            self.len += 1;
        }
        slot.get_or_insert_with(|| Box::new(make()))
    }

    /// Stores `value` for `filter`, returning the value it replaces.
    pub fn insert(&mut self, filter: &str, value: V) -> Option<V> {
        let mut value = Some(value);
        let slot = self.entry_or_insert_with(filter, || value.take().expect("taken once"));
        // `value` is still `Some` when the filter already existed: swap it in.
        value.map(|v| std::mem::replace(slot, v))
    }

    /// Removes the filter's value and returns it, pruning every node left holding nothing,
    /// so that memory returns to what it was before the filter was first inserted.
    pub fn remove(&mut self, filter: &str) -> Option<V> {
        self.generation += 1;
        let v = remove_in(&mut self.root, filter);
        if v.is_some() {
            self.len -= 1;
        }
        v
    }

    /// Removes every filter.
    pub fn clear(&mut self) {
        self.generation += 1;
        self.root = Node::new();
        self.len = 0;
    }

    /// Calls `f` with the value of every stored filter that matches the topic name `topic`,
    /// each exactly once, in no particular order. MQTT rules: `+` matches one level (an
    /// empty one too), `#` matches its parent level and everything below [MQTT-4.7.1-2],
    /// and filters starting with a wildcard do not match topics starting with `$`
    /// [MQTT-4.7.2-1].
    ///
    /// Cost is O(topic levels × (1 + wildcard branches taken) + matches), independent of the
    /// number of stored filters; no allocation.
    #[inline]
    pub fn for_each_match<'a>(&'a self, topic: &str, mut f: impl FnMut(&'a V)) {
        let root = &self.root;
        let (level, next) = split_level(topic);
        if !is_dollar_topic(topic) {
            if let Some(v) = root.multi.as_deref() {
                f(v);
            }
            if let Some(single) = root.single.as_deref() {
                match_in(single, next, &mut f);
            }
        }
        if let Some(child) = root.children.get(level) {
            match_in(child, next, &mut f);
        }
    }

    /// [`for_each_match`](Self::for_each_match) with mutable values, e.g. to advance a
    /// shared-subscription round-robin cursor or bump per-filter counters while routing.
    pub fn for_each_match_mut(&mut self, topic: &str, mut f: impl FnMut(&mut V)) {
        self.generation += 1;
        let root = &mut self.root;
        let (level, next) = split_level(topic);
        if !is_dollar_topic(topic) {
            if let Some(v) = root.multi.as_deref_mut() {
                f(v);
            }
            if let Some(single) = root.single.as_deref_mut() {
                match_in_mut(single, next, &mut f);
            }
        }
        if let Some(child) = root.children.get_mut(level) {
            match_in_mut(child, next, &mut f);
        }
    }

    /// True when at least one stored filter matches `topic`. Stops at the first match.
    /// Cheaper than [`for_each_match`](Self::for_each_match) when only existence matters.
    pub fn has_match(&self, topic: &str) -> bool {
        let root = &self.root;
        let (level, next) = split_level(topic);
        if !is_dollar_topic(topic)
            && (root.multi.is_some() || root.single.as_deref().is_some_and(|s| any_in(s, next)))
        {
            return true;
        }
        root.children.get(level).is_some_and(|c| any_in(c, next))
    }

    /// Calls `f` with every stored filter, spelled out, and its value, in no particular
    /// order. For tests, debugging and handing a shard's subscriptions over; allocates one
    /// buffer for the filter text.
    pub fn for_each<'a>(&'a self, mut f: impl FnMut(&str, &'a V)) {
        let mut buf = String::new();
        walk_all(&self.root, &mut buf, true, &mut f);
    }
}

/// Matching below the root: `node` has consumed the levels before `rest`; `rest` is `None`
/// when the topic has no more levels.
fn match_in<'a, V, F: FnMut(&'a V)>(node: &'a Node<V>, rest: Option<&str>, f: &mut F) {
    // `<path>/#` matches `<path>` itself and everything below it.
    if let Some(v) = node.multi.as_deref() {
        f(v);
    }
    let Some(rest) = rest else {
        if let Some(v) = node.value.as_deref() {
            f(v);
        }
        return;
    };
    let (level, next) = split_level(rest);
    if let Some(child) = node.children.get(level) {
        match_in(child, next, f);
    }
    if let Some(single) = node.single.as_deref() {
        match_in(single, next, f);
    }
}

fn match_in_mut<V, F: FnMut(&mut V)>(node: &mut Node<V>, rest: Option<&str>, f: &mut F) {
    if let Some(v) = node.multi.as_deref_mut() {
        f(v);
    }
    let Some(rest) = rest else {
        if let Some(v) = node.value.as_deref_mut() {
            f(v);
        }
        return;
    };
    let (level, next) = split_level(rest);
    if let Some(child) = node.children.get_mut(level) {
        match_in_mut(child, next, f);
    }
    if let Some(single) = node.single.as_deref_mut() {
        match_in_mut(single, next, f);
    }
}

fn any_in<V>(node: &Node<V>, rest: Option<&str>) -> bool {
    if node.multi.is_some() {
        return true;
    }
    let Some(rest) = rest else {
        return node.value.is_some();
    };
    let (level, next) = split_level(rest);
    node.children.get(level).is_some_and(|c| any_in(c, next))
        || node.single.as_deref().is_some_and(|s| any_in(s, next))
}

/// Removes the value at the end of `filter` (relative to `node`) and prunes children left
/// empty on the way back up. The node passed in is never pruned by this call; its parent
/// decides.
fn remove_in<V>(node: &mut Node<V>, filter: &str) -> Option<V> {
    let (level, next) = split_level(filter);
    match classify(level, next.is_none()) {
        FilterLevel::Multi => node.multi.take().map(|v| *v),
        FilterLevel::Single => {
            let child = node.single.as_deref_mut()?;
            let v = match next {
                Some(n) => remove_in(child, n),
                None => child.value.take().map(|v| *v),
            };
            if v.is_some() && child.is_empty() {
                node.single = None;
            }
            v
        }
        FilterLevel::Literal(lit) => {
            let child = node.children.get_mut(lit)?;
            let v = match next {
                Some(n) => remove_in(child, n),
                None => child.value.take().map(|v| *v),
            };
            if v.is_some() && child.is_empty() {
                node.children.remove(lit);
            }
            v
        }
    }
}

fn walk_all<'a, V>(
    node: &'a Node<V>,
    buf: &mut String,
    root: bool,
    f: &mut impl FnMut(&str, &'a V),
) {
    if !root {
        if let Some(v) = node.value.as_deref() {
            f(buf, v);
        }
    }
    let mut descend = |level: &str, child: Option<&'a Node<V>>, value: Option<&'a V>| {
        let mark = buf.len();
        if !root {
            buf.push('/');
        }
        buf.push_str(level);
        if let Some(v) = value {
            f(buf, v);
        }
        if let Some(c) = child {
            walk_all(c, buf, false, f);
        }
        buf.truncate(mark);
    };
    if let Some(v) = node.multi.as_deref() {
        descend("#", None, Some(v));
    }
    if let Some(s) = node.single.as_deref() {
        descend("+", Some(s), None);
    }
    node.children
        .for_each(|level, child| descend(level, Some(child), None));
}

impl<V: fmt::Debug> fmt::Debug for TopicTrie<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut entries = Vec::with_capacity(self.len);
        self.for_each(|filter, v| entries.push((filter.to_owned(), v)));
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        f.debug_map().entries(entries).finish()
    }
}

#[cfg(test)]
pub(crate) mod tests;
