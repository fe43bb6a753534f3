//! The public face: [`Cache`] and what it returns.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize};

use crossbeam_utils::CachePadded;
use hashbrown::HashTable;
use parking_lot::{Mutex, RwLock};
use prodkit_pool::Pool;

use crate::buffer::ReadBuffer;
use crate::handle::Executor;
use crate::inner::{Hit, Inner, Slot};
use crate::shard::{Order, Parts, Store, tag};
use crate::stats::Counters;
use crate::{Builder, ConfigError, DefaultHashBuilder, RemovalCause, Stats, TooHeavy};

/// A bounded concurrent cache. Cloning gives another handle to the same
/// cache. When the last handle is dropped, the background loads still
/// queued on its executor (refreshes, prefetches) are dropped, the ones
/// running finish, and the executor's threads are joined.
///
/// # Callbacks
/// Some of your code runs under a shard's lock: the weigher, the
/// [`Expiry`](crate::Expiry) rule, an [`invalidate_if`](Cache::invalidate_if)
/// predicate, a [`compute`](Cache::compute) or
/// [`get_or_insert_with`](Cache::get_or_insert_with) function, the key's
/// `Hash`, `Eq` and `Clone`, and the `Drop` of keys and values removed
/// when there is no listener to hand them to. It must be quick and must not
/// call the cache: a call that needs a lock this thread holds for a callback (the
/// same shard, also through nested callbacks and other caches) panics with
/// a message instead of waiting for itself; a call into another shard can
/// deadlock against a thread doing the reverse. The eviction listener and
/// the loaders run with no lock held and may call the cache (a loader
/// through a [`WeakCache`](crate::WeakCache) if it is the cache's own), except that a loader
/// must not wait for its own key: `get_or_load` of its key from inside it
/// panics likewise. Loaders on two threads that wait for each other's keys
/// deadlock, as two locks taken in opposite orders do; that is not
/// detected.
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
    pub(crate) inner: Arc<Inner<K, V, S>>,
    /// Dropped with the last handle.
    pub(crate) executor: Option<Arc<Executor>>,
}

impl<K, V, S> Clone for Cache<K, V, S> {
    fn clone(&self) -> Self {
        Cache {
            inner: self.inner.clone(),
            executor: self.executor.clone(),
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

    pub(crate) fn after_hit(&self, hit: Hit<K, V>) -> V {
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
                self.inner.supersede_loads(slot);
                let mut explicit = 0;
                shard.remove_where(
                    |k, v, expired| {
                        if expired {
                            Some(RemovalCause::Expired)
                        } else if predicate(k, v) {
                            explicit += 1;
                            // A refresh of this entry under way loses to the
                            // removal.
                            let inner = &*self.inner;
                            inner.supersede(inner.hash(k), k, RemovalCause::Explicit);
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
