#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

#[cfg(feature = "batch")]
#[doc(inline)]
pub use prodkit_batch as batch;

#[cfg(feature = "pool")]
#[doc(inline)]
pub use prodkit_pool as pool;

#[cfg(feature = "ratelimit")]
#[doc(inline)]
pub use prodkit_ratelimit as ratelimit;
