use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

/// Why a batch left the queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reason {
    Rows,
    Bytes,
    Linger,
    Shutdown,
}

/// A snapshot of a batcher's counters.
///
/// ```
/// use std::time::Duration;
/// use prodkit_batch::{Batcher, Failure, FnSink, SinkError};
///
/// let batcher = Batcher::builder().build(|| {
///     Ok(FnSink(|rows: &[i64]| match rows.iter().position(|&r| r < 0) {
///         Some(i) => Err(SinkError::new(Failure::Row, "negative").at_row(i)),
///         None => Ok(()),
///     }))
/// })?;
/// for row in [1, -2, 3] {
///     batcher.submit_detached(row)?;
/// }
/// let stats = batcher.shutdown(Duration::from_secs(10)).stats;
/// assert_eq!((stats.submitted, stats.acked, stats.nacked, stats.unknown), (3, 2, 1, 0));
/// assert_eq!((stats.failed_writes, stats.queued_rows), (1, 0));
/// assert!(stats.last_error.is_some_and(|e| e.starts_with("negative (one row is bad")));
/// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Rows accepted by a submit.
    pub submitted: u64,
    /// Rows written (their write committed).
    pub acked: u64,
    /// Rows without `Ok`, handed back or sent to the dead-letter callback:
    /// refused (not stored) or of unknown outcome.
    pub nacked: u64,
    /// Of `nacked`, rows of unknown outcome: they may be stored.
    pub unknown: u64,
    /// Of `nacked`, rows the shutdown's deadline cut off: still queued, or in
    /// a batch whose write or retries would have run past it.
    pub cut_by_deadline: u64,
    /// Row writes repeated after a failure (a row sent twice counts once more).
    pub retried: u64,
    /// Writes that committed.
    pub batches: u64,
    /// Writes that failed.
    pub failed_writes: u64,
    /// Batches taken from the queue because they reached `max_rows`.
    pub flushed_rows: u64,
    /// ... because they reached `max_bytes`.
    pub flushed_bytes: u64,
    /// ... because their oldest row waited `linger`; with the default linger
    /// of zero, every batch taken as soon as a flusher was free.
    pub flushed_linger: u64,
    /// ... because the batcher was shutting down.
    pub flushed_shutdown: u64,
    /// Rows waiting in the queue now.
    pub queued_rows: usize,
    /// Their estimated bytes.
    pub queued_bytes: usize,
    /// The last failure, for people.
    pub last_error: Option<String>,
}

/// What [`Batcher::shutdown`](crate::Batcher::shutdown) achieved by its
/// deadline: the outcome of every row the batcher accepted, over its life.
///
/// ```
/// use std::time::Duration;
/// use prodkit_batch::{Batcher, FnSink};
///
/// let batcher = Batcher::builder().build(|| Ok(FnSink(|_rows: &[u32]| Ok(()))))?;
/// batcher.submit_detached(1)?;
/// let report = batcher.shutdown(Duration::from_secs(10));
/// assert_eq!((report.acked, report.nacked, report.cut_by_deadline), (1, 0, 0));
/// assert!(report.is_complete());
/// assert_eq!(report.stats.submitted, 1);
/// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Rows written (their write committed).
    pub acked: u64,
    /// Rows without `Ok`: refused (not stored) or of unknown outcome.
    pub nacked: u64,
    /// Of `nacked`, rows of unknown outcome: they may be stored.
    pub unknown: u64,
    /// Of `nacked`, rows the deadline cut off: still queued, or in a batch
    /// whose write or retries would have run past it.
    pub cut_by_deadline: u64,
    /// Every counter, with the flushers joined.
    pub stats: Stats,
}

impl ShutdownReport {
    pub(crate) fn new(stats: Stats) -> ShutdownReport {
        ShutdownReport {
            acked: stats.acked,
            nacked: stats.nacked,
            unknown: stats.unknown,
            cut_by_deadline: stats.cut_by_deadline,
            stats,
        }
    }

    /// Whether the deadline cut nothing off: every row accepted got the
    /// outcome of a write (written, or refused by the sink).
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_batch::{Batcher, FnSink};
    ///
    /// let batcher = Batcher::builder().build(|| Ok(FnSink(|_rows: &[u32]| Ok(()))))?;
    /// assert!(batcher.shutdown(Duration::from_secs(1)).is_complete());
    /// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    /// ```
    pub fn is_complete(&self) -> bool {
        self.cut_by_deadline == 0
    }
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) submitted: AtomicU64,
    pub(crate) acked: AtomicU64,
    pub(crate) nacked: AtomicU64,
    pub(crate) unknown: AtomicU64,
    pub(crate) cut_by_deadline: AtomicU64,
    pub(crate) retried: AtomicU64,
    pub(crate) batches: AtomicU64,
    pub(crate) failed_writes: AtomicU64,
    flushed: [AtomicU64; 4],
    last_error: Mutex<Option<String>>,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub(crate) fn flushed(&self, reason: Reason) {
        self.flushed[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn failed(&self, error: &crate::SinkError) {
        self.failed_writes.fetch_add(1, Ordering::Relaxed);
        *self.last_error.lock() = Some(error.to_string());
    }

    pub(crate) fn snapshot(&self, queued_rows: usize, queued_bytes: usize) -> Stats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            submitted: get(&self.submitted),
            acked: get(&self.acked),
            nacked: get(&self.nacked),
            unknown: get(&self.unknown),
            cut_by_deadline: get(&self.cut_by_deadline),
            retried: get(&self.retried),
            batches: get(&self.batches),
            failed_writes: get(&self.failed_writes),
            flushed_rows: get(&self.flushed[Reason::Rows as usize]),
            flushed_bytes: get(&self.flushed[Reason::Bytes as usize]),
            flushed_linger: get(&self.flushed[Reason::Linger as usize]),
            flushed_shutdown: get(&self.flushed[Reason::Shutdown as usize]),
            queued_rows,
            queued_bytes,
            last_error: self.last_error.lock().clone(),
        }
    }
}
