//! A small seeded RNG (splitmix64) for branch and tag values: tests are reproducible, and the
//! core never reads an entropy source itself. Branches and tags need uniqueness, not secrecy
//! (RFC 3261 §8.1.1.7, §19.3); nonces, which need secrecy, belong to vouch-auth.

/// splitmix64.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed ^ 0x5851_F42D_4C95_7F2D)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// 16 lowercase hex digits: a token (RFC 3261 §25.1) for branches and tags.
    pub(crate) fn token(&mut self) -> String {
        format!("{:016x}", self.next_u64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_tokens_different_seed_different_tokens() {
        let (mut a, mut b, mut c) = (Rng::new(1), Rng::new(1), Rng::new(2));
        let ta = a.token();
        assert_eq!(ta, b.token());
        assert_ne!(ta, c.token());
        assert_eq!(ta.len(), 16);
    }
}
