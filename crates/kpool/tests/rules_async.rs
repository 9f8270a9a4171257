//! SPEC section 3, rule by rule, for the async pool (paused tokio time).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Fault, Mgr, settle};
use kpool::{Builder, DisposeReason, ErrorKind, Phase, Pool, Pooled};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// A pool with every timer off and no retries, so each test turns on what it needs.
fn builder() -> Builder<Mgr> {
    Pool::builder(Mgr::new())
        .endpoint("a")
        .max_size(4)
        .min_idle(0)
        .max_idle(None)
        .idle_timeout(None)
        .max_lifetime(None)
        .lifetime_jitter(false)
        .retry_limit(0)
        .acquire_timeout(Some(secs(5)))
        .validation_bypass(Duration::ZERO)
}

async fn ids(pool: &Pool<Mgr>, n: usize) -> Vec<Pooled<'_, Mgr>> {
    let mut v = Vec::new();
    for _ in 0..n {
        v.push(pool.get().await.unwrap());
    }
    v
}

#[tokio::test(start_paused = true)]
async fn core_idle_connections_are_reused_round_robin() {
    let pool = builder().min_idle(2).build().unwrap();
    let v = ids(&pool, 2).await;
    let (a, b) = (v[0].id, v[1].id);
    drop(v); // a then b go back, both core
    let mut order = Vec::new();
    for _ in 0..4 {
        order.push(pool.get().await.unwrap().id);
    }
    assert_eq!(order, vec![a, b, a, b], "core connections rotate first in first out");
    pool.assert_invariants();
}

#[tokio::test(start_paused = true)]
async fn extra_idle_connections_are_reused_last_in_first_out() {
    let pool = builder().min_idle(0).build().unwrap();
    let v = ids(&pool, 3).await;
    let last = v[2].id;
    drop(v);
    assert_eq!(pool.get().await.unwrap().id, last, "the hottest extra connection first");
    assert_eq!(pool.get().await.unwrap().id, last, "and again");
}

#[tokio::test(start_paused = true)]
async fn returned_connection_is_core_while_core_slots_remain() {
    let pool = builder().min_idle(1).idle_timeout(Some(secs(10))).build().unwrap();
    let v = ids(&pool, 3).await;
    drop(v); // first back becomes core, the other two extra
    tokio::time::advance(secs(11)).await;
    // Any release collects due extras inline.
    drop(pool.get().await.unwrap());
    let s = pool.status().pool;
    assert_eq!(s.total, 1, "extras idled out, the core one stays: {s}");
    assert_eq!(pool.counters().disposed(DisposeReason::Idle), 2);
}

#[tokio::test(start_paused = true)]
async fn idle_timeout_never_removes_core_connections() {
    let pool = builder().min_idle(2).idle_timeout(Some(secs(10))).build().unwrap();
    drop(ids(&pool, 2).await);
    tokio::time::advance(secs(3600)).await;
    let c = pool.get().await.unwrap();
    drop(c);
    assert_eq!(pool.status().pool.total, 2);
    assert_eq!(pool.manager().created(), 2);
}

#[tokio::test(start_paused = true)]
async fn background_collector_disposes_idle_extras_without_traffic() {
    let pool = builder().collection(kpool::Collection::Background).idle_timeout(Some(secs(10))).build().unwrap();
    drop(ids(&pool, 3).await);
    assert_eq!(pool.status().pool.idle, 3);
    tokio::time::sleep(secs(11)).await;
    settle().await;
    assert_eq!(pool.status().pool.total, 0, "the collector woke at the deadline");
    assert_eq!(pool.manager().disposed(), 3);
}

#[tokio::test(start_paused = true)]
async fn fresh_connection_is_not_checked_reused_one_is_checked_once() {
    let pool = builder().build().unwrap();
    drop(pool.get().await.unwrap());
    assert_eq!(pool.manager().checks(), 0, "fresh: no check");
    drop(pool.get().await.unwrap());
    assert_eq!(pool.manager().checks(), 1, "reused: one check");
}

#[tokio::test(start_paused = true)]
async fn bypass_window_skips_check_for_recently_used() {
    let pool = builder().validation_bypass(Duration::from_millis(500)).build().unwrap();
    drop(pool.get().await.unwrap());
    drop(pool.get().await.unwrap());
    assert_eq!(pool.manager().checks(), 0, "used within the window");
    tokio::time::advance(Duration::from_millis(600)).await;
    drop(pool.get().await.unwrap());
    assert_eq!(pool.manager().checks(), 1, "idle past the window");
}

#[tokio::test(start_paused = true)]
async fn dead_connection_goes_to_on_dead_then_dispose_and_acquire_goes_on() {
    let pool = builder().build().unwrap();
    let first = pool.get().await.unwrap().id;
    pool.manager().dead.lock().insert(first);
    let conn = pool.get().await.unwrap();
    assert_ne!(conn.id, first, "a working connection replaced the dead one");
    assert_eq!(*pool.manager().on_dead.lock(), vec![first]);
    settle().await;
    assert_eq!(*pool.manager().disposed.lock(), vec![first]);
    let c = pool.counters();
    assert_eq!((c.dead_found, c.disposed(DisposeReason::Dead), c.errors), (1, 1, 0));
}

#[tokio::test(start_paused = true)]
async fn no_acquire_returns_a_connection_past_its_lifetime() {
    let pool = builder().max_lifetime(Some(secs(10))).build().unwrap();
    let first = pool.get().await.unwrap().id;
    tokio::time::advance(secs(10)).await;
    let conn = pool.get().await.unwrap();
    assert_ne!(conn.id, first);
    assert_eq!(pool.counters().disposed(DisposeReason::Lifetime), 1);
}

#[tokio::test(start_paused = true)]
async fn lifetime_jitter_only_shortens() {
    let pool = builder().max_lifetime(Some(secs(1000))).lifetime_jitter(true).build().unwrap();
    drop(ids(&pool, 4).await);
    tokio::time::advance(secs(974)).await;
    drop(ids(&pool, 4).await);
    assert_eq!(pool.manager().created(), 4, "none expired before 97.5% of the lifetime");
    tokio::time::advance(secs(27)).await;
    drop(ids(&pool, 4).await);
    assert_eq!(pool.manager().created(), 8, "all expired by 100%");
}

#[tokio::test(start_paused = true)]
async fn connection_expiring_while_checked_out_is_disposed_on_return() {
    let pool = builder().max_lifetime(Some(secs(10))).build().unwrap();
    let conn = pool.get().await.unwrap();
    tokio::time::advance(secs(60)).await;
    settle().await;
    assert_eq!(pool.manager().disposed(), 0, "never disposed under its user");
    assert_eq!(conn.id, 0);
    drop(conn);
    settle().await;
    assert_eq!(pool.manager().disposed(), 1);
    assert_eq!(pool.status().pool.total, 0);
}

#[tokio::test(start_paused = true)]
async fn warm_pool_fills_min_idle_and_refills() {
    let pool = builder().min_idle(2).fill_min_idle(true).build_warm().await.unwrap();
    assert_eq!(pool.status().pool.idle, 2);
    let mut c = pool.get().await.unwrap();
    Pooled::mark_broken(&mut c);
    drop(c);
    tokio::time::sleep(Duration::from_millis(10)).await;
    settle().await;
    assert_eq!(pool.status().pool.idle, 2, "the collector refilled min_idle");
    assert_eq!(pool.manager().created(), 3);
}

#[tokio::test(start_paused = true)]
async fn build_warm_fails_fast_with_the_backend_error() {
    let mgr = Mgr::new();
    mgr.set(|s| s.create = Fault::Fail);
    let err = Pool::builder(mgr).endpoint("a").min_idle(1).build_warm().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Backend(Phase::Create));
    assert_eq!(err.backend().unwrap().0, "create failed");
}

#[tokio::test(start_paused = true)]
async fn waiters_are_served_in_arrival_order_with_direct_hand_off() {
    let pool = builder().max_size(1).build().unwrap();
    let held = pool.get().await.unwrap();
    let order = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 0..5 {
        let (pool, order) = (pool.clone(), order.clone());
        tasks.push(tokio::spawn(async move {
            let c = pool.get().await.unwrap();
            order.lock().push(i);
            tokio::time::sleep(Duration::from_millis(1)).await;
            drop(c);
        }));
        settle().await; // queue in a known order
    }
    assert_eq!(pool.status().pool.waiting, 5);
    drop(held);
    // The releasing task asks again at once: it must queue behind the five.
    let again = pool.get().await.unwrap();
    assert_eq!(*order.lock(), vec![0, 1, 2, 3, 4], "no barging, strict FIFO");
    drop(again);
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(pool.manager().created(), 1, "one connection handed along the line");
}

#[tokio::test(start_paused = true)]
async fn total_max_size_evicts_the_earliest_deadline_idle_connection() {
    let pool = builder().max_size(2).total_max_size(Some(2)).max_lifetime(Some(secs(100))).build().unwrap();
    let a1 = pool.get_for(&"a").await.unwrap();
    tokio::time::advance(secs(5)).await;
    let a2 = pool.get_for(&"a").await.unwrap();
    let (old, young) = (a1.id, a2.id);
    drop(a2);
    drop(a1);
    let b = pool.get_for(&"b").await.unwrap();
    settle().await;
    assert_eq!(*pool.manager().disposed.lock(), vec![old], "the one expiring first was evicted");
    assert_eq!(pool.counters().disposed(DisposeReason::Evicted), 1);
    let status = pool.status();
    assert_eq!(status.endpoint(&"a").unwrap().total, 1);
    assert_eq!(pool.get_for(&"a").await.unwrap().id, young);
    drop(b);
    pool.assert_invariants();
}

#[tokio::test(start_paused = true)]
async fn waiter_for_global_room_is_served_when_a_connection_goes_idle_elsewhere() {
    let pool = builder().max_size(2).total_max_size(Some(2)).build().unwrap();
    let a1 = pool.get_for(&"a").await.unwrap();
    let a2 = pool.get_for(&"a").await.unwrap();
    let p = pool.clone();
    let waiter = tokio::spawn(async move { p.get_for(&"b").await.map(|c| c.ep) });
    settle().await;
    assert_eq!(pool.status().endpoint(&"b").unwrap().waiting, 1);
    drop(a1); // goes idle on "a": must be evicted for the "b" waiter
    assert_eq!(waiter.await.unwrap().unwrap(), "b");
    assert_eq!(pool.counters().disposed(DisposeReason::Evicted), 1);
    drop(a2);
    pool.assert_invariants();
}

#[tokio::test(start_paused = true)]
async fn burst_grows_past_max_size_and_shrinks_back() {
    let pool = builder().max_size(2).burst_limit(Some(4)).build().unwrap();
    let mut held = ids(&pool, 4).await;
    assert_eq!(pool.status().pool.total, 4, "grew to the burst limit");
    let p = pool.clone();
    let fifth = tokio::spawn(async move { p.get().await.map(|c| c.id) });
    settle().await;
    assert_eq!(pool.status().pool.waiting, 1, "the burst limit is hard");
    let handed = held.pop().unwrap();
    let handed_id = handed.id;
    drop(handed); // somebody waits: handed off, not closed
    assert_eq!(fifth.await.unwrap().unwrap(), handed_id);
    // The fifth task dropped its connection when it ended: nobody waited
    // and the endpoint held 4 > 2, so it was closed.
    drop(held.pop()); // 3 > 2: closed
    drop(held.pop()); // 2: kept
    drop(held.pop()); // 2: kept
    settle().await;
    assert_eq!(pool.counters().disposed(DisposeReason::Burst), 2);
    assert_eq!(pool.status().pool.total, 2);
}

#[tokio::test(start_paused = true)]
async fn create_error_reaches_the_caller_and_frees_the_slot() {
    let pool = builder().max_size(1).build().unwrap();
    pool.manager().set(|s| s.create = Fault::Fail);
    let err = pool.get().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Backend(Phase::Create));
    assert_eq!(pool.status().pool.total, 0, "slot freed at once");
    pool.manager().set(|s| s.create = Fault::Ok);
    assert!(pool.get().await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn create_is_retried_with_backoff_within_the_deadline() {
    let pool = builder().retry_limit(2).retry_delay(secs(1)).build().unwrap();
    pool.manager().set(|s| s.create = Fault::Fail);
    let started = tokio::time::Instant::now();
    let err = pool.get().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Backend(Phase::Create));
    assert_eq!(started.elapsed(), secs(3), "1 s then 2 s of backoff");
    assert_eq!(pool.counters().create_failures, 3);
}

#[tokio::test(start_paused = true)]
async fn timeout_carries_the_last_backend_error_and_the_pool_state() {
    let pool = builder().retry_limit(100).retry_delay(secs(1)).acquire_timeout(Some(secs(3))).build().unwrap();
    pool.manager().set(|s| s.create = Fault::Fail);
    let err = pool.get().await.unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert_eq!(err.backend().unwrap().0, "create failed");
    let source = std::error::Error::source(&err).unwrap().to_string();
    assert_eq!(source, "create failed");
    assert!(err.status().is_some());
    assert_eq!(pool.counters().timeouts, 1);
    assert_eq!(pool.counters().errors, 0, "a timeout is not also an error");
}

#[tokio::test(start_paused = true)]
async fn wait_timeout_reports_the_pool_state() {
    let pool = builder().max_size(1).acquire_timeout(Some(secs(2))).build().unwrap();
    let _held = pool.get().await.unwrap();
    let err = pool.get().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout(Phase::Wait));
    let status = err.status().unwrap();
    assert_eq!((status.total, status.in_use, status.waiting), (1, 1, 1));
    assert!(err.to_string().contains("in use 1"), "{err}");
    assert_eq!(pool.status().pool.waiting, 0, "the timed-out waiter left the queue");
}

/// Waits share one timer: a waiter queued behind a later deadline still
/// times out at its own, and the later one at its own.
#[tokio::test(start_paused = true)]
async fn each_waiter_times_out_at_its_own_deadline() {
    let pool = builder().max_size(1).build().unwrap();
    let _held = pool.get().await.unwrap();
    let start = tokio::time::Instant::now();
    let long = pool.get_timeout(secs(30));
    let short = async {
        tokio::task::yield_now().await; // queue behind the long wait
        let err = pool.get_timeout(secs(2)).await.unwrap_err();
        (err, start.elapsed())
    };
    let ((short_err, short_at), long_res) = tokio::join!(short, async {
        let r = long.await;
        (r.map(|_| ()), start.elapsed())
    });
    assert!(short_err.is_timeout(), "{short_err}");
    assert_eq!(short_at, secs(2), "the short wait ends at its deadline, not the long one's");
    let (long_err, long_at) = long_res;
    assert!(long_err.unwrap_err().is_timeout());
    assert_eq!(long_at, secs(30));
    assert_eq!(pool.status().pool.waiting, 0);
    assert_eq!(pool.counters().timeouts, 2);
}

/// A waiter served before its deadline is not timed out later, and the
/// timer keeps serving the waits that come after.
#[tokio::test(start_paused = true)]
async fn a_served_waiter_is_not_timed_out_and_later_waits_still_are() {
    let pool = builder().max_size(1).acquire_timeout(Some(secs(5))).build().unwrap();
    let held = pool.get().await.unwrap();
    let (got, ()) = tokio::join!(pool.get(), async {
        tokio::time::sleep(secs(1)).await;
        drop(held);
    });
    let got = got.unwrap();
    tokio::time::sleep(secs(10)).await; // past the served waiter's deadline
    assert_eq!(pool.counters().timeouts, 0);
    let start = tokio::time::Instant::now();
    assert!(pool.get().await.unwrap_err().is_timeout());
    assert_eq!(start.elapsed(), secs(5));
    drop(got);
}

/// The wait timer runs on the runtime of the first wait; when that runtime
/// goes away, a wait on another runtime starts a new one.
#[test]
fn waits_time_out_after_the_first_runtime_is_gone() {
    let pool = builder().max_size(1).acquire_timeout(Some(Duration::from_millis(20))).build().unwrap();
    let rt = || tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    for _ in 0..2 {
        let err = rt().block_on(async {
            let _held = pool.get().await.unwrap();
            let wait = tokio::time::timeout(secs(5), pool.get()).await;
            wait.expect("the wait timed out by the pool, not by this guard").unwrap_err()
        });
        assert!(err.is_timeout(), "{err}");
    }
    assert_eq!(pool.counters().timeouts, 2);
}

/// A `dispose` that returns `std::future::Ready` (here `FnManager`'s closer)
/// runs inline once the pool has seen one; every connection is still closed
/// exactly once, and a closer that panics is counted as a failed disposal
/// without reaching the caller.
#[tokio::test(start_paused = true)]
async fn a_ready_dispose_runs_inline_and_its_panic_is_contained() {
    use std::sync::Mutex;
    let closed = Arc::new(Mutex::new(Vec::new()));
    let next = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let manager = kpool::FnManager::new(move |(): ()| {
        let id = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        async move { Ok::<_, std::io::Error>(id) }
    })
    .close({
        let closed = closed.clone();
        move |id: u32| {
            closed.lock().unwrap().push(id);
            assert_ne!(id, 2, "closer panics on connection 2");
        }
    });
    let pool = Pool::builder(manager).max_size(1).build().unwrap();
    for _ in 0..4 {
        let mut conn = pool.get().await.unwrap();
        Pooled::mark_broken(&mut conn);
        drop(conn); // disposed: the first in a task, the next ones inline
        settle().await;
        assert_eq!(pool.status().pool.total, 0);
    }
    assert_eq!(*closed.lock().unwrap(), vec![0, 1, 2, 3], "each connection closed once, in order");
    let c = pool.counters();
    assert_eq!(c.disposed_total(), 4);
    assert_eq!(c.dispose_errors, 1, "the panic is counted");
    assert_eq!(pool.status().pool.total, 0);
}

/// A waiter on one runtime still times out when the runtime that ran the
/// wait timer shuts down while it waits.
#[test]
fn a_waiter_times_out_when_the_timer_runtime_shuts_down_meanwhile() {
    let pool = builder().max_size(1).build().unwrap();
    let rt = || tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    let first = rt();
    let held = first.block_on(async {
        let held = pool.get_owned().await.unwrap();
        // A wait that starts the wait timer on this runtime, then gives up.
        assert!(tokio::time::timeout(Duration::from_millis(5), pool.get()).await.is_err());
        held
    });
    let (tx, rx) = std::sync::mpsc::channel();
    let waiting = {
        let pool = pool.clone();
        std::thread::spawn(move || {
            let res = rt().block_on(async { pool.get_timeout(Duration::from_millis(300)).await.map(|_| ()) });
            tx.send(res).unwrap();
        })
    };
    while pool.status().pool.waiting == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    drop(first); // the timer's runtime goes away while the other caller waits
    let res = rx.recv_timeout(secs(10)).expect("the waiter was timed out, not left hanging");
    assert!(res.unwrap_err().is_timeout());
    waiting.join().unwrap();
    drop(held);
}

#[tokio::test(start_paused = true)]
async fn check_error_reaches_the_caller_and_the_connection_is_dead() {
    let pool = builder().build().unwrap();
    drop(pool.get().await.unwrap());
    pool.manager().set(|s| s.check = Fault::Fail);
    let err = pool.get().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Backend(Phase::Check));
    settle().await;
    assert_eq!(pool.manager().disposed(), 1);
    assert_eq!(pool.status().pool.total, 0);
}

#[tokio::test(start_paused = true)]
async fn on_acquire_error_reaches_the_caller_and_the_connection_goes_back_idle() {
    let pool = builder().build().unwrap();
    pool.manager().set(|s| s.on_acquire = Fault::Fail);
    let err = pool.get().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Backend(Phase::OnAcquire));
    let s = pool.status().pool;
    assert_eq!((s.total, s.idle), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn on_release_error_keeps_the_connection_and_is_counted() {
    let pool = builder().build().unwrap();
    pool.manager().set(|s| s.on_release = Fault::Fail);
    let conn = pool.get().await.unwrap();
    let id = conn.id;
    let err = Pooled::release(conn).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Backend(Phase::OnRelease));
    assert_eq!(pool.status().pool.idle, 1);
    assert_eq!(pool.counters().release_errors, 1);
    // Dropped guards defer the hook to the next checkout; still pooled.
    drop(pool.get().await.unwrap());
    assert_eq!(pool.get().await.unwrap().id, id);
    assert_eq!(pool.counters().release_errors, 2);
}

#[tokio::test(start_paused = true)]
async fn dispose_error_is_swallowed_and_the_pool_keeps_serving() {
    let pool = builder().build().unwrap();
    pool.manager().set(|s| s.dispose = Fault::Fail);
    let mut c = pool.get().await.unwrap();
    Pooled::mark_broken(&mut c);
    drop(c);
    settle().await;
    assert_eq!(pool.counters().dispose_errors, 1);
    assert_eq!(pool.status().pool.total, 0, "counts as gone");
    assert!(pool.get().await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn is_broken_disposes_on_return() {
    let pool = builder().build().unwrap();
    pool.manager().set(|s| s.broken = true);
    drop(pool.get().await.unwrap());
    settle().await;
    assert_eq!(pool.counters().disposed(DisposeReason::Broken), 1);
    assert_eq!(pool.status().pool.total, 0);
}

#[tokio::test(start_paused = true)]
async fn max_idle_caps_idle_connections() {
    let pool = builder().max_idle(Some(2)).build().unwrap();
    drop(ids(&pool, 4).await);
    settle().await;
    assert_eq!(pool.status().pool.idle, 2);
    assert_eq!(pool.counters().disposed(DisposeReason::Idle), 2);
}

#[tokio::test(start_paused = true)]
async fn close_wakes_waiters_rejects_acquires_and_disposes() {
    let pool = builder().max_size(1).build().unwrap();
    let held = pool.get().await.unwrap();
    let p = pool.clone();
    let waiter = tokio::spawn(async move { p.get().await.map(|_| ()) });
    settle().await;
    pool.close();
    assert!(waiter.await.unwrap().unwrap_err().is_closed());
    assert!(pool.get().await.unwrap_err().is_closed());
    drop(held); // returning after close never fails; disposed
    let report = pool.close_timeout(secs(1)).await;
    assert!(report.is_clean(), "{report:?}");
    pool.manager().assert_all_disposed_once();
    pool.close(); // twice: harmless
}

#[tokio::test(start_paused = true)]
async fn close_timeout_reports_connections_still_out() {
    let pool = builder().build().unwrap();
    drop(pool.get().await.unwrap());
    let held = pool.get().await.unwrap();
    let report = pool.close_timeout(secs(2)).await;
    assert_eq!(report.still_out, 1);
    assert_eq!(pool.manager().disposed(), 0, "never disposed under its user");
    drop(held);
    settle().await;
    assert_eq!(pool.manager().disposed(), 1);
}

#[tokio::test(start_paused = true)]
async fn close_timeout_returns_once_everything_is_back() {
    let pool = builder().build().unwrap();
    let held = pool.get_owned().await.unwrap();
    tokio::spawn(async move {
        tokio::time::sleep(secs(1)).await;
        drop(held);
    });
    let started = tokio::time::Instant::now();
    let report = pool.close_timeout(secs(30)).await;
    assert!(report.is_clean());
    assert!(started.elapsed() < secs(30), "returned when the guard came back");
}

#[tokio::test(start_paused = true)]
async fn keyed_pool_without_default_endpoint_says_so() {
    let pool = Pool::builder(Mgr::new()).build().unwrap();
    let err = pool.get().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NoEndpoint);
    assert!(err.to_string().contains("get_for"));
    assert_eq!(pool.get_for(&"x").await.unwrap().ep, "x");
}

#[tokio::test(start_paused = true)]
async fn guard_reports_age_uses_endpoint_and_can_be_taken() {
    let pool = builder().max_size(1).build().unwrap();
    drop(pool.get().await.unwrap());
    tokio::time::advance(secs(3)).await;
    let c = pool.get().await.unwrap();
    assert_eq!(Pooled::use_count(&c), 2);
    assert_eq!(*Pooled::endpoint(&c), "a");
    assert_eq!(Pooled::age(&c), secs(3));
    let raw = Pooled::take(c);
    assert_eq!(raw.id, 0);
    assert_eq!(pool.status().pool.total, 0, "taking frees the room");
    assert_eq!(pool.get().await.unwrap().id, 1);
    assert_eq!(pool.counters().detached, 1);
}

#[tokio::test(start_paused = true)]
async fn owned_guard_can_be_moved_into_a_task() {
    let pool = builder().build().unwrap();
    let c = pool.get_owned().await.unwrap();
    tokio::spawn(async move { assert_eq!(c.id, 0) }).await.unwrap();
    assert_eq!(pool.status().pool.idle, 1);
}

#[tokio::test(start_paused = true)]
async fn connection_returns_when_its_holder_panics() {
    let pool = builder().build().unwrap();
    let p = pool.clone();
    let res = tokio::spawn(async move {
        let _c = p.get().await.unwrap();
        panic!("user code panicked");
    })
    .await;
    assert!(res.is_err());
    assert_eq!(pool.status().pool.idle, 1);
}

#[tokio::test(start_paused = true)]
async fn fn_manager_pools_with_closures() {
    let pool =
        Pool::builder(kpool::FnManager::new(|ep: u8| async move { Ok::<_, std::io::Error>(ep) }).validate(|c| *c != 0))
            .build()
            .unwrap();
    assert_eq!(*pool.get_for(&7).await.unwrap(), 7);
}

#[tokio::test(start_paused = true)]
async fn failed_cleanup_forces_a_health_check_inside_the_bypass_window() {
    let pool = builder().validation_bypass(secs(3600)).build().unwrap();
    drop(pool.get().await.unwrap());
    drop(pool.get().await.unwrap());
    assert_eq!(pool.manager().checks(), 0, "within the bypass window");
    pool.manager().set(|s| s.on_release = Fault::Fail);
    let first = pool.get().await.unwrap().id; // the deferred hook fails here
    assert_eq!(pool.manager().checks(), 1, "a suspect connection is checked at once");
    pool.manager().set(|s| s.on_release = Fault::Ok);
    pool.manager().dead.lock().insert(first);
    let c = pool.get().await.unwrap(); // the check passed: no longer suspect
    assert_eq!(c.id, first, "healthy again: the bypass applies");
    drop(c);
    pool.manager().set(|s| s.on_release = Fault::Fail);
    let c = pool.get().await.unwrap();
    assert_ne!(c.id, first, "suspect and dead: replaced, the caller sees no error");
}

#[tokio::test(start_paused = true)]
async fn explicit_release_consults_is_broken() {
    let pool = builder().build().unwrap();
    let c = pool.get().await.unwrap();
    pool.manager().set(|s| s.broken = true);
    Pooled::release(c).await.unwrap();
    assert_eq!(pool.status().pool.total, 0);
    assert_eq!(pool.counters().disposed(DisposeReason::Broken), 1);
}
