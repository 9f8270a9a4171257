//! The blocking manager, on [`redis::Connection`], for [`kpool::blocking::Pool`].
//!
//! ```
//! use kpool_redis::blocking::{Manager, Pool};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # if std::net::TcpStream::connect("127.0.0.1:6379").is_err() && std::env::var_os("CI").is_none() {
//! #     eprintln!("skipping: Redis not reachable at 127.0.0.1:6379"); return Ok(());
//! # }
//! let pool: Pool = Pool::builder(Manager::from_url("redis://127.0.0.1:6379")?).max_size(2).build()?;
//! let mut conn = pool.get()?;
//! let pong: String = redis::cmd("PING").query(&mut *conn)?;
//! assert_eq!(pong, "PONG");
//! # Ok(()) }
//! ```

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use redis::{Client, Connection, ConnectionInfo, ConnectionLike, IntoConnectionInfo, RedisError, RedisResult};

use crate::Endpoint;

/// A blocking pool of Redis connections keyed by `E` (see [`Endpoint`]).
pub type Pool<E = ()> = kpool::blocking::Pool<Manager<E>>;

/// The guard the blocking pool returns; derefs to [`redis::Connection`].
pub type Pooled<E = ()> = kpool::blocking::Pooled<Manager<E>>;

/// Makes [`redis::Connection`]s for the [`kpool::blocking::Pool`].
///
/// Connections get a connect timeout and read/write timeouts (5 s each by
/// default), so neither a check nor a user's command can hang a thread for
/// good. A reused connection is checked with `PING`; one whose socket failed
/// (`is_open() == false`) is disposed when returned.
pub struct Manager<E = ()> {
    base: ConnectionInfo,
    connect_timeout: Duration,
    io_timeout: Option<Duration>,
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
            connect_timeout: Duration::from_secs(5),
            io_timeout: Some(Duration::from_secs(5)),
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
            connect_timeout: self.connect_timeout,
            io_timeout: self.io_timeout,
            _endpoint: PhantomData,
        }
    }

    /// How long connecting may take. Defaults to 5 s.
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Read and write timeout of every connection (also bounds the `PING`
    /// check). `None`: none. Defaults to 5 s.
    #[must_use]
    pub fn io_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.io_timeout = timeout;
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
            .field("connect_timeout", &self.connect_timeout)
            .field("io_timeout", &self.io_timeout)
            .finish_non_exhaustive()
    }
}

impl<E: Endpoint> kpool::blocking::Manager for Manager<E> {
    type Endpoint = E;
    type Connection = Connection;
    type Error = RedisError;

    fn create(&self, endpoint: &E) -> RedisResult<Connection> {
        let client = Client::open(endpoint.connection_info(&self.base)?)?;
        let mut conn = client.get_connection_with_timeout(self.connect_timeout)?;
        conn.set_read_timeout(self.io_timeout)?;
        conn.set_write_timeout(self.io_timeout)?;
        // A server that wants a password accepts the socket and then refuses
        // every command (NOAUTH): one PING makes that a create error.
        redis::cmd("PING").query::<()>(&mut conn)?;
        Ok(conn)
    }

    fn check_alive(&self, endpoint: &E, conn: &mut Connection) -> RedisResult<bool> {
        if !conn.is_open() {
            return Ok(false);
        }
        match redis::cmd("PING").query::<String>(conn) {
            Ok(pong) => Ok(pong == "PONG"),
            Err(error) => {
                tracing::debug!(?endpoint, %error, "redis check failed");
                Ok(false)
            }
        }
    }

    fn is_broken(&self, _: &E, conn: &Connection) -> bool {
        !conn.is_open()
    }

    fn is_transient(&self, error: &RedisError) -> bool {
        crate::is_transient(error)
    }
}
