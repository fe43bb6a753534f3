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
///
/// ```
/// use std::sync::mpsc;
/// use prodkit_pool::{CancelToken, Job, Pool};
///
/// let pool = Pool::builder().workers(1).build()?;
/// let token = CancelToken::new();
/// let (started_tx, started) = mpsc::channel();
/// let seen = token.clone();
/// let handle = pool.submit_job(
///     Job::new(move || {
///         started_tx.send(()).ok();
///         let mut rounds = 0u32;
///         while !seen.is_cancelled() {
///             rounds += 1; // a unit of work
///             std::thread::sleep(std::time::Duration::from_millis(1));
///         }
///         rounds
///     })
///     .token(token.clone()),
/// )?;
/// started.recv()?;
/// token.cancel(); // the running job sees it and stops early
/// assert!(handle.join().is_ok());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A token that is not cancelled.
    ///
    /// ```
    /// use prodkit_pool::CancelToken;
    ///
    /// assert!(!CancelToken::new().is_cancelled());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Fires the token. Idempotent.
    ///
    /// Fired before its job starts, the job never runs:
    ///
    /// ```
    /// use prodkit_pool::{CancelToken, Job, JobError, Pool};
    ///
    /// let pool = Pool::builder().workers(1).build()?;
    /// let token = CancelToken::new();
    /// token.cancel();
    /// token.cancel(); // no effect
    /// let handle = pool.submit_job(Job::new(|| 1).token(token))?;
    /// assert_eq!(handle.join(), Err(JobError::Cancelled));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// Whether the token has fired.
    ///
    /// Clones share the flag:
    ///
    /// ```
    /// use prodkit_pool::CancelToken;
    ///
    /// let token = CancelToken::new();
    /// let in_job = token.clone();
    /// assert!(!in_job.is_cancelled());
    /// token.cancel();
    /// assert!(in_job.is_cancelled());
    /// ```
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
///
/// ```
/// use std::time::Duration;
/// use prodkit_pool::{CancelToken, Job, Pool};
///
/// let pool = Pool::builder().workers(1).build()?;
/// let token = CancelToken::new();
/// let job = Job::new(|| "report")
///     .timeout(Duration::from_secs(10)) // must start within 10 s
///     .token(token.clone()); // and only if `token` has not fired
/// assert_eq!(pool.submit_job(job)?.join()?, "report");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Job<F> {
    pub(crate) func: F,
    pub(crate) deadline: Option<quanta::Instant>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) token: Option<CancelToken>,
}

impl<F> Job<F> {
    /// A job with no deadline and no token.
    ///
    /// ```
    /// use prodkit_pool::{Job, Pool};
    ///
    /// let pool = Pool::builder().workers(1).build()?;
    /// let handle = pool.submit_job(Job::new(|| 6 * 7))?;
    /// assert_eq!(handle.join()?, 42);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(func: F) -> Self {
        Job {
            func,
            deadline: None,
            timeout: None,
            token: None,
        }
    }

    /// The job resolves [`JobError::Cancelled`] without running if it has not
    /// started by `deadline`, read on the pool's clock ([`Pool::clock`](crate::Pool::clock)): a
    /// worker that finds `now >= deadline` does not start it, so a deadline of
    /// now has passed already.
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_pool::{Job, JobError, Pool, quanta::Clock};
    ///
    /// let (clock, _mock) = Clock::mock(); // stands still unless moved
    /// let pool = Pool::builder().workers(1).clock(clock.clone()).build()?;
    /// let expired = pool.submit_job(Job::new(|| 1).deadline(clock.now()))?;
    /// let in_time = Job::new(|| 2).deadline(clock.now() + Duration::from_secs(1));
    /// let in_time = pool.submit_job(in_time)?;
    /// assert_eq!(expired.join(), Err(JobError::Cancelled));
    /// assert_eq!(in_time.join(), Ok(2));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn deadline(mut self, deadline: quanta::Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Like [`deadline`](Job::deadline), `timeout` after the submit, on the pool's clock.
    ///
    /// ```
    /// use std::sync::mpsc;
    /// use std::time::Duration;
    /// use prodkit_pool::{Job, JobError, Pool, quanta::Clock};
    ///
    /// let (clock, mock) = Clock::mock();
    /// let pool = Pool::builder().workers(1).clock(clock).build()?;
    /// let (release, wait) = mpsc::channel::<()>();
    /// // The first job holds the only worker, then moves the clock on by 10 ms.
    /// let first = pool.submit(move || {
    ///     wait.recv().ok();
    ///     mock.increment(Duration::from_millis(10));
    /// })?;
    /// let late = pool.submit_job(Job::new(|| 1).timeout(Duration::from_millis(5)))?;
    /// let in_time = pool.submit_job(Job::new(|| 2).timeout(Duration::from_secs(1)))?;
    /// release.send(())?;
    /// first.join()?;
    /// assert_eq!(late.join(), Err(JobError::Cancelled));
    /// assert_eq!(in_time.join(), Ok(2));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The job resolves [`JobError::Cancelled`] without running if `token` fires
    /// before it starts; [`JobHandle::cancel`] fires it too.
    ///
    /// One token can call off a whole group of queued jobs:
    ///
    /// ```
    /// use std::sync::mpsc;
    /// use prodkit_pool::{CancelToken, Job, JobError, Pool};
    ///
    /// let pool = Pool::builder().workers(1).build()?;
    /// let (release, wait) = mpsc::channel::<()>();
    /// let busy = pool.submit(move || wait.recv().is_ok())?; // holds the only worker
    /// let group = CancelToken::new();
    /// let handles = (0..3)
    ///     .map(|i| pool.submit_job(Job::new(move || i).token(group.clone())))
    ///     .collect::<Result<Vec<_>, _>>()?;
    /// group.cancel();
    /// release.send(())?;
    /// assert_eq!(busy.join(), Ok(true));
    /// for handle in handles {
    ///     assert_eq!(handle.join(), Err(JobError::Cancelled));
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn token(mut self, token: CancelToken) -> Self {
        self.token = Some(token);
        self
    }

    /// The closure, for example out of a [`SubmitError`](crate::SubmitError).
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_pool::{Job, Pool};
    ///
    /// let pool = Pool::builder().workers(1).build()?;
    /// pool.shutdown(Duration::from_secs(5));
    /// let refused = pool.submit_job(Job::new(|| 40 + 2)).unwrap_err();
    /// let job: Job<_> = refused.into_inner();
    /// let func = job.into_inner();
    /// assert_eq!(func(), 42);
    /// # Ok::<(), prodkit_pool::BuildError>(())
    /// ```
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
///
/// ```
/// use std::time::Duration;
/// use prodkit_pool::Pool;
///
/// let pool = Pool::builder().workers(2).build()?;
/// let handle = pool.submit(|| 6 * 7)?;
/// assert_eq!(handle.join()?, 42);
/// // Dropping a handle detaches its job: it still runs and is counted.
/// drop(pool.submit(|| 1)?);
/// let report = pool.shutdown(Duration::from_secs(5));
/// assert_eq!(report.completed, 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
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
    ///
    /// # Examples
    /// A job joining another on a one-worker pool: the child is still queued, so
    /// the parent's worker runs it in place instead of waiting forever.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use prodkit_pool::{JobError, Pool};
    ///
    /// let pool = Arc::new(Pool::builder().workers(1).build()?);
    /// let p = Arc::clone(&pool);
    /// let parent = pool.submit(move || {
    ///     let child = p.submit(|| 20).expect("the queue has room");
    ///     child.join().map(|n| n + 1)
    /// })?;
    /// assert_eq!(parent.join()?, Ok(21));
    /// let failed = pool.submit(|| -> u32 { panic!("boom") })?;
    /// assert_eq!(failed.join(), Err(JobError::Panicked("boom".into())));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
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
    ///
    /// # Examples
    /// ```
    /// use std::sync::mpsc;
    /// use std::time::Duration;
    /// use prodkit_pool::Pool;
    ///
    /// let pool = Pool::builder().workers(1).build()?;
    /// let (release, wait) = mpsc::channel::<()>();
    /// let handle = pool.submit(move || wait.recv().is_ok())?;
    /// // Not done within 10 ms: the handle comes back.
    /// let handle = handle.join_timeout(Duration::from_millis(10)).unwrap_err();
    /// release.send(())?;
    /// let result = handle.join_timeout(Duration::from_secs(5)).expect("done by now");
    /// assert_eq!(result, Ok(true));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
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
    ///
    /// # Examples
    /// ```
    /// use std::sync::mpsc;
    /// use std::time::Duration;
    /// use prodkit_pool::Pool;
    ///
    /// let pool = Pool::builder().workers(1).build()?;
    /// let (release, wait) = mpsc::channel::<()>();
    /// let mut handle = pool.submit(move || wait.recv().is_ok())?;
    /// handle = handle.try_join().expect_err("still waiting for `release`");
    /// release.send(())?;
    /// // Poll, doing other work in between.
    /// let result = loop {
    ///     match handle.try_join() {
    ///         Ok(result) => break result,
    ///         Err(pending) => handle = pending,
    ///     }
    ///     std::thread::sleep(Duration::from_millis(1));
    /// };
    /// assert_eq!(result, Ok(true));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_join(self) -> Result<Result<T, JobError>, Self> {
        let pool_id = self.pool_id;
        self.outcome
            .take()
            .map_err(|outcome| JobHandle { outcome, pool_id })
    }

    /// Whether the job has a result (a value or an error).
    ///
    /// ```
    /// use std::sync::mpsc;
    /// use std::time::Duration;
    /// use prodkit_pool::Pool;
    ///
    /// let pool = Pool::builder().workers(1).build()?;
    /// let (release, wait) = mpsc::channel::<()>();
    /// let handle = pool.submit(move || wait.recv().is_ok())?;
    /// assert!(!handle.is_finished());
    /// release.send(())?;
    /// while !handle.is_finished() {
    ///     std::thread::sleep(Duration::from_millis(1));
    /// }
    /// // `join` returns at once now.
    /// assert_eq!(handle.join(), Ok(true));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
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
    ///
    /// ```
    /// use std::sync::mpsc;
    /// use prodkit_pool::{CancelToken, Job, JobError, Pool};
    ///
    /// let pool = Pool::builder().workers(1).build()?;
    /// let (started_tx, started) = mpsc::channel();
    /// let (release, wait) = mpsc::channel::<()>();
    /// let running = pool.submit(move || {
    ///     started_tx.send(()).ok();
    ///     wait.recv().is_ok()
    /// })?;
    /// started.recv()?;
    /// let token = CancelToken::new();
    /// let queued = pool.submit_job(Job::new(|| 1).token(token.clone()))?;
    /// assert!(queued.cancel()); // it had not started: it never will
    /// assert!(token.is_cancelled()); // and its token fired
    /// assert_eq!(queued.join(), Err(JobError::Cancelled));
    /// assert!(!running.cancel()); // too late: it runs to the end
    /// release.send(())?;
    /// assert_eq!(running.join(), Ok(true));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
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
    ///
    /// ```
    /// use std::future::IntoFuture;
    /// use std::sync::mpsc;
    /// use prodkit_pool::{JobError, Pool};
    ///
    /// let pool = Pool::builder().workers(1).build()?;
    /// let (release, wait) = mpsc::channel::<()>();
    /// let busy = pool.submit(move || wait.recv().is_ok())?.into_future();
    /// let queued = pool.submit(|| 1)?.into_future();
    /// assert!(queued.cancel()); // still queued behind `busy`
    /// release.send(())?;
    /// let rt = tokio::runtime::Builder::new_current_thread().build()?;
    /// rt.block_on(async {
    ///     let mut busy = busy;
    ///     assert_eq!((&mut busy).await, Ok(true));
    ///     assert!(!busy.cancel()); // it returned its result
    ///     assert_eq!(queued.await, Err(JobError::Cancelled));
    /// });
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
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
///
/// Here the pool's only worker shuts it down from inside a job, so the job
/// queued behind it is sure not to have started:
///
/// ```
/// use std::sync::{Arc, mpsc};
/// use prodkit_pool::{JobError, Pool};
///
/// let pool = Arc::new(Pool::builder().workers(1).build()?);
/// let (go, wait) = mpsc::channel::<()>();
/// let p = Arc::clone(&pool);
/// let stopper = pool.submit(move || {
///     wait.recv().ok();
///     p.shutdown_now()
/// })?;
/// let (tx, rx) = mpsc::channel();
/// let queued = pool.submit(move || tx.send("did the work").is_ok())?;
/// go.send(())?;
/// let unstarted = stopper.join()?;
/// assert_eq!(unstarted.len(), 1);
/// assert_eq!(queued.join(), Err(JobError::Cancelled));
/// for job in unstarted {
///     job.run(); // runs here; its handle already said `Cancelled`
/// }
/// assert_eq!(rx.recv()?, "did the work");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct UnstartedJob(pub(crate) Box<dyn FnOnce() + Send>);

impl UnstartedJob {
    /// Runs the job on this thread. A panic of the job unwinds out of here.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use prodkit_pool::Pool;
    ///
    /// let pool = Pool::builder().workers(1).build()?;
    /// let ran = Arc::new(AtomicUsize::new(0));
    /// for _ in 0..4 {
    ///     let ran = Arc::clone(&ran);
    ///     pool.execute(move || {
    ///         ran.fetch_add(1, Ordering::SeqCst);
    ///     })?;
    /// }
    /// let unstarted = pool.shutdown_now();
    /// // However many the worker got to, the others came back: run them here.
    /// assert_eq!(ran.load(Ordering::SeqCst) + unstarted.len(), 4);
    /// unstarted.into_iter().for_each(|job| job.run());
    /// assert_eq!(ran.load(Ordering::SeqCst), 4);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn run(self) {
        (self.0)();
    }
}

impl fmt::Debug for UnstartedJob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UnstartedJob(..)")
    }
}
