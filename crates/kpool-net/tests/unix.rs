//! Unix-socket managers, async and blocking, against real servers in a
//! temporary directory.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{Mode, Server, echo_blocking};
use kpool::DisposeReason;
use kpool_net::blocking;

fn socket_path(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    dir.path().join(name)
}

#[cfg(feature = "tokio")]
mod tokio_unix {
    use super::*;
    use common::echo_async;
    use kpool::{ErrorKind, Phase, Pool};
    use kpool_net::{Step, UnixManager, UnreadData};
    use std::time::Instant;

    fn pool(manager: UnixManager, path: PathBuf) -> Pool<UnixManager> {
        Pool::builder(manager).max_size(4).validation_bypass(Duration::ZERO).endpoint(path).build().unwrap()
    }

    #[tokio::test]
    async fn echo_round_trips_reuse_one_connection() {
        let dir = tempfile::tempdir().unwrap();
        let path = socket_path(&dir, "echo.sock");
        let server = Server::unix(&path, Mode::Echo);
        let pool = pool(UnixManager::new(), path);
        for i in 0..100u32 {
            echo_async(&mut *pool.get().await.unwrap(), &i.to_le_bytes()).await;
        }
        let c = pool.counters();
        assert_eq!((c.created, c.acquired, c.dead_found), (1, 100, 0));
        assert_eq!(server.accepted(), 1);
    }

    #[tokio::test]
    async fn a_connection_the_peer_closed_is_replaced_without_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = socket_path(&dir, "kill.sock");
        let server = Server::unix(&path, Mode::Echo);
        let pool = pool(UnixManager::new(), path);
        echo_async(&mut *pool.get().await.unwrap(), b"before").await;
        server.kill_all();
        echo_async(&mut *pool.get().await.unwrap(), b"after").await;
        let c = pool.counters();
        assert!(c.dead_found >= 1, "{c:?}");
        assert_eq!((c.created, c.errors, c.disposed(DisposeReason::Dead)), (2, 0, 1));
    }

    #[tokio::test]
    async fn unread_data_policy() {
        for (policy, dead) in [(UnreadData::Dead, 1), (UnreadData::Alive, 0)] {
            let dir = tempfile::tempdir().unwrap();
            let path = socket_path(&dir, "unread.sock");
            let _server = Server::unix(&path, Mode::Echo);
            let pool = pool(UnixManager::new().unread_data(policy), path);
            {
                let conn = pool.get().await.unwrap();
                conn.try_write(b"x").unwrap();
                conn.readable().await.unwrap();
            }
            drop(pool.get().await.unwrap());
            assert_eq!(pool.counters().dead_found, dead, "{policy:?}");
        }
    }

    #[tokio::test]
    async fn a_missing_socket_is_a_connect_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = socket_path(&dir, "nobody-here.sock");
        let pool = Pool::builder(UnixManager::new()).retry_limit(0).endpoint(path.clone()).build().unwrap();
        let started = Instant::now();
        let err = pool.get().await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(err.kind(), ErrorKind::Backend(Phase::Create));
        let cause = err.backend().unwrap();
        assert_eq!(cause.step(), Step::Connect);
        assert_eq!(cause.io_error().unwrap().kind(), std::io::ErrorKind::NotFound);
        assert_eq!(cause.to_string(), format!("failed to connect to {}", path.display()));
        assert!(cause.is_transient(), "a server that is starting may not have made its socket yet");
    }
}

fn blocking_pool(manager: blocking::UnixManager, path: PathBuf) -> kpool::blocking::Pool<blocking::UnixManager> {
    kpool::blocking::Pool::builder(manager)
        .max_size(4)
        .validation_bypass(Duration::ZERO)
        .endpoint(path)
        .build()
        .unwrap()
}

#[test]
fn blocking_echo_round_trips_reuse_one_connection() {
    let dir = tempfile::tempdir().unwrap();
    let path = socket_path(&dir, "echo.sock");
    let server = Server::unix(&path, Mode::Echo);
    let pool = blocking_pool(blocking::UnixManager::new().io_timeout(Some(Duration::from_secs(5))), path);
    for i in 0..100u32 {
        echo_blocking(&mut *pool.get().unwrap(), &i.to_le_bytes());
    }
    let c = pool.counters();
    assert_eq!((c.created, c.acquired, c.dead_found), (1, 100, 0));
    assert_eq!(server.accepted(), 1);
    assert_eq!(pool.get().unwrap().read_timeout().unwrap(), Some(Duration::from_secs(5)));
}

#[test]
fn blocking_a_connection_the_peer_closed_is_replaced_without_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = socket_path(&dir, "kill.sock");
    let server = Server::unix(&path, Mode::Echo);
    let pool = blocking_pool(blocking::UnixManager::new(), path);
    echo_blocking(&mut *pool.get().unwrap(), b"before");
    server.kill_all();
    echo_blocking(&mut *pool.get().unwrap(), b"after");
    let c = pool.counters();
    assert!(c.dead_found >= 1, "{c:?}");
    assert_eq!((c.created, c.errors, c.disposed(DisposeReason::Dead)), (2, 0, 1));
}

#[test]
fn blocking_a_missing_socket_is_a_connect_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = socket_path(&dir, "nobody-here.sock");
    let pool =
        kpool::blocking::Pool::builder(blocking::UnixManager::new()).retry_limit(0).endpoint(path).build().unwrap();
    let err = pool.get().unwrap_err();
    let cause = err.backend().unwrap();
    assert!(cause.is_connect(), "{cause:?}");
    assert_eq!(cause.io_error().unwrap().kind(), std::io::ErrorKind::NotFound);
}
