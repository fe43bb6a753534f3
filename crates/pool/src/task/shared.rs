//! The state a job with a handle shares with its handle: one allocation holding
//! the closure, then the result, and one state byte that decides who may touch
//! which and who frees it. Hand-written atomics; `task/loom.rs` models them.
//!
//! The stage moves forward only: `QUEUED` (the slot holds the closure) to
//! `RUNNING` (exactly one party won the compare-exchange and moved the closure
//! out) to `DONE` (the winner wrote the result into the slot, then published it
//! with a release RMW) to `TAKEN` (the handle moved the result out). The closure
//! and the result share one slot: they are never alive at the same time.
//!
//! Flags ride along: `WAITER`, set by a joiner that sleeps or a future that
//! registered a waker, tells the publisher to wake it (`ASYNC`, set with it by
//! the future, to take the waker too); `UNCOUNTED`, set by a cancel through
//! the handle in the same
//! compare-exchange that claims the job, tells whoever meets the queue entry
//! next to count it; and two references, `QREF` (the queue entry, [`JobRef`])
//! and `HREF` (the handle, [`HandleRef`]). Whoever clears the last reference
//! frees the allocation. The common paths fold the reference into a transition
//! they make anyway: a worker publishes and drops the queue's reference in one
//! compare-exchange, a join takes the result and drops the handle's in one RMW.

use std::mem::ManuallyDrop;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr::NonNull;
use std::task::Waker;
use std::time::Instant;

use super::{Meta, Outcome, Ran, Runnable, Taken, Unstarted, drop_quietly, panic_message};
use crate::JobError;
use crate::sync::{AtomicU8, Mutex, Ordering, UnsafeCell, Waiters};

const QUEUED: u8 = 0;
const RUNNING: u8 = 1;
const DONE: u8 = 2;
const TAKEN: u8 = 3;
const STAGE: u8 = 3;
const WAITER: u8 = 4;
const UNCOUNTED: u8 = 8;
const QREF: u8 = 16;
const HREF: u8 = 32;
/// Set with `WAITER` by a future that stored a waker: the publisher then
/// takes the waker too (a blocking joiner alone costs it no lock).
const ASYNC: u8 = 64;

/// The job's state, behind one `UnsafeCell` (see [`Shared`]).
struct Fields<F, T> {
    state: AtomicU8,
    /// The closure while `QUEUED`; the result while `DONE`; nothing otherwise.
    slot: UnsafeCell<Slot<F, T>>,
    /// Where a joiner sleeps (keyed by this job's address; empty normally).
    waiters: Waiters,
    /// The waker of a task awaiting the handle (`JoinFuture`), if any.
    waker: Mutex<Option<Waker>>,
    meta: Meta,
}

/// A job with a handle: its [`Fields`], every byte of them inside one
/// `UnsafeCell`. The methods below take `&self`, and some of them drop one of
/// the two references, after which the other party may free the job before
/// the method returns. A `&self` whose bytes were not all interior-mutable
/// would promise that the allocation outlives the call (Stacked Borrows
/// protects the read-only bytes of a reference argument, padding included,
/// until it returns: miri reported exactly that). Behind the cell, `&Shared`
/// promises nothing of the kind, as `Arc` reaches its counts only through
/// `&AtomicUsize`.
pub(crate) struct Shared<F, T> {
    fields: std::cell::UnsafeCell<Fields<F, T>>,
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

/// Makes a job with a handle: the queue entry's reference and the handle's.
/// `typed` is for taking the closure back when the queue refuses the job; it is
/// valid while either reference lives.
pub(crate) fn new_job<F, T>(func: F, meta: Meta) -> (JobRef, HandleRef<T>, NonNull<Shared<F, T>>)
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let typed = NonNull::from(Box::leak(Box::new(Shared {
        fields: std::cell::UnsafeCell::new(Fields {
            state: AtomicU8::new(QUEUED | QREF | HREF),
            slot: UnsafeCell::new(Slot {
                func: ManuallyDrop::new(func),
            }),
            waiters: Waiters::default(),
            waker: Mutex::new(None),
            meta,
        }),
    })));
    (JobRef(typed), HandleRef(typed), typed)
}

/// The queue entry's reference to a job with a handle.
pub(crate) struct JobRef(NonNull<dyn Runnable>);

// SAFETY: it points to a `Shared<F, T>` with `F: Send, T: Send`, which is `Send`
// and `Sync`; the reference is owned, like an `Arc`.
unsafe impl Send for JobRef {}

impl JobRef {
    pub(crate) fn job(&self) -> &dyn Runnable {
        // SAFETY: the allocation lives while this reference is held (`QREF` set).
        unsafe { self.0.as_ref() }
    }

    /// Gives this reference up after a call that already dropped it
    /// (`release`); frees the job when that call said it was the last.
    pub(crate) fn finish(self, last: bool) {
        let ptr = ManuallyDrop::new(self).0;
        if last {
            // SAFETY: both references are gone (the caller's call cleared the
            // last), so nobody else can reach the allocation; it came from a `Box`.
            // Its drop may run a result's `Drop`: user code, which must not
            // unwind into the worker.
            drop_quietly(unsafe { Box::from_raw(ptr.as_ptr()) });
        }
    }
}

impl Drop for JobRef {
    fn drop(&mut self) {
        if self.job().release_queue() {
            // SAFETY: as in `finish`: the last reference is gone.
            drop_quietly(unsafe { Box::from_raw(self.0.as_ptr()) });
        }
    }
}

/// The handle's reference to its job.
pub(crate) struct HandleRef<T>(NonNull<dyn Outcome<T>>);

// SAFETY: as for `JobRef`: it points to a `Shared<F, T>`, which is `Send` and
// `Sync` for `T: Send`; through `&HandleRef` only `&self` methods of the
// shared state are reached, which are safe to call from several threads.
unsafe impl<T: Send> Send for HandleRef<T> {}
// SAFETY: see above.
unsafe impl<T: Send> Sync for HandleRef<T> {}

impl<T> HandleRef<T> {
    pub(crate) fn get(&self) -> &dyn Outcome<T> {
        // SAFETY: the allocation lives while this reference is held (`HREF` set).
        unsafe { self.0.as_ref() }
    }

    /// The result if the job finished, giving this reference up with it;
    /// otherwise the reference back.
    pub(crate) fn take(self) -> Result<Result<T, JobError>, Self> {
        match self.get().take() {
            None => Err(self),
            Some((result, last)) => {
                let ptr = ManuallyDrop::new(self).0;
                if last {
                    // SAFETY: `take` dropped the last reference: nobody else can
                    // reach the allocation; it came from a `Box`.
                    drop(unsafe { Box::from_raw(ptr.as_ptr()) });
                }
                Ok(result)
            }
        }
    }
}

impl<T> Drop for HandleRef<T> {
    fn drop(&mut self) {
        if self.get().release_handle() {
            // SAFETY: the last reference is gone; the allocation came from a `Box`.
            // A result nobody took is dropped here, on the handle owner's thread.
            drop(unsafe { Box::from_raw(self.0.as_ptr()) });
        }
    }
}

impl<F, T> Shared<F, T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    /// Moves the closure out of a queued job for a party that met its queue
    /// entry (a worker, a joining worker, eviction, `shutdown_now`).
    fn claim(&self) -> Result<F, Taken> {
        self.try_claim(0).ok_or_else(|| self.missed())
    }

    /// Moves the closure out of a queued job, leaving `RUNNING` plus `flags`.
    fn try_claim(&self, flags: u8) -> Option<F> {
        let mut s = self.f().state.load(Ordering::Acquire);
        loop {
            if s & STAGE != QUEUED {
                return None;
            }
            match self.f().state.compare_exchange_weak(
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
        // once: it alone owns the closure, in the slot since `new_job`.
        Some(unsafe { self.take_func() })
    }

    /// # Safety
    /// The caller moved the stage out of `QUEUED` itself: it owns the closure.
    unsafe fn take_func(&self) -> F {
        self.f().slot.with_mut(|p| {
            // SAFETY: the caller's contract; the slot holds the closure.
            unsafe { ManuallyDrop::take(&mut (*p).func) }
        })
    }

    /// Someone else claimed the job. A cancel through the handle is counted by
    /// the first party to meet the job after it: clearing the flag decides who.
    fn missed(&self) -> Taken {
        if self.f().state.load(Ordering::Relaxed) & UNCOUNTED != 0
            && self.f().state.fetch_and(!UNCOUNTED, Ordering::AcqRel) & UNCOUNTED != 0
        {
            Taken::CancelledByHandle
        } else {
            Taken::Stale
        }
    }

    /// Writes the outcome and publishes it (`RUNNING` to `DONE`), waking a
    /// sleeping joiner; with `release`, also drops the queue entry's reference
    /// and says whether it was the last. Only the claimer calls it, once; with
    /// `release` the caller must not touch `self` afterwards unless it was last.
    fn finish(&self, result: Result<T, JobError>, release: bool) -> bool {
        // SAFETY: the stage is `RUNNING` and this thread is the claimer: the
        // closure was moved out, and nobody reads the slot before the release
        // RMW below. Writing a union field drops nothing.
        self.f().slot.with_mut(|p| unsafe {
            (*p).result = ManuallyDrop::new(result);
        });
        let key = self.key();
        let mut s = self.f().state.load(Ordering::Relaxed);
        while release && s & WAITER == 0 {
            // No joiner sleeps: publish and drop the queue's reference at once.
            // RUNNING (1) + 1 - QREF: `DONE`, the flags kept, `QREF` cleared.
            match self.f().state.compare_exchange_weak(
                s,
                s + 1 - QREF,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return s & HREF == 0,
                Err(now) => s = now,
            }
        }
        // RUNNING (1) + 1 = DONE (2); the flag bits are untouched.
        let prev = self.f().state.fetch_add(1, Ordering::AcqRel);
        if prev & WAITER != 0 {
            // The queue's reference (or the cancelling handle's) keeps `self`
            // alive across the wake-up.
            self.f().waiters.unpark_all(key);
            // A waker stored before `ASYNC` was set (see `register`); woken
            // outside the lock, and a panic in it stays out of the worker.
            if prev & ASYNC != 0 {
                let waker = self.f().waker.lock().take();
                if let Some(waker) = waker {
                    drop_quietly(catch_unwind(AssertUnwindSafe(|| waker.wake())));
                }
            }
        }
        release && self.release_queue()
    }

    /// The key joiners of this job sleep under: its address, unique while a
    /// reference to it exists.
    fn key(&self) -> usize {
        std::ptr::from_ref(self).addr()
    }

    /// Takes the closure back out of a job the queue refused (nobody else ever
    /// saw it).
    pub(crate) fn take_back(&self) -> Option<F> {
        let s = self.f().state.load(Ordering::Acquire);
        if s & STAGE != QUEUED {
            return None;
        }
        self.f()
            .state
            .compare_exchange(
                s,
                (s & !STAGE) | TAKEN,
                Ordering::Acquire,
                Ordering::Relaxed,
            )
            .ok()?;
        // SAFETY: moved out of `QUEUED` by this thread: it owns the closure.
        Some(unsafe { self.take_func() })
    }
}

impl<F, T> Shared<F, T> {
    #[inline]
    fn f(&self) -> &Fields<F, T> {
        // SAFETY: no `&mut Fields` is ever made while `self` is shared: the
        // fields change only through their own interior mutability (atomics,
        // the slot's cell, the waker's mutex); `Drop`, which has `&mut self`,
        // reads through this same shared view.
        unsafe { &*self.fields.get() }
    }
}

impl<F, T> Runnable for Shared<F, T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    fn meta(&self) -> &Meta {
        &self.f().meta
    }

    fn run(&self, done: &dyn Fn(&Ran), release: bool) -> (Taken, bool) {
        let func = match self.claim() {
            Ok(f) => f,
            Err(taken) => return (taken, release && self.release_queue()),
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
        (Taken::Mine, self.finish(result, release))
    }

    fn resolve(&self, error: JobError, counted: &dyn Fn(), release: bool) -> (Taken, bool) {
        match self.claim() {
            Ok(func) => {
                counted();
                let last = self.finish(Err(error), release);
                // After publishing: the closure's captures may take time or panic.
                drop_quietly(func);
                (Taken::Mine, last)
            }
            Err(taken) => (taken, release && self.release_queue()),
        }
    }

    fn take_unstarted(&self, counted: &dyn Fn()) -> (Taken, Option<Unstarted>, bool) {
        match self.claim() {
            Ok(func) => {
                counted();
                let last = self.finish(Err(JobError::Cancelled), true);
                (Taken::Mine, Some(Box::new(move || drop(func()))), last)
            }
            Err(taken) => (taken, None, self.release_queue()),
        }
    }

    fn release_queue(&self) -> bool {
        self.f().state.fetch_and(!QREF, Ordering::AcqRel) & HREF == 0
    }
}

impl<F, T> Outcome<T> for Shared<F, T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    fn wait(&self, deadline: Option<Instant>) -> bool {
        loop {
            let s = self.f().state.load(Ordering::Acquire);
            if s & STAGE >= DONE {
                return true;
            }
            // With the flag set, the publisher wakes the key after `DONE`; the
            // parking lot checks `DONE` and sleeps atomically against that wake.
            if s & WAITER == 0
                && self
                    .f()
                    .state
                    .compare_exchange(s, s | WAITER, Ordering::AcqRel, Ordering::Acquire)
                    .is_err()
            {
                continue;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return false;
            }
            self.f().waiters.park(
                self.key(),
                || self.f().state.load(Ordering::Acquire) & STAGE < DONE,
                deadline,
            );
        }
    }

    fn take(&self) -> Option<(Result<T, JobError>, bool)> {
        if self.f().state.load(Ordering::Acquire) & STAGE != DONE {
            return None;
        }
        // SAFETY: `DONE` was published with release after the result was
        // written, and the acquire load above saw it. Only the handle calls
        // `take`, and `HandleRef::take` consumes the handle when it succeeds, so
        // it happens once; the stage then moves on to `TAKEN`.
        let result = self.f().slot.with_mut(|p| {
            // SAFETY: see above: the result is in the slot, read once.
            unsafe { ManuallyDrop::take(&mut (*p).result) }
        });
        // DONE (2) + 1 - HREF: `TAKEN`, the handle's reference dropped.
        let prev = self.f().state.fetch_sub(HREF - 1, Ordering::AcqRel);
        Some((result, prev & QREF == 0))
    }

    fn is_finished(&self) -> bool {
        self.f().state.load(Ordering::Acquire) & STAGE >= DONE
    }

    fn cancel(&self) -> bool {
        // Claim first, then fire the token: firing it first could make a worker
        // that just took the job resolve it `Cancelled` while this says `false`.
        // The handle is not a party that meets the queue entry: it never counts,
        // and its own reference keeps `self` alive throughout.
        let claimed = self.try_claim(UNCOUNTED);
        if let Some(token) = self.f().meta.token() {
            token.cancel();
        }
        match claimed {
            Some(func) => {
                self.finish(Err(JobError::Cancelled), false);
                drop_quietly(func);
                true
            }
            None => false,
        }
    }

    fn register(&self, waker: &Waker) -> bool {
        if self.f().state.load(Ordering::Acquire) & STAGE >= DONE {
            return true;
        }
        {
            let mut slot = self.f().waker.lock();
            match &mut *slot {
                Some(stored) if stored.will_wake(waker) => {}
                other => *other = Some(waker.clone()),
            }
        }
        // After the store: a publisher whose RMW comes after this one sees
        // `WAITER | ASYNC` and takes the waker under the lock; one whose RMW
        // came before left `DONE`, which this RMW returns.
        self.f().state.fetch_or(WAITER | ASYNC, Ordering::AcqRel) & STAGE >= DONE
    }

    fn release_handle(&self) -> bool {
        self.f().state.fetch_and(!HREF, Ordering::AcqRel) & QREF == 0
    }

    fn runnable(&self) -> &dyn Runnable {
        self
    }
}

impl<F, T> Drop for Shared<F, T> {
    fn drop(&mut self) {
        // Exclusive access: both references are gone.
        match self.f().state.load(Ordering::Acquire) & STAGE {
            QUEUED => self.f().slot.with_mut(|p| {
                // SAFETY: `QUEUED`: nobody claimed the closure, it is in the slot.
                unsafe { ManuallyDrop::drop(&mut (*p).func) }
            }),
            DONE => self.f().slot.with_mut(|p| {
                // SAFETY: `DONE`: the result is in the slot and nobody took it.
                unsafe { ManuallyDrop::drop(&mut (*p).result) }
            }),
            // `RUNNING` cannot be seen here: the claimer publishes before it
            // drops a reference. `TAKEN` holds nothing.
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    //! Run under miri too: every path out of the state machine drops the
    //! closure and the result exactly once and frees the job exactly once.
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::new_job;
    use crate::JobError;
    use crate::task::DropCounter as Counted;
    use crate::task::{Meta, Taken};

    #[test]
    fn miri_every_path_drops_closure_and_result_once() {
        let drops = Arc::new(AtomicUsize::new(0));
        let job = || {
            let c = Counted(Arc::clone(&drops));
            let r = Arc::clone(&drops);
            new_job(
                move || {
                    drop(c);
                    Counted(r)
                },
                Meta::default(),
            )
        };
        // Run by the queue's side, result taken by the handle: 2 drops.
        let (entry, handle, _) = job();
        let (taken, last) = entry.job().run(&|_| (), true);
        assert_eq!((taken, last), (Taken::Mine, false));
        entry.finish(last);
        drop(handle.take().ok().unwrap());
        // Run, the handle dropped first, the result never taken: 2 drops.
        let (entry, handle, _) = job();
        drop(handle);
        let (_, last) = entry.job().run(&|_| (), true);
        assert!(last, "the queue's reference was the last");
        entry.finish(last);
        // Cancelled through the handle, the entry met afterwards: 1 drop.
        let (entry, handle, _) = job();
        assert!(handle.get().cancel());
        assert_eq!(handle.take().ok().unwrap().err(), Some(JobError::Cancelled));
        let (taken, last) = entry.job().run(&|_| (), true);
        assert_eq!((taken, last), (Taken::CancelledByHandle, true));
        entry.finish(last);
        // Never run, both references dropped: 1 drop.
        let (entry, handle, _) = job();
        drop(entry);
        drop(handle);
        // Handed back by a refused submit: the closure comes out, then 1 drop.
        let (entry, handle, typed) = job();
        // SAFETY: `handle` holds a reference.
        let f = unsafe { typed.as_ref() }.take_back().unwrap();
        drop(entry);
        drop(handle);
        drop(f);
        // Taken unstarted by shutdown_now and run by the caller: 2 drops.
        let (entry, handle, _) = job();
        let (taken, f, last) = entry.job().take_unstarted(&|| ());
        assert_eq!((taken, last), (Taken::Mine, false));
        entry.finish(last);
        f.unwrap()();
        drop(handle);
        assert_eq!(drops.load(Ordering::SeqCst), 2 + 2 + 1 + 1 + 1 + 2);
    }

    #[test]
    fn miri_a_panicking_job_publishes_its_panic() {
        let (entry, handle, _) = new_job(|| -> u8 { panic!("boom") }, Meta::default());
        let (taken, last) = entry.job().run(&|_| (), true);
        assert_eq!(taken, Taken::Mine);
        entry.finish(last);
        assert_eq!(
            handle.take().ok().unwrap(),
            Err(JobError::Panicked("boom".into()))
        );
    }

    #[test]
    fn miri_a_joiner_and_a_worker_on_two_threads_free_the_job_once() {
        for _ in 0..20 {
            let drops = Arc::new(AtomicUsize::new(0));
            let r = Arc::clone(&drops);
            let (entry, handle, _) = new_job(move || Counted(r), Meta::default());
            let worker = std::thread::spawn(move || {
                let (_, last) = entry.job().run(&|_| (), true);
                entry.finish(last);
            });
            assert!(handle.get().wait(None));
            drop(handle.take().ok().unwrap());
            worker.join().unwrap();
            assert_eq!(drops.load(Ordering::SeqCst), 1);
        }
    }
}
