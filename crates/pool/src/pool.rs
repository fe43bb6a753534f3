//! The pool: a bounded MPMC queue (crossbeam-channel) served by owned worker threads.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use crossbeam_utils::CachePadded;
use parking_lot::{Condvar, Mutex};

use crate::config::{Builder, Hook};
use crate::job::{CancelToken, Detached, DetachedFn, Ran, Runnable, Shared, panic_message};
use crate::stats::{HistogramSum, Slot};
use crate::{
    BuildError, Job, JobError, JobHandle, Overload, Stats, SubmitError, TrySubmitError,
    UnstartedJob,
};

static NEXT_POOL_ID: AtomicUsize = AtomicUsize::new(1);

/// A job in the queue.
pub(crate) struct Task {
    kind: Kind,
    /// `clock.raw()` at submit.
    enqueued: u64,
    deadline: Option<quanta::Instant>,
    token: Option<CancelToken>,
}

pub(crate) enum Kind {
    Handle(Arc<dyn Runnable>),
    Detached(Box<dyn Detached>),
    /// A job of a [`Scope`](crate::Scope), its lifetime erased; returns whether it
    /// panicked. Dropping it unrun tells its scope it was cancelled.
    Scoped(Box<dyn FnOnce() -> bool + Send>),
    /// Tells one worker to exit; sent only after the pool closed.
    Stop,
}

/// Counters written by submitting threads.
#[derive(Default)]
struct Submits {
    accepted: AtomicU64,
    rejected: AtomicU64,
    evicted: AtomicU64,
    caller_runs: AtomicU64,
}

pub(crate) struct Inner {
    id: usize,
    name: String,
    tx: Sender<Task>,
    rx: Receiver<Task>,
    overload: Overload,
    submit_timeout: Option<Duration>,
    pub(crate) clock: quanta::Clock,
    workers: usize,
    closed: AtomicBool,
    /// Submits between their closed check and their enqueue: shutdown waits for
    /// zero, so no job can slip into the queue after the workers left.
    inflight: CachePadded<AtomicUsize>,
    submits: CachePadded<Submits>,
    /// One per worker, then one shared by submitting threads.
    slots: Box<[CachePadded<Slot>]>,
    live: AtomicU64,
    exited: Mutex<usize>,
    exited_cv: Condvar,
    on_start: Option<Hook>,
    on_stop: Option<Hook>,
}

/// The worker thread's view of its pool, for helping while it waits.
struct WorkerCtx {
    inner: Arc<Inner>,
    slot: usize,
    /// A helper took this worker's stop task; it exits after its current job.
    stop_requested: Cell<bool>,
}

thread_local! {
    static WORKER: RefCell<Option<WorkerCtx>> = const { RefCell::new(None) };
}

/// Whether this thread is a worker of the pool `id`.
fn on_worker_of(id: usize) -> bool {
    WORKER.with(|w| w.borrow().as_ref().is_some_and(|c| c.inner.id == id))
}

/// Waits until `is_done`, or until `deadline`. On a worker thread, runs queued
/// jobs of its pool meanwhile, so that a job waiting for another job (a join, a
/// scope) never starves the pool. Returns whether `is_done` came true.
pub(crate) fn wait_helping(
    is_done: impl Fn() -> bool,
    wait: impl Fn(Option<Instant>) -> bool,
    deadline: Option<Instant>,
) -> bool {
    let helped = WORKER.with(|w| {
        let w = w.borrow();
        let ctx = w.as_ref()?;
        loop {
            if is_done() {
                return Some(true);
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return Some(false);
            }
            match ctx.inner.rx.try_recv() {
                Ok(Task {
                    kind: Kind::Stop, ..
                }) => ctx.stop_requested.set(true),
                Ok(task) => ctx.inner.execute(task, ctx.slot),
                Err(_) => {
                    // Nothing to help with: wait briefly for either event.
                    let tick = now + Duration::from_millis(1);
                    wait(Some(deadline.map_or(tick, |d| d.min(tick))));
                }
            }
        }
    });
    helped.unwrap_or_else(|| wait(deadline))
}

impl Inner {
    fn caller_slot(&self) -> usize {
        self.workers
    }

    fn task(
        &self,
        kind: Kind,
        deadline: Option<quanta::Instant>,
        timeout: Option<Duration>,
        token: Option<CancelToken>,
    ) -> Task {
        let deadline = match (deadline, timeout) {
            (d, None) => d,
            (d, Some(t)) => {
                let by_timeout = self.clock.now() + t;
                Some(d.map_or(by_timeout, |d| d.min(by_timeout)))
            }
        };
        Task {
            kind,
            enqueued: self.clock.raw(),
            deadline,
            token,
        }
    }

    /// Marks a submit in progress; `false` (and no mark) when the pool is closed.
    fn begin_submit(&self) -> bool {
        self.inflight.fetch_add(1, Ordering::SeqCst);
        if self.closed.load(Ordering::SeqCst) {
            self.inflight.fetch_sub(1, Ordering::SeqCst);
            return false;
        }
        true
    }

    fn end_submit(&self) {
        self.inflight.fetch_sub(1, Ordering::SeqCst);
    }

    fn accepted(&self) {
        self.submits.accepted.fetch_add(1, Ordering::Relaxed);
    }

    fn rejected<E>(&self, e: E) -> E {
        self.submits.rejected.fetch_add(1, Ordering::Relaxed);
        e
    }

    /// Queues `task` under the overload policy, or runs it here.
    fn enqueue(&self, task: Task) -> Result<(), SubmitError<Task>> {
        if !self.begin_submit() {
            return Err(self.rejected(SubmitError::Closed(task)));
        }
        let result = match self.tx.try_send(task) {
            Ok(()) => Ok(()),
            Err(TrySendError::Disconnected(_)) => unreachable!("the pool holds a receiver"),
            Err(TrySendError::Full(task)) => self.overloaded(task),
        };
        self.end_submit();
        match result {
            Ok(()) => {
                self.accepted();
                Ok(())
            }
            Err(e) => Err(self.rejected(e)),
        }
    }

    fn overloaded(&self, mut task: Task) -> Result<(), SubmitError<Task>> {
        match self.overload {
            Overload::Reject => Err(SubmitError::Full(task)),
            Overload::CallerRuns => {
                self.run_here(task);
                Ok(())
            }
            Overload::Block if on_worker_of(self.id) => {
                // Waiting here could deadlock: every worker might be doing the same.
                self.run_here(task);
                Ok(())
            }
            Overload::Block => match self.submit_timeout {
                None => self
                    .tx
                    .send(task)
                    .map_err(|e| SubmitError::Closed(e.into_inner())),
                Some(t) => self
                    .tx
                    .send_timeout(task, t)
                    .map_err(|e| SubmitError::Timeout(e.into_inner())),
            },
            Overload::DropOldest => loop {
                match self.tx.try_send(task) {
                    Ok(()) => return Ok(()),
                    Err(TrySendError::Full(t)) => {
                        task = t;
                        if let Ok(oldest) = self.rx.try_recv() {
                            self.evict(oldest);
                        }
                    }
                    Err(TrySendError::Disconnected(_)) => unreachable!("the pool holds a receiver"),
                }
            },
        }
    }

    /// Runs `task` on the submitting thread.
    fn run_here(&self, task: Task) {
        self.submits.caller_runs.fetch_add(1, Ordering::Relaxed);
        let slot = WORKER.with(|w| {
            w.borrow()
                .as_ref()
                .filter(|c| c.inner.id == self.id)
                .map(|c| c.slot)
        });
        self.execute(task, slot.unwrap_or(self.caller_slot()));
    }

    fn evict(&self, task: Task) {
        let slot = &self.slots[self.caller_slot()];
        match task.kind {
            Kind::Handle(job) => {
                if job.resolve(JobError::Rejected) {
                    self.submits.evicted.fetch_add(1, Ordering::Relaxed);
                }
                slot.cancelled.fetch_add(1, Ordering::Relaxed);
            }
            Kind::Detached(job) => {
                let _ = catch_unwind(AssertUnwindSafe(move || drop(job)));
                self.submits.evicted.fetch_add(1, Ordering::Relaxed);
                slot.cancelled.fetch_add(1, Ordering::Relaxed);
            }
            // A scope waits for its jobs: never drop one, run it here instead.
            Kind::Scoped(_) => self.execute(task, self.caller_slot()),
            Kind::Stop => unreachable!("stop tasks are sent only after every submit ended"),
        }
    }

    /// Queues a scope's job; a full queue or a closed pool runs it here.
    pub(crate) fn enqueue_scoped(&self, job: Box<dyn FnOnce() -> bool + Send>) {
        let task = self.task(Kind::Scoped(job), None, None, None);
        self.accepted();
        if !self.begin_submit() {
            self.run_here(task);
            return;
        }
        if let Err(e) = self.tx.try_send(task) {
            self.run_here(e.into_inner());
        }
        self.end_submit();
    }

    /// Runs a dequeued task and counts its outcome in `slot`.
    fn execute(&self, task: Task, slot: usize) {
        let stats = &self.slots[slot];
        let Task {
            kind,
            enqueued,
            deadline,
            token,
        } = task;
        let expired = deadline.is_some_and(|d| self.clock.now() >= d)
            || token.as_ref().is_some_and(CancelToken::is_cancelled);
        if expired {
            match kind {
                Kind::Handle(job) => {
                    job.resolve(JobError::Cancelled);
                }
                Kind::Detached(job) => {
                    let _ = catch_unwind(AssertUnwindSafe(move || drop(job)));
                }
                Kind::Scoped(_) | Kind::Stop => {
                    unreachable!("scope jobs have no deadline or token")
                }
            }
            stats.cancelled.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let start = self.clock.raw();
        stats.active.fetch_add(1, Ordering::Relaxed);
        let ran = match kind {
            Kind::Handle(job) => job.run(),
            Kind::Detached(job) => match catch_unwind(AssertUnwindSafe(move || job.run())) {
                Ok(()) => Ran::Completed,
                Err(payload) => {
                    let msg = panic_message(&*payload);
                    let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
                    Ran::Panicked(msg)
                }
            },
            Kind::Scoped(job) => match job() {
                false => Ran::Completed,
                true => {
                    Ran::Panicked("a scoped job panicked; its scope re-raises the panic".into())
                }
            },
            Kind::Stop => unreachable!("workers handle stop tasks"),
        };
        stats.active.fetch_sub(1, Ordering::Relaxed);
        let run_nanos = self.clock.delta_as_nanos(start, self.clock.raw());
        match ran {
            Ran::AlreadyResolved => {
                stats.cancelled.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Ran::Completed => {
                stats.completed.fetch_add(1, Ordering::Relaxed);
            }
            Ran::Panicked(msg) => {
                stats.panicked.fetch_add(1, Ordering::Relaxed);
                tracing::error!(pool = %self.name, panic = %msg, "a job panicked; the worker keeps serving");
            }
        }
        stats
            .queue_wait
            .record(self.clock.delta_as_nanos(enqueued, start));
        stats.run_time.record(run_nanos);
    }

    /// Takes one task out of the queue for `shutdown_now`, resolving it cancelled.
    fn take_unstarted(&self, task: Task, out: &mut Vec<UnstartedJob>) {
        let slot = &self.slots[self.caller_slot()];
        match task.kind {
            Kind::Handle(job) => {
                if let Some(f) = job.take_unstarted() {
                    out.push(UnstartedJob(f));
                }
                slot.cancelled.fetch_add(1, Ordering::Relaxed);
            }
            Kind::Detached(job) => {
                out.push(UnstartedJob(job.into_fn()));
                slot.cancelled.fetch_add(1, Ordering::Relaxed);
            }
            Kind::Scoped(job) => {
                // Dropped unrun: its scope learns it was cancelled.
                drop(job);
                slot.cancelled.fetch_add(1, Ordering::Relaxed);
            }
            Kind::Stop => {}
        }
    }

    fn run_hook(&self, hook: &Option<Hook>, index: usize, what: &str) {
        if let Some(hook) = hook
            && let Err(payload) = catch_unwind(AssertUnwindSafe(|| hook(index)))
        {
            let msg = panic_message(&*payload);
            tracing::error!(pool = %self.name, worker = index, panic = %msg, "the thread {what} hook panicked");
        }
    }
}

fn worker_main(inner: Arc<Inner>, index: usize) {
    inner.live.fetch_add(1, Ordering::SeqCst);
    inner.run_hook(&inner.on_start, index, "start");
    WORKER.with(|w| {
        *w.borrow_mut() = Some(WorkerCtx {
            inner: Arc::clone(&inner),
            slot: index,
            stop_requested: Cell::new(false),
        });
    });
    loop {
        if WORKER.with(|w| w.borrow().as_ref().is_some_and(|c| c.stop_requested.get())) {
            break;
        }
        match inner.rx.recv() {
            Ok(Task {
                kind: Kind::Stop, ..
            })
            | Err(_) => break,
            Ok(task) => inner.execute(task, index),
        }
    }
    WORKER.with(|w| w.borrow_mut().take());
    inner.run_hook(&inner.on_stop, index, "stop");
    inner.live.fetch_sub(1, Ordering::SeqCst);
    *inner.exited.lock() += 1;
    inner.exited_cv.notify_all();
}

/// What [`Pool::shutdown`] achieved by its deadline.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Jobs that ran to the end, over the pool's life.
    pub completed: u64,
    /// Jobs that panicked.
    pub panicked: u64,
    /// Jobs that never ran (cancelled, expired, evicted, taken by `shutdown_now`).
    pub cancelled: u64,
    /// Jobs still queued at the deadline. They still run: the workers keep
    /// draining the queue, and dropping the pool waits for them.
    pub still_queued: u64,
    /// Workers still running at the deadline (busy with a job that outlived it).
    /// Dropping the pool joins them.
    pub workers_still_running: usize,
}

impl ShutdownReport {
    /// Whether everything finished and every worker was joined by the deadline.
    pub fn is_complete(&self) -> bool {
        self.still_queued == 0 && self.workers_still_running == 0
    }
}

/// The owner's side of shutting down.
struct Lifecycle {
    threads: Vec<JoinHandle<()>>,
    stops_sent: usize,
}

/// A supervised pool of worker threads with a bounded queue.
///
/// Dropping the pool shuts it down gracefully: every queued job runs and every
/// worker thread is joined before `drop` returns.
pub struct Pool {
    pub(crate) inner: Arc<Inner>,
    lifecycle: Mutex<Lifecycle>,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("name", &self.inner.name)
            .field("workers", &self.inner.workers)
            .field("overload", &self.inner.overload)
            .field("closed", &self.inner.closed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Pool {
    /// A builder with the defaults: one worker per available core, a queue of
    /// 1024, [`Overload::Block`] without a timeout.
    pub fn builder() -> Builder {
        Builder::default()
    }

    pub(crate) fn start(b: Builder) -> Result<Pool, BuildError> {
        let (tx, rx) = crossbeam_channel::bounded(b.queue_capacity);
        let inner = Arc::new(Inner {
            id: NEXT_POOL_ID.fetch_add(1, Ordering::Relaxed),
            name: b.thread_name.clone(),
            tx,
            rx,
            overload: b.overload,
            submit_timeout: b.submit_timeout,
            clock: b.clock,
            workers: b.workers,
            closed: AtomicBool::new(false),
            inflight: CachePadded::new(AtomicUsize::new(0)),
            submits: CachePadded::new(Submits::default()),
            slots: (0..=b.workers)
                .map(|_| CachePadded::new(Slot::new()))
                .collect(),
            live: AtomicU64::new(0),
            exited: Mutex::new(0),
            exited_cv: Condvar::new(),
            on_start: b.on_start,
            on_stop: b.on_stop,
        });
        let pool = Pool {
            inner,
            lifecycle: Mutex::new(Lifecycle {
                threads: Vec::new(),
                stops_sent: 0,
            }),
        };
        for index in 0..b.workers {
            let inner = Arc::clone(&pool.inner);
            let spawned = std::thread::Builder::new()
                .name(format!("{}-{index}", b.thread_name))
                .spawn(move || worker_main(inner, index));
            match spawned {
                Ok(handle) => pool.lifecycle.lock().threads.push(handle),
                Err(e) => {
                    // `pool` drops here: the started workers get their stop task and are joined.
                    let started = pool.lifecycle.lock().threads.len();
                    pool.stop_and_join(started);
                    return Err(BuildError::Spawn(e));
                }
            }
        }
        Ok(pool)
    }

    /// Submits `f`, returning a handle to its result. When the queue is full the
    /// [`Overload`] policy decides.
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
        let (task, pending) = HandleJob::new(&self.inner, job);
        match self.inner.enqueue(task) {
            Ok(()) => Ok(pending.handle()),
            Err(e) => Err(e.map(|task| pending.back(task))),
        }
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
        let (task, pending) = HandleJob::new(&self.inner, job);
        match self.inner.try_enqueue(task) {
            Ok(()) => Ok(pending.handle()),
            Err(e) => Err(e.map(|task| pending.back(task))),
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
        let Job {
            func,
            deadline,
            timeout,
            token,
        } = job;
        let task = self.inner.task(
            Kind::Detached(Box::new(DetachedFn(func))),
            deadline,
            timeout,
            token.clone(),
        );
        self.inner.enqueue(task).map_err(|e| {
            e.map(|task| Job {
                func: detached_back(task),
                deadline,
                timeout,
                token,
            })
        })
    }

    /// Like [`execute`](Pool::execute), never blocking, whatever the policy.
    ///
    /// # Errors
    /// As [`try_submit`](Pool::try_submit).
    pub fn try_execute<F>(&self, f: F) -> Result<(), TrySubmitError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        let task = self
            .inner
            .task(Kind::Detached(Box::new(DetachedFn(f))), None, None, None);
        self.inner
            .try_enqueue(task)
            .map_err(|e| e.map(detached_back))
    }

    /// A snapshot of the counters and gauges.
    pub fn stats(&self) -> Stats {
        let inner = &*self.inner;
        let (mut completed, mut panicked, mut cancelled, mut active) = (0, 0, 0, 0);
        let (mut wait, mut run) = (HistogramSum::default(), HistogramSum::default());
        for slot in inner.slots.iter() {
            completed += slot.completed.load(Ordering::Relaxed);
            panicked += slot.panicked.load(Ordering::Relaxed);
            cancelled += slot.cancelled.load(Ordering::Relaxed);
            active += slot.active.load(Ordering::Relaxed);
            wait.add(&slot.queue_wait);
            run.add(&slot.run_time);
        }
        let accepted = inner.submits.accepted.load(Ordering::Relaxed);
        let rejected = inner.submits.rejected.load(Ordering::Relaxed);
        Stats {
            submitted: accepted + rejected,
            accepted,
            rejected,
            completed,
            panicked,
            cancelled,
            evicted: inner.submits.evicted.load(Ordering::Relaxed),
            caller_runs: inner.submits.caller_runs.load(Ordering::Relaxed),
            queued: inner.rx.len() as u64,
            active,
            live_workers: inner.live.load(Ordering::SeqCst),
            queue_wait: wait.summary(),
            run_time: run.summary(),
        }
    }

    /// Whether the pool stopped accepting jobs.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::SeqCst)
    }

    /// The number of worker threads.
    pub fn workers(&self) -> usize {
        self.inner.workers
    }

    /// Stops accepting jobs, lets the workers run every queued job, and joins
    /// them, waiting at most `timeout`. Jobs still queued or running at the
    /// deadline keep going (a running closure cannot be stopped from outside);
    /// the report says so, and dropping the pool waits for them.
    pub fn shutdown(&self, timeout: Duration) -> ShutdownReport {
        let deadline = Instant::now().checked_add(timeout);
        let mut life = self.lifecycle.lock();
        let all_submits_ended = self.close(deadline, None);
        if all_submits_ended {
            while life.stops_sent < self.inner.workers {
                let sent = match deadline {
                    None => self.inner.tx.send(stop_task()).is_ok(),
                    Some(d) => self.inner.tx.send_deadline(stop_task(), d).is_ok(),
                };
                if !sent {
                    break;
                }
                life.stops_sent += 1;
            }
        }
        let exited = self.wait_exited(deadline);
        Self::join_finished(&mut life, exited == self.inner.workers);
        let stats = self.stats();
        ShutdownReport {
            completed: stats.completed,
            panicked: stats.panicked,
            cancelled: stats.cancelled,
            still_queued: (self.inner.rx.len() as u64)
                .saturating_sub(life.stops_sent.saturating_sub(exited) as u64),
            workers_still_running: self.inner.workers - exited,
        }
    }

    /// Stops accepting jobs, takes every job that has not started out of the
    /// queue (their handles resolve [`JobError::Cancelled`]), waits for the
    /// running ones and joins the workers. Nothing of this pool runs after it
    /// returns. The jobs come back, to run elsewhere or drop.
    pub fn shutdown_now(&self) -> Vec<UnstartedJob> {
        let mut life = self.lifecycle.lock();
        let mut unstarted = Vec::new();
        self.close(None, Some(&mut unstarted));
        // Stop tasks sent by an earlier `shutdown` may have been drained above.
        let exited = *self.inner.exited.lock();
        life.stops_sent = exited;
        while life.stops_sent < self.inner.workers {
            if self.inner.tx.send(stop_task()).is_err() {
                break;
            }
            life.stops_sent += 1;
        }
        self.wait_exited(None);
        Self::join_finished(&mut life, true);
        unstarted
    }

    /// Closes the pool and waits until no submit is in progress (until
    /// `deadline`). With `drain`, empties the queue meanwhile.
    fn close(&self, deadline: Option<Instant>, mut drain: Option<&mut Vec<UnstartedJob>>) -> bool {
        let inner = &*self.inner;
        inner.closed.store(true, Ordering::SeqCst);
        let mut spins = 0u32;
        loop {
            if let Some(out) = drain.as_deref_mut() {
                while let Ok(task) = inner.rx.try_recv() {
                    inner.take_unstarted(task, out);
                }
            }
            if inner.inflight.load(Ordering::SeqCst) == 0 {
                break;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return false;
            }
            // A blocked submit waits for the workers to make room: back off.
            spins += 1;
            if spins < 64 {
                std::thread::yield_now();
            } else {
                std::thread::sleep(Duration::from_micros(100));
            }
        }
        if let Some(out) = drain {
            while let Ok(task) = inner.rx.try_recv() {
                inner.take_unstarted(task, out);
            }
        }
        true
    }

    fn wait_exited(&self, deadline: Option<Instant>) -> usize {
        let mut exited = self.inner.exited.lock();
        while *exited < self.inner.workers {
            match deadline {
                None => self.inner.exited_cv.wait(&mut exited),
                Some(d) => {
                    if self.inner.exited_cv.wait_until(&mut exited, d).timed_out() {
                        break;
                    }
                }
            }
        }
        *exited
    }

    fn join_finished(life: &mut Lifecycle, all: bool) {
        let threads = std::mem::take(&mut life.threads);
        for handle in threads {
            if all || handle.is_finished() {
                // Workers catch every panic of jobs and hooks; a join error would be a bug here.
                let _ = handle.join();
            } else {
                life.threads.push(handle);
            }
        }
    }

    /// Closes, lets the first `started` workers drain the queue, and joins them.
    fn stop_and_join(&self, started: usize) {
        let mut life = self.lifecycle.lock();
        self.close(None, None);
        while life.stops_sent < started {
            if self.inner.tx.send(stop_task()).is_err() {
                break;
            }
            life.stops_sent += 1;
        }
        Self::join_finished(&mut life, true);
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let started = self.lifecycle.get_mut().threads.len() + *self.inner.exited.lock();
        self.stop_and_join(started.min(self.inner.workers));
    }
}

impl Inner {
    fn try_enqueue(&self, task: Task) -> Result<(), TrySubmitError<Task>> {
        if !self.begin_submit() {
            return Err(self.rejected(TrySubmitError::Closed(task)));
        }
        let result = self.tx.try_send(task);
        self.end_submit();
        match result {
            Ok(()) => {
                self.accepted();
                Ok(())
            }
            Err(TrySendError::Full(task)) => Err(self.rejected(TrySubmitError::Full(task))),
            Err(TrySendError::Disconnected(_)) => unreachable!("the pool holds a receiver"),
        }
    }
}

/// A job with a handle on its way into the queue: what is needed to hand it
/// back when the queue refuses it.
struct HandleJob<F, T> {
    shared: Arc<Shared<F, T>>,
    deadline: Option<quanta::Instant>,
    timeout: Option<Duration>,
    token: Option<CancelToken>,
}

impl<F, T> HandleJob<F, T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    fn new(inner: &Inner, job: Job<F>) -> (Task, Self) {
        let Job {
            func,
            deadline,
            timeout,
            token,
        } = job;
        let shared = Shared::new(func, token.clone());
        let kind = Kind::Handle(Arc::clone(&shared) as Arc<dyn Runnable>);
        let task = inner.task(kind, deadline, timeout, token.clone());
        (
            task,
            HandleJob {
                shared,
                deadline,
                timeout,
                token,
            },
        )
    }

    fn handle(self) -> JobHandle<T> {
        JobHandle {
            outcome: self.shared,
        }
    }

    /// The job as submitted, out of the task the queue refused.
    fn back(self, task: Task) -> Job<F> {
        drop(task);
        let func = self
            .shared
            .take_back()
            .expect("a job handed back was never started");
        Job {
            func,
            deadline: self.deadline,
            timeout: self.timeout,
            token: self.token,
        }
    }
}

fn stop_task() -> Task {
    Task {
        kind: Kind::Stop,
        enqueued: 0,
        deadline: None,
        token: None,
    }
}

/// The closure of a detached task that was handed back.
fn detached_back<F: 'static>(task: Task) -> F {
    match task.kind {
        Kind::Detached(job) => *job
            .into_any()
            .downcast::<F>()
            .expect("the task holds the closure it was made from"),
        _ => unreachable!("a detached submit makes a detached task"),
    }
}
