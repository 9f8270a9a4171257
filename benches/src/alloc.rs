//! A counting global allocator, for the memory-per-idle-connection cell.
//!
//! Counting is off except between [`start`] and [`stop`], so the throughput cells pay one
//! relaxed load of a read-only flag per allocation and nothing else (the same
//! for every pool). This is the only `unsafe` in the benchmark: implementing
//! `GlobalAlloc` requires it, and each method only forwards to `System`.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering::Relaxed};

pub(crate) struct Counting;

static ON: AtomicBool = AtomicBool::new(false);
static NET: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged; the counters are plain atomics and never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        let p = unsafe { System.alloc(layout) };
        if ON.load(Relaxed) && !p.is_null() {
            NET.fetch_add(layout.size() as isize, Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        let p = unsafe { System.alloc_zeroed(layout) };
        if ON.load(Relaxed) && !p.is_null() {
            NET.fetch_add(layout.size() as isize, Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded contract.
        unsafe { System.dealloc(ptr, layout) };
        if ON.load(Relaxed) {
            NET.fetch_sub(layout.size() as isize, Relaxed);
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded contract.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if ON.load(Relaxed) && !p.is_null() {
            NET.fetch_add(new_size as isize - layout.size() as isize, Relaxed);
        }
        p
    }
}

/// Starts counting; returns the mark to pass to [`stop`].
pub(crate) fn start() -> isize {
    let before = NET.load(Relaxed);
    ON.store(true, Relaxed);
    before
}

/// Stops counting; net bytes allocated (allocated minus freed) since `start`,
/// on any thread.
pub(crate) fn stop(mark: isize) -> isize {
    ON.store(false, Relaxed);
    NET.load(Relaxed) - mark
}
