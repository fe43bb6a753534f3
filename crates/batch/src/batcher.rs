use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::config::{Builder, RetryPolicy};
use crate::deliver::{Batch, deliver};
use crate::error::{BuildError, NackReason, SubmitError, TrySubmitError};
use crate::sink::{Deadline, DeadlineCell, Sink};
use crate::stats::{Counters, Reason, ShutdownReport, Stats};
use crate::ticket::{Ack, DeadLetter, Ticket};

/// Collects rows from many threads into batches and writes each batch through a
/// [`Sink`] on flusher threads it owns, telling every row how it ended.
///
/// See the crate documentation for the guarantees.
///
/// ```
/// use std::time::Duration;
/// use prodkit_batch::{Batcher, FnSink};
///
/// let batcher = Batcher::builder().build(|| Ok(FnSink(|_rows: &[u32]| Ok(()))))?;
/// // Four threads submit 100 rows each; every row learns its own outcome.
/// std::thread::scope(|s| {
///     for w in 0..4u32 {
///         let batcher = &batcher;
///         s.spawn(move || {
///             let tickets: Vec<_> = (w * 100..w * 100 + 100)
///                 .map(|row| batcher.submit(row).expect("room in the queue"))
///                 .collect();
///             assert!(tickets.into_iter().all(|ticket| ticket.wait().is_ok()));
///         });
///     }
/// });
/// let report = batcher.shutdown(Duration::from_secs(10));
/// assert_eq!((report.acked, report.nacked), (400, 0));
/// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
/// ```
pub struct Batcher<T: Send + 'static> {
    shared: Arc<Shared<T>>,
    flushers: Mutex<Vec<JoinHandle<()>>>,
    shutdown_timeout: Duration,
}

/// What the submitters and the flushers share.
pub(crate) struct Shared<T> {
    state: Mutex<State<T>>,
    /// Flushers wait here for rows, for linger to pass, or for the shutdown.
    work: Condvar,
    /// Submitters wait here for room.
    room: Condvar,
    /// Flushers backing off before a retry wait here; notified only by the shutdown.
    closed: Condvar,
    pub(crate) counters: Counters,
    max_rows: usize,
    max_bytes: usize,
    linger: Duration,
    queue_rows: usize,
    queue_bytes: usize,
    submit_timeout: Duration,
    pub(crate) retry: RetryPolicy,
    row_size: Arc<dyn Fn(&T) -> usize + Send + Sync>,
    pub(crate) dead_letter: Option<Arc<DeadLetter<T>>>,
    pub(crate) clock: quanta::Clock,
    /// Close's deadline, shared with the sinks' writes.
    pub(crate) deadline: Deadline,
    /// Flushers still running, and the task awaiting their end (`shutdown_async`).
    exits: Mutex<Exits>,
}

#[derive(Default)]
struct Exits {
    running: usize,
    /// One entry per awaiting task; all are woken when the last flusher ends.
    wakers: Vec<Waker>,
}

/// Held by a flusher thread: counts it out when it ends, however it ends, and
/// wakes a task awaiting the shutdown.
struct Running<'a, T>(&'a Shared<T>);

impl<T> Drop for Running<'_, T> {
    fn drop(&mut self) {
        let wakers = {
            let mut exits = self.0.exits.lock();
            exits.running -= 1;
            if exits.running == 0 {
                std::mem::take(&mut exits.wakers)
            } else {
                Vec::new()
            }
        };
        for waker in wakers {
            // A waker that panics must not unwind out of the flusher thread.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| waker.wake()));
        }
    }
}

/// Ready when every flusher has ended.
struct FlushersEnded<'a, T>(&'a Shared<T>);

impl<T> Future for FlushersEnded<'_, T> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut exits = self.0.exits.lock();
        if exits.running == 0 {
            return Poll::Ready(());
        }
        // Several tasks may await at once: each keeps its own entry.
        if !exits.wakers.iter().any(|w| w.will_wake(cx.waker())) {
            exits.wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

struct State<T> {
    queue: VecDeque<Pending<T>>,
    bytes: usize,
    closing: bool,
    /// Tasks awaiting room (`submit_async`) by id, oldest first. A flusher
    /// that takes a batch of n rows wakes the n oldest; a shutdown wakes all.
    room_waiters: BTreeMap<u64, Waker>,
    next_waiter: u64,
}

/// How a submit into a full queue waits.
enum Wait<'a> {
    /// Not at all: the row comes back.
    No,
    /// Blocking, up to a timeout.
    Until(Duration),
    /// A task's waker is kept under the id (assigned on the first wait), and
    /// the row comes back; the task polls again when woken.
    Register(&'a Waker, &'a mut Option<u64>),
}

struct Pending<T> {
    row: T,
    size: usize,
    ack: Ack<T>,
    at: quanta::Instant,
}

impl<T: Send + 'static> Batcher<T> {
    /// Options, then [`Builder::build`] with a function that opens a sink.
    ///
    /// ```
    /// use prodkit_batch::{Batcher, FnSink};
    ///
    /// let batcher = Batcher::builder()
    ///     .max_rows(100)
    ///     .build(|| Ok(FnSink(|rows: &[u32]| { assert!(rows.len() <= 100); Ok(()) })))?;
    /// assert!(batcher.submit(1)?.wait().is_ok());
    /// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    /// ```
    pub fn builder() -> Builder<T> {
        Builder::new()
    }

    pub(crate) fn start<S: Sink<T> + 'static>(
        b: Builder<T>,
        sinks: Vec<S>,
    ) -> Result<Batcher<T>, BuildError> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                bytes: 0,
                closing: false,
                room_waiters: BTreeMap::new(),
                next_waiter: 0,
            }),
            work: Condvar::new(),
            room: Condvar::new(),
            closed: Condvar::new(),
            counters: Counters::default(),
            max_rows: b.max_rows,
            max_bytes: b.max_bytes,
            linger: b.linger,
            queue_rows: b.queue_rows,
            queue_bytes: b.queue_bytes,
            submit_timeout: b.submit_timeout,
            retry: b.retry,
            row_size: b.row_size,
            dead_letter: b.dead_letter,
            deadline: Deadline(Arc::new(DeadlineCell::new(b.clock.clone()))),
            clock: b.clock,
            exits: Mutex::new(Exits::default()),
        });
        let batcher = Batcher {
            shared,
            flushers: Mutex::new(Vec::new()),
            shutdown_timeout: b.shutdown_timeout,
        };
        for (i, sink) in sinks.into_iter().enumerate() {
            let shared = Arc::clone(&batcher.shared);
            batcher.shared.exits.lock().running += 1;
            let spawned = std::thread::Builder::new()
                .name(format!("{}-{i}", b.thread_name))
                .spawn(move || {
                    let _running = Running(&shared);
                    flusher(&shared, sink);
                });
            match spawned {
                Ok(handle) => batcher.flushers.lock().push(handle),
                // Dropping `batcher` shuts it down and joins the flushers started so far.
                Err(e) => {
                    batcher.shared.exits.lock().running -= 1;
                    return Err(BuildError::Spawn(e));
                }
            }
        }
        Ok(batcher)
    }

    /// Queues a row, waiting up to the configured `submit_timeout` for room.
    ///
    /// # Errors
    /// The row back: [`SubmitError::Timeout`], [`SubmitError::Closed`],
    /// [`SubmitError::TooLarge`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_batch::{Batcher, FnSink, SubmitError};
    ///
    /// let batcher = Batcher::builder().build(|| Ok(FnSink(|_rows: &[u32]| Ok(()))))?;
    /// let ticket = batcher.submit(1)?;
    /// assert!(ticket.wait().is_ok()); // the write that held the row committed
    ///
    /// batcher.shutdown(Duration::from_secs(10));
    /// assert!(matches!(batcher.submit(2), Err(SubmitError::Closed(2)))); // the row comes back
    /// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    /// ```
    pub fn submit(&self, row: T) -> Result<Ticket<T>, SubmitError<T>> {
        let (ack, ticket) = Ack::ticket(self.shared.dead_letter.clone());
        let timeout = self.shared.submit_timeout;
        self.enqueue(row, ack, Wait::Until(timeout))
            .map(|()| ticket)
            .map_err(Refused::into_submit)
    }

    /// As [`submit`](Batcher::submit) with its own timeout.
    ///
    /// # Errors
    /// As [`submit`](Batcher::submit).
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_batch::{Batcher, FnSink};
    /// # use std::sync::{Arc, Mutex};
    /// # // A sink that waits at a gate the example holds shut: one row in the write, one queued.
    /// # let gate = Arc::new(Mutex::new(()));
    /// # let shut = gate.lock().unwrap();
    /// # let open = || {
    /// #     let gate = Arc::clone(&gate);
    /// #     Ok(FnSink(move |_rows: &[u32]| { drop(gate.lock()); Ok(()) }))
    /// # };
    ///
    /// // `open` makes a sink that blocks until `shut` is dropped.
    /// let batcher = Batcher::builder().max_rows(1).queue_rows(1).build(open)?;
    /// let first = batcher.submit(1)?; // taken by the flusher, whose write blocks
    /// # while batcher.stats().queued_rows > 0 { std::thread::yield_now(); }
    /// let second = batcher.submit(2)?; // fills the queue
    /// let err = batcher.submit_timeout(3, Duration::from_millis(10)).unwrap_err();
    /// assert!(err.is_timeout());
    /// assert_eq!(err.into_inner(), 3);
    /// drop(shut);
    /// assert!(first.wait().is_ok() && second.wait().is_ok());
    /// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    /// ```
    pub fn submit_timeout(&self, row: T, timeout: Duration) -> Result<Ticket<T>, SubmitError<T>> {
        let (ack, ticket) = Ack::ticket(self.shared.dead_letter.clone());
        self.enqueue(row, ack, Wait::Until(timeout))
            .map(|()| ticket)
            .map_err(Refused::into_submit)
    }

    /// Queues a row if there is room now.
    ///
    /// # Errors
    /// The row back: [`TrySubmitError::Full`], [`TrySubmitError::Closed`],
    /// [`TrySubmitError::TooLarge`].
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use prodkit_batch::{Batcher, FnSink};
    ///
    /// // A sink that blocks while `shut` is held: one row in the write, one queued.
    /// let gate = Arc::new(Mutex::new(()));
    /// let shut = gate.lock().unwrap();
    /// let batcher = Batcher::builder().max_rows(1).queue_rows(1).build(|| {
    ///     let gate = Arc::clone(&gate);
    ///     Ok(FnSink(move |_rows: &[u32]| { drop(gate.lock()); Ok(()) }))
    /// })?;
    /// let first = batcher.try_submit(1)?;
    /// while batcher.stats().queued_rows > 0 { std::thread::yield_now(); } // in the write
    /// let second = batcher.try_submit(2)?; // fills the queue
    /// let full = batcher.try_submit(3).unwrap_err(); // at once, no waiting
    /// assert!(full.is_full());
    /// assert_eq!(full.into_inner(), 3);
    /// drop(shut);
    /// assert!(first.wait().is_ok() && second.wait().is_ok());
    /// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    /// ```
    pub fn try_submit(&self, row: T) -> Result<Ticket<T>, TrySubmitError<T>> {
        let (ack, ticket) = Ack::ticket(self.shared.dead_letter.clone());
        self.enqueue(row, ack, Wait::No)
            .map(|()| ticket)
            .map_err(Refused::into_try)
    }

    /// Queues a row without a ticket: if it is not written it goes to the
    /// dead-letter callback (see [`Builder::dead_letter`]) and the counters.
    ///
    /// # Errors
    /// As [`submit`](Batcher::submit): a row not queued comes back here.
    ///
    /// ```
    /// use std::sync::mpsc;
    /// use std::time::Duration;
    /// use prodkit_batch::{Batcher, Failure, FnSink, NackReason, SinkError};
    ///
    /// let (dead, refused) = mpsc::channel();
    /// let batcher = Batcher::builder()
    ///     .dead_letter(move |nack| dead.send(nack).unwrap())
    ///     .build(|| Ok(FnSink(|_rows: &[i64]| Err(SinkError::new(Failure::Row, "bad")))))?;
    /// batcher.submit_detached(-1)?; // no ticket to wait on
    /// let nack = refused.recv()?;
    /// assert_eq!(nack.row, -1);
    /// assert!(matches!(nack.reason, NackReason::Rejected(_)));
    /// assert_eq!(batcher.shutdown(Duration::from_secs(10)).nacked, 1);
    /// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    /// ```
    pub fn submit_detached(&self, row: T) -> Result<(), SubmitError<T>> {
        let timeout = self.shared.submit_timeout;
        self.enqueue(row, Ack::Detached, Wait::Until(timeout))
            .map_err(Refused::into_submit)
    }

    fn enqueue(&self, row: T, ack: Ack<T>, mut wait: Wait<'_>) -> Result<(), Refused<T>> {
        let shared = &*self.shared;
        let size = (shared.row_size)(&row);
        if size > shared.queue_bytes {
            return Err(Refused::TooLarge(row));
        }
        // Read the clock only when the queue is full: most submits find room.
        let mut deadline = None;
        let mut state = shared.state.lock();
        loop {
            if state.closing {
                return Err(Refused::Closed(row));
            }
            if state.queue.len() < shared.queue_rows && state.bytes + size <= shared.queue_bytes {
                break;
            }
            match &mut wait {
                Wait::No => return Err(Refused::Full(row)),
                Wait::Register(waker, id) => {
                    // Under the lock that saw the queue full: a flusher taking
                    // a batch after this finds the waker.
                    let known = id.and_then(|i| state.room_waiters.get_mut(&i));
                    match known {
                        Some(kept) => {
                            if !kept.will_wake(waker) {
                                kept.clone_from(waker);
                            }
                        }
                        None => {
                            let i = state.next_waiter;
                            state.next_waiter += 1;
                            **id = Some(i);
                            state.room_waiters.insert(i, (*waker).clone());
                        }
                    }
                    return Err(Refused::Full(row));
                }
                Wait::Until(timeout) => {
                    let timeout = *timeout;
                    // A timeout too long for an `Instant` (Duration::MAX) waits
                    // without a deadline.
                    let deadline =
                        *deadline.get_or_insert_with(|| Instant::now().checked_add(timeout));
                    let timed_out = match deadline {
                        Some(deadline) => shared.room.wait_until(&mut state, deadline).timed_out(),
                        None => {
                            shared.room.wait(&mut state);
                            false
                        }
                    };
                    if timed_out {
                        let full = state.queue.len() >= shared.queue_rows
                            || state.bytes + size > shared.queue_bytes;
                        if full && !state.closing {
                            return Err(Refused::Timeout(row));
                        }
                    }
                }
            }
        }
        state.queue.push_back(Pending {
            row,
            size,
            ack,
            at: shared.clock.now(),
        });
        state.bytes += size;
        Counters::add(&shared.counters.submitted, 1);
        // The first row starts a flusher's linger timer; a full batch wakes one.
        if state.queue.len() == 1
            || state.queue.len() >= shared.max_rows
            || state.bytes >= shared.max_bytes
        {
            shared.work.notify_one();
        }
        Ok(())
    }

    /// Stops accepting rows and writes everything queued, waiting for the
    /// flushers to finish. Rows not written within `timeout` (still queued, or in
    /// a batch whose retries would run past it) are refused with
    /// [`NackReason::Closed`], or stay [`NackReason::Unknown`] if a write of
    /// theirs ended with an unknown outcome; the report counts them in
    /// [`cut_by_deadline`](ShutdownReport::cut_by_deadline). A write in progress
    /// at the deadline is given up by a sink that overrides
    /// [`Sink::write_until`](crate::Sink::write_until) (the PostgreSQL sink
    /// sends a cancel request, then drops the connection: its rows are refused,
    /// or unknown if COMMIT was in flight), so `shutdown` returns within about
    /// 0.7 s of its deadline; a sink that does not override it is waited for.
    /// Every flusher has been joined when it returns. Later calls return at
    /// once, with the same counts.
    ///
    /// The deadline is read on the batcher's clock ([`Builder::clock`](crate::Builder::clock)):
    /// with `quanta::Clock::mock()` it passes only when the test advances the
    /// mock.
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_batch::{Batcher, FnSink};
    ///
    /// let batcher = Batcher::builder().build(|| Ok(FnSink(|_rows: &[u32]| Ok(()))))?;
    /// let tickets = (0..3).map(|row| batcher.submit(row)).collect::<Result<Vec<_>, _>>()?;
    /// let report = batcher.shutdown(Duration::from_secs(10));
    /// assert!(report.is_complete());
    /// assert_eq!(report.acked, 3);
    /// assert!(tickets.into_iter().all(|t| t.wait().is_ok()));
    /// assert!(batcher.submit(4).unwrap_err().is_closed());
    /// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    /// ```
    pub fn shutdown(&self, timeout: Duration) -> ShutdownReport {
        self.begin_shutdown(timeout);
        self.join_flushers()
    }

    /// As [`shutdown`](Batcher::shutdown) without blocking the caller's
    /// thread: an async caller awaits the flushers' end, woken by the last of
    /// them (no runtime is required). Awaited to the end, the batcher is shut
    /// down and its threads joined; dropping it afterwards returns at once.
    /// Dropped before the end, the future has still begun the shutdown
    /// (nothing more is accepted, the flushers keep writing to the deadline):
    /// the batcher's drop, or a later `shutdown`, joins them. Several tasks may
    /// await it at once.
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_batch::{Batcher, FnSink};
    ///
    /// let batcher = Batcher::builder().build(|| Ok(FnSink(|_rows: &[u32]| Ok(()))))?;
    /// let ticket = batcher.submit(7)?;
    /// let rt = tokio::runtime::Builder::new_current_thread().build()?;
    /// let report = rt.block_on(async {
    ///     let report = batcher.shutdown_async(Duration::from_secs(10)).await;
    ///     assert!(ticket.await.is_ok());
    ///     report
    /// });
    /// assert_eq!(report.acked, 1);
    /// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    /// ```
    pub async fn shutdown_async(&self, timeout: Duration) -> ShutdownReport {
        self.begin_shutdown(timeout);
        FlushersEnded(&self.shared).await;
        // Every flusher has left its loop: the joins return at once.
        self.join_flushers()
    }

    /// The former name of [`shutdown`](Batcher::shutdown), which returns a
    /// report; this returns its counters.
    ///
    /// ```
    /// # #![allow(deprecated)]
    /// # use std::time::Duration;
    /// # use prodkit_batch::{Batcher, FnSink};
    /// let batcher = Batcher::builder().build(|| Ok(FnSink(|_rows: &[u32]| Ok(()))))?;
    /// batcher.submit_detached(1)?;
    /// assert_eq!(batcher.close(Duration::from_secs(10)).acked, 1);
    /// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    /// ```
    #[deprecated(since = "0.1.0", note = "renamed `shutdown`, as in prodkit-pool")]
    pub fn close(&self, timeout: Duration) -> Stats {
        self.shutdown(timeout).stats
    }

    /// Stops accepting rows and sets the shutdown's deadline (the first call
    /// only), waking everyone who waits.
    fn begin_shutdown(&self, timeout: Duration) {
        let shared = &*self.shared;
        let waiters = {
            let mut state = shared.state.lock();
            if !state.closing {
                state.closing = true;
                shared.deadline.0.set(timeout);
            }
            std::mem::take(&mut state.room_waiters)
                .into_values()
                .collect()
        };
        shared.work.notify_all();
        shared.room.notify_all();
        shared.closed.notify_all();
        wake_all(waiters);
    }

    fn join_flushers(&self) -> ShutdownReport {
        let flushers = std::mem::take(&mut *self.flushers.lock());
        for flusher in flushers {
            // The flusher catches every panic of the sink; a join error would be a
            // bug of ours, and there is nothing left to do about it here.
            let _ = flusher.join();
        }
        ShutdownReport::new(self.stats())
    }

    /// A submit that does not wait: queued (its ticket), or, when the queue
    /// is full, the row back with `waker` kept under `waiter` until room comes.
    pub(crate) fn submit_or_register(
        &self,
        row: T,
        waker: &Waker,
        waiter: &mut Option<u64>,
    ) -> Result<Ticket<T>, Refused<T>> {
        let (ack, ticket) = Ack::ticket(self.shared.dead_letter.clone());
        self.enqueue(row, ack, Wait::Register(waker, waiter))
            .map(|()| ticket)
    }

    /// Forgets the waker kept under `waiter`: its future resolved (`queued`:
    /// it took room) or was dropped. A future dropped after its wake, which
    /// was meant to give it room it will not use, passes the wake on to the
    /// oldest waiting task.
    pub(crate) fn forget_waiter(&self, waiter: u64, queued: bool) {
        let passed = {
            let mut state = self.shared.state.lock();
            let woken = state.room_waiters.remove(&waiter).is_none();
            if woken && !queued && !state.closing {
                oldest(&mut state.room_waiters, 1)
            } else {
                Vec::new()
            }
        };
        wake_all(passed);
    }

    /// The counters and the queue now.
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_batch::{quanta, Batcher, FnSink};
    ///
    /// // A linger on a mock clock that does not move: rows stay queued.
    /// let (clock, _mock) = quanta::Clock::mock();
    /// let batcher = Batcher::builder()
    ///     .clock(clock)
    ///     .linger(Duration::from_millis(5))
    ///     .build(|| Ok(FnSink(|_rows: &[u32]| Ok(()))))?;
    /// batcher.submit_detached(1)?;
    /// batcher.submit_detached(2)?;
    /// let stats = batcher.stats();
    /// assert_eq!((stats.submitted, stats.queued_rows, stats.queued_bytes), (2, 2, 8));
    /// batcher.shutdown(Duration::from_secs(10));
    /// let stats = batcher.stats();
    /// assert_eq!((stats.acked, stats.batches, stats.flushed_shutdown), (2, 1, 1));
    /// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    /// ```
    pub fn stats(&self) -> Stats {
        let (rows, bytes) = {
            let state = self.shared.state.lock();
            (state.queue.len(), state.bytes)
        };
        self.shared.counters.snapshot(rows, bytes)
    }
}

impl<T: Send + 'static> Drop for Batcher<T> {
    /// A graceful shutdown with the configured
    /// [`shutdown_timeout`](crate::Builder::shutdown_timeout).
    fn drop(&mut self) {
        self.shutdown(self.shutdown_timeout);
    }
}

impl<T: Send + 'static> fmt::Debug for Batcher<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batcher")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// Takes the `n` oldest waiting tasks' wakers.
fn oldest(waiters: &mut BTreeMap<u64, Waker>, n: usize) -> Vec<Waker> {
    std::iter::from_fn(|| waiters.pop_first().map(|(_, w)| w))
        .take(n)
        .collect()
}

/// Wakes each task, outside every lock; a waker that panics must not unwind
/// into a flusher or a shutdown.
fn wake_all(waiters: Vec<Waker>) {
    for waker in waiters {
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| waker.wake()));
    }
}

pub(crate) enum Refused<T> {
    Full(T),
    Timeout(T),
    Closed(T),
    TooLarge(T),
}

impl<T> Refused<T> {
    pub(crate) fn into_submit(self) -> SubmitError<T> {
        match self {
            Refused::Full(row) | Refused::Timeout(row) => SubmitError::Timeout(row),
            Refused::Closed(row) => SubmitError::Closed(row),
            Refused::TooLarge(row) => SubmitError::TooLarge(row),
        }
    }

    fn into_try(self) -> TrySubmitError<T> {
        match self {
            Refused::Full(row) | Refused::Timeout(row) => TrySubmitError::Full(row),
            Refused::Closed(row) => TrySubmitError::Closed(row),
            Refused::TooLarge(row) => TrySubmitError::TooLarge(row),
        }
    }
}

impl<T> Shared<T> {
    /// Whether the shutdown's deadline has passed.
    pub(crate) fn past_deadline(&self) -> bool {
        self.deadline.passed()
    }

    /// Sleeps `wait` before a retry, cut short by the shutdown's deadline. Closing
    /// does not end the back-off: the batcher keeps writing, spaced out, until
    /// the deadline, and then refuses what is left. The wait is real time (a
    /// socket's recovery does not follow a mock clock); the deadline is read on
    /// the batcher's clock, so a test's mock deadline ends it too.
    pub(crate) fn back_off(&self, wait: Duration) {
        // A wait too long for an `Instant` lasts until the shutdown's deadline.
        let until = Instant::now().checked_add(wait);
        let mut state = self.state.lock();
        loop {
            let now = Instant::now();
            if until.is_some_and(|until| now >= until) || self.past_deadline() {
                return;
            }
            let left = until.map_or(Duration::MAX, |until| until - now);
            // Woken when the shutdown sets a deadline; then look at it every 10 ms.
            let step = match self.deadline.remaining() {
                None => left,
                Some(remaining) => left.min(remaining).min(Duration::from_millis(10)),
            };
            let _ = self.closed.wait_for(&mut state, step);
        }
    }

    /// Hands back a row that was not written.
    pub(crate) fn nack(&self, row: T, ack: Ack<T>, reason: NackReason) {
        Counters::add(&self.counters.nacked, 1);
        if !reason.is_refused() {
            Counters::add(&self.counters.unknown, 1);
        }
        ack.nack(row, reason, self.dead_letter.as_deref());
    }
}

/// A flusher thread: takes batches from the queue and delivers them until the
/// batcher shuts down and the queue is empty.
fn flusher<T: Send + 'static, S: Sink<T>>(shared: &Shared<T>, mut sink: S) {
    while let Some((batch, reason)) = next_batch(shared) {
        shared.counters.flushed(reason);
        if shared.past_deadline() {
            batch.cut_by_deadline(shared, None);
        } else {
            deliver(shared, &mut sink, batch);
        }
    }
}

/// Waits for a batch to be due and takes it; `None` when closed and drained.
fn next_batch<T>(shared: &Shared<T>) -> Option<(Batch<T>, Reason)> {
    let mut state = shared.state.lock();
    let reason = loop {
        let Some(oldest) = state.queue.front() else {
            if state.closing {
                return None;
            }
            shared.work.wait(&mut state);
            continue;
        };
        let waited = shared.clock.now().saturating_duration_since(oldest.at);
        if state.queue.len() >= shared.max_rows {
            break Reason::Rows;
        } else if state.bytes >= shared.max_bytes {
            break Reason::Bytes;
        } else if state.closing {
            break Reason::Shutdown;
        } else if waited >= shared.linger {
            break Reason::Linger;
        }
        let _ = shared.work.wait_for(&mut state, shared.linger - waited);
    };
    let mut batch = Batch::with_capacity(state.queue.len().min(shared.max_rows));
    let mut bytes = 0;
    while let Some(next) = state.queue.front() {
        let fits = batch.len() < shared.max_rows
            && (batch.is_empty() || bytes + next.size <= shared.max_bytes);
        if !fits {
            break;
        }
        let Some(p) = state.queue.pop_front() else {
            break;
        };
        bytes += p.size;
        batch.push(p.row, p.ack);
    }
    state.bytes -= bytes;
    // Another batch may be due already: wake another flusher for it.
    if !state.queue.is_empty() {
        shared.work.notify_one();
    }
    // As many tasks as rows of room freed, oldest first: a task woken that
    // gives up without queueing passes its wake on (`forget_waiter`).
    let waiters = oldest(&mut state.room_waiters, batch.len());
    drop(state);
    shared.room.notify_all();
    wake_all(waiters);
    Some((batch, reason))
}
