mod table;

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::marker::PhantomData;
use std::time::Duration;

use crossbeam_utils::CachePadded;
use parking_lot::Mutex;

use crate::clock::Time;
use crate::decision::Decision;
use crate::error::{ConfigError, InsufficientCapacity, WaitError};
use crate::gcra::{self, ParamCell};
use crate::quota::Quota;
use crate::stats::KeyedStats;
use crate::wait;
use table::{EMPTY, Evicted, Table};

/// The largest `max_keys` accepted (2^36 keys, about 1.3 TiB of state).
pub const MAX_KEYS_LIMIT: usize = 1 << 36;

/// One rate limit per key (a client, an IP address, an API token), each decided
/// exactly as a separate [`RateLimiter`](crate::RateLimiter) with the same quota
/// would decide, in at most `max_keys` keys of memory.
///
/// Keys are not stored: each is identified by its 64-bit hash under the limiter's
/// hasher, 16 bytes of state per key whatever the key type. With the default
/// [`RandomState`] (SipHash with a random key per limiter) two keys collide with
/// probability 2^-64 per pair and a client cannot aim at a collision; a collision
/// would make two keys share one budget, which can refuse early but never admit
/// more than one key's quota. With a hasher that is not keyed, clients that choose
/// their keys could make their key share a victim's budget.
///
/// When a new key arrives and its shard is full, the limiter drops a key that is
/// idle (its bucket full again, so forgetting it changes no decision); only when
/// no key of the shard is idle does it drop the key owing the least time, and
/// counts that in [`KeyedStats::evictions_active`].
pub struct KeyedRateLimiter<K: ?Sized, S = RandomState> {
    shards: Box<[CachePadded<Mutex<Table>>]>,
    shard_bits: u32,
    max_keys: usize,
    hasher: S,
    params: ParamCell,
    time: Time,
    _key: PhantomData<fn(&K)>,
}

/// Options of a [`KeyedRateLimiter`]: from [`KeyedRateLimiter::builder`].
#[must_use = "a builder does nothing until build() is called"]
pub struct KeyedBuilder<K: ?Sized, S = RandomState> {
    quota: Quota,
    max_keys: usize,
    clock: Option<quanta::Clock>,
    shadow: bool,
    shards: Option<usize>,
    hasher: S,
    _key: PhantomData<fn(&K)>,
}

impl<K: ?Sized, S> KeyedBuilder<K, S> {
    /// The clock to read (default `quanta::Clock::new()`).
    pub fn clock(mut self, clock: quanta::Clock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Start in shadow mode (see [`KeyedRateLimiter::set_shadow`]).
    pub fn shadow(mut self, shadow: bool) -> Self {
        self.shadow = shadow;
        self
    }

    /// The number of independently locked shards, a power of two up to 1024. The
    /// `max_keys` bound is split evenly between them. Default: four per CPU,
    /// fewer when that would leave a shard under 64 keys.
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = Some(shards);
        self
    }

    /// The hasher that identifies keys (default [`RandomState`]). Use a keyed
    /// hasher whenever clients choose the keys.
    pub fn hasher<S2>(self, hasher: S2) -> KeyedBuilder<K, S2> {
        KeyedBuilder {
            quota: self.quota,
            max_keys: self.max_keys,
            clock: self.clock,
            shadow: self.shadow,
            shards: self.shards,
            hasher,
            _key: PhantomData,
        }
    }

    /// The limiter, with every key's bucket full.
    ///
    /// # Errors
    /// [`ConfigError::ZeroMaxKeys`], [`ConfigError::TooManyKeys`] above
    /// [`MAX_KEYS_LIMIT`], [`ConfigError::BadShards`].
    pub fn build(self) -> Result<KeyedRateLimiter<K, S>, ConfigError> {
        let max_keys = self.max_keys;
        if max_keys == 0 {
            return Err(ConfigError::ZeroMaxKeys);
        }
        if max_keys > MAX_KEYS_LIMIT {
            return Err(ConfigError::TooManyKeys {
                max_keys,
                limit: MAX_KEYS_LIMIT,
            });
        }
        let shards = match self.shards {
            Some(n) if n.is_power_of_two() && n <= 1024 && n <= max_keys => n,
            Some(n) => return Err(ConfigError::BadShards { shards: n }),
            None => default_shards(max_keys),
        };
        let shard_bits = shards.trailing_zeros();
        let (base, extra) = (max_keys / shards, max_keys % shards);
        let shards = (0..shards)
            .map(|i| CachePadded::new(Mutex::new(Table::new(base + usize::from(i < extra)))))
            .collect();
        Ok(KeyedRateLimiter {
            shards,
            shard_bits,
            max_keys,
            hasher: self.hasher,
            params: ParamCell::new(self.quota, self.shadow),
            time: Time::new(self.clock.unwrap_or_default()),
            _key: PhantomData,
        })
    }
}

fn default_shards(max_keys: usize) -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    let wanted = (4 * cpus).next_power_of_two().min(1024);
    let most = (max_keys / 64).max(1);
    // The largest power of two not above `most`.
    wanted.min(1 << most.ilog2())
}

impl<K: ?Sized> KeyedRateLimiter<K> {
    /// A limiter enforcing `quota` per key, holding at most `max_keys` keys.
    ///
    /// # Errors
    /// [`ConfigError::ZeroMaxKeys`], [`ConfigError::TooManyKeys`].
    pub fn new(quota: Quota, max_keys: usize) -> Result<KeyedRateLimiter<K>, ConfigError> {
        KeyedRateLimiter::builder(quota, max_keys).build()
    }

    /// A limiter with options: clock, shadow mode, shards, hasher.
    pub fn builder(quota: Quota, max_keys: usize) -> KeyedBuilder<K> {
        KeyedBuilder {
            quota,
            max_keys,
            clock: None,
            shadow: false,
            shards: None,
            hasher: RandomState::new(),
            _key: PhantomData,
        }
    }
}

impl<K: ?Sized + Hash, S: BuildHasher> KeyedRateLimiter<K, S> {
    /// Checks one request of `key`.
    #[inline]
    pub fn check(&self, key: &K) -> Decision {
        match self.decide(key, 1, self.time.now()) {
            Ok(decision) => decision,
            Err(_) => unreachable!("a quota's burst is at least one"),
        }
    }

    /// Checks a request of `n` cells of `key`, all or nothing.
    ///
    /// # Errors
    /// [`InsufficientCapacity`] when `n` is above the burst; nothing consumed.
    #[inline]
    pub fn check_n(&self, key: &K, n: u32) -> Result<Decision, InsufficientCapacity> {
        self.decide(key, n, self.time.now())
    }

    /// Blocks until one request of `key` is admitted; returns at once, consuming
    /// nothing, when that would take longer than `timeout`.
    ///
    /// # Errors
    /// [`WaitError::Timeout`] with the wait it would need.
    pub fn wait(&self, key: &K, timeout: Duration) -> Result<Decision, WaitError> {
        self.wait_n(key, 1, timeout)
    }

    /// As [`wait`](KeyedRateLimiter::wait) for `n` cells at once.
    ///
    /// # Errors
    /// [`WaitError::Timeout`], [`WaitError::InsufficientCapacity`].
    pub fn wait_n(&self, key: &K, n: u32, timeout: Duration) -> Result<Decision, WaitError> {
        wait::blocking(&self.time, timeout, |now| self.decide(key, n, now))
    }

    /// Waits on tokio's timer until one request of `key` is admitted.
    #[cfg(feature = "tokio")]
    pub async fn until_ready(&self, key: &K) -> Decision {
        match self.until_ready_n(key, 1).await {
            Ok(decision) => decision,
            Err(_) => unreachable!("a quota's burst is at least one"),
        }
    }

    /// As [`until_ready`](KeyedRateLimiter::until_ready) for `n` cells.
    ///
    /// # Errors
    /// [`InsufficientCapacity`] when `n` is above the burst.
    #[cfg(feature = "tokio")]
    pub async fn until_ready_n(&self, key: &K, n: u32) -> Result<Decision, InsufficientCapacity> {
        wait::until_ready(&self.time, |now| self.decide(key, n, now)).await
    }

    /// Forgets `key`: its next request finds a full bucket. Whether it was held.
    pub fn remove(&self, key: &K) -> bool {
        let hash = self.hash(key);
        self.shards[self.shard(hash)].lock().remove(hash)
    }

    #[inline]
    fn hash(&self, key: &K) -> u64 {
        match self.hasher.hash_one(key) {
            EMPTY => 1,
            h => h,
        }
    }

    #[inline]
    fn decide(&self, key: &K, n: u32, now: u64) -> Result<Decision, InsufficientCapacity> {
        let p = self.params.load();
        if n > p.burst {
            return Err(InsufficientCapacity {
                requested: n,
                burst: p.burst,
            });
        }
        let cost = p.cost(n);
        let hash = self.hash(key);
        let mut table = self.shards[self.shard(hash)].lock();
        let decision = match table.find(hash) {
            Some(i) => {
                let tat = table.tat(i);
                match gcra::admit(tat, now, cost, p.tau) {
                    Some(new_tat) => {
                        if n > 0 {
                            table.set_tat(i, new_tat);
                        }
                        gcra::conforming(&p, new_tat, now)
                    }
                    None => gcra::nonconforming(&p, tat, now, cost),
                }
            }
            // A key not held is a full bucket.
            None => match gcra::admit(0, now, cost, p.tau) {
                Some(new_tat) => {
                    if n > 0 {
                        let _: Evicted = table.insert(hash, new_tat, now);
                    }
                    gcra::conforming(&p, new_tat, now)
                }
                None => gcra::nonconforming(&p, 0, now, cost),
            },
        };
        // Counted under the shard's lock, which is held anyway: no atomic add.
        if n > 0 {
            table.decisions.count(decision.allowed, decision.conforming, n);
        }
        drop(table);
        Ok(decision)
    }
}

impl<K: ?Sized, S> KeyedRateLimiter<K, S> {
    #[inline]
    fn shard(&self, hash: u64) -> usize {
        if self.shard_bits == 0 {
            0
        } else {
            (hash >> (64 - self.shard_bits)) as usize
        }
    }

    /// Replaces the quota for every key; each key keeps its state as time owed
    /// (see [`RateLimiter::set_quota`](crate::RateLimiter::set_quota)).
    pub fn set_quota(&self, quota: Quota) {
        self.params.set_quota(quota);
    }

    /// The quota in force.
    pub fn quota(&self) -> Quota {
        self.params.quota()
    }

    /// Shadow mode: every request allowed, decisions and state as if enforcing,
    /// refusals counted in `shadow_denied`.
    pub fn set_shadow(&self, shadow: bool) {
        self.params.set_shadow(shadow);
    }

    /// Whether the limiter is in shadow mode.
    pub fn is_shadow(&self) -> bool {
        self.params.load().shadow
    }

    /// The hard bound on keys held.
    pub fn max_keys(&self) -> usize {
        self.max_keys
    }

    /// The number of shards.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Keys held now, idle ones included.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Decisions, keys and evictions so far. Locks each shard briefly.
    pub fn stats(&self) -> KeyedStats {
        let mut stats = KeyedStats {
            max_keys: self.max_keys,
            ..KeyedStats::default()
        };
        for shard in self.shards.iter() {
            let table = shard.lock();
            stats.decisions.add(&table.decisions);
            stats.keys += table.len();
            stats.evictions += table.evictions;
            stats.evictions_active += table.evictions_active;
        }
        stats
    }

    /// Heap bytes held by the key tables now.
    pub fn heap_bytes(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().heap_bytes())
            .sum::<usize>()
            + std::mem::size_of_val(&*self.shards)
    }
}

impl<K: ?Sized, S> fmt::Debug for KeyedRateLimiter<K, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedRateLimiter")
            .field("quota", &self.quota())
            .field("shadow", &self.is_shadow())
            .field("shards", &self.shards.len())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl<K: ?Sized, S> fmt::Debug for KeyedBuilder<K, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedBuilder")
            .field("quota", &self.quota)
            .field("max_keys", &self.max_keys)
            .field("shadow", &self.shadow)
            .field("shards", &self.shards)
            .finish_non_exhaustive()
    }
}
