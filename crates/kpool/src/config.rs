//! Pool settings, their defaults, the named presets and their validation.

use std::fmt;
use std::time::Duration;

/// How expired and idle connections are found and disposed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Collection {
    /// On every release, at most [`Config::dispose_batch_size`] due connections
    /// of the releasing endpoint are disposed. Nothing runs in the background,
    /// so an untouched pool keeps its connections until it is used again
    /// (acquire still never hands out an expired one).
    #[default]
    Inline,
    /// A background collector (a tokio task for the async pool, a thread for
    /// the blocking pool) sleeps until the earliest idle or lifetime deadline
    /// and disposes what is due, and refills `min_idle` when
    /// [`Config::fill_min_idle`] is on. It holds only a weak reference to the
    /// pool: dropping the pool stops it.
    Background,
}

/// Every setting of a pool. Build one with [`Config::default`] or a preset and
/// adjust the public fields, or use the pool builders' setters.
///
/// Limits are per endpoint except [`total_max_size`](Self::total_max_size).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Config {
    /// Maximum connections per endpoint: idle + checked out + being created.
    pub max_size: usize,
    /// Core connections per endpoint: idle expiry never removes them, and with
    /// [`fill_min_idle`](Self::fill_min_idle) the pool creates them ahead of use.
    pub min_idle: usize,
    /// Cap on idle connections per endpoint; a connection returned while the
    /// endpoint already has this many idle is disposed. `None`: no cap.
    pub max_idle: Option<usize>,
    /// Soft cap above `max_size`: under load (no idle connection, nobody to
    /// hand off) the endpoint may grow up to this many; connections returned
    /// while the endpoint holds more than `max_size` are closed unless
    /// somebody waits. `None`: no burst.
    pub burst_limit: Option<usize>,
    /// Maximum connections across all endpoints. `None`: no global cap.
    pub total_max_size: Option<usize>,
    /// How long an extra (non-core) connection may stay idle.
    pub idle_timeout: Option<Duration>,
    /// How long any connection may live, idle or not. A connection checked
    /// out when it expires is disposed on return, never under its user.
    pub max_lifetime: Option<Duration>,
    /// Shorten each connection's lifetime by a random amount of up to 2.5% so
    /// that connections created together do not all expire together
    /// (HikariCP does the same).
    pub lifetime_jitter: bool,
    /// Default deadline of an acquire: waiting, creating, checking and retries
    /// all count against it. `None`: wait forever.
    pub acquire_timeout: Option<Duration>,
    /// Deadline for one `create` call (also bounded by the acquire deadline).
    pub create_timeout: Option<Duration>,
    /// Deadline for one `dispose` call; past it the connection is dropped.
    pub dispose_timeout: Option<Duration>,
    /// How many times a failed `create` is retried within one acquire.
    pub retry_limit: u32,
    /// Delay before the first retry; each further retry doubles it.
    pub retry_delay: Duration,
    /// Health-check a reused connection (`check_alive`) before handing it out.
    pub validate_on_acquire: bool,
    /// Skip the health check for a connection returned less than this long ago
    /// (HikariCP's `aliveBypassWindowMs`).
    pub validation_bypass: Duration,
    /// Inline or background collection.
    pub collection: Collection,
    /// Most due connections disposed inline on one release; 0 means automatic:
    /// `floor(log2(size + 1)) + 1` for an endpoint of `size` connections.
    pub dispose_batch_size: usize,
    /// Create `min_idle` connections ahead of use and refill them when they go.
    pub fill_min_idle: bool,
    /// Record metrics (histograms and the per-acquire counters). On by
    /// default; off only to measure what metrics cost.
    pub metrics: bool,
    /// Keep acquire/usage/creation histograms per endpoint as well as per
    /// pool (about 7.5 KiB per endpoint).
    pub endpoint_histograms: bool,
    /// Report a connection held longer than this, once, with the place it was
    /// acquired (HikariCP's `leakDetectionThreshold`); its return is reported
    /// too. Turns the background collector on.
    pub leak_detection: Option<Duration>,
}

/// Values shared by the presets, taken from the apifrom seed.
struct Preset {
    min: usize,
    max: usize,
    max_idle: usize,
    lifetime_s: u64,
    acquire_ms: u64,
    idle_s: u64,
    retry_limit: u32,
    retry_ms: u64,
    validate: bool,
}

impl Preset {
    fn config(self) -> Config {
        Config {
            max_size: self.max,
            min_idle: self.min,
            max_idle: Some(self.max_idle),
            burst_limit: None,
            total_max_size: None,
            idle_timeout: Some(Duration::from_secs(self.idle_s)),
            max_lifetime: Some(Duration::from_secs(self.lifetime_s)),
            lifetime_jitter: true,
            acquire_timeout: Some(Duration::from_millis(self.acquire_ms)),
            create_timeout: None,
            dispose_timeout: Some(Duration::from_secs(5)),
            retry_limit: self.retry_limit,
            retry_delay: Duration::from_millis(self.retry_ms),
            validate_on_acquire: self.validate,
            validation_bypass: Duration::from_millis(500),
            collection: Collection::Inline,
            dispose_batch_size: 0,
            fill_min_idle: false,
            metrics: true,
            endpoint_histograms: false,
            leak_detection: None,
        }
    }
}

impl Default for Config {
    /// 1..=10 connections, 5 idle at most, 1 h lifetime, 5 min idle timeout,
    /// 10 s acquire timeout, 3 create retries from 1 s, validation on acquire.
    fn default() -> Self {
        Preset {
            min: 1,
            max: 10,
            max_idle: 5,
            lifetime_s: 3600,
            acquire_ms: 10_000,
            idle_s: 300,
            retry_limit: 3,
            retry_ms: 1000,
            validate: true,
        }
        .config()
    }
}

impl Config {
    /// High throughput, low latency: 10..=100 connections, 20 idle, 30 min
    /// lifetime, 10 min idle timeout, 5 s acquire timeout, 5 retries from
    /// 100 ms, no validation on acquire.
    pub fn aggressive() -> Self {
        Preset {
            min: 10,
            max: 100,
            max_idle: 20,
            lifetime_s: 1800,
            acquire_ms: 5000,
            idle_s: 600,
            retry_limit: 5,
            retry_ms: 100,
            validate: false,
        }
        .config()
    }

    /// A middle ground: 5..=20 connections, 10 idle, 1 h lifetime, 5 min idle
    /// timeout, 10 s acquire timeout, 3 retries from 500 ms, validation on.
    pub fn balanced() -> Self {
        Preset {
            min: 5,
            max: 20,
            max_idle: 10,
            lifetime_s: 3600,
            acquire_ms: 10_000,
            idle_s: 300,
            retry_limit: 3,
            retry_ms: 500,
            validate: true,
        }
        .config()
    }

    /// Reliability and thrift: 1..=5 connections, 2 idle, 2 h lifetime,
    /// 30 min idle timeout, 30 s acquire timeout, 3 retries from 1 s,
    /// validation on.
    pub fn conservative() -> Self {
        Preset {
            min: 1,
            max: 5,
            max_idle: 2,
            lifetime_s: 7200,
            acquire_ms: 30_000,
            idle_s: 1800,
            retry_limit: 3,
            retry_ms: 1000,
            validate: true,
        }
        .config()
    }

    /// The preset with this name: `default`, `aggressive`, `balanced` or
    /// `conservative`.
    pub fn preset(name: &str) -> Option<Self> {
        match name {
            "default" => Some(Self::default()),
            "aggressive" => Some(Self::aggressive()),
            "balanced" => Some(Self::balanced()),
            "conservative" => Some(Self::conservative()),
            _ => None,
        }
    }

    /// Checks that the settings can work together.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the first offending setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |setting: &'static str, message: String| Err(ConfigError { setting, message });
        if self.max_size == 0 {
            return err("max_size", "max_size must be at least 1".into());
        }
        if self.total_max_size == Some(0) {
            return err("total_max_size", "total_max_size must be at least 1".into());
        }
        if self.max_idle == Some(0) {
            return err("max_idle", "max_idle must be at least 1 (use idle_timeout to drop idle connections)".into());
        }
        if self.min_idle > self.max_size {
            return err(
                "min_idle",
                format!("min_idle ({}) is greater than max_size ({})", self.min_idle, self.max_size),
            );
        }
        if let Some(max_idle) = self.max_idle {
            if self.min_idle > max_idle {
                return err("min_idle", format!("min_idle ({}) is greater than max_idle ({max_idle})", self.min_idle));
            }
        }
        if let Some(total) = self.total_max_size {
            if self.max_size > total {
                return err(
                    "max_size",
                    format!("max_size ({}) is greater than total_max_size ({total})", self.max_size),
                );
            }
        }
        if let Some(burst) = self.burst_limit {
            if burst < self.max_size {
                return err("burst_limit", format!("burst_limit ({burst}) is less than max_size ({})", self.max_size));
            }
        }
        for (name, value) in [
            ("idle_timeout", self.idle_timeout),
            ("max_lifetime", self.max_lifetime),
            ("create_timeout", self.create_timeout),
        ] {
            if value == Some(Duration::ZERO) {
                return err(name, format!("{name} must not be zero (use None to disable it)"));
            }
        }
        if let (Some(idle), Some(life)) = (self.idle_timeout, self.max_lifetime) {
            if idle > life {
                return err("idle_timeout", format!("idle_timeout ({idle:?}) is greater than max_lifetime ({life:?})"));
            }
        }
        Ok(())
    }

    /// The hard per-endpoint cap: `burst_limit` if set, else `max_size`.
    pub(crate) fn endpoint_limit(&self) -> usize {
        self.burst_limit.unwrap_or(self.max_size)
    }
}

/// Settings that cannot work together; the message names the setting, and
/// [`ConfigError::setting`] gives its name for programs (a form to highlight,
/// an environment variable to blame).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    setting: &'static str,
    message: String,
}

impl ConfigError {
    /// The offending setting, as its builder method is named (`"min_idle"`,
    /// `"idle_timeout"`, ...). When two settings contradict each other, the
    /// one the message asks to change.
    pub fn setting(&self) -> &'static str {
        self.setting
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid pool configuration: {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid_and_distinct() {
        for name in ["default", "aggressive", "balanced", "conservative"] {
            Config::preset(name).unwrap().validate().unwrap();
        }
        assert_eq!(Config::aggressive().max_size, 100);
        assert!(!Config::aggressive().validate_on_acquire);
        assert_eq!(Config::conservative().max_idle, Some(2));
        assert_eq!(Config::balanced().retry_delay, Duration::from_millis(500));
        assert!(Config::preset("fast").is_none());
    }
}
