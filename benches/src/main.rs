//! `kpool-bench`: kpool beside deadpool, bb8, mobc, r2d2 and qp on the
//! workloads of SPEC section 6, in one process run. Prints a Markdown report
//! and writes JSON. See `benches/README.md` for what each cell means.
//!
//! ```text
//! cargo run --release -p kpool-bench                 # full run (~4-5 min)
//! cargo run --release -p kpool-bench -- --quick      # smoke run (seconds)
//! cargo run --release -p kpool-bench -- --help
//! ```

#![forbid(unsafe_code)]

mod alloc;
mod harness;
mod pools;

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use harness::{Hold, Memory, RunResult, Timing, Workload, run_async, run_blocking};
use pools::BackendSpec;

/// A pool entry of a cell: its name and how to run one cell-run of it.
type Runner = fn(&Workload, Timing) -> RunResult;

const KPOOL: &str = "kpool";
const KPOOL_BLOCKING: &str = "kpool (blocking)";
/// The same build with `metrics(false)`: what metrics cost (uncontended only).
const KPOOL_NO_METRICS: &str = "kpool (metrics off)";
const NO_POOL: &str = "(no pool: ceiling)";
const SEM_VEC: &str = "(Semaphore+Mutex<Vec>)";
/// Pools that can be the anchor a target is measured against.
const ANCHORS: [&str; 5] = ["deadpool", "bb8", "mobc", "qp", "r2d2"];

fn async_pools(with_refs: bool, with_qp: bool) -> Vec<(&'static str, Runner)> {
    let mut v: Vec<(&'static str, Runner)> = vec![
        (KPOOL, |w, t| run_async(pools::kpool, w, t)),
        ("deadpool", |w, t| run_async(pools::deadpool, w, t)),
        ("bb8", |w, t| run_async(pools::bb8, w, t)),
        ("mobc", |w, t| run_async(pools::mobc, w, t)),
    ];
    if with_qp {
        v.push(("qp", |w, t| run_async(pools::qp, w, t)));
    }
    if with_refs {
        v.push((SEM_VEC, |w, t| run_async(pools::sem_vec, w, t)));
        v.push((NO_POOL, |w, t| run_async(pools::no_pool, w, t)));
    }
    v
}

fn blocking_pools() -> Vec<(&'static str, Runner)> {
    vec![
        (KPOOL_BLOCKING, |w, t| run_blocking(pools::kpool_blocking, w, t)),
        ("r2d2", |w, t| run_blocking(pools::r2d2, w, t)),
        (NO_POOL, |w, t| run_blocking(pools::no_pool, w, t)),
    ]
}

fn cells() -> Vec<(Workload, Vec<(&'static str, Runner)>)> {
    let plain = BackendSpec::default();
    let w = |name, about, tasks, conns, hold, spec, cold_target| Workload {
        name,
        about,
        tasks,
        conns,
        hold,
        spec,
        cold_target,
    };
    vec![
        (w("uncontended", "1 task, 16 connections, acquire -> touch -> release", 1, 16, Hold::Plain, plain, None), {
            let mut v = async_pools(true, true);
            v.insert(1, (KPOOL_NO_METRICS, |w, t| run_async(pools::kpool_metrics_off, w, t)));
            v
        }),
        (
            w(
                "64x16-await",
                "64 tasks on 16 connections, one `yield_now().await` while holding",
                64,
                16,
                Hold::Yield,
                plain,
                None,
            ),
            async_pools(true, true),
        ),
        (
            w("64x16", "64 tasks on 16 connections, no await while holding", 64, 16, Hold::Plain, plain, None),
            async_pools(true, true),
        ),
        (
            w(
                "1024x8",
                "1024 tasks on 8 connections, one `yield_now().await` while holding",
                1024,
                8,
                Hold::Yield,
                plain,
                None,
            ),
            async_pools(true, true),
        ),
        (
            w(
                "churn",
                "64 tasks on 16 connections (await while holding); every 10th health check fails; max lifetime 1 ms",
                64,
                16,
                Hold::Yield,
                BackendSpec { fail_every: 10, lifetime: Some(Duration::from_millis(1)), ..plain },
                None,
            ),
            async_pools(false, false),
        ),
        (
            w(
                "cold-start",
                "empty pool, `create` takes 1 ms; 64 tasks on 16 connections (await while holding); time to the first 1000 acquisitions",
                64,
                16,
                Hold::Yield,
                BackendSpec { create_delay: Some(Duration::from_millis(1)), ..plain },
                Some(1000),
            ),
            {
                let mut v = async_pools(false, true);
                v.push((SEM_VEC, |w, t| run_async(pools::sem_vec, w, t)));
                v
            },
        ),
        (
            w("blocking-1", "1 thread, 16 connections (blocking pools)", 1, 16, Hold::Plain, plain, None),
            blocking_pools(),
        ),
        (
            w("blocking-8x4", "8 threads on 4 connections (blocking pools)", 8, 4, Hold::Plain, plain, None),
            blocking_pools(),
        ),
    ]
}

#[derive(Debug)]
struct Opts {
    timing: Timing,
    runs: usize,
    scale_window: Duration,
    memory_n: usize,
    json: String,
    only: Vec<String>,
    pools: Vec<String>,
    quick: bool,
}

fn parse_args() -> Opts {
    let mut o = Opts {
        timing: Timing {
            window: Duration::from_millis(1000),
            warmup: Duration::from_millis(200),
            grace: Duration::from_millis(1000),
        },
        runs: 5,
        scale_window: Duration::from_millis(500),
        memory_n: 10_000,
        json: "target/kpool-bench/results.json".into(),
        only: Vec::new(),
        pools: Vec::new(),
        quick: false,
    };
    let mut args = std::env::args().skip(1);
    let ms = |v: Option<String>| Duration::from_millis(v.and_then(|s| s.parse().ok()).expect("a number of ms"));
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => {
                o.quick = true;
                o.timing = Timing {
                    window: Duration::from_millis(5),
                    warmup: Duration::from_millis(2),
                    grace: Duration::from_millis(200),
                };
                o.runs = 1;
                o.scale_window = Duration::from_millis(5);
                o.memory_n = 1000;
            }
            "--window-ms" => o.timing.window = ms(args.next()),
            "--warmup-ms" => o.timing.warmup = ms(args.next()),
            "--grace-ms" => o.timing.grace = ms(args.next()),
            "--scale-ms" => o.scale_window = ms(args.next()),
            "--runs" => o.runs = args.next().and_then(|s| s.parse().ok()).expect("a number of runs"),
            "--json" => o.json = args.next().expect("a path"),
            "--only" => o.only = args.next().expect("cell names").split(',').map(str::to_owned).collect(),
            "--pools" => o.pools = args.next().expect("pool names").split(',').map(str::to_owned).collect(),
            "--help" | "-h" => {
                println!(
                    "kpool-bench [--quick] [--runs N] [--window-ms MS] [--warmup-ms MS] [--grace-ms MS]\n            \
                     [--scale-ms MS] [--json PATH] [--only CELL,...] [--pools POOL,...]\n\
                     cells: uncontended 64x16-await 64x16 1024x8 churn cold-start blocking-1 blocking-8x4 scale memory"
                );
                std::process::exit(0);
            }
            other => panic!("unknown argument {other:?} (try --help)"),
        }
    }
    o
}

/// One pool's result in a cell: the median run (by ops/s) and every run.
#[derive(Debug, Serialize)]
struct Row {
    pool: &'static str,
    median: RunResult,
    /// Worst over the runs, so a pool cannot hide a stranded task behind a median.
    max_stuck: usize,
    max_starved: usize,
    runs: Vec<RunResult>,
}

#[derive(Debug, Serialize)]
struct Cell {
    workload: Workload,
    rows: Vec<Row>,
}

#[derive(Debug, Serialize)]
struct Scale {
    endpoints: u32,
    ns_per_op: f64,
    runs: Vec<f64>,
}

#[derive(Debug, Serialize)]
struct Target {
    target: String,
    measured: String,
    met: bool,
}

#[derive(Debug, Serialize)]
struct Report {
    date: String,
    machine: String,
    command: String,
    window_ms: u128,
    warmup_ms: u128,
    runs: usize,
    cells: Vec<Cell>,
    scale: Vec<Scale>,
    memory: Option<Memory>,
    targets: Vec<Target>,
}

fn median_by<T>(mut v: Vec<T>, key: impl Fn(&T) -> f64) -> T {
    v.sort_by(|a, b| key(a).total_cmp(&key(b)));
    let mid = v.len() / 2;
    v.swap_remove(mid)
}

fn wanted(o: &Opts, name: &str) -> bool {
    o.only.is_empty() || o.only.iter().any(|x| x == name)
}

fn main() {
    let o = parse_args();
    let started = std::time::Instant::now();
    let mut cells_out = Vec::new();
    for (w, mut pools) in cells() {
        if !wanted(&o, w.name) {
            continue;
        }
        // `--pools` keeps the pools whose name starts with one of its words.
        pools.retain(|(name, _)| o.pools.is_empty() || o.pools.iter().any(|p| name.starts_with(p.as_str())));
        eprintln!("cell {} ...", w.name);
        let mut runs: Vec<Vec<RunResult>> = pools.iter().map(|_| Vec::new()).collect();
        // Runs interleave the pools, so slow drifts of a shared machine hit all alike.
        for _ in 0..o.runs {
            for (i, (name, run)) in pools.iter().enumerate() {
                let r = run(&w, o.timing);
                eprintln!("  {name:<24} {:>12.0} ops/s  stuck {}", r.ops_per_sec, r.stuck);
                runs[i].push(r);
            }
        }
        let rows = pools
            .iter()
            .zip(runs)
            .map(|((name, _), runs)| {
                let cold = w.cold_target.is_some();
                let median =
                    median_by(runs.clone(), |r| if cold { -r.cold_ms.unwrap_or(f64::INFINITY) } else { r.ops_per_sec });
                Row {
                    pool: name,
                    median,
                    max_stuck: runs.iter().map(|r| r.stuck).max().unwrap_or(0),
                    max_starved: runs.iter().map(|r| r.starved).max().unwrap_or(0),
                    runs,
                }
            })
            .collect();
        cells_out.push(Cell { workload: w, rows });
    }

    let mut scale = Vec::new();
    if wanted(&o, "scale") {
        eprintln!("cell scale ...");
        for e in [1u32, 100, 10_000] {
            let runs: Vec<f64> = (0..o.runs).map(|_| harness::run_scale(e, o.scale_window)).collect();
            let ns = median_by(runs.clone(), |x| *x);
            eprintln!("  {e:>6} endpoints: {ns:.0} ns/op");
            scale.push(Scale { endpoints: e, ns_per_op: ns, runs });
        }
    }
    let memory = wanted(&o, "memory").then(|| harness::run_memory(o.memory_n));

    let targets = targets(&cells_out, &scale, memory.as_ref());
    let report = Report {
        date: utc_now(),
        machine: machine(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        window_ms: o.timing.window.as_millis(),
        warmup_ms: o.timing.warmup.as_millis(),
        runs: o.runs,
        cells: cells_out,
        scale,
        memory,
        targets,
    };
    print!("{}", markdown(&report));
    if let Some(dir) = std::path::Path::new(&o.json).parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    std::fs::write(&o.json, serde_json::to_string_pretty(&report).expect("serializable")).expect("writing the JSON");
    eprintln!("wrote {} in {:.0} s", o.json, started.elapsed().as_secs_f64());
    if o.quick {
        // Smoke mode checks the harness itself: kpool must never strand a task.
        let bad: Vec<_> = report
            .cells
            .iter()
            .flat_map(|c| c.rows.iter().map(move |r| (c.workload.name, r)))
            .filter(|(_, r)| r.pool.starts_with(KPOOL) && (r.max_stuck > 0 || r.median.errors > 0))
            .collect();
        if !bad.is_empty() {
            for (cell, r) in bad {
                eprintln!(
                    "kpool stranded or failed tasks in {cell}: stuck {}, errors {}",
                    r.max_stuck, r.median.errors
                );
            }
            std::process::exit(1);
        }
    }
    // Stranded tasks of other pools may still sit in abandoned runtimes and
    // threads: leave without waiting for them.
    std::process::exit(0);
}

/// An anchor counts if it stranded no task, starved none (except in cold
/// start, which stops at its target before every task had a turn) and
/// returned no error.
fn valid_anchor(r: &Row, cold: bool) -> bool {
    ANCHORS.contains(&r.pool) && r.max_stuck == 0 && (cold || r.max_starved == 0) && r.median.errors == 0
}

/// kpool's measure over an anchor's, paired run by run: the median of
/// `f(kpool's run i) / f(anchor's run i)`. Runs of all pools are interleaved,
/// so run i of each pool ran within seconds of the others; this machine's
/// speed drifts in phases (all pools up to 2.5x faster or slower together for
/// a while), which pairing cancels and a ratio of independent medians does not.
fn paired(k: &Row, b: &Row, f: impl Fn(&RunResult) -> f64) -> f64 {
    let ratios: Vec<f64> = k.runs.iter().zip(&b.runs).map(|(x, y)| f(x) / f(y)).collect();
    if ratios.is_empty() { f(&k.median) / f(&b.median) } else { median_by(ratios, |r| *r) }
}

fn targets(cells: &[Cell], scale: &[Scale], memory: Option<&Memory>) -> Vec<Target> {
    let mut t = Vec::new();
    for c in cells {
        let name = c.workload.name;
        let Some(k) = c.rows.iter().find(|r| r.pool == KPOOL || r.pool == KPOOL_BLOCKING) else { continue };
        let best = c
            .rows
            .iter()
            .filter(|r| valid_anchor(r, c.workload.cold_target.is_some()))
            .max_by(|a, b| a.median.ops_per_sec.total_cmp(&b.median.ops_per_sec));
        let ceiling = c.rows.iter().find(|r| r.pool == NO_POOL);
        if let Some(b) = best {
            let ratio = paired(k, b, |r| r.ops_per_sec);
            let of_ceiling = ceiling.map(|cl| paired(k, cl, |r| r.ops_per_sec));
            let ceiling_txt = of_ceiling.map(|x| format!(", {:.0}% of ceiling", x * 100.0)).unwrap_or_default();
            t.push(Target {
                target: format!("{name}: ops/s >= 2x best valid anchor ({}) or >= 95% of ceiling", b.pool),
                measured: format!("{ratio:.2}x{ceiling_txt}"),
                met: ratio >= 2.0 || of_ceiling.is_some_and(|x| x >= 0.95),
            });
            if c.workload.cold_target.is_none() {
                let p99 = paired(k, b, |r| r.p99_us);
                t.push(Target {
                    target: format!("{name}: p99 <= {}'s", b.pool),
                    measured: format!(
                        "{p99:.2}x ({:.2} us vs {:.2} us in the median runs)",
                        k.median.p99_us, b.median.p99_us
                    ),
                    met: p99 <= 1.0,
                });
            }
        } else {
            t.push(Target {
                target: format!("{name}: ops/s >= 2x best valid anchor"),
                measured: "no anchor ran without starving or stranding tasks".into(),
                met: true,
            });
        }
        if c.workload.tasks > 1 && c.workload.cold_target.is_none() {
            t.push(Target {
                target: format!("{name}: Jain >= 0.99, 0 starved, 0 stuck"),
                measured: format!("Jain {:.4}, starved {}, stuck {}", k.median.jain, k.max_starved, k.max_stuck),
                met: k.median.jain >= 0.99 && k.max_starved == 0 && k.max_stuck == 0,
            });
        }
        if name == "uncontended" {
            if let Some(q) = c.rows.iter().find(|r| r.pool == "qp") {
                let ratio = paired(k, q, |r| r.ops_per_sec);
                t.push(Target {
                    target: "uncontended: >= 1.25x qp".into(),
                    measured: format!("{ratio:.2}x"),
                    met: ratio >= 1.25,
                });
            }
        }
    }
    if let (Some(one), Some(many)) = (scale.first(), scale.last()) {
        let ratio = many.ns_per_op / one.ns_per_op;
        t.push(Target {
            target: format!("scale: {} endpoints within 1.5x of {}", many.endpoints, one.endpoints),
            measured: format!("{ratio:.2}x ({:.0} vs {:.0} ns/op)", many.ns_per_op, one.ns_per_op),
            met: ratio <= 1.5,
        });
    }
    if let Some(m) = memory {
        t.push(Target {
            target: "memory: <= 256 bytes per idle connection".into(),
            measured: format!("{:.0} bytes", m.bytes_per_idle_conn),
            met: m.bytes_per_idle_conn <= 256.0,
        });
    }
    t
}

fn markdown(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# kpool-bench\n");
    let _ = writeln!(s, "- date: {}\n- machine: {}\n- command: `{}`", r.date, r.machine, r.command);
    let _ = writeln!(
        s,
        "- each cell-run: {} ms warm-up, {} ms measured; median of {} run(s) (stuck/starved: worst run)\n\
         - \\* over the last three quarters of the window (after the runtime's start-up ramp)\n",
        r.warmup_ms, r.window_ms, r.runs
    );
    for c in &r.cells {
        let w = &c.workload;
        let _ = writeln!(s, "## {}\n\n{}\n", w.name, w.about);
        let cold = w.cold_target.is_some();
        let churn = w.spec.lifetime.is_some();
        let _ = write!(
            s,
            "| pool | ops/s | p50 us | p99 us | p99.9 us | max us | acq/task min..max* | Jain* | starved | stuck | opened | errors |"
        );
        if churn {
            let _ = write!(s, " past lifetime at receipt |");
        }
        if cold {
            let _ = write!(s, " ms to {} |", w.cold_target.unwrap_or(0));
        }
        let _ = writeln!(s);
        let cols = 12 + usize::from(churn) + usize::from(cold);
        let _ = writeln!(s, "|{}", " --- |".repeat(cols));
        for row in &c.rows {
            let m = &row.median;
            let _ = write!(
                s,
                "| {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {}..{} | {:.4} | {} | {} | {} | {} |",
                row.pool,
                fmt_ops(m.ops_per_sec),
                m.p50_us,
                m.p99_us,
                m.p999_us,
                m.max_us,
                m.per_task_min,
                m.per_task_max,
                m.jain,
                row.max_starved,
                row.max_stuck,
                m.opened,
                m.errors
            );
            if churn {
                let _ = write!(s, " {} |", m.expired_handouts);
            }
            if cold {
                let _ = write!(s, " {} |", m.cold_ms.map_or("not reached".into(), |x| format!("{x:.2}")));
            }
            let _ = writeln!(s);
        }
        let _ = writeln!(s);
    }
    if !r.scale.is_empty() {
        let _ = writeln!(
            s,
            "## scale (kpool only)\n\nOne task, `get_for` + drop over N endpoints of one keyed pool (default configuration).\n"
        );
        let _ = writeln!(s, "| endpoints | ns/op |\n| --- | --- |");
        for x in &r.scale {
            let _ = writeln!(s, "| {} | {:.0} |", x.endpoints, x.ns_per_op);
        }
        let _ = writeln!(s);
    }
    if let Some(m) = &r.memory {
        let _ = writeln!(s, "## memory (kpool only)\n");
        let _ = writeln!(s, "| measure | bytes |\n| --- | --- |");
        let _ = writeln!(
            s,
            "| per idle connection ({} idle on one endpoint), minus the {}-byte connection | {:.0} |",
            m.idle_conns, m.conn_size, m.bytes_per_idle_conn
        );
        let _ = writeln!(
            s,
            "| per endpoint holding one idle connection ({} endpoints), minus the connection | {:.0} |\n",
            m.endpoints, m.bytes_per_endpoint
        );
    }
    let _ = writeln!(
        s,
        "## targets (ratios from this run)\n\nEach ratio is the median over the runs of kpool's run i against the anchor's run i (see `paired`).\n\n| target | measured | met |\n| --- | --- | --- |"
    );
    for t in &r.targets {
        let _ = writeln!(s, "| {} | {} | {} |", t.target, t.measured, if t.met { "yes" } else { "**no**" });
    }
    s
}

fn fmt_ops(x: f64) -> String {
    if x >= 1e6 { format!("{:.2} M", x / 1e6) } else { format!("{:.0} k", x / 1e3) }
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{cpus} CPUs ({model}), tokio multi-thread runtime with 2 workers")
}

/// The current UTC time as `YYYY-MM-DD HH:MM UTC`.
fn utc_now() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02} UTC", rem / 3600, rem % 3600 / 60)
}
