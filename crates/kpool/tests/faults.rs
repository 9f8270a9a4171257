//! Fault injection: every manager step succeeding, failing, slow past the
//! timeout, hanging and panicking. After each, the pool's counts are right,
//! the next acquire works, and every connection is disposed exactly once.

mod common;

use std::time::Duration;

use common::{Fault, Mgr, Script, settle};
use kpool::{ErrorKind, Phase, Pool, Pooled};

#[derive(Clone, Copy, Debug, PartialEq)]
enum StepName {
    Create,
    Check,
    OnAcquire,
    OnRelease,
    Dispose,
}

const STEPS: [StepName; 5] =
    [StepName::Create, StepName::Check, StepName::OnAcquire, StepName::OnRelease, StepName::Dispose];

fn inject(script: &mut Script, step: StepName, fault: Fault) {
    match step {
        StepName::Create => script.create = fault,
        StepName::Check => script.check = fault,
        StepName::OnAcquire => script.on_acquire = fault,
        StepName::OnRelease => script.on_release = fault,
        StepName::Dispose => script.dispose = fault,
    }
}

/// What the faulty acquire must return.
fn expected(step: StepName, fault: Fault) -> Option<ErrorKind> {
    let phase = match step {
        StepName::Create => Phase::Create,
        StepName::Check => Phase::Check,
        StepName::OnAcquire => Phase::OnAcquire,
        // Failures of these are logged and counted, never the caller's.
        StepName::OnRelease | StepName::Dispose => return None,
    };
    match fault {
        Fault::Ok => None,
        Fault::Fail => Some(ErrorKind::Backend(phase)),
        Fault::Slow(_) | Fault::Hang => Some(ErrorKind::Timeout(phase)),
        Fault::Panic => Some(ErrorKind::Panic(phase)),
    }
}

#[tokio::test(start_paused = true)]
async fn async_matrix() {
    let faults = [Fault::Ok, Fault::Fail, Fault::Slow(Duration::from_secs(3)), Fault::Hang, Fault::Panic];
    for step in STEPS {
        for fault in faults {
            let case = format!("{step:?} x {fault:?}");
            let pool = Pool::builder(Mgr::new())
                .endpoint("a")
                .max_size(2)
                .retry_limit(0)
                .acquire_timeout(Some(Duration::from_secs(1)))
                .dispose_timeout(Some(Duration::from_secs(1)))
                .validation_bypass(Duration::ZERO)
                .build()
                .unwrap();
            if step != StepName::Create {
                // One idle, used connection: the next acquire reuses it (check,
                // deferred on_release) instead of creating.
                drop(pool.get().await.unwrap());
            }
            pool.manager().set(|s| inject(s, step, fault));
            let result = pool.get().await;
            match (expected(step, fault), result) {
                (None, Ok(mut conn)) => {
                    // Exercise dispose too.
                    Pooled::mark_broken(&mut conn);
                }
                (Some(kind), Err(e)) => assert_eq!(e.kind(), kind, "{case}: {e}"),
                (want, got) => panic!("{case}: wanted {want:?}, got {:?}", got.map(|c| c.id)),
            }
            // Let slow and hanging work time out, then heal.
            tokio::time::sleep(Duration::from_secs(5)).await;
            settle().await;
            pool.manager().set(|s| *s = Script::default());
            pool.assert_invariants();
            let c = pool.counters();
            let s = pool.status().pool;
            let mgr = pool.manager();
            assert_eq!(s.total, mgr.created() - mgr.disposed(), "{case}: counts out of step: {s}");
            assert_eq!((s.in_use, s.creating, s.waiting), (0, 0, 0), "{case}: {s}");
            if step == StepName::Dispose && fault != Fault::Ok {
                assert_eq!(c.dispose_errors, 1, "{case}");
            }
            let next = pool.get().await.unwrap_or_else(|e| panic!("{case}: next acquire failed: {e}"));
            drop(next);
            let report = pool.close_timeout(Duration::from_secs(5)).await;
            assert!(report.is_clean(), "{case}: {report:?}");
            pool.manager().assert_all_disposed_once();
        }
    }
}

/// The blocking pool runs `check_alive` and the hooks on the caller's thread,
/// where no pool can interrupt a call that never returns; so "hang" is tested
/// for `create` (run on a helper thread under the deadline) and `dispose` (run
/// on the disposer thread) only, and "slow" checks and hooks just delay.
#[test]
fn blocking_matrix() {
    let slow = Fault::Slow(Duration::from_millis(300));
    for step in STEPS {
        for fault in [Fault::Ok, Fault::Fail, slow, Fault::Hang, Fault::Panic] {
            let hang_unbounded = fault == Fault::Hang && !matches!(step, StepName::Create | StepName::Dispose);
            if hang_unbounded {
                continue;
            }
            let case = format!("blocking {step:?} x {fault:?}");
            let pool = kpool::blocking::Pool::builder(Mgr::new())
                .endpoint("a")
                .max_size(2)
                .retry_limit(0)
                .acquire_timeout(Some(Duration::from_millis(100)))
                .validation_bypass(Duration::ZERO)
                .build()
                .unwrap();
            if step != StepName::Create {
                drop(pool.get().unwrap());
            }
            pool.manager().set(|s| inject(s, step, fault));
            let result = pool.get();
            let want = match (step, fault) {
                // Inline steps are not interrupted: slow just delays.
                (StepName::Check | StepName::OnAcquire, Fault::Slow(_)) => None,
                _ => expected(step, fault),
            };
            match (want, result) {
                (None, Ok(mut conn)) => kpool::blocking::Pooled::mark_broken(&mut conn),
                (Some(kind), Err(e)) => assert_eq!(e.kind(), kind, "{case}: {e}"),
                (want, got) => panic!("{case}: wanted {want:?}, got {:?}", got.map(|c| c.id)),
            }
            std::thread::sleep(Duration::from_millis(400));
            pool.manager().set(|s| *s = Script::default());
            pool.assert_invariants();
            let s = pool.status().pool;
            assert_eq!((s.in_use, s.creating, s.waiting), (0, 0, 0), "{case}: {s}");
            let next = pool.get().unwrap_or_else(|e| panic!("{case}: next acquire failed: {e}"));
            drop(next);
            let report = pool.close_timeout(Duration::from_secs(2));
            if step == StepName::Dispose && fault == Fault::Hang {
                // The hung dispose holds the disposer thread; later disposals
                // queue behind it and are reported, not lost.
                assert!(report.disposing >= 1, "{case}: the hung dispose is still out: {report:?}");
                assert_eq!(pool.counters().dispose_errors, 0);
            } else {
                assert!(report.is_clean(), "{case}: {report:?}");
                pool.manager().assert_all_disposed_once();
            }
        }
    }
}
