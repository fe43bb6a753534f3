//! Loading: `get_or_load` (single-flight, blocking and async), prefetch,
//! and the scheduling of the refreshes reads claim.

use std::future::Future;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

use crate::load::{Begin, Leading, Outcome, WaitFlight};
use crate::stats::Counters;
use crate::{Cache, PrefetchError};

/// What [`Cache::prefetch`] did with the keys.
///
/// ```
/// use prodkit_cache::Cache;
///
/// let cache: Cache<u32, u32> = Cache::builder(10).loader(|k: &u32| Ok::<_, std::io::Error>(*k)).build()?;
/// cache.insert(1, 1);
/// let p = cache.prefetch([1, 2])?;
/// assert_eq!((p.queued, p.skipped, p.dropped), (1, 1, 0));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Prefetched {
    /// Keys queued on the executor.
    pub queued: usize,
    /// Keys already cached or being loaded.
    pub skipped: usize,
    /// Keys dropped because the executor's queue was full.
    pub dropped: usize,
}

impl<K, V, S> Cache<K, V, S>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher + Send + Sync + 'static,
{
    /// The value of `key`, loaded by `loader` on a miss. Concurrent callers
    /// missing the same key run one loader between them (single-flight): the
    /// others wait and get its value, or its error. A loader that panics
    /// poisons nothing: the panic reaches its caller, and a waiter loads
    /// with its own loader.
    ///
    /// A write of the key while the loader runs wins over the load: after an
    /// `insert`, `compute`, `remove`, `invalidate_if` or `clear` that
    /// happens during the load, the loaded value (which may have been read
    /// before that write) goes to this call and its waiters, and to the
    /// eviction listener as `Replaced` (after an insert or compute) or
    /// `Explicit` (after a removal), as if it had been cached and then
    /// overwritten; it is not cached.
    ///
    /// The loader runs on the caller's thread with no lock held: it may use
    /// the cache, except to load its own key.
    ///
    /// # Errors
    /// The loader's error, shared with the waiters (they get the same
    /// `Arc`). Nothing is cached then.
    ///
    /// # Panics
    /// When the loader panics (its panic goes on). When the loader calls
    /// `get_or_load` for its own key: that call would wait for itself
    /// forever, so it panics instead (as Caffeine throws on a recursive
    /// load).
    ///
    /// ```
    /// use prodkit_cache::Cache;
    ///
    /// let cache: Cache<u32, String> = Cache::builder(100).build()?;
    /// let v = cache.get_or_load(7, || Ok::<_, std::io::Error>("seven".to_string()))?;
    /// assert_eq!(v, "seven");
    /// let err = cache.get_or_load(8, || Err(std::io::Error::other("db down"))).unwrap_err();
    /// assert_eq!(err.to_string(), "db down");
    /// assert_eq!(cache.get(&8), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get_or_load<E, F>(&self, key: K, loader: F) -> Result<V, Arc<E>>
    where
        F: FnOnce() -> Result<V, E>,
        E: Send + Sync + 'static,
    {
        let hash = self.inner.hash(&key);
        let mut loader = Some(loader);
        loop {
            match self.inner.begin(hash, &key, true) {
                Begin::Hit(hit) => return Ok(self.after_hit(hit)),
                Begin::Lead(guard) => {
                    let Some(load) = loader.take() else {
                        unreachable!("a caller leads at most once: it returns after leading")
                    };
                    let result = {
                        let _leading = Leading::enter(guard.flight());
                        load()
                    };
                    return guard.finish(result);
                }
                Begin::Wait(flight) if flight.led_here() => recursive_load(),
                Begin::Wait(flight) => match flight.wait() {
                    Outcome::Value(v) => return Ok(v),
                    Outcome::Error(e) => {
                        if let Ok(e) = e.downcast::<E>() {
                            return Err(e);
                        }
                        // Another error type: a caller of another kind led;
                        // load again with ours.
                    }
                    Outcome::Abandoned => {}
                },
            }
        }
    }

    /// [`get_or_load`](Cache::get_or_load) for async callers: a waiter is a
    /// future that parks no thread (its waker is woken when the leader
    /// settles), and no runtime is required. Dropping the leader's future
    /// abandons its load: a waiter takes over with its own loader. A write
    /// of the key during the load wins over it, as with `get_or_load`.
    ///
    /// Do not mix the two forms on one runtime thread: a blocking
    /// `get_or_load` there that waits for a load led by a future polled on
    /// the same thread waits for itself.
    ///
    /// # Errors
    /// As [`get_or_load`](Cache::get_or_load).
    ///
    /// ```
    /// use prodkit_cache::Cache;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
    /// let cache: Cache<u32, String> = Cache::builder(100).build()?;
    /// let v = cache
    ///     .get_or_load_async(1, || async { Ok::<_, std::io::Error>("one".to_string()) })
    ///     .await?;
    /// assert_eq!(v, "one");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn get_or_load_async<E, F, Fut>(&self, key: K, loader: F) -> Result<V, Arc<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
        E: Send + Sync + 'static,
    {
        let hash = self.inner.hash(&key);
        let mut loader = Some(loader);
        loop {
            let flight = match self.inner.begin(hash, &key, true) {
                Begin::Hit(hit) => return Ok(self.after_hit(hit)),
                Begin::Lead(guard) => {
                    let Some(load) = loader.take() else {
                        unreachable!("a caller leads at most once: it returns after leading")
                    };
                    // The loader is marked as this thread's while it makes
                    // its future and while that future is polled: a wait
                    // for its own key from inside it is caught.
                    let flight = guard.flight().clone();
                    let load = {
                        let _leading = Leading::enter(&flight);
                        load()
                    };
                    let mut load = std::pin::pin!(load);
                    let result = std::future::poll_fn(|cx| {
                        let _leading = Leading::enter(&flight);
                        load.as_mut().poll(cx)
                    })
                    .await;
                    return guard.finish(result);
                }
                Begin::Wait(flight) if flight.led_here() => recursive_load(),
                Begin::Wait(flight) => flight,
            };
            match WaitFlight::new(flight).await {
                Outcome::Value(v) => return Ok(v),
                Outcome::Error(e) => {
                    if let Ok(e) = e.downcast::<E>() {
                        return Err(e);
                    }
                }
                Outcome::Abandoned => {}
            }
        }
    }

    pub(crate) fn schedule_refresh(&self, key: K) {
        crate::background::schedule_refresh(
            &self.inner,
            self.executor.as_deref().map(|e| &e.0),
            key,
        );
    }

    /// Loads `keys` in the background through the cache's executor (its
    /// [`loader`](crate::Builder::loader)); keys cached or being loaded are skipped,
    /// and when the executor's queue is full the rest are dropped and
    /// counted, never queued without bound.
    ///
    /// # Errors
    /// [`PrefetchError::NoLoader`] when the cache has no loader.
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_cache::Cache;
    ///
    /// let cache: Cache<u32, u32> =
    ///     Cache::builder(100).loader(|k: &u32| Ok::<_, std::io::Error>(k * 10)).build()?;
    /// let p = cache.prefetch(1..=3)?;
    /// assert_eq!(p.queued + p.dropped, 3);
    /// # while cache.len() < p.queued { std::thread::sleep(Duration::from_millis(1)); }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn prefetch<I>(&self, keys: I) -> Result<Prefetched, PrefetchError>
    where
        I: IntoIterator<Item = K>,
    {
        let Some(pool) = &self.executor else {
            return Err(PrefetchError::NoLoader);
        };
        let mut report = Prefetched::default();
        for key in keys {
            let hash = self.inner.hash(&key);
            if self.inner.peek(hash, &key).is_some() || self.inner.loading(hash, &key) {
                report.skipped += 1;
                continue;
            }
            let inner = self.inner.clone();
            match pool
                .0
                .try_execute(move || crate::background::load_now(&inner, hash, key))
            {
                Ok(()) => {
                    report.queued += 1;
                    Counters::add(&self.inner.counters.prefetches, 1);
                }
                Err(_) => {
                    report.dropped += 1;
                    Counters::add(&self.inner.counters.prefetches_dropped, 1);
                }
            }
        }
        Ok(report)
    }
}

/// A loader asked for its own key: waiting would wait for itself.
#[cold]
fn recursive_load() -> ! {
    panic!("get_or_load called from the loader of the same key: it would wait for itself")
}
