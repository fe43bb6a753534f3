//! The builder and its validation.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::Pool;

/// What `submit` does when the queue is full.
///
/// ```
/// use std::sync::mpsc;
/// use prodkit_pool::{JobError, Overload, Pool};
///
/// let pool = Pool::builder()
///     .workers(1)
///     .queue_capacity(1)
///     .overload(Overload::DropOldest)
///     .build()?;
/// let (started_tx, started) = mpsc::channel();
/// let (release, wait) = mpsc::channel::<()>();
/// let busy = pool.submit(move || {
///     started_tx.send(()).ok();
///     wait.recv().ok();
/// })?;
/// started.recv()?; // the only worker runs `busy`; the queue is empty
/// let oldest = pool.submit(|| "old")?; // fills the queue
/// let newest = pool.submit(|| "new")?; // evicts `oldest` to make room
/// assert_eq!(oldest.join(), Err(JobError::Rejected));
/// release.send(())?;
/// busy.join()?;
/// assert_eq!(newest.join(), Ok("new"));
/// assert_eq!(pool.stats().evicted, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Overload {
    /// Wait for room, at most the builder's `submit_timeout` (forever without one).
    /// A submit from inside one of the pool's own jobs into a full queue runs the
    /// new job on the submitting worker instead of waiting: if every worker waited
    /// for room, nobody would make any.
    #[default]
    Block,
    /// Hand the job back at once: [`SubmitError::Full`](crate::SubmitError::Full).
    Reject,
    /// Run the job on the submitting thread; its handle resolves as usual.
    CallerRuns,
    /// Evict the oldest queued job, whose handle resolves
    /// [`JobError::Rejected`](crate::JobError::Rejected), and queue the new one.
    DropOldest,
}

/// A hook run on each worker thread, given the worker's index.
pub(crate) type Hook = Arc<dyn Fn(usize) + Send + Sync>;

/// A configuration the builder refuses.
///
/// ```
/// use prodkit_pool::{ConfigError, Pool};
///
/// let err = Pool::builder().workers(0).validate().unwrap_err();
/// assert_eq!(err, ConfigError::ZeroWorkers);
/// assert!(err.to_string().contains("at least one worker"));
/// let too_big = Pool::builder().queue_capacity(usize::MAX).validate();
/// assert_eq!(too_big, Err(ConfigError::QueueCapacityTooLarge));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// `workers(0)`.
    ZeroWorkers,
    /// `queue_capacity(0)`.
    ZeroQueueCapacity,
    /// `queue_capacity(n)` above [`Builder::MAX_QUEUE_CAPACITY`]: the queue's
    /// slots are allocated at build.
    QueueCapacityTooLarge,
    /// `workers(n)` above [`Builder::MAX_WORKERS`].
    TooManyWorkers,
    /// `submit_timeout(Duration::ZERO)`.
    ZeroSubmitTimeout,
    /// A thread name prefix with a NUL byte, which thread names cannot hold.
    InvalidThreadName,
    /// `stack_size(n)` below [`Builder::MIN_STACK_SIZE`].
    StackTooSmall,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConfigError::ZeroWorkers => "a pool needs at least one worker; set workers(n) with n > 0",
            ConfigError::ZeroQueueCapacity => {
                "the queue capacity must be at least 1; set queue_capacity(n) with n > 0"
            }
            ConfigError::QueueCapacityTooLarge => {
                "the queue capacity is above Builder::MAX_QUEUE_CAPACITY (16,777,216); its slots are allocated up front, so choose a smaller queue_capacity(n)"
            }
            ConfigError::TooManyWorkers => {
                "the number of workers is above Builder::MAX_WORKERS (4096); choose a smaller workers(n)"
            }
            ConfigError::ZeroSubmitTimeout => {
                "a zero submit timeout would never wait; use Overload::Reject instead, or a positive timeout"
            }
            ConfigError::InvalidThreadName => "the thread name prefix must not contain a NUL byte",
            ConfigError::StackTooSmall => {
                "the worker stack size is below Builder::MIN_STACK_SIZE (64 KiB); choose a larger stack_size(bytes)"
            }
        })
    }
}

impl std::error::Error for ConfigError {}

/// Why [`Builder::build`] failed.
///
/// ```
/// use prodkit_pool::{BuildError, ConfigError, Pool};
///
/// let err = Pool::builder().workers(1).stack_size(1024).build().unwrap_err();
/// assert!(matches!(err, BuildError::Config(ConfigError::StackTooSmall)));
/// // It displays the configuration error's message.
/// assert!(err.to_string().contains("MIN_STACK_SIZE"));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum BuildError {
    /// The configuration is invalid.
    Config(ConfigError),
    /// The operating system refused a thread; the threads already started were
    /// stopped and joined.
    Spawn(std::io::Error),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // The configuration error says it all; a spawn failure adds
            // context and leaves the OS error to `source`.
            BuildError::Config(e) => fmt::Display::fmt(e, f),
            BuildError::Spawn(_) => f.write_str("could not start a worker thread"),
        }
    }
}

impl std::error::Error for BuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BuildError::Config(e) => e.source(),
            BuildError::Spawn(e) => Some(e),
        }
    }
}

impl From<ConfigError> for BuildError {
    fn from(e: ConfigError) -> Self {
        BuildError::Config(e)
    }
}

/// Configures a [`Pool`]. From [`Pool::builder`].
///
/// ```
/// use std::time::Duration;
/// use prodkit_pool::{Overload, Pool};
///
/// let pool = Pool::builder()
///     .workers(2)
///     .queue_capacity(64)
///     .overload(Overload::Block)
///     .submit_timeout(Duration::from_millis(100))
///     .thread_name("resize")
///     .build()?;
/// assert_eq!(pool.workers(), 2);
/// assert_eq!(pool.submit(|| 6 * 7)?.join()?, 42);
/// assert!(pool.shutdown(Duration::from_secs(5)).is_complete());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Builder {
    pub(crate) workers: usize,
    pub(crate) queue_capacity: usize,
    pub(crate) overload: Overload,
    pub(crate) submit_timeout: Option<Duration>,
    pub(crate) thread_name: String,
    pub(crate) on_start: Option<Hook>,
    pub(crate) on_stop: Option<Hook>,
    /// `None`: `quanta::Clock::new()`, made at build (it calibrates the TSC).
    pub(crate) clock: Option<quanta::Clock>,
    pub(crate) histograms: bool,
    pub(crate) stack_size: Option<usize>,
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("workers", &self.workers)
            .field("queue_capacity", &self.queue_capacity)
            .field("overload", &self.overload)
            .field("submit_timeout", &self.submit_timeout)
            .field("thread_name", &self.thread_name)
            .field("on_start", &self.on_start.is_some())
            .field("on_stop", &self.on_stop.is_some())
            .field("histograms", &self.histograms)
            .field("stack_size", &self.stack_size)
            .finish_non_exhaustive()
    }
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            queue_capacity: 1024,
            overload: Overload::Block,
            submit_timeout: None,
            thread_name: "prodkit-pool".to_string(),
            on_start: None,
            on_stop: None,
            clock: None,
            histograms: false,
            stack_size: None,
        }
    }
}

impl Builder {
    /// The largest queue capacity [`build`](Builder::build) accepts.
    pub const MAX_QUEUE_CAPACITY: usize = 1 << 24;
    /// The largest number of workers [`build`](Builder::build) accepts.
    pub const MAX_WORKERS: usize = 4096;
    /// The smallest worker stack [`build`](Builder::build) accepts: 64 KiB.
    pub const MIN_STACK_SIZE: usize = 64 * 1024;

    /// Number of worker threads (default: the available parallelism). The pool
    /// keeps exactly this many alive until it shuts down.
    ///
    /// ```
    /// use prodkit_pool::Pool;
    ///
    /// let pool = Pool::builder().workers(2).build()?;
    /// assert_eq!(pool.workers(), 2);
    /// assert_eq!(pool.stats().live_workers, 2); // all live when `build` returns
    /// # Ok::<(), prodkit_pool::BuildError>(())
    /// ```
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n;
        self
    }

    /// How many jobs may wait in the queue (default 1024). Running jobs do not count.
    ///
    /// ```
    /// use std::sync::mpsc;
    /// use prodkit_pool::Pool;
    ///
    /// let pool = Pool::builder().workers(1).queue_capacity(2).build()?;
    /// let (started_tx, started) = mpsc::channel();
    /// let (release, wait) = mpsc::channel::<()>();
    /// let running = pool.submit(move || {
    ///     started_tx.send(()).ok();
    ///     wait.recv().ok();
    /// })?;
    /// started.recv()?; // `running` left the queue: it does not count
    /// let queued = [pool.submit(|| 1)?, pool.submit(|| 2)?];
    /// assert_eq!(pool.stats().queued, 2);
    /// assert!(pool.try_submit(|| 3).unwrap_err().is_full());
    /// release.send(())?;
    /// running.join()?;
    /// assert_eq!(queued.map(|h| h.join()), [Ok(1), Ok(2)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn queue_capacity(mut self, n: usize) -> Self {
        self.queue_capacity = n;
        self
    }

    /// What a submit does when the queue is full (default [`Overload::Block`]).
    ///
    /// ```
    /// use std::sync::mpsc;
    /// use prodkit_pool::{Overload, Pool, SubmitError};
    ///
    /// let pool = Pool::builder()
    ///     .workers(1)
    ///     .queue_capacity(1)
    ///     .overload(Overload::Reject)
    ///     .build()?;
    /// let (started_tx, started) = mpsc::channel();
    /// let (release, wait) = mpsc::channel::<()>();
    /// let busy = pool.submit(move || {
    ///     started_tx.send(()).ok();
    ///     wait.recv().ok();
    /// })?;
    /// started.recv()?;
    /// let queued = pool.submit(|| 1)?; // fills the queue
    /// // Full: the job comes back at once, to run elsewhere.
    /// match pool.submit(|| 2) {
    ///     Err(SubmitError::Full(job)) => assert_eq!(job(), 2),
    ///     other => panic!("expected Full, got {other:?}"),
    /// }
    /// release.send(())?;
    /// busy.join()?;
    /// assert_eq!(queued.join()?, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn overload(mut self, policy: Overload) -> Self {
        self.overload = policy;
        self
    }

    /// How long [`Overload::Block`] waits for room before handing the job back
    /// with [`SubmitError::Timeout`](crate::SubmitError::Timeout) (default: no limit).
    ///
    /// ```
    /// use std::sync::mpsc;
    /// use std::time::Duration;
    /// use prodkit_pool::Pool;
    ///
    /// let pool = Pool::builder()
    ///     .workers(1)
    ///     .queue_capacity(1)
    ///     .submit_timeout(Duration::from_millis(10))
    ///     .build()?;
    /// let (started_tx, started) = mpsc::channel();
    /// let (release, wait) = mpsc::channel::<()>();
    /// let busy = pool.submit(move || {
    ///     started_tx.send(()).ok();
    ///     wait.recv().ok();
    /// })?;
    /// started.recv()?;
    /// let queued = pool.submit(|| 1)?; // fills the queue
    /// let err = pool.submit(|| 2).unwrap_err(); // waits 10 ms for room, in vain
    /// assert!(err.is_timeout());
    /// release.send(())?;
    /// busy.join()?;
    /// assert_eq!(queued.join()?, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn submit_timeout(mut self, timeout: Duration) -> Self {
        self.submit_timeout = Some(timeout);
        self
    }

    /// The stack size of each worker thread in bytes (default: the standard
    /// library's, 2 MiB unless `RUST_MIN_STACK` says otherwise). A job that joins
    /// a job still queued runs it on its own stack, so a chain of jobs each
    /// joining the next nests that deep: give such workloads a larger stack.
    ///
    /// ```
    /// use prodkit_pool::{ConfigError, Pool};
    ///
    /// fn depth(n: u64) -> u64 {
    ///     if n == 0 { 0 } else { 1 + depth(n - 1) }
    /// }
    ///
    /// let pool = Pool::builder().workers(1).stack_size(8 << 20).build()?;
    /// assert_eq!(pool.submit(|| depth(10_000))?.join()?, 10_000);
    /// let tiny = Pool::builder().stack_size(4096).validate();
    /// assert_eq!(tiny, Err(ConfigError::StackTooSmall));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = Some(bytes);
        self
    }

    /// Worker threads are named `<prefix>-<index>` (default `prodkit-pool`).
    ///
    /// ```
    /// use prodkit_pool::Pool;
    ///
    /// let pool = Pool::builder().workers(1).thread_name("resize").build()?;
    /// let name = pool.submit(|| std::thread::current().name().map(str::to_owned))?;
    /// assert_eq!(name.join()?.as_deref(), Some("resize-0"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn thread_name(mut self, prefix: impl Into<String>) -> Self {
        self.thread_name = prefix.into();
        self
    }

    /// Runs on each worker thread as it starts, before its first job. A panic in
    /// the hook is caught and reported; the worker serves anyway.
    ///
    /// ```
    /// use std::cell::Cell;
    /// use prodkit_pool::Pool;
    ///
    /// thread_local! {
    ///     static WORKER: Cell<Option<usize>> = const { Cell::new(None) };
    /// }
    ///
    /// let pool = Pool::builder()
    ///     .workers(1)
    ///     .on_thread_start(|index| WORKER.set(Some(index)))
    ///     .build()?;
    /// // The hook ran on the worker before its first job.
    /// assert_eq!(pool.submit(|| WORKER.get())?.join()?, Some(0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn on_thread_start(mut self, hook: impl Fn(usize) + Send + Sync + 'static) -> Self {
        self.on_start = Some(Arc::new(hook));
        self
    }

    /// Runs on each worker thread after its last job.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use std::time::Duration;
    /// use prodkit_pool::Pool;
    ///
    /// let stopped = Arc::new(Mutex::new(Vec::new()));
    /// let pool = Pool::builder()
    ///     .workers(2)
    ///     .on_thread_stop({
    ///         let stopped = Arc::clone(&stopped);
    ///         move |index| stopped.lock().unwrap().push(index)
    ///     })
    ///     .build()?;
    /// assert!(stopped.lock().unwrap().is_empty());
    /// assert!(pool.shutdown(Duration::from_secs(5)).is_complete());
    /// let mut stopped = stopped.lock().unwrap().clone();
    /// stopped.sort();
    /// assert_eq!(stopped, [0, 1]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn on_thread_stop(mut self, hook: impl Fn(usize) + Send + Sync + 'static) -> Self {
        self.on_stop = Some(Arc::new(hook));
        self
    }

    /// The clock for deadlines and the queue-wait and run-time figures (default
    /// `quanta::Clock::new()`; tests pass `quanta::Clock::mock()`).
    ///
    /// A mock clock moves only when told, so deadlines and timings are exact:
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_pool::{Pool, quanta::Clock};
    ///
    /// let (clock, mock) = Clock::mock();
    /// let pool = Pool::builder().workers(1).clock(clock).histograms(true).build()?;
    /// // The job "takes" 3 ms on the pool's clock.
    /// pool.submit(move || mock.increment(Duration::from_millis(3)))?.join()?;
    /// assert_eq!(pool.stats().run_time.max, Duration::from_millis(3));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn clock(mut self, clock: quanta::Clock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Records each job's queue wait and run time in [`Stats`](crate::Stats)
    /// (default off). It costs three clock reads per job (a TSC read took 11 ns
    /// on the machine of the README's figures), and a detached job then always
    /// gets a box to carry its submit time. Off, no job reads the clock unless it
    /// has a deadline.
    ///
    /// ```
    /// use prodkit_pool::Pool;
    ///
    /// let pool = Pool::builder().workers(1).histograms(true).build()?;
    /// for i in 0..3 {
    ///     pool.submit(move || i * 2)?.join()?;
    /// }
    /// let stats = pool.stats();
    /// assert_eq!(stats.queue_wait.count, 3);
    /// assert_eq!(stats.run_time.count, 3);
    /// assert!(stats.run_time.p50 <= stats.run_time.max);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn histograms(mut self, on: bool) -> Self {
        self.histograms = on;
        self
    }

    /// Checks the configuration without starting anything.
    ///
    /// # Errors
    /// The first invalid setting.
    ///
    /// # Examples
    /// ```
    /// use prodkit_pool::{ConfigError, Pool};
    ///
    /// let builder = Pool::builder().workers(2).queue_capacity(0);
    /// assert_eq!(builder.validate(), Err(ConfigError::ZeroQueueCapacity));
    /// assert_eq!(builder.queue_capacity(16).validate(), Ok(()));
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.workers == 0 {
            return Err(ConfigError::ZeroWorkers);
        }
        if self.workers > Self::MAX_WORKERS {
            return Err(ConfigError::TooManyWorkers);
        }
        if self.queue_capacity == 0 {
            return Err(ConfigError::ZeroQueueCapacity);
        }
        if self.queue_capacity > Self::MAX_QUEUE_CAPACITY {
            return Err(ConfigError::QueueCapacityTooLarge);
        }
        if self.submit_timeout == Some(Duration::ZERO) {
            return Err(ConfigError::ZeroSubmitTimeout);
        }
        if self.thread_name.contains('\0') {
            return Err(ConfigError::InvalidThreadName);
        }
        if self.stack_size.is_some_and(|n| n < Self::MIN_STACK_SIZE) {
            return Err(ConfigError::StackTooSmall);
        }
        Ok(())
    }

    /// Validates the configuration and starts the workers.
    ///
    /// # Errors
    /// [`BuildError::Config`] for an invalid setting, [`BuildError::Spawn`] when
    /// the operating system refuses a thread.
    ///
    /// # Examples
    /// ```
    /// use prodkit_pool::{BuildError, ConfigError, Pool};
    ///
    /// let pool = Pool::builder().workers(2).build()?;
    /// assert_eq!(pool.submit(|| 2 + 2)?.join()?, 4);
    /// let refused = Pool::builder().workers(0).build();
    /// assert!(matches!(refused, Err(BuildError::Config(ConfigError::ZeroWorkers))));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn build(self) -> Result<Pool, BuildError> {
        self.validate()?;
        Pool::start(self)
    }
}
