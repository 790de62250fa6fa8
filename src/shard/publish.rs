//! PUBLISH from clients and peers: the client's QoS flow on arrival, routing through the
//! filter table and the mesh to every receiver (handed over in `deliver.rs`), and retained messages.
use bytes::Bytes;
use std::sync::Arc;

use super::mesh::{GroupForward, MeshMsg, ShardId, MAX_GROUP_ROUNDS};
use super::router::{merge_duplicates, GroupPick, SharedGroup, Target};
use super::slab::Key;
use super::Shard;
use crate::codec::{MqttStr, Packet, PubResponse, Publish, QoS, ReasonCode};
use crate::session::{Delivery, Message, SharedMessage};

impl Shard {
    /// True when a topic name or filter is within `max_topic_bytes` and `max_topic_levels`.
    pub(super) fn topic_within_limits(&self, topic: &str) -> bool {
        let l = &self.config.limits;
        topic.len() <= l.max_topic_bytes
            && topic.bytes().filter(|&b| b == b'/').count() < l.max_topic_levels
    }

    /// True when the session has a connection: a shared group's message goes to such a
    /// member first.
    pub(super) fn is_connected(&self, session: Key) -> bool {
        self.sessions.get(session).is_some_and(|s| s.conn.is_some())
    }

    pub(super) fn on_publish(&mut self, key: Key, mut p: Publish, now_ms: u64) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let Some(skey) = conn.session else {
            return;
        };
        // Topic Alias, client → broker (MQTT 5 §3.3.2.3.4).
        if let Some(alias) = p.properties.topic_alias.take() {
            if alias > self.config.limits.topic_alias_maximum {
                self.fail_connection(key, ReasonCode::TOPIC_ALIAS_INVALID);
                return;
            }
            let slot = alias as usize - 1;
            if p.topic.is_empty() {
                let known = conn.aliases.as_ref().and_then(|a| a.inbound.get(slot));
                match known.and_then(|t| t.clone()) {
                    Some(topic) => p.topic = topic,
                    None => {
                        // [MQTT-3.3.2-7]... an unknown alias without a topic.
                        self.fail_connection(key, ReasonCode::PROTOCOL_ERROR);
                        return;
                    }
                }
            } else {
                let aliases = conn.aliases.get_or_insert_with(Default::default);
                if aliases.inbound.is_empty() {
                    aliases.inbound = vec![None; self.config.limits.topic_alias_maximum as usize];
                }
                // Copy: an alias lives as long as the connection, not the read buffer.
                aliases.inbound[slot] = Some(MqttStr::from(p.topic.as_str()));
            }
        }
        if !p.properties.subscription_identifiers.is_empty() {
            // [MQTT-3.3.4-6]: only the server puts Subscription Identifiers in a PUBLISH.
            self.fail_connection(key, ReasonCode::PROTOCOL_ERROR);
            return;
        }
        if !self.topic_within_limits(&p.topic) {
            self.metrics.topic_rejects += 1;
            self.fail_connection(key, ReasonCode::TOPIC_NAME_INVALID);
            return;
        }
        self.metrics.publishes_received += 1;
        // Without an ACL file the map is empty: skip even the lookup. `$SYS` is the
        // broker's own.
        let denied = match (&self.config.auth.acl, self.access.get(&key)) {
            (Some(acl), Some(client)) => {
                let id = self
                    .sessions
                    .get(skey)
                    .map_or("", |s| &*s.session.client_id);
                !acl.may_publish(client, id, &p.topic, &mut self.acl_scratch)
            }
            _ => false,
        };
        if denied || super::is_sys_topic(&p.topic) {
            self.refuse_publish(key, &p);
            return;
        }
        match p.qos {
            QoS::AtMostOnce => self.publish_from_client(skey, p, now_ms),
            QoS::AtLeastOnce => {
                let id = p.packet_id;
                self.publish_from_client(skey, p, now_ms);
                self.write(key, &Packet::PubAck(PubResponse::new(id)));
            }
            QoS::ExactlyOnce => {
                let id = p.packet_id;
                // Only MQTT 5 announces a Receive Maximum; a 3.1.1 client is bounded by the
                // packet identifier space alone.
                let max = if self.conns.get(key).is_some_and(|c| c.protocol.is_v5()) {
                    self.config.limits.max_inflight as usize
                } else {
                    usize::from(u16::MAX)
                };
                let Some(slot) = self.sessions.get_mut(skey) else {
                    return;
                };
                let received = &mut slot.session.inbound_qos2;
                if !received.contains(id) {
                    if received.len() >= max {
                        // [MQTT-3.3.4-9]: more unacknowledged QoS 2 than Receive Maximum.
                        self.metrics.receive_maximum_exceeded += 1;
                        self.fail_connection(key, ReasonCode::RECEIVE_MAXIMUM_EXCEEDED);
                        return;
                    }
                    received.insert(id);
                    self.publish_from_client(skey, p, now_ms);
                }
                // A duplicate is acknowledged again but not routed again: exactly once.
                self.write(key, &Packet::PubRec(PubResponse::new(id)));
            }
        }
    }

    /// A PUBLISH that `auth.acl_file` does not let this client send, or one to `$SYS`:
    /// MQTT 5 gets PUBACK or PUBREC 0x87 Not authorized [MQTT-3.4.2-1]; 3.1.1 has no such
    /// code, so it gets the usual acknowledgement while the message is dropped (as on
    /// mosquitto), and QoS 0 is just dropped. Nobody receives it, retained or not.
    fn refuse_publish(&mut self, key: Key, p: &Publish) {
        self.metrics.acl_denials += 1;
        let v5 = self.conns.get(key).is_some_and(|c| c.protocol.is_v5());
        let mut ack = PubResponse::new(p.packet_id);
        if v5 {
            ack.reason_code = ReasonCode::NOT_AUTHORIZED;
        }
        match p.qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => self.write(key, &Packet::PubAck(ack)),
            // Not recorded as received. An MQTT 5 client ends the exchange at a PUBREC with
            // an error code; a 3.1.1 client's PUBREL gets its PUBCOMP as for any other id.
            QoS::ExactlyOnce => self.write(key, &Packet::PubRec(ack)),
        }
    }

    fn publish_from_client(&mut self, publisher: Key, p: Publish, now_ms: u64) {
        let mut props = p.properties;
        let expires_at_ms = props
            .message_expiry_interval
            .take()
            .map(|s| now_ms + s as u64 * 1000);
        let message = Arc::new(Message {
            topic: p.topic,
            payload: p.payload,
            qos: p.qos,
            retain: p.retain,
            properties: (!props.is_empty()).then(|| Arc::new(props)),
            expires_at_ms,
        });
        self.publish_message(message, Some(publisher), now_ms);
    }

    /// Routes a message from a client (or a Will): retained partition, local subscribers,
    /// and one forward per interested shard.
    pub(super) fn publish_message(
        &mut self,
        message: SharedMessage,
        publisher: Option<Key>,
        now_ms: u64,
    ) {
        if message.retain {
            let owner = self.retained_shard(&message.topic);
            let stored = (!message.payload.is_empty()).then(|| compact(&message));
            self.send(
                owner,
                MeshMsg::RetainSet {
                    topic: MqttStr::from(message.topic.as_str()),
                    message: stored,
                },
            );
        }
        let mut targets = std::mem::take(&mut self.scratch);
        let mut remote: u64 = 0;
        let mut group_forwards: Vec<(ShardId, GroupForward)> = Vec::new();
        let generation = self.routing_generation();
        let cached = publisher.and_then(|p| self.routes.get(p, &message.topic, generation));
        if let Some(route) = cached {
            targets.extend(route.targets.iter().cloned());
            remote = route.remote;
        } else {
            let groups_matched = self.match_topic(
                &message,
                publisher,
                &mut targets,
                &mut remote,
                &mut group_forwards,
            );
            if let (Some(p), false) = (publisher, groups_matched) {
                self.routes
                    .remember(p, &message.topic, generation, &targets, remote);
            }
        }
        // Counted per shard: a subscriber behind must not hold back the other receivers.
        let receivers = targets.len() + remote.count_ones() as usize + group_forwards.len();
        let shared = receivers > 1;
        for t in targets.drain(..) {
            let session = t.session;
            self.deliver_target(t, &message, now_ms);
            if shared && !self.full_sessions.is_empty() {
                self.note_shared_delivery(session);
            }
        }
        self.scratch = targets;
        self.forward(&message, remote, &group_forwards, shared);
    }

    /// A publish forwarded by another shard: deliver to this shard's subscribers only.
    /// `shared`: it also went to receivers elsewhere.
    pub(super) fn on_forward(
        &mut self,
        message: &SharedMessage,
        ordinary: bool,
        groups: &[GroupForward],
        shared: bool,
        now_ms: u64,
    ) {
        let mut targets = std::mem::take(&mut self.scratch);
        if ordinary {
            let mut merge = false;
            self.filters.for_each_match(&message.topic, |entry| {
                if !entry.local.is_empty() {
                    merge |= !targets.is_empty();
                    targets.extend(entry.local.iter().map(target));
                }
            });
            if merge {
                merge_duplicates(&mut targets);
            }
        }
        let mut passed_on: Vec<(ShardId, GroupForward)> = Vec::new();
        for forward in groups {
            match self.place_in_group(&forward.filter, &forward.group, forward.visited) {
                Placement::Member(t) => targets.push(t),
                Placement::Shard(to) => {
                    let visited = forward.visited | 1 << self.id;
                    passed_on.push((
                        to,
                        GroupForward {
                            visited,
                            ..forward.clone()
                        },
                    ));
                }
                // Every shard it knew members on had it and none has one now: they moved
                // while it was on its way. A shard with members now gets it again (another
                // round, bounded); with none anywhere, the group's last member left and no
                // session keeps it.
                Placement::Nowhere => match self.place_in_group(&forward.filter, &forward.group, 0)
                {
                    Placement::Shard(to) if forward.rounds < MAX_GROUP_ROUNDS => {
                        passed_on.push((
                            to,
                            GroupForward {
                                visited: 1 << self.id,
                                rounds: forward.rounds + 1,
                                ..forward.clone()
                            },
                        ));
                    }
                    _ => self.metrics.shared_undeliverable += 1,
                },
            }
        }
        if !passed_on.is_empty() {
            self.metrics.shared_passed_on += passed_on.len() as u64;
            self.forward(message, 0, &passed_on, shared);
        }
        let shared = shared || targets.len() > 1;
        for t in targets.drain(..) {
            let session = t.session;
            self.deliver_target(t, message, now_ms);
            if shared && !self.full_sessions.is_empty() {
                self.note_shared_delivery(session);
            }
        }
        self.scratch = targets;
    }

    /// Where a message of the group `name` on `filter` goes from here, given the shards
    /// that already had it (`visited`): see [`SharedGroup::place`].
    pub(super) fn place_in_group(&self, filter: &str, name: &str, visited: u64) -> Placement {
        let group = self
            .filters
            .get(filter)
            .and_then(|e| e.groups().iter().find(|g| g.name.as_str() == name));
        let Some(group) = group else {
            return Placement::Nowhere;
        };
        match group.place(self.id, visited, |k| self.is_connected(k)) {
            GroupPick::Member(m) => Placement::Member(member_target(m, group)),
            GroupPick::Shard(s) => Placement::Shard(s),
            GroupPick::Nowhere => Placement::Nowhere,
        }
    }

    pub(super) fn deliver_target(&mut self, t: Target, message: &SharedMessage, now_ms: u64) {
        let delivery = Delivery {
            message: message.clone(),
            qos: message.qos.min(t.qos),
            // [MQTT-3.3.1-12]: RETAIN is kept only with Retain As Published.
            retain: message.retain && t.retain_as_published,
            subscription_ids: t.ids,
            share_group: t.share_group,
        };
        self.deliver(t.session, delivery, now_ms);
    }

    /// Retained partition: set or clear a topic's retained message (set by a publish on
    /// shard `set_by`).
    pub(super) fn set_retained(
        &mut self,
        topic: &MqttStr,
        message: Option<SharedMessage>,
        set_by: ShardId,
    ) {
        match message {
            Some(message) => {
                self.retained
                    .insert(topic, RetainedValue { message, set_by });
            }
            None => {
                self.retained.remove(topic);
            }
        }
    }

    /// Retained partition: the live retained messages matching a filter, and the shards
    /// that set them (a bit per shard).
    pub(super) fn retained_matching(
        &mut self,
        filter: &str,
        now_ms: u64,
    ) -> (Vec<SharedMessage>, u64) {
        let mut out = Vec::new();
        let mut set_by: u64 = 0;
        let mut expired = Vec::new();
        self.retained.for_each_match(filter, |topic, v| {
            if v.message.is_expired(now_ms) {
                expired.push(topic.to_string());
            } else {
                out.push(v.message.clone());
                set_by |= 1 << v.set_by;
            }
        });
        for t in expired {
            self.retained.remove(&t);
        }
        (out, set_by)
    }
}

/// A retained message and the shard whose publish set it: a subscriber's shard must have
/// that shard's older forwards before it (see [`MeshMsg::RetainFence`]).
pub(super) struct RetainedValue {
    message: SharedMessage,
    set_by: ShardId,
}

/// A local subscription as a delivery target.
pub(super) fn target(sub: &super::router::LocalSub) -> Target {
    Target {
        session: sub.session,
        qos: sub.options.qos,
        retain_as_published: sub.options.retain_as_published,
        ids: sub.id.into_iter().collect(),
        share_group: None,
    }
}

/// Where a shared-subscription message goes: [`Shard::place_in_group`].
pub(super) enum Placement {
    /// To this member here.
    Member(Target),
    /// On to this shard.
    Shard(ShardId),
    /// Nowhere: no member left that could have it.
    Nowhere,
}

/// A target chosen for a `$share` group: its delivery carries the group, to be handed back
/// if the member's session ends first (§4.8.2).
pub(super) fn member_target(sub: &super::router::LocalSub, group: &SharedGroup) -> Target {
    Target {
        share_group: Some(group.origin.clone()),
        ..target(sub)
    }
}

/// A copy of a message that owns its bytes, for long-term storage (retained): it must not
/// keep a whole socket read buffer alive.
fn compact(m: &Message) -> SharedMessage {
    Arc::new(Message {
        topic: MqttStr::from(m.topic.as_str()),
        payload: Bytes::copy_from_slice(&m.payload),
        qos: m.qos,
        retain: true,
        properties: m.properties.clone(),
        expires_at_ms: m.expires_at_ms,
    })
}
