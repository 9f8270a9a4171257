//! Bad configuration is a clear builder error, never a panic.

mod common;

use std::time::Duration;

use common::Mgr;
use kpool::{Config, Pool};

type Tweak = Box<dyn FnOnce(kpool::Builder<Mgr>) -> kpool::Builder<Mgr>>;

fn err(f: impl FnOnce(kpool::Builder<Mgr>) -> kpool::Builder<Mgr>) -> kpool::ConfigError {
    f(Pool::builder(Mgr::new())).build().unwrap_err()
}

#[test]
fn each_invalid_combination_names_the_setting() {
    let cases: Vec<(&str, &str, Tweak)> = vec![
        ("max_size", "max_size must be at least 1", Box::new(|b| b.max_size(0).min_idle(0))),
        ("min_idle", "min_idle (3) is greater than max_size (2)", Box::new(|b| b.max_size(2).min_idle(3))),
        ("max_size", "max_size (10) is greater than total_max_size (4)", Box::new(|b| b.total_max_size(Some(4)))),
        ("total_max_size", "total_max_size must be at least 1", Box::new(|b| b.total_max_size(Some(0)))),
        ("burst_limit", "burst_limit (5) is less than max_size (10)", Box::new(|b| b.burst_limit(Some(5)))),
        (
            "idle_timeout",
            "idle_timeout (7200s) is greater than max_lifetime (3600s)",
            Box::new(|b| b.idle_timeout(Some(Duration::from_secs(7200)))),
        ),
        ("max_idle", "max_idle must be at least 1", Box::new(|b| b.max_idle(Some(0)))),
        ("min_idle", "min_idle (3) is greater than max_idle (2)", Box::new(|b| b.min_idle(3).max_idle(Some(2)))),
        ("max_lifetime", "max_lifetime must not be zero", Box::new(|b| b.max_lifetime(Some(Duration::ZERO)))),
        ("create_timeout", "create_timeout must not be zero", Box::new(|b| b.create_timeout(Some(Duration::ZERO)))),
    ];
    for (setting, want, f) in cases {
        let e = err(f);
        let got = e.to_string();
        assert!(got.starts_with("invalid pool configuration: "), "{got}");
        assert!(got.contains(want), "expected {want:?} in {got:?}");
        assert_eq!(e.setting(), setting, "{got}");
    }
}

#[test]
fn blocking_builder_validates_too() {
    let e = kpool::blocking::Pool::builder(Mgr::new()).max_size(2).min_idle(3).build().unwrap_err();
    assert!(e.to_string().contains("min_idle (3) is greater than max_size (2)"));
}

#[tokio::test]
async fn build_warm_reports_config_errors_as_config_kind() {
    let e = Pool::builder(Mgr::new()).max_size(0).build_warm().await.unwrap_err();
    assert_eq!(e.kind(), kpool::ErrorKind::Config);
    assert!(e.to_string().contains("max_size must be at least 1"), "{e}");
}

#[test]
fn presets_carry_the_apifrom_values() {
    let a = Config::aggressive();
    assert_eq!((a.min_idle, a.max_size, a.max_idle, a.retry_limit), (10, 100, Some(20), 5));
    assert_eq!(a.max_lifetime, Some(Duration::from_secs(1800)));
    let c = Config::conservative();
    assert_eq!((c.min_idle, c.max_size, c.acquire_timeout), (1, 5, Some(Duration::from_secs(30))));
    let b = Config::balanced();
    assert_eq!((b.min_idle, b.max_size, b.idle_timeout), (5, 20, Some(Duration::from_secs(300))));
    let d = Config::default();
    assert_eq!((d.min_idle, d.max_size, d.max_idle, d.validate_on_acquire), (1, 10, Some(5), true));
    let pool = Pool::builder(Mgr::new()).config(Config::conservative()).build().unwrap();
    assert_eq!(pool.config().max_size, 5);
}
