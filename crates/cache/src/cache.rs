//! The public face: [`Cache`] and what it returns.

use std::borrow::Borrow;
use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::{Arc, Weak};

use crossbeam_utils::CachePadded;
use hashbrown::HashTable;
use parking_lot::{Mutex, RwLock};
use prodkit_pool::Pool;

use crate::buffer::ReadBuffer;
use crate::inner::{Hit, Inner, Slot};
use crate::load::{Begin, Leading, Outcome, WaitFlight};
use crate::shard::{Order, Parts, Store, tag};
use crate::stats::Counters;
use crate::{
    Builder, ConfigError, DefaultHashBuilder, PrefetchError, RemovalCause, Stats, TooHeavy,
};

/// A bounded concurrent cache. Cloning gives another handle to the same
/// cache. When the last handle is dropped, the background loads still
/// queued on its executor (refreshes, prefetches) are dropped, the ones
/// running finish, and the executor's threads are joined.
///
/// # Callbacks
/// Some of your code runs under a shard's lock: the weigher, the
/// [`Expiry`](crate::Expiry) rule, an [`invalidate_if`](Cache::invalidate_if)
/// predicate, a [`compute`](Cache::compute) or
/// [`get_or_insert_with`](Cache::get_or_insert_with) function, and the
/// key's `Hash`, `Eq` and `Clone`. It must be quick and must not call the
/// cache: a call that needs a lock this thread holds for a callback (the
/// same shard, also through nested callbacks and other caches) panics with
/// a message instead of waiting for itself; a call into another shard can
/// deadlock against a thread doing the reverse. The eviction listener and
/// the loaders run with no lock held and may call the cache (a loader
/// through a [`WeakCache`] if it is the cache's own), except that a loader
/// must not wait for its own key: `get_or_load` of its key from inside it
/// panics likewise.
///
/// ```
/// use prodkit_cache::Cache;
///
/// let cache: Cache<String, u64> = Cache::builder(10_000).build()?;
/// cache.insert("a".to_string(), 1);
/// assert_eq!(cache.get("a"), Some(1));
/// let other = cache.clone();
/// std::thread::spawn(move || other.insert("b".to_string(), 2)).join().unwrap();
/// assert_eq!(cache.get("b"), Some(2));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Cache<K, V, S = DefaultHashBuilder> {
    inner: Arc<Inner<K, V, S>>,
    /// Dropped with the last handle.
    executor: Option<Arc<Executor>>,
}

impl<K, V, S> Clone for Cache<K, V, S> {
    fn clone(&self) -> Self {
        Cache {
            inner: self.inner.clone(),
            executor: self.executor.clone(),
        }
    }
}

/// The executor of background loads. Its jobs hold the cache's state but no
/// handle, so the last handle's drop reaches it: the jobs not started are
/// dropped (nobody can read what they would load), the running ones finish,
/// the threads are joined (or, dropped from one of its own jobs, the last
/// worker joins the others).
struct Executor(Pool);

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

/// What [`Cache::compute`] does with the entry.
///
/// ```
/// use prodkit_cache::{Cache, Compute};
///
/// let cache: Cache<&str, u32> = Cache::builder(10).build()?;
/// let bump = |v: Option<&u32>| Compute::Insert(v.map_or(1, |n| n + 1));
/// assert_eq!(cache.compute("hits", bump), Some(1));
/// assert_eq!(cache.compute("hits", bump), Some(2));
/// assert_eq!(cache.compute("hits", |_| Compute::Keep), Some(2));
/// assert_eq!(cache.compute("hits", |_| Compute::Remove), None);
/// assert_eq!(cache.get("hits"), None);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compute<V> {
    /// Leave the entry as it is (absent stays absent). Counts as an access
    /// for the policy, not for time to idle.
    Keep,
    /// Insert this value, or replace the present one.
    Insert(V),
    /// Remove the entry.
    Remove,
}

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

impl<K, V> Cache<K, V> {
    /// A builder for a cache of `capacity` entries (or weight units, with a
    /// [`weigher`](Builder::weigher)).
    ///
    /// ```
    /// use prodkit_cache::Cache;
    ///
    /// let cache: Cache<u64, String> = Cache::builder(1000).build()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn builder(capacity: u64) -> Builder<K, V> {
        Builder::new(capacity)
    }
}

impl<K, V> Cache<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// A cache of `capacity` entries with the default settings.
    ///
    /// # Errors
    /// [`ConfigError::ZeroCapacity`] for a capacity of 0.
    ///
    /// ```
    /// use prodkit_cache::Cache;
    ///
    /// let cache: Cache<u64, u64> = Cache::new(100)?;
    /// assert!(Cache::<u64, u64>::new(0).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(capacity: u64) -> Result<Self, ConfigError> {
        Builder::new(capacity).build()
    }
}

impl<K, V, S> Cache<K, V, S>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher + Send + Sync + 'static,
{
    pub(crate) fn from_builder(mut b: Builder<K, V, S>) -> Result<Self, ConfigError> {
        let n = b.shard_count();
        let expire = b.expire();
        let timed = expire.is_set() || b.refresh_after.is_some();
        let clock = b.clock.take().unwrap_or_default();
        let base = b.capacity / n as u64;
        let extra = b.capacity % n as u64;
        let count_based = b.weigher.is_none();
        let slots = (0..n)
            .map(|i| {
                let max = base + u64::from((i as u64) < extra);
                // Room for a count-bound shard's entries up front, plus the
                // one an insert adds before it evicts (without it the slab
                // would double at the first eviction), up to 2^24 entries for
                // the whole cache; beyond that, and for a weighed cache,
                // shards grow as they fill.
                let room = if count_based {
                    usize::try_from(max + 1)
                        .unwrap_or(usize::MAX)
                        .min((1 << 24) / n)
                } else {
                    0
                };
                CachePadded::new(Slot {
                    lock: RwLock::new(Parts {
                        store: Store::new(room, timed, b.refresh_after.is_some()),
                        order: Order::new(max, room),
                    }),
                    buffer: CachePadded::new(ReadBuffer::new()),
                    misses: AtomicU64::new(0),
                    flights: Mutex::new(HashTable::new()),
                    loading: AtomicUsize::new(0),
                })
            })
            .collect();
        let executor = match &b.loader {
            None => None,
            Some(_) => {
                let pool = Pool::builder()
                    .workers(b.workers)
                    .queue_capacity(b.queue)
                    .thread_name("prodkit-cache")
                    .build()
                    .map_err(|e| match e {
                        prodkit_pool::BuildError::Spawn(io) => ConfigError::Spawn(io),
                        other => ConfigError::Spawn(std::io::Error::other(other.to_string())),
                    })?;
                Some(Arc::new(Executor(pool)))
            }
        };
        let epoch = clock.now();
        let inner = Inner {
            slots,
            mask: n - 1,
            hasher: b.hasher,
            weigher: b.weigher,
            expire,
            timed,
            refresh_after: b.refresh_after.map(crate::expiry::nanos),
            loader: b.loader,
            listener: b.listener,
            clock,
            epoch,
            capacity: b.capacity,
            counters: Counters::default(),
        };
        Ok(Cache {
            inner: Arc::new(inner),
            executor,
        })
    }

    /// The value of `key`, if cached and live. A read of an entry due for
    /// refresh returns it and schedules one reload.
    ///
    /// ```
    /// use prodkit_cache::Cache;
    ///
    /// let cache: Cache<String, u32> = Cache::builder(10).build()?;
    /// cache.insert("k".to_string(), 1);
    /// assert_eq!(cache.get("k"), Some(1)); // borrowed form: &str for String keys
    /// assert_eq!(cache.get("other"), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hit = self.inner.read(self.inner.hash(key), key)?;
        Some(self.after_hit(hit))
    }

    fn after_hit(&self, hit: Hit<K, V>) -> V {
        if let Some(key) = hit.refresh {
            self.schedule_refresh(key);
        }
        hit.value
    }

    /// Whether `key` is cached and live; not counted as a read, and not an
    /// access for time to idle (it does not keep the entry alive).
    ///
    /// ```
    /// use prodkit_cache::Cache;
    ///
    /// let cache: Cache<u32, u32> = Cache::builder(10).build()?;
    /// cache.insert(1, 1);
    /// assert!(cache.contains_key(&1));
    /// assert_eq!(cache.stats().hits, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.inner.peek(self.inner.hash(key), key).is_some()
    }

    /// Inserts or replaces. The cache then evicts what no longer fits; an
    /// entry heavier than a shard's capacity is not held and goes to the
    /// eviction listener as [`RemovalCause::Size`] (see
    /// [`try_insert`](Cache::try_insert) to get it back instead).
    ///
    /// ```
    /// use prodkit_cache::Cache;
    ///
    /// let cache: Cache<u32, u32> = Cache::builder(100).build()?;
    /// for i in 0..1000 {
    ///     cache.insert(i, i);
    /// }
    /// assert!(cache.len() <= 100);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn insert(&self, key: K, value: V) {
        let hash = self.inner.hash(&key);
        self.inner.insert_or_report(hash, key, value);
    }

    /// Inserts or replaces, handing back an entry too heavy to hold.
    ///
    /// # Errors
    /// [`TooHeavy`] with the key and value when the entry weighs more than a
    /// shard's capacity (a value it would have replaced is removed).
    ///
    /// ```
    /// use prodkit_cache::Cache;
    ///
    /// let cache: Cache<u32, Vec<u8>> =
    ///     Cache::builder(1024).weigher(|_, v: &Vec<u8>| v.len() as u32).build()?;
    /// assert!(cache.try_insert(1, vec![0; 100]).is_ok());
    /// let back = cache.try_insert(2, vec![0; 4096]).unwrap_err().into_inner();
    /// assert_eq!(back.1.len(), 4096);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_insert(&self, key: K, value: V) -> Result<(), TooHeavy<K, V>> {
        let hash = self.inner.hash(&key);
        self.inner.insert(hash, key, value)
    }

    /// Removes `key`, returning its live value.
    ///
    /// ```
    /// use prodkit_cache::Cache;
    ///
    /// let cache: Cache<u32, u32> = Cache::builder(10).build()?;
    /// cache.insert(1, 10);
    /// assert_eq!(cache.remove(&1), Some(10));
    /// assert_eq!(cache.remove(&1), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn remove<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.inner.remove(self.inner.hash(key), key)
    }

    /// Removes every entry for which `predicate` is true; returns how many.
    /// Expired entries met on the way are removed too (not counted). The
    /// predicate runs under each shard's lock: it must not call the cache
    /// (see [Callbacks](crate::Cache#callbacks)). If it panics, the
    /// entries removed before the panic still reach the listener and the
    /// others stay. Loads under way when it runs are taken as invalidated
    /// (the predicate cannot see a value not loaded yet): their values go to
    /// their callers but are not cached.
    ///
    /// ```
    /// use prodkit_cache::Cache;
    ///
    /// let cache: Cache<u32, &str> = Cache::builder(100).build()?;
    /// for i in 0..10 {
    ///     cache.insert(i, if i % 2 == 0 { "even" } else { "odd" });
    /// }
    /// assert_eq!(cache.invalidate_if(|_, v| *v == "odd"), 5);
    /// assert_eq!(cache.len(), 5);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn invalidate_if(&self, mut predicate: impl FnMut(&K, &V) -> bool) -> usize {
        let mut total = 0;
        for slot in self.inner.slots.iter() {
            total += self.inner.write(slot, |shard, now, sink| {
                self.inner.supersede_all(slot);
                let mut explicit = 0;
                shard.remove_where(
                    |k, v, expired| {
                        if expired {
                            Some(RemovalCause::Expired)
                        } else if predicate(k, v) {
                            explicit += 1;
                            Some(RemovalCause::Explicit)
                        } else {
                            None
                        }
                    },
                    now,
                    &self.inner.hasher,
                    sink,
                );
                explicit
            });
        }
        total
    }

    /// Removes every entry.
    ///
    /// ```
    /// use prodkit_cache::Cache;
    ///
    /// let cache: Cache<u32, u32> = Cache::builder(10).build()?;
    /// cache.insert(1, 1);
    /// cache.clear();
    /// assert!(cache.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn clear(&self) {
        self.invalidate_if(|_, _| true);
    }

    /// Removes the expired entries of every shard now (they are otherwise
    /// removed as operations meet them, with no background thread).
    ///
    /// ```
    /// use std::time::Duration;
    /// use prodkit_cache::{quanta::Clock, Cache};
    ///
    /// let (clock, mock) = Clock::mock();
    /// let cache: Cache<u32, u32> =
    ///     Cache::builder(100).time_to_live(Duration::from_secs(1)).clock(clock).build()?;
    /// cache.insert(1, 1);
    /// mock.increment(Duration::from_secs(2));
    /// assert_eq!(cache.len(), 1); // expired, not yet removed
    /// cache.cleanup();
    /// assert_eq!(cache.len(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn cleanup(&self) {
        for slot in self.inner.slots.iter() {
            self.inner.write(slot, |shard, now, sink| {
                shard.remove_where(
                    |_, _, expired| expired.then_some(RemovalCause::Expired),
                    now,
                    &self.inner.hasher,
                    sink,
                )
            });
        }
    }

    /// Reads, changes or removes the entry of `key` atomically: `f` sees the
    /// live value (or `None`) and says what to do; returns the value held
    /// afterwards. `f` runs under the shard's lock: it must not call the
    /// cache (see [Callbacks](crate::Cache#callbacks)). A panic in
    /// `f` changes nothing (expired entries swept before it are reported).
    ///
    /// ```
    /// use prodkit_cache::{Cache, Compute};
    ///
    /// let cache: Cache<&str, Vec<u32>> = Cache::builder(10).build()?;
    /// for n in [1, 2, 3] {
    ///     cache.compute("list", |v| {
    ///         let mut list = v.cloned().unwrap_or_default();
    ///         list.push(n);
    ///         Compute::Insert(list)
    ///     });
    /// }
    /// assert_eq!(cache.get("list"), Some(vec![1, 2, 3]));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn compute<F>(&self, key: K, f: F) -> Option<V>
    where
        F: FnOnce(Option<&V>) -> Compute<V>,
    {
        let inner = &*self.inner;
        let hash = inner.hash(&key);
        let mut too_heavy = None;
        let held = inner.write(inner.slot(hash), |shard, now, sink| {
            let mut found = shard.find(hash, &key);
            if let Some(i) = found.filter(|&i| shard.is_expired(i, now)) {
                shard.evict(i, RemovalCause::Expired, &inner.hasher, sink);
                found = None;
            }
            match (f(found.map(|i| &shard.node(i).value)), found) {
                (Compute::Keep, None) => None,
                (Compute::Remove, None) => {
                    inner.supersede(hash, &key, RemovalCause::Explicit);
                    None
                }
                (Compute::Keep, Some(i)) => {
                    shard.order.on_hit(i, tag(hash), 1);
                    Some(shard.node(i).value.clone())
                }
                (Compute::Remove, Some(i)) => {
                    inner.supersede(hash, &key, RemovalCause::Explicit);
                    shard.evict(i, RemovalCause::Explicit, &inner.hasher, sink);
                    None
                }
                (Compute::Insert(v), _) => {
                    match inner.insert_locked(shard, hash, key, v.clone(), now, sink) {
                        Ok(()) => Some(v),
                        Err(e) => {
                            too_heavy = Some(e);
                            None
                        }
                    }
                }
            }
        });
        if let Some(e) = too_heavy {
            inner.reject(e);
        }
        held
    }

    /// The live value of `key`, or the one `f` makes, inserted atomically.
    /// `f` runs under the shard's lock, blocking the shard: for slow loads
    /// use [`get_or_load`](Cache::get_or_load). `f` must not call the cache
    /// (see [Callbacks](crate::Cache#callbacks)).
    ///
    /// ```
    /// use prodkit_cache::Cache;
    ///
    /// let cache: Cache<u32, String> = Cache::builder(10).build()?;
    /// assert_eq!(cache.get_or_insert_with(1, || "one".into()), "one");
    /// assert_eq!(cache.get_or_insert_with(1, || "uno".into()), "one");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get_or_insert_with(&self, key: K, f: impl FnOnce() -> V) -> V {
        let inner = &*self.inner;
        let hash = inner.hash(&key);
        let slot = inner.slot(hash);
        let mut too_heavy = None;
        let value = inner.write(slot, |shard, now, sink| {
            if let Some(i) = shard
                .find(hash, &key)
                .filter(|&i| !shard.is_expired(i, now))
            {
                shard.order.counts.hits_locked += 1;
                shard.order.on_hit(i, tag(hash), 1);
                return shard.node(i).value.clone();
            }
            Counters::add(&slot.misses, 1);
            let v = f();
            if let Err(e) = inner.insert_locked(shard, hash, key, v.clone(), now, sink) {
                too_heavy = Some(e);
            }
            v
        });
        if let Some(e) = too_heavy {
            inner.reject(e);
        }
        value
    }

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

    fn schedule_refresh(&self, key: K) {
        crate::background::schedule_refresh(
            &self.inner,
            self.executor.as_deref().map(|e| &e.0),
            key,
        );
    }

    /// Loads `keys` in the background through the cache's executor (its
    /// [`loader`](Builder::loader)); keys cached or being loaded are skipped,
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

    /// The entries held now, cloned, one shard at a time (each shard's part
    /// is a consistent snapshot; expired entries are left out).
    ///
    /// ```
    /// use prodkit_cache::Cache;
    ///
    /// let cache: Cache<u32, u32> = Cache::builder(10).build()?;
    /// cache.insert(1, 10);
    /// cache.insert(2, 20);
    /// let mut all: Vec<_> = cache.iter().collect();
    /// all.sort();
    /// assert_eq!(all, [(1, 10), (2, 20)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn iter(&self) -> Iter<'_, K, V, S> {
        Iter {
            inner: &self.inner,
            next_shard: 0,
            buffered: Vec::new().into_iter(),
        }
    }

    /// Entries held now (expired ones not yet removed included).
    ///
    /// ```
    /// use prodkit_cache::Cache;
    ///
    /// let cache: Cache<u32, u32> = Cache::builder(10).build()?;
    /// cache.insert(1, 1);
    /// assert_eq!(cache.len(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn len(&self) -> usize {
        self.inner.slots.iter().map(|s| s.read().store.len()).sum()
    }

    /// Whether no entry is held.
    ///
    /// ```
    /// use prodkit_cache::Cache;
    ///
    /// let cache: Cache<u32, u32> = Cache::builder(10).build()?;
    /// assert!(cache.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The total weight held (the entry count without a weigher); never
    /// above [`capacity`](Cache::capacity).
    ///
    /// ```
    /// use prodkit_cache::Cache;
    ///
    /// let cache: Cache<u32, Vec<u8>> = Cache::builder(100).weigher(|_, v: &Vec<u8>| v.len() as u32).build()?;
    /// cache.insert(1, vec![0; 30]);
    /// assert_eq!(cache.weight(), 30);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn weight(&self) -> u64 {
        self.inner
            .slots
            .iter()
            .map(|s| s.read().order.weight())
            .sum()
    }

    /// The capacity, in entries or weight units.
    ///
    /// ```
    /// use prodkit_cache::Cache;
    ///
    /// let cache: Cache<u32, u32> = Cache::builder(10).build()?;
    /// assert_eq!(cache.capacity(), 10);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn capacity(&self) -> u64 {
        self.inner.capacity
    }

    /// A snapshot of the counters. See [`Stats`].
    ///
    /// ```
    /// use prodkit_cache::Cache;
    ///
    /// let cache: Cache<u32, u32> = Cache::builder(10).build()?;
    /// cache.get(&1);
    /// assert_eq!(cache.stats().misses, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stats(&self) -> Stats {
        let mut s = Stats::default();
        for slot in self.inner.slots.iter() {
            s.misses += slot.misses.load(std::sync::atomic::Ordering::Relaxed);
            let parts = slot.read();
            s.entries += parts.store.len();
            let order = &parts.order;
            let c = order.counts;
            s.hits += c.hits_locked;
            s.evictions.size += c.evicted_size;
            s.evictions.expired += c.expired;
            s.evictions.explicit += c.explicit;
            s.evictions.replaced += c.replaced;
            s.rejected += c.rejected;
            s.weight += order.weight();
        }
        s.capacity = self.inner.capacity;
        self.inner.counters.fill(&mut s);
        s
    }

    /// The clock the cache reads (expiry, refresh, load times).
    ///
    /// ```
    /// use prodkit_cache::{quanta::Clock, Cache};
    ///
    /// let (clock, mock) = Clock::mock();
    /// let cache: Cache<u32, u32> = Cache::builder(10).clock(clock).build()?;
    /// let t0 = cache.clock().now();
    /// mock.increment(std::time::Duration::from_secs(1));
    /// assert_eq!(cache.clock().now() - t0, std::time::Duration::from_secs(1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn clock(&self) -> &quanta::Clock {
        &self.inner.clock
    }
}

/// The entries of a cache, cloned; see [`Cache::iter`].
///
/// ```
/// use prodkit_cache::Cache;
///
/// let cache: Cache<u32, u32> = Cache::builder(10).build()?;
/// cache.insert(1, 1);
/// assert_eq!(cache.iter().count(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Iter<'a, K, V, S> {
    inner: &'a Inner<K, V, S>,
    next_shard: usize,
    buffered: std::vec::IntoIter<(K, V)>,
}

impl<K, V, S> Iterator for Iter<'_, K, V, S>
where
    K: Hash + Eq + Clone,
    V: Clone,
    S: BuildHasher,
{
    type Item = (K, V);

    fn next(&mut self) -> Option<(K, V)> {
        loop {
            if let Some(entry) = self.buffered.next() {
                return Some(entry);
            }
            let slot = self.inner.slots.get(self.next_shard)?;
            self.next_shard += 1;
            let now = self.inner.now_if_timed();
            let parts = slot.read();
            let shard = &parts.store;
            let entries: Vec<(K, V)> = (0..shard.len() as u32)
                .filter(|&i| !shard.is_expired(i, now))
                .map(|i| {
                    let n = shard.node(i);
                    (n.key.clone(), n.value.clone())
                })
                .collect();
            self.buffered = entries.into_iter();
        }
    }
}

impl<K, V, S> fmt::Debug for Iter<'_, K, V, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iter")
            .field("next_shard", &self.next_shard)
            .finish_non_exhaustive()
    }
}

impl<K, V, S> fmt::Debug for Cache<K, V, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("capacity", &self.inner.capacity)
            .field("shards", &self.inner.slots.len())
            .field("executor", &self.executor.is_some())
            .finish_non_exhaustive()
    }
}

/// A loader asked for its own key: waiting would wait for itself.
#[cold]
fn recursive_load() -> ! {
    panic!("get_or_load called from the loader of the same key: it would wait for itself")
}
