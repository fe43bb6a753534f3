//! Background loads on the cache's executor: refresh-ahead (a read found its
//! entry due and claimed the reload) and prefetch. Both run through the
//! table of loads, so a write of the key while they run supersedes them, as
//! it does a caller's load.

use std::hash::{BuildHasher, Hash};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use prodkit_pool::Pool;

use crate::inner::Inner;
use crate::load::{Begin, Flight, Leading, Pending};
use crate::shard::{NEVER, REFRESHING};
use crate::stats::Counters;
use crate::{RemovalCause, TooHeavy};

/// When a released refresh claim lets the next refresh come.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Next {
    NextRead,
    Interval,
}

impl<K, V, S> Inner<K, V, S>
where
    K: Hash + Eq + Clone,
    V: Clone,
    S: BuildHasher,
{
    /// Ends a refresh (its load already out of the table): the new value
    /// replaces the old one unless a write of the key superseded the
    /// refresh (then it goes to the listener as overwritten, as a
    /// superseded load's does) or the entry has gone; a failed reload puts
    /// the next refresh off by a refresh interval. A new value too heavy to
    /// hold comes back (the old one is removed).
    pub(crate) fn refreshed(
        &self,
        hash: u64,
        key: K,
        value: Option<V>,
        stale: impl FnOnce() -> Option<RemovalCause>,
    ) -> Result<(), TooHeavy<K, V>> {
        self.write(self.slot(hash), |shard, now, sink| {
            let stale = stale();
            let found = shard
                .find(hash, &key)
                .filter(|&i| !shard.is_expired(i, now));
            if stale.is_some()
                && let Some(d) = found.and_then(|i| shard.store.due(i))
            {
                // Superseded while its entry stayed: give the claim back, or
                // the entry would never be refreshed again.
                d.fetch_and(!REFRESHING, Ordering::Relaxed);
            }
            match (value, stale, found) {
                (Some(value), Some(cause), _) => {
                    shard.order.counts.count(cause);
                    if let Some(sink) = sink {
                        sink.push((key, value, cause));
                    }
                }
                (Some(value), None, Some(i)) => {
                    let previous = shard.times(i).map(|t| t.expires.load(Ordering::Relaxed));
                    let weight = self.weigh(&key, &value);
                    let limit = shard.max_weight();
                    if u64::from(weight) > limit {
                        shard.evict(i, RemovalCause::Replaced, &self.hasher, sink);
                        shard.order.counts.rejected += 1;
                        return Err(TooHeavy {
                            key,
                            value,
                            weight,
                            limit,
                        });
                    }
                    let expires = self.expire.on_write(&key, &value, now, previous);
                    let old = shard.replace(i, value, weight);
                    shard.set_times(i, self.times_at(expires, now));
                    shard.order.counts.replaced += 1;
                    if let Some(sink) = sink {
                        sink.push((key, old, RemovalCause::Replaced));
                    }
                    shard.maintain(now, &self.hasher, sink);
                }
                (None, None, Some(i)) => {
                    if let Some(d) = shard.store.due(i) {
                        let next = self.refresh_after.map_or(NEVER, |a| now.saturating_add(a));
                        d.store(next, Ordering::Relaxed);
                    }
                }
                // Superseded, or gone: nothing to keep.
                (None, _, _) | (Some(_), None, None) => {}
            }
            Ok(())
        })
    }

    /// Gives up a refresh claim: the next refresh is due at `next` (the
    /// next read, for a refresh the executor had no room for; a refresh
    /// interval on, for one whose job failed).
    pub(crate) fn release_refresh(&self, hash: u64, key: &K, next: Next) {
        let parts = self.slot(hash).read();
        let shard = &parts.store;
        if let Some(d) = shard.find(hash, key).and_then(|i| shard.due(i)) {
            let due = d.load(Ordering::Relaxed);
            if due & REFRESHING != 0 {
                let next = match next {
                    Next::NextRead => due & !REFRESHING,
                    Next::Interval => {
                        let now = self.now();
                        self.refresh_after.map_or(NEVER, |a| now.saturating_add(a))
                    }
                };
                // A write in between set a new time, which stands.
                let _ = d.compare_exchange(due, next, Ordering::Relaxed, Ordering::Relaxed);
            }
        }
    }

    /// Registers a claimed refresh of `key` as a load under way, so that a
    /// write of the key meanwhile supersedes it; `None` when the claim is
    /// void (the entry was written or removed since) or a load of the key
    /// is already under way (the claim is then released).
    pub(crate) fn begin_refresh(&self, hash: u64, key: &K) -> Option<Arc<Flight<V>>> {
        let slot = self.slot(hash);
        let parts = slot.read();
        let i = parts.store.find(hash, key)?;
        let d = parts.store.due(i)?;
        if d.load(Ordering::Relaxed) & REFRESHING == 0 {
            return None;
        }
        let mut flights = slot.flights.lock();
        if flights.find(hash, |p| p.key == *key).is_some() {
            d.fetch_and(!REFRESHING, Ordering::Relaxed);
            return None;
        }
        let flight = Arc::new(Flight::new());
        flights.insert_unique(
            hash,
            Pending {
                key: key.clone(),
                flight: flight.clone(),
                refresh: true,
            },
            |p| self.hasher.hash_one(&p.key),
        );
        slot.loading.fetch_add(1, Ordering::Relaxed);
        Some(flight)
    }
}

/// Schedules the refresh a read claimed: registers it as a load of the key,
/// then queues it. A full queue drops it (counted) and the next read claims
/// it again.
pub(crate) fn schedule_refresh<K, V, S>(inner: &Arc<Inner<K, V, S>>, pool: Option<&Pool>, key: K)
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher + Send + Sync + 'static,
{
    let hash = inner.hash(&key);
    let Some(pool) = pool else {
        inner.release_refresh(hash, &key, Next::NextRead);
        return;
    };
    let Some(flight) = inner.begin_refresh(hash, &key) else {
        return;
    };
    let ticket = Refresh {
        inner: inner.clone(),
        hash,
        key: Some(key),
        flight,
    };
    match pool.try_execute(move || ticket.run()) {
        Ok(()) => Counters::add(&inner.counters.refreshes, 1),
        // The job comes back: dropped, its ticket gives the refresh up, and
        // only then is the drop counted.
        Err(job) => {
            drop(job);
            Counters::add(&inner.counters.refreshes_dropped, 1);
        }
    }
}

/// A refresh registered as a load and claimed on its entry. Dropped without
/// running (a full queue, an executor shut down with the cache), it gives
/// both up: the load leaves the table, its waiters load for themselves, and
/// the next read claims the refresh again.
struct Refresh<K, V, S>
where
    K: Hash + Eq + Clone,
    V: Clone,
    S: BuildHasher,
{
    inner: Arc<Inner<K, V, S>>,
    hash: u64,
    key: Option<K>,
    flight: Arc<Flight<V>>,
}

impl<K, V, S> Refresh<K, V, S>
where
    K: Hash + Eq + Clone,
    V: Clone,
    S: BuildHasher,
{
    /// Reloads the key. A value replaces the entry's unless a write
    /// superseded the refresh; a failed reload (an error or a panic), or a
    /// callback that panics while the value is stored, keeps the old value,
    /// counts a failed refresh and puts the next one off by an interval.
    fn run(mut self) {
        let inner = Arc::clone(&self.inner);
        // Without a loader (never, with an executor), the drop gives up.
        let Some(loader) = &inner.loader else { return };
        let Some(key) = self.key.take() else { return };
        let (hash, flight) = (self.hash, &self.flight);
        if flight.superseded().is_some() {
            // A caller's load or a write took over while this job waited:
            // nothing to reload.
            inner.leave(hash, flight);
            flight.abandon();
            return;
        }
        let start = inner.clock.now();
        let result = catch_unwind(AssertUnwindSafe(|| {
            let _leading = Leading::enter(flight);
            loader(&key)
        }));
        let elapsed = inner.clock.now().saturating_duration_since(start);
        Counters::add(
            &inner.counters.load_nanos,
            u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX),
        );
        let superseded = || {
            inner.leave(hash, flight);
            flight.superseded()
        };
        match result {
            Ok(Ok(value)) => {
                Counters::add(&inner.counters.loads_ok, 1);
                let stored = catch_unwind(AssertUnwindSafe(|| {
                    inner.refreshed(hash, key.clone(), Some(value.clone()), superseded)
                }));
                inner.leave(hash, flight);
                flight.succeed(value);
                match stored {
                    Ok(Ok(())) => {}
                    Ok(Err(too_heavy)) => inner.reject(too_heavy),
                    Err(_) => {
                        // The claim is given back before the failure is
                        // counted: whoever sees the count sees the claim free.
                        inner.release_refresh(hash, &key, Next::Interval);
                        Counters::add(&inner.counters.refreshes_failed, 1);
                    }
                }
            }
            _ => {
                let kept = catch_unwind(AssertUnwindSafe(|| {
                    inner.refreshed(hash, key.clone(), None, superseded)
                }));
                if kept.is_err() {
                    inner.release_refresh(hash, &key, Next::Interval);
                }
                inner.leave(hash, flight);
                flight.abandon();
                // Counted once the claim is given back (as above).
                Counters::add(&inner.counters.loads_failed, 1);
                Counters::add(&inner.counters.refreshes_failed, 1);
            }
        }
    }
}

impl<K, V, S> Drop for Refresh<K, V, S>
where
    K: Hash + Eq + Clone,
    V: Clone,
    S: BuildHasher,
{
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.inner.leave(self.hash, &self.flight);
            self.flight.abandon();
            self.inner.release_refresh(self.hash, &key, Next::NextRead);
        }
    }
}

/// A prefetch job: loads `key` through the table of loads unless it is
/// cached or already loading.
pub(crate) fn load_now<K, V, S>(inner: &Inner<K, V, S>, hash: u64, key: K)
where
    K: Hash + Eq + Clone,
    V: Clone,
    S: BuildHasher,
{
    let Some(loader) = &inner.loader else { return };
    if let Begin::Lead(guard) = inner.begin(hash, &key, false) {
        // A panic drops the guard unsettled: the load is abandoned and
        // counted as failed; the pool's worker goes on.
        let result = catch_unwind(AssertUnwindSafe(|| {
            let _leading = Leading::enter(guard.flight());
            loader(&key)
        }));
        if let Ok(result) = result {
            let _ = catch_unwind(AssertUnwindSafe(|| guard.finish(result)));
        }
    }
}
