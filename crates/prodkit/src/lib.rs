#![cfg_attr(
    all(feature = "batch", feature = "pool", feature = "ratelimit"),
    doc = include_str!("../README.md")
)]
#![cfg_attr(
    not(all(feature = "batch", feature = "pool", feature = "ratelimit")),
    doc = "Building blocks for backend services, each re-exported as a module behind a feature: \
           `pool`, `ratelimit`, `batch`, or `full` for all of them. The crate documentation \
           with its example is built with all three enabled (as docs.rs builds it)."
)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

/// Batched writes with a per-row acknowledgement after COMMIT: the
/// `prodkit-batch` crate.
#[cfg(feature = "batch")]
#[cfg_attr(docsrs, doc(cfg(feature = "batch")))]
#[doc(inline)]
pub use prodkit_batch as batch;

/// A supervised worker pool with a bounded queue and per-job results: the
/// `prodkit-pool` crate.
#[cfg(feature = "pool")]
#[cfg_attr(docsrs, doc(cfg(feature = "pool")))]
#[doc(inline)]
pub use prodkit_pool as pool;

/// Exact rate limiters, direct and keyed with a hard memory bound: the
/// `prodkit-ratelimit` crate.
#[cfg(feature = "ratelimit")]
#[cfg_attr(docsrs, doc(cfg(feature = "ratelimit")))]
#[doc(inline)]
pub use prodkit_ratelimit as ratelimit;
