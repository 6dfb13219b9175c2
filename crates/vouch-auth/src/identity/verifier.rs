//! The verification service (RFC 4474 §6.2, §12): an Identity that can be a signature at all
//! (438, checked first: see [`super::check_before_fetch`]), trust in the signer certificate
//! (chain to a configured anchor, RFC 4474 §6.2 step 1), its name against the From host (step
//! 2; the SIP domain identities of RFC 5922 §7.1, compared whole as §7.2 says — see
//! [`certificate_domains`]), the signature (step 3), the Date window and a replay cache (step
//! 4, RFC 4474 §13.1). Only [`Verifier::verify`] (and [`Verifier::verify_read`], given what
//! `check_before_fetch` read) makes a [`VerifiedIdentity`].
//!
//! The replay cache keeps each verified request until its Date leaves the window — a replay
//! after that is refused as stale — and fails closed: when it is full of entries still inside
//! the window, a new request is refused with 503 ([`IdentityError::ReplayCacheFull`]) rather
//! than evicting an entry that could then be replayed.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::Arc;

use aws_lc_rs::signature::ParsedPublicKey;

use rustls_pki_types::{
    AlgorithmIdentifier, CertificateDer, InvalidSignature, SignatureVerificationAlgorithm,
    TrustAnchor, UnixTime,
};
use vouch_msg::headers::date::SipDate;
use vouch_msg::{HeaderName, Message, Uri};
use webpki::{EndEntityCert, ExtendedKeyUsageValidator, KeyPurposeIdIter};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use super::{
    IdentityAlg, IdentityError, IdentityHeaders, verification_algorithm, verify_decoded_signature,
};

/// Certificates the verifier trusts: CA certificates as anchors, and any certificate listed
/// here is also accepted as itself (a pinned self-signed domain certificate, as Kamailio's
/// `cainfo_path` allows).
#[derive(Debug, Default)]
pub struct TrustStore {
    certs: Vec<Vec<u8>>,
}

impl TrustStore {
    /// An empty store.
    pub fn new() -> Self {
        TrustStore::default()
    }

    /// Adds every certificate of a PEM bundle (or one DER certificate).
    pub fn add_pem_or_der(&mut self, data: &[u8]) -> Result<usize, IdentityError> {
        use rustls_pki_types::pem::PemObject;
        let before = self.certs.len();
        if data.starts_with(b"-----") || data.windows(11).any(|w| w == b"-----BEGIN ") {
            for c in CertificateDer::pem_slice_iter(data) {
                let c = c.map_err(|_| {
                    IdentityError::UntrustedCertificate("unreadable PEM certificate".into())
                })?;
                self.certs.push(c.as_ref().to_vec());
            }
        } else {
            X509Certificate::from_der(data).map_err(|_| {
                IdentityError::UntrustedCertificate("unreadable DER certificate".into())
            })?;
            self.certs.push(data.to_vec());
        }
        Ok(self.certs.len() - before)
    }

    /// Number of certificates.
    pub fn len(&self) -> usize {
        self.certs.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.certs.is_empty()
    }
}

/// Verifier policy.
#[derive(Debug, Clone)]
pub struct VerifierConfig {
    /// A Date older than this (seconds) is stale (RFC 4474 §6.2 step 4 suggests 3600).
    pub max_age: i64,
    /// A Date further in the future than this is refused.
    pub max_future: i64,
    /// Check the Date header at all (offline tools may turn it off).
    pub check_date: bool,
    /// Check certificate validity times (off only for expired published examples).
    pub check_certificate_time: bool,
    /// Most requests the replay cache holds (default [`DEFAULT_REPLAY_CAPACITY`]). An entry
    /// lives until its Date is older than `max_age` (with `check_date` off: `max_age +
    /// max_future` after it was seen). When every entry is still live, new requests are
    /// refused with 503 until some expire: size it for the verified-request rate times
    /// `max_age`.
    pub replay_capacity: usize,
}

/// Default [`VerifierConfig::replay_capacity`]: one million entries — a sustained 277 verified
/// requests a second over the default 3600 s window — under 40 MB when full (an 8-octet hash
/// and a 16-octet expiry record each, plus table slack).
pub const DEFAULT_REPLAY_CAPACITY: usize = 1_000_000;

impl Default for VerifierConfig {
    fn default() -> Self {
        VerifierConfig {
            max_age: 3600,
            max_future: 600,
            check_date: true,
            check_certificate_time: true,
            replay_capacity: DEFAULT_REPLAY_CAPACITY,
        }
    }
}

/// A request whose Identity passed every check: signature, certificate chain, certificate name,
/// Date and replay. Only the verifier builds it; it is not `Clone`, so a binding made from it
/// cannot be duplicated.
#[derive(Debug)]
pub struct VerifiedIdentity {
    aor: String,
    signer_domain: String,
    certificate: Arc<[u8]>,
    alg: IdentityAlg,
    date: i64,
}

impl VerifiedIdentity {
    /// The From AoR the signer vouched for (`sip:user@host`).
    pub fn aor(&self) -> &str {
        &self.aor
    }
    /// The domain whose certificate signed.
    pub fn signer_domain(&self) -> &str {
        &self.signer_domain
    }
    /// The signer certificate (DER).
    pub fn certificate(&self) -> &[u8] {
        &self.certificate
    }
    /// The signature algorithm.
    pub fn alg(&self) -> IdentityAlg {
        self.alg
    }
    /// The Date of the request, Unix seconds.
    pub fn date(&self) -> i64 {
        self.date
    }
}

/// The verification service state: trust and the replay cache.
#[derive(Debug)]
pub struct Verifier {
    config: VerifierConfig,
    trust: TrustStore,
    /// Certificates whose chain validated, with what each request needs from them, so a
    /// warm certificate costs no X.509 parsing or path building (RFC 4474 §6.2 step 1 done
    /// once per certificate and validity window).
    checked: HashMap<Vec<u8>, Arc<CheckedCert>, BuildHasherDefault<TailHasher>>,
    /// Replay cache: keyed 64-bit hashes of (Call-ID, CSeq, Date, signature). The hash key is
    /// random per verifier, so nobody can aim collisions.
    replay: HashSet<u64>,
    /// The same entries with when each expires (Unix seconds), soonest first.
    replay_expiry: BinaryHeap<Reverse<(i64, u64)>>,
    replay_hasher: RandomState,
}

/// Hashes a certificate (a validated chain) by its length and its last 32 octets — the end of
/// its signature, as good as random — instead of all of it: a warm lookup costs no pass over
/// a kilobyte of DER. Equality still compares every octet.
#[derive(Debug, Default)]
struct TailHasher(u64);

impl Hasher for TailHasher {
    fn write(&mut self, bytes: &[u8]) {
        let tail = &bytes[bytes.len().saturating_sub(32)..];
        for chunk in tail.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(29) ^ u64::from_le_bytes(word))
                .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_usize(&mut self, n: usize) {
        self.0 = (self.0 ^ n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// The key of [`Verifier::checked`] for a certificate and its intermediates, looked up before
/// anything is parsed, so the kinds of key must not overlap. A lone certificate, the usual
/// case, is its own key with nothing built when it starts as every DER certificate does (a
/// SEQUENCE, 0x30). A chain is 0x00, then each element with its length, the certificate last
/// so that [`TailHasher`] sees its signature (leaves under one intermediate would otherwise
/// all hash alike). Anything else is 0x01 and its bytes.
fn checked_key<'a>(cert: &'a [u8], intermediates: &[Vec<u8>]) -> std::borrow::Cow<'a, [u8]> {
    const DER_SEQUENCE: u8 = 0x30;
    if intermediates.is_empty() {
        if cert.first() == Some(&DER_SEQUENCE) {
            return cert.into();
        }
        return [&[0x01], cert].concat().into();
    }
    let mut key = vec![0x00];
    for element in intermediates.iter().map(Vec::as_slice).chain([cert]) {
        key.extend_from_slice(&(element.len() as u64).to_be_bytes());
        key.extend_from_slice(element);
    }
    key.into()
}

/// What a validated certificate contributes to each verification.
#[derive(Debug)]
struct CheckedCert {
    names: Vec<String>,
    /// The certificate, shared with every [`VerifiedIdentity`] it signs for.
    der: Arc<[u8]>,
    /// Its key, parsed once, for `rsa-sha1` and `rsa-sha256` (RFC 4474 §7, §13.1).
    sha1_key: ParsedPublicKey,
    sha256_key: ParsedPublicKey,
    /// The chain was valid for this span of time (Unix seconds).
    valid_from: i64,
    valid_until: i64,
}

/// Most certificates remembered before the cache starts over.
const CHECKED_CERTS_MAX: usize = 4096;

/// Identity certificates need not carry serverAuth: any (or no) extended key usage is accepted.
struct AnyUsage;

impl ExtendedKeyUsageValidator for AnyUsage {
    fn validate(&self, _iter: KeyPurposeIdIter<'_, '_>) -> Result<(), webpki::Error> {
        Ok(())
    }
}

/// RSA PKCS#1 v1.5 with SHA-1 for certificate chains (RFC 4474's own example certificates
/// and many deployed SIP CAs), backed by aws-lc-rs's legacy verification.
#[derive(Debug)]
struct RsaPkcs1Sha1;

impl SignatureVerificationAlgorithm for RsaPkcs1Sha1 {
    fn verify_signature(
        &self,
        public_key: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), InvalidSignature> {
        aws_lc_rs::signature::UnparsedPublicKey::new(
            &aws_lc_rs::signature::RSA_PKCS1_1024_8192_SHA1_FOR_LEGACY_USE_ONLY,
            public_key,
        )
        .verify(message, signature)
        .map_err(|_| InvalidSignature)
    }
    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        rustls_pki_types::alg_id::RSA_ENCRYPTION
    }
    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        // sha1WithRSAEncryption (1.2.840.113549.1.1.5) with NULL parameters.
        AlgorithmIdentifier::from_slice(&[
            0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05, 0x05, 0x00,
        ])
    }
}

static RSA_PKCS1_SHA1: RsaPkcs1Sha1 = RsaPkcs1Sha1;

fn chain_algorithms() -> Vec<&'static dyn SignatureVerificationAlgorithm> {
    let mut algs: Vec<&'static dyn SignatureVerificationAlgorithm> =
        webpki::ALL_VERIFICATION_ALGS.to_vec();
    algs.push(&RSA_PKCS1_SHA1);
    algs
}

/// The SIP domain identities a certificate asserts (RFC 4474 §6.2 step 2), extracted as RFC 5922
/// §7.1 says — RFC 8224 §8.4 names those rules for this check in place of the RFC 2818 ones
/// RFC 4474 §13.4 cited, which allowed wildcards:
/// - a subjectAltName URI with scheme `sip` and no user part gives its host; any other scheme
///   (`sips` included) or a user part (`sip:alice@example.com` names a user, not a domain)
///   gives nothing;
/// - subjectAltName DNS names count only when no such `sip` URI is present;
/// - the CN counts only when the certificate has no subjectAltName at all.
///
/// Names are lowercased; the verifier compares them whole with the From host (RFC 5922 §7.2:
/// no suffix match, and `*.example.com` is a literal name, not a wildcard).
pub fn certificate_domains(der: &[u8]) -> Result<Vec<String>, IdentityError> {
    let (_, cert) = X509Certificate::from_der(der)
        .map_err(|_| IdentityError::UntrustedCertificate("unreadable certificate".into()))?;
    let san = cert.subject_alternative_name().map_err(|_| {
        IdentityError::UntrustedCertificate("unreadable subjectAltName extension".into())
    })?;
    let Some(san) = san else {
        return Ok(cert
            .subject()
            .iter_common_name()
            .filter_map(|cn| cn.as_str().ok())
            .map(str::to_ascii_lowercase)
            .collect());
    };
    let mut sip = Vec::new();
    let mut dns = Vec::new();
    for n in &san.value.general_names {
        match n {
            GeneralName::DNSName(d) => dns.push(d.to_ascii_lowercase()),
            GeneralName::URI(u) => {
                if let Ok(uri) = Uri::parse(u)
                    && let Some(s) = uri.as_sip()
                    && !s.is_secure()
                    && s.user().is_none()
                {
                    sip.push(s.host_str().to_ascii_lowercase());
                }
            }
            _ => {}
        }
    }
    Ok(if sip.is_empty() { dns } else { sip })
}

fn rsa_public_key(der: &[u8]) -> Result<Vec<u8>, IdentityError> {
    let (_, cert) = X509Certificate::from_der(der)
        .map_err(|_| IdentityError::UntrustedCertificate("unreadable certificate".into()))?;
    Ok(cert.public_key().subject_public_key.data.to_vec())
}

fn not_before(der: &[u8]) -> Result<i64, IdentityError> {
    certificate_validity(der).map(|(from, _)| from)
}

/// A certificate's notBefore and notAfter, Unix seconds: the times its key may sign for
/// (RFC 4474 §5 step 3, §6.2 step 4).
pub fn certificate_validity(der: &[u8]) -> Result<(i64, i64), IdentityError> {
    let (_, cert) = X509Certificate::from_der(der)
        .map_err(|_| IdentityError::UntrustedCertificate("unreadable certificate".into()))?;
    let v = cert.validity();
    Ok((v.not_before.timestamp(), v.not_after.timestamp()))
}

impl Verifier {
    /// A verifier with a trust store.
    pub fn new(config: VerifierConfig, trust: TrustStore) -> Self {
        Verifier {
            config,
            trust,
            checked: HashMap::default(),
            replay: HashSet::new(),
            replay_expiry: BinaryHeap::new(),
            replay_hasher: RandomState::new(),
        }
    }

    /// Checks that `cert` chains to the trust store (or is pinned in it) at `now`.
    fn check_chain(
        &self,
        cert: &[u8],
        intermediates: &[Vec<u8>],
        now: i64,
    ) -> Result<(), IdentityError> {
        let time = if self.config.check_certificate_time {
            now
        } else {
            not_before(cert)?.saturating_add(1)
        };
        if self.trust.certs.iter().any(|c| c == cert) {
            if self.config.check_certificate_time {
                let (_, x) = X509Certificate::from_der(cert).map_err(|_| {
                    IdentityError::UntrustedCertificate("unreadable certificate".into())
                })?;
                let v = x.validity();
                if now < v.not_before.timestamp() || now > v.not_after.timestamp() {
                    return Err(IdentityError::UntrustedCertificate(
                        "certificate expired or not yet valid".into(),
                    ));
                }
            }
            return Ok(());
        }
        let owned: Vec<CertificateDer<'_>> = self
            .trust
            .certs
            .iter()
            .map(|c| CertificateDer::from(c.as_slice()))
            .collect();
        let anchors: Vec<TrustAnchor<'_>> = owned
            .iter()
            .filter_map(|c| webpki::anchor_from_trusted_cert(c).ok())
            .collect();
        let inter: Vec<CertificateDer<'_>> = intermediates
            .iter()
            .map(|c| CertificateDer::from(c.as_slice()))
            .collect();
        let ee_der = CertificateDer::from(cert);
        let ee = EndEntityCert::try_from(&ee_der)
            .map_err(|e| IdentityError::UntrustedCertificate(format!("bad certificate: {e}")))?;
        let t = UnixTime::since_unix_epoch(std::time::Duration::from_secs(
            u64::try_from(time).unwrap_or(0),
        ));
        ee.verify_for_usage(
            &chain_algorithms(),
            &anchors,
            &inter,
            t,
            AnyUsage,
            None,
            None,
        )
        .map_err(|e| {
            IdentityError::UntrustedCertificate(format!("certificate not trusted: {e}"))
        })?;
        Ok(())
    }

    /// The validated facts of `cert`, from the cache while `now` is inside the window the chain
    /// was valid for, else validated now.
    fn checked_certificate(
        &mut self,
        cert: &[u8],
        intermediates: &[Vec<u8>],
        now: i64,
    ) -> Result<Arc<CheckedCert>, IdentityError> {
        let key = checked_key(cert, intermediates);
        let key: &[u8] = &key;
        if let Some(c) = self.checked.get(key)
            && (!self.config.check_certificate_time
                || (c.valid_from..=c.valid_until).contains(&now))
        {
            return Ok(c.clone());
        }
        self.check_chain(cert, intermediates, now)?;
        let (_, x) = X509Certificate::from_der(cert)
            .map_err(|_| IdentityError::UntrustedCertificate("unreadable certificate".into()))?;
        let mut valid_from = x.validity().not_before.timestamp();
        let mut valid_until = x.validity().not_after.timestamp();
        for i in intermediates {
            if let Ok((_, c)) = X509Certificate::from_der(i) {
                valid_from = valid_from.max(c.validity().not_before.timestamp());
                valid_until = valid_until.min(c.validity().not_after.timestamp());
            }
        }
        let public_key = rsa_public_key(cert)?;
        let parse = |alg| {
            ParsedPublicKey::new(verification_algorithm(alg), &public_key).map_err(|_| {
                IdentityError::UntrustedCertificate("certificate key is not an RSA key".into())
            })
        };
        let checked = Arc::new(CheckedCert {
            names: certificate_domains(cert)?,
            der: Arc::from(cert),
            sha1_key: parse(IdentityAlg::RsaSha1)?,
            sha256_key: parse(IdentityAlg::RsaSha256)?,
            valid_from,
            valid_until,
        });
        if self.checked.len() >= CHECKED_CERTS_MAX {
            self.checked.clear();
        }
        self.checked.insert(key.to_vec(), checked.clone());
        Ok(checked)
    }

    /// Runs every check on a request whose Identity-Info certificate (`cert`, DER, with any
    /// `intermediates`) the caller fetched. `now` is wall-clock Unix seconds.
    pub fn verify(
        &mut self,
        msg: &Message,
        cert: &[u8],
        intermediates: &[Vec<u8>],
        now: i64,
    ) -> Result<VerifiedIdentity, IdentityError> {
        // An Identity that cannot be a signature is refused before any certificate work: it
        // must not cost a chain validation here, nor a fetch in the caller. RFC 4474 §6.2
        // step 1: an unsupported alg is 436 before any certificate question.
        let headers = super::check_before_fetch(msg)?;
        self.verify_read(msg, &headers, cert, intermediates, now)
    }

    /// [`Self::verify`] for a request whose Identity and Identity-Info
    /// [`super::check_before_fetch`] already read into `headers`.
    pub fn verify_read(
        &mut self,
        msg: &Message,
        headers: &IdentityHeaders,
        cert: &[u8],
        intermediates: &[Vec<u8>],
        now: i64,
    ) -> Result<VerifiedIdentity, IdentityError> {
        let (signature, alg) = (&headers.signature, headers.alg);
        let from = msg.from().ok_or(IdentityError::MissingHeader("From"))?;
        let from_uri = from
            .uri()
            .as_sip()
            .ok_or(IdentityError::CertificateNameMismatch(
                "From is not a SIP URI".into(),
            ))?;
        let from_host = from_uri.host_str().to_ascii_lowercase();
        let checked = self.checked_certificate(cert, intermediates, now)?;
        let names = &checked.names;
        if !names.contains(&from_host) {
            return Err(IdentityError::CertificateNameMismatch(format!(
                "certificate is for {} but From is {from_host}",
                names.join(", ")
            )));
        }
        verify_decoded_signature(msg, alg, signature, |alg, ds, sig| {
            let key = match alg {
                IdentityAlg::RsaSha1 => &checked.sha1_key,
                IdentityAlg::RsaSha256 => &checked.sha256_key,
            };
            key.verify_sig(ds, sig).is_ok()
        })?;
        let date_value = msg
            .header(HeaderName::Date)
            .ok_or(IdentityError::MissingHeader("Date"))?
            .value;
        let date = SipDate::parse(date_value)
            .map_err(|_| IdentityError::StaleDate)?
            .unix_seconds();
        if self.config.check_date {
            if now - date > self.config.max_age {
                return Err(IdentityError::StaleDate);
            }
            if date - now > self.config.max_future {
                return Err(IdentityError::StaleDate);
            }
        }
        // RFC 4474 §6.2 step 4: the Date must fall within the validity of the certificate that
        // signed (a key may not sign for times its certificate does not cover).
        if self.config.check_certificate_time
            && !(checked.valid_from..=checked.valid_until).contains(&date)
        {
            return Err(IdentityError::UntrustedCertificate(
                "the request's Date is outside the certificate's validity".into(),
            ));
        }
        // RFC 4474 §13.1: the Call-ID is the nonce. The key holds only signed parts — an
        // unsigned one (the From tag, say) could be changed to slip a replay past the cache —
        // and the decoded signature, not the header text, which could be refolded.
        let cseq = msg.cseq();
        let replay_key = self.replay_hasher.hash_one((
            msg.call_id(),
            cseq.seq,
            cseq.method.as_str(),
            date_value,
            signature,
        ));
        // A replay passes the Date check until the Date is max_age old; without Date checks,
        // keep the entry for a whole window from now.
        let expires = if self.config.check_date {
            date.saturating_add(self.config.max_age)
        } else {
            now.saturating_add(self.config.max_age)
                .saturating_add(self.config.max_future)
        };
        self.remember(replay_key, expires, now)?;
        Ok(VerifiedIdentity {
            aor: from_uri.aor(),
            signer_domain: from_host,
            certificate: checked.der.clone(),
            alg,
            date,
        })
    }

    /// Records a verified request until `expires`: [`IdentityError::Replay`] when it is
    /// there already, [`IdentityError::ReplayCacheFull`] when the cache is full of entries that
    /// have not expired at `now` (evicting one would let it be replayed).
    fn remember(&mut self, key: u64, expires: i64, now: i64) -> Result<(), IdentityError> {
        while let Some(&Reverse((t, k))) = self.replay_expiry.peek() {
            if t >= now {
                break;
            }
            self.replay_expiry.pop();
            self.replay.remove(&k);
        }
        if self.replay.contains(&key) {
            return Err(IdentityError::Replay);
        }
        if self.replay.len() >= self.config.replay_capacity {
            return Err(IdentityError::ReplayCacheFull);
        }
        self.replay.insert(key);
        self.replay_expiry.push(Reverse((expires, key)));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    fn tail_hash(key: &[u8]) -> u64 {
        BuildHasherDefault::<TailHasher>::default().hash_one(key)
    }

    /// Two leaves under one intermediate: same length, different signatures. Their keys must
    /// hash apart, or every leaf of a CA lands in one bucket.
    #[test]
    fn checked_keys_hash_leaves_apart_and_never_collide() {
        let intermediate = vec![vec![0x30; 900]];
        let mut leaf_a = vec![0x30; 1000];
        let mut leaf_b = leaf_a.clone();
        leaf_a[990] = 1;
        leaf_b[990] = 2;
        let (a, b) = (
            checked_key(&leaf_a, &intermediate),
            checked_key(&leaf_b, &intermediate),
        );
        assert_ne!(a, b);
        assert_ne!(tail_hash(&a), tail_hash(&b));
        // A lone certificate is its own key.
        assert_eq!(&*checked_key(&leaf_a, &[]), leaf_a.as_slice());
        // A lone blob with the bytes of a chain, and chains split differently, get other keys.
        let split_one = checked_key(&leaf_a[500..], &[leaf_a[..500].to_vec()]);
        let split_two = checked_key(&leaf_a[600..], &[leaf_a[..600].to_vec()]);
        assert_ne!(split_one, split_two);
        assert_ne!(&*split_one, leaf_a.as_slice());
        let blob = checked_key(&split_one, &[]);
        assert_ne!(blob, split_one);
    }
}
