//! Every public type, and the futures users hold across awaits, cross threads.

use kpool_redis::Db;

fn send_sync<T: Send + Sync>() {}
#[cfg(feature = "tokio")]
fn send<T: Send>(_: &T) {}

#[test]
fn public_types_are_send_and_sync() {
    send_sync::<Db>();
    send_sync::<kpool_redis::blocking::Manager<Db>>();
    send_sync::<kpool_redis::blocking::Pool<String>>();
    #[cfg(feature = "tokio")]
    {
        send_sync::<kpool_redis::Manager>();
        send_sync::<kpool_redis::Manager<Db>>();
        send_sync::<kpool_redis::Connection>();
        send_sync::<kpool_redis::Pool<String>>();
        send_sync::<kpool_redis::Pooled<'static, Db>>();
    }
}

#[cfg(feature = "tokio")]
#[test]
fn acquire_futures_are_send() {
    use kpool_redis::{Manager, Pool};

    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let _guard = rt.enter();
    let pool: Pool<Db> = Pool::builder(Manager::from_url("redis://127.0.0.1").unwrap().keyed()).build().unwrap();
    send(&pool.get_for(&Db(1)));
    send(&pool.get_owned_for(&Db(1)));
    let pool: Pool = Pool::builder(Manager::from_url("redis://127.0.0.1").unwrap()).build().unwrap();
    send(&pool.get());
}
