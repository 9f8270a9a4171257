//! What a URL names: which server, which manager, which operation.

use std::path::PathBuf;

use crate::Fail;

/// A server to load or probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// `tcp://host:port`: an echo server.
    Tcp { host: String, port: u16 },
    /// `unix:///path`: an echo server on a Unix socket.
    Unix(PathBuf),
    /// `tls://host:port[?ca=/path/ca.pem]`: an echo server behind TLS,
    /// trusting `ca`, else the system's certificate bundle.
    Tls { host: String, port: u16, ca: Option<PathBuf> },
    /// `postgres://…` or `postgresql://…`: `SELECT 1`.
    Postgres(String),
    /// `redis://…` or `rediss://…`: `PING`.
    Redis(String),
}

const SCHEMES: &str = "postgres://, redis://, tcp://host:port, tls://host:port or unix:///path";

impl Target {
    /// Parses a URL; every failure is bad input (exit code 2).
    pub(crate) fn parse(input: &str) -> Result<Target, Fail> {
        let bad = |why: &str| Fail::Usage(format!("bad URL '{input}': {why}"));
        let url = url::Url::parse(input).map_err(|e| match e {
            url::ParseError::RelativeUrlWithoutBase => bad(&format!("no scheme; expected {SCHEMES}")),
            e => bad(&e.to_string()),
        })?;
        match url.scheme() {
            scheme @ ("tcp" | "tls") => {
                let expected = format!("expected {scheme}://host:port");
                let host = match url.host() {
                    Some(url::Host::Domain(d)) if !d.is_empty() => d.to_owned(),
                    Some(url::Host::Ipv4(ip)) => ip.to_string(),
                    Some(url::Host::Ipv6(ip)) => ip.to_string(),
                    _ => return Err(bad(&format!("no host ({expected})"))),
                };
                let port = url.port().ok_or_else(|| bad(&format!("no port ({expected})")))?;
                if url.path().len() > 1 {
                    return Err(bad(&format!("a {scheme}:// URL has no path ({expected})")));
                }
                if scheme == "tcp" {
                    if url.query().is_some() {
                        return Err(bad("a tcp:// URL takes no parameters"));
                    }
                    return Ok(Target::Tcp { host, port });
                }
                let mut ca = None;
                for (key, value) in url.query_pairs() {
                    match &*key {
                        "ca" => ca = Some(PathBuf::from(&*value)),
                        other => {
                            return Err(bad(&format!("unknown parameter '{other}' (tls:// takes ca=/path/ca.pem)")));
                        }
                    }
                }
                Ok(Target::Tls { host, port, ca })
            }
            "unix" => {
                if url.host_str().is_some_and(|h| !h.is_empty()) {
                    return Err(bad("a unix:// URL has no host; use three slashes: unix:///path/to/socket"));
                }
                let path = url.to_file_path().map_err(|()| bad("no socket path (expected unix:///path)"))?;
                if path.as_os_str().len() <= 1 {
                    return Err(bad("no socket path (expected unix:///path)"));
                }
                Ok(Target::Unix(path))
            }
            "postgres" | "postgresql" => {
                if url.host_str().is_none_or(str::is_empty) {
                    return Err(bad("no host (expected postgres://user:password@host:port/database)"));
                }
                crate::work::postgres(input)?;
                Ok(Target::Postgres(input.to_owned()))
            }
            "redis" | "rediss" => {
                if url.host_str().is_none_or(str::is_empty) {
                    return Err(bad("no host (expected redis://host:port)"));
                }
                crate::work::redis(input)?;
                Ok(Target::Redis(input.to_owned()))
            }
            other => Err(Fail::Usage(format!("unknown scheme '{other}' in '{input}': use {SCHEMES}"))),
        }
    }

    /// The URL for display, without its password.
    pub(crate) fn display(&self) -> String {
        match self {
            Target::Tcp { host, port } if host.contains(':') => format!("tcp://[{host}]:{port}"),
            Target::Tcp { host, port } => format!("tcp://{host}:{port}"),
            Target::Tls { host, port, ca } => {
                let host = if host.contains(':') { format!("[{host}]") } else { host.clone() };
                match ca {
                    Some(ca) => format!("tls://{host}:{port}?ca={}", ca.display()),
                    None => format!("tls://{host}:{port}"),
                }
            }
            Target::Unix(path) => format!("unix://{}", path.display()),
            Target::Postgres(u) | Target::Redis(u) => redact(u),
        }
    }

    /// `host:port` for resolving, if the target has a host.
    pub(crate) fn host_port(&self) -> Option<(String, u16)> {
        match self {
            Target::Tcp { host, port } | Target::Tls { host, port, .. } => Some((host.clone(), *port)),
            Target::Unix(_) => None,
            Target::Postgres(u) | Target::Redis(u) => {
                let url = url::Url::parse(u).ok()?;
                let default = if matches!(self, Target::Postgres(_)) { 5432 } else { 6379 };
                let host = url.host_str()?.trim_start_matches('[').trim_end_matches(']').to_owned();
                Some((host, url.port().unwrap_or(default)))
            }
        }
    }
}

/// The URL with its password replaced by `***`.
pub(crate) fn redact(input: &str) -> String {
    match url::Url::parse(input) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("***"));
            url.to_string()
        }
        _ => input.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(input: &str) -> String {
        match Target::parse(input) {
            Err(Fail::Usage(msg)) => msg,
            other => panic!("{input}: expected a usage error, got {other:?}"),
        }
    }

    #[test]
    fn parses_each_scheme() {
        assert_eq!(
            Target::parse("tcp://127.0.0.1:7000").unwrap(),
            Target::Tcp { host: "127.0.0.1".into(), port: 7000 }
        );
        assert_eq!(Target::parse("tcp://[::1]:7000").unwrap(), Target::Tcp { host: "::1".into(), port: 7000 });
        assert_eq!(Target::parse("unix:///tmp/echo.sock").unwrap(), Target::Unix("/tmp/echo.sock".into()));
        assert!(matches!(Target::parse("postgres://root@127.0.0.1/test").unwrap(), Target::Postgres(_)));
        assert!(matches!(Target::parse("redis://127.0.0.1:6379").unwrap(), Target::Redis(_)));
        assert_eq!(
            Target::parse("tls://localhost:8443?ca=/tmp/ca.pem").unwrap(),
            Target::Tls { host: "localhost".into(), port: 8443, ca: Some("/tmp/ca.pem".into()) }
        );
    }

    #[test]
    fn rejects_bad_input_in_words() {
        assert!(usage("http://example.com").contains("unknown scheme 'http'"));
        assert!(usage("localhost").contains("no scheme"));
        assert!(usage("tcp://127.0.0.1").contains("no port"));
        assert!(usage("tcp://127.0.0.1:99999").contains("bad URL"));
        assert!(usage("unix://host/path").contains("three slashes"));
        assert!(usage("postgres:///db").contains("no host"));
        assert!(usage("tls://localhost").contains("no port (expected tls://host:port)"));
        assert!(usage("tls://localhost:443?cert=x").contains("unknown parameter 'cert'"));
    }

    #[test]
    fn display_hides_the_password() {
        let t = Target::parse("postgres://root:secret@127.0.0.1:5432/test").unwrap();
        assert_eq!(t.display(), "postgres://root:***@127.0.0.1:5432/test");
        assert_eq!(t.host_port(), Some(("127.0.0.1".into(), 5432)));
        assert_eq!(Target::parse("redis://localhost").unwrap().host_port(), Some(("localhost".into(), 6379)));
    }
}
