//! The keyed limiter: independence of keys, the hard bound, which key goes first,
//! configuration errors.

use std::time::Duration;

use prodkit_ratelimit::{ConfigError, KeyedRateLimiter, MAX_KEYS_LIMIT, Quota, WaitError};

use crate::{keyed, mock, quota};

#[test]
fn keys_have_separate_budgets() {
    let (clock, time) = mock();
    let lim = keyed(quota(10, 1000, 2), 100, 4, &clock);
    assert!(lim.check(&1).is_allowed());
    assert!(lim.check(&1).is_allowed());
    assert!(!lim.check(&1).is_allowed());
    assert!(lim.check(&2).is_allowed());
    assert_eq!(lim.check(&2).remaining(), 0);
    time.increment(100u64);
    assert_eq!(lim.check(&1).remaining(), 0);
    assert_eq!(lim.len(), 2);
    let stats = lim.stats();
    assert_eq!((stats.decisions.allowed, stats.decisions.denied), (5, 1));
    assert_eq!((stats.keys, stats.max_keys, stats.evictions), (2, 100, 0));
}

#[test]
fn borrowed_keys() {
    let (clock, _time) = mock();
    let lim: KeyedRateLimiter<str> = KeyedRateLimiter::builder(quota(1, 1000, 1), 10)
        .clock(clock)
        .build()
        .unwrap();
    let owned = String::from("client-7");
    assert!(lim.check(&owned).is_allowed());
    assert!(!lim.check("client-7").is_allowed());
    assert!(lim.check("client-8").is_allowed());
    assert!(lim.remove("client-7"));
    assert!(!lim.remove("client-7"));
    assert!(
        lim.check("client-7").is_allowed(),
        "a removed key starts with a full bucket"
    );
}

#[test]
fn a_flood_of_new_keys_stays_within_max_keys() {
    let (clock, time) = mock();
    let max_keys = 1000;
    let lim = keyed(quota(1, 1_000_000, 1), max_keys, 8, &clock);
    let mut peak = 0;
    let mut admitted = 0u64;
    for key in 0..100_000u64 {
        if lim.check(&key).is_allowed() {
            admitted += 1;
        }
        time.increment(50u64);
        if key % 1000 == 0 {
            peak = peak.max(lim.len());
        }
    }
    let stats = lim.stats();
    assert!(stats.keys <= max_keys && peak <= max_keys, "{stats:?}");
    // Each key owes 1 ms and one arrives every 50 ns: 20 000 keys are in debt
    // at once, far more than 1000. Evicting them folds their debts into the
    // sketch, and new keys that find debts in both of their buckets are
    // refused: the conservative cost, every refusal counted.
    assert!(stats.evictions_active > 0, "{stats:?}");
    assert_eq!(stats.decisions.allowed, admitted);
    assert_eq!(
        stats.decisions.denied, stats.sketch_denials,
        "no key came twice: every refusal is the sketch's"
    );
    // No key came twice, so every one of those refusals is a false denial: an
    // exact limiter would have admitted each. The sketch tells them by an 8-bit
    // fingerprint, so it misses about 1 in 256 (counts it as the key's own).
    assert!(stats.sketch_denials > 1000, "{stats:?}");
    assert!(stats.false_denials <= stats.sketch_denials);
    assert!(
        stats.false_denials * 100 >= stats.sketch_denials * 97,
        "false denials are counted: {stats:?}"
    );
    // Every admitted key is held, in free room or in a victim's place.
    assert_eq!(stats.evictions + stats.keys as u64, admitted);
    // Memory: 16-byte slots at a load of at most 0.8 for up to each shard's
    // cap (its share of 125 keys plus 3 * sqrt(125) of headroom: 158), the
    // bounds (one u64 per 32 slots, and a root), the sketch (8 lines of 64
    // bytes per shard), and the shards' headers (at most 512 bytes each).
    let slots = 8 * 198 * 16;
    let bounds = 8 * (7 + 1) * 8;
    let sketch = 8 * 8 * 64;
    assert!(
        lim.heap_bytes() <= slots + bounds + sketch + 8 * 512,
        "{} bytes",
        lim.heap_bytes()
    );
}

#[test]
fn idle_keys_are_evicted_before_keys_in_debt_and_no_debt_is_forgotten() {
    let (clock, time) = mock();
    // One shard of 4 keys; T = 1000 ns, burst 1.
    let lim = keyed(quota(1, 1000, 1), 4, 1, &clock);
    for key in 0..3u64 {
        assert!(lim.check(&key).is_allowed());
    }
    time.increment(1000u64);
    // Keys 0-2 are idle now; key 3 will owe until 2000, keys 10-12 until 2005.
    assert!(lim.check(&3).is_allowed());
    time.increment(5u64);
    for key in 10..13u64 {
        assert!(lim.check(&key).is_allowed());
    }
    let stats = lim.stats();
    assert_eq!(
        (stats.keys, stats.evictions, stats.evictions_active),
        (4, 3, 0)
    );
    // The keys in debt were kept.
    assert!(!lim.check(&3).is_allowed());
    for key in 10..13u64 {
        assert!(!lim.check(&key).is_allowed());
    }
    // Now all 4 owe time: a new key evicts the one owing least (key 3), whose
    // debt goes to the sketch: key 3 is still refused until 2000.
    time.increment(10u64);
    assert!(lim.check(&20).is_allowed());
    let stats = lim.stats();
    assert_eq!(stats.evictions_active, 1);
    assert!(lim.check_n(&3, 0).unwrap().reset() > std::time::Duration::ZERO);
    assert!(!lim.check(&3).is_allowed(), "key 3's debt was forgotten");
    let stats = lim.stats();
    assert_eq!((stats.sketch_denials, stats.false_denials), (1, 0));
    // The sketch keeps the debt to the nanosecond: refused at 1999, admitted
    // at 2000, as if it had never left.
    time.increment(984u64);
    assert!(!lim.check(&3).is_allowed());
    time.increment(1u64);
    assert!(lim.check(&3).is_allowed());
}

#[test]
fn shadow_and_quota_changes_apply_to_every_key() {
    let (clock, _time) = mock();
    let lim = keyed(quota(10, 1000, 1), 10, 1, &clock);
    assert!(lim.check(&1).is_allowed());
    lim.set_shadow(true);
    let d = lim.check(&1);
    assert!(d.is_allowed() && !d.is_conforming());
    assert_eq!(lim.stats().decisions.shadow_denied, 1);
    lim.set_shadow(false);
    assert!(!lim.check(&1).is_allowed());
    lim.set_quota(quota(10, 1000, 3));
    assert_eq!(lim.quota().burst(), 3);
    assert_eq!(lim.check(&1).remaining(), 1);
    assert!(lim.check_n(&2, 4).is_err());
    assert!(lim.check_n(&2, 3).unwrap().is_allowed());
}

#[test]
fn wait_on_a_key_counts_once() {
    let (clock, time) = mock();
    let lim = keyed(quota(1000, 1_000_000_000, 1), 10, 1, &clock);
    assert!(lim.check(&5).is_allowed());
    assert!(matches!(
        lim.wait(&5, Duration::ZERO),
        Err(WaitError::Timeout { .. })
    ));
    std::thread::scope(|s| {
        let waiter = s.spawn(|| lim.wait(&5, Duration::from_secs(60)));
        // Let the waiter be refused a few times (one attempt per 1 ms) first.
        std::thread::sleep(Duration::from_millis(20));
        time.increment(Duration::from_millis(1));
        assert!(waiter.join().unwrap().unwrap().is_allowed());
    });
    // Each wait counts once: the one that gave up as a denial, the one that
    // was served as an admission, whatever it was refused on the way.
    let stats = lim.stats().decisions;
    assert_eq!((stats.allowed, stats.denied), (2, 1));
}

#[cfg(feature = "tokio")]
#[tokio::test]
async fn until_ready_on_a_key() {
    let lim: KeyedRateLimiter<u64> =
        KeyedRateLimiter::new(Quota::per_second(500).unwrap().with_burst(1).unwrap(), 10).unwrap();
    assert!(lim.check(&1).is_allowed());
    assert!(lim.until_ready(&1).await.is_allowed());
    assert!(lim.until_ready_n(&1, 2).await.is_err());
}

#[test]
fn configuration_errors() {
    let q = Quota::per_second(1).unwrap();
    assert_eq!(
        KeyedRateLimiter::<u64>::new(q, 0).unwrap_err(),
        ConfigError::ZeroMaxKeys
    );
    assert_eq!(
        KeyedRateLimiter::<u64>::new(q, MAX_KEYS_LIMIT + 1).unwrap_err(),
        ConfigError::TooManyKeys {
            max_keys: MAX_KEYS_LIMIT + 1,
            limit: MAX_KEYS_LIMIT
        }
    );
    for shards in [0, 3, 2048, 16] {
        let err = KeyedRateLimiter::<u64>::builder(q, 8)
            .shards(shards)
            .build()
            .unwrap_err();
        assert_eq!(err, ConfigError::BadShards { shards });
    }
    let lim = KeyedRateLimiter::<u64>::builder(q, 8)
        .shards(8)
        .build()
        .unwrap();
    assert_eq!((lim.shard_count(), lim.max_keys()), (8, 8));
    assert!(lim.is_empty());
    // Small limiters get one shard; large ones several.
    assert_eq!(
        KeyedRateLimiter::<u64>::new(q, 100).unwrap().shard_count(),
        1
    );
    assert!(
        KeyedRateLimiter::<u64>::new(q, 1 << 20)
            .unwrap()
            .shard_count()
            >= 4
    );
}

/// `max_keys` bounds the whole limiter, not each shard: filling it with keys
/// that all owe time (so none is idle) evicts almost none before it is full.
/// Measured on the case (1M keys, 1M max_keys) and with the smallest
/// default share (1024 keys per shard, 64 shards).
#[test]
fn max_keys_bounds_the_limiter_and_shards_evict_under_one_percent_early() {
    for (max_keys, shards) in [(1usize << 20, None), (1 << 16, Some(64))] {
        let (clock, _time) = mock();
        let mut b = prodkit_ratelimit::KeyedRateLimiter::<u64>::builder(
            quota(1, 1_000_000_000, 1),
            max_keys,
        )
        .clock(clock);
        if let Some(n) = shards {
            b = b.shards(n);
        }
        let lim = b.build().unwrap();
        // A new key is refused only when the sketch holds debts where it
        // hashes, and only an early eviction (a full shard while the limiter
        // is not) puts debts there before the bound: both stay under 1 %.
        // How many depends on the hash seed, which is random.
        let mut refused = 0usize;
        for key in 0..max_keys as u64 {
            if !lim.check(&key).is_allowed() {
                refused += 1;
            }
        }
        let stats = lim.stats();
        assert!(
            stats.evictions_early * 100 <= max_keys as u64,
            "{} of {max_keys} keys evicted early ({} shards)",
            stats.evictions_early,
            lim.shard_count()
        );
        assert!(
            refused * 100 <= max_keys,
            "{refused} of {max_keys} new keys refused ({} shards)",
            lim.shard_count()
        );
        assert_eq!(stats.evictions, stats.evictions_early);
        // A refused key is not held.
        assert_eq!(stats.keys + stats.evictions as usize + refused, max_keys);
        // Beyond the bound: one more key evicts one, the count stays.
        assert!(lim.check(&u64::MAX).is_allowed());
        assert!(lim.len() <= max_keys);
        eprintln!(
            "max_keys {max_keys}, {} shards: {} evicted early, {refused} refused",
            lim.shard_count(),
            stats.evictions_early
        );
    }
}

/// Over-limiting ends: once a flood stops, every key has its full burst again
/// one window after the last debt was folded, however many debts the sketch
/// holds.
#[test]
fn after_a_flood_every_key_is_admitted_within_one_window() {
    let (clock, time) = mock();
    // T = 1 ms, burst 3: a window of 3 ms.
    let q = quota(1, 1_000_000, 3);
    let lim = keyed(q, 64, 2, &clock);
    // Keys spend their whole burst, far more of them than the limiter holds.
    for key in 0..20_000u64 {
        while lim.check(&key).is_allowed() {}
        time.increment(10u64);
    }
    let stats = lim.stats();
    assert!(stats.evictions_active > 100, "{stats:?}");
    let short = (1_000_000..1_010_000u64)
        .filter(|k| lim.check_n(k, 0).unwrap().remaining() < q.burst())
        .count();
    assert!(
        short > 5_000,
        "new keys start short of a full burst: {short} {stats:?}"
    );
    // Debts outlive the flood, then end.
    time.increment(q.window() / 2);
    assert!(
        (0..20_000u64).any(|k| lim.check_n(&k, 0).unwrap().remaining() < q.burst()),
        "half a window after the flood, debts remain"
    );
    time.increment(q.window() - q.window() / 2);
    // Looks, which fold nothing: admitting keys now would start a new flood.
    for key in (0..20_000u64).chain(1_000_000..1_010_000) {
        let d = lim.check_n(&key, 0).unwrap();
        assert_eq!(d.remaining(), q.burst(), "key {key} has its full burst");
    }
}
