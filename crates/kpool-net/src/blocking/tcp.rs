use std::net::TcpStream;

use socket2::SockRef;

use crate::error::Error;
use crate::probe::peek_blocking;
use crate::{Address, Options, connect};

/// Pools [`std::net::TcpStream`]s, keyed by [`Address`]; the blocking twin
/// of [`crate::TcpManager`][tokio-twin].
///
/// ```
/// use std::io::{Read, Write};
/// use kpool::blocking::Pool;
/// use kpool_net::{Address, blocking::TcpManager};
///
/// let server = std::net::TcpListener::bind("127.0.0.1:0")?;
/// let addr = Address::from(server.local_addr()?);
/// let pool = Pool::builder(TcpManager::new()).endpoint(addr).build()?;
/// let mut conn = pool.get()?;
/// conn.write_all(b"ping")?;
/// let (mut accepted, _) = server.accept()?;
/// let mut buf = [0; 4];
/// accepted.read_exact(&mut buf)?;
/// assert_eq!(&buf, b"ping");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[cfg_attr(feature = "tokio", doc = "[tokio-twin]: crate::TcpManager")]
#[cfg_attr(
    not(feature = "tokio"),
    doc = "[tokio-twin]: https://docs.rs/kpool-net/latest/kpool_net/struct.TcpManager.html"
)]
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
    crate::options::option_setters!(io_timeout);
}

impl kpool::blocking::Manager for TcpManager {
    type Endpoint = Address;
    type Connection = TcpStream;
    type Error = Error;

    fn create(&self, addr: &Address) -> Result<TcpStream, Error> {
        connect::tcp_blocking(addr, &self.opts, connect::deadline(&self.opts))
    }

    fn check_alive(&self, _: &Address, conn: &mut TcpStream) -> Result<bool, Error> {
        Ok(peek_blocking(SockRef::from(&*conn)).is_alive(self.opts.unread_data))
    }

    fn is_transient(&self, error: &Error) -> bool {
        error.is_transient()
    }
}
