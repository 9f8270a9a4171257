//! The aliveness check: a non-blocking look at a socket's receive side.
//!
//! A pooled connection that sits idle between two users should have nothing
//! to read. Peeking one byte without blocking tells the three cases apart
//! without consuming anything:
//! - `WouldBlock`: nothing pending, the peer is still there — alive;
//! - `0` bytes (end of stream) or an error such as `ECONNRESET` — the peer
//!   closed or reset the connection: dead;
//! - data pending: the peer said something nobody asked for; the manager's
//!   [`UnreadData`] policy decides.
//!
//! TLS adds a twist: after the handshake a TLS 1.3 server sends session
//! tickets that the client only reads with its next read, so "data pending"
//! on the raw socket is normal there. The TLS probe therefore feeds whatever
//! is pending into rustls (without blocking) and judges what comes out:
//! nothing for the application is alive, a `close_notify` or a TLS error is
//! dead, application data is [`UnreadData`].

use std::io;
use std::mem::MaybeUninit;

use socket2::SockRef;

use crate::UnreadData;

/// What a peek found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Probe {
    /// Nothing to read: alive.
    Idle,
    /// End of stream, reset or another error: dead.
    Closed,
    /// Data waiting to be read.
    Unread,
}

impl Probe {
    /// Whether the connection may be handed out under `policy`.
    pub(crate) fn is_alive(self, policy: UnreadData) -> bool {
        match self {
            Probe::Idle => true,
            Probe::Closed => false,
            Probe::Unread => policy == UnreadData::Alive,
        }
    }
}

/// Peeks one byte of a socket that is already non-blocking (a tokio socket).
pub(crate) fn peek_nonblocking(sock: &SockRef<'_>) -> Probe {
    let mut buf = [MaybeUninit::<u8>::uninit(); 1];
    loop {
        return match sock.peek(&mut buf) {
            Ok(0) => Probe::Closed,
            Ok(_) => Probe::Unread,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Probe::Idle,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => Probe::Closed,
        };
    }
}

/// Peeks one byte of a blocking socket: switches it to non-blocking for the
/// peek and back.
pub(crate) fn peek_blocking(sock: SockRef<'_>) -> Probe {
    with_nonblocking(&sock, || peek_nonblocking(&sock))
}

/// Runs `f` with `sock` switched to non-blocking mode; a socket whose mode
/// cannot be switched counts as closed.
pub(crate) fn with_nonblocking(sock: &SockRef<'_>, f: impl FnOnce() -> Probe) -> Probe {
    if sock.set_nonblocking(true).is_err() {
        return Probe::Closed;
    }
    let probe = f();
    if sock.set_nonblocking(false).is_err() {
        return Probe::Closed;
    }
    probe
}

/// Feeds what is pending on `raw` (a non-blocking reader of the TCP socket)
/// into the TLS session and says what the session saw.
#[cfg(feature = "tls")]
pub(crate) fn probe_tls(conn: &mut rustls::ClientConnection, mut raw: impl io::Read) -> Probe {
    loop {
        let state = match conn.process_new_packets() {
            Ok(state) => state,
            Err(_) => return Probe::Closed,
        };
        if state.plaintext_bytes_to_read() > 0 {
            return Probe::Unread;
        }
        if state.peer_has_closed() {
            return Probe::Closed;
        }
        match conn.read_tls(&mut raw) {
            Ok(0) => return Probe::Closed,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Probe::Idle,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Probe::Closed,
        }
    }
}

/// Reads a socket through `socket2`, bypassing any runtime's readiness
/// tracking (safe for tokio: a read that finds nothing leaves tokio's
/// readiness alone, and new data raises a new edge).
#[cfg(all(feature = "tls", feature = "tokio"))]
pub(crate) struct RawReader<'a>(pub(crate) &'a SockRef<'a>);

#[cfg(all(feature = "tls", feature = "tokio"))]
impl io::Read for RawReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let sock: &socket2::Socket = self.0;
        let mut sock = sock;
        io::Read::read(&mut sock, buf)
    }
}
