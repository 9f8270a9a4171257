//! The tokio TCP manager.

use socket2::SockRef;
use tokio::net::TcpStream;

use crate::error::Error;
use crate::probe::{Probe, peek_nonblocking};
use crate::{Address, Options, connect};

/// Pools [`tokio::net::TcpStream`]s, keyed by [`Address`].
///
/// - `create` resolves the address (a host name each time), connects to
///   each resolved address in turn within the
///   [`connect_timeout`](TcpManager::connect_timeout) and sets `TCP_NODELAY`
///   (and keepalive, if set).
/// - `check_alive` peeks without blocking: a peer that closed or reset the
///   connection makes it dead, so the pool disposes it and the acquire goes on
///   with another; unread data is judged by
///   [`unread_data`](TcpManager::unread_data).
/// - `is_transient` is [`Error::is_transient`]: a refused connection is
///   retried, a name that does not resolve is returned at once.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use kpool::Pool;
/// use kpool_net::{Address, TcpManager};
///
/// let server = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let pool = Pool::builder(TcpManager::new()).endpoint(Address::from(server.local_addr()?)).build()?;
/// let conn = pool.get().await?;
/// assert!(conn.nodelay()?);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, Default)]
pub struct TcpManager {
    opts: Options,
}

impl TcpManager {
    /// A manager with the default [`Options`].
    pub fn new() -> Self {
        Self::default()
    }

    crate::options::option_setters!(tcp);
}

impl kpool::Manager for TcpManager {
    type Endpoint = Address;
    type Connection = TcpStream;
    type Error = Error;

    async fn create(&self, addr: &Address) -> Result<TcpStream, Error> {
        connect::tcp(addr, &self.opts, connect::deadline(&self.opts)).await
    }

    async fn check_alive(&self, _: &Address, conn: &mut TcpStream) -> Result<bool, Error> {
        Ok(probe(conn).is_alive(self.opts.unread_data))
    }

    fn is_transient(&self, error: &Error) -> bool {
        error.is_transient()
    }
}

pub(crate) fn probe(conn: &TcpStream) -> Probe {
    peek_nonblocking(&SockRef::from(conn))
}
