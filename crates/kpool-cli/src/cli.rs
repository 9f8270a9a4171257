//! Command-line arguments.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Load-test a kpool connection pool, or probe a server.
#[derive(Debug, Parser)]
#[command(name = "kpool", version, about, propagate_version = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Drive load through a pool and report throughput, wait times and pool behaviour.
    ///
    /// Without --url, an embedded TCP echo server on 127.0.0.1 serves the
    /// load, so nothing needs to be installed.
    Bench(Box<BenchArgs>),
    /// Connect once, check the connection, and print the timings or the problem.
    Probe(ProbeArgs),
}

/// Whether tasks on a tokio runtime or OS threads drive the load.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Mode {
    /// `kpool::Pool` on a multi-threaded tokio runtime; one task per worker.
    Async,
    /// `kpool::blocking::Pool`; one OS thread per worker.
    Blocking,
}

impl Mode {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Mode::Async => "async",
            Mode::Blocking => "blocking",
        }
    }
}

/// The named pool presets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum PresetName {
    /// 1..=10 connections, validation on.
    Default,
    /// 10..=100 connections, no validation.
    Aggressive,
    /// 5..=20 connections.
    Balanced,
    /// 1..=5 connections.
    Conservative,
}

impl PresetName {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            PresetName::Default => "default",
            PresetName::Aggressive => "aggressive",
            PresetName::Balanced => "balanced",
            PresetName::Conservative => "conservative",
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// Server to load: postgres://… (SELECT 1), redis://… (PING), or an echo server at
    /// tcp://host:port, tls://host:port[?ca=FILE] or unix:///path. Without it, an embedded
    /// echo server on 127.0.0.1 is started.
    #[arg(long, value_name = "URL")]
    pub(crate) url: Option<String>,

    // ---- pool ----
    /// Pool preset the other pool options adjust.
    #[arg(long, value_enum, default_value_t = PresetName::Default, help_heading = "Pool")]
    pub(crate) preset: PresetName,
    /// Maximum connections per endpoint [default: from the preset].
    #[arg(long, help_heading = "Pool")]
    pub(crate) max_size: Option<usize>,
    /// Core connections per endpoint, kept from idle expiry [default: from the preset].
    #[arg(long, help_heading = "Pool")]
    pub(crate) min_idle: Option<usize>,
    /// Cap on idle connections per endpoint; 0 removes the cap [default: from the preset].
    #[arg(long, help_heading = "Pool")]
    pub(crate) max_idle: Option<usize>,
    /// Let an endpoint grow up to this many connections under load (soft cap above --max-size).
    #[arg(long, value_name = "N", help_heading = "Pool")]
    pub(crate) burst: Option<usize>,
    /// Maximum connections across all endpoints.
    #[arg(long, value_name = "N", help_heading = "Pool")]
    pub(crate) total_max_size: Option<usize>,
    /// Deadline of one acquire, e.g. 500ms, 2s [default: from the preset].
    #[arg(long, value_parser = parse_duration, help_heading = "Pool")]
    pub(crate) acquire_timeout: Option<Duration>,
    /// Deadline of one connect [default: none (the acquire deadline)].
    #[arg(long, value_parser = parse_duration, help_heading = "Pool")]
    pub(crate) create_timeout: Option<Duration>,
    /// Idle time after which an extra connection is closed [default: from the preset].
    #[arg(long, value_parser = parse_duration, help_heading = "Pool")]
    pub(crate) idle_timeout: Option<Duration>,
    /// Age after which any connection is closed [default: from the preset].
    #[arg(long, value_parser = parse_duration, help_heading = "Pool")]
    pub(crate) max_lifetime: Option<Duration>,
    /// Retries of a failed connect within one acquire [default: from the preset].
    #[arg(long, help_heading = "Pool")]
    pub(crate) retry_limit: Option<u32>,
    /// Health-check reused connections on acquire [default: from the preset].
    #[arg(long, help_heading = "Pool")]
    pub(crate) validate: Option<bool>,
    /// Create --min-idle connections before the load starts (and keep them).
    #[arg(long, help_heading = "Pool")]
    pub(crate) warm: bool,
    /// Number of endpoints (keys) the load is spread over; each gets its own --max-size.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..), help_heading = "Pool")]
    pub(crate) endpoints: u16,
    /// Async tasks on tokio, or OS threads with the blocking pool.
    #[arg(long, value_enum, default_value_t = Mode::Async, help_heading = "Pool")]
    pub(crate) mode: Mode,

    // ---- load ----
    /// Concurrent workers (tasks, or threads in blocking mode).
    #[arg(long, short = 'c', default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=100_000), help_heading = "Load")]
    pub(crate) tasks: u32,
    /// How long to drive load, e.g. 5s, 1m.
    #[arg(long, short = 'd', default_value = "5s", value_parser = parse_duration, help_heading = "Load")]
    pub(crate) duration: Duration,
    /// How long each worker holds a connection after its round trip, e.g. 1ms.
    #[arg(long, default_value = "0s", value_parser = parse_duration, help_heading = "Load")]
    pub(crate) hold: Duration,
    /// Cap on operations per second across all workers [default: as fast as possible].
    #[arg(long, value_name = "OPS_PER_S", help_heading = "Load")]
    pub(crate) rate: Option<f64>,

    // ---- embedded server ----
    /// Embedded server: delay before each echo, e.g. 200us, 1ms.
    #[arg(long, default_value = "0s", value_parser = parse_duration, help_heading = "Embedded server")]
    pub(crate) server_latency: Duration,
    /// Embedded server: probability (0..=1) of dropping the connection instead of answering.
    #[arg(long, default_value_t = 0.0, help_heading = "Embedded server")]
    pub(crate) drop_rate: f64,

    // ---- output ----
    /// Also write every figure as JSON to FILE.
    #[arg(long, value_name = "FILE", help_heading = "Output")]
    pub(crate) json: Option<PathBuf>,
    /// Also write a self-contained HTML report with charts to FILE.
    #[arg(long, value_name = "FILE", help_heading = "Output")]
    pub(crate) html: Option<PathBuf>,
    /// No progress bar, even on a terminal.
    #[arg(long, short = 'q', help_heading = "Output")]
    pub(crate) quiet: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ProbeArgs {
    /// Server to probe: postgres://…, redis://…, tcp://host:port, tls://host:port[?ca=FILE], unix:///path.
    pub(crate) url: String,
    /// Give up connecting or checking after this long.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub(crate) timeout: Duration,
}

/// Parses `1s`, `250ms`, `200us`, `1m30s`; a bare number is seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).map_err(|e| e.to_string());
    }
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 500ms, 2s, 1m)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("200us").unwrap(), Duration::from_micros(200));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-1").is_err());
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
