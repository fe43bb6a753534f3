use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use crate::error::{Nack, NackReason};

type Outcome<T> = Result<(), Nack<T>>;

/// The promise of one submitted row: `Ok(())` once the write that holds it has
/// committed, or the row back with the reason it has no `Ok` (refused, or of
/// unknown outcome: see [`NackReason`]). Every ticket resolves exactly once,
/// also when the batcher shuts down.
///
/// A ticket dropped before it is read hands a failure it would have carried to
/// the dead-letter callback ([`Builder::dead_letter`](crate::Builder::dead_letter))
/// and `tracing`, as for a detached row: no failure goes unobserved.
///
/// **Async:** `ticket.await` ([`IntoFuture`], giving a [`TicketFuture`]) waits
/// for the same outcome without blocking the executor's thread: the flusher
/// wakes the task when the outcome is known (no runtime is required; any
/// executor works). Dropping the future is dropping the ticket: it cancels
/// nothing, the row is still written, and a failure goes to the dead-letter
/// callback.
///
/// ```
/// use prodkit_batch::{Batcher, Failure, FnSink, NackReason, SinkError};
///
/// let batcher = Batcher::builder().build(|| {
///     Ok(FnSink(|rows: &[i64]| match rows.iter().position(|&r| r < 0) {
///         Some(i) => Err(SinkError::new(Failure::Row, "negative").at_row(i)),
///         None => Ok(()),
///     }))
/// })?;
/// let (good, bad) = (batcher.submit(1)?, batcher.submit(-1)?);
/// assert!(good.wait().is_ok()); // committed: safe to acknowledge upstream
/// let nack = bad.wait().unwrap_err();
/// assert_eq!(nack.row, -1);
/// assert!(matches!(nack.reason, NackReason::Rejected(_)));
///
/// // Or, from async code, without blocking the runtime's thread:
/// let rt = tokio::runtime::Builder::new_current_thread().build()?;
/// let ticket = batcher.submit(2)?;
/// assert!(rt.block_on(async { ticket.await }).is_ok());
/// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
/// ```
#[must_use = "a dropped ticket's failure goes to the dead-letter callback; wait() on it to learn the row's outcome"]
pub struct Ticket<T> {
    slot: Arc<Slot<T>>,
}

pub(crate) struct Slot<T> {
    state: Mutex<SlotState<T>>,
    ready: Condvar,
    dead_letter: Option<Arc<DeadLetter<T>>>,
}

struct SlotState<T> {
    outcome: Option<Outcome<T>>,
    /// The ticket was dropped unread: a failure goes to the dead letter.
    abandoned: bool,
    /// The task awaiting the ticket, woken when the outcome is set.
    waker: Option<Waker>,
}

impl<T> Ticket<T> {
    /// Blocks until the row is written or not.
    ///
    /// ```
    /// use prodkit_batch::{Batcher, Failure, FnSink, SinkError};
    ///
    /// let batcher = Batcher::builder().build(|| {
    ///     Ok(FnSink(|_rows: &[u32]| Err(SinkError::new(Failure::Permanent, "no such table"))))
    /// })?;
    /// let ticket = batcher.submit(1)?;
    /// match ticket.wait() {
    ///     Ok(()) => unreachable!("the sink refuses every batch"),
    ///     Err(nack) => {
    ///         assert_eq!(nack.row, 1);
    ///         assert_eq!(nack.to_string(), "batch failed, not stored: no such table (permanent)");
    ///     }
    /// }
    /// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    /// ```
    ///
    /// # Errors
    /// The row back, with the reason it has no `Ok`.
    #[allow(
        clippy::result_large_err,
        reason = "the row and its reason come back by value; failures are rare, and a box would cost an allocation each"
    )]
    pub fn wait(self) -> Outcome<T> {
        let mut state = self.slot.state.lock();
        loop {
            if let Some(outcome) = state.outcome.take() {
                return outcome;
            }
            self.slot.ready.wait(&mut state);
        }
    }

    /// As [`wait`](Ticket::wait), for at most `timeout`; the ticket comes back
    /// if the row is still pending.
    ///
    /// # Errors
    /// `Err(ticket)` when the timeout passed first.
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_batch::{quanta, Batcher, FnSink};
    ///
    /// // A linger on a mock clock: the row waits until the example moves the clock.
    /// let (clock, mock) = quanta::Clock::mock();
    /// let batcher = Batcher::builder()
    ///     .linger(Duration::from_millis(5))
    ///     .clock(clock)
    ///     .build(|| Ok(FnSink(|_rows: &[u32]| Ok(()))))?;
    /// let ticket = batcher.submit(1)?;
    /// let ticket = ticket.wait_timeout(Duration::from_millis(1)).unwrap_err(); // still pending
    /// mock.increment(Duration::from_millis(5));
    /// assert!(ticket.wait_timeout(Duration::from_secs(10)).unwrap().is_ok());
    /// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    /// ```
    #[allow(
        clippy::result_large_err,
        reason = "the row and its reason come back by value; failures are rare, and a box would cost an allocation each"
    )]
    pub fn wait_timeout(self, timeout: Duration) -> Result<Outcome<T>, Ticket<T>> {
        {
            let mut state = self.slot.state.lock();
            if state.outcome.is_none() {
                let _ =
                    self.slot
                        .ready
                        .wait_while_for(&mut state, |s| s.outcome.is_none(), timeout);
            }
            if let Some(outcome) = state.outcome.take() {
                return Ok(outcome);
            }
        }
        Err(self)
    }

    /// Whether the outcome is known.
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_batch::{quanta, Batcher, FnSink};
    ///
    /// // A linger on a mock clock that does not move: the row waits for the shutdown.
    /// let (clock, _mock) = quanta::Clock::mock();
    /// let batcher = Batcher::builder()
    ///     .linger(Duration::from_millis(5))
    ///     .clock(clock)
    ///     .build(|| Ok(FnSink(|_rows: &[u32]| Ok(()))))?;
    /// let ticket = batcher.submit(1)?;
    /// assert!(!ticket.is_done());
    /// batcher.shutdown(Duration::from_secs(10)); // writes what is queued
    /// assert!(ticket.is_done());
    /// assert!(ticket.wait().is_ok()); // returns at once
    /// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    /// ```
    pub fn is_done(&self) -> bool {
        self.slot.state.lock().outcome.is_some()
    }
}

/// A [`Ticket`] being awaited (`ticket.await`, or `ticket.into_future()` to
/// name it, for `select!`). It is `Unpin`.
///
/// A future, not the ticket itself, because the ticket's `wait` consumes it:
/// a ticket that a poll had already resolved would have no outcome left for
/// `wait` to return. Polled again after it returned `Ready`, it stays
/// `Pending`.
///
/// ```
/// use std::future::IntoFuture;
/// use std::time::Duration;
/// use prodkit_batch::{Batcher, FnSink, TicketFuture};
///
/// let batcher = Batcher::builder().build(|| Ok(FnSink(|_rows: &[u32]| Ok(()))))?;
/// let written: TicketFuture<u32> = batcher.submit(1)?.into_future();
/// let rt = tokio::runtime::Builder::new_current_thread().enable_time().build()?;
/// let outcome = rt.block_on(async {
///     tokio::select! {
///         outcome = written => outcome,
///         () = tokio::time::sleep(Duration::from_secs(60)) => panic!("not written in 60 s"),
///     }
/// });
/// assert!(outcome.is_ok());
/// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
/// ```
#[must_use = "futures do nothing unless awaited; a dropped one's failure goes to the dead-letter callback"]
pub struct TicketFuture<T> {
    ticket: Ticket<T>,
}

impl<T> IntoFuture for Ticket<T> {
    type Output = Outcome<T>;
    type IntoFuture = TicketFuture<T>;

    fn into_future(self) -> TicketFuture<T> {
        TicketFuture { ticket: self }
    }
}

impl<T> fmt::Debug for TicketFuture<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TicketFuture")
            .field("done", &self.ticket.is_done())
            .finish()
    }
}

impl<T> Future for TicketFuture<T> {
    type Output = Outcome<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome<T>> {
        let mut state = self.ticket.slot.state.lock();
        if let Some(outcome) = state.outcome.take() {
            state.waker = None;
            return Poll::Ready(outcome);
        }
        match &mut state.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            slot => *slot = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl<T> Drop for Ticket<T> {
    fn drop(&mut self) {
        let unread = {
            let mut state = self.slot.state.lock();
            state.abandoned = true;
            state.waker = None;
            state.outcome.take()
        };
        if let Some(Err(nack)) = unread {
            dead_letter(nack, self.slot.dead_letter.as_deref());
        }
    }
}

impl<T> fmt::Debug for Ticket<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ticket")
            .field("done", &self.is_done())
            .finish()
    }
}

/// A dead-letter callback: receives every row without `Ok` that no ticket
/// observes (detached rows, and rows whose ticket was dropped unread).
pub(crate) type DeadLetter<T> = dyn Fn(Nack<T>) + Send + Sync;

/// A failure nobody observes through a ticket: to the callback, or to `tracing`.
fn dead_letter<T>(nack: Nack<T>, callback: Option<&DeadLetter<T>>) {
    match callback {
        Some(callback) => {
            // A panicking callback must not take the flusher (or the dropping
            // thread) with it.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| callback(nack)));
        }
        None => {
            tracing::error!(reason = %nack.reason, "prodkit-batch: a row without Ok that no ticket observes, and no dead-letter callback");
        }
    }
}

/// The batcher's side of one row: whom to tell how it ended.
pub(crate) enum Ack<T> {
    Ticket(Arc<Slot<T>>),
    Detached,
}

impl<T> Ack<T> {
    pub(crate) fn ticket(dead_letter: Option<Arc<DeadLetter<T>>>) -> (Ack<T>, Ticket<T>) {
        let slot = Arc::new(Slot {
            state: Mutex::new(SlotState {
                outcome: None,
                abandoned: false,
                waker: None,
            }),
            ready: Condvar::new(),
            dead_letter,
        });
        (Ack::Ticket(Arc::clone(&slot)), Ticket { slot })
    }

    /// The row was written.
    pub(crate) fn ok(self) {
        if let Ack::Ticket(slot) = self {
            let mut state = slot.state.lock();
            if !state.abandoned {
                state.outcome = Some(Ok(()));
                let waker = state.waker.take();
                drop(state);
                slot.ready.notify_all();
                wake(waker);
            }
        }
    }

    /// The row has no `Ok`: to its ticket, or to the dead-letter callback when
    /// no ticket will read it.
    pub(crate) fn nack(self, row: T, reason: NackReason, callback: Option<&DeadLetter<T>>) {
        let nack = Nack { row, reason };
        match self {
            Ack::Ticket(slot) => {
                let mut state = slot.state.lock();
                if state.abandoned {
                    drop(state);
                    dead_letter(nack, callback);
                } else {
                    state.outcome = Some(Err(nack));
                    let waker = state.waker.take();
                    drop(state);
                    slot.ready.notify_all();
                    wake(waker);
                }
            }
            Ack::Detached => dead_letter(nack, callback),
        }
    }
}

/// Wakes the task awaiting a ticket, outside the slot's lock. A waker that
/// panics must not take the flusher with it (its rows would lose their
/// outcomes); the task is then never woken, which is the waker's fault alone.
fn wake(waker: Option<Waker>) {
    if let Some(waker) = waker {
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| waker.wake()));
    }
}
