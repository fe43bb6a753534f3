#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

#[cfg(feature = "pool")]
#[doc(inline)]
pub use prodkit_pool as pool;

#[cfg(feature = "ratelimit")]
#[doc(inline)]
pub use prodkit_ratelimit as ratelimit;
