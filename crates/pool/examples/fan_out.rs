//! Fan work out to a bounded pool and gather the results, from blocking code
//! and from async code, then shut down with a report.
//!
//! `cargo run -p prodkit-pool --example fan_out`

#![allow(clippy::print_stdout, reason = "an example shows its results")]

use std::time::Duration;

use prodkit_pool::{Overload, Pool, SubmitErrorKind};

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let pool = Pool::builder()
        .workers(2)
        .queue_capacity(64)
        .overload(Overload::Block)
        .build()?;

    // Blocking callers join.
    let squares: Vec<_> = (1..=8u64)
        .map(|n| pool.submit(move || n * n).map_err(SubmitErrorKind::from))
        .collect::<Result<_, _>>()?;
    let total: u64 = squares
        .into_iter()
        .map(|h| h.join())
        .sum::<Result<u64, _>>()?;
    println!("sum of squares 1..=8: {total}");

    // Async callers await: no runtime thread blocks while the pool works.
    let rt = tokio::runtime::Builder::new_current_thread().build()?;
    let words = rt.block_on(async {
        let handles: Vec<_> = ["pool", "ratelimit", "batch"]
            .into_iter()
            .map(|w| pool.submit(move || w.to_uppercase()))
            .collect::<Result<_, _>>()
            .map_err(SubmitErrorKind::from)?;
        let mut words = Vec::new();
        for h in handles {
            words.push(h.await?);
        }
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(words)
    })?;
    println!("awaited: {}", words.join(" "));

    let report = pool.shutdown(Duration::from_secs(5));
    println!(
        "shutdown: {} completed, complete: {}",
        report.completed,
        report.is_complete()
    );
    assert_eq!(total, 204);
    assert!(report.is_complete());
    Ok(())
}
