//! A small keyed pool under load, then its metrics: the printed summary and
//! the Prometheus text.
//!
//! Run with `cargo run --release -p kpool --example metrics`.

use std::time::Duration;

use kpool::{Manager, Pool};

struct Backend;

impl Manager for Backend {
    type Endpoint = &'static str;
    type Connection = u32;
    type Error = std::io::Error;

    async fn create(&self, _: &&'static str) -> Result<u32, Self::Error> {
        tokio::time::sleep(Duration::from_millis(3)).await; // a handshake
        Ok(0)
    }

    async fn check_alive(&self, _: &&'static str, conn: &mut u32) -> Result<bool, Self::Error> {
        *conn += 1;
        Ok(*conn % 50 != 0) // every 50th check finds the connection dead
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pool = Pool::builder(Backend)
        .max_size(4)
        .total_max_size(Some(6))
        .validation_bypass(Duration::ZERO)
        .acquire_timeout(Some(Duration::from_millis(50)))
        .build()?;
    let mut tasks = Vec::new();
    for t in 0..32u32 {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            let endpoints = ["orders", "users", "cache"];
            for i in 0..200u32 {
                let ep = endpoints[((t + i) % 3) as usize];
                if let Ok(conn) = pool.get_for(&ep).await {
                    tokio::time::sleep(Duration::from_micros(100 + u64::from(t % 4) * 100)).await;
                    drop(conn);
                }
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let snapshot = pool.metrics();
    println!("{snapshot}");
    println!("{}", snapshot.to_prometheus("example"));
    Ok(())
}
