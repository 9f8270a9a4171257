//! The endpoint of the TCP and TLS managers.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::str::FromStr;

use crate::error::{Error, Step};

/// Where a TCP or TLS connection goes: a socket address, or a host name and a
/// port resolved each time a connection is created (so a changed DNS record
/// is picked up by new connections).
///
/// `From` conversions accept a [`SocketAddr`], `(IpAddr, u16)`,
/// `(&str, u16)` and `(String, u16)` (a host that is an IP literal becomes
/// [`Address::Socket`]); [`FromStr`] parses `host:port`, `1.2.3.4:80` and
/// `[::1]:80`.
///
/// ```
/// use kpool_net::Address;
///
/// let a: Address = "localhost:8080".parse().unwrap();
/// assert_eq!(a, Address::host("localhost", 8080));
/// let b = Address::from(("127.0.0.1", 80));
/// assert_eq!(b, Address::Socket("127.0.0.1:80".parse().unwrap()));
/// assert_eq!(b.to_string(), "127.0.0.1:80");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Address {
    /// A resolved socket address.
    Socket(SocketAddr),
    /// A host name and a port, resolved when a connection is created.
    Host {
        /// The host name (the TLS managers also use it as the server name).
        host: String,
        /// The port.
        port: u16,
    },
}

impl Address {
    /// A host name and a port; an IP literal becomes [`Address::Socket`].
    pub fn host(host: impl Into<String>, port: u16) -> Self {
        let host = host.into();
        let literal = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(&host);
        match literal.parse::<IpAddr>() {
            Ok(ip) => Address::Socket(SocketAddr::new(ip, port)),
            Err(_) => Address::Host { host, port },
        }
    }

    /// The port.
    pub fn port(&self) -> u16 {
        match self {
            Address::Socket(addr) => addr.port(),
            Address::Host { port, .. } => *port,
        }
    }

    /// The host part as text: the name, or the IP address.
    pub fn host_str(&self) -> String {
        match self {
            Address::Socket(addr) => addr.ip().to_string(),
            Address::Host { host, .. } => host.clone(),
        }
    }

    /// Resolves on the calling thread (blocking managers).
    pub(crate) fn resolve_blocking(&self) -> Result<Vec<SocketAddr>, Error> {
        match self {
            Address::Socket(addr) => Ok(vec![*addr]),
            Address::Host { host, port } => {
                let addrs = (host.as_str(), *port).to_socket_addrs().map_err(|e| Error::new(Step::Resolve, self, e))?;
                non_empty(self, addrs.collect())
            }
        }
    }

    /// Resolves on tokio's blocking pool (async managers).
    #[cfg(feature = "tokio")]
    pub(crate) async fn resolve(&self) -> Result<Vec<SocketAddr>, Error> {
        match self {
            Address::Socket(addr) => Ok(vec![*addr]),
            Address::Host { host, port } => {
                let addrs = tokio::net::lookup_host((host.as_str(), *port))
                    .await
                    .map_err(|e| Error::new(Step::Resolve, self, e))?;
                non_empty(self, addrs.collect())
            }
        }
    }
}

fn non_empty(addr: &Address, addrs: Vec<SocketAddr>) -> Result<Vec<SocketAddr>, Error> {
    if addrs.is_empty() {
        let err = io::Error::new(io::ErrorKind::NotFound, "the name resolved to no addresses");
        return Err(Error::new(Step::Resolve, addr, err));
    }
    Ok(addrs)
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Socket(addr) => addr.fmt(f),
            Address::Host { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

impl From<SocketAddr> for Address {
    fn from(addr: SocketAddr) -> Self {
        Address::Socket(addr)
    }
}

impl From<(IpAddr, u16)> for Address {
    fn from((ip, port): (IpAddr, u16)) -> Self {
        Address::Socket(SocketAddr::new(ip, port))
    }
}

impl From<(&str, u16)> for Address {
    fn from((host, port): (&str, u16)) -> Self {
        Address::host(host, port)
    }
}

impl From<(String, u16)> for Address {
    fn from((host, port): (String, u16)) -> Self {
        Address::host(host, port)
    }
}

/// The text given to [`Address::from_str`] is not `host:port`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddressParseError(String);

impl fmt::Display for AddressParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid address `{}`: expected host:port", self.0)
    }
}

impl std::error::Error for AddressParseError {}

impl FromStr for Address {
    type Err = AddressParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Ok(addr) = s.parse::<SocketAddr>() {
            return Ok(Address::Socket(addr));
        }
        let bad = || AddressParseError(s.to_owned());
        let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
        let port = port.parse::<u16>().map_err(|_| bad())?;
        if host.is_empty() || host.contains(':') || host.contains(char::is_whitespace) {
            return Err(bad());
        }
        Ok(Address::host(host, port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        assert_eq!("[::1]:80".parse::<Address>().unwrap(), Address::Socket("[::1]:80".parse().unwrap()));
        assert_eq!("db.example:5432".parse::<Address>().unwrap(), Address::host("db.example", 5432));
        assert_eq!(Address::host("[::1]", 8), Address::Socket("[::1]:8".parse().unwrap()));
        assert_eq!(Address::host("db", 1).to_string(), "db:1");
        assert_eq!(Address::host("db", 1).host_str(), "db");
        for bad in ["", "nohost", ":80", "host:", "host:99999", "a:b:c", "a b:1"] {
            assert!(bad.parse::<Address>().is_err(), "{bad} parsed");
        }
    }
}
