//! The verification service end to end (without the network: the caller hands in the
//! certificate): the RFC 4474 §10 examples with a pinned self-signed certificate, a CA chain
//! made here with rcgen, and the attacks: untrusted or expired certificate, a certificate of
//! another domain, another domain's key, stale Date, replay. Then the rules one by one: the
//! SIP domain identities of a certificate (RFC 5922 §7.1, §7.2), the replay cache (RFC 4474
//! §13.1: keyed on signed parts only, kept for the Date window, full → 503 rather than
//! forgetting), an oversized or malformed Identity refused before any certificate work, and
//! both bounds of the Date window with default and configured limits.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    PKCS_RSA_SHA256, SanType,
};
use vouch_auth::identity::{
    DEFAULT_REPLAY_CAPACITY, IdentityAlg, IdentityError, RsaSigningKey, TrustStore, Verifier,
    VerifierConfig, add_identity, certificate_domains, check_before_fetch,
};
use vouch_msg::headers::date::format_sip_date;
use vouch_msg::headers::identity::MAX_IDENTITY_LEN;
use vouch_msg::{Limits, Message, Transport};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/rfc4474/");

fn read(name: &str) -> Vec<u8> {
    std::fs::read(format!("{DIR}{name}")).expect("vector file")
}

fn der_of(pem_name: &str) -> Vec<u8> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    CertificateDer::from_pem_slice(&read(pem_name))
        .expect("PEM cert")
        .as_ref()
        .to_vec()
}

/// 2002-02-21 13:02:03 GMT, the Date of the §10.1 INVITE.
const INVITE_DATE: i64 = 1014296523;

fn invite_identity() -> Message {
    let text = String::from_utf8(read("invite.identity"))
        .unwrap()
        .replace("Content-Length: 147", "Content-Length: 172");
    Message::parse(text.into_bytes()).unwrap()
}

fn lenient() -> VerifierConfig {
    VerifierConfig {
        check_date: false,
        check_certificate_time: false,
        ..VerifierConfig::default()
    }
}

fn pinned(name: &str) -> TrustStore {
    let mut t = TrustStore::new();
    t.add_pem_or_der(&read(name)).unwrap();
    t
}

#[test]
fn rfc4474_invite_verifies_with_pinned_certificate_and_time_checks_off() {
    let mut v = Verifier::new(lenient(), pinned("atlanta.cer"));
    let ok = v
        .verify(
            &invite_identity(),
            &der_of("atlanta.cer"),
            &[],
            INVITE_DATE + 10,
        )
        .unwrap();
    assert_eq!(ok.aor(), "sip:alice@atlanta.example.com");
    assert_eq!(ok.signer_domain(), "atlanta.example.com");
    assert_eq!(ok.alg(), IdentityAlg::RsaSha1);
    assert_eq!(ok.date(), INVITE_DATE);
}

#[test]
fn replay_is_refused() {
    let mut v = Verifier::new(lenient(), pinned("atlanta.cer"));
    v.verify(&invite_identity(), &der_of("atlanta.cer"), &[], INVITE_DATE)
        .unwrap();
    let e = v
        .verify(
            &invite_identity(),
            &der_of("atlanta.cer"),
            &[],
            INVITE_DATE + 1,
        )
        .unwrap_err();
    assert_eq!((e.status(), e), (403, IdentityError::Replay));
}

#[test]
fn untrusted_expired_and_misnamed_certificates_get_437() {
    // Not in the trust store.
    let mut v = Verifier::new(lenient(), TrustStore::new());
    assert_eq!(
        v.verify(&invite_identity(), &der_of("atlanta.cer"), &[], INVITE_DATE)
            .unwrap_err()
            .status(),
        437
    );
    // Expired (2006) with time checks on.
    let mut v = Verifier::new(
        VerifierConfig {
            check_date: false,
            ..VerifierConfig::default()
        },
        pinned("atlanta.cer"),
    );
    let e = v
        .verify(
            &invite_identity(),
            &der_of("atlanta.cer"),
            &[],
            1_800_000_000,
        )
        .unwrap_err();
    assert!(matches!(e, IdentityError::UntrustedCertificate(_)), "{e}");
    // Identity-Info pointing at biloxi's certificate for an atlanta From.
    let mut both = pinned("atlanta.cer");
    both.add_pem_or_der(&read("biloxi.cer")).unwrap();
    let mut v = Verifier::new(lenient(), both);
    let e = v
        .verify(&invite_identity(), &der_of("biloxi.cer"), &[], INVITE_DATE)
        .unwrap_err();
    assert!(
        matches!(e, IdentityError::CertificateNameMismatch(_)),
        "{e}"
    );
    // The published BYE: biloxi's CN says biloxi.example.com, the From biloxi.example.org
    // (MANIFEST caveat b), so a strict verifier refuses it.
    let bye = Message::parse(read("derived-bye.identity.terminated.sip")).unwrap();
    let mut v = Verifier::new(lenient(), pinned("biloxi.cer"));
    assert_eq!(
        v.verify(&bye, &der_of("biloxi.cer"), &[], INVITE_DATE)
            .unwrap_err()
            .status(),
        437
    );
    assert_eq!(
        certificate_domains(&der_of("biloxi.cer")).unwrap(),
        ["biloxi.example.com"]
    );
}

#[test]
fn stale_or_future_date_gets_403() {
    let cfg = VerifierConfig {
        check_certificate_time: false,
        ..VerifierConfig::default()
    };
    let mut v = Verifier::new(cfg.clone(), pinned("atlanta.cer"));
    assert_eq!(
        v.verify(
            &invite_identity(),
            &der_of("atlanta.cer"),
            &[],
            INVITE_DATE + 3601
        )
        .unwrap_err(),
        IdentityError::StaleDate
    );
    let mut v = Verifier::new(cfg.clone(), pinned("atlanta.cer"));
    assert_eq!(
        v.verify(
            &invite_identity(),
            &der_of("atlanta.cer"),
            &[],
            INVITE_DATE - 601
        )
        .unwrap_err(),
        IdentityError::StaleDate
    );
    let mut v = Verifier::new(cfg, pinned("atlanta.cer"));
    assert!(
        v.verify(
            &invite_identity(),
            &der_of("atlanta.cer"),
            &[],
            INVITE_DATE + 3599
        )
        .is_ok()
    );
}

struct Domain {
    ca_pem: String,
    cert_der: Vec<u8>,
    key: RsaSigningKey,
}

/// A CA (P-256) and an RSA domain certificate for `domain` with SAN DNS and sip: URI.
fn domain(domain: &str) -> Domain {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, format!("{domain} test CA"));
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate_for(&PKCS_RSA_SHA256).unwrap();
    let mut params = CertificateParams::new(vec![domain.to_string()]).unwrap();
    params
        .subject_alt_names
        .push(SanType::URI(format!("sip:{domain}").try_into().unwrap()));
    let cert = params.signed_by(&key, &issuer).unwrap();
    Domain {
        ca_pem: ca_cert.pem(),
        cert_der: cert.der().to_vec(),
        key: RsaSigningKey::from_der(&key.serialize_der()).unwrap(),
    }
}

fn request(from_domain: &str, date: i64) -> Message {
    let text = format!(
        "INVITE sip:bob@biloxi.example.org SIP/2.0\r\nVia: SIP/2.0/TLS 192.0.2.1;branch=z9hG4bK1\r\nTo: <sip:bob@biloxi.example.org>\r\nFrom: <sip:alice@{from_domain}>;tag=1\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\nDate: {}\r\nContact: <sip:alice@192.0.2.1>\r\nContent-Length: 4\r\n\r\nbody",
        format_sip_date(date).unwrap()
    );
    Message::parse(text.into_bytes()).unwrap()
}

#[test]
fn ca_chain_sign_and_verify_with_current_dates() {
    let now = 1_790_000_000;
    let atlanta = domain("atlanta.example.com");
    let mut trust = TrustStore::new();
    trust.add_pem_or_der(atlanta.ca_pem.as_bytes()).unwrap();
    let mut v = Verifier::new(VerifierConfig::default(), trust);
    let signed = add_identity(
        &request("atlanta.example.com", now),
        &atlanta.key,
        IdentityAlg::RsaSha256,
        "https://atlanta.example.com/cert",
    )
    .unwrap();
    assert_eq!(
        v.verify(&signed, &atlanta.cert_der, &[], now + 5)
            .unwrap()
            .aor(),
        "sip:alice@atlanta.example.com"
    );

    // Signed by another domain's key but pointing at atlanta's certificate: bad signature.
    let mallory = domain("atlanta.example.com");
    let forged = add_identity(
        &request("atlanta.example.com", now),
        &mallory.key,
        IdentityAlg::RsaSha1,
        "https://atlanta.example.com/cert",
    )
    .unwrap();
    assert_eq!(
        v.verify(&forged, &atlanta.cert_der, &[], now)
            .unwrap_err()
            .status(),
        438
    );
    // Mallory's own certificate, from an untrusted CA: 437.
    assert_eq!(
        v.verify(&forged, &mallory.cert_der, &[], now)
            .unwrap_err()
            .status(),
        437
    );
    // A self-signed certificate not in the store: 437.
    let self_signed = CertificateParams::new(vec!["atlanta.example.com".to_string()])
        .unwrap()
        .self_signed(&KeyPair::generate().unwrap())
        .unwrap();
    assert_eq!(
        v.verify(&signed, self_signed.der(), &[], now)
            .unwrap_err()
            .status(),
        437
    );
}

// ---------------------------------------------------------------------------------------------
// Certificates with chosen names: one CA and one RSA key (RSA generation is slow) certify
// leaves with whatever CN and subjectAltName a test needs.

struct TestCa {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
    key: KeyPair,
}

fn test_ca() -> TestCa {
    let ca_key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "names test CA");
    let cert = params.self_signed(&ca_key).unwrap();
    TestCa {
        pem: cert.pem(),
        issuer: Issuer::new(params, ca_key),
        key: KeyPair::generate_for(&PKCS_RSA_SHA256).unwrap(),
    }
}

impl TestCa {
    /// A leaf (DER) with subject `CN=cn` and exactly `sans` (no extension when empty).
    fn leaf(&self, cn: &str, sans: Vec<SanType>) -> Vec<u8> {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.subject_alt_names = sans;
        params
            .signed_by(&self.key, &self.issuer)
            .unwrap()
            .der()
            .to_vec()
    }

    fn signing_key(&self) -> RsaSigningKey {
        RsaSigningKey::from_der(&self.key.serialize_der()).unwrap()
    }

    fn verifier(&self, config: VerifierConfig) -> Verifier {
        let mut trust = TrustStore::new();
        trust.add_pem_or_der(self.pem.as_bytes()).unwrap();
        Verifier::new(config, trust)
    }

    /// A request from `alice@from_domain` dated `date`, signed with the leaves' key.
    fn signed(&self, from_domain: &str, date: i64) -> Message {
        sign(&request(from_domain, date), &self.signing_key())
    }
}

fn dns(name: &str) -> SanType {
    SanType::DnsName(name.try_into().unwrap())
}

fn uri(uri: &str) -> SanType {
    SanType::URI(uri.try_into().unwrap())
}

fn sign(msg: &Message, key: &RsaSigningKey) -> Message {
    add_identity(msg, key, IdentityAlg::RsaSha256, "https://example.com/cert").unwrap()
}

/// Now for the tests with current dates (2026-09-21); rcgen leaves are valid 1975–4096.
const NOW: i64 = 1_790_000_000;

#[test]
fn sip_uri_san_alone_is_the_domain_identity() {
    // RFC 5922 §7.1: a `sip` URI without a user part names the domain; its host is compared
    // without port or parameters (§7.2). The CN is not consulted when a SAN exists.
    let ca = test_ca();
    let cert = ca.leaf("unrelated.example.net", vec![uri("sip:example.com")]);
    assert_eq!(certificate_domains(&cert).unwrap(), ["example.com"]);
    let ok = ca
        .verifier(VerifierConfig::default())
        .verify(&ca.signed("example.com", NOW), &cert, &[], NOW)
        .unwrap();
    assert_eq!(ok.signer_domain(), "example.com");
    let cert = ca.leaf("x", vec![uri("sip:Example.COM:5061;transport=tls")]);
    assert_eq!(certificate_domains(&cert).unwrap(), ["example.com"]);
}

#[test]
fn cn_is_ignored_when_a_subject_alt_name_exists() {
    // RFC 5922 §7.1 step 2: the CN only when the certificate has no subjectAltName at all.
    let ca = test_ca();
    let cert = ca.leaf("example.com", vec![dns("other.example.net")]);
    assert_eq!(certificate_domains(&cert).unwrap(), ["other.example.net"]);
    let e = ca
        .verifier(VerifierConfig::default())
        .verify(&ca.signed("example.com", NOW), &cert, &[], NOW)
        .unwrap_err();
    assert!(
        matches!(e, IdentityError::CertificateNameMismatch(_)),
        "{e}"
    );
    assert_eq!(e.status(), 437);
    // Without any subjectAltName, the same CN is the identity.
    let cn_only = ca.leaf("example.com", vec![]);
    assert_eq!(certificate_domains(&cn_only).unwrap(), ["example.com"]);
    assert!(
        ca.verifier(VerifierConfig::default())
            .verify(&ca.signed("example.com", NOW), &cn_only, &[], NOW)
            .is_ok()
    );
}

#[test]
fn wildcard_dns_san_does_not_match_a_subdomain() {
    // RFC 5922 §7.2: no wildcard matching; "*.example.com" matches only itself.
    let ca = test_ca();
    let cert = ca.leaf("a.example.com", vec![dns("*.example.com")]);
    let e = ca
        .verifier(VerifierConfig::default())
        .verify(&ca.signed("a.example.com", NOW), &cert, &[], NOW)
        .unwrap_err();
    assert_eq!(e.status(), 437, "{e}");
    // Nor a suffix: a certificate for example.com does not vouch for a.example.com.
    let cert = ca.leaf("x", vec![dns("example.com")]);
    let e = ca
        .verifier(VerifierConfig::default())
        .verify(&ca.signed("a.example.com", NOW), &cert, &[], NOW)
        .unwrap_err();
    assert_eq!(e.status(), 437, "{e}");
}

#[test]
fn sip_uri_with_user_part_or_sips_scheme_is_not_a_domain_identity() {
    // RFC 5922 §7.1: a `sip` URI with a user part, or a URI whose scheme is not `sip`, MUST NOT
    // be accepted as an identity; DNS names count only when no acceptable `sip` URI is there.
    let ca = test_ca();
    let cert = ca.leaf("example.com", vec![uri("sip:alice@example.com")]);
    assert!(certificate_domains(&cert).unwrap().is_empty());
    let e = ca
        .verifier(VerifierConfig::default())
        .verify(&ca.signed("example.com", NOW), &cert, &[], NOW)
        .unwrap_err();
    assert_eq!(e.status(), 437, "{e}");

    let cert = ca.leaf("example.com", vec![uri("sips:example.com")]);
    assert!(certificate_domains(&cert).unwrap().is_empty());
    let e = ca
        .verifier(VerifierConfig::default())
        .verify(&ca.signed("example.com", NOW), &cert, &[], NOW)
        .unwrap_err();
    assert_eq!(e.status(), 437, "{e}");

    // The user-part URI is no identity, so the DNS name is.
    let cert = ca.leaf("x", vec![uri("sip:alice@example.com"), dns("example.com")]);
    assert_eq!(certificate_domains(&cert).unwrap(), ["example.com"]);
    assert!(
        ca.verifier(VerifierConfig::default())
            .verify(&ca.signed("example.com", NOW), &cert, &[], NOW)
            .is_ok()
    );
    // A domain `sip` URI present: the DNS names are not identities.
    let cert = ca.leaf("x", vec![uri("sip:example.com"), dns("other.example.net")]);
    assert_eq!(certificate_domains(&cert).unwrap(), ["example.com"]);
    let e = ca
        .verifier(VerifierConfig::default())
        .verify(&ca.signed("other.example.net", NOW), &cert, &[], NOW)
        .unwrap_err();
    assert_eq!(e.status(), 437, "{e}");
}

// ---------------------------------------------------------------------------------------------
// Replay cache.

/// A request whose replay-relevant parts are all chosen (`cseq` is "number method").
fn request_with(call_id: &str, cseq: &str, from_tag: &str, date: i64) -> Message {
    let method = cseq.split(' ').nth(1).unwrap();
    let text = format!(
        "{method} sip:bob@biloxi.example.org SIP/2.0\r\nVia: SIP/2.0/TLS 192.0.2.1;branch=z9hG4bK1\r\nTo: <sip:bob@biloxi.example.org>\r\nFrom: <sip:alice@atlanta.example.com>;tag={from_tag}\r\nCall-ID: {call_id}\r\nCSeq: {cseq}\r\nDate: {}\r\nContact: <sip:alice@192.0.2.1>\r\nContent-Length: 4\r\n\r\nbody",
        format_sip_date(date).unwrap()
    );
    Message::parse(text.into_bytes()).unwrap()
}

fn replace(msg: &Message, from: &str, to: &str) -> Message {
    replace_with_limits(msg, from, to, &Limits::DEFAULT).unwrap()
}

fn replace_with_limits(
    msg: &Message,
    from: &str,
    to: &str,
    limits: &Limits,
) -> Result<Message, vouch_msg::ParseError> {
    let text = String::from_utf8(msg.as_bytes().to_vec()).unwrap();
    assert!(text.contains(from), "{from:?} not in the message");
    Message::parse_with(
        text.replacen(from, to, 1).into_bytes().into(),
        limits,
        Transport::Datagram,
    )
}

fn identity_value(msg: &Message) -> String {
    msg.header(vouch_msg::HeaderName::Identity)
        .unwrap()
        .value
        .to_string()
}

#[test]
fn replay_inside_the_date_window_is_refused_and_after_it_the_date_is_stale() {
    let atlanta = domain("atlanta.example.com");
    let mut trust = TrustStore::new();
    trust.add_pem_or_der(atlanta.ca_pem.as_bytes()).unwrap();
    let mut v = Verifier::new(VerifierConfig::default(), trust);
    let signed = sign(&request_with("c1", "1 INVITE", "t1", NOW), &atlanta.key);
    v.verify(&signed, &atlanta.cert_der, &[], NOW).unwrap();
    // The last second of the window (age 3600 = max_age): still remembered.
    let e = v
        .verify(&signed, &atlanta.cert_der, &[], NOW + 3600)
        .unwrap_err();
    assert_eq!((e.status(), &e), (403, &IdentityError::Replay));
    // One second later the cache may have forgotten it, but the Date check refuses it.
    let e = v
        .verify(&signed, &atlanta.cert_der, &[], NOW + 3601)
        .unwrap_err();
    assert_eq!((e.status(), &e), (403, &IdentityError::StaleDate));
}

#[test]
fn replay_key_is_call_id_cseq_date_and_signature() {
    let atlanta = domain("atlanta.example.com");
    let mut trust = TrustStore::new();
    trust.add_pem_or_der(atlanta.ca_pem.as_bytes()).unwrap();
    let mut v = Verifier::new(VerifierConfig::default(), trust);
    let base = sign(&request_with("c1", "1 INVITE", "t1", NOW), &atlanta.key);
    v.verify(&base, &atlanta.cert_der, &[], NOW).unwrap();

    // Each signed part of the key changed alone, with a fresh signature: not a replay.
    for (what, msg) in [
        ("Call-ID", request_with("c2", "1 INVITE", "t1", NOW)),
        ("CSeq number", request_with("c1", "2 INVITE", "t1", NOW)),
        ("CSeq method", request_with("c1", "1 UPDATE", "t1", NOW)),
        ("Date", request_with("c1", "1 INVITE", "t1", NOW + 1)),
    ] {
        let signed = sign(&msg, &atlanta.key);
        assert!(
            v.verify(&signed, &atlanta.cert_der, &[], NOW + 1).is_ok(),
            "{what} differs: not a replay"
        );
    }
    // The same request signed again with the other algorithm: only Identity (and its alg)
    // differ, and it is a different signature.
    let other_alg = add_identity(
        &request_with("c1", "1 INVITE", "t1", NOW),
        &atlanta.key,
        IdentityAlg::RsaSha1,
        "https://example.com/cert",
    )
    .unwrap();
    assert_ne!(identity_value(&other_alg), identity_value(&base));
    v.verify(&other_alg, &atlanta.cert_der, &[], NOW + 1)
        .unwrap();

    // The From tag is not signed (RFC 4474 §9): changing it leaves the signature valid, so a
    // replay with a new tag must still be caught (the Call-ID is the nonce, §13.1).
    let new_tag = replace(&base, ";tag=t1", ";tag=t2");
    assert_eq!(identity_value(&new_tag), identity_value(&base));
    let e = v
        .verify(&new_tag, &atlanta.cert_der, &[], NOW + 2)
        .unwrap_err();
    assert_eq!(e, IdentityError::Replay);
    // Nor does refolding the Identity value (the signature is the base64 without LWS).
    let sig = identity_value(&base);
    let folded = replace(&base, &sig, &format!("{}\r\n  {}", &sig[..40], &sig[40..]));
    let e = v
        .verify(&folded, &atlanta.cert_der, &[], NOW + 2)
        .unwrap_err();
    assert_eq!(e, IdentityError::Replay);
}

#[test]
fn full_replay_cache_refuses_new_requests_with_503_until_entries_expire() {
    let atlanta = domain("atlanta.example.com");
    let mut trust = TrustStore::new();
    trust.add_pem_or_der(atlanta.ca_pem.as_bytes()).unwrap();
    let mut v = Verifier::new(
        VerifierConfig {
            replay_capacity: 2,
            ..VerifierConfig::default()
        },
        trust,
    );
    let at = |call_id: &str, date: i64| {
        sign(&request_with(call_id, "1 INVITE", "t", date), &atlanta.key)
    };
    let (a, b) = (at("a", NOW), at("b", NOW + 100));
    v.verify(&a, &atlanta.cert_der, &[], NOW + 100).unwrap();
    v.verify(&b, &atlanta.cert_der, &[], NOW + 100).unwrap();
    // Full of entries inside their window: a new request cannot be checked, so it is refused
    // (503) — and the flood did not push `a` out: it is still a replay.
    let c = at("c", NOW + 100);
    let e = v.verify(&c, &atlanta.cert_der, &[], NOW + 100).unwrap_err();
    assert_eq!((e.status(), &e), (503, &IdentityError::ReplayCacheFull));
    assert!(e.to_string().contains("replay cache full"), "{e}");
    assert_eq!(
        v.verify(&a, &atlanta.cert_der, &[], NOW + 101).unwrap_err(),
        IdentityError::Replay
    );
    // `a`'s Date leaves the window at NOW + 3600: only then is its place free; `b` stays.
    assert_eq!(
        v.verify(&c, &atlanta.cert_der, &[], NOW + 3600)
            .unwrap_err(),
        IdentityError::ReplayCacheFull
    );
    v.verify(&c, &atlanta.cert_der, &[], NOW + 3601).unwrap();
    assert_eq!(
        v.verify(&b, &atlanta.cert_der, &[], NOW + 3601)
            .unwrap_err(),
        IdentityError::Replay
    );
    let d = at("d", NOW + 3601);
    assert_eq!(
        v.verify(&d, &atlanta.cert_der, &[], NOW + 3601)
            .unwrap_err(),
        IdentityError::ReplayCacheFull
    );
    assert_eq!(
        VerifierConfig::default().replay_capacity,
        DEFAULT_REPLAY_CAPACITY
    );
}

// ---------------------------------------------------------------------------------------------
// An Identity that cannot be a signature.

#[test]
fn oversized_or_malformed_identity_is_438_before_any_certificate_work() {
    let atlanta = domain("atlanta.example.com");
    let signed = sign(&request_with("c1", "1 INVITE", "t", NOW), &atlanta.key);
    let read = check_before_fetch(&signed).unwrap();
    assert_eq!(
        (read.cert_url(), read.alg()),
        ("https://example.com/cert", IdentityAlg::RsaSha256)
    );
    let sig = identity_value(&signed);
    let huge = format!("\"{}\"", "A".repeat(MAX_IDENTITY_LEN + 4));
    // With the default limits the parser already refuses the line (400); a deployment that
    // raises `max_line_length` lets it through to the verifier, which must refuse it itself.
    assert!(replace_with_limits(&signed, &sig, &huge, &Limits::DEFAULT).is_err());
    let wide = Limits {
        max_line_length: 4 * MAX_IDENTITY_LEN,
        ..Limits::DEFAULT
    };
    for (what, value) in [
        ("oversized", huge.as_str()),
        ("not base64", "\"@@@@\""),
        ("unquoted", "QUJD"),
    ] {
        let bad = replace_with_limits(&signed, &sig, value, &wide).unwrap();
        // The step before a fetch refuses it: no certificate is asked for.
        let e = check_before_fetch(&bad).unwrap_err();
        assert_eq!(e.status(), 438, "{what}: {e}");
        // The verifier, handed a certificate nobody trusts, answers 438 too: the Identity is
        // judged before the certificate (which would be 437).
        let e = Verifier::new(VerifierConfig::default(), TrustStore::new())
            .verify(&bad, &atlanta.cert_der, &[], NOW)
            .unwrap_err();
        assert_eq!(e.status(), 438, "{what}: {e}");
    }
    // No Identity at all is 428 before anything about Identity-Info (there is none here).
    let unsigned = request_with("c1", "1 INVITE", "t", NOW);
    assert_eq!(
        check_before_fetch(&unsigned).unwrap_err(),
        IdentityError::NoIdentity
    );
    assert_eq!(check_before_fetch(&unsigned).unwrap_err().status(), 428);
}

// ---------------------------------------------------------------------------------------------
// Both bounds of the Date window.

/// The verdict on a fresh request dated `date`, checked at `now` under `config`.
fn date_verdict(config: VerifierConfig, date: i64, now: i64) -> Result<(), IdentityError> {
    let atlanta = domain("atlanta.example.com");
    let mut trust = TrustStore::new();
    trust.add_pem_or_der(atlanta.ca_pem.as_bytes()).unwrap();
    let signed = sign(&request_with("c1", "1 INVITE", "t", date), &atlanta.key);
    Verifier::new(config, trust)
        .verify(&signed, &atlanta.cert_der, &[], now)
        .map(|_| ())
}

#[test]
fn configured_max_age_bounds_the_date_on_both_sides() {
    let cfg = VerifierConfig {
        max_age: 600,
        ..VerifierConfig::default()
    };
    assert_eq!(
        date_verdict(cfg.clone(), NOW - 601, NOW),
        Err(IdentityError::StaleDate)
    );
    assert_eq!(date_verdict(cfg.clone(), NOW - 600, NOW), Ok(()));
    assert_eq!(date_verdict(cfg, NOW - 599, NOW), Ok(()));
    // The default (3600 s) at its edge.
    assert_eq!(
        date_verdict(VerifierConfig::default(), NOW - 3601, NOW),
        Err(IdentityError::StaleDate)
    );
    assert_eq!(
        date_verdict(VerifierConfig::default(), NOW - 3600, NOW),
        Ok(())
    );
}

#[test]
fn date_too_far_ahead_is_refused_on_one_side_of_the_bound_only() {
    // Default: at most 600 s ahead.
    assert_eq!(
        date_verdict(VerifierConfig::default(), NOW + 600, NOW),
        Ok(())
    );
    let e = date_verdict(VerifierConfig::default(), NOW + 601, NOW).unwrap_err();
    assert_eq!((e.status(), e), (403, IdentityError::StaleDate));
    // Configured.
    let cfg = VerifierConfig {
        max_future: 30,
        ..VerifierConfig::default()
    };
    assert_eq!(date_verdict(cfg.clone(), NOW + 30, NOW), Ok(()));
    assert_eq!(
        date_verdict(cfg, NOW + 31, NOW),
        Err(IdentityError::StaleDate)
    );
}

#[test]
fn a_date_outside_the_signing_certificates_validity_gets_437() {
    // RFC 4474 §6.2 step 4: the Date must fall within the validity of the signer certificate.
    let not_before = 1_767_225_600; // 2026-01-01
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate_for(&PKCS_RSA_SHA256).unwrap();
    let mut params = CertificateParams::new(vec!["atlanta.example.com".to_string()]).unwrap();
    params.not_before = rcgen::date_time_ymd(2026, 1, 1);
    params.not_after = rcgen::date_time_ymd(2027, 1, 1);
    let cert = params.signed_by(&key, &issuer).unwrap();
    let key = RsaSigningKey::from_der(&key.serialize_der()).unwrap();
    let ca_pem = ca_cert.pem();
    let trust = || {
        let mut t = TrustStore::new();
        t.add_pem_or_der(ca_pem.as_bytes()).unwrap();
        t
    };
    // A Date window wide enough that only the certificate's validity can refuse.
    let cfg = VerifierConfig {
        max_age: 10 * 365 * 86_400,
        ..VerifierConfig::default()
    };
    let now = not_before + 86_400;
    let sign = |date| {
        add_identity(
            &request("atlanta.example.com", date),
            &key,
            IdentityAlg::RsaSha256,
            "https://atlanta.example.com/cert",
        )
        .unwrap()
    };
    let mut v = Verifier::new(cfg.clone(), trust());
    assert!(
        v.verify(&sign(not_before + 60), cert.der(), &[], now)
            .is_ok()
    );
    let mut v = Verifier::new(cfg.clone(), trust());
    let e = v
        .verify(&sign(not_before - 60), cert.der(), &[], now)
        .unwrap_err();
    assert_eq!(e.status(), 437, "{e}");
    assert!(e.to_string().contains("validity"), "{e}");
    // Without certificate time checks (expired published examples), the Date is not held
    // against the certificate either.
    let mut v = Verifier::new(
        VerifierConfig {
            check_certificate_time: false,
            ..cfg
        },
        trust(),
    );
    assert!(
        v.verify(&sign(not_before - 60), cert.der(), &[], now)
            .is_ok()
    );
}
