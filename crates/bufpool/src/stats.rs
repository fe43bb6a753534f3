//! What a pool did and what it holds.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

/// Counters of one thread's use of one pool. Only that thread writes them
/// (a load and a store, no read-modify-write), so counting costs no
/// shared cache line; [`BufPool::stats`](crate::BufPool::stats) sums them.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) gets: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) returns: AtomicU64,
    pub(crate) too_large: AtomicU64,
    pub(crate) over_cap: AtomicU64,
}

/// Adds one to a counter only its owner writes.
#[inline]
pub(crate) fn bump(c: &AtomicU64) {
    c.store(c.load(Relaxed).wrapping_add(1), Relaxed);
}

impl Counters {
    /// Adds `other`'s counts (a thread that leaves, folded into the pool's).
    pub(crate) fn absorb(&self, other: &Counters) {
        for (to, from) in self.fields().into_iter().zip(other.fields()) {
            to.fetch_add(from.load(Relaxed), Relaxed);
        }
    }

    fn fields(&self) -> [&AtomicU64; 5] {
        [
            &self.gets,
            &self.misses,
            &self.returns,
            &self.too_large,
            &self.over_cap,
        ]
    }

    pub(crate) fn add_to(&self, stats: &mut Stats) {
        let (gets, misses) = (self.gets.load(Relaxed), self.misses.load(Relaxed));
        stats.gets += gets;
        // Hits are not counted on their own: every get is a hit or a miss.
        stats.hits += gets.saturating_sub(misses);
        stats.misses += misses;
        stats.returns += self.returns.load(Relaxed);
        stats.discarded_too_large += self.too_large.load(Relaxed);
        stats.discarded_over_cap += self.over_cap.load(Relaxed);
    }
}

/// Classes a pool has, at most: 64 bytes to 1 GiB.
pub(crate) const MAX_CLASSES: usize = 25;

/// Buffers a thread keeps of one class, at most (`thread_cache`).
pub(crate) const MAX_SLOTS: usize = 8;

/// One thread's counters and what it keeps, per class: fixed arrays, so
/// that the owner's hot path updates them with no pointer to chase, no
/// bounds to check and no load.
#[derive(Debug)]
pub(crate) struct LocalStats {
    pub(crate) counters: Counters,
    pub(crate) cached: [Cached; MAX_CLASSES],
}

/// What a thread keeps of one class: its buffers, the first `buffers`
/// slots, and their capacities.
#[derive(Debug, Default)]
pub(crate) struct Cached {
    pub(crate) buffers: AtomicUsize,
    pub(crate) caps: [AtomicUsize; MAX_SLOTS],
}

impl Cached {
    /// Buffers and bytes, as last stored.
    pub(crate) fn read(&self) -> (usize, usize) {
        let n = self.buffers.load(Relaxed).min(MAX_SLOTS);
        let bytes = self.caps[..n].iter().map(|c| c.load(Relaxed)).sum();
        (n, bytes)
    }
}

impl LocalStats {
    pub(crate) fn new() -> LocalStats {
        LocalStats {
            counters: Counters::default(),
            cached: std::array::from_fn(|_| Cached::default()),
        }
    }
}

/// A pool's counts since it was made, and what it retains now.
///
/// Counts are exact once the threads that used the pool are quiet; while
/// they run, a sum may miss their last few operations, and no count ever
/// goes down from one call to the next, also while threads exit. What a
/// thread keeps in its cache moves to the shared queues in its thread-local
/// destructors, which `JoinHandle::join` waits for and the end of a
/// `thread::scope` does not: right after a scope the counts are exact, but
/// `buffers` and `retained_bytes` may count such a thread's cache twice
/// while it moves.
///
/// ```
/// use prodkit_bufpool::BufPool;
///
/// let pool = BufPool::default();
/// drop(pool.get(100));
/// drop(pool.get(100));
/// let s = pool.stats();
/// assert_eq!((s.gets, s.misses, s.hits, s.returns), (2, 1, 1, 2));
/// assert_eq!(s.classes[0].size, 1024);
/// assert_eq!(s.classes[0].buffers, 1);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Buffers asked for.
    pub gets: u64,
    /// Asks met by a retained buffer.
    pub hits: u64,
    /// Asks met by a new allocation (none retained, or above `max_class`).
    pub misses: u64,
    /// Buffers given back (dropped) and kept.
    pub returns: u64,
    /// Buffers given back and freed: smaller than `min_class` or larger
    /// than `max_class`.
    pub discarded_too_large: u64,
    /// Buffers given back and freed: the pool held its limit.
    pub discarded_over_cap: u64,
    /// Bytes retained, in the shared queues and the threads' caches.
    pub retained_bytes: usize,
    /// Per class, smallest first.
    pub classes: Vec<ClassStats>,
}

/// What a pool retains in one size class.
///
/// ```
/// use prodkit_bufpool::BufPool;
///
/// let pool = BufPool::default();
/// let mut buf = pool.get(10);
/// buf.extend_from_slice(&[0; 3000]); // grows to 3000 bytes or more
/// drop(buf);
/// let s = pool.stats();
/// let class = s.classes.iter().find(|c| c.buffers == 1).unwrap();
/// assert_eq!(class.size, 2048); // the largest class not above its capacity
/// assert!(class.retained_bytes >= 3000);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClassStats {
    /// The class: buffers here hold at least this many bytes, and less
    /// than twice as many.
    pub size: usize,
    /// Buffers retained.
    pub buffers: usize,
    /// Their capacity, in bytes.
    pub retained_bytes: usize,
}
