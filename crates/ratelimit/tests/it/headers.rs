//! The `RateLimit-Policy` and `RateLimit` fields state the configured quota
//! exactly: `q` per `w` seconds is the rate, the burst is `prodkit-burst`, and a
//! client that spaces its requests by `w / q` seconds is never refused.

use std::time::Duration;

use prodkit_ratelimit::{HeaderError, Quota};
use proptest::prelude::*;

use crate::{direct, mock};

#[test]
fn the_policy_states_the_rate_and_the_burst_exactly() {
    let cases = [
        (
            Quota::per_second(3).unwrap(),
            r#""api";q=3;w=1;prodkit-burst=3"#,
        ),
        (
            Quota::new(7, Duration::from_secs(11)).unwrap(),
            r#""api";q=7;w=11;prodkit-burst=7"#,
        ),
        (
            Quota::per_minute(7).unwrap(),
            r#""api";q=7;w=60;prodkit-burst=7"#,
        ),
        (
            Quota::per_second(1000).unwrap().with_burst(10).unwrap(),
            r#""api";q=1000;w=1;prodkit-burst=10"#,
        ),
        (
            Quota::per_second(10).unwrap().with_burst(25).unwrap(),
            r#""api";q=10;w=1;prodkit-burst=25"#,
        ),
        // A period that is not whole seconds: the least whole window.
        (
            Quota::every(Duration::from_millis(1500)).unwrap(),
            r#""api";q=2;w=3;prodkit-burst=1"#,
        ),
        (
            Quota::every(Duration::from_millis(100)).unwrap(),
            r#""api";q=10;w=1;prodkit-burst=1"#,
        ),
    ];
    for (quota, want) in cases {
        assert_eq!(quota.policy_header("api").unwrap(), want, "{quota:?}");
    }
}

#[test]
fn the_ratelimit_field_says_what_is_left_and_when_more_comes() {
    let (clock, time) = mock();
    // 3 per second: T = 333,333,334 ns (rounded up).
    let lim = direct(Quota::per_second(3).unwrap(), &clock);
    assert_eq!(
        lim.check_n(0).unwrap().header("api").unwrap(),
        r#""api";r=3"#
    );
    let d = lim.check();
    assert_eq!(d.header("api").unwrap(), r#""api";r=2;t=1"#);
    let _ = lim.check_n(2).unwrap();
    let refused = lim.check();
    assert!(!refused.is_allowed());
    assert_eq!(refused.header("api").unwrap(), r#""api";r=0;t=1"#);

    // 1000 per second, burst 10: emptied, one more comes in 1 ms (t rounds up).
    let lim = direct(
        Quota::per_second(1000).unwrap().with_burst(10).unwrap(),
        &clock,
    );
    let d = lim.check_n(10).unwrap();
    assert_eq!(d.header("api").unwrap(), r#""api";r=0;t=1"#);
    time.increment(Duration::from_millis(3));
    assert_eq!(
        lim.check_n(0).unwrap().header("api").unwrap(),
        r#""api";r=3;t=1"#
    );

    // 7 per minute: T = 8.571... s; after 4 requests one more comes in 8.57 s.
    let lim = direct(Quota::per_minute(7).unwrap(), &clock);
    assert_eq!(
        lim.check_n(4).unwrap().header("api").unwrap(),
        r#""api";r=3;t=9"#
    );
    // 7 per 11 s: T = 1.571... s.
    let lim = direct(Quota::new(7, Duration::from_secs(11)).unwrap(), &clock);
    assert_eq!(
        lim.check_n(7).unwrap().header("api").unwrap(),
        r#""api";r=0;t=2"#
    );
    // 10 per second, burst 25.
    let lim = direct(
        Quota::per_second(10).unwrap().with_burst(25).unwrap(),
        &clock,
    );
    assert_eq!(
        lim.check_n(5).unwrap().header("api").unwrap(),
        r#""api";r=20;t=1"#
    );
}

#[test]
fn names_are_structured_field_strings() {
    let q = Quota::per_second(1).unwrap();
    assert_eq!(
        q.policy_header(r#"a"b\c"#).unwrap(),
        r#""a\"b\\c";q=1;w=1;prodkit-burst=1"#
    );
    assert!(matches!(
        q.policy_header("caf\u{e9}"),
        Err(HeaderError::Name(_))
    ));
    assert!(matches!(
        q.policy_header("a\r\nX-Evil: 1"),
        Err(HeaderError::Name(_))
    ));
    let (clock, _time) = mock();
    let d = direct(q, &clock).check();
    assert!(matches!(d.header("tab\there"), Err(HeaderError::Name(_))));
}

/// Parses `q` and `w` back out of a policy field.
fn q_and_w(policy: &str) -> (u128, u128) {
    let param = |key: &str| -> u128 {
        let at = policy.find(&format!(";{key}=")).unwrap() + key.len() + 2;
        let digits: String = policy[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().unwrap()
    };
    (param("q"), param("w"))
}

proptest! {
    /// For any rate and period: q / w requests per second is the configured
    /// rate exactly, w is the period when it is whole seconds and otherwise the
    /// least whole number of seconds that carries the rate,
    /// and a client spacing its requests by the policy's w / q seconds (rounded
    /// up to whole nanoseconds) is never refused.
    #[test]
    fn any_policy_is_exact_and_a_client_that_obeys_it_is_never_refused(
        rate in 1u32..5000, period_ms in 1u64..200_000, burst in 1u32..50,
    ) {
        let quota = Quota::new(rate, Duration::from_millis(period_ms)).unwrap()
            .with_burst(burst).unwrap();
        let policy = quota.policy_header("p").unwrap();
        let (q, w) = q_and_w(&policy);
        let period_ns = u128::from(period_ms) * 1_000_000;
        // q / (w s) == rate / period.
        prop_assert_eq!(q * period_ns, u128::from(rate) * 1_000_000_000 * w);
        if period_ns % 1_000_000_000 == 0 {
            // Whole seconds: the configured rate and period as they are.
            prop_assert_eq!((q, w), (u128::from(rate), period_ns / 1_000_000_000));
        } else {
            // Else the least whole window that carries the rate.
            for smaller in 1..w.min(1000) {
                prop_assert!((u128::from(rate) * 1_000_000_000 * smaller) % period_ns != 0);
            }
        }
        let burst_param = format!(";prodkit-burst={burst}");
        prop_assert!(policy.ends_with(&burst_param));
        let (clock, time) = mock();
        let lim = direct(quota, &clock);
        let spacing = u64::try_from((w * 1_000_000_000).div_ceil(q)).unwrap();
        for i in 0..200 {
            prop_assert!(lim.check().is_allowed(), "request {i} of a client at the policy's rate refused");
            time.increment(spacing);
        }
    }
}
