//! Failed connects leak no file descriptor: a closed port, a name that does
//! not resolve, a missing Unix socket, a TLS handshake that times out and a
//! create cancelled by the acquire deadline, many times over, blocking and
//! async. The test is alone in its binary, so no other test opens or closes
//! descriptors while it counts `/proc/self/fd`.

mod common;

use std::time::Duration;

use common::{Mode, Server, closed_port, open_fds};
use kpool_net::{Address, blocking};

/// Descriptors the harness or the system resolver may open or close behind
/// our back.
const NOISE: usize = 2;
const ROUNDS: usize = 40;

#[test]
fn failed_connects_leak_no_file_descriptor() {
    #[cfg(feature = "tokio")]
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();

    let refused = Address::from(closed_port());
    let unresolvable = Address::host("nonexistent.invalid", 80);
    let missing = dir.path().join("missing.sock");

    let tcp = kpool::blocking::Pool::builder(blocking::TcpManager::new()).retry_limit(0).build().unwrap();
    let unix = kpool::blocking::Pool::builder(blocking::UnixManager::new()).retry_limit(0).build().unwrap();
    #[cfg(feature = "tokio")]
    let (atcp, aunix) = rt.block_on(async {
        (
            kpool::Pool::builder(kpool_net::TcpManager::new()).retry_limit(0).build().unwrap(),
            kpool::Pool::builder(kpool_net::UnixManager::new()).retry_limit(0).build().unwrap(),
        )
    });

    // Name lookups go to the system resolver, which may take its own
    // timeout (5 s) now and then in a sandbox: fewer of those.
    let round = |i: usize| {
        assert!(tcp.get_for(&refused).unwrap_err().backend().unwrap().is_connect());
        if i % 4 == 0 {
            assert!(tcp.get_for(&unresolvable).unwrap_err().backend().unwrap().is_resolve());
        }
        assert!(unix.get_for(&missing).unwrap_err().backend().unwrap().is_connect());
        #[cfg(feature = "tokio")]
        rt.block_on(async {
            assert!(atcp.get_for(&refused).await.unwrap_err().backend().unwrap().is_connect());
            if i % 4 == 0 {
                assert!(atcp.get_for(&unresolvable).await.unwrap_err().backend().unwrap().is_resolve());
            }
            assert!(aunix.get_for(&missing).await.unwrap_err().backend().unwrap().is_connect());
        });
    };

    round(0); // opens whatever the resolver and the runtime open lazily
    let before = open_fds();
    for i in 0..ROUNDS {
        round(i);
    }
    let after = open_fds();
    assert!(after.abs_diff(before) <= NOISE, "{before} descriptors before, {after} after {ROUNDS} rounds");

    #[cfg(feature = "tls")]
    {
        let silent = Server::tcp("127.0.0.1", Mode::Silent);
        let target = Address::from(silent.addr());
        let config = common::tls::fixture(&["127.0.0.1"]).client;
        let short = Some(Duration::from_millis(50));
        let tls = kpool::blocking::Pool::builder(blocking::TlsManager::new(config.clone()).connect_timeout(short))
            .retry_limit(0)
            .build()
            .unwrap();
        #[cfg(feature = "tokio")]
        let (atls, cancelled) = rt.block_on(async {
            let timed_out = kpool_net::TlsManager::new(config.clone()).connect_timeout(short);
            // No deadline of its own: the pool's acquire deadline cancels the create.
            let endless = kpool_net::TlsManager::new(config.clone()).connect_timeout(None);
            (
                kpool::Pool::builder(timed_out).retry_limit(0).build().unwrap(),
                kpool::Pool::builder(endless).retry_limit(0).acquire_timeout(short).build().unwrap(),
            )
        });
        let before = open_fds();
        for _ in 0..10 {
            assert!(tls.get_for(&target).unwrap_err().backend().unwrap().is_timeout());
            #[cfg(feature = "tokio")]
            rt.block_on(async {
                assert!(atls.get_for(&target).await.unwrap_err().backend().unwrap().is_timeout());
                assert!(cancelled.get_for(&target).await.unwrap_err().is_timeout());
            });
        }
        silent.kill_all(); // closes the server's side of every accepted socket
        let after = open_fds();
        assert!(after.abs_diff(before) <= NOISE, "{before} descriptors before, {after} after the handshake timeouts");
        assert!(silent.accepted() >= 10);
    }
    #[cfg(not(feature = "tls"))]
    let _ = (Server::tcp, Mode::Silent, Duration::ZERO);
}
