//! `tls://` against a TLS echo server on loopback with a certificate made for
//! the test: probe and bench succeed when the CA is given, and say "TLS
//! failure" when the certificate is not trusted or the server does not speak TLS.

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;

use common::{bench_json, expect_error, kpool, parts};
use kpool_net::rustls;

/// A TLS echo server on 127.0.0.1 for "localhost"; returns its port after
/// writing its (self-signed) certificate as PEM to `ca`.
fn tls_echo(ca: &Path) -> u16 {
    let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    std::fs::write(ca, cert.pem()).unwrap();
    let der = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], der)
        .unwrap();
    let config = Arc::new(config);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            let config = config.clone();
            std::thread::spawn(move || {
                let mut tls = rustls::StreamOwned::new(rustls::ServerConnection::new(config).unwrap(), tcp);
                let mut buf = [0u8; 1024];
                while let Ok(n @ 1..) = tls.read(&mut buf) {
                    if tls.write_all(&buf[..n]).and_then(|()| tls.flush()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

#[test]
fn probe_and_bench_over_tls_with_the_servers_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    let port = tls_echo(&ca);
    let url = format!("tls://localhost:{port}?ca={}", ca.display());

    let (code, stdout, stderr) = parts(&kpool(&["probe", &url]));
    // localhost may resolve to ::1 first; the manager then tries 127.0.0.1.
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.contains("round trip"), "{stdout}");

    for mode in ["async", "blocking"] {
        let r = bench_json(
            dir.path(),
            &["--url", &url, "--duration", "1s", "--tasks", "3", "--max-size", "2", "--mode", mode],
        );
        assert!(r["ops"].as_u64().unwrap() > 0);
        assert_eq!(r["pool_counters"]["acquired"], r["ops"]);
        assert!(r["pool_counters"]["created"].as_u64().unwrap() <= 2);
    }
}

#[test]
fn untrusted_certificate_is_a_tls_failure() {
    let dir = tempfile::tempdir().unwrap();
    let port = tls_echo(&dir.path().join("ca.pem"));
    // The system's bundle does not know the test's certificate.
    let line = expect_error(&["probe", &format!("tls://localhost:{port}")], 1, "TLS failure");
    assert!(line.contains("certificate") || line.contains("issuer"), "{line}");
    expect_error(&["bench", "--url", &format!("tls://localhost:{port}"), "-d", "1s"], 1, "TLS failure");
}

#[test]
fn plain_tcp_server_is_a_tls_failure() {
    let port = common::tcp_echo();
    expect_error(&["probe", &format!("tls://127.0.0.1:{port}"), "--timeout", "5s"], 1, "TLS failure");
}

#[test]
fn unreadable_ca_file_is_bad_input() {
    expect_error(&["probe", "tls://localhost:1?ca=/nonexistent/ca.pem"], 2, "cannot read certificates");
}
