//! Shutting down: graceful with a deadline, now, and on drop; from outside the
//! pool or from inside one of its own jobs.
//!
//! Stop travels out of band: closing the engine seals the queue and wakes every
//! worker, and a worker exits when it finds the sealed queue empty. Waiting for
//! the workers uses the exit count, never a lock that a job might need, so a job
//! that calls into shutdown cannot deadlock with an outside caller. A thread
//! never waits for itself: called from inside one of its jobs, the pool does not
//! wait for the calling worker.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::inner::Inner;
use crate::{Pool, UnstartedJob};

/// What [`Pool::shutdown`] achieved by its deadline.
///
/// ```
/// use std::time::Duration;
/// use prodkit_pool::{CancelToken, Job, Pool};
///
/// let pool = Pool::builder().workers(2).build()?;
/// pool.submit(|| 1)?.join()?;
/// pool.execute(|| panic!("bad input"))?;
/// let fired = CancelToken::new();
/// fired.cancel();
/// pool.execute_job(Job::new(|| ()).token(fired))?;
/// let report = pool.shutdown(Duration::from_secs(5));
/// assert_eq!((report.completed, report.panicked, report.cancelled), (1, 1, 1));
/// assert_eq!((report.still_queued, report.workers_still_running), (0, 0));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Jobs that ran to the end, over the pool's life.
    pub completed: u64,
    /// Jobs that panicked.
    pub panicked: u64,
    /// Jobs that never ran (cancelled, expired, evicted, taken by `shutdown_now`).
    pub cancelled: u64,
    /// Queue entries left at the deadline. Their jobs still run: the workers keep
    /// draining the queue, and dropping the pool waits for them.
    pub still_queued: u64,
    /// Workers still running at the deadline: busy with a job that outlived it,
    /// or the worker whose job called `shutdown`. Dropping the pool joins them.
    pub workers_still_running: usize,
}

impl ShutdownReport {
    /// Whether everything finished and every worker exited by the deadline.
    ///
    /// ```
    /// use std::sync::mpsc;
    /// use std::time::Duration;
    /// use prodkit_pool::Pool;
    ///
    /// let pool = Pool::builder().workers(1).build()?;
    /// let (release, wait) = mpsc::channel::<()>();
    /// pool.execute(move || {
    ///     wait.recv().ok();
    /// })?;
    /// let report = pool.shutdown(Duration::from_millis(10));
    /// assert!(!report.is_complete()); // the job outlived the deadline
    /// assert_eq!(report.workers_still_running, 1);
    /// release.send(())?;
    /// assert!(pool.shutdown(Duration::from_secs(5)).is_complete());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_complete(&self) -> bool {
        self.still_queued == 0 && self.workers_still_running == 0
    }
}

impl Pool {
    /// Stops accepting jobs, lets the workers run every queued job, and joins
    /// them, waiting at most `timeout`. Jobs still queued or running at the
    /// deadline keep going (a running closure cannot be stopped from outside);
    /// the report says so, and dropping the pool waits for them.
    ///
    /// Called from inside one of the pool's own jobs, it waits for the other
    /// workers only: the calling worker is busy with the caller, so it counts in
    /// `workers_still_running`, and it exits after its job returns.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::time::Duration;
    /// use prodkit_pool::Pool;
    ///
    /// let pool = Pool::builder().workers(2).build()?;
    /// let done = Arc::new(AtomicUsize::new(0));
    /// for _ in 0..10 {
    ///     let done = Arc::clone(&done);
    ///     pool.execute(move || {
    ///         done.fetch_add(1, Ordering::SeqCst);
    ///     })?;
    /// }
    /// let report = pool.shutdown(Duration::from_secs(5));
    /// assert!(report.is_complete());
    /// assert_eq!(report.completed, 10); // every queued job ran
    /// assert_eq!(done.load(Ordering::SeqCst), 10);
    /// assert!(pool.execute(|| ()).unwrap_err().is_closed());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn shutdown(&self, timeout: Duration) -> ShutdownReport {
        let deadline = Instant::now().checked_add(timeout);
        self.inner.engine.close();
        let exited = self.wait_exits(deadline);
        self.report(exited)
    }

    /// As [`shutdown`](Pool::shutdown) without blocking the caller's thread
    /// and without a deadline of its own: an async caller awaits the workers'
    /// exits, woken by each worker as it exits (no runtime is required), and
    /// bounds the wait with its runtime's timeout if it wants one. Dropped
    /// before the end, the future has still closed the pool (nothing more is
    /// accepted; the workers run the queued jobs and exit), as a `shutdown`
    /// whose deadline passed: the pool's drop joins them. Several tasks may
    /// await it at once.
    ///
    /// ```
    /// use prodkit_pool::Pool;
    ///
    /// let pool = Pool::builder().workers(2).build()?;
    /// let rt = tokio::runtime::Builder::new_current_thread().build()?;
    /// let report = rt.block_on(async {
    ///     let handle = pool.submit(|| 6 * 7)?;
    ///     assert_eq!(handle.await?, 42);
    ///     Ok::<_, Box<dyn std::error::Error + Send + Sync>>(pool.shutdown_async().await)
    /// })?;
    /// assert!(report.is_complete());
    /// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    /// ```
    pub async fn shutdown_async(&self) -> ShutdownReport {
        self.inner.engine.close();
        let me = crate::worker::index_in(self.inner.id).map_or(0, |_| 1);
        WorkersExited {
            inner: &self.inner,
            me,
        }
        .await;
        // Every worker but the caller's own has exited: this joins them at
        // once.
        let exited = self.wait_exits(Some(Instant::now()));
        self.report(exited)
    }

    fn report(&self, exited: usize) -> ShutdownReport {
        let stats = self.stats();
        ShutdownReport {
            completed: stats.completed,
            panicked: stats.panicked,
            cancelled: stats.cancelled,
            still_queued: stats.queued,
            workers_still_running: self.inner.workers - exited,
        }
    }

    /// Stops accepting jobs, takes every job that has not started out of the
    /// queue (their handles resolve [`JobError::Cancelled`](crate::JobError::Cancelled)),
    /// waits for the running ones and joins the workers: no job of this pool runs
    /// after it returns. The jobs come back, to run elsewhere or drop. A scope's
    /// jobs are not handed back: its own thread runs them.
    ///
    /// Called from inside one of the pool's own jobs, it cannot wait for the
    /// running jobs (one of them is the caller, and another may be joining it):
    /// it returns once the queue is drained, and no queued job starts after that;
    /// the running jobs finish on their own and the workers then exit.
    ///
    /// ```
    /// use prodkit_pool::{JobError, Pool};
    ///
    /// let pool = Pool::builder().workers(1).build()?;
    /// let handles = (0..4)
    ///     .map(|n| pool.submit(move || n))
    ///     .collect::<Result<Vec<_>, _>>()?;
    /// let unstarted = pool.shutdown_now();
    /// assert!(pool.is_closed());
    /// // No job runs any more: each one ran, or came back and its handle says so.
    /// let results: Vec<_> = handles.into_iter().map(|h| h.join()).collect();
    /// let cancelled = results.iter().filter(|r| **r == Err(JobError::Cancelled));
    /// assert_eq!(cancelled.count(), unstarted.len());
    /// let ran = results.iter().filter(|r| r.is_ok()).count();
    /// assert_eq!(ran as u64, pool.stats().completed);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn shutdown_now(&self) -> Vec<UnstartedJob> {
        self.inner
            .halted
            .store(true, std::sync::atomic::Ordering::Release);
        self.inner.engine.close();
        let unstarted = self.inner.drain();
        if crate::worker::index_in(self.inner.id).is_none() {
            self.wait_exits(None);
        }
        unstarted
    }

    /// Waits until every worker but the caller's own has exited, or until
    /// `deadline`, and joins the exited ones. Returns how many exited.
    fn wait_exits(&self, deadline: Option<Instant>) -> usize {
        let me = crate::worker::index_in(self.inner.id).map_or(0, |_| 1);
        let mut exits = self.inner.exits.lock();
        while exits.exited + me < exits.started {
            match deadline {
                None => self.inner.exited_cv.wait(&mut exits),
                Some(d) => {
                    if self.inner.exited_cv.wait_until(&mut exits, d).timed_out() {
                        break;
                    }
                }
            }
        }
        let exited = exits.exited;
        let all = exited == exits.started;
        let threads = std::mem::take(&mut exits.threads);
        let (finished, running): (Vec<_>, Vec<_>) =
            threads.into_iter().partition(|h| all || h.is_finished());
        exits.threads = running;
        // Joined under the lock, so that a concurrent caller that finds the
        // handles taken returns only after they were joined. Each of these
        // threads counted its exit and takes the lock no more.
        for handle in finished {
            let _ = handle.join();
        }
        drop(exits);
        exited
    }
}

/// Ready when every worker but `me` (the caller's own, if it is one) exited.
struct WorkersExited<'a> {
    inner: &'a Inner,
    me: usize,
}

impl Future for WorkersExited<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut exits = self.inner.exits.lock();
        if exits.exited + self.me >= exits.started {
            return Poll::Ready(());
        }
        // Several tasks may await at once: each keeps its own entry.
        if !exits.wakers.iter().any(|w| w.will_wake(cx.waker())) {
            exits.wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

impl Drop for Pool {
    /// A graceful shutdown without a deadline: every queued job runs, every
    /// worker is joined.
    ///
    /// Dropped inside one of its own jobs (the job held the last handle), the
    /// pool cannot wait for the worker that runs the dropping job: it closes,
    /// the workers still run every queued job and exit, and the last worker to
    /// exit joins the others before it ends. The job itself completes normally.
    fn drop(&mut self) {
        self.inner.engine.close();
        if crate::worker::index_in(self.inner.id).is_some() {
            let mut exits = self.inner.exits.lock();
            exits.orphaned = true;
            return;
        }
        self.wait_exits(None);
    }
}
