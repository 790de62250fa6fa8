//! Completions from the ring: accepts, receives (into the provided buffers), sends (the
//! rest of a partial one goes out again), the doorbell, and lingering sockets' discards.

use io_uring::cqueue;

use super::{
    split_user_data, EventLoop, IoFlags, GEN_MASK, OP_ACCEPT, OP_CANCEL, OP_DOORBELL, OP_LINGER,
    OP_RECV, OP_SEND,
};

impl EventLoop {
    pub(super) fn on_completion(&mut self, ud: u64, res: i32, flags: u32) {
        let (op, index, generation) = split_user_data(ud);
        match op {
            OP_ACCEPT => self.on_accept_completion(index, res, flags),
            OP_RECV => self.on_recv(index, generation, res, flags),
            OP_SEND => self.on_send(index, generation, res),
            OP_DOORBELL => self.arm_doorbell(),
            // The cancelled receive completes on its own (ECANCELED, or with data).
            OP_CANCEL => {}
            OP_LINGER => self.on_discard(index, generation, res),
            _ => {}
        }
    }

    fn on_recv(&mut self, index: u32, generation: u32, res: i32, flags: u32) {
        let bid = cqueue::buffer_select(flags);
        let live = self.io_of(index, generation);
        if let Some(c) = live {
            if let Some(c) = self.io_mut(c.key) {
                c.flags.set(IoFlags::RECV_ARMED, false);
                let drained = res > 0 && !cqueue::sock_nonempty(flags);
                c.flags.set(IoFlags::DRAINED, drained);
            }
        }
        if res > 0 {
            if let (Some(c), Some(bid)) = (live, bid) {
                let now = self.now_ms();
                if c.flags.has(IoFlags::TLS) {
                    self.on_tls_recv(c, bid, res as usize, flags, now);
                    return;
                }
                if c.flags.has(IoFlags::WS) {
                    self.on_ws_recv(c, bid, res as usize, flags, now);
                    return;
                }
                let data = self.bufs.data(bid, res as usize);
                let paused = self.pressured || c.flags.has(IoFlags::PAUSED);
                if paused && self.shard.may_hold_input(c.key) {
                    // Armed before the pressure began, or while paused
                    // (`listen_to_paused`): keep the bytes, decode them when the
                    // connection's turn comes back.
                    self.shard.hold_input(c.key, data, now);
                    self.bufs.consumed(bid, res, flags);
                    self.pause_unless_leaving(c.key);
                    return;
                }
                if self.writes_first(&c) {
                    // Kept until the client drained its output (`service_connection`).
                    self.shard.hold_input(c.key, data, now);
                    self.bufs.consumed(bid, res, flags);
                    self.service.push(c.key);
                    return;
                }
                self.read_buf.extend_from_slice(data);
                self.bufs.consumed(bid, res, flags);
                self.process_read(c.key, now);
                self.service.push(c.key);
                self.note_pressure(now);
                return;
            }
        }
        if let Some(bid) = bid {
            self.bufs.consumed(bid, res, flags);
        }
        let Some(c) = live else {
            return;
        };
        match res {
            r if r == -libc::ENOBUFS
                || r == -libc::EINTR
                || r == -libc::EAGAIN
                || r == -libc::ECANCELED =>
            {
                self.service.push(c.key);
            }
            _ => {
                // The end of the stream (or a reset): what was held undecoded (its output
                // was backed up, or the shard under pressure) came before it, and is its last.
                if self
                    .shard
                    .conn(c.key)
                    .is_some_and(|c| !c.input().is_empty())
                {
                    self.process_buffered(c.key);
                }
                self.drop_connection(c.key);
            }
        }
    }

    fn on_send(&mut self, index: u32, generation: u32, res: i32) {
        let Some(sid) = self
            .sends
            .key_at(index)
            .filter(|k| k.generation() & GEN_MASK == generation)
        else {
            return;
        };
        let (key, data) = self.sends.remove(sid).expect("found above");
        if self.io_mut(key).is_none() {
            return;
        }
        if res < 0 {
            self.drop_connection(key);
            return;
        }
        let sent = res as usize;
        if sent < data.len() {
            self.submit_send(key, data.slice(sent..));
            return;
        }
        if let Some(c) = self.io_mut(key) {
            c.flags.set(IoFlags::SEND_INFLIGHT, false);
        }
        self.service.push(key);
    }
}
