//! The database pool's health rule: a ping within a deadline, and
//! saturation judged on the connections in use (idle ones are capacity, not
//! load).

use std::fmt;
use std::time::Duration;

use crate::DbPoolConfig;

/// What a pool reports of its connections at one moment (r2d2's `state()`,
/// deadpool's `status()`, and the like).
///
/// ```
/// use prodkit_netcfg::PoolState;
///
/// let state = PoolState { in_use: 3, idle: 7 };
/// assert_eq!(state.in_use + state.idle, 10);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolState {
    /// Connections checked out now.
    pub in_use: u64,
    /// Connections open and idle now.
    pub idle: u64,
}

/// The pool's health, with the figures it was judged on.
///
/// ```
/// use prodkit_netcfg::{DbPoolConfig, HealthCheck, HealthState, PoolState};
///
/// let health = HealthCheck::new(&DbPoolConfig::internal())
///     .check(PoolState { in_use: 2, idle: 3 }, |_| Ok::<(), std::io::Error>(()));
/// assert_eq!(health.state, HealthState::Healthy);
/// assert!(health.is_healthy());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Health {
    /// The verdict.
    pub state: HealthState,
    /// The pool's figures it rests on.
    pub pool: PoolState,
    /// The pool's size limit.
    pub max_open: u64,
    /// How long the ping took (`None` when it was not run: a saturated pool
    /// is not pinged, the ping would wait for a connection).
    pub ping: Option<Duration>,
}

impl Health {
    /// Whether the state is [`HealthState::Healthy`].
    ///
    /// ```
    /// use prodkit_netcfg::{DbPoolConfig, HealthCheck, PoolState};
    ///
    /// let health = HealthCheck::new(&DbPoolConfig::internal())
    ///     .check(PoolState::default(), |_| Err("connection refused"));
    /// assert!(!health.is_healthy());
    /// ```
    pub fn is_healthy(&self) -> bool {
        self.state == HealthState::Healthy
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            HealthState::Healthy => "healthy".to_string(),
            HealthState::Saturated => "saturated".to_string(),
            HealthState::PingFailed(e) => format!("ping failed ({e})"),
            HealthState::PingTimedOut => "ping timed out".to_string(),
        };
        write!(
            f,
            "{state}: {} in use, {} idle, {} at most",
            self.pool.in_use, self.pool.idle, self.max_open
        )?;
        if let Some(p) = self.ping {
            write!(f, ", ping {p:?}")?;
        }
        Ok(())
    }
}

/// A health verdict.
///
/// ```
/// use prodkit_netcfg::{DbPoolConfig, HealthCheck, HealthState, PoolState};
///
/// let cfg = DbPoolConfig::internal(); // 25 connections, saturated at 90 %
/// let health = HealthCheck::new(&cfg).check(PoolState { in_use: 23, idle: 2 }, |_| Ok::<(), std::io::Error>(()));
/// assert_eq!(health.state, HealthState::Saturated);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HealthState {
    /// The ping answered in time and the pool has room.
    Healthy,
    /// At least `saturation_percent` of `max_open` connections are in use.
    Saturated,
    /// The ping returned an error (its text).
    PingFailed(String),
    /// The ping took longer than `health_check_timeout`.
    PingTimedOut,
}

/// Judges a pool's health by [`DbPoolConfig`]'s rule: saturated when
/// `saturation_percent` of `max_open` connections are in use (idle ones do
/// not count: they are room, not load); otherwise healthy when a ping
/// answers within `health_check_timeout`.
///
/// ```
/// use std::time::Duration;
/// use prodkit_netcfg::{DbPoolConfig, HealthCheck, PoolState};
///
/// let check = HealthCheck::new(&DbPoolConfig::internet_facing());
/// let health = check.check(PoolState { in_use: 1, idle: 9 }, |timeout| {
///     assert_eq!(timeout, Duration::from_secs(1));
///     Ok::<(), std::io::Error>(()) // client.simple_query("SELECT 1") with that timeout
/// });
/// assert!(health.is_healthy(), "{health}");
/// ```
#[derive(Clone, Debug)]
pub struct HealthCheck {
    max_open: u64,
    saturation_percent: u64,
    timeout: Duration,
    clock: quanta::Clock,
}

impl HealthCheck {
    /// The rule of `config`.
    ///
    /// ```
    /// use prodkit_netcfg::{DbPoolConfig, HealthCheck};
    ///
    /// let check = HealthCheck::new(&DbPoolConfig::internal());
    /// # let _ = check;
    /// ```
    pub fn new(config: &DbPoolConfig) -> HealthCheck {
        HealthCheck {
            max_open: config.max_open,
            saturation_percent: config.saturation_percent,
            timeout: config.health_check_timeout,
            clock: quanta::Clock::new(),
        }
    }

    /// The clock the ping is timed on (a `quanta` mock in tests).
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_netcfg::{quanta::Clock, DbPoolConfig, HealthCheck, HealthState, PoolState};
    ///
    /// let (clock, mock) = Clock::mock();
    /// let health = HealthCheck::new(&DbPoolConfig::internal())
    ///     .clock(clock)
    ///     .check(PoolState::default(), move |_| {
    ///         mock.increment(Duration::from_secs(2));
    ///         Ok::<(), std::io::Error>(())
    ///     });
    /// assert_eq!(health.state, HealthState::PingTimedOut);
    /// ```
    pub fn clock(mut self, clock: quanta::Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Whether `in_use` connections saturate the pool.
    ///
    /// ```
    /// use prodkit_netcfg::{DbPoolConfig, HealthCheck};
    ///
    /// let check = HealthCheck::new(&DbPoolConfig::internal()); // 90 % of 25
    /// assert!(!check.saturated(22));
    /// assert!(check.saturated(23));
    /// ```
    pub fn saturated(&self, in_use: u64) -> bool {
        // in_use / max_open >= percent / 100, in integers.
        u128::from(in_use) * 100 >= u128::from(self.saturation_percent) * u128::from(self.max_open)
    }

    /// Judges `pool`: a saturated pool is reported without a ping (the ping
    /// would wait for a connection); otherwise `ping` runs, given the
    /// timeout to apply, and is timed.
    ///
    /// ```
    /// use prodkit_netcfg::{DbPoolConfig, HealthCheck, HealthState, PoolState};
    ///
    /// let health = HealthCheck::new(&DbPoolConfig::internal())
    ///     .check(PoolState { in_use: 0, idle: 0 }, |_| Err("password authentication failed"));
    /// assert_eq!(health.state, HealthState::PingFailed("password authentication failed".into()));
    /// ```
    pub fn check<E: fmt::Display>(
        &self,
        pool: PoolState,
        ping: impl FnOnce(Duration) -> Result<(), E>,
    ) -> Health {
        let judged = |state, ping| Health {
            state,
            pool,
            max_open: self.max_open,
            ping,
        };
        if self.saturated(pool.in_use) {
            return judged(HealthState::Saturated, None);
        }
        let start = self.clock.now();
        let result = ping(self.timeout);
        let took = self.clock.now() - start;
        let state = match result {
            Err(e) => HealthState::PingFailed(e.to_string()),
            Ok(()) if took > self.timeout => HealthState::PingTimedOut,
            Ok(()) => HealthState::Healthy,
        };
        judged(state, Some(took))
    }
}
