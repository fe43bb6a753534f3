//! `pool/wake-latency`: one job into an idle pool until it signals back, p50 and
//! p99 over many samples, back to back (the workers have just gone idle).
//! `pool/wake-latency-asleep`: the same after 1 ms of idleness, when every worker
//! is parked in the kernel. The submitting thread spins on the job's flag, so the
//! figure is the pool's wake-up, not the submitter's (it yields while it waits).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use prodkit_benches::naive::pool::WorkerPool;
use prodkit_benches::{Better, Figures};
use prodkit_pool::Pool;

const GROUPS: [(&str, Duration); 2] = [
    ("pool/wake-latency", Duration::ZERO),
    ("pool/wake-latency-asleep", Duration::from_millis(1)),
];

fn sample(idle: Duration, submit: &dyn Fn(Box<dyn FnOnce() + Send>)) -> Duration {
    if !idle.is_zero() {
        std::thread::sleep(idle);
    }
    let flag = Arc::new(AtomicBool::new(false));
    let f = Arc::clone(&flag);
    let start = Instant::now();
    submit(Box::new(move || f.store(true, Ordering::Release)));
    // Yield rather than spin: the scheduler may place the woken worker on this
    // CPU, and a spinning submitter would then hold it off for a whole time slice.
    while !flag.load(Ordering::Acquire) {
        std::thread::yield_now();
    }
    start.elapsed()
}

fn measure(
    figures: &mut Figures,
    name: &str,
    samples: usize,
    submit: &dyn Fn(Box<dyn FnOnce() + Send>),
) {
    for (group, idle) in GROUPS {
        figures.start(group, name);
        for _ in 0..samples / 10 {
            sample(idle, submit); // warm-up
        }
        let mut ns: Vec<u64> = (0..samples)
            .map(|_| sample(idle, submit).as_nanos() as u64)
            .collect();
        ns.sort_unstable();
        figures.samples(samples as u64);
        let at = |q: f64| ns[((ns.len() as f64 * q) as usize).min(ns.len() - 1)] as f64;
        figures.record(&format!("{group}/p50"), name, at(0.50), "ns", Better::Lower);
        figures.record(&format!("{group}/p99"), name, at(0.99), "ns", Better::Lower);
    }
}

#[allow(
    clippy::print_stdout,
    reason = "`--list` answers cargo xtask bench on stdout, as criterion does"
)]
fn main() {
    let names = ["prodkit", "threadpool", "rayon", "naive"];
    if std::env::args().any(|a| a == "--list") {
        for (group, _) in GROUPS {
            for n in names {
                println!("{group}/{n}: benchmark");
            }
        }
        return;
    }
    let samples = if prodkit_benches::quick() { 300 } else { 2000 };
    let mut figures = Figures::new("pool_latency");

    let pool = Pool::builder()
        .workers(2)
        .queue_capacity(1024)
        .build()
        .unwrap();
    measure(&mut figures, "prodkit", samples, &|job| {
        pool.execute(job).unwrap()
    });
    drop(pool);

    let tp = threadpool::ThreadPool::new(2);
    measure(&mut figures, "threadpool", samples, &|job| tp.execute(job));
    drop(tp);

    let rayon = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    measure(&mut figures, "rayon", samples, &|job| rayon.spawn(job));
    drop(rayon);

    let naive = WorkerPool::new(2, 1024);
    measure(&mut figures, "naive", samples, &|job| {
        naive
            .submit(Box::new(move || {
                job();
                Ok(())
            }))
            .map_err(|(e, _)| e)
            .unwrap()
    });
    naive.stop(Duration::from_secs(10));

    figures.note(&format!(
        "pool/wake-latency: {samples} samples per implementation and group; quantiles of wall time from submit until the submitter sees the job's flag"
    ));
    let path = figures.write().expect("write figures");
    eprintln!("figures written to {}", path.display());
}
