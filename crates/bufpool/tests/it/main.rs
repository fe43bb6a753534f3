//! Integration tests of prodkit-bufpool, one binary (see the workspace
//! style). Its global allocator counts each thread's allocations, for the
//! steady-state test in `alloc.rs`.

mod alloc;
#[cfg(feature = "bytes")]
mod bufmut;
mod calibration;
mod classes;
mod read;
mod retention;
mod zeroing;

use std::sync::mpsc;
use std::time::Duration;

#[global_allocator]
static COUNTING: alloc::Counting = alloc::Counting;

/// Runs `f` on its own thread and fails if it does not finish within
/// `limit`: a deadlock fails the test instead of hanging CI.
pub(crate) fn watchdog<T: Send + 'static>(
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    let worker = std::thread::spawn(move || {
        let out = f();
        let _ = tx.send(());
        out
    });
    match rx.recv_timeout(limit) {
        Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => match worker.join() {
            Ok(out) => out,
            Err(panic) => std::panic::resume_unwind(panic),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("watchdog: still running after {limit:?} (deadlock?)")
        }
    }
}
