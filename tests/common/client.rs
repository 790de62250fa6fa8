//! The blocking MQTT client: one TCP connection, the crate's codec, a stash of packets
//! read while waiting for another.

use super::*;

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

/// The byte stream under a [`Client`]: plain TCP, or TLS over TCP (rustls).
pub enum Transport {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS; boxed, the state is large.
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
    /// MQTT over a WebSocket (binary frames).
    Ws(Box<WsStream>),
}

impl Transport {
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Transport::Plain(s) => s,
            Transport::Tls(t) => &t.sock,
            Transport::Ws(w) => w.io.tcp(),
        }
    }

    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Transport::Plain(s) => s.write_all(bytes),
            Transport::Tls(t) => t.write_all(bytes).and_then(|_| t.flush()),
            Transport::Ws(w) => w.write_all(bytes),
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Transport::Plain(s) => s.read(buf),
            Transport::Tls(t) => t.read(buf),
            Transport::Ws(w) => w.read(buf),
        }
    }
}

/// A blocking MQTT client on one TCP connection. Packets read while waiting for something
/// else are kept and returned first by later reads.
pub struct Client {
    pub stream: Transport,
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
        Client::over(Transport::Plain(stream))
    }

    /// Opens a TCP connection whose receive buffer is `bytes` (set before the connect, so
    /// the window is small from the start: a client on a slow link). Nothing is sent.
    pub fn tcp_with_recv_buffer(addr: SocketAddr, bytes: usize) -> Client {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("a socket");
        socket.set_recv_buffer_size(bytes).unwrap();
        socket
            .connect(&addr.into())
            .expect("connecting to the broker");
        let stream: TcpStream = socket.into();
        stream.set_nodelay(true).unwrap();
        Client::over(Transport::Plain(stream))
    }

    /// Opens a TLS connection with `config` (trusting the test CA for 127.0.0.1); the
    /// handshake runs with the first write. Nothing is sent.
    pub fn tls(addr: SocketAddr, config: std::sync::Arc<rustls::ClientConfig>) -> Client {
        let stream = TcpStream::connect(addr).expect("connecting to the broker");
        stream.set_nodelay(true).unwrap();
        let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
        let conn = rustls::ClientConnection::new(config, name).expect("TLS client");
        Client::over(Transport::Tls(Box::new(rustls::StreamOwned::new(
            conn, stream,
        ))))
    }

    /// Opens a WebSocket (subprotocol `mqtt`) to the broker's WebSocket listener. Nothing
    /// MQTT is sent.
    pub fn ws(addr: SocketAddr) -> Client {
        Client::over(Transport::Ws(Box::new(WsStream::open(addr))))
    }

    /// Opens a WebSocket over TLS (`wss://`, subprotocol `mqtt`) with `config`. Nothing
    /// MQTT is sent.
    pub fn wss(addr: SocketAddr, config: std::sync::Arc<rustls::ClientConfig>) -> Client {
        Client::over(Transport::Ws(Box::new(WsStream::open_tls(addr, config))))
    }

    fn over(stream: Transport) -> Client {
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
        Client::tcp(addr).handshake(connect)
    }

    /// Sends `connect` on this fresh connection (any transport) and reads the CONNACK.
    pub fn handshake(mut self, connect: Connect) -> (Client, ConnAck) {
        self.protocol = connect.protocol;
        self.send(&Packet::Connect(Box::new(connect)));
        match self.expect_packet() {
            Packet::ConnAck(ack) => (self, ack),
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

    /// Writes bytes as they are and returns the outcome (a reset by the server shows here).
    pub fn try_send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Reads until the server closes: every byte it sent (after those already buffered)
    /// on a clean close (EOF); the error on a reset, or after `WAIT`.
    pub fn read_to_close(&mut self) -> std::io::Result<Vec<u8>> {
        let mut all = self.buf.split().to_vec();
        let deadline = Instant::now() + WAIT;
        let mut chunk = [0u8; 16 * 1024];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ErrorKind::TimedOut.into());
            }
            self.stream.tcp().set_read_timeout(Some(left)).unwrap();
            match self.stream.read(&mut chunk)? {
                0 => {
                    self.closed = true;
                    return Ok(all);
                }
                n => all.extend_from_slice(&chunk[..n]),
            }
        }
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
        self.stream.tcp().set_read_timeout(Some(timeout)).unwrap();
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
        let _ = self.stream.tcp().shutdown(std::net::Shutdown::Both);
    }
}
