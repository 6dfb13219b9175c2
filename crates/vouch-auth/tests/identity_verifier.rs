//! The verification service end to end (without the network: the caller hands in the
//! certificate): the RFC 4474 §10 examples with a pinned self-signed certificate, a CA chain
//! made here with rcgen, and the attacks: untrusted or expired certificate, a certificate of
//! another domain, another domain's key, stale Date, replay.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, PKCS_RSA_SHA256, SanType,
};
use vouch_auth::identity::{
    IdentityAlg, IdentityError, RsaSigningKey, TrustStore, Verifier, VerifierConfig, add_identity,
    certificate_domains,
};
use vouch_msg::Message;
use vouch_msg::headers::date::format_sip_date;

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
