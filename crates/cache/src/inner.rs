//! The state every handle of a cache shares: the shards, the settings, and
//! the operations under the shards' locks. `cache.rs` is the public face.
//!
//! A shard is a readers-writer lock around its entries and policy, with a
//! read buffer beside it. A hit takes the lock shared, records itself in the
//! buffer and goes; anything that changes entries takes it exclusively and
//! first replays the buffer into the policy, so the policy sees reads and
//! writes in order (exactly, with one thread; nearly, under contention).

use std::borrow::Borrow;
use std::cell::{Cell, RefCell};
use std::hash::{BuildHasher, Hash};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crossbeam_utils::CachePadded;
use hashbrown::HashTable;
use parking_lot::{Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::buffer::{ReadBuffer, SLOTS};
use crate::config::{Listener, Loader, Weigher};
use crate::expiry::Expire;
use crate::load::{Flight, Pending};
use crate::shard::{EntryTimes, NEVER, Order, Parts, REFRESHING, Shard, Sink, tag};
use crate::stats::Counters;
use crate::{RemovalCause, TooHeavy};

/// Entries a write looks at besides its own (the sweep): it passes over a
/// shard every `len / SWEEP_STEPS` writes, and an expired entry goes within
/// two passes (a removal may move it behind the sweep).
const SWEEP_STEPS: usize = 2;

/// One shard: its entries and its policy under one readers-writer lock, and
/// the read buffer on cache lines of its own (every reader writes it).
pub(crate) struct Slot<K, V> {
    pub(crate) lock: RwLock<Parts<K, V>>,
    pub(crate) buffer: CachePadded<ReadBuffer>,
    pub(crate) misses: AtomicU64,
    /// Loads under way, by key: at most one per key (single-flight). Taken
    /// after `lock` where both are held.
    pub(crate) flights: Mutex<HashTable<Pending<K, V>>>,
    /// How many loads the table holds, so that a write finds out without
    /// the table's lock that there is none to mark stale.
    pub(crate) loading: AtomicUsize,
}

thread_local! {
    /// The shard whose lock this thread holds while it runs the user's code
    /// under it (a weigher, an expiry rule, a predicate, a compute
    /// function), by address; 0 for none. A plain cell: entering and leaving
    /// cost a load and a store.
    static HELD: Cell<usize> = const { Cell::new(0) };
    /// The shards held further out, when callbacks nest (across shards and
    /// across caches), innermost last.
    static HELD_OUTER: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

/// Marks a shard as held by this thread while user code runs under its
/// lock; the mark goes on drop, unwinding included.
struct Held {
    outer: usize,
}

impl Held {
    fn enter<K, V>(slot: &Slot<K, V>) -> Held {
        let outer = HELD.replace(slot.id());
        if outer != 0 {
            HELD_OUTER.with_borrow_mut(|held| held.push(outer));
        }
        Held { outer }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        HELD.set(self.outer);
        if self.outer != 0 {
            HELD_OUTER.with_borrow_mut(|held| held.pop());
        }
    }
}

#[cold]
fn reentry_panic() -> ! {
    panic!(
        "a callback run under the cache's lock (a weigher, an expiry rule, an \
         invalidate_if predicate, a compute or get_or_insert_with function) called \
         the same cache: it would wait for itself"
    )
}

impl<K, V> Slot<K, V> {
    fn id(&self) -> usize {
        std::ptr::from_ref(self) as usize
    }

    /// Whether this thread runs user code under this shard's lock.
    fn held_here(&self) -> bool {
        let held = HELD.get();
        held != 0
            && (held == self.id() || HELD_OUTER.with_borrow(|outer| outer.contains(&self.id())))
    }

    /// A lock this thread cannot get at once may be one it holds itself,
    /// from a callback that called the cache: that call would wait for
    /// itself forever, so it panics instead.
    #[cold]
    fn check_reentry(&self) {
        if self.held_here() {
            reentry_panic();
        }
    }

    #[inline]
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, Parts<K, V>> {
        self.lock.try_read().unwrap_or_else(|| {
            self.check_reentry();
            self.lock.read()
        })
    }

    #[inline]
    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, Parts<K, V>> {
        self.lock.try_write().unwrap_or_else(|| {
            self.check_reentry();
            self.lock.write()
        })
    }
}

pub(crate) struct Inner<K, V, S> {
    pub(crate) slots: Box<[CachePadded<Slot<K, V>>]>,
    pub(crate) mask: usize,
    pub(crate) hasher: S,
    pub(crate) weigher: Option<Weigher<K, V>>,
    pub(crate) expire: Expire<K, V>,
    /// Whether entries carry times (expiry or refresh configured).
    pub(crate) timed: bool,
    pub(crate) refresh_after: Option<u64>,
    pub(crate) loader: Option<Loader<K, V>>,
    pub(crate) listener: Option<Listener<K, V>>,
    pub(crate) clock: quanta::Clock,
    pub(crate) epoch: quanta::Instant,
    pub(crate) capacity: u64,
    pub(crate) counters: Counters,
}

/// A read that found a live entry; `refresh` is its key when this read
/// claimed its refresh.
pub(crate) struct Hit<K, V> {
    pub(crate) value: V,
    pub(crate) refresh: Option<K>,
}

impl<K, V, S> Inner<K, V, S>
where
    K: Hash + Eq + Clone,
    V: Clone,
    S: BuildHasher,
{
    #[inline]
    pub(crate) fn hash<Q: Hash + ?Sized>(&self, key: &Q) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The shard of a hash: bits 40 and up, which the index table uses for
    /// neither its position (low bits) nor its tag (top 7 bits).
    #[inline]
    pub(crate) fn slot(&self, hash: u64) -> &Slot<K, V> {
        &self.slots[(hash >> 40) as usize & self.mask]
    }

    /// Nanoseconds since the cache was built, on its clock.
    pub(crate) fn now(&self) -> u64 {
        let d = self.clock.now().saturating_duration_since(self.epoch);
        u64::try_from(d.as_nanos()).unwrap_or(u64::MAX - 1)
    }

    pub(crate) fn now_if_timed(&self) -> u64 {
        if self.timed { self.now() } else { 0 }
    }

    pub(crate) fn weigh(&self, key: &K, value: &V) -> u32 {
        self.weigher.as_ref().map_or(1, |w| w(key, value).max(1))
    }

    /// Runs `f` under the shard's write lock, after replaying its read buffer
    /// and sweeping a few expired entries; the entries removed go to the
    /// listener once the lock is released.
    ///
    /// `f` may call user code (a predicate, a weigher, an expiry policy)
    /// that panics. Every change to the shard is whole before such a call,
    /// so the shard stays sound; the entries removed before the panic still
    /// reach the listener, and then the panic goes on to the caller.
    pub(crate) fn write<R>(
        &self,
        slot: &Slot<K, V>,
        f: impl FnOnce(&mut Shard<'_, K, V>, u64, &mut Sink<'_, K, V>) -> R,
    ) -> R {
        let mut removed = Vec::new();
        let result = {
            let mut sink = self.listener.as_ref().map(|_| &mut removed);
            let mut parts = slot.write();
            let Parts { store, order } = &mut *parts;
            self.drain(slot, order);
            let mut shard = Shard { store, order };
            let now = self.now_if_timed();
            let result = catch_unwind(AssertUnwindSafe(|| {
                let _held = Held::enter(slot);
                shard.sweep(SWEEP_STEPS, now, &self.hasher, &mut sink);
                f(&mut shard, now, &mut sink)
            }));
            if result.is_err() {
                // The panic (a callback's, or the drop of a key or value
                // removed with no listener to take it) may have come between
                // a write and its evictions: evict now. A drop may panic
                // again, after its entry is out: each pass removes one more,
                // so the passes are bounded by the entries.
                for _ in 0..=shard.len() {
                    let pass = catch_unwind(AssertUnwindSafe(|| {
                        shard.maintain(now, &self.hasher, &mut sink);
                    }));
                    if pass.is_ok() {
                        break;
                    }
                }
            }
            // An entry came or went: every read counts again.
            if shard.order.wrote {
                shard.order.wrote = false;
                slot.buffer.on_write();
            }
            result
        };
        self.notify(removed);
        result.unwrap_or_else(|panic| resume_unwind(panic))
    }

    /// Hands removed entries to the listener. A panicking listener call
    /// does not stop the others: every entry is reported, then the first
    /// panic goes on to the caller.
    pub(crate) fn notify(&self, removed: Vec<(K, V, RemovalCause)>) {
        let Some(listener) = &self.listener else {
            return;
        };
        let mut first_panic = None;
        for (k, v, cause) in removed {
            if let Err(panic) = catch_unwind(AssertUnwindSafe(|| listener(k, v, cause))) {
                first_panic.get_or_insert(panic);
            }
        }
        if let Some(panic) = first_panic {
            resume_unwind(panic);
        }
    }

    /// Replays the reads recorded since the last drain into the policy.
    pub(crate) fn drain(&self, slot: &Slot<K, V>, order: &mut Order) {
        let position = slot.buffer.position();
        let seen = order.seen_position;
        if position == seen {
            return;
        }
        order.seen_position = position;
        let len = order.links.len() as u64;
        let mut any = false;
        slot.buffer.drain(seen, position, |token| {
            // A record may name a position that has since changed hands (a
            // removal moved another entry there): the policy is credited
            // with the wrong read, never corrupted.
            let i = token & ((1 << 30) - 1);
            if i < len {
                let weight = 1 << ((token >> 30) & 3);
                order.on_hit(i as u32, (token >> 32) as u32, weight);
                any = true;
            }
        });
        if any {
            order.after_reads();
        }
    }

    /// A read: the live value, recorded for the policy and counted as a hit;
    /// an expired entry is removed and reads as a miss.
    #[inline]
    pub(crate) fn read<Q>(&self, hash: u64, key: &Q) -> Option<Hit<K, V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let slot = self.slot(hash);
        let parts = slot.read();
        let shard = &parts.store;
        let Some(i) = shard.find(hash, key) else {
            drop(parts);
            slot.misses.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        let node = shard.node(i);
        let mut refresh = None;
        if self.timed
            && let Some(t) = shard.times(i)
        {
            {
                let now = self.now();
                if t.expires.load(Ordering::Relaxed) <= now {
                    drop(parts);
                    slot.misses.fetch_add(1, Ordering::Relaxed);
                    self.expire_entry(slot, hash, key);
                    return None;
                }
                if self.expire.is_custom() {
                    // The rule runs under the shared lock; a read of this
                    // shard from inside it would run it again, without end.
                    if slot.held_here() {
                        reentry_panic();
                    }
                    let _held = Held::enter(slot);
                    self.expire.on_read(&node.key, &node.value, t, now);
                } else {
                    self.expire.on_read(&node.key, &node.value, t, now);
                }
                if let Some(d) = shard.due(i) {
                    let due = d.load(Ordering::Relaxed);
                    if due & REFRESHING == 0
                        && now >= due
                        && d.compare_exchange(
                            due,
                            due | REFRESHING,
                            Ordering::Relaxed,
                            Ordering::Relaxed,
                        )
                        .is_ok()
                    {
                        refresh = Some(node.key.clone());
                    }
                }
            }
        }
        let value = node.value.clone();
        let full = slot
            .buffer
            .record(u64::from(tag(hash)) << 32 | u64::from(i));
        // Counted before the lock is released: counted after it, between
        // the release and the drain below, the same reads ran at 19 instead
        // of 50 Mops/s with two threads in `cache/throughput/read-100`
        // (measured, twice; the cause was not found).
        self.counters.hits.count();
        drop(parts);
        if full && let Some(mut parts) = slot.lock.try_write() {
            self.drain(slot, &mut parts.order);
        }
        Some(Hit { value, refresh })
    }

    /// The live value, without counting a read or telling the policy.
    pub(crate) fn peek<Q>(&self, hash: u64, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let now = self.now_if_timed();
        let parts = self.slot(hash).read();
        let shard = &parts.store;
        let i = shard.find(hash, key)?;
        (!shard.is_expired(i, now)).then(|| shard.node(i).value.clone())
    }

    fn expire_entry<Q>(&self, slot: &Slot<K, V>, hash: u64, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.write(slot, |shard, now, sink| {
            if let Some(i) = shard.find(hash, key)
                && shard.is_expired(i, now)
            {
                shard.evict(i, RemovalCause::Expired, &self.hasher, sink);
            }
        });
    }

    /// A write of `key` (`Replaced` or `Explicit`) supersedes a load or
    /// refresh of it under way: its value, which may be older than this
    /// write, will not be cached, and the load leaves the table, so that a
    /// caller that misses the key from now on loads it afresh rather than
    /// wait for the old load. Called under the shard's write lock.
    pub(crate) fn supersede<Q>(&self, hash: u64, key: &Q, cause: RemovalCause)
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let slot = self.slot(hash);
        if slot.loading.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut flights = slot.flights.lock();
        if let Ok(entry) = flights.find_entry(hash, |p| p.key.borrow() == key) {
            let (p, _) = entry.remove();
            slot.loading.fetch_sub(1, Ordering::Relaxed);
            p.flight.supersede(cause);
        }
    }

    /// Supersedes every caller's load under way in `slot` (an invalidation
    /// by predicate cannot see a value not loaded yet, so it takes every
    /// load as hit). A refresh has its entry, which the predicate sees: it
    /// is superseded only if its entry is removed. Called under the shard's
    /// write lock.
    pub(crate) fn supersede_loads(&self, slot: &Slot<K, V>) {
        if slot.loading.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut flights = slot.flights.lock();
        let before = flights.len();
        flights.retain(|p| {
            if p.refresh {
                return true;
            }
            p.flight.supersede(RemovalCause::Explicit);
            false
        });
        slot.loading
            .fetch_sub(before - flights.len(), Ordering::Relaxed);
    }

    /// The times of an entry written at `now` with deadline `expires`.
    pub(crate) fn times_at(&self, expires: u64, now: u64) -> EntryTimes {
        EntryTimes {
            expires,
            written: now,
            due: self.refresh_after.map_or(NEVER, |a| now.saturating_add(a)),
        }
    }

    /// Inserts or replaces under the write lock, then evicts what no longer
    /// fits. An entry heavier than the shard comes back (and a value it
    /// would have replaced is removed).
    pub(crate) fn insert_locked(
        &self,
        shard: &mut Shard<'_, K, V>,
        hash: u64,
        key: K,
        value: V,
        now: u64,
        sink: &mut Sink<'_, K, V>,
    ) -> Result<(), TooHeavy<K, V>> {
        let weight = self.weigh(&key, &value);
        self.supersede(hash, &key, RemovalCause::Replaced);
        let limit = shard.max_weight();
        let found = shard.find(hash, &key);
        if u64::from(weight) > limit {
            if let Some(i) = found {
                shard.evict(i, RemovalCause::Replaced, &self.hasher, sink);
            }
            shard.order.counts.rejected += 1;
            return Err(TooHeavy {
                key,
                value,
                weight,
                limit,
            });
        }
        match found {
            Some(i) => {
                let expired = shard.is_expired(i, now);
                let previous = match shard.times(i) {
                    Some(t) if !expired => Some(t.expires.load(Ordering::Relaxed)),
                    _ => None,
                };
                let expires = self.expire.on_write(&key, &value, now, previous);
                let grew = weight > shard.order.links[i as usize].weight;
                let old = shard.replace(i, value, weight);
                shard.set_times(i, self.times_at(expires, now));
                let cause = if expired {
                    shard.order.counts.expired += 1;
                    RemovalCause::Expired
                } else {
                    shard.order.counts.replaced += 1;
                    RemovalCause::Replaced
                };
                if let Some(sink) = sink {
                    sink.push((key, old, cause));
                }
                // The update is an access of a present entry, sampled like a
                // read, so that a shard whose entries only change value pays
                // no more for the policy than a read-only one.
                let buffer = &self.slot(hash).buffer;
                if let Some(level) = buffer.sample() {
                    shard.order.on_update(i, tag(hash), 1 << level);
                    // A buffer's worth of updates counts toward sampling as a
                    // full buffer of reads does.
                    shard.order.updates = shard.order.updates.wrapping_add(1);
                    if shard.order.updates.is_multiple_of(SLOTS as u32) {
                        buffer.on_full();
                    }
                }
                if !grew {
                    // Nothing to evict: only a promotion to settle.
                    shard.order.after_reads();
                    return Ok(());
                }
            }
            None => {
                let expires = self.expire.on_write(&key, &value, now, None);
                let times = self.times_at(expires, now);
                shard.push(hash, key, value, weight, times, &self.hasher);
                shard.order.on_insert(tag(hash));
            }
        }
        shard.maintain(now, &self.hasher, sink);
        Ok(())
    }

    /// Inserts; an entry too heavy to hold comes back.
    pub(crate) fn insert(&self, hash: u64, key: K, value: V) -> Result<(), TooHeavy<K, V>> {
        self.write(self.slot(hash), |shard, now, sink| {
            self.insert_locked(shard, hash, key, value, now, sink)
        })
    }

    /// Inserts; an entry too heavy to hold goes to the listener as `Size`.
    pub(crate) fn insert_or_report(&self, hash: u64, key: K, value: V) {
        if let Err(e) = self.insert(hash, key, value) {
            self.reject(e);
        }
    }

    /// Reports an entry too heavy to hold to the listener, as `Size`.
    pub(crate) fn reject(&self, e: TooHeavy<K, V>) {
        if let Some(listener) = &self.listener {
            listener(e.key, e.value, RemovalCause::Size);
        }
    }

    pub(crate) fn remove<Q>(&self, hash: u64, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.write(self.slot(hash), |shard, now, sink| {
            self.supersede(hash, key, RemovalCause::Explicit);
            let i = shard.find(hash, key)?;
            if shard.is_expired(i, now) {
                shard.evict(i, RemovalCause::Expired, &self.hasher, sink);
                return None;
            }
            let (k, v, _) = shard.remove_index(i, &self.hasher);
            shard.order.counts.explicit += 1;
            if let Some(sink) = sink {
                sink.push((k, v.clone(), RemovalCause::Explicit));
            }
            Some(v)
        })
    }

    /// Takes `flight` out of its shard's table of loads, if a write has not
    /// already.
    pub(crate) fn leave(&self, hash: u64, flight: &Arc<Flight<V>>) {
        let slot = self.slot(hash);
        let mut flights = slot.flights.lock();
        if let Ok(entry) = flights.find_entry(hash, |p| Arc::ptr_eq(&p.flight, flight)) {
            entry.remove();
            slot.loading.fetch_sub(1, Ordering::Relaxed);
        }
    }
}
