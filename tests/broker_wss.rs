//! MQTT over WebSocket over TLS (`wss://`, MQTT 5.0 §6 with RFC 6455 §11.1.2) against the
//! real broker (two shards): TLS records carrying WebSocket frames carrying MQTT, both
//! ways; `wss://` clients exchanging messages with plain, TLS and `ws://` ones, moving
//! between shards with both states, and refused frames closing only their connection
//! (close frame, then close_notify). Clients: the harness's WebSocket client
//! (`tests/common/ws.rs`) over rustls; paho-mqtt's is in `scripts/interop.sh`.

mod common;

use common::*;
use std::io::{Read, Write};

/// A broker with `[tls]` (fixture certificate) and `[websocket]`: `ws://` and `wss://` on
/// free ports, plus `extra` lines in the `[websocket]` section.
fn wss_broker(extra: &str) -> Broker {
    Broker::with_config(&format!(
        "sys_interval_secs = 1\n[tls]\nport = 0\ncert_file = {:?}\nkey_file = {:?}\n\
         [websocket]\nport = 0\ntls_port = 0\n{extra}",
        tls_fixture("server.pem"),
        tls_fixture("server.key"),
    ))
}

fn wss_connect(broker: &Broker, connect: Connect) -> (Client, ConnAck) {
    let addr = broker.wss_addr.expect("wss listener");
    Client::wss(addr, tls_client_config(None)).handshake(connect)
}

/// `wss://` clients exchange messages with plain, TLS and `ws://` clients at every QoS,
/// including a payload larger than a TLS record (16 KiB) and than a receive buffer: it
/// crosses many records and receives in one 64-bit-length frame.
#[test]
fn wss_clients_exchange_messages_with_every_other_transport() {
    let broker = wss_broker("");
    let (mut web, ack) = wss_connect(&broker, connect_v5(&unique("wss"), true, 0));
    assert_eq!(ack.reason_code, ReasonCode::SUCCESS);
    web.sub("to-wss/#", QoS::ExactlyOnce);
    let mut plain = broker.v5(&unique("plain"));
    plain.sub("to-plain/#", QoS::ExactlyOnce);
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
        plain.publish("to-wss/x", format!("{qos:?}").as_bytes(), qos, false);
        let got = web.recv_publish();
        assert_eq!(&got.payload[..], format!("{qos:?}").as_bytes());
        web.ack(&got);
        web.publish("to-plain/y", format!("{qos:?}").as_bytes(), qos, false);
        let got = plain.recv_publish();
        assert_eq!(&got.payload[..], format!("{qos:?}").as_bytes());
        plain.ack(&got);
    }
    let big: Vec<u8> = (0..65_536u32).map(|i| (i % 251) as u8).collect();
    web.publish("to-plain/big", &big, QoS::AtLeastOnce, false);
    assert_eq!(&plain.recv_publish().payload[..], &big[..]);
    plain.publish("to-wss/big", &big, QoS::AtLeastOnce, false);
    assert_eq!(&web.recv_publish().payload[..], &big[..]);

    // The same topic reaches a TLS and a `ws://` subscriber too.
    let config = tls_client_config(None);
    let tls_addr = broker.tls_addr.unwrap();
    let (mut secure, _) =
        Client::tls(tls_addr, config).handshake(connect_v5(&unique("tls"), true, 0));
    secure.sub("to-plain/all", QoS::AtLeastOnce);
    let ws_addr = broker.ws_addr.unwrap();
    let (mut ws, _) = Client::ws(ws_addr).handshake(connect_v5(&unique("ws"), true, 0));
    ws.sub("to-plain/all", QoS::AtLeastOnce);
    web.publish("to-plain/all", b"everyone", QoS::AtLeastOnce, false);
    for c in [&mut plain, &mut secure, &mut ws] {
        assert_eq!(&c.recv_publish().payload[..], b"everyone");
    }
}

/// A `wss://` connection taking over a session on the other shard moves there with its TLS
/// and WebSocket state (sixteen reconnects: all on one shard has odds of 2^-15); the one
/// it replaces gets DISCONNECT 0x8E in a binary frame inside a record [MQTT-3.1.4-3].
#[test]
fn wss_connections_move_between_shards_with_their_session() {
    let broker = wss_broker("");
    roam_between_shards(&broker, |connect| wss_connect(&broker, connect));
}

/// Over `wss://`, a ping gets its pong, a text frame [MQTT-6.0.0-1] closes the connection
/// with close code 1003 sent inside TLS before the TLS close, and the client's Will is
/// published (it never sent DISCONNECT); a `wss://` bystander is untouched.
#[test]
fn a_bad_frame_over_wss_closes_only_that_connection() {
    let broker = wss_broker("");
    let (mut bystander, _) = wss_connect(&broker, connect_v5(&unique("bystander"), true, 0));
    bystander.sub("will/wss", QoS::AtMostOnce);

    let addr = broker.wss_addr.unwrap();
    let mut s = WsStream::open_tls(addr, tls_client_config(None));
    let mut connect = connect_v5(&unique("bad"), true, 0);
    connect.will = Some(Will {
        topic: "will/wss".into(),
        payload: bytes::Bytes::from_static(b"gone"),
        qos: QoS::AtMostOnce,
        retain: false,
        properties: Default::default(),
    });
    let mut bytes = bytes::BytesMut::new();
    Packet::Connect(Box::new(connect))
        .encode(Protocol::V5, &mut bytes)
        .unwrap();
    let mut out = ws_frame(0x2, true, &bytes);
    out.extend(ws_frame(0x9, true, b"ping"));
    s.io.write_all(&out).unwrap();
    s.io.flush().unwrap();
    s.io.tcp().set_read_timeout(Some(WAIT)).unwrap();
    let mut frames = Vec::new();
    for _ in 0..2 {
        let (_, opcode, payload) = ws_read_frame(&mut s.io).expect("a frame");
        frames.push((opcode, payload));
    }
    frames.sort_by_key(|f| f.0);
    assert_eq!(frames[0].0, 0x2, "CONNACK in a binary frame");
    assert_eq!(frames[0].1[0], 0x20, "CONNACK");
    assert_eq!(frames[1], (0xA, b"ping".to_vec()), "the pong");

    s.io.write_all(&ws_frame(0x1, true, b"hello")).unwrap();
    s.io.flush().unwrap();
    let (_, opcode, payload) = ws_read_frame(&mut s.io).expect("a close frame");
    assert_eq!(opcode, 0x8);
    assert_eq!(payload[..2], 1003u16.to_be_bytes());
    let mut rest = Vec::new();
    let end = s.io.read_to_end(&mut rest);
    assert!(
        end.is_ok(),
        "the TLS stream ends with close_notify, not a bare TCP close: {end:?}"
    );
    assert_eq!(&bystander.recv_publish().payload[..], b"gone");
    assert!(wait_counter(&broker, "websocket_failures", 1) >= 1);
}

/// `listen_plain = false` in `[websocket]` leaves only `wss://`: no `listening ws` line,
/// and clients get in over `wss://`.
#[test]
fn a_websocket_section_can_serve_wss_only() {
    let broker = wss_broker("listen_plain = false\n");
    assert!(broker.ws_addr.is_none(), "no ws:// listener");
    let (mut c, ack) = wss_connect(&broker, connect_v5(&unique("only-wss"), true, 0));
    assert_eq!(ack.reason_code, ReasonCode::SUCCESS);
    c.sub("only/wss", QoS::AtLeastOnce);
    broker
        .v5(&unique("pub"))
        .publish("only/wss", b"yes", QoS::AtLeastOnce, false);
    assert_eq!(&c.recv_publish().payload[..], b"yes");
}

/// `wss://` settings that cannot work stop startup, naming the key and the problem.
#[test]
fn bad_wss_settings_stop_startup() {
    let e = refused_startup("[websocket]\ntls_port = 0\n");
    assert!(
        e.contains("websocket.tls_port") && e.contains("[tls]"),
        "no certificate: {e}"
    );
    let e = refused_startup("[websocket]\nport = 0\nlisten_plain = false\n");
    assert!(e.contains("websocket.listen_plain"), "no port at all: {e}");
    let tls = format!(
        "[tls]\nport = 18831\ncert_file = {:?}\nkey_file = {:?}\n",
        tls_fixture("server.pem"),
        tls_fixture("server.key")
    );
    let e = refused_startup(&format!("{tls}[websocket]\nport = 0\ntls_port = 18831\n"));
    assert!(
        e.contains("websocket.tls_port") && e.contains("tls.port"),
        "the TLS listener's port: {e}"
    );
    let e = refused_startup(&format!(
        "{tls}[websocket]\nport = 18832\ntls_port = 18832\n"
    ));
    assert!(e.contains("websocket.tls_port"), "its own ws:// port: {e}");
}
