#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod batcher;
mod config;
mod deliver;
mod error;
pub mod pg;
mod sink;
mod stats;
mod submit;
mod ticket;

pub use batcher::Batcher;
pub use config::{Builder, RetryPolicy};
pub use error::{
    BuildError, ConfigError, Failure, Nack, NackReason, SinkError, SubmitError, SubmitErrorKind,
    TrySubmitError, Unknown,
};
/// The clock type of [`Builder::clock`], re-exported so that users need not
/// depend on quanta themselves.
pub use quanta;
pub use sink::{Deadline, FnSink, Sink};
pub use stats::{ShutdownReport, Stats};
pub use submit::SubmitFuture;
pub use ticket::{Ticket, TicketFuture};
