//! The client side of MQTT over WebSocket (`--ws`, RFC 6455) for the generator: the opening
//! request, masked binary frames out, the server's frames unwrapped in. Written apart from
//! the broker's `src/ws.rs` (the server side), so that a mistake in one is caught by the
//! other.
//!
//! Frames go out with the all-zero masking key, which makes masking a copy: the broker
//! unmasks every frame at the same cost whatever the key, so the measurement is the same,
//! and the generator stays cheap. (A browser picks a random key per frame, RFC 6455 §5.3,
//! to protect proxies from a page's script; a load generator has no such page.)

use bytes::{BufMut, BytesMut};

/// Longest response head accepted for the opening handshake.
const MAX_RESPONSE_BYTES: usize = 8192;

/// The opening request for `host`, asking for the `mqtt` subprotocol [MQTT-6.0.0-3]. The
/// key is fixed (RFC 6455 §1.3's example): the server's answer is checked by status only.
pub fn request(host: &str) -> Vec<u8> {
    format!(
        "GET /mqtt HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Protocol: mqtt\r\n\r\n"
    )
    .into_bytes()
}

/// Appends `payload` as one masked binary frame (zero key) to `out`.
pub fn encode_binary(payload: &[u8], out: &mut BytesMut) {
    out.put_u8(0x82); // FIN, binary
    match payload.len() {
        n if n < 126 => out.put_u8(0x80 | n as u8),
        n if n <= 0xFFFF => {
            out.put_u8(0x80 | 126);
            out.put_u16(n as u16);
        }
        n => {
            out.put_u8(0x80 | 127);
            out.put_u64(n as u64);
        }
    }
    out.put_u32(0); // the masking key
    out.extend_from_slice(payload);
}

/// One WebSocket connection's client state: the opening request owed, then the response
/// to it, then the server's frames.
#[derive(Debug, Default)]
pub struct WsClient {
    request_sent: bool,
    upgraded: bool,
    /// The response head, or a frame header, received so far.
    partial: Vec<u8>,
    /// Payload bytes left in the current frame.
    left: u64,
    /// Whether the current frame's payload is MQTT data (binary or continuation).
    data: bool,
}

impl WsClient {
    /// True once, for the first send: the opening request goes out ahead of the first
    /// frame (the CONNECT follows it without waiting for the response).
    pub fn request_due(&mut self) -> bool {
        !std::mem::replace(&mut self.request_sent, true)
    }

    /// Takes received bytes; appends the MQTT bytes they complete to `mqtt`. An error ends
    /// the connection: a refused upgrade, a masked or text frame, a close frame.
    pub fn feed(&mut self, input: &[u8], mqtt: &mut BytesMut) -> Result<(), String> {
        if !self.upgraded {
            self.partial.extend_from_slice(input);
            let Some(end) = self.partial.windows(4).position(|w| w == b"\r\n\r\n") else {
                if self.partial.len() > MAX_RESPONSE_BYTES {
                    return Err("websocket: no end to the response head".into());
                }
                return Ok(());
            };
            if !self.partial.starts_with(b"HTTP/1.1 101") {
                let line = self.partial.split(|&b| b == b'\r').next().unwrap_or(&[]);
                return Err(format!(
                    "websocket: upgrade refused: {}",
                    String::from_utf8_lossy(line)
                ));
            }
            self.upgraded = true;
            let rest = self.partial.split_off(end + 4);
            self.partial.clear();
            return self.frames(&rest, mqtt);
        }
        self.frames(input, mqtt)
    }

    fn frames(&mut self, mut input: &[u8], mqtt: &mut BytesMut) -> Result<(), String> {
        while !input.is_empty() {
            if self.left > 0 {
                let n = (self.left.min(input.len() as u64)) as usize;
                if self.data {
                    mqtt.extend_from_slice(&input[..n]);
                }
                self.left -= n as u64;
                input = &input[n..];
                continue;
            }
            // A frame header: 2 bytes, then 0, 2 or 8 of length (a server never masks).
            let need = |h: &[u8]| match h.get(1).map(|b| b & 0x7F) {
                None => 2,
                Some(126) => 4,
                Some(127) => 10,
                Some(_) => 2,
            };
            while self.partial.len() < need(&self.partial) && !input.is_empty() {
                self.partial.push(input[0]);
                input = &input[1..];
            }
            if self.partial.len() < need(&self.partial) {
                return Ok(());
            }
            let h = std::mem::take(&mut self.partial);
            if h[1] & 0x80 != 0 {
                return Err("websocket: a masked frame from the server".into());
            }
            self.left = match h[1] & 0x7F {
                126 => u16::from_be_bytes([h[2], h[3]]) as u64,
                127 => u64::from_be_bytes(h[2..10].try_into().expect("8 bytes")),
                n => n as u64,
            };
            self.data = match h[0] & 0x0F {
                0x0 | 0x2 => true,
                0x9 | 0xA => false, // ping, pong: not MQTT (the broker does not ping)
                0x8 => return Err("websocket: closed by broker".into()),
                op => return Err(format!("websocket: unexpected frame opcode {op:#x}")),
            };
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0x80 | opcode];
        match payload.len() {
            n if n < 126 => f.push(n as u8),
            n if n <= 0xFFFF => {
                f.push(126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn frames_carry_the_payload_with_a_zero_key() {
        for (len, head) in [(5usize, 6usize), (300, 8), (70_000, 14)] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut out = BytesMut::new();
            encode_binary(&payload, &mut out);
            assert_eq!(out.len(), head + len);
            assert_eq!(out[0], 0x82);
            assert_eq!(out[1] & 0x80, 0x80, "a client frame is masked");
            assert_eq!(&out[head - 4..head], &[0, 0, 0, 0]);
            assert_eq!(&out[head..], &payload[..]);
        }
    }

    /// The response head, then frames of every length form, cut at every byte: the MQTT
    /// bytes come out whole and in order; pings between them are skipped.
    #[test]
    fn unframing_survives_any_split() {
        let mut wire = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n".to_vec();
        let mut expected = Vec::new();
        for (i, len) in [0usize, 3, 125, 126, 300, 70_000].into_iter().enumerate() {
            let payload: Vec<u8> = (0..len).map(|j| (i * 7 + j) as u8).collect();
            wire.extend(server_frame(0x2, &payload));
            wire.extend(server_frame(0x9, b"ping"));
            expected.extend(payload);
        }
        for cut in [1usize, 2, 3, 7, 64, 1000, wire.len()] {
            let mut u = WsClient::default();
            let mut mqtt = BytesMut::new();
            for chunk in wire.chunks(cut) {
                u.feed(chunk, &mut mqtt).unwrap();
            }
            assert_eq!(&mqtt[..], &expected[..], "chunks of {cut}");
        }
    }

    #[test]
    fn refusals_and_bad_frames_are_errors() {
        let mut mqtt = BytesMut::new();
        let e = WsClient::default()
            .feed(b"HTTP/1.1 400 Bad Request\r\n\r\n", &mut mqtt)
            .unwrap_err();
        assert!(e.contains("400"), "{e}");
        let ok = b"HTTP/1.1 101 Switching Protocols\r\n\r\n";
        for (frame, what) in [
            (vec![0x82, 0x81, 0, 0, 0, 0, 1], "masked"),
            (server_frame(0x1, b"text"), "opcode"),
            (server_frame(0x8, &1000u16.to_be_bytes()), "closed"),
        ] {
            let mut u = WsClient::default();
            u.feed(ok, &mut mqtt).unwrap();
            let e = u.feed(&frame, &mut mqtt).unwrap_err();
            assert!(e.contains(what), "{e}");
        }
        let mut u = WsClient::default();
        assert!(u.feed(&[b'x'; MAX_RESPONSE_BYTES + 1], &mut mqtt).is_err());
    }
}
