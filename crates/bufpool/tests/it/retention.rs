//! What the pool retains never exceeds `max_retained_bytes`, the threads'
//! caches included; a thread's cache goes back when the thread exits; and
//! every buffer handed over is accounted for, with threads racing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::time::Duration;

use prodkit_bufpool::{BufPool, PoolConfig, Stats};
use proptest::prelude::*;

use crate::Op;

use crate::watchdog;

fn small_pool(cap: usize, thread_cache: usize) -> BufPool {
    BufPool::new(PoolConfig {
        min_class: 1 << 10,
        max_class: 64 << 10,
        max_retained_bytes: cap,
        max_per_class: 64,
        thread_cache,
        zero_on_return: false,
    })
    .unwrap()
}

#[test]
fn a_threads_cache_goes_back_when_it_exits() {
    watchdog(Duration::from_secs(60), || {
        // Room for two threads' 64 KiB caches (4 slots of up to 128 KiB
        // reserved each) and no more: if an exited thread kept its
        // reservation, the third would have to discard.
        let pool = Arc::new(small_pool(1 << 20, 4));
        for _ in 0..100 {
            let p = Arc::clone(&pool);
            std::thread::spawn(move || {
                let a = p.get(64 << 10);
                let b = p.get(64 << 10);
                drop((a, b));
            })
            .join()
            .unwrap();
        }
        let s = pool.stats();
        assert_eq!(s.discarded_over_cap, 0, "{s:?}");
        // The exited threads' buffers wait in the shared queue.
        let class = s.classes.iter().find(|c| c.size == 64 << 10).unwrap();
        assert_eq!(class.buffers, 2, "{s:?}");
        assert!(s.retained_bytes <= 1 << 20);
    });
}

fn op() -> impl Strategy<Value = Op> {
    crate::op(150_000, 100_000)
}

/// Runs `ops` on `pool`; the number of buffers dropped (not detached).
fn run(pool: &BufPool, ops: &[Op]) -> u64 {
    let mut held = Vec::new();
    let mut dropped = 0;
    for op in ops {
        match *op {
            Op::Get(n) => held.push(pool.get(n)),
            Op::Grow(i, n) if !held.is_empty() => {
                let at = i % held.len();
                held[at].extend(std::iter::repeat_n(1u8, n));
            }
            Op::Drop(i) if !held.is_empty() => {
                drop(held.swap_remove(i % held.len()));
                dropped += 1;
            }
            Op::IntoVec(i) if !held.is_empty() => drop(held.swap_remove(i % held.len()).into_vec()),
            _ => {}
        }
    }
    dropped += held.len() as u64;
    dropped
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn retained_bytes_stay_under_the_cap_with_threads_racing(
        per_thread in proptest::collection::vec(proptest::collection::vec(op(), 1..120), 2..5),
        cap_kib in 128usize..2048,
        thread_cache in 0usize..4,
    ) {
        let cap = cap_kib << 10;
        let outcome = watchdog(Duration::from_secs(60), move || {
            let pool = Arc::new(small_pool(cap, thread_cache));
            let start = Arc::new(std::sync::Barrier::new(per_thread.len()));
            let threads: Vec<_> = per_thread
                .into_iter()
                .map(|ops| {
                    let (pool, start) = (Arc::clone(&pool), Arc::clone(&start));
                    std::thread::spawn(move || {
                        start.wait();
                        let dropped = run(&pool, &ops);
                        // A second round, on what the first left retained.
                        dropped + run(&pool, &ops)
                    })
                })
                .collect();
            let dropped: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
            (pool.stats(), dropped)
        });
        let (s, dropped) = outcome;
        prop_assert!(s.retained_bytes <= cap, "{} retained over a cap of {cap}", s.retained_bytes);
        prop_assert_eq!(s.gets, s.hits + s.misses);
        prop_assert_eq!(s.returns + s.discarded_too_large + s.discarded_over_cap, dropped);
        for class in &s.classes {
            prop_assert!(class.retained_bytes >= class.buffers * class.size);
            prop_assert!(class.retained_bytes < class.buffers.max(1) * 2 * class.size);
        }
    }
}

#[test]
fn a_buffer_above_the_largest_class_is_freed() {
    let pool = small_pool(16 << 20, 4);
    drop(pool.get((64 << 10) + 1));
    let mut grown = pool.get(64 << 10);
    grown.extend(std::iter::repeat_n(1u8, (64 << 10) + 1));
    drop(grown);
    let s = pool.stats();
    assert_eq!((s.retained_bytes, s.discarded_too_large), (0, 2), "{s:?}");
}

#[test]
fn idle_threads_cache_reservations_leave_the_shared_queues_their_room() {
    watchdog(Duration::from_secs(60), || {
        let pool = Arc::new(BufPool::default());
        let ready = Arc::new(std::sync::Barrier::new(9));
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let stopped = Arc::new(std::sync::Mutex::new(stopped));
        let idle: Vec<_> = (0..8)
            .map(|_| {
                let (p, ready, stopped) =
                    (Arc::clone(&pool), Arc::clone(&ready), Arc::clone(&stopped));
                std::thread::spawn(move || {
                    // Reserves its 4 MiB class's room, then keeps nothing.
                    drop(p.get(4 << 20));
                    drop(p.get(4 << 20).into_vec());
                    ready.wait();
                    let _ = stopped
                        .lock()
                        .unwrap()
                        .recv_timeout(Duration::from_secs(30));
                })
            })
            .collect();
        ready.wait();
        let before = pool.stats();
        for _ in 0..1_000 {
            drop(pool.get(1000));
        }
        let s = pool.stats();
        drop(stop);
        for t in idle {
            t.join().unwrap();
        }
        assert!(s.misses - before.misses <= 1, "{s:?}");
    });
}

#[test]
fn a_threads_buffers_are_counted_once_when_it_exits_with_no_room_left() {
    watchdog(Duration::from_secs(30), || {
        let pool = Arc::new(
            BufPool::new(PoolConfig {
                max_per_class: 1,
                ..PoolConfig::default()
            })
            .unwrap(),
        );
        let p = Arc::clone(&pool);
        std::thread::spawn(move || {
            let held: Vec<_> = (0..5).map(|_| p.get(100)).collect();
            drop(held);
        })
        .join()
        .unwrap();
        let s = pool.stats();
        assert_eq!(
            s.returns + s.discarded_over_cap + s.discarded_too_large,
            5,
            "{s:?}"
        );
    });
}

static EXITING_POOL: std::sync::OnceLock<BufPool> = std::sync::OnceLock::new();

/// Holds a buffer in a thread-local dropped after the pool's own (its
/// destructor was registered first, and they run last-registered-first).
struct Holder(Option<prodkit_bufpool::PooledBuf<'static>>);

impl Drop for Holder {
    fn drop(&mut self) {
        drop(self.0.take());
        if let Some(pool) = EXITING_POOL.get() {
            drop(pool.get(100));
        }
    }
}

thread_local! {
    static HOLDER: std::cell::RefCell<Holder> = const { std::cell::RefCell::new(Holder(None)) };
}

#[test]
fn buffers_given_back_while_a_thread_exits_are_counted() {
    watchdog(Duration::from_secs(30), || {
        let pool = EXITING_POOL.get_or_init(|| small_pool(16 << 20, 4));
        std::thread::spawn(move || {
            HOLDER.with(|_| ());
            let buf = pool.get(100);
            HOLDER.with(|h| h.borrow_mut().0 = Some(buf));
        })
        .join()
        .unwrap();
        let s = pool.stats();
        assert_eq!(
            s.gets,
            s.returns + s.discarded_too_large + s.discarded_over_cap,
            "{s:?}"
        );
    });
}

#[test]
fn dropping_a_pool_frees_what_this_thread_keeps_for_it() {
    let keep = BufPool::default();
    drop(keep.get(10));
    // What dropping a pool frees, with and without buffers in this
    // thread's cache: the difference is those buffers, freed now rather
    // than when the thread exits.
    let freed_by_drop = |cache: bool| {
        let pool = BufPool::default();
        for size in [4 << 20, 64 << 10, 1 << 10] {
            let buf = pool.get(size);
            if cache {
                drop(buf);
            } else {
                drop(buf.into_vec());
            }
        }
        let before = crate::alloc::deallocations();
        drop(pool);
        crate::alloc::deallocations() - before
    };
    let empty = freed_by_drop(false);
    let cached = freed_by_drop(true);
    assert_eq!(cached - empty, 3, "with a cache {cached}, without {empty}");
    drop(keep.get(10));
}

#[test]
fn counts_never_go_down_while_threads_exit() {
    // Found by review: a thread leaving moved its counts to the pool's
    // between the two reads of `stats`, which then missed them.
    let pool = Arc::new(BufPool::default());
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (pool, done) = (Arc::clone(&pool), Arc::clone(&done));
        std::thread::spawn(move || {
            let (mut last, mut reads) = (Stats::default(), 0u64);
            while !done.load(SeqCst) {
                let s = pool.stats();
                assert!(
                    s.gets >= last.gets && s.returns >= last.returns && s.misses >= last.misses,
                    "went down: {last:?} then {s:?}"
                );
                last = s;
                reads += 1;
            }
            reads
        })
    };
    watchdog(Duration::from_secs(60), move || {
        for _ in 0..300 {
            let pool = Arc::clone(&pool);
            std::thread::spawn(move || {
                for i in 0..12usize {
                    drop(pool.get(i * 300));
                }
            })
            .join()
            .expect("the thread does not panic");
        }
        done.store(true, SeqCst);
        let reads = reader.join().expect("no count went down");
        assert!(reads > 0);
        let s = pool.stats();
        assert_eq!((s.gets, s.returns), (3600, 3600));
    });
}

#[test]
fn counts_are_exact_right_after_a_scope() {
    // Found by review: a scope ends before its threads' destructors run,
    // where a thread's counts move to the pool's; they were missed then.
    watchdog(Duration::from_secs(60), || {
        for _ in 0..300 {
            let pool = BufPool::default();
            std::thread::scope(|s| {
                for _ in 0..2 {
                    s.spawn(|| {
                        for i in 0..12usize {
                            drop(pool.get(i * 300));
                        }
                    });
                }
            });
            let st = pool.stats();
            assert_eq!((st.gets, st.returns), (24, 24), "{st:?}");
            assert_eq!(st.hits + st.misses, 24);
        }
    });
}
