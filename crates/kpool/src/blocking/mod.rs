//! The blocking (thread) front-end: the same core, rules and settings as the
//! async [`Pool`](crate::Pool), for code without an async runtime.
//!
//! ```
//! use kpool::blocking::{Manager, Pool};
//!
//! struct Numbers;
//!
//! impl Manager for Numbers {
//!     type Endpoint = u16;
//!     type Connection = Vec<u16>;
//!     type Error = std::io::Error;
//!
//!     fn create(&self, port: &u16) -> Result<Vec<u16>, std::io::Error> {
//!         Ok(vec![*port])
//!     }
//! }
//!
//! let pool = Pool::builder(Numbers).max_size(2).build().unwrap();
//! let a = pool.get_for(&5432).unwrap();
//! let b = pool.get_for(&6379).unwrap();
//! assert_eq!((a[0], b[0]), (5432, 6379));
//! assert_eq!(pool.status().pool.in_use, 2);
//! ```
//!
//! # How blocking calls are bounded
//!
//! A thread cannot be interrupted, so the pool keeps manager calls away from
//! where a hang would hurt:
//! - `create` runs on a short-lived helper thread whenever the acquire has a
//!   deadline (or `create_timeout` is set); the caller waits for it with the
//!   deadline, and a create that finishes too late is disposed. Without any
//!   deadline it runs on the caller's thread.
//! - `dispose` runs on one disposer thread per pool, so returning a guard
//!   never blocks on it; `dispose_timeout` is not enforced in this pool, and
//!   a `dispose` that never returns holds up the disposals queued after it
//!   (they are counted by `close_timeout`, never lost).
//! - `check_alive` and the hooks run on the caller's thread: give the
//!   connection its own I/O timeouts (for sockets: read/write timeouts).

use std::fmt::Debug;
use std::ops::{Deref, DerefMut};
use std::panic::{AssertUnwindSafe, Location, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

/// Times a waiting thread yields and looks for a hand-off before it parks.
const SPINS: usize = 16;

use crate::builder::{after_create_failure, config_setters, finish, unit_endpoint};
use crate::core::{Conn, ConnBody, Core, Doomed, Grant, Step, Wake};
use crate::error::{Error, ErrorKind, Phase, panic_message};
use crate::leak::LeakTracker;
use crate::metrics::{CounterSnapshot, DisposeReason, bump};
use crate::{Collection, Config, ConfigError, Endpoint, PoolStatus, Status};

/// Makes, checks and disposes connections for the blocking [`Pool`]; the same
/// shape as the async [`Manager`](crate::Manager), with plain functions.
pub trait Manager: Send + Sync + 'static {
    /// The key connections are pooled by; `()` for a single-endpoint pool.
    type Endpoint: Endpoint;
    /// The pooled connection.
    type Connection: Send + 'static;
    /// The backend's error.
    type Error: Debug + Send + 'static;

    /// Opens a new connection to `endpoint`.
    ///
    /// # Errors
    ///
    /// The backend's error; the acquire retries or returns it.
    fn create(&self, endpoint: &Self::Endpoint) -> Result<Self::Connection, Self::Error>;

    /// Closes a connection the pool is done with. Defaults to dropping it.
    ///
    /// # Errors
    ///
    /// Logged and counted, never returned to a caller.
    fn dispose(&self, endpoint: &Self::Endpoint, conn: Self::Connection) -> Result<(), Self::Error> {
        let _ = endpoint;
        drop(conn);
        Ok(())
    }

    /// Checks a reused connection: `Ok(false)` or `Err` means dead.
    /// Defaults to alive.
    ///
    /// # Errors
    ///
    /// The caller of the acquire gets it; the connection is disposed.
    fn check_alive(&self, endpoint: &Self::Endpoint, conn: &mut Self::Connection) -> Result<bool, Self::Error> {
        let _ = (endpoint, conn);
        Ok(true)
    }

    /// Cheap test on return: `true` disposes the connection. Defaults to `false`.
    fn is_broken(&self, endpoint: &Self::Endpoint, conn: &Self::Connection) -> bool {
        let _ = (endpoint, conn);
        false
    }

    /// Runs just before a connection is handed out.
    ///
    /// # Errors
    ///
    /// The caller gets it; the connection goes back idle.
    fn on_acquire(&self, endpoint: &Self::Endpoint, conn: &mut Self::Connection) -> Result<(), Self::Error> {
        let _ = (endpoint, conn);
        Ok(())
    }

    /// Runs when a connection comes back (on the returning thread).
    ///
    /// # Errors
    ///
    /// Logged and counted; the connection stays pooled.
    fn on_release(&self, endpoint: &Self::Endpoint, conn: &mut Self::Connection) -> Result<(), Self::Error> {
        let _ = (endpoint, conn);
        Ok(())
    }

    /// Told about a connection found dead, just before it is disposed.
    fn on_dead(&self, endpoint: &Self::Endpoint, conn: &mut Self::Connection) {
        let _ = (endpoint, conn);
    }

    /// Whether a `create` error may go away on retry; see the async
    /// [`Manager::is_transient`](crate::Manager::is_transient). Defaults to `true`.
    fn is_transient(&self, error: &Self::Error) -> bool {
        let _ = error;
        true
    }
}

type Ep<M> = <M as Manager>::Endpoint;
type Connection<M> = <M as Manager>::Connection;
type MError<M> = <M as Manager>::Error;
type CoreConn<M> = Conn<Ep<M>, Connection<M>>;
type DoomedConn<M> = Doomed<Ep<M>, Connection<M>>;

/// A keyed pool of connections for threads. Cheap to clone (an `Arc`).
pub struct Pool<M: Manager> {
    inner: Arc<Inner<M>>,
}

struct Inner<M: Manager> {
    core: Core<Ep<M>, Connection<M>>,
    manager: Arc<M>,
    default: Option<(Ep<M>, usize)>,
    disposer: parking_lot::Mutex<Option<mpsc::Sender<DoomedConn<M>>>>,
    /// Disposals queued or running.
    disposing: Arc<AtomicUsize>,
    /// Checkouts watched for leaks (with `leak_detection`).
    leaks: Option<LeakTracker>,
}

impl<M: Manager> Clone for Pool<M> {
    fn clone(&self) -> Self {
        Self { inner: self.inner.clone() }
    }
}

impl<M: Manager> Debug for Pool<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("blocking::Pool").field("status", &self.inner.core.status().pool).finish()
    }
}

/// Builds a blocking [`Pool`]. Every setter says its default.
#[must_use]
pub struct Builder<M: Manager> {
    manager: M,
    config: Config,
    endpoint: Option<Ep<M>>,
}

impl<M: Manager> Builder<M> {
    config_setters!();

    /// The endpoint [`Pool::get`] uses. Defaults to `()` for managers keyed
    /// by `()`, and to none otherwise.
    pub fn endpoint(mut self, endpoint: Ep<M>) -> Self {
        self.endpoint = Some(endpoint);
        self
    }

    /// Builds the pool; with background collection, starts the collector
    /// thread.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] when settings contradict each other.
    pub fn build(self) -> Result<Pool<M>, ConfigError> {
        let config = finish(self.config)?;
        let leaks = config.leak_detection.map(LeakTracker::new);
        let core = Core::new(config);
        let default = self.endpoint.or_else(unit_endpoint).map(|k| {
            let idx = core.endpoint_index(&k);
            (k, idx)
        });
        let inner = Arc::new(Inner {
            core,
            manager: Arc::new(self.manager),
            default,
            disposer: parking_lot::Mutex::new(None),
            disposing: Arc::new(AtomicUsize::new(0)),
            leaks,
        });
        if inner.core.config.collection == Collection::Background {
            let weak = Arc::downgrade(&inner);
            std::thread::Builder::new()
                .name("kpool-collector".into())
                .spawn(move || collector(weak))
                .expect("spawning the collector thread");
        }
        Ok(Pool { inner })
    }

    /// Builds the pool and creates `min_idle` connections for the default
    /// endpoint, failing fast if the backend cannot be reached.
    ///
    /// # Errors
    ///
    /// A configuration error, or the first error of creating a connection.
    pub fn build_warm(self) -> Result<Pool<M>, Error<MError<M>>> {
        let pool = self.build().map_err(Error::config)?;
        if let Some((key, _)) = &pool.inner.default {
            pool.warm(key)?;
        }
        Ok(pool)
    }
}

impl<M: Manager> Pool<M> {
    /// Starts building a pool around `manager`.
    pub fn builder(manager: M) -> Builder<M> {
        Builder { manager, config: Config::default(), endpoint: None }
    }

    /// Acquires a connection to the default endpoint, waiting up to
    /// `acquire_timeout`.
    ///
    /// # Errors
    ///
    /// As the async [`Pool::get`](crate::Pool::get).
    #[track_caller]
    pub fn get(&self) -> Result<Pooled<M>, Error<MError<M>>> {
        self.inner.acquire(None, self.inner.core.config.acquire_timeout, Location::caller())
    }

    /// [`get`](Self::get) with its own deadline.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    #[track_caller]
    pub fn get_timeout(&self, timeout: Duration) -> Result<Pooled<M>, Error<MError<M>>> {
        self.inner.acquire(None, Some(timeout), Location::caller())
    }

    /// Acquires a connection to `endpoint`.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    #[track_caller]
    pub fn get_for(&self, endpoint: &Ep<M>) -> Result<Pooled<M>, Error<MError<M>>> {
        self.inner.acquire(Some(endpoint), self.inner.core.config.acquire_timeout, Location::caller())
    }

    /// [`get_for`](Self::get_for) with its own deadline (`None`: forever).
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    #[track_caller]
    pub fn get_for_timeout(&self, endpoint: &Ep<M>, timeout: Option<Duration>) -> Result<Pooled<M>, Error<MError<M>>> {
        self.inner.acquire(Some(endpoint), timeout, Location::caller())
    }

    /// Creates connections for `endpoint` until it holds `min_idle`.
    ///
    /// # Errors
    ///
    /// The first failure of `create`, or `Closed`.
    pub fn warm(&self, endpoint: &Ep<M>) -> Result<usize, Error<MError<M>>> {
        let inner = &self.inner;
        let idx = inner.core.endpoint_index(endpoint);
        let mut made = 0;
        while let Some(idx) = inner.core.reserve_fill(idx) {
            let conn = inner.create_reserved(idx, endpoint, None)?;
            inner.give_back(conn, false);
            made += 1;
        }
        if inner.core.is_closed() {
            return Err(Error::closed());
        }
        Ok(made)
    }

    /// Checks the core's invariants (counts add up, limits hold, nobody
    /// waits while a connection idles) and panics if one is broken. For tests.
    #[doc(hidden)]
    pub fn assert_invariants(&self) {
        self.inner.core.debug_check();
    }

    /// Occupancy of the pool and of each endpoint.
    pub fn status(&self) -> PoolStatus<Ep<M>> {
        self.inner.core.status()
    }

    /// The pool's counters.
    pub fn counters(&self) -> CounterSnapshot {
        self.inner.core.counters()
    }

    /// Gauges, counters and histograms of the pool and each endpoint.
    pub fn metrics(&self) -> crate::MetricsSnapshot {
        self.inner.core.metrics()
    }

    /// Zeroes the counters and histograms.
    pub fn reset_metrics(&self) {
        self.inner.core.reset_metrics();
    }

    /// The latest leak reports (with `leak_detection`); see the async
    /// [`Pool::leak_reports`](crate::Pool::leak_reports).
    pub fn leak_reports(&self) -> Vec<crate::LeakReport> {
        self.inner.leaks.as_ref().map(LeakTracker::reports).unwrap_or_default()
    }

    /// The settings the pool runs with.
    pub fn config(&self) -> &Config {
        &self.inner.core.config
    }

    /// The manager.
    pub fn manager(&self) -> &M {
        &self.inner.manager
    }

    /// Connections checked out or being created.
    pub(crate) fn outstanding(&self) -> usize {
        self.inner.core.outstanding(None)
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.inner.core.is_closed()
    }

    /// Closes the pool (see the async [`Pool::close`](crate::Pool::close)).
    pub fn close(&self) {
        let mut out = Vec::new();
        if self.inner.core.close(&mut out) {
            self.inner.dispose_all(out);
        }
    }

    /// Closes the pool, then waits up to `timeout` for checked-out
    /// connections to come back and for disposals to finish.
    pub fn close_timeout(&self, timeout: Duration) -> crate::CloseReport {
        self.close();
        let deadline = Instant::now() + timeout;
        loop {
            let out = self.inner.core.outstanding(Some(Wake::Thread(std::thread::current())));
            let disposing = self.inner.disposing.load(Ordering::Acquire);
            let now = Instant::now();
            if (out == 0 && disposing == 0) || now >= deadline {
                return crate::CloseReport { still_out: out, disposing };
            }
            // Disposals finish on the disposer thread without waking us:
            // poll them at a short interval.
            std::thread::park_timeout((deadline - now).min(Duration::from_millis(5)));
        }
    }
}

/// A pooled connection for threads; see the async [`Pooled`](crate::Pooled).
#[must_use = "dropping the guard returns the connection at once"]
pub struct Pooled<M: Manager> {
    conn: Option<CoreConn<M>>,
    pool: Arc<Inner<M>>,
    broken: bool,
    leak: Option<usize>,
}

impl<M: Manager> Pooled<M> {
    fn conn(this: &Self) -> &CoreConn<M> {
        this.conn.as_ref().expect("present until drop")
    }

    /// Takes the connection out of the pool for good. Its room is freed.
    pub fn take(mut this: Self) -> Connection<M> {
        let conn = this.conn.take().expect("present until drop");
        this.pool.checkin(&conn, this.leak.take());
        let mut out = Vec::new();
        let raw = this.pool.core.detach(conn, &mut out);
        this.pool.dispose_all(out);
        raw
    }

    /// Marks the connection broken: it is disposed instead of reused.
    pub fn mark_broken(this: &mut Self) {
        this.broken = true;
    }

    /// The endpoint the connection belongs to.
    pub fn endpoint(this: &Self) -> &Ep<M> {
        &Self::conn(this).ep.key
    }

    /// How long ago the connection was created.
    pub fn age(this: &Self) -> Duration {
        Self::conn(this).created.elapsed()
    }

    /// How many times the connection was handed out, this time included.
    pub fn use_count(this: &Self) -> u64 {
        Self::conn(this).uses
    }

    /// Returns the connection now and reports the `on_release` hook's error.
    ///
    /// # Errors
    ///
    /// The hook's error; the connection still goes back to the pool.
    pub fn release(mut this: Self) -> Result<(), Error<MError<M>>> {
        let mut conn = this.conn.take().expect("present until drop");
        this.pool.checkin(&conn, this.leak.take());
        let (result, broken) = this.pool.run_on_release(&mut conn);
        conn.suspect |= result.is_err();
        let broken = this.broken || broken || this.pool.is_broken(&conn);
        this.pool.give_back(conn, broken);
        result
    }
}

impl<M: Manager> Deref for Pooled<M> {
    type Target = Connection<M>;

    fn deref(&self) -> &Connection<M> {
        &Self::conn(self).raw
    }
}

impl<M: Manager> DerefMut for Pooled<M> {
    fn deref_mut(&mut self) -> &mut Connection<M> {
        &mut self.conn.as_mut().expect("present until drop").raw
    }
}

impl<M: Manager> Drop for Pooled<M> {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else { return };
        let now = self.pool.checkin(&conn, self.leak.take());
        let mut broken = self.broken;
        if !broken {
            let (result, hook_broke) = self.pool.run_on_release(&mut conn);
            conn.suspect |= result.is_err();
            broken = hook_broke || self.pool.is_broken(&conn);
        }
        let mut out = Vec::new();
        self.pool.core.release(conn, broken, now, &mut out);
        self.pool.dispose_all(out);
    }
}

impl<M: Manager> Debug for Pooled<M>
where
    Connection<M>: Debug,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pooled").field("endpoint", Self::endpoint(self)).field("conn", &**self).finish()
    }
}

/// Returns a connection being prepared to the pool (as broken: its check or
/// hook panicked midway) if the acquire unwinds.
struct Holder<'a, M: Manager> {
    inner: &'a Arc<Inner<M>>,
    conn: Option<CoreConn<M>>,
}

impl<M: Manager> Drop for Holder<'_, M> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.inner.give_back(conn, true);
        }
    }
}

enum Prepared<E> {
    Fail(Error<E>),
    Dead,
}

/// Passes a helper thread's `create` result to the waiting caller or, once
/// the caller gave up, back to the helper to dispose. (A channel cannot: a
/// result sent just before the caller's timeout is dropped with the
/// receiver, and the connection is never disposed.)
struct Handoff<T> {
    /// The result, and whether the caller gave up.
    slot: parking_lot::Mutex<(Option<T>, bool)>,
    ready: parking_lot::Condvar,
}

impl<T> Default for Handoff<T> {
    fn default() -> Self {
        Self { slot: parking_lot::Mutex::new((None, false)), ready: parking_lot::Condvar::new() }
    }
}

impl<T> Handoff<T> {
    /// The helper's side: `Err` hands the value back if the caller is gone.
    fn put(&self, value: T) -> Result<(), T> {
        let mut slot = self.slot.lock();
        if slot.1 {
            return Err(value);
        }
        slot.0 = Some(value);
        self.ready.notify_one();
        Ok(())
    }

    /// The caller's side: the value, or `None` (and gives up) at `deadline`.
    fn take(&self, deadline: Instant) -> Option<T> {
        let mut slot = self.slot.lock();
        while slot.0.is_none() && !self.ready.wait_until(&mut slot, deadline).timed_out() {}
        let value = slot.0.take();
        slot.1 = value.is_none();
        value
    }
}

/// Runs a manager call, catching panics.
fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| panic_message(&*p))
}

impl<M: Manager> Inner<M> {
    fn acquire(
        self: &Arc<Self>,
        key: Option<&Ep<M>>,
        timeout: Option<Duration>,
        at: &'static Location<'static>,
    ) -> Result<Pooled<M>, Error<MError<M>>> {
        let result = self.acquire_inner(key, timeout, at);
        match &result {
            Ok(guard) => Pooled::conn(guard).ep.stats.acquired(),
            Err(e) => {
                if let Some(k) = key.or(self.default.as_ref().map(|(k, _)| k)) {
                    self.core.record_failure(k, e.is_timeout());
                }
            }
        }
        result
    }

    fn acquire_inner(
        self: &Arc<Self>,
        key: Option<&Ep<M>>,
        timeout: Option<Duration>,
        at: &'static Location<'static>,
    ) -> Result<Pooled<M>, Error<MError<M>>> {
        let (key, default_idx) = match key {
            Some(k) => (k, None),
            None => match &self.default {
                Some((k, idx)) => (k, Some(*idx)),
                None => return Err(Error::new(ErrorKind::NoEndpoint)),
            },
        };
        let start = Instant::now();
        let deadline = timeout.map(|t| start + t);
        let mut now = start;
        let mut last_err = None;
        let mut failures = 0u32;
        // Served at once from an idle connection with no I/O: a zero wait.
        let mut immediate = true;
        loop {
            let mut out = Vec::new();
            let step = match default_idx {
                Some(idx) => self.core.acquire_index(idx, now, None, &mut out),
                None => self.core.acquire(key, now, None, &mut out),
            };
            self.dispose_all(out);
            if !matches!(step, Step::Ready(_)) {
                immediate = false;
            }
            let (conn, fresh) = match step {
                Step::Ready(conn) => (conn, false),
                Step::Closed => return Err(Error::closed()),
                Step::Create(idx) => match self.create_step(idx, key, deadline, &mut last_err, &mut failures, start)? {
                    Some(conn) => (conn, true),
                    None => {
                        now = Instant::now();
                        continue;
                    }
                },
                Step::Wait(waiter) => {
                    // Look again a few times before parking: a hand-off often
                    // comes within microseconds, and one taken before this
                    // thread registers to be unparked costs neither thread a
                    // futex call.
                    let mut spun = (0..SPINS).find_map(|_| {
                        std::thread::yield_now();
                        self.core.poll_grant(&waiter, |_| None)
                    });
                    let grant = loop {
                        if let Some(g) = spun.take() {
                            break Ok(g);
                        }
                        let me = std::thread::current();
                        if let Some(g) = self.core.poll_grant(&waiter, |_| Some(Wake::Thread(me))) {
                            break Ok(g);
                        }
                        match deadline {
                            None => std::thread::park(),
                            Some(d) => {
                                let left = d.saturating_duration_since(Instant::now());
                                if left.is_zero() {
                                    // The status as this caller saw it, then
                                    // give back a grant that raced with the deadline.
                                    let status = self.status_of(key);
                                    let mut out = Vec::new();
                                    self.core.cancel(&waiter, Instant::now(), &mut out);
                                    self.dispose_all(out);
                                    break Err(status);
                                }
                                std::thread::park_timeout(left);
                            }
                        }
                    };
                    now = Instant::now();
                    match grant {
                        Err(status) => return Err(Error::timeout(Phase::Wait, last_err, now - start, status)),
                        Ok(Grant::Closed) => return Err(Error::closed()),
                        // Not given: this pool's waits carry no core deadline.
                        Ok(Grant::TimedOut(status)) => {
                            return Err(Error::timeout(Phase::Wait, last_err, now - start, status));
                        }
                        Ok(Grant::Conn(conn)) => {
                            if self.core.is_closed() {
                                self.give_back(conn, false);
                                return Err(Error::closed());
                            }
                            (conn, false)
                        }
                        Ok(Grant::Create) => {
                            let idx = default_idx.unwrap_or_else(|| self.core.endpoint_index(key));
                            match self.create_step(idx, key, deadline, &mut last_err, &mut failures, start)? {
                                Some(conn) => (conn, true),
                                None => {
                                    now = Instant::now();
                                    continue;
                                }
                            }
                        }
                    }
                }
            };
            let mut holder = Holder { inner: self, conn: Some(conn) };
            match self.prepare(&mut holder, fresh, now) {
                Ok(io) => {
                    let mut conn = holder.conn.take().expect("present after prepare");
                    conn.uses += 1;
                    let waited = if immediate && !io { Duration::ZERO } else { start.elapsed() };
                    conn.out_since = start + waited;
                    conn.ep.stats.hist.acquire.record(waited);
                    let leak = self
                        .leaks
                        .as_ref()
                        .map(|t| t.checkout(conn.out_since, at, crate::metrics::label(&conn.ep.key), conn.ep.clone()));
                    return Ok(Pooled { conn: Some(conn), pool: self.clone(), broken: false, leak });
                }
                Err(Prepared::Fail(e)) => return Err(e),
                Err(Prepared::Dead) => {
                    immediate = false;
                    now = Instant::now();
                }
            }
        }
    }

    fn prepare(
        self: &Arc<Self>,
        holder: &mut Holder<'_, M>,
        fresh: bool,
        now: Instant,
    ) -> Result<bool, Prepared<MError<M>>> {
        let cfg = &self.core.config;
        let conn = holder.conn.as_mut().expect("present");
        // A connection handed off to a waiter may have expired while the
        // thread was being woken: never hand it out.
        if !fresh && conn.expires.is_some_and(|e| now >= e) {
            let conn = holder.conn.take().expect("present");
            let mut out = Vec::new();
            self.core.discard(conn, DisposeReason::Lifetime, &mut out);
            self.dispose_all(out);
            return Err(Prepared::Dead);
        }
        // Outside the bypass window, or always after `on_release` failed.
        let check = conn.suspect
            || (!fresh
                && cfg.validate_on_acquire
                && now.saturating_duration_since(conn.returned) >= cfg.validation_bypass);
        let ep = conn.ep.clone();
        if check {
            let fail = match guarded(|| self.manager.check_alive(&ep.key, &mut conn.raw)) {
                Ok(Ok(true)) => {
                    conn.suspect = false;
                    None
                }
                Ok(Ok(false)) => Some(Prepared::Dead),
                Ok(Err(e)) => Some(Prepared::Fail(Error::backend_error(Phase::Check, e))),
                Err(p) => Some(Prepared::Fail(Error::panicked(Phase::Check, p))),
            };
            if let Some(fail) = fail {
                bump(&ep.stats.counters.dead_found);
                let mut conn = holder.conn.take().expect("present");
                let _ = guarded(|| self.manager.on_dead(&ep.key, &mut conn.raw));
                let mut out = Vec::new();
                self.core.discard(conn, DisposeReason::Dead, &mut out);
                self.dispose_all(out);
                return Err(fail);
            }
        }
        let conn = holder.conn.as_mut().expect("present");
        match guarded(|| self.manager.on_acquire(&ep.key, &mut conn.raw)) {
            Ok(Ok(())) => Ok(check),
            Ok(Err(e)) => {
                let conn = holder.conn.take().expect("present");
                self.give_back(conn, false);
                Err(Prepared::Fail(Error::backend_error(Phase::OnAcquire, e)))
            }
            Err(p) => Err(Prepared::Fail(Error::panicked(Phase::OnAcquire, p))),
        }
    }

    fn create_step(
        self: &Arc<Self>,
        idx: usize,
        key: &Ep<M>,
        deadline: Option<Instant>,
        last_err: &mut Option<MError<M>>,
        failures: &mut u32,
        start: Instant,
    ) -> Result<Option<CoreConn<M>>, Error<MError<M>>> {
        match self.create_reserved(idx, key, deadline) {
            Ok(conn) => Ok(Some(conn)),
            Err(e) => {
                let deadline_hit = e.is_timeout() && deadline.is_some_and(|d| Instant::now() >= d);
                let timeout = |last| Error::timeout(Phase::Create, last, start.elapsed(), self.status_of(key));
                let transient = |b: &MError<M>| self.manager.is_transient(b);
                let config = &self.core.config;
                let delay = after_create_failure(e, deadline_hit, transient, config, last_err, failures, timeout)?;
                let wake_at = Instant::now() + delay;
                if let Some(d) = deadline.filter(|d| wake_at >= *d) {
                    std::thread::sleep(d.saturating_duration_since(Instant::now()));
                    return Err(Error::timeout(Phase::Create, last_err.take(), start.elapsed(), self.status_of(key)));
                }
                std::thread::sleep(wake_at.saturating_duration_since(Instant::now()));
                Ok(None)
            }
        }
    }

    /// Runs `create` for a reserved slot: on a helper thread when there is a
    /// deadline (see the module docs), else inline.
    fn create_reserved(
        self: &Arc<Self>,
        idx: usize,
        key: &Ep<M>,
        deadline: Option<Instant>,
    ) -> Result<CoreConn<M>, Error<MError<M>>> {
        let cfg = &self.core.config;
        let limit = match (deadline, cfg.create_timeout) {
            (Some(d), Some(t)) => Some(d.min(Instant::now() + t)),
            (d, t) => d.or_else(|| t.map(|t| Instant::now() + t)),
        };
        let started = Instant::now();
        let outcome = match limit {
            None => Some(guarded(|| self.manager.create(key))),
            Some(limit) => {
                let handoff = Arc::new(Handoff::default());
                let manager = self.manager.clone();
                let k = key.clone();
                let theirs = handoff.clone();
                let spawned = std::thread::Builder::new().name("kpool-create".into()).spawn(move || {
                    let res = guarded(|| manager.create(&k));
                    if let Err(Ok(Ok(conn))) = theirs.put(res) {
                        // Nobody waits any more: the connection is surplus.
                        let _ = guarded(|| manager.dispose(&k, conn));
                    }
                });
                match spawned {
                    Ok(_) => handoff.take(limit),
                    // No thread to spare: create inline.
                    Err(_) => Some(guarded(|| self.manager.create(key))),
                }
            }
        };
        let fail = |e: Error<MError<M>>| {
            let mut out = Vec::new();
            self.core.create_failed(idx, &mut out);
            self.dispose_all(out);
            Err(e)
        };
        match outcome {
            Some(Ok(Ok(raw))) => match self.core.created(idx, raw, Instant::now()) {
                Ok(conn) => {
                    conn.ep.stats.hist.creation.record(started.elapsed());
                    Ok(conn)
                }
                Err(raw) => {
                    let _ = guarded(|| self.manager.dispose(key, raw));
                    Err(Error::closed())
                }
            },
            Some(Ok(Err(e))) => {
                tracing::debug!(endpoint = ?key, error = ?e, "create failed");
                fail(Error::backend_error(Phase::Create, e))
            }
            Some(Err(p)) => fail(Error::panicked(Phase::Create, p)),
            None => fail(Error::timeout(Phase::Create, None, started.elapsed(), Status::default())),
        }
    }

    /// Runs `on_release`; returns its result and whether it panicked (then the
    /// connection is not trusted any more).
    fn run_on_release(&self, conn: &mut CoreConn<M>) -> (Result<(), Error<MError<M>>>, bool) {
        let ep = conn.ep.clone();
        let (err, broken) = match guarded(|| self.manager.on_release(&ep.key, &mut conn.raw)) {
            Ok(Ok(())) => return (Ok(()), false),
            Ok(Err(e)) => (Error::backend_error(Phase::OnRelease, e), false),
            Err(p) => (Error::panicked(Phase::OnRelease, p), true),
        };
        bump(&ep.stats.counters.release_errors);
        tracing::warn!(endpoint = ?ep.key, error = %err, "on_release failed");
        (Err(err), broken)
    }

    /// A guard lets go of its connection: usage time, leak watch.
    fn checkin(&self, conn: &CoreConn<M>, leak: Option<usize>) -> Instant {
        let now = Instant::now();
        conn.ep.stats.hist.usage.record(now.saturating_duration_since(conn.out_since));
        if let (Some(tracker), Some(slot)) = (&self.leaks, leak) {
            tracker.checkin(slot, now);
        }
        now
    }

    /// `Manager::is_broken`, a panic counting as broken.
    fn is_broken(&self, conn: &CoreConn<M>) -> bool {
        catch_unwind(AssertUnwindSafe(|| self.manager.is_broken(&conn.ep.key, &conn.raw))).unwrap_or(true)
    }

    fn give_back(&self, conn: CoreConn<M>, broken: bool) {
        let mut out = Vec::new();
        self.core.release(conn, broken, Instant::now(), &mut out);
        self.dispose_all(out);
    }

    fn status_of(&self, key: &Ep<M>) -> Status {
        let idx = self.core.endpoint_index(key);
        self.core.endpoint_status(idx)
    }

    /// Hands connections to the disposer thread (started on first use).
    #[inline]
    fn dispose_all(&self, out: Vec<DoomedConn<M>>) {
        // The common case, nothing to dispose, stays inline and cheap.
        if !out.is_empty() {
            self.send_disposals(out);
        }
    }

    #[inline(never)]
    fn send_disposals(&self, out: Vec<DoomedConn<M>>) {
        let mut disposer = self.disposer.lock();
        let tx = disposer.get_or_insert_with(|| {
            let (tx, rx) = mpsc::channel::<DoomedConn<M>>();
            let manager = self.manager.clone();
            let disposing = self.disposing.clone();
            let spawned = std::thread::Builder::new().name("kpool-dispose".into()).spawn(move || {
                for (conn, reason) in rx {
                    let ConnBody { ep, raw, .. } = *conn;
                    let key = &ep.key;
                    let problem = match guarded(|| manager.dispose(key, raw)) {
                        Ok(Ok(())) => None,
                        Ok(Err(e)) => Some(format!("{e:?}")),
                        Err(p) => Some(format!("panicked: {p}")),
                    };
                    if let Some(problem) = problem {
                        bump(&ep.stats.counters.dispose_errors);
                        tracing::warn!(endpoint = ?key, reason = reason.as_str(), problem, "dispose failed");
                    }
                    disposing.fetch_sub(1, Ordering::AcqRel);
                }
            });
            if spawned.is_err() {
                tracing::warn!("could not start the dispose thread; connections will be dropped");
            }
            tx
        });
        for doomed in out {
            self.disposing.fetch_add(1, Ordering::AcqRel);
            if let Err(mpsc::SendError(doomed)) = tx.send(doomed) {
                self.disposing.fetch_sub(1, Ordering::AcqRel);
                drop(doomed);
            }
        }
    }
}

impl<M: Manager> Drop for Inner<M> {
    fn drop(&mut self) {
        self.core.wake_tasks();
    }
}

/// The collector thread: see [`Collection::Background`].
fn collector<M: Manager>(weak: std::sync::Weak<Inner<M>>) {
    loop {
        let next = {
            let Some(inner) = weak.upgrade() else { return };
            if inner.core.is_closed() {
                return;
            }
            inner.core.set_collector_wake(Wake::Thread(std::thread::current()));
            let mut out = Vec::new();
            let now = Instant::now();
            let (creates, mut next) = inner.core.collect(now, None, inner.core.config.fill_min_idle, &mut out);
            if let Some(tracker) = &inner.leaks {
                let at = tracker.scan(now);
                next = Some(next.map_or(at, |n| n.min(at)));
            }
            inner.dispose_all(out);
            for (idx, key) in creates {
                if let Ok(conn) = inner.create_reserved(idx, &key, None) {
                    inner.give_back(conn, false);
                }
            }
            next
        };
        let cap = Duration::from_secs(60);
        let sleep = next.map_or(cap, |n| n.saturating_duration_since(Instant::now()).min(cap));
        std::thread::park_timeout(sleep);
    }
}
