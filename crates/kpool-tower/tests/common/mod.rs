//! Shared by the test binaries: a mock manager, a real server on a loopback
//! port, an HTTP client, and a Prometheus text checker.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use kpool_tower::{Pools, ShutdownReport};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A manager whose connections are numbers (the count of creates so far).
/// `fail` makes `create` fail; `dead` makes `check_alive` say dead.
#[derive(Clone, Default)]
pub struct Numbers {
    pub made: Arc<AtomicU32>,
    pub fail: Arc<AtomicBool>,
    pub dead: Arc<AtomicBool>,
}

impl kpool::Manager for Numbers {
    type Endpoint = ();
    type Connection = u32;
    type Error = std::io::Error;

    async fn create(&self, _: &()) -> Result<u32, std::io::Error> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "secret backend detail"));
        }
        Ok(self.made.fetch_add(1, Ordering::SeqCst))
    }

    async fn check_alive(&self, _: &(), _: &mut u32) -> Result<bool, std::io::Error> {
        Ok(!self.dead.load(Ordering::SeqCst))
    }

    fn is_transient(&self, _: &std::io::Error) -> bool {
        false
    }
}

pub type NumbersPool = kpool::Pool<Numbers>;

/// A pool of `max` numbers with a short acquire timeout.
pub fn numbers(max: usize, acquire: Duration) -> (Numbers, NumbersPool) {
    let manager = Numbers::default();
    let pool = kpool::Pool::builder(manager.clone())
        .max_size(max)
        .min_idle(0)
        .acquire_timeout(Some(acquire))
        .retry_limit(0)
        .build()
        .unwrap();
    (manager, pool)
}

/// A server on 127.0.0.1:0 running [`kpool_tower::serve`]; stop it with
/// [`Server::stop`].
pub struct Server {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<ShutdownReport>>,
}

impl Server {
    pub async fn start(app: Router, pools: Pools) -> Server {
        Self::start_with_drain(app, pools, Duration::from_secs(10)).await
    }

    pub async fn start_with_drain(app: Router, pools: Pools, drain: Duration) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let signal = async move {
            let _ = stopped.await;
        };
        let task = tokio::spawn(kpool_tower::serve(listener, app, pools, signal, drain));
        Server { addr, stop: Some(stop), task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Sends the shutdown signal and waits for `serve` to return.
    pub async fn stop(mut self) -> ShutdownReport {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(30), &mut self.task)
            .await
            .expect("serve returns after the signal")
            .unwrap()
            .unwrap()
    }
}

/// An HTTP/1 client.
#[derive(Clone)]
pub struct Client(HyperClient<HttpConnector, Empty<Bytes>>);

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl Client {
    pub fn new() -> Client {
        Client(HyperClient::builder(TokioExecutor::new()).build_http())
    }

    pub async fn get(&self, url: &str) -> Reply {
        let response = tokio::time::timeout(Duration::from_secs(30), self.0.get(url.parse().unwrap()))
            .await
            .expect("a response within 30 s")
            .unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Reply { status, headers, body: String::from_utf8(body.to_vec()).unwrap() }
    }
}

/// Calls `app` once, without a server.
pub async fn oneshot(app: &Router, path: &str) -> Reply {
    use tower::ServiceExt;
    let request = http::Request::get(path).body(Body::empty()).unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), 1 << 24).await.unwrap();
    Reply { status, headers, body: String::from_utf8(body.to_vec()).unwrap() }
}

/// A Prometheus sample: name, labels, value.
pub type Sample = (String, Vec<(String, String)>, f64);

/// Checks every line of a Prometheus text exposition: comments are
/// `# HELP name text` or `# TYPE name kind`; samples are
/// `name{label="value",...} number` with a known family. Returns the
/// samples as (name, labels, value).
pub fn parse_prometheus(text: &str) -> Vec<Sample> {
    let mut families = Vec::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (kind, name) = (parts.next().unwrap(), parts.next().expect("a metric name"));
            assert!(kind == "HELP" || kind == "TYPE", "comment {line:?}");
            assert!(valid_name(name), "name in {line:?}");
            if kind == "TYPE" {
                let t = parts.next().expect("a type");
                assert!(["counter", "gauge", "summary", "histogram", "untyped"].contains(&t), "type in {line:?}");
                families.push(name.to_owned());
            }
            continue;
        }
        let open = line.find('{').unwrap_or_else(|| panic!("labels in {line:?}"));
        let close = line.rfind('}').unwrap_or_else(|| panic!("labels in {line:?}"));
        let name = &line[..open];
        assert!(valid_name(name), "name in {line:?}");
        assert!(
            families
                .iter()
                .any(|f| name == f || name.strip_prefix(f.as_str()).is_some_and(|s| s == "_sum" || s == "_count")),
            "{name} has a TYPE line before it"
        );
        let labels = parse_labels(&line[open + 1..close]).unwrap_or_else(|| panic!("labels in {line:?}"));
        let value =
            line[close + 1..].strip_prefix(' ').unwrap_or_else(|| panic!("one space before the value: {line:?}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("value in {line:?}")),
        };
        samples.push((name.to_owned(), labels, value));
    }
    samples
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn parse_labels(mut s: &str) -> Option<Vec<(String, String)>> {
    let mut labels = Vec::new();
    while !s.is_empty() {
        let eq = s.find('=')?;
        let key = &s[..eq];
        if !valid_name(key) {
            return None;
        }
        let rest = s[eq + 1..].strip_prefix('"')?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next()? {
                (i, '"') => break i,
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    c @ ('\\' | '"') => value.push(c),
                    _ => return None,
                },
                (_, c) => value.push(c),
            }
        };
        labels.push((key.to_owned(), value));
        s = &rest[end + 1..];
        s = s.strip_prefix(',').unwrap_or(s);
    }
    Some(labels)
}

/// The value of the sample `name` with the label `pool="<pool>"` and no
/// `endpoint` label.
pub fn sample(samples: &[Sample], name: &str, pool: &str) -> Option<f64> {
    samples
        .iter()
        .find(|(n, labels, _)| {
            n == name
                && labels.iter().any(|(k, v)| k == "pool" && v == pool)
                && !labels.iter().any(|(k, _)| k == "endpoint" || k == "reason" || k == "quantile")
        })
        .map(|(_, _, v)| *v)
}
