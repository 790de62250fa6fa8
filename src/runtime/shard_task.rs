//! One shard's executor: the acceptor, the connection tasks, the mesh receivers and
//! flusher, and the ticker that runs timers and listens to the control plane.

use crossbeam_channel::{Receiver, Sender, TryRecvError};
use glommio::channels::channel_mesh::{Full, MeshBuilder, Senders};
use glommio::net::TcpListener;
use glommio::{GlommioError, ResourceType};
use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::os::fd::{FromRawFd, RawFd};
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use super::connection::{serve, ReadBuffer};
use crate::config::Config;
use crate::shard::{Key, MeshMsg, Metrics, Shard};

/// What travels between shards: a batch of messages.
pub(super) type Batch = Vec<MeshMsg>;

/// Control-plane requests from the main thread.
#[derive(Debug)]
pub enum Control {
    /// Stop accepting, disconnect everyone (0x8B), flush, exit.
    Shutdown,
    /// Send this shard's counters back.
    Stats(Sender<(usize, Metrics)>),
}

/// What a shard's tasks share (single-threaded: `Rc`/`RefCell`, never across cores).
pub(super) struct ShardContext {
    pub(super) shard: RefCell<Shard>,
    pub(super) read_buf: RefCell<ReadBuffer>,
    epoch: Instant,
    flush_waker: RefCell<Option<Waker>>,
    flush_requested: Cell<bool>,
    paused: RefCell<Vec<Key>>,
}

impl ShardContext {
    /// Milliseconds on the clock shared by all shards.
    pub(super) fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Wakes the mesh flusher when the shard has something for its peers.
    fn after_shard_work(&self) {
        if self.shard.borrow().outbox_len() > 0 && !self.flush_requested.replace(true) {
            if let Some(w) = self.flush_waker.borrow().as_ref() {
                w.wake_by_ref();
            }
        }
    }

    /// New bytes sit in the read buffer: decode them (in place when the connection has no
    /// partial packet), keep only an incomplete tail in the connection.
    pub(super) fn process_read(&self, key: Key) {
        let now = self.now_ms();
        {
            let mut shard = self.shard.borrow_mut();
            let mut rb = self.read_buf.borrow_mut();
            let rb = &mut rb.buf;
            let Some(conn) = shard.conn_mut(key) else {
                rb.clear();
                return;
            };
            if conn.input.is_empty() {
                shard.on_input(key, rb, now);
                if !rb.is_empty() {
                    if let Some(conn) = shard.conn_mut(key) {
                        conn.input.extend_from_slice(rb);
                    }
                    rb.clear();
                }
            } else {
                conn.input.extend_from_slice(rb);
                rb.clear();
                let mut input = std::mem::take(&mut conn.input);
                shard.on_input(key, &mut input, now);
                if let Some(conn) = shard.conn_mut(key) {
                    conn.input = input;
                }
            }
        }
        self.after_shard_work();
    }

    /// Decodes input that waited while the connection was blocked.
    pub(super) fn process_buffered(&self, key: Key) {
        let now = self.now_ms();
        {
            let mut shard = self.shard.borrow_mut();
            let Some(conn) = shard.conn_mut(key) else {
                return;
            };
            let mut input = std::mem::take(&mut conn.input);
            shard.on_input(key, &mut input, now);
            if let Some(conn) = shard.conn_mut(key) {
                conn.input = input;
            }
        }
        self.after_shard_work();
    }

    /// The connection's task ended.
    pub(super) fn closed(&self, key: Key) {
        let now = self.now_ms();
        self.shard.borrow_mut().on_closed(key, now);
        self.after_shard_work();
    }

    /// Remembers a connection that stopped reading because the mesh is congested.
    pub(super) fn pause(&self, key: Key) {
        let mut paused = self.paused.borrow_mut();
        if paused.is_empty() {
            self.shard.borrow_mut().note_backpressure();
        }
        paused.push(key);
    }

    fn resume_paused(&self) {
        let paused = std::mem::take(&mut *self.paused.borrow_mut());
        let mut shard = self.shard.borrow_mut();
        for key in paused {
            if let Some(conn) = shard.conn_mut(key) {
                conn.wake();
            }
        }
    }
}

/// Everything a shard's thread needs to start.
pub(super) struct ShardStart {
    pub(super) id: usize,
    pub(super) shards: usize,
    pub(super) config: Config,
    pub(super) listener_fd: RawFd,
    pub(super) mesh: Option<MeshBuilder<Batch, Full>>,
    pub(super) control: Receiver<Control>,
    pub(super) ready: Sender<usize>,
    pub(super) epoch: Instant,
    pub(super) instance: u64,
}

/// The shard's main future: runs until shutdown.
pub(super) async fn run_shard(start: ShardStart) {
    let ShardStart {
        id,
        shards,
        config,
        listener_fd,
        mesh,
        control,
        ready,
        epoch,
        instance,
    } = start;
    let ctx = Rc::new(ShardContext {
        shard: RefCell::new(Shard::new(id, shards, config, instance)),
        read_buf: RefCell::new(ReadBuffer::default()),
        epoch,
        flush_waker: RefCell::new(None),
        flush_requested: Cell::new(false),
        paused: RefCell::new(Vec::new()),
    });
    if let Some(mesh) = mesh {
        let (senders, mut receivers) = mesh.join().await.expect("joining the shard mesh");
        for (peer, receiver) in receivers.streams() {
            let ctx = ctx.clone();
            glommio::spawn_local(async move {
                while let Some(batch) = receiver.recv().await {
                    let now = ctx.now_ms();
                    ctx.shard.borrow_mut().on_mesh(peer, batch, now);
                    ctx.after_shard_work();
                }
            })
            .detach();
        }
        glommio::spawn_local(flusher(ctx.clone(), senders)).detach();
    }
    // SAFETY: the main thread created this listening socket for this shard only and
    // handed over its ownership.
    let listener = unsafe { TcpListener::from_raw_fd(listener_fd) };
    let acceptor = {
        let ctx = ctx.clone();
        glommio::spawn_local(async move {
            loop {
                match listener.accept().await {
                    Ok(stream) => {
                        let key = {
                            let now = ctx.now_ms();
                            let mut shard = ctx.shard.borrow_mut();
                            if shard.is_shutting_down() {
                                break;
                            }
                            shard.accept(now)
                        };
                        glommio::spawn_local(serve(stream, ctx.clone(), key)).detach();
                    }
                    Err(e) => {
                        tracing::warn!(shard = id, error = %e, "accept failed");
                        glommio::timer::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
        })
    };
    let _ = ready.send(id);
    loop {
        glommio::timer::sleep(Duration::from_millis(100)).await;
        let now = ctx.now_ms();
        ctx.shard.borrow_mut().tick(now);
        ctx.after_shard_work();
        match control.try_recv() {
            Ok(Control::Shutdown) | Err(TryRecvError::Disconnected) => break,
            Ok(Control::Stats(reply)) => {
                let _ = reply.send((id, ctx.shard.borrow().metrics()));
            }
            Err(TryRecvError::Empty) => {}
        }
    }
    drop(acceptor);
    ctx.shard.borrow_mut().shutdown();
    ctx.after_shard_work();
    for _ in 0..40 {
        if ctx.shard.borrow().connection_count() == 0 {
            break;
        }
        glommio::timer::sleep(Duration::from_millis(50)).await;
    }
}

/// Sends each peer's outbox as one batch per turn. Only this task awaits a full channel;
/// receive paths never do (they append to the outbox), so shards cannot deadlock.
async fn flusher(ctx: Rc<ShardContext>, senders: Senders<Batch>) {
    loop {
        poll_fn(|cx| {
            if ctx.flush_requested.get() {
                return Poll::Ready(());
            }
            *ctx.flush_waker.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        })
        .await;
        // Let the other ready tasks of this turn add to the batch first.
        glommio::executor().yield_task_queue_now().await;
        ctx.flush_requested.set(false);
        for peer in 0..senders.nr_consumers() {
            if peer == senders.peer_id() {
                continue;
            }
            let batch = ctx.shard.borrow_mut().take_outbox(peer);
            if batch.is_empty() {
                continue;
            }
            match senders.try_send_to(peer, batch) {
                Ok(()) => {}
                Err(GlommioError::WouldBlock(ResourceType::Channel(batch))) => {
                    if senders.send_to(peer, batch).await.is_err() {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
        ctx.resume_paused();
    }
}
