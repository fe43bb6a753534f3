//! The one time seam: a limiter reads either a `quanta::Clock` (the TSC where it
//! is reliable, the OS monotonic clock elsewhere, a mock in tests) or a
//! [`CoarseClock`] that a thread of its own refreshes, as integer nanoseconds
//! since the limiter was built.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use crate::error::ClockError;

/// A limiter's clock, with the limiter's epoch.
#[derive(Clone, Debug)]
pub(crate) struct Time {
    source: Source,
    /// The instant of the epoch, for [`Time::at`].
    epoch_instant: quanta::Instant,
}

#[derive(Clone, Debug)]
enum Source {
    Precise {
        clock: quanta::Clock,
        epoch: u64,
    },
    Coarse {
        /// The published time, read directly (one pointer from the limiter).
        shared: Arc<Shared>,
        epoch: u64,
        /// Keeps the thread running while the limiter lives.
        _owner: CoarseClock,
    },
}

impl Time {
    pub(crate) fn new(clock: quanta::Clock) -> Time {
        let epoch = clock.raw();
        Time {
            epoch_instant: clock.scaled(epoch),
            source: Source::Precise { clock, epoch },
        }
    }

    pub(crate) fn coarse(coarse: CoarseClock) -> Time {
        let epoch = coarse.0.shared.now.load(Ordering::Relaxed);
        Time {
            epoch_instant: coarse.0.epoch_instant + Duration::from_nanos(epoch),
            source: Source::Coarse {
                shared: Arc::clone(&coarse.0.shared),
                epoch,
                _owner: coarse,
            },
        }
    }

    /// Nanoseconds since the epoch; 0 if the clock reads earlier than the epoch.
    #[inline]
    pub(crate) fn now(&self) -> u64 {
        match &self.source {
            Source::Precise { clock, epoch } => clock.delta_as_nanos(*epoch, clock.raw()),
            Source::Coarse { shared, epoch, .. } => {
                shared.now.load(Ordering::Relaxed).saturating_sub(*epoch)
            }
        }
    }

    /// `instant` as nanoseconds since the epoch; 0 before it.
    #[inline]
    pub(crate) fn at(&self, instant: quanta::Instant) -> u64 {
        // `Duration` from u64 nanoseconds and back, in u64: the compiler folds
        // the division and the multiplication away.
        let since = instant.saturating_duration_since(self.epoch_instant);
        since.as_secs() * 1_000_000_000 + u64::from(since.subsec_nanos())
    }
}

/// A clock that reads the time once per `interval` on a thread of its own, so
/// that a check reads one atomic instead of the clock: governor's
/// `QuantaUpkeepClock` idea, for callers who want its speed and accept its
/// looseness. Opt in with [`Builder::coarse_clock`](crate::Builder::coarse_clock)
/// or [`KeyedBuilder::coarse_clock`](crate::KeyedBuilder::coarse_clock).
///
/// **What it costs.** The time a limiter reads lags the real time by at most
/// the staleness `d`: the interval plus however late the thread is scheduled.
/// A stale clock only ever reads early, so in any window of length `W` of real
/// time a limiter on it admits at most `burst + floor((W + d) / T)` cells
/// instead of `burst + floor(W / T)`: up to `d / T` more at the start of a
/// window, never more over the long run. With `d` = 1 ms and 1000 requests
/// per second that is one request more in a window.
///
/// The handle is cheap to clone and share between limiters; the thread ends,
/// and is joined, when the last handle (a limiter holds one) is dropped.
///
/// ```
/// use std::time::Duration;
/// use prodkit_ratelimit::{CoarseClock, Quota, RateLimiter};
///
/// // Refreshed every millisecond: d is about 1 ms plus scheduling delay.
/// let clock = CoarseClock::start(Duration::from_millis(1))?;
/// let limiter = RateLimiter::builder(Quota::per_second(1000)?)
///     .coarse_clock(&clock)
///     .build();
/// assert!(limiter.check().is_allowed());
/// drop(clock); // the limiter keeps the thread running while it lives
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct CoarseClock(Arc<Owner>);

/// What the thread shares with the handles.
#[derive(Debug)]
struct Shared {
    /// Nanoseconds since the coarse clock's epoch, at its last refresh.
    now: AtomicU64,
    stop: Mutex<bool>,
    wake: Condvar,
}

struct Owner {
    shared: Arc<Shared>,
    clock: quanta::Clock,
    epoch: u64,
    epoch_instant: quanta::Instant,
    interval: Option<Duration>,
    thread: Option<JoinHandle<()>>,
}

impl CoarseClock {
    /// Starts a thread that refreshes the time every `interval`, from
    /// `quanta::Clock::new()`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_ratelimit::{ClockError, CoarseClock, Quota, RateLimiter};
    ///
    /// let clock = CoarseClock::start(Duration::from_millis(1))?;
    /// assert_eq!(clock.interval(), Some(Duration::from_millis(1)));
    /// let limiter = RateLimiter::builder(Quota::per_hour(1)?).coarse_clock(&clock).build();
    /// assert!(limiter.check().is_allowed());
    /// assert!(!limiter.check().is_allowed());
    /// drop((limiter, clock)); // the last handle stops and joins the thread
    ///
    /// assert!(matches!(CoarseClock::start(Duration::ZERO), Err(ClockError::ZeroInterval)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`ClockError::ZeroInterval`] for a zero interval;
    /// [`ClockError::Spawn`] when the thread cannot start.
    pub fn start(interval: Duration) -> Result<CoarseClock, ClockError> {
        CoarseClock::start_with(interval, quanta::Clock::new())
    }

    /// As [`start`](CoarseClock::start), reading `clock`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_ratelimit::{quanta::Clock, CoarseClock, Quota, RateLimiter};
    ///
    /// // The thread refreshes from a mock clock, which stands still until moved.
    /// let (mock_clock, _mock) = Clock::mock();
    /// let clock = CoarseClock::start_with(Duration::from_millis(1), mock_clock)?;
    /// let limiter = RateLimiter::builder(Quota::per_second(2)?).coarse_clock(&clock).build();
    /// assert!(limiter.check_n(2)?.is_allowed());
    /// // However long the thread runs, the limiter's time is the mock's.
    /// let refused = limiter.check();
    /// assert_eq!(refused.retry_after(), Some(Duration::from_millis(500)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`start`](CoarseClock::start).
    pub fn start_with(interval: Duration, clock: quanta::Clock) -> Result<CoarseClock, ClockError> {
        if interval.is_zero() {
            return Err(ClockError::ZeroInterval);
        }
        let mut owner = Owner::new(clock, Some(interval));
        let (shared, clock, epoch) = (Arc::clone(&owner.shared), owner.clock.clone(), owner.epoch);
        let thread = std::thread::Builder::new()
            .name("prodkit-ratelimit-clock".into())
            .spawn(move || {
                let mut stop = shared.stop.lock();
                while !*stop {
                    shared
                        .now
                        .store(clock.delta_as_nanos(epoch, clock.raw()), Ordering::Relaxed);
                    let _ = shared.wake.wait_for(&mut stop, interval);
                }
            })
            .map_err(ClockError::Spawn)?;
        owner.thread = Some(thread);
        Ok(CoarseClock(Arc::new(owner)))
    }

    /// A coarse clock without a thread: it moves only when [`tick`](CoarseClock::tick)
    /// is called. For tests, which drive staleness exactly.
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_ratelimit::{quanta::Clock, CoarseClock, Quota, RateLimiter};
    ///
    /// let (mock_clock, mock) = Clock::mock();
    /// let clock = CoarseClock::manual(mock_clock);
    /// assert_eq!(clock.interval(), None);
    /// let limiter = RateLimiter::builder(Quota::per_second(1)?).coarse_clock(&clock).build();
    /// assert!(limiter.check().is_allowed());
    ///
    /// mock.increment(Duration::from_secs(1));
    /// // Not yet published: the limiter still reads the old time.
    /// assert!(!limiter.check().is_allowed());
    /// clock.tick();
    /// assert!(limiter.check().is_allowed());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn manual(clock: quanta::Clock) -> CoarseClock {
        CoarseClock(Arc::new(Owner::new(clock, None)))
    }

    /// Reads the underlying clock now and publishes its time, as the thread
    /// does every interval.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use prodkit_ratelimit::{quanta::Clock, CoarseClock, Quota, RateLimiter};
    /// let (mock_clock, mock) = Clock::mock();
    /// let clock = CoarseClock::manual(mock_clock);
    /// let limiter = RateLimiter::builder(Quota::per_second(10)?).coarse_clock(&clock).build();
    /// assert_eq!(limiter.check_n(10)?.reset(), Duration::from_secs(1));
    ///
    /// mock.increment(Duration::from_millis(400));
    /// clock.tick();
    /// assert_eq!(limiter.check_n(0)?.reset(), Duration::from_millis(600));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn tick(&self) {
        let o = &self.0;
        o.shared.now.store(
            o.clock.delta_as_nanos(o.epoch, o.clock.raw()),
            Ordering::Relaxed,
        );
    }

    /// The refresh interval; `None` for a [`manual`](CoarseClock::manual) clock.
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_ratelimit::{quanta::Clock, CoarseClock};
    ///
    /// let started = CoarseClock::start(Duration::from_millis(5))?;
    /// assert_eq!(started.interval(), Some(Duration::from_millis(5)));
    /// drop(started); // stops and joins its thread
    ///
    /// assert_eq!(CoarseClock::manual(Clock::new()).interval(), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn interval(&self) -> Option<Duration> {
        self.0.interval
    }
}

impl Owner {
    fn new(clock: quanta::Clock, interval: Option<Duration>) -> Owner {
        let epoch = clock.raw();
        Owner {
            shared: Arc::new(Shared {
                now: AtomicU64::new(0),
                stop: Mutex::new(false),
                wake: Condvar::new(),
            }),
            epoch_instant: clock.scaled(epoch),
            clock,
            epoch,
            interval,
            thread: None,
        }
    }
}

impl Drop for Owner {
    /// Stops the thread and joins it: at once, not after the interval.
    fn drop(&mut self) {
        *self.shared.stop.lock() = true;
        self.shared.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            // The loop cannot panic; a join error would leave nothing to do.
            let _ = thread.join();
        }
    }
}

impl std::fmt::Debug for CoarseClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoarseClock")
            .field("interval", &self.0.interval)
            .field("now_ns", &self.0.shared.now.load(Ordering::Relaxed))
            .finish()
    }
}
