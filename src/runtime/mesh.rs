//! The cross-shard mesh: one bounded channel per ordered pair of shards, carrying batches,
//! and one doorbell (an eventfd) per shard that a sender rings only when the receiver is
//! about to sleep — a busy shard is never interrupted by a syscall.

use crossbeam_channel::{Receiver, Sender, TrySendError};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
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

/// One shard's ends of the mesh.
pub struct MeshPort {
    /// This shard.
    pub me: usize,
    /// Channel to each peer (None for itself).
    pub outbound: Vec<Option<Sender<Batch>>>,
    /// Channel from each peer (None for itself).
    pub inbound: Vec<Option<Receiver<Batch>>>,
    /// Every shard's doorbell.
    pub doorbells: Vec<Arc<Doorbell>>,
    /// Batches that found their channel full, oldest first, per peer.
    pub backlog: Vec<std::collections::VecDeque<Batch>>,
}

/// Builds the full mesh for `shards` shards.
pub fn build_mesh(shards: usize, capacity: usize) -> std::io::Result<Vec<MeshPort>> {
    let doorbells: Vec<_> = (0..shards)
        .map(|_| Doorbell::new())
        .collect::<Result<_, _>>()?;
    let mut ports: Vec<MeshPort> = (0..shards)
        .map(|me| MeshPort {
            me,
            outbound: (0..shards).map(|_| None).collect(),
            inbound: (0..shards).map(|_| None).collect(),
            doorbells: doorbells.clone(),
            backlog: (0..shards).map(|_| Default::default()).collect(),
        })
        .collect();
    for from in 0..shards {
        for to in 0..shards {
            if from != to {
                let (tx, rx) = crossbeam_channel::bounded(capacity);
                ports[from].outbound[to] = Some(tx);
                ports[to].inbound[from] = Some(rx);
            }
        }
    }
    Ok(ports)
}

impl MeshPort {
    /// Sends a batch (or queues it behind earlier ones when the channel is full) and rings
    /// the peer if it sleeps.
    pub fn send(&mut self, to: usize, batch: Batch) {
        self.backlog[to].push_back(batch);
        self.flush_peer(to);
    }

    fn flush_peer(&mut self, to: usize) {
        let Some(tx) = &self.outbound[to] else {
            return;
        };
        let mut sent = false;
        while let Some(batch) = self.backlog[to].pop_front() {
            match tx.try_send(batch) {
                Ok(()) => sent = true,
                Err(TrySendError::Full(batch)) => {
                    self.backlog[to].push_front(batch);
                    break;
                }
                Err(TrySendError::Disconnected(_)) => {
                    self.backlog[to].clear();
                    break;
                }
            }
        }
        if sent {
            self.doorbells[to].ring(false);
        }
    }

    /// Retries every backlog; true while any batch still waits (the shard is congested).
    pub fn retry(&mut self) -> bool {
        for to in 0..self.backlog.len() {
            if !self.backlog[to].is_empty() {
                self.flush_peer(to);
            }
        }
        self.backlog.iter().any(|b| !b.is_empty())
    }

    /// True when some inbound channel holds a batch.
    pub fn has_inbound(&self) -> bool {
        self.inbound.iter().flatten().any(|rx| !rx.is_empty())
    }
}
