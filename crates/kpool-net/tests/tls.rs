//! TLS managers, async and blocking, against real rustls servers on loopback
//! with a certificate generated for the test.

#![cfg(feature = "tls")]

mod common;

use std::time::{Duration, Instant};

use common::tls::fixture;
use common::{Mode, Server, echo_blocking};
use kpool::DisposeReason;
use kpool_net::rustls::{CertificateError, Error as TlsError};

use kpool_net::{Address, Step, blocking};

fn tls_server(names: &[&str]) -> (Server, common::tls::Fixture) {
    let fx = fixture(names);
    (Server::tcp("127.0.0.1", Mode::TlsEcho(fx.server.clone())), fx)
}

fn blocking_pool(manager: blocking::TlsManager, addr: Address) -> kpool::blocking::Pool<blocking::TlsManager> {
    kpool::blocking::Pool::builder(manager)
        .max_size(4)
        .validation_bypass(Duration::ZERO)
        .endpoint(addr)
        .build()
        .unwrap()
}

#[cfg(feature = "tokio")]
mod tokio_tls {
    use super::*;
    use common::echo_async;
    use kpool::{ErrorKind, Phase, Pool};
    use kpool_net::TlsManager;
    use kpool_net::rustls::pki_types::ServerName;

    fn pool(manager: TlsManager, addr: Address) -> Pool<TlsManager> {
        Pool::builder(manager).max_size(4).validation_bypass(Duration::ZERO).endpoint(addr).build().unwrap()
    }

    #[tokio::test]
    async fn echo_round_trips_reuse_one_connection() {
        let (server, fx) = tls_server(&["localhost", "127.0.0.1"]);
        // By IP address: the certificate's IP entry is checked.
        let pool = pool(TlsManager::new(fx.client.clone()), server.addr().into());
        for i in 0..100u32 {
            echo_async(&mut *pool.get().await.unwrap(), &i.to_be_bytes()).await;
        }
        let c = pool.counters();
        assert_eq!((c.created, c.acquired, c.dead_found, c.disposed_total()), (1, 100, 0, 0));
        assert_eq!(server.accepted(), 1);
        let conn = pool.get().await.unwrap();
        assert!(conn.get_ref().0.nodelay().unwrap());
        assert!(conn.get_ref().1.protocol_version().is_some());
    }

    #[tokio::test]
    async fn by_host_name_and_with_a_fixed_server_name() {
        let (server, fx) = tls_server(&["localhost"]);
        let by_name = pool(TlsManager::new(fx.client.clone()), Address::host("localhost", server.addr().port()));
        echo_async(&mut *by_name.get().await.unwrap(), b"by name").await;
        let fixed = TlsManager::new(fx.client.clone()).server_name(Some(ServerName::try_from("localhost").unwrap()));
        let by_ip = pool(fixed, server.addr().into());
        echo_async(&mut *by_ip.get().await.unwrap(), b"fixed name").await;
    }

    #[tokio::test]
    async fn a_fresh_connection_with_session_tickets_pending_is_alive() {
        let (server, fx) = tls_server(&["127.0.0.1"]);
        let pool = pool(TlsManager::new(fx.client.clone()), server.addr().into());
        let conn = pool.get().await.unwrap();
        assert_eq!(conn.get_ref().1.protocol_version(), Some(kpool_net::rustls::ProtocolVersion::TLSv1_3));
        drop(conn);
        // The server's TLS 1.3 session tickets arrive after the handshake and
        // sit unread on the socket: they are not application data.
        tokio::time::sleep(Duration::from_millis(200)).await;
        echo_async(&mut *pool.get().await.unwrap(), b"still alive").await;
        let c = pool.counters();
        assert_eq!((c.created, c.dead_found), (1, 0));
    }

    #[tokio::test]
    async fn a_connection_the_peer_closed_is_replaced_without_an_error() {
        let (server, fx) = tls_server(&["127.0.0.1"]);
        let pool = pool(TlsManager::new(fx.client.clone()), server.addr().into());
        echo_async(&mut *pool.get().await.unwrap(), b"before").await;
        server.kill_all();
        for _ in 0..3 {
            echo_async(&mut *pool.get().await.unwrap(), b"after").await;
        }
        let c = pool.counters();
        assert!(c.dead_found >= 1, "{c:?}");
        assert_eq!((c.created, c.errors, c.disposed(DisposeReason::Dead)), (2, 0, 1));
    }

    #[tokio::test]
    async fn unread_application_data_is_dead() {
        let (server, fx) = tls_server(&["127.0.0.1"]);
        let pool = pool(TlsManager::new(fx.client.clone()), server.addr().into());
        {
            let mut conn = pool.get().await.unwrap();
            // A round trip first, so the session tickets are read and the
            // peek below waits for the reply itself.
            echo_async(&mut *conn, b"warm up").await;
            tokio::io::AsyncWriteExt::write_all(&mut *conn, b"nobody reads the reply").await.unwrap();
            tokio::io::AsyncWriteExt::flush(&mut *conn).await.unwrap();
            conn.get_ref().0.peek(&mut [0; 1]).await.unwrap(); // the reply reached the socket
        }
        echo_async(&mut *pool.get().await.unwrap(), b"fresh").await;
        let c = pool.counters();
        assert_eq!((c.created, c.dead_found), (2, 1));
    }

    #[tokio::test]
    async fn dispose_sends_close_notify() {
        let (server, fx) = tls_server(&["127.0.0.1"]);
        let pool = pool(TlsManager::new(fx.client.clone()), server.addr().into());
        echo_async(&mut *pool.get().await.unwrap(), b"bye").await;
        assert!(pool.close_timeout(Duration::from_secs(5)).await.is_clean());
        common::eventually("the server sees a clean TLS close", || server.clean_closes() == 1);
        assert_eq!(pool.counters().dispose_errors, 0);
    }

    #[tokio::test]
    async fn an_untrusted_certificate_fails_at_once() {
        let (server, _) = tls_server(&["127.0.0.1"]);
        let other = fixture(&["127.0.0.1"]); // trusts another certificate
        let pool = Pool::builder(TlsManager::new(other.client))
            .retry_limit(3)
            .retry_delay(Duration::from_secs(1))
            .endpoint(server.addr().into())
            .build()
            .unwrap();
        let started = Instant::now();
        let err = pool.get().await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(err.kind(), ErrorKind::Backend(Phase::Create));
        let cause = err.backend().unwrap();
        assert!(cause.is_tls() && !cause.is_transient(), "{cause:?}");
        assert!(
            matches!(cause.tls_error(), Some(TlsError::InvalidCertificate(CertificateError::UnknownIssuer))),
            "{cause:?}"
        );
        assert_eq!(cause.to_string(), format!("failed to complete the TLS handshake with {}", server.addr()));
        assert_eq!(pool.counters().create_failures, 1, "not retried");
    }

    #[tokio::test]
    async fn a_certificate_for_another_name_fails() {
        let (server, fx) = tls_server(&["localhost"]);
        let pool = Pool::builder(TlsManager::new(fx.client)).endpoint(server.addr().into()).build().unwrap();
        let err = pool.get().await.unwrap_err();
        let cause = err.backend().unwrap();
        assert!(
            matches!(
                cause.tls_error(),
                Some(TlsError::InvalidCertificate(CertificateError::NotValidForNameContext { .. }))
            ),
            "{cause:?}"
        );
    }

    #[tokio::test]
    async fn a_peer_that_never_answers_the_handshake_times_out() {
        let silent = Server::tcp("127.0.0.1", Mode::Silent);
        let fx = fixture(&["127.0.0.1"]);
        let manager = TlsManager::new(fx.client.clone()).connect_timeout(Some(Duration::from_millis(300)));
        let pool = Pool::builder(manager)
            .retry_limit(0)
            .acquire_timeout(Some(Duration::from_secs(10)))
            .endpoint(silent.addr().into())
            .build()
            .unwrap();
        let started = Instant::now();
        let err = pool.get().await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        let cause = err.backend().unwrap();
        assert!(cause.is_timeout() && cause.step() == Step::TlsHandshake, "{cause:?}");
        assert_eq!(
            cause.to_string(),
            format!("timed out after 300ms completing the TLS handshake with {}", silent.addr())
        );

        // Without a connect timeout the pool's acquire deadline still ends it.
        let pool = Pool::builder(TlsManager::new(fx.client).connect_timeout(None))
            .acquire_timeout(Some(Duration::from_millis(300)))
            .endpoint(silent.addr().into())
            .build()
            .unwrap();
        let started = Instant::now();
        let err = pool.get().await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(err.kind(), ErrorKind::Timeout(Phase::Create));
        assert_eq!(pool.status().pool.total, 0, "the cancelled create freed its slot");
    }
}

#[test]
fn blocking_echo_round_trips_reuse_one_connection() {
    let (server, fx) = tls_server(&["127.0.0.1"]);
    let pool = blocking_pool(blocking::TlsManager::new(fx.client.clone()), server.addr().into());
    for i in 0..100u32 {
        echo_blocking(&mut *pool.get().unwrap(), &i.to_be_bytes());
    }
    let c = pool.counters();
    assert_eq!((c.created, c.acquired, c.dead_found, c.disposed_total()), (1, 100, 0, 0));
    // Fresh, with session tickets pending: still alive.
    let pool = blocking_pool(blocking::TlsManager::new(fx.client), server.addr().into());
    drop(pool.get().unwrap());
    std::thread::sleep(Duration::from_millis(200));
    echo_blocking(&mut *pool.get().unwrap(), b"still alive");
    assert_eq!((pool.counters().created, pool.counters().dead_found), (1, 0));
}

#[test]
fn blocking_a_connection_the_peer_closed_is_replaced_without_an_error() {
    let (server, fx) = tls_server(&["127.0.0.1"]);
    let pool = blocking_pool(blocking::TlsManager::new(fx.client), server.addr().into());
    echo_blocking(&mut *pool.get().unwrap(), b"before");
    server.kill_all();
    echo_blocking(&mut *pool.get().unwrap(), b"after");
    let c = pool.counters();
    assert!(c.dead_found >= 1, "{c:?}");
    assert_eq!((c.created, c.errors, c.disposed(DisposeReason::Dead)), (2, 0, 1));
}

#[test]
fn blocking_dispose_sends_close_notify() {
    let (server, fx) = tls_server(&["127.0.0.1"]);
    let pool = blocking_pool(blocking::TlsManager::new(fx.client), server.addr().into());
    echo_blocking(&mut *pool.get().unwrap(), b"bye");
    pool.close();
    common::eventually("the server sees a clean TLS close", || server.clean_closes() == 1);
    assert_eq!(pool.counters().dispose_errors, 0);
}

#[test]
fn blocking_unread_application_data_is_dead() {
    use std::io::Write;
    let (server, fx) = tls_server(&["127.0.0.1"]);
    let pool = blocking_pool(blocking::TlsManager::new(fx.client), server.addr().into());
    {
        let mut conn = pool.get().unwrap();
        echo_blocking(&mut *conn, b"warm up"); // reads the session tickets
        conn.write_all(b"nobody reads the reply").unwrap();
        conn.flush().unwrap();
        conn.sock.peek(&mut [0; 1]).unwrap();
    }
    echo_blocking(&mut *pool.get().unwrap(), b"fresh");
    assert_eq!((pool.counters().created, pool.counters().dead_found), (2, 1));
}

#[test]
fn blocking_an_untrusted_certificate_fails_at_once() {
    let (server, _) = tls_server(&["127.0.0.1"]);
    let other = fixture(&["127.0.0.1"]);
    let pool = kpool::blocking::Pool::builder(blocking::TlsManager::new(other.client))
        .retry_delay(Duration::from_secs(1))
        .endpoint(server.addr().into())
        .build()
        .unwrap();
    let err = pool.get().unwrap_err();
    let cause = err.backend().unwrap();
    assert!(matches!(cause.tls_error(), Some(TlsError::InvalidCertificate(CertificateError::UnknownIssuer))));
    assert_eq!(pool.counters().create_failures, 1);
}

#[test]
fn blocking_a_peer_that_never_answers_the_handshake_times_out() {
    let silent = Server::tcp("127.0.0.1", Mode::Silent);
    let fx = fixture(&["127.0.0.1"]);
    let manager = blocking::TlsManager::new(fx.client).connect_timeout(Some(Duration::from_millis(300)));
    let pool = kpool::blocking::Pool::builder(manager).retry_limit(0).endpoint(silent.addr().into()).build().unwrap();
    let started = Instant::now();
    let err = pool.get().unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    let cause = err.backend().unwrap();
    assert!(cause.is_timeout() && cause.step() == Step::TlsHandshake, "{cause:?}");
}
