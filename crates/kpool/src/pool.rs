//! The async (tokio) front-end of the pool.
//!
//! It drives [`crate::core`]: one short lock to take, queue or reserve, then
//! all I/O (create, check, hooks, dispose) outside the lock. The uncontended
//! path — an idle connection, nobody waiting — is one lock, one clock read and
//! one pop; it allocates nothing and spawns nothing. Tasks are spawned only to
//! dispose connections the pool let go of (a guard's `Drop` cannot await).
//!
//! Perf note: tokio's `Semaphore` charges the task's cooperative budget after
//! granting a permit, so a task can be forced to yield while holding a
//! connection, and every other acquire then queues behind it (a convoy seen in
//! deadpool). This pool consults the budget *before* taking a connection: a
//! task out of budget yields first and takes its connection afterwards.

use std::future::{Future, poll_fn};
use std::ops::{Deref, DerefMut};
use std::panic::{AssertUnwindSafe, Location};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures_util::FutureExt;
use tokio::time::Instant;

use crate::builder::{after_create_failure, config_setters, finish, unit_endpoint};
use crate::core::{Conn, ConnBody, Core, Doomed, EpInfo, Grant, Step, Waiter, Wake};
use crate::error::{Error, ErrorKind, Phase, panic_message};
use crate::leak::{LeakReport, LeakTracker};
use crate::metrics::{self, CounterSnapshot, DisposeReason, MetricsSnapshot, bump};
use crate::{Collection, Config, ConfigError, Manager, PoolStatus, Status};

type Endpoint<M> = <M as Manager>::Endpoint;
type Connection<M> = <M as Manager>::Connection;
type MError<M> = <M as Manager>::Error;
type CoreConn<M> = Conn<Endpoint<M>, Connection<M>>;

/// A keyed pool of connections for async tasks. Cheap to clone (an `Arc`).
///
/// Build one with [`Pool::builder`]. See the [crate docs](crate) for an
/// example and the rules it follows.
///
/// Its background tasks (the one timer that times out every queued acquire,
/// the optional collector, disposals) run on a tokio runtime: the timer on
/// that of the first acquire that waits. Use a pool from one runtime at a
/// time: from one runtime after another (a test suite's) works, as a timer
/// whose runtime shuts down is restarted by the next waiter; from two
/// runtimes at once, acquires queued on one time out only while the other is
/// driven.
pub struct Pool<M: Manager> {
    inner: Arc<Inner<M>>,
}

pub(crate) struct Inner<M: Manager> {
    core: Core<Endpoint<M>, Connection<M>>,
    manager: M,
    default: Option<(Endpoint<M>, usize)>,
    /// Disposals spawned and not finished yet.
    disposing: AtomicUsize,
    /// Checkouts watched for leaks (with `leak_detection`).
    leaks: Option<LeakTracker>,
    /// Whether the hooks finish on their first poll (enables the fast path).
    hooks: HookKnowledge,
    dispose_waker: parking_lot::Mutex<Option<Waker>>,
    /// The wait timer task ([`wait_timer`]) is running.
    timer_running: AtomicBool,
}

impl<M: Manager> Clone for Pool<M> {
    fn clone(&self) -> Self {
        Self { inner: self.inner.clone() }
    }
}

impl<M: Manager> std::fmt::Debug for Pool<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").field("status", &self.inner.core.status().pool).finish()
    }
}

/// Builds a [`Pool`]. Every setter says its default.
#[must_use]
pub struct Builder<M: Manager> {
    manager: M,
    config: Config,
    endpoint: Option<Endpoint<M>>,
}

impl<M: Manager> Builder<M> {
    config_setters!();

    /// The endpoint [`Pool::get`] uses. Defaults to `()` for managers keyed by
    /// `()`, and to none otherwise (then `get` fails; use `get_for`).
    pub fn endpoint(mut self, endpoint: Endpoint<M>) -> Self {
        self.endpoint = Some(endpoint);
        self
    }

    /// Builds the pool. With [`Collection::Background`] (or
    /// `fill_min_idle`), the collector task is spawned on the current tokio
    /// runtime; without a runtime, the pool falls back to inline collection.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] when settings contradict each other.
    pub fn build(self) -> Result<Pool<M>, ConfigError> {
        let config = finish(self.config)?;
        let config_leaks = config.leak_detection.map(LeakTracker::new);
        let core = Core::new(config);
        let default = self.endpoint.or_else(unit_endpoint).map(|k| {
            let idx = core.endpoint_index(&k);
            (k, idx)
        });
        let inner = Arc::new(Inner {
            core,
            manager: self.manager,
            default,
            disposing: AtomicUsize::new(0),
            leaks: config_leaks,
            hooks: HookKnowledge::default(),
            dispose_waker: parking_lot::Mutex::new(None),
            timer_running: AtomicBool::new(false),
        });
        if inner.core.config.collection == Collection::Background {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(collector(Arc::downgrade(&inner)));
            }
        }
        Ok(Pool { inner })
    }

    /// Builds the pool and creates `min_idle` connections for the default
    /// endpoint before returning: the build fails fast if the backend cannot
    /// be reached.
    ///
    /// # Errors
    ///
    /// A configuration error ([`ErrorKind::Config`]), or the first error of
    /// creating a connection.
    pub async fn build_warm(self) -> Result<Pool<M>, Error<MError<M>>> {
        let pool = self.build().map_err(Error::config)?;
        if let Some((key, _)) = &pool.inner.default {
            pool.warm(key).await?;
        }
        Ok(pool)
    }
}

impl<M: Manager> Pool<M> {
    /// Starts building a pool around `manager`.
    pub fn builder(manager: M) -> Builder<M> {
        Builder { manager, config: Config::default(), endpoint: None }
    }

    /// Acquires a connection to the default endpoint, waiting up to the
    /// configured `acquire_timeout`.
    ///
    /// # Errors
    ///
    /// See [`Error`]: a timeout carries the last backend error and the pool
    /// status; a backend error names its phase; `Closed` after [`close`](Self::close).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future at any point (waiting, creating, checking) leaks
    /// nothing: its place in line, reserved room or handed-off connection goes
    /// to the next waiter or back to the pool.
    #[track_caller]
    pub fn get(&self) -> impl Future<Output = Result<Pooled<'_, M>, Error<MError<M>>>> + Send + '_ {
        acquire(PoolRef::Borrowed(&self.inner), None, self.inner.core.config.acquire_timeout, Location::caller())
    }

    /// [`get`](Self::get) with its own deadline instead of `acquire_timeout`.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    #[track_caller]
    pub fn get_timeout(
        &self,
        timeout: Duration,
    ) -> impl Future<Output = Result<Pooled<'_, M>, Error<MError<M>>>> + Send + '_ {
        acquire(PoolRef::Borrowed(&self.inner), None, Some(timeout), Location::caller())
    }

    /// Acquires a connection to `endpoint`.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    #[track_caller]
    pub fn get_for<'a, 'k>(
        &'a self,
        endpoint: &'k Endpoint<M>,
    ) -> impl Future<Output = Result<Pooled<'a, M>, Error<MError<M>>>> + Send + 'k
    where
        'a: 'k,
    {
        acquire(
            PoolRef::Borrowed(&self.inner),
            Some(endpoint),
            self.inner.core.config.acquire_timeout,
            Location::caller(),
        )
    }

    /// [`get_for`](Self::get_for) with its own deadline.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    #[track_caller]
    pub fn get_for_timeout<'a, 'k>(
        &'a self,
        endpoint: &'k Endpoint<M>,
        timeout: Option<Duration>,
    ) -> impl Future<Output = Result<Pooled<'a, M>, Error<MError<M>>>> + Send + 'k
    where
        'a: 'k,
    {
        acquire(PoolRef::Borrowed(&self.inner), Some(endpoint), timeout, Location::caller())
    }

    /// [`get`](Self::get) returning an owned (`'static`) guard, for spawning.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    #[track_caller]
    pub fn get_owned(&self) -> impl Future<Output = Result<OwnedPooled<M>, Error<MError<M>>>> + Send + 'static {
        acquire(PoolRef::Owned(self.inner.clone()), None, self.inner.core.config.acquire_timeout, Location::caller())
    }

    /// [`get_for`](Self::get_for) returning an owned (`'static`) guard.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    #[track_caller]
    pub fn get_owned_for<'a>(
        &self,
        endpoint: &'a Endpoint<M>,
    ) -> impl Future<Output = Result<OwnedPooled<M>, Error<MError<M>>>> + Send + 'a {
        acquire(
            PoolRef::Owned(self.inner.clone()),
            Some(endpoint),
            self.inner.core.config.acquire_timeout,
            Location::caller(),
        )
    }

    /// Creates connections for `endpoint` until it holds `min_idle`, and
    /// returns how many it created.
    ///
    /// # Errors
    ///
    /// The first failure of `create` (no retries), or `Closed`.
    pub async fn warm(&self, endpoint: &Endpoint<M>) -> Result<usize, Error<MError<M>>> {
        let inner = &self.inner;
        let idx = inner.core.endpoint_index(endpoint);
        let mut made = 0;
        while let Some(idx) = inner.core.reserve_fill(idx) {
            let conn = inner.create_reserved(idx, endpoint, None).await?;
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
    pub fn status(&self) -> PoolStatus<Endpoint<M>> {
        self.inner.core.status()
    }

    /// The pool's counters.
    pub fn counters(&self) -> CounterSnapshot {
        self.inner.core.counters()
    }

    /// Gauges, counters and histograms of the pool and each endpoint.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.inner.core.metrics()
    }

    /// Zeroes the counters and histograms.
    pub fn reset_metrics(&self) {
        self.inner.core.reset_metrics();
    }

    /// The latest leak reports (with `leak_detection`): connections held past
    /// the threshold, and their returns. At most the last 64.
    pub fn leak_reports(&self) -> Vec<LeakReport> {
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

    /// Closes the pool: new acquires fail with `Closed`, every waiter is woken
    /// with `Closed`, idle connections are disposed (in background tasks if a
    /// runtime is running, else dropped), and the collector stops. Checked-out
    /// connections are disposed when they come back. Closing twice is harmless.
    pub fn close(&self) {
        let mut out = Vec::new();
        if self.inner.core.close(&mut out) {
            self.inner.dispose_all(out);
        }
    }

    /// Closes the pool, then waits up to `timeout` for checked-out connections
    /// to come back and for every disposal to finish.
    pub async fn close_timeout(&self, timeout: Duration) -> CloseReport {
        self.close();
        let inner = &self.inner;
        let done = poll_fn(|cx| {
            *inner.dispose_waker.lock() = Some(cx.waker().clone());
            let out = inner.core.outstanding(Some(Wake::Task(cx.waker().clone())));
            if out == 0 && inner.disposing.load(Ordering::Acquire) == 0 { Poll::Ready(()) } else { Poll::Pending }
        });
        let _ = tokio::time::timeout(timeout, done).await;
        CloseReport { still_out: inner.core.outstanding(None), disposing: inner.disposing.load(Ordering::Acquire) }
    }
}

/// Whether each async hook is known to finish on its first poll: its future
/// is `std::future::Ready` (the trait's defaults, and hooks written the same
/// way). Learned from the futures the slow path runs; until both are known
/// ready, every acquire takes the slow path. Unknown or other types keep the
/// slow path, so a wrong guess can only cost speed, never correctness.
#[derive(Default)]
struct HookKnowledge {
    on_acquire: std::sync::atomic::AtomicU8,
    on_release: std::sync::atomic::AtomicU8,
    /// `dispose` returns `std::future::Ready`: disposals run inline instead
    /// of in a spawned task.
    dispose: std::sync::atomic::AtomicU8,
}

const HOOK_UNKNOWN: u8 = 0;
const HOOK_READY: u8 = 1;
const HOOK_ASYNC: u8 = 2;

impl HookKnowledge {
    fn all_ready(&self) -> bool {
        self.on_acquire.load(Ordering::Relaxed) == HOOK_READY && self.on_release.load(Ordering::Relaxed) == HOOK_READY
    }

    fn dispose_ready(&self) -> bool {
        self.dispose.load(Ordering::Relaxed) == HOOK_READY
    }

    fn learn<F>(slot: &std::sync::atomic::AtomicU8, fut: &F) {
        if slot.load(Ordering::Relaxed) == HOOK_UNKNOWN {
            let ready = std::any::type_name_of_val(fut).starts_with("core::future::ready::Ready<");
            slot.store(if ready { HOOK_READY } else { HOOK_ASYNC }, Ordering::Relaxed);
        }
    }
}

/// What [`Pool::close_timeout`] found when it returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CloseReport {
    /// Connections still checked out (or being created).
    pub still_out: usize,
    /// Disposals still running.
    pub disposing: usize,
}

impl CloseReport {
    /// Everything came back and was disposed in time.
    pub fn is_clean(&self) -> bool {
        self.still_out == 0 && self.disposing == 0
    }
}

/// How a guard or a future refers to its pool.
enum PoolRef<'a, M: Manager> {
    Borrowed(&'a Arc<Inner<M>>),
    Owned(Arc<Inner<M>>),
}

impl<'a, M: Manager> PoolRef<'a, M> {
    fn inner(&self) -> &Arc<Inner<M>> {
        match self {
            PoolRef::Borrowed(i) => i,
            PoolRef::Owned(i) => i,
        }
    }

    /// Another reference for the same lifetime: a copy when borrowed (no
    /// reference count touched), a clone when owned.
    fn share(&self) -> PoolRef<'a, M> {
        match self {
            PoolRef::Borrowed(i) => PoolRef::Borrowed(i),
            PoolRef::Owned(i) => PoolRef::Owned(i.clone()),
        }
    }
}

/// The guard's record of where its connection is in its lifecycle.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Use {
    /// Being prepared by the pool (hooks, check): a drop here means the
    /// acquire was cancelled mid-I/O, and the connection is not trusted.
    Preparing,
    /// Handed to the user.
    User,
    /// Handed to the user and marked broken.
    Broken,
}

/// A pooled connection. Derefs to the connection; dropping it returns the
/// connection to the pool (also on panic). Helpers are associated functions
/// (`Pooled::take(guard)`) so they never clash with the connection's methods.
#[must_use = "dropping the guard returns the connection at once"]
pub struct Pooled<'a, M: Manager> {
    conn: Option<CoreConn<M>>,
    pool: PoolRef<'a, M>,
    state: Use,
    /// Slot in the leak tracker, with leak detection on.
    leak: Option<usize>,
}

/// A [`Pooled`] that owns a handle to its pool: `'static`, for spawning.
pub type OwnedPooled<M> = Pooled<'static, M>;

impl<'a, M: Manager> Pooled<'a, M> {
    fn conn(this: &Self) -> &CoreConn<M> {
        this.conn.as_ref().expect("present until drop")
    }

    /// Takes the connection out of the pool for good. Its room is freed.
    pub fn take(mut this: Self) -> Connection<M> {
        let conn = this.conn.take().expect("present until drop");
        this.pool.inner().checkin(&conn, this.leak.take());
        let mut out = Vec::new();
        let raw = this.pool.inner().core.detach(conn, &mut out);
        this.pool.inner().dispose_all(out);
        raw
    }

    /// Marks the connection broken: it is disposed instead of reused.
    pub fn mark_broken(this: &mut Self) {
        this.state = Use::Broken;
    }

    /// The endpoint the connection belongs to.
    pub fn endpoint(this: &Self) -> &Endpoint<M> {
        &Self::conn(this).ep.key
    }

    /// How long ago the connection was created.
    pub fn age(this: &Self) -> Duration {
        Instant::now().into_std().saturating_duration_since(Self::conn(this).created)
    }

    /// How many times the connection was handed out, this time included.
    pub fn use_count(this: &Self) -> u64 {
        Self::conn(this).uses
    }

    /// Returns the connection now, running `on_release` first.
    ///
    /// # Errors
    ///
    /// The hook's error (the connection still goes back to the pool), or a
    /// timeout past `dispose_timeout`.
    pub async fn release(mut this: Self) -> Result<(), Error<MError<M>>> {
        let inner = this.pool.inner().clone();
        let broken = this.state == Use::Broken;
        inner.checkin(this.conn.as_ref().expect("present until drop"), this.leak.take());
        // The guard keeps the connection during the hook: if this future is
        // dropped midway, its drop gives the connection back as untrusted.
        this.state = Use::Preparing;
        let result = inner.run_on_release(this.conn.as_mut().expect("present until drop"), &mut true).await;
        let mut conn = this.conn.take().expect("present until drop");
        // A hook that panicked or hung leaves the connection untrusted; one
        // that returned an error leaves it pooled (SPEC: the error is counted)
        // but suspect, so it is checked on its next checkout.
        let untrusted = result.as_ref().is_err_and(|e| e.kind() != ErrorKind::Backend(Phase::OnRelease));
        conn.suspect |= result.is_err();
        let broken = broken || untrusted || inner.is_broken(&conn);
        inner.give_back(conn, broken);
        result
    }
}

impl<M: Manager> Deref for Pooled<'_, M> {
    type Target = Connection<M>;

    fn deref(&self) -> &Connection<M> {
        &Self::conn(self).raw
    }
}

impl<M: Manager> DerefMut for Pooled<'_, M> {
    fn deref_mut(&mut self) -> &mut Connection<M> {
        &mut self.conn.as_mut().expect("present until drop").raw
    }
}

impl<M: Manager> Drop for Pooled<'_, M> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            let inner = self.pool.inner();
            let now = inner.checkin(&conn, self.leak.take());
            inner.return_conn_at(conn, self.state, now);
        }
    }
}

impl<M: Manager> std::fmt::Debug for Pooled<'_, M>
where
    Connection<M>: std::fmt::Debug,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pooled")
            .field("endpoint", &Self::endpoint(self))
            .field("uses", &Self::use_count(self))
            .field("conn", &**self)
            .finish()
    }
}

/// What an acquire resolves to.
type AcquireResult<'a, M> = Result<Pooled<'a, M>, Error<MError<M>>>;
type CoreStep<M> = Step<Endpoint<M>, Connection<M>>;

/// The future of every `get*` method. See [`Pool::get`] for its contract.
///
/// Its first poll tries the fast path synchronously: an idle connection with
/// nobody waiting and hooks known to finish at once — one lock, one clock
/// read, no allocation. A wait is polled inline, and a due health check runs
/// in a small boxed future; anything else (creating, async hooks) continues
/// in the boxed async slow path from the step already taken, so the future
/// itself stays small.
struct Acquire<'a, 'k, M: Manager> {
    state: AcquireState<'a, 'k, M>,
}

/// What an acquire asked for, carried from state to state.
struct Ask<'a, 'k, M: Manager> {
    pool: PoolRef<'a, M>,
    key: Option<&'k Endpoint<M>>,
    timeout: Option<Duration>,
    at: &'static Location<'static>,
}

enum AcquireState<'a, 'k, M: Manager> {
    Start(Ask<'a, 'k, M>),
    /// Queued by the fast path: waiting inline for a grant (no boxing).
    Waiting {
        ask: Ask<'a, 'k, M>,
        start: Instant,
        waiter: Queued<'a, M>,
    },
    /// A health check the fast path started that did not finish at once.
    Checking {
        ask: Ask<'a, 'k, M>,
        start: Instant,
        check: CheckFut<'a, M>,
    },
    /// A create the fast path started that did not finish at once.
    Creating {
        ask: Ask<'a, 'k, M>,
        start: Instant,
        create: CreateFut<'k, M>,
    },
    Slow(std::pin::Pin<Box<dyn Future<Output = AcquireResult<'a, M>> + Send + 'k>>),
    Done,
}

/// A queued waiter, polled for its grant. Dropping it before the grant is
/// picked up (the acquire was cancelled or timed out) leaves the queue or
/// gives back what it was granted.
struct Queued<'a, M: Manager> {
    pool: PoolRef<'a, M>,
    waiter: Option<crate::sync::Arc<Waiter<Endpoint<M>, Connection<M>>>>,
}

impl<M: Manager> Future for Queued<'_, M> {
    type Output = Grant<Endpoint<M>, Connection<M>>;

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let waiter = self.waiter.as_ref().expect("polled after completion");
        let grant = self.pool.inner().core.poll_grant(waiter, |old| match old {
            Wake::Task(w) if w.will_wake(cx.waker()) => None,
            _ => Some(Wake::Task(cx.waker().clone())),
        });
        match grant {
            Some(g) => {
                self.waiter = None;
                Poll::Ready(g)
            }
            None => {
                if waiter.has_deadline() {
                    // The one place a wait starts the wait timer: on its
                    // first poll, or again if the timer stopped with its
                    // runtime.
                    self.pool.inner().ensure_wait_timer();
                }
                Poll::Pending
            }
        }
    }
}

impl<M: Manager> Drop for Queued<'_, M> {
    fn drop(&mut self) {
        if let Some(waiter) = self.waiter.take() {
            let inner = self.pool.inner();
            let mut out = Vec::new();
            inner.core.cancel(&waiter, Instant::now().into_std(), &mut out);
            inner.dispose_all(out);
        }
    }
}

fn acquire<'a: 'k, 'k, M: Manager>(
    pool: PoolRef<'a, M>,
    key: Option<&'k Endpoint<M>>,
    timeout: Option<Duration>,
    at: &'static Location<'static>,
) -> Acquire<'a, 'k, M> {
    Acquire { state: AcquireState::Start(Ask { pool, key, timeout, at }) }
}

impl<'a: 'k, 'k, M: Manager> Future for Acquire<'a, 'k, M> {
    type Output = AcquireResult<'a, M>;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        loop {
            let step = match std::mem::replace(&mut this.state, AcquireState::Done) {
                AcquireState::Start(ask) => {
                    // Yield first if the task is out of cooperative budget,
                    // so it never has to yield while holding a connection.
                    match tokio::task::coop::poll_proceed(cx) {
                        Poll::Ready(restore) => restore.made_progress(),
                        Poll::Pending => {
                            this.state = AcquireState::Start(ask);
                            return Poll::Pending;
                        }
                    }
                    fast(ask, cx)
                }
                AcquireState::Waiting { ask, start, mut waiter } => {
                    let Poll::Ready(grant) = std::pin::Pin::new(&mut waiter).poll(cx) else {
                        this.state = AcquireState::Waiting { ask, start, waiter };
                        return Poll::Pending;
                    };
                    granted(ask, start, grant, cx)
                }
                AcquireState::Checking { ask, start, mut check } => {
                    let Poll::Ready(done) = check.as_mut().poll(cx) else {
                        this.state = AcquireState::Checking { ask, start, check };
                        return Poll::Pending;
                    };
                    // The check took a while: it is part of the acquire's wait.
                    checked(ask, start, done, Some(start.elapsed()), cx)
                }
                AcquireState::Creating { ask, start, mut create } => {
                    let Poll::Ready(done) = create.as_mut().poll(cx) else {
                        this.state = AcquireState::Creating { ask, start, create };
                        return Poll::Pending;
                    };
                    created(ask, start, done, cx)
                }
                AcquireState::Slow(mut fut) => {
                    let polled = fut.as_mut().poll(cx);
                    if polled.is_pending() {
                        this.state = AcquireState::Slow(fut);
                    }
                    return polled;
                }
                AcquireState::Done => panic!("acquire future polled after completion"),
            };
            // Where the synchronous step left the acquire: finished, pending
            // on a check it started, or in a state to poll at once.
            match step {
                Fast::Done(result) => return Poll::Ready(result),
                Fast::Slow(ask, SlowFrom { step: Some(Step::Wait(waiter)), start, .. }) => {
                    let waiter = Queued { pool: ask.pool.share(), waiter: Some(waiter) };
                    this.state = AcquireState::Waiting { ask, start, waiter };
                }
                Fast::Slow(ask, from) => this.state = slow(ask, from),
                Fast::Checking(ask, start, check) => {
                    this.state = AcquireState::Checking { ask, start, check };
                    return Poll::Pending;
                }
                Fast::Creating(ask, start, create) => {
                    this.state = AcquireState::Creating { ask, start, create };
                    return Poll::Pending;
                }
            }
        }
    }
}

/// Boxes the async slow path, continuing from `from`.
fn slow<'a: 'k, 'k, M: Manager>(ask: Ask<'a, 'k, M>, from: SlowFrom<M>) -> AcquireState<'a, 'k, M> {
    let Ask { pool, key, timeout, at } = ask;
    let req = Request { key, timeout, at, start: from.start, waited: from.waited };
    AcquireState::Slow(Box::pin(acquire_slow(pool, req, from.step, from.failed_create)))
}

/// Where a synchronous step of [`Acquire`] left it.
enum Fast<'a, 'k, M: Manager> {
    Done(AcquireResult<'a, M>),
    /// Take the slow path, from this step if one was taken already (a
    /// `Step::Wait` is polled inline instead).
    Slow(Ask<'a, 'k, M>, SlowFrom<M>),
    /// A health check is under way (polled once, pending); the acquire's start.
    Checking(Ask<'a, 'k, M>, Instant, CheckFut<'a, M>),
    /// A create is under way (polled once, pending); the acquire's start.
    Creating(Ask<'a, 'k, M>, Instant, CreateFut<'k, M>),
}

/// Where the slow path starts.
struct SlowFrom<M: Manager> {
    /// The step already taken, if any.
    step: Option<CoreStep<M>>,
    start: Instant,
    /// The caller waited in line already (so its wait is not zero).
    waited: bool,
    /// A create started by the fast path failed with this: the slow path
    /// goes on with its retry policy.
    failed_create: Option<Error<MError<M>>>,
}

impl<M: Manager> SlowFrom<M> {
    fn new(step: Option<CoreStep<M>>, start: Instant, waited: bool) -> Self {
        Self { step, start, waited, failed_create: None }
    }
}

/// The synchronous fast path; see [`Acquire`].
fn fast<'a: 'k, 'k, M: Manager>(ask: Ask<'a, 'k, M>, cx: &mut Context<'_>) -> Fast<'a, 'k, M> {
    let start = Instant::now();
    let inner = ask.pool.inner();
    if cfg!(feature = "tracing-spans") || !inner.hooks.all_ready() {
        return Fast::Slow(ask, SlowFrom::new(None, start, false));
    }
    take(ask, start, None, cx)
}

/// Takes a step in the core (at `start + waited`) and goes on with it
/// synchronously. `waited`: `None` on the first try; after a dead
/// connection, the time spent so far.
fn take<'a: 'k, 'k, M: Manager>(
    ask: Ask<'a, 'k, M>,
    start: Instant,
    waited: Option<Duration>,
    cx: &mut Context<'_>,
) -> Fast<'a, 'k, M> {
    let inner = ask.pool.inner();
    let core = &inner.core;
    let now = waited.map_or(start, |w| start + w).into_std();
    let mut out = Vec::new();
    let deadline = ask.timeout.map(|t| (start + t).into_std());
    let step = match (ask.key, &inner.default) {
        (Some(k), _) => core.acquire(k, now, deadline, &mut out),
        (None, Some((_, idx))) => core.acquire_index(*idx, now, deadline, &mut out),
        (None, None) => return Fast::Slow(ask, SlowFrom::new(None, start, waited.is_some())),
    };
    inner.dispose_all(out);
    match step {
        Step::Ready(conn) => hand_out(ask, conn, start, waited, cx),
        Step::Create(idx) => create_now(ask, idx, start, cx),
        step => Fast::Slow(ask, SlowFrom::new(Some(step), start, waited.is_some())),
    }
}

/// Goes on from a grant to a queued acquire.
fn granted<'a: 'k, 'k, M: Manager>(
    ask: Ask<'a, 'k, M>,
    start: Instant,
    grant: Grant<Endpoint<M>, Connection<M>>,
    cx: &mut Context<'_>,
) -> Fast<'a, 'k, M> {
    let inner = ask.pool.inner();
    let now = Instant::now();
    let failed = |e: Error<MError<M>>| {
        inner.record_outcome(ask.key, &Err::<(), _>(&e));
        Err(e)
    };
    let conn = match grant {
        Grant::TimedOut(status) => return Fast::Done(failed(Error::timeout(Phase::Wait, None, now - start, status))),
        Grant::Closed => return Fast::Done(failed(Error::closed())),
        Grant::Create => {
            let idx = match (ask.key, &inner.default) {
                (Some(k), _) => inner.core.endpoint_index(k),
                (None, Some((_, idx))) => *idx,
                (None, None) => unreachable!("queued without an endpoint"),
            };
            return create_now(ask, idx, start, cx);
        }
        Grant::Conn(conn) => conn,
    };
    if inner.core.is_closed() {
        inner.give_back(conn, false);
        return Fast::Done(failed(Error::closed()));
    }
    if conn.expires.is_some_and(|e| now.into_std() >= e) {
        // Expired while this task was being woken: never hand it out;
        // carry on in the slow path.
        let mut out = Vec::new();
        inner.core.discard(conn, DisposeReason::Lifetime, &mut out);
        inner.dispose_all(out);
        return Fast::Slow(ask, SlowFrom::new(None, start, true));
    }
    hand_out(ask, conn, start, Some(now - start), cx)
}

/// A create started by the fast path, in a small boxed future (it frees its
/// reservation if dropped unfinished, like the slow path's).
type CreateFut<'k, M> = std::pin::Pin<Box<dyn Future<Output = Result<CoreConn<M>, Error<MError<M>>>> + Send + 'k>>;

/// Creates into the room the core reserved at `idx`: started here and, if it
/// does not finish at once, continued in [`AcquireState::Creating`].
fn create_now<'a: 'k, 'k, M: Manager>(
    ask: Ask<'a, 'k, M>,
    idx: usize,
    start: Instant,
    cx: &mut Context<'_>,
) -> Fast<'a, 'k, M> {
    let PoolRef::Borrowed(inner) = ask.pool else {
        // An owned pool cannot lend its `Inner` to a boxed create.
        return Fast::Slow(ask, SlowFrom::new(Some(Step::Create(idx)), start, false));
    };
    let key = match (ask.key, &inner.default) {
        (Some(k), _) => k,
        (None, Some((k, _))) => k,
        (None, None) => unreachable!("room reserved without an endpoint"),
    };
    let mut create: CreateFut<'k, M> = Box::pin(inner.create_reserved(idx, key, ask.timeout.map(|t| start + t)));
    match create.as_mut().poll(cx) {
        Poll::Ready(done) => created(ask, start, done, cx),
        Poll::Pending => Fast::Creating(ask, start, create),
    }
}

/// Goes on from a finished fast-path create: hands the fresh connection out
/// (no health check), or lets the slow path apply the retry policy to the
/// error.
fn created<'a, 'k, M: Manager>(
    ask: Ask<'a, 'k, M>,
    start: Instant,
    done: Result<CoreConn<M>, Error<MError<M>>>,
    cx: &mut Context<'_>,
) -> Fast<'a, 'k, M> {
    match done {
        // Creating is part of the acquire's wait.
        Ok(conn) => give_out(ask, conn, start, Some(start.elapsed()), cx),
        Err(e) => Fast::Slow(ask, SlowFrom { step: None, start, waited: true, failed_create: Some(e) }),
    }
}

/// A health check started by the fast path, boxed with the connection it
/// checks: a few dozen bytes instead of the whole slow path. Dropped before
/// it finishes (the acquire was cancelled), it disposes the connection,
/// whose state is then unknown.
type CheckFut<'a, M> =
    std::pin::Pin<Box<dyn Future<Output = (CoreConn<M>, Timed<Result<bool, MError<M>>>)> + Send + 'a>>;

fn start_check<M: Manager>(inner: &Arc<Inner<M>>, conn: CoreConn<M>, deadline: Option<Instant>) -> CheckFut<'_, M> {
    Box::pin(async move {
        let mut holder = Holder { inner, conn: Some(conn), state: Use::Preparing };
        let ConnBody { ep, raw, .. } = &mut **holder.conn.as_mut().expect("present");
        let fut = inner.manager.check_alive(&ep.key, raw);
        #[cfg(feature = "tracing-spans")]
        let fut = tracing::Instrument::instrument(fut, tracing::debug_span!("kpool.check", endpoint = ?ep.key));
        let result = timed(deadline.into(), &mut true, fut).await;
        (holder.conn.take().expect("present"), result)
    })
}

/// Goes on from a finished fast-path health check: hands the connection out,
/// or, if it was dead, disposes it and fails (an error from the check) or
/// carries on in the slow path (a plain `false`). The same outcomes as the
/// slow path's `prepare`. `waited` as for [`hand_out`].
fn checked<'a: 'k, 'k, M: Manager>(
    ask: Ask<'a, 'k, M>,
    start: Instant,
    (mut conn, result): (CoreConn<M>, Timed<Result<bool, MError<M>>>),
    waited: Option<Duration>,
    cx: &mut Context<'_>,
) -> Fast<'a, 'k, M> {
    let inner = ask.pool.inner();
    let failure = match result {
        Timed::Done(Ok(true)) => {
            conn.suspect = false;
            return give_out(ask, conn, start, waited, cx);
        }
        Timed::Done(Ok(false)) => None,
        Timed::Done(Err(e)) => Some(Error::backend_error(Phase::Check, e)),
        Timed::Panicked(p) => Some(Error::panicked(Phase::Check, p)),
        Timed::Elapsed => {
            let status = inner.core.endpoint_status(conn.ep.index);
            Some(Error::timeout(Phase::Check, None, start.elapsed(), status))
        }
    };
    inner.dead(&mut Holder { inner, conn: Some(conn), state: Use::Preparing });
    match failure {
        Some(e) => {
            inner.record_outcome(ask.key, &Err::<(), _>(&e));
            Fast::Done(Err(e))
        }
        // Dead: try the next connection (or room to create) at once.
        None => take(ask, start, Some(start.elapsed()), cx),
    }
}

/// Hands out a connection synchronously when the hooks finish at once: runs
/// a pending `on_release`, then the health check if one is due (started
/// here and, if it does not finish at once, continued in
/// [`AcquireState::Checking`]), then `on_acquire`. `waited` is the time spent
/// in line (`None`: served at once, a zero wait not recorded).
fn hand_out<'a: 'k, 'k, M: Manager>(
    ask: Ask<'a, 'k, M>,
    mut conn: CoreConn<M>,
    start: Instant,
    waited: Option<Duration>,
    cx: &mut Context<'_>,
) -> Fast<'a, 'k, M> {
    let inner = ask.pool.inner();
    let core = &inner.core;
    let now = waited.map_or(start, |w| start + w);
    // Both hooks return `std::future::Ready`: one poll finishes them.
    if conn.pending_release {
        conn.pending_release = false;
        let ConnBody { ep, raw, .. } = &mut *conn;
        match poll_once(cx, inner.manager.on_release(&ep.key, raw)) {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                // The cleanup failed: the connection stays, but is checked now.
                inner.release_failed(ep, &Error::backend_error(Phase::OnRelease, e));
                conn.suspect = true;
            }
            None => {
                let mut out = Vec::new();
                core.discard(conn, DisposeReason::Broken, &mut out);
                inner.dispose_all(out);
                return Fast::Slow(ask, SlowFrom::new(None, start, waited.is_some()));
            }
        }
    }
    if needs_check(&core.config, &conn, now, false) {
        let PoolRef::Borrowed(inner) = ask.pool else {
            // An owned pool cannot lend its `Inner` to a boxed check.
            return Fast::Slow(ask, SlowFrom::new(Some(Step::Ready(conn)), start, waited.is_some()));
        };
        let mut check = start_check(inner, conn, ask.timeout.map(|t| start + t));
        return match check.as_mut().poll(cx) {
            // Finished within this poll: no clock read to time it (a
            // synchronous check takes well under a microsecond).
            Poll::Ready(done) => checked(ask, start, done, waited, cx),
            Poll::Pending => Fast::Checking(ask, start, check),
        };
    }
    give_out(ask, conn, start, waited, cx)
}

/// Runs `on_acquire` (known to finish at once) and makes the guard.
fn give_out<'a, 'k, M: Manager>(
    ask: Ask<'a, 'k, M>,
    mut conn: CoreConn<M>,
    start: Instant,
    waited: Option<Duration>,
    cx: &mut Context<'_>,
) -> Fast<'a, 'k, M> {
    let Ask { pool, key, at, .. } = ask;
    let inner = pool.inner();
    let now = waited.map_or(start, |w| start + w);
    let ConnBody { ep, raw, .. } = &mut *conn;
    let result = match poll_once(cx, inner.manager.on_acquire(&ep.key, raw)) {
        Some(Ok(())) => {
            conn.uses += 1;
            conn.out_since = now.into_std();
            // A zero wait is not recorded: snapshots count the acquires the
            // histogram lacks as zero waits (one contended atomic less).
            if let Some(w) = waited {
                conn.ep.stats.hist.acquire.record(w);
            }
            conn.ep.stats.acquired();
            let leak = inner
                .leaks
                .as_ref()
                .map(|t| t.checkout(conn.out_since, at, metrics::label(&conn.ep.key), conn.ep.clone()));
            return Fast::Done(Ok(Pooled { conn: Some(conn), pool, state: Use::User, leak }));
        }
        Some(Err(e)) => {
            inner.give_back(conn, false);
            Error::backend_error(Phase::OnAcquire, e)
        }
        None => {
            let mut out = Vec::new();
            inner.core.discard(conn, DisposeReason::Broken, &mut out);
            inner.dispose_all(out);
            Error::panicked(Phase::OnAcquire, "on_acquire panicked".into())
        }
    };
    inner.record_outcome(key, &Err::<(), _>(&result));
    Fast::Done(Err(result))
}

/// Polls a future that is known to be ready; `None` if it panicked (or,
/// against expectations, was not ready).
fn poll_once<F: Future>(cx: &mut Context<'_>, fut: F) -> Option<F::Output> {
    let mut fut = std::pin::pin!(fut);
    match std::panic::catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
        Ok(Poll::Ready(v)) => Some(v),
        _ => None,
    }
}

/// Whether a reused connection is due a health check: outside the bypass
/// window, or always after its `on_release` hook failed.
fn needs_check<K, C>(cfg: &Config, conn: &Conn<K, C>, now: Instant, fresh: bool) -> bool {
    conn.suspect
        || (!fresh
            && cfg.validate_on_acquire
            && now.into_std().saturating_duration_since(conn.returned) >= cfg.validation_bypass)
}

/// What the slow path needs to know about the request.
struct Request<'k, K> {
    key: Option<&'k K>,
    timeout: Option<Duration>,
    at: &'static Location<'static>,
    start: Instant,
    /// The caller waited in line already.
    waited: bool,
}

/// The async slow path, continuing from the fast path's step.
async fn acquire_slow<'a, M: Manager>(
    pool: PoolRef<'a, M>,
    req: Request<'_, Endpoint<M>>,
    first: Option<CoreStep<M>>,
    failed_create: Option<Error<MError<M>>>,
) -> AcquireResult<'a, M> {
    let key = req.key;
    // The borrowed case (every `get` but `get_owned*`) needs no Arc clone.
    let kept;
    let inner: &Arc<Inner<M>> = match &pool {
        PoolRef::Borrowed(i) => i,
        PoolRef::Owned(i) => {
            kept = i.clone();
            &kept
        }
    };
    #[cfg(feature = "tracing-spans")]
    let span = tracing::debug_span!("kpool.acquire", endpoint = ?key, at = %req.at);
    let fut = acquire_inner(inner, pool, req, first, failed_create);
    #[cfg(feature = "tracing-spans")]
    let fut = tracing::Instrument::instrument(fut, span);
    let result = fut.await;
    if let Ok(guard) = &result {
        Pooled::conn(guard).ep.stats.acquired();
    }
    inner.record_outcome(key, &result.as_ref().map(|_| ()));
    result
}

async fn acquire_inner<'a, M: Manager>(
    inner: &Arc<Inner<M>>,
    pool: PoolRef<'a, M>,
    req: Request<'_, Endpoint<M>>,
    mut first_step: Option<CoreStep<M>>,
    failed_create: Option<Error<MError<M>>>,
) -> Result<Pooled<'a, M>, Error<MError<M>>> {
    let Request { key, timeout, at, start, waited } = req;
    let core = &inner.core;
    let (key, default_idx) = match key {
        Some(k) => (k, None),
        None => match &inner.default {
            Some((k, idx)) => (k, Some(*idx)),
            None => return Err(Error::new(ErrorKind::NoEndpoint)),
        },
    };
    let deadline = timeout.map(|t| start + t);
    let mut now = start;
    let mut last_err: Option<MError<M>> = None;
    let mut failures = 0u32;
    // Served at once from an idle connection, with no I/O: recorded as a
    // zero wait without a second clock read.
    let mut immediate = !waited;
    if let Some(e) = failed_create {
        // The fast path's create failed: retry (after the backoff) or fail.
        immediate = false;
        create_failed(inner, e, key, deadline, &mut last_err, &mut failures, start).await?;
        now = Instant::now();
    }
    loop {
        let mut out = Vec::new();
        let step = match first_step.take() {
            Some(step) => step,
            None => match default_idx {
                Some(idx) => core.acquire_index(idx, now.into_std(), deadline.map(Instant::into_std), &mut out),
                None => core.acquire(key, now.into_std(), deadline.map(Instant::into_std), &mut out),
            },
        };
        inner.dispose_all(out);
        if !matches!(step, Step::Ready(_)) {
            immediate = false;
        }
        let (conn, fresh) = match step {
            Step::Ready(conn) => (conn, false),
            Step::Closed => return Err(Error::closed()),
            Step::Create(idx) => {
                match create_step(inner, idx, key, deadline, &mut last_err, &mut failures, start).await? {
                    Some(conn) => (conn, true),
                    None => {
                        now = Instant::now();
                        continue;
                    }
                }
            }
            Step::Wait(waiter) => {
                let grant = Queued { pool: PoolRef::Borrowed(inner), waiter: Some(waiter) }.await;
                now = Instant::now();
                match grant {
                    Grant::TimedOut(status) => {
                        return Err(Error::timeout(Phase::Wait, last_err, now - start, status));
                    }
                    Grant::Closed => return Err(Error::closed()),
                    Grant::Conn(conn) => {
                        if core.is_closed() {
                            inner.give_back(conn, false);
                            return Err(Error::closed());
                        }
                        (conn, false)
                    }
                    Grant::Create => {
                        let idx = default_idx.unwrap_or_else(|| core.endpoint_index(key));
                        match create_step(inner, idx, key, deadline, &mut last_err, &mut failures, start).await? {
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
        let mut holder = Holder { inner, conn: Some(conn), state: Use::Preparing };
        match prepare(inner, &mut holder, fresh, now, deadline, start).await {
            Ok(io) => {
                let mut conn = holder.conn.take().expect("present after prepare");
                conn.uses += 1;
                let waited = if immediate && !io { Duration::ZERO } else { start.elapsed() };
                conn.out_since = (start + waited).into_std();
                conn.ep.stats.hist.acquire.record(waited);
                let leak = inner
                    .leaks
                    .as_ref()
                    .map(|t| t.checkout(conn.out_since, at, metrics::label(&conn.ep.key), conn.ep.clone()));
                return Ok(Pooled { conn: Some(conn), pool, state: Use::User, leak });
            }
            Err(Prepared::Fail(e)) => return Err(e),
            Err(Prepared::Dead) => {
                immediate = false;
                now = Instant::now();
            }
        }
    }
}

/// Holds a connection while the pool prepares it (hooks, check). Dropped
/// early — the acquire was cancelled mid-I/O — it disposes the connection,
/// whose state can no longer be trusted.
struct Holder<'a, M: Manager> {
    inner: &'a Arc<Inner<M>>,
    conn: Option<CoreConn<M>>,
    state: Use,
}

impl<M: Manager> Drop for Holder<'_, M> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.inner.return_conn(conn, self.state);
        }
    }
}

enum Prepared<E> {
    Fail(Error<E>),
    /// The connection was dead and is gone: try again.
    Dead,
}

/// Deferred `on_release`, health check and `on_acquire` for a connection the
/// guard holds. On `Dead` the guard no longer holds a connection.
async fn prepare<M: Manager>(
    inner: &Arc<Inner<M>>,
    guard: &mut Holder<'_, M>,
    fresh: bool,
    now: Instant,
    deadline: Option<Instant>,
    start: Instant,
) -> Result<bool, Prepared<MError<M>>> {
    let cfg = &inner.core.config;
    let mut io = false;
    let conn = guard.conn.as_mut().expect("present");
    // A connection handed off to a waiter was checked for expiry when it was
    // released; it may have expired while this task was being woken. Never
    // hand it out (found by the churn cell of kpool-bench).
    if !fresh && conn.expires.is_some_and(|e| now.into_std() >= e) {
        inner.kill(guard, DisposeReason::Lifetime);
        return Err(Prepared::Dead);
    }
    if conn.pending_release {
        conn.pending_release = false;
        if let Err(e) = inner.run_on_release(conn, &mut io).await {
            if e.kind() != ErrorKind::Backend(Phase::OnRelease) {
                inner.kill(guard, DisposeReason::Broken);
                return Err(Prepared::Dead);
            }
            // The cleanup failed: the connection stays, but is checked now.
            guard.conn.as_mut().expect("present").suspect = true;
        }
    }
    let conn = guard.conn.as_mut().expect("present");
    if needs_check(cfg, conn, now, fresh) {
        io = true;
        let ConnBody { ep, raw, .. } = &mut **conn;
        let fut = inner.manager.check_alive(&ep.key, raw);
        #[cfg(feature = "tracing-spans")]
        let fut = tracing::Instrument::instrument(fut, tracing::debug_span!("kpool.check", endpoint = ?ep.key));
        let failure = match timed(deadline.into(), &mut io, fut).await {
            Timed::Done(Ok(true)) => {
                guard.conn.as_mut().expect("present").suspect = false;
                None
            }
            Timed::Done(Ok(false)) => Some(Prepared::Dead),
            Timed::Done(Err(e)) => Some(Prepared::Fail(Error::backend_error(Phase::Check, e))),
            Timed::Panicked(p) => Some(Prepared::Fail(Error::panicked(Phase::Check, p))),
            Timed::Elapsed => {
                let status = inner.core.endpoint_status(ep.index);
                Some(Prepared::Fail(Error::timeout(Phase::Check, None, start.elapsed(), status)))
            }
        };
        if let Some(failure) = failure {
            inner.dead(guard);
            return Err(failure);
        }
    }
    let ConnBody { ep, raw, .. } = &mut **guard.conn.as_mut().expect("present");
    let hook = inner.manager.on_acquire(&ep.key, raw);
    HookKnowledge::learn(&inner.hooks.on_acquire, &hook);
    match timed(deadline.into(), &mut io, hook).await {
        Timed::Done(Ok(())) => Ok(io),
        Timed::Done(Err(e)) => {
            // The hook failed but the connection is fine: back to the pool.
            guard.state = Use::User;
            let conn = guard.conn.take().expect("present");
            inner.give_back(conn, false);
            Err(Prepared::Fail(Error::backend_error(Phase::OnAcquire, e)))
        }
        Timed::Panicked(p) => Err(Prepared::Fail(Error::panicked(Phase::OnAcquire, p))),
        Timed::Elapsed => {
            let status = inner.core.endpoint_status(ep.index);
            Err(Prepared::Fail(Error::timeout(Phase::OnAcquire, None, start.elapsed(), status)))
        }
    }
}

/// Creates a connection into a reserved slot, with the retry policy. `Ok(None)`
/// means "failed, retry the whole acquire" (after the backoff delay).
async fn create_step<M: Manager>(
    inner: &Arc<Inner<M>>,
    idx: usize,
    key: &Endpoint<M>,
    deadline: Option<Instant>,
    last_err: &mut Option<MError<M>>,
    failures: &mut u32,
    start: Instant,
) -> Result<Option<CoreConn<M>>, Error<MError<M>>> {
    match inner.create_reserved(idx, key, deadline).await {
        Ok(conn) => Ok(Some(conn)),
        Err(e) => {
            create_failed(inner, e, key, deadline, last_err, failures, start).await?;
            Ok(None)
        }
    }
}

/// The retry policy after a failed create: `Ok` once the backoff has passed
/// (retry the whole acquire), or the error to return.
async fn create_failed<M: Manager>(
    inner: &Arc<Inner<M>>,
    e: Error<MError<M>>,
    key: &Endpoint<M>,
    deadline: Option<Instant>,
    last_err: &mut Option<MError<M>>,
    failures: &mut u32,
    start: Instant,
) -> Result<(), Error<MError<M>>> {
    let deadline_hit = e.is_timeout() && deadline.is_some_and(|d| Instant::now() >= d);
    let timeout = |last| Error::timeout(Phase::Create, last, start.elapsed(), inner.status_of(key));
    let transient = |b: &MError<M>| inner.manager.is_transient(b);
    let delay = after_create_failure(e, deadline_hit, transient, &inner.core.config, last_err, failures, timeout)?;
    let wake_at = Instant::now() + delay;
    // The backoff timer is boxed: retries are rare, and inline it would grow
    // the acquire's slow-path future for every call.
    if deadline.is_some_and(|d| wake_at >= d) {
        Box::pin(tokio::time::sleep_until(deadline.expect("checked"))).await;
        return Err(Error::timeout(Phase::Create, last_err.take(), start.elapsed(), inner.status_of(key)));
    }
    Box::pin(tokio::time::sleep_until(wake_at)).await;
    Ok(())
}

/// The outcome of a manager future run with a deadline and panic catching.
enum Timed<T> {
    Done(T),
    Panicked(String),
    Elapsed,
}

/// When a manager call must finish.
#[derive(Clone, Copy)]
enum Limit {
    None,
    At(Instant),
    /// Relative: the clock is read only if the call does not finish at once.
    After(Duration),
}

impl From<Option<Instant>> for Limit {
    fn from(d: Option<Instant>) -> Self {
        d.map_or(Limit::None, Limit::At)
    }
}

impl From<Option<Duration>> for Limit {
    fn from(d: Option<Duration>) -> Self {
        d.map_or(Limit::None, Limit::After)
    }
}

/// Runs a manager future with panic catching and a limit. It is polled once
/// first: a call that finishes at once (the default hooks, an in-memory
/// check) costs no timer and no clock read. `waited` is set when it did not.
async fn timed<F: Future>(limit: Limit, waited: &mut bool, fut: F) -> Timed<F::Output> {
    let mut fut = std::pin::pin!(AssertUnwindSafe(fut).catch_unwind());
    let res = match poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await {
        Poll::Ready(r) => r,
        Poll::Pending => {
            *waited = true;
            let deadline = match limit {
                Limit::None => None,
                Limit::At(d) => Some(d),
                Limit::After(t) => Some(Instant::now() + t),
            };
            match deadline {
                Some(d) => {
                    // Boxed: the timer is rare (only for a call that did not
                    // finish at once), and inline it would grow every future
                    // that runs a manager call, the acquire's slow path too.
                    let mut sleep = Box::pin(tokio::time::sleep_until(d));
                    let done = poll_fn(|cx| match fut.as_mut().poll(cx) {
                        Poll::Ready(r) => Poll::Ready(Some(r)),
                        Poll::Pending => sleep.as_mut().poll(cx).map(|()| None),
                    });
                    match done.await {
                        Some(r) => r,
                        None => return Timed::Elapsed,
                    }
                }
                None => fut.await,
            }
        }
    };
    match res {
        Ok(v) => Timed::Done(v),
        Err(p) => Timed::Panicked(panic_message(&*p)),
    }
}

/// Frees a create reservation unless disarmed (on error, panic or cancel).
struct Reservation<'a, M: Manager> {
    inner: &'a Arc<Inner<M>>,
    idx: usize,
    armed: bool,
}

impl<M: Manager> Drop for Reservation<'_, M> {
    fn drop(&mut self) {
        if self.armed {
            let mut out = Vec::new();
            self.inner.core.create_failed(self.idx, &mut out);
            self.inner.dispose_all(out);
        }
    }
}

impl<M: Manager> Inner<M> {
    /// Runs `create` for a slot the core reserved. The reservation is freed
    /// on any failure (including this future being dropped).
    async fn create_reserved(
        self: &Arc<Self>,
        idx: usize,
        key: &Endpoint<M>,
        deadline: Option<Instant>,
    ) -> Result<CoreConn<M>, Error<MError<M>>> {
        let mut reservation = Reservation { inner: self, idx, armed: true };
        let cfg = &self.core.config;
        let limit = match (deadline, cfg.create_timeout) {
            (Some(d), Some(t)) => Some(d.min(Instant::now() + t)),
            (d, t) => d.or_else(|| t.map(|t| Instant::now() + t)),
        };
        let started = Instant::now();
        let fut = self.manager.create(key);
        #[cfg(feature = "tracing-spans")]
        let fut = tracing::Instrument::instrument(fut, tracing::debug_span!("kpool.create", endpoint = ?key));
        match timed(limit.into(), &mut true, fut).await {
            Timed::Done(Ok(raw)) => {
                reservation.armed = false;
                let now = Instant::now();
                match self.core.created(idx, raw, now.into_std()) {
                    Ok(conn) => {
                        conn.ep.stats.hist.creation.record(now - started);
                        Ok(conn)
                    }
                    Err(raw) => {
                        self.spawn_dispose_raw(self.core.endpoint_info(idx), raw);
                        Err(Error::closed())
                    }
                }
            }
            Timed::Done(Err(e)) => {
                tracing::debug!(endpoint = ?key, error = ?e, "create failed");
                Err(Error::backend_error(Phase::Create, e))
            }
            Timed::Panicked(p) => Err(Error::panicked(Phase::Create, p)),
            Timed::Elapsed => Err(Error::timeout(Phase::Create, None, started.elapsed(), Status::default())),
        }
    }

    /// Runs `on_release` under `dispose_timeout`, counting failures.
    async fn run_on_release(&self, conn: &mut CoreConn<M>, waited: &mut bool) -> Result<(), Error<MError<M>>> {
        let ConnBody { ep, raw, .. } = &mut **conn;
        let limit = self.core.config.dispose_timeout.into();
        let hook = self.manager.on_release(&ep.key, raw);
        HookKnowledge::learn(&self.hooks.on_release, &hook);
        let res = match timed(limit, waited, hook).await {
            Timed::Done(Ok(())) => return Ok(()),
            Timed::Done(Err(e)) => Error::backend_error(Phase::OnRelease, e),
            Timed::Panicked(p) => Error::panicked(Phase::OnRelease, p),
            Timed::Elapsed => {
                Error::timeout(Phase::OnRelease, None, Duration::ZERO, self.core.endpoint_status(ep.index))
            }
        };
        self.release_failed(ep, &res);
        Err(res)
    }

    /// `Manager::is_broken`, a panic counting as broken.
    fn is_broken(&self, conn: &CoreConn<M>) -> bool {
        std::panic::catch_unwind(AssertUnwindSafe(|| self.manager.is_broken(&conn.ep.key, &conn.raw))).unwrap_or(true)
    }

    /// Counts and logs a failed `on_release`.
    fn release_failed(&self, ep: &EpInfo<Endpoint<M>>, err: &Error<MError<M>>) {
        bump(&ep.stats.counters.release_errors);
        tracing::warn!(endpoint = ?ep.key, error = %err, "on_release failed");
    }

    /// Counts an acquire's failure (successes are counted where the guard is made).
    fn record_outcome<T, E>(&self, key: Option<&Endpoint<M>>, result: &Result<T, &Error<E>>) {
        if let Err(e) = result {
            if e.is_timeout() {
                tracing::debug!(endpoint = ?key, error = %e, "acquire timed out");
            }
            if let Some(k) = key.or(self.default.as_ref().map(|(k, _)| k)) {
                self.core.record_failure(k, e.is_timeout());
            }
        }
    }

    /// A guard lets go of its connection at `now`: records its usage time and
    /// closes its leak watch.
    fn checkin(&self, conn: &CoreConn<M>, leak: Option<usize>) -> std::time::Instant {
        let now = Instant::now().into_std();
        conn.ep.stats.hist.usage.record(now.saturating_duration_since(conn.out_since));
        if let (Some(tracker), Some(slot)) = (&self.leaks, leak) {
            tracker.checkin(slot, now);
        }
        now
    }

    /// A holder lets go of a connection it was preparing.
    fn return_conn(self: &Arc<Self>, conn: CoreConn<M>, state: Use) {
        self.return_conn_at(conn, state, Instant::now().into_std());
    }

    /// A guard or holder lets go of its connection.
    fn return_conn_at(self: &Arc<Self>, mut conn: CoreConn<M>, state: Use, now: std::time::Instant) {
        let broken = match state {
            Use::Preparing | Use::Broken => true,
            Use::User => {
                conn.pending_release = true;
                self.is_broken(&conn)
            }
        };
        let mut out = Vec::new();
        self.core.release(conn, broken, now, &mut out);
        self.dispose_all(out);
    }

    /// Returns a checked-out connection to the core.
    fn give_back(self: &Arc<Self>, conn: CoreConn<M>, broken: bool) {
        let mut out = Vec::new();
        self.core.release(conn, broken, Instant::now().into_std(), &mut out);
        self.dispose_all(out);
    }

    /// The guard's connection failed its check: `on_dead`, then dispose.
    fn dead(self: &Arc<Self>, guard: &mut Holder<'_, M>) {
        if let Some(conn) = guard.conn.as_mut() {
            tracing::debug!(endpoint = ?conn.ep.key, uses = conn.uses, "connection found dead");
            bump(&conn.ep.stats.counters.dead_found);
            let _ = std::panic::catch_unwind(AssertUnwindSafe(|| self.manager.on_dead(&conn.ep.key, &mut conn.raw)));
        }
        self.kill(guard, DisposeReason::Dead);
    }

    fn kill(self: &Arc<Self>, guard: &mut Holder<'_, M>, reason: DisposeReason) {
        if let Some(conn) = guard.conn.take() {
            let mut out = Vec::new();
            self.core.discard(conn, reason, &mut out);
            self.dispose_all(out);
        }
    }

    fn status_of(&self, key: &Endpoint<M>) -> Status {
        let idx = self.core.endpoint_index(key);
        self.core.endpoint_status(idx)
    }

    /// Disposes connections the core let go of, in a background task (a
    /// guard's drop cannot await). Without a runtime they are just dropped.
    #[inline]
    fn dispose_all(self: &Arc<Self>, out: Vec<Doomed<Endpoint<M>, Connection<M>>>) {
        // The common case, nothing to dispose, stays inline and cheap.
        if !out.is_empty() {
            if self.hooks.dispose_ready() {
                self.dispose_inline(out);
            } else {
                self.spawn_disposals(out);
            }
        }
    }

    /// Starts the wait timer task unless it runs, on the caller's runtime
    /// (called by a pending [`Queued`] with a deadline).
    #[inline]
    fn ensure_wait_timer(self: &Arc<Self>) {
        if !self.timer_running.load(Ordering::Relaxed) && !self.timer_running.swap(true, Ordering::AcqRel) {
            tokio::spawn(wait_timer(Arc::downgrade(self)));
        }
    }

    /// Disposes at once, for a `dispose` known to return `std::future::Ready`
    /// (the default, which drops the connection): it did its work when
    /// called, so a task would only add a spawn per disposal.
    #[inline(never)]
    fn dispose_inline(&self, out: Vec<Doomed<Endpoint<M>, Connection<M>>>) {
        let mut cx = Context::from_waker(Waker::noop());
        for (conn, reason) in out {
            let ConnBody { ep, raw, .. } = *conn;
            tracing::debug!(endpoint = ?ep.key, reason = reason.as_str(), "disposing a connection");
            let called = std::panic::catch_unwind(AssertUnwindSafe(|| self.manager.dispose(&ep.key, raw)));
            let problem = match called.map(|fut| poll_once(&mut cx, fut)) {
                Ok(Some(Ok(()))) => continue,
                Ok(Some(Err(e))) => format!("{e:?}"),
                Ok(None) => "panicked".to_owned(),
                Err(p) => format!("panicked: {}", panic_message(&*p)),
            };
            bump(&ep.stats.counters.dispose_errors);
            tracing::warn!(endpoint = ?ep.key, reason = reason.as_str(), problem, "dispose failed");
        }
    }

    #[inline(never)]
    fn spawn_disposals(self: &Arc<Self>, out: Vec<Doomed<Endpoint<M>, Connection<M>>>) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            drop(out);
            return;
        };
        self.disposing.fetch_add(1, Ordering::AcqRel);
        let inner = self.clone();
        rt.spawn(async move {
            for (conn, reason) in out {
                inner.dispose_one(conn.ep, conn.raw, reason).await;
            }
            inner.disposal_done();
        });
    }

    fn spawn_dispose_raw(self: &Arc<Self>, ep: Arc<EpInfo<Endpoint<M>>>, raw: Connection<M>) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else { return };
        self.disposing.fetch_add(1, Ordering::AcqRel);
        let inner = self.clone();
        rt.spawn(async move {
            inner.dispose_one(ep, raw, DisposeReason::Closed).await;
            inner.disposal_done();
        });
    }

    fn disposal_done(&self) {
        if self.disposing.fetch_sub(1, Ordering::AcqRel) == 1 {
            if let Some(w) = self.dispose_waker.lock().take() {
                w.wake();
            }
        }
    }

    async fn dispose_one(&self, ep: Arc<EpInfo<Endpoint<M>>>, raw: Connection<M>, reason: DisposeReason) {
        let key = &ep.key;
        tracing::debug!(endpoint = ?key, reason = reason.as_str(), "disposing a connection");
        // A `dispose` may do its work (and panic) when called, before any poll.
        let problem = match std::panic::catch_unwind(AssertUnwindSafe(|| self.manager.dispose(key, raw))) {
            Err(p) => format!("panicked: {}", panic_message(&*p)),
            Ok(fut) => {
                HookKnowledge::learn(&self.hooks.dispose, &fut);
                #[cfg(feature = "tracing-spans")]
                let fut = tracing::Instrument::instrument(
                    fut,
                    tracing::debug_span!("kpool.dispose", endpoint = ?key, reason = reason.as_str()),
                );
                match timed(self.core.config.dispose_timeout.into(), &mut true, fut).await {
                    Timed::Done(Ok(())) => return,
                    Timed::Done(Err(e)) => format!("{e:?}"),
                    Timed::Panicked(p) => format!("panicked: {p}"),
                    Timed::Elapsed => "timed out".to_owned(),
                }
            }
        };
        bump(&ep.stats.counters.dispose_errors);
        tracing::warn!(endpoint = ?key, reason = reason.as_str(), problem, "dispose failed");
    }
}

impl<M: Manager> Drop for Inner<M> {
    fn drop(&mut self) {
        // Let the background tasks notice the pool is gone.
        self.core.wake_tasks();
    }
}

/// The wait timer: times out queued waiters at their deadlines (see
/// [`Core::expire_waiters`]), sleeping until the earliest one. It runs on the
/// runtime of the first wait with a deadline and ends when the pool closes or
/// is dropped. If its runtime drops it instead (a pool used from one runtime
/// after another, as test suites do), it wakes the waiters left, and the
/// first of them to be polled starts another timer on its own runtime.
async fn wait_timer<M: Manager>(weak: std::sync::Weak<Inner<M>>) {
    /// Marks the timer stopped however the task ends.
    struct Running<M: Manager>(std::sync::Weak<Inner<M>>);
    impl<M: Manager> Drop for Running<M> {
        fn drop(&mut self) {
            if let Some(inner) = self.0.upgrade() {
                inner.timer_running.store(false, Ordering::Release);
                // Waiters on other runtimes would otherwise wait for the next
                // wait to start a timer: woken, they start one themselves.
                inner.core.wake_deadline_waiters();
            }
        }
    }
    let _running = Running(weak.clone());
    let mut sleep = std::pin::pin!(tokio::time::sleep(Duration::ZERO));
    poll_fn(|cx| {
        let Some(inner) = weak.upgrade() else { return Poll::Ready(()) };
        loop {
            // Expiring and registering the wake-up happen under one lock, so
            // a waiter queued meanwhile with an earlier deadline wakes this.
            let now = Instant::now();
            match inner.core.expire_waiters(now.into_std(), Wake::Task(cx.waker().clone())) {
                None => return Poll::Ready(()),
                Some(None) => return Poll::Pending,
                Some(Some(next)) => {
                    sleep.as_mut().reset(Instant::from_std(next));
                    if sleep.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                }
            }
        }
    })
    .await;
}

/// The background collector: sleeps until the earliest deadline (or a wake
/// from the core), disposes what is due, refills `min_idle`. Holds only a
/// weak reference between rounds, so dropping the pool ends it.
async fn collector<M: Manager>(weak: std::sync::Weak<Inner<M>>) {
    loop {
        let next = {
            let Some(inner) = weak.upgrade() else { return };
            if inner.core.is_closed() {
                return;
            }
            let mut out = Vec::new();
            let now = Instant::now().into_std();
            let (creates, mut next) = inner.core.collect(now, None, inner.core.config.fill_min_idle, &mut out);
            if let Some(tracker) = &inner.leaks {
                let at = tracker.scan(now);
                next = Some(next.map_or(at, |n| n.min(at)));
            }
            inner.dispose_all(out);
            for (idx, key) in creates {
                let inner = inner.clone();
                tokio::spawn(async move {
                    if let Ok(conn) = inner.create_reserved(idx, &key, None).await {
                        inner.give_back(conn, false);
                    }
                });
            }
            next
        };
        let mut registered = false;
        let woken = poll_fn(|cx| {
            if registered {
                return Poll::Ready(());
            }
            let Some(inner) = weak.upgrade() else { return Poll::Ready(()) };
            inner.core.set_collector_wake(Wake::Task(cx.waker().clone()));
            registered = true;
            Poll::Pending
        });
        // Sleep until the next deadline, at most a minute (a cheap safety net).
        let until = next
            .map_or_else(|| Instant::now() + Duration::from_secs(60), Instant::from_std)
            .min(Instant::now() + Duration::from_secs(60));
        let _ = tokio::time::timeout_at(until, woken).await;
    }
}
