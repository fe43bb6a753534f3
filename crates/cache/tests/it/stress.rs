//! Threads racing each other: the capacity bound under concurrent inserts,
//! single-flight under concurrent misses, invalidation racing reads and
//! writes with nothing lost.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use prodkit_cache::{Cache, RemovalCause};

use crate::watchdog;

const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn resident_entries_never_exceed_capacity_under_concurrent_inserts() {
    watchdog(LIMIT, || {
        for (capacity, weighted) in [(1000u64, false), (64, false), (5000, true)] {
            let b = Cache::<u64, u64>::builder(capacity);
            let cache = if weighted {
                b.weigher(|k, _| (k % 7 + 1) as u32).build().unwrap()
            } else {
                b.build().unwrap()
            };
            let stop = Arc::new(AtomicBool::new(false));
            let worst = Arc::new(AtomicU64::new(0));
            std::thread::scope(|s| {
                let (c, stop2, worst2) = (cache.clone(), stop.clone(), worst.clone());
                s.spawn(move || {
                    while !stop2.load(Ordering::Relaxed) {
                        worst2.fetch_max(c.weight(), Ordering::Relaxed);
                        assert!(c.len() as u64 <= capacity);
                    }
                });
                let writers: Vec<_> = (0..3u64)
                    .map(|t| {
                        let cache = cache.clone();
                        s.spawn(move || {
                            let mut x = t + 1;
                            for _ in 0..100_000 {
                                x ^= x << 13;
                                x ^= x >> 7;
                                x ^= x << 17;
                                cache.insert(x % 50_000, x);
                            }
                        })
                    })
                    .collect();
                for w in writers {
                    w.join().unwrap();
                }
                stop.store(true, Ordering::Relaxed);
            });
            let w = worst.load(Ordering::Relaxed);
            assert!(
                w <= capacity,
                "weight {w} above capacity {capacity} (weighted: {weighted})"
            );
            assert!(cache.weight() <= capacity);
        }
    });
}

#[test]
fn concurrent_misses_of_one_key_run_its_loader_once() {
    watchdog(LIMIT, || {
        let cache: Cache<u64, u64> = Cache::builder(100_000).build().unwrap();
        let calls: Arc<Mutex<HashMap<u64, usize>>> = Arc::default();
        let threads = 8;
        let keys = 2000u64;
        let barrier = Barrier::new(threads);
        std::thread::scope(|s| {
            for _ in 0..threads {
                let (cache, calls, barrier) = (cache.clone(), calls.clone(), &barrier);
                s.spawn(move || {
                    for k in 0..keys {
                        // Every thread starts each key together.
                        if k % 64 == 0 {
                            barrier.wait();
                        }
                        let key = k;
                        let v = cache
                            .get_or_load(key, || {
                                *calls.lock().unwrap().entry(key).or_default() += 1;
                                std::thread::yield_now();
                                Ok::<_, std::convert::Infallible>(key * 3)
                            })
                            .unwrap();
                        assert_eq!(v, key * 3);
                    }
                });
            }
        });
        let calls = calls.lock().unwrap();
        assert_eq!(calls.len() as u64, keys);
        let twice: Vec<_> = calls.iter().filter(|(_, n)| **n != 1).collect();
        assert!(
            twice.is_empty(),
            "loaders run more than once per miss: {twice:?}"
        );
        let s = cache.stats();
        assert_eq!(s.loads_ok, keys);
    });
}

#[test]
fn invalidation_racing_reads_and_writes_loses_nothing() {
    watchdog(LIMIT, || {
        let reported = Arc::new(AtomicUsize::new(0));
        let count = reported.clone();
        let cache: Cache<u64, u64> = Cache::builder(512)
            .eviction_listener(move |_, _, cause| {
                assert!(matches!(
                    cause,
                    RemovalCause::Size | RemovalCause::Explicit | RemovalCause::Replaced
                ));
                count.fetch_add(1, Ordering::Relaxed);
            })
            .build()
            .unwrap();
        let inserted = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for t in 0..2u64 {
                let (cache, inserted) = (cache.clone(), &inserted);
                s.spawn(move || {
                    for i in 0..50_000u64 {
                        let k = (i * 31 + t) % 2000;
                        cache.insert(k, i);
                        inserted.fetch_add(1, Ordering::Relaxed);
                        cache.get(&(k / 2));
                    }
                });
            }
            let cache = cache.clone();
            s.spawn(move || {
                for i in 0..200u64 {
                    cache.invalidate_if(|k, _| k % 200 == i);
                    let _ = cache.iter().count();
                }
            });
        });
        // Every insert either is held now or its value left through the
        // listener (replaced, evicted or invalidated): exactly once.
        assert_eq!(
            inserted.load(Ordering::Relaxed),
            reported.load(Ordering::Relaxed) + cache.len()
        );
        assert!(cache.len() <= 512);
    });
}

#[test]
fn hits_are_counted_exactly_by_threads_reading_many_caches_in_turn() {
    // Each thread counts hits in batches of its own; batches join the totals
    // when they fill, when a thread moves between more caches than it keeps
    // batches for (four), and when it ends. Six caches read in turn by
    // three threads, with reads also while the shards sample (read-only):
    // every hit and miss is counted.
    watchdog(Duration::from_secs(60), || {
        let caches: Vec<Cache<u64, u64>> = (0..6)
            .map(|_| Cache::builder(1024).build().unwrap())
            .collect();
        for c in &caches {
            for k in 0..512 {
                c.insert(k, k);
            }
        }
        let expected: Vec<(u64, u64)> = std::thread::scope(|s| {
            let threads: Vec<_> = (0..3u64)
                .map(|t| {
                    let caches = &caches;
                    s.spawn(move || {
                        let mut counts = vec![(0u64, 0u64); caches.len()];
                        let mut x = t + 1;
                        for i in 0..60_000u64 {
                            x ^= x << 13;
                            x ^= x >> 7;
                            x ^= x << 17;
                            // Long runs on one cache, then turns among all.
                            let which = if i < 20_000 { 0 } else { (x % 6) as usize };
                            match caches[which].get(&(x % 600)) {
                                Some(_) => counts[which].0 += 1,
                                None => counts[which].1 += 1,
                            }
                        }
                        counts
                    })
                })
                .collect();
            let mut total = vec![(0, 0); caches.len()];
            for t in threads {
                for (sum, (h, m)) in total.iter_mut().zip(t.join().unwrap()) {
                    sum.0 += h;
                    sum.1 += m;
                }
            }
            total
        });
        for (c, (hits, misses)) in caches.iter().zip(expected) {
            let s = c.stats();
            assert_eq!((s.hits, s.misses), (hits, misses));
        }
    });
}
