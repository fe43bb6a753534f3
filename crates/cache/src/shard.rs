//! One shard, in two parts:
//!
//! - [`Store`]: a dense slab of entries and an index table from key hash to
//!   slab position, plus each entry's times when the cache expires or
//!   refreshes. A hit needs only this.
//! - [`Order`]: the policy's view of the same positions, three queues
//!   (window, probation, protected) as doubly linked lists of `u32`
//!   positions, the frequency sketch, and the counters.
//!
//! Both sit in [`Parts`] under the shard's one readers-writer lock: a hit
//! takes it shared and reads only the store; a change to the entries (and
//! the replay of hits into the order) takes it exclusively, through a
//! [`Shard`]. Removal keeps the slab dense: the last entry moves into the
//! freed position, its table slot and its neighbours' links follow.

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicU64, Ordering};

use hashbrown::HashTable;

use crate::RemovalCause;
use crate::policy::Policy;

/// No position: the end of a list.
pub(crate) const NIL: u32 = u32::MAX;
/// An expiry time that never comes.
pub(crate) const NEVER: u64 = u64::MAX;
/// The top bit of an entry's refresh time: a refresh is under way.
pub(crate) const REFRESHING: u64 = 1 << 63;

/// The policy's 32-bit view of a key hash (its high half; the low half picks
/// table slots).
#[inline]
pub(crate) fn tag(hash: u64) -> u32 {
    (hash >> 32) as u32
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Queue {
    Window = 0,
    Probation = 1,
    Protected = 2,
}

pub(crate) struct Entry<K, V> {
    pub(crate) key: K,
    pub(crate) value: V,
}

/// The times of one entry, in nanoseconds of the cache's clock since its
/// epoch; atomics, because a read under the shared lock moves an idle
/// deadline on and claims a refresh.
#[derive(Debug)]
pub(crate) struct Times {
    pub(crate) expires: AtomicU64,
    pub(crate) written: AtomicU64,
}

/// The times an entry is written with: its deadline, its write time and
/// when it is due for refresh ([`NEVER`] for what the cache does not use).
#[derive(Clone, Copy, Debug)]
pub(crate) struct EntryTimes {
    pub(crate) expires: u64,
    pub(crate) written: u64,
    pub(crate) due: u64,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Link {
    pub(crate) prev: u32,
    pub(crate) next: u32,
    pub(crate) weight: u32,
    pub(crate) queue: Queue,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct List {
    pub(crate) head: u32,
    pub(crate) tail: u32,
    pub(crate) weight: u64,
}

/// Entries removed under the locks, handed to the eviction listener after
/// they are released; `None` where there is no listener.
pub(crate) type Sink<'a, K, V> = Option<&'a mut Vec<(K, V, RemovalCause)>>;

/// Counters kept under the order lock.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Counts {
    pub(crate) hits_locked: u64,
    pub(crate) evicted_size: u64,
    pub(crate) expired: u64,
    pub(crate) explicit: u64,
    pub(crate) replaced: u64,
    pub(crate) rejected: u64,
}

impl Counts {
    /// Counts a removal for `cause`.
    pub(crate) fn count(&mut self, cause: RemovalCause) {
        match cause {
            RemovalCause::Size => self.evicted_size += 1,
            RemovalCause::Expired => self.expired += 1,
            RemovalCause::Explicit => self.explicit += 1,
            RemovalCause::Replaced => self.replaced += 1,
        }
    }
}

pub(crate) struct Store<K, V> {
    nodes: Vec<Entry<K, V>>,
    times: Vec<Times>,
    timed: bool,
    /// When each entry is due for refresh (nanoseconds, as `Times`), with
    /// [`REFRESHING`] set while a claimed refresh runs; only when the cache
    /// refreshes. Apart from `Times::written`, so that a failed refresh can
    /// put the next one off without moving the write time a time to live
    /// counts from.
    dues: Vec<AtomicU64>,
    refreshing: bool,
    table: HashTable<u32>,
}

impl<K, V> Store<K, V> {
    pub(crate) fn new(room: usize, timed: bool, refreshing: bool) -> Store<K, V> {
        Store {
            nodes: Vec::with_capacity(room),
            times: Vec::with_capacity(if timed { room } else { 0 }),
            timed,
            dues: Vec::with_capacity(if refreshing { room } else { 0 }),
            refreshing,
            table: HashTable::with_capacity(room),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.nodes.len()
    }

    #[inline]
    pub(crate) fn find<Q>(&self, hash: u64, key: &Q) -> Option<u32>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let nodes = &self.nodes;
        self.table
            .find(hash, |&i| nodes[i as usize].key.borrow() == key)
            .copied()
    }

    #[inline]
    pub(crate) fn node(&self, i: u32) -> &Entry<K, V> {
        &self.nodes[i as usize]
    }

    #[inline]
    pub(crate) fn times(&self, i: u32) -> Option<&Times> {
        self.times.get(i as usize)
    }

    /// Entry `i`'s refresh time, when the cache refreshes.
    #[inline]
    pub(crate) fn due(&self, i: u32) -> Option<&AtomicU64> {
        self.dues.get(i as usize)
    }

    pub(crate) fn is_expired(&self, i: u32, now: u64) -> bool {
        self.times(i)
            .is_some_and(|t| t.expires.load(Ordering::Relaxed) <= now)
    }
}

/// The policy's side of a shard.
pub(crate) struct Order {
    pub(crate) links: Vec<Link>,
    pub(crate) lists: [List; 3],
    pub(crate) policy: Policy,
    /// Whether an entry came or went during the current write.
    pub(crate) wrote: bool,
    /// The read buffer's position at the last replay.
    pub(crate) seen_position: u64,
    /// Updates of present entries that the policy counted.
    pub(crate) updates: u32,
    /// Where the expiry sweep goes on.
    sweep: usize,
    pub(crate) counts: Counts,
}

impl Order {
    pub(crate) fn new(max_weight: u64, room: usize) -> Order {
        Order {
            links: Vec::with_capacity(room),
            lists: [List {
                head: NIL,
                tail: NIL,
                weight: 0,
            }; 3],
            policy: Policy::new(max_weight, room),
            wrote: false,
            seen_position: 0,
            updates: 0,
            sweep: 0,
            counts: Counts::default(),
        }
    }

    pub(crate) fn weight(&self) -> u64 {
        self.lists.iter().map(|l| l.weight).sum()
    }

    pub(crate) fn link_tail(&mut self, i: u32, q: Queue) {
        let list = &mut self.lists[q as usize];
        let old_tail = list.tail;
        list.tail = i;
        if old_tail == NIL {
            list.head = i;
        }
        let link = &mut self.links[i as usize];
        link.prev = old_tail;
        link.next = NIL;
        link.queue = q;
        list.weight += u64::from(link.weight);
        if old_tail != NIL {
            self.links[old_tail as usize].next = i;
        }
    }

    pub(crate) fn unlink(&mut self, i: u32) {
        let Link {
            prev,
            next,
            queue,
            weight,
        } = self.links[i as usize];
        let list = &mut self.lists[queue as usize];
        list.weight -= u64::from(weight);
        if prev == NIL {
            list.head = next;
        } else {
            self.links[prev as usize].next = next;
        }
        if next == NIL {
            list.tail = prev;
        } else {
            self.links[next as usize].prev = prev;
        }
    }

    pub(crate) fn move_tail(&mut self, i: u32, q: Queue) {
        let link = &self.links[i as usize];
        if link.queue == q && link.next == NIL {
            return;
        }
        self.unlink(i);
        self.link_tail(i, q);
    }
}

/// A shard's two parts, under its lock.
pub(crate) struct Parts<K, V> {
    pub(crate) store: Store<K, V>,
    pub(crate) order: Order,
}

/// Both parts of a shard, locked, for a change to its entries.
pub(crate) struct Shard<'a, K, V> {
    pub(crate) store: &'a mut Store<K, V>,
    pub(crate) order: &'a mut Order,
}

impl<K: Hash + Eq, V> Shard<'_, K, V> {
    pub(crate) fn len(&self) -> usize {
        self.store.len()
    }

    #[inline]
    pub(crate) fn find<Q>(&self, hash: u64, key: &Q) -> Option<u32>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.store.find(hash, key)
    }

    #[inline]
    pub(crate) fn node(&self, i: u32) -> &Entry<K, V> {
        self.store.node(i)
    }

    #[inline]
    pub(crate) fn times(&self, i: u32) -> Option<&Times> {
        self.store.times(i)
    }

    pub(crate) fn is_expired(&self, i: u32, now: u64) -> bool {
        self.store.is_expired(i, now)
    }

    pub(crate) fn max_weight(&self) -> u64 {
        self.order.policy.max_weight
    }

    /// Sets entry `i`'s deadline, write time and refresh time (which ends
    /// a refresh claim).
    pub(crate) fn set_times(&mut self, i: u32, times: EntryTimes) {
        if let Some(t) = self.store.times.get_mut(i as usize) {
            *t.expires.get_mut() = times.expires;
            *t.written.get_mut() = times.written;
        }
        if let Some(d) = self.store.dues.get_mut(i as usize) {
            *d.get_mut() = times.due;
        }
    }

    /// Appends a new entry to the window (the caller checked it is absent
    /// and fits); returns its position.
    pub(crate) fn push<S: BuildHasher>(
        &mut self,
        hash: u64,
        key: K,
        value: V,
        weight: u32,
        times: EntryTimes,
        hasher: &S,
    ) -> u32 {
        let store = &mut *self.store;
        let i = store.nodes.len() as u32;
        store.nodes.push(Entry { key, value });
        if store.timed {
            store.times.push(Times {
                expires: AtomicU64::new(times.expires),
                written: AtomicU64::new(times.written),
            });
        }
        if store.refreshing {
            store.dues.push(AtomicU64::new(times.due));
        }
        let nodes = &store.nodes;
        store
            .table
            .insert_unique(hash, i, |&x| hasher.hash_one(&nodes[x as usize].key));
        self.order.links.push(Link {
            prev: NIL,
            next: NIL,
            weight,
            queue: Queue::Window,
        });
        self.order.link_tail(i, Queue::Window);
        self.order.wrote = true;
        i
    }

    /// Replaces the value (and weight) of entry `i`; returns the old value.
    pub(crate) fn replace(&mut self, i: u32, value: V, weight: u32) -> V {
        let link = &mut self.order.links[i as usize];
        let list = &mut self.order.lists[link.queue as usize];
        list.weight = list.weight - u64::from(link.weight) + u64::from(weight);
        link.weight = weight;
        std::mem::replace(&mut self.store.nodes[i as usize].value, value)
    }

    /// Removes entry `i`. The last entry moves into position `i`: the
    /// returned position is where it was (equal to `i` when `i` was last).
    pub(crate) fn remove_index<S: BuildHasher>(&mut self, i: u32, hasher: &S) -> (K, V, u32) {
        let store = &mut *self.store;
        let order = &mut *self.order;
        // The table is found again by the key's hash. A key whose `Hash`
        // disagrees with the one it was inserted with is looked for in the
        // whole table instead (a user's bug costs time, never a stale
        // position in the table).
        let hash = hasher.hash_one(&store.nodes[i as usize].key);
        match store.table.find_entry(hash, |&x| x == i) {
            Ok(entry) => {
                entry.remove();
            }
            Err(_) => store.table.retain(|&mut x| x != i),
        }
        order.unlink(i);
        order.wrote = true;
        let last = (store.nodes.len() - 1) as u32;
        if i != last {
            let moved_hash = hasher.hash_one(&store.nodes[last as usize].key);
            match store.table.find_mut(moved_hash, |&x| x == last) {
                Some(slot) => *slot = i,
                None => {
                    if let Some(slot) = store.table.iter_mut().find(|x| **x == last) {
                        *slot = i;
                    }
                }
            }
            let Link {
                prev, next, queue, ..
            } = order.links[last as usize];
            if prev == NIL {
                order.lists[queue as usize].head = i;
            } else {
                order.links[prev as usize].next = i;
            }
            if next == NIL {
                order.lists[queue as usize].tail = i;
            } else {
                order.links[next as usize].prev = i;
            }
        }
        let entry = store.nodes.swap_remove(i as usize);
        order.links.swap_remove(i as usize);
        if store.timed {
            store.times.swap_remove(i as usize);
        }
        if store.refreshing {
            store.dues.swap_remove(i as usize);
        }
        if order.sweep > store.nodes.len() {
            order.sweep = 0;
        }
        (entry.key, entry.value, last)
    }

    /// Removes entry `i` for `cause`, counting it and handing it to the sink.
    pub(crate) fn evict<S: BuildHasher>(
        &mut self,
        i: u32,
        cause: RemovalCause,
        hasher: &S,
        sink: &mut Sink<'_, K, V>,
    ) -> u32 {
        let (key, value, moved_from) = self.remove_index(i, hasher);
        self.order.counts.count(cause);
        if let Some(sink) = sink {
            sink.push((key, value, cause));
        }
        moved_from
    }

    /// Removes every entry for which `remove` gives a cause; returns how many.
    pub(crate) fn remove_where<S: BuildHasher>(
        &mut self,
        mut remove: impl FnMut(&K, &V, bool) -> Option<RemovalCause>,
        now: u64,
        hasher: &S,
        sink: &mut Sink<'_, K, V>,
    ) -> usize {
        let mut removed = 0;
        // From the end: the entry that moves into a freed position was
        // already looked at.
        for i in (0..self.len() as u32).rev() {
            let expired = self.is_expired(i, now);
            let node = self.node(i);
            if let Some(cause) = remove(&node.key, &node.value, expired) {
                self.evict(i, cause, hasher, sink);
                removed += 1;
            }
        }
        removed
    }

    /// Looks at `steps` entries from where the last sweep stopped and removes
    /// the expired ones: a pass over the shard takes `len / steps` writes,
    /// and an expired entry is found within two passes (a removal may move
    /// it behind the cursor), with no thread and no timer.
    pub(crate) fn sweep<S: BuildHasher>(
        &mut self,
        steps: usize,
        now: u64,
        hasher: &S,
        sink: &mut Sink<'_, K, V>,
    ) {
        if !self.store.timed {
            return;
        }
        for _ in 0..steps {
            if self.len() == 0 {
                return;
            }
            if self.order.sweep >= self.len() {
                self.order.sweep = 0;
            }
            let i = self.order.sweep as u32;
            if self.is_expired(i, now) {
                // The last entry moved into `i`: look at it next.
                self.evict(i, RemovalCause::Expired, hasher, sink);
            } else {
                self.order.sweep += 1;
            }
        }
    }
}

impl<K, V> std::fmt::Debug for Store<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("len", &self.nodes.len())
            .finish()
    }
}

impl std::fmt::Debug for Order {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Order").field("lists", &self.lists).finish()
    }
}
