//! Structured concurrency: jobs that borrow from the caller's stack.
//!
//! A scope's jobs wait in the scope itself ([`ScopeShared`]), not in the pool's
//! queue; each spawn puts a hint into the queue that tells a worker "run one job
//! of this scope". So the scope's own thread, while it waits, can run the jobs of
//! its scope that no worker took yet, and only those: it never runs anybody
//! else's work, so nothing unrelated can panic, block or recurse on its stack.

use std::any::Any;
use std::collections::VecDeque;
use std::fmt;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

use crate::Pool;
use crate::inner::Inner;
use crate::stats::Slot;
use crate::task::{Ran, Task, drop_quietly, panic_message};

/// A spawned job with its lifetime erased (see the SAFETY argument in
/// [`Scope::spawn`]), and its submit time for the histograms.
type Erased = (Box<dyn FnOnce() + Send + 'static>, u64);

#[derive(Default)]
struct State {
    /// Spawned jobs nobody took yet.
    queued: VecDeque<Erased>,
    /// Spawned jobs not finished yet: queued or running.
    pending: usize,
    first_panic: Option<Box<dyn Any + Send>>,
    /// The scope's thread sleeps until `pending == 0` or a job is queued.
    waiting: bool,
}

/// The part of a scope that queue hints point to; it outlives the scope only
/// empty (see `Scope::spawn`).
#[derive(Default)]
pub(crate) struct ScopeShared {
    state: Mutex<State>,
    changed: Condvar,
}

impl ScopeShared {
    /// Takes one queued job of the scope, if one is left, and runs it, counting
    /// into `slot` (held by the caller, released here). Never unwinds.
    pub(crate) fn run_one(&self, inner: &Inner, slot: &Slot) {
        let Some((job, enqueued)) = self.state.lock().queued.pop_front() else {
            // Its job ran elsewhere already: a stale hint.
            slot.release();
            return;
        };
        let start = inner.timestamp();
        // The closure is consumed inside: its captures are dropped inside too.
        let result = catch_unwind(AssertUnwindSafe(job));
        let ran = match &result {
            Ok(()) => Ran::Completed,
            Err(payload) => Ran::Panicked(panic_message(&**payload)),
        };
        inner.count(slot, &ran, enqueued, start);
        slot.release();
        let mut state = self.state.lock();
        if let Err(payload) = result {
            if state.first_panic.is_none() {
                state.first_panic = Some(payload);
            } else {
                drop_quietly(payload);
            }
        }
        state.pending -= 1;
        if state.pending == 0 && state.waiting {
            self.changed.notify_all();
        }
    }

    /// Runs the scope's queued jobs on this thread and waits for the running
    /// ones, until none is pending. Never unwinds: every job runs inside
    /// `catch_unwind`, and locks and condition variables do not panic.
    fn wait_all(&self, inner: &Inner) {
        loop {
            {
                let mut state = self.state.lock();
                loop {
                    if state.pending == 0 {
                        state.waiting = false;
                        return;
                    }
                    if !state.queued.is_empty() {
                        break;
                    }
                    state.waiting = true;
                    self.changed.wait(&mut state);
                }
            }
            let slot = inner.my_slot();
            slot.hold();
            self.run_one(inner, slot);
        }
    }
}

/// A scope made by [`Pool::scope`]: jobs spawned in it may borrow anything that
/// outlives the scope, because the scope returns only after all of them ended.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use prodkit_pool::Pool;
///
/// let pool = Pool::builder().workers(2).build()?;
/// let hits = AtomicUsize::new(0); // on this stack, borrowed by the jobs
/// pool.scope(|s| {
///     for _ in 0..10 {
///         s.spawn(|| {
///             hits.fetch_add(1, Ordering::Relaxed);
///         });
///     }
/// });
/// assert_eq!(hits.into_inner(), 10);
/// # Ok::<(), prodkit_pool::BuildError>(())
/// ```
pub struct Scope<'scope, 'env: 'scope> {
    pool: &'scope Pool,
    shared: Arc<ScopeShared>,
    /// Invariance over both lifetimes, as in `std::thread::Scope`.
    scope: PhantomData<&'scope mut &'scope ()>,
    env: PhantomData<&'env mut &'env ()>,
}

impl fmt::Debug for Scope<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scope")
            .field("pending", &self.shared.state.lock().pending)
            .finish_non_exhaustive()
    }
}

impl<'scope> Scope<'scope, '_> {
    /// Runs `f` on the pool. A scope's job is never rejected, evicted or lost:
    /// when the queue is full or the pool is closed, a job of the scope runs on
    /// this thread at once instead (so a scope that spawns faster than the pool
    /// runs is slowed down, and holds at most a queue's worth of jobs).
    ///
    /// After a shutdown, say, the jobs run on the scope's own thread:
    ///
    /// ```
    /// use std::thread;
    /// use std::time::Duration;
    /// use prodkit_pool::Pool;
    ///
    /// let pool = Pool::builder().workers(1).build()?;
    /// pool.shutdown(Duration::from_secs(5));
    /// let mut ran_on = None;
    /// pool.scope(|s| s.spawn(|| ran_on = Some(thread::current().id())));
    /// assert_eq!(ran_on, Some(thread::current().id()));
    /// # Ok::<(), prodkit_pool::BuildError>(())
    /// ```
    pub fn spawn<F>(&'scope self, f: F)
    where
        F: FnOnce() + Send + 'scope,
    {
        let inner = &*self.pool.inner;
        let job: Box<dyn FnOnce() + Send + 'scope> = Box::new(f);
        // SAFETY: only the lifetime changes (same layout). The erased box lives in
        // `self.shared.queued` until someone takes it out, and whoever takes it
        // calls it at once inside `catch_unwind` (`run_one`), which consumes the
        // closure and drops its captures before `pending` goes down. `Pool::scope`
        // cannot be left, by return or by unwinding, before `pending` is zero:
        // the body runs inside `catch_unwind`, and the wait is in a drop guard
        // whose `wait_all` never unwinds (every job it runs is inside
        // `catch_unwind`; counting and `tracing` are guarded too). `pending`
        // counts every box from its push here until its closure is gone, so when
        // the scope ends no erased box exists: queue hints and `Arc`s that
        // outlive it point to an empty `VecDeque`. Nothing else ever holds the
        // box: `shutdown_now` and `DropOldest` drop hints, never jobs.
        let job: Box<dyn FnOnce() + Send + 'static> = unsafe { std::mem::transmute(job) };
        {
            let mut state = self.shared.state.lock();
            state.pending += 1;
            state.queued.push_back((job, inner.timestamp()));
            if state.waiting {
                self.shared.changed.notify_all();
            }
        }
        // The hint counts as the job's submit. No room for it, or no workers any
        // more: run a job of the scope here, so the scope never holds more jobs
        // than hints.
        let hinted = inner.engine.begin().is_some_and(|window| {
            window
                .try_push(Task::Scope(Arc::clone(&self.shared)))
                .is_ok()
        });
        if !hinted {
            let slot = inner.my_slot();
            slot.hold();
            self.shared.run_one(inner, slot);
        }
    }
}

/// Waits for every job of the scope, however `Pool::scope` is left.
struct WaitAll<'a> {
    shared: &'a ScopeShared,
    inner: &'a Inner,
}

impl Drop for WaitAll<'_> {
    fn drop(&mut self) {
        self.shared.wait_all(self.inner);
    }
}

impl Pool {
    /// Runs `f` with a [`Scope`] whose jobs may borrow from the caller. Returns
    /// after every job spawned in the scope has ended; if any panicked, the first
    /// panic is re-raised then, like [`std::thread::scope`].
    ///
    /// While it waits, the calling thread runs the scope's own jobs that no
    /// worker has started yet, and nothing else; it then blocks until the jobs
    /// running on workers end. After the pool is shut down the scope's jobs run on
    /// the calling thread.
    ///
    /// # Panics
    /// Re-raises the panic of `f`, or else the first panic of a job.
    ///
    /// # Examples
    /// ```
    /// use std::panic::{AssertUnwindSafe, catch_unwind};
    /// use prodkit_pool::Pool;
    ///
    /// let pool = Pool::builder().workers(2).build()?;
    /// let data: Vec<u64> = (1..=100).collect();
    /// let mut sums = [0u64; 4];
    /// let chunks = pool.scope(|s| {
    ///     for (chunk, sum) in data.chunks(25).zip(&mut sums) {
    ///         s.spawn(move || *sum = chunk.iter().sum());
    ///     }
    ///     data.len() / 25
    /// });
    /// assert_eq!(chunks, 4);
    /// assert_eq!(sums, [325, 950, 1575, 2200]);
    ///
    /// // A job's panic comes out of `scope`, after every job ended.
    /// let caught = catch_unwind(AssertUnwindSafe(|| {
    ///     pool.scope(|s| s.spawn(|| panic!("bad chunk")))
    /// }));
    /// assert_eq!(caught.unwrap_err().downcast_ref::<&str>(), Some(&"bad chunk"));
    /// # Ok::<(), prodkit_pool::BuildError>(())
    /// ```
    pub fn scope<'env, F, R>(&self, f: F) -> R
    where
        F: for<'scope> FnOnce(&'scope Scope<'scope, 'env>) -> R,
    {
        let scope = Scope {
            pool: self,
            shared: Arc::new(ScopeShared::default()),
            scope: PhantomData,
            env: PhantomData,
        };
        let wait = WaitAll {
            shared: &scope.shared,
            inner: &self.inner,
        };
        let result = catch_unwind(AssertUnwindSafe(|| f(&scope)));
        drop(wait);
        let first_panic = scope.shared.state.lock().first_panic.take();
        match result {
            Err(payload) => {
                drop_quietly(first_panic);
                resume_unwind(payload)
            }
            Ok(_) if first_panic.is_some() => resume_unwind(first_panic.expect("checked")),
            Ok(value) => value,
        }
    }
}

#[cfg(test)]
mod tests {
    //! Run under miri too (`cargo xtask ci`), which reports any access to the
    //! borrowed stack data after the scope returned or unwound.
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::sync::atomic::{AtomicUsize, Ordering};

    use crate::Pool;

    fn pool(workers: usize, capacity: usize) -> Pool {
        Pool::builder()
            .workers(workers)
            .queue_capacity(capacity)
            .clock(quanta::Clock::mock().0)
            .build()
            .unwrap()
    }

    #[test]
    fn miri_scope_jobs_write_borrowed_data_before_the_scope_ends() {
        let pool = pool(2, 2);
        for body_panics in [false, true] {
            let mut cells = [0u8; 6];
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                pool.scope(|s| {
                    for (i, cell) in cells.iter_mut().enumerate() {
                        s.spawn(move || {
                            *cell = i as u8 + 1;
                            if i == 2 {
                                panic!("job");
                            }
                        });
                    }
                    if body_panics {
                        panic!("body");
                    }
                })
            }));
            let payload = outcome.unwrap_err();
            let expected = if body_panics { "body" } else { "job" };
            assert_eq!(payload.downcast_ref::<&str>(), Some(&expected));
            assert_eq!(cells, [1, 2, 3, 4, 5, 6]);
        }
        pool.shutdown(std::time::Duration::from_secs(60));
    }

    #[test]
    fn miri_a_scope_inside_a_job_with_a_full_queue() {
        let pool = std::sync::Arc::new(pool(1, 1));
        let p = std::sync::Arc::clone(&pool);
        let sum = pool
            .submit(move || {
                let total = AtomicUsize::new(0);
                p.scope(|s| {
                    for i in 0..4 {
                        let total = &total;
                        s.spawn(move || {
                            total.fetch_add(i, Ordering::SeqCst);
                        });
                    }
                });
                total.load(Ordering::SeqCst)
            })
            .unwrap();
        assert_eq!(sum.join(), Ok(6));
    }
}
