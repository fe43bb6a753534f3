//! Integration tests of prodkit-pool.

mod behaviour;
mod prop;
mod shutdown;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use prodkit_pool::{Overload, Pool};

fn pool(workers: usize, capacity: usize, overload: Overload) -> Pool {
    Pool::builder()
        .workers(workers)
        .queue_capacity(capacity)
        .overload(overload)
        .build()
        .unwrap()
}

/// A gate jobs wait on, so tests decide when they finish without sleeping.
#[derive(Clone, Default)]
struct Gate(Arc<(parking_lot::Mutex<bool>, parking_lot::Condvar)>);

impl Gate {
    fn wait(&self) {
        let mut open = self.0.0.lock();
        while !*open {
            self.0.1.wait(&mut open);
        }
    }
    fn open(&self) {
        *self.0.0.lock() = true;
        self.0.1.notify_all();
    }
}

/// Occupies every worker of `pool` with a job that waits on the returned gate,
/// and returns once all of them are running.
fn block_workers(pool: &Pool) -> Gate {
    let gate = Gate::default();
    let started = Arc::new(std::sync::Barrier::new(pool.workers() + 1));
    for _ in 0..pool.workers() {
        let (gate, started) = (gate.clone(), Arc::clone(&started));
        pool.execute(move || {
            started.wait();
            gate.wait();
        })
        .unwrap();
    }
    started.wait();
    gate
}

/// Set when dropped: tells whether a closure was dropped.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// The number of threads of this process, from /proc.
fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}
