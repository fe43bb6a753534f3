//! The frequency sketch behind admission: a count-min sketch of 4-bit
//! counters, halved every `10 x capacity` additions so that it forgets old
//! popularity (TinyLFU's reset).

/// Counters of recent accesses, by key tag: 4-bit counters, 16 to a word,
/// eight words to a 64-byte block. A key's four counters (one per row) lie in
/// one block, so counting an access touches one cache line.
pub(crate) struct Sketch {
    table: Box<[u64]>,
    block_mask: usize,
    additions: u64,
    sample_size: u64,
    /// The entries it grows for at most (the policy's capacity).
    capacity: u64,
}

const RESET_MASK: u64 = 0x7777_7777_7777_7777;
/// A small cache's sketch has up to four words per entry, up to this many
/// (32 KiB): with one word per entry a 1,000-entry cache's keys crowd 128
/// blocks (0.1 to 0.5 points of hit ratio on Zipf at 1,000 entries).
const MIN_WORDS: u64 = 4096;

impl Sketch {
    /// A sketch for a policy of up to `capacity` entries, sized for
    /// `entries` of them now: a word per entry (16 counters, as Caffeine
    /// sizes it), at least one block. Half as many cost 0.7 to 1.3 points of
    /// hit ratio on Zipf and OLTP traces here. It grows with the entries
    /// ([`ensure`](Sketch::ensure)), so a large cache, or a weighted one
    /// whose capacity counts bytes, does not allocate for entries it never
    /// holds.
    pub(crate) fn new(entries: u64, capacity: u64) -> Sketch {
        Self::sized(entries.min(capacity), capacity)
    }

    fn words(entries: u64) -> usize {
        let floor = entries.saturating_mul(4).min(MIN_WORDS);
        entries.max(floor).clamp(8, 1 << 26).next_power_of_two() as usize
    }

    /// A sketch for `entries` entries of `capacity`: it ages (halves) every
    /// `10 x entries` additions.
    fn sized(entries: u64, capacity: u64) -> Sketch {
        let words = Self::words(entries);
        Sketch {
            table: vec![0; words].into_boxed_slice(),
            block_mask: words / 8 - 1,
            additions: 0,
            sample_size: entries.saturating_mul(10).max(16),
            capacity,
        }
    }

    /// Grows the sketch for `entries` entries, when they outgrow it (as
    /// Caffeine does, starting the counts again: this happens while a cache
    /// fills, a doubling at a time).
    #[inline]
    pub(crate) fn ensure(&mut self, entries: usize) {
        let entries = entries as u64;
        if entries > self.sample_size / 10 && entries <= self.capacity {
            *self = Self::sized(
                (entries.next_power_of_two()).min(self.capacity),
                self.capacity,
            );
        }
    }

    /// The word and bit shift of `tag`'s counter in each row.
    #[inline]
    fn slots(&self, tag: u32) -> [(usize, u32); 4] {
        let h = u64::from(tag).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let block = (h >> 40) as usize & self.block_mask;
        std::array::from_fn(|row| {
            // Row r uses words 2r and 2r + 1 of the block: rows never share
            // a counter.
            let word = block * 8 + row * 2 + ((h >> row) & 1) as usize;
            let counter = ((h >> (8 + row * 4)) & 15) as u32;
            (word, counter * 4)
        })
    }

    /// Counts `n` accesses of `tag` (each counter saturates at 15).
    pub(crate) fn increment_by(&mut self, tag: u32, n: u8) {
        let mut added = false;
        for (word, shift) in self.slots(tag) {
            let w = &mut self.table[word];
            let c = (*w >> shift) & 15;
            let add = u64::from(n).min(15 - c);
            if add > 0 {
                *w += add << shift;
                added = true;
            }
        }
        if added {
            self.additions += u64::from(n);
            if self.additions >= self.sample_size {
                self.reset();
            }
        }
    }

    /// The estimated recent accesses of `tag`, 0 to 15.
    pub(crate) fn frequency(&self, tag: u32) -> u8 {
        self.slots(tag)
            .into_iter()
            .map(|(word, shift)| ((self.table[word] >> shift) & 15) as u8)
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
        let mut s = Sketch::new(1024, 1024);
        for i in 0..20 {
            s.increment_by(42, 1);
            assert!(u64::from(s.frequency(42)) >= (i + 1).min(15));
        }
        assert_eq!(s.frequency(42), 15);
    }

    #[test]
    fn frequent_keys_stand_out_from_rare_ones() {
        let mut s = Sketch::new(1024, 1024);
        let hash = |k: u64| (k.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) as u32;
        for k in 0..512 {
            s.increment_by(hash(k), 1);
        }
        for _ in 0..8 {
            s.increment_by(hash(7), 1);
        }
        assert!(s.frequency(hash(7)) >= 9);
        let rare = (0..512)
            .filter(|&k| k != 7 && s.frequency(hash(k)) > 3)
            .count();
        assert!(rare < 16, "{rare} keys seen once read above 3");
    }

    #[test]
    fn reset_halves_after_ten_times_capacity_additions() {
        let mut s = Sketch::new(1024, 1024);
        for _ in 0..15 {
            s.increment_by(1, 1);
        }
        assert_eq!(s.frequency(1), 15);
        let before = s.additions;
        // Distinct tags until the sample size (10 x 1024 additions) is
        // reached: the reset halves the additions and every counter.
        let mut t = 2u32;
        while s.additions >= before && s.additions < s.sample_size - 1 {
            s.increment_by(t.wrapping_mul(0x9E37_79B9), 1);
            t += 1;
        }
        s.increment_by(t.wrapping_mul(0x9E37_79B9), 1);
        assert!(s.additions < s.sample_size / 2 + 1, "{}", s.additions);
        assert!(s.frequency(1) <= 8 + 3, "{}", s.frequency(1));
        s.reset();
        assert!(s.frequency(1) <= 5, "{}", s.frequency(1));
    }
}
