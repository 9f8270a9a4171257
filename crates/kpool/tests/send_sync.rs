//! Every public type and returned future can cross threads.

mod common;

use std::time::Duration;

use common::Mgr;
use kpool::{Pool, Pooled};

fn send<T: Send>(_: &T) {}
fn sync<T: Sync>(_: &T) {}
fn both<T: Send + Sync>(_: &T) {}

#[tokio::test]
async fn types_and_futures_are_send_and_sync() {
    let pool = Pool::builder(Mgr::new()).endpoint("a").build().unwrap();
    both(&pool);
    both(&pool.status());
    both(&pool.counters());
    both(&pool.config());

    let get = pool.get();
    send(&get);
    let conn = get.await.unwrap();
    both(&conn);
    let release = Pooled::release(conn);
    send(&release);
    release.await.unwrap();

    send(&pool.get_for(&"b"));
    send(&pool.get_timeout(Duration::from_secs(1)));
    send(&pool.get_for_timeout(&"b", None));
    let owned = pool.get_owned();
    send(&owned);
    let owned = owned.await.unwrap();
    both(&owned);
    send(&pool.get_owned_for(&"b"));
    send(&pool.warm(&"a"));
    send(&pool.close_timeout(Duration::from_secs(1)));

    let err = pool.get_for_timeout(&"c", Some(Duration::ZERO));
    send(&err);
    let e: kpool::Error<common::TestError> = kpool::Pool::builder(Mgr::new()).build().unwrap().get().await.unwrap_err();
    both(&e);
    let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(e);
    assert!(boxed.to_string().contains("default endpoint"));

    let config_error = Pool::builder(Mgr::new()).max_size(0).build().unwrap_err();
    both(&config_error);
    sync(&kpool::Config::default());
}

#[test]
fn blocking_types_are_send_and_sync() {
    let pool = kpool::blocking::Pool::builder(Mgr::new()).endpoint("a").build().unwrap();
    both(&pool);
    let conn = pool.get().unwrap();
    both(&conn);
    std::thread::spawn(move || drop(conn)).join().unwrap();
    assert_eq!(pool.status().pool.idle, 1);
}
