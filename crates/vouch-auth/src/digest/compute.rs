//! The digest computations of RFC 2617 §3.2.2 and §3.2.3, RFC 7616 §3.4 and RFC 8760 §2:
//! H(A1), H(A2), request-digest and the `rspauth` of Authentication-Info and
//! Proxy-Authentication-Info (draft-dotson-sip-mutual-auth §5, A2 = ":" digest-uri).

use md5::Md5;
use sha2::{Digest, Sha256, Sha512_256};

/// A digest algorithm token (RFC 8760 §2.5: MD5, SHA-256, SHA-512-256, each optionally `-sess`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// MD5 (RFC 2617), also assumed when `algorithm` is absent.
    Md5,
    /// SHA-256 (RFC 7616).
    Sha256,
    /// SHA-512/256 (RFC 7616; FIPS 180-4 SHA-512/256, not truncated SHA-512).
    Sha512_256,
}

impl Algorithm {
    /// Every algorithm, strongest first (the order challenges are offered in by default).
    pub const STRONGEST_FIRST: [Algorithm; 3] =
        [Algorithm::Sha512_256, Algorithm::Sha256, Algorithm::Md5];

    /// The token without `-sess`.
    pub fn token(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha512_256 => "SHA-512-256",
        }
    }

    /// Reads an `algorithm` token (case-insensitive); returns the algorithm and whether it is
    /// the `-sess` variant. `None` for unknown tokens.
    pub fn parse(token: &str) -> Option<(Algorithm, bool)> {
        let (base, sess) = match token.len().checked_sub(5).and_then(|i| token.get(i..)) {
            Some(suffix) if suffix.eq_ignore_ascii_case("-sess") => {
                (&token[..token.len() - 5], true)
            }
            _ => (token, false),
        };
        let alg = [Algorithm::Md5, Algorithm::Sha256, Algorithm::Sha512_256]
            .into_iter()
            .find(|a| a.token().eq_ignore_ascii_case(base))?;
        Some((alg, sess))
    }

    /// Length of a hex digest.
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Md5 => 32,
            Algorithm::Sha256 | Algorithm::Sha512_256 => 64,
        }
    }

    /// H(data) as lowercase hex.
    pub fn hash_hex(self, parts: &[&[u8]]) -> String {
        match self {
            Algorithm::Md5 => hex(&digest_parts::<Md5>(parts)),
            Algorithm::Sha256 => hex(&digest_parts::<Sha256>(parts)),
            Algorithm::Sha512_256 => hex(&digest_parts::<Sha512_256>(parts)),
        }
    }
}

fn digest_parts<D: Digest>(parts: &[&[u8]]) -> Vec<u8> {
    let mut d = D::new();
    for p in parts {
        d.update(p);
    }
    d.finalize().to_vec()
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// H(username ":" realm ":" password): what a credential store keeps instead of the password.
pub fn ha1(alg: Algorithm, username: &str, realm: &str, password: &str) -> String {
    alg.hash_hex(&[
        username.as_bytes(),
        b":",
        realm.as_bytes(),
        b":",
        password.as_bytes(),
    ])
}

/// The `-sess` H(A1): H(H(user:realm:pw) ":" nonce ":" cnonce) (RFC 2617 §3.2.2.2 as
/// corrected by RFC 7616 §3.4.2: the inner hash in hex).
pub fn ha1_sess(alg: Algorithm, ha1: &str, nonce: &str, cnonce: &str) -> String {
    alg.hash_hex(&[
        ha1.as_bytes(),
        b":",
        nonce.as_bytes(),
        b":",
        cnonce.as_bytes(),
    ])
}

/// The quality of protection of one exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qop<'a> {
    /// No qop (RFC 2069 compatibility): response = KD(HA1, nonce ":" HA2).
    None,
    /// `auth`.
    Auth,
    /// `auth-int` with H(entity-body) in hex (for an empty body, H("")).
    AuthInt {
        /// H(body) as hex.
        body_hash: &'a str,
    },
}

impl Qop<'_> {
    /// The token, if any.
    pub fn token(&self) -> Option<&'static str> {
        match self {
            Qop::None => None,
            Qop::Auth => Some("auth"),
            Qop::AuthInt { .. } => Some("auth-int"),
        }
    }
}

/// The inputs shared by request-digest and rspauth.
#[derive(Debug, Clone, Copy)]
pub struct Exchange<'a> {
    /// Algorithm.
    pub alg: Algorithm,
    /// H(A1) in hex — already the `-sess` value when a session algorithm is used.
    pub ha1: &'a str,
    /// Server nonce.
    pub nonce: &'a str,
    /// Client nonce (with qop).
    pub cnonce: &'a str,
    /// Nonce count as the 8 hex digits sent.
    pub nc: &'a str,
    /// Quality of protection.
    pub qop: Qop<'a>,
    /// The digest-uri.
    pub uri: &'a str,
}

impl Exchange<'_> {
    fn kd(&self, ha2: &str) -> String {
        let a = self.alg;
        match self.qop.token() {
            Some(q) => a.hash_hex(&[
                self.ha1.as_bytes(),
                b":",
                self.nonce.as_bytes(),
                b":",
                self.nc.as_bytes(),
                b":",
                self.cnonce.as_bytes(),
                b":",
                q.as_bytes(),
                b":",
                ha2.as_bytes(),
            ]),
            None => a.hash_hex(&[
                self.ha1.as_bytes(),
                b":",
                self.nonce.as_bytes(),
                b":",
                ha2.as_bytes(),
            ]),
        }
    }

    fn ha2(&self, method: &str) -> String {
        match self.qop {
            Qop::AuthInt { body_hash } => self.alg.hash_hex(&[
                method.as_bytes(),
                b":",
                self.uri.as_bytes(),
                b":",
                body_hash.as_bytes(),
            ]),
            _ => self
                .alg
                .hash_hex(&[method.as_bytes(), b":", self.uri.as_bytes()]),
        }
    }

    /// The request-digest a client sends as `response` for `method`.
    pub fn request_digest(&self, method: &str) -> String {
        self.kd(&self.ha2(method))
    }

    /// The `rspauth` a server returns: A2 has an empty method (RFC 2617 §3.2.3); with
    /// auth-int, `body_hash` is H(response body) — pass it in `qop`.
    pub fn rspauth(&self) -> String {
        self.kd(&self.ha2(""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_algorithm_tokens() {
        assert_eq!(Algorithm::parse("md5"), Some((Algorithm::Md5, false)));
        assert_eq!(
            Algorithm::parse("SHA-512-256-sess"),
            Some((Algorithm::Sha512_256, true))
        );
        assert_eq!(
            Algorithm::parse("SHA256"),
            None,
            "RFC 8760 spells it SHA-256"
        );
        assert_eq!(Algorithm::parse("SHA-512"), None);
        assert_eq!(Algorithm::parse("-sess"), None);
    }

    #[test]
    fn sha512_256_is_not_truncated_sha512() {
        // FIPS 180-4 SHA-512/256 of "abc".
        assert_eq!(
            Algorithm::Sha512_256.hash_hex(&[b"abc"]),
            "53048e2681941ef99b2e29b76b4c7dabe4c2d0c634fc6d46e0e2f13107e7af23"
        );
    }
}
