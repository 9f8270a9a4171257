//! The embedded TCP echo server `kpool bench` loads when no URL is given.
//!
//! It runs on its own thread and single-threaded tokio runtime, listens on
//! 127.0.0.1 (a free port), echoes every read back, and can inject latency
//! (a delay before each echo) and faults (closing the connection instead of
//! answering, with a given probability). Dropping the [`EchoServer`] stops it.
//!
//! tokio's timer has a 1 ms resolution and rounds up, so a 1 ms sleep lasts
//! close to 2 ms; the injected latency therefore comes from a small timer
//! thread of its own ([`Delays`]), which wakes within
//! tens of microseconds.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::timer::Delays;

/// Fault and latency injection.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Faults {
    /// Sleep before each echo.
    pub(crate) latency: Duration,
    /// Probability of closing the connection instead of answering a request.
    pub(crate) drop_rate: f64,
}

/// What the server saw.
#[derive(Debug, Default)]
pub(crate) struct ServerStats {
    pub(crate) accepted: AtomicU64,
    pub(crate) echoed: AtomicU64,
    pub(crate) dropped: AtomicU64,
}

/// A running echo server; dropping it stops the server and closes its connections.
pub(crate) struct EchoServer {
    addr: SocketAddr,
    stats: Arc<ServerStats>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EchoServer {
    /// Binds 127.0.0.1 on a free port and starts serving.
    pub(crate) fn start(faults: Faults) -> std::io::Result<EchoServer> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let stats = Arc::new(ServerStats::default());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let server_stats = stats.clone();
        let delays = (!faults.latency.is_zero()).then(Delays::start).transpose()?;
        let thread = std::thread::Builder::new().name("kpool-echo-server".into()).spawn(move || {
            rt.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else { return };
                tokio::select! {
                    () = accept_loop(listener, faults, delays, server_stats) => {}
                    _ = stopped => {}
                }
            });
            // Dropping the runtime here cancels every connection task.
        })?;
        Ok(EchoServer { addr, stats, stop: Some(stop), thread: Some(thread) })
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub(crate) fn stats(&self) -> &ServerStats {
        &self.stats
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    faults: Faults,
    delays: Option<Delays>,
    stats: Arc<ServerStats>,
) {
    let mut seed = 0x9E37_79B9_7F4A_7C15_u64;
    loop {
        let Ok((socket, _)) = listener.accept().await else {
            // Out of file descriptors or similar: back off instead of spinning.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        stats.accepted.fetch_add(1, Relaxed);
        let _ = socket.set_nodelay(true);
        seed = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        tokio::spawn(serve(socket, faults, delays.clone(), stats.clone(), Rng(seed | 1)));
    }
}

async fn serve(
    mut socket: tokio::net::TcpStream,
    faults: Faults,
    delays: Option<Delays>,
    stats: Arc<ServerStats>,
    mut rng: Rng,
) {
    let mut buf = [0u8; 4096];
    loop {
        let n = match socket.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if faults.drop_rate > 0.0 && rng.next_f64() < faults.drop_rate {
            stats.dropped.fetch_add(1, Relaxed);
            return;
        }
        if let Some(delays) = &delays {
            delays.sleep(faults.latency).await;
        }
        if socket.write_all(&buf[..n]).await.is_err() {
            return;
        }
        stats.echoed.fetch_add(1, Relaxed);
    }
}

/// xorshift64*: enough randomness to decide which requests to drop.
struct Rng(u64);

impl Rng {
    fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn echoes_and_stops() {
        let server = EchoServer::start(Faults { latency: Duration::ZERO, drop_rate: 0.0 }).unwrap();
        let mut s = std::net::TcpStream::connect(server.addr()).unwrap();
        s.write_all(b"hello").unwrap();
        let mut back = [0u8; 5];
        s.read_exact(&mut back).unwrap();
        assert_eq!(&back, b"hello");
        let addr = server.addr();
        drop(server);
        assert!(std::net::TcpStream::connect(addr).is_err(), "the listener is closed");
    }

    #[test]
    fn drops_every_request_at_rate_one() {
        let server = EchoServer::start(Faults { latency: Duration::ZERO, drop_rate: 1.0 }).unwrap();
        let mut s = std::net::TcpStream::connect(server.addr()).unwrap();
        s.write_all(b"hello").unwrap();
        let mut back = [0u8; 5];
        assert!(s.read_exact(&mut back).is_err());
        assert_eq!(server.stats().dropped.load(Relaxed), 1);
    }

    #[test]
    fn rng_is_uniform_enough() {
        let mut rng = Rng(12345);
        let below = (0..10_000).filter(|_| rng.next_f64() < 0.25).count();
        assert!((2000..3000).contains(&below), "{below}");
    }
}
