//! The pools under test, behind two small traits so that every pool runs the
//! very same loop. Each adapter uses the pool's DEFAULT configuration, only
//! sized to the cell (`max_size`), plus what a cell needs (a 1 ms max lifetime
//! for churn) — see the README for the exact list.

use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// The trivial connection: what it costs to pool it is the pool's own cost.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) born: Instant,
    pub(crate) uses: u64,
}

/// What a cell asks of the "backend" every manager talks to.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct BackendSpec {
    /// `create` takes this long (cold start).
    pub(crate) create_delay: Option<Duration>,
    /// Every n-th health check fails (0: never).
    pub(crate) fail_every: u64,
    /// Max lifetime the pools are configured with (churn).
    pub(crate) lifetime: Option<Duration>,
}

/// The shared fake backend: counts connections opened and checks done.
#[derive(Debug, Default)]
pub(crate) struct Backend {
    pub(crate) spec: BackendSpec,
    pub(crate) created: AtomicU64,
    checks: AtomicU64,
}

impl Backend {
    pub(crate) fn new(spec: BackendSpec) -> Arc<Self> {
        Arc::new(Self { spec, ..Self::default() })
    }

    async fn create(&self) -> Conn {
        if let Some(d) = self.spec.create_delay {
            tokio::time::sleep(d).await;
        }
        self.made()
    }

    fn create_blocking(&self) -> Conn {
        if let Some(d) = self.spec.create_delay {
            std::thread::sleep(d);
        }
        self.made()
    }

    fn made(&self) -> Conn {
        self.created.fetch_add(1, Relaxed);
        Conn { born: Instant::now(), uses: 0 }
    }

    /// The health check: false every `fail_every`-th call.
    fn check(&self) -> bool {
        let n = self.spec.fail_every;
        n == 0 || (self.checks.fetch_add(1, Relaxed) + 1) % n != 0
    }

    fn expired(&self, conn: &Conn) -> bool {
        self.spec.lifetime.is_some_and(|l| conn.born.elapsed() >= l)
    }
}

fn io_err(msg: &'static str) -> std::io::Error {
    std::io::Error::other(msg)
}

/// An async pool as the harness sees it.
pub(crate) trait AsyncPool: Send + Sync + 'static {
    type Guard<'a>: DerefMut<Target = Conn> + Send
    where
        Self: 'a;
    fn get(&self) -> impl Future<Output = Result<Self::Guard<'_>, String>> + Send;
}

/// A blocking pool as the harness sees it.
pub(crate) trait SyncPool: Send + Sync + 'static {
    type Guard<'a>: DerefMut<Target = Conn>
    where
        Self: 'a;
    fn get(&self) -> Result<Self::Guard<'_>, String>;
}

// ---------------------------------------------------------------- kpool

pub(crate) struct KManager(pub(crate) Arc<Backend>);

impl kpool::Manager for KManager {
    type Endpoint = ();
    type Connection = Conn;
    type Error = std::io::Error;

    async fn create(&self, _: &()) -> Result<Conn, Self::Error> {
        Ok(self.0.create().await)
    }

    async fn check_alive(&self, _: &(), _: &mut Conn) -> Result<bool, Self::Error> {
        Ok(self.0.check())
    }
}

/// kpool's async pool: default configuration, `max_size` set; for churn a
/// 1 ms `max_lifetime` (and `idle_timeout` off, which must not exceed it) and
/// `validation_bypass` 0 so that every acquire is health-checked as in the
/// other pools.
pub(crate) fn kpool(backend: Arc<Backend>, size: usize) -> kpool::Pool<KManager> {
    let spec = backend.spec;
    let mut b = kpool::Pool::builder(KManager(backend)).max_size(size);
    if let Some(l) = spec.lifetime {
        b = b.max_lifetime(Some(l)).idle_timeout(None);
    }
    if spec.fail_every > 0 {
        b = b.validation_bypass(Duration::ZERO);
    }
    b.build().expect("valid kpool config")
}

/// [`kpool()`] with metrics off: the benchmark shows what metrics cost.
pub(crate) fn kpool_metrics_off(backend: Arc<Backend>, size: usize) -> kpool::Pool<KManager> {
    kpool::Pool::builder(KManager(backend)).max_size(size).metrics(false).build().expect("valid kpool config")
}

impl AsyncPool for kpool::Pool<KManager> {
    type Guard<'a> = kpool::Pooled<'a, KManager>;

    async fn get(&self) -> Result<Self::Guard<'_>, String> {
        kpool::Pool::get(self).await.map_err(|e| e.to_string())
    }
}

pub(crate) struct KBlockingManager(pub(crate) Arc<Backend>);

impl kpool::blocking::Manager for KBlockingManager {
    type Endpoint = ();
    type Connection = Conn;
    type Error = std::io::Error;

    fn create(&self, _: &()) -> Result<Conn, Self::Error> {
        Ok(self.0.create_blocking())
    }

    fn check_alive(&self, _: &(), _: &mut Conn) -> Result<bool, Self::Error> {
        Ok(self.0.check())
    }
}

pub(crate) fn kpool_blocking(backend: Arc<Backend>, size: usize) -> kpool::blocking::Pool<KBlockingManager> {
    kpool::blocking::Pool::builder(KBlockingManager(backend)).max_size(size).build().expect("valid kpool config")
}

impl SyncPool for kpool::blocking::Pool<KBlockingManager> {
    type Guard<'a> = kpool::blocking::Pooled<KBlockingManager>;

    fn get(&self) -> Result<Self::Guard<'_>, String> {
        kpool::blocking::Pool::get(self).map_err(|e| e.to_string())
    }
}

/// A keyed manager for the scale and memory cells.
pub(crate) struct KeyedManager;

impl kpool::Manager for KeyedManager {
    type Endpoint = u32;
    type Connection = Conn;
    type Error = std::io::Error;

    async fn create(&self, _: &u32) -> Result<Conn, Self::Error> {
        Ok(Conn { born: Instant::now(), uses: 0 })
    }
}

// ---------------------------------------------------------------- deadpool

pub(crate) struct DeadpoolManager(Arc<Backend>);

impl deadpool::managed::Manager for DeadpoolManager {
    type Type = Conn;
    type Error = std::io::Error;

    async fn create(&self) -> Result<Conn, Self::Error> {
        Ok(self.0.create().await)
    }

    async fn recycle(
        &self,
        conn: &mut Conn,
        _: &deadpool::managed::Metrics,
    ) -> deadpool::managed::RecycleResult<Self::Error> {
        // deadpool has no max lifetime of its own: the manager enforces it.
        if self.0.expired(conn) {
            return Err(deadpool::managed::RecycleError::message("expired"));
        }
        if self.0.check() { Ok(()) } else { Err(deadpool::managed::RecycleError::message("dead")) }
    }
}

pub(crate) type Deadpool = deadpool::managed::Pool<DeadpoolManager>;

pub(crate) fn deadpool(backend: Arc<Backend>, size: usize) -> Deadpool {
    deadpool::managed::Pool::builder(DeadpoolManager(backend)).max_size(size).build().expect("deadpool")
}

impl AsyncPool for Deadpool {
    type Guard<'a> = deadpool::managed::Object<DeadpoolManager>;

    async fn get(&self) -> Result<Self::Guard<'_>, String> {
        deadpool::managed::Pool::get(self).await.map_err(|e| e.to_string())
    }
}

// ---------------------------------------------------------------- bb8

pub(crate) struct Bb8Manager(Arc<Backend>);

impl bb8::ManageConnection for Bb8Manager {
    type Connection = Conn;
    type Error = std::io::Error;

    async fn connect(&self) -> Result<Conn, Self::Error> {
        Ok(self.0.create().await)
    }

    async fn is_valid(&self, _: &mut Conn) -> Result<(), Self::Error> {
        if self.0.check() { Ok(()) } else { Err(io_err("dead")) }
    }

    fn has_broken(&self, _: &mut Conn) -> bool {
        false
    }
}

pub(crate) type Bb8 = bb8::Pool<Bb8Manager>;

/// Must run inside a tokio runtime (bb8 spawns its reaper).
pub(crate) fn bb8(backend: Arc<Backend>, size: usize) -> Bb8 {
    let lifetime = backend.spec.lifetime;
    let mut b = bb8::Pool::builder().max_size(size as u32);
    if lifetime.is_some() {
        b = b.max_lifetime(lifetime);
    }
    b.build_unchecked(Bb8Manager(backend))
}

impl AsyncPool for Bb8 {
    type Guard<'a> = bb8::PooledConnection<'a, Bb8Manager>;

    async fn get(&self) -> Result<Self::Guard<'_>, String> {
        bb8::Pool::get(self).await.map_err(|e| e.to_string())
    }
}

// ---------------------------------------------------------------- mobc

pub(crate) struct MobcManager(Arc<Backend>);

#[mobc::async_trait]
impl mobc::Manager for MobcManager {
    type Connection = Conn;
    type Error = std::io::Error;

    async fn connect(&self) -> Result<Conn, Self::Error> {
        Ok(self.0.create().await)
    }

    async fn check(&self, conn: Conn) -> Result<Conn, Self::Error> {
        if self.0.check() { Ok(conn) } else { Err(io_err("dead")) }
    }
}

pub(crate) type Mobc = mobc::Pool<MobcManager>;

pub(crate) fn mobc(backend: Arc<Backend>, size: usize) -> Mobc {
    let lifetime = backend.spec.lifetime;
    let mut b = mobc::Pool::builder().max_open(size as u64);
    if lifetime.is_some() {
        b = b.max_lifetime(lifetime);
    }
    b.build(MobcManager(backend))
}

impl AsyncPool for Mobc {
    type Guard<'a> = mobc::Connection<MobcManager>;

    async fn get(&self) -> Result<Self::Guard<'_>, String> {
        mobc::Pool::get(self).await.map_err(|e| e.to_string())
    }
}

// ---------------------------------------------------------------- qp

pub(crate) struct QpManager(Arc<Backend>);

#[qp::async_trait]
impl qp::resource::Manage for QpManager {
    type Output = Conn;
    type Error = std::io::Error;

    async fn try_create(&self) -> Result<Conn, Self::Error> {
        Ok(self.0.create().await)
    }

    async fn validate(&self, _: &Conn) -> bool {
        self.0.check()
    }
}

pub(crate) type Qp = qp::Pool<QpManager>;

pub(crate) fn qp(backend: Arc<Backend>, size: usize) -> Qp {
    qp::Pool::new(QpManager(backend), size)
}

impl AsyncPool for Qp {
    type Guard<'a> = qp::Pooled<'a, QpManager>;

    async fn get(&self) -> Result<Self::Guard<'_>, String> {
        qp::Pool::acquire(self).await.map_err(|e| e.to_string())
    }
}

// ---------------------------------------------------------------- r2d2

pub(crate) struct R2d2Manager(Arc<Backend>);

impl r2d2::ManageConnection for R2d2Manager {
    type Connection = Conn;
    type Error = std::io::Error;

    fn connect(&self) -> Result<Conn, Self::Error> {
        Ok(self.0.create_blocking())
    }

    fn is_valid(&self, _: &mut Conn) -> Result<(), Self::Error> {
        if self.0.check() { Ok(()) } else { Err(io_err("dead")) }
    }

    fn has_broken(&self, _: &mut Conn) -> bool {
        false
    }
}

pub(crate) type R2d2 = r2d2::Pool<R2d2Manager>;

/// r2d2 opens `min_idle` (= `max_size` by default) connections when built.
pub(crate) fn r2d2(backend: Arc<Backend>, size: usize) -> R2d2 {
    r2d2::Pool::builder().max_size(size as u32).build(R2d2Manager(backend)).expect("r2d2")
}

impl SyncPool for R2d2 {
    type Guard<'a> = r2d2::PooledConnection<R2d2Manager>;

    fn get(&self) -> Result<Self::Guard<'_>, String> {
        r2d2::Pool::get(self).map_err(|e| e.to_string())
    }
}

// ---------------------------------------------------------------- references

/// The 60-line reference pool: a tokio `Semaphore` plus a `Mutex<Vec>`.
/// Fair (the semaphore is FIFO) but without lifetimes, checks or keys.
pub(crate) struct SemVec {
    sem: tokio::sync::Semaphore,
    idle: std::sync::Mutex<Vec<Conn>>,
    backend: Arc<Backend>,
}

pub(crate) fn sem_vec(backend: Arc<Backend>, size: usize) -> SemVec {
    SemVec { sem: tokio::sync::Semaphore::new(size), idle: std::sync::Mutex::new(Vec::with_capacity(size)), backend }
}

pub(crate) struct SemGuard<'a> {
    conn: Option<Conn>,
    pool: &'a SemVec,
    _permit: tokio::sync::SemaphorePermit<'a>,
}

impl Deref for SemGuard<'_> {
    type Target = Conn;

    fn deref(&self) -> &Conn {
        self.conn.as_ref().expect("present")
    }
}

impl DerefMut for SemGuard<'_> {
    fn deref_mut(&mut self) -> &mut Conn {
        self.conn.as_mut().expect("present")
    }
}

impl Drop for SemGuard<'_> {
    fn drop(&mut self) {
        // Runs before the permit field is dropped: the connection is back
        // before the next waiter is let in.
        if let Some(c) = self.conn.take() {
            self.pool.idle.lock().expect("not poisoned").push(c);
        }
    }
}

impl AsyncPool for SemVec {
    type Guard<'a> = SemGuard<'a>;

    async fn get(&self) -> Result<Self::Guard<'_>, String> {
        let permit = self.sem.acquire().await.map_err(|e| e.to_string())?;
        let idle = self.idle.lock().expect("not poisoned").pop();
        let conn = match idle {
            Some(c) => c,
            None => self.backend.create().await,
        };
        Ok(SemGuard { conn: Some(conn), pool: self, _permit: permit })
    }
}

/// No pool at all: the harness loop alone, the cell's ceiling.
pub(crate) struct NoPool {
    born: Instant,
}

pub(crate) fn no_pool(_: Arc<Backend>, _: usize) -> NoPool {
    NoPool { born: Instant::now() }
}

pub(crate) struct Owned(Conn);

impl Deref for Owned {
    type Target = Conn;

    fn deref(&self) -> &Conn {
        &self.0
    }
}

impl DerefMut for Owned {
    fn deref_mut(&mut self) -> &mut Conn {
        &mut self.0
    }
}

impl AsyncPool for NoPool {
    type Guard<'a> = Owned;

    fn get(&self) -> impl Future<Output = Result<Owned, String>> + Send {
        std::future::ready(Ok(Owned(Conn { born: self.born, uses: 0 })))
    }
}

impl SyncPool for NoPool {
    type Guard<'a> = Owned;

    fn get(&self) -> Result<Owned, String> {
        Ok(Owned(Conn { born: self.born, uses: 0 }))
    }
}

/// Whether a handed-out connection is past the cell's max lifetime.
pub(crate) fn expired(spec: &BackendSpec, conn: &Conn) -> bool {
    spec.lifetime.is_some_and(|l| conn.born.elapsed() >= l)
}
