//! The `stats()` snapshot and the removal causes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Why an entry left the cache, as the eviction listener is told.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use prodkit_cache::{Cache, RemovalCause};
///
/// let seen = Arc::new(Mutex::new(Vec::new()));
/// let log = seen.clone();
/// let cache: Cache<u32, &str> = Cache::builder(10)
///     .eviction_listener(move |k, v, cause| log.lock().unwrap().push((k, v, cause)))
///     .build()?;
/// cache.insert(1, "a");
/// cache.insert(1, "b");
/// cache.remove(&1);
/// assert_eq!(
///     *seen.lock().unwrap(),
///     [(1, "a", RemovalCause::Replaced), (1, "b", RemovalCause::Explicit)]
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RemovalCause {
    /// Evicted to keep the cache within its capacity (or refused: heavier
    /// than a shard).
    Size,
    /// Its time to live, time to idle or custom expiry passed.
    Expired,
    /// Removed by `remove`, `invalidate_if`, `clear` or `compute`.
    Explicit,
    /// Its value was replaced by an insert, a compute or a refresh.
    Replaced,
}

/// Entries removed, by cause.
///
/// ```
/// use prodkit_cache::Cache;
///
/// let cache: Cache<u32, u32> = Cache::builder(1).build()?;
/// cache.insert(1, 1);
/// cache.insert(1, 2);
/// cache.insert(2, 2);
/// cache.remove(&1);
/// cache.remove(&2);
/// let e = cache.stats().evictions;
/// assert_eq!(e.replaced, 1);
/// assert_eq!(e.size + e.explicit, 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Evictions {
    /// Evicted for room.
    pub size: u64,
    /// Expired.
    pub expired: u64,
    /// Removed on request.
    pub explicit: u64,
    /// Values replaced.
    pub replaced: u64,
}

/// A snapshot of a cache's counters and gauges.
///
/// Hits cost no counter: each shard's read buffer counts the reads it
/// records, which the policy needs anyway. Misses are one relaxed atomic add
/// on the shard's line, on the miss path only.
///
/// ```
/// use prodkit_cache::Cache;
///
/// let cache: Cache<u32, u32> = Cache::builder(100).build()?;
/// cache.insert(1, 10);
/// assert_eq!(cache.get(&1), Some(10));
/// assert_eq!(cache.get(&2), None);
/// let loaded = cache.get_or_load(3, || Ok::<_, std::io::Error>(30))?;
/// let s = cache.stats();
/// assert_eq!((s.hits, s.misses), (1, 2));
/// assert_eq!((s.loads_ok, s.loads_failed), (1, 0));
/// assert_eq!((s.entries, s.weight, s.capacity), (2, 2, 100));
/// assert_eq!(s.hit_ratio(), 1.0 / 3.0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[non_exhaustive]
pub struct Stats {
    /// Reads that found a live entry. Exact while every read is recorded;
    /// an estimate (each sampled read counts for the 2, 4 or 8 it stands
    /// for) while a shard samples, after 2,048 reads in a row with no entry
    /// coming or going.
    pub hits: u64,
    /// Reads that found none (absent or expired).
    pub misses: u64,
    /// Entries removed, by cause.
    pub evictions: Evictions,
    /// Entries refused because they weigh more than a shard holds:
    /// `try_insert` hands them back, other writes report them to the
    /// listener as `Size`; counted here either way, not in
    /// `evictions.size`.
    pub rejected: u64,
    /// Loader calls that returned a value (`get_or_load`, prefetches).
    pub loads_ok: u64,
    /// Loader calls that returned an error or panicked.
    pub loads_failed: u64,
    /// Time spent in loader calls, refreshes included.
    pub load_time: Duration,
    /// Refreshes started on the executor.
    pub refreshes: u64,
    /// Refreshes whose reload failed (the old value was kept).
    pub refreshes_failed: u64,
    /// Refreshes not started because the executor's queue was full (the
    /// next read of the entry tries again).
    pub refreshes_dropped: u64,
    /// Prefetches queued on the executor.
    pub prefetches: u64,
    /// Prefetches dropped because the executor's queue was full.
    pub prefetches_dropped: u64,
    /// Entries held now.
    pub entries: usize,
    /// Their total weight (equal to `entries` without a weigher).
    pub weight: u64,
    /// The capacity, in weight units.
    pub capacity: u64,
}

impl Stats {
    /// `hits / (hits + misses)`, 0 before any read.
    ///
    /// ```
    /// # use prodkit_cache::Cache;
    /// let cache: Cache<u32, u32> = Cache::builder(10).build()?;
    /// assert_eq!(cache.stats().hit_ratio(), 0.0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn hit_ratio(&self) -> f64 {
        let reads = self.hits + self.misses;
        if reads == 0 {
            0.0
        } else {
            self.hits as f64 / reads as f64
        }
    }
}

/// Counters of the slow paths (loads, refreshes, prefetches): shared atomics,
/// each bumped once per loader call, never per hit.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) loads_ok: AtomicU64,
    pub(crate) loads_failed: AtomicU64,
    pub(crate) load_nanos: AtomicU64,
    pub(crate) refreshes: AtomicU64,
    pub(crate) refreshes_failed: AtomicU64,
    pub(crate) refreshes_dropped: AtomicU64,
    pub(crate) prefetches: AtomicU64,
    pub(crate) prefetches_dropped: AtomicU64,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn fill(&self, s: &mut Stats) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        s.loads_ok = get(&self.loads_ok);
        s.loads_failed = get(&self.loads_failed);
        s.load_time = Duration::from_nanos(get(&self.load_nanos));
        s.refreshes = get(&self.refreshes);
        s.refreshes_failed = get(&self.refreshes_failed);
        s.refreshes_dropped = get(&self.refreshes_dropped);
        s.prefetches = get(&self.prefetches);
        s.prefetches_dropped = get(&self.prefetches_dropped);
    }
}
