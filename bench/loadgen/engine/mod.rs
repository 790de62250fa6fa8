//! The client engine: one io_uring per thread driving many MQTT connections.
//!
//! * one RECV outstanding per socket, into that socket's own buffer (the spare capacity of a
//!   `BytesMut`, decoded in place by the crate's codec);
//! * everything a socket has to send during one loop turn is appended to its write buffer and
//!   goes out as one SEND when the previous one completed (coalescing);
//! * one `io_uring_enter` per loop turn submits all SQEs and waits for completions.
//!
//! This file holds the worker, its loop and the ring plumbing; the connection's life is
//! split by phase: [`connect`] (socket to SUBACK), [`publish`] (pacing and the in-flight
//! window), [`receive`] (decoding, loss/duplicate/order checks, latency), [`send`] (one
//! SEND per socket in flight, closing) and [`report`] (timers and statistics).

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
use super::track::{Seen, SeqTracker, StreamTotals};

mod connect;
mod publish;
mod receive;
mod report;
mod send;

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
    /// User name and password of every CONNECT.
    pub username: Option<String>,
    /// Password (with `username`).
    pub password: Option<String>,
    /// Receive buffer per socket.
    pub rbuf: usize,
    /// Engine mode.
    pub mode: Mode,
    /// Reconnect storm: how long a client stays connected, ms.
    pub hold_ms: u64,
    /// Batch completions: once waiting, wait up to this long for several completions
    /// before handling the first (0: handle each as soon as it arrives).
    pub batch_us: u32,
    /// Publishers' due times are rounded up to multiples of this (0: exact).
    pub tick_ns: u64,
    /// TLS client settings (`--tls-ca`); None: plain TCP.
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    /// MQTT over WebSocket (`--ws`).
    pub ws: bool,
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
    PubDone {
        /// When (CLOCK_MONOTONIC ns): the end of its publishing, for the measured rate.
        at_ns: u64,
    },
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
    /// TLS state (`--tls-ca`): receives land in `tbuf` as records and are opened into
    /// `rbuf`; a flush seals `wbuf` into `sbuf`.
    tls: Option<Box<rustls::ClientConnection>>,
    tbuf: BytesMut,
    /// WebSocket state (`--ws`): receives land in `tbuf` as frames and are unwrapped into
    /// `rbuf`; a flush frames `wbuf` into `sbuf`.
    ws: Option<Box<crate::loadgen::ws::WsClient>>,
}

/// How much each loop turn gathered: tells whether completions are batched.
#[derive(Debug, Default, Clone, Copy)]
struct LoopCounts {
    turns: u64,
    completions: u64,
    sends: u64,
    recvs: u64,
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
    /// Loop turns, completions, send and receive completions (printed with SB_DEBUG).
    loop_counts: LoopCounts,
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
        // Deferred task work only to batch completions with the kernel's min-wait: each wait
        // on such a ring runs at most 20 of the receives that are ready (more only when it
        // waits for more), so at a constant rate, where a wait asks for one completion,
        // 8,000 connections' receives fell behind by seconds (p2p 4,000 pairs at 10 msg/s:
        // 5k of 40k msg/s delivered). Plain rings run all of them at each kernel entry.
        let builder = || {
            let mut b = IoUring::builder();
            b.setup_single_issuer().setup_cqsize(cq);
            b
        };
        let ring = if cfg.batch_us > 0 {
            builder().setup_defer_taskrun().build(entries)
        } else {
            builder().setup_coop_taskrun().build(entries)
        }
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
                tls: None,
                tbuf: BytesMut::new(),
                ws: None,
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
            loop_counts: LoopCounts::default(),
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
                self.next_report = self.next_report.min(end);
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
                            let p = Pacer::new(t0, rate, ps.phase).with_tick(self.cfg.tick_ns);
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
        self.loop_counts.turns += 1;
        self.loop_counts.completions += cqes.len() as u64;
        let now = now_ns();
        for &(u, res) in &cqes {
            let ci = (u >> 8) as usize;
            match u & 0xFF {
                OP_RECV => {
                    self.loop_counts.recvs += 1;
                    self.on_recv(ci, res, now)
                }
                OP_SEND => {
                    self.loop_counts.sends += 1;
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
}
