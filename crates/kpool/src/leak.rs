//! Leak detection: connections held longer than a threshold.
//!
//! Only active with [`Config::leak_detection`](crate::Config::leak_detection);
//! otherwise nothing here runs. Each checkout registers its start time and the
//! caller's location (`#[track_caller]` on the `get` methods) in a slab; the
//! background collector scans it and reports a connection once when it passes
//! the threshold; its return is reported too. Reports go to `tracing`
//! (warn / info), to the endpoint's `leaks` counter, and to
//! [`Pool::leak_reports`](crate::Pool::leak_reports).

use std::collections::VecDeque;
use std::panic::Location;
use std::time::{Duration, Instant};

use crate::metrics::{Stats, bump};
use crate::sync::Mutex;

/// A connection held past the leak threshold, or its later return.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeakReport {
    /// The endpoint's label.
    pub endpoint: String,
    /// Where the connection was acquired.
    pub acquired_at: &'static Location<'static>,
    /// How long it had been held when reported.
    pub held: Duration,
    /// `false`: still held (the leak report); `true`: it came back.
    pub returned: bool,
}

struct Entry {
    since: Instant,
    at: &'static Location<'static>,
    endpoint: String,
    stats: std::sync::Arc<dyn HasStats>,
    reported: bool,
}

/// The most recent reports kept for [`LeakTracker::reports`].
const KEEP: usize = 64;

pub(crate) struct LeakTracker {
    threshold: Duration,
    slots: Mutex<(Vec<Option<Entry>>, Vec<usize>)>,
    reports: Mutex<VecDeque<LeakReport>>,
}

impl LeakTracker {
    pub(crate) fn new(threshold: Duration) -> Self {
        Self { threshold, slots: Mutex::new((Vec::new(), Vec::new())), reports: Mutex::new(VecDeque::new()) }
    }

    /// Registers a checkout; returns its slot.
    pub(crate) fn checkout(
        &self,
        since: Instant,
        at: &'static Location<'static>,
        endpoint: String,
        stats: std::sync::Arc<dyn HasStats>,
    ) -> usize {
        let entry = Entry { since, at, endpoint, stats, reported: false };
        let mut guard = self.slots.lock();
        let (slots, free) = &mut *guard;
        match free.pop() {
            Some(i) => {
                slots[i] = Some(entry);
                i
            }
            None => {
                slots.push(Some(entry));
                slots.len() - 1
            }
        }
    }

    /// The checkout in `slot` came back at `now`.
    pub(crate) fn checkin(&self, slot: usize, now: Instant) {
        let entry = {
            let mut guard = self.slots.lock();
            let (slots, free) = &mut *guard;
            free.push(slot);
            slots[slot].take()
        };
        if let Some(e) = entry.filter(|e| e.reported) {
            let held = now.saturating_duration_since(e.since);
            tracing::info!(endpoint = %e.endpoint, acquired_at = %e.at, ?held, "previously reported leaked connection returned");
            self.push(LeakReport { endpoint: e.endpoint, acquired_at: e.at, held, returned: true });
        }
    }

    /// Reports checkouts past the threshold; returns the next time to look.
    pub(crate) fn scan(&self, now: Instant) -> Instant {
        let mut next = now + self.threshold;
        let mut found = Vec::new();
        {
            let mut guard = self.slots.lock();
            for e in guard.0.iter_mut().flatten().filter(|e| !e.reported) {
                let due = e.since + self.threshold;
                if due <= now {
                    e.reported = true;
                    bump(&e.stats.stats().counters.leaks);
                    found.push(LeakReport {
                        endpoint: e.endpoint.clone(),
                        acquired_at: e.at,
                        held: now.saturating_duration_since(e.since),
                        returned: false,
                    });
                } else {
                    next = next.min(due);
                }
            }
        }
        for r in found {
            tracing::warn!(endpoint = %r.endpoint, acquired_at = %r.acquired_at, held = ?r.held, threshold = ?self.threshold, "connection held past the leak detection threshold");
            self.push(r);
        }
        next
    }

    fn push(&self, report: LeakReport) {
        let mut reports = self.reports.lock();
        if reports.len() == KEEP {
            reports.pop_front();
        }
        reports.push_back(report);
    }

    pub(crate) fn reports(&self) -> Vec<LeakReport> {
        self.reports.lock().iter().cloned().collect()
    }
}

/// Something that has endpoint stats (an endpoint's shared info).
pub(crate) trait HasStats: Send + Sync {
    fn stats(&self) -> &Stats;
}
