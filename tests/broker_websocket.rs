//! MQTT over WebSocket (MQTT 5.0 §6, RFC 6455) against the real broker (two shards): the
//! opening handshake and its refusals byte for byte, MQTT packets split over and packed
//! into frames, control frames, and WebSocket clients exchanging messages with plain ones,
//! moving between shards with their session. The WebSocket client is the harness's own
//! (`tests/common/ws.rs`); paho-mqtt's WebSocket transport is in `scripts/interop.sh`.

mod common;

use bytes::{Bytes, BytesMut};
use common::*;
use std::io::{Read, Write};

fn ws_broker() -> Broker {
    Broker::with_config("sys_interval_secs = 1\n[websocket]\nport = 0\n")
}

fn ws_connect(broker: &Broker, connect: Connect) -> (Client, ConnAck) {
    Client::ws(broker.ws_addr.expect("WebSocket listener")).handshake(connect)
}

/// The upgrade answers the RFC's example key with its accept value and selects `mqtt`
/// [MQTT-6.0.0-4]; a request without the `mqtt` subprotocol [MQTT-6.0.0-3], or with
/// another WebSocket version, is refused with an HTTP error and closed.
#[test]
fn the_opening_handshake_selects_mqtt_or_refuses() {
    let broker = ws_broker();
    let addr = broker.ws_addr.unwrap();
    let (head, _s) = ws_request(addr, "Sec-WebSocket-Protocol: mqtt\r\n");
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("upgrade: websocket"), "{head}");
    assert!(
        head.contains(&format!("Sec-WebSocket-Accept: {WS_ACCEPT}")),
        "{head}"
    );
    assert!(head.contains("Sec-WebSocket-Protocol: mqtt\r\n"), "{head}");

    let (head, mut s) = ws_request(addr, "Sec-WebSocket-Protocol: chat\r\n");
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    let mut rest = Vec::new();
    assert!(s.read_to_end(&mut rest).is_ok(), "closed after the refusal");

    // Version 8 (a pre-standard draft): 426 with the version the server speaks.
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\
          Sec-WebSocket-Protocol: mqtt\r\n\r\n",
    )
    .unwrap();
    let mut response = Vec::new();
    let _ = s.read_to_end(&mut response);
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 426"), "{response}");
    assert!(response.contains("Sec-WebSocket-Version: 13"), "{response}");

    // Nothing of it touched MQTT: the broker still serves.
    let (_c, ack) = ws_connect(&broker, connect_v5(&unique("after"), true, 0));
    assert_eq!(ack.reason_code, ReasonCode::SUCCESS);
}

/// MQTT packets need not be aligned with frames [MQTT-6.0.0-2]: a CONNECT cut in three
/// frames (the last one a continuation) and two PUBLISHes in one frame all arrive, and the
/// server's packets come in binary frames [MQTT-6.0.0-1].
#[test]
fn packets_span_frames_and_share_them() {
    let broker = ws_broker();
    let mut sub = broker.v5(&unique("sub"));
    sub.sub("ws/#", QoS::AtLeastOnce);
    let (head, mut s) = ws_request(broker.ws_addr.unwrap(), "Sec-WebSocket-Protocol: mqtt\r\n");
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");

    let mut connect = BytesMut::new();
    Packet::Connect(Box::new(connect_v5(&unique("framed"), true, 0)))
        .encode(Protocol::V5, &mut connect)
        .unwrap();
    let (a, rest) = connect.split_at(3);
    let (b, c) = rest.split_at(rest.len() / 2);
    let mut bytes = ws_frame(0x2, false, a);
    bytes.extend(ws_frame(0x0, false, b));
    bytes.extend(ws_frame(0x0, true, c));
    s.write_all(&bytes).unwrap();
    let (fin, opcode, connack) = ws_read_frame(&mut s).expect("CONNACK frame");
    assert!(fin);
    assert_eq!(opcode, 0x2, "binary frame");
    assert_eq!(connack[0], 0x20, "CONNACK");

    let mut two = BytesMut::new();
    for (i, text) in ["one", "two"].iter().enumerate() {
        let p = Publish {
            qos: QoS::AtLeastOnce,
            packet_id: i as u16 + 1,
            ..publish(&format!("ws/{text}"), text.as_bytes(), QoS::AtLeastOnce)
        };
        Packet::Publish(p).encode(Protocol::V5, &mut two).unwrap();
    }
    s.write_all(&ws_frame(0x2, true, &two)).unwrap();
    for text in ["one", "two"] {
        let got = sub.recv_publish();
        assert_eq!(got.topic.as_str(), format!("ws/{text}"));
    }
    // Both PUBACKs come back (in one frame or two).
    let mut acks = Vec::new();
    while acks.len() < 8 {
        let (_, opcode, payload) = ws_read_frame(&mut s).expect("PUBACK frame");
        assert_eq!(opcode, 0x2);
        acks.extend(payload);
    }
    assert_eq!(acks[0] >> 4, 4, "PUBACK");
}

/// A ping is answered with a pong that echoes it (RFC 6455 §5.5.3), also between the
/// fragments of a message; a close frame is echoed and ends the connection, and its
/// client's Will is published (it never sent DISCONNECT).
#[test]
fn pings_are_answered_and_a_close_ends_the_connection() {
    let broker = ws_broker();
    let mut watcher = broker.v5(&unique("watcher"));
    watcher.sub("will/ws", QoS::AtMostOnce);
    let (_, mut s) = ws_request(broker.ws_addr.unwrap(), "Sec-WebSocket-Protocol: mqtt\r\n");
    let mut connect = connect_v5(&unique("pinger"), true, 0);
    connect.will = Some(Will {
        topic: "will/ws".into(),
        payload: Bytes::from_static(b"gone"),
        qos: QoS::AtMostOnce,
        retain: false,
        properties: Default::default(),
    });
    let mut bytes = BytesMut::new();
    Packet::Connect(Box::new(connect))
        .encode(Protocol::V5, &mut bytes)
        .unwrap();
    let (a, b) = bytes.split_at(5);
    let mut out = ws_frame(0x2, false, a);
    out.extend(ws_frame(0x9, true, b"are you there"));
    out.extend(ws_frame(0x0, true, b));
    s.write_all(&out).unwrap();
    let mut got = Vec::new();
    for _ in 0..2 {
        got.push(ws_read_frame(&mut s).expect("a frame"));
    }
    got.sort_by_key(|f| f.1);
    assert_eq!(got[0].1, 0x2, "CONNACK in a binary frame");
    assert_eq!(got[1], (true, 0xA, b"are you there".to_vec()), "the pong");

    s.write_all(&ws_frame(0x8, true, &1000u16.to_be_bytes()))
        .unwrap();
    let (_, opcode, payload) = ws_read_frame(&mut s).expect("the close echo");
    assert_eq!(opcode, 0x8);
    assert_eq!(payload, 1000u16.to_be_bytes());
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert_eq!(&watcher.recv_publish().payload[..], b"gone");
}

/// A text frame [MQTT-6.0.0-1] or an unmasked client frame (RFC 6455 §5.1) closes that
/// connection with close codes 1003 and 1002, counted in `websocket_failures`; other
/// clients are untouched.
#[test]
fn text_and_unmasked_frames_close_only_that_connection() {
    let broker = ws_broker();
    let mut bystander = ws_connect(&broker, connect_v5(&unique("bystander"), true, 0)).0;
    bystander.sub("still/here", QoS::AtMostOnce);
    for (frame, code) in [
        (ws_frame(0x1, true, b"hello"), 1003u16),
        (ws_frame_masked(0x2, true, &[0xC0, 0], None), 1002),
    ] {
        let (_, mut s) = ws_request(broker.ws_addr.unwrap(), "Sec-WebSocket-Protocol: mqtt\r\n");
        s.write_all(&frame).unwrap();
        let (_, opcode, payload) = ws_read_frame(&mut s).expect("a close frame");
        assert_eq!(opcode, 0x8);
        assert_eq!(payload[..2], code.to_be_bytes());
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
    }
    let mut publisher = broker.v5(&unique("publisher"));
    publisher.publish("still/here", b"yes", QoS::AtMostOnce, false);
    assert_eq!(&bystander.recv_publish().payload[..], b"yes");
    assert!(wait_counter(&broker, "websocket_failures", 2) >= 2);
}

/// WebSocket and plain clients exchange messages at every QoS, including a payload larger
/// than a receive buffer (64 KiB: 64-bit frame lengths, many receives).
#[test]
fn websocket_and_plain_clients_exchange_messages() {
    let broker = ws_broker();
    let (mut web, ack) = ws_connect(&broker, connect_v5(&unique("web"), true, 0));
    assert_eq!(ack.reason_code, ReasonCode::SUCCESS);
    web.sub("to-web/#", QoS::ExactlyOnce);
    let mut plain = broker.v5(&unique("plain"));
    plain.sub("to-plain/#", QoS::ExactlyOnce);
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
        plain.publish("to-web/x", format!("{qos:?}").as_bytes(), qos, false);
        let got = web.recv_publish();
        assert_eq!(&got.payload[..], format!("{qos:?}").as_bytes());
        web.publish("to-plain/y", format!("{qos:?}").as_bytes(), qos, false);
        let got = plain.recv_publish();
        assert_eq!(&got.payload[..], format!("{qos:?}").as_bytes());
    }
    let big: Vec<u8> = (0..65_536u32).map(|i| (i % 251) as u8).collect();
    web.publish("to-plain/big", &big, QoS::AtLeastOnce, false);
    assert_eq!(&plain.recv_publish().payload[..], &big[..]);
    plain.publish("to-web/big", &big, QoS::AtLeastOnce, false);
    assert_eq!(&web.recv_publish().payload[..], &big[..]);
}

/// A WebSocket connection taking over a session that lives on the other shard moves there
/// with its WebSocket state (sixteen reconnects: all on one shard has odds of 2^-15), and
/// a takeover of an open one sends it DISCONNECT 0x8E in a binary frame [MQTT-3.1.4-3].
#[test]
fn websocket_connections_move_between_shards_with_their_session() {
    let broker = ws_broker();
    roam_between_shards(&broker, |connect| ws_connect(&broker, connect));
}

/// A `[websocket]` section that cannot be used stops startup, naming the key.
#[test]
fn bad_websocket_settings_stop_startup() {
    let e = refused_startup("[websocket]\nport = 0\npath = \"/mqtt\"\n");
    assert!(e.contains("path"), "an unknown key is named: {e}");
    let e = refused_startup("[websocket]\nport = 70000\n");
    assert!(e.contains("port"), "{e}");
    let tls = format!("{}/tests/fixtures/tls", env!("CARGO_MANIFEST_DIR"));
    let e = refused_startup(&format!(
        "[tls]\nport = 18830\ncert_file = \"{tls}/server.pem\"\nkey_file = \"{tls}/server.key\"\n\
         [websocket]\nport = 18830\n"
    ));
    assert!(e.contains("websocket.port"), "the TLS listener's port: {e}");
}

/// A raw WebSocket connection that has sent an MQTT 5 CONNECT (client id `id`, made
/// unique) in one binary frame; the CONNACK is left unread.
fn ws_send_connect(broker: &Broker, id: &str) -> std::net::TcpStream {
    let (_, mut s) = ws_request(broker.ws_addr.unwrap(), "Sec-WebSocket-Protocol: mqtt\r\n");
    let mut bytes = BytesMut::new();
    Packet::Connect(Box::new(connect_v5(&unique(id), true, 0)))
        .encode(Protocol::V5, &mut bytes)
        .unwrap();
    s.write_all(&ws_frame(0x2, true, &bytes)).unwrap();
    s
}

/// A close the broker starts (here a DISCONNECT 0x82 for a protocol error) sends one close
/// frame after the DISCONNECT and then ends the TCP connection (RFC 6455 §5.5.1, §7.1.1),
/// at once, not when `close_timeout_secs` runs out. Before, the loop framed a new close
/// frame every time it looked for output: megabytes of them, for 10 s.
#[test]
fn a_close_the_broker_starts_sends_one_close_frame() {
    let broker = ws_broker();
    let mut s = ws_send_connect(&broker, "closed");
    let (_, opcode, _) = ws_read_frame(&mut s).expect("CONNACK");
    assert_eq!(opcode, 0x2);
    let start = std::time::Instant::now();
    // A reserved packet type: malformed, DISCONNECT 0x82 [MQTT-2.1.3-1].
    s.write_all(&ws_frame(0x2, true, &[0xF0, 0x00])).unwrap();
    let mut frames = Vec::new();
    while let Some((_, opcode, payload)) = ws_read_frame(&mut s) {
        frames.push((opcode, payload));
        if frames.len() > 4 {
            break;
        }
    }
    assert_eq!(
        frames,
        vec![
            (0x2, vec![0xE0, 0x01, 0x82]),
            (0x8, 1000u16.to_be_bytes().to_vec())
        ],
        "DISCONNECT 0x82, one close frame, then the end of the stream"
    );
    assert!(
        start.elapsed() < std::time::Duration::from_secs(3),
        "the connection ended after {:?}",
        start.elapsed()
    );
}

/// A client that pings and never reads gets no more than `max_outgoing_bytes` of pongs
/// held for it: past that the broker stops reading it, as it does for MQTT output, and the
/// client's own sends stall. Before, every ping's pong was kept (hundreds of MB).
#[test]
fn pongs_for_a_client_that_does_not_read_are_bounded() {
    let broker =
        Broker::with_config("[websocket]\nport = 0\n[limits]\nmax_outgoing_bytes = 65536\n");
    let mut s = ws_send_connect(&broker, "pinger");
    let pings: Vec<u8> = (0..1000)
        .flat_map(|_| ws_frame(0x9, true, &[b'x'; 125]))
        .collect();
    s.set_write_timeout(Some(std::time::Duration::from_secs(2)))
        .unwrap();
    const LIMIT_BYTES: usize = 256 << 20;
    let mut sent = 0;
    while sent < LIMIT_BYTES {
        match s.write(&pings) {
            Ok(n) => sent += n,
            Err(_) => break, // stalled: the broker stopped reading
        }
    }
    assert!(
        sent < LIMIT_BYTES,
        "{sent} bytes of pings taken from a client that reads nothing"
    );
}
