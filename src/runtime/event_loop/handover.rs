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
            if let Some(tls) = self.parked.take(socket as RawFd) {
                self.attach_tls(key, tls);
            }
            if let Some(ws) = self.parked.take_ws(socket as RawFd) {
                self.attach_ws(key, ws);
            }
            self.service.push(key);
        }
        self.adopted = adopted;
    }

    /// A connection moves to the shard of its session: once no receive or send is pending
    /// on its socket (a receive may still complete with data, which then moves too), the
    /// shard sends the socket away and this loop never touches it again.
    pub(super) fn hand_over(&mut self, io: IoConn) {
        let key = io.key;
        if self.shard.conn_mut(key).is_none() {
            return;
        }
        if io.flags.has(IoFlags::SEND_INFLIGHT) {
            return; // Its completion services the connection again.
        }
        if let Some(data) = self.outgoing(io, false) {
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
        // TLS and WebSocket state travel beside the socket: parked before the socket is sent
        // (the other shard may adopt it at once), taken back if the shard kept the connection.
        let tls = self.tls.remove(&key);
        let had_tls = tls.is_some();
        if let Some(tls) = tls {
            self.parked.park(io.fd, tls);
        }
        let ws = self.ws.remove(&key);
        let had_ws = ws.is_some();
        if let Some(ws) = ws {
            self.parked.park_ws(io.fd, ws);
        }
        let mut unread = BytesMut::new();
        if self.shard.hand_over(key, io.fd as u64, &mut unread) {
            self.io[key.index() as usize] = None;
        } else {
            if had_tls {
                if let Some(tls) = self.parked.take(io.fd) {
                    self.tls.insert(key, tls);
                }
            }
            if had_ws {
                if let Some(ws) = self.parked.take_ws(io.fd) {
                    self.ws.insert(key, ws);
                }
            }
        }
    }
}
