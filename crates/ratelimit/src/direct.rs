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
use crate::wait;

/// One rate limit shared by every caller: a single `AtomicU64` of state, no lock,
/// no background thread.
///
/// `RateLimiter` is `Send + Sync`; share it by reference or in an `Arc`.
pub struct RateLimiter {
    /// The theoretical arrival time, in nanoseconds since the epoch of `time`.
    tat: CachePadded<AtomicU64>,
    params: ParamCell,
    time: Time,
    counters: Counters,
}

/// Options of a [`RateLimiter`]: from [`RateLimiter::builder`].
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
    pub fn clock(mut self, clock: quanta::Clock) -> Builder {
        self.time = Some(Time::new(clock));
        self
    }

    /// Read a [`CoarseClock`] instead of the clock: one atomic load per check
    /// instead of a clock read, for a window bound of `burst + (W + d) / T`
    /// with `d` the coarse clock's staleness (see [`CoarseClock`]).
    pub fn coarse_clock(mut self, clock: &CoarseClock) -> Builder {
        self.time = Some(Time::coarse(clock.clone()));
        self
    }

    /// Start in shadow mode (see [`RateLimiter::set_shadow`]).
    pub fn shadow(mut self, shadow: bool) -> Builder {
        self.shadow = shadow;
        self
    }

    /// The limiter, with a full bucket.
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
    pub fn new(quota: Quota) -> RateLimiter {
        RateLimiter::builder(quota).build()
    }

    /// A limiter with options: the clock and shadow mode.
    pub fn builder(quota: Quota) -> Builder {
        Builder {
            quota,
            time: None,
            shadow: false,
        }
    }

    /// Checks one request: admitted (and counted against the quota) or not.
    #[inline]
    pub fn check(&self) -> Decision {
        match self.decide(1, self.time.now()) {
            Ok(decision) => decision,
            // The burst is at least 1.
            Err(_) => unreachable!("a quota's burst is at least one"),
        }
    }

    /// Checks a request of `n` cells, all or nothing: either all `n` are admitted
    /// or none is consumed. `n = 0` is a free look at the state.
    ///
    /// # Errors
    /// [`InsufficientCapacity`] when `n` is above the burst: such a request could
    /// never be admitted. It consumed nothing.
    #[inline]
    pub fn check_n(&self, n: u32) -> Result<Decision, InsufficientCapacity> {
        self.decide(n, self.time.now())
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
        match self.decide(1, self.time.at(now)) {
            Ok(decision) => decision,
            Err(_) => unreachable!("a quota's burst is at least one"),
        }
    }

    /// As [`check_n`](RateLimiter::check_n) at `now` (see [`check_at`](RateLimiter::check_at)).
    ///
    /// # Errors
    /// [`InsufficientCapacity`] when `n` is above the burst.
    #[inline]
    pub fn check_n_at(
        &self,
        n: u32,
        now: quanta::Instant,
    ) -> Result<Decision, InsufficientCapacity> {
        self.decide(n, self.time.at(now))
    }

    /// Blocks until one request is admitted. Returns at once, consuming nothing,
    /// when it could not be admitted within `timeout`.
    ///
    /// # Errors
    /// [`WaitError::Timeout`] with the wait the request would need.
    pub fn wait(&self, timeout: Duration) -> Result<Decision, WaitError> {
        self.wait_n(1, timeout)
    }

    /// As [`wait`](RateLimiter::wait) for `n` cells at once.
    ///
    /// # Errors
    /// [`WaitError::Timeout`], or [`WaitError::InsufficientCapacity`] when `n` is
    /// above the burst.
    pub fn wait_n(&self, n: u32, timeout: Duration) -> Result<Decision, WaitError> {
        wait::blocking(&self.time, wait::deadline(timeout), |now| {
            self.decide(n, now)
        })
    }

    /// As [`wait`](RateLimiter::wait) with a deadline instead of a timeout.
    ///
    /// # Errors
    /// [`WaitError::Timeout`] when the request would not be admitted by
    /// `deadline`.
    pub fn wait_until(&self, deadline: Instant) -> Result<Decision, WaitError> {
        self.wait_n_until(1, deadline)
    }

    /// As [`wait_n`](RateLimiter::wait_n) with a deadline.
    ///
    /// # Errors
    /// [`WaitError::Timeout`], or [`WaitError::InsufficientCapacity`] when `n` is
    /// above the burst.
    pub fn wait_n_until(&self, n: u32, deadline: Instant) -> Result<Decision, WaitError> {
        wait::blocking(&self.time, Some(deadline), |now| self.decide(n, now))
    }

    /// Waits on tokio's timer until one request is admitted. Dropping the future
    /// consumes nothing, so `tokio::time::timeout` bounds the wait.
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
    /// # Errors
    /// [`InsufficientCapacity`] when `n` is above the burst.
    #[cfg(feature = "tokio")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
    pub async fn until_ready_n(&self, n: u32) -> Result<Decision, InsufficientCapacity> {
        wait::until_ready(&self.time, |now| self.decide(n, now)).await
    }

    /// Replaces the quota. The state is kept as time owed: a bucket that would be
    /// full in 2 s is still full in 2 s, whatever the new interval. Checks racing
    /// with the change use either the old or the new quota, never a mix.
    pub fn set_quota(&self, quota: Quota) {
        self.params.set_quota(quota);
    }

    /// The quota in force.
    pub fn quota(&self) -> Quota {
        self.params.quota()
    }

    /// In shadow mode every request is allowed; the limiter still decides and
    /// keeps its state exactly as if it enforced (refused requests consume
    /// nothing), and counts what it would have refused in
    /// [`Stats::shadow_denied`]. Use it to try a quota on live traffic.
    pub fn set_shadow(&self, shadow: bool) {
        self.params.set_shadow(shadow);
    }

    /// Whether the limiter is in shadow mode.
    pub fn is_shadow(&self) -> bool {
        self.params.load().shadow
    }

    /// Decisions so far.
    pub fn stats(&self) -> Stats {
        self.counters.totals()
    }

    #[inline]
    fn decide(&self, n: u32, now: u64) -> Result<Decision, InsufficientCapacity> {
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
        if n > 0 {
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
