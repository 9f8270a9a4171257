//! Dropping an acquire future at every await point leaks nothing.

mod common;

use std::time::Duration;

use common::{Fault, Mgr, settle};
use futures_util::FutureExt;
use kpool::{Builder, Pool};

fn builder() -> Builder<Mgr> {
    Pool::builder(Mgr::new())
        .endpoint("a")
        .max_size(1)
        .min_idle(0)
        .retry_limit(0)
        .acquire_timeout(Some(Duration::from_secs(30)))
        .validation_bypass(Duration::ZERO)
}

#[tokio::test(start_paused = true)]
async fn cancel_while_waiting_leaves_the_queue() {
    let pool = builder().build().unwrap();
    let held = pool.get().await.unwrap();
    let mut fut = Box::pin(pool.get());
    assert!((&mut fut).now_or_never().is_none(), "queued");
    assert_eq!(pool.status().pool.waiting, 1);
    drop(fut);
    assert_eq!(pool.status().pool.waiting, 0);
    drop(held);
    assert_eq!(pool.status().pool.idle, 1, "no waiter took the connection");
    pool.assert_invariants();
}

#[tokio::test(start_paused = true)]
async fn cancel_while_creating_frees_the_reservation() {
    let pool = builder().build().unwrap();
    pool.manager().set(|s| s.create = Fault::Hang);
    let res = tokio::time::timeout(Duration::from_secs(1), pool.get()).await;
    assert!(res.is_err(), "still creating when cancelled");
    let s = pool.status().pool;
    assert_eq!((s.total, s.creating), (0, 0));
    pool.manager().set(|s| s.create = Fault::Ok);
    assert!(pool.get().await.is_ok(), "the slot is usable again");
    assert_eq!(pool.counters().create_failures, 1);
}

#[tokio::test(start_paused = true)]
async fn cancel_while_checking_disposes_the_untrusted_connection() {
    let pool = builder().build().unwrap();
    drop(pool.get().await.unwrap());
    pool.manager().set(|s| s.check = Fault::Hang);
    assert!(tokio::time::timeout(Duration::from_secs(1), pool.get()).await.is_err());
    settle().await;
    assert_eq!(pool.status().pool.total, 0, "interrupted mid-check: disposed, not reused");
    assert_eq!(pool.manager().disposed(), 1);
    pool.manager().set(|s| s.check = Fault::Ok);
    assert!(pool.get().await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn cancel_while_in_on_acquire_disposes_the_connection() {
    let pool = builder().build().unwrap();
    pool.manager().set(|s| s.on_acquire = Fault::Hang);
    assert!(tokio::time::timeout(Duration::from_secs(1), pool.get()).await.is_err());
    settle().await;
    assert_eq!(pool.status().pool.total, 0);
    pool.manager().assert_all_disposed_once();
}

#[tokio::test(start_paused = true)]
async fn connection_handed_to_a_cancelled_waiter_goes_to_the_next_one() {
    let pool = builder().build().unwrap();
    let held = pool.get().await.unwrap();
    let id = held.id;
    let mut first = Box::pin(pool.get());
    let mut second = Box::pin(pool.get());
    assert!((&mut first).now_or_never().is_none());
    assert!((&mut second).now_or_never().is_none());
    drop(held); // handed to `first`, which never picks it up
    drop(first);
    let got = second.await.unwrap();
    assert_eq!(got.id, id);
    assert_eq!(pool.manager().created(), 1);
}

#[tokio::test(start_paused = true)]
async fn connection_handed_to_a_cancelled_waiter_goes_back_idle_when_nobody_waits() {
    let pool = builder().build().unwrap();
    let held = pool.get().await.unwrap();
    let mut first = Box::pin(pool.get());
    assert!((&mut first).now_or_never().is_none());
    drop(held);
    drop(first);
    let s = pool.status().pool;
    assert_eq!((s.idle, s.in_use, s.waiting), (1, 0, 0));
}

#[tokio::test(start_paused = true)]
async fn room_granted_to_a_cancelled_waiter_goes_to_the_next_one() {
    let pool = builder().build().unwrap();
    let mut held = pool.get().await.unwrap();
    let mut first = Box::pin(pool.get());
    let mut second = Box::pin(pool.get());
    assert!((&mut first).now_or_never().is_none());
    assert!((&mut second).now_or_never().is_none());
    kpool::Pooled::mark_broken(&mut held);
    drop(held); // disposed: `first` is granted room to create
    drop(first);
    let got = second.await.unwrap();
    assert_eq!(got.id, 1);
    pool.assert_invariants();
}

#[tokio::test(start_paused = true)]
async fn many_cancellations_leave_the_pool_whole() {
    let pool = builder().max_size(3).build().unwrap();
    pool.manager().set(|s| s.create = Fault::Slow(Duration::from_millis(5)));
    for round in 0..200u64 {
        let mut tasks = Vec::new();
        for i in 0..6u64 {
            let p = pool.clone();
            tasks.push(tokio::spawn(async move {
                let wait = Duration::from_millis((round * 7 + i * 3) % 11);
                if let Ok(Ok(c)) = tokio::time::timeout(wait, p.get()).await {
                    tokio::time::sleep(Duration::from_millis(i % 3)).await;
                    drop(c);
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        pool.assert_invariants();
    }
    let s = pool.status().pool;
    assert_eq!((s.in_use, s.creating, s.waiting), (0, 0, 0), "{s}");
    assert!(pool.close_timeout(Duration::from_secs(5)).await.is_clean());
    pool.manager().assert_all_disposed_once();
}
