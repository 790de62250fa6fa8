//! CONNECT, the client-id registry (home shard), session takeover, the end of a connection
//! and of a session, and Wills.
//!
//! Flow: the connection's shard C sends `Claim` to the home shard H of the client id. Without
//! a previous session H records C as the owner and answers `Claimed`: C creates the session
//! and sends CONNACK. With one, on shard O, H keeps O as the owner and sends `TakeOver`: O
//! disconnects the old connection (0x8E) and the *connection* moves to O (`Redirect`, then
//! `Adopt` with the socket; see `handover.rs`), which sends CONNACK. When O is C the
//! connection simply attaches to the session in place.
//!
//! Why sessions never move. The broker promises never to lose a QoS 1/2 message. Shipping
//! the session from O to C left two holes: a publisher's forward already in flight to O was
//! dropped when it arrived after the session left (no subscriber at O any more), and between
//! O's interest removal and C's interest addition a publisher could route a matching message
//! to no shard at all. Both come from the session's interest changing shard. Closing them
//! while shipping needs a relay with fences per publisher shard (O relays late forwards to
//! C, C holds direct ones until O has relayed everything before each publisher's fence),
//! which is more mesh protocol with more edge cases (a second takeover during the fences).
//! Moving the connection instead keeps the session, its subscriptions and its interest where
//! they are: every forward keeps arriving at O in per-publisher order and lands in the
//! session, before, during and after the takeover. The cost is a socket handed between two
//! io_uring loops (a file descriptor is process-wide) and one more mesh round trip on a
//! cross-shard takeover; a client id then stays on the shard where its session was created
//! for as long as the session lives, which the home registry already had to track. Clean
//! Start takes the same path (the fresh session is created on O), so the registry owner is
//! always the shard that holds the session, and every later takeover reaches it in order.

use std::sync::Arc;

use super::conn::ConnState;
use super::mesh::{MeshMsg, ShardId};
use super::slab::Key;
use super::{Pending, RegistryEntry, SessionSlot, Shard};
use crate::codec::{
    ConnAck, Connect, Disconnect, MqttStr, Protocol, PublishProperties, ReasonCode,
};
use crate::session::{ClientLimits, InflightState, Message, Session, StoredWill};

impl Shard {
    /// The runtime finished a TLS handshake whose client certificate names the user
    /// (`tls.use_identity_as_username`): its CONNECT will be admitted as `name`, whatever
    /// user name and password it carries; `None` (no Common Name) refuses it.
    pub fn set_peer_identity(&mut self, key: Key, name: Option<Box<str>>) {
        if self.conns.get(key).is_some() {
            self.peer_identities.insert(key, name);
        }
    }

    pub(super) fn on_connect(&mut self, key: Key, connect: Box<Connect>, now_ms: u64) {
        let limits = &self.config.limits;
        // Counted over all shards (see `ConnectionGauge`). 0 = unlimited here: the runtime
        // resolves it from the open-file limit before start.
        let over_limit =
            limits.max_connections != 0 && self.gauge.open() as u64 > limits.max_connections;
        let keepalive_cap_secs = limits.max_keepalive_secs;
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        conn.protocol = connect.protocol;
        let v5 = connect.protocol.is_v5();
        let identity = self.peer_identities.remove(&key);
        let admitted = match &identity {
            // The certificate stands for user name and password.
            Some(Some(_)) => Ok(()),
            Some(None) => Err(ReasonCode::NOT_AUTHORIZED),
            None => crate::auth::admit(
                self.config.auth.allow_anonymous,
                self.config.auth.credentials.as_deref(),
                connect.username.as_deref(),
                connect.password.as_deref(),
            ),
        };
        let refuse = if self.shutting_down {
            Some(ReasonCode::SERVER_UNAVAILABLE)
        } else if over_limit {
            self.metrics.connections_rejected += 1;
            Some(if v5 {
                ReasonCode::QUOTA_EXCEEDED
            } else {
                ReasonCode::SERVER_UNAVAILABLE
            })
        } else if connect.client_id.is_empty()
            && (connect.protocol == Protocol::V31 || !connect.clean_start && !v5)
        {
            // [MQTT-3.1.3-8]: 3.1.1 needs Clean Session = 1 with an empty client id; MQTT
            // 3.1 needs an id of 1 to 23 characters whatever the flag.
            Some(ReasonCode::CLIENT_IDENTIFIER_NOT_VALID)
        } else if v5 && connect.properties.authentication_method.is_some() {
            // Extended authentication is not supported [MQTT-4.12.0-1].
            Some(ReasonCode::BAD_AUTHENTICATION_METHOD)
        } else if v5 && connect.properties.authentication_data.is_some() {
            // Authentication Data without an Authentication Method (§3.1.2.11.10).
            Some(ReasonCode::PROTOCOL_ERROR)
        } else if let Err(reason) = admitted {
            // [MQTT-3.1.4-2]: a refused client gets CONNACK with the reason, then the close.
            self.metrics.auth_failures += 1;
            Some(reason)
        } else if connect
            .will
            .as_ref()
            .is_some_and(|w| !self.topic_within_limits(&w.topic))
        {
            self.metrics.topic_rejects += 1;
            Some(ReasonCode::TOPIC_NAME_INVALID)
        } else if connect
            .will
            .as_ref()
            .is_some_and(|w| super::sys::is_sys_topic(&w.topic))
        {
            // A Will may not publish under `$SYS` any more than a PUBLISH may: refused with
            // the CONNECT, as a Will the ACL denies is.
            self.metrics.acl_denials += 1;
            Some(ReasonCode::NOT_AUTHORIZED)
        } else if !v5
            && keepalive_cap_secs > 0
            && (connect.keep_alive_secs == 0 || connect.keep_alive_secs > keepalive_cap_secs)
        {
            // 3.1 and 3.1.1 have no Server Keep Alive to tell the client of the cap, and a
            // client that keeps its own would be cut off as if it had died: refused with
            // return code 2, as mosquitto does.
            self.metrics.keepalive_refusals += 1;
            Some(ReasonCode::CLIENT_IDENTIFIER_NOT_VALID)
        } else {
            None
        };
        if let Some(reason) = refuse {
            self.refuse_connect(key, reason);
            return;
        }
        let mut connect = connect;
        if let Some(Some(name)) = identity {
            connect.username = Some(MqttStr::from(String::from(name)));
            connect.password = None;
        }
        let assigned_id = connect.client_id.is_empty();
        if assigned_id {
            self.assigned_ids += 1;
            connect.client_id = MqttStr::from(format!(
                "shardmq-{:x}-{}-{}",
                self.instance, self.id, self.assigned_ids
            ));
        }
        if let (Some(acl), Some(will)) = (&self.config.auth.acl, &connect.will) {
            let client = acl.for_client(connect.username.as_deref());
            let id = &connect.client_id;
            if !acl.may_publish(&client, id, &will.topic, &mut self.acl_scratch) {
                // A Will it could not publish itself is refused with the CONNECT, not
                // dropped unseen when the connection ends.
                self.metrics.acl_denials += 1;
                self.refuse_connect(key, ReasonCode::NOT_AUTHORIZED);
                return;
            }
        }
        let token = self.token();
        let client_id = connect.client_id.clone();
        let clean_start = connect.clean_start;
        let conn = self.conns.get_mut(key).expect("checked above");
        conn.keepalive_secs = connect.keep_alive_secs;
        conn.state = ConnState::Connecting {
            connect,
            assigned_id,
        };
        conn.blocked = true;
        self.pending.insert(
            token,
            Pending::Connect {
                conn: key,
                client_id: client_id.clone(),
            },
        );
        let home = self.home_shard(&client_id);
        self.send(
            home,
            MeshMsg::Claim {
                client_id,
                token,
                clean_start,
            },
        );
        let _ = now_ms;
    }

    pub(super) fn refuse_connect(&mut self, key: Key, reason: ReasonCode) {
        if let Some(conn) = self.conns.get_mut(key) {
            let ack = ConnAck {
                reason_code: reason,
                ..ConnAck::default()
            };
            let _ = ack.encode(conn.protocol, conn.out());
            conn.will_on_close = false;
        }
        self.close(key, None);
    }

    /// A `Connecting` connection whose session was taken over by a newer connection before
    /// this one was attached. It gets what a broker that handles CONNECTs one at a time
    /// would have sent: CONNACK, then (MQTT 5) DISCONNECT 0x8E [MQTT-3.1.4-3], never a close
    /// without an answer, which a client reads as a broken network and retries. While the
    /// shard stops it is refused instead (0x88 / 0x03).
    ///
    /// Its Will goes out as that broker's takeover would send it: at once when it has no
    /// delay or when the session it asked for ends with the connection [MQTT-3.1.2-8].
    pub(super) fn supersede_connecting(&mut self, key: Key, session_present: bool, now_ms: u64) {
        if self.shutting_down {
            self.refuse_connect(key, ReasonCode::SERVER_UNAVAILABLE);
            return;
        }
        let cap = self.config.limits.max_session_expiry_secs;
        let mut will = None;
        if let Some(conn) = self.conns.get_mut(key) {
            let ack = ConnAck {
                session_present: session_present && conn.protocol != Protocol::V31,
                ..ConnAck::default()
            };
            let _ = ack.encode(conn.protocol, conn.out());
            if let ConnState::Connecting { connect, .. } = &mut conn.state {
                let session_ends = requested_expiry_secs(connect).min(cap) == 0;
                will = connect
                    .will
                    .take()
                    .filter(|w| session_ends || w.properties.will_delay_interval.unwrap_or(0) == 0);
            }
            conn.will_on_close = false;
            conn.state = ConnState::Active;
        }
        self.close(key, Some(ReasonCode::SESSION_TAKEN_OVER));
        if let Some(will) = will {
            self.route_will(will, now_ms);
        }
    }

    /// Home shard: records the new owner and starts the takeover of the previous one. With a
    /// previous session the owner stays the shard that holds it (the connection moves
    /// there); every later takeover is sent to that shard behind this one (FIFO per lane).
    pub(super) fn on_claim(
        &mut self,
        from: ShardId,
        client_id: MqttStr,
        token: u64,
        clean_start: bool,
    ) {
        let generation = self.next_generation & RegistryEntry::GENERATION_MASK;
        self.next_generation += 1;
        let id = super::stable_hash(client_id.as_bytes());
        let previous = self.registry.get(&id).copied();
        let owner = previous.map_or(from, |p| p.shard());
        self.registry
            .insert(id, RegistryEntry::new(owner, generation));
        match previous {
            None => self.send(from, MeshMsg::Claimed { token, generation }),
            Some(prev) => self.send(
                prev.shard(),
                MeshMsg::TakeOver {
                    client_id,
                    previous_generation: prev.generation(),
                    new_shard: from,
                    token,
                    generation,
                    clean_start,
                },
            ),
        }
    }

    /// The connection and client id that waited for the registry's answer `token`, and
    /// whether that connection is still waiting (it may have gone away meanwhile).
    pub(super) fn take_pending_connect(&mut self, token: u64) -> Option<(Key, MqttStr, bool)> {
        let Some(Pending::Connect {
            conn: key,
            client_id,
        }) = self.pending.remove(&token)
        else {
            return None;
        };
        let connecting = self
            .conns
            .get(key)
            .is_some_and(|c| matches!(c.state, ConnState::Connecting { .. }));
        Some((key, client_id, connecting))
    }

    /// Tells the home shard of `client_id` that the owner of `generation` is gone.
    pub(super) fn release_claim(&mut self, client_id: MqttStr, generation: u64) {
        let home = self.home_shard(&client_id);
        self.send(
            home,
            MeshMsg::Release {
                client_id,
                generation,
            },
        );
    }

    /// New owner of a client id without a session: create one and send CONNACK.
    pub(super) fn on_claimed(&mut self, token: u64, generation: u64, now_ms: u64) {
        let Some((key, client_id, connecting)) = self.take_pending_connect(token) else {
            return;
        };
        let protocol = match self.conns.get(key) {
            Some(c) if connecting => c.protocol,
            _ => {
                // The connection went away while we waited: give the claim back.
                self.release_claim(client_id, generation);
                return;
            }
        };
        // Copy the id: the session outlives the read buffer it arrived in.
        let session = Session::new(MqttStr::from(client_id.as_str()), generation, protocol);
        let skey = self.install_session(session);
        self.connect_session(key, skey, false, now_ms);
    }

    /// Attaches the `Connecting` connection `key` to the session `skey` of this shard: the
    /// CONNECT's settings go into the session, CONNACK goes out, and what the session owes
    /// is (re)delivered.
    pub(super) fn connect_session(
        &mut self,
        key: Key,
        skey: Key,
        session_present: bool,
        now_ms: u64,
    ) {
        let (connect, assigned) = match self.conns.get_mut(key).map(|c| &mut c.state) {
            Some(state @ ConnState::Connecting { .. }) => {
                match std::mem::replace(state, ConnState::Active) {
                    ConnState::Connecting {
                        connect,
                        assigned_id,
                    } => (connect, assigned_id),
                    _ => unreachable!(),
                }
            }
            _ => return,
        };
        let limits = self.config.limits.clone();
        let v5 = connect.protocol.is_v5();
        let Some(slot) = self.sessions.get_mut(skey) else {
            self.close(key, None);
            return;
        };
        slot.awaiting_connection = false;
        slot.conn = Some(key);
        let session = &mut slot.session;
        session.protocol = connect.protocol;
        let requested_expiry = requested_expiry_secs(&connect);
        session.expiry_secs = requested_expiry.min(limits.max_session_expiry_secs);
        session.will = connect.will.as_ref().map(|w| Box::new(StoredWill::new(w)));
        session.limits = ClientLimits {
            receive_maximum: connect.properties.receive_maximum.unwrap_or(u16::MAX),
            max_packet_bytes: connect.properties.maximum_packet_size.unwrap_or(u32::MAX),
            topic_alias_maximum: connect.properties.topic_alias_maximum.unwrap_or(0),
        };
        if !session.outbound.inflight.is_empty() || !session.outbound.queue.is_empty() {
            // The client gets its first chance to acknowledge now.
            session.outbound.last_progress_ms = now_ms;
        }
        if let Some(acl) = &self.config.auth.acl {
            let client = acl.for_client(connect.username.as_deref());
            if session_present {
                self.revoke_unreadable(skey, &client);
            }
            self.access.insert(key, client);
        }
        let queued = self
            .sessions
            .get(skey)
            .map_or(0, |s| s.session.outbound.queue.len());
        self.account_online_queue(skey, queued, true);

        let mut ack = ConnAck {
            session_present,
            ..ConnAck::default()
        };
        let conn = self.conns.get_mut(key).expect("checked above");
        // MQTT 3.1 has no Session Present: that byte of its CONNACK is reserved.
        ack.session_present &= conn.protocol != Protocol::V31;
        conn.session = Some(skey);
        let mut keepalive = connect.keep_alive_secs;
        // 3.1 / 3.1.1 CONNECTs outside the cap were refused (`on_connect`).
        if v5
            && limits.max_keepalive_secs > 0
            && (keepalive == 0 || keepalive > limits.max_keepalive_secs)
        {
            keepalive = limits.max_keepalive_secs;
            ack.properties.server_keep_alive = Some(keepalive);
        }
        conn.keepalive_secs = keepalive;
        if v5 {
            let p = &mut ack.properties;
            p.receive_maximum = Some(limits.max_inflight);
            p.maximum_packet_size = Some(limits.max_packet_bytes);
            if limits.topic_alias_maximum > 0 {
                p.topic_alias_maximum = Some(limits.topic_alias_maximum);
            }
            if requested_expiry > limits.max_session_expiry_secs {
                p.session_expiry_interval = Some(limits.max_session_expiry_secs);
            }
            if assigned {
                p.assigned_client_identifier = Some(connect.client_id.clone());
            }
        }
        self.finish_connect(key, skey, &ack, now_ms);
    }

    /// A session resumed under an access control list: another user may have made it (a
    /// session belongs to its client id), so what the new connection may not read goes
    /// before anything is delivered — the subscriptions it could not have made, and the
    /// queued or unacknowledged messages on topics it may not read. Checked once here, so
    /// deliveries need no check on their way out (mosquitto checks every delivery instead).
    fn revoke_unreadable(&mut self, skey: Key, client: &crate::acl::ClientRules) {
        let Some(acl) = self.config.auth.acl.clone() else {
            return;
        };
        let mut scratch = std::mem::take(&mut self.acl_scratch);
        let Some(slot) = self.sessions.get_mut(skey) else {
            return;
        };
        let session = &mut slot.session;
        let id = &*session.client_id;
        let revoked: Vec<MqttStr> = session
            .subscriptions
            .keys()
            .filter(|f| !acl.may_subscribe(client, id, f, &mut scratch))
            .cloned()
            .collect();
        let mut unreadable = 0usize;
        // Checked through `Deref` first: `DerefMut` would allocate an empty outbound state.
        if !session.outbound.queue.is_empty() || !session.outbound.inflight.is_empty() {
            let outbound = &mut *session.outbound;
            let before = outbound.queue.len() + outbound.inflight.len();
            outbound
                .queue
                .retain(|d| acl.may_subscribe(client, id, &d.message.topic, &mut scratch));
            // A QoS 2 message past PUBREC was delivered already: only its PUBREL remains.
            outbound.inflight.retain(|m| {
                m.state == InflightState::AwaitingComp
                    || acl.may_subscribe(client, id, &m.delivery.message.topic, &mut scratch)
            });
            unreadable = before - outbound.queue.len() - outbound.inflight.len();
        }
        for filter in &revoked {
            session.subscriptions.remove_entry(filter.as_str());
        }
        if !revoked.is_empty() || unreadable > 0 {
            tracing::info!(
                client_id = id,
                subscriptions = revoked.len(),
                messages = unreadable,
                "resumed session: dropped what this user may not read"
            );
        }
        self.acl_scratch = scratch;
        for filter in &revoked {
            self.remove_subscription_entry(skey, filter);
        }
        self.metrics.acl_denials += (revoked.len() + unreadable) as u64;
    }

    /// CONNACK, keep-alive watch, and the redelivery of what the session still owes.
    pub(super) fn finish_connect(&mut self, key: Key, skey: Key, ack: &ConnAck, now_ms: u64) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        conn.blocked = false;
        // The keep alive runs from the CONNACK: nothing it sent after the CONNECT was read
        // while the other shards answered.
        conn.last_packet_ms = conn.last_packet_ms.max(now_ms);
        let _ = ack.encode(conn.protocol, conn.out());
        self.notify(key);
        self.watch_connection(key, now_ms);
        self.resume_outbound(skey, now_ms);
    }

    /// Puts a fresh session (no subscriptions yet) on this shard.
    pub(super) fn install_session(&mut self, session: Session) -> Key {
        let skey = self.sessions.insert(SessionSlot {
            session,
            conn: None,
            will_pending: false,
            awaiting_connection: false,
            retained_pending: false,
        });
        if let Some(old) = self.by_client.insert(skey, &self.sessions) {
            // Unreachable with a consistent registry; never leak the old one.
            if old != skey {
                tracing::warn!("two sessions for one client id on one shard");
            }
        }
        skey
    }

    /// Takes a session off this shard: trie entries, client-id index, timers.
    pub(super) fn remove_session(&mut self, skey: Key, now_ms: u64) -> SessionSlot {
        let mut slot = self.sessions.remove(skey).expect("caller checked the key");
        let filters: Vec<MqttStr> = slot.session.subscriptions.keys().cloned().collect();
        for f in &filters {
            self.remove_subscription_entry(skey, f);
        }
        self.by_client.remove(&slot.session.client_id, skey);
        self.hand_back_shared(&mut slot.session, now_ms);
        slot
    }

    /// The connection of `skey` ended. `will_on_close` is false after a normal DISCONNECT.
    pub(super) fn detach_session(&mut self, skey: Key, will_on_close: bool, now_ms: u64) {
        let Some(slot) = self.sessions.get_mut(skey) else {
            return;
        };
        let was_online = slot.conn.take().is_some();
        let queued = slot.session.outbound.queue.len();
        if !will_on_close {
            // [MQTT-3.1.2-10]: a normal DISCONNECT discards the Will.
            slot.session.will = None;
        }
        let expiry_secs = slot.session.expiry_secs;
        if was_online {
            self.account_online_queue(skey, queued, false);
        }
        let Some(slot) = self.sessions.get_mut(skey) else {
            return;
        };
        if expiry_secs == 0 {
            self.end_session(skey, now_ms);
            return;
        }
        let delay = slot.session.will.as_ref().map(|w| w.delay_secs());
        match delay {
            Some(0) => self.publish_will(skey, now_ms),
            Some(d) => {
                slot.will_pending = true;
                let d = d.min(slot.session.expiry_secs);
                let generation = slot.session.generation;
                self.timers
                    .will_delay(skey, generation, now_ms + d as u64 * 1000);
            }
            None => {}
        }
        self.start_session_expiry(skey, now_ms);
    }

    pub(super) fn start_session_expiry(&mut self, skey: Key, now_ms: u64) {
        if let Some(slot) = self.sessions.get(skey) {
            let generation = slot.session.generation;
            let at = now_ms.saturating_add(slot.session.expiry_secs as u64 * 1000);
            self.timers.session_expiry(skey, generation, at);
        }
    }

    /// Ends a session here: publishes a Will still due, clears its subscriptions and tells
    /// the home shard.
    pub(super) fn end_session(&mut self, skey: Key, now_ms: u64) {
        if self.sessions.get(skey).is_none() {
            return;
        }
        let slot = self.remove_session(skey, now_ms);
        let client_id = MqttStr::from(&*slot.session.client_id);
        let generation = slot.session.generation;
        self.publish_will_of(slot.session, now_ms);
        self.release_claim(client_id, generation);
    }

    /// Publishes and clears the Will of a session that stays on this shard.
    pub(super) fn publish_will(&mut self, skey: Key, now_ms: u64) {
        let Some(slot) = self.sessions.get_mut(skey) else {
            return;
        };
        slot.will_pending = false;
        if let Some(will) = slot.session.will.take() {
            self.route_will(will.into_will(), now_ms);
        }
    }

    pub(super) fn publish_will_of(&mut self, mut session: Session, now_ms: u64) {
        if let Some(will) = session.will.take() {
            self.route_will(will.into_will(), now_ms);
        }
    }

    fn route_will(&mut self, will: crate::codec::Will, now_ms: u64) {
        self.metrics.wills_published += 1;
        let wp = will.properties;
        let props = PublishProperties {
            payload_format_indicator: wp.payload_format_indicator,
            message_expiry_interval: None,
            topic_alias: None,
            response_topic: wp.response_topic,
            correlation_data: wp.correlation_data,
            user_properties: wp.user_properties,
            subscription_identifiers: Vec::new(),
            content_type: wp.content_type,
        };
        let message = Arc::new(Message {
            topic: will.topic,
            payload: will.payload,
            qos: will.qos,
            retain: will.retain,
            properties: (!props.is_empty()).then(|| Arc::new(props)),
            expires_at_ms: wp.message_expiry_interval.map(|s| now_ms + s as u64 * 1000),
        });
        self.publish_message(message, None, now_ms);
    }

    pub(super) fn on_disconnect(&mut self, key: Key, d: Disconnect) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let session = conn.session;
        if conn.protocol == Protocol::V5 {
            if let (Some(new_expiry), Some(skey)) = (d.properties.session_expiry_interval, session)
            {
                let cap = self.config.limits.max_session_expiry_secs;
                if let Some(slot) = self.sessions.get_mut(skey) {
                    // With a cap above 0, an expiry of 0 here means the CONNECT asked for 0;
                    // with a cap of 0 every session has 0 and the CONNECT's value is unknown.
                    if slot.session.expiry_secs == 0 && new_expiry > 0 && cap > 0 {
                        // [MQTT-3.14.2-2]: cannot turn a session that ends into one that stays.
                        self.fail_connection(key, ReasonCode::PROTOCOL_ERROR);
                        return;
                    }
                    slot.session.expiry_secs = new_expiry.min(cap);
                }
            }
        }
        let conn = self.conns.get_mut(key).expect("checked above");
        // 0x00 discards the Will [MQTT-3.14.4-3]; 0x04 and error codes keep it.
        conn.will_on_close = d.reason_code != ReasonCode::NORMAL_DISCONNECTION;
        self.close(key, None);
    }
}

/// The Session Expiry a CONNECT asks for, before the configured cap: 3.1.1's Clean Session 0
/// keeps the session for good, Clean Session 1 ends it with the connection.
fn requested_expiry_secs(connect: &Connect) -> u32 {
    if connect.protocol.is_v5() {
        connect.properties.session_expiry_interval.unwrap_or(0)
    } else if connect.clean_start {
        0
    } else {
        u32::MAX
    }
}
