//! Session certificates: the certificate a user agent sends in its request bodies so that
//! the RFC 4474 Identity its domain's proxy adds binds it to the From identity for the
//! session (draft-fries-sip-identity-usage-bcp, "the seed BCP": §4.1 forward, §4.2 reverse
//! via an UPDATE, §6 a fresh short-lived key pair per login).
//!
//! Pure building blocks, no I/O and no clock (time is an argument):
//!
//! - [`LoginCertificate`]: a fresh P-256 key and self-signed certificate naming the AoR (and
//!   optionally the device), default lifetime 24 h, with expiry and renewal checks; or a
//!   device certificate and key loaded from PEM.
//! - [`CertFingerprint`]: RFC 8122 §5 (RFC 4572) fingerprints, `sha-256 AB:CD:…`.
//! - [`encode_certs_only`] / [`decode_certs_only`]: the S/MIME certs-only entity
//!   (RFC 3261 §23.2, RFC 5751 §3.6), a CMS SignedData without signers (RFC 5652 §5).
//! - [`body_with_certificate`]: the request body, `multipart/mixed` with the SDP and a
//!   certs-only part, and/or the SDP with an `a=fingerprint` ([`CertificateCarriage`]);
//!   [`offered_certificates`]: the receiver's reading of either form.
//!
//! Sender:
//! ```
//! use vouch_auth::session_cert::*;
//! let now = 1_700_000_000;
//! let cert = LoginCertificate::generate("sip:alice@atlanta.example", None, now,
//!                                       DEFAULT_LIFETIME_SECS)?;
//! let sdp = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
//!             m=audio 49170 RTP/AVP 0\r\n";
//! let out = body_with_certificate(sdp, cert.der(), CertificateCarriage::Both)?;
//! // Send out.body with `Content-Type: {out.content_type}`; the proxy signs it (RFC 4474).
//!
//! // Receiver, after the Identity verified:
//! let offered = offered_certificates(&out.content_type, &out.body)?;
//! assert!(offered.offers_exactly(cert.der()));
//! assert!(offered.sdp.is_some());
//! # Ok::<(), SessionCertError>(())
//! ```

mod body;
mod certs_only;
mod fingerprint;
mod login;

pub use body::{
    BodyCertificates, CERTS_ONLY_CONTENT_TYPE, CERTS_ONLY_DISPOSITION,
    CERTS_ONLY_TRANSFER_ENCODING, CertificateCarriage, OutgoingBody, add_fingerprint_to_sdp,
    body_with_certificate, certs_only_body, offered_certificates, sdp_fingerprints,
};
pub use certs_only::{CertsOnlyLimits, decode_certs_only, encode_certs_only};
pub use fingerprint::{CertFingerprint, FingerprintHash};
pub use login::{DEFAULT_LIFETIME_SECS, LoginCertificate};

use vouch_msg::multipart::MultipartError;

/// Why a session certificate could not be made, loaded, encoded or read from a body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionCertError {
    /// The AoR is not a `sip:` or `sips:` URI.
    #[error("invalid address of record {0:?}: expected a sip: or sips: URI")]
    InvalidAor(String),
    /// The device identifier is not a URI (such as `urn:uuid:…`).
    #[error("invalid device identifier {0:?}: expected a URI such as urn:uuid:…")]
    InvalidDevice(String),
    /// The validity period cannot be encoded (non-positive lifetime, out of range).
    #[error("invalid validity period: {0}")]
    InvalidValidity(&'static str),
    /// Key or certificate generation failed.
    #[error("certificate generation failed: {0}")]
    Generation(String),
    /// A certificate is not one readable X.509 certificate.
    #[error("bad certificate: {0}")]
    BadCertificate(&'static str),
    /// The private key is unreadable or of an unsupported form.
    #[error("bad private key: {0}")]
    BadPrivateKey(&'static str),
    /// The private key does not belong to the certificate.
    #[error("the private key does not match the certificate")]
    KeyMismatch,
    /// A fingerprint value is malformed.
    #[error("malformed fingerprint: {0}")]
    BadFingerprint(&'static str),
    /// A fingerprint uses a hash function vouch does not support.
    #[error("unsupported fingerprint hash function {0:?}")]
    UnsupportedHash(String),
    /// A certs-only S/MIME entity is malformed or exceeds [`CertsOnlyLimits`].
    #[error("bad certs-only S/MIME entity: {0}")]
    BadCertsOnly(&'static str),
    /// The multipart body is malformed or exceeds its limits.
    #[error("bad multipart body: {0}")]
    Multipart(#[from] MultipartError),
    /// The body's Content-Type is none vouch reads certificates from.
    #[error("unsupported body Content-Type {0:?}")]
    UnsupportedContentType(String),
    /// The body is otherwise malformed (the detail says how).
    #[error("bad body: {0}")]
    BadBody(&'static str),
}
