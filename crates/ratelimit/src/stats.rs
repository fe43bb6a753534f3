use std::cell::Cell;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crossbeam_utils::CachePadded;

/// Counters of a direct limiter, or the decision counters of a keyed one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Requests that conformed and were admitted.
    pub allowed: u64,
    /// Requests refused (enforcing mode).
    pub denied: u64,
    /// Requests that did not conform but were let through (shadow mode).
    pub shadow_denied: u64,
}

impl Stats {
    /// Counts one decision.
    #[inline]
    pub(crate) fn count(&mut self, allowed: bool, conforming: bool) {
        let counter = if conforming {
            &mut self.allowed
        } else if allowed {
            &mut self.shadow_denied
        } else {
            &mut self.denied
        };
        *counter += 1;
    }

    pub(crate) fn add(&mut self, other: &Stats) {
        self.allowed += other.allowed;
        self.denied += other.denied;
        self.shadow_denied += other.shadow_denied;
    }
}

/// Counters of a keyed limiter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyedStats {
    /// Decisions, as for a direct limiter.
    pub decisions: Stats,
    /// Keys held now, idle ones included (at most `max_keys`).
    pub keys: usize,
    /// The hard bound on `keys`.
    pub max_keys: usize,
    /// Keys dropped to make room for a new key, in total.
    pub evictions: u64,
    /// The part of `evictions` whose key was still owed time (not yet
    /// indistinguishable from a fresh key): each forgot up to `burst` requests
    /// of debt. Zero unless more than `max_keys` keys were active at once.
    pub evictions_active: u64,
}

/// Decision counters striped per thread, so counting is an uncontended atomic
/// add instead of a contended one on a line every thread writes.
#[derive(Debug)]
pub(crate) struct Counters {
    stripes: Box<[CachePadded<Stripe>]>,
}

#[derive(Debug, Default)]
pub(crate) struct Stripe {
    allowed: AtomicU64,
    denied: AtomicU64,
    shadow_denied: AtomicU64,
}

impl Stripe {
    #[inline]
    pub(crate) fn count(&self, allowed: bool, conforming: bool) {
        let counter = if conforming {
            &self.allowed
        } else if allowed {
            &self.shadow_denied
        } else {
            &self.denied
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

impl Counters {
    pub(crate) fn new() -> Counters {
        static STRIPES: OnceLock<usize> = OnceLock::new();
        let n = *STRIPES.get_or_init(|| {
            let cpus = std::thread::available_parallelism().map_or(1, usize::from);
            cpus.next_power_of_two().min(64)
        });
        Counters {
            stripes: (0..n)
                .map(|_| CachePadded::new(Stripe::default()))
                .collect(),
        }
    }

    /// The calling thread's stripe.
    #[inline]
    pub(crate) fn stripe(&self) -> &Stripe {
        &self.stripes[thread_index() & (self.stripes.len() - 1)]
    }

    pub(crate) fn totals(&self) -> Stats {
        let mut stats = Stats::default();
        for s in self.stripes.iter() {
            stats.allowed += s.allowed.load(Ordering::Relaxed);
            stats.denied += s.denied.load(Ordering::Relaxed);
            stats.shadow_denied += s.shadow_denied.load(Ordering::Relaxed);
        }
        stats
    }
}

/// A small number per thread, handed out in order of first use.
#[inline]
fn thread_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    INDEX.with(|index| {
        let i = index.get();
        if i != usize::MAX {
            return i;
        }
        let i = NEXT.fetch_add(1, Ordering::Relaxed) & (usize::MAX >> 1);
        index.set(i);
        i
    })
}
