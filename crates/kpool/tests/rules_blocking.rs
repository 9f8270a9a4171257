//! SPEC section 3 for the blocking pool. Timers use short real durations, and
//! assertions are about outcomes (sleeping past a deadline), never timing.

mod common;

use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::{Fault, Mgr};
use kpool::blocking::{Builder, Pool, Pooled};
use kpool::{DisposeReason, ErrorKind, Phase};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

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
        .acquire_timeout(Some(Duration::from_secs(10)))
        .validation_bypass(Duration::ZERO)
}

/// Waits (bounded) until `f` holds.
fn eventually(what: &str, f: impl Fn() -> bool) {
    for _ in 0..2000 {
        if f() {
            return;
        }
        thread::sleep(ms(1));
    }
    panic!("never happened: {what}");
}

#[test]
fn core_fifo_and_extra_lifo() {
    let pool = builder().min_idle(2).build().unwrap();
    let v: Vec<_> = (0..4).map(|_| pool.get().unwrap()).collect();
    let ids: Vec<u64> = v.iter().map(|c| c.id).collect();
    drop(v); // 0, 1 core; 2, 3 extra
    let order: Vec<u64> = (0..2).map(|_| pool.get().unwrap().id).collect();
    assert_eq!(order, vec![ids[0], ids[1]], "core round robin");
    let a = pool.get().unwrap();
    let b = pool.get().unwrap();
    let c = pool.get().unwrap();
    assert_eq!((a.id, b.id), (ids[0], ids[1]));
    assert_eq!(c.id, ids[3], "then the hottest extra");
}

#[test]
fn waiters_are_served_fifo_by_hand_off() {
    let pool = builder().max_size(1).build().unwrap();
    let held = pool.get().unwrap();
    let order = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let mut threads = Vec::new();
    for i in 0..4 {
        let (p, order) = (pool.clone(), order.clone());
        threads.push(thread::spawn(move || {
            let c = p.get().unwrap();
            order.lock().push(i);
            thread::sleep(ms(2));
            drop(c);
        }));
        eventually("queued", || pool.status().pool.waiting == i + 1);
    }
    drop(held);
    let again = pool.get().unwrap();
    assert_eq!(*order.lock(), vec![0, 1, 2, 3], "the releaser did not barge");
    drop(again);
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(pool.manager().created(), 1);
}

#[test]
fn wait_times_out_with_the_pool_state() {
    let pool = builder().max_size(1).acquire_timeout(Some(ms(50))).build().unwrap();
    let _held = pool.get().unwrap();
    let err = pool.get().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout(Phase::Wait));
    assert_eq!(err.status().unwrap().waiting, 1);
    assert_eq!(pool.status().pool.waiting, 0);
    assert_eq!(pool.counters().timeouts, 1);
}

#[test]
fn expired_connections_are_never_handed_out() {
    let pool = builder().max_lifetime(Some(ms(30))).build().unwrap();
    let first = pool.get().unwrap().id;
    thread::sleep(ms(60));
    assert_ne!(pool.get().unwrap().id, first);
    eventually("disposed", || pool.manager().disposed() == 1);
    assert_eq!(pool.counters().disposed(DisposeReason::Lifetime), 1);
}

#[test]
fn idle_extras_expire_core_ones_stay() {
    let pool = builder().min_idle(1).idle_timeout(Some(ms(30))).build().unwrap();
    let v: Vec<_> = (0..3).map(|_| pool.get().unwrap()).collect();
    drop(v);
    thread::sleep(ms(60));
    drop(pool.get().unwrap()); // a release collects inline
    assert_eq!(pool.status().pool.total, 1);
    assert_eq!(pool.counters().disposed(DisposeReason::Idle), 2);
}

#[test]
fn background_collector_thread_collects_and_refills() {
    let pool = builder().min_idle(1).idle_timeout(Some(ms(30))).fill_min_idle(true).build().unwrap();
    eventually("filled", || pool.status().pool.idle == 1);
    let v: Vec<_> = (0..3).map(|_| pool.get().unwrap()).collect();
    drop(v);
    eventually("extras collected without traffic", || pool.status().pool.total == 1);
}

#[test]
fn dead_connection_is_replaced_transparently() {
    let pool = builder().build().unwrap();
    let first = pool.get().unwrap().id;
    pool.manager().dead.lock().insert(first);
    assert_ne!(pool.get().unwrap().id, first);
    assert_eq!(*pool.manager().on_dead.lock(), vec![first]);
    assert_eq!(pool.counters().dead_found, 1);
}

#[test]
fn eviction_and_global_waiters_across_endpoints() {
    let pool = builder().max_size(2).total_max_size(Some(2)).build().unwrap();
    let a1 = pool.get_for(&"a").unwrap();
    let a2 = pool.get_for(&"a").unwrap();
    let p = pool.clone();
    let b = thread::spawn(move || p.get_for(&"b").map(|c| c.ep));
    eventually("b waits for global room", || pool.status().pool.waiting == 1);
    drop(a1);
    assert_eq!(b.join().unwrap().unwrap(), "b");
    drop(a2);
    let c = pool.get_for(&"c").unwrap();
    assert_eq!(c.ep, "c");
    assert_eq!(pool.counters().disposed(DisposeReason::Evicted), 2);
    pool.assert_invariants();
}

#[test]
fn burst_and_shrink() {
    let pool = builder().max_size(1).burst_limit(Some(3)).build().unwrap();
    let v: Vec<_> = (0..3).map(|_| pool.get().unwrap()).collect();
    assert_eq!(pool.status().pool.total, 3);
    drop(v);
    assert_eq!(pool.status().pool.total, 1);
    assert_eq!(pool.counters().disposed(DisposeReason::Burst), 2);
}

#[test]
fn hook_errors_follow_the_rules() {
    let pool = builder().build().unwrap();
    pool.manager().set(|s| s.on_acquire = Fault::Fail);
    assert_eq!(pool.get().unwrap_err().kind(), ErrorKind::Backend(Phase::OnAcquire));
    assert_eq!(pool.status().pool.idle, 1, "back idle");
    pool.manager().set(|s| {
        s.on_acquire = Fault::Ok;
        s.on_release = Fault::Fail;
    });
    let c = pool.get().unwrap();
    assert_eq!(Pooled::release(c).unwrap_err().kind(), ErrorKind::Backend(Phase::OnRelease));
    drop(pool.get().unwrap()); // a dropped guard runs the hook too
    assert_eq!(pool.counters().release_errors, 2);
    assert_eq!(pool.status().pool.idle, 1, "still pooled");
    pool.manager().set(|s| s.create = Fault::Fail);
    let _held = pool.get().unwrap();
    assert_eq!(pool.get().unwrap_err().kind(), ErrorKind::Backend(Phase::Create));
    assert_eq!(pool.status().pool.total, 1, "the failed create's slot is free");
}

#[test]
fn create_timeout_is_enforced_on_a_helper_thread() {
    let pool = builder().acquire_timeout(Some(ms(50))).build().unwrap();
    pool.manager().set(|s| s.create = Fault::Slow(ms(300)));
    let err = pool.get().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout(Phase::Create));
    assert_eq!(pool.status().pool.total, 0);
    // The late connection is disposed by its helper thread, not pooled.
    eventually("late create disposed", || pool.manager().disposed() == 1);
    pool.manager().assert_all_disposed_once();
}

#[test]
fn close_wakes_waiters_and_disposes_returns() {
    let pool = builder().max_size(1).build().unwrap();
    let held = pool.get().unwrap();
    let p = pool.clone();
    let waiter = thread::spawn(move || p.get().map(|_| ()));
    eventually("queued", || pool.status().pool.waiting == 1);
    pool.close();
    assert!(waiter.join().unwrap().unwrap_err().is_closed());
    assert!(pool.get().unwrap_err().is_closed());
    let report = pool.close_timeout(ms(20));
    assert_eq!(report.still_out, 1);
    drop(held);
    assert!(pool.close_timeout(Duration::from_secs(2)).is_clean());
    pool.manager().assert_all_disposed_once();
}

#[test]
fn take_frees_room_and_guard_reports_itself() {
    let pool = builder().max_size(1).build().unwrap();
    drop(pool.get().unwrap());
    let c = pool.get().unwrap();
    assert_eq!((Pooled::use_count(&c), *Pooled::endpoint(&c)), (2, "a"));
    assert!(Pooled::age(&c) < Duration::from_secs(60));
    let raw = Pooled::take(c);
    assert_eq!(raw.id, 0);
    assert_eq!(pool.get().unwrap().id, 1);
}

#[test]
fn threads_hammering_keep_the_limits() {
    let pool = builder().max_size(3).total_max_size(Some(5)).build().unwrap();
    let eps = ["a", "b", "c"];
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let pool = pool.clone();
            thread::spawn(move || {
                for i in 0..500 {
                    let c = pool.get_for(&eps[(t + i) % 3]).unwrap();
                    if i % 7 == 0 {
                        thread::yield_now();
                    }
                    drop(c);
                    if i % 50 == 0 {
                        pool.assert_invariants();
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    pool.assert_invariants();
    assert_eq!(pool.counters().acquired, 4000);
    assert!(pool.close_timeout(Duration::from_secs(5)).is_clean());
    pool.manager().assert_all_disposed_once();
}

#[test]
fn failed_cleanup_forces_a_health_check_and_release_consults_is_broken() {
    let pool = builder().validation_bypass(Duration::from_secs(3600)).build().unwrap();
    pool.manager().set(|s| s.on_release = Fault::Fail);
    drop(pool.get().unwrap()); // on_release fails on this return
    drop(pool.get().unwrap());
    assert_eq!(pool.manager().checks(), 1, "checked despite the bypass window");
    pool.manager().set(|s| {
        s.on_release = Fault::Ok;
        s.broken = true;
    });
    let c = pool.get().unwrap();
    Pooled::release(c).unwrap();
    assert_eq!(pool.status().pool.total, 0, "release disposed the broken connection");
}
