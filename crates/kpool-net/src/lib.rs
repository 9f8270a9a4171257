//! Pooled TCP, TLS and Unix-socket connections for [`kpool`], for tokio tasks
//! and for blocking threads.
//!
//! | manager | connection | endpoint | feature |
//! |---|---|---|---|
//! | [`TcpManager`] | [`tokio::net::TcpStream`][tokio-tcp] | [`Address`] | `tokio` |
//! | [`TlsManager`] | [`TlsStream`] (tokio-rustls) | [`Address`] | `tokio` + `tls` |
//! | [`UnixManager`] | [`tokio::net::UnixStream`][tokio-unix] | [`PathBuf`](std::path::PathBuf) | `tokio`, Unix |
//! | [`blocking::TcpManager`] | [`std::net::TcpStream`] | [`Address`] | — |
//! | [`blocking::TlsManager`] | [`blocking::TlsStream`] (rustls `StreamOwned`) | [`Address`] | `tls` |
//! | [`blocking::UnixManager`] | [`std::os::unix::net::UnixStream`] | [`PathBuf`](std::path::PathBuf) | Unix |
//!
//! Every manager:
//! - **creates** within a [`connect_timeout`](Options::connect_timeout)
//!   (resolve, connect and TLS handshake together), trying each address a
//!   host name resolves to, with `TCP_NODELAY` on and optional keepalive. A
//!   socket that fails to connect is closed at once.
//! - **checks aliveness** of a reused connection with a non-blocking peek: a
//!   peer that closed or reset the connection makes it dead, and the pool
//!   disposes it and goes on with another, so the caller never sees it; data
//!   nobody asked for is dead too unless [`UnreadData::Alive`] is set. For
//!   TLS the TCP socket is checked the same way, with pending TLS records
//!   (session tickets, `close_notify`) interpreted by rustls.
//! - **fails fast on permanent errors**: its `is_transient` lets the pool
//!   retry a refused, reset or timed-out connect, and returns a name that
//!   does not resolve or a certificate that is not trusted at once.
//! - **reports what failed**: one [`Error`] type that names the [`Step`]
//!   (resolve, connect, TLS handshake), whether it timed out, and the target,
//!   with the `io::Error` or `rustls::Error` behind `source()`.
//!
//! # Quick start
//!
//! An echo server on a free loopback port, and a pool of connections to it
//! (with the default `tokio` feature):
//!
#![cfg_attr(feature = "tokio", doc = "```")]
#![cfg_attr(not(feature = "tokio"), doc = "```ignore")]
//! use std::io::{Read, Write};
//! use kpool::Pool;
//! use kpool_net::{Address, TcpManager};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
//! let addr = listener.local_addr()?;
//! std::thread::spawn(move || {
//!     for mut stream in listener.incoming().flatten() {
//!         std::thread::spawn(move || {
//!             let mut buf = [0; 1024];
//!             while let Ok(n @ 1..) = stream.read(&mut buf) {
//!                 if stream.write_all(&buf[..n]).is_err() {
//!                     break;
//!                 }
//!             }
//!         });
//!     }
//! });
//!
//! let manager = TcpManager::new().connect_timeout(Some(std::time::Duration::from_secs(2)));
//! let pool = Pool::builder(manager).max_size(4).endpoint(Address::from(addr)).build()?;
//! for _ in 0..3 {
//!     let mut conn = pool.get().await?;
//!     conn.write_all(b"ping").await?;
//!     let mut reply = [0; 4];
//!     conn.read_exact(&mut reply).await?;
//!     assert_eq!(&reply, b"ping");
//! }
//! assert_eq!(pool.counters().created, 1, "one connection, reused");
//!
//! // A closed port: the caller gets the real error, not a timeout.
//! let closed = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?; // bound, then dropped
//! let pool = Pool::builder(TcpManager::new()).retry_limit(0).endpoint(Address::from(closed)).build()?;
//! let err = pool.get().await.unwrap_err();
//! let cause = err.backend().expect("the connect error");
//! assert!(cause.is_connect());
//! assert_eq!(cause.to_string(), format!("failed to connect to {closed}"));
//! # Ok(()) }
//! ```
//!
//! The blocking managers in [`blocking`] have the same shape for a
//! [`kpool::blocking::Pool`]. For TLS, build a rustls client configuration
//! (for example with [`tls::client_config`]) and hand it to [`TlsManager::new`].
//!
//! # Pool settings that matter for sockets
//!
//! - `validation_bypass` (default 500 ms): a connection returned less than
//!   this long ago is handed out without the aliveness check. Set it to zero
//!   to check every reuse; a peek is one system call.
//! - `retry_limit` / `retry_delay`: transient connect errors are retried
//!   within the acquire deadline; the last error is kept in the timeout.
//! - `max_lifetime` and `idle_timeout` also bound how long a socket may sit
//!   behind a NAT or a load balancer that drops idle flows silently (no peek
//!   notices those; TCP keepalive does).
//!
//! # Feature flags
//!
//! - `tokio` (default): the async managers [`TcpManager`], [`UnixManager`]
//!   and, with `tls`, [`TlsManager`], on tokio's `net` and `time`.
//! - `tls`: TLS with [`rustls`] (re-exported, with the `ring` crypto
//!   provider and TLS 1.2 and 1.3; no aws-lc-rs, so no cmake): the [`tls`]
//!   module, [`blocking::TlsManager`] and `tokio-rustls` for the async
//!   manager (re-exported as [`tokio_rustls`]). Off by default to keep the
//!   default build small and free of C code.
//!
//! The blocking TCP and Unix managers need no feature; the Unix managers exist
//! on Unix only.
//!
//! # Cancel safety
//!
//! The async managers' `create` may be dropped at any await point (the pool
//! does so when an acquire is cancelled or times out): the half-open socket
//! or TLS session is dropped with it and its file descriptor closed.
//!
//! [`rustls`]: https://docs.rs/rustls/0.23
//! [`tokio_rustls`]: https://docs.rs/tokio-rustls/0.26
#![cfg_attr(feature = "tokio", doc = "[`TcpManager`]: crate::TcpManager")]
#![cfg_attr(
    not(feature = "tokio"),
    doc = "[`TcpManager`]: https://docs.rs/kpool-net/latest/kpool_net/struct.TcpManager.html"
)]
#![cfg_attr(feature = "tokio", doc = "[`UnixManager`]: crate::UnixManager")]
#![cfg_attr(
    not(feature = "tokio"),
    doc = "[`UnixManager`]: https://docs.rs/kpool-net/latest/kpool_net/struct.UnixManager.html"
)]
#![cfg_attr(feature = "tokio", doc = "[tokio-tcp]: tokio::net::TcpStream")]
#![cfg_attr(not(feature = "tokio"), doc = "[tokio-tcp]: https://docs.rs/tokio/1/tokio/net/struct.TcpStream.html")]
#![cfg_attr(feature = "tokio", doc = "[tokio-unix]: tokio::net::UnixStream")]
#![cfg_attr(not(feature = "tokio"), doc = "[tokio-unix]: https://docs.rs/tokio/1/tokio/net/struct.UnixStream.html")]
#![cfg_attr(all(feature = "tls", feature = "tokio"), doc = "[`TlsStream`]: crate::TlsStream")]
#![cfg_attr(
    not(all(feature = "tls", feature = "tokio")),
    doc = "[`TlsStream`]: https://docs.rs/kpool-net/latest/kpool_net/type.TlsStream.html"
)]
#![cfg_attr(all(feature = "tls", feature = "tokio"), doc = "[`TlsManager`]: crate::TlsManager")]
#![cfg_attr(
    not(all(feature = "tls", feature = "tokio")),
    doc = "[`TlsManager`]: https://docs.rs/kpool-net/latest/kpool_net/struct.TlsManager.html"
)]
#![cfg_attr(all(feature = "tls", feature = "tokio"), doc = "[`TlsManager::new`]: crate::TlsManager::new")]
#![cfg_attr(
    not(all(feature = "tls", feature = "tokio")),
    doc = "[`TlsManager::new`]: https://docs.rs/kpool-net/latest/kpool_net/struct.TlsManager.html#method.new"
)]
#![cfg_attr(feature = "tls", doc = "[`blocking::TlsManager`]: crate::blocking::TlsManager")]
#![cfg_attr(
    not(feature = "tls"),
    doc = "[`blocking::TlsManager`]: https://docs.rs/kpool-net/latest/kpool_net/blocking/struct.TlsManager.html"
)]
#![cfg_attr(feature = "tls", doc = "[`blocking::TlsStream`]: crate::blocking::TlsStream")]
#![cfg_attr(
    not(feature = "tls"),
    doc = "[`blocking::TlsStream`]: https://docs.rs/kpool-net/latest/kpool_net/blocking/type.TlsStream.html"
)]
#![cfg_attr(feature = "tls", doc = "[`tls`]: crate::tls")]
#![cfg_attr(not(feature = "tls"), doc = "[`tls`]: https://docs.rs/kpool-net/latest/kpool_net/tls/index.html")]
#![cfg_attr(feature = "tls", doc = "[`tls::client_config`]: crate::tls::client_config")]
#![cfg_attr(
    not(feature = "tls"),
    doc = "[`tls::client_config`]: https://docs.rs/kpool-net/latest/kpool_net/tls/fn.client_config.html"
)]
#![forbid(unsafe_code)]

mod address;
pub mod blocking;
mod connect;
mod error;
mod options;
mod probe;
#[cfg(feature = "tokio")]
mod tcp;
#[cfg(feature = "tls")]
pub mod tls;
#[cfg(all(feature = "tokio", unix))]
mod unix;

pub use address::{Address, AddressParseError};
pub use error::{Error, Step};
pub use options::{Options, UnreadData};
#[cfg(feature = "tls")]
pub use rustls;
#[cfg(feature = "tokio")]
pub use tcp::TcpManager;
#[cfg(all(feature = "tokio", feature = "tls"))]
pub use tls::{TlsManager, TlsStream};
#[cfg(feature = "tls")]
pub use tokio_rustls;
#[cfg(all(feature = "tokio", unix))]
pub use unix::UnixManager;
