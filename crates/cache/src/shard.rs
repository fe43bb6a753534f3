//! One shard's entries: a dense slab of nodes, an index table from key hash to
//! slab position, and the three queues of the policy (window, probation,
//! protected) as doubly linked lists threaded through the slab by `u32`
//! positions. `policy.rs` makes the W-TinyLFU decisions on top of this.
//!
//! Removal keeps the slab dense: the last node moves into the freed position
//! (its table entry and its neighbours' links follow), so a node costs its
//! key, its value and 16 bytes, and there is no free list to walk.

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicU64, Ordering};

use hashbrown::HashTable;

use crate::RemovalCause;
use crate::policy::Policy;

/// No node: the end of a list.
pub(crate) const NIL: u32 = u32::MAX;
/// An expiry time that never comes.
pub(crate) const NEVER: u64 = u64::MAX;
/// The top bit of `Times::written`: a refresh of the entry is under way.
pub(crate) const REFRESHING: u64 = 1 << 63;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Queue {
    Window = 0,
    Probation = 1,
    Protected = 2,
}

pub(crate) struct Node<K, V> {
    pub(crate) key: K,
    pub(crate) value: V,
    pub(crate) prev: u32,
    pub(crate) next: u32,
    pub(crate) weight: u32,
    pub(crate) queue: Queue,
}

/// The times of one entry, in nanoseconds of the cache's clock since its
/// epoch. Kept beside the slab, and only when the cache expires or refreshes
/// entries, so that a cache without either pays nothing for them. Atomics,
/// because a read under the shared lock moves an idle deadline on and claims a
/// refresh.
#[derive(Debug)]
pub(crate) struct Times {
    pub(crate) expires: AtomicU64,
    pub(crate) written: AtomicU64,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct List {
    pub(crate) head: u32,
    pub(crate) tail: u32,
    pub(crate) weight: u64,
}

/// Entries removed under the lock, handed to the eviction listener after it
/// is released. `None` where there is no listener: removed entries are
/// dropped at once.
pub(crate) type Sink<'a, K, V> = Option<&'a mut Vec<(K, V, RemovalCause)>>;

/// Counters kept under the shard's write lock.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Counts {
    pub(crate) hits_locked: u64,
    pub(crate) evicted_size: u64,
    pub(crate) expired: u64,
    pub(crate) explicit: u64,
    pub(crate) replaced: u64,
    pub(crate) rejected: u64,
}

pub(crate) struct Shard<K, V> {
    pub(crate) nodes: Vec<Node<K, V>>,
    pub(crate) times: Vec<Times>,
    timed: bool,
    table: HashTable<u32>,
    pub(crate) lists: [List; 3],
    pub(crate) policy: Policy,
    /// The read buffer's position replayed so far.
    pub(crate) drained: u64,
    /// Where the expiry sweep goes on.
    sweep: usize,
    pub(crate) counts: Counts,
}

impl<K: Hash + Eq, V> Shard<K, V> {
    pub(crate) fn new(max_weight: u64, timed: bool, preallocate: bool) -> Shard<K, V> {
        let room = if preallocate {
            usize::try_from(max_weight)
                .unwrap_or(usize::MAX)
                .min(1 << 20)
        } else {
            0
        };
        Shard {
            nodes: Vec::with_capacity(room),
            times: Vec::with_capacity(if timed { room } else { 0 }),
            timed,
            table: HashTable::with_capacity(room),
            lists: [List {
                head: NIL,
                tail: NIL,
                weight: 0,
            }; 3],
            policy: Policy::new(max_weight),
            drained: 0,
            sweep: 0,
            counts: Counts::default(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.nodes.len()
    }

    pub(crate) fn weight(&self) -> u64 {
        self.lists.iter().map(|l| l.weight).sum()
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
    pub(crate) fn node(&self, i: u32) -> &Node<K, V> {
        &self.nodes[i as usize]
    }

    #[inline]
    pub(crate) fn times(&self, i: u32) -> Option<&Times> {
        self.times.get(i as usize)
    }

    pub(crate) fn is_expired(&self, i: u32, now: u64) -> bool {
        self.times(i)
            .is_some_and(|t| t.expires.load(Ordering::Relaxed) <= now)
    }

    pub(crate) fn set_times(&mut self, i: u32, expires: u64, written: u64) {
        if let Some(t) = self.times.get_mut(i as usize) {
            *t.expires.get_mut() = expires;
            *t.written.get_mut() = written;
        }
    }

    // ---- lists -------------------------------------------------------------

    pub(crate) fn link_tail(&mut self, i: u32, q: Queue) {
        let list = &mut self.lists[q as usize];
        let old_tail = list.tail;
        list.tail = i;
        if old_tail == NIL {
            list.head = i;
        }
        let node = &mut self.nodes[i as usize];
        node.prev = old_tail;
        node.next = NIL;
        node.queue = q;
        list.weight += u64::from(node.weight);
        if old_tail != NIL {
            self.nodes[old_tail as usize].next = i;
        }
    }

    pub(crate) fn unlink(&mut self, i: u32) {
        let Node {
            prev,
            next,
            queue,
            weight,
            ..
        } = self.nodes[i as usize];
        let list = &mut self.lists[queue as usize];
        list.weight -= u64::from(weight);
        if prev == NIL {
            list.head = next;
        } else {
            self.nodes[prev as usize].next = next;
        }
        if next == NIL {
            list.tail = prev;
        } else {
            self.nodes[next as usize].prev = prev;
        }
    }

    pub(crate) fn move_tail(&mut self, i: u32, q: Queue) {
        let node = &self.nodes[i as usize];
        if node.queue == q && node.next == NIL {
            return;
        }
        self.unlink(i);
        self.link_tail(i, q);
    }

    // ---- insert and remove -------------------------------------------------

    /// Appends a new entry to the window (the caller checked it is absent
    /// and fits); returns its position.
    pub(crate) fn push<S: BuildHasher>(
        &mut self,
        hash: u64,
        key: K,
        value: V,
        weight: u32,
        times: (u64, u64),
        hasher: &S,
    ) -> u32 {
        let i = self.nodes.len() as u32;
        self.nodes.push(Node {
            key,
            value,
            prev: NIL,
            next: NIL,
            weight,
            queue: Queue::Window,
        });
        if self.timed {
            self.times.push(Times {
                expires: AtomicU64::new(times.0),
                written: AtomicU64::new(times.1),
            });
        }
        let nodes = &self.nodes;
        self.table
            .insert_unique(hash, i, |&x| hasher.hash_one(&nodes[x as usize].key));
        self.link_tail(i, Queue::Window);
        i
    }

    /// Replaces the value (and weight) of entry `i`; returns the old value.
    pub(crate) fn replace(&mut self, i: u32, value: V, weight: u32) -> V {
        let node = &mut self.nodes[i as usize];
        let list = &mut self.lists[node.queue as usize];
        list.weight = list.weight - u64::from(node.weight) + u64::from(weight);
        node.weight = weight;
        std::mem::replace(&mut node.value, value)
    }

    /// Removes entry `i`. The last node moves into position `i`: the returned
    /// position is where it was (equal to `i` when `i` was the last).
    pub(crate) fn remove_index<S: BuildHasher>(&mut self, i: u32, hasher: &S) -> (K, V, u32) {
        let hash = hasher.hash_one(&self.nodes[i as usize].key);
        if let Ok(entry) = self.table.find_entry(hash, |&x| x == i) {
            entry.remove();
        }
        self.unlink(i);
        let last = (self.nodes.len() - 1) as u32;
        if i != last {
            let moved = &self.nodes[last as usize];
            let moved_hash = hasher.hash_one(&moved.key);
            if let Some(slot) = self.table.find_mut(moved_hash, |&x| x == last) {
                *slot = i;
            }
            let (prev, next, q) = (moved.prev, moved.next, moved.queue as usize);
            if prev == NIL {
                self.lists[q].head = i;
            } else {
                self.nodes[prev as usize].next = i;
            }
            if next == NIL {
                self.lists[q].tail = i;
            } else {
                self.nodes[next as usize].prev = i;
            }
        }
        let node = self.nodes.swap_remove(i as usize);
        if self.timed {
            self.times.swap_remove(i as usize);
        }
        if self.sweep > self.nodes.len() {
            self.sweep = 0;
        }
        (node.key, node.value, last)
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
        match cause {
            RemovalCause::Size => self.counts.evicted_size += 1,
            RemovalCause::Expired => self.counts.expired += 1,
            RemovalCause::Explicit => self.counts.explicit += 1,
            RemovalCause::Replaced => self.counts.replaced += 1,
        }
        if let Some(sink) = sink {
            sink.push((key, value, cause));
        }
        moved_from
    }

    /// Removes every entry for which `remove` says so; returns how many.
    pub(crate) fn remove_where<S: BuildHasher>(
        &mut self,
        mut remove: impl FnMut(&K, &V, bool) -> Option<RemovalCause>,
        now: u64,
        hasher: &S,
        sink: &mut Sink<'_, K, V>,
    ) -> usize {
        let mut removed = 0;
        // From the end: the node that moves into a freed position was
        // already looked at.
        for i in (0..self.nodes.len() as u32).rev() {
            let node = &self.nodes[i as usize];
            let expired = self.is_expired(i, now);
            if let Some(cause) = remove(&node.key, &node.value, expired) {
                self.evict(i, cause, hasher, sink);
                removed += 1;
            }
        }
        removed
    }

    /// Looks at `steps` entries from where the last sweep stopped and removes
    /// the expired ones: every expired entry is found within `len / steps`
    /// writes, with no thread and no timer.
    pub(crate) fn sweep<S: BuildHasher>(
        &mut self,
        steps: usize,
        now: u64,
        hasher: &S,
        sink: &mut Sink<'_, K, V>,
    ) {
        if !self.timed {
            return;
        }
        for _ in 0..steps {
            if self.nodes.is_empty() {
                return;
            }
            if self.sweep >= self.nodes.len() {
                self.sweep = 0;
            }
            let i = self.sweep as u32;
            if self.is_expired(i, now) {
                // The last node moved into `i`: look at it next.
                self.evict(i, RemovalCause::Expired, hasher, sink);
            } else {
                self.sweep += 1;
            }
        }
    }
}

impl<K, V> std::fmt::Debug for Shard<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shard")
            .field("len", &self.nodes.len())
            .field("lists", &self.lists)
            .finish()
    }
}
