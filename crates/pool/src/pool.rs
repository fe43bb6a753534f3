//! The pool's public face: building, submitting, stats.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::engine::Refused;
use crate::inner::{Inner, Mode};
use crate::stats::SlotSum;
use crate::task::{InlineJob, Task, new_job};
use crate::{BuildError, Builder, Job, JobHandle, Stats, SubmitError, TrySubmitError};

/// A supervised pool of worker threads with a bounded queue. See the crate docs.
///
/// ```
/// use std::time::Duration;
/// use prodkit_pool::Pool;
///
/// let pool = Pool::builder().workers(2).queue_capacity(64).build()?;
/// let handles = (1..=4u64)
///     .map(|n| pool.submit(move || n * n))
///     .collect::<Result<Vec<_>, _>>()?;
/// let total = handles.into_iter().map(|h| h.join()).sum::<Result<u64, _>>()?;
/// assert_eq!(total, 30);
/// let report = pool.shutdown(Duration::from_secs(5));
/// assert_eq!(report.completed, 4);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Pool {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("name", &self.inner.name)
            .field("workers", &self.inner.workers)
            .field("queue_capacity", &self.inner.engine.capacity())
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

impl<J> Refused<J> {
    fn into_submit_error(self) -> SubmitError<J> {
        match self {
            Refused::Full(j) => SubmitError::Full(j),
            Refused::Closed(j) => SubmitError::Closed(j),
            Refused::Timeout(j) => SubmitError::Timeout(j),
        }
    }

    fn into_try_error(self) -> TrySubmitError<J> {
        match self {
            // A try never waits, so it never times out.
            Refused::Full(j) | Refused::Timeout(j) => TrySubmitError::Full(j),
            Refused::Closed(j) => TrySubmitError::Closed(j),
        }
    }
}

impl<J> Refused<J> {
    fn map<K>(self, f: impl FnOnce(J) -> K) -> Refused<K> {
        match self {
            Refused::Full(j) => Refused::Full(f(j)),
            Refused::Closed(j) => Refused::Closed(f(j)),
            Refused::Timeout(j) => Refused::Timeout(f(j)),
        }
    }
}

impl Pool {
    /// A builder with the defaults: one worker per available CPU, a queue of
    /// 1024, [`Overload::Block`](crate::Overload::Block) without a timeout.
    ///
    /// ```
    /// use prodkit_pool::Pool;
    ///
    /// let pool = Pool::builder().workers(1).build()?;
    /// assert_eq!(pool.workers(), 1);
    /// assert!(format!("{pool:?}").contains("queue_capacity: 1024"));
    /// # Ok::<(), prodkit_pool::BuildError>(())
    /// ```
    pub fn builder() -> Builder {
        Builder::default()
    }

    pub(crate) fn start(b: Builder) -> Result<Pool, BuildError> {
        let pool = Pool {
            inner: Arc::new(Inner::new(&b)),
        };
        for index in 0..b.workers {
            let inner = Arc::clone(&pool.inner);
            let mut thread = std::thread::Builder::new().name(format!("{}-{index}", b.thread_name));
            if let Some(bytes) = b.stack_size {
                thread = thread.stack_size(bytes);
            }
            match thread.spawn(move || crate::worker::worker_main(inner, index)) {
                Ok(handle) => {
                    let mut exits = pool.inner.exits.lock();
                    exits.started += 1;
                    exits.threads.push(handle);
                }
                // Dropping `pool` closes it and joins the workers already started.
                Err(e) => return Err(BuildError::Spawn(e)),
            }
        }
        // Returns once every worker runs, so `stats().live_workers` starts full.
        let mut exits = pool.inner.exits.lock();
        while pool.inner.live.load(Ordering::SeqCst) < b.workers as u64 {
            pool.inner.exited_cv.wait(&mut exits);
        }
        drop(exits);
        Ok(pool)
    }

    /// Submits `f`, returning a handle to its result. When the queue is full the
    /// [`Overload`](crate::Overload) policy decides.
    ///
    /// # Errors
    /// The closure comes back in [`SubmitError::Full`] (policy `Reject`),
    /// [`SubmitError::Timeout`] (`Block` with a `submit_timeout`) or
    /// [`SubmitError::Closed`] (after shutdown).
    ///
    /// # Examples
    /// ```
    /// use prodkit_pool::Pool;
    ///
    /// let pool = Pool::builder().workers(2).build()?;
    /// let words = ["pool", "queue", "worker"];
    /// let handles = words
    ///     .map(|w| pool.submit(move || w.len()).expect("the queue has room"));
    /// assert_eq!(handles.map(|h| h.join()), [Ok(4), Ok(5), Ok(6)]);
    /// # Ok::<(), prodkit_pool::BuildError>(())
    /// ```
    pub fn submit<F, T>(&self, f: F) -> Result<JobHandle<T>, SubmitError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.submit_job(Job::new(f))
            .map_err(|e| e.map(Job::into_inner))
    }

    /// Like [`submit`](Pool::submit), for a [`Job`] with a deadline or a token.
    ///
    /// # Errors
    /// As [`submit`](Pool::submit), with the whole [`Job`] handed back.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use prodkit_pool::{CancelToken, Job, JobError, Pool};
    ///
    /// let pool = Pool::builder().workers(1).build()?;
    /// let timed = pool.submit_job(Job::new(|| 1).timeout(Duration::from_secs(5)))?;
    /// assert_eq!(timed.join(), Ok(1));
    /// let token = CancelToken::new();
    /// token.cancel(); // called off before it could start
    /// let called_off = pool.submit_job(Job::new(|| 2).token(token))?;
    /// assert_eq!(called_off.join(), Err(JobError::Cancelled));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn submit_job<F, T>(&self, job: Job<F>) -> Result<JobHandle<T>, SubmitError<Job<F>>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.place_with_handle(job, Mode::Policy)
            .map_err(Refused::into_submit_error)
    }

    /// Submits `f` if the queue has room, without blocking and whatever the
    /// overload policy.
    ///
    /// # Errors
    /// The closure comes back in [`TrySubmitError::Full`] or [`TrySubmitError::Closed`].
    ///
    /// # Examples
    /// ```
    /// use std::sync::mpsc;
    /// use prodkit_pool::{Pool, TrySubmitError};
    ///
    /// let pool = Pool::builder().workers(1).queue_capacity(1).build()?;
    /// let (started_tx, started) = mpsc::channel();
    /// let (release, wait) = mpsc::channel::<()>();
    /// let busy = pool.submit(move || {
    ///     started_tx.send(()).ok();
    ///     wait.recv().ok();
    /// })?;
    /// started.recv()?; // the only worker is busy
    /// let queued = pool.try_submit(|| 1)?; // room for one
    /// // Full: under `Block` too, `try_submit` returns at once.
    /// let job = match pool.try_submit(|| 2) {
    ///     Err(TrySubmitError::Full(job)) => job,
    ///     other => panic!("expected Full, got {other:?}"),
    /// };
    /// release.send(())?;
    /// busy.join()?;
    /// assert_eq!(queued.join()?, 1);
    /// assert_eq!(pool.submit(job)?.join()?, 2); // room again
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_submit<F, T>(&self, f: F) -> Result<JobHandle<T>, TrySubmitError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.try_submit_job(Job::new(f))
            .map_err(|e| e.map(Job::into_inner))
    }

    /// Like [`try_submit`](Pool::try_submit), for a [`Job`].
    ///
    /// # Errors
    /// As [`try_submit`](Pool::try_submit), with the whole [`Job`] handed back.
    ///
    /// # Examples
    /// ```
    /// use std::sync::mpsc;
    /// use std::time::Duration;
    /// use prodkit_pool::{Job, Pool};
    ///
    /// let pool = Pool::builder().workers(1).queue_capacity(1).build()?;
    /// # let (started_tx, started) = mpsc::channel();
    /// # let (release, wait) = mpsc::channel::<()>();
    /// # let busy = pool.submit(move || {
    /// #     started_tx.send(()).ok();
    /// #     wait.recv().ok();
    /// # })?;
    /// # started.recv()?;
    /// // The only worker is busy (hidden), and this job fills the queue:
    /// let queued = pool.try_submit_job(Job::new(|| 1))?;
    /// let job = Job::new(|| 2).timeout(Duration::from_secs(5));
    /// let err = pool.try_submit_job(job).unwrap_err();
    /// assert!(err.is_full());
    /// let job = err.into_inner(); // with its timeout
    /// # release.send(())?;
    /// # busy.join()?;
    /// assert_eq!(queued.join()?, 1);
    /// assert_eq!(pool.submit_job(job)?.join()?, 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_submit_job<F, T>(&self, job: Job<F>) -> Result<JobHandle<T>, TrySubmitError<Job<F>>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.place_with_handle(job, Mode::Try)
            .map_err(Refused::into_try_error)
    }

    fn place_with_handle<F, T>(
        &self,
        job: Job<F>,
        mode: Mode,
    ) -> Result<JobHandle<T>, Refused<Job<F>>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let Job {
            func,
            deadline,
            timeout,
            token,
        } = job;
        let meta = self.inner.meta(deadline, timeout, token.clone());
        let (entry, handle, typed) = new_job(func, meta);
        match self.inner.place(Task::Handle(entry), mode) {
            Ok(()) => Ok(JobHandle {
                outcome: handle,
                pool_id: self.inner.id,
            }),
            Err(refused) => Err(refused.map(|task| {
                // SAFETY: `handle` still holds a reference, so the job is alive;
                // nobody else ever saw it, and nothing else takes the closure.
                let func = unsafe { typed.as_ref() }
                    .take_back()
                    .expect("a job the queue refused was never started");
                drop(task);
                drop(handle);
                Job {
                    func,
                    deadline,
                    timeout,
                    token,
                }
            })),
        }
    }

    /// Submits `f` without a handle: cheaper, and a panic is only counted and
    /// reported through `tracing`.
    ///
    /// # Errors
    /// As [`submit`](Pool::submit).
    ///
    /// # Examples
    /// ```
    /// use std::sync::mpsc;
    /// use prodkit_pool::Pool;
    ///
    /// let pool = Pool::builder().workers(2).build()?;
    /// let (tx, rx) = mpsc::channel();
    /// for n in 1..=3 {
    ///     let tx = tx.clone();
    ///     pool.execute(move || tx.send(n * 10).unwrap())?;
    /// }
    /// drop(tx);
    /// let mut got: Vec<i32> = rx.iter().collect(); // until every job's sender is gone
    /// got.sort();
    /// assert_eq!(got, [10, 20, 30]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn execute<F>(&self, f: F) -> Result<(), SubmitError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        self.execute_job(Job::new(f))
            .map_err(|e| e.map(Job::into_inner))
    }

    /// Like [`execute`](Pool::execute), for a [`Job`].
    ///
    /// # Errors
    /// As [`submit`](Pool::submit), with the whole [`Job`] handed back.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use prodkit_pool::{CancelToken, Job, Pool};
    ///
    /// let pool = Pool::builder().workers(1).build()?;
    /// let token = CancelToken::new();
    /// token.cancel();
    /// pool.execute_job(Job::new(|| unreachable!("never runs")).token(token))?;
    /// pool.execute_job(Job::new(|| ()).timeout(Duration::from_secs(5)))?;
    /// let report = pool.shutdown(Duration::from_secs(5));
    /// assert_eq!((report.completed, report.cancelled), (1, 1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn execute_job<F>(&self, job: Job<F>) -> Result<(), SubmitError<Job<F>>>
    where
        F: FnOnce() + Send + 'static,
    {
        self.place_detached(job, Mode::Policy)
            .map_err(Refused::into_submit_error)
    }

    /// Like [`execute`](Pool::execute), never blocking, whatever the policy.
    ///
    /// # Errors
    /// As [`try_submit`](Pool::try_submit).
    ///
    /// # Examples
    /// ```
    /// use std::sync::mpsc;
    /// use prodkit_pool::Pool;
    ///
    /// let pool = Pool::builder().workers(1).queue_capacity(1).build()?;
    /// # let (started_tx, started) = mpsc::channel();
    /// # let (release, wait) = mpsc::channel::<()>();
    /// # let busy = pool.submit(move || {
    /// #     started_tx.send(()).ok();
    /// #     wait.recv().ok();
    /// # })?;
    /// # started.recv()?;
    /// let (tx, rx) = mpsc::channel();
    /// // The only worker is busy (hidden): one job fits in the queue.
    /// let first = tx.clone();
    /// pool.try_execute(move || first.send("queued").unwrap())?;
    /// let refused = pool.try_execute(move || tx.send("run here").unwrap());
    /// refused.unwrap_err().into_inner()(); // full: run it on this thread
    /// assert_eq!(rx.recv()?, "run here");
    /// # release.send(())?;
    /// # busy.join()?;
    /// assert_eq!(rx.recv()?, "queued");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_execute<F>(&self, f: F) -> Result<(), TrySubmitError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        self.place_detached(Job::new(f), Mode::Try)
            .map_err(|e| e.map(Job::into_inner).into_try_error())
    }

    fn place_detached<F>(&self, job: Job<F>, mode: Mode) -> Result<(), Refused<Job<F>>>
    where
        F: FnOnce() + Send + 'static,
    {
        let Job {
            func,
            deadline,
            timeout,
            token,
        } = job;
        let plain = deadline.is_none() && timeout.is_none() && token.is_none();
        let task = match plain && !self.inner.histograms() {
            true => match InlineJob::new(func) {
                Ok(job) => Task::Inline(job),
                Err(func) => self.inner.detached(func, None, None, None),
            },
            false => self.inner.detached(func, deadline, timeout, token.clone()),
        };
        self.inner.place(task, mode).map_err(|refused| {
            refused.map(|task| Job {
                func: detached_back(task),
                deadline,
                timeout,
                token,
            })
        })
    }

    /// A snapshot of the counters and gauges. At quiescence (nothing queued or
    /// running, every submit returned) it is exact: `accepted == completed +
    /// panicked + cancelled`, and a job whose handle was joined is counted.
    ///
    /// ```
    /// use prodkit_pool::Pool;
    ///
    /// let pool = Pool::builder().workers(2).build()?;
    /// for n in 0..3 {
    ///     pool.submit(move || n)?.join()?;
    /// }
    /// let stats = pool.stats();
    /// assert_eq!((stats.accepted, stats.completed), (3, 3));
    /// assert_eq!(stats.live_workers, 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stats(&self) -> Stats {
        let inner = &*self.inner;
        // The queue first, then the slots (active before counters): see `Slot`.
        let queued = inner.engine.len() as u64;
        let sum = SlotSum::of(&inner.slots);
        let rejected = inner.submits.rejected.load(Ordering::Relaxed);
        let submitted = inner.engine.submits();
        Stats {
            submitted,
            accepted: submitted.saturating_sub(rejected),
            rejected,
            completed: sum.completed,
            panicked: sum.panicked,
            cancelled: sum.cancelled,
            evicted: inner.submits.evicted.load(Ordering::Relaxed),
            caller_runs: inner.submits.caller_runs.load(Ordering::Relaxed),
            queued,
            active: sum.active,
            live_workers: inner.live.load(Ordering::SeqCst),
            queue_wait: sum.queue_wait.summary(),
            run_time: sum.run_time.summary(),
        }
    }

    /// Whether the pool stopped accepting jobs.
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_pool::Pool;
    ///
    /// let pool = Pool::builder().workers(1).build()?;
    /// assert!(!pool.is_closed());
    /// pool.shutdown(Duration::from_secs(5));
    /// assert!(pool.is_closed());
    /// assert!(pool.submit(|| 1).unwrap_err().is_closed());
    /// # Ok::<(), prodkit_pool::BuildError>(())
    /// ```
    pub fn is_closed(&self) -> bool {
        self.inner.engine.is_closed()
    }

    /// The number of worker threads.
    ///
    /// ```
    /// use prodkit_pool::Pool;
    ///
    /// let pool = Pool::builder().workers(2).build()?;
    /// assert_eq!(pool.workers(), 2);
    /// # Ok::<(), prodkit_pool::BuildError>(())
    /// ```
    pub fn workers(&self) -> usize {
        self.inner.workers
    }

    /// The number of jobs the queue holds.
    ///
    /// ```
    /// use prodkit_pool::Pool;
    ///
    /// let pool = Pool::builder().workers(1).build()?;
    /// assert_eq!(pool.queue_capacity(), 1024); // the default
    /// # Ok::<(), prodkit_pool::BuildError>(())
    /// ```
    pub fn queue_capacity(&self) -> usize {
        self.inner.engine.capacity()
    }

    /// The clock the pool reads deadlines and timeouts on (the one given to
    /// [`Builder::clock`](crate::Builder::clock), else its own): a
    /// [`Job::deadline`](crate::Job::deadline) is a time of this clock.
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_pool::{Job, Pool};
    ///
    /// let pool = Pool::builder().workers(1).build()?;
    /// let deadline = pool.clock().now() + Duration::from_secs(5);
    /// let handle = pool.submit_job(Job::new(|| 7).deadline(deadline))?;
    /// assert_eq!(handle.join(), Ok(7));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn clock(&self) -> &quanta::Clock {
        &self.inner.clock
    }
}

/// The closure of a detached task that the queue refused.
fn detached_back<F: 'static>(task: Task) -> F {
    match task {
        Task::Detached(job) => *job
            .into_any()
            .downcast::<F>()
            .expect("the task holds the closure it was made from"),
        Task::Inline(job) => job
            .into_typed::<F>()
            .expect("the task holds the closure it was made from"),
        _ => unreachable!("a detached submit makes a detached task"),
    }
}
