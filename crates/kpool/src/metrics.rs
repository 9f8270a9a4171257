//! Counters the pool keeps about itself.
//!
//! Every counter is a relaxed atomic kept next to the core state, so recording
//! never takes a lock of its own; [`Counters::snapshot`] reads them all.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Why a connection left the pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DisposeReason {
    /// Idle past `idle_timeout`, or returned while `max_idle` were idle.
    Idle,
    /// Past `max_lifetime`.
    Lifetime,
    /// Failed its health check.
    Dead,
    /// Marked broken by its user or by `Manager::is_broken`.
    Broken,
    /// Evicted to make room under `total_max_size`.
    Evicted,
    /// The pool was closed.
    Closed,
    /// Returned while the endpoint was above `max_size` (burst shrink).
    Burst,
}

impl DisposeReason {
    /// Every reason, in a fixed order.
    pub const ALL: [DisposeReason; 7] = [
        DisposeReason::Idle,
        DisposeReason::Lifetime,
        DisposeReason::Dead,
        DisposeReason::Broken,
        DisposeReason::Evicted,
        DisposeReason::Closed,
        DisposeReason::Burst,
    ];

    /// A short lowercase name, for labels and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            DisposeReason::Idle => "idle",
            DisposeReason::Lifetime => "lifetime",
            DisposeReason::Dead => "dead",
            DisposeReason::Broken => "broken",
            DisposeReason::Evicted => "evicted",
            DisposeReason::Closed => "closed",
            DisposeReason::Burst => "burst",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The pool's counters since it was built.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CounterSnapshot {
    /// Acquire calls.
    pub requests: u64,
    /// Acquires that returned a connection.
    pub acquired: u64,
    /// Acquires that timed out (not also counted in `errors`).
    pub timeouts: u64,
    /// Acquires that failed for another reason than a timeout.
    pub errors: u64,
    /// Connections created.
    pub created: u64,
    /// `create` calls that failed, timed out or panicked.
    pub create_failures: u64,
    /// Connections disposed, by reason (indexed like [`DisposeReason::ALL`]).
    pub disposed: [u64; 7],
    /// Reused connections found dead by `check_alive`.
    pub dead_found: u64,
    /// `on_release` hooks that failed.
    pub release_errors: u64,
    /// `dispose` calls that failed, timed out or panicked.
    pub dispose_errors: u64,
    /// Connections taken out of the pool for good.
    pub detached: u64,
}

impl CounterSnapshot {
    /// Disposals for one reason.
    pub fn disposed(&self, reason: DisposeReason) -> u64 {
        self.disposed[reason.index()]
    }

    /// Disposals for all reasons.
    pub fn disposed_total(&self) -> u64 {
        self.disposed.iter().sum()
    }
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) requests: AtomicU64,
    pub(crate) acquired: AtomicU64,
    pub(crate) timeouts: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) created: AtomicU64,
    pub(crate) create_failures: AtomicU64,
    disposed: [AtomicU64; 7],
    pub(crate) dead_found: AtomicU64,
    pub(crate) release_errors: AtomicU64,
    pub(crate) dispose_errors: AtomicU64,
    pub(crate) detached: AtomicU64,
}

/// Adds one to a counter.
pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Relaxed);
}

impl Counters {
    pub(crate) fn disposed(&self, reason: DisposeReason) {
        bump(&self.disposed[reason.index()]);
    }

    pub(crate) fn snapshot(&self) -> CounterSnapshot {
        let get = |c: &AtomicU64| c.load(Relaxed);
        CounterSnapshot {
            requests: get(&self.requests),
            acquired: get(&self.acquired),
            timeouts: get(&self.timeouts),
            errors: get(&self.errors),
            created: get(&self.created),
            create_failures: get(&self.create_failures),
            disposed: std::array::from_fn(|i| get(&self.disposed[i])),
            dead_found: get(&self.dead_found),
            release_errors: get(&self.release_errors),
            dispose_errors: get(&self.dispose_errors),
            detached: get(&self.detached),
        }
    }
}
