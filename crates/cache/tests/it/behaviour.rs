//! Single-threaded behaviour: configuration errors, weights, expiry rules,
//! the listener's causes, compute, iteration, stats.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use prodkit_cache::quanta::Clock;
use prodkit_cache::{Cache, Compute, ConfigError, Expiry, RemovalCause};

#[test]
fn bad_configurations_are_refused_with_the_field_named() {
    let err = |b: prodkit_cache::Builder<u32, u32>| b.build().unwrap_err();
    assert!(matches!(err(Cache::builder(0)), ConfigError::ZeroCapacity));
    assert!(matches!(
        err(Cache::builder(10).time_to_idle(Duration::ZERO)),
        ConfigError::ZeroDuration {
            field: "time_to_idle"
        }
    ));
    assert!(matches!(
        err(Cache::builder(10).shards(3)),
        ConfigError::Shards { shards: 3 }
    ));
    assert!(matches!(
        err(Cache::builder(10).shards(16)),
        ConfigError::Shards { shards: 16 }
    ));
    assert!(matches!(
        err(Cache::builder(10)
            .loader(|k: &u32| Ok::<_, std::io::Error>(*k))
            .executor(0, 1)),
        ConfigError::ZeroCount { .. }
    ));
    struct Never;
    impl Expiry<u32, u32> for Never {
        fn expire_after_create(&self, _: &u32, _: &u32) -> Option<Duration> {
            None
        }
    }
    assert!(matches!(
        err(Cache::builder(10)
            .expire_after(Never)
            .time_to_live(Duration::from_secs(1))),
        ConfigError::ConflictingExpiry
    ));
    // Too large for the shards asked for: the message says how many would do.
    let e = err(Cache::builder(1 << 31).shards(1));
    assert!(matches!(e, ConfigError::CapacityTooLarge { shards: 1, .. }));
    assert!(e.to_string().contains("set shards(4) or more"), "{e}");
    assert!(
        Cache::<u32, u32>::builder(1 << 31)
            .shards(4)
            .build()
            .is_ok()
    );
    // Too large for any shard count: the message does not send the user to
    // the shards setting.
    let e = err(Cache::builder(u64::MAX));
    assert!(matches!(e, ConfigError::CapacityTooLarge { .. }));
    assert!(e.to_string().contains("count in larger units"), "{e}");
    // The executor's limits are checked when the configuration is, not
    // found out when its threads start.
    let e = err(Cache::builder(10)
        .loader(|k: &u32| Ok::<_, std::io::Error>(*k))
        .executor(1, usize::MAX));
    assert!(matches!(e, ConfigError::Executor(_)), "{e}");
    // A weighted cache's default split does not depend on the machine.
    let weighted = Cache::<u32, u32>::builder(1 << 20)
        .weigher(|_, v: &u32| *v)
        .build()
        .unwrap();
    assert_eq!(
        weighted.try_insert(1, 1 << 16).map_err(|e| e.limit()),
        Ok(())
    );
    assert_eq!(
        weighted.try_insert(2, (1 << 16) + 1).map_err(|e| e.limit()),
        Err(1 << 16)
    );
    for e in [ConfigError::ZeroCapacity, ConfigError::RefreshWithoutLoader] {
        let text = e.to_string();
        assert!(
            !text.ends_with('.') && text.chars().next().unwrap().is_lowercase(),
            "{text}"
        );
    }
}

#[test]
fn weight_never_exceeds_capacity_and_a_too_heavy_entry_comes_back() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = log.clone();
    let cache: Cache<u32, Vec<u8>> = Cache::builder(1000)
        .weigher(|_, v: &Vec<u8>| v.len() as u32)
        .eviction_listener(move |k, _, cause| l.lock().unwrap().push((k, cause)))
        .build()
        .unwrap();
    for i in 0..500u32 {
        cache.insert(i, vec![0; (i % 50) as usize]);
        assert!(cache.weight() <= 1000);
    }
    let back = cache.try_insert(1, vec![1; 2000]).unwrap_err();
    assert_eq!((back.weight(), back.limit()), (2000, 1000));
    assert_eq!(back.into_inner().1.len(), 2000);
    // The value it would have replaced (if held) left as Replaced; plain
    // insert reports the refused entry itself as Size.
    cache.insert(7, vec![1; 2000]);
    assert!(log.lock().unwrap().contains(&(7, RemovalCause::Size)));
    assert_eq!(cache.get(&7), None);
    assert_eq!(cache.stats().rejected, 2);
}

#[test]
fn per_entry_expiry_follows_the_rule_on_create_update_and_read() {
    struct Rule;
    impl Expiry<&'static str, u64> for Rule {
        fn expire_after_create(&self, _: &&'static str, v: &u64) -> Option<Duration> {
            (*v > 0).then(|| Duration::from_secs(*v))
        }
        fn expire_after_read(
            &self,
            k: &&'static str,
            _: &u64,
            left: Option<Duration>,
        ) -> Option<Duration> {
            if *k == "sliding" {
                Some(Duration::from_secs(5))
            } else {
                left
            }
        }
    }
    let (clock, mock) = Clock::mock();
    let cache = Cache::builder(100)
        .expire_after(Rule)
        .clock(clock)
        .build()
        .unwrap();
    cache.insert("forever", 0);
    cache.insert("ten", 10);
    cache.insert("sliding", 5);
    for _ in 0..4 {
        mock.increment(Duration::from_secs(4));
        assert_eq!(cache.get("sliding"), Some(5));
    }
    // 16 s passed: "ten" expired, "sliding" was read every 4 s.
    assert_eq!(cache.get("ten"), None);
    assert_eq!(cache.get("forever"), Some(0));
    // An update gives a new lifetime (the default rule: as on create).
    cache.insert("ten", 10);
    mock.increment(Duration::from_secs(9));
    assert_eq!(cache.get("ten"), Some(10));
    mock.increment(Duration::from_secs(1));
    assert_eq!(cache.get("ten"), None);
    mock.increment(Duration::from_secs(6));
    assert_eq!(cache.get("sliding"), None);
    assert_eq!(cache.stats().evictions.expired, 3);
}

#[test]
fn expired_entries_are_swept_by_writes_without_a_thread() {
    let (clock, mock) = Clock::mock();
    let cache: Cache<u32, u32> = Cache::builder(10_000)
        .shards(1)
        .time_to_live(Duration::from_secs(1))
        .clock(clock)
        .build()
        .unwrap();
    for i in 0..1000 {
        cache.insert(i, i);
    }
    mock.increment(Duration::from_secs(2));
    // Each write looks at two more entries: 500 writes of one key sweep the
    // 1000 expired ones, and a few more cover the looks at the live key.
    for _ in 0..505 {
        cache.insert(5000, 0);
    }
    assert_eq!(cache.len(), 1);
    assert_eq!(cache.stats().evictions.expired, 1000);
}

#[test]
fn compute_and_get_or_insert_with_are_atomic_per_key() {
    let cache: Cache<u32, u64> = Cache::builder(100).build().unwrap();
    std::thread::scope(|s| {
        for _ in 0..4 {
            let cache = cache.clone();
            s.spawn(move || {
                for _ in 0..10_000 {
                    cache.compute(1, |v| Compute::Insert(v.map_or(1, |n| n + 1)));
                }
            });
        }
    });
    assert_eq!(cache.get(&1), Some(40_000));
    // A panic inside compute changes nothing and poisons nothing.
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        cache.compute(1, |_| panic!("bad update"));
    }));
    assert!(r.is_err());
    assert_eq!(cache.get(&1), Some(40_000));
    assert_eq!(cache.get_or_insert_with(2, || 9), 9);
    assert_eq!(cache.get_or_insert_with(2, || 10), 9);
}

#[test]
fn a_full_cache_keeps_frequent_keys_against_a_scan() {
    // The point of TinyLFU admission: a one-off scan does not flush the
    // keys that are used again and again (an LRU would lose them all).
    let cache: Cache<u64, u64> = Cache::builder(1000).build().unwrap();
    for round in 0..20 {
        for k in 0..500 {
            if cache.get(&k).is_none() {
                cache.insert(k, k);
            }
        }
        if round == 10 {
            for k in 1_000_000..1_010_000 {
                if cache.get(&k).is_none() {
                    cache.insert(k, k);
                }
            }
        }
    }
    let kept = (0..500).filter(|k| cache.contains_key(k)).count();
    assert!(
        kept >= 490,
        "only {kept} of 500 hot keys survived a 10,000-key scan"
    );
}

#[test]
fn weighted_inserts_of_many_sizes_keep_the_bound_without_a_panic() {
    // Found by an adversarial review: with weights of several sizes, a
    // victim next to the candidate left the eviction loop pointing at a
    // removed entry (an index out of bounds, weight left above capacity).
    for seed in 0..300u64 {
        let cache: Cache<u64, u64> = Cache::builder(16)
            .weigher(|_, v: &u64| *v as u32)
            .build()
            .unwrap();
        let mut x = seed * 2_654_435_761 + 1;
        for _ in 0..3000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            cache.insert(x % 50, (x >> 32) % 7 + 1);
            assert!(cache.weight() <= 16);
        }
    }
}

/// A cache of `n` entries whose listener records every removal.
fn reported_cache(n: u32) -> (Cache<u32, u32>, Arc<Mutex<Vec<u32>>>) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let sink = log.clone();
    let cache: Cache<u32, u32> = Cache::builder(1000)
        .eviction_listener(move |k, _, _| sink.lock().unwrap().push(k))
        .build()
        .unwrap();
    for i in 0..n {
        cache.insert(i, i);
    }
    (cache, log)
}

#[test]
fn a_panicking_predicate_or_listener_loses_no_entry() {
    // A predicate that panics part way: what it removed before is reported,
    // the rest stays, and the cache goes on working.
    let (cache, log) = reported_cache(100);
    let mut seen = 0;
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        cache.invalidate_if(|_, _| {
            seen += 1;
            assert!(seen < 40, "predicate fails");
            true
        })
    }));
    assert!(panicked.is_err());
    let reported = log.lock().unwrap().clone();
    assert!(!reported.is_empty());
    assert_eq!(
        cache.len() + reported.len(),
        100,
        "every entry is held or reported"
    );
    for k in &reported {
        assert!(!cache.contains_key(k));
    }
    cache.insert(1000, 1);
    assert_eq!(cache.get(&1000), Some(1));

    // A listener that panics on one entry: the others are still reported,
    // then the panic reaches the caller.
    let log = Arc::new(Mutex::new(Vec::new()));
    let sink = log.clone();
    let cache: Cache<u32, u32> = Cache::builder(1000)
        .eviction_listener(move |k, _, _| {
            sink.lock().unwrap().push(k);
            assert_ne!(k, 7, "listener fails");
        })
        .build()
        .unwrap();
    for i in 0..100 {
        cache.insert(i, i);
    }
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cache.clear()));
    assert!(panicked.is_err());
    let mut reported = log.lock().unwrap().clone();
    reported.sort_unstable();
    assert_eq!(reported, (0..100).collect::<Vec<_>>());
    assert!(cache.is_empty());
}

/// A key whose hash changes at every call: a broken `Hash`.
#[derive(Clone, PartialEq, Eq, Debug)]
struct Fickle(u32);

impl std::hash::Hash for Fickle {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        (CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) ^ u64::from(self.0)).hash(state);
    }
}

#[test]
fn a_key_with_an_inconsistent_hash_costs_hits_but_never_panics_or_breaks_the_bound() {
    // As with std's HashMap, a broken `Hash` makes lookups miss; it must not
    // panic, leave a stale position in a shard, or let the cache grow.
    for shards in [1, 4] {
        let cache: Cache<Fickle, u32> = Cache::builder(16)
            .shards(shards)
            .eviction_listener(|_, _, _| {})
            .build()
            .unwrap();
        for i in 0..20_000u32 {
            let key = Fickle(i % 40);
            cache.insert(key.clone(), i);
            let _ = cache.get(&key);
            if i % 3 == 0 {
                cache.remove(&key);
            }
            if i % 100 == 0 {
                cache.invalidate_if(|k, _| k.0 % 7 == 0);
            }
            assert!(cache.len() <= 16 + 64);
        }
        assert!(cache.iter().count() <= 16 + 64);
        cache.clear();
        assert!(cache.is_empty());
    }
}

/// Runs `f` and returns its panic message (it must panic).
fn panic_message(f: impl FnOnce()) -> String {
    let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_err();
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

/// Calls the cache from an expiry rule.
struct Reentrant(Arc<std::sync::OnceLock<Cache<u32, u32>>>, bool);

impl Expiry<u32, u32> for Reentrant {
    fn expire_after_create(&self, _: &u32, _: &u32) -> Option<Duration> {
        if !self.1 {
            let _ = self.0.get().map(|c| c.get(&2));
        }
        None
    }

    fn expire_after_read(&self, _: &u32, _: &u32, left: Option<Duration>) -> Option<Duration> {
        if self.1 {
            let _ = self.0.get().map(|c| c.insert(2, 2));
        }
        left
    }
}

#[test]
fn a_callback_that_calls_its_own_cache_under_the_lock_panics_instead_of_deadlocking() {
    crate::watchdog(Duration::from_secs(30), || {
        const SAME: &str = "would wait for itself";
        // One shard: every key shares the lock the callback runs under.
        let one = || Cache::<u32, u32>::builder(100).shards(1);
        let cache = one().build().unwrap();
        cache.insert(1, 1);
        let c = cache.clone();
        let msg = panic_message(|| {
            let _ = c.invalidate_if(|_, _| c.get(&2).is_some());
        });
        assert!(msg.contains(SAME), "invalidate_if: {msg}");
        let msg = panic_message(|| {
            let _ = c.compute(1, |_| Compute::Insert(c.len() as u32));
        });
        assert!(msg.contains(SAME), "compute: {msg}");
        let msg = panic_message(|| {
            let _ = c.get_or_insert_with(3, || c.get(&1).unwrap_or(0));
        });
        assert!(msg.contains(SAME), "get_or_insert_with: {msg}");
        // Nothing was lost or left locked.
        assert_eq!(cache.get(&1), Some(1));
        cache.insert(4, 4);
        assert_eq!(cache.len(), 2);

        let cell = Arc::new(std::sync::OnceLock::new());
        let sink = cell.clone();
        let cache = one()
            .weigher(move |_, _| {
                let _ = sink.get().map(|c: &Cache<u32, u32>| c.get(&9));
                1
            })
            .build()
            .unwrap();
        cell.set(cache.clone()).unwrap();
        let msg = panic_message(|| cache.insert(1, 1));
        assert!(msg.contains(SAME), "weigher: {msg}");

        for on_read in [false, true] {
            let cell = Arc::new(std::sync::OnceLock::new());
            let cache = one()
                .expire_after(Reentrant(cell.clone(), on_read))
                .build()
                .unwrap();
            if on_read {
                cache.insert(1, 1);
            }
            cell.set(cache.clone()).unwrap();
            let msg = panic_message(|| {
                if on_read {
                    let _ = cache.get(&1);
                } else {
                    cache.insert(1, 1);
                }
            });
            assert!(msg.contains(SAME), "expiry (on read: {on_read}): {msg}");
        }

        // Nested callbacks: a compute in one shard calls a compute in
        // another, which reads the first shard; two caches whose weighers
        // call each other.
        let two = Cache::<u32, u32>::builder(100).shards(2).build().unwrap();
        let (k1, k2) = {
            let k1 = 0u32;
            // Find a key of the other shard: the one whose compute, nested
            // in k1's, does not panic by itself.
            let k2 = (1..1000)
                .find(|&k| {
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        two.compute(k1, |_| {
                            two.compute(k, |_| Compute::Keep);
                            Compute::Keep
                        });
                    }))
                    .is_ok()
                })
                .unwrap();
            (k1, k2)
        };
        let msg = panic_message(|| {
            two.compute(k1, |_| {
                two.compute(k2, |_| Compute::Insert(two.get(&k1).unwrap_or(0)));
                Compute::Insert(1)
            });
        });
        assert!(msg.contains(SAME), "nested compute: {msg}");
        let a_cell = Arc::new(std::sync::OnceLock::<Cache<u32, u32>>::new());
        let b_cell = Arc::new(std::sync::OnceLock::<Cache<u32, u32>>::new());
        let (to_b, to_a) = (b_cell.clone(), a_cell.clone());
        let a = one()
            .weigher(move |_, _| {
                if let Some(b) = to_b.get() {
                    b.insert(1, 1);
                }
                1
            })
            .build()
            .unwrap();
        let b = one()
            .weigher(move |_, _| {
                let _ = to_a.get().map(|a| a.get(&1));
                1
            })
            .build()
            .unwrap();
        a_cell.set(a.clone()).unwrap();
        b_cell.set(b.clone()).unwrap();
        let msg = panic_message(|| a.insert(1, 1));
        assert!(msg.contains(SAME), "weighers calling each other: {msg}");

        // The listener and the loader run with no lock held: they may use
        // the cache.
        let cell = Arc::new(std::sync::OnceLock::new());
        let sink = cell.clone();
        let cache = one()
            .eviction_listener(move |k, _, _| {
                let _ = sink.get().map(|c: &Cache<u32, u32>| c.get(&k));
            })
            .build()
            .unwrap();
        cell.set(cache.clone()).unwrap();
        cache.insert(1, 1);
        cache.insert(1, 2);
        let v = cache.get_or_load(5, || Ok::<_, ()>(cache.get(&1).unwrap() + 3));
        assert_eq!(v.unwrap(), 5);
    });
}

/// A value whose drop panics once it is marked.
#[derive(Clone, Debug, PartialEq)]
struct Grenade(u32, bool);

impl Drop for Grenade {
    fn drop(&mut self) {
        if self.1 && !std::thread::panicking() {
            panic!("drop fails");
        }
    }
}

#[test]
fn a_panicking_drop_never_leaves_the_cache_over_its_capacity() {
    crate::watchdog(Duration::from_secs(30), || {
        let cache: Cache<u32, Grenade> = Cache::builder(10)
            .weigher(|_, v: &Grenade| v.0)
            .build()
            .unwrap();
        cache.insert(1, Grenade(5, true));
        cache.insert(2, Grenade(5, true));
        // Growing key 1 replaces its value (whose drop panics) and must
        // then evict to stay within 10.
        let grown = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            cache.insert(1, Grenade(8, false));
        }));
        assert!(grown.is_err());
        assert!(cache.weight() <= 10, "weight {}", cache.weight());
        // Entries whose drops panic are evicted in turn, each panic reaching
        // the caller, and the bound holds after each.
        for k in 3..8 {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                cache.insert(k, Grenade(4, true));
            }));
            assert!(cache.weight() <= 10, "weight {}", cache.weight());
        }
        // Let the rest drop quietly.
        for k in 0..8 {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cache.remove(&k)));
        }
    });
}
