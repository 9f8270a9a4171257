//! PostgreSQL managers for [`kpool`]: [`Manager`] on tokio-postgres for the
//! async [`kpool::Pool`], and [`blocking::Manager`] on the `postgres` crate
//! for the [`kpool::blocking::Pool`].
//!
//! Both drivers are re-exported ([`tokio_postgres`], [`postgres`]), so the
//! versions always match.
//!
//! # Quick start
//!
//! ```
//! use kpool_postgres::{Manager, Pool};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # if tokio::net::TcpStream::connect("127.0.0.1:5432").await.is_err() && std::env::var_os("CI").is_none() {
//! #     eprintln!("skipping: PostgreSQL not reachable at 127.0.0.1:5432"); return Ok(());
//! # }
//! let manager = Manager::from_url("postgres://root@127.0.0.1:5432/test")?;
//! let pool: Pool = Pool::builder(manager).max_size(8).build()?;
//!
//! let conn = pool.get().await?;
//! let row = conn.query_one("SELECT $1::int + 1", &[&41]).await?;
//! assert_eq!(row.get::<_, i32>(0), 42);
//! drop(conn); // back to the pool
//!
//! assert_eq!(pool.status().pool.idle, 1);
//! # Ok(()) }
//! ```
//!
//! # One pool, several databases or hosts
//!
//! The pool's endpoint key is any type implementing [`Endpoint`]: it derives
//! each connection's configuration from the manager's base configuration.
//! A `&'static str` or `String` key is a database name; a [`Target`] also
//! overrides host, port or user. Limits (`max_size`, `min_idle`, …) apply per
//! key, and `total_max_size` across them.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # if tokio::net::TcpStream::connect("127.0.0.1:5432").await.is_err() && std::env::var_os("CI").is_none() {
//! #     eprintln!("skipping: PostgreSQL not reachable at 127.0.0.1:5432"); return Ok(());
//! # }
//! use kpool_postgres::{Manager, Pool};
//!
//! let manager = Manager::from_url("postgres://root@127.0.0.1:5432/test")?.keyed::<&'static str>();
//! let pool: Pool<&'static str> = Pool::builder(manager).max_size(4).total_max_size(Some(6)).build()?;
//!
//! let conn = pool.get_for(&"postgres").await?;
//! let db: String = conn.query_one("SELECT current_database()::text", &[]).await?.get(0);
//! assert_eq!(db, "postgres");
//! # Ok(()) }
//! ```
//!
//! # Checks and cleaning
//!
//! [`CheckMethod`] says how a reused connection is checked (when the pool
//! asks: outside its `validation_bypass` window) and whether a returned one
//! is cleaned:
//!
//! | method | check on reuse | on return |
//! | --- | --- | --- |
//! | [`Fast`](CheckMethod::Fast) | `is_closed()`, no round trip | — |
//! | [`Verified`](CheckMethod::Verified) (default) | an empty query | — |
//! | [`Clean`](CheckMethod::Clean) | an empty query | `ROLLBACK`, optionally `DISCARD ALL` |
//!
//! Every method disposes a connection whose socket the driver saw close. A
//! connection the server killed is found by the check, disposed, and the
//! acquire carries on with another one: the caller sees no error.
//!
//! The async pool cannot await in a guard's `Drop`. When a guard is dropped
//! the manager queues the cleanup on the connection at once, without waiting
//! for the answer, so an abandoned transaction ends (and drops its locks)
//! right away; the pool then runs the cleanup again, awaited, when the
//! connection is next checked out, before anyone uses it.
//! `kpool::Pooled::release(conn).await` runs it awaited at once. The
//! blocking pool runs it in the guard's drop.
//!
//! # Errors and retries
//!
//! Connect errors go to the caller as the driver's [`tokio_postgres::Error`]
//! (behind [`kpool::Error::backend`]). [`is_transient`] decides which are
//! retried: a refused connection is (up to the pool's `retry_limit`), an
//! unknown role or database, a rejected login or an unknown host is not and
//! comes back at once.
//!
//! # TLS
//!
//! The managers are generic over the driver's `MakeTlsConnect`: pass any TLS
//! connector to [`Manager::tls`]. The `tls` feature brings one, on rustls
//! (the `tls` module); without it this crate builds no TLS stack, and
//! `postgres-native-tls` or `postgres-openssl` work just as well.
//!
//! # Feature flags
//!
//! - `blocking` (default): the [`blocking`] module and the [`postgres`]
//!   re-export, on the `postgres` crate.
//! - `tls`: the `tls` module: a rustls connector (`ring` provider, through
//!   `tokio-postgres-rustls`) and a PEM loader for its trusted roots.

#![forbid(unsafe_code)]

#[cfg(feature = "blocking")]
pub mod blocking;
mod check;
mod endpoint;
mod manager;
#[cfg(feature = "tls")]
pub mod tls;

pub use check::{CheckMethod, is_transient};
pub use endpoint::{Endpoint, Target};
pub use manager::{Connection, Manager, Pool, Pooled};

#[cfg(feature = "blocking")]
pub use postgres;
pub use tokio_postgres;
