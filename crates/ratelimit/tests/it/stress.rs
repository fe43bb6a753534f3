//! Threads hammering one limiter never get more than burst + elapsed / T in
//! total. With the real clock (any schedule the OS picks) and with a mock clock
//! moved by another thread while they run.

use prodkit_ratelimit::quanta::Clock;
use prodkit_ratelimit::{KeyedRateLimiter, Quota, RateLimiter};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::{direct, keyed, mock, quota, watchdog};

const THREADS: usize = 4;

#[test]
fn threads_on_one_direct_limiter_with_the_real_clock() {
    let clock = Clock::new();
    // T = 1 us, burst 50.
    let q = Quota::per_second(1_000_000)
        .unwrap()
        .with_burst(50)
        .unwrap();
    let lim = RateLimiter::builder(q).clock(clock.clone()).build();
    let start = clock.now();
    let admitted = AtomicU64::new(0);
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| {
                let mut mine = 0;
                for _ in 0..200_000 {
                    mine += u64::from(lim.check().is_allowed());
                }
                admitted.fetch_add(mine, Ordering::Relaxed);
            });
        }
    });
    let elapsed = clock.now().duration_since(start).as_nanos() as u64;
    let admitted = admitted.into_inner();
    let bound = 50 + elapsed / 1000;
    assert!(
        admitted <= bound,
        "{admitted} admitted in {elapsed} ns, bound {bound}"
    );
    assert!(admitted >= 50, "the full bucket was admitted");
    assert_eq!(lim.stats().allowed, admitted);
    assert_eq!(
        lim.stats().allowed + lim.stats().denied,
        THREADS as u64 * 200_000
    );
}

/// Threads check while another moves a mock clock in steps; the bound is exact.
#[test]
fn threads_on_one_direct_limiter_with_a_moving_mock() {
    let (clock, time) = mock();
    let lim = direct(quota(1, 100, 10), &clock);
    let keys = keyed(quota(1, 100, 10), 8, 1, &clock);
    let stop = AtomicBool::new(false);
    let direct_admitted = AtomicU64::new(0);
    let keyed_admitted = [(); 4].map(|()| AtomicU64::new(0));
    let mut advanced = 0u64;
    std::thread::scope(|s| {
        for thread in 0..THREADS {
            let (lim, keys, stop) = (&lim, &keys, &stop);
            let (direct_admitted, keyed_admitted) = (&direct_admitted, &keyed_admitted);
            s.spawn(move || {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    if lim
                        .check_n(1 + (i % 3) as u32)
                        .is_ok_and(|d| d.is_allowed())
                    {
                        direct_admitted.fetch_add(1 + i % 3, Ordering::Relaxed);
                    }
                    let key = (i + thread as u64) % 4;
                    if keys.check(&key).is_allowed() {
                        keyed_admitted[key as usize].fetch_add(1, Ordering::Relaxed);
                    }
                    i += 1;
                }
            });
        }
        for step in 0..20_000u64 {
            let dt = step % 17 * 7;
            time.increment(dt);
            advanced += dt;
            if step % 64 == 0 {
                std::thread::yield_now();
            }
        }
        stop.store(true, Ordering::Relaxed);
    });
    let bound = 10 + advanced / 100;
    let got = direct_admitted.into_inner();
    assert!(got <= bound, "{got} cells in {advanced} ns, bound {bound}");
    for (key, admitted) in keyed_admitted.into_iter().enumerate() {
        let got = admitted.into_inner();
        assert!(
            got <= bound,
            "key {key}: {got} in {advanced} ns, bound {bound}"
        );
    }
}

#[test]
fn threads_on_a_keyed_limiter_under_a_flood_keep_the_bound() {
    let lim: KeyedRateLimiter<u64> =
        KeyedRateLimiter::builder(Quota::per_second(10).unwrap(), 4096)
            .shards(4)
            .build()
            .unwrap();
    std::thread::scope(|s| {
        for thread in 0..THREADS as u64 {
            let lim = &lim;
            s.spawn(move || {
                for i in 0..100_000u64 {
                    let _ = lim.check(&(thread << 32 | i));
                    if i % 1000 == 0 {
                        assert!(lim.len() <= 4096);
                    }
                }
            });
        }
    });
    let stats = lim.stats();
    assert_eq!(stats.keys, 4096, "{stats:?}");
    let total = THREADS as u64 * 100_000;
    assert_eq!(stats.decisions.allowed + stats.decisions.denied, total);
    // No key came twice: every refusal is the sketch's (debts of evicted keys
    // sharing both of a new key's buckets), and every admitted key is held.
    assert_eq!(stats.decisions.denied, stats.sketch_denials, "{stats:?}");
    assert_eq!(stats.evictions + 4096, stats.decisions.allowed, "{stats:?}");
}

/// `len()` and `stats().keys` never exceed `max_keys`, read by a thread of
/// their own while others insert new keys and remove old ones in other shards.
#[test]
fn the_key_count_never_exceeds_max_keys_while_keys_are_removed() {
    let max_keys = 256;
    let peak = watchdog(std::time::Duration::from_secs(60), move || {
        let lim: KeyedRateLimiter<u64> =
            KeyedRateLimiter::builder(Quota::per_second(10).unwrap(), max_keys)
                .shards(4)
                .build()
                .unwrap();
        let done = AtomicBool::new(false);
        std::thread::scope(|s| {
            let monitor = s.spawn(|| {
                let mut peak = 0;
                while !done.load(Ordering::Relaxed) {
                    peak = peak.max(lim.len()).max(lim.stats().keys);
                }
                peak
            });
            let workers: Vec<_> = (0..THREADS as u64)
                .map(|thread| {
                    let lim = &lim;
                    s.spawn(move || {
                        for i in 0..50_000u64 {
                            let key = thread << 32 | i;
                            let _ = lim.check(&key);
                            if i % 3 == 0 {
                                lim.remove(&(key.saturating_sub(7)));
                            }
                        }
                    })
                })
                .collect();
            for w in workers {
                w.join().unwrap();
            }
            done.store(true, Ordering::Relaxed);
            monitor.join().unwrap()
        })
    });
    assert!(peak <= max_keys, "{peak} keys counted, max_keys {max_keys}");
    assert!(peak >= max_keys / 2, "the limiter filled up: {peak}");
}
