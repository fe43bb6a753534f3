//! Property tests: random sequences of operations against real pools. Whatever
//! the interleaving, every accepted job has exactly one outcome, nothing is lost,
//! nothing runs after `shutdown_now` returns, and every job handed back is the one
//! that was submitted.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use proptest::prelude::*;

use prodkit_pool::{JobError, JobHandle, Overload, Pool, SubmitError, TrySubmitError};

#[derive(Debug, Clone)]
enum Op {
    Submit { panics: bool },
    TrySubmit { panics: bool },
    Execute { panics: bool },
    Cancel(usize),
    Shutdown,
    ShutdownNow,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => any::<bool>().prop_map(|p| Op::Submit { panics: p }),
        4 => any::<bool>().prop_map(|p| Op::TrySubmit { panics: p }),
        4 => any::<bool>().prop_map(|p| Op::Execute { panics: p }),
        4 => any::<usize>().prop_map(Op::Cancel),
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

type Ran = Arc<Mutex<Vec<u64>>>;

fn job(id: u64, panics: bool, ran: &Ran) -> impl FnOnce() -> u64 + Send + 'static {
    let ran = Arc::clone(ran);
    move || {
        ran.lock().push(id);
        if panics {
            panic!("job {id} panics");
        }
        id
    }
}

/// Calls a closure that came back and checks it is the one submitted as `id`.
fn check_handed_back(f: impl FnOnce() -> u64, id: u64, panics: bool) {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => assert!(!panics && v == id, "handed back {v}, submitted {id}"),
        Err(_) => assert!(panics, "job {id} panicked but should not"),
    }
}

fn run_case(workers: usize, capacity: usize, policy: Overload, ops: Vec<Op>) {
    let pool = Pool::builder()
        .workers(workers)
        .queue_capacity(capacity)
        .overload(policy)
        .build()
        .unwrap();
    let ran: Ran = Arc::default();
    let mut handles: Vec<(u64, bool, JobHandle<u64>)> = Vec::new();
    let mut handed_back = 0u64;
    let mut detached_accepted = 0u64;
    let mut closed = false;
    let mut after_now: Option<usize> = None;
    let mut taken_by_now = 0usize;
    for (n, op) in ops.into_iter().enumerate() {
        let id = n as u64;
        match op {
            Op::Submit { panics } => match pool.submit(job(id, panics, &ran)) {
                Ok(h) => handles.push((id, panics, h)),
                Err(e) => {
                    assert!(
                        closed || matches!(e, SubmitError::Full(_)),
                        "{e:?} while open"
                    );
                    assert!(
                        !closed || matches!(e, SubmitError::Closed(_)),
                        "{e:?} while closed"
                    );
                    check_handed_back(e.into_inner(), id, panics);
                    handed_back += 1;
                }
            },
            Op::TrySubmit { panics } => match pool.try_submit(job(id, panics, &ran)) {
                Ok(h) => handles.push((id, panics, h)),
                Err(e) => {
                    assert_eq!(closed, matches!(e, TrySubmitError::Closed(_)));
                    check_handed_back(e.into_inner(), id, panics);
                    handed_back += 1;
                }
            },
            Op::Execute { panics } => {
                let f = job(id, panics, &ran);
                match pool.execute(move || {
                    let _ = f();
                }) {
                    Ok(()) => detached_accepted += 1,
                    Err(e) => {
                        assert!(closed || matches!(e, SubmitError::Full(_)));
                        // The wrapper came back; running it runs the original job.
                        let _ = catch_unwind(AssertUnwindSafe(e.into_inner()));
                        handed_back += 1;
                    }
                }
            }
            Op::Cancel(i) if !handles.is_empty() => {
                let (_, _, h) = &handles[i % handles.len()];
                h.cancel();
            }
            Op::Cancel(_) => {}
            Op::Shutdown => {
                let report = pool.shutdown(Duration::from_secs(60));
                assert!(report.is_complete(), "{report:?}");
                closed = true;
            }
            Op::ShutdownNow => {
                taken_by_now += pool.shutdown_now().len();
                closed = true;
                after_now.get_or_insert(ran.lock().len());
            }
        }
        let s = pool.stats();
        assert!(
            s.queued <= capacity as u64,
            "queue {} over capacity {capacity}",
            s.queued
        );
    }
    if let Some(count) = after_now {
        // Handed-back closures we ran ourselves are the only runs after shutdown_now.
        let since = ran.lock().len() - count;
        assert!(
            since as u64 <= handed_back,
            "a job ran after shutdown_now returned"
        );
    }
    let report = pool.shutdown(Duration::from_secs(60));
    assert!(report.is_complete());

    // Exactly one outcome per accepted job with a handle, matching what ran.
    let ran_ids: HashMap<u64, usize> = ran.lock().iter().fold(HashMap::new(), |mut m, &id| {
        *m.entry(id).or_default() += 1;
        m
    });
    assert!(
        ran_ids.values().all(|&n| n == 1),
        "a job ran twice: {ran_ids:?}"
    );
    for (id, panics, h) in handles {
        match h.join() {
            Ok(v) => assert!(v == id && !panics && ran_ids.contains_key(&id)),
            Err(JobError::Panicked(msg)) => assert!(panics && ran_ids.contains_key(&id), "{msg}"),
            Err(JobError::Cancelled | JobError::Rejected) => assert!(!ran_ids.contains_key(&id)),
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    let s = pool.stats();
    assert_eq!(s.accepted, s.completed + s.panicked + s.cancelled, "{s:?}");
    assert_eq!(s.submitted, s.accepted + s.rejected);
    assert_eq!(s.rejected, handed_back);
    assert_eq!(
        ran.lock().len() as u64,
        s.completed + s.panicked + handed_back,
        "{s:?}"
    );
    assert!(taken_by_now as u64 <= s.cancelled);
    assert!(detached_accepted <= s.accepted);
    assert_eq!((s.queued, s.active, s.live_workers), (0, 0, 0));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn every_accepted_job_has_exactly_one_outcome(
        workers in 1usize..4,
        capacity in 1usize..6,
        policy in overload(),
        ops in proptest::collection::vec(op(), 1..80),
    ) {
        run_case(workers, capacity, policy, ops);
    }
}
