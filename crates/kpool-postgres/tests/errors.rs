//! Connect failures reach the caller at once, as the driver's own error, and
//! leak no file descriptor. The tests in this binary run one at a time: they
//! count the process's open descriptors.

mod common;

use std::error::Error as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kpool::{ErrorKind, Phase};
use kpool_postgres::tokio_postgres::error::SqlState;
use kpool_postgres::{Manager, Pool, blocking};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Retries that would show: three of them, starting at 300 ms.
fn pool(url: &str) -> Pool {
    Pool::builder(Manager::from_url(url).unwrap())
        .max_size(2)
        .retry_limit(3)
        .retry_delay(Duration::from_millis(300))
        .acquire_timeout(Some(Duration::from_secs(20)))
        .build()
        .unwrap()
}

fn blocking_pool(url: &str) -> blocking::Pool {
    blocking::Pool::builder(blocking::Manager::from_url(url).unwrap())
        .max_size(2)
        .retry_limit(3)
        .retry_delay(Duration::from_millis(300))
        .acquire_timeout(Some(Duration::from_secs(20)))
        .build()
        .unwrap()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn io_kind(err: &kpool_postgres::tokio_postgres::Error) -> Option<std::io::ErrorKind> {
    let mut source = err.source();
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        source = e.source();
    }
    None
}

/// What one failed acquire looked like.
struct Failure {
    error: kpool::Error<kpool_postgres::tokio_postgres::Error>,
    took: Duration,
    create_failures: u64,
}

fn fail_async(url: &str) -> Failure {
    rt().block_on(async {
        let pool = pool(url);
        let start = Instant::now();
        let error = pool.get().await.expect_err("must fail");
        let took = start.elapsed();
        assert_eq!(pool.status().pool.total, 0, "the slot is freed");
        Failure { error, took, create_failures: pool.counters().create_failures }
    })
}

fn fail_blocking(url: &str) -> Failure {
    let pool = blocking_pool(url);
    let start = Instant::now();
    let Err(error) = pool.get() else { panic!("must fail") };
    let took = start.elapsed();
    assert_eq!(pool.status().pool.total, 0, "the slot is freed");
    Failure { error, took, create_failures: pool.counters().create_failures }
}

/// A rejected login or database: not retried, the server's SQLSTATE.
fn assert_rejected(f: &Failure, code: &SqlState, text: &str) {
    assert_eq!(f.error.kind(), ErrorKind::Backend(Phase::Create), "{:?}", f.error);
    let backend = f.error.backend().expect("the driver's error");
    assert_eq!(backend.code(), Some(code), "{backend:?}");
    assert!(backend.to_string().contains(text) || format!("{:?}", backend).contains(text), "{backend:?}");
    assert_eq!(f.create_failures, 1, "not retried");
    assert!(f.took < Duration::from_secs(2), "took {:?}", f.took);
}

const UNKNOWN_DB: &str = "postgres://root@127.0.0.1:5432/kpool_no_such_database";
const UNKNOWN_ROLE: &str = "postgres://kpool_no_such_role@127.0.0.1:5432/test";
const UNKNOWN_HOST: &str = "postgres://root@nonexistent.invalid:5432/test";

fn closed_port_url() -> String {
    format!("postgres://root@127.0.0.1:{}/test", common::closed_port())
}

#[test]
fn unknown_database() {
    let _serial = serial();
    require_pg!();
    assert_rejected(&fail_async(UNKNOWN_DB), &SqlState::INVALID_CATALOG_NAME, "kpool_no_such_database");
    assert_rejected(&fail_blocking(UNKNOWN_DB), &SqlState::INVALID_CATALOG_NAME, "kpool_no_such_database");
}

#[test]
fn unknown_role() {
    let _serial = serial();
    require_pg!();
    assert_rejected(&fail_async(UNKNOWN_ROLE), &SqlState::INVALID_AUTHORIZATION_SPECIFICATION, "kpool_no_such_role");
    assert_rejected(&fail_blocking(UNKNOWN_ROLE), &SqlState::INVALID_AUTHORIZATION_SPECIFICATION, "kpool_no_such_role");
}

// A wrong password cannot be produced here: the local server trusts every
// loopback login (pg_hba.conf `trust`), so it never asks for one. Its
// SQLSTATE (28P01) is in class 28, covered by `is_transient`'s unit test and
// by the unknown-role case above (28000, same class, same path).

#[test]
fn closed_port_is_retried_then_returned() {
    let _serial = serial();
    for f in [fail_async(&closed_port_url()), fail_blocking(&closed_port_url())] {
        assert_eq!(f.error.kind(), ErrorKind::Backend(Phase::Create), "{:?}", f.error);
        assert!(!f.error.is_timeout());
        let backend = f.error.backend().expect("the driver's error");
        assert_eq!(io_kind(backend), Some(std::io::ErrorKind::ConnectionRefused), "{backend:?}");
        assert_eq!(f.create_failures, 4, "refused is transient: 1 try + 3 retries");
        // 300 + 600 + 1200 ms of backoff, and nothing near the 20 s deadline.
        assert!(f.took >= Duration::from_millis(2000) && f.took < Duration::from_secs(10), "took {:?}", f.took);
    }
}

#[test]
fn unresolvable_host() {
    let _serial = serial();
    for f in [fail_async(UNKNOWN_HOST), fail_blocking(UNKNOWN_HOST)] {
        assert_eq!(f.error.kind(), ErrorKind::Backend(Phase::Create), "{:?}", f.error);
        let backend = f.error.backend().expect("the driver's error");
        assert!(io_kind(backend).is_some(), "an I/O (resolver) error: {backend:?}");
        assert_eq!(f.create_failures, 1, "an unknown host is not retried: {backend:?}");
        assert!(f.took < Duration::from_secs(5), "took {:?}", f.took);
    }
}

#[test]
fn failed_connects_leak_no_file_descriptors() {
    let _serial = serial();
    let up = common::pg_up();
    let urls: Vec<String> = if up {
        vec![UNKNOWN_DB.into(), UNKNOWN_ROLE.into(), UNKNOWN_HOST.into(), closed_port_url()]
    } else {
        vec![UNKNOWN_HOST.into(), closed_port_url()]
    };
    let rt = rt();
    let attempt = |url: &str| {
        let manager = || Manager::from_url(url).unwrap();
        rt.block_on(async {
            let pool: Pool = Pool::builder(manager()).retry_limit(0).build().unwrap();
            assert!(pool.get().await.is_err());
        });
        let pool = blocking::Pool::builder(blocking::Manager::from_url(url).unwrap()).retry_limit(0).build().unwrap();
        assert!(pool.get().is_err());
    };
    for url in &urls {
        attempt(url); // warm up lazily opened descriptors
    }
    let before = common::open_fds();
    for _ in 0..20 {
        for url in &urls {
            attempt(url);
        }
    }
    let after = common::open_fds();
    assert!(after <= before + 2, "open descriptors grew from {before} to {after}");
}
