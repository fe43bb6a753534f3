//! The builder and its validation.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::expiry::{Expire, Expiry, nanos};
use crate::{Cache, ConfigError, DefaultHashBuilder, RemovalCause};

/// The error a loader returns, boxed.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub(crate) type Weigher<K, V> = Box<dyn Fn(&K, &V) -> u32 + Send + Sync>;
pub(crate) type Loader<K, V> = Arc<dyn Fn(&K) -> Result<V, BoxError> + Send + Sync>;
pub(crate) type Listener<K, V> = Box<dyn Fn(K, V, RemovalCause) + Send + Sync>;

/// Settings of a [`Cache`]; [`build`](Builder::build) validates them.
///
/// ```
/// use std::time::Duration;
/// use prodkit_cache::Cache;
///
/// let cache: Cache<String, Vec<u8>> = Cache::builder(64 * 1024 * 1024) // bytes
///     .weigher(|k: &String, v: &Vec<u8>| (k.len() + v.len()) as u32)
///     .time_to_live(Duration::from_secs(300))
///     .build()?;
/// cache.insert("k".into(), vec![0; 1000]);
/// assert_eq!(cache.weight(), 1001);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Builder<K, V, S = DefaultHashBuilder> {
    pub(crate) capacity: u64,
    pub(crate) weigher: Option<Weigher<K, V>>,
    pub(crate) ttl: Option<Duration>,
    pub(crate) tti: Option<Duration>,
    pub(crate) expiry: Option<Box<dyn Expiry<K, V>>>,
    pub(crate) refresh_after: Option<Duration>,
    pub(crate) loader: Option<Loader<K, V>>,
    pub(crate) workers: usize,
    pub(crate) queue: usize,
    pub(crate) listener: Option<Listener<K, V>>,
    pub(crate) clock: Option<quanta::Clock>,
    pub(crate) shards: Option<usize>,
    pub(crate) hasher: S,
}

/// A shard's capacity must stay below 2^30 units: positions are 30 bits in a
/// read-buffer record.
pub(crate) const MAX_SHARD_CAPACITY: u64 = 1 << 30;
/// The most shards a cache may have.
pub(crate) const MAX_SHARDS: usize = 1024;
/// Capacity per shard below which the default shard count stops growing: a
/// smaller shard's policy sees too few entries to decide well.
const MIN_SHARD_CAPACITY: u64 = 1024;
/// The default shard count of a weighted cache (fewer when its capacity is
/// below 16 x 1024 units).
const WEIGHTED_SHARDS: usize = 16;

impl<K, V> Builder<K, V> {
    pub(crate) fn new(capacity: u64) -> Builder<K, V> {
        Builder {
            capacity,
            weigher: None,
            ttl: None,
            tti: None,
            expiry: None,
            refresh_after: None,
            loader: None,
            workers: 1,
            queue: 1024,
            listener: None,
            clock: None,
            shards: None,
            hasher: DefaultHashBuilder::default(),
        }
    }
}

impl<K, V, S> Builder<K, V, S> {
    /// Weighs each entry: the capacity is then a total weight rather than an
    /// entry count. A weight of 0 counts as 1 (every entry takes room, so the
    /// entry count stays bounded). Must give the same answer for the same
    /// entry each time. Runs under the shard's lock: it must not call the
    /// cache (see [Callbacks](crate::Cache#callbacks)).
    ///
    /// ```
    /// use prodkit_cache::Cache;
    ///
    /// let cache: Cache<u32, String> = Cache::builder(10).weigher(|_, v: &String| v.len() as u32).build()?;
    /// cache.insert(1, "four".into());
    /// cache.insert(2, "sixsix".into());
    /// assert_eq!(cache.weight(), 10);
    /// cache.insert(3, "x".into());
    /// assert!(cache.weight() <= 10);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn weigher(mut self, f: impl Fn(&K, &V) -> u32 + Send + Sync + 'static) -> Self {
        self.weigher = Some(Box::new(f));
        self
    }

    /// Entries expire this long after they were written.
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_cache::{quanta::Clock, Cache};
    ///
    /// let (clock, mock) = Clock::mock();
    /// let cache: Cache<u32, u32> =
    ///     Cache::builder(10).time_to_live(Duration::from_secs(5)).clock(clock).build()?;
    /// cache.insert(1, 1);
    /// mock.increment(Duration::from_secs(4));
    /// assert_eq!(cache.get(&1), Some(1));
    /// mock.increment(Duration::from_secs(1));
    /// assert_eq!(cache.get(&1), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn time_to_live(mut self, d: Duration) -> Self {
        self.ttl = Some(d);
        self
    }

    /// Entries expire this long after they were last read or written.
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_cache::{quanta::Clock, Cache};
    ///
    /// let (clock, mock) = Clock::mock();
    /// let cache: Cache<u32, u32> =
    ///     Cache::builder(10).time_to_idle(Duration::from_secs(5)).clock(clock).build()?;
    /// cache.insert(1, 1);
    /// for _ in 0..3 {
    ///     mock.increment(Duration::from_secs(4));
    ///     assert_eq!(cache.get(&1), Some(1)); // each read moves the deadline
    /// }
    /// mock.increment(Duration::from_secs(5));
    /// assert_eq!(cache.get(&1), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn time_to_idle(mut self, d: Duration) -> Self {
        self.tti = Some(d);
        self
    }

    /// A per-entry expiry rule (not combined with `time_to_live` or
    /// `time_to_idle`). See [`Expiry`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_cache::{Cache, Expiry};
    ///
    /// struct Ten;
    /// impl Expiry<u32, u32> for Ten {
    ///     fn expire_after_create(&self, _: &u32, _: &u32) -> Option<Duration> {
    ///         Some(Duration::from_secs(10))
    ///     }
    /// }
    /// let cache: Cache<u32, u32> = Cache::builder(10).expire_after(Ten).build()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn expire_after(mut self, rule: impl Expiry<K, V> + 'static) -> Self {
        self.expiry = Some(Box::new(rule));
        self
    }

    /// Refresh-ahead: a read of an entry written longer ago than `d` returns
    /// it at once and reloads it with the [`loader`](Builder::loader) on the
    /// cache's executor, once; a failed reload keeps the old value (counted in
    /// [`Stats::refreshes_failed`](crate::Stats::refreshes_failed)) and is
    /// tried again `d` later.
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_cache::Cache;
    ///
    /// let cache: Cache<u32, u32> = Cache::builder(10)
    ///     .loader(|k: &u32| Ok::<_, std::io::Error>(k * 2))
    ///     .refresh_after(Duration::from_secs(60))
    ///     .build()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn refresh_after(mut self, d: Duration) -> Self {
        self.refresh_after = Some(d);
        self
    }

    /// How refreshes and prefetches load a key. Setting it starts the cache's
    /// executor ([`executor`](Builder::executor)). A loader that needs the
    /// cache itself holds a [`WeakCache`](crate::WeakCache): a strong handle
    /// in the loader would keep the cache and its threads alive forever.
    ///
    /// ```
    /// use prodkit_cache::Cache;
    ///
    /// let cache: Cache<u32, String> = Cache::builder(10)
    ///     .loader(|k: &u32| Ok::<_, std::num::TryFromIntError>(u8::try_from(*k)?.to_string()))
    ///     .build()?;
    /// assert_eq!(cache.prefetch([1, 2])?.queued, 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn loader<E>(mut self, f: impl Fn(&K) -> Result<V, E> + Send + Sync + 'static) -> Self
    where
        E: Into<BoxError>,
    {
        self.loader = Some(Arc::new(move |k: &K| f(k).map_err(Into::into)));
        self
    }

    /// The executor behind refreshes and prefetches: `workers` threads (1 by
    /// default) and a queue of `queue` jobs (1024); a refresh or prefetch
    /// that finds the queue full is dropped and counted, never queued without
    /// bound. The threads are joined when the last handle of the cache is
    /// dropped.
    ///
    /// ```
    /// use prodkit_cache::Cache;
    ///
    /// let cache: Cache<u32, u32> = Cache::builder(10)
    ///     .loader(|k: &u32| Ok::<_, std::io::Error>(*k))
    ///     .executor(2, 64)
    ///     .build()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn executor(mut self, workers: usize, queue: usize) -> Self {
        self.workers = workers;
        self.queue = queue;
        self
    }

    /// Called with each entry that leaves the cache and why, after the
    /// shard's lock is released (it may call the cache). A panic in it
    /// reaches the caller of the operation that removed the entry, after
    /// the other entries that operation removed were reported; the cache
    /// stays consistent. A listener that inserts what it is told was
    /// evicted for size evicts another entry, which it is told about in
    /// turn, on the same stack: at a small capacity that recursion does not
    /// end.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// use prodkit_cache::{Cache, RemovalCause};
    ///
    /// let evicted = Arc::new(AtomicUsize::new(0));
    /// let count = evicted.clone();
    /// let cache: Cache<u32, u32> = Cache::builder(100)
    ///     .eviction_listener(move |_, _, cause| {
    ///         if cause == RemovalCause::Size {
    ///             count.fetch_add(1, Ordering::Relaxed);
    ///         }
    ///     })
    ///     .build()?;
    /// for i in 0..1000 {
    ///     cache.insert(i, i);
    /// }
    /// assert_eq!(evicted.load(Ordering::Relaxed), 1000 - cache.len());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn eviction_listener(
        mut self,
        f: impl Fn(K, V, RemovalCause) + Send + Sync + 'static,
    ) -> Self {
        self.listener = Some(Box::new(f));
        self
    }

    /// The clock behind expiry, refresh and load times (a `quanta` mock in
    /// tests).
    ///
    /// ```
    /// use prodkit_cache::{quanta::Clock, Cache};
    ///
    /// let (clock, _mock) = Clock::mock();
    /// let cache: Cache<u32, u32> = Cache::builder(10).clock(clock).build()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn clock(mut self, clock: quanta::Clock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// The number of shards: a power of two, at most 1024 and at most the
    /// capacity. The default is four per CPU (16 for a weighted cache, on
    /// every machine), but no fewer than 1024 units of capacity per shard.
    /// Each shard has its own lock and its own policy, and an entry may
    /// weigh at most a shard's capacity (`capacity / shards`; a weighted
    /// cache of larger entries sets fewer shards).
    ///
    /// ```
    /// use prodkit_cache::Cache;
    ///
    /// let cache: Cache<u32, u32> = Cache::builder(100_000).shards(16).build()?;
    /// assert!(Cache::<u32, u32>::builder(100).shards(3).build().is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn shards(mut self, n: usize) -> Self {
        self.shards = Some(n);
        self
    }

    /// The hasher of keys (foldhash's, randomly seeded, by default).
    ///
    /// ```
    /// use std::collections::hash_map::RandomState;
    /// use prodkit_cache::Cache;
    ///
    /// let cache: Cache<u32, u32, RandomState> =
    ///     Cache::builder(10).hasher(RandomState::new()).build()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn hasher<S2>(self, hasher: S2) -> Builder<K, V, S2> {
        Builder {
            capacity: self.capacity,
            weigher: self.weigher,
            ttl: self.ttl,
            tti: self.tti,
            expiry: self.expiry,
            refresh_after: self.refresh_after,
            loader: self.loader,
            workers: self.workers,
            queue: self.queue,
            listener: self.listener,
            clock: self.clock,
            shards: self.shards,
            hasher,
        }
    }

    /// Checks the settings as [`build`](Builder::build) does.
    ///
    /// # Errors
    /// The first setting at fault, as a [`ConfigError`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_cache::{Cache, ConfigError};
    ///
    /// let b = Cache::<u32, u32>::builder(10).refresh_after(Duration::from_secs(1));
    /// assert!(matches!(b.validate(), Err(ConfigError::RefreshWithoutLoader)));
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.capacity == 0 {
            return Err(ConfigError::ZeroCapacity);
        }
        for (field, d) in [
            ("time_to_live", self.ttl),
            ("time_to_idle", self.tti),
            ("refresh_after", self.refresh_after),
        ] {
            if d == Some(Duration::ZERO) {
                return Err(ConfigError::ZeroDuration { field });
            }
        }
        if self.expiry.is_some() && (self.ttl.is_some() || self.tti.is_some()) {
            return Err(ConfigError::ConflictingExpiry);
        }
        if self.refresh_after.is_some() && self.loader.is_none() {
            return Err(ConfigError::RefreshWithoutLoader);
        }
        if self.workers == 0 {
            return Err(ConfigError::ZeroCount {
                field: "executor workers",
            });
        }
        if self.queue == 0 {
            return Err(ConfigError::ZeroCount {
                field: "executor queue",
            });
        }
        prodkit_pool::Pool::builder()
            .workers(self.workers)
            .queue_capacity(self.queue)
            .validate()
            .map_err(ConfigError::Executor)?;
        let shards = self.shard_count();
        if !shards.is_power_of_two() || shards > MAX_SHARDS || shards as u64 > self.capacity {
            return Err(ConfigError::Shards { shards });
        }
        if self.capacity.div_ceil(shards as u64) >= MAX_SHARD_CAPACITY {
            return Err(ConfigError::CapacityTooLarge {
                capacity: self.capacity,
                shards,
            });
        }
        Ok(())
    }

    pub(crate) fn shard_count(&self) -> usize {
        self.shards.unwrap_or_else(|| {
            // A weighted cache's entries may weigh at most a shard's
            // capacity: its default does not depend on the machine, so
            // that what fits on one fits on every other.
            let by_cpu = if self.weigher.is_some() {
                WEIGHTED_SHARDS
            } else {
                let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
                (cpus * 4).next_power_of_two().min(MAX_SHARDS)
            };
            let by_capacity = (self.capacity / MIN_SHARD_CAPACITY).max(1);
            // The largest power of two not above `by_capacity`.
            let by_capacity = 1usize << (63 - by_capacity.leading_zeros()).min(20);
            by_cpu.min(by_capacity)
        })
    }

    pub(crate) fn expire(&mut self) -> Expire<K, V> {
        if let Some(rule) = self.expiry.take() {
            Expire::Custom(rule)
        } else if self.ttl.is_some() || self.tti.is_some() {
            Expire::Fixed {
                ttl: self.ttl.map(nanos),
                tti: self.tti.map(nanos),
            }
        } else {
            Expire::Never
        }
    }
}

impl<K, V, S> Builder<K, V, S>
where
    K: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: std::hash::BuildHasher + Send + Sync + 'static,
{
    /// Validates the settings and builds the cache.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the setting at fault, or
    /// [`ConfigError::Spawn`] when the executor's threads cannot start.
    ///
    /// ```
    /// use prodkit_cache::Cache;
    ///
    /// let cache: Cache<u32, u32> = Cache::builder(1000).build()?;
    /// assert_eq!(cache.capacity(), 1000);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn build(self) -> Result<Cache<K, V, S>, ConfigError> {
        self.validate()?;
        Cache::from_builder(self)
    }
}

impl<K, V, S> fmt::Debug for Builder<K, V, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("capacity", &self.capacity)
            .field("weigher", &self.weigher.is_some())
            .field("time_to_live", &self.ttl)
            .field("time_to_idle", &self.tti)
            .field("expire_after", &self.expiry.is_some())
            .field("refresh_after", &self.refresh_after)
            .field("loader", &self.loader.is_some())
            .field("executor", &(self.workers, self.queue))
            .field("eviction_listener", &self.listener.is_some())
            .field("shards", &self.shards)
            .finish_non_exhaustive()
    }
}
