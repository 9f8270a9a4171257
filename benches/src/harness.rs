//! The measuring loop shared by every pool.
//!
//! One cell-run: a fresh tokio runtime (2 workers) and a fresh pool; a
//! warm-up phase; then the measured phase. A phase starts the clock, spawns
//! the workers, lets them run for the window (or until the cold-start target
//! is reached), raises `stop`, and gives them a grace period to finish their
//! current acquire. A worker still inside `get` after that is *stuck* (a lost
//! wake-up): it is abandoned with the runtime (`shutdown_background`), and
//! its wait so far enters the latency histogram, so a pool cannot hide its
//! stranded callers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::pools::{AsyncPool, Backend, BackendSpec, SyncPool, expired};

/// How workers hold a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub(crate) enum Hold {
    /// Touch it and give it back.
    Plain,
    /// `tokio::task::yield_now()` while holding it.
    Yield,
}

/// A workload, as in SPEC section 6.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Workload {
    pub(crate) name: &'static str,
    pub(crate) about: &'static str,
    pub(crate) tasks: usize,
    pub(crate) conns: usize,
    pub(crate) hold: Hold,
    #[serde(skip)]
    pub(crate) spec: BackendSpec,
    /// Cold start: stop at this many acquisitions and report the time.
    pub(crate) cold_target: Option<u64>,
}

/// Durations of one cell-run.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timing {
    pub(crate) window: Duration,
    pub(crate) warmup: Duration,
    pub(crate) grace: Duration,
}

/// What one measured phase saw.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct RunResult {
    pub(crate) ops: u64,
    pub(crate) secs: f64,
    pub(crate) ops_per_sec: f64,
    pub(crate) p50_us: f64,
    pub(crate) p99_us: f64,
    pub(crate) p999_us: f64,
    pub(crate) max_us: f64,
    pub(crate) per_task_min: u64,
    pub(crate) per_task_max: u64,
    /// Over the last three quarters of the window (see `summarize`).
    pub(crate) jain: f64,
    pub(crate) jain_whole_window: f64,
    pub(crate) starved: usize,
    pub(crate) stuck: usize,
    pub(crate) errors: u64,
    /// Connections handed out past the configured max lifetime.
    pub(crate) expired_handouts: u64,
    pub(crate) opened: u64,
    /// Cold start: milliseconds to the target number of acquisitions.
    pub(crate) cold_ms: Option<f64>,
}

fn new_hist() -> Histogram<u64> {
    // 1 ns .. 100 s, 2 significant digits (1% error), small enough to give
    // every one of 1024 workers its own.
    Histogram::new_with_bounds(1, 100_000_000_000, 2).expect("valid bounds")
}

/// Per-worker state the driver can read even if the worker never finishes.
struct Slot {
    /// Acquisitions completed inside the window.
    count: AtomicU64,
    errors: AtomicU64,
    expired: AtomicU64,
    /// Nanoseconds since `base` + 1 when the current `get` began; 0 outside `get`.
    in_get_since: AtomicU64,
    done: AtomicBool,
    /// Latencies, flushed every `FLUSH` acquisitions and at the end.
    hist: std::sync::Mutex<Histogram<u64>>,
}

const FLUSH: u64 = 1024;

impl Slot {
    fn new() -> Arc<Self> {
        Arc::new(Slot {
            count: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            expired: AtomicU64::new(0),
            in_get_since: AtomicU64::new(0),
            done: AtomicBool::new(false),
            hist: std::sync::Mutex::new(new_hist()),
        })
    }

    fn flush(&self, local: &mut Histogram<u64>) {
        self.hist.lock().expect("not poisoned").add(&*local).expect("same bounds");
        local.reset();
    }
}

/// Shared by the workers of one phase.
struct Shared {
    stop: AtomicBool,
    base: Instant,
    spec: BackendSpec,
    /// Cold start: acquisitions so far, the target, and when it was reached.
    total: AtomicU64,
    target: Option<u64>,
    reached_ns: AtomicU64,
    reached: std::sync::Mutex<Option<std::sync::mpsc::Sender<()>>>,
}

impl Shared {
    /// The shared state, and what the driver waits on for the cold-start target.
    fn new(spec: BackendSpec, target: Option<u64>) -> (Arc<Self>, std::sync::mpsc::Receiver<()>) {
        let (tx, rx) = std::sync::mpsc::channel();
        let sh = Arc::new(Shared {
            stop: AtomicBool::new(false),
            base: Instant::now(),
            spec,
            total: AtomicU64::new(0),
            target,
            reached_ns: AtomicU64::new(0),
            reached: std::sync::Mutex::new(Some(tx)),
        });
        (sh, rx)
    }

    fn since(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.base).as_nanos() as u64
    }

    /// Book-keeping after a successful acquire; returns whether it counts.
    fn acquired(&self, slot: &Slot, n: &mut u64, conn: &crate::pools::Conn) -> bool {
        if self.stop.load(Relaxed) {
            return false;
        }
        *n += 1;
        slot.count.store(*n, Relaxed);
        if self.spec.lifetime.is_some() && expired(&self.spec, conn) {
            slot.expired.fetch_add(1, Relaxed);
        }
        if let Some(target) = self.target {
            if self.total.fetch_add(1, Relaxed) + 1 == target {
                self.reached_ns.store(self.since(Instant::now()).max(1), Relaxed);
                self.stop.store(true, Relaxed);
                if let Some(tx) = self.reached.lock().expect("not poisoned").take() {
                    let _ = tx.send(());
                }
            }
        }
        true
    }
}

async fn worker<P: AsyncPool>(pool: Arc<P>, slot: Arc<Slot>, sh: Arc<Shared>, hold: Hold, mut local: Histogram<u64>) {
    let mut n = 0u64;
    let mut since_flush = 0u64;
    while !sh.stop.load(Relaxed) {
        let t0 = Instant::now();
        slot.in_get_since.store(sh.since(t0) + 1, Relaxed);
        let got = pool.get().await;
        let t1 = Instant::now();
        slot.in_get_since.store(0, Relaxed);
        let _ = local.record(t1.saturating_duration_since(t0).as_nanos().max(1) as u64);
        match got {
            Ok(mut conn) => {
                sh.acquired(&slot, &mut n, &conn);
                conn.uses += 1;
                if hold == Hold::Yield {
                    tokio::task::yield_now().await;
                }
                drop(conn);
            }
            Err(_) => {
                slot.errors.fetch_add(1, Relaxed);
            }
        }
        since_flush += 1;
        if since_flush == FLUSH {
            slot.flush(&mut local);
            since_flush = 0;
        }
    }
    slot.flush(&mut local);
    slot.done.store(true, Relaxed);
}

fn blocking_worker<P: SyncPool>(pool: Arc<P>, slot: Arc<Slot>, sh: Arc<Shared>, mut local: Histogram<u64>) {
    let mut n = 0u64;
    let mut since_flush = 0u64;
    while !sh.stop.load(Relaxed) {
        let t0 = Instant::now();
        slot.in_get_since.store(sh.since(t0) + 1, Relaxed);
        let got = pool.get();
        let t1 = Instant::now();
        slot.in_get_since.store(0, Relaxed);
        let _ = local.record(t1.saturating_duration_since(t0).as_nanos().max(1) as u64);
        match got {
            Ok(mut conn) => {
                sh.acquired(&slot, &mut n, &conn);
                conn.uses += 1;
                drop(conn);
            }
            Err(_) => {
                slot.errors.fetch_add(1, Relaxed);
            }
        }
        since_flush += 1;
        if since_flush == FLUSH {
            slot.flush(&mut local);
            since_flush = 0;
        }
    }
    slot.flush(&mut local);
    slot.done.store(true, Relaxed);
}

/// Acquisitions per worker so far.
fn snapshot(slots: &[Arc<Slot>]) -> Vec<u64> {
    slots.iter().map(|s| s.count.load(Relaxed)).collect()
}

/// Jain's index, min and max of per-worker counts.
fn fairness(counts: &[u64]) -> (f64, u64, u64) {
    let sum: f64 = counts.iter().map(|&c| c as f64).sum();
    let sum_sq: f64 = counts.iter().map(|&c| (c as f64) * (c as f64)).sum();
    let jain = if sum_sq == 0.0 { 0.0 } else { sum * sum / (counts.len() as f64 * sum_sq) };
    (jain, counts.iter().copied().min().unwrap_or(0), counts.iter().copied().max().unwrap_or(0))
}

/// Turns the slots of a finished (or abandoned) phase into a result.
/// Fairness (Jain, min, max) is computed over the steady part of the window,
/// after `snapshot` (taken at a quarter of it), so that the runtime's start-up
/// ramp — 1024 freshly spawned tasks enter tokio's run queues over
/// milliseconds — does not count against the pool; starved workers are those
/// with no acquisition in the whole window.
fn summarize(
    sh: &Shared,
    slots: &[Arc<Slot>],
    snapshot: Option<Vec<u64>>,
    end: Instant,
    abandon_at: Instant,
    opened: u64,
) -> RunResult {
    let secs = end.saturating_duration_since(sh.base).as_secs_f64();
    let mut hist = new_hist();
    let mut counts = Vec::with_capacity(slots.len());
    let (mut stuck, mut errors, mut expired) = (0, 0, 0);
    let abandon_ns = sh.since(abandon_at);
    for s in slots {
        hist.add(&*s.hist.lock().expect("not poisoned")).expect("same bounds");
        counts.push(s.count.load(Relaxed));
        errors += s.errors.load(Relaxed);
        expired += s.expired.load(Relaxed);
        if !s.done.load(Relaxed) {
            stuck += 1;
            let since = s.in_get_since.load(Relaxed);
            if since > 0 {
                // Censored sample: waited at least this long, and still waiting.
                let _ = hist.record(abandon_ns.saturating_sub(since - 1).max(1));
            }
        }
    }
    let ops: u64 = counts.iter().sum();
    let whole = fairness(&counts);
    let (jain, per_task_min, per_task_max) = match &snapshot {
        Some(snap) => fairness(&counts.iter().zip(snap).map(|(c, s)| c - s).collect::<Vec<_>>()),
        None => whole,
    };
    let us = |ns: u64| ns as f64 / 1000.0;
    let reached = sh.reached_ns.load(Relaxed);
    RunResult {
        ops,
        secs,
        ops_per_sec: if secs > 0.0 { ops as f64 / secs } else { 0.0 },
        p50_us: us(hist.value_at_quantile(0.50)),
        p99_us: us(hist.value_at_quantile(0.99)),
        p999_us: us(hist.value_at_quantile(0.999)),
        max_us: us(hist.max()),
        per_task_min,
        per_task_max,
        jain,
        jain_whole_window: whole.0,
        starved: counts.iter().filter(|&&c| c == 0).count(),
        stuck,
        errors,
        expired_handouts: expired,
        opened,
        cold_ms: (reached > 0).then(|| reached as f64 / 1e6),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime")
}

/// One phase of an async cell; see the module docs.
///
/// The driver runs on this (non-worker) thread and waits with plain thread
/// sleeps: a pool whose `get` never yields can monopolise both workers, and
/// then tokio's timers never fire — the driver must not depend on them.
fn phase<P: AsyncPool>(
    rt: &tokio::runtime::Runtime,
    pool: &Arc<P>,
    backend: &Backend,
    w: &Workload,
    window: Duration,
    grace: Duration,
) -> RunResult {
    let slots: Vec<Arc<Slot>> = (0..w.tasks).map(|_| Slot::new()).collect();
    let mut locals: Vec<Histogram<u64>> = (0..w.tasks).map(|_| new_hist()).collect();
    let opened_before = backend.created.load(Relaxed);
    let (sh, reached) = Shared::new(w.spec, w.cold_target);
    // The clock (`sh.base`) starts before the first worker is spawned.
    for slot in &slots {
        let local = locals.pop().expect("one per worker");
        rt.spawn(worker(pool.clone(), slot.clone(), sh.clone(), w.hold, local));
    }
    let snapshot = match reached.recv_timeout(window / 4) {
        Ok(()) => None,
        Err(_) => {
            let snap = snapshot(&slots);
            let _ = reached.recv_timeout(window - window / 4);
            Some(snap)
        }
    };
    sh.stop.store(true, Relaxed);
    let end = Instant::now();
    let abandon_at = wait_done(&slots, end + grace);
    summarize(&sh, &slots, snapshot, end, abandon_at, backend.created.load(Relaxed) - opened_before)
}

/// Waits until every worker is done or `deadline` passes; returns when it stopped waiting.
fn wait_done(slots: &[Arc<Slot>], deadline: Instant) -> Instant {
    loop {
        let now = Instant::now();
        if now >= deadline || slots.iter().all(|s| s.done.load(Relaxed)) {
            return now;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// One cell-run of an async pool: fresh runtime, fresh pool, warm-up, measure.
pub(crate) fn run_async<P: AsyncPool>(make: fn(Arc<Backend>, usize) -> P, w: &Workload, t: Timing) -> RunResult {
    let rt = runtime();
    let backend = Backend::new(w.spec);
    let pool = {
        let _ctx = rt.enter();
        Arc::new(make(backend.clone(), w.conns))
    };
    let mut stuck_in_warmup = 0;
    if w.cold_target.is_none() && !t.warmup.is_zero() {
        stuck_in_warmup = phase(&rt, &pool, &backend, w, t.warmup, t.grace).stuck;
    }
    let mut r = phase(&rt, &pool, &backend, w, t.window, t.grace);
    r.stuck += stuck_in_warmup;
    if r.stuck > 0 {
        // Dropping a pool with stranded waiters must not hang the run either:
        // leave it to the abandoned runtime.
        std::mem::forget(pool);
    } else {
        let _ctx = rt.enter();
        drop(pool);
    }
    rt.shutdown_background();
    r
}

/// One cell-run of a blocking pool: `w.tasks` threads.
pub(crate) fn run_blocking<P: SyncPool>(make: fn(Arc<Backend>, usize) -> P, w: &Workload, t: Timing) -> RunResult {
    let backend = Backend::new(w.spec);
    let pool = Arc::new(make(backend.clone(), w.conns));
    let mut stuck_in_warmup = 0;
    if !t.warmup.is_zero() {
        stuck_in_warmup = blocking_phase(&pool, &backend, w, t.warmup, t.grace).stuck;
    }
    let mut r = blocking_phase(&pool, &backend, w, t.window, t.grace);
    r.stuck += stuck_in_warmup;
    if r.stuck > 0 {
        std::mem::forget(pool);
    }
    r
}

fn blocking_phase<P: SyncPool>(
    pool: &Arc<P>,
    backend: &Backend,
    w: &Workload,
    window: Duration,
    grace: Duration,
) -> RunResult {
    let slots: Vec<Arc<Slot>> = (0..w.tasks).map(|_| Slot::new()).collect();
    let mut locals: Vec<Histogram<u64>> = (0..w.tasks).map(|_| new_hist()).collect();
    let opened_before = backend.created.load(Relaxed);
    let (sh, _) = Shared::new(w.spec, None);
    let handles: Vec<_> = slots
        .iter()
        .map(|slot| {
            let (pool, slot, sh) = (pool.clone(), slot.clone(), sh.clone());
            let local = locals.pop().expect("one per worker");
            std::thread::spawn(move || blocking_worker(pool, slot, sh, local))
        })
        .collect();
    std::thread::sleep(window / 4);
    let snap = snapshot(&slots);
    std::thread::sleep(window - window / 4);
    sh.stop.store(true, Relaxed);
    let end = Instant::now();
    let abandon_at = wait_done(&slots, end + grace);
    for h in handles {
        if h.is_finished() {
            let _ = h.join();
        }
        // A stuck thread is left detached; it cannot be interrupted.
    }
    summarize(&sh, &slots, Some(snap), end, abandon_at, backend.created.load(Relaxed) - opened_before)
}

/// Scale cell: one task cycling `get_for` + drop over `endpoints` keys of one
/// keyed kpool (default configuration). Returns nanoseconds per acquire+release.
pub(crate) fn run_scale(endpoints: u32, window: Duration) -> f64 {
    let rt = runtime();
    let ns = rt.block_on(async move {
        tokio::spawn(async move {
            let pool = kpool::Pool::builder(crate::pools::KeyedManager).build().expect("valid config");
            for k in 0..endpoints {
                drop(pool.get_for(&k).await.expect("create"));
            }
            // A scattered walk over the keys (a large odd stride), so that the
            // many-endpoint cells do not get a cache-friendly sequential order.
            let stride = (2_654_435_761u64 % u64::from(endpoints.max(1))) | 1;
            let mut key = 0u64;
            let mut ops = 0u64;
            let start = Instant::now();
            let elapsed = loop {
                for _ in 0..1024 {
                    key = (key + stride) % u64::from(endpoints);
                    let k = key as u32;
                    let mut conn = pool.get_for(&k).await.expect("acquire");
                    conn.uses += 1;
                }
                ops += 1024;
                let e = start.elapsed();
                if e >= window {
                    break e;
                }
            };
            elapsed.as_nanos() as f64 / ops as f64
        })
        .await
        .expect("scale task")
    });
    rt.shutdown_background();
    ns
}

/// Memory cell: net bytes per idle connection, and per endpoint holding one.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Memory {
    pub(crate) idle_conns: usize,
    pub(crate) bytes_per_idle_conn: f64,
    pub(crate) endpoints: usize,
    pub(crate) bytes_per_endpoint: f64,
    pub(crate) conn_size: usize,
}

pub(crate) fn run_memory(n: usize) -> Memory {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let conn_size = std::mem::size_of::<crate::pools::Conn>();
    // N idle connections on one endpoint (max_size N and no idle cap, so it
    // can hold them; everything else default).
    let per_conn = rt.block_on(async {
        let pool = kpool::Pool::builder(crate::pools::KeyedManager)
            .endpoint(0)
            .max_size(n)
            .max_idle(None)
            .build()
            .expect("valid config");
        let mut guards = Vec::with_capacity(n);
        let mark = crate::alloc::start();
        for _ in 0..n {
            guards.push(pool.get().await.expect("create"));
        }
        guards.clear();
        let bytes = crate::alloc::stop(mark);
        assert_eq!(pool.status().pool.idle, n);
        bytes as f64 / n as f64 - conn_size as f64
    });
    // N endpoints with one idle connection each.
    let per_endpoint = rt.block_on(async {
        let pool = kpool::Pool::builder(crate::pools::KeyedManager).build().expect("valid config");
        let mark = crate::alloc::start();
        for k in 0..n as u32 {
            drop(pool.get_for(&k).await.expect("create"));
        }
        let bytes = crate::alloc::stop(mark);
        bytes as f64 / n as f64 - conn_size as f64
    });
    rt.shutdown_background();
    Memory { idle_conns: n, bytes_per_idle_conn: per_conn, endpoints: n, bytes_per_endpoint: per_endpoint, conn_size }
}
