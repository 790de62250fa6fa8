//! One shard's thread: an io_uring event loop around the pure [`Shard`].
//!
//! Every socket operation is an io_uring request, submitted in one batch per loop turn:
//! a multishot accept, one receive per connection drawing from the shard's buffer ring (an
//! idle connection holds no buffer), and at most one send per connection carrying everything
//! the shard wrote for it during the turn. Each turn: TLS handshakes deferred from earlier
//! turns → completions → mesh inbound → timers → flush ready connections → mesh outbound →
//! sleep until the next completion, doorbell or tick. TLS (`secure.rs`) and WebSocket
//! (`websocket.rs`) connections are opened and framed around the shard, which sees the same
//! MQTT bytes from every transport.

use ahash::AHashMap;
use bytes::{Bytes, BytesMut};
use crossbeam_channel::Sender;
use io_uring::{opcode, squeue, types, IoUring};
use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod accept;
mod completion;
mod flow;
mod handover;
mod input;
mod linger;
mod secure;
mod websocket;

use super::buffers::{BufferRing, PoolShape};
use super::mesh::MeshPort;
use super::tls::{Parked, TlsConn};
use super::websocket::WsConn;
use crate::codec::parse_frame_header;
use crate::config::Config;
use crate::shard::{ConnectionGauge, Key, Shard, Slab};
use accept::LISTENERS;

const OP_ACCEPT: u64 = 1;
const OP_RECV: u64 = 2;
const OP_SEND: u64 = 3;
const OP_DOORBELL: u64 = 4;
const OP_CANCEL: u64 = 5;
const OP_LINGER: u64 = 6;
const GEN_MASK: u32 = 0x0FFF_FFFF;
/// `IORING_RECVSEND_POLL_FIRST` (linux/io_uring.h; the crate keeps its `sys` module private).
const IORING_RECVSEND_POLL_FIRST: u16 = 1;

/// The most one receive takes: it bounds how much of a client's burst one turn handles, and
/// with it the batches the shard writes back: with 4 KiB a window of 64 QoS 1 PUBLISHes
/// (5.5 KB) arrived as two receives and left as two PUBACK and two PUBLISH segments, and
/// every later turn kept that split. 16 KiB measured 1.08 µs of broker CPU per message in
/// p2p QoS 1 at full speed against 1.43 with 4 KiB (docs/benchmarks.md, "Receive buffer
/// size"). Not larger: it is also the most one connection injects per turn before
/// backpressure can act (64 KiB holds 2,600 tiny PUBLISHes, and a flooding shard's forwards
/// then overtook a local publisher's:
/// `forwards_from_a_flooding_shard_do_not_starve_local_publishers`).
const RECV_BYTES: usize = 16 * 1024;
/// Buffer size of the shard's receive pool where receives take only what they need of a
/// buffer (Linux 6.12+, `buffers.rs`). Large buffers, because a receive that meets the end
/// of one is cut short, and the rest of the client's burst then waits for the next turn
/// (the split above): with 16 KiB buffers every third 5.5 KB receive was cut, and p2p QoS 1
/// at full speed cost 1.39 µs/msg instead of 1.12. The pool fills front to back, so all of
/// it becomes resident once traffic has gone round it.
const RECV_POOL_BUFFER_BYTES: usize = 256 * 1024;
/// That pool's size without `receive_pool_kib`: 8 buffers. 32 (8 MiB) were the default
/// until 1 MiB measured no worse in p2p, fan-in, the flood and 8,000 connections at 10
/// msg/s each (docs/benchmarks.md, "The receive pool's size").
const RECV_POOL_INCREMENTAL_KIB: u32 = 2048;
/// The pool's size on older kernels, where each receive uses up a whole buffer until the
/// shard's turn returns it (only the pages receives filled become resident): 512 buffers,
/// so a turn takes at most 512 receives; the rest fail (ENOBUFS) and are armed again,
/// which with thousands of busy connections wastes most receives.
const RECV_POOL_WHOLE_KIB: u32 = 8192;

/// The receive pool's shapes for `receive_pool_kib` (a power of two, at least 1,024,
/// validated by the config; None for the defaults): buffers of [`RECV_POOL_BUFFER_BYTES`]
/// where the kernel consumes them incrementally, else of [`RECV_BYTES`].
fn receive_pool_shapes(pool_kib: Option<u32>) -> (PoolShape, PoolShape) {
    let shape = |kib: u32, buffer_len: usize| PoolShape {
        entries: (kib as usize * 1024 / buffer_len).clamp(1, 1 << 15) as u16,
        buffer_len,
    };
    (
        shape(
            pool_kib.unwrap_or(RECV_POOL_INCREMENTAL_KIB),
            RECV_POOL_BUFFER_BYTES,
        ),
        shape(pool_kib.unwrap_or(RECV_POOL_WHOLE_KIB), RECV_BYTES),
    )
}
/// Capacity of the shard's decode buffer: a typical receive. Not the pool buffer's size: a
/// message kept for later (queued, in flight) holds a slice of the decode buffer, and with
/// it the whole allocation, so each receive that leaves one behind makes the next one
/// allocate afresh at this capacity (or the receive's length, when larger).
const READ_BUF_BYTES: usize = 8 * 1024;
/// Timers run at this period; also the longest sleep.
const TICK: Duration = Duration::from_millis(100);
/// Batches taken from one peer per turn, so no source starves the others.
const MESH_BATCHES_PER_TURN: usize = 64;
/// TLS handshake receives a shard handles per loop turn; later ones wait for the next turn.
/// A ClientHello costs about 250 µs of CPU (key exchange and signature): a reconnect storm
/// that brought hundreds in one turn kept every other connection of the shard waiting for
/// all of them (tens of ms). Four bound a turn's handshake work to about 1 ms.
const TLS_HANDSHAKES_PER_TURN: u32 = 4;
/// With a batch window, this many completions wake the shard before the window ends.
const BATCH_WAKE_EVENTS: usize = 256;

/// The shard's ring. With a batch window: deferred task work, so that socket events queue
/// without waking the shard, and the kernel's min-wait; a kernel without them gets the
/// plain ring and a warning (window 0).
fn open_ring(shard: usize, batch_window_us: u32) -> io::Result<(IoUring, u32)> {
    if batch_window_us > 0 {
        match IoUring::builder()
            .setup_single_issuer()
            .setup_defer_taskrun()
            .setup_taskrun_flag()
            .setup_cqsize(CQ_ENTRIES)
            .build(4096)
        {
            Ok(ring) if ring.params().is_feature_min_timeout() => {
                return Ok((ring, batch_window_us))
            }
            Ok(_) => tracing::warn!(
                shard,
                "batch_window_us ignored: the kernel has no io_uring min-wait (6.12+)"
            ),
            Err(e) => {
                tracing::warn!(shard, error = %e, "batch_window_us ignored: no deferred task work (kernel 6.1+)")
            }
        }
    }
    let ring = IoUring::builder()
        .setup_single_issuer()
        .setup_coop_taskrun()
        .setup_cqsize(CQ_ENTRIES)
        .build(4096)
        .or_else(|_| IoUring::new(4096))?;
    Ok((ring, 0))
}
/// Completion queue entries (the submission queue has 4,096), with or without a batch
/// window: at 8,192 one shard's turn with thousands of busy connections overflowed it.
const CQ_ENTRIES: u32 = 32 * 1024;
/// How long shutdown waits for clients to be flushed.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

fn user_data(op: u64, index: u32, generation: u32) -> u64 {
    (op << 60) | (((generation & GEN_MASK) as u64) << 32) | index as u64
}

fn split_user_data(ud: u64) -> (u64, u32, u32) {
    (ud >> 60, ud as u32, ((ud >> 32) as u32) & GEN_MASK)
}

/// Runtime-side state of one connection: 16 bytes, one per connection.
#[derive(Debug, Clone, Copy)]
struct IoConn {
    fd: RawFd,
    key: Key,
    flags: IoFlags,
}

/// The yes/no state of a connection's socket, packed in one byte.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct IoFlags(u8);

impl IoFlags {
    /// A receive is pending.
    const RECV_ARMED: IoFlags = IoFlags(1);
    /// A send is pending.
    const SEND_INFLIGHT: IoFlags = IoFlags(1 << 1);
    /// The pending receive was asked to stop (the connection moves to another shard).
    const CANCEL_SENT: IoFlags = IoFlags(1 << 2);
    /// The last receive left the socket empty: the next one arms its poll first instead of
    /// trying a receive that would fail.
    const DRAINED: IoFlags = IoFlags(1 << 3);
    /// In the shard's `paused` list (at most once).
    const PAUSED: IoFlags = IoFlags(1 << 4);
    /// Its bytes are TLS records: the state is in `EventLoop::tls`.
    const TLS: IoFlags = IoFlags(1 << 5);
    /// Its bytes are WebSocket frames: the state is in `EventLoop::ws`.
    const WS: IoFlags = IoFlags(1 << 6);
    /// Closing, with a deadline in `EventLoop::closing` (`linger.rs`).
    const CLOSE_WATCHED: IoFlags = IoFlags(1 << 7);

    fn has(self, flag: IoFlags) -> bool {
        self.0 & flag.0 != 0
    }

    fn set(&mut self, flag: IoFlags, on: bool) {
        if on {
            self.0 |= flag.0;
        } else {
            self.0 &= !flag.0;
        }
    }
}

/// Everything a shard's thread needs to start.
pub(super) struct LoopStart {
    pub(super) id: usize,
    pub(super) shards: usize,
    pub(super) config: Config,
    /// Plain-TCP listener (none when `listen_plain = false`).
    pub(super) listener_fd: Option<RawFd>,
    /// TLS listener and its rustls configuration (with `[tls]`).
    pub(super) tls_listener: Option<(RawFd, Arc<rustls::ServerConfig>)>,
    /// WebSocket listener (with `[websocket]`).
    pub(super) ws_listener_fd: Option<RawFd>,
    /// WebSocket-over-TLS listener (with `websocket.tls_port`).
    pub(super) wss_listener_fd: Option<RawFd>,
    /// TLS and WebSocket state of connections moving between shards.
    pub(super) parked: Parked,
    pub(super) port: MeshPort,
    pub(super) ready: Sender<Result<usize, String>>,
    pub(super) epoch: Instant,
    pub(super) instance: u64,
    pub(super) gauge: ConnectionGauge,
}

struct EventLoop {
    ring: IoUring,
    bufs: BufferRing,
    shard: Shard,
    port: MeshPort,
    io: Vec<Option<IoConn>>,
    sends: Slab<(Key, Bytes)>,
    read_buf: BytesMut,
    /// Listening sockets: [plain, TLS, WebSocket, WebSocket over TLS].
    listeners: [Option<RawFd>; LISTENERS],
    tls_config: Option<Arc<rustls::ServerConfig>>,
    /// `tls.use_identity_as_username`.
    tls_identity: bool,
    /// TLS state of this shard's TLS connections (boxed: a map slot stays small).
    tls: AHashMap<Key, Box<TlsConn>>,
    /// Scratch in which one TLS receive's records are opened in place.
    tls_scratch: Vec<u8>,
    /// Handshake receives handled this turn (see [`TLS_HANDSHAKES_PER_TURN`]).
    tls_handshakes: u32,
    /// Handshake receives over this turn's budget, with their bytes, oldest first: the
    /// connection's next receive is armed only once its bytes were handled.
    tls_deferred: std::collections::VecDeque<(IoConn, Vec<u8>)>,
    /// WebSocket state of this shard's WebSocket connections.
    ws: AHashMap<Key, Box<WsConn>>,
    /// Plaintext of one `wss://` receive: WebSocket frames, unframed into `read_buf`.
    wss_plain: BytesMut,
    /// Largest WebSocket frame accepted from a client.
    max_ws_frame: u64,
    parked: Parked,
    doorbell_buf: Box<u64>,
    epoch: Instant,
    max_outgoing: usize,
    max_packet: usize,
    /// `Config::batch_window_us`, or 0 where the kernel lacks min-wait.
    batch_window_us: u32,
    congested: bool,
    pressured: bool,
    /// Listeners whose accept failed (e.g. EMFILE), one bit each: re-armed at the next tick
    /// instead of spinning.
    accept_backoff: u8,
    /// Connections not read while the shard is under pressure, in the order they stopped.
    paused: Vec<Key>,
    /// Connections released from `paused`, read in order next turn until the shard is
    /// under pressure again (see `flush_connections`).
    released: Vec<Key>,
    /// Whether the next turn with released connections reads them before the mesh's
    /// forwards (it alternates, so neither source starves the other).
    locals_first: bool,
    service: Vec<Key>,
    /// Sockets drained after the broker closed them (`linger.rs`).
    lingering: Slab<linger::Lingering>,
    /// Where their discarded input goes.
    discard: Box<[u8]>,
    /// Connections being closed, with the loop time (ms) when they are shut down if their
    /// output has not gone out by then (`linger.rs`).
    closing: Vec<(Key, u64)>,
    /// `limits.close_timeout_secs` in ms.
    close_timeout_ms: u64,
    /// Scratch list of connections adopted from other shards.
    adopted: Vec<(Key, u64)>,
}

/// Runs one shard until shutdown. Errors only at setup.
pub(super) fn run_loop(start: LoopStart) {
    let LoopStart {
        id,
        shards,
        config,
        listener_fd,
        tls_listener,
        ws_listener_fd,
        wss_listener_fd,
        parked,
        port,
        ready,
        epoch,
        instance,
        gauge,
    } = start;
    let shard = Shard::new(id, shards, config, instance, gauge);
    let (tls_fd, tls_config) = tls_listener.unzip();
    let listeners = [listener_fd, tls_fd, ws_listener_fd, wss_listener_fd];
    let mut ev = match EventLoop::new(shard, listeners, tls_config, parked, port, epoch) {
        Ok(ev) => ev,
        Err(e) => {
            let _ = ready.send(Err(format!("shard {id}: io_uring setup failed: {e}")));
            return;
        }
    };
    let _ = ready.send(Ok(id));
    ev.run();
}

impl EventLoop {
    fn new(
        shard: Shard,
        listeners: [Option<RawFd>; LISTENERS],
        tls_config: Option<Arc<rustls::ServerConfig>>,
        parked: Parked,
        port: MeshPort,
        epoch: Instant,
    ) -> io::Result<EventLoop> {
        let config = shard.config();
        let (ring, batch_window_us) = open_ring(shard.id(), config.batch_window_us)?;
        let (incremental, whole) = receive_pool_shapes(config.receive_pool_kib);
        let bufs = BufferRing::register(&ring, 0, incremental, whole)?;
        let max_outgoing = config.limits.max_outgoing_bytes;
        let max_packet = config.limits.max_packet_bytes as usize;
        let close_timeout_ms = u64::from(config.limits.close_timeout_secs) * 1000;
        let tls_identity = config
            .tls
            .as_ref()
            .is_some_and(|t| t.use_identity_as_username);
        let mut ev = EventLoop {
            ring,
            bufs,
            shard,
            port,
            io: Vec::new(),
            sends: Slab::default(),
            // Holds one receive. Decoded messages keep slices of it, so while any is alive the
            // next receive needs a fresh one: keep it small (a 64 KiB one cost a
            // `malloc_consolidate` on every free under glibc, and pins more memory).
            read_buf: BytesMut::with_capacity(READ_BUF_BYTES),
            listeners,
            tls_identity,
            tls_config,
            tls: AHashMap::new(),
            tls_scratch: Vec::new(),
            tls_handshakes: 0,
            tls_deferred: Default::default(),
            ws: AHashMap::new(),
            wss_plain: BytesMut::new(),
            // A frame may carry several packets; its bytes stream through, never held whole.
            max_ws_frame: (max_packet as u64).saturating_mul(4).max(1 << 20),
            parked,
            doorbell_buf: Box::new(0),
            epoch,
            max_outgoing,
            max_packet,
            batch_window_us,
            congested: false,
            pressured: false,
            accept_backoff: 0,
            paused: Vec::new(),
            locals_first: false,
            released: Vec::new(),
            service: Vec::new(),
            adopted: Vec::new(),
            lingering: Slab::default(),
            discard: vec![0; linger::DISCARD_BYTES].into_boxed_slice(),
            closing: Vec::new(),
            close_timeout_ms,
        };
        for listener in 0..LISTENERS as u32 {
            ev.arm_accept(listener);
        }
        ev.arm_doorbell();
        Ok(ev)
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn push(&mut self, sqe: squeue::Entry) {
        // SAFETY: every buffer named by an entry outlives its completion: receive buffers
        // belong to the registered ring, send data is held in `sends` until its completion,
        // and the doorbell and discard buffers live as long as the loop.
        unsafe {
            while self.ring.submission().push(&sqe).is_err() {
                let _ = self.ring.submit();
            }
        }
    }

    fn arm_doorbell(&mut self) {
        let fd = self.port.doorbells[self.port.me].fd();
        let sqe = opcode::Read::new(
            types::Fd(fd),
            &mut *self.doorbell_buf as *mut u64 as *mut u8,
            8,
        )
        .build()
        .user_data(user_data(OP_DOORBELL, 0, 0));
        self.push(sqe);
    }

    fn io_of(&self, index: u32, generation: u32) -> Option<IoConn> {
        self.io
            .get(index as usize)
            .copied()
            .flatten()
            .filter(|c| c.key.generation() & GEN_MASK == generation)
    }

    fn io_mut(&mut self, key: Key) -> Option<&mut IoConn> {
        self.io
            .get_mut(key.index() as usize)
            .and_then(|c| c.as_mut())
            .filter(|c| c.key == key)
    }

    fn arm_recv(&mut self, key: Key) {
        let group = self.bufs.group();
        let Some(c) = self.io_mut(key) else {
            return;
        };
        if c.flags.has(IoFlags::RECV_ARMED) {
            return;
        }
        c.flags.set(IoFlags::RECV_ARMED, true);
        let fd = c.fd;
        let poll_first = if c.flags.has(IoFlags::DRAINED) {
            IORING_RECVSEND_POLL_FIRST
        } else {
            0
        };
        let sqe = opcode::Recv::new(types::Fd(fd), std::ptr::null_mut(), RECV_BYTES as u32)
            .ioprio(poll_first)
            .buf_group(group)
            .build()
            .flags(squeue::Flags::BUFFER_SELECT)
            .user_data(user_data(OP_RECV, key.index(), key.generation()));
        self.push(sqe);
    }

    fn submit_send(&mut self, key: Key, data: Bytes) {
        let Some(c) = self.io_mut(key) else {
            return;
        };
        c.flags.set(IoFlags::SEND_INFLIGHT, true);
        let fd = c.fd;
        let (ptr, len) = (data.as_ptr(), data.len().min(u32::MAX as usize) as u32);
        let sid = self.sends.insert((key, data));
        let sqe = opcode::Send::new(types::Fd(fd), ptr, len)
            .flags(libc::MSG_NOSIGNAL)
            .build()
            .user_data(user_data(OP_SEND, sid.index(), sid.generation()));
        self.push(sqe);
    }

    fn run(&mut self) {
        let mut completions: Vec<(u64, i32, u32)> = Vec::with_capacity(1024);
        let mut ready = Vec::new();
        let mut last_tick = Instant::now();
        let mut shutdown_deadline: Option<Instant> = None;
        loop {
            self.tls_handshakes = 0;
            self.resume_deferred_tls();
            completions.clear();
            completions.extend(
                self.ring
                    .completion()
                    .map(|c| (c.user_data(), c.result(), c.flags())),
            );
            for &(ud, res, flags) in &completions {
                self.on_completion(ud, res, flags);
            }
            self.drain_mesh_inbound();
            if last_tick.elapsed() >= TICK {
                last_tick = Instant::now();
                let now = self.now_ms();
                self.shard.tick(now);
                self.listen_to_paused();
                self.expire_lingering(now);
                self.expire_closing(now);
                let backoff = std::mem::take(&mut self.accept_backoff);
                for listener in 0..LISTENERS as u32 {
                    if backoff & (1 << listener) != 0 {
                        self.arm_accept(listener);
                    }
                }
            }
            let me = self.port.me;
            if shutdown_deadline.is_none()
                && self.port.doorbells[me]
                    .shutdown
                    .load(std::sync::atomic::Ordering::SeqCst)
            {
                self.stop_listening();
                self.shard.shutdown();
                shutdown_deadline = Some(Instant::now() + SHUTDOWN_GRACE);
            }
            self.flush_connections(&mut ready);
            self.flush_mesh();
            if let Some(deadline) = shutdown_deadline {
                if self.shard.connection_count() == 0 || Instant::now() > deadline {
                    break;
                }
            }
            self.wait();
        }
        self.close_all();
    }

    fn wait(&mut self) {
        let me = self.port.me;
        let doorbell = self.port.doorbells[me].clone();
        doorbell.prepare_sleep();
        let busy = (!self.pressured && (self.port.has_inbound() || self.shard.holds_mesh()))
            || self.port.has_control_inbound()
            || self.port.control_sendable()
            || (self.congested && !self.port.blocked())
            || !self.service.is_empty()
            || !self.released.is_empty()
            || !self.tls_deferred.is_empty()
            || !self.ring.completion().is_empty();
        let result = if busy {
            self.ring.submit()
        } else {
            let ts = types::Timespec::new().nsec(TICK.as_nanos() as u32);
            let args = types::SubmitArgs::new().timespec(&ts);
            if self.batch_window_us > 0 {
                // Events before the window ends do not wake us (unless this many arrive);
                // after it, the first one does.
                let args = args.min_wait_usec(self.batch_window_us);
                self.ring
                    .submitter()
                    .submit_with_args(BATCH_WAKE_EVENTS, &args)
            } else {
                self.ring.submitter().submit_with_args(1, &args)
            }
        };
        doorbell.awake();
        if let Err(e) = result {
            match e.raw_os_error() {
                Some(libc::ETIME) | Some(libc::EINTR) | Some(libc::EBUSY) => {}
                _ => tracing::warn!(error = %e, "io_uring_enter failed"),
            }
        }
    }

    fn drop_connection(&mut self, key: Key) {
        self.close_fd(key);
        let now = self.now_ms();
        self.shard.on_closed(key, now);
    }

    fn close_fd(&mut self, key: Key) {
        if let Some(c) = self.detach_io(key) {
            // SAFETY: we own the fd; shutdown completes any pending receive or send.
            unsafe {
                libc::shutdown(c.fd, libc::SHUT_RDWR);
                libc::close(c.fd);
            }
        }
    }

    /// Forgets `key`'s socket and its TLS and WebSocket state; returns the socket, which
    /// the caller now owns (closes, or drains first: `linger.rs`).
    fn detach_io(&mut self, key: Key) -> Option<IoConn> {
        let index = key.index() as usize;
        let c = self
            .io
            .get(index)
            .copied()
            .flatten()
            .filter(|c| c.key == key)?;
        if c.flags.has(IoFlags::TLS) {
            self.tls.remove(&key);
        }
        if c.flags.has(IoFlags::WS) {
            self.ws.remove(&key);
        }
        self.io[index] = None;
        Some(c)
    }

    fn close_all(&mut self) {
        tracing::info!(shard = self.port.me, metrics = ?self.shard.metrics(), "shard stopped");
        let keys: Vec<Key> = self.io.iter().flatten().map(|c| c.key).collect();
        for key in keys {
            self.drop_connection(key);
        }
        self.close_lingering();
        self.stop_listening();
        let _ = self.ring.submit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receive_pool_shapes_follow_the_configured_size() {
        let (incremental, whole) = receive_pool_shapes(None);
        assert_eq!(
            (incremental.entries, incremental.buffer_len),
            (8, 256 * 1024)
        );
        assert_eq!((whole.entries, whole.buffer_len), (512, 16 * 1024));
        let (incremental, whole) = receive_pool_shapes(Some(8192));
        assert_eq!((incremental.entries, whole.entries), (32, 512));
        let (incremental, whole) = receive_pool_shapes(Some(1024));
        assert_eq!((incremental.entries, whole.entries), (4, 64));
        let (incremental, whole) = receive_pool_shapes(Some(65_536));
        assert_eq!((incremental.entries, whole.entries), (256, 4096));
    }
}
