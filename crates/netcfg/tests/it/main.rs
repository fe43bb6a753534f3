//! Integration tests of prodkit-netcfg, one binary (see the workspace style).

mod health;
#[cfg(feature = "reqwest")]
mod http_client;
#[cfg(feature = "hyper")]
mod http_server;
mod layering;
#[cfg(feature = "r2d2")]
mod pool;
#[cfg(feature = "postgres")]
mod postgres;
mod shutdown;
#[cfg(feature = "hyper")]
mod tls;
mod validation;

use std::sync::mpsc;
use std::time::Duration;

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
