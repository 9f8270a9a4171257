//! A small axum service on PostgreSQL and Redis, with kpool-tower.
//!
//! ```text
//! cargo run -p kpool-tower --example service
//! curl -i http://127.0.0.1:3000/visits
//! curl http://127.0.0.1:3000/metrics
//! curl -i http://127.0.0.1:3000/health
//! ```
//!
//! Environment (all optional):
//! - `DATABASE_URL`, default `postgres://root@127.0.0.1:5432/test`
//! - `REDIS_URL`, default `redis://127.0.0.1:6379`
//! - `ADDR`, default `127.0.0.1:3000`
//! - `POOL_PRESET`, default `balanced`
//!
//! Ctrl-C (or SIGTERM) stops taking requests, lets running ones finish and
//! closes the pools.

use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use kpool_redis::redis;
use kpool_tower::{PgConn, PoolLayer, Pools, RedisConn};

const DATABASE_URL: &str = "postgres://root@127.0.0.1:5432/test";
const REDIS_URL: &str = "redis://127.0.0.1:6379";

/// Counts the visit in Redis and asks PostgreSQL what time it is.
async fn visits(db: PgConn, mut cache: RedisConn) -> Result<Response, (StatusCode, &'static str)> {
    let visits: i64 = redis::cmd("INCR")
        .arg("kpool:example:visits")
        .query_async(&mut *cache)
        .await
        .map_err(|_| (StatusCode::INTERNAL_SERVER_ERROR, "redis error"))?;
    let row = db
        .query_one("SELECT now()::text, pg_backend_pid()", &[])
        .await
        .map_err(|_| (StatusCode::INTERNAL_SERVER_ERROR, "database error"))?;
    let (now, pid): (String, i32) = (row.get(0), row.get(1));
    let body = format!(r#"{{"visits":{visits},"db_time":{},"db_backend_pid":{pid}}}"#, serde_json::Value::from(now));
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let preset = std::env::var("POOL_PRESET").unwrap_or_else(|_| "balanced".to_owned());
    let pools = Pools::builder()
        .preset(&preset)
        .configure(|c| {
            c.min_idle = 1;
            c.acquire_timeout = Some(Duration::from_secs(3));
        })
        .from_vars(|name| {
            std::env::var(name).ok().or_else(|| match name {
                "DATABASE_URL" => Some(DATABASE_URL.to_owned()),
                "REDIS_URL" => Some(REDIS_URL.to_owned()),
                _ => None,
            })
        })
        .build()?;

    let app = Router::new()
        .route("/visits", get(visits))
        .route("/metrics", get(kpool_tower::metrics))
        .route("/metrics.json", get(kpool_tower::metrics_json))
        .route("/health", get(kpool_tower::health))
        .layer(PoolLayer::new(pools.clone()));

    let addr = std::env::var("ADDR").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{} with pools {:?} (preset {preset})", listener.local_addr()?, pools.names());
    println!("try: curl -i http://{addr}/visits   /metrics   /health");

    let report =
        kpool_tower::serve(listener, app, pools, kpool_tower::shutdown_signal(), Duration::from_secs(10)).await?;
    println!("stopped: {report:?}");
    Ok(())
}
