//! The atomics and the lock of the lock-free parts (the direct limiter's state and
//! the quota's sequence lock), taken from loom under `--cfg prodkit_loom` so that
//! the model checker sees every access (`tests/loom.rs`).

#[cfg(prodkit_loom)]
pub(crate) use loom::hint::spin_loop;
#[cfg(prodkit_loom)]
pub(crate) use loom::sync::atomic::{AtomicU64, Ordering, fence};
#[cfg(not(prodkit_loom))]
pub(crate) use std::hint::spin_loop;
#[cfg(not(prodkit_loom))]
pub(crate) use std::sync::atomic::{AtomicU64, Ordering, fence};

/// A mutex for rare writers.
#[derive(Debug, Default)]
pub(crate) struct Mutex(
    #[cfg(not(prodkit_loom))] parking_lot::Mutex<()>,
    #[cfg(prodkit_loom)] loom::sync::Mutex<()>,
);

impl Mutex {
    #[cfg(not(prodkit_loom))]
    pub(crate) fn lock(&self) -> impl Drop + '_ {
        self.0.lock()
    }

    #[cfg(prodkit_loom)]
    pub(crate) fn lock(&self) -> impl Drop + '_ {
        self.0.lock().unwrap()
    }
}
