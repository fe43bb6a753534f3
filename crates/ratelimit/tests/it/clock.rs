//! The caller-supplied time (`check_at`), the deadline form of `wait`, and the
//! opt-in coarse clock: its window bound `burst + floor((W + d) / T)` for a
//! staleness `d`, its thread, and how it ends.

use std::time::{Duration, Instant};

use prodkit_ratelimit::{ClockError, CoarseClock, KeyedRateLimiter, RateLimiter, WaitError};
use proptest::prelude::*;

use crate::{direct, mock, quota, watchdog};

#[test]
fn check_at_decides_at_the_callers_time() {
    let (clock, time) = mock();
    let lim = direct(quota(1, 1000, 2), &clock);
    let keyed: KeyedRateLimiter<u64> = KeyedRateLimiter::builder(quota(1, 1000, 2), 16)
        .clock(clock.clone())
        .build()
        .unwrap();
    let t0 = clock.now();
    assert!(lim.check_at(t0).is_allowed() && lim.check_at(t0).is_allowed());
    assert!(!lim.check_at(t0).is_allowed());
    // The limiter's own clock has not moved; a later timestamp admits.
    let later = t0 + Duration::from_nanos(1000);
    assert!(lim.check_at(later).is_allowed());
    assert!(!lim.check().is_allowed(), "its own clock is still at t0");
    // A timestamp earlier than what the limiter has seen is stricter.
    assert!(!lim.check_n_at(1, t0).unwrap().is_allowed());
    assert!(lim.check_n_at(3, later).is_err());
    // Keyed, the same.
    assert!(keyed.check_at(&7, t0).is_allowed() && keyed.check_at(&7, t0).is_allowed());
    assert!(!keyed.check_at(&7, t0).is_allowed());
    assert!(keyed.check_n_at(&7, 1, later).unwrap().is_allowed());
    time.increment(1000u64);
    assert_eq!(
        lim.check_n(0).unwrap().remaining(),
        0,
        "check and check_at share the state"
    );
}

#[test]
fn wait_until_a_deadline() {
    let (clock, time) = mock();
    let lim = std::sync::Arc::new(direct(quota(1000, 1_000_000_000, 1), &clock));
    assert!(lim.check().is_allowed());
    // An admission 1 ms away, a deadline 100 us away: refused at once.
    let soon = Instant::now() + Duration::from_micros(100);
    assert_eq!(
        lim.wait_until(soon),
        Err(WaitError::Timeout {
            retry_after: Duration::from_millis(1)
        })
    );
    assert_eq!(
        lim.wait_until(Instant::now() - Duration::from_secs(1))
            .map(|_| ()),
        Err(WaitError::Timeout {
            retry_after: Duration::from_millis(1)
        })
    );
    // A deadline far enough: it sleeps until the mock has moved.
    let waiter = {
        let lim = std::sync::Arc::clone(&lim);
        std::thread::spawn(move || lim.wait_until(Instant::now() + Duration::from_secs(3600)))
    };
    std::thread::sleep(Duration::from_millis(5));
    time.increment(Duration::from_millis(1));
    let d = watchdog(Duration::from_secs(10), move || waiter.join().unwrap()).unwrap();
    assert!(d.is_allowed());
    // Keyed.
    let keyed: KeyedRateLimiter<str> = KeyedRateLimiter::builder(quota(1000, 1_000_000_000, 1), 16)
        .clock(clock)
        .build()
        .unwrap();
    assert!(keyed.wait_until("a", Instant::now()).unwrap().is_allowed());
    assert!(
        keyed
            .wait_n_until("a", 1, Instant::now() + Duration::from_micros(10))
            .is_err()
    );
    assert!(matches!(
        keyed.wait_n_until("a", 2, Instant::now()),
        Err(WaitError::InsufficientCapacity(_))
    ));
}

#[test]
fn a_coarse_clock_reads_only_what_its_thread_published() {
    let (clock, time) = mock();
    let coarse = CoarseClock::manual(clock);
    let lim = RateLimiter::builder(quota(1, 1000, 1))
        .coarse_clock(&coarse)
        .build();
    assert!(lim.check().is_allowed());
    time.increment(5000u64);
    assert!(!lim.check().is_allowed(), "the coarse time has not moved");
    coarse.tick();
    assert!(lim.check().is_allowed());
    assert_eq!(coarse.interval(), None);
    let zero = CoarseClock::start(Duration::ZERO).unwrap_err();
    assert!(matches!(zero, ClockError::ZeroInterval), "{zero:?}");
    assert_eq!(
        zero.to_string(),
        "a coarse clock's interval is zero: give at least one nanosecond"
    );
}

#[test]
fn the_coarse_clocks_thread_keeps_time_and_ends_with_the_last_handle() {
    let coarse = CoarseClock::start(Duration::from_millis(1)).unwrap();
    let lim = RateLimiter::builder(quota(1, 10_000_000, 1))
        .coarse_clock(&coarse)
        .build();
    let keyed: KeyedRateLimiter<u64> = KeyedRateLimiter::builder(quota(1, 10_000_000, 1), 16)
        .coarse_clock(&coarse)
        .build()
        .unwrap();
    drop(coarse);
    // T = 10 ms: admitted, refused, and admitted again once the thread has
    // published 10 ms more.
    assert!(lim.check().is_allowed() && keyed.check(&1).is_allowed());
    assert!(!lim.check().is_allowed());
    let start = Instant::now();
    let lim = watchdog(Duration::from_secs(10), move || {
        while !lim.check().is_allowed() {
            std::thread::sleep(Duration::from_micros(200));
        }
        lim
    });
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(8) && took < Duration::from_secs(2),
        "{took:?}"
    );
    // The limiters hold the last handles: dropping them stops and joins the
    // thread at once, not after an interval.
    let slow = CoarseClock::start(Duration::from_secs(3600)).unwrap();
    let held = RateLimiter::builder(quota(1, 1000, 1))
        .coarse_clock(&slow)
        .build();
    drop(slow);
    let start = Instant::now();
    watchdog(Duration::from_secs(10), move || {
        drop(held);
        drop(lim);
        drop(keyed);
    });
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
}

proptest! {
    /// With a coarse clock refreshed at arbitrary moments, at most `d` behind
    /// the real time, a limiter admits at most `burst + floor((W + d) / T)`
    /// cells in any window of real time `W`: the stated bound, and no more.
    #[test]
    fn a_coarse_clock_loosens_the_window_by_its_staleness(
        t in 1u64..500, burst in 1u32..6, d in 0u64..2000,
        events in prop::collection::vec((0u64..600, any::<bool>(), 0u32..4), 1..400),
    ) {
        let (clock, time) = mock();
        let coarse = CoarseClock::manual(clock);
        let lim = RateLimiter::builder(quota(1, t, burst)).coarse_clock(&coarse).build();
        let (mut real, mut published) = (0u64, 0u64);
        let mut admitted: Vec<(u64, u64)> = Vec::new();
        for (dt, tick, n) in events {
            time.increment(dt);
            real += dt;
            // The thread publishes whenever it likes, and at least every d.
            if tick || real - published > d {
                coarse.tick();
                published = real;
            }
            if let Ok(dec) = lim.check_n(n) && dec.is_allowed() && n > 0 {
                admitted.push((real, u64::from(n)));
            }
        }
        for i in 0..admitted.len() {
            let mut cells = 0;
            for a in &admitted[i..] {
                cells += a.1;
                let w = a.0 - admitted[i].0;
                let bound = u64::from(burst) + (w + d) / t;
                prop_assert!(cells <= bound, "{cells} cells in a window of {w} ns; bound {bound}");
            }
        }
    }
}

/// A limiter whose clock stands still (a mock nobody moves, a manual coarse
/// clock nobody ticks) still gives up at the deadline: the deadline is real
/// time, not the limiter's.
#[test]
fn wait_gives_up_at_the_deadline_when_the_limiters_clock_stands_still() {
    let (clock, _time) = mock();
    let frozen = std::sync::Arc::new(direct(quota(1, 100_000_000, 1), &clock));
    let coarse = CoarseClock::manual(prodkit_ratelimit::quanta::Clock::new());
    let manual: std::sync::Arc<KeyedRateLimiter<u64>> = std::sync::Arc::new(
        KeyedRateLimiter::builder(quota(1, 100_000_000, 1), 16)
            .coarse_clock(&coarse)
            .build()
            .unwrap(),
    );
    assert!(frozen.check().is_allowed() && manual.check(&1).is_allowed());
    // The next admission is 100 ms away on each limiter's clock, within a
    // 300 ms timeout; neither clock will get there.
    let started = Instant::now();
    let (a, b) = watchdog(Duration::from_secs(10), move || {
        (
            frozen.wait(Duration::from_millis(300)),
            manual.wait_until(&1, Instant::now() + Duration::from_millis(300)),
        )
    });
    assert!(matches!(a, Err(WaitError::Timeout { .. })), "{a:?}");
    assert!(matches!(b, Err(WaitError::Timeout { .. })), "{b:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
}
