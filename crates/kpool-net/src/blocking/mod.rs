//! Managers for the [`kpool::blocking::Pool`]: std sockets, no runtime.
//!
//! Each is the twin of the tokio manager of the same name, with the same
//! endpoints, options, aliveness check and errors. Their streams are
//! blocking; [`io_timeout`](TcpManager::io_timeout) gives them read and write
//! timeouts. The aliveness check switches a stream to non-blocking mode for
//! its peek and back to blocking mode.

mod tcp;
#[cfg(feature = "tls")]
mod tls;
#[cfg(unix)]
mod unix;

pub use tcp::TcpManager;
#[cfg(feature = "tls")]
pub use tls::{TlsManager, TlsStream};
#[cfg(unix)]
pub use unix::UnixManager;
