//! Counters, gauges and histograms against scripted scenarios; exports; leak
//! detection; snapshots under load.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{Fault, Mgr, settle};
use kpool::{DisposeReason, Pool, Pooled};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn builder() -> kpool::Builder<Mgr> {
    Pool::builder(Mgr::new())
        .endpoint("a")
        .max_size(2)
        .min_idle(0)
        .max_idle(None)
        .retry_limit(0)
        .acquire_timeout(Some(ms(500)))
        .validation_bypass(Duration::ZERO)
}

#[tokio::test(start_paused = true)]
async fn every_counter_and_gauge_follows_a_scripted_scenario() {
    let pool = builder().build().unwrap();
    let a = pool.get().await.unwrap(); // created 1
    let mut b = pool.get().await.unwrap(); // created 2
    assert!(pool.get().await.unwrap_err().is_timeout()); // timeout 1
    Pooled::mark_broken(&mut b);
    drop(b); // disposed broken 1
    pool.manager().dead.lock().insert(a.id);
    drop(a);
    let c = pool.get().await.unwrap(); // dead found 1, created 3
    pool.manager().set(|s| s.create = Fault::Fail);
    let _d = pool.get().await.unwrap_err(); // error 1, create failure 1
    let m = pool.metrics();
    let k = m.pool.counters;
    assert_eq!(k.requests, 5);
    assert_eq!(k.acquired, 3);
    assert_eq!(k.timeouts, 1);
    assert_eq!(k.errors, 1);
    assert_eq!(k.created, 3);
    assert_eq!(k.create_failures, 1);
    assert_eq!(k.dead_found, 1);
    assert_eq!(k.disposed(DisposeReason::Broken), 1);
    assert_eq!(k.disposed(DisposeReason::Dead), 1);
    assert_eq!(k.disposed_total(), 2);
    let s = m.pool.status;
    assert_eq!((s.total, s.idle, s.in_use, s.waiting, s.max), (1, 0, 1, 0, usize::MAX));
    assert_eq!(m.endpoints.len(), 1);
    assert_eq!(m.endpoints[0].0, "a");
    assert_eq!(m.endpoints[0].1.counters, k);
    assert!((m.pool.utilization() - 1.0).abs() < 1e-9);
    assert!((m.pool.error_rate() - 2.0 / 5.0).abs() < 1e-9);
    drop(c);
    pool.reset_metrics();
    let after = pool.metrics();
    assert_eq!(after.pool.counters.requests, 0);
    assert_eq!(after.pool.acquire_wait.count, 0);
    assert_eq!(after.pool.status.total, 1, "gauges are live, not reset");
}

#[tokio::test(start_paused = true)]
async fn histograms_measure_injected_delays() {
    let pool = builder().max_size(1).acquire_timeout(Some(Duration::from_secs(5))).build().unwrap();
    pool.manager().set(|s| s.create = Fault::Slow(ms(100)));
    let held = pool.get().await.unwrap();
    let p = pool.clone();
    let waiter = tokio::spawn(async move {
        let c = p.get().await.unwrap();
        tokio::time::sleep(ms(40)).await;
        drop(c);
    });
    settle().await;
    tokio::time::sleep(ms(200)).await;
    drop(held); // held ~200 ms; the waiter waited ~200 ms
    waiter.await.unwrap();
    let m = pool.metrics().pool;
    let near = |d: Duration, want: u64| {
        let got = d.as_secs_f64() * 1e3;
        (got - want as f64).abs() <= want as f64 * 0.13
    };
    assert_eq!(m.creation.count, 1);
    assert!(near(m.creation.max, 100), "creation {:?}", m.creation);
    assert_eq!(m.acquire_wait.count, 2);
    assert!(
        near(m.acquire_wait.max, 200),
        "first acquire waited for the create, the second for the hand-off: {:?}",
        m.acquire_wait
    );
    assert_eq!(m.usage.count, 2);
    assert!(near(m.usage.max, 200), "usage {:?}", m.usage);
    assert!(m.usage.p50 <= m.usage.p90 && m.usage.p90 <= m.usage.p99 && m.usage.p99 <= m.usage.max);
}

#[tokio::test(start_paused = true)]
async fn metrics_can_be_switched_off() {
    let pool = builder().metrics(false).build().unwrap();
    drop(pool.get().await.unwrap());
    let m = pool.metrics().pool;
    assert_eq!((m.counters.requests, m.counters.acquired, m.acquire_wait.count, m.usage.count), (0, 0, 0, 0));
    assert_eq!(m.counters.created, 1, "lifecycle counters stay");
}

#[tokio::test(start_paused = true)]
async fn per_endpoint_histograms_when_asked() {
    let pool = builder().endpoint_histograms(true).build().unwrap();
    drop(pool.get_for(&"x").await.unwrap());
    drop(pool.get_for(&"y").await.unwrap());
    drop(pool.get_for(&"y").await.unwrap());
    let m = pool.metrics();
    let by: BTreeMap<_, _> = m.endpoints.iter().map(|(k, v)| (k.as_str(), v.acquire_wait.count)).collect();
    assert_eq!(by.get("x"), Some(&1));
    assert_eq!(by.get("y"), Some(&2));
    assert_eq!(m.pool.acquire_wait.count, 3, "the pool's histogram merges its endpoints'");
}

/// Parses the exposition back: every sample line is `name{labels} value`,
/// every family has HELP and TYPE before its samples.
fn parse_prometheus(text: &str) -> Vec<(String, BTreeMap<String, String>, f64)> {
    let mut typed = std::collections::HashSet::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            let name = parts.next().unwrap();
            let kind = parts.next().unwrap();
            assert!(["gauge", "counter", "summary"].contains(&kind), "{line}");
            typed.insert(name.to_owned());
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("bad line {line:?}"));
        let value: f64 =
            if value == "+Inf" { f64::INFINITY } else { value.parse().unwrap_or_else(|_| panic!("{line}")) };
        let (name, labels) = series.split_once('{').unwrap_or_else(|| panic!("no labels: {line}"));
        let labels = labels.strip_suffix('}').unwrap();
        let family = name.trim_end_matches("_sum").trim_end_matches("_count");
        assert!(typed.contains(family) || typed.contains(name), "sample before its TYPE: {line}");
        assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "{name}");
        let mut map = BTreeMap::new();
        for pair in labels.split("\",").filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once("=\"").unwrap_or_else(|| panic!("bad label {pair} in {line}"));
            map.insert(k.to_owned(), v.trim_end_matches('"').to_owned());
        }
        samples.push((name.to_owned(), map, value));
    }
    samples
}

#[tokio::test(start_paused = true)]
async fn prometheus_text_parses_back_and_matches_the_snapshot() {
    let pool = builder().build().unwrap();
    let held = pool.get_for(&"db\"1").await.unwrap();
    drop(pool.get_for(&"b").await.unwrap());
    let snap = pool.metrics();
    let text = snap.to_prometheus("main");
    let samples = parse_prometheus(&text);
    let find = |name: &str, ep: Option<&str>| {
        samples
            .iter()
            .find(|(n, l, _)| {
                n == name
                    && l.get("pool").map(String::as_str) == Some("main")
                    && l.get("endpoint").map(String::as_str) == ep
                    && !l.contains_key("quantile")
                    && !l.contains_key("reason")
            })
            .map(|(_, _, v)| *v)
            .unwrap_or_else(|| panic!("missing {name} {ep:?} in\n{text}"))
    };
    assert_eq!(find("kpool_connections", None), 2.0);
    assert_eq!(find("kpool_connections_active", None), 1.0);
    assert_eq!(find("kpool_connections_idle", Some("b")), 1.0);
    assert_eq!(find("kpool_connections_active", Some("db\\\"1")), 1.0, "quotes escaped");
    assert_eq!(find("kpool_connections_acquired_total", None), 2.0);
    assert_eq!(find("kpool_connections_acquire_seconds_count", None), 2.0);
    assert_eq!(find("kpool_connections_max", None), f64::INFINITY);
    let reasons = samples
        .iter()
        .filter(|(n, l, _)| n == "kpool_connections_disposed_total" && !l.contains_key("endpoint"))
        .count();
    assert_eq!(reasons, DisposeReason::ALL.len());
    for family in [
        "kpool_connections_pending",
        "kpool_connections_timeout_total",
        "kpool_connections_usage_seconds",
        "kpool_connections_creation_seconds",
    ] {
        assert!(text.contains(&format!("# TYPE {family} ")), "{family}");
    }
    drop(held);
}

#[test]
fn summary_is_readable() {
    let pool = kpool::blocking::Pool::builder(Mgr::new()).endpoint("a").build().unwrap();
    drop(pool.get().unwrap());
    let text = pool.metrics().to_string();
    assert!(text.starts_with("=== kpool metrics ==="), "{text}");
    for needle in ["connections  total 1", "1 acquired", "1 created", "acquire wait", "usage", "creation"] {
        assert!(text.contains(needle), "{needle:?} in\n{text}");
    }
}

#[test]
fn snapshots_while_eight_threads_hammer_the_pool() {
    let pool = kpool::blocking::Pool::builder(Mgr::new())
        .max_size(4)
        .acquire_timeout(Some(Duration::from_secs(10)))
        .build()
        .unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..8)
        .map(|t| {
            let (pool, stop) = (pool.clone(), stop.clone());
            std::thread::spawn(move || {
                let eps = ["a", "b"];
                let mut n = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    drop(pool.get_for(&eps[t % 2]).unwrap());
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut last = 0;
    for _ in 0..200 {
        let m = pool.metrics();
        let acquired = m.pool.counters.acquired;
        assert!(acquired >= last, "counters only grow");
        assert!(m.pool.status.total <= 8);
        let _ = m.to_prometheus("hammer");
        last = acquired;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let total: u64 = workers.into_iter().map(|w| w.join().unwrap()).sum();
    assert_eq!(pool.metrics().pool.counters.acquired, total);
}

#[tokio::test(start_paused = true)]
async fn leak_is_reported_once_with_its_location_and_its_return_once() {
    let pool = builder().leak_detection(Some(Duration::from_secs(1))).build().unwrap();
    let line = line!() + 1;
    let held = pool.get().await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    settle().await;
    let reports = pool.leak_reports();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!(reports[0].acquired_at.line(), line);
    assert!(reports[0].acquired_at.file().ends_with("metrics.rs"));
    assert!(!reports[0].returned);
    assert!(reports[0].held >= Duration::from_secs(1));
    tokio::time::sleep(Duration::from_secs(3)).await;
    settle().await;
    assert_eq!(pool.leak_reports().len(), 1, "reported once");
    drop(held);
    let reports = pool.leak_reports();
    assert_eq!(reports.len(), 2);
    assert!(reports[1].returned);
    assert_eq!(pool.metrics().pool.counters.leaks, 1);
    // A short checkout is never reported.
    drop(pool.get().await.unwrap());
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(pool.leak_reports().len(), 2);
}

#[cfg(feature = "serde")]
#[tokio::test(start_paused = true)]
async fn json_round_trips() {
    let pool = builder().build().unwrap();
    drop(pool.get().await.unwrap());
    let snap = pool.metrics();
    let json = snap.to_json();
    let back: kpool::MetricsSnapshot = serde_json::from_str(&json).unwrap();
    assert_eq!(back.pool.counters, snap.pool.counters);
    assert_eq!(back.pool.status, snap.pool.status);
    assert_eq!(back.pool.acquire_wait.count, snap.pool.acquire_wait.count);
    assert_eq!(back.pool.usage.p99, snap.pool.usage.p99);
    assert_eq!(back.endpoints.len(), 1);
    assert!(json.contains("\"acquired\": 1"), "{json}");
}

#[cfg(feature = "metrics")]
mod facade {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use metrics::{Counter, Gauge, GaugeFn, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};

    /// Records the last value set on each gauge, by name and labels.
    #[derive(Default, Clone)]
    struct Capture(Arc<Mutex<BTreeMap<String, f64>>>);

    struct Slot(Arc<Mutex<BTreeMap<String, f64>>>, String);

    impl GaugeFn for Slot {
        fn increment(&self, v: f64) {
            *self.0.lock().unwrap().entry(self.1.clone()).or_default() += v;
        }
        fn decrement(&self, v: f64) {
            *self.0.lock().unwrap().entry(self.1.clone()).or_default() -= v;
        }
        fn set(&self, v: f64) {
            self.0.lock().unwrap().insert(self.1.clone(), v);
        }
    }

    impl Recorder for Capture {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, _: &Key, _: &Metadata<'_>) -> Counter {
            Counter::noop()
        }
        fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
            let labels: Vec<String> = key.labels().map(|l| format!("{}={}", l.key(), l.value())).collect();
            Gauge::from_arc(Arc::new(Slot(self.0.clone(), format!("{}{{{}}}", key.name(), labels.join(",")))))
        }
        fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::noop()
        }
    }

    #[tokio::test]
    async fn snapshot_feeds_the_metrics_facade() {
        let pool = super::builder().build().unwrap();
        let held = pool.get().await.unwrap();
        drop(pool.get_for(&"b").await.unwrap());
        let capture = Capture::default();
        metrics::with_local_recorder(&capture, || pool.metrics().record_to_metrics("main"));
        let seen = capture.0.lock().unwrap();
        assert_eq!(seen.get("kpool_connections_active{pool=main}"), Some(&1.0), "{seen:#?}");
        assert_eq!(seen.get("kpool_connections{pool=main}"), Some(&2.0));
        assert_eq!(seen.get("kpool_connections_idle{pool=main,endpoint=b}"), Some(&1.0));
        assert_eq!(seen.get("kpool_connections_acquired_total{pool=main}"), Some(&2.0));
        assert_eq!(seen.get("kpool_connections_acquire_seconds_count{pool=main}"), Some(&2.0));
        assert!(seen.keys().all(|k| !k.contains("=sum") && !k.contains("=count")), "no marker labels");
        drop(held);
    }
}

/// High-water marks: the most in use and waiting at once, per endpoint and
/// for the pool, kept after the load is gone and brought down by a reset.
#[tokio::test(start_paused = true)]
async fn peaks_record_the_most_in_use_and_waiting_at_once() {
    let pool = builder().endpoint("a").max_size(2).build().unwrap();
    let (a1, a2) = (pool.get().await.unwrap(), pool.get().await.unwrap());
    let b = pool.get_for(&"b").await.unwrap();
    // Three callers queue at "a"; the timeouts take them out again.
    let (r1, r2, r3) = tokio::join!(pool.get(), pool.get(), pool.get());
    assert!(r1.is_err() && r2.is_err() && r3.is_err());
    drop((a1, a2, b));
    let m = pool.metrics();
    assert_eq!((m.pool.status.in_use, m.pool.status.waiting), (0, 0));
    assert_eq!((m.pool.peak_in_use, m.pool.peak_waiting), (3, 3));
    let ep = |name: &str| m.endpoints.iter().find(|(l, _)| l == name).unwrap().1.clone();
    assert_eq!((ep("a").peak_in_use, ep("a").peak_waiting), (2, 3));
    assert_eq!((ep("b").peak_in_use, ep("b").peak_waiting), (1, 0));
    assert!(m.to_string().contains("peaks        in use 3, waiting 3"), "{m}");
    let text = m.to_prometheus("db");
    assert!(text.contains("kpool_connections_active_peak{pool=\"db\"} 3"), "{text}");
    assert!(text.contains("kpool_connections_pending_peak{pool=\"db\",endpoint=\"a\"} 3"), "{text}");
    let held = pool.get().await.unwrap();
    pool.reset_metrics();
    let m = pool.metrics();
    assert_eq!((m.pool.peak_in_use, m.pool.peak_waiting), (1, 0), "a reset starts from the values now");
    drop(held);
    pool.assert_invariants();
}
