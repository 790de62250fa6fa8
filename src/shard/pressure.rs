//! Backpressure: when the shard stops reading publishers, because the mesh to a peer is
//! congested or its connected subscribers have too much queued.

use super::{Key, SessionSlot, Shard, STALLED_SUBSCRIBER_MS};

/// How long a sum of the queues not waited for stays good (ms): it is redone only while the
/// shard is over `backpressure_queued_messages`, by a walk over its sessions.
const RECOUNT_MS: u64 = 100;

impl Shard {
    /// Messages queued for all peers: above the high-water mark the runtime stops reading
    /// from client sockets (backpressure).
    pub fn outbox_len(&self) -> usize {
        self.outbox.iter().map(Vec::len).sum()
    }

    /// True when the outbox is over its high-water mark.
    pub fn mesh_congested(&self) -> bool {
        self.outbox_len() > self.config.mesh.outbox_high_water
    }

    /// True when subscribers the shard waits for have more queued messages than
    /// `limits.backpressure_queued_messages` together, or one of them has half of
    /// `max_queued_messages`: the runtime then stops reading connections that only publish
    /// (and stops taking the mesh's forwards) until acknowledgements drain the queues —
    /// publishers are slowed instead of messages being dropped.
    ///
    /// Queues the shard does not wait for (a subscriber that stopped acknowledging, or one
    /// that would hold other receivers back) do not count: pausing publishers would not
    /// drain them. Counting them, twelve clients that subscribed to `#` and never
    /// acknowledged stopped every publisher of the shard for good.
    pub fn delivery_pressure(&self, now_ms: u64) -> bool {
        self.waits_for_subscriber(0, now_ms) || self.waited_queues_over_limit(now_ms)
    }

    fn waited_queues_over_limit(&self, now_ms: u64) -> bool {
        let limit = self.config.limits.backpressure_queued_messages;
        if self.online_queued <= limit {
            return false;
        }
        let not_waited = match self.not_waited_queued.get() {
            Some((at_ms, sum)) if now_ms < at_ms + RECOUNT_MS => sum,
            _ => {
                let sum = self
                    .sessions
                    .iter()
                    .filter(|(k, s)| s.conn.is_some() && !self.is_waited_for(*k, s, now_ms))
                    .map(|(_, s)| s.session.outbound.queue.len())
                    .sum();
                self.not_waited_queued.set(Some((now_ms, sum)));
                sum
            }
        };
        self.online_queued.saturating_sub(not_waited) > limit
    }

    /// True when a connected subscriber with at least `queued` messages queued (and at
    /// least the mark) is waited for.
    fn waits_for_subscriber(&self, queued: usize, now_ms: u64) -> bool {
        self.full_sessions.iter().any(|&k| {
            self.sessions.get(k).is_some_and(|s| {
                s.session.outbound.queue.len() >= queued && self.is_waited_for(k, s, now_ms)
            })
        })
    }

    /// True when the shard slows publishers for this session's queue to drain: it still
    /// acknowledges, and its messages hold no other receiver back. One that stopped is not
    /// waited for: its queue fills and drops by policy instead of stalling every publisher
    /// of the shard.
    fn is_waited_for(&self, key: Key, slot: &SessionSlot, now_ms: u64) -> bool {
        slot.session.outbound.last_progress_ms + STALLED_SUBSCRIBER_MS > now_ms
            && !self.unwaited.contains(&key)
    }

    /// A message for `session` also went to other receivers. If the shard waits for
    /// `session` (its queue is at the mark), waiting would hold all of those receivers back to
    /// its pace: one dashboard subscribed to `#` and acknowledging 100 messages a second cut
    /// ten publishers' 9,864 msg/s to 320, for every subscriber. So from now on it is not
    /// waited for: its queue fills and drops by policy (`queue_drops`), as a stalled one's
    /// does, until it is back under the mark. A subscriber that is the only receiver of its
    /// messages (a fan-in) is still waited for, and loses nothing.
    pub(super) fn note_shared_delivery(&mut self, session: Key) {
        if self.full_sessions.contains(&session) && !self.unwaited.contains(&session) {
            self.unwaited.push(session);
            self.metrics.slow_subscribers += 1;
            tracing::debug!(
                shard = self.id,
                "a subscriber behind holds others back: not waited for"
            );
        }
    }

    /// `session` is no longer a full connected session (under the mark, or offline).
    pub(super) fn leave_full(&mut self, session: Key) {
        self.full_sessions.retain(|&k| k != session);
        self.unwaited.retain(|&k| k != session);
    }

    /// Queue length from which a connected session counts as backed up (half the limit, so
    /// the messages already read from publishers still fit).
    pub(super) fn full_queue_mark(&self) -> usize {
        (self.config.limits.max_queued_messages / 2).max(1)
    }

    /// Accounts a connected session's queue joining or leaving the online set.
    pub(super) fn account_online_queue(&mut self, session: Key, queued: usize, joining: bool) {
        if joining {
            self.online_queued += queued;
            if queued >= self.full_queue_mark() {
                self.full_sessions.push(session);
            }
        } else {
            self.online_queued = self.online_queued.saturating_sub(queued);
            self.leave_full(session);
        }
    }

    /// True when the connection's client owes us acknowledgements (it must be read for the
    /// queues to drain, whatever the pressure).
    pub fn awaits_acks(&self, key: Key) -> bool {
        self.conns
            .get(key)
            .and_then(|c| c.session)
            .and_then(|s| self.sessions.get(s))
            .is_some_and(|s| !s.session.outbound.inflight.is_empty())
    }

    /// True when the runtime may hold back what this connection sent while the shard is under
    /// pressure: an active client that owes us no acknowledgements (a publisher). Clients
    /// still connecting are answered, and acknowledging ones are read, whatever the pressure.
    pub fn may_hold_input(&self, key: Key) -> bool {
        self.conns
            .get(key)
            .is_some_and(|c| matches!(c.state, super::ConnState::Active))
            && !self.awaits_acks(key)
    }

    /// Keeps bytes received from `key` undecoded, behind any input it already kept, until the
    /// runtime lets it be processed: a receive that was armed before the shard came under
    /// pressure must not add to queues that are already full, and a client whose output is
    /// backed up is written to first. The client counts as heard from once the bytes
    /// complete a packet ([MQTT-3.1.2-24] is about the Control Packets it sent, not about
    /// when we decode them): bytes trickled one at a time into a packet that never ends
    /// keep no client alive, held or not.
    pub fn hold_input(&mut self, key: Key, data: &[u8], now_ms: u64) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let mut input = conn.take_input();
        let complete_before = complete_frames(&input);
        input.extend_from_slice(data);
        if complete_frames(&input) > complete_before {
            conn.last_packet_ms = now_ms;
        }
        conn.set_input(input);
    }

    /// The runtime stopped reading `key` (backpressure). Until [`Shard::resume_input`], the
    /// keep alive sweep does not blame the client for a silence that is the broker's: its
    /// PINGREQs are in the socket, unread [MQTT-3.1.2-24].
    pub fn pause_input(&mut self, key: Key) {
        if let Some(conn) = self.conns.get_mut(key) {
            conn.input_paused = true;
        }
    }

    /// The runtime reads `key` again: its keep alive deadline runs from now, as if it had
    /// just been heard from (whatever it sent while paused is read next).
    pub fn resume_input(&mut self, key: Key, now_ms: u64) {
        if let Some(conn) = self.conns.get_mut(key) {
            if std::mem::take(&mut conn.input_paused) {
                conn.last_packet_ms = conn.last_packet_ms.max(now_ms);
            }
        }
    }

    /// True when a connected subscriber that keeps acknowledging has a queue within a
    /// quarter of `max_queued_messages`: [`Shard::on_mesh`] then holds the rest of a batch.
    /// (At the first mark, half the limit, the shard only stops taking new batches: cutting
    /// batches there delayed every other subscriber's forwards and cost p2p QoS 1 a fifth of
    /// its throughput.)
    pub(super) fn queue_near_limit(&self, now_ms: u64) -> bool {
        let max_queued = self.config.limits.max_queued_messages;
        self.waits_for_subscriber(max_queued - max_queued / 4, now_ms)
    }

    /// Takes up what [`Shard::on_mesh`] held from peer `from`, until a queue is near its limit
    /// again. True when nothing from that peer is held any more (its next batch may be taken).
    pub fn resume_mesh(&mut self, from: usize, now_ms: u64) -> bool {
        let held = std::mem::take(&mut self.held_mesh[from]);
        if !held.is_empty() {
            self.deliver_mesh(from, held.into_iter(), now_ms);
        }
        self.held_mesh[from].is_empty()
    }

    /// True while some peer's messages are held (the runtime must come back for them).
    pub fn holds_mesh(&self) -> bool {
        self.held_mesh.iter().any(|held| !held.is_empty())
    }

    /// Counts a mesh backpressure episode.
    pub fn note_backpressure(&mut self) {
        self.metrics.mesh_backpressure += 1;
    }

    /// Counts a TLS connection the runtime closed for a handshake or record failure.
    pub fn note_tls_failure(&mut self) {
        self.metrics.tls_failures += 1;
    }

    /// Counts a WebSocket connection the runtime closed for its request or a frame.
    pub fn note_websocket_failure(&mut self) {
        self.metrics.websocket_failures += 1;
    }

    /// Counts a closing connection shut down with its output unsent.
    pub fn note_close_timeout(&mut self) {
        self.metrics.close_timeouts += 1;
    }

    /// Counts a TLS handshake receive left for a later loop turn.
    pub fn note_tls_handshake_deferred(&mut self) {
        self.metrics.tls_handshakes_deferred += 1;
    }

    /// Counts a delivery backpressure episode.
    pub fn note_delivery_pressure(&mut self) {
        self.metrics.delivery_backpressure += 1;
    }
}

/// How many whole MQTT frames (fixed header, Remaining Length, body) `input` starts with;
/// a malformed length ends the count (the decoder reports it when it gets there).
fn complete_frames(mut input: &[u8]) -> usize {
    let mut frames = 0;
    while let Ok(Some(frame)) = crate::codec::parse_frame_header(input, usize::MAX) {
        frames += 1;
        input = &input[frame.frame_len()..];
    }
    frames
}

#[cfg(test)]
mod tests {
    use super::complete_frames;

    #[test]
    fn whole_frames_are_counted_and_a_partial_one_is_not() {
        assert_eq!(complete_frames(&[]), 0);
        assert_eq!(complete_frames(&[0xC0]), 0, "a PINGREQ's first byte only");
        assert_eq!(complete_frames(&[0xC0, 0x00]), 1, "PINGREQ");
        assert_eq!(
            complete_frames(&[0xC0, 0x00, 0x40, 0x02, 0x00]),
            1,
            "then half a PUBACK"
        );
        assert_eq!(complete_frames(&[0xC0, 0x00, 0x40, 0x02, 0x00, 0x01]), 2);
        let mut long = vec![0x30, 0x80, 0x01];
        assert_eq!(
            complete_frames(&long),
            0,
            "a 128-byte PUBLISH, its body not yet here"
        );
        long.resize(3 + 128, 0);
        assert_eq!(complete_frames(&long), 1);
        assert_eq!(
            complete_frames(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]),
            0,
            "malformed"
        );
    }
}
