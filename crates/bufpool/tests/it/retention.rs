//! What the pool retains never exceeds `max_retained_bytes`, the threads'
//! caches included; a thread's cache goes back when the thread exits; and
//! every buffer handed over is accounted for, with threads racing.

use std::sync::Arc;
use std::time::Duration;

use prodkit_bufpool::{BufPool, PoolConfig};
use proptest::prelude::*;

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

#[derive(Clone, Debug)]
enum Op {
    Get(usize),
    Grow(usize, usize),
    Drop(usize),
    IntoVec(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0usize..150_000).prop_map(Op::Get),
        1 => (any::<usize>(), 0usize..100_000).prop_map(|(i, n)| Op::Grow(i, n)),
        3 => any::<usize>().prop_map(Op::Drop),
        1 => any::<usize>().prop_map(Op::IntoVec),
    ]
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
