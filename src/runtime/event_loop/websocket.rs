//! WebSocket connections in the loop: receives are unframed before the shard sees them,
//! output is framed before it is sent (the state is in `src/runtime/websocket.rs`, the
//! protocol in `src/ws.rs`). Plain connections only pay the flag test that routes them
//! past this file.

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

    /// A receive on a WebSocket connection: the opening request, then frames whose MQTT
    /// bytes go to the shard exactly as a plain receive's would [MQTT-6.0.0-2]. What the
    /// connection owes (the 101 response, pongs) goes out when it is serviced. A refused
    /// request or a bad frame closes the connection after the HTTP error or close frame.
    pub(super) fn on_ws_recv(&mut self, c: IoConn, bid: u16, len: usize, now: u64) {
        let max_frame = self.max_ws_frame;
        let input = match self.ws.get_mut(&c.key) {
            Some(ws) => {
                let data = self.bufs.data(bid, len);
                ws.receive(data, &mut self.read_buf, max_frame)
            }
            None => WsInput::Closed(Vec::new()),
        };
        self.bufs.recycle(bid);
        let closing = match input {
            WsInput::Waiting => {
                self.service.push(c.key);
                return;
            }
            WsInput::Refused(bytes, error) => {
                tracing::debug!(%error, "WebSocket failure: closing the connection");
                self.shard.note_websocket_failure();
                send_now(c.fd, &bytes);
                self.read_buf.clear();
                self.drop_connection(c.key);
                return;
            }
            WsInput::Data => None,
            WsInput::Closed(echo) => Some(echo),
        };
        self.process_opened(c.key, closing.is_some(), now);
        if let Some(echo) = closing {
            // The client's close frame: the end of the stream, as a plain socket's EOF.
            send_now(c.fd, &echo);
            self.drop_connection(c.key);
            return;
        }
        self.service.push(c.key);
    }
}
