//! The worker threads: their loop, the thread-local that tells a thread it is a
//! worker of a given pool, and the exit bookkeeping that runs however a worker
//! ends.

use std::cell::RefCell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::engine::Idle;
use crate::inner::Inner;
use crate::task::{Outcome, drop_quietly};

struct Current {
    inner: Arc<Inner>,
    index: usize,
}

thread_local! {
    static CURRENT: RefCell<Option<Current>> = const { RefCell::new(None) };
}

/// This thread's worker index if it is a worker of the pool `id`.
pub(crate) fn index_in(id: usize) -> Option<usize> {
    CURRENT
        .try_with(|c| {
            c.borrow()
                .as_ref()
                .filter(|c| c.inner.id == id)
                .map(|c| c.index)
        })
        .ok()
        .flatten()
}

/// `join` on a worker of the job's own pool: a job that is still queued runs
/// here, as rayon's `join` does, instead of this worker idling while it waits.
/// Only the joined job itself: a waiting worker never runs unrelated work.
pub(crate) fn run_if_queued_here<T>(job: &dyn Outcome<T>, pool_id: usize) {
    let _ = CURRENT.try_with(|c| {
        let current = c.borrow();
        if let Some(cur) = current.as_ref().filter(|c| c.inner.id == pool_id) {
            if job.is_finished() {
                return;
            }
            let slot = &cur.inner.slots[cur.index];
            slot.hold();
            // A joiner holds no queue reference: nothing to free here.
            cur.inner.run_handle(job.runnable(), slot, false);
        }
    });
}

/// The body of worker thread `index`.
pub(crate) fn worker_main(inner: Arc<Inner>, index: usize) {
    let exit = ExitGuard {
        inner: Arc::clone(&inner),
        index,
    };
    inner.live.fetch_add(1, Ordering::SeqCst);
    {
        // `build` waits for every worker to be live.
        let _exits = inner.exits.lock();
        inner.exited_cv.notify_all();
    }
    inner.run_hook(inner.on_start.as_ref(), index, "start");
    CURRENT.with(|c| {
        *c.borrow_mut() = Some(Current {
            inner: Arc::clone(&inner),
            index,
        });
    });
    serve(&inner, index);
    CURRENT.with(|c| c.borrow_mut().take());
    inner.run_hook(inner.on_stop.as_ref(), index, "stop");
    drop(exit);
}

fn serve(inner: &Inner, index: usize) {
    let slot = &inner.slots[index];
    let mut idle = 0;
    loop {
        // After a job, straight to the queue: looking at its length first would
        // read the line the submitter writes on every push. While idle, look
        // before marking the slot, so an idle pool shows no job in hand.
        if idle == 0 || !inner.engine.is_empty() {
            // In hand before it leaves the queue, so `stats()` never misses it.
            slot.hold();
            if let Some(task) = inner.engine.pop() {
                idle = 0;
                // `execute` catches every panic of user code; this catches a bug
                // of our own, so the worker keeps serving either way.
                if let Err(payload) = catch_unwind(AssertUnwindSafe(|| inner.execute(task, slot))) {
                    drop_quietly(payload);
                    let _ = catch_unwind(|| {
                        tracing::error!(
                            worker = index,
                            "prodkit-pool bug: a panic escaped a job's execution; the worker keeps serving"
                        );
                    });
                }
                continue;
            }
            slot.release();
        }
        match inner.engine.idle(idle) {
            Idle::Exit => return,
            Idle::Retry => idle += 1,
            Idle::Slept => idle = 0,
        }
    }
}

/// Exit bookkeeping that runs however the worker ends, unwinding included: the
/// live gauge, the exit count that shutdown waits for, and the joins an orphaned
/// pool leaves to its last worker.
struct ExitGuard {
    inner: Arc<Inner>,
    index: usize,
}

impl Drop for ExitGuard {
    fn drop(&mut self) {
        let inner = &*self.inner;
        if std::thread::panicking() {
            let _ = catch_unwind(AssertUnwindSafe(|| {
                tracing::error!(pool = %inner.name, worker = self.index, "prodkit-pool bug: a worker is exiting by a panic; it is counted as exited");
            }));
            let _ = CURRENT.try_with(|c| c.try_borrow_mut().map(|mut c| c.take()));
        }
        inner.live.fetch_sub(1, Ordering::SeqCst);
        let mut exits = inner.exits.lock();
        exits.exited += 1;
        inner.exited_cv.notify_all();
        let wakers = std::mem::take(&mut exits.wakers);
        if exits.orphaned && exits.exited == exits.started {
            // The pool was dropped inside one of its own jobs, so nobody outside
            // can join us: the last worker joins the others, then ends itself.
            let threads = std::mem::take(&mut exits.threads);
            drop(exits);
            let me = std::thread::current().id();
            for handle in threads {
                if handle.thread().id() != me {
                    let _ = handle.join();
                }
            }
        } else {
            drop(exits);
        }
        // Outside the lock; a panicking waker stays out of the worker.
        for waker in wakers {
            let _ = catch_unwind(AssertUnwindSafe(|| waker.wake()));
        }
    }
}
