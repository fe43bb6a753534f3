//! Model checks of the limiters' concurrent parts under every interleaving loom
//! explores: the direct limiter's compare-exchange and the quota's sequence
//! lock; the keyed limiter's shard locks, its limiter-wide key count, and
//! evictions racing checks and removals.
//! `RUSTFLAGS="--cfg prodkit_loom" cargo test -p prodkit-ratelimit --test loom
//! --release` (what `cargo xtask ci` runs, in its own target folder).
#![cfg(prodkit_loom)]

use std::time::Duration;

use std::collections::hash_map::DefaultHasher;
use std::hash::{BuildHasher, BuildHasherDefault};

use loom::sync::Arc;
use loom::thread;
use prodkit_ratelimit::{KeyedRateLimiter, Quota, RateLimiter};

/// A hasher without a random key, so that every run of a model is the same.
type Fixed = BuildHasherDefault<DefaultHasher>;

/// A keyed limiter with burst 1 and a long interval: every admitted key owes
/// time for the whole model.
fn keyed(max_keys: usize, shards: usize) -> KeyedRateLimiter<u64, Fixed> {
    let (clock, _time) = quanta::Clock::mock();
    KeyedRateLimiter::builder(quota(1_000_000, 1), max_keys)
        .shards(shards)
        .clock(clock)
        .hasher(Fixed::default())
        .build()
        .unwrap()
}

/// The first keys (from `from` up) that land in shard `shard` of `shards`.
fn key_in_shard(shard: u64, shards: u32, from: u64) -> u64 {
    (from..)
        .find(|k| shards == 1 || Fixed::default().hash_one(k) >> (64 - shards.ilog2()) == shard)
        .unwrap()
}

fn quota(period_ns: u64, burst: u32) -> Quota {
    Quota::new(1, Duration::from_nanos(period_ns))
        .unwrap()
        .with_burst(burst)
        .unwrap()
}

/// Two threads race for the last cell: exactly one gets it.
#[test]
fn the_last_cell_goes_to_exactly_one_thread() {
    loom::model(|| {
        let (clock, _time) = quanta::Clock::mock();
        let lim = Arc::new(RateLimiter::builder(quota(1000, 2)).clock(clock).build());
        assert!(lim.check().is_allowed());
        let other = {
            let lim = Arc::clone(&lim);
            thread::spawn(move || lim.check().is_allowed())
        };
        let mine = lim.check().is_allowed();
        let theirs = other.join().unwrap();
        assert!(mine ^ theirs, "mine {mine}, theirs {theirs}");
        assert_eq!(lim.stats().allowed, 2);
    });
}

/// A check racing with `set_quota` decides under the old quota or the new one,
/// never under a mix of the two.
#[test]
fn a_quota_change_is_never_seen_half_done() {
    loom::model(|| {
        let (clock, _time) = quanta::Clock::mock();
        let lim = Arc::new(RateLimiter::builder(quota(10, 1)).clock(clock).build());
        let writer = {
            let lim = Arc::clone(&lim);
            thread::spawn(move || lim.set_quota(quota(3, 5)))
        };
        let d = lim.check();
        let seen = (d.limit(), d.remaining(), d.reset());
        let old = (1, 0, Duration::from_nanos(10));
        let new = (5, 4, Duration::from_nanos(3));
        assert!(seen == old || seen == new, "decided under a mix: {seen:?}");
        writer.join().unwrap();
        assert_eq!(lim.quota(), quota(3, 5));
    });
}

/// Two new keys race for the last room of the limiter, from two shards (one
/// of them empty): the limiter never holds more than `max_keys`, both keys are
/// admitted, and no key's debt is lost: the key pushed out, the key kept only
/// in the sketch and the key held are all refused on their next request.
#[test]
fn the_last_room_goes_to_one_key_and_no_debt_is_lost() {
    loom::model(|| {
        let a = key_in_shard(0, 2, 0);
        let b = key_in_shard(0, 2, a + 1);
        let c = key_in_shard(1, 2, 0);
        let lim = Arc::new(keyed(2, 2));
        assert!(lim.check(&a).is_allowed());
        let other = {
            let lim = Arc::clone(&lim);
            thread::spawn(move || lim.check(&c).is_allowed())
        };
        let mine = lim.check(&b).is_allowed();
        assert!(mine && other.join().unwrap(), "new keys have full buckets");
        assert!(lim.len() <= 2, "{} keys held", lim.len());
        for key in [a, b, c] {
            assert!(!lim.check(&key).is_allowed(), "key {key}'s debt was lost");
        }
    });
}

/// A key checked while a new key evicts it: refused in every interleaving
/// (held and in debt, or evicted with its debt in the sketch).
#[test]
fn a_check_racing_the_eviction_of_its_key_is_refused() {
    loom::model(|| {
        let (a, b) = (1u64, 2u64);
        let lim = Arc::new(keyed(1, 1));
        assert!(lim.check(&a).is_allowed());
        let evictor = {
            let lim = Arc::clone(&lim);
            thread::spawn(move || lim.check(&b).is_allowed())
        };
        assert!(
            !lim.check(&a).is_allowed(),
            "the evicted key was admitted again"
        );
        assert!(evictor.join().unwrap());
        assert!(!lim.check(&a).is_allowed());
        assert!(!lim.check(&b).is_allowed());
        assert_eq!(lim.len(), 1);
    });
}

/// A removal racing an insert keeps the limiter-wide count exact: afterwards
/// one key is held, and the next new key finds free room (no eviction).
#[test]
fn a_removal_racing_an_insert_keeps_the_count() {
    loom::model(|| {
        let (a, b, c) = (1u64, 2u64, 3u64);
        let lim = Arc::new(keyed(2, 1));
        assert!(lim.check(&a).is_allowed());
        let remover = {
            let lim = Arc::clone(&lim);
            thread::spawn(move || lim.remove(&a))
        };
        assert!(lim.check(&b).is_allowed());
        assert!(remover.join().unwrap());
        assert_eq!(lim.len(), 1);
        assert!(lim.check(&c).is_allowed());
        assert_eq!((lim.len(), lim.stats().evictions), (2, 0));
    });
}
