//! What one benchmark operation does on a connection, and the adapter that
//! spreads load over several pool endpoints.

use std::future::Future;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::Fail;
use crate::probe::explain;
use crate::target::redact;

/// The bytes an echo operation sends.
const PING: &[u8; 16] = b"kpool-bench-ping";

/// An async manager plus the operation a benchmark runs on its connections.
pub(crate) trait Workload: kpool::Manager<Error: std::error::Error> {
    /// One operation (a round trip); its error in words.
    fn run_op(&self, conn: &mut Self::Connection) -> impl Future<Output = Result<(), String>> + Send;
}

/// A blocking manager plus the operation a benchmark runs on its connections.
pub(crate) trait BlockingWorkload: kpool::blocking::Manager<Error: std::error::Error> {
    /// One operation (a round trip); its error in words.
    fn run_op(&self, conn: &mut Self::Connection) -> Result<(), String>;
}

fn check_echo(result: std::io::Result<()>, back: &[u8]) -> Result<(), String> {
    use std::io::ErrorKind::{BrokenPipe, ConnectionReset, UnexpectedEof};
    match result {
        Err(e) if matches!(e.kind(), UnexpectedEof | ConnectionReset | BrokenPipe) => {
            Err("echo: the server closed the connection".into())
        }
        Err(e) => Err(format!("echo: {e}")),
        Ok(()) if back != PING => Err("echo: the server answered something else".into()),
        Ok(()) => Ok(()),
    }
}

/// Sends [`PING`] and reads it back.
async fn echo<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S) -> Result<(), String> {
    let mut back = [0u8; PING.len()];
    let result = async {
        s.write_all(PING).await?;
        s.flush().await?;
        s.read_exact(&mut back).await.map(drop)
    }
    .await;
    check_echo(result, &back)
}

/// Sends [`PING`] and reads it back, on a blocking stream.
fn echo_blocking<S: Read + Write>(s: &mut S) -> Result<(), String> {
    let mut back = [0u8; PING.len()];
    let result = s.write_all(PING).and_then(|()| s.flush()).and_then(|()| s.read_exact(&mut back));
    check_echo(result, &back)
}

macro_rules! echo_workloads {
    (async: $($m:ty),*; blocking: $($b:ty),*) => {
        $(impl Workload for $m {
            fn run_op(&self, conn: &mut Self::Connection) -> impl Future<Output = Result<(), String>> + Send {
                echo(conn)
            }
        })*
        $(impl BlockingWorkload for $b {
            fn run_op(&self, conn: &mut Self::Connection) -> Result<(), String> {
                echo_blocking(conn)
            }
        })*
    };
}

echo_workloads!(
    async: kpool_net::TcpManager, kpool_net::UnixManager, kpool_net::TlsManager;
    blocking: kpool_net::blocking::TcpManager, kpool_net::blocking::UnixManager, kpool_net::blocking::TlsManager
);

type PgError = kpool_postgres::tokio_postgres::Error;

impl<T> Workload for kpool_postgres::Manager<(), T>
where
    Self: kpool::Manager<Connection = kpool_postgres::Connection, Error = PgError>,
{
    async fn run_op(&self, conn: &mut kpool_postgres::Connection) -> Result<(), String> {
        conn.client().simple_query("SELECT 1").await.map(drop).map_err(|e| format!("SELECT 1: {}", explain(&e)))
    }
}

impl<T> BlockingWorkload for kpool_postgres::blocking::Manager<(), T>
where
    Self: kpool::blocking::Manager<Connection = kpool_postgres::postgres::Client, Error = PgError>,
{
    fn run_op(&self, conn: &mut kpool_postgres::postgres::Client) -> Result<(), String> {
        conn.simple_query("SELECT 1").map(drop).map_err(|e| format!("SELECT 1: {}", explain(&e)))
    }
}

impl Workload for kpool_redis::Manager {
    async fn run_op(&self, conn: &mut kpool_redis::Connection) -> Result<(), String> {
        let pong: String =
            kpool_redis::redis::cmd("PING").query_async(conn).await.map_err(|e| format!("PING: {}", explain(&e)))?;
        check_pong(&pong)
    }
}

impl BlockingWorkload for kpool_redis::blocking::Manager {
    fn run_op(&self, conn: &mut kpool_redis::redis::Connection) -> Result<(), String> {
        let pong: String = kpool_redis::redis::cmd("PING").query(conn).map_err(|e| format!("PING: {}", explain(&e)))?;
        check_pong(&pong)
    }
}

fn check_pong(answer: &str) -> Result<(), String> {
    if answer == "PONG" { Ok(()) } else { Err(format!("PING: the server answered '{answer}'")) }
}

/// A PostgreSQL manager without TLS, or with it (`sslmode=require`).
pub(crate) enum Postgres<P, T> {
    Plain(P),
    Tls(T),
}

type Rustls = kpool_postgres::tls::MakeRustlsConnect;

/// Reads a PostgreSQL URL: `sslmode=require` connects over TLS (rustls),
/// trusting the PEM file of `sslrootcert=` (libpq's name, taken out of the
/// URL before the driver reads it), else the system's bundle.
fn postgres_config(url: &str) -> Result<(kpool_postgres::tokio_postgres::Config, Option<Rustls>), Fail> {
    let bad = |e: &dyn std::fmt::Display| Fail::Usage(format!("bad URL '{}': {e}", redact(url)));
    let mut parsed = url::Url::parse(url).map_err(|e| bad(&e))?;
    let pairs: Vec<(String, String)> = parsed.query_pairs().into_owned().collect();
    let root_cert = pairs.iter().find(|(k, _)| k == "sslrootcert").map(|(_, v)| PathBuf::from(v));
    let require = pairs.iter().any(|(k, v)| k == "sslmode" && v == "require");
    if root_cert.is_some() {
        let kept: Vec<_> = pairs.iter().filter(|(k, _)| k != "sslrootcert").collect();
        if kept.is_empty() {
            parsed.set_query(None);
        } else {
            parsed.query_pairs_mut().clear().extend_pairs(kept);
        }
    }
    let config = parsed.as_str().parse().map_err(|e| bad(&e))?;
    let tls = if require {
        let path = root_cert.unwrap_or_else(|| PathBuf::from(SYSTEM_CA_BUNDLE));
        let pem = std::fs::read(&path)
            .map_err(|e| Fail::Usage(format!("cannot read certificates from {}: {e}", path.display())))?;
        let roots = kpool_postgres::tls::roots_from_pem(&pem)
            .map_err(|e| Fail::Usage(format!("cannot use the certificates in {}: {e}", path.display())))?;
        Some(kpool_postgres::tls::connector(roots))
    } else {
        None
    };
    Ok((config, tls))
}

/// The async PostgreSQL manager for `url`.
pub(crate) fn postgres(
    url: &str,
) -> Result<Postgres<kpool_postgres::Manager, kpool_postgres::Manager<(), Rustls>>, Fail> {
    let (config, tls) = postgres_config(url)?;
    let plain = kpool_postgres::Manager::new(config);
    Ok(match tls {
        Some(tls) => Postgres::Tls(plain.tls(tls)),
        None => Postgres::Plain(plain),
    })
}

/// The blocking PostgreSQL manager for `url`, with a connect timeout unless the URL sets one.
pub(crate) fn postgres_blocking(
    url: &str,
    timeout: Duration,
) -> Result<Postgres<kpool_postgres::blocking::Manager, kpool_postgres::blocking::Manager<(), Rustls>>, Fail> {
    let (mut config, tls) = postgres_config(url)?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(timeout);
    }
    let plain = kpool_postgres::blocking::Manager::new(config);
    Ok(match tls {
        Some(tls) => Postgres::Tls(plain.tls(tls)),
        None => Postgres::Plain(plain),
    })
}

/// The async Redis manager for `url`.
pub(crate) fn redis(url: &str) -> Result<kpool_redis::Manager, Fail> {
    kpool_redis::Manager::from_url(url).map_err(|e| Fail::Usage(format!("bad URL '{}': {e}", redact(url))))
}

/// The blocking Redis manager for `url`.
pub(crate) fn redis_blocking(url: &str) -> Result<kpool_redis::blocking::Manager, Fail> {
    kpool_redis::blocking::Manager::from_url(url).map_err(|e| Fail::Usage(format!("bad URL '{}': {e}", redact(url))))
}

/// The system's bundle of trusted certificate authorities (Debian's path).
const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// A rustls client configuration trusting the certificates in `ca` (PEM),
/// else the system's bundle, else nothing (every handshake then fails with
/// an unknown issuer, which is reported as such).
pub(crate) fn tls_config(ca: Option<&Path>) -> Result<Arc<kpool_net::rustls::ClientConfig>, Fail> {
    use kpool_net::rustls::pki_types::CertificateDer;
    use kpool_net::rustls::pki_types::pem::PemObject;

    let mut roots = kpool_net::rustls::RootCertStore::empty();
    let path = match ca {
        Some(p) => Some(p),
        None => Some(Path::new(SYSTEM_CA_BUNDLE)).filter(|p| p.exists()),
    };
    if let Some(path) = path {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| Fail::Usage(format!("cannot read certificates from {}: {e}", path.display())))?;
        let (added, _ignored) = roots.add_parsable_certificates(certs);
        if added == 0 && ca.is_some() {
            return Err(Fail::Usage(format!("no usable certificate in {}", path.display())));
        }
    }
    Ok(kpool_net::tls::client_config(roots))
}

/// Runs `M` under keys `(shard, endpoint)`, so a keyed pool can hold several
/// endpoints (each with its own `max_size`) that reach the same server.
pub(crate) struct Sharded<M>(pub(crate) M);

/// A pool endpoint of [`Sharded`]: the shard number and the inner endpoint.
pub(crate) type ShardKey<E> = (u16, E);

impl<M: kpool::Manager> kpool::Manager for Sharded<M> {
    type Endpoint = ShardKey<M::Endpoint>;
    type Connection = M::Connection;
    type Error = M::Error;

    fn create(&self, key: &Self::Endpoint) -> impl Future<Output = Result<M::Connection, M::Error>> + Send {
        self.0.create(&key.1)
    }

    fn dispose(&self, key: &Self::Endpoint, conn: M::Connection) -> impl Future<Output = Result<(), M::Error>> + Send {
        self.0.dispose(&key.1, conn)
    }

    fn check_alive(
        &self,
        key: &Self::Endpoint,
        conn: &mut M::Connection,
    ) -> impl Future<Output = Result<bool, M::Error>> + Send {
        self.0.check_alive(&key.1, conn)
    }

    fn is_broken(&self, key: &Self::Endpoint, conn: &M::Connection) -> bool {
        self.0.is_broken(&key.1, conn)
    }

    fn on_acquire(
        &self,
        key: &Self::Endpoint,
        conn: &mut M::Connection,
    ) -> impl Future<Output = Result<(), M::Error>> + Send {
        self.0.on_acquire(&key.1, conn)
    }

    fn on_release(
        &self,
        key: &Self::Endpoint,
        conn: &mut M::Connection,
    ) -> impl Future<Output = Result<(), M::Error>> + Send {
        self.0.on_release(&key.1, conn)
    }

    fn on_dead(&self, key: &Self::Endpoint, conn: &mut M::Connection) {
        self.0.on_dead(&key.1, conn);
    }

    fn is_transient(&self, error: &M::Error) -> bool {
        self.0.is_transient(error)
    }
}

impl<M: kpool::blocking::Manager> kpool::blocking::Manager for Sharded<M> {
    type Endpoint = ShardKey<M::Endpoint>;
    type Connection = M::Connection;
    type Error = M::Error;

    fn create(&self, key: &Self::Endpoint) -> Result<M::Connection, M::Error> {
        self.0.create(&key.1)
    }

    fn dispose(&self, key: &Self::Endpoint, conn: M::Connection) -> Result<(), M::Error> {
        self.0.dispose(&key.1, conn)
    }

    fn check_alive(&self, key: &Self::Endpoint, conn: &mut M::Connection) -> Result<bool, M::Error> {
        self.0.check_alive(&key.1, conn)
    }

    fn is_broken(&self, key: &Self::Endpoint, conn: &M::Connection) -> bool {
        self.0.is_broken(&key.1, conn)
    }

    fn on_acquire(&self, key: &Self::Endpoint, conn: &mut M::Connection) -> Result<(), M::Error> {
        self.0.on_acquire(&key.1, conn)
    }

    fn on_release(&self, key: &Self::Endpoint, conn: &mut M::Connection) -> Result<(), M::Error> {
        self.0.on_release(&key.1, conn)
    }

    fn on_dead(&self, key: &Self::Endpoint, conn: &mut M::Connection) {
        self.0.on_dead(&key.1, conn);
    }

    fn is_transient(&self, error: &M::Error) -> bool {
        self.0.is_transient(error)
    }
}
