//! The figures of a bench run (serialized as the JSON report) and their text form.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use hdrhistogram::Histogram;
use kpool::{Config, DisposeReason};
use serde::Serialize;

use crate::bench::{Outcome, SAMPLE_EVERY};
use crate::cli::Mode;
use crate::server::{Faults, ServerStats};

/// The run's settings, as `bench` knows them.
pub(crate) struct RunInfo<'a> {
    pub(crate) target: String,
    pub(crate) server: Option<(Faults, &'a ServerStats)>,
    pub(crate) mode: Mode,
    pub(crate) preset: &'static str,
    pub(crate) config: &'a Config,
    pub(crate) endpoints: u16,
    pub(crate) warm: bool,
    pub(crate) tasks: u32,
    pub(crate) duration: Duration,
    pub(crate) hold: Duration,
    pub(crate) rate: Option<f64>,
}

/// Every figure of a run. Times are in milliseconds unless the name says otherwise.
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    pub(crate) tool: String,
    pub(crate) target: String,
    pub(crate) server: Option<ServerFigures>,
    pub(crate) mode: &'static str,
    pub(crate) pool: PoolSettings,
    pub(crate) load: LoadSettings,
    pub(crate) elapsed_s: f64,
    /// Operations that completed: acquire, round trip, release.
    pub(crate) ops: u64,
    pub(crate) throughput_ops_per_s: f64,
    /// Client-side time from calling `get` to holding a connection, for every successful acquire.
    pub(crate) acquire_wait_ms: Percentiles,
    /// The operation on the connection (echo, `SELECT 1`, `PING`).
    pub(crate) round_trip_ms: Percentiles,
    /// Time to open a connection, from the pool's own creation histogram.
    pub(crate) connect_ms: Percentiles,
    /// Ctrl-C stopped the run before `load.duration_s`.
    pub(crate) interrupted: bool,
    pub(crate) timeouts: u64,
    pub(crate) acquire_errors: u64,
    pub(crate) op_errors: u64,
    /// Distinct error messages, most frequent first.
    pub(crate) errors: Vec<ErrorCount>,
    /// The pool's own counters (`pool.counters()`) when the load stopped.
    pub(crate) pool_counters: PoolCounters,
    /// Per pool endpoint (`--endpoints`), from the pool's per-endpoint counters.
    pub(crate) endpoints: Vec<EndpointFigures>,
    pub(crate) peak: Peak,
    pub(crate) sizing: Sizing,
    /// Length of a time slice of `timeline`.
    pub(crate) timeline_interval_ms: f64,
    /// Per time slice, for charts.
    pub(crate) timeline: Vec<SliceFigures>,
    /// The pool's status sampled every 10 ms; on long runs each point is the
    /// maximum over `period_ms`.
    pub(crate) samples: Samples,
    /// Acquire wait distribution in log-spaced buckets.
    pub(crate) wait_histogram: Vec<Bucket>,
}

#[derive(Debug, Serialize)]
pub(crate) struct ServerFigures {
    pub(crate) latency_ms: f64,
    pub(crate) drop_rate: f64,
    pub(crate) accepted: u64,
    pub(crate) echoed: u64,
    pub(crate) dropped: u64,
}

#[derive(Debug, Serialize)]
pub(crate) struct PoolSettings {
    pub(crate) preset: &'static str,
    pub(crate) max_size: usize,
    pub(crate) min_idle: usize,
    pub(crate) max_idle: Option<usize>,
    pub(crate) burst_limit: Option<usize>,
    pub(crate) total_max_size: Option<usize>,
    pub(crate) acquire_timeout_ms: Option<f64>,
    pub(crate) idle_timeout_s: Option<f64>,
    pub(crate) max_lifetime_s: Option<f64>,
    pub(crate) retry_limit: u32,
    pub(crate) validate_on_acquire: bool,
    pub(crate) endpoints: u16,
    pub(crate) warm: bool,
}

#[derive(Debug, Serialize)]
pub(crate) struct LoadSettings {
    pub(crate) tasks: u32,
    pub(crate) duration_s: f64,
    pub(crate) hold_ms: f64,
    pub(crate) rate_ops_per_s: Option<f64>,
}

#[derive(Clone, Copy, Debug, Default, Serialize)]
pub(crate) struct Percentiles {
    pub(crate) count: u64,
    pub(crate) mean: f64,
    pub(crate) p50: f64,
    pub(crate) p90: f64,
    pub(crate) p99: f64,
    pub(crate) p999: f64,
    pub(crate) max: f64,
}

impl Percentiles {
    /// From a histogram of nanoseconds, in milliseconds.
    fn of(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        let ms = |ns: u64| ns as f64 / 1e6;
        let max = h.max();
        // Each percentile is at least the previous one and at most the max,
        // whatever the histogram's bucket rounding.
        let p50 = h.value_at_quantile(0.50).min(max);
        let p90 = h.value_at_quantile(0.90).clamp(p50, max);
        let p99 = h.value_at_quantile(0.99).clamp(p90, max);
        let p999 = h.value_at_quantile(0.999).clamp(p99, max);
        Percentiles {
            count: h.len(),
            mean: h.mean() / 1e6,
            p50: ms(p50),
            p90: ms(p90),
            p99: ms(p99),
            p999: ms(p999),
            max: ms(max),
        }
    }
}

impl Percentiles {
    /// From one of the pool's own histograms (no p99.9 there: it reads as the max).
    fn of_snapshot(h: &kpool::HistogramSnapshot) -> Percentiles {
        Percentiles {
            count: h.count,
            mean: ms(h.mean),
            p50: ms(h.p50),
            p90: ms(h.p90.max(h.p50)),
            p99: ms(h.p99.max(h.p90).max(h.p50)),
            p999: ms(h.max),
            max: ms(h.max),
        }
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct ErrorCount {
    pub(crate) message: String,
    pub(crate) count: u64,
}

#[derive(Debug, Serialize)]
pub(crate) struct PoolCounters {
    pub(crate) requests: u64,
    pub(crate) acquired: u64,
    pub(crate) timeouts: u64,
    pub(crate) errors: u64,
    pub(crate) created: u64,
    pub(crate) create_failures: u64,
    pub(crate) disposed: u64,
    pub(crate) disposed_by_reason: BTreeMap<&'static str, u64>,
    pub(crate) dead_found: u64,
    pub(crate) dispose_errors: u64,
}

#[derive(Debug, Serialize)]
pub(crate) struct EndpointFigures {
    /// The shard number (0-based) the load used for this endpoint.
    pub(crate) endpoint: String,
    pub(crate) acquired: u64,
    pub(crate) timeouts: u64,
    pub(crate) errors: u64,
    pub(crate) created: u64,
    pub(crate) disposed: u64,
}

#[derive(Debug, Serialize)]
pub(crate) struct Peak {
    /// Connections in use, whole pool.
    pub(crate) in_use: usize,
    /// Connections in use on the busiest endpoint.
    pub(crate) endpoint_in_use: usize,
    pub(crate) idle: usize,
    pub(crate) waiting: usize,
    pub(crate) total: usize,
}

/// The sizing hint and how it was found.
#[derive(Debug, Serialize)]
pub(crate) struct Sizing {
    /// The smallest per-endpoint max size that would have served 99% of the
    /// samples without anyone waiting.
    pub(crate) suggested_max_size: usize,
    /// The configured per-endpoint cap (`burst_limit` if set, else `max_size`).
    pub(crate) configured: usize,
    /// Demand reached the cap: callers waited, and the hint is a lower bound.
    pub(crate) saturated: bool,
    pub(crate) demand_p50: usize,
    pub(crate) demand_p99: usize,
    pub(crate) demand_peak: usize,
    pub(crate) in_use_p99: usize,
    /// Share of samples in which somebody waited.
    pub(crate) waiting_share: f64,
    pub(crate) samples: usize,
    pub(crate) rule: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct SliceFigures {
    /// End of the slice, seconds from the start.
    pub(crate) t_s: f64,
    pub(crate) ops: u64,
    pub(crate) ops_per_s: f64,
    pub(crate) wait_p50_ms: f64,
    pub(crate) wait_p90_ms: f64,
    pub(crate) wait_p99_ms: f64,
    pub(crate) wait_max_ms: f64,
    pub(crate) timeouts: u64,
    pub(crate) errors: u64,
}

#[derive(Debug, Serialize)]
pub(crate) struct Samples {
    pub(crate) period_ms: f64,
    pub(crate) t_s: Vec<f64>,
    pub(crate) in_use: Vec<usize>,
    pub(crate) idle: Vec<usize>,
    pub(crate) waiting: Vec<usize>,
    pub(crate) total: Vec<usize>,
}

#[derive(Debug, Serialize)]
pub(crate) struct Bucket {
    pub(crate) from_ms: f64,
    pub(crate) to_ms: f64,
    pub(crate) count: u64,
}

/// Most points per series in the report's status samples.
const MAX_POINTS: usize = 2000;

const SIZING_RULE: &str = "demand = connections in use + being created + callers waiting on the busiest endpoint, \
sampled every 10 ms; the hint is its 99th percentile: the smallest max size with which 99% of the samples \
would have had nobody waiting";

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Nearest-rank percentile of sorted values.
fn rank(sorted: &[usize], q: f64) -> usize {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[i - 1]
}

impl Report {
    pub(crate) fn new(info: &RunInfo<'_>, out: &Outcome) -> Report {
        let c = info.config;
        let t = &out.total;
        let mut errors: Vec<ErrorCount> =
            t.messages.iter().map(|(m, n)| ErrorCount { message: m.clone(), count: *n }).collect();
        errors.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.message.cmp(&b.message)));

        let k = &out.counters;
        let pool_counters = PoolCounters {
            requests: k.requests,
            acquired: k.acquired,
            timeouts: k.timeouts,
            errors: k.errors,
            created: k.created,
            create_failures: k.create_failures,
            disposed: k.disposed_total(),
            disposed_by_reason: DisposeReason::ALL.iter().map(|r| (r.as_str(), k.disposed(*r))).collect(),
            dead_found: k.dead_found,
            dispose_errors: k.dispose_errors,
        };

        let endpoints = out
            .endpoints
            .iter()
            .map(|(label, c)| EndpointFigures {
                endpoint: shard_of(label),
                acquired: c.acquired,
                timeouts: c.timeouts,
                errors: c.errors,
                created: c.created,
                disposed: c.disposed_total(),
            })
            .collect();

        let views = out.samples.iter().map(|s| s.view);
        // In use and waiting from the pool's own high-water marks (a sample
        // every 10 ms can miss a spike); the rest from the samples.
        let (peak_in_use, peak_waiting) = out.peaks;
        let peak = Peak {
            in_use: views.clone().map(|v| v.pool.in_use).max().unwrap_or(0).max(peak_in_use),
            endpoint_in_use: views.clone().map(|v| v.endpoint_in_use).max().unwrap_or(0),
            idle: views.clone().map(|v| v.pool.idle).max().unwrap_or(0),
            waiting: views.clone().map(|v| v.pool.waiting).max().unwrap_or(0).max(peak_waiting),
            total: views.clone().map(|v| v.pool.total).max().unwrap_or(0),
        };

        let mut demand: Vec<usize> = views.clone().map(|v| v.demand).collect();
        demand.sort_unstable();
        let mut in_use: Vec<usize> = views.clone().map(|v| v.endpoint_in_use).collect();
        in_use.sort_unstable();
        let configured = c.burst_limit.unwrap_or(c.max_size);
        let demand_p99 = rank(&demand, 0.99);
        let waited = views.clone().filter(|v| v.pool.waiting > 0).count();
        let sizing = Sizing {
            suggested_max_size: demand_p99.max(1),
            configured,
            saturated: demand_p99 > configured,
            demand_p50: rank(&demand, 0.5),
            demand_p99,
            demand_peak: demand.last().copied().unwrap_or(0),
            in_use_p99: rank(&in_use, 0.99),
            waiting_share: if demand.is_empty() { 0.0 } else { waited as f64 / demand.len() as f64 },
            samples: demand.len(),
            rule: SIZING_RULE.into(),
        };

        let timeline = out
            .slices
            .iter()
            .map(|s| {
                let p = Percentiles::of(&s.figures.wait);
                let len = s.len.as_secs_f64();
                SliceFigures {
                    t_s: s.end.as_secs_f64(),
                    ops: s.figures.ok,
                    ops_per_s: if len > 0.0 { s.figures.ok as f64 / len } else { 0.0 },
                    wait_p50_ms: p.p50,
                    wait_p90_ms: p.p90,
                    wait_p99_ms: p.p99,
                    wait_max_ms: p.max,
                    timeouts: s.figures.timeouts,
                    errors: s.figures.acquire_errors + s.figures.op_errors,
                }
            })
            .collect();

        // Long runs: at most MAX_POINTS points per series, each the maximum
        // of the 10 ms samples it stands for (so peaks stay visible).
        let chunk = out.samples.len().div_ceil(MAX_POINTS).max(1);
        let pick = |f: fn(&crate::bench::View) -> usize| -> Vec<usize> {
            out.samples.chunks(chunk).map(|c| c.iter().map(|s| f(&s.view)).max().unwrap_or(0)).collect()
        };
        let samples = Samples {
            period_ms: ms(SAMPLE_EVERY) * chunk as f64,
            t_s: out
                .samples
                .chunks(chunk)
                .map(|c| c.last().map_or(0.0, |s| (s.at.as_secs_f64() * 1e3).round() / 1e3))
                .collect(),
            in_use: pick(|v| v.pool.in_use),
            idle: pick(|v| v.pool.idle),
            waiting: pick(|v| v.pool.waiting),
            total: pick(|v| v.pool.total),
        };

        let secs = out.elapsed.as_secs_f64();
        Report {
            tool: format!("kpool {}", env!("CARGO_PKG_VERSION")),
            target: info.target.clone(),
            server: info.server.map(|(f, s)| ServerFigures {
                latency_ms: ms(f.latency),
                drop_rate: f.drop_rate,
                accepted: s.accepted.load(Relaxed),
                echoed: s.echoed.load(Relaxed),
                dropped: s.dropped.load(Relaxed),
            }),
            mode: info.mode.as_str(),
            pool: PoolSettings {
                preset: info.preset,
                max_size: c.max_size,
                min_idle: c.min_idle,
                max_idle: c.max_idle,
                burst_limit: c.burst_limit,
                total_max_size: c.total_max_size,
                acquire_timeout_ms: c.acquire_timeout.map(ms),
                idle_timeout_s: c.idle_timeout.map(|d| d.as_secs_f64()),
                max_lifetime_s: c.max_lifetime.map(|d| d.as_secs_f64()),
                retry_limit: c.retry_limit,
                validate_on_acquire: c.validate_on_acquire,
                endpoints: info.endpoints,
                warm: info.warm,
            },
            load: LoadSettings {
                tasks: info.tasks,
                duration_s: info.duration.as_secs_f64(),
                hold_ms: ms(info.hold),
                rate_ops_per_s: info.rate,
            },
            elapsed_s: secs,
            ops: t.ok,
            throughput_ops_per_s: if secs > 0.0 { t.ok as f64 / secs } else { 0.0 },
            acquire_wait_ms: Percentiles::of(&t.wait),
            round_trip_ms: Percentiles::of(&t.op),
            connect_ms: Percentiles::of_snapshot(&out.connect),
            interrupted: out.interrupted,
            timeouts: t.timeouts,
            acquire_errors: t.acquire_errors,
            op_errors: t.op_errors,
            errors,
            pool_counters,
            endpoints,
            peak,
            sizing,
            timeline_interval_ms: ms(out.interval),
            timeline,
            samples,
            wait_histogram: buckets(&t.wait),
        }
    }

    /// The report as text for a terminal.
    pub(crate) fn text(&self) -> String {
        let mut s = String::new();
        let p = &self.pool;
        let l = &self.load;
        let _ = writeln!(s, "kpool bench: {}", self.target);
        if let Some(srv) = &self.server {
            if srv.latency_ms > 0.0 || srv.drop_rate > 0.0 {
                let _ = writeln!(s, "  server faults: {} latency, drop rate {}", fmt_ms(srv.latency_ms), srv.drop_rate);
            }
        }
        let rate = l.rate_ops_per_s.map_or(String::new(), |r| format!(", at most {} ops/s", fmt_count(r as u64)));
        let hold = if l.hold_ms > 0.0 { format!(", hold {}", fmt_ms(l.hold_ms)) } else { String::new() };
        let _ = writeln!(
            s,
            "  load: {} {} for {:.1} s{hold}{rate}",
            l.tasks,
            if self.mode == "blocking" { "threads" } else { "tasks" },
            l.duration_s
        );
        let mut pool = format!("  pool: {} preset, max size {}, min idle {}", p.preset, p.max_size, p.min_idle);
        if let Some(b) = p.burst_limit {
            let _ = write!(pool, ", burst {b}");
        }
        if let Some(t) = p.total_max_size {
            let _ = write!(pool, ", total max {t}");
        }
        if p.endpoints > 1 {
            let _ = write!(pool, ", {} endpoints", p.endpoints);
        }
        if p.warm {
            pool.push_str(", warmed up");
        }
        let _ = writeln!(s, "{pool}, {} mode", self.mode);
        if self.interrupted {
            let _ = writeln!(s, "  interrupted by Ctrl-C after {:.2} s", self.elapsed_s);
        }
        let _ = writeln!(s);

        let row = |s: &mut String, name: &str, value: String| {
            let _ = writeln!(s, "  {name:<16}{value}");
        };
        row(
            &mut s,
            "throughput",
            format!(
                "{} ops/s  ({} ops in {:.2} s)",
                fmt_count(self.throughput_ops_per_s.round() as u64),
                fmt_count(self.ops),
                self.elapsed_s
            ),
        );
        let w = &self.acquire_wait_ms;
        row(
            &mut s,
            "acquire wait",
            format!("p50 {}  p90 {}  p99 {}  max {}", fmt_ms(w.p50), fmt_ms(w.p90), fmt_ms(w.p99), fmt_ms(w.max)),
        );
        let r = &self.round_trip_ms;
        row(
            &mut s,
            "round trip",
            format!("p50 {}  p90 {}  p99 {}  max {}", fmt_ms(r.p50), fmt_ms(r.p90), fmt_ms(r.p99), fmt_ms(r.max)),
        );
        let c = &self.connect_ms;
        if c.count > 0 {
            row(
                &mut s,
                "connect",
                format!("p50 {}  p99 {}  max {}  ({} connects)", fmt_ms(c.p50), fmt_ms(c.p99), fmt_ms(c.max), c.count),
            );
        }
        row(&mut s, "timeouts", fmt_count(self.timeouts));
        row(
            &mut s,
            "errors",
            format!("{} acquiring, {} on a connection", fmt_count(self.acquire_errors), fmt_count(self.op_errors)),
        );
        for e in self.errors.iter().take(5) {
            let _ = writeln!(s, "  {:<16}{} x {}", "", fmt_count(e.count), e.message);
        }
        let k = &self.pool_counters;
        let reasons: Vec<String> =
            k.disposed_by_reason.iter().filter(|(_, n)| **n > 0).map(|(r, n)| format!("{r} {n}")).collect();
        let reasons = if reasons.is_empty() { String::new() } else { format!(" ({})", reasons.join(", ")) };
        row(&mut s, "connections", format!("created {}, disposed {}{reasons}", k.created, k.disposed));
        if k.create_failures > 0 || k.dead_found > 0 {
            row(&mut s, "", format!("{} failed connects, {} found dead on check", k.create_failures, k.dead_found));
        }
        if self.endpoints.len() > 1 {
            let spread = |f: fn(&EndpointFigures) -> u64| {
                let v = self.endpoints.iter().map(f);
                (v.clone().min().unwrap_or(0), v.max().unwrap_or(0))
            };
            let (a0, a1) = spread(|e| e.acquired);
            let (c0, c1) = spread(|e| e.created);
            row(
                &mut s,
                "per endpoint",
                format!(
                    "{} endpoints: acquired {} to {}, created {c0} to {c1}",
                    self.endpoints.len(),
                    fmt_count(a0),
                    fmt_count(a1)
                ),
            );
        }
        let pk = &self.peak;
        row(
            &mut s,
            "peak",
            format!(
                "in use {} (of {} {}{}), waiting {}, total {}",
                pk.endpoint_in_use,
                if p.burst_limit.is_some() { "burst limit" } else { "max size" },
                self.sizing.configured,
                if p.endpoints > 1 { " per endpoint" } else { "" },
                pk.waiting,
                pk.total
            ),
        );
        let z = &self.sizing;
        let hint = if z.saturated {
            format!(
                "max size {} or more: demand reached {} (p99) against {}, so callers waited in {:.0}% of samples",
                z.suggested_max_size,
                z.demand_p99,
                z.configured,
                z.waiting_share * 100.0
            )
        } else if z.suggested_max_size < z.configured {
            format!(
                "max size {} would have served this load without waiting (configured {}, peak demand {})",
                z.suggested_max_size, z.configured, z.demand_peak
            )
        } else {
            format!("max size {} fits: demand reached {} (p99), peak {}", z.configured, z.demand_p99, z.demand_peak)
        };
        row(&mut s, "sizing hint", hint);
        let _ = writeln!(
            s,
            "  {:<16}(demand = in use + being created + waiting on the busiest endpoint, sampled every 10 ms;",
            ""
        );
        let _ = writeln!(s, "  {:<16} the hint is its 99th percentile)", "");
        s
    }
}

/// The shard number from an endpoint label such as `(2, Socket(127.0.0.1:80))`.
fn shard_of(label: &str) -> String {
    label.strip_prefix('(').and_then(|rest| rest.split(',').next()).unwrap_or(label).to_owned()
}

/// Log-spaced buckets (four per decade) from the smallest to the largest wait.
fn buckets(h: &Histogram<u64>) -> Vec<Bucket> {
    if h.is_empty() {
        return Vec::new();
    }
    let index = |ns: u64| ((ns.max(1) as f64).log10() * 4.0).floor() as i64;
    let (lo, hi) = (index(h.min()), index(h.max()));
    let mut counts = vec![0u64; (hi - lo + 1) as usize];
    for v in h.iter_recorded() {
        let i = (index(v.value_iterated_to()) - lo).clamp(0, hi - lo) as usize;
        counts[i] += v.count_at_value();
    }
    let edge = |i: i64| 10f64.powf(i as f64 / 4.0) / 1e6;
    counts
        .into_iter()
        .enumerate()
        .map(|(i, count)| {
            let i = lo + i as i64;
            Bucket { from_ms: edge(i), to_ms: edge(i + 1), count }
        })
        .collect()
}

/// A time in milliseconds, with precision suited to its size.
pub(crate) fn fmt_ms(ms: f64) -> String {
    if ms == 0.0 {
        "0 ms".into()
    } else if ms < 0.01 {
        format!("{:.1} µs", ms * 1e3)
    } else if ms < 1.0 {
        format!("{:.3} ms", ms)
    } else if ms < 100.0 {
        format!("{:.2} ms", ms)
    } else {
        format!("{:.0} ms", ms)
    }
}

/// An integer with thousands separators.
pub(crate) fn fmt_count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(fmt_count(0), "0");
        assert_eq!(fmt_count(1234567), "1,234,567");
        assert_eq!(fmt_ms(0.0012), "1.2 µs");
        assert_eq!(fmt_ms(0.25), "0.250 ms");
        assert_eq!(fmt_ms(12.345), "12.35 ms");
    }

    #[test]
    fn shard_labels() {
        assert_eq!(shard_of("(2, Socket(127.0.0.1:80))"), "2");
        assert_eq!(shard_of("(0, ())"), "0");
        assert_eq!(shard_of("other"), "other");
    }

    #[test]
    fn nearest_rank() {
        let v: Vec<usize> = (1..=100).collect();
        assert_eq!(rank(&v, 0.99), 99);
        assert_eq!(rank(&v, 0.5), 50);
        assert_eq!(rank(&[7], 0.99), 7);
        assert_eq!(rank(&[], 0.99), 0);
    }

    fn outcome(in_use: impl Fn(usize) -> usize, n: usize) -> Outcome {
        use crate::bench::{Figures, Sample, View};
        let samples = (0..n)
            .map(|i| Sample {
                at: SAMPLE_EVERY * i as u32,
                view: View {
                    pool: kpool::Status { in_use: in_use(i), ..Default::default() },
                    demand: in_use(i),
                    endpoint_in_use: in_use(i),
                },
            })
            .collect();
        Outcome {
            elapsed: SAMPLE_EVERY * n as u32,
            total: Figures::new(),
            slices: Vec::new(),
            samples,
            counters: kpool::CounterSnapshot::default(),
            connect: kpool::HistogramSnapshot::default(),
            endpoints: Vec::new(),
            peaks: (0, 0),
            interval: Duration::from_millis(50),
            interrupted: false,
        }
    }

    fn info(config: &Config) -> RunInfo<'_> {
        RunInfo {
            target: "test".into(),
            server: None,
            mode: Mode::Async,
            preset: "default",
            config,
            endpoints: 1,
            warm: false,
            tasks: 8,
            duration: Duration::from_secs(1),
            hold: Duration::ZERO,
            rate: None,
        }
    }

    #[test]
    fn long_runs_keep_peaks_in_fewer_points() {
        let config = Config::default();
        // One spike to 9 in 5000 samples of 3.
        let r = Report::new(&info(&config), &outcome(|i| if i == 4321 { 9 } else { 3 }, 5000));
        assert!(r.samples.t_s.len() <= MAX_POINTS);
        assert_eq!(r.samples.in_use.len(), r.samples.t_s.len());
        assert_eq!(r.samples.in_use.iter().max(), Some(&9), "the spike survives downsampling");
        assert_eq!(r.samples.period_ms, 30.0);
        assert_eq!(r.peak.in_use, 9);
        assert_eq!(r.sizing.demand_p99, 3, "one spike is not the 99th percentile");
        assert_eq!(r.sizing.suggested_max_size, 3);
        assert!(!r.sizing.saturated);
    }

    #[test]
    fn the_pools_own_peaks_win_over_samples_that_missed_a_spike() {
        let config = Config::default();
        let mut out = outcome(|_| 3, 100);
        out.peaks = (7, 4); // a spike between two samples
        let r = Report::new(&info(&config), &out);
        assert_eq!((r.peak.in_use, r.peak.waiting), (7, 4));
        out.peaks = (2, 0); // never below what a sample saw
        assert_eq!(Report::new(&info(&config), &out).peak.in_use, 3);
    }

    #[test]
    fn sizing_hint_is_the_99th_percentile_of_demand() {
        let config = Config::default(); // max size 10
        let r = Report::new(&info(&config), &outcome(|i| if i % 10 == 0 { 14 } else { 6 }, 1000));
        assert_eq!(r.sizing.demand_p99, 14, "10% of samples at 14");
        assert!(r.sizing.saturated);
        assert_eq!(r.sizing.demand_p50, 6);
        assert!(r.text().contains("max size 14 or more"), "{}", r.text());
    }

    #[test]
    fn percentiles_are_ordered_and_buckets_count_everything() {
        let mut h = Histogram::<u64>::new(2).unwrap();
        for v in [500u64, 800, 1_000, 20_000, 3_000_000, 3_000_000, 90_000_000] {
            h.record(v).unwrap();
        }
        let p = Percentiles::of(&h);
        assert!(p.p50 <= p.p90 && p.p90 <= p.p99 && p.p99 <= p.p999 && p.p999 <= p.max, "{p:?}");
        let b = buckets(&h);
        assert_eq!(b.iter().map(|b| b.count).sum::<u64>(), 7);
        assert!(b.windows(2).all(|w| (w[0].to_ms - w[1].from_ms).abs() < 1e-12));
    }
}
