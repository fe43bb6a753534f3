//! Shutdown: nothing lost, nothing left running, no thread left behind.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use prodkit_pool::{JobError, Overload, Pool, SubmitError};

use crate::{DropFlag, block_workers, pool, threads_gone, threads_named};

#[test]
fn graceful_shutdown_runs_every_queued_job() {
    let _w = crate::watchdog();
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
    let _w = crate::watchdog();
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
    let _w = crate::watchdog();
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
    let _w = crate::watchdog();
    // Other tests run in parallel threads of this binary, so count this pool's
    // threads by name.
    let pool = Pool::builder()
        .workers(3)
        .thread_name("noleak")
        .build()
        .unwrap();
    // Each worker names itself as it starts: wait until all three run.
    while pool.stats().live_workers < 3 {
        std::thread::yield_now();
    }
    assert_eq!(threads_named("noleak-"), 3);
    for _ in 0..100 {
        pool.execute(|| ()).unwrap();
    }
    drop(pool);
    assert!(
        threads_gone("noleak-"),
        "dropping the pool joined its threads"
    );

    let pool = Pool::builder()
        .workers(2)
        .thread_name("noleak2")
        .build()
        .unwrap();
    pool.shutdown(Duration::from_secs(10));
    assert!(threads_gone("noleak2-"), "shutdown joined its threads");
    let pool = Pool::builder()
        .workers(2)
        .thread_name("noleak3")
        .build()
        .unwrap();
    pool.shutdown_now();
    assert!(threads_gone("noleak3-"), "shutdown_now joined its threads");
}

#[test]
fn hooks_run_once_per_worker_with_its_index() {
    let _w = crate::watchdog();
    let starts = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let stops = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let (a, b) = (Arc::clone(&starts), Arc::clone(&stops));
    let pool = Pool::builder()
        .workers(3)
        .on_thread_start(move |i| a.lock().push(i))
        .on_thread_stop(move |i| b.lock().push(i))
        .build()
        .unwrap();
    drop(pool);
    // Checked here, not inside the hooks: the pool catches a hook's panic.
    let (mut starts, mut stops) = (starts.lock().clone(), stops.lock().clone());
    starts.sort_unstable();
    stops.sort_unstable();
    assert_eq!(starts, vec![0, 1, 2]);
    assert_eq!(stops, vec![0, 1, 2]);
}

#[test]
fn a_panicking_hook_is_caught_and_the_worker_serves() {
    let _w = crate::watchdog();
    let pool = Pool::builder()
        .workers(2)
        .on_thread_start(|_| panic!("start hook"))
        .on_thread_stop(|_| panic!("stop hook"))
        .build()
        .unwrap();
    let handles: Vec<_> = (0..10).map(|i| pool.submit(move || i).unwrap()).collect();
    assert_eq!(
        handles.into_iter().map(|h| h.join().unwrap()).sum::<i32>(),
        45
    );
    // Both workers survive their hook's panic (they may still be starting).
    while pool.stats().live_workers < 2 {
        std::thread::yield_now();
    }
    let report = pool.shutdown(Duration::from_secs(10));
    assert!(report.is_complete(), "{report:?}");
}

#[test]
fn a_blocked_submit_is_sent_home_by_shutdown_with_its_job() {
    let _w = crate::watchdog();
    let pool = Arc::new(pool(1, 1, Overload::Block));
    let gate = block_workers(&pool);
    pool.execute(|| ()).unwrap(); // the queue is full
    let p = Arc::clone(&pool);
    let blocked = std::thread::spawn(move || p.submit(|| 5).map_err(|e| e.into_inner()()));
    while pool.stats().submitted < 3 {
        std::thread::yield_now();
    }
    // shutdown closes at once although a submit waits for room; the submit
    // gets its job back.
    let report = pool.shutdown(Duration::from_millis(50));
    assert_eq!(report.workers_still_running, 1);
    assert_eq!(blocked.join().unwrap().unwrap_err(), 5);
    gate.open();
    drop(pool);
}

#[test]
fn concurrent_shutdowns_each_return_after_every_worker_ended() {
    let _w = crate::watchdog();
    // A thread-local set by the start hook records, as the worker thread ends,
    // that it has ended. Every concurrent shutdown call sees them all ended.
    struct EndMarker(Arc<AtomicUsize>);
    impl Drop for EndMarker {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    thread_local! {
        static MARKER: std::cell::RefCell<Option<EndMarker>> = const { std::cell::RefCell::new(None) };
    }
    for round in 0..100 {
        let ended = Arc::new(AtomicUsize::new(0));
        let e = Arc::clone(&ended);
        let pool = Arc::new(
            Pool::builder()
                .workers(3)
                .on_thread_start(move |_| {
                    MARKER.with(|m| *m.borrow_mut() = Some(EndMarker(Arc::clone(&e))));
                })
                .build()
                .unwrap(),
        );
        for _ in 0..20 {
            pool.execute(|| ()).unwrap();
        }
        std::thread::scope(|s| {
            for t in 0..4 {
                let (pool, ended) = (Arc::clone(&pool), Arc::clone(&ended));
                s.spawn(move || {
                    if (t + round) % 2 == 0 {
                        assert!(pool.shutdown(Duration::from_secs(30)).is_complete());
                    } else {
                        pool.shutdown_now();
                    }
                    assert_eq!(
                        ended.load(Ordering::SeqCst),
                        3,
                        "returned before a worker ended"
                    );
                });
            }
        });
    }
}
