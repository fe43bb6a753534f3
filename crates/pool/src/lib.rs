#![doc = include_str!("../README.md")]

mod config;
mod error;
mod job;
mod pool;
mod scope;
mod stats;

pub use config::{BuildError, Builder, ConfigError, Overload};
pub use error::{JobError, SubmitError, TrySubmitError};
pub use job::{CancelToken, Job, JobHandle, UnstartedJob};
pub use pool::{Pool, ShutdownReport};
/// The clock type of [`Builder::clock`] and [`Job::deadline`], re-exported so
/// that users need not depend on quanta themselves.
pub use quanta;
pub use scope::Scope;
pub use stats::{Stats, Summary};
