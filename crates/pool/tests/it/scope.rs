//! Scopes: jobs that borrow from the caller's stack. The property that makes
//! `scope` sound: it never returns or unwinds while one of its jobs still runs,
//! wherever a panic happens.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use prodkit_pool::{Overload, Pool};

use crate::{Gate, PanicsOnDrop, pool, watchdog};

#[test]
fn scope_jobs_borrow_and_the_scope_waits_for_all() {
    let _w = watchdog();
    let pool = pool(2, 4, Overload::Reject);
    let mut data = vec![0u64; 1000];
    let total = AtomicUsize::new(0);
    pool.scope(|s| {
        for (i, chunk) in data.chunks_mut(10).enumerate() {
            let total = &total;
            s.spawn(move || {
                for v in chunk.iter_mut() {
                    *v = i as u64;
                }
                total.fetch_add(chunk.len(), Ordering::SeqCst);
            });
        }
    });
    assert_eq!(
        total.load(Ordering::SeqCst),
        1000,
        "a full queue lost no job"
    );
    assert!(
        data.chunks(10)
            .enumerate()
            .all(|(i, c)| c.iter().all(|&v| v == i as u64))
    );
    let s = pool.stats();
    assert_eq!((s.accepted, s.completed), (100, 100), "{s:?}");
}

#[test]
fn scope_reraises_the_first_panic_after_all_finished() {
    let _w = watchdog();
    let pool = pool(2, 16, Overload::Block);
    let finished = AtomicUsize::new(0);
    let result = catch_unwind(AssertUnwindSafe(|| {
        pool.scope(|s| {
            s.spawn(|| panic!("scoped boom"));
            for _ in 0..20 {
                s.spawn(|| {
                    finished.fetch_add(1, Ordering::SeqCst);
                });
            }
        })
    }));
    let payload = result.unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"scoped boom"));
    assert_eq!(finished.load(Ordering::SeqCst), 20);
}

/// Where a panic strikes while a scope is open.
#[derive(Debug, Clone, Copy)]
enum Strike {
    /// The scope's body, after spawning jobs that are still running.
    Body,
    /// A job running on a worker.
    JobOnWorker,
    /// A job the scope's own thread runs (a full queue makes `spawn` run one).
    JobOnScopeThread,
    /// The drop of a value a job captured.
    CaptureDrop,
    /// The drop of a panic payload.
    PayloadDrop,
    /// A nested scope inside a job.
    NestedScope,
    /// An unrelated job queued in the pool while the scope waits on a worker:
    /// it must not run on the scope's stack (it once unwound out of `scope`).
    UnrelatedQueuedJob,
}

const STRIKES: [Strike; 7] = [
    Strike::Body,
    Strike::JobOnWorker,
    Strike::JobOnScopeThread,
    Strike::CaptureDrop,
    Strike::PayloadDrop,
    Strike::NestedScope,
    Strike::UnrelatedQueuedJob,
];

/// What the jobs of one scope did. Job 0 waits on a gate that opens 20 ms
/// after the scope starts: every strike happens while it still runs, so a scope
/// that ended early would see it running and its cell unwritten.
#[derive(Default)]
struct Tally {
    running: AtomicUsize,
    finished: AtomicUsize,
    on_scope_thread: AtomicUsize,
}

/// Runs a scope with a panic at `strike`, on an outside thread or on a worker
/// of the same pool, and checks that the scope ended only after all its jobs.
fn strike(strike: Strike, on_worker: bool) {
    // A small queue, so that `spawn` runs jobs on the scope's thread when full.
    let pool = Arc::new(
        Pool::builder()
            .workers(3)
            .queue_capacity(2)
            .overload(Overload::Block)
            .build()
            .unwrap(),
    );
    let body = {
        let pool = Arc::clone(&pool);
        move || {
            let tally = Tally::default();
            let mut cells = [0u32; 8];
            let gate = Gate::default();
            let opener = gate.open_after(Duration::from_millis(20));
            let scope_thread = std::thread::current().id();
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                pool.scope(|s| {
                    for (i, cell) in cells.iter_mut().enumerate() {
                        let (tally, gate, pool) = (&tally, &gate, &pool);
                        // Dropped with the closure, after the job's body.
                        let capture = matches!(strike, Strike::CaptureDrop).then(|| PanicsOnDrop);
                        s.spawn(move || {
                            let _capture = capture;
                            tally.running.fetch_add(1, Ordering::SeqCst);
                            if i == 0 {
                                gate.wait();
                            }
                            std::thread::sleep(Duration::from_millis(2));
                            *cell = i as u32 + 1;
                            let here = std::thread::current().id() == scope_thread;
                            if here {
                                tally.on_scope_thread.fetch_add(1, Ordering::SeqCst);
                            }
                            tally.running.fetch_sub(1, Ordering::SeqCst);
                            tally.finished.fetch_add(1, Ordering::SeqCst);
                            match strike {
                                Strike::JobOnWorker if i == 1 => panic!("job 1"),
                                Strike::JobOnScopeThread if here => panic!("on the scope's thread"),
                                Strike::PayloadDrop if i == 3 || i == 4 => {
                                    std::panic::panic_any(PanicsOnDrop)
                                }
                                Strike::NestedScope if i == 2 => {
                                    pool.scope(|inner| inner.spawn(|| panic!("nested")))
                                }
                                _ => {}
                            }
                        });
                        if matches!(strike, Strike::UnrelatedQueuedJob) {
                            // Never runs here: try_execute neither waits nor runs inline.
                            let _ = pool.try_execute(|| panic!("unrelated"));
                        }
                    }
                    if matches!(strike, Strike::Body) {
                        panic!("body");
                    }
                })
            }));
            // Whatever happened, the scope ended after every one of its jobs.
            assert_eq!(
                tally.running.load(Ordering::SeqCst),
                0,
                "{strike:?}: a job still ran"
            );
            assert_eq!(tally.finished.load(Ordering::SeqCst), 8, "{strike:?}");
            assert_eq!(cells, [1, 2, 3, 4, 5, 6, 7, 8], "{strike:?}");
            opener.join().unwrap();
            let expect_panic = match strike {
                Strike::UnrelatedQueuedJob => false,
                Strike::JobOnScopeThread => {
                    // A full queue of 2 with jobs of 2 ms: spawn ran some here.
                    tally.on_scope_thread.load(Ordering::SeqCst) > 0
                }
                _ => true,
            };
            assert_eq!(outcome.is_err(), expect_panic, "{strike:?}");
            if let Err(payload) = outcome
                && payload.is::<PanicsOnDrop>()
            {
                std::mem::forget(payload);
            }
            if matches!(strike, Strike::JobOnScopeThread) {
                assert!(
                    tally.on_scope_thread.load(Ordering::SeqCst) > 0,
                    "no job ran on the scope's thread"
                );
            }
        }
    };
    if on_worker {
        let handle = pool.submit(body).unwrap();
        if let Err(e) = handle.join() {
            panic!("{strike:?} on a worker: {e}");
        }
    } else {
        body();
    }
    assert!(pool.shutdown(Duration::from_secs(30)).is_complete());
}

#[test]
fn a_scope_never_ends_while_its_jobs_run_wherever_a_panic_strikes() {
    let _w = watchdog();
    for on_worker in [false, true] {
        for s in STRIKES {
            strike(s, on_worker);
        }
    }
}

#[test]
fn a_scope_after_shutdown_runs_its_jobs_on_its_own_thread() {
    let _w = watchdog();
    let pool = pool(2, 8, Overload::Block);
    assert!(pool.shutdown(Duration::from_secs(10)).is_complete());
    let me = std::thread::current().id();
    let here = AtomicUsize::new(0);
    pool.scope(|s| {
        for _ in 0..5 {
            s.spawn(|| {
                if std::thread::current().id() == me {
                    here.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
    });
    assert_eq!(here.load(Ordering::SeqCst), 5);
}

#[test]
fn shutdown_now_never_takes_a_scopes_jobs() {
    let _w = watchdog();
    for _ in 0..20 {
        let pool = Arc::new(pool(2, 64, Overload::Block));
        let ran = AtomicUsize::new(0);
        let p = Arc::clone(&pool);
        let stopper = std::thread::spawn(move || p.shutdown_now().len());
        pool.scope(|s| {
            for _ in 0..50 {
                s.spawn(|| {
                    ran.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        stopper.join().unwrap();
        assert_eq!(ran.load(Ordering::SeqCst), 50, "every job of the scope ran");
    }
}

#[test]
fn nested_scopes_inside_jobs_on_one_worker_complete() {
    let _w = watchdog();
    let pool = Arc::new(pool(1, 2, Overload::Block));
    let p = Arc::clone(&pool);
    let total = pool
        .submit(move || {
            let sum = AtomicUsize::new(0);
            p.scope(|s| {
                for _ in 0..4 {
                    s.spawn(|| {
                        p.scope(|inner| {
                            for _ in 0..4 {
                                inner.spawn(|| {
                                    sum.fetch_add(1, Ordering::SeqCst);
                                });
                            }
                        });
                    });
                }
            });
            sum.load(Ordering::SeqCst)
        })
        .unwrap();
    assert_eq!(total.join(), Ok(16));
}

#[test]
fn a_scope_spawning_into_a_full_queue_runs_jobs_itself() {
    let _w = watchdog();
    // Every worker is held and the queue holds 4: a scope of 1,000 jobs cannot
    // park them all in itself; its spawns run jobs on its own thread instead.
    let pool = pool(2, 4, Overload::Block);
    let gate = crate::block_workers(&pool);
    let me = std::thread::current().id();
    let here = AtomicUsize::new(0);
    pool.scope(|s| {
        for _ in 0..1000 {
            s.spawn(|| {
                if std::thread::current().id() == me {
                    here.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
        // Still inside the body: at most a queue's worth of jobs is waiting.
        assert!(
            here.load(Ordering::SeqCst) >= 1000 - 4,
            "only {} ran on the scope's thread while the body spawned",
            here.load(Ordering::SeqCst)
        );
    });
    gate.open();
}
