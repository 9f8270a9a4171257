//! The pool's error type.
//!
//! Policy (as in hyper): [`Error`] is opaque; ask it what happened with
//! [`Error::kind`], [`Error::is_timeout`] and [`Error::is_closed`]. Its
//! `Display` says only what the pool was doing ("timed out waiting for a
//! connection …"); the backend's own error is behind
//! [`std::error::Error::source`] and [`Error::backend`]. A timeout never hides
//! the real cause: it carries the last backend error seen during the acquire
//! and the pool's status at that moment.

use std::fmt;
use std::time::Duration;

use crate::Status;

/// Which step of an acquire failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Phase {
    /// Waiting in line for a connection or for room to create one.
    Wait,
    /// `Manager::create`.
    Create,
    /// `Manager::check_alive`.
    Check,
    /// `Manager::on_acquire`.
    OnAcquire,
    /// `Manager::on_release` (only from an explicit release).
    OnRelease,
}

impl Phase {
    fn doing(self) -> &'static str {
        match self {
            Phase::Wait => "waiting for a connection",
            Phase::Create => "creating a connection",
            Phase::Check => "checking a connection",
            Phase::OnAcquire => "running the on_acquire hook",
            Phase::OnRelease => "running the on_release hook",
        }
    }
}

/// What kind of failure an [`Error`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The deadline passed during this phase.
    Timeout(Phase),
    /// The manager returned an error in this phase.
    Backend(Phase),
    /// The manager panicked in this phase; the pool recovered.
    Panic(Phase),
    /// The pool is closed.
    Closed,
    /// `get()` was called on a pool built without a default endpoint.
    NoEndpoint,
    /// The settings contradict each other (from `build_warm`).
    Config,
}

/// An acquire (or explicit release) failed. `E` is the manager's error type.
///
/// One pointer wide (the details are boxed), so `Result<Pooled, Error>` stays
/// small on the success path.
pub struct Error<E>(Box<Details<E>>);

struct Details<E> {
    kind: ErrorKind,
    backend: Option<E>,
    waited: Option<Duration>,
    status: Option<Status>,
    /// A panic message or a configuration problem.
    detail: Option<String>,
}

impl<E> Error<E> {
    fn with(
        kind: ErrorKind,
        backend: Option<E>,
        waited: Option<Duration>,
        status: Option<Status>,
        detail: Option<String>,
    ) -> Self {
        Self(Box::new(Details { kind, backend, waited, status, detail }))
    }

    pub(crate) fn new(kind: ErrorKind) -> Self {
        Self::with(kind, None, None, None, None)
    }

    pub(crate) fn backend_error(phase: Phase, err: E) -> Self {
        Self::with(ErrorKind::Backend(phase), Some(err), None, None, None)
    }

    pub(crate) fn panicked(phase: Phase, message: String) -> Self {
        Self::with(ErrorKind::Panic(phase), None, None, None, Some(message))
    }

    pub(crate) fn config(err: crate::ConfigError) -> Self {
        Self::with(ErrorKind::Config, None, None, None, Some(err.to_string()))
    }

    pub(crate) fn timeout(phase: Phase, last: Option<E>, waited: Duration, status: Status) -> Self {
        Self::with(ErrorKind::Timeout(phase), last, Some(waited), Some(status), None)
    }

    pub(crate) fn closed() -> Self {
        Self::new(ErrorKind::Closed)
    }

    /// What failed.
    pub fn kind(&self) -> ErrorKind {
        self.0.kind
    }

    /// The phase that failed, if the error is about one.
    pub fn phase(&self) -> Option<Phase> {
        match self.0.kind {
            ErrorKind::Timeout(p) | ErrorKind::Backend(p) | ErrorKind::Panic(p) => Some(p),
            ErrorKind::Closed | ErrorKind::NoEndpoint | ErrorKind::Config => None,
        }
    }

    /// The acquire deadline passed.
    pub fn is_timeout(&self) -> bool {
        matches!(self.0.kind, ErrorKind::Timeout(_))
    }

    /// The pool is closed.
    pub fn is_closed(&self) -> bool {
        self.0.kind == ErrorKind::Closed
    }

    /// The backend error: the cause of a `Backend` error, or the last error
    /// seen before a timeout.
    pub fn backend(&self) -> Option<&E> {
        self.0.backend.as_ref()
    }

    /// Takes the backend error out.
    pub fn into_backend(self) -> Option<E> {
        self.0.backend
    }

    /// For a timeout: the pool's status when the deadline passed.
    pub fn status(&self) -> Option<&Status> {
        self.0.status.as_ref()
    }

    /// For a timeout: how long the acquire had been running.
    pub fn waited(&self) -> Option<Duration> {
        self.0.waited
    }
}

impl<E: fmt::Debug> fmt::Debug for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.0.kind);
        if let Some(b) = &self.0.backend {
            d.field("backend", b);
        }
        if let Some(s) = &self.0.status {
            d.field("status", s);
        }
        if let Some(p) = &self.0.detail {
            d.field("detail", p);
        }
        d.finish()
    }
}

impl<E> fmt::Display for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.kind {
            ErrorKind::Timeout(phase) => {
                write!(f, "timed out {}", phase.doing())?;
                if let Some(w) = self.0.waited {
                    write!(f, " after {w:?}")?;
                }
                if let Some(s) = &self.0.status {
                    write!(f, " (pool: {s})")?;
                }
                if self.0.backend.is_some() {
                    write!(f, "; last backend error is the source")?;
                }
                Ok(())
            }
            ErrorKind::Backend(phase) => write!(f, "backend error while {}", phase.doing()),
            ErrorKind::Panic(phase) => {
                write!(f, "the manager panicked while {}", phase.doing())?;
                if let Some(p) = &self.0.detail {
                    write!(f, ": {p}")?;
                }
                Ok(())
            }
            ErrorKind::Closed => f.write_str("the pool is closed"),
            ErrorKind::Config => f.write_str(self.0.detail.as_deref().unwrap_or("invalid pool configuration")),
            ErrorKind::NoEndpoint => {
                f.write_str("the pool has no default endpoint: set one with Builder::endpoint or use get_for")
            }
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for Error<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.backend.as_ref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Turns a caught panic payload into a message.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}
