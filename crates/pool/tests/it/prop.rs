//! Property tests: several threads drive one pool at once with random
//! operations (submitters racing `shutdown` and `shutdown_now`, jobs that join
//! children and earlier jobs, scopes inside jobs, tokens, deadlines on a mock
//! clock, cancels). Whatever the interleaving:
//! - every accepted job has exactly one outcome, and it matches what ran (a job
//!   that resolved `Cancelled` or `Rejected` never ran; none ran twice);
//! - every job handed back is the one that was submitted;
//! - no job starts on a worker after an outside `shutdown_now` returned;
//! - at quiescence the counters add up exactly;
//! - nothing deadlocks (a watchdog per case fails the binary otherwise).
//!
//! Checks inside jobs are safe from being swallowed: a failed check panics the
//! job, whose handle then says `Panicked` for a job that should not panic.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use proptest::prelude::*;

use prodkit_pool::{
    CancelToken, Job, JobError, JobHandle, Overload, Pool, SubmitError, TrySubmitError,
};

use crate::Watchdog;

#[derive(Debug, Clone)]
enum Nested {
    No,
    /// Submits a child and joins it.
    JoinChild,
    /// Joins the handle of this thread's latest earlier job.
    JoinEarlier,
    /// Runs a scope of this many jobs.
    Scope(u8),
}

#[derive(Debug, Clone)]
enum Op {
    Submit { panics: bool, nested: Nested },
    TrySubmit { panics: bool },
    Execute { panics: bool },
    Deadline { ms: u8 },
    Token { cancel: bool },
    Cancel(usize),
    Advance(u8),
    Shutdown,
    ShutdownNow,
}

fn nested() -> impl Strategy<Value = Nested> {
    prop_oneof![
        6 => Just(Nested::No),
        2 => Just(Nested::JoinChild),
        2 => Just(Nested::JoinEarlier),
        1 => (1u8..6).prop_map(Nested::Scope),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => (any::<bool>(), nested()).prop_map(|(panics, nested)| Op::Submit { panics, nested }),
        3 => any::<bool>().prop_map(|panics| Op::TrySubmit { panics }),
        3 => any::<bool>().prop_map(|panics| Op::Execute { panics }),
        2 => (0u8..5).prop_map(|ms| Op::Deadline { ms }),
        2 => any::<bool>().prop_map(|cancel| Op::Token { cancel }),
        3 => any::<usize>().prop_map(Op::Cancel),
        2 => (1u8..5).prop_map(Op::Advance),
        1 => Just(Op::Shutdown),
        1 => Just(Op::ShutdownNow),
    ]
}

fn overload() -> impl Strategy<Value = Overload> {
    prop_oneof![
        Just(Overload::Block),
        Just(Overload::Reject),
        Just(Overload::CallerRuns),
        Just(Overload::DropOldest)
    ]
}

/// A job's id, whether it is meant to panic, and its handle or outcome.
type Held = (u64, bool, JobHandle<u64>);
type Seen = (u64, bool, Result<u64, JobError>);

thread_local! {
    /// Set while a test thread runs a closure the pool handed back: the closure
    /// then only reports its id.
    static HANDED_BACK: Cell<Option<u64>> = const { Cell::new(None) };
}

/// Everything the threads and jobs of one case record.
struct World {
    pool: Pool,
    mock: Arc<prodkit_pool::quanta::Mock>,
    next_id: AtomicU64,
    /// Job starts: (id, start sequence, on a worker of the pool).
    runs: Mutex<Vec<(u64, u64, bool)>>,
    seq: AtomicU64,
    /// Start sequences taken right after an outside `shutdown_now` returned.
    cuts: Mutex<Vec<u64>>,
    /// Outcomes of handles joined anywhere: (id, expected to panic, outcome).
    outcomes: Mutex<Vec<Seen>>,
    /// Jobs handed back, counted by whoever submitted them.
    handed_back: AtomicU64,
    scope_jobs_ran: AtomicUsize,
}

impl World {
    fn id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::SeqCst)
    }

    /// The closure of job `id`.
    fn job(
        self: &Arc<Self>,
        id: u64,
        panics: bool,
        nested: Nested,
        earlier: Option<Held>,
    ) -> impl FnOnce() -> u64 + Send + 'static {
        let world = Arc::clone(self);
        move || {
            if HANDED_BACK.get().is_some() {
                HANDED_BACK.set(Some(id));
                return id;
            }
            let seq = world.seq.fetch_add(1, Ordering::SeqCst);
            let on_worker = std::thread::current()
                .name()
                .is_some_and(|n| n.starts_with("prop-"));
            world.runs.lock().push((id, seq, on_worker));
            match nested {
                Nested::No => {}
                Nested::JoinChild => {
                    let child = world.id();
                    match world.pool.submit(world.job(child, false, Nested::No, None)) {
                        Ok(h) => {
                            let outcome = h.join();
                            world.outcomes.lock().push((child, false, outcome));
                        }
                        Err(e) => {
                            assert_eq!(handed_back_id(e.into_inner()), child);
                            world.handed_back.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
                Nested::JoinEarlier => {
                    if let Some((eid, epanics, h)) = earlier {
                        let outcome = h.join();
                        world.outcomes.lock().push((eid, epanics, outcome));
                    }
                }
                Nested::Scope(n) => {
                    let ran = AtomicUsize::new(0);
                    world.pool.scope(|s| {
                        for _ in 0..n {
                            s.spawn(|| {
                                ran.fetch_add(1, Ordering::SeqCst);
                            });
                        }
                    });
                    assert_eq!(
                        ran.load(Ordering::SeqCst),
                        n as usize,
                        "a scope job was lost"
                    );
                    world.scope_jobs_ran.fetch_add(n as usize, Ordering::SeqCst);
                }
            }
            if panics {
                panic!("job {id} panics");
            }
            id
        }
    }
}

/// Runs a handed-back closure in report-only mode: the id it was made for.
fn handed_back_id(f: impl FnOnce() -> u64) -> u64 {
    HANDED_BACK.set(Some(u64::MAX));
    let id = f();
    HANDED_BACK.set(None);
    id
}

/// One test thread's operations.
fn drive(world: &Arc<World>, policy: Overload, ops: Vec<Op>) -> Vec<Held> {
    let pool = &world.pool;
    let mut handles: Vec<Held> = Vec::new();
    let refused = |id: u64, e_id: u64| {
        assert_eq!(e_id, id, "the handed-back closure is not the submitted one");
        world.handed_back.fetch_add(1, Ordering::SeqCst);
    };
    for op in ops {
        match op {
            Op::Submit { panics, nested } => {
                let id = world.id();
                let earlier = match nested {
                    Nested::JoinEarlier => handles.pop(),
                    _ => None,
                };
                match pool.submit(world.job(id, panics, nested, earlier)) {
                    Ok(h) => handles.push((id, panics, h)),
                    Err(e) => {
                        match e {
                            SubmitError::Closed(_) => assert!(pool.is_closed()),
                            SubmitError::Full(_) => assert_eq!(policy, Overload::Reject),
                            _ => panic!("{e:?} without a submit timeout"),
                        }
                        refused(id, handed_back_id(e.into_inner()));
                    }
                }
            }
            Op::TrySubmit { panics } => {
                let id = world.id();
                match pool.try_submit(world.job(id, panics, Nested::No, None)) {
                    Ok(h) => handles.push((id, panics, h)),
                    Err(e) => {
                        if matches!(e, TrySubmitError::Closed(_)) {
                            assert!(pool.is_closed());
                        }
                        refused(id, handed_back_id(e.into_inner()));
                    }
                }
            }
            Op::Execute { panics } => {
                let id = world.id();
                let f = world.job(id, panics, Nested::No, None);
                if let Err(e) = pool.execute(move || {
                    let _ = f();
                }) {
                    HANDED_BACK.set(Some(u64::MAX));
                    (e.into_inner())();
                    let got = HANDED_BACK.replace(None);
                    refused(id, got.expect("the wrapper ran the job"));
                }
            }
            Op::Deadline { ms } => {
                let id = world.id();
                let job = Job::new(world.job(id, false, Nested::No, None))
                    .timeout(Duration::from_millis(u64::from(ms)));
                match pool.submit_job(job) {
                    Ok(h) => handles.push((id, false, h)),
                    Err(e) => refused(id, handed_back_id(e.into_inner().into_inner())),
                }
            }
            Op::Token { cancel } => {
                let id = world.id();
                let token = CancelToken::new();
                let job = Job::new(world.job(id, false, Nested::No, None)).token(token.clone());
                match pool.submit_job(job) {
                    Ok(h) => {
                        if cancel {
                            token.cancel();
                        }
                        handles.push((id, false, h));
                    }
                    Err(e) => refused(id, handed_back_id(e.into_inner().into_inner())),
                }
            }
            Op::Cancel(i) if !handles.is_empty() => {
                let n = handles.len();
                handles[i % n].2.cancel();
            }
            Op::Cancel(_) => {}
            Op::Advance(ms) => world.mock.increment(Duration::from_millis(u64::from(ms))),
            Op::Shutdown => {
                let report = pool.shutdown(Duration::from_secs(60));
                assert!(report.is_complete(), "{report:?}");
                assert!(pool.is_closed());
            }
            Op::ShutdownNow => {
                let unstarted = pool.shutdown_now();
                world
                    .cuts
                    .lock()
                    .push(world.seq.fetch_add(1, Ordering::SeqCst));
                assert_eq!(pool.stats().live_workers, 0);
                // Handed back by the pool: the jobs' owners see `Cancelled`.
                drop(unstarted);
            }
        }
    }
    handles
}

fn run_case(workers: usize, capacity: usize, policy: Overload, threads: Vec<Vec<Op>>) {
    let _w = Watchdog::new("a prop case".into(), Duration::from_secs(60));
    let (clock, mock) = prodkit_pool::quanta::Clock::mock();
    let pool = Pool::builder()
        .workers(workers)
        .queue_capacity(capacity)
        .overload(policy)
        .thread_name("prop")
        .clock(clock)
        .build()
        .unwrap();
    let world = Arc::new(World {
        pool,
        mock,
        next_id: AtomicU64::new(0),
        runs: Mutex::default(),
        seq: AtomicU64::new(0),
        cuts: Mutex::default(),
        outcomes: Mutex::default(),
        handed_back: AtomicU64::new(0),
        scope_jobs_ran: AtomicUsize::new(0),
    });
    let handles: Vec<_> = std::thread::scope(|s| {
        let drivers: Vec<_> = threads
            .into_iter()
            .map(|ops| {
                let world = Arc::clone(&world);
                s.spawn(move || drive(&world, policy, ops))
            })
            .collect();
        drivers
            .into_iter()
            .flat_map(|d| d.join().expect("a driver thread failed"))
            .collect()
    });
    for (id, panics, h) in handles {
        let outcome = h.join();
        world.outcomes.lock().push((id, panics, outcome));
    }
    let report = world.pool.shutdown(Duration::from_secs(60));
    assert!(report.is_complete(), "{report:?}");

    let runs = world.runs.lock().clone();
    let mut ran: HashMap<u64, usize> = HashMap::new();
    for (id, _, _) in &runs {
        *ran.entry(*id).or_default() += 1;
    }
    assert!(ran.values().all(|&n| n == 1), "a job ran twice: {ran:?}");
    for (id, panics, outcome) in world.outcomes.lock().iter() {
        let did_run = ran.contains_key(id);
        match outcome {
            Ok(v) => assert!(*v == *id && !panics && did_run, "job {id}: Ok({v})"),
            Err(JobError::Panicked(msg)) => {
                assert!(*panics && did_run, "job {id} panicked unexpectedly: {msg}")
            }
            Err(JobError::Cancelled | JobError::Rejected) => {
                assert!(!did_run, "job {id} ran but resolved {outcome:?}")
            }
            Err(e) => panic!("job {id}: unexpected {e:?}"),
        }
    }
    if let Some(&cut) = world.cuts.lock().iter().min() {
        let late: Vec<_> = runs.iter().filter(|r| r.2 && r.1 > cut).collect();
        assert!(
            late.is_empty(),
            "jobs started on a worker after shutdown_now: {late:?}"
        );
    }
    let s = world.pool.stats();
    assert_eq!(s.accepted, s.completed + s.panicked + s.cancelled, "{s:?}");
    assert_eq!(s.submitted, s.accepted + s.rejected, "{s:?}");
    assert_eq!(
        s.rejected,
        world.handed_back.load(Ordering::SeqCst),
        "{s:?}"
    );
    let pool_runs = runs.len() + world.scope_jobs_ran.load(Ordering::SeqCst);
    assert_eq!(pool_runs as u64, s.completed + s.panicked, "{s:?}");
    assert_eq!((s.queued, s.active, s.live_workers), (0, 0, 0), "{s:?}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn racing_threads_keep_every_job_accounted_for(
        workers in 1usize..4,
        capacity in 1usize..6,
        policy in overload(),
        threads in proptest::collection::vec(proptest::collection::vec(op(), 1..30), 2..5),
    ) {
        run_case(workers, capacity, policy, threads);
    }
}
