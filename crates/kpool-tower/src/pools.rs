//! [`Pools`]: the named pools a service hands to its handlers, how they are
//! built (from given pools, URLs or `DATABASE_URL` / `REDIS_URL`), and how
//! they are checked, measured and closed.
//!
//! `Pools` is immutable once built and cheap to clone (one `Arc`): the layer
//! clones it into every request's extensions, and extractors look a pool up
//! in a map that is never locked. Every pool is also registered in a
//! [`kpool::Registry`], which does the metrics export and the closing, so
//! pools that a program registers there by other means are exported and
//! closed too.

use std::any::{Any, TypeId};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use kpool::{Config, ConfigError, ErrorKind, Manager, Phase, Pooled, Registry};

/// The name of the PostgreSQL pool built from `DATABASE_URL`.
pub const DB: &str = "db";
/// The name of the Redis pool built from `REDIS_URL`.
pub const REDIS: &str = "redis";

type ProbeFuture = Pin<Box<dyn Future<Output = Result<(), Failure>> + Send>>;
type Probe = Arc<dyn Fn(Duration) -> ProbeFuture + Send + Sync>;

/// A pool as `Pools` keeps it: typed (behind `Any`) for extractors, and
/// probed for the health route.
struct Entry {
    pool: Box<dyn Any + Send + Sync>,
    type_id: TypeId,
    probe: Probe,
}

impl Entry {
    fn new<M: Manager>(pool: kpool::Pool<M>) -> Self {
        let probed = pool.clone();
        let probe: Probe = Arc::new(move |timeout| {
            let pool = probed.clone();
            Box::pin(async move {
                // The acquire has `timeout` itself and says why it timed out;
                // this bound (a little later, so the pool's answer wins)
                // catches a check that hangs.
                let bound = timeout + Duration::from_millis(50);
                tokio::time::timeout(bound, probe(&pool, timeout)).await.unwrap_or(Err(Failure::timed_out(timeout)))
            })
        });
        Entry { pool: Box::new(pool), type_id: TypeId::of::<kpool::Pool<M>>(), probe }
    }
}

/// The named pools of a service, handed to request handlers by
/// [`PoolLayer`](crate::PoolLayer).
///
/// Build with [`Pools::builder`] (or [`Pools::from_env`]); clone freely (an
/// `Arc`). Handlers take a connection with [`Conn`](crate::Conn), a pool with
/// [`PoolOf`](crate::PoolOf), or `Pools` itself (it is an extractor too).
///
/// ```
/// use kpool::{FnManager, Pool};
/// use kpool_tower::Pools;
///
/// let cache = Pool::builder(FnManager::new(|_: ()| async { Ok::<_, std::io::Error>(0u8) })).build().unwrap();
/// let pools = Pools::builder().pool("cache", cache.clone()).build().unwrap();
/// assert_eq!(pools.names(), ["cache"]);
///
/// // Lookups are typed by manager.
/// fn found<M: kpool::Manager>(pools: &Pools, _: &Pool<M>) -> bool {
///     pools.get::<M>("cache").is_some()
/// }
/// assert!(found(&pools, &cache));
/// assert!(pools.get::<kpool::FnManager<(), u8, fn(()) -> std::future::Ready<Result<u8, ()>>>>("cache").is_none());
/// ```
#[derive(Clone)]
pub struct Pools {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Arc<Registry>,
    entries: BTreeMap<String, Entry>,
    /// The first pool registered for each pool type.
    by_type: HashMap<TypeId, String>,
    options: Options,
}

/// How responses about pools are made.
#[derive(Clone, Debug)]
pub(crate) struct Options {
    pub(crate) expose_errors: bool,
    pub(crate) retry_after: Duration,
    pub(crate) health_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options { expose_errors: false, retry_after: Duration::from_secs(1), health_timeout: Duration::from_secs(2) }
    }
}

impl fmt::Debug for Pools {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pools").field("names", &self.names()).field("options", &self.inner.options).finish()
    }
}

impl Pools {
    /// Starts building a set of pools. See [`PoolsBuilder`].
    pub fn builder() -> PoolsBuilder {
        PoolsBuilder::new()
    }

    /// Pools built from `DATABASE_URL` (named [`DB`], feature `postgres`) and
    /// `REDIS_URL` (named [`REDIS`], feature `redis`), with the default
    /// settings. Variables that are not set are skipped. For a preset or
    /// other settings use [`PoolsBuilder::from_env`].
    ///
    /// # Errors
    ///
    /// A URL that does not parse.
    pub fn from_env() -> Result<Pools, BuildError> {
        Pools::builder().from_env().build()
    }

    /// The registry every pool is registered in (for metrics, closing, or
    /// pools added by other means).
    pub fn registry(&self) -> &Arc<Registry> {
        &self.inner.registry
    }

    /// Names of all pools, sorted (those of the registry included).
    pub fn names(&self) -> Vec<String> {
        let mut names = self.inner.registry.names();
        for name in self.inner.entries.keys() {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        names.sort();
        names
    }

    /// The async pool named `name`, if it exists with manager `M`.
    pub fn get<M: Manager>(&self, name: &str) -> Option<kpool::Pool<M>> {
        match self.inner.entries.get(name) {
            Some(entry) => entry.pool.downcast_ref::<kpool::Pool<M>>().cloned(),
            None => self.inner.registry.get::<kpool::Pool<M>>(name),
        }
    }

    /// The first pool added with manager `M`, and its name.
    pub fn of_type<M: Manager>(&self) -> Option<(&str, kpool::Pool<M>)> {
        let name = self.inner.by_type.get(&TypeId::of::<kpool::Pool<M>>())?;
        let pool = self.inner.entries.get(name)?.pool.downcast_ref::<kpool::Pool<M>>()?.clone();
        Some((name, pool))
    }

    /// Prometheus text exposition (version 0.0.4) of every pool, labelled
    /// `pool="<name>"`.
    pub fn to_prometheus(&self) -> String {
        self.inner.registry.to_prometheus()
    }

    /// Metrics of every pool as one JSON object keyed by pool name.
    pub fn to_json(&self) -> String {
        let all: BTreeMap<String, kpool::MetricsSnapshot> = self.inner.registry.metrics().into_iter().collect();
        serde_json::to_string_pretty(&all).unwrap_or_else(|_| "{}".to_owned())
    }

    /// Checks that every pool can hand out a live connection, all at once,
    /// each within `timeout`. A pool that was not added through
    /// [`PoolsBuilder`] (only registered in the registry) is checked for
    /// being open.
    pub async fn check(&self, timeout: Duration) -> Health {
        let closed: BTreeMap<String, bool> =
            self.inner.registry.metrics().into_iter().map(|(name, m)| (name, m.closed)).collect();
        let checks = self.names().into_iter().map(|name| {
            let probe = self.inner.entries.get(&name).map(|e| e.probe.clone());
            let closed = closed.get(&name).copied();
            async move {
                let result = match (probe, closed) {
                    (_, Some(true)) => Err(Failure::closed()),
                    (Some(probe), _) => probe(timeout).await,
                    (None, _) => Ok(()),
                };
                PoolHealth { name, result }
            }
        });
        Health { pools: futures_util::future::join_all(checks).await }
    }

    /// Closes every pool: new acquires fail (503 from the extractors),
    /// idle connections are disposed, checked-out ones when they come back.
    pub fn close(&self) {
        self.inner.registry.close_all();
    }

    /// [`close`](Self::close), then waits up to `timeout` for checked-out
    /// connections to come back. Returns how many are still out.
    pub async fn close_timeout(&self, timeout: Duration) -> usize {
        self.inner.registry.close_all_timeout(timeout).await
    }

    pub(crate) fn options(&self) -> &Options {
        &self.inner.options
    }
}

/// Acquires a connection (for keyed pools without a default endpoint: one
/// per endpoint seen) and checks it with the manager's `check_alive`,
/// whatever the pool's bypass window says. A dead one is marked broken and
/// the check tries once more, since the pool replaces it.
async fn probe<M: Manager>(pool: &kpool::Pool<M>, timeout: Duration) -> Result<(), Failure> {
    if pool.is_closed() {
        return Err(Failure::closed());
    }
    match probe_endpoint(pool, None, timeout).await {
        Err(f) if f.kind == Some(ErrorKind::NoEndpoint) => {
            for (endpoint, _) in pool.status().endpoints {
                probe_endpoint(pool, Some(&endpoint), timeout).await?;
            }
            Ok(())
        }
        other => other,
    }
}

async fn probe_endpoint<M: Manager>(
    pool: &kpool::Pool<M>,
    endpoint: Option<&M::Endpoint>,
    timeout: Duration,
) -> Result<(), Failure> {
    let mut last = Failure::dead(None);
    for _ in 0..2 {
        let acquired = match endpoint {
            None => pool.get_timeout(timeout).await,
            Some(ep) => pool.get_for_timeout(ep, Some(timeout)).await,
        };
        let mut conn = acquired.map_err(|e| Failure::from_error(&e))?;
        let ep = Pooled::endpoint(&conn).clone();
        match pool.manager().check_alive(&ep, &mut conn).await {
            Ok(true) => return Ok(()),
            Ok(false) => last = Failure::dead(None),
            Err(e) => last = Failure::dead(Some(format!("{e:?}"))),
        }
        Pooled::mark_broken(&mut conn);
    }
    Err(last)
}

/// Why a pool failed its health check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    kind: Option<ErrorKind>,
    reason: &'static str,
    detail: String,
}

impl Failure {
    fn closed() -> Self {
        Failure { kind: Some(ErrorKind::Closed), reason: "closed", detail: "the pool is closed".to_owned() }
    }

    fn timed_out(t: Duration) -> Self {
        Failure { kind: None, reason: "timeout", detail: format!("the check did not finish within {t:?}") }
    }

    fn dead(backend: Option<String>) -> Self {
        let mut detail = "the connection handed out was not alive".to_owned();
        if let Some(b) = backend {
            detail = format!("{detail}: {b}");
        }
        Failure { kind: None, reason: "dead", detail }
    }

    pub(crate) fn from_error<E: fmt::Debug>(e: &kpool::Error<E>) -> Self {
        let reason = match e.kind() {
            // Waited in line the whole time and nothing failed: every
            // connection is busy (the backend may well be fine).
            ErrorKind::Timeout(Phase::Wait) if e.backend().is_none() => "busy",
            ErrorKind::Timeout(_) => "timeout",
            ErrorKind::Closed => "closed",
            ErrorKind::Backend(_) => "error",
            ErrorKind::Panic(_) => "panic",
            ErrorKind::NoEndpoint => "no endpoint",
            _ => "error",
        };
        Failure { kind: Some(e.kind()), reason, detail: describe(e) }
    }

    /// The pool error's kind, when the check failed acquiring.
    pub fn kind(&self) -> Option<ErrorKind> {
        self.kind
    }

    /// A one-word reason: `busy` (every connection stayed checked out),
    /// `timeout`, `closed`, `error`, `panic`, `dead`, …
    pub fn reason(&self) -> &'static str {
        self.reason
    }

    /// The full story, backend error included: for logs, or for responses
    /// with [`PoolsBuilder::expose_errors`].
    pub fn detail(&self) -> &str {
        &self.detail
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason, self.detail)
    }
}

/// The pool error's `Display`, then the backend error's `Debug` (the only
/// bound on a manager's error), if any.
pub(crate) fn describe<E: fmt::Debug>(e: &kpool::Error<E>) -> String {
    match e.backend() {
        Some(b) => format!("{e}: {b:?}"),
        None => e.to_string(),
    }
}

/// The result of [`Pools::check`].
#[derive(Clone, Debug)]
pub struct Health {
    /// One entry per pool, by name.
    pub pools: Vec<PoolHealth>,
}

/// The health of one pool.
#[derive(Clone, Debug)]
pub struct PoolHealth {
    /// The pool's name.
    pub name: String,
    /// `Ok` if it handed out a live connection.
    pub result: Result<(), Failure>,
}

impl Health {
    /// Every pool is fine.
    pub fn is_ok(&self) -> bool {
        self.pools.iter().all(|p| p.result.is_ok())
    }

    /// Names of the pools that failed.
    pub fn failing(&self) -> Vec<&str> {
        self.pools.iter().filter(|p| p.result.is_err()).map(|p| p.name.as_str()).collect()
    }

    /// A small JSON document: `{"status":"ok","pools":{"db":"ok"}}`, or
    /// `{"status":"fail","failing":["db"],"pools":{"db":"timeout"}}`; with
    /// `detail`, each failure carries its full story.
    pub fn to_json(&self, detail: bool) -> String {
        // Written by hand so that `status` comes first.
        let string = |s: &str| serde_json::Value::from(s).to_string();
        let pools: Vec<String> = self
            .pools
            .iter()
            .map(|p| {
                let v = match &p.result {
                    Ok(()) => "ok".to_owned(),
                    Err(f) if detail => f.to_string(),
                    Err(f) => f.reason().to_owned(),
                };
                format!("{}:{}", string(&p.name), string(&v))
            })
            .collect();
        let pools = pools.join(",");
        if self.is_ok() {
            format!(r#"{{"status":"ok","pools":{{{pools}}}}}"#)
        } else {
            let failing: Vec<String> = self.failing().into_iter().map(string).collect();
            format!(r#"{{"status":"fail","failing":[{}],"pools":{{{pools}}}}}"#, failing.join(","))
        }
    }
}

/// Registers a typed pool under a name: false if it is taken.
type Register = Box<dyn FnOnce(&Registry, &str) -> bool + Send>;

/// What goes into a [`Pools`], in the order it was added.
enum Source {
    Pool {
        name: String,
        entry: Entry,
        register: Register,
    },
    #[cfg(feature = "postgres")]
    Postgres {
        name: String,
        url: String,
    },
    #[cfg(feature = "redis")]
    Redis {
        name: String,
        url: String,
    },
}

/// Builds [`Pools`]: given pools, pools built from URLs or environment
/// variables with a preset and overrides, and how responses look.
///
/// ```
/// # #[cfg(all(feature = "postgres", feature = "redis"))] {
/// use std::time::Duration;
/// use kpool_tower::Pools;
///
/// let pools = Pools::builder()
///     .preset("balanced")
///     .configure(|c| c.acquire_timeout = Some(Duration::from_secs(2)))
///     .postgres("db", "postgres://root@127.0.0.1:5432/test")
///     .redis("redis", "redis://127.0.0.1:6379")
///     .build()
///     .unwrap(); // no connection is made yet
/// assert_eq!(pools.names(), ["db", "redis"]);
/// let db = pools.get::<kpool_postgres::Manager>("db").unwrap();
/// assert_eq!(db.config().max_size, 20, "from the balanced preset");
/// # }
/// ```
#[must_use]
pub struct PoolsBuilder {
    config: Config,
    preset_error: Option<String>,
    registry: Option<Arc<Registry>>,
    sources: Vec<Source>,
    options: Options,
}

impl Default for PoolsBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for PoolsBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolsBuilder").field("config", &self.config).field("options", &self.options).finish()
    }
}

impl PoolsBuilder {
    /// An empty builder: the `default` preset, errors not exposed,
    /// `Retry-After: 1`, a 2 s health check.
    pub fn new() -> Self {
        PoolsBuilder {
            config: Config::default(),
            preset_error: None,
            registry: None,
            sources: Vec::new(),
            options: Options::default(),
        }
    }

    /// The settings of pools built from URLs: a preset name (`default`,
    /// `aggressive`, `balanced`, `conservative`). Replaces earlier settings;
    /// call [`configure`](Self::configure) after it to adjust. An unknown
    /// name fails [`build`](Self::build). Defaults to `default`.
    pub fn preset(mut self, name: &str) -> Self {
        match Config::preset(name) {
            Some(config) => {
                self.config = config;
                self.preset_error = None;
            }
            None => self.preset_error = Some(name.to_owned()),
        }
        self
    }

    /// The settings of pools built from URLs, all at once. Defaults to
    /// [`Config::default`].
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self.preset_error = None;
        self
    }

    /// Adjusts the settings of pools built from URLs, for example
    /// `.configure(|c| c.max_size = 8)`.
    pub fn configure(mut self, adjust: impl FnOnce(&mut Config)) -> Self {
        adjust(&mut self.config);
        self
    }

    /// Adds a pool built elsewhere, of any manager.
    pub fn pool<M: Manager>(mut self, name: &str, pool: kpool::Pool<M>) -> Self {
        let entry = Entry::new(pool.clone());
        let register = Box::new(move |registry: &Registry, name: &str| register_pool(registry, name, pool));
        self.sources.push(Source::Pool { name: name.to_owned(), entry, register });
        self
    }

    /// Registers the pools in `registry` (which may hold other pools: they
    /// are exported by the metrics route and closed at shutdown too).
    /// Defaults to a new registry.
    pub fn registry(mut self, registry: Arc<Registry>) -> Self {
        self.registry = Some(registry);
        self
    }

    /// A PostgreSQL pool named `name` for `url` (feature `postgres`), built
    /// with this builder's settings. No connection is made until one is
    /// needed.
    #[cfg(feature = "postgres")]
    pub fn postgres(mut self, name: &str, url: &str) -> Self {
        self.sources.push(Source::Postgres { name: name.to_owned(), url: url.to_owned() });
        self
    }

    /// A Redis pool named `name` for `url` (feature `redis`), built with
    /// this builder's settings.
    #[cfg(feature = "redis")]
    pub fn redis(mut self, name: &str, url: &str) -> Self {
        self.sources.push(Source::Redis { name: name.to_owned(), url: url.to_owned() });
        self
    }

    /// Adds pools for the `DATABASE_URL` (PostgreSQL, named [`DB`], feature
    /// `postgres`) and `REDIS_URL` (Redis, named [`REDIS`], feature `redis`)
    /// environment variables that are set. Without the feature a variable
    /// is ignored.
    pub fn from_env(self) -> Self {
        self.from_vars(|name| std::env::var(name).ok())
    }

    /// [`from_env`](Self::from_env) reading the variables from `lookup`
    /// (a configuration file, a test).
    /// An empty value counts as unset.
    pub fn from_vars(self, lookup: impl Fn(&str) -> Option<String>) -> Self {
        let lookup = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        #[allow(unused_mut)]
        let mut this = self;
        #[cfg(feature = "postgres")]
        if let Some(url) = lookup("DATABASE_URL") {
            this = this.postgres(DB, &url);
        }
        #[cfg(feature = "redis")]
        if let Some(url) = lookup("REDIS_URL") {
            this = this.redis(REDIS, &url);
        }
        #[cfg(not(all(feature = "postgres", feature = "redis")))]
        let _ = &lookup;
        this
    }

    /// Put the pool error and the backend's error in response bodies (503,
    /// 500, health). Off by default: bodies then say only what class of
    /// failure happened, and the details go to the log (`tracing`).
    pub fn expose_errors(mut self, on: bool) -> Self {
        self.options.expose_errors = on;
        self
    }

    /// The `Retry-After` of 503 responses (rounded up to whole seconds, at
    /// least 1). Defaults to 1 s.
    pub fn retry_after(mut self, after: Duration) -> Self {
        self.options.retry_after = after;
        self
    }

    /// How long the health route waits for each pool. Defaults to 2 s.
    pub fn health_timeout(mut self, timeout: Duration) -> Self {
        self.options.health_timeout = timeout;
        self
    }

    /// Builds the pools (no connection is made) and registers them.
    ///
    /// # Errors
    ///
    /// An unknown preset, settings that contradict each other, a URL that
    /// does not parse, a name used twice (or already in the registry), or
    /// a closed registry.
    pub fn build(self) -> Result<Pools, BuildError> {
        if let Some(name) = self.preset_error {
            return Err(BuildError::UnknownPreset(name));
        }
        self.config.validate().map_err(|e| BuildError::Config { pool: None, source: e })?;
        let registry = self.registry.unwrap_or_default();
        let mut entries = BTreeMap::new();
        let mut by_type = HashMap::new();
        for source in self.sources {
            let (name, entry, registered) = match source {
                Source::Pool { name, entry, register } => {
                    let ok = !entries.contains_key(&name) && register(&registry, &name);
                    (name, entry, ok)
                }
                #[cfg(feature = "postgres")]
                Source::Postgres { name, url } => {
                    let manager = kpool_postgres::Manager::from_url(&url).map_err(|e| BuildError::url(&name, e))?;
                    let pool = kpool::Pool::builder(manager).config(self.config.clone()).build();
                    let pool = pool.map_err(|e| BuildError::Config { pool: Some(name.clone()), source: e })?;
                    let ok = !entries.contains_key(&name) && register_pool(&registry, &name, pool.clone());
                    (name, Entry::new(pool), ok)
                }
                #[cfg(feature = "redis")]
                Source::Redis { name, url } => {
                    let manager = kpool_redis::Manager::from_url(&url).map_err(|e| BuildError::url(&name, e))?;
                    let pool = kpool::Pool::builder(manager).config(self.config.clone()).build();
                    let pool = pool.map_err(|e| BuildError::Config { pool: Some(name.clone()), source: e })?;
                    let ok = !entries.contains_key(&name) && register_pool(&registry, &name, pool.clone());
                    (name, Entry::new(pool), ok)
                }
            };
            if !registered {
                return Err(BuildError::Name(name));
            }
            by_type.entry(entry.type_id).or_insert_with(|| name.clone());
            entries.insert(name, entry);
        }
        Ok(Pools { inner: Arc::new(Inner { registry, entries, by_type, options: self.options }) })
    }
}

/// Registers `pool` as `name`: false if the name is taken or the registry
/// is closed.
fn register_pool<P: kpool::NamedPool>(registry: &Registry, name: &str, pool: P) -> bool {
    registry.insert(name, pool).is_ok()
}

/// Why [`PoolsBuilder::build`] failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum BuildError {
    /// [`PoolsBuilder::preset`] got a name that is not a preset.
    UnknownPreset(String),
    /// The settings contradict each other.
    Config {
        /// The pool, when the error is about one.
        pool: Option<String>,
        /// What is wrong.
        source: ConfigError,
    },
    /// A URL did not parse; the driver's error is the source.
    Url {
        /// The pool.
        pool: String,
        /// The driver's error (which never repeats the password).
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The name is used twice, or is taken in the registry, or the registry
    /// is closed.
    Name(String),
}

impl BuildError {
    #[cfg(any(feature = "postgres", feature = "redis"))]
    fn url(pool: &str, e: impl std::error::Error + Send + Sync + 'static) -> Self {
        BuildError::Url { pool: pool.to_owned(), source: Box::new(e) }
    }
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::UnknownPreset(name) => {
                write!(f, "unknown pool preset {name:?} (expected default, aggressive, balanced or conservative)")
            }
            BuildError::Config { pool: Some(pool), .. } => write!(f, "invalid settings for pool {pool:?}"),
            BuildError::Config { pool: None, .. } => f.write_str("invalid pool settings"),
            BuildError::Url { pool, .. } => write!(f, "invalid URL for pool {pool:?}"),
            BuildError::Name(name) => {
                write!(f, "pool name {name:?} is used twice or taken in the registry (or the registry is closed)")
            }
        }
    }
}

impl std::error::Error for BuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BuildError::Config { source, .. } => Some(source),
            BuildError::Url { source, .. } => Some(&**source),
            BuildError::UnknownPreset(_) | BuildError::Name(_) => None,
        }
    }
}
