//! Minimal echo-socket managers (TCP and Unix, async and blocking) for the
//! embedded server, `tcp://` and `unix://` until `kpool-net` provides them.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// Where an echo server listens.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Addr {
    Tcp(String, u16),
    Unix(PathBuf),
}

/// Read and write deadline of a blocking socket, so a silent peer cannot hang a thread.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A tokio socket to an echo server.
pub(crate) enum Stream {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

/// Opens tokio sockets; a connection is dead when the peer closed it or sent
/// something unasked.
pub(crate) struct EchoManager;

impl kpool::Manager for EchoManager {
    type Endpoint = Addr;
    type Connection = Stream;
    type Error = io::Error;

    async fn create(&self, addr: &Addr) -> io::Result<Stream> {
        Ok(match addr {
            Addr::Tcp(host, port) => {
                let s = tokio::net::TcpStream::connect((host.as_str(), *port)).await?;
                s.set_nodelay(true)?;
                Stream::Tcp(s)
            }
            Addr::Unix(path) => Stream::Unix(tokio::net::UnixStream::connect(path).await?),
        })
    }

    async fn check_alive(&self, _: &Addr, conn: &mut Stream) -> io::Result<bool> {
        let mut byte = [0u8; 1];
        let read = match conn {
            Stream::Tcp(s) => s.try_read(&mut byte),
            Stream::Unix(s) => s.try_read(&mut byte),
        };
        match read {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(true),
            Err(e) => Err(e),
            Ok(_) => Ok(false),
        }
    }
}

impl Stream {
    /// Sends `payload` and reads the same number of bytes back.
    pub(crate) async fn echo(&mut self, payload: &[u8], back: &mut [u8]) -> io::Result<()> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        match self {
            Stream::Tcp(s) => {
                s.write_all(payload).await?;
                s.read_exact(back).await?;
            }
            Stream::Unix(s) => {
                s.write_all(payload).await?;
                s.read_exact(back).await?;
            }
        }
        Ok(())
    }
}

/// A std socket to an echo server.
pub(crate) enum BlockingStream {
    Tcp(std::net::TcpStream),
    Unix(std::os::unix::net::UnixStream),
}

/// The blocking twin of [`EchoManager`].
pub(crate) struct BlockingEchoManager;

impl kpool::blocking::Manager for BlockingEchoManager {
    type Endpoint = Addr;
    type Connection = BlockingStream;
    type Error = io::Error;

    fn create(&self, addr: &Addr) -> io::Result<BlockingStream> {
        Ok(match addr {
            Addr::Tcp(host, port) => {
                let s = std::net::TcpStream::connect((host.as_str(), *port))?;
                s.set_nodelay(true)?;
                s.set_read_timeout(Some(IO_TIMEOUT))?;
                s.set_write_timeout(Some(IO_TIMEOUT))?;
                BlockingStream::Tcp(s)
            }
            Addr::Unix(path) => {
                let s = std::os::unix::net::UnixStream::connect(path)?;
                s.set_read_timeout(Some(IO_TIMEOUT))?;
                s.set_write_timeout(Some(IO_TIMEOUT))?;
                BlockingStream::Unix(s)
            }
        })
    }

    fn check_alive(&self, _: &Addr, conn: &mut BlockingStream) -> io::Result<bool> {
        let mut byte = [0u8; 1];
        let peeked = match conn {
            BlockingStream::Tcp(s) => {
                s.set_nonblocking(true)?;
                let r = s.peek(&mut byte);
                s.set_nonblocking(false)?;
                r
            }
            BlockingStream::Unix(s) => {
                use std::io::Read;
                s.set_nonblocking(true)?;
                let r = s.read(&mut byte);
                s.set_nonblocking(false)?;
                r
            }
        };
        match peeked {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(true),
            Err(e) => Err(e),
            Ok(_) => Ok(false),
        }
    }
}

impl BlockingStream {
    /// Sends `payload` and reads the same number of bytes back.
    pub(crate) fn echo(&mut self, payload: &[u8], back: &mut [u8]) -> io::Result<()> {
        use std::io::{Read, Write};
        match self {
            BlockingStream::Tcp(s) => {
                s.write_all(payload)?;
                s.read_exact(back)
            }
            BlockingStream::Unix(s) => {
                s.write_all(payload)?;
                s.read_exact(back)
            }
        }
    }
}
