//! How the async pool makes, checks and disposes connections.

use std::fmt::Debug;
use std::future::Future;
use std::hash::Hash;
use std::marker::PhantomData;

/// What a pool's endpoint key must be: anything `Eq + Hash + Clone` that can
/// cross threads. Implemented for every such type.
pub trait Endpoint: Eq + Hash + Clone + Debug + Send + Sync + 'static {}

impl<T: Eq + Hash + Clone + Debug + Send + Sync + 'static> Endpoint for T {}

/// Makes, checks and disposes connections for the async [`Pool`](crate::Pool).
///
/// Only [`create`](Manager::create) is required. Every method gets the
/// endpoint the connection belongs to. The pool never calls a manager method
/// while holding a lock, and catches panics from every method: a panicking
/// manager never poisons the pool (see [`ErrorKind::Panic`](crate::ErrorKind)).
///
/// The blocking pool's trait, [`blocking::Manager`](crate::blocking::Manager),
/// has the same shape with plain functions.
pub trait Manager: Send + Sync + 'static {
    /// The key connections are pooled by; `()` for a single-endpoint pool.
    type Endpoint: Endpoint;
    /// The pooled connection.
    type Connection: Send + 'static;
    /// The backend's error.
    type Error: Debug + Send + 'static;

    /// Opens a new connection to `endpoint`.
    fn create(&self, endpoint: &Self::Endpoint) -> impl Future<Output = Result<Self::Connection, Self::Error>> + Send;

    /// Closes a connection the pool is done with. Errors and timeouts are
    /// logged and counted, never returned. Defaults to dropping it.
    fn dispose(
        &self,
        endpoint: &Self::Endpoint,
        conn: Self::Connection,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        let _ = endpoint;
        drop(conn);
        std::future::ready(Ok(()))
    }

    /// Checks a reused connection before it is handed out: `Ok(true)` alive,
    /// `Ok(false)` dead (disposed, and the acquire goes on), `Err` dead too,
    /// and the caller gets the error. Defaults to alive.
    fn check_alive(
        &self,
        endpoint: &Self::Endpoint,
        conn: &mut Self::Connection,
    ) -> impl Future<Output = Result<bool, Self::Error>> + Send {
        let _ = (endpoint, conn);
        std::future::ready(Ok(true))
    }

    /// A cheap synchronous test run when a connection is returned: `true`
    /// disposes it instead of pooling it. Defaults to `false`.
    fn is_broken(&self, endpoint: &Self::Endpoint, conn: &Self::Connection) -> bool {
        let _ = (endpoint, conn);
        false
    }

    /// Runs on every connection just before it is handed out. On error the
    /// connection goes back idle and the caller gets the error.
    fn on_acquire(
        &self,
        endpoint: &Self::Endpoint,
        conn: &mut Self::Connection,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        let _ = (endpoint, conn);
        std::future::ready(Ok(()))
    }

    /// Runs when a connection comes back. Because dropping a guard cannot
    /// await, a dropped guard defers this hook to the connection's next
    /// checkout (before its health check); [`Pooled::release`](crate::Pooled::release)
    /// runs it at once and returns its error. Either way an error is logged
    /// and counted, and the connection stays pooled.
    fn on_release(
        &self,
        endpoint: &Self::Endpoint,
        conn: &mut Self::Connection,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        let _ = (endpoint, conn);
        std::future::ready(Ok(()))
    }

    /// Told about a connection found dead, just before it is disposed.
    fn on_dead(&self, endpoint: &Self::Endpoint, conn: &mut Self::Connection) {
        let _ = (endpoint, conn);
    }

    /// Whether a `create` error may go away by itself (a refused or reset
    /// connection, a server starting up). Non-transient errors — wrong
    /// password, unknown database — are returned at once instead of being
    /// retried. Defaults to `true` (every error is retried up to `retry_limit`).
    fn is_transient(&self, error: &Self::Error) -> bool {
        let _ = error;
        true
    }
}

/// A [`Manager`] made from closures: a factory, and optionally a validator
/// and a closer, as in apifrom's pool. The factory gets a clone of the
/// endpoint.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use kpool::{FnManager, Pool};
///
/// let manager = FnManager::new(|port: u16| async move { Ok::<_, std::io::Error>(vec![port]) })
///     .validate(|conn: &Vec<u16>| !conn.is_empty())
///     .close(|conn: Vec<u16>| drop(conn));
/// let pool = Pool::builder(manager).endpoint(8080).build().unwrap();
/// assert_eq!(*pool.get().await.unwrap(), vec![8080]);
/// # }
/// ```
pub struct FnManager<K, C, F, V = fn(&C) -> bool, D = fn(C)> {
    factory: F,
    validate: V,
    close: D,
    _types: PhantomData<fn(K) -> C>,
}

impl<K, C, F> FnManager<K, C, F> {
    /// A manager whose `create` calls `factory(endpoint.clone())`.
    pub fn new(factory: F) -> Self {
        Self { factory, validate: |_| true, close: drop, _types: PhantomData }
    }
}

impl<K, C, F, V, D> FnManager<K, C, F, V, D> {
    /// Uses `validate(&conn)` as the health check (`false`: dead).
    pub fn validate<V2: Fn(&C) -> bool>(self, validate: V2) -> FnManager<K, C, F, V2, D> {
        FnManager { factory: self.factory, validate, close: self.close, _types: PhantomData }
    }

    /// Uses `close(conn)` to dispose connections.
    pub fn close<D2: Fn(C)>(self, close: D2) -> FnManager<K, C, F, V, D2> {
        FnManager { factory: self.factory, validate: self.validate, close, _types: PhantomData }
    }
}

impl<K, C, E, F, Fut, V, D> Manager for FnManager<K, C, F, V, D>
where
    K: Endpoint,
    C: Send + 'static,
    E: Debug + Send + 'static,
    F: Fn(K) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<C, E>> + Send,
    V: Fn(&C) -> bool + Send + Sync + 'static,
    D: Fn(C) + Send + Sync + 'static,
{
    type Endpoint = K;
    type Connection = C;
    type Error = E;

    fn create(&self, endpoint: &K) -> impl Future<Output = Result<C, E>> + Send {
        (self.factory)(endpoint.clone())
    }

    fn dispose(&self, _: &K, conn: C) -> impl Future<Output = Result<(), E>> + Send {
        (self.close)(conn);
        std::future::ready(Ok(()))
    }

    fn check_alive(&self, _: &K, conn: &mut C) -> impl Future<Output = Result<bool, E>> + Send {
        std::future::ready(Ok((self.validate)(conn)))
    }
}

impl<K, C, F, V, D> Debug for FnManager<K, C, F, V, D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FnManager")
    }
}
