//! The user agent's own certificate: a fresh P-256 key and self-signed certificate per user
//! login (seed BCP §6), or a device certificate loaded from PEM.

use std::fmt;

use rcgen::{
    CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType,
    date_time_ymd, string::Ia5String,
};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use vouch_msg::Uri;
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer as _;

use super::{CertFingerprint, SessionCertError};

/// Default lifetime of a per-login certificate: 24 hours (issue 6; the BCP §6 asks for a
/// "rather short" lifetime and regeneration on expiry).
pub const DEFAULT_LIFETIME_SECS: i64 = 24 * 60 * 60;

/// The certificate a user agent sends in its bodies, with its private key.
///
/// Made by [`LoginCertificate::generate`] (per login) or loaded with
/// [`LoginCertificate::from_pem`] (a device certificate). Renew with `generate` when
/// [`needs_renewal`](Self::needs_renewal) says so. `Debug` never prints the private key.
#[derive(Clone)]
pub struct LoginCertificate {
    aor: String,
    device: Option<String>,
    der: Vec<u8>,
    key_pkcs8: Vec<u8>,
    not_before: i64,
    not_after: i64,
    fingerprint: CertFingerprint,
    generated: bool,
}

impl fmt::Debug for LoginCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginCertificate")
            .field("aor", &self.aor)
            .field("device", &self.device)
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .field("fingerprint", &self.fingerprint.to_string())
            .field("generated", &self.generated)
            .finish_non_exhaustive()
    }
}

impl LoginCertificate {
    /// Generates a fresh P-256 key pair and a self-signed certificate (ECDSA with SHA-256)
    /// valid from `not_before_unix` for `lifetime_secs` seconds ([`DEFAULT_LIFETIME_SECS`]
    /// unless configured otherwise).
    ///
    /// The subject is `CN=<aor>`; subjectAltName holds the AoR as a URI (as RFC 5922 §7.1 names
    /// SIP identities) and, when given, the device as a second URI — use the UA's
    /// `+sip.instance` (RFC 5626 §4.1), such as `urn:uuid:…`; surrounding `"<…>"` is removed.
    /// The AoR must be a `sip:` or `sips:` URI. No clock is read: pass the current time (minus
    /// any allowance for the peer's clock skew) as `not_before_unix`.
    pub fn generate(
        aor: &str,
        device: Option<&str>,
        not_before_unix: i64,
        lifetime_secs: i64,
    ) -> Result<Self, SessionCertError> {
        let aor = check_aor(aor)?;
        let device = device.map(check_device).transpose()?;
        if lifetime_secs <= 0 {
            return Err(SessionCertError::InvalidValidity(
                "lifetime must be positive",
            ));
        }
        let not_after_unix = not_before_unix
            .checked_add(lifetime_secs)
            .ok_or(SessionCertError::InvalidValidity("validity overflows"))?;

        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, aor.as_str());
        let uri = |s: &str| {
            Ia5String::try_from(s)
                .map(SanType::URI)
                .map_err(|_| SessionCertError::InvalidAor(s.to_owned()))
        };
        params.subject_alt_names = vec![uri(&aor)?];
        if let Some(device) = &device {
            params.subject_alt_names.push(uri(device)?);
        }
        // rcgen takes `time::OffsetDateTime`; epoch plus a Duration builds one without a direct
        // dependency on the `time` crate. The range check above keeps the addition in range.
        params.not_before = date_time_ymd(1970, 1, 1) + since_epoch(not_before_unix)?;
        params.not_after = date_time_ymd(1970, 1, 1) + since_epoch(not_after_unix)?;
        params.is_ca = IsCa::ExplicitNoCa;
        // Signing (DTLS, MIKEY signatures) and ECDH key agreement are what a session key does.
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyAgreement,
        ];
        // The serial number stays rcgen's default, derived from the (fresh) public key, so two
        // logins never share one.

        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
            .map_err(|e| SessionCertError::Generation(e.to_string()))?;
        let cert = params
            .self_signed(&key)
            .map_err(|e| SessionCertError::Generation(e.to_string()))?;
        let der = cert.der().to_vec();
        Ok(LoginCertificate {
            aor,
            device,
            fingerprint: CertFingerprint::of(&der),
            der,
            key_pkcs8: key.serialize_der(),
            not_before: not_before_unix,
            not_after: not_after_unix,
            generated: true,
        })
    }

    /// Loads a device certificate and its PKCS#8 private key (`-----BEGIN PRIVATE KEY-----`;
    /// convert others with `openssl pkcs8 -topk8 -nocrypt`) from PEM text, read from files by
    /// the caller. The first certificate of `certificate_pem` is used.
    ///
    /// The certificate need not name `aor` (seed BCP §3: the binding to the AoR comes from the
    /// RFC 4474 Identity, not from the certificate), but the key must match it.
    pub fn from_pem(
        aor: &str,
        certificate_pem: &[u8],
        private_key_pem: &[u8],
    ) -> Result<Self, SessionCertError> {
        let cert = CertificateDer::from_pem_slice(certificate_pem)
            .map_err(|_| SessionCertError::BadCertificate("no PEM certificate"))?;
        let key = match PrivateKeyDer::from_pem_slice(private_key_pem) {
            Ok(PrivateKeyDer::Pkcs8(key)) => key,
            Ok(_) => {
                return Err(SessionCertError::BadPrivateKey(
                    "not PKCS#8 (BEGIN PRIVATE KEY)",
                ));
            }
            Err(_) => return Err(SessionCertError::BadPrivateKey("no PEM private key")),
        };
        Self::from_der(aor, cert.as_ref(), key.secret_pkcs8_der())
    }

    /// As [`from_pem`](Self::from_pem), from a DER certificate and a PKCS#8 DER key.
    pub fn from_der(
        aor: &str,
        certificate_der: &[u8],
        private_key_pkcs8_der: &[u8],
    ) -> Result<Self, SessionCertError> {
        let aor = check_aor(aor)?;
        let (rest, cert) = X509Certificate::from_der(certificate_der)
            .map_err(|_| SessionCertError::BadCertificate("unreadable X.509 certificate"))?;
        if !rest.is_empty() {
            return Err(SessionCertError::BadCertificate(
                "bytes after the certificate",
            ));
        }
        let key = KeyPair::try_from(private_key_pkcs8_der)
            .map_err(|_| SessionCertError::BadPrivateKey("unusable PKCS#8 key"))?;
        if key.public_key_raw() != cert.public_key().subject_public_key.data.as_ref() {
            return Err(SessionCertError::KeyMismatch);
        }
        Ok(LoginCertificate {
            aor,
            device: None,
            fingerprint: CertFingerprint::of(certificate_der),
            der: certificate_der.to_vec(),
            key_pkcs8: private_key_pkcs8_der.to_vec(),
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
            generated: false,
        })
    }

    /// The AoR this certificate is used for.
    pub fn aor(&self) -> &str {
        &self.aor
    }

    /// The device URI put in the certificate, if any (always `None` for a loaded one).
    pub fn device(&self) -> Option<&str> {
        self.device.as_deref()
    }

    /// The certificate, DER.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The private key, PKCS#8 DER, for DTLS-SRTP or MIKEY users. Keep it in memory only.
    pub fn key_pkcs8_der(&self) -> &[u8] {
        &self.key_pkcs8
    }

    /// The SHA-256 fingerprint of [`der`](Self::der).
    pub fn fingerprint(&self) -> &CertFingerprint {
        &self.fingerprint
    }

    /// Start of validity, Unix seconds.
    pub fn not_before(&self) -> i64 {
        self.not_before
    }

    /// End of validity, Unix seconds; the certificate is still valid during this second
    /// (RFC 5280 §4.1.2.5: the period includes notAfter).
    pub fn not_after(&self) -> i64 {
        self.not_after
    }

    /// True when made by [`generate`](Self::generate), false when loaded.
    pub fn is_generated(&self) -> bool {
        self.generated
    }

    /// True when `now_unix` is within notBefore..=notAfter.
    pub fn is_valid_at(&self, now_unix: i64) -> bool {
        (self.not_before..=self.not_after).contains(&now_unix)
    }

    /// True once `now_unix` is past notAfter.
    pub fn is_expired(&self, now_unix: i64) -> bool {
        now_unix > self.not_after
    }

    /// When to replace the certificate: a tenth of its lifetime before notAfter, so a new
    /// one is in place (and in new requests) before peers would refuse the old one.
    pub fn renew_at(&self) -> i64 {
        self.not_after - (self.not_after - self.not_before) / 10
    }

    /// True from [`renew_at`](Self::renew_at) on, or when the certificate is not valid yet (the
    /// clock went back: a new one dated now is better than one a peer refuses).
    pub fn needs_renewal(&self, now_unix: i64) -> bool {
        now_unix >= self.renew_at() || now_unix < self.not_before
    }
}

/// The AoR as put in the certificate: a `sip:`/`sips:` URI, surrounding spaces removed.
fn check_aor(aor: &str) -> Result<String, SessionCertError> {
    let aor = aor.trim();
    match Uri::parse(aor) {
        Ok(Uri::Sip(_)) if aor.is_ascii() => Ok(aor.to_owned()),
        _ => Err(SessionCertError::InvalidAor(aor.to_owned())),
    }
}

/// The device as a URI; accepts a `+sip.instance` value with its quotes and angle brackets.
fn check_device(device: &str) -> Result<String, SessionCertError> {
    let d = device.trim();
    let d = d
        .strip_prefix('"')
        .and_then(|d| d.strip_suffix('"'))
        .unwrap_or(d);
    let d = d
        .strip_prefix('<')
        .and_then(|d| d.strip_suffix('>'))
        .unwrap_or(d);
    let is_uri = d.is_ascii() && !d.contains(char::is_whitespace) && Uri::parse(d).is_ok();
    if is_uri {
        Ok(d.to_owned())
    } else {
        Err(SessionCertError::InvalidDevice(device.to_owned()))
    }
}

/// 9999-12-31T23:59:59Z, the last instant an X.509 GeneralizedTime can hold (RFC 5280 §4.1.2.5).
const LAST_X509_TIME: i64 = 253_402_300_799;

/// Seconds since the epoch as a Duration, refusing what X.509 cannot encode.
fn since_epoch(unix: i64) -> Result<std::time::Duration, SessionCertError> {
    if !(0..=LAST_X509_TIME).contains(&unix) {
        return Err(SessionCertError::InvalidValidity(
            "time outside 1970..=9999",
        ));
    }
    Ok(std::time::Duration::from_secs(unix.unsigned_abs()))
}
