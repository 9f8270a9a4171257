//! Route handlers: pool metrics (Prometheus text and JSON) and health.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

use crate::pools::Pools;

/// The content type of the Prometheus text exposition format.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A handler: Prometheus text (version 0.0.4) of every pool, labelled
/// `pool="<name>"` (`kpool_connections_active{pool="db"} 3`, …). Use as
/// `.route("/metrics", get(kpool_tower::metrics))` under
/// [`PoolLayer`](crate::PoolLayer).
pub async fn metrics(pools: Pools) -> Response {
    with_type(StatusCode::OK, PROMETHEUS_CONTENT_TYPE, pools.to_prometheus())
}

/// A handler: the metrics of every pool as JSON, keyed by pool name
/// (see [`kpool::MetricsSnapshot`]).
pub async fn metrics_json(pools: Pools) -> Response {
    with_type(StatusCode::OK, "application/json", pools.to_json())
}

/// A handler: checks that every pool can hand out a live connection (see
/// [`Pools::check`]), within the builder's
/// [`health_timeout`](crate::PoolsBuilder::health_timeout).
///
/// 200 with `{"status":"ok","pools":{"db":"ok","redis":"ok"}}` when all
/// are fine; otherwise 503 naming the failing pools:
/// `{"status":"fail","failing":["db"],"pools":{"db":"timeout","redis":"ok"}}`
/// (with [`expose_errors`](crate::PoolsBuilder::expose_errors), each
/// failure's full story). A closed pool fails, so the route goes red
/// during shutdown; a pool whose connections all stay checked out for the
/// whole timeout fails as `busy`. Each check is an acquire (plus the
/// manager's `check_alive`) and counts in the pool's metrics like any other.
pub async fn health(pools: Pools) -> Response {
    let options = pools.options().clone();
    let health = pools.check(options.health_timeout).await;
    for pool in &health.pools {
        if let Err(failure) = &pool.result {
            tracing::warn!(pool = %pool.name, %failure, "pool health check failed");
        }
    }
    let status = if health.is_ok() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    with_type(status, "application/json", health.to_json(options.expose_errors))
}

fn with_type(status: StatusCode, content_type: &'static str, body: String) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
