//! Interleaved rounds: each round runs every implementation of a group
//! once, in a rotating order, for about 100 ms (30 ms with `--quick`), and
//! the figure is the median over 9 rounds (3 with `--quick`), with the min
//! and max as its spread. On a shared VM, whose speed drifts by tens of
//! percent over seconds, this compares like with like where back-to-back
//! runs do not.

use std::sync::Barrier;
use std::time::{Duration, Instant};

use crate::{Better, Figures};

/// Runs `iters` operations and returns the wall time.
pub type Run = Box<dyn FnMut(u64) -> Duration>;

/// One implementation of a group.
pub struct Imp {
    /// Its id in the report: `prodkit`, `naive`, a peer, `floor`.
    pub name: &'static str,
    /// The measured loop.
    pub run: Run,
}

impl std::fmt::Debug for Imp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Imp")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// An implementation named `name` whose loop is `run`.
pub fn imp(name: &'static str, run: impl FnMut(u64) -> Duration + 'static) -> Imp {
    Imp {
        name,
        run: Box::new(run),
    }
}

/// `op` run `iters` times by the calling thread.
pub fn one_thread(mut op: impl FnMut()) -> impl FnMut(u64) -> Duration {
    move |iters| {
        let start = Instant::now();
        for _ in 0..iters {
            op();
        }
        start.elapsed()
    }
}

/// `iters` operations in all by two threads started together, each
/// running the operation `make` gives it: the time per operation of the
/// pair is the wall time over `iters`.
pub fn two_threads<F, G>(make: F) -> impl FnMut(u64) -> Duration
where
    F: Fn() -> G + Sync,
    G: FnMut(),
{
    move |iters| {
        let barrier = Barrier::new(3);
        std::thread::scope(|s| {
            for t in 0..2u64 {
                let (make, barrier) = (&make, &barrier);
                s.spawn(move || {
                    let mut op = make();
                    barrier.wait();
                    for _ in 0..iters / 2 + (iters % 2) * t {
                        op();
                    }
                });
            }
            barrier.wait();
            // The scope joins both threads before returning.
            Instant::now()
        })
        .elapsed()
    }
}

/// Measures every implementation of `group` in interleaved rounds and
/// records nanoseconds per operation under `unit`.
pub fn measure(figures: &mut Figures, group: &str, unit: &str, imps: Vec<Imp>) {
    for (name, median, low, high) in rounds(figures, group, imps) {
        figures.record_spread(group, name, median, low, high, unit, Better::Lower);
        eprintln!("{group}/{name}: {median:.2} ns ({low:.2} - {high:.2})");
    }
}

/// Measures as [`measure`] does, and records a rate: `per_op` units (bytes,
/// records) per operation, as `scale` units per second under `unit` (for
/// MB/s, `scale` is 1e6).
pub fn measure_rate(
    figures: &mut Figures,
    group: &str,
    unit: &str,
    per_op: f64,
    scale: f64,
    imps: Vec<Imp>,
) {
    let rate = |ns: f64| per_op / (ns * 1e-9) / scale;
    for (name, median, low, high) in rounds(figures, group, imps) {
        // The fastest round is the highest rate.
        let (median, low, high) = (rate(median), rate(high), rate(low));
        figures.record_spread(group, name, median, low, high, unit, Better::Higher);
        eprintln!("{group}/{name}: {median:.1} {unit} ({low:.1} - {high:.1})");
    }
}

/// The interleaved rounds: each implementation's median, min and max
/// nanoseconds per operation.
fn rounds(
    figures: &mut Figures,
    group: &str,
    mut imps: Vec<Imp>,
) -> Vec<(&'static str, f64, f64, f64)> {
    let quick = crate::quick();
    let (rounds, target) = if quick {
        (3, Duration::from_millis(30))
    } else {
        (9, Duration::from_millis(100))
    };
    // Calibrate each: iterations for about `target`, from a warm-up run.
    let mut iters = Vec::new();
    for imp in &mut imps {
        figures.start(group, imp.name);
        // From one: an operation may take milliseconds.
        let mut n = 1u64;
        loop {
            let took = (imp.run)(n);
            if took >= target / 10 || n >= 1 << 32 {
                let per = took.as_nanos().max(1) as f64 / n as f64;
                iters.push(((target.as_nanos() as f64 / per) as u64).max(10));
                break;
            }
            n *= 10;
        }
    }
    figures.samples(rounds as u64);
    let mut samples = vec![Vec::new(); imps.len()];
    for round in 0..rounds {
        for k in 0..imps.len() {
            let i = (k + round) % imps.len();
            let took = (imps[i].run)(iters[i]);
            samples[i].push(took.as_nanos() as f64 / iters[i] as f64);
        }
    }
    imps.iter()
        .zip(samples)
        .map(|(imp, mut s)| {
            s.sort_by(f64::total_cmp);
            (imp.name, s[s.len() / 2], s[0], s[s.len() - 1])
        })
        .collect()
}
