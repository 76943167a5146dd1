//! A small seeded generator for tests: every failure names a seed that replays it.

/// `splitmix64`: a fixed sequence from a seed, the same on every machine and in every
/// process, so a writer and a checker can derive the same data from the same seed.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    /// The next number of the sequence.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number below `n` (which must not be 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// A count below `n`, for lengths and indexes.
    ///
    /// # Panics
    /// On a target whose `usize` cannot hold `n`.
    pub fn below_usize(&mut self, n: usize) -> usize {
        usize::try_from(self.below(n as u64)).expect("below n, which is a usize")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_numbers_in_range() {
        let (mut a, mut b) = (Rng(7), Rng(7));
        for _ in 0..1000 {
            let x = a.below(10);
            assert_eq!(x, b.below(10));
            assert!(x < 10);
        }
        assert_ne!(Rng(7).next_u64(), Rng(8).next_u64());
    }
}
