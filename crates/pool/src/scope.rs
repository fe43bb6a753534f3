//! Structured concurrency: jobs that borrow from the caller's stack.

use std::any::Any;
use std::fmt;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

use crate::Pool;

/// What a scope's jobs left behind.
#[derive(Default)]
struct State {
    pending: usize,
    first_panic: Option<Box<dyn Any + Send>>,
    cancelled: usize,
}

struct ScopeData {
    state: Mutex<State>,
    done: Condvar,
}

/// A scope made by [`Pool::scope`]: jobs spawned in it may borrow anything that
/// outlives the scope, because the scope returns only after all of them ended.
pub struct Scope<'scope, 'env: 'scope> {
    pool: &'scope Pool,
    data: ScopeData,
    /// Invariance over both lifetimes, as in `std::thread::Scope`.
    scope: PhantomData<&'scope mut &'scope ()>,
    env: PhantomData<&'env mut &'env ()>,
}

impl fmt::Debug for Scope<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scope")
            .field("pending", &self.data.state.lock().pending)
            .finish_non_exhaustive()
    }
}

/// A scope's job. Whether it runs or is dropped unrun, its closure is gone before
/// the scope's count goes down: `Drop` drops the closure first.
struct ScopedJob<'scope, F> {
    func: Option<F>,
    data: &'scope ScopeData,
}

impl<F> Drop for ScopedJob<'_, F> {
    fn drop(&mut self) {
        let unrun = self
            .func
            .take()
            .map(|f| catch_unwind(AssertUnwindSafe(move || drop(f))));
        let mut state = self.data.state.lock();
        if unrun.is_some() {
            state.cancelled += 1;
        }
        state.pending -= 1;
        if state.pending == 0 {
            self.data.done.notify_all();
        }
    }
}

impl<'scope> Scope<'scope, '_> {
    /// Runs `f` on the pool. A full queue or a closed pool runs it on this thread
    /// instead: a scope's job is never rejected, evicted or lost.
    pub fn spawn<F>(&'scope self, f: F)
    where
        F: FnOnce() + Send + 'scope,
    {
        self.data.state.lock().pending += 1;
        let mut job = ScopedJob {
            func: Some(f),
            data: &self.data,
        };
        let run = move || {
            let f = job.func.take().expect("a scoped job runs once");
            let result = catch_unwind(AssertUnwindSafe(f));
            let panicked = result.is_err();
            if let Err(payload) = result {
                let mut state = job.data.state.lock();
                if state.first_panic.is_none() {
                    state.first_panic = Some(payload);
                }
            }
            drop(job);
            panicked
        };
        let run: Box<dyn FnOnce() -> bool + Send + 'scope> = Box::new(run);
        // SAFETY: `Pool::scope` returns only when the count of pending jobs is
        // zero. The count goes down in `ScopedJob::drop`, after the closure `f`
        // (the only thing that may borrow from 'scope) is gone, and `ScopedJob`
        // is the box's only capture, so nothing borrowed is touched after that.
        // The pool never hands a scoped task out (`shutdown_now` drops it,
        // `DropOldest` runs it), so the box cannot outlive the scope unconsumed.
        // Only the lifetime changes; the layout is the same.
        let run: Box<dyn FnOnce() -> bool + Send + 'static> = unsafe { std::mem::transmute(run) };
        self.pool.inner.enqueue_scoped(run);
    }
}

impl Pool {
    /// Runs `f` with a [`Scope`] whose jobs may borrow from the caller. Returns
    /// after every job spawned in the scope has ended; if any panicked, the first
    /// panic is re-raised then, like [`std::thread::scope`]. While it waits on a
    /// worker of this pool, the thread runs queued jobs, so nested scopes do not
    /// starve the pool.
    ///
    /// # Panics
    /// Re-raises the first panic of `f` or of a job; panics if `shutdown_now`
    /// cancelled some of the scope's jobs.
    pub fn scope<'env, F, R>(&self, f: F) -> R
    where
        F: for<'scope> FnOnce(&'scope Scope<'scope, 'env>) -> R,
    {
        let scope = Scope {
            pool: self,
            data: ScopeData {
                state: Mutex::new(State::default()),
                done: Condvar::new(),
            },
            scope: PhantomData,
            env: PhantomData,
        };
        let result = catch_unwind(AssertUnwindSafe(|| f(&scope)));
        let data = &scope.data;
        crate::pool::wait_helping(
            || data.state.lock().pending == 0,
            |deadline: Option<Instant>| {
                let mut state = data.state.lock();
                while state.pending > 0 {
                    match deadline {
                        None => data.done.wait(&mut state),
                        Some(d) => {
                            if data.done.wait_until(&mut state, d).timed_out() {
                                break;
                            }
                        }
                    }
                }
                state.pending == 0
            },
            None,
        );
        let mut state = data.state.lock();
        let first_panic = state.first_panic.take();
        let cancelled = state.cancelled;
        drop(state);
        match result {
            Err(payload) => resume_unwind(payload),
            Ok(_) if first_panic.is_some() => resume_unwind(first_panic.expect("checked")),
            Ok(_) if cancelled > 0 => {
                panic!("{cancelled} job(s) of this scope never ran: shutdown_now cancelled them")
            }
            Ok(value) => value,
        }
    }
}
