use std::error::Error;
use std::fmt;
use std::time::Duration;

/// A quota or a limiter configuration that cannot work.
///
/// ```
/// use std::time::Duration;
/// use prodkit_ratelimit::{ConfigError, KeyedRateLimiter, Quota};
///
/// assert_eq!(Quota::per_second(0), Err(ConfigError::ZeroRate));
/// assert_eq!(Quota::per_second(10)?.with_burst(0), Err(ConfigError::ZeroBurst));
///
/// let err = Quota::new(2, Duration::from_nanos(1)).unwrap_err();
/// assert!(matches!(err, ConfigError::RateTooHigh { rate: 2, .. }));
/// assert!(err.to_string().contains("more than one request per nanosecond"));
///
/// let keyed = KeyedRateLimiter::<str>::new(Quota::per_second(10)?, 0);
/// assert_eq!(keyed.unwrap_err(), ConfigError::ZeroMaxKeys);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// A rate of zero requests per period.
    ZeroRate,
    /// A period of zero.
    ZeroPeriod,
    /// A burst of zero: nothing would ever be admitted.
    ZeroBurst,
    /// More than one request per nanosecond.
    RateTooHigh {
        /// The requested rate.
        rate: u32,
        /// The requested period.
        period: Duration,
    },
    /// A period beyond `u64::MAX` nanoseconds.
    PeriodTooLong {
        /// The requested period.
        period: Duration,
    },
    /// `burst * interval` beyond `u64::MAX / 2` nanoseconds (292 years).
    BurstTooLarge {
        /// The requested burst.
        burst: u32,
        /// The quota's emission interval.
        interval: Duration,
    },
    /// A keyed limiter with room for no key.
    ZeroMaxKeys,
    /// More keys than a keyed limiter can index.
    TooManyKeys {
        /// The requested bound.
        max_keys: usize,
        /// The largest bound supported.
        limit: usize,
    },
    /// A shard count that is zero, not a power of two, above 1024, or leaves a
    /// shard with room for no key.
    BadShards {
        /// The requested shard count.
        shards: usize,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::ZeroRate => {
                f.write_str("rate is zero: a quota must admit at least one request per period")
            }
            ConfigError::ZeroPeriod => {
                f.write_str("period is zero: give a period of at least one nanosecond")
            }
            ConfigError::ZeroBurst => f.write_str(
                "burst is zero: nothing would ever be admitted, give a burst of at least 1",
            ),
            ConfigError::RateTooHigh { rate, period } => write!(
                f,
                "{rate} per {period:?} is more than one request per nanosecond, the finest interval supported"
            ),
            ConfigError::PeriodTooLong { period } => {
                write!(
                    f,
                    "period {period:?} does not fit in u64 nanoseconds (584 years)"
                )
            }
            ConfigError::BurstTooLarge { burst, interval } => write!(
                f,
                "burst {burst} times interval {interval:?} exceeds 2^63 nanoseconds: lower the burst or raise the rate"
            ),
            ConfigError::ZeroMaxKeys => {
                f.write_str("max_keys is zero: a keyed limiter needs room for at least one key")
            }
            ConfigError::TooManyKeys { max_keys, limit } => {
                write!(f, "max_keys {max_keys} is above the supported {limit}")
            }
            ConfigError::BadShards { shards } => write!(
                f,
                "{shards} shards: give a power of two from 1 to 1024, at most max_keys"
            ),
        }
    }
}

impl Error for ConfigError {}

/// Why [`CoarseClock::start`](crate::CoarseClock::start) failed.
///
/// ```
/// use std::time::Duration;
/// use prodkit_ratelimit::{ClockError, CoarseClock};
///
/// let err = CoarseClock::start(Duration::ZERO).unwrap_err();
/// assert!(matches!(err, ClockError::ZeroInterval));
/// assert!(std::error::Error::source(&err).is_none());
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum ClockError {
    /// An interval of zero.
    ZeroInterval,
    /// The OS refused the clock's thread; its error is the
    /// [`source`](Error::source).
    Spawn(std::io::Error),
}

impl fmt::Display for ClockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ClockError::ZeroInterval => {
                "a coarse clock's interval is zero: give at least one nanosecond"
            }
            ClockError::Spawn(_) => "the coarse clock's thread did not start",
        })
    }
}

impl Error for ClockError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            ClockError::ZeroInterval => None,
            ClockError::Spawn(e) => Some(e),
        }
    }
}

/// Why a `RateLimit-Policy` or `RateLimit` field value could not be made.
///
/// ```
/// use std::time::Duration;
/// use prodkit_ratelimit::{HeaderError, Quota};
///
/// let quota = Quota::per_second(10)?;
/// assert_eq!(quota.policy_header("caf\u{e9}"), Err(HeaderError::Name("caf\u{e9}".into())));
///
/// // One per 1 000 000.000000001 s: its exact window has 16 digits.
/// let odd = Quota::new(1, Duration::new(1_000_000, 1))?;
/// assert!(matches!(odd.policy_header("api"), Err(HeaderError::Unrepresentable { rate: 1, .. })));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeaderError {
    /// A policy name with a character outside printable ASCII, which a
    /// Structured Fields String cannot carry.
    Name(String),
    /// A rate whose exact window in whole seconds, or quota over it, has more
    /// than the 15 digits of a Structured Fields Integer.
    Unrepresentable {
        /// The configured rate.
        rate: u32,
        /// The configured period.
        period: Duration,
    },
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderError::Name(name) => write!(
                f,
                "policy name {name:?} has a character outside printable ASCII"
            ),
            HeaderError::Unrepresentable { rate, period } => write!(
                f,
                "{rate} per {period:?} has no exact quota per whole seconds within 15 digits"
            ),
        }
    }
}

impl Error for HeaderError {}

/// A request for more cells than the burst: it could never be admitted, so it was
/// refused at once and consumed nothing.
///
/// ```
/// use prodkit_ratelimit::{InsufficientCapacity, Quota, RateLimiter};
///
/// let limiter = RateLimiter::new(Quota::per_second(100)?.with_burst(20)?);
/// let err = limiter.check_n(21).unwrap_err();
/// assert_eq!(err, InsufficientCapacity { requested: 21, burst: 20 });
/// // Nothing was consumed, nor counted.
/// assert!(limiter.check_n(20)?.is_allowed());
/// assert_eq!(limiter.stats().denied, 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InsufficientCapacity {
    /// The cells asked for.
    pub requested: u32,
    /// The quota's burst, the most a single request may ask for.
    pub burst: u32,
}

impl fmt::Display for InsufficientCapacity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} cells requested but the burst is {}: such a request can never be admitted",
            self.requested, self.burst
        )
    }
}

impl Error for InsufficientCapacity {}

/// Why a blocking or async wait returned without admitting the request. Nothing
/// was consumed.
///
/// ```
/// use std::time::Duration;
/// use prodkit_ratelimit::{quanta::Clock, InsufficientCapacity, Quota, RateLimiter, WaitError};
///
/// let (clock, _mock) = Clock::mock();
/// let limiter = RateLimiter::builder(Quota::per_second(2)?).clock(clock).build();
/// assert!(limiter.check_n(2)?.is_allowed());
///
/// // The next cell comes in 500 ms: a 10 ms wait is refused at once.
/// let err = limiter.wait(Duration::from_millis(10)).unwrap_err();
/// assert_eq!(err, WaitError::Timeout { retry_after: Duration::from_millis(500) });
///
/// let err = limiter.wait_n(3, Duration::from_secs(1)).unwrap_err();
/// let capacity = InsufficientCapacity { requested: 3, burst: 2 };
/// assert_eq!(err, WaitError::InsufficientCapacity(capacity));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WaitError {
    /// The request would not be admitted before the deadline; it was refused at
    /// once rather than after sleeping. `retry_after` is the wait it would need.
    Timeout {
        /// How long from the refusal until the request would be admitted.
        retry_after: Duration,
    },
    /// More cells than the burst: never admissible.
    InsufficientCapacity(InsufficientCapacity),
}

impl fmt::Display for WaitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WaitError::Timeout { retry_after } => write!(
                f,
                "not admitted before the deadline: it would need to wait {retry_after:?}"
            ),
            WaitError::InsufficientCapacity(e) => e.fmt(f),
        }
    }
}

impl Error for WaitError {
    /// `None`: `InsufficientCapacity` is transparent (its Display is the
    /// inner error's), so that a chain printer says it once.
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            WaitError::InsufficientCapacity(e) => e.source(),
            WaitError::Timeout { .. } => None,
        }
    }
}

impl From<InsufficientCapacity> for WaitError {
    fn from(e: InsufficientCapacity) -> WaitError {
        WaitError::InsufficientCapacity(e)
    }
}
