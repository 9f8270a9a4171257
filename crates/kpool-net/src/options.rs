//! Settings shared by the managers.

use std::time::Duration;

/// What the aliveness check makes of a pooled connection that has unread
/// data waiting when it is checked out again.
///
/// A request/response protocol never leaves data unread between requests, so
/// unsolicited data means the protocol state is unknown (an unread reply of
/// an abandoned request, a server's goodbye message): the safe answer is
/// [`Dead`](UnreadData::Dead). Protocols where the server may speak first at
/// any time (notifications, pub/sub) want [`Alive`](UnreadData::Alive).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum UnreadData {
    /// The connection is dead: it is disposed and the acquire goes on with
    /// another one.
    #[default]
    Dead,
    /// The connection is alive; the data is left for its next user.
    Alive,
}

/// Socket settings of a manager. Every manager has setters for the ones
/// that apply to it; this struct lets one value be shared by several.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Options {
    /// Deadline for opening one connection: resolving, connecting and the TLS
    /// handshake together. `None`: no deadline of the manager's own (the
    /// pool's `acquire_timeout` still applies). Defaults to 10 s.
    ///
    /// The blocking managers cannot interrupt a host name lookup (the system
    /// resolver has no timeout); its time still counts against the deadline.
    pub connect_timeout: Option<Duration>,
    /// `TCP_NODELAY` on TCP and TLS connections. Defaults to `true`: pooled
    /// connections mostly carry small request/response messages.
    pub nodelay: bool,
    /// TCP keepalive on TCP and TLS connections: idle time before the first
    /// probe. `None`: the system's default (usually off). Defaults to `None`.
    pub keepalive: Option<Duration>,
    /// Read and write timeouts set on the streams of the blocking managers
    /// (the tokio streams have none: wrap I/O in `tokio::time::timeout`).
    /// Defaults to `None`.
    pub io_timeout: Option<Duration>,
    /// What the aliveness check makes of unread data. Defaults to
    /// [`UnreadData::Dead`].
    pub unread_data: UnreadData,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            connect_timeout: Some(Duration::from_secs(10)),
            nodelay: true,
            keepalive: None,
            io_timeout: None,
            unread_data: UnreadData::Dead,
        }
    }
}

/// Generates the option setters on a manager type with `opts: Options`.
macro_rules! option_setters {
    (common) => {
        /// Replaces every socket setting at once. Defaults to
        /// [`Options::default`](crate::Options::default).
        #[must_use]
        pub fn with_options(mut self, options: crate::Options) -> Self {
            self.opts = options;
            self
        }

        /// The socket settings.
        pub fn options(&self) -> &crate::Options {
            &self.opts
        }

        /// Deadline for opening one connection (resolve, connect and any
        /// TLS handshake together); `None` for no deadline of its own.
        /// Defaults to 10 s.
        #[must_use]
        pub fn connect_timeout(mut self, timeout: Option<std::time::Duration>) -> Self {
            self.opts.connect_timeout = timeout;
            self
        }

        /// What the aliveness check makes of unread data on a connection
        /// being checked out. Defaults to [`UnreadData::Dead`](crate::UnreadData::Dead).
        #[must_use]
        pub fn unread_data(mut self, policy: crate::UnreadData) -> Self {
            self.opts.unread_data = policy;
            self
        }
    };
    (tcp) => {
        crate::options::option_setters!(common);

        /// Sets `TCP_NODELAY` on new connections. Defaults to `true`.
        #[must_use]
        pub fn nodelay(mut self, on: bool) -> Self {
            self.opts.nodelay = on;
            self
        }

        /// Turns TCP keepalive on, with this idle time before the first
        /// probe. Defaults to `None` (the system's default).
        #[must_use]
        pub fn keepalive(mut self, idle: Option<std::time::Duration>) -> Self {
            self.opts.keepalive = idle;
            self
        }
    };
    (io_timeout) => {
        /// Read and write timeouts set on every new stream. Defaults to `None`.
        #[must_use]
        pub fn io_timeout(mut self, timeout: Option<std::time::Duration>) -> Self {
            self.opts.io_timeout = timeout;
            self
        }
    };
}

pub(crate) use option_setters;
