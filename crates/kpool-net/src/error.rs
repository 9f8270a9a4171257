//! The crate's error type.
//!
//! Policy: one [`Error`] for every manager, saying which [`Step`] of opening
//! a connection failed (resolve, connect, TLS handshake) and to what target,
//! or that the step ran out of time. `Display` is lowercase and only about
//! that level ("failed to connect to 127.0.0.1:5432"); the cause — the
//! [`io::Error`] or the [`rustls::Error`](https://docs.rs/rustls) — is behind
//! [`std::error::Error::source`].

use std::fmt;
use std::io;
use std::time::Duration;

/// The step of opening a connection that failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Step {
    /// Resolving a host name to socket addresses.
    Resolve,
    /// Connecting the socket (TCP or Unix).
    Connect,
    /// The TLS handshake, including checking the server's certificate.
    TlsHandshake,
}

impl Step {
    fn failed(self) -> &'static str {
        match self {
            Step::Resolve => "failed to resolve",
            Step::Connect => "failed to connect to",
            Step::TlsHandshake => "failed to complete the TLS handshake with",
        }
    }

    fn doing(self) -> &'static str {
        match self {
            Step::Resolve => "resolving",
            Step::Connect => "connecting to",
            Step::TlsHandshake => "completing the TLS handshake with",
        }
    }
}

type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Opening a pooled connection failed.
///
/// Ask what happened with [`step`](Error::step), [`is_timeout`](Error::is_timeout)
/// and [`is_transient`](Error::is_transient); get the cause with
/// [`io_error`](Error::io_error), `tls_error` (feature `tls`) or
/// [`source`](std::error::Error::source).
pub struct Error {
    step: Step,
    target: String,
    timed_out: Option<Duration>,
    cause: Option<Cause>,
}

impl Error {
    /// `step` on `target` failed with `err`. An `io::Error` that wraps a
    /// rustls error is unwrapped, so that `source()` is the rustls error.
    pub(crate) fn new(step: Step, target: impl fmt::Display, err: io::Error) -> Self {
        let cause: Cause = if err.get_ref().is_some_and(is_tls_error) {
            err.into_inner().expect("checked above")
        } else {
            Box::new(err)
        };
        Self { step, target: target.to_string(), timed_out: None, cause: Some(cause) }
    }

    /// `step` on `target` did not finish within `after`.
    pub(crate) fn timeout(step: Step, target: impl fmt::Display, after: Duration) -> Self {
        Self { step, target: target.to_string(), timed_out: Some(after), cause: None }
    }

    /// The step that failed.
    pub fn step(&self) -> Step {
        self.step
    }

    /// What the step was about: `host:port`, a socket address or a path.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The step ran out of the manager's `connect_timeout`.
    pub fn is_timeout(&self) -> bool {
        self.timed_out.is_some()
    }

    /// The host name could not be resolved.
    pub fn is_resolve(&self) -> bool {
        self.step == Step::Resolve && !self.is_timeout()
    }

    /// The socket could not connect (refused, unreachable, no such path ...).
    pub fn is_connect(&self) -> bool {
        self.step == Step::Connect && !self.is_timeout()
    }

    /// The TLS handshake failed (bad certificate, protocol error, the peer
    /// hung up during the handshake ...).
    pub fn is_tls(&self) -> bool {
        self.step == Step::TlsHandshake && !self.is_timeout()
    }

    /// The I/O error behind this one, if the cause is an I/O error.
    pub fn io_error(&self) -> Option<&io::Error> {
        self.cause.as_ref()?.downcast_ref()
    }

    /// The rustls error behind a failed handshake (a certificate the client
    /// does not trust, a protocol error ...).
    #[cfg(feature = "tls")]
    pub fn tls_error(&self) -> Option<&rustls::Error> {
        self.cause.as_ref()?.downcast_ref()
    }

    /// Whether trying again may succeed: a refused, reset or timed-out
    /// connection (a server restarting, a full backlog, a missing Unix socket
    /// file that a starting server has not made yet) is transient; a name
    /// that does not resolve, a certificate the client does not trust or an
    /// invalid server name is not. The managers' `is_transient` uses this,
    /// so the pool returns permanent errors at once instead of retrying.
    pub fn is_transient(&self) -> bool {
        if self.is_timeout() {
            return true;
        }
        match self.step {
            Step::Resolve => false,
            Step::Connect | Step::TlsHandshake => self.io_error().is_some_and(|e| transient_kind(e.kind())),
        }
    }
}

fn transient_kind(kind: io::ErrorKind) -> bool {
    use io::ErrorKind::*;
    matches!(
        kind,
        ConnectionRefused
            | ConnectionReset
            | ConnectionAborted
            | NotConnected
            | BrokenPipe
            | UnexpectedEof
            | TimedOut
            | Interrupted
            | WouldBlock
            | HostUnreachable
            | NetworkUnreachable
            | NetworkDown
            | AddrNotAvailable
            | NotFound
    )
}

#[cfg(feature = "tls")]
fn is_tls_error(err: &(dyn std::error::Error + Send + Sync + 'static)) -> bool {
    err.is::<rustls::Error>()
}

#[cfg(not(feature = "tls"))]
fn is_tls_error(_: &(dyn std::error::Error + Send + Sync + 'static)) -> bool {
    false
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.timed_out {
            Some(after) => write!(f, "timed out after {after:?} {} {}", self.step.doing(), self.target),
            None => write!(f, "{} {}", self.step.failed(), self.target),
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("step", &self.step).field("target", &self.target);
        if let Some(after) = self.timed_out {
            d.field("timed_out", &after);
        }
        if let Some(cause) = &self.cause {
            d.field("cause", cause);
        }
        d.finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause.as_ref().map(|c| &**c as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    fn io(kind: io::ErrorKind) -> io::Error {
        io::Error::new(kind, "cause")
    }

    #[test]
    fn display_names_the_step_and_the_target() {
        let cases = [
            (Error::new(Step::Resolve, "db:5432", io(io::ErrorKind::Other)), "failed to resolve db:5432"),
            (Error::new(Step::Connect, "db:5432", io(io::ErrorKind::Other)), "failed to connect to db:5432"),
            (
                Error::new(Step::TlsHandshake, "db:5432", io(io::ErrorKind::Other)),
                "failed to complete the TLS handshake with db:5432",
            ),
            (Error::timeout(Step::Resolve, "db:1", Duration::from_secs(2)), "timed out after 2s resolving db:1"),
            (
                Error::timeout(Step::Connect, "/tmp/s", Duration::from_millis(5)),
                "timed out after 5ms connecting to /tmp/s",
            ),
        ];
        for (err, text) in cases {
            assert_eq!(err.to_string(), text);
        }
    }

    #[test]
    fn the_cause_is_the_source() {
        let err = Error::new(Step::Connect, "x:1", io(io::ErrorKind::ConnectionRefused));
        let source = err.source().unwrap().downcast_ref::<io::Error>().unwrap();
        assert_eq!(source.kind(), io::ErrorKind::ConnectionRefused);
        assert_eq!(err.io_error().unwrap().kind(), io::ErrorKind::ConnectionRefused);
        assert!(Error::timeout(Step::Connect, "x:1", Duration::ZERO).source().is_none());
    }

    #[test]
    fn transient_or_not() {
        use io::ErrorKind::*;
        for kind in [ConnectionRefused, ConnectionReset, TimedOut, NotFound, UnexpectedEof] {
            assert!(Error::new(Step::Connect, "x", io(kind)).is_transient(), "{kind:?}");
        }
        for kind in [PermissionDenied, InvalidInput, Other] {
            assert!(!Error::new(Step::Connect, "x", io(kind)).is_transient(), "{kind:?}");
        }
        assert!(!Error::new(Step::Resolve, "x", io(ConnectionRefused)).is_transient(), "resolve errors are final");
        assert!(Error::timeout(Step::Resolve, "x", Duration::ZERO).is_transient(), "timeouts may pass");
        assert!(Error::new(Step::TlsHandshake, "x", io(ConnectionReset)).is_transient());
    }

    #[cfg(feature = "tls")]
    #[test]
    fn a_wrapped_rustls_error_is_unwrapped() {
        let tls = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let err = Error::new(Step::TlsHandshake, "x:443", io::Error::new(io::ErrorKind::InvalidData, tls.clone()));
        assert_eq!(err.tls_error(), Some(&tls));
        assert!(err.source().unwrap().is::<rustls::Error>());
        assert!(err.io_error().is_none());
        assert!(err.is_tls() && !err.is_transient());
    }
}
