//! Delivery to one receiver: the in-flight window bounded by its Receive Maximum, the
//! session queue behind it, writing the PUBLISH into the connection's output, redelivery on
//! reconnect, and the acknowledgements (PUBACK, PUBREC, PUBREL, PUBCOMP) that move the window.

use super::slab::Key;
use super::Shard;
use crate::codec::{BarePublish, MqttStr, Packet, PubResponse, Publish, QoS, ReasonCode};
use crate::config::SlowConsumerPolicy;
use crate::session::{Delivery, InflightState, Outbound};

impl Shard {
    /// Hands a message to one session: written now, queued, or dropped by policy.
    pub(super) fn deliver(&mut self, skey: Key, delivery: Delivery, now_ms: u64) {
        self.deliver_queued(skey, delivery, now_ms, QueueBound::MaxQueued);
    }

    /// Like [`Shard::deliver`]; `bound` says whether a QoS 1/2 message beyond
    /// `max_queued_messages` is dropped.
    pub(super) fn deliver_queued(
        &mut self,
        skey: Key,
        delivery: Delivery,
        now_ms: u64,
        bound: QueueBound,
    ) {
        if delivery.message.is_expired(now_ms) {
            self.metrics.expired_drops += 1;
            return;
        }
        let max_outgoing = self.config.limits.max_outgoing_bytes;
        let max_queued = self.config.limits.max_queued_messages;
        let max_inflight = self.config.limits.max_inflight;
        let full_mark = self.full_queue_mark();
        let Some((conn_key, retained_pending)) = self
            .sessions
            .get(skey)
            .map(|s| (s.conn, s.retained_pending))
        else {
            return;
        };
        if retained_pending && bound == QueueBound::MaxQueued {
            self.note_live_topic(skey, &delivery.message.topic);
        }
        // A connection that is closing (DISCONNECT read, output still flushing) takes no more
        // messages: QoS 1/2 wait in the queue for the next one, as if offline.
        let writable = conn_key.filter(|&c| self.conns.get(c).is_some_and(|c| !c.is_closing()));
        let Some(slot) = self.sessions.get_mut(skey) else {
            return;
        };
        if delivery.qos == QoS::AtMostOnce {
            let Some(ckey) = writable else {
                return; // QoS 0 is not kept for offline sessions.
            };
            let over = self
                .conns
                .get(ckey)
                .is_some_and(|c| c.out_len() >= max_outgoing);
            if over {
                match self.config.limits.slow_consumer {
                    SlowConsumerPolicy::Drop => self.metrics.qos0_drops += 1,
                    SlowConsumerPolicy::Disconnect => {
                        self.metrics.slow_consumer_disconnects += 1;
                        self.fail_connection(ckey, ReasonCode::QUOTA_EXCEEDED);
                    }
                }
                return;
            }
            self.write_publish(skey, ckey, &delivery, 0, false, now_ms);
            return;
        }
        let window = slot.session.send_window(max_inflight);
        let outbound = &mut slot.session.outbound;
        if let (Some(ckey), true) = (
            writable,
            outbound.queue.is_empty()
                && outbound.inflight.len() < window
                && !outbound.resend_pending,
        ) {
            let packet_id = outbound.next_packet_id();
            self.send_in_window(skey, ckey, delivery, packet_id, now_ms);
            return;
        }
        if bound == QueueBound::MaxQueued && outbound.queue.len() >= max_queued {
            self.metrics.queue_drops += 1;
            return;
        }
        outbound.queue.push_back(delivery);
        if conn_key.is_some() {
            self.online_queued += 1;
            if outbound.queue.len() == full_mark {
                self.full_sessions.push(skey);
            }
        }
    }

    /// Sends a QoS 1/2 delivery under `packet_id` and records it in the in-flight window.
    fn send_in_window(
        &mut self,
        skey: Key,
        ckey: Key,
        delivery: Delivery,
        packet_id: u16,
        now_ms: u64,
    ) {
        if self.write_publish(skey, ckey, &delivery, packet_id, false, now_ms) {
            if let Some(slot) = self.sessions.get_mut(skey) {
                let outbound = &mut slot.session.outbound;
                if outbound.inflight.is_empty() {
                    outbound.last_progress_ms = now_ms;
                }
                outbound.push_inflight(packet_id, delivery);
            }
        }
    }

    /// Encodes one PUBLISH for a receiver into its connection's output. False when it was
    /// not sent (larger than the client's Maximum Packet Size [MQTT-3.1.2-25]).
    fn write_publish(
        &mut self,
        skey: Key,
        ckey: Key,
        d: &Delivery,
        packet_id: u16,
        dup: bool,
        now_ms: u64,
    ) -> bool {
        let Some(slot) = self.sessions.get(skey) else {
            return false;
        };
        let limits = slot.session.limits;
        let Some(conn) = self.conns.get_mut(ckey) else {
            return false;
        };
        if conn.is_closing() {
            return false;
        }
        let m = &d.message;
        // Most messages carry no properties for this receiver: written from the shared
        // message in place, without a `Publish` (and its topic and payload clones).
        let bare = !conn.protocol.is_v5()
            || (m.properties.is_none()
                && m.expires_at_ms.is_none()
                && d.subscription_ids.is_empty()
                && limits.topic_alias_maximum == 0);
        let start = conn.out_len();
        let mut new_alias = false;
        let encoded = if bare {
            BarePublish {
                dup,
                qos: d.qos,
                retain: d.retain,
                topic: m.topic.as_str(),
                packet_id,
                payload: &m.payload,
            }
            .encode(conn.protocol, conn.out())
        } else {
            let publish;
            (publish, new_alias) =
                full_publish(conn, d, packet_id, dup, limits.topic_alias_maximum, now_ms);
            publish.encode(conn.protocol, conn.out())
        };
        // Encoded once and taken back if it is larger than the client accepts, rather than
        // computing every length twice for each message.
        let oversize = encoded.is_ok() && conn.out_len() - start > limits.max_packet_bytes as usize;
        if encoded.is_err() || oversize {
            conn.out().truncate(start);
            // The client never sees this PUBLISH, so it never learns the alias it set up: a
            // later alias-only PUBLISH would name a topic it does not know (§3.3.2.3.4).
            if new_alias {
                forget_outbound_alias(conn, m.topic.as_str());
            }
            if oversize {
                self.metrics.oversize_drops += 1;
            }
            return false;
        }
        self.metrics.publishes_sent += 1;
        if !conn.ready {
            conn.ready = true;
            self.ready.push(ckey);
        }
        true
    }

    /// Sends again what was unacknowledged, in order, with DUP and the same identifiers
    /// [MQTT-4.4.0-1], then fills the window from the queue. The client may have come back
    /// with a smaller Receive Maximum: PUBLISH packets beyond it wait (`Unsent`) for room
    /// [MQTT-3.3.4-9]. One that no longer fits its Maximum Packet Size is dropped as if
    /// delivered [MQTT-3.1.2-25] instead of holding a place in the window for good.
    pub(super) fn resume_outbound(&mut self, skey: Key, now_ms: u64) {
        let max_inflight = self.config.limits.max_inflight;
        let Some(slot) = self.sessions.get_mut(skey) else {
            return;
        };
        let Some(ckey) = slot.conn else {
            return;
        };
        // Looked at through `Deref` first: `DerefMut` would allocate an empty outbound state.
        if slot.session.outbound.inflight.is_empty() && slot.session.outbound.queue.is_empty() {
            return;
        }
        let window = slot.session.send_window(max_inflight);
        let outbound = &mut slot.session.outbound;
        // Flows past PUBREC hold their place in the window whatever happens below.
        let mut counted = outbound
            .inflight
            .iter()
            .filter(|f| f.state == InflightState::AwaitingComp)
            .count();
        let mut resend = Vec::new();
        let mut held_back = false;
        for f in outbound.inflight.iter_mut() {
            match f.state {
                InflightState::AwaitingComp => resend.push((f.packet_id, None)),
                InflightState::AwaitingAck | InflightState::Unsent if counted < window => {
                    counted += 1;
                    f.state = InflightState::AwaitingAck;
                    resend.push((f.packet_id, Some(f.delivery.clone())));
                }
                InflightState::AwaitingAck | InflightState::Unsent => {
                    f.state = InflightState::Unsent;
                    held_back = true;
                }
            }
        }
        outbound.resend_pending = held_back;
        for (packet_id, delivery) in resend {
            match delivery {
                None => self.write(ckey, &Packet::PubRel(PubResponse::new(packet_id))),
                Some(d) => self.resend(skey, ckey, &d, packet_id, now_ms),
            }
        }
        self.pump_queue(skey, now_ms);
    }

    /// Sends an unacknowledged PUBLISH again (DUP); one the connection takes but that is too
    /// large for the client leaves the window as if delivered [MQTT-3.1.2-25].
    fn resend(&mut self, skey: Key, ckey: Key, d: &Delivery, packet_id: u16, now_ms: u64) {
        if self.write_publish(skey, ckey, d, packet_id, true, now_ms) {
            return;
        }
        if self.conns.get(ckey).is_none_or(|c| c.is_closing()) {
            return; // Kept for the next connection.
        }
        if let Some(slot) = self.sessions.get_mut(skey) {
            if let Some(done) = slot.session.outbound.on_puback(packet_id) {
                self.retired.push(done.message);
            }
        }
    }

    /// Moves queued messages into the window while it has room.
    fn pump_queue(&mut self, skey: Key, now_ms: u64) {
        let max_inflight = self.config.limits.max_inflight;
        let full_mark = self.full_queue_mark();
        if self.sessions.get(skey).is_none_or(|s| {
            s.session.outbound.queue.is_empty() && !s.session.outbound.resend_pending
        }) {
            return; // Nothing queued: do not allocate the outbound state.
        }
        loop {
            let Some(slot) = self.sessions.get_mut(skey) else {
                return;
            };
            let Some(ckey) = slot.conn else {
                return;
            };
            if self.conns.get(ckey).is_none_or(|c| c.is_closing()) {
                return; // Kept for the next connection.
            }
            let window = slot.session.send_window(max_inflight);
            let outbound = &mut slot.session.outbound;
            // What waits to be sent again goes first, as the window frees.
            if let Some((index, counted)) = outbound.next_unsent() {
                if counted >= window {
                    return;
                }
                let f = &mut outbound.inflight[index];
                f.state = InflightState::AwaitingAck;
                let (packet_id, delivery) = (f.packet_id, f.delivery.clone());
                self.resend(skey, ckey, &delivery, packet_id, now_ms);
                continue;
            }
            if outbound.inflight.len() >= window {
                return;
            }
            let Some(delivery) = outbound.queue.pop_front() else {
                return;
            };
            // The next one goes out at the next acknowledgement, usually within this input.
            if let Some(next) = outbound.queue.front() {
                crate::session::message::prefetch(&next.message);
            }
            let left_full = outbound.queue.len() + 1 == full_mark;
            self.online_queued = self.online_queued.saturating_sub(1);
            if left_full {
                self.leave_full(skey);
            }
            if delivery.message.is_expired(now_ms) {
                self.metrics.expired_drops += 1;
                continue;
            }
            let Some(slot) = self.sessions.get_mut(skey) else {
                return;
            };
            let packet_id = slot.session.outbound.next_packet_id();
            self.send_in_window(skey, ckey, delivery, packet_id, now_ms);
        }
    }

    fn session_of(&self, key: Key) -> Option<Key> {
        self.conns.get(key).and_then(|c| c.session)
    }

    pub(super) fn on_puback(&mut self, key: Key, packet_id: u16, now_ms: u64) {
        self.end_flow(key, now_ms, |outbound| outbound.on_puback(packet_id));
    }

    /// The last acknowledgement of a flow (PUBACK, PUBCOMP) arrived: `finish` takes the
    /// delivery out of the window, its message retires, and the queue moves up.
    #[inline]
    fn end_flow(
        &mut self,
        key: Key,
        now_ms: u64,
        finish: impl FnOnce(&mut Outbound) -> Option<Delivery>,
    ) {
        let Some(skey) = self.session_of(key) else {
            return;
        };
        if let Some(slot) = self.sessions.get_mut(skey) {
            slot.session.outbound.last_progress_ms = now_ms;
            if let Some(done) = finish(&mut slot.session.outbound) {
                self.retired.push(done.message);
            }
        }
        self.pump_queue(skey, now_ms);
    }

    pub(super) fn on_pubrec(&mut self, key: Key, ack: PubResponse, now_ms: u64) {
        let Some(skey) = self.session_of(key) else {
            return;
        };
        let Some(slot) = self.sessions.get_mut(skey) else {
            return;
        };
        if ack.reason_code.is_error() {
            // The receiver refused the message: the flow ends here (MQTT 5 §4.3.3).
            slot.session.outbound.abandon(ack.packet_id);
            self.pump_queue(skey, now_ms);
            return;
        }
        slot.session.outbound.last_progress_ms = now_ms;
        let known = slot.session.outbound.on_pubrec(ack.packet_id);
        let mut rel = PubResponse::new(ack.packet_id);
        if !known {
            rel.reason_code = ReasonCode::PACKET_IDENTIFIER_NOT_FOUND;
        }
        self.write(key, &Packet::PubRel(rel));
    }

    pub(super) fn on_pubrel(&mut self, key: Key, packet_id: u16) {
        let Some(skey) = self.session_of(key) else {
            return;
        };
        let Some(slot) = self.sessions.get_mut(skey) else {
            return;
        };
        let received = &mut slot.session.inbound_qos2;
        let mut comp = PubResponse::new(packet_id);
        if !received.remove(packet_id) {
            comp.reason_code = ReasonCode::PACKET_IDENTIFIER_NOT_FOUND;
        }
        self.write(key, &Packet::PubComp(comp));
    }

    pub(super) fn on_pubcomp(&mut self, key: Key, packet_id: u16, now_ms: u64) {
        self.end_flow(key, now_ms, |outbound| outbound.on_pubcomp(packet_id));
    }
}

/// Whether a QoS 1/2 delivery may be dropped for a full queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum QueueBound {
    /// Live traffic: dropped beyond `max_queued_messages` (`queue_drops`).
    MaxQueued,
    /// The retained messages a new subscription brings: all of them were gathered for its
    /// SUBACK already, so queueing them holds no more than that, and each one is the current
    /// state of its topic (dropping one would lose it for this subscriber until republished).
    Whole,
}

/// The PUBLISH for an MQTT 5 receiver whose message has properties for it: the message's
/// own, the remaining expiry [MQTT-3.3.2-6], its subscription identifiers, and a Topic
/// Alias once the receiver allows them. True beside it when this PUBLISH sets up a new alias.
fn full_publish(
    conn: &mut super::Conn,
    d: &Delivery,
    packet_id: u16,
    dup: bool,
    topic_alias_maximum: u16,
    now_ms: u64,
) -> (Publish, bool) {
    let m = &d.message;
    let mut publish = Publish {
        dup,
        qos: d.qos,
        retain: d.retain,
        topic: m.topic.clone(),
        packet_id,
        properties: Default::default(),
        payload: m.payload.clone(),
    };
    if let Some(props) = &m.properties {
        publish.properties = (**props).clone();
    }
    publish.properties.message_expiry_interval = m.remaining_expiry_secs(now_ms);
    publish.properties.subscription_identifiers = d.subscription_ids.clone();
    let mut new_alias = false;
    if topic_alias_maximum > 0 {
        let aliases = &mut conn.aliases.get_or_insert_with(Default::default).outbound;
        match aliases.get(m.topic.as_str()) {
            Some(&alias) => {
                publish.properties.topic_alias = Some(alias);
                publish.topic = MqttStr::default();
            }
            None if aliases.len() < topic_alias_maximum as usize => {
                let alias = aliases.len() as u16 + 1;
                aliases.insert(MqttStr::from(m.topic.as_str()), alias);
                publish.properties.topic_alias = Some(alias);
                new_alias = true;
            }
            None => {}
        }
    }
    (publish, new_alias)
}

/// Takes back the alias just given to `topic` (the newest, so the next one reuses its number).
fn forget_outbound_alias(conn: &mut super::Conn, topic: &str) {
    if let Some(aliases) = conn.aliases.as_mut() {
        aliases.outbound.remove(topic);
    }
}
