//! The blocking pool against the model. An acquire the model says must wait
//! runs on its own thread, started only once the previous waiter is queued
//! (the pool's `waiting` count says so), so arrival order is fixed; its
//! result comes back over a channel. `Cancel` is an acquire with a zero
//! timeout, which queues and gives up at once. No timers: the blocking pool
//! reads the real clock.
//!
//! Only one `create` may be granted per step (it runs on whichever waiter
//! thread the core picked, and ids follow creation order), so these cases
//! run without `total_max_size`: room freed at one endpoint then always
//! goes to at most one waiter.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use kpool::Error;
use kpool::blocking::{Manager, Pool, Pooled};

use crate::EPS;
use crate::model::{Acquired, Model, Op, Res, Settings};

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

    fn create(&self, _: &u8) -> Result<u64, std::io::Error> {
        Ok(self.next.fetch_add(1, Ordering::Relaxed))
    }

    fn dispose(&self, _: &u8, conn: u64) -> Result<(), std::io::Error> {
        self.disposed.lock().unwrap().push(conn);
        Ok(())
    }

    fn check_alive(&self, _: &u8, conn: &mut u64) -> Result<bool, std::io::Error> {
        Ok(!self.dead.lock().unwrap().contains(conn))
    }
}

type Got = Result<Pooled<Ids>, Error<std::io::Error>>;

/// Bounds every wait on another thread; only reached when the pool and the
/// model disagree (then the assertion after it fails).
const PATIENCE: Duration = Duration::from_secs(10);

fn outcome(r: &Got) -> Res {
    match r {
        Ok(g) => Res::Conn(**g),
        Err(e) if e.is_closed() => Res::Closed,
        Err(e) if e.is_timeout() => Res::Timeout,
        Err(e) => panic!("unexpected error: {e:?}"),
    }
}

fn settle(what: impl Fn() -> bool) {
    let until = Instant::now() + PATIENCE;
    while !what() && Instant::now() < until {
        std::thread::sleep(Duration::from_micros(200));
    }
}

pub fn run(s: &Settings, ops: &[Op]) {
    let mut s = s.clone();
    s.total_max_size = None;
    s.background = false;
    let pool = Pool::builder(Ids::default()).config(s.config()).build().expect("valid settings");
    let mut model = Model::new(&s, EPS.len());
    let mut held: Vec<Pooled<Ids>> = Vec::new();
    let mut pending: Vec<(u64, mpsc::Receiver<Got>, std::thread::JoinHandle<()>)> = Vec::new();
    let mut next_req = 0u64;
    for (step, op) in ops.iter().enumerate() {
        let ctx = format!("step {step}: {op:?}");
        match op {
            Op::Acquire(ep) => {
                let e = *ep as usize;
                let req = next_req;
                next_req += 1;
                match model.acquire(req, e) {
                    Acquired::Now(res) => {
                        let r = pool.get_for_timeout(&EPS[e], Some(PATIENCE));
                        assert_eq!(outcome(&r), res, "{ctx}");
                        if let Ok(g) = r {
                            held.push(g);
                        }
                    }
                    Acquired::Waits => {
                        let (tx, rx) = mpsc::channel();
                        let p = pool.clone();
                        let t = std::thread::spawn(move || {
                            let _ = tx.send(p.get_for_timeout(&EPS[e], None));
                        });
                        let want = model.status(e).4;
                        settle(|| pool.status().endpoint(&EPS[e]).is_some_and(|s| s.waiting >= want));
                        pending.push((req, rx, t));
                    }
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
                let e = i.index(EPS.len());
                if model.status(e).4 == 0 || model.is_closed() {
                    continue;
                }
                let req = next_req;
                next_req += 1;
                assert_eq!(model.acquire(req, e), Acquired::Waits);
                model.cancel(req);
                let r = pool.get_for_timeout(&EPS[e], Some(Duration::ZERO));
                assert_eq!(outcome(&r), Res::Timeout, "{ctx}");
            }
            Op::Advance(_) => {}
            Op::Close => {
                model.close();
                pool.close();
            }
        }
        // Waiter threads act on their grants at once, and a grant can make
        // room for another (a dead connection handed off is disposed, and its
        // taker queues again): resolve until nothing changes.
        loop {
            let mut still = Vec::new();
            let mut progress = false;
            for (req, rx, t) in pending.drain(..) {
                // A granted waiter that queues again (dead connection) may
                // have freed room for one polled earlier in this pass.
                progress |= model.is_granted(req);
                match model.poll(req) {
                    None => still.push((req, rx, t)),
                    Some(res) => {
                        progress = true;
                        let r = rx
                            .recv_timeout(PATIENCE)
                            .unwrap_or_else(|_| panic!("{ctx}: acquire #{req} never finished"));
                        assert_eq!(outcome(&r), res, "{ctx}: acquire #{req}");
                        t.join().unwrap();
                        if let Ok(g) = r {
                            held.push(g);
                        }
                    }
                }
            }
            pending = still;
            if !progress {
                break;
            }
        }
        check(&pool, &model, &held, &ctx);
        for (req, rx, _) in &pending {
            assert!(rx.try_recv().is_err(), "{ctx}: acquire #{req} finished, the model says it waits");
        }
    }
    // Close first: waiters still queued get `Closed`, never a connection.
    pool.close();
    for (_, rx, t) in pending {
        assert!(rx.recv_timeout(PATIENCE).expect("a waiter finishes on close").is_err_and(|e| e.is_closed()));
        t.join().unwrap();
    }
    drop(held);
    let report = pool.close_timeout(PATIENCE);
    assert!(report.is_clean(), "{report:?}");
    let made = pool.manager().next.load(Ordering::Relaxed);
    let taken = pool.counters().detached;
    settle(|| pool.manager().disposed.lock().unwrap().len() as u64 + taken >= made);
    assert_eq!(pool.manager().disposed.lock().unwrap().len() as u64 + taken, made);
}

fn check(pool: &Pool<Ids>, model: &Model, held: &[Pooled<Ids>], ctx: &str) {
    pool.assert_invariants();
    settle(|| pool.manager().disposed.lock().unwrap().len() >= model.disposed.len());
    let mut real = pool.manager().disposed.lock().unwrap().clone();
    let mut want: Vec<u64> = model.disposed.iter().map(|(id, _)| *id).collect();
    real.sort_unstable();
    want.sort_unstable();
    assert_eq!(real, want, "{ctx}: disposed connections");
    assert_eq!(pool.counters().disposed, model.disposed_by_reason(), "{ctx}: disposal reasons {:?}", model.disposed);
    // A waiter thread that met a dead connection queues again on its own
    // time: wait (bounded) for the pool to get there before comparing.
    let want: Vec<_> = (0..EPS.len()).map(|i| model.status(i)).collect();
    settle(|| {
        let st = pool.status();
        EPS.iter().enumerate().all(|(i, ep)| {
            st.endpoint(ep).map(|s| (s.total, s.idle, s.in_use, s.creating, s.waiting)).unwrap_or_default() == want[i]
        })
    });
    let st = pool.status();
    for (i, ep) in EPS.iter().enumerate() {
        let want = model.status(i);
        let got = st.endpoint(ep).map(|s| (s.total, s.idle, s.in_use, s.creating, s.waiting)).unwrap_or_default();
        assert_eq!(got, want, "{ctx}: endpoint {ep} (total, idle, in use, creating, waiting)");
    }
    assert_eq!(st.pool.total, model.pool_total(), "{ctx}: pool total");
    for g in held {
        assert_eq!(Pooled::use_count(g), model.uses(**g), "{ctx}: use count of #{}", **g);
    }
}
