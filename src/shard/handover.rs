//! Takeover by a connection on another shard: the connection moves to the session, never the
//! session to the connection (the design and why: see `connect.rs`).
//!
//! 1. The client id's home shard H sends `TakeOver` to the shard O that holds the session and
//!    keeps O as the owner.
//! 2. O ends the old connection (0x8E), relabels the session with the new generation (or, on
//!    Clean Start, replaces it with a fresh one) and marks it `awaiting_connection`: it stays
//!    subscribed, so forwards keep arriving and queue in it. O answers `Redirect`.
//! 3. The new connection's shard C marks the connection `HandingOver`; its runtime lets the
//!    pending receive finish (or cancels it), then calls [`Shard::hand_over`], which sends the
//!    socket handle, the decoded CONNECT and every byte received after it in `Adopt`.
//! 4. O adopts the socket ([`Shard::take_adopted`] tells its runtime) and continues as if the
//!    CONNECT had arrived there: CONNACK, redelivery, then the pipelined packets.
//!
//! When the connection ends before it moves, `Adopt` carries no connection and the session
//! goes offline (its expiry starts). A connection whose session was taken over again while
//! it moved gets CONNACK and then DISCONNECT 0x8E on arrival, as if it had been attached and
//! taken over at once (see [`Shard::supersede_connecting`]).
//!
//! An adopted connection is not refused for this shard's share of `max_connections`: its
//! first shard admitted it, and refusing it here would turn a takeover into a lost client.
//! A shard can therefore hold more than its share (and the process a little more than the
//! limit, by the connections moved onto full shards); accept backs off on EMFILE anyway.

use bytes::BytesMut;

use super::conn::{Conn, ConnState};
use super::mesh::{Adoption, MeshMsg, MovingConnection, ShardId};
use super::slab::Key;
use super::Shard;
use crate::codec::{Connect, MqttStr, ReasonCode};
use crate::session::Session;

/// A connection waiting for its runtime to move it to the shard of its session.
#[derive(Debug)]
pub(super) struct HandOver {
    to: ShardId,
    generation: u64,
    session_present: bool,
    connect: Box<Connect>,
    assigned_id: bool,
}

impl HandOver {
    /// What the session's shard is told about the connection it asked for (without it).
    fn adoption(&self) -> Box<Adoption> {
        Adoption::new(
            self.connect.client_id.clone(),
            self.generation,
            self.session_present,
        )
    }
}

impl Shard {
    /// Holder of the session: ends the old connection, keeps the session here (or starts a
    /// fresh one on Clean Start) and asks the new connection's shard for the connection.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_takeover(
        &mut self,
        client_id: MqttStr,
        previous_generation: u64,
        new_shard: ShardId,
        token: u64,
        generation: u64,
        clean_start: bool,
        now_ms: u64,
    ) {
        let mut found = self.by_client.get(&client_id, &self.sessions);
        if let Some(skey) = found {
            self.metrics.takeovers += 1;
            if self
                .sessions
                .get(skey)
                .is_some_and(|s| s.session.generation != previous_generation)
            {
                // The registry names this shard for the id: whatever session it has here is
                // the one to take over.
                tracing::debug!(
                    shard = self.id,
                    "takeover of a session of another generation"
                );
            }
            // A session with no expiry lasts only as long as its connection, which this
            // takeover closes: it ends here and is never resumed (Session Expiry 0, or an
            // MQTT 3.1.1 Clean Session, [MQTT-3.1.2-6]), whatever the new CONNECT asks.
            let ends = clean_start
                || self
                    .sessions
                    .get(skey)
                    .is_some_and(|s| s.session.expiry_secs == 0);
            self.end_taken_over_connection(skey, ends, now_ms);
            if ends {
                let slot = self.remove_session(skey, now_ms);
                if slot.will_pending {
                    // The session ends: a delayed Will is due now [MQTT-3.1.3-9].
                    self.publish_will_of(slot.session, now_ms);
                }
                found = None;
            } else if let Some(slot) = self.sessions.get_mut(skey) {
                // The reconnect cancels a delayed Will; the new CONNECT brings its own.
                slot.session.will = None;
                slot.will_pending = false;
                // Timers of the old generation (expiry, Will delay) become stale.
                slot.session.generation = generation;
                slot.awaiting_connection = true;
            }
        }
        let session_present = found.is_some();
        if found.is_none() {
            let id = MqttStr::from(client_id.as_str());
            let session = Session::new(id, generation, crate::codec::Protocol::V5);
            let skey = self.install_session(session);
            if let Some(slot) = self.sessions.get_mut(skey) {
                slot.awaiting_connection = true;
            }
        }
        self.send(
            new_shard,
            MeshMsg::Redirect {
                token,
                generation,
                session_present,
            },
        );
    }

    /// Ends the live connection of a session being taken over, with 0x8E [MQTT-3.1.4-3].
    /// Its Will goes out now if the session ends or has no delay; otherwise the reconnect
    /// cancels it.
    fn end_taken_over_connection(&mut self, skey: Key, session_ends: bool, now_ms: u64) {
        let taken = self.sessions.get_mut(skey).and_then(|s| {
            let conn = s.conn.take();
            conn.map(|c| (c, s.session.outbound.queue.len()))
        });
        let Some((ckey, queued)) = taken else {
            return;
        };
        self.account_online_queue(skey, queued, false);
        let will_on_close = self
            .conns
            .get_mut(ckey)
            .map(|c| {
                c.session = None;
                std::mem::replace(&mut c.will_on_close, false)
            })
            .unwrap_or(false);
        self.close(ckey, Some(ReasonCode::SESSION_TAKEN_OVER));
        let no_delay = self.sessions.get(skey).is_some_and(|slot| {
            slot.session
                .will
                .as_ref()
                .is_some_and(|w| w.delay_secs() == 0)
        });
        if will_on_close && (session_ends || no_delay) {
            self.publish_will(skey, now_ms);
        }
    }

    /// Shard of the new connection: the session lives on `from`; move the connection there
    /// (or attach it here when `from` is this shard).
    pub(super) fn on_redirect(
        &mut self,
        from: ShardId,
        token: u64,
        generation: u64,
        session_present: bool,
        now_ms: u64,
    ) {
        let Some((key, client_id, connecting)) = self.take_pending_connect(token) else {
            return;
        };
        if !connecting {
            // The connection went away while we waited.
            let adoption = Adoption::new(client_id, generation, session_present);
            self.send(from, MeshMsg::Adopt(adoption));
            return;
        }
        if from == self.id {
            match self.waiting_session(&client_id, generation) {
                Some(skey) => self.connect_session(key, skey, session_present, now_ms),
                None => self.supersede_connecting(key, session_present, now_ms),
            }
            return;
        }
        let conn = self.conns.get_mut(key).expect("checked above");
        let (connect, assigned_id) =
            match std::mem::replace(&mut conn.state, ConnState::HandingOver) {
                ConnState::Connecting {
                    connect,
                    assigned_id,
                } => (connect, assigned_id),
                _ => unreachable!("checked above"),
            };
        conn.blocked = true;
        self.handovers.insert(
            key,
            HandOver {
                to: from,
                generation,
                session_present,
                connect,
                assigned_id,
            },
        );
        self.notify(key);
    }

    /// Runtime: moves the connection `key` (in `HandingOver`, with no receive or send
    /// pending on its socket and its output flushed) to the shard of its session. `socket` is
    /// the runtime's handle, `unread` bytes received but not yet given to the shard (taken).
    /// False when the connection is not handing over: then nothing moved.
    pub fn hand_over(&mut self, key: Key, socket: u64, unread: &mut BytesMut) -> bool {
        let movable = self
            .conns
            .get(key)
            .is_some_and(|c| c.is_handing_over() && c.out_len() == 0);
        if !movable {
            return false;
        }
        let Some(h) = self.handovers.remove(&key) else {
            return false;
        };
        let mut conn = self.conns.remove(key).expect("checked above");
        self.metrics.handovers += 1;
        let mut input = conn.take_input();
        input.extend_from_slice(unread);
        unread.clear();
        let mut adoption = h.adoption();
        adoption.connection = Some(MovingConnection {
            socket,
            connect: h.connect,
            assigned_id: h.assigned_id,
            input,
        });
        self.send(h.to, MeshMsg::Adopt(adoption));
        true
    }

    /// A connection that was to move ended first (see `on_closed`).
    pub(super) fn abandon_handover(&mut self, h: HandOver) {
        self.send(h.to, MeshMsg::Adopt(h.adoption()));
    }

    /// Runtime: connections adopted from other shards since the last call, with their
    /// sockets (`into` is cleared first). Each is already in the ready list.
    pub fn take_adopted(&mut self, into: &mut Vec<(Key, u64)>) {
        into.clear();
        std::mem::swap(into, &mut self.adopted);
    }

    /// The session of `client_id` here that waits for the connection of `generation`.
    fn waiting_session(&self, client_id: &str, generation: u64) -> Option<Key> {
        self.by_client.get(client_id, &self.sessions).filter(|&k| {
            self.sessions
                .get(k)
                .is_some_and(|s| s.awaiting_connection && s.session.generation == generation)
        })
    }

    /// Holder of the session: a connection arrived (or word that it ended).
    pub(super) fn on_adopt(&mut self, adoption: Adoption, now_ms: u64) {
        let Adoption {
            client_id,
            generation,
            session_present,
            connection,
        } = adoption;
        let session = self.waiting_session(&client_id, generation);
        let Some(moving) = connection else {
            if let Some(skey) = session {
                self.park_session(skey, now_ms);
            }
            return;
        };
        let mut conn = Conn::new(now_ms);
        conn.protocol = moving.connect.protocol;
        conn.set_input(moving.input);
        conn.keepalive_secs = moving.connect.keep_alive_secs;
        conn.state = ConnState::Connecting {
            connect: moving.connect,
            assigned_id: moving.assigned_id,
        };
        conn.blocked = true;
        let key = self.conns.insert(conn);
        self.adopted.push((key, moving.socket));
        match session {
            Some(skey) if !self.shutting_down => {
                self.connect_session(key, skey, session_present, now_ms)
            }
            _ => {
                // Taken over again while it moved, or this shard is stopping.
                self.supersede_connecting(key, session_present, now_ms);
                if let Some(skey) = session {
                    self.park_session(skey, now_ms);
                }
            }
        }
    }

    /// A session whose new connection never arrived goes offline: its expiry starts (a
    /// session with expiry 0 ends now).
    fn park_session(&mut self, skey: Key, now_ms: u64) {
        let Some(slot) = self.sessions.get_mut(skey) else {
            return;
        };
        slot.awaiting_connection = false;
        if slot.session.expiry_secs == 0 {
            self.end_session(skey, now_ms);
        } else {
            self.start_session_expiry(skey, now_ms);
        }
    }
}
