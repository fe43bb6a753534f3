use std::error::Error;
use std::fmt;
use std::time::Duration;

/// How a failed write affects its batch. The sink classifies each failure; the
/// batcher acts on the class.
///
/// ```
/// use std::time::Duration;
/// use prodkit_batch::{quanta, Batcher, Failure, FnSink, SinkError};
///
/// // A sink that times out on more than two rows at once.
/// let open = || Ok(FnSink(|rows: &[u32]| match rows.len() {
///     0..=2 => Ok(()),
///     _ => Err(SinkError::new(Failure::TooLarge, "canceling statement due to statement timeout")),
/// }));
/// // A linger on a mock clock that does not move: the rows gather up to max_rows.
/// let (clock, _mock) = quanta::Clock::mock();
/// let batcher =
///     Batcher::builder().max_rows(4).linger(Duration::from_millis(5)).clock(clock).build(open)?;
/// let tickets = (0..4).map(|row| batcher.submit(row)).collect::<Result<Vec<_>, _>>()?;
/// assert!(tickets.into_iter().all(|ticket| ticket.wait().is_ok()));
/// let stats = batcher.stats();
/// assert_eq!((stats.failed_writes, stats.batches), (1, 2)); // written again in halves
/// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Failure {
    /// One row is bad (a data exception, a constraint violation). When the sink
    /// names the row ([`SinkError::row`]) only that row is refused and the others
    /// are written again at once; when it cannot, the batcher bisects.
    Row,
    /// The connection or the server failed before the outcome was decided:
    /// reconnect, back off, write the whole batch again, within the retry budget.
    Transient,
    /// The connection was lost while the outcome was being decided (during
    /// COMMIT): the rows may or may not be written. Retried like `Transient`, so
    /// delivery is at least once unless the sink makes the write idempotent.
    UnknownOutcome,
    /// The batch took too long (a statement timeout): written again in halves.
    TooLarge,
    /// The batch can never be written (a missing table, a refused login): every
    /// row is refused with this error, without retry.
    Permanent,
}

/// A failed write, as the sink reports it. Made with [`SinkError::new`] and the
/// `with_*`/`at_row` methods.
///
/// ```
/// use prodkit_batch::{Batcher, Failure, FnSink, SinkError};
///
/// let batcher = Batcher::builder().build(|| {
///     Ok(FnSink(|rows: &[u32]| match rows.iter().position(|&id| id == 7) {
///         Some(i) => Err(SinkError::new(Failure::Row, "duplicate key value")
///             .with_code("23505")
///             .with_constraint("events_pkey")
///             .at_row(i)),
///         None => Ok(()),
///     }))
/// })?;
/// let nack = batcher.submit(7)?.wait().unwrap_err();
/// let error = nack.reason.error().expect("a rejection carries the sink's error");
/// assert_eq!((error.failure, error.code.as_deref()), (Failure::Row, Some("23505")));
/// assert_eq!(
///     error.to_string(),
///     "duplicate key value (one row is bad, SQLSTATE 23505, row 0, constraint events_pkey)"
/// );
/// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SinkError {
    /// What the batcher should do about it.
    pub failure: Failure,
    /// The index of the failing row in the batch, when the sink knows it.
    pub row: Option<usize>,
    /// A machine-readable code, for PostgreSQL the SQLSTATE (`23505`).
    pub code: Option<String>,
    /// The constraint that refused the row, when there is one.
    pub constraint: Option<String>,
    /// The column at fault, when there is one (a declared type that does not
    /// match the table's).
    pub column: Option<String>,
    /// The failure says the row is already stored (a unique key violation).
    /// After an unknown outcome it means the unknown write most likely
    /// committed: see [`NackReason::Unknown`].
    pub already_stored: bool,
    /// What went wrong, for people.
    pub message: String,
}

impl SinkError {
    /// A failure of the given class with a message.
    ///
    /// ```
    /// use prodkit_batch::{Failure, SinkError};
    ///
    /// let error = SinkError::new(Failure::Transient, "connection reset by peer");
    /// assert_eq!((error.failure, error.row), (Failure::Transient, None));
    /// assert_eq!(error.to_string(), "connection reset by peer (transient)");
    /// ```
    pub fn new(failure: Failure, message: impl Into<String>) -> SinkError {
        SinkError {
            failure,
            row: None,
            code: None,
            constraint: None,
            column: None,
            already_stored: false,
            message: message.into(),
        }
    }

    /// The column at fault.
    ///
    /// ```
    /// use prodkit_batch::{Failure, SinkError};
    ///
    /// let error = SinkError::new(Failure::Permanent, "declared int8, the column is text")
    ///     .with_code("42804")
    ///     .with_column("amount");
    /// assert_eq!(error.column.as_deref(), Some("amount"));
    /// assert_eq!(
    ///     error.to_string(),
    ///     "declared int8, the column is text (permanent, SQLSTATE 42804, column amount)"
    /// );
    /// ```
    #[must_use]
    pub fn with_column(mut self, column: impl Into<String>) -> SinkError {
        self.column = Some(column.into());
        self
    }

    /// Marks the failure as saying the row is already stored (a unique key
    /// violation).
    ///
    /// ```
    /// use prodkit_batch::{Failure, SinkError};
    ///
    /// let error = SinkError::new(Failure::Row, "duplicate key value").with_code("23505");
    /// assert!(!error.already_stored);
    /// // After an unknown outcome, a retry failing this way leaves the row
    /// // `Unknown` with `probably_written`: see the example of `Unknown`.
    /// assert!(error.already_stored().already_stored);
    /// ```
    #[must_use]
    pub fn already_stored(mut self) -> SinkError {
        self.already_stored = true;
        self
    }

    /// The failing row's index in the batch.
    ///
    /// ```
    /// use prodkit_batch::{Batcher, Failure, FnSink, SinkError};
    ///
    /// let batcher = Batcher::builder().build(|| {
    ///     Ok(FnSink(|rows: &[i64]| match rows.iter().position(|&r| r < 0) {
    ///         Some(i) => Err(SinkError::new(Failure::Row, "negative").at_row(i)),
    ///         None => Ok(()),
    ///     }))
    /// })?;
    /// let tickets = [1, -2, 3].map(|row| batcher.submit(row).expect("room in the queue"));
    /// let outcomes = tickets.map(|ticket| ticket.wait().map_err(|nack| nack.row));
    /// assert_eq!(outcomes, [Ok(()), Err(-2), Ok(())]); // only the named row is refused
    /// assert_eq!(batcher.stats().failed_writes, 1); // no bisecting
    /// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    /// ```
    #[must_use]
    pub fn at_row(mut self, row: usize) -> SinkError {
        self.row = Some(row);
        self
    }

    /// A machine-readable code (SQLSTATE).
    ///
    /// ```
    /// use prodkit_batch::{Failure, SinkError};
    ///
    /// let error = SinkError::new(Failure::Transient, "could not serialize access")
    ///     .with_code("40001");
    /// assert_eq!(error.code.as_deref(), Some("40001"));
    /// assert_eq!(error.to_string(), "could not serialize access (transient, SQLSTATE 40001)");
    /// ```
    #[must_use]
    pub fn with_code(mut self, code: impl Into<String>) -> SinkError {
        self.code = Some(code.into());
        self
    }

    /// The constraint that refused the row.
    ///
    /// ```
    /// use prodkit_batch::{Failure, SinkError};
    ///
    /// let error = SinkError::new(Failure::Row, "violates check constraint")
    ///     .with_constraint("amount_positive");
    /// assert_eq!(error.constraint.as_deref(), Some("amount_positive"));
    /// assert_eq!(
    ///     error.to_string(),
    ///     "violates check constraint (one row is bad, constraint amount_positive)"
    /// );
    /// ```
    #[must_use]
    pub fn with_constraint(mut self, constraint: impl Into<String>) -> SinkError {
        self.constraint = Some(constraint.into());
        self
    }
}

/// The message first, then what the sink knows, in parentheses:
/// `duplicate key value violates unique constraint "t_pkey" (one row is bad,
/// SQLSTATE 23505, row 3, constraint t_pkey)`.
impl fmt::Display for SinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let class = match self.failure {
            Failure::Row => "one row is bad",
            Failure::Transient => "transient",
            Failure::UnknownOutcome => "outcome unknown",
            Failure::TooLarge => "batch too large",
            Failure::Permanent => "permanent",
        };
        if self.message.is_empty() {
            write!(f, "sink failure ({class}")?;
        } else {
            write!(f, "{} ({class}", self.message)?;
        }
        if let Some(code) = &self.code {
            write!(f, ", SQLSTATE {code}")?;
        }
        if let Some(row) = self.row {
            write!(f, ", row {row}")?;
        }
        if let Some(column) = &self.column {
            write!(f, ", column {column}")?;
        }
        if let Some(constraint) = &self.constraint {
            write!(f, ", constraint {constraint}")?;
        }
        f.write_str(")")
    }
}

impl Error for SinkError {}

/// Why a row has no `Ok`: refused (it is not stored), or unknown (it may be).
///
/// ```
/// use prodkit_batch::{Batcher, Failure, FnSink, NackReason, SinkError};
///
/// let batcher = Batcher::builder().build(|| {
///     Ok(FnSink(|_rows: &[u32]| {
///         Err(SinkError::new(Failure::Permanent, "relation does not exist").with_code("42P01"))
///     }))
/// })?;
/// let nack = batcher.submit(1)?.wait().unwrap_err();
/// let NackReason::Failed(error) = &nack.reason else { panic!("{}", nack.reason) };
/// assert_eq!(error.code.as_deref(), Some("42P01"));
/// assert!(nack.reason.is_refused()); // not stored, and no retry would help
/// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NackReason {
    /// Refused: the sink refused this row ([`Failure::Row`]); the rows around it
    /// were written without it. The row is not stored.
    Rejected(SinkError),
    /// Refused: a permanent failure of the batch the row was in. Not stored.
    Failed(SinkError),
    /// Refused: transient failures used up the retry budget; this is the last of
    /// them. Not stored.
    RetriesExhausted(SinkError),
    /// Refused: the batcher was closed and its deadline passed before the row was
    /// written. Not stored.
    Closed,
    /// The row **may be stored**: a write that held it ended with an unknown
    /// outcome (the connection was lost while COMMIT was in flight), and nothing
    /// after settled it.
    Unknown(Box<Unknown>),
}

/// Why a row's outcome is unknown ([`NackReason::Unknown`]).
///
/// ```
/// use std::time::Duration;
/// use prodkit_batch::{Batcher, Failure, FnSink, NackReason, RetryPolicy, SinkError};
///
/// // The first write loses its connection during COMMIT; the retry finds the row stored.
/// let retry = RetryPolicy { initial_backoff: Duration::from_millis(1), ..Default::default() };
/// let batcher = Batcher::builder().retry(retry).build(|| {
///     let mut writes = 0;
///     Ok(FnSink(move |_rows: &[u32]| {
///         writes += 1;
///         Err(match writes {
///             1 => SinkError::new(Failure::UnknownOutcome, "connection lost during COMMIT"),
///             _ => SinkError::new(Failure::Row, "duplicate key").at_row(0).already_stored(),
///         })
///     }))
/// })?;
/// let nack = batcher.submit(1)?.wait().unwrap_err();
/// let NackReason::Unknown(unknown) = &nack.reason else { panic!("{}", nack.reason) };
/// assert_eq!(unknown.cause.failure, Failure::UnknownOutcome);
/// assert!(unknown.last.as_ref().is_some_and(|e| e.already_stored));
/// assert!(unknown.probably_written); // the lost COMMIT most likely went through
/// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Unknown {
    /// The write whose outcome is unknown.
    pub cause: SinkError,
    /// What stopped the batcher from settling it by writing the row again: the
    /// last failure, or `None` when close's deadline came first.
    pub last: Option<SinkError>,
    /// Writing the row again found it already stored (a unique key violation):
    /// the unknown write most likely committed. A table without a unique key
    /// cannot tell; with [`pg::PgTarget::on_conflict_do_nothing`](crate::pg::PgTarget::on_conflict_do_nothing)
    /// the retry settles it exactly and no ticket is left unknown this way.
    pub probably_written: bool,
}

impl NackReason {
    /// Whether the row is certainly not stored (every reason but
    /// [`Unknown`](NackReason::Unknown)).
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_batch::{Batcher, Failure, FnSink, NackReason, RetryPolicy, SinkError};
    ///
    /// assert!(NackReason::Closed.is_refused());
    /// // Every write loses its connection during COMMIT, until the retry budget is used up.
    /// let retry = RetryPolicy {
    ///     max_attempts: 2,
    ///     initial_backoff: Duration::from_millis(1),
    ///     ..Default::default()
    /// };
    /// let batcher = Batcher::builder().retry(retry).build(|| {
    ///     Ok(FnSink(|_rows: &[u32]| Err(SinkError::new(Failure::UnknownOutcome, "lost COMMIT"))))
    /// })?;
    /// let nack = batcher.submit(1)?.wait().unwrap_err();
    /// assert!(!nack.reason.is_refused()); // the row may be stored
    /// assert_eq!(batcher.stats().unknown, 1);
    /// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    /// ```
    pub fn is_refused(&self) -> bool {
        !matches!(self, NackReason::Unknown(_))
    }

    /// The error behind the reason, if any: the refusal's, or for an unknown
    /// outcome the last failure (else the cause).
    ///
    /// ```
    /// use prodkit_batch::{Batcher, Failure, FnSink, NackReason, SinkError};
    ///
    /// let batcher = Batcher::builder().build(|| {
    ///     Ok(FnSink(|_rows: &[u32]| {
    ///         Err(SinkError::new(Failure::Row, "duplicate key").with_constraint("events_pkey"))
    ///     }))
    /// })?;
    /// let reason = batcher.submit(1)?.wait().unwrap_err().reason;
    /// assert_eq!(reason.error().and_then(|e| e.constraint.as_deref()), Some("events_pkey"));
    /// assert_eq!(NackReason::Closed.error(), None);
    /// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    /// ```
    pub fn error(&self) -> Option<&SinkError> {
        match self {
            NackReason::Rejected(e) | NackReason::Failed(e) | NackReason::RetriesExhausted(e) => {
                Some(e)
            }
            NackReason::Closed => None,
            NackReason::Unknown(u) => Some(u.last.as_ref().unwrap_or(&u.cause)),
        }
    }
}

impl fmt::Display for NackReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NackReason::Rejected(e) => write!(f, "row rejected, not stored: {e}"),
            NackReason::Failed(e) => write!(f, "batch failed, not stored: {e}"),
            NackReason::RetriesExhausted(e) => {
                write!(f, "retry budget used up, not stored; last error: {e}")
            }
            NackReason::Closed => {
                f.write_str("the batcher closed before the row was written; not stored")
            }
            NackReason::Unknown(u) => {
                write!(f, "outcome unknown, the row may be stored")?;
                if u.probably_written {
                    f.write_str(" (probably written: a retry found it already stored)")?;
                }
                write!(f, "; cause: {}", u.cause)?;
                match &u.last {
                    Some(last) => write!(f, "; then: {last}"),
                    None => f.write_str("; then the batcher closed"),
                }
            }
        }
    }
}

/// A row that was not written, handed back with the reason.
///
/// ```
/// use prodkit_batch::{Batcher, Failure, FnSink, Nack, SinkError};
///
/// let batcher = Batcher::builder().build(|| {
///     Ok(FnSink(|rows: &[i64]| match rows.iter().position(|&r| r < 0) {
///         Some(i) => Err(SinkError::new(Failure::Row, "negative amount").at_row(i)),
///         None => Ok(()),
///     }))
/// })?;
/// let nack: Nack<i64> = batcher.submit(-5)?.wait().unwrap_err();
/// assert_eq!(nack.row, -5); // the row comes back, to fix or to log
/// assert!(nack.reason.is_refused());
/// assert_eq!(
///     nack.to_string(),
///     "row rejected, not stored: negative amount (one row is bad, row 0)"
/// );
/// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Nack<T> {
    /// The row, as it was submitted.
    pub row: T,
    /// Why it was not written.
    pub reason: NackReason,
}

impl<T> fmt::Debug for Nack<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Nack")
            .field("reason", &self.reason)
            .finish_non_exhaustive()
    }
}

impl<T> fmt::Display for Nack<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.reason.fmt(f)
    }
}

impl<T> Error for Nack<T> {}

impl<T> Nack<T> {
    /// The row, as it was submitted.
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_batch::{Batcher, Failure, FnSink, SinkError};
    ///
    /// let batcher = Batcher::builder()
    ///     .build(|| Ok(FnSink(|_: &[u32]| Err(SinkError::new(Failure::Permanent, "read-only")))))?;
    /// let nack = batcher.submit(7)?.wait().unwrap_err();
    /// assert!(nack.is_refused());
    /// assert_eq!(nack.into_inner(), 7);
    /// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    /// ```
    pub fn into_inner(self) -> T {
        self.row
    }

    /// Whether the row is certainly not stored ([`NackReason::is_refused`]).
    ///
    /// ```
    /// use prodkit_batch::{Batcher, Failure, FnSink, SinkError};
    ///
    /// let batcher = Batcher::builder()
    ///     .build(|| Ok(FnSink(|_: &[u32]| Err(SinkError::new(Failure::Permanent, "read-only")))))?;
    /// let nack = batcher.submit(7)?.wait().unwrap_err();
    /// assert!(nack.is_refused() && !nack.is_unknown());
    /// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    /// ```
    pub fn is_refused(&self) -> bool {
        self.reason.is_refused()
    }

    /// Whether the row's outcome is unknown: it may be stored
    /// ([`NackReason::Unknown`]).
    ///
    /// ```
    /// use prodkit_batch::{Batcher, FnSink};
    ///
    /// // A sink that panics may have committed first: the outcome is unknown.
    /// let batcher = Batcher::builder().build(|| Ok(FnSink(|_: &[u32]| panic!("driver bug"))))?;
    /// let nack = batcher.submit(7)?.wait().unwrap_err();
    /// assert!(nack.is_unknown() && !nack.is_refused());
    /// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    /// ```
    pub fn is_unknown(&self) -> bool {
        matches!(self.reason, NackReason::Unknown(_))
    }
}

/// The payload-free form of a [`Nack`]: `Error + Send + Sync + 'static`
/// whatever the row type, so that `?` into `anyhow::Error` or
/// `Box<dyn Error + Send + Sync>` works for any row:
/// `ticket.wait().map_err(NackReason::from)?`. Its Display is the whole
/// sentence, the sink's error included, so `source()` is `None` (a chain
/// printer says it once); the sink's error itself is [`NackReason::error`].
///
/// ```
/// use std::cell::Cell;
/// use prodkit_batch::{Batcher, Failure, FnSink, NackReason, SinkError, SubmitErrorKind};
///
/// fn store(batcher: &Batcher<Cell<u32>>) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
///     // `Cell` is not `Sync`, so neither are the errors that carry it: drop the row.
///     let ticket = batcher.submit(Cell::new(1)).map_err(SubmitErrorKind::from)?;
///     ticket.wait().map_err(NackReason::from)?;
///     Ok(())
/// }
/// # fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let batcher = Batcher::builder()
///     .build(|| Ok(FnSink(|_: &[Cell<u32>]| Err(SinkError::new(Failure::Permanent, "full")))))?;
/// let err = store(&batcher).unwrap_err();
/// assert_eq!(err.to_string(), "batch failed, not stored: full (permanent)");
/// # Ok(())
/// # }
/// ```
impl Error for NackReason {}

impl<T> From<Nack<T>> for NackReason {
    fn from(nack: Nack<T>) -> NackReason {
        nack.reason
    }
}

/// A row not accepted by [`submit`](crate::Batcher::submit); the row comes back.
///
/// ```
/// use std::time::Duration;
/// use prodkit_batch::{Batcher, FnSink, SubmitError};
///
/// let batcher = Batcher::builder().build(|| Ok(FnSink(|_rows: &[u32]| Ok(()))))?;
/// batcher.shutdown(Duration::from_secs(10));
/// match batcher.submit(7) {
///     Err(SubmitError::Closed(row)) => assert_eq!(row, 7), // the row comes back
///     other => panic!("{other:?}"),
/// }
/// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubmitError<T> {
    /// The queue stayed full for the whole timeout.
    Timeout(T),
    /// The batcher is closed.
    Closed(T),
    /// The row alone is larger than the queue's byte bound: it could never fit.
    TooLarge(T),
}

/// A row not accepted by [`try_submit`](crate::Batcher::try_submit).
///
/// From async code, where a blocking [`submit`](crate::Batcher::submit) would
/// hold up the runtime's thread, `try_submit` and yield while the queue is full:
///
/// ```
/// use prodkit_batch::{Batcher, FnSink, TrySubmitError};
///
/// let batcher = Batcher::builder().build(|| Ok(FnSink(|_rows: &[u32]| Ok(()))))?;
/// let rt = tokio::runtime::Builder::new_current_thread().build()?;
/// let written = rt.block_on(async {
///     let mut row = 1;
///     let ticket = loop {
///         match batcher.try_submit(row) {
///             Ok(ticket) => break ticket,
///             Err(TrySubmitError::Full(back)) => row = back,
///             Err(other) => return Err(other.kind()),
///         }
///         tokio::task::yield_now().await;
///     };
///     Ok(ticket.await.is_ok())
/// });
/// assert_eq!(written, Ok(true));
/// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TrySubmitError<T> {
    /// The queue is full now.
    Full(T),
    /// The batcher is closed.
    Closed(T),
    /// The row alone is larger than the queue's byte bound.
    TooLarge(T),
}

/// Why a row was refused, without the row: an error that is `Send`, `Sync`
/// and `'static` whatever the row type, for `?` into `anyhow::Error` or
/// `Box<dyn Error + Send + Sync>` (`batcher.submit(row).map_err(SubmitErrorKind::from)?`,
/// which drops the row).
///
/// ```
/// use std::error::Error;
/// use std::time::Duration;
/// use prodkit_batch::{Batcher, FnSink, SubmitErrorKind};
///
/// fn store(batcher: &Batcher<u32>, row: u32) -> Result<(), Box<dyn Error + Send + Sync>> {
///     let ticket = batcher.submit(row).map_err(SubmitErrorKind::from)?;
///     ticket.wait()?;
///     Ok(())
/// }
///
/// let batcher = Batcher::builder().build(|| Ok(FnSink(|_rows: &[u32]| Ok(()))))?;
/// store(&batcher, 1)?;
/// batcher.shutdown(Duration::from_secs(10));
/// let error = store(&batcher, 2).unwrap_err();
/// assert_eq!(error.downcast_ref(), Some(&SubmitErrorKind::Closed));
/// assert_eq!(error.to_string(), "the batcher is closed");
/// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SubmitErrorKind {
    /// The queue was full (`try_submit`).
    Full,
    /// The queue stayed full for the whole submit timeout.
    Timeout,
    /// The batcher is closed.
    Closed,
    /// The row alone is larger than the queue's byte bound.
    TooLarge,
}

impl fmt::Display for SubmitErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SubmitErrorKind::Full => "the queue is full",
            SubmitErrorKind::Timeout => "the queue stayed full for the whole timeout",
            SubmitErrorKind::Closed => "the batcher is closed",
            SubmitErrorKind::TooLarge => {
                "the row is larger than the queue's byte bound; raise queue_bytes"
            }
        })
    }
}

impl Error for SubmitErrorKind {}

impl<T> From<SubmitError<T>> for SubmitErrorKind {
    fn from(e: SubmitError<T>) -> SubmitErrorKind {
        e.kind()
    }
}

impl<T> From<TrySubmitError<T>> for SubmitErrorKind {
    fn from(e: TrySubmitError<T>) -> SubmitErrorKind {
        e.kind()
    }
}

impl<T> SubmitError<T> {
    /// Why, without the row.
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_batch::{Batcher, FnSink, SubmitErrorKind};
    ///
    /// let batcher = Batcher::builder().build(|| Ok(FnSink(|_rows: &[u32]| Ok(()))))?;
    /// batcher.shutdown(Duration::from_secs(10));
    /// assert_eq!(batcher.submit(1).unwrap_err().kind(), SubmitErrorKind::Closed);
    /// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    /// ```
    pub fn kind(&self) -> SubmitErrorKind {
        match self {
            SubmitError::Timeout(_) => SubmitErrorKind::Timeout,
            SubmitError::Closed(_) => SubmitErrorKind::Closed,
            SubmitError::TooLarge(_) => SubmitErrorKind::TooLarge,
        }
    }

    /// Whether the queue stayed full for the whole timeout.
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
    /// let batcher = Batcher::builder().max_rows(1).queue_rows(1).build(open)?;
    /// let first = batcher.submit(1)?; // taken by the flusher, whose write blocks
    /// # while batcher.stats().queued_rows > 0 { std::thread::yield_now(); }
    /// let second = batcher.submit(2)?; // fills the queue
    /// let err = batcher.submit_timeout(3, Duration::from_millis(5)).unwrap_err();
    /// assert!(err.is_timeout() && !err.is_closed());
    /// drop(shut);
    /// assert!(first.wait().is_ok() && second.wait().is_ok());
    /// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    /// ```
    pub fn is_timeout(&self) -> bool {
        matches!(self, SubmitError::Timeout(_))
    }

    /// Whether the batcher is closed.
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_batch::{Batcher, FnSink};
    ///
    /// let batcher = Batcher::builder().build(|| Ok(FnSink(|_rows: &[u32]| Ok(()))))?;
    /// batcher.shutdown(Duration::from_secs(10));
    /// assert!(batcher.submit(1).unwrap_err().is_closed());
    /// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    /// ```
    pub fn is_closed(&self) -> bool {
        matches!(self, SubmitError::Closed(_))
    }

    /// Whether the row alone is larger than the queue's byte bound.
    ///
    /// ```
    /// use prodkit_batch::{Batcher, FnSink};
    ///
    /// let batcher = Batcher::builder()
    ///     .row_size(|row: &Vec<u8>| row.len())
    ///     .max_bytes(1 << 10)
    ///     .queue_bytes(1 << 20)
    ///     .build(|| Ok(FnSink(|_rows: &[Vec<u8>]| Ok(()))))?;
    /// assert!(batcher.submit(vec![0; 2 << 20]).unwrap_err().is_too_large());
    /// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    /// ```
    pub fn is_too_large(&self) -> bool {
        matches!(self, SubmitError::TooLarge(_))
    }

    /// The row handed back.
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_batch::{Batcher, FnSink};
    ///
    /// let batcher = Batcher::builder().build(|| Ok(FnSink(|_rows: &[String]| Ok(()))))?;
    /// batcher.shutdown(Duration::from_secs(10));
    /// let row = batcher.submit("signed up".to_string()).unwrap_err().into_inner();
    /// assert_eq!(row, "signed up"); // to store elsewhere, or to log
    /// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    /// ```
    pub fn into_inner(self) -> T {
        match self {
            SubmitError::Timeout(row) | SubmitError::Closed(row) | SubmitError::TooLarge(row) => {
                row
            }
        }
    }
}

impl<T> TrySubmitError<T> {
    /// Why, without the row.
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_batch::{Batcher, FnSink, SubmitErrorKind};
    ///
    /// let batcher = Batcher::builder().build(|| Ok(FnSink(|_rows: &[u32]| Ok(()))))?;
    /// batcher.shutdown(Duration::from_secs(10));
    /// assert_eq!(batcher.try_submit(1).unwrap_err().kind(), SubmitErrorKind::Closed);
    /// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    /// ```
    pub fn kind(&self) -> SubmitErrorKind {
        match self {
            TrySubmitError::Full(_) => SubmitErrorKind::Full,
            TrySubmitError::Closed(_) => SubmitErrorKind::Closed,
            TrySubmitError::TooLarge(_) => SubmitErrorKind::TooLarge,
        }
    }

    /// Whether the queue is full now.
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
    /// let batcher = Batcher::builder().max_rows(1).queue_rows(1).build(open)?;
    /// let first = batcher.try_submit(1)?; // taken by the flusher, whose write blocks
    /// # while batcher.stats().queued_rows > 0 { std::thread::yield_now(); }
    /// let second = batcher.try_submit(2)?; // fills the queue
    /// let err = batcher.try_submit(3).unwrap_err();
    /// assert!(err.is_full() && !err.is_closed());
    /// drop(shut);
    /// assert!(first.wait().is_ok() && second.wait().is_ok());
    /// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    /// ```
    pub fn is_full(&self) -> bool {
        matches!(self, TrySubmitError::Full(_))
    }

    /// Whether the batcher is closed.
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_batch::{Batcher, FnSink};
    ///
    /// let batcher = Batcher::builder().build(|| Ok(FnSink(|_rows: &[u32]| Ok(()))))?;
    /// batcher.shutdown(Duration::from_secs(10));
    /// assert!(batcher.try_submit(1).unwrap_err().is_closed());
    /// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    /// ```
    pub fn is_closed(&self) -> bool {
        matches!(self, TrySubmitError::Closed(_))
    }

    /// Whether the row alone is larger than the queue's byte bound.
    ///
    /// ```
    /// use prodkit_batch::{Batcher, FnSink};
    ///
    /// let batcher = Batcher::builder()
    ///     .row_size(|row: &Vec<u8>| row.len())
    ///     .max_bytes(1 << 10)
    ///     .queue_bytes(1 << 20)
    ///     .build(|| Ok(FnSink(|_rows: &[Vec<u8>]| Ok(()))))?;
    /// let err = batcher.try_submit(vec![0; 2 << 20]).unwrap_err();
    /// assert!(err.is_too_large() && !err.is_full()); // waiting for room would not help
    /// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    /// ```
    pub fn is_too_large(&self) -> bool {
        matches!(self, TrySubmitError::TooLarge(_))
    }

    /// The row handed back.
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_batch::{Batcher, FnSink};
    ///
    /// let batcher = Batcher::builder().build(|| Ok(FnSink(|_rows: &[String]| Ok(()))))?;
    /// batcher.shutdown(Duration::from_secs(10));
    /// let row = batcher.try_submit("signed up".to_string()).unwrap_err().into_inner();
    /// assert_eq!(row, "signed up");
    /// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    /// ```
    pub fn into_inner(self) -> T {
        match self {
            TrySubmitError::Full(row)
            | TrySubmitError::Closed(row)
            | TrySubmitError::TooLarge(row) => row,
        }
    }
}

impl<T> fmt::Debug for SubmitError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SubmitError::Timeout(_) => "Timeout(..)",
            SubmitError::Closed(_) => "Closed(..)",
            SubmitError::TooLarge(_) => "TooLarge(..)",
        })
    }
}

impl<T> fmt::Debug for TrySubmitError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TrySubmitError::Full(_) => "Full(..)",
            TrySubmitError::Closed(_) => "Closed(..)",
            TrySubmitError::TooLarge(_) => "TooLarge(..)",
        })
    }
}

impl<T> fmt::Display for SubmitError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SubmitError::Timeout(_) => {
                "the queue stayed full for the whole timeout; the row is handed back"
            }
            SubmitError::Closed(_) => "the batcher is closed; the row is handed back",
            SubmitError::TooLarge(_) => {
                "the row is larger than the queue's byte bound; raise queue_bytes"
            }
        })
    }
}

impl<T> fmt::Display for TrySubmitError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TrySubmitError::Full(_) => "the queue is full; the row is handed back",
            TrySubmitError::Closed(_) => "the batcher is closed; the row is handed back",
            TrySubmitError::TooLarge(_) => {
                "the row is larger than the queue's byte bound; raise queue_bytes"
            }
        })
    }
}

impl<T> Error for SubmitError<T> {}
impl<T> Error for TrySubmitError<T> {}

/// A configuration that cannot work.
///
/// ```
/// use prodkit_batch::{Batcher, BuildError, ConfigError, FnSink};
///
/// let built = Batcher::builder()
///     .max_rows(1000)
///     .queue_rows(100)
///     .build(|| Ok(FnSink(|_rows: &[u32]| Ok(()))));
/// let Err(BuildError::Config(error)) = built else { panic!("a bad configuration") };
/// assert_eq!(error, ConfigError::BatchAboveQueue { max_rows: 1000, queue_rows: 100 });
/// assert_eq!(
///     error.to_string(),
///     "max_rows 1000 is above queue_rows 100: a batch could never fill"
/// );
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// A bound of zero: `max_rows`, `max_bytes`, `queue_rows`, `queue_bytes` or
    /// `flushers`. The field is named.
    Zero(&'static str),
    /// A batch bound above the queue's: batches could never fill.
    BatchAboveQueue {
        /// `max_rows`.
        max_rows: usize,
        /// `queue_rows`.
        queue_rows: usize,
    },
    /// A batch's byte bound above the queue's: batches could never fill by
    /// bytes.
    BatchBytesAboveQueue {
        /// `max_bytes`.
        max_bytes: usize,
        /// `queue_bytes`.
        queue_bytes: usize,
    },
    /// More flusher threads than the limit (64).
    TooManyFlushers(usize),
    /// A retry backoff whose start is above its cap, or zero.
    BadBackoff {
        /// The first wait.
        initial: Duration,
        /// The longest wait.
        max: Duration,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Zero(field) => write!(f, "{field} is zero: give at least 1"),
            ConfigError::BatchAboveQueue {
                max_rows,
                queue_rows,
            } => write!(
                f,
                "max_rows {max_rows} is above queue_rows {queue_rows}: a batch could never fill"
            ),
            ConfigError::BatchBytesAboveQueue {
                max_bytes,
                queue_bytes,
            } => write!(
                f,
                "max_bytes {max_bytes} is above queue_bytes {queue_bytes}: a batch could never fill"
            ),
            ConfigError::TooManyFlushers(n) => write!(f, "{n} flushers: at most 64"),
            ConfigError::BadBackoff { initial, max } => write!(
                f,
                "retry backoff from {initial:?} to {max:?}: the first wait must be above zero and at most the cap"
            ),
        }
    }
}

impl Error for ConfigError {}

/// Why [`Builder::build`](crate::Builder::build) failed.
///
/// ```
/// use prodkit_batch::{Batcher, BuildError, Failure, Sink, SinkError};
///
/// struct Table;
///
/// impl Sink<u32> for Table {
///     fn write(&mut self, _rows: &[u32]) -> Result<(), SinkError> {
///         Ok(())
///     }
/// }
///
/// fn connect(password: &str) -> Result<Table, SinkError> {
///     match password {
///         "secret" => Ok(Table),
///         _ => Err(SinkError::new(Failure::Permanent, "password authentication failed")),
///     }
/// }
///
/// match Batcher::<u32>::builder().build(|| connect("guess")) {
///     Err(BuildError::Sink(e)) => assert_eq!(e.failure, Failure::Permanent), // not retried
///     other => panic!("{other:?}"),
/// }
/// match Batcher::<u32>::builder().flushers(0).build(|| connect("secret")) {
///     Err(e @ BuildError::Config(_)) => {
///         assert_eq!(e.to_string(), "flushers is zero: give at least 1");
///     }
///     other => panic!("{other:?}"),
/// }
/// assert!(Batcher::<u32>::builder().build(|| connect("secret")).is_ok());
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum BuildError {
    /// The configuration.
    Config(ConfigError),
    /// Opening a flusher's sink failed (for PostgreSQL: connecting).
    Sink(SinkError),
    /// The OS refused a thread; its error is the [`source`](Error::source).
    Spawn(std::io::Error),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // The configuration error says it all; the others add context
            // and leave the cause to `source`.
            BuildError::Config(e) => fmt::Display::fmt(e, f),
            BuildError::Sink(_) => f.write_str("opening a sink failed"),
            BuildError::Spawn(_) => f.write_str("spawning a flusher thread failed"),
        }
    }
}

impl Error for BuildError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            BuildError::Config(e) => e.source(),
            BuildError::Sink(e) => Some(e),
            BuildError::Spawn(e) => Some(e),
        }
    }
}

impl From<ConfigError> for BuildError {
    fn from(e: ConfigError) -> BuildError {
        BuildError::Config(e)
    }
}
