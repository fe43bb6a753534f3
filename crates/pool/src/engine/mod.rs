//! The engine between submitters and workers: a bounded MPMC array queue and the
//! three protocols around it. Nothing here knows what a job is.
//!
//! - **Submit/close handshake.** A submit counts itself in `Gate::begun` and
//!   enters the push window unless `begun` carries the closed bit; it counts
//!   itself in `Gate::ended` when it leaves. `close` sets the bit, waits until
//!   `ended` has caught up with the submits that entered before, and then
//!   *seals*: from then on nothing enters the queue, so a worker that sees
//!   `sealed` and then an empty queue may exit. No task is ever stranded behind
//!   the workers' exit.
//! - **Sleeping workers.** A worker that finds nothing yields a few times, then
//!   sleeps in [`Sleepers`]; a push wakes one sleeper, and only when one sleeps without a
//!   wake-up already on its way (a load of `want` otherwise). Stop is the same
//!   signal: sealing wakes every sleeper. No stop message travels through the queue,
//!   so no other waiter can take one.
//! - **Blocked submitters.** A push into a full queue under `Block` spins
//!   briefly, then sleeps in a second [`Sleepers`] until the queue has drained to
//!   half its capacity, its deadline passes, or the engine closes (then it gives
//!   its task back). Waking at half rather than at every free slot lets a
//!   producer that outruns the workers refill in batches, instead of burning a
//!   CPU the workers need or switching context for every job.
//!
//! The orderings: each side of a sleep makes its change (a push, a pop, the sealed
//! flag; or registering as a sleeper) and then, after a `SeqCst` fence, looks at the
//! other side's. Of two such threads at least one sees the other's change, so a
//! sleeper never misses the event it waits for. `engine/loom.rs` checks the
//! protocols under every interleaving loom explores.

use std::time::Instant;

use crossbeam_utils::CachePadded;

use crate::sync::{
    AtomicBool, AtomicUsize, Backoff, Condvar, Mutex, MutexGuard, Ordering, RawQueue, fence,
};

#[cfg(all(test, prodkit_loom))]
mod loom;

/// How many times an idle worker yields before it sleeps. Yielding, not
/// spinning: on a machine with fewer cores than threads a spinning worker takes
/// the CPU from the submitter it waits for (measured on the README's 2-vCPU VM:
/// spinning idle workers made 1M tiny jobs 2-3x slower than yielding ones), and
/// a few yields keep a worker that just went idle quick to pick up the next job.
pub(crate) const IDLE_YIELDS: u32 = if cfg!(prodkit_loom) { 0 } else { 8 };

/// How many times a push into a full queue yields before it sleeps.
const SUBMIT_YIELDS: u32 = if cfg!(prodkit_loom) { 0 } else { 2 };

/// The closed bit of `Gate::begun`.
const CLOSED: usize = 1;
/// One submit, in `Gate::begun` and `Gate::ended`.
const STEP: usize = 2;

/// Why a push did not place its task; the task is inside.
#[derive(Debug)]
pub(crate) enum Refused<T> {
    Full(T),
    Closed(T),
    Timeout(T),
}

/// What an idle worker should do next.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Idle {
    /// Look at the queue again.
    Retry,
    /// Slept and was woken: look again, and yield again before the next sleep.
    Slept,
    /// The engine is sealed and empty: nothing will ever come.
    Exit,
}

pub(crate) struct Engine<T> {
    queue: RawQueue<T>,
    /// A blocked submitter is woken when at most this many tasks are queued.
    room_at: usize,
    gate: CachePadded<Gate>,
    /// Closed and no push in flight: the queue receives nothing more.
    sealed: AtomicBool,
    /// Held by `close`: a second closer waits for the first one's seal.
    closing: Mutex<()>,
    workers: Sleepers,
    submitters: Sleepers,
}

/// The submit/close handshake. `begun` counts every submit (in steps of 2) and
/// holds the closed bit; `ended` counts the submits that entered the window and
/// left it. A submit that finds the bit set never enters, so once `close` has
/// set the bit, `ended` catching up with the count `begun` had then means that
/// no push is in flight. `begun` doubles as the pool's count of submits.
#[derive(Default)]
struct Gate {
    begun: AtomicUsize,
    ended: AtomicUsize,
}

/// A submit inside the window: it may push until it is dropped.
pub(crate) struct Window<'a, T> {
    engine: &'a Engine<T>,
}

impl<T> Drop for Window<'_, T> {
    /// Leaves the window. Release: the pushes made in it happen before `close`'s
    /// acquire load that sees `ended` catch up, hence before sealing.
    fn drop(&mut self) {
        self.engine.gate.ended.fetch_add(STEP, Ordering::Release);
    }
}

impl<T> Window<'_, T> {
    /// Pushes if there is room, without waiting.
    pub(crate) fn try_push(&self, task: T) -> Result<(), Refused<T>> {
        match self.engine.queue.push(task) {
            Ok(()) => {
                self.engine.workers.notify_one();
                Ok(())
            }
            Err(task) => Err(Refused::Full(task)),
        }
    }

    /// Pushes, waiting for room until `deadline` (forever without one). Closing
    /// the engine wakes the wait and gives the task back.
    pub(crate) fn push_wait(&self, task: T, deadline: Option<Instant>) -> Result<(), Refused<T>> {
        let engine = self.engine;
        let mut task = task;
        let mut yields = 0;
        loop {
            match self.try_push(task) {
                Err(Refused::Full(back)) => task = back,
                placed => return placed,
            }
            if engine.is_closed() {
                return Err(Refused::Closed(task));
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(Refused::Timeout(task));
            }
            if yields < SUBMIT_YIELDS {
                yields += 1;
                crate::sync::yield_now();
            } else {
                engine.submitters.sleep(
                    || engine.queue.len() <= engine.room_at || engine.is_closed(),
                    deadline,
                );
            }
        }
    }

    /// Pushes; when the queue is full, the oldest task makes room and comes back.
    pub(crate) fn force_push(&self, task: T) -> Option<T> {
        let evicted = self.engine.queue.force_push(task);
        self.engine.workers.notify_one();
        evicted
    }
}

impl<T> Engine<T> {
    pub(crate) fn new(capacity: usize) -> Self {
        Engine {
            queue: RawQueue::new(capacity),
            room_at: capacity / 2,
            gate: CachePadded::new(Gate::default()),
            sealed: AtomicBool::new(false),
            closing: Mutex::new(()),
            workers: Sleepers::new(),
            submitters: Sleepers::new(),
        }
    }

    /// Counts a submit and enters the push window; `None` once closed.
    pub(crate) fn begin(&self) -> Option<Window<'_, T>> {
        // SeqCst: one total order with `close`'s fetch_or on the same word, so
        // coherence alone decides who was first.
        let prev = self.gate.begun.fetch_add(STEP, Ordering::SeqCst);
        // Not `then_some`: a `Window` made and dropped would count as an end.
        if prev & CLOSED == 0 {
            Some(Window { engine: self })
        } else {
            None
        }
    }

    /// How many submits began, closed or not.
    pub(crate) fn submits(&self) -> u64 {
        (self.gate.begun.load(Ordering::Relaxed) / STEP) as u64
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.gate.begun.load(Ordering::Acquire) & CLOSED != 0
    }

    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    pub(crate) fn capacity(&self) -> usize {
        self.queue.capacity()
    }

    /// Takes the oldest task, if any, and wakes a submitter waiting for room
    /// once the queue is down to half.
    pub(crate) fn pop(&self) -> Option<T> {
        let task = self.queue.pop()?;
        self.submitters
            .notify_one_if(|| self.queue.len() <= self.room_at);
        Some(task)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Called by a worker that found the queue empty for the `idle`-th time in a
    /// row: yields, or after [`IDLE_YIELDS`] sleeps until a push or the seal.
    /// [`Idle::Exit`] once sealed and empty.
    pub(crate) fn idle(&self, idle: u32) -> Idle {
        // Sealed first, then empty: nothing enters a sealed queue, so it stays empty.
        if self.sealed.load(Ordering::SeqCst) && self.queue.is_empty() {
            return Idle::Exit;
        }
        if idle < IDLE_YIELDS {
            crate::sync::yield_now();
            Idle::Retry
        } else {
            self.workers.sleep(
                || !self.queue.is_empty() || self.sealed.load(Ordering::SeqCst),
                None,
            );
            Idle::Slept
        }
    }

    /// Stops accepting pushes, wakes blocked submitters (they get their task
    /// back), waits for the pushes in flight, seals, and wakes every worker.
    /// Idempotent. Never waits for a worker or a job.
    pub(crate) fn close(&self) {
        // One closer at a time; a later one finds the engine sealed.
        let _closing = self.closing.lock();
        if self.sealed.load(Ordering::SeqCst) {
            return;
        }
        let before = self.gate.begun.fetch_or(CLOSED, Ordering::SeqCst);
        self.submitters.notify_all();
        // A push in flight is a few instructions, or a blocked submitter that the
        // notification above sends home: a short wait.
        let backoff = Backoff::new();
        while self.gate.ended.load(Ordering::Acquire) != before {
            if backoff.is_completed() {
                crate::sync::pause();
            } else {
                backoff.snooze();
            }
        }
        self.sealed.store(true, Ordering::SeqCst);
        self.workers.notify_all();
    }
}

/// Threads that sleep until an event, and the wake-ups owed to them. A wake-up
/// is a permit any sleeper may take; `want` (sleepers minus permits) lets a
/// notifier skip the lock when nobody needs waking, the common case under load.
struct Sleepers {
    want: CachePadded<AtomicUsize>,
    counts: Mutex<Counts>,
    cv: Condvar,
}

#[derive(Debug, Default)]
struct Counts {
    sleeping: usize,
    /// Wake-ups sent and not yet taken; never above `sleeping`.
    permits: usize,
}

impl Sleepers {
    fn new() -> Self {
        Sleepers {
            want: CachePadded::new(AtomicUsize::new(0)),
            counts: Mutex::new(Counts::default()),
            cv: Condvar::new(),
        }
    }

    fn publish(&self, counts: &MutexGuard<'_, Counts>) {
        self.want
            .store(counts.sleeping - counts.permits, Ordering::SeqCst);
    }

    /// Wakes one sleeper that has no wake-up on its way, if there is one. The
    /// caller made its event visible first; the fence orders that before the load.
    fn notify_one(&self) {
        self.notify_one_if(|| true);
    }

    /// `notify_one` when a sleeper exists and `worth` says its condition holds
    /// (checked only then: the common case under load is nobody sleeping).
    fn notify_one_if(&self, worth: impl Fn() -> bool) {
        fence(Ordering::SeqCst);
        if self.want.load(Ordering::SeqCst) == 0 || !worth() {
            return;
        }
        let mut counts = self.counts.lock();
        if counts.sleeping > counts.permits {
            counts.permits += 1;
            self.publish(&counts);
            self.cv.notify_one();
        }
    }

    /// Wakes every sleeper.
    fn notify_all(&self) {
        let mut counts = self.counts.lock();
        counts.permits = counts.sleeping;
        self.publish(&counts);
        self.cv.notify_all();
    }

    /// Sleeps until `ready()`, a wake-up, or `deadline`. `ready` is checked after
    /// registering, behind a fence: an event published before a notifier looked at
    /// `want` and found no sleeper is seen here.
    fn sleep(&self, ready: impl Fn() -> bool, deadline: Option<Instant>) {
        let mut counts = self.counts.lock();
        counts.sleeping += 1;
        self.publish(&counts);
        fence(Ordering::SeqCst);
        while counts.permits == 0 && !ready() && deadline.is_none_or(|d| Instant::now() < d) {
            counts = self.cv.wait(counts, deadline);
        }
        counts.sleeping -= 1;
        // Whatever woke us, one owed wake-up is paid: a thread is awake to look.
        counts.permits = counts.permits.saturating_sub(1);
        self.publish(&counts);
    }
}
