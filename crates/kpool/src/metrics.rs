//! What the pool measures about itself, and how it reports it.
//!
//! Recording is always on and lock-free: each endpoint has relaxed atomic
//! counters, and each pool has log-linear atomic histograms (acquire wait,
//! usage, creation). Histograms are per endpoint too with
//! [`Config::endpoint_histograms`](crate::Config::endpoint_histograms).
//! Reading never blocks the pool: [`MetricsSnapshot`] sums the atomics while
//! the pool keeps serving. Exports: `Display` (a summary a person can read),
//! [`MetricsSnapshot::to_prometheus`] (text exposition with HikariCP-like
//! names), JSON through serde (feature `serde`), the `metrics` crate facade
//! (feature `metrics`).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::Status;

/// Why a connection left the pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
#[non_exhaustive]
pub enum DisposeReason {
    /// Idle past `idle_timeout`, or returned while `max_idle` were idle.
    Idle,
    /// Past `max_lifetime`.
    Lifetime,
    /// Failed its health check.
    Dead,
    /// Marked broken by its user or by `Manager::is_broken`.
    Broken,
    /// Evicted to make room under `total_max_size`.
    Evicted,
    /// The pool was closed.
    Closed,
    /// Returned while the endpoint was above `max_size` (burst shrink).
    Burst,
}

impl DisposeReason {
    /// Every reason, in a fixed order.
    pub const ALL: [DisposeReason; 7] = [
        DisposeReason::Idle,
        DisposeReason::Lifetime,
        DisposeReason::Dead,
        DisposeReason::Broken,
        DisposeReason::Evicted,
        DisposeReason::Closed,
        DisposeReason::Burst,
    ];

    /// A short lowercase name, for labels and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            DisposeReason::Idle => "idle",
            DisposeReason::Lifetime => "lifetime",
            DisposeReason::Dead => "dead",
            DisposeReason::Broken => "broken",
            DisposeReason::Evicted => "evicted",
            DisposeReason::Closed => "closed",
            DisposeReason::Burst => "burst",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Counters since the pool was built (or last [reset](crate::Pool::reset_metrics)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct CounterSnapshot {
    /// Acquire calls that completed: `acquired + timeouts + errors` (derived,
    /// so the hot path counts one thing less).
    pub requests: u64,
    /// Acquires that returned a connection.
    pub acquired: u64,
    /// Acquires that timed out (not also counted in `errors`).
    pub timeouts: u64,
    /// Acquires that failed for another reason than a timeout.
    pub errors: u64,
    /// Connections created.
    pub created: u64,
    /// `create` calls that failed, timed out or panicked.
    pub create_failures: u64,
    /// Connections disposed, by reason (indexed like [`DisposeReason::ALL`]).
    pub disposed: [u64; 7],
    /// Reused connections found dead by `check_alive`.
    pub dead_found: u64,
    /// `on_release` hooks that failed.
    pub release_errors: u64,
    /// `dispose` calls that failed, timed out or panicked.
    pub dispose_errors: u64,
    /// Connections taken out of the pool for good.
    pub detached: u64,
    /// Connections held past the leak detection threshold.
    pub leaks: u64,
}

impl CounterSnapshot {
    /// Disposals for one reason.
    pub fn disposed(&self, reason: DisposeReason) -> u64 {
        self.disposed[reason.index()]
    }

    /// Disposals for all reasons.
    pub fn disposed_total(&self) -> u64 {
        self.disposed.iter().sum()
    }

    pub(crate) fn add(&mut self, o: &CounterSnapshot) {
        self.requests += o.requests;
        self.acquired += o.acquired;
        self.timeouts += o.timeouts;
        self.errors += o.errors;
        self.created += o.created;
        self.create_failures += o.create_failures;
        for (a, b) in self.disposed.iter_mut().zip(o.disposed) {
            *a += b;
        }
        self.dead_found += o.dead_found;
        self.release_errors += o.release_errors;
        self.dispose_errors += o.dispose_errors;
        self.detached += o.detached;
        self.leaks += o.leaks;
    }
}

/// One endpoint's counters (relaxed atomics).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) acquired: AtomicU64,
    pub(crate) timeouts: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) created: AtomicU64,
    pub(crate) create_failures: AtomicU64,
    disposed: [AtomicU64; 7],
    pub(crate) dead_found: AtomicU64,
    pub(crate) release_errors: AtomicU64,
    pub(crate) dispose_errors: AtomicU64,
    pub(crate) detached: AtomicU64,
    pub(crate) leaks: AtomicU64,
}

/// Adds one to a counter.
pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Relaxed);
}

impl Counters {
    pub(crate) fn disposed(&self, reason: DisposeReason) {
        bump(&self.disposed[reason.index()]);
    }

    fn all(&self) -> impl Iterator<Item = &AtomicU64> {
        [
            &self.acquired,
            &self.timeouts,
            &self.errors,
            &self.created,
            &self.create_failures,
            &self.dead_found,
            &self.release_errors,
            &self.dispose_errors,
            &self.detached,
            &self.leaks,
        ]
        .into_iter()
        .chain(self.disposed.iter())
    }

    pub(crate) fn reset(&self) {
        self.all().for_each(|c| c.store(0, Relaxed));
    }

    pub(crate) fn snapshot(&self) -> CounterSnapshot {
        let get = |c: &AtomicU64| c.load(Relaxed);
        CounterSnapshot {
            requests: get(&self.acquired) + get(&self.timeouts) + get(&self.errors),
            acquired: get(&self.acquired),
            timeouts: get(&self.timeouts),
            errors: get(&self.errors),
            created: get(&self.created),
            create_failures: get(&self.create_failures),
            disposed: std::array::from_fn(|i| get(&self.disposed[i])),
            dead_found: get(&self.dead_found),
            release_errors: get(&self.release_errors),
            dispose_errors: get(&self.dispose_errors),
            detached: get(&self.detached),
            leaks: get(&self.leaks),
        }
    }
}

/// Sub-buckets per power of two: values are kept within 1/8 (12.5%).
const SUB: u32 = 8;
const SUB_BITS: u32 = 3;
/// Buckets: exact below 8 ns, then 8 per power of two up to 2^41 ns (~37 min).
const BUCKETS: usize = (SUB + (41 - SUB_BITS) * SUB) as usize;

fn bucket(ns: u64) -> usize {
    if ns < u64::from(SUB) {
        return ns as usize;
    }
    let p = 63 - ns.leading_zeros(); // ns in [2^p, 2^(p+1))
    let sub = (ns >> (p - SUB_BITS)) as u32 & (SUB - 1);
    (((p - SUB_BITS + 1) * SUB + sub) as usize).min(BUCKETS - 1)
}

/// The smallest value of a bucket.
fn bucket_floor(i: usize) -> u64 {
    let i = i as u32;
    if i < SUB {
        return u64::from(i);
    }
    let p = i / SUB - 1 + SUB_BITS;
    let sub = u64::from(i % SUB);
    (1u64 << p) + (sub << (p - SUB_BITS))
}

/// A lock-free latency histogram (nanoseconds, log-linear buckets).
///
/// Split into stripes: each thread records into one, picked by a per-thread
/// index, so workers on different cores do not fight over the same cache
/// lines (one shared set of counters cost up to a tenth of a contended
/// acquire); a snapshot adds the stripes up. A stripe is allocated on the
/// first record that lands in it.
#[derive(Debug, Default)]
pub(crate) struct Histogram {
    stripes: [std::sync::OnceLock<Box<Stripe>>; STRIPES],
    /// Metrics switched off (`Config::metrics`).
    off: std::sync::atomic::AtomicBool,
}

/// Stripes per histogram.
const STRIPES: usize = 8;

/// One stripe's counts, aligned so that two stripes never share a line.
#[derive(Debug)]
#[repr(align(128))]
struct Stripe {
    sum: AtomicU64,
    max: AtomicU64,
    buckets: [AtomicU64; BUCKETS],
}

/// This thread's stripe: threads take stripes round robin.
fn stripe_index() -> usize {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    thread_local! {
        static INDEX: usize = NEXT.fetch_add(1, Relaxed) % STRIPES;
    }
    INDEX.with(|i| *i)
}

impl Histogram {
    pub(crate) fn record(&self, d: Duration) {
        if self.off.load(Relaxed) {
            return;
        }
        let stripe = self.stripes[stripe_index()].get_or_init(|| {
            Box::new(Stripe {
                sum: AtomicU64::new(0),
                max: AtomicU64::new(0),
                buckets: [const { AtomicU64::new(0) }; BUCKETS],
            })
        });
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        stripe.buckets[bucket(ns)].fetch_add(1, Relaxed);
        if ns == 0 {
            return; // zero waits add no sum and no max
        }
        stripe.sum.fetch_add(ns, Relaxed);
        if ns > stripe.max.load(Relaxed) {
            stripe.max.fetch_max(ns, Relaxed);
        }
    }

    fn used(&self) -> impl Iterator<Item = &Stripe> {
        self.stripes.iter().filter_map(|s| s.get().map(|b| &**b))
    }

    fn reset(&self) {
        for s in self.used() {
            s.buckets.iter().chain([&s.sum, &s.max]).for_each(|c| c.store(0, Relaxed));
        }
    }

    fn snapshot(&self) -> HistogramSnapshot {
        let mut s = HistogramSnapshot { buckets: vec![0; BUCKETS], ..HistogramSnapshot::default() };
        for stripe in self.used() {
            for (total, b) in s.buckets.iter_mut().zip(&stripe.buckets) {
                *total += b.load(Relaxed);
            }
            s.sum_ns += stripe.sum.load(Relaxed);
            s.max_ns = s.max_ns.max(stripe.max.load(Relaxed));
        }
        s.refresh();
        s
    }
}

/// A histogram read at one moment: count, mean, max and percentiles.
#[derive(Clone, Debug, Default, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct HistogramSnapshot {
    /// Values recorded.
    pub count: u64,
    /// Mean.
    pub mean: Duration,
    /// Median (within 12.5%).
    pub p50: Duration,
    /// 90th percentile (within 12.5%).
    pub p90: Duration,
    /// 99th percentile (within 12.5%).
    pub p99: Duration,
    /// Largest value (exact).
    pub max: Duration,
    #[cfg_attr(feature = "serde", serde(skip))]
    buckets: Vec<u64>,
    #[cfg_attr(feature = "serde", serde(skip))]
    sum_ns: u64,
    #[cfg_attr(feature = "serde", serde(skip))]
    max_ns: u64,
}

impl HistogramSnapshot {
    /// The value at quantile `q` (0.0..=1.0), within 12.5%; never above `max`.
    pub fn quantile(&self, q: f64) -> Duration {
        let total: u64 = self.buckets.iter().sum();
        if total == 0 {
            return Duration::ZERO;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                // Midpoint of the bucket, capped by the exact maximum.
                let lo = bucket_floor(i);
                let hi = if i + 1 < BUCKETS { bucket_floor(i + 1) } else { lo };
                return Duration::from_nanos((lo + (hi - lo) / 2).min(self.max_ns));
            }
        }
        Duration::from_nanos(self.max_ns)
    }

    fn refresh(&mut self) {
        self.count = self.buckets.iter().sum();
        self.mean = Duration::from_nanos(self.sum_ns.checked_div(self.count).unwrap_or(0));
        self.p50 = self.quantile(0.50);
        self.p90 = self.quantile(0.90);
        self.p99 = self.quantile(0.99);
        self.max = Duration::from_nanos(self.max_ns);
    }

    /// Adds `n` zero values (the fast path's waits, which are not recorded).
    fn add_zeros(&mut self, n: u64) {
        if n == 0 {
            return;
        }
        if self.buckets.is_empty() {
            self.buckets = vec![0; BUCKETS];
        }
        self.buckets[0] += n;
        self.refresh();
    }

    fn merge(&mut self, o: &HistogramSnapshot) {
        if self.buckets.is_empty() {
            self.buckets = vec![0; BUCKETS];
        }
        for (a, b) in self.buckets.iter_mut().zip(&o.buckets) {
            *a += b;
        }
        self.sum_ns += o.sum_ns;
        self.max_ns = self.max_ns.max(o.max_ns);
        self.refresh();
    }
}

/// The three latency histograms.
#[derive(Debug, Default)]
pub(crate) struct Histograms {
    pub(crate) acquire: Histogram,
    pub(crate) usage: Histogram,
    pub(crate) creation: Histogram,
}

impl Histograms {
    /// Histograms that record only when `on`.
    pub(crate) fn new(on: bool) -> Self {
        let h = Self::default();
        for x in [&h.acquire, &h.usage, &h.creation] {
            x.off.store(!on, Relaxed);
        }
        h
    }
}

impl Histograms {
    pub(crate) fn reset(&self) {
        self.acquire.reset();
        self.usage.reset();
        self.creation.reset();
    }
}

/// Everything recorded for one endpoint: its counters, and the histograms it
/// records into (its own, or the pool's shared ones).
#[derive(Debug)]
pub(crate) struct Stats {
    pub(crate) counters: Counters,
    pub(crate) hist: std::sync::Arc<Histograms>,
    pub(crate) own_hist: bool,
    /// `Config::metrics`.
    on: bool,
}

impl Stats {
    pub(crate) fn new(pool_hist: &std::sync::Arc<Histograms>, own: bool, on: bool) -> Self {
        let hist = if own { std::sync::Arc::new(Histograms::new(on)) } else { pool_hist.clone() };
        Self { counters: Counters::default(), hist, own_hist: own, on }
    }

    /// Counts a successful acquire (skipped with metrics off).
    pub(crate) fn acquired(&self) {
        if self.on {
            bump(&self.counters.acquired);
        }
    }

    pub(crate) fn reset(&self) {
        self.counters.reset();
        if self.own_hist {
            self.hist.reset();
        }
    }
}

/// Metrics of one endpoint or of the whole pool.
#[derive(Clone, Debug, Default, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Metrics {
    /// Gauges: total, idle, in use, creating, waiting, max, min.
    pub status: Status,
    /// The most connections in use at one time since the pool was built or
    /// its metrics were reset (`status.in_use` is the value now).
    pub peak_in_use: usize,
    /// The most callers waiting at one time, likewise.
    pub peak_waiting: usize,
    /// Counters.
    pub counters: CounterSnapshot,
    /// Time from asking for a connection to getting it.
    pub acquire_wait: HistogramSnapshot,
    /// Time connections were held by their users.
    pub usage: HistogramSnapshot,
    /// Time `create` took (successful creates).
    pub creation: HistogramSnapshot,
}

impl Metrics {
    /// In use / total (0 when the pool is empty).
    pub fn utilization(&self) -> f64 {
        ratio(self.status.in_use as u64, self.status.total as u64)
    }

    /// (errors + timeouts) / requests.
    pub fn error_rate(&self) -> f64 {
        ratio(self.counters.errors + self.counters.timeouts, self.counters.requests)
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// A consistent-enough picture of a pool: gauges from one lock of the core,
/// counters and histograms read from atomics right after.
#[derive(Clone, Debug, Default, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct MetricsSnapshot {
    /// The whole pool.
    pub pool: Metrics,
    /// Per endpoint, labelled with the endpoint's `Debug` form (quotes of
    /// string keys removed). Histograms are filled only with
    /// `endpoint_histograms`.
    pub endpoints: Vec<(String, Metrics)>,
    /// Whether the pool was closed.
    pub closed: bool,
}

/// A label for an endpoint key: its `Debug` form, with a string key's quotes
/// and escapes undone (`"db-1"` labels as `db-1`).
pub(crate) fn label<K: fmt::Debug>(k: &K) -> String {
    let s = format!("{k:?}");
    match s.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        Some(inner) => {
            let mut out = String::with_capacity(inner.len());
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                match (c, chars.clone().next()) {
                    ('\\', Some(n @ ('"' | '\\' | '\''))) => {
                        out.push(n);
                        chars.next();
                    }
                    _ => out.push(c),
                }
            }
            out
        }
        None => s,
    }
}

pub(crate) struct EndpointReading {
    pub(crate) label: String,
    pub(crate) status: Status,
    pub(crate) peaks: crate::core::Peaks,
    pub(crate) counters: CounterSnapshot,
    pub(crate) hist: Option<[HistogramSnapshot; 3]>,
}

pub(crate) fn snapshot(
    pool_status: Status,
    peaks: crate::core::Peaks,
    closed: bool,
    eps: Vec<EndpointReading>,
    pool_hist: &Histograms,
) -> MetricsSnapshot {
    let mut pool =
        Metrics { status: pool_status, peak_in_use: peaks.in_use, peak_waiting: peaks.waiting, ..Metrics::default() };
    let mut shared = [pool_hist.acquire.snapshot(), pool_hist.usage.snapshot(), pool_hist.creation.snapshot()];
    let mut endpoints = Vec::with_capacity(eps.len());
    for ep in eps {
        pool.counters.add(&ep.counters);
        let mut m = Metrics {
            status: ep.status,
            peak_in_use: ep.peaks.in_use,
            peak_waiting: ep.peaks.waiting,
            counters: ep.counters,
            ..Metrics::default()
        };
        if let Some([mut a, u, c]) = ep.hist {
            a.add_zeros(ep.counters.acquired.saturating_sub(a.count));
            shared[0].merge(&a);
            shared[1].merge(&u);
            shared[2].merge(&c);
            (m.acquire_wait, m.usage, m.creation) = (a, u, c);
        }
        endpoints.push((ep.label, m));
    }
    let [mut a, u, c] = shared;
    a.add_zeros(pool.counters.acquired.saturating_sub(a.count));
    (pool.acquire_wait, pool.usage, pool.creation) = (a, u, c);
    MetricsSnapshot { pool, endpoints, closed }
}

pub(crate) fn read_hist(h: &Histograms) -> [HistogramSnapshot; 3] {
    [h.acquire.snapshot(), h.usage.snapshot(), h.creation.snapshot()]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

impl fmt::Display for MetricsSnapshot {
    /// A summary to read at a glance.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.pool;
        let (s, c) = (&p.status, &p.counters);
        writeln!(f, "=== kpool metrics{} ===", if self.closed { " (closed)" } else { "" })?;
        writeln!(
            f,
            "connections  total {} (max {}), idle {}, in use {}, creating {}, waiting {}",
            s.total,
            if s.max == usize::MAX { "unbounded".to_owned() } else { s.max.to_string() },
            s.idle,
            s.in_use,
            s.creating,
            s.waiting
        )?;
        writeln!(f, "peaks        in use {}, waiting {}", p.peak_in_use, p.peak_waiting)?;
        writeln!(
            f,
            "requests     {} acquired, {} timeouts, {} errors of {} ({:.2}% error rate), utilization {:.1}%",
            c.acquired,
            c.timeouts,
            c.errors,
            c.requests,
            p.error_rate() * 100.0,
            p.utilization() * 100.0
        )?;
        let reasons: Vec<String> = DisposeReason::ALL
            .iter()
            .filter(|r| c.disposed(**r) > 0)
            .map(|r| format!("{} {}", r.as_str(), c.disposed(*r)))
            .collect();
        writeln!(
            f,
            "lifecycle    {} created ({} failed), {} disposed{}, {} dead on check, {} leaks",
            c.created,
            c.create_failures,
            c.disposed_total(),
            if reasons.is_empty() { String::new() } else { format!(" ({})", reasons.join(", ")) },
            c.dead_found,
            c.leaks
        )?;
        for (name, h) in [("acquire wait", &p.acquire_wait), ("usage", &p.usage), ("creation", &p.creation)] {
            writeln!(
                f,
                "{name:<12} p50 {}  p90 {}  p99 {}  max {}  (n={})",
                ms(h.p50),
                ms(h.p90),
                ms(h.p99),
                ms(h.max),
                h.count
            )?;
        }
        if self.endpoints.len() > 1 {
            writeln!(f, "endpoints:")?;
            for (name, m) in &self.endpoints {
                let s = &m.status;
                writeln!(
                    f,
                    "  {name:<20} total {:>3}  idle {:>3}  in use {:>3}  waiting {:>3}  acquired {:>8}  timeouts {}",
                    s.total, s.idle, s.in_use, s.waiting, m.counters.acquired, m.counters.timeouts
                )?;
            }
        }
        Ok(())
    }
}

impl MetricsSnapshot {
    /// Prometheus text exposition (version 0.0.4) with a `pool` label, an
    /// `endpoint` label on per-endpoint series, and HikariCP's names under a
    /// `kpool_` prefix (`kpool_connections_active`, `_idle`, `_pending`,
    /// `_timeout_total`, `_acquire_seconds`, `_usage_seconds`,
    /// `_creation_seconds`, ...).
    pub fn to_prometheus(&self, pool: &str) -> String {
        let mut out = String::new();
        write_prometheus(&mut out, &[(pool, self)]);
        out
    }

    /// JSON (feature `serde`).
    ///
    /// # Panics
    ///
    /// Never: the snapshot always serializes.
    #[cfg(feature = "serde")]
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a snapshot always serializes")
    }

    /// Sets `metrics` crate gauges (feature `metrics`) named like the
    /// Prometheus series, labelled with `pool` and `endpoint`. Call it
    /// periodically (for example from a timer task) to feed any `metrics`
    /// exporter.
    #[cfg(feature = "metrics")]
    pub fn record_to_metrics(&self, pool: &str) {
        let mut series = Vec::new();
        collect_series(&mut series, pool, self);
        for s in series {
            let mut labels = vec![metrics::Label::new("pool", pool.to_owned())];
            // Summary parts (`_sum`, `_count`) are marked by an empty label key.
            let mut name = s.name.to_owned();
            for (k, v) in s.labels {
                if k.is_empty() {
                    name = format!("{name}_{v}");
                } else {
                    labels.push(metrics::Label::new(k, v));
                }
            }
            metrics::gauge!(name, labels).set(s.value);
        }
    }
}

struct Series {
    name: &'static str,
    labels: Vec<(&'static str, String)>,
    value: f64,
}

const HELP: &[(&str, &str, &str)] = &[
    ("kpool_connections", "gauge", "Connections that exist or are being created."),
    ("kpool_connections_idle", "gauge", "Idle connections."),
    ("kpool_connections_active", "gauge", "Connections in use."),
    ("kpool_connections_creating", "gauge", "Connections being created."),
    ("kpool_connections_pending", "gauge", "Callers waiting for a connection."),
    ("kpool_connections_active_peak", "gauge", "Most connections in use at once (since build or reset)."),
    ("kpool_connections_pending_peak", "gauge", "Most callers waiting at once (since build or reset)."),
    ("kpool_connections_max", "gauge", "Maximum connections."),
    ("kpool_connections_min", "gauge", "Minimum idle connections."),
    ("kpool_connections_requests_total", "counter", "Acquire calls completed."),
    ("kpool_connections_acquired_total", "counter", "Acquires that returned a connection."),
    ("kpool_connections_timeout_total", "counter", "Acquires that timed out."),
    ("kpool_connections_errors_total", "counter", "Acquires that failed otherwise."),
    ("kpool_connections_created_total", "counter", "Connections created."),
    ("kpool_connections_create_failures_total", "counter", "Failed creates."),
    ("kpool_connections_disposed_total", "counter", "Connections disposed, by reason."),
    ("kpool_connections_dead_total", "counter", "Connections found dead on check."),
    ("kpool_connections_leaks_total", "counter", "Connections held past the leak threshold."),
    ("kpool_connections_acquire_seconds", "summary", "Time to acquire a connection."),
    ("kpool_connections_usage_seconds", "summary", "Time connections were held."),
    ("kpool_connections_creation_seconds", "summary", "Time to create a connection."),
];

fn collect_series(out: &mut Vec<Series>, _pool: &str, snap: &MetricsSnapshot) {
    let mut add =
        |name: &'static str, labels: Vec<(&'static str, String)>, value: f64| out.push(Series { name, labels, value });
    let scopes: Vec<(Option<&str>, &Metrics)> =
        std::iter::once((None, &snap.pool)).chain(snap.endpoints.iter().map(|(l, m)| (Some(l.as_str()), m))).collect();
    for (ep, m) in scopes {
        let base: Vec<(&'static str, String)> = ep.map(|e| vec![("endpoint", e.to_owned())]).unwrap_or_default();
        let s = &m.status;
        let c = &m.counters;
        let max = if s.max == usize::MAX { f64::INFINITY } else { s.max as f64 };
        for (name, v) in [
            ("kpool_connections", s.total as f64),
            ("kpool_connections_idle", s.idle as f64),
            ("kpool_connections_active", s.in_use as f64),
            ("kpool_connections_creating", s.creating as f64),
            ("kpool_connections_pending", s.waiting as f64),
            ("kpool_connections_active_peak", m.peak_in_use as f64),
            ("kpool_connections_pending_peak", m.peak_waiting as f64),
            ("kpool_connections_max", max),
            ("kpool_connections_min", s.min as f64),
            ("kpool_connections_requests_total", c.requests as f64),
            ("kpool_connections_acquired_total", c.acquired as f64),
            ("kpool_connections_timeout_total", c.timeouts as f64),
            ("kpool_connections_errors_total", c.errors as f64),
            ("kpool_connections_created_total", c.created as f64),
            ("kpool_connections_create_failures_total", c.create_failures as f64),
            ("kpool_connections_dead_total", c.dead_found as f64),
            ("kpool_connections_leaks_total", c.leaks as f64),
        ] {
            add(name, base.clone(), v);
        }
        for r in DisposeReason::ALL {
            let mut l = base.clone();
            l.push(("reason", r.as_str().to_owned()));
            add("kpool_connections_disposed_total", l, c.disposed(r) as f64);
        }
        // Pool-level histograms always; endpoint ones when recorded.
        let hists = [
            ("kpool_connections_acquire_seconds", &m.acquire_wait),
            ("kpool_connections_usage_seconds", &m.usage),
            ("kpool_connections_creation_seconds", &m.creation),
        ];
        for (name, h) in hists {
            if ep.is_some() && h.count == 0 {
                continue;
            }
            for (q, v) in [("0.5", h.p50), ("0.9", h.p90), ("0.99", h.p99), ("1", h.max)] {
                let mut l = base.clone();
                l.push(("quantile", q.to_owned()));
                add(name, l, v.as_secs_f64());
            }
            add(name, [base.clone(), vec![("", "sum".to_owned())]].concat(), h.mean.as_secs_f64() * h.count as f64);
            add(name, [base.clone(), vec![("", "count".to_owned())]].concat(), h.count as f64);
        }
    }
}

/// Writes the exposition of several pools (one HELP/TYPE block per family).
pub(crate) fn write_prometheus(out: &mut String, pools: &[(&str, &MetricsSnapshot)]) {
    use std::fmt::Write;
    let mut all: Vec<(String, Series)> = Vec::new();
    for (pool, snap) in pools {
        let mut series = Vec::new();
        collect_series(&mut series, pool, snap);
        all.extend(series.into_iter().map(|s| ((*pool).to_owned(), s)));
    }
    for (family, kind, help) in HELP {
        let _ = writeln!(out, "# HELP {family} {help}");
        let _ = writeln!(out, "# TYPE {family} {kind}");
        for (pool, s) in all.iter().filter(|(_, s)| s.name == *family) {
            // Summary parts `_sum` / `_count` are marked with an empty label key.
            let suffix = s.labels.iter().find(|(k, _)| k.is_empty()).map(|(_, v)| format!("_{v}")).unwrap_or_default();
            let mut labels = vec![format!("pool=\"{}\"", escape(pool))];
            labels
                .extend(s.labels.iter().filter(|(k, _)| !k.is_empty()).map(|(k, v)| format!("{k}=\"{}\"", escape(v))));
            let value = if s.value.is_infinite() { "+Inf".to_owned() } else { format!("{}", s.value) };
            let _ = writeln!(out, "{family}{suffix}{{{}}} {value}", labels.join(","));
        }
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_tight() {
        let mut last = 0;
        for ns in (0..100_000u64).chain([1 << 20, 1 << 30, 123_456_789_012]) {
            let b = bucket(ns);
            assert!(b >= last || ns < 100_000, "monotonic");
            last = b;
            let lo = bucket_floor(b);
            assert!(lo <= ns, "floor {lo} <= {ns}");
            if b + 1 < BUCKETS {
                let hi = bucket_floor(b + 1);
                assert!(ns < hi, "{ns} < next floor {hi}");
                assert!((hi - lo) as f64 <= (lo.max(1) as f64) / 8.0 + 1.0, "bucket width within 12.5%");
            }
        }
    }

    #[test]
    fn quantiles_track_recorded_values() {
        let h = Histogram::default();
        for i in 1..=1000u64 {
            h.record(Duration::from_micros(i));
        }
        let s = h.snapshot();
        assert_eq!(s.count, 1000);
        assert_eq!(s.max, Duration::from_micros(1000));
        let within = |d: Duration, want: u64| {
            let got = d.as_nanos() as f64 / 1000.0;
            (got - want as f64).abs() <= want as f64 * 0.13
        };
        assert!(within(s.p50, 500), "{:?}", s.p50);
        assert!(within(s.p90, 900), "{:?}", s.p90);
        assert!(within(s.p99, 990), "{:?}", s.p99);
        h.reset();
        assert_eq!(h.snapshot().count, 0);
    }

    #[test]
    fn labels_drop_string_quotes() {
        assert_eq!(label(&"db-1"), "db-1");
        assert_eq!(label(&5432u16), "5432");
        assert_eq!(label(&()), "()");
        assert_eq!(label(&"a\"b\\c"), "a\"b\\c");
    }
}
