//! The thread caches: a few buffers of each class that one thread keeps
//! for itself, in front of the shared queues.
//!
//! A thread's cache for a class takes its room from the pool's byte budget
//! when it first keeps a buffer (`slots` buffers of up to twice the class
//! size: a buffer of a class has less than twice its size), and gives it
//! back when the thread exits, so that what the caches hold never takes
//! the pool over `max_retained_bytes`, and keeping or taking a buffer in
//! the cache touches nothing shared.
//!
//! The fast path (a get or a put in the cache of the first pool a thread
//! uses) reaches the cache through an `UnsafeCell` with one load of a flag
//! and no store to it: a `RefCell` stores its flag twice per access, and
//! each store is forwarded to the next access's load on the critical path
//! (a thread-local stack of buffers: 11.3 ns a get and put with a
//! `RefCell`, 8.9 ns with the flag, in a bare loop on AMD EPYC).
//! Everything else goes through [`Slot::enter`], which sets the flag for
//! as long as it holds the cache. Buffers are parked as pointer and
//! capacity ([`Parked`]).

use std::cell::{Cell, UnsafeCell};
use std::mem::ManuallyDrop;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Weak};

use crate::BufPool;
use crate::parked::Parked;
use crate::pool::{Inner, SAMPLE};
use crate::stats::{LocalStats, MAX_CLASSES, MAX_SLOTS, bump};

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
    bufs: Parked,
    /// Buffers held, the first `len` slots.
    len: usize,
    /// Buffers kept at most.
    slots: usize,
    /// Buffers this cache may hold now: `slots` once their room is
    /// reserved, 0 before (one comparison on the fast path).
    room: usize,
    /// Budget taken for the slots; 0 until the first buffer is kept.
    reserved: usize,
}

const NO_CLASS: LocalClass = LocalClass {
    bufs: Parked::EMPTY,
    len: 0,
    slots: 0,
    room: 0,
    reserved: 0,
};

/// A thread's caches: the first pool it uses inline, others after it.
#[derive(Default)]
struct Locals {
    first: Option<Local>,
    others: Vec<Local>,
}

/// A thread's caches, and whether code is inside them.
struct Slot {
    /// True while [`Slot::enter`] holds `locals`.
    busy: Cell<bool>,
    /// Without drop glue (`ManuallyDrop`), so that reaching the thread
    /// local costs no check of whether its destructor is registered yet:
    /// [`EXIT`] empties it when the thread exits.
    locals: UnsafeCell<ManuallyDrop<Locals>>,
}

thread_local! {
    static LOCALS: Slot = const {
        Slot {
            busy: Cell::new(false),
            locals: UnsafeCell::new(ManuallyDrop::new(Locals { first: None, others: Vec::new() })),
        }
    };
    /// Registered with the first cache a thread makes; its destructor
    /// frees the thread's caches.
    static EXIT: Exit = const { Exit };
}

impl Slot {
    /// Runs `f` on the caches, unless code is inside them already: the
    /// allocator or a panic hook that `f` calls, using a pool.
    fn enter<R>(&self, f: impl FnOnce(&mut Locals) -> R) -> Option<R> {
        if self.busy.replace(true) {
            return None;
        }
        /// Clears `busy` when `enter` returns or unwinds.
        struct Leave<'a>(&'a Cell<bool>);
        impl Drop for Leave<'_> {
            fn drop(&mut self) {
                self.0.set(false);
            }
        }
        let _leave = Leave(&self.busy);
        #[allow(unsafe_code, reason = "the fast path's cell; see the module docs")]
        // SAFETY: `busy` was false, so no other reference to `locals` is
        // live: references are made only here and in `fast`, `fast` makes
        // none while `busy` is true, and each of its own ends before it
        // returns, calling nothing that could come here. This one ends
        // with `f`, before `_leave` clears `busy`, whether `f` returns or
        // unwinds; a call inside `f` that re-enters finds `busy` true and
        // gets `None`. Thread-locals are never shared between threads.
        let locals = unsafe { &mut *self.locals.get() };
        Some(f(locals))
    }

    /// The fast path: `f` on the cache of the first pool the thread uses,
    /// if it is `inner`'s and nothing is inside the caches.
    ///
    /// `f` must call nothing that can run code outside this module: no
    /// allocation or deallocation, no drop of anything but `None`, no
    /// panic (checked indexing with `get`, no arithmetic that can
    /// overflow), no user code. [`Local::take_cached`] and
    /// [`Local::keep`] are written so.
    #[inline(always)]
    fn fast<R>(&self, inner: &Inner, f: impl FnOnce(&mut Local) -> Option<R>) -> Option<R> {
        if self.busy.get() {
            return None;
        }
        #[allow(unsafe_code, reason = "the fast path's cell; see the module docs")]
        // SAFETY: `busy` is false, so `enter` holds no reference to
        // `locals` (it holds one only while `busy` is true, unwinding
        // included), and no other `fast` runs on this thread: `fast`'s
        // callers, `pop` and `push`, pass an `f` that calls nothing that
        // can run code outside this module (see above), so nothing can
        // re-enter between here and the end of this reference's life,
        // which is the end of this function. Thread-locals are never
        // shared between threads.
        let locals = unsafe { &mut *self.locals.get() };
        match &mut locals.first {
            Some(local) if local.id == inner.id => f(local),
            _ => None,
        }
    }
}

/// Frees the thread's caches when the thread exits.
struct Exit;

impl Drop for Exit {
    fn drop(&mut self) {
        let _ = LOCALS.try_with(|slot| {
            // Dropped outside `enter`: what the caches' destructors return
            // finds no cache (`EXIT` is gone, so none is made) and takes
            // the shared path.
            let gone = slot.enter(std::mem::take);
            drop(gone);
        });
    }
}

/// Runs `f` on this thread's cache for `pool` (made on first use); `None`
/// when the thread has no cache any more (it is exiting) or `f` would
/// re-enter it.
pub(crate) fn with<R>(pool: &BufPool, f: impl FnOnce(&mut Local) -> R) -> Option<R> {
    let inner = &pool.inner;
    LOCALS
        .try_with(|slot| {
            slot.enter(|locals| {
                if let Some(first) = &mut locals.first
                    && first.id == inner.id
                {
                    return Some(f(first));
                }
                locals.find(inner).map(f)
            })
            .flatten()
        })
        .ok()
        .flatten()
}

/// The fast case of a get: a buffer of class `idx` from this thread's
/// cache, when `inner` is the first pool the thread uses and the cache has
/// one; `None` sends the caller to [`with`] and [`Local::get`].
#[inline(always)]
pub(crate) fn pop(inner: &Inner, idx: usize) -> Option<Vec<u8>> {
    LOCALS
        .try_with(|slot| slot.fast(inner, |local| local.take_cached(idx)))
        .ok()
        .flatten()
}

/// The fast case of a put: keeps `buf` (of class `idx`, cleared) in this
/// thread's cache, when `inner` is the first pool the thread uses, the
/// cache has room and this return is not one to sample; `false` (and `buf`
/// untouched) sends the caller to [`with`] and [`Local::put`].
#[inline(always)]
pub(crate) fn push(inner: &Inner, idx: usize, buf: &mut Vec<u8>) -> bool {
    LOCALS
        .try_with(|slot| {
            slot.fast(inner, |local| {
                if local.countdown == 0 || !local.keep(idx, buf) {
                    return None;
                }
                local.countdown = local.countdown.wrapping_sub(1);
                Some(())
            })
        })
        .is_ok_and(|kept| kept.is_some())
}

/// Frees this thread's cache for pool `id` (the pool is being dropped).
pub(crate) fn forget(id: u64) {
    let _ = LOCALS.try_with(|slot| {
        // Taken out inside, dropped outside: their destructors return
        // buffers to the shared queues, through the allocator.
        let gone = slot.enter(|locals| {
            let mut gone = Vec::new();
            if locals.first.as_ref().is_some_and(|l| l.id == id) {
                gone.extend(locals.first.take());
            }
            if let Some(at) = locals.others.iter().position(|l| l.id == id) {
                gone.push(locals.others.swap_remove(at));
            }
            gone
        });
        drop(gone);
    });
}

impl Locals {
    /// The cache for `inner` when it is not the first, made if new;
    /// `None` once the thread is exiting (a cache made then would never be
    /// freed).
    #[cold]
    fn find(&mut self, inner: &Arc<Inner>) -> Option<&mut Local> {
        // A cache of a pool that is gone holds memory for nothing.
        if self
            .first
            .as_ref()
            .is_some_and(|l| l.pool.strong_count() == 0)
        {
            self.first = None;
        }
        let at = self.others.iter().position(|l| l.id == inner.id);
        if self.first.is_none() {
            // The first place is the one with the fast path.
            let local = match at {
                Some(at) => self.others.swap_remove(at),
                None => {
                    // Registers `EXIT`'s destructor, or fails once it ran.
                    EXIT.try_with(|_| ()).ok()?;
                    Local::new(inner)
                }
            };
            return Some(self.first.insert(local));
        }
        if let Some(at) = at {
            return Some(&mut self.others[at]);
        }
        EXIT.try_with(|_| ()).ok()?;
        self.others.retain(|l| l.pool.strong_count() > 0);
        self.others.push(Local::new(inner));
        self.others.last_mut()
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
        let stats = Arc::new(LocalStats::new());
        inner.register(Arc::clone(&stats));
        Local {
            id: inner.id,
            pool: Arc::downgrade(inner),
            classes,
            stats,
            countdown: 0,
        }
    }

    /// A buffer of class `idx` from this cache, counted as a get, if it
    /// holds one. Calls nothing outside this module and cannot panic (see
    /// [`Slot::fast`]).
    #[inline(always)]
    fn take_cached(&mut self, idx: usize) -> Option<Vec<u8>> {
        let class = self.classes.get_mut(idx)?;
        let len = class.len.checked_sub(1)?;
        let buf = class.bufs.take(len)?;
        class.len = len;
        if let Some(cached) = self.stats.cached.get(idx) {
            cached.buffers.store(len, Relaxed);
        }
        bump(&self.stats.counters.gets);
        Some(buf)
    }

    /// Keeps `buf` in this cache, counted as a return, if the class has
    /// room (reserved); `buf` is left empty then. Calls nothing outside
    /// this module and cannot panic (see [`Slot::fast`]).
    #[inline(always)]
    fn keep(&mut self, idx: usize, buf: &mut Vec<u8>) -> bool {
        let Some(class) = self.classes.get_mut(idx) else {
            return false;
        };
        let len = class.len;
        if len >= class.room {
            return false;
        }
        let cap = buf.capacity();
        if !class.bufs.put(len, buf) {
            return false;
        }
        class.len = len + 1;
        if let Some(cached) = self.stats.cached.get(idx) {
            if let Some(c) = cached.caps.get(len) {
                c.store(cap, Relaxed);
            }
            cached.buffers.store(len + 1, Relaxed);
        }
        bump(&self.stats.counters.returns);
        true
    }

    /// A buffer for class `idx` (`None`: above the classes, of exactly
    /// `size`): from this cache, else the shared queue, else new.
    pub(crate) fn get(&mut self, inner: &Inner, idx: Option<usize>, size: usize) -> Vec<u8> {
        if let Some(buf) = idx.and_then(|i| self.take_cached(i)) {
            return buf;
        }
        bump(&self.stats.counters.gets);
        self.get_slow(inner, idx, size)
    }

    /// `get` past this cache: the shared queue, else a new buffer.
    #[cold]
    #[inline(never)]
    fn get_slow(&mut self, inner: &Inner, idx: Option<usize>, size: usize) -> Vec<u8> {
        if let Some(buf) = idx.and_then(|i| inner.pop_shared(i)) {
            return buf;
        }
        bump(&self.stats.counters.misses);
        inner.fresh(inner.size_for(idx, size))
    }

    /// Keeps `buf` (of class `idx`; `None`: too large or too small, freed)
    /// in this cache, else the shared queue, else frees it; `buf` is left
    /// empty.
    pub(crate) fn put(&mut self, inner: &Inner, idx: Option<usize>, len: usize, buf: &mut Vec<u8>) {
        if self.countdown == 0 {
            self.countdown = SAMPLE - 1;
            inner.sampled_length(len);
        } else {
            self.countdown -= 1;
        }
        if let Some(i) = idx
            && self.keep(i, buf)
        {
            return;
        }
        self.put_slow(inner, idx, buf);
    }

    /// `put` past the fast case: a calibration sample to take, the cache's
    /// room to reserve, or the shared queue.
    #[cold]
    #[inline(never)]
    fn put_slow(&mut self, inner: &Inner, idx: Option<usize>, buf: &mut Vec<u8>) {
        let Some(i) = idx else {
            bump(&self.stats.counters.too_large);
            drop(std::mem::take(buf));
            return;
        };
        let class = &mut self.classes[i];
        if class.len < class.slots && class.reserved == 0 {
            {
                // A buffer of a class holds less than twice its size, and
                // no more than `max_class` in the largest.
                let size = inner.classes[i].size;
                let most = size.saturating_mul(2).min(inner.config.max_class.max(size));
                let want = class.slots.saturating_mul(most);
                if inner.reserve_for_cache(want) {
                    class.reserved = want;
                    class.room = class.slots;
                }
            }
        }
        if self.keep(i, buf) {
            return;
        }
        match inner.push_shared(i, std::mem::take(buf)) {
            Ok(()) => bump(&self.stats.counters.returns),
            Err(_freed) => bump(&self.stats.counters.over_cap),
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
            for buf in (0..class.len).filter_map(|at| class.bufs.take(at)) {
                let _ = inner.push_shared(i, buf);
            }
            class.len = 0;
            self.stats.cached[i].buffers.store(0, Relaxed);
        }
        inner.unregister(&self.stats);
    }
}
