//! Waiting until a request is admitted, shared by both limiters.

use std::time::{Duration, Instant};

use crate::clock::Time;
use crate::decision::Decision;
use crate::error::{InsufficientCapacity, WaitError};

/// The deadline `timeout` from now; `None` when it is beyond what an
/// `Instant` can hold (waiting without a deadline).
pub(crate) fn deadline(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

/// Which decisions a check counts in the limiter's stats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tally {
    /// Every decision: a check.
    All,
    /// Admissions only: the attempts of a wait, which counts its own outcome
    /// once (an admission, or a denial when it gives up), not each refused
    /// attempt on the way.
    Admissions,
}

impl Tally {
    /// Whether a decision that `allowed` (or not) is counted.
    #[inline]
    pub(crate) fn counts(self, allowed: bool) -> bool {
        allowed || self == Tally::All
    }
}

/// Retries `attempt` (a check at the limiter's time that counts admissions
/// only) until it admits, sleeping for each refusal's `retry_after`. Refuses
/// at once, consuming nothing, when the next admission would come after
/// `deadline`, which is real time (`std::time::Instant`), not the limiter's: a
/// limiter whose clock stands still (a mock, a coarse clock nobody ticks) still
/// gives up at the deadline; then `refused` counts the denial, once.
pub(crate) fn blocking(
    time: &Time,
    deadline: Option<Instant>,
    mut attempt: impl FnMut(u64) -> Result<Decision, InsufficientCapacity>,
    refused: impl FnOnce(),
) -> Result<Decision, WaitError> {
    loop {
        let decision = attempt(time.now())?;
        if decision.allowed {
            return Ok(decision);
        }
        let retry = Duration::from_nanos(decision.retry_ns);
        if let Some(deadline) = deadline
            && retry > deadline.saturating_duration_since(Instant::now())
        {
            refused();
            return Err(WaitError::Timeout { retry_after: retry });
        }
        // Another thread may take the slot meanwhile; then the loop waits again.
        std::thread::sleep(retry);
    }
}

/// As [`blocking`] without a deadline, sleeping on tokio's timer. A future
/// dropped before it is admitted counts nothing.
#[cfg(feature = "tokio")]
pub(crate) async fn until_ready(
    time: &Time,
    mut attempt: impl FnMut(u64) -> Result<Decision, InsufficientCapacity>,
) -> Result<Decision, InsufficientCapacity> {
    loop {
        let decision = attempt(time.now())?;
        if decision.allowed {
            return Ok(decision);
        }
        tokio::time::sleep(Duration::from_nanos(decision.retry_ns)).await;
    }
}
