//! Adaptive W-TinyLFU, as Caffeine describes it: new entries enter a small
//! LRU admission window; an entry leaving the window is admitted to the main
//! area only if the frequency sketch says it is used more often than the
//! entry main would evict in its place; main is a segmented LRU (probation,
//! protected). A hill climber resizes the window from the hit rate: it grows
//! for recency-heavy workloads and shrinks for frequency-heavy ones.
//!
//! Every method runs under the shard's write lock.

use std::hash::{BuildHasher, Hash};

use crate::RemovalCause;
use crate::shard::{NIL, Order, Queue, Shard, Sink, tag};
use crate::sketch::Sketch;

/// The window's starting share of capacity, and main's protected share.
const WINDOW_SHARE: f64 = 0.01;
const PROTECTED_SHARE: f64 = 0.80;
/// The hill climber: a step of 6.25 % of capacity, restarted when the hit
/// rate moves by 5 points, decaying by 2 % per sample otherwise.
const STEP_SHARE: f64 = 0.0625;
const RESTART_THRESHOLD: f64 = 0.05;
const STEP_DECAY: f64 = 0.98;
/// How many more counts a candidate needs than the victim (see `admit`).
const ADMIT_MARGIN: u8 = 1;
pub(crate) struct Policy {
    pub(crate) max_weight: u64,
    pub(crate) window_max: u64,
    pub(crate) protected_max: u64,
    pub(crate) sketch: Sketch,
    hits: u64,
    misses: u64,
    previous_rate: f64,
    step: f64,
    sample: u64,
}

impl Policy {
    /// A policy for `max_weight` units, sized for `room` entries now.
    pub(crate) fn new(max_weight: u64, room: usize) -> Policy {
        let window = max_weight - (max_weight as f64 * (1.0 - WINDOW_SHARE)) as u64;
        let protected = (PROTECTED_SHARE * (max_weight - window) as f64) as u64;
        Policy {
            max_weight,
            window_max: window,
            protected_max: protected,
            sketch: Sketch::new(room as u64, max_weight),
            hits: 0,
            misses: 0,
            previous_rate: 0.0,
            // The first step grows the window. (Caffeine's first step
            // shrinks it, from 1 %, where it can hardly shrink; growing first
            // gained 3 to 5 points on the recency-heavy web07 trace here, and
            // the frequency-heavy loop climbs back within a few samples.)
            step: STEP_SHARE * max_weight as f64,
            sample: max_weight.saturating_mul(10).max(16),
        }
    }

    /// Whether `candidate` should replace `victim` in main: only if the
    /// sketch counts it at least twice more. The margin of one keeps main
    /// stable under loops and scans: there the newcomer is always one access
    /// ahead of the least recent resident (its access in this pass is
    /// counted, the victim's not yet), and without the margin every newcomer
    /// would win (lirs loop at 768 entries: 72.7 % without, 74.8 % with; the
    /// other traces within their noise).
    ///
    /// Caffeine also admits a frequent candidate at random (1 in 128),
    /// because Java's hash codes let an attacker aim sketch collisions at a
    /// victim to pin it; here the sketch hashes with the cache's hasher,
    /// seeded at random per cache, so collisions cannot be aimed, and the
    /// random admissions cost 3 to 5 points on the loop trace here.
    fn admit(&self, candidate: u32, victim: u32) -> bool {
        self.sketch.frequency(candidate) > self.sketch.frequency(victim) + ADMIT_MARGIN
    }
}

impl Order {
    /// `reads` reads of entry `i` (replayed from the read buffer, where one
    /// record may stand for several sampled reads, or made under the locks);
    /// `tag` is its key's hash tag.
    pub(crate) fn on_hit(&mut self, i: u32, tag: u32, reads: u8) {
        self.policy.hits += u64::from(reads);
        self.policy.sketch.increment_by(tag, reads);
        self.reorder(i);
    }

    /// An update of entry `i` standing for `accesses` accesses (sampled):
    /// counted in the sketch and reordered like a read, but not a hit.
    pub(crate) fn on_update(&mut self, i: u32, tag: u32, accesses: u8) {
        self.policy.sketch.increment_by(tag, accesses);
        self.reorder(i);
    }

    /// Moves entry `i` to the most recent end of its queue, promoting it
    /// from probation to protected.
    fn reorder(&mut self, i: u32) {
        let q = match self.links[i as usize].queue {
            Queue::Window => Queue::Window,
            Queue::Probation | Queue::Protected => Queue::Protected,
        };
        self.move_tail(i, q);
    }

    /// A new entry (a miss the caller filled): counted in the sketch and the
    /// climber's sample.
    pub(crate) fn on_insert(&mut self, tag: u32) {
        self.policy.misses += 1;
        self.policy.sketch.ensure(self.links.len());
        self.policy.sketch.increment_by(tag, 1);
    }

    /// After a replay of reads: promotions may have overfilled protected.
    pub(crate) fn after_reads(&mut self) {
        self.climb();
        self.demote_protected();
    }

    /// Moves the window's least recent entries to probation until the window
    /// fits; returns how many moved (the candidates for admission).
    fn evict_from_window(&mut self) -> usize {
        let mut candidates = 0;
        while self.lists[Queue::Window as usize].weight > self.policy.window_max {
            let head = self.lists[Queue::Window as usize].head;
            if head == NIL {
                break;
            }
            self.move_tail(head, Queue::Probation);
            candidates += 1;
        }
        candidates
    }

    /// Demotes protected's least recent entries to probation while protected
    /// is over its share.
    fn demote_protected(&mut self) {
        while self.lists[Queue::Protected as usize].weight > self.policy.protected_max {
            let head = self.lists[Queue::Protected as usize].head;
            if head == NIL {
                break;
            }
            self.move_tail(head, Queue::Probation);
        }
    }

    /// Once per sample (ten times the capacity in accesses), moves the window
    /// size one step in the direction that last raised the hit rate.
    fn climb(&mut self) {
        let p = &mut self.policy;
        let seen = p.hits + p.misses;
        if seen < p.sample {
            return;
        }
        let rate = p.hits as f64 / seen as f64;
        let change = rate - p.previous_rate;
        let amount = if change >= 0.0 { p.step } else { -p.step };
        p.step = if change.abs() >= RESTART_THRESHOLD {
            STEP_SHARE * p.max_weight as f64 * amount.signum()
        } else {
            STEP_DECAY * amount
        };
        p.previous_rate = rate;
        p.hits = 0;
        p.misses = 0;
        if amount >= 1.0 {
            self.grow_window(amount as u64);
        } else if amount <= -1.0 {
            self.shrink_window((-amount) as u64);
        }
    }

    fn grow_window(&mut self, amount: u64) {
        let mut quota = amount.min(self.policy.protected_max);
        self.policy.protected_max -= quota;
        self.policy.window_max += quota;
        self.demote_protected();
        while quota > 0 {
            let from = [Queue::Probation, Queue::Protected]
                .into_iter()
                .map(|q| self.lists[q as usize].head)
                .find(|&h| h != NIL);
            let Some(i) = from else { break };
            let w = u64::from(self.links[i as usize].weight);
            if w > quota {
                break;
            }
            quota -= w;
            self.move_tail(i, Queue::Window);
        }
        self.policy.protected_max += quota;
        self.policy.window_max -= quota;
    }

    fn shrink_window(&mut self, amount: u64) {
        let mut quota = amount.min(self.policy.window_max.saturating_sub(1));
        self.policy.protected_max += quota;
        self.policy.window_max -= quota;
        while quota > 0 {
            let i = self.lists[Queue::Window as usize].head;
            if i == NIL {
                break;
            }
            let w = u64::from(self.links[i as usize].weight);
            if w > quota {
                break;
            }
            quota -= w;
            self.move_tail(i, Queue::Probation);
        }
        self.policy.protected_max -= quota;
        self.policy.window_max += quota;
    }
}

impl<K: Hash + Eq, V> Shard<'_, K, V> {
    /// Brings the shard back within its capacity and adapts the window.
    pub(crate) fn maintain<S: BuildHasher>(
        &mut self,
        now: u64,
        hasher: &S,
        sink: &mut Sink<'_, K, V>,
    ) {
        let candidates = self.order.evict_from_window();
        self.evict_from_main(candidates, now, hasher, sink);
        self.order.after_reads();
    }

    /// Evicts until the shard fits: each round pits the newest candidate
    /// against probation's least recent entry and evicts the less frequent.
    fn evict_from_main<S: BuildHasher>(
        &mut self,
        mut candidates: usize,
        now: u64,
        hasher: &S,
        sink: &mut Sink<'_, K, V>,
    ) {
        let mut candidate = self.order.lists[Queue::Probation as usize].tail;
        while self.order.weight() > self.order.policy.max_weight {
            let victim = self.order.lists[Queue::Probation as usize].head;
            if candidates == 0 {
                candidate = NIL;
            }
            let (evict, next_candidate) = if victim == NIL && candidate == NIL {
                // Probation is empty: evict from protected, then the window.
                let v = [Queue::Protected, Queue::Window]
                    .into_iter()
                    .map(|q| self.order.lists[q as usize].head)
                    .find(|&h| h != NIL);
                match v {
                    Some(v) => (v, NIL),
                    None => return,
                }
            } else if candidate == NIL {
                (victim, NIL)
            } else if victim == candidate {
                candidates = 0;
                (victim, NIL)
            } else {
                let prev = self.order.links[candidate as usize].prev;
                if self.is_expired(victim, now) {
                    (victim, candidate)
                } else if self.is_expired(candidate, now) {
                    candidates -= 1;
                    (candidate, prev)
                } else {
                    candidates -= 1;
                    let c = tag(hasher.hash_one(&self.node(candidate).key));
                    let v = tag(hasher.hash_one(&self.node(victim).key));
                    if self.order.policy.admit(c, v) {
                        (victim, prev)
                    } else {
                        (candidate, prev)
                    }
                }
            };
            let cause = if self.is_expired(evict, now) {
                RemovalCause::Expired
            } else {
                RemovalCause::Size
            };
            let moved_from = self.evict(evict, cause, hasher, sink);
            // The last node moved into the evicted one's position.
            // The next candidate may be the entry just evicted (the victim
            // was the candidate's neighbour): then none is left.
            candidate = if next_candidate == evict {
                NIL
            } else if next_candidate == moved_from {
                evict
            } else {
                next_candidate
            };
        }
    }
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("max_weight", &self.max_weight)
            .field("window_max", &self.window_max)
            .field("protected_max", &self.protected_max)
            .finish()
    }
}
