//! What a shard keeps per filter: this shard's subscribers of the filter, which other
//! shards have subscribers (the interest), and shared subscription groups.
//!
//! DESIGN.md draws a local trie and an interest trie; they are one table here
//! ([`crate::topic::FilterTable`]: exact filters in a hash map, wildcard filters in a trie)
//! with both in each entry, so a PUBLISH looks the topic up once to find local receivers and
//! remote shards.

use std::cell::Cell;
use std::sync::Arc;

use super::mesh::ShardId;
use super::slab::Key;
use crate::codec::{MqttStr, QoS, SubscriptionOptions};
use crate::session::ShareGroup;

/// A subscription of a session on this shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalSub {
    /// The subscribing session.
    pub session: Key,
    /// Its options.
    pub options: SubscriptionOptions,
    /// Its Subscription Identifier.
    pub id: Option<u32>,
}

/// A `$share/{name}/{filter}` group on one filter.
#[derive(Debug)]
pub struct SharedGroup {
    /// Share name.
    pub name: MqttStr,
    /// The group's name and filter, as its deliveries carry them.
    pub origin: Arc<ShareGroup>,
    /// Members on this shard.
    pub members: Vec<LocalSub>,
    /// Other shards with members (bit per shard).
    pub remote: u64,
    /// Round-robin cursor over shards.
    pub next_shard: Cell<u32>,
    /// Round-robin cursor over local members.
    pub next_member: Cell<u32>,
}

/// Where a shard sends a group's message it holds ([`SharedGroup::place`]).
#[derive(Debug, PartialEq, Eq)]
pub enum GroupPick<'a> {
    /// To this member on the shard.
    Member(&'a LocalSub),
    /// On to this shard.
    Shard(ShardId),
    /// Nowhere: no shard left that has members and has not had the message.
    Nowhere,
}

impl SharedGroup {
    /// Picks the shard that receives the next message of this group (round robin over
    /// shards with members). `None` when the group is empty everywhere.
    pub fn pick_shard(&self, me: ShardId) -> Option<ShardId> {
        let mut mask = self.remote;
        if !self.members.is_empty() {
            mask |= 1 << me;
        }
        self.next_shard_in(mask)
    }

    /// Round robin over the shards in `mask`.
    fn next_shard_in(&self, mask: u64) -> Option<ShardId> {
        if mask == 0 {
            return None;
        }
        let start = self.next_shard.get();
        for step in 0..64u32 {
            let s = (start + step) % 64;
            if mask & (1 << s) != 0 {
                self.next_shard.set(s + 1);
                return Some(s as ShardId);
            }
        }
        None
    }

    /// The local member next in turn, and whether it is online: round robin over those
    /// `connected` says are online, or over all when none is (a persistent session that is
    /// away still queues QoS 1/2). A member that is away would drop a QoS 0 message and hold
    /// a QoS 1/2 one until it returns, while another member could take it now (§4.8.2).
    /// Moves no cursor ([`SharedGroup::take_member`] does).
    fn choose_member(&self, connected: impl Fn(Key) -> bool) -> Option<(usize, bool)> {
        let n = self.members.len();
        if n == 0 {
            return None;
        }
        let start = self.next_member.get() as usize % n;
        let online = (0..n)
            .map(|step| (start + step) % n)
            .find(|&i| connected(self.members[i].session));
        Some(online.map_or((start, false), |i| (i, true)))
    }

    fn take_member(&self, i: usize) -> &LocalSub {
        self.next_member.set((i + 1) as u32);
        &self.members[i]
    }

    /// Places a group message held by shard `me`, after the shards in `visited` had it and
    /// passed it on: an online member here first; else another shard with members that has
    /// not had it (its members may be online, and the interest this shard has may be older
    /// than a member's leaving there); else a member here that is away. Each shard passes a
    /// message on at most once, so it makes at most one hop per shard.
    pub fn place(
        &self,
        me: ShardId,
        visited: u64,
        connected: impl Fn(Key) -> bool,
    ) -> GroupPick<'_> {
        let chosen = self.choose_member(connected);
        if let Some((i, true)) = chosen {
            return GroupPick::Member(self.take_member(i));
        }
        let untried = self.remote & !visited & !(1 << me);
        if let Some(s) = self.next_shard_in(untried) {
            return GroupPick::Shard(s);
        }
        match chosen {
            Some((i, _)) => GroupPick::Member(self.take_member(i)),
            None => GroupPick::Nowhere,
        }
    }
}

/// The value of one filter in the shard's filter table: 40 bytes (in the exact-filter map's
/// slot, or boxed by the trie where a wildcard filter ends). Every subscribed device has one
/// on each shard (its own on the home shard, the
/// interest on the others), so what only shared subscriptions need is behind one pointer.
#[derive(Debug, Default)]
pub struct FilterEntry {
    /// Ordinary subscriptions of this shard's sessions.
    pub local: Vec<LocalSub>,
    /// Other shards with ordinary subscribers (bit per shard), for wildcard filters; that of
    /// exact filters is kept apart, smaller ([`super::interest::ExactInterest`]).
    pub remote: u64,
    /// Shared subscription groups on this filter; `None` for almost every filter.
    pub shared: Option<Box<SharedGroups>>,
}

/// The shared subscription groups of one filter.
#[derive(Debug)]
pub struct SharedGroups {
    /// The plain filter, to name it when a group's message is forwarded to another shard.
    pub filter: MqttStr,
    /// The groups, by share name.
    pub groups: Vec<SharedGroup>,
}

impl FilterEntry {
    /// An empty entry.
    pub fn new() -> FilterEntry {
        FilterEntry::default()
    }

    /// True when the entry can be removed from the trie.
    pub fn is_empty(&self) -> bool {
        self.local.is_empty() && self.remote == 0 && self.shared.is_none()
    }

    /// The shared subscription groups (none for most filters).
    pub fn groups(&self) -> &[SharedGroup] {
        self.shared.as_deref().map_or(&[], |s| &s.groups)
    }

    /// The group with this name, if any.
    pub fn group(&self, name: &str) -> Option<&SharedGroup> {
        let shared = self.shared.as_deref()?;
        shared.groups.iter().find(|g| g.name.as_str() == name)
    }

    /// The group with this name, if any, to change it.
    pub fn group_named(&mut self, name: &str) -> Option<&mut SharedGroup> {
        let shared = self.shared.as_deref_mut()?;
        shared.groups.iter_mut().find(|g| g.name.as_str() == name)
    }

    /// The group with this name on `filter` (this entry's filter), created if absent.
    pub fn group_mut(&mut self, filter: &str, name: &MqttStr) -> &mut SharedGroup {
        let shared = self.shared.get_or_insert_with(|| {
            Box::new(SharedGroups {
                // Copy: the filter outlives the packet's read buffer.
                filter: MqttStr::from(filter),
                groups: Vec::new(),
            })
        });
        let i = match shared.groups.iter().position(|g| &g.name == name) {
            Some(i) => i,
            None => {
                shared.groups.push(SharedGroup {
                    name: name.clone(),
                    origin: Arc::new(ShareGroup {
                        filter: shared.filter.clone(),
                        name: name.clone(),
                    }),
                    members: Vec::new(),
                    remote: 0,
                    next_shard: Cell::new(0),
                    next_member: Cell::new(0),
                });
                shared.groups.len() - 1
            }
        };
        &mut shared.groups[i]
    }

    /// Drops groups with no member anywhere, and the group list with the last.
    pub fn prune_groups(&mut self) {
        if let Some(shared) = self.shared.as_deref_mut() {
            shared
                .groups
                .retain(|g| !g.members.is_empty() || g.remote != 0);
            if shared.groups.is_empty() {
                self.shared = None;
            }
        }
    }
}

/// A member list grows one entry at a time up to this length, then by doubling.
const SUBSCRIBERS_GROWN_EXACTLY: usize = 4;

/// Inserts or replaces `session`'s subscription in a member list. True if it is new.
pub fn upsert(list: &mut Vec<LocalSub>, sub: LocalSub) -> bool {
    match list.iter_mut().find(|s| s.session == sub.session) {
        Some(existing) => {
            *existing = sub;
            false
        }
        None => {
            // Most filters have one subscriber per shard: no room for four. Past a few, the
            // usual doubling (growing by one each time made 100,000 subscribers of one
            // filter copy the list 100,000 times).
            if list.len() < SUBSCRIBERS_GROWN_EXACTLY {
                list.reserve_exact(1);
            }
            list.push(sub);
            true
        }
    }
}

/// Removes `session` from a member list. True if it was there.
pub fn remove_member(list: &mut Vec<LocalSub>, session: Key) -> bool {
    match list.iter().position(|s| s.session == session) {
        Some(i) => {
            list.swap_remove(i);
            true
        }
        None => false,
    }
}

/// One receiver found while matching a topic, before duplicates are merged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Receiving session.
    pub session: Key,
    /// Highest granted QoS of its matching subscriptions.
    pub qos: QoS,
    /// Retain As Published on any matching subscription.
    pub retain_as_published: bool,
    /// Subscription identifiers of the matching subscriptions.
    pub ids: Vec<u32>,
    /// The shared-subscription group it was chosen for, if any.
    pub share_group: Option<Arc<ShareGroup>>,
}

/// Merges targets of the same session (overlapping subscriptions) into one delivery with
/// the maximum QoS and every subscription identifier [MQTT-3.3.4-2], [MQTT-3.3.4-4].
///
/// Two shared groups that chose the same session stay two deliveries (§4.8.2: each group
/// gets its copy): a delivery names one group, the one it goes back to when the session
/// ends unacknowledged, and a merged one handed the other group's copy to nobody.
pub fn merge_duplicates(targets: &mut Vec<Target>) {
    if targets.len() < 2 {
        return;
    }
    targets.sort_unstable_by_key(|t| t.session);
    let mut w = 0;
    for r in 1..targets.len() {
        let two_groups = targets[r].share_group.is_some() && targets[w].share_group.is_some();
        if targets[r].session == targets[w].session && !two_groups {
            let ids = std::mem::take(&mut targets[r].ids);
            let group = targets[r].share_group.take();
            let (qos, rap) = (targets[r].qos, targets[r].retain_as_published);
            let keep = &mut targets[w];
            keep.qos = keep.qos.max(qos);
            keep.retain_as_published |= rap;
            keep.ids.extend(ids);
            if keep.share_group.is_none() {
                keep.share_group = group;
            }
        } else {
            w += 1;
            targets.swap(w, r);
        }
    }
    targets.truncate(w + 1);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard::slab::Slab;

    #[test]
    fn merge_keeps_max_qos_and_all_ids() {
        let mut slab = Slab::default();
        let a = slab.insert(());
        let b = slab.insert(());
        let t = |s, q, id: Option<u32>| Target {
            session: s,
            qos: q,
            retain_as_published: false,
            ids: id.into_iter().collect(),
            share_group: None,
        };
        let mut v = vec![
            t(a, QoS::AtMostOnce, Some(1)),
            t(b, QoS::AtLeastOnce, None),
            t(a, QoS::ExactlyOnce, Some(2)),
        ];
        merge_duplicates(&mut v);
        assert_eq!(v.len(), 2);
        let ta = v.iter().find(|x| x.session == a).unwrap();
        assert_eq!(ta.qos, QoS::ExactlyOnce);
        let mut ids = ta.ids.clone();
        ids.sort();
        assert_eq!(ids, vec![1, 2]);
    }

    #[test]
    fn two_groups_choosing_one_session_stay_two_deliveries() {
        let mut slab = Slab::default();
        let a = slab.insert(());
        let group = |name: &str| {
            Some(Arc::new(ShareGroup {
                filter: "f".into(),
                name: name.into(),
            }))
        };
        let t = |g: Option<Arc<ShareGroup>>, id: u32| Target {
            session: a,
            qos: QoS::AtLeastOnce,
            retain_as_published: false,
            ids: vec![id],
            share_group: g,
        };
        let mut v = vec![t(group("g1"), 1), t(None, 2), t(group("g2"), 3)];
        merge_duplicates(&mut v);
        let mut groups: Vec<&str> = v
            .iter()
            .map(|t| {
                t.share_group
                    .as_ref()
                    .expect("each names its group")
                    .name
                    .as_str()
            })
            .collect();
        groups.sort_unstable();
        assert_eq!(groups, ["g1", "g2"], "one delivery per group");
        let mut ids: Vec<u32> = v.iter().flat_map(|t| t.ids.clone()).collect();
        ids.sort_unstable();
        assert_eq!(
            ids,
            [1, 2, 3],
            "the ordinary subscription rides on one of them"
        );

        let mut v = vec![t(None, 1), t(group("g1"), 2)];
        merge_duplicates(&mut v);
        assert_eq!(
            v.len(),
            1,
            "an ordinary subscription and one group: one delivery"
        );
        assert!(v[0].share_group.is_some(), "it goes back to the group");
    }

    #[test]
    fn shared_group_round_robin_over_shards() {
        let g = SharedGroup {
            name: "g".into(),
            origin: Arc::new(ShareGroup {
                filter: "f".into(),
                name: "g".into(),
            }),
            members: Vec::new(),
            remote: 0b110,
            next_shard: Cell::new(0),
            next_member: Cell::new(0),
        };
        let picks: Vec<_> = (0..4).map(|_| g.pick_shard(0).unwrap()).collect();
        assert_eq!(picks, vec![1, 2, 1, 2]);
    }

    fn group(members: &[Key], remote: u64) -> SharedGroup {
        SharedGroup {
            name: "g".into(),
            origin: Arc::new(ShareGroup {
                filter: "f".into(),
                name: "g".into(),
            }),
            members: members
                .iter()
                .map(|&session| LocalSub {
                    session,
                    options: SubscriptionOptions::default(),
                    id: None,
                })
                .collect(),
            remote,
            next_shard: Cell::new(0),
            next_member: Cell::new(0),
        }
    }

    /// Shard 1 holds the message; shards 0 and 2 have members too.
    #[test]
    fn place_prefers_an_online_member_then_an_unvisited_shard_then_an_away_member() {
        let mut slab = Slab::default();
        let (away, online) = (slab.insert(()), slab.insert(()));
        let is_online = |k: Key| k == online;
        let g = group(&[away, online], 0b101);
        assert_eq!(g.place(1, 0, is_online), GroupPick::Member(&g.members[1]));

        let g = group(&[away], 0b101);
        assert_eq!(g.place(1, 0, is_online), GroupPick::Shard(0));
        assert_eq!(g.place(1, 0b001, is_online), GroupPick::Shard(2));
        assert_eq!(
            g.place(1, 0b101, is_online),
            GroupPick::Member(&g.members[0]),
            "every other shard had it: the member that is away keeps it"
        );

        let g = group(&[], 0b101);
        assert_eq!(g.place(1, 0b100, is_online), GroupPick::Shard(0));
        assert_eq!(g.place(1, 0b101, is_online), GroupPick::Nowhere);
        assert_eq!(group(&[], 0).place(1, 0, is_online), GroupPick::Nowhere);
    }
}
