//! RFC 4474 §10: signing the example INVITE and BYE with the example keys reproduces the
//! published Identity values byte for byte, and they verify with the example public keys.
//! See tests/vectors/rfc4474/MANIFEST.md for the Content-Length correction of the INVITE.

use vouch_auth::identity::{
    IdentityAlg, IdentityError, RsaSigningKey, add_date_and_identity, add_identity, digest_string,
    verify_signature,
};
use vouch_msg::Message;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/rfc4474/");

fn read(name: &str) -> Vec<u8> {
    std::fs::read(format!("{DIR}{name}")).expect("vector file")
}

/// The INVITE with Content-Length corrected from the published 147 to the 172 octets the
/// signature covers (MANIFEST.md).
fn invite(name: &str) -> Message {
    let text = String::from_utf8(read(name))
        .expect("text")
        .replace("Content-Length: 147", "Content-Length: 172");
    let m = Message::parse(text.into_bytes()).expect("valid INVITE");
    assert_eq!(m.body_bytes().len(), 172);
    m
}

fn public_key(name: &str) -> Vec<u8> {
    // SubjectPublicKeyInfo DER; the RSAPublicKey is the BIT STRING at its end. For these
    // RSA-1024 keys the SPKI header is a fixed 22 bytes.
    let pem = String::from_utf8(read(name)).expect("text");
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    use base64::Engine as _;
    let spki = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("base64");
    spki[22..].to_vec()
}

/// A published base64 value; the files wrap it over lines.
fn published(name: &str) -> String {
    String::from_utf8(read(name))
        .expect("text")
        .split_whitespace()
        .collect()
}

#[test]
fn digest_strings_match_the_published_canonical_forms() {
    assert_eq!(
        digest_string(&invite("invite.message")).unwrap(),
        read("invite.canonical")
    );
    let bye = Message::parse(read("text-10.2-bye-baseline-with-Date.sip")).unwrap();
    assert_eq!(digest_string(&bye).unwrap(), read("bye.canonical"));
}

#[test]
fn signing_reproduces_published_identity_values() {
    let atlanta = RsaSigningKey::from_pem(&read("atlanta.privkey")).unwrap();
    assert_eq!(atlanta.bits(), 1024);
    let signed = add_identity(
        &invite("invite.message"),
        &atlanta,
        IdentityAlg::RsaSha1,
        "https://atlanta.example.com/atlanta.cer",
    )
    .unwrap();
    let value = signed
        .header(vouch_msg::HeaderName::Identity)
        .unwrap()
        .value
        .to_string();
    assert_eq!(value, format!("\"{}\"", published("invite.signed.enc")));
    assert!(
        signed
            .headers()
            .any(|h| h.value == "<https://atlanta.example.com/atlanta.cer>;alg=rsa-sha1")
    );

    let biloxi = RsaSigningKey::from_pem(&read("biloxi.privkey")).unwrap();
    let bye = Message::parse(read("text-10.2-bye-baseline-with-Date.sip")).unwrap();
    let signed = add_identity(
        &bye,
        &biloxi,
        IdentityAlg::RsaSha1,
        "https://biloxi.example.org/biloxi.cer",
    )
    .unwrap();
    let value = signed
        .header(vouch_msg::HeaderName::Identity)
        .unwrap()
        .value
        .to_string();
    assert_eq!(value, format!("\"{}\"", published("bye.signed.enc")));
}

#[test]
fn adding_date_and_identity_in_one_edit_signs_that_date() {
    // The published BYE without its Date, given the Date back: the published signature.
    let biloxi = RsaSigningKey::from_pem(&read("biloxi.privkey")).unwrap();
    let bye = Message::parse(read("text-10.2-bye-baseline-with-Date.sip")).unwrap();
    let date = bye
        .header(vouch_msg::HeaderName::Date)
        .unwrap()
        .value
        .to_string();
    let mut undated = bye.edit();
    undated.remove("Date");
    let undated = undated.build().unwrap();
    assert!(
        digest_string(&undated).is_err(),
        "no Date, no digest-string"
    );
    let signed = add_date_and_identity(
        &undated,
        &date,
        &biloxi,
        IdentityAlg::RsaSha1,
        "https://biloxi.example.org/biloxi.cer",
    )
    .unwrap();
    assert_eq!(
        signed.header(vouch_msg::HeaderName::Date).unwrap().value,
        date
    );
    let value = signed
        .header(vouch_msg::HeaderName::Identity)
        .unwrap()
        .value
        .to_string();
    assert_eq!(value, format!("\"{}\"", published("bye.signed.enc")));
    assert_eq!(
        verify_signature(&signed, &public_key("biloxi.pubkey")),
        Ok(IdentityAlg::RsaSha1)
    );
}

#[test]
fn published_messages_verify_with_the_example_keys() {
    let msg = invite("invite.identity");
    assert_eq!(
        verify_signature(&msg, &public_key("atlanta.pubkey")),
        Ok(IdentityAlg::RsaSha1)
    );
    let bye = Message::parse(read("derived-bye.identity.terminated.sip")).unwrap();
    assert_eq!(
        verify_signature(&bye, &public_key("biloxi.pubkey")),
        Ok(IdentityAlg::RsaSha1)
    );
    // The other domain's key does not verify.
    assert_eq!(
        verify_signature(&bye, &public_key("atlanta.pubkey")),
        Err(IdentityError::BadSignature)
    );
}

#[test]
fn any_change_to_a_signed_part_breaks_the_signature() {
    let key = public_key("atlanta.pubkey");
    let text = String::from_utf8(read("invite.identity"))
        .unwrap()
        .replace("Content-Length: 147", "Content-Length: 172");
    for (from, to) in [
        ("a=rtpmap:0 PCMU/8000", "a=rtpmap:0 PCMA/8000"),
        (
            "From: Alice <sip:alice@atlanta",
            "From: Alice <sip:mallory@atlanta",
        ),
        ("To: Bob <sip:bob@biloxi", "To: Bob <sip:carol@biloxi"),
        ("Call-ID: a84b4c76e66710", "Call-ID: a84b4c76e66711"),
        ("CSeq: 314159 INVITE", "CSeq: 314160 INVITE"),
        ("13:02:03 GMT", "13:02:04 GMT"),
        ("Contact: <sip:alice@pc33", "Contact: <sip:eve@pc33"),
    ] {
        assert!(text.contains(from), "{from}");
        let tampered = Message::parse(text.replace(from, to).into_bytes()).unwrap();
        assert_eq!(
            verify_signature(&tampered, &key),
            Err(IdentityError::BadSignature),
            "changed {from}"
        );
    }
    // A change outside the digest-string (Max-Forwards) keeps it valid.
    let hop = Message::parse(
        text.replace("Max-Forwards: 70", "Max-Forwards: 69")
            .into_bytes(),
    )
    .unwrap();
    assert!(verify_signature(&hop, &key).is_ok());
}

#[test]
fn alg_label_must_match_the_signature() {
    let key = public_key("atlanta.pubkey");
    let text = String::from_utf8(read("invite.identity"))
        .unwrap()
        .replace("Content-Length: 147", "Content-Length: 172");
    let relabelled =
        Message::parse(text.replace("alg=rsa-sha1", "alg=rsa-sha256").into_bytes()).unwrap();
    assert_eq!(
        verify_signature(&relabelled, &key),
        Err(IdentityError::BadSignature)
    );
    let unknown = Message::parse(text.replace("alg=rsa-sha1", "alg=rsa-md5").into_bytes()).unwrap();
    let e = verify_signature(&unknown, &key).unwrap_err();
    assert_eq!(
        (e.clone(), e.status()),
        (IdentityError::UnsupportedAlg, 436)
    );
    let none = Message::parse(text.replace("Identity: ", "X-Identity: ").into_bytes()).unwrap();
    assert_eq!(verify_signature(&none, &key).unwrap_err().status(), 428);
}

#[test]
fn rsa_sha256_round_trip() {
    let atlanta = RsaSigningKey::from_pem(&read("atlanta.privkey")).unwrap();
    let signed = add_identity(
        &invite("invite.message"),
        &atlanta,
        IdentityAlg::RsaSha256,
        "https://atlanta.example.com/atlanta.cer",
    )
    .unwrap();
    assert_eq!(
        verify_signature(&signed, &public_key("atlanta.pubkey")),
        Ok(IdentityAlg::RsaSha256)
    );
}
