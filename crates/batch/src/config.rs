use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::batcher::Batcher;
use crate::error::{BuildError, ConfigError, Failure, Nack, SinkError};
use crate::sink::Sink;
use crate::ticket::DeadLetter;

/// How long transient failures are retried, and how far apart.
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
    pub fn max_rows(mut self, rows: usize) -> Self {
        self.max_rows = rows;
        self
    }

    /// ... or this many estimated bytes (default 1 MiB); see
    /// [`row_size`](Builder::row_size).
    pub fn max_bytes(mut self, bytes: usize) -> Self {
        self.max_bytes = bytes;
        self
    }

    /// ... or once its oldest row has waited this long. The default, zero,
    /// writes as soon as a flusher is free: a lone row goes out at once (low
    /// latency at low load), and while every flusher is busy rows gather into
    /// the next batch (large batches under load). A positive linger holds a
    /// batch back to fill it, for fewer and larger transactions at low load.
    pub fn linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    /// At most this many rows wait in the queue (default 100 000); a submit
    /// into a full queue waits for room.
    pub fn queue_rows(mut self, rows: usize) -> Self {
        self.queue_rows = rows;
        self
    }

    /// ... and at most this many estimated bytes (default 64 MiB).
    pub fn queue_bytes(mut self, bytes: usize) -> Self {
        self.queue_bytes = bytes;
        self
    }

    /// Flusher threads, each with its own sink (default 1).
    pub fn flushers(mut self, flushers: usize) -> Self {
        self.flushers = flushers;
        self
    }

    /// How long [`Batcher::submit`] waits for room (default 5 s).
    pub fn submit_timeout(mut self, timeout: Duration) -> Self {
        self.submit_timeout = timeout;
        self
    }

    /// How long dropping the batcher waits for pending rows (default 30 s);
    /// [`Batcher::shutdown`] takes its own.
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
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The estimated size of a row, for `max_bytes` and `queue_bytes`
    /// (default `size_of::<T>()`).
    pub fn row_size(mut self, size: impl Fn(&T) -> usize + Send + Sync + 'static) -> Self {
        self.row_size = Arc::new(size);
        self
    }

    /// Receives every row without `Ok` that no ticket observes, with the
    /// reason: rows of [`Batcher::submit_detached`], and rows whose
    /// [`Ticket`](crate::Ticket) was dropped unread. Without a callback such
    /// rows are counted and logged through `tracing`.
    pub fn dead_letter(mut self, f: impl Fn(Nack<T>) + Send + Sync + 'static) -> Self {
        self.dead_letter = Some(Arc::new(f));
        self
    }

    /// The clock for linger, retry budgets and the shutdown's deadline (default
    /// `quanta::Clock::new()`). With `quanta::Clock::mock()` time moves only
    /// when the test advances the mock: a linger, a retry budget or
    /// [`Batcher::shutdown`]'s deadline does not pass until it does.
    pub fn clock(mut self, clock: quanta::Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The flusher threads' name (default `prodkit-batch`).
    pub fn thread_name(mut self, name: impl Into<String>) -> Self {
        self.thread_name = name.into();
        self
    }

    /// Checks the configuration without starting anything (what
    /// [`build`](Builder::build) checks first).
    ///
    /// # Errors
    /// The first invalid setting.
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
