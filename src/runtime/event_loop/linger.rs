//! Lingering close: when the broker ends a connection after its last bytes (a DISCONNECT or
//! a refusing CONNACK, with its reason code), the socket's write side is closed (FIN) and
//! whatever the client still sends is read and discarded until it closes too, or
//! [`LINGER`] passes. Closing at once with unread input makes the kernel reset the
//! connection, and a client still sending (the rest of a packet over Maximum Packet Size,
//! PUBLISHes past Receive Maximum) would then lose the reason it was sent — it sees
//! "connection reset" instead of 0x95 or 0x93. At most [`MAX_LINGERING`] sockets linger per
//! shard (counted in the descriptor reserve); past that one closes at once, as before.
//!
//! Before that, a connection being closed flushes what it still has to send. A client that
//! stops reading would hold that flush, its socket and its session's detach forever: after
//! `limits.close_timeout_secs` the socket is shut down instead, which fails the pending send
//! and ends the connection (`close_timeouts`).

use std::os::fd::RawFd;
use std::time::Duration;

use io_uring::{opcode, types};

use super::{user_data, EventLoop, IoConn, IoFlags, Key, GEN_MASK, OP_LINGER};

/// Longest a closed connection is drained.
pub(super) const LINGER: Duration = Duration::from_secs(2);
/// Sockets one shard drains at once (part of `limits::FD_RESERVE_PER_SHARD`).
pub(super) const MAX_LINGERING: usize = 16;
/// Bytes one discarding receive takes.
pub(super) const DISCARD_BYTES: usize = 16 * 1024;

/// One lingering socket.
pub(super) struct Lingering {
    fd: RawFd,
    /// Loop time (ms) after which it is shut down whatever the client does.
    deadline_ms: u64,
}

impl EventLoop {
    /// Ends `key` after its last send: lingers when there is room, else closes at once.
    /// The shard forgets the connection now either way.
    pub(super) fn finish_connection(&mut self, key: Key) {
        if self.lingering.len() >= MAX_LINGERING {
            self.drop_connection(key);
            return;
        }
        let Some(io) = self.detach_io(key) else {
            return;
        };
        // SAFETY: we own the fd; the write side ends after the bytes already queued.
        unsafe { libc::shutdown(io.fd, libc::SHUT_WR) };
        let now = self.now_ms();
        let deadline_ms = now + LINGER.as_millis() as u64;
        let id = self.lingering.insert(Lingering {
            fd: io.fd,
            deadline_ms,
        });
        self.arm_discard(id);
        self.shard.on_closed(key, now);
    }

    /// A discarding receive on lingering socket `id` (into one scratch buffer that nothing
    /// reads: every lingering receive may write it).
    fn arm_discard(&mut self, id: Key) {
        let Some(l) = self.lingering.get(id) else {
            return;
        };
        let sqe = opcode::Recv::new(
            types::Fd(l.fd),
            self.discard.as_mut_ptr(),
            DISCARD_BYTES as u32,
        )
        .build()
        .user_data(user_data(OP_LINGER, id.index(), id.generation()));
        self.push(sqe);
    }

    /// A discarding receive completed: more input is read and dropped; the client's close,
    /// an error, or the deadline's shutdown closes the socket.
    pub(super) fn on_discard(&mut self, index: u32, generation: u32, res: i32) {
        let Some(id) = self
            .lingering
            .key_at(index)
            .filter(|k| k.generation() & GEN_MASK == generation)
        else {
            return;
        };
        let expired = self
            .lingering
            .get(id)
            .is_some_and(|l| self.epoch.elapsed().as_millis() as u64 >= l.deadline_ms);
        if res > 0 && !expired {
            self.arm_discard(id);
            return;
        }
        if let Some(l) = self.lingering.remove(id) {
            // SAFETY: the lingering socket is ours and nothing else refers to it.
            unsafe { libc::close(l.fd) };
        }
    }

    /// At each tick: sockets past their deadline are shut down, which completes their
    /// discarding receive (and closes them there).
    pub(super) fn expire_lingering(&mut self, now_ms: u64) {
        if self.lingering.is_empty() {
            return;
        }
        for (_, l) in self.lingering.iter() {
            if now_ms >= l.deadline_ms {
                // SAFETY: we own the fd; shutting it down ends its pending receive.
                unsafe { libc::shutdown(l.fd, libc::SHUT_RDWR) };
            }
        }
    }

    /// At shutdown: every lingering socket closes now.
    pub(super) fn close_lingering(&mut self) {
        for id in self.lingering.keys() {
            if let Some(l) = self.lingering.remove(id) {
                // SAFETY: the lingering socket is ours.
                unsafe {
                    libc::shutdown(l.fd, libc::SHUT_RDWR);
                    libc::close(l.fd);
                }
            }
        }
    }

    /// Gives a connection that began closing its flush deadline (once).
    pub(super) fn watch_close(&mut self, io: IoConn) {
        if io.flags.has(IoFlags::CLOSE_WATCHED) {
            return;
        }
        let deadline_ms = self.now_ms() + self.close_timeout_ms;
        if let Some(c) = self.io_mut(io.key) {
            c.flags.set(IoFlags::CLOSE_WATCHED, true);
            self.closing.push((io.key, deadline_ms));
        }
    }

    /// At each tick: closing connections past their deadline are shut down; the failed send
    /// (or the next service) then ends them and detaches their sessions.
    pub(super) fn expire_closing(&mut self, now_ms: u64) {
        if self.closing.is_empty() {
            return;
        }
        let mut closing = std::mem::take(&mut self.closing);
        closing.retain(|&(key, deadline_ms)| {
            let Some(io) = self.io_mut(key).copied() else {
                return false; // Ended, or lingering.
            };
            if now_ms < deadline_ms {
                return true;
            }
            // SAFETY: we own the fd; shutting it down completes its pending send with an error.
            unsafe { libc::shutdown(io.fd, libc::SHUT_RDWR) };
            self.shard.note_close_timeout();
            self.service.push(key);
            false
        });
        self.closing = closing;
    }
}
