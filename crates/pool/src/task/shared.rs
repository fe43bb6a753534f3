//! The state a job with a handle shares with its handle: one allocation holding
//! the closure, then the result, and one state byte that decides who may touch
//! which. Hand-written atomics; `task/loom.rs` models them.
//!
//! The stage moves forward only: `QUEUED` (the slot holds the closure) to
//! `RUNNING` (exactly one party won the compare-exchange and moved the closure
//! out) to `DONE` (the winner wrote the result into the slot, then published it
//! with a release RMW) to `TAKEN` (the handle moved the result out). The closure
//! and the result share one slot: they are never alive at the same time. Two
//! flags ride along: `WAITER`, set by a joiner that sleeps, tells the publisher
//! to wake it; and `UNCOUNTED`, set by a cancel through the handle in the same
//! compare-exchange that claims the job, tells whoever meets the queue entry
//! next to count it.

use std::mem::ManuallyDrop;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use super::{Meta, Outcome, Ran, Runnable, Taken, drop_quietly, panic_message};
use crate::JobError;
use crate::sync::{AtomicU8, Ordering, UnsafeCell, Waiters};

const QUEUED: u8 = 0;
const RUNNING: u8 = 1;
const DONE: u8 = 2;
const TAKEN: u8 = 3;
const STAGE: u8 = 3;
const WAITER: u8 = 4;
const UNCOUNTED: u8 = 8;

pub(crate) struct Shared<F, T> {
    state: AtomicU8,
    /// The closure while `QUEUED`; the result while `DONE`; nothing otherwise.
    slot: UnsafeCell<Slot<F, T>>,
    /// Where a joiner sleeps (keyed by this job's address; empty normally).
    waiters: Waiters,
    meta: Meta,
}

union Slot<F, T> {
    func: ManuallyDrop<F>,
    result: ManuallyDrop<Result<T, JobError>>,
}

// SAFETY: the closure and the result are never shared, only handed from one
// thread to another: the closure is touched by its creator, then by the one
// claimer that won the compare-exchange out of `QUEUED`; the result is written
// by that claimer before the release RMW to `DONE` and read by the handle after
// an acquire load sees `DONE`. So `F: Send` and `T: Send` suffice for both.
unsafe impl<F: Send, T: Send> Send for Shared<F, T> {}
// SAFETY: as above: no `&F` or `&T` is ever handed out through `&Shared`.
unsafe impl<F: Send, T: Send> Sync for Shared<F, T> {}

impl<F, T> Shared<F, T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    pub(crate) fn new(func: F, meta: Meta) -> Self {
        Shared {
            state: AtomicU8::new(QUEUED),
            slot: UnsafeCell::new(Slot {
                func: ManuallyDrop::new(func),
            }),
            waiters: Waiters::default(),
            meta,
        }
    }

    /// Moves the closure out of a queued job for a party that met its queue
    /// entry (a worker, a joining worker, eviction, `shutdown_now`).
    fn claim(&self) -> Result<F, Taken> {
        self.try_claim(0).ok_or_else(|| self.missed())
    }

    /// Moves the closure out of a queued job, leaving `RUNNING` plus `flags`.
    fn try_claim(&self, flags: u8) -> Option<F> {
        let mut s = self.state.load(Ordering::Acquire);
        loop {
            if s & STAGE != QUEUED {
                return None;
            }
            match self.state.compare_exchange_weak(
                s,
                (s & !STAGE) | RUNNING | flags,
                Ordering::Acquire,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(now) => s = now,
            }
        }
        // SAFETY: this thread moved the stage out of `QUEUED`, which happens
        // once: it alone owns the closure, in the slot since `new`.
        Some(unsafe { self.take_func() })
    }

    /// # Safety
    /// The caller moved the stage out of `QUEUED` itself: it owns the closure.
    unsafe fn take_func(&self) -> F {
        self.slot.with_mut(|p| {
            // SAFETY: the caller's contract; the slot holds the closure.
            unsafe { ManuallyDrop::take(&mut (*p).func) }
        })
    }

    /// Someone else claimed the job. A cancel through the handle is counted by
    /// the first party to meet the job after it: clearing the flag decides who.
    fn missed(&self) -> Taken {
        if self.state.load(Ordering::Relaxed) & UNCOUNTED != 0
            && self.state.fetch_and(!UNCOUNTED, Ordering::AcqRel) & UNCOUNTED != 0
        {
            Taken::CancelledByHandle
        } else {
            Taken::Stale
        }
    }

    /// Writes the outcome, publishes it (`RUNNING` to `DONE`) and wakes a
    /// sleeping joiner. Only the claimer calls it, once.
    fn publish(&self, result: Result<T, JobError>) {
        // SAFETY: the stage is `RUNNING` and this thread is the claimer: the
        // closure was moved out, and nobody reads the slot before the release
        // RMW below. Writing a union field drops nothing.
        self.slot.with_mut(|p| unsafe {
            (*p).result = ManuallyDrop::new(result);
        });
        // RUNNING (1) + 1 = DONE (2); the flag bits are untouched.
        let prev = self.state.fetch_add(1, Ordering::AcqRel);
        if prev & WAITER != 0 {
            self.waiters.unpark_all(self.key());
        }
    }

    /// The key joiners of this job sleep under: its address, unique while a
    /// reference to it exists (the publisher and every joiner hold one).
    fn key(&self) -> usize {
        std::ptr::from_ref(self).addr()
    }

    /// Takes the closure back out of a job the queue refused (nobody else ever
    /// saw it).
    pub(crate) fn take_back(&self) -> Option<F> {
        self.state
            .compare_exchange(QUEUED, TAKEN, Ordering::Acquire, Ordering::Relaxed)
            .ok()?;
        // SAFETY: moved out of `QUEUED` by this thread: it owns the closure.
        Some(unsafe { self.take_func() })
    }
}

impl<F, T> Runnable for Shared<F, T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    fn meta(&self) -> &Meta {
        &self.meta
    }

    fn run(&self, done: &dyn Fn(&Ran)) -> Taken {
        let func = match self.claim() {
            Ok(f) => f,
            Err(taken) => return taken,
        };
        let result = match catch_unwind(AssertUnwindSafe(func)) {
            Ok(value) => {
                done(&Ran::Completed);
                Ok(value)
            }
            Err(payload) => {
                let msg = panic_message(&*payload);
                drop_quietly(payload);
                done(&Ran::Panicked(msg.clone()));
                Err(JobError::Panicked(msg))
            }
        };
        self.publish(result);
        Taken::Mine
    }

    fn resolve(&self, error: JobError, counted: &dyn Fn()) -> Taken {
        match self.claim() {
            Ok(func) => {
                counted();
                self.publish(Err(error));
                // After publishing: the closure's captures may take time or panic.
                drop_quietly(func);
                Taken::Mine
            }
            Err(taken) => taken,
        }
    }

    fn take_unstarted(&self, counted: &dyn Fn()) -> (Taken, Option<Box<dyn FnOnce() + Send>>) {
        match self.claim() {
            Ok(func) => {
                counted();
                self.publish(Err(JobError::Cancelled));
                (Taken::Mine, Some(Box::new(move || drop(func()))))
            }
            Err(taken) => (taken, None),
        }
    }
}

impl<F, T> Outcome<T> for Shared<F, T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    fn wait(&self, deadline: Option<Instant>) -> bool {
        loop {
            let s = self.state.load(Ordering::Acquire);
            if s & STAGE >= DONE {
                return true;
            }
            // With the flag set, the publisher wakes the key after `DONE`; the
            // parking lot checks `DONE` and sleeps atomically against that wake.
            if s & WAITER == 0
                && self
                    .state
                    .compare_exchange(s, s | WAITER, Ordering::AcqRel, Ordering::Acquire)
                    .is_err()
            {
                continue;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return false;
            }
            self.waiters.park(
                self.key(),
                || self.state.load(Ordering::Acquire) & STAGE < DONE,
                deadline,
            );
        }
    }

    fn take(&self) -> Option<Result<T, JobError>> {
        if self.state.load(Ordering::Acquire) & STAGE != DONE {
            return None;
        }
        // SAFETY: `DONE` was published with release after `result` was written,
        // and the acquire load above saw it. Only the handle calls `take`, and
        // each `JobHandle` method that does consumes the handle, so it happens
        // once; the stage then moves on to `TAKEN` so nothing reads it again.
        let result = self.slot.with_mut(|p| {
            // SAFETY: see above: the result is in the slot, read once.
            unsafe { ManuallyDrop::take(&mut (*p).result) }
        });
        self.state.fetch_add(1, Ordering::Release);
        Some(result)
    }

    fn is_finished(&self) -> bool {
        self.state.load(Ordering::Acquire) & STAGE >= DONE
    }

    fn cancel(&self) -> bool {
        // Claim first, then fire the token: firing it first could make a worker
        // that just took the job resolve it `Cancelled` while this says `false`.
        // The handle is not a party that meets the queue entry: it never counts.
        let claimed = self.try_claim(UNCOUNTED);
        if let Some(token) = self.meta.token() {
            token.cancel();
        }
        match claimed {
            Some(func) => {
                self.publish(Err(JobError::Cancelled));
                drop_quietly(func);
                true
            }
            None => false,
        }
    }

    fn runnable(&self) -> &dyn Runnable {
        self
    }
}

impl<F, T> Drop for Shared<F, T> {
    fn drop(&mut self) {
        // Exclusive access: whatever the stage, no other thread is left.
        match self.state.load(Ordering::Acquire) & STAGE {
            QUEUED => self.slot.with_mut(|p| {
                // SAFETY: `QUEUED`: nobody claimed the closure, it is in the slot.
                unsafe { ManuallyDrop::drop(&mut (*p).func) }
            }),
            DONE => self.slot.with_mut(|p| {
                // SAFETY: `DONE`: the result is in the slot and nobody took it.
                unsafe { ManuallyDrop::drop(&mut (*p).result) }
            }),
            // `RUNNING` cannot be seen here (the claimer holds a reference until
            // it published); `TAKEN` holds nothing.
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    //! Run under miri too: every path out of the state machine drops the
    //! closure and the result exactly once.
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::Shared;
    use crate::JobError;
    use crate::task::{Meta, Outcome, Runnable, Taken};

    struct Counted(Arc<AtomicUsize>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn miri_every_path_drops_closure_and_result_once() {
        let drops = Arc::new(AtomicUsize::new(0));
        let job = || {
            let c = Counted(Arc::clone(&drops));
            let r = Arc::clone(&drops);
            Shared::new(
                move || {
                    drop(c);
                    Counted(r)
                },
                Meta::default(),
            )
        };
        // Run, result taken by the handle: closure capture + result dropped.
        let s = job();
        assert_eq!(s.run(&|_| ()), Taken::Mine);
        drop(s.take());
        drop(s);
        // Run, result never taken: dropped with the state.
        let s = job();
        s.run(&|_| ());
        drop(s);
        // Cancelled: the closure is dropped, no result was made.
        let s = job();
        assert!(s.cancel());
        assert_eq!(s.take().map(|r| r.err()), Some(Some(JobError::Cancelled)));
        assert_eq!(s.run(&|_| ()), Taken::CancelledByHandle);
        assert_eq!(s.run(&|_| ()), Taken::Stale);
        drop(s);
        // Never run: the closure is dropped with the state.
        drop(job());
        // Handed back: the closure comes out.
        let s = job();
        let f = s.take_back().unwrap();
        drop(s);
        drop(f);
        // Taken unstarted by shutdown_now.
        let s = job();
        let (taken, f) = s.take_unstarted(&|| ());
        assert_eq!(taken, Taken::Mine);
        f.unwrap()();
        drop(s);
        assert_eq!(drops.load(Ordering::SeqCst), 2 + 2 + 1 + 1 + 1 + 2);
    }

    #[test]
    fn miri_a_panicking_job_publishes_its_panic() {
        let s = Shared::new(|| -> u8 { panic!("boom") }, Meta::default());
        assert_eq!(s.run(&|_| ()), Taken::Mine);
        assert_eq!(s.take(), Some(Err(JobError::Panicked("boom".into()))));
    }
}
