//! Model checks of the direct limiter's lock-free parts under every interleaving
//! loom explores: `RUSTFLAGS="--cfg prodkit_loom" cargo test -p prodkit-ratelimit
//! --test loom --release` (what `cargo xtask ci` runs, in its own target folder).
#![cfg(prodkit_loom)]

use std::time::Duration;

use loom::sync::Arc;
use loom::thread;
use prodkit_ratelimit::{Quota, RateLimiter};

fn quota(period_ns: u64, burst: u32) -> Quota {
    Quota::new(1, Duration::from_nanos(period_ns))
        .unwrap()
        .with_burst(burst)
        .unwrap()
}

/// Two threads race for the last cell: exactly one gets it.
#[test]
fn the_last_cell_goes_to_exactly_one_thread() {
    loom::model(|| {
        let (clock, _time) = quanta::Clock::mock();
        let lim = Arc::new(RateLimiter::builder(quota(1000, 2)).clock(clock).build());
        assert!(lim.check().is_allowed());
        let other = {
            let lim = Arc::clone(&lim);
            thread::spawn(move || lim.check().is_allowed())
        };
        let mine = lim.check().is_allowed();
        let theirs = other.join().unwrap();
        assert!(mine ^ theirs, "mine {mine}, theirs {theirs}");
        assert_eq!(lim.stats().allowed, 2);
    });
}

/// A check racing with `set_quota` decides under the old quota or the new one,
/// never under a mix of the two.
#[test]
fn a_quota_change_is_never_seen_half_done() {
    loom::model(|| {
        let (clock, _time) = quanta::Clock::mock();
        let lim = Arc::new(RateLimiter::builder(quota(10, 1)).clock(clock).build());
        let writer = {
            let lim = Arc::clone(&lim);
            thread::spawn(move || lim.set_quota(quota(3, 5)))
        };
        let d = lim.check();
        let seen = (d.limit(), d.remaining(), d.reset());
        let old = (1, 0, Duration::from_nanos(10));
        let new = (5, 4, Duration::from_nanos(3));
        assert!(seen == old || seen == new, "decided under a mix: {seen:?}");
        writer.join().unwrap();
        assert_eq!(lim.quota(), quota(3, 5));
    });
}
