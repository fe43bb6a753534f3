//! Throughput of bounded concurrent caches, in the shape of Caffeine's
//! `GetPutBenchmark`.
//!
//! - `cache/throughput/<mix>`: two threads share one cache of 2^15 entries,
//!   prepopulated with every key of an array of 2^15 keys drawn from a
//!   scrambled Zipf distribution (s = 0.99 over 2^15 / 3 ranks, each rank
//!   hashed to a u64 key, as YCSB's `ScrambledZipfian`). Each thread walks the
//!   array from its own random start and does a `get` or an `insert` per key
//!   by the mix: `read-100`, `read-75-write-25` (three gets, then an insert),
//!   `write-100`. The working set fits, so this measures the hit path and the
//!   update path, not eviction. `insert-on-miss`: a cache of 2^12 entries and
//!   keys drawn from Zipf over 2^16 ranks; `get`, then `insert` on a miss, so
//!   that evictions happen all the time. Figure: total operations of both
//!   threads over the elapsed time, in millions per second; the median of 7
//!   runs of 1 s (3 of 200 ms under `--quick`), with min and max. The
//!   implementations take turns run by run, so that a busy spell of the host
//!   falls on all of them alike.
//! - `cache/throughput-1t/read-100`: `read-100` by one thread: the cost of a
//!   hit without contention.
//!
//! Implementations: `prodkit` (defaults), `quick_cache`
//! (`quick_cache::sync::Cache::new`) and `moka` (`moka::sync::Cache::new`),
//! each with its default hasher. A fresh cache is built for every run.

use std::hint::black_box;
use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use prodkit_benches::zipf::{self, Rng, Zipf};
use prodkit_benches::{Better, Figures};

/// Capacity of the cache and length of the key array (Caffeine's `SIZE`).
const SIZE: usize = 1 << 15;
const MASK: usize = SIZE - 1;
/// Distinct ranks behind the key array (Caffeine's `ITEMS`).
const ITEMS: usize = SIZE / 3;
/// YCSB's default Zipf exponent, used by Caffeine's benchmark.
const ZIPF_S: f64 = 0.99;
const MISS_CAPACITY: usize = 1 << 12;
const MISS_ITEMS: usize = 1 << 16;
/// Operations between two looks at the stop flag.
const BATCH: u64 = 1024;
const THREADS: usize = 2;
const IMPLS: [&str; 3] = ["prodkit", "quick_cache", "moka"];

/// The operation mix of a group.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mix {
    Read100,
    Read75Write25,
    Write100,
    InsertOnMiss,
}

impl Mix {
    const ALL: [Mix; 4] = [
        Mix::Read100,
        Mix::Read75Write25,
        Mix::Write100,
        Mix::InsertOnMiss,
    ];

    fn name(self) -> &'static str {
        match self {
            Mix::Read100 => "read-100",
            Mix::Read75Write25 => "read-75-write-25",
            Mix::Write100 => "write-100",
            Mix::InsertOnMiss => "insert-on-miss",
        }
    }

    fn capacity(self) -> usize {
        match self {
            Mix::InsertOnMiss => MISS_CAPACITY,
            _ => SIZE,
        }
    }
}

/// What the harness needs of a cache.
trait Bench: Sync {
    fn get(&self, key: &u64) -> Option<u64>;
    fn insert(&self, key: u64, value: u64);
    /// Finishes work deferred by earlier operations, before timing starts.
    fn settle(&self) {}
}

/// prodkit's cache with its defaults: with `prodkit()`, the only code that
/// names prodkit-cache's API.
impl Bench for prodkit_cache::Cache<u64, u64> {
    fn get(&self, key: &u64) -> Option<u64> {
        prodkit_cache::Cache::get(self, key)
    }
    fn insert(&self, key: u64, value: u64) {
        prodkit_cache::Cache::insert(self, key, value);
    }
}

fn prodkit(capacity: usize) -> prodkit_cache::Cache<u64, u64> {
    prodkit_cache::Cache::<u64, u64>::builder(capacity as u64)
        .build()
        .expect("a valid capacity")
}

impl Bench for quick_cache::sync::Cache<u64, u64> {
    fn get(&self, key: &u64) -> Option<u64> {
        quick_cache::sync::Cache::get(self, key)
    }
    fn insert(&self, key: u64, value: u64) {
        quick_cache::sync::Cache::insert(self, key, value);
    }
}

impl Bench for moka::sync::Cache<u64, u64> {
    fn get(&self, key: &u64) -> Option<u64> {
        moka::sync::Cache::get(self, key)
    }
    fn insert(&self, key: u64, value: u64) {
        moka::sync::Cache::insert(self, key, value);
    }
    /// moka applies the prepopulation to its policy in batches, on later calls.
    fn settle(&self) {
        self.run_pending_tasks();
    }
}

/// The key array of a mix: `SIZE` scrambled Zipf draws.
fn keys(mix: Mix) -> Vec<u64> {
    let items = if mix == Mix::InsertOnMiss {
        MISS_ITEMS
    } else {
        ITEMS
    };
    let zipf = Zipf::new(items, ZIPF_S);
    let mut rng = Rng::new(0xCAFE_F00D);
    (0..SIZE)
        .map(|_| zipf::scramble(zipf.sample(&mut rng)))
        .collect()
}

/// One timed run: `threads` threads start together on a prepopulated `cache`
/// and do `mix` until `span` has passed; operations per second.
fn run<C: Bench>(
    cache: &C,
    keys: &[u64],
    mix: Mix,
    threads: usize,
    span: Duration,
    seed: u64,
) -> f64 {
    let barrier = Barrier::new(threads + 1);
    let stop = AtomicBool::new(false);
    let mut rng = Rng::new(seed);
    let starts: Vec<usize> = (0..threads)
        .map(|_| rng.below(SIZE as u64) as usize)
        .collect();
    let (ops, elapsed) = std::thread::scope(|s| {
        let workers: Vec<_> = starts
            .iter()
            .map(|&start| {
                let (barrier, stop) = (&barrier, &stop);
                s.spawn(move || {
                    barrier.wait();
                    // Counted here, summed once at the end: a shared counter
                    // would be a contended cache line of its own.
                    let mut ops = 0u64;
                    let mut i = start;
                    // Relaxed: the flag carries no data, only "time is up".
                    while !stop.load(Ordering::Relaxed) {
                        for _ in 0..BATCH {
                            step(cache, keys[i & MASK], i, mix);
                            i = i.wrapping_add(1);
                        }
                        ops += BATCH;
                    }
                    ops
                })
            })
            .collect();
        barrier.wait();
        let started = Instant::now();
        std::thread::sleep(span);
        stop.store(true, Ordering::Relaxed);
        let ops: u64 = workers
            .into_iter()
            .map(|w| w.join().expect("bench thread panicked"))
            .sum();
        // Up to the last operation: the threads finish their batch after the flag.
        (ops, started.elapsed())
    });
    ops as f64 / elapsed.as_secs_f64()
}

#[inline(always)]
fn step<C: Bench>(cache: &C, key: u64, i: usize, mix: Mix) {
    match mix {
        Mix::Read100 => {
            black_box(cache.get(&key));
        }
        // A fixed pattern: three gets, then an insert.
        Mix::Read75Write25 if i & 3 != 3 => {
            black_box(cache.get(&key));
        }
        Mix::Read75Write25 | Mix::Write100 => cache.insert(key, key),
        Mix::InsertOnMiss => {
            if black_box(cache.get(&key)).is_none() {
                cache.insert(key, key);
            }
        }
    }
}

/// One run of `mix` on a fresh cache built by `build` and prepopulated with
/// every key; millions of operations per second.
fn once<C: Bench>(
    build: impl Fn(usize) -> C,
    keys: &[u64],
    mix: Mix,
    threads: usize,
    span: Duration,
    seed: u64,
) -> f64 {
    let cache = build(mix.capacity());
    for &k in keys {
        cache.insert(k, k);
    }
    cache.settle();
    run(&cache, keys, mix, threads, span, seed) / 1e6
}

fn once_impl(name: &str, keys: &[u64], mix: Mix, threads: usize, span: Duration, seed: u64) -> f64 {
    match name {
        "prodkit" => once(prodkit, keys, mix, threads, span, seed),
        "quick_cache" => once(
            quick_cache::sync::Cache::new,
            keys,
            mix,
            threads,
            span,
            seed,
        ),
        "moka" => once(
            |capacity| moka::sync::Cache::new(capacity as u64),
            keys,
            mix,
            threads,
            span,
            seed,
        ),
        _ => unreachable!("unknown implementation {name}"),
    }
}

/// The groups: name, mix and thread count.
fn groups() -> Vec<(String, Mix, usize)> {
    let mut all: Vec<_> = Mix::ALL
        .iter()
        .map(|&m| (format!("cache/throughput/{}", m.name()), m, THREADS))
        .collect();
    all.push(("cache/throughput-1t/read-100".to_string(), Mix::Read100, 1));
    all
}

#[allow(
    clippy::print_stdout,
    reason = "`--list` answers cargo xtask bench on stdout, as criterion does"
)]
fn main() {
    if std::env::args().any(|a| a == "--list") {
        for (group, _, _) in groups() {
            for name in IMPLS {
                println!("{group}/{name}: benchmark");
            }
        }
        return;
    }
    let (reps, span) = if prodkit_benches::quick() {
        (3, Duration::from_millis(200))
    } else {
        (7, Duration::from_secs(1))
    };
    let mut figures = Figures::new("cache");
    figures.samples(reps as u64);
    for (group, mix, threads) in groups() {
        let keys = keys(mix);
        // The implementations take turns, run by run: this host's speed
        // drifts 2-3x between quiet and busy spells, and taking turns puts
        // every implementation through the same spells.
        let mut rates = vec![Vec::with_capacity(reps); IMPLS.len()];
        for rep in 0..reps {
            for (i, name) in IMPLS.iter().enumerate() {
                if rep == 0 {
                    figures.start(&group, name);
                }
                rates[i].push(once_impl(name, &keys, mix, threads, span, rep as u64));
            }
        }
        for (name, mut r) in IMPLS.iter().zip(rates) {
            r.sort_by(f64::total_cmp);
            let (median, low, high) = (r[r.len() / 2], r[0], r[r.len() - 1]);
            figures.record_spread(&group, name, median, low, high, "Mops/s", Better::Higher);
            eprintln!("{group}/{name}: {median:.2} Mops/s ({low:.2} to {high:.2})");
        }
    }
    figures.note(&format!(
        "cache/throughput: Caffeine's GetPutBenchmark shape: {THREADS} threads on one prepopulated cache of {SIZE} entries, keys from a scrambled Zipf (s = {ZIPF_S}) over {ITEMS} ranks; insert-on-miss: capacity {MISS_CAPACITY}, {MISS_ITEMS} ranks; median of {reps} runs of {span:?}, each on a fresh cache, the implementations taking turns run by run"
    ));
    let path = figures.write().expect("write figures");
    eprintln!("figures written to {}", path.display());
}
