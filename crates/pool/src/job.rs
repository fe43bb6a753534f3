//! Jobs, their handles and cancellation: the public side. The state behind a
//! handle is in `task.rs`.

use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::JobError;
use crate::task::HandleRef;

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

/// The result of an accepted job. Dropping the handle detaches the job: it still
/// runs and is still counted.
///
/// **Async:** `handle.await` ([`IntoFuture`], giving a [`JoinFuture`]) waits
/// for the same result as [`join`](JobHandle::join) without blocking the
/// executor's thread: the worker that finishes the job wakes the task (no
/// runtime is required). Dropping the future drops the handle: the job is not
/// cancelled, it runs and is counted (call [`cancel`](JobHandle::cancel) first
/// to cancel it). Unlike `join` on a worker, awaiting never runs the job in
/// place.
pub struct JobHandle<T> {
    pub(crate) outcome: HandleRef<T>,
    /// The pool it was submitted to: a join on one of its workers may run it.
    pub(crate) pool_id: usize,
}

impl<T> JobHandle<T> {
    /// Waits for the job and returns its value or why there is none.
    ///
    /// Called from inside a job of the same pool while the joined job is still
    /// queued, the waiting worker takes that job out and runs it itself (as
    /// rayon's `join` does), so a job joining another never starves the pool. It
    /// never runs any other job while it waits: a job running elsewhere is waited
    /// for, blocking this thread.
    ///
    /// # Errors
    /// [`JobError`]: cancelled, panicked or evicted.
    pub fn join(self) -> Result<T, JobError> {
        let outcome = self.outcome.get();
        if !outcome.is_finished() {
            crate::worker::run_if_queued_here(outcome, self.pool_id);
        }
        outcome.wait(None);
        match self.outcome.take() {
            Ok(result) => result,
            Err(_) => unreachable!("a finished job has its result until the handle takes it"),
        }
    }

    /// Like [`join`](JobHandle::join), waiting at most `timeout`; the handle comes
    /// back when the job has not finished by then. It never runs the job here,
    /// so it returns in time on a worker too.
    ///
    /// # Errors
    /// `Err(self)` when the job has not finished within `timeout`.
    pub fn join_timeout(self, timeout: Duration) -> Result<Result<T, JobError>, Self> {
        let deadline = Instant::now().checked_add(timeout);
        if self.outcome.get().wait(deadline) {
            match self.outcome.take() {
                Ok(result) => Ok(result),
                Err(_) => unreachable!("a finished job has its result until the handle takes it"),
            }
        } else {
            Err(self)
        }
    }

    /// The result if the job has finished, without waiting.
    ///
    /// # Errors
    /// `Err(self)` when the job has not finished.
    pub fn try_join(self) -> Result<Result<T, JobError>, Self> {
        let pool_id = self.pool_id;
        self.outcome
            .take()
            .map_err(|outcome| JobHandle { outcome, pool_id })
    }

    /// Whether the job has a result (a value or an error).
    pub fn is_finished(&self) -> bool {
        self.outcome.get().is_finished()
    }

    /// Cancels the job: one that has not started never runs and resolves
    /// [`JobError::Cancelled`]; `true` then. `false` when it was too late: the
    /// job is running or has ended (it may also have been resolved otherwise,
    /// for example by its deadline). Either way the job's [`CancelToken`], if it
    /// has one, fires, so a running job can stop early.
    ///
    /// The job's queue entry stays in the queue, holding its slot, until a
    /// worker skips it; the pool counts the cancel then.
    pub fn cancel(&self) -> bool {
        self.outcome.get().cancel()
    }
}

/// A [`JobHandle`] being awaited (`handle.await`, or `handle.into_future()`
/// to name it, for `select!`). It is `Unpin`.
///
/// A future, not the handle itself, because the handle's `join` consumes it:
/// a handle that a poll had already resolved would have no result left for
/// `join` to return. Polled again after it returned `Ready`, it stays
/// `Pending`.
///
/// ```
/// use std::future::IntoFuture;
/// use std::time::Duration;
/// use prodkit_pool::{JobError, Pool};
///
/// let pool = Pool::builder().workers(1).build()?;
/// let rt = tokio::runtime::Builder::new_current_thread().enable_time().build()?;
/// rt.block_on(async {
///     let slow = pool.submit(|| std::thread::sleep(Duration::from_millis(50)))?;
///     let queued = pool.submit(|| 1)?.into_future();
///     // Named, a JoinFuture can be cancelled while it is awaited elsewhere.
///     assert!(queued.cancel());
///     assert_eq!(queued.await, Err(JobError::Cancelled));
///     slow.await?;
///     Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
/// })?;
/// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
/// ```
#[must_use = "futures do nothing unless awaited; dropping one detaches the job"]
pub struct JoinFuture<T> {
    handle: Option<JobHandle<T>>,
}

impl<T> IntoFuture for JobHandle<T> {
    type Output = Result<T, JobError>;
    type IntoFuture = JoinFuture<T>;

    fn into_future(self) -> JoinFuture<T> {
        JoinFuture { handle: Some(self) }
    }
}

impl<T> JoinFuture<T> {
    /// Cancels the job, as [`JobHandle::cancel`]; `false` once the future
    /// returned its result.
    pub fn cancel(&self) -> bool {
        self.handle.as_ref().is_some_and(JobHandle::cancel)
    }
}

impl<T> Future for JoinFuture<T> {
    type Output = Result<T, JobError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T, JobError>> {
        let Some(handle) = self.handle.as_ref() else {
            return Poll::Pending;
        };
        if !handle.outcome.get().register(cx.waker()) {
            return Poll::Pending;
        }
        match self.handle.take().map(|h| h.outcome.take()) {
            Some(Ok(result)) => Poll::Ready(result),
            _ => unreachable!("a finished job has its result until the handle takes it"),
        }
    }
}

impl<T> fmt::Debug for JoinFuture<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinFuture")
            .field("handle", &self.handle)
            .finish()
    }
}

impl<T> fmt::Debug for JobHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobHandle")
            .field("finished", &self.is_finished())
            .finish()
    }
}

/// A job that `shutdown_now` took from the queue before it started. Its handle,
/// if it had one, already resolved [`JobError::Cancelled`]; running it here does
/// the work but its value goes nowhere.
pub struct UnstartedJob(pub(crate) Box<dyn FnOnce() + Send>);

impl UnstartedJob {
    /// Runs the job on this thread. A panic of the job unwinds out of here.
    pub fn run(self) {
        (self.0)();
    }
}

impl fmt::Debug for UnstartedJob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UnstartedJob(..)")
    }
}
