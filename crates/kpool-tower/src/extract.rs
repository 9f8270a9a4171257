//! axum extractors: [`Conn`] (a pooled connection), [`PoolOf`] (a pool) and
//! [`Pools`] itself, and [`ConnRejection`], the response when they fail.

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::time::Duration;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{HeaderValue, StatusCode, header};
use kpool::{ErrorKind, Manager, OwnedPooled, Phase, Pooled};

use crate::pools::{Options, Pools, describe};

/// Says which pool a [`Conn`] or [`PoolOf`] takes from.
///
/// The default, [`ByType`], takes the first pool added with the manager
/// type. To tell apart pools of one manager type, name them:
///
/// ```
/// use kpool_tower::{Conn, PoolName};
///
/// /// The read replica, added as `.postgres("replica", url)`.
/// struct Replica;
/// impl PoolName for Replica {
///     const NAME: Option<&'static str> = Some("replica");
/// }
///
/// # #[cfg(feature = "postgres")]
/// async fn report(db: Conn<kpool_postgres::Manager, Replica>) { /* ... */ }
/// ```
pub trait PoolName: Send + Sync + 'static {
    /// The pool's name in [`Pools`]; `None`: the first pool of the manager
    /// type.
    const NAME: Option<&'static str>;
}

/// The [`PoolName`] that takes the first pool added with the manager type.
#[derive(Debug)]
pub enum ByType {}

impl PoolName for ByType {
    const NAME: Option<&'static str> = None;
}

/// An axum extractor: a connection from the pool with manager `M` (chosen
/// by `N`, see [`PoolName`]), from the [`Pools`] that
/// [`PoolLayer`](crate::PoolLayer) put in the request. Derefs to the
/// connection; it goes back to the pool when the handler drops it.
///
/// A pool that is exhausted (the acquire timed out) or closed answers 503
/// with `Retry-After`; a backend error answers 500; see [`ConnRejection`].
///
/// Helpers are associated functions (`Conn::mark_broken(&mut conn)`), so
/// they never clash with the connection's methods.
///
/// It acquires from the pool's default endpoint; for a keyed pool without
/// one, take [`PoolOf`] and call `get_for`.
pub struct Conn<M: Manager, N: PoolName = ByType> {
    conn: OwnedPooled<M>,
    _name: PhantomData<fn() -> N>,
}

impl<M: Manager, N: PoolName> Conn<M, N> {
    /// The pool's guard, for [`Pooled`]'s helpers (age, use count, …).
    pub fn pooled(this: &Self) -> &OwnedPooled<M> {
        &this.conn
    }

    /// The pool's guard, mutably.
    pub fn pooled_mut(this: &mut Self) -> &mut OwnedPooled<M> {
        &mut this.conn
    }

    /// The guard itself, for example to move into a spawned task.
    pub fn into_pooled(this: Self) -> OwnedPooled<M> {
        this.conn
    }

    /// Marks the connection broken: the pool disposes it instead of reusing
    /// it.
    pub fn mark_broken(this: &mut Self) {
        Pooled::mark_broken(&mut this.conn);
    }
}

impl<M: Manager, N: PoolName> Deref for Conn<M, N> {
    type Target = M::Connection;
    fn deref(&self) -> &M::Connection {
        &self.conn
    }
}

impl<M: Manager, N: PoolName> DerefMut for Conn<M, N> {
    fn deref_mut(&mut self) -> &mut M::Connection {
        &mut self.conn
    }
}

impl<M: Manager, N: PoolName> fmt::Debug for Conn<M, N>
where
    M::Connection: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Conn").field(&*self.conn).finish()
    }
}

impl<M: Manager, N: PoolName, S: Send + Sync> FromRequestParts<S> for Conn<M, N> {
    type Rejection = ConnRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ConnRejection> {
        let pools = pools_of(parts)?;
        let (name, pool) = lookup::<M, N>(pools)?;
        match pool.get_owned().await {
            Ok(conn) => Ok(Conn { conn, _name: PhantomData }),
            Err(e) => Err(ConnRejection::from_error(&name, &e, pools.options())),
        }
    }
}

/// `Option<Conn<M>>`: `None` when no connection could be had (the acquire
/// timed out or failed, the pool is closed), for handlers that can do
/// without, such as a cache. It still waits up to the pool's
/// `acquire_timeout`. A missing layer or pool is still a 500.
impl<M: Manager, N: PoolName, S: Send + Sync> OptionalFromRequestParts<S> for Conn<M, N> {
    type Rejection = ConnRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Option<Self>, ConnRejection> {
        match <Self as FromRequestParts<S>>::from_request_parts(parts, state).await {
            Ok(conn) => Ok(Some(conn)),
            Err(rejection) if rejection.kind.is_some() => Ok(None),
            Err(rejection) => Err(rejection),
        }
    }
}

/// An axum extractor: the pool with manager `M` (chosen by `N`), for
/// handlers that acquire themselves (several connections, `get_for` on a
/// keyed pool, a deadline of their own). Derefs to [`kpool::Pool`].
pub struct PoolOf<M: Manager, N: PoolName = ByType> {
    pool: kpool::Pool<M>,
    _name: PhantomData<fn() -> N>,
}

impl<M: Manager, N: PoolName> PoolOf<M, N> {
    /// The pool.
    pub fn into_inner(self) -> kpool::Pool<M> {
        self.pool
    }
}

impl<M: Manager, N: PoolName> Deref for PoolOf<M, N> {
    type Target = kpool::Pool<M>;
    fn deref(&self) -> &kpool::Pool<M> {
        &self.pool
    }
}

impl<M: Manager, N: PoolName> Clone for PoolOf<M, N> {
    fn clone(&self) -> Self {
        PoolOf { pool: self.pool.clone(), _name: PhantomData }
    }
}

impl<M: Manager, N: PoolName> fmt::Debug for PoolOf<M, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PoolOf").field(&self.pool).finish()
    }
}

impl<M: Manager, N: PoolName, S: Send + Sync> FromRequestParts<S> for PoolOf<M, N> {
    type Rejection = ConnRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ConnRejection> {
        let pools = pools_of(parts)?;
        let (_, pool) = lookup::<M, N>(pools)?;
        Ok(PoolOf { pool, _name: PhantomData })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Pools {
    type Rejection = ConnRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ConnRejection> {
        pools_of(parts).cloned()
    }
}

fn pools_of(parts: &Parts) -> Result<&Pools, ConnRejection> {
    parts.extensions.get::<Pools>().ok_or_else(|| {
        tracing::error!("no kpool_tower::Pools in the request extensions: add PoolLayer to the router");
        ConnRejection::internal(
            None,
            "no Pools in the request extensions: add PoolLayer to the router".to_owned(),
            false,
        )
    })
}

fn lookup<M: Manager, N: PoolName>(pools: &Pools) -> Result<(String, kpool::Pool<M>), ConnRejection> {
    let found = match N::NAME {
        Some(name) => pools.get::<M>(name).map(|p| (name.to_owned(), p)),
        None => pools.of_type::<M>().map(|(name, p)| (name.to_owned(), p)),
    };
    found.ok_or_else(|| {
        let what = match N::NAME {
            Some(name) => format!("no pool named {name:?} with manager {}", std::any::type_name::<M>()),
            None => format!("no pool with manager {}", std::any::type_name::<M>()),
        };
        tracing::error!("{what}");
        ConnRejection::internal(N::NAME.map(str::to_owned), what, pools.options().expose_errors)
    })
}

/// Why [`Conn`], [`PoolOf`] or [`Pools`] could not be extracted; a response.
///
/// | failure | status | body |
/// | --- | --- | --- |
/// | acquire timed out (pool exhausted, backend unreachable) | 503, `Retry-After` | `service unavailable` |
/// | pool closed (shutting down) | 503, `Retry-After` | `service unavailable` |
/// | backend error, manager panic | 500 | `internal server error` |
/// | no [`PoolLayer`](crate::PoolLayer), no such pool | 500 | `internal server error` |
///
/// With [`PoolsBuilder::expose_errors`](crate::PoolsBuilder::expose_errors)
/// the body adds the pool's name and the error; either way the details are
/// logged with `tracing` (a warning for 503, an error for 500).
#[derive(Debug)]
pub struct ConnRejection {
    status: StatusCode,
    kind: Option<ErrorKind>,
    pool: Option<String>,
    detail: String,
    expose: bool,
    retry_after: Option<Duration>,
}

impl ConnRejection {
    fn internal(pool: Option<String>, detail: String, expose: bool) -> Self {
        ConnRejection { status: StatusCode::INTERNAL_SERVER_ERROR, kind: None, pool, detail, expose, retry_after: None }
    }

    fn from_error<E: fmt::Debug>(pool: &str, e: &kpool::Error<E>, options: &Options) -> Self {
        let detail = describe(e);
        let unavailable = e.is_timeout() || e.is_closed();
        if e.kind() == ErrorKind::Timeout(Phase::Wait) && e.backend().is_none() {
            // Plain exhaustion: counted in the pool's metrics; a warning per
            // rejected request would flood the log under overload.
            tracing::debug!(pool, error = %detail, "no connection for the request");
        } else if unavailable {
            tracing::warn!(pool, error = %detail, "no connection for the request");
        } else {
            tracing::error!(pool, error = %detail, "no connection for the request");
        }
        ConnRejection {
            status: if unavailable { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::INTERNAL_SERVER_ERROR },
            kind: Some(e.kind()),
            pool: Some(pool.to_owned()),
            detail,
            expose: options.expose_errors,
            retry_after: unavailable.then_some(options.retry_after),
        }
    }

    /// The response status: 503 or 500.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The pool error's kind, when acquiring failed.
    pub fn kind(&self) -> Option<ErrorKind> {
        self.kind
    }

    /// The pool's name, when known.
    pub fn pool(&self) -> Option<&str> {
        self.pool.as_deref()
    }

    /// The full story (the pool error and the backend's), whatever
    /// `expose_errors` says.
    pub fn detail(&self) -> &str {
        &self.detail
    }
}

impl fmt::Display for ConnRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.pool {
            Some(pool) => write!(f, "pool {pool:?}: {}", self.detail),
            None => f.write_str(&self.detail),
        }
    }
}

impl std::error::Error for ConnRejection {}

impl IntoResponse for ConnRejection {
    fn into_response(self) -> Response {
        let short = if self.status == StatusCode::SERVICE_UNAVAILABLE {
            "service unavailable"
        } else {
            "internal server error"
        };
        let body = if self.expose { format!("{short}: {self}") } else { short.to_owned() };
        let mut response = (self.status, body).into_response();
        if let Some(after) = self.retry_after {
            let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        response
    }
}
