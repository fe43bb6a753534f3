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

/// Every duration must be positive; the first zero one is named.
pub(crate) fn positive(fields: &[(&'static str, Duration)]) -> Result<(), ConfigError> {
    match fields.iter().find(|(_, d)| d.is_zero()) {
        Some((field, _)) => Err(ConfigError::zero(field)),
        None => Ok(()),
    }
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
