//! The blocking manager against the local PostgreSQL server.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use kpool::DisposeReason;
use kpool_postgres::CheckMethod;
use kpool_postgres::blocking::{Manager, Pool};
use kpool_postgres::postgres::Client;

fn manager() -> Manager {
    Manager::from_url(common::URL).unwrap()
}

fn pid(conn: &mut Client) -> i32 {
    conn.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0)
}

#[test]
fn round_trip_and_reuse() {
    require_pg!();
    let pool: Pool = Pool::builder(manager()).max_size(2).build().unwrap();
    let first = {
        let mut conn = pool.get().unwrap();
        let row = conn.query_one("SELECT $1::int + 1", &[&41]).unwrap();
        assert_eq!(row.get::<_, i32>(0), 42);
        pid(&mut conn)
    };
    for _ in 0..5 {
        assert_eq!(pid(&mut pool.get().unwrap()), first, "the idle connection is reused");
    }
    let c = pool.counters();
    assert_eq!((c.created, c.acquired, c.disposed_total()), (1, 6, 0));
    pool.close();
}

fn killed_while_idle(method: CheckMethod) {
    let pool: Pool =
        Pool::builder(manager().check_method(method)).max_size(2).validation_bypass(Duration::ZERO).build().unwrap();
    let old = pid(&mut pool.get().unwrap());
    common::kill_backend(old);

    let mut conn = pool.get().expect("the caller sees no error");
    let new = pid(&mut conn);
    assert_ne!(new, old);
    assert_eq!(conn.query_one("SELECT $1::int", &[&7]).unwrap().get::<_, i32>(0), 7);
    let c = pool.counters();
    assert!(c.dead_found >= 1, "{c:?}");
    assert_eq!(c.disposed(DisposeReason::Dead), 1, "{c:?}");
    assert_eq!((c.created, c.errors), (2, 0));
}

#[test]
fn killed_idle_connection_is_replaced_verified() {
    require_pg!();
    killed_while_idle(CheckMethod::Verified);
}

#[test]
fn killed_idle_connection_is_replaced_fast() {
    require_pg!();
    killed_while_idle(CheckMethod::Fast);
}

#[test]
fn killed_idle_connection_is_replaced_clean() {
    require_pg!();
    killed_while_idle(CheckMethod::ROLLBACK);
}

#[test]
fn clean_rolls_back_on_drop() {
    require_pg!();
    let pool: Pool = Pool::builder(manager().check_method(CheckMethod::ROLLBACK)).max_size(1).build().unwrap();
    let pid1 = {
        let mut conn = pool.get().unwrap();
        conn.batch_execute("BEGIN; SELECT txid_current();").unwrap();
        let pid1 = pid(&mut conn);
        assert_eq!(common::backend_state(pid1).as_deref(), Some("idle in transaction"));
        pid1
    };
    // The blocking pool cleans in the guard's drop: the server sees it at once.
    assert_eq!(common::backend_state(pid1).as_deref(), Some("idle"));
    let mut conn = pool.get().unwrap();
    assert_eq!(pid(&mut conn), pid1);
    let xid: Option<i64> = conn.query_one("SELECT txid_current_if_assigned()", &[]).unwrap().get(0);
    assert_eq!(xid, None);
}

#[test]
fn keyed_by_database() {
    require_pg!();
    let pool: Pool<String> = Pool::builder(manager().keyed()).max_size(1).build().unwrap();
    for db in ["postgres", "test", "postgres"] {
        let mut conn = pool.get_for(&db.to_string()).unwrap();
        let current: String = conn.query_one("SELECT current_database()::text", &[]).unwrap().get(0);
        assert_eq!(current, db);
    }
    assert_eq!(pool.counters().created, 2);
}

#[test]
fn load_32_threads_over_4_connections() {
    require_pg!();
    const MAX: usize = 4;
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
        std::thread::spawn(move || {
            let mut samples = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let s = pool.status().pool;
                assert!(s.total <= MAX && s.in_use <= MAX, "over the limit: {s}");
                samples += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            samples
        })
    };
    let deadline = Instant::now() + Duration::from_secs(2);
    let threads: Vec<_> = (0..32)
        .map(|i: i32| {
            let (pool, queries) = (pool.clone(), queries.clone());
            std::thread::spawn(move || {
                let mut n = 0;
                while Instant::now() < deadline {
                    let mut conn = pool.get().expect("acquire");
                    let v: i32 = conn.query_one("SELECT $1::int", &[&(i + n)]).expect("query").get(0);
                    assert_eq!(v, i + n);
                    n += 1;
                    queries.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    assert!(sampler.join().unwrap() > 10);
    let c = pool.counters();
    assert!(queries.load(Ordering::Relaxed) >= 32);
    assert_eq!((c.errors, c.timeouts), (0, 0), "{c:?}");
    assert!(c.created <= MAX as u64, "{c:?}");
    assert!(pool.close_timeout(Duration::from_secs(5)).is_clean());
}
