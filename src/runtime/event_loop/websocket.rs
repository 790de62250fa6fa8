//! WebSocket connections in the loop: receives are unframed before the shard sees them,
//! output is framed before it is sent (the state is in `src/runtime/websocket.rs`, the
//! protocol in `src/ws.rs`). Over TLS (`wss://`) the records are opened first
//! (`secure.rs`) and the frames travel inside them. Plain connections only pay the flag
//! test that routes them past this file.

use ahash::AHashMap;
use bytes::BytesMut;

use super::{EventLoop, IoConn, IoFlags, Key, WsConn};
use crate::runtime::tls::send_now;
use crate::runtime::websocket::WsInput;

impl EventLoop {
    /// Marks `key` as a WebSocket connection with state `ws`.
    pub(super) fn attach_ws(&mut self, key: Key, ws: Box<WsConn>) {
        if let Some(c) = self.io_mut(key) {
            c.flags.set(IoFlags::WS, true);
            self.ws.insert(key, ws);
        }
    }

    /// A receive on a plain `ws://` connection.
    pub(super) fn on_ws_recv(&mut self, c: IoConn, bid: u16, len: usize, flags: u32, now: u64) {
        let data = self.bufs.data(bid, len);
        let input = receive_ws(
            &mut self.ws,
            c.key,
            data,
            &mut self.read_buf,
            self.max_ws_frame,
        );
        self.bufs.consumed(bid, len as i32, flags);
        self.after_ws_input(c, input, now);
    }

    /// Plaintext a `wss://` connection's records opened into `wss_plain`: its WebSocket
    /// bytes. With `tls_closed` (close_notify) they are the stream's last.
    pub(super) fn on_wss_plain(&mut self, c: IoConn, tls_closed: bool, now: u64) {
        let mut plain = std::mem::take(&mut self.wss_plain);
        let input = if plain.is_empty() {
            WsInput::Waiting // handshake records only
        } else {
            receive_ws(
                &mut self.ws,
                c.key,
                &plain,
                &mut self.read_buf,
                self.max_ws_frame,
            )
        };
        plain.clear();
        self.wss_plain = plain;
        if tls_closed {
            if matches!(input, WsInput::Data) {
                self.process_opened(c, true, now);
            }
            self.read_buf.clear();
            self.answer_close_notify(c);
            self.drop_connection(c.key);
            return;
        }
        self.after_ws_input(c, input, now);
    }

    /// What a receive came to: the opening request, then frames whose MQTT bytes go to the
    /// shard exactly as a plain receive's would [MQTT-6.0.0-2]. What the connection owes
    /// (the 101 response, pongs) goes out when it is serviced. A refused request or a bad
    /// frame closes the connection after the HTTP error or close frame.
    fn after_ws_input(&mut self, c: IoConn, input: WsInput, now: u64) {
        let closing = match input {
            WsInput::Waiting => {
                self.service.push(c.key);
                return;
            }
            WsInput::Refused(bytes, error) => {
                tracing::debug!(%error, "WebSocket failure: closing the connection");
                self.shard.note_websocket_failure();
                self.send_last(c, &bytes);
                self.read_buf.clear();
                self.drop_connection(c.key);
                return;
            }
            WsInput::Data => None,
            WsInput::Closed(echo) => Some(echo),
        };
        self.process_opened(c, closing.is_some(), now);
        if let Some(echo) = closing {
            // The client's close frame: the end of the stream, as a plain socket's EOF.
            self.send_last(c, &echo);
            self.drop_connection(c.key);
            return;
        }
        self.service.push(c.key);
    }

    /// Sends `bytes` now, the connection's last (sealed, with close_notify, over TLS).
    fn send_last(&mut self, c: IoConn, bytes: &[u8]) {
        match self.tls.get_mut(&c.key) {
            Some(tls) if c.flags.has(IoFlags::TLS) => send_now(c.fd, &tls.seal_last(bytes)),
            _ => send_now(c.fd, bytes),
        }
    }
}

/// Feeds one receive's WebSocket bytes to `key`'s state; its MQTT bytes go to `mqtt` (the
/// loop's `read_buf`).
fn receive_ws(
    ws: &mut AHashMap<Key, Box<WsConn>>,
    key: Key,
    data: &[u8],
    mqtt: &mut BytesMut,
    max_frame_bytes: u64,
) -> WsInput {
    match ws.get_mut(&key) {
        Some(ws) => ws.receive(data, mqtt, max_frame_bytes),
        None => WsInput::Closed(Vec::new()),
    }
}
