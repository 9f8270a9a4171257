//! What one benchmark operation does on a connection, and the adapter that
//! spreads load over several pool endpoints.

use std::future::Future;

use crate::managers::{BlockingEchoManager, BlockingStream, EchoManager, Stream};

/// The bytes an echo operation sends.
const PING: &[u8; 16] = b"kpool-bench-ping";

/// An async manager plus the operation a benchmark runs on its connections.
pub(crate) trait Workload: kpool::Manager<Error: std::error::Error> {
    /// One operation (a round trip); its error in words.
    fn run_op(&self, conn: &mut Self::Connection) -> impl Future<Output = Result<(), String>> + Send;
}

/// A blocking manager plus the operation a benchmark runs on its connections.
pub(crate) trait BlockingWorkload: kpool::blocking::Manager<Error: std::error::Error> {
    /// One operation (a round trip); its error in words.
    fn run_op(&self, conn: &mut Self::Connection) -> Result<(), String>;
}

fn check_echo(result: std::io::Result<()>, back: &[u8]) -> Result<(), String> {
    match result {
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::UnexpectedEof
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::BrokenPipe
            ) =>
        {
            Err("echo: the server closed the connection".into())
        }
        Err(e) => Err(format!("echo: {e}")),
        Ok(()) if back != PING => Err("echo: the server answered something else".into()),
        Ok(()) => Ok(()),
    }
}

impl Workload for EchoManager {
    async fn run_op(&self, conn: &mut Stream) -> Result<(), String> {
        let mut back = [0u8; PING.len()];
        let result = conn.echo(PING, &mut back).await;
        check_echo(result, &back)
    }
}

impl BlockingWorkload for BlockingEchoManager {
    fn run_op(&self, conn: &mut BlockingStream) -> Result<(), String> {
        let mut back = [0u8; PING.len()];
        let result = conn.echo(PING, &mut back);
        check_echo(result, &back)
    }
}

/// Runs `M` under keys `(shard, endpoint)`, so a keyed pool can hold several
/// endpoints (each with its own `max_size`) that reach the same server.
pub(crate) struct Sharded<M>(pub(crate) M);

/// A pool endpoint of [`Sharded`]: the shard number and the inner endpoint.
pub(crate) type ShardKey<E> = (u16, E);

impl<M: kpool::Manager> kpool::Manager for Sharded<M> {
    type Endpoint = ShardKey<M::Endpoint>;
    type Connection = M::Connection;
    type Error = M::Error;

    fn create(&self, key: &Self::Endpoint) -> impl Future<Output = Result<M::Connection, M::Error>> + Send {
        self.0.create(&key.1)
    }

    fn dispose(&self, key: &Self::Endpoint, conn: M::Connection) -> impl Future<Output = Result<(), M::Error>> + Send {
        self.0.dispose(&key.1, conn)
    }

    fn check_alive(
        &self,
        key: &Self::Endpoint,
        conn: &mut M::Connection,
    ) -> impl Future<Output = Result<bool, M::Error>> + Send {
        self.0.check_alive(&key.1, conn)
    }

    fn is_broken(&self, key: &Self::Endpoint, conn: &M::Connection) -> bool {
        self.0.is_broken(&key.1, conn)
    }

    fn on_acquire(
        &self,
        key: &Self::Endpoint,
        conn: &mut M::Connection,
    ) -> impl Future<Output = Result<(), M::Error>> + Send {
        self.0.on_acquire(&key.1, conn)
    }

    fn on_release(
        &self,
        key: &Self::Endpoint,
        conn: &mut M::Connection,
    ) -> impl Future<Output = Result<(), M::Error>> + Send {
        self.0.on_release(&key.1, conn)
    }

    fn on_dead(&self, key: &Self::Endpoint, conn: &mut M::Connection) {
        self.0.on_dead(&key.1, conn);
    }

    fn is_transient(&self, error: &M::Error) -> bool {
        self.0.is_transient(error)
    }
}

impl<M: kpool::blocking::Manager> kpool::blocking::Manager for Sharded<M> {
    type Endpoint = ShardKey<M::Endpoint>;
    type Connection = M::Connection;
    type Error = M::Error;

    fn create(&self, key: &Self::Endpoint) -> Result<M::Connection, M::Error> {
        self.0.create(&key.1)
    }

    fn dispose(&self, key: &Self::Endpoint, conn: M::Connection) -> Result<(), M::Error> {
        self.0.dispose(&key.1, conn)
    }

    fn check_alive(&self, key: &Self::Endpoint, conn: &mut M::Connection) -> Result<bool, M::Error> {
        self.0.check_alive(&key.1, conn)
    }

    fn is_broken(&self, key: &Self::Endpoint, conn: &M::Connection) -> bool {
        self.0.is_broken(&key.1, conn)
    }

    fn on_acquire(&self, key: &Self::Endpoint, conn: &mut M::Connection) -> Result<(), M::Error> {
        self.0.on_acquire(&key.1, conn)
    }

    fn on_release(&self, key: &Self::Endpoint, conn: &mut M::Connection) -> Result<(), M::Error> {
        self.0.on_release(&key.1, conn)
    }

    fn on_dead(&self, key: &Self::Endpoint, conn: &mut M::Connection) {
        self.0.on_dead(&key.1, conn);
    }

    fn is_transient(&self, error: &M::Error) -> bool {
        self.0.is_transient(error)
    }
}
