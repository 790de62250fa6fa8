//! The shard's side of the mesh: sending messages to peers (or to itself), the outbox the
//! runtime ships in batches, and handling what peers send, in order, holding the rest of a
//! batch while a queue is near its limit.

use super::{stable_hash, MeshMsg, RetainSetCounts, Shard, ShardId};
use crate::codec::MqttStr;

/// A retained query waiting for retained sets it must see (see [`MeshMsg::RetainQuery`]).
#[derive(Debug)]
pub(super) struct ParkedRetainQuery {
    from: ShardId,
    after_retain_sets: RetainSetCounts,
    filter: MqttStr,
    token: u64,
}

/// Most messages a fresh outbox has room for before it grows (see [`Shard::take_outbox`]).
const MAX_OUTBOX_PREALLOCATED: usize = 512;

impl Shard {
    /// Sends a mesh message; to itself it is queued and handled before the current call
    /// returns. A retained query is stamped with the retained sets sent before it.
    pub(super) fn send(&mut self, to: ShardId, mut msg: MeshMsg) {
        if to == self.id {
            self.local_queue.push_back(msg);
            return;
        }
        match &mut msg {
            MeshMsg::RetainSet { .. } => self.retain_sets_sent[to] += 1,
            MeshMsg::RetainQuery {
                after_retain_sets, ..
            } => after_retain_sets[self.id] = self.retain_sets_sent[to],
            _ => {}
        }
        if msg.is_control() {
            self.control_outbox[to].push(msg);
        } else {
            if let MeshMsg::Forward { .. } = msg {
                self.metrics.mesh_forwards += 1;
            }
            self.outbox[to].push(msg);
        }
    }

    /// Sends a message to every other shard.
    pub(super) fn broadcast(&mut self, mut make: impl FnMut() -> MeshMsg) -> usize {
        let mut n = 0;
        for to in 0..self.shards {
            if to != self.id {
                let m = make();
                self.send(to, m);
                n += 1;
            }
        }
        n
    }

    pub(super) fn drain_local(&mut self, now_ms: u64) {
        if self.draining {
            return;
        }
        self.draining = true;
        while let Some(msg) = self.local_queue.pop_front() {
            self.handle_mesh(self.id, msg, now_ms);
        }
        self.draining = false;
    }

    /// Messages waiting for peer `to`'s data lane; the runtime sends them as one batch.
    ///
    /// The batch leaves with its allocation (the peer frees it), so the next one starts with
    /// room for as many messages as this one had: growing from empty by doubling cost a
    /// `realloc` and a copy of every message so far at each step (2% of the broker at full
    /// speed).
    pub fn take_outbox(&mut self, to: ShardId) -> Vec<MeshMsg> {
        let room = self.outbox[to].len().min(MAX_OUTBOX_PREALLOCATED);
        if room == 0 {
            return Vec::new();
        }
        std::mem::replace(&mut self.outbox[to], Vec::with_capacity(room))
    }

    /// Messages waiting for peer `to`'s control lane; the runtime sends them as one batch,
    /// before the data lane's.
    pub fn take_control_outbox(&mut self, to: ShardId) -> Vec<MeshMsg> {
        std::mem::take(&mut self.control_outbox[to])
    }

    /// Handles a batch from peer `from`'s control lane, whole: nothing in it waits for a
    /// queue to drain (see [`MeshMsg::is_control`]).
    pub fn on_mesh_control(&mut self, from: ShardId, batch: Vec<MeshMsg>, now_ms: u64) {
        for msg in batch {
            debug_assert!(msg.is_control());
            self.handle_mesh(from, msg, now_ms);
        }
        self.drain_local(now_ms);
    }

    /// Handles a batch from peer `from`'s data lane.
    ///
    /// Stops when a queue nears its limit: the rest of the batch is held, in order, until
    /// [`Shard::resume_mesh`] (a batch can carry one message from each publisher a peer read
    /// in a turn: delivered whole, it could overflow a queue that is already at its mark).
    /// A batch that finds messages of its peer still held goes behind them.
    pub fn on_mesh(&mut self, from: ShardId, batch: Vec<MeshMsg>, now_ms: u64) {
        if self.held_mesh[from].is_empty() {
            self.deliver_mesh(from, batch.into_iter(), now_ms);
        } else {
            self.held_mesh[from].extend(batch);
            self.resume_mesh(from, now_ms);
        }
    }

    /// Handles `messages` from peer `from` in order until a queue nears its limit; holds the
    /// rest.
    pub(super) fn deliver_mesh(
        &mut self,
        from: ShardId,
        mut messages: impl ExactSizeIterator<Item = MeshMsg>,
        now_ms: u64,
    ) {
        // One message of lookahead: the next forward's message (made on another core) is
        // prefetched while this one is handled.
        let mut next = messages.next();
        while let Some(msg) = next.take() {
            next = messages.next();
            if let Some(MeshMsg::Forward { message, .. }) = &next {
                crate::session::message::prefetch(message);
            }
            self.handle_mesh(from, msg, now_ms);
            if next.is_some() && self.queue_near_limit(now_ms) {
                self.held_mesh[from].extend(next.into_iter().chain(messages));
                break;
            }
        }
        self.drain_local(now_ms);
    }

    /// A retained query: answered once every retained set it names is handled here
    /// (see [`MeshMsg::RetainQuery`]); parked until then.
    fn on_retain_query(
        &mut self,
        from: ShardId,
        filter: MqttStr,
        token: u64,
        after_retain_sets: RetainSetCounts,
        now_ms: u64,
    ) {
        if self.has_handled(&after_retain_sets) {
            self.answer_retain_query(from, &filter, token, now_ms);
        } else {
            self.parked_retain_queries.push(ParkedRetainQuery {
                from,
                after_retain_sets,
                filter,
                token,
            });
        }
    }

    /// True when every retained set of `counts` sent by another shard is handled here.
    fn has_handled(&self, counts: &[u64]) -> bool {
        counts
            .iter()
            .enumerate()
            .all(|(shard, &n)| shard == self.id || self.retain_sets_handled[shard] >= n)
    }

    /// The matching retained messages to `from`, and a fence from each third shard that
    /// set one of them: the reply must not reach the subscriber ahead of that shard's
    /// older forwards (a publisher's older message after its newer retained one).
    fn answer_retain_query(&mut self, from: ShardId, filter: &str, token: u64, now_ms: u64) {
        let (messages, set_by) = self.retained_matching(filter, now_ms);
        let mut fences = 0;
        for shard in 0..self.shards {
            if set_by & (1 << shard) != 0 && shard != from && shard != self.id {
                self.send(
                    shard,
                    MeshMsg::RetainFence {
                        subscriber: from,
                        token,
                    },
                );
                fences += 1;
            }
        }
        self.send(
            from,
            MeshMsg::RetainReply {
                token,
                messages,
                fences,
            },
        );
    }

    /// Answers the parked retained queries whose retained sets are all handled now that one
    /// more from `from` is. Only a query that waited for exactly that set can have become
    /// answerable (one that needed fewer from `from` was waiting for another shard's), so
    /// the others cost one comparison each.
    fn answer_parked_retain_queries(&mut self, from: ShardId, now_ms: u64) {
        let handled = self.retain_sets_handled[from];
        let mut i = 0;
        while i < self.parked_retain_queries.len() {
            let after = &self.parked_retain_queries[i].after_retain_sets;
            if after[from] == handled && self.has_handled(after) {
                let q = self.parked_retain_queries.swap_remove(i);
                self.answer_retain_query(q.from, &q.filter, q.token, now_ms);
            } else {
                i += 1;
            }
        }
    }

    pub(super) fn handle_mesh(&mut self, from: ShardId, msg: MeshMsg, now_ms: u64) {
        match msg {
            MeshMsg::Forward {
                message,
                ordinary,
                groups,
                shared,
            } => self.on_forward(&message, ordinary, &groups, shared, now_ms),
            MeshMsg::Interest {
                filter,
                group,
                add,
                token,
            } => {
                self.apply_interest(from, &filter, group.as_ref(), add);
                if token != 0 {
                    let sent = &self.retain_sets_sent;
                    // With two shards, the asking one and this one are all there is: the
                    // owner of a retained message is one of them.
                    let retain_sets_sent = (self.shards > 2 && sent.iter().any(|&n| n > 0))
                        .then(|| sent.clone().into());
                    self.send(
                        from,
                        MeshMsg::InterestAck {
                            token,
                            retain_sets_sent,
                        },
                    );
                }
            }
            MeshMsg::InterestAck {
                token,
                retain_sets_sent,
            } => self.on_interest_ack(from, token, retain_sets_sent, now_ms),
            MeshMsg::Claim {
                client_id,
                token,
                clean_start,
            } => self.on_claim(from, client_id, token, clean_start),
            MeshMsg::TakeOver {
                client_id,
                previous_generation,
                new_shard,
                token,
                generation,
                clean_start,
            } => self.on_takeover(
                client_id,
                previous_generation,
                new_shard,
                token,
                generation,
                clean_start,
                now_ms,
            ),
            MeshMsg::Claimed { token, generation } => self.on_claimed(token, generation, now_ms),
            MeshMsg::Redirect {
                token,
                generation,
                session_present,
            } => self.on_redirect(from, token, generation, session_present, now_ms),
            MeshMsg::Adopt(adoption) => self.on_adopt(*adoption, now_ms),
            MeshMsg::Release {
                client_id,
                generation,
            } => {
                let id = stable_hash(client_id.as_bytes());
                if let Some(e) = self.registry.get(&id) {
                    if e.generation() == generation {
                        self.registry.remove(&id);
                    }
                }
            }
            MeshMsg::RetainSet { topic, message } => {
                self.set_retained(&topic, message, from);
                if from != self.id {
                    self.retain_sets_handled[from] += 1;
                    if !self.parked_retain_queries.is_empty() {
                        self.answer_parked_retain_queries(from, now_ms);
                    }
                }
            }
            MeshMsg::RetainQuery {
                filter,
                token,
                after_retain_sets,
            } => self.on_retain_query(from, filter, token, after_retain_sets, now_ms),
            MeshMsg::RetainReply {
                token,
                messages,
                fences,
            } => self.on_retain_reply(token, messages, fences, now_ms),
            MeshMsg::RetainFence { subscriber, token } => {
                self.send(subscriber, MeshMsg::RetainFenced { token })
            }
            MeshMsg::RetainFenced { token } => self.on_retain_fenced(token, now_ms),
            MeshMsg::StatsQuery { token } => {
                let mut metrics = Box::new(self.metrics);
                metrics.clients_connected = self.connected_clients() as u64;
                self.send(from, MeshMsg::Stats { token, metrics });
            }
            MeshMsg::Stats { token, metrics } => self.on_stats(token, *metrics, now_ms),
        }
    }
}
