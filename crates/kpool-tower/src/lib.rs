//! [`kpool`] for web services: a tower layer that hands pools to request
//! handlers, axum extractors that yield pooled connections, metrics and
//! health routes, and a graceful shutdown that closes the pools.
//!
//! - [`Pools`]: named pools of any manager, built from given pools, from
//!   URLs, or from `DATABASE_URL` / `REDIS_URL` with a preset and overrides
//!   ([`PoolsBuilder`]).
//! - [`PoolLayer`]: puts the [`Pools`] into every request's extensions
//!   (tower's layer / service / future shape; works with axum and hyper).
//! - [`Conn`]: an axum extractor yielding a connection from a pool, chosen
//!   by manager type or by name ([`PoolName`]); [`PgConn`] and
//!   [`RedisConn`] for PostgreSQL and Redis. An exhausted or closed pool
//!   answers 503 with `Retry-After`, a backend error 500
//!   ([`ConnRejection`]); `Option<Conn<M>>` is `None` instead, for
//!   backends a handler can do without. [`PoolOf`] yields the pool itself.
//! - [`metrics`] (Prometheus text), [`metrics_json`] and [`health`] route
//!   handlers.
//! - [`serve`] and [`shutdown_signal`]: stop on a signal, drain requests,
//!   close the pools.
//!
//! # Quick start
//!
//! A handler takes a `Conn<M>` for a pool of manager `M`; the connection
//! goes back to the pool when the handler returns:
//!
//! ```
//! use axum::{Router, body::Body, http::Request, routing::get};
//! use kpool_tower::{Conn, PoolLayer, Pools};
//! use tower::ServiceExt; // oneshot
//!
//! /// A stand-in manager: its connections are numbers.
//! struct Numbers;
//!
//! impl kpool::Manager for Numbers {
//!     type Endpoint = ();
//!     type Connection = u32;
//!     type Error = std::io::Error;
//!
//!     async fn create(&self, _: &()) -> Result<u32, Self::Error> {
//!         Ok(42)
//!     }
//! }
//!
//! async fn answer(conn: Conn<Numbers>) -> String {
//!     format!("the answer is {}", *conn)
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let pool = kpool::Pool::builder(Numbers).max_size(4).build()?;
//! let pools = Pools::builder().pool("numbers", pool.clone()).build()?;
//! let app = Router::new()
//!     .route("/answer", get(answer))
//!     .route("/metrics", get(kpool_tower::metrics))
//!     .route("/health", get(kpool_tower::health))
//!     .layer(PoolLayer::new(pools));
//!
//! let response = app.clone().oneshot(Request::get("/answer").body(Body::empty())?).await?;
//! assert_eq!(response.status(), 200);
//! let body = axum::body::to_bytes(response.into_body(), 1024).await?;
//! assert_eq!(body, "the answer is 42");
//! assert_eq!(pool.status().pool.in_use, 0, "back in the pool");
//!
//! let response = app.clone().oneshot(Request::get("/metrics").body(Body::empty())?).await?;
//! let text = axum::body::to_bytes(response.into_body(), 1 << 20).await?;
//! assert!(String::from_utf8(text.to_vec())?.contains("kpool_connections_acquired_total{pool=\"numbers\"} 1"));
//!
//! let response = app.oneshot(Request::get("/health").body(Body::empty())?).await?;
//! assert_eq!(response.status(), 200);
//! # Ok(()) }
//! ```
//!
//! With PostgreSQL and Redis (features `postgres` and `redis`), the pools
//! come from the environment and the handlers use the aliases:
//!
//! ```no_run
//! # #[cfg(all(feature = "postgres", feature = "redis"))]
//! # mod demo {
//! use std::time::Duration;
//! use axum::{Router, routing::get};
//! use kpool_tower::{PgConn, Pools, RedisConn};
//!
//! async fn visits(db: PgConn, mut cache: RedisConn) -> String {
//!     let n: i64 = kpool_redis::redis::cmd("INCR").arg("visits").query_async(&mut *cache).await.unwrap_or(0);
//!     let row = db.query_one("SELECT now()::text", &[]).await;
//!     format!("{n} visits, {:?}", row.map(|r| r.get::<_, String>(0)))
//! }
//!
//! pub async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     // DATABASE_URL -> pool "db", REDIS_URL -> pool "redis".
//!     let pools = Pools::builder().preset("balanced").from_env().build()?;
//!     let app = Router::new()
//!         .route("/visits", get(visits))
//!         .route("/metrics", get(kpool_tower::metrics))
//!         .route("/health", get(kpool_tower::health))
//!         .layer(kpool_tower::PoolLayer::new(pools.clone()));
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//!     let report = kpool_tower::serve(listener, app, pools, kpool_tower::shutdown_signal(), Duration::from_secs(10)).await?;
//!     println!("shut down: {report:?}");
//!     Ok(())
//! }
//! # }
//! # fn main() {}
//! ```
//!
//! `crates/kpool-tower/examples/service.rs` is the whole service:
//! `cargo run -p kpool-tower --example service`.
//!
//! # Responses
//!
//! | what | status | body |
//! | --- | --- | --- |
//! | [`Conn`]: acquire timed out, pool closed | 503, `Retry-After` | `service unavailable` |
//! | [`Conn`]: backend error | 500 | `internal server error` |
//! | [`metrics`] | 200, `text/plain; version=0.0.4` | Prometheus text |
//! | [`health`]: all pools hand out a live connection | 200, JSON | `{"status":"ok",…}` |
//! | [`health`]: some do not | 503, JSON | `{"status":"fail","failing":["db"],…}` |
//!
//! Bodies carry no error details unless
//! [`PoolsBuilder::expose_errors`] is on; the details are logged with
//! `tracing` either way.
//!
//! # Feature flags
//!
//! - `postgres` (default): [`PoolsBuilder::postgres`], `DATABASE_URL`, and
//!   [`PgConn`], on `kpool-postgres` (its async manager only).
//! - `redis` (default): [`PoolsBuilder::redis`], `REDIS_URL`, and
//!   [`RedisConn`], on `kpool-redis`.
//!
//! With `default-features = false` the layer, extractors and routes work
//! with pools of any manager, and neither driver is built.
//!
//! # Cancel safety
//!
//! A request dropped while [`Conn`] waits for a connection (a client that
//! went away, a timeout layer) leaves the pool's line without leaking, as
//! every kpool acquire does.

#![forbid(unsafe_code)]

mod extract;
pub mod future;
mod layer;
mod pools;
mod routes;
mod service;
mod shutdown;

pub use extract::{ByType, Conn, ConnRejection, PoolName, PoolOf};
pub use layer::PoolLayer;
pub use pools::{BuildError, DB, Failure, Health, PoolHealth, Pools, PoolsBuilder, REDIS};
pub use routes::{PROMETHEUS_CONTENT_TYPE, health, metrics, metrics_json};
pub use service::PoolService;
pub use shutdown::{ShutdownReport, serve, shutdown_signal};

/// A connection from the PostgreSQL pool (the first one added; [`DB`] when
/// built from `DATABASE_URL`). Derefs to [`kpool_postgres::Connection`],
/// which derefs to `tokio_postgres::Client`. Feature `postgres`.
#[cfg(feature = "postgres")]
pub type PgConn<N = ByType> = Conn<kpool_postgres::Manager, N>;

/// A connection from the Redis pool (the first one added; [`REDIS`] when
/// built from `REDIS_URL`). Derefs to [`kpool_redis::Connection`]: pass
/// `&mut *conn` to `query_async`. Feature `redis`.
#[cfg(feature = "redis")]
pub type RedisConn<N = ByType> = Conn<kpool_redis::Manager, N>;
