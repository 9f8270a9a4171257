//! A keyed pool under load: 64 tasks share three endpoints of 4 connections
//! each, with a global cap of 10. Prints the pool's status and counters.
//!
//! Run with `cargo run --release -p kpool --example demo`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use kpool::{Manager, Pool};

/// A connection that remembers which endpoint it talks to.
struct Conn {
    endpoint: &'static str,
    id: u64,
}

#[derive(Default)]
struct Demo {
    next_id: AtomicU64,
}

impl Manager for Demo {
    type Endpoint = &'static str;
    type Connection = Conn;
    type Error = std::io::Error;

    async fn create(&self, endpoint: &&'static str) -> Result<Conn, Self::Error> {
        tokio::time::sleep(Duration::from_millis(2)).await; // a "handshake"
        Ok(Conn { endpoint, id: self.next_id.fetch_add(1, Ordering::Relaxed) })
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pool = Pool::builder(Demo::default()).max_size(4).min_idle(1).total_max_size(Some(10)).build()?;
    let endpoints = ["db-a", "db-b", "cache"];
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..64 {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            let mut done = 0u64;
            while started.elapsed() < Duration::from_secs(2) {
                let ep = endpoints[(t + done as usize) % endpoints.len()];
                let conn = pool.get_for(&ep).await.expect("acquire");
                assert_eq!(conn.endpoint, ep);
                let _ = conn.id;
                tokio::time::sleep(Duration::from_micros(200)).await; // "a query"
                done += 1;
            }
            done
        }));
    }
    let mut ops = 0;
    for t in tasks {
        ops += t.await?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let status = pool.status();
    let c = pool.counters();
    println!("kpool demo: 64 tasks, 3 endpoints x max 4, total max 10");
    println!("  {ops} acquisitions in {elapsed:.2}s = {:.0} ops/s", ops as f64 / elapsed);
    println!("  pool:      {}", status.pool);
    for (ep, s) in &status.endpoints {
        println!("  {ep:<10} {s}");
    }
    println!(
        "  counters:  requests {}, acquired {}, timeouts {}, errors {}, created {}, disposed {}",
        c.requests,
        c.acquired,
        c.timeouts,
        c.errors,
        c.created,
        c.disposed_total()
    );
    let report = pool.close_timeout(Duration::from_secs(5)).await;
    println!("  closed:    {report:?}");
    Ok(())
}
