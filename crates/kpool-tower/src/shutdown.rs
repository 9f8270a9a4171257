//! Graceful shutdown: stop taking requests, let the running ones finish,
//! then close the pools.

use std::future::{Future, IntoFuture};
use std::io;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::time::Instant;

use crate::pools::Pools;

/// Completes on Ctrl-C, or on SIGTERM on Unix (what container runtimes
/// send). For `axum::serve(...).with_graceful_shutdown(shutdown_signal())`
/// or [`serve`].
///
/// # Panics
///
/// If the signal handlers cannot be installed (no tokio runtime with
/// signals, which this crate enables).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        tokio::signal::ctrl_c().await.expect("installing the Ctrl-C handler");
    };
    #[cfg(unix)]
    let term = async {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler")
            .recv()
            .await;
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// What [`serve`] found when it finished.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Every request running at the signal finished within the drain time.
    pub drained: bool,
    /// Connections still checked out when the pools were closed and the
    /// drain time was up (0 is a clean shutdown).
    pub still_out: usize,
}

impl ShutdownReport {
    /// Every request finished and every connection came back.
    pub fn is_clean(&self) -> bool {
        self.drained && self.still_out == 0
    }
}

/// Serves `router` on `listener` until `signal` completes, then shuts down
/// in order, all within `drain`:
///
/// 1. stop accepting connections, close idle keep-alive ones, and let the
///    requests in flight finish (they may still acquire connections);
/// 2. close the pools, and wait for connections still checked out (by
///    spawned tasks, say) to come back.
///
/// Requests still running when `drain` is up are left to finish on their
/// own (their connections are disposed when they come back, the pools being
/// closed) and show in the report. The same thing by hand: `axum::serve(listener, app).with_graceful_shutdown(signal).await?`,
/// then [`Pools::close_timeout`].
///
/// # Errors
///
/// An I/O error from the server.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    pools: Pools,
    signal: impl Future<Output = ()> + Send + 'static,
    drain: Duration,
) -> io::Result<ShutdownReport> {
    let (fired, on_fire) = tokio::sync::oneshot::channel::<()>();
    let signal = async move {
        signal.await;
        let _ = fired.send(());
    };
    let mut server = Box::pin(axum::serve(listener, router).with_graceful_shutdown(signal).into_future());
    let mut deadline = None;
    let drained = tokio::select! {
        result = &mut server => { result?; true }
        Ok(()) = on_fire => {
            let at = Instant::now() + drain;
            deadline = Some(at);
            match tokio::time::timeout_at(at, &mut server).await {
                Ok(result) => { result?; true }
                Err(_) => {
                    tracing::warn!(?drain, "requests still running after the drain time");
                    false
                }
            }
        }
    };
    // Stop accepting for good; connections already accepted run in tasks of
    // their own and finish by themselves.
    drop(server);
    let left = deadline.map_or(drain, |at| at.saturating_duration_since(Instant::now()));
    let still_out = pools.close_timeout(left).await;
    if still_out > 0 {
        tracing::warn!(still_out, "connections still checked out at shutdown");
    }
    Ok(ShutdownReport { drained, still_out })
}
