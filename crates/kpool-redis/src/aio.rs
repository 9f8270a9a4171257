//! The async manager, on redis' multiplexed connection (tokio).

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::time::Duration;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Client, Cmd, ConnectionInfo, IntoConnectionInfo, Pipeline, RedisError};
use redis::{RedisFuture, RedisResult, Value};

use crate::Endpoint;

/// A pool of async Redis connections keyed by `E` (see [`Endpoint`]).
pub type Pool<E = ()> = kpool::Pool<Manager<E>>;

/// The guard [`Pool::get`](kpool::Pool::get) returns; derefs to [`Connection`].
pub type Pooled<'a, E = ()> = kpool::Pooled<'a, Manager<E>>;

/// Makes async Redis connections for the [`kpool::Pool`].
///
/// Each pooled connection is one redis [`MultiplexedConnection`] (one socket
/// and its driver task): the pool gives each user a connection of its own,
/// so a slow command or a `MULTI` of one user never queues behind another's.
pub struct Manager<E = ()> {
    base: ConnectionInfo,
    connection_timeout: Option<Duration>,
    response_timeout: Option<Duration>,
    _endpoint: PhantomData<fn() -> E>,
}

impl Manager {
    /// A manager for the connections `info` (a URL, a `ConnectionInfo`, …)
    /// describes.
    ///
    /// # Errors
    ///
    /// An invalid URL.
    pub fn new(info: impl IntoConnectionInfo) -> RedisResult<Self> {
        Ok(Manager {
            base: info.into_connection_info()?,
            connection_timeout: Some(Duration::from_secs(5)),
            response_timeout: Some(Duration::from_secs(5)),
            _endpoint: PhantomData,
        })
    }

    /// A manager for a URL such as `redis://127.0.0.1:6379/0`.
    ///
    /// # Errors
    ///
    /// An invalid URL.
    pub fn from_url(url: &str) -> RedisResult<Self> {
        Self::new(url)
    }
}

impl<E> Manager<E> {
    /// Keys the pool by `E2`: each endpoint derives its connection info
    /// from this manager's base ([`Db`](crate::Db), a URL, …).
    pub fn keyed<E2: Endpoint>(self) -> Manager<E2> {
        Manager {
            base: self.base,
            connection_timeout: self.connection_timeout,
            response_timeout: self.response_timeout,
            _endpoint: PhantomData,
        }
    }

    /// How long connecting may take. `None`: only the pool's deadlines bound
    /// it. Defaults to 5 s.
    #[must_use]
    pub fn connection_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.connection_timeout = timeout;
        self
    }

    /// How long a command (also the `PING` check) may wait for its answer.
    /// `None`: no limit. Defaults to 5 s.
    #[must_use]
    pub fn response_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// The base connection info.
    pub fn connection_info(&self) -> &ConnectionInfo {
        &self.base
    }
}

impl<E> fmt::Debug for Manager<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // ConnectionInfo's Debug redacts the password.
        f.debug_struct("Manager")
            .field("base", &self.base)
            .field("connection_timeout", &self.connection_timeout)
            .field("response_timeout", &self.response_timeout)
            .finish_non_exhaustive()
    }
}

/// A pooled async Redis connection.
///
/// Implements [`redis::aio::ConnectionLike`], so commands run on it directly
/// (`redis::cmd("GET").arg("k").query_async(&mut *conn)`, or the
/// `redis::AsyncCommands` methods), and notes when a command failed in a way
/// that leaves the connection unusable (I/O error, dropped connection): the
/// pool then disposes it when it is returned. Derefs to the underlying
/// [`MultiplexedConnection`] for everything else (commands sent that way are
/// not watched).
pub struct Connection {
    inner: MultiplexedConnection,
    broken: bool,
}

impl Connection {
    /// Whether a command failed in a way that leaves the connection unusable.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Takes the underlying connection.
    pub fn into_inner(self) -> MultiplexedConnection {
        self.inner
    }

    fn note<T>(&mut self, result: RedisResult<T>) -> RedisResult<T> {
        if let Err(e) = &result {
            if e.is_unrecoverable_error() {
                self.broken = true;
            }
        }
        result
    }
}

impl Deref for Connection {
    type Target = MultiplexedConnection;

    fn deref(&self) -> &MultiplexedConnection {
        &self.inner
    }
}

impl DerefMut for Connection {
    fn deref_mut(&mut self) -> &mut MultiplexedConnection {
        &mut self.inner
    }
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection").field("db", &self.inner.get_db()).field("broken", &self.broken).finish()
    }
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let result = self.inner.req_packed_command(cmd).await;
            self.note(result)
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let result = self.inner.req_packed_commands(cmd, offset, count).await;
            self.note(result)
        })
    }

    fn get_db(&self) -> i64 {
        self.inner.get_db()
    }
}

impl<E: Endpoint> kpool::Manager for Manager<E> {
    type Endpoint = E;
    type Connection = Connection;
    type Error = RedisError;

    async fn create(&self, endpoint: &E) -> RedisResult<Connection> {
        let client = Client::open(endpoint.connection_info(&self.base)?)?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(self.connection_timeout)
            .set_response_timeout(self.response_timeout);
        let mut conn =
            Connection { inner: client.get_multiplexed_async_connection_with_config(&config).await?, broken: false };
        // A server that wants a password accepts the socket and then refuses
        // every command (NOAUTH): one PING makes that a create error.
        redis::cmd("PING").query_async::<()>(&mut conn).await?;
        Ok(conn)
    }

    async fn check_alive(&self, endpoint: &E, conn: &mut Connection) -> RedisResult<bool> {
        if conn.broken {
            return Ok(false);
        }
        // A multiplexed connection cannot tell whether its socket is still
        // open: only a command finds out.
        match redis::cmd("PING").query_async::<String>(conn).await {
            Ok(pong) => Ok(pong == "PONG"),
            Err(error) => {
                tracing::debug!(?endpoint, %error, "redis check failed");
                Ok(false)
            }
        }
    }

    fn is_broken(&self, _: &E, conn: &Connection) -> bool {
        conn.broken
    }

    fn is_transient(&self, error: &RedisError) -> bool {
        crate::is_transient(error)
    }
}
