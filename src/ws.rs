//! MQTT over WebSocket (MQTT 5.0 chapter 6, MQTT 3.1.1 §6): the server side of RFC 6455.
//!
//! Pure: bytes in, bytes out. [`handshake`] reads the HTTP upgrade request and writes the
//! 101 (or 400 / 426) response; a [`Deframer`] per connection turns client frames into the
//! MQTT byte stream the codec reads; [`encode_binary`] wraps what the broker sends. Browsers
//! and cloud load balancers only speak HTTP(S), which is why brokers offer this transport.
//!
//! Limits: the request is bounded by the caller's `max_request_bytes`, each data frame by
//! `max_frame_bytes`, control frames by 125 bytes (RFC 6455 §5.5). A fragmented message is not
//! bounded here: its bytes go straight to the MQTT codec, whose maximum packet size applies.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::BytesMut;
use sha1::{Digest, Sha1};
use thiserror::Error;

/// RFC 6455 §1.3: appended to the client's key before hashing it into the accept value.
const ACCEPT_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;
const FIN: u8 = 0x80;
/// RFC 6455 §5.5: control frames carry at most 125 payload bytes.
const MAX_CONTROL_BYTES: usize = 125;

/// Why a WebSocket connection is refused or ended.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum WsError {
    /// The upgrade request is not a valid RFC 6455 §4.2.1 opening handshake.
    #[error("bad WebSocket upgrade request: {0}")]
    BadRequest(&'static str),
    /// No end of the request ("\r\n\r\n") within the allowed size.
    #[error("upgrade request too large")]
    RequestTooLarge,
    /// Sec-WebSocket-Version is missing or not 13 (RFC 6455 §4.2.2: answered with 426).
    #[error("unsupported Sec-WebSocket-Version (only 13)")]
    UnsupportedVersion,
    /// The client did not offer the "mqtt" subprotocol [MQTT-6.0.0-3].
    #[error("Sec-WebSocket-Protocol does not list mqtt")]
    NotMqttSubprotocol,
    /// A frame breaks RFC 6455 framing rules.
    #[error("WebSocket protocol error: {0}")]
    ProtocolError(&'static str),
    /// A data frame's payload is larger than this listener accepts.
    #[error("WebSocket frame too large")]
    FrameTooLarge,
    /// MQTT is carried in binary frames only [MQTT-6.0.0-1].
    #[error("WebSocket text frame (MQTT needs binary frames)")]
    TextFrame,
}

impl WsError {
    /// The close status code to send (RFC 6455 §7.4.1), so the client learns why. Handshake
    /// errors never reach a close frame (the HTTP response says why); they map to 1002.
    pub fn close_code(&self) -> u16 {
        match self {
            WsError::TextFrame => 1003,
            WsError::FrameTooLarge => 1009,
            _ => 1002,
        }
    }
}

/// The outcome of reading the opening HTTP request from the bytes received so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Handshake {
    /// No complete request yet (no "\r\n\r\n"): wait for more bytes.
    Incomplete,
    /// A valid upgrade: send `response` (the full "HTTP/1.1 101 Switching Protocols" response
    /// with Upgrade, Connection, Sec-WebSocket-Accept and `Sec-WebSocket-Protocol: mqtt`),
    /// then the bytes after the first `consumed` bytes of the buffer are WebSocket frames.
    Accept {
        /// The 101 response to send.
        response: Vec<u8>,
        /// Length of the request, terminating "\r\n\r\n" included.
        consumed: usize,
    },
    /// Refused: send `response` (an HTTP 400 / 426 response with `Connection: close`) and close.
    Reject {
        /// The error response to send before closing.
        response: Vec<u8>,
        /// Why, for the log.
        error: WsError,
    },
}

/// Parses the client's opening handshake (RFC 6455 §4.2.1) from `buf`; `max_request_bytes`
/// bounds the request (a larger one without "\r\n\r\n" is rejected with RequestTooLarge).
///
/// Rescans from the start on each call: cheap, as the request is bounded and usually
/// arrives in one read.
pub fn handshake(buf: &[u8], max_request_bytes: usize) -> Handshake {
    let window = &buf[..buf.len().min(max_request_bytes)];
    let Some(end) = find(window, b"\r\n\r\n") else {
        return if buf.len() >= max_request_bytes {
            reject(WsError::RequestTooLarge)
        } else {
            Handshake::Incomplete
        };
    };
    match parse_request(&window[..end]) {
        Ok((accept, protocol)) => Handshake::Accept {
            response: format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Protocol: {protocol}\r\n\r\n"
            )
            .into_bytes(),
            consumed: end + 4,
        },
        Err(error) => reject(error),
    }
}

/// The Sec-WebSocket-Accept value for `key` (RFC 6455 §4.2.2 step 5.4): proves to the client
/// that this server read its handshake.
fn accept_key(key: &[u8]) -> String {
    let mut sha1 = Sha1::new();
    sha1.update(key);
    sha1.update(ACCEPT_GUID);
    STANDARD.encode(sha1.finalize())
}

fn reject(error: WsError) -> Handshake {
    let (status, extra) = match error {
        WsError::UnsupportedVersion => ("426 Upgrade Required", "Sec-WebSocket-Version: 13\r\n"),
        _ => ("400 Bad Request", ""),
    };
    // The body is our own static text: nothing the client sent is reflected.
    let body = format!("{error}\n");
    let response = format!(
        "HTTP/1.1 {status}\r\n{extra}Connection: close\r\nContent-Type: text/plain\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes();
    Handshake::Reject { response, error }
}

/// Checks the request head (without the final "\r\n\r\n"); returns the accept value and the
/// selected subprotocol.
fn parse_request(head: &[u8]) -> Result<(String, &'static str), WsError> {
    let mut lines = crlf_lines(head);
    let mut parts = lines.next().unwrap_or_default().split(|&b| b == b' ');
    let (method, target, version) = (parts.next(), parts.next(), parts.next());
    if method != Some(&b"GET"[..]) {
        return Err(WsError::BadRequest("method is not GET"));
    }
    if target.is_none_or(<[u8]>::is_empty) || parts.next().is_some() {
        return Err(WsError::BadRequest("malformed request line"));
    }
    if version != Some(&b"HTTP/1.1"[..]) {
        return Err(WsError::BadRequest("HTTP version is not HTTP/1.1"));
    }
    let (mut host, mut upgrade, mut connection) = (false, false, false);
    let (mut mqtt, mut mqttv31) = (false, false);
    let (mut ws_version, mut key): (Option<&[u8]>, Option<&[u8]>) = (None, None);
    for line in lines {
        if line.first().is_some_and(|&b| b == b' ' || b == b'\t') {
            return Err(WsError::BadRequest("folded header line"));
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return Err(WsError::BadRequest("header line without a colon"));
        };
        let (name, value) = (&line[..colon], trim(&line[colon + 1..]));
        if name.is_empty() || name.iter().any(|b| b.is_ascii_whitespace()) {
            return Err(WsError::BadRequest("malformed header name"));
        }
        let is = |wanted: &str| name.eq_ignore_ascii_case(wanted.as_bytes());
        if is("host") {
            host = true;
        } else if is("upgrade") {
            upgrade |= tokens(value).any(|t| t.eq_ignore_ascii_case(b"websocket"));
        } else if is("connection") {
            connection |= tokens(value).any(|t| t.eq_ignore_ascii_case(b"upgrade"));
        } else if is("sec-websocket-version") {
            // RFC 6455 §11.3.5 and §11.3.1: these two must not appear twice.
            if ws_version.replace(value).is_some() {
                return Err(WsError::BadRequest("Sec-WebSocket-Version repeated"));
            }
        } else if is("sec-websocket-key") {
            if key.replace(value).is_some() {
                return Err(WsError::BadRequest("Sec-WebSocket-Key repeated"));
            }
        } else if is("sec-websocket-protocol") {
            // Case-sensitive, as registered with IANA; may span several header lines.
            mqtt |= tokens(value).any(|t| t == b"mqtt");
            mqttv31 |= tokens(value).any(|t| t == b"mqttv3.1");
        }
    }
    // RFC 6455 §4.2.1 items 2-6, in that order.
    if !host {
        return Err(WsError::BadRequest("no Host header"));
    }
    if !upgrade {
        return Err(WsError::BadRequest("no Upgrade: websocket"));
    }
    if !connection {
        return Err(WsError::BadRequest("no Connection: Upgrade"));
    }
    if ws_version != Some(&b"13"[..]) {
        return Err(WsError::UnsupportedVersion);
    }
    let key = key.ok_or(WsError::BadRequest("no Sec-WebSocket-Key"))?;
    // 16 bytes in base64 are exactly 24 characters: the length check bounds the decode.
    if key.len() != 24 || STANDARD.decode(key).map_or(true, |k| k.len() != 16) {
        return Err(WsError::BadRequest(
            "Sec-WebSocket-Key is not base64 of 16 bytes",
        ));
    }
    // [MQTT-6.0.0-3] the client offers "mqtt"; [MQTT-6.0.0-4] the server selects it.
    // "mqttv3.1" alone is what some MQTT 3.1 clients still send.
    let protocol = match (mqtt, mqttv31) {
        (true, _) => "mqtt",
        (false, true) => "mqttv3.1",
        (false, false) => return Err(WsError::NotMqttSubprotocol),
    };
    Ok((accept_key(key), protocol))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn crlf_lines(mut rest: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        let line;
        (line, rest) = match find(rest, b"\r\n") {
            Some(i) => (&rest[..i], &rest[i + 2..]),
            None => {
                done = true;
                (rest, &[][..])
            }
        };
        Some(line)
    })
}

fn trim(value: &[u8]) -> &[u8] {
    let start = value.iter().position(|&b| b != b' ' && b != b'\t');
    let end = value.iter().rposition(|&b| b != b' ' && b != b'\t');
    match (start, end) {
        (Some(s), Some(e)) => &value[s..=e],
        _ => &[],
    }
}

/// The trimmed elements of a comma-separated header value.
fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(trim)
}

/// Per-connection state of the frame decoder; small (it is kept for every WebSocket
/// connection, also idle ones): a partial frame header of at most 14 bytes, the payload
/// bytes left in the current frame, its masking key and position, and whether a close was
/// received.
#[derive(Debug, Default, Clone)]
pub struct Deframer {
    /// The current frame's header: 2 bytes, 0 / 2 / 8 length bytes, 4 mask bytes.
    header: [u8; 14],
    header_len: u8,
    /// The header is complete and `payload_left_bytes` more payload bytes follow.
    in_payload: bool,
    opcode: u8,
    mask: [u8; 4],
    /// Index in `mask` of the next payload byte's key byte.
    mask_pos: u8,
    /// A binary message has begun without FIN: continuation frames are expected.
    fragmented: bool,
    closed: bool,
    payload_left_bytes: u64,
    /// A control frame's payload as it arrives; allocated only while one is being read.
    control: Option<Box<[u8; MAX_CONTROL_BYTES]>>,
}

/// What one call of `Deframer::feed` produced besides MQTT bytes.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Fed {
    /// Frames to send back now (a pong for each ping, echoing its payload; a close frame
    /// answering the client's close), already encoded, unmasked (server → client).
    pub reply: Vec<u8>,
    /// The client sent a close frame: after `reply` goes out, the connection ends.
    pub closed: bool,
}

impl Deframer {
    /// Decodes client frames from `input` (any split: a frame header or payload may be cut at
    /// any byte, across calls) and appends the unmasked payload of binary and continuation
    /// frames to `mqtt` [MQTT-6.0.0-2: MQTT packets may span frames and a frame may hold
    /// several]. Client frames must be masked (RFC 6455 §5.1: else ProtocolError).
    /// Text frames are refused [MQTT-6.0.0-1] (error TextFrame, close code 1003). Ping → pong
    /// in `reply`; pong ignored; close → a close frame in `reply` echoing the status code
    /// (or empty body) and `closed = true`; bytes after a close are ignored. Control frames
    /// must have payload ≤ 125 and FIN set (RFC 6455 §5.5) and may arrive between fragments
    /// of a message. Reserved bits set, or unknown opcodes → ProtocolError. A data frame
    /// payload length above `max_frame_bytes` → FrameTooLarge (close code 1009); the 64-bit
    /// length's most significant bit set → ProtocolError.
    ///
    /// After an error the connection must end (send `encode_close(err.close_code())`);
    /// `mqtt` may already hold the payload of the frames before the bad one.
    pub fn feed(
        &mut self,
        mut input: &[u8],
        mqtt: &mut BytesMut,
        max_frame_bytes: u64,
    ) -> Result<Fed, WsError> {
        let mut fed = Fed::default();
        loop {
            if self.in_payload && self.payload_left_bytes == 0 {
                self.end_frame(&mut fed)?;
            }
            if self.closed || input.is_empty() {
                break;
            }
            if !self.in_payload {
                input = self.read_header(input, max_frame_bytes)?;
                continue;
            }
            let n = usize::try_from(self.payload_left_bytes)
                .map_or(input.len(), |left| left.min(input.len()));
            let (chunk, rest) = input.split_at(n);
            input = rest;
            if self.opcode & 0x8 == 0 {
                let start = mqtt.len();
                mqtt.extend_from_slice(chunk);
                unmask(&mut mqtt[start..], self.mask, self.mask_pos);
            } else {
                // Control payloads are ≤ 125 bytes (checked in start_header), so this fits.
                let received =
                    usize::from(self.header[1] & 0x7f) - self.payload_left_bytes as usize;
                let buf = self
                    .control
                    .get_or_insert_with(|| Box::new([0; MAX_CONTROL_BYTES]));
                let dst = &mut buf[received..received + n];
                dst.copy_from_slice(chunk);
                unmask(dst, self.mask, self.mask_pos);
            }
            self.mask_pos = ((usize::from(self.mask_pos) + n) & 3) as u8;
            self.payload_left_bytes -= n as u64;
        }
        fed.closed = self.closed;
        Ok(fed)
    }

    /// Takes header bytes from `input`; returns the rest.
    fn read_header<'a>(
        &mut self,
        input: &'a [u8],
        max_frame_bytes: u64,
    ) -> Result<&'a [u8], WsError> {
        let have = usize::from(self.header_len);
        let need = if have < 2 {
            2
        } else {
            // Mask bit checked in start_header: client frames always carry 4 mask bytes.
            2 + match self.header[1] & 0x7f {
                126 => 2,
                127 => 8,
                _ => 0,
            } + 4
        };
        let n = (need - have).min(input.len());
        self.header[have..have + n].copy_from_slice(&input[..n]);
        self.header_len += n as u8;
        if usize::from(self.header_len) == need {
            if need == 2 {
                self.start_header()?;
            } else {
                self.end_header(max_frame_bytes)?;
            }
        }
        Ok(&input[n..])
    }

    /// Checks the first two header bytes, so bad frames fail before their length arrives.
    fn start_header(&mut self) -> Result<(), WsError> {
        let (b0, b1) = (self.header[0], self.header[1]);
        let fin = b0 & FIN != 0;
        // RFC 6455 §5.2: RSV1-3 must be 0 unless an extension was negotiated (none is).
        if b0 & 0x70 != 0 {
            return Err(WsError::ProtocolError("reserved bits set"));
        }
        // RFC 6455 §5.1: the server must close on an unmasked client frame.
        if b1 & 0x80 == 0 {
            return Err(WsError::ProtocolError("client frame not masked"));
        }
        self.opcode = b0 & 0x0f;
        match self.opcode {
            OP_TEXT => return Err(WsError::TextFrame),
            // RFC 6455 §5.4: continuations only inside a fragmented message, and a new
            // message only after the last one ended.
            OP_CONTINUATION if !self.fragmented => {
                return Err(WsError::ProtocolError(
                    "continuation frame without a message",
                ))
            }
            OP_BINARY if self.fragmented => {
                return Err(WsError::ProtocolError(
                    "new message inside a fragmented one",
                ))
            }
            OP_CONTINUATION | OP_BINARY => self.fragmented = !fin,
            OP_CLOSE | OP_PING | OP_PONG => {
                // RFC 6455 §5.5: control frames are not fragmented and carry ≤ 125 bytes.
                if !fin {
                    return Err(WsError::ProtocolError("fragmented control frame"));
                }
                if usize::from(b1 & 0x7f) > MAX_CONTROL_BYTES {
                    return Err(WsError::ProtocolError(
                        "control frame payload over 125 bytes",
                    ));
                }
            }
            _ => return Err(WsError::ProtocolError("unknown opcode")),
        }
        Ok(())
    }

    /// The header is complete: reads the payload length and the mask.
    fn end_header(&mut self, max_frame_bytes: u64) -> Result<(), WsError> {
        let h = &self.header;
        let (len, mask_at) = match h[1] & 0x7f {
            126 => (u64::from(u16::from_be_bytes([h[2], h[3]])), 4),
            127 => {
                let mut be = [0; 8];
                be.copy_from_slice(&h[2..10]);
                (u64::from_be_bytes(be), 10)
            }
            len7 => (u64::from(len7), 2),
        };
        // RFC 6455 §5.2: "the most significant bit MUST be 0".
        if len >> 63 != 0 {
            return Err(WsError::ProtocolError("64-bit length with the top bit set"));
        }
        if self.opcode & 0x8 == 0 && len > max_frame_bytes {
            return Err(WsError::FrameTooLarge);
        }
        self.mask.copy_from_slice(&h[mask_at..mask_at + 4]);
        self.mask_pos = 0;
        self.payload_left_bytes = len;
        self.in_payload = true;
        Ok(())
    }

    /// The whole payload has arrived: answers control frames, readies the next header.
    fn end_frame(&mut self, fed: &mut Fed) -> Result<(), WsError> {
        self.in_payload = false;
        self.header_len = 0;
        let control = self.control.take();
        let len = usize::from(self.header[1] & 0x7f);
        let payload = control
            .as_deref()
            .and_then(|c| c.get(..len))
            .unwrap_or_default();
        match self.opcode {
            OP_PING => encode_frame(FIN | OP_PONG, payload, &mut fed.reply),
            OP_CLOSE => {
                // RFC 6455 §5.5.1: an empty body, or a 2-byte status code then UTF-8 text;
                // the answer echoes the code.
                match payload {
                    [] => encode_frame(FIN | OP_CLOSE, &[], &mut fed.reply),
                    [_] => return Err(WsError::ProtocolError("close body of 1 byte")),
                    [hi, lo, reason @ ..] => {
                        let code = u16::from_be_bytes([*hi, *lo]);
                        if !valid_close_code(code) {
                            return Err(WsError::ProtocolError("invalid close code"));
                        }
                        if std::str::from_utf8(reason).is_err() {
                            return Err(WsError::ProtocolError("close reason is not UTF-8"));
                        }
                        encode_close(code, &mut fed.reply);
                    }
                }
                self.closed = true;
            }
            _ => {}
        }
        Ok(())
    }
}

/// RFC 6455 §7.4.1 and the IANA registry (1012-1014); 3000-4999 are for libraries and
/// applications. 1004-1006 and 1015 must never be sent in a close frame.
fn valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// XORs `data` with `mask`, the first byte with `mask[pos]` (RFC 6455 §5.3).
fn unmask(data: &mut [u8], mask: [u8; 4], pos: u8) {
    let pos = usize::from(pos);
    let key = [
        mask[pos & 3],
        mask[(pos + 1) & 3],
        mask[(pos + 2) & 3],
        mask[(pos + 3) & 3],
    ];
    let mut words = data.chunks_exact_mut(4);
    for word in &mut words {
        word.iter_mut().zip(key).for_each(|(b, k)| *b ^= k);
    }
    words
        .into_remainder()
        .iter_mut()
        .zip(key)
        .for_each(|(b, k)| *b ^= k);
}

/// One unmasked frame (RFC 6455 §5.2; servers never mask, §5.1), reserving space once.
fn encode_frame(fin_opcode: u8, payload: &[u8], out: &mut Vec<u8>) {
    let len = payload.len();
    out.reserve(10 + len);
    out.push(fin_opcode);
    if len < 126 {
        out.push(len as u8);
    } else if let Ok(len16) = u16::try_from(len) {
        out.push(126);
        out.extend_from_slice(&len16.to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(payload);
}

/// Appends `payload` as one unmasked binary frame (FIN set) to `out` [MQTT-6.0.0-1].
pub fn encode_binary(payload: &[u8], out: &mut Vec<u8>) {
    encode_frame(FIN | OP_BINARY, payload, out);
}

/// Appends a close frame with `code` (RFC 6455 §5.5.1) to `out`.
pub fn encode_close(code: u16, out: &mut Vec<u8>) {
    encode_frame(FIN | OP_CLOSE, &code.to_be_bytes(), out);
}

#[cfg(test)]
mod tests;
