//! Routing one publish on the shard it arrived at: the filter lookup (or the route the
//! publisher's session remembered for the same topic), and one forward per shard with
//! interest.

use super::mesh::{GroupForward, MeshMsg, ShardId};
use super::publish::{member_target, target};
use super::router::{merge_duplicates, GroupPick, Target};
use super::slab::Key;
use super::Shard;
use crate::session::SharedMessage;

/// Slots in a shard's route table: enough for every busy publisher of a benchmark or a
/// gateway, small enough not to matter per shard (each slot keeps its allocations).
const ROUTE_SLOTS: usize = 1024;

/// Routes remembered per publisher: a device usually publishes to the same topic again, and
/// the lookup is then skipped. A fixed, direct-mapped table (slot = the publisher's
/// session index), so it costs nothing per connection and a fleet larger than the table
/// just looks up as before. A route is valid while [`Shard::routing_generation`] is
/// unchanged (every subscription or interest change moves it); matches that involve a
/// shared subscription group are never kept, since a group's member is picked anew for
/// every message.
#[derive(Debug, Default)]
pub struct Routes {
    slots: Vec<Route>,
}

/// One remembered route.
#[derive(Debug, Default)]
pub struct Route {
    /// The publishing session (with its slab generation: a reused slot does not match).
    publisher: Option<Key>,
    /// The topic name.
    topic: String,
    /// [`Shard::routing_generation`] when it was computed.
    routing_generation: u64,
    /// Local receivers, merged, without the publisher where No Local excludes it.
    pub targets: Vec<Target>,
    /// Shards with ordinary interest in the topic, one bit each.
    pub remote: u64,
}

impl Routes {
    /// The route `publisher` remembered for `topic`, if still current.
    #[inline]
    pub fn get(&self, publisher: Key, topic: &str, routing_generation: u64) -> Option<&Route> {
        self.slots
            .get(publisher.index() as usize % ROUTE_SLOTS)
            .filter(|r| {
                r.publisher == Some(publisher)
                    && r.routing_generation == routing_generation
                    && r.topic == topic
            })
    }

    /// Remembers a route, replacing whatever held the publisher's slot.
    pub fn remember(
        &mut self,
        publisher: Key,
        topic: &str,
        routing_generation: u64,
        targets: &[Target],
        remote: u64,
    ) {
        if self.slots.is_empty() {
            self.slots.resize_with(ROUTE_SLOTS, Route::default);
        }
        let r = &mut self.slots[publisher.index() as usize % ROUTE_SLOTS];
        r.publisher = Some(publisher);
        r.topic.clear();
        r.topic.push_str(topic);
        r.routing_generation = routing_generation;
        r.targets.clear();
        r.targets.extend_from_slice(targets);
        r.remote = remote;
    }
}

impl Shard {
    /// Moves whenever a route may have changed: the filter table's generation plus the
    /// exact-filter interest's changes (both only grow).
    #[inline]
    pub(super) fn routing_generation(&self) -> u64 {
        self.filters
            .generation()
            .wrapping_add(self.exact_interest.changes())
    }

    /// Looks up a message's receivers: local targets (merged), the shards with
    /// ordinary interest, and the shared-subscription groups to forward. True when any
    /// group matched (the result then depends on each pick and is not cached).
    pub(super) fn match_topic(
        &self,
        message: &SharedMessage,
        publisher: Option<Key>,
        targets: &mut Vec<Target>,
        remote: &mut u64,
        group_forwards: &mut Vec<(ShardId, GroupForward)>,
    ) -> bool {
        let me = self.id;
        let mut merge = false;
        let mut groups_matched = false;
        *remote |= self.exact_interest.shards_for(&message.topic);
        self.filters.for_each_match(&message.topic, |entry| {
            *remote |= entry.remote;
            groups_matched |= entry.shared.is_some();
            if !entry.local.is_empty() {
                merge |= !targets.is_empty();
                for sub in &entry.local {
                    if sub.options.no_local && Some(sub.session) == publisher {
                        continue; // [MQTT-3.8.3-3]
                    }
                    targets.push(target(sub));
                }
            }
            let Some(shared) = entry.shared.as_deref() else {
                return;
            };
            for g in &shared.groups {
                let (to, visited) = match g.pick_shard(me) {
                    Some(s) if s == me => match g.place(me, 0, |k| self.is_connected(k)) {
                        GroupPick::Member(m) => {
                            merge |= !targets.is_empty();
                            targets.push(member_target(m, g));
                            continue;
                        }
                        GroupPick::Shard(s) => (s, 1 << me),
                        GroupPick::Nowhere => continue,
                    },
                    Some(s) => (s, 0),
                    None => continue,
                };
                let forward = GroupForward {
                    filter: shared.filter.clone(),
                    group: g.name.clone(),
                    visited,
                    rounds: 0,
                };
                group_forwards.push((to, forward));
            }
        });
        if merge {
            merge_duplicates(targets);
        }
        groups_matched
    }

    /// One forward per shard with interest: ordinary, or chosen for a group. `shared`: the
    /// message has receivers on more than one shard, or several here.
    pub(super) fn forward(
        &mut self,
        message: &SharedMessage,
        remote: u64,
        group_forwards: &[(ShardId, GroupForward)],
        shared: bool,
    ) {
        let me = self.id;
        for s in 0..self.shards {
            if s == me {
                continue;
            }
            let ordinary = remote & (1 << s) != 0;
            let groups: Vec<GroupForward> = group_forwards
                .iter()
                .filter(|(to, _)| *to == s)
                .map(|(_, g)| g.clone())
                .collect();
            if ordinary || !groups.is_empty() {
                self.send(
                    s,
                    MeshMsg::Forward {
                        message: message.clone(),
                        ordinary,
                        groups,
                        shared,
                    },
                );
            }
        }
    }
}
