//! Models of a job's state (`shared.rs`) under loom: claims racing each other
//! and a cancel, a joiner sleeping while the job is published, the count of a
//! cancel through the handle, and the two references: exactly one party frees
//! the job, after everyone else is done with it. loom also checks that the slot
//! is never accessed by two threads at once.

use std::sync::atomic::{AtomicUsize, Ordering};

use loom::sync::Arc;
use loom::thread;

use super::{HandleRef, JobRef, Meta, Taken, new_job};
use crate::JobError;

/// A job's result that counts its drops.
#[derive(Debug)]
struct Dropped(u32, Arc<AtomicUsizeWrap>);

#[derive(Debug, Default)]
struct AtomicUsizeWrap(AtomicUsize);

impl Drop for Dropped {
    fn drop(&mut self) {
        self.1.0.fetch_add(1, Ordering::SeqCst);
    }
}

type Job = (JobRef, HandleRef<Dropped>, Arc<AtomicUsizeWrap>);

fn job(value: u32) -> Job {
    let drops = Arc::new(AtomicUsizeWrap::default());
    let d = Arc::clone(&drops);
    let (entry, handle, _) = new_job(move || Dropped(value, d), Meta::default());
    (entry, handle, drops)
}

/// What the queue's side does with its entry: run it, then give it up.
fn pop_and_run(entry: JobRef) -> Taken {
    let (taken, last) = entry.job().run(&|_| (), true);
    entry.finish(last);
    taken
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
        let (entry, handle, drops) = job(7);
        let worker = thread::spawn(move || pop_and_run(entry));
        let cancelled = handle.get().cancel();
        assert!(handle.get().wait(None));
        let result = handle.take().ok().unwrap();
        let ran = worker.join().unwrap();
        if cancelled {
            assert!(matches!(result, Err(JobError::Cancelled)));
            assert_eq!(
                ran,
                Taken::CancelledByHandle,
                "the worker counts the cancel"
            );
        } else {
            assert_eq!(result.as_ref().map(|d| d.0), Ok(7));
            assert_eq!(ran, Taken::Mine);
        }
        drop(result);
        let made = usize::from(!cancelled);
        assert_eq!(
            drops.0.load(Ordering::SeqCst),
            made,
            "each result dropped once"
        );
    });
}

/// The worker that pops the entry and a joining worker that claims the job
/// race: exactly one runs it, the other sees a stale entry.
#[test]
fn loom_two_claims_run_the_job_once() {
    model(|| {
        let (entry, handle, drops) = job(3);
        let worker = thread::spawn(move || pop_and_run(entry));
        let (joiner, _) = handle.get().runnable().run(&|_| (), false);
        let popper = worker.join().unwrap();
        let mut both = [joiner, popper];
        both.sort_by_key(|t| *t == Taken::Mine);
        assert_eq!(both, [Taken::Stale, Taken::Mine]);
        assert_eq!(handle.take().ok().unwrap().map(|d| d.0), Ok(3));
        assert_eq!(drops.0.load(Ordering::SeqCst), 1);
    });
}

/// A joiner that goes to sleep while the job runs is always woken by the
/// publish (a lost wake-up leaves it blocked, which loom reports), and the job
/// is freed once whichever side lets go last.
#[test]
fn loom_a_sleeping_joiner_is_woken() {
    model(|| {
        let (entry, handle, drops) = job(5);
        let worker = thread::spawn(move || pop_and_run(entry));
        assert!(handle.get().wait(None));
        assert_eq!(handle.take().ok().unwrap().map(|d| d.0), Ok(5));
        worker.join().unwrap();
        assert_eq!(drops.0.load(Ordering::SeqCst), 1);
    });
}

/// A handle dropped unjoined while the job runs: the result is dropped exactly
/// once, by whichever side lets go last.
#[test]
fn loom_a_dropped_handle_and_a_running_job_free_once() {
    model(|| {
        let (entry, handle, drops) = job(6);
        let worker = thread::spawn(move || pop_and_run(entry));
        drop(handle);
        worker.join().unwrap();
        assert_eq!(drops.0.load(Ordering::SeqCst), 1);
    });
}

/// A cancel through the handle is counted exactly once, by one of the two
/// parties that meet the job after it (the popping worker, a joining worker).
#[test]
fn loom_a_cancel_is_counted_once() {
    model(|| {
        let (entry, handle, _drops) = job(1);
        let handle = Arc::new(handle);
        let a = thread::spawn(move || pop_and_run(entry));
        let b = {
            let h = Arc::clone(&handle);
            thread::spawn(move || h.get().runnable().run(&|_| (), false).0)
        };
        let cancelled = handle.get().cancel();
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

/// An eviction resolving the job races a joiner: the error reaches the joiner.
#[test]
fn loom_resolve_racing_a_joiner() {
    model(|| {
        let (entry, handle, drops) = job(9);
        let evictor = thread::spawn(move || {
            let (taken, last) = entry.job().resolve(JobError::Rejected, &|| (), true);
            entry.finish(last);
            taken
        });
        assert!(handle.get().wait(None));
        assert!(matches!(handle.take(), Ok(Err(JobError::Rejected))));
        assert_eq!(evictor.join().unwrap(), Taken::Mine);
        assert_eq!(drops.0.load(Ordering::SeqCst), 0, "never ran, no result");
    });
}

/// Counts wakes, seen by loom.
struct Wakes(loom::sync::atomic::AtomicUsize);

impl std::task::Wake for Wakes {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A future registering its waker races the worker's publish: either the
/// registration sees the job finished, or the worker wakes the waker, exactly
/// once; never neither (a lost wake-up: the task would sleep forever). Then the
/// result is taken once, and freed once.
#[test]
fn loom_a_registered_waker_is_woken_or_sees_the_result() {
    model(|| {
        let (entry, handle, drops) = job(4);
        let wakes = std::sync::Arc::new(Wakes(loom::sync::atomic::AtomicUsize::new(0)));
        let waker = std::task::Waker::from(std::sync::Arc::clone(&wakes));
        let worker = thread::spawn(move || pop_and_run(entry));
        if !handle.get().register(&waker) {
            // Pending: only a wake may tell the task to poll again.
            while wakes.0.load(Ordering::SeqCst) == 0 {
                thread::yield_now();
            }
            assert!(handle.get().register(&waker), "woken, so finished");
        }
        worker.join().unwrap();
        assert!(wakes.0.load(Ordering::SeqCst) <= 1);
        assert_eq!(handle.take().ok().unwrap().map(|d| d.0), Ok(4));
        assert_eq!(drops.0.load(Ordering::SeqCst), 1);
    });
}
