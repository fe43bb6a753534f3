//! The keys of one shard: an open-addressing table of 16-byte slots
//! `(key hash, tat)` with linear probing and a cap on its keys, plus a tree of
//! lower bounds on the `tat`s that finds an idle key, or the key owing the least
//! time, in amortized O(1).

/// A slot; `hash == EMPTY` marks a free one.
#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    hash: u64,
    tat: u64,
}

/// The hash value that marks a free slot; keys hashing to it are stored as 1.
pub(crate) const EMPTY: u64 = 0;

/// Bounds cover blocks of `1 << FANOUT_BITS` children.
const FANOUT_BITS: u32 = 5;
const FANOUT: usize = 1 << FANOUT_BITS;

#[derive(Debug)]
pub(crate) struct Table {
    slots: Box<[Slot]>,
    len: usize,
    cap: usize,
    bounds: Bounds,
}

impl Table {
    /// A table for at most `cap` keys; it grows on demand up to
    /// [`Table::full_size`] slots.
    pub(crate) fn new(cap: usize) -> Table {
        let size = Table::full_size(cap).min(16);
        Table {
            slots: vec![Slot::default(); size].into_boxed_slice(),
            len: 0,
            cap,
            bounds: Bounds::new(size),
        }
    }

    /// Slots at full capacity: a load of at most 0.8, and always one free slot,
    /// which ends every probe.
    pub(crate) fn full_size(cap: usize) -> usize {
        cap + cap / 4 + 1
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_full(&self) -> bool {
        self.len == self.cap
    }

    #[inline]
    fn home(&self, hash: u64) -> usize {
        // Lemire's multiply-shift on the low half; the shard index uses the top bits.
        (((hash & 0xffff_ffff) * self.slots.len() as u64) >> 32) as usize
    }

    #[inline]
    fn next(&self, i: usize) -> usize {
        if i + 1 == self.slots.len() { 0 } else { i + 1 }
    }

    /// The slot holding `hash`.
    #[inline]
    pub(crate) fn find(&self, hash: u64) -> Option<usize> {
        let mut i = self.home(hash);
        loop {
            let slot = self.slots[i];
            if slot.hash == hash {
                return Some(i);
            }
            if slot.hash == EMPTY {
                return None;
            }
            i = self.next(i);
        }
    }

    #[inline]
    pub(crate) fn tat(&self, i: usize) -> u64 {
        self.slots[i].tat
    }

    /// Raises the state of slot `i`. Bounds stay valid: they are lower bounds.
    #[inline]
    pub(crate) fn set_tat(&mut self, i: usize, tat: u64) {
        debug_assert!(tat >= self.slots[i].tat);
        self.slots[i].tat = tat;
    }

    /// The key to evict from a table with keys: one idle at `now` (its bucket
    /// full again) if there is one, searching outwards from `hash`'s home,
    /// else the key owing the least time. Its slot, hash and `tat`.
    pub(crate) fn victim(&mut self, now: u64, hash: u64) -> Option<(usize, u64, u64)> {
        let near = self.home(hash);
        let i = match self.bounds.find_idle(&self.slots, now, near) {
            Some(i) => i,
            None => self.bounds.least(&self.slots)?,
        };
        Some((i, self.slots[i].hash, self.slots[i].tat))
    }

    /// Adds a key that is not in the table; the table has room (`!is_full`).
    pub(crate) fn insert(&mut self, hash: u64, tat: u64) {
        debug_assert!(hash != EMPTY && self.find(hash).is_none() && self.len < self.cap);
        let full = Table::full_size(self.cap);
        if self.slots.len() < full && (self.len + 1) * 5 > self.slots.len() * 4 {
            self.grow((self.slots.len() * 2).min(full));
        }
        let mut i = self.home(hash);
        while self.slots[i].hash != EMPTY {
            i = self.next(i);
        }
        self.slots[i] = Slot { hash, tat };
        self.bounds.lower(i, tat);
        self.len += 1;
    }

    /// Removes the key with `hash`; whether it was there.
    pub(crate) fn remove(&mut self, hash: u64) -> bool {
        match self.find(hash) {
            Some(i) => {
                self.remove_at(i);
                true
            }
            None => false,
        }
    }

    /// Empties slot `i` and shifts the rest of its probe run back (no tombstones).
    pub(crate) fn remove_at(&mut self, i: usize) {
        let n = self.slots.len();
        let mut hole = i;
        let mut j = self.next(i);
        loop {
            let slot = self.slots[j];
            if slot.hash == EMPTY {
                break;
            }
            let home = self.home(slot.hash);
            // The entry at `j` may fill the hole when the hole lies on its probe
            // path, cyclically within [home, j).
            if (j + n - home) % n >= (j + n - hole) % n {
                self.slots[hole] = slot;
                self.bounds.lower(hole, slot.tat);
                hole = j;
            }
            j = self.next(j);
        }
        self.slots[hole] = Slot::default();
        self.len -= 1;
    }

    fn grow(&mut self, size: usize) {
        let old = std::mem::replace(
            &mut self.slots,
            vec![Slot::default(); size].into_boxed_slice(),
        );
        self.bounds = Bounds::new(size);
        for slot in old.iter().filter(|s| s.hash != EMPTY) {
            let mut i = self.home(slot.hash);
            while self.slots[i].hash != EMPTY {
                i = self.next(i);
            }
            self.slots[i] = *slot;
            self.bounds.lower(i, slot.tat);
        }
    }

    /// Heap bytes held.
    pub(crate) fn heap_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.slots) + self.bounds.heap_bytes()
    }

    #[cfg(test)]
    fn check_invariants(&self, now: u64) {
        assert!(self.len <= self.cap);
        assert_eq!(
            self.slots.iter().filter(|s| s.hash != EMPTY).count(),
            self.len
        );
        for (i, s) in self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.hash != EMPTY)
        {
            assert_eq!(
                self.find(s.hash),
                Some(i),
                "every key is reachable from its home"
            );
            let mut idx = i >> FANOUT_BITS;
            for level in &self.bounds.levels {
                assert!(level[idx] <= s.tat, "bounds are lower bounds");
                idx >>= FANOUT_BITS;
            }
        }
        let _ = now;
    }
}

/// Lower bounds on the `tat` of occupied slots: `levels[0][b]` bounds the slots of
/// block `b` (32 slots), `levels[k + 1][b]` bounds the nodes `32b..32b + 32` of
/// `levels[k]`; the last level has one node. `u64::MAX` means "no key below".
///
/// A `tat` only grows while its key stays, so a bound set once stays valid; an
/// insert or a move lowers the bounds on its path. A search tightens every bound it
/// disproves, and each disproved bound was lowered by an admission or an insert
/// since it was last exact, so the search costs amortized O(1) per admission.
#[derive(Debug)]
struct Bounds {
    levels: Vec<Box<[u64]>>,
}

impl Bounds {
    fn new(slots: usize) -> Bounds {
        let mut levels = Vec::new();
        let mut n = slots;
        loop {
            n = n.div_ceil(FANOUT);
            levels.push(vec![u64::MAX; n].into_boxed_slice());
            if n == 1 {
                break;
            }
        }
        Bounds { levels }
    }

    fn heap_bytes(&self) -> usize {
        self.levels
            .iter()
            .map(|l| std::mem::size_of_val(&**l))
            .sum::<usize>()
            + self.levels.capacity() * std::mem::size_of::<Box<[u64]>>()
    }

    #[inline]
    fn lower(&mut self, slot: usize, tat: u64) {
        let mut i = slot >> FANOUT_BITS;
        for level in &mut self.levels {
            if level[i] <= tat {
                // Every level above is at most this one.
                return;
            }
            level[i] = tat;
            i >>= FANOUT_BITS;
        }
    }

    /// An occupied slot with `tat <= now`, if any exists, searching outwards from
    /// slot `near`. Starting near the new key's home spreads evictions over the
    /// table like the inserts; always taking the first idle slot of the table
    /// would empty its start and pack its end into long probe runs.
    fn find_idle(&mut self, slots: &[Slot], now: u64, near: usize) -> Option<usize> {
        let top = self.levels.len() - 1;
        if self.levels[top][0] > now {
            return None;
        }
        self.search_idle(slots, top, 0, now, near)
    }

    /// Depth-first through the nodes whose bound is at most `now`, each node's
    /// children in cyclic order from the one on the path to `near`; every node it
    /// leaves without a find gets its exact bound, now above `now`.
    fn search_idle(
        &mut self,
        slots: &[Slot],
        level: usize,
        node: usize,
        now: u64,
        near: usize,
    ) -> Option<usize> {
        let first = node << FANOUT_BITS;
        let offset = (near >> (FANOUT_BITS as usize * level)) & (FANOUT - 1);
        let mut min = u64::MAX;
        if level == 0 {
            let count = (first + FANOUT).min(slots.len()) - first;
            for k in 0..count {
                let i = first + (offset + k) % count;
                let slot = slots[i];
                if slot.hash != EMPTY {
                    if slot.tat <= now {
                        return Some(i);
                    }
                    min = min.min(slot.tat);
                }
            }
        } else {
            let count = (first + FANOUT).min(self.levels[level - 1].len()) - first;
            for k in 0..count {
                let child = first + (offset + k) % count;
                if self.levels[level - 1][child] <= now
                    && let Some(found) = self.search_idle(slots, level - 1, child, now, near)
                {
                    return Some(found);
                }
                min = min.min(self.levels[level - 1][child]);
            }
        }
        self.levels[level][node] = min;
        None
    }

    /// The occupied slot owing the least time (the least `tat`); `None` for an
    /// empty table.
    fn least(&mut self, slots: &[Slot]) -> Option<usize> {
        let top = self.levels.len() - 1;
        self.exact_least(slots, top, 0)
    }

    /// The slot with the least `tat` below `node` of `level`, found best
    /// first: the child with the least bound is made exact, and it is the
    /// answer once its exact value is at most every other child's bound (a
    /// lower bound of theirs). Leaves the node's bound exact. Each round that
    /// does not end raises a stale bound to its exact value, so the search
    /// costs amortized O(1) per admission, like [`Bounds::find_idle`].
    fn exact_least(&mut self, slots: &[Slot], level: usize, node: usize) -> Option<usize> {
        let first = node << FANOUT_BITS;
        if level == 0 {
            let end = (first + FANOUT).min(slots.len());
            let found = (first..end)
                .filter(|&i| slots[i].hash != EMPTY)
                .min_by_key(|&i| slots[i].tat);
            self.levels[0][node] = found.map_or(u64::MAX, |i| slots[i].tat);
            return found;
        }
        let end = (first + FANOUT).min(self.levels[level - 1].len());
        loop {
            let below = &self.levels[level - 1];
            let child = (first..end).min_by_key(|&c| below[c])?;
            if below[child] == u64::MAX {
                self.levels[level][node] = u64::MAX;
                return None;
            }
            let found = self.exact_least(slots, level - 1, child);
            let below = &self.levels[level - 1];
            let exact = below[child];
            let others = (first..end)
                .filter(|&c| c != child)
                .map(|c| below[c])
                .min()
                .unwrap_or(u64::MAX);
            if exact <= others {
                self.levels[level][node] = exact;
                return found;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(i: u64) -> u64 {
        // Spread test keys over the table like a hash would, never EMPTY.
        (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1).rotate_left(7) | 1
    }

    /// Inserts, evicting the victim first when full: a test's stand-in for
    /// the shard.
    fn put(t: &mut Table, hash: u64, tat: u64, now: u64) -> Option<u64> {
        let evicted = t.is_full().then(|| {
            let (i, h, _) = t.victim(now, hash).unwrap();
            t.remove_at(i);
            h
        });
        t.insert(hash, tat);
        evicted
    }

    #[test]
    fn insert_find_remove() {
        let mut t = Table::new(100);
        for i in 0..100 {
            assert_eq!(put(&mut t, h(i), 1000 + i, 0), None);
            t.check_invariants(0);
        }
        assert_eq!(t.len(), 100);
        assert_eq!(t.slots.len(), Table::full_size(100));
        for i in 0..100 {
            assert_eq!(t.tat(t.find(h(i)).unwrap()), 1000 + i);
        }
        for i in (0..100).step_by(3) {
            assert!(t.remove(h(i)));
            assert!(!t.remove(h(i)));
            t.check_invariants(0);
        }
        for i in 0..100 {
            assert_eq!(t.find(h(i)).is_some(), i % 3 != 0);
        }
    }

    #[test]
    fn idle_keys_go_first_then_the_least_owed() {
        let mut t = Table::new(64);
        // Key 40 is idle at now = 5000; everything else owes time.
        for i in 0..64 {
            put(&mut t, h(i), if i == 40 { 100 } else { 10_000 + i }, 0);
        }
        assert_eq!(put(&mut t, h(1000), 20_000, 5000), Some(h(40)));
        t.check_invariants(5000);
        // No idle key: the least owed (key 0, tat 10_000) goes.
        assert_eq!(put(&mut t, h(1001), 20_001, 5000), Some(h(0)));
        t.check_invariants(5000);
        // Later every key is idle: any of them may go.
        assert!(put(&mut t, h(1002), 40_000, 30_000).is_some());
        assert_eq!(t.len(), 64);
    }

    /// After many raises the bounds are stale; the least-owed search still
    /// finds the exact least, compared with a scan of every slot.
    #[test]
    fn the_least_owed_is_exact_with_stale_bounds() {
        let mut t = Table::new(5000);
        let mut x = 0x1234_5678_u64;
        let mut rand = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for i in 0..5000 {
            put(&mut t, h(i), 1_000_000 + rand() % 1000, 0);
        }
        for round in 0..20_000u64 {
            // Raise a random key's debt (bounds go stale), then evict the least.
            let k = h(rand() % (5000 + round));
            if let Some(i) = t.find(k) {
                let tat = t.tat(i) + rand() % 100_000;
                t.set_tat(i, tat);
            }
            let want = t
                .slots
                .iter()
                .filter(|s| s.hash != EMPTY)
                .map(|s| s.tat)
                .min()
                .unwrap();
            let (i, _, tat) = t.victim(0, h(5000 + round)).unwrap();
            assert_eq!(tat, want, "round {round}: not the least owed");
            t.remove_at(i);
            t.insert(h(5000 + round), 1_000_000 + rand() % 1_000_000);
            if round % 1000 == 0 {
                t.check_invariants(0);
            }
        }
    }

    #[test]
    fn a_flood_keeps_the_bound_and_the_invariants() {
        let mut t = Table::new(1000);
        let mut now = 0;
        for i in 0..50_000u64 {
            now += 7;
            // Half the keys return; tat = now + 50 keeps ~7 keys in debt at once.
            let hash = h(if i % 2 == 0 { i } else { i / 2 });
            match t.find(hash) {
                Some(s) => {
                    let tat = t.tat(s).max(now) + 50;
                    t.set_tat(s, tat);
                }
                None => {
                    if t.is_full() {
                        let (_, _, tat) = t.victim(now, hash).unwrap();
                        assert!(tat <= now, "an idle key was there to evict");
                    }
                    put(&mut t, hash, now + 50, now);
                }
            }
            if i % 997 == 0 {
                t.check_invariants(now);
            }
        }
        assert_eq!(t.len(), 1000);
        assert!(t.heap_bytes() <= Table::full_size(1000) * 16 + 1000);
    }
}
