//! TLS listeners against the real broker (two shards): TLS and plain clients exchange
//! messages, a TLS connection moves between shards on takeover with its TLS state, mutual
//! TLS admits only certificates of the configured CA, and what is not TLS on the TLS port
//! closes that connection only. Clients: rustls (blocking, the harness's codec) and
//! rumqttc's own TLS transport. Certificates: `tests/fixtures/tls/` (see `make.sh` there).

mod common;

use common::*;
use std::sync::Arc;

/// `[tls]` on a free port with the fixture server certificate, plus `extra` lines.
fn tls_broker(extra: &str) -> Broker {
    Broker::with_config(&format!(
        "sys_interval_secs = 1\n[tls]\nport = 0\ncert_file = {:?}\nkey_file = {:?}\n{extra}",
        tls_fixture("server.pem"),
        tls_fixture("server.key"),
    ))
}

fn tls_connect(
    broker: &Broker,
    connect: Connect,
    config: &Arc<rustls::ClientConfig>,
) -> (Client, ConnAck) {
    Client::tls(broker.tls_addr.expect("TLS listener"), config.clone()).handshake(connect)
}

/// Messages cross between TLS and plain clients both ways, at every QoS, including one
/// payload much larger than a TLS record (16 KiB) and than the broker's receive buffers.
#[test]
fn tls_and_plain_clients_exchange_messages() {
    let broker = tls_broker("");
    let config = tls_client_config(None);
    let (mut secure, ack) = tls_connect(&broker, connect_v5(&unique("tls-sub"), true, 0), &config);
    assert_eq!(ack.reason_code, ReasonCode::SUCCESS);
    secure.sub("to-tls/#", QoS::ExactlyOnce);
    let mut plain = broker.v5(&unique("plain"));
    plain.sub("to-plain/#", QoS::ExactlyOnce);

    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
        plain.publish("to-tls/x", format!("{qos:?}").as_bytes(), qos, false);
        let got = secure.recv_publish();
        assert_eq!(
            (got.topic.as_str(), &got.payload[..]),
            ("to-tls/x", format!("{qos:?}").as_bytes())
        );
        secure.ack(&got);
        secure.publish("to-plain/y", format!("{qos:?}").as_bytes(), qos, false);
        let got = plain.recv_publish();
        assert_eq!(&got.payload[..], format!("{qos:?}").as_bytes());
        plain.ack(&got);
    }
    let big: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    secure.publish("to-plain/big", &big, QoS::AtLeastOnce, false);
    let got = plain.recv_publish();
    assert!(
        got.payload[..] == big[..],
        "200 kB payload intact, TLS to plain"
    );
    plain.ack(&got);
    plain.publish("to-tls/big", &big, QoS::AtLeastOnce, false);
    let got = secure.recv_publish();
    assert!(
        got.payload[..] == big[..],
        "200 kB payload intact, plain to TLS"
    );
    secure.ack(&got);
}

/// A TLS connection taking over a session that lives on the other shard moves there with
/// its TLS state: sixteen reconnects of one persistent session (the kernel spreads them
/// over both shards; all on one shard has odds of 2^-15) each work, and a takeover of an open TLS connection sends it DISCONNECT
/// 0x8E over TLS [MQTT-3.1.4-3].
#[test]
fn tls_connections_move_between_shards_with_their_session() {
    let broker = tls_broker("");
    let config = tls_client_config(None);
    roam_between_shards(&broker, |connect| tls_connect(&broker, connect, &config));
}

/// Mutual TLS: with `client_ca_file`, a client certificate from that CA gets in; none, or
/// one from another CA, fails the handshake (counted in `tls_failures`), and nothing
/// reaches MQTT.
#[test]
fn mutual_tls_admits_only_certificates_of_the_client_ca() {
    let broker = tls_broker(&format!("client_ca_file = {:?}\n", tls_fixture("ca.pem")));
    let (mut good, ack) = tls_connect(
        &broker,
        connect_v311(&unique("dev1"), true),
        &tls_client_config(Some(("client.pem", "client.key"))),
    );
    assert_eq!(ack.reason_code, ReasonCode::SUCCESS);
    good.ping();
    for (label, config) in [
        ("no certificate", tls_client_config(None)),
        (
            "another CA's certificate",
            tls_client_config(Some(("rogue.pem", "rogue.key"))),
        ),
    ] {
        let mut c = Client::tls(broker.tls_addr.unwrap(), config);
        c.protocol = Protocol::V311;
        c.send(&Packet::Connect(Box::new(connect_v311(
            &unique("intruder"),
            true,
        ))));
        assert!(
            matches!(c.recv(WAIT), Recv::Closed),
            "{label}: closed, no CONNACK"
        );
    }
    assert!(wait_counter(&broker, "tls_failures", 2) >= 2);
    good.ping();
    // The refused clients learn why: the broker's alert, not a bare close.
    for (label, config, alert) in [
        (
            "no certificate",
            tls_client_config(None),
            "CertificateRequired",
        ),
        (
            "another CA's certificate",
            tls_client_config(Some(("rogue.pem", "rogue.key"))),
            "UnknownCA",
        ),
    ] {
        let error = handshake_error(broker.tls_addr.unwrap(), config);
        assert!(error.contains(alert), "{label}: {error}");
    }
}

/// Connects, sends a CONNECT and reads: the error the TLS client reports.
fn handshake_error(addr: std::net::SocketAddr, config: Arc<rustls::ClientConfig>) -> String {
    use std::io::{Read, Write};
    let tcp = std::net::TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(WAIT)).unwrap();
    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    let conn = rustls::ClientConnection::new(config, name).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let connect = Packet::Connect(Box::new(connect_v311(&unique("refused"), true)));
    let mut buf = [0u8; 64];
    match tls
        .write_all(&encode(&connect, Protocol::V311))
        .and_then(|_| tls.read(&mut buf))
    {
        Ok(n) => format!("no error, read {n} bytes"),
        Err(e) => e.to_string(),
    }
}

/// The reason code of a PUBLISH QoS 1 (PUBACK).
fn puback_reason(c: &mut Client, topic: &str) -> ReasonCode {
    let id = c.next_packet_id();
    let mut p = publish(topic, b"x", QoS::AtLeastOnce);
    p.packet_id = id;
    c.send(&Packet::Publish(p));
    match c.wait_for(
        "PUBACK",
        |p| matches!(p, Packet::PubAck(a) if a.packet_id == id),
    ) {
        Packet::PubAck(a) => a.reason_code,
        _ => unreachable!(),
    }
}

/// `use_identity_as_username`: the certificate's Common Name is the user name, for the ACL
/// (`%u`) and instead of the password file, whatever the CONNECT claims; a certificate with
/// no Common Name is refused (0x87). Plain-TCP clients still need their password.
#[test]
fn a_client_certificate_names_the_user() {
    let dir = std::env::temp_dir();
    let acl = dir.join(unique("shardmq-tls-acl"));
    std::fs::write(&acl, "pattern readwrite own/%u/#\n").unwrap();
    let passwd = dir.join(unique("shardmq-tls-passwd"));
    std::fs::write(
        &passwd,
        "bob:$7$101$3ku7LAvSZOAJ20LQ$NaCB68fyPHKImw9knfZrueBZdRtxa3mG4QaMdIn/XjTsxST6Aw0ZTq0gABGo/RUG8qpE97YqfSyudSmWpgN2MA==\n",
    )
    .unwrap();
    let broker = Broker::with_config(&format!(
        "[auth]\nallow_anonymous = false\npassword_file = {passwd:?}\nacl_file = {acl:?}\n\
         [tls]\nport = 0\ncert_file = {:?}\nkey_file = {:?}\nclient_ca_file = {:?}\n\
         use_identity_as_username = true\n",
        tls_fixture("server.pem"),
        tls_fixture("server.key"),
        tls_fixture("ca.pem"),
    ));
    let dev1 = tls_client_config(Some(("client.pem", "client.key")));
    // No user name, anonymous refused: the certificate is the login.
    let (mut c, ack) = tls_connect(&broker, connect_v5(&unique("d"), true, 0), &dev1);
    assert_eq!(ack.reason_code, ReasonCode::SUCCESS);
    assert_eq!(puback_reason(&mut c, "own/dev1/t"), ReasonCode::SUCCESS);
    assert_eq!(
        puback_reason(&mut c, "own/bob/t"),
        ReasonCode::NOT_AUTHORIZED
    );
    // Claiming to be bob (wrong password) changes nothing: still dev1.
    let mut claim = connect_v5(&unique("d"), true, 0);
    claim.username = Some("bob".into());
    claim.password = Some(b"wrong".to_vec().into());
    let (mut c, ack) = tls_connect(&broker, claim, &dev1);
    assert_eq!(ack.reason_code, ReasonCode::SUCCESS);
    assert_eq!(
        puback_reason(&mut c, "own/bob/t"),
        ReasonCode::NOT_AUTHORIZED
    );
    assert_eq!(puback_reason(&mut c, "own/dev1/t"), ReasonCode::SUCCESS);
    // A certificate without a Common Name names nobody.
    let nocn = tls_client_config(Some(("nocn.pem", "nocn.key")));
    let (_, ack) = tls_connect(&broker, connect_v5(&unique("d"), true, 0), &nocn);
    assert_eq!(ack.reason_code, ReasonCode::NOT_AUTHORIZED);
    let (_, ack) = tls_connect(&broker, connect_v311(&unique("d"), true), &nocn);
    // The codec reads 3.1.1's return code 0x05 as the MQTT 5 reason it stands for.
    assert_eq!(ack.reason_code, ReasonCode::NOT_AUTHORIZED, "3.1.1");
    // The plain listener still asks for passwords.
    let (_, ack) = broker.connect(connect_v5(&unique("p"), true, 0));
    assert_eq!(ack.reason_code, ReasonCode::NOT_AUTHORIZED);
    let mut bob = connect_v5(&unique("p"), true, 0);
    bob.username = Some("bob".into());
    bob.password = Some(b"hunter2".to_vec().into());
    let (mut c, ack) = broker.connect(bob);
    assert_eq!(ack.reason_code, ReasonCode::SUCCESS);
    assert_eq!(puback_reason(&mut c, "own/bob/t"), ReasonCode::SUCCESS);
    std::fs::remove_file(acl).unwrap();
    std::fs::remove_file(passwd).unwrap();
}

/// Plain MQTT on the TLS port, and TLS on the plain port, close those connections only.
#[test]
fn the_wrong_protocol_on_either_port_closes_only_that_connection() {
    let broker = tls_broker("");
    let config = tls_client_config(None);
    let (mut bystander, _) = tls_connect(&broker, connect_v5(&unique("ok"), true, 0), &config);

    let mut plain_on_tls = Client::tcp(broker.tls_addr.unwrap());
    plain_on_tls.send_raw(&encode(
        &Packet::Connect(Box::new(connect_v5(&unique("lost"), true, 0))),
        Protocol::V5,
    ));
    // A TLS alert record (content type 0x15) at most, then the close, well before WAIT.
    let start = std::time::Instant::now();
    let answer = plain_on_tls.read_raw(4096, WAIT);
    assert!(start.elapsed() < WAIT, "the connection was closed");
    assert!(answer.is_empty() || answer[0] == 0x15, "{answer:?}");

    let mut tls_on_plain = Client::tls(broker.addr, config.clone());
    tls_on_plain.protocol = Protocol::V5;
    tls_on_plain.send(&Packet::Connect(Box::new(connect_v5(
        &unique("lost"),
        true,
        0,
    ))));
    assert!(matches!(tls_on_plain.recv(WAIT), Recv::Closed));

    bystander.ping();
    let (_, ack) = tls_connect(&broker, connect_v5(&unique("after"), true, 0), &config);
    assert_eq!(ack.reason_code, ReasonCode::SUCCESS);
}

/// rumqttc's own TLS transport (rustls 0.22, MQTT 3.1.1) against the TLS listener.
#[tokio::test]
async fn rumqttc_over_tls() {
    use rumqttc::{
        AsyncClient, Event, MqttOptions, Packet as RPacket, QoS as RQoS, Transport as RTransport,
    };
    let broker = tls_broker("");
    let addr = broker.tls_addr.unwrap();
    let mut plain = broker.v311(&unique("plain"));
    plain.sub("rumq/#", QoS::AtLeastOnce);
    let mut o = MqttOptions::new(unique("rumqttc-tls"), addr.ip().to_string(), addr.port());
    o.set_transport(RTransport::tls(
        std::fs::read(tls_fixture("ca.pem")).unwrap(),
        None,
        None,
    ));
    let (client, mut eventloop) = AsyncClient::new(o, 10);
    client
        .subscribe("rumq-back", RQoS::AtLeastOnce)
        .await
        .unwrap();
    client
        .publish("rumq/1", RQoS::AtLeastOnce, false, "over tls")
        .await
        .unwrap();
    let mut puback = false;
    let mut suback = false;
    let deadline = tokio::time::Instant::now() + WAIT;
    while !(puback && suback) {
        match tokio::time::timeout_at(deadline, eventloop.poll()).await {
            Ok(Ok(Event::Incoming(RPacket::PubAck(_)))) => puback = true,
            Ok(Ok(Event::Incoming(RPacket::SubAck(_)))) => suback = true,
            Ok(Ok(_)) => {}
            other => panic!("rumqttc over TLS: {other:?}"),
        }
    }
    let got = tokio::task::spawn_blocking(move || {
        let got = plain.recv_publish();
        plain.ack(&got);
        plain.publish("rumq-back", b"to rumqttc", QoS::AtLeastOnce, false);
        got
    })
    .await
    .unwrap();
    assert_eq!(&got.payload[..], b"over tls");
    loop {
        match tokio::time::timeout_at(deadline, eventloop.poll()).await {
            Ok(Ok(Event::Incoming(RPacket::Publish(p)))) => {
                assert_eq!(&p.payload[..], b"to rumqttc");
                break;
            }
            Ok(Ok(_)) => {}
            other => panic!("rumqttc over TLS: {other:?}"),
        }
    }
}

/// A TLS section that cannot be used stops startup, naming the key and the problem.
#[test]
fn bad_tls_settings_stop_startup() {
    let section = |cert: &str, key: &str| {
        format!(
            "[tls]\nport = 0\ncert_file = {:?}\nkey_file = {:?}\n",
            tls_fixture(cert),
            tls_fixture(key)
        )
    };
    let e = refused_startup(&section("missing.pem", "server.key"));
    assert!(
        e.contains("tls.cert_file") && e.contains("missing.pem"),
        "{e}"
    );
    let e = refused_startup(&section("server.pem", "client.key"));
    assert!(e.contains("tls.key_file"), "a key that does not fit: {e}");
    let e = refused_startup(&section("server.key", "server.key"));
    assert!(
        e.contains("tls.cert_file") && e.contains("no PEM certificate"),
        "{e}"
    );
    let e = refused_startup("[tls]\nport = 0\n");
    assert!(e.contains("cert_file"), "{e}");
    let e = refused_startup("listen_plain = false\n");
    assert!(e.contains("listen_plain"), "{e}");
    let e = refused_startup(&format!(
        "{}use_identity_as_username = true\n",
        section("server.pem", "server.key")
    ));
    assert!(
        e.contains("tls.use_identity_as_username") && e.contains("client_ca_file"),
        "{e}"
    );
}

/// `listen_plain = false`: a TLS-only broker prints only its TLS address and serves MQTT
/// there.
#[test]
fn a_tls_only_broker_listens_on_its_tls_port_only() {
    use std::io::{BufRead, BufReader};
    let path = std::env::temp_dir().join(format!("{}.toml", unique("shardmq-tls-only")));
    std::fs::write(
        &path,
        format!(
            "listen_plain = false\n[tls]\nport = 0\ncert_file = {:?}\nkey_file = {:?}\n",
            tls_fixture("server.pem"),
            tls_fixture("server.key")
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_shardmq"))
        .args([
            "--bind",
            "127.0.0.1",
            "--shards",
            "2",
            "--log",
            "warn",
            "--config",
        ])
        .arg(&path)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let result = std::panic::catch_unwind(|| {
        let addr: std::net::SocketAddr = line
            .trim()
            .strip_prefix("listening tls ")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("first line {line:?}"));
        let mut c = Client::tls(addr, tls_client_config(None));
        c.protocol = Protocol::V5;
        c.send(&Packet::Connect(Box::new(connect_v5(
            &unique("only"),
            true,
            0,
        ))));
        assert!(
            matches!(c.expect_packet(), Packet::ConnAck(a) if a.reason_code == ReasonCode::SUCCESS)
        );
    });
    let _ = child.kill();
    let _ = child.wait();
    std::fs::remove_file(&path).unwrap();
    result.unwrap();
}

/// A socket writer that sends one byte per write, with a pause, so the broker receives the
/// handshake and the records a byte or a few at a time.
struct Trickle(std::net::TcpStream);

impl std::io::Read for Trickle {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        std::io::Read::read(&mut self.0, buf)
    }
}

impl std::io::Write for Trickle {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        std::thread::sleep(std::time::Duration::from_micros(50));
        std::io::Write::write(&mut self.0, &buf[..1])
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Records and handshake messages split over many receives are put back together: a
/// client whose every byte arrives on its own connects (mutual TLS: the certificate too),
/// subscribes and gets its PINGRESP.
#[test]
fn a_client_sending_a_byte_at_a_time_gets_through() {
    use std::io::{Read, Write};
    let broker = tls_broker(&format!("client_ca_file = {:?}\n", tls_fixture("ca.pem")));
    let addr = broker.tls_addr.unwrap();
    let tcp = std::net::TcpStream::connect(addr).unwrap();
    tcp.set_nodelay(true).unwrap();
    tcp.set_read_timeout(Some(WAIT)).unwrap();
    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    let config = tls_client_config(Some(("client.pem", "client.key")));
    let conn = rustls::ClientConnection::new(config, name).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, Trickle(tcp));
    let expect = |tls: &mut rustls::StreamOwned<rustls::ClientConnection, Trickle>,
                  sent: &Packet,
                  answer_type: u8| {
        tls.write_all(&encode(sent, Protocol::V311)).unwrap();
        tls.flush().unwrap();
        let mut first = [0u8; 2];
        tls.read_exact(&mut first).unwrap();
        assert_eq!(first[0] >> 4, answer_type, "answer to {sent:?}: {first:?}");
        let mut rest = vec![0u8; first[1] as usize];
        tls.read_exact(&mut rest).unwrap();
        rest
    };
    let connack = expect(
        &mut tls,
        &Packet::Connect(Box::new(connect_v311(&unique("slow"), true))),
        2,
    );
    assert_eq!(connack, [0, 0], "CONNACK accepted");
    let subscribe = Packet::Subscribe(Subscribe {
        packet_id: 7,
        filters: vec![SubscribeFilter {
            filter: "slow/#".into(),
            options: SubscriptionOptions::qos(QoS::AtLeastOnce),
        }],
        ..Subscribe::default()
    });
    assert_eq!(expect(&mut tls, &subscribe, 9), [0, 7, 1], "SUBACK QoS 1");
    assert_eq!(expect(&mut tls, &Packet::PingReq, 13), Vec::<u8>::new());
}

/// A client that starts a handshake and stalls is closed by `limits.connect_timeout_secs`,
/// like a plain client that never sends CONNECT: a stalled handshake holds nothing for long.
#[test]
fn a_stalled_handshake_is_closed_by_the_connect_timeout() {
    let broker = tls_broker("[limits]\nconnect_timeout_secs = 1\n");
    // The deadline counts from the accept: measured from before the connect, so a test
    // thread descheduled between connect and send (a loaded machine) cannot see it early.
    let start = std::time::Instant::now();
    let mut stalled = Client::tcp(broker.tls_addr.unwrap());
    // The first bytes of a TLS record header (handshake, TLS 1.0 record version), no more.
    stalled.send_raw(&[0x16, 0x03, 0x01, 0x00]);
    let answer = stalled.read_raw(4096, WAIT);
    assert!(answer.is_empty(), "{answer:?}");
    let waited = start.elapsed();
    assert!(
        waited >= std::time::Duration::from_millis(500) && waited < WAIT,
        "closed after {waited:?}"
    );
}

/// A fleet reconnecting at once: a burst of simultaneous TLS handshakes is spread over loop
/// turns (a few per turn and shard, the rest wait: `tls_handshakes_deferred`), and every
/// client still gets in and is heard.
#[test]
fn a_burst_of_simultaneous_tls_handshakes_all_get_in() {
    const CLIENTS: usize = 48;
    let broker = tls_broker("");
    let config = tls_client_config(None);
    let mut sub = broker.v5(&unique("burst-sub"));
    sub.sub("burst/#", QoS::AtLeastOnce);
    let addr = broker.tls_addr.expect("TLS listener");
    let start = Arc::new(std::sync::Barrier::new(CLIENTS));
    let threads: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let (start, config) = (start.clone(), config.clone());
            std::thread::spawn(move || {
                let mut c = Client::tls(addr, config);
                c.protocol = Protocol::V5;
                start.wait();
                // The ClientHello leaves with the first write.
                c.send(&Packet::Connect(Box::new(connect_v5(
                    &format!("burst-{i}"),
                    true,
                    0,
                ))));
                match c.expect_packet() {
                    Packet::ConnAck(ack) => assert_eq!(ack.reason_code, ReasonCode::SUCCESS),
                    other => panic!("client {i}: expected CONNACK, got {other:?}"),
                }
                c.publish(&format!("burst/{i}"), b"in", QoS::AtLeastOnce, false);
                c
            })
        })
        .collect();
    let _clients: Vec<Client> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let mut heard: Vec<String> = (0..CLIENTS)
        .map(|_| sub.recv_publish().topic.to_string())
        .collect();
    heard.sort();
    let mut expected: Vec<String> = (0..CLIENTS).map(|i| format!("burst/{i}")).collect();
    expected.sort();
    assert_eq!(heard, expected);
    // How many waited depends on timing; printed, not asserted.
    eprintln!(
        "handshake receives deferred: {}",
        wait_counter(&broker, "tls_handshakes_deferred", 0)
    );
}

/// A client that ends its side with close_notify gets the broker's close_notify before the
/// socket closes (RFC 8446 §6.1), so it reads a clean end of the stream, not a truncation.
#[test]
fn a_client_close_notify_is_answered() {
    use std::io::{Read, Write};
    let broker = tls_broker("");
    let addr = broker.tls_addr.expect("TLS listener");
    let tcp = std::net::TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(WAIT)).unwrap();
    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    let conn = rustls::ClientConnection::new(tls_client_config(None), name).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let mut bytes = bytes::BytesMut::new();
    Packet::Connect(Box::new(connect_v5(&unique("notify"), true, 0)))
        .encode(Protocol::V5, &mut bytes)
        .unwrap();
    tls.write_all(&bytes).unwrap();
    tls.flush().unwrap();
    let mut head = [0u8; 2];
    tls.read_exact(&mut head).unwrap();
    assert_eq!(head[0], 0x20, "CONNACK");
    let mut rest = vec![0u8; usize::from(head[1])];
    tls.read_exact(&mut rest).unwrap();
    tls.conn.send_close_notify();
    tls.flush().unwrap();
    let mut after = Vec::new();
    let end = tls.read_to_end(&mut after);
    assert!(
        end.is_ok(),
        "{end:?}: the broker closed without close_notify"
    );
    assert!(after.is_empty(), "{after:?}");
}
