//! The pool's configuration and its validation.

use std::fmt;

/// A pool's size classes and retention limits.
///
/// Buffers come in size classes, powers of two from `min_class` to
/// `max_class`; a buffer goes back to the class of its capacity (the
/// largest class not above it), also after it grew. The pool retains at
/// most `max_retained_bytes`, counting the buffers each thread keeps for
/// itself.
///
/// ```
/// use prodkit_bufpool::PoolConfig;
///
/// let cfg = PoolConfig { max_class: 1 << 20, ..PoolConfig::default() };
/// cfg.validate()?;
/// # Ok::<(), prodkit_bufpool::ConfigError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolConfig {
    /// The smallest class, a power of two from 64 bytes: 1 KiB (the seed's
    /// small buffers). Smaller requests get a buffer of this class.
    pub min_class: usize,
    /// The largest class, a power of two: 4 MiB. Larger requests get a
    /// buffer of their own, freed on drop.
    pub max_class: usize,
    /// Bytes the pool retains at most, in its shared queues and in every
    /// thread's cache together: 64 MiB, half for each (so that threads'
    /// caches, idle ones included, never take the shared queues' room). At
    /// least `2 * max_class`.
    pub max_retained_bytes: usize,
    /// Buffers each class's shared queue holds at most: 1,024.
    pub max_per_class: usize,
    /// Buffers of a class each thread keeps for itself, in front of the
    /// shared queue (no lock, no atomic): 4, and 1 for classes above
    /// 64 KiB; 8 at most. 0 turns the thread caches off.
    pub thread_cache: usize,
    /// Whether a returned buffer is zeroed, its whole capacity, before it
    /// is handed out again (and new buffers are allocated zeroed): off.
    /// Safe code never reads a buffer's spare capacity; this is for code
    /// that does (`set_len`, uninitialised reads into a `BufMut`), and for
    /// secrets that must not outlive their use in memory.
    pub zero_on_return: bool,
}

impl Default for PoolConfig {
    fn default() -> PoolConfig {
        PoolConfig {
            min_class: 1 << 10,
            max_class: 4 << 20,
            max_retained_bytes: 64 << 20,
            max_per_class: 1_024,
            thread_cache: 4,
            zero_on_return: false,
        }
    }
}

/// What is wrong with a [`PoolConfig`]: the field and why.
///
/// ```
/// use prodkit_bufpool::PoolConfig;
///
/// let cfg = PoolConfig { min_class: 1000, ..PoolConfig::default() };
/// let e = cfg.validate().unwrap_err();
/// assert_eq!(e.field(), "min_class");
/// assert_eq!(e.to_string(), "min_class (1000) is not a power of two");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    field: &'static str,
    reason: String,
}

impl ConfigError {
    fn new(field: &'static str, reason: String) -> ConfigError {
        ConfigError { field, reason }
    }

    /// The field at fault.
    ///
    /// ```
    /// use prodkit_bufpool::PoolConfig;
    ///
    /// let cfg = PoolConfig { max_retained_bytes: 0, ..PoolConfig::default() };
    /// assert_eq!(cfg.validate().unwrap_err().field(), "max_retained_bytes");
    /// ```
    pub fn field(&self) -> &'static str {
        self.field
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.field, self.reason)
    }
}

impl std::error::Error for ConfigError {}

/// The largest class a pool takes: 1 GiB.
pub const MAX_CLASS_LIMIT: usize = 1 << 30;

impl PoolConfig {
    /// Checks the configuration; the first field at fault is named.
    ///
    /// ```
    /// use prodkit_bufpool::PoolConfig;
    ///
    /// let cfg = PoolConfig { min_class: 1 << 20, max_class: 1 << 10, ..PoolConfig::default() };
    /// assert_eq!(cfg.validate().unwrap_err().field(), "max_class");
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (field, n) in [("min_class", self.min_class), ("max_class", self.max_class)] {
            if !n.is_power_of_two() {
                return Err(ConfigError::new(
                    field,
                    format!("({n}) is not a power of two"),
                ));
            }
        }
        if self.min_class < 64 {
            return Err(ConfigError::new(
                "min_class",
                format!(
                    "({}) is below 64: smaller buffers cost more to pool than to allocate",
                    self.min_class
                ),
            ));
        }
        if self.max_class < self.min_class {
            return Err(ConfigError::new(
                "max_class",
                format!(
                    "({}) is below min_class ({})",
                    self.max_class, self.min_class
                ),
            ));
        }
        if self.max_class > MAX_CLASS_LIMIT {
            return Err(ConfigError::new(
                "max_class",
                format!("({}) is above {MAX_CLASS_LIMIT} (1 GiB)", self.max_class),
            ));
        }
        if self.max_retained_bytes < 2 * self.max_class {
            return Err(ConfigError::new(
                "max_retained_bytes",
                format!(
                    "({}) is below twice max_class ({}): a buffer of the largest class could never be kept",
                    self.max_retained_bytes,
                    2 * self.max_class
                ),
            ));
        }
        if self.max_per_class == 0 {
            return Err(ConfigError::new(
                "max_per_class",
                "is 0: the shared queues could keep nothing".into(),
            ));
        }
        let classes =
            (self.max_class.trailing_zeros() - self.min_class.trailing_zeros() + 1) as usize;
        if classes.saturating_mul(self.max_per_class) > 1 << 20 {
            return Err(ConfigError::new(
                "max_per_class",
                format!(
                    "({}) times the {classes} classes is above 1,048,576 queue slots, allocated up front (32 bytes each)",
                    self.max_per_class
                ),
            ));
        }
        if self.thread_cache > crate::stats::MAX_SLOTS {
            return Err(ConfigError::new(
                "thread_cache",
                format!(
                    "({}) is above {} buffers a class a thread (they live in the thread's own block)",
                    self.thread_cache,
                    crate::stats::MAX_SLOTS
                ),
            ));
        }
        Ok(())
    }
}
