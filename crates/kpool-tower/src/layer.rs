//! [`PoolLayer`], the tower layer.

use tower_layer::Layer;

use crate::pools::{BuildError, Pools};
use crate::service::PoolService;

/// A tower layer that puts [`Pools`] into every request's extensions, where
/// the extractors ([`Conn`](crate::Conn), [`PoolOf`](crate::PoolOf),
/// [`Pools`]) and the routes ([`metrics`](crate::metrics),
/// [`health`](crate::health)) find them. Works with any `http::Request`
/// service: axum's `Router::layer`, hyper, tower's `ServiceBuilder`.
///
/// Cloning the pools into a request is one reference-count increment.
#[derive(Clone, Debug)]
pub struct PoolLayer {
    pools: Pools,
}

impl PoolLayer {
    /// A layer handing out `pools`.
    pub fn new(pools: Pools) -> Self {
        PoolLayer { pools }
    }

    /// A layer over pools built from `DATABASE_URL` and `REDIS_URL` with the
    /// settings of `preset` (see [`PoolsBuilder::from_env`](crate::PoolsBuilder::from_env)).
    ///
    /// # Errors
    ///
    /// An unknown preset, or a URL that does not parse.
    pub fn from_env(preset: &str) -> Result<Self, BuildError> {
        Pools::builder().preset(preset).from_env().build().map(Self::new)
    }

    /// The pools it hands out.
    pub fn pools(&self) -> &Pools {
        &self.pools
    }
}

impl From<Pools> for PoolLayer {
    fn from(pools: Pools) -> Self {
        PoolLayer::new(pools)
    }
}

impl<S> Layer<S> for PoolLayer {
    type Service = PoolService<S>;

    fn layer(&self, inner: S) -> PoolService<S> {
        PoolService::new(inner, self.pools.clone())
    }
}
