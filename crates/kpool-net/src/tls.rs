//! TLS over TCP with rustls: the client configuration helper and the tokio
//! TLS manager (the blocking one is [`blocking::TlsManager`](crate::blocking::TlsManager)).

use std::io;
use std::sync::Arc;

use rustls::ClientConfig;
use rustls::pki_types::ServerName;

use crate::Address;
use crate::error::{Error, Step};

/// A client configuration that trusts `roots`, with rustls' `ring` crypto
/// provider, the safe default protocol versions and no client certificate.
///
/// The provider is set explicitly, so this works whatever other crates in the
/// build enable in rustls. For a client certificate, ALPN or anything else,
/// build your own [`ClientConfig`] and pass it to the manager.
///
/// ```
/// let mut roots = kpool_net::rustls::RootCertStore::empty();
/// # let _ = &mut roots;
/// // roots.add(my_ca_certificate_der)?;
/// let config = kpool_net::tls::client_config(roots);
/// assert!(config.alpn_protocols.is_empty());
/// ```
pub fn client_config(roots: rustls::RootCertStore) -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// The name the server's certificate must match: the override, or the
/// address's host name or IP address.
pub(crate) fn server_name(addr: &Address, fixed: Option<&ServerName<'static>>) -> Result<ServerName<'static>, Error> {
    if let Some(name) = fixed {
        return Ok(name.clone());
    }
    match addr {
        Address::Socket(sa) => Ok(ServerName::IpAddress(sa.ip().into())),
        Address::Host { host, .. } => ServerName::try_from(host.clone())
            .map_err(|e| Error::new(Step::TlsHandshake, addr, io::Error::new(io::ErrorKind::InvalidInput, e))),
    }
}

#[cfg(feature = "tokio")]
pub use self::tokio_tls::{TlsManager, TlsStream};

#[cfg(feature = "tokio")]
mod tokio_tls {
    use std::sync::Arc;

    use rustls::ClientConfig;
    use rustls::pki_types::ServerName;
    use socket2::SockRef;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpStream;
    use tokio_rustls::TlsConnector;

    use crate::error::{Error, Step};
    use crate::probe::{RawReader, probe_tls};
    use crate::{Address, Options, connect};

    /// The connection of the tokio [`TlsManager`].
    pub type TlsStream = tokio_rustls::client::TlsStream<TcpStream>;

    /// Pools TLS connections over tokio TCP ([`TlsStream`]), keyed by
    /// [`Address`].
    ///
    /// - `create` connects as [`TcpManager`](crate::TcpManager) does, then
    ///   runs the TLS handshake; the [`connect_timeout`](TlsManager::connect_timeout)
    ///   covers both, so a peer that accepts but never answers the handshake
    ///   fails the create with a timeout instead of hanging it.
    /// - The certificate must match the address's host name (or IP address),
    ///   unless [`server_name`](TlsManager::server_name) fixes another name.
    /// - `check_alive` looks at the TCP socket without blocking, as
    ///   [`TcpManager`](crate::TcpManager) does, and feeds any pending TLS
    ///   records (such as TLS 1.3 session tickets) to rustls: a `close_notify`
    ///   or a closed socket is dead; application data is judged by
    ///   [`unread_data`](TlsManager::unread_data).
    /// - `dispose` sends `close_notify` (best effort).
    /// - `is_transient` is [`Error::is_transient`]: a certificate the client
    ///   does not trust is returned at once.
    ///
    /// The `tls_echo` example runs a full round trip against a rustls server
    /// with a certificate generated on the spot.
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

        /// The name every server's certificate must match, whatever the
        /// address; `None` uses the address's host name or IP address.
        /// Defaults to `None`.
        #[must_use]
        pub fn server_name(mut self, name: Option<ServerName<'static>>) -> Self {
            self.server_name = name;
            self
        }

        crate::options::option_setters!(tcp);
    }

    impl kpool::Manager for TlsManager {
        type Endpoint = Address;
        type Connection = TlsStream;
        type Error = Error;

        async fn create(&self, addr: &Address) -> Result<TlsStream, Error> {
            let name = crate::tls::server_name(addr, self.server_name.as_ref())?;
            let deadline = connect::deadline(&self.opts);
            let tcp = connect::tcp(addr, &self.opts, deadline).await?;
            connect::until(deadline, Step::TlsHandshake, addr, async {
                TlsConnector::from(Arc::clone(&self.config))
                    .connect(name, tcp)
                    .await
                    .map_err(|e| Error::new(Step::TlsHandshake, addr, e))
            })
            .await
        }

        async fn check_alive(&self, _: &Address, conn: &mut TlsStream) -> Result<bool, Error> {
            let (tcp, session) = conn.get_mut();
            let sock = SockRef::from(&*tcp);
            Ok(probe_tls(session, RawReader(&sock)).is_alive(self.opts.unread_data))
        }

        async fn dispose(&self, _: &Address, mut conn: TlsStream) -> Result<(), Error> {
            // Best effort: the peer may be gone already, and the socket
            // closes when `conn` drops either way.
            let _ = conn.shutdown().await;
            Ok(())
        }

        fn is_transient(&self, error: &Error) -> bool {
            error.is_transient()
        }
    }
}
