mod shard;
mod sketch;
mod table;

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::marker::PhantomData;
use std::time::Duration;

use std::time::Instant;

use crossbeam_utils::CachePadded;

use crate::clock::{CoarseClock, Time};
use crate::decision::Decision;
use crate::error::{ConfigError, InsufficientCapacity, WaitError};
use crate::gcra::ParamCell;
use crate::quota::Quota;
use crate::stats::KeyedStats;
use crate::sync::{AtomicUsize, Mutex, Ordering};
use crate::wait::{self, Tally};
use shard::{Bound, Shard};
use table::EMPTY;

/// The largest `max_keys` accepted (2^36 keys, about 1.3 TiB of state).
pub const MAX_KEYS_LIMIT: usize = 1 << 36;

/// One rate limit per key (a client, an IP address, an API token), each decided
/// exactly as a separate [`RateLimiter`](crate::RateLimiter) with the same quota
/// would decide, in at most `max_keys` keys of memory.
///
/// Keys are not stored: each is identified by its 64-bit hash under the limiter's
/// hasher, 16 bytes of state per key whatever the key type. With the default
/// [`RandomState`] (SipHash with a random key per limiter) two keys collide with
/// probability 2^-64 per pair and a client cannot aim at a collision; a collision
/// would make two keys share one budget, which can refuse early but never admit
/// more than one key's quota. With a hasher that is not keyed, clients that choose
/// their keys could make their key share a victim's budget.
///
/// When a new key arrives and its shard is full, the limiter drops a key that is
/// idle (its bucket full again, so forgetting it changes no decision); only when
/// no key of the shard is idle does it drop the key owing the least time, and
/// counts that in [`KeyedStats::evictions_active`].
///
/// ```
/// use std::time::Duration;
/// use prodkit_ratelimit::{quanta::Clock, KeyedRateLimiter, Quota};
///
/// let (clock, mock) = Clock::mock();
/// // 2 requests per second per client, at most 10 000 clients held.
/// let limiter: KeyedRateLimiter<str> =
///     KeyedRateLimiter::builder(Quota::per_second(2)?, 10_000).clock(clock.clone()).build()?;
/// assert!(limiter.check_n("alice", 2)?.is_allowed());
/// let refused = limiter.check("alice");
/// assert_eq!(refused.retry_after(), Some(Duration::from_millis(500)));
/// // Each key has its own budget.
/// assert!(limiter.check("bob").is_allowed());
/// mock.increment(Duration::from_millis(500));
/// assert!(limiter.check("alice").is_allowed());
///
/// // Memory has a hard bound: a new key takes the place of an idle one.
/// let small: KeyedRateLimiter<u64> =
///     KeyedRateLimiter::builder(Quota::per_second(2)?, 100).clock(clock).build()?;
/// for client in 0..1_000 {
///     assert!(small.check(&client).is_allowed());
///     mock.increment(Duration::from_millis(500));
/// }
/// assert_eq!(small.len(), 100);
/// assert_eq!(small.stats().evictions, 900);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct KeyedRateLimiter<K: ?Sized, S = RandomState> {
    shards: Box<[CachePadded<Mutex<Shard>>]>,
    shard_bits: u32,
    max_keys: usize,
    /// Keys held, over all shards: at most `max_keys`.
    held: CachePadded<AtomicUsize>,
    hasher: S,
    params: ParamCell,
    time: Time,
    _key: PhantomData<fn(&K)>,
}

/// Options of a [`KeyedRateLimiter`]: from [`KeyedRateLimiter::builder`].
///
/// ```
/// use std::time::Duration;
/// use prodkit_ratelimit::{quanta::Clock, KeyedRateLimiter, Quota};
///
/// let (clock, mock) = Clock::mock();
/// let limiter: KeyedRateLimiter<u64> = KeyedRateLimiter::builder(Quota::per_second(1)?, 4096)
///     .clock(clock)
///     .shards(4)
///     .shadow(false)
///     .build()?;
/// assert_eq!(limiter.shard_count(), 4);
/// assert!(limiter.check(&7).is_allowed());
/// assert!(!limiter.check(&7).is_allowed());
/// mock.increment(Duration::from_secs(1));
/// assert!(limiter.check(&7).is_allowed());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "a builder does nothing until build() is called"]
pub struct KeyedBuilder<K: ?Sized, S = RandomState> {
    quota: Quota,
    max_keys: usize,
    time: Option<Time>,
    shadow: bool,
    shards: Option<usize>,
    hasher: S,
    _key: PhantomData<fn(&K)>,
}

impl<K: ?Sized, S> KeyedBuilder<K, S> {
    /// The clock to read (default `quanta::Clock::new()`).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use prodkit_ratelimit::{quanta::Clock, KeyedRateLimiter, Quota};
    /// # let (clock, mock) = Clock::mock();
    /// let limiter: KeyedRateLimiter<str> =
    ///     KeyedRateLimiter::builder(Quota::per_second(2)?, 1_000).clock(clock).build()?;
    /// assert!(limiter.check_n("alice", 2)?.is_allowed());
    /// assert!(!limiter.check("alice").is_allowed());
    /// mock.increment(Duration::from_millis(500));
    /// assert!(limiter.check("alice").is_allowed());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn clock(mut self, clock: quanta::Clock) -> Self {
        self.time = Some(Time::new(clock));
        self
    }

    /// Read a [`CoarseClock`] instead of the clock (see
    /// [`Builder::coarse_clock`](crate::Builder::coarse_clock)).
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_ratelimit::{quanta::Clock, CoarseClock, KeyedRateLimiter, Quota};
    ///
    /// let (mock_clock, mock) = Clock::mock();
    /// let coarse = CoarseClock::manual(mock_clock); // moves on `tick` only
    /// let limiter: KeyedRateLimiter<str> =
    ///     KeyedRateLimiter::builder(Quota::per_second(1)?, 1_000).coarse_clock(&coarse).build()?;
    /// assert!(limiter.check("alice").is_allowed());
    /// mock.increment(Duration::from_secs(1));
    /// assert!(!limiter.check("alice").is_allowed()); // the coarse time is stale
    /// coarse.tick();
    /// assert!(limiter.check("alice").is_allowed());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn coarse_clock(mut self, clock: &CoarseClock) -> Self {
        self.time = Some(Time::coarse(clock.clone()));
        self
    }

    /// Start in shadow mode (see [`KeyedRateLimiter::set_shadow`]).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use prodkit_ratelimit::{quanta::Clock, KeyedRateLimiter, Quota};
    /// # let (clock, mock) = Clock::mock();
    /// let limiter: KeyedRateLimiter<str> = KeyedRateLimiter::builder(Quota::per_hour(1)?, 1_000)
    ///     .clock(clock)
    ///     .shadow(true)
    ///     .build()?;
    /// assert!(limiter.check("alice").is_allowed());
    /// assert!(limiter.check("alice").is_allowed()); // over the quota, but only counted
    /// assert_eq!(limiter.stats().decisions.shadow_denied, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn shadow(mut self, shadow: bool) -> Self {
        self.shadow = shadow;
        self
    }

    /// The number of independently locked shards, a power of two up to 1024.
    /// `max_keys` bounds the whole limiter; each shard may hold more than an
    /// even share of it (see [`KeyedRateLimiter`]). Default: four per CPU,
    /// fewer when that would leave a shard under 1024 keys.
    ///
    /// ```
    /// use prodkit_ratelimit::{ConfigError, KeyedRateLimiter, Quota};
    ///
    /// let quota = Quota::per_second(10)?;
    /// let limiter = KeyedRateLimiter::<u64>::builder(quota, 100_000).shards(16).build()?;
    /// assert_eq!(limiter.shard_count(), 16);
    ///
    /// let err = KeyedRateLimiter::<u64>::builder(quota, 100_000).shards(3).build().unwrap_err();
    /// assert_eq!(err, ConfigError::BadShards { shards: 3 });
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = Some(shards);
        self
    }

    /// The hasher that identifies keys (default [`RandomState`]). Use a keyed
    /// hasher whenever clients choose the keys.
    ///
    /// ```
    /// use std::hash::{BuildHasherDefault, DefaultHasher};
    /// use prodkit_ratelimit::{KeyedRateLimiter, Quota};
    ///
    /// // Keys the service chooses (its own backend ids), not clients: an unkeyed
    /// // hasher is safe here.
    /// let limiter = KeyedRateLimiter::<u32>::builder(Quota::per_hour(1)?, 64)
    ///     .hasher(BuildHasherDefault::<DefaultHasher>::default())
    ///     .build()?;
    /// assert!(limiter.check(&3).is_allowed());
    /// assert!(!limiter.check(&3).is_allowed());
    /// assert!(limiter.check(&4).is_allowed());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn hasher<S2>(self, hasher: S2) -> KeyedBuilder<K, S2> {
        KeyedBuilder {
            quota: self.quota,
            max_keys: self.max_keys,
            time: self.time,
            shadow: self.shadow,
            shards: self.shards,
            hasher,
            _key: PhantomData,
        }
    }

    /// The limiter, with every key's bucket full.
    ///
    /// ```
    /// use prodkit_ratelimit::{ConfigError, KeyedRateLimiter, Quota, MAX_KEYS_LIMIT};
    ///
    /// let quota = Quota::per_second(10)?;
    /// let limiter: KeyedRateLimiter<str> = KeyedRateLimiter::builder(quota, 1_000).build()?;
    /// assert_eq!(limiter.check_n("alice", 0)?.remaining(), 10);
    ///
    /// let err = KeyedRateLimiter::<str>::builder(quota, MAX_KEYS_LIMIT + 1).build().unwrap_err();
    /// assert!(matches!(err, ConfigError::TooManyKeys { limit: MAX_KEYS_LIMIT, .. }));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`ConfigError::ZeroMaxKeys`], [`ConfigError::TooManyKeys`] above
    /// [`MAX_KEYS_LIMIT`], [`ConfigError::BadShards`].
    pub fn build(self) -> Result<KeyedRateLimiter<K, S>, ConfigError> {
        let max_keys = self.max_keys;
        if max_keys == 0 {
            return Err(ConfigError::ZeroMaxKeys);
        }
        if max_keys > MAX_KEYS_LIMIT {
            return Err(ConfigError::TooManyKeys {
                max_keys,
                limit: MAX_KEYS_LIMIT,
            });
        }
        let shards = match self.shards {
            Some(n) if n.is_power_of_two() && n <= 1024 && n <= max_keys => n,
            Some(n) => return Err(ConfigError::BadShards { shards: n }),
            None => default_shards(max_keys),
        };
        let shard_bits = shards.trailing_zeros();
        let cap = shard_cap(max_keys, shards);
        let shards = (0..shards)
            .map(|_| CachePadded::new(Mutex::new(Shard::new(cap))))
            .collect();
        Ok(KeyedRateLimiter {
            shards,
            shard_bits,
            max_keys,
            held: CachePadded::new(AtomicUsize::new(0)),
            hasher: self.hasher,
            params: ParamCell::new(self.quota, self.shadow),
            time: self.time.unwrap_or_else(|| Time::new(quanta::Clock::new())),
            _key: PhantomData,
        })
    }
}

fn default_shards(max_keys: usize) -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    let wanted = (4 * cpus).next_power_of_two().min(1024);
    let most = (max_keys / 1024).max(1);
    // The largest power of two not above `most`.
    wanted.min(1 << most.ilog2())
}

/// How many keys one of `shards` shards may hold: its even share of
/// `max_keys` plus headroom, so that the shards that hashing fills faster do
/// not evict while others have room. Keys hash to shards at random, so a
/// share `s` varies by about `sqrt(s)`; the headroom is three times that (at
/// least a sixteenth of the share), which a shard exceeds with a probability
/// of about 0.1% when the limiter is full.
fn shard_cap(max_keys: usize, shards: usize) -> usize {
    let share = max_keys.div_ceil(shards);
    let headroom = (3 * share.isqrt()).max(share / 16);
    (share + headroom).min(max_keys)
}

impl<K: ?Sized> KeyedRateLimiter<K> {
    /// A limiter enforcing `quota` per key, holding at most `max_keys` keys.
    ///
    /// ```
    /// use prodkit_ratelimit::{ConfigError, KeyedRateLimiter, Quota};
    ///
    /// let limiter: KeyedRateLimiter<str> = KeyedRateLimiter::new(Quota::per_hour(1)?, 1_000)?;
    /// assert!(limiter.check("alice").is_allowed());
    /// assert!(!limiter.check("alice").is_allowed());
    /// assert!(limiter.check("bob").is_allowed());
    ///
    /// let none = KeyedRateLimiter::<str>::new(Quota::per_hour(1)?, 0);
    /// assert_eq!(none.unwrap_err(), ConfigError::ZeroMaxKeys);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`ConfigError::ZeroMaxKeys`], [`ConfigError::TooManyKeys`].
    pub fn new(quota: Quota, max_keys: usize) -> Result<KeyedRateLimiter<K>, ConfigError> {
        KeyedRateLimiter::builder(quota, max_keys).build()
    }

    /// A limiter with options: clock, shadow mode, shards, hasher.
    ///
    /// ```
    /// use prodkit_ratelimit::{quanta::Clock, KeyedRateLimiter, Quota};
    ///
    /// let (clock, _mock) = Clock::mock();
    /// let limiter: KeyedRateLimiter<u64> = KeyedRateLimiter::builder(Quota::per_second(5)?, 4096)
    ///     .clock(clock)
    ///     .shards(4)
    ///     .build()?;
    /// assert_eq!((limiter.max_keys(), limiter.shard_count()), (4096, 4));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn builder(quota: Quota, max_keys: usize) -> KeyedBuilder<K> {
        KeyedBuilder {
            quota,
            max_keys,
            time: None,
            shadow: false,
            shards: None,
            hasher: RandomState::new(),
            _key: PhantomData,
        }
    }
}

impl<K: ?Sized + Hash, S: BuildHasher> KeyedRateLimiter<K, S> {
    /// Checks one request of `key`.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use prodkit_ratelimit::{quanta::Clock, KeyedRateLimiter, Quota};
    /// # let (clock, mock) = Clock::mock();
    /// let limiter: KeyedRateLimiter<str> =
    ///     KeyedRateLimiter::builder(Quota::per_second(2)?, 1_000).clock(clock).build()?;
    /// assert!(limiter.check("alice").is_allowed());
    /// assert!(limiter.check("alice").is_allowed());
    /// let refused = limiter.check("alice");
    /// assert_eq!(refused.retry_after(), Some(Duration::from_millis(500)));
    /// assert!(limiter.check("bob").is_allowed()); // another key, another budget
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn check(&self, key: &K) -> Decision {
        match self.decide(key, 1, self.time.now(), Tally::All) {
            Ok(decision) => decision,
            Err(_) => unreachable!("a quota's burst is at least one"),
        }
    }

    /// Checks a request of `n` cells of `key`, all or nothing; `n = 0` looks
    /// without consuming, counting or holding the key (see
    /// [`RateLimiter::check_n`](crate::RateLimiter::check_n)).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use prodkit_ratelimit::{quanta::Clock, KeyedRateLimiter, Quota};
    /// # let (clock, mock) = Clock::mock();
    /// let limiter: KeyedRateLimiter<str> =
    ///     KeyedRateLimiter::builder(Quota::per_second(2)?, 1_000).clock(clock).build()?;
    /// assert_eq!(limiter.check_n("alice", 2)?.remaining(), 0);
    /// assert!(limiter.check_n("alice", 3).is_err()); // above the burst of 2
    /// // `n = 0` looks at a key without consuming, nor holding it.
    /// assert_eq!(limiter.check_n("bob", 0)?.remaining(), 2);
    /// assert_eq!(limiter.len(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`InsufficientCapacity`] when `n` is above the burst; nothing consumed.
    #[inline]
    pub fn check_n(&self, key: &K, n: u32) -> Result<Decision, InsufficientCapacity> {
        self.decide(key, n, self.time.now(), Tally::All)
    }

    /// As [`check`](KeyedRateLimiter::check) at `now` (see
    /// [`RateLimiter::check_at`](crate::RateLimiter::check_at)).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use prodkit_ratelimit::{quanta::Clock, KeyedRateLimiter, Quota};
    /// # let (clock, mock) = Clock::mock();
    /// let limiter: KeyedRateLimiter<str> = KeyedRateLimiter::builder(Quota::per_second(2)?, 1_000)
    ///     .clock(clock.clone())
    ///     .build()?;
    /// let arrived = clock.now();
    /// mock.increment(Duration::from_millis(100)); // handled a little later
    /// // Decided at the arrival time: full again 500 ms after it.
    /// assert_eq!(limiter.check_at("alice", arrived).reset(), Duration::from_millis(500));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn check_at(&self, key: &K, now: quanta::Instant) -> Decision {
        match self.decide(key, 1, self.time.at(now), Tally::All) {
            Ok(decision) => decision,
            Err(_) => unreachable!("a quota's burst is at least one"),
        }
    }

    /// As [`check_n`](KeyedRateLimiter::check_n) at `now`.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use prodkit_ratelimit::{quanta::Clock, KeyedRateLimiter, Quota};
    /// # let (clock, mock) = Clock::mock();
    /// let limiter: KeyedRateLimiter<str> = KeyedRateLimiter::builder(Quota::per_second(2)?, 1_000)
    ///     .clock(clock.clone())
    ///     .build()?;
    /// let arrived = clock.now();
    /// mock.increment(Duration::from_millis(500));
    /// assert!(limiter.check_n_at("alice", 2, arrived)?.is_allowed());
    /// // At `arrived` the bucket was emptied; 500 ms later one cell is back.
    /// assert!(limiter.check("alice").is_allowed());
    /// assert!(!limiter.check_n_at("alice", 1, clock.now())?.is_allowed());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`InsufficientCapacity`] when `n` is above the burst.
    #[inline]
    pub fn check_n_at(
        &self,
        key: &K,
        n: u32,
        now: quanta::Instant,
    ) -> Result<Decision, InsufficientCapacity> {
        self.decide(key, n, self.time.at(now), Tally::All)
    }

    /// Blocks until one request of `key` is admitted; returns at once, consuming
    /// nothing, when that would take longer than `timeout`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_ratelimit::{KeyedRateLimiter, Quota};
    ///
    /// // One request every 5 ms per key.
    /// let limiter: KeyedRateLimiter<str> =
    ///     KeyedRateLimiter::new(Quota::every(Duration::from_millis(5))?, 1_000)?;
    /// assert!(limiter.check("alice").is_allowed());
    /// // alice's next request is about 5 ms away: wait for it.
    /// assert!(limiter.wait("alice", Duration::from_secs(1))?.is_allowed());
    /// // bob's bucket is full: no wait at all.
    /// assert!(limiter.wait("bob", Duration::ZERO)?.is_allowed());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`WaitError::Timeout`] with the wait it would need.
    pub fn wait(&self, key: &K, timeout: Duration) -> Result<Decision, WaitError> {
        self.wait_n(key, 1, timeout)
    }

    /// As [`wait`](KeyedRateLimiter::wait) for `n` cells at once.
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_ratelimit::{quanta::Clock, KeyedRateLimiter, Quota, WaitError};
    ///
    /// let (clock, _mock) = Clock::mock();
    /// let limiter: KeyedRateLimiter<str> =
    ///     KeyedRateLimiter::builder(Quota::per_second(4)?, 1_000).clock(clock).build()?;
    /// assert!(limiter.wait_n("alice", 4, Duration::from_millis(10))?.is_allowed());
    /// // Two more cells are 500 ms away: refused at once.
    /// let err = limiter.wait_n("alice", 2, Duration::from_millis(10)).unwrap_err();
    /// assert_eq!(err, WaitError::Timeout { retry_after: Duration::from_millis(500) });
    /// let err = limiter.wait_n("alice", 5, Duration::from_secs(1)).unwrap_err();
    /// assert!(matches!(err, WaitError::InsufficientCapacity(_)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`WaitError::Timeout`], [`WaitError::InsufficientCapacity`].
    pub fn wait_n(&self, key: &K, n: u32, timeout: Duration) -> Result<Decision, WaitError> {
        self.wait_inner(key, n, wait::deadline(timeout))
    }

    /// As [`wait`](KeyedRateLimiter::wait) with a deadline.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use prodkit_ratelimit::{quanta::Clock, KeyedRateLimiter, Quota, WaitError};
    ///
    /// let (clock, _mock) = Clock::mock();
    /// let limiter: KeyedRateLimiter<str> =
    ///     KeyedRateLimiter::builder(Quota::per_second(1)?, 1_000).clock(clock).build()?;
    /// let deadline = Instant::now() + Duration::from_millis(10);
    /// assert!(limiter.wait_until("alice", deadline)?.is_allowed());
    /// let err = limiter.wait_until("alice", deadline).unwrap_err();
    /// assert_eq!(err, WaitError::Timeout { retry_after: Duration::from_secs(1) });
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`WaitError::Timeout`].
    pub fn wait_until(&self, key: &K, deadline: Instant) -> Result<Decision, WaitError> {
        self.wait_n_until(key, 1, deadline)
    }

    /// As [`wait_n`](KeyedRateLimiter::wait_n) with a deadline.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use prodkit_ratelimit::{KeyedRateLimiter, Quota};
    ///
    /// // One cell every 5 ms per key, up to 4 at once.
    /// let quota = Quota::per_second(200)?.with_burst(4)?;
    /// let limiter: KeyedRateLimiter<str> = KeyedRateLimiter::new(quota, 1_000)?;
    /// assert!(limiter.check_n("alice", 4)?.is_allowed());
    /// // Two cells come back within about 10 ms, well before the deadline.
    /// let deadline = Instant::now() + Duration::from_secs(1);
    /// assert!(limiter.wait_n_until("alice", 2, deadline)?.is_allowed());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`WaitError::Timeout`], [`WaitError::InsufficientCapacity`].
    pub fn wait_n_until(&self, key: &K, n: u32, deadline: Instant) -> Result<Decision, WaitError> {
        self.wait_inner(key, n, Some(deadline))
    }

    /// Waits on tokio's timer until one request of `key` is admitted.
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_ratelimit::{KeyedRateLimiter, Quota};
    ///
    /// let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build()?;
    /// // One request every 5 ms per key: alice's second waits about 5 ms.
    /// let limiter: KeyedRateLimiter<str> =
    ///     KeyedRateLimiter::new(Quota::every(Duration::from_millis(5))?, 1_000)?;
    /// runtime.block_on(async {
    ///     assert!(limiter.until_ready("alice").await.is_allowed());
    ///     assert!(limiter.until_ready("alice").await.is_allowed());
    /// });
    /// assert_eq!(limiter.stats().decisions.allowed, 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "tokio")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
    pub async fn until_ready(&self, key: &K) -> Decision {
        match self.until_ready_n(key, 1).await {
            Ok(decision) => decision,
            Err(_) => unreachable!("a quota's burst is at least one"),
        }
    }

    /// As [`until_ready`](KeyedRateLimiter::until_ready) for `n` cells.
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_ratelimit::{KeyedRateLimiter, Quota};
    ///
    /// let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build()?;
    /// let limiter: KeyedRateLimiter<str> = KeyedRateLimiter::new(Quota::per_hour(2)?, 1_000)?;
    /// runtime.block_on(async {
    ///     assert!(limiter.until_ready_n("alice", 1).await?.is_allowed());
    ///     // Two cells would take half an hour: give up after 10 ms.
    ///     let wait = limiter.until_ready_n("alice", 2);
    ///     assert!(tokio::time::timeout(Duration::from_millis(10), wait).await.is_err());
    ///     // The dropped future consumed nothing: the cell left is still there.
    ///     assert!(limiter.check("alice").is_allowed());
    ///     assert!(limiter.until_ready_n("alice", 3).await.is_err()); // above the burst
    ///     Ok::<(), prodkit_ratelimit::InsufficientCapacity>(())
    /// })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`InsufficientCapacity`] when `n` is above the burst.
    #[cfg(feature = "tokio")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
    pub async fn until_ready_n(&self, key: &K, n: u32) -> Result<Decision, InsufficientCapacity> {
        wait::until_ready(&self.time, |now| {
            self.decide(key, n, now, Tally::Admissions)
        })
        .await
    }

    /// Forgets `key`'s own state: its next request starts from its sketch
    /// bucket, a full bucket unless a debt of an evicted key is folded there.
    /// Whether it was held.
    ///
    /// ```
    /// # use prodkit_ratelimit::{KeyedRateLimiter, Quota};
    /// let limiter: KeyedRateLimiter<str> = KeyedRateLimiter::new(Quota::per_hour(1)?, 1_000)?;
    /// assert!(limiter.check("alice").is_allowed());
    /// assert!(!limiter.check("alice").is_allowed());
    ///
    /// assert!(limiter.remove("alice"));
    /// assert!(limiter.is_empty());
    /// assert!(limiter.check("alice").is_allowed()); // a full bucket again
    /// assert!(!limiter.remove("bob")); // never held
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn remove(&self, key: &K) -> bool {
        let hash = self.hash(key);
        self.shards[self.shard(hash)]
            .lock()
            .remove(hash, &self.bound())
    }

    fn bound(&self) -> Bound<'_> {
        Bound {
            held: &self.held,
            max_keys: self.max_keys,
        }
    }

    #[inline]
    fn hash(&self, key: &K) -> u64 {
        match self.hasher.hash_one(key) {
            EMPTY => 1,
            h => h,
        }
    }

    #[inline]
    /// A wait for `n` cells of `key` until `deadline`, counted once.
    fn wait_inner(
        &self,
        key: &K,
        n: u32,
        deadline: Option<Instant>,
    ) -> Result<Decision, WaitError> {
        wait::blocking(
            &self.time,
            deadline,
            |now| self.decide(key, n, now, Tally::Admissions),
            || {
                let hash = self.hash(key);
                self.shards[self.shard(hash)].lock().count_refusal(n);
            },
        )
    }

    fn decide(
        &self,
        key: &K,
        n: u32,
        now: u64,
        tally: Tally,
    ) -> Result<Decision, InsufficientCapacity> {
        let p = self.params.load();
        if n > p.burst {
            return Err(InsufficientCapacity {
                requested: n,
                burst: p.burst,
            });
        }
        let hash = self.hash(key);
        let decision =
            self.shards[self.shard(hash)]
                .lock()
                .decide(hash, n, &p, now, &self.bound(), tally);
        Ok(decision)
    }
}

impl<K: ?Sized, S> KeyedRateLimiter<K, S> {
    #[inline]
    fn shard(&self, hash: u64) -> usize {
        if self.shard_bits == 0 {
            0
        } else {
            (hash >> (64 - self.shard_bits)) as usize
        }
    }

    /// Replaces the quota for every key; each key keeps its state as time owed
    /// (see [`RateLimiter::set_quota`](crate::RateLimiter::set_quota)).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use prodkit_ratelimit::{quanta::Clock, KeyedRateLimiter, Quota};
    /// # let (clock, mock) = Clock::mock();
    /// let limiter: KeyedRateLimiter<str> =
    ///     KeyedRateLimiter::builder(Quota::per_second(10)?, 1_000).clock(clock).build()?;
    /// assert_eq!(limiter.check_n("alice", 10)?.reset(), Duration::from_secs(1));
    ///
    /// // Slow down to 2 per second: alice still owes her second.
    /// limiter.set_quota(Quota::per_second(2)?);
    /// assert!(!limiter.check("alice").is_allowed());
    /// assert_eq!(limiter.check("bob").limit(), 2);
    /// mock.increment(Duration::from_millis(500));
    /// assert!(limiter.check("alice").is_allowed());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_quota(&self, quota: Quota) {
        self.params.set_quota(quota);
    }

    /// The quota in force.
    ///
    /// ```
    /// # use prodkit_ratelimit::{KeyedRateLimiter, Quota};
    /// let quota = Quota::per_second(10)?;
    /// let limiter: KeyedRateLimiter<str> = KeyedRateLimiter::new(quota, 1_000)?;
    /// assert_eq!(limiter.quota(), quota);
    /// limiter.set_quota(quota.with_burst(1)?);
    /// assert_eq!(limiter.quota().burst(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn quota(&self) -> Quota {
        self.params.quota()
    }

    /// Shadow mode: every request allowed, decisions and state as if enforcing,
    /// refusals counted in `shadow_denied`. A request above the burst is still
    /// an error, as in [`RateLimiter::set_shadow`](crate::RateLimiter::set_shadow).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use prodkit_ratelimit::{quanta::Clock, KeyedRateLimiter, Quota};
    /// # let (clock, mock) = Clock::mock();
    /// let limiter: KeyedRateLimiter<str> =
    ///     KeyedRateLimiter::builder(Quota::per_hour(1)?, 1_000).clock(clock).build()?;
    /// assert!(limiter.check("alice").is_allowed());
    ///
    /// limiter.set_shadow(true);
    /// let over = limiter.check("alice");
    /// assert!(over.is_allowed() && !over.is_conforming());
    /// limiter.set_shadow(false);
    /// assert!(!limiter.check("alice").is_allowed());
    ///
    /// let decisions = limiter.stats().decisions;
    /// assert_eq!((decisions.allowed, decisions.shadow_denied, decisions.denied), (1, 1, 1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_shadow(&self, shadow: bool) {
        self.params.set_shadow(shadow);
    }

    /// Whether the limiter is in shadow mode.
    ///
    /// ```
    /// # use prodkit_ratelimit::{KeyedRateLimiter, Quota};
    /// let limiter = KeyedRateLimiter::<str>::builder(Quota::per_second(10)?, 1_000)
    ///     .shadow(true)
    ///     .build()?;
    /// assert!(limiter.is_shadow());
    /// limiter.set_shadow(false);
    /// assert!(!limiter.is_shadow());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_shadow(&self) -> bool {
        self.params.load().shadow
    }

    /// The hard bound on keys held.
    ///
    /// ```
    /// # use prodkit_ratelimit::{KeyedRateLimiter, Quota};
    /// let limiter: KeyedRateLimiter<u64> = KeyedRateLimiter::new(Quota::per_second(10)?, 5_000)?;
    /// assert_eq!(limiter.max_keys(), 5_000);
    /// assert_eq!(limiter.stats().max_keys, 5_000);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn max_keys(&self) -> usize {
        self.max_keys
    }

    /// The number of shards.
    ///
    /// ```
    /// # use prodkit_ratelimit::{KeyedRateLimiter, Quota};
    /// let quota = Quota::per_second(10)?;
    /// let limiter = KeyedRateLimiter::<u64>::builder(quota, 100_000).shards(8).build()?;
    /// assert_eq!(limiter.shard_count(), 8);
    /// // By default, one shard for a bound this small (no shard under 1024 keys).
    /// assert_eq!(KeyedRateLimiter::<u64>::new(quota, 1_000)?.shard_count(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Keys held now, idle ones included.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use prodkit_ratelimit::{quanta::Clock, KeyedRateLimiter, Quota};
    /// # let (clock, mock) = Clock::mock();
    /// let limiter: KeyedRateLimiter<str> =
    ///     KeyedRateLimiter::builder(Quota::per_second(2)?, 1_000).clock(clock).build()?;
    /// for key in ["alice", "bob", "carol"] {
    ///     assert!(limiter.check(key).is_allowed());
    /// }
    /// assert_eq!(limiter.len(), 3);
    /// // Idle keys (full buckets again) are held until room is needed.
    /// mock.increment(Duration::from_secs(10));
    /// assert_eq!(limiter.len(), 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn len(&self) -> usize {
        // The limiter-wide count, which room is reserved in before a key is
        // inserted and given back after one is removed: never below the keys
        // held, never above `max_keys`. A sum over the shards, locked in turn,
        // could count a key removed from one shard and its replacement in
        // another.
        self.held.load(Ordering::Relaxed)
    }

    /// Whether no key is held.
    ///
    /// ```
    /// # use prodkit_ratelimit::{KeyedRateLimiter, Quota};
    /// let limiter: KeyedRateLimiter<str> = KeyedRateLimiter::new(Quota::per_second(10)?, 1_000)?;
    /// assert!(limiter.is_empty());
    /// assert!(limiter.check("alice").is_allowed());
    /// assert!(!limiter.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Decisions, keys and evictions so far. Locks each shard briefly.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use prodkit_ratelimit::{quanta::Clock, KeyedRateLimiter, Quota};
    /// # let (clock, mock) = Clock::mock();
    /// let limiter: KeyedRateLimiter<str> =
    ///     KeyedRateLimiter::builder(Quota::per_second(2)?, 1_000).clock(clock).build()?;
    /// assert!(limiter.check_n("alice", 2)?.is_allowed());
    /// assert!(!limiter.check("alice").is_allowed());
    /// assert!(limiter.check("bob").is_allowed());
    ///
    /// let stats = limiter.stats();
    /// assert_eq!((stats.decisions.allowed, stats.decisions.denied), (3, 1));
    /// assert_eq!((stats.keys, stats.max_keys, stats.evictions), (2, 1_000, 0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stats(&self) -> KeyedStats {
        let mut stats = KeyedStats {
            keys: self.len(),
            max_keys: self.max_keys,
            ..KeyedStats::default()
        };
        for shard in self.shards.iter() {
            let shard = shard.lock();
            stats.decisions.add(&shard.decisions);
            stats.evictions += shard.evictions;
            stats.evictions_active += shard.evictions_active;
            stats.evictions_early += shard.evictions_early;
            stats.sketch_denials += shard.sketch_denials;
            stats.false_denials += shard.false_denials;
        }
        stats
    }

    /// Heap bytes held by the key tables and the sketches now.
    ///
    /// ```
    /// # use prodkit_ratelimit::{KeyedRateLimiter, Quota};
    /// let limiter: KeyedRateLimiter<u64> = KeyedRateLimiter::new(Quota::per_second(10)?, 1_000)?;
    /// let empty = limiter.heap_bytes();
    /// for key in 0..1_000 {
    ///     let _ = limiter.check(&key);
    /// }
    /// // The table grew as keys arrived: about 20 bytes per key held.
    /// let full = limiter.heap_bytes();
    /// assert!(full > empty && full < 32 * 1_000);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn heap_bytes(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().heap_bytes())
            .sum::<usize>()
            + std::mem::size_of_val(&*self.shards)
    }
}

impl<K: ?Sized, S> fmt::Debug for KeyedRateLimiter<K, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedRateLimiter")
            .field("quota", &self.quota())
            .field("shadow", &self.is_shadow())
            .field("shards", &self.shards.len())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl<K: ?Sized, S> fmt::Debug for KeyedBuilder<K, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedBuilder")
            .field("quota", &self.quota)
            .field("max_keys", &self.max_keys)
            .field("shadow", &self.shadow)
            .field("shards", &self.shards)
            .finish_non_exhaustive()
    }
}
