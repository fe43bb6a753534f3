//! Limit each client of an HTTP API, with the IETF RateLimit fields a client
//! needs to back off.
//!
//! `cargo run -p prodkit-ratelimit --example per_client`

#![allow(clippy::print_stdout, reason = "an example shows its results")]

use prodkit_ratelimit::{KeyedRateLimiter, Quota};

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    // 10 requests per second per client, bursts of 3; at most 100,000 clients
    // remembered (a flood of new clients never grows memory past that).
    let quota = Quota::per_second(10)?.with_burst(3)?;
    let limiter: KeyedRateLimiter<str> = KeyedRateLimiter::new(quota, 100_000)?;
    println!("RateLimit-Policy: {}", quota.policy_header("api")?);

    let mut served = 0;
    for (i, client) in ["alice", "alice", "bob", "alice", "alice"]
        .iter()
        .enumerate()
    {
        let decision = limiter.check(client);
        if decision.is_allowed() {
            served += 1;
            println!("#{i} {client}: 200, RateLimit: {}", decision.header("api")?);
        } else {
            let retry = decision.retry_after().unwrap_or_default();
            println!(
                "#{i} {client}: 429, Retry-After: {} s, RateLimit: {}",
                retry.as_secs_f64().ceil(),
                decision.header("api")?
            );
        }
    }
    let stats = limiter.stats();
    println!(
        "{} admitted, {} refused, {} clients held",
        stats.decisions.allowed, stats.decisions.denied, stats.keys
    );
    assert_eq!(
        served, 4,
        "alice's fourth request within the burst is refused"
    );
    Ok(())
}
