use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::batcher::Batcher;
use crate::error::{BuildError, ConfigError, Failure, Nack, SinkError};
use crate::sink::Sink;
use crate::ticket::DeadLetter;

/// How long transient failures are retried, and how far apart.
///
/// ```
/// use std::time::Duration;
/// use prodkit_batch::{quanta, Batcher, Failure, FnSink, NackReason, RetryPolicy, SinkError};
///
/// let retry = RetryPolicy {
///     max_elapsed: Duration::from_secs(2),
///     initial_backoff: Duration::from_millis(1),
///     max_backoff: Duration::from_millis(1),
///     ..RetryPolicy::default()
/// };
/// // Each write "takes" a second on a mock clock, and fails.
/// let (clock, mock) = quanta::Clock::mock();
/// let batcher = Batcher::builder().clock(clock).retry(retry).build(|| {
///     let mock = mock.clone();
///     Ok(FnSink(move |_rows: &[u32]| {
///         mock.increment(Duration::from_secs(1));
///         Err(SinkError::new(Failure::Transient, "connection reset"))
///     }))
/// })?;
/// let nack = batcher.submit(1)?.wait().unwrap_err();
/// assert!(matches!(nack.reason, NackReason::RetriesExhausted(_)));
/// // Failures at 1 s, 2 s and 3 s: the third is 2 s after the first.
/// assert_eq!(batcher.stats().failed_writes, 3);
/// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Writes of one batch, the first included, before its rows are refused with
    /// [`NackReason::RetriesExhausted`](crate::NackReason::RetriesExhausted).
    pub max_attempts: u32,
    /// And at most this long from the first failure.
    pub max_elapsed: Duration,
    /// The first wait; each next one doubles, up to `max_backoff`, and is drawn
    /// at random between half and all of that ("equal jitter"), so that many
    /// writers do not reconnect in step.
    pub initial_backoff: Duration,
    /// The longest wait.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    /// Up to 60 s of retries, from 10 ms to 2 s apart: enough to ride out a
    /// database restart or a failover.
    fn default() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 1000,
            max_elapsed: Duration::from_secs(60),
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_secs(2),
        }
    }
}

/// Options of a [`Batcher`]: from [`Batcher::builder`].
///
/// ```
/// use std::time::Duration;
/// use prodkit_batch::{Batcher, FnSink, RetryPolicy};
///
/// let batcher = Batcher::builder()
///     .max_rows(500)
///     .linger(Duration::from_millis(2))
///     .queue_rows(10_000)
///     .row_size(|row: &String| 24 + row.len())
///     .flushers(2)
///     .submit_timeout(Duration::from_secs(1))
///     .retry(RetryPolicy { max_elapsed: Duration::from_secs(10), ..RetryPolicy::default() })
///     .thread_name("events-writer")
///     .build(|| Ok(FnSink(|rows: &[String]| { assert!(rows.len() <= 500); Ok(()) })))?;
/// assert!(batcher.submit("signed up".to_string())?.wait().is_ok());
/// assert_eq!(batcher.shutdown(Duration::from_secs(10)).acked, 1);
/// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
/// ```
#[must_use = "a builder does nothing until build() is called"]
pub struct Builder<T> {
    pub(crate) max_rows: usize,
    pub(crate) max_bytes: usize,
    pub(crate) linger: Duration,
    pub(crate) queue_rows: usize,
    pub(crate) queue_bytes: usize,
    pub(crate) flushers: usize,
    pub(crate) submit_timeout: Duration,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) retry: RetryPolicy,
    pub(crate) row_size: Arc<dyn Fn(&T) -> usize + Send + Sync>,
    pub(crate) dead_letter: Option<Arc<DeadLetter<T>>>,
    pub(crate) clock: quanta::Clock,
    pub(crate) thread_name: String,
}

impl<T: Send + 'static> Builder<T> {
    pub(crate) fn new() -> Builder<T> {
        Builder {
            max_rows: 1000,
            max_bytes: 1 << 20,
            linger: Duration::ZERO,
            queue_rows: 100_000,
            queue_bytes: 64 << 20,
            flushers: 1,
            submit_timeout: Duration::from_secs(5),
            shutdown_timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            row_size: Arc::new(|_| std::mem::size_of::<T>()),
            dead_letter: None,
            clock: quanta::Clock::new(),
            thread_name: "prodkit-batch".into(),
        }
    }

    /// A batch is written once it has this many rows (default 1000).
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_batch::{quanta, Batcher, FnSink};
    ///
    /// // A linger on a mock clock that does not move never ends: only max_rows sends a batch.
    /// let (clock, _mock) = quanta::Clock::mock();
    /// let batcher = Batcher::builder()
    ///     .max_rows(2)
    ///     .linger(Duration::from_millis(5))
    ///     .clock(clock)
    ///     .build(|| Ok(FnSink(|rows: &[u32]| { assert_eq!(rows.len(), 2); Ok(()) })))?;
    /// let (a, b) = (batcher.submit(1)?, batcher.submit(2)?);
    /// assert!(a.wait().is_ok() && b.wait().is_ok());
    /// let stats = batcher.stats();
    /// assert_eq!((stats.batches, stats.flushed_rows), (1, 1));
    /// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    /// ```
    pub fn max_rows(mut self, rows: usize) -> Self {
        self.max_rows = rows;
        self
    }

    /// ... or this many estimated bytes (default 1 MiB); see
    /// [`row_size`](Builder::row_size).
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_batch::{quanta, Batcher, FnSink};
    ///
    /// // A linger on a mock clock that does not move never ends: only max_bytes sends a batch.
    /// let (clock, _mock) = quanta::Clock::mock();
    /// let batcher = Batcher::builder()
    ///     .row_size(|row: &String| row.len())
    ///     .max_bytes(10)
    ///     .linger(Duration::from_millis(5))
    ///     .clock(clock)
    ///     .build(|| Ok(FnSink(|rows: &[String]| { assert_eq!(rows.len(), 2); Ok(()) })))?;
    /// let hello = batcher.submit("hello".to_string())?;
    /// let world = batcher.submit("world".to_string())?; // 10 bytes: a batch
    /// assert!(hello.wait().is_ok() && world.wait().is_ok());
    /// assert_eq!(batcher.stats().flushed_bytes, 1);
    /// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    /// ```
    pub fn max_bytes(mut self, bytes: usize) -> Self {
        self.max_bytes = bytes;
        self
    }

    /// ... or once its oldest row has waited this long. The default, zero,
    /// writes as soon as a flusher is free: a lone row goes out at once (low
    /// latency at low load), and while every flusher is busy rows gather into
    /// the next batch (large batches under load). A positive linger holds a
    /// batch back to fill it, for fewer and larger transactions at low load.
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_batch::{quanta, Batcher, FnSink};
    ///
    /// let (clock, mock) = quanta::Clock::mock();
    /// let batcher = Batcher::builder()
    ///     .linger(Duration::from_millis(5))
    ///     .clock(clock)
    ///     .build(|| Ok(FnSink(|_rows: &[u32]| Ok(()))))?;
    /// let tickets = (0..3).map(|row| batcher.submit(row)).collect::<Result<Vec<_>, _>>()?;
    /// assert_eq!(batcher.stats().queued_rows, 3); // held back to fill
    /// mock.increment(Duration::from_millis(5)); // the oldest row has waited 5 ms
    /// assert!(tickets.into_iter().all(|ticket| ticket.wait().is_ok()));
    /// let stats = batcher.stats();
    /// assert_eq!((stats.batches, stats.flushed_linger), (1, 1)); // one write for three rows
    /// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    /// ```
    pub fn linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    /// At most this many rows wait in the queue (default 100 000); a submit
    /// into a full queue waits for room.
    ///
    /// ```
    /// use prodkit_batch::{Batcher, FnSink};
    /// # use std::sync::{Arc, Mutex};
    /// # // A sink that waits at a gate the example holds shut.
    /// # let gate = Arc::new(Mutex::new(()));
    /// # let shut = gate.lock().unwrap();
    /// # let open = || {
    /// #     let gate = Arc::clone(&gate);
    /// #     Ok(FnSink(move |_rows: &[u32]| { drop(gate.lock()); Ok(()) }))
    /// # };
    ///
    /// // `open` makes a sink that blocks until `shut` is dropped.
    /// let batcher = Batcher::builder().max_rows(1).queue_rows(2).build(open)?;
    /// let first = batcher.submit(1)?; // taken by the flusher, whose write blocks
    /// # while batcher.stats().queued_rows > 0 { std::thread::yield_now(); }
    /// let queued = [batcher.submit(2)?, batcher.submit(3)?];
    /// assert_eq!(batcher.stats().queued_rows, 2);
    /// assert!(batcher.try_submit(4).unwrap_err().is_full());
    /// drop(shut);
    /// assert!(first.wait().is_ok());
    /// assert!(queued.into_iter().all(|ticket| ticket.wait().is_ok()));
    /// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    /// ```
    pub fn queue_rows(mut self, rows: usize) -> Self {
        self.queue_rows = rows;
        self
    }

    /// ... and at most this many estimated bytes (default 64 MiB).
    ///
    /// ```
    /// use prodkit_batch::{Batcher, FnSink};
    ///
    /// let batcher = Batcher::builder()
    ///     .row_size(|row: &String| row.len())
    ///     .max_bytes(1024)
    ///     .queue_bytes(4096)
    ///     .build(|| Ok(FnSink(|_rows: &[String]| Ok(()))))?;
    /// // Above max_bytes, but it fits in the queue: a batch of its own.
    /// assert!(batcher.submit("x".repeat(2000))?.wait().is_ok());
    /// // Above queue_bytes: it could never fit, and comes back at once.
    /// assert!(batcher.submit("x".repeat(5000)).unwrap_err().is_too_large());
    /// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    /// ```
    pub fn queue_bytes(mut self, bytes: usize) -> Self {
        self.queue_bytes = bytes;
        self
    }

    /// Flusher threads, each with its own sink (default 1).
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use prodkit_batch::{Batcher, FnSink};
    ///
    /// let opened = AtomicUsize::new(0);
    /// let batcher = Batcher::builder().flushers(3).build(|| {
    ///     opened.fetch_add(1, Ordering::Relaxed);
    ///     Ok(FnSink(|_rows: &[u32]| Ok(())))
    /// })?;
    /// assert_eq!(opened.load(Ordering::Relaxed), 3); // one sink (connection) per flusher
    /// assert!(batcher.submit(1)?.wait().is_ok());
    /// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    /// ```
    pub fn flushers(mut self, flushers: usize) -> Self {
        self.flushers = flushers;
        self
    }

    /// How long [`Batcher::submit`] waits for room (default 5 s).
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_batch::{Batcher, FnSink};
    /// # use std::sync::{Arc, Mutex};
    /// # // A sink that waits at a gate the example holds shut.
    /// # let gate = Arc::new(Mutex::new(()));
    /// # let shut = gate.lock().unwrap();
    /// # let open = || {
    /// #     let gate = Arc::clone(&gate);
    /// #     Ok(FnSink(move |_rows: &[u32]| { drop(gate.lock()); Ok(()) }))
    /// # };
    ///
    /// // `open` makes a sink that blocks until `shut` is dropped.
    /// let batcher = Batcher::builder()
    ///     .max_rows(1)
    ///     .queue_rows(1)
    ///     .submit_timeout(Duration::from_millis(10))
    ///     .build(open)?;
    /// let first = batcher.submit(1)?; // taken by the flusher, whose write blocks
    /// # while batcher.stats().queued_rows > 0 { std::thread::yield_now(); }
    /// let second = batcher.submit(2)?; // fills the queue
    /// assert!(batcher.submit(3).unwrap_err().is_timeout()); // after 10 ms without room
    /// drop(shut);
    /// assert!(first.wait().is_ok() && second.wait().is_ok());
    /// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    /// ```
    pub fn submit_timeout(mut self, timeout: Duration) -> Self {
        self.submit_timeout = timeout;
        self
    }

    /// How long dropping the batcher waits for pending rows (default 30 s);
    /// [`Batcher::shutdown`] takes its own.
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_batch::{Batcher, Failure, FnSink, NackReason, SinkError};
    ///
    /// let batcher = Batcher::builder()
    ///     .shutdown_timeout(Duration::ZERO)
    ///     .build(|| Ok(FnSink(|_rows: &[u32]| Err(SinkError::new(Failure::Transient, "down")))))?;
    /// let ticket = batcher.submit(1)?;
    /// drop(batcher); // gives up at once instead of retrying for up to 60 s
    /// assert_eq!(ticket.wait().unwrap_err().reason, NackReason::Closed);
    /// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    /// ```
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// The former name of [`shutdown_timeout`](Builder::shutdown_timeout).
    ///
    /// ```
    /// # #![allow(deprecated)]
    /// # use std::time::Duration;
    /// # use prodkit_batch::{Batcher, FnSink};
    /// let batcher = Batcher::builder()
    ///     .close_timeout(Duration::from_secs(5))
    ///     .build(|| Ok(FnSink(|_rows: &[u32]| Ok(()))))?;
    /// # drop(batcher);
    /// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    /// ```
    #[deprecated(since = "0.1.0", note = "renamed `shutdown_timeout`")]
    pub fn close_timeout(self, timeout: Duration) -> Self {
        self.shutdown_timeout(timeout)
    }

    /// Retries of transient failures (default [`RetryPolicy::default`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_batch::{Batcher, Failure, FnSink, NackReason, RetryPolicy, SinkError};
    ///
    /// let retry = RetryPolicy {
    ///     max_attempts: 3,
    ///     initial_backoff: Duration::from_millis(1),
    ///     max_backoff: Duration::from_millis(2),
    ///     ..RetryPolicy::default()
    /// };
    /// let batcher = Batcher::builder().retry(retry).build(|| {
    ///     Ok(FnSink(|_rows: &[u32]| Err(SinkError::new(Failure::Transient, "connection reset"))))
    /// })?;
    /// let nack = batcher.submit(1)?.wait().unwrap_err();
    /// assert!(matches!(nack.reason, NackReason::RetriesExhausted(_)));
    /// assert_eq!(batcher.stats().failed_writes, 3); // the first write and two retries
    /// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    /// ```
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The estimated size of a row, for `max_bytes` and `queue_bytes`
    /// (default `size_of::<T>()`).
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_batch::{quanta, Batcher, FnSink};
    ///
    /// // A linger on a mock clock that does not move: the row stays queued.
    /// let (clock, _mock) = quanta::Clock::mock();
    /// let batcher = Batcher::builder()
    ///     .row_size(|row: &String| 24 + row.len()) // the String and its heap bytes
    ///     .linger(Duration::from_millis(5))
    ///     .clock(clock)
    ///     .build(|| Ok(FnSink(|_rows: &[String]| Ok(()))))?;
    /// let ticket = batcher.submit("hello".to_string())?;
    /// assert_eq!(batcher.stats().queued_bytes, 29);
    /// batcher.shutdown(Duration::from_secs(10));
    /// assert!(ticket.wait().is_ok());
    /// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    /// ```
    pub fn row_size(mut self, size: impl Fn(&T) -> usize + Send + Sync + 'static) -> Self {
        self.row_size = Arc::new(size);
        self
    }

    /// Receives every row without `Ok` that no ticket observes, with the
    /// reason: rows of [`Batcher::submit_detached`], and rows whose
    /// [`Ticket`](crate::Ticket) was dropped unread. Without a callback such
    /// rows are counted and logged through `tracing`.
    ///
    /// ```
    /// use std::sync::mpsc;
    /// use std::time::Duration;
    /// use prodkit_batch::{Batcher, Failure, FnSink, NackReason, SinkError};
    ///
    /// let (dead, refused) = mpsc::channel();
    /// let batcher = Batcher::builder()
    ///     .dead_letter(move |nack| dead.send(nack).unwrap())
    ///     .build(|| Ok(FnSink(|rows: &[i64]| match rows.iter().position(|&r| r < 0) {
    ///         Some(i) => Err(SinkError::new(Failure::Row, "negative").at_row(i)),
    ///         None => Ok(()),
    ///     })))?;
    /// drop(batcher.submit(-1)?); // a ticket dropped unread
    /// let nack = refused.recv()?;
    /// assert_eq!(nack.row, -1);
    /// assert!(matches!(nack.reason, NackReason::Rejected(_)));
    /// assert!(batcher.submit(1)?.wait().is_ok());
    /// batcher.shutdown(Duration::from_secs(10));
    /// assert!(refused.try_recv().is_err()); // written rows never go there
    /// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    /// ```
    pub fn dead_letter(mut self, f: impl Fn(Nack<T>) + Send + Sync + 'static) -> Self {
        self.dead_letter = Some(Arc::new(f));
        self
    }

    /// The clock for linger, retry budgets and the shutdown's deadline (default
    /// `quanta::Clock::new()`). With `quanta::Clock::mock()` time moves only
    /// when the test advances the mock: a linger, a retry budget or
    /// [`Batcher::shutdown`]'s deadline does not pass until it does. The waits
    /// between looks at the clock are real time: a lingering flusher looks
    /// again after what is left of the linger in real time (or when a row
    /// arrives), so a test that moves the mock past a long linger sees the
    /// batch up to that long later; keep lingers short in such tests.
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_batch::{quanta, Batcher, FnSink};
    ///
    /// let (clock, mock) = quanta::Clock::mock();
    /// let batcher = Batcher::builder()
    ///     .clock(clock)
    ///     .linger(Duration::from_millis(5))
    ///     .build(|| Ok(FnSink(|_rows: &[u32]| Ok(()))))?;
    /// let ticket = batcher.submit(1)?;
    /// std::thread::sleep(Duration::from_millis(10)); // real time passes, the mock's does not
    /// assert!(!ticket.is_done());
    /// mock.increment(Duration::from_millis(5));
    /// assert!(ticket.wait().is_ok());
    /// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    /// ```
    pub fn clock(mut self, clock: quanta::Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The flusher threads' name (default `prodkit-batch`).
    ///
    /// ```
    /// use std::sync::mpsc;
    /// use prodkit_batch::{Batcher, FnSink};
    ///
    /// let (tx, names) = mpsc::channel();
    /// let batcher = Batcher::builder().thread_name("events-writer").build(|| {
    ///     let tx = tx.clone();
    ///     Ok(FnSink(move |_rows: &[u32]| {
    ///         tx.send(std::thread::current().name().map(String::from)).unwrap();
    ///         Ok(())
    ///     }))
    /// })?;
    /// assert!(batcher.submit(1)?.wait().is_ok());
    /// assert_eq!(names.recv()?.as_deref(), Some("events-writer-0")); // the flusher's index
    /// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    /// ```
    pub fn thread_name(mut self, name: impl Into<String>) -> Self {
        self.thread_name = name.into();
        self
    }

    /// Checks the configuration without starting anything (what
    /// [`build`](Builder::build) checks first).
    ///
    /// # Errors
    /// The first invalid setting.
    ///
    /// ```
    /// use prodkit_batch::{Batcher, ConfigError};
    ///
    /// let builder = Batcher::<u32>::builder().max_rows(5000).queue_rows(1000);
    /// assert_eq!(
    ///     builder.validate(),
    ///     Err(ConfigError::BatchAboveQueue { max_rows: 5000, queue_rows: 1000 })
    /// );
    /// assert_eq!(builder.queue_rows(10_000).validate(), Ok(()));
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (value, field) in [
            (self.max_rows, "max_rows"),
            (self.max_bytes, "max_bytes"),
            (self.queue_rows, "queue_rows"),
            (self.queue_bytes, "queue_bytes"),
            (self.flushers, "flushers"),
        ] {
            if value == 0 {
                return Err(ConfigError::Zero(field));
            }
        }
        if self.max_rows > self.queue_rows {
            return Err(ConfigError::BatchAboveQueue {
                max_rows: self.max_rows,
                queue_rows: self.queue_rows,
            });
        }
        if self.max_bytes > self.queue_bytes {
            return Err(ConfigError::BatchBytesAboveQueue {
                max_bytes: self.max_bytes,
                queue_bytes: self.queue_bytes,
            });
        }
        if self.flushers > 64 {
            return Err(ConfigError::TooManyFlushers(self.flushers));
        }
        let r = self.retry;
        if r.max_attempts == 0 {
            return Err(ConfigError::Zero("retry.max_attempts"));
        }
        if r.initial_backoff.is_zero() || r.initial_backoff > r.max_backoff {
            return Err(ConfigError::BadBackoff {
                initial: r.initial_backoff,
                max: r.max_backoff,
            });
        }
        Ok(())
    }

    /// Opens one sink per flusher with `open` and starts the flushers. An open
    /// that fails transiently (the database is down or restarting) is retried
    /// under the retry policy, as a write would be; a permanent failure (a
    /// refused login, a table that does not match its declared columns) ends
    /// `build` at once.
    ///
    /// # Errors
    /// [`BuildError::Config`] for a bad configuration, [`BuildError::Sink`] when
    /// `open` fails for good or beyond the retry budget, [`BuildError::Spawn`]
    /// when a thread cannot start. Nothing keeps running after an error.
    ///
    /// ```
    /// use std::cell::Cell;
    /// use std::time::Duration;
    /// use prodkit_batch::{Batcher, Failure, FnSink, RetryPolicy, SinkError};
    ///
    /// // The first open fails transiently (the database is starting up): it is retried.
    /// let opens = Cell::new(0);
    /// let retry = RetryPolicy { initial_backoff: Duration::from_millis(1), ..Default::default() };
    /// let batcher = Batcher::builder().retry(retry).build(|| {
    ///     opens.set(opens.get() + 1);
    ///     if opens.get() == 1 {
    ///         return Err(SinkError::new(Failure::Transient, "the database is starting up"));
    ///     }
    ///     Ok(FnSink(|_rows: &[u32]| Ok(())))
    /// })?;
    /// assert_eq!(opens.get(), 2);
    /// assert!(batcher.submit(1)?.wait().is_ok());
    /// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    /// ```
    pub fn build<S, F>(self, open: F) -> Result<Batcher<T>, BuildError>
    where
        S: Sink<T> + 'static,
        F: Fn() -> Result<S, SinkError>,
    {
        self.validate()?;
        let sinks = (0..self.flushers)
            .map(|_| self.open_with_retries(&open))
            .collect::<Result<Vec<S>, _>>()
            .map_err(BuildError::Sink)?;
        Batcher::start(self, sinks)
    }

    fn open_with_retries<S>(
        &self,
        open: &impl Fn() -> Result<S, SinkError>,
    ) -> Result<S, SinkError> {
        let r = self.retry;
        let first = self.clock.now();
        let mut attempt = 0;
        loop {
            let error = match open() {
                Ok(sink) => return Ok(sink),
                Err(e) => e,
            };
            attempt += 1;
            let elapsed = self.clock.now().saturating_duration_since(first);
            let retryable = matches!(error.failure, Failure::Transient | Failure::UnknownOutcome);
            if !retryable || attempt >= r.max_attempts || elapsed >= r.max_elapsed {
                return Err(error);
            }
            tracing::warn!(%error, attempt, "prodkit-batch: opening a sink failed, retrying");
            std::thread::sleep(crate::deliver::backoff(
                r.initial_backoff,
                r.max_backoff,
                attempt,
            ));
        }
    }
}

impl<T> fmt::Debug for Builder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("max_rows", &self.max_rows)
            .field("max_bytes", &self.max_bytes)
            .field("linger", &self.linger)
            .field("queue_rows", &self.queue_rows)
            .field("queue_bytes", &self.queue_bytes)
            .field("flushers", &self.flushers)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}
