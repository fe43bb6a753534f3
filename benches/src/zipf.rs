//! Generated access traces with a fixed seed: a small PRNG and a Zipf
//! sampler, for the cache benchmarks (hit ratio on synthetic workloads, the
//! key arrays of the throughput harness).
//!
//! The sampler keeps the cumulative weights of all ranks and finds a draw by
//! binary search: exact for any exponent, and cheap for the item counts used
//! here (at most a few hundred thousand ranks).

/// SplitMix64: tiny, fast and good enough to drive benchmark workloads; the
/// same seed gives the same trace on every machine.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator started from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        scramble(self.0)
    }

    /// Uniform in `[0, 1)`, from the top 53 bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `0..n` (`n > 0`); the tiny modulo bias does not matter here.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// A bijection on `u64` (the SplitMix64 / MurmurHash3 finaliser): turns ranks
/// into keys spread over the whole range without collisions, as YCSB's
/// `ScrambledZipfian` does, so that popular keys are not 0, 1, 2, ...
pub fn scramble(x: u64) -> u64 {
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Zipf over ranks `0..items`: rank `r` is drawn with weight `1 / (r + 1)^s`.
#[derive(Debug, Clone)]
pub struct Zipf {
    /// `cdf[r]`: the sum of the weights of ranks `0..=r`.
    cdf: Vec<f64>,
}

impl Zipf {
    /// # Panics
    /// When `items` is zero.
    pub fn new(items: usize, s: f64) -> Zipf {
        assert!(items > 0, "a Zipf distribution needs at least one item");
        let mut sum = 0.0;
        let cdf = (1..=items)
            .map(|r| {
                sum += (r as f64).powf(-s);
                sum
            })
            .collect();
        Zipf { cdf }
    }

    /// One rank, 0 the most popular.
    pub fn sample(&self, rng: &mut Rng) -> u64 {
        let total = self.cdf[self.cdf.len() - 1];
        let u = rng.next_f64() * total;
        let r = self.cdf.partition_point(|&c| c <= u);
        r.min(self.cdf.len() - 1) as u64
    }
}

/// `accesses` keys drawn from Zipf(`s`) over `items` ranks, each rank
/// scrambled into a key.
pub fn trace(items: usize, accesses: usize, s: f64, seed: u64) -> Vec<u64> {
    let zipf = Zipf::new(items, s);
    let mut rng = Rng::new(seed);
    (0..accesses)
        .map(|_| scramble(zipf.sample(&mut rng)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rank_zero_is_drawn_about_as_often_as_its_weight_says() {
        // s = 1 over 10 items: rank 0 has weight 1 / H(10) = 0.3414.
        let zipf = Zipf::new(10, 1.0);
        let mut rng = Rng::new(7);
        let n = 200_000;
        let zeros = (0..n).filter(|_| zipf.sample(&mut rng) == 0).count();
        let share = zeros as f64 / n as f64;
        assert!((share - 0.3414).abs() < 0.005, "{share}");
    }

    #[test]
    fn every_rank_stays_in_range() {
        let zipf = Zipf::new(3, 0.5);
        let mut rng = Rng::new(1);
        assert!((0..10_000).all(|_| zipf.sample(&mut rng) < 3));
    }
}
