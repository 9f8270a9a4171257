//! Which connect errors are worth retrying.

use redis::{ErrorKind, RedisError, ServerErrorKind};

/// Whether an error from connecting may go away on retry; the managers'
/// `is_transient`.
///
/// Transient (retried up to the pool's `retry_limit`): I/O errors (refused,
/// reset, timed out, a temporary DNS failure) and the server's own "try
/// later" answers (`LOADING`, `TRYAGAIN`, `MASTERDOWN`, `CLUSTERDOWN`).
/// Not transient (returned to the caller at once): a rejected login
/// (`WRONGPASS`, `NOAUTH`, `AUTH` without a configured password), a missing
/// permission, a database index out of range, an invalid URL or client
/// setting, a host name that does not exist, and any other server error.
pub fn is_transient(error: &RedisError) -> bool {
    match error.kind() {
        ErrorKind::Io => {
            // The I/O error itself is private to the driver; its text is not.
            let text = error.to_string();
            // getaddrinfo's EAI_NONAME / EAI_NODATA: the name does not exist.
            let unknown_host = text.contains("failed to lookup address information")
                && !text.contains("Temporary failure")
                && !text.contains("try again");
            !unknown_host
        }
        ErrorKind::Server(kind) => matches!(
            kind,
            ServerErrorKind::BusyLoading
                | ServerErrorKind::TryAgain
                | ServerErrorKind::MasterDown
                | ServerErrorKind::ClusterDown
        ),
        _ => false,
    }
}
