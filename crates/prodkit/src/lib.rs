#![cfg_attr(
    all(
        feature = "batch",
        feature = "bufpool",
        feature = "cache",
        feature = "jsonfast",
        feature = "netcfg",
        feature = "pool",
        feature = "ratelimit"
    ),
    doc = include_str!("../README.md")
)]
#![cfg_attr(
    not(all(
        feature = "batch",
        feature = "bufpool",
        feature = "cache",
        feature = "jsonfast",
        feature = "netcfg",
        feature = "pool",
        feature = "ratelimit"
    )),
    doc = "Building blocks for backend services, each re-exported as a module behind a feature: \
           `pool`, `ratelimit`, `batch`, `bufpool`, `cache`, `jsonfast`, `netcfg`, or `full` for all of them. The crate \
           documentation with its example is built with all of them enabled (as docs.rs builds it)."
)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

// Each module is a leaf crate's whole public API, through a glob that rustdoc
// does not inline: the items' own pages (and their examples, written for the
// leaf crate, `use prodkit_pool::...`) stay in the leaf's documentation, and
// what renders here is written for this crate, with `prodkit::` paths
// (`cargo xtask lint` checks that). `quanta`, which each leaf re-exports for
// its clock seam, is shown once, at the root.

/// The clock every module's `clock` seam takes ([`pool::Builder::clock`],
/// [`batch::Builder::clock`], [`ratelimit::Builder::clock`],
/// [`cache::Builder::clock`]), once for all of them: `quanta::Clock::mock()` gives tests a time that moves only when they
/// say so.
///
/// ```
/// use std::time::Duration;
/// use prodkit::quanta::Clock;
///
/// let (clock, mock) = Clock::mock();
/// let start = clock.now();
/// mock.increment(Duration::from_secs(3));
/// assert_eq!(clock.now() - start, Duration::from_secs(3));
/// ```
#[cfg(any(
    feature = "batch",
    feature = "cache",
    feature = "pool",
    feature = "ratelimit"
))]
#[doc(no_inline)]
pub use quanta;

#[cfg(feature = "pool")]
#[cfg_attr(docsrs, doc(cfg(feature = "pool")))]
pub mod pool {
    //! A supervised worker pool: a bounded queue with an explicit overload
    //! policy, a handle with every job's result (also a `Future`), panics
    //! caught, and a shutdown that never loses a job and always returns.
    //!
    //! This module is the whole `prodkit-pool` crate: its documentation is the
    //! reference, and its examples' `prodkit_pool::X` is `prodkit::pool::X`
    //! here.
    //!
    //! ```
    //! use std::time::Duration;
    //! use prodkit::pool::{Overload, Pool};
    //!
    //! let pool = Pool::builder()
    //!     .workers(2)
    //!     .queue_capacity(64)
    //!     .overload(Overload::Reject) // a full queue hands the job back
    //!     .build()?;
    //! let handle = pool.submit(|| 6 * 7)?;
    //! assert_eq!(handle.join(), Ok(42));
    //! assert!(pool.shutdown(Duration::from_secs(5)).is_complete());
    //! # Ok::<(), Box<dyn std::error::Error>>(())
    //! ```
    #[doc(no_inline)]
    pub use prodkit_pool::*;
}

#[cfg(feature = "ratelimit")]
#[cfg_attr(docsrs, doc(cfg(feature = "ratelimit")))]
pub mod ratelimit {
    //! Exact GCRA rate limiters: a direct one, and a keyed one with a hard
    //! memory bound that never forgets a debt; each decision carries the
    //! `Retry-After` and IETF `RateLimit` header values. The `ratelimit-tokio`
    //! feature adds futures that wait for capacity.
    //!
    //! This module is the whole `prodkit-ratelimit` crate: its documentation
    //! is the reference, and its examples' `prodkit_ratelimit::X` is
    //! `prodkit::ratelimit::X` here.
    //!
    //! ```
    //! use prodkit::ratelimit::{KeyedRateLimiter, Quota};
    //!
    //! // 10 requests a minute per client, bursts of 2, at most 10,000 clients held.
    //! let quota = Quota::per_minute(10)?.with_burst(2)?;
    //! let limits = KeyedRateLimiter::<str>::new(quota, 10_000)?;
    //! assert!(limits.check("alice").is_allowed());
    //! assert!(limits.check("alice").is_allowed());
    //! let refused = limits.check("alice"); // the burst is spent
    //! assert!(!refused.is_allowed() && refused.retry_after().is_some());
    //! assert!(limits.check("bob").is_allowed()); // each client its own
    //! # Ok::<(), Box<dyn std::error::Error>>(())
    //! ```
    #[doc(no_inline)]
    pub use prodkit_ratelimit::*;
}

#[cfg(feature = "batch")]
#[cfg_attr(docsrs, doc(cfg(feature = "batch")))]
pub mod batch {
    //! Batched writes through a sink (PostgreSQL binary COPY or INSERT in
    //! `prodkit::batch::pg`), each row acknowledged only after its batch's COMMIT, every
    //! outcome reported: written, refused with the row handed back, or
    //! unknown.
    //!
    //! This module is the whole `prodkit-batch` crate: its documentation is
    //! the reference, and its examples' `prodkit_batch::X` is
    //! `prodkit::batch::X` here.
    //!
    //! ```
    //! use std::time::Duration;
    //! use prodkit::batch::{Batcher, FnSink};
    //!
    //! // A sink writes a whole batch or nothing; this one stands in for a table.
    //! let batcher = Batcher::builder()
    //!     .max_rows(500)
    //!     .build(|| Ok(FnSink(|_rows: &[u64]| Ok(()))))?;
    //! let ticket = batcher.submit(1)?;
    //! assert!(ticket.wait().is_ok()); // written
    //! let report = batcher.shutdown(Duration::from_secs(10));
    //! assert_eq!(report.acked, 1);
    //! # Ok::<(), Box<dyn std::error::Error>>(())
    //! ```
    #[doc(no_inline)]
    pub use prodkit_batch::*;
}

#[cfg(feature = "cache")]
#[cfg_attr(docsrs, doc(cfg(feature = "cache")))]
pub mod cache {
    //! A bounded concurrent cache: adaptive W-TinyLFU eviction (Caffeine's
    //! policy), capacity by count or weight never exceeded, time to live,
    //! time to idle and per-entry expiry without a background thread,
    //! single-flight loading (blocking or as a future), refresh-ahead and
    //! prefetch on a bounded executor, an eviction listener and stats.
    //!
    //! This module is the whole `prodkit-cache` crate: its documentation is
    //! the reference, and its examples' `prodkit_cache::X` is
    //! `prodkit::cache::X` here.
    //!
    //! ```
    //! use std::time::Duration;
    //! use prodkit::cache::Cache;
    //!
    //! let users: Cache<u64, String> = Cache::builder(10_000)
    //!     .time_to_live(Duration::from_secs(300))
    //!     .build()?;
    //! // Concurrent misses of one key run one load between them.
    //! let name = users.get_or_load(42, || Ok::<_, std::io::Error>("ada".to_string()))?;
    //! assert_eq!(name, "ada");
    //! assert_eq!(users.get(&42).as_deref(), Some("ada"));
    //! assert_eq!(users.stats().hits, 1);
    //! # Ok::<(), Box<dyn std::error::Error>>(())
    //! ```
    #[doc(no_inline)]
    pub use prodkit_cache::*;
}

#[cfg(feature = "bufpool")]
#[cfg_attr(docsrs, doc(cfg(feature = "bufpool")))]
pub mod bufpool {
    //! Byte buffers in power-of-two size classes that go back to their pool
    //! when dropped, with a hard bound on what the pool retains.
    //!
    //! This module is the whole `prodkit-bufpool` crate: its documentation
    //! is the reference, and its examples' `prodkit_bufpool::X` is
    //! `prodkit::bufpool::X` here.
    //!
    //! ```
    //! use prodkit::bufpool::BufPool;
    //!
    //! let pool = BufPool::default();
    //! let mut buf = pool.get(4096);
    //! buf.extend_from_slice(b"pooled");
    //! assert_eq!(&buf[..], b"pooled");
    //! ```
    #[doc(no_inline)]
    pub use prodkit_bufpool::*;
}

#[cfg(feature = "jsonfast")]
#[cfg_attr(docsrs, doc(cfg(feature = "jsonfast")))]
pub mod jsonfast {
    //! Typed JSON decoding on simd-json and serde that reuses all of its
    //! memory, streams NDJSON, and stands up to hostile input with limits
    //! and errors that say where.
    //!
    //! This module is the whole `prodkit-jsonfast` crate: its documentation
    //! is the reference, and its examples' `prodkit_jsonfast::X` is
    //! `prodkit::jsonfast::X` here.
    //!
    //! ```
    //! use prodkit::jsonfast::Decoder;
    //!
    //! let mut decoder = Decoder::default();
    //! let v: Vec<u32> = decoder.decode(b"[1, 2, 3]")?;
    //! assert_eq!(v, [1, 2, 3]);
    //! # Ok::<(), prodkit::jsonfast::Error>(())
    //! ```
    #[doc(no_inline)]
    pub use prodkit_jsonfast::*;
}

#[cfg(feature = "netcfg")]
#[cfg_attr(docsrs, doc(cfg(feature = "netcfg")))]
pub mod netcfg {
    //! Hardened, validated presets for an HTTP server, an HTTP client and a
    //! PostgreSQL pool: every limit and timeout with its reason, checked at
    //! start-up, loaded from a profile, a TOML file and the environment.
    //!
    //! This module is the whole `prodkit-netcfg` crate: its documentation is
    //! the reference, and its examples' `prodkit_netcfg::X` is
    //! `prodkit::netcfg::X` here.
    //!
    //! ```
    //! use prodkit::netcfg::{ClientConfig, ServerConfig};
    //!
    //! let server = ServerConfig::internet_facing().with_toml("max_connections = 2000")?;
    //! server.validate()?;
    //! ClientConfig::internal().validate_against(&server)?;
    //! # Ok::<(), Box<dyn std::error::Error>>(())
    //! ```
    #[doc(no_inline)]
    pub use prodkit_netcfg::*;
}
