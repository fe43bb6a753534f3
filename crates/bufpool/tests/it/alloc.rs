//! A steady state of gets and drops allocates nothing, counted by the
//! global allocator of this test binary.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use prodkit_bufpool::{BufPool, PoolConfig};

/// Forwards to `System`, counting the allocations of each thread.
pub(crate) struct Counting;

thread_local! {
    // `const`: reading it never allocates, also from inside the allocator.
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
    static DEALLOCATIONS: Cell<u64> = const { Cell::new(0) };
    static HOOK: Cell<Option<fn()>> = const { Cell::new(None) };
}

/// Runs `f` with `hook` called by each allocation this thread makes (but
/// those of the hook itself): code that runs inside the allocator, as a
/// user's global allocator may.
pub(crate) fn with_hook<R>(hook: fn(), f: impl FnOnce() -> R) -> R {
    HOOK.set(Some(hook));
    let out = f();
    HOOK.set(None);
    out
}

/// Deallocations made by this thread so far.
pub(crate) fn deallocations() -> u64 {
    DEALLOCATIONS.with(Cell::get)
}

/// Allocations made by this thread so far.
fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

fn count() {
    // While the thread's locals are torn down there is no counter: skip.
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
    // Taken while it runs: its own allocations do not call it again.
    if let Ok(Some(hook)) = HOOK.try_with(Cell::take) {
        hook();
        let _ = HOOK.try_with(|h| h.set(Some(hook)));
    }
}

// SAFETY: every call forwards to `System` with the same arguments; the
// counter is bookkeeping in a `const` thread-local, which does not allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's contract for `alloc` is the one `System` needs.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: as `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let _ = DEALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: `ptr` came from this allocator, which got it from `System`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: as `dealloc` and `alloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[test]
fn a_steady_state_of_gets_and_drops_allocates_nothing() {
    let pool = BufPool::default();
    let sizes = [100, 1 << 10, 4000, 64 << 10, 1 << 20, 4 << 20];
    let round = |pool: &BufPool| {
        for &size in &sizes {
            let mut buf = pool.get(size);
            // One byte per 4 KiB page, as the benchmarks do.
            buf.resize(size, 0);
            for page in buf.chunks_mut(4096) {
                page[0] = 1;
            }
        }
    };
    // Warm-up: the first round allocates the buffers and the caches.
    round(&pool);
    let before = allocations();
    for _ in 0..100 {
        round(&pool);
    }
    assert_eq!(allocations() - before, 0, "allocations in the steady state");
    let s = pool.stats();
    // One miss a class, in the warm-up (100 bytes and 1 KiB share one).
    assert_eq!(s.misses, 5, "{s:?}");
}

#[test]
fn the_steady_state_holds_with_the_thread_caches_off_too() {
    let pool = BufPool::new(PoolConfig {
        thread_cache: 0,
        ..PoolConfig::default()
    })
    .unwrap();
    drop(pool.get(64 << 10));
    let before = allocations();
    for _ in 0..1_000 {
        drop(pool.get(64 << 10));
    }
    assert_eq!(allocations() - before, 0);
}
