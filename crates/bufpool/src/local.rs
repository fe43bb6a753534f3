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

/// One thread's cache for one pool.
pub(crate) struct Local {
    id: u64,
    pool: Weak<Inner>,
    classes: Box<[LocalClass]>,
    stats: Arc<LocalStats>,
}

struct LocalClass {
    bufs: Vec<Vec<u8>>,
    /// Buffers kept at most.
    slots: usize,
    /// Budget taken for the slots; 0 until the first buffer is kept.
    reserved: usize,
    /// Their capacity.
    bytes: usize,
    /// Returns since the last sample for calibration.
    returns: u32,
}

thread_local! {
    static LOCALS: RefCell<Vec<Local>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on this thread's cache for `pool` (made on first use); `None`
/// when the thread has no cache any more (it is exiting) or `f` would
/// re-enter it.
pub(crate) fn with<R>(pool: &BufPool, f: impl FnOnce(&mut Local) -> R) -> Option<R> {
    let inner = &pool.inner;
    LOCALS
        .try_with(|locals| {
            let mut locals = locals.try_borrow_mut().ok()?;
            let at = match locals.iter().position(|l| l.id == inner.id) {
                Some(at) => at,
                None => {
                    // Caches of pools that are gone hold memory for nothing.
                    locals.retain(|l| l.pool.strong_count() > 0);
                    locals.push(Local::new(inner));
                    locals.len() - 1
                }
            };
            Some(f(&mut locals[at]))
        })
        .ok()
        .flatten()
}

impl Local {
    fn new(inner: &Arc<Inner>) -> Local {
        let config = &inner.config;
        let classes = inner
            .classes
            .iter()
            .map(|c| LocalClass {
                bufs: Vec::new(),
                slots: if c.size <= 64 << 10 {
                    config.thread_cache
                } else {
                    config.thread_cache.min(1)
                },
                reserved: 0,
                bytes: 0,
                returns: 0,
            })
            .collect();
        let stats = Arc::new(LocalStats::new(inner.classes.len()));
        inner.register(Arc::clone(&stats));
        Local {
            id: inner.id,
            pool: Arc::downgrade(inner),
            classes,
            stats,
        }
    }

    /// A buffer for class `idx` (`None`: above the classes, of exactly
    /// `size`): from this cache, else the shared queue, else new.
    pub(crate) fn get(&mut self, inner: &Inner, idx: Option<usize>, size: usize) -> Vec<u8> {
        let counters = &self.stats.counters;
        bump(&counters.gets);
        if let Some(i) = idx {
            let class = &mut self.classes[i];
            if let Some(buf) = class.bufs.pop() {
                class.bytes -= buf.capacity();
                self.stats.set_cached(i, class.bufs.len(), class.bytes);
                bump(&counters.hits);
                return buf;
            }
            if let Some(buf) = inner.pop_shared(i) {
                bump(&counters.hits);
                return buf;
            }
        }
        bump(&counters.misses);
        inner.fresh(inner.size_for(idx, size))
    }

    /// Keeps the buffer in `slot` (of class `idx`; `None`: too large or too
    /// small, freed) in this cache, else the shared queue, else frees it.
    pub(crate) fn put(&mut self, inner: &Inner, idx: Option<usize>, slot: &mut Option<Vec<u8>>) {
        let counters = &self.stats.counters;
        let Some(buf) = slot.take() else { return };
        let Some(i) = idx else {
            bump(&counters.too_large);
            return;
        };
        let class = &mut self.classes[i];
        class.returns += 1;
        if class.returns == SAMPLE {
            class.returns = 0;
            inner.sampled_return(i);
        }
        if class.bufs.len() < class.slots {
            if class.reserved == 0 {
                let want = class.slots * 2 * inner.classes[i].size;
                if inner.reserve(want) {
                    class.reserved = want;
                    class.bufs.reserve_exact(class.slots);
                }
            }
            if class.reserved > 0 {
                class.bytes += buf.capacity();
                class.bufs.push(buf);
                self.stats.set_cached(i, class.bufs.len(), class.bytes);
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
        for (i, class) in self.classes.iter_mut().enumerate() {
            inner.release(class.reserved);
            for buf in class.bufs.drain(..) {
                if inner.push_shared(i, buf).is_err() {
                    bump(&self.stats.counters.over_cap);
                }
            }
            self.stats.set_cached(i, 0, 0);
        }
        inner.unregister(&self.stats);
    }
}
