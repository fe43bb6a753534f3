//! The builder and its validation.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::Pool;

/// What `submit` does when the queue is full.
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
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n;
        self
    }

    /// How many jobs may wait in the queue (default 1024). Running jobs do not count.
    pub fn queue_capacity(mut self, n: usize) -> Self {
        self.queue_capacity = n;
        self
    }

    /// What a submit does when the queue is full (default [`Overload::Block`]).
    pub fn overload(mut self, policy: Overload) -> Self {
        self.overload = policy;
        self
    }

    /// How long [`Overload::Block`] waits for room before handing the job back
    /// with [`SubmitError::Timeout`](crate::SubmitError::Timeout) (default: no limit).
    pub fn submit_timeout(mut self, timeout: Duration) -> Self {
        self.submit_timeout = Some(timeout);
        self
    }

    /// The stack size of each worker thread in bytes (default: the standard
    /// library's, 2 MiB unless `RUST_MIN_STACK` says otherwise). A job that joins
    /// a job still queued runs it on its own stack, so a chain of jobs each
    /// joining the next nests that deep: give such workloads a larger stack.
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = Some(bytes);
        self
    }

    /// Worker threads are named `<prefix>-<index>` (default `prodkit-pool`).
    pub fn thread_name(mut self, prefix: impl Into<String>) -> Self {
        self.thread_name = prefix.into();
        self
    }

    /// Runs on each worker thread as it starts, before its first job. A panic in
    /// the hook is caught and reported; the worker serves anyway.
    pub fn on_thread_start(mut self, hook: impl Fn(usize) + Send + Sync + 'static) -> Self {
        self.on_start = Some(Arc::new(hook));
        self
    }

    /// Runs on each worker thread after its last job.
    pub fn on_thread_stop(mut self, hook: impl Fn(usize) + Send + Sync + 'static) -> Self {
        self.on_stop = Some(Arc::new(hook));
        self
    }

    /// The clock for deadlines and the queue-wait and run-time figures (default
    /// `quanta::Clock::new()`; tests pass `quanta::Clock::mock()`).
    pub fn clock(mut self, clock: quanta::Clock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Records each job's queue wait and run time in [`Stats`](crate::Stats)
    /// (default off). It costs three clock reads per job (a TSC read took 11 ns
    /// on the machine of the README's figures), and a detached job then always
    /// gets a box to carry its submit time. Off, no job reads the clock unless it
    /// has a deadline.
    pub fn histograms(mut self, on: bool) -> Self {
        self.histograms = on;
        self
    }

    /// Checks the configuration without starting anything.
    ///
    /// # Errors
    /// The first invalid setting.
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
    pub fn build(self) -> Result<Pool, BuildError> {
        self.validate()?;
        Pool::start(self)
    }
}
