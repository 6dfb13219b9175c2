//! `[verification] system_roots`: the verifier also trusts the system CA bundle, the file
//! `SSL_CERT_FILE` names when set (else the usual OS paths). A certificate issued by a CA that
//! is only in that bundle verifies with `system_roots` on and gets 437 with it off.
//!
//! The test points `SSL_CERT_FILE` at a temporary bundle. Setting the variable in this
//! process would be `unsafe` (and racy with other tests), so the test runs itself again as a
//! child process with the variable set.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use vouch::config::Config;
use vouch::identity::{IdentitySetupError, verification_setup};
use vouch::server::wall_unix;
use vouch_auth::identity::{IdentityAlg, IdentityError, RsaSigningKey, add_identity};
use vouch_msg::Message;
use vouch_msg::headers::date::format_sip_date;

/// Set in the child: the directory with the bundle and the signer's key and certificate.
const CHILD_DIR: &str = "VOUCH_TEST_SYSTEM_ROOTS_DIR";
const DOMAIN: &str = "atlanta.example.com";

fn ca(name: &str) -> (CertificateParams, KeyPair, Vec<u8>) {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name
        .push(rcgen::DnType::CommonName, name.to_owned());
    let key = KeyPair::generate().unwrap();
    let pem = p.self_signed(&key).unwrap().pem().into_bytes();
    (p, key, pem)
}

/// Writes `bundle.pem` (a CA standing for the system roots), `other-ca.pem` (an unrelated
/// configured anchor), and the signer's RSA key (DER) and certificate (DER, issued by the
/// bundle's CA for [`DOMAIN`]).
fn make_material(dir: &Path) {
    let (system_params, system_key, system_pem) = ca("system root");
    std::fs::write(dir.join("bundle.pem"), system_pem).unwrap();
    std::fs::write(dir.join("other-ca.pem"), ca("configured anchor").2).unwrap();
    let issuer = Issuer::new(system_params, system_key);
    let key = KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let leaf = CertificateParams::new(vec![DOMAIN.to_owned()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    std::fs::write(dir.join("signer.key.der"), key.serialize_der()).unwrap();
    std::fs::write(dir.join("signer.der"), leaf.der()).unwrap();
}

/// The verification config: `trust` as the configured anchors, `system_roots` as given, and a
/// data directory without a development CA.
fn config(data: &Path, trust: Vec<PathBuf>, system_roots: bool) -> Config {
    let mut c = Config {
        data_dir: data.to_path_buf(),
        domains: vec!["chicago.example.com".to_owned()],
        ..Config::default()
    };
    c.verification.enabled = true;
    c.verification.trust = trust;
    c.verification.system_roots = system_roots;
    c
}

/// An INVITE from alice@atlanta signed now with the signer's key.
fn signed_invite(dir: &Path, now: i64) -> Message {
    let m = Message::parse(
        format!(
            "INVITE sip:bob@chicago.example.com SIP/2.0\r\n\
             Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-roots\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:alice@{DOMAIN}>;tag=a\r\n\
             To: <sip:bob@chicago.example.com>\r\n\
             Call-ID: system-roots\r\n\
             CSeq: 1 INVITE\r\n\
             Date: {}\r\n\
             Contact: <sip:alice@192.0.2.10:5060>\r\n\
             Content-Length: 0\r\n\r\n",
            format_sip_date(now).unwrap()
        )
        .into_bytes(),
    )
    .unwrap();
    let key = RsaSigningKey::from_der(&std::fs::read(dir.join("signer.key.der")).unwrap()).unwrap();
    add_identity(&m, &key, IdentityAlg::RsaSha1, "http://192.0.2.1/cert.der").unwrap()
}

/// What the verifier `config` sets up says about the signed INVITE.
fn verdict(dir: &Path, config: &Config) -> Result<String, IdentityError> {
    let mut setup = verification_setup(config).unwrap();
    let now = wall_unix();
    let cert = std::fs::read(dir.join("signer.der")).unwrap();
    setup
        .verifier
        .verify(&signed_invite(dir, now), &cert, &[], now)
        .map(|v| v.aor().to_owned())
}

/// In the child, with `SSL_CERT_FILE` naming `dir/bundle.pem`.
fn check_system_roots(dir: &Path) {
    let data = tempfile::tempdir().unwrap();
    let other = vec![dir.join("other-ca.pem")];

    // system_roots off: only the configured anchor is trusted, the signer's CA is not.
    let off = verdict(dir, &config(data.path(), other.clone(), false)).unwrap_err();
    assert!(
        matches!(off, IdentityError::UntrustedCertificate(_)),
        "{off:?}"
    );
    assert_eq!(off.status(), 437);

    // system_roots on: the bundle is trusted beside the configured anchor.
    let on = config(data.path(), other, true);
    assert_eq!(verification_setup(&on).unwrap().anchors, 2);
    assert_eq!(verdict(dir, &on).unwrap(), format!("sip:alice@{DOMAIN}"));

    // The bundle alone is enough trust to start with; without it there is none.
    let only_system = config(data.path(), Vec::new(), true);
    assert_eq!(verification_setup(&only_system).unwrap().anchors, 1);
    assert_eq!(
        verdict(dir, &only_system).unwrap(),
        format!("sip:alice@{DOMAIN}")
    );
    assert!(matches!(
        verification_setup(&config(data.path(), Vec::new(), false)),
        Err(IdentitySetupError::NoTrustAnchors)
    ));
}

#[test]
fn system_roots_trusts_the_ssl_cert_file_bundle_and_off_it_is_437() {
    if let Some(dir) = std::env::var_os(CHILD_DIR) {
        check_system_roots(Path::new(&dir));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    make_material(dir.path());
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "system_roots_trusts_the_ssl_cert_file_bundle_and_off_it_is_437",
            "--exact",
            "--nocapture",
        ])
        .env("SSL_CERT_FILE", dir.path().join("bundle.pem"))
        .env(CHILD_DIR, dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child failed:\n{stdout}\n{stderr}");
    // The child ran this very test (a filter matching nothing would pass too).
    assert!(stdout.contains("1 passed"), "{stdout}");
}
