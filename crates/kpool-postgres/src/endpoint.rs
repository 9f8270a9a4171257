//! Endpoint keys: how one pool reaches several databases or hosts.

use tokio_postgres::Config;
use tokio_postgres::config::Host;

/// How a pool's endpoint key turns the manager's base [`Config`] into the
/// configuration of one connection.
///
/// Implemented for:
/// - `()`: the base configuration as it is (a single-endpoint pool);
/// - `String` and `&'static str`: a database name on the base host;
/// - [`Target`]: any of host, port, database and user overridden.
///
/// A `&'static str` key is handy, but an acquire future for it cannot be
/// spawned (`tokio::spawn`): the compiler cannot prove it `Send` for every
/// lifetime ("implementation of `Endpoint` is not general enough"). Use
/// `String` keys in code that spawns.
///
/// Implement it for your own key (a tenant id, a shard number) to map it to a
/// database or host; the pool keeps separate limits per key.
pub trait Endpoint: kpool::Endpoint {
    /// The configuration for connections to this endpoint, derived from `base`.
    fn config(&self, base: &Config) -> Config;
}

impl Endpoint for () {
    fn config(&self, base: &Config) -> Config {
        base.clone()
    }
}

impl Endpoint for String {
    fn config(&self, base: &Config) -> Config {
        let mut config = base.clone();
        config.dbname(self.as_str());
        config
    }
}

impl Endpoint for &'static str {
    fn config(&self, base: &Config) -> Config {
        let mut config = base.clone();
        config.dbname(*self);
        config
    }
}

/// An endpoint that overrides some of the base configuration: the fields
/// left `None` come from the manager's base [`Config`].
///
/// ```
/// use kpool_postgres::{Endpoint, Target};
///
/// let base: kpool_postgres::tokio_postgres::Config = "postgres://root@127.0.0.1:5432/test".parse().unwrap();
/// let replica = Target::db("reports").with_host("127.0.0.2", 5433);
/// let config = replica.config(&base);
/// assert_eq!(config.get_dbname(), Some("reports"));
/// assert_eq!(config.get_ports(), &[5433]);
/// assert_eq!(config.get_user(), Some("root"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Target {
    /// Host name, IP address or Unix socket directory (replaces every base host).
    pub host: Option<String>,
    /// Port (replaces every base port).
    pub port: Option<u16>,
    /// Database name.
    pub dbname: Option<String>,
    /// User name.
    pub user: Option<String>,
}

impl Target {
    /// A target that changes only the database.
    pub fn db(dbname: impl Into<String>) -> Self {
        Self { dbname: Some(dbname.into()), ..Self::default() }
    }

    /// A target that changes only the host and port.
    pub fn host(host: impl Into<String>, port: u16) -> Self {
        Self { host: Some(host.into()), port: Some(port), ..Self::default() }
    }

    /// Also changes the host and port.
    #[must_use]
    pub fn with_host(mut self, host: impl Into<String>, port: u16) -> Self {
        self.host = Some(host.into());
        self.port = Some(port);
        self
    }

    /// Also changes the database.
    #[must_use]
    pub fn with_db(mut self, dbname: impl Into<String>) -> Self {
        self.dbname = Some(dbname.into());
        self
    }

    /// Also changes the user.
    #[must_use]
    pub fn with_user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }
}

impl Endpoint for Target {
    fn config(&self, base: &Config) -> Config {
        let mut config = if self.host.is_some() || self.port.is_some() {
            let hosts: Vec<Host> = match &self.host {
                Some(h) => vec![Host::Tcp(h.clone())],
                None => base.get_hosts().to_vec(),
            };
            let ports = match self.port {
                Some(p) => vec![p],
                None => base.get_ports().to_vec(),
            };
            rehost(base, &hosts, &ports, self.host.is_none())
        } else {
            base.clone()
        };
        if let Some(db) = &self.dbname {
            config.dbname(db.as_str());
        }
        if let Some(user) = &self.user {
            config.user(user.as_str());
        }
        config
    }
}

/// A copy of `base` with other hosts and ports. `tokio_postgres::Config`
/// only appends hosts, so every other setting is copied over by hand.
fn rehost(base: &Config, hosts: &[Host], ports: &[u16], keep_hostaddrs: bool) -> Config {
    let mut c = Config::new();
    if let Some(v) = base.get_user() {
        c.user(v);
    }
    if let Some(v) = base.get_password() {
        c.password(v);
    }
    if let Some(v) = base.get_dbname() {
        c.dbname(v);
    }
    if let Some(v) = base.get_options() {
        c.options(v);
    }
    if let Some(v) = base.get_application_name() {
        c.application_name(v);
    }
    if let Some(v) = base.get_connect_timeout() {
        c.connect_timeout(*v);
    }
    if let Some(v) = base.get_tcp_user_timeout() {
        c.tcp_user_timeout(*v);
    }
    if let Some(v) = base.get_keepalives_interval() {
        c.keepalives_interval(v);
    }
    if let Some(v) = base.get_keepalives_retries() {
        c.keepalives_retries(v);
    }
    c.ssl_mode(base.get_ssl_mode())
        .ssl_negotiation(base.get_ssl_negotiation())
        .keepalives(base.get_keepalives())
        .keepalives_idle(base.get_keepalives_idle())
        .target_session_attrs(base.get_target_session_attrs())
        .channel_binding(base.get_channel_binding())
        .load_balance_hosts(base.get_load_balance_hosts());
    for host in hosts {
        match host {
            Host::Tcp(h) => c.host(h.as_str()),
            #[cfg(unix)]
            Host::Unix(p) => c.host_path(p),
        };
    }
    if keep_hostaddrs {
        for addr in base.get_hostaddrs() {
            c.hostaddr(*addr);
        }
    }
    for port in ports {
        c.port(*port);
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Config {
        let mut c: Config =
            "postgres://root:pw@127.0.0.1:5432/test?application_name=app&connect_timeout=3".parse().unwrap();
        c.keepalives(false);
        c
    }

    #[test]
    fn unit_and_names() {
        assert_eq!(().config(&base()), base());
        assert_eq!("postgres".config(&base()).get_dbname(), Some("postgres"));
        assert_eq!(String::from("x").config(&base()).get_dbname(), Some("x"));
    }

    #[test]
    fn target_rehost_keeps_the_rest() {
        let c = Target::host("db.example", 6000).with_user("bob").config(&base());
        assert_eq!(c.get_hosts(), &[Host::Tcp("db.example".into())]);
        assert_eq!(c.get_ports(), &[6000]);
        assert_eq!(c.get_user(), Some("bob"));
        assert_eq!(c.get_password(), Some(&b"pw"[..]));
        assert_eq!(c.get_dbname(), Some("test"));
        assert_eq!(c.get_application_name(), Some("app"));
        assert_eq!(c.get_connect_timeout(), Some(&std::time::Duration::from_secs(3)));
        assert!(!c.get_keepalives());
    }

    #[test]
    fn target_port_only_keeps_hosts() {
        let c = Target { port: Some(7), ..Target::default() }.config(&base());
        assert_eq!(c.get_hosts(), &[Host::Tcp("127.0.0.1".into())]);
        assert_eq!(c.get_ports(), &[7]);
    }
}
