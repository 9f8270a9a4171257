//! The layer, extractors, routes and shutdown with an in-process manager:
//! through `oneshot` and through a real server on a loopback port.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use common::{Client, Numbers, NumbersPool, Server, numbers, oneshot, parse_prometheus, sample};
use kpool_tower::{ByType, Conn, ConnRejection, PoolLayer, PoolName, PoolOf, Pools};
use tokio::sync::Semaphore;

async fn number(conn: Conn<Numbers>) -> String {
    conn.to_string()
}

struct Second;
impl PoolName for Second {
    const NAME: Option<&'static str> = Some("second");
}

struct Missing;
impl PoolName for Missing {
    const NAME: Option<&'static str> = Some("missing");
}

fn app(pools: &Pools) -> Router {
    Router::new()
        .route("/n", get(number))
        .route("/metrics", get(kpool_tower::metrics))
        .route("/metrics.json", get(kpool_tower::metrics_json))
        .route("/health", get(kpool_tower::health))
        .layer(PoolLayer::new(pools.clone()))
}

#[tokio::test]
async fn handler_gets_a_working_connection() {
    let (manager, pool) = numbers(2, Duration::from_secs(5));
    let pools = Pools::builder().pool("numbers", pool.clone()).build().unwrap();
    let app = app(&pools);
    for _ in 0..3 {
        let reply = oneshot(&app, "/n").await;
        assert_eq!((reply.status, reply.body.as_str()), (200, "0"), "the one idle connection is reused");
    }
    assert_eq!(manager.made.load(Ordering::SeqCst), 1);
    let status = pool.status().pool;
    assert_eq!((status.in_use, status.idle), (0, 1));
}

#[tokio::test]
async fn pools_by_type_and_by_name() {
    let (_, first) = numbers(2, Duration::from_secs(5));
    let (second_manager, second) = numbers(2, Duration::from_secs(5));
    second_manager.made.store(100, Ordering::SeqCst);
    let pools = Pools::builder().pool("first", first).pool("second", second.clone()).build().unwrap();
    assert_eq!(pools.names(), ["first", "second"]);
    assert_eq!(pools.of_type::<Numbers>().unwrap().0, "first");

    async fn named(conn: Conn<Numbers, Second>) -> String {
        conn.to_string()
    }
    async fn pool_of(pool: PoolOf<Numbers, Second>) -> String {
        let a = pool.get().await.unwrap();
        let b = pool.get().await.unwrap();
        format!("{} {}", *a, *b)
    }
    async fn all(pools: Pools) -> String {
        pools.names().join(",")
    }
    async fn missing(_: Conn<Numbers, Missing>) -> &'static str {
        "unreachable"
    }
    let app = Router::new()
        .route("/by-type", get(|c: Conn<Numbers, ByType>| async move { c.to_string() }))
        .route("/named", get(named))
        .route("/pool", get(pool_of))
        .route("/all", get(all))
        .route("/missing", get(missing))
        .layer(PoolLayer::new(pools));
    assert_eq!(oneshot(&app, "/by-type").await.body, "0");
    assert_eq!(oneshot(&app, "/named").await.body, "100");
    assert_eq!(oneshot(&app, "/pool").await.body, "100 101");
    assert_eq!(second.status().pool.in_use, 0);
    assert_eq!(oneshot(&app, "/all").await.body, "first,second");
    let reply = oneshot(&app, "/missing").await;
    assert_eq!((reply.status, reply.body.as_str()), (500, "internal server error"));
}

#[tokio::test]
async fn without_the_layer_extractors_answer_500() {
    let app = Router::new().route("/n", get(number)).route("/metrics", get(kpool_tower::metrics));
    for path in ["/n", "/metrics"] {
        let reply = oneshot(&app, path).await;
        assert_eq!((reply.status, reply.body.as_str()), (500, "internal server error"), "{path}");
    }
}

#[tokio::test]
async fn backend_errors_answer_500_without_details_unless_asked() {
    let (manager, pool) = numbers(2, Duration::from_secs(5));
    manager.fail.store(true, Ordering::SeqCst);
    let quiet = Pools::builder().pool("numbers", pool.clone()).build().unwrap();
    let reply = oneshot(&app(&quiet), "/n").await;
    assert_eq!((reply.status, reply.body.as_str()), (500, "internal server error"));
    assert!(reply.headers.get("retry-after").is_none());

    let loud = Pools::builder().pool("numbers", pool.clone()).expose_errors(true).build().unwrap();
    let reply = oneshot(&app(&loud), "/n").await;
    assert_eq!(reply.status, 500);
    assert!(reply.body.starts_with("internal server error: pool \"numbers\""), "{}", reply.body);
    assert!(reply.body.contains("secret backend detail"), "{}", reply.body);
    assert_eq!(pool.status().pool.total, 0, "the failed create freed its slot");
}

#[tokio::test]
async fn closed_pool_answers_503_with_retry_after() {
    let (_, pool) = numbers(2, Duration::from_secs(5));
    let pools =
        Pools::builder().pool("numbers", pool.clone()).retry_after(Duration::from_millis(2500)).build().unwrap();
    pools.close();
    assert!(pool.is_closed());
    let reply = oneshot(&app(&pools), "/n").await;
    assert_eq!((reply.status, reply.body.as_str()), (503, "service unavailable"));
    assert_eq!(reply.headers["retry-after"], "3", "rounded up to whole seconds");
}

/// A handler that holds a connection until the test adds a permit.
fn holding_app(pools: &Pools, release: Arc<Semaphore>) -> Router {
    let hold = move |conn: Conn<Numbers>| {
        let release = release.clone();
        async move {
            let _permit = release.acquire().await.unwrap();
            format!("held {}", *conn)
        }
    };
    app(pools).route("/hold", get(hold)).layer(PoolLayer::new(pools.clone()))
}

#[tokio::test]
async fn exhausted_pool_answers_503_with_retry_after_within_the_acquire_timeout() {
    let acquire = Duration::from_millis(300);
    let (_, pool) = numbers(1, acquire);
    let pools = Pools::builder().pool("numbers", pool.clone()).build().unwrap();
    let release = Arc::new(Semaphore::new(0));
    let server = Server::start(holding_app(&pools, release.clone()), pools.clone()).await;
    let client = Client::new();

    let holder = tokio::spawn({
        let (client, url) = (client.clone(), server.url("/hold"));
        async move { client.get(&url).await }
    });
    while pool.status().pool.in_use == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let started = Instant::now();
    let reply = client.get(&server.url("/n")).await;
    let took = started.elapsed();
    assert_eq!((reply.status, reply.body.as_str()), (503, "service unavailable"));
    assert_eq!(reply.headers["retry-after"], "1");
    assert!(took >= acquire - Duration::from_millis(50), "it waited for the acquire timeout: {took:?}");
    assert!(took < acquire + Duration::from_secs(5), "it answered soon after the acquire timeout: {took:?}");
    assert_eq!(pool.counters().timeouts, 1);

    release.add_permits(1);
    let held = holder.await.unwrap();
    assert_eq!((held.status, held.body.as_str()), (200, "held 0"));
    let reply = client.get(&server.url("/n")).await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "0"), "the connection came back");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_concurrent_requests_over_five_connections() {
    let (manager, pool) = numbers(5, Duration::from_secs(30));
    let pools = Pools::builder().pool("numbers", pool.clone()).build().unwrap();
    let slow = |conn: Conn<Numbers>| async move {
        tokio::time::sleep(Duration::from_millis(2)).await;
        conn.to_string()
    };
    let app = app(&pools).route("/slow", get(slow)).layer(PoolLayer::new(pools.clone()));
    let server = Server::start(app, pools.clone()).await;
    let client = Client::new();
    let requests: Vec<_> = (0..300)
        .map(|_| {
            let (client, url) = (client.clone(), server.url("/slow"));
            tokio::spawn(async move { client.get(&url).await })
        })
        .collect();
    let mut seen = std::collections::BTreeSet::new();
    for request in requests {
        let reply = request.await.unwrap();
        assert_eq!(reply.status, 200, "{}", reply.body);
        seen.insert(reply.body.parse::<u32>().unwrap());
    }
    assert!(seen.len() <= 5 && manager.made.load(Ordering::SeqCst) <= 5, "never more than 5 connections: {seen:?}");
    let status = pool.status().pool;
    assert_eq!((status.in_use, status.waiting), (0, 0), "nothing leaked: {status}");
    let counters = pool.counters();
    assert_eq!((counters.acquired, counters.timeouts, counters.errors), (300, 0, 0));
    let report = server.stop().await;
    assert!(report.is_clean(), "{report:?}");
}

#[tokio::test]
async fn metrics_route_serves_prometheus_text_that_parses() {
    let (_, a) = numbers(3, Duration::from_secs(5));
    let (_, b) = numbers(3, Duration::from_secs(5));
    let pools = Pools::builder().pool("a", a).pool("b", b).build().unwrap();
    let app = app(&pools);
    for _ in 0..4 {
        assert_eq!(oneshot(&app, "/n").await.status, 200);
    }
    let reply = oneshot(&app, "/metrics").await;
    assert_eq!(reply.status, 200);
    let content_type = reply.headers["content-type"].to_str().unwrap();
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    let samples = parse_prometheus(&reply.body);
    assert!(samples.len() > 40, "{} samples", samples.len());
    assert_eq!(sample(&samples, "kpool_connections_acquired_total", "a"), Some(4.0));
    assert_eq!(sample(&samples, "kpool_connections_acquired_total", "b"), Some(0.0));
    assert_eq!(sample(&samples, "kpool_connections_idle", "a"), Some(1.0));
    assert_eq!(sample(&samples, "kpool_connections_max", "b"), Some(f64::INFINITY), "no total_max_size");
    let endpoint_max = samples.iter().find(|(n, labels, _)| {
        n == "kpool_connections_max" && labels.iter().any(|(k, v)| k == "pool" && v == "b") && labels.len() == 2
    });
    assert_eq!(endpoint_max.map(|s| (s.1[1].0.as_str(), s.2)), Some(("endpoint", 3.0)), "max_size per endpoint");
    for (name, labels, _) in &samples {
        assert!(labels.iter().any(|(k, v)| k == "pool" && (v == "a" || v == "b")), "{name} {labels:?}");
    }

    let reply = oneshot(&app, "/metrics.json").await;
    assert_eq!(reply.headers["content-type"], "application/json");
    let json: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(json["a"]["pool"]["counters"]["acquired"], 4, "{json:#}");
    assert!(json["b"].is_object());
}

#[tokio::test]
async fn health_goes_red_naming_the_pool_and_green_again() {
    let (manager, pool) = numbers(2, Duration::from_secs(5));
    let (_, other) = numbers(2, Duration::from_secs(5));
    let pools = Pools::builder()
        .pool("numbers", pool.clone())
        .pool("other", other)
        .health_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let app = app(&pools);
    let reply = oneshot(&app, "/health").await;
    assert_eq!((reply.status, reply.body.as_str()), (200, r#"{"status":"ok","pools":{"numbers":"ok","other":"ok"}}"#));
    assert_eq!(reply.headers["content-type"], "application/json");

    // The backend goes away: the idle connection is dead, new ones fail.
    manager.dead.store(true, Ordering::SeqCst);
    manager.fail.store(true, Ordering::SeqCst);
    let reply = oneshot(&app, "/health").await;
    assert_eq!(reply.status, 503);
    let json: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(json["status"], "fail");
    assert_eq!(json["failing"], serde_json::json!(["numbers"]));
    assert_eq!(json["pools"]["numbers"], "error");
    assert_eq!(json["pools"]["other"], "ok");
    assert!(!reply.body.contains("secret"), "no details by default: {}", reply.body);

    // It comes back.
    manager.dead.store(false, Ordering::SeqCst);
    manager.fail.store(false, Ordering::SeqCst);
    let reply = oneshot(&app, "/health").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(pool.status().pool.in_use, 0);

    // A closed pool is red: load balancers stop sending during shutdown.
    pools.close();
    let health = pools.check(Duration::from_millis(500)).await;
    assert_eq!(health.failing(), ["numbers", "other"]);
    assert_eq!(health.pools[0].result.as_ref().unwrap_err().reason(), "closed");
}

#[tokio::test]
async fn health_details_with_expose_errors() {
    let (manager, pool) = numbers(2, Duration::from_secs(5));
    manager.fail.store(true, Ordering::SeqCst);
    let pools = Pools::builder().pool("numbers", pool).expose_errors(true).build().unwrap();
    let reply = oneshot(&app(&pools), "/health").await;
    assert_eq!(reply.status, 503);
    let json: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    let detail = json["pools"]["numbers"].as_str().unwrap();
    assert!(detail.starts_with("error: backend error while creating a connection"), "{detail}");
    assert!(detail.contains("secret backend detail"), "{detail}");
}

#[tokio::test]
async fn health_replaces_a_dead_connection_the_pool_would_hand_out() {
    let (manager, pool) = numbers(2, Duration::from_secs(5));
    let pools = Pools::builder().pool("numbers", pool.clone()).build().unwrap();
    drop(pool.get().await.unwrap());
    // Dead, but inside the pool's validation bypass window: only the
    // health check's own check notices.
    manager.dead.store(true, Ordering::SeqCst);
    let health = pools.check(Duration::from_secs(1)).await;
    assert!(!health.is_ok(), "every connection the pool makes is dead: {health:?}");
    assert_eq!(health.pools[0].result.as_ref().unwrap_err().reason(), "dead");
    manager.dead.store(false, Ordering::SeqCst);
    assert!(pools.check(Duration::from_secs(1)).await.is_ok());
    assert!(manager.made.load(Ordering::SeqCst) >= 2, "the dead connection was replaced");
}

#[tokio::test]
async fn shutdown_drains_requests_then_closes_the_pools() {
    let (_, pool) = numbers(2, Duration::from_secs(5));
    let pools = Pools::builder().pool("numbers", pool.clone()).build().unwrap();
    let release = Arc::new(Semaphore::new(0));
    let server = Server::start(holding_app(&pools, release.clone()), pools.clone()).await;
    let client = Client::new();
    let in_flight = tokio::spawn({
        let (client, url) = (client.clone(), server.url("/hold"));
        async move { client.get(&url).await }
    });
    while pool.status().pool.in_use == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let stopping = tokio::spawn(server.stop());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!pool.is_closed(), "the pools stay open while requests drain");
    release.add_permits(1);
    let report = stopping.await.unwrap();
    assert!(report.is_clean(), "{report:?}");
    let reply = in_flight.await.unwrap();
    assert_eq!((reply.status, reply.body.as_str()), (200, "held 0"), "the request in flight finished");
    assert!(pool.is_closed());
    let status = pool.status().pool;
    assert_eq!((status.total, status.in_use), (0, 0), "{status}");
}

#[tokio::test]
async fn shutdown_reports_requests_that_outlive_the_drain_time() {
    let (_, pool) = numbers(2, Duration::from_secs(5));
    let pools = Pools::builder().pool("numbers", pool.clone()).build().unwrap();
    let release = Arc::new(Semaphore::new(0));
    let server =
        Server::start_with_drain(holding_app(&pools, release.clone()), pools.clone(), Duration::from_millis(300)).await;
    let client = Client::new();
    let in_flight = tokio::spawn({
        let (client, url) = (client.clone(), server.url("/hold"));
        async move { client.get(&url).await }
    });
    while pool.status().pool.in_use == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let report = server.stop().await;
    assert!(!report.drained && report.still_out == 1, "{report:?}");
    assert!(pool.is_closed());
    release.add_permits(1);
    let _ = in_flight.await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while pool.status().pool.total > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(pool.status().pool.total, 0, "the late connection was disposed on return");
}

#[tokio::test]
async fn the_layer_serves_any_tower_service() {
    use tower::{Layer, Service, ServiceExt};
    let (_, pool) = numbers(1, Duration::from_secs(5));
    let pools = Pools::builder().pool("numbers", pool).build().unwrap();
    let inner = tower::service_fn(|req: http::Request<()>| async move {
        let pools = req.extensions().get::<Pools>().expect("the layer put the pools in").clone();
        let pool = pools.get::<Numbers>("numbers").unwrap();
        let conn = pool.get().await.unwrap();
        Ok::<_, std::convert::Infallible>(*conn)
    });
    let mut service = PoolLayer::new(pools).layer(inner);
    let n = service.ready().await.unwrap().call(http::Request::new(())).await.unwrap();
    assert_eq!(n, 0);
}

#[test]
fn build_errors_are_clear() {
    let err = Pools::builder().preset("fast").build().unwrap_err();
    assert!(err.to_string().contains("unknown pool preset \"fast\""), "{err}");
    let err = Pools::builder().configure(|c| c.min_idle = c.max_size + 1).build().unwrap_err();
    assert!(std::error::Error::source(&err).unwrap().to_string().contains("min_idle"), "{err}");
    let (_, a) = numbers(1, Duration::from_secs(1));
    let err = Pools::builder().pool("x", a.clone()).pool("x", a).build().unwrap_err();
    assert!(err.to_string().contains("\"x\""), "{err}");
}

#[cfg(all(feature = "postgres", feature = "redis"))]
#[test]
fn pools_from_environment_variables() {
    let vars = |name: &str| match name {
        "DATABASE_URL" => Some("postgres://user:hunter2@127.0.0.1:1/app".to_owned()),
        "REDIS_URL" => Some("redis://127.0.0.1:1/2".to_owned()),
        _ => None,
    };
    let pools = Pools::builder().preset("conservative").configure(|c| c.max_size = 3).from_vars(vars).build().unwrap();
    assert_eq!(pools.names(), [kpool_tower::DB, kpool_tower::REDIS]);
    let db = pools.get::<kpool_postgres::Manager>("db").unwrap();
    assert_eq!((db.config().max_size, db.config().max_idle), (3, Some(2)), "preset, then the override");
    assert!(pools.get::<kpool_redis::Manager>("redis").is_some());
    assert!(pools.get::<kpool_redis::Manager>("db").is_none(), "typed lookup");

    let none = Pools::builder().from_vars(|_| None).build().unwrap();
    assert!(none.names().is_empty());
    let empty = Pools::builder().from_vars(|_| Some(String::new())).build().unwrap();
    assert!(empty.names().is_empty(), "an empty variable counts as unset");

    let bad =
        |name: &str| (name == "DATABASE_URL").then(|| "postgres://user:hunter2@127.0.0.1:notaport/app".to_owned());
    let err = Pools::builder().from_vars(bad).build().unwrap_err();
    assert!(matches!(err, kpool_tower::BuildError::Url { .. }));
    let text = format!("{err} / {:?}", std::error::Error::source(&err));
    assert!(text.starts_with("invalid URL for pool \"db\""), "{text}");
    assert!(!text.contains("hunter2"), "the password does not leak: {text}");
}

#[test]
fn public_types_are_send_and_sync() {
    fn both<T: Send + Sync>() {}
    fn send<T: Send>(_: &T) {}
    both::<Pools>();
    both::<PoolLayer>();
    both::<kpool_tower::PoolService<Router>>();
    both::<kpool_tower::future::ResponseFuture<std::future::Ready<()>>>();
    both::<Conn<Numbers>>();
    both::<PoolOf<Numbers, Second>>();
    both::<ConnRejection>();
    both::<kpool_tower::Health>();
    both::<kpool_tower::BuildError>();
    both::<kpool_tower::ShutdownReport>();
    let (_, pool): (Numbers, NumbersPool) = numbers(1, Duration::from_secs(1));
    let pools = Pools::builder().pool("n", pool).build().unwrap();
    send(&kpool_tower::metrics(pools.clone()));
    send(&kpool_tower::health(pools.clone()));
    send(&pools.check(Duration::from_secs(1)));
    send(&pools.close_timeout(Duration::from_secs(1)));
    send(&kpool_tower::shutdown_signal());
}

#[tokio::test]
async fn the_layer_serves_plain_hyper() {
    use hyper_util::rt::TokioIo;
    use hyper_util::service::TowerToHyperService;
    use tower::Layer;
    let (_, pool) = numbers(1, Duration::from_secs(5));
    let pools = Pools::builder().pool("numbers", pool.clone()).build().unwrap();
    let inner = tower::service_fn(|req: http::Request<hyper::body::Incoming>| async move {
        let pool = req.extensions().get::<Pools>().unwrap().get::<Numbers>("numbers").unwrap();
        let conn = pool.get().await.unwrap();
        Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(axum::body::Bytes::from(
            format!("hyper {}", *conn),
        ))))
    });
    let service = TowerToHyperService::new(PoolLayer::new(pools).layer(inner));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        for _ in 0..2 {
            let (stream, _) = listener.accept().await.unwrap();
            let service = service.clone();
            tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service));
        }
    });
    let client = Client::new();
    for _ in 0..2 {
        let reply = client.get(&format!("http://{addr}/")).await;
        assert_eq!((reply.status, reply.body.as_str()), (200, "hyper 0"));
    }
    assert_eq!(pool.status().pool.in_use, 0);
    server.abort();
}

#[tokio::test]
async fn a_request_dropped_while_waiting_leaks_nothing() {
    let (_, pool) = numbers(1, Duration::from_secs(30));
    let pools = Pools::builder().pool("numbers", pool.clone()).build().unwrap();
    let app = app(&pools);
    let held = pool.get().await.unwrap();
    // A client that gives up (or a timeout layer) drops the request while
    // its extractor waits in the pool's line.
    let waiting = tokio::time::timeout(Duration::from_millis(100), oneshot(&app, "/n")).await;
    assert!(waiting.is_err(), "it was waiting");
    assert_eq!(pool.status().pool.waiting, 0, "it left the line");
    drop(held);
    let reply = oneshot(&app, "/n").await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "0"));
    let status = pool.status().pool;
    assert_eq!((status.total, status.in_use, status.idle), (1, 0, 1), "{status}");
}

#[tokio::test]
async fn health_says_busy_when_every_connection_stays_checked_out() {
    let (_, pool) = numbers(1, Duration::from_secs(30));
    let pools =
        Pools::builder().pool("numbers", pool.clone()).health_timeout(Duration::from_millis(200)).build().unwrap();
    let held = pool.get().await.unwrap();
    let reply = oneshot(&app(&pools), "/health").await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (503, r#"{"status":"fail","failing":["numbers"],"pools":{"numbers":"busy"}}"#)
    );
    drop(held);
    assert_eq!(oneshot(&app(&pools), "/health").await.status, 200);
}

#[tokio::test]
async fn an_optional_connection_is_none_when_the_pool_cannot_serve() {
    async fn maybe(conn: Option<Conn<Numbers>>) -> String {
        conn.map_or("without".to_owned(), |c| format!("with {}", *c))
    }
    async fn maybe_missing(conn: Option<Conn<Numbers, Missing>>) -> &'static str {
        if conn.is_some() { "some" } else { "none" }
    }
    let (_, pool) = numbers(1, Duration::from_millis(100));
    let pools = Pools::builder().pool("numbers", pool.clone()).build().unwrap();
    let app = Router::new()
        .route("/maybe", get(maybe))
        .route("/missing", get(maybe_missing))
        .layer(PoolLayer::new(pools.clone()));
    assert_eq!(oneshot(&app, "/maybe").await.body, "with 0");
    let held = pool.get().await.unwrap();
    let reply = oneshot(&app, "/maybe").await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "without"), "exhausted: the handler went on without");
    drop(held);
    pools.registry().close("numbers");
    let reply = oneshot(&app, "/maybe").await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "without"), "closed: the handler went on without");
    assert_eq!(oneshot(&app, "/missing").await.status, 500, "a missing pool is a bug, not an outage");
}

#[tokio::test]
async fn pools_of_a_shared_registry_are_served_measured_checked_and_closed() {
    struct Legacy;
    impl PoolName for Legacy {
        const NAME: Option<&'static str> = Some("legacy");
    }
    async fn legacy(conn: Conn<Numbers, Legacy>) -> String {
        conn.to_string()
    }
    let registry = Arc::new(kpool::Registry::new());
    let (_, legacy_pool) = numbers(1, Duration::from_secs(5));
    registry.insert("legacy", legacy_pool.clone()).unwrap();
    let (_, pool) = numbers(1, Duration::from_secs(5));
    let pools = Pools::builder().registry(registry.clone()).pool("numbers", pool).build().unwrap();
    assert_eq!(pools.names(), ["legacy", "numbers"]);
    assert_eq!(registry.names(), ["legacy", "numbers"], "added to the shared registry");
    let app = app(&pools).route("/legacy", get(legacy)).layer(PoolLayer::new(pools.clone()));
    assert_eq!(oneshot(&app, "/legacy").await.body, "0", "found by name in the registry");
    let samples = parse_prometheus(&oneshot(&app, "/metrics").await.body);
    assert_eq!(sample(&samples, "kpool_connections_acquired_total", "legacy"), Some(1.0));
    assert_eq!(oneshot(&app, "/health").await.status, 200);
    assert_eq!(pools.close_timeout(Duration::from_secs(1)).await, 0);
    assert!(legacy_pool.is_closed(), "closed with the others");
    let reply = oneshot(&app, "/health").await;
    assert_eq!(
        reply.body,
        r#"{"status":"fail","failing":["legacy","numbers"],"pools":{"legacy":"closed","numbers":"closed"}}"#
    );
}
