//! TLS (feature `tls`) against the local server's own certificate.
//!
//! The server's `ssl = on` with Debian's self-signed "snakeoil" certificate
//! for `localhost`; the tests trust exactly that certificate. Where the
//! server has no TLS, they say so and skip.

mod common;

use std::time::Duration;

use kpool::{ErrorKind, Phase};
use kpool_postgres::tls::{self, rustls::RootCertStore};
use kpool_postgres::{Manager, Pool, blocking};

const CERT: &str = "/etc/ssl/certs/ssl-cert-snakeoil.pem";
/// The certificate's name as `host`, the address to dial as `hostaddr`.
const TLS_URL: &str = "host=localhost hostaddr=127.0.0.1 port=5432 user=root dbname=test sslmode=require";

/// The server's certificate, if it serves TLS with one we can read. Blocking:
/// async tests call it on a thread of its own.
fn server_cert() -> Option<Vec<u8>> {
    if !common::pg_up() {
        return None;
    }
    let ssl: String = common::admin().query_one("SHOW ssl", &[]).unwrap().get(0);
    let file: String = common::admin().query_one("SHOW ssl_cert_file", &[]).unwrap().get(0);
    match std::fs::read(&file) {
        Ok(pem) if ssl == "on" && file == CERT => Some(pem),
        other => {
            eprintln!("skipping: the server's TLS (ssl = {ssl}, {file}) is not usable here: {:?}", other.err());
            None
        }
    }
}

const SSL_QUERY: &str = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";

#[tokio::test]
async fn async_pool_over_tls() {
    let Some(pem) = std::thread::spawn(server_cert).join().unwrap() else { return };
    let manager = Manager::from_url(TLS_URL).unwrap().tls(tls::connector(tls::roots_from_pem(&pem).unwrap()));
    let pool: Pool<(), _> = Pool::builder(manager).max_size(2).validation_bypass(Duration::ZERO).build().unwrap();
    for _ in 0..3 {
        let conn = pool.get().await.unwrap();
        let ssl: bool = conn.query_one(SSL_QUERY, &[]).await.unwrap().get(0);
        assert!(ssl, "the session is encrypted");
    }
    let c = pool.counters();
    assert_eq!((c.created, c.dead_found), (1, 0), "reused and checked over TLS");
}

#[test]
fn blocking_pool_over_tls() {
    let Some(pem) = server_cert() else { return };
    let manager = blocking::Manager::from_url(TLS_URL).unwrap().tls(tls::connector(tls::roots_from_pem(&pem).unwrap()));
    let pool: blocking::Pool<(), _> = blocking::Pool::builder(manager).max_size(1).build().unwrap();
    let ssl: bool = pool.get().unwrap().query_one(SSL_QUERY, &[]).unwrap().get(0);
    assert!(ssl);
}

#[tokio::test]
async fn untrusted_certificate_fails_at_once() {
    if std::thread::spawn(server_cert).join().unwrap().is_none() {
        return;
    }
    let manager = Manager::from_url(TLS_URL).unwrap().tls(tls::connector(RootCertStore::empty()));
    let pool: Pool<(), _> =
        Pool::builder(manager).retry_limit(3).retry_delay(Duration::from_millis(500)).build().unwrap();
    let err = pool.get().await.expect_err("the certificate is not trusted");
    assert_eq!(err.kind(), ErrorKind::Backend(Phase::Create), "{err:?}");
    assert_eq!(err.backend().unwrap().to_string(), "error performing TLS handshake");
    assert_eq!(pool.counters().create_failures, 1, "not retried");
}

#[test]
fn pem_loader_rejects_garbage() {
    assert!(tls::roots_from_pem(b"not a certificate").is_err());
}
