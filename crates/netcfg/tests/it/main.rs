//! Integration tests of prodkit-netcfg, one binary (see the workspace style).

mod health;
#[cfg(feature = "reqwest")]
mod http_client;
#[cfg(feature = "hyper")]
mod http_server;
mod layering;
#[cfg(feature = "r2d2")]
mod pool;
#[cfg(feature = "postgres")]
mod postgres;
mod shutdown;
#[cfg(feature = "hyper")]
mod tls;
mod validation;

pub(crate) use prodkit_testkit::watchdog;
