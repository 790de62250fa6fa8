//! The cross-shard mesh: two bounded channels per ordered pair of shards, carrying batches
//! — the data lane (forwards, which a shard under delivery pressure leaves unread so that
//! its peers slow their publishers) and the control lane (takeovers, interest changes and
//! their acknowledgements, retained queries: read every turn, whatever the pressure, so a
//! shard with a subscriber behind does not hold up the SUBACKs and CONNACKs of the others)
//! — and one doorbell (an eventfd) per shard that a sender rings only when the receiver is
//! about to sleep: a busy shard is never interrupted by a syscall.

use crossbeam_channel::{Receiver, Sender, TrySendError};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use crate::shard::MeshMsg;

/// What travels between shards in one channel slot.
pub type Batch = Vec<MeshMsg>;

/// Wakes a sleeping shard.
#[derive(Debug)]
pub struct Doorbell {
    fd: RawFd,
    sleeping: AtomicBool,
    /// Set by the main thread to stop the shard.
    pub shutdown: AtomicBool,
}

impl Doorbell {
    /// A doorbell backed by a fresh eventfd.
    pub fn new() -> std::io::Result<Arc<Doorbell>> {
        // SAFETY: plain syscall.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Arc::new(Doorbell {
            fd,
            sleeping: AtomicBool::new(false),
            shutdown: AtomicBool::new(false),
        }))
    }

    /// The eventfd the owning shard keeps a read armed on.
    pub fn fd(&self) -> RawFd {
        self.fd
    }

    /// Rings if the owner sleeps (or always, with `force`).
    pub fn ring(&self, force: bool) {
        if force
            || (self.sleeping.load(Ordering::SeqCst) && self.sleeping.swap(false, Ordering::SeqCst))
        {
            let one: u64 = 1;
            // SAFETY: writes 8 bytes from a local to our eventfd.
            unsafe { libc::write(self.fd, &one as *const u64 as *const libc::c_void, 8) };
        }
    }

    /// Owner: about to sleep. Must re-check its inbound channels after this.
    pub fn prepare_sleep(&self) {
        self.sleeping.store(true, Ordering::SeqCst);
    }

    /// Owner: awake again.
    pub fn awake(&self) {
        self.sleeping.store(false, Ordering::SeqCst);
    }
}

impl Drop for Doorbell {
    fn drop(&mut self) {
        // SAFETY: we own the fd.
        unsafe { libc::close(self.fd) };
    }
}

/// What both ends of one channel share: how many messages it holds, and whether the sender
/// stopped reading its clients because of it (then the receiver wakes it once it drained).
#[derive(Debug, Default)]
struct Lane {
    queued_messages: AtomicUsize,
    sender_waiting: AtomicBool,
}

/// The sending end of the channel to one peer.
struct Outlet {
    tx: Sender<Batch>,
    lane: Arc<Lane>,
}

/// The receiving end of the channel from one peer.
struct Inlet {
    rx: Receiver<Batch>,
    lane: Arc<Lane>,
}

/// One shard's ends of the mesh.
pub struct MeshPort {
    /// This shard.
    pub me: usize,
    /// Every shard's doorbell.
    pub doorbells: Vec<Arc<Doorbell>>,
    /// Channel to each peer (None for itself).
    outlets: Vec<Option<Outlet>>,
    /// Channel from each peer (None for itself).
    inlets: Vec<Option<Inlet>>,
    /// Batches that found their channel full, oldest first, per peer.
    backlog: Vec<std::collections::VecDeque<Batch>>,
    /// Control lane to each peer (its sending end) and from each peer (its receiving end):
    /// bounded channels, each with a flag the sender raises when batches wait behind a full
    /// one (the receiver then rings it once it took one). A full one never counts as
    /// congestion: control messages are few, and the receiver takes them every turn.
    control_out: Vec<Option<(Sender<Batch>, Arc<AtomicBool>)>>,
    control_in: Vec<Option<(Receiver<Batch>, Arc<AtomicBool>)>>,
    /// Control batches that found their channel full, oldest first, per peer.
    control_backlog: Vec<std::collections::VecDeque<Batch>>,
    /// Messages a channel may hold before its sender counts as congested: bounds how long a
    /// forward waits in the mesh (latency), whatever the size of the batches.
    max_queued_messages: usize,
}

/// Builds the full mesh for `shards` shards: channels (both lanes) of `capacity` batches,
/// the data lane congested above `max_queued_messages` messages.
pub fn build_mesh(
    shards: usize,
    capacity: usize,
    max_queued_messages: usize,
) -> std::io::Result<Vec<MeshPort>> {
    let doorbells: Vec<_> = (0..shards)
        .map(|_| Doorbell::new())
        .collect::<Result<_, _>>()?;
    let mut ports: Vec<MeshPort> = (0..shards)
        .map(|me| MeshPort {
            me,
            doorbells: doorbells.clone(),
            outlets: (0..shards).map(|_| None).collect(),
            inlets: (0..shards).map(|_| None).collect(),
            backlog: (0..shards).map(|_| Default::default()).collect(),
            control_out: (0..shards).map(|_| None).collect(),
            control_in: (0..shards).map(|_| None).collect(),
            control_backlog: (0..shards).map(|_| Default::default()).collect(),
            max_queued_messages,
        })
        .collect();
    for from in 0..shards {
        for to in 0..shards {
            if from != to {
                let (tx, rx) = crossbeam_channel::bounded(capacity);
                let lane = Arc::new(Lane::default());
                ports[from].outlets[to] = Some(Outlet {
                    tx,
                    lane: lane.clone(),
                });
                ports[to].inlets[from] = Some(Inlet { rx, lane });
                let (tx, rx) = crossbeam_channel::bounded(capacity);
                let waiting = Arc::new(AtomicBool::new(false));
                ports[from].control_out[to] = Some((tx, waiting.clone()));
                ports[to].control_in[from] = Some((rx, waiting));
            }
        }
    }
    Ok(ports)
}

impl MeshPort {
    /// How many shards the mesh connects (peers are `0..shards()`, this one included).
    pub fn shards(&self) -> usize {
        self.backlog.len()
    }

    /// Sends a batch (or queues it behind earlier ones when the channel is full) and rings
    /// the peer if it sleeps.
    pub fn send(&mut self, to: usize, batch: Batch) {
        self.backlog[to].push_back(batch);
        self.flush_peer(to);
    }

    fn flush_peer(&mut self, to: usize) {
        let Some(outlet) = &self.outlets[to] else {
            return;
        };
        let queued = &outlet.lane.queued_messages;
        let mut sent = false;
        while let Some(batch) = self.backlog[to].pop_front() {
            let messages = batch.len();
            // Counted before the send, so the receiver never subtracts a batch not added yet.
            queued.fetch_add(messages, Ordering::SeqCst);
            match outlet.tx.try_send(batch) {
                Ok(()) => sent = true,
                Err(TrySendError::Full(batch)) => {
                    queued.fetch_sub(messages, Ordering::SeqCst);
                    self.backlog[to].push_front(batch);
                    break;
                }
                Err(TrySendError::Disconnected(_)) => {
                    queued.fetch_sub(messages, Ordering::SeqCst);
                    self.backlog[to].clear();
                    break;
                }
            }
        }
        if sent {
            self.doorbells[to].ring(false);
        }
    }

    /// Sends a batch on the control lane to `to` (behind earlier ones that found it full)
    /// and rings the peer if it sleeps.
    pub fn send_control(&mut self, to: usize, batch: Batch) {
        self.control_backlog[to].push_back(batch);
        self.flush_control(to);
    }

    fn flush_control(&mut self, to: usize) {
        let Some((tx, waiting)) = &self.control_out[to] else {
            return;
        };
        let mut sent = false;
        while let Some(batch) = self.control_backlog[to].pop_front() {
            match tx.try_send(batch) {
                Ok(()) => sent = true,
                Err(TrySendError::Full(batch)) => {
                    self.control_backlog[to].push_front(batch);
                    waiting.store(true, Ordering::SeqCst);
                    break;
                }
                Err(TrySendError::Disconnected(_)) => {
                    self.control_backlog[to].clear();
                    break;
                }
            }
        }
        if sent {
            self.doorbells[to].ring(false);
        }
    }

    /// True when a control batch waits in a backlog and its channel has room again (the
    /// next `retry` sends it; until then the shard must not sleep).
    pub fn control_sendable(&self) -> bool {
        (0..self.shards()).any(|to| {
            !self.control_backlog[to].is_empty()
                && self.control_out[to]
                    .as_ref()
                    .is_some_and(|(tx, _)| !tx.is_full())
        })
    }

    /// Takes one batch from `peer`'s control lane; wakes `peer` if batches of its wait for
    /// room there.
    pub fn receive_control(&self, peer: usize) -> Option<Batch> {
        let (rx, waiting) = self.control_in[peer].as_ref()?;
        let batch = rx.try_recv().ok()?;
        if waiting.load(Ordering::SeqCst) && waiting.swap(false, Ordering::SeqCst) {
            self.doorbells[peer].ring(false);
        }
        Some(batch)
    }

    /// True when some control lane holds a batch.
    pub fn has_control_inbound(&self) -> bool {
        self.control_in
            .iter()
            .flatten()
            .any(|(rx, _)| !rx.is_empty())
    }

    /// Retries every backlog; true while any batch still waits or a channel holds more than
    /// `max_queued_messages` (the shard is congested). Each peer this shard waits for is
    /// told to wake it once it drained.
    pub fn retry(&mut self) -> bool {
        let mut congested = false;
        for to in 0..self.shards() {
            if !self.control_backlog[to].is_empty() {
                self.flush_control(to);
            }
            if !self.backlog[to].is_empty() {
                self.flush_peer(to);
            }
            if !self.backlog[to].is_empty() || self.over_bound(to) {
                congested = true;
                if let Some(outlet) = &self.outlets[to] {
                    outlet.lane.sender_waiting.store(true, Ordering::SeqCst);
                }
            }
        }
        congested
    }

    /// True when the channel to `to` holds more than `max_queued_messages`.
    fn over_bound(&self, to: usize) -> bool {
        self.outlets[to].as_ref().is_some_and(|outlet| {
            outlet.lane.queued_messages.load(Ordering::SeqCst) > self.max_queued_messages
        })
    }

    /// True when forwards to `to` cannot move now: batches in the backlog behind a full
    /// channel, or a channel over its message bound. (A backlog whose channel has room again
    /// is not blocked: the next `retry` sends it.)
    fn blocked_towards(&self, to: usize) -> bool {
        let full = !self.backlog[to].is_empty()
            && self.outlets[to].as_ref().is_some_and(|o| o.tx.is_full());
        full || self.over_bound(to)
    }

    /// True while forwards to some peer wait. A congested shard checks it after
    /// `Doorbell::prepare_sleep` and does not sleep when it turned false: the peer drained
    /// before it could see the shard asleep, so it did not ring.
    pub fn blocked(&self) -> bool {
        (0..self.shards()).any(|to| self.blocked_towards(to))
    }

    /// Takes one batch from `peer`'s channel; wakes `peer` if it waits for this channel to
    /// drain and it now has.
    pub fn receive(&self, peer: usize) -> Option<Batch> {
        let inlet = self.inlets[peer].as_ref()?;
        let batch = inlet.rx.try_recv().ok()?;
        let lane = &inlet.lane;
        let left = lane
            .queued_messages
            .fetch_sub(batch.len(), Ordering::SeqCst)
            .saturating_sub(batch.len());
        if left <= self.max_queued_messages
            && lane.sender_waiting.load(Ordering::SeqCst)
            && lane.sender_waiting.swap(false, Ordering::SeqCst)
        {
            self.doorbells[peer].ring(false);
        }
        Some(batch)
    }

    /// True when some data lane holds a batch.
    pub fn has_inbound(&self) -> bool {
        self.inlets
            .iter()
            .flatten()
            .any(|inlet| !inlet.rx.is_empty())
    }
}
