//! `shardmq-floor`: the least CPU per message that any MQTT broker can spend on this machine.
//!
//! A broker's CPU per message mixes its own work with the kernel's: receiving each segment,
//! acknowledging it, sending the copy and delivering it over loopback. On a slow virtual
//! machine the kernel's part alone can exceed another machine's whole figure, so an absolute
//! goal measured elsewhere says little. This forwarder does only what no broker can avoid:
//! one thread, level-triggered epoll, one `read` per readable socket, and one `write` per
//! connection per wake-up carrying every byte queued for it. It answers CONNECT, SUBSCRIBE,
//! UNSUBSCRIBE and PINGREQ, acknowledges QoS 1 PUBLISH, and copies each PUBLISH frame
//! unchanged to the connections whose filter matches its topic (a map for exact filters, a
//! list scan for the few wildcard ones). There are no sessions, shared subscriptions,
//! retained messages, QoS 2, MQTT 5 properties on deliveries or limits beyond one bound on
//! unsent bytes: it is not a broker. Run `shardmq-bench --broker-pid` against it, in the same run as the broker
//! under test, to read a scenario's floor.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, IntoRawFd, RawFd};

use bytes::BytesMut;
use clap::Parser;

use shardmq::codec::{
    ConnAck, Packet, PacketView, Protocol, QoS, ReasonCode, SubAck, UnsubAck, CONNECT, PUBACK,
};
use shardmq::topic::filter_matches;

/// A single-threaded epoll forwarder that sets the floor of CPU per message (not a broker).
#[derive(Debug, Parser)]
#[command(name = "shardmq-floor", version)]
struct Cli {
    /// Address to listen on (loopback unless --allow-remote).
    #[arg(long, default_value = "127.0.0.1")]
    bind: std::net::IpAddr,
    /// Port (0 picks a free one; the `listening` line names it).
    #[arg(long, default_value_t = 1883)]
    port: u16,
    /// Listen on a non-loopback address.
    #[arg(long)]
    allow_remote: bool,
}

/// Bytes one read takes from a socket.
const READ_BYTES: usize = 64 * 1024;
/// Unsent bytes a connection may hold; QoS 0 copies beyond it are dropped.
const MAX_UNSENT_BYTES: usize = 16 * 1024 * 1024;
/// Events taken from one `epoll_wait`.
const EVENTS: usize = 512;
/// Largest frame accepted (the codec's checks apply below it).
const MAX_PACKET_BYTES: usize = 1 << 20;

/// One client socket.
struct Conn {
    fd: RawFd,
    protocol: Protocol,
    input: Vec<u8>,
    output: Vec<u8>,
    /// Filters this connection subscribed to, so a close removes them without a scan.
    topics: Vec<String>,
    /// Waiting for EPOLLOUT: the last write left bytes unsent.
    blocked: bool,
    /// EPOLLOUT is in the watched events.
    watching_out: bool,
    dirty: bool,
}

struct Floor {
    epoll: RawFd,
    listener: TcpListener,
    conns: HashMap<RawFd, Conn>,
    subscribers: HashMap<String, Vec<RawFd>>,
    /// Filters with `+` or `#`, scanned for every PUBLISH.
    wildcards: Vec<(String, RawFd)>,
    /// Scratch list of one PUBLISH's receivers.
    targets: Vec<RawFd>,
    dirty: Vec<RawFd>,
    dropped: u64,
}

fn main() {
    let cli = Cli::parse();
    if !cli.bind.is_loopback() && !cli.allow_remote {
        eprintln!(
            "shardmq-floor: --bind {} is not a loopback address; pass --allow-remote",
            cli.bind
        );
        std::process::exit(2);
    }
    let code = match run(SocketAddr::new(cli.bind, cli.port)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("shardmq-floor: {e}");
            1
        }
    };
    std::process::exit(code);
}

fn run(addr: SocketAddr) -> io::Result<()> {
    let listener = TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    println!("listening {}", listener.local_addr()?);
    // SAFETY: plain epoll syscalls on descriptors this process owns.
    let epoll = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
    let mut floor = Floor {
        epoll,
        listener,
        conns: HashMap::new(),
        subscribers: HashMap::new(),
        wildcards: Vec::new(),
        targets: Vec::new(),
        dirty: Vec::new(),
        dropped: 0,
    };
    floor.watch(
        floor.listener.as_raw_fd(),
        libc::EPOLLIN as u32,
        libc::EPOLL_CTL_ADD,
    )?;
    floor.serve()
}

fn cvt(r: i32) -> io::Result<i32> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

impl Floor {
    fn watch(&self, fd: RawFd, events: u32, op: i32) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events,
            u64: fd as u64,
        };
        // SAFETY: `ev` outlives the call; `fd` is open.
        cvt(unsafe { libc::epoll_ctl(self.epoll, op, fd, &mut ev) }).map(|_| ())
    }

    fn serve(&mut self) -> io::Result<()> {
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; EVENTS];
        let mut chunk = vec![0u8; READ_BYTES];
        let listen_fd = self.listener.as_raw_fd();
        loop {
            // SAFETY: `events` has room for EVENTS entries.
            let n = unsafe { libc::epoll_wait(self.epoll, events.as_mut_ptr(), EVENTS as i32, -1) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            for ev in &events[..n as usize] {
                let fd = ev.u64 as RawFd;
                if fd == listen_fd {
                    self.accept_all();
                    continue;
                }
                if ev.events & libc::EPOLLOUT as u32 != 0 {
                    if let Some(c) = self.conns.get_mut(&fd) {
                        c.blocked = false;
                        self.mark(fd);
                    }
                }
                if ev.events & (libc::EPOLLIN | libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0 {
                    self.read(fd, &mut chunk);
                }
            }
            self.flush();
        }
    }

    fn accept_all(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    let _ = stream.set_nonblocking(true);
                    let fd = stream.into_raw_fd();
                    if self
                        .watch(fd, libc::EPOLLIN as u32, libc::EPOLL_CTL_ADD)
                        .is_err()
                    {
                        // SAFETY: we own `fd`.
                        unsafe { libc::close(fd) };
                        continue;
                    }
                    self.conns.insert(
                        fd,
                        Conn {
                            fd,
                            protocol: Protocol::V311,
                            input: Vec::new(),
                            output: Vec::new(),
                            topics: Vec::new(),
                            blocked: false,
                            watching_out: false,
                            dirty: false,
                        },
                    );
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // Out of descriptors or similar: try again at the next readiness.
                Err(_) => return,
            }
        }
    }

    fn mark(&mut self, fd: RawFd) {
        if let Some(c) = self.conns.get_mut(&fd) {
            if !c.dirty {
                c.dirty = true;
                self.dirty.push(fd);
            }
        }
    }

    fn read(&mut self, fd: RawFd, chunk: &mut [u8]) {
        // SAFETY: `chunk` is a valid writable buffer of its length.
        let n = unsafe { libc::read(fd, chunk.as_mut_ptr().cast(), chunk.len()) };
        if n == 0 {
            self.close(fd);
            return;
        }
        if n < 0 {
            let e = io::Error::last_os_error();
            if !matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
            ) {
                self.close(fd);
            }
            return;
        }
        let Some(mut input) = self
            .conns
            .get_mut(&fd)
            .map(|c| std::mem::take(&mut c.input))
        else {
            return;
        };
        let fresh = &chunk[..n as usize];
        if input.is_empty() {
            // The common case reads whole frames: decode straight from the read buffer.
            if let Some(at) = self.frames(fd, fresh) {
                input.extend_from_slice(&fresh[at..]);
            }
        } else {
            input.extend_from_slice(fresh);
            match self.frames(fd, &input) {
                Some(at) => drop(input.drain(..at)),
                None => return,
            }
        }
        if let Some(c) = self.conns.get_mut(&fd) {
            c.input = input;
        }
    }

    /// Handles the complete frames at the start of `buf`; returns the offset of the first
    /// incomplete byte, or `None` after closing the connection.
    fn frames(&mut self, fd: RawFd, buf: &[u8]) -> Option<usize> {
        let mut at = 0;
        loop {
            let protocol = self.conns.get(&fd)?.protocol;
            let view = match PacketView::decode(&buf[at..], protocol, MAX_PACKET_BYTES) {
                Ok(Some(v)) => v,
                Ok(None) => return Some(at),
                Err(_) => {
                    self.close(fd);
                    return None;
                }
            };
            let (packet, len) = view;
            let frame = &buf[at..at + len];
            match packet {
                PacketView::Publish(p) => {
                    match p.qos {
                        QoS::AtMostOnce => {}
                        QoS::AtLeastOnce => {
                            let id = p.packet_id.to_be_bytes();
                            self.queue(fd, &[PUBACK << 4, 2, id[0], id[1]], false);
                        }
                        QoS::ExactlyOnce => {
                            eprintln!("shardmq-floor: QoS 2 is not forwarded; closing");
                            self.close(fd);
                            return None;
                        }
                    }
                    let topic = p.topic;
                    let mut targets = std::mem::take(&mut self.targets);
                    targets.clear();
                    if let Some(list) = self.subscribers.get(topic) {
                        targets.extend_from_slice(list);
                    }
                    for (filter, target) in &self.wildcards {
                        if filter_matches(filter, topic) {
                            targets.push(*target);
                        }
                    }
                    for &target in &targets {
                        self.queue(target, frame, p.qos == QoS::AtMostOnce);
                    }
                    self.targets = targets;
                }
                // Subscribers' acknowledgements: the copy was delivered; nothing to do.
                PacketView::Ack(_) => {}
                PacketView::Other => {
                    if !self.control(fd, frame) {
                        return None;
                    }
                }
            }
            at += len;
        }
    }

    /// CONNECT, SUBSCRIBE, UNSUBSCRIBE, PINGREQ, DISCONNECT; false when the connection closed.
    fn control(&mut self, fd: RawFd, frame: &[u8]) -> bool {
        let Some(protocol) = self.conns.get(&fd).map(|c| c.protocol) else {
            return false;
        };
        let protocol = if frame[0] >> 4 == CONNECT {
            Protocol::V5
        } else {
            protocol
        };
        let mut bytes = BytesMut::from(frame);
        let packet = match Packet::decode(&mut bytes, protocol, MAX_PACKET_BYTES) {
            Ok(Some(p)) => p,
            _ => {
                self.close(fd);
                return false;
            }
        };
        let reply = match packet {
            Packet::Connect(c) => {
                if let Some(conn) = self.conns.get_mut(&fd) {
                    conn.protocol = c.protocol;
                }
                Packet::ConnAck(ConnAck::default())
            }
            Packet::Subscribe(s) => {
                let mut reason_codes = Vec::with_capacity(s.filters.len());
                for f in &s.filters {
                    let filter = f.filter.to_string();
                    if filter.starts_with("$share/") {
                        reason_codes.push(ReasonCode::SHARED_SUBSCRIPTIONS_NOT_SUPPORTED);
                        continue;
                    }
                    self.subscribe(fd, filter);
                    reason_codes.push(ReasonCode((f.options.qos as u8).min(1)));
                }
                Packet::SubAck(SubAck {
                    packet_id: s.packet_id,
                    reason_codes,
                    ..SubAck::default()
                })
            }
            Packet::Unsubscribe(u) => {
                for f in &u.filters {
                    self.unsubscribe(fd, f.as_str());
                }
                let reason_codes = match protocol {
                    Protocol::V5 => vec![ReasonCode::SUCCESS; u.filters.len()],
                    _ => Vec::new(),
                };
                Packet::UnsubAck(UnsubAck {
                    packet_id: u.packet_id,
                    reason_codes,
                    ..UnsubAck::default()
                })
            }
            Packet::PingReq => Packet::PingResp,
            Packet::Disconnect(_) => {
                self.close(fd);
                return false;
            }
            _ => return true,
        };
        let protocol = self.conns.get(&fd).map_or(protocol, |c| c.protocol);
        let mut out = BytesMut::new();
        if reply.encode(protocol, &mut out).is_err() {
            self.close(fd);
            return false;
        }
        self.queue(fd, &out, false);
        true
    }

    fn subscribe(&mut self, fd: RawFd, filter: String) {
        let Some(conn) = self.conns.get_mut(&fd) else {
            return;
        };
        if conn.topics.contains(&filter) {
            return;
        }
        conn.topics.push(filter.clone());
        if filter.contains(['+', '#']) {
            self.wildcards.push((filter, fd));
        } else {
            self.subscribers.entry(filter).or_default().push(fd);
        }
    }

    fn unsubscribe(&mut self, fd: RawFd, filter: &str) {
        if let Some(list) = self.subscribers.get_mut(filter) {
            list.retain(|&s| s != fd);
            if list.is_empty() {
                self.subscribers.remove(filter);
            }
        }
        self.wildcards.retain(|(f, s)| !(*s == fd && f == filter));
        if let Some(conn) = self.conns.get_mut(&fd) {
            conn.topics.retain(|t| t != filter);
        }
    }

    fn queue(&mut self, fd: RawFd, bytes: &[u8], droppable: bool) {
        let Some(c) = self.conns.get_mut(&fd) else {
            return;
        };
        if droppable && c.output.len() + bytes.len() > MAX_UNSENT_BYTES {
            self.dropped += 1;
            return;
        }
        c.output.extend_from_slice(bytes);
        self.mark(fd);
    }

    /// One write per connection that has bytes queued and is not waiting for EPOLLOUT.
    fn flush(&mut self) {
        let dirty = std::mem::take(&mut self.dirty);
        for fd in &dirty {
            let Some(c) = self.conns.get_mut(fd) else {
                continue;
            };
            c.dirty = false;
            if c.blocked || c.output.is_empty() {
                continue;
            }
            // SAFETY: `output` is a valid readable buffer of its length.
            let n = unsafe { libc::write(c.fd, c.output.as_ptr().cast(), c.output.len()) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::WouldBlock && e.kind() != io::ErrorKind::Interrupted {
                    self.close(*fd);
                    continue;
                }
            }
            let n = n.max(0) as usize;
            c.output.drain(..n);
            c.blocked = !c.output.is_empty();
            if c.blocked != c.watching_out {
                c.watching_out = c.blocked;
                let events = if c.blocked {
                    (libc::EPOLLIN | libc::EPOLLOUT) as u32
                } else {
                    libc::EPOLLIN as u32
                };
                let _ = self.watch(*fd, events, libc::EPOLL_CTL_MOD);
            }
        }
        self.dirty = dirty;
        self.dirty.clear();
    }

    fn close(&mut self, fd: RawFd) {
        let Some(c) = self.conns.remove(&fd) else {
            return;
        };
        for filter in &c.topics {
            self.unsubscribe(fd, filter);
        }
        // SAFETY: we own `fd`; closing removes it from the epoll set.
        unsafe { libc::close(fd) };
        if self.dropped > 0 && self.conns.is_empty() {
            eprintln!("shardmq-floor: {} QoS 0 copies dropped", self.dropped);
            self.dropped = 0;
        }
    }
}
