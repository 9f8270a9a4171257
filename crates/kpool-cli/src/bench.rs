//! `kpool bench`: drive load through a pool and measure it.
//!
//! Workers (tokio tasks, or threads in blocking mode) loop: acquire a
//! connection (timed on the client side, around `get`), run one operation on
//! it, hold it for `--hold`, return it. Their figures go into a few
//! mutex-guarded shards (a worker only ever touches its own shard, so the
//! locks are uncontended). A sampler thread reads `pool.status()` every
//! 10 ms, closes a time slice of the figures every `interval` (about a
//! hundredth of the run) for the charts, and drives the progress bar.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use kpool::{Config, CounterSnapshot, HistogramSnapshot, PoolStatus, Status};

use crate::Fail;
use crate::cli::{BenchArgs, Mode};
use crate::report::{self, Report, RunInfo};
use crate::server::{EchoServer, Faults};
use crate::target::Target;
use crate::work::{BlockingWorkload, Postgres, ShardKey, Sharded, Workload};

/// How often the sampler reads the pool's status.
pub(crate) const SAMPLE_EVERY: Duration = Duration::from_millis(10);
/// Figures shards; workers map onto them by id.
const SHARDS: usize = 16;
/// Pause after an acquire that failed before its deadline, so a dead server does not turn into a busy loop.
const ERROR_PAUSE: Duration = Duration::from_millis(10);
/// Most threads blocking mode starts.
const MAX_THREADS: u32 = 2048;

/// What the workers measured in one shard, or merged over shards or time.
#[derive(Clone)]
pub(crate) struct Figures {
    /// Acquire wait of successful acquires, in nanoseconds.
    pub(crate) wait: Histogram<u64>,
    /// Operation (round trip) time, in nanoseconds.
    pub(crate) op: Histogram<u64>,
    /// Successful operations.
    pub(crate) ok: u64,
    /// Acquires that timed out.
    pub(crate) timeouts: u64,
    /// Acquires that failed otherwise.
    pub(crate) acquire_errors: u64,
    /// Operations that failed on an acquired connection.
    pub(crate) op_errors: u64,
    /// Error messages and how often each was seen.
    pub(crate) messages: HashMap<String, u64>,
}

impl Figures {
    pub(crate) fn new() -> Figures {
        // Two significant digits (1%) keep a histogram small, however many time slices a run has.
        let hist = || Histogram::new(2).expect("2 significant digits are valid");
        Figures {
            wait: hist(),
            op: hist(),
            ok: 0,
            timeouts: 0,
            acquire_errors: 0,
            op_errors: 0,
            messages: HashMap::new(),
        }
    }

    pub(crate) fn merge(&mut self, other: &Figures) {
        // Both auto-resize, so adding cannot fail.
        let _ = self.wait.add(&other.wait);
        let _ = self.op.add(&other.op);
        self.ok += other.ok;
        self.timeouts += other.timeouts;
        self.acquire_errors += other.acquire_errors;
        self.op_errors += other.op_errors;
        for (msg, n) in &other.messages {
            *self.messages.entry(msg.clone()).or_default() += n;
        }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1)
}

/// Where workers record.
struct Recorder {
    shards: Vec<Mutex<Figures>>,
}

impl Recorder {
    fn new() -> Recorder {
        Recorder { shards: (0..SHARDS).map(|_| Mutex::new(Figures::new())).collect() }
    }

    fn with(&self, worker: usize, f: impl FnOnce(&mut Figures)) {
        let mut shard = self.shards[worker % SHARDS].lock().unwrap_or_else(|e| e.into_inner());
        f(&mut shard);
    }

    fn ok(&self, worker: usize, wait: Duration, op: Duration) {
        self.with(worker, |f| {
            let _ = f.wait.record(nanos(wait));
            let _ = f.op.record(nanos(op));
            f.ok += 1;
        });
    }

    fn op_error(&self, worker: usize, wait: Duration, message: String) {
        self.with(worker, |f| {
            let _ = f.wait.record(nanos(wait));
            f.op_errors += 1;
            *f.messages.entry(message).or_default() += 1;
        });
    }

    fn acquire_failed(&self, worker: usize, timeout: bool, message: String) {
        self.with(worker, |f| {
            if timeout {
                f.timeouts += 1;
            } else {
                f.acquire_errors += 1;
            }
            *f.messages.entry(message).or_default() += 1;
        });
    }

    /// Takes everything recorded so far, leaving the shards empty.
    fn take(&self) -> Figures {
        let mut all = Figures::new();
        for shard in &self.shards {
            let taken = std::mem::replace(&mut *shard.lock().unwrap_or_else(|e| e.into_inner()), Figures::new());
            all.merge(&taken);
        }
        all
    }
}

/// An acquire error in words, without the parts that vary from one call to
/// the next (how long, the pool's status), so equal causes count together.
fn describe<E: std::error::Error + 'static>(e: &kpool::Error<E>) -> String {
    let what = if e.is_timeout() {
        match e.phase() {
            Some(kpool::Phase::Create) => "acquire timed out creating a connection".to_owned(),
            Some(kpool::Phase::Check) => "acquire timed out checking a connection".to_owned(),
            _ => "acquire timed out waiting for a connection".to_owned(),
        }
    } else {
        e.to_string()
    };
    match e.backend() {
        Some(b) => format!("{what}: {}", crate::probe::explain(b)),
        None => what,
    }
}

/// Paces operations to `--rate` across all workers: operation `k` starts at
/// `start + k / rate`.
struct Pacer {
    start: Instant,
    end: Instant,
    per_op: f64,
    next: AtomicU64,
}

impl Pacer {
    /// When the next operation may start, or `None` once that is past the end.
    fn next(&self) -> Option<Instant> {
        let k = self.next.fetch_add(1, Ordering::Relaxed);
        let at = self.start + Duration::from_secs_f64(k as f64 * self.per_op);
        (at < self.end).then_some(at)
    }
}

/// What every worker shares.
struct Shared {
    recorder: Recorder,
    /// Precise sleeps for `hold` in async mode.
    delays: Option<crate::timer::Delays>,
    /// Set by Ctrl-C: workers finish their operation and stop.
    interrupted: Arc<AtomicBool>,
    end: Instant,
    hold: Duration,
    pacer: Option<Pacer>,
}

impl Shared {
    /// When to start the next operation; `None` when the run is over.
    fn next_start(&self) -> Option<Option<Instant>> {
        if self.interrupted.load(Ordering::Relaxed) {
            return None;
        }
        match &self.pacer {
            Some(p) => p.next().map(Some),
            None => (Instant::now() < self.end).then_some(None),
        }
    }
}

/// The pool's occupancy as the sampler needs it.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct View {
    pub(crate) pool: Status,
    /// In use + being created + waiting, on the busiest endpoint.
    pub(crate) demand: usize,
    /// In use on the busiest endpoint.
    pub(crate) endpoint_in_use: usize,
}

fn view<K>(status: PoolStatus<K>) -> View {
    let demand = status.endpoints.iter().map(|(_, s)| s.in_use + s.creating + s.waiting).max().unwrap_or(0);
    let endpoint_in_use = status.endpoints.iter().map(|(_, s)| s.in_use).max().unwrap_or(0);
    View { pool: status.pool, demand, endpoint_in_use }
}

/// One reading of the pool's status.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sample {
    pub(crate) at: Duration,
    pub(crate) view: View,
}

/// The figures of one time slice.
pub(crate) struct Slice {
    /// When the slice ended, from the start of the run.
    pub(crate) end: Duration,
    /// How long it lasted.
    pub(crate) len: Duration,
    pub(crate) figures: Figures,
}

/// Everything a run measured.
pub(crate) struct Outcome {
    pub(crate) elapsed: Duration,
    pub(crate) total: Figures,
    pub(crate) slices: Vec<Slice>,
    pub(crate) samples: Vec<Sample>,
    /// The pool's counters when the load stopped (before closing it).
    pub(crate) counters: CounterSnapshot,
    /// The pool's own histogram of `create` times.
    pub(crate) connect: HistogramSnapshot,
    /// Per endpoint: its label and counters.
    pub(crate) endpoints: Vec<(String, CounterSnapshot)>,
    /// The pool's own high-water marks (in use, waiting): exact, where the
    /// samples may miss a short spike.
    pub(crate) peaks: (usize, usize),
    pub(crate) interval: Duration,
    /// Ctrl-C ended the run before its duration.
    pub(crate) interrupted: bool,
}

/// The sampler thread: status samples, time slices, progress bar.
struct Sampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<(Vec<Sample>, Vec<Slice>)>,
}

impl Sampler {
    fn start(
        shared: Arc<Shared>,
        start: Instant,
        duration: Duration,
        interval: Duration,
        progress: ProgressBar,
        status: impl Fn() -> View + Send + 'static,
        counters: impl Fn() -> CounterSnapshot + Send + 'static,
    ) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("kpool-sampler".into())
            .spawn(move || {
                let mut samples = Vec::with_capacity((duration.as_millis() / 10 + 64) as usize);
                let mut slices: Vec<Slice> = Vec::new();
                let mut slice_start = Duration::ZERO;
                let mut next_tick = start;
                let mut last_draw = start;
                let mut rate_window: Vec<(Instant, u64)> = Vec::new();
                loop {
                    next_tick += SAMPLE_EVERY;
                    let now = Instant::now();
                    if next_tick > now {
                        std::thread::sleep(next_tick - now);
                    } else {
                        next_tick = now;
                    }
                    let stopping = stopping.load(Ordering::Acquire);
                    let at = start.elapsed();
                    samples.push(Sample { at, view: status() });
                    if at >= slice_start + interval || stopping {
                        let figures = shared.recorder.take();
                        slices.push(Slice { end: at, len: at - slice_start, figures });
                        slice_start = at;
                    }
                    if stopping {
                        break;
                    }
                    if !progress.is_hidden() && last_draw.elapsed() >= Duration::from_millis(100) {
                        last_draw = Instant::now();
                        let acquired = counters().acquired;
                        rate_window.push((last_draw, acquired));
                        rate_window.retain(|(t, _)| last_draw.duration_since(*t) <= Duration::from_secs(1));
                        progress.set_position(at.min(duration).as_millis() as u64);
                        progress.set_message(live_line(&rate_window, &slices, samples.last()));
                    }
                }
                (samples, slices)
            })
            .expect("spawning the sampler thread");
        Sampler { stop, thread }
    }

    fn finish(self) -> (Vec<Sample>, Vec<Slice>) {
        self.stop.store(true, Ordering::Release);
        self.thread.join().expect("the sampler thread panicked")
    }
}

/// The progress bar's message: ops/s over the last second, p99 wait over
/// the last second, and the pool's occupancy.
fn live_line(window: &[(Instant, u64)], slices: &[Slice], last: Option<&Sample>) -> String {
    let ops = match (window.first(), window.last()) {
        (Some((t0, a0)), Some((t1, a1))) if t1 > t0 => (a1 - a0) as f64 / t1.duration_since(*t0).as_secs_f64(),
        _ => 0.0,
    };
    let mut recent = Histogram::<u64>::new(2).expect("valid");
    if let Some(newest) = slices.last() {
        for s in slices.iter().rev().take_while(|s| newest.end - s.end < Duration::from_secs(1)) {
            let _ = recent.add(&s.figures.wait);
        }
    }
    let p99 =
        if recent.is_empty() { "-".to_owned() } else { report::fmt_ms(recent.value_at_quantile(0.99) as f64 / 1e6) };
    let v = last.map(|s| s.view.pool).unwrap_or_default();
    format!(
        "{} ops/s  p99 wait {p99}  in use {}  idle {}  waiting {}",
        report::fmt_count(ops.round() as u64),
        v.in_use,
        v.idle,
        v.waiting
    )
}

fn progress_bar(duration: Duration, quiet: bool) -> ProgressBar {
    if quiet || !std::io::stdout().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::with_draw_target(Some(duration.as_millis() as u64), ProgressDrawTarget::stdout_with_hz(10));
    pb.set_style(
        ProgressStyle::with_template("{spinner:.green} {elapsed:>3} [{bar:28.cyan/blue}] {msg}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    pb
}

/// The load's settings.
struct Plan {
    tasks: u32,
    duration: Duration,
    hold: Duration,
    rate: Option<f64>,
    endpoints: u16,
    warm: bool,
    quiet: bool,
    interval: Duration,
    /// Set by Ctrl-C.
    interrupted: Arc<AtomicBool>,
}

impl Plan {
    /// Starts a run: the progress bar, the clock, the shared state and the
    /// sampler reading the pool through `status` and `counters`.
    fn begin(
        &self,
        mode: Mode,
        status: impl Fn() -> View + Send + 'static,
        counters: impl Fn() -> CounterSnapshot + Send + 'static,
    ) -> Result<(ProgressBar, Instant, Arc<Shared>, Sampler), Fail> {
        let progress = progress_bar(self.duration, self.quiet);
        let start = Instant::now();
        let shared = self.shared(start, mode)?;
        let sampler =
            Sampler::start(shared.clone(), start, self.duration, self.interval, progress.clone(), status, counters);
        Ok((progress, start, shared, sampler))
    }

    fn shared(&self, start: Instant, mode: Mode) -> Result<Arc<Shared>, Fail> {
        let delays = if mode == Mode::Async && !self.hold.is_zero() {
            Some(crate::timer::Delays::start().map_err(|e| Fail::Run(format!("cannot start the timer thread: {e}")))?)
        } else {
            None
        };
        let end = start + self.duration;
        Ok(Arc::new(Shared {
            recorder: Recorder::new(),
            interrupted: self.interrupted.clone(),
            delays,
            end,
            hold: self.hold,
            pacer: self.rate.map(|r| Pacer { start, end, per_op: 1.0 / r, next: AtomicU64::new(0) }),
        }))
    }
}

/// The slice length for charts: about 100 slices per run, at least 50 ms.
fn interval_for(duration: Duration) -> Duration {
    let ms = (duration.as_millis() / 100).max(50);
    Duration::from_millis(ms as u64)
}

/// Builds the pool configuration from the preset and the overrides.
pub(crate) fn pool_config(args: &BenchArgs) -> Result<Config, Fail> {
    let mut c = Config::preset(args.preset.as_str()).expect("every PresetName is a preset");
    if let Some(n) = args.max_size {
        c.max_size = n;
    }
    if let Some(n) = args.min_idle {
        c.min_idle = n;
    }
    if let Some(n) = args.max_idle {
        c.max_idle = (n > 0).then_some(n);
    }
    if args.burst.is_some() {
        c.burst_limit = args.burst;
    }
    if args.total_max_size.is_some() {
        c.total_max_size = args.total_max_size;
    }
    if args.acquire_timeout.is_some() {
        c.acquire_timeout = args.acquire_timeout;
    }
    if args.create_timeout.is_some() {
        c.create_timeout = args.create_timeout;
    }
    if args.idle_timeout.is_some() {
        c.idle_timeout = args.idle_timeout;
    }
    if args.max_lifetime.is_some() {
        c.max_lifetime = args.max_lifetime;
    }
    if let Some(n) = args.retry_limit {
        c.retry_limit = n;
    }
    if let Some(on) = args.validate {
        c.validate_on_acquire = on;
    }
    if args.warm {
        c.fill_min_idle = true;
    }
    c.validate().map_err(|e| Fail::Usage(e.to_string()))?;
    Ok(c)
}

/// Checks the load settings that clap cannot.
fn check_load(args: &BenchArgs) -> Result<(), Fail> {
    if !(0.0..=1.0).contains(&args.drop_rate) {
        return Err(Fail::Usage(format!("--drop-rate must be between 0 and 1, not {}", args.drop_rate)));
    }
    if let Some(rate) = args.rate {
        if !(rate.is_finite() && rate > 0.0) {
            return Err(Fail::Usage(format!("--rate must be a positive number of operations per second, not {rate}")));
        }
    }
    if args.duration.is_zero() {
        return Err(Fail::Usage("--duration must be longer than zero".into()));
    }
    if args.url.is_some() && (args.drop_rate > 0.0 || !args.server_latency.is_zero()) {
        return Err(Fail::Usage("--server-latency and --drop-rate shape the embedded server; drop --url".into()));
    }
    if args.mode == Mode::Blocking && args.tasks > MAX_THREADS {
        return Err(Fail::Usage(format!(
            "--mode blocking starts one thread per task: use at most {MAX_THREADS} tasks"
        )));
    }
    Ok(())
}

/// `kpool bench`.
pub(crate) fn main(args: BenchArgs) -> Result<ExitCode, Fail> {
    check_load(&args)?;
    let target = args.url.as_deref().map(Target::parse).transpose()?;
    let config = pool_config(&args)?;
    let plan = Plan {
        tasks: args.tasks,
        duration: args.duration,
        hold: args.hold,
        rate: args.rate,
        endpoints: args.endpoints,
        warm: args.warm,
        quiet: args.quiet,
        interval: interval_for(args.duration),
        interrupted: Arc::new(AtomicBool::new(false)),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("kpool-bench")
        .build()
        .map_err(|e| Fail::Run(format!("cannot start the tokio runtime: {e}")))?;
    stop_on_ctrl_c(&runtime, plan.interrupted.clone())?;

    let faults = Faults { latency: args.server_latency, drop_rate: args.drop_rate };
    let server = match target {
        None => Some(EchoServer::start(faults).map_err(|e| Fail::Run(format!("cannot start the echo server: {e}")))?),
        Some(_) => None,
    };
    let (target, label) = match (target, &server) {
        (Some(t), _) => {
            let label = t.display();
            (t, label)
        }
        (None, Some(s)) => (
            Target::Tcp { host: s.addr().ip().to_string(), port: s.addr().port() },
            format!("embedded echo server on {}", s.addr()),
        ),
        (None, None) => unreachable!("no URL means an embedded server"),
    };
    let outcome = run_target(&runtime, target, config.clone(), &plan, &label, args.mode)?;

    let info = RunInfo {
        target: label,
        server: server.as_ref().map(|s| (faults, s.stats())),
        mode: args.mode,
        preset: args.preset.as_str(),
        config: &config,
        endpoints: plan.endpoints,
        warm: plan.warm,
        tasks: plan.tasks,
        duration: plan.duration,
        hold: plan.hold,
        rate: plan.rate,
    };
    let report = Report::new(&info, &outcome);
    drop(server);
    print!("{}", report.text());
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report).expect("a report serializes");
        std::fs::write(path, json + "\n")
            .map_err(|e| Fail::Run(format!("cannot write the JSON report to {}: {e}", path.display())))?;
        println!("JSON report: {}", path.display());
    }
    if let Some(path) = &args.html {
        std::fs::write(path, crate::html::render(&report))
            .map_err(|e| Fail::Run(format!("cannot write the HTML report to {}: {e}", path.display())))?;
        println!("HTML report: {}", path.display());
    }
    if report.ops == 0 {
        let why = report.errors.first().map_or("no operation completed".to_owned(), |e| e.message.clone());
        return Err(Fail::Run(format!("no operation succeeded: {why}")));
    }
    Ok(ExitCode::SUCCESS)
}

/// Bounds a connect and, for blocking sockets, every read and write, so a
/// silent server cannot hang a worker for good.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs the load with the manager that fits the target and the mode.
fn run_target(
    runtime: &tokio::runtime::Runtime,
    target: Target,
    config: Config,
    plan: &Plan,
    label: &str,
    mode: Mode,
) -> Result<Outcome, Fail> {
    use kpool_net::{Address, blocking};
    let connect = Some(config.acquire_timeout.map_or(IO_TIMEOUT, |t| t.min(IO_TIMEOUT)));
    let io = Some(IO_TIMEOUT);
    match (target, mode) {
        (Target::Tcp { host, port }, Mode::Async) => {
            let m = kpool_net::TcpManager::new().connect_timeout(connect);
            runtime.block_on(run_async(m, Address::host(host, port), config, plan, label))
        }
        (Target::Tcp { host, port }, Mode::Blocking) => {
            let m = blocking::TcpManager::new().connect_timeout(connect).io_timeout(io);
            run_blocking(m, Address::host(host, port), config, plan, label)
        }
        (Target::Unix(path), Mode::Async) => {
            let m = kpool_net::UnixManager::new().connect_timeout(connect);
            runtime.block_on(run_async(m, path, config, plan, label))
        }
        (Target::Unix(path), Mode::Blocking) => {
            let m = blocking::UnixManager::new().connect_timeout(connect).io_timeout(io);
            run_blocking(m, path, config, plan, label)
        }
        (Target::Tls { host, port, ca }, Mode::Async) => {
            let m = kpool_net::TlsManager::new(crate::work::tls_config(ca.as_deref())?).connect_timeout(connect);
            runtime.block_on(run_async(m, Address::host(host, port), config, plan, label))
        }
        (Target::Tls { host, port, ca }, Mode::Blocking) => {
            let tls = crate::work::tls_config(ca.as_deref())?;
            let m = blocking::TlsManager::new(tls).connect_timeout(connect).io_timeout(io);
            run_blocking(m, Address::host(host, port), config, plan, label)
        }
        (Target::Postgres(url), Mode::Async) => match crate::work::postgres(&url)? {
            Postgres::Plain(m) => runtime.block_on(run_async(m, (), config, plan, label)),
            Postgres::Tls(m) => runtime.block_on(run_async(m, (), config, plan, label)),
        },
        (Target::Postgres(url), Mode::Blocking) => match crate::work::postgres_blocking(&url, IO_TIMEOUT)? {
            Postgres::Plain(m) => run_blocking(m, (), config, plan, label),
            Postgres::Tls(m) => run_blocking(m, (), config, plan, label),
        },
        (Target::Redis(url), Mode::Async) => {
            let m = crate::work::redis(&url)?.connection_timeout(connect);
            runtime.block_on(run_async(m, (), config, plan, label))
        }
        (Target::Redis(url), Mode::Blocking) => {
            let m = crate::work::redis_blocking(&url)?.connect_timeout(IO_TIMEOUT).io_timeout(io);
            run_blocking(m, (), config, plan, label)
        }
    }
}

fn keys<E: Clone>(endpoint: E, n: u16) -> Arc<[ShardKey<E>]> {
    (0..n).map(|i| (i, endpoint.clone())).collect()
}

async fn run_async<M: Workload>(
    manager: M,
    endpoint: M::Endpoint,
    config: Config,
    plan: &Plan,
    label: &str,
) -> Result<Outcome, Fail> {
    // Fail fast, outside the pool (so its counters stay about the load), if
    // the server cannot be reached.
    let deadline = config.acquire_timeout.unwrap_or(Duration::from_secs(10));
    match tokio::time::timeout(deadline, manager.create(&endpoint)).await {
        Ok(Ok(conn)) => {
            let _ = manager.dispose(&endpoint, conn).await;
        }
        Ok(Err(e)) => return Err(Fail::Run(format!("cannot connect to {label}: {}", crate::probe::explain(&e)))),
        Err(_) => return Err(Fail::Run(format!("cannot connect to {label}: timed out after {deadline:?}"))),
    }
    let keys = keys(endpoint, plan.endpoints);
    let pool = kpool::Pool::builder(Sharded(manager)).config(config).build().map_err(|e| Fail::Usage(e.to_string()))?;
    if plan.warm {
        for key in keys.iter() {
            pool.warm(key).await.map_err(|e| Fail::Run(format!("cannot warm the pool: {}", describe(&e))))?;
        }
    }

    let (p1, p2) = (pool.clone(), pool.clone());
    let (progress, start, shared, sampler) =
        plan.begin(Mode::Async, move || view(p1.status()), move || p2.counters())?;
    let mut workers = tokio::task::JoinSet::new();
    for id in 0..plan.tasks as usize {
        let (pool, keys, shared) = (pool.clone(), keys.clone(), shared.clone());
        workers.spawn(async move {
            let mut n = id;
            while let Some(at) = shared.next_start() {
                if let Some(at) = at {
                    tokio::time::sleep_until(at.into()).await;
                }
                let key = &keys[n % keys.len()];
                n += 1;
                let t0 = Instant::now();
                match pool.get_for(key).await {
                    Ok(mut conn) => {
                        let waited = t0.elapsed();
                        let t1 = Instant::now();
                        let result = pool.manager().0.run_op(&mut conn).await;
                        let op = t1.elapsed();
                        if let Some(delays) = &shared.delays {
                            delays.sleep(shared.hold).await;
                        }
                        match result {
                            Ok(()) => shared.recorder.ok(id, waited, op),
                            Err(msg) => {
                                kpool::Pooled::mark_broken(&mut conn);
                                shared.recorder.op_error(id, waited, msg);
                            }
                        }
                    }
                    Err(e) => {
                        shared.recorder.acquire_failed(id, e.is_timeout(), describe(&e));
                        if !e.is_timeout() {
                            tokio::time::sleep(ERROR_PAUSE).await;
                        }
                    }
                }
            }
        });
    }
    while let Some(joined) = workers.join_next().await {
        if let Err(e) = joined {
            if e.is_panic() {
                std::panic::resume_unwind(e.into_panic());
            }
        }
    }
    let elapsed = start.elapsed();
    let end = PoolEnd::new(pool.counters(), pool.metrics());
    let sampled = sampler.finish();
    progress.finish_and_clear();
    pool.close_timeout(Duration::from_secs(2)).await;
    Ok(outcome(elapsed, end, &shared, sampled, plan))
}

fn run_blocking<M: BlockingWorkload>(
    manager: M,
    endpoint: M::Endpoint,
    config: Config,
    plan: &Plan,
    label: &str,
) -> Result<Outcome, Fail> {
    match manager.create(&endpoint) {
        Ok(conn) => {
            let _ = manager.dispose(&endpoint, conn);
        }
        Err(e) => return Err(Fail::Run(format!("cannot connect to {label}: {}", crate::probe::explain(&e)))),
    }
    let keys = keys(endpoint, plan.endpoints);
    let pool = kpool::blocking::Pool::builder(Sharded(manager))
        .config(config)
        .build()
        .map_err(|e| Fail::Usage(e.to_string()))?;
    if plan.warm {
        for key in keys.iter() {
            pool.warm(key).map_err(|e| Fail::Run(format!("cannot warm the pool: {}", describe(&e))))?;
        }
    }

    let (p1, p2) = (pool.clone(), pool.clone());
    let (progress, start, shared, sampler) =
        plan.begin(Mode::Blocking, move || view(p1.status()), move || p2.counters())?;
    let mut threads = Vec::with_capacity(plan.tasks as usize);
    for id in 0..plan.tasks as usize {
        let (pool, keys, shared) = (pool.clone(), keys.clone(), shared.clone());
        let spawned =
            std::thread::Builder::new().name(format!("kpool-worker-{id}")).stack_size(256 * 1024).spawn(move || {
                let mut n = id;
                while let Some(at) = shared.next_start() {
                    if let Some(at) = at {
                        std::thread::sleep(at.saturating_duration_since(Instant::now()));
                    }
                    let key = &keys[n % keys.len()];
                    n += 1;
                    let t0 = Instant::now();
                    match pool.get_for(key) {
                        Ok(mut conn) => {
                            let waited = t0.elapsed();
                            let t1 = Instant::now();
                            let result = pool.manager().0.run_op(&mut conn);
                            let op = t1.elapsed();
                            if !shared.hold.is_zero() {
                                std::thread::sleep(shared.hold);
                            }
                            match result {
                                Ok(()) => shared.recorder.ok(id, waited, op),
                                Err(msg) => {
                                    kpool::blocking::Pooled::mark_broken(&mut conn);
                                    shared.recorder.op_error(id, waited, msg);
                                }
                            }
                        }
                        Err(e) => {
                            shared.recorder.acquire_failed(id, e.is_timeout(), describe(&e));
                            if !e.is_timeout() {
                                std::thread::sleep(ERROR_PAUSE);
                            }
                        }
                    }
                }
            });
        match spawned {
            Ok(t) => threads.push(t),
            Err(e) => {
                progress.finish_and_clear();
                return Err(Fail::Run(format!("cannot start worker thread {id}: {e}")));
            }
        }
    }
    for t in threads {
        if let Err(panic) = t.join() {
            std::panic::resume_unwind(panic);
        }
    }
    let elapsed = start.elapsed();
    let end = PoolEnd::new(pool.counters(), pool.metrics());
    let sampled = sampler.finish();
    progress.finish_and_clear();
    pool.close_timeout(Duration::from_secs(2));
    Ok(outcome(elapsed, end, &shared, sampled, plan))
}

/// What the pool said about itself when the load stopped.
struct PoolEnd {
    counters: CounterSnapshot,
    connect: HistogramSnapshot,
    endpoints: Vec<(String, CounterSnapshot)>,
    peaks: (usize, usize),
}

impl PoolEnd {
    fn new(counters: CounterSnapshot, metrics: kpool::MetricsSnapshot) -> PoolEnd {
        let peaks = (metrics.pool.peak_in_use, metrics.pool.peak_waiting);
        let endpoints = metrics.endpoints.into_iter().map(|(name, m)| (name, m.counters)).collect();
        PoolEnd { counters, connect: metrics.pool.creation, endpoints, peaks }
    }
}

fn outcome(
    elapsed: Duration,
    end: PoolEnd,
    shared: &Shared,
    sampled: (Vec<Sample>, Vec<Slice>),
    plan: &Plan,
) -> Outcome {
    let (samples, slices) = sampled;
    let mut total = Figures::new();
    for s in &slices {
        total.merge(&s.figures);
    }
    Outcome {
        elapsed,
        total,
        slices,
        samples,
        counters: end.counters,
        connect: end.connect,
        endpoints: end.endpoints,
        peaks: end.peaks,
        interval: plan.interval,
        interrupted: shared.interrupted.load(Ordering::Relaxed),
    }
}

/// Ctrl-C stops the workers after their current operation, and the report
/// covers what ran; a second Ctrl-C exits at once. The handler is in place
/// when this returns.
fn stop_on_ctrl_c(runtime: &tokio::runtime::Runtime, interrupted: Arc<AtomicBool>) -> Result<(), Fail> {
    use tokio::signal::unix::{SignalKind, signal};
    let _entered = runtime.enter();
    let mut sigint =
        signal(SignalKind::interrupt()).map_err(|e| Fail::Run(format!("cannot listen for Ctrl-C: {e}")))?;
    runtime.spawn(async move {
        if sigint.recv().await.is_some() {
            interrupted.store(true, Ordering::Relaxed);
            if sigint.recv().await.is_some() {
                std::process::exit(130);
            }
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorder_takes_and_resets() {
        let r = Recorder::new();
        r.ok(0, Duration::from_micros(5), Duration::from_micros(20));
        r.ok(17, Duration::from_micros(7), Duration::from_micros(20));
        r.acquire_failed(3, true, "timed out".into());
        r.op_error(3, Duration::from_micros(1), "closed".into());
        let f = r.take();
        assert_eq!((f.ok, f.timeouts, f.op_errors, f.acquire_errors), (2, 1, 1, 0));
        assert_eq!(f.wait.len(), 3);
        assert_eq!(f.messages["timed out"], 1);
        assert_eq!(r.take().ok, 0, "taking empties the shards");
    }

    #[test]
    fn pacer_spreads_operations() {
        let start = Instant::now();
        let p = Pacer { start, end: start + Duration::from_secs(1), per_op: 0.25, next: AtomicU64::new(0) };
        let times: Vec<_> = std::iter::from_fn(|| p.next()).collect();
        assert_eq!(times.len(), 4);
        assert_eq!(times[3] - times[0], Duration::from_millis(750));
    }

    #[test]
    fn intervals_make_about_a_hundred_slices() {
        assert_eq!(interval_for(Duration::from_secs(1)), Duration::from_millis(50));
        assert_eq!(interval_for(Duration::from_secs(60)), Duration::from_millis(600));
    }
}
