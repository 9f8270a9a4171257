//! The runtime-free heart of the pool: every count, idle set, deadline and
//! waiter lives here, behind one short lock.
//!
//! # Why one lock, and what it guards
//!
//! A pool's rules tie its numbers together: an endpoint's `max_size` bounds
//! idle + in use + being created; `total_max_size` bounds the sum over all
//! endpoints; a released connection must go to the oldest waiter before it
//! may go idle; room freed on one endpoint may belong to a waiter on another.
//! Splitting that state over several locks or atomics makes each rule a race
//! (bb8's barging, qp's lost wake-ups, sqlx's leaked permits all come from
//! such splits). So all of it sits in one [`State`] behind one mutex, and
//! every transition is a short, allocation-free (on the hot path) critical
//! section that never runs user code and never awaits. The front-ends
//! (`crate::pool` for tokio, `crate::blocking` for threads) do all I/O —
//! create, check, hooks, dispose — outside the lock, and feed the results
//! back in through the methods below.
//!
//! Time is an argument (`now`), never read here, so the core works the same
//! under tokio's paused clock, real time, or a model checker.
//!
//! # Invariants (checked by `debug_check` in tests)
//!
//! - per endpoint: `live = core_idle + extra_idle + in_use + creating <= limit`
//!   (`burst_limit`, else `max_size`); pool: `total = Σ live <= total_max_size`.
//! - an endpoint with waiters has no idle connection (a returned connection
//!   goes to the oldest waiter first), so nobody barges past a waiter.
//! - a waiter is in its endpoint's queue while `Waiting`; it is also in
//!   `global_waiters` iff it queued because of `total_max_size` and its own
//!   endpoint still had room.
//! - a granted `Create` already counts in `creating` and `total`; a granted
//!   `Conn` already counts in `in_use`. A cancelled waiter gives back what it
//!   was granted through the same paths as a release or a failed create.
//!
//! # Design history
//!
//! The first sketch kept a `tokio::sync::Semaphore` per endpoint plus a global
//! one, as deadpool does. It could not express "evict an idle connection on
//! another endpoint to serve this waiter", needed two front-ends' worth of
//! permit types, and inherits the Semaphore's budget convoy (see the perf
//! notes in `crate::pool`). A single mutex with explicit waiter queues turned
//! out shorter, fair by construction, and fast: the uncontended path is one
//! lock, one hash lookup (skipped for the default endpoint) and one pop.

#[cfg(all(test, kpool_loom))]
mod loom_tests;

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::atomic::Ordering::Relaxed;
use std::task::Waker;
use std::thread::Thread;
use std::time::{Duration, Instant};

use crate::config::{Collection, Config};
use crate::metrics::{self, CounterSnapshot, DisposeReason, Histograms, MetricsSnapshot, Stats, bump};
use crate::status::{PoolStatus, Status};
use crate::sync::{Arc, Mutex, MutexGuard};

/// An endpoint's identity, shared by all its connections.
#[derive(Debug)]
pub(crate) struct EpInfo<K> {
    pub(crate) key: K,
    pub(crate) index: usize,
    /// The endpoint's counters and the histograms it records into.
    pub(crate) stats: Stats,
}

impl<K: Send + Sync> crate::leak::HasStats for EpInfo<K> {
    fn stats(&self) -> &Stats {
        &self.stats
    }
}

/// A live connection with its bookkeeping, boxed: acquires, hand-offs and
/// releases move one pointer instead of the connection and its stamps.
pub(crate) type Conn<K, C> = Box<ConnBody<K, C>>;

/// What a [`Conn`] points to.
pub(crate) struct ConnBody<K, C> {
    pub(crate) raw: C,
    pub(crate) ep: std::sync::Arc<EpInfo<K>>,
    pub(crate) created: Instant,
    /// Lifetime deadline, jitter included.
    pub(crate) expires: Option<Instant>,
    /// When it last went back to the pool (or was created).
    pub(crate) returned: Instant,
    /// How many times it was handed to a user.
    pub(crate) uses: u64,
    /// The async `on_release` hook is owed (deferred from a guard drop).
    pub(crate) pending_release: bool,
    /// When it was last handed to a user (for the usage histogram).
    pub(crate) out_since: Instant,
    /// Its `on_release` hook failed: health-check it on the next checkout
    /// even inside the bypass window.
    pub(crate) suspect: bool,
}

impl<K, C> ConnBody<K, C> {
    fn lifetime_over(&self, now: Instant) -> bool {
        self.expires.is_some_and(|e| now >= e)
    }

    /// When this idle connection is due: lifetime, and for an extra one also
    /// idle timeout.
    fn deadline(&self, extra: bool, cfg: &Config) -> Option<Instant> {
        let idle = if extra { cfg.idle_timeout.map(|t| self.returned + t) } else { None };
        match (self.expires, idle) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn due(&self, extra: bool, cfg: &Config, now: Instant) -> Option<DisposeReason> {
        if self.lifetime_over(now) {
            Some(DisposeReason::Lifetime)
        } else if extra && cfg.idle_timeout.is_some_and(|t| now >= self.returned + t) {
            Some(DisposeReason::Idle)
        } else {
            None
        }
    }
}

/// A connection the core has let go of; the front-end must dispose it.
pub(crate) type Doomed<K, C> = (Conn<K, C>, DisposeReason);

/// How a waiting caller is woken.
pub(crate) enum Wake {
    None,
    Task(Waker),
    Thread(Thread),
    /// A thread of a loom model (`std`'s park/unpark are invisible to loom).
    #[cfg(all(test, kpool_loom))]
    Loom(loom::thread::Thread),
}

impl Wake {
    /// Takes the wake-up out, leaving `None`.
    fn take(&mut self) -> Wake {
        std::mem::replace(self, Wake::None)
    }

    fn wake(&mut self) {
        match std::mem::replace(self, Wake::None) {
            Wake::None => {}
            Wake::Task(w) => w.wake(),
            Wake::Thread(t) => t.unpark(),
            #[cfg(all(test, kpool_loom))]
            Wake::Loom(t) => t.unpark(),
        }
    }
}

/// What a waiter was given.
pub(crate) enum Grant<K, C> {
    /// A connection handed off by a release; it counts as in use.
    Conn(Conn<K, C>),
    /// Room to create a connection; it counts as being created.
    Create,
    /// The pool closed.
    Closed,
    /// The wait's deadline passed and the waiter left the queue (see
    /// [`Core::expire_waiters`]); the endpoint's status at that moment.
    TimedOut(Status),
}

enum WaitState<K, C> {
    Waiting,
    Granted(Grant<K, C>),
    Finished,
}

struct Slot<K, C> {
    state: WaitState<K, C>,
    wake: Wake,
    in_global: bool,
}

/// A caller queued for a connection.
pub(crate) struct Waiter<K, C> {
    ep: usize,
    /// When [`Core::expire_waiters`] times it out (the async pool's waits).
    deadline: Option<Instant>,
    slot: Mutex<Slot<K, C>>,
}

impl<K, C> Waiter<K, C> {
    /// Grants; returns the waiter's wake-up, to run once the core is unlocked.
    #[must_use]
    fn grant(&self, grant: Grant<K, C>) -> Wake {
        let mut slot = self.slot.lock();
        debug_assert!(matches!(slot.state, WaitState::Waiting));
        slot.state = WaitState::Granted(grant);
        slot.wake.take()
    }

    fn in_global(&self) -> bool {
        self.slot.lock().in_global
    }

    /// Whether [`Core::expire_waiters`] times this waiter out.
    pub(crate) fn has_deadline(&self) -> bool {
        self.deadline.is_some()
    }
}

/// The result of [`Core::acquire`].
pub(crate) enum Step<K, C> {
    /// An idle connection, now in use.
    Ready(Conn<K, C>),
    /// Room was reserved at this endpoint index: create a connection.
    Create(usize),
    /// Queued; poll the waiter.
    Wait(Arc<Waiter<K, C>>),
    /// The pool is closed.
    Closed,
}

struct Endpoint<K, C> {
    info: std::sync::Arc<EpInfo<K>>,
    /// Core idle connections, reused first-in-first-out (round robin).
    core_idle: VecDeque<Conn<K, C>>,
    /// Extra idle connections, reused last-in-first-out; the front is the
    /// coldest, the first to idle out.
    extra_idle: VecDeque<Conn<K, C>>,
    in_use: usize,
    creating: usize,
    waiters: VecDeque<Arc<Waiter<K, C>>>,
    /// No idle connection is due before this (a lower bound, refreshed when
    /// collection runs): a release checks one `Instant` instead of scanning.
    next_due: Option<Instant>,
    /// The highest `in_use` and waiter count since the pool was built or
    /// its metrics were reset.
    peaks: Peaks,
}

/// High-water marks: the most connections in use and the most callers
/// waiting at any one time, since the pool was built or its metrics reset.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Peaks {
    pub(crate) in_use: usize,
    pub(crate) waiting: usize,
}

impl<K, C> Endpoint<K, C> {
    fn idle(&self) -> usize {
        self.core_idle.len() + self.extra_idle.len()
    }

    fn live(&self) -> usize {
        self.idle() + self.in_use + self.creating
    }

    fn status(&self, cfg: &Config) -> Status {
        Status {
            total: self.live(),
            idle: self.idle(),
            in_use: self.in_use,
            creating: self.creating,
            waiting: self.waiters.len(),
            max: cfg.endpoint_limit(),
            min: cfg.min_idle,
        }
    }
}

struct State<K, C> {
    /// Endpoint indexes by key. foldhash (seeded per process, as hashbrown's
    /// default) instead of SipHash: the lookup is on every keyed acquire.
    index: HashMap<K, usize, foldhash::fast::RandomState>,
    eps: Vec<Endpoint<K, C>>,
    /// Σ live over endpoints.
    total: usize,
    /// Σ idle over endpoints (lets eviction skip its scan when zero).
    idle: usize,
    global_waiters: VecDeque<Arc<Waiter<K, C>>>,
    /// Σ in use and Σ waiting over endpoints, and their high-water marks.
    in_use: usize,
    waiting: usize,
    peaks: Peaks,
    closed: bool,
    close_watchers: Vec<Wake>,
    /// Earliest deadline the background collector sleeps until.
    collector_at: Option<Instant>,
    collector_wake: Wake,
    /// No queued waiter's deadline is before this (a lower bound).
    timer_at: Option<Instant>,
    /// Woken when a waiter with an earlier deadline queues, or on close.
    timer_wake: Wake,
    /// Wake-ups owed, run by [`Locked`] after the unlock: the first one
    /// inline (the common case, a single hand-off), any more in a list.
    wake_first: Wake,
    wake_rest: Vec<Wake>,
    next_id: u64,
}

/// The locked state. Wake-ups queued while it is held ([`State::defer`])
/// run after the unlock: a woken task or thread never finds the lock still
/// held by its waker, and no waker code runs under the lock.
struct Locked<'a, K, C>(Option<MutexGuard<'a, State<K, C>>>);

impl<K, C> std::ops::Deref for Locked<'_, K, C> {
    type Target = State<K, C>;

    fn deref(&self) -> &State<K, C> {
        self.0.as_ref().expect("locked until dropped")
    }
}

impl<K, C> std::ops::DerefMut for Locked<'_, K, C> {
    fn deref_mut(&mut self) -> &mut State<K, C> {
        self.0.as_mut().expect("locked until dropped")
    }
}

impl<K, C> Drop for Locked<'_, K, C> {
    fn drop(&mut self) {
        let Some(mut st) = self.0.take() else { return };
        let mut first = st.wake_first.take();
        let rest = if st.wake_rest.is_empty() { Vec::new() } else { std::mem::take(&mut st.wake_rest) };
        drop(st);
        first.wake();
        for mut w in rest {
            w.wake();
        }
    }
}

/// See the module docs.
pub(crate) struct Core<K, C> {
    state: Mutex<State<K, C>>,
    closed: crate::sync::AtomicBool,
    pub(crate) config: Config,
    /// The pool's histograms (endpoints share them unless
    /// `endpoint_histograms` is on).
    pub(crate) hist: std::sync::Arc<Histograms>,
}

impl<K: Eq + Hash + Clone, C> Core<K, C> {
    pub(crate) fn new(config: Config) -> Self {
        Self {
            state: Mutex::new(State {
                index: HashMap::default(),
                eps: Vec::new(),
                total: 0,
                idle: 0,
                global_waiters: VecDeque::new(),
                in_use: 0,
                waiting: 0,
                peaks: Peaks::default(),
                closed: false,
                close_watchers: Vec::new(),
                collector_at: None,
                collector_wake: Wake::None,
                timer_at: None,
                timer_wake: Wake::None,
                wake_first: Wake::None,
                wake_rest: Vec::new(),
                next_id: 0,
            }),
            closed: crate::sync::AtomicBool::new(false),
            hist: std::sync::Arc::new(Histograms::new(config.metrics)),
            config,
        }
    }

    fn lock(&self) -> Locked<'_, K, C> {
        Locked(Some(self.state.lock()))
    }

    /// The index of an endpoint, registering it on first use.
    pub(crate) fn endpoint_index(&self, key: &K) -> usize {
        let mut st = self.lock();
        st.endpoint(key, &self.hist, self.config.endpoint_histograms, self.config.metrics)
    }

    /// An endpoint's shared info (its key and stats).
    pub(crate) fn endpoint_info(&self, idx: usize) -> std::sync::Arc<EpInfo<K>> {
        self.lock().eps[idx].info.clone()
    }

    /// Whether `close()` was called.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Relaxed)
    }

    /// Takes an idle connection, reserves room to create one, or queues.
    ///
    /// Idle connections found due (lifetime, idle timeout) on the way are
    /// pushed to `out` for disposal. A waiter queued with a `deadline` is
    /// timed out by [`Core::expire_waiters`]; without one, the caller times
    /// its wait itself (and cancels).
    pub(crate) fn acquire(
        &self,
        key: &K,
        now: Instant,
        deadline: Option<Instant>,
        out: &mut Vec<Doomed<K, C>>,
    ) -> Step<K, C> {
        let mut st = self.lock();
        let idx = match st.index.get(key) {
            Some(&i) => i,
            None => st.endpoint(key, &self.hist, self.config.endpoint_histograms, self.config.metrics),
        };
        st.acquire(idx, &self.config, now, deadline, out)
    }

    /// [`Core::acquire`] for a known endpoint index (no hashing).
    pub(crate) fn acquire_index(
        &self,
        idx: usize,
        now: Instant,
        deadline: Option<Instant>,
        out: &mut Vec<Doomed<K, C>>,
    ) -> Step<K, C> {
        self.lock().acquire(idx, &self.config, now, deadline, out)
    }

    /// Times out the queued waiters whose deadline is `now` or earlier: they
    /// leave the queues and are granted [`Grant::TimedOut`]. Returns the
    /// earliest deadline left (`None` inside: no waiter has one), and `wake`
    /// is woken when a waiter with an earlier deadline queues or the pool
    /// closes; `None` once the pool is closed.
    ///
    /// One timer for all waits (HikariCP's and deadpool's waits each arm
    /// their own): a wait costs no timer registration and removal, and the
    /// timer usually sleeps through a whole `acquire_timeout` since the
    /// oldest waiter's deadline is the earliest.
    pub(crate) fn expire_waiters(&self, now: Instant, wake: Wake) -> Option<Option<Instant>> {
        let mut st = self.lock();
        if st.closed {
            return None;
        }
        let mut next: Option<Instant> = None;
        let mut woken = Vec::new();
        let mut left_queue = 0;
        for ep in st.eps.iter_mut().filter(|ep| !ep.waiters.is_empty()) {
            let mut status = None;
            let due = |w: &Arc<Waiter<K, C>>| w.deadline.is_some_and(|d| d <= now);
            for w in ep.waiters.iter() {
                match w.deadline {
                    Some(d) if d <= now => {
                        // The status the timed-out callers saw, themselves in line.
                        let status = status.get_or_insert_with(|| ep.status(&self.config));
                        woken.push(w.grant(Grant::TimedOut(*status)));
                    }
                    Some(d) => next = Some(next.map_or(d, |n: Instant| n.min(d))),
                    None => {}
                }
            }
            if status.is_some() {
                let before = ep.waiters.len();
                ep.waiters.retain(|w| !due(w));
                left_queue += before - ep.waiters.len();
            }
        }
        st.waiting -= left_queue;
        if !woken.is_empty() {
            woken.into_iter().for_each(|w| st.defer(w));
            // Every global waiter is in its endpoint's queue too.
            st.global_waiters.retain(|w| w.deadline.is_none_or(|d| d > now));
            st.after_change();
        }
        st.timer_at = next;
        st.timer_wake = wake;
        Some(next)
    }

    /// Picks up a waiter's grant, or registers how to wake it.
    pub(crate) fn poll_grant(
        &self,
        waiter: &Waiter<K, C>,
        wake: impl FnOnce(&Wake) -> Option<Wake>,
    ) -> Option<Grant<K, C>> {
        let mut slot = waiter.slot.lock();
        match std::mem::replace(&mut slot.state, WaitState::Finished) {
            WaitState::Granted(grant) => Some(grant),
            WaitState::Waiting => {
                slot.state = WaitState::Waiting;
                if let Some(w) = wake(&slot.wake) {
                    slot.wake = w;
                }
                None
            }
            WaitState::Finished => unreachable!("a finished waiter was polled"),
        }
    }

    /// A waiter gave up (timeout, or its future was dropped). Whatever it had
    /// been granted goes to the next waiter, back idle, or frees its room.
    pub(crate) fn cancel(&self, waiter: &Arc<Waiter<K, C>>, now: Instant, out: &mut Vec<Doomed<K, C>>) {
        let mut st = self.lock();
        let state = std::mem::replace(&mut waiter.slot.lock().state, WaitState::Finished);
        match state {
            WaitState::Waiting => st.unqueue(waiter),
            WaitState::Finished | WaitState::Granted(Grant::Closed | Grant::TimedOut(_)) => {}
            WaitState::Granted(Grant::Conn(conn)) => {
                st.checked_in(conn.ep.index);
                st.put_back(conn, &self.config, now, out);
            }
            WaitState::Granted(Grant::Create) => {
                st.eps[waiter.ep].creating -= 1;
                st.total -= 1;
                st.room_freed(waiter.ep, &self.config, out);
            }
        }
        st.after_change();
    }

    /// A reserved create succeeded. Returns the connection (in use), or gives
    /// the raw connection back if the pool closed meanwhile.
    pub(crate) fn created(&self, idx: usize, raw: C, now: Instant) -> Result<Conn<K, C>, C> {
        let mut st = self.lock();
        st.eps[idx].creating -= 1;
        let stats = &st.eps[idx].info.stats.counters;
        bump(&stats.created);
        if st.closed {
            stats.disposed(DisposeReason::Closed);
            st.total -= 1;
            st.after_change();
            return Err(raw);
        }
        st.checked_out(idx);
        let info = st.eps[idx].info.clone();
        st.next_id += 1;
        let expires =
            self.config.max_lifetime.map(|life| now + jittered(life, st.next_id, self.config.lifetime_jitter));
        Ok(Box::new(ConnBody {
            raw,
            ep: info,
            created: now,
            expires,
            returned: now,
            uses: 0,
            pending_release: false,
            out_since: now,
            suspect: false,
        }))
    }

    /// A reserved create failed (error, timeout, panic or cancellation): its
    /// room goes to the next waiter at once.
    pub(crate) fn create_failed(&self, idx: usize, out: &mut Vec<Doomed<K, C>>) {
        let mut st = self.lock();
        bump(&st.eps[idx].info.stats.counters.create_failures);
        st.eps[idx].creating -= 1;
        st.total -= 1;
        st.room_freed(idx, &self.config, out);
        st.after_change();
    }

    /// A checked-out connection comes back. `broken` disposes it.
    pub(crate) fn release(&self, conn: Conn<K, C>, broken: bool, now: Instant, out: &mut Vec<Doomed<K, C>>) {
        let mut st = self.lock();
        st.checked_in(conn.ep.index);
        if broken {
            st.doom(conn, DisposeReason::Broken, &self.config, out);
        } else {
            st.put_back(conn, &self.config, now, out);
        }
        st.after_change();
    }

    /// A checked-out connection leaves the pool for a reason (dead on check).
    pub(crate) fn discard(&self, conn: Conn<K, C>, reason: DisposeReason, out: &mut Vec<Doomed<K, C>>) {
        let mut st = self.lock();
        st.checked_in(conn.ep.index);
        st.doom(conn, reason, &self.config, out);
        st.after_change();
    }

    /// A checked-out connection leaves the pool for good, undisposed.
    #[allow(clippy::boxed_local, reason = "connections live boxed; callers hold a `Conn`")]
    pub(crate) fn detach(&self, conn: Conn<K, C>, out: &mut Vec<Doomed<K, C>>) -> C {
        let mut st = self.lock();
        let idx = conn.ep.index;
        st.checked_in(idx);
        st.total -= 1;
        bump(&conn.ep.stats.counters.detached);
        st.room_freed(idx, &self.config, out);
        st.after_change();
        conn.raw
    }

    /// Closes the pool: waiters get `Closed`, idle connections go to `out`.
    /// Returns false if it was already closed.
    pub(crate) fn close(&self, out: &mut Vec<Doomed<K, C>>) -> bool {
        let mut st = self.lock();
        if st.closed {
            return false;
        }
        st.closed = true;
        self.closed.store(true, Relaxed);
        st.global_waiters.clear();
        let mut woken = Vec::new();
        let State { eps, total, idle, .. } = &mut *st;
        for ep in eps.iter_mut() {
            for w in ep.waiters.drain(..) {
                woken.push(w.grant(Grant::Closed));
            }
            for conn in ep.core_idle.drain(..).chain(ep.extra_idle.drain(..)) {
                *total -= 1;
                *idle -= 1;
                conn.ep.stats.counters.disposed(DisposeReason::Closed);
                out.push((conn, DisposeReason::Closed));
            }
        }
        woken.into_iter().for_each(|w| st.defer(w));
        st.waiting = 0;
        let (collector, timer) = (st.collector_wake.take(), st.timer_wake.take());
        st.defer(collector);
        st.defer(timer);
        st.after_change();
        true
    }

    /// Connections still checked out or being created (after close: the ones
    /// close waits for). Registers `wake` to be woken when it reaches zero.
    pub(crate) fn outstanding(&self, wake: Option<Wake>) -> usize {
        let mut st = self.lock();
        let n = st.total - st.idle;
        if n > 0 {
            if let Some(w) = wake {
                st.close_watchers.push(w);
            }
        }
        n
    }

    /// Disposes what is due (at most `limit` connections, all if `None`),
    /// reserves creates to refill `min_idle` when `fill` is set, and returns
    /// the endpoints to create for and the next deadline.
    pub(crate) fn collect(
        &self,
        now: Instant,
        limit: Option<usize>,
        fill: bool,
        out: &mut Vec<Doomed<K, C>>,
    ) -> (Vec<(usize, K)>, Option<Instant>) {
        let mut st = self.lock();
        let cfg = &self.config;
        let mut budget = limit.unwrap_or(usize::MAX);
        let mut next: Option<Instant> = None;
        let mut creates = Vec::new();
        for idx in 0..st.eps.len() {
            st.collect_endpoint(idx, cfg, now, &mut budget, out);
            let ep = &st.eps[idx];
            for (conn, extra) in ep.core_idle.iter().map(|c| (c, false)).chain(ep.extra_idle.iter().map(|c| (c, true)))
            {
                if let Some(d) = conn.deadline(extra, cfg) {
                    next = Some(next.map_or(d, |n| n.min(d)));
                }
            }
        }
        if fill && !st.closed {
            for idx in 0..st.eps.len() {
                while st.eps[idx].live() < cfg.min_idle && st.eps[idx].waiters.is_empty() && st.room(cfg) {
                    st.reserve(idx);
                    creates.push((idx, st.eps[idx].info.key.clone()));
                }
            }
        }
        st.collector_at = next;
        st.after_change();
        (creates, next)
    }

    /// Reserves room to create one more connection at `idx` if it holds fewer
    /// than `min_idle` and nobody waits there (warming and refilling).
    pub(crate) fn reserve_fill(&self, idx: usize) -> Option<usize> {
        let mut st = self.lock();
        let ep = &st.eps[idx];
        if st.closed || ep.live() >= self.config.min_idle || !ep.waiters.is_empty() || !st.room(&self.config) {
            return None;
        }
        st.reserve(idx);
        Some(idx)
    }

    /// Wakes every queued waiter that has a deadline, granting nothing: the
    /// wait timer stopped (its runtime shut down), and a woken waiter starts
    /// another on its own runtime.
    pub(crate) fn wake_deadline_waiters(&self) {
        let mut st = self.lock();
        let mut woken = Vec::new();
        for ep in &st.eps {
            for w in ep.waiters.iter().filter(|w| w.has_deadline()) {
                woken.push(w.slot.lock().wake.take());
            }
        }
        woken.into_iter().for_each(|w| st.defer(w));
    }

    /// Wakes the background collector and wait timer (the pool is going away).
    pub(crate) fn wake_tasks(&self) {
        let mut st = self.lock();
        let (collector, timer) = (st.collector_wake.take(), st.timer_wake.take());
        st.defer(collector);
        st.defer(timer);
    }

    /// Registers the collector's wake-up, called when an earlier deadline
    /// appears or the pool closes.
    pub(crate) fn set_collector_wake(&self, wake: Wake) {
        self.lock().collector_wake = wake;
    }

    /// Occupancy of the pool and each endpoint.
    pub(crate) fn status(&self) -> PoolStatus<K> {
        let st = self.lock();
        let cfg = &self.config;
        let endpoints: Vec<(K, Status)> = st.eps.iter().map(|ep| (ep.info.key.clone(), ep.status(cfg))).collect();
        let mut pool = Status { max: cfg.total_max_size.unwrap_or(usize::MAX), ..Status::default() };
        for (_, s) in &endpoints {
            pool.total += s.total;
            pool.idle += s.idle;
            pool.in_use += s.in_use;
            pool.creating += s.creating;
            pool.waiting += s.waiting;
            pool.min += s.min;
        }
        PoolStatus { pool, endpoints, closed: st.closed }
    }

    /// Counts a failed acquire for `key` (a timeout or another error).
    pub(crate) fn record_failure(&self, key: &K, timeout: bool) {
        let info = self.endpoint_info(self.endpoint_index(key));
        let c = &info.stats.counters;
        bump(if timeout { &c.timeouts } else { &c.errors });
    }

    /// Counters summed over endpoints (no histograms, no labels).
    pub(crate) fn counters(&self) -> CounterSnapshot {
        let infos: Vec<_> = self.lock().eps.iter().map(|e| e.info.clone()).collect();
        let mut sum = CounterSnapshot::default();
        for info in &infos {
            sum.add(&info.stats.counters.snapshot());
        }
        sum
    }

    /// Gauges under one lock, then counters and histograms from atomics.
    pub(crate) fn metrics(&self) -> MetricsSnapshot
    where
        K: std::fmt::Debug,
    {
        let status = self.status();
        let (infos, peaks) = {
            let st = self.lock();
            let infos: Vec<_> = st.eps.iter().map(|e| (e.info.clone(), e.peaks)).collect();
            (infos, st.peaks)
        };
        let readings = infos
            .iter()
            .zip(&status.endpoints)
            .map(|((info, peaks), (_, st))| metrics::EndpointReading {
                label: metrics::label(&info.key),
                status: *st,
                peaks: *peaks,
                counters: info.stats.counters.snapshot(),
                hist: info.stats.own_hist.then(|| metrics::read_hist(&info.stats.hist)),
            })
            .collect();
        metrics::snapshot(status.pool, peaks, status.closed, readings, &self.hist)
    }

    /// Zeroes counters and histograms (gauges are live values) and brings
    /// the high-water marks down to the current values.
    pub(crate) fn reset_metrics(&self) {
        let infos: Vec<_> = {
            let mut st = self.lock();
            st.peaks = Peaks { in_use: st.in_use, waiting: st.waiting };
            for ep in &mut st.eps {
                ep.peaks = Peaks { in_use: ep.in_use, waiting: ep.waiters.len() };
            }
            st.eps.iter().map(|e| e.info.clone()).collect()
        };
        for info in infos {
            info.stats.reset();
        }
        self.hist.reset();
    }

    /// Status of one endpoint without building the whole snapshot.
    pub(crate) fn endpoint_status(&self, idx: usize) -> Status {
        self.lock().eps[idx].status(&self.config)
    }

    /// Checks every invariant of the module docs; panics on a violation.
    pub(crate) fn debug_check(&self) {
        let st = self.lock();
        let cfg = &self.config;
        let (mut total, mut idle, mut in_use, mut waiting) = (0, 0, 0, 0);
        for ep in &st.eps {
            assert!(ep.live() <= cfg.endpoint_limit(), "endpoint over its limit");
            assert!(ep.waiters.is_empty() || ep.idle() == 0, "waiters while idle connections exist");
            assert!(ep.peaks.in_use >= ep.in_use && ep.peaks.waiting >= ep.waiters.len(), "endpoint peak below now");
            total += ep.live();
            idle += ep.idle();
            in_use += ep.in_use;
            waiting += ep.waiters.len();
        }
        assert_eq!(total, st.total, "total out of step");
        assert_eq!(idle, st.idle, "idle out of step");
        assert_eq!((in_use, waiting), (st.in_use, st.waiting), "in use or waiting out of step");
        assert!(st.peaks.in_use >= st.in_use && st.peaks.waiting >= st.waiting, "pool peak below now");
        assert!(st.total <= cfg.total_max_size.unwrap_or(usize::MAX), "pool over total_max_size");
    }
}

impl<K: Eq + Hash + Clone, C> State<K, C> {
    fn endpoint(&mut self, key: &K, hist: &std::sync::Arc<Histograms>, own_hist: bool, on: bool) -> usize {
        if let Some(&i) = self.index.get(key) {
            return i;
        }
        let index = self.eps.len();
        let stats = Stats::new(hist, own_hist, on);
        self.eps.push(Endpoint {
            info: std::sync::Arc::new(EpInfo { key: key.clone(), index, stats }),
            core_idle: VecDeque::new(),
            extra_idle: VecDeque::new(),
            in_use: 0,
            creating: 0,
            waiters: VecDeque::new(),
            next_due: None,
            peaks: Peaks::default(),
        });
        self.index.insert(key.clone(), index);
        index
    }

    fn acquire(
        &mut self,
        idx: usize,
        cfg: &Config,
        now: Instant,
        deadline: Option<Instant>,
        out: &mut Vec<Doomed<K, C>>,
    ) -> Step<K, C> {
        if self.closed {
            return Step::Closed;
        }
        let limit = cfg.endpoint_limit();
        let ep = &mut self.eps[idx];
        if ep.waiters.is_empty() {
            // Core first (round robin), then the hottest extra.
            loop {
                let (conn, extra) = match ep.core_idle.pop_front() {
                    Some(c) => (c, false),
                    None => match ep.extra_idle.pop_back() {
                        Some(c) => (c, true),
                        None => break,
                    },
                };
                self.idle -= 1;
                if let Some(reason) = conn.due(extra, cfg, now) {
                    self.total -= 1;
                    conn.ep.stats.counters.disposed(reason);
                    out.push((conn, reason));
                    continue;
                }
                self.checked_out(idx);
                return Step::Ready(conn);
            }
            if ep.live() < limit {
                if self.room(cfg) || self.evict_one(cfg, out) {
                    self.reserve(idx);
                    return Step::Create(idx);
                }
                return Step::Wait(self.enqueue(idx, true, deadline));
            }
        }
        let global = self.eps[idx].live() < limit;
        Step::Wait(self.enqueue(idx, global, deadline))
    }

    fn enqueue(&mut self, idx: usize, global: bool, deadline: Option<Instant>) -> Arc<Waiter<K, C>> {
        let waiter = Arc::new(Waiter {
            ep: idx,
            deadline,
            slot: Mutex::new(Slot { state: WaitState::Waiting, wake: Wake::None, in_global: global }),
        });
        self.eps[idx].waiters.push_back(waiter.clone());
        self.waiting += 1;
        let ep = &mut self.eps[idx];
        ep.peaks.waiting = ep.peaks.waiting.max(ep.waiters.len());
        self.peaks.waiting = self.peaks.waiting.max(self.waiting);
        if global {
            self.global_waiters.push_back(waiter.clone());
        }
        if let Some(d) = deadline {
            if self.timer_at.is_none_or(|t| d < t) {
                self.timer_at = Some(d);
                let timer = self.timer_wake.take();
                self.defer(timer);
            }
        }
        waiter
    }

    fn unqueue(&mut self, waiter: &Arc<Waiter<K, C>>) {
        let queue = &mut self.eps[waiter.ep].waiters;
        let before = queue.len();
        queue.retain(|w| !Arc::ptr_eq(w, waiter));
        self.waiting -= before - queue.len();
        if waiter.in_global() {
            self.global_waiters.retain(|w| !Arc::ptr_eq(w, waiter));
        }
    }

    /// Is there global room for one more connection?
    fn room(&self, cfg: &Config) -> bool {
        cfg.total_max_size.is_none_or(|max| self.total < max)
    }

    fn reserve(&mut self, idx: usize) {
        self.eps[idx].creating += 1;
        self.total += 1;
    }

    /// Pops the oldest waiter of an endpoint (out of both queues).
    fn pop_waiter(&mut self, idx: usize) -> Option<Arc<Waiter<K, C>>> {
        let w = self.eps[idx].waiters.pop_front()?;
        self.waiting -= 1;
        // Without global waiters (always, without `total_max_size`) there is
        // nothing to unlink: skip locking the waiter's slot to ask.
        if !self.global_waiters.is_empty() && w.in_global() {
            self.global_waiters.retain(|x| !Arc::ptr_eq(x, &w));
        }
        Some(w)
    }

    /// A connection that was in use (not counted in `in_use` any more) goes
    /// to the oldest waiter, or is disposed, or goes idle.
    fn put_back(&mut self, mut conn: Conn<K, C>, cfg: &Config, now: Instant, out: &mut Vec<Doomed<K, C>>) {
        if self.closed {
            return self.doom(conn, DisposeReason::Closed, cfg, out);
        }
        if conn.lifetime_over(now) {
            return self.doom(conn, DisposeReason::Lifetime, cfg, out);
        }
        conn.returned = now;
        let idx = conn.ep.index;
        if let Some(w) = self.pop_waiter(idx) {
            self.checked_out(idx);
            let wake = w.grant(Grant::Conn(conn));
            self.defer(wake);
            return;
        }
        let ep = &mut self.eps[idx];
        // `live` no longer counts this connection: with it, the endpoint is
        // above max_size only while bursting, and nobody waits (checked above).
        if ep.live() + 1 > cfg.max_size {
            return self.doom(conn, DisposeReason::Burst, cfg, out);
        }
        if cfg.max_idle.is_some_and(|m| ep.idle() >= m) {
            return self.doom(conn, DisposeReason::Idle, cfg, out);
        }
        let extra = ep.core_idle.len() >= cfg.min_idle;
        let due = conn.deadline(extra, cfg);
        if extra {
            ep.extra_idle.push_back(conn);
        } else {
            ep.core_idle.push_back(conn);
        }
        if let Some(d) = due {
            ep.next_due = Some(ep.next_due.map_or(d, |n| n.min(d)));
        }
        self.idle += 1;
        if !self.global_waiters.is_empty() {
            self.serve_global(cfg, out);
        }
        if cfg.collection == Collection::Inline {
            if self.eps[idx].next_due.is_some_and(|d| now >= d) {
                let mut budget = match cfg.dispose_batch_size {
                    0 => auto_batch(self.eps[idx].live()),
                    n => n,
                };
                self.collect_endpoint(idx, cfg, now, &mut budget, out);
            }
        } else if let Some(d) = due {
            if self.collector_at.is_none_or(|at| d < at) {
                self.collector_at = Some(d);
                let collector = self.collector_wake.take();
                self.defer(collector);
            }
        }
    }

    /// Recomputes an endpoint's `next_due` from its idle connections.
    fn refresh_due(&mut self, idx: usize, cfg: &Config) {
        let ep = &mut self.eps[idx];
        let core = ep.core_idle.iter().filter_map(|c| c.deadline(false, cfg));
        let extra = ep.extra_idle.iter().filter_map(|c| c.deadline(true, cfg));
        ep.next_due = core.chain(extra).min();
    }

    /// Disposes due idle connections of one endpoint, oldest first.
    fn collect_endpoint(
        &mut self,
        idx: usize,
        cfg: &Config,
        now: Instant,
        budget: &mut usize,
        out: &mut Vec<Doomed<K, C>>,
    ) {
        let mut freed = false;
        while *budget > 0 {
            let ep = &mut self.eps[idx];
            let reason = ep.extra_idle.front().and_then(|c| c.due(true, cfg, now));
            let (conn, reason) = if let Some(r) = reason {
                (ep.extra_idle.pop_front(), r)
            } else if let Some(pos) = ep.core_idle.iter().position(|c| c.lifetime_over(now)) {
                (ep.core_idle.remove(pos), DisposeReason::Lifetime)
            } else {
                break;
            };
            let conn = conn.expect("front exists");
            *budget -= 1;
            self.idle -= 1;
            self.total -= 1;
            conn.ep.stats.counters.disposed(reason);
            out.push((conn, reason));
            freed = true;
        }
        // A full budget may leave due connections: keep next_due early.
        if *budget > 0 {
            self.refresh_due(idx, cfg);
        }
        if freed {
            self.room_freed(idx, cfg, out);
        }
    }

    /// Counts a connection (already out of idle and in-use counts) as gone.
    fn doom(&mut self, conn: Conn<K, C>, reason: DisposeReason, cfg: &Config, out: &mut Vec<Doomed<K, C>>) {
        let idx = conn.ep.index;
        self.total -= 1;
        conn.ep.stats.counters.disposed(reason);
        out.push((conn, reason));
        self.room_freed(idx, cfg, out);
    }

    /// Room was freed at endpoint `idx` (and globally): the endpoint's oldest
    /// waiter may create; otherwise a waiter elsewhere blocked on
    /// `total_max_size` may.
    fn room_freed(&mut self, idx: usize, cfg: &Config, out: &mut Vec<Doomed<K, C>>) {
        if self.closed {
            return;
        }
        if cfg.fill_min_idle && self.eps[idx].live() < cfg.min_idle {
            let collector = self.collector_wake.take();
            self.defer(collector);
        }
        if !self.eps[idx].waiters.is_empty() && self.eps[idx].live() < cfg.endpoint_limit() && self.room(cfg) {
            let w = self.pop_waiter(idx).expect("checked non-empty");
            self.reserve(idx);
            let wake = w.grant(Grant::Create);
            self.defer(wake);
            return;
        }
        if !self.global_waiters.is_empty() {
            self.serve_global(cfg, out);
        }
    }

    /// Serves waiters blocked on `total_max_size`, oldest first, with free
    /// global room or by evicting the idle connection with the earliest
    /// deadline on any endpoint.
    fn serve_global(&mut self, cfg: &Config, out: &mut Vec<Doomed<K, C>>) {
        let limit = cfg.endpoint_limit();
        while let Some(w) = self.global_waiters.front().cloned() {
            let j = w.ep;
            if self.eps[j].live() >= limit {
                // Its own endpoint filled up meanwhile: it now waits for a
                // hand-off there, not for global room.
                self.global_waiters.pop_front();
                w.slot.lock().in_global = false;
                continue;
            }
            if !(self.room(cfg) || self.evict_one(cfg, out)) {
                return;
            }
            let first = self.pop_waiter(j).expect("a global waiter is queued at its endpoint");
            self.reserve(j);
            let wake = first.grant(Grant::Create);
            self.defer(wake);
        }
    }

    /// Disposes the idle connection with the earliest deadline, on any
    /// endpoint; false if nothing is idle.
    fn evict_one(&mut self, cfg: &Config, out: &mut Vec<Doomed<K, C>>) -> bool {
        if self.idle == 0 {
            return false;
        }
        // (deadline or none, returned): earliest deadline first, then coldest.
        type Rank = (bool, Option<Instant>, Instant);
        let mut best: Option<(Rank, usize, bool, usize)> = None;
        for (i, ep) in self.eps.iter().enumerate() {
            let sets = [(false, &ep.core_idle), (true, &ep.extra_idle)];
            for (extra, set) in sets {
                for (pos, conn) in set.iter().enumerate() {
                    let d = conn.deadline(extra, cfg);
                    let key = (d.is_none(), d, conn.returned);
                    if best.as_ref().is_none_or(|(b, ..)| key < *b) {
                        best = Some((key, i, extra, pos));
                    }
                }
            }
        }
        let Some((_, i, extra, pos)) = best else { return false };
        let ep = &mut self.eps[i];
        let conn = if extra { ep.extra_idle.remove(pos) } else { ep.core_idle.remove(pos) };
        let conn = conn.expect("position found above");
        self.idle -= 1;
        self.total -= 1;
        conn.ep.stats.counters.disposed(DisposeReason::Evicted);
        out.push((conn, DisposeReason::Evicted));
        true
    }

    /// Wakes `close_with_timeout` callers once nothing is outstanding.
    /// A connection of endpoint `idx` is now in use.
    fn checked_out(&mut self, idx: usize) {
        let ep = &mut self.eps[idx];
        ep.in_use += 1;
        ep.peaks.in_use = ep.peaks.in_use.max(ep.in_use);
        self.in_use += 1;
        self.peaks.in_use = self.peaks.in_use.max(self.in_use);
    }

    /// A connection of endpoint `idx` is no longer in use.
    fn checked_in(&mut self, idx: usize) {
        self.eps[idx].in_use -= 1;
        self.in_use -= 1;
    }

    /// Queues a wake-up to run once the lock is released (see [`Locked`]).
    fn defer(&mut self, wake: Wake) {
        match (&self.wake_first, wake) {
            (_, Wake::None) => {}
            (Wake::None, wake) => self.wake_first = wake,
            (_, wake) => self.wake_rest.push(wake),
        }
    }

    fn after_change(&mut self) {
        if self.closed && self.total == self.idle && !self.close_watchers.is_empty() {
            let watchers = std::mem::take(&mut self.close_watchers);
            watchers.into_iter().for_each(|w| self.defer(w));
        }
    }
}

/// `floor(log2(size + 1)) + 1`.
fn auto_batch(size: usize) -> usize {
    (usize::BITS - 1 - (size + 1).leading_zeros()) as usize + 1
}

/// Shortens a lifetime by up to 2.5%, pseudo-randomly per connection.
fn jittered(life: Duration, seed: u64, on: bool) -> Duration {
    if !on {
        return life;
    }
    // splitmix64: cheap, stateless, good enough to spread expiries.
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    let fraction = (z % 1000) as f64 / 1000.0 * 0.025;
    life.mul_f64(1.0 - fraction)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_batch_matches_formula() {
        assert_eq!(auto_batch(0), 1);
        assert_eq!(auto_batch(1), 2);
        assert_eq!(auto_batch(2), 2);
        assert_eq!(auto_batch(3), 3);
        assert_eq!(auto_batch(7), 4);
        assert_eq!(auto_batch(10), 4);
    }

    #[test]
    fn jitter_stays_within_two_and_a_half_percent() {
        let life = Duration::from_secs(1000);
        let mut seen_shorter = false;
        for seed in 0..200 {
            let j = jittered(life, seed, true);
            assert!(j <= life && j >= life.mul_f64(0.975));
            seen_shorter |= j < life;
        }
        assert!(seen_shorter);
        assert_eq!(jittered(life, 7, false), life);
    }
}
