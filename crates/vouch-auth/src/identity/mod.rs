//! SIP identity: the RFC 4474 authentication service (§5, §6) and the signature check of the
//! verification service (§6, §7), on the digest-string of RFC 4474 §9.
//!
//! The full verifier (chain, domain match, Date window, replay cache) is [`Verifier`]; what can
//! be refused before any certificate is fetched (RFC 4474 §6.2 step 1 dereferences
//! Identity-Info) is [`check_before_fetch`]. `vouch-proto`'s verification service drives both.

mod rsa_sign;
mod verifier;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use vouch_msg::headers::identity::{Identity, IdentityInfo};
use vouch_msg::{HeaderName, Limits, Message, MessageBuilder, ParseError};

pub use rsa_sign::{RsaHash, RsaKeyError, RsaSigningKey};
pub use verifier::{
    DEFAULT_REPLAY_CAPACITY, TrustStore, VerifiedIdentity, Verifier, VerifierConfig,
    certificate_domains, certificate_validity,
};

/// RFC 4474 §6 `alg` values vouch signs and verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityAlg {
    /// `rsa-sha1`, the algorithm RFC 4474 mandates.
    RsaSha1,
    /// `rsa-sha256`.
    RsaSha256,
}

impl IdentityAlg {
    /// The Identity-Info `alg` token.
    pub fn token(self) -> &'static str {
        match self {
            IdentityAlg::RsaSha1 => "rsa-sha1",
            IdentityAlg::RsaSha256 => "rsa-sha256",
        }
    }

    /// Reads an `alg` token (case-insensitive).
    pub fn parse(token: &str) -> Option<Self> {
        [IdentityAlg::RsaSha1, IdentityAlg::RsaSha256]
            .into_iter()
            .find(|a| a.token().eq_ignore_ascii_case(token))
    }

    fn hash(self) -> RsaHash {
        match self {
            IdentityAlg::RsaSha1 => RsaHash::Sha1,
            IdentityAlg::RsaSha256 => RsaHash::Sha256,
        }
    }
}

/// Why a request could not be signed or its Identity not verified, with the response a
/// verifier answers (RFC 4474 §12).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// A header the digest-string needs is missing (Date, From, To, CSeq, Call-ID).
    #[error("{0} header missing: the digest-string needs it")]
    MissingHeader(&'static str),
    /// No Identity header (428 Use Identity Header).
    #[error("no Identity header")]
    NoIdentity,
    /// Identity or Identity-Info malformed (436 for Identity-Info, 438 for Identity).
    #[error("malformed {header}: {source}")]
    Malformed {
        /// The header.
        header: &'static str,
        /// The parse failure.
        source: ParseError,
    },
    /// No Identity-Info, or an `alg` vouch does not support (436 Bad Identity-Info).
    #[error("unsupported or missing Identity-Info alg")]
    UnsupportedAlg,
    /// The signature does not match (438 Invalid Identity Header).
    #[error("Identity signature does not verify")]
    BadSignature,
    /// The signing key could not be used.
    #[error("signing key: {0}")]
    Key(#[from] RsaKeyError),
    /// The Identity-Info certificate could not be fetched (436).
    #[error("Identity-Info certificate unavailable: {0}")]
    Fetch(String),
    /// The certificate does not chain to a trust anchor, is expired or unreadable (437).
    #[error("certificate not acceptable: {0}")]
    UntrustedCertificate(String),
    /// The certificate does not name the From domain (437).
    #[error("certificate name mismatch: {0}")]
    CertificateNameMismatch(String),
    /// The Date is outside the accepted window (403 Stale Date).
    #[error("Date outside the accepted window")]
    StaleDate,
    /// The same signed request was seen before (403).
    #[error("replayed request")]
    Replay,
    /// The replay cache is full of entries still inside the Date window, so the request cannot
    /// be checked for replay (503: an overload of the verifier, not a fault of the sender).
    #[error("replay cache full: the request cannot be checked for replay; try again later")]
    ReplayCacheFull,
    /// The signed message could not be built.
    #[error("building the signed message: {0}")]
    Build(ParseError),
}

impl IdentityError {
    /// The status code a verifier answers with (RFC 4474 §12.2–§12.4).
    pub fn status(&self) -> u16 {
        match self {
            IdentityError::NoIdentity => 428,
            IdentityError::UnsupportedAlg
            | IdentityError::Fetch(_)
            | IdentityError::Malformed {
                header: "Identity-Info",
                ..
            } => 436,
            IdentityError::MissingHeader(_) => 400,
            IdentityError::UntrustedCertificate(_) | IdentityError::CertificateNameMismatch(_) => {
                437
            }
            IdentityError::StaleDate | IdentityError::Replay => 403,
            IdentityError::ReplayCacheFull => 503,
            IdentityError::Key(_) | IdentityError::Build(_) => 500,
            _ => 438,
        }
    }
}

/// The RFC 4474 §9 digest-string: From addr-spec | To addr-spec | Call-ID | CSeq number and
/// method | Date | Contact addr-spec (empty without Contact) | the whole body. Every part is
/// taken as written in the message, so the verifier hashes exactly what was received.
pub fn digest_string(msg: &Message) -> Result<Vec<u8>, IdentityError> {
    let date = msg
        .header(HeaderName::Date)
        .ok_or(IdentityError::MissingHeader("Date"))?;
    digest_string_with_date(msg, date.value)
}

/// [`digest_string`] with `date` as the Date part (the Date header the message is about to get).
fn digest_string_with_date(msg: &Message, date: &str) -> Result<Vec<u8>, IdentityError> {
    let from = msg.from().ok_or(IdentityError::MissingHeader("From"))?;
    let to = msg.to().ok_or(IdentityError::MissingHeader("To"))?;
    let cseq = msg
        .header(HeaderName::CSeq)
        .ok_or(IdentityError::MissingHeader("CSeq"))?;
    // "1*DIGIT SP Method": the number as written, one space, the method.
    let mut parts = cseq
        .value
        .split(|c: char| c.is_ascii_whitespace())
        .filter(|p| !p.is_empty());
    let (number, method) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let contact = msg.first_contact_addr();
    let contact = contact.as_ref().map(|a| a.uri().as_str());
    let body = msg.body_bytes();
    let mut out = Vec::with_capacity(256 + body.len());
    for (i, part) in [
        from.uri().as_str(),
        to.uri().as_str(),
        msg.call_id(),
        number,
    ]
    .into_iter()
    .enumerate()
    {
        if i > 0 {
            out.push(b'|');
        }
        out.extend_from_slice(part.as_bytes());
    }
    out.push(b' ');
    out.extend_from_slice(method.as_bytes());
    out.push(b'|');
    out.extend_from_slice(date.as_bytes());
    out.push(b'|');
    out.extend_from_slice(contact.unwrap_or_default().as_bytes());
    out.push(b'|');
    out.extend_from_slice(body);
    Ok(out)
}

/// Signs the digest-string of `msg` and returns the base64 Identity value (without quotes).
pub fn sign_digest_string(
    msg: &Message,
    key: &RsaSigningKey,
    alg: IdentityAlg,
) -> Result<String, IdentityError> {
    sign_ds(&digest_string(msg)?, key, alg)
}

/// The base64 signature of a digest-string.
fn sign_ds(ds: &[u8], key: &RsaSigningKey, alg: IdentityAlg) -> Result<String, IdentityError> {
    Ok(B64.encode(key.sign(alg.hash(), ds)?))
}

/// Adds `Identity` and `Identity-Info` to `msg` (RFC 4474 §5 step 4). The message must
/// already carry a Date; for one without, [`add_date_and_identity`] adds it in the same edit.
/// The signed message is parsed under the default limits; [`add_identity_with`] takes others.
pub fn add_identity(
    msg: &Message,
    key: &RsaSigningKey,
    alg: IdentityAlg,
    cert_url: &str,
) -> Result<Message, IdentityError> {
    add_identity_with(msg, key, alg, cert_url, &Limits::DEFAULT)
}

/// [`add_identity`] parsing the signed message under `limits` — those `msg` was received
/// under, so that a request they admitted is not refused for being bigger than the defaults.
pub fn add_identity_with(
    msg: &Message,
    key: &RsaSigningKey,
    alg: IdentityAlg,
    cert_url: &str,
    limits: &Limits,
) -> Result<Message, IdentityError> {
    let sig = sign_digest_string(msg, key, alg)?;
    let mut b = msg.edit();
    push_identity(&mut b, &sig, alg, cert_url);
    b.build_with(limits).map_err(IdentityError::Build)
}

/// [`add_identity`] for a message without a Date: adds `date` (an RFC 3261 §20.17 SIP-date,
/// as RFC 4474 §5 step 3 has the authentication service add it), Identity and Identity-Info
/// in one edit, so the message is printed and parsed once rather than twice. The signature
/// covers `date` exactly as the Date header carries it. Parsed under the default limits;
/// [`add_date_and_identity_with`] takes others.
pub fn add_date_and_identity(
    msg: &Message,
    date: &str,
    key: &RsaSigningKey,
    alg: IdentityAlg,
    cert_url: &str,
) -> Result<Message, IdentityError> {
    add_date_and_identity_with(msg, date, key, alg, cert_url, &Limits::DEFAULT)
}

/// [`add_date_and_identity`] parsing the signed message under `limits`, as
/// [`add_identity_with`].
pub fn add_date_and_identity_with(
    msg: &Message,
    date: &str,
    key: &RsaSigningKey,
    alg: IdentityAlg,
    cert_url: &str,
    limits: &Limits,
) -> Result<Message, IdentityError> {
    let date = date.trim();
    let ds = digest_string_with_date(msg, date)?;
    let sig = sign_ds(&ds, key, alg)?;
    let mut b = msg.edit();
    b.remove("Date");
    b.push("Date", date);
    push_identity(&mut b, &sig, alg, cert_url);
    b.build_with(limits).map_err(IdentityError::Build)
}

/// Replaces any Identity and Identity-Info with the ones for `sig`.
fn push_identity(b: &mut MessageBuilder, sig: &str, alg: IdentityAlg, cert_url: &str) {
    b.remove("Identity");
    b.remove("Identity-Info");
    b.push("Identity", &format!("\"{sig}\""));
    b.push(
        "Identity-Info",
        &format!("<{cert_url}>;alg={}", alg.token()),
    );
}

/// The Identity-Info of a message: the certificate URL and the algorithm.
pub fn identity_info(msg: &Message) -> Result<(String, IdentityAlg), IdentityError> {
    let h = msg
        .header(HeaderName::IdentityInfo)
        .ok_or(IdentityError::UnsupportedAlg)?;
    let info = IdentityInfo::parse(h.value).map_err(|source| IdentityError::Malformed {
        header: "Identity-Info",
        source,
    })?;
    // RFC 4474 §9: alg defaults to rsa-sha1 when absent.
    let alg = match info.alg() {
        Some(a) => IdentityAlg::parse(a).ok_or(IdentityError::UnsupportedAlg)?,
        None => IdentityAlg::RsaSha1,
    };
    Ok((info.uri().to_string(), alg))
}

/// Checks the Identity signature of `msg` against an RSA public key (`RSAPublicKey` DER, as in
/// a certificate's subjectPublicKeyInfo). This is the cryptographic step only; it proves
/// nothing about who the key belongs to.
pub fn verify_signature(
    msg: &Message,
    rsa_public_key_der: &[u8],
) -> Result<IdentityAlg, IdentityError> {
    let headers = check_before_fetch(msg)?;
    verify_decoded_signature(msg, headers.alg, &headers.signature, |alg, ds, sig| {
        aws_lc_rs::signature::UnparsedPublicKey::new(
            verification_algorithm(alg),
            rsa_public_key_der,
        )
        .verify(ds, sig)
        .is_ok()
    })
}

/// The aws-lc verification algorithm of an `alg` label.
pub(crate) fn verification_algorithm(
    alg: IdentityAlg,
) -> &'static aws_lc_rs::signature::RsaParameters {
    match alg {
        IdentityAlg::RsaSha1 => &aws_lc_rs::signature::RSA_PKCS1_1024_8192_SHA1_FOR_LEGACY_USE_ONLY,
        IdentityAlg::RsaSha256 => {
            &aws_lc_rs::signature::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY
        }
    }
}

/// The signature an Identity header carries, decoded: 428 without Identity; 438 when its value
/// is malformed, longer than [`vouch_msg::headers::identity::MAX_IDENTITY_LEN`] or not base64
/// (RFC 4474 §9: `signed-identity-digest` is a quoted base64 string).
pub fn identity_signature(msg: &Message) -> Result<Vec<u8>, IdentityError> {
    let h = msg
        .header(HeaderName::Identity)
        .ok_or(IdentityError::NoIdentity)?;
    let id = Identity::parse(h.value).map_err(|source| IdentityError::Malformed {
        header: "Identity",
        source,
    })?;
    B64.decode(id.signature().as_bytes())
        .map_err(|_| IdentityError::BadSignature)
}

/// Everything a verifier can refuse before it fetches the Identity-Info certificate (RFC 4474
/// §6.2 step 1): no Identity (428), an Identity that can never verify — malformed, oversized,
/// not base64 (438) — and a malformed Identity-Info or unsupported `alg` (436). A request
/// refused here must not cost a fetch. Returns what it read, for [`Verifier::verify_read`]
/// once the certificate is there; which URI schemes can be dereferenced is the fetcher's
/// business (436 too).
pub fn check_before_fetch(msg: &Message) -> Result<IdentityHeaders, IdentityError> {
    let signature = identity_signature(msg)?;
    let (cert_url, alg) = identity_info(msg)?;
    Ok(IdentityHeaders {
        signature,
        cert_url,
        alg,
    })
}

/// A request's Identity and Identity-Info as [`check_before_fetch`] read them, so the
/// verifier does not read them again. Only `check_before_fetch` makes one.
#[derive(Debug)]
pub struct IdentityHeaders {
    signature: Vec<u8>,
    cert_url: String,
    alg: IdentityAlg,
}

impl IdentityHeaders {
    /// The Identity-Info URI: where the signer certificate is.
    pub fn cert_url(&self) -> &str {
        &self.cert_url
    }

    /// The Identity-Info `alg` (rsa-sha1 when absent, RFC 4474 §9).
    pub fn alg(&self) -> IdentityAlg {
        self.alg
    }
}

/// Checks `sig` (taken from the Identity header) over the digest-string of `msg`, with the
/// check of `(alg, digest-string, signature)` supplied: the verifier passes keys it parsed
/// once per certificate.
pub(crate) fn verify_decoded_signature(
    msg: &Message,
    alg: IdentityAlg,
    sig: &[u8],
    check: impl FnOnce(IdentityAlg, &[u8], &[u8]) -> bool,
) -> Result<IdentityAlg, IdentityError> {
    let ds = digest_string(msg)?;
    if !check(alg, &ds, sig) {
        return Err(IdentityError::BadSignature);
    }
    Ok(alg)
}
