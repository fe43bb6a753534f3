use std::fmt;
use std::time::Duration;

use crate::error::{ConfigError, HeaderError};
use crate::header;

/// How much a limiter admits: a sustained rate and a burst.
///
/// A quota of `rate` per `period` has the emission interval
/// `T = ceil(period / rate)` in whole nanoseconds (rounded up, so the limiter never
/// admits more than asked). A full bucket admits `burst` requests at once; after
/// that one request every `T`. In any closed window of length `W` a limiter admits at
/// most `burst + floor(W / T)` requests.
///
/// The burst defaults to the rate: [`Quota::per_minute(100)`](Quota::per_minute)
/// admits 100 requests at once, then one every 600 ms, and at most 200 in any
/// window of one minute (the full bucket of 100 plus the 100 that trickle in).
/// Use [`with_burst`](Quota::with_burst) to choose: with a burst of 1 the same quota
/// admits at most 101 in any minute, spaced at least 600 ms apart.
///
/// ```
/// use std::time::Duration;
/// use prodkit_ratelimit::{quanta::Clock, Quota, RateLimiter};
///
/// let quota = Quota::per_minute(100)?;
/// assert_eq!((quota.burst(), quota.interval()), (100, Duration::from_millis(600)));
///
/// let (clock, mock) = Clock::mock();
/// let limiter = RateLimiter::builder(quota).clock(clock).build();
/// // A full bucket admits 100 at once...
/// assert!(limiter.check_n(100)?.is_allowed());
/// // ...then one every 600 ms: 100 more by the end of the minute.
/// let mut more = 0;
/// for _ in 0..6_000 {
///     mock.increment(Duration::from_millis(10));
///     more += u32::from(limiter.check().is_allowed());
/// }
/// assert_eq!(more, 100);
///
/// // A burst of 1: the same rate, every request at least 600 ms after the last.
/// let spaced = quota.with_burst(1)?;
/// assert_eq!((spaced.burst(), spaced.interval()), (1, Duration::from_millis(600)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Quota {
    interval_ns: u64,
    burst: u32,
    /// The rate as configured, `rate` per `period_ns`: what the
    /// `RateLimit-Policy` field states (the interval is rounded up from it).
    rate: u32,
    period_ns: u64,
}

impl Quota {
    /// `rate` requests per `period`, with a burst of `rate`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_ratelimit::{ConfigError, Quota};
    ///
    /// // 5 requests per 2 seconds: one every 400 ms, up to 5 at once.
    /// let quota = Quota::new(5, Duration::from_secs(2))?;
    /// assert_eq!((quota.burst(), quota.interval()), (5, Duration::from_millis(400)));
    ///
    /// // The interval is rounded up to whole nanoseconds: 3 per 10 ns is one per 4 ns.
    /// let fine = Quota::new(3, Duration::from_nanos(10))?;
    /// assert_eq!(fine.interval(), Duration::from_nanos(4));
    ///
    /// assert_eq!(Quota::new(0, Duration::from_secs(1)), Err(ConfigError::ZeroRate));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`ConfigError::ZeroRate`] for a rate of zero, [`ConfigError::ZeroPeriod`] for a
    /// zero period, [`ConfigError::RateTooHigh`] when the emission interval would be
    /// below one nanosecond, [`ConfigError::PeriodTooLong`] when the period does not
    /// fit in `u64` nanoseconds (584 years).
    pub fn new(rate: u32, period: Duration) -> Result<Quota, ConfigError> {
        if rate == 0 {
            return Err(ConfigError::ZeroRate);
        }
        if period.is_zero() {
            return Err(ConfigError::ZeroPeriod);
        }
        let period_ns =
            u64::try_from(period.as_nanos()).map_err(|_| ConfigError::PeriodTooLong { period })?;
        if period_ns < u64::from(rate) {
            return Err(ConfigError::RateTooHigh { rate, period });
        }
        Quota {
            interval_ns: period_ns.div_ceil(u64::from(rate)),
            burst: rate,
            rate,
            period_ns,
        }
        .checked()
    }

    /// `rate` requests per second, with a burst of `rate`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_ratelimit::Quota;
    ///
    /// let quota = Quota::per_second(10)?;
    /// assert_eq!(quota.burst(), 10);
    /// assert_eq!(quota.interval(), Duration::from_millis(100));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`Quota::new`].
    pub fn per_second(rate: u32) -> Result<Quota, ConfigError> {
        Quota::new(rate, Duration::from_secs(1))
    }

    /// `rate` requests per minute, with a burst of `rate`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_ratelimit::Quota;
    ///
    /// let quota = Quota::per_minute(30)?;
    /// assert_eq!(quota.burst(), 30);
    /// assert_eq!(quota.interval(), Duration::from_secs(2));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`Quota::new`].
    pub fn per_minute(rate: u32) -> Result<Quota, ConfigError> {
        Quota::new(rate, Duration::from_secs(60))
    }

    /// `rate` requests per hour, with a burst of `rate`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_ratelimit::Quota;
    ///
    /// let quota = Quota::per_hour(7200)?;
    /// assert_eq!(quota.interval(), Duration::from_millis(500));
    /// assert_eq!(quota.rate(), (7200, Duration::from_secs(3600)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`Quota::new`].
    pub fn per_hour(rate: u32) -> Result<Quota, ConfigError> {
        Quota::new(rate, Duration::from_secs(3600))
    }

    /// One request every `interval`, with a burst of 1.
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_ratelimit::{ConfigError, Quota};
    ///
    /// let quota = Quota::every(Duration::from_millis(250))?;
    /// assert_eq!(quota.burst(), 1);
    /// assert_eq!(quota.rate(), (1, Duration::from_millis(250)));
    ///
    /// assert_eq!(Quota::every(Duration::ZERO), Err(ConfigError::ZeroPeriod));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`ConfigError::ZeroPeriod`] for a zero interval, [`ConfigError::RateTooHigh`]
    /// for an interval below one nanosecond, [`ConfigError::PeriodTooLong`] beyond
    /// `u64` nanoseconds.
    pub fn every(interval: Duration) -> Result<Quota, ConfigError> {
        Quota::new(1, interval)
    }

    /// The same rate with another burst.
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_ratelimit::{ConfigError, Quota};
    ///
    /// // 100 per second, but never more than 20 at once.
    /// let quota = Quota::per_second(100)?.with_burst(20)?;
    /// assert_eq!(quota.burst(), 20);
    /// assert_eq!(quota.interval(), Duration::from_millis(10)); // the rate is unchanged
    ///
    /// assert_eq!(quota.with_burst(0), Err(ConfigError::ZeroBurst));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`ConfigError::ZeroBurst`] for zero, [`ConfigError::BurstTooLarge`] when
    /// `burst * interval` does not fit in `u64` nanoseconds.
    pub fn with_burst(self, burst: u32) -> Result<Quota, ConfigError> {
        if burst == 0 {
            return Err(ConfigError::ZeroBurst);
        }
        Quota { burst, ..self }.checked()
    }

    fn checked(self) -> Result<Quota, ConfigError> {
        match self.interval_ns.checked_mul(u64::from(self.burst)) {
            // The top value is reserved: no theoretical arrival time reaches u64::MAX.
            Some(tau) if tau < u64::MAX / 2 => Ok(self),
            _ => Err(ConfigError::BurstTooLarge {
                burst: self.burst,
                interval: self.interval(),
            }),
        }
    }

    /// How many requests a full bucket admits at once.
    ///
    /// ```
    /// use prodkit_ratelimit::Quota;
    ///
    /// let quota = Quota::per_minute(60)?;
    /// assert_eq!(quota.burst(), 60);
    /// assert_eq!(quota.with_burst(5)?.burst(), 5);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// The emission interval `T`: one request is replenished every `T`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_ratelimit::Quota;
    ///
    /// assert_eq!(Quota::per_minute(100)?.interval(), Duration::from_millis(600));
    /// // Rounded up to whole nanoseconds, never admitting more than asked.
    /// assert_eq!(Quota::per_second(3)?.interval(), Duration::from_nanos(333_333_334));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn interval(&self) -> Duration {
        Duration::from_nanos(self.interval_ns)
    }

    /// `burst * interval`: how long an emptied bucket takes to fill again.
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_ratelimit::Quota;
    ///
    /// let quota = Quota::per_second(10)?.with_burst(25)?;
    /// assert_eq!(quota.window(), Duration::from_millis(2500));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn window(&self) -> Duration {
        Duration::from_nanos(self.tau_ns())
    }

    /// The rate as configured: `rate` requests per `period`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_ratelimit::Quota;
    ///
    /// let quota = Quota::new(2, Duration::from_secs(3))?.with_burst(4)?;
    /// assert_eq!(quota.rate(), (2, Duration::from_secs(3)));
    /// assert_eq!(quota.interval(), Duration::from_millis(1500));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn rate(&self) -> (u32, Duration) {
        (self.rate, Duration::from_nanos(self.period_ns))
    }

    /// The value of a `RateLimit-Policy` field (IETF draft
    /// `draft-ietf-httpapi-ratelimit-headers`) for this quota:
    /// `"name";q=<quota>;w=<window in seconds>;prodkit-burst=<burst>`, where
    /// `q` per `w` seconds is exactly the configured rate (the configured
    /// period when it is whole seconds; else scaled to the least whole number
    /// of seconds that carries the rate: one per 1.5 s is `q=2;w=3`), and the
    /// burst, which the draft has no parameter for, is a vendor parameter.
    ///
    /// ```
    /// # use prodkit_ratelimit::Quota;
    /// let quota = Quota::per_minute(100)?;
    /// assert_eq!(quota.policy_header("api")?, r#""api";q=100;w=60;prodkit-burst=100"#);
    /// let quota = Quota::per_second(1000)?.with_burst(10)?;
    /// assert_eq!(quota.policy_header("api")?, r#""api";q=1000;w=1;prodkit-burst=10"#);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`HeaderError::Name`] for a name that is not printable ASCII (a
    /// Structured Fields string); [`HeaderError::Unrepresentable`] for a rate
    /// whose exact window in whole seconds has more than 15 digits.
    pub fn policy_header(&self, name: &str) -> Result<String, HeaderError> {
        let (q, w) = self.whole_seconds_rate()?;
        Ok(format!(
            "{};q={q};w={w};prodkit-burst={}",
            header::sf_string(name)?,
            self.burst
        ))
    }

    /// `(q, w)` with `q / w` requests per second exactly the configured
    /// rate: the configured rate and period when the period is whole seconds,
    /// else scaled to the least whole number of seconds that carries it.
    fn whole_seconds_rate(&self) -> Result<(u64, u64), HeaderError> {
        // rate / period_ns = q / (w * 1e9): w = period / g, q = rate * 1e9 / g.
        let per_sec = u128::from(self.rate) * 1_000_000_000;
        let period = u128::from(self.period_ns);
        let g = if period % 1_000_000_000 == 0 {
            1_000_000_000
        } else {
            gcd(per_sec, period)
        };
        let (q, w) = (per_sec / g, period / g);
        match (header::sf_integer(q), header::sf_integer(w)) {
            (Some(q), Some(w)) => Ok((q, w)),
            _ => Err(HeaderError::Unrepresentable {
                rate: self.rate,
                period: Duration::from_nanos(self.period_ns),
            }),
        }
    }

    pub(crate) fn interval_ns(&self) -> u64 {
        self.interval_ns
    }

    pub(crate) fn tau_ns(&self) -> u64 {
        // Checked at construction.
        self.interval_ns * u64::from(self.burst)
    }

    pub(crate) fn period_ns(&self) -> u64 {
        self.period_ns
    }

    pub(crate) fn from_parts(interval_ns: u64, burst: u32, rate: u32, period_ns: u64) -> Quota {
        Quota {
            interval_ns,
            burst,
            rate,
            period_ns,
        }
    }
}

impl fmt::Debug for Quota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Quota")
            .field("rate", &self.rate)
            .field("period", &Duration::from_nanos(self.period_ns))
            .field("interval", &self.interval())
            .field("burst", &self.burst)
            .finish()
    }
}

fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_rounds_up() {
        let q = Quota::new(3, Duration::from_nanos(10)).unwrap();
        assert_eq!(q.interval_ns(), 4);
        assert_eq!(q.burst(), 3);
        assert_eq!(
            Quota::per_minute(100).unwrap().interval(),
            Duration::from_millis(600)
        );
        assert_eq!(Quota::per_second(1_000_000_000).unwrap().interval_ns(), 1);
    }

    #[test]
    fn bad_quotas_are_errors() {
        assert_eq!(Quota::per_second(0), Err(ConfigError::ZeroRate));
        assert_eq!(Quota::new(1, Duration::ZERO), Err(ConfigError::ZeroPeriod));
        assert_eq!(Quota::every(Duration::ZERO), Err(ConfigError::ZeroPeriod));
        assert!(matches!(
            Quota::new(2, Duration::from_nanos(1)),
            Err(ConfigError::RateTooHigh { rate: 2, .. })
        ));
        assert!(matches!(
            Quota::new(1, Duration::MAX),
            Err(ConfigError::PeriodTooLong { .. })
        ));
        let q = Quota::per_second(1).unwrap();
        assert_eq!(q.with_burst(0), Err(ConfigError::ZeroBurst));
        assert!(matches!(
            Quota::per_hour(1).unwrap().with_burst(u32::MAX),
            Err(ConfigError::BurstTooLarge { .. })
        ));
        assert!(Quota::every(Duration::from_secs(1 << 33)).is_ok());
    }

    #[test]
    fn window_and_rate() {
        let q = Quota::per_second(10).unwrap().with_burst(25).unwrap();
        assert_eq!(q.window(), Duration::from_millis(2500));
        assert_eq!(q.rate(), (10, Duration::from_secs(1)));
        assert_eq!(gcd(12, 18), 6);
    }
}
