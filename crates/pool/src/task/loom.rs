//! Models of a job's state (`shared.rs`) under loom: claims racing each other
//! and a cancel, a joiner sleeping while the job is published, and the count of
//! a cancel through the handle. loom also checks that `func` and `result` are
//! never accessed by two threads at once.

use loom::sync::Arc;
use loom::thread;

use super::{Meta, Outcome, Runnable, Shared, Taken};
use crate::JobError;

fn job(value: u32) -> Arc<Shared<impl FnOnce() -> u32 + Send + 'static, u32>> {
    Arc::new(Shared::new(move || value, Meta::default()))
}

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(f);
}

/// A worker running the job races a cancel through its handle: exactly one
/// wins, and the handle's result says which.
#[test]
fn loom_run_racing_cancel_has_one_winner() {
    model(|| {
        let shared = job(7);
        let worker = {
            let s = Arc::clone(&shared);
            thread::spawn(move || s.run(&|_| ()))
        };
        let cancelled = shared.cancel();
        let ran = worker.join().unwrap();
        assert!(shared.wait(None));
        let result = shared.take().unwrap();
        if cancelled {
            assert_eq!(result, Err(JobError::Cancelled));
            assert_eq!(
                ran,
                Taken::CancelledByHandle,
                "the worker counts the cancel"
            );
        } else {
            assert_eq!(result, Ok(7));
            assert_eq!(ran, Taken::Mine);
        }
    });
}

/// The worker that pops the entry and a joining worker that claims the job
/// race: exactly one runs it, the other sees a stale entry.
#[test]
fn loom_two_claims_run_the_job_once() {
    model(|| {
        let shared = job(3);
        let other = {
            let s = Arc::clone(&shared);
            thread::spawn(move || s.run(&|_| ()))
        };
        let mine = shared.run(&|_| ());
        let theirs = other.join().unwrap();
        let mut both = [mine, theirs];
        both.sort_by_key(|t| *t == Taken::Mine);
        assert_eq!(both, [Taken::Stale, Taken::Mine]);
        assert_eq!(shared.take(), Some(Ok(3)));
    });
}

/// A joiner that goes to sleep while the job runs is always woken by the
/// publish (a lost wake-up leaves it blocked, which loom reports).
#[test]
fn loom_a_sleeping_joiner_is_woken() {
    model(|| {
        let shared = job(5);
        let worker = {
            let s = Arc::clone(&shared);
            thread::spawn(move || s.run(&|_| ()))
        };
        assert!(shared.wait(None));
        assert_eq!(shared.take(), Some(Ok(5)));
        worker.join().unwrap();
    });
}

/// A cancel through the handle is counted exactly once, by one of the two
/// parties that meet the job after it (the popping worker, a joining worker).
#[test]
fn loom_a_cancel_is_counted_once() {
    model(|| {
        let shared = job(1);
        let a = {
            let s = Arc::clone(&shared);
            thread::spawn(move || s.run(&|_| ()))
        };
        let b = {
            let s = Arc::clone(&shared);
            thread::spawn(move || s.run(&|_| ()))
        };
        let cancelled = shared.cancel();
        let outcomes = [a.join().unwrap(), b.join().unwrap()];
        let counted = outcomes
            .iter()
            .filter(|t| **t == Taken::CancelledByHandle)
            .count();
        let ran = outcomes.iter().filter(|t| **t == Taken::Mine).count();
        if cancelled {
            assert_eq!((counted, ran), (1, 0), "{outcomes:?}");
        } else {
            assert_eq!((counted, ran), (0, 1), "{outcomes:?}");
        }
    });
}

/// A job dropped unrun (its queue entry and handle gone) drops its closure;
/// one resolved by an eviction publishes the error to a waiting joiner.
#[test]
fn loom_resolve_racing_a_joiner() {
    model(|| {
        let shared = job(9);
        let evictor = {
            let s = Arc::clone(&shared);
            thread::spawn(move || s.resolve(JobError::Rejected, &|| ()))
        };
        assert!(shared.wait(None));
        assert_eq!(shared.take(), Some(Err(JobError::Rejected)));
        assert_eq!(evictor.join().unwrap(), Taken::Mine);
    });
}
