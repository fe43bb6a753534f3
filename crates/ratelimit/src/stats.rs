use std::cell::Cell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use parking_lot::Mutex;

use crossbeam_utils::CachePadded;

/// Counters of a direct limiter, or the decision counters of a keyed one, in
/// cells: a `check` is one cell, `check_n(n)` is `n`, and `check_n(0)` (a look
/// at the state) counts nowhere.
///
/// ```
/// use prodkit_ratelimit::{quanta::Clock, Quota, RateLimiter};
///
/// let (clock, _mock) = Clock::mock();
/// let limiter = RateLimiter::builder(Quota::per_second(3)?).clock(clock).build();
/// assert!(limiter.check().is_allowed());
/// assert!(limiter.check_n(2)?.is_allowed());
/// assert!(!limiter.check_n(2)?.is_allowed());
/// limiter.set_shadow(true);
/// assert!(limiter.check().is_allowed()); // let through, but over the quota
///
/// let stats = limiter.stats();
/// assert_eq!(stats.allowed, 3);
/// assert_eq!(stats.denied, 2);
/// assert_eq!(stats.shadow_denied, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Cells that conformed and were admitted.
    pub allowed: u64,
    /// Cells refused (enforcing mode).
    pub denied: u64,
    /// Cells that did not conform but were let through (shadow mode).
    pub shadow_denied: u64,
}

impl Stats {
    /// Counts one decision of `n` cells.
    #[inline]
    pub(crate) fn count(&mut self, allowed: bool, conforming: bool, n: u32) {
        let counter = if conforming {
            &mut self.allowed
        } else if allowed {
            &mut self.shadow_denied
        } else {
            &mut self.denied
        };
        *counter += u64::from(n);
    }

    pub(crate) fn add(&mut self, other: &Stats) {
        self.allowed += other.allowed;
        self.denied += other.denied;
        self.shadow_denied += other.shadow_denied;
    }
}

/// Counters of a keyed limiter.
///
/// ```
/// use std::time::Duration;
/// use prodkit_ratelimit::{quanta::Clock, KeyedRateLimiter, Quota};
///
/// let (clock, mock) = Clock::mock();
/// // Room for 2 keys, each allowed one request per second.
/// let limiter: KeyedRateLimiter<str> = KeyedRateLimiter::builder(Quota::per_second(1)?, 2)
///     .clock(clock)
///     .build()?;
/// assert!(limiter.check("a").is_allowed());
/// mock.increment(Duration::from_millis(500));
/// assert!(limiter.check("b").is_allowed());
/// // "c" needs room: "a", owing the least time (500 ms), is evicted...
/// assert!(limiter.check("c").is_allowed());
/// // ...and its debt goes to the sketch: "a" is still refused.
/// assert!(!limiter.check("a").is_allowed());
///
/// let stats = limiter.stats();
/// assert_eq!((stats.keys, stats.max_keys), (2, 2));
/// assert_eq!((stats.evictions, stats.evictions_active, stats.evictions_early), (1, 1, 0));
/// assert_eq!((stats.sketch_denials, stats.false_denials), (1, 0));
/// assert_eq!((stats.decisions.allowed, stats.decisions.denied), (3, 1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyedStats {
    /// Decisions, in cells, as for a direct limiter.
    pub decisions: Stats,
    /// Keys held now, idle ones included (at most `max_keys`).
    pub keys: usize,
    /// The hard bound on `keys`.
    pub max_keys: usize,
    /// Keys dropped to make room for a new key, in total.
    pub evictions: u64,
    /// The part of `evictions` whose key still owed time: its debt went to the
    /// sketch, which its next request starts from. Zero unless more keys owed
    /// time at once than the limiter holds.
    pub evictions_active: u64,
    /// The part of `evictions` made while the limiter held fewer than
    /// `max_keys` keys, because the key's shard was full.
    pub evictions_early: u64,
    /// Cells refused to keys not held that a full bucket would have admitted:
    /// refused because of a debt in the sketch. An upper bound on the
    /// over-limiting that the sketch costs.
    pub sketch_denials: u64,
    /// The part of `sketch_denials` whose sketch bucket held the debt of
    /// another key (told by an 8-bit fingerprint, so an estimate): refusals an
    /// exact limiter with unbounded memory would not have made.
    pub false_denials: u64,
}

/// Decision counters of a direct limiter, one stripe per thread: a thread
/// whose index ([`thread_index`]) is below the number of stripes owns its
/// stripe alone, so it counts with a plain load and store, no atomic
/// read-modify-write and no shared cache line. Threads beyond that (more live
/// threads than stripes) share an overflow stripe and count with `fetch_add`.
#[derive(Debug)]
pub(crate) struct Counters {
    stripes: Box<[CachePadded<Stripe>]>,
    overflow: CachePadded<Stripe>,
}

#[derive(Debug, Default)]
struct Stripe {
    allowed: AtomicU64,
    denied: AtomicU64,
    shadow_denied: AtomicU64,
}

impl Stripe {
    #[inline]
    fn counter(&self, allowed: bool, conforming: bool) -> &AtomicU64 {
        if conforming {
            &self.allowed
        } else if allowed {
            &self.shadow_denied
        } else {
            &self.denied
        }
    }
}

impl Counters {
    pub(crate) fn new() -> Counters {
        static STRIPES: OnceLock<usize> = OnceLock::new();
        let n = *STRIPES.get_or_init(|| {
            let cpus = std::thread::available_parallelism().map_or(1, usize::from);
            (2 * cpus).next_power_of_two().clamp(8, 64)
        });
        Counters {
            stripes: (0..n)
                .map(|_| CachePadded::new(Stripe::default()))
                .collect(),
            overflow: CachePadded::new(Stripe::default()),
        }
    }

    /// Counts a decision of `n` cells.
    #[inline]
    pub(crate) fn count(&self, allowed: bool, conforming: bool, n: u32) {
        let n = u64::from(n);
        match self.stripes.get(thread_index()) {
            Some(stripe) => {
                // The stripe's only writer: this thread (see `thread_index`).
                let c = stripe.counter(allowed, conforming);
                c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
            }
            None => {
                self.overflow
                    .counter(allowed, conforming)
                    .fetch_add(n, Ordering::Relaxed);
            }
        }
    }

    pub(crate) fn totals(&self) -> Stats {
        let mut stats = Stats::default();
        for s in self.stripes.iter().chain(std::iter::once(&self.overflow)) {
            stats.allowed += s.allowed.load(Ordering::Relaxed);
            stats.denied += s.denied.load(Ordering::Relaxed);
            stats.shadow_denied += s.shadow_denied.load(Ordering::Relaxed);
        }
        stats
    }
}

/// Indexes of live threads, the least free one first.
static FREE: Mutex<BinaryHeap<Reverse<usize>>> = Mutex::new(BinaryHeap::new());
static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A thread's index: unique among live threads, given back when the thread
/// ends and handed to the next thread that asks (the least free one first).
/// So a stripe indexed by it has one writer at a time; a writer's last store
/// happens before its index is given back (under `FREE`'s lock), which
/// happens before the next owner takes it.
struct ThreadIndex(usize);

impl ThreadIndex {
    fn take() -> ThreadIndex {
        let free = FREE.lock().pop();
        ThreadIndex(free.map_or_else(|| NEXT.fetch_add(1, Ordering::Relaxed), |Reverse(i)| i))
    }
}

impl Drop for ThreadIndex {
    fn drop(&mut self) {
        FREE.lock().push(Reverse(self.0));
    }
}

/// `INDEX` before the thread took an index.
const UNSET: usize = usize::MAX;
/// `INDEX` once the thread gave its index back (its thread-local storage is
/// being torn down): the overflow stripe from then on.
const GONE: usize = usize::MAX - 1;

thread_local! {
    /// The thread's index, read on every count: a plain thread-local word.
    static INDEX: Cell<usize> = const { Cell::new(UNSET) };
    /// Owns the index and gives it back when the thread ends.
    static OWNER: Owner = Owner(ThreadIndex::take());
}

struct Owner(ThreadIndex);

impl Drop for Owner {
    fn drop(&mut self) {
        // Before the index is given back (when the `ThreadIndex` inside drops),
        // so that no later count of this thread writes its old stripe.
        INDEX.with(|i| i.set(GONE));
    }
}

/// The calling thread's index; at least `GONE` (the overflow stripe) while
/// its thread-local storage is being torn down.
#[inline]
fn thread_index() -> usize {
    let i = INDEX.with(Cell::get);
    if i != UNSET {
        return i;
    }
    let i = OWNER.try_with(|o| o.0.0).unwrap_or(GONE);
    INDEX.with(|c| c.set(i));
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_indexes_are_unique_among_live_threads_and_reused() {
        let mine = thread_index();
        let (a, b) = std::thread::scope(|s| {
            let a = s.spawn(thread_index).join().unwrap();
            let b = s.spawn(thread_index).join().unwrap();
            (a, b)
        });
        assert_ne!(a, mine);
        // The first thread ended before the second began: its index was free.
        assert_eq!(a, b);
        let barrier = std::sync::Barrier::new(3);
        let live: Vec<usize> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..3)
                .map(|_| {
                    s.spawn(|| {
                        let i = thread_index();
                        barrier.wait();
                        i
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut unique = live.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), 3, "{live:?}");
        assert!(!live.contains(&mine));
        // In the same test: another test's threads could take a freed index.
        counts_from_many_threads_add_up();
    }

    fn counts_from_many_threads_add_up() {
        let c = Counters::new();
        std::thread::scope(|s| {
            for _ in 0..100 {
                s.spawn(|| {
                    for _ in 0..1000 {
                        c.count(true, true, 1);
                        c.count(false, false, 2);
                    }
                });
            }
        });
        let t = c.totals();
        assert_eq!((t.allowed, t.denied), (100_000, 200_000));
    }
}
