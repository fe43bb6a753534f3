#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(unsafe_code)]

mod buf;
mod config;
mod local;
mod parked;
mod pool;
mod read;
mod stats;

pub use buf::PooledBuf;
pub use config::{ConfigError, MAX_CLASS_LIMIT, PoolConfig};
pub use pool::BufPool;
pub use read::{ReadError, read_to_pooled};
pub use stats::{ClassStats, Stats};
