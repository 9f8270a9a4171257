//! Endpoint keys: how one pool reaches several servers or databases.

use redis::{ConnectionInfo, IntoConnectionInfo, RedisResult};

/// How a pool's endpoint key turns the manager's base [`ConnectionInfo`]
/// into the address and settings of one connection.
///
/// Implemented for:
/// - `()`: the base as it is (a single-endpoint pool);
/// - [`Db`]: a logical database number on the base server;
/// - `String` and `&'static str`: a complete URL such as
///   `redis://127.0.0.1:6379/2` (the base is not used).
///
/// Implement it for your own key (a shard id, a tenant) to map it to a
/// server or database; the pool keeps separate limits per key. A
/// `&'static str` key works, but an acquire future for it cannot be spawned
/// (the compiler cannot prove it `Send` for every lifetime): use `String`
/// keys in code that spawns.
pub trait Endpoint: kpool::Endpoint {
    /// The connection info for this endpoint, derived from `base`.
    ///
    /// # Errors
    ///
    /// An invalid URL (`InvalidClientConfig`); the pool returns it at once.
    fn connection_info(&self, base: &ConnectionInfo) -> RedisResult<ConnectionInfo>;
}

impl Endpoint for () {
    fn connection_info(&self, base: &ConnectionInfo) -> RedisResult<ConnectionInfo> {
        Ok(base.clone())
    }
}

/// A logical database number (`SELECT n`) on the base server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Db(pub i64);

impl Endpoint for Db {
    fn connection_info(&self, base: &ConnectionInfo) -> RedisResult<ConnectionInfo> {
        let settings = base.redis_settings().clone().set_db(self.0);
        Ok(base.clone().set_redis_settings(settings))
    }
}

impl Endpoint for String {
    fn connection_info(&self, _: &ConnectionInfo) -> RedisResult<ConnectionInfo> {
        self.as_str().into_connection_info()
    }
}

impl Endpoint for &'static str {
    fn connection_info(&self, _: &ConnectionInfo) -> RedisResult<ConnectionInfo> {
        self.into_connection_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn db_keeps_the_rest() {
        let base = "redis://:pw@127.0.0.1:6380/1".into_connection_info().unwrap();
        let info = Db(5).connection_info(&base).unwrap();
        assert_eq!(info.redis_settings().db(), 5);
        assert_eq!(info.redis_settings().password(), Some("pw"));
        assert_eq!(info.addr().to_string(), "127.0.0.1:6380");
        assert_eq!(().connection_info(&base).unwrap().redis_settings().db(), 1);
    }

    #[test]
    fn urls() {
        let base = "redis://127.0.0.1".into_connection_info().unwrap();
        let info = "redis://10.0.0.1:7000/3".connection_info(&base).unwrap();
        assert_eq!((info.addr().to_string(), info.redis_settings().db()), ("10.0.0.1:7000".into(), 3));
        assert!(String::from("nonsense://x").connection_info(&base).is_err());
    }
}
