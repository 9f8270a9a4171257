//! Connect failures reach the caller as the real error, quickly: a closed
//! port, a name that does not resolve, retries of transient errors only.

mod common;

use std::error::Error as _;
use std::io;
use std::time::{Duration, Instant};

use common::closed_port;
use kpool::{ErrorKind, Phase};
use kpool_net::{Address, Step, blocking};

const QUICKLY: Duration = Duration::from_secs(5);

/// The system resolver answers for `.invalid` names (it asks the configured
/// DNS server), and in a sandbox it sometimes waits out its own 5 s timeout
/// before it does. The bound that matters is that the pool does not retry:
/// with a 30 s retry delay, one retry would blow it.
const RESOLVE_BOUND: Duration = Duration::from_secs(15);
const LONG_RETRY_DELAY: Duration = Duration::from_secs(30);

fn unresolvable() -> Address {
    Address::host("nonexistent.invalid", 80)
}

fn assert_refused(cause: &kpool_net::Error, addr: &Address) {
    assert!(cause.is_connect() && !cause.is_timeout(), "{cause:?}");
    assert_eq!(cause.step(), Step::Connect);
    assert_eq!(cause.io_error().unwrap().kind(), io::ErrorKind::ConnectionRefused);
    assert!(cause.is_transient());
    assert_eq!(cause.to_string(), format!("failed to connect to {addr}"));
    assert_eq!(cause.target(), addr.to_string());
    let source = cause.source().unwrap().downcast_ref::<io::Error>().unwrap();
    assert_eq!(source.kind(), io::ErrorKind::ConnectionRefused);
}

fn assert_unresolvable(cause: &kpool_net::Error) {
    assert!(cause.is_resolve() && !cause.is_transient(), "{cause:?}");
    assert_eq!(cause.to_string(), "failed to resolve nonexistent.invalid:80");
    assert!(cause.source().is_some(), "the resolver's error is the source");
}

#[cfg(feature = "tokio")]
mod tokio_errors {
    use super::*;
    use kpool::Pool;
    use kpool_net::TcpManager;

    #[tokio::test]
    async fn a_closed_port_is_a_refused_connect_not_a_timeout() {
        let addr = Address::from(closed_port());
        let pool = Pool::builder(TcpManager::new()).retry_limit(0).endpoint(addr.clone()).build().unwrap();
        let started = Instant::now();
        let err = pool.get().await.unwrap_err();
        assert!(started.elapsed() < QUICKLY);
        assert_eq!(err.kind(), ErrorKind::Backend(Phase::Create));
        assert_refused(err.backend().unwrap(), &addr);
        // The pool error's source is the manager's error.
        assert!(err.source().unwrap().downcast_ref::<kpool_net::Error>().is_some());
        assert_eq!(pool.status().pool.total, 0);
    }

    #[tokio::test]
    async fn a_refused_connect_is_retried() {
        let addr = Address::from(closed_port());
        let pool = Pool::builder(TcpManager::new())
            .retry_limit(2)
            .retry_delay(Duration::from_millis(10))
            .endpoint(addr.clone())
            .build()
            .unwrap();
        let err = pool.get().await.unwrap_err();
        assert_refused(err.backend().unwrap(), &addr);
        assert_eq!(pool.counters().create_failures, 3, "one try and two retries");
    }

    #[tokio::test]
    async fn an_unresolvable_host_fails_at_once_without_retries() {
        let pool = Pool::builder(TcpManager::new())
            .retry_limit(3)
            .retry_delay(LONG_RETRY_DELAY)
            .endpoint(unresolvable())
            .build()
            .unwrap();
        let started = Instant::now();
        let err = pool.get().await.unwrap_err();
        assert!(started.elapsed() < RESOLVE_BOUND, "no retry delay was waited");
        assert_eq!(err.kind(), ErrorKind::Backend(Phase::Create));
        assert_unresolvable(err.backend().unwrap());
        assert_eq!(pool.counters().create_failures, 1);
    }
}

#[test]
fn blocking_a_closed_port_is_a_refused_connect_not_a_timeout() {
    let addr = Address::from(closed_port());
    let pool = kpool::blocking::Pool::builder(blocking::TcpManager::new())
        .retry_limit(0)
        .endpoint(addr.clone())
        .build()
        .unwrap();
    let started = Instant::now();
    let err = pool.get().unwrap_err();
    assert!(started.elapsed() < QUICKLY);
    assert_eq!(err.kind(), ErrorKind::Backend(Phase::Create));
    assert_refused(err.backend().unwrap(), &addr);
}

#[test]
fn blocking_an_unresolvable_host_fails_at_once_without_retries() {
    let pool = kpool::blocking::Pool::builder(blocking::TcpManager::new())
        .retry_limit(3)
        .retry_delay(LONG_RETRY_DELAY)
        .endpoint(unresolvable())
        .build()
        .unwrap();
    let started = Instant::now();
    let err = pool.get().unwrap_err();
    assert!(started.elapsed() < RESOLVE_BOUND, "no retry delay was waited");
    assert_unresolvable(err.backend().unwrap());
    assert_eq!(pool.counters().create_failures, 1);
}

/// A listener with a full backlog: Linux (and gVisor) drop further SYNs,
/// so a connect hangs until the client gives up.
fn full_backlog() -> (socket2::Socket, Address) {
    let listener = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    listener.bind(&"127.0.0.1:0".parse::<std::net::SocketAddr>().unwrap().into()).unwrap();
    listener.listen(0).unwrap();
    let addr = Address::from(listener.local_addr().unwrap().as_socket().unwrap());
    (listener, addr)
}

fn assert_connect_timeout(err: &kpool_net::Error, addr: &Address) {
    assert!(err.is_timeout() && err.step() == Step::Connect && err.is_transient(), "{err:?}");
    assert_eq!(err.to_string(), format!("timed out after 200ms connecting to {addr}"));
}

#[test]
fn blocking_connect_timeout_is_a_timeout_of_the_connect_step() {
    let (_listener, addr) = full_backlog();
    let manager = blocking::TcpManager::new().connect_timeout(Some(Duration::from_millis(200)));
    let mut held = Vec::new();
    let started = Instant::now();
    let err = (0..16)
        .find_map(|_| match kpool::blocking::Manager::create(&manager, &addr) {
            Ok(stream) => {
                held.push(stream);
                None
            }
            Err(e) => Some(e),
        })
        .expect("a full backlog stalls a connect");
    assert!(started.elapsed() < QUICKLY);
    assert_connect_timeout(&err, &addr);
}

#[cfg(feature = "tokio")]
#[tokio::test]
async fn connect_timeout_is_a_timeout_of_the_connect_step() {
    let (_listener, addr) = full_backlog();
    let manager = kpool_net::TcpManager::new().connect_timeout(Some(Duration::from_millis(200)));
    let mut held = Vec::new();
    let started = Instant::now();
    let err = loop {
        assert!(held.len() < 16, "a full backlog stalls a connect");
        match kpool::Manager::create(&manager, &addr).await {
            Ok(stream) => held.push(stream),
            Err(e) => break e,
        }
    };
    assert!(started.elapsed() < QUICKLY);
    assert_connect_timeout(&err, &addr);
}
