//! Session certificates (issue 6): per-login certificates, fingerprints, S/MIME certs-only
//! (with OpenSSL interop) and certificate-carrying bodies.

use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use proptest::prelude::*;
use vouch_auth::session_cert::*;
use x509_parser::prelude::*;

const ALICE: &str = "sip:alice@atlanta.example";
const DEVICE: &str = "urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6";
const T0: i64 = 1_764_000_000;
const SDP: &[u8] = b"v=0\r\no=alice 2890844526 2890844526 IN IP4 192.0.2.1\r\ns=-\r\n\
c=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 49170 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

fn alice() -> LoginCertificate {
    LoginCertificate::generate(ALICE, Some(DEVICE), T0, DEFAULT_LIFETIME_SECS).unwrap()
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = B64.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

// ---------------------------------------------------------------- per-login certificates

#[test]
fn generated_certificate_names_aor_and_device() {
    let cert = alice();
    assert!(cert.is_generated());
    assert_eq!(cert.aor(), ALICE);
    assert_eq!(cert.device(), Some(DEVICE));
    let (rest, x509) = X509Certificate::from_der(cert.der()).unwrap();
    assert!(rest.is_empty());
    let cn: Vec<&str> = x509
        .subject()
        .iter_common_name()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(cn, [ALICE]);
    assert_eq!(x509.subject(), x509.issuer(), "self-signed");
    let san = x509.subject_alternative_name().unwrap().unwrap();
    let uris: Vec<&str> = san
        .value
        .general_names
        .iter()
        .map(|n| match n {
            GeneralName::URI(u) => *u,
            other => panic!("unexpected SAN {other:?}"),
        })
        .collect();
    assert_eq!(uris, [ALICE, DEVICE]);
    assert_eq!(x509.validity().not_before.timestamp(), T0);
    assert_eq!(
        x509.validity().not_after.timestamp(),
        T0 + DEFAULT_LIFETIME_SECS
    );
    assert_eq!(cert.not_before(), T0);
    assert_eq!(cert.not_after(), T0 + 86_400);
    // P-256 (id-ecPublicKey with prime256v1), signed ECDSA-SHA256.
    assert_eq!(
        x509.public_key().algorithm.algorithm.to_id_string(),
        "1.2.840.10045.2.1"
    );
    assert_eq!(
        x509.signature_algorithm.algorithm.to_id_string(),
        "1.2.840.10045.4.3.2"
    );
    assert!(!x509.is_ca());
    assert_eq!(cert.fingerprint(), &CertFingerprint::of(cert.der()));
    // Debug must not leak the key.
    let debug = format!("{cert:?}");
    assert!(!debug.contains("key_pkcs8"), "{debug}");
}

#[test]
fn every_login_gets_a_fresh_key() {
    let a = alice();
    let b = alice();
    assert_ne!(a.key_pkcs8_der(), b.key_pkcs8_der());
    assert_ne!(a.der(), b.der());
    assert_ne!(a.fingerprint(), b.fingerprint());
    // The key belongs to its certificate and not to the other one.
    assert!(LoginCertificate::from_der(ALICE, a.der(), a.key_pkcs8_der()).is_ok());
    assert_eq!(
        LoginCertificate::from_der(ALICE, a.der(), b.key_pkcs8_der()).unwrap_err(),
        SessionCertError::KeyMismatch
    );
}

#[test]
fn device_as_sip_instance_value_and_without_device() {
    let quoted = format!("\"<{DEVICE}>\"");
    let cert = LoginCertificate::generate(ALICE, Some(&quoted), T0, 60).unwrap();
    assert_eq!(cert.device(), Some(DEVICE));
    let plain = LoginCertificate::generate("sips:bob@biloxi.example", None, T0, 60).unwrap();
    let (_, x509) = X509Certificate::from_der(plain.der()).unwrap();
    let san = x509.subject_alternative_name().unwrap().unwrap();
    assert_eq!(san.value.general_names.len(), 1);
}

#[test]
fn invalid_generation_inputs_are_errors() {
    for aor in [
        "alice@atlanta.example",
        "tel:+15551234",
        "sip:",
        "sip:al ice@x",
        "",
    ] {
        assert!(
            matches!(
                LoginCertificate::generate(aor, None, T0, 60),
                Err(SessionCertError::InvalidAor(_))
            ),
            "{aor}"
        );
    }
    for device in ["", "no-scheme", "urn:uuid:a b", "<>"] {
        assert!(
            matches!(
                LoginCertificate::generate(ALICE, Some(device), T0, 60),
                Err(SessionCertError::InvalidDevice(_))
            ),
            "{device}"
        );
    }
    for (nb, life) in [
        (T0, 0),
        (T0, -5),
        (-1, 60),
        (i64::MAX - 10, 60),
        (T0, i64::MAX),
    ] {
        assert!(
            matches!(
                LoginCertificate::generate(ALICE, None, nb, life),
                Err(SessionCertError::InvalidValidity(_))
            ),
            "{nb} {life}"
        );
    }
}

#[test]
fn expiry_and_renewal_follow_the_passed_in_time() {
    let cert = alice();
    let end = T0 + DEFAULT_LIFETIME_SECS;
    assert!(!cert.is_valid_at(T0 - 1));
    assert!(cert.is_valid_at(T0));
    assert!(cert.is_valid_at(end), "notAfter itself is still valid");
    assert!(!cert.is_valid_at(end + 1));
    assert!(!cert.is_expired(end));
    assert!(cert.is_expired(end + 1));

    // Renewal a tenth of the lifetime (2 h 24 min) before the end.
    assert_eq!(cert.renew_at(), end - 8_640);
    assert!(!cert.needs_renewal(T0));
    assert!(!cert.needs_renewal(end - 8_641));
    assert!(cert.needs_renewal(end - 8_640));
    assert!(cert.needs_renewal(end + 1_000));
    // Clock went backwards: not valid yet, so renew.
    assert!(cert.needs_renewal(T0 - 1));

    // The renewed certificate starts now and is fresh.
    let now = end - 100;
    let renewed =
        LoginCertificate::generate(ALICE, Some(DEVICE), now, DEFAULT_LIFETIME_SECS).unwrap();
    assert!(!renewed.needs_renewal(now));
    assert_ne!(renewed.der(), cert.der());
}

#[test]
fn device_certificate_from_pem() {
    // A device certificate made elsewhere (here: by rcgen, with a DNS name only).
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params =
        rcgen::CertificateParams::new(vec!["phone-17.atlanta.example".into()]).unwrap();
    params.not_before = rcgen::date_time_ymd(2026, 1, 1);
    params.not_after = rcgen::date_time_ymd(2027, 1, 1);
    let device = params.self_signed(&key).unwrap();
    let cert_pem = device.pem();
    let key_pem = key.serialize_pem();

    let loaded =
        LoginCertificate::from_pem(ALICE, cert_pem.as_bytes(), key_pem.as_bytes()).unwrap();
    assert!(!loaded.is_generated());
    assert_eq!(loaded.aor(), ALICE);
    assert_eq!(loaded.device(), None);
    assert_eq!(loaded.der(), device.der().as_ref());
    assert_eq!(loaded.key_pkcs8_der(), key.serialized_der());
    assert_eq!(loaded.not_before(), 1_767_225_600); // 2026-01-01T00:00:00Z
    assert_eq!(loaded.not_after(), 1_798_761_600); // 2027-01-01T00:00:00Z
    assert!(loaded.is_valid_at(1_780_000_000));

    let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    assert_eq!(
        LoginCertificate::from_pem(ALICE, cert_pem.as_bytes(), other.serialize_pem().as_bytes())
            .unwrap_err(),
        SessionCertError::KeyMismatch
    );
    assert!(matches!(
        LoginCertificate::from_pem(ALICE, b"not pem", key_pem.as_bytes()),
        Err(SessionCertError::BadCertificate(_))
    ));
    assert!(matches!(
        LoginCertificate::from_pem(ALICE, cert_pem.as_bytes(), b"not pem"),
        Err(SessionCertError::BadPrivateKey(_))
    ));
    // A SEC1 key ("EC PRIVATE KEY") is refused with a hint rather than misread.
    let sec1 = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIIrYSSNQFaA2Hwf1duRSxKtLYX5CB04fSeQ6tF1aY/PuoAoGCCqGSM49\nAwEHoUQDQgAEPR3tU2Fta9ktY+6P9G0cWO+0kETA6SQs7vbPgPtjRKQhoP/TrhHs\nS/TXbQBMdB4KyDzoxuubaHqOb1Z1n6mHAQ==\n-----END EC PRIVATE KEY-----\n";
    assert!(matches!(
        LoginCertificate::from_pem(ALICE, cert_pem.as_bytes(), sec1.as_bytes()),
        Err(SessionCertError::BadPrivateKey(_))
    ));
}

// ---------------------------------------------------------------- fingerprints

#[test]
fn fingerprint_matches_its_certificate_only() {
    let a = alice();
    let b = alice();
    let fp = a.fingerprint();
    assert!(fp.matches(a.der()));
    assert!(!fp.matches(b.der()));
    let text = fp.to_string();
    assert!(text.starts_with("sha-256 "));
    let hex = text.strip_prefix("sha-256 ").unwrap();
    assert!(
        hex.bytes()
            .all(|c| c.is_ascii_digit() || (b'A'..=b'F').contains(&c) || c == b':')
    );
    let parsed: CertFingerprint = format!("SHA-256 {}", hex.to_ascii_lowercase())
        .parse()
        .unwrap();
    assert_eq!(&parsed, fp);
    for hash in [
        FingerprintHash::Sha1,
        FingerprintHash::Sha384,
        FingerprintHash::Sha512,
    ] {
        let other = CertFingerprint::with_hash(hash, a.der());
        assert!(other.matches(a.der()));
        assert!(!other.matches(b.der()));
    }
}

// ---------------------------------------------------------------- certs-only

#[test]
fn certs_only_round_trip() {
    let a = alice();
    let b = alice();
    let one = encode_certs_only([a.der()]).unwrap();
    assert_eq!(
        decode_certs_only(&one, &CertsOnlyLimits::DEFAULT).unwrap(),
        vec![a.der().to_vec()]
    );
    let two = encode_certs_only([a.der(), b.der()]).unwrap();
    let mut got = decode_certs_only(&two, &CertsOnlyLimits::DEFAULT).unwrap();
    // DER sorts a SET OF, so order both to compare.
    let mut want = vec![a.der().to_vec(), b.der().to_vec()];
    assert!(got.windows(2).all(|w| w[0] <= w[1]), "encoded sorted");
    got.sort();
    want.sort();
    assert_eq!(got, want);
    // Deterministic whatever the input order.
    assert_eq!(two, encode_certs_only([b.der(), a.der()]).unwrap());
}

#[test]
fn certs_only_encoding_refuses_non_certificates() {
    let a = alice();
    assert!(encode_certs_only(std::iter::empty()).is_err());
    assert!(encode_certs_only([&b"\x30\x00"[..]]).is_err());
    let mut trailing = a.der().to_vec();
    trailing.push(0);
    assert!(encode_certs_only([trailing.as_slice()]).is_err());
}

/// Offsets in a one-certificate certs-only blob made by [`encode_certs_only`] (all lengths
/// long-form two bytes, as a ~400-byte certificate makes them).
fn one_cert_blob() -> (LoginCertificate, Vec<u8>) {
    let a = alice();
    let blob = encode_certs_only([a.der()]).unwrap();
    (a, blob)
}

fn rewrap(content_info_inner: &[u8]) -> Vec<u8> {
    let mut out = vec![0x30];
    push_len(&mut out, content_info_inner.len());
    out.extend_from_slice(content_info_inner);
    out
}

fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else if len < 0x100 {
        out.extend_from_slice(&[0x81, len as u8]);
    } else {
        out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]);
    }
}

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    push_len(&mut out, content.len());
    out.extend_from_slice(content);
    out
}

const OID_SIGNED_DATA: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02,
];
const OID_DATA: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01,
];

/// A certs-only blob assembled field by field, so one field at a time can be made wrong.
fn assemble(
    content_type: &[u8],
    version: u8,
    encap: &[u8],
    certs: &[u8],
    extra_before_signers: &[u8],
    signer_infos: &[u8],
) -> Vec<u8> {
    let mut sd = tlv(0x02, &[version]);
    sd.extend(tlv(0x31, &[]));
    sd.extend(tlv(0x30, encap));
    sd.extend(tlv(0xa0, certs));
    sd.extend_from_slice(extra_before_signers);
    sd.extend(tlv(0x31, signer_infos));
    let mut ci = content_type.to_vec();
    ci.extend(tlv(0xa0, &tlv(0x30, &sd)));
    rewrap(&ci)
}

#[test]
fn certs_only_assembled_by_hand_matches_encoder() {
    let (a, blob) = one_cert_blob();
    assert_eq!(
        assemble(OID_SIGNED_DATA, 1, OID_DATA, a.der(), &[], &[]),
        blob
    );
    // Version 3 and an (ignored) crls field are still certs-only.
    let v3 = assemble(OID_SIGNED_DATA, 3, OID_DATA, a.der(), &tlv(0xa1, &[]), &[]);
    assert_eq!(
        decode_certs_only(&v3, &CertsOnlyLimits::DEFAULT).unwrap(),
        vec![a.der().to_vec()]
    );
}

#[test]
fn malformed_certs_only_is_an_error_not_a_panic() {
    let (a, blob) = one_cert_blob();
    let limits = CertsOnlyLimits::DEFAULT;
    let bad = |b: &[u8]| decode_certs_only(b, &limits).unwrap_err();

    // Every truncation.
    for n in 0..blob.len() {
        assert!(
            matches!(bad(&blob[..n]), SessionCertError::BadCertsOnly(_)),
            "prefix {n}"
        );
    }
    // Trailing bytes.
    let mut long = blob.clone();
    long.push(0);
    bad(&long);
    // Wrong content type OID (id-data instead of id-signedData) and wrong eContentType.
    assert_eq!(
        bad(&assemble(OID_DATA, 1, OID_DATA, a.der(), &[], &[])),
        SessionCertError::BadCertsOnly("content type is not id-signedData")
    );
    bad(&assemble(
        OID_SIGNED_DATA,
        1,
        OID_SIGNED_DATA,
        a.der(),
        &[],
        &[],
    ));
    // Unknown version.
    bad(&assemble(OID_SIGNED_DATA, 2, OID_DATA, a.der(), &[], &[]));
    // eContent present.
    let mut with_content = OID_DATA.to_vec();
    with_content.extend(tlv(0xa0, &tlv(0x04, b"hello")));
    assert_eq!(
        bad(&assemble(
            OID_SIGNED_DATA,
            1,
            &with_content,
            a.der(),
            &[],
            &[]
        )),
        SessionCertError::BadCertsOnly("certs-only message has content")
    );
    // A signer: a signed message, not certs-only.
    assert_eq!(
        bad(&assemble(
            OID_SIGNED_DATA,
            1,
            OID_DATA,
            a.der(),
            &[],
            &tlv(0x30, &[])
        )),
        SessionCertError::BadCertsOnly("has signers: a signed message, not certs-only")
    );
    // No certificates, or a certificate that is not X.509.
    bad(&assemble(OID_SIGNED_DATA, 1, OID_DATA, &[], &[], &[]));
    bad(&assemble(
        OID_SIGNED_DATA,
        1,
        OID_DATA,
        &tlv(0x30, &[0x02, 0x01, 0x00]),
        &[],
        &[],
    ));
    // An attribute certificate alone is skipped, leaving no X.509 certificate.
    bad(&assemble(
        OID_SIGNED_DATA,
        1,
        OID_DATA,
        &tlv(0xa1, &[]),
        &[],
        &[],
    ));
    // Unknown CertificateChoices tag.
    bad(&assemble(
        OID_SIGNED_DATA,
        1,
        OID_DATA,
        &tlv(0x04, &[]),
        &[],
        &[],
    ));

    // Huge lengths: claimed far past the end, 4-byte and over-long length forms.
    for header in [
        &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff][..],
        &[0x30, 0x84, 0x7f, 0xff, 0xff, 0xff][..],
        &[0x30, 0x88, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff][..],
        &[0x30, 0x80][..],             // indefinite length
        &[0x30, 0x81, 0x05][..],       // non-minimal: long form for a short length
        &[0x30, 0x82, 0x00, 0x85][..], // non-minimal: leading zero
        &[0x3f, 0x01, 0x00][..],       // high tag number
    ] {
        let mut b = header.to_vec();
        b.extend_from_slice(&[0u8; 200]);
        assert!(
            matches!(bad(&b), SessionCertError::BadCertsOnly(_)),
            "{header:x?}"
        );
    }

    // Limits.
    let two = encode_certs_only([a.der(), alice().der()]).unwrap();
    assert_eq!(
        decode_certs_only(
            &two,
            &CertsOnlyLimits {
                max_certificates: 1,
                ..limits
            }
        )
        .unwrap_err(),
        SessionCertError::BadCertsOnly("more certificates than the limit")
    );
    assert_eq!(
        decode_certs_only(
            &blob,
            &CertsOnlyLimits {
                max_size: blob.len() - 1,
                ..limits
            }
        )
        .unwrap_err(),
        SessionCertError::BadCertsOnly("larger than the size limit")
    );
}

// ---------------------------------------------------------------- OpenSSL interop

/// `openssl` with arguments, or `None` (with the reason printed) when it is not installed.
fn openssl(args: &[&str], dir: &Path) -> Option<std::process::Output> {
    match Command::new("openssl").args(args).current_dir(dir).output() {
        Ok(out) => {
            assert!(
                out.status.success(),
                "openssl {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            Some(out)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("SKIPPED: the openssl command is not installed ({e})");
            None
        }
        Err(e) => panic!("running openssl: {e}"),
    }
}

/// The DER of every PEM certificate in `text`.
fn pem_certs(text: &[u8]) -> Vec<Vec<u8>> {
    use rustls_pki_types::pem::PemObject as _;
    rustls_pki_types::CertificateDer::pem_slice_iter(text)
        .map(|c| c.unwrap().as_ref().to_vec())
        .collect()
}

#[test]
fn openssl_reads_our_certs_only() {
    let dir = tempfile::tempdir().unwrap();
    let a = alice();
    let b = alice();
    let blob = encode_certs_only([a.der(), b.der()]).unwrap();
    std::fs::write(dir.path().join("ours.p7c"), &blob).unwrap();
    let Some(out) = openssl(
        &["pkcs7", "-inform", "DER", "-in", "ours.p7c", "-print_certs"],
        dir.path(),
    ) else {
        return;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("alice@atlanta.example"), "{text}");
    let mut got = pem_certs(&out.stdout);
    got.sort();
    let mut want = vec![a.der().to_vec(), b.der().to_vec()];
    want.sort();
    assert_eq!(got, want);

    // Field by field, as OpenSSL's CMS printer sees it.
    let out = openssl(
        &[
            "cms", "-cmsout", "-print", "-inform", "DER", "-in", "ours.p7c",
        ],
        dir.path(),
    )
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for expected in [
        "contentType: pkcs7-signedData (1.2.840.113549.1.7.2)",
        "version: 1",
        "eContentType: pkcs7-data (1.2.840.113549.1.7.1)",
        "eContent: <ABSENT>",
        "crls:\n      <ABSENT>",
        "signerInfos:\n      <EMPTY>",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
    // OpenSSL's own DER re-encoding is byte-identical: ours is canonical.
    let out = openssl(
        &[
            "pkcs7", "-inform", "DER", "-in", "ours.p7c", "-outform", "DER",
        ],
        dir.path(),
    )
    .unwrap();
    assert_eq!(out.stdout, blob);

    // OpenSSL also reads the certificate itself, with both URIs in subjectAltName.
    std::fs::write(dir.path().join("a.der"), a.der()).unwrap();
    let out = openssl(
        &["x509", "-inform", "DER", "-in", "a.der", "-noout", "-text"],
        dir.path(),
    )
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("URI:{ALICE}")), "{text}");
    assert!(text.contains(&format!("URI:{DEVICE}")), "{text}");
    assert!(
        text.contains("prime256v1") || text.contains("P-256"),
        "{text}"
    );
}

#[test]
fn we_read_openssl_certs_only() {
    let dir = tempfile::tempdir().unwrap();
    let a = alice();
    let b = alice();
    std::fs::write(
        dir.path().join("certs.pem"),
        format!(
            "{}{}",
            pem("CERTIFICATE", a.der()),
            pem("CERTIFICATE", b.der())
        ),
    )
    .unwrap();
    std::fs::write(dir.path().join("one.pem"), pem("CERTIFICATE", a.der())).unwrap();
    for (file, want) in [
        ("one.pem", vec![a.der().to_vec()]),
        ("certs.pem", vec![a.der().to_vec(), b.der().to_vec()]),
    ] {
        if openssl(
            &[
                "crl2pkcs7",
                "-nocrl",
                "-certfile",
                file,
                "-outform",
                "DER",
                "-out",
                "theirs.p7c",
            ],
            dir.path(),
        )
        .is_none()
        {
            return;
        }
        let theirs = std::fs::read(dir.path().join("theirs.p7c")).unwrap();
        let got = decode_certs_only(&theirs, &CertsOnlyLimits::DEFAULT).unwrap();
        // OpenSSL keeps file order (it encodes certificates as a SEQUENCE OF).
        assert_eq!(got, want, "{file}");
        // And its body reads through the receiver path too.
        let offered = offered_certificates(CERTS_ONLY_CONTENT_TYPE, &theirs).unwrap();
        assert_eq!(offered.certificates, want);
    }
}

// ---------------------------------------------------------------- bodies

#[test]
fn both_forms_round_trip() {
    let a = alice();
    let out = body_with_certificate(SDP, a.der(), CertificateCarriage::Both).unwrap();
    assert!(
        out.content_type
            .starts_with("multipart/mixed;boundary=vouch-")
    );
    let text = String::from_utf8_lossy(&out.body);
    assert!(text.contains("Content-Type: application/sdp\r\n"));
    assert!(text.contains(
        "Content-Type: application/pkcs7-mime;smime-type=certs-only;name=smime.p7c\r\n\
         Content-Transfer-Encoding: binary\r\n\
         Content-Disposition: attachment;handling=optional;filename=smime.p7c\r\n\r\n"
    ));
    let offered = offered_certificates(&out.content_type, &out.body).unwrap();
    assert_eq!(offered.certificates, vec![a.der().to_vec()]);
    assert_eq!(offered.fingerprints, vec![a.fingerprint().clone()]);
    let sdp = offered.sdp.clone().unwrap();
    assert_eq!(sdp, add_fingerprint_to_sdp(SDP, a.fingerprint()).unwrap());
    assert!(offered.offers(a.der()));
    assert!(offered.offers_exactly(a.der()));
    assert!(offered.offers_fingerprint(a.fingerprint()));
    let b = alice();
    assert!(!offered.offers(b.der()));
    assert!(!offered.offers_exactly(b.der()));
    assert!(!offered.offers_fingerprint(b.fingerprint()));
    // Same input, same bytes: the boundary comes from the content, not from randomness.
    assert_eq!(
        out,
        body_with_certificate(SDP, a.der(), CertificateCarriage::Both).unwrap()
    );
}

#[test]
fn certs_only_part_keeps_the_sdp_unchanged() {
    let a = alice();
    let out = body_with_certificate(SDP, a.der(), CertificateCarriage::CertsOnlyPart).unwrap();
    let offered = offered_certificates(&out.content_type, &out.body).unwrap();
    assert_eq!(offered.sdp.as_deref(), Some(SDP));
    assert!(offered.fingerprints.is_empty());
    assert_eq!(offered.certificates, vec![a.der().to_vec()]);
    assert!(offered.offers_exactly(a.der()));
}

#[test]
fn sdp_fingerprint_goes_before_the_first_media_line() {
    let a = alice();
    let out = body_with_certificate(SDP, a.der(), CertificateCarriage::SdpFingerprint).unwrap();
    assert_eq!(out.content_type, "application/sdp");
    let line = format!("{}\r\n", a.fingerprint().sdp_attribute());
    let text = String::from_utf8(out.body.clone()).unwrap();
    let fp_at = text.find(&line).unwrap();
    assert_eq!(&text[fp_at + line.len()..fp_at + line.len() + 2], "m=");
    assert_eq!(text.len(), SDP.len() + line.len());
    let offered = offered_certificates("Application/SDP", &out.body).unwrap();
    assert!(offered.certificates.is_empty());
    assert_eq!(offered.fingerprints, vec![a.fingerprint().clone()]);
    assert!(offered.offers_exactly(a.der()));
    assert!(!offered.offers_exactly(alice().der()));
    // Adding it again changes nothing.
    assert_eq!(
        add_fingerprint_to_sdp(&out.body, a.fingerprint()).unwrap(),
        out.body
    );
}

#[test]
fn sdp_fingerprint_with_lf_endings_and_without_media() {
    let fp = alice().fingerprint().clone();
    let lf = add_fingerprint_to_sdp(b"v=0\ns=-\nm=audio 1 RTP/AVP 0\n", &fp).unwrap();
    assert_eq!(
        lf,
        format!("v=0\ns=-\n{}\nm=audio 1 RTP/AVP 0\n", fp.sdp_attribute()).into_bytes()
    );
    let no_media = add_fingerprint_to_sdp(b"v=0\r\ns=-", &fp).unwrap();
    assert_eq!(
        no_media,
        format!("v=0\r\ns=-\r\n{}\r\n", fp.sdp_attribute()).into_bytes()
    );
    assert!(add_fingerprint_to_sdp(b"hello", &fp).is_err());
}

#[test]
fn receiver_reads_media_level_and_skips_unknown_hashes() {
    let a = alice();
    let b = alice();
    let sdp = format!(
        "v=0\r\ns=-\r\na=fingerprint:md5 00:11\r\nm=audio 1 RTP/AVP 0\r\n{}\r\n{}\r\n",
        a.fingerprint().sdp_attribute(),
        CertFingerprint::with_hash(FingerprintHash::Sha1, b.der()).sdp_attribute()
    );
    let offered = offered_certificates("application/sdp", sdp.as_bytes()).unwrap();
    assert_eq!(offered.fingerprints.len(), 2);
    assert!(offered.offers(a.der()) && offered.offers(b.der()));
    // Two keys offered: never "exactly" one of them.
    assert!(!offered.offers_exactly(a.der()));
    // A malformed fingerprint of a known hash is an error.
    assert!(
        offered_certificates("application/sdp", b"v=0\r\na=fingerprint:sha-256 00:11\r\n").is_err()
    );
    // No fingerprint at all: empty, not an error.
    let none = offered_certificates("application/sdp", SDP).unwrap();
    assert!(none.is_empty());
    assert!(!none.offers_exactly(a.der()));
}

#[test]
fn receiver_accepts_other_encoders_multiparts() {
    let a = alice();
    let p7 = encode_certs_only([a.der()]).unwrap();
    // Quoted boundary, preamble, base64 transfer encoding with line breaks, a folded
    // Content-Type, an unrelated extra part, and an epilogue.
    let b64 = B64.encode(&p7);
    let wrapped: Vec<&str> = b64
        .as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    let mut body = b"This is a multi-part message in MIME format.\r\n--=_a b:c\r\n\
Content-Type: application/sdp\r\n\r\n"
        .to_vec();
    body.extend_from_slice(SDP);
    body.extend_from_slice(
        b"\r\n--=_a b:c\r\nContent-Type: text/plain\r\n\r\nhello\r\n--=_a b:c\r\n\
content-type: application/pkcs7-mime;\r\n\tsmime-type=\"certs-only\"; name=smime.p7c\r\n\
Content-Transfer-Encoding: BASE64\r\n\r\n",
    );
    body.extend_from_slice(wrapped.join("\r\n").as_bytes());
    body.extend_from_slice(b"\r\n--=_a b:c--\r\nepilogue\r\n");
    let offered = offered_certificates("multipart/mixed; boundary=\"=_a b:c\"", &body).unwrap();
    assert_eq!(offered.sdp.as_deref(), Some(SDP));
    assert_eq!(offered.certificates, vec![a.der().to_vec()]);

    // A lone certs-only body (an UPDATE without an offer).
    let lone = certs_only_body(a.der()).unwrap();
    let offered = offered_certificates(&lone.content_type, &lone.body).unwrap();
    assert_eq!(offered.sdp, None);
    assert!(offered.offers_exactly(a.der()));
}

#[test]
fn a_swapped_certificate_is_seen() {
    // A man in the middle replaces the certs-only part with his own certificate: the receiver
    // sees a different certificate (and the Identity over the body fails anyway).
    let alice = alice();
    let mallory = LoginCertificate::generate(ALICE, None, T0, 60).unwrap();
    let out = body_with_certificate(SDP, alice.der(), CertificateCarriage::CertsOnlyPart).unwrap();
    let swapped = {
        let theirs = encode_certs_only([alice.der()]).unwrap();
        let ours = encode_certs_only([mallory.der()]).unwrap();
        let at = out
            .body
            .windows(theirs.len())
            .position(|w| w == theirs.as_slice())
            .unwrap();
        [&out.body[..at], &ours[..], &out.body[at + theirs.len()..]].concat()
    };
    let offered = offered_certificates(&out.content_type, &swapped).unwrap();
    assert!(!offered.offers(alice.der()));
    assert!(offered.offers_exactly(mallory.der()));
}

#[test]
fn malformed_bodies_are_errors() {
    let a = alice();
    let out = body_with_certificate(SDP, a.der(), CertificateCarriage::Both).unwrap();
    // Every truncation of the multipart body is refused (the close delimiter is required).
    for n in 0..out.body.len() - 2 {
        assert!(
            offered_certificates(&out.content_type, &out.body[..n]).is_err(),
            "prefix {n}"
        );
    }
    // Unsupported or malformed Content-Types.
    for ct in [
        "text/plain",
        "application/pkcs7-mime; smime-type=enveloped-data",
        "multipart/alternative;boundary=x",
        "multipart/mixed",
        "nonsense",
    ] {
        assert!(offered_certificates(ct, &out.body).is_err(), "{ct}");
    }
    // Two SDP parts.
    let two_sdp = b"--b\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n\r\n--b\r\n\
Content-Type: application/sdp\r\n\r\nv=0\r\n\r\n--b--\r\n";
    assert_eq!(
        offered_certificates("multipart/mixed;boundary=b", two_sdp).unwrap_err(),
        SessionCertError::BadBody("more than one application/sdp part")
    );
    // Too many parts.
    let mut many = Vec::new();
    for _ in 0..100 {
        many.extend_from_slice(b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n");
    }
    many.extend_from_slice(b"--b--\r\n");
    assert!(matches!(
        offered_certificates("multipart/mixed;boundary=b", &many),
        Err(SessionCertError::Multipart(
            vouch_msg::multipart::MultipartError::TooManyParts { .. }
        ))
    ));
    // Corrupt certs-only part, unknown transfer encoding, bad base64.
    let corrupt = b"--b\r\nContent-Type: application/pkcs7-mime;smime-type=certs-only\r\n\r\n\x30\x84\xff\xff\xff\xff\r\n--b--";
    assert!(matches!(
        offered_certificates("multipart/mixed;boundary=b", corrupt),
        Err(SessionCertError::BadCertsOnly(_))
    ));
    let qp = b"--b\r\nContent-Type: application/pkcs7-mime;smime-type=certs-only\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nx\r\n--b--";
    assert!(offered_certificates("multipart/mixed;boundary=b", qp).is_err());
    let b64 = b"--b\r\nContent-Type: application/pkcs7-mime;smime-type=certs-only\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!\r\n--b--";
    assert!(offered_certificates("multipart/mixed;boundary=b", b64).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = decode_certs_only(&bytes, &CertsOnlyLimits::DEFAULT);
        let _ = offered_certificates(CERTS_ONLY_CONTENT_TYPE, &bytes);
        let _ = offered_certificates("multipart/mixed;boundary=b", &bytes);
        let _ = offered_certificates("application/sdp", &bytes);
    }

    #[test]
    fn decoding_a_mutated_blob_never_panics(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let (_, mut blob) = one_cert_blob();
        for (at, byte) in flips {
            let i = at.index(blob.len());
            blob[i] = byte;
        }
        let n = cut.index(blob.len() + 1);
        let _ = decode_certs_only(&blob[..n], &CertsOnlyLimits::DEFAULT);
        let _ = decode_certs_only(&blob, &CertsOnlyLimits::DEFAULT);
    }

    #[test]
    fn fingerprint_parsing_never_panics(s in "\\PC{0,120}") {
        let _ = CertFingerprint::parse(&s);
    }
}
