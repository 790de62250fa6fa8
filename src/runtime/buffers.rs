//! The kernel-provided receive buffers of one shard (an io_uring buffer ring).
//!
//! An idle connection keeps a receive armed that holds no buffer: the kernel picks one from
//! this pool only when bytes arrive, and the shard copies them into its read buffer and
//! hands the buffer straight back. Receive memory is per shard, not per connection.

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
}

impl BufferRing {
    /// Registers `entries` (a power of two) buffers of `buffer_len` bytes as group `group`.
    pub fn register(
        uring: &IoUring,
        group: u16,
        entries: u16,
        buffer_len: usize,
    ) -> io::Result<BufferRing> {
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
        };
        // SAFETY: `ring` is page-aligned memory for `entries` entries that outlives the
        // registration (unregistered implicitly when the io_uring is dropped first; this
        // struct is dropped after the ring by construction in the event loop).
        unsafe {
            uring
                .submitter()
                .register_buf_ring_with_flags(ring as u64, entries, group, 0)?;
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

    /// The bytes the kernel wrote into buffer `bid`.
    pub fn data(&self, bid: u16, len: usize) -> &[u8] {
        let start = bid as usize * self.buffer_len;
        &self.buffers[start..start + len.min(self.buffer_len)]
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

    /// Gives buffer `bid` back to the kernel.
    pub fn recycle(&mut self, bid: u16) {
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
