//! An echo client that goes through the pool, against an echo server in the
//! same process: 32 tasks share 4 pooled TCP connections.
//!
//! Run with `cargo run -p kpool-net --example echo`.

use std::time::{Duration, Instant};

use kpool::Pool;
use kpool_net::{Address, TcpManager};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const TASKS: usize = 32;
const ROUND_TRIPS: usize = 200;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut rd, mut wr) = stream.split();
                let _ = tokio::io::copy(&mut rd, &mut wr).await;
            });
        }
    });
    println!("echo server on {addr}");

    let manager = TcpManager::new().connect_timeout(Some(Duration::from_secs(2)));
    let pool = Pool::builder(manager)
        .max_size(4)
        .acquire_timeout(Some(Duration::from_secs(5)))
        .endpoint(Address::from(addr))
        .build()?;

    let started = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let pool = pool.clone();
            tokio::spawn(async move {
                for i in 0..ROUND_TRIPS {
                    let mut conn = pool.get().await?;
                    let msg = format!("task {task} message {i}\n");
                    conn.write_all(msg.as_bytes()).await?;
                    let mut reply = vec![0; msg.len()];
                    conn.read_exact(&mut reply).await?;
                    assert_eq!(reply, msg.as_bytes());
                }
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
            })
        })
        .collect();
    for t in tasks {
        t.await?.map_err(|e| e.to_string())?;
    }
    let elapsed = started.elapsed();

    let c = pool.counters();
    let s = pool.status().pool;
    println!(
        "{} round trips in {elapsed:.2?} ({:.0}/s) over {} connections",
        c.acquired,
        c.acquired as f64 / elapsed.as_secs_f64(),
        c.created
    );
    println!("pool: {s}; errors {}, timeouts {}", c.errors, c.timeouts);
    pool.close();
    Ok(())
}
