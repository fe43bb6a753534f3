//! The atomics and the locks of the concurrent parts (the direct limiter's state,
//! the quota's sequence lock, the keyed limiter's shards and key count), taken
//! from loom under `--cfg prodkit_loom` so that the model checker sees every
//! access (`tests/loom.rs`).

use std::ops::DerefMut;

#[cfg(prodkit_loom)]
pub(crate) use loom::hint::spin_loop;
#[cfg(prodkit_loom)]
pub(crate) use loom::sync::atomic::{AtomicU64, AtomicUsize, Ordering, fence};
#[cfg(not(prodkit_loom))]
pub(crate) use std::hint::spin_loop;
#[cfg(not(prodkit_loom))]
pub(crate) use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering, fence};

/// A mutex: parking_lot's, or loom's under the model checker.
#[derive(Debug, Default)]
pub(crate) struct Mutex<T>(
    #[cfg(not(prodkit_loom))] parking_lot::Mutex<T>,
    #[cfg(prodkit_loom)] loom::sync::Mutex<T>,
);

impl<T> Mutex<T> {
    pub(crate) fn new(value: T) -> Mutex<T> {
        #[cfg(not(prodkit_loom))]
        return Mutex(parking_lot::Mutex::new(value));
        #[cfg(prodkit_loom)]
        return Mutex(loom::sync::Mutex::new(value));
    }

    #[cfg(not(prodkit_loom))]
    #[inline]
    pub(crate) fn lock(&self) -> impl DerefMut<Target = T> + '_ {
        self.0.lock()
    }

    #[cfg(prodkit_loom)]
    pub(crate) fn lock(&self) -> impl DerefMut<Target = T> + '_ {
        self.0.lock().unwrap()
    }
}
