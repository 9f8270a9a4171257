//! The registry of named pools.

mod common;

use std::time::Duration;

use common::Mgr;
use kpool::{FnManager, Pool, Registry, RegistryError};

type Async = Pool<Mgr>;
type Blocking = kpool::blocking::Pool<Mgr>;

#[tokio::test]
async fn create_or_get_get_close_and_metrics() {
    let registry = Registry::new();
    let db: Async = registry.get_or_create("db", || Pool::builder(Mgr::new()).endpoint("a").build()).unwrap();
    let same: Async =
        registry.get_or_create("db", || -> Result<Async, kpool::ConfigError> { panic!("not rebuilt") }).unwrap();
    drop(db.get().await.unwrap());
    assert_eq!(same.status().pool.idle, 1, "the same pool");
    let cache: Blocking =
        registry.get_or_create("cache", || kpool::blocking::Pool::builder(Mgr::new()).endpoint("c").build()).unwrap();
    drop(cache.get().unwrap());
    let fns = Pool::builder(FnManager::new(|_: ()| async { Ok::<_, std::io::Error>(1) })).build().unwrap();
    registry.insert("fns", fns).unwrap();
    assert!(matches!(
        registry.insert("fns", Pool::builder(Mgr::new()).build().unwrap()),
        Err(RegistryError::Exists(_))
    ));
    assert_eq!(registry.names(), ["cache", "db", "fns"]);

    assert!(registry.get::<Async>("db").is_some());
    assert!(registry.get::<Blocking>("db").is_none(), "typed lookup");
    let wrong = registry.get_or_create("db", || kpool::blocking::Pool::builder(Mgr::new()).build());
    assert!(matches!(wrong, Err(RegistryError::WrongType(_))));

    let all = registry.metrics();
    assert_eq!(all.len(), 3);
    assert_eq!(all.iter().find(|(n, _)| n == "cache").unwrap().1.pool.counters.acquired, 1);
    let text = registry.to_prometheus();
    assert_eq!(text.matches("# TYPE kpool_connections gauge").count(), 1, "one block per family");
    for name in ["db", "cache", "fns"] {
        assert!(text.contains(&format!("kpool_connections{{pool=\"{name}\"}}")), "{name}");
    }

    assert_eq!(registry.is_closed("db"), Some(false));
    assert!(registry.close("db"));
    assert!(db.is_closed());
    assert_eq!(registry.is_closed("db"), None, "closed pools leave the registry");
    assert_eq!(registry.is_closed("cache"), Some(false));
    assert!(!registry.close("db"));
    let held = cache.get().unwrap();
    let still_out = registry.close_all_timeout(Duration::from_millis(50)).await;
    assert_eq!(still_out, 1);
    assert!(cache.is_closed());
    drop(held);
    let closed = registry.get_or_create("new", || Pool::builder(Mgr::new()).build());
    assert!(matches!(closed, Err(RegistryError::Closed)));
    assert_eq!(closed.unwrap_err().to_string(), "the pool registry is closed");
}

#[test]
fn build_errors_are_passed_through() {
    let registry = Registry::new();
    let err = registry.get_or_create("bad", || Pool::builder(Mgr::new()).max_size(0).build()).unwrap_err();
    assert!(matches!(err, RegistryError::Build(_)));
    assert!(err.to_string().contains("max_size must be at least 1"));
    assert!(registry.names().is_empty());
}
