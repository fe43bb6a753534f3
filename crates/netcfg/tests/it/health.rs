//! The health rule: saturation on connections in use, against a reference
//! written from the definition; the ping's failure and time.

use std::time::Duration;

use prodkit_netcfg::quanta::Clock;
use prodkit_netcfg::{DbPoolConfig, HealthCheck, HealthState, PoolState};
use proptest::prelude::*;

fn config(max_open: u64, saturation_percent: u64) -> DbPoolConfig {
    DbPoolConfig::internal()
        .with_toml(&format!(
            "max_open = {max_open}\nmax_idle = 0\nsaturation_percent = {saturation_percent}"
        ))
        .unwrap()
}

proptest! {
    #[test]
    fn saturation_follows_the_definition_and_ignores_idle_connections(
        max_open in 1u64..500,
        percent in 1u64..=100,
        in_use in 0u64..600,
        idle in 0u64..600,
    ) {
        let cfg = config(max_open, percent);
        prop_assume!(cfg.validate().is_ok());
        // Saturated: at least percent % of max_open in use, that is
        // in_use >= ceil(percent * max_open / 100).
        let threshold = (percent * max_open).div_ceil(100);
        let expected = in_use >= threshold;
        let health = HealthCheck::new(&cfg).check(PoolState { in_use, idle }, |_| Ok::<(), String>(()));
        prop_assert_eq!(health.state == HealthState::Saturated, expected, "{}", health);
        prop_assert_eq!(health.ping.is_none(), expected, "a saturated pool is not pinged");
    }
}

#[test]
fn a_pool_turns_unhealthy_at_saturation_and_back() {
    let check = HealthCheck::new(&DbPoolConfig::internal()); // 25 at most, 90 %
    let states: Vec<_> = [0, 10, 22, 23, 25, 23, 22, 5]
        .into_iter()
        .map(|in_use| {
            let h = check.check(
                PoolState {
                    in_use,
                    idle: 25 - in_use,
                },
                |_| Ok::<(), String>(()),
            );
            (in_use, h.is_healthy())
        })
        .collect();
    assert_eq!(
        states,
        [
            (0, true),
            (10, true),
            (22, true),
            (23, false),
            (25, false),
            (23, false),
            (22, true),
            (5, true)
        ]
    );
}

#[test]
fn a_slow_or_failing_ping_is_unhealthy_and_says_why() {
    let (clock, mock) = Clock::mock();
    let check = HealthCheck::new(&DbPoolConfig::internal()).clock(clock);
    let m = mock.clone();
    let slow = check.check(PoolState::default(), move |timeout| {
        m.increment(timeout + Duration::from_millis(1));
        Ok::<(), String>(())
    });
    assert_eq!(slow.state, HealthState::PingTimedOut);
    assert_eq!(slow.ping, Some(Duration::from_millis(1001)));
    let m = mock.clone();
    let on_time = check.check(PoolState::default(), move |timeout| {
        m.increment(timeout);
        Ok::<(), String>(())
    });
    assert!(on_time.is_healthy(), "{on_time}");
    let failed = check.check(PoolState::default(), |_| Err("connection refused"));
    assert_eq!(
        failed.state,
        HealthState::PingFailed("connection refused".into())
    );
    assert!(
        failed
            .to_string()
            .starts_with("ping failed (connection refused): 0 in use"),
        "{failed}"
    );
}
