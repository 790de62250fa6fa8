//! TLS on a connection: rustls holds the record state, the event loop moves the bytes.
//!
//! A receive's ciphertext goes in ([`TlsConn::open`]) and plaintext comes out for the shard;
//! what the shard wrote goes in ([`TlsConn::seal`]) with whatever the handshake owes, and
//! ciphertext comes out for one send. Connections without TLS never touch this module.
//! A connection that moves to another shard (takeover) takes its TLS state along through
//! [`Parked`].

use bytes::{Bytes, BytesMut};
use rustls::{ServerConfig, ServerConnection};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::fd::RawFd;
use std::sync::{Arc, Mutex};

/// Plaintext taken from rustls per call.
const PLAIN_CHUNK_BYTES: usize = 16 * 1024;

/// One connection's TLS state.
pub(super) struct TlsConn {
    conn: ServerConnection,
    close_notify_sent: bool,
    /// The client certificate's name is still to be handed to the shard
    /// (`tls.use_identity_as_username`).
    identity_wanted: bool,
}

/// What a receive brought.
pub(super) enum Opened {
    /// Records were read (plaintext, if any, was appended).
    Data,
    /// The client sent close_notify: treat like end of stream.
    Closed,
}

impl TlsConn {
    /// A server connection waiting for the ClientHello.
    pub(super) fn new(
        config: &Arc<ServerConfig>,
        identity_wanted: bool,
    ) -> Result<TlsConn, rustls::Error> {
        let mut conn = ServerConnection::new(config.clone())?;
        // The shard bounds what it writes (`limits.max_outgoing_bytes`) and everything
        // sealed goes out in the same turn: no second limit here, so a write never stops short.
        conn.set_buffer_limit(None);
        Ok(TlsConn {
            conn,
            close_notify_sent: false,
            identity_wanted,
        })
    }

    /// Once, when the handshake is over and an identity is wanted: the Common Name of the
    /// client's certificate (`Some(None)` when it has none).
    pub(super) fn take_identity(&mut self) -> Option<Option<Box<str>>> {
        if !self.identity_wanted || self.conn.is_handshaking() {
            return None;
        }
        self.identity_wanted = false;
        let leaf = self
            .conn
            .peer_certificates()
            .and_then(|chain| chain.first());
        Some(
            leaf.and_then(|c| crate::tls::common_name(c))
                .map(String::into_boxed_str),
        )
    }

    /// Feeds received ciphertext; appends the plaintext it completes to `plain`. An error
    /// is a protocol or certificate failure: the connection closes (after [`Self::alert`]).
    pub(super) fn open(
        &mut self,
        mut ciphertext: &[u8],
        plain: &mut BytesMut,
    ) -> Result<Opened, rustls::Error> {
        while !ciphertext.is_empty() {
            if self.conn.read_tls(&mut ciphertext).is_err() {
                // Its buffer is full of records it could not process yet: never the case
                // once each call processes what it read, so treat it as a broken peer.
                return Err(rustls::Error::General("TLS receive buffer full".into()));
            }
            let state = self.conn.process_new_packets()?;
            if state.plaintext_bytes_to_read() > 0 {
                self.drain_plaintext(plain);
            }
            if state.peer_has_closed() {
                return Ok(Opened::Closed);
            }
        }
        Ok(Opened::Data)
    }

    fn drain_plaintext(&mut self, plain: &mut BytesMut) {
        loop {
            let start = plain.len();
            plain.resize(start + PLAIN_CHUNK_BYTES, 0);
            match self.conn.reader().read(&mut plain[start..]) {
                Ok(n) if n > 0 => plain.truncate(start + n),
                _ => {
                    plain.truncate(start);
                    return;
                }
            }
        }
    }

    /// Whether the handshake (or an alert) has bytes to send though the shard wrote none.
    pub(super) fn wants_write(&self) -> bool {
        self.conn.wants_write()
    }

    /// Encrypts `plain` (may be empty) and returns everything due on the wire, handshake
    /// messages first; empty when nothing is.
    pub(super) fn seal(&mut self, plain: &[u8]) -> Bytes {
        if !plain.is_empty() {
            // Unlimited buffer (see `new`): the whole slice is taken.
            let _ = self.conn.writer().write_all(plain);
        }
        self.take_ciphertext()
    }

    /// Seals `plain` and then a close_notify (once): the connection ends after this send.
    pub(super) fn seal_last(&mut self, plain: &[u8]) -> Bytes {
        if !plain.is_empty() {
            let _ = self.conn.writer().write_all(plain);
        }
        if !self.close_notify_sent && !self.conn.is_handshaking() {
            self.close_notify_sent = true;
            self.conn.send_close_notify();
        }
        self.take_ciphertext()
    }

    /// What rustls queued after a failed [`Self::open`] (an alert), to send once before
    /// the close.
    pub(super) fn alert(&mut self) -> Bytes {
        self.take_ciphertext()
    }

    fn take_ciphertext(&mut self) -> Bytes {
        let mut out = Vec::new();
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut out) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        Bytes::from(out)
    }
}

/// TLS state of connections between two shards: the giving shard parks it under the
/// socket's descriptor before the socket travels through the mesh, the adopting shard takes
/// it when it registers that descriptor. Touched once per takeover of a TLS connection.
#[derive(Clone, Default)]
pub(super) struct Parked(Arc<Mutex<HashMap<RawFd, TlsConn>>>);

impl Parked {
    pub(super) fn park(&self, fd: RawFd, tls: TlsConn) {
        self.lock().insert(fd, tls);
    }

    pub(super) fn take(&self, fd: RawFd) -> Option<TlsConn> {
        self.lock().remove(&fd)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<RawFd, TlsConn>> {
        // A shard that panicked while holding it left a consistent map: keep using it.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Best effort: an alert goes out on a socket about to close, without waiting.
pub(super) fn send_now(fd: RawFd, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    // SAFETY: a send from a valid buffer on our own socket; the result is ignored.
    unsafe {
        libc::send(
            fd,
            data.as_ptr() as *const libc::c_void,
            data.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        );
    }
}
