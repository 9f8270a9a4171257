//! The async manager, on tokio-postgres.

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::str::FromStr;
use std::task::{Context, Waker};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::{Client, Config, Error, NoTls, Socket};

use crate::{CheckMethod, Endpoint};

/// A pool of tokio-postgres connections keyed by `E` (see [`Endpoint`]).
pub type Pool<E = (), T = NoTls> = kpool::Pool<Manager<E, T>>;

/// The guard [`Pool::get`](kpool::Pool::get) returns; derefs to [`Connection`],
/// which derefs to [`tokio_postgres::Client`].
pub type Pooled<'a, E = (), T = NoTls> = kpool::Pooled<'a, Manager<E, T>>;

/// Makes tokio-postgres connections for the async [`kpool::Pool`].
///
/// Each connection's I/O task is spawned on the current tokio runtime. The
/// endpoint type `E` turns the base [`Config`] into each connection's
/// configuration ([`Manager::keyed`]); `T` is the TLS connector
/// ([`Manager::tls`]), [`NoTls`] by default.
pub struct Manager<E = (), T = NoTls> {
    base: Config,
    tls: T,
    method: CheckMethod,
    check_timeout: Option<Duration>,
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
            check_timeout: Some(Duration::from_secs(5)),
            _endpoint: PhantomData,
        }
    }

    /// A manager for a connection URL or key-value string, such as
    /// `postgres://root@127.0.0.1:5432/test` or `host=127.0.0.1 dbname=test`.
    ///
    /// # Errors
    ///
    /// The driver's parse error for an invalid string.
    pub fn from_url(url: &str) -> Result<Self, Error> {
        Ok(Self::new(Config::from_str(url)?))
    }
}

impl<E, T> Manager<E, T> {
    /// Keys the pool by `E2`: each endpoint derives its configuration from
    /// this manager's base configuration (a database name, a [`Target`](crate::Target), …).
    pub fn keyed<E2: Endpoint>(self) -> Manager<E2, T> {
        Manager {
            base: self.base,
            tls: self.tls,
            method: self.method,
            check_timeout: self.check_timeout,
            _endpoint: PhantomData,
        }
    }

    /// Connects through a TLS connector, e.g. `tokio_postgres_rustls::MakeRustlsConnect`
    /// or `postgres_native_tls::MakeTlsConnector`. Defaults to [`NoTls`].
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
    /// as dead. `None`: only the pool's acquire deadline bounds it. Defaults
    /// to 5 s.
    #[must_use]
    pub fn check_timeout(mut self, timeout: Option<Duration>) -> Self {
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
        // tokio_postgres::Config's Debug redacts the password.
        f.debug_struct("Manager")
            .field("config", &self.base)
            .field("method", &self.method)
            .field("check_timeout", &self.check_timeout)
            .finish_non_exhaustive()
    }
}

/// A pooled tokio-postgres connection: the [`Client`] and the task that
/// drives its socket. Derefs to the [`Client`].
pub struct Connection {
    client: Client,
    task: JoinHandle<()>,
}

impl Connection {
    /// Connects with `config` and spawns the connection's I/O task on the
    /// current tokio runtime.
    ///
    /// # Errors
    ///
    /// The driver's connect error.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub async fn connect<T>(config: &Config, tls: T) -> Result<Self, Error>
    where
        T: MakeTlsConnect<Socket>,
        T::Stream: Send + 'static,
    {
        let (client, connection) = config.connect(tls).await?;
        let task = tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "postgres connection ended with an error");
            }
        });
        Ok(Connection { client, task })
    }

    /// The client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Whether the connection is closed: the driver saw the socket close or
    /// fail, or its I/O task ended.
    pub fn is_closed(&self) -> bool {
        self.client.is_closed() || self.task.is_finished()
    }
}

impl Deref for Connection {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

impl DerefMut for Connection {
    fn deref_mut(&mut self) -> &mut Client {
        &mut self.client
    }
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection").field("closed", &self.is_closed()).finish_non_exhaustive()
    }
}

/// Queues `statement` on the connection without waiting for its answer,
/// from synchronous code: the first poll of the driver's query future hands
/// the request to the connection task (tokio-postgres' own `Transaction`
/// drop sends its `ROLLBACK` the same way), and the answer is discarded when
/// the future is dropped. Requests run in order, so anything sent later runs
/// after it. Best effort: the awaited cleanup in `on_release` still runs.
fn send_now(client: &Client, statement: &str) {
    let mut query = std::pin::pin!(client.simple_query(statement));
    let _ = query.as_mut().poll(&mut Context::from_waker(Waker::noop()));
}

impl<E, T> kpool::Manager for Manager<E, T>
where
    E: Endpoint,
    T: MakeTlsConnect<Socket> + Clone + Send + Sync + 'static,
    T::Stream: Send + Sync + 'static,
    T::TlsConnect: Send,
    <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
{
    type Endpoint = E;
    type Connection = Connection;
    type Error = Error;

    async fn create(&self, endpoint: &E) -> Result<Connection, Error> {
        let config = endpoint.config(&self.base);
        Connection::connect(&config, self.tls.clone()).await
    }

    async fn dispose(&self, _: &E, conn: Connection) -> Result<(), Error> {
        let Connection { client, task } = conn;
        // Dropping the last client makes the I/O task send Terminate and end.
        drop(client);
        let _ = task.await;
        Ok(())
    }

    async fn check_alive(&self, endpoint: &E, conn: &mut Connection) -> Result<bool, Error> {
        if conn.is_closed() {
            return Ok(false);
        }
        if !self.method.round_trip() {
            return Ok(true);
        }
        let query = conn.client.simple_query("");
        let result = match self.check_timeout {
            Some(t) => match tokio::time::timeout(t, query).await {
                Ok(r) => r,
                Err(_) => {
                    tracing::debug!(?endpoint, "postgres check timed out");
                    return Ok(false);
                }
            },
            None => query.await,
        };
        // Any failure of the check means the connection is unusable: the pool
        // disposes it and hands out another, so the caller never sees it.
        Ok(result.inspect_err(|error| tracing::debug!(?endpoint, %error, "postgres check failed")).is_ok())
    }

    fn is_broken(&self, _: &E, conn: &Connection) -> bool {
        if conn.is_closed() {
            return true;
        }
        // A guard was dropped: `on_release` waits for the next checkout, but
        // an abandoned transaction should not hold its locks that long.
        for statement in self.method.cleanup() {
            send_now(&conn.client, statement);
        }
        false
    }

    async fn on_release(&self, _: &E, conn: &mut Connection) -> Result<(), Error> {
        if conn.is_closed() {
            return Ok(());
        }
        for statement in self.method.cleanup() {
            conn.client.simple_query(statement).await?;
        }
        Ok(())
    }

    fn is_transient(&self, error: &Error) -> bool {
        crate::is_transient(error)
    }
}
