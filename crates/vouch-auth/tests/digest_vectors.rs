//! The digest vectors of `tests/vectors/digest-vectors.json` (copied from the shared vectors;
//! see its MANIFEST notes): RFC 2617 §3.5, RFC 7616 §3.9.1, RFC 7616 §3.9.2 with the
//! *corrected* SHA-512/256 values (the published ones are truncated SHA-512, errata 4897),
//! draft-smith-sipping-auth-examples, and the derived rspauth values.

use serde_json::Value;
use vouch_auth::digest::{Algorithm, Exchange, Qop, ha1, ha1_sess};

fn vectors() -> Vec<Value> {
    let text = include_str!("vectors/digest-vectors.json");
    serde_json::from_str::<Vec<Value>>(text).expect("valid JSON")
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or("")
}

#[test]
fn every_response_and_rspauth_vector_matches() {
    let mut checked = 0;
    for v in vectors() {
        let id = s(&v, "id");
        let Some(alg_token) = v["algorithm"].as_str() else {
            continue;
        };
        let (alg, sess) = Algorithm::parse(alg_token).unwrap_or((Algorithm::Md5, false));
        let expected = if v["expected_correct_sha512_256"].is_object() {
            &v["expected_correct_sha512_256"]
        } else {
            &v["expected"]
        };
        let Some(want) = expected["response"].as_str() else {
            continue;
        };
        let mut a1 = ha1(alg, s(&v, "username"), s(&v, "realm"), s(&v, "password"));
        if let Some(h) = expected["HA1"].as_str() {
            assert_eq!(a1, h, "{id}: HA1");
        }
        if sess {
            a1 = ha1_sess(alg, &a1, s(&v, "nonce"), s(&v, "cnonce"));
        }
        let body_hash = v["H_entity_body"].as_str();
        let qop = match (v["qop"].as_str(), body_hash) {
            (Some("auth-int"), Some(h)) => Qop::AuthInt { body_hash: h },
            (Some("auth"), _) => Qop::Auth,
            (None, _) => Qop::None,
            (Some(other), _) => panic!("{id}: unexpected qop {other}"),
        };
        let x = Exchange {
            alg,
            ha1: &a1,
            nonce: s(&v, "nonce"),
            cnonce: s(&v, "cnonce"),
            nc: s(&v, "nc"),
            qop,
            uri: s(&v, "uri"),
        };
        assert_eq!(x.request_digest(s(&v, "method")), want, "{id}: response");
        if let Some(derived) = v["derived_not_published"].as_object() {
            for (k, val) in derived {
                if k.starts_with("rspauth") {
                    assert_eq!(x.rspauth(), val.as_str().unwrap_or(""), "{id}: {k}");
                }
            }
        }
        checked += 1;
    }
    assert!(checked >= 9, "only {checked} vectors checked");
}

#[test]
fn published_rfc7616_sha512_256_values_are_truncated_sha512() {
    let v = vectors()
        .into_iter()
        .find(|v| s(v, "id") == "rfc7616-3.9.2-SHA-512-256")
        .expect("vector");
    let printed = s(&v["as_printed_in_rfc_truncated_sha512"], "response");
    let a1 = ha1(
        Algorithm::Sha512_256,
        s(&v, "username"),
        s(&v, "realm"),
        s(&v, "password"),
    );
    let x = Exchange {
        alg: Algorithm::Sha512_256,
        ha1: &a1,
        nonce: s(&v, "nonce"),
        cnonce: s(&v, "cnonce"),
        nc: s(&v, "nc"),
        qop: Qop::Auth,
        uri: s(&v, "uri"),
    };
    assert_ne!(x.request_digest("GET"), printed);
}

#[test]
fn empty_body_auth_int_uses_hash_of_empty_string() {
    // RFC 8760 §2.6 item 7.
    assert_eq!(
        Algorithm::Sha256.hash_hex(&[b""]),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}
