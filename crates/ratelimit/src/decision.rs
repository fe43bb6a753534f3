use std::time::Duration;

use crate::error::HeaderError;
use crate::header;

/// The answer to one check, with what an HTTP response needs to tell the client.
///
/// `limit` is the burst, `remaining` how many more single requests would be
/// admitted right now, `reset` how long until the bucket is full again, and
/// `retry_after` (only when not conforming) how long until this same request would
/// be admitted. These map onto the IETF `RateLimit` and `RateLimit-Policy` fields
/// and onto `Retry-After`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use = "a decision that is not looked at does not limit anything"]
pub struct Decision {
    pub(crate) allowed: bool,
    pub(crate) conforming: bool,
    pub(crate) burst: u32,
    pub(crate) interval_ns: u64,
    pub(crate) tau_ns: u64,
    /// `max(tat, now) - now` after the decision.
    pub(crate) reset_ns: u64,
    /// When not conforming: until the request would conform.
    pub(crate) retry_ns: u64,
}

impl Decision {
    /// Whether the caller should serve the request. Always true in shadow mode.
    pub fn is_allowed(&self) -> bool {
        self.allowed
    }

    /// Whether the request conformed to the quota. Differs from
    /// [`is_allowed`](Decision::is_allowed) only in shadow mode, where a
    /// non-conforming request is allowed and only counted.
    pub fn is_conforming(&self) -> bool {
        self.conforming
    }

    /// The burst of the quota in force: the most a full bucket admits at once.
    pub fn limit(&self) -> u32 {
        self.burst
    }

    /// How many more single requests would be admitted right now.
    pub fn remaining(&self) -> u32 {
        let free = self.tau_ns.saturating_sub(self.reset_ns) / self.interval_ns;
        u32::try_from(free).unwrap_or(u32::MAX).min(self.burst)
    }

    /// How long until the bucket is full again (all `limit` available).
    pub fn reset(&self) -> Duration {
        Duration::from_nanos(self.reset_ns)
    }

    /// When the request did not conform: how long until the same request would.
    /// `None` for a conforming request.
    pub fn retry_after(&self) -> Option<Duration> {
        (!self.conforming).then(|| Duration::from_nanos(self.retry_ns))
    }

    /// The value of a `RateLimit` field (IETF draft
    /// `draft-ietf-httpapi-ratelimit-headers`): `"name";r=<remaining>;t=<seconds>`,
    /// where `t` is the time until one more request is available, rounded up
    /// to whole seconds, and left out when the bucket is full (nothing more
    /// is to come). Pair it with [`Quota::policy_header`](crate::Quota::policy_header)
    /// under the same name, and send `Retry-After` with
    /// [`retry_after`](Decision::retry_after) rounded up to whole seconds when
    /// the request is refused.
    ///
    /// ```
    /// use prodkit_ratelimit::{Quota, RateLimiter};
    ///
    /// let limiter = RateLimiter::new(Quota::per_second(3)?);
    /// let first = limiter.check();
    /// assert_eq!(first.header("api")?, r#""api";r=2;t=1"#);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`HeaderError::Name`] for a name that is not printable ASCII.
    pub fn header(&self, name: &str) -> Result<String, HeaderError> {
        let name = header::sf_string(name)?;
        let remaining = self.remaining();
        Ok(match self.next_ns() {
            None => format!("{name};r={remaining}"),
            Some(ns) => format!("{name};r={remaining};t={}", header::ceil_secs(ns)),
        })
    }

    /// How long until `remaining` grows by one; `None` when the bucket is full.
    fn next_ns(&self) -> Option<u64> {
        if self.reset_ns == 0 {
            return None;
        }
        // remaining = floor((tau - reset) / T): one more once tau - reset
        // reaches (remaining + 1) * T, that is after
        // reset + (remaining + 1) * T - tau.
        let next = u128::from(self.reset_ns)
            + (u128::from(self.remaining()) + 1) * u128::from(self.interval_ns)
            - u128::from(self.tau_ns);
        Some(u64::try_from(next).unwrap_or(u64::MAX))
    }
}
