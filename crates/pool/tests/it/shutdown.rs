//! Shutdown: nothing lost, nothing left running, no thread left behind.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use prodkit_pool::{JobError, Overload, Pool, SubmitError};

use crate::{DropFlag, block_workers, pool, thread_count};

#[test]
fn graceful_shutdown_runs_every_queued_job() {
    let pool = pool(2, 1000, Overload::Block);
    let ran = Arc::new(AtomicUsize::new(0));
    let gate = block_workers(&pool);
    for _ in 0..500 {
        let r = Arc::clone(&ran);
        pool.execute(move || {
            r.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    }
    gate.open();
    let report = pool.shutdown(Duration::from_secs(30));
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(ran.load(Ordering::SeqCst), 500);
    assert_eq!(report.completed, 502);
    assert!(matches!(pool.submit(|| ()), Err(SubmitError::Closed(_))));
    assert_eq!(pool.stats().live_workers, 0);
}

#[test]
fn shutdown_reports_a_worker_busy_past_the_deadline() {
    let pool = pool(1, 4, Overload::Block);
    let gate = block_workers(&pool);
    pool.execute(|| ()).unwrap();
    let report = pool.shutdown(Duration::from_millis(10));
    assert_eq!(report.workers_still_running, 1);
    assert_eq!(report.still_queued, 1);
    gate.open();
    drop(pool); // joins the worker after it drained the queue
}

#[test]
fn shutdown_now_returns_unstarted_jobs_and_nothing_runs_after() {
    let pool = pool(1, 16, Overload::Block);
    let gate = block_workers(&pool);
    let ran = Arc::new(AtomicBool::new(false));
    let r = Arc::clone(&ran);
    let handle = pool
        .submit(move || r.store(true, Ordering::SeqCst))
        .unwrap();
    let dropped = Arc::new(AtomicBool::new(false));
    let flag = DropFlag(Arc::clone(&dropped));
    pool.execute(move || drop(flag)).unwrap();
    let opener = {
        let gate = gate.clone();
        std::thread::spawn(move || gate.open())
    };
    let unstarted = pool.shutdown_now();
    opener.join().unwrap();
    assert_eq!(unstarted.len(), 2);
    assert_eq!(handle.join(), Err(JobError::Cancelled));
    assert!(
        !ran.load(Ordering::SeqCst) && !dropped.load(Ordering::SeqCst),
        "handed back, not run or dropped"
    );
    assert_eq!(pool.stats().live_workers, 0, "every worker was joined");
    for job in unstarted {
        job.run();
    }
    assert!(
        ran.load(Ordering::SeqCst) && dropped.load(Ordering::SeqCst),
        "the caller can still run them"
    );
}

#[test]
fn no_pool_thread_outlives_its_pool() {
    // Other tests run in parallel threads of this binary, so count this pool's
    // threads by name.
    let named = |prefix: &str| {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .filter(|c| c.trim_end().starts_with(prefix))
            .count()
    };
    let pool = Pool::builder()
        .workers(3)
        .thread_name("noleak")
        .build()
        .unwrap();
    // Each worker names itself as it starts: wait until all three run.
    while pool.stats().live_workers < 3 {
        std::thread::yield_now();
    }
    assert_eq!(named("noleak-"), 3);
    assert!(thread_count() >= 4, "the test thread and three workers");
    for _ in 0..100 {
        pool.execute(|| ()).unwrap();
    }
    drop(pool);
    assert_eq!(named("noleak-"), 0, "dropping the pool joined its threads");

    let pool = Pool::builder()
        .workers(2)
        .thread_name("noleak2")
        .build()
        .unwrap();
    pool.shutdown(Duration::from_secs(10));
    assert_eq!(named("noleak2-"), 0, "shutdown joined its threads");
}

#[test]
fn hooks_run_once_per_worker() {
    let starts = Arc::new(AtomicUsize::new(0));
    let stops = Arc::new(AtomicUsize::new(0));
    let (a, b) = (Arc::clone(&starts), Arc::clone(&stops));
    let pool = Pool::builder()
        .workers(3)
        .on_thread_start(move |_| {
            a.fetch_add(1, Ordering::SeqCst);
        })
        .on_thread_stop(move |i| {
            b.fetch_add(1, Ordering::SeqCst);
            assert!(i < 3);
        })
        .build()
        .unwrap();
    drop(pool);
    assert_eq!(
        (starts.load(Ordering::SeqCst), stops.load(Ordering::SeqCst)),
        (3, 3)
    );
}
