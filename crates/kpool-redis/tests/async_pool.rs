//! The async manager against the local Redis server.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use kpool::DisposeReason;
use kpool_redis::redis::{self, AsyncCommands};
use kpool_redis::{Connection, Db, Manager, Pool};

fn manager() -> Manager {
    Manager::from_url(common::URL).unwrap()
}

async fn client_id(conn: &mut Connection) -> i64 {
    redis::cmd("CLIENT").arg("ID").query_async(conn).await.unwrap()
}

/// The database the server says this connection uses.
async fn server_db(conn: &mut Connection) -> i64 {
    let info: String = redis::cmd("CLIENT").arg("INFO").query_async(conn).await.unwrap();
    let db = info.split_whitespace().find_map(|f| f.strip_prefix("db=")).expect("db= in CLIENT INFO");
    db.parse().unwrap()
}

async fn kill(id: i64) {
    tokio::task::spawn_blocking(move || common::kill_client(id)).await.unwrap();
}

#[tokio::test]
async fn round_trip_and_reuse() {
    require_redis!();
    let pool: Pool = Pool::builder(manager()).max_size(2).build().unwrap();
    let key = common::key("round-trip");
    let first = {
        let mut conn = pool.get().await.unwrap();
        let _: () = conn.set(&key, 41).await.unwrap();
        let n: i64 = conn.incr(&key, 1).await.unwrap();
        assert_eq!(n, 42);
        client_id(&mut conn).await
    };
    for _ in 0..5 {
        let mut conn = pool.get().await.unwrap();
        assert_eq!(client_id(&mut conn).await, first, "the idle connection is reused");
    }
    let mut conn = pool.get().await.unwrap();
    let _: () = conn.del(&key).await.unwrap();
    let c = pool.counters();
    assert_eq!((c.created, c.acquired, c.disposed_total()), (1, 7, 0));
}

#[tokio::test]
async fn killed_idle_connection_is_replaced() {
    require_redis!();
    let pool: Pool = Pool::builder(manager()).max_size(2).validation_bypass(Duration::ZERO).build().unwrap();
    let old = client_id(&mut pool.get().await.unwrap()).await;
    kill(old).await;

    let mut conn = pool.get().await.expect("the caller sees no error");
    let new = client_id(&mut conn).await;
    assert_ne!(new, old);
    let pong: String = redis::cmd("PING").query_async(&mut *conn).await.unwrap();
    assert_eq!(pong, "PONG");
    let c = pool.counters();
    assert!(c.dead_found >= 1, "{c:?}");
    assert_eq!(c.disposed(DisposeReason::Dead), 1, "{c:?}");
    assert_eq!((c.created, c.errors), (2, 0));
}

#[tokio::test]
async fn killed_while_checked_out_is_disposed_on_return() {
    require_redis!();
    let pool: Pool = Pool::builder(manager()).max_size(1).build().unwrap();
    {
        let mut conn = pool.get().await.unwrap();
        let id = client_id(&mut conn).await;
        kill(id).await;
        let r: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut *conn).await;
        assert!(r.is_err(), "the user's own command fails: {r:?}");
        assert!(conn.is_broken());
    }
    assert_eq!(pool.counters().disposed(DisposeReason::Broken), 1);
    let mut conn = pool.get().await.unwrap();
    let pong: String = redis::cmd("PING").query_async(&mut *conn).await.unwrap();
    assert_eq!(pong, "PONG");
}

#[tokio::test]
async fn keyed_by_database_number() {
    require_redis!();
    let pool: Pool<Db> = Pool::builder(manager().keyed()).max_size(2).build().unwrap();
    let key = common::key("keyed");
    let _: () = pool.get_for(&Db(1)).await.unwrap().set(&key, "one").await.unwrap();
    let _: () = pool.get_for(&Db(2)).await.unwrap().set(&key, "two").await.unwrap();
    let mut one = pool.get_for(&Db(1)).await.unwrap();
    let mut two = pool.get_for(&Db(2)).await.unwrap();
    assert_eq!(one.get::<_, String>(&key).await.unwrap(), "one");
    assert_eq!(two.get::<_, String>(&key).await.unwrap(), "two");
    assert!(server_db(&mut one).await == 1 && server_db(&mut two).await == 2);
    let _: () = one.del(&key).await.unwrap();
    let _: () = two.del(&key).await.unwrap();
    let status = pool.status();
    assert_eq!(status.endpoint(&Db(1)).unwrap().total, 1);
    assert_eq!(status.endpoint(&Db(2)).unwrap().total, 1);
}

#[tokio::test]
async fn keyed_by_url() {
    require_redis!();
    let pool: Pool<String> = Pool::builder(manager().keyed()).max_size(1).build().unwrap();
    let url = format!("{}/3", common::URL);
    let mut conn = pool.get_for(&url).await.unwrap();
    assert_eq!(server_db(&mut conn).await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_200_tasks_over_10_connections() {
    require_redis!();
    const MAX: usize = 10;
    let pool: Pool = Pool::builder(manager())
        .max_size(MAX)
        .max_idle(None)
        .acquire_timeout(Some(Duration::from_secs(30)))
        .build()
        .unwrap();
    let key = common::key("load");
    let stop = Arc::new(AtomicBool::new(false));
    let incrs = Arc::new(AtomicU64::new(0));
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
        .map(|_| {
            let (pool, incrs, key) = (pool.clone(), incrs.clone(), key.clone());
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    let mut conn = pool.get().await.expect("acquire");
                    let _: i64 = conn.incr(&key, 1).await.expect("INCR");
                    incrs.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    assert!(sampler.await.unwrap() > 10);
    let mut conn = pool.get().await.unwrap();
    let total: u64 = conn.get(&key).await.unwrap();
    let _: () = conn.del(&key).await.unwrap();
    drop(conn);
    assert_eq!(total, incrs.load(Ordering::Relaxed), "every INCR landed once");
    assert!(total >= 200);
    let c = pool.counters();
    assert_eq!((c.errors, c.timeouts), (0, 0), "{c:?}");
    assert!(c.created <= MAX as u64, "{c:?}");
    assert!(pool.close_timeout(Duration::from_secs(5)).await.is_clean());
}

#[tokio::test]
async fn close_ends_the_server_connections() {
    require_redis!();
    let pool: Pool = Pool::builder(manager()).max_size(3).build().unwrap();
    let (a, b, c) = tokio::join!(pool.get(), pool.get(), pool.get());
    let (mut a, mut b, mut c) = (a.unwrap(), b.unwrap(), c.unwrap());
    let ids = vec![client_id(&mut a).await, client_id(&mut b).await, client_id(&mut c).await];
    drop((a, b));
    pool.close();
    assert!(pool.get().await.unwrap_err().is_closed());
    drop(c); // returned after close: disposed, never fails
    let start = Instant::now();
    loop {
        let ids = ids.clone();
        let listed: String = tokio::task::spawn_blocking(move || {
            redis::cmd("CLIENT").arg("LIST").arg("ID").arg(&ids).query(&mut common::admin()).unwrap()
        })
        .await
        .unwrap();
        if listed.trim().is_empty() {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "still connected after close: {listed}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(pool.counters().disposed(DisposeReason::Closed), 3);
}
