//! A scriptable manager shared by the integration tests: every step can be
//! made to succeed, fail, be slow, hang or panic, and every connection's life
//! is recorded so tests can check that nothing leaks.
#![allow(dead_code)]

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

/// How one manager step behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    Ok,
    Fail,
    Slow(Duration),
    Hang,
    Panic,
}

/// The behaviour of every step, changeable while the pool runs.
#[derive(Clone, Copy, Debug)]
pub struct Script {
    pub create: Fault,
    pub check: Fault,
    pub on_acquire: Fault,
    pub on_release: Fault,
    pub dispose: Fault,
    /// `is_broken` answers this.
    pub broken: bool,
}

impl Default for Script {
    fn default() -> Self {
        Script {
            create: Fault::Ok,
            check: Fault::Ok,
            on_acquire: Fault::Ok,
            on_release: Fault::Ok,
            dispose: Fault::Ok,
            broken: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestError(pub String);

impl std::fmt::Display for TestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TestError {}

#[derive(Debug)]
pub struct TestConn {
    pub id: u64,
    pub ep: &'static str,
}

/// Records and scripts a pool's connections.
#[derive(Default)]
pub struct Mgr {
    next: AtomicU64,
    pub script: Mutex<Script>,
    /// Ids of connections `check_alive` reports dead.
    pub dead: Mutex<HashSet<u64>>,
    pub created: Mutex<Vec<u64>>,
    pub disposed: Mutex<Vec<u64>>,
    pub checks: AtomicU64,
    pub on_dead: Mutex<Vec<u64>>,
    pub acquires: AtomicU64,
    pub releases: AtomicU64,
}

impl Mgr {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn set(&self, f: impl FnOnce(&mut Script)) {
        f(&mut self.script.lock());
    }

    pub fn script(&self) -> Script {
        *self.script.lock()
    }

    pub fn created(&self) -> usize {
        self.created.lock().len()
    }

    pub fn disposed(&self) -> usize {
        self.disposed.lock().len()
    }

    pub fn checks(&self) -> u64 {
        self.checks.load(Ordering::SeqCst)
    }

    /// Every created connection disposed exactly once, none disposed that was
    /// never created.
    pub fn assert_all_disposed_once(&self) {
        let mut created = self.created.lock().clone();
        let mut disposed = self.disposed.lock().clone();
        created.sort_unstable();
        disposed.sort_unstable();
        assert_eq!(created, disposed, "created vs disposed connection ids");
    }

    fn make(&self, ep: &'static str) -> TestConn {
        let id = self.next.fetch_add(1, Ordering::SeqCst);
        self.created.lock().push(id);
        TestConn { id, ep }
    }
}

fn fail(what: &str) -> TestError {
    TestError(format!("{what} failed"))
}

async fn apply(fault: Fault, what: &str) -> Result<(), TestError> {
    match fault {
        Fault::Ok => Ok(()),
        Fault::Fail => Err(fail(what)),
        Fault::Slow(d) => {
            tokio::time::sleep(d).await;
            Ok(())
        }
        Fault::Hang => std::future::pending().await,
        Fault::Panic => panic!("{what} panicked"),
    }
}

fn apply_blocking(fault: Fault, what: &str) -> Result<(), TestError> {
    match fault {
        Fault::Ok => Ok(()),
        Fault::Fail => Err(fail(what)),
        Fault::Slow(d) => {
            std::thread::sleep(d);
            Ok(())
        }
        Fault::Hang => {
            std::thread::sleep(Duration::from_secs(3600));
            Ok(())
        }
        Fault::Panic => panic!("{what} panicked"),
    }
}

impl kpool::Manager for Mgr {
    type Endpoint = &'static str;
    type Connection = TestConn;
    type Error = TestError;

    async fn create(&self, ep: &&'static str) -> Result<TestConn, TestError> {
        apply(self.script().create, "create").await?;
        Ok(self.make(ep))
    }

    async fn dispose(&self, _: &&'static str, conn: TestConn) -> Result<(), TestError> {
        // Recorded first: a failing or hanging dispose still ends the connection.
        self.disposed.lock().push(conn.id);
        apply(self.script().dispose, "dispose").await
    }

    async fn check_alive(&self, _: &&'static str, conn: &mut TestConn) -> Result<bool, TestError> {
        self.checks.fetch_add(1, Ordering::SeqCst);
        apply(self.script().check, "check").await?;
        Ok(!self.dead.lock().contains(&conn.id))
    }

    fn is_broken(&self, _: &&'static str, _: &TestConn) -> bool {
        self.script().broken
    }

    async fn on_acquire(&self, _: &&'static str, _: &mut TestConn) -> Result<(), TestError> {
        self.acquires.fetch_add(1, Ordering::SeqCst);
        apply(self.script().on_acquire, "on_acquire").await
    }

    async fn on_release(&self, _: &&'static str, _: &mut TestConn) -> Result<(), TestError> {
        self.releases.fetch_add(1, Ordering::SeqCst);
        apply(self.script().on_release, "on_release").await
    }

    fn on_dead(&self, _: &&'static str, conn: &mut TestConn) {
        self.on_dead.lock().push(conn.id);
    }
}

impl kpool::blocking::Manager for Mgr {
    type Endpoint = &'static str;
    type Connection = TestConn;
    type Error = TestError;

    fn create(&self, ep: &&'static str) -> Result<TestConn, TestError> {
        apply_blocking(self.script().create, "create")?;
        Ok(self.make(ep))
    }

    fn dispose(&self, _: &&'static str, conn: TestConn) -> Result<(), TestError> {
        self.disposed.lock().push(conn.id);
        apply_blocking(self.script().dispose, "dispose")
    }

    fn check_alive(&self, _: &&'static str, conn: &mut TestConn) -> Result<bool, TestError> {
        self.checks.fetch_add(1, Ordering::SeqCst);
        apply_blocking(self.script().check, "check")?;
        Ok(!self.dead.lock().contains(&conn.id))
    }

    fn is_broken(&self, _: &&'static str, _: &TestConn) -> bool {
        self.script().broken
    }

    fn on_acquire(&self, _: &&'static str, _: &mut TestConn) -> Result<(), TestError> {
        self.acquires.fetch_add(1, Ordering::SeqCst);
        apply_blocking(self.script().on_acquire, "on_acquire")
    }

    fn on_release(&self, _: &&'static str, _: &mut TestConn) -> Result<(), TestError> {
        self.releases.fetch_add(1, Ordering::SeqCst);
        apply_blocking(self.script().on_release, "on_release")
    }

    fn on_dead(&self, _: &&'static str, conn: &mut TestConn) {
        self.on_dead.lock().push(conn.id);
    }
}

/// Lets spawned tasks run until they are all parked (paused-time tests).
pub async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}
