//! Writing one batch through a sink until every row has an outcome: the
//! failure handling of the batcher, driven by the sink's classification.

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use crate::batcher::Shared;
use crate::error::{Failure, NackReason, SinkError, Unknown};
use crate::sink::{Deadline, Sink};
use crate::stats::Counters;
use crate::ticket::Ack;

/// Rows and whom to tell about each, in step.
pub(crate) struct Batch<T> {
    rows: Vec<T>,
    acks: Vec<Ack<T>>,
}

impl<T> Batch<T> {
    pub(crate) fn with_capacity(n: usize) -> Batch<T> {
        Batch {
            rows: Vec::with_capacity(n),
            acks: Vec::with_capacity(n),
        }
    }

    pub(crate) fn push(&mut self, row: T, ack: Ack<T>) {
        self.rows.push(row);
        self.acks.push(ack);
    }

    pub(crate) fn len(&self) -> usize {
        self.rows.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    fn split_off(&mut self, at: usize) -> Batch<T> {
        Batch {
            rows: self.rows.split_off(at),
            acks: self.acks.split_off(at),
        }
    }

    fn remove(&mut self, i: usize) -> (T, Ack<T>) {
        (self.rows.remove(i), self.acks.remove(i))
    }

    /// Refuses the rows because the shutdown's deadline has passed (unknown
    /// if an earlier write of theirs had an unknown outcome), counting them in
    /// `cut_by_deadline`.
    pub(crate) fn cut_by_deadline(self, shared: &Shared<T>, unknown: Option<&SinkError>) {
        Counters::add(&shared.counters.cut_by_deadline, self.len());
        self.nack_all(shared, &settle(unknown, NackReason::Closed));
    }

    fn ack_all(self, shared: &Shared<T>) {
        Counters::add(&shared.counters.acked, self.len());
        Counters::add(&shared.counters.batches, 1);
        // The rows were written: they are dropped here, their tickets say Ok.
        for ack in self.acks {
            ack.ok();
        }
    }

    pub(crate) fn nack_all(self, shared: &Shared<T>, reason: &NackReason) {
        for (row, ack) in self.rows.into_iter().zip(self.acks) {
            shared.nack(row, ack, reason.clone());
        }
    }
}

/// A batch on its way, and what is known of its earlier writes.
struct Work<T> {
    batch: Batch<T>,
    /// A write of these rows ended with an unknown outcome: they may be stored,
    /// so no failure after it may call them "not stored".
    unknown: Option<SinkError>,
    /// A later write showed that the unknown write did not commit: it stored a
    /// row of it anew. A unique key violation then names a row stored by
    /// someone else, not a sign that the unknown write committed.
    uncommitted: bool,
}

/// The reason for rows that failed `error`'s way: a refusal, unless an earlier
/// write of theirs ended with an unknown outcome; then the outcome stays
/// unknown (probably written when the failure says the row is already stored).
fn settle(unknown: Option<&SinkError>, refusal: NackReason) -> NackReason {
    match unknown {
        None => refusal,
        Some(cause) => {
            let last = refusal.error().cloned();
            NackReason::Unknown(Box::new(Unknown {
                cause: cause.clone(),
                probably_written: last.as_ref().is_some_and(|e| e.already_stored),
                last,
            }))
        }
    }
}

/// What a unique key violation after an unknown outcome says about it.
enum Verdict {
    /// The unknown write most likely committed: the batch's first row is
    /// already stored.
    ProbablyWritten,
    /// It did not: the batch's first row was stored anew by this retry (and
    /// acknowledged); the violation is some other row's.
    Uncommitted,
    /// The probe of the first row failed some other way: act on its error.
    Failed(SinkError),
}

/// The unknown write held all of `batch`'s rows and was all or nothing: had
/// it committed, every one of them is stored, the first included. A COPY
/// error naming a later row means the first was stored anew, so the unknown
/// write did not commit; without a row, the first row is written alone to
/// find out.
fn judge<T, S: Sink<T>>(
    shared: &Shared<T>,
    sink: &mut S,
    batch: &mut Batch<T>,
    error: &SinkError,
) -> Verdict {
    match error.row {
        Some(0) => return Verdict::ProbablyWritten,
        Some(_) => return Verdict::Uncommitted,
        None if batch.len() == 1 => return Verdict::ProbablyWritten,
        None => {}
    }
    Counters::add(&shared.counters.retried, 1);
    match write(sink, &batch.rows[..1], &shared.deadline) {
        Ok(()) => {
            let (row, ack) = batch.remove(0);
            Batch {
                rows: vec![row],
                acks: vec![ack],
            }
            .ack_all(shared);
            Verdict::Uncommitted
        }
        // These rows are of unknown outcome already: a panic leaves them so.
        Err(Wrote::Failed(e) | Wrote::Panicked(e)) => {
            shared.counters.failed(&e);
            if e.already_stored {
                Verdict::ProbablyWritten
            } else if e.failure == Failure::Row {
                Verdict::Failed(e.at_row(0))
            } else {
                Verdict::Failed(e)
            }
        }
    }
}

/// Writes `batch` until each of its rows is written, refused, or known to be of
/// unknown outcome.
///
/// - `Row` with the row's index: that row is refused, the rest written again at
///   once; without an index the batch is bisected, each half in its own write,
///   down to the single bad rows.
/// - `TooLarge`: written again in halves; a single row that is still too large is
///   refused.
/// - `Transient`, `UnknownOutcome`: back off, reconnect, write the same batch
///   again, until the retry budget is used up; then every row is refused with
///   the last error. A reconnect that fails for good (`Permanent`: a refused
///   login) fails the batch at once.
/// - `Permanent`: every row is refused at once.
/// - After close's deadline nothing more is tried: the rows left are refused
///   with `Closed`.
///
/// Once a write of some rows ended with an unknown outcome, those rows may be
/// stored: a later success settles them (written), anything else leaves them
/// `Unknown`, never refused. A retry that finds one of them already stored (a
/// unique key violation) asks whether the first row of the batch is stored
/// ([`judge`]): if it is, the unknown write most likely committed and the
/// whole batch is unknown, probably written, with no more writes; if it is
/// not, the unknown write did not commit, the violating row is unknown,
/// probably written (a row with its key is stored), and the rest are written
/// again.
pub(crate) fn deliver<T, S: Sink<T>>(shared: &Shared<T>, sink: &mut S, batch: Batch<T>) {
    let mut todo = vec![Work {
        batch,
        unknown: None,
        uncommitted: false,
    }];
    while let Some(Work {
        mut batch,
        mut unknown,
        mut uncommitted,
    }) = todo.pop()
    {
        let mut transient = 0u32;
        let mut first_failure = None;
        loop {
            if shared.past_deadline() {
                batch.cut_by_deadline(shared, unknown.as_ref());
                break;
            }
            let mut error = match write(sink, &batch.rows, &shared.deadline) {
                Ok(()) => {
                    batch.ack_all(shared);
                    break;
                }
                Err(Wrote::Failed(error)) => error,
                // A sink that panicked may have committed first: the rows'
                // outcome is unknown, and the sink is not asked to write them
                // again.
                Err(Wrote::Panicked(error)) => {
                    shared.counters.failed(&error);
                    tracing::error!(%error, rows = batch.len(), "prodkit-batch: the sink panicked during a write: outcome unknown");
                    let reason = NackReason::Unknown(Box::new(Unknown {
                        cause: unknown.clone().unwrap_or_else(|| error.clone()),
                        probably_written: false,
                        last: Some(error),
                    }));
                    batch.nack_all(shared, &reason);
                    break;
                }
            };
            shared.counters.failed(&error);
            if error.failure == Failure::UnknownOutcome && unknown.is_none() {
                unknown = Some(error.clone());
            }
            if let Some(cause) = &unknown
                && error.already_stored
                && !uncommitted
            {
                match judge(shared, sink, &mut batch, &error) {
                    Verdict::ProbablyWritten => {
                        tracing::warn!(%error, rows = batch.len(), "prodkit-batch: rows of a write with an unknown outcome are already stored: probably written");
                        let reason = NackReason::Unknown(Box::new(Unknown {
                            cause: cause.clone(),
                            last: Some(error),
                            probably_written: true,
                        }));
                        batch.nack_all(shared, &reason);
                        break;
                    }
                    Verdict::Uncommitted => {
                        uncommitted = true;
                        if batch.is_empty() {
                            break;
                        }
                        if error.row.is_none() {
                            // The first row was written alone; the rest again.
                            Counters::add(&shared.counters.retried, batch.len());
                            continue;
                        }
                        // Otherwise COPY named the row: refused below, as
                        // unknown and probably written.
                    }
                    Verdict::Failed(e) => error = e,
                }
            }
            match error.failure {
                Failure::Row => {
                    if let Some(i) = error.row.filter(|&i| i < batch.len()) {
                        let (row, ack) = batch.remove(i);
                        let reason = settle(unknown.as_ref(), NackReason::Rejected(error));
                        shared.nack(row, ack, reason);
                        if batch.is_empty() {
                            break;
                        }
                        Counters::add(&shared.counters.retried, batch.len());
                    } else if batch.len() == 1 {
                        let reason = settle(unknown.as_ref(), NackReason::Rejected(error));
                        batch.nack_all(shared, &reason);
                        break;
                    } else {
                        bisect(shared, batch, unknown, uncommitted, &mut todo);
                        break;
                    }
                }
                Failure::TooLarge if batch.len() > 1 => {
                    bisect(shared, batch, unknown, uncommitted, &mut todo);
                    break;
                }
                Failure::TooLarge | Failure::Permanent => {
                    tracing::error!(%error, rows = batch.len(), "prodkit-batch: a batch failed for good");
                    batch.nack_all(shared, &settle(unknown.as_ref(), NackReason::Failed(error)));
                    break;
                }
                Failure::Transient | Failure::UnknownOutcome => {
                    transient += 1;
                    let now = shared.clock.now();
                    let since = now.saturating_duration_since(*first_failure.get_or_insert(now));
                    if transient >= shared.retry.max_attempts || since >= shared.retry.max_elapsed {
                        tracing::error!(%error, rows = batch.len(), attempts = transient, "prodkit-batch: retry budget used up");
                        let reason = settle(unknown.as_ref(), NackReason::RetriesExhausted(error));
                        batch.nack_all(shared, &reason);
                        break;
                    }
                    tracing::warn!(%error, rows = batch.len(), attempt = transient, "prodkit-batch: write failed, retrying");
                    shared.back_off(backoff(
                        shared.retry.initial_backoff,
                        shared.retry.max_backoff,
                        transient,
                    ));
                    if let Err(e) = reconnect(sink, &shared.deadline) {
                        shared.counters.failed(&e);
                        if e.failure == Failure::Permanent {
                            tracing::error!(error = %e, rows = batch.len(), "prodkit-batch: reconnecting failed for good");
                            batch
                                .nack_all(shared, &settle(unknown.as_ref(), NackReason::Failed(e)));
                            break;
                        }
                        // Otherwise the next write fails too and counts against the budget.
                    }
                    Counters::add(&shared.counters.retried, batch.len());
                }
            }
        }
    }
}

/// Splits `batch` in halves, each to be written on its own, first half first;
/// both inherit what is known of the earlier writes.
fn bisect<T>(
    shared: &Shared<T>,
    mut batch: Batch<T>,
    unknown: Option<SinkError>,
    uncommitted: bool,
    todo: &mut Vec<Work<T>>,
) {
    Counters::add(&shared.counters.retried, batch.len());
    let second = batch.split_off(batch.len() / 2);
    todo.push(Work {
        batch: second,
        unknown: unknown.clone(),
        uncommitted,
    });
    todo.push(Work {
        batch,
        unknown,
        uncommitted,
    });
}

/// `sink.write_until`, with a panic turned into a permanent failure of the batch.
fn write<T, S: Sink<T>>(sink: &mut S, rows: &[T], deadline: &Deadline) -> Result<(), Wrote> {
    match catch_unwind(AssertUnwindSafe(|| sink.write_until(rows, deadline))) {
        Ok(result) => result.map_err(Wrote::Failed),
        Err(panic) => Err(Wrote::Panicked(panicked(&*panic))),
    }
}

/// How a write failed: the sink said so, or it panicked, perhaps after its
/// COMMIT, so that whether the rows are stored is unknown.
enum Wrote {
    Failed(SinkError),
    Panicked(SinkError),
}

/// `sink.reconnect_until`, with a panic turned into a permanent failure.
fn reconnect<T, S: Sink<T>>(sink: &mut S, deadline: &Deadline) -> Result<(), SinkError> {
    catch_unwind(AssertUnwindSafe(|| sink.reconnect_until(deadline)))
        .unwrap_or_else(|panic| Err(panicked(&*panic)))
}

fn panicked(panic: &(dyn std::any::Any + Send)) -> SinkError {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string panic".into());
    SinkError::new(Failure::Permanent, format!("the sink panicked: {message}"))
}

/// The wait before retry `attempt` (1-based): doubling from `initial` up to
/// `max`, then drawn between half and all of it.
pub(crate) fn backoff(initial: Duration, max: Duration, attempt: u32) -> Duration {
    let doubled = initial.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
    let full = doubled.min(max);
    let half = full / 2;
    let spread = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
    let jitter = match spread.checked_add(1) {
        Some(1) => 0,
        Some(range) => random() % range,
        None => random(), // the whole u64 range
    };
    half.saturating_add(Duration::from_nanos(jitter))
}

/// A per-thread xorshift generator: jitter needs spread, not secrecy.
fn random() -> u64 {
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
            let id = &t as *const u64 as u64;
            (t ^ id.rotate_left(32)) | 1
        });
    }
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        x
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_stops_at_the_cap() {
        let (initial, max) = (Duration::from_millis(10), Duration::from_millis(100));
        for attempt in 1..10u32 {
            let full = (initial * 2u32.pow(attempt - 1)).min(max);
            for _ in 0..50 {
                let b = backoff(initial, max, attempt);
                assert!(
                    b >= full / 2 && b <= full,
                    "attempt {attempt}: {b:?} not in [{:?}, {full:?}]",
                    full / 2
                );
            }
        }
        assert!(backoff(initial, max, u32::MAX) <= max);
    }
}
