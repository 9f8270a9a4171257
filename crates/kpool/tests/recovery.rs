//! A panic in any manager method or hook never poisons the pool: the slot is
//! freed and the next acquire works. Every pool here has `max_size(1)`, so
//! a slot leaked by a panic shows as the next acquire timing out.
//!
//! Also: dropping `Pooled::release` halfway (its `on_release` hook still
//! running) gives the connection back instead of leaking its slot.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use kpool::{ErrorKind, Phase, Pool, Pooled};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    Create,
    Dispose,
    CheckAlive,
    IsBroken,
    OnAcquire,
    OnRelease,
    OnDead,
}

const METHODS: [Method; 7] = [
    Method::Create,
    Method::Dispose,
    Method::CheckAlive,
    Method::IsBroken,
    Method::OnAcquire,
    Method::OnRelease,
    Method::OnDead,
];

/// Panics once in the armed method; `check_alive` answers `!dead`.
#[derive(Default)]
struct Panicky {
    armed: Mutex<Option<Method>>,
    dead: AtomicBool,
    /// `on_release` never returns (for the cancelled-release test).
    hang_release: AtomicBool,
    next: AtomicU64,
    created: Mutex<HashSet<u64>>,
    disposed: Mutex<Vec<u64>>,
}

impl Panicky {
    fn arm(&self, m: Method) {
        *self.armed.lock().unwrap() = Some(m);
    }

    fn hit(&self, m: Method) {
        let mut armed = self.armed.lock().unwrap();
        if *armed == Some(m) {
            *armed = None;
            drop(armed);
            panic!("injected panic in {m:?}");
        }
    }

    fn make(&self) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.created.lock().unwrap().insert(id);
        id
    }

    fn forget(&self, id: u64) {
        // Recorded before a panic: the connection is gone either way.
        self.disposed.lock().unwrap().push(id);
    }

    fn assert_disposed_once(&self, case: &str) {
        let created = self.created.lock().unwrap();
        let mut disposed = self.disposed.lock().unwrap().clone();
        disposed.sort_unstable();
        let mut want: Vec<u64> = created.iter().copied().collect();
        want.sort_unstable();
        assert_eq!(disposed, want, "{case}: every connection disposed exactly once");
    }
}

impl kpool::Manager for Panicky {
    type Endpoint = ();
    type Connection = u64;
    type Error = std::io::Error;

    async fn create(&self, _: &()) -> Result<u64, std::io::Error> {
        self.hit(Method::Create);
        Ok(self.make())
    }

    async fn dispose(&self, _: &(), conn: u64) -> Result<(), std::io::Error> {
        self.forget(conn);
        self.hit(Method::Dispose);
        Ok(())
    }

    async fn check_alive(&self, _: &(), _: &mut u64) -> Result<bool, std::io::Error> {
        self.hit(Method::CheckAlive);
        Ok(!self.dead.load(Ordering::Relaxed))
    }

    fn is_broken(&self, _: &(), _: &u64) -> bool {
        self.hit(Method::IsBroken);
        false
    }

    async fn on_acquire(&self, _: &(), _: &mut u64) -> Result<(), std::io::Error> {
        self.hit(Method::OnAcquire);
        Ok(())
    }

    async fn on_release(&self, _: &(), _: &mut u64) -> Result<(), std::io::Error> {
        self.hit(Method::OnRelease);
        if self.hang_release.load(Ordering::Relaxed) {
            std::future::pending::<()>().await;
        }
        Ok(())
    }

    fn on_dead(&self, _: &(), _: &mut u64) {
        self.hit(Method::OnDead);
    }
}

impl kpool::blocking::Manager for Panicky {
    type Endpoint = ();
    type Connection = u64;
    type Error = std::io::Error;

    fn create(&self, _: &()) -> Result<u64, std::io::Error> {
        self.hit(Method::Create);
        Ok(self.make())
    }

    fn dispose(&self, _: &(), conn: u64) -> Result<(), std::io::Error> {
        self.forget(conn);
        self.hit(Method::Dispose);
        Ok(())
    }

    fn check_alive(&self, _: &(), _: &mut u64) -> Result<bool, std::io::Error> {
        self.hit(Method::CheckAlive);
        Ok(!self.dead.load(Ordering::Relaxed))
    }

    fn is_broken(&self, _: &(), _: &u64) -> bool {
        self.hit(Method::IsBroken);
        false
    }

    fn on_acquire(&self, _: &(), _: &mut u64) -> Result<(), std::io::Error> {
        self.hit(Method::OnAcquire);
        Ok(())
    }

    fn on_release(&self, _: &(), _: &mut u64) -> Result<(), std::io::Error> {
        self.hit(Method::OnRelease);
        Ok(())
    }

    fn on_dead(&self, _: &(), _: &mut u64) {
        self.hit(Method::OnDead);
    }
}

/// What the acquire right after arming `m` returns (on a pool holding one
/// idle, used connection): the error kind, or `None` for a connection.
fn expected(m: Method) -> Option<ErrorKind> {
    match m {
        Method::Create => Some(ErrorKind::Panic(Phase::Create)),
        Method::CheckAlive => Some(ErrorKind::Panic(Phase::Check)),
        Method::OnAcquire => Some(ErrorKind::Panic(Phase::OnAcquire)),
        // Not the acquire's business: the connection is disposed (the dead
        // one, or the one whose deferred hook panicked) and a new one made.
        Method::Dispose | Method::IsBroken | Method::OnRelease | Method::OnDead => None,
    }
}

async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}

fn silence_injected_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let injected = info.payload().downcast_ref::<String>().is_some_and(|s| s.starts_with("injected panic"));
        if !injected {
            default(info);
        }
    }));
}

#[tokio::test(start_paused = true)]
async fn async_pool_survives_a_panic_in_every_method() {
    silence_injected_panics();
    for m in METHODS {
        let case = format!("async {m:?}");
        let pool = Pool::builder(Panicky::default())
            .max_size(1)
            .retry_limit(0)
            .acquire_timeout(Some(Duration::from_secs(1)))
            .validation_bypass(Duration::ZERO)
            .build()
            .unwrap();
        if m != Method::Create {
            drop(pool.get().await.unwrap());
        }
        if m == Method::OnDead {
            pool.manager().dead.store(true, Ordering::Relaxed);
        }
        pool.manager().arm(m);
        let got = pool.get().await;
        pool.manager().dead.store(false, Ordering::Relaxed);
        match (expected(m), got) {
            (None, Ok(mut conn)) => {
                if m == Method::Dispose {
                    Pooled::mark_broken(&mut conn);
                }
            }
            (Some(kind), Err(e)) => assert_eq!(e.kind(), kind, "{case}: {e}"),
            (want, got) => panic!("{case}: wanted {want:?}, got {:?}", got.map(|c| *c)),
        }
        settle().await;
        assert_eq!(*pool.manager().armed.lock().unwrap(), None, "{case}: the panic was not reached");
        pool.assert_invariants();
        let s = pool.status().pool;
        assert_eq!((s.in_use, s.creating, s.waiting), (0, 0, 0), "{case}: {s}");
        let next = pool.get().await.unwrap_or_else(|e| panic!("{case}: the slot was not freed: {e}"));
        drop(next);
        let report = pool.close_timeout(Duration::from_secs(5)).await;
        assert!(report.is_clean(), "{case}: {report:?}");
        pool.manager().assert_disposed_once(&case);
    }
}

/// An explicit release whose hook panics reports it, and the slot is free.
#[tokio::test(start_paused = true)]
async fn async_explicit_release_survives_a_panicking_hook() {
    silence_injected_panics();
    let pool =
        Pool::builder(Panicky::default()).max_size(1).acquire_timeout(Some(Duration::from_secs(1))).build().unwrap();
    let conn = pool.get().await.unwrap();
    pool.manager().arm(Method::OnRelease);
    let e = Pooled::release(conn).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Panic(Phase::OnRelease));
    drop(pool.get().await.expect("the slot is free"));
    assert!(pool.close_timeout(Duration::from_secs(5)).await.is_clean());
    pool.manager().assert_disposed_once("explicit release");
}

#[test]
fn blocking_pool_survives_a_panic_in_every_method() {
    silence_injected_panics();
    for m in METHODS {
        let pool = kpool::blocking::Pool::builder(Panicky::default())
            .max_size(1)
            .retry_limit(0)
            .acquire_timeout(Some(Duration::from_secs(5)))
            .validation_bypass(Duration::ZERO)
            .build()
            .unwrap();
        blocking_case(&pool, m, &format!("blocking {m:?}"));
    }
}

/// As the async case; the blocking pool runs `on_release` when the guard
/// drops, so that panic is met there and the acquire after it succeeds.
fn blocking_case(pool: &kpool::blocking::Pool<Panicky>, m: Method, case: &str) {
    use kpool::blocking::Pooled;
    if m != Method::Create {
        drop(pool.get().unwrap());
    }
    if m == Method::OnDead {
        pool.manager().dead.store(true, Ordering::Relaxed);
    }
    pool.manager().arm(m);
    match pool.get() {
        Ok(mut conn) => {
            if m == Method::Dispose {
                Pooled::mark_broken(&mut conn);
            }
        }
        Err(e) => assert_eq!(Some(e.kind()), expected(m), "{case}: {e}"),
    }
    if m == Method::OnRelease {
        // Armed but not reached by the acquire: the drop above ran the hook.
        assert_eq!(*pool.manager().armed.lock().unwrap(), None, "{case}: on_release did not run on drop");
    }
    pool.manager().dead.store(false, Ordering::Relaxed);
    // `dispose` runs on the disposer thread: give it a moment.
    for _ in 0..1000 {
        if pool.manager().armed.lock().unwrap().is_none() {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(*pool.manager().armed.lock().unwrap(), None, "{case}: the panic was not reached");
    pool.assert_invariants();
    let s = pool.status().pool;
    assert_eq!((s.in_use, s.creating, s.waiting), (0, 0, 0), "{case}: {s}");
    let next =
        pool.get_timeout(Duration::from_secs(5)).unwrap_or_else(|e| panic!("{case}: the slot was not freed: {e}"));
    drop(next);
    let report = pool.close_timeout(Duration::from_secs(5));
    assert!(report.is_clean(), "{case}: {report:?}");
    pool.manager().assert_disposed_once(case);
}

/// `Pooled::release` dropped while its `on_release` hook runs (a timeout
/// around it, a cancelled task): the connection must not vanish with the
/// future, or its slot is gone for good.
#[tokio::test(start_paused = true)]
async fn dropping_an_explicit_release_midway_leaks_nothing() {
    let pool =
        Pool::builder(Panicky::default()).max_size(1).acquire_timeout(Some(Duration::from_secs(1))).build().unwrap();
    let conn = pool.get().await.unwrap();
    pool.manager().hang_release.store(true, Ordering::Relaxed);
    let release = Pooled::release(conn);
    assert!(tokio::time::timeout(Duration::from_millis(10), release).await.is_err(), "the hook hangs");
    pool.manager().hang_release.store(false, Ordering::Relaxed);
    settle().await;
    pool.assert_invariants();
    assert_eq!(pool.status().pool.in_use, 0, "the connection went with the dropped future");
    drop(pool.get().await.expect("the slot is free"));
    assert!(pool.close_timeout(Duration::from_secs(5)).await.is_clean());
    pool.manager().assert_disposed_once("dropped release");
}
