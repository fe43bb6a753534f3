//! Integration tests of prodkit-ratelimit. Time is a `quanta` mock driven by the
//! tests, except in the threaded stress tests, which use the real clock.

mod clock;
mod direct;
mod eviction;
mod headers;
mod keyed;
mod prop;
mod stress;

use std::sync::{Arc, mpsc};
use std::time::Duration;

use prodkit_ratelimit::quanta::{Clock, Mock};
use prodkit_ratelimit::{KeyedRateLimiter, Quota, RateLimiter};

fn mock() -> (Clock, Arc<Mock>) {
    Clock::mock()
}

fn quota(rate: u32, period_ns: u64, burst: u32) -> Quota {
    Quota::new(rate, Duration::from_nanos(period_ns))
        .unwrap()
        .with_burst(burst)
        .unwrap()
}

fn direct(q: Quota, clock: &Clock) -> RateLimiter {
    RateLimiter::builder(q).clock(clock.clone()).build()
}

fn keyed(q: Quota, max_keys: usize, shards: usize, clock: &Clock) -> KeyedRateLimiter<u64> {
    KeyedRateLimiter::builder(q, max_keys)
        .shards(shards)
        .clock(clock.clone())
        .build()
        .unwrap()
}

#[test]
fn limiters_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<RateLimiter>();
    check::<KeyedRateLimiter<u64>>();
    check::<KeyedRateLimiter<str>>();
    check::<prodkit_ratelimit::Decision>();
}

/// Runs `f` on a thread; fails the test if it has not returned within `limit`.
pub(crate) fn watchdog<R: Send + 'static>(
    limit: Duration,
    f: impl FnOnce() -> R + Send + 'static,
) -> R {
    let (tx, rx) = mpsc::channel();
    let worker = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    let r = rx
        .recv_timeout(limit)
        .unwrap_or_else(|_| panic!("still blocked after {limit:?}"));
    worker.join().unwrap();
    r
}
