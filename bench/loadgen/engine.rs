//! The client engine: one io_uring per thread driving many MQTT connections.
//!
//! * one RECV outstanding per socket, into that socket's own buffer (the spare capacity of a
//!   `BytesMut`, decoded in place by the crate's codec);
//! * everything a socket has to send during one loop turn is appended to its write buffer and
//!   goes out as one SEND when the previous one completed (coalescing);
//! * one `io_uring_enter` per loop turn submits all SQEs and waits for completions.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::RawFd;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use crossbeam_channel::{Receiver, Sender};
use io_uring::{opcode, squeue, types, IoUring};
use socket2::SockAddr;

use shardmq::codec::{
    ConnAck, Connect, Disconnect, EncodedPublish, Packet, PacketView, Protocol, PubResponse,
    Publish, QoS, ReasonCode, Subscribe, SubscribeFilter, SubscriptionOptions, PUBACK, PUBCOMP,
    PUBREC, PUBREL,
};

use super::pacing::{Pacer, RateLimiter};
use super::payload::{self, Header};
use super::plan::{ClientSpec, Mode};
use super::stats::Interval;
use super::sys::now_ns;
use super::track::{SeqTracker, StreamTotals};

const OP_RECV: u64 = 1;
const OP_SEND: u64 = 2;
const OP_CONNECT: u64 = 3;
const MAX_PACKET: usize = 16 << 20;
const IORING_RECVSEND_POLL_FIRST: u16 = 1;
const CONNECT_TIMEOUT_NS: u64 = 10_000_000_000;

/// Settings shared by every worker.
#[derive(Debug, Clone)]
pub struct EngineCfg {
    /// Broker address.
    pub addr: SocketAddr,
    /// Bind client sockets to this many loopback source addresses (127.0.0.1..).
    pub src_addrs: usize,
    /// MQTT version.
    pub protocol: Protocol,
    /// QoS of publishes and subscriptions.
    pub qos: QoS,
    /// Payload size.
    pub size: usize,
    /// Messages per second per publisher; 0 = as fast as the window allows.
    pub rate: f64,
    /// In-flight window of QoS 1/2 publishers (capped by the broker's Receive Maximum).
    pub window: u32,
    /// Connects in flight per thread.
    pub connect_inflight: usize,
    /// Connects per second per thread; 0 = unlimited.
    pub connect_rate: f64,
    /// QoS 0 publishers stop while this many bytes are unsent on their socket.
    pub max_unsent: usize,
    /// MQTT keep alive, seconds (0: none).
    pub keepalive: u16,
    /// Receive buffer per socket.
    pub rbuf: usize,
    /// Engine mode.
    pub mode: Mode,
    /// Reconnect storm: how long a client stays connected, ms.
    pub hold_ms: u64,
    /// Batch completions: once waiting, wait up to this long for several completions
    /// before handling the first (0: handle each as soon as it arrives).
    pub batch_us: u32,
}

/// Orders from the main thread.
#[derive(Debug, Clone, Copy)]
pub enum Cmd {
    /// Start publishing at `t0`, stop at `end` (CLOCK_MONOTONIC ns).
    Start {
        /// First scheduled send.
        t0: u64,
        /// End of the publishing window.
        end: u64,
    },
    /// Retained scenario: late subscribers subscribe now.
    SubscribeNow,
    /// Disconnect everything, report, exit.
    Finish,
}

/// Reports to the main thread.
#[derive(Debug)]
pub enum Report {
    /// Every client of the thread connected (and subscribed) or failed.
    Ready {
        /// Clients that made it.
        ok: usize,
        /// Clients that failed.
        failed: usize,
    },
    /// Periodic statistics.
    Interval(Box<Interval>),
    /// Retained scenario: a publisher published (and got acknowledged) all its messages.
    PubDone,
    /// Last report of a thread.
    Final {
        /// Remaining statistics.
        interval: Box<Interval>,
        /// Stream detector totals.
        streams: StreamTotals,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum St {
    Queued,
    Connecting,
    WaitConnack,
    Subscribing,
    Ready,
    Closing,
    Closed,
}

struct PubState {
    pub_id: u32,
    receivers: u64,
    seq: u64,
    pacer: Option<Pacer>,
    phase: f64,
    tmpl: EncodedPublish,
    topic: String,
    window: u32,
    inflight: u32,
    next_pid: u16,
    used: Vec<u64>,
    blocked: bool,
    retained_topics: u32,
    done_reported: bool,
    await_ping: bool,
}

impl PubState {
    fn alloc_pid(&mut self) -> u16 {
        loop {
            self.next_pid = self.next_pid.wrapping_add(1);
            if self.next_pid == 0 {
                continue;
            }
            let (w, b) = (self.next_pid as usize / 64, self.next_pid % 64);
            if self.used[w] & (1 << b) == 0 {
                self.used[w] |= 1 << b;
                return self.next_pid;
            }
        }
    }

    /// Frees an identifier; false when it was not in flight.
    fn free_pid(&mut self, pid: u16) -> bool {
        let (w, b) = (pid as usize / 64, pid % 64);
        if self.used[w] & (1 << b) == 0 {
            return false;
        }
        self.used[w] &= !(1 << b);
        self.inflight -= 1;
        true
    }
}

struct Conn {
    fd: RawFd,
    st: St,
    spec: usize,
    gidx: usize,
    rbuf: BytesMut,
    wbuf: BytesMut,
    sbuf: BytesMut,
    soff: usize,
    recv_out: bool,
    send_out: bool,
    connect_out: bool,
    dirty: bool,
    in_wake: bool,
    close_after_send: bool,
    t_connect: u64,
    last_tx: u64,
    track_slot: usize,
    publ: Option<Box<PubState>>,
    ret_rx: u32,
    t_sub: u64,
    ever_ready: bool,
    failed: bool,
    drained: bool,
    /// A member of a shared-subscription group: per publisher, one more than the highest
    /// sequence number this member received (0: none yet), to check the member's own order
    /// (the group's tracker sees the members interleaved). `None` for other clients.
    member_order: Option<Vec<u64>>,
}

/// Records message `seq` of publisher `pub_id` at one shared-subscription member; false
/// when the member already had a later message of that publisher (a repeat of the latest
/// is a duplicate, counted elsewhere, not a reorder).
fn in_member_order(order: &mut Vec<u64>, pub_id: usize, seq: u64) -> bool {
    if pub_id >= order.len() {
        order.resize(pub_id + 1, 0);
    }
    let next = seq + 1;
    if next < order[pub_id] {
        return false;
    }
    order[pub_id] = next;
    true
}

/// One worker thread's engine.
pub struct Worker {
    thread: usize,
    cfg: EngineCfg,
    specs: Vec<ClientSpec>,
    ring: IoUring,
    conns: Vec<Conn>,
    addr: SockAddr,
    tracks: Vec<Vec<SeqTracker>>,
    heap: BinaryHeap<Reverse<(u64, u32)>>,
    storm_heap: BinaryHeap<Reverse<(u64, u32)>>,
    wake: Vec<u32>,
    dirty: Vec<u32>,
    connect_q: VecDeque<u32>,
    connecting: usize,
    limiter: RateLimiter,
    iv: Interval,
    open: u64,
    ready_reported: bool,
    running: bool,
    t0: u64,
    end: u64,
    finishing: bool,
    retained_target: u32,
    next_report: u64,
    next_sweep: u64,
    cmd_rx: Receiver<Cmd>,
    tx: Sender<Report>,
    cqes: Vec<(u64, i32)>,
    min_wait_ok: bool,
    batch_want: usize,
    /// A receive filled its whole buffer this turn: more data waits in that socket, so the
    /// next wait must not hold completions back for the batching window (a subscriber
    /// drained one buffer per window could not keep up with a fast broker, and the report
    /// measured the generator instead).
    backlogged: bool,
    dbg: [u64; 4],
}

fn errno_text(e: i32) -> String {
    let s = io::Error::from_raw_os_error(e).to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

fn bump(map: &mut BTreeMap<String, u64>, key: impl Into<String>) {
    *map.entry(key.into()).or_default() += 1;
}

/// What the engine needs of a received PUBLISH, copied out of the receive buffer.
struct Received {
    qos: QoS,
    packet_id: u16,
    retain: bool,
    payload_len: usize,
    header: Option<Header>,
}

fn ud(ci: usize, op: u64) -> u64 {
    ((ci as u64) << 8) | op
}

impl Worker {
    /// A worker for `clients` (global index, spec).
    pub fn new(
        thread: usize,
        cfg: EngineCfg,
        clients: Vec<(usize, ClientSpec)>,
        cmd_rx: Receiver<Cmd>,
        tx: Sender<Report>,
        retained_target: u32,
    ) -> io::Result<Worker> {
        let n = clients.len().max(1) as u32;
        let entries = n.clamp(256, 4096).next_power_of_two();
        let cq = (n * 2 + 1024).next_power_of_two().min(1 << 20);
        let ring = IoUring::builder()
            .setup_single_issuer()
            .setup_defer_taskrun()
            .setup_cqsize(cq)
            .build(entries)
            .or_else(|_| IoUring::builder().setup_cqsize(cq).build(entries))?;
        let min_wait_ok = ring.params().is_feature_min_timeout();
        let batch_want = clients.len().clamp(1, 4096);
        let mut group_slots: BTreeMap<u32, usize> = BTreeMap::new();
        let mut conns = Vec::with_capacity(clients.len());
        let mut specs = Vec::with_capacity(clients.len());
        let rbuf = cfg.rbuf;
        for (i, (gidx, spec)) in clients.into_iter().enumerate() {
            let track_slot = if spec.filters.is_empty() {
                usize::MAX
            } else {
                let next = group_slots.len();
                *group_slots.entry(spec.track_group).or_insert(next)
            };
            conns.push(Conn {
                fd: -1,
                st: St::Queued,
                spec: i,
                gidx,
                rbuf: BytesMut::with_capacity(rbuf),
                wbuf: BytesMut::new(),
                sbuf: BytesMut::new(),
                soff: 0,
                recv_out: false,
                send_out: false,
                connect_out: false,
                dirty: false,
                in_wake: false,
                close_after_send: false,
                t_connect: 0,
                last_tx: 0,
                track_slot,
                publ: None,
                ret_rx: 0,
                t_sub: 0,
                ever_ready: false,
                failed: false,
                drained: false,
                member_order: spec
                    .filters
                    .iter()
                    .any(|f| f.starts_with("$share/"))
                    .then(Vec::new),
            });
            specs.push(spec);
        }
        let now = now_ns();
        let connect_q = (0..conns.len() as u32).collect();
        Ok(Worker {
            thread,
            addr: SockAddr::from(cfg.addr),
            limiter: RateLimiter::new(now, cfg.connect_rate),
            cfg,
            specs,
            ring,
            conns,
            tracks: vec![Vec::new(); group_slots.len()],
            heap: BinaryHeap::new(),
            storm_heap: BinaryHeap::new(),
            wake: Vec::new(),
            dirty: Vec::new(),
            connect_q,
            connecting: 0,
            iv: Interval::new(thread),
            open: 0,
            ready_reported: false,
            running: false,
            t0: 0,
            end: u64::MAX,
            finishing: false,
            retained_target,
            next_report: now + 1_000_000_000,
            next_sweep: now + 1_000_000_000,
            cmd_rx,
            tx,
            cqes: Vec::with_capacity(4096),
            min_wait_ok,
            backlogged: false,
            batch_want,
            dbg: [0; 4],
        })
    }

    /// Runs until `Cmd::Finish` (or the main thread goes away).
    pub fn run(mut self) {
        loop {
            loop {
                match self.cmd_rx.try_recv() {
                    Ok(cmd) => self.command(cmd),
                    Err(crossbeam_channel::TryRecvError::Empty) => break,
                    Err(crossbeam_channel::TryRecvError::Disconnected) => self.command(Cmd::Finish),
                }
            }
            if self.finishing {
                break;
            }
            let now = now_ns();
            self.start_connects(now);
            if self.running {
                self.pump(now);
            }
            self.timers(now);
            self.flush(now);
            let timeout = self.wait_budget(now_ns());
            self.enter(timeout);
            self.reap();
        }
        self.finish();
    }

    fn command(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Start { t0, end } => {
                self.t0 = t0;
                self.end = end;
                self.running = true;
                for ci in 0..self.conns.len() {
                    if self.conns[ci].st != St::Ready {
                        continue;
                    }
                    if self.cfg.mode == Mode::Storm {
                        let due = t0 + self.cfg.hold_ms * 1_000_000;
                        self.storm_heap.push(Reverse((due, ci as u32)));
                    }
                    let rate = self.cfg.rate;
                    if let Some(ps) = self.conns[ci].publ.as_mut() {
                        if rate > 0.0 && ps.retained_topics == 0 {
                            let p = Pacer::new(t0, rate, ps.phase);
                            ps.pacer = Some(p);
                            self.heap.push(Reverse((p.due(0), ci as u32)));
                        } else {
                            self.wake_conn(ci);
                        }
                    }
                }
            }
            Cmd::SubscribeNow => {
                let now = now_ns();
                for ci in 0..self.conns.len() {
                    let c = &self.conns[ci];
                    if c.st == St::Ready && self.specs[c.spec].late_subscribe {
                        self.conns[ci].t_sub = now;
                        self.send_subscribe(ci);
                    }
                }
            }
            Cmd::Finish => self.finishing = true,
        }
    }

    // ---------------------------------------------------------------- ring plumbing

    fn push(&mut self, e: squeue::Entry) {
        loop {
            // SAFETY: every buffer an SQE points to lives in a `Conn` that is neither freed nor
            // touched until the matching completion arrives.
            if unsafe { self.ring.submission().push(&e) }.is_ok() {
                return;
            }
            if let Err(err) = self.ring.submit() {
                if err.raw_os_error() != Some(libc::EBUSY) {
                    panic!("io_uring submit: {err}");
                }
                self.reap();
            }
        }
    }

    fn enter(&mut self, timeout: Duration) {
        let r = if timeout.is_zero() {
            self.ring.submit()
        } else {
            let ts = types::Timespec::from(timeout);
            let args = types::SubmitArgs::new().timespec(&ts);
            if self.cfg.batch_us > 0 && self.min_wait_ok && self.running && !self.backlogged {
                let args = args.min_wait_usec(self.cfg.batch_us);
                self.ring
                    .submitter()
                    .submit_with_args(self.batch_want, &args)
            } else {
                self.ring.submitter().submit_with_args(1, &args)
            }
        };
        if let Err(e) = r {
            match e.raw_os_error() {
                Some(libc::ETIME) | Some(libc::EINTR) | Some(libc::EBUSY) => {}
                _ => panic!("io_uring enter: {e}"),
            }
        }
    }

    fn reap(&mut self) {
        self.backlogged = false;
        let mut cqes = std::mem::take(&mut self.cqes);
        cqes.clear();
        cqes.extend(self.ring.completion().map(|c| (c.user_data(), c.result())));
        self.dbg[0] += 1;
        self.dbg[1] += cqes.len() as u64;
        let now = now_ns();
        for &(u, res) in &cqes {
            let ci = (u >> 8) as usize;
            match u & 0xFF {
                OP_RECV => {
                    self.dbg[3] += 1;
                    self.on_recv(ci, res, now)
                }
                OP_SEND => {
                    self.dbg[2] += 1;
                    self.on_send(ci, res, now)
                }
                OP_CONNECT => self.on_connect(ci, res, now),
                _ => {}
            }
        }
        self.cqes = cqes;
    }

    fn wait_budget(&self, now: u64) -> Duration {
        if !self.wake.is_empty() {
            return Duration::ZERO;
        }
        let mut until = now + 10_000_000;
        if let Some(Reverse((due, _))) = self.heap.peek() {
            until = until.min(*due);
        }
        if let Some(Reverse((due, _))) = self.storm_heap.peek() {
            until = until.min(*due);
        }
        if !self.connect_q.is_empty() && self.connecting < self.cfg.connect_inflight {
            if let Some(t) = self.limiter.next_at() {
                until = until.min(t);
            }
        }
        until = until.min(self.next_report);
        Duration::from_nanos(until.saturating_sub(now).max(1_000))
    }

    // ---------------------------------------------------------------- connecting

    fn start_connects(&mut self, now: u64) {
        while self.connecting < self.cfg.connect_inflight && !self.connect_q.is_empty() {
            if self.finishing || !self.limiter.try_take(now) {
                break;
            }
            let ci = self.connect_q.pop_front().unwrap() as usize;
            self.start_connect(ci, now);
        }
    }

    fn start_connect(&mut self, ci: usize, now: u64) {
        if self.iv.first_connect_ns.is_none() {
            self.iv.first_connect_ns = Some(now);
        }
        let v6 = self.cfg.addr.is_ipv6();
        // SAFETY: plain socket(2).
        let fd = unsafe {
            libc::socket(
                if v6 { libc::AF_INET6 } else { libc::AF_INET },
                libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
                0,
            )
        };
        if fd < 0 {
            let e = io::Error::last_os_error().raw_os_error().unwrap_or(0);
            self.connect_failed(ci, format!("socket: {}", errno_text(e)));
            return;
        }
        let one: libc::c_int = 1;
        // SAFETY: setsockopt with a valid int option.
        unsafe {
            libc::setsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_NODELAY,
                &one as *const _ as *const libc::c_void,
                4,
            );
        }
        if self.cfg.src_addrs > 1 && !v6 {
            let gidx = self.conns[ci].gidx;
            let host = 1 + (gidx % self.cfg.src_addrs) as u32;
            let src = SockAddr::from(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::from(0x7F00_0000 | host)),
                0,
            ));
            // SAFETY: IP_BIND_ADDRESS_NO_PORT (24) defers port choice to connect, so the
            // 4-tuple, not the source port alone, must be unique; then a plain bind(2).
            let rc = unsafe {
                libc::setsockopt(
                    fd,
                    libc::IPPROTO_IP,
                    24,
                    &one as *const _ as *const libc::c_void,
                    4,
                );
                libc::bind(fd, src.as_ptr(), src.len())
            };
            if rc != 0 {
                let e = io::Error::last_os_error().raw_os_error().unwrap_or(0);
                // SAFETY: closing the fd we just opened.
                unsafe { libc::close(fd) };
                self.connect_failed(ci, format!("bind: {}", errno_text(e)));
                return;
            }
        }
        let c = &mut self.conns[ci];
        c.fd = fd;
        c.st = St::Connecting;
        c.connect_out = true;
        c.t_connect = now;
        c.rbuf.clear();
        c.wbuf.clear();
        c.sbuf.clear();
        c.soff = 0;
        c.close_after_send = false;
        self.connecting += 1;
        let e = opcode::Connect::new(types::Fd(fd), self.addr.as_ptr(), self.addr.len())
            .build()
            .user_data(ud(ci, OP_CONNECT));
        self.push(e);
    }

    fn on_connect(&mut self, ci: usize, res: i32, now: u64) {
        let c = &mut self.conns[ci];
        c.connect_out = false;
        if res < 0 {
            let reason = format!("connect: {}", errno_text(-res));
            self.connect_failed(ci, reason);
            return;
        }
        if c.st == St::Closing {
            self.maybe_closed(ci);
            return;
        }
        c.st = St::WaitConnack;
        let spec = &self.specs[c.spec];
        let mut connect = Connect::new(self.cfg.protocol, spec.client_id.as_str());
        connect.keep_alive_secs = self.cfg.keepalive;
        if self.cfg.protocol.is_v5() {
            connect.properties.receive_maximum = Some(u16::MAX);
        }
        connect.encode(&mut c.wbuf).expect("CONNECT encodes");
        self.mark_dirty(ci);
        self.post_recv(ci);
        let _ = now;
    }

    /// A connection attempt failed before CONNACK.
    fn connect_failed(&mut self, ci: usize, reason: String) {
        self.iv.c.connect_failed += 1;
        bump(&mut self.iv.connect_failures, reason);
        let c = &mut self.conns[ci];
        if matches!(c.st, St::Connecting | St::WaitConnack) {
            self.connecting -= 1;
        }
        c.failed = true;
        self.begin_close(ci);
    }

    fn on_connack(&mut self, ci: usize, ack: ConnAck, now: u64) {
        if self.conns[ci].st != St::WaitConnack {
            self.error(ci, "unexpected CONNACK");
            return;
        }
        if ack.reason_code != ReasonCode::SUCCESS {
            let reason = format!("CONNACK {}", ack.reason_code.name());
            self.connect_failed(ci, reason);
            return;
        }
        self.connecting -= 1;
        self.open += 1;
        self.iv.c.connects_ok += 1;
        if self.running && now <= self.end {
            self.iv.c.connects_in_window += 1;
        }
        self.iv.last_connack_ns = Some(now);
        let c = &mut self.conns[ci];
        let _ = self
            .iv
            .conn_lat
            .record(now.saturating_sub(c.t_connect).max(1));
        c.st = St::Ready;
        c.last_tx = now;
        let spec = &self.specs[c.spec];
        if c.publ.is_none() {
            if let Some(p) = &spec.publish {
                let mut window = self.cfg.window.max(1);
                if let Some(rm) = ack.properties.receive_maximum {
                    window = window.min(rm as u32);
                }
                let qos = self.cfg.qos;
                let mut msg = Publish::new(
                    p.topic.as_str(),
                    Bytes::from(vec![0u8; self.cfg.size.max(payload::HEADER_LEN)]),
                );
                msg.qos = qos;
                c.publ = Some(Box::new(PubState {
                    pub_id: p.pub_id,
                    receivers: p.receivers,
                    seq: 0,
                    pacer: None,
                    phase: p.phase,
                    tmpl: msg
                        .encode_shared(self.cfg.protocol)
                        .expect("PUBLISH encodes"),
                    topic: p.topic.clone(),
                    window,
                    inflight: 0,
                    next_pid: 0,
                    used: vec![0; 1024],
                    blocked: false,
                    retained_topics: p.retained_topics,
                    done_reported: false,
                    await_ping: false,
                }));
            }
        }
        if !spec.filters.is_empty() && !spec.late_subscribe {
            self.send_subscribe(ci);
        } else {
            self.became_ready(ci, now);
        }
    }

    fn send_subscribe(&mut self, ci: usize) {
        let c = &mut self.conns[ci];
        let spec = &self.specs[c.spec];
        let sub = Subscribe {
            packet_id: 1,
            properties: Default::default(),
            filters: spec
                .filters
                .iter()
                .map(|f| SubscribeFilter {
                    filter: f.as_str().into(),
                    options: SubscriptionOptions::qos(self.cfg.qos),
                })
                .collect(),
        };
        sub.encode(self.cfg.protocol, &mut c.wbuf)
            .expect("SUBSCRIBE encodes");
        c.st = St::Subscribing;
        self.mark_dirty(ci);
    }

    fn became_ready(&mut self, ci: usize, now: u64) {
        let c = &mut self.conns[ci];
        c.st = St::Ready;
        c.ever_ready = true;
        if self.running && self.cfg.mode == Mode::Storm {
            let due = now + self.cfg.hold_ms * 1_000_000;
            self.storm_heap.push(Reverse((due, ci as u32)));
        }
    }

    // ---------------------------------------------------------------- receiving

    fn post_recv(&mut self, ci: usize) {
        let rb = self.cfg.rbuf;
        let c = &mut self.conns[ci];
        let want = rb.saturating_sub(c.rbuf.len()).max(rb / 4).max(64);
        c.rbuf.reserve(want);
        let spare = c.rbuf.spare_capacity_mut();
        let (ptr, len) = (
            spare.as_mut_ptr() as *mut u8,
            spare.len().min(1 << 30) as u32,
        );
        c.recv_out = true;
        // The socket was just drained: arm the poll first instead of a recv that fails.
        let poll_first = if c.drained {
            IORING_RECVSEND_POLL_FIRST
        } else {
            0
        };
        let e = opcode::Recv::new(types::Fd(c.fd), ptr, len)
            .ioprio(poll_first)
            .build()
            .user_data(ud(ci, OP_RECV));
        self.push(e);
    }

    fn on_recv(&mut self, ci: usize, res: i32, now: u64) {
        let c = &mut self.conns[ci];
        c.recv_out = false;
        if res <= 0 {
            if c.st == St::Closing {
                self.maybe_closed(ci);
            } else if matches!(c.st, St::WaitConnack | St::Connecting) {
                let reason = if res == 0 {
                    "closed before CONNACK".to_string()
                } else {
                    format!("recv: {}", errno_text(-res))
                };
                self.connect_failed(ci, reason);
            } else {
                let reason = if res == 0 {
                    "closed by broker".to_string()
                } else {
                    format!("recv: {}", errno_text(-res))
                };
                self.error(ci, reason);
            }
            return;
        }
        c.drained = (res as usize) < c.rbuf.capacity() - c.rbuf.len();
        self.backlogged |= !c.drained;
        // SAFETY: the kernel wrote `res` bytes into the spare capacity we handed it.
        unsafe { c.rbuf.set_len(c.rbuf.len() + res as usize) };
        self.iv.c.bytes_rx += res as u64;
        let proto = self.cfg.protocol;
        loop {
            // PUBLISH and the acknowledgements are read in place (no allocation); the rest
            // goes through the owned decoder.
            let c = &mut self.conns[ci];
            match PacketView::decode(&c.rbuf, proto, MAX_PACKET) {
                Ok(Some((PacketView::Publish(p), len))) => {
                    let received = Received {
                        qos: p.qos,
                        packet_id: p.packet_id,
                        retain: p.retain,
                        payload_len: p.payload.len(),
                        header: payload::read(p.payload),
                    };
                    c.rbuf.advance(len);
                    self.on_publish(ci, received, now);
                }
                Ok(Some((PacketView::Ack(a), len))) => {
                    let (packet_type, packet_id, reason) =
                        (a.packet_type, a.packet_id, a.reason_code);
                    c.rbuf.advance(len);
                    self.on_ack_packet(ci, packet_type, packet_id, reason);
                }
                Ok(Some((PacketView::Other, _))) => {
                    match Packet::decode(&mut c.rbuf, proto, MAX_PACKET) {
                        Ok(Some(p)) => self.on_packet(ci, p, now),
                        Ok(None) => break,
                        Err(e) => {
                            self.error(ci, format!("decode: {e}"));
                            return;
                        }
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    self.error(ci, format!("decode: {e}"));
                    return;
                }
            }
            if matches!(self.conns[ci].st, St::Closed) {
                return;
            }
        }
        if self.conns[ci].st != St::Closed && self.conns[ci].fd >= 0 {
            self.post_recv(ci);
        }
    }

    fn on_packet(&mut self, ci: usize, p: Packet, now: u64) {
        match p {
            Packet::Publish(p) => {
                let received = Received {
                    qos: p.qos,
                    packet_id: p.packet_id,
                    retain: p.retain,
                    payload_len: p.payload.len(),
                    header: payload::read(&p.payload),
                };
                self.on_publish(ci, received, now)
            }
            Packet::PubAck(a) => self.on_ack_packet(ci, PUBACK, a.packet_id, a.reason_code),
            Packet::PubRec(a) => self.on_ack_packet(ci, PUBREC, a.packet_id, a.reason_code),
            Packet::PubRel(a) => self.on_ack_packet(ci, PUBREL, a.packet_id, a.reason_code),
            Packet::PubComp(a) => self.on_ack_packet(ci, PUBCOMP, a.packet_id, a.reason_code),
            Packet::ConnAck(a) => self.on_connack(ci, a, now),
            Packet::SubAck(s) => {
                if self.conns[ci].st != St::Subscribing {
                    self.error(ci, "unexpected SUBACK");
                    return;
                }
                if let Some(bad) = s.reason_codes.iter().find(|r| r.0 >= 0x80) {
                    let reason = format!("SUBACK {}", bad.name());
                    self.error(ci, reason);
                    return;
                }
                self.became_ready(ci, now);
            }
            Packet::PingResp => {
                if let Some(ps) = self.conns[ci].publ.as_mut() {
                    if ps.await_ping && !ps.done_reported {
                        ps.done_reported = true;
                        let _ = self.tx.send(Report::PubDone);
                    }
                }
            }
            Packet::UnsubAck(_) => {}
            Packet::Disconnect(d) => {
                let reason = format!("DISCONNECT from broker: {}", d.reason_code.name());
                self.error(ci, reason);
            }
            other => {
                let reason = format!("unexpected packet type {}", other.packet_type());
                self.error(ci, reason);
            }
        }
    }

    /// PUBACK, PUBREC, PUBREL or PUBCOMP from the broker.
    fn on_ack_packet(&mut self, ci: usize, packet_type: u8, packet_id: u16, rc: ReasonCode) {
        let proto = self.cfg.protocol;
        match packet_type {
            PUBREC if rc.0 < 0x80 => {
                let c = &mut self.conns[ci];
                let _ = PubResponse::new(packet_id).encode(PUBREL, proto, &mut c.wbuf);
                self.mark_dirty(ci);
            }
            PUBREL => {
                let c = &mut self.conns[ci];
                let _ = PubResponse::new(packet_id).encode(PUBCOMP, proto, &mut c.wbuf);
                self.mark_dirty(ci);
            }
            // PUBACK, PUBCOMP, or a PUBREC refusing the message.
            _ => self.on_ack(ci, packet_id, rc),
        }
    }

    fn on_publish(&mut self, ci: usize, p: Received, now: u64) {
        let proto = self.cfg.protocol;
        let c = &mut self.conns[ci];
        match p.qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => {
                let _ = PubResponse::new(p.packet_id).encode(PUBACK, proto, &mut c.wbuf);
            }
            QoS::ExactlyOnce => {
                let _ = PubResponse::new(p.packet_id).encode(PUBREC, proto, &mut c.wbuf);
            }
        }
        if p.qos != QoS::AtMostOnce && !c.dirty {
            c.dirty = true;
            self.dirty.push(ci as u32);
        }
        if self.cfg.mode == Mode::Retained {
            if p.retain && p.payload_len != 0 {
                c.ret_rx += 1;
                self.iv.c.retained_rx += 1;
                if c.ret_rx == self.retained_target {
                    self.iv.retained_done_ns.push(now.saturating_sub(c.t_sub));
                }
            }
            return;
        }
        let Some(h) = p.header else {
            if p.payload_len != 0 {
                bump(&mut self.iv.errors, "payload without benchmark header");
            }
            return;
        };
        self.iv.c.delivered += 1;
        if now <= self.end {
            self.iv.c.delivered_in_window += 1;
        }
        self.iv
            .lat
            .saturating_record(now.saturating_sub(h.ts_ns).max(1));
        if c.track_slot != usize::MAX {
            let streams = &mut self.tracks[c.track_slot];
            let i = h.pub_id as usize;
            if i >= streams.len() {
                if i > 10_000_000 {
                    bump(&mut self.iv.errors, "payload with absurd publisher id");
                    return;
                }
                streams.resize_with(i + 1, SeqTracker::default);
            }
            streams[i].observe(h.seq);
            if let Some(order) = c.member_order.as_mut() {
                if !in_member_order(order, i, h.seq) {
                    self.iv.c.member_reordered += 1;
                }
            }
        }
    }

    fn on_ack(&mut self, ci: usize, pid: u16, rc: ReasonCode) {
        let c = &mut self.conns[ci];
        let Some(ps) = c.publ.as_mut() else {
            self.error(ci, "acknowledgement on a client that does not publish");
            return;
        };
        if !ps.free_pid(pid) {
            bump(
                &mut self.iv.errors,
                "acknowledgement of an unknown packet id",
            );
            return;
        }
        self.iv.c.acked += 1;
        if rc.0 >= 0x80 {
            bump(
                &mut self.iv.errors,
                format!("publish refused: {}", rc.name()),
            );
        }
        let unblock = std::mem::replace(&mut ps.blocked, false);
        if ps.retained_topics > 0
            && ps.inflight == 0
            && ps.seq >= ps.retained_topics as u64
            && !ps.done_reported
        {
            ps.done_reported = true;
            let _ = self.tx.send(Report::PubDone);
        }
        if unblock {
            self.wake_conn(ci);
        }
    }

    // ---------------------------------------------------------------- publishing

    fn wake_conn(&mut self, ci: usize) {
        let c = &mut self.conns[ci];
        if !c.in_wake {
            c.in_wake = true;
            self.wake.push(ci as u32);
        }
    }

    fn can_send(&self, ci: usize) -> bool {
        let c = &self.conns[ci];
        if c.st != St::Ready {
            return false;
        }
        let ps = c.publ.as_ref().unwrap();
        if self.cfg.qos == QoS::AtMostOnce {
            c.wbuf.len() + (c.sbuf.len() - c.soff) < self.cfg.max_unsent
        } else {
            ps.inflight < ps.window
        }
    }

    fn publish_one(&mut self, ci: usize, ts: u64) {
        let qos = self.cfg.qos;
        let size = self.cfg.size.max(payload::HEADER_LEN);
        let c = &mut self.conns[ci];
        let ps = c.publ.as_mut().unwrap();
        let pid = if qos == QoS::AtMostOnce {
            0
        } else {
            ps.inflight += 1;
            ps.alloc_pid()
        };
        ps.tmpl.write(pid, false, &mut c.wbuf);
        let end = c.wbuf.len();
        payload::write(
            &mut c.wbuf[end - size..end],
            Header {
                pub_id: ps.pub_id,
                seq: ps.seq,
                ts_ns: ts,
            },
        );
        ps.seq += 1;
        self.iv.c.sent += 1;
        self.iv.c.expected += ps.receivers;
        if !c.dirty {
            c.dirty = true;
            self.dirty.push(ci as u32);
        }
    }

    fn publish_retained(&mut self, ci: usize, now: u64) {
        let (qos, proto, size) = (self.cfg.qos, self.cfg.protocol, self.cfg.size);
        while self.can_send(ci) {
            let c = &mut self.conns[ci];
            let ps = c.publ.as_mut().unwrap();
            if ps.seq >= ps.retained_topics as u64 {
                break;
            }
            let pid = if qos == QoS::AtMostOnce {
                0
            } else {
                ps.inflight += 1;
                ps.alloc_pid()
            };
            let body = payload::build(
                size,
                Header {
                    pub_id: ps.pub_id,
                    seq: ps.seq,
                    ts_ns: now,
                },
            );
            let mut m = Publish::new(format!("{}/{}", ps.topic, ps.seq), body);
            m.qos = qos;
            m.retain = true;
            m.packet_id = pid;
            m.encode(proto, &mut c.wbuf).expect("PUBLISH encodes");
            ps.seq += 1;
            self.iv.c.sent += 1;
            self.mark_dirty(ci);
        }
        let c = &mut self.conns[ci];
        let ps = c.publ.as_mut().unwrap();
        if ps.seq < ps.retained_topics as u64 {
            ps.blocked = true;
        } else if qos == QoS::AtMostOnce && !ps.done_reported && !ps.await_ping {
            // QoS 0: the broker has processed every PUBLISH once it answers a PINGREQ sent
            // after the last one (one connection is processed in order).
            ps.await_ping = true;
            let _ = Packet::PingReq.encode(proto, &mut c.wbuf);
            self.mark_dirty(ci);
        } else if ps.inflight == 0 && !ps.done_reported {
            ps.done_reported = true;
            let _ = self.tx.send(Report::PubDone);
        }
    }

    fn run_publisher(&mut self, ci: usize, now: u64) {
        if self.conns[ci].publ.is_none() {
            return;
        }
        if self.conns[ci].publ.as_ref().unwrap().retained_topics > 0 {
            self.publish_retained(ci, now);
            return;
        }
        let end = self.end;
        match self.conns[ci].publ.as_ref().unwrap().pacer {
            None => {
                if now >= end {
                    return;
                }
                while self.can_send(ci) {
                    self.publish_one(ci, now);
                }
                if self.conns[ci].st == St::Ready {
                    self.conns[ci].publ.as_mut().unwrap().blocked = true;
                }
            }
            Some(pacer) => loop {
                let seq = self.conns[ci].publ.as_ref().unwrap().seq;
                let due = pacer.due(seq);
                if due >= end {
                    return;
                }
                if due > now {
                    self.heap.push(Reverse((due, ci as u32)));
                    return;
                }
                if !self.can_send(ci) {
                    if self.conns[ci].st == St::Ready {
                        self.conns[ci].publ.as_mut().unwrap().blocked = true;
                    }
                    return;
                }
                self.publish_one(ci, due);
            },
        }
    }

    fn pump(&mut self, now: u64) {
        while let Some(&Reverse((due, ci))) = self.heap.peek() {
            if due > now {
                break;
            }
            self.heap.pop();
            self.run_publisher(ci as usize, now);
        }
        let wake = std::mem::take(&mut self.wake);
        for &ci in &wake {
            self.conns[ci as usize].in_wake = false;
            self.run_publisher(ci as usize, now);
        }
        let mut wake = wake;
        wake.clear();
        if self.wake.is_empty() {
            self.wake = wake;
        }
        while let Some(&Reverse((due, ci))) = self.storm_heap.peek() {
            if due > now {
                break;
            }
            self.storm_heap.pop();
            let ci = ci as usize;
            if self.conns[ci].st == St::Ready {
                self.disconnect(ci);
            }
        }
    }

    // ---------------------------------------------------------------- sending

    fn mark_dirty(&mut self, ci: usize) {
        let c = &mut self.conns[ci];
        if !c.dirty {
            c.dirty = true;
            self.dirty.push(ci as u32);
        }
    }

    fn flush(&mut self, now: u64) {
        let dirty = std::mem::take(&mut self.dirty);
        for &ci in &dirty {
            let ci = ci as usize;
            let c = &mut self.conns[ci];
            c.dirty = false;
            if c.send_out || c.wbuf.is_empty() || c.fd < 0 || c.connect_out {
                continue;
            }
            std::mem::swap(&mut c.wbuf, &mut c.sbuf);
            c.wbuf.clear();
            c.soff = 0;
            c.last_tx = now;
            self.post_send(ci);
        }
        let mut dirty = dirty;
        dirty.clear();
        if self.dirty.is_empty() {
            self.dirty = dirty;
        }
    }

    fn post_send(&mut self, ci: usize) {
        let c = &mut self.conns[ci];
        let rest = &c.sbuf[c.soff..];
        c.send_out = true;
        let e = opcode::Send::new(types::Fd(c.fd), rest.as_ptr(), rest.len() as u32)
            .flags(libc::MSG_NOSIGNAL)
            .build()
            .user_data(ud(ci, OP_SEND));
        self.push(e);
    }

    fn on_send(&mut self, ci: usize, res: i32, _now: u64) {
        let c = &mut self.conns[ci];
        c.send_out = false;
        if res < 0 {
            if c.st == St::Closing {
                self.maybe_closed(ci);
            } else {
                let reason = format!("send: {}", errno_text(-res));
                self.error(ci, reason);
            }
            return;
        }
        self.iv.c.bytes_tx += res as u64;
        c.soff += res as usize;
        if c.soff < c.sbuf.len() {
            self.post_send(ci);
            return;
        }
        c.sbuf.clear();
        c.soff = 0;
        if !c.wbuf.is_empty() {
            self.mark_dirty(ci);
        } else if c.close_after_send {
            self.shutdown(ci);
            return;
        }
        let c = &mut self.conns[ci];
        if let Some(ps) = c.publ.as_mut() {
            if ps.blocked && self.cfg.qos == QoS::AtMostOnce {
                ps.blocked = false;
                self.wake_conn(ci);
            }
        }
    }

    // ---------------------------------------------------------------- closing

    /// Sends DISCONNECT and closes once it is written.
    fn disconnect(&mut self, ci: usize) {
        let proto = self.cfg.protocol;
        let c = &mut self.conns[ci];
        if c.fd < 0 || matches!(c.st, St::Closing | St::Closed) {
            return;
        }
        let _ = Disconnect::new(ReasonCode::SUCCESS).encode(proto, &mut c.wbuf);
        c.close_after_send = true;
        if c.st == St::Ready || c.st == St::Subscribing {
            self.open -= 1;
        }
        c.st = St::Closing;
        self.mark_dirty(ci);
    }

    fn shutdown(&mut self, ci: usize) {
        let c = &mut self.conns[ci];
        // SAFETY: shutdown(2) on our own socket; outstanding RECV/SEND complete with 0/EPIPE.
        unsafe { libc::shutdown(c.fd, libc::SHUT_RDWR) };
        self.maybe_closed(ci);
    }

    fn error(&mut self, ci: usize, reason: impl Into<String>) {
        bump(&mut self.iv.errors, reason);
        self.conns[ci].failed = true;
        self.begin_close(ci);
    }

    fn begin_close(&mut self, ci: usize) {
        let c = &mut self.conns[ci];
        if matches!(c.st, St::Closed) {
            return;
        }
        if matches!(c.st, St::Ready | St::Subscribing) {
            self.open -= 1;
        }
        c.st = St::Closing;
        if c.fd >= 0 {
            // SAFETY: see `shutdown`.
            unsafe { libc::shutdown(c.fd, libc::SHUT_RDWR) };
        }
        self.maybe_closed(ci);
    }

    fn maybe_closed(&mut self, ci: usize) {
        let c = &mut self.conns[ci];
        if c.recv_out || c.send_out || c.connect_out {
            return;
        }
        if c.fd >= 0 {
            // SAFETY: no operation refers to the fd any more.
            unsafe { libc::close(c.fd) };
            c.fd = -1;
        }
        c.st = St::Closed;
        c.wbuf.clear();
        c.sbuf.clear();
        c.rbuf.clear();
        if let Some(ps) = c.publ.as_mut() {
            ps.used.iter_mut().for_each(|w| *w = 0);
            ps.inflight = 0;
            ps.blocked = false;
        }
        if self.cfg.mode == Mode::Storm && !self.finishing && self.running && now_ns() < self.end {
            c.st = St::Queued;
            c.failed = false;
            self.connect_q.push_back(ci as u32);
        }
    }

    // ---------------------------------------------------------------- timers & reports

    fn timers(&mut self, now: u64) {
        if !self.ready_reported {
            let settled = self.conns.iter().all(|c| c.st == St::Ready || c.failed);
            if settled {
                self.ready_reported = true;
                let ok = self.conns.iter().filter(|c| c.st == St::Ready).count();
                let _ = self.tx.send(Report::Ready {
                    ok,
                    failed: self.conns.len() - ok,
                });
                self.send_interval(now);
            }
        }
        if now >= self.next_report {
            self.send_interval(now);
        }
        if now >= self.next_sweep {
            self.next_sweep = now + 1_000_000_000;
            let ka = self.cfg.keepalive as u64 * 1_000_000_000 / 2;
            for ci in 0..self.conns.len() {
                let c = &self.conns[ci];
                match c.st {
                    St::Connecting | St::WaitConnack
                        if now.saturating_sub(c.t_connect) > CONNECT_TIMEOUT_NS =>
                    {
                        self.connect_failed(ci, "timeout waiting for CONNACK".into());
                    }
                    St::Ready if ka > 0 && now.saturating_sub(c.last_tx) > ka => {
                        let proto = self.cfg.protocol;
                        let _ = Packet::PingReq.encode(proto, &mut self.conns[ci].wbuf);
                        self.mark_dirty(ci);
                    }
                    _ => {}
                }
            }
        }
    }

    fn send_interval(&mut self, now: u64) {
        let period = if self.running && now > self.end {
            100_000_000
        } else {
            1_000_000_000
        };
        self.next_report = now + period;
        let mut iv = std::mem::replace(&mut self.iv, Interval::new(self.thread));
        iv.open_conns = self.open;
        let _ = self.tx.send(Report::Interval(Box::new(iv)));
    }

    fn finish(&mut self) {
        self.running = false;
        let proto = self.cfg.protocol;
        // Clear the retained messages this run left behind, then say goodbye.
        for ci in 0..self.conns.len() {
            let c = &mut self.conns[ci];
            if c.st != St::Ready {
                continue;
            }
            if let Some(ps) = c.publ.as_ref() {
                for k in 0..ps.retained_topics.min(ps.seq as u32) {
                    let mut m = Publish::new(format!("{}/{k}", ps.topic), Bytes::new());
                    m.retain = true;
                    let _ = m.encode(proto, &mut c.wbuf);
                }
            }
            self.disconnect(ci);
        }
        for ci in 0..self.conns.len() {
            match self.conns[ci].st {
                St::Queued => self.conns[ci].st = St::Closed,
                St::Connecting | St::WaitConnack | St::Subscribing => self.begin_close(ci),
                _ => {}
            }
        }
        let deadline = now_ns() + 3_000_000_000;
        loop {
            self.flush(now_ns());
            let busy = self.conns.iter().any(|c| c.st != St::Closed);
            if !busy {
                break;
            }
            if now_ns() > deadline {
                for ci in 0..self.conns.len() {
                    if self.conns[ci].st != St::Closed && self.conns[ci].fd >= 0 {
                        self.shutdown(ci);
                    }
                }
                if now_ns() > deadline + 2_000_000_000 {
                    break;
                }
            }
            self.enter(Duration::from_millis(10));
            self.reap();
        }
        if std::env::var_os("SB_DEBUG").is_some() {
            eprintln!(
                "thread {}: {} loop turns, {} completions, {} sends, {} recvs",
                self.thread, self.dbg[0], self.dbg[1], self.dbg[2], self.dbg[3]
            );
        }
        let mut streams = StreamTotals::default();
        for group in &self.tracks {
            for t in group {
                streams.add(t);
            }
        }
        let mut iv = std::mem::replace(&mut self.iv, Interval::new(self.thread));
        iv.open_conns = 0;
        let _ = self.tx.send(Report::Final {
            interval: Box::new(iv),
            streams,
        });
        if self
            .conns
            .iter()
            .any(|c| c.recv_out || c.send_out || c.connect_out)
        {
            // The kernel may still write into these buffers: never free them.
            std::mem::forget(std::mem::take(&mut self.conns));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::in_member_order;

    #[test]
    fn member_order_is_per_publisher_and_ignores_repeats() {
        let mut order = Vec::new();
        assert!(in_member_order(&mut order, 2, 0));
        assert!(
            in_member_order(&mut order, 2, 5),
            "gaps are other members' messages"
        );
        assert!(in_member_order(&mut order, 0, 1), "another publisher");
        assert!(in_member_order(&mut order, 2, 5), "a repeat is a duplicate");
        assert!(
            !in_member_order(&mut order, 2, 4),
            "older than one already seen"
        );
        assert!(in_member_order(&mut order, 2, 6));
    }
}
