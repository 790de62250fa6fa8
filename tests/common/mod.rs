//! Test harness for the integration tests: starts the real `shardmq` binary on port 0 with
//! two shards, and drives it with a small blocking MQTT client built on `std::net` and the
//! crate's own codec (encode what we send, decode what we get, and raw bytes where a test
//! checks the wire byte for byte).
//!
//! Every test file includes this module with `mod common;`; not every file uses every
//! helper.
#![allow(dead_code)]

use bytes::{Bytes, BytesMut};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub use shardmq::codec::{
    ConnAck, Connect, Disconnect, Packet, Protocol, PubResponse, Publish, QoS, ReasonCode,
    RetainHandling, SubAck, Subscribe, SubscribeFilter, SubscriptionOptions, UnsubAck, Unsubscribe,
    Will, WillProperties,
};

/// How long a test waits for a packet it expects.
pub const WAIT: Duration = Duration::from_secs(5);
/// How long a test waits to be sure that nothing arrives.
pub const QUIET: Duration = Duration::from_millis(300);

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A process-unique suffix for client ids, topics and temp files.
pub fn unique(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{n}", std::process::id())
}

// ------------------------------------------------------------------------------------------
// The broker process
// ------------------------------------------------------------------------------------------

/// A running broker, stopped (SIGTERM, then wait) on drop.
pub struct Broker {
    child: Option<Child>,
    /// The address printed on the `listening` line.
    pub addr: SocketAddr,
    config_path: Option<PathBuf>,
}

impl Broker {
    /// Starts the broker with two shards and default limits.
    pub fn start() -> Broker {
        Broker::start_with(None)
    }

    /// Starts the broker with two shards and `toml` as its configuration file.
    pub fn with_config(toml: &str) -> Broker {
        Broker::start_with(Some(toml))
    }

    fn start_with(toml: Option<&str>) -> Broker {
        let config_path = toml.map(|text| {
            let path = std::env::temp_dir().join(format!("{}.toml", unique("shardmq-test")));
            std::fs::write(&path, text).expect("writing the test config");
            path
        });
        let log = std::env::var("SHARDMQ_TEST_LOG").unwrap_or_else(|_| "warn".to_string());
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_shardmq"));
        cmd.args([
            "--bind",
            "127.0.0.1",
            "--port",
            "0",
            "--shards",
            "2",
            "--log",
            &log,
        ]);
        if let Some(p) = &config_path {
            cmd.arg("--config").arg(p);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("starting shardmq");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut first = String::new();
            let _ = reader.read_line(&mut first);
            let _ = tx.send(first);
            // Keep draining so the broker never blocks on a full pipe.
            let mut sink = String::new();
            while reader.read_line(&mut sink).is_ok_and(|n| n > 0) {
                sink.clear();
            }
        });
        let line = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                panic!("shardmq did not print its listening line in time");
            }
        };
        let addr = line
            .trim()
            .strip_prefix("listening ")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| {
                let _ = child.kill();
                let status = child.wait();
                panic!("unexpected first stdout line {line:?} (exit: {status:?})")
            });
        Broker {
            child: Some(child),
            addr,
            config_path,
        }
    }

    /// Process id of the broker.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Sends a signal to the broker.
    pub fn signal(&self, sig: i32) {
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.pid() as libc::pid_t, sig);
        }
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// A raw TCP client (no CONNECT sent yet).
    pub fn raw(&self) -> Client {
        Client::tcp(self.addr)
    }

    /// An MQTT 5 client, connected with clean start and `client_id`.
    pub fn v5(&self, client_id: &str) -> Client {
        let (c, ack) = Client::connect(self.addr, Connect::new(Protocol::V5, client_id));
        assert_eq!(ack.reason_code, ReasonCode::SUCCESS, "{ack:?}");
        c
    }

    /// An MQTT 3.1.1 client, connected with clean session and `client_id`.
    pub fn v311(&self, client_id: &str) -> Client {
        let (c, ack) = Client::connect(self.addr, Connect::new(Protocol::V311, client_id));
        assert_eq!(ack.reason_code, ReasonCode::SUCCESS, "{ack:?}");
        c
    }

    /// Connects with the given CONNECT and returns the client and its CONNACK.
    pub fn connect(&self, connect: Connect) -> (Client, ConnAck) {
        Client::connect(self.addr, connect)
    }

    /// An MQTT 5 client whose connection is served by `shard`.
    ///
    /// The shard is chosen by the kernel (SO_REUSEPORT hash), so this connects with an
    /// empty client id until the Assigned Client Identifier (`shardmq-<instance>-<shard>-<n>`)
    /// names the wanted shard. Returns the client and its assigned id.
    pub fn v5_on_shard(&self, shard: usize, session_expiry: u32) -> (Client, String) {
        let mut connect = Connect::new(Protocol::V5, "");
        connect.properties.session_expiry_interval = Some(session_expiry);
        self.on_shard(shard, &connect)
    }

    /// Like [`Broker::v5_on_shard`] with a CONNECT template (its client id must be empty;
    /// a Will is discarded on the connections that are not kept).
    pub fn on_shard(&self, shard: usize, template: &Connect) -> (Client, String) {
        assert!(template.client_id.is_empty() && template.protocol.is_v5());
        for _ in 0..200 {
            let (mut c, ack) = Client::connect(self.addr, template.clone());
            assert_eq!(ack.reason_code, ReasonCode::SUCCESS);
            let id = ack
                .properties
                .assigned_client_identifier
                .expect("assigned client id")
                .to_string();
            if shard_of_assigned(&id) == Some(shard) {
                return (c, id);
            }
            // Clean up: normal disconnect with session expiry 0 ends the session.
            c.send(&Packet::Disconnect(Disconnect {
                reason_code: ReasonCode::SUCCESS,
                properties: shardmq::codec::DisconnectProperties {
                    session_expiry_interval: Some(0),
                    ..Default::default()
                },
            }));
        }
        panic!("no connection landed on shard {shard} in 200 tries");
    }
}

/// The shard named by an assigned client id `shardmq-<instance>-<shard>-<n>`.
pub fn shard_of_assigned(id: &str) -> Option<usize> {
    let mut parts = id.split('-');
    if parts.next()? != "shardmq" {
        return None;
    }
    parts.next()?;
    parts.next()?.parse().ok()
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            // SAFETY: kill(2) on our own child.
            unsafe {
                libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(20))
                    }
                    _ => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                }
            }
        }
        if let Some(p) = &self.config_path {
            let _ = std::fs::remove_file(p);
        }
    }
}

// ------------------------------------------------------------------------------------------
// The client
// ------------------------------------------------------------------------------------------

/// What a read produced.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Recv {
    /// A decoded packet.
    Packet(Packet),
    /// Nothing within the timeout.
    Timeout,
    /// The server closed the connection (EOF or reset).
    Closed,
}

/// A blocking MQTT client on one TCP connection. Packets read while waiting for something
/// else are kept and returned first by later reads.
pub struct Client {
    pub stream: TcpStream,
    buf: BytesMut,
    /// The protocol packets are encoded and decoded with (set by CONNECT).
    pub protocol: Protocol,
    stash: VecDeque<Packet>,
    next_id: u16,
    closed: bool,
}

impl Client {
    /// Opens a TCP connection; nothing is sent.
    pub fn tcp(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connecting to the broker");
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            buf: BytesMut::new(),
            protocol: Protocol::V311,
            stash: VecDeque::new(),
            next_id: 0,
            closed: false,
        }
    }

    /// Opens a connection, sends `connect` and reads the CONNACK.
    pub fn connect(addr: SocketAddr, connect: Connect) -> (Client, ConnAck) {
        let mut c = Client::tcp(addr);
        c.protocol = connect.protocol;
        c.send(&Packet::Connect(Box::new(connect)));
        match c.expect_packet() {
            Packet::ConnAck(ack) => (c, ack),
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    /// A fresh packet identifier (1..=65535).
    pub fn next_packet_id(&mut self) -> u16 {
        self.next_id = self.next_id.wrapping_add(1);
        if self.next_id == 0 {
            self.next_id = 1;
        }
        self.next_id
    }

    /// Encodes and sends one packet.
    pub fn send(&mut self, packet: &Packet) {
        let mut out = BytesMut::new();
        packet.encode(self.protocol, &mut out).expect("encoding");
        self.send_raw(&out);
    }

    /// Sends bytes as they are (errors ignored: the server may have closed already).
    pub fn send_raw(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes);
    }

    /// Reads raw bytes until `n` are in or `timeout` passes; returns what arrived.
    pub fn read_raw(&mut self, n: usize, timeout: Duration) -> Vec<u8> {
        let deadline = Instant::now() + timeout;
        while self.buf.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || !self.fill(left) {
                break;
            }
        }
        let take = n.min(self.buf.len());
        self.buf.split_to(take).to_vec()
    }

    /// Reads more bytes into the buffer. False on timeout or close.
    fn fill(&mut self, timeout: Duration) -> bool {
        if self.closed {
            return false;
        }
        let timeout = timeout.max(Duration::from_millis(1));
        self.stream.set_read_timeout(Some(timeout)).unwrap();
        let mut chunk = [0u8; 64 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) => {
                self.closed = true;
                false
            }
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => false,
            Err(_) => {
                self.closed = true;
                false
            }
        }
    }

    /// The next packet, or a timeout, or the close.
    pub fn recv(&mut self, timeout: Duration) -> Recv {
        if let Some(p) = self.stash.pop_front() {
            return Recv::Packet(p);
        }
        self.recv_wire(timeout)
    }

    fn recv_wire(&mut self, timeout: Duration) -> Recv {
        let deadline = Instant::now() + timeout;
        loop {
            match Packet::decode(
                &mut self.buf,
                self.protocol,
                shardmq::codec::MAX_FRAME_BYTES,
            ) {
                Ok(Some(p)) => return Recv::Packet(p),
                Ok(None) => {}
                Err(e) => panic!("client could not decode a server packet: {e}"),
            }
            if self.closed {
                return Recv::Closed;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Recv::Timeout;
            }
            if !self.fill(left) && self.closed {
                return Recv::Closed;
            }
        }
    }

    /// The next packet; panics on timeout or close.
    #[track_caller]
    pub fn expect_packet(&mut self) -> Packet {
        match self.recv(WAIT) {
            Recv::Packet(p) => p,
            other => panic!("expected a packet, got {other:?}"),
        }
    }

    /// Reads until a packet satisfies `pred`, keeping the others for later reads.
    #[track_caller]
    pub fn wait_for(&mut self, what: &str, mut pred: impl FnMut(&Packet) -> bool) -> Packet {
        if let Some(i) = self.stash.iter().position(&mut pred) {
            return self.stash.remove(i).unwrap();
        }
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv_wire(left) {
                Recv::Packet(p) if pred(&p) => return p,
                Recv::Packet(p) => self.stash.push_back(p),
                other => panic!(
                    "waiting for {what}: got {other:?}; stashed {:?}",
                    self.stash
                ),
            }
        }
    }

    /// The next PUBLISH; panics on anything else.
    #[track_caller]
    pub fn expect_publish(&mut self) -> Publish {
        match self.expect_packet() {
            Packet::Publish(p) => p,
            other => panic!("expected PUBLISH, got {other:?}"),
        }
    }

    /// Nothing arrives for `QUIET`.
    #[track_caller]
    pub fn expect_nothing(&mut self) {
        self.expect_nothing_for(QUIET);
    }

    /// Nothing arrives for `d` (the connection may stay open).
    #[track_caller]
    pub fn expect_nothing_for(&mut self, d: Duration) {
        match self.recv(d) {
            Recv::Timeout => {}
            other => panic!("expected nothing, got {other:?}"),
        }
    }

    /// The server closes the connection within `WAIT`; returns the packets it sent first.
    #[track_caller]
    pub fn expect_closed(&mut self) -> Vec<Packet> {
        let mut seen = Vec::new();
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv(left) {
                Recv::Packet(p) => seen.push(p),
                Recv::Closed => return seen,
                Recv::Timeout => panic!("connection still open; received {seen:?}"),
            }
        }
    }

    /// The server sends DISCONNECT with `reason` (MQTT 5) and closes.
    #[track_caller]
    pub fn expect_disconnect(&mut self, reason: ReasonCode) {
        let seen = self.expect_closed();
        let found = seen
            .iter()
            .rev()
            .find_map(|p| match p {
                Packet::Disconnect(d) => Some(d.reason_code),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no DISCONNECT before close; got {seen:?}"));
        assert_eq!(
            found,
            reason,
            "DISCONNECT reason {:#04x} ({}), expected {:#04x} ({})",
            found.0,
            found.name(),
            reason.0,
            reason.name()
        );
    }

    /// SUBSCRIBE to one filter; returns the SUBACK.
    #[track_caller]
    pub fn subscribe(&mut self, filter: &str, qos: QoS) -> SubAck {
        self.subscribe_opts(filter, SubscriptionOptions::qos(qos), None)
    }

    /// SUBSCRIBE to one filter with options and an optional Subscription Identifier.
    #[track_caller]
    pub fn subscribe_opts(
        &mut self,
        filter: &str,
        options: SubscriptionOptions,
        id: Option<u32>,
    ) -> SubAck {
        let packet_id = self.next_packet_id();
        let mut s = Subscribe {
            packet_id,
            filters: vec![SubscribeFilter {
                filter: filter.into(),
                options,
            }],
            ..Subscribe::default()
        };
        s.properties.subscription_identifier = id;
        self.send(&Packet::Subscribe(s));
        match self.wait_for(
            "SUBACK",
            |p| matches!(p, Packet::SubAck(a) if a.packet_id == packet_id),
        ) {
            Packet::SubAck(a) => a,
            _ => unreachable!(),
        }
    }

    /// SUBSCRIBE and check that the QoS was granted.
    #[track_caller]
    pub fn sub(&mut self, filter: &str, qos: QoS) {
        let ack = self.subscribe(filter, qos);
        assert_eq!(ack.reason_codes, vec![ReasonCode(qos as u8)], "{filter}");
    }

    /// UNSUBSCRIBE one filter; returns the UNSUBACK.
    #[track_caller]
    pub fn unsubscribe(&mut self, filter: &str) -> UnsubAck {
        let packet_id = self.next_packet_id();
        self.send(&Packet::Unsubscribe(Unsubscribe {
            packet_id,
            filters: vec![filter.into()],
            ..Unsubscribe::default()
        }));
        match self.wait_for(
            "UNSUBACK",
            |p| matches!(p, Packet::UnsubAck(a) if a.packet_id == packet_id),
        ) {
            Packet::UnsubAck(a) => a,
            _ => unreachable!(),
        }
    }

    /// PUBLISH and complete the QoS flow (PUBACK, or PUBREC/PUBREL/PUBCOMP).
    #[track_caller]
    pub fn publish(&mut self, topic: &str, payload: &[u8], qos: QoS, retain: bool) {
        let p = Publish {
            qos,
            retain,
            topic: topic.into(),
            payload: Bytes::copy_from_slice(payload),
            ..Publish::default()
        };
        self.publish_packet(p);
    }

    /// Sends a PUBLISH (a packet id is assigned for QoS > 0) and completes its flow.
    #[track_caller]
    pub fn publish_packet(&mut self, mut p: Publish) {
        if p.qos != QoS::AtMostOnce && p.packet_id == 0 {
            p.packet_id = self.next_packet_id();
        }
        let id = p.packet_id;
        let qos = p.qos;
        self.send(&Packet::Publish(p));
        match qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => {
                self.wait_for(
                    "PUBACK",
                    |p| matches!(p, Packet::PubAck(a) if a.packet_id == id),
                );
            }
            QoS::ExactlyOnce => {
                self.wait_for(
                    "PUBREC",
                    |p| matches!(p, Packet::PubRec(a) if a.packet_id == id),
                );
                self.send(&Packet::PubRel(PubResponse::new(id)));
                self.wait_for(
                    "PUBCOMP",
                    |p| matches!(p, Packet::PubComp(a) if a.packet_id == id),
                );
            }
        }
    }

    /// The next PUBLISH (other packets are kept for later); acknowledges QoS 1 with PUBACK
    /// and QoS 2 with PUBREC, PUBREL, PUBCOMP.
    #[track_caller]
    pub fn recv_publish(&mut self) -> Publish {
        let p = match self.wait_for("PUBLISH", |p| matches!(p, Packet::Publish(_))) {
            Packet::Publish(p) => p,
            _ => unreachable!(),
        };
        self.ack(&p);
        p
    }

    /// Acknowledges a received PUBLISH (completing the QoS 2 flow).
    #[track_caller]
    pub fn ack(&mut self, p: &Publish) {
        match p.qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => self.send(&Packet::PubAck(PubResponse::new(p.packet_id))),
            QoS::ExactlyOnce => {
                let id = p.packet_id;
                self.send(&Packet::PubRec(PubResponse::new(id)));
                self.wait_for(
                    "PUBREL",
                    |q| matches!(q, Packet::PubRel(a) if a.packet_id == id),
                );
                self.send(&Packet::PubComp(PubResponse::new(id)));
            }
        }
    }

    /// PINGREQ / PINGRESP round trip: everything the server had to send before it is in.
    #[track_caller]
    pub fn ping(&mut self) {
        self.send(&Packet::PingReq);
        self.wait_for("PINGRESP", |p| matches!(p, Packet::PingResp));
    }

    /// Normal DISCONNECT (0x00), then waits for the server to close.
    pub fn disconnect(self) {
        self.disconnect_with(ReasonCode::SUCCESS, None);
    }

    /// DISCONNECT with a reason (MQTT 5) and optional new session expiry, then waits for
    /// the server to close (so that the broker has processed it when this returns).
    pub fn disconnect_with(mut self, reason: ReasonCode, session_expiry: Option<u32>) {
        let mut d = Disconnect::new(reason);
        d.properties.session_expiry_interval = session_expiry;
        self.send(&Packet::Disconnect(d));
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Recv::Closed = self.recv_wire(deadline - Instant::now()) {
                return;
            }
        }
    }

    /// Closes the socket without DISCONNECT (an abnormal end for the broker).
    pub fn drop_connection(self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}

/// A CONNECT for MQTT 5 with a Session Expiry Interval and Clean Start as given.
pub fn connect_v5(client_id: &str, clean_start: bool, session_expiry: u32) -> Connect {
    let mut c = Connect::new(Protocol::V5, client_id);
    c.clean_start = clean_start;
    c.properties.session_expiry_interval = Some(session_expiry);
    c
}

/// A CONNECT for MQTT 3.1.1 with Clean Session as given.
pub fn connect_v311(client_id: &str, clean_session: bool) -> Connect {
    let mut c = Connect::new(Protocol::V311, client_id);
    c.clean_start = clean_session;
    c
}

/// A Will on `topic`.
pub fn will(topic: &str, payload: &[u8], qos: QoS) -> Will {
    Will {
        topic: topic.into(),
        payload: Bytes::copy_from_slice(payload),
        qos,
        retain: false,
        properties: WillProperties::default(),
    }
}

/// A PUBLISH packet value.
pub fn publish(topic: &str, payload: &[u8], qos: QoS) -> Publish {
    Publish {
        qos,
        topic: topic.into(),
        payload: Bytes::copy_from_slice(payload),
        ..Publish::default()
    }
}

/// Subscription options with everything given.
pub fn sub_opts(
    qos: QoS,
    no_local: bool,
    retain_as_published: bool,
    retain_handling: RetainHandling,
) -> SubscriptionOptions {
    SubscriptionOptions {
        qos,
        no_local,
        retain_as_published,
        retain_handling,
    }
}

/// Encodes a packet for `protocol` (for byte-level tests).
pub fn encode(packet: &Packet, protocol: Protocol) -> Vec<u8> {
    let mut out = BytesMut::new();
    packet.encode(protocol, &mut out).expect("encoding");
    out.to_vec()
}
