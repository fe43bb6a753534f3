use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::error::SinkError;

/// Close's deadline, as a sink sees it during a write: none until
/// [`Batcher::shutdown`](crate::Batcher::shutdown) sets one. A sink whose write can
/// block (on a network) checks it and gives up the write at the deadline.
#[derive(Clone)]
pub struct Deadline(pub(crate) Arc<DeadlineCell>);

pub(crate) struct DeadlineCell {
    clock: quanta::Clock,
    base: quanta::Instant,
    /// Nanoseconds after `base`; `u64::MAX` while there is none.
    at: AtomicU64,
}

impl DeadlineCell {
    pub(crate) fn new(clock: quanta::Clock) -> DeadlineCell {
        let base = clock.now();
        DeadlineCell {
            clock,
            base,
            at: AtomicU64::new(u64::MAX),
        }
    }

    fn elapsed_ns(&self) -> u64 {
        let since = self.clock.now().saturating_duration_since(self.base);
        u64::try_from(since.as_nanos()).unwrap_or(u64::MAX - 1)
    }

    /// Sets the deadline `timeout` from now, unless one is set.
    pub(crate) fn set(&self, timeout: Duration) {
        let at = self
            .elapsed_ns()
            .saturating_add(u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX))
            .min(u64::MAX - 1);
        let _ = self
            .at
            .compare_exchange(u64::MAX, at, Ordering::Relaxed, Ordering::Relaxed);
    }

    pub(crate) fn remaining(&self) -> Option<Duration> {
        let at = self.at.load(Ordering::Relaxed);
        (at != u64::MAX).then(|| Duration::from_nanos(at.saturating_sub(self.elapsed_ns())))
    }
}

impl Deadline {
    /// A deadline that never comes, for a sink used on its own.
    pub fn none() -> Deadline {
        Deadline(Arc::new(DeadlineCell::new(quanta::Clock::new())))
    }

    /// How long until the deadline: `None` while there is none, zero once it
    /// passed. Read on the batcher's clock.
    pub fn remaining(&self) -> Option<Duration> {
        self.0.remaining()
    }

    /// Whether the deadline has passed.
    pub fn passed(&self) -> bool {
        self.remaining().is_some_and(|r| r.is_zero())
    }
}

impl std::fmt::Debug for Deadline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Deadline").field(&self.remaining()).finish()
    }
}

/// Where batches go. Each flusher thread owns one sink (for PostgreSQL: one
/// long-lived connection), so a sink needs `Send` but not `Sync`.
pub trait Sink<T>: Send {
    /// Writes `rows` as one unit: all of them or none (for PostgreSQL: one
    /// transaction). Return `Ok` only once the rows are durable (after COMMIT);
    /// classify every failure ([`SinkError::failure`]) so the batcher knows what
    /// to retry.
    ///
    /// # Errors
    /// The failure, classified.
    fn write(&mut self, rows: &[T]) -> Result<(), SinkError>;

    /// As [`write`](Sink::write), knowing close's deadline: what the batcher
    /// calls. A sink whose write can block (on a network) overrides it to give
    /// up at the deadline, failing with [`Failure::UnknownOutcome`](crate::Failure::UnknownOutcome)
    /// if COMMIT was in flight and [`Failure::Transient`](crate::Failure::Transient)
    /// otherwise. The default calls `write`.
    ///
    /// # Errors
    /// As [`write`](Sink::write).
    fn write_until(&mut self, rows: &[T], deadline: &Deadline) -> Result<(), SinkError> {
        let _ = deadline;
        self.write(rows)
    }

    /// Called after a `Transient` or `UnknownOutcome` failure, before the batch
    /// is written again: reopen what failed (reconnect). The default does
    /// nothing.
    ///
    /// # Errors
    /// The failure to reopen, classified like a write's: a `Permanent` one (a
    /// refused login) fails the batch at once; any other is retried within the
    /// retry budget.
    fn reconnect(&mut self) -> Result<(), SinkError> {
        Ok(())
    }

    /// As [`reconnect`](Sink::reconnect), knowing close's deadline: what the
    /// batcher calls. The default calls `reconnect`.
    ///
    /// # Errors
    /// As [`reconnect`](Sink::reconnect).
    fn reconnect_until(&mut self, deadline: &Deadline) -> Result<(), SinkError> {
        let _ = deadline;
        self.reconnect()
    }
}

/// A sink made of a closure: `FnSink(|rows: &[T]| ...)`.
pub struct FnSink<F>(pub F);

impl<T, F> Sink<T> for FnSink<F>
where
    F: FnMut(&[T]) -> Result<(), SinkError> + Send,
{
    fn write(&mut self, rows: &[T]) -> Result<(), SinkError> {
        (self.0)(rows)
    }
}

impl<F> std::fmt::Debug for FnSink<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FnSink(..)")
    }
}
