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
///
/// ```
/// use std::time::Duration;
/// use prodkit_ratelimit::{quanta::Clock, Quota, RateLimiter};
///
/// let (clock, mock) = Clock::mock();
/// // 2 per second: a burst of 2, then one every 500 ms.
/// let limiter = RateLimiter::builder(Quota::per_second(2)?).clock(clock).build();
///
/// let first = limiter.check();
/// assert!(first.is_allowed());
/// assert_eq!((first.limit(), first.remaining()), (2, 1));
/// assert_eq!(first.reset(), Duration::from_millis(500));
/// assert_eq!(first.retry_after(), None);
///
/// assert!(limiter.check().is_allowed());
/// let third = limiter.check();
/// assert!(!third.is_allowed());
/// assert_eq!(third.remaining(), 0);
/// assert_eq!(third.retry_after(), Some(Duration::from_millis(500)));
///
/// mock.increment(Duration::from_millis(500));
/// assert!(limiter.check().is_allowed());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
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
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use prodkit_ratelimit::{quanta::Clock, Quota, RateLimiter};
    /// # let (clock, mock) = Clock::mock();
    /// let limiter = RateLimiter::builder(Quota::per_hour(1)?).clock(clock).build();
    /// assert!(limiter.check().is_allowed());
    /// assert!(!limiter.check().is_allowed());
    ///
    /// limiter.set_shadow(true);
    /// assert!(limiter.check().is_allowed());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_allowed(&self) -> bool {
        self.allowed
    }

    /// Whether the request conformed to the quota. Differs from
    /// [`is_allowed`](Decision::is_allowed) only in shadow mode, where a
    /// non-conforming request is allowed and only counted.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use prodkit_ratelimit::{quanta::Clock, Quota, RateLimiter};
    /// # let (clock, mock) = Clock::mock();
    /// let limiter = RateLimiter::builder(Quota::per_hour(1)?).clock(clock).shadow(true).build();
    /// assert!(limiter.check().is_conforming());
    ///
    /// let over = limiter.check();
    /// assert!(over.is_allowed() && !over.is_conforming());
    /// assert_eq!(limiter.stats().shadow_denied, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_conforming(&self) -> bool {
        self.conforming
    }

    /// The burst of the quota in force: the most a full bucket admits at once.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use prodkit_ratelimit::{quanta::Clock, Quota, RateLimiter};
    /// # let (clock, mock) = Clock::mock();
    /// let quota = Quota::per_second(100)?.with_burst(20)?;
    /// let limiter = RateLimiter::builder(quota).clock(clock).build();
    /// assert_eq!(limiter.check().limit(), 20);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn limit(&self) -> u32 {
        self.burst
    }

    /// How many more single requests would be admitted right now.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use prodkit_ratelimit::{quanta::Clock, Quota, RateLimiter};
    /// # let (clock, mock) = Clock::mock();
    /// let limiter = RateLimiter::builder(Quota::per_second(10)?).clock(clock).build();
    /// assert_eq!(limiter.check_n(4)?.remaining(), 6);
    /// // One cell comes back every 100 ms.
    /// mock.increment(Duration::from_millis(250));
    /// assert_eq!(limiter.check().remaining(), 7);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn remaining(&self) -> u32 {
        let free = self.tau_ns.saturating_sub(self.reset_ns) / self.interval_ns;
        u32::try_from(free).unwrap_or(u32::MAX).min(self.burst)
    }

    /// How long until the bucket is full again (all `limit` available).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use prodkit_ratelimit::{quanta::Clock, Quota, RateLimiter};
    /// # let (clock, mock) = Clock::mock();
    /// let limiter = RateLimiter::builder(Quota::per_second(10)?).clock(clock).build();
    /// assert_eq!(limiter.check_n(3)?.reset(), Duration::from_millis(300));
    ///
    /// mock.increment(Duration::from_millis(300));
    /// // `check_n(0)` looks without consuming: the bucket is full again.
    /// assert_eq!(limiter.check_n(0)?.reset(), Duration::ZERO);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn reset(&self) -> Duration {
        Duration::from_nanos(self.reset_ns)
    }

    /// When the request did not conform: how long until the same request would.
    /// `None` for a conforming request.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use prodkit_ratelimit::{quanta::Clock, Quota, RateLimiter};
    /// # let (clock, mock) = Clock::mock();
    /// let limiter = RateLimiter::builder(Quota::per_second(1)?).clock(clock).build();
    /// assert_eq!(limiter.check().retry_after(), None);
    /// assert_eq!(limiter.check().retry_after(), Some(Duration::from_secs(1)));
    ///
    /// mock.increment(Duration::from_millis(400));
    /// assert_eq!(limiter.check().retry_after(), Some(Duration::from_millis(600)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
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
