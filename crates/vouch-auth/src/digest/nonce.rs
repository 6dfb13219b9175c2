//! Stateless nonces (RFC 7616 §3.3 "nonce … e.g. time-stamp H(time-stamp ":" ETag ":" secret)"):
//! issue time, random bits and an HMAC-SHA256 over both and the realm, so any node holding the
//! secret accepts them, a nonce from another realm or secret is refused, and age is known
//! without a table. Nonce-count replay needs state: [`NonceCounts`].

use std::collections::{HashMap, VecDeque};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::hex;

/// The secret nonces are made and checked with. Nodes that share it accept each other's.
#[derive(Clone)]
pub struct NonceSecret([u8; 32]);

impl std::fmt::Debug for NonceSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NonceSecret(..)")
    }
}

impl NonceSecret {
    /// A secret from 32 bytes (from the configuration or a random source the driver owns).
    pub fn new(bytes: [u8; 32]) -> Self {
        NonceSecret(bytes)
    }

    fn mac(&self, issued: i64, random: u64, realm: &str) -> [u8; 16] {
        let mut m =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        m.update(&issued.to_be_bytes());
        m.update(&random.to_be_bytes());
        m.update(realm.as_bytes());
        let full = m.finalize().into_bytes();
        let mut out = [0u8; 16];
        out.copy_from_slice(&full[..16]);
        out
    }

    /// A nonce for `realm` issued at `now` (Unix seconds) with caller-supplied randomness.
    pub fn issue(&self, now: i64, random: u64, realm: &str) -> String {
        format!(
            "{:016x}{:016x}{}",
            now as u64,
            random,
            hex(&self.mac(now, random, realm))
        )
    }

    /// Checks a nonce: made with this secret for this realm, and not older than `lifetime`.
    pub fn check(&self, nonce: &str, realm: &str, now: i64, lifetime: i64) -> NonceStatus {
        if nonce.len() != 64 || !nonce.bytes().all(|b| b.is_ascii_hexdigit()) {
            return NonceStatus::Invalid;
        }
        let (Ok(issued), Ok(random)) = (
            u64::from_str_radix(&nonce[..16], 16),
            u64::from_str_radix(&nonce[16..32], 16),
        ) else {
            return NonceStatus::Invalid;
        };
        let issued = issued as i64;
        let expected = hex(&self.mac(issued, random, realm));
        if !bool::from(expected.as_bytes().ct_eq(&nonce.as_bytes()[32..])) {
            return NonceStatus::Invalid;
        }
        if issued > now + 5 {
            return NonceStatus::Invalid;
        }
        if now - issued > lifetime {
            return NonceStatus::Stale;
        }
        NonceStatus::Valid { issued }
    }
}

/// What [`NonceSecret::check`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceStatus {
    /// Ours and fresh.
    Valid {
        /// Issue time, Unix seconds.
        issued: i64,
    },
    /// Ours but expired: challenge again with `stale=true` (RFC 7616 §3.3).
    Stale,
    /// Not ours (another realm or secret) or malformed.
    Invalid,
}

/// The highest nonce-count seen per nonce, so a reused or lower nc is refused (RFC 7616 §3.4:
/// the server should check the nc to detect replays). Bounded: the oldest entries go first.
#[derive(Debug)]
pub struct NonceCounts {
    seen: HashMap<String, u32>,
    order: VecDeque<(i64, String)>,
    capacity: usize,
}

impl NonceCounts {
    /// A table holding at most `capacity` nonces.
    pub fn new(capacity: usize) -> Self {
        NonceCounts {
            seen: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// Records `nc` for `nonce`; `false` (refuse) unless it is higher than any seen before.
    /// `issued` orders eviction; entries issued before `forget_before` are dropped.
    pub fn accept(&mut self, nonce: &str, nc: u32, issued: i64, forget_before: i64) -> bool {
        while let Some((t, _)) = self.order.front() {
            if *t >= forget_before && self.order.len() < self.capacity {
                break;
            }
            if let Some((_, n)) = self.order.pop_front() {
                self.seen.remove(&n);
            }
        }
        match self.seen.get_mut(nonce) {
            Some(last) if nc <= *last => false,
            Some(last) => {
                *last = nc;
                true
            }
            None => {
                self.seen.insert(nonce.to_string(), nc);
                self.order.push_back((issued, nonce.to_string()));
                true
            }
        }
    }

    /// Number of nonces tracked.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// True when nothing is tracked.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonce_checks_realm_secret_and_age() {
        let s = NonceSecret::new([7; 32]);
        let n = s.issue(1000, 42, "atlanta.example.com");
        assert_eq!(
            s.check(&n, "atlanta.example.com", 1010, 300),
            NonceStatus::Valid { issued: 1000 }
        );
        assert_eq!(
            s.check(&n, "biloxi.example.com", 1010, 300),
            NonceStatus::Invalid
        );
        assert_eq!(
            NonceSecret::new([8; 32]).check(&n, "atlanta.example.com", 1010, 300),
            NonceStatus::Invalid
        );
        assert_eq!(
            s.check(&n, "atlanta.example.com", 1400, 300),
            NonceStatus::Stale
        );
        let mut tampered = n.clone();
        tampered.replace_range(0..1, "1");
        assert_eq!(
            s.check(&tampered, "atlanta.example.com", 1010, 300),
            NonceStatus::Invalid
        );
        assert_eq!(
            s.check("short", "atlanta.example.com", 1010, 300),
            NonceStatus::Invalid
        );
    }

    #[test]
    fn nonce_count_must_increase() {
        let mut c = NonceCounts::new(2);
        assert!(c.accept("a", 1, 0, 0));
        assert!(!c.accept("a", 1, 0, 0), "replayed nc");
        assert!(c.accept("a", 3, 0, 0));
        assert!(!c.accept("a", 2, 0, 0), "lower nc");
        assert!(c.accept("b", 1, 1, 0));
        assert!(c.accept("c", 1, 2, 0));
        assert_eq!(c.len(), 2, "bounded");
    }
}
