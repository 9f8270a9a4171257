//! The HTML report: one self-contained page (no network access needed) with
//! the summary and three charts drawn as inline SVG by this module.
//!
//! A small inline script checks, in the browser, that each chart laid out
//! something visible, sets `data-rendered` on `<body>` to the number of charts
//! drawn, and writes any script error or empty chart into `#errors` — which
//! is what the browser test looks at.

use std::fmt::Write;

use crate::report::{Report, fmt_count, fmt_ms};

const W: f64 = 1040.0;
const H: f64 = 300.0;
const LEFT: f64 = 78.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 34.0;
const BOTTOM: f64 = 44.0;

const BLUE: &str = "#2563eb";
const GREEN: &str = "#16a34a";
const ORANGE: &str = "#ea580c";
const RED: &str = "#dc2626";
const GREY: &str = "#6b7280";

/// Escapes text for HTML element content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// How values map onto the vertical axis.
#[derive(Clone, Copy)]
enum Scale {
    Linear {
        max: f64,
    },
    /// log10, between two powers of ten.
    Log {
        lo: f64,
        hi: f64,
    },
}

impl Scale {
    /// 0 at the bottom of the plot, 1 at the top.
    fn frac(self, v: f64) -> f64 {
        match self {
            Scale::Linear { max } => v / max,
            Scale::Log { lo, hi } => (v.max(lo).log10() - lo.log10()) / (hi.log10() - lo.log10()),
        }
    }

    fn ticks(self) -> Vec<f64> {
        match self {
            Scale::Linear { max } => {
                let step = nice_step(max / 5.0);
                (0..).map(|i| i as f64 * step).take_while(|v| *v <= max * 1.0001).collect()
            }
            Scale::Log { lo, hi } => {
                let (a, b) = (lo.log10().round() as i32, hi.log10().round() as i32);
                (a..=b).map(|e| 10f64.powi(e)).collect()
            }
        }
    }
}

/// 1, 2 or 5 times a power of ten, at least `raw`.
fn nice_step(raw: f64) -> f64 {
    if raw <= 0.0 || !raw.is_finite() {
        return 1.0;
    }
    let p = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0].into_iter().map(|m| m * p).find(|s| *s >= raw).unwrap_or(10.0 * p)
}

/// A linear axis top a little above `top`, on a round step.
fn linear_top(top: f64) -> f64 {
    let step = nice_step(top.max(1.0) * 1.1 / 5.0);
    ((top.max(1.0) * 1.1) / step).ceil() * step
}

/// A power of ten (in milliseconds) as a short label: 10 ms, 1 ms, 0.1 ms, 10 µs.
fn decade_label(ms: f64) -> String {
    if ms >= 1.0 {
        format!("{ms:.0} ms")
    } else if ms >= 0.1 {
        format!("{ms:.1} ms")
    } else if ms >= 0.001 {
        format!("{:.0} µs", ms * 1e3)
    } else {
        format!("{:.1} µs", ms * 1e3)
    }
}

/// A plot area with an x range and a y scale.
struct Plot {
    x0: f64,
    x1: f64,
    y: Scale,
}

impl Plot {
    fn px(&self, x: f64) -> f64 {
        let span = if self.x1 > self.x0 { self.x1 - self.x0 } else { 1.0 };
        LEFT + (x - self.x0) / span * (W - LEFT - RIGHT)
    }

    fn py(&self, y: f64) -> f64 {
        TOP + (1.0 - self.y.frac(y).clamp(0.0, 1.0)) * (H - TOP - BOTTOM)
    }

    /// Gridlines, tick labels and axis titles.
    fn axes(&self, svg: &mut String, x_title: &str, y_title: &str, y_label: impl Fn(f64) -> String) {
        let (bottom, right) = (H - BOTTOM, W - RIGHT);
        for v in self.y.ticks() {
            let y = self.py(v);
            let _ = write!(
                svg,
                r##"<line class="grid" x1="{LEFT}" y1="{y:.1}" x2="{right}" y2="{y:.1}"/><text class="tick" x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
                LEFT - 6.0,
                y + 4.0,
                esc(&y_label(v))
            );
        }
        let step = nice_step((self.x1 - self.x0) / 8.0);
        let mut x = (self.x0 / step).ceil() * step;
        while x <= self.x1 + 1e-9 {
            let px = self.px(x);
            let label = if step < 1.0 { format!("{x:.1}") } else { format!("{x:.0}") };
            let _ = write!(
                svg,
                r##"<line class="tickmark" x1="{px:.1}" y1="{bottom}" x2="{px:.1}" y2="{:.1}"/><text class="tick" x="{px:.1}" y="{:.1}" text-anchor="middle">{label}</text>"##,
                bottom + 5.0,
                bottom + 18.0
            );
            x += step;
        }
        let _ = write!(
            svg,
            r##"<line class="axis" x1="{LEFT}" y1="{bottom}" x2="{right}" y2="{bottom}"/><line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{bottom}"/>"##
        );
        let _ = write!(
            svg,
            r##"<text class="axis-title" x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            (LEFT + right) / 2.0,
            H - 6.0,
            esc(x_title)
        );
        let _ = write!(
            svg,
            r##"<text class="axis-title" transform="translate(14 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"##,
            (TOP + bottom) / 2.0,
            esc(y_title)
        );
    }

    /// A line through the points; `None` breaks it.
    fn line(&self, svg: &mut String, name: &str, color: &str, points: &[Option<(f64, f64)>], extra: &str) {
        let mut d = String::new();
        let mut pen_down = false;
        for p in points {
            match p {
                Some((x, y)) => {
                    let _ = write!(d, "{}{:.1},{:.1}", if pen_down { "L" } else { "M" }, self.px(*x), self.py(*y));
                    pen_down = true;
                }
                None => pen_down = false,
            }
        }
        if d.is_empty() {
            return;
        }
        let _ = write!(
            svg,
            r##"<path class="series" data-series="{}" d="{d}" fill="none" stroke="{color}" stroke-width="2" stroke-linejoin="round" {extra}><title>{}</title></path>"##,
            esc(name),
            esc(name)
        );
    }
}

fn legend(svg: &mut String, items: &[(&str, &str, bool)]) {
    let mut x = LEFT + 4.0;
    for (name, color, dashed) in items {
        let dash = if *dashed { r#" stroke-dasharray="6 4""# } else { "" };
        let _ = write!(
            svg,
            r##"<line x1="{x:.1}" y1="16" x2="{:.1}" y2="16" stroke="{color}" stroke-width="3"{dash}/><text class="legend" x="{:.1}" y="20">{}</text>"##,
            x + 22.0,
            x + 28.0,
            esc(name)
        );
        x += 40.0 + name.chars().count() as f64 * 7.5;
    }
}

fn open_svg(id: &str, label: &str) -> String {
    format!(
        r##"<svg id="{id}" class="plot" viewBox="0 0 {W} {H}" role="img" aria-label="{}" xmlns="http://www.w3.org/2000/svg">"##,
        esc(label)
    )
}

fn empty_chart(svg: &mut String, why: &str) {
    let _ = write!(
        svg,
        r##"<text class="empty" x="{:.1}" y="{:.1}" text-anchor="middle">{}</text></svg>"##,
        W / 2.0,
        H / 2.0,
        esc(why)
    );
}

/// Chart 1: acquire wait p50 / p90 / p99 / max per time slice, log scale.
fn wait_chart(r: &Report) -> String {
    let mut svg = open_svg("chart-wait", "acquire wait percentiles over time");
    let slices: Vec<_> = r.timeline.iter().filter(|s| s.ops > 0).collect();
    let positive =
        slices.iter().flat_map(|s| [s.wait_p50_ms, s.wait_p90_ms, s.wait_p99_ms, s.wait_max_ms]).filter(|v| *v > 0.0);
    let (lo, hi) = positive.fold((f64::MAX, 0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if slices.is_empty() || hi <= 0.0 {
        empty_chart(&mut svg, "no successful acquire to chart");
        return svg;
    }
    let lo = 10f64.powf(lo.log10().floor());
    let hi = 10f64.powf(hi.log10().ceil()).max(lo * 10.0);
    let plot = Plot { x0: 0.0, x1: r.timeline.last().map_or(1.0, |s| s.t_s), y: Scale::Log { lo, hi } };
    plot.axes(&mut svg, "time (s)", "acquire wait", decade_label);
    let at = |f: fn(&crate::report::SliceFigures) -> f64| -> Vec<Option<(f64, f64)>> {
        r.timeline.iter().map(|s| (s.ops > 0).then(|| (s.t_s, f(s)))).collect()
    };
    plot.line(&mut svg, "max", RED, &at(|s| s.wait_max_ms), r#"stroke-opacity="0.55" stroke-dasharray="4 3""#);
    plot.line(&mut svg, "p99", ORANGE, &at(|s| s.wait_p99_ms), "");
    plot.line(&mut svg, "p90", GREEN, &at(|s| s.wait_p90_ms), "");
    plot.line(&mut svg, "p50", BLUE, &at(|s| s.wait_p50_ms), "");
    legend(&mut svg, &[("p50", BLUE, false), ("p90", GREEN, false), ("p99", ORANGE, false), ("max", RED, true)]);
    svg.push_str("</svg>");
    svg
}

/// Chart 2: in use / idle / waiting from the 10 ms samples, with the cap.
fn occupancy_chart(r: &Report) -> String {
    let mut svg = open_svg("chart-occupancy", "connections in use, idle and callers waiting over time");
    let s = &r.samples;
    if s.t_s.is_empty() {
        empty_chart(&mut svg, "no status sample");
        return svg;
    }
    let cap = r.sizing.configured * r.pool.endpoints as usize;
    let cap = r.pool.total_max_size.map_or(cap, |t| t.min(cap));
    let top = [cap, r.peak.in_use, r.peak.idle, r.peak.waiting, r.peak.total].into_iter().max().unwrap_or(1).max(1);
    let max = linear_top(top as f64);
    let plot = Plot { x0: 0.0, x1: s.t_s.last().copied().unwrap_or(1.0).max(0.001), y: Scale::Linear { max } };
    plot.axes(&mut svg, "time (s)", "connections / callers", |v| format!("{v:.0}"));
    let y = plot.py(cap as f64);
    let _ = write!(
        svg,
        r##"<line class="cap" x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{GREY}" stroke-dasharray="6 4"/><text class="tick" x="{:.1}" y="{:.1}" text-anchor="end">max size {cap}</text>"##,
        W - RIGHT,
        W - RIGHT - 4.0,
        y - 5.0
    );
    let series =
        |v: &[usize]| -> Vec<Option<(f64, f64)>> { s.t_s.iter().zip(v).map(|(t, n)| Some((*t, *n as f64))).collect() };
    // Waiting last and dashed: it often runs on top of another line.
    plot.line(&mut svg, "idle", GREEN, &series(&s.idle), "");
    plot.line(&mut svg, "in use", BLUE, &series(&s.in_use), "");
    plot.line(&mut svg, "waiting", RED, &series(&s.waiting), r#"stroke-dasharray="7 4""#);
    legend(
        &mut svg,
        &[("in use", BLUE, false), ("idle", GREEN, false), ("waiting", RED, true), ("max size", GREY, true)],
    );
    svg.push_str("</svg>");
    svg
}

/// Chart 3: the wait-time histogram, log-spaced buckets.
fn histogram_chart(r: &Report) -> String {
    let mut svg = open_svg("chart-histogram", "acquire wait histogram");
    let b = &r.wait_histogram;
    let most = b.iter().map(|b| b.count).max().unwrap_or(0);
    if most == 0 {
        empty_chart(&mut svg, "no successful acquire to chart");
        return svg;
    }
    let max = linear_top(most as f64);
    let n = b.len() as f64;
    let plot = Plot { x0: 0.0, x1: n, y: Scale::Linear { max } };
    // Value axis and gridlines; the x axis is labelled by bucket edges below.
    for v in plot.y.ticks() {
        let y = plot.py(v);
        let _ = write!(
            svg,
            r##"<line class="grid" x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}"/><text class="tick" x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            W - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            fmt_count(v as u64)
        );
    }
    let bottom = H - BOTTOM;
    let _ = write!(svg, r##"<g class="series" data-series="wait histogram">"##);
    for (i, bucket) in b.iter().enumerate() {
        let (x0, x1) = (plot.px(i as f64) + 1.0, plot.px(i as f64 + 1.0) - 1.0);
        let y = plot.py(bucket.count as f64);
        let h = (bottom - y).max(if bucket.count > 0 { 1.0 } else { 0.0 });
        let _ = write!(
            svg,
            r##"<rect x="{x0:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="{BLUE}"><title>{} – {}: {}</title></rect>"##,
            bottom - h,
            (x1 - x0).max(0.5),
            fmt_ms(bucket.from_ms),
            fmt_ms(bucket.to_ms),
            fmt_count(bucket.count)
        );
    }
    svg.push_str("</g>");
    // Label every other edge so labels do not collide.
    let every = if b.len() > 16 { 4 } else { 2 };
    for (i, bucket) in b.iter().enumerate().step_by(every) {
        let x = plot.px(i as f64);
        let _ = write!(
            svg,
            r##"<line class="tickmark" x1="{x:.1}" y1="{bottom}" x2="{x:.1}" y2="{:.1}"/><text class="tick" x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            bottom + 5.0,
            bottom + 18.0,
            fmt_ms(bucket.from_ms)
        );
    }
    let _ = write!(
        svg,
        r##"<line class="axis" x1="{LEFT}" y1="{bottom}" x2="{:.1}" y2="{bottom}"/><text class="axis-title" x="{:.1}" y="{:.1}" text-anchor="middle">acquire wait (log-spaced buckets)</text><text class="axis-title" transform="translate(14 {:.1}) rotate(-90)" text-anchor="middle">acquires</text></svg>"##,
        W - RIGHT,
        (LEFT + W - RIGHT) / 2.0,
        H - 6.0,
        (TOP + bottom) / 2.0
    );
    svg
}

const STYLE: &str = r#"
:root { color-scheme: light; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; margin: 0; background: #f6f7f9; color: #111827; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 28px 40px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 28px 0 8px; }
.sub { color: #4b5563; margin: 0 0 2px; }
.cards { display: grid; grid-template-columns: repeat(4, 1fr); gap: 12px; margin-top: 18px; }
.card { background: #fff; border: 1px solid #e5e7eb; border-radius: 10px; padding: 12px 14px; }
.card .label { color: #6b7280; font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.card .value { font-size: 22px; font-weight: 650; margin-top: 2px; }
.card .note { color: #4b5563; font-size: 13px; }
.card.warn .value { color: #b45309; }
figure.chart { background: #fff; border: 1px solid #e5e7eb; border-radius: 10px; margin: 0; padding: 8px 8px 0; }
figure.chart figcaption { color: #4b5563; font-size: 13px; padding: 0 8px 8px; }
svg.plot { width: 100%; height: auto; display: block; }
svg .grid { stroke: #e5e7eb; }
svg .axis, svg .tickmark { stroke: #9ca3af; }
svg .tick { font-size: 12px; fill: #4b5563; }
svg .legend { font-size: 13px; fill: #111827; }
svg .axis-title { font-size: 13px; fill: #374151; }
svg .empty { font-size: 16px; fill: #6b7280; }
table { border-collapse: collapse; background: #fff; border: 1px solid #e5e7eb; border-radius: 10px; width: 100%; }
td, th { text-align: left; padding: 6px 12px; border-bottom: 1px solid #f0f1f3; vertical-align: top; }
th { color: #4b5563; font-weight: 600; width: 210px; }
#errors { color: #b91c1c; white-space: pre-wrap; }
#errors:empty { display: none; }
.hint { background: #eff6ff; border: 1px solid #bfdbfe; border-radius: 10px; padding: 10px 14px; margin-top: 14px; }
"#;

const SCRIPT: &str = r#"
(function () {
  var errors = document.getElementById('errors');
  function report(msg) { errors.textContent += msg + '\n'; }
  window.addEventListener('error', function (e) { report('script error: ' + (e.message || e)); });
  try {
    var drawn = 0;
    document.querySelectorAll('figure.chart svg').forEach(function (svg) {
      if (svg.querySelector('text.empty')) { drawn++; return; }
      var visible = false;
      svg.querySelectorAll('.series').forEach(function (m) {
        var b = m.getBBox();
        if (b.width > 0 && b.height >= 0) { visible = true; }
      });
      if (visible) { drawn++; } else { report('chart ' + svg.id + ' drew nothing'); }
    });
    document.body.setAttribute('data-rendered', String(drawn));
  } catch (e) {
    report('script error: ' + e);
  }
})();
"#;

fn card(out: &mut String, label: &str, value: &str, note: &str, warn: bool) {
    let _ = write!(
        out,
        r#"<div class="card{}"><div class="label">{}</div><div class="value">{}</div><div class="note">{}</div></div>"#,
        if warn { " warn" } else { "" },
        esc(label),
        esc(value),
        esc(note)
    );
}

fn row(out: &mut String, name: &str, value: &str) {
    let _ = write!(out, "<tr><th>{}</th><td>{}</td></tr>", esc(name), esc(value));
}

fn percentiles(p: &crate::report::Percentiles) -> String {
    format!(
        "p50 {} · p90 {} · p99 {} · p99.9 {} · max {} · mean {}",
        fmt_ms(p.p50),
        fmt_ms(p.p90),
        fmt_ms(p.p99),
        fmt_ms(p.p999),
        fmt_ms(p.max),
        fmt_ms(p.mean)
    )
}

/// The whole page.
pub(crate) fn render(r: &Report) -> String {
    let mut h = String::with_capacity(64 * 1024);
    let p = &r.pool;
    let l = &r.load;
    let _ = write!(
        h,
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>kpool bench: {}</title><style>{STYLE}</style></head><body><main>"#,
        esc(&r.target)
    );
    let _ = write!(h, "<h1>kpool bench</h1><p class=\"sub\">{}</p>", esc(&r.target));
    let _ = write!(
        h,
        "<p class=\"sub\">{} {} for {:.1} s · {} preset, max size {}, min idle {}{} · {} mode · {}</p>",
        l.tasks,
        if r.mode == "blocking" { "threads" } else { "tasks" },
        l.duration_s,
        esc(p.preset),
        p.max_size,
        p.min_idle,
        if p.endpoints > 1 { format!(", {} endpoints", p.endpoints) } else { String::new() },
        esc(r.mode),
        esc(&r.tool)
    );
    h.push_str(r#"<div id="errors"></div><div class="cards">"#);
    card(
        &mut h,
        "throughput",
        &format!("{} ops/s", fmt_count(r.throughput_ops_per_s.round() as u64)),
        &format!("{} ops in {:.2} s", fmt_count(r.ops), r.elapsed_s),
        false,
    );
    card(
        &mut h,
        "acquire wait p99",
        &fmt_ms(r.acquire_wait_ms.p99),
        &format!("p50 {} · max {}", fmt_ms(r.acquire_wait_ms.p50), fmt_ms(r.acquire_wait_ms.max)),
        false,
    );
    let failures = r.timeouts + r.acquire_errors + r.op_errors;
    card(
        &mut h,
        "timeouts / errors",
        &format!("{} / {}", fmt_count(r.timeouts), fmt_count(r.acquire_errors + r.op_errors)),
        "acquire timeouts / other failures",
        failures > 0,
    );
    card(
        &mut h,
        "sizing hint",
        &format!("max size {}{}", r.sizing.suggested_max_size, if r.sizing.saturated { "+" } else { "" }),
        &format!("configured {} · peak in use {}", r.sizing.configured, r.peak.endpoint_in_use),
        r.sizing.saturated,
    );
    h.push_str("</div>");
    let z = &r.sizing;
    let hint = if z.saturated {
        format!(
            "Demand reached {} at the 99th percentile against a max size of {}: callers waited in {:.0}% of the samples. A max size of at least {} would have served this load without waiting, if the server keeps up.",
            z.demand_p99,
            z.configured,
            z.waiting_share * 100.0,
            z.suggested_max_size
        )
    } else {
        format!(
            "A max size of {} would have served 99% of the samples without anyone waiting (configured {}, peak demand {}).",
            z.suggested_max_size, z.configured, z.demand_peak
        )
    };
    let _ = write!(h, "<div class=\"hint\"><b>Sizing.</b> {} <small>Rule: {}.</small></div>", esc(&hint), esc(&z.rule));

    h.push_str("<h2>Acquire wait over time</h2><figure class=\"chart\">");
    h.push_str(&wait_chart(r));
    let _ = write!(
        h,
        "<figcaption>Client-side time from calling <code>get</code> to holding a connection, per {} ms slice; log scale.</figcaption></figure>",
        r.timeline_interval_ms
    );
    h.push_str("<h2>Pool occupancy over time</h2><figure class=\"chart\">");
    h.push_str(&occupancy_chart(r));
    let _ = write!(
        h,
        "<figcaption>From <code>pool.status()</code> every {} ms (whole pool).</figcaption></figure>",
        r.samples.period_ms
    );
    h.push_str("<h2>Acquire wait distribution</h2><figure class=\"chart\">");
    h.push_str(&histogram_chart(r));
    h.push_str("<figcaption>Successful acquires per wait-time bucket (four buckets per decade).</figcaption></figure>");

    h.push_str("<h2>Figures</h2><table>");
    row(&mut h, "throughput", &format!("{} ops/s", fmt_count(r.throughput_ops_per_s.round() as u64)));
    row(&mut h, "acquire wait", &percentiles(&r.acquire_wait_ms));
    row(&mut h, "round trip", &percentiles(&r.round_trip_ms));
    row(
        &mut h,
        "connect (pool's histogram)",
        &format!("{} connects · {}", r.connect_ms.count, percentiles(&r.connect_ms)),
    );
    row(&mut h, "timeouts", &fmt_count(r.timeouts));
    row(
        &mut h,
        "errors",
        &format!("{} acquiring, {} on a connection", fmt_count(r.acquire_errors), fmt_count(r.op_errors)),
    );
    for e in r.errors.iter().take(10) {
        row(&mut h, "", &format!("{} × {}", fmt_count(e.count), e.message));
    }
    let k = &r.pool_counters;
    let reasons: Vec<String> =
        k.disposed_by_reason.iter().filter(|(_, n)| **n > 0).map(|(r, n)| format!("{r} {n}")).collect();
    row(
        &mut h,
        "connections",
        &format!(
            "created {}, disposed {}{}, failed connects {}, found dead {}",
            k.created,
            k.disposed,
            if reasons.is_empty() { String::new() } else { format!(" ({})", reasons.join(", ")) },
            k.create_failures,
            k.dead_found
        ),
    );
    row(
        &mut h,
        "pool counters",
        &format!("requests {}, acquired {}, timeouts {}, errors {}", k.requests, k.acquired, k.timeouts, k.errors),
    );
    if r.endpoints.len() > 1 {
        for e in r.endpoints.iter().take(32) {
            row(
                &mut h,
                &format!("endpoint {}", e.endpoint),
                &format!(
                    "acquired {}, timeouts {}, errors {}, created {}, disposed {}",
                    fmt_count(e.acquired),
                    e.timeouts,
                    e.errors,
                    e.created,
                    e.disposed
                ),
            );
        }
    }
    row(
        &mut h,
        "peak",
        &format!(
            "in use {} (busiest endpoint {}), idle {}, waiting {}, total {}",
            r.peak.in_use, r.peak.endpoint_in_use, r.peak.idle, r.peak.waiting, r.peak.total
        ),
    );
    if let Some(s) = &r.server {
        row(
            &mut h,
            "embedded server",
            &format!(
                "latency {}, drop rate {}; accepted {}, echoed {}, dropped {}",
                fmt_ms(s.latency_ms),
                s.drop_rate,
                s.accepted,
                fmt_count(s.echoed),
                s.dropped
            ),
        );
    }
    row(
        &mut h,
        "pool settings",
        &format!(
            "max idle {}, burst {}, total max {}, acquire timeout {}, retries {}, validate on acquire {}, warm {}",
            p.max_idle.map_or("none".into(), |n| n.to_string()),
            p.burst_limit.map_or("none".into(), |n| n.to_string()),
            p.total_max_size.map_or("none".into(), |n| n.to_string()),
            p.acquire_timeout_ms.map_or("none".into(), fmt_ms),
            p.retry_limit,
            p.validate_on_acquire,
            p.warm
        ),
    );
    row(
        &mut h,
        "load",
        &format!(
            "hold {}, rate {}",
            fmt_ms(l.hold_ms),
            l.rate_ops_per_s.map_or("unlimited".into(), |r| format!("{} ops/s", fmt_count(r as u64)))
        ),
    );
    h.push_str("</table>");
    let _ = writeln!(h, "</main><script>{SCRIPT}</script></body></html>");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        assert_eq!(esc(r#"<a href="x">&'"#), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
    }

    #[test]
    fn nice_steps() {
        assert_eq!(nice_step(0.7), 1.0);
        assert_eq!(nice_step(1.3), 2.0);
        assert_eq!(nice_step(3.0), 5.0);
        assert_eq!(nice_step(42.0), 50.0);
    }

    #[test]
    fn log_ticks_are_decades() {
        assert_eq!(Scale::Log { lo: 0.001, hi: 1.0 }.ticks().len(), 4);
        assert_eq!(linear_top(10.0), 15.0);
        assert_eq!(linear_top(170_000.0), 200_000.0);
        assert_eq!(decade_label(0.01), "10 µs");
        assert_eq!(decade_label(0.1), "0.1 ms");
        assert_eq!(Scale::Linear { max: 20.0 }.ticks(), vec![0.0, 5.0, 10.0, 15.0, 20.0]);
    }
}
