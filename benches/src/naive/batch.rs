//! The seed's `BatchWriter` ("Database Batching for High Throughput"),
//! translated: `execute` appends the statement to a pending list and waits for
//! its result; a worker flushes when the list reaches `batch_size` or every
//! 100 ms, running the statements one by one in a transaction and telling each
//! caller its statement's result *before* COMMIT (a failed commit is rolled back
//! and nobody is told). Kept as the baseline, not as advice.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, bounded, select, tick};
use parking_lot::Mutex;
use postgres::Client;
use postgres::types::ToSql;

type Args = Vec<Box<dyn ToSql + Sync + Send>>;

struct Item {
    sql: String,
    args: Args,
    result: Sender<Result<(), String>>,
}

/// The Go `BatchWriter`.
pub struct BatchWriter {
    pending: Arc<Mutex<Vec<Item>>>,
    batch_size: usize,
    flush: Sender<()>,
    stop: Option<Sender<()>>,
    worker: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for BatchWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchWriter").finish_non_exhaustive()
    }
}

impl BatchWriter {
    /// `NewBatchWriter(db, batchSize)`, with its 100 ms flush period.
    pub fn new(client: Client, batch_size: usize) -> BatchWriter {
        let pending: Arc<Mutex<Vec<Item>>> = Arc::default();
        let (flush, flush_rx) = bounded::<()>(1);
        let (stop, stop_rx) = bounded::<()>(0);
        let worker = {
            let pending = Arc::clone(&pending);
            std::thread::spawn(move || flush_worker(client, &pending, &flush_rx, &stop_rx))
        };
        BatchWriter {
            pending,
            batch_size,
            flush,
            stop: Some(stop),
            worker: Some(worker),
        }
    }

    /// `Execute(sql, args...)`: blocks until the statement ran (not committed).
    ///
    /// # Errors
    /// The statement's error, as text.
    pub fn execute(&self, sql: &str, args: Args) -> Result<(), String> {
        let (result, answer) = bounded(1);
        let should_flush = {
            let mut pending = self.pending.lock();
            pending.push(Item {
                sql: sql.to_string(),
                args,
                result,
            });
            pending.len() >= self.batch_size
        };
        if should_flush {
            let _ = self.flush.try_send(());
        }
        answer.recv().map_err(|e| e.to_string())?
    }
}

impl Drop for BatchWriter {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

fn flush_worker(
    mut client: Client,
    pending: &Mutex<Vec<Item>>,
    flush: &Receiver<()>,
    stop: &Receiver<()>,
) {
    let ticker = tick(Duration::from_millis(100));
    loop {
        select! {
            recv(flush) -> _ => flush_batch(&mut client, pending),
            recv(ticker) -> _ => flush_batch(&mut client, pending),
            recv(stop) -> _ => {
                flush_batch(&mut client, pending);
                return;
            }
        }
    }
}

fn flush_batch(client: &mut Client, pending: &Mutex<Vec<Item>>) {
    let batch = std::mem::take(&mut *pending.lock());
    if batch.is_empty() {
        return;
    }
    let mut tx = match client.transaction() {
        Ok(tx) => tx,
        Err(e) => {
            for item in batch {
                let _ = item.result.send(Err(e.to_string()));
            }
            return;
        }
    };
    for item in batch {
        let args: Vec<&(dyn ToSql + Sync)> = item
            .args
            .iter()
            .map(|a| &**a as &(dyn ToSql + Sync))
            .collect();
        let result = tx
            .execute(item.sql.as_str(), &args)
            .map(|_| ())
            .map_err(|e| e.to_string());
        // Told before COMMIT, as in the Go version.
        let _ = item.result.send(result);
    }
    // `if err := tx.Commit(); err != nil { tx.Rollback() }`: nobody hears of it.
    let _ = tx.commit();
}
