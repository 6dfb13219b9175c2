//! Certificate fingerprints as SDP carries them: `a=fingerprint:<hash-func> <hex:hex:...>`
//! (RFC 8122 §5, formerly RFC 4572 §5).

use std::fmt;
use std::str::FromStr;

use aws_lc_rs::digest;

use super::SessionCertError;

/// The hash functions vouch computes and reads in a fingerprint (RFC 8122 §5 `hash-func`).
/// `md2` and `md5` are refused: RFC 8122 §5 forbids them for new fingerprints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FingerprintHash {
    /// `sha-1`: still read, since RFC 8122 §5 keeps it for backwards compatibility.
    Sha1,
    /// `sha-224`.
    Sha224,
    /// `sha-256`: what vouch writes (RFC 8122 §5: the hash of the certificate's signature
    /// algorithm, and at least SHA-256).
    Sha256,
    /// `sha-384`.
    Sha384,
    /// `sha-512`.
    Sha512,
}

impl FingerprintHash {
    const ALL: [FingerprintHash; 5] = [
        FingerprintHash::Sha1,
        FingerprintHash::Sha224,
        FingerprintHash::Sha256,
        FingerprintHash::Sha384,
        FingerprintHash::Sha512,
    ];

    /// The `hash-func` token (lower case, as RFC 8122 writes them).
    pub fn token(self) -> &'static str {
        match self {
            FingerprintHash::Sha1 => "sha-1",
            FingerprintHash::Sha224 => "sha-224",
            FingerprintHash::Sha256 => "sha-256",
            FingerprintHash::Sha384 => "sha-384",
            FingerprintHash::Sha512 => "sha-512",
        }
    }

    /// Reads a `hash-func` token, case-insensitively (RFC 8122 §5: tokens are
    /// case-insensitive, like the IANA "Hash Function Textual Names").
    pub fn parse(token: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|h| h.token().eq_ignore_ascii_case(token))
    }

    /// Digest length in bytes.
    pub fn digest_len(self) -> usize {
        self.algorithm().output_len()
    }

    fn algorithm(self) -> &'static digest::Algorithm {
        match self {
            FingerprintHash::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
            FingerprintHash::Sha224 => &digest::SHA224,
            FingerprintHash::Sha256 => &digest::SHA256,
            FingerprintHash::Sha384 => &digest::SHA384,
            FingerprintHash::Sha512 => &digest::SHA512,
        }
    }
}

/// A certificate fingerprint: the hash function and the digest of the certificate's DER.
///
/// Displays as the SDP attribute value, `sha-256 AB:CD:…` (upper-case hex, colon-separated,
/// RFC 8122 §5 `fingerprint = 2UHEX *(":" 2UHEX)`); parses the same, reading hex in either case.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CertFingerprint {
    hash: FingerprintHash,
    digest: Vec<u8>,
}

impl CertFingerprint {
    /// The SHA-256 fingerprint of a DER certificate.
    pub fn of(certificate_der: &[u8]) -> Self {
        Self::with_hash(FingerprintHash::Sha256, certificate_der)
    }

    /// The fingerprint of a DER certificate with the given hash function.
    pub fn with_hash(hash: FingerprintHash, certificate_der: &[u8]) -> Self {
        let digest = digest::digest(hash.algorithm(), certificate_der)
            .as_ref()
            .to_vec();
        CertFingerprint { hash, digest }
    }

    /// Reads an SDP `a=fingerprint` value such as `sha-256 AB:CD:…`. A leading
    /// `a=fingerprint:` or `fingerprint:` is accepted and skipped. An unknown hash function is
    /// [`SessionCertError::UnsupportedHash`]; bad hex or a digest of the wrong length for the hash
    /// function is [`SessionCertError::BadFingerprint`].
    pub fn parse(value: &str) -> Result<Self, SessionCertError> {
        let value = value.trim();
        let value = strip_prefix_ignore_case(value, "a=")
            .and_then(|v| strip_prefix_ignore_case(v, "fingerprint:"))
            .or_else(|| strip_prefix_ignore_case(value, "fingerprint:"))
            .unwrap_or(value);
        let mut words = value.split([' ', '\t']).filter(|w| !w.is_empty());
        let (Some(token), Some(hex), None) = (words.next(), words.next(), words.next()) else {
            return Err(SessionCertError::BadFingerprint(
                "expected `<hash-func> <fingerprint>`",
            ));
        };
        let hash = FingerprintHash::parse(token)
            .ok_or_else(|| SessionCertError::UnsupportedHash(token.to_owned()))?;
        let digest = hex
            .split(':')
            .map(|pair| {
                // from_str_radix alone would accept a sign ("+9"), so check the digits first.
                if pair.len() == 2 && pair.bytes().all(|b| b.is_ascii_hexdigit()) {
                    u8::from_str_radix(pair, 16).ok()
                } else {
                    None
                }
            })
            .collect::<Option<Vec<u8>>>()
            .ok_or(SessionCertError::BadFingerprint(
                "fingerprint is not colon-separated hex pairs",
            ))?;
        if digest.len() != hash.digest_len() {
            return Err(SessionCertError::BadFingerprint(
                "fingerprint length does not match its hash function",
            ));
        }
        Ok(CertFingerprint { hash, digest })
    }

    /// The hash function.
    pub fn hash(&self) -> FingerprintHash {
        self.hash
    }

    /// The digest bytes.
    pub fn digest(&self) -> &[u8] {
        &self.digest
    }

    /// True when this is the fingerprint of `certificate_der` (exact comparison; both values
    /// are public, so no constant-time compare is needed).
    pub fn matches(&self, certificate_der: &[u8]) -> bool {
        digest::digest(self.hash.algorithm(), certificate_der).as_ref() == self.digest.as_slice()
    }

    /// The whole SDP line without its line ending: `a=fingerprint:sha-256 AB:…`.
    pub fn sdp_attribute(&self) -> String {
        format!("a=fingerprint:{self}")
    }
}

impl fmt::Display for CertFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.hash.token())?;
        for (i, b) in self.digest.iter().enumerate() {
            let sep = if i == 0 { ' ' } else { ':' };
            write!(f, "{sep}{b:02X}")?;
        }
        Ok(())
    }
}

impl FromStr for CertFingerprint {
    type Err = SessionCertError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CertFingerprint::parse(s)
    }
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_parse_round_trip() {
        let fp = CertFingerprint::of(b"certificate");
        let text = fp.to_string();
        assert!(text.starts_with("sha-256 "));
        assert_eq!(text.len(), "sha-256 ".len() + 32 * 3 - 1);
        assert_eq!(
            text,
            text.to_ascii_uppercase().replacen("SHA-256", "sha-256", 1)
        );
        assert_eq!(CertFingerprint::parse(&text).unwrap(), fp);
        assert_eq!(
            CertFingerprint::parse(&text.to_ascii_lowercase().replacen("sha-256", "SHA-256", 1))
                .unwrap(),
            fp
        );
        assert_eq!(CertFingerprint::parse(&fp.sdp_attribute()).unwrap(), fp);
        assert!(fp.matches(b"certificate"));
        assert!(!fp.matches(b"certificatf"));
    }

    #[test]
    fn every_hash_function() {
        for hash in FingerprintHash::ALL {
            let fp = CertFingerprint::with_hash(hash, b"x");
            assert_eq!(fp.digest().len(), hash.digest_len());
            let back: CertFingerprint = fp.to_string().parse().unwrap();
            assert_eq!(back, fp);
            assert!(back.matches(b"x"));
        }
    }

    #[test]
    fn known_sha1_vector() {
        // RFC 8122 §5's example format, with SHA-1 of the empty string.
        let fp = CertFingerprint::with_hash(FingerprintHash::Sha1, b"");
        assert_eq!(
            fp.to_string(),
            "sha-1 DA:39:A3:EE:5E:6B:4B:0D:32:55:BF:EF:95:60:18:90:AF:D8:07:09"
        );
    }

    #[test]
    fn malformed_values() {
        assert!(matches!(
            CertFingerprint::parse("md5 00:11"),
            Err(SessionCertError::UnsupportedHash(_))
        ));
        for bad in [
            "",
            "sha-256",
            "sha-256 AB:CD extra",
            "sha-1 DA:39:A3",
            "sha-1 DA39A3EE5E6B4B0D3255BFEF95601890AFD80709",
            "sha-1 DA:39:A3:EE:5E:6B:4B:0D:32:55:BF:EF:95:60:18:90:AF:D8:07:0G",
            "sha-1 DA:39:A3:EE:5E:6B:4B:0D:32:55:BF:EF:95:60:18:90:AF:D8:07:+9",
            "sha-1 DA:39:A3:EE:5E:6B:4B:0D:32:55:BF:EF:95:60:18:90:AF:D8:07:09:",
        ] {
            assert!(CertFingerprint::parse(bad).is_err(), "{bad}");
        }
    }
}
