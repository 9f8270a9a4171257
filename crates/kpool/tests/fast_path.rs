//! The async pool's synchronous fast path, taken when `on_acquire` and
//! `on_release` are the default (`std::future::Ready`) hooks: a due health
//! check is started inline and, if it does not finish at once, continued by
//! the acquire future itself. Every outcome must match the slow path's
//! (paused tokio time).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Fault, Mgr, TestConn, TestError, settle};
use kpool::{ErrorKind, Phase, Pool};

/// The scripted manager with the default hooks, so the fast path applies.
struct ReadyHooks(Arc<Mgr>);

impl kpool::Manager for ReadyHooks {
    type Endpoint = &'static str;
    type Connection = TestConn;
    type Error = TestError;

    async fn create(&self, ep: &&'static str) -> Result<TestConn, TestError> {
        kpool::Manager::create(&*self.0, ep).await
    }

    async fn dispose(&self, ep: &&'static str, conn: TestConn) -> Result<(), TestError> {
        kpool::Manager::dispose(&*self.0, ep, conn).await
    }

    async fn check_alive(&self, ep: &&'static str, conn: &mut TestConn) -> Result<bool, TestError> {
        kpool::Manager::check_alive(&*self.0, ep, conn).await
    }

    fn is_broken(&self, ep: &&'static str, conn: &TestConn) -> bool {
        kpool::Manager::is_broken(&*self.0, ep, conn)
    }

    fn on_dead(&self, ep: &&'static str, conn: &mut TestConn) {
        kpool::Manager::on_dead(&*self.0, ep, conn);
    }
}

/// A pool that checks every reuse (no bypass window), with one connection
/// made and returned, so the next acquire reuses it through a check.
async fn pool_with_one_idle() -> (Pool<ReadyHooks>, Arc<Mgr>, u64) {
    pool_with_one_idle_and(|b| b).await
}

async fn pool_with_one_idle_and(
    tweak: impl FnOnce(kpool::Builder<ReadyHooks>) -> kpool::Builder<ReadyHooks>,
) -> (Pool<ReadyHooks>, Arc<Mgr>, u64) {
    let mgr = Arc::new(Mgr::new());
    let builder = Pool::builder(ReadyHooks(mgr.clone()))
        .endpoint("a")
        .max_size(2)
        .min_idle(0)
        .validation_bypass(Duration::ZERO)
        .acquire_timeout(Some(Duration::from_secs(5)))
        .retry_limit(0);
    let pool = tweak(builder).build().unwrap();
    // The pool learns that the hooks finish at once by running each through
    // the slow path once: on_acquire on the first acquire, on_release on the
    // second.
    let id = pool.get().await.unwrap().id;
    assert_eq!(pool.get().await.unwrap().id, id);
    settle().await;
    mgr.checks.store(0, std::sync::atomic::Ordering::SeqCst);
    pool.reset_metrics();
    (pool, mgr, id)
}

#[tokio::test(start_paused = true)]
async fn a_passing_check_hands_out_the_same_connection() {
    let (pool, mgr, id) = pool_with_one_idle().await;
    let conn = pool.get().await.unwrap();
    assert_eq!(conn.id, id);
    assert_eq!(mgr.checks(), 1);
    drop(conn);
    pool.assert_invariants();
    assert_eq!(pool.counters().acquired, 1);
}

#[tokio::test(start_paused = true)]
async fn a_dead_connection_is_disposed_and_the_acquire_goes_on() {
    let (pool, mgr, id) = pool_with_one_idle().await;
    mgr.dead.lock().insert(id);
    let conn = pool.get().await.unwrap();
    assert_ne!(conn.id, id, "a fresh connection replaces the dead one");
    settle().await;
    assert_eq!(*mgr.disposed.lock(), vec![id]);
    assert_eq!(*mgr.on_dead.lock(), vec![id], "on_dead ran");
    assert_eq!(pool.status().pool.total, 1);
}

#[tokio::test(start_paused = true)]
async fn after_a_dead_connection_the_next_idle_one_is_checked_and_handed_out() {
    let (pool, mgr, id) = pool_with_one_idle().await;
    let (a, b) = (pool.get().await.unwrap(), pool.get().await.unwrap());
    let (a_id, b_id) = (a.id, b.id);
    assert_eq!(a_id, id);
    drop(a);
    drop(b); // extra connections are reused last in, first out: b first
    settle().await;
    mgr.checks.store(0, std::sync::atomic::Ordering::SeqCst);
    mgr.dead.lock().insert(b_id);
    let conn = pool.get().await.unwrap();
    assert_eq!(conn.id, a_id, "the other idle connection, not a new one");
    assert_eq!(mgr.checks(), 2, "both were checked");
    settle().await;
    assert_eq!(*mgr.disposed.lock(), vec![b_id]);
    assert_eq!(mgr.created(), 2, "nothing created");
}

#[tokio::test(start_paused = true)]
async fn a_failing_check_reaches_the_caller_and_disposes() {
    let (pool, mgr, id) = pool_with_one_idle().await;
    mgr.set(|s| s.check = Fault::Fail);
    let err = pool.get().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Backend(Phase::Check), "{err}");
    settle().await;
    assert_eq!(*mgr.disposed.lock(), vec![id]);
    assert_eq!(pool.status().pool.total, 0);
    assert_eq!(pool.counters().errors, 1);
}

#[tokio::test(start_paused = true)]
async fn a_panicking_check_is_an_error_and_the_pool_goes_on() {
    let (pool, mgr, id) = pool_with_one_idle().await;
    mgr.set(|s| s.check = Fault::Panic);
    let err = pool.get().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Panic(Phase::Check), "{err}");
    settle().await;
    assert_eq!(*mgr.disposed.lock(), vec![id]);
    mgr.set(|s| s.check = Fault::Ok);
    assert_ne!(pool.get().await.unwrap().id, id);
}

#[tokio::test(start_paused = true)]
async fn a_slow_check_is_awaited_by_the_acquire() {
    let (pool, mgr, id) = pool_with_one_idle().await;
    mgr.set(|s| s.check = Fault::Slow(Duration::from_secs(1)));
    let start = tokio::time::Instant::now();
    let conn = pool.get().await.unwrap();
    assert_eq!(conn.id, id);
    assert_eq!(start.elapsed(), Duration::from_secs(1));
    let wait = pool.metrics().pool.acquire_wait;
    assert_eq!(wait.max, Duration::from_secs(1), "the check counts as waiting");
}

#[tokio::test(start_paused = true)]
async fn a_check_past_the_deadline_times_out_and_disposes() {
    let (pool, mgr, id) = pool_with_one_idle().await;
    mgr.set(|s| s.check = Fault::Hang);
    let err = pool.get_timeout(Duration::from_secs(2)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout(Phase::Check), "{err}");
    settle().await;
    assert_eq!(*mgr.disposed.lock(), vec![id]);
    assert_eq!(pool.status().pool.total, 0);
    assert_eq!(pool.counters().timeouts, 1);
}

#[tokio::test(start_paused = true)]
async fn an_acquire_dropped_during_its_check_disposes_the_connection() {
    let (pool, mgr, id) = pool_with_one_idle().await;
    mgr.set(|s| s.check = Fault::Hang);
    let res = tokio::time::timeout(Duration::from_secs(1), pool.get()).await;
    assert!(res.is_err(), "still checking when dropped");
    settle().await;
    assert_eq!(*mgr.disposed.lock(), vec![id], "a connection interrupted mid-check is not trusted");
    assert_eq!(pool.status().pool.total, 0, "its room is free");
    mgr.set(|s| s.check = Fault::Ok);
    assert!(pool.get().await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn an_owned_acquire_checks_through_the_slow_path() {
    let (pool, mgr, id) = pool_with_one_idle().await;
    mgr.dead.lock().insert(id);
    let conn = pool.get_owned().await.unwrap();
    assert_ne!(conn.id, id);
    assert_eq!(mgr.checks(), 1);
}

// Creates started by the fast path: the pool holds one connection (held by
// the test), so the next acquire reserves room and creates.

#[tokio::test(start_paused = true)]
async fn a_slow_create_is_awaited_by_the_acquire() {
    let (pool, mgr, id) = pool_with_one_idle().await;
    let held = pool.get().await.unwrap();
    assert_eq!(held.id, id);
    mgr.set(|s| s.create = Fault::Slow(Duration::from_secs(1)));
    let start = tokio::time::Instant::now();
    let fresh = pool.get().await.unwrap();
    assert_ne!(fresh.id, id);
    assert_eq!(start.elapsed(), Duration::from_secs(1));
    assert_eq!(pool.metrics().pool.acquire_wait.max, Duration::from_secs(1), "creating counts as waiting");
    assert_eq!(mgr.checks(), 1, "a fresh connection is not checked");
    assert_eq!(pool.status().pool.total, 2);
}

#[tokio::test(start_paused = true)]
async fn a_failed_create_is_retried_with_the_pools_policy() {
    let (pool, mgr, _) = pool_with_one_idle_and(|b| b.retry_limit(1).retry_delay(Duration::from_secs(1))).await;
    let _held = pool.get().await.unwrap();
    mgr.set(|s| s.create = Fault::Fail);
    let start = tokio::time::Instant::now();
    let ((), got) = tokio::join!(
        async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            mgr.set(|s| s.create = Fault::Ok); // the retry succeeds
        },
        pool.get()
    );
    assert!(got.is_ok());
    assert_eq!(start.elapsed(), Duration::from_secs(1), "one backoff");
    assert_eq!(pool.counters().create_failures, 1);
}

#[tokio::test(start_paused = true)]
async fn a_failed_create_without_retries_is_the_callers_error_and_frees_the_room() {
    let (pool, mgr, _) = pool_with_one_idle().await;
    let _held = pool.get().await.unwrap();
    mgr.set(|s| s.create = Fault::Fail);
    let err = pool.get().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Backend(Phase::Create), "{err}");
    assert_eq!(pool.status().pool.total, 1, "the reservation was freed");
    mgr.set(|s| s.create = Fault::Panic);
    let err = pool.get().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Panic(Phase::Create), "{err}");
    assert_eq!(pool.status().pool.total, 1);
    mgr.set(|s| s.create = Fault::Ok);
    assert!(pool.get().await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_create_past_the_deadline_times_out() {
    let (pool, mgr, _) = pool_with_one_idle().await;
    let _held = pool.get().await.unwrap();
    mgr.set(|s| s.create = Fault::Hang);
    let err = pool.get_timeout(Duration::from_secs(2)).await.unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert_eq!(pool.status().pool.total, 1);
}

#[tokio::test(start_paused = true)]
async fn an_acquire_dropped_during_its_create_frees_the_room() {
    let (pool, mgr, _) = pool_with_one_idle().await;
    let _held = pool.get().await.unwrap();
    mgr.set(|s| s.create = Fault::Hang);
    assert!(tokio::time::timeout(Duration::from_secs(1), pool.get()).await.is_err());
    assert_eq!(pool.status().pool.total, 1, "the reservation was freed");
    assert_eq!(pool.status().pool.creating, 0);
    mgr.set(|s| s.create = Fault::Ok);
    assert!(pool.get().await.is_ok());
}
