//! Seeded randomness that does not depend on the order records arrive in.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// FNV-1a over the bytes of `s`: a hash that is the same on every machine, build
/// and Rust version (unlike `std`'s `DefaultHasher`).
pub fn stable_hash(s: &str) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    s.bytes()
        .fold(OFFSET, |h, b| (h ^ u64::from(b)).wrapping_mul(PRIME))
}

/// The random stream of one decision: seeded from the policy's seed and the
/// decision's id, so that a decision's coin flips are the same whether the
/// decision is made live, in a replay, or on another instance of the group.
#[derive(Debug)]
pub struct DecisionRng(ChaCha8Rng);

impl DecisionRng {
    /// The stream for decision `decision_id` under `seed`.
    pub fn new(seed: u64, decision_id: &str) -> Self {
        Self(ChaCha8Rng::seed_from_u64(seed ^ stable_hash(decision_id)))
    }

    /// A uniform draw from [0, 1).
    pub fn unit(&mut self) -> f64 {
        self.0.random::<f64>()
    }

    /// A standard normal draw (Box–Muller; one of the pair is discarded, which
    /// keeps every draw a function of the stream position alone).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.unit(); // (0, 1]: ln is finite
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// An index drawn with the given probabilities (which sum to 1 up to
    /// rounding; the last index takes any remainder).
    pub fn categorical(&mut self, probabilities: &[f64]) -> usize {
        let mut u = self.unit();
        for (i, p) in probabilities.iter().enumerate() {
            if u < *p {
                return i;
            }
            u -= p;
        }
        probabilities.len().saturating_sub(1)
    }

    /// A uniform index below `n` (`n > 0`).
    pub fn index(&mut self, n: usize) -> usize {
        self.0.random_range(0..n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_hash_is_fnv1a() {
        // Reference values of 64-bit FNV-1a.
        assert_eq!(stable_hash(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(stable_hash("a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn same_decision_same_stream() {
        let a: Vec<f64> = {
            let mut r = DecisionRng::new(7, "d-1");
            (0..4).map(|_| r.unit()).collect()
        };
        let mut r = DecisionRng::new(7, "d-1");
        let b: Vec<f64> = (0..4).map(|_| r.unit()).collect();
        assert_eq!(a, b);
        let mut other = DecisionRng::new(7, "d-2");
        assert_ne!(a[0], other.unit());
    }
}
