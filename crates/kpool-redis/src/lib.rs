//! Redis managers for [`kpool`], on the [`redis`] crate: [`Manager`] for the
//! async [`kpool::Pool`] (tokio) and [`blocking::Manager`] for the
//! [`kpool::blocking::Pool`].
//!
//! The driver is re-exported ([`redis`]), so the versions always match.
//!
//! # Quick start
//!
//! ```
//! use kpool_redis::{Manager, Pool};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # if tokio::net::TcpStream::connect("127.0.0.1:6379").await.is_err() && std::env::var_os("CI").is_none() {
//! #     eprintln!("skipping: Redis not reachable at 127.0.0.1:6379"); return Ok(());
//! # }
//! let pool: Pool = Pool::builder(Manager::from_url("redis://127.0.0.1:6379")?).max_size(8).build()?;
//!
//! let mut conn = pool.get().await?;
//! let key = format!("kpool-redis-doc-{}", std::process::id());
//! let n: i64 = redis::cmd("INCR").arg(&key).query_async(&mut *conn).await?;
//! assert_eq!(n, 1);
//! let _: () = redis::cmd("DEL").arg(&key).query_async(&mut *conn).await?;
//! drop(conn); // back to the pool
//!
//! assert_eq!(pool.status().pool.idle, 1);
//! # Ok(()) }
//! ```
//!
//! # Keyed pools
//!
//! The endpoint key is any type implementing [`Endpoint`]: [`Db`] selects a
//! logical database on the base server, a `String` is a complete URL (one
//! pool over several servers). Limits apply per key, and `total_max_size`
//! across them.
//!
//! # Checks
//!
//! A reused connection is checked with `PING` (when the pool asks: outside
//! its `validation_bypass` window); a connection the server closed (`CLIENT
//! KILL`, a restart, a timeout) fails it, is disposed, and the acquire
//! carries on with another one: the caller sees no error. A connection whose
//! command failed with an I/O error is disposed when returned.
//!
//! # Errors and retries
//!
//! Connect errors reach the caller as the driver's [`redis::RedisError`]
//! (behind [`kpool::Error::backend`]). [`is_transient`] decides which are
//! retried: a refused connection is, a rejected password, a database index
//! out of range or an unknown host is not and comes back at once.
//!
//! # Feature flags
//!
//! - `tokio` (default): the async [`Manager`] and [`Connection`], with the
//!   driver's `tokio-comp` feature.
//!
//! The driver is built without its default features (no `acl`, `streams`,
//! `script`, … command helpers, no TLS): enable the ones you need on your
//! own `redis` dependency and Cargo unifies them, e.g.
//! `redis = { version = "1", features = ["tokio-rustls-comp"] }` for
//! `rediss://` URLs.

#![forbid(unsafe_code)]

#[cfg(feature = "tokio")]
mod aio;
pub mod blocking;
mod endpoint;
mod transient;

#[cfg(feature = "tokio")]
pub use aio::{Connection, Manager, Pool, Pooled};
pub use endpoint::{Db, Endpoint};
pub use redis;
pub use transient::is_transient;
