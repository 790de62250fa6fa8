//! The kernel-provided receive buffers of one shard (an io_uring buffer ring).
//!
//! An idle connection keeps a receive armed that holds no buffer: the kernel picks one from
//! this pool only when bytes arrive, and the shard copies them into its read buffer and
//! hands the buffer straight back. Receive memory is per shard, not per connection.
//!
//! Where the kernel allows it (Linux 6.12+, `IOU_PBUF_RING_INC`) a receive takes only the
//! bytes it needs from the buffer at the head of the ring, not the whole buffer: thousands
//! of connections that each bring one small packet per turn share a few buffers. Without
//! it every receive used up a whole 16 KiB buffer until the shard's next turn, so a turn
//! took at most as many receives as the pool has buffers, and the rest failed (`ENOBUFS`)
//! and were armed again: with 4,000 devices publishing 10 messages a second each, 87% of
//! the receives failed, the sockets' unread bytes grew, and delivery fell seconds behind
//! with the shard half idle (docs/benchmarks.md, "Many connections, each at a moderate
//! rate").

use io_uring::cqueue;
use io_uring::types::BufRingEntry;
use io_uring::IoUring;
use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::io;
use std::sync::atomic::{AtomicU16, Ordering};

/// A registered buffer ring and the buffers it hands out.
pub struct BufferRing {
    ring: *mut BufRingEntry,
    ring_layout: Layout,
    buffers: Vec<u8>,
    entries: u16,
    buffer_len: usize,
    tail: u16,
    group: u16,
    /// Receives take part of a buffer (`IOU_PBUF_RING_INC`); see the module docs.
    incremental: bool,
    /// Bytes of each buffer already handed to the shard, where the next receive into the
    /// same buffer starts (incremental mode: the kernel moves its ring entry on by as
    /// much, and completions arrive in the order it did).
    offsets: Vec<u32>,
}

/// `IOU_PBUF_RING_INC` from the kernel's io_uring ABI.
const IOU_PBUF_RING_INC: u16 = 2;

/// How many buffers of what size a pool has.
#[derive(Debug, Clone, Copy)]
pub struct PoolShape {
    /// Buffers (a power of two).
    pub entries: u16,
    /// Bytes each.
    pub buffer_len: usize,
}

impl BufferRing {
    /// Registers the pool as group `group`: shaped `incremental` with incremental
    /// consumption where the kernel has it, else shaped `whole`.
    pub fn register(
        uring: &IoUring,
        group: u16,
        incremental: PoolShape,
        whole: PoolShape,
    ) -> io::Result<BufferRing> {
        match BufferRing::build(uring, group, incremental, IOU_PBUF_RING_INC) {
            Ok(ring) => Ok(ring),
            Err(e) => {
                // A kernel before 6.12 knows no such flag: whole buffers.
                tracing::debug!(error = %e, "receive buffers: no incremental consumption");
                BufferRing::build(uring, group, whole, 0)
            }
        }
    }

    fn build(uring: &IoUring, group: u16, shape: PoolShape, flags: u16) -> io::Result<BufferRing> {
        let PoolShape {
            entries,
            buffer_len,
        } = shape;
        assert!(entries.is_power_of_two());
        let ring_layout =
            Layout::from_size_align(entries as usize * std::mem::size_of::<BufRingEntry>(), 4096)
                .map_err(io::Error::other)?;
        // SAFETY: the layout has a non-zero size.
        let ring = unsafe { alloc_zeroed(ring_layout) } as *mut BufRingEntry;
        if ring.is_null() {
            return Err(io::Error::from(io::ErrorKind::OutOfMemory));
        }
        let mut this = BufferRing {
            ring,
            ring_layout,
            buffers: vec![0u8; entries as usize * buffer_len],
            entries,
            buffer_len,
            tail: 0,
            group,
            incremental: flags & IOU_PBUF_RING_INC != 0,
            offsets: vec![0; entries as usize],
        };
        // SAFETY: `ring` is page-aligned memory for `entries` entries that outlives the
        // registration (unregistered implicitly when the io_uring is dropped first; this
        // struct is dropped after the ring by construction in the event loop). On an error
        // nothing was registered and dropping `this` frees it.
        unsafe {
            uring
                .submitter()
                .register_buf_ring_with_flags(ring as u64, entries, group, flags)?;
        }
        // Receives walk the whole pool in ring order, so it is all resident once that much
        // has arrived. Touching it now makes that a startup cost: otherwise the first
        // megabytes of traffic (a connect storm's CONNECTs) fault it in page by page on the
        // receive path, and memory per connection measured then counts the pool.
        for page in this.buffers.chunks_mut(4096) {
            // SAFETY: `page` is a valid, exclusively borrowed, non-empty slice. Volatile, so
            // the store to memory the allocator already zeroed is not elided.
            unsafe { std::ptr::write_volatile(page.as_mut_ptr(), 0) };
        }
        for bid in 0..entries {
            this.push(bid);
        }
        this.publish();
        Ok(this)
    }

    /// The buffer group id to name in receive requests.
    pub fn group(&self) -> u16 {
        self.group
    }

    /// The `len` bytes a receive completion wrote into buffer `bid`. Call
    /// [`consumed`](Self::consumed) with the same completion once they are copied.
    pub fn data(&self, bid: u16, len: usize) -> &[u8] {
        let offset = self.offsets[bid as usize] as usize;
        let start = bid as usize * self.buffer_len + offset;
        &self.buffers[start..start + len.min(self.buffer_len - offset)]
    }

    /// The shard is done with what a receive completion (result `res`, flags `flags`) put
    /// in buffer `bid`: the buffer goes back to the kernel once it is used up. A receive
    /// that failed or found the stream's end took no bytes; in incremental mode the buffer
    /// then stays where it was, at the kernel's head (giving it back would put it in the
    /// ring twice).
    pub fn consumed(&mut self, bid: u16, res: i32, flags: u32) {
        if !self.incremental {
            self.recycle(bid);
            return;
        }
        if res <= 0 {
            return;
        }
        let offset = &mut self.offsets[bid as usize];
        *offset += res as u32;
        debug_assert!(*offset as usize <= self.buffer_len);
        if !cqueue::buffer_more(flags) {
            *offset = 0;
            self.recycle(bid);
        }
    }

    fn push(&mut self, bid: u16) {
        let index = (self.tail & (self.entries - 1)) as usize;
        // SAFETY: `index` < entries; the entry is ours until the tail is published.
        let entry = unsafe { &mut *self.ring.add(index) };
        entry.set_addr(self.buffers.as_ptr() as u64 + (bid as usize * self.buffer_len) as u64);
        entry.set_len(self.buffer_len as u32);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    fn publish(&self) {
        // SAFETY: the tail lives in the first entry's reserved field, per the io_uring ABI.
        let tail = unsafe { BufRingEntry::tail(self.ring) } as *const AtomicU16;
        // SAFETY: aligned u16 in memory shared with the kernel; release orders the entries.
        unsafe { (*tail).store(self.tail, Ordering::Release) };
    }

    /// Gives buffer `bid` back to the kernel, whole.
    fn recycle(&mut self, bid: u16) {
        self.push(bid);
        self.publish();
    }
}

impl Drop for BufferRing {
    fn drop(&mut self) {
        // SAFETY: allocated in `register` with this layout.
        unsafe { dealloc(self.ring as *mut u8, self.ring_layout) };
    }
}
