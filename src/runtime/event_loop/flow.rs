//! Which connections a shard reads, turn by turn: the flow control between shards (mesh
//! congestion: this shard's forwards wait for a peer) and towards subscribers (delivery
//! pressure: this shard's queues are full), and how paused connections get their turn back.

use super::{parse_frame_header, EventLoop, IoFlags, Key, MESH_BATCHES_PER_TURN};

impl EventLoop {
    pub(super) fn drain_mesh_inbound(&mut self) {
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

    pub(super) fn flush_mesh(&mut self) {
        for peer in 0..self.port.shards() {
            if peer == self.port.me {
                continue;
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
        let Some(conn) = self.shard.conn_mut(key) else {
            return;
        };
        if io.flags.has(IoFlags::RECV_ARMED) || !conn.can_process_input() {
            return;
        }
        // A WebSocket client's pongs count too: one that pings and never reads would
        // otherwise grow them without bound.
        let ws_owed = match io.flags.has(IoFlags::WS) {
            true => self.ws.get(&key).map_or(0, |ws| ws.owed_bytes()),
            false => 0,
        };
        if conn.out_len() + ws_owed >= self.max_outgoing {
            return; // Writes first: read again once the client drained its output.
        }
        let has_frame = matches!(
            parse_frame_header(conn.input(), self.max_packet),
            Ok(Some(_)) | Err(_)
        );
        // Under either pressure a client that owes acknowledgements is still read: its acks
        // are what drain the queues. Pausing it too let two shards wait on each other (each
        // pressured, so not taking the other's forwards, and congested towards the other)
        // until their subscribers counted as stalled, a second later.
        if (self.congested || self.pressured) && !released && self.shard.may_hold_input(key) {
            self.pause(key);
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
