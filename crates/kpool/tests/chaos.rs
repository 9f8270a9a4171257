//! Chaos: many tasks and threads on several endpoints with small limits,
//! random hold times, random cancellations (timeouts around `get`, aborted
//! tasks, dropped explicit releases), and a manager whose every method fails,
//! hangs past its timeout, panics or is slow at random. Both pools run at
//! once, with short idle timeouts and lifetimes and a background collector
//! that also refills `min_idle`, and are closed under load at the end with
//! `close_timeout`.
//!
//! Afterwards: every connection ever created was disposed exactly once, no
//! task or thread is stuck (all join before a deadline), and the limits were
//! never exceeded — checked continuously by a sampler reading `status()` and
//! `assert_invariants()`, and by the manager, which counts per endpoint the
//! connections being created plus those in users' hands. It prints one
//! summary line.
//!
//! Runs for `KPOOL_CHAOS_SECS` seconds (default 30). The duration is real
//! time; nothing asserts on timing.

use std::collections::{HashMap, HashSet};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kpool::{Collection, Pooled};

const ENDPOINTS: usize = 4;
const MAX_SIZE: usize = 3;
const BURST: usize = 4;
const TOTAL: usize = 9;
const TASKS: usize = 48;
const THREADS: usize = 8;

/// A fixed seed: the schedule still varies run to run (threads), the fault
/// mix does not.
fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Per-caller random numbers.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = splitmix(self.0);
        self.0 % n
    }

    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Fault {
    CreateFail,
    CreateHang,
    CreatePanic,
    CreateSlow,
    CheckDead,
    CheckFail,
    CheckPanic,
    Broken,
    BrokenPanic,
    AcquireHookFail,
    AcquireHookPanic,
    ReleaseHookFail,
    ReleaseHookPanic,
    DisposeFail,
    DisposePanic,
    DisposeSlow,
    OnDeadPanic,
}

/// The faulty manager, shared by both flavours (each pool has its own).
struct Chaos {
    rolls: AtomicU64,
    next_id: AtomicU64,
    created: Mutex<HashSet<u64>>,
    disposed: Mutex<HashMap<u64, u32>>,
    faults: Mutex<HashMap<Fault, u64>>,
    /// Per endpoint: creates running + connections in users' hands.
    busy: [AtomicUsize; ENDPOINTS],
    busy_total: AtomicUsize,
    violations: AtomicU64,
    /// Whether creates may hang forever (async: the pool drops the future)
    /// or only past the deadline (blocking: a helper thread must finish).
    blocking: bool,
}

impl Chaos {
    fn new(seed: u64, blocking: bool) -> Self {
        Chaos {
            rolls: AtomicU64::new(seed),
            next_id: AtomicU64::new(0),
            created: Mutex::default(),
            disposed: Mutex::default(),
            faults: Mutex::default(),
            busy: Default::default(),
            busy_total: AtomicUsize::new(0),
            violations: AtomicU64::new(0),
            blocking,
        }
    }

    fn roll(&self, per_mille: u64, fault: Fault) -> bool {
        let hit = splitmix(self.rolls.fetch_add(1, Relaxed)) % 1000 < per_mille;
        if hit {
            *self.faults.lock().unwrap().entry(fault).or_default() += 1;
        }
        hit
    }

    fn enter(&self, ep: u8) {
        let n = self.busy[ep as usize].fetch_add(1, Relaxed) + 1;
        let t = self.busy_total.fetch_add(1, Relaxed) + 1;
        if n > BURST || t > TOTAL {
            self.violations.fetch_add(1, Relaxed);
        }
    }

    fn leave(&self, ep: u8) {
        self.busy[ep as usize].fetch_sub(1, Relaxed);
        self.busy_total.fetch_sub(1, Relaxed);
    }

    fn made(&self, ep: u8) -> Conn {
        let id = self.next_id.fetch_add(1, Relaxed);
        self.created.lock().unwrap().insert(id);
        Conn { id, ep }
    }

    fn gone(&self, conn: &Conn) {
        *self.disposed.lock().unwrap().entry(conn.id).or_default() += 1;
    }

    fn broken(&self) -> bool {
        if self.roll(3, Fault::BrokenPanic) {
            panic!("chaos: is_broken");
        }
        self.roll(20, Fault::Broken)
    }

    fn on_dead(&self) {
        if self.roll(50, Fault::OnDeadPanic) {
            panic!("chaos: on_dead");
        }
    }

    /// Connections created and not disposed once, plus extra disposals.
    fn leaks(&self) -> (u64, u64) {
        let created = self.created.lock().unwrap();
        let disposed = self.disposed.lock().unwrap();
        let missing = created.iter().filter(|id| !disposed.contains_key(id)).count() as u64;
        let extra: u64 = disposed.values().map(|n| u64::from(n.saturating_sub(1))).sum::<u64>()
            + disposed.keys().filter(|id| !created.contains(id)).count() as u64;
        (missing, extra)
    }
}

/// Counts a create in flight; dropped also when the create is cancelled or
/// panics.
struct Creating<'a>(&'a Chaos, u8);

impl Drop for Creating<'_> {
    fn drop(&mut self) {
        self.0.leave(self.1);
    }
}

#[derive(Debug)]
struct Conn {
    id: u64,
    ep: u8,
}

#[derive(Debug)]
struct Flaky(&'static str);

impl std::fmt::Display for Flaky {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for Flaky {}

impl kpool::Manager for Chaos {
    type Endpoint = u8;
    type Connection = Conn;
    type Error = Flaky;

    async fn create(&self, ep: &u8) -> Result<Conn, Flaky> {
        self.enter(*ep);
        let _creating = Creating(self, *ep);
        if self.roll(30, Fault::CreateHang) {
            std::future::pending::<()>().await;
        }
        if self.roll(40, Fault::CreateSlow) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if self.roll(20, Fault::CreatePanic) {
            panic!("chaos: create");
        }
        if self.roll(50, Fault::CreateFail) {
            return Err(Flaky("create"));
        }
        Ok(self.made(*ep))
    }

    async fn dispose(&self, _: &u8, conn: Conn) -> Result<(), Flaky> {
        self.gone(&conn);
        if self.roll(20, Fault::DisposeSlow) {
            // Past dispose_timeout: the pool gives up on it.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if self.roll(10, Fault::DisposePanic) {
            panic!("chaos: dispose");
        }
        if self.roll(20, Fault::DisposeFail) {
            return Err(Flaky("dispose"));
        }
        Ok(())
    }

    async fn check_alive(&self, _: &u8, _: &mut Conn) -> Result<bool, Flaky> {
        if self.roll(10, Fault::CheckPanic) {
            panic!("chaos: check_alive");
        }
        if self.roll(20, Fault::CheckFail) {
            return Err(Flaky("check"));
        }
        Ok(!self.roll(40, Fault::CheckDead))
    }

    fn is_broken(&self, _: &u8, _: &Conn) -> bool {
        self.broken()
    }

    async fn on_acquire(&self, _: &u8, _: &mut Conn) -> Result<(), Flaky> {
        if self.roll(10, Fault::AcquireHookPanic) {
            panic!("chaos: on_acquire");
        }
        if self.roll(20, Fault::AcquireHookFail) {
            return Err(Flaky("on_acquire"));
        }
        Ok(())
    }

    async fn on_release(&self, _: &u8, _: &mut Conn) -> Result<(), Flaky> {
        if self.roll(10, Fault::ReleaseHookPanic) {
            panic!("chaos: on_release");
        }
        if self.roll(20, Fault::ReleaseHookFail) {
            return Err(Flaky("on_release"));
        }
        tokio::task::yield_now().await;
        Ok(())
    }

    fn on_dead(&self, _: &u8, _: &mut Conn) {
        self.on_dead();
    }
}

impl kpool::blocking::Manager for Chaos {
    type Endpoint = u8;
    type Connection = Conn;
    type Error = Flaky;

    fn create(&self, ep: &u8) -> Result<Conn, Flaky> {
        assert!(self.blocking);
        if self.roll(20, Fault::CreateHang) {
            // Past the acquire deadline: the caller gives up, the helper
            // thread finishes later and the pool disposes the result.
            std::thread::sleep(Duration::from_millis(80));
            return Ok(self.made(*ep));
        }
        if self.roll(40, Fault::CreateSlow) {
            std::thread::sleep(Duration::from_millis(2));
        }
        if self.roll(20, Fault::CreatePanic) {
            panic!("chaos: create");
        }
        if self.roll(50, Fault::CreateFail) {
            return Err(Flaky("create"));
        }
        Ok(self.made(*ep))
    }

    fn dispose(&self, _: &u8, conn: Conn) -> Result<(), Flaky> {
        self.gone(&conn);
        if self.roll(10, Fault::DisposePanic) {
            panic!("chaos: dispose");
        }
        if self.roll(20, Fault::DisposeFail) {
            return Err(Flaky("dispose"));
        }
        Ok(())
    }

    fn check_alive(&self, _: &u8, _: &mut Conn) -> Result<bool, Flaky> {
        if self.roll(10, Fault::CheckPanic) {
            panic!("chaos: check_alive");
        }
        if self.roll(20, Fault::CheckFail) {
            return Err(Flaky("check"));
        }
        Ok(!self.roll(40, Fault::CheckDead))
    }

    fn is_broken(&self, _: &u8, _: &Conn) -> bool {
        self.broken()
    }

    fn on_acquire(&self, _: &u8, _: &mut Conn) -> Result<(), Flaky> {
        if self.roll(10, Fault::AcquireHookPanic) {
            panic!("chaos: on_acquire");
        }
        if self.roll(20, Fault::AcquireHookFail) {
            return Err(Flaky("on_acquire"));
        }
        Ok(())
    }

    fn on_release(&self, _: &u8, _: &mut Conn) -> Result<(), Flaky> {
        if self.roll(10, Fault::ReleaseHookPanic) {
            panic!("chaos: on_release");
        }
        if self.roll(20, Fault::ReleaseHookFail) {
            return Err(Flaky("on_release"));
        }
        Ok(())
    }

    fn on_dead(&self, _: &u8, _: &mut Conn) {
        self.on_dead();
    }
}

/// What the callers did.
#[derive(Default)]
struct Tally {
    ops: AtomicU64,
    ok: AtomicU64,
    timeouts: AtomicU64,
    errors: AtomicU64,
    panics: AtomicU64,
    closed: AtomicU64,
    cancelled: AtomicU64,
    broken: AtomicU64,
    released: AtomicU64,
}

impl Tally {
    fn error<E>(&self, e: &kpool::Error<E>) {
        let c = match e.kind() {
            kpool::ErrorKind::Timeout(_) => &self.timeouts,
            kpool::ErrorKind::Panic(_) => &self.panics,
            kpool::ErrorKind::Closed => &self.closed,
            _ => &self.errors,
        };
        c.fetch_add(1, Relaxed);
    }

    fn line(&self) -> String {
        let g = |c: &AtomicU64| c.load(Relaxed);
        format!(
            "ops {} (ok {}, timeouts {}, errors {}, panics {}, closed {}), cancelled {}, broken {}, explicit releases {}",
            g(&self.ops),
            g(&self.ok),
            g(&self.timeouts),
            g(&self.errors),
            g(&self.panics),
            g(&self.closed),
            g(&self.cancelled),
            g(&self.broken),
            g(&self.released)
        )
    }
}

fn config() -> kpool::Config {
    let mut c = kpool::Config::default();
    c.max_size = MAX_SIZE;
    c.burst_limit = Some(BURST);
    c.min_idle = 1;
    c.max_idle = Some(2);
    c.total_max_size = Some(TOTAL);
    c.idle_timeout = Some(Duration::from_millis(20));
    c.max_lifetime = Some(Duration::from_millis(150));
    c.acquire_timeout = Some(Duration::from_millis(40));
    c.create_timeout = Some(Duration::from_millis(20));
    c.dispose_timeout = Some(Duration::from_millis(20));
    c.retry_limit = 2;
    c.retry_delay = Duration::from_millis(1);
    c.validation_bypass = Duration::ZERO;
    c.collection = Collection::Background;
    // The collector also refills min_idle: its creates race the callers'.
    c.fill_min_idle = true;
    c
}

async fn async_caller(pool: kpool::Pool<Chaos>, seed: u64, stop: Arc<AtomicBool>, t: Arc<Tally>) {
    let mut rng = Rng(seed);
    while !stop.load(Relaxed) {
        t.ops.fetch_add(1, Relaxed);
        let ep = rng.below(ENDPOINTS as u64) as u8;
        let got = if rng.chance(150) {
            // Cancel at whatever await point the acquire reached.
            let limit = Duration::from_micros(rng.below(3000));
            match tokio::time::timeout(limit, pool.get_owned_for(&ep)).await {
                Ok(r) => r,
                Err(_) => {
                    t.cancelled.fetch_add(1, Relaxed);
                    continue;
                }
            }
        } else if rng.chance(50) {
            // An aborted task: its acquire future is dropped wherever it is.
            let p = pool.clone();
            let task = tokio::spawn(async move { p.get_owned_for(&ep).await.map(drop) });
            tokio::time::sleep(Duration::from_micros(rng.below(2000))).await;
            task.abort();
            if task.await.is_err() {
                t.cancelled.fetch_add(1, Relaxed);
            }
            continue;
        } else {
            pool.get_owned_for(&ep).await
        };
        let mut conn = match got {
            Ok(c) => c,
            Err(e) => {
                t.error(&e);
                continue;
            }
        };
        t.ok.fetch_add(1, Relaxed);
        let m = pool.manager();
        assert_eq!(conn.ep, ep, "a connection of another endpoint");
        m.enter(ep);
        match rng.below(4) {
            0 => {}
            1 => tokio::task::yield_now().await,
            _ => tokio::time::sleep(Duration::from_micros(rng.below(3000))).await,
        }
        m.leave(ep);
        if rng.chance(60) {
            Pooled::mark_broken(&mut conn);
            t.broken.fetch_add(1, Relaxed);
        }
        if rng.chance(100) {
            t.released.fetch_add(1, Relaxed);
            // Sometimes cut short while the hook runs.
            let limit = Duration::from_micros(rng.below(200));
            if tokio::time::timeout(limit, Pooled::release(conn)).await.is_err() {
                t.cancelled.fetch_add(1, Relaxed);
            }
        }
    }
}

fn blocking_caller(pool: kpool::blocking::Pool<Chaos>, seed: u64, stop: Arc<AtomicBool>, t: Arc<Tally>) {
    let mut rng = Rng(seed);
    while !stop.load(Relaxed) {
        t.ops.fetch_add(1, Relaxed);
        let ep = rng.below(ENDPOINTS as u64) as u8;
        let got = if rng.chance(150) {
            // Gives up at once if nothing is free (queues, then cancels).
            let r = pool.get_for_timeout(&ep, Some(Duration::ZERO));
            if r.as_ref().is_err_and(|e| e.is_timeout()) {
                t.cancelled.fetch_add(1, Relaxed);
                continue;
            }
            r
        } else {
            pool.get_for(&ep)
        };
        let mut conn = match got {
            Ok(c) => c,
            Err(e) => {
                t.error(&e);
                continue;
            }
        };
        t.ok.fetch_add(1, Relaxed);
        let m = pool.manager();
        assert_eq!(conn.ep, ep, "a connection of another endpoint");
        m.enter(ep);
        if rng.chance(500) {
            std::thread::sleep(Duration::from_micros(rng.below(2000)));
        }
        m.leave(ep);
        if rng.chance(60) {
            kpool::blocking::Pooled::mark_broken(&mut conn);
            t.broken.fetch_add(1, Relaxed);
        }
        if rng.chance(100) {
            t.released.fetch_add(1, Relaxed);
            let _ = kpool::blocking::Pooled::release(conn);
        }
    }
}

/// Reads both pools' status until stopped; returns (samples, violations).
fn sampler(a: kpool::Pool<Chaos>, b: kpool::blocking::Pool<Chaos>, stop: Arc<AtomicBool>) -> (u64, u64, Vec<String>) {
    let mut samples = 0;
    let mut bad = Vec::new();
    while !stop.load(Relaxed) {
        for (name, st, inv) in [
            ("async", a.status(), catch_unwind(AssertUnwindSafe(|| a.assert_invariants()))),
            ("blocking", b.status(), catch_unwind(AssertUnwindSafe(|| b.assert_invariants()))),
        ] {
            samples += 1;
            if inv.is_err() {
                bad.push(format!("{name}: invariants broken"));
            }
            if st.pool.total > TOTAL {
                bad.push(format!("{name}: pool over total_max_size: {}", st.pool));
            }
            for (ep, s) in &st.endpoints {
                if s.total > BURST || s.idle > 2 || s.total != s.idle + s.in_use + s.creating {
                    bad.push(format!("{name}: endpoint {ep}: {s}"));
                }
            }
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    (samples, bad.len() as u64, bad)
}

#[test]
fn chaos() {
    let secs: u64 = std::env::var("KPOOL_CHAOS_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(30);
    // Injected panics are expected by the hundred: keep the output readable.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let injected = info.payload().downcast_ref::<&str>().is_some_and(|s| s.starts_with("chaos:"));
        if !injected {
            default_hook(info);
        }
    }));

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let apool = rt.block_on(async { kpool::Pool::builder(Chaos::new(1, false)).config(config()).build().unwrap() });
    let mut bcfg = config();
    // Blocking creates run on helper threads; give them a little more room.
    bcfg.acquire_timeout = Some(Duration::from_millis(60));
    let bpool = kpool::blocking::Pool::builder(Chaos::new(2, true)).config(bcfg).build().unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let stop_sampler = Arc::new(AtomicBool::new(false));
    let at = Arc::new(Tally::default());
    let bt = Arc::new(Tally::default());
    let started = Instant::now();

    let sampler = {
        let (a, b, s) = (apool.clone(), bpool.clone(), stop_sampler.clone());
        std::thread::spawn(move || sampler(a, b, s))
    };
    let tasks: Vec<_> = (0..TASKS as u64)
        .map(|i| rt.spawn(async_caller(apool.clone(), splitmix(i + 100), stop.clone(), at.clone())))
        .collect();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let threads: Vec<_> = (0..THREADS as u64)
        .map(|i| {
            let (p, s, t, done) = (bpool.clone(), stop.clone(), bt.clone(), done_tx.clone());
            std::thread::spawn(move || {
                blocking_caller(p, splitmix(i + 1000), s, t);
                let _ = done.send(());
            })
        })
        .collect();

    std::thread::sleep(Duration::from_secs(secs));

    // Close under load: callers still running get `Closed` from here on.
    stop.store(true, Relaxed);
    let a_report = rt.block_on(apool.close_timeout(Duration::from_secs(10)));
    let b_report = bpool.close_timeout(Duration::from_secs(10));

    // No task or thread is stuck.
    let joined = rt
        .block_on(async { tokio::time::timeout(Duration::from_secs(20), futures_util::future::join_all(tasks)).await });
    let joined = joined.expect("async callers stuck past the deadline");
    for r in joined {
        r.expect("an async caller panicked");
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    for _ in 0..THREADS {
        done_rx.recv_timeout(deadline.saturating_duration_since(Instant::now())).expect("a blocking caller is stuck");
    }
    for t in threads {
        t.join().expect("a blocking caller panicked");
    }
    stop_sampler.store(true, Relaxed);
    let (samples, sample_bad, bad) = sampler.join().unwrap();

    // Late work: blocking creates that finished past their deadline are
    // disposed by their helper thread; give them a moment.
    let settle_until = Instant::now() + Duration::from_secs(5);
    while bpool.manager().leaks() != (0, 0) && Instant::now() < settle_until {
        std::thread::sleep(Duration::from_millis(10));
    }
    let (a_missing, a_extra) = apool.manager().leaks();
    let (b_missing, b_extra) = bpool.manager().leaks();
    let leaks = a_missing + a_extra + b_missing + b_extra;
    let violations = apool.manager().violations.load(Relaxed) + bpool.manager().violations.load(Relaxed) + sample_bad;
    let faults: u64 =
        [apool.manager(), bpool.manager()].iter().map(|m| m.faults.lock().unwrap().values().sum::<u64>()).sum();
    let created = apool.manager().next_id.load(Relaxed) + bpool.manager().next_id.load(Relaxed);
    println!(
        "chaos {:.0?}: async [{}] | blocking [{}] | created {created}, faults {faults}, samples {samples}, \
         limit violations {violations}, close async {:?} blocking {:?}, leaks {leaks}",
        started.elapsed(),
        at.line(),
        bt.line(),
        a_report,
        b_report,
    );

    assert!(bad.is_empty(), "the sampler saw: {:?}", &bad[..bad.len().min(10)]);
    assert_eq!(violations, 0, "limits exceeded");
    assert!(a_report.is_clean(), "async close: {a_report:?}");
    assert!(b_report.is_clean(), "blocking close: {b_report:?}");
    assert_eq!((a_missing, a_extra), (0, 0), "async: (created never disposed, disposed twice or unknown)");
    assert_eq!((b_missing, b_extra), (0, 0), "blocking: (created never disposed, disposed twice or unknown)");
    assert!(at.ok.load(Relaxed) > 0 && bt.ok.load(Relaxed) > 0, "the pools served nobody");
    assert!(at.cancelled.load(Relaxed) > 0 && bt.cancelled.load(Relaxed) > 0, "nothing was cancelled");
    assert!(faults > 0);
}
