//! The tokio Unix-socket manager.

use std::path::PathBuf;

use socket2::SockRef;
use tokio::net::UnixStream;

use crate::error::{Error, Step};
use crate::probe::peek_nonblocking;
use crate::{Options, connect};

/// Pools [`tokio::net::UnixStream`]s, keyed by the socket's path.
///
/// `create` connects within the [`connect_timeout`](UnixManager::connect_timeout);
/// `check_alive` peeks without blocking as [`TcpManager`](crate::TcpManager)
/// does; `is_transient` is [`Error::is_transient`] (a missing socket file or
/// a refused connection is retried: the server may be starting).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use kpool::Pool;
/// use kpool_net::UnixManager;
///
/// let dir = std::env::temp_dir().join(format!("kpool-net-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let path = dir.join("server.sock");
/// let _ = std::fs::remove_file(&path);
/// let _server = tokio::net::UnixListener::bind(&path)?;
///
/// let pool = Pool::builder(UnixManager::new()).endpoint(path.clone()).build()?;
/// let conn = pool.get().await?;
/// assert_eq!(conn.peer_addr()?.as_pathname(), Some(path.as_path()));
/// # drop(conn); std::fs::remove_dir_all(&dir)?;
/// # Ok(()) }
/// ```
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
}

impl kpool::Manager for UnixManager {
    type Endpoint = PathBuf;
    type Connection = UnixStream;
    type Error = Error;

    async fn create(&self, path: &PathBuf) -> Result<UnixStream, Error> {
        let target = path.display();
        connect::until(connect::deadline(&self.opts), Step::Connect, &target, async {
            UnixStream::connect(path).await.map_err(|e| Error::new(Step::Connect, &target, e))
        })
        .await
    }

    async fn check_alive(&self, _: &PathBuf, conn: &mut UnixStream) -> Result<bool, Error> {
        Ok(peek_nonblocking(&SockRef::from(&*conn)).is_alive(self.opts.unread_data))
    }

    fn is_transient(&self, error: &Error) -> bool {
        error.is_transient()
    }
}
