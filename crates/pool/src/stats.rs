//! Counters and time summaries. Each worker writes its own cache-padded slot and
//! is the only thread that writes it, so counting is a plain load and store (no
//! read-modify-write); the submitters share one more slot, counted with atomic
//! adds. `stats()` sums the slots.

use std::sync::atomic::{AtomicU64, Ordering, Ordering::Relaxed};
use std::time::Duration;

/// Power-of-two buckets of nanoseconds: bucket `b` holds values below `2^b`.
const BUCKETS: usize = 48;

/// A histogram of durations in nanoseconds, written by one thread at a time
/// mostly, read by `stats()`.
pub(crate) struct Histogram {
    buckets: [AtomicU64; BUCKETS],
    count: AtomicU64,
    sum: AtomicU64,
    max: AtomicU64,
}

impl Histogram {
    fn new() -> Self {
        Histogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
            max: AtomicU64::new(0),
        }
    }

    fn record(&self, nanos: u64, single_writer: bool) {
        let bucket = ((u64::BITS - nanos.leading_zeros()) as usize).min(BUCKETS - 1);
        if single_writer {
            bump(&self.buckets[bucket], 1);
            bump(&self.count, 1);
            bump(&self.sum, nanos);
            if nanos > self.max.load(Relaxed) {
                self.max.store(nanos, Relaxed);
            }
        } else {
            self.buckets[bucket].fetch_add(1, Relaxed);
            self.count.fetch_add(1, Relaxed);
            self.sum.fetch_add(nanos, Relaxed);
            self.max.fetch_max(nanos, Relaxed);
        }
    }
}

/// Sums of several histograms.
pub(crate) struct HistogramSum {
    buckets: [u64; BUCKETS],
    count: u64,
    sum: u64,
    max: u64,
}

impl Default for HistogramSum {
    fn default() -> Self {
        HistogramSum {
            buckets: [0; BUCKETS],
            count: 0,
            sum: 0,
            max: 0,
        }
    }
}

impl HistogramSum {
    pub(crate) fn add(&mut self, h: &Histogram) {
        for (acc, b) in self.buckets.iter_mut().zip(&h.buckets) {
            *acc += b.load(Relaxed);
        }
        self.count += h.count.load(Relaxed);
        self.sum = self.sum.saturating_add(h.sum.load(Relaxed));
        self.max = self.max.max(h.max.load(Relaxed));
    }

    /// The upper bound of the bucket holding the `q`-quantile, capped at the max.
    fn quantile(&self, q: f64) -> u64 {
        let total: u64 = self.buckets.iter().sum();
        if total == 0 {
            return 0;
        }
        let rank = ((total as f64 * q).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (b, &n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let upper = if b == 0 { 0 } else { (1u64 << b) - 1 };
                return upper.min(self.max);
            }
        }
        self.max
    }

    pub(crate) fn summary(&self) -> Summary {
        Summary {
            count: self.count,
            mean: Duration::from_nanos(self.sum.checked_div(self.count).unwrap_or(0)),
            p50: Duration::from_nanos(self.quantile(0.50)),
            p99: Duration::from_nanos(self.quantile(0.99)),
            max: Duration::from_nanos(self.max),
        }
    }
}

/// A summary of durations. Quantiles come from power-of-two buckets: each is an
/// upper bound within a factor of two of the true value (and never above `max`).
///
/// With [`Builder::histograms`](crate::Builder::histograms) on, and a mock
/// clock so that the run times are exact:
///
/// ```
/// use std::time::Duration;
/// use prodkit_pool::{Pool, quanta::Clock};
///
/// let (clock, mock) = Clock::mock();
/// let pool = Pool::builder().workers(1).clock(clock).histograms(true).build()?;
/// for ms in [1, 1, 4] {
///     let mock = mock.clone();
///     // Each job "takes" `ms` on the pool's clock.
///     pool.submit(move || mock.increment(Duration::from_millis(ms)))?.join()?;
/// }
/// let run_time = pool.stats().run_time;
/// assert_eq!(run_time.count, 3);
/// assert_eq!(run_time.mean, Duration::from_millis(2));
/// assert_eq!(run_time.max, Duration::from_millis(4));
/// // The median is 1 ms, rounded up to 2^20 ns.
/// assert_eq!(run_time.p50, Duration::from_nanos((1 << 20) - 1));
/// assert!(run_time.p99 <= run_time.max);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Summary {
    /// How many durations.
    pub count: u64,
    /// Their mean.
    pub mean: Duration,
    /// The median, rounded up to a power of two of nanoseconds.
    pub p50: Duration,
    /// The 99th percentile, rounded up to a power of two of nanoseconds.
    pub p99: Duration,
    /// The largest.
    pub max: Duration,
}

/// `counter += n` by its only writer: a load and a store, no locked instruction.
fn bump(counter: &AtomicU64, n: u64) {
    counter.store(counter.load(Relaxed).wrapping_add(n), Relaxed);
}

/// What one thread counted: a worker (its only writer), or the submitters' shared
/// slot (jobs run by [`Overload::CallerRuns`](crate::Overload::CallerRuns) or by a
/// scope's own thread, evictions, `shutdown_now`, cancels).
///
/// The order of writes makes a quiescent snapshot exact: a thread marks itself
/// `active` before it takes a job out of the queue, counts the job's outcome, and
/// only then leaves `active` (release) and publishes the result to a handle.
/// `stats()` reads the queue length, then `active` (acquire), then the counters.
pub(crate) struct Slot {
    shared: bool,
    completed: AtomicU64,
    panicked: AtomicU64,
    cancelled: AtomicU64,
    active: AtomicU64,
    queue_wait: Histogram,
    run_time: Histogram,
}

impl Slot {
    /// A worker's slot (`shared == false`) or the submitters' slot.
    pub(crate) fn new(shared: bool) -> Self {
        Slot {
            shared,
            completed: AtomicU64::new(0),
            panicked: AtomicU64::new(0),
            cancelled: AtomicU64::new(0),
            active: AtomicU64::new(0),
            queue_wait: Histogram::new(),
            run_time: Histogram::new(),
        }
    }

    fn add(&self, counter: &AtomicU64, n: u64) {
        if self.shared {
            counter.fetch_add(n, Relaxed);
        } else {
            bump(counter, n);
        }
    }

    /// Marks a job in hand (before taking it out of the queue, or claiming it).
    pub(crate) fn hold(&self) {
        self.add(&self.active, 1);
    }

    /// The job in hand is counted: release, so a snapshot that sees it gone sees
    /// its count.
    pub(crate) fn release(&self) {
        if self.shared {
            self.active.fetch_sub(1, Ordering::Release);
        } else {
            let now = self.active.load(Relaxed);
            self.active.store(now.wrapping_sub(1), Ordering::Release);
        }
    }

    pub(crate) fn completed(&self) {
        self.add(&self.completed, 1);
    }

    pub(crate) fn panicked(&self) {
        self.add(&self.panicked, 1);
    }

    pub(crate) fn cancelled(&self) {
        self.add(&self.cancelled, 1);
    }

    pub(crate) fn times(&self, queue_wait: u64, run_time: u64) {
        self.queue_wait.record(queue_wait, !self.shared);
        self.run_time.record(run_time, !self.shared);
    }
}

/// Sums of the slots, read in the order that makes a quiescent snapshot exact.
#[derive(Default)]
pub(crate) struct SlotSum {
    pub(crate) completed: u64,
    pub(crate) panicked: u64,
    pub(crate) cancelled: u64,
    pub(crate) active: u64,
    pub(crate) queue_wait: HistogramSum,
    pub(crate) run_time: HistogramSum,
}

impl SlotSum {
    pub(crate) fn of(slots: &[crossbeam_utils::CachePadded<Slot>]) -> SlotSum {
        let mut sum = SlotSum::default();
        for slot in slots {
            sum.active += slot.active.load(Ordering::Acquire);
        }
        for slot in slots {
            sum.completed += slot.completed.load(Relaxed);
            sum.panicked += slot.panicked.load(Relaxed);
            sum.cancelled += slot.cancelled.load(Relaxed);
            sum.queue_wait.add(&slot.queue_wait);
            sum.run_time.add(&slot.run_time);
        }
        sum
    }
}

/// A snapshot of a pool's counters and gauges. Counters are read one by one
/// while the pool runs. At quiescence (nothing queued or running, every submit
/// returned) the snapshot is exact: `accepted == completed + panicked +
/// cancelled` and `submitted == accepted + rejected`; and a job whose `join`
/// returned is already counted.
///
/// ```
/// use std::time::Duration;
/// use prodkit_pool::{CancelToken, Job, JobError, Pool};
///
/// let pool = Pool::builder().workers(1).build()?;
/// let ok = pool.submit(|| 1)?;
/// pool.execute(|| panic!("bad input"))?;
/// let fired = CancelToken::new();
/// fired.cancel();
/// let skipped = pool.submit_job(Job::new(|| 3).token(fired))?;
/// assert_eq!(ok.join(), Ok(1));
/// assert_eq!(skipped.join(), Err(JobError::Cancelled));
/// pool.shutdown(Duration::from_secs(5));
/// assert!(pool.submit(|| 4).is_err()); // closed: handed back
///
/// let s = pool.stats();
/// assert_eq!((s.submitted, s.accepted, s.rejected), (4, 3, 1));
/// assert_eq!((s.completed, s.panicked, s.cancelled), (1, 1, 1));
/// assert_eq!((s.queued, s.active, s.live_workers), (0, 0, 0));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Jobs handed to `submit`, `try_submit`, `execute`, their variants and
    /// `Scope::spawn`.
    pub submitted: u64,
    /// Jobs the pool took responsibility for (queued, or run by the caller).
    /// While submits are in progress it may count a few that will be refused.
    pub accepted: u64,
    /// Jobs handed back: full queue, closed pool, submit timeout.
    pub rejected: u64,
    /// Accepted jobs that ran to the end.
    pub completed: u64,
    /// Accepted jobs that panicked (a value the job owns panicking as it is
    /// dropped counts too: that drop is part of running the job).
    pub panicked: u64,
    /// Accepted jobs that never ran: cancelled, past their deadline, evicted by
    /// `DropOldest`, or taken by `shutdown_now`.
    pub cancelled: u64,
    /// Of `cancelled`, those evicted by `DropOldest`.
    pub evicted: u64,
    /// Of `accepted`, those run on the submitting thread (`CallerRuns`, or a
    /// `Block` submit from inside a job into a full queue).
    pub caller_runs: u64,
    /// Entries in the queue now. An entry whose job already ran elsewhere (a
    /// joining worker ran it, or its scope's thread did) stays until a worker
    /// skips it.
    pub queued: u64,
    /// Jobs in hand now: running, or being taken out of the queue. A worker
    /// that just finished a job counts here for the moment it takes a look for
    /// the next one, so an idle pool can show 1 for a few nanoseconds; a worker
    /// marks itself before it takes a job out, so a snapshot never misses one.
    pub active: u64,
    /// Worker threads alive now.
    pub live_workers: u64,
    /// Time from submit to start; empty unless [`Builder::histograms`](crate::Builder::histograms).
    pub queue_wait: Summary,
    /// Time from start to end; empty unless [`Builder::histograms`](crate::Builder::histograms).
    pub run_time: Summary,
}
