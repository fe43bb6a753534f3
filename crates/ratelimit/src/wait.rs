//! Waiting until a request is admitted, shared by both limiters.

use std::time::Duration;

use crate::clock::Time;
use crate::decision::Decision;
use crate::error::{InsufficientCapacity, WaitError};

/// Retries `attempt` (a check at the given time) until it admits, sleeping for
/// each refusal's `retry_after`. Refuses at once, consuming nothing, when the
/// next admission would come after `now + timeout`.
pub(crate) fn blocking(
    time: &Time,
    timeout: Duration,
    mut attempt: impl FnMut(u64) -> Result<Decision, InsufficientCapacity>,
) -> Result<Decision, WaitError> {
    let timeout_ns = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
    let deadline = time.now().saturating_add(timeout_ns);
    loop {
        let now = time.now();
        let decision = attempt(now)?;
        if decision.allowed {
            return Ok(decision);
        }
        if now.saturating_add(decision.retry_ns) > deadline {
            return Err(WaitError::Timeout {
                retry_after: Duration::from_nanos(decision.retry_ns),
            });
        }
        // Another thread may take the slot meanwhile; then the loop waits again.
        std::thread::sleep(Duration::from_nanos(decision.retry_ns));
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
