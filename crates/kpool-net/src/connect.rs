//! Opening sockets: resolve, connect within a deadline, apply the options.
//!
//! Every failure path drops the half-made socket, so a failed attempt never
//! leaks a file descriptor.

use std::io;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use socket2::{SockRef, TcpKeepalive};

use crate::error::{Error, Step};
use crate::{Address, Options};

/// The time left before `deadline`, or a timeout error for `step`.
pub(crate) fn left(
    deadline: Option<(Instant, Duration)>,
    step: Step,
    target: &(dyn std::fmt::Display + Sync),
) -> Result<Option<Duration>, Error> {
    match deadline {
        None => Ok(None),
        Some((at, total)) => match at.checked_duration_since(Instant::now()) {
            Some(d) if !d.is_zero() => Ok(Some(d)),
            _ => Err(Error::timeout(step, target, total)),
        },
    }
}

/// The deadline of one create under `opts`.
pub(crate) fn deadline(opts: &Options) -> Option<(Instant, Duration)> {
    opts.connect_timeout.map(|t| (Instant::now() + t, t))
}

/// Applies the TCP options to a connected socket.
pub(crate) fn configure_tcp(sock: SockRef<'_>, opts: &Options) -> io::Result<()> {
    sock.set_tcp_nodelay(opts.nodelay)?;
    if let Some(idle) = opts.keepalive {
        sock.set_tcp_keepalive(&TcpKeepalive::new().with_time(idle))?;
    }
    Ok(())
}

/// Tries each address in turn until one connects (blocking).
pub(crate) fn tcp_blocking(
    addr: &Address,
    opts: &Options,
    deadline: Option<(Instant, Duration)>,
) -> Result<TcpStream, Error> {
    let addrs = addr.resolve_blocking()?;
    let mut last = None;
    for sa in addrs {
        let attempt = match left(deadline, Step::Connect, addr)? {
            Some(d) => TcpStream::connect_timeout(&sa, d),
            None => TcpStream::connect(sa),
        };
        match attempt {
            Ok(stream) => {
                configure_tcp(SockRef::from(&stream), opts)
                    .and_then(|()| stream.set_read_timeout(opts.io_timeout))
                    .and_then(|()| stream.set_write_timeout(opts.io_timeout))
                    .map_err(|e| Error::new(Step::Connect, addr, e))?;
                return Ok(stream);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(connect_failed(addr, last, deadline))
}

/// The error after every address failed: a timeout if the deadline is why.
fn connect_failed(addr: &Address, last: Option<io::Error>, deadline: Option<(Instant, Duration)>) -> Error {
    let err = last.unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address to connect to"));
    match deadline {
        Some((at, total)) if err.kind() == io::ErrorKind::TimedOut && Instant::now() >= at => {
            Error::timeout(Step::Connect, addr, total)
        }
        _ => Error::new(Step::Connect, addr, err),
    }
}

/// Runs `fut` until the deadline, turning its expiry into a timeout of `step`.
#[cfg(feature = "tokio")]
pub(crate) async fn until<T>(
    deadline: Option<(Instant, Duration)>,
    step: Step,
    target: &(dyn std::fmt::Display + Sync),
    fut: impl std::future::Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    match left(deadline, step, target)? {
        None => fut.await,
        Some(d) => tokio::time::timeout(d, fut)
            .await
            .unwrap_or_else(|_| Err(Error::timeout(step, target, deadline.map_or(d, |(_, total)| total)))),
    }
}

/// Tries each address in turn until one connects (tokio).
#[cfg(feature = "tokio")]
pub(crate) async fn tcp(
    addr: &Address,
    opts: &Options,
    deadline: Option<(Instant, Duration)>,
) -> Result<tokio::net::TcpStream, Error> {
    let addrs: Vec<std::net::SocketAddr> = until(deadline, Step::Resolve, addr, addr.resolve()).await?;
    until(deadline, Step::Connect, addr, async {
        let mut last = None;
        for sa in addrs {
            match tokio::net::TcpStream::connect(sa).await {
                Ok(stream) => {
                    configure_tcp(SockRef::from(&stream), opts).map_err(|e| Error::new(Step::Connect, addr, e))?;
                    return Ok(stream);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(connect_failed(addr, last, None))
    })
    .await
}
