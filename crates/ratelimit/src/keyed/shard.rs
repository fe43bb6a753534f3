//! One shard of a keyed limiter, behind its lock: the keys it holds, the
//! sketch of the debts it forgot, and its counters.

use crate::decision::Decision;
use crate::gcra::{self, Params};
use crate::stats::Stats;
use crate::sync::{AtomicUsize, Ordering};
use crate::wait::Tally;

use super::sketch::Sketch;
use super::table::Table;

#[derive(Debug)]
pub(crate) struct Shard {
    table: Table,
    sketch: Sketch,
    pub(crate) decisions: Stats,
    pub(crate) evictions: u64,
    pub(crate) evictions_active: u64,
    pub(crate) evictions_early: u64,
    pub(crate) sketch_denials: u64,
    pub(crate) false_denials: u64,
}

/// The limiter-wide bound on held keys, which every shard's inserts share.
pub(crate) struct Bound<'a> {
    pub(crate) held: &'a AtomicUsize,
    pub(crate) max_keys: usize,
}

impl Bound<'_> {
    /// Takes room for one more key, if the limiter holds fewer than `max_keys`.
    fn reserve(&self) -> bool {
        let mut held = self.held.load(Ordering::Relaxed);
        loop {
            if held >= self.max_keys {
                return false;
            }
            match self.held.compare_exchange_weak(
                held,
                held + 1,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => held = now,
            }
        }
    }

    fn release(&self) {
        self.held.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Shard {
    /// A shard that may hold up to `cap` keys (more than its even share of
    /// `max_keys`, so that uneven hashing does not evict before the limiter is
    /// full).
    pub(crate) fn new(cap: usize) -> Shard {
        Shard {
            table: Table::new(cap),
            sketch: Sketch::new(Sketch::lines_for(cap)),
            decisions: Stats::default(),
            evictions: 0,
            evictions_active: 0,
            evictions_early: 0,
            sketch_denials: 0,
            false_denials: 0,
        }
    }

    /// Decides a request of `n` cells (cost `p.cost(n)`) of the key with
    /// `hash` at `now`. A held key is decided on its own state. A key not held
    /// is decided from its sketch bucket: a full bucket unless an evicted
    /// key's debt is folded there; admitted, it is held from then on.
    #[inline]
    pub(crate) fn decide(
        &mut self,
        hash: u64,
        n: u32,
        p: &Params,
        now: u64,
        bound: &Bound<'_>,
        tally: Tally,
    ) -> Decision {
        let cost = p.cost(n);
        let decision = match self.table.find(hash) {
            Some(i) => {
                let tat = self.table.tat(i);
                match gcra::admit(tat, now, cost, p.tau) {
                    Some(new_tat) => {
                        if n > 0 {
                            self.table.set_tat(i, new_tat);
                        }
                        gcra::conforming(p, new_tat, now)
                    }
                    None => gcra::nonconforming(p, tat, now, cost),
                }
            }
            None => {
                let start = self.sketch.start(hash);
                match gcra::admit(start.tat, now, cost, p.tau) {
                    Some(new_tat) => {
                        if n > 0 {
                            self.hold(hash, new_tat, now, bound);
                        }
                        gcra::conforming(p, new_tat, now)
                    }
                    None => {
                        if gcra::admit(0, now, cost, p.tau).is_some() {
                            // A full bucket would have admitted it: the
                            // sketch refused it.
                            self.sketch_denials += u64::from(n);
                            if !start.own {
                                self.false_denials += u64::from(n);
                            }
                        }
                        gcra::nonconforming(p, start.tat, now, cost)
                    }
                }
            }
        };
        if n > 0 && tally.counts(decision.allowed) {
            self.decisions
                .count(decision.allowed, decision.conforming, n);
        }
        decision
    }

    /// Counts a wait of `n` cells that gave up as one denial.
    pub(crate) fn count_refusal(&mut self, n: u32) {
        self.decisions.count(false, false, n);
    }

    /// Holds a key that was not held, now owing time until `tat`: in free room
    /// below the limiter's bound, else in place of a victim of this shard (an
    /// idle key if there is one, else the key owing the least time), whose
    /// state goes to the sketch. A shard with no key to give up (the limiter is at
    /// its bound with every key in other shards) keeps the key's debt in the
    /// sketch alone.
    fn hold(&mut self, hash: u64, tat: u64, now: u64, bound: &Bound<'_>) {
        if !self.table.is_full() && bound.reserve() {
            self.table.insert(hash, tat);
            return;
        }
        let Some((i, victim, victim_tat)) = self.table.victim(now, hash) else {
            self.sketch.fold(hash, tat);
            return;
        };
        // Every victim's state goes to the sketch, an idle one's too: a
        // later check at an earlier time (a `check_at` timestamp, or a thread
        // that read the clock before this one) still finds what the key owed
        // then.
        if victim_tat > now {
            self.sketch.fold(victim, victim_tat);
            self.evictions_active += 1;
        } else {
            self.sketch.fold_idle(victim, victim_tat);
        }
        if self.table.is_full() && bound.held.load(Ordering::Relaxed) < bound.max_keys {
            self.evictions_early += 1;
        }
        self.evictions += 1;
        self.table.remove_at(i);
        self.table.insert(hash, tat);
    }

    /// Forgets the key with `hash`; whether it was held.
    pub(crate) fn remove(&mut self, hash: u64, bound: &Bound<'_>) -> bool {
        let removed = self.table.remove(hash);
        if removed {
            bound.release();
        }
        removed
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.table.heap_bytes() + self.sketch.heap_bytes()
    }
}
