//! Which connections a shard reads, turn by turn: the flow control between shards (mesh
//! congestion: this shard's forwards wait for a peer) and towards subscribers (delivery
//! pressure: this shard's queues are full), and how paused connections get their turn back.

use super::{parse_frame_header, EventLoop, IoConn, IoFlags, Key, MESH_BATCHES_PER_TURN};

/// Input kept undecoded (with any WebSocket pongs it caused), at most, plus one receive,
/// from a client whose output is over `max_outgoing_bytes`: room for its PINGREQs and
/// acknowledgements, not for a flood.
const HOLD_WHILE_WRITING_BYTES: usize = 4096;

impl EventLoop {
    pub(super) fn drain_mesh_inbound(&mut self) {
        self.drain_mesh_control();
        if self.pressured {
            // Leave forwards in the channels: the peers back up and slow their publishers.
            return;
        }
        if self.locals_first && !self.released.is_empty() {
            // Every other release, the local publishers that waited go before the peers'
            // forwards, which could otherwise take all the room again each time.
            return;
        }
        let now = self.now_ms();
        for peer in 0..self.port.shards() {
            let caught_up = self.shard.resume_mesh(peer, now);
            self.register_adopted();
            if !caught_up {
                self.pressured = true;
                self.shard.note_delivery_pressure();
                return;
            }
            for _ in 0..MESH_BATCHES_PER_TURN {
                let Some(batch) = self.port.receive(peer) else {
                    break;
                };
                // What the peer sent on its control lane before this batch goes first: a
                // forward must not overtake the interest change that makes it deliverable.
                self.drain_mesh_control_from(peer);
                let now = self.now_ms();
                self.shard.on_mesh(peer, batch, now);
                self.register_adopted();
                if self.shard.delivery_pressure(now) {
                    self.pressured = true;
                    self.shard.note_delivery_pressure();
                    return;
                }
            }
        }
    }

    /// Takes the control lanes' batches, whatever the pressure (see `runtime/mesh.rs`).
    fn drain_mesh_control(&mut self) {
        for peer in 0..self.port.shards() {
            self.drain_mesh_control_from(peer);
        }
    }

    fn drain_mesh_control_from(&mut self, peer: usize) {
        for _ in 0..MESH_BATCHES_PER_TURN {
            let Some(batch) = self.port.receive_control(peer) else {
                break;
            };
            let now = self.now_ms();
            self.shard.on_mesh_control(peer, batch, now);
            self.register_adopted();
        }
    }

    pub(super) fn flush_mesh(&mut self) {
        for peer in 0..self.port.shards() {
            if peer == self.port.me {
                continue;
            }
            let control = self.shard.take_control_outbox(peer);
            if !control.is_empty() {
                self.port.send_control(peer, control);
            }
            let batch = self.shard.take_outbox(peer);
            if !batch.is_empty() {
                self.port.send(peer, batch);
            }
        }
        let (was_congested, was_pressured) = (self.congested, self.pressured);
        self.congested = self.port.retry() || self.shard.mesh_congested();
        self.pressured = self.shard.delivery_pressure(self.now_ms());
        if self.congested && !was_congested {
            self.shard.note_backpressure();
        }
        if self.pressured && !was_pressured {
            self.shard.note_delivery_pressure();
        }
        if (was_congested || was_pressured) && !self.congested && !self.pressured {
            let paused = std::mem::take(&mut self.paused);
            self.released.extend(paused);
            // Forwards only compete with local publishers for room in full queues.
            self.locals_first = was_pressured && !self.locals_first;
        }
    }

    /// Input was just processed: when it brought the shard under delivery pressure, the
    /// receives still completing this turn are held (`on_recv`), so the queues overshoot
    /// their mark by at most one receive — not by one message per publisher with a receive
    /// armed. (Mesh congestion is left to the end of the turn: it bounds latency and memory,
    /// and nothing is dropped when it overshoots.)
    pub(super) fn note_pressure(&mut self, now_ms: u64) {
        if !self.pressured && self.shard.delivery_pressure(now_ms) {
            self.pressured = true;
            self.shard.note_delivery_pressure();
        }
    }

    /// Pauses `key` for the pressure to end, unless the input it holds ends the connection
    /// (a DISCONNECT, or a packet that cannot be decoded): that is acted on at once, with
    /// the packets before it (one receive's worth at most). The client is leaving; held,
    /// its DISCONNECT waited for the pressure to end, and a takeover meanwhile would have
    /// ended the connection as dropped, publishing the Will of a client that left normally.
    pub(super) fn pause_unless_leaving(&mut self, key: Key) {
        let leaving = self
            .shard
            .conn(key)
            .is_some_and(|c| ends_connection(c.input(), self.max_packet));
        if leaving {
            self.process_buffered(key);
            self.service.push(key);
        } else {
            self.pause(key);
        }
    }

    /// Every tick, each paused connection whose last receive emptied its socket (a device,
    /// not a publisher with more queued) gets one receive armed while it holds less than
    /// `HOLD_WHILE_WRITING_BYTES`: what it reads is only kept (`on_recv`), but a DISCONNECT
    /// among it is acted on at once (`pause_unless_leaving`). Left in the socket, a
    /// DISCONNECT sent after the pause waited for the pressure to end (up to
    /// `STALLED_SUBSCRIBER_MS`), and a takeover in that time (the device reconnecting)
    /// published the Will of a client that had left normally. Not at the pause itself:
    /// pressure that comes and goes every turn (a fan-in at full speed) then read every
    /// paused publisher twice per turn, 14-20% more CPU per message; a tick finds almost
    /// none of those paused.
    pub(super) fn listen_to_paused(&mut self) {
        for i in 0..self.paused.len() {
            let key = self.paused[i];
            let Some(io) = self.io_mut(key).copied() else {
                continue;
            };
            if io.flags.has(IoFlags::RECV_ARMED) || !io.flags.has(IoFlags::DRAINED) {
                continue;
            }
            // Not one that is closing (taken over meanwhile: its last bytes go out first)
            // or blocked at a barrier (its input waits for the answer anyway).
            let Some(conn) = self.shard.conn(key).filter(|c| c.can_process_input()) else {
                continue;
            };
            if conn.input().len() + self.ws_owed(&io) < HOLD_WHILE_WRITING_BYTES {
                self.arm_recv(key);
            }
        }
    }

    /// Puts a connection in line to be read once the pressure is over (once only).
    pub(super) fn pause(&mut self, key: Key) {
        if let Some(c) = self.io_mut(key) {
            if !c.flags.has(IoFlags::PAUSED) {
                c.flags.set(IoFlags::PAUSED, true);
                self.paused.push(key);
                self.shard.pause_input(key);
            }
        }
    }

    /// Flushes output, re-arms receives and finishes closes for every connection that the
    /// shard marked ready or that had I/O this turn.
    pub(super) fn flush_connections(&mut self, ready: &mut Vec<Key>) {
        // Released connections are read in the order they were paused, each one's held
        // input decoded, until the shard is under delivery pressure again: the rest keep
        // their place at the head of the line. The first one is always read, and every
        // other release comes before the mesh's forwards (`drain_mesh_inbound`): forwards
        // drained at the top of each turn used to take all the room, starving a
        // subscriber's local publishers for as long as peers kept forwarding (seconds, in
        // an 8 -> 1 fan-in at full speed).
        let mut released = std::mem::take(&mut self.released);
        for i in 0..released.len() {
            if i > 0 && self.pressured {
                self.paused.splice(0..0, released[i..].iter().copied());
                break;
            }
            let key = released[i];
            if let Some(c) = self.io_mut(key) {
                c.flags.set(IoFlags::PAUSED, false);
            }
            let now = self.now_ms();
            self.shard.resume_input(key, now);
            self.service_connection(key, true);
            let now = self.now_ms();
            self.note_pressure(now);
        }
        released.clear();
        self.released = released;
        for _ in 0..4 {
            self.shard.take_ready(ready);
            ready.append(&mut self.service);
            if ready.is_empty() {
                return;
            }
            for &key in ready.iter() {
                self.service_connection(key, false);
            }
        }
    }

    /// True when `key` has `max_outgoing_bytes` or more waiting to be sent: it is written
    /// to before its input is decoded again. A WebSocket client's pongs count too: one that
    /// pings and never reads would otherwise grow them without bound.
    pub(super) fn writes_first(&self, io: &IoConn) -> bool {
        let Some(conn) = self.shard.conn(io.key) else {
            return false;
        };
        conn.out_len() + self.ws_owed(io) >= self.max_outgoing
    }

    /// What a WebSocket connection owes beside its MQTT output (pongs, its close frame).
    fn ws_owed(&self, io: &IoConn) -> usize {
        match io.flags.has(IoFlags::WS) {
            true => self.ws.get(&io.key).map_or(0, |ws| ws.owed_bytes()),
            false => 0,
        }
    }

    /// Flushes output and re-arms the receive of `key` (or decodes the input it holds);
    /// under pressure a publisher is paused instead unless it is `released` (its turn).
    fn service_connection(&mut self, key: Key, released: bool) {
        let Some(io) = self.io_mut(key).copied() else {
            return;
        };
        let Some(conn) = self.shard.conn_mut(key) else {
            self.close_fd(key);
            return;
        };
        if conn.is_closing() {
            self.watch_close(io);
            if !io.flags.has(IoFlags::SEND_INFLIGHT) {
                match self.outgoing(io, true) {
                    Some(data) => self.submit_send(key, data),
                    None => self.finish_connection(key),
                }
            }
            return;
        }
        if conn.is_handing_over() {
            self.hand_over(io);
            return;
        }
        if !io.flags.has(IoFlags::SEND_INFLIGHT) {
            if let Some(data) = self.outgoing(io, false) {
                self.submit_send(key, data);
            }
        }
        let Some(conn) = self.shard.conn(key) else {
            return;
        };
        let recv_armed = io.flags.has(IoFlags::RECV_ARMED);
        if (recv_armed && conn.input().is_empty()) || !conn.can_process_input() {
            return;
        }
        if self.writes_first(&io) {
            // Its input is decoded once the client drained its output. Until then what it
            // sends is only kept, up to a bound, so that a client reading a long backlog
            // over a slow link is still heard from: its PINGREQs are not left in the socket
            // to run out its keep alive [MQTT-3.1.2-24].
            // A DISCONNECT (or a bad packet) among what it sent is acted on at once, with
            // the packets before it: the client is leaving, and what they add to its
            // output is bounded by the hold. WebSocket pongs count against the hold too:
            // reading a client that pings and never reads would grow them without bound.
            let held = conn.input().len() + self.ws_owed(&io);
            if ends_connection(conn.input(), self.max_packet) {
                self.process_buffered(key);
                self.service.push(key);
            } else if !recv_armed && held < HOLD_WHILE_WRITING_BYTES {
                self.arm_recv(key);
            }
            return;
        }
        let has_frame = matches!(
            parse_frame_header(conn.input(), self.max_packet),
            Ok(Some(_)) | Err(_)
        );
        if recv_armed && !has_frame {
            return; // A partial packet: the armed receive brings the rest.
        }
        // Under either pressure a client that owes acknowledgements is still read: its acks
        // are what drain the queues. Pausing it too let two shards wait on each other (each
        // pressured, so not taking the other's forwards, and congested towards the other)
        // until their subscribers counted as stalled, a second later.
        if (self.congested || self.pressured) && !released && self.shard.may_hold_input(key) {
            self.pause_unless_leaving(key);
            return;
        }
        if has_frame {
            self.process_buffered(key);
            self.service.push(key);
            return;
        }
        self.arm_recv(key);
    }
}

/// True when `input`, read up to its first incomplete packet, holds a DISCONNECT or a packet
/// that cannot be decoded (too large, malformed length): either ends the connection.
fn ends_connection(mut input: &[u8], max_packet_bytes: usize) -> bool {
    loop {
        match parse_frame_header(input, max_packet_bytes) {
            Err(_) => return true,
            Ok(None) => return false,
            Ok(Some(frame)) if frame.packet_type == crate::codec::DISCONNECT => return true,
            Ok(Some(frame)) => input = &input[frame.frame_len()..],
        }
    }
}
