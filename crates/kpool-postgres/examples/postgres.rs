//! A keyed PostgreSQL pool: two databases behind one pool, a few concurrent
//! tasks, and the pool's counters at the end.
//!
//! ```text
//! cargo run -p kpool-postgres --example postgres [postgres://root@127.0.0.1:5432/test]
//! ```

use std::time::Duration;

use kpool_postgres::{CheckMethod, Manager, Pool};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args().nth(1).unwrap_or_else(|| "postgres://root@127.0.0.1:5432/test".into());
    let manager = Manager::from_url(&url)?.check_method(CheckMethod::ROLLBACK).keyed::<String>();
    let pool: Pool<String> = Pool::builder(manager)
        .max_size(4)
        .total_max_size(Some(6))
        .acquire_timeout(Some(Duration::from_secs(5)))
        .build()?;

    let mut tasks = Vec::new();
    for i in 0..8 {
        let pool = pool.clone();
        let db = String::from(if i % 2 == 0 { "test" } else { "postgres" });
        tasks.push(tokio::spawn(async move {
            let conn = pool.get_for(&db).await?;
            let row = conn.query_one("SELECT current_database()::text, $1::int * 2", &[&i]).await?;
            println!("task {i}: database {}, {} * 2 = {}", row.get::<_, String>(0), i, row.get::<_, i32>(1));
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        }));
    }
    for task in tasks {
        task.await?.map_err(|e| e.to_string())?;
    }

    let status = pool.status();
    for (db, s) in &status.endpoints {
        println!("{db}: {s}");
    }
    println!("{:?}", pool.counters());
    pool.close_timeout(Duration::from_secs(5)).await;
    Ok(())
}
