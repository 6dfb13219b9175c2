//! RFC 4474 signing and verification against the raw crypto of the same backend (aws-lc), in
//! one run: `cargo bench -p vouch-auth --bench identity`.
//!
//! - raw: RSA-2048 PKCS#1 v1.5 SHA-1 signature over a digest-string-sized input / its check.
//! - vouch: `add_identity` (digest-string, signature, base64, message rebuilt with Identity
//!   and Identity-Info) / `verify_signature` (Identity parsed, digest-string, check) and the
//!   full `Verifier::verify` (chain, name, Date, replay cache) with the certificate in hand
//!   (a warm fetch cache).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use vouch_auth::identity::{
    IdentityAlg, RsaHash, RsaSigningKey, TrustStore, Verifier, VerifierConfig, add_identity,
    digest_string, verify_signature,
};
use vouch_msg::Message;

#[path = "common.rs"]
mod common;

use common::{NOW, invite};

fn bench(c: &mut Criterion) {
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("RSA key");
    let cert = rcgen::CertificateParams::new(vec!["atlanta.example.com".to_string()])
        .expect("params")
        .self_signed(&kp)
        .expect("cert");
    let key = RsaSigningKey::from_der(&kp.serialize_der()).expect("key");
    let msg = invite("bench");
    let ds = digest_string(&msg).expect("digest-string");
    let signed = add_identity(
        &msg,
        &key,
        IdentityAlg::RsaSha1,
        "https://atlanta.example.com/c",
    )
    .expect("signed");
    let (_, spki) = x509_parser::parse_x509_certificate(cert.der()).expect("x509");
    let public = spki.public_key().subject_public_key.data.to_vec();
    let raw_sig = key.sign(RsaHash::Sha1, &ds).expect("sig");

    let mut g = c.benchmark_group("rfc4474_sign_rsa2048_sha1");
    g.bench_function("raw aws-lc", |b| {
        b.iter(|| key.sign(RsaHash::Sha1, black_box(&ds)).expect("sig"))
    });
    g.bench_function("vouch add_identity", |b| {
        b.iter(|| {
            add_identity(
                black_box(&msg),
                &key,
                IdentityAlg::RsaSha1,
                "https://atlanta.example.com/c",
            )
            .expect("signed")
        })
    });
    g.finish();

    let mut g = c.benchmark_group("rfc4474_verify_rsa2048_sha1");
    g.bench_function("raw aws-lc", |b| {
        b.iter(|| {
            aws_lc_rs::signature::UnparsedPublicKey::new(
                &aws_lc_rs::signature::RSA_PKCS1_1024_8192_SHA1_FOR_LEGACY_USE_ONLY,
                &public,
            )
            .verify(black_box(&ds), &raw_sig)
            .expect("verifies")
        })
    });
    // The backend's fastest form: the key parsed once (the verifier caches it so per
    // certificate), for an honest view of what is left for vouch's own work.
    let parsed = aws_lc_rs::signature::ParsedPublicKey::new(
        &aws_lc_rs::signature::RSA_PKCS1_1024_8192_SHA1_FOR_LEGACY_USE_ONLY,
        &public,
    )
    .expect("RSA key");
    g.bench_function("raw aws-lc, key parsed once", |b| {
        b.iter(|| {
            parsed
                .verify_sig(black_box(&ds), &raw_sig)
                .expect("verifies")
        })
    });
    g.bench_function("vouch verify_signature", |b| {
        b.iter(|| verify_signature(black_box(&signed), &public).expect("verifies"))
    });
    // The full verifier; a new verifier for every pass over the messages so the replay cache
    // sees no replay (its construction is not timed).
    let signed_many: Vec<Message> = (0..256)
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
    g.bench_function("vouch Verifier::verify (full, pinned cert)", |b| {
        b.iter_custom(|iters| {
            let mut total = std::time::Duration::ZERO;
            let mut done = 0u64;
            while done < iters {
                let mut trust = TrustStore::new();
                trust.add_pem_or_der(cert.der()).expect("trust");
                let mut verifier = Verifier::new(VerifierConfig::default(), trust);
                let n = (iters - done).min(signed_many.len() as u64) as usize;
                let start = std::time::Instant::now();
                for m in &signed_many[..n] {
                    verifier
                        .verify(black_box(m), cert.der(), &[], NOW + 1)
                        .expect("verified");
                }
                total += start.elapsed();
                done += n as u64;
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
