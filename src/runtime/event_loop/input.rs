//! Received MQTT bytes to the shard: decoded in place from the loop's read buffer when the
//! connection has no partial packet, kept with the connection otherwise, or held while
//! the shard is under delivery pressure.

use bytes::BytesMut;

use super::{EventLoop, IoConn, Key};

impl EventLoop {
    /// New bytes are in `read_buf`: decode them in place when the connection has no
    /// partial packet, and keep only an incomplete tail in the connection.
    pub(super) fn process_read(&mut self, key: Key, now: u64) {
        let shard = &mut self.shard;
        let rb = &mut self.read_buf;
        let Some(conn) = shard.conn_mut(key) else {
            rb.clear();
            return;
        };
        if conn.input().is_empty() {
            shard.on_input(key, rb, now);
            if !rb.is_empty() {
                if let Some(conn) = shard.conn_mut(key) {
                    conn.set_input(BytesMut::from(&rb[..]));
                }
                rb.clear();
            }
        } else {
            let mut input = conn.take_input();
            input.extend_from_slice(rb);
            rb.clear();
            shard.on_input(key, &mut input, now);
            if let Some(conn) = shard.conn_mut(key) {
                conn.set_input(input);
            }
        }
    }

    /// MQTT bytes a TLS or WebSocket connection's receive left in `read_buf`: decoded now,
    /// or held (unless it is `closing`: then they are its last) — under delivery pressure
    /// for the connection's turn, or until its output drained (`writes_first`).
    pub(super) fn process_opened(&mut self, c: IoConn, closing: bool, now: u64) {
        let key = c.key;
        if self.read_buf.is_empty() {
            if closing {
                // A close_notify or close frame alone: input held before it is the last.
                self.process_buffered(key);
            }
            return;
        }
        let paused = self.pressured || c.flags.has(super::IoFlags::PAUSED);
        let held_for_pressure = paused && self.shard.may_hold_input(key);
        if !closing && (held_for_pressure || self.writes_first(&c)) {
            self.shard.hold_input(key, &self.read_buf, now);
            self.read_buf.clear();
            if held_for_pressure {
                self.pause_unless_leaving(key);
            }
        } else {
            self.process_read(key, now);
            self.note_pressure(now);
        }
    }

    /// Decodes input that waited while the connection was blocked.
    pub(super) fn process_buffered(&mut self, key: Key) {
        let now = self.now_ms();
        let Some(conn) = self.shard.conn_mut(key) else {
            return;
        };
        let mut input = conn.take_input();
        self.shard.on_input(key, &mut input, now);
        if let Some(conn) = self.shard.conn_mut(key) {
            conn.set_input(input);
        }
    }
}
