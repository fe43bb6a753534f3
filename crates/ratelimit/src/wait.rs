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

/// Retries `attempt` (a check at the limiter's time) until it admits, sleeping
/// for each refusal's `retry_after`. Refuses at once, consuming nothing, when
/// the next admission would come after `deadline`, which is real time
/// (`std::time::Instant`), not the limiter's: a limiter whose clock stands
/// still (a mock, a coarse clock nobody ticks) still gives up at the deadline.
pub(crate) fn blocking(
    time: &Time,
    deadline: Option<Instant>,
    mut attempt: impl FnMut(u64) -> Result<Decision, InsufficientCapacity>,
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
            return Err(WaitError::Timeout { retry_after: retry });
        }
        // Another thread may take the slot meanwhile; then the loop waits again.
        std::thread::sleep(retry);
    }
}

/// As [`blocking`] without a deadline, sleeping on tokio's timer.
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
