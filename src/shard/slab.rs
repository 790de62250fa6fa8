//! A generational slab: O(1) insert/remove with handles that go stale instead of aliasing.
//!
//! Connections and sessions are referred to by handle from tries, timers and pending
//! operations; a handle kept after its slot was reused must not reach the new occupant.

use std::num::NonZeroU32;

/// A handle into a [`Slab`]: slot index plus the slot's generation at insertion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    index: u32,
    /// Never 0, so that `Option<Key>` takes 8 bytes (it is in every connection and session).
    generation: NonZeroU32,
}

impl Key {
    /// The slot index (stable while the entry lives).
    pub fn index(self) -> u32 {
        self.index
    }

    /// The slot's generation when the entry was inserted.
    pub fn generation(self) -> u32 {
        self.generation.get()
    }
}

#[derive(Debug)]
enum Slot<T> {
    Occupied(NonZeroU32, T),
    Vacant(NonZeroU32, Option<u32>),
}

/// Slots per chunk: storage grows a chunk at a time, so a large slab neither keeps a
/// doubling's worth of slack nor copies itself when it grows.
const CHUNK: usize = 1024;

/// Storage with reusable slots and stale-proof keys.
#[derive(Debug)]
pub struct Slab<T> {
    chunks: Vec<Vec<Slot<T>>>,
    free_head: Option<u32>,
    len: usize,
    slots: usize,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            chunks: Vec::new(),
            free_head: None,
            len: 0,
            slots: 0,
        }
    }
}

impl<T> Slab<T> {
    /// Number of occupied slots.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    fn slot(&self, index: u32) -> Option<&Slot<T>> {
        let i = index as usize;
        self.chunks.get(i / CHUNK).and_then(|c| c.get(i % CHUNK))
    }

    #[inline]
    fn slot_mut(&mut self, index: u32) -> Option<&mut Slot<T>> {
        let i = index as usize;
        self.chunks
            .get_mut(i / CHUNK)
            .and_then(|c| c.get_mut(i % CHUNK))
    }

    /// Stores a value and returns its key.
    pub fn insert(&mut self, value: T) -> Key {
        self.len += 1;
        match self.free_head {
            Some(index) => {
                let slot = self
                    .slot_mut(index)
                    .expect("free list points inside the slab");
                let (generation, next) = match slot {
                    Slot::Vacant(g, next) => (g.checked_add(1).unwrap_or(NonZeroU32::MIN), *next),
                    Slot::Occupied(..) => unreachable!("free list points at an occupied slot"),
                };
                *slot = Slot::Occupied(generation, value);
                self.free_head = next;
                Key { index, generation }
            }
            None => {
                let index = u32::try_from(self.slots).expect("slab holds at most 2^32 entries");
                if self.slots % CHUNK == 0 {
                    self.chunks.push(Vec::with_capacity(CHUNK));
                }
                self.chunks
                    .last_mut()
                    .expect("a chunk with room")
                    .push(Slot::Occupied(NonZeroU32::MIN, value));
                self.slots += 1;
                Key {
                    index,
                    generation: NonZeroU32::MIN,
                }
            }
        }
    }

    /// The value for a live key.
    #[inline]
    pub fn get(&self, key: Key) -> Option<&T> {
        match self.slot(key.index) {
            Some(Slot::Occupied(g, v)) if *g == key.generation => Some(v),
            _ => None,
        }
    }

    /// The value for a live key, mutably.
    #[inline]
    pub fn get_mut(&mut self, key: Key) -> Option<&mut T> {
        match self.slot_mut(key.index) {
            Some(Slot::Occupied(g, v)) if *g == key.generation => Some(v),
            _ => None,
        }
    }

    /// Removes and returns the value; the key (and copies of it) go stale.
    pub fn remove(&mut self, key: Key) -> Option<T> {
        let free_head = self.free_head;
        let slot = self.slot_mut(key.index)?;
        match slot {
            Slot::Occupied(g, _) if *g == key.generation => {
                let old = std::mem::replace(slot, Slot::Vacant(key.generation, free_head));
                self.free_head = Some(key.index);
                self.len -= 1;
                match old {
                    Slot::Occupied(_, v) => Some(v),
                    Slot::Vacant(..) => unreachable!(),
                }
            }
            _ => None,
        }
    }

    /// The live key at slot `index`, if any.
    pub fn key_at(&self, index: u32) -> Option<Key> {
        match self.slot(index) {
            Some(Slot::Occupied(g, _)) => Some(Key {
                index,
                generation: *g,
            }),
            _ => None,
        }
    }

    /// Every live key and value.
    pub fn iter(&self) -> impl Iterator<Item = (Key, &T)> {
        self.chunks
            .iter()
            .flatten()
            .enumerate()
            .filter_map(|(i, s)| match s {
                Slot::Occupied(g, v) => Some((
                    Key {
                        index: i as u32,
                        generation: *g,
                    },
                    v,
                )),
                Slot::Vacant(..) => None,
            })
    }

    /// Every live key.
    pub fn keys(&self) -> Vec<Key> {
        self.iter().map(|(k, _)| k).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An idle connection's memory is mostly its two slots: guard their size.
    #[test]
    fn a_connection_and_its_session_take_160_bytes_of_slab() {
        use std::mem::size_of;
        assert_eq!(size_of::<Slot<crate::shard::Conn>>(), 72);
        assert_eq!(size_of::<Slot<crate::shard::SessionSlot>>(), 88);
    }

    #[test]
    fn stale_keys_miss() {
        let mut s = Slab::default();
        let a = s.insert("a");
        assert_eq!(s.remove(a), Some("a"));
        let b = s.insert("b");
        assert_eq!(a.index(), b.index());
        assert_eq!(s.get(a), None);
        assert_eq!(s.get(b), Some(&"b"));
        assert_eq!(s.remove(a), None);
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn grows_across_chunks() {
        let mut s = Slab::default();
        let keys: Vec<_> = (0..3 * CHUNK + 5).map(|i| s.insert(i)).collect();
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(s.get(*k), Some(&i));
        }
        assert_eq!(s.iter().count(), keys.len());
        assert_eq!(s.remove(keys[2000]), Some(2000));
        assert_eq!(s.key_at(keys[2000].index()), None);
        let again = s.insert(7);
        assert_eq!(again.index(), keys[2000].index());
    }
}
