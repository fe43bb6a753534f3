//! Handles and their lifetime: the executor a cache's last handle shuts
//! down, and [`WeakCache`], a handle that does not keep the cache alive.

use std::fmt;
use std::sync::{Arc, Weak};

use prodkit_pool::Pool;

use crate::inner::Inner;
use crate::{Cache, DefaultHashBuilder};

/// The executor of background loads. Its jobs hold the cache's state but no
/// handle, so the last handle's drop reaches it: the jobs not started are
/// dropped (nobody can read what they would load), the running ones finish,
/// the threads are joined (or, dropped from one of its own jobs, the last
/// worker joins the others).
pub(crate) struct Executor(pub(crate) Pool);

impl Drop for Executor {
    fn drop(&mut self) {
        drop(self.0.shutdown_now());
    }
}

/// A handle that does not keep the cache alive: for a loader, listener or
/// background task that needs the cache itself (a strong handle there
/// would keep the cache, and its executor's threads, alive forever).
///
/// ```
/// use std::sync::{Arc, OnceLock};
/// use prodkit_cache::{Cache, WeakCache};
///
/// // A loader that looks at another key of the same cache.
/// let me: Arc<OnceLock<WeakCache<u32, u32>>> = Arc::new(OnceLock::new());
/// let seen = me.clone();
/// let cache: Cache<u32, u32> = Cache::builder(100)
///     .loader(move |k: &u32| {
///         let base = seen.get().and_then(WeakCache::upgrade).and_then(|c| c.get(&0));
///         Ok::<_, std::io::Error>(base.unwrap_or(0) + k)
///     })
///     .build()?;
/// me.set(cache.downgrade()).unwrap();
/// let weak = cache.downgrade();
/// drop(cache);
/// assert!(weak.upgrade().is_none());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct WeakCache<K, V, S = DefaultHashBuilder> {
    inner: Weak<Inner<K, V, S>>,
    executor: Option<Weak<Executor>>,
}

impl<K, V, S> WeakCache<K, V, S> {
    /// A handle to the cache, unless every handle was dropped.
    ///
    /// ```
    /// use prodkit_cache::Cache;
    ///
    /// let cache: Cache<u32, u32> = Cache::builder(10).build()?;
    /// cache.insert(1, 1);
    /// let weak = cache.downgrade();
    /// assert_eq!(weak.upgrade().and_then(|c| c.get(&1)), Some(1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn upgrade(&self) -> Option<Cache<K, V, S>> {
        let executor = match &self.executor {
            Some(weak) => Some(weak.upgrade()?),
            None => None,
        };
        Some(Cache {
            inner: self.inner.upgrade()?,
            executor,
        })
    }
}

impl<K, V, S> Clone for WeakCache<K, V, S> {
    fn clone(&self) -> Self {
        WeakCache {
            inner: self.inner.clone(),
            executor: self.executor.clone(),
        }
    }
}

impl<K, V, S> fmt::Debug for WeakCache<K, V, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WeakCache")
            .field("alive", &(self.inner.strong_count() > 0))
            .finish()
    }
}

impl<K, V, S> Cache<K, V, S> {
    /// A handle that does not keep the cache alive; see [`WeakCache`].
    ///
    /// ```
    /// use prodkit_cache::Cache;
    ///
    /// let cache: Cache<u32, u32> = Cache::builder(10).build()?;
    /// let weak = cache.downgrade();
    /// assert!(weak.upgrade().is_some());
    /// drop(cache);
    /// assert!(weak.upgrade().is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn downgrade(&self) -> WeakCache<K, V, S> {
        WeakCache {
            inner: Arc::downgrade(&self.inner),
            executor: self.executor.as_ref().map(Arc::downgrade),
        }
    }
}
