//! The frequency sketch behind admission: a count-min sketch of 4-bit
//! counters, halved every `10 x capacity` additions so that it forgets old
//! popularity (TinyLFU's reset).

/// Counters of recent accesses, by key hash: 16 four-bit counters per word,
/// four counters (one per row) per key.
pub(crate) struct Sketch {
    table: Box<[u64]>,
    mask: usize,
    additions: u64,
    sample_size: u64,
}

/// Odd multipliers that spread one hash into four row hashes.
const SEEDS: [u64; 4] = [
    0x9E37_79B9_7F4A_7C15,
    0xC2B2_AE3D_27D4_EB4F,
    0x1656_67B1_9E37_79F9,
    0xD6E8_FEB8_6659_FD93,
];

const RESET_MASK: u64 = 0x7777_7777_7777_7777;

impl Sketch {
    /// A sketch for a policy of `capacity` entries: half a word per entry
    /// (eight counters), at least 8 words.
    pub(crate) fn new(capacity: u64) -> Sketch {
        let words = (capacity / 2).clamp(8, 1 << 26).next_power_of_two() as usize;
        Sketch {
            table: vec![0; words].into_boxed_slice(),
            mask: words - 1,
            additions: 0,
            sample_size: capacity.saturating_mul(10).max(16),
        }
    }

    #[inline]
    fn slot(&self, hash: u64, row: usize) -> (usize, u32) {
        let h = (hash ^ (hash >> 31)).wrapping_mul(SEEDS[row]);
        let word = (h >> 32) as usize & self.mask;
        // Counter 4*row + (0..4) of the word: each row owns a quarter of it.
        let counter = (row as u32) * 4 + ((h >> 29) & 3) as u32;
        (word, counter * 4)
    }

    /// Counts one access of `hash`.
    pub(crate) fn increment(&mut self, hash: u64) {
        let mut added = false;
        for row in 0..4 {
            let (word, shift) = self.slot(hash, row);
            let w = &mut self.table[word];
            if (*w >> shift) & 15 < 15 {
                *w += 1 << shift;
                added = true;
            }
        }
        if added {
            self.additions += 1;
            if self.additions >= self.sample_size {
                self.reset();
            }
        }
    }

    /// The estimated recent accesses of `hash`, 0 to 15.
    pub(crate) fn frequency(&self, hash: u64) -> u8 {
        (0..4)
            .map(|row| {
                let (word, shift) = self.slot(hash, row);
                ((self.table[word] >> shift) & 15) as u8
            })
            .min()
            .unwrap_or(0)
    }

    /// Halves every counter.
    fn reset(&mut self) {
        for w in self.table.iter_mut() {
            *w = (*w >> 1) & RESET_MASK;
        }
        self.additions /= 2;
    }
}

impl std::fmt::Debug for Sketch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sketch")
            .field("words", &self.table.len())
            .field("additions", &self.additions)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_up_to_fifteen_and_never_underestimates() {
        let mut s = Sketch::new(1024);
        for i in 0..20 {
            s.increment(42);
            assert!(u64::from(s.frequency(42)) >= (i + 1).min(15));
        }
        assert_eq!(s.frequency(42), 15);
    }

    #[test]
    fn frequent_keys_stand_out_from_rare_ones() {
        let mut s = Sketch::new(1024);
        let hash = |k: u64| k.wrapping_mul(0x2545_F491_4F6C_DD1D);
        for k in 0..512 {
            s.increment(hash(k));
        }
        for _ in 0..8 {
            s.increment(hash(7));
        }
        assert!(s.frequency(hash(7)) >= 9);
        let rare = (0..512)
            .filter(|&k| k != 7 && s.frequency(hash(k)) > 3)
            .count();
        assert!(rare < 16, "{rare} keys seen once read above 3");
    }

    #[test]
    fn reset_halves_after_ten_times_capacity_additions() {
        let mut s = Sketch::new(16);
        for _ in 0..15 {
            s.increment(1);
        }
        assert_eq!(s.frequency(1), 15);
        // 160 additions trigger the reset; 15 saturated ones do not count.
        for k in 0..200u64 {
            s.increment(k.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1 << 63);
        }
        assert!(s.frequency(1) <= 8, "{}", s.frequency(1));
    }
}
