use std::fmt;
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;

use crate::clock::{CoarseClock, Time};
use crate::decision::Decision;
use crate::error::{InsufficientCapacity, WaitError};
use crate::gcra::{self, ParamCell};
use crate::quota::Quota;
use crate::stats::{Counters, Stats};
use crate::sync::{AtomicU64, Ordering};
use crate::wait::{self, Tally};

/// One rate limit shared by every caller: a single `AtomicU64` of state, no lock,
/// no background thread.
///
/// `RateLimiter` is `Send + Sync`; share it by reference or in an `Arc`.
///
/// ```
/// use prodkit_ratelimit::{quanta::Clock, Quota, RateLimiter};
///
/// // A mock clock that stands still: exactly the burst is admitted.
/// let (clock, _mock) = Clock::mock();
/// let limiter = RateLimiter::builder(Quota::per_second(25)?).clock(clock).build();
/// std::thread::scope(|s| {
///     for _ in 0..4 {
///         s.spawn(|| {
///             for _ in 0..10 {
///                 let _ = limiter.check();
///             }
///         });
///     }
/// });
/// let stats = limiter.stats();
/// assert_eq!((stats.allowed, stats.denied), (25, 15));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RateLimiter {
    /// The theoretical arrival time, in nanoseconds since the epoch of `time`.
    tat: CachePadded<AtomicU64>,
    params: ParamCell,
    time: Time,
    counters: Counters,
}

/// Options of a [`RateLimiter`]: from [`RateLimiter::builder`].
///
/// ```
/// use std::time::Duration;
/// use prodkit_ratelimit::{quanta::Clock, Quota, RateLimiter};
///
/// let (clock, mock) = Clock::mock();
/// let limiter = RateLimiter::builder(Quota::per_second(1)?)
///     .clock(clock)
///     .shadow(true)
///     .build();
/// assert!(limiter.is_shadow());
/// assert!(limiter.check().is_conforming());
/// mock.increment(Duration::from_millis(500));
/// assert!(!limiter.check().is_conforming()); // only counted: shadow mode
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
#[must_use = "a builder does nothing until build() is called"]
pub struct Builder {
    quota: Quota,
    time: Option<Time>,
    shadow: bool,
}

impl Builder {
    /// The clock to read (default `quanta::Clock::new()`; tests pass the first
    /// half of `quanta::Clock::mock()` and move time with the second).
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_ratelimit::{quanta::Clock, Quota, RateLimiter};
    ///
    /// let (clock, mock) = Clock::mock();
    /// let limiter = RateLimiter::builder(Quota::per_second(1)?).clock(clock).build();
    /// assert!(limiter.check().is_allowed());
    /// assert!(!limiter.check().is_allowed());
    /// mock.increment(Duration::from_secs(1));
    /// assert!(limiter.check().is_allowed());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn clock(mut self, clock: quanta::Clock) -> Builder {
        self.time = Some(Time::new(clock));
        self
    }

    /// Read a [`CoarseClock`] instead of the clock: one atomic load per check
    /// instead of a clock read, for a window bound of `burst + (W + d) / T`
    /// with `d` the coarse clock's staleness (see [`CoarseClock`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_ratelimit::{quanta::Clock, CoarseClock, Quota, RateLimiter};
    ///
    /// let (mock_clock, mock) = Clock::mock();
    /// let coarse = CoarseClock::manual(mock_clock); // moves on `tick` only
    /// let limiter = RateLimiter::builder(Quota::per_second(1)?).coarse_clock(&coarse).build();
    /// assert!(limiter.check().is_allowed());
    /// mock.increment(Duration::from_secs(1));
    /// assert!(!limiter.check().is_allowed()); // the coarse time is stale
    /// coarse.tick();
    /// assert!(limiter.check().is_allowed());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn coarse_clock(mut self, clock: &CoarseClock) -> Builder {
        self.time = Some(Time::coarse(clock.clone()));
        self
    }

    /// Start in shadow mode (see [`RateLimiter::set_shadow`]).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use prodkit_ratelimit::{quanta::Clock, Quota, RateLimiter};
    /// # let (clock, mock) = Clock::mock();
    /// let limiter = RateLimiter::builder(Quota::per_hour(1)?).clock(clock).shadow(true).build();
    /// assert!(limiter.is_shadow());
    /// assert!(limiter.check().is_allowed());
    /// assert!(limiter.check().is_allowed()); // over the quota, but only counted
    /// assert_eq!(limiter.stats().shadow_denied, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn shadow(mut self, shadow: bool) -> Builder {
        self.shadow = shadow;
        self
    }

    /// The limiter, with a full bucket.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use prodkit_ratelimit::{quanta::Clock, Quota, RateLimiter};
    /// # let (clock, mock) = Clock::mock();
    /// let limiter = RateLimiter::builder(Quota::per_second(5)?).clock(clock).build();
    /// let full = limiter.check_n(0)?; // a look, consuming nothing
    /// assert_eq!((full.remaining(), full.reset()), (5, Duration::ZERO));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn build(self) -> RateLimiter {
        RateLimiter {
            tat: CachePadded::new(AtomicU64::new(0)),
            params: ParamCell::new(self.quota, self.shadow),
            time: self.time.unwrap_or_else(|| Time::new(quanta::Clock::new())),
            counters: Counters::new(),
        }
    }
}

impl RateLimiter {
    /// A limiter enforcing `quota`, with a full bucket.
    ///
    /// ```
    /// use prodkit_ratelimit::{Quota, RateLimiter};
    ///
    /// let quota = Quota::per_hour(3)?;
    /// let limiter = RateLimiter::new(quota);
    /// assert_eq!(limiter.quota(), quota);
    /// assert!(limiter.check_n(3)?.is_allowed());
    /// assert!(!limiter.check().is_allowed());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(quota: Quota) -> RateLimiter {
        RateLimiter::builder(quota).build()
    }

    /// A limiter with options: the clock and shadow mode.
    ///
    /// ```
    /// use prodkit_ratelimit::{quanta::Clock, Quota, RateLimiter};
    ///
    /// let (clock, _mock) = Clock::mock();
    /// let limiter = RateLimiter::builder(Quota::per_second(10)?)
    ///     .clock(clock)
    ///     .shadow(true)
    ///     .build();
    /// assert!(limiter.is_shadow());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn builder(quota: Quota) -> Builder {
        Builder {
            quota,
            time: None,
            shadow: false,
        }
    }

    /// Checks one request: admitted (and counted against the quota) or not.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use prodkit_ratelimit::{quanta::Clock, Quota, RateLimiter};
    /// # let (clock, mock) = Clock::mock();
    /// let limiter = RateLimiter::builder(Quota::per_second(2)?).clock(clock).build();
    /// assert!(limiter.check().is_allowed());
    /// assert!(limiter.check().is_allowed());
    /// let refused = limiter.check();
    /// assert!(!refused.is_allowed());
    /// assert_eq!(refused.retry_after(), Some(Duration::from_millis(500)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn check(&self) -> Decision {
        match self.decide(1, self.time.now(), Tally::All) {
            Ok(decision) => decision,
            // The burst is at least 1.
            Err(_) => unreachable!("a quota's burst is at least one"),
        }
    }

    /// Checks a request of `n` cells, all or nothing: either all `n` are admitted
    /// or none is consumed. `n = 0` is a free look at the state: it consumes
    /// and counts nothing, and says whether a request could be admitted now,
    /// so it reads as refused while the limiter owes time beyond the burst (after
    /// a quota cut to a smaller burst, or for a time `n = 0` is asked about
    /// that is earlier than one the limiter has already seen).
    ///
    /// ```
    /// use prodkit_ratelimit::{quanta::Clock, InsufficientCapacity, Quota, RateLimiter};
    ///
    /// let (clock, _mock) = Clock::mock();
    /// let limiter = RateLimiter::builder(Quota::per_second(5)?).clock(clock).build();
    /// assert_eq!(limiter.check_n(3)?.remaining(), 2);
    /// // 3 more do not fit: none is consumed.
    /// assert!(!limiter.check_n(3)?.is_allowed());
    /// assert_eq!(limiter.check_n(0)?.remaining(), 2);
    ///
    /// let err = limiter.check_n(6).unwrap_err();
    /// assert_eq!(err, InsufficientCapacity { requested: 6, burst: 5 });
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`InsufficientCapacity`] when `n` is above the burst: such a request could
    /// never be admitted. It consumed nothing.
    #[inline]
    pub fn check_n(&self, n: u32) -> Result<Decision, InsufficientCapacity> {
        self.decide(n, self.time.now(), Tally::All)
    }

    /// As [`check`](RateLimiter::check) at `now`, for a caller that already
    /// holds a timestamp of the limiter's clock (`clock.now()` or
    /// `clock.recent()` of the `quanta::Clock` it was built with): the check
    /// reads no clock. A `now` earlier than a time the limiter has seen is
    /// stricter, never looser; a `now` from another clock shifts the window
    /// bound by the two clocks' difference (see [`CoarseClock`]).
    ///
    /// ```
    /// use prodkit_ratelimit::{quanta::Clock, Quota, RateLimiter};
    ///
    /// let clock = Clock::new();
    /// let (api, db) = (
    ///     RateLimiter::builder(Quota::per_second(100)?).clock(clock.clone()).build(),
    ///     RateLimiter::builder(Quota::per_second(10)?).clock(clock.clone()).build(),
    /// );
    /// // One clock read for both decisions.
    /// let now = clock.now();
    /// assert!(api.check_at(now).is_allowed() && db.check_at(now).is_allowed());
    /// # Ok::<(), prodkit_ratelimit::ConfigError>(())
    /// ```
    #[inline]
    pub fn check_at(&self, now: quanta::Instant) -> Decision {
        match self.decide(1, self.time.at(now), Tally::All) {
            Ok(decision) => decision,
            Err(_) => unreachable!("a quota's burst is at least one"),
        }
    }

    /// As [`check_n`](RateLimiter::check_n) at `now` (see [`check_at`](RateLimiter::check_at)).
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_ratelimit::{quanta::Clock, Quota, RateLimiter};
    ///
    /// let (clock, mock) = Clock::mock();
    /// let limiter = RateLimiter::builder(Quota::per_second(4)?).clock(clock.clone()).build();
    /// let arrived = clock.now();
    /// mock.increment(Duration::from_millis(100)); // handled a little later
    /// // Decided at the arrival time: the bucket is full again 1 s after it.
    /// assert_eq!(limiter.check_n_at(4, arrived)?.reset(), Duration::from_secs(1));
    /// assert_eq!(limiter.check().retry_after(), Some(Duration::from_millis(150)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`InsufficientCapacity`] when `n` is above the burst.
    #[inline]
    pub fn check_n_at(
        &self,
        n: u32,
        now: quanta::Instant,
    ) -> Result<Decision, InsufficientCapacity> {
        self.decide(n, self.time.at(now), Tally::All)
    }

    /// Blocks until one request is admitted. Returns at once, consuming nothing,
    /// when it could not be admitted within `timeout`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_ratelimit::{quanta::Clock, Quota, RateLimiter, WaitError};
    ///
    /// // One request every 5 ms: the second waits (sleeps) about 5 ms.
    /// let limiter = RateLimiter::new(Quota::every(Duration::from_millis(5))?);
    /// assert!(limiter.check().is_allowed());
    /// assert!(limiter.wait(Duration::from_secs(1))?.is_allowed());
    ///
    /// // A mock clock that stands still: the next cell is a full hour away.
    /// let (clock, _mock) = Clock::mock();
    /// let hourly = RateLimiter::builder(Quota::per_hour(1)?).clock(clock).build();
    /// assert!(hourly.check().is_allowed());
    /// let err = hourly.wait(Duration::from_millis(10)).unwrap_err();
    /// assert_eq!(err, WaitError::Timeout { retry_after: Duration::from_secs(3600) });
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`WaitError::Timeout`] with the wait the request would need.
    pub fn wait(&self, timeout: Duration) -> Result<Decision, WaitError> {
        self.wait_n(1, timeout)
    }

    /// As [`wait`](RateLimiter::wait) for `n` cells at once.
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_ratelimit::{Quota, RateLimiter, WaitError};
    ///
    /// // One cell every 5 ms, up to 4 at once.
    /// let limiter = RateLimiter::new(Quota::per_second(200)?.with_burst(4)?);
    /// assert!(limiter.check_n(4)?.is_allowed());
    /// // Two cells come back within about 10 ms.
    /// assert!(limiter.wait_n(2, Duration::from_secs(1))?.is_allowed());
    ///
    /// let err = limiter.wait_n(5, Duration::from_secs(1)).unwrap_err();
    /// assert!(matches!(err, WaitError::InsufficientCapacity(_)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`WaitError::Timeout`], or [`WaitError::InsufficientCapacity`] when `n` is
    /// above the burst.
    pub fn wait_n(&self, n: u32, timeout: Duration) -> Result<Decision, WaitError> {
        self.wait_inner(n, wait::deadline(timeout))
    }

    /// As [`wait`](RateLimiter::wait) with a deadline instead of a timeout.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use prodkit_ratelimit::{quanta::Clock, Quota, RateLimiter, WaitError};
    ///
    /// let (clock, _mock) = Clock::mock();
    /// let limiter = RateLimiter::builder(Quota::per_second(1)?).clock(clock).build();
    /// // A full bucket: admitted at once, whatever the deadline.
    /// assert!(limiter.wait_until(Instant::now())?.is_allowed());
    /// // The next cell is 1 s away, after this deadline.
    /// let err = limiter.wait_until(Instant::now() + Duration::from_millis(10)).unwrap_err();
    /// assert_eq!(err, WaitError::Timeout { retry_after: Duration::from_secs(1) });
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`WaitError::Timeout`] when the request would not be admitted by
    /// `deadline`.
    pub fn wait_until(&self, deadline: Instant) -> Result<Decision, WaitError> {
        self.wait_n_until(1, deadline)
    }

    /// As [`wait_n`](RateLimiter::wait_n) with a deadline.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use prodkit_ratelimit::{quanta::Clock, Quota, RateLimiter, WaitError};
    ///
    /// let (clock, _mock) = Clock::mock();
    /// let limiter = RateLimiter::builder(Quota::per_second(4)?).clock(clock).build();
    /// let deadline = Instant::now() + Duration::from_millis(10);
    /// assert!(limiter.wait_n_until(4, deadline)?.is_allowed());
    /// let err = limiter.wait_n_until(2, deadline).unwrap_err();
    /// assert_eq!(err, WaitError::Timeout { retry_after: Duration::from_millis(500) });
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`WaitError::Timeout`], or [`WaitError::InsufficientCapacity`] when `n` is
    /// above the burst.
    pub fn wait_n_until(&self, n: u32, deadline: Instant) -> Result<Decision, WaitError> {
        self.wait_inner(n, Some(deadline))
    }

    /// Waits on tokio's timer until one request is admitted. Dropping the future
    /// consumes nothing, so `tokio::time::timeout` bounds the wait.
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_ratelimit::{Quota, RateLimiter};
    ///
    /// let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build()?;
    /// // One request every 5 ms: the second waits about 5 ms on tokio's timer.
    /// let limiter = RateLimiter::new(Quota::every(Duration::from_millis(5))?);
    /// runtime.block_on(async {
    ///     assert!(limiter.until_ready().await.is_allowed());
    ///     assert!(limiter.until_ready().await.is_allowed());
    /// });
    /// assert_eq!(limiter.stats().allowed, 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "tokio")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
    pub async fn until_ready(&self) -> Decision {
        match self.until_ready_n(1).await {
            Ok(decision) => decision,
            Err(_) => unreachable!("a quota's burst is at least one"),
        }
    }

    /// As [`until_ready`](RateLimiter::until_ready) for `n` cells at once.
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_ratelimit::{Quota, RateLimiter};
    ///
    /// let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build()?;
    /// let limiter = RateLimiter::new(Quota::per_hour(2)?);
    /// runtime.block_on(async {
    ///     assert!(limiter.until_ready_n(1).await?.is_allowed());
    ///     // Two cells would take half an hour: give up after 10 ms.
    ///     let wait = limiter.until_ready_n(2);
    ///     assert!(tokio::time::timeout(Duration::from_millis(10), wait).await.is_err());
    ///     // The dropped future consumed nothing: the cell left is still there.
    ///     assert!(limiter.check().is_allowed());
    ///     assert!(limiter.until_ready_n(3).await.is_err()); // above the burst
    ///     Ok::<(), prodkit_ratelimit::InsufficientCapacity>(())
    /// })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`InsufficientCapacity`] when `n` is above the burst.
    #[cfg(feature = "tokio")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
    pub async fn until_ready_n(&self, n: u32) -> Result<Decision, InsufficientCapacity> {
        wait::until_ready(&self.time, |now| self.decide(n, now, Tally::Admissions)).await
    }

    /// Replaces the quota. The state is kept as time owed: a bucket that would be
    /// full in 2 s is still full in 2 s, whatever the new interval. Checks racing
    /// with the change use either the old or the new quota, never a mix.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use prodkit_ratelimit::{quanta::Clock, Quota, RateLimiter};
    /// # let (clock, mock) = Clock::mock();
    /// let limiter = RateLimiter::builder(Quota::per_second(10)?).clock(clock).build();
    /// assert_eq!(limiter.check_n(10)?.reset(), Duration::from_secs(1));
    ///
    /// // Slow down to 2 per second: the second owed is kept.
    /// limiter.set_quota(Quota::per_second(2)?);
    /// let look = limiter.check_n(0)?;
    /// assert_eq!((look.limit(), look.reset()), (2, Duration::from_secs(1)));
    /// assert!(!limiter.check().is_allowed());
    /// mock.increment(Duration::from_millis(500));
    /// assert!(limiter.check().is_allowed());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_quota(&self, quota: Quota) {
        self.params.set_quota(quota);
    }

    /// The quota in force.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use prodkit_ratelimit::{quanta::Clock, Quota, RateLimiter};
    /// # let (clock, mock) = Clock::mock();
    /// let quota = Quota::per_second(10)?;
    /// let limiter = RateLimiter::builder(quota).clock(clock).build();
    /// assert_eq!(limiter.quota(), quota);
    /// limiter.set_quota(quota.with_burst(1)?);
    /// assert_eq!(limiter.quota().burst(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn quota(&self) -> Quota {
        self.params.quota()
    }

    /// In shadow mode every request is allowed; the limiter still decides and
    /// keeps its state exactly as if it enforced (refused requests consume
    /// nothing), and counts what it would have refused in
    /// [`Stats::shadow_denied`]. Use it to try a quota on live traffic. A
    /// request above the burst is still an error ([`InsufficientCapacity`]):
    /// it could never be admitted, so it is no decision to shadow.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use prodkit_ratelimit::{quanta::Clock, Quota, RateLimiter};
    /// # let (clock, mock) = Clock::mock();
    /// let limiter = RateLimiter::builder(Quota::per_hour(1)?).clock(clock).build();
    /// assert!(limiter.check().is_allowed());
    ///
    /// limiter.set_shadow(true);
    /// let over = limiter.check();
    /// assert!(over.is_allowed() && !over.is_conforming());
    ///
    /// limiter.set_shadow(false);
    /// assert!(!limiter.check().is_allowed());
    /// let stats = limiter.stats();
    /// assert_eq!((stats.allowed, stats.shadow_denied, stats.denied), (1, 1, 1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_shadow(&self, shadow: bool) {
        self.params.set_shadow(shadow);
    }

    /// Whether the limiter is in shadow mode.
    ///
    /// ```
    /// # use prodkit_ratelimit::{Quota, RateLimiter};
    /// let limiter = RateLimiter::new(Quota::per_second(10)?);
    /// assert!(!limiter.is_shadow());
    /// limiter.set_shadow(true);
    /// assert!(limiter.is_shadow());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_shadow(&self) -> bool {
        self.params.load().shadow
    }

    /// Decisions so far.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use prodkit_ratelimit::{quanta::Clock, Quota, RateLimiter};
    /// # let (clock, mock) = Clock::mock();
    /// let limiter = RateLimiter::builder(Quota::per_second(2)?).clock(clock).build();
    /// assert!(limiter.check_n(2)?.is_allowed());
    /// assert!(!limiter.check().is_allowed());
    /// assert!(!limiter.check_n(2)?.is_allowed()); // 2 cells refused
    /// let _ = limiter.check_n(0)?; // a look: not counted
    /// let stats = limiter.stats();
    /// assert_eq!((stats.allowed, stats.denied, stats.shadow_denied), (2, 3, 0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stats(&self) -> Stats {
        self.counters.totals()
    }

    /// A wait for `n` cells until `deadline`, counted once.
    fn wait_inner(&self, n: u32, deadline: Option<Instant>) -> Result<Decision, WaitError> {
        wait::blocking(
            &self.time,
            deadline,
            |now| self.decide(n, now, Tally::Admissions),
            || self.counters.count(false, false, n),
        )
    }

    #[inline]
    fn decide(&self, n: u32, now: u64, tally: Tally) -> Result<Decision, InsufficientCapacity> {
        let p = self.params.load();
        if n > p.burst {
            return Err(InsufficientCapacity {
                requested: n,
                burst: p.burst,
            });
        }
        let cost = p.cost(n);
        let mut tat = self.tat.load(Ordering::Relaxed);
        let decision = loop {
            match gcra::admit(tat, now, cost, p.tau) {
                Some(new_tat) if n == 0 => break gcra::conforming(&p, new_tat, now),
                Some(new_tat) => {
                    match self.tat.compare_exchange_weak(
                        tat,
                        new_tat,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    ) {
                        Ok(_) => break gcra::conforming(&p, new_tat, now),
                        Err(current) => tat = current,
                    }
                }
                // A refusal writes nothing, so refusals by many threads share the line.
                None => break gcra::nonconforming(&p, tat, now, cost),
            }
        };
        if n > 0 && tally.counts(decision.allowed) {
            self.counters
                .count(decision.allowed, decision.conforming, n);
        }
        Ok(decision)
    }
}

impl fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter")
            .field("quota", &self.quota())
            .field("shadow", &self.is_shadow())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}
