//! [`PoolService`], the service [`PoolLayer`](crate::PoolLayer) makes.

use std::task::{Context, Poll};

use http::Request;
use tower_service::Service;

use crate::future::ResponseFuture;
use crate::pools::Pools;

/// Puts [`Pools`] into each request's extensions, then calls the inner
/// service. Made by [`PoolLayer`](crate::PoolLayer).
///
/// (Named `PoolService` rather than tower's usual `Pool<S>`, which would
/// read as a connection pool next to [`kpool::Pool`].)
#[derive(Clone, Debug)]
pub struct PoolService<S> {
    inner: S,
    pools: Pools,
}

impl<S> PoolService<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, pools: Pools) -> Self {
        PoolService { inner, pools }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, unwrapped.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B> Service<Request<B>> for PoolService<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        req.extensions_mut().insert(self.pools.clone());
        ResponseFuture::new(self.inner.call(req))
    }
}
