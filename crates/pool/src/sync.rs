//! The synchronisation primitives of the hand-written protocols (the queue
//! engine in `engine/` and a job's state in `task.rs`), taken from loom under
//! `--cfg prodkit_loom` so that the model checker sees every access (the models
//! are in `engine/loom.rs` and `task/loom.rs`). Guards go in and out by value, the
//! shape both libraries share.

#[cfg(prodkit_loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering, fence};
#[cfg(not(prodkit_loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering, fence};

use std::time::Instant;

#[cfg(not(prodkit_loom))]
pub(crate) type MutexGuard<'a, T> = parking_lot::MutexGuard<'a, T>;
#[cfg(prodkit_loom)]
pub(crate) type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

/// A mutex that cannot be poisoned (parking_lot's; loom's is unwrapped).
#[derive(Debug, Default)]
pub(crate) struct Mutex<T>(
    #[cfg(not(prodkit_loom))] parking_lot::Mutex<T>,
    #[cfg(prodkit_loom)] loom::sync::Mutex<T>,
);

impl<T> Mutex<T> {
    pub(crate) fn new(value: T) -> Self {
        #[cfg(not(prodkit_loom))]
        return Mutex(parking_lot::Mutex::new(value));
        #[cfg(prodkit_loom)]
        return Mutex(loom::sync::Mutex::new(value));
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        #[cfg(not(prodkit_loom))]
        return self.0.lock();
        #[cfg(prodkit_loom)]
        return self.0.lock().unwrap();
    }
}

#[derive(Debug, Default)]
pub(crate) struct Condvar(
    #[cfg(not(prodkit_loom))] parking_lot::Condvar,
    #[cfg(prodkit_loom)] loom::sync::Condvar,
);

impl Condvar {
    pub(crate) fn new() -> Self {
        Condvar::default()
    }

    /// Waits for a notification, or until `deadline`. Under loom time does not
    /// exist and the deadline is ignored: the models never rely on a timeout.
    pub(crate) fn wait<'a, T>(
        &self,
        guard: MutexGuard<'a, T>,
        deadline: Option<Instant>,
    ) -> MutexGuard<'a, T> {
        #[cfg(not(prodkit_loom))]
        {
            let mut guard = guard;
            match deadline {
                None => self.0.wait(&mut guard),
                Some(d) => {
                    self.0.wait_until(&mut guard, d);
                }
            }
            guard
        }
        #[cfg(prodkit_loom)]
        {
            let _ = deadline;
            self.0.wait(guard).unwrap()
        }
    }

    pub(crate) fn notify_one(&self) {
        self.0.notify_one();
    }

    pub(crate) fn notify_all(&self) {
        self.0.notify_all();
    }
}

/// A cell whose accesses loom checks for races (tokio's shim shape): every
/// access goes through a closure given the raw pointer.
#[derive(Debug)]
pub(crate) struct UnsafeCell<T>(
    #[cfg(not(prodkit_loom))] std::cell::UnsafeCell<T>,
    #[cfg(prodkit_loom)] loom::cell::UnsafeCell<T>,
);

impl<T> UnsafeCell<T> {
    pub(crate) fn new(value: T) -> Self {
        #[cfg(not(prodkit_loom))]
        return UnsafeCell(std::cell::UnsafeCell::new(value));
        #[cfg(prodkit_loom)]
        return UnsafeCell(loom::cell::UnsafeCell::new(value));
    }

    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        #[cfg(not(prodkit_loom))]
        return f(self.0.get());
        #[cfg(prodkit_loom)]
        return self.0.with_mut(f);
    }
}

/// Where joiners of a job sleep. Normally parking_lot's global parking lot keyed
/// by the job's address (no memory in the job); under loom a mutex and a
/// condition variable of its own.
#[derive(Debug, Default)]
pub(crate) struct Waiters {
    #[cfg(prodkit_loom)]
    lock: Mutex<()>,
    #[cfg(prodkit_loom)]
    cv: Condvar,
}

impl Waiters {
    /// Sleeps while `still_waiting()` holds, at most until `deadline`. The check
    /// and the sleep are atomic against `unpark_all` on the same key.
    pub(crate) fn park(
        &self,
        key: usize,
        still_waiting: impl Fn() -> bool,
        deadline: Option<Instant>,
    ) {
        #[cfg(not(prodkit_loom))]
        {
            let _ = self;
            // SAFETY: the callbacks neither panic nor call into the parking lot:
            // `still_waiting` is an atomic load and a comparison.
            unsafe {
                parking_lot_core::park(
                    key,
                    still_waiting,
                    || {},
                    |_, _| {},
                    parking_lot_core::DEFAULT_PARK_TOKEN,
                    deadline,
                );
            }
        }
        #[cfg(prodkit_loom)]
        {
            let _ = key;
            let guard = self.lock.lock();
            if still_waiting() {
                drop(self.cv.wait(guard, deadline));
            }
        }
    }

    /// Wakes every thread parked on `key`.
    pub(crate) fn unpark_all(&self, key: usize) {
        #[cfg(not(prodkit_loom))]
        {
            let _ = self;
            // SAFETY: no precondition beyond a key; waking nobody is fine.
            unsafe {
                parking_lot_core::unpark_all(key, parking_lot_core::DEFAULT_UNPARK_TOKEN);
            }
        }
        #[cfg(prodkit_loom)]
        {
            let _ = key;
            let _guard = self.lock.lock();
            self.cv.notify_all();
        }
    }
}

/// A short wait for another thread to make progress: exponential spinning then
/// yielding (crossbeam's `Backoff`); under loom, a yield the model checker sees.
#[derive(Debug, Default)]
pub(crate) struct Backoff(#[cfg(not(prodkit_loom))] crossbeam_utils::Backoff);

impl Backoff {
    pub(crate) fn new() -> Self {
        Backoff::default()
    }

    pub(crate) fn snooze(&self) {
        #[cfg(not(prodkit_loom))]
        self.0.snooze();
        #[cfg(prodkit_loom)]
        loom::thread::yield_now();
    }

    /// Whether spinning longer is pointless and the caller should block.
    pub(crate) fn is_completed(&self) -> bool {
        #[cfg(not(prodkit_loom))]
        return self.0.is_completed();
        // The models block at once: spinning only multiplies interleavings.
        #[cfg(prodkit_loom)]
        return true;
    }
}

/// Gives the CPU to another runnable thread (a yield loom sees, under loom).
pub(crate) fn yield_now() {
    #[cfg(not(prodkit_loom))]
    std::thread::yield_now();
    #[cfg(prodkit_loom)]
    loom::thread::yield_now();
}

/// A longer pause of a thread waiting for others without a wake-up to wait on
/// (`close` waiting for the pushes in flight): 50 us; a yield under loom.
pub(crate) fn pause() {
    #[cfg(not(prodkit_loom))]
    std::thread::sleep(std::time::Duration::from_micros(50));
    #[cfg(prodkit_loom)]
    loom::thread::yield_now();
}

/// The bounded MPMC array queue: crossbeam's `ArrayQueue`; under loom, a locked
/// `VecDeque` with the same operations, so the models treat the queue as an
/// atomic black box and check the protocols around it.
#[cfg(not(prodkit_loom))]
pub(crate) type RawQueue<T> = crossbeam_queue::ArrayQueue<T>;

#[cfg(prodkit_loom)]
pub(crate) use loom_queue::RawQueue;

#[cfg(prodkit_loom)]
mod loom_queue {
    use std::collections::VecDeque;

    #[derive(Debug)]
    pub(crate) struct RawQueue<T> {
        items: loom::sync::Mutex<VecDeque<T>>,
        cap: usize,
    }

    impl<T> RawQueue<T> {
        pub(crate) fn new(cap: usize) -> Self {
            RawQueue {
                items: loom::sync::Mutex::new(VecDeque::new()),
                cap,
            }
        }
        pub(crate) fn push(&self, value: T) -> Result<(), T> {
            let mut items = self.items.lock().unwrap();
            if items.len() == self.cap {
                return Err(value);
            }
            items.push_back(value);
            Ok(())
        }
        pub(crate) fn force_push(&self, value: T) -> Option<T> {
            let mut items = self.items.lock().unwrap();
            let evicted = if items.len() == self.cap {
                items.pop_front()
            } else {
                None
            };
            items.push_back(value);
            evicted
        }
        pub(crate) fn pop(&self) -> Option<T> {
            self.items.lock().unwrap().pop_front()
        }
        pub(crate) fn len(&self) -> usize {
            self.items.lock().unwrap().len()
        }
        pub(crate) fn is_empty(&self) -> bool {
            self.len() == 0
        }
        pub(crate) fn capacity(&self) -> usize {
            self.cap
        }
    }
}
