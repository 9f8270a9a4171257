//! The one place the pool's locks come from.
//!
//! Everything that synchronises threads in `kpool` goes through this module, so
//! that the core state machine can be model-checked with [loom] by building
//! with `RUSTFLAGS="--cfg kpool_loom"`. Outside loom we use `parking_lot`
//! (no poisoning: the pool never runs user code while holding one of these
//! locks, so a panic elsewhere can never leave them half-updated).
//!
//! [loom]: https://docs.rs/loom

#[cfg(not(kpool_loom))]
pub(crate) use parking_lot::{Mutex, MutexGuard};
#[cfg(not(kpool_loom))]
pub(crate) use std::sync::Arc;

#[cfg(kpool_loom)]
pub(crate) use loom_facade::{Arc, Mutex, MutexGuard};

#[cfg(kpool_loom)]
mod loom_facade {
    pub(crate) use loom::sync::{Arc, MutexGuard};

    /// `loom`'s mutex behind `parking_lot`'s panic-free `lock()` signature.
    #[derive(Debug)]
    pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Self(loom::sync::Mutex::new(value))
        }

        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            self.0.lock().unwrap()
        }
    }
}

#[cfg(kpool_loom)]
pub(crate) use loom::sync::atomic::AtomicBool;
#[cfg(not(kpool_loom))]
pub(crate) use std::sync::atomic::AtomicBool;
