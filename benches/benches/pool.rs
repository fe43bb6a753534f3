//! `pool/tiny-jobs-1m`: 1,000,000 tiny jobs submitted from one thread to 2
//! workers, then waiting for all of them; the figure is ns per job.
//!
//! Every implementation runs the same job body: a tiny computation plus one
//! increment of the running thread's own completion counter (cache-padded,
//! reached through a thread-local, so no job clones an `Arc` or fights over a
//! shared cache line). The waiter sums the counters until all jobs are counted,
//! sleeping 50 us between looks (at most 0.05% of a round). prodkit with
//! handles counts too and also joins every handle, its way of learning results:
//! `prodkit` holds all 1,000,000 handles and joins them at the end (about 56 MB
//! of results alive at once); `prodkit_window` joins the oldest handle once
//! 65,536 are outstanding, the way a producer that wants results with bounded
//! memory would.
//!
//! The machine is noisy (a 2-vCPU VM with steal time), so the implementations
//! run interleaved: each round runs every implementation once, in a rotating
//! order, and the figure is the median over rounds, with min and max as spread.
//!
//! `floor`: 1,000,000 `usize`s through a bounded crossbeam `ArrayQueue` to 2
//! spinning consumers that count them: moving a job's description between
//! threads with no allocation, no result and no sleeping. No pool can go below.

use std::collections::VecDeque;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;
use crossbeam_utils::CachePadded;
use parking_lot::Mutex;
use prodkit_benches::naive::pool::{SubmitError as NaiveFull, WorkerPool};
use prodkit_benches::{Better, Figures};
use prodkit_pool::{JobHandle, Overload, Pool};

const GROUP: &str = "pool/tiny-jobs-1m";
const JOBS: usize = 1_000_000;
const WORKERS: usize = 2;
/// Queue capacity of the bounded pools (prodkit, naive, floor); threadpool and
/// rayon queue without bound.
const CAPACITY: usize = 65_536;

/// Every thread's completion counter, leaked once per thread.
static COUNTERS: Mutex<Vec<&'static CachePadded<AtomicUsize>>> = Mutex::new(Vec::new());

thread_local! {
    static MINE: &'static CachePadded<AtomicUsize> = {
        let counter: &'static CachePadded<AtomicUsize> = Box::leak(Box::default());
        COUNTERS.lock().push(counter);
        counter
    };
}

fn count_done() {
    MINE.with(|c| c.fetch_add(1, Ordering::Release));
}

fn counted() -> usize {
    COUNTERS
        .lock()
        .iter()
        .map(|c| c.load(Ordering::Acquire))
        .sum()
}

/// Waits until `n` more jobs than `base` are counted.
fn wait_counted(base: usize, n: usize) {
    while counted() - base < n {
        std::thread::sleep(Duration::from_micros(50));
    }
}

/// The job every implementation runs.
fn body(i: usize) -> usize {
    let v = black_box(i).wrapping_mul(31);
    count_done();
    v
}

/// The raw handoff: a bounded array queue drained by 2 spinning consumers,
/// started for the round and stopped after it, so they never spin while other
/// implementations are measured.
fn floor_round() {
    let queue = ArrayQueue::new(CAPACITY);
    let stop = AtomicBool::new(false);
    let base = counted();
    std::thread::scope(|s| {
        for _ in 0..WORKERS {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    match queue.pop() {
                        Some(i) => {
                            black_box(body(i));
                        }
                        None => std::thread::yield_now(),
                    }
                }
            });
        }
        for i in 0..JOBS {
            let mut item = i;
            while let Err(back) = queue.push(item) {
                item = back;
                std::thread::yield_now();
            }
        }
        wait_counted(base, JOBS);
        stop.store(true, Ordering::Relaxed);
    });
}

#[allow(
    clippy::print_stdout,
    reason = "`--list` answers cargo xtask bench on stdout, as criterion does"
)]
fn main() {
    let names = [
        "prodkit",
        "prodkit_window",
        "prodkit_detached",
        "threadpool",
        "rayon",
        "rayon_scope",
        "naive",
        "floor",
    ];
    if std::env::args().any(|a| a == "--list") {
        for n in names {
            println!("{GROUP}/{n}: benchmark");
        }
        return;
    }
    let rounds = if prodkit_benches::quick() { 3 } else { 9 };

    // Our defaults (histograms off) with the benchmark's sizes.
    let pool = Pool::builder()
        .workers(WORKERS)
        .queue_capacity(CAPACITY)
        .overload(Overload::Block)
        .build()
        .unwrap();
    let handles: Mutex<Vec<JobHandle<usize>>> = Mutex::new(Vec::with_capacity(JOBS));
    let window: Mutex<VecDeque<JobHandle<usize>>> = Mutex::new(VecDeque::with_capacity(CAPACITY));
    let tp = threadpool::ThreadPool::new(WORKERS);
    let rayon = rayon::ThreadPoolBuilder::new()
        .num_threads(WORKERS)
        .build()
        .unwrap();
    let naive = WorkerPool::new(WORKERS, CAPACITY);

    let run = |name: &str| match name {
        "prodkit" => {
            let base = counted();
            let mut handles = handles.lock();
            handles.extend((0..JOBS).map(|i| pool.submit(move || body(i)).unwrap()));
            let sum = handles
                .drain(..)
                .fold(0usize, |acc, h| acc.wrapping_add(h.join().unwrap()));
            wait_counted(base, JOBS);
            black_box(sum);
        }
        "prodkit_window" => {
            let base = counted();
            let mut window = window.lock();
            let mut sum = 0usize;
            for i in 0..JOBS {
                if window.len() == CAPACITY {
                    let oldest = window.pop_front().unwrap();
                    sum = sum.wrapping_add(oldest.join().unwrap());
                }
                window.push_back(pool.submit(move || body(i)).unwrap());
            }
            for h in window.drain(..) {
                sum = sum.wrapping_add(h.join().unwrap());
            }
            wait_counted(base, JOBS);
            black_box(sum);
        }
        "prodkit_detached" => {
            let base = counted();
            for i in 0..JOBS {
                pool.execute(move || {
                    black_box(body(i));
                })
                .unwrap();
            }
            wait_counted(base, JOBS);
        }
        "threadpool" => {
            let base = counted();
            for i in 0..JOBS {
                tp.execute(move || {
                    black_box(body(i));
                });
            }
            wait_counted(base, JOBS);
        }
        "rayon" => {
            let base = counted();
            for i in 0..JOBS {
                rayon.spawn(move || {
                    black_box(body(i));
                });
            }
            wait_counted(base, JOBS);
        }
        "rayon_scope" => {
            let base = counted();
            rayon.scope(|s| {
                for i in 0..JOBS {
                    s.spawn(move |_| {
                        black_box(body(i));
                    });
                }
            });
            wait_counted(base, JOBS);
        }
        "naive" => {
            let base = counted();
            for i in 0..JOBS {
                let mut job: prodkit_benches::naive::pool::Job = Box::new(move || {
                    black_box(body(i));
                    Ok(())
                });
                // The seed's Submit never waits: the caller retries on ErrPoolFull.
                loop {
                    match naive.submit(job) {
                        Ok(()) => break,
                        Err((NaiveFull::Full, back)) => {
                            job = back;
                            std::thread::yield_now();
                        }
                        Err((NaiveFull::Closed, _)) => unreachable!(),
                    }
                }
            }
            wait_counted(base, JOBS);
        }
        "floor" => floor_round(),
        other => unreachable!("{other}"),
    };

    let mut figures = Figures::new("pool");
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    // A warm-up round (page faults, thread start-up, allocator arenas), then the
    // measured rounds, each in a rotated order.
    for round in 0..=rounds {
        for k in 0..names.len() {
            let i = (k + round) % names.len();
            if round == 1 {
                figures.start(GROUP, names[i]);
            }
            let start = Instant::now();
            run(names[i]);
            let ns_per_job = start.elapsed().as_nanos() as f64 / JOBS as f64;
            if round > 0 {
                samples[i].push(ns_per_job);
            }
        }
    }
    figures.samples(rounds as u64);
    for (name, mut s) in names.iter().zip(samples) {
        s.sort_by(f64::total_cmp);
        let median = s[s.len() / 2];
        let (low, high) = (s[0], s[s.len() - 1]);
        figures.record_spread(GROUP, name, median, low, high, "ns/job", Better::Lower);
    }
    figures.note(&format!(
        "pool/tiny-jobs-1m: ns per job, median of {rounds} interleaved rounds of 1,000,000 jobs (spread: min-max); floor: the raw handoff through a bounded array queue"
    ));
    drop(pool);
    naive.stop(Duration::from_secs(10));
    let path = figures.write().expect("write figures");
    eprintln!("figures written to {}", path.display());
}
