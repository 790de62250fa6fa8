//! Listening sockets in the loop: one multishot accept per listener, and what each kind
//! of listener gives a new connection (TLS state, WebSocket state, both for `wss://`).

use std::io;
use std::os::fd::RawFd;

use io_uring::{cqueue, opcode, types};

use super::{user_data, EventLoop, IoConn, IoFlags, Key, TlsConn, WsConn, OP_ACCEPT, TICK};

/// Listening sockets a shard may have: plain, TLS, WebSocket, WebSocket over TLS.
pub(super) const LISTENERS: usize = 4;
const LISTENER_TLS: u32 = 1;
const LISTENER_WS: u32 = 2;
const LISTENER_WSS: u32 = 3;

impl EventLoop {
    /// Accepts on `listener` (an index into `listeners`), if it exists.
    pub(super) fn arm_accept(&mut self, listener: u32) {
        let Some(fd) = self.listeners[listener as usize] else {
            return;
        };
        let sqe = opcode::AcceptMulti::new(types::Fd(fd))
            .build()
            .user_data(user_data(OP_ACCEPT, listener, 0));
        self.push(sqe);
    }

    /// At shutdown: the listening sockets stop listening and close, so that a client
    /// connecting during the grace is refused by the kernel (one waiting in the accept queue
    /// is reset) instead of being accepted only to get CONNACK 0x88. Their pending accepts
    /// complete with an error, which `on_accept_completion` ignores.
    pub(super) fn stop_listening(&mut self) {
        for fd in self.listeners.iter_mut().filter_map(Option::take) {
            // SAFETY: we own the listening sockets; the ring holds its own reference until
            // the accept completes.
            unsafe {
                libc::shutdown(fd, libc::SHUT_RDWR);
                libc::close(fd);
            }
        }
    }

    /// A multishot accept's completion: a new socket, or an error that backs the listener
    /// off until the next tick.
    pub(super) fn on_accept_completion(&mut self, index: u32, res: i32, flags: u32) {
        let listener = index.min(LISTENERS as u32 - 1);
        if self.listeners[listener as usize].is_none() {
            // Stopped listening (shutdown): a socket accepted just before is still served.
            if res >= 0 {
                self.on_accept(res, listener);
            }
            return;
        }
        if res >= 0 {
            self.on_accept(res, listener);
            if !cqueue::more(flags) {
                self.arm_accept(listener);
            }
        } else if !cqueue::more(flags) && self.accept_backoff & (1 << listener) == 0 {
            // Out of file descriptors or memory: try again at the next tick, so a
            // full listen queue does not turn into a busy loop.
            tracing::warn!(
                error = %io::Error::from_raw_os_error(-res),
                "accept failed; retrying in {TICK:?}"
            );
            self.accept_backoff |= 1 << listener;
        }
    }

    /// A new socket from listener 0 (plain), 1 (TLS), 2 (WebSocket) or 3 (WebSocket over
    /// TLS).
    pub(super) fn on_accept(&mut self, fd: RawFd, listener: u32) {
        let tls = listener == LISTENER_TLS || listener == LISTENER_WSS;
        let tls_conn = match (tls, &self.tls_config) {
            (false, _) => None,
            (true, Some(config)) => match TlsConn::new(config, self.tls_identity) {
                Ok(t) => Some(Box::new(t)),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot start a TLS session");
                    // SAFETY: the accepted socket is ours and nothing refers to it yet.
                    unsafe { libc::close(fd) };
                    return;
                }
            },
            (true, None) => unreachable!("a TLS listener has a TLS configuration"),
        };
        let one: libc::c_int = 1;
        // SAFETY: setsockopt on a socket we own, with a valid int.
        unsafe {
            libc::setsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_NODELAY,
                &one as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
        let now = self.now_ms();
        let key = self.shard.accept(now);
        self.register(key, fd);
        if let Some(t) = tls_conn {
            self.attach_tls(key, t);
        }
        if listener == LISTENER_WS || listener == LISTENER_WSS {
            self.attach_ws(key, Box::new(WsConn::new()));
        }
        self.arm_recv(key);
    }

    /// Records the socket of a connection the shard knows as `key`.
    pub(super) fn register(&mut self, key: Key, fd: RawFd) {
        let index = key.index() as usize;
        if self.io.len() <= index {
            // Grow by an eighth (at least 1,024) rather than doubling: at most 12% slack
            // for a table that only grows with the connection count.
            let grow = (self.io.len() / 8).max(1024).max(index + 1 - self.io.len());
            self.io.reserve_exact(grow);
            self.io.resize(index + 1, None);
        }
        self.io[index] = Some(IoConn {
            fd,
            key,
            flags: IoFlags::default(),
        });
    }
}
