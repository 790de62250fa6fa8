//! The literal children of a trie node, keyed by level string.
//!
//! Almost every node in a real subscription or retained trie has a handful of children
//! (`devices/{id}/telemetry|status|cmd`), while a few have very many (`devices/{id}` under
//! `devices`). A small inline vector searched linearly is the fastest and smallest
//! structure for the first kind; a hash map is the only sane one for the second. This type
//! switches between the two at [`SMALL_MAX`] children, with hysteresis on the way back so a
//! node hovering around the threshold does not convert on every change.

use ahash::AHashMap;

/// Most children kept in the linear vector; one more converts to a hash map. Eight short
/// keys compared by length first is a few cache lines and beats hashing the level.
pub(crate) const SMALL_MAX: usize = 8;

/// A map that shrinks back to a vector once it holds this many children or fewer.
const SHRINK_AT: usize = SMALL_MAX / 2;

/// Literal children of a node. Generic over the node type so the filter trie and the
/// retained-name trie share it.
pub(crate) enum Children<N> {
    /// Up to [`SMALL_MAX`] children, unordered. Empty costs no allocation, which is what
    /// every leaf has.
    Small(Vec<(Box<str>, N)>),
    /// Many children. Boxed so the enum, and hence every node, stays three words.
    Map(Box<AHashMap<Box<str>, N>>),
}

impl<N> Default for Children<N> {
    fn default() -> Self {
        Children::Small(Vec::new())
    }
}

impl<N> Children<N> {
    /// Number of children.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        match self {
            Children::Small(v) => v.len(),
            Children::Map(m) => m.len(),
        }
    }

    /// True when there are no children (a leaf).
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        match self {
            Children::Small(v) => v.is_empty(),
            Children::Map(m) => m.is_empty(),
        }
    }

    /// The child for one level, if any. This is the hot path of every match.
    #[inline]
    pub(crate) fn get(&self, level: &str) -> Option<&N> {
        match self {
            Children::Small(v) => v.iter().find(|(k, _)| &**k == level).map(|(_, n)| n),
            Children::Map(m) => m.get(level),
        }
    }

    /// The child for one level, mutably.
    #[inline]
    pub(crate) fn get_mut(&mut self, level: &str) -> Option<&mut N> {
        match self {
            Children::Small(v) => v.iter_mut().find(|(k, _)| &**k == level).map(|(_, n)| n),
            Children::Map(m) => m.get_mut(level),
        }
    }

    /// The child for `level`, created with `make` if missing. Allocates the key only when
    /// the child is new.
    pub(crate) fn get_or_insert_with(&mut self, level: &str, make: impl FnOnce() -> N) -> &mut N {
        // A full vector that lacks the level becomes a map first.
        if let Children::Small(v) = self {
            if v.len() >= SMALL_MAX && !v.iter().any(|(k, _)| &**k == level) {
                let mut map = AHashMap::with_capacity(v.len() * 2);
                map.extend(v.drain(..));
                *self = Children::Map(Box::new(map));
            }
        }
        match self {
            Children::Small(v) => {
                let i = match v.iter().position(|(k, _)| &**k == level) {
                    Some(i) => i,
                    None => {
                        // Exactly one more: `push` alone grows an empty vector to four
                        // children, and most nodes (`devices/{id}/cmd`) only ever get one.
                        v.reserve_exact(1);
                        v.push((level.into(), make()));
                        v.len() - 1
                    }
                };
                &mut v[i].1
            }
            Children::Map(m) => {
                if !m.contains_key(level) {
                    m.insert(level.into(), make());
                }
                m.get_mut(level).expect("present or just inserted")
            }
        }
    }

    /// Removes the child for `level` and returns it. Converts a map that has become small
    /// back into a vector, and releases spare capacity, so memory follows the live count.
    pub(crate) fn remove(&mut self, level: &str) -> Option<N> {
        match self {
            Children::Small(v) => {
                let i = v.iter().position(|(k, _)| &**k == level)?;
                let (_, n) = v.swap_remove(i);
                if v.is_empty() {
                    *v = Vec::new();
                } else if v.capacity() > 2 * v.len() + 2 {
                    v.shrink_to_fit();
                }
                Some(n)
            }
            Children::Map(m) => {
                let n = m.remove(level)?;
                if m.len() <= SHRINK_AT {
                    let v: Vec<_> = m.drain().collect();
                    *self = Children::Small(v);
                } else if m.capacity() > 4 * m.len() {
                    m.shrink_to_fit();
                }
                Some(n)
            }
        }
    }

    /// Visits every child with its level, in no particular order.
    pub(crate) fn for_each<'a>(&'a self, mut f: impl FnMut(&'a str, &'a N)) {
        match self {
            Children::Small(v) => v.iter().for_each(|(k, n)| f(k, n)),
            Children::Map(m) => m.iter().for_each(|(k, n)| f(k, n)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_both_ways() {
        let mut c: Children<u32> = Children::default();
        for i in 0..100u32 {
            *c.get_or_insert_with(&i.to_string(), || i) += 0;
        }
        assert!(matches!(c, Children::Map(_)));
        assert_eq!(c.len(), 100);
        for i in 0..100u32 {
            assert_eq!(c.get(&i.to_string()), Some(&i));
        }
        for i in 0..98u32 {
            assert_eq!(c.remove(&i.to_string()), Some(i));
        }
        assert!(matches!(c, Children::Small(_)));
        assert_eq!(c.len(), 2);
        assert_eq!(c.get("99"), Some(&99));
        assert_eq!(c.remove("nope"), None);
        c.remove("98");
        c.remove("99");
        assert!(c.is_empty());
    }

    #[test]
    fn three_words() {
        // Every node embeds one; the vector's capacity niche holds the enum tag.
        assert_eq!(
            std::mem::size_of::<Children<u64>>(),
            3 * std::mem::size_of::<usize>()
        );
    }
}
