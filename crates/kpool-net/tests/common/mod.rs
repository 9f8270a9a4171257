//! Real servers for the tests: echo (plain or TLS) and silent, over TCP or
//! Unix sockets, each on its own threads so blocking and async tests can use
//! them alike. Dropping a server stops it and joins every thread it started,
//! so no file descriptor outlives it.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

#[cfg(feature = "tls")]
pub mod tls;

#[cfg(feature = "tls")]
use kpool_net::rustls;

/// What a server does with an accepted connection.
#[derive(Clone)]
pub enum Mode {
    /// Writes back whatever it reads.
    Echo,
    /// Accepts, keeps the socket open and never says a word.
    Silent,
    /// TLS, then echo.
    #[cfg(feature = "tls")]
    TlsEcho(Arc<rustls::ServerConfig>),
}

enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

/// An accepted stream of either kind.
pub enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    fn try_clone(&self) -> io::Result<Stream> {
        Ok(match self {
            Stream::Tcp(s) => Stream::Tcp(s.try_clone()?),
            Stream::Unix(s) => Stream::Unix(s.try_clone()?),
        })
    }

    fn shutdown(&self) {
        let _ = match self {
            Stream::Tcp(s) => s.shutdown(Shutdown::Both),
            Stream::Unix(s) => s.shutdown(Shutdown::Both),
        };
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    accepted: AtomicUsize,
    /// Connections the client closed cleanly: end of stream (for TLS, after
    /// its `close_notify`) rather than an error.
    clean_closes: AtomicUsize,
    /// A clone of every open accepted stream, to kill them from outside.
    open: Mutex<Vec<Stream>>,
    handlers: Mutex<Vec<JoinHandle<()>>>,
}

/// A running server; dropping it stops it.
pub struct Server {
    tcp: Option<SocketAddr>,
    path: Option<PathBuf>,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl Server {
    /// A TCP server on `ip`, on a free port.
    pub fn tcp(ip: &str, mode: Mode) -> Server {
        let listener = TcpListener::bind((ip, 0)).expect("bind a loopback port");
        let addr = listener.local_addr().unwrap();
        Server::start(Listener::Tcp(listener), Some(addr), None, mode)
    }

    /// A Unix-socket server at `path`.
    pub fn unix(path: &Path, mode: Mode) -> Server {
        let listener = UnixListener::bind(path).expect("bind a Unix socket");
        Server::start(Listener::Unix(listener), None, Some(path.to_owned()), mode)
    }

    fn start(listener: Listener, tcp: Option<SocketAddr>, path: Option<PathBuf>, mode: Mode) -> Server {
        let shared = Arc::new(Shared::default());
        let s = Arc::clone(&shared);
        let acceptor = std::thread::spawn(move || {
            loop {
                let stream = match &listener {
                    Listener::Tcp(l) => l.accept().map(|(s, _)| Stream::Tcp(s)),
                    Listener::Unix(l) => l.accept().map(|(s, _)| Stream::Unix(s)),
                };
                if s.stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                s.accepted.fetch_add(1, Ordering::SeqCst);
                s.open.lock().unwrap().push(stream.try_clone().unwrap());
                if let Some(h) = serve(stream, mode.clone(), Arc::clone(&s)) {
                    s.handlers.lock().unwrap().push(h);
                }
            }
        });
        Server { tcp, path, shared, acceptor: Some(acceptor) }
    }

    /// The TCP address.
    pub fn addr(&self) -> SocketAddr {
        self.tcp.expect("a TCP server")
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Connections the client closed cleanly (end of stream; for TLS, after
    /// a `close_notify`).
    pub fn clean_closes(&self) -> usize {
        self.shared.clean_closes.load(Ordering::SeqCst)
    }

    /// Closes every accepted connection from the server's side (both
    /// directions), as a server that restarts or times clients out would,
    /// and waits until their handler threads are done.
    pub fn kill_all(&self) {
        self.kill_all_quietly();
        // Loopback delivers the FIN asynchronously in some network stacks
        // (gVisor's among them): give it a moment to reach the client.
        std::thread::sleep(Duration::from_millis(200));
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the acceptor with one last connection.
        let _ = match (&self.tcp, &self.path) {
            (Some(addr), _) => TcpStream::connect(addr).map(drop),
            (_, Some(path)) => UnixStream::connect(path).map(drop),
            _ => Ok(()),
        };
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
        self.kill_all_quietly();
    }
}

impl Server {
    fn kill_all_quietly(&self) {
        for stream in self.shared.open.lock().unwrap().drain(..) {
            stream.shutdown();
        }
        let handlers: Vec<_> = self.shared.handlers.lock().unwrap().drain(..).collect();
        for h in handlers {
            let _ = h.join();
        }
    }
}

fn serve(stream: Stream, mode: Mode, shared: Arc<Shared>) -> Option<JoinHandle<()>> {
    let count = move |clean: bool| {
        if clean {
            shared.clean_closes.fetch_add(1, Ordering::SeqCst);
        }
    };
    match mode {
        Mode::Echo => Some(std::thread::spawn(move || count(echo(stream)))),
        Mode::Silent => {
            // Kept open through the clone in `open` until killed.
            drop(stream);
            None
        }
        #[cfg(feature = "tls")]
        Mode::TlsEcho(config) => Some(std::thread::spawn(move || {
            let conn = rustls::ServerConnection::new(config).unwrap();
            count(echo(rustls::StreamOwned::new(conn, stream)));
        })),
    }
}

/// Echoes until the client goes; `true` if it closed cleanly.
fn echo(mut stream: impl Read + Write) -> bool {
    let mut buf = [0; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Err(_) => return false,
            Ok(n) => {
                if stream.write_all(&buf[..n]).and_then(|()| stream.flush()).is_err() {
                    return false;
                }
            }
        }
    }
}

/// Polls `cond` until it holds, for at most 5 s.
pub fn eventually(what: &str, cond: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(std::time::Instant::now() < deadline, "not within 5 s: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A loopback port nobody listens on: bound, then released.
pub fn closed_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// Open file descriptors of this process.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").expect("/proc/self/fd").count()
}

/// Sends `msg` and checks that it comes back (blocking).
pub fn echo_blocking(conn: &mut (impl Read + Write), msg: &[u8]) {
    conn.write_all(msg).unwrap();
    conn.flush().unwrap();
    let mut reply = vec![0; msg.len()];
    conn.read_exact(&mut reply).unwrap();
    assert_eq!(reply, msg);
}

/// Sends `msg` and checks that it comes back (async).
#[cfg(feature = "tokio")]
pub async fn echo_async(conn: &mut (impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin), msg: &[u8]) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    conn.write_all(msg).await.unwrap();
    conn.flush().await.unwrap();
    let mut reply = vec![0; msg.len()];
    conn.read_exact(&mut reply).await.unwrap();
    assert_eq!(reply, msg);
}
