#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod background;
mod buffer;
mod cache;
mod config;
mod error;
mod expiry;
mod handle;
mod inner;
mod load;
mod loading;
mod policy;
mod shard;
mod sketch;
mod stats;

pub use cache::{Cache, Compute, Iter};
pub use config::{BoxError, Builder};
pub use error::{ConfigError, PrefetchError, TooHeavy};
pub use expiry::Expiry;
pub use handle::WeakCache;
pub use loading::Prefetched;
pub use stats::{Evictions, RemovalCause, Stats};

/// The clock seam: a [`quanta::Clock`] (with its mock) drives expiry,
/// refresh and load times.
pub use quanta;

/// The default hasher of keys: foldhash's, seeded at random per cache.
pub type DefaultHashBuilder = foldhash::fast::RandomState;
