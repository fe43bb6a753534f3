//! Integration tests of prodkit-pool. Every test starts a [`Watchdog`]: a test
//! that deadlocks fails the binary with its name instead of hanging CI.

mod asynch;
mod behaviour;
mod nesting;
mod prop;
mod scope;
mod shutdown;

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use prodkit_pool::{Overload, Pool};

fn pool(workers: usize, capacity: usize, overload: Overload) -> Pool {
    Pool::builder()
        .workers(workers)
        .queue_capacity(capacity)
        .overload(overload)
        .build()
        .unwrap()
}

/// Ends the test binary with a message when the test holding it has not
/// finished within its limit: the only way to fail a test whose thread is stuck.
struct Watchdog {
    done: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// A watchdog named after the calling test, with the default limit.
fn watchdog() -> Watchdog {
    let name = std::thread::current()
        .name()
        .unwrap_or("a test")
        .to_string();
    Watchdog::new(name, Duration::from_secs(60))
}

impl Watchdog {
    fn new(name: String, limit: Duration) -> Watchdog {
        let (done, rx) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
                // Straight to the file: the test harness captures `eprintln!`.
                let _ = writeln!(
                    std::io::stderr(),
                    "watchdog: {name} did not finish within {limit:?}: a deadlock; failing"
                );
                std::process::exit(101);
            }
        });
        Watchdog {
            done: Some(done),
            thread: Some(thread),
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        drop(self.done.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
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
    /// Opens the gate from another thread after `delay`; the returned thread is
    /// joined by the caller. For races that a test wants to give a chance.
    fn open_after(&self, delay: Duration) -> JoinHandle<()> {
        let gate = self.clone();
        std::thread::spawn(move || {
            std::thread::sleep(delay);
            gate.open();
        })
    }
}

/// Occupies every worker of `pool` with a job that waits on the returned gate,
/// and returns once all of them are running.
fn block_workers(pool: &Pool) -> Gate {
    block_some_workers(pool, pool.workers())
}

/// Occupies `n` workers of `pool` with a job that waits on the returned gate,
/// and returns once all of them are running.
fn block_some_workers(pool: &Pool, n: usize) -> Gate {
    let gate = Gate::default();
    let started = Arc::new(std::sync::Barrier::new(n + 1));
    for _ in 0..n {
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

/// Panics when dropped.
struct PanicsOnDrop;

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        panic!("a value that panics on drop");
    }
}

/// How many threads of this process have a name starting with `prefix`.
fn threads_named(prefix: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|c| c.trim_end().starts_with(prefix))
        .count()
}

/// Waits (under the caller's watchdog) until no thread's name starts with `prefix`.
fn wait_threads_gone(prefix: &str) {
    while threads_named(prefix) > 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Whether no thread's name starts with `prefix` within a second. A joined
/// thread can linger in /proc for a moment: `pthread_join` returns when the
/// kernel clears the thread's id, just before it removes the thread's entry.
fn threads_gone(prefix: &str) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    while threads_named(prefix) > 0 {
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    true
}
