//! The state a pool shares with its workers: the engine, the policy that places a
//! job (queue it, run it here, evict for it, hand it back), and the execution and
//! counting of a job once someone took it.

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;
use parking_lot::{Condvar, Mutex};

use crate::config::{Builder, Hook};
use crate::engine::{Engine, Refused};
use crate::stats::Slot;
use crate::task::{
    DetachedJob, Limits, Meta, Ran, Runnable, Taken, Task, drop_quietly, panic_message,
};
use crate::{CancelToken, JobError, Overload, UnstartedJob};

static NEXT_POOL_ID: AtomicUsize = AtomicUsize::new(1);

/// Counters written by submitting threads (the count of submits is the engine's).
#[derive(Default)]
pub(crate) struct Submits {
    pub(crate) rejected: AtomicU64,
    pub(crate) evicted: AtomicU64,
    pub(crate) caller_runs: AtomicU64,
}

/// The threads of the pool and how many of them finished.
pub(crate) struct Exits {
    pub(crate) started: usize,
    pub(crate) exited: usize,
    pub(crate) threads: Vec<JoinHandle<()>>,
    /// The last handle was dropped inside one of the pool's own jobs: the last
    /// worker to exit joins the others (see `Pool::drop`).
    pub(crate) orphaned: bool,
    /// The tasks awaiting the workers' exits (`Pool::shutdown_async`), one
    /// entry per task; all are woken, and the list cleared, at each exit.
    pub(crate) wakers: Vec<std::task::Waker>,
}

/// How a submit treats a full queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Under the pool's [`Overload`] policy.
    Policy,
    /// Never wait, never run here: `try_submit`.
    Try,
}

pub(crate) struct Inner {
    pub(crate) id: usize,
    pub(crate) name: String,
    pub(crate) engine: Engine<Task>,
    overload: Overload,
    submit_timeout: Option<Duration>,
    pub(crate) clock: quanta::Clock,
    histograms: bool,
    pub(crate) workers: usize,
    pub(crate) submits: CachePadded<Submits>,
    /// One per worker (written only by that worker), then the submitters' slot.
    pub(crate) slots: Box<[CachePadded<Slot>]>,
    pub(crate) live: AtomicU64,
    pub(crate) exits: Mutex<Exits>,
    /// Notified under `exits` when a worker starts or exits.
    pub(crate) exited_cv: Condvar,
    /// `shutdown_now` was called: a submit from inside a job of this closed
    /// pool is refused rather than run in place.
    pub(crate) halted: AtomicBool,
    pub(crate) on_start: Option<Hook>,
    pub(crate) on_stop: Option<Hook>,
}

impl Inner {
    pub(crate) fn new(b: &Builder) -> Inner {
        Inner {
            id: NEXT_POOL_ID.fetch_add(1, Ordering::Relaxed),
            name: b.thread_name.clone(),
            engine: Engine::new(b.queue_capacity),
            overload: b.overload,
            submit_timeout: b.submit_timeout,
            clock: b.clock.clone().unwrap_or_default(),
            histograms: b.histograms,
            workers: b.workers,
            submits: CachePadded::new(Submits::default()),
            slots: (0..=b.workers)
                .map(|i| CachePadded::new(Slot::new(i == b.workers)))
                .collect(),
            live: AtomicU64::new(0),
            exits: Mutex::new(Exits {
                started: 0,
                exited: 0,
                threads: Vec::with_capacity(b.workers),
                orphaned: false,
                wakers: Vec::new(),
            }),
            exited_cv: Condvar::new(),
            halted: AtomicBool::new(false),
            on_start: b.on_start.clone(),
            on_stop: b.on_stop.clone(),
        }
    }

    /// The submitters' slot: threads that are not workers of this pool count here.
    pub(crate) fn shared_slot(&self) -> &Slot {
        &self.slots[self.workers]
    }

    /// The slot of the calling thread: its own if it is a worker of this pool.
    pub(crate) fn my_slot(&self) -> &Slot {
        let index = crate::worker::index_in(self.id).unwrap_or(self.workers);
        &self.slots[index]
    }

    /// A job's conditions, read at submit. The clock is read only for a timeout
    /// or when histograms are on.
    pub(crate) fn meta(
        &self,
        deadline: Option<quanta::Instant>,
        timeout: Option<Duration>,
        token: Option<CancelToken>,
    ) -> Meta {
        // A timeout too long for the clock's range never expires.
        let by_timeout = timeout.and_then(|t| self.clock.now().checked_add(t));
        let deadline = match (deadline, by_timeout) {
            (Some(d), Some(t)) => Some(d.min(t)),
            (d, t) => d.or(t),
        };
        let limits =
            (deadline.is_some() || token.is_some()).then(|| Box::new(Limits { deadline, token }));
        Meta {
            enqueued: self.timestamp(),
            limits,
        }
    }

    pub(crate) fn histograms(&self) -> bool {
        self.histograms
    }

    /// A boxed detached job (one that has conditions, or does not fit inline).
    pub(crate) fn detached<F: FnOnce() + Send + 'static>(
        &self,
        func: F,
        deadline: Option<quanta::Instant>,
        timeout: Option<Duration>,
        token: Option<CancelToken>,
    ) -> Task {
        let meta = self.meta(deadline, timeout, token);
        Task::Detached(Box::new(DetachedJob { meta, func }))
    }

    /// `clock.raw()` when histograms are on; 0 (and no clock read) otherwise.
    pub(crate) fn timestamp(&self) -> u64 {
        if self.histograms { self.clock.raw() } else { 0 }
    }

    /// Places an accepted-or-refused job under the overload policy: queued, run
    /// on this thread, or handed back. A job run here runs after the push window
    /// closed, so it may itself shut the pool down.
    pub(crate) fn place(&self, task: Task, mode: Mode) -> Result<(), Refused<Task>> {
        let Some(window) = self.engine.begin() else {
            // A job of this pool still running after a graceful shutdown began
            // may need its children: they run in place, as a scope's do.
            if mode == Mode::Policy
                && !self.halted.load(Ordering::Acquire)
                && crate::worker::index_in(self.id).is_some()
            {
                self.run_here(task);
                return Ok(());
            }
            self.submits.rejected.fetch_add(1, Ordering::Relaxed);
            return Err(Refused::Closed(task));
        };
        let placed = match (mode, self.overload) {
            (Mode::Try, _) | (Mode::Policy, Overload::Reject) => window.try_push(task),
            (Mode::Policy, Overload::CallerRuns) => match window.try_push(task) {
                Err(Refused::Full(task)) => {
                    drop(window);
                    self.run_here(task);
                    Ok(())
                }
                other => other,
            },
            (Mode::Policy, Overload::Block) => match window.try_push(task) {
                // A worker waiting for room could wait forever: every worker might.
                Err(Refused::Full(task)) if crate::worker::index_in(self.id).is_some() => {
                    drop(window);
                    self.run_here(task);
                    Ok(())
                }
                Err(Refused::Full(task)) => {
                    let deadline = self
                        .submit_timeout
                        .and_then(|t| Instant::now().checked_add(t));
                    window.push_wait(task, deadline)
                }
                other => other,
            },
            (Mode::Policy, Overload::DropOldest) => {
                let evicted = window.force_push(task);
                drop(window);
                if let Some(oldest) = evicted {
                    self.evict(oldest);
                }
                Ok(())
            }
        };
        if placed.is_err() {
            self.submits.rejected.fetch_add(1, Ordering::Relaxed);
        }
        placed
    }

    fn run_here(&self, task: Task) {
        self.submits.caller_runs.fetch_add(1, Ordering::Relaxed);
        let slot = self.my_slot();
        slot.hold();
        self.execute(task, slot);
    }

    /// `DropOldest` took `task` out of the queue to make room.
    fn evict(&self, task: Task) {
        let slot = self.shared_slot();
        slot.hold();
        match task {
            Task::Handle(entry) => {
                let (taken, last) = entry.job().resolve(
                    JobError::Rejected,
                    &|| {
                        slot.cancelled();
                        self.submits.evicted.fetch_add(1, Ordering::Relaxed);
                    },
                    true,
                );
                if taken == Taken::CancelledByHandle {
                    slot.cancelled();
                }
                slot.release();
                entry.finish(last);
            }
            Task::Detached(job) => {
                slot.cancelled();
                self.submits.evicted.fetch_add(1, Ordering::Relaxed);
                slot.release();
                drop_quietly(job);
            }
            Task::Inline(job) => {
                slot.cancelled();
                self.submits.evicted.fetch_add(1, Ordering::Relaxed);
                slot.release();
                drop_quietly(job);
            }
            // The scope's jobs wait in the scope, which runs them itself: an
            // evicted hint loses nothing.
            Task::Scope(_) => slot.release(),
        }
    }

    /// Runs or settles a task someone took, counting into `slot`, which the
    /// caller marked with `hold()`; this releases it exactly once.
    pub(crate) fn execute(&self, task: Task, slot: &Slot) {
        match task {
            Task::Handle(entry) => {
                let last = self.run_handle(entry.job(), slot, true);
                // The handle may be gone: freeing the job drops the result,
                // whose `Drop` is the user's code (`finish` catches its panic).
                entry.finish(last);
            }
            Task::Detached(job) => {
                if job.meta().expired(&self.clock) {
                    slot.cancelled();
                    slot.release();
                    drop_quietly(job);
                    return;
                }
                let enqueued = job.meta().enqueued;
                self.run_detached(slot, enqueued, move || job.run());
            }
            Task::Inline(job) => self.run_detached(slot, 0, move || job.run()),
            Task::Scope(scope) => scope.run_one(self, slot),
        }
    }

    /// Runs a detached job's closure, counts it into `slot` and releases the slot.
    fn run_detached(&self, slot: &Slot, enqueued: u64, run: impl FnOnce()) {
        let start = self.timestamp();
        let ran = match catch_unwind(AssertUnwindSafe(run)) {
            Ok(()) => Ran::Completed,
            Err(payload) => {
                let msg = panic_message(&*payload);
                drop_quietly(payload);
                Ran::Panicked(msg)
            }
        };
        self.count(slot, &ran, enqueued, start);
        slot.release();
    }

    /// Runs a job with a handle unless someone took it; `slot` is held and is
    /// released once, before the result is published. `release`: the caller
    /// holds the queue entry's reference, which goes with the call; the result
    /// says whether it was the last (see `JobRef::finish`).
    pub(crate) fn run_handle(&self, job: &dyn Runnable, slot: &Slot, release: bool) -> bool {
        let meta = job.meta();
        let released = Cell::new(false);
        let release_slot = || {
            if !released.replace(true) {
                slot.release();
            }
        };
        let (taken, last) = if meta.expired(&self.clock) {
            job.resolve(
                JobError::Cancelled,
                &|| {
                    slot.cancelled();
                    release_slot();
                },
                release,
            )
        } else {
            let start = self.timestamp();
            let enqueued = meta.enqueued;
            job.run(
                &|ran| {
                    self.count(slot, ran, enqueued, start);
                    release_slot();
                },
                release,
            )
        };
        if taken == Taken::CancelledByHandle {
            slot.cancelled();
        }
        release_slot();
        last
    }

    /// Counts a job that ran. Never unwinds: a `tracing` subscriber is user code.
    pub(crate) fn count(&self, slot: &Slot, ran: &Ran, enqueued: u64, start: u64) {
        match ran {
            Ran::Completed => slot.completed(),
            Ran::Panicked(msg) => {
                slot.panicked();
                let report = || {
                    tracing::error!(pool = %self.name, panic = %msg, "a job panicked; the pool keeps serving");
                };
                if let Err(payload) = catch_unwind(AssertUnwindSafe(report)) {
                    drop_quietly(payload);
                }
            }
        }
        if self.histograms {
            let end = self.clock.raw();
            slot.times(
                self.clock.delta_as_nanos(enqueued, start),
                self.clock.delta_as_nanos(start, end),
            );
        }
    }

    /// Takes every task out of the queue for `shutdown_now`: jobs with a handle
    /// resolve `Cancelled`, and every job that never started comes back.
    pub(crate) fn drain(&self) -> Vec<UnstartedJob> {
        let slot = self.shared_slot();
        let mut unstarted = Vec::new();
        loop {
            slot.hold();
            let Some(task) = self.engine.pop() else {
                slot.release();
                return unstarted;
            };
            match task {
                Task::Handle(entry) => {
                    let (taken, func, last) = entry.job().take_unstarted(&|| slot.cancelled());
                    if taken == Taken::CancelledByHandle {
                        slot.cancelled();
                    }
                    unstarted.extend(func.map(UnstartedJob));
                    entry.finish(last);
                }
                Task::Detached(job) => {
                    slot.cancelled();
                    unstarted.push(UnstartedJob(job.into_fn()));
                }
                Task::Inline(job) => {
                    slot.cancelled();
                    unstarted.push(UnstartedJob(job.into_box()));
                }
                // The scope's own thread runs its jobs: nothing to hand back.
                Task::Scope(_) => {}
            }
            slot.release();
        }
    }

    pub(crate) fn run_hook(&self, hook: Option<&Hook>, index: usize, what: &str) {
        let Some(hook) = hook else { return };
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| hook(index))) {
            let msg = panic_message(&*payload);
            drop_quietly(payload);
            let report = || {
                tracing::error!(pool = %self.name, worker = index, panic = %msg, "the thread {what} hook panicked");
            };
            if let Err(payload) = catch_unwind(AssertUnwindSafe(report)) {
                drop_quietly(payload);
            }
        }
    }
}
