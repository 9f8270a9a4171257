//! loom models of the core (run with `RUSTFLAGS="--cfg kpool_loom"`).
//!
//! ```text
//! RUSTFLAGS="--cfg kpool_loom" LOOM_MAX_PREEMPTIONS=3 \
//!     cargo test -p kpool --release --lib loom
//! ```
//!
//! Each model drives [`Core`] directly from two to four loom threads, the way
//! the front-ends do: an acquire that gets `Step::Wait` polls its waiter with
//! [`Core::poll_grant`] and parks until the grant's wake-up
//! ([`Wake::Loom`]). A lost wake-up therefore shows as a loom deadlock, a
//! leaked count as a failed assertion on the final status, and a broken
//! invariant as a `debug_check` panic. Time is a fixed `now` (the core never
//! reads a clock), so every interleaving sees the same deadlines.

use std::time::{Duration, Instant};

use loom::thread;

use super::*;
use crate::config::Config;

type TestCore = Core<&'static str, u32>;
type Out = Vec<Doomed<&'static str, u32>>;

/// A plain config: no timers, no idle cap, no core connections.
fn config(max_size: usize, total_max_size: Option<usize>) -> Config {
    Config {
        max_size,
        min_idle: 0,
        max_idle: None,
        burst_limit: None,
        total_max_size,
        idle_timeout: None,
        max_lifetime: None,
        lifetime_jitter: false,
        collection: Collection::Inline,
        ..Config::default()
    }
}

/// Creates connection `raw` at `key`, checked out.
fn checked_out(core: &TestCore, key: &'static str, raw: u32, now: Instant) -> Conn<&'static str, u32> {
    let mut out = Out::new();
    match core.acquire(&key, now, None, &mut out) {
        Step::Create(idx) => core.created(idx, raw, now).expect("pool open"),
        _ => panic!("expected room to create"),
    }
}

/// Queues a caller at `key`; the endpoint must be busy.
fn queued(core: &TestCore, key: &'static str, now: Instant) -> Arc<Waiter<&'static str, u32>> {
    match core.acquire(&key, now, None, &mut Out::new()) {
        Step::Wait(w) => w,
        _ => panic!("expected to wait"),
    }
}

/// What the blocking front-end does: poll, park until woken, poll again.
fn wait(core: &TestCore, waiter: &Waiter<&'static str, u32>) -> Grant<&'static str, u32> {
    loop {
        if let Some(grant) = core.poll_grant(waiter, |_| Some(Wake::Loom(thread::current()))) {
            return grant;
        }
        thread::park();
    }
}

fn conn_of(grant: Grant<&'static str, u32>) -> Conn<&'static str, u32> {
    match grant {
        Grant::Conn(c) => c,
        Grant::Create => panic!("expected a connection, got room to create"),
        Grant::Closed => panic!("expected a connection, got Closed"),
        Grant::TimedOut(_) => panic!("expected a connection, got a timeout (no deadline was set)"),
    }
}

/// (total, idle, in_use, creating, waiting) of the whole pool.
fn counts(core: &TestCore) -> (usize, usize, usize, usize, usize) {
    let s = core.status().pool;
    (s.total, s.idle, s.in_use, s.creating, s.waiting)
}

fn reasons(out: &Out) -> Vec<(u32, DisposeReason)> {
    out.iter().map(|(c, r)| (c.raw, *r)).collect()
}

/// An acquire racing a release on a full endpoint gets the released
/// connection either way: idle if the release came first, handed off if the
/// acquire queued first. Nothing is disposed, nothing is lost.
#[test]
fn loom_acquire_vs_release_hands_off() {
    loom::model(|| {
        let now = Instant::now();
        let core = Arc::new(TestCore::new(config(1, None)));
        let conn = checked_out(&core, "a", 7, now);
        let releaser = {
            let core = core.clone();
            thread::spawn(move || {
                let mut out = Out::new();
                core.release(conn, false, now, &mut out);
                assert!(out.is_empty(), "a healthy release disposes nothing");
                core.debug_check();
            })
        };
        let mut out = Out::new();
        let got = match core.acquire(&"a", now, None, &mut out) {
            Step::Ready(c) => c,
            Step::Wait(w) => conn_of(wait(&core, &w)),
            _ => panic!("expected the released connection"),
        };
        releaser.join().unwrap();
        assert_eq!(got.raw, 7);
        assert!(out.is_empty());
        core.debug_check();
        assert_eq!(counts(&core), (1, 0, 1, 0, 0));
        core.release(got, false, now, &mut out);
        assert_eq!(counts(&core), (1, 1, 0, 0, 0));
    });
}

/// Two waiters queued in order, then a release: the first waiter gets the
/// connection by direct hand-off, and its release goes to the second. The
/// waiters poll and park concurrently with the release.
#[test]
fn loom_two_waiters_and_a_release_are_served_fifo() {
    loom::model(|| {
        let now = Instant::now();
        let core = Arc::new(TestCore::new(config(1, None)));
        let conn = checked_out(&core, "a", 1, now);
        let first = queued(&core, "a", now);
        let second = queued(&core, "a", now);
        let order = Arc::new(crate::sync::Mutex::new(Vec::new()));
        let spawn_waiter = |name: u8, w: Arc<Waiter<&'static str, u32>>| {
            let core = core.clone();
            let order = order.clone();
            thread::spawn(move || {
                let conn = conn_of(wait(&core, &w));
                order.lock().push(name);
                let mut out = Out::new();
                core.release(conn, false, now, &mut out);
                assert!(out.is_empty());
            })
        };
        let t1 = spawn_waiter(1, first);
        let t2 = spawn_waiter(2, second);
        let mut out = Out::new();
        core.release(conn, false, now, &mut out);
        t1.join().unwrap();
        t2.join().unwrap();
        assert_eq!(*order.lock(), vec![1, 2], "waiters served out of arrival order");
        core.debug_check();
        assert_eq!(counts(&core), (1, 1, 0, 0, 0));
    });
}

/// A waiter gives up (timeout or dropped future) while a release hands it
/// the connection: whichever wins, the connection reaches the next waiter.
#[test]
fn loom_cancel_during_wait_vs_release() {
    loom::model(|| {
        let now = Instant::now();
        let core = Arc::new(TestCore::new(config(1, None)));
        let conn = checked_out(&core, "a", 3, now);
        let quitter = queued(&core, "a", now);
        let patient = queued(&core, "a", now);
        let canceller = {
            let core = core.clone();
            thread::spawn(move || {
                let mut out = Out::new();
                core.cancel(&quitter, now, &mut out);
                assert!(out.is_empty());
            })
        };
        let releaser = {
            let core = core.clone();
            thread::spawn(move || core.release(conn, false, now, &mut Out::new()))
        };
        let got = conn_of(wait(&core, &patient));
        canceller.join().unwrap();
        releaser.join().unwrap();
        assert_eq!(got.raw, 3);
        core.debug_check();
        assert_eq!(counts(&core), (1, 0, 1, 0, 0));
    });
}

/// A waiter gives up while room is freed for it (the connection it waited
/// for was broken): the reservation it may have been granted is given back.
#[test]
fn loom_cancel_vs_room_freed() {
    loom::model(|| {
        let now = Instant::now();
        let core = Arc::new(TestCore::new(config(1, None)));
        let conn = checked_out(&core, "a", 3, now);
        let waiter = queued(&core, "a", now);
        let breaker = {
            let core = core.clone();
            thread::spawn(move || {
                let mut out = Out::new();
                core.release(conn, true, now, &mut out);
                assert_eq!(reasons(&out), vec![(3, DisposeReason::Broken)]);
            })
        };
        let mut out = Out::new();
        core.cancel(&waiter, now, &mut out);
        breaker.join().unwrap();
        assert!(out.is_empty());
        core.debug_check();
        assert_eq!(counts(&core), (0, 0, 0, 0, 0), "a cancelled grant leaked its room");
        // The room is really free: the next acquire may create.
        assert!(matches!(core.acquire(&"a", now, None, &mut out), Step::Create(0)));
    });
}

/// Close races a release and a waiter; a third thread waits for the close
/// to drain (as `close_timeout` does). Every waiter finishes, the waiter
/// gets `Closed` unless the release reached it before the close, every
/// connection is disposed exactly once, and the close watcher is woken.
#[test]
fn loom_close_vs_waiters() {
    loom::model(|| {
        let now = Instant::now();
        let core = Arc::new(TestCore::new(config(1, None)));
        let conn = checked_out(&core, "a", 5, now);
        let waiter = queued(&core, "a", now);
        let disposed = Arc::new(crate::sync::Mutex::new(Vec::new()));
        let closer = {
            let core = core.clone();
            let disposed = disposed.clone();
            thread::spawn(move || {
                let mut out = Out::new();
                assert!(core.close(&mut out));
                disposed.lock().extend(reasons(&out));
                // Waits like `close_timeout`: until nothing is checked out.
                while core.outstanding(Some(Wake::Loom(thread::current()))) > 0 {
                    thread::park();
                }
            })
        };
        let releaser = {
            let core = core.clone();
            let disposed = disposed.clone();
            thread::spawn(move || {
                let mut out = Out::new();
                core.release(conn, false, now, &mut out);
                disposed.lock().extend(reasons(&out));
            })
        };
        let mut out = Out::new();
        match wait(&core, &waiter) {
            Grant::Closed => {}
            // The release came first; the front-end sees the close (if any)
            // and gives it back, as the user's drop would.
            Grant::Conn(c) => core.release(c, false, now, &mut out),
            Grant::Create => panic!("nothing freed room"),
            Grant::TimedOut(_) => panic!("no deadline was set"),
        }
        disposed.lock().extend(reasons(&out));
        closer.join().unwrap();
        releaser.join().unwrap();
        core.debug_check();
        assert_eq!(counts(&core), (0, 0, 0, 0, 0));
        assert_eq!(*disposed.lock(), vec![(5, DisposeReason::Closed)]);
        assert!(matches!(core.acquire(&"a", now, None, &mut out), Step::Closed));
        assert!(!core.close(&mut out), "closing twice is a no-op");
    });
}

/// At `total_max_size`, an acquire on endpoint `b` evicts an idle connection
/// of endpoint `a` while `a` releases another one. The acquire always gets
/// room (directly or as a waiter for global room), the earliest-deadline
/// idle connection is the one evicted, and the total never exceeds the cap.
#[test]
fn loom_eviction_across_endpoints_vs_release() {
    loom::model(|| {
        let now = Instant::now();
        let mut cfg = config(2, Some(2));
        cfg.max_lifetime = Some(Duration::from_secs(60));
        let core = Arc::new(TestCore::new(cfg));
        let old = checked_out(&core, "a", 1, now);
        let young = checked_out(&core, "a", 2, now + Duration::from_secs(1));
        let mut out = Out::new();
        core.release(old, false, now, &mut out);
        let releaser = {
            let core = core.clone();
            thread::spawn(move || {
                let mut out = Out::new();
                core.release(young, false, now + Duration::from_secs(1), &mut out);
                core.debug_check();
                out.into_iter().map(|(c, r)| (c.raw, r)).collect::<Vec<_>>()
            })
        };
        let idx = match core.acquire(&"b", now, None, &mut out) {
            Step::Create(idx) => idx,
            Step::Wait(w) => match wait(&core, &w) {
                Grant::Create => core.endpoint_index(&"b"),
                _ => panic!("expected room to create"),
            },
            _ => panic!("expected room to create"),
        };
        core.debug_check();
        let fresh = core.created(idx, 9, now).expect("pool open");
        let mut evicted = reasons(&out);
        evicted.extend(releaser.join().unwrap());
        assert_eq!(evicted, vec![(1, DisposeReason::Evicted)], "the earliest deadline goes first");
        core.debug_check();
        assert_eq!(counts(&core), (2, 1, 1, 0, 0));
        core.release(fresh, false, now, &mut out);
        assert_eq!(counts(&core), (2, 2, 0, 0, 0));
    });
}

/// A caller queued for global room on `b` is served when `a` releases a
/// connection idle (the upstream pool lets it time out), however the release
/// and the waiter's polling interleave: no lost wake-up, no over-commit.
#[test]
fn loom_global_waiter_served_by_release_elsewhere() {
    loom::model(|| {
        let now = Instant::now();
        let core = Arc::new(TestCore::new(config(2, Some(2))));
        let a1 = checked_out(&core, "a", 1, now);
        let a2 = checked_out(&core, "a", 2, now);
        let global = queued(&core, "b", now);
        let releaser = {
            let core = core.clone();
            thread::spawn(move || {
                let mut out = Out::new();
                core.release(a1, false, now, &mut out);
                reasons(&out)
            })
        };
        let grant = wait(&core, &global);
        assert!(matches!(grant, Grant::Create), "the global waiter must get room");
        let evicted = releaser.join().unwrap();
        assert_eq!(evicted, vec![(1, DisposeReason::Evicted)]);
        core.debug_check();
        assert_eq!(counts(&core), (2, 0, 1, 1, 0));
        let mut out = Out::new();
        let b = core.created(core.endpoint_index(&"b"), 3, now).expect("open");
        core.release(b, false, now, &mut out);
        core.release(a2, false, now, &mut out);
        assert!(out.is_empty());
        assert_eq!(counts(&core), (2, 2, 0, 0, 0));
    });
}

/// The background collector's round races an acquire and a release, all
/// after the connections' lifetime: each expired connection is disposed
/// exactly once, by whichever side met it first, and the acquire still gets
/// room (never an expired connection).
#[test]
fn loom_collector_vs_acquire_and_release() {
    loom::model(|| {
        let now = Instant::now();
        let later = now + Duration::from_secs(11);
        let mut cfg = config(2, None);
        cfg.max_lifetime = Some(Duration::from_secs(10));
        let core = Arc::new(TestCore::new(cfg));
        let idle = checked_out(&core, "a", 1, now);
        let busy = checked_out(&core, "a", 2, now);
        core.release(idle, false, now, &mut Out::new());
        let collector = {
            let core = core.clone();
            thread::spawn(move || {
                let mut out = Out::new();
                let (creates, next) = core.collect(later, None, false, &mut out);
                assert!(creates.is_empty());
                let _ = next;
                reasons(&out)
            })
        };
        let releaser = {
            let core = core.clone();
            thread::spawn(move || {
                let mut out = Out::new();
                core.release(busy, false, later, &mut out);
                reasons(&out)
            })
        };
        let mut out = Out::new();
        let idx = match core.acquire(&"a", later, None, &mut out) {
            Step::Create(idx) => idx,
            Step::Ready(c) => panic!("handed out #{} past its lifetime", c.raw),
            Step::Wait(w) => match wait(&core, &w) {
                Grant::Create => 0,
                Grant::Conn(c) => panic!("handed off #{} past its lifetime", c.raw),
                Grant::Closed => panic!("not closed"),
                Grant::TimedOut(_) => panic!("no deadline was set"),
            },
            Step::Closed => panic!("not closed"),
        };
        let mut disposed = reasons(&out);
        disposed.extend(collector.join().unwrap());
        disposed.extend(releaser.join().unwrap());
        disposed.sort_by_key(|(id, _)| *id);
        assert_eq!(disposed, vec![(1, DisposeReason::Lifetime), (2, DisposeReason::Lifetime)]);
        core.debug_check();
        assert_eq!(counts(&core), (1, 0, 0, 1, 0));
        let fresh = core.created(idx, 3, later).expect("open");
        core.release(fresh, false, later, &mut out);
        assert_eq!(counts(&core), (1, 1, 0, 0, 0));
    });
}

/// The wait timer expiring a waiter races a release's hand-off to it: the
/// waiter ends with the connection or with a timeout, never both; a timed
/// out waiter leaves the queue, and the connection is never lost.
#[test]
fn loom_wait_timer_vs_release() {
    loom::model(|| {
        let now = Instant::now();
        let core = Arc::new(TestCore::new(config(1, None)));
        let conn = checked_out(&core, "a", 5, now);
        let waiter = match core.acquire(&"a", now, Some(now), &mut Out::new()) {
            Step::Wait(w) => w,
            _ => panic!("expected to wait"),
        };
        let waiting = {
            let core = core.clone();
            thread::spawn(move || match wait(&core, &waiter) {
                Grant::Conn(c) => {
                    core.release(c, false, now, &mut Out::new());
                    false
                }
                Grant::TimedOut(status) => {
                    assert_eq!(status.waiting, 1, "the status it saw has it in line");
                    true
                }
                Grant::Create | Grant::Closed => panic!("expected a connection or a timeout"),
            })
        };
        let releaser = {
            let core = core.clone();
            thread::spawn(move || core.release(conn, false, now, &mut Out::new()))
        };
        let next = core.expire_waiters(now, Wake::None);
        assert_eq!(next, Some(None), "no deadline is left after the sweep");
        releaser.join().unwrap();
        waiting.join().unwrap();
        core.debug_check();
        assert_eq!(counts(&core), (1, 1, 0, 0, 0));
    });
}
