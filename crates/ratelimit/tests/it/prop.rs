//! Property tests with the mock clock: the GCRA guarantees hold for any quota and
//! any sequence of requests, and the keyed limiter decides as separate direct
//! limiters would.

use std::time::Duration;

use proptest::prelude::*;

use prodkit_ratelimit::{Decision, RateLimiter};

use crate::{direct, keyed, mock, quota};

/// A quota with emission interval `t` ns and the given burst.
fn q(t: u64, burst: u32) -> prodkit_ratelimit::Quota {
    quota(1, t, burst)
}

/// A request after `dt` ns, for `n` cells (possibly above the burst).
fn requests(max_dt: u64, max_n: u32, len: usize) -> impl Strategy<Value = Vec<(u64, u32)>> {
    prop::collection::vec((0..max_dt, 0..=max_n), 1..len)
}

/// A peek: the decision for zero cells, which changes nothing.
fn peek(lim: &RateLimiter) -> (u32, Duration) {
    let d = lim.check_n(0).unwrap();
    (d.remaining(), d.reset())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// In any window [t1, t2] the cells admitted are at most
    /// burst + floor((t2 - t1) / T).
    #[test]
    fn no_window_admits_more_than_the_quota(
        t in 1u64..500, burst in 1u32..8, reqs in requests(400, 9, 200)
    ) {
        let (clock, time) = mock();
        let lim = direct(q(t, burst), &clock);
        let mut admitted = Vec::new();
        let mut now = 0;
        for (dt, n) in reqs {
            time.increment(dt);
            now += dt;
            if let Ok(d) = lim.check_n(n) && d.is_allowed() && n > 0 {
                admitted.push((now, u64::from(n)));
            }
        }
        for i in 0..admitted.len() {
            let mut cells = 0;
            for j in i..admitted.len() {
                cells += admitted[j].1;
                let bound = u64::from(burst) + (admitted[j].0 - admitted[i].0) / t;
                prop_assert!(cells <= bound, "{cells} cells in [{}, {}], bound {bound}", admitted[i].0, admitted[j].0);
            }
        }
    }

    /// From any state: once a request is admitted, requests spaced at least T
    /// apart are never refused; and after burst * T idle, exactly burst are
    /// admitted at one instant.
    #[test]
    fn spaced_requests_pass_and_an_idle_bucket_is_full(
        t in 1u64..500, burst in 1u32..8, prefix in requests(400, 3, 50),
        gaps in prop::collection::vec(0u64..300, 1..50), idle_extra in 0u64..1000,
    ) {
        let (clock, time) = mock();
        let lim = direct(q(t, burst), &clock);
        for (dt, n) in prefix {
            time.increment(dt);
            let _ = lim.check_n(n);
        }
        let first = lim.check();
        if let Some(w) = first.retry_after() {
            time.increment(w);
            prop_assert!(lim.check().is_allowed());
        }
        for gap in gaps {
            time.increment(t + gap);
            prop_assert!(lim.check().is_allowed(), "a request {} ns after an admitted one was refused", t + gap);
        }
        time.increment(t * u64::from(burst) + idle_extra);
        for i in 0..burst {
            prop_assert!(lim.check().is_allowed(), "request {i} of a full bucket refused");
        }
        prop_assert!(!lim.check().is_allowed());
    }

    /// A refusal with retry_after w: still refused w - 1 ns later, admitted w ns
    /// later; refusals and oversized requests consume nothing.
    #[test]
    fn retry_after_is_exact_and_refusals_are_free(
        t in 1u64..500, burst in 1u32..8, reqs in requests(200, 9, 100)
    ) {
        let (clock, time) = mock();
        let lim = direct(q(t, burst), &clock);
        for (dt, n) in reqs {
            time.increment(dt);
            let before = peek(&lim);
            match lim.check_n(n) {
                Err(e) => {
                    prop_assert!(n > burst);
                    prop_assert_eq!((e.requested, e.burst), (n, burst));
                    prop_assert_eq!(peek(&lim), before);
                }
                Ok(d) if !d.is_allowed() => {
                    prop_assert_eq!(peek(&lim), before);
                    let w = d.retry_after().unwrap().as_nanos() as u64;
                    prop_assert!(w >= 1);
                    time.increment(w - 1);
                    prop_assert!(!lim.check_n(n).unwrap().is_allowed());
                    time.increment(1u64);
                    prop_assert!(lim.check_n(n).unwrap().is_allowed());
                }
                Ok(_) => {}
            }
        }
    }

    /// The keyed limiter decides exactly as one direct limiter per key, field by
    /// field, while it has room for every key.
    #[test]
    fn keyed_decides_as_separate_direct_limiters(
        t in 1u64..500, burst in 1u32..6, shards in prop::sample::select(vec![1usize, 2, 4]),
        reqs in prop::collection::vec((0u64..300, 0u64..12, 0u32..7), 1..300),
    ) {
        let (clock, time) = mock();
        let lim = keyed(q(t, burst), 64, shards, &clock);
        let model: Vec<RateLimiter> = (0..12).map(|_| direct(q(t, burst), &clock)).collect();
        for (dt, key, n) in reqs {
            time.increment(dt);
            let got: Result<Decision, _> = lim.check_n(&key, n);
            prop_assert_eq!(got, model[key as usize].check_n(n));
        }
        prop_assert_eq!(lim.stats().evictions, 0);
    }

    /// With room for 4 of 12 keys, evicting idle keys changes no decision: as long
    /// as at most 4 keys owe time, the keyed limiter still decides as separate
    /// direct limiters, and never evicts a key that owes time.
    #[test]
    fn evicting_idle_keys_changes_no_decision(
        t in 1u64..200, burst in 1u32..4,
        reqs in prop::collection::vec((0u64..400, 0u64..12, 0u32..4), 1..400),
    ) {
        let (clock, time) = mock();
        let lim = keyed(q(t, burst), 4, 1, &clock);
        let model: Vec<RateLimiter> = (0..12).map(|_| direct(q(t, burst), &clock)).collect();
        let owes = |m: &RateLimiter| !m.check_n(0).unwrap().reset().is_zero();
        let mut inserted = std::collections::HashSet::new();
        for (dt, key, n) in reqs {
            time.increment(dt);
            let in_debt = model.iter().filter(|m| owes(m)).count();
            if in_debt == 4 && !owes(&model[key as usize]) && n > 0 {
                // A fifth key in debt must evict one that owes: not this property.
                continue;
            }
            let decision = lim.check_n(&key, n);
            prop_assert_eq!(decision, model[key as usize].check_n(n));
            prop_assert_eq!(lim.stats().evictions_active, 0);
            if n > 0 && decision.is_ok_and(|d| d.is_allowed()) {
                inserted.insert(key);
            }
        }
        prop_assert!(lim.len() <= 4);
        // More keys than room: evictions happened, and none of them mattered.
        prop_assert!(inserted.len() <= 4 || lim.stats().evictions > 0);
    }

    /// A clock that jumps back, or to the end of its range, never makes a
    /// limiter admit more than burst + (max now - min now) / T cells, nor panic.
    #[test]
    fn jumping_clocks_never_over_admit(
        t in 1u64..1000, burst in 1u32..8,
        ops in prop::collection::vec((0u8..10, 0u64..3000, 0u32..9), 1..200),
    ) {
        let (clock, time) = mock();
        let lim = direct(q(t, burst), &clock);
        let keyed = keyed(q(t, burst), 4, 1, &clock);
        let (mut now, mut lo, mut hi) = (0u64, 0u64, 0u64);
        let mut cells = [0u64; 3];
        for (kind, amount, n) in ops {
            match kind {
                0 | 1 => {
                    let back = amount.min(now);
                    time.decrement(back);
                    now -= back;
                }
                2 => {
                    // Near the end of u64 nanoseconds.
                    let to = u64::MAX - amount;
                    if to > now { time.increment(to - now) } else { time.decrement(now - to) }
                    now = to;
                }
                _ => {
                    time.increment(amount);
                    now += amount;
                }
            }
            lo = lo.min(now);
            hi = hi.max(now);
            if let Ok(d) = lim.check_n(n) && d.is_allowed() {
                cells[0] += u64::from(n);
            }
            for key in 0..2u64 {
                if let Ok(d) = keyed.check_n(&key, n) && d.is_allowed() {
                    cells[1 + key as usize] += u64::from(n);
                }
            }
            if now > u64::MAX - 10_000 {
                // Back to the middle, so the next steps do not overflow the mock.
                time.decrement(now / 2);
                now -= now / 2;
                lo = lo.min(now);
            }
        }
        // Saturating: a jump to the end of the range with T = 1 ns spans it all.
        let bound = u64::from(burst).saturating_add((hi - lo) / t);
        for c in cells {
            prop_assert!(c <= bound, "{c} cells admitted, bound {bound}");
        }
    }
}
