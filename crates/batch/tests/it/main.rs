//! Integration tests of prodkit-batch's core with sinks written here: what is
//! committed is recorded, failures are scripted.

mod asynch;
mod behaviour;
mod chaos;
mod failures;
mod lost_commit;
mod pg;
mod prop;
mod timeouts;
mod wire;

use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use prodkit_batch::{Batcher, Builder, Sink, SinkError};

/// Decides one write: the rows and the write's number (from 1).
type Script = dyn Fn(&[u64], usize) -> Result<(), SinkError> + Send + Sync;

/// A sink that records committed rows and fails as `script` says.
#[derive(Clone)]
struct Fake {
    log: Arc<Mutex<Vec<u64>>>,
    writes: Arc<Mutex<Vec<usize>>>,
    reconnects: Arc<Mutex<u32>>,
    script: Arc<Script>,
}

impl Fake {
    /// `script(rows, write_number)` decides each write.
    fn new(
        script: impl Fn(&[u64], usize) -> Result<(), SinkError> + Send + Sync + 'static,
    ) -> Fake {
        Fake {
            log: Arc::default(),
            writes: Arc::default(),
            reconnects: Arc::default(),
            script: Arc::new(script),
        }
    }

    fn ok() -> Fake {
        Fake::new(|_, _| Ok(()))
    }

    fn committed(&self) -> Vec<u64> {
        let mut rows = self.log.lock().clone();
        rows.sort_unstable();
        rows
    }

    fn batch_sizes(&self) -> Vec<usize> {
        self.writes.lock().clone()
    }
}

impl Sink<u64> for Fake {
    fn write(&mut self, rows: &[u64]) -> Result<(), SinkError> {
        let n = {
            let mut writes = self.writes.lock();
            writes.push(rows.len());
            writes.len()
        };
        (self.script)(rows, n)?;
        self.log.lock().extend_from_slice(rows);
        Ok(())
    }

    fn reconnect(&mut self) -> Result<(), SinkError> {
        *self.reconnects.lock() += 1;
        Ok(())
    }
}

/// Options for tests: small batches, a long linger (tests flush by rows or by
/// close unless they test linger), fast retries.
fn builder() -> Builder<u64> {
    Batcher::builder()
        .max_rows(10)
        .linger(Duration::from_secs(3600))
        .retry(prodkit_batch::RetryPolicy {
            max_attempts: 5,
            max_elapsed: Duration::from_secs(60),
            initial_backoff: Duration::from_micros(100),
            max_backoff: Duration::from_millis(1),
        })
}

fn start(b: Builder<u64>, sink: &Fake) -> Batcher<u64> {
    let sink = sink.clone();
    b.build(move || Ok(sink.clone())).unwrap()
}

/// Runs `f` on a thread of its own and returns what it returned and how long
/// it took; a watchdog fails the test if it takes more than `limit`.
fn timed<R: Send + 'static>(
    limit: Duration,
    f: impl FnOnce() -> R + Send + 'static,
) -> (R, Duration) {
    let (tx, rx) = mpsc::channel();
    let start = Instant::now();
    let worker = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    let result = rx
        .recv_timeout(limit)
        .unwrap_or_else(|_| panic!("still blocked after {limit:?}"));
    worker.join().unwrap();
    (result, start.elapsed())
}
