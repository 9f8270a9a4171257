//! The async manager against the local PostgreSQL server.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use kpool::{DisposeReason, Pooled};
use kpool_postgres::{CheckMethod, Manager, Pool, Target};

fn manager() -> Manager {
    Manager::from_url(common::URL).unwrap()
}

async fn pid(conn: &kpool_postgres::Connection) -> i32 {
    conn.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0)
}

async fn state(pid: i32) -> Option<String> {
    tokio::task::spawn_blocking(move || common::backend_state(pid)).await.unwrap()
}

async fn kill(pid: i32) {
    tokio::task::spawn_blocking(move || common::kill_backend(pid)).await.unwrap();
}

#[tokio::test]
async fn round_trip_and_reuse() {
    require_pg!();
    let pool: Pool = Pool::builder(manager()).max_size(2).build().unwrap();
    let first = {
        let conn = pool.get().await.unwrap();
        let row = conn.query_one("SELECT $1::int + 1", &[&41]).await.unwrap();
        assert_eq!(row.get::<_, i32>(0), 42);
        pid(&conn).await
    };
    for _ in 0..5 {
        let conn = pool.get().await.unwrap();
        assert_eq!(pid(&conn).await, first, "the idle connection is reused");
    }
    let c = pool.counters();
    assert_eq!((c.created, c.acquired, c.disposed_total()), (1, 6, 0));
    assert_eq!(pool.status().pool.idle, 1);
    pool.close();
}

#[tokio::test]
async fn reused_connection_is_verified_and_transaction_helpers_work() {
    require_pg!();
    let pool: Pool = Pool::builder(manager()).max_size(1).validation_bypass(Duration::ZERO).build().unwrap();
    {
        let mut conn = pool.get().await.unwrap();
        let tx = conn.transaction().await.unwrap();
        let n: i64 =
            tx.query_one("SELECT count(*) FROM pg_class WHERE relname = 'pg_class'", &[]).await.unwrap().get(0);
        assert_eq!(n, 1);
        tx.commit().await.unwrap();
    }
    let conn = pool.get().await.unwrap();
    assert!(!conn.is_closed());
    assert_eq!(pool.counters().dead_found, 0);
}

/// The server kills the pooled connection's backend; the next acquire finds
/// it dead, disposes it and hands out a new one without an error.
async fn killed_while_idle(method: CheckMethod) {
    let pool: Pool =
        Pool::builder(manager().check_method(method)).max_size(2).validation_bypass(Duration::ZERO).build().unwrap();
    let old = pid(&pool.get().await.unwrap()).await;
    kill(old).await;

    let conn = pool.get().await.expect("the caller sees no error");
    let new = pid(&conn).await;
    assert_ne!(new, old, "a new backend serves the caller");
    let row = conn.query_one("SELECT $1::int", &[&7]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 7);
    let c = pool.counters();
    assert!(c.dead_found >= 1, "{c:?}");
    assert_eq!(c.disposed(DisposeReason::Dead), 1, "{c:?}");
    assert_eq!(c.created, 2);
    assert_eq!(c.errors, 0);
}

#[tokio::test]
async fn killed_idle_connection_is_replaced_verified() {
    require_pg!();
    killed_while_idle(CheckMethod::Verified).await;
}

#[tokio::test]
async fn killed_idle_connection_is_replaced_fast() {
    require_pg!();
    killed_while_idle(CheckMethod::Fast).await;
}

#[tokio::test]
async fn killed_idle_connection_is_replaced_clean() {
    require_pg!();
    killed_while_idle(CheckMethod::DISCARD).await;
}

#[tokio::test]
async fn killed_while_checked_out_is_disposed_on_return() {
    require_pg!();
    let pool: Pool = Pool::builder(manager()).max_size(1).build().unwrap();
    {
        let conn = pool.get().await.unwrap();
        kill(pid(&conn).await).await;
        assert!(conn.query_one("SELECT 1", &[]).await.is_err(), "the user's own query fails");
        assert!(conn.is_closed());
    }
    assert_eq!(pool.counters().disposed(DisposeReason::Broken), 1);
    let conn = pool.get().await.unwrap();
    assert_eq!(conn.query_one("SELECT 2", &[]).await.unwrap().get::<_, i32>(0), 2);
}

#[tokio::test]
async fn clean_rolls_back_an_open_transaction() {
    require_pg!();
    let pool: Pool = Pool::builder(manager().check_method(CheckMethod::ROLLBACK)).max_size(1).build().unwrap();
    let pid1 = {
        let conn = pool.get().await.unwrap();
        conn.batch_execute("BEGIN; SELECT txid_current();").await.unwrap();
        pid(&conn).await
    }; // dropped inside the transaction
    let conn = pool.get().await.unwrap();
    assert_eq!(pid(&conn).await, pid1, "same connection");
    let xid: Option<i64> = conn.query_one("SELECT txid_current_if_assigned()", &[]).await.unwrap().get(0);
    assert_eq!(xid, None, "no transaction is open for the next user");

    // An explicit release rolls back at once: the server sees the session idle.
    conn.batch_execute("BEGIN; SELECT txid_current();").await.unwrap();
    assert_eq!(state(pid1).await.as_deref(), Some("idle in transaction"));
    Pooled::release(conn).await.unwrap();
    assert_eq!(state(pid1).await.as_deref(), Some("idle"));
}

#[tokio::test]
async fn clean_ends_an_abandoned_transaction_without_waiting_for_a_checkout() {
    // Dropping a guard cannot await, yet the server sees the ROLLBACK at once:
    // the transaction's locks are not held until the connection's next use.
    require_pg!();
    let pool: Pool = Pool::builder(manager().check_method(CheckMethod::ROLLBACK)).max_size(1).build().unwrap();
    let pid = {
        let conn = pool.get().await.unwrap();
        conn.batch_execute("BEGIN; SELECT txid_current();").await.unwrap();
        pid(&conn).await
    };
    let start = Instant::now();
    while state(pid).await.as_deref() != Some("idle") {
        assert!(start.elapsed() < Duration::from_secs(5), "still {:?}", state(pid).await);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(pool.counters().acquired, 1, "no checkout in between");
}

#[tokio::test]
async fn verified_leaves_an_open_transaction_open() {
    // The contrast to the test above: without Clean the transaction survives.
    require_pg!();
    let pool: Pool = Pool::builder(manager()).max_size(1).build().unwrap();
    pool.get().await.unwrap().batch_execute("BEGIN; SELECT txid_current();").await.unwrap();
    let conn = pool.get().await.unwrap();
    let xid: Option<i64> = conn.query_one("SELECT txid_current_if_assigned()", &[]).await.unwrap().get(0);
    assert!(xid.is_some());
    conn.batch_execute("ROLLBACK").await.unwrap();
}

#[tokio::test]
async fn discard_all_resets_session_state() {
    require_pg!();
    let pool: Pool = Pool::builder(manager().check_method(CheckMethod::DISCARD)).max_size(1).build().unwrap();
    {
        let conn = pool.get().await.unwrap();
        conn.batch_execute("SET statement_timeout = 1234; CREATE TEMP TABLE scratch (x int)").await.unwrap();
    }
    let conn = pool.get().await.unwrap();
    let timeout: String = conn.query_one("SHOW statement_timeout", &[]).await.unwrap().get(0);
    assert_eq!(timeout, "0");
    let temp: i64 =
        conn.query_one("SELECT count(*) FROM pg_class WHERE relname = 'scratch'", &[]).await.unwrap().get(0);
    assert_eq!(temp, 0, "temporary table dropped");
    assert_eq!(pool.counters().created, 1);
}

#[tokio::test]
async fn keyed_by_database() {
    require_pg!();
    let pool: Pool<&'static str> = Pool::builder(manager().keyed()).max_size(2).build().unwrap();
    for db in ["test", "postgres", "test", "postgres"] {
        let conn = pool.get_for(&db).await.unwrap();
        let current: String = conn.query_one("SELECT current_database()::text", &[]).await.unwrap().get(0);
        assert_eq!(current, db);
    }
    let status = pool.status();
    assert_eq!(status.endpoint(&"test").unwrap().total, 1);
    assert_eq!(status.endpoint(&"postgres").unwrap().total, 1);
    assert_eq!(pool.counters().created, 2);
}

#[tokio::test]
async fn keyed_by_target_user_and_database() {
    require_pg!();
    let pool: Pool<Target> = Pool::builder(manager().keyed()).max_size(1).build().unwrap();
    let target = Target::db("postgres").with_user("postgres");
    let conn = pool.get_for(&target).await.unwrap();
    let row = conn.query_one("SELECT current_database()::text, current_user::text", &[]).await.unwrap();
    assert_eq!((row.get::<_, String>(0), row.get::<_, String>(1)), ("postgres".into(), "postgres".into()));
    let same_host = Target::host("127.0.0.1", 5432);
    let conn2 = pool.get_for(&same_host).await.unwrap();
    let db: String = conn2.query_one("SELECT current_database()::text", &[]).await.unwrap().get(0);
    assert_eq!(db, "test");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_200_tasks_over_10_connections() {
    require_pg!();
    const MAX: usize = 10;
    let pool: Pool = Pool::builder(manager())
        .max_size(MAX)
        .max_idle(None)
        .acquire_timeout(Some(Duration::from_secs(30)))
        .build()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let queries = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (pool, stop) = (pool.clone(), stop.clone());
        tokio::spawn(async move {
            let mut samples = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let s = pool.status().pool;
                assert!(s.total <= MAX && s.in_use <= MAX && s.idle <= MAX, "over the limit: {s}");
                assert_eq!(s.total, s.idle + s.in_use + s.creating, "{s}");
                samples += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            samples
        })
    };
    let deadline = Instant::now() + Duration::from_secs(3);
    let tasks: Vec<_> = (0..200)
        .map(|i: i32| {
            let (pool, queries) = (pool.clone(), queries.clone());
            tokio::spawn(async move {
                let mut n = 0;
                while Instant::now() < deadline {
                    let conn = pool.get().await.expect("acquire");
                    let v: i32 = conn.query_one("SELECT $1::int", &[&(i + n)]).await.expect("query").get(0);
                    assert_eq!(v, i + n);
                    n += 1;
                    queries.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let samples = sampler.await.unwrap();
    let c = pool.counters();
    assert!(samples > 10, "sampled {samples} times");
    assert!(queries.load(Ordering::Relaxed) >= 200, "every task ran");
    assert_eq!((c.errors, c.timeouts), (0, 0), "{c:?}");
    assert!(c.created <= MAX as u64, "{c:?}");
    let report = pool.close_timeout(Duration::from_secs(5)).await;
    assert!(report.is_clean());
}

#[tokio::test]
async fn close_ends_the_server_sessions() {
    require_pg!();
    let pool: Pool = Pool::builder(manager()).max_size(3).build().unwrap();
    let (a, b, c) = tokio::join!(pool.get(), pool.get(), pool.get());
    let (a, b, c) = (a.unwrap(), b.unwrap(), c.unwrap());
    let pids = vec![pid(&a).await, pid(&b).await, pid(&c).await];
    drop((a, b));
    pool.close();
    assert!(pool.get().await.unwrap_err().is_closed());
    drop(c); // returned after close: disposed, never fails
    let start = Instant::now();
    loop {
        let pids = pids.clone();
        let alive: i64 = tokio::task::spawn_blocking(move || {
            common::admin()
                .query_one("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1)", &[&pids])
                .unwrap()
                .get(0)
        })
        .await
        .unwrap();
        if alive == 0 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "{alive} sessions still open after close");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(pool.counters().disposed(DisposeReason::Closed), 3);
}
