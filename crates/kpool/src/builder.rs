//! Builder setters shared by the async and the blocking pool.

use std::time::Duration;

use crate::config::{Collection, Config};

/// Generates the `Config` setters on a builder type that has `config: Config`.
macro_rules! config_setters {
    () => {
        /// Replaces every setting at once (for example with a preset).
        /// Defaults to [`Config::default`](crate::Config::default).
        pub fn config(mut self, config: crate::Config) -> Self {
            self.config = config;
            self
        }

        /// Maximum connections per endpoint. Defaults to 10.
        pub fn max_size(mut self, n: usize) -> Self {
            self.config.max_size = n;
            self
        }

        /// Core connections per endpoint, never idled out. Defaults to 1.
        pub fn min_idle(mut self, n: usize) -> Self {
            self.config.min_idle = n;
            self
        }

        /// Cap on idle connections per endpoint. Defaults to `Some(5)`.
        pub fn max_idle(mut self, n: Option<usize>) -> Self {
            self.config.max_idle = n;
            self
        }

        /// Soft cap above `max_size` under load. Defaults to `None`.
        pub fn burst_limit(mut self, n: Option<usize>) -> Self {
            self.config.burst_limit = n;
            self
        }

        /// Maximum connections across all endpoints. Defaults to `None`.
        pub fn total_max_size(mut self, n: Option<usize>) -> Self {
            self.config.total_max_size = n;
            self
        }

        /// Idle time after which an extra connection is disposed. Defaults to 5 min.
        pub fn idle_timeout(mut self, t: Option<std::time::Duration>) -> Self {
            self.config.idle_timeout = t;
            self
        }

        /// Age after which any connection is disposed. Defaults to 1 h.
        pub fn max_lifetime(mut self, t: Option<std::time::Duration>) -> Self {
            self.config.max_lifetime = t;
            self
        }

        /// Spread lifetimes by up to 2.5%. Defaults to `true`.
        pub fn lifetime_jitter(mut self, on: bool) -> Self {
            self.config.lifetime_jitter = on;
            self
        }

        /// Default acquire deadline. Defaults to 10 s.
        pub fn acquire_timeout(mut self, t: Option<std::time::Duration>) -> Self {
            self.config.acquire_timeout = t;
            self
        }

        /// Deadline of one `create`. Defaults to `None` (the acquire deadline).
        pub fn create_timeout(mut self, t: Option<std::time::Duration>) -> Self {
            self.config.create_timeout = t;
            self
        }

        /// Deadline of one `dispose`. Defaults to 5 s.
        pub fn dispose_timeout(mut self, t: Option<std::time::Duration>) -> Self {
            self.config.dispose_timeout = t;
            self
        }

        /// Retries of a failed `create` within one acquire. Defaults to 3.
        pub fn retry_limit(mut self, n: u32) -> Self {
            self.config.retry_limit = n;
            self
        }

        /// First retry delay, doubled for each further retry. Defaults to 1 s.
        pub fn retry_delay(mut self, t: std::time::Duration) -> Self {
            self.config.retry_delay = t;
            self
        }

        /// Health-check reused connections on acquire. Defaults to `true`.
        pub fn validate_on_acquire(mut self, on: bool) -> Self {
            self.config.validate_on_acquire = on;
            self
        }

        /// Skip the health check for a connection returned this recently.
        /// Defaults to 500 ms.
        pub fn validation_bypass(mut self, t: std::time::Duration) -> Self {
            self.config.validation_bypass = t;
            self
        }

        /// Inline or background collection. Defaults to
        /// [`Collection::Inline`](crate::Collection::Inline).
        pub fn collection(mut self, c: crate::Collection) -> Self {
            self.config.collection = c;
            self
        }

        /// Most due connections disposed per release (0: automatic).
        /// Defaults to 0.
        pub fn dispose_batch_size(mut self, n: usize) -> Self {
            self.config.dispose_batch_size = n;
            self
        }

        /// Record metrics; off only to measure their cost. Defaults to `true`.
        pub fn metrics(mut self, on: bool) -> Self {
            self.config.metrics = on;
            self
        }

        /// Keep histograms per endpoint as well as per pool. Defaults to `false`.
        pub fn endpoint_histograms(mut self, on: bool) -> Self {
            self.config.endpoint_histograms = on;
            self
        }

        /// Report connections held longer than this (with where they were
        /// acquired); turns the background collector on. Defaults to `None`.
        pub fn leak_detection(mut self, threshold: Option<std::time::Duration>) -> Self {
            self.config.leak_detection = threshold;
            self
        }

        /// Create and keep `min_idle` connections ready; turns the background
        /// collector on. Defaults to `false`.
        pub fn fill_min_idle(mut self, on: bool) -> Self {
            self.config.fill_min_idle = on;
            self
        }
    };
}

pub(crate) use config_setters;

/// Final touches common to both builders: validation, and `fill_min_idle`
/// implying a background collector (filling needs something that runs when
/// nobody calls the pool).
pub(crate) fn finish(mut config: Config) -> Result<Config, crate::ConfigError> {
    config.validate()?;
    if config.fill_min_idle || config.leak_detection.is_some() {
        config.collection = Collection::Background;
    }
    Ok(config)
}

/// The delay before retry number `n` (1-based): `base * 2^(n-1)`, capped.
pub(crate) fn backoff(base: Duration, n: u32) -> Duration {
    base.saturating_mul(1u32 << (n.saturating_sub(1)).min(16))
}

/// The retry policy after a failed `create`, shared by both front-ends:
/// the error to return, or the backoff before retrying the whole acquire.
///
/// A timeout that reached the acquire's deadline (`deadline_hit`), a panic
/// and a closed pool end the acquire; so does a backend error the manager
/// calls not transient. Otherwise the failure is counted and remembered
/// (`last_err`, reported by a later timeout), and past `retry_limit` the
/// last error is returned. `timeout` builds the create-phase timeout error
/// around the remembered error.
pub(crate) fn after_create_failure<E>(
    e: crate::Error<E>,
    deadline_hit: bool,
    is_transient: impl Fn(&E) -> bool,
    config: &Config,
    last_err: &mut Option<E>,
    failures: &mut u32,
    timeout: impl FnOnce(Option<E>) -> crate::Error<E>,
) -> Result<Duration, crate::Error<E>> {
    use crate::{ErrorKind, Phase};
    if deadline_hit {
        return Err(timeout(last_err.take()));
    }
    if matches!(e.kind(), ErrorKind::Panic(_) | ErrorKind::Closed) || e.backend().is_some_and(|b| !is_transient(b)) {
        return Err(e);
    }
    *failures += 1;
    let timed_out = e.is_timeout();
    if let Some(b) = e.into_backend() {
        *last_err = Some(b);
    }
    if *failures > config.retry_limit {
        return Err(match last_err.take() {
            Some(b) if !timed_out => crate::Error::backend_error(Phase::Create, b),
            last => timeout(last),
        });
    }
    Ok(backoff(config.retry_delay, *failures))
}

/// The default endpoint when none was set: `()` for `()`-keyed managers.
pub(crate) fn unit_endpoint<K: 'static + Clone>() -> Option<K> {
    (&() as &dyn std::any::Any).downcast_ref::<K>().cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles() {
        let base = Duration::from_millis(100);
        assert_eq!(backoff(base, 1), base);
        assert_eq!(backoff(base, 2), base * 2);
        assert_eq!(backoff(base, 4), base * 8);
    }
}
