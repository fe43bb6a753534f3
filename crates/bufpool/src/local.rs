//! The thread caches: a few buffers of each class that one thread keeps
//! for itself, in front of the shared queues.
//!
//! A thread's cache for a class takes its room from the pool's byte budget
//! when it first keeps a buffer (`slots` buffers of up to twice the class
//! size: a buffer of a class has less than twice its size), and gives it
//! back when the thread exits, so that what the caches hold never takes
//! the pool over `max_retained_bytes`, and keeping or taking a buffer in
//! the cache touches nothing shared.

use std::cell::RefCell;
use std::sync::{Arc, Weak};

use crate::BufPool;
use crate::pool::{Inner, SAMPLE};
use crate::stats::{LocalStats, bump};

/// Buffers a thread keeps of one class, at most (`thread_cache`).
pub(crate) const MAX_SLOTS: usize = 8;

/// Classes a pool has, at most: 64 bytes to 1 GiB.
const MAX_CLASSES: usize = 25;

/// One thread's cache for one pool. Everything the hot path reads lives in
/// the thread-local block itself, with no pointer to chase: a pointer
/// chain of a few dependent loads per get and per put cost 30 ns (measured).
pub(crate) struct Local {
    id: u64,
    pool: Weak<Inner>,
    classes: [LocalClass; MAX_CLASSES],
    stats: Arc<LocalStats>,
    /// Returns until the next one whose length is counted for
    /// calibration (one in `SAMPLE`, the thread's first included, so that
    /// short-lived threads count too).
    countdown: u32,
}

struct LocalClass {
    bufs: [Option<Vec<u8>>; MAX_SLOTS],
    /// Buffers held, the first `len` slots.
    len: usize,
    /// Buffers kept at most.
    slots: usize,
    /// Budget taken for the slots; 0 until the first buffer is kept.
    reserved: usize,
    /// Their capacity.
    bytes: usize,
}

const NO_CLASS: LocalClass = LocalClass {
    bufs: [const { None }; MAX_SLOTS],
    len: 0,
    slots: 0,
    reserved: 0,
    bytes: 0,
};

/// A thread's caches: the first pool it uses inline, others after it.
struct Locals {
    first: Option<Local>,
    others: Vec<Local>,
}

thread_local! {
    static LOCALS: RefCell<Locals> = const {
        RefCell::new(Locals { first: None, others: Vec::new() })
    };
}

/// Runs `f` on this thread's cache for `pool` (made on first use); `None`
/// when the thread has no cache any more (it is exiting) or `f` would
/// re-enter it.
#[inline(always)]
pub(crate) fn with<R>(pool: &BufPool, f: impl FnOnce(&mut Local) -> R) -> Option<R> {
    let inner = &pool.inner;
    LOCALS
        .try_with(|locals| {
            let mut locals = locals.try_borrow_mut().ok()?;
            let locals = &mut *locals;
            if let Some(first) = &mut locals.first
                && first.id == inner.id
            {
                return Some(f(first));
            }
            Some(f(locals.find(inner)))
        })
        .ok()
        .flatten()
}

/// Frees this thread's cache for pool `id` (the pool is being dropped).
pub(crate) fn forget(id: u64) {
    let _ = LOCALS.try_with(|locals| {
        let Ok(mut locals) = locals.try_borrow_mut() else {
            return;
        };
        if locals.first.as_ref().is_some_and(|l| l.id == id) {
            locals.first = None;
        }
        locals.others.retain(|l| l.id != id);
    });
}

impl Locals {
    /// The cache for `inner` other than the first, made if new.
    #[cold]
    fn find(&mut self, inner: &Arc<Inner>) -> &mut Local {
        // Caches of pools that are gone hold memory for nothing.
        self.others.retain(|l| l.pool.strong_count() > 0);
        if self
            .first
            .as_ref()
            .is_none_or(|l| l.pool.strong_count() == 0)
        {
            self.first = Some(Local::new(inner));
            return self.first.as_mut().expect("just set");
        }
        match self.others.iter().position(|l| l.id == inner.id) {
            Some(at) => &mut self.others[at],
            None => {
                self.others.push(Local::new(inner));
                self.others.last_mut().expect("just pushed")
            }
        }
    }
}

impl Local {
    fn new(inner: &Arc<Inner>) -> Local {
        let config = &inner.config;
        let mut classes = [NO_CLASS; MAX_CLASSES];
        for (local, class) in classes.iter_mut().zip(inner.classes.iter()) {
            local.slots = if class.size <= 64 << 10 {
                config.thread_cache.min(MAX_SLOTS)
            } else {
                config.thread_cache.min(1)
            };
        }
        let stats = Arc::new(LocalStats::new(inner.classes.len()));
        inner.register(Arc::clone(&stats));
        Local {
            id: inner.id,
            pool: Arc::downgrade(inner),
            classes,
            stats,
            countdown: 0,
        }
    }

    /// A buffer for class `idx` (`None`: above the classes, of exactly
    /// `size`): from this cache, else the shared queue, else new.
    #[inline(always)]
    pub(crate) fn get(&mut self, inner: &Inner, idx: Option<usize>, size: usize) -> Vec<u8> {
        let counters = &self.stats.counters;
        bump(&counters.gets);
        if let Some(i) = idx {
            let class = &mut self.classes[i];
            if class.len > 0 {
                class.len -= 1;
                if let Some(buf) = class.bufs[class.len].take() {
                    class.bytes -= buf.capacity();
                    self.stats.set_cached(i, class.len, class.bytes);
                    return buf;
                }
            }
        }
        self.get_slow(inner, idx, size)
    }

    /// `get` past this cache: the shared queue, else a new buffer.
    #[cold]
    #[inline(never)]
    fn get_slow(&mut self, inner: &Inner, idx: Option<usize>, size: usize) -> Vec<u8> {
        let counters = &self.stats.counters;
        if let Some(buf) = idx.and_then(|i| inner.pop_shared(i)) {
            return buf;
        }
        bump(&counters.misses);
        inner.fresh(inner.size_for(idx, size))
    }

    /// Keeps `buf` (of class `idx`; `None`: too large or too small, freed)
    /// in this cache, else the shared queue, else frees it; `buf` is left
    /// empty.
    #[inline(always)]
    pub(crate) fn put(&mut self, inner: &Inner, idx: Option<usize>, len: usize, buf: &mut Vec<u8>) {
        if self.countdown == 0 {
            self.countdown = SAMPLE - 1;
            inner.sampled_length(len);
        } else {
            self.countdown -= 1;
        }
        if let Some(i) = idx {
            let class = &mut self.classes[i];
            if class.len < class.slots && class.reserved > 0 {
                class.bytes += buf.capacity();
                // Moved from where the caller holds it to the slot, never
                // through a temporary (a 24-byte copy that the store
                // forwarding of the CPU mishandles cost 10 ns a put).
                class.bufs[class.len] = Some(std::mem::take(buf));
                class.len += 1;
                self.stats.set_cached(i, class.len, class.bytes);
                bump(&self.stats.counters.returns);
                return;
            }
        }
        self.put_slow(inner, idx, buf);
    }

    /// `put` past the fast case: a calibration sample to take, the cache's
    /// room to reserve, or the shared queue.
    #[cold]
    #[inline(never)]
    fn put_slow(&mut self, inner: &Inner, idx: Option<usize>, buf: &mut Vec<u8>) {
        let buf = std::mem::take(buf);
        let counters = &self.stats.counters;
        let Some(i) = idx else {
            bump(&counters.too_large);
            return;
        };
        let class = &mut self.classes[i];
        if class.len < class.slots {
            if class.reserved == 0 {
                // A buffer of a class holds less than twice its size, and
                // no more than `max_class` in the largest.
                let size = inner.classes[i].size;
                let most = size.saturating_mul(2).min(inner.config.max_class.max(size));
                let want = class.slots.saturating_mul(most);
                if inner.reserve_for_cache(want) {
                    class.reserved = want;
                }
            }
            if class.reserved > 0 {
                class.bytes += buf.capacity();
                class.bufs[class.len] = Some(buf);
                class.len += 1;
                self.stats.set_cached(i, class.len, class.bytes);
                bump(&counters.returns);
                return;
            }
        }
        match inner.push_shared(i, buf) {
            Ok(()) => bump(&counters.returns),
            Err(_freed) => bump(&counters.over_cap),
        }
    }
}

impl Drop for Local {
    /// The thread exits (or its pool is gone): the buffers go to the
    /// shared queues as room allows, the reservations back to the budget,
    /// the counts to the pool.
    fn drop(&mut self) {
        let Some(inner) = self.pool.upgrade() else {
            return;
        };
        for (i, class) in self
            .classes
            .iter_mut()
            .take(inner.classes.len())
            .enumerate()
        {
            inner.release_for_cache(class.reserved);
            // Counted as returns when they came; those that find no room
            // now are freed.
            for buf in class.bufs[..class.len].iter_mut().filter_map(Option::take) {
                let _ = inner.push_shared(i, buf);
            }
            class.len = 0;
            self.stats.set_cached(i, 0, 0);
        }
        inner.unregister(&self.stats);
    }
}
