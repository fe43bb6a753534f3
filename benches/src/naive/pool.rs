//! The seed's `WorkerPool` ("Production Goroutine Management"), translated:
//! a bounded job channel, a semaphore channel acquired *after* taking a job,
//! a cancel signal that drops queued jobs on `stop`, no panic handling, and
//! no way to learn a job's result. Kept as the baseline, not as advice.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, bounded, select};

/// A job: the Go version's `Job{ID, Data, Context}` with `workerFunc` folded in.
pub type Job = Box<dyn FnOnce() -> Result<(), String> + Send>;

/// `ErrPoolFull` / `ErrPoolClosed`.
#[derive(Debug, PartialEq, Eq)]
pub enum SubmitError {
    /// The channel was full (the Go `default:` branch).
    Full,
    /// `ctx.Done()` fired.
    Closed,
}

/// The Go `WorkerPool`.
pub struct WorkerPool {
    job_tx: Sender<Job>,
    done_tx: Option<Sender<()>>,
    done_rx: Receiver<()>,
    queue_size: Arc<AtomicI64>,
    processed: Arc<AtomicU64>,
    errors: Arc<AtomicU64>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for WorkerPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerPool").finish_non_exhaustive()
    }
}

impl WorkerPool {
    /// `NewWorkerPool` + `Start`.
    pub fn new(max_workers: usize, queue_size: usize) -> WorkerPool {
        let (job_tx, job_rx) = bounded::<Job>(queue_size);
        let (sem_tx, sem_rx) = bounded::<()>(max_workers);
        let (done_tx, done_rx) = bounded::<()>(0);
        let queue = Arc::new(AtomicI64::new(0));
        let processed = Arc::new(AtomicU64::new(0));
        let errors = Arc::new(AtomicU64::new(0));
        let threads = (0..max_workers)
            .map(|_| {
                let (job_rx, sem_tx, sem_rx, done_rx) = (
                    job_rx.clone(),
                    sem_tx.clone(),
                    sem_rx.clone(),
                    done_rx.clone(),
                );
                let (queue, processed, errors) = (
                    Arc::clone(&queue),
                    Arc::clone(&processed),
                    Arc::clone(&errors),
                );
                std::thread::spawn(move || {
                    loop {
                        select! {
                            recv(job_rx) -> job => {
                                let Ok(job) = job else { return };
                                queue.fetch_sub(1, Ordering::SeqCst);
                                // Acquire the semaphore only after taking the job.
                                sem_tx.send(()).unwrap();
                                match job() {
                                    Ok(()) => processed.fetch_add(1, Ordering::SeqCst),
                                    Err(_) => errors.fetch_add(1, Ordering::SeqCst),
                                };
                                sem_rx.recv().unwrap();
                            }
                            recv(done_rx) -> _ => return,
                        }
                    }
                })
            })
            .collect();
        WorkerPool {
            job_tx,
            done_tx: Some(done_tx),
            done_rx,
            queue_size: queue,
            processed,
            errors,
            threads,
        }
    }

    /// `Submit`: never waits; a full queue is an error the caller must handle.
    /// (Go keeps the job in the caller's hands; here it comes back with the error.)
    pub fn submit(&self, job: Job) -> Result<(), (SubmitError, Job)> {
        if self.done_rx.try_recv().is_err_and(|e| e.is_disconnected()) {
            return Err((SubmitError::Closed, job));
        }
        match self.job_tx.try_send(job) {
            Ok(()) => {
                self.queue_size.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
            Err(e) => Err((SubmitError::Full, e.into_inner())),
        }
    }

    /// `Stats().Processed`.
    pub fn processed(&self) -> u64 {
        self.processed.load(Ordering::SeqCst)
    }

    /// `Stop`: cancels (queued jobs are dropped) and waits up to `timeout`.
    pub fn stop(mut self, _timeout: Duration) {
        drop(self.done_tx.take());
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        let _ = self.errors.load(Ordering::SeqCst);
    }
}
