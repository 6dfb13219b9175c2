//! Instruction-count harness for RFC 4474 verification (stable under host noise, unlike the
//! criterion timings):
//!
//! ```text
//! valgrind --tool=callgrind --toggle-collect='verify_loop::measure*' \
//!     target/release/examples/verify_loop MODE 256
//! ```
//!
//! counts only the verification loop (not the key generation and signing of the set-up), with
//! MODE `raw` (aws-lc one-shot verify), `raw-parsed` (key parsed once), `signature`
//! (`verify_signature`) or `verifier` (`Verifier::verify`, certificate cached); divide by N
//! (at most 256). Valgrind's CPU model may select other aws-lc code paths than the real CPU,
//! so compare modes with each other, not with criterion's times.

use std::hint::black_box;

use vouch_auth::identity::{
    IdentityAlg, RsaHash, RsaSigningKey, TrustStore, Verifier, VerifierConfig, add_identity,
    digest_string, verify_signature,
};
use vouch_msg::Message;

#[path = "../benches/common.rs"]
mod common;

use common::{NOW, invite};

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "verifier".into());
    // At most 256: each message is verified once (the replay cache refuses a second time).
    let n: usize = args
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(256)
        .min(256);
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("RSA key");
    let cert = rcgen::CertificateParams::new(vec!["atlanta.example.com".to_string()])
        .expect("params")
        .self_signed(&kp)
        .expect("cert");
    let key = RsaSigningKey::from_der(&kp.serialize_der()).expect("key");
    let (_, x509) = x509_parser::parse_x509_certificate(cert.der()).expect("x509");
    let public = x509.public_key().subject_public_key.data.to_vec();
    let messages: Vec<Message> = (0..256)
        .map(|i| {
            add_identity(
                &invite(&format!("c{i}")),
                &key,
                IdentityAlg::RsaSha1,
                "https://atlanta.example.com/c",
            )
            .expect("signed")
        })
        .collect();
    let ds = digest_string(&messages[0]).expect("digest-string");
    let sig = key.sign(RsaHash::Sha1, &ds).expect("sig");
    let alg = &aws_lc_rs::signature::RSA_PKCS1_1024_8192_SHA1_FOR_LEGACY_USE_ONLY;
    let mut trust = TrustStore::new();
    trust.add_pem_or_der(cert.der()).expect("trust");
    let mut verifier = Verifier::new(VerifierConfig::default(), trust);
    // Warm the verifier's certificate cache outside the counted loop.
    let warm =
        add_identity(&invite("warm"), &key, IdentityAlg::RsaSha1, "https://a/c").expect("signed");
    verifier
        .verify(&warm, cert.der(), &[], NOW)
        .expect("verified");
    let parsed = aws_lc_rs::signature::ParsedPublicKey::new(alg, &public).expect("key");
    let setup = Setup {
        messages: &messages[..n],
        ds: &ds,
        sig: &sig,
        public: &public,
        parsed: &parsed,
        cert: cert.der(),
    };
    measure(&mode, &setup, &mut verifier);
}

struct Setup<'a> {
    messages: &'a [Message],
    ds: &'a [u8],
    sig: &'a [u8],
    public: &'a [u8],
    parsed: &'a aws_lc_rs::signature::ParsedPublicKey,
    cert: &'a [u8],
}

#[inline(never)]
fn measure(mode: &str, s: &Setup<'_>, verifier: &mut Verifier) {
    let alg = &aws_lc_rs::signature::RSA_PKCS1_1024_8192_SHA1_FOR_LEGACY_USE_ONLY;
    for m in s.messages {
        match mode {
            "raw" => aws_lc_rs::signature::UnparsedPublicKey::new(alg, s.public)
                .verify(black_box(s.ds), s.sig)
                .expect("verifies"),
            "raw-parsed" => s
                .parsed
                .verify_sig(black_box(s.ds), s.sig)
                .expect("verifies"),
            "signature" => {
                verify_signature(black_box(m), s.public).expect("verifies");
            }
            _ => {
                verifier
                    .verify(black_box(m), s.cert, &[], NOW + 1)
                    .expect("verified");
            }
        }
    }
}
