use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::error::SinkError;

/// Close's deadline, as a sink sees it during a write: none until
/// [`Batcher::shutdown`](crate::Batcher::shutdown) sets one. A sink whose write can
/// block (on a network) checks it and gives up the write at the deadline.
///
/// ```
/// use std::sync::mpsc;
/// use std::time::Duration;
/// use prodkit_batch::{quanta, Batcher, Deadline, Sink, SinkError};
///
/// /// Reports how long each write may take.
/// struct Probe(mpsc::Sender<Option<Duration>>);
///
/// impl Sink<u32> for Probe {
///     fn write(&mut self, rows: &[u32]) -> Result<(), SinkError> {
///         self.write_until(rows, &Deadline::none())
///     }
///     fn write_until(&mut self, _rows: &[u32], deadline: &Deadline) -> Result<(), SinkError> {
///         self.0.send(deadline.remaining()).unwrap();
///         Ok(())
///     }
/// }
///
/// // A linger on a mock clock that does not move: the row waits for the shutdown.
/// let (clock, _mock) = quanta::Clock::mock();
/// let (tx, limits) = mpsc::channel();
/// let batcher = Batcher::builder()
///     .linger(Duration::from_millis(5))
///     .clock(clock)
///     .build(|| Ok(Probe(tx.clone())))?;
/// let ticket = batcher.submit(1)?;
/// batcher.shutdown(Duration::from_secs(10));
/// assert!(ticket.wait().is_ok());
/// assert_eq!(limits.recv()?, Some(Duration::from_secs(10))); // the mock has not moved
/// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
/// ```
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
    ///
    /// ```
    /// use prodkit_batch::{Deadline, FnSink, Sink};
    ///
    /// let mut stored = Vec::new();
    /// let mut sink = FnSink(|rows: &[u32]| { stored.extend_from_slice(rows); Ok(()) });
    /// sink.write_until(&[1, 2], &Deadline::none())?;
    /// drop(sink);
    /// assert_eq!(stored, [1, 2]);
    /// assert_eq!(Deadline::none().remaining(), None);
    /// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    /// ```
    pub fn none() -> Deadline {
        Deadline(Arc::new(DeadlineCell::new(quanta::Clock::new())))
    }

    /// How long until the deadline: `None` while there is none, zero once it
    /// passed. Read on the batcher's clock.
    ///
    /// ```
    /// use std::sync::mpsc;
    /// use std::time::Duration;
    /// use prodkit_batch::{quanta, Batcher, Deadline, Sink, SinkError};
    ///
    /// /// Bounds each write by the deadline, or by 30 s while there is none.
    /// struct Timed(mpsc::Sender<Duration>);
    ///
    /// impl Sink<u32> for Timed {
    ///     fn write(&mut self, rows: &[u32]) -> Result<(), SinkError> {
    ///         self.write_until(rows, &Deadline::none())
    ///     }
    ///     fn write_until(&mut self, _rows: &[u32], deadline: &Deadline) -> Result<(), SinkError> {
    ///         let limit = deadline.remaining().unwrap_or(Duration::from_secs(30));
    ///         self.0.send(limit).unwrap(); // e.g. the socket's timeout for this write
    ///         Ok(())
    ///     }
    /// }
    ///
    /// // A linger on a mock clock that does not move: rows wait for max_rows or the shutdown.
    /// let (clock, _mock) = quanta::Clock::mock();
    /// let (tx, limits) = mpsc::channel();
    /// let batcher = Batcher::builder()
    ///     .max_rows(2)
    ///     .linger(Duration::from_millis(5))
    ///     .clock(clock)
    ///     .build(|| Ok(Timed(tx.clone())))?;
    /// let (a, b) = (batcher.submit(1)?, batcher.submit(2)?);
    /// assert!(a.wait().is_ok() && b.wait().is_ok());
    /// assert_eq!(limits.recv()?, Duration::from_secs(30)); // no shutdown yet
    /// let c = batcher.submit(3)?;
    /// batcher.shutdown(Duration::from_secs(10));
    /// assert!(c.wait().is_ok());
    /// assert_eq!(limits.recv()?, Duration::from_secs(10)); // the shutdown's deadline
    /// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    /// ```
    pub fn remaining(&self) -> Option<Duration> {
        self.0.remaining()
    }

    /// Whether the deadline has passed.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use prodkit_batch::{quanta, Batcher, Deadline, Failure, NackReason, Sink, SinkError};
    ///
    /// /// A write that "takes" 2 s on a mock clock, and gives up past the deadline.
    /// struct Slow(Arc<quanta::Mock>);
    ///
    /// impl Sink<u32> for Slow {
    ///     fn write(&mut self, rows: &[u32]) -> Result<(), SinkError> {
    ///         self.write_until(rows, &Deadline::none())
    ///     }
    ///     fn write_until(&mut self, _rows: &[u32], deadline: &Deadline) -> Result<(), SinkError> {
    ///         self.0.increment(Duration::from_secs(2));
    ///         if deadline.passed() {
    ///             return Err(SinkError::new(Failure::Transient, "gave up at the deadline"));
    ///         }
    ///         Ok(())
    ///     }
    /// }
    ///
    /// // A linger on the mock clock: the row waits for the shutdown.
    /// let (clock, mock) = quanta::Clock::mock();
    /// let batcher = Batcher::builder()
    ///     .linger(Duration::from_millis(5))
    ///     .clock(clock)
    ///     .build(|| Ok(Slow(Arc::clone(&mock))))?;
    /// let ticket = batcher.submit(1)?;
    /// let report = batcher.shutdown(Duration::from_secs(1));
    /// assert_eq!(ticket.wait().unwrap_err().reason, NackReason::Closed); // not stored
    /// assert_eq!(report.cut_by_deadline, 1);
    /// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    /// ```
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
///
/// A panic in [`write`](Sink::write) is caught: the batch's rows get
/// [`NackReason::Unknown`](crate::NackReason::Unknown) (the sink may have
/// committed before it panicked) and are not written again; the flusher goes
/// on with the next batch. A panic in [`reconnect`](Sink::reconnect) fails
/// the batch as [`Failure::Permanent`](crate::Failure::Permanent).
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use prodkit_batch::{Batcher, Failure, Sink, SinkError};
///
/// /// A table behind a connection that has dropped: the first write fails.
/// struct Table {
///     rows: Arc<Mutex<Vec<u32>>>,
///     connected: bool,
/// }
///
/// impl Sink<u32> for Table {
///     fn write(&mut self, rows: &[u32]) -> Result<(), SinkError> {
///         if !self.connected {
///             return Err(SinkError::new(Failure::Transient, "connection reset"));
///         }
///         self.rows.lock().unwrap().extend_from_slice(rows); // all rows or none
///         Ok(())
///     }
///     fn reconnect(&mut self) -> Result<(), SinkError> {
///         self.connected = true;
///         Ok(())
///     }
/// }
///
/// let table = Arc::new(Mutex::new(Vec::new()));
/// let batcher = Batcher::builder()
///     .build(|| Ok(Table { rows: Arc::clone(&table), connected: false }))?;
/// assert!(batcher.submit(1)?.wait().is_ok()); // after a reconnect and a retry
/// assert_eq!(*table.lock().unwrap(), [1]);
/// let stats = batcher.stats();
/// assert_eq!((stats.failed_writes, stats.retried), (1, 1));
/// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
/// ```
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
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use std::time::Duration;
/// use prodkit_batch::{Batcher, FnSink};
///
/// let stored = Arc::new(Mutex::new(Vec::new()));
/// let batcher = Batcher::builder().build(|| {
///     let stored = Arc::clone(&stored);
///     Ok(FnSink(move |rows: &[u32]| {
///         stored.lock().unwrap().extend_from_slice(rows);
///         Ok(())
///     }))
/// })?;
/// for row in 1..=3 {
///     batcher.submit_detached(row)?;
/// }
/// assert_eq!(batcher.shutdown(Duration::from_secs(10)).acked, 3);
/// assert_eq!(*stored.lock().unwrap(), [1, 2, 3]);
/// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
/// ```
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
