//! Errors: a configuration refused at build time, an entry too heavy to
//! hold, a prefetch without a loader.

use std::fmt;

/// A configuration [`Builder::build`](crate::Builder::build) refuses, naming
/// the field at fault.
///
/// ```
/// use std::time::Duration;
/// use prodkit_cache::{Cache, ConfigError};
///
/// let err = Cache::<u64, u64>::builder(0).build().unwrap_err();
/// assert!(matches!(err, ConfigError::ZeroCapacity));
/// let err = Cache::<u64, u64>::builder(10).time_to_live(Duration::ZERO).build().unwrap_err();
/// assert_eq!(err.to_string(), "time_to_live is zero: give a positive duration or leave it unset");
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum ConfigError {
    /// The capacity is zero.
    ZeroCapacity,
    /// A duration setting is zero.
    ZeroDuration {
        /// The setting.
        field: &'static str,
    },
    /// A count setting is zero.
    ZeroCount {
        /// The setting.
        field: &'static str,
    },
    /// `expire_after` was set together with `time_to_live` or `time_to_idle`.
    ConflictingExpiry,
    /// `refresh_after` needs a `loader` to reload entries with.
    RefreshWithoutLoader,
    /// The shard count is not a power of two, above 1024, or above the
    /// capacity.
    Shards {
        /// The shard count asked for.
        shards: usize,
    },
    /// A shard would hold 2^30 weight units or more.
    CapacityTooLarge {
        /// The capacity asked for.
        capacity: u64,
        /// The shard count it was split over.
        shards: usize,
    },
    /// The executor's workers or queue are above what
    /// [`prodkit_pool`] accepts.
    Executor(prodkit_pool::ConfigError),
    /// The operating system refused a thread of the refresh executor.
    Spawn(std::io::Error),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::ZeroCapacity => f.write_str("capacity is zero: a cache must hold at least one entry"),
            ConfigError::ZeroDuration { field } => {
                write!(f, "{field} is zero: give a positive duration or leave it unset")
            }
            ConfigError::ZeroCount { field } => write!(f, "{field} is zero: give at least 1"),
            ConfigError::ConflictingExpiry => f.write_str(
                "expire_after cannot be combined with time_to_live or time_to_idle: put both rules in the Expiry",
            ),
            ConfigError::RefreshWithoutLoader => {
                f.write_str("refresh_after needs a loader: set Builder::loader")
            }
            ConfigError::Shards { shards } => write!(
                f,
                "shards is {shards}: give a power of two, at most 1024 and at most the capacity"
            ),
            ConfigError::CapacityTooLarge { capacity, shards } => {
                let most = crate::config::MAX_SHARDS as u64 * (crate::config::MAX_SHARD_CAPACITY - 1);
                if *capacity > most {
                    write!(
                        f,
                        "capacity {capacity} is too large: a cache holds at most {most} units (1024 shards of 2^30 - 1); count in larger units"
                    )
                } else {
                    let need = capacity.div_ceil(crate::config::MAX_SHARD_CAPACITY - 1).next_power_of_two();
                    write!(
                        f,
                        "capacity {capacity} is too large for {shards} shards: a shard holds fewer than 2^30 units; set shards({need}) or more"
                    )
                }
            }
            ConfigError::Executor(e) => write!(f, "executor: {e}"),
            ConfigError::Spawn(_) => f.write_str("cannot start the refresh executor's threads"),
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConfigError::Spawn(e) => Some(e),
            ConfigError::Executor(e) => Some(e),
            _ => None,
        }
    }
}

/// An entry heavier than a shard's capacity, refused by
/// [`Cache::try_insert`](crate::Cache::try_insert); the key and value come
/// back.
///
/// ```
/// use prodkit_cache::Cache;
///
/// let cache: Cache<&str, String> = Cache::builder(10)
///     .weigher(|_, v: &String| v.len() as u32)
///     .build()?;
/// let err = cache.try_insert("big", "x".repeat(11)).unwrap_err();
/// assert_eq!((err.weight(), err.limit()), (11, 10));
/// let (key, value) = err.into_inner();
/// assert_eq!((key, value.len()), ("big", 11));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct TooHeavy<K, V> {
    pub(crate) key: K,
    pub(crate) value: V,
    pub(crate) weight: u32,
    pub(crate) limit: u64,
}

impl<K, V> TooHeavy<K, V> {
    /// The entry's weight.
    ///
    /// ```
    /// # use prodkit_cache::Cache;
    /// # let cache: Cache<u8, Vec<u8>> = Cache::builder(4).weigher(|_, v: &Vec<u8>| v.len() as u32).build()?;
    /// assert_eq!(cache.try_insert(1, vec![0; 5]).unwrap_err().weight(), 5);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn weight(&self) -> u32 {
        self.weight
    }

    /// The most one entry may weigh: the capacity of the shard it belongs to.
    ///
    /// ```
    /// # use prodkit_cache::Cache;
    /// # let cache: Cache<u8, Vec<u8>> = Cache::builder(4).weigher(|_, v: &Vec<u8>| v.len() as u32).build()?;
    /// assert_eq!(cache.try_insert(1, vec![0; 5]).unwrap_err().limit(), 4);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// The key and value handed over.
    ///
    /// ```
    /// # use prodkit_cache::Cache;
    /// # let cache: Cache<u8, Vec<u8>> = Cache::builder(4).weigher(|_, v: &Vec<u8>| v.len() as u32).build()?;
    /// let (k, v) = cache.try_insert(1, vec![0; 5]).unwrap_err().into_inner();
    /// assert_eq!((k, v.len()), (1, 5));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn into_inner(self) -> (K, V) {
        (self.key, self.value)
    }
}

impl<K, V> fmt::Debug for TooHeavy<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TooHeavy")
            .field("weight", &self.weight)
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl<K, V> fmt::Display for TooHeavy<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "entry weighs {} but a shard holds at most {}: raise the capacity or lower the shard count",
            self.weight, self.limit
        )
    }
}

impl<K, V> std::error::Error for TooHeavy<K, V> {}

/// [`Cache::prefetch`](crate::Cache::prefetch) on a cache built without a
/// loader.
///
/// ```
/// use prodkit_cache::{Cache, PrefetchError};
///
/// let cache: Cache<u64, u64> = Cache::builder(10).build()?;
/// assert!(matches!(cache.prefetch([1, 2]), Err(PrefetchError::NoLoader)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PrefetchError {
    /// The cache has no loader to load the keys with.
    NoLoader,
}

impl fmt::Display for PrefetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the cache has no loader: set Builder::loader to prefetch")
    }
}

impl std::error::Error for PrefetchError {}
