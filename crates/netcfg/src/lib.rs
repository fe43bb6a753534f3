#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod client;
mod db;
mod error;
mod health;
#[cfg(feature = "reqwest")]
#[cfg_attr(docsrs, doc(cfg(feature = "reqwest")))]
mod http_client;
#[cfg(feature = "hyper")]
#[cfg_attr(docsrs, doc(cfg(feature = "hyper")))]
mod http_server;
mod layer;
#[cfg(feature = "r2d2")]
#[cfg_attr(docsrs, doc(cfg(feature = "r2d2")))]
mod pool;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
mod postgres;
mod server;
mod shutdown;

use std::time::Duration;

pub use client::ClientConfig;
pub use db::DbPoolConfig;
pub use error::{ConfigError, LoadError, Problem};
pub use health::{Health, HealthCheck, HealthState, PoolState};
#[cfg(feature = "reqwest")]
#[cfg_attr(docsrs, doc(cfg(feature = "reqwest")))]
pub use http_client::SendError;
#[cfg(feature = "hyper")]
#[cfg_attr(docsrs, doc(cfg(feature = "hyper")))]
pub use http_server::{ConnectionError, HttpServer, Limit, RequestBody, ResponseBody};
#[cfg(feature = "r2d2")]
#[cfg_attr(docsrs, doc(cfg(feature = "r2d2")))]
pub use pool::{PgManager, PgManagerError};
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use postgres::PgConnectError;
pub use server::ServerConfig;
pub use shutdown::{Deadline, PhaseOutcome, PhaseReport, Shutdown, ShutdownReport};

/// The clock seam of [`Shutdown`]: a [`quanta::Clock`] (with its mock).
pub use quanta;

/// A duration as the configurations write it ("1m 30s").
pub(crate) fn show(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// The longest limit a configuration takes: a limit that never fires is
/// none, and the libraries the adapters drive panic when one overflows the
/// clock (r2d2 adds its timeouts to `Instant::now()`).
pub(crate) const LONGEST: Duration = Duration::from_secs(365 * 86_400);

/// Every duration must be positive and at most [`LONGEST`]; the first one
/// that is not is named.
pub(crate) fn positive(fields: &[(&'static str, Duration)]) -> Result<(), ConfigError> {
    for &(field, d) in fields {
        if d.is_zero() {
            return Err(ConfigError::zero(field));
        }
        in_range(
            field,
            d,
            Duration::ZERO,
            LONGEST,
            "a limit that long never fires",
        )?;
    }
    Ok(())
}

/// `d` must lie in `[low, high]`.
pub(crate) fn in_range(
    field: &'static str,
    d: Duration,
    low: Duration,
    high: Duration,
    why: &str,
) -> Result<(), ConfigError> {
    if d < low {
        return Err(ConfigError::range(
            field,
            format!("({}) is below {}: {why}", show(d), show(low)),
        ));
    }
    if d > high {
        return Err(ConfigError::range(
            field,
            format!("({}) is above {}: {why}", show(d), show(high)),
        ));
    }
    Ok(())
}

/// TCP keep-alive idle times Linux takes: whole seconds, 1 to 32,767.
pub(crate) fn keepalive(field: &'static str, d: Duration) -> Result<(), ConfigError> {
    in_range(
        field,
        d,
        Duration::from_secs(1),
        Duration::from_secs(32_767),
        "the kernel refuses other TCP keep-alive times, and every connection would fail",
    )
}

/// `inner` must not be above `outer`.
pub(crate) fn not_above(
    inner: (&'static str, Duration),
    outer: (&'static str, Duration),
    why: &str,
) -> Result<(), ConfigError> {
    if inner.1 > outer.1 {
        return Err(ConfigError::order(
            inner.0,
            format!(
                "({}) is above {} ({}): {why}",
                show(inner.1),
                outer.0,
                show(outer.1)
            ),
        ));
    }
    Ok(())
}
