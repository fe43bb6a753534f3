//! Figures other than time.
//!
//! - `ratelimit/keyed-bytes-per-key`: heap bytes held per key after 1,000,000
//!   distinct u64 keys were each checked once, counted by a global allocator that
//!   tracks live bytes. prodkit is built with `max_keys = 2^20` so that it holds
//!   every key (the figure is only written if it evicted none); governor uses its
//!   DashMap store.
//! - `ratelimit/keyed-flood`: live heap bytes per key held after a flood:
//!   `max_keys = 100,000` and 1,000,000 distinct keys, each checked once on a
//!   quota of 60 per minute, so that every key still owes time (a second) when
//!   it is evicted and its debt goes to the sketch: table, bounds and sketch of
//!   every shard, divided by the keys held. governor has no bound and holds all
//!   1,000,000 keys; its figure is per key held too.
//! - `ratelimit/flood-refused`: the price of never forgetting a debt. A
//!   limiter of `max_keys = 100,000` (quota 1 per second, burst 1, on a clock
//!   that stands still) takes a flood of F x 100,000 distinct keys of one
//!   request each, so every key owes time at once; then 100,000 keys never
//!   seen are looked at (`check_n(key, 0)`, which changes nothing): the share
//!   that a request would be refused, where an exact limiter with unbounded
//!   memory refuses none. One implementation per F.
//! - `ratelimit/delivered-rate`: a quota of 1,000,000 per second, checked in a
//!   tight loop by one thread for one second after its first burst is used up:
//!   how many requests per second it admits. The quota is the right answer; the
//!   seed's ticker design cannot deliver a rate above its ticker's resolution.

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use prodkit_benches::alloc::{Counting, live};
use prodkit_benches::naive::ratelimit::RateLimiter as Naive;
use prodkit_benches::{Better, Figures};
use prodkit_ratelimit::{KeyedRateLimiter, Quota, RateLimiter};

const GROUP: &str = "ratelimit/keyed-bytes-per-key";
const KEYS: u64 = 1_000_000;
const FLOOD_GROUP: &str = "ratelimit/keyed-flood";
const FLOOD_MAX_KEYS: usize = 100_000;
const REFUSED_GROUP: &str = "ratelimit/flood-refused";
const FLOODS: [(&str, u64); 5] = [
    ("flood-0.9x", 90_000),
    ("flood-1.0x", 100_000),
    ("flood-1.2x", 120_000),
    ("flood-2x", 200_000),
    ("flood-10x", 1_000_000),
];
const RATE_GROUP: &str = "ratelimit/delivered-rate";
const RATE: u32 = 1_000_000;

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Bytes per key held by what `build` returns after `fill` checked every key.
fn bytes_per_key<L>(build: impl FnOnce() -> L, fill: impl Fn(&L, u64)) -> (f64, L) {
    let before = live();
    let limiter = build();
    for key in 0..KEYS {
        fill(&limiter, key.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    }
    ((live() - before) as f64 / KEYS as f64, limiter)
}

#[allow(
    clippy::print_stdout,
    reason = "`--list` answers cargo xtask bench on stdout, as criterion does"
)]
fn main() {
    if std::env::args().any(|a| a == "--list") {
        for name in ["prodkit", "governor"] {
            println!("{GROUP}/{name}: benchmark");
        }
        for name in ["prodkit", "governor"] {
            println!("{FLOOD_GROUP}/{name}: benchmark");
        }
        for (name, _) in FLOODS {
            println!("{REFUSED_GROUP}/{name}: benchmark");
        }
        for name in ["prodkit", "governor", "naive"] {
            println!("{RATE_GROUP}/{name}: benchmark");
        }
        return;
    }
    let mut figures = Figures::new("ratelimit_figures");
    bytes(&mut figures);
    flood(&mut figures);
    refused(&mut figures);
    delivered(&mut figures);
    let path = figures.write().expect("write figures");
    eprintln!("figures written to {}", path.display());
}

/// Admissions per second of `check` over `span`, once the first burst is spent.
fn admits_per_second(span: Duration, check: impl Fn() -> bool) -> f64 {
    while check() {}
    let start = Instant::now();
    let mut admitted = 0u64;
    while start.elapsed() < span {
        for _ in 0..1000 {
            admitted += u64::from(check());
        }
    }
    admitted as f64 / start.elapsed().as_secs_f64()
}

fn delivered(figures: &mut Figures) {
    let span = if prodkit_benches::quick() {
        Duration::from_millis(300)
    } else {
        Duration::from_secs(2)
    };
    figures.start(RATE_GROUP, "prodkit");
    let ours = RateLimiter::new(Quota::per_second(RATE).unwrap());
    let rate = admits_per_second(span, || ours.check().is_allowed());
    figures.record(RATE_GROUP, "prodkit", rate, "admits/s", Better::Higher);

    figures.start(RATE_GROUP, "governor");
    let governor =
        governor::RateLimiter::direct(governor::Quota::per_second(NonZeroU32::new(RATE).unwrap()));
    let rate = admits_per_second(span, || governor.check().is_ok());
    figures.record(RATE_GROUP, "governor", rate, "admits/s", Better::Higher);

    figures.start(RATE_GROUP, "naive");
    let naive = Naive::new(RATE as usize);
    let rate = admits_per_second(span, || naive.allow());
    figures.record(RATE_GROUP, "naive", rate, "admits/s", Better::Higher);
    drop(naive);
    figures.note(&format!(
        "{RATE_GROUP}: a quota of {RATE} per second checked in a tight loop for {span:?} after its first burst; the right answer is {RATE}"
    ));
}

fn bytes(figures: &mut Figures) {
    let quota = Quota::per_second(1000).unwrap();

    figures.start(GROUP, "prodkit");
    let (ours, limiter) = bytes_per_key(
        || KeyedRateLimiter::<u64>::new(quota, 1 << 20).unwrap(),
        |l, key| assert!(l.check(&key).is_allowed()),
    );
    let stats = limiter.stats();
    assert_eq!(
        (stats.keys as u64, stats.evictions),
        (KEYS, 0),
        "prodkit must hold every key for the figure to compare like with like"
    );
    figures.record(GROUP, "prodkit", ours, "B/key", Better::Lower);
    eprintln!(
        "prodkit: {ours:.1} B/key ({} shards, {} B by its own count)",
        limiter.shard_count(),
        limiter.heap_bytes()
    );
    drop(limiter);

    figures.start(GROUP, "governor");
    let gquota = governor::Quota::per_second(NonZeroU32::new(1000).unwrap());
    let (theirs, limiter) = bytes_per_key(
        || governor::RateLimiter::dashmap(gquota),
        |l, key| assert!(l.check_key(&key).is_ok()),
    );
    assert_eq!(limiter.len() as u64, KEYS);
    figures.record(GROUP, "governor", theirs, "B/key", Better::Lower);
    eprintln!("governor: {theirs:.1} B/key");
    drop(limiter);

    figures.note(&format!(
        "{GROUP}: live heap bytes after {KEYS} distinct u64 keys, divided by {KEYS}; prodkit with max_keys = 2^20 held all of them"
    ));
}

fn flood(figures: &mut Figures) {
    let quota = Quota::per_minute(60).unwrap();

    figures.start(FLOOD_GROUP, "prodkit");
    let before = live();
    let limiter = KeyedRateLimiter::<u64>::new(quota, FLOOD_MAX_KEYS).unwrap();
    for key in 0..KEYS {
        assert!(
            limiter
                .check(&key.wrapping_mul(0x9E37_79B9_7F4A_7C15))
                .is_allowed()
        );
    }
    let held = live() - before;
    let stats = limiter.stats();
    assert_eq!(stats.keys, FLOOD_MAX_KEYS, "a full limiter after the flood");
    assert_eq!(
        stats.evictions_active,
        KEYS - FLOOD_MAX_KEYS as u64,
        "every evicted key owed time: the sketch holds their debts"
    );
    let ours = held as f64 / stats.keys as f64;
    figures.record(FLOOD_GROUP, "prodkit", ours, "B/key", Better::Lower);
    eprintln!(
        "prodkit after the flood: {ours:.1} B per key held, {held} B live ({} B by its own count), {} shards, {stats:?}",
        limiter.heap_bytes(),
        limiter.shard_count(),
    );
    drop(limiter);

    figures.start(FLOOD_GROUP, "governor");
    let gquota = governor::Quota::per_minute(NonZeroU32::new(60).unwrap());
    let before = live();
    let limiter = governor::RateLimiter::dashmap(gquota);
    for key in 0..KEYS {
        assert!(
            limiter
                .check_key(&key.wrapping_mul(0x9E37_79B9_7F4A_7C15))
                .is_ok()
        );
    }
    let theirs = (live() - before) as f64 / limiter.len() as f64;
    figures.record(FLOOD_GROUP, "governor", theirs, "B/key", Better::Lower);
    eprintln!(
        "governor after the flood: {theirs:.1} B per key held, {} keys held",
        limiter.len()
    );
    drop(limiter);

    figures.note(&format!(
        "{FLOOD_GROUP}: live heap bytes per key held after {KEYS} distinct u64 keys each checked once at 60 per minute; prodkit holds max_keys = {FLOOD_MAX_KEYS} and keeps the debts of the {} it evicted in its sketch (included); governor holds all {KEYS}",
        KEYS - FLOOD_MAX_KEYS as u64
    ));
}

fn refused(figures: &mut Figures) {
    let quota = Quota::per_second(1).unwrap();
    for (name, flood) in FLOODS {
        figures.start(REFUSED_GROUP, name);
        let (clock, _time) = prodkit_ratelimit::quanta::Clock::mock();
        let limiter = KeyedRateLimiter::<u64>::builder(quota, FLOOD_MAX_KEYS)
            .clock(clock)
            .build()
            .unwrap();
        for key in 0..flood {
            let _ = limiter.check(&key);
        }
        let looked = 100_000u64;
        let refused = (0..looked)
            .filter(|i| {
                let d = limiter.check_n(&(u64::MAX - i), 0).unwrap();
                d.remaining() == 0
            })
            .count();
        let share = 100.0 * refused as f64 / looked as f64;
        figures.record(REFUSED_GROUP, name, share, "%", Better::Lower);
        eprintln!(
            "{name}: {share:.1}% of new keys refused; {:?}",
            limiter.stats()
        );
    }
    figures.note(&format!(
        "{REFUSED_GROUP}: share of 100000 never-seen keys a request would be refused right after a flood of F x {FLOOD_MAX_KEYS} one-request keys, all still owing time (quota 1/s, burst 1, max_keys {FLOOD_MAX_KEYS}); an exact limiter with unbounded memory refuses none"
    ));
}
