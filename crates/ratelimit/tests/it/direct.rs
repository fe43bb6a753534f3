//! The direct limiter: decisions, their fields, quota changes, shadow mode,
//! counters and waiting.

use std::time::Duration;

use prodkit_ratelimit::{InsufficientCapacity, Quota, RateLimiter, Stats, WaitError};

use crate::{direct, mock, quota};

#[test]
fn a_full_bucket_admits_the_burst_then_one_per_interval() {
    let (clock, time) = mock();
    // 10 per 1000 ns: T = 100 ns, burst 3.
    let lim = direct(quota(10, 1000, 3), &clock);
    for left in (0..3).rev() {
        let d = lim.check();
        assert!(d.is_allowed() && d.is_conforming());
        assert_eq!(d.remaining(), left);
        assert_eq!(d.retry_after(), None);
    }
    let d = lim.check();
    assert!(!d.is_allowed() && !d.is_conforming());
    assert_eq!(d.remaining(), 0);
    assert_eq!(d.retry_after(), Some(Duration::from_nanos(100)));
    assert_eq!(d.reset(), Duration::from_nanos(300));
    assert_eq!(d.limit(), 3);
    time.increment(99u64);
    assert!(!lim.check().is_allowed());
    time.increment(1u64);
    let d = lim.check();
    assert!(d.is_allowed());
    assert_eq!(d.reset(), Duration::from_nanos(300));
    assert_eq!(lim.stats().allowed, 4);
    assert_eq!(lim.stats().denied, 2);
}

#[test]
fn check_n_is_all_or_nothing() {
    let (clock, time) = mock();
    let lim = direct(quota(10, 1000, 5), &clock);
    assert_eq!(lim.check_n(3).unwrap().remaining(), 2);
    // 3 more do not fit: refused, and the 2 left are still there.
    let d = lim.check_n(3).unwrap();
    assert!(!d.is_allowed());
    assert_eq!(d.retry_after(), Some(Duration::from_nanos(100)));
    assert_eq!(lim.check_n(0).unwrap().remaining(), 2);
    // Above the burst: an error, nothing consumed.
    assert_eq!(
        lim.check_n(6),
        Err(InsufficientCapacity {
            requested: 6,
            burst: 5
        })
    );
    assert_eq!(lim.check_n(2).unwrap().remaining(), 0);
    time.increment(500u64);
    assert_eq!(lim.check_n(0).unwrap().remaining(), 5);
    assert!(lim.check_n(5).unwrap().is_allowed());
}

#[test]
fn set_quota_keeps_the_time_owed() {
    let (clock, time) = mock();
    let lim = direct(quota(10, 1000, 4), &clock);
    assert!(lim.check_n(4).unwrap().is_allowed());
    // Owes 400 ns. Under T = 50 ns, burst 10 (tau 500): 100 ns of room, 2 cells.
    lim.set_quota(quota(20, 1000, 10));
    assert_eq!(lim.quota(), quota(20, 1000, 10));
    let d = lim.check_n(0).unwrap();
    assert_eq!(
        (d.remaining(), d.reset(), d.limit()),
        (2, Duration::from_nanos(400), 10)
    );
    time.increment(400u64);
    assert_eq!(lim.check_n(0).unwrap().remaining(), 10);
}

#[test]
fn shadow_mode_allows_everything_and_counts_what_it_would_refuse() {
    let (clock, time) = mock();
    let q = quota(10, 1000, 2);
    let enforcing = direct(q, &clock);
    let shadow = RateLimiter::builder(q)
        .clock(clock.clone())
        .shadow(true)
        .build();
    assert!(shadow.is_shadow());
    for step in 0..50u64 {
        let (e, s) = (enforcing.check(), shadow.check());
        assert!(s.is_allowed());
        assert_eq!(e.is_conforming(), s.is_conforming(), "step {step}");
        assert_eq!(e.retry_after(), s.retry_after());
        time.increment(step % 7 * 13);
    }
    let (e, s) = (enforcing.stats(), shadow.stats());
    assert_eq!(s.allowed, e.allowed);
    assert_eq!(s.shadow_denied, e.denied);
    assert!(e.denied > 0);
    assert_eq!(s.denied, 0);
    shadow.set_shadow(false);
    assert!(!shadow.is_shadow());
    assert_eq!(shadow.quota(), q);
}

#[test]
fn wait_refuses_at_once_when_the_deadline_is_too_close() {
    let (clock, _time) = mock();
    let lim = direct(quota(1, 1_000_000_000, 1), &clock);
    assert!(lim.check().is_allowed());
    // The mock does not move: an admission is 1 s away; a 10 ms wait is refused at once.
    assert_eq!(
        lim.wait(Duration::from_millis(10)),
        Err(WaitError::Timeout {
            retry_after: Duration::from_secs(1)
        })
    );
    assert_eq!(
        lim.wait_n(2, Duration::from_secs(5)),
        Err(WaitError::InsufficientCapacity(InsufficientCapacity {
            requested: 2,
            burst: 1
        }))
    );
    // The wait that gave up is one denial; a request that can never be
    // admitted is no decision at all.
    let stats = lim.stats();
    assert_eq!((stats.allowed, stats.denied), (1, 1));
}

#[test]
fn wait_sleeps_until_admitted_and_counts_once() {
    let (clock, time) = mock();
    // T = 1 ms: the waiter sleeps 1 ms at a time until the mock has moved.
    let lim = std::sync::Arc::new(direct(quota(1000, 1_000_000_000, 1), &clock));
    assert!(lim.check().is_allowed());
    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = {
        let lim = std::sync::Arc::clone(&lim);
        std::thread::spawn(move || {
            let _ = tx.send(lim.wait(Duration::from_secs(3600)));
        })
    };
    // Let the waiter be refused a few times (one attempt per 1 ms) first.
    std::thread::sleep(Duration::from_millis(20));
    time.increment(Duration::from_millis(1));
    let d = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the waiter is still blocked after 10 s")
        .unwrap();
    waiter.join().unwrap();
    assert!(d.is_allowed());
    // A wait counts its outcome once, not each refused attempt on the way.
    let stats = lim.stats();
    assert_eq!((stats.allowed, stats.denied), (2, 0));
    assert!(!lim.check().is_allowed(), "the wait consumed the cell");
}

#[cfg(feature = "tokio")]
#[tokio::test]
async fn until_ready_waits_on_the_tokio_timer() {
    // The real clock: T = 2 ms.
    let lim = RateLimiter::new(Quota::per_second(500).unwrap().with_burst(1).unwrap());
    assert!(lim.check().is_allowed());
    let d = lim.until_ready().await;
    assert!(d.is_allowed());
    assert_eq!(lim.stats().allowed, 2);
    assert!(lim.until_ready_n(2).await.is_err());
}

#[test]
fn errors_read_well() {
    let e = InsufficientCapacity {
        requested: 9,
        burst: 4,
    };
    assert_eq!(
        e.to_string(),
        "9 cells requested but the burst is 4: such a request can never be admitted"
    );
    let w = WaitError::Timeout {
        retry_after: Duration::from_millis(5),
    };
    assert_eq!(
        w.to_string(),
        "not admitted before the deadline: it would need to wait 5ms"
    );
    // Transparent: a chain printer says the cause once, not twice.
    let w = WaitError::from(e);
    assert_eq!(w.to_string(), e.to_string());
    assert!(std::error::Error::source(&w).is_none());
    assert_eq!(
        Quota::per_second(0).unwrap_err().to_string(),
        "rate is zero: a quota must admit at least one request per period"
    );
}

/// Stats count cells: `check_n(n)` counts `n`, `check_n(0)` nowhere, a
/// refused or too-large request nothing admitted. Totals stay exact with far
/// more threads than the counters have stripes, live at once and coming and
/// going (each thread's index is given back and taken again by a later one).
#[test]
fn stats_count_admitted_cells_exactly_from_threads_that_come_and_go() {
    let (clock, time) = mock();
    let lim = direct(quota(10, 1000, 10), &clock);
    assert!(lim.check_n(0).unwrap().is_allowed());
    assert_eq!(lim.stats(), Stats::default(), "a look counts nowhere");
    assert!(lim.check_n(4).unwrap().is_allowed());
    assert!(lim.check_n(11).is_err());
    assert!(!lim.check_n(7).unwrap().is_allowed());
    let s = lim.stats();
    assert_eq!((s.allowed, s.denied, s.shadow_denied), (4, 7, 0));

    // A limiter that never refuses (time moves faster than the threads ask):
    // every cell asked is admitted, so the exact total is known.
    let lim = direct(quota(1, 1, 1_000_000), &clock);
    time.increment(1_000_000_000_000u64);
    let lim = &lim;
    let (waves, per_wave, checks) = (4u64, 100u64, 500u64);
    for _ in 0..waves {
        std::thread::scope(|s| {
            for t in 0..per_wave {
                s.spawn(move || {
                    for i in 0..checks {
                        let n = ((t + i) % 3) as u32; // 0, 1 or 2 cells
                        assert!(lim.check_n(n).unwrap().is_allowed());
                    }
                });
            }
        });
    }
    let cells: u64 = (0..per_wave)
        .map(|t| (0..checks).map(|i| (t + i) % 3).sum::<u64>())
        .sum();
    let s = lim.stats();
    assert_eq!(
        (s.allowed, s.denied, s.shadow_denied),
        (waves * cells, 0, 0)
    );
}
