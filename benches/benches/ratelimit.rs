//! Rate limiter checks, ns per check, measured in interleaved rounds: each
//! round runs every implementation of a group once, in a rotating order, for
//! about 100 ms (30 ms with `--quick`), and the figure is the median over 9
//! rounds (3 with `--quick`), with the min and max as its spread. On a shared
//! VM, whose speed drifts by tens of percent over seconds, this compares like
//! with like where criterion's back-to-back runs do not.
//!
//! - `ratelimit/direct-1-thread`, `ratelimit/direct-2-threads`: one limiter of
//!   1,000,000 per second (burst 1,000,000, the seed's forced burst) checked in a
//!   tight loop by one thread, or by two threads at once (time per check of the
//!   pair: wall time / checks). The loop asks far more than the quota, so after
//!   the first burst nearly every check is refused, as under overload. Default
//!   clocks: both read the TSC through quanta. `floor`: one TSC read per check.
//! - `ratelimit/direct-decision`: the decision alone, at a timestamp the caller
//!   holds: prodkit's `check_at` with a fixed `quanta::Instant`, governor on a
//!   `FakeRelativeClock` that does not move (one atomic load per clock read).
//!   `floor`: one atomic load of the state.
//! - `ratelimit/direct-coarse`: clocks that trade precision for speed: prodkit on
//!   a `CoarseClock`, governor on a `QuantaUpkeepClock`, both refreshed every
//!   millisecond by a thread. `floor`: two atomic loads (the clock, the state).
//! - `ratelimit/keyed-hot-key`: one key, again and again. `floor`: a TSC read
//!   and a SipHash of the key.
//! - `ratelimit/keyed-100k-keys`: 100,000 keys in turn (each is admitted again
//!   when it comes back, 1,000 per second each). `floor`: a TSC read, a SipHash,
//!   and one compare-exchange on a random 16-byte slot of a 2 MB table (100,000
//!   keys at a load of 0.8): the one read-modify-write of the key's state that
//!   a correct concurrent limiter needs, and the cache miss no keyed limiter
//!   avoids. `floor-locked`: the same work on the same slots split over 8
//!   shards behind a `parking_lot::Mutex` each, a plain load and store under
//!   the lock: what any design with a lock per shard (prodkit's) pays at least.
//! - `ratelimit/keyed-new-key`: a key never seen before at every check. prodkit
//!   holds at most 2^20 keys and evicts; governor's map grows without bound.
//!
//! Keys are hashed with std's SipHash `RandomState` (both crates' default).

use std::hash::BuildHasher;
use std::hint::black_box;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use prodkit_benches::Figures;
use prodkit_benches::naive::ratelimit::RateLimiter as Naive;
use prodkit_benches::rounds::{Imp, imp};
use prodkit_ratelimit::quanta::Clock;
use prodkit_ratelimit::{CoarseClock, KeyedRateLimiter, Quota, RateLimiter};

const DIRECT_RATE: u32 = 1_000_000;
const KEYED_RATE: u32 = 1_000;
const MAX_KEYS: usize = 1 << 20;

/// `check` called `iters` times by one thread.
fn one<F: Fn() -> bool>(check: F) -> impl FnMut(u64) -> Duration {
    move |iters| {
        let start = Instant::now();
        let mut admitted = 0u64;
        for _ in 0..iters {
            admitted += u64::from(check());
        }
        black_box(admitted);
        start.elapsed()
    }
}

/// `check` called `iters` times in all by two threads started together.
fn two<F: Fn() -> bool + Send + Sync + 'static>(check: F) -> impl FnMut(u64) -> Duration {
    let check = Arc::new(check);
    move |iters| {
        let barrier = Barrier::new(3);
        std::thread::scope(|s| {
            for t in 0..2u64 {
                let (check, barrier) = (Arc::clone(&check), &barrier);
                s.spawn(move || {
                    barrier.wait();
                    let mut admitted = 0u64;
                    for _ in 0..iters / 2 + (iters % 2) * t {
                        admitted += u64::from(check());
                    }
                    black_box(admitted);
                });
            }
            barrier.wait();
            let start = Instant::now();
            // The scope joins both threads before returning.
            start
        })
        .elapsed()
    }
}

/// Measures `group` in interleaved rounds, in ns per check.
fn measure(figures: &mut Figures, group: &str, imps: Vec<Imp>) {
    prodkit_benches::rounds::measure(figures, group, "ns/check", imps);
}

fn direct(figures: &mut Figures) {
    let quota = Quota::per_second(DIRECT_RATE).unwrap();
    let gquota = governor::Quota::per_second(NonZeroU32::new(DIRECT_RATE).unwrap());
    let clock = Clock::new();

    let ours = Arc::new(RateLimiter::new(quota));
    let theirs = Arc::new(governor::RateLimiter::direct(gquota));
    for (group, threads) in [
        ("ratelimit/direct-1-thread", 1),
        ("ratelimit/direct-2-threads", 2),
    ] {
        let (o, g, c) = (Arc::clone(&ours), Arc::clone(&theirs), clock.clone());
        let (o2, g2, c2) = (Arc::clone(&ours), Arc::clone(&theirs), clock.clone());
        let imps = if threads == 1 {
            vec![
                imp("prodkit", one(move || o.check().is_allowed())),
                imp("governor", one(move || g.check().is_ok())),
                // The naive limiter's ticker thread lives only while measured.
                imp("naive", |iters| {
                    let naive = Naive::new(DIRECT_RATE as usize);
                    one(|| naive.allow())(iters)
                }),
                imp("floor", one(move || black_box(c.raw()) != 0)),
            ]
        } else {
            vec![
                imp("prodkit", two(move || o2.check().is_allowed())),
                imp("governor", two(move || g2.check().is_ok())),
                imp("naive", |iters| {
                    let naive = Arc::new(Naive::new(DIRECT_RATE as usize));
                    two(move || naive.allow())(iters)
                }),
                imp("floor", two(move || black_box(c2.raw()) != 0)),
            ]
        };
        measure(figures, group, imps);
    }

    // The decision alone, at a fixed timestamp.
    let at_clock = Clock::new();
    let ours = RateLimiter::builder(quota).clock(at_clock.clone()).build();
    let at = at_clock.now();
    let theirs = governor::RateLimiter::direct_with_clock(
        gquota,
        governor::clock::FakeRelativeClock::default(),
    );
    let state = AtomicU64::new(u64::MAX);
    measure(
        figures,
        "ratelimit/direct-decision",
        vec![
            imp(
                "prodkit",
                one(move || ours.check_at(black_box(at)).is_allowed()),
            ),
            imp("governor", one(move || theirs.check().is_ok())),
            imp(
                "floor",
                one(move || state.load(Ordering::Relaxed) < black_box(7)),
            ),
        ],
    );

    // Coarse clocks, each made for its run (quanta runs one upkeep thread at a
    // time).
    let (word, state) = (AtomicU64::new(1), AtomicU64::new(u64::MAX));
    measure(
        figures,
        "ratelimit/direct-coarse",
        vec![
            imp("prodkit", move |iters| {
                let coarse = CoarseClock::start(Duration::from_millis(1)).unwrap();
                let ours = RateLimiter::builder(quota).coarse_clock(&coarse).build();
                one(|| ours.check().is_allowed())(iters)
            }),
            imp("governor", move |iters| {
                let clock =
                    governor::clock::QuantaUpkeepClock::from_interval(Duration::from_millis(1))
                        .expect("no other quanta upkeep thread runs");
                let theirs = governor::RateLimiter::direct_with_clock(gquota, clock);
                one(|| theirs.check().is_ok())(iters)
            }),
            imp(
                "floor",
                one(move || word.load(Ordering::Relaxed) < state.load(Ordering::Relaxed)),
            ),
        ],
    );
}

fn keyed(figures: &mut Figures) {
    let quota = Quota::per_second(KEYED_RATE).unwrap();
    let gquota = governor::Quota::per_second(NonZeroU32::new(KEYED_RATE).unwrap());
    let clock = Clock::new();
    let hasher = std::hash::RandomState::new();

    let ours = KeyedRateLimiter::<u64>::new(quota, MAX_KEYS).unwrap();
    let theirs = governor::RateLimiter::dashmap(gquota);
    let (c, h) = (clock.clone(), hasher.clone());
    measure(
        figures,
        "ratelimit/keyed-hot-key",
        vec![
            imp("prodkit", one(move || ours.check(&7).is_allowed())),
            imp("governor", one(move || theirs.check_key(&7).is_ok())),
            imp(
                "floor",
                one(move || black_box(c.raw()) ^ h.hash_one(black_box(7u64)) != 0),
            ),
        ],
    );

    let keys: Arc<Vec<u64>> = Arc::new(
        (0..100_000u64)
            .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15))
            .collect(),
    );
    let next = |keys: &Arc<Vec<u64>>| {
        let keys = Arc::clone(keys);
        let mut i = 0usize;
        move || {
            i = if i + 1 == keys.len() { 0 } else { i + 1 };
            keys[i]
        }
    };
    let ours = KeyedRateLimiter::<u64>::new(quota, MAX_KEYS).unwrap();
    let theirs = governor::RateLimiter::dashmap(gquota);
    let slots: Vec<[AtomicU64; 2]> = (0..125_000u64)
        .map(|i| [AtomicU64::new(i), AtomicU64::new(i)])
        .collect();
    // The same slots behind 8 locks (a lock per shard, as prodkit has),
    // updated with a plain load and store under the lock.
    let locked: Vec<parking_lot::Mutex<Vec<[u64; 2]>>> = (0..8u64)
        .map(|s| parking_lot::Mutex::new((0..15_625u64).map(|i| [s + i, i]).collect()))
        .collect();
    let (lclock, lhasher) = (clock.clone(), hasher.clone());
    let (mut ko, mut kg, mut kf, mut kl) = (next(&keys), next(&keys), next(&keys), next(&keys));
    measure(
        figures,
        "ratelimit/keyed-100k-keys",
        vec![
            imp("floor-locked", move |iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    let now = lclock.raw();
                    let h = lhasher.hash_one(kl());
                    let mut shard = locked[(h >> 61) as usize].lock();
                    let i = (((h & 0xffff_ffff) * shard.len() as u64) >> 32) as usize;
                    let slot = &mut shard[i];
                    slot[1] = black_box(slot[1].max(now) + 1);
                }
                start.elapsed()
            }),
            imp("prodkit", move |iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(ours.check(&ko()).is_allowed());
                }
                start.elapsed()
            }),
            imp("governor", move |iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(theirs.check_key(&kg()).is_ok());
                }
                start.elapsed()
            }),
            imp("floor", move |iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    let now = clock.raw();
                    let h = hasher.hash_one(kf());
                    let slot = &slots[(((h & 0xffff_ffff) * slots.len() as u64) >> 32) as usize];
                    let tat = slot[1].load(Ordering::Relaxed);
                    black_box(slot[1].compare_exchange(
                        tat,
                        tat.max(now) + 1,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    ))
                    .ok();
                }
                start.elapsed()
            }),
        ],
    );

    let ours = KeyedRateLimiter::<u64>::new(quota, MAX_KEYS).unwrap();
    let theirs = governor::RateLimiter::dashmap(gquota);
    let (mut no, mut ng) = (1u64 << 40, 1u64 << 50);
    let ours = Arc::new(ours);
    let held = Arc::clone(&ours);
    measure(
        figures,
        "ratelimit/keyed-new-key",
        vec![
            imp("prodkit", move |iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    no += 1;
                    black_box(ours.check(&no).is_allowed());
                }
                start.elapsed()
            }),
            imp("governor", move |iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    ng += 1;
                    black_box(theirs.check_key(&ng).is_ok());
                }
                start.elapsed()
            }),
        ],
    );
    eprintln!("prodkit after keyed-new-key: {:?}", held.stats());
}

#[allow(
    clippy::print_stdout,
    reason = "`--list` answers cargo xtask bench on stdout, as criterion does"
)]
fn main() {
    let groups: [(&str, &[&str]); 7] = [
        (
            "ratelimit/direct-1-thread",
            &["prodkit", "governor", "naive", "floor"],
        ),
        (
            "ratelimit/direct-2-threads",
            &["prodkit", "governor", "naive", "floor"],
        ),
        (
            "ratelimit/direct-decision",
            &["prodkit", "governor", "floor"],
        ),
        ("ratelimit/direct-coarse", &["prodkit", "governor", "floor"]),
        ("ratelimit/keyed-hot-key", &["prodkit", "governor", "floor"]),
        (
            "ratelimit/keyed-100k-keys",
            &["prodkit", "governor", "floor", "floor-locked"],
        ),
        ("ratelimit/keyed-new-key", &["prodkit", "governor"]),
    ];
    if std::env::args().any(|a| a == "--list") {
        for (group, names) in groups {
            for name in names {
                println!("{group}/{name}: benchmark");
            }
        }
        return;
    }
    let mut figures = Figures::new("ratelimit");
    direct(&mut figures);
    keyed(&mut figures);
    figures.note(if prodkit_benches::quick() {
        "ratelimit: ns per check, median of 3 interleaved rounds of about 30 ms each (spread: min-max; --quick)"
    } else {
        "ratelimit: ns per check, median of 9 interleaved rounds of about 100 ms each (spread: min-max)"
    });
    let path = figures.write().expect("write figures");
    eprintln!("figures written to {}", path.display());
}
