//! A manager of named pools (the seeds' `PoolManager`): pools of any manager
//! type, async or blocking, under one roof for lookup, metrics and shutdown.

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use crate::metrics::{MetricsSnapshot, write_prometheus};
use crate::sync::Mutex;

/// What the registry needs of a pool. Implemented by [`Pool`](crate::Pool)
/// and [`blocking::Pool`](crate::blocking::Pool).
pub trait NamedPool: Send + Sync + 'static {
    /// A metrics snapshot.
    fn metrics(&self) -> MetricsSnapshot;
    /// Closes the pool.
    fn close(&self);
    /// Whether it is closed.
    fn is_closed(&self) -> bool;
    /// Connections still checked out or being created.
    fn outstanding(&self) -> usize;
    /// For typed lookup.
    fn as_any(&self) -> &dyn Any;
}

impl<M: crate::Manager> NamedPool for crate::Pool<M> {
    fn metrics(&self) -> MetricsSnapshot {
        crate::Pool::metrics(self)
    }
    fn close(&self) {
        crate::Pool::close(self);
    }
    fn is_closed(&self) -> bool {
        crate::Pool::is_closed(self)
    }
    fn outstanding(&self) -> usize {
        self.outstanding()
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl<M: crate::blocking::Manager> NamedPool for crate::blocking::Pool<M> {
    fn metrics(&self) -> MetricsSnapshot {
        crate::blocking::Pool::metrics(self)
    }
    fn close(&self) {
        crate::blocking::Pool::close(self);
    }
    fn is_closed(&self) -> bool {
        crate::blocking::Pool::is_closed(self)
    }
    fn outstanding(&self) -> usize {
        self.outstanding()
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Why a registry call failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum RegistryError<E> {
    /// The registry was closed with [`Registry::close_all`].
    Closed,
    /// A pool with this name exists with another type.
    WrongType(String),
    /// A pool with this name exists already.
    Exists(String),
    /// Building the pool failed.
    Build(E),
}

impl<E: fmt::Display> fmt::Display for RegistryError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegistryError::Closed => f.write_str("the pool registry is closed"),
            RegistryError::WrongType(n) => write!(f, "pool {n:?} exists with another type"),
            RegistryError::Exists(n) => write!(f, "pool {n:?} exists already"),
            RegistryError::Build(e) => write!(f, "building the pool failed: {e}"),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for RegistryError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RegistryError::Build(e) => Some(e),
            _ => None,
        }
    }
}

/// Named pools. Cheap to share behind an `Arc`; every method takes `&self`.
///
/// ```
/// use kpool::{FnManager, Pool, Registry};
///
/// let registry = Registry::new();
/// let make = || Pool::builder(FnManager::new(|_: ()| async { Ok::<_, std::io::Error>(0u8) })).build();
/// let a = registry.get_or_create("cache", make).unwrap();
/// let again = registry.get_or_create("cache", make).unwrap();
/// assert_eq!(registry.names(), ["cache"]);
/// assert!(registry.to_prometheus().contains("pool=\"cache\""));
/// registry.close_all();
/// assert!(a.is_closed() && again.is_closed());
/// assert!(registry.get_or_create("other", make).is_err());
/// ```
#[derive(Default)]
pub struct Registry {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    pools: BTreeMap<String, Box<dyn NamedPool>>,
    closed: bool,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry").field("pools", &self.names()).finish()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// The pool named `name`, built with `make` if there is none yet.
    ///
    /// # Errors
    ///
    /// `Closed` after [`close_all`](Self::close_all), `WrongType` if the name
    /// holds another pool type, `Build` if `make` fails.
    pub fn get_or_create<P, E>(&self, name: &str, make: impl FnOnce() -> Result<P, E>) -> Result<P, RegistryError<E>>
    where
        P: NamedPool + Clone,
    {
        let mut inner = self.inner.lock();
        if inner.closed {
            return Err(RegistryError::Closed);
        }
        if let Some(existing) = inner.pools.get(name) {
            return existing.as_any().downcast_ref::<P>().cloned().ok_or_else(|| RegistryError::WrongType(name.into()));
        }
        let pool = make().map_err(RegistryError::Build)?;
        inner.pools.insert(name.to_owned(), Box::new(pool.clone()));
        Ok(pool)
    }

    /// Adds a pool built elsewhere.
    ///
    /// # Errors
    ///
    /// `Closed`, or `Exists` if the name is taken (the pool is handed back
    /// untouched inside neither: it is simply dropped by the caller).
    pub fn insert<P: NamedPool>(&self, name: &str, pool: P) -> Result<(), RegistryError<std::convert::Infallible>> {
        let mut inner = self.inner.lock();
        if inner.closed {
            return Err(RegistryError::Closed);
        }
        if inner.pools.contains_key(name) {
            return Err(RegistryError::Exists(name.into()));
        }
        inner.pools.insert(name.to_owned(), Box::new(pool));
        Ok(())
    }

    /// The pool named `name`, if it exists with type `P`.
    pub fn get<P: NamedPool + Clone>(&self, name: &str) -> Option<P> {
        self.inner.lock().pools.get(name).and_then(|p| p.as_any().downcast_ref::<P>().cloned())
    }

    /// Whether the pool named `name` is closed; `None` if there is none.
    pub fn is_closed(&self, name: &str) -> Option<bool> {
        self.inner.lock().pools.get(name).map(|p| p.is_closed())
    }

    /// Names of the pools, sorted.
    pub fn names(&self) -> Vec<String> {
        self.inner.lock().pools.keys().cloned().collect()
    }

    /// Closes the pool named `name` and removes it; false if there was none.
    pub fn close(&self, name: &str) -> bool {
        let pool = self.inner.lock().pools.remove(name);
        pool.map(|p| p.close()).is_some()
    }

    /// Closes every pool; from now on creating fails with `Closed`.
    pub fn close_all(&self) {
        let mut inner = self.inner.lock();
        inner.closed = true;
        for pool in inner.pools.values() {
            pool.close();
        }
    }

    /// [`close_all`](Self::close_all), then waits up to `timeout` for
    /// checked-out connections to come back. Returns how many are still out.
    pub async fn close_all_timeout(&self, timeout: Duration) -> usize {
        self.close_all();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let out: usize = self.inner.lock().pools.values().map(|p| p.outstanding()).sum();
            if out == 0 || tokio::time::Instant::now() >= deadline {
                return out;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Metrics of every pool, by name.
    pub fn metrics(&self) -> Vec<(String, MetricsSnapshot)> {
        // Snapshots are taken outside the registry lock's critical path of
        // other callers only briefly; pools' own reads never block them.
        let inner = self.inner.lock();
        inner.pools.iter().map(|(n, p)| (n.clone(), p.metrics())).collect()
    }

    /// Prometheus text of every pool, labelled `pool="<name>"`.
    pub fn to_prometheus(&self) -> String {
        let all = self.metrics();
        let refs: Vec<(&str, &MetricsSnapshot)> = all.iter().map(|(n, m)| (n.as_str(), m)).collect();
        let mut out = String::new();
        write_prometheus(&mut out, &refs);
        out
    }
}
