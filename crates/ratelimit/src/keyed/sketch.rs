//! What the keyed limiter remembers of keys it no longer holds: a count-min
//! sketch with `max` in place of `+`. Each key has two buckets; evicting a key
//! raises both to its theoretical arrival time, and a key that is not held
//! starts from the lesser of its two buckets instead of a full bucket. Each of
//! its buckets is at least its own time, so the lesser is too: forgetting a
//! key never forgets its debt. A key can be limited more than it should (when
//! other keys' debts share both of its buckets), never less.
//!
//! Blocked: a key's two buckets are two of the seven in one 64-byte line, so
//! that a fold and a start each touch one cache line, not four.
//!
//! Idle keys (whose time is past when they are evicted) are not folded into
//! the buckets, where a miss per eviction would pay for nothing in the common
//! case: only a request made at an earlier time than one already seen could
//! find their time ahead. The sketch keeps the latest of their times instead,
//! one word, and a key that is not held starts from it when it is later than
//! the key's buckets: for requests in time order it is never ahead of `now`,
//! so it refuses nothing; for one made at an earlier time it is at least the
//! idle key's own time, so that key is never looser.

/// A cache line of seven buckets: the times, to the nanosecond (0: never
/// set), and beside each an 8-bit fingerprint of the key that set it.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C, align(64))]
struct Line {
    times: [u64; WAYS],
    fingerprints: [u8; WAYS],
}

const WAYS: usize = 7;

#[derive(Debug)]
pub(crate) struct Sketch {
    /// `1 << bits` lines, allocated at the first fold.
    lines: Box<[Line]>,
    bits: u32,
    /// The latest time of an idle key evicted, and its key's fingerprint.
    idle: u64,
    idle_fingerprint: u8,
}

/// What the sketch says of a key that is not held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Start {
    /// The time to start the key from (0: a full bucket).
    pub(crate) tat: u64,
    /// Whether the debt, if any, was folded in by a key with the same
    /// fingerprint: most likely the key itself.
    pub(crate) own: bool,
}

/// Where a key's buckets are: its line and two distinct ways in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Place {
    line: usize,
    ways: [usize; 2],
    fingerprint: u8,
}

impl Sketch {
    /// A sketch of `lines` lines (a power of two), allocated when first used.
    pub(crate) fn new(lines: usize) -> Sketch {
        debug_assert!(lines.is_power_of_two());
        Sketch {
            lines: Box::default(),
            bits: lines.trailing_zeros(),
            idle: 0,
            idle_fingerprint: 0,
        }
    }

    /// The line count for a shard of `cap` keys: about a bucket per eight
    /// keys, at least 8 lines (56 buckets).
    pub(crate) fn lines_for(cap: usize) -> usize {
        (cap / (8 * WAYS)).next_power_of_two().max(8)
    }

    /// The key's place, from bits of its hash that neither the shard (the top
    /// bits) nor the table slot (the low half) decide alone: mixed again.
    #[inline]
    fn place(&self, hash: u64) -> Place {
        let m = hash.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let line = if self.bits == 0 {
            0
        } else {
            (m >> (64 - self.bits)) as usize
        };
        // High bits of a second product: a product's bit k depends on the
        // factors' bits 0 to k only, so low bits would follow the table slot.
        let n = hash.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        let first = (n >> 48) as usize % WAYS;
        let step = 1 + ((n >> 32) & 0xffff) as usize % (WAYS - 1);
        Place {
            line,
            ways: [first, (first + step) % WAYS],
            fingerprint: Sketch::fingerprint(hash),
        }
    }

    /// Where a key that is not held starts.
    #[inline]
    pub(crate) fn start(&self, hash: u64) -> Start {
        let from_buckets = self.start_in_buckets(hash);
        if self.idle > from_buckets.tat {
            Start {
                tat: self.idle,
                own: self.idle_fingerprint == Sketch::fingerprint(hash),
            }
        } else {
            from_buckets
        }
    }

    #[inline]
    fn fingerprint(hash: u64) -> u8 {
        (hash >> 32) as u8
    }

    #[inline]
    fn start_in_buckets(&self, hash: u64) -> Start {
        if self.lines.is_empty() {
            return Start { tat: 0, own: true };
        }
        let p = self.place(hash);
        let line = &self.lines[p.line];
        let [a, b] = p.ways;
        let own = |w: usize| line.fingerprints[w] == p.fingerprint;
        // The lesser time; of two equal ones, the one that is the key's own.
        let w = match line.times[a].cmp(&line.times[b]) {
            std::cmp::Ordering::Less => a,
            std::cmp::Ordering::Equal if own(a) => a,
            _ => b,
        };
        Start {
            tat: line.times[w],
            own: own(w),
        }
    }

    /// Remembers the time of an idle key evicted at `now >= tat`.
    pub(crate) fn fold_idle(&mut self, hash: u64, tat: u64) {
        if tat > self.idle {
            self.idle = tat;
            self.idle_fingerprint = Sketch::fingerprint(hash);
        }
    }

    /// Remembers that the key with `hash` owed time until `tat`.
    pub(crate) fn fold(&mut self, hash: u64, tat: u64) {
        if self.lines.is_empty() {
            self.lines = vec![Line::default(); 1 << self.bits].into_boxed_slice();
        }
        let p = self.place(hash);
        let line = &mut self.lines[p.line];
        for w in p.ways {
            if tat > line.times[w] {
                line.times[w] = tat;
                line.fingerprints[w] = p.fingerprint;
            }
        }
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.lines)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_one_cache_line_and_a_keys_ways_differ() {
        assert_eq!(std::mem::size_of::<Line>(), 64);
        let s = Sketch::new(64);
        for h in 0..10_000u64 {
            let p = s.place(h.wrapping_mul(0xD6E8_FEB8_6659_FD93));
            assert!(p.ways[0] != p.ways[1] && p.ways.iter().all(|&w| w < WAYS));
            assert!(p.line < 64);
        }
    }

    #[test]
    fn a_folded_time_is_kept_exactly_and_the_larger_wins() {
        let mut s = Sketch::new(8);
        assert_eq!(s.start(42), Start { tat: 0, own: true });
        assert_eq!(s.heap_bytes(), 0, "allocated at the first fold");
        s.fold(42, 1000);
        assert_eq!(
            s.start(42),
            Start {
                tat: 1000,
                own: true
            }
        );
        s.fold(42, 500);
        assert_eq!(s.start(42).tat, 1000, "a smaller time does not lower it");
        s.fold(42, 5000);
        assert_eq!(s.start(42).tat, 5000);
        assert_eq!(s.heap_bytes(), 8 * 64, "8 lines of 64 bytes");
    }

    #[test]
    fn a_key_is_over_limited_only_when_both_its_buckets_are_taken() {
        let mut s = Sketch::new(8);
        let a = 7u64;
        let pa = s.place(a);
        let keys = || (1..1_000_000u64).map(|i| i << 32 | 7);
        // A key sharing one of a's buckets only, and one sharing both.
        let one = keys()
            .find(|&h| {
                let p = s.place(h);
                p.line == pa.line && p.ways[0] == pa.ways[0] && !pa.ways.contains(&p.ways[1])
            })
            .unwrap();
        let both = keys()
            .find(|&h| {
                let p = s.place(h);
                p.line == pa.line
                    && pa.ways.contains(&p.ways[0])
                    && pa.ways.contains(&p.ways[1])
                    && p.fingerprint != pa.fingerprint
            })
            .unwrap();
        s.fold(a, 10_000);
        assert_eq!(s.start(one).tat, 0, "its other bucket is free");
        assert_eq!(
            s.start(both),
            Start {
                tat: 10_000,
                own: false
            }
        );
        assert_eq!(
            s.start(a),
            Start {
                tat: 10_000,
                own: true
            }
        );
    }

    /// Whatever other keys fold, a key's start is at least its own time.
    #[test]
    fn a_start_is_never_below_the_keys_own_time() {
        let mut s = Sketch::new(16);
        let mut own = std::collections::HashMap::new();
        let mut x = 0x2545_F491_4F6C_DD1D_u64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let key = x % 5000;
            let hash = key.wrapping_mul(0xD6E8_FEB8_6659_FD93) | 1;
            let tat = x >> 20;
            s.fold(hash, tat);
            let e = own.entry(hash).or_insert(0);
            *e = tat.max(*e);
        }
        for (hash, time) in own {
            assert!(s.start(hash).tat >= time);
        }
    }

    /// An idle key's time bounds every start from below; in time order it is
    /// past, so it refuses nothing.
    #[test]
    fn an_idle_keys_time_is_the_least_start() {
        let mut s = Sketch::new(8);
        s.fold_idle(5, 700);
        assert_eq!(s.heap_bytes(), 0, "no line for idle keys");
        assert_eq!(
            s.start(5),
            Start {
                tat: 700,
                own: true
            }
        );
        assert_eq!(s.start(6 << 32).tat, 700);
        assert!(!s.start(6 << 32).own);
        s.fold_idle(6 << 32, 600);
        assert_eq!(s.start(5).tat, 700, "the latest is kept");
        s.fold(9, 900);
        assert_eq!(
            s.start(9),
            Start {
                tat: 900,
                own: true
            }
        );
    }

    #[test]
    fn the_end_of_the_range_is_kept() {
        let mut s = Sketch::new(8);
        s.fold(1, u64::MAX - 3);
        assert_eq!(s.start(1).tat, u64::MAX - 3);
    }
}
