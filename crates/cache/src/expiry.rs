//! When entries expire: a fixed time to live and time to idle, or a rule per
//! entry ([`Expiry`]). Times are nanoseconds of the cache's clock since the
//! cache was built; `NEVER` is no deadline.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::shard::{NEVER, Times};

/// A per-entry expiry rule, for [`Builder::expire_after`](crate::Builder::expire_after).
///
/// Each method returns how long from now the entry lives, or `None` for no
/// limit. Called with the shard's lock held: it must be quick and must not
/// call the cache (see [Callbacks](crate::Cache#callbacks)).
///
/// ```
/// use std::time::Duration;
/// use prodkit_cache::{quanta::Clock, Cache, Expiry};
///
/// /// Negative answers live 1 s, positive ones 60 s.
/// struct ByAnswer;
/// impl Expiry<String, Option<u32>> for ByAnswer {
///     fn expire_after_create(&self, _: &String, v: &Option<u32>) -> Option<Duration> {
///         Some(Duration::from_secs(if v.is_some() { 60 } else { 1 }))
///     }
/// }
///
/// let (clock, mock) = Clock::mock();
/// let cache: Cache<String, Option<u32>> =
///     Cache::builder(100).expire_after(ByAnswer).clock(clock).build()?;
/// cache.insert("found".into(), Some(7));
/// cache.insert("missing".into(), None);
/// mock.increment(Duration::from_secs(2));
/// assert_eq!(cache.get("found"), Some(Some(7)));
/// assert_eq!(cache.get("missing"), None);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Expiry<K, V>: Send + Sync {
    /// How long a new entry lives.
    fn expire_after_create(&self, key: &K, value: &V) -> Option<Duration>;

    /// How long an entry lives after its value was replaced; `remaining` is
    /// what was left of its lifetime. Defaults to a new lifetime.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use prodkit_cache::Expiry;
    /// struct KeepDeadline;
    /// impl Expiry<u32, u32> for KeepDeadline {
    ///     fn expire_after_create(&self, _: &u32, _: &u32) -> Option<Duration> {
    ///         Some(Duration::from_secs(10))
    ///     }
    ///     fn expire_after_update(&self, _: &u32, _: &u32, left: Option<Duration>) -> Option<Duration> {
    ///         left
    ///     }
    /// }
    /// assert_eq!(KeepDeadline.expire_after_update(&1, &2, Some(Duration::from_secs(3))), Some(Duration::from_secs(3)));
    /// ```
    fn expire_after_update(
        &self,
        key: &K,
        value: &V,
        remaining: Option<Duration>,
    ) -> Option<Duration> {
        let _ = remaining;
        self.expire_after_create(key, value)
    }

    /// How long an entry lives after a read. Defaults to unchanged.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use prodkit_cache::Expiry;
    /// struct Sliding;
    /// impl Expiry<u32, u32> for Sliding {
    ///     fn expire_after_create(&self, _: &u32, _: &u32) -> Option<Duration> {
    ///         Some(Duration::from_secs(10))
    ///     }
    ///     fn expire_after_read(&self, _: &u32, _: &u32, _: Option<Duration>) -> Option<Duration> {
    ///         Some(Duration::from_secs(10))
    ///     }
    /// }
    /// assert_eq!(Sliding.expire_after_read(&1, &2, None), Some(Duration::from_secs(10)));
    /// ```
    fn expire_after_read(
        &self,
        key: &K,
        value: &V,
        remaining: Option<Duration>,
    ) -> Option<Duration> {
        let _ = (key, value);
        remaining
    }
}

pub(crate) enum Expire<K, V> {
    Never,
    Fixed { ttl: Option<u64>, tti: Option<u64> },
    Custom(Box<dyn Expiry<K, V>>),
}

pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn after(now: u64, d: Option<Duration>) -> u64 {
    d.map_or(NEVER, |d| now.saturating_add(nanos(d)))
}

fn remaining(expires: u64, now: u64) -> Option<Duration> {
    (expires != NEVER).then(|| Duration::from_nanos(expires.saturating_sub(now)))
}

impl<K, V> Expire<K, V> {
    pub(crate) fn is_set(&self) -> bool {
        !matches!(self, Expire::Never)
    }

    /// The deadline of an entry written at `now`; `previous` is the
    /// replaced entry's deadline, if any.
    pub(crate) fn on_write(&self, key: &K, value: &V, now: u64, previous: Option<u64>) -> u64 {
        match self {
            Expire::Never => NEVER,
            Expire::Fixed { ttl, tti } => {
                let a = ttl.map_or(NEVER, |t| now.saturating_add(t));
                let b = tti.map_or(NEVER, |t| now.saturating_add(t));
                a.min(b)
            }
            Expire::Custom(e) => match previous {
                None => after(now, e.expire_after_create(key, value)),
                Some(p) => after(now, e.expire_after_update(key, value, remaining(p, now))),
            },
        }
    }

    /// Whether reads run the user's rule.
    pub(crate) fn is_custom(&self) -> bool {
        matches!(self, Expire::Custom(_))
    }

    /// Moves an entry's deadline after a read at `now` (idle time, or the
    /// custom rule). `times.expires` was checked to be in the future.
    #[inline]
    pub(crate) fn on_read(&self, key: &K, value: &V, times: &Times, now: u64) {
        match self {
            Expire::Never | Expire::Fixed { tti: None, .. } => {}
            Expire::Fixed {
                ttl,
                tti: Some(tti),
            } => {
                let written = times.written.load(Ordering::Relaxed);
                let hard = ttl.map_or(NEVER, |t| written.saturating_add(t));
                let next = now.saturating_add(*tti).min(hard);
                if times.expires.load(Ordering::Relaxed) != next {
                    times.expires.store(next, Ordering::Relaxed);
                }
            }
            Expire::Custom(e) => {
                let current = times.expires.load(Ordering::Relaxed);
                let next = after(
                    now,
                    e.expire_after_read(key, value, remaining(current, now)),
                );
                if next != current {
                    times.expires.store(next, Ordering::Relaxed);
                }
            }
        }
    }
}
