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
    pub fn is_closed(&self) -> bool {
        self.inner.engine.is_closed()
    }

    /// The number of worker threads.
    pub fn workers(&self) -> usize {
        self.inner.workers
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
