//! What the keyed limiter remembers of keys it no longer holds: a count-min
//! sketch with `max` in place of `+`. Each key has one bucket in each of two
//! rows; evicting a key that still owes time raises both of its buckets to its
//! theoretical arrival time, and a key that is not held starts from the lesser
//! of its two buckets instead of a full bucket. Each of its buckets is at least
//! its own debt, so the lesser is too: forgetting a key never forgets its debt.
//! A key can be limited more than it should (when other keys' debts share both
//! of its buckets), never less.

/// Each bucket keeps the fingerprint of the key whose debt it holds: 8 bits
/// of the key's hash, beside the time (in a byte array of its own, so that
/// times are kept to the nanosecond and an idle key's state, folded in at
/// eviction, never refuses a request made after it).
#[derive(Debug)]
pub(crate) struct Sketch {
    /// Two rows of `1 << bits` times; `0` for a bucket that never held a
    /// debt. Allocated at the first fold, with `fingerprints`.
    buckets: Box<[u64]>,
    fingerprints: Box<[u8]>,
    bits: u32,
}

/// The rows' multipliers (odd, from the golden ratio and from splitmix64).
const MIX: [u64; 2] = [0x9E37_79B9_7F4A_7C15, 0xBF58_476D_1CE4_E5B9];

/// What the sketch says of a key that is not held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Start {
    /// The time to start the key from (0: a full bucket).
    pub(crate) tat: u64,
    /// Whether the debt, if any, was folded in by a key with the same
    /// fingerprint: most likely the key itself.
    pub(crate) own: bool,
}

impl Sketch {
    /// A sketch of `size` buckets in all (a power of two, at least 2),
    /// allocated when first used.
    pub(crate) fn new(size: usize) -> Sketch {
        debug_assert!(size.is_power_of_two() && size >= 2);
        Sketch {
            buckets: Box::default(),
            fingerprints: Box::default(),
            bits: size.trailing_zeros() - 1,
        }
    }

    /// The bucket count for a shard of `cap` keys: an eighth of it, at least 64.
    pub(crate) fn size_for(cap: usize) -> usize {
        (cap / 8).next_power_of_two().max(64)
    }

    /// The key's bucket in `row`. Mixed again: the shard and the table slot
    /// take the hash's top and low bits.
    #[inline]
    fn bucket(&self, hash: u64, row: usize) -> usize {
        (row << self.bits) | (hash.wrapping_mul(MIX[row]) >> (64 - self.bits)) as usize
    }

    #[inline]
    fn fingerprint(hash: u64) -> u8 {
        (hash >> 32) as u8
    }

    /// Where a key that is not held starts.
    #[inline]
    pub(crate) fn start(&self, hash: u64) -> Start {
        if self.buckets.is_empty() {
            return Start { tat: 0, own: true };
        }
        let (a, b) = (self.bucket(hash, 0), self.bucket(hash, 1));
        let fp = Sketch::fingerprint(hash);
        let own = |i: usize| self.fingerprints[i] == fp;
        // The lesser time; of two equal ones, the one that is the key's own.
        let i = match self.buckets[a].cmp(&self.buckets[b]) {
            std::cmp::Ordering::Less => a,
            std::cmp::Ordering::Equal if own(a) => a,
            _ => b,
        };
        Start {
            tat: self.buckets[i],
            own: own(i),
        }
    }

    /// Remembers that the key with `hash` owed time until `tat` (a time
    /// already past for an idle key).
    pub(crate) fn fold(&mut self, hash: u64, tat: u64) {
        if self.buckets.is_empty() {
            self.buckets = vec![0; 2 << self.bits].into_boxed_slice();
            self.fingerprints = vec![0; 2 << self.bits].into_boxed_slice();
        }
        for row in 0..2 {
            let b = self.bucket(hash, row);
            if tat > self.buckets[b] {
                self.buckets[b] = tat;
                self.fingerprints[b] = Sketch::fingerprint(hash);
            }
        }
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.buckets) + std::mem::size_of_val(&*self.fingerprints)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folded_debt_is_kept_exactly_and_the_larger_wins() {
        let mut s = Sketch::new(64);
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
        assert_eq!(s.start(42).tat, 1000, "a smaller debt does not lower it");
        s.fold(42, 5000);
        assert_eq!(s.start(42).tat, 5000);
        assert_eq!(s.heap_bytes(), 64 * 9, "64 buckets in all, two rows of 32");
    }

    #[test]
    fn a_key_is_over_limited_only_when_both_its_buckets_are_taken() {
        let mut s = Sketch::new(64);
        let a = 7u64;
        let keys = || (1..u64::MAX).map(|i| i << 32 | 7);
        // A key sharing a's bucket in row 0 only, and one sharing both.
        let one = keys()
            .find(|&h| s.bucket(h, 0) == s.bucket(a, 0) && s.bucket(h, 1) != s.bucket(a, 1))
            .unwrap();
        let both = keys()
            .find(|&h| {
                s.bucket(h, 0) == s.bucket(a, 0)
                    && s.bucket(h, 1) == s.bucket(a, 1)
                    && Sketch::fingerprint(h) != Sketch::fingerprint(a)
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

    /// Whatever other keys fold, a key's start is at least its own debt.
    #[test]
    fn a_start_is_never_below_the_keys_own_debt() {
        let mut s = Sketch::new(128);
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
        for (hash, debt) in own {
            assert!(s.start(hash).tat >= debt);
        }
    }

    #[test]
    fn the_end_of_the_range_is_kept() {
        let mut s = Sketch::new(64);
        s.fold(1, u64::MAX - 3);
        assert_eq!(s.start(1).tat, u64::MAX - 3);
    }
}
