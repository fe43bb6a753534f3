//! `pool/tiny-jobs-1m`: 1,000,000 tiny jobs submitted from one thread to 2 workers,
//! then waiting for all of them. Time per iteration is for the whole million.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use parking_lot::{Condvar, Mutex};
use prodkit_benches::naive::pool::{SubmitError as NaiveFull, WorkerPool};
use prodkit_pool::{Overload, Pool};

const JOBS: usize = 1_000_000;
const WORKERS: usize = 2;
/// Queue capacity of the bounded pools (prodkit, naive); threadpool and rayon
/// queue without bound.
const CAPACITY: usize = 65_536;

/// Counts down to zero; the job that reaches it wakes the waiter.
struct Latch {
    left: AtomicUsize,
    done: Mutex<bool>,
    cv: Condvar,
}

impl Latch {
    fn new(n: usize) -> Arc<Latch> {
        Arc::new(Latch {
            left: AtomicUsize::new(n),
            done: Mutex::new(false),
            cv: Condvar::new(),
        })
    }
    fn count_down(&self) {
        if self.left.fetch_sub(1, Ordering::AcqRel) == 1 {
            *self.done.lock() = true;
            self.cv.notify_all();
        }
    }
    fn wait(&self) {
        let mut done = self.done.lock();
        while !*done {
            self.cv.wait(&mut done);
        }
    }
}

fn tiny(x: usize) -> usize {
    black_box(x).wrapping_mul(31)
}

fn tiny_jobs(c: &mut Criterion) {
    let mut group = c.benchmark_group("pool/tiny-jobs-1m");
    group
        .sample_size(10)
        .throughput(Throughput::Elements(JOBS as u64));
    if prodkit_benches::quick() {
        group
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2));
    } else {
        group
            .warm_up_time(Duration::from_secs(2))
            .measurement_time(Duration::from_secs(10));
    }

    let pool = Pool::builder()
        .workers(WORKERS)
        .queue_capacity(CAPACITY)
        .overload(Overload::Block)
        .build()
        .unwrap();
    let mut handles = Vec::with_capacity(JOBS);
    group.bench_function("prodkit", |b| {
        b.iter(|| {
            handles.extend((0..JOBS).map(|i| pool.submit(move || tiny(i)).unwrap()));
            let sum = handles
                .drain(..)
                .fold(0usize, |acc, h| acc.wrapping_add(h.join().unwrap()));
            black_box(sum)
        })
    });
    group.bench_function("prodkit_detached", |b| {
        b.iter(|| {
            for i in 0..JOBS {
                pool.execute(move || {
                    black_box(tiny(i));
                })
                .unwrap();
            }
            // The queue is FIFO and each worker runs one job at a time: once every
            // worker sits in a barrier job, every earlier job has finished.
            let barrier = Arc::new(std::sync::Barrier::new(WORKERS + 1));
            for _ in 0..WORKERS {
                let b = Arc::clone(&barrier);
                pool.execute(move || {
                    b.wait();
                })
                .unwrap();
            }
            barrier.wait();
        })
    });
    drop(pool);

    let tp = threadpool::ThreadPool::new(WORKERS);
    group.bench_function("threadpool", |b| {
        b.iter(|| {
            for i in 0..JOBS {
                tp.execute(move || {
                    black_box(tiny(i));
                });
            }
            tp.join();
        })
    });
    drop(tp);

    let rayon = rayon::ThreadPoolBuilder::new()
        .num_threads(WORKERS)
        .build()
        .unwrap();
    group.bench_function("rayon", |b| {
        b.iter(|| {
            let latch = Latch::new(JOBS);
            for i in 0..JOBS {
                let l = Arc::clone(&latch);
                rayon.spawn(move || {
                    black_box(tiny(i));
                    l.count_down();
                });
            }
            latch.wait();
        })
    });
    group.bench_function("rayon_scope", |b| {
        b.iter(|| {
            rayon.scope(|s| {
                for i in 0..JOBS {
                    s.spawn(move |_| {
                        black_box(tiny(i));
                    });
                }
            })
        })
    });
    drop(rayon);

    let naive = WorkerPool::new(WORKERS, CAPACITY);
    group.bench_function("naive", |b| {
        b.iter(|| {
            let latch = Latch::new(JOBS);
            for i in 0..JOBS {
                let l = Arc::clone(&latch);
                let mut job: prodkit_benches::naive::pool::Job = Box::new(move || {
                    black_box(tiny(i));
                    l.count_down();
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
            latch.wait();
        })
    });
    naive.stop(Duration::from_secs(10));
    group.finish();
}

criterion_group!(benches, tiny_jobs);
criterion_main!(benches);
