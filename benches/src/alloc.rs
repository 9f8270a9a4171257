//! Allocation counting for the memory-per-idle-connection cell, through the
//! `stats_alloc` crate's instrumented `System` allocator (so this crate needs
//! no `unsafe` of its own). It counts every allocation of the process, for
//! every pool alike: a few relaxed atomic adds per allocation.

use std::alloc::System;

use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

/// The global allocator: `System`, counted.
#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// A counting region; pass it to [`stop`].
pub(crate) fn start() -> Region<'static, System> {
    Region::new(GLOBAL)
}

/// Net bytes allocated (allocated minus freed) since `start`, on any thread.
/// `stats_alloc` already folds reallocations into both figures.
pub(crate) fn stop(region: Region<'static, System>) -> isize {
    let s = region.change();
    s.bytes_allocated as isize - s.bytes_deallocated as isize
}
