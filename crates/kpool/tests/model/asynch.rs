//! The async pool against the model: a current-thread runtime with paused
//! time; acquire futures polled by hand in arrival order.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;
use std::time::Duration;

use kpool::{Error, Manager, OwnedPooled, Pool, Pooled};

use crate::EPS;
use crate::model::{Acquired, Model, Op, Res, Settings};

/// Numbers its connections and records their disposal.
#[derive(Default)]
pub struct Ids {
    next: AtomicU64,
    disposed: Mutex<Vec<u64>>,
    dead: Mutex<std::collections::HashSet<u64>>,
}

impl Manager for Ids {
    type Endpoint = u8;
    type Connection = u64;
    type Error = std::io::Error;

    async fn create(&self, _: &u8) -> Result<u64, std::io::Error> {
        Ok(self.next.fetch_add(1, Ordering::Relaxed))
    }

    async fn dispose(&self, _: &u8, conn: u64) -> Result<(), std::io::Error> {
        self.disposed.lock().unwrap().push(conn);
        Ok(())
    }

    async fn check_alive(&self, _: &u8, conn: &mut u64) -> Result<bool, std::io::Error> {
        Ok(!self.dead.lock().unwrap().contains(conn))
    }
}

type Acquire = Pin<Box<dyn Future<Output = Result<OwnedPooled<Ids>, Error<std::io::Error>>> + Send>>;

fn outcome(r: &Result<OwnedPooled<Ids>, Error<std::io::Error>>) -> Res {
    match r {
        Ok(g) => Res::Conn(**g),
        Err(e) if e.is_closed() => Res::Closed,
        Err(e) if e.is_timeout() => Res::Timeout,
        Err(e) => panic!("unexpected error: {e:?}"),
    }
}

pub fn run(s: &Settings, ops: &[Op]) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
    rt.block_on(tokio::task::coop::unconstrained(drive(s, ops)));
}

async fn drive(s: &Settings, ops: &[Op]) {
    let pool = Pool::builder(Ids::default()).config(s.config()).build().expect("valid settings");
    let mut model = Model::new(s, EPS.len());
    let mut held: Vec<OwnedPooled<Ids>> = Vec::new();
    let mut pending: Vec<(u64, Acquire)> = Vec::new();
    let mut next_req = 0u64;
    for (step, op) in ops.iter().enumerate() {
        let ctx = format!("step {step}: {op:?}");
        match op {
            Op::Acquire(ep) => {
                let req = next_req;
                next_req += 1;
                let expect = model.acquire(req, *ep as usize);
                let mut fut: Acquire = Box::pin(pool.get_owned_for(&EPS[*ep as usize]));
                let got = poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await;
                match (expect, got) {
                    (Acquired::Waits, Poll::Pending) => pending.push((req, fut)),
                    (Acquired::Now(res), Poll::Ready(r)) => {
                        assert_eq!(outcome(&r), res, "{ctx}");
                        if let Ok(g) = r {
                            assert_not_expired(&g, s, &ctx);
                            held.push(g);
                        }
                    }
                    (e, g) => panic!("{ctx}: model says {e:?}, pool says ready={}", g.is_ready()),
                }
            }
            Op::Release(i) | Op::Broken(i) | Op::Take(i) => {
                if held.is_empty() {
                    continue;
                }
                let mut g = held.remove(i.index(held.len()));
                let id = *g;
                match op {
                    Op::Release(_) => {
                        model.release(id, false);
                        drop(g);
                    }
                    Op::Broken(_) => {
                        model.release(id, true);
                        Pooled::mark_broken(&mut g);
                        drop(g);
                    }
                    _ => {
                        model.take(id);
                        assert_eq!(Pooled::take(g), id, "{ctx}");
                    }
                }
            }
            Op::Kill(i) => {
                if held.is_empty() {
                    continue;
                }
                let id = *held[i.index(held.len())];
                model.kill(id);
                pool.manager().dead.lock().unwrap().insert(id);
            }
            Op::Cancel(i) => {
                if pending.is_empty() {
                    continue;
                }
                let (req, fut) = pending.remove(i.index(pending.len()));
                model.cancel(req);
                drop(fut);
            }
            Op::Advance(secs) => {
                model.advance(secs * 1000);
                tokio::time::advance(Duration::from_secs(*secs)).await;
                // Let a background collector woken by its timer run.
                for _ in 0..20 {
                    tokio::task::yield_now().await;
                }
            }
            Op::Close => {
                model.close();
                pool.close();
            }
        }
        // Poll every pending acquire, oldest first, as the runtime would
        // after the wake-ups this step caused.
        let mut still = Vec::new();
        for (req, mut fut) in pending.drain(..) {
            let expect = model.poll(req);
            let got = poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await;
            match (expect, got) {
                (None, Poll::Pending) => still.push((req, fut)),
                (Some(res), Poll::Ready(r)) => {
                    assert_eq!(outcome(&r), res, "{ctx}: acquire #{req}");
                    if let Ok(g) = r {
                        assert_not_expired(&g, s, &ctx);
                        held.push(g);
                    }
                }
                (e, g) => panic!("{ctx}: acquire #{req}: model says {e:?}, pool says ready={}", g.is_ready()),
            }
        }
        pending = still;
        check(&pool, &model, &held, &ctx).await;
    }
    // Closing with everything returned leaves nothing behind.
    pending.clear();
    drop(held);
    let report = pool.close_timeout(Duration::from_secs(1)).await;
    assert!(report.is_clean(), "{report:?}");
    let st = pool.status();
    assert_eq!((st.pool.total, st.pool.in_use, st.pool.waiting), (0, 0, 0));
    let made = pool.manager().next.load(Ordering::Relaxed);
    let disposed = pool.manager().disposed.lock().unwrap().len() as u64;
    let taken = pool.counters().detached;
    assert_eq!(made, disposed + taken, "every connection made is disposed or taken");
}

/// SPEC 3: no acquire ever returns a connection past its `max_lifetime`.
fn assert_not_expired(g: &OwnedPooled<Ids>, s: &Settings, ctx: &str) {
    if let Some(life) = s.max_lifetime_s {
        assert!(Pooled::age(g) < Duration::from_secs(life), "{ctx}: handed out #{} aged {:?}", **g, Pooled::age(g));
    }
}

async fn check(pool: &Pool<Ids>, model: &Model, held: &[OwnedPooled<Ids>], ctx: &str) {
    pool.assert_invariants();
    // Disposals run in spawned tasks: let them finish.
    for _ in 0..100 {
        if pool.manager().disposed.lock().unwrap().len() >= model.disposed.len() {
            break;
        }
        tokio::task::yield_now().await;
    }
    let mut real = pool.manager().disposed.lock().unwrap().clone();
    let mut want: Vec<u64> = model.disposed.iter().map(|(id, _)| *id).collect();
    real.sort_unstable();
    want.sort_unstable();
    assert_eq!(real, want, "{ctx}: disposed connections");
    assert_eq!(pool.counters().disposed, model.disposed_by_reason(), "{ctx}: disposal reasons {:?}", model.disposed);
    let st = pool.status();
    let mut total = 0;
    for (i, ep) in EPS.iter().enumerate() {
        let want = model.status(i);
        total += want.0;
        let got = st.endpoint(ep).map(|s| (s.total, s.idle, s.in_use, s.creating, s.waiting)).unwrap_or_default();
        assert_eq!(got, want, "{ctx}: endpoint {ep} (total, idle, in use, creating, waiting)");
    }
    assert_eq!(st.pool.total, total, "{ctx}: pool total");
    assert_eq!(st.closed, model.is_closed());
    if let Some(max) = pool.config().total_max_size {
        assert!(st.pool.total <= max, "{ctx}: over total_max_size");
    }
    for g in held {
        assert_eq!(Pooled::use_count(g), model.uses(**g), "{ctx}: use count of #{}", **g);
    }
}
