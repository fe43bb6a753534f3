//! The thread caches' fast path and its unsafe code (the cache reached
//! through an `UnsafeCell`, buffers parked as pointer and capacity),
//! exercised through every way in and out, also under miri, which fails on
//! an aliased `&mut`, a use after free or a buffer never freed
//! (`cargo +nightly miri test -p prodkit-bufpool --test it fastpath`).

use std::cell::Cell;
use std::sync::LazyLock;

use prodkit_bufpool::BufPool;

use crate::alloc::with_hook;

#[test]
fn fastpath_buffers_cycle_through_the_caches_and_are_all_freed() {
    // `a` is this thread's first pool (the fast path), `b` its second.
    let a = BufPool::default();
    let b = BufPool::default();
    for _ in 0..3 {
        // 1 KiB, 2 KiB and 4 KiB buffers: 4, 3 and 3 of them.
        let held: Vec<_> = (0..10).map(|i| a.get(1000 << (i % 3))).collect();
        drop(held);
        drop(b.get(5000));
    }
    let s = a.stats();
    // The first round allocates; the caches (4 a class) serve the others.
    assert_eq!((s.gets, s.misses, s.hits, s.returns), (30, 10, 20, 30));
    assert_eq!(s.classes[0].buffers, 4);
    let s = b.stats();
    assert_eq!((s.gets, s.misses, s.hits), (3, 1, 2));
    // A thread that exits gives its cache to the shared queues (joined,
    // not scoped: a scope ends before the thread's destructors have run).
    let a = std::sync::Arc::new(a);
    let a2 = std::sync::Arc::clone(&a);
    std::thread::spawn(move || {
        let held: Vec<_> = (0..2).map(|_| a2.get(1000)).collect();
        drop(held);
    })
    .join()
    .expect("the thread does not panic");
    let s = a.stats();
    assert_eq!(s.classes[0].buffers, 6);
    assert_eq!((s.gets, s.returns), (32, 32));
    // Dropped while this thread's caches hold buffers: miri fails the test
    // on any of them left unfreed.
    drop(a);
    drop(b);
}

static POOL: LazyLock<BufPool> = LazyLock::new(BufPool::default);

thread_local! {
    static HOOKED: Cell<u64> = const { Cell::new(0) };
}

/// Uses the pool from inside the allocator.
fn use_the_pool() {
    HOOKED.set(HOOKED.get() + 1);
    let mut buf = POOL.get(3000);
    buf.extend_from_slice(&[7; 3000]);
    drop(buf);
}

#[test]
fn fastpath_a_pool_used_from_inside_the_allocator_takes_the_shared_path() {
    let pool = &*POOL;
    let before = pool.stats();
    // Each miss allocates inside the thread cache, and the allocator gets
    // and drops a buffer of the same pool there: it must take the shared
    // path, not a second `&mut` to the cache.
    with_hook(use_the_pool, || {
        for _ in 0..3 {
            let held: Vec<_> = (0..3).map(|_| pool.get(1000)).collect();
            assert!(held.iter().all(|b| b.capacity() >= 1000 && b.is_empty()));
            drop(held);
        }
    });
    let hooked = HOOKED.get();
    assert!(hooked >= 3, "the allocator ran the hook {hooked} times");
    let s = pool.stats();
    let gets = s.gets - before.gets;
    assert_eq!(gets, 9 + hooked);
    assert_eq!(s.hits + s.misses, s.gets);
    // Every buffer came back and was kept: none lost, none counted twice.
    assert_eq!(s.returns - before.returns, gets);
    assert_eq!(s.discarded_over_cap + s.discarded_too_large, 0);
    // The hook's 4 KiB buffers went to the shared queue, the thread's
    // 1 KiB ones to its cache.
    assert!(s.classes[2].buffers >= 1);
    assert_eq!(s.classes[0].buffers, 3);
}

static READ_BY_ALLOCATOR: LazyLock<BufPool> = LazyLock::new(BufPool::default);

#[test]
fn fastpath_an_allocator_that_reads_the_stats_does_not_deadlock() {
    // A profiling allocator reads the pool's stats; a thread's first use
    // of the pool registers its counters, which allocates: not under the
    // lock that `stats` takes.
    let pool = &*READ_BY_ALLOCATOR;
    crate::watchdog(std::time::Duration::from_secs(60), || {
        for _ in 0..6 {
            std::thread::spawn(|| {
                with_hook(
                    || drop(READ_BY_ALLOCATOR.stats()),
                    || drop(READ_BY_ALLOCATOR.get(10)),
                );
            })
            .join()
            .expect("the thread does not panic");
        }
    });
    let s = pool.stats();
    assert_eq!((s.gets, s.returns), (6, 6));
}
