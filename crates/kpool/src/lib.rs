//! A keyed connection pool for async tasks and blocking threads.
//!
//! `kpool` pools any resource — sockets, database sessions, clients — by an
//! endpoint key, with per-endpoint and global limits, the lifecycle rules of
//! the best pools (idle timeout, max lifetime with jitter, health checks with
//! a bypass window, burst, warm `min_idle`), strict first-come-first-served
//! waiting with direct hand-off, cancellation that leaks nothing, and a clean
//! close. One runtime-free core serves both the async [`Pool`] and the
//! [`blocking::Pool`].
//!
//! # Quick start
//!
//! Implement [`Manager`] (only `create` is required), build a pool, `get`:
//!
//! ```
//! use kpool::{Manager, Pool};
//! use std::sync::atomic::{AtomicU32, Ordering};
//!
//! /// A stand-in for a real connection.
//! struct Conn { id: u32 }
//!
//! #[derive(Default)]
//! struct Mock { made: AtomicU32 }
//!
//! impl Manager for Mock {
//!     type Endpoint = ();
//!     type Connection = Conn;
//!     type Error = std::io::Error;
//!
//!     async fn create(&self, _: &()) -> Result<Conn, Self::Error> {
//!         Ok(Conn { id: self.made.fetch_add(1, Ordering::Relaxed) })
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let pool = Pool::builder(Mock::default()).max_size(4).build()?;
//! {
//!     let conn = pool.get().await?;
//!     assert_eq!(conn.id, 0);
//! } // dropped: back to the pool
//! let again = pool.get().await?;
//! assert_eq!(again.id, 0, "the idle connection was reused");
//! assert_eq!(pool.status().pool.in_use, 1);
//! # Ok(()) }
//! ```
//!
//! A keyed pool uses the endpoint as the key: `pool.get_for(&"db-2").await?`,
//! with `max_size`, `min_idle`, `max_idle` and `burst_limit` per endpoint and
//! `total_max_size` across them. The [`blocking::Pool`] has the same shape for
//! threads: `pool.get()?`.
//!
//! # Rules
//!
//! - Core idle connections (up to `min_idle` per endpoint) are reused first in
//!   first out, so they stay warm; extra idle ones last in first out, so cold
//!   ones idle out after `idle_timeout`.
//! - A reused connection is health-checked once per acquire unless it was
//!   returned less than `validation_bypass` ago; a fresh one is not. A dead one
//!   goes to `on_dead`, then `dispose`, and the acquire carries on.
//! - No acquire hands out a connection past `max_lifetime`; one that expires
//!   while checked out is disposed when it comes back, never under its user.
//! - Waiters are served strictly in arrival order per endpoint; a released
//!   connection goes straight to the oldest waiter.
//! - At `total_max_size`, the idle connection with the earliest deadline on
//!   any endpoint is evicted to make room; a connection released idle on one
//!   endpoint also serves waiters for global room on another.
//! - `create` failures are retried (`retry_limit`, `retry_delay` doubling)
//!   within the acquire deadline, and the caller gets the real backend error —
//!   a timeout carries the last one and the pool's status.
//!
//! # Cancel safety
//!
//! Every acquire future may be dropped at any await point — waiting in line,
//! creating, checking, running hooks — without leaking: its place in line,
//! reserved room, or a connection already handed to it goes to the next
//! waiter or back to the pool. A connection whose check or hook was
//! interrupted is disposed rather than reused, since its state is unknown.
//!
//! # Panics
//!
//! The pool catches panics from every manager method: the slot is freed, the
//! caller of an acquire gets an [`ErrorKind::Panic`] error, and the pool keeps
//! serving. A panic while a guard is held returns the connection (as broken,
//! if `is_broken` panics).
//!
//! # Metrics
//!
//! On by default and lock-free to record: per-endpoint counters (requests,
//! acquired, timeouts, errors, created, disposed by [`DisposeReason`], ...),
//! histograms of acquire wait, usage and creation time, gauges from
//! [`Pool::status`] and their high-water marks ([`Metrics::peak_in_use`],
//! [`Metrics::peak_waiting`]). Read them with [`Pool::metrics`]: the snapshot prints a
//! readable summary (`Display`), exports Prometheus text
//! ([`MetricsSnapshot::to_prometheus`]) and JSON (feature `serde`). A
//! [`Registry`] of named pools exports all its pools at once. Leak detection
//! ([`Config::leak_detection`]) reports connections held too long with the
//! place they were acquired ([`Pool::leak_reports`]).
//!
//! # Feature flags
//!
//! - `serde`: `Serialize`/`Deserialize` for metrics snapshots and
//!   [`MetricsSnapshot::to_json`].
//! - `metrics`: `MetricsSnapshot::record_to_metrics` feeds the `metrics`
//!   crate facade.
//! - `tracing-spans`: `tracing` spans around acquire, create, check and
//!   dispose (events for timeouts, dead connections and disposals are always
//!   emitted at debug level, and failures at warn).
//!
//! The core itself depends only on tokio (`rt`, `time`, `sync`),
//! `parking_lot`, `futures-util` and `tracing`.

#![forbid(unsafe_code)]

pub mod blocking;
mod builder;
mod config;
mod core;
mod error;
mod leak;
mod manager;
mod metrics;
mod pool;
mod registry;
mod status;
mod sync;

pub use config::{Collection, Config, ConfigError};
pub use error::{Error, ErrorKind, Phase};
pub use leak::LeakReport;
pub use manager::{Endpoint, FnManager, Manager};
pub use metrics::{CounterSnapshot, DisposeReason, HistogramSnapshot, Metrics, MetricsSnapshot};
pub use pool::{Builder, CloseReport, OwnedPooled, Pool, Pooled};
pub use registry::{NamedPool, Registry, RegistryError};
pub use status::{PoolStatus, Status};
