//! The ring of provided receive buffers `uring`'s multishot receives take from.

// The kernel reads the ring and writes the buffers: every `unsafe` below says why that is sound.
#![allow(unsafe_code)]

use std::alloc::Layout;
use std::io;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;
use io_uring::IoUring;

use super::GROUP;

/// A ring of provided buffers (`IORING_REGISTER_PBUF_RING`): the kernel takes one when bytes arrive for a
/// multishot receive; the loop copies them out and gives it back at once.
pub(super) struct Bufs {
    /// The ring of `count` entries the kernel reads (page aligned).
    entries: *mut BufRingEntry,
    /// `count` buffers of `size` bytes.
    mem: *mut u8,
    size: usize,
    count: u16,
    tail: u16,
}

impl Bufs {
    fn layouts(count: u16, size: usize) -> (Layout, Layout) {
        let n = usize::from(count);
        (
            Layout::from_size_align(n * std::mem::size_of::<BufRingEntry>(), 4096)
                .expect("a small ring"),
            Layout::array::<u8>(n * size).expect("a small pool"),
        )
    }

    /// Registers `count` (a power of two) buffers of `size` bytes with `ring`, which must drop first.
    pub(super) fn new(ring: &IoUring, count: u16, size: usize) -> io::Result<Bufs> {
        let (ring_layout, mem_layout) = Self::layouts(count, size);
        // SAFETY: both layouts have a non-zero size; a null result is checked below (and freed by `drop`).
        let (entries, mem) = unsafe {
            (
                std::alloc::alloc_zeroed(ring_layout).cast::<BufRingEntry>(),
                std::alloc::alloc_zeroed(mem_layout),
            )
        };
        let mut bufs = Bufs {
            entries,
            mem,
            size,
            count,
            tail: 0,
        };
        if entries.is_null() || mem.is_null() {
            return Err(io::ErrorKind::OutOfMemory.into());
        }
        // SAFETY: `entries` holds `count` entries and stays allocated until `bufs` drops, after the ring.
        unsafe {
            ring.submitter()
                .register_buf_ring_with_flags(entries as u64, count, GROUP, 0)?
        };
        for bid in 0..count {
            bufs.give_back(bid);
        }
        Ok(bufs)
    }

    /// The first `len` bytes of buffer `bid`, which a completion handed back.
    pub(super) fn get(&self, bid: u16, len: usize) -> &[u8] {
        assert!(bid < self.count && len <= self.size);
        // SAFETY: inside the pool; the kernel is done with this buffer until it is given back.
        unsafe { std::slice::from_raw_parts(self.mem.add(usize::from(bid) * self.size), len) }
    }

    /// Puts buffer `bid` back in the ring.
    pub(super) fn give_back(&mut self, bid: u16) {
        let slot = usize::from(self.tail & (self.count - 1));
        // SAFETY: `slot < count`: inside the ring, in an entry the kernel has consumed (the tail is ours), and
        // the buffer's address inside the pool. The tail is an atomic the kernel reads: a release store
        // publishes the entry written before it.
        unsafe {
            let e = &mut *self.entries.add(slot);
            e.set_addr(self.mem.add(usize::from(bid) * self.size) as u64);
            e.set_len(self.size as u32);
            e.set_bid(bid);
            self.tail = self.tail.wrapping_add(1);
            let tail = BufRingEntry::tail(self.entries).cast::<AtomicU16>();
            (*tail).store(self.tail, Ordering::Release);
        }
    }
}

impl Drop for Bufs {
    fn drop(&mut self) {
        let (ring_layout, mem_layout) = Self::layouts(self.count, self.size);
        // SAFETY: allocated in `new` with these layouts; the ring that used them is gone.
        unsafe {
            if !self.entries.is_null() {
                std::alloc::dealloc(self.entries.cast(), ring_layout);
            }
            if !self.mem.is_null() {
                std::alloc::dealloc(self.mem, mem_layout);
            }
        }
    }
}
