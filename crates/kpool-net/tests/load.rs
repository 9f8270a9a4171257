//! Many callers over few connections, with echo round trips on every
//! checkout: no error, and the pool never holds more than `max_size`.

mod common;

use std::time::{Duration, Instant};

use common::{Mode, Server, echo_blocking};
use kpool_net::{Address, blocking};

const RUN_FOR: Duration = Duration::from_secs(2);

#[cfg(feature = "tokio")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_tasks_over_ten_connections() {
    use common::echo_async;
    use kpool::Pool;
    use kpool_net::TcpManager;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    const MAX: usize = 10;
    let server = Server::tcp("127.0.0.1", Mode::Echo);
    let pool = Pool::builder(TcpManager::new())
        .max_size(MAX)
        .max_idle(None)
        .acquire_timeout(Some(Duration::from_secs(30)))
        .endpoint(Address::from(server.addr()))
        .build()
        .unwrap();
    let ops = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));

    let sampler = tokio::spawn({
        let (pool, done) = (pool.clone(), done.clone());
        async move {
            let (mut samples, mut peak) = (0u32, 0usize);
            while !done.load(Ordering::Relaxed) {
                let s = pool.status().pool;
                assert!(s.total <= MAX && s.in_use + s.idle + s.creating <= MAX, "{s:?}");
                peak = peak.max(s.total);
                samples += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (samples, peak)
        }
    });

    let deadline = Instant::now() + RUN_FOR;
    let tasks: Vec<_> = (0..200u32)
        .map(|task| {
            let (pool, ops) = (pool.clone(), ops.clone());
            tokio::spawn(async move {
                // At least one round trip each, however late the task starts.
                for n in 0u32.. {
                    let mut conn = pool.get().await.expect("no acquire fails under load");
                    let msg = [task.to_be_bytes(), n.to_be_bytes()].concat();
                    echo_async(&mut *conn, &msg).await;
                    ops.fetch_add(1, Ordering::Relaxed);
                    if Instant::now() >= deadline {
                        break;
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("no task panicked");
    }
    done.store(true, Ordering::Relaxed);
    let (samples, peak) = sampler.await.expect("the status never exceeded max_size");

    let c = pool.counters();
    assert!(samples >= 10, "the sampler ran ({samples} samples)");
    assert!(peak <= MAX);
    assert_eq!((c.errors, c.timeouts, c.create_failures, c.dead_found), (0, 0, 0, 0), "{c:?}");
    assert!(c.created <= MAX as u64, "{c:?}");
    assert!(c.acquired >= 200, "{c:?}");
    assert_eq!(c.acquired, ops.load(Ordering::Relaxed));
    assert!(server.accepted() <= MAX);
    let s = pool.status().pool;
    assert_eq!((s.in_use, s.waiting), (0, 0));
}

#[test]
fn sixteen_threads_over_four_connections() {
    const MAX: usize = 4;
    let server = Server::tcp("127.0.0.1", Mode::Echo);
    let pool = kpool::blocking::Pool::builder(blocking::TcpManager::new().io_timeout(Some(Duration::from_secs(10))))
        .max_size(MAX)
        .max_idle(None)
        .acquire_timeout(Some(Duration::from_secs(30)))
        .endpoint(Address::from(server.addr()))
        .build()
        .unwrap();
    let deadline = Instant::now() + RUN_FOR / 2;
    std::thread::scope(|scope| {
        let sampler = scope.spawn(|| {
            while Instant::now() < deadline {
                let s = pool.status().pool;
                assert!(s.total <= MAX, "{s:?}");
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        let workers: Vec<_> = (0..16u32)
            .map(|t| {
                let pool = &pool;
                scope.spawn(move || {
                    for n in 0u32.. {
                        let mut conn = pool.get().expect("no acquire fails under load");
                        echo_blocking(&mut *conn, &[t.to_be_bytes(), n.to_be_bytes()].concat());
                        if Instant::now() >= deadline {
                            break;
                        }
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().expect("no thread panicked");
        }
        sampler.join().unwrap();
    });
    let c = pool.counters();
    assert_eq!((c.errors, c.timeouts, c.create_failures), (0, 0, 0), "{c:?}");
    assert!(c.created <= MAX as u64);
    assert!(c.acquired >= 16);
}
