use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use socket2::{Domain, SockAddr, SockRef, Socket, Type};

use crate::error::{Error, Step};
use crate::probe::peek_blocking;
use crate::{Options, connect};

/// Pools [`std::os::unix::net::UnixStream`]s, keyed by the socket's path;
/// the blocking twin of [`crate::UnixManager`][tokio-twin].
///
/// ```
/// use kpool::blocking::Pool;
/// use kpool_net::blocking::UnixManager;
///
/// let dir = std::env::temp_dir().join(format!("kpool-net-bdoc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let path = dir.join("server.sock");
/// let _ = std::fs::remove_file(&path);
/// let _server = std::os::unix::net::UnixListener::bind(&path)?;
///
/// let pool = Pool::builder(UnixManager::new()).endpoint(path.clone()).build()?;
/// let conn = pool.get()?;
/// assert_eq!(conn.peer_addr()?.as_pathname(), Some(path.as_path()));
/// # drop(conn); std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[cfg_attr(feature = "tokio", doc = "[tokio-twin]: crate::UnixManager")]
#[cfg_attr(
    not(feature = "tokio"),
    doc = "[tokio-twin]: https://docs.rs/kpool-net/latest/kpool_net/struct.UnixManager.html"
)]
#[derive(Clone, Debug, Default)]
pub struct UnixManager {
    opts: Options,
}

impl UnixManager {
    /// A manager with the default [`Options`].
    pub fn new() -> Self {
        Self::default()
    }

    crate::options::option_setters!(common);
    crate::options::option_setters!(io_timeout);
}

impl kpool::blocking::Manager for UnixManager {
    type Endpoint = PathBuf;
    type Connection = UnixStream;
    type Error = Error;

    fn create(&self, path: &PathBuf) -> Result<UnixStream, Error> {
        let target = path.display();
        let failed = |e| Error::new(Step::Connect, &target, e);
        let deadline = connect::deadline(&self.opts);
        let addr = SockAddr::unix(path).map_err(failed)?;
        let sock = Socket::new(Domain::UNIX, Type::STREAM, None).map_err(failed)?;
        match connect::left(deadline, Step::Connect, &target)? {
            Some(left) => sock.connect_timeout(&addr, left),
            None => sock.connect(&addr),
        }
        .map_err(|e| match deadline {
            Some((_, total)) if e.kind() == std::io::ErrorKind::TimedOut => {
                Error::timeout(Step::Connect, &target, total)
            }
            _ => failed(e),
        })?;
        let stream = UnixStream::from(sock);
        stream
            .set_read_timeout(self.opts.io_timeout)
            .and_then(|()| stream.set_write_timeout(self.opts.io_timeout))
            .map_err(failed)?;
        Ok(stream)
    }

    fn check_alive(&self, _: &PathBuf, conn: &mut UnixStream) -> Result<bool, Error> {
        Ok(peek_blocking(SockRef::from(&*conn)).is_alive(self.opts.unread_data))
    }

    fn is_transient(&self, error: &Error) -> bool {
        error.is_transient()
    }
}
