//! Single-flight loading: the first caller to miss a key leads its load, the
//! others wait for the leader's outcome (blocking, or as a future that parks
//! no thread). A leader that panics, or whose future is dropped, abandons the
//! load: its waiters wake and one of them leads with its own loader, so a
//! failed leader poisons nothing.

use std::any::Any;
use std::cell::RefCell;
use std::future::Future;
use std::hash::{BuildHasher, Hash};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll, Waker};

use parking_lot::{Condvar, Mutex};

use crate::RemovalCause;
use crate::inner::{Hit, Inner};
use crate::stats::Counters;

/// A loader's error, shared by every waiter and told apart by its type.
pub(crate) type SharedError = Arc<dyn Any + Send + Sync>;

enum State<V> {
    Running(Vec<Option<Waker>>),
    Done(Result<V, SharedError>),
    Abandoned,
}

/// One load (or refresh) under way.
pub(crate) struct Flight<V> {
    state: Mutex<State<V>>,
    done: Condvar,
    /// Set when a write of the key (`Replaced`, or `Explicit` for a
    /// removal), or a caller's load of it, superseded the load: its value
    /// may be older than that write, so it goes to the callers and, as if
    /// cached and then overwritten, to the listener with this cause, but is
    /// not cached. Set under the shard's lock (and the table's), read by
    /// the load's leader under the shard's write lock.
    superseded: AtomicU8,
}

/// A load under way, in its shard's table of loads (until it ends or a
/// write supersedes it).
pub(crate) struct Pending<K, V> {
    pub(crate) key: K,
    pub(crate) flight: Arc<Flight<V>>,
    /// A refresh, not a caller's load: nobody waits for it (it may still
    /// be queued behind other jobs); a caller that misses the key
    /// supersedes it and loads for itself.
    pub(crate) refresh: bool,
}

thread_local! {
    /// The loads whose loaders this thread is running now (by flight
    /// address, innermost last): a blocking call, or the first poll of a
    /// future, on this thread that would wait for one of them would wait
    /// for itself.
    static LEADING: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

/// Marks a flight as led by this thread while its loader runs (or is
/// polled); the mark goes on drop, unwinding included.
pub(crate) struct Leading;

impl Leading {
    pub(crate) fn enter<V>(flight: &Arc<Flight<V>>) -> Leading {
        LEADING.with_borrow_mut(|l| l.push(Arc::as_ptr(flight) as usize));
        Leading
    }
}

impl Drop for Leading {
    fn drop(&mut self) {
        LEADING.with_borrow_mut(|l| l.pop());
    }
}

/// What a waiter learns.
pub(crate) enum Outcome<V> {
    Value(V),
    Error(SharedError),
    /// The leader gave up: load again.
    Abandoned,
}

impl<V: Clone> Flight<V> {
    pub(crate) fn new() -> Flight<V> {
        Flight {
            state: Mutex::new(State::Running(Vec::new())),
            done: Condvar::new(),
            superseded: AtomicU8::new(0),
        }
    }

    /// Whether this thread is running this flight's loader: waiting for it
    /// here would wait for itself (a loader asking for its own key).
    pub(crate) fn led_here(&self) -> bool {
        let me = std::ptr::from_ref(self) as usize;
        LEADING.with_borrow(|l| l.contains(&me))
    }

    /// A write of the key superseded this load (under the shard's write
    /// lock); the first cause stands.
    pub(crate) fn supersede(&self, cause: RemovalCause) {
        let code = match cause {
            RemovalCause::Replaced => 1,
            _ => 2,
        };
        let _ = self
            .superseded
            .compare_exchange(0, code, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// How a write superseded this load, if one did (read under the
    /// shard's write lock).
    pub(crate) fn superseded(&self) -> Option<RemovalCause> {
        match self.superseded.load(Ordering::Relaxed) {
            0 => None,
            1 => Some(RemovalCause::Replaced),
            _ => Some(RemovalCause::Explicit),
        }
    }

    /// Hands `value` to the waiters.
    pub(crate) fn succeed(&self, value: V) {
        self.settle(State::Done(Ok(value)));
    }

    /// Tells the waiters to load for themselves.
    pub(crate) fn abandon(&self) {
        self.settle(State::Abandoned);
    }

    fn settle(&self, end: State<V>) {
        let wakers = match std::mem::replace(&mut *self.state.lock(), end) {
            State::Running(wakers) => wakers,
            _ => Vec::new(),
        };
        self.done.notify_all();
        for waker in wakers.into_iter().flatten() {
            waker.wake();
        }
    }

    fn outcome(state: &State<V>) -> Option<Outcome<V>> {
        match state {
            State::Running(_) => None,
            State::Done(Ok(v)) => Some(Outcome::Value(v.clone())),
            State::Done(Err(e)) => Some(Outcome::Error(e.clone())),
            State::Abandoned => Some(Outcome::Abandoned),
        }
    }

    /// Blocks until the leader settles.
    pub(crate) fn wait(&self) -> Outcome<V> {
        let mut state = self.state.lock();
        loop {
            if let Some(outcome) = Self::outcome(&state) {
                return outcome;
            }
            self.done.wait(&mut state);
        }
    }
}

/// A future waiting for a flight; its waker sits in the flight's list at
/// `slot` and is taken out when the future is dropped.
pub(crate) struct WaitFlight<V: Clone> {
    pub(crate) flight: Arc<Flight<V>>,
    slot: Option<usize>,
}

impl<V: Clone> WaitFlight<V> {
    pub(crate) fn new(flight: Arc<Flight<V>>) -> WaitFlight<V> {
        WaitFlight { flight, slot: None }
    }
}

impl<V: Clone> Future for WaitFlight<V> {
    type Output = Outcome<V>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome<V>> {
        let this = self.get_mut();
        let mut state = this.flight.state.lock();
        if let Some(outcome) = Flight::outcome(&state) {
            return Poll::Ready(outcome);
        }
        if let State::Running(wakers) = &mut *state {
            match this.slot {
                Some(i) => match &mut wakers[i] {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    w => *w = Some(cx.waker().clone()),
                },
                None => {
                    wakers.push(Some(cx.waker().clone()));
                    this.slot = Some(wakers.len() - 1);
                }
            }
        }
        Poll::Pending
    }
}

impl<V: Clone> Drop for WaitFlight<V> {
    fn drop(&mut self) {
        if let Some(i) = self.slot
            && let State::Running(wakers) = &mut *self.flight.state.lock()
        {
            wakers[i] = None;
        }
    }
}

/// How a load starts for one caller.
pub(crate) enum Begin<'a, K, V, S>
where
    K: Hash + Eq + Clone,
    V: Clone,
    S: BuildHasher,
{
    Hit(Hit<K, V>),
    Lead(LoadGuard<'a, K, V, S>),
    Wait(Arc<Flight<V>>),
}

/// The leader's duty: settle the flight. Dropped unsettled (the loader
/// panicked, the future was dropped), it abandons the flight.
pub(crate) struct LoadGuard<'a, K, V, S>
where
    K: Hash + Eq + Clone,
    V: Clone,
    S: BuildHasher,
{
    inner: &'a Inner<K, V, S>,
    hash: u64,
    key: Option<K>,
    flight: Arc<Flight<V>>,
    start: quanta::Instant,
}

impl<K, V, S> Inner<K, V, S>
where
    K: Hash + Eq + Clone,
    V: Clone,
    S: BuildHasher,
{
    /// A hit, the lead of a new load, or a load to wait for. `count`: whether
    /// this is a caller's read (counted, and told to the policy) or a
    /// prefetch's look.
    pub(crate) fn begin(&self, hash: u64, key: &K, count: bool) -> Begin<'_, K, V, S> {
        let found = if count {
            self.read(hash, key)
        } else {
            self.peek(hash, key).map(|value| Hit {
                value,
                refresh: None,
            })
        };
        if let Some(hit) = found {
            return Begin::Hit(hit);
        }
        let slot = self.slot(hash);
        // Looked at again under the shard's read lock: a leader inserts its
        // value and leaves the table of loads under the write lock, so here
        // either the value is in or the load is in the table, and no key is
        // loaded twice for one miss.
        let now = self.now_if_timed();
        let parts = slot.read();
        if let Some(i) = parts.store.find(hash, key)
            && !parts.store.is_expired(i, now)
        {
            return Begin::Hit(Hit {
                value: parts.store.node(i).value.clone(),
                refresh: None,
            });
        }
        let mut flights = slot.flights.lock();
        if let Ok(entry) = flights.find_entry(hash, |p| p.key == *key) {
            if !entry.get().refresh {
                return Begin::Wait(entry.get().flight.clone());
            }
            // A refresh of an entry that has since gone: this caller loads,
            // rather than wait for a job that may sit behind others.
            let (p, _) = entry.remove();
            slot.loading.fetch_sub(1, Ordering::Relaxed);
            p.flight.supersede(RemovalCause::Replaced);
        }
        let flight = Arc::new(Flight::new());
        flights.insert_unique(
            hash,
            Pending {
                key: key.clone(),
                flight: flight.clone(),
                refresh: false,
            },
            |p| self.hasher.hash_one(&p.key),
        );
        slot.loading.fetch_add(1, Ordering::Relaxed);
        drop(flights);
        drop(parts);
        Begin::Lead(LoadGuard {
            inner: self,
            hash,
            key: Some(key.clone()),
            flight,
            start: self.clock.now(),
        })
    }

    /// Whether a load of `key` is under way.
    pub(crate) fn loading(&self, hash: u64, key: &K) -> bool {
        self.slot(hash)
            .flights
            .lock()
            .find(hash, |p| p.key == *key)
            .is_some()
    }
}

impl<K, V, S> LoadGuard<'_, K, V, S>
where
    K: Hash + Eq + Clone,
    V: Clone,
    S: BuildHasher,
{
    /// The flight this guard leads.
    pub(crate) fn flight(&self) -> &Arc<Flight<V>> {
        &self.flight
    }

    /// Settles the flight with the loader's result: a value is cached and
    /// handed to every waiter, an error is handed to every waiter.
    ///
    /// # Panics
    /// When a callback panics while the value is cached (a weigher, an
    /// expiry rule, the listener): the waiters get the value first.
    pub(crate) fn finish<E: Send + Sync + 'static>(
        mut self,
        result: Result<V, E>,
    ) -> Result<V, Arc<E>> {
        let inner = self.inner;
        let elapsed = inner.clock.now().saturating_duration_since(self.start);
        Counters::add(
            &inner.counters.load_nanos,
            u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX),
        );
        let Some(key) = self.key.take() else {
            unreachable!("a guard is finished once: finish consumes it")
        };
        let hash = self.hash;
        match result {
            Ok(value) => {
                Counters::add(&inner.counters.loads_ok, 1);
                // Leaving the table and inserting happen under one write
                // lock: a write of the key before this point superseded the
                // load, one after it replaces the loaded value.
                let flight = &self.flight;
                let cached = catch_unwind(AssertUnwindSafe(|| {
                    inner.write(inner.slot(hash), |shard, now, sink| {
                        inner.leave(hash, flight);
                        if let Some(cause) = flight.superseded() {
                            shard.order.counts.count(cause);
                            if let Some(sink) = sink {
                                sink.push((key, value.clone(), cause));
                            }
                            return Ok(());
                        }
                        inner.insert_locked(shard, hash, key, value.clone(), now, sink)
                    })
                }));
                // Whatever a callback did, the waiters get the value and
                // the load leaves the table.
                inner.leave(hash, flight);
                flight.succeed(value.clone());
                match cached {
                    Ok(Ok(())) => {}
                    Ok(Err(too_heavy)) => inner.reject(too_heavy),
                    Err(panic) => resume_unwind(panic),
                }
                Ok(value)
            }
            Err(e) => {
                Counters::add(&inner.counters.loads_failed, 1);
                let e = Arc::new(e);
                inner.leave(hash, &self.flight);
                self.flight.settle(State::Done(Err(e.clone())));
                Err(e)
            }
        }
    }
}

impl<K, V, S> Drop for LoadGuard<'_, K, V, S>
where
    K: Hash + Eq + Clone,
    V: Clone,
    S: BuildHasher,
{
    fn drop(&mut self) {
        if self.key.is_some() {
            Counters::add(&self.inner.counters.loads_failed, 1);
            self.inner.leave(self.hash, &self.flight);
            self.flight.abandon();
        }
    }
}
