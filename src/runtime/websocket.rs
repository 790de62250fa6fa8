//! A WebSocket connection's state in the runtime: the opening request until it is complete,
//! then the frame decoder and the control frames owed to the client. The protocol itself is
//! pure, in [`crate::ws`]; this file only keeps what one connection needs between receives.

use bytes::BytesMut;

use crate::ws::{self, Deframer, Fed, Handshake, WsError};

/// Longest opening HTTP request accepted (browsers send well under 2 KiB).
const MAX_REQUEST_BYTES: usize = 8192;

/// One WebSocket connection.
pub(super) struct WsConn {
    /// The opening request received so far; `None` once the connection is upgraded.
    request: Option<Vec<u8>>,
    deframer: Deframer,
    /// Bytes owed to the client ahead of the next MQTT data: the 101 response, pongs.
    reply: Vec<u8>,
    /// The broker's close frame went out: nothing more may follow it (RFC 6455 §5.5.1).
    close_sent: bool,
}

/// What a receive on a WebSocket connection came to.
pub(super) enum WsInput {
    /// The opening request is not complete yet.
    Waiting,
    /// Upgraded; any MQTT bytes were appended.
    Data,
    /// The client sent a close frame: send `reply` (its echo), then close.
    Closed(Vec<u8>),
    /// Refused: send these bytes (an HTTP error, or a close frame), then close.
    Refused(Vec<u8>, WsError),
}

impl WsConn {
    /// A connection that has not sent its opening request yet.
    pub(super) fn new() -> WsConn {
        WsConn {
            request: Some(Vec::new()),
            deframer: Deframer::default(),
            reply: Vec::new(),
            close_sent: false,
        }
    }

    /// True once the opening handshake is done.
    pub(super) fn is_open(&self) -> bool {
        self.request.is_none()
    }

    /// True when control bytes wait to be sent although the shard wrote nothing.
    pub(super) fn wants_write(&self) -> bool {
        !self.reply.is_empty()
    }

    /// Bytes owed to the client that the shard's output does not count: the loop stops
    /// reading a connection while these and its output pass `limits.max_outgoing_bytes`,
    /// so a client that pings and never reads cannot grow its pongs without bound.
    pub(super) fn owed_bytes(&self) -> usize {
        self.reply.len()
    }

    /// True once the close frame went out: a closing connection then has nothing more to
    /// send, and its socket can close.
    pub(super) fn close_sent(&self) -> bool {
        self.close_sent
    }

    /// Takes received bytes: the opening request first, then frames, whose MQTT bytes are
    /// appended to `mqtt` (the loop's `read_buf`, where a plain receive's bytes go).
    pub(super) fn receive(
        &mut self,
        data: &[u8],
        mqtt: &mut BytesMut,
        max_frame_bytes: u64,
    ) -> WsInput {
        let Some(request) = self.request.as_mut() else {
            return self.frames(data, mqtt, max_frame_bytes);
        };
        request.extend_from_slice(data);
        match ws::handshake(request, MAX_REQUEST_BYTES) {
            Handshake::Incomplete => WsInput::Waiting,
            Handshake::Reject { response, error } => WsInput::Refused(response, error),
            Handshake::Accept { response, consumed } => {
                let rest = request.split_off(consumed.min(request.len()));
                self.request = None;
                self.reply.extend_from_slice(&response);
                if rest.is_empty() {
                    WsInput::Data
                } else {
                    self.frames(&rest, mqtt, max_frame_bytes)
                }
            }
        }
    }

    fn frames(&mut self, data: &[u8], mqtt: &mut BytesMut, max_frame_bytes: u64) -> WsInput {
        match self.deframer.feed(data, mqtt, max_frame_bytes) {
            Ok(Fed { reply, closed }) => {
                self.reply.extend_from_slice(&reply);
                if closed {
                    WsInput::Closed(std::mem::take(&mut self.reply))
                } else {
                    WsInput::Data
                }
            }
            Err(error) => {
                let mut close = std::mem::take(&mut self.reply);
                ws::encode_close(error.close_code(), &mut close);
                WsInput::Refused(close, error)
            }
        }
    }

    /// Everything due on the wire: the control bytes owed, then the shard's MQTT output as
    /// one binary frame; with `last`, a normal close frame after it, once. Empty when
    /// nothing is.
    pub(super) fn outgoing(&mut self, mqtt: &[u8], last: bool) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.reply);
        if !self.is_open() {
            // Nothing may go out before the upgrade (the shard writes nothing then).
            return out;
        }
        if !mqtt.is_empty() {
            ws::encode_binary(mqtt, &mut out);
        }
        if last && !self.close_sent {
            ws::encode_close(1000, &mut out);
            self.close_sent = true;
        }
        out
    }
}
