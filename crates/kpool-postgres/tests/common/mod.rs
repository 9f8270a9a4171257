//! Shared by the test binaries: the server's address and the skip rule.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::time::Duration;

/// The local test server.
pub const URL: &str = "postgres://root@127.0.0.1:5432/test";

/// Whether PostgreSQL answers at 127.0.0.1:5432. Outside CI a missing server
/// skips the test with a message; in CI (`CI` set) it fails the test.
pub fn pg_up() -> bool {
    match TcpStream::connect_timeout(&"127.0.0.1:5432".parse().unwrap(), Duration::from_secs(2)) {
        Ok(_) => true,
        Err(e) if std::env::var_os("CI").is_some() => {
            panic!("PostgreSQL is not reachable at 127.0.0.1:5432 and CI is set: {e}")
        }
        Err(e) => {
            eprintln!("skipping: PostgreSQL not reachable at 127.0.0.1:5432 ({e})");
            false
        }
    }
}

/// Returns from the test when the server is missing (outside CI).
#[macro_export]
macro_rules! require_pg {
    () => {
        if !common::pg_up() {
            return;
        }
    };
}

/// A loopback port nobody listens on: bound, then released.
pub fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Open file descriptors of this process.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0)
}

/// A plain blocking client for the test's own queries (killing backends,
/// looking at pg_stat_activity), outside any pool.
pub fn admin() -> postgres::Client {
    postgres::Client::connect(URL, postgres::NoTls).unwrap()
}

/// Terminates backend `pid` and waits until the server no longer lists it.
pub fn kill_backend(pid: i32) {
    let mut admin = admin();
    let killed: bool = admin.query_one("SELECT pg_terminate_backend($1)", &[&pid]).unwrap().get(0);
    assert!(killed, "pg_terminate_backend({pid}) found no such backend");
    for _ in 0..500 {
        let n: i64 = admin.query_one("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", &[&pid]).unwrap().get(0);
        if n == 0 {
            // Let the driver read the FATAL message and the close.
            std::thread::sleep(Duration::from_millis(100));
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("backend {pid} still listed 5 s after pg_terminate_backend");
}

/// The state pg_stat_activity shows for backend `pid` ("idle", "idle in transaction", …).
pub fn backend_state(pid: i32) -> Option<String> {
    admin().query_opt("SELECT state FROM pg_stat_activity WHERE pid = $1", &[&pid]).unwrap().and_then(|r| r.get(0))
}
