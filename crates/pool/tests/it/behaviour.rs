//! Submitting, results, overload policies, cancellation, panics, scopes.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use prodkit_pool::{
    BuildError, CancelToken, ConfigError, Job, JobError, Overload, Pool, SubmitError,
    TrySubmitError,
};

use crate::{block_workers, pool};

#[test]
fn bad_configuration_is_a_typed_error() {
    let _w = crate::watchdog();
    let err = |b: prodkit_pool::Builder| match b.build() {
        Err(BuildError::Config(e)) => e,
        other => panic!("expected a config error, got {other:?}"),
    };
    assert_eq!(err(Pool::builder().workers(0)), ConfigError::ZeroWorkers);
    assert_eq!(
        err(Pool::builder().queue_capacity(0)),
        ConfigError::ZeroQueueCapacity
    );
    assert_eq!(
        err(Pool::builder().submit_timeout(Duration::ZERO)),
        ConfigError::ZeroSubmitTimeout
    );
    assert_eq!(
        err(Pool::builder().thread_name("a\0b")),
        ConfigError::InvalidThreadName
    );
    assert_eq!(
        err(Pool::builder().queue_capacity(usize::MAX)),
        ConfigError::QueueCapacityTooLarge
    );
    assert_eq!(
        err(Pool::builder().workers(usize::MAX)),
        ConfigError::TooManyWorkers
    );
    assert!(
        Pool::builder()
            .queue_capacity(prodkit_pool::Builder::MAX_QUEUE_CAPACITY)
            .validate()
            .is_ok()
    );
    assert!(ConfigError::ZeroWorkers.to_string().contains("workers(n)"));
}

#[test]
fn jobs_return_their_values() {
    let _w = crate::watchdog();
    let pool = pool(2, 16, Overload::Block);
    let handles: Vec<_> = (0..100u64)
        .map(|i| pool.submit(move || i * i).unwrap())
        .collect();
    let sum: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(sum, (0..100u64).map(|i| i * i).sum());
    let s = pool.stats();
    assert_eq!((s.submitted, s.accepted, s.completed), (100, 100, 100));
    assert_eq!(s.run_time.count, 0, "histograms are off by default");
}

#[test]
fn histograms_record_queue_wait_and_run_time_on_the_pools_clock() {
    let _w = crate::watchdog();
    let (clock, mock) = prodkit_pool::quanta::Clock::mock();
    let pool = Pool::builder()
        .workers(1)
        .histograms(true)
        .clock(clock)
        .build()
        .unwrap();
    let gate = block_workers(&pool);
    let waited = pool.submit(|| ()).unwrap();
    mock.increment(Duration::from_micros(300));
    gate.open();
    waited.join().unwrap();
    let m = mock.clone();
    pool.submit(move || m.increment(Duration::from_millis(2)))
        .unwrap()
        .join()
        .unwrap();
    let s = pool.stats();
    assert_eq!(
        s.queue_wait.count, 3,
        "the gate job, the waiting one, the timed one"
    );
    assert_eq!(s.run_time.count, 3);
    // The waiting job sat 300 us in the queue; the timed one ran 2 ms.
    assert!(s.queue_wait.max >= Duration::from_micros(300), "{s:?}");
    assert!(s.run_time.max >= Duration::from_millis(2), "{s:?}");
    assert!(s.run_time.max < Duration::from_millis(3), "{s:?}");
}

#[test]
fn a_joined_job_is_counted_before_its_join_returns() {
    let _w = crate::watchdog();
    // Several joiners race the workers; after each join the snapshot counts the
    // job (the old order, active down before completed up, was one short).
    let pool = Arc::new(pool(2, 64, Overload::Block));
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let pool = Arc::clone(&pool);
            s.spawn(move || {
                for i in 0..2000u64 {
                    let h = pool.submit(move || t * i).unwrap();
                    assert_eq!(h.join(), Ok(t * i));
                    let st = pool.stats();
                    assert!(st.completed > i, "{st:?}");
                }
            });
        }
    });
    let s = pool.stats();
    assert_eq!(
        (s.accepted, s.completed, s.active, s.queued),
        (8000, 8000, 0, 0)
    );
}

#[test]
fn reject_hands_the_closure_back() {
    let _w = crate::watchdog();
    let pool = pool(1, 1, Overload::Reject);
    let gate = block_workers(&pool);
    let queued = pool.submit(|| 1).unwrap();
    let err = pool.submit(|| 2).unwrap_err();
    assert!(matches!(err, SubmitError::Full(_)));
    assert_eq!(err.into_inner()(), 2, "the very closure comes back");
    let try_err = pool.try_submit(|| 3).unwrap_err();
    assert!(matches!(try_err, TrySubmitError::Full(_)));
    assert_eq!(try_err.into_inner()(), 3);
    gate.open();
    assert_eq!(queued.join(), Ok(1));
    assert_eq!(pool.stats().rejected, 2);
}

#[test]
fn caller_runs_on_the_submitting_thread() {
    let _w = crate::watchdog();
    let pool = pool(1, 1, Overload::CallerRuns);
    let gate = block_workers(&pool);
    let _queued = pool.submit(|| ()).unwrap();
    let me = std::thread::current().id();
    let h = pool
        .submit(move || std::thread::current().id() == me)
        .unwrap();
    assert!(h.is_finished(), "it ran before submit returned");
    assert_eq!(h.join(), Ok(true));
    gate.open();
    assert_eq!(pool.stats().caller_runs, 1);
}

#[test]
fn drop_oldest_evicts_and_resolves_rejected() {
    let _w = crate::watchdog();
    let pool = pool(1, 2, Overload::DropOldest);
    let gate = block_workers(&pool);
    let first = pool.submit(|| "first").unwrap();
    let second = pool.submit(|| "second").unwrap();
    let third = pool.submit(|| "third").unwrap();
    assert_eq!(
        first.join(),
        Err(JobError::Rejected),
        "the oldest made room"
    );
    gate.open();
    assert_eq!(second.join(), Ok("second"));
    assert_eq!(third.join(), Ok("third"));
    let s = pool.stats();
    assert_eq!((s.evicted, s.cancelled), (1, 1));
}

#[test]
fn block_waits_for_room_and_times_out_with_the_job() {
    let _w = crate::watchdog();
    let pool = Pool::builder()
        .workers(1)
        .queue_capacity(1)
        .submit_timeout(Duration::from_millis(20))
        .build()
        .unwrap();
    let gate = block_workers(&pool);
    pool.execute(|| ()).unwrap();
    let err = pool.submit(|| 7).unwrap_err();
    assert!(matches!(err, SubmitError::Timeout(_)));
    assert_eq!(err.into_inner()(), 7);

    // Without a timeout, a submit waits until a worker makes room.
    let unbounded = crate::pool(1, 1, Overload::Block);
    let gate2 = block_workers(&unbounded);
    unbounded.execute(|| ()).unwrap();
    std::thread::scope(|s| {
        let waiting = s.spawn(|| unbounded.submit(|| 8).unwrap().join());
        gate2.open();
        assert_eq!(waiting.join().unwrap(), Ok(8));
    });
    gate.open();
}

#[test]
fn cancel_before_start_means_never_run() {
    let _w = crate::watchdog();
    let pool = pool(1, 8, Overload::Block);
    let gate = block_workers(&pool);
    let ran = Arc::new(AtomicUsize::new(0));
    let r = Arc::clone(&ran);
    let h = pool
        .submit(move || r.fetch_add(1, Ordering::SeqCst))
        .unwrap();
    assert!(h.cancel());
    assert!(h.is_finished());
    gate.open();
    assert_eq!(h.join(), Err(JobError::Cancelled));
    pool.shutdown(Duration::from_secs(10));
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    let s = pool.stats();
    assert_eq!(s.accepted, s.completed + s.panicked + s.cancelled);
    assert_eq!(s.cancelled, 1);
}

#[test]
fn token_and_deadline_cancel_before_start_and_token_is_visible_while_running() {
    let _w = crate::watchdog();
    let (clock, mock) = prodkit_pool::quanta::Clock::mock();
    let pool = Pool::builder()
        .workers(1)
        .queue_capacity(8)
        .clock(clock.clone())
        .build()
        .unwrap();
    let gate = block_workers(&pool);
    let token = CancelToken::new();
    let by_token = pool
        .submit_job(Job::new(|| 1).token(token.clone()))
        .unwrap();
    let by_deadline = pool
        .submit_job(Job::new(|| 2).timeout(Duration::from_millis(5)))
        .unwrap();
    let in_time = pool
        .submit_job(Job::new(|| 3).deadline(clock.now() + Duration::from_secs(60)))
        .unwrap();
    token.cancel();
    mock.increment(Duration::from_millis(10));
    gate.open();
    assert_eq!(by_token.join(), Err(JobError::Cancelled));
    assert_eq!(by_deadline.join(), Err(JobError::Cancelled));
    assert_eq!(in_time.join(), Ok(3));

    // A running job reads its token; cancel() on the handle fires it.
    let token = CancelToken::new();
    let seen = token.clone();
    let started = Arc::new(std::sync::Barrier::new(2));
    let s2 = Arc::clone(&started);
    let running = pool
        .submit_job(
            Job::new(move || {
                s2.wait();
                let mut spins = 0u64;
                while !seen.is_cancelled() {
                    spins += 1;
                    std::hint::spin_loop();
                }
                spins
            })
            .token(token),
        )
        .unwrap();
    started.wait();
    assert!(!running.cancel(), "it had started, so it was not prevented");
    assert!(running.join().is_ok(), "the job saw its token and returned");
}

#[test]
fn panics_are_caught_and_the_worker_keeps_serving() {
    let _w = crate::watchdog();
    let pool = pool(2, 8, Overload::Block);
    let h = pool.submit(|| -> u32 { panic!("boom {}", 42) }).unwrap();
    assert_eq!(h.join(), Err(JobError::Panicked("boom 42".into())));
    pool.execute(|| panic!("detached boom")).unwrap();
    let after: Vec<_> = (0..10).map(|i| pool.submit(move || i).unwrap()).collect();
    assert_eq!(
        after.into_iter().map(|h| h.join().unwrap()).sum::<i32>(),
        45
    );
    pool.shutdown(Duration::from_secs(10));
    let s = pool.stats();
    assert_eq!((s.panicked, s.completed), (2, 10));
}

#[test]
fn dropped_handles_detach_but_jobs_still_run_and_count() {
    let _w = crate::watchdog();
    let pool = pool(2, 64, Overload::Block);
    let ran = Arc::new(AtomicUsize::new(0));
    for _ in 0..50 {
        let r = Arc::clone(&ran);
        drop(
            pool.submit(move || r.fetch_add(1, Ordering::SeqCst))
                .unwrap(),
        );
    }
    let report = pool.shutdown(Duration::from_secs(10));
    assert!(report.is_complete());
    assert_eq!(ran.load(Ordering::SeqCst), 50);
    assert_eq!(report.completed, 50);
}

#[test]
fn join_timeout_and_try_join_give_the_handle_back() {
    let _w = crate::watchdog();
    let pool = pool(1, 4, Overload::Block);
    let gate = block_workers(&pool);
    let h = pool.submit(|| 5).unwrap();
    let h = h.try_join().unwrap_err();
    let h = h.join_timeout(Duration::from_millis(5)).unwrap_err();
    gate.open();
    assert_eq!(h.join_timeout(Duration::from_secs(30)).unwrap(), Ok(5));
}

#[test]
fn stats_add_up_at_quiescence() {
    let _w = crate::watchdog();
    let pool = pool(2, 4, Overload::DropOldest);
    let mut handles = Vec::new();
    for i in 0..200u32 {
        if let Ok(h) = pool.submit(move || if i % 17 == 0 { panic!("p") } else { i }) {
            handles.push(h);
        }
        if i % 5 == 0
            && let Some(h) = handles.last()
        {
            h.cancel();
        }
    }
    let outcomes: Vec<_> = handles.into_iter().map(|h| h.join()).collect();
    pool.shutdown(Duration::from_secs(10));
    let s = pool.stats();
    assert_eq!(s.accepted, s.completed + s.panicked + s.cancelled);
    assert_eq!(s.submitted, s.accepted + s.rejected);
    assert_eq!(
        outcomes.iter().filter(|o| o.is_ok()).count() as u64,
        s.completed
    );
    assert_eq!((s.queued, s.active), (0, 0));
}

#[test]
fn cancel_says_true_exactly_when_it_prevented_the_job() {
    let _w = crate::watchdog();
    // A cancel racing a worker that is just taking the job: `true` means the job
    // never ran and resolves `Cancelled`; `false` means it ran (it has a token,
    // which used to be fired first and made the worker drop the job unrun).
    let pool = pool(1, 64, Overload::Block);
    for _ in 0..100_000 {
        let ran = Arc::new(AtomicUsize::new(0));
        let r = Arc::clone(&ran);
        let h = pool
            .submit_job(
                Job::new(move || {
                    r.fetch_add(1, Ordering::SeqCst);
                })
                .token(CancelToken::new()),
            )
            .unwrap();
        let prevented = h.cancel();
        let outcome = h.join();
        let ran = ran.load(Ordering::SeqCst);
        if prevented {
            assert_eq!((outcome, ran), (Err(JobError::Cancelled), 0));
        } else {
            assert_eq!((outcome, ran), (Ok(()), 1));
        }
    }
}

#[test]
fn a_timeout_beyond_the_clocks_range_never_expires() {
    let _w = crate::watchdog();
    let pool = pool(1, 4, Overload::Block);
    let h = pool
        .submit_job(Job::new(|| 3).timeout(Duration::MAX))
        .unwrap();
    assert_eq!(h.join(), Ok(3));
    pool.execute_job(Job::new(|| ()).timeout(Duration::MAX))
        .unwrap();
}

#[test]
fn every_worker_is_live_when_build_returns() {
    let _w = crate::watchdog();
    for workers in [1, 3, 8] {
        let pool = pool(workers, 4, Overload::Block);
        assert_eq!(pool.stats().live_workers, workers as u64);
    }
}

#[test]
fn a_cancelled_job_is_counted_when_its_queue_entry_is_met() {
    let _w = crate::watchdog();
    // The entry of a job cancelled in the queue stays there, holding its slot,
    // until a worker skips it: only then is the cancel counted. Until then the
    // pool is not quiescent (`queued` says so), so a quiescent snapshot is exact.
    let pool = pool(1, 2, Overload::Reject);
    let gate = block_workers(&pool);
    let h = pool.submit(|| 1).unwrap();
    assert!(h.cancel());
    assert_eq!(h.join(), Err(JobError::Cancelled));
    let s = pool.stats();
    assert_eq!((s.queued, s.cancelled), (1, 0), "{s:?}");
    gate.open();
    let report = pool.shutdown(Duration::from_secs(10));
    assert!(report.is_complete());
    let s = pool.stats();
    assert_eq!((s.queued, s.cancelled, s.completed), (0, 1, 1), "{s:?}");
    assert_eq!(s.accepted, s.completed + s.panicked + s.cancelled);
}

/// Every refusal hands the job back, names its kind, and converts into a
/// payload-free error that is `Send + Sync + 'static`, whatever the job.
#[test]
fn submit_errors_name_their_kind_and_give_the_job_back() {
    use prodkit_pool::SubmitErrorKind;
    fn error_of_any_job<E: std::error::Error + Send + Sync + 'static>(_: &E) {}
    let _w = crate::watchdog();
    let reject = pool(1, 1, Overload::Reject);
    let gate = block_workers(&reject);
    let queued = reject.submit(|| 5).unwrap();
    let full = reject.submit(|| 6).unwrap_err();
    assert!(full.is_full() && !full.is_closed() && !full.is_timeout());
    assert_eq!(full.kind(), SubmitErrorKind::Full);
    let kind = SubmitErrorKind::from(full);
    error_of_any_job(&kind);
    assert_eq!(kind.to_string(), "the pool's queue is full");
    let try_full = reject.try_submit(|| 7).unwrap_err();
    assert!(try_full.is_full() && !try_full.is_closed());
    assert_eq!(try_full.kind(), SubmitErrorKind::Full);
    assert_eq!((try_full.into_inner())(), 7, "the job comes back");
    gate.open();
    assert_eq!(queued.join(), Ok(5));
    reject.shutdown(Duration::from_secs(10));
    let closed = reject.submit(|| 8).unwrap_err();
    assert!(closed.is_closed());
    assert_eq!(SubmitErrorKind::from(closed), SubmitErrorKind::Closed);
    assert!(reject.try_submit(|| 9).unwrap_err().is_closed());
}
