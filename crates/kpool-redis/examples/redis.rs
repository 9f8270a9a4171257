//! An async Redis pool: 50 tasks counting on 4 connections, a keyed pool over
//! two databases, and the pool's counters at the end.
//!
//! ```text
//! cargo run -p kpool-redis --example redis [redis://127.0.0.1:6379]
//! ```

use std::time::Duration;

use kpool_redis::redis::AsyncCommands;
use kpool_redis::{Db, Manager, Pool};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args().nth(1).unwrap_or_else(|| "redis://127.0.0.1:6379".into());
    let key = format!("kpool-redis-example:{}", std::process::id());

    let pool: Pool =
        Pool::builder(Manager::from_url(&url)?).max_size(4).acquire_timeout(Some(Duration::from_secs(5))).build()?;
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (pool, key) = (pool.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = pool.get().await.map_err(|e| e.to_string())?;
            conn.incr::<_, _, i64>(&key, 1).await.map_err(|e| e.to_string())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let mut conn = pool.get().await?;
    let total: i64 = conn.get(&key).await?;
    let _: () = conn.del(&key).await?;
    drop(conn);
    println!("50 tasks counted to {total} over {} connections", pool.status().pool.total);
    println!("{:?}", pool.counters());

    let keyed: Pool<Db> = Pool::builder(Manager::from_url(&url)?.keyed()).max_size(2).build()?;
    for db in [Db(1), Db(2)] {
        let mut conn = keyed.get_for(&db).await?;
        let _: () = conn.set(&key, format!("written to database {}", db.0)).await?;
        let back: String = conn.get(&key).await?;
        let _: () = conn.del(&key).await?;
        println!("{db:?}: {back}");
    }
    pool.close_timeout(Duration::from_secs(5)).await;
    keyed.close_timeout(Duration::from_secs(5)).await;
    Ok(())
}
