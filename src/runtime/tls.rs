//! TLS on a connection: rustls holds the record state, the event loop moves the bytes.
//!
//! A receive's ciphertext goes in ([`TlsConn::open`]) and plaintext comes out for the shard;
//! what the shard wrote goes in ([`TlsConn::seal`]) with whatever the handshake owes, and
//! ciphertext comes out for one send. Connections without TLS never touch this module.
//! A connection that moves to another shard (takeover) takes its TLS state along through
//! [`Parked`].

use bytes::{Bytes, BytesMut};
use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{
    ConnectionState, EncodeError, EncryptError, InsufficientSizeError, UnbufferedStatus,
};
use rustls::ServerConfig;
use std::collections::HashMap;
use std::os::fd::RawFd;
use std::sync::{Arc, Mutex};

/// One connection's TLS state. rustls' unbuffered API: records are opened in place in a
/// buffer of the loop's, and this keeps no buffer of its own between receives unless a
/// record arrived incomplete (the buffered `ServerConnection` kept 4 KiB per connection
/// for ever).
pub(super) struct TlsConn {
    conn: UnbufferedServerConnection,
    /// The start of a record that has not fully arrived (usually empty, unallocated).
    partial: Vec<u8>,
    /// Handshake records (or an alert) waiting for the next send.
    outbox: Vec<u8>,
    /// Plaintext the shard wrote before the handshake allowed application data.
    early_plain: Vec<u8>,
    close_notify_sent: bool,
    /// The client certificate's name is still to be handed to the shard
    /// (`tls.use_identity_as_username`).
    identity_wanted: bool,
}

/// States one call of [`TlsConn::drive`] may go through: a 4 KiB receive holds at most a
/// few hundred records.
const MAX_STATES_PER_CALL: usize = 4096;

/// What a receive brought.
pub(super) enum Opened {
    /// Records were read (plaintext, if any, was appended).
    Data,
    /// The client sent close_notify: treat like end of stream.
    Closed,
}

/// What to encrypt when the connection may send application data.
struct Seal<'a> {
    plain: &'a [u8],
    close_notify: bool,
}

/// Writes what `write` produces at the end of `out`, growing it to the size rustls asks for.
fn append<E>(
    out: &mut Vec<u8>,
    mut write: impl FnMut(&mut [u8]) -> Result<usize, E>,
    too_small: impl Fn(&E) -> Option<usize>,
) -> Result<(), E> {
    let start = out.len();
    let mut room = 512;
    loop {
        out.resize(start + room, 0);
        match write(&mut out[start..]) {
            Ok(n) => {
                out.truncate(start + n);
                return Ok(());
            }
            Err(e) => match too_small(&e) {
                Some(required) if required > room => room = required,
                _ => {
                    out.truncate(start);
                    return Err(e);
                }
            },
        }
    }
}

fn encode_too_small(e: &EncodeError) -> Option<usize> {
    match e {
        EncodeError::InsufficientSize(InsufficientSizeError { required_size }) => {
            Some(*required_size)
        }
        _ => None,
    }
}

fn encrypt_too_small(e: &EncryptError) -> Option<usize> {
    match e {
        EncryptError::InsufficientSize(InsufficientSizeError { required_size }) => {
            Some(*required_size)
        }
        _ => None,
    }
}

fn failed(e: impl std::fmt::Display) -> rustls::Error {
    rustls::Error::General(e.to_string())
}

impl TlsConn {
    /// A server connection waiting for the ClientHello.
    pub(super) fn new(
        config: &Arc<ServerConfig>,
        identity_wanted: bool,
    ) -> Result<TlsConn, rustls::Error> {
        Ok(TlsConn {
            conn: UnbufferedServerConnection::new(config.clone())?,
            partial: Vec::new(),
            outbox: Vec::new(),
            early_plain: Vec::new(),
            close_notify_sent: false,
            identity_wanted,
        })
    }

    /// Runs the connection over `incoming` (opened in place): plaintext is appended to
    /// `plain`, handshake records to the outbox, and `seal` is encrypted once application
    /// data may be sent. Returns how many bytes of `incoming` were used up, and whether
    /// the peer closed.
    fn drive(
        &mut self,
        incoming: &mut [u8],
        plain: &mut BytesMut,
        mut seal: Option<Seal<'_>>,
    ) -> Result<(usize, bool), rustls::Error> {
        let mut used = 0;
        // Each turn consumes a record or a queued message; a bound all the same, so that no
        // peer can keep a shard here.
        for _ in 0..MAX_STATES_PER_CALL {
            let UnbufferedStatus { mut discard, state } =
                self.conn.process_tls_records(&mut incoming[used..]);
            let mut stop = false;
            let mut closed = false;
            match state? {
                ConnectionState::ReadTraffic(mut records) => {
                    while let Some(record) = records.next_record() {
                        let record = record?;
                        discard += record.discard;
                        plain.extend_from_slice(record.payload);
                    }
                }
                ConnectionState::EncodeTlsData(mut handshake) => {
                    append(&mut self.outbox, |b| handshake.encode(b), encode_too_small)
                        .map_err(failed)?;
                }
                ConnectionState::TransmitTlsData(mut transmit) => {
                    // The outbox goes out with the connection's next send, ahead of anything
                    // sealed later.
                    if !self.early_plain.is_empty() {
                        if let Some(mut write) = transmit.may_encrypt_app_data() {
                            let early = std::mem::take(&mut self.early_plain);
                            append(
                                &mut self.outbox,
                                |b| write.encrypt(&early, b),
                                encrypt_too_small,
                            )
                            .map_err(failed)?;
                        }
                    }
                    transmit.done();
                }
                ConnectionState::WriteTraffic(mut write) => {
                    if let Some(s) = seal.take() {
                        let early = std::mem::take(&mut self.early_plain);
                        for data in [&early[..], s.plain] {
                            if !data.is_empty() {
                                append(
                                    &mut self.outbox,
                                    |b| write.encrypt(data, b),
                                    encrypt_too_small,
                                )
                                .map_err(failed)?;
                            }
                        }
                        if s.close_notify && !self.close_notify_sent {
                            self.close_notify_sent = true;
                            append(
                                &mut self.outbox,
                                |b| write.queue_close_notify(b),
                                encrypt_too_small,
                            )
                            .map_err(failed)?;
                        }
                    }
                    stop = true;
                }
                ConnectionState::BlockedHandshake => {
                    if let Some(s) = seal.take() {
                        self.early_plain.extend_from_slice(s.plain);
                    }
                    stop = true;
                }
                ConnectionState::PeerClosed | ConnectionState::Closed => {
                    stop = true;
                    closed = true;
                }
                // No early data is accepted (`max_early_data_size` is 0).
                _ => return Err(rustls::Error::General("unexpected TLS state".into())),
            }
            used += discard;
            if stop {
                return Ok((used, closed));
            }
        }
        Err(rustls::Error::General("TLS: no progress".into()))
    }

    /// Feeds received ciphertext; appends the plaintext it completes to `plain`. `scratch`
    /// is the loop's buffer for opening records in place. An error is a protocol or
    /// certificate failure: the connection closes, after [`Self::alert`].
    pub(super) fn open(
        &mut self,
        ciphertext: &[u8],
        scratch: &mut Vec<u8>,
        plain: &mut BytesMut,
    ) -> Result<Opened, rustls::Error> {
        scratch.clear();
        scratch.append(&mut self.partial);
        scratch.extend_from_slice(ciphertext);
        self.partial = Vec::new();
        let (used, closed) = self.drive(scratch, plain, None)?;
        if used < scratch.len() && !closed {
            self.partial = scratch[used..].to_vec();
        }
        Ok(if closed { Opened::Closed } else { Opened::Data })
    }

    /// True until the handshake is complete: its receives cost the shard the most.
    pub(super) fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// Whether the handshake (or an alert) has bytes to send though the shard wrote none.
    pub(super) fn wants_write(&self) -> bool {
        !self.outbox.is_empty()
    }

    /// Encrypts `plain` (may be empty) and returns everything due on the wire, handshake
    /// messages first; empty when nothing is.
    pub(super) fn seal(&mut self, plain: &[u8]) -> Bytes {
        self.seal_with(plain, false)
    }

    /// Seals `plain` and then a close_notify (once): the connection ends after this send.
    pub(super) fn seal_last(&mut self, plain: &[u8]) -> Bytes {
        self.seal_with(plain, true)
    }

    fn seal_with(&mut self, plain: &[u8], close_notify: bool) -> Bytes {
        if self.conn.is_handshaking() {
            // Nothing may be encrypted yet (the shard writes nothing before CONNECT, so this
            // is rare): kept for the handshake's end; a close just closes.
            self.early_plain.extend_from_slice(plain);
        } else if !plain.is_empty() || close_notify {
            let seal = Seal {
                plain,
                close_notify,
            };
            // rustls remembers where in the buffer a partial message began: it must see the
            // same bytes again, never an unrelated (empty) buffer.
            let mut partial = std::mem::take(&mut self.partial);
            let mut opened = BytesMut::new();
            match self.drive(&mut partial, &mut opened, Some(seal)) {
                Ok((used, _)) => {
                    // `open` consumed every whole record: only a partial one can be here.
                    debug_assert!(used == 0 && opened.is_empty());
                    partial.drain(..used.min(partial.len()));
                }
                Err(e) => tracing::debug!(error = %e, "TLS: cannot seal output"),
            }
            self.partial = partial;
        }
        Bytes::from(std::mem::take(&mut self.outbox))
    }

    /// The alert rustls queued when [`Self::open`] failed (a handshake refused, a bad
    /// record), to send once before the close. Queued messages are taken without looking
    /// at any receive buffer (the failed one is gone, and rustls must never see another in
    /// its place), so only while one is queued.
    pub(super) fn alert(&mut self) -> Bytes {
        for _ in 0..4 {
            if !self.conn.wants_write() {
                break;
            }
            match self.conn.process_tls_records(&mut []).state {
                Ok(ConnectionState::EncodeTlsData(mut alert)) => {
                    if append(&mut self.outbox, |b| alert.encode(b), encode_too_small).is_err() {
                        break;
                    }
                }
                _ => break,
            }
        }
        Bytes::from(std::mem::take(&mut self.outbox))
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
}

/// TLS and WebSocket state of connections between two shards: the giving shard parks it
/// under the socket's descriptor before the socket travels through the mesh, the adopting
/// shard takes it when it registers that descriptor. Touched once per takeover of such a
/// connection.
#[derive(Clone, Default)]
pub(super) struct Parked {
    tls: Arc<Mutex<HashMap<RawFd, Box<TlsConn>>>>,
    ws: Arc<Mutex<HashMap<RawFd, Box<super::websocket::WsConn>>>>,
}

/// Locks a parking map; a shard that panicked while holding it left a consistent map.
fn lock<T>(map: &Mutex<HashMap<RawFd, T>>) -> std::sync::MutexGuard<'_, HashMap<RawFd, T>> {
    map.lock().unwrap_or_else(|e| e.into_inner())
}

impl Parked {
    pub(super) fn park(&self, fd: RawFd, tls: Box<TlsConn>) {
        lock(&self.tls).insert(fd, tls);
    }

    pub(super) fn take(&self, fd: RawFd) -> Option<Box<TlsConn>> {
        lock(&self.tls).remove(&fd)
    }

    pub(super) fn park_ws(&self, fd: RawFd, ws: Box<super::websocket::WsConn>) {
        lock(&self.ws).insert(fd, ws);
    }

    pub(super) fn take_ws(&self, fd: RawFd) -> Option<Box<super::websocket::WsConn>> {
        lock(&self.ws).remove(&fd)
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
