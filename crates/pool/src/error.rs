//! Errors of submitting and of jobs. Every error of a submit carries the job back.

use std::fmt;

/// Why [`Pool::submit`](crate::Pool::submit) did not accept a job; the job is inside.
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
/// started.recv()?; // the only worker is busy
/// let queued = pool.submit(|| 1)?; // and the queue is full
/// let value = match pool.submit(|| 2) {
///     Ok(handle) => handle.join()?,
///     // Shed the load: here, by running the job on this thread.
///     Err(SubmitError::Full(job)) => job(),
///     Err(other) => return Err(other.into()),
/// };
/// assert_eq!(value, 2);
/// release.send(())?;
/// busy.join()?;
/// assert_eq!(queued.join()?, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(PartialEq, Eq)]
#[non_exhaustive]
pub enum SubmitError<J> {
    /// The queue is full and the policy is [`Overload::Reject`](crate::Overload::Reject).
    Full(J),
    /// The pool is shutting down or shut down.
    Closed(J),
    /// [`Overload::Block`](crate::Overload::Block) waited `submit_timeout` without room.
    Timeout(J),
}

/// Why [`Pool::try_submit`](crate::Pool::try_submit) did not accept a job; the job is inside.
///
/// ```
/// use std::sync::mpsc;
/// use std::time::Duration;
/// use prodkit_pool::{Pool, TrySubmitError};
///
/// let pool = Pool::builder().workers(1).queue_capacity(1).build()?;
/// let (started_tx, started) = mpsc::channel();
/// let (release, wait) = mpsc::channel::<()>();
/// let busy = pool.submit(move || {
///     started_tx.send(()).ok();
///     wait.recv().ok();
/// })?;
/// started.recv()?; // the only worker is busy
/// let queued = pool.submit(|| 1)?; // and the queue is full
/// // `try_submit` never waits, whatever the policy (here `Block`).
/// assert!(matches!(pool.try_submit(|| 2), Err(TrySubmitError::Full(_))));
/// release.send(())?;
/// busy.join()?;
/// assert_eq!(queued.join()?, 1);
/// pool.shutdown(Duration::from_secs(5));
/// match pool.try_submit(|| 3) {
///     Err(TrySubmitError::Closed(job)) => assert_eq!(job(), 3),
///     other => panic!("expected Closed, got {other:?}"),
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(PartialEq, Eq)]
#[non_exhaustive]
pub enum TrySubmitError<J> {
    /// The queue is full.
    Full(J),
    /// The pool is shutting down or shut down.
    Closed(J),
}

/// Why a submit was refused, without the job: an error that is `Send`,
/// `Sync` and `'static` whatever the job, for `?` into `anyhow::Error` or
/// `Box<dyn Error + Send + Sync>`, which a closure that is not `Sync` keeps
/// [`SubmitError`] out of.
///
/// ```
/// use std::cell::Cell;
/// use prodkit_pool::{Pool, SubmitErrorKind};
///
/// fn run(pool: &Pool) -> Result<u32, Box<dyn std::error::Error + Send + Sync>> {
///     let not_sync = Cell::new(20); // a closure capturing it is Send, not Sync
///     let handle = pool
///         .submit(move || not_sync.get() + 1)
///         .map_err(SubmitErrorKind::from)?; // the job is dropped here
///     Ok(handle.join()?)
/// }
///
/// let pool = Pool::builder().workers(1).build()?;
/// assert_eq!(run(&pool)?, 21);
/// pool.shutdown(std::time::Duration::from_secs(5));
/// let refused = run(&pool).unwrap_err();
/// assert_eq!(refused.to_string(), "the pool is shut down");
/// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SubmitErrorKind {
    /// The queue was full ([`Overload::Reject`](crate::Overload::Reject), or `try_submit`).
    Full,
    /// The pool is shutting down or shut down.
    Closed,
    /// [`Overload::Block`](crate::Overload::Block) waited `submit_timeout` without room.
    Timeout,
}

impl fmt::Display for SubmitErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SubmitErrorKind::Full => "the pool's queue is full",
            SubmitErrorKind::Closed => "the pool is shut down",
            SubmitErrorKind::Timeout => "the pool's queue stayed full for the whole submit timeout",
        })
    }
}

impl std::error::Error for SubmitErrorKind {}

impl<J> From<SubmitError<J>> for SubmitErrorKind {
    fn from(e: SubmitError<J>) -> SubmitErrorKind {
        e.kind()
    }
}

impl<J> From<TrySubmitError<J>> for SubmitErrorKind {
    fn from(e: TrySubmitError<J>) -> SubmitErrorKind {
        e.kind()
    }
}

impl<J> SubmitError<J> {
    /// Why, without the job.
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_pool::{Pool, SubmitErrorKind};
    ///
    /// let pool = Pool::builder().workers(1).build()?;
    /// pool.shutdown(Duration::from_secs(5));
    /// let err = pool.submit(|| 1).unwrap_err();
    /// assert_eq!(err.kind(), SubmitErrorKind::Closed);
    /// # Ok::<(), prodkit_pool::BuildError>(())
    /// ```
    pub fn kind(&self) -> SubmitErrorKind {
        match self {
            SubmitError::Full(_) => SubmitErrorKind::Full,
            SubmitError::Closed(_) => SubmitErrorKind::Closed,
            SubmitError::Timeout(_) => SubmitErrorKind::Timeout,
        }
    }

    /// Whether the queue was full (`Overload::Reject`).
    ///
    /// ```
    /// use prodkit_pool::{Overload, Pool};
    /// # use std::sync::mpsc;
    ///
    /// let pool = Pool::builder()
    ///     .workers(1)
    ///     .queue_capacity(1)
    ///     .overload(Overload::Reject)
    ///     .build()?;
    /// # let (started_tx, started) = mpsc::channel();
    /// # let (release, wait) = mpsc::channel::<()>();
    /// # let busy = pool.submit(move || {
    /// #     started_tx.send(()).ok();
    /// #     wait.recv().ok();
    /// # })?;
    /// # started.recv()?;
    /// // The only worker is busy (hidden), and this job fills the queue:
    /// let queued = pool.submit(|| 1)?;
    /// let err = pool.submit(|| 2).unwrap_err();
    /// assert!(err.is_full());
    /// # release.send(())?;
    /// # busy.join()?;
    /// assert_eq!(queued.join()?, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_full(&self) -> bool {
        matches!(self, SubmitError::Full(_))
    }

    /// Whether the pool is shut down.
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_pool::Pool;
    ///
    /// let pool = Pool::builder().workers(1).build()?;
    /// pool.shutdown(Duration::from_secs(5));
    /// let err = pool.execute(|| ()).unwrap_err();
    /// assert!(err.is_closed());
    /// assert!(!err.is_full());
    /// # Ok::<(), prodkit_pool::BuildError>(())
    /// ```
    pub fn is_closed(&self) -> bool {
        matches!(self, SubmitError::Closed(_))
    }

    /// Whether the submit timed out waiting for room (`Overload::Block`).
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_pool::Pool;
    /// # use std::sync::mpsc;
    ///
    /// let pool = Pool::builder()
    ///     .workers(1)
    ///     .queue_capacity(1)
    ///     .submit_timeout(Duration::from_millis(5))
    ///     .build()?;
    /// # let (started_tx, started) = mpsc::channel();
    /// # let (release, wait) = mpsc::channel::<()>();
    /// # let busy = pool.submit(move || {
    /// #     started_tx.send(()).ok();
    /// #     wait.recv().ok();
    /// # })?;
    /// # started.recv()?;
    /// // The only worker is busy (hidden), and this job fills the queue:
    /// let queued = pool.submit(|| 1)?;
    /// let err = pool.submit(|| 2).unwrap_err(); // after waiting 5 ms for room
    /// assert!(err.is_timeout());
    /// # release.send(())?;
    /// # busy.join()?;
    /// assert_eq!(queued.join()?, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_timeout(&self) -> bool {
        matches!(self, SubmitError::Timeout(_))
    }

    /// The job that was not accepted.
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_pool::Pool;
    ///
    /// let pool = Pool::builder().workers(1).build()?;
    /// let fallback = Pool::builder().workers(1).build()?;
    /// pool.shutdown(Duration::from_secs(5));
    /// let job = pool.submit(|| 6 * 7).unwrap_err().into_inner();
    /// // Nothing is lost: the closure can go to another pool.
    /// assert_eq!(fallback.submit(job)?.join()?, 42);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn into_inner(self) -> J {
        match self {
            SubmitError::Full(j) | SubmitError::Closed(j) | SubmitError::Timeout(j) => j,
        }
    }

    pub(crate) fn map<K>(self, f: impl FnOnce(J) -> K) -> SubmitError<K> {
        match self {
            SubmitError::Full(j) => SubmitError::Full(f(j)),
            SubmitError::Closed(j) => SubmitError::Closed(f(j)),
            SubmitError::Timeout(j) => SubmitError::Timeout(f(j)),
        }
    }
}

impl<J> TrySubmitError<J> {
    /// Why, without the job.
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_pool::{Pool, SubmitErrorKind};
    ///
    /// let pool = Pool::builder().workers(1).build()?;
    /// pool.shutdown(Duration::from_secs(5));
    /// let err = pool.try_submit(|| 1).unwrap_err();
    /// assert_eq!(err.kind(), SubmitErrorKind::Closed);
    /// # Ok::<(), prodkit_pool::BuildError>(())
    /// ```
    pub fn kind(&self) -> SubmitErrorKind {
        match self {
            TrySubmitError::Full(_) => SubmitErrorKind::Full,
            TrySubmitError::Closed(_) => SubmitErrorKind::Closed,
        }
    }

    /// Whether the queue was full.
    ///
    /// ```
    /// use prodkit_pool::Pool;
    /// # use std::sync::mpsc;
    ///
    /// let pool = Pool::builder().workers(1).queue_capacity(1).build()?;
    /// # let (started_tx, started) = mpsc::channel();
    /// # let (release, wait) = mpsc::channel::<()>();
    /// # let busy = pool.submit(move || {
    /// #     started_tx.send(()).ok();
    /// #     wait.recv().ok();
    /// # })?;
    /// # started.recv()?;
    /// // The only worker is busy (hidden), and this job fills the queue:
    /// let queued = pool.submit(|| 1)?;
    /// let err = pool.try_execute(|| ()).unwrap_err();
    /// assert!(err.is_full());
    /// # release.send(())?;
    /// # busy.join()?;
    /// assert_eq!(queued.join()?, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_full(&self) -> bool {
        matches!(self, TrySubmitError::Full(_))
    }

    /// Whether the pool is shut down.
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_pool::Pool;
    ///
    /// let pool = Pool::builder().workers(1).build()?;
    /// pool.shutdown(Duration::from_secs(5));
    /// let err = pool.try_submit(|| 1).unwrap_err();
    /// assert!(err.is_closed());
    /// assert!(!err.is_full());
    /// # Ok::<(), prodkit_pool::BuildError>(())
    /// ```
    pub fn is_closed(&self) -> bool {
        matches!(self, TrySubmitError::Closed(_))
    }

    /// The job that was not accepted.
    ///
    /// ```
    /// use prodkit_pool::Pool;
    /// # use std::sync::mpsc;
    ///
    /// let pool = Pool::builder().workers(1).queue_capacity(1).build()?;
    /// # let (started_tx, started) = mpsc::channel();
    /// # let (release, wait) = mpsc::channel::<()>();
    /// # let busy = pool.submit(move || {
    /// #     started_tx.send(()).ok();
    /// #     wait.recv().ok();
    /// # })?;
    /// # started.recv()?;
    /// // The only worker is busy (hidden), and this job fills the queue:
    /// let queued = pool.submit(|| 1)?;
    /// let job = pool.try_submit(|| 2).unwrap_err().into_inner();
    /// # release.send(())?;
    /// # busy.join()?;
    /// assert_eq!(queued.join()?, 1);
    /// // Try again later, or give up waiting and run it here:
    /// assert_eq!(job(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn into_inner(self) -> J {
        match self {
            TrySubmitError::Full(j) | TrySubmitError::Closed(j) => j,
        }
    }

    pub(crate) fn map<K>(self, f: impl FnOnce(J) -> K) -> TrySubmitError<K> {
        match self {
            TrySubmitError::Full(j) => TrySubmitError::Full(f(j)),
            TrySubmitError::Closed(j) => TrySubmitError::Closed(f(j)),
        }
    }
}

impl<J> fmt::Debug for SubmitError<J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SubmitError::Full(_) => "Full(..)",
            SubmitError::Closed(_) => "Closed(..)",
            SubmitError::Timeout(_) => "Timeout(..)",
        })
    }
}

impl<J> fmt::Debug for TrySubmitError<J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TrySubmitError::Full(_) => "Full(..)",
            TrySubmitError::Closed(_) => "Closed(..)",
        })
    }
}

impl<J> fmt::Display for SubmitError<J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SubmitError::Full(_) => "the pool's queue is full; the job is handed back",
            SubmitError::Closed(_) => "the pool is shut down; the job is handed back",
            SubmitError::Timeout(_) => {
                "the pool's queue stayed full for the whole submit timeout; the job is handed back"
            }
        })
    }
}

impl<J> fmt::Display for TrySubmitError<J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TrySubmitError::Full(_) => "the pool's queue is full; the job is handed back",
            TrySubmitError::Closed(_) => "the pool is shut down; the job is handed back",
        })
    }
}

impl<J> std::error::Error for SubmitError<J> {}
impl<J> std::error::Error for TrySubmitError<J> {}

/// Why an accepted job produced no value.
///
/// ```
/// use prodkit_pool::{CancelToken, Job, JobError, Pool};
///
/// let pool = Pool::builder().workers(1).build()?;
/// let handle = pool.submit(|| -> u32 { panic!("no input") })?;
/// match handle.join() {
///     Err(JobError::Panicked(msg)) => assert_eq!(msg, "no input"),
///     other => panic!("expected a panic, got {other:?}"),
/// }
/// // A job whose token fired before it started never runs.
/// let token = CancelToken::new();
/// token.cancel();
/// let skipped = pool.submit_job(Job::new(|| 1).token(token))?;
/// assert_eq!(skipped.join(), Err(JobError::Cancelled));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum JobError {
    /// It never ran: cancelled through its handle or token, its deadline passed
    /// before it started, or `shutdown_now` took it from the queue.
    Cancelled,
    /// It panicked; the panic message, when it was a string.
    Panicked(String),
    /// [`Overload::DropOldest`](crate::Overload::DropOldest) evicted it from the
    /// queue to make room for a newer job; it never ran.
    Rejected,
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobError::Cancelled => f.write_str("the job was cancelled before it started"),
            JobError::Panicked(msg) => write!(f, "the job panicked: {msg}"),
            JobError::Rejected => {
                f.write_str("the job was evicted from a full queue by a newer one (DropOldest)")
            }
        }
    }
}

impl std::error::Error for JobError {}
