#![doc = include_str!("../README.md")]

mod config;
mod engine;
mod error;
mod inner;
mod job;
mod pool;
mod scope;
mod shutdown;
mod stats;
mod sync;
mod task;
mod worker;

pub use config::{BuildError, Builder, ConfigError, Overload};
pub use error::{JobError, SubmitError, SubmitErrorKind, TrySubmitError};
pub use job::{CancelToken, Job, JobHandle, JoinFuture, UnstartedJob};
pub use pool::Pool;
/// The clock type of [`Builder::clock`] and [`Job::deadline`], re-exported so
/// that users need not depend on quanta themselves.
pub use quanta;
pub use scope::Scope;
pub use shutdown::ShutdownReport;
pub use stats::{Stats, Summary};
