#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

mod clock;
mod decision;
mod direct;
mod error;
mod gcra;
mod header;
mod keyed;
mod quota;
mod stats;
mod sync;
mod wait;

pub use clock::CoarseClock;
pub use decision::Decision;
pub use direct::{Builder, RateLimiter};
pub use error::{ClockError, ConfigError, HeaderError, InsufficientCapacity, WaitError};
pub use keyed::{KeyedBuilder, KeyedRateLimiter, MAX_KEYS_LIMIT};
/// The clock type of [`Builder::clock`] and [`KeyedBuilder::clock`], re-exported
/// so that users need not depend on quanta themselves.
pub use quanta;
pub use quota::Quota;
pub use stats::{KeyedStats, Stats};
