//! Every public type, and the futures users hold across awaits, cross threads.

use kpool_postgres::{CheckMethod, Connection, Manager, Pool, Target};

fn send_sync<T: Send + Sync>() {}
fn send<T: Send>(_: &T) {}

#[test]
fn public_types_are_send_and_sync() {
    send_sync::<Manager>();
    send_sync::<Manager<Target>>();
    send_sync::<Manager<String>>();
    send_sync::<Connection>();
    send_sync::<CheckMethod>();
    send_sync::<Target>();
    send_sync::<Pool>();
    send_sync::<kpool_postgres::Pooled<'static>>();
    #[cfg(feature = "blocking")]
    {
        send_sync::<kpool_postgres::blocking::Manager<Target>>();
        send_sync::<kpool_postgres::blocking::Pool<String>>();
    }
}

#[test]
fn acquire_futures_are_send() {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let _guard = rt.enter();
    let pool: Pool<Target> =
        Pool::builder(Manager::from_url("postgres://x@127.0.0.1/db").unwrap().keyed()).build().unwrap();
    let target = Target::db("other");
    send(&pool.get_for(&target));
    send(&pool.get_owned_for(&target));
    let pool: Pool = Pool::builder(Manager::from_url("postgres://x@127.0.0.1/db").unwrap()).build().unwrap();
    send(&pool.get());
    send(&pool.close_timeout(std::time::Duration::ZERO));
}
