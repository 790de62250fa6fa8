//! Moving a connection between shards (takeover: the connection goes to the shard of its
//! session, see `src/shard/handover.rs`). A file descriptor is process-wide, so the shard
//! that receives one only has to put it in its own io_uring; the shard that gives it away
//! must have nothing pending on it and must never touch it again.

use bytes::BytesMut;
use io_uring::opcode;
use std::os::fd::RawFd;

use super::{user_data, EventLoop, IoConn, IoFlags, OP_CANCEL, OP_RECV};

impl EventLoop {
    /// Takes over the sockets of connections that other shards moved here (their session
    /// lives on this shard). The shard already queued their CONNACK (or their close).
    pub(super) fn register_adopted(&mut self) {
        let mut adopted = std::mem::take(&mut self.adopted);
        self.shard.take_adopted(&mut adopted);
        for &(key, socket) in &adopted {
            self.register(key, socket as RawFd);
            self.service.push(key);
        }
        self.adopted = adopted;
    }

    /// A connection moves to the shard of its session: once no receive or send is pending
    /// on its socket (a receive may still complete with data, which then moves too), the
    /// shard sends the socket away and this loop never touches it again.
    pub(super) fn hand_over(&mut self, io: IoConn) {
        let key = io.key;
        let Some(conn) = self.shard.conn_mut(key) else {
            return;
        };
        if io.flags.has(IoFlags::SEND_INFLIGHT) {
            return; // Its completion services the connection again.
        }
        if conn.out_len() > 0 {
            let data = conn.take_out().freeze();
            self.submit_send(key, data);
            return;
        }
        if io.flags.has(IoFlags::RECV_ARMED) {
            if !io.flags.has(IoFlags::CANCEL_SENT) {
                if let Some(c) = self.io_mut(key) {
                    c.flags.set(IoFlags::CANCEL_SENT, true);
                }
                let target = user_data(OP_RECV, key.index(), key.generation());
                let sqe = opcode::AsyncCancel::new(target)
                    .build()
                    .user_data(user_data(OP_CANCEL, 0, 0));
                self.push(sqe);
            }
            return; // The receive's completion services the connection again.
        }
        let mut unread = BytesMut::new();
        if self.shard.hand_over(key, io.fd as u64, &mut unread) {
            self.io[key.index() as usize] = None;
        }
    }
}
