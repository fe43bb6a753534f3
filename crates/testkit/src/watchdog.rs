//! A time limit for a test's blocking work.

use std::sync::mpsc;
use std::time::Duration;

/// Runs `f` on its own thread and fails if it does not finish within
/// `limit`: a deadlock fails the test instead of hanging CI. A panic in
/// `f` is resumed on the caller's thread.
///
/// ```
/// use std::time::Duration;
/// use prodkit_testkit::watchdog;
///
/// let n = watchdog(Duration::from_secs(5), || 6 * 7);
/// assert_eq!(n, 42);
/// ```
pub fn watchdog<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let worker = std::thread::spawn(move || {
        let out = f();
        let _ = tx.send(());
        out
    });
    match rx.recv_timeout(limit) {
        // Sent, or the sender dropped without sending: `f` panicked.
        Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => match worker.join() {
            Ok(out) => out,
            Err(panic) => std::panic::resume_unwind(panic),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("watchdog: still running after {limit:?} (deadlock?)")
        }
    }
}
