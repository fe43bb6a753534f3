//! What a job may do inside its own pool: join other jobs, submit into a full
//! queue, drop the last handle of the pool, shut it down; and values whose
//! `Drop` panics. Each scenario here hung, deadlocked or killed a worker in an
//! earlier design.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use prodkit_pool::{JobError, JobHandle, Overload, Pool};

use crate::{Gate, PanicsOnDrop, block_workers, pool, wait_threads_gone, watchdog};

/// 2 workers, job B sleeping, job A joining B: a shutdown of any kind returns
/// once B is done, and reports every worker exited (a waiter that swallowed stop
/// signals made `drop` and `shutdown_now` hang and `shutdown` misreport).
#[test]
fn a_job_joining_another_does_not_stall_shutdown() {
    let _w = watchdog();
    for how in ["drop", "shutdown_now", "shutdown"] {
        let pool = pool(2, 16, Overload::Block);
        let gate = Gate::default();
        let g = gate.clone();
        let b = pool.submit(move || g.wait()).unwrap();
        let (joining, joined) = mpsc::channel();
        let a = pool
            .submit(move || {
                joining.send(()).unwrap();
                b.join()
            })
            .unwrap();
        joined.recv().unwrap();
        let opener = gate.open_after(Duration::from_millis(30));
        match how {
            "drop" => drop(pool),
            "shutdown_now" => {
                assert!(pool.shutdown_now().is_empty());
                assert_eq!(pool.stats().live_workers, 0);
            }
            _ => {
                let report = pool.shutdown(Duration::from_secs(30));
                assert!(report.is_complete(), "{how}: {report:?}");
                assert_eq!((report.completed, report.workers_still_running), (2, 0));
            }
        }
        opener.join().unwrap();
        assert_eq!(a.join(), Ok(Ok(())), "{how}");
    }
}

/// 3 workers, 2 busy; A joins B; the queue is [C (joins A), B]. The waiting
/// worker runs B (the job it waits for) and nothing else, so C cannot end up
/// above A on A's own stack waiting for A.
#[test]
fn a_waiting_worker_runs_only_the_job_it_joins() {
    let _w = watchdog();
    let pool = pool(3, 16, Overload::Block);
    let gate = crate::block_some_workers(&pool, 2);
    let (to_a, for_a) = mpsc::channel::<JobHandle<u32>>();
    let (to_c, for_c) = mpsc::channel::<JobHandle<u32>>();
    let a = pool
        .submit(move || for_a.recv().unwrap().join().unwrap() + 1)
        .unwrap();
    let c = pool
        .submit(move || for_c.recv().unwrap().join().unwrap() + 1)
        .unwrap();
    let b = pool.submit(|| 1).unwrap();
    to_a.send(b).unwrap();
    to_c.send(a).unwrap();
    // A runs B itself (C is queued ahead of B, behind the two gated workers).
    // Had A's worker run C instead, C would wait for A below it on its stack.
    assert_eq!(
        c.join_timeout(Duration::from_secs(30))
            .map_err(|_| "C hung"),
        Ok(Ok(3))
    );
    let s = pool.stats();
    assert_eq!(s.completed, 3, "A, B and C; the gated two still run: {s:?}");
    gate.open();
}

/// `join_timeout` on a worker waits for its deadline only: it never runs a long
/// job that happens to be queued (that took 500 ms for a 10 ms timeout).
#[test]
fn join_timeout_on_a_worker_keeps_its_deadline() {
    let _w = watchdog();
    let pool = pool(1, 16, Overload::Block);
    let (to_x, for_x) = mpsc::channel::<JobHandle<()>>();
    let x = pool
        .submit(move || {
            let y = for_x.recv().unwrap();
            let start = Instant::now();
            let y = y.join_timeout(Duration::from_millis(10)).unwrap_err();
            (start.elapsed(), y)
        })
        .unwrap();
    let _long = pool
        .submit(|| std::thread::sleep(Duration::from_millis(400)))
        .unwrap();
    let y = pool.submit(|| ()).unwrap();
    to_x.send(y).unwrap();
    let (took, y) = x.join().unwrap();
    assert!(
        took < Duration::from_millis(200),
        "join_timeout(10 ms) took {took:?}"
    );
    assert_eq!(y.join(), Ok(()));
}

/// Jobs joining queued jobs, deeper than the number of workers: every worker
/// runs the chain it waits for, so one worker suffices.
#[test]
fn a_join_chain_longer_than_the_pool_completes_on_one_worker() {
    let _w = watchdog();
    let pool = Arc::new(pool(1, 64, Overload::Block));
    let p = Arc::clone(&pool);
    fn chain(pool: Arc<Pool>, depth: u32) -> u32 {
        if depth == 0 {
            return 0;
        }
        let p = Arc::clone(&pool);
        let child = pool.submit(move || chain(p, depth - 1)).unwrap();
        child.join().unwrap() + 1
    }
    let top = pool.submit(move || chain(p, 40)).unwrap();
    assert_eq!(top.join(), Ok(40));
}

/// A job submitting into its own full queue under `Block` runs the new job on
/// its worker instead of waiting for room no worker would make.
#[test]
fn a_block_submit_from_a_job_into_a_full_queue_runs_it_here() {
    let _w = watchdog();
    let pool = Arc::new(pool(1, 1, Overload::Block));
    let p = Arc::clone(&pool);
    let outer = pool
        .submit(move || {
            let me = std::thread::current().id();
            let a = p.submit(|| 1).unwrap(); // fills the queue
            let b = p.submit(move || std::thread::current().id() == me).unwrap();
            (a.join().unwrap(), b.join().unwrap())
        })
        .unwrap();
    assert_eq!(outer.join(), Ok((1, true)));
    assert_eq!(pool.stats().caller_runs, 1);
}

/// A job whose result panics on drop, with its handle dropped: the worker
/// drops the result, catches the panic and keeps serving; the pool keeps its
/// workers and `shutdown_now` returns (a dead worker made it hang).
#[test]
fn panicking_drops_never_kill_a_worker() {
    let _w = watchdog();
    let pool = pool(2, 16, Overload::Block);
    for _ in 0..4 {
        // The handle is dropped before the job ends, so the worker drops the result.
        let gate = Gate::default();
        let g = gate.clone();
        drop(
            pool.submit(move || {
                g.wait();
                PanicsOnDrop
            })
            .unwrap(),
        );
        gate.open();
        // A detached job whose closure owns a value that panics on drop.
        let owned = PanicsOnDrop;
        pool.execute(move || {
            let _keep = &owned;
        })
        .unwrap();
        // A panic whose payload panics on drop.
        pool.execute(|| std::panic::panic_any(PanicsOnDrop))
            .unwrap();
        // A job cancelled in the queue whose closure panics on drop.
        let gate = block_workers(&pool);
        let owned = PanicsOnDrop;
        let queued = pool
            .submit(move || {
                let _keep = &owned;
            })
            .unwrap();
        assert!(queued.cancel());
        gate.open();
        assert_eq!(queued.join(), Err(JobError::Cancelled));
    }
    let after: Vec<_> = (0..20).map(|i| pool.submit(move || i).unwrap()).collect();
    assert_eq!(
        after.into_iter().map(|h| h.join().unwrap()).sum::<i32>(),
        190
    );
    let s = pool.stats();
    assert_eq!(s.live_workers, 2, "{s:?}");
    assert!(pool.shutdown_now().is_empty());
    let s = pool.stats();
    assert_eq!(s.accepted, s.completed + s.panicked + s.cancelled, "{s:?}");
    // The panic_any jobs, and the detached jobs whose captured value panicked
    // as the closure was consumed: that drop is part of running the job.
    assert_eq!(s.panicked, 8, "{s:?}");
}

/// The last `Arc<Pool>` dropped inside its own job: the job completes with its
/// value, the queued jobs still run, and every worker thread ends.
#[test]
fn dropping_the_last_handle_inside_a_job_completes_it() {
    let _w = watchdog();
    for workers in [1, 3] {
        let pool = Arc::new(
            Pool::builder()
                .workers(workers)
                .queue_capacity(4)
                .thread_name(format!("lastdrop{workers}"))
                .build()
                .unwrap(),
        );
        let gate = block_workers(&pool);
        let p = Arc::clone(&pool);
        let dropper = pool
            .submit(move || {
                drop(p);
                42
            })
            .unwrap();
        let rest: Vec<_> = (0..3).map(|i| pool.submit(move || i).unwrap()).collect();
        drop(pool); // the dropping job now holds the last handle
        gate.open();
        assert_eq!(dropper.join(), Ok(42));
        let rest: Vec<_> = rest.into_iter().map(JobHandle::join).collect();
        assert_eq!(rest, vec![Ok(0), Ok(1), Ok(2)], "queued jobs still ran");
        // Every worker thread ends (the last one joined the others); a thread
        // that never ends trips the watchdog.
        wait_threads_gone(&format!("lastdrop{workers}-"));
    }
}

/// `shutdown_now` and `shutdown` called from inside a job: neither hangs nor
/// fails the job. `shutdown_now` hands back what was queued; `shutdown` reports
/// the calling worker as still running.
#[test]
fn shutdown_from_inside_a_job_returns() {
    let _w = watchdog();
    let pool = Arc::new(pool(2, 16, Overload::Block));
    let gate = Gate::default();
    let g = gate.clone();
    let other = pool.submit(move || g.wait()).unwrap();
    let p = Arc::clone(&pool);
    let (started, running) = mpsc::channel();
    let caller = pool
        .submit(move || {
            started.send(()).unwrap();
            p.shutdown_now().len()
        })
        .unwrap();
    running.recv().unwrap();
    // Whatever was queued when shutdown_now ran came back to the calling job.
    assert!(caller.join().unwrap() <= 1);
    assert!(pool.is_closed());
    assert!(pool.submit(|| ()).is_err());
    gate.open();
    assert_eq!(other.join(), Ok(()));

    let pool = Arc::new(pool_with(2));
    let p = Arc::clone(&pool);
    let caller = pool
        .submit(move || p.shutdown(Duration::from_millis(200)))
        .unwrap();
    let report = caller.join().unwrap();
    assert!(report.workers_still_running >= 1, "{report:?}");
    assert_eq!(report.still_queued, 0);
    drop(pool);
}

fn pool_with(workers: usize) -> Pool {
    pool(workers, 16, Overload::Block)
}

/// Several jobs race to shut their own pool down while outside threads call
/// `shutdown_now` and drop their handles: every call returns and every job
/// gets an outcome.
#[test]
fn shutdowns_racing_from_inside_and_outside_all_return() {
    let _w = watchdog();
    for round in 0..50 {
        let pool = Arc::new(pool(3, 32, Overload::Block));
        let ran = Arc::new(AtomicUsize::new(0));
        let mut handles = Vec::new();
        let mut refused = 0;
        for i in 0..24 {
            let p = Arc::clone(&pool);
            let ran = Arc::clone(&ran);
            let submitted = pool.submit(move || {
                ran.fetch_add(1, Ordering::SeqCst);
                match (i + round) % 4 {
                    0 => drop(p.shutdown_now()),
                    1 => drop(p.shutdown(Duration::from_millis(5))),
                    2 => drop(p),
                    _ => {}
                }
            });
            match submitted {
                Ok(h) => handles.push(h),
                // An earlier job closed the pool: the job comes back.
                Err(e) => {
                    assert!(matches!(e, prodkit_pool::SubmitError::Closed(_)));
                    refused += 1;
                }
            }
        }
        let outside = {
            let p = Arc::clone(&pool);
            std::thread::spawn(move || p.shutdown_now().len())
        };
        drop(pool);
        let handed_back = outside.join().unwrap();
        let outcomes: Vec<_> = handles.into_iter().map(JobHandle::join).collect();
        let ok = outcomes.iter().filter(|o| o.is_ok()).count();
        let cancelled = outcomes
            .iter()
            .filter(|o| **o == Err(JobError::Cancelled))
            .count();
        assert_eq!(ok + cancelled + refused, 24, "{outcomes:?}");
        assert_eq!(ok, ran.load(Ordering::SeqCst));
        assert!(handed_back <= cancelled);
    }
}

/// A chain of jobs each joining the next runs the chain on one worker's stack:
/// `stack_size` gives it the room (2,000 levels overflowed the default stack).
#[test]
fn a_deep_join_chain_fits_a_larger_stack() {
    let _w = watchdog();
    let pool = Arc::new(
        Pool::builder()
            .workers(1)
            .queue_capacity(16)
            .stack_size(256 << 20)
            .build()
            .unwrap(),
    );
    fn chain(pool: Arc<Pool>, depth: u32) -> u32 {
        if depth == 0 {
            return 0;
        }
        let p = Arc::clone(&pool);
        pool.submit(move || chain(p, depth - 1))
            .unwrap()
            .join()
            .unwrap()
            + 1
    }
    let p = Arc::clone(&pool);
    assert_eq!(
        pool.submit(move || chain(p, 4000)).unwrap().join(),
        Ok(4000)
    );
    assert!(matches!(
        Pool::builder().stack_size(1024).build(),
        Err(prodkit_pool::BuildError::Config(
            prodkit_pool::ConfigError::StackTooSmall
        ))
    ));
}

/// A graceful shutdown in the middle of a fork-join computation: jobs still
/// running submit their children after the pool closed, and those run in place,
/// so the computation completes. After `shutdown_now` such submits are refused.
#[test]
fn nested_work_completes_across_a_graceful_shutdown() {
    let _w = watchdog();
    fn fib(pool: &Arc<Pool>, n: u32) -> Result<u64, String> {
        if n < 2 {
            return Ok(u64::from(n));
        }
        let p = Arc::clone(pool);
        let left = pool
            .submit(move || fib(&p, n - 1))
            .map_err(|e| e.to_string())?;
        let right = fib(pool, n - 2)?;
        Ok(left.join().map_err(|e| e.to_string())?? + right)
    }
    for _ in 0..10 {
        let pool = Arc::new(pool(2, 64, Overload::Block));
        let p = Arc::clone(&pool);
        let top = pool.submit(move || fib(&p, 18)).unwrap();
        std::thread::sleep(Duration::from_millis(1));
        let report = pool.shutdown(Duration::from_secs(30));
        assert!(report.is_complete(), "{report:?}");
        assert_eq!(top.join(), Ok(Ok(2584)));
    }
    let pool = Arc::new(pool(1, 4, Overload::Block));
    let p = Arc::clone(&pool);
    let (stopped, wait) = mpsc::channel();
    let (started, running) = mpsc::channel();
    let job = pool
        .submit(move || {
            started.send(()).unwrap();
            wait.recv().unwrap();
            p.submit(|| ()).map(drop).map_err(|e| e.to_string())
        })
        .unwrap();
    running.recv().unwrap();
    let stopper = {
        let pool = Arc::clone(&pool);
        std::thread::spawn(move || pool.shutdown_now().len())
    };
    while !pool.is_closed() {
        std::thread::yield_now();
    }
    stopped.send(()).unwrap();
    assert!(job.join().unwrap().unwrap_err().contains("shut down"));
    stopper.join().unwrap();
}
