//! How pooled connections are checked and cleaned, and which errors are
//! worth retrying.

use std::error::Error as _;

use tokio_postgres::error::SqlState;

/// How the managers check a reused connection and clean a returned one,
/// like deadpool-postgres' `RecyclingMethod`.
///
/// Every method also disposes a connection whose driver saw it close (on
/// return, through `is_broken`), and every check runs only when the pool asks
/// for one (`validate_on_acquire`, outside the `validation_bypass` window).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CheckMethod {
    /// Only asks the driver whether the connection is closed: no round trip.
    /// The async client's I/O task reads a server-side close (a killed
    /// backend) as it happens; the blocking client reads its socket only
    /// during calls, so its check polls it, waiting up to about 2 ms. A close
    /// the driver has not read yet is missed: the next query fails, and the
    /// connection is disposed when returned.
    Fast,
    /// Sends an empty query and waits for the answer: one round trip; notices
    /// a killed backend or a dead network path.
    #[default]
    Verified,
    /// [`Verified`](Self::Verified), and on every return a `ROLLBACK` (so a
    /// transaction left open by a user never reaches the next one), followed
    /// by `DISCARD ALL` when `discard_all` is set (resets session settings,
    /// temporary tables, prepared statements, advisory locks, `LISTEN`s).
    ///
    /// With `discard_all`, statements prepared by one user are gone for the
    /// next: do not keep `Statement`s across checkouts.
    Clean {
        /// Also run `DISCARD ALL` after the `ROLLBACK`.
        discard_all: bool,
    },
}

impl CheckMethod {
    /// [`Clean`](Self::Clean) with `ROLLBACK` only.
    pub const ROLLBACK: CheckMethod = CheckMethod::Clean { discard_all: false };

    /// [`Clean`](Self::Clean) with `ROLLBACK` and `DISCARD ALL`.
    pub const DISCARD: CheckMethod = CheckMethod::Clean { discard_all: true };

    /// Whether a check needs a round trip to the server.
    pub(crate) fn round_trip(self) -> bool {
        !matches!(self, CheckMethod::Fast)
    }

    /// The statements run when a connection comes back, if any.
    pub(crate) fn cleanup(self) -> &'static [&'static str] {
        match self {
            CheckMethod::Clean { discard_all: true } => &["ROLLBACK", "DISCARD ALL"],
            CheckMethod::Clean { discard_all: false } => &["ROLLBACK"],
            CheckMethod::Fast | CheckMethod::Verified => &[],
        }
    }
}

/// Whether an error from connecting may go away on retry; the managers'
/// `is_transient`.
///
/// Not transient (returned to the caller at once): the server rejected the
/// login or the database — SQLSTATE class 28 (invalid authorization: unknown
/// role, wrong password, no `pg_hba.conf` entry), class 3D (unknown
/// database), class 42 (bad startup options) and any other server error
/// outside the classes below; an invalid configuration; a failed TLS
/// handshake (untrusted certificate); a host name that does not exist. Transient (retried up to the pool's `retry_limit`): I/O errors
/// (refused, reset, timed out, a temporary DNS failure) and the server errors
/// of classes 08 (connection exception), 53 (too many connections, out of
/// memory), 57 (shutting down, starting up) and 58 (system error).
pub fn is_transient(error: &tokio_postgres::Error) -> bool {
    if let Some(code) = error.code() {
        return is_transient_code(code);
    }
    if error.to_string() == "error performing TLS handshake" {
        // An untrusted certificate or a protocol mismatch stays that way.
        return false;
    }
    let mut source = error.source();
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            let text = io.to_string();
            // getaddrinfo's EAI_NONAME / EAI_NODATA: the name does not exist.
            let unknown_host = text.contains("failed to lookup address information")
                && !text.contains("Temporary failure")
                && !text.contains("try again");
            return !unknown_host;
        }
        source = e.source();
    }
    // No server error and no I/O error: configuration, authentication
    // method or protocol problems, which a retry does not fix.
    !matches!(
        error.to_string().as_str(),
        "invalid configuration" | "invalid connection string" | "authentication error"
    )
}

fn is_transient_code(code: &SqlState) -> bool {
    let class = &code.code()[..2];
    matches!(class, "08" | "53" | "57" | "58")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        assert!(!is_transient_code(&SqlState::INVALID_PASSWORD));
        assert!(!is_transient_code(&SqlState::INVALID_AUTHORIZATION_SPECIFICATION));
        assert!(!is_transient_code(&SqlState::INVALID_CATALOG_NAME));
        assert!(is_transient_code(&SqlState::TOO_MANY_CONNECTIONS));
        assert!(is_transient_code(&SqlState::CANNOT_CONNECT_NOW));
        assert!(is_transient_code(&SqlState::ADMIN_SHUTDOWN));
    }

    #[test]
    fn cleanup_statements() {
        assert!(CheckMethod::Fast.cleanup().is_empty());
        assert!(CheckMethod::Verified.cleanup().is_empty());
        assert_eq!(CheckMethod::ROLLBACK.cleanup(), ["ROLLBACK"]);
        assert_eq!(CheckMethod::DISCARD.cleanup(), ["ROLLBACK", "DISCARD ALL"]);
        assert!(!CheckMethod::Fast.round_trip() && CheckMethod::default().round_trip());
    }
}
