//! The blocking manager against the local Redis server.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use kpool::DisposeReason;
use kpool_redis::Db;
use kpool_redis::blocking::{Manager, Pool};
use kpool_redis::redis::{self, Commands, Connection};

fn manager() -> Manager {
    Manager::from_url(common::URL).unwrap()
}

fn client_id(conn: &mut Connection) -> i64 {
    redis::cmd("CLIENT").arg("ID").query(conn).unwrap()
}

#[test]
fn round_trip_and_reuse() {
    require_redis!();
    let pool: Pool = Pool::builder(manager()).max_size(2).build().unwrap();
    let key = common::key("blocking-round-trip");
    let first = {
        let mut conn = pool.get().unwrap();
        let _: () = conn.set(&key, 41).unwrap();
        assert_eq!(conn.incr::<_, _, i64>(&key, 1).unwrap(), 42);
        client_id(&mut conn)
    };
    for _ in 0..5 {
        assert_eq!(client_id(&mut pool.get().unwrap()), first, "the idle connection is reused");
    }
    let _: () = pool.get().unwrap().del(&key).unwrap();
    let c = pool.counters();
    assert_eq!((c.created, c.acquired, c.disposed_total()), (1, 7, 0));
}

#[test]
fn killed_idle_connection_is_replaced() {
    require_redis!();
    let pool: Pool = Pool::builder(manager()).max_size(2).validation_bypass(Duration::ZERO).build().unwrap();
    let old = client_id(&mut pool.get().unwrap());
    common::kill_client(old);

    let mut conn = pool.get().expect("the caller sees no error");
    assert_ne!(client_id(&mut conn), old);
    let c = pool.counters();
    assert!(c.dead_found >= 1, "{c:?}");
    assert_eq!(c.disposed(DisposeReason::Dead), 1, "{c:?}");
    assert_eq!((c.created, c.errors), (2, 0));
}

#[test]
fn killed_while_checked_out_is_disposed_on_return() {
    require_redis!();
    let pool: Pool = Pool::builder(manager()).max_size(1).build().unwrap();
    {
        let mut conn = pool.get().unwrap();
        common::kill_client(client_id(&mut conn));
        let r: redis::RedisResult<String> = redis::cmd("PING").query(&mut *conn);
        assert!(r.is_err(), "the user's own command fails: {r:?}");
    }
    assert_eq!(pool.counters().disposed(DisposeReason::Broken), 1);
    let pong: String = redis::cmd("PING").query(&mut *pool.get().unwrap()).unwrap();
    assert_eq!(pong, "PONG");
}

#[test]
fn keyed_by_database_number() {
    require_redis!();
    let pool: Pool<Db> = Pool::builder(manager().keyed()).max_size(1).build().unwrap();
    let key = common::key("blocking-keyed");
    let _: () = pool.get_for(&Db(4)).unwrap().set(&key, "four").unwrap();
    let missing: Option<String> = pool.get_for(&Db(5)).unwrap().get(&key).unwrap();
    assert_eq!(missing, None, "database 5 does not see database 4's key");
    let mut four = pool.get_for(&Db(4)).unwrap();
    assert_eq!(four.get::<_, String>(&key).unwrap(), "four");
    let _: () = four.del(&key).unwrap();
    assert_eq!(pool.counters().created, 2);
}

#[test]
fn load_32_threads_over_4_connections() {
    require_redis!();
    const MAX: usize = 4;
    let pool: Pool = Pool::builder(manager())
        .max_size(MAX)
        .max_idle(None)
        .acquire_timeout(Some(Duration::from_secs(30)))
        .build()
        .unwrap();
    let key = common::key("blocking-load");
    let stop = Arc::new(AtomicBool::new(false));
    let incrs = Arc::new(AtomicU64::new(0));
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
        .map(|_| {
            let (pool, incrs, key) = (pool.clone(), incrs.clone(), key.clone());
            std::thread::spawn(move || {
                while Instant::now() < deadline {
                    let _: i64 = pool.get().expect("acquire").incr(&key, 1).expect("INCR");
                    incrs.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    assert!(sampler.join().unwrap() > 10);
    let mut conn = pool.get().unwrap();
    let total: u64 = conn.get(&key).unwrap();
    let _: () = conn.del(&key).unwrap();
    drop(conn);
    assert_eq!(total, incrs.load(Ordering::Relaxed));
    let c = pool.counters();
    assert_eq!((c.errors, c.timeouts), (0, 0), "{c:?}");
    assert!(c.created <= MAX as u64, "{c:?}");
}
