//! Shared by the test binaries: the server's address, the skip rule, and a
//! private password-protected server.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The local test server.
pub const URL: &str = "redis://127.0.0.1:6379";

fn in_ci() -> bool {
    std::env::var_os("CI").is_some()
}

/// Whether Redis answers at 127.0.0.1:6379. Outside CI a missing server
/// skips the test with a message; in CI (`CI` set) it fails the test.
pub fn redis_up() -> bool {
    match TcpStream::connect_timeout(&"127.0.0.1:6379".parse().unwrap(), Duration::from_secs(2)) {
        Ok(_) => true,
        Err(e) if in_ci() => panic!("Redis is not reachable at 127.0.0.1:6379 and CI is set: {e}"),
        Err(e) => {
            eprintln!("skipping: Redis not reachable at 127.0.0.1:6379 ({e})");
            false
        }
    }
}

/// Returns from the test when the server is missing (outside CI).
#[macro_export]
macro_rules! require_redis {
    () => {
        if !common::redis_up() {
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

/// A plain connection for the test's own commands, outside any pool.
pub fn admin() -> redis::Connection {
    redis::Client::open(URL).unwrap().get_connection().unwrap()
}

/// Closes client `id` from the server side and checks the server did it.
pub fn kill_client(id: i64) {
    let killed: i64 = redis::cmd("CLIENT").arg("KILL").arg("ID").arg(id).query(&mut admin()).unwrap();
    assert_eq!(killed, 1, "CLIENT KILL ID {id} killed nothing");
}

/// A key no other test (or other process) uses.
pub fn key(name: &str) -> String {
    format!("kpool-redis-test:{}:{name}", std::process::id())
}

/// A private redis-server on a free loopback port that wants a password;
/// killed when dropped.
pub struct PasswordServer {
    child: Child,
    /// Its port.
    pub port: u16,
}

pub const PASSWORD: &str = "s3cret-kpool";

impl PasswordServer {
    /// Starts one; `None` (with a message) when `redis-server` is not
    /// installed, outside CI.
    pub fn start() -> Option<Self> {
        let port = closed_port();
        let spawned = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--requirepass", PASSWORD])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(e) if in_ci() => panic!("cannot start redis-server and CI is set: {e}"),
            Err(e) => {
                eprintln!("skipping: cannot start redis-server ({e})");
                return None;
            }
        };
        let server = PasswordServer { child, port };
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(start.elapsed() < Duration::from_secs(10), "redis-server on port {port} did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(server)
    }

    /// A URL with `password` for this server.
    pub fn url(&self, password: &str) -> String {
        format!("redis://:{password}@127.0.0.1:{}", self.port)
    }
}

impl Drop for PasswordServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
