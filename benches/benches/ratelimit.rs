//! Rate limiter checks, ns per check.
//!
//! - `ratelimit/direct-1-thread`, `ratelimit/direct-2-threads`: one limiter of
//!   1,000,000 per second (burst 1,000,000, the seed's forced burst) checked in a
//!   tight loop by one thread, or by two threads at once (time per check of the
//!   pair: wall time / checks). The loop asks far more than the quota, so after
//!   the first burst nearly every check is refused, as under overload.
//! - `ratelimit/keyed-hot-key`: one key, again and again.
//! - `ratelimit/keyed-100k-keys`: 100,000 keys in turn (each is admitted again when
//!   it comes back, 1,000 per second each).
//! - `ratelimit/keyed-new-key`: a key never seen before at every check. prodkit
//!   holds at most 2^20 keys and evicts; governor's map grows without bound.
//!
//! Both limiters read the TSC through quanta (governor's default clock) and hash
//! keys with std's SipHash `RandomState`.
//! - `ratelimit/floor`: the cost of those two alone (`tsc_read`, `siphash_u64`),
//!   and of std's `Instant::now` for scale.

use std::hint::black_box;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use criterion::{
    BenchmarkGroup, Criterion, criterion_group, criterion_main, measurement::WallTime,
};
use prodkit_benches::naive::ratelimit::RateLimiter as Naive;
use prodkit_ratelimit::{KeyedRateLimiter, Quota, RateLimiter};

const DIRECT_RATE: u32 = 1_000_000;
const KEYED_RATE: u32 = 1_000;
const MAX_KEYS: usize = 1 << 20;

fn configure(group: &mut BenchmarkGroup<'_, WallTime>) {
    if prodkit_benches::quick() {
        group
            .warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(1));
    } else {
        group
            .warm_up_time(Duration::from_secs(2))
            .measurement_time(Duration::from_secs(5));
    }
}

/// Runs `check` `iters` times split over `threads` threads; the wall time.
fn threaded<F: Fn() -> bool + Sync>(threads: u64, iters: u64, check: &F) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let n = iters / threads + u64::from(t < iters % threads);
            s.spawn(move || {
                let mut admitted = 0u64;
                for _ in 0..n {
                    admitted += u64::from(check());
                }
                black_box(admitted);
            });
        }
    });
    start.elapsed()
}

fn run<F: Fn() -> bool + Sync>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    threads: u64,
    check: F,
) {
    if threads == 1 {
        group.bench_function(name, |b| b.iter(|| black_box(check())));
    } else {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| threaded(threads, iters, &check))
        });
    }
}

fn direct(c: &mut Criterion) {
    for (group_name, threads) in [
        ("ratelimit/direct-1-thread", 1),
        ("ratelimit/direct-2-threads", 2),
    ] {
        let mut group = c.benchmark_group(group_name);
        configure(&mut group);
        // Each limiter lives only while it is measured: the naive one's ticker
        // thread would otherwise take CPU from the others' measurements.
        {
            let ours = RateLimiter::new(Quota::per_second(DIRECT_RATE).unwrap());
            run(&mut group, "prodkit", threads, || ours.check().is_allowed());
        }
        {
            let governor = governor::RateLimiter::direct(governor::Quota::per_second(
                NonZeroU32::new(DIRECT_RATE).unwrap(),
            ));
            run(&mut group, "governor", threads, || governor.check().is_ok());
        }
        {
            let naive = Naive::new(DIRECT_RATE as usize);
            run(&mut group, "naive", threads, || naive.allow());
        }
        group.finish();
    }
}

fn keyed(c: &mut Criterion) {
    let quota = Quota::per_second(KEYED_RATE).unwrap();
    let gquota = governor::Quota::per_second(NonZeroU32::new(KEYED_RATE).unwrap());
    let keys: Vec<u64> = (0..100_000u64)
        .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .collect();

    let mut group = c.benchmark_group("ratelimit/keyed-hot-key");
    configure(&mut group);
    {
        let ours = KeyedRateLimiter::<u64>::new(quota, MAX_KEYS).unwrap();
        group.bench_function("prodkit", |b| {
            b.iter(|| black_box(ours.check(&7).is_allowed()))
        });
        let governor = governor::RateLimiter::dashmap(gquota);
        group.bench_function("governor", |b| {
            b.iter(|| black_box(governor.check_key(&7).is_ok()))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("ratelimit/keyed-100k-keys");
    configure(&mut group);
    {
        let ours = KeyedRateLimiter::<u64>::new(quota, MAX_KEYS).unwrap();
        let mut i = 0;
        group.bench_function("prodkit", |b| {
            b.iter(|| {
                i = if i + 1 == keys.len() { 0 } else { i + 1 };
                black_box(ours.check(&keys[i]).is_allowed())
            })
        });
        let governor = governor::RateLimiter::dashmap(gquota);
        group.bench_function("governor", |b| {
            b.iter(|| {
                i = if i + 1 == keys.len() { 0 } else { i + 1 };
                black_box(governor.check_key(&keys[i]).is_ok())
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("ratelimit/keyed-new-key");
    configure(&mut group);
    {
        let ours = KeyedRateLimiter::<u64>::new(quota, MAX_KEYS).unwrap();
        let mut next = 1u64 << 40;
        group.bench_function("prodkit", |b| {
            b.iter(|| {
                next += 1;
                black_box(ours.check(&next).is_allowed())
            })
        });
        eprintln!("prodkit after keyed-new-key: {:?}", ours.stats());
        let governor = governor::RateLimiter::dashmap(gquota);
        group.bench_function("governor", |b| {
            b.iter(|| {
                next += 1;
                black_box(governor.check_key(&next).is_ok())
            })
        });
        eprintln!("governor after keyed-new-key: {} keys held", governor.len());
    }
    group.finish();
}

/// What no limiter can avoid: one clock read per check (the TSC through quanta,
/// and std's `Instant` for scale) and, keyed, one hash of the key.
fn floor(c: &mut Criterion) {
    use std::hash::BuildHasher;
    let mut group = c.benchmark_group("ratelimit/floor");
    configure(&mut group);
    let clock = prodkit_ratelimit::quanta::Clock::new();
    group.bench_function("tsc_read", |b| b.iter(|| black_box(clock.raw())));
    group.bench_function("instant_now", |b| b.iter(|| black_box(Instant::now())));
    let hasher = std::hash::RandomState::new();
    let mut key = 0u64;
    group.bench_function("siphash_u64", |b| {
        b.iter(|| {
            key = key.wrapping_add(1);
            black_box(hasher.hash_one(black_box(key)))
        })
    });
    group.finish();
}

criterion_group!(benches, direct, keyed, floor);
criterion_main!(benches);
