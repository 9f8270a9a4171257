//! The blocking manager, on the `postgres` crate, for [`kpool::blocking::Pool`].
//!
//! ```
//! use kpool_postgres::blocking::{Manager, Pool};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let url = "postgres://root@127.0.0.1:5432/test";
//! # if std::net::TcpStream::connect("127.0.0.1:5432").is_err() && std::env::var_os("CI").is_none() {
//! #     eprintln!("skipping: PostgreSQL not reachable at 127.0.0.1:5432"); return Ok(());
//! # }
//! let pool: Pool = Pool::builder(Manager::from_url(url)?).max_size(2).build()?;
//! let mut conn = pool.get()?;
//! let row = conn.query_one("SELECT $1::int + 1", &[&41])?;
//! assert_eq!(row.get::<_, i32>(0), 42);
//! # Ok(()) }
//! ```
//!
//! Each `postgres::Client` drives its socket with a small tokio runtime of its
//! own, and tokio forbids starting a runtime inside another: use this pool
//! from plain threads (or `tokio::task::spawn_blocking`), not from async
//! code, where creating a connection would panic (the pool catches the panic
//! and returns it as an error).

use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;
use std::time::Duration;

use postgres::Client;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::{Config, Error, NoTls, Socket};

use crate::{CheckMethod, Endpoint};

/// A blocking pool of `postgres` clients keyed by `E` (see [`Endpoint`]).
pub type Pool<E = (), T = NoTls> = kpool::blocking::Pool<Manager<E, T>>;

/// The guard the blocking pool returns; derefs to [`postgres::Client`].
pub type Pooled<E = (), T = NoTls> = kpool::blocking::Pooled<Manager<E, T>>;

/// Makes `postgres` (blocking) clients for the [`kpool::blocking::Pool`].
///
/// Each client runs its own small tokio runtime inside the `postgres` crate;
/// no runtime is needed by the caller. Same settings as the async
/// [`Manager`](crate::Manager). The cleanup of [`CheckMethod::Clean`] runs in
/// the guard's drop, on the returning thread.
pub struct Manager<E = (), T = NoTls> {
    base: Config,
    tls: T,
    method: CheckMethod,
    check_timeout: Duration,
    _endpoint: PhantomData<fn() -> E>,
}

impl Manager {
    /// A manager for the connections `config` describes, without TLS, with
    /// the [`Verified`](CheckMethod::Verified) check and a 5 s check timeout.
    pub fn new(config: Config) -> Self {
        Manager {
            base: config,
            tls: NoTls,
            method: CheckMethod::default(),
            check_timeout: Duration::from_secs(5),
            _endpoint: PhantomData,
        }
    }

    /// A manager for a connection URL or key-value string.
    ///
    /// # Errors
    ///
    /// The driver's parse error for an invalid string.
    pub fn from_url(url: &str) -> Result<Self, Error> {
        Ok(Self::new(Config::from_str(url)?))
    }
}

impl<E, T> Manager<E, T> {
    /// Keys the pool by `E2`; see the async [`Manager::keyed`](crate::Manager::keyed).
    pub fn keyed<E2: Endpoint>(self) -> Manager<E2, T> {
        Manager {
            base: self.base,
            tls: self.tls,
            method: self.method,
            check_timeout: self.check_timeout,
            _endpoint: PhantomData,
        }
    }

    /// Connects through a TLS connector. Defaults to [`NoTls`].
    pub fn tls<T2>(self, tls: T2) -> Manager<E, T2> {
        Manager { base: self.base, tls, method: self.method, check_timeout: self.check_timeout, _endpoint: PhantomData }
    }

    /// How connections are checked and cleaned. Defaults to
    /// [`CheckMethod::Verified`].
    #[must_use]
    pub fn check_method(mut self, method: CheckMethod) -> Self {
        self.method = method;
        self
    }

    /// How long a health-check query may take before the connection counts
    /// as dead (the check runs on the acquiring thread). Defaults to 5 s.
    #[must_use]
    pub fn check_timeout(mut self, timeout: Duration) -> Self {
        self.check_timeout = timeout;
        self
    }

    /// The base configuration.
    pub fn config(&self) -> &Config {
        &self.base
    }

    /// The check method in use.
    pub fn method(&self) -> CheckMethod {
        self.method
    }
}

impl<E, T> fmt::Debug for Manager<E, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Manager")
            .field("config", &self.base)
            .field("method", &self.method)
            .field("check_timeout", &self.check_timeout)
            .finish_non_exhaustive()
    }
}

/// Whether the client is closed, after reading what the server sent while it
/// sat idle. A blocking client's socket is read only during calls, so a
/// server-side close (a killed backend) stays unseen until something polls
/// it. The driver's only way to poll an idle client is its notifications API;
/// its non-blocking iterator never turns the client's I/O driver, so this
/// waits for a notification for 1 ms instead (about 2 ms with the timer's
/// granularity; it returns at once when the server closed the connection).
/// A notification that arrives at that moment is dropped.
fn closed_after_poll(conn: &mut Client) -> bool {
    use postgres::fallible_iterator::FallibleIterator;

    if conn.is_closed() {
        return true;
    }
    if conn.notifications().is_empty() {
        if let Err(error) = conn.notifications().timeout_iter(Duration::from_millis(1)).next() {
            tracing::debug!(%error, "postgres connection failed while idle");
            return true;
        }
    }
    conn.is_closed()
}

impl<E, T> kpool::blocking::Manager for Manager<E, T>
where
    E: Endpoint,
    T: MakeTlsConnect<Socket> + Clone + Send + Sync + 'static,
    T::Stream: Send,
    T::TlsConnect: Send,
    <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
{
    type Endpoint = E;
    type Connection = Client;
    type Error = Error;

    fn create(&self, endpoint: &E) -> Result<Client, Error> {
        postgres::Config::from(endpoint.config(&self.base)).connect(self.tls.clone())
    }

    fn check_alive(&self, endpoint: &E, conn: &mut Client) -> Result<bool, Error> {
        if !self.method.round_trip() {
            return Ok(!closed_after_poll(conn));
        }
        if conn.is_closed() {
            return Ok(false);
        }
        // An empty query under the check timeout; any failure means dead.
        Ok(conn
            .is_valid(self.check_timeout)
            .inspect_err(|error| tracing::debug!(?endpoint, %error, "postgres check failed"))
            .is_ok())
    }

    fn is_broken(&self, _: &E, conn: &Client) -> bool {
        conn.is_closed()
    }

    fn on_release(&self, _: &E, conn: &mut Client) -> Result<(), Error> {
        if conn.is_closed() {
            return Ok(());
        }
        for statement in self.method.cleanup() {
            conn.simple_query(statement)?;
        }
        Ok(())
    }

    fn is_transient(&self, error: &Error) -> bool {
        crate::is_transient(error)
    }
}
