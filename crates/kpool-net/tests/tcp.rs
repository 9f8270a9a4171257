//! TCP managers, async and blocking, against real echo servers on loopback.

mod common;

use std::time::Duration;

use common::{Mode, Server, echo_blocking};
use kpool::DisposeReason;
use kpool_net::{Address, UnreadData, blocking};
use socket2::SockRef;

#[cfg(feature = "tokio")]
mod tokio_tcp {
    use super::*;
    use common::echo_async;
    use kpool::Pool;
    use kpool_net::TcpManager;

    fn pool(manager: TcpManager, addr: impl Into<Address>) -> Pool<TcpManager> {
        Pool::builder(manager).max_size(4).validation_bypass(Duration::ZERO).endpoint(addr.into()).build().unwrap()
    }

    #[tokio::test]
    async fn echo_round_trips_reuse_one_connection() {
        let server = Server::tcp("127.0.0.1", Mode::Echo);
        let pool = pool(TcpManager::new(), server.addr());
        for i in 0..100u32 {
            let mut conn = pool.get().await.unwrap();
            echo_async(&mut *conn, &i.to_be_bytes()).await;
        }
        let c = pool.counters();
        assert_eq!((c.created, c.acquired, c.dead_found, c.disposed_total()), (1, 100, 0, 0));
        assert_eq!(server.accepted(), 1);
        assert_eq!(pool.status().pool.total, 1);
    }

    #[tokio::test]
    async fn ipv6_loopback_and_host_names() {
        let v6 = Server::tcp("::1", Mode::Echo);
        let v4 = Server::tcp("127.0.0.1", Mode::Echo);
        let by_name = Address::host("localhost", v4.addr().port());
        assert!(matches!(by_name, Address::Host { .. }));
        let over_v6 = Address::from(v6.addr());
        let pool = Pool::builder(TcpManager::new()).build().unwrap();
        for _ in 0..3 {
            let mut a = pool.get_for(&over_v6).await.unwrap();
            echo_async(&mut *a, b"over ::1").await;
            let mut b = pool.get_for(&by_name).await.unwrap();
            echo_async(&mut *b, b"by name").await;
            assert_eq!(b.peer_addr().unwrap(), v4.addr());
        }
        let status = pool.status();
        assert_eq!(status.endpoint(&over_v6).unwrap().total, 1);
        assert_eq!(status.endpoint(&by_name).unwrap().total, 1);
        assert_eq!((v6.accepted(), v4.accepted()), (1, 1));
    }

    #[tokio::test]
    async fn socket_options_are_applied() {
        let server = Server::tcp("127.0.0.1", Mode::Echo);
        let on = pool(TcpManager::new().keepalive(Some(Duration::from_secs(30))), server.addr());
        let conn = on.get().await.unwrap();
        assert!(conn.nodelay().unwrap(), "TCP_NODELAY is on by default");
        assert!(SockRef::from(&*conn).keepalive().unwrap());
        let off = pool(TcpManager::new().nodelay(false), server.addr());
        let conn = off.get().await.unwrap();
        assert!(!conn.nodelay().unwrap());
        assert!(!SockRef::from(&*conn).keepalive().unwrap());
    }

    #[tokio::test]
    async fn a_connection_the_peer_closed_is_replaced_without_an_error() {
        let server = Server::tcp("127.0.0.1", Mode::Echo);
        let pool = pool(TcpManager::new(), server.addr());
        echo_async(&mut *pool.get().await.unwrap(), b"before").await;
        server.kill_all();
        for _ in 0..5 {
            echo_async(&mut *pool.get().await.unwrap(), b"after").await;
        }
        let c = pool.counters();
        assert!(c.dead_found >= 1, "{c:?}");
        assert_eq!(c.disposed(DisposeReason::Dead), 1);
        assert_eq!((c.created, c.errors, c.timeouts), (2, 0, 0));
        assert_eq!(server.accepted(), 2);
    }

    #[tokio::test]
    async fn unread_data_is_dead_by_default() {
        let server = Server::tcp("127.0.0.1", Mode::Echo);
        let pool = pool(TcpManager::new(), server.addr());
        {
            let conn = pool.get().await.unwrap();
            conn.try_write(b"unread").unwrap();
            let mut buf = [0; 1];
            conn.peek(&mut buf).await.unwrap(); // the echo has arrived; nobody reads it
        }
        echo_async(&mut *pool.get().await.unwrap(), b"fresh").await;
        let c = pool.counters();
        assert_eq!((c.dead_found, c.created), (1, 2));
    }

    #[tokio::test]
    async fn unread_data_can_be_left_for_the_next_user() {
        let server = Server::tcp("127.0.0.1", Mode::Echo);
        let pool = pool(TcpManager::new().unread_data(UnreadData::Alive), server.addr());
        {
            let conn = pool.get().await.unwrap();
            conn.try_write(b"left over").unwrap();
            conn.peek(&mut [0; 1]).await.unwrap();
        }
        let mut conn = pool.get().await.unwrap();
        let mut buf = [0; 9];
        tokio::io::AsyncReadExt::read_exact(&mut *conn, &mut buf).await.unwrap();
        assert_eq!(&buf, b"left over");
        assert_eq!((pool.counters().dead_found, pool.counters().created), (0, 1));
    }
}

fn blocking_pool(
    manager: blocking::TcpManager,
    addr: impl Into<Address>,
) -> kpool::blocking::Pool<blocking::TcpManager> {
    kpool::blocking::Pool::builder(manager)
        .max_size(4)
        .validation_bypass(Duration::ZERO)
        .endpoint(addr.into())
        .build()
        .unwrap()
}

#[test]
fn blocking_echo_round_trips_reuse_one_connection() {
    let server = Server::tcp("127.0.0.1", Mode::Echo);
    let pool = blocking_pool(blocking::TcpManager::new().io_timeout(Some(Duration::from_secs(5))), server.addr());
    for i in 0..100u32 {
        let mut conn = pool.get().unwrap();
        echo_blocking(&mut *conn, &i.to_be_bytes());
    }
    let c = pool.counters();
    assert_eq!((c.created, c.acquired, c.dead_found, c.disposed_total()), (1, 100, 0, 0));
    assert_eq!(server.accepted(), 1);
    let conn = pool.get().unwrap();
    assert!(conn.nodelay().unwrap());
    assert_eq!(conn.read_timeout().unwrap(), Some(Duration::from_secs(5)), "io_timeout is set, and kept by the check");
}

#[test]
fn blocking_ipv6_and_host_name() {
    let v6 = Server::tcp("::1", Mode::Echo);
    let v4 = Server::tcp("127.0.0.1", Mode::Echo);
    let pool = kpool::blocking::Pool::builder(blocking::TcpManager::new()).build().unwrap();
    echo_blocking(&mut *pool.get_for(&Address::from(v6.addr())).unwrap(), b"v6");
    let by_name: Address = format!("localhost:{}", v4.addr().port()).parse().unwrap();
    echo_blocking(&mut *pool.get_for(&by_name).unwrap(), b"name");
}

#[test]
fn blocking_a_connection_the_peer_closed_is_replaced_without_an_error() {
    let server = Server::tcp("127.0.0.1", Mode::Echo);
    let pool = blocking_pool(blocking::TcpManager::new(), server.addr());
    echo_blocking(&mut *pool.get().unwrap(), b"before");
    server.kill_all();
    for _ in 0..5 {
        let mut conn = pool.get().unwrap();
        echo_blocking(&mut *conn, b"after");
        assert!(conn.take_error().unwrap().is_none());
    }
    let c = pool.counters();
    assert!(c.dead_found >= 1, "{c:?}");
    assert_eq!((c.created, c.errors, c.disposed(DisposeReason::Dead)), (2, 0, 1));
}

#[test]
fn blocking_unread_data_policy() {
    use std::io::Write;
    for (policy, dead, created) in [(UnreadData::Dead, 1, 2), (UnreadData::Alive, 0, 1)] {
        let server = Server::tcp("127.0.0.1", Mode::Echo);
        let pool = blocking_pool(blocking::TcpManager::new().unread_data(policy), server.addr());
        {
            let mut conn = pool.get().unwrap();
            conn.write_all(b"unread").unwrap();
            conn.peek(&mut [0; 1]).unwrap(); // blocks until the echo arrives
        }
        let conn = pool.get().unwrap();
        let c = pool.counters();
        assert_eq!((c.dead_found, c.created), (dead, created), "{policy:?}");
        assert!(!SockRef::from(&*conn).nonblocking().unwrap(), "the check puts the stream back in blocking mode");
    }
}
