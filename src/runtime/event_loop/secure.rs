//! TLS connections in the loop: receives are opened before the shard sees them, output is
//! sealed before it is sent (see `src/runtime/tls.rs`). Plain connections only pay the flag
//! test that routes them past this file.

use bytes::Bytes;

use super::{EventLoop, IoConn, IoFlags, Key, TlsConn, TLS_HANDSHAKES_PER_TURN};
use crate::runtime::tls::{send_now, Opened};

impl EventLoop {
    /// Marks `key` as a TLS connection with state `tls`.
    pub(super) fn attach_tls(&mut self, key: Key, tls: Box<TlsConn>) {
        if let Some(c) = self.io_mut(key) {
            c.flags.set(IoFlags::TLS, true);
            self.tls.insert(key, tls);
        }
    }

    /// A receive on a TLS connection: records in, plaintext to the shard exactly as a plain
    /// receive would give it; what the handshake owes goes out when the connection is
    /// serviced. A record or certificate the handshake refuses closes the connection
    /// after its alert (so the client can say why). A handshake receive over the turn's
    /// budget is kept for a later turn ([`TLS_HANDSHAKES_PER_TURN`]).
    pub(super) fn on_tls_recv(&mut self, c: IoConn, bid: u16, len: usize, flags: u32, now: u64) {
        // One lookup of the connection's state per receive (disjoint fields borrowed).
        let tls = self.tls.get_mut(&c.key);
        let handshaking = tls.as_ref().is_some_and(|t| t.is_handshaking());
        if handshaking && self.tls_handshakes >= TLS_HANDSHAKES_PER_TURN {
            let data = self.bufs.data(bid, len).to_vec();
            self.bufs.consumed(bid, len as i32, flags);
            self.tls_deferred.push_back((c, data));
            self.shard.note_tls_handshake_deferred();
            return;
        }
        self.tls_handshakes += u32::from(handshaking);
        let data = self.bufs.data(bid, len);
        // `wss://`: the plaintext is WebSocket frames, unframed next (`websocket.rs`).
        let plain = match c.flags.has(IoFlags::WS) {
            true => &mut self.wss_plain,
            false => &mut self.read_buf,
        };
        let (opened, identity) = open_records(tls, &mut self.tls_scratch, plain, data);
        self.bufs.consumed(bid, len as i32, flags);
        self.after_tls_open(c, opened, identity, now);
    }

    /// Handles the handshake receives kept from earlier turns, oldest first, within this
    /// turn's budget. A connection closed meanwhile has no TLS state left and is skipped.
    pub(super) fn resume_deferred_tls(&mut self) {
        while self.tls_handshakes < TLS_HANDSHAKES_PER_TURN {
            let Some((c, data)) = self.tls_deferred.pop_front() else {
                return;
            };
            let live = self.io_mut(c.key).is_some_and(|io| io.fd == c.fd);
            let tls = self.tls.get_mut(&c.key);
            if !live || tls.is_none() {
                continue;
            }
            self.tls_handshakes += 1;
            let plain = match c.flags.has(IoFlags::WS) {
                true => &mut self.wss_plain,
                false => &mut self.read_buf,
            };
            let (opened, identity) = open_records(tls, &mut self.tls_scratch, plain, &data);
            let now = self.now_ms();
            self.after_tls_open(c, opened, identity, now);
        }
    }

    fn after_tls_open(
        &mut self,
        c: IoConn,
        opened: Result<Opened, rustls::Error>,
        identity: Option<Option<Box<str>>>,
        now: u64,
    ) {
        if let Some(name) = identity {
            // Before the plaintext that may carry the CONNECT.
            self.shard.set_peer_identity(c.key, name);
        }
        let closed = match opened {
            Ok(Opened::Data) => false,
            Ok(Opened::Closed) => true,
            Err(e) => {
                tracing::debug!(error = %e, "TLS failure: closing the connection");
                self.shard.note_tls_failure();
                if let Some(tls) = self.tls.get_mut(&c.key) {
                    let alert =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| tls.alert()))
                            .unwrap_or_default();
                    send_now(c.fd, &alert);
                }
                self.read_buf.clear();
                self.wss_plain.clear();
                self.drop_connection(c.key);
                return;
            }
        };
        if c.flags.has(IoFlags::WS) {
            self.on_wss_plain(c, closed, now);
            return;
        }
        self.process_opened(c, closed, now);
        if closed {
            // close_notify: the end of the stream, as a plain socket's EOF.
            self.answer_close_notify(c);
            self.drop_connection(c.key);
            return;
        }
        self.service.push(c.key);
    }

    /// The client's close_notify ends its side: ours goes out before the socket closes
    /// (RFC 8446 §6.1), so that the client reads a clean end, not a truncation.
    pub(super) fn answer_close_notify(&mut self, c: IoConn) {
        if let Some(tls) = self.tls.get_mut(&c.key) {
            send_now(c.fd, &tls.seal_last(&[]));
        }
    }

    /// What goes on the wire for `key` now: the shard's output, framed on a WebSocket
    /// connection after the control frames it owes, then sealed on a TLS connection
    /// together with what the handshake owes (and, with `last`, close_notify).
    /// None when there is nothing to send.
    pub(super) fn outgoing(&mut self, io: IoConn, last: bool) -> Option<Bytes> {
        let conn = self.shard.conn_mut(io.key)?;
        let tls = match io.flags.has(IoFlags::TLS) {
            true => Some(self.tls.get_mut(&io.key)?),
            false => None,
        };
        let handshake_owed = tls.as_ref().is_some_and(|t| t.wants_write());
        // Framed (WebSocket) or as the shard wrote it; either way sealed below.
        let (framed, out) = if io.flags.has(IoFlags::WS) {
            let ws = self.ws.get_mut(&io.key)?;
            // A closing connection owes its close frame once; then (and after close_notify
            // over TLS, sealed with it) it is done, and the loop closes the socket.
            let close_owed = last && !ws.close_sent();
            if conn.out_len() == 0 && !ws.wants_write() && !close_owed && !handshake_owed {
                return None;
            }
            let framed = ws.outgoing(&conn.take_out(), last);
            if tls.is_none() {
                return (!framed.is_empty()).then(|| Bytes::from(framed));
            }
            (framed, bytes::BytesMut::new())
        } else {
            if tls.is_none() {
                return (conn.out_len() > 0).then(|| conn.take_out().freeze());
            }
            if conn.out_len() == 0 && !handshake_owed && !last {
                return None;
            }
            (Vec::new(), conn.take_out())
        };
        let plain = if framed.is_empty() {
            &out[..]
        } else {
            &framed[..]
        };
        let tls = tls?;
        let sealed = if last {
            tls.seal_last(plain)
        } else {
            tls.seal(plain)
        };
        (!sealed.is_empty()).then_some(sealed)
    }
}

/// Opens a connection's `ciphertext` into `plain` (the loop's `read_buf`, where a plain
/// receive's bytes go); also returns the client's certificate name once the handshake is
/// over, when one is wanted.
fn open_records(
    tls: Option<&mut Box<TlsConn>>,
    scratch: &mut Vec<u8>,
    plain: &mut bytes::BytesMut,
    ciphertext: &[u8],
) -> (Result<Opened, rustls::Error>, Option<Option<Box<str>>>) {
    let Some(tls) = tls else {
        return (Err(rustls::Error::General("no TLS state".into())), None);
    };
    // Defence in depth: a panic in the TLS library on a client's bytes ends that
    // connection, not the shard.
    let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        tls.open(ciphertext, scratch, plain)
    }))
    .unwrap_or_else(|_| Err(rustls::Error::General("TLS library panic".into())));
    (opened, tls.take_identity())
}
