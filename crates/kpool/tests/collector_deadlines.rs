//! The background collector sleeps until the earliest idle deadline, core
//! connections included (SPEC 2, "Collection"), under paused tokio time.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use kpool::{Collection, Pool};

#[derive(Default)]
struct Ids {
    made: AtomicU64,
    gone: AtomicU64,
}

impl kpool::Manager for Ids {
    type Endpoint = ();
    type Connection = u64;
    type Error = std::io::Error;

    async fn create(&self, _: &()) -> Result<u64, std::io::Error> {
        Ok(self.made.fetch_add(1, Relaxed))
    }

    async fn dispose(&self, _: &(), _: u64) -> Result<(), std::io::Error> {
        self.gone.fetch_add(1, Relaxed);
        Ok(())
    }
}

async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

/// A core (min_idle) connection returned after the collector went to sleep
/// is still disposed at its lifetime deadline, not a minute later.
#[tokio::test(start_paused = true)]
async fn a_returned_core_connection_expires_on_time() {
    let pool = Pool::builder(Ids::default())
        .max_size(2)
        .min_idle(1)
        .max_lifetime(Some(Duration::from_secs(10)))
        .idle_timeout(None)
        .lifetime_jitter(false)
        .collection(Collection::Background)
        .build()
        .unwrap();
    settle().await; // the collector's first round: nothing idle, sleeps
    let conn = pool.get().await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    drop(conn); // back idle as a core connection, due at t = 10 s
    settle().await;
    assert_eq!(pool.status().pool.idle, 1);
    tokio::time::sleep(Duration::from_secs(10)).await;
    settle().await;
    assert_eq!(pool.counters().disposed(kpool::DisposeReason::Lifetime), 1, "{}", pool.status().pool);
    assert_eq!(pool.manager().gone.load(Relaxed), 1);
    assert_eq!(pool.status().pool.total, 0);
}

/// The same for an extra connection (the path that already woke the
/// collector): disposed at its idle deadline.
#[tokio::test(start_paused = true)]
async fn a_returned_extra_connection_idles_out_on_time() {
    let pool = Pool::builder(Ids::default())
        .max_size(2)
        .min_idle(0)
        .max_lifetime(Some(Duration::from_secs(100)))
        .idle_timeout(Some(Duration::from_secs(5)))
        .collection(Collection::Background)
        .build()
        .unwrap();
    settle().await;
    drop(pool.get().await.unwrap());
    tokio::time::sleep(Duration::from_secs(6)).await;
    settle().await;
    assert_eq!(pool.counters().disposed(kpool::DisposeReason::Idle), 1, "{}", pool.status().pool);
    assert_eq!(pool.status().pool.total, 0);
}
