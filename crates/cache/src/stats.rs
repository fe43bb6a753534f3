//! The `stats()` snapshot and the removal causes.

use std::cell::{Cell, RefCell};
use std::sync::Arc;
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
/// A hit costs no shared counter: each thread counts its hits in a
/// thread-local batch added to the total 32 at a time. Misses are one
/// relaxed atomic add on the shard's line, on the miss path only.
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
    /// Reads that found a live entry: exact for the calling thread and for
    /// threads that have been joined (a thread adds its counts as its
    /// thread-locals are destroyed, which `thread::scope` does not wait
    /// for unless the thread is joined); each other thread that read the
    /// cache lately may
    /// hold up to 31 hits not yet added (they join as its batch fills).
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
    /// Refreshes whose reload failed (the old value was kept), or whose
    /// storing met a panicking callback (a weigher or expiry rule: the old
    /// value was kept; the listener: the new value was stored).
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

/// Hits a thread counts before it adds them to the cache's total.
const BATCH: u64 = 32;

/// The caches a thread has read lately (other than the one `CURRENT`
/// counts for), most recent first, with the hits counted for each and not
/// yet added to their totals. Holding the totals keeps their addresses,
/// which `CURRENT` names them by, from being reused.
struct Parked([Option<(Arc<AtomicU64>, u64)>; 4]);

impl Drop for Parked {
    /// A thread that ends adds what it still holds.
    fn drop(&mut self) {
        let (current, n) = CURRENT.get();
        for (total, parked) in self.0.iter().flatten() {
            let mine = if id(total) == current { n } else { 0 };
            total.fetch_add(parked + mine, Ordering::Relaxed);
        }
        CURRENT.set((0, 0));
    }
}

thread_local! {
    /// The cache this thread counts hits for now (the address of its total;
    /// 0 for none) and the hits counted: a plain thread-local with nothing
    /// to destroy, so a hit costs a compare and an add.
    static CURRENT: Cell<(usize, u64)> = const { Cell::new((0, 0)) };
    static PARKED: RefCell<Parked> = const { RefCell::new(Parked([None, None, None, None])) };
}

fn id(total: &Arc<AtomicU64>) -> usize {
    Arc::as_ptr(total) as usize
}

/// The hit count: each thread counts its hits of a cache in a thread-local
/// batch and adds a batch of 32 to the cache's total at once, so a hit
/// costs no read-modify-write on a shared line. A snapshot adds the calling
/// thread's batch; other threads' batches (fewer than 32 hits each, for the
/// threads that read the cache lately) join the total as they fill, when
/// the thread has read four other caches since, or when it ends.
#[derive(Debug, Default)]
pub(crate) struct Hits {
    total: Arc<AtomicU64>,
}

impl Hits {
    #[inline]
    pub(crate) fn count(&self) {
        let me = id(&self.total);
        let (current, n) = CURRENT.get();
        if current == me && n + 1 < BATCH {
            CURRENT.set((me, n + 1));
        } else {
            self.count_slowly();
        }
    }

    /// A batch is full, or this cache is not the one the thread counts for.
    #[cold]
    fn count_slowly(&self) {
        let me = id(&self.total);
        let counted = PARKED.try_with(|p| {
            let Ok(mut p) = p.try_borrow_mut() else {
                return false;
            };
            let (current, mut n) = CURRENT.get();
            if current != me {
                // Park the current cache's count with it; take this one's.
                if let Some((_, parked)) = p.0.iter_mut().flatten().find(|(t, _)| id(t) == current)
                {
                    *parked += n;
                }
                let at =
                    p.0.iter()
                        .position(|e| e.as_ref().is_some_and(|(t, _)| id(t) == me))
                        .unwrap_or_else(|| {
                            // Room for this cache: the least recent one's count
                            // goes to its total (the current one is first, never
                            // last).
                            if let Some((total, parked)) = p.0[3].take() {
                                total.fetch_add(parked, Ordering::Relaxed);
                            }
                            p.0[3] = Some((self.total.clone(), 0));
                            3
                        });
                p.0[..=at].rotate_right(1);
                n = p.0[0]
                    .as_mut()
                    .map_or(0, |(_, parked)| std::mem::take(parked));
            }
            if n + 1 < BATCH {
                CURRENT.set((me, n + 1));
            } else {
                self.total.fetch_add(n + 1, Ordering::Relaxed);
                CURRENT.set((me, 0));
            }
            true
        });
        if counted != Ok(true) {
            // The thread is ending: count directly.
            self.total.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The total, with the calling thread's counts added first.
    pub(crate) fn get(&self) -> u64 {
        let me = id(&self.total);
        let (current, n) = CURRENT.get();
        if current == me && n > 0 {
            self.total.fetch_add(n, Ordering::Relaxed);
            CURRENT.set((me, 0));
        }
        let _ = PARKED.try_with(|p| {
            if let Ok(mut p) = p.try_borrow_mut() {
                for (total, parked) in p.0.iter_mut().flatten() {
                    if id(total) == me {
                        total.fetch_add(std::mem::take(parked), Ordering::Relaxed);
                    }
                }
            }
        });
        self.total.load(Ordering::Relaxed)
    }
}

/// Counters of the slow paths (loads, refreshes, prefetches): shared atomics,
/// each bumped once per loader call, never per hit; and the hit count.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) hits: Hits,
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
        s.hits += self.hits.get();
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
