//! Client id → session on this shard, without storing the id again: the table holds only
//! session keys (8 bytes each) and compares against the id kept in the session itself.

use hashbrown::HashTable;

use super::slab::{Key, Slab};
use super::SessionSlot;

/// The shard's index of its sessions by client id.
#[derive(Default)]
pub struct ClientIndex {
    table: HashTable<Key>,
    hasher: ahash::RandomState,
}

impl ClientIndex {
    fn hash(&self, client_id: &str) -> u64 {
        self.hasher.hash_one(client_id)
    }

    /// The session of `client_id`, if it lives here.
    pub fn get(&self, client_id: &str, sessions: &Slab<SessionSlot>) -> Option<Key> {
        self.table
            .find(self.hash(client_id), |&k| {
                sessions
                    .get(k)
                    .is_some_and(|s| &*s.session.client_id == client_id)
            })
            .copied()
    }

    /// Records `key` (already in `sessions`) as the session of its client id; returns the
    /// key it replaced.
    pub fn insert(&mut self, key: Key, sessions: &Slab<SessionSlot>) -> Option<Key> {
        let client_id = &*sessions.get(key)?.session.client_id;
        let hash = self.hash(client_id);
        let eq = |&k: &Key| {
            sessions
                .get(k)
                .is_some_and(|s| &*s.session.client_id == client_id)
        };
        if let Some(slot) = self.table.find_mut(hash, eq) {
            return Some(std::mem::replace(slot, key));
        }
        let hasher = &self.hasher;
        self.table.insert_unique(hash, key, |&k| {
            sessions
                .get(k)
                .map(|s| hasher.hash_one(&*s.session.client_id))
                .unwrap_or(0)
        });
        None
    }

    /// Forgets `key` as the session of `client_id` (no-op if another session took the id).
    pub fn remove(&mut self, client_id: &str, key: Key) {
        if let Ok(entry) = self.table.find_entry(self.hash(client_id), |&k| k == key) {
            entry.remove();
        }
    }
}
