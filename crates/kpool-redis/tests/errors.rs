//! Connect failures reach the caller at once, as the driver's own error, and
//! leak no file descriptor. The tests in this binary run one at a time: they
//! count the process's open descriptors.

mod common;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use kpool::{ErrorKind, Phase};
use kpool_redis::redis::{self, RedisError};
use kpool_redis::{Manager, Pool, blocking};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// What one failed acquire looked like.
struct Failure {
    error: kpool::Error<RedisError>,
    took: Duration,
    create_failures: u64,
}

impl Failure {
    fn backend(&self) -> &RedisError {
        self.error.backend().expect("the driver's error")
    }
}

/// Three retries from 300 ms: retries would show in the counters and the time.
fn fail_async(url: &str) -> Failure {
    rt().block_on(async {
        let pool: Pool = Pool::builder(Manager::from_url(url).unwrap())
            .retry_limit(3)
            .retry_delay(Duration::from_millis(300))
            .acquire_timeout(Some(Duration::from_secs(20)))
            .build()
            .unwrap();
        let start = Instant::now();
        let error = pool.get().await.expect_err("must fail");
        let took = start.elapsed();
        assert_eq!(pool.status().pool.total, 0, "the slot is freed");
        Failure { error, took, create_failures: pool.counters().create_failures }
    })
}

fn fail_blocking(url: &str) -> Failure {
    let pool: blocking::Pool = blocking::Pool::builder(blocking::Manager::from_url(url).unwrap())
        .retry_limit(3)
        .retry_delay(Duration::from_millis(300))
        .acquire_timeout(Some(Duration::from_secs(20)))
        .build()
        .unwrap();
    let start = Instant::now();
    let Err(error) = pool.get() else { panic!("must fail") };
    let took = start.elapsed();
    assert_eq!(pool.status().pool.total, 0, "the slot is freed");
    Failure { error, took, create_failures: pool.counters().create_failures }
}

fn both(url: &str) -> [Failure; 2] {
    [fail_async(url), fail_blocking(url)]
}

/// Rejected by the server: not retried, returned at once, with its text
/// (or, for a failed `AUTH`, the driver's `AuthenticationFailed` kind).
fn assert_rejected(f: &Failure, text: &str) {
    assert_eq!(f.error.kind(), ErrorKind::Backend(Phase::Create), "{:?}", f.error);
    let backend = f.backend();
    if text == AUTH_FAILED {
        assert_eq!(backend.kind(), redis::ErrorKind::AuthenticationFailed, "{backend:?}");
    } else {
        assert!(backend.to_string().contains(text), "{text:?} not in {backend}");
    }
    assert!(!kpool_redis::is_transient(backend), "{backend:?}");
    assert_eq!(f.create_failures, 1, "not retried: {backend:?}");
    assert!(f.took < Duration::from_secs(2), "took {:?}", f.took);
}

/// The driver turns a refused `AUTH` into this kind, without the server's text.
const AUTH_FAILED: &str = "AuthenticationFailed";

#[test]
fn wrong_password() {
    let _serial = serial();
    let Some(server) = common::PasswordServer::start() else { return };
    for f in both(&server.url("wrong-password")) {
        assert_rejected(&f, AUTH_FAILED);
    }
    // The right password works on the same server.
    let pool: blocking::Pool =
        blocking::Pool::builder(blocking::Manager::from_url(&server.url(common::PASSWORD)).unwrap()).build().unwrap();
    let pong: String = redis::cmd("PING").query(&mut *pool.get().unwrap()).unwrap();
    assert_eq!(pong, "PONG");
    for f in both(&format!("redis://127.0.0.1:{}", server.port)) {
        assert_rejected(&f, "NOAUTH");
    }
}

#[test]
fn unknown_user_and_unexpected_password() {
    let _serial = serial();
    require_redis!();
    for f in both("redis://kpool_nobody:secret@127.0.0.1:6379") {
        assert_rejected(&f, AUTH_FAILED);
    }
    // The shared server has no password: AUTH with one is refused.
    for f in both("redis://:secret@127.0.0.1:6379") {
        assert_rejected(&f, AUTH_FAILED);
    }
}

#[test]
fn database_out_of_range() {
    let _serial = serial();
    require_redis!();
    for f in both("redis://127.0.0.1:6379/999") {
        assert_rejected(&f, "out of range");
    }
}

#[test]
fn closed_port_is_retried_then_returned() {
    let _serial = serial();
    let url = format!("redis://127.0.0.1:{}", common::closed_port());
    for f in both(&url) {
        assert_eq!(f.error.kind(), ErrorKind::Backend(Phase::Create), "{:?}", f.error);
        assert!(f.backend().is_connection_refusal(), "{:?}", f.backend());
        assert_eq!(f.create_failures, 4, "refused is transient: 1 try + 3 retries");
        // 300 + 600 + 1200 ms of backoff, nothing near the 20 s deadline.
        assert!(f.took >= Duration::from_millis(2000) && f.took < Duration::from_secs(10), "took {:?}", f.took);
    }
}

#[test]
fn unresolvable_host() {
    let _serial = serial();
    for f in both("redis://nonexistent.invalid:6379") {
        assert_eq!(f.error.kind(), ErrorKind::Backend(Phase::Create), "{:?}", f.error);
        assert!(f.backend().is_io_error(), "{:?}", f.backend());
        assert_eq!(f.create_failures, 1, "an unknown host is not retried: {:?}", f.backend());
        assert!(f.took < Duration::from_secs(5), "took {:?}", f.took);
    }
}

#[test]
fn failed_connects_leak_no_file_descriptors() {
    let _serial = serial();
    let mut urls =
        vec!["redis://nonexistent.invalid:6379".to_string(), format!("redis://127.0.0.1:{}", common::closed_port())];
    if common::redis_up() {
        urls.push("redis://127.0.0.1:6379/999".into());
        urls.push("redis://kpool_nobody:secret@127.0.0.1:6379".into());
    }
    let rt = rt();
    let attempt = |url: &str| {
        rt.block_on(async {
            let pool: Pool = Pool::builder(Manager::from_url(url).unwrap()).retry_limit(0).build().unwrap();
            assert!(pool.get().await.is_err());
        });
        let pool: blocking::Pool =
            blocking::Pool::builder(blocking::Manager::from_url(url).unwrap()).retry_limit(0).build().unwrap();
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
