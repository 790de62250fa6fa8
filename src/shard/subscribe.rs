//! SUBSCRIBE and UNSUBSCRIBE: the session's subscriptions, the filter table, interest replication
//! with the SUBACK barrier, and retained messages for new subscriptions.
//!
//! When this shard's first subscriber of a filter appears, every other shard is told
//! (`Interest`) and SUBACK waits for all their acknowledgements: once a client holds SUBACK,
//! a publish from any shard reaches it.
//!
//! Retained messages for a new subscription come from the topic's partition, whose answer
//! must be at least as new as anything the subscriber's shard already passed on, and must
//! reach the client after the older live messages of the same publisher. With two shards
//! the partition is on the subscriber's shard or on the other one, and the lanes' order
//! gives both. With three or more, a third shard's publish can reach the subscriber's
//! shard before its retained set reaches the partition, so a SUBSCRIBE that wants retained
//! messages always asks the other shards first (the acknowledgements name the retained
//! sets each had sent), the partition answers once it handled those sets, and a fence
//! from each third shard that set a message of the answer brings that shard's older
//! forwards in first ([`MeshMsg::RetainFence`]).

use ahash::AHashSet;

use super::deliver::QueueBound;
use super::mesh::{MeshMsg, RetainSetCounts, ShardId};
use super::router::{remove_member, upsert, FilterEntry, LocalSub};
use super::slab::Key;
use super::{Pending, Shard};
use crate::codec::{
    MqttStr, Packet, QoS, ReasonCode, RetainHandling, SubAck, Subscribe, UnsubAck, Unsubscribe,
};
use crate::session::{Delivery, SharedMessage, Subscription};
use crate::topic::{is_exact_filter, parse_shared_filter};

/// A SUBSCRIBE waiting for other shards.
#[derive(Debug)]
pub(super) struct PendingSubscribe {
    conn: Key,
    session: Key,
    acks_left: usize,
    /// Retained replies to wait for.
    retained_left: usize,
    /// Fences promised by the replies so far, less those that came (one may come before
    /// its reply).
    fences_owed: i64,
    /// Retained queries to send once every interest acknowledgement is in: (the owner, or
    /// None for every shard; the filter; the query token).
    queries: Vec<(Option<ShardId>, MqttStr, u64)>,
    /// Per owner the queries go to, the retained sets each acknowledging shard had sent it:
    /// row `owner_rank(owner) * shards`, merged over the acknowledgements (empty while none
    /// sent any). One row per owner asked, not per shard: an exact filter asks one.
    acked_retain_sets: Vec<u64>,
    suback: SubAck,
    subscription_id: Option<u32>,
    retained: Vec<(SharedMessage, QoS)>,
    /// Retained messages were asked for: until they are sent, after the SUBACK, the topics
    /// of live messages delivered to the session are noted in `live_topics`.
    wants_retained: bool,
    /// Topics that a live message reached the session on while this SUBSCRIBE waited. The
    /// retained message of such a topic is not sent: it is that message again or an older
    /// one, and would reach the subscriber after the newer, live one. A set: each live
    /// message and each retained one looks its topic up once.
    live_topics: AHashSet<Box<str>>,
}

/// The most live topics a pending SUBSCRIBE notes (a bound on its memory; beyond it a
/// retained message can again follow a newer live one, counted in `live_topics_unnoted`).
const MAX_LIVE_TOPICS: usize = 1024;

/// The shards a SUBSCRIBE's retained queries go to, a bit each (every shard for a
/// wildcard filter).
fn queried_owners(queries: &[(Option<ShardId>, MqttStr, u64)], shards: usize) -> u64 {
    queries.iter().fold(0, |bits, (owner, _, _)| match owner {
        Some(o) => bits | 1 << o,
        None => bits | (u64::MAX >> (64 - shards)),
    })
}

/// The row of `owner` among the owners `owners` (a bit each), in shard order.
fn owner_rank(owners: u64, owner: ShardId) -> usize {
    (owners & ((1u64 << owner) - 1)).count_ones() as usize
}

/// Splits `$share/{group}/{filter}` (already validated by the codec).
fn split_filter(filter: &str) -> (&str, Option<&str>) {
    match parse_shared_filter(filter) {
        Some(Ok(s)) => (s.filter, Some(s.group)),
        _ => (filter, None),
    }
}

impl Shard {
    pub(super) fn on_subscribe(&mut self, key: Key, s: Subscribe, now_ms: u64) {
        let Some(skey) = self.conns.get(key).and_then(|c| c.session) else {
            return;
        };
        let v5 = self.conns.get(key).is_some_and(|c| c.protocol.is_v5());
        let token = self.token();
        let mut pending = PendingSubscribe {
            conn: key,
            session: skey,
            acks_left: 0,
            retained_left: 0,
            fences_owed: 0,
            queries: Vec::new(),
            acked_retain_sets: Vec::new(),
            suback: SubAck {
                packet_id: s.packet_id,
                ..SubAck::default()
            },
            subscription_id: s.properties.subscription_identifier,
            retained: Vec::new(),
            wants_retained: false,
            live_topics: AHashSet::new(),
        };
        for f in s.filters {
            let code = self.add_subscription(skey, &f.filter, f.options, &mut pending, token, v5);
            pending.suback.reason_codes.push(code);
        }
        // With two shards there is no third one to wait for (see `add_subscription`).
        if pending.acks_left == 0 || self.shards == 2 {
            let queries = std::mem::take(&mut pending.queries);
            self.send_retain_queries(queries, &[]);
        }
        if pending.acks_left == 0 && pending.retained_left == 0 {
            self.complete_subscribe(pending, now_ms);
        } else {
            if let Some(conn) = self.conns.get_mut(key) {
                conn.blocked = true;
            }
            pending.wants_retained = pending.retained_left > 0;
            if pending.wants_retained {
                if let Some(slot) = self.sessions.get_mut(skey) {
                    slot.retained_pending = true;
                }
            }
            if pending.acks_left > 0 {
                self.subscribes_awaiting_acks += 1;
            }
            self.pending
                .insert(token, Pending::Subscribe(Box::new(pending)));
        }
    }

    fn add_subscription(
        &mut self,
        skey: Key,
        filter: &MqttStr,
        options: crate::codec::SubscriptionOptions,
        pending: &mut PendingSubscribe,
        token: u64,
        v5: bool,
    ) -> ReasonCode {
        if !self.topic_within_limits(filter) {
            self.metrics.topic_rejects += 1;
            return ReasonCode::TOPIC_FILTER_INVALID;
        }
        // Without an ACL file the map is empty: skip even the lookup.
        let denied = match (&self.config.auth.acl, self.access.get(&pending.conn)) {
            (Some(acl), Some(client)) => {
                let id = self
                    .sessions
                    .get(skey)
                    .map_or("", |s| &*s.session.client_id);
                !acl.may_subscribe(client, id, filter, &mut self.acl_scratch)
            }
            _ => false,
        };
        if denied {
            // Not every topic it matches is readable: refused whole, so no message needs
            // a check on its way out [MQTT-3.9.3-1 reason codes].
            self.metrics.acl_denials += 1;
            return if v5 {
                ReasonCode::NOT_AUTHORIZED
            } else {
                ReasonCode::UNSPECIFIED_ERROR
            };
        }
        let max_subs = self.config.limits.max_subscriptions_per_client;
        let Some(slot) = self.sessions.get_mut(skey) else {
            return ReasonCode::UNSPECIFIED_ERROR;
        };
        let existed = slot.session.subscriptions.contains_key(filter.as_str());
        if !existed && slot.session.subscriptions.len() >= max_subs {
            self.metrics.subscription_quota_hits += 1;
            return if v5 {
                ReasonCode::QUOTA_EXCEEDED
            } else {
                ReasonCode::UNSPECIFIED_ERROR
            };
        }
        // Copy: the filter outlives the packet's read buffer.
        let filter = MqttStr::from(filter.as_str());
        let sub = Subscription {
            options,
            id: pending.subscription_id,
        };
        slot.session.subscriptions.insert(filter.clone(), sub);
        let (plain, group) = split_filter(&filter);
        let send_retained = group.is_none()
            && match options.retain_handling {
                RetainHandling::OnSubscribe => true,
                RetainHandling::OnNewSubscription => !existed,
                RetainHandling::Never => false,
            };
        // With three shards or more, a third shard's publish may have reached this shard's
        // other subscribers before its retained set reached the owner: the retained
        // queries wait for the acknowledgements, which name the sets sent until then.
        let announce = send_retained && self.shards > 2;
        let acks = self.insert_subscription(skey, &filter, sub, token, announce);
        pending.acks_left += acks;
        if send_retained {
            let qtoken = self.token();
            self.pending.insert(
                qtoken,
                Pending::Retained {
                    subscribe: token,
                    qos: options.qos,
                },
            );
            // With three shards or more, asked once the other shards acknowledged the
            // interest change: what they published before they knew of the subscriber was
            // not forwarded to it, so the answer must include their retained sets of then.
            let plain = MqttStr::from(plain);
            if plain.contains(['+', '#']) {
                pending.queries.push((None, plain, qtoken));
                pending.retained_left += self.shards;
            } else {
                let owner = self.retained_shard(&plain);
                pending.queries.push((Some(owner), plain, qtoken));
                pending.retained_left += 1;
            }
        }
        ReasonCode(options.qos as u8)
    }

    /// Adds a subscription to the filter table; on this shard's first subscriber of the filter (or
    /// group), or when `announce`, tells the other shards. Returns how many
    /// acknowledgements to wait for (`token` 0: none are asked).
    pub(super) fn insert_subscription(
        &mut self,
        skey: Key,
        filter: &MqttStr,
        sub: Subscription,
        token: u64,
        announce: bool,
    ) -> usize {
        let (plain, group) = split_filter(filter);
        let entry = self.filters.entry_or_insert_with(plain, FilterEntry::new);
        let local = LocalSub {
            session: skey,
            options: sub.options,
            id: sub.id,
        };
        let first = match group {
            Some(g) => {
                let g = entry.group_mut(plain, &MqttStr::from(g));
                let was_empty = g.members.is_empty();
                upsert(&mut g.members, local);
                was_empty
            }
            None => {
                let was_empty = entry.local.is_empty();
                upsert(&mut entry.local, local);
                was_empty
            }
        };
        // Not the first: the other shards know of this shard's subscribers already, unless
        // the first one's interest change is still on its way, in which case this SUBACK
        // must wait too (it is sent again: an interest bit is set, not counted). Without
        // that, a second subscriber got its SUBACK before a publisher's shard knew, and
        // missed what was published right after it.
        if (!first && !announce && self.subscribes_awaiting_acks == 0) || self.shards == 1 {
            return 0;
        }
        let plain = MqttStr::from(plain);
        let group = group.map(MqttStr::from);
        self.broadcast(|| MeshMsg::Interest {
            filter: plain.clone(),
            group: group.clone(),
            add: true,
            token,
        })
    }

    /// Removes a session's subscription from the filter table; tells the other shards when this
    /// shard's last subscriber of the filter (or group) left.
    pub(super) fn remove_subscription_entry(&mut self, skey: Key, filter: &MqttStr) {
        let (plain, group) = split_filter(filter);
        let Some(entry) = self.filters.get_mut(plain) else {
            return;
        };
        let last = match group {
            Some(g) => match entry.group_named(g) {
                Some(grp) => remove_member(&mut grp.members, skey) && grp.members.is_empty(),
                None => false,
            },
            None => remove_member(&mut entry.local, skey) && entry.local.is_empty(),
        };
        entry.prune_groups();
        if entry.is_empty() {
            self.filters.remove(plain);
        }
        if last && self.shards > 1 {
            let plain = MqttStr::from(plain);
            let group = group.map(MqttStr::from);
            self.broadcast(|| MeshMsg::Interest {
                filter: plain.clone(),
                group: group.clone(),
                add: false,
                token: 0,
            });
        }
    }

    /// Applies another shard's interest change.
    pub(super) fn apply_interest(
        &mut self,
        from: usize,
        filter: &MqttStr,
        group: Option<&MqttStr>,
        add: bool,
    ) {
        if group.is_none() && is_exact_filter(filter) {
            self.exact_interest.apply(filter, from, add);
            return;
        }
        let bit = 1u64 << from;
        if add {
            let known = self.filters.get(filter).is_some_and(|e| match group {
                Some(g) => e.group(g).is_some_and(|grp| grp.remote & bit != 0),
                None => e.remote & bit != 0,
            });
            if known {
                // Announced again (a SUBSCRIBE that waits for the acknowledgements): nothing
                // changes, and the publishers' remembered routes stay valid.
                return;
            }
            let entry = self.filters.entry_or_insert_with(filter, FilterEntry::new);
            match group {
                Some(g) => entry.group_mut(filter, g).remote |= bit,
                None => entry.remote |= bit,
            }
            return;
        }
        let Some(entry) = self.filters.get_mut(filter) else {
            return;
        };
        match group {
            Some(g) => {
                if let Some(grp) = entry.group_named(g) {
                    grp.remote &= !bit;
                }
                entry.prune_groups();
            }
            None => entry.remote &= !bit,
        }
        if entry.is_empty() {
            self.filters.remove(filter);
        }
    }

    pub(super) fn on_interest_ack(
        &mut self,
        from: ShardId,
        token: u64,
        retain_sets_sent: Option<RetainSetCounts>,
        now_ms: u64,
    ) {
        let shards = self.shards;
        let Some(Pending::Subscribe(p)) = self.pending.get_mut(&token) else {
            return;
        };
        if let (Some(sent), false) = (retain_sets_sent, p.queries.is_empty()) {
            let owners = queried_owners(&p.queries, shards);
            if p.acked_retain_sets.is_empty() {
                p.acked_retain_sets = vec![0; owners.count_ones() as usize * shards];
            }
            for owner in (0..shards).filter(|o| owners & (1 << o) != 0) {
                let acked = &mut p.acked_retain_sets[owner_rank(owners, owner) * shards + from];
                *acked = (*acked).max(sent[owner]);
            }
        }
        if p.acks_left == 1 {
            self.subscribes_awaiting_acks -= 1;
        }
        p.acks_left = p.acks_left.saturating_sub(1);
        if p.acks_left == 0 && !p.queries.is_empty() {
            let queries = std::mem::take(&mut p.queries);
            let acked = std::mem::take(&mut p.acked_retain_sets);
            self.send_retain_queries(queries, &acked);
        }
        self.maybe_complete_subscribe(token, now_ms);
    }

    /// Sends the SUBSCRIBE's retained queries, each stamped with the retained sets the
    /// acknowledging shards had sent its owner (see [`MeshMsg::RetainQuery`]).
    fn send_retain_queries(
        &mut self,
        queries: Vec<(Option<ShardId>, MqttStr, u64)>,
        acked: &[u64],
    ) {
        let shards = self.shards;
        let owners = queried_owners(&queries, shards);
        for (owner, filter, qtoken) in queries {
            let to_ask = match owner {
                Some(o) => o..o + 1,
                None => 0..shards,
            };
            for to in to_ask {
                let after: RetainSetCounts = if acked.is_empty() {
                    vec![0; shards].into()
                } else {
                    let row = owner_rank(owners, to) * shards;
                    acked[row..row + shards].into()
                };
                self.send(
                    to,
                    MeshMsg::RetainQuery {
                        filter: filter.clone(),
                        token: qtoken,
                        after_retain_sets: after, // this shard's own count stamped by `send`
                    },
                );
            }
        }
    }

    pub(super) fn on_retain_reply(
        &mut self,
        qtoken: u64,
        messages: Vec<SharedMessage>,
        fences: u32,
        now_ms: u64,
    ) {
        let Some(Pending::Retained { subscribe, qos }) = self.pending.get(&qtoken) else {
            return;
        };
        let (subscribe, qos) = (*subscribe, *qos);
        let mut done = false;
        if let Some(Pending::Subscribe(p)) = self.pending.get_mut(&subscribe) {
            p.retained.extend(messages.into_iter().map(|m| (m, qos)));
            p.retained_left = p.retained_left.saturating_sub(1);
            p.fences_owed += i64::from(fences);
            done = true;
        }
        // The query token is finished once its subscribe no longer counts on it; remove it
        // when the subscribe completes (a wildcard query has one answer per shard).
        if !done {
            self.pending.remove(&qtoken);
        }
        self.maybe_complete_subscribe(subscribe, now_ms);
    }

    /// A third shard's forwards sent before a retained reply's message are all handled.
    pub(super) fn on_retain_fenced(&mut self, qtoken: u64, now_ms: u64) {
        let Some(Pending::Retained { subscribe, .. }) = self.pending.get(&qtoken) else {
            return;
        };
        let subscribe = *subscribe;
        if let Some(Pending::Subscribe(p)) = self.pending.get_mut(&subscribe) {
            p.fences_owed -= 1;
        }
        self.maybe_complete_subscribe(subscribe, now_ms);
    }

    fn maybe_complete_subscribe(&mut self, token: u64, now_ms: u64) {
        let ready = matches!(
            self.pending.get(&token),
            Some(Pending::Subscribe(p))
                if p.acks_left == 0 && p.retained_left == 0 && p.fences_owed == 0
        );
        if !ready {
            return;
        }
        if let Some(Pending::Subscribe(p)) = self.pending.remove(&token) {
            self.pending.retain(
                |_, v| !matches!(v, Pending::Retained { subscribe, .. } if *subscribe == token),
            );
            if p.wants_retained {
                let skey = p.session;
                let still = self.pending.values().any(
                    |v| matches!(v, Pending::Subscribe(o) if o.session == skey && o.wants_retained),
                );
                if let Some(slot) = self.sessions.get_mut(skey) {
                    slot.retained_pending = still;
                }
            }
            self.complete_subscribe(*p, now_ms);
        }
    }

    /// A live message reached a session whose SUBSCRIBE waits to send retained messages:
    /// its topic is noted in each such SUBSCRIBE.
    pub(super) fn note_live_topic(&mut self, skey: Key, topic: &str) {
        for v in self.pending.values_mut() {
            if let Pending::Subscribe(p) = v {
                if p.session == skey && p.wants_retained && !p.live_topics.contains(topic) {
                    if p.live_topics.len() < MAX_LIVE_TOPICS {
                        p.live_topics.insert(Box::from(topic));
                    } else {
                        self.metrics.live_topics_unnoted += 1;
                    }
                }
            }
        }
    }

    /// SUBACK, then the retained messages [MQTT-3.3.1-9] (RETAIN set), then unblock. A
    /// retained message on a topic that a live message reached the session on meanwhile is
    /// left out: it is that message again, or one it replaced.
    fn complete_subscribe(&mut self, p: PendingSubscribe, now_ms: u64) {
        self.write(p.conn, &Packet::SubAck(p.suback));
        let live = p.live_topics;
        for (message, qos) in p.retained {
            if live.contains(message.topic.as_str()) {
                continue;
            }
            let delivery = Delivery {
                qos: message.qos.min(qos),
                retain: true,
                subscription_ids: p.subscription_id.into_iter().collect(),
                share_group: None,
                message,
            };
            self.deliver_queued(p.session, delivery, now_ms, QueueBound::Whole);
        }
        if let Some(conn) = self.conns.get_mut(p.conn) {
            if !conn.is_closing() {
                conn.blocked = false;
                // Its keep alive runs again from now: what it sent while it waited was not
                // read (the sweep skips a blocked connection).
                conn.last_packet_ms = conn.last_packet_ms.max(now_ms);
            }
        }
        self.notify(p.conn);
    }

    pub(super) fn on_unsubscribe(&mut self, key: Key, u: Unsubscribe) {
        let Some(skey) = self.conns.get(key).and_then(|c| c.session) else {
            return;
        };
        let mut ack = UnsubAck {
            packet_id: u.packet_id,
            ..UnsubAck::default()
        };
        for filter in &u.filters {
            let removed = self
                .sessions
                .get_mut(skey)
                .and_then(|s| s.session.subscriptions.remove_entry(filter.as_str()));
            match removed {
                Some((stored, _)) => {
                    self.remove_subscription_entry(skey, &stored);
                    ack.reason_codes.push(ReasonCode::SUCCESS);
                }
                None => ack.reason_codes.push(ReasonCode::NO_SUBSCRIPTION_EXISTED),
            }
        }
        self.write(key, &Packet::UnsubAck(ack));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_and_their_rows() {
        let exact = |o| (Some(o), MqttStr::from("t"), 0);
        assert_eq!(queried_owners(&[exact(2), exact(0)], 4), 0b101);
        assert_eq!(owner_rank(0b101, 0), 0);
        assert_eq!(owner_rank(0b101, 2), 1);
        let wildcard = (None, MqttStr::from("#"), 0);
        assert_eq!(queried_owners(&[exact(1), wildcard.clone()], 3), 0b111);
        assert_eq!(queried_owners(&[wildcard], 64), u64::MAX);
        assert_eq!(owner_rank(u64::MAX, 63), 63);
    }
}
