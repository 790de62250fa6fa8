//! Unit tests of the WebSocket codec.
use super::*;

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

fn request(extra: &str) -> String {
    format!(
        "GET /mqtt HTTP/1.1\r\nHost: broker\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

fn rejected(req: &str) -> (String, WsError) {
    match handshake(req.as_bytes(), 8192) {
        Handshake::Reject { response, error } => (String::from_utf8(response).unwrap(), error),
        other => panic!("{req:?} gave {other:?}"),
    }
}

/// A client frame: masked, with the shortest length encoding.
fn frame(fin_opcode: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(fin_opcode, payload, &mut out);
    let at = out.len() - payload.len();
    out[1] |= 0x80;
    out.splice(at..at, mask);
    unmask(&mut out[at + 4..], mask, 0);
    out
}

fn feed_all(d: &mut Deframer, parts: &[&[u8]]) -> Result<(BytesMut, Fed), WsError> {
    let (mut mqtt, mut all) = (BytesMut::new(), Fed::default());
    for part in parts {
        let fed = d.feed(part, &mut mqtt, 1 << 20)?;
        all.reply.extend_from_slice(&fed.reply);
        all.closed = fed.closed;
    }
    Ok((mqtt, all))
}

fn error_of(bytes: &[u8]) -> WsError {
    feed_all(&mut Deframer::default(), &[bytes]).unwrap_err()
}

#[test]
fn rfc_accept_key() {
    // RFC 6455 §1.3's example (also: sha1sum of key+GUID, base64).
    assert_eq!(accept_key(KEY.as_bytes()), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

#[test]
fn accepts_and_selects_mqtt() {
    // [MQTT-6.0.0-3], [MQTT-6.0.0-4]; header names in any case, tokens in lists.
    let req =
        "GET / HTTP/1.1\r\nhost: b\r\nUPGRADE: WebSocket\r\nconnection: keep-alive, Upgrade\r\n\
               sec-websocket-key:   dGhlIHNhbXBsZSBub25jZQ== \r\nSec-WebSocket-Version: 13\r\n\
               Sec-WebSocket-Protocol: foo, mqtt\r\n\r\n";
    let mut buf = req.as_bytes().to_vec();
    buf.extend_from_slice(&[0x82, 0x80]);
    let Handshake::Accept { response, consumed } = handshake(&buf, 8192) else {
        panic!()
    };
    assert_eq!(consumed, req.len());
    let response = String::from_utf8(response).unwrap();
    assert!(response.starts_with("HTTP/1.1 101 Switching Protocols\r\n"));
    assert!(response.contains("\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
    assert!(response.contains("\r\nSec-WebSocket-Protocol: mqtt\r\n"));
    assert!(response.contains("\r\nUpgrade: websocket\r\n") && response.ends_with("\r\n\r\n"));
    let old = request("Sec-WebSocket-Protocol: mqttv3.1\r\n");
    let Handshake::Accept { response, .. } = handshake(old.as_bytes(), 8192) else {
        panic!()
    };
    assert!(String::from_utf8(response)
        .unwrap()
        .contains("Sec-WebSocket-Protocol: mqttv3.1\r\n"));
}

#[test]
fn incomplete_until_blank_line() {
    let req = request("Sec-WebSocket-Protocol: mqtt\r\n");
    for end in 0..req.len() {
        assert_eq!(
            handshake(&req.as_bytes()[..end], 8192),
            Handshake::Incomplete,
            "{end}"
        );
    }
}

#[test]
fn rejections() {
    let mqtt = "Sec-WebSocket-Protocol: mqtt\r\n";
    let (resp, e) = rejected(&request(""));
    assert_eq!(e, WsError::NotMqttSubprotocol);
    assert!(
        resp.starts_with("HTTP/1.1 400 Bad Request\r\n") && resp.contains("Connection: close\r\n")
    );
    assert_eq!(
        rejected(&request("Sec-WebSocket-Protocol: MQTT\r\n")).1,
        WsError::NotMqttSubprotocol
    );
    let (resp, e) = rejected(&request(mqtt).replace("Version: 13", "Version: 8"));
    assert_eq!(e, WsError::UnsupportedVersion);
    assert!(resp.starts_with("HTTP/1.1 426 Upgrade Required\r\n"));
    assert!(resp.contains("\r\nSec-WebSocket-Version: 13\r\n"));
    let bad = |req: String| match rejected(&req).1 {
        WsError::BadRequest(_) => {}
        e => panic!("{req:?}: {e:?}"),
    };
    bad(request(mqtt).replace(&format!("Sec-WebSocket-Key: {KEY}\r\n"), ""));
    bad(request(mqtt).replace(KEY, "c2hvcnQ="));
    bad(request(mqtt).replace(KEY, "!!!!!!!!!!!!!!!!!!!!!!!!"));
    bad(request(mqtt).replace("GET", "POST"));
    bad(request(mqtt).replace("HTTP/1.1", "HTTP/1.0"));
    bad(request(mqtt).replace("Host: broker\r\n", ""));
    bad(request(mqtt).replace("Upgrade: websocket", "Upgrade: h2c"));
    bad(request(mqtt).replace("Connection: Upgrade", "Connection: close"));
    bad(request(&format!("{mqtt}Sec-WebSocket-Key: {KEY}\r\n")));
    bad(request(&format!("{mqtt} folded\r\n")));
    bad(request(&format!("{mqtt}no colon\r\n")));
    bad("\u{0}\u{ff}\r\n\r\n".to_string());
    // Garbage bytes, not UTF-8, do not panic.
    assert!(matches!(
        handshake(b"G\xff\xfe\r\n\xc3:\x80\r\n\r\n", 64),
        Handshake::Reject { .. }
    ));
}

#[test]
fn too_large() {
    let req = request("Sec-WebSocket-Protocol: mqtt\r\n");
    let n = req.len();
    assert!(matches!(
        handshake(req.as_bytes(), n),
        Handshake::Accept { .. }
    ));
    let e = |buf: &[u8], max| match handshake(buf, max) {
        Handshake::Reject { error, .. } => error,
        other => panic!("{other:?}"),
    };
    assert_eq!(e(req.as_bytes(), n - 1), WsError::RequestTooLarge);
    assert_eq!(handshake(&[b'a'; 99], 100), Handshake::Incomplete);
    assert_eq!(e(&[b'a'; 100], 100), WsError::RequestTooLarge);
}

#[test]
fn every_split_reassembles() {
    let payload: Vec<u8> = (0..300u16).map(|i| i as u8).collect();
    let mut stream = frame(0x82, &payload, [1, 2, 3, 4]);
    stream.extend(frame(0x82, b"", [5, 6, 7, 8]));
    stream.extend(frame(0x89, b"hi", [9, 9, 9, 9]));
    stream.extend(frame(0x82, b"tail", [0xa, 0xb, 0xc, 0xd]));
    let want = [&payload[..], b"tail"].concat();
    for at in 0..=stream.len() {
        let mut d = Deframer::default();
        let (mqtt, fed) = feed_all(&mut d, &[&stream[..at], &stream[at..]]).unwrap();
        assert_eq!(&mqtt[..], &want[..], "split at {at}");
        assert_eq!(fed.reply, [0x8a, 2, b'h', b'i'], "split at {at}");
    }
}

#[test]
fn several_frames_and_long_lengths() {
    // [MQTT-6.0.0-2]: packet boundaries need not match frame boundaries.
    let big16 = vec![7u8; 65_535];
    let big64 = vec![9u8; 65_536];
    let mut stream = frame(0x82, b"ab", [1, 2, 3, 4]);
    stream.extend(frame(0x82, &big16, [4, 3, 2, 1]));
    assert_eq!(&stream[8..12], [0x82, 0xfe, 0xff, 0xff]);
    let at = stream.len();
    stream.extend(frame(0x82, &big64, [0xff; 4]));
    assert_eq!(&stream[at..at + 10], [0x82, 0xff, 0, 0, 0, 0, 0, 1, 0, 0]);
    let (mqtt, fed) = feed_all(&mut Deframer::default(), &[&stream]).unwrap();
    assert_eq!(&mqtt[..], &[&b"ab"[..], &big16, &big64].concat()[..]);
    assert_eq!(fed, Fed::default());
}

#[test]
fn fragments_with_ping_between() {
    let mut stream = frame(0x02, b"one ", [1, 2, 3, 4]);
    stream.extend(frame(0x89, b"are you there", [5, 6, 7, 8]));
    stream.extend(frame(0x8a, b"ignored pong", [5, 6, 7, 8]));
    stream.extend(frame(0x00, b"two ", [1, 1, 1, 1]));
    stream.extend(frame(0x80, b"three", [2, 2, 2, 2]));
    let (mqtt, fed) = feed_all(&mut Deframer::default(), &[&stream]).unwrap();
    assert_eq!(&mqtt[..], b"one two three");
    assert_eq!(fed.reply, [&[0x8a, 13][..], b"are you there"].concat());
    assert!(!fed.closed);
    // RFC 6455 §5.4: no new message inside one, no continuation outside one.
    let mut interleaved = frame(0x02, b"a", [1; 4]);
    interleaved.extend(frame(0x82, b"b", [1; 4]));
    assert!(matches!(error_of(&interleaved), WsError::ProtocolError(_)));
    assert!(matches!(
        error_of(&frame(0x80, b"a", [1; 4])),
        WsError::ProtocolError(_)
    ));
}

#[test]
fn close_is_echoed_and_ends_input() {
    let mut stream = frame(0x82, b"x", [1, 2, 3, 4]);
    stream.extend(frame(0x88, &[0x03, 0xe9, b'b', b'y', b'e'], [4, 5, 6, 7]));
    stream.extend(frame(0x82, b"after close", [1, 2, 3, 4]));
    let mut d = Deframer::default();
    let (mqtt, fed) = feed_all(&mut d, &[&stream]).unwrap();
    assert_eq!(&mqtt[..], b"x");
    assert_eq!(
        fed,
        Fed {
            reply: vec![0x88, 2, 0x03, 0xe9],
            closed: true
        }
    );
    let (mqtt, fed) = feed_all(&mut d, &[&frame(0x82, b"more", [0; 4])]).unwrap();
    assert!(mqtt.is_empty() && fed.reply.is_empty() && fed.closed);
    let (_, fed) = feed_all(&mut Deframer::default(), &[&frame(0x88, b"", [1; 4])]).unwrap();
    assert_eq!(
        fed,
        Fed {
            reply: vec![0x88, 0],
            closed: true
        }
    );
    // RFC 6455 §5.5.1, §7.4: a 1-byte body, reserved codes, a non-UTF-8 reason.
    for body in [&[3][..], &[0x03, 0xed], &[0x03, 0xe8, 0xff]] {
        assert!(matches!(
            error_of(&frame(0x88, body, [1; 4])),
            WsError::ProtocolError(_)
        ));
    }
}

#[test]
fn framing_errors() {
    let mut unmasked = frame(0x82, b"abc", [0; 4]);
    unmasked[1] &= 0x7f;
    unmasked.drain(2..6);
    assert!(matches!(error_of(&unmasked), WsError::ProtocolError(_)));
    // [MQTT-6.0.0-1]: text frames end the connection with 1003.
    let text = error_of(&frame(0x81, b"{}", [1; 4]));
    assert_eq!((text.close_code(), text), (1003, WsError::TextFrame));
    let mut d = Deframer::default();
    let err = d
        .feed(&frame(0x82, &[0; 101], [1; 4]), &mut BytesMut::new(), 100)
        .unwrap_err();
    assert_eq!((err.close_code(), err), (1009, WsError::FrameTooLarge));
    // Only the first two bytes are needed to refuse these.
    for first_two in [
        [0xc2, 0x80],
        [0xa2, 0x80],
        [0x92, 0x80],
        [0x83, 0x80],
        [0x8b, 0x80],
        [0x09, 0x80],
        [0x89, 0xfe],
    ] {
        assert!(
            matches!(error_of(&first_two), WsError::ProtocolError(_)),
            "{first_two:?}"
        );
    }
    let top_bit = [0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4];
    assert!(matches!(error_of(&top_bit), WsError::ProtocolError(_)));
}

#[test]
fn encodings() {
    for (len, header) in [
        (0, &[0x82, 0][..]),
        (125, &[0x82, 125]),
        (126, &[0x82, 126, 0, 126]),
        (65_535, &[0x82, 126, 0xff, 0xff]),
        (65_536, &[0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0]),
    ] {
        let mut out = vec![0xaa];
        encode_binary(&vec![5; len], &mut out);
        assert_eq!(&out[1..1 + header.len()], header);
        assert_eq!(out.len(), 1 + header.len() + len);
    }
    let mut out = Vec::new();
    encode_close(1009, &mut out);
    assert_eq!(out, [0x88, 2, 0x03, 0xf1]);
}

#[test]
fn deframer_is_small() {
    assert!(std::mem::size_of::<Deframer>() <= 40);
}

struct XorShift(u64);
impl XorShift {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

#[test]
fn random_round_trips() {
    for seed in 1..=300u64 {
        let mut rng = XorShift(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let (mut stream, mut want, mut pongs) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rng.below(20) {
            let mask = [
                rng.below(256) as u8,
                rng.below(256) as u8,
                rng.below(256) as u8,
                7,
            ];
            let size = if rng.below(50) == 0 {
                65_536 + rng.below(1000)
            } else {
                rng.below(300)
            };
            let payload: Vec<u8> = (0..size).map(|_| rng.below(256) as u8).collect();
            if rng.below(5) == 0 {
                let ping = &payload[..size.min(125)];
                stream.extend(frame(0x89, ping, mask));
                encode_frame(0x8a, ping, &mut pongs);
                continue;
            }
            // Split the message into 1-3 fragments.
            let cut = [rng.below(size + 1), rng.below(size + 1)];
            let (a, b) = (cut[0].min(cut[1]), cut[0].max(cut[1]));
            let parts = [&payload[..a], &payload[a..b], &payload[b..]];
            let n = 1 + rng.below(3);
            for (i, part) in parts.iter().take(n).enumerate() {
                let part: Vec<u8> = if i + 1 == n {
                    parts[i..].concat()
                } else {
                    part.to_vec()
                };
                let opcode = if i == 0 { OP_BINARY } else { OP_CONTINUATION };
                stream.extend(frame(
                    opcode | if i + 1 == n { FIN } else { 0 },
                    &part,
                    mask,
                ));
            }
            want.extend_from_slice(&payload);
        }
        let mut chunks = Vec::new();
        let mut rest = &stream[..];
        while !rest.is_empty() {
            let (chunk, tail) = rest.split_at(1 + rng.below(rest.len().min(2000)));
            chunks.push(chunk);
            rest = tail;
        }
        let (mqtt, fed) = feed_all(&mut Deframer::default(), &chunks).expect("decodes");
        assert!(mqtt[..] == want[..], "payloads differ; seed {seed}");
        assert!(
            fed.reply == pongs && !fed.closed,
            "pongs differ; seed {seed}"
        );
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = XorShift(42);
    for _ in 0..2000 {
        let bytes: Vec<u8> = (0..rng.below(64)).map(|_| rng.below(256) as u8).collect();
        let _ = handshake(&bytes, 32);
        let mut d = Deframer::default();
        let at = rng.below(bytes.len() + 1);
        let _ = feed_all(&mut d, &[&bytes[..at], &bytes[at..]]);
    }
}
