//! What travels through the queue, and the state a job with a handle shares
//! with its [`JobHandle`](crate::JobHandle).
//!
//! A job is taken by exactly one party: a worker that pops it, a joining worker
//! that claims it while it is still queued, an eviction, `shutdown_now`, or a
//! cancel through its handle. The party that takes it counts its outcome, once,
//! before the outcome becomes visible to anyone else.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Instant;

use crate::scope::ScopeShared;
use crate::{CancelToken, JobError};

mod inline;
#[cfg(all(test, prodkit_loom))]
mod loom;
mod shared;

pub(crate) use inline::InlineJob;
pub(crate) use shared::{HandleRef, JobRef, new_job};

/// What a job carries besides its closure.
#[derive(Debug, Default)]
pub(crate) struct Meta {
    /// `clock.raw()` at submit when histograms are on, else 0.
    pub(crate) enqueued: u64,
    /// Only for a job with a deadline or a token: most have neither, and a job
    /// with a handle stays one small allocation.
    pub(crate) limits: Option<Box<Limits>>,
}

#[derive(Debug)]
pub(crate) struct Limits {
    /// The job resolves `Cancelled` if it has not started by then.
    pub(crate) deadline: Option<quanta::Instant>,
    pub(crate) token: Option<CancelToken>,
}

impl Meta {
    /// Whether the job may no longer start: its token fired or its deadline passed.
    /// Reads the clock only for a job that has a deadline.
    pub(crate) fn expired(&self, clock: &quanta::Clock) -> bool {
        self.limits.as_ref().is_some_and(|l| {
            l.token.as_ref().is_some_and(CancelToken::is_cancelled)
                || l.deadline.is_some_and(|d| clock.now() >= d)
        })
    }

    pub(crate) fn token(&self) -> Option<&CancelToken> {
        self.limits.as_ref()?.token.as_ref()
    }
}

/// A queue entry: a pointer to the job's own allocation, or a small detached
/// closure held in place.
pub(crate) enum Task {
    Handle(JobRef),
    Detached(Box<dyn Detached>),
    /// A detached job without deadline or token, small enough to need no box.
    Inline(InlineJob),
    /// "Run one queued job of this scope": the scope's jobs wait in the scope, so
    /// the scope's own thread can run them too.
    Scope(Arc<ScopeShared>),
}

/// How a job that ran ended, for the counters.
#[derive(Debug)]
pub(crate) enum Ran {
    Completed,
    Panicked(String),
}

/// What a party that found a job with a handle came away with.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Taken {
    /// This party took the job (ran it, resolved it, or handed it out).
    Mine,
    /// Its handle cancelled it while it was queued and nobody counted that yet:
    /// this party counts it (cancelled) now.
    CancelledByHandle,
    /// Someone else took it and counted it: the queue entry is stale.
    Stale,
}

/// A closure taken out of the queue unrun, for `shutdown_now`.
pub(crate) type Unstarted = Box<dyn FnOnce() + Send>;

/// A queued job with a handle, seen from the pool. A party that met the job's
/// queue entry passes `release`: the call also drops the entry's reference, and
/// returns whether that was the last one (the caller then frees the job, see
/// [`JobRef::finish`]). A joining worker passes `false`: it holds no reference.
pub(crate) trait Runnable: Send + Sync {
    fn meta(&self) -> &Meta;
    /// Runs the job if nobody took it. `done` runs after the closure and before
    /// the result is published, so counters are up to date before a join returns.
    fn run(&self, done: &dyn Fn(&Ran), release: bool) -> (Taken, bool);
    /// Resolves a job that has not started with `error`, dropping its closure.
    /// `counted` runs when this party took it, before the outcome is visible.
    fn resolve(&self, error: JobError, counted: &dyn Fn(), release: bool) -> (Taken, bool);
    /// Resolves a job that has not started as cancelled and hands its closure
    /// out; `counted` as for `resolve`.
    fn take_unstarted(&self, counted: &dyn Fn()) -> (Taken, Option<Unstarted>, bool);
    /// Drops the queue entry's reference; `true` when it was the last.
    fn release_queue(&self) -> bool;
}

/// The typed view a [`JobHandle`](crate::JobHandle) has of its job.
pub(crate) trait Outcome<T>: Send + Sync {
    fn wait(&self, deadline: Option<Instant>) -> bool;
    /// The result, if the job finished, and the handle's reference dropped with
    /// it: `true` when it was the last.
    fn take(&self) -> Option<(Result<T, JobError>, bool)>;
    fn is_finished(&self) -> bool;
    /// Stores `waker` to be woken when the job finishes; `true` when it has
    /// finished already (then nothing will wake it).
    fn register(&self, waker: &std::task::Waker) -> bool;
    fn cancel(&self) -> bool;
    /// Drops the handle's reference; `true` when it was the last.
    fn release_handle(&self) -> bool;
    fn runnable(&self) -> &dyn Runnable;
}

/// A detached job, seen from the pool; the box can be taken apart again.
pub(crate) trait Detached: Send {
    fn meta(&self) -> &Meta;
    fn run(self: Box<Self>);
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send>;
    fn into_fn(self: Box<Self>) -> Box<dyn FnOnce() + Send>;
}

pub(crate) struct DetachedJob<F> {
    pub(crate) meta: Meta,
    pub(crate) func: F,
}

impl<F: FnOnce() + Send + 'static> Detached for DetachedJob<F> {
    fn meta(&self) -> &Meta {
        &self.meta
    }
    fn run(self: Box<Self>) {
        (self.func)();
    }
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send> {
        Box::new(self.func)
    }
    fn into_fn(self: Box<Self>) -> Box<dyn FnOnce() + Send> {
        Box::new(self.func)
    }
}

/// The text of a panic payload.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a non-string panic payload".to_string()
    }
}

/// Drops `value` where a panic in its `Drop` must not unwind further (a worker's
/// loop, a scope's wait). A panic payload whose own `Drop` panics is leaked.
pub(crate) fn drop_quietly<V>(value: V) {
    if let Err(payload) = catch_unwind(AssertUnwindSafe(move || drop(value)))
        && let Err(again) = catch_unwind(AssertUnwindSafe(move || drop(payload)))
    {
        std::mem::forget(again);
    }
}

/// A value that counts its drops, for the unit tests of the job state and of
/// inline jobs (run under miri).
#[cfg(test)]
pub(crate) struct DropCounter(pub(crate) Arc<std::sync::atomic::AtomicUsize>);

#[cfg(test)]
impl Drop for DropCounter {
    fn drop(&mut self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}
