//! Jobs, their handles and cancellation.

use std::any::Any;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::JobError;

/// A cancellation flag shared between the submitter and a job. Cancelling it
/// before the job starts means the job never runs; a running job may read it
/// ([`is_cancelled`](CancelToken::is_cancelled)) to stop early.
#[derive(Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A token that is not cancelled.
    pub fn new() -> Self {
        Self::default()
    }

    /// Fires the token. Idempotent.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// Whether the token has fired.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

impl fmt::Debug for CancelToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CancelToken")
            .field(&self.is_cancelled())
            .finish()
    }
}

/// A closure plus the conditions under which it may start: a deadline and a
/// cancellation token. `pool.submit(f)` is `pool.submit_job(Job::new(f))`.
pub struct Job<F> {
    pub(crate) func: F,
    pub(crate) deadline: Option<quanta::Instant>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) token: Option<CancelToken>,
}

impl<F> Job<F> {
    /// A job with no deadline and no token.
    pub fn new(func: F) -> Self {
        Job {
            func,
            deadline: None,
            timeout: None,
            token: None,
        }
    }

    /// The job resolves [`JobError::Cancelled`] without running if it has not
    /// started by `deadline`, read on the pool's clock.
    pub fn deadline(mut self, deadline: quanta::Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Like [`deadline`](Job::deadline), `timeout` after the submit, on the pool's clock.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The job resolves [`JobError::Cancelled`] without running if `token` fires
    /// before it starts; [`JobHandle::cancel`] fires it too.
    pub fn token(mut self, token: CancelToken) -> Self {
        self.token = Some(token);
        self
    }

    /// The closure, for example out of a [`SubmitError`](crate::SubmitError).
    pub fn into_inner(self) -> F {
        self.func
    }
}

impl<F> fmt::Debug for Job<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Job")
            .field("deadline", &self.deadline)
            .field("timeout", &self.timeout)
            .field("token", &self.token)
            .finish_non_exhaustive()
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

/// What running a queued job came to, for the counters.
#[derive(Debug)]
pub(crate) enum Ran {
    Completed,
    Panicked(String),
    /// It had been resolved before it could start (cancelled through its handle).
    AlreadyResolved,
}

/// The life of a job with a handle.
enum Stage<F, T> {
    Queued(F),
    Running,
    Done(Result<T, JobError>),
    /// The handle took the result.
    Taken,
}

/// The state a job shares with its handle: one allocation per job.
pub(crate) struct Shared<F, T> {
    stage: Mutex<Stage<F, T>>,
    finished: Condvar,
    token: Option<CancelToken>,
}

impl<F, T> Shared<F, T>
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    pub(crate) fn new(func: F, token: Option<CancelToken>) -> Arc<Self> {
        Arc::new(Shared {
            stage: Mutex::new(Stage::Queued(func)),
            finished: Condvar::new(),
            token,
        })
    }

    fn finish(&self, result: Result<T, JobError>) {
        *self.stage.lock() = Stage::Done(result);
        self.finished.notify_all();
    }

    /// Takes the closure back out of a job that was never queued.
    pub(crate) fn take_back(&self) -> Option<F> {
        match std::mem::replace(&mut *self.stage.lock(), Stage::Taken) {
            Stage::Queued(f) => Some(f),
            _ => None,
        }
    }
}

/// A queued job with a handle, seen from the pool.
pub(crate) trait Runnable: Send + Sync {
    /// Runs the job unless it was resolved first; panics are caught.
    fn run(&self) -> Ran;
    /// Resolves a job that has not started with `error`, dropping its closure.
    /// `false` when it was already resolved.
    fn resolve(&self, error: JobError) -> bool;
    /// Resolves a job that has not started as cancelled and hands out its closure.
    fn take_unstarted(&self) -> Option<Box<dyn FnOnce() + Send>>;
}

impl<F, T> Runnable for Shared<F, T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    fn run(&self) -> Ran {
        let func = {
            let mut stage = self.stage.lock();
            match std::mem::replace(&mut *stage, Stage::Running) {
                Stage::Queued(f) => f,
                other => {
                    *stage = other;
                    return Ran::AlreadyResolved;
                }
            }
        };
        match catch_unwind(AssertUnwindSafe(func)) {
            Ok(value) => {
                self.finish(Ok(value));
                Ran::Completed
            }
            Err(payload) => {
                let msg = panic_message(&*payload);
                self.finish(Err(JobError::Panicked(msg.clone())));
                // The payload may itself panic on drop; that must not kill the worker.
                let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
                Ran::Panicked(msg)
            }
        }
    }

    fn resolve(&self, error: JobError) -> bool {
        let func = {
            let mut stage = self.stage.lock();
            if !matches!(*stage, Stage::Queued(_)) {
                return false;
            }
            let Stage::Queued(f) = std::mem::replace(&mut *stage, Stage::Done(Err(error))) else {
                unreachable!("checked above")
            };
            f
        };
        self.finished.notify_all();
        // Dropped outside the lock: the closure's captures may take time or panic.
        let _ = catch_unwind(AssertUnwindSafe(move || drop(func)));
        true
    }

    fn take_unstarted(&self) -> Option<Box<dyn FnOnce() + Send>> {
        let func = {
            let mut stage = self.stage.lock();
            if !matches!(*stage, Stage::Queued(_)) {
                return None;
            }
            let Stage::Queued(f) =
                std::mem::replace(&mut *stage, Stage::Done(Err(JobError::Cancelled)))
            else {
                unreachable!("checked above")
            };
            f
        };
        self.finished.notify_all();
        Some(Box::new(move || drop(func())))
    }
}

/// The typed view of a job that its [`JobHandle`] holds.
pub(crate) trait Outcome<T>: Send + Sync {
    fn wait(&self, deadline: Option<Instant>) -> bool;
    fn take(&self) -> Option<Result<T, JobError>>;
    fn is_finished(&self) -> bool;
    fn cancel(&self) -> bool;
}

impl<F, T> Outcome<T> for Shared<F, T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    fn wait(&self, deadline: Option<Instant>) -> bool {
        let mut stage = self.stage.lock();
        while !matches!(*stage, Stage::Done(_) | Stage::Taken) {
            match deadline {
                None => self.finished.wait(&mut stage),
                Some(d) => {
                    if self.finished.wait_until(&mut stage, d).timed_out() {
                        return matches!(*stage, Stage::Done(_) | Stage::Taken);
                    }
                }
            }
        }
        true
    }

    fn take(&self) -> Option<Result<T, JobError>> {
        let mut stage = self.stage.lock();
        match std::mem::replace(&mut *stage, Stage::Taken) {
            Stage::Done(result) => Some(result),
            other => {
                *stage = other;
                None
            }
        }
    }

    fn is_finished(&self) -> bool {
        matches!(*self.stage.lock(), Stage::Done(_) | Stage::Taken)
    }

    fn cancel(&self) -> bool {
        if let Some(token) = &self.token {
            token.cancel();
        }
        self.resolve(JobError::Cancelled)
    }
}

/// The result of an accepted job. Dropping the handle detaches the job: it still
/// runs and is still counted.
pub struct JobHandle<T> {
    pub(crate) outcome: Arc<dyn Outcome<T>>,
}

impl<T> JobHandle<T> {
    /// Waits for the job and returns its value or why there is none.
    ///
    /// Called from inside a job of the same pool, the waiting worker runs other
    /// queued jobs meanwhile, so joining never starves the pool.
    ///
    /// # Errors
    /// [`JobError`]: cancelled, panicked or evicted.
    pub fn join(self) -> Result<T, JobError> {
        crate::pool::wait_helping(
            || self.outcome.is_finished(),
            |d| self.outcome.wait(d),
            None,
        );
        self.outcome
            .take()
            .expect("a finished job has its result until the handle takes it")
    }

    /// Like [`join`](JobHandle::join), waiting at most `timeout`; the handle comes
    /// back when the job has not finished by then.
    ///
    /// # Errors
    /// `Err(self)` when the job has not finished within `timeout`.
    pub fn join_timeout(self, timeout: Duration) -> Result<Result<T, JobError>, Self> {
        let deadline = Instant::now().checked_add(timeout);
        if crate::pool::wait_helping(
            || self.outcome.is_finished(),
            |d| self.outcome.wait(d),
            deadline,
        ) {
            Ok(self
                .outcome
                .take()
                .expect("a finished job has its result until the handle takes it"))
        } else {
            Err(self)
        }
    }

    /// The result if the job has finished, without waiting.
    ///
    /// # Errors
    /// `Err(self)` when the job has not finished.
    pub fn try_join(self) -> Result<Result<T, JobError>, Self> {
        match self.outcome.take() {
            Some(result) => Ok(result),
            None => Err(self),
        }
    }

    /// Whether the job has a result (a value or an error).
    pub fn is_finished(&self) -> bool {
        self.outcome.is_finished()
    }

    /// Cancels the job: one that has not started never runs and resolves
    /// [`JobError::Cancelled`]; `true` then. A running job keeps running (`false`),
    /// but its [`CancelToken`], if it has one, fires so it can stop early.
    pub fn cancel(&self) -> bool {
        self.outcome.cancel()
    }
}

impl<T> fmt::Debug for JobHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobHandle")
            .field("finished", &self.is_finished())
            .finish()
    }
}

/// A detached job, seen from the pool; the box can be taken apart again.
pub(crate) trait Detached: Send {
    fn run(self: Box<Self>);
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send>;
    fn into_fn(self: Box<Self>) -> Box<dyn FnOnce() + Send>;
}

pub(crate) struct DetachedFn<F>(pub(crate) F);

impl<F: FnOnce() + Send + 'static> Detached for DetachedFn<F> {
    fn run(self: Box<Self>) {
        (self.0)();
    }
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send> {
        Box::new(self.0)
    }
    fn into_fn(self: Box<Self>) -> Box<dyn FnOnce() + Send> {
        Box::new(self.0)
    }
}

/// A job that `shutdown_now` took from the queue before it started. Its handle,
/// if it had one, already resolved [`JobError::Cancelled`]; running it here does
/// the work but its value goes nowhere.
pub struct UnstartedJob(pub(crate) Box<dyn FnOnce() + Send>);

impl UnstartedJob {
    /// Runs the job on this thread.
    pub fn run(self) {
        (self.0)();
    }
}

impl fmt::Debug for UnstartedJob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UnstartedJob(..)")
    }
}
