//! Single-flight loading, a panicking loader, refresh-ahead and prefetch.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use prodkit_cache::quanta::Clock;
use prodkit_cache::{Cache, Compute, RemovalCause};

use crate::watchdog;

const LIMIT: Duration = Duration::from_secs(30);

/// Polls `cond` until it holds; the watchdog around the test bounds it.
fn until(mut cond: impl FnMut() -> bool) {
    while !cond() {
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_panicking_loader_poisons_nothing_and_a_waiter_takes_over() {
    watchdog(LIMIT, || {
        let cache: Cache<u32, u32> = Cache::builder(100).build().unwrap();
        let (entered_tx, entered) = mpsc::channel();
        let (release_tx, release) = mpsc::channel::<()>();
        let leader = {
            let cache = cache.clone();
            std::thread::spawn(move || {
                cache.get_or_load(1, || -> Result<u32, ()> {
                    entered_tx.send(()).unwrap();
                    release.recv().unwrap();
                    panic!("loader failed hard");
                })
            })
        };
        entered.recv().unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let waiters: Vec<_> = (0..4)
            .map(|_| {
                let (cache, calls) = (cache.clone(), calls.clone());
                std::thread::spawn(move || {
                    cache.get_or_load(1, || {
                        calls.fetch_add(1, Ordering::SeqCst);
                        Ok::<_, ()>(7)
                    })
                })
            })
            .collect();
        // The waiters are parked on the leader's flight: they missed.
        until(|| cache.stats().misses == 5);
        release_tx.send(()).unwrap();
        assert!(
            leader.join().is_err(),
            "the leader's panic reaches its caller"
        );
        for w in waiters {
            assert_eq!(w.join().unwrap(), Ok(7));
        }
        // One waiter took over; the others got its value.
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(cache.get(&1), Some(7));
        let s = cache.stats();
        assert_eq!((s.loads_ok, s.loads_failed), (1, 1));
    });
}

#[test]
fn a_loader_error_reaches_every_waiter_and_nothing_is_cached() {
    watchdog(LIMIT, || {
        let cache: Cache<u32, u32> = Cache::builder(100).build().unwrap();
        let barrier = Arc::new(Barrier::new(2));
        let (entered_tx, entered) = mpsc::channel();
        let (release_tx, release) = mpsc::channel::<()>();
        let leader = {
            let cache = cache.clone();
            std::thread::spawn(move || {
                cache.get_or_load(9, || {
                    entered_tx.send(()).unwrap();
                    release.recv().unwrap();
                    Err::<u32, _>(std::io::Error::other("backend down"))
                })
            })
        };
        entered.recv().unwrap();
        let own_loads = Arc::new(AtomicUsize::new(0));
        let waiter = {
            let (cache, barrier, own) = (cache.clone(), barrier.clone(), own_loads.clone());
            std::thread::spawn(move || {
                barrier.wait();
                cache.get_or_load(9, || {
                    own.fetch_add(1, Ordering::SeqCst);
                    Err(std::io::Error::other("the waiter's own load"))
                })
            })
        };
        barrier.wait();
        until(|| cache.stats().misses == 2);
        release_tx.send(()).unwrap();
        let a = leader.join().unwrap().unwrap_err();
        let b = waiter.join().unwrap().unwrap_err();
        // The waiter missed while the leader was held, so it found the
        // leader's flight, unless the thread was descheduled between its miss
        // and the flight table for the whole of the leader's release; then it
        // led a load of its own. (The async test shows the waiting case
        // deterministically.)
        if own_loads.load(Ordering::SeqCst) == 0 {
            assert!(Arc::ptr_eq(&a, &b), "the waiter gets the leader's error");
        }
        assert_eq!(a.to_string(), "backend down");
        assert_eq!(cache.get(&9), None);
        assert_eq!(
            cache.stats().loads_failed,
            1 + own_loads.load(Ordering::SeqCst) as u64
        );
    });
}

#[test]
fn refresh_ahead_serves_the_old_value_and_reloads_once_in_the_background() {
    watchdog(LIMIT, || {
        let (clock, mock) = Clock::mock();
        let version = Arc::new(AtomicUsize::new(1));
        let calls = Arc::new(AtomicUsize::new(0));
        let (v, c) = (version.clone(), calls.clone());
        let cache: Cache<u32, usize> = Cache::builder(100)
            .clock(clock)
            .refresh_after(Duration::from_secs(10))
            .loader(move |_: &u32| {
                c.fetch_add(1, Ordering::SeqCst);
                let v = v.load(Ordering::SeqCst);
                if v == 0 { Err("backend down") } else { Ok(v) }
            })
            .build()
            .unwrap();
        cache.insert(1, 1);
        mock.increment(Duration::from_secs(9));
        assert_eq!(cache.get(&1), Some(1));
        assert_eq!(calls.load(Ordering::SeqCst), 0, "not due yet");

        version.store(2, Ordering::SeqCst);
        mock.increment(Duration::from_secs(2));
        // Due: every read returns the current value at once; one reload runs.
        for _ in 0..100 {
            let v = cache.get(&1).unwrap();
            assert!(v == 1 || v == 2);
        }
        until(|| cache.get(&1) == Some(2));
        assert_eq!(calls.load(Ordering::SeqCst), 1, "one reload for many reads");
        assert_eq!(cache.stats().refreshes, 1);

        // A failed reload keeps the old value, is counted, and is tried again
        // a refresh interval later.
        version.store(0, Ordering::SeqCst);
        mock.increment(Duration::from_secs(11));
        assert_eq!(cache.get(&1), Some(2));
        until(|| cache.stats().refreshes_failed == 1);
        assert_eq!(cache.get(&1), Some(2));
        assert_eq!(
            calls.load(Ordering::SeqCst),
            2,
            "no retry before the interval"
        );
        version.store(3, Ordering::SeqCst);
        mock.increment(Duration::from_secs(11));
        cache.get(&1);
        until(|| cache.get(&1) == Some(3));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    });
}

#[test]
fn a_full_executor_drops_and_counts_prefetches_and_refreshes() {
    watchdog(LIMIT, || {
        let (clock, mock) = Clock::mock();
        let (entered_tx, entered) = mpsc::channel();
        let gate = Arc::new(parking_lot::Mutex::new(()));
        let held = gate.lock();
        let g = gate.clone();
        let cache: Cache<u32, u32> = Cache::builder(100)
            .clock(clock)
            .refresh_after(Duration::from_secs(1))
            .executor(1, 2)
            .loader(move |k: &u32| {
                let _ = entered_tx.send(*k);
                let _open = g.lock();
                Ok::<_, std::io::Error>(k + 100)
            })
            .build()
            .unwrap();
        cache.insert(0, 0);
        // The worker takes key 1 and blocks; 2 and 3 fill the queue of 2.
        let first = cache.prefetch([1]).unwrap();
        assert_eq!(first.queued, 1);
        assert_eq!(entered.recv().unwrap(), 1);
        let p = cache.prefetch([2, 3, 4, 5, 1]).unwrap();
        assert_eq!((p.queued, p.dropped, p.skipped), (2, 2, 1), "{p:?}");
        // A due refresh finds the queue full: dropped, counted, and the old
        // value is still served.
        mock.increment(Duration::from_secs(2));
        assert_eq!(cache.get(&0), Some(0));
        let s = cache.stats();
        assert_eq!(
            (s.prefetches, s.prefetches_dropped, s.refreshes_dropped),
            (3, 2, 1)
        );
        drop(held);
        until(|| cache.len() == 4);
        assert_eq!(cache.get(&3), Some(103));
        // The dropped refresh is tried again by the next read.
        cache.get(&0);
        until(|| cache.get(&0) == Some(100));
    });
}

/// Starts a load of `key` on a thread of its own and returns once its loader
/// is running: the loader computes `load()`, then waits to be released. The
/// returned closure releases it and gives what the leader's thread ended
/// with (its panic, if it panicked).
fn held_load<V, L>(
    cache: &Cache<u32, V>,
    key: u32,
    load: L,
) -> impl FnOnce() -> std::thread::Result<Result<V, Arc<()>>> + use<V, L>
where
    V: Clone + Send + Sync + 'static,
    L: FnOnce() -> V + Send + 'static,
{
    let (entered_tx, entered) = mpsc::channel();
    let (release_tx, release) = mpsc::channel::<()>();
    let leader = {
        let cache = cache.clone();
        std::thread::spawn(move || {
            cache.get_or_load(key, || {
                let v = load();
                entered_tx.send(()).unwrap();
                release.recv().unwrap();
                Ok::<_, ()>(v)
            })
        })
    };
    entered.recv().unwrap();
    move || {
        release_tx.send(()).unwrap();
        leader.join()
    }
}

#[test]
fn a_write_of_the_key_during_a_load_wins_over_the_loaded_value() {
    watchdog(LIMIT, || {
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = log.clone();
        let cache: Cache<u32, u32> = Cache::builder(100)
            .eviction_listener(move |k, v, cause| sink.lock().unwrap().push((k, v, cause)))
            .build()
            .unwrap();
        use RemovalCause::{Explicit, Replaced};
        // Each write, made while the loader of key 1 runs; what `get` must
        // see once the load is done, and how the loaded value is reported.
        type Write = fn(&Cache<u32, u32>);
        let writes: [(&str, Write, Option<u32>, RemovalCause); 7] = [
            ("insert", |c| c.insert(1, 999), Some(999), Replaced),
            (
                "remove",
                |c| {
                    let _ = c.remove(&1);
                },
                None,
                Explicit,
            ),
            (
                "insert then remove",
                |c| {
                    c.insert(1, 5);
                    c.remove(&1);
                },
                None,
                Replaced,
            ),
            (
                "compute insert",
                |c| {
                    let _ = c.compute(1, |_| Compute::Insert(7));
                },
                Some(7),
                Replaced,
            ),
            (
                "compute remove",
                |c| {
                    let _ = c.compute(1, |_| Compute::Remove);
                },
                None,
                Explicit,
            ),
            (
                "invalidate_if",
                |c| {
                    let _ = c.invalidate_if(|_, _| true);
                },
                None,
                Explicit,
            ),
            ("clear", |c| c.clear(), None, Explicit),
        ];
        for (name, write, expected, cause) in writes {
            cache.clear();
            let finish = held_load(&cache, 1, || 111);
            write(&cache);
            log.lock().unwrap().clear();
            assert_eq!(
                finish().unwrap(),
                Ok(111),
                "{name}: the leader gets its loaded value"
            );
            assert_eq!(cache.get(&1), expected, "{name}: the write wins");
            assert_eq!(
                *log.lock().unwrap(),
                [(1, 111, cause)],
                "{name}: the loaded value is reported as overwritten"
            );
        }
        // A write of another key does not stop the load from caching.
        let finish = held_load(&cache, 1, || 111);
        cache.insert(2, 2);
        cache.remove(&3);
        assert_eq!(finish().unwrap(), Ok(111));
        assert_eq!(cache.get(&1), Some(111));
    });
}

#[test]
fn loads_racing_write_through_and_invalidation_never_leave_a_stale_value() {
    // A database row; in each round a writer changes it and then writes the
    // new value through to the cache (or invalidates the key), while three
    // readers load the key from the row. Whatever the interleaving, after
    // the round the cache holds the row's new value or nothing.
    watchdog(LIMIT, || {
        for invalidate in [false, true] {
            let row = Arc::new(AtomicUsize::new(0));
            let cache: Cache<u32, usize> = Cache::builder(100).build().unwrap();
            let start = Arc::new(Barrier::new(4));
            let end = Arc::new(Barrier::new(4));
            let readers: Vec<_> = (0..3)
                .map(|_| {
                    let (row, cache) = (row.clone(), cache.clone());
                    let (start, end) = (start.clone(), end.clone());
                    std::thread::spawn(move || {
                        for _ in 0..ROUNDS {
                            start.wait();
                            let _ = cache.get_or_load(1, || {
                                let v = row.load(Ordering::SeqCst);
                                std::thread::yield_now();
                                Ok::<_, ()>(v)
                            });
                            end.wait();
                        }
                    })
                })
                .collect();
            let mut stale = 0;
            for round in 1..=ROUNDS {
                cache.remove(&1);
                start.wait();
                std::thread::yield_now();
                row.store(round, Ordering::SeqCst);
                if invalidate {
                    cache.remove(&1);
                } else {
                    cache.insert(1, round);
                }
                end.wait();
                if cache.get(&1).is_some_and(|v| v != round) {
                    stale += 1;
                }
            }
            for r in readers {
                r.join().unwrap();
            }
            assert_eq!(
                stale, 0,
                "invalidate: {invalidate}: rounds that left a stale value"
            );
        }
    });
}

const ROUNDS: usize = 3000;

#[test]
fn a_loader_that_loads_its_own_key_panics_instead_of_waiting_for_itself() {
    watchdog(LIMIT, || {
        let cache: Cache<u32, u32> = Cache::builder(100).build().unwrap();
        let inner = cache.clone();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            cache.get_or_load(1, || inner.get_or_load(1, || Ok::<_, ()>(1)).map(|v| v + 1))
        }));
        let panic = result.unwrap_err();
        let msg = panic.downcast_ref::<&str>().copied().unwrap_or_default();
        assert!(msg.contains("would wait for itself"), "{msg}");
        // Nothing is poisoned: the key loads normally afterwards, and a
        // loader may load other keys.
        let v = cache.get_or_load(1, || {
            cache.get_or_load(2, || Ok::<_, ()>(20)).map(|v| v + 1)
        });
        assert_eq!(v.unwrap(), 21);
        assert_eq!(cache.get(&2), Some(20));
    });
}

#[test]
fn dropping_the_last_handle_drops_queued_loads_and_frees_a_loader_holding_a_weak_handle() {
    watchdog(LIMIT, || {
        // One worker, busy with the first prefetch; 99 more are queued.
        let calls = Arc::new(AtomicUsize::new(0));
        let (entered_tx, entered) = mpsc::channel();
        let (release_tx, release) = mpsc::channel::<()>();
        let release = std::sync::Mutex::new(release);
        let counted = calls.clone();
        let me = Arc::new(std::sync::OnceLock::new());
        let weak = me.clone();
        let cache: Cache<u32, u32> = Cache::builder(1000)
            .executor(1, 128)
            .loader(move |k: &u32| {
                if counted.fetch_add(1, Ordering::SeqCst) == 0 {
                    entered_tx.send(()).unwrap();
                    release.lock().unwrap().recv().unwrap();
                }
                // The loader may use the cache through a weak handle.
                let _ = weak
                    .get()
                    .and_then(prodkit_cache::WeakCache::upgrade)
                    .map(|c: Cache<u32, u32>| c.len());
                Ok::<_, std::io::Error>(*k)
            })
            .build()
            .unwrap();
        me.set(cache.downgrade()).unwrap();
        let weak = cache.downgrade();
        assert_eq!(cache.prefetch(0..100).unwrap().queued, 100);
        entered.recv().unwrap();
        let dropper = std::thread::spawn(move || drop(cache));
        std::thread::sleep(Duration::from_millis(50));
        release_tx.send(()).unwrap();
        dropper.join().unwrap();
        // The running load finished; the queued ones were dropped, not run
        // one after another by the last handle's drop.
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // Nothing keeps the cache alive: its state, loader included, is freed.
        assert!(weak.upgrade().is_none());
        until(|| Arc::strong_count(&me) == 1);
    });
}

#[test]
fn a_load_started_after_an_invalidation_loads_afresh_without_waiting_for_the_old_one() {
    // Invalidate-on-write: the row changes, the key is removed; a reader that
    // starts after that must see the new row, not join the load that read
    // the old one (which is still running).
    watchdog(LIMIT, || {
        let row = Arc::new(AtomicUsize::new(0));
        let cache: Cache<u32, usize> = Cache::builder(100).build().unwrap();
        let r = row.clone();
        let finish = held_load(&cache, 1, move || r.load(Ordering::SeqCst));
        row.store(1, Ordering::SeqCst);
        cache.remove(&1);
        let late = cache.get_or_load(1, || Ok::<_, ()>(row.load(Ordering::SeqCst)));
        assert_eq!(late, Ok(1), "the late reader loads the new row");
        assert_eq!(cache.get(&1), Some(1));
        // The old load ends with its old value, which is not cached.
        assert_eq!(finish().unwrap(), Ok(0));
        assert_eq!(cache.get(&1), Some(1));
        // The same after clear().
        cache.clear();
        let finish = held_load(&cache, 2, || 20);
        cache.clear();
        assert_eq!(cache.get_or_load(2, || Ok::<_, ()>(21)), Ok(21));
        assert_eq!(finish().unwrap(), Ok(20));
        assert_eq!(cache.get(&2), Some(21));
    });
}

#[test]
fn a_callback_panic_while_the_leader_caches_its_value_still_wakes_every_waiter() {
    watchdog(LIMIT, || {
        // The weigher panics on the loaded value: the leader gets the panic,
        // its waiters get the value, and nothing is left in the table of
        // loads.
        let cache: Cache<u32, u32> = Cache::builder(100)
            .weigher(|_, v: &u32| {
                assert_ne!(*v, 111, "weigher fails");
                1
            })
            .build()
            .unwrap();
        let finish = held_load(&cache, 1, || 111);
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let cache = cache.clone();
                std::thread::spawn(move || cache.get_or_load(1, || Ok::<_, ()>(7)))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(50));
        assert!(finish().is_err(), "the leader gets the weigher's panic");
        for w in waiters {
            let got = w.join().unwrap().unwrap();
            // A waiter that arrived after the leader left loads for itself.
            assert!(got == 111 || got == 7, "{got}");
        }
        assert_eq!(cache.get_or_load(2, || Ok::<_, ()>(2)), Ok(2));

        // The listener panics on the value a write superseded: the same.
        let cache: Cache<u32, u32> = Cache::builder(100)
            .eviction_listener(|_, v, _| assert_ne!(v, 111, "listener fails"))
            .build()
            .unwrap();
        let finish = held_load(&cache, 1, || 111);
        let waiter = {
            let cache = cache.clone();
            std::thread::spawn(move || cache.get_or_load(1, || Ok::<_, ()>(7)))
        };
        std::thread::sleep(Duration::from_millis(50));
        cache.insert(1, 5);
        assert!(finish().is_err(), "the leader gets the listener's panic");
        assert_eq!(waiter.join().unwrap(), Ok(111));
        assert_eq!(cache.get(&1), Some(5));
    });
}
