use std::io;
use std::net::TcpStream;
use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};
use socket2::SockRef;

use crate::error::{Error, Step};
use crate::probe::{probe_tls, with_nonblocking};
use crate::{Address, Options, connect};

/// The connection of the blocking [`TlsManager`].
pub type TlsStream = StreamOwned<ClientConnection, TcpStream>;

/// Pools TLS connections over std TCP ([`TlsStream`]), keyed by [`Address`];
/// the blocking twin of [`crate::TlsManager`][tokio-twin].
///
/// `create` connects, then completes the handshake at once (not on first
/// use), so certificate errors surface from the acquire; the socket's read
/// and write timeouts bound the handshake by what is left of the
/// [`connect_timeout`](TlsManager::connect_timeout), then are set to the
/// [`io_timeout`](TlsManager::io_timeout). `dispose` sends `close_notify`
/// without blocking (best effort).
///
#[cfg_attr(feature = "tokio", doc = "[tokio-twin]: crate::TlsManager")]
#[cfg_attr(
    not(feature = "tokio"),
    doc = "[tokio-twin]: https://docs.rs/kpool-net/latest/kpool_net/struct.TlsManager.html"
)]
#[derive(Clone, Debug)]
pub struct TlsManager {
    opts: Options,
    config: Arc<ClientConfig>,
    server_name: Option<ServerName<'static>>,
}

impl TlsManager {
    /// A manager that connects with `config` (see
    /// [`client_config`](crate::tls::client_config)) and the default
    /// [`Options`].
    pub fn new(config: Arc<ClientConfig>) -> Self {
        Self { opts: Options::default(), config, server_name: None }
    }

    /// The name every server's certificate must match, whatever the address;
    /// `None` uses the address's host name or IP address. Defaults to `None`.
    #[must_use]
    pub fn server_name(mut self, name: Option<ServerName<'static>>) -> Self {
        self.server_name = name;
        self
    }

    crate::options::option_setters!(tcp);
    crate::options::option_setters!(io_timeout);
}

impl kpool::blocking::Manager for TlsManager {
    type Endpoint = Address;
    type Connection = TlsStream;
    type Error = Error;

    fn create(&self, addr: &Address) -> Result<TlsStream, Error> {
        let name = crate::tls::server_name(addr, self.server_name.as_ref())?;
        let deadline = connect::deadline(&self.opts);
        let mut tcp = connect::tcp_blocking(addr, &self.opts, deadline)?;
        let failed = |e| Error::new(Step::TlsHandshake, addr, e);
        let mut conn = ClientConnection::new(Arc::clone(&self.config), name)
            .map_err(|e| failed(io::Error::new(io::ErrorKind::InvalidData, e)))?;
        while conn.is_handshaking() {
            let left = connect::left(deadline, Step::TlsHandshake, addr)?.or(self.opts.io_timeout);
            tcp.set_read_timeout(left).and_then(|()| tcp.set_write_timeout(left)).map_err(failed)?;
            match conn.complete_io(&mut tcp) {
                Ok(_) => {}
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    // The read or write timeout fired: the deadline is (about) up.
                    let total = deadline.map(|(_, total)| total).or(self.opts.io_timeout).unwrap_or_default();
                    return Err(Error::timeout(Step::TlsHandshake, addr, total));
                }
                Err(e) => return Err(failed(e)),
            }
        }
        tcp.set_read_timeout(self.opts.io_timeout)
            .and_then(|()| tcp.set_write_timeout(self.opts.io_timeout))
            .map_err(failed)?;
        Ok(StreamOwned::new(conn, tcp))
    }

    fn check_alive(&self, _: &Address, conn: &mut TlsStream) -> Result<bool, Error> {
        let sock = SockRef::from(&conn.sock);
        let session = &mut conn.conn;
        let probe = with_nonblocking(&sock, || probe_tls(session, &conn.sock));
        Ok(probe.is_alive(self.opts.unread_data))
    }

    fn dispose(&self, _: &Address, mut conn: TlsStream) -> Result<(), Error> {
        // Best effort and never blocking: the socket closes when `conn`
        // drops either way.
        conn.conn.send_close_notify();
        if conn.sock.set_nonblocking(true).is_ok() {
            while conn.conn.wants_write() {
                if !matches!(conn.conn.write_tls(&mut conn.sock), Ok(n) if n > 0) {
                    break;
                }
            }
        }
        Ok(())
    }

    fn is_transient(&self, error: &Error) -> bool {
        error.is_transient()
    }
}
