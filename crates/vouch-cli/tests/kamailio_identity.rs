//! RFC 4474 Identity both ways with Kamailio's auth_identity module as the independent peer,
//! over real UDP, with the domain certificate fetched over real HTTP from the test:
//! - `vouch identity sign` → Kamailio verifies and forwards; a changed body or From is refused
//!   with 438 and not forwarded, and Kamailio's other refusals (replay 403, unsigned 428,
//!   rsa-sha256 436, untrusted certificate 437) are checked on the way;
//! - Kamailio signs → `vouch identity verify` accepts (fetching Identity-Info with --trust), and
//!   answers 438 for a changed body or From.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod kamailio;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kamailio::*;
use vouch_msg::headers::date::format_sip_date;
use vouch_msg::{HeaderName, Message};

const VERIFIER: &str = include_str!("kamailio/identity_verifier.cfg");
const SIGNER: &str = include_str!("kamailio/identity_signer.cfg");
const WAIT: Duration = Duration::from_secs(3);

const SDP: &str = "v=0\r\n\
o=alice 2890844526 2890844526 IN IP4 127.0.0.1\r\n\
s=-\r\n\
c=IN IP4 127.0.0.1\r\n\
t=0 0\r\n\
m=audio 49172 RTP/AVP 0\r\n\
a=rtpmap:0 PCMU/8000\r\n";

/// An INVITE from alice at `domain` to bob, sent from `ua_port`, with `extra` header lines.
fn invite(domain: &str, call_id: &str, ua_port: u16, extra: &str) -> String {
    format!(
        "INVITE sip:bob@biloxi.example.org SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:{ua_port};branch=z9hG4bK-{call_id};rport\r\n\
         Max-Forwards: 70\r\n\
         To: Bob <sip:bob@biloxi.example.org>\r\n\
         From: Alice <sip:alice@{domain}>;tag=1928301774\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 314159 INVITE\r\n\
         Contact: <sip:alice@127.0.0.1:{ua_port}>\r\n\
         {extra}\
         Content-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{SDP}",
        SDP.len()
    )
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// `vouch identity sign` (Date set to now).
fn vouch_sign(dir: &Path, key: &Path, url: &str, alg: &str, msg: &str) -> Vec<u8> {
    let file = write(dir, "unsigned.sip", msg.as_bytes());
    let out = vouch(&[
        OsStr::new("identity"),
        OsStr::new("sign"),
        OsStr::new("--key"),
        key.as_os_str(),
        OsStr::new("--cert-url"),
        OsStr::new(url),
        OsStr::new("--alg"),
        OsStr::new(alg),
        file.as_os_str(),
    ]);
    assert!(
        out.status.success(),
        "vouch identity sign: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `vouch identity verify --json` with `how` (`--cert X` or `--trust X`): exit code and JSON.
fn vouch_verify(dir: &Path, how: &str, pem: &Path, msg: &[u8]) -> (i32, serde_json::Value) {
    let file = write(dir, "received.sip", msg);
    let out = vouch(&[
        OsStr::new("identity"),
        OsStr::new("verify"),
        OsStr::new(how),
        pem.as_os_str(),
        OsStr::new("--json"),
        file.as_os_str(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "vouch identity verify printed no JSON ({e}): {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), json)
}

/// A new Via branch, so that Kamailio sees a new request rather than a retransmission.
fn rebranch(msg: &[u8], tag: &str) -> Vec<u8> {
    tamper_header(
        msg,
        "Via",
        "branch=z9hG4bK-",
        &format!("branch=z9hG4bK-{tag}-"),
    )
}

#[test]
fn vouch_signs_and_kamailio_verifies() {
    let test = "vouch_signs_and_kamailio_verifies";
    if !kamailio_available(test) {
        return;
    }
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let atlanta = domain_cert(dir, "atlanta.example.com");
    // A second domain whose self-signed certificate Kamailio does not trust.
    let chicago = domain_cert(dir, "chicago.example.com");
    let http = HttpFiles::serve(vec![
        (
            "/atlanta.der".into(),
            "application/pkix-cert",
            atlanta.cert_der.clone(),
        ),
        (
            "/chicago.der".into(),
            "application/pkix-cert",
            chicago.cert_der.clone(),
        ),
    ]);
    let downstream = SipSocket::bind();
    let ua = SipSocket::bind();
    let port = free_udp_port();
    let cfg = render(
        VERIFIER,
        &[
            ("PORT", port.to_string()),
            ("CAINFO", atlanta.cert_pem.display().to_string()),
            ("NEXT_HOP", downstream.port().to_string()),
        ],
    );
    let k = Kamailio::start(dir, "verifier", &cfg, port);
    let url = http.url("/atlanta.der");
    let log = |k: &Kamailio| k.log_tail(30);

    // Sends `msg` from the UA and returns Kamailio's answer, failing if it forwards instead.
    let refused = |msg: &[u8], call_id: &str| -> (u16, String) {
        ua.send(msg, k.addr());
        let reply = ua
            .recv_final(call_id, WAIT)
            .unwrap_or_else(|| panic!("kamailio did not answer {call_id}; log:\n{}", log(&k)));
        (
            reply.status().unwrap(),
            reply.reason_phrase().unwrap_or_default().to_string(),
        )
    };

    // 1. Signed by vouch: Kamailio fetches the certificate, verifies and forwards unchanged.
    let call_id = format!("vouch-signed-{}", ua.port());
    let signed = vouch_sign(
        dir,
        &atlanta.key_pem,
        &url,
        "rsa-sha1",
        &invite("atlanta.example.com", &call_id, ua.port(), ""),
    );
    ua.send(&signed, k.addr());
    let forwarded = downstream
        .recv_matching(WAIT, |m| m.is_request() && m.call_id() == call_id)
        .unwrap_or_else(|| {
            let answer = ua
                .recv_final(&call_id, Duration::from_millis(100))
                .map(|r| r.start_line().to_string());
            panic!(
                "kamailio did not forward the signed INVITE (answered {answer:?}); log:\n{}",
                log(&k)
            )
        });
    let sent = Message::parse(signed.clone()).unwrap();
    assert_eq!(
        forwarded.header(HeaderName::Identity).map(|h| h.value),
        sent.header(HeaderName::Identity).map(|h| h.value)
    );
    assert_eq!(forwarded.body_bytes(), SDP.as_bytes());
    assert!(
        http.hits("/atlanta.der") >= 1,
        "kamailio did not fetch Identity-Info"
    );
    // What Kamailio forwarded still verifies (it changed no signed part).
    let (code, json) = vouch_verify(dir, "--cert", &atlanta.cert_pem, forwarded.as_bytes());
    assert_eq!(
        (code, &json["verified"]),
        (0, &serde_json::json!(true)),
        "{json}"
    );

    // 2. Body changed after signing: 438, not forwarded.
    let tampered = rebranch(&tamper_body(&signed, "PCMU", "PCMA"), "body");
    assert_eq!(refused(&tampered, &call_id).0, 438, "changed body");

    // 3. From changed after signing (another user of the same domain): 438, not forwarded.
    let tampered = rebranch(
        &tamper_header(&signed, "From", "sip:alice@", "sip:malory@"),
        "from",
    );
    assert_eq!(refused(&tampered, &call_id).0, 438, "changed From");

    // 4. The genuine request again (new branch): a replay, 403.
    let (code, reason) = refused(&rebranch(&signed, "replay"), &call_id);
    assert_eq!(code, 403, "replay: {reason}");
    assert!(reason.contains("replayed"), "{reason}");

    // 5. Unsigned: 428.
    let unsigned_id = format!("unsigned-{}", ua.port());
    let unsigned = invite("atlanta.example.com", &unsigned_id, ua.port(), "");
    assert_eq!(refused(unsigned.as_bytes(), &unsigned_id).0, 428);

    // 6. rsa-sha256 (RFC 4474 allows only rsa-sha1): Kamailio refuses the algorithm, 436.
    let sha256_id = format!("sha256-{}", ua.port());
    let sha256 = vouch_sign(
        dir,
        &atlanta.key_pem,
        &url,
        "rsa-sha256",
        &invite("atlanta.example.com", &sha256_id, ua.port(), ""),
    );
    assert_eq!(refused(&sha256, &sha256_id).0, 436, "rsa-sha256");

    // 7. A correct signature under a certificate Kamailio does not trust: 437.
    let chicago_id = format!("chicago-{}", ua.port());
    let untrusted = vouch_sign(
        dir,
        &chicago.key_pem,
        &http.url("/chicago.der"),
        "rsa-sha1",
        &invite("chicago.example.com", &chicago_id, ua.port(), ""),
    );
    assert_eq!(refused(&untrusted, &chicago_id).0, 437, "untrusted cert");
    assert_eq!(http.hits("/chicago.der"), 1);

    // Nothing refused was forwarded: the next request downstream is a fresh signed one.
    let last_id = format!("vouch-signed-last-{}", ua.port());
    let last = vouch_sign(
        dir,
        &atlanta.key_pem,
        &url,
        "rsa-sha1",
        &invite("atlanta.example.com", &last_id, ua.port(), ""),
    );
    ua.send(&last, k.addr());
    let next = downstream
        .recv_matching(WAIT, |m| m.is_request())
        .unwrap_or_else(|| panic!("kamailio did not forward {last_id}; log:\n{}", log(&k)));
    assert_eq!(next.call_id(), last_id, "a refused request was forwarded");
    eprintln!("{test}: {:.2}s", started.elapsed().as_secs_f64());
}

#[test]
fn kamailio_signs_and_vouch_verifies() {
    let test = "kamailio_signs_and_vouch_verifies";
    if !kamailio_available(test) {
        return;
    }
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let atlanta = domain_cert(dir, "atlanta.example.com");
    let http = HttpFiles::serve(vec![(
        "/atlanta.der".into(),
        "application/pkix-cert",
        atlanta.cert_der.clone(),
    )]);
    let url = http.url("/atlanta.der");
    let downstream = SipSocket::bind();
    let ua = SipSocket::bind();
    let port = free_udp_port();
    let cfg = render(
        SIGNER,
        &[
            ("PORT", port.to_string()),
            ("KEY", atlanta.key_pem.display().to_string()),
            ("CERT", atlanta.cert_pem.display().to_string()),
            ("CERT_URL", url.clone()),
            ("NEXT_HOP", downstream.port().to_string()),
        ],
    );
    let k = Kamailio::start(dir, "signer", &cfg, port);

    // Kamailio signs what the UA sends and forwards it downstream.
    let sign = |call_id: &str, extra: &str| -> Message {
        let msg = invite("atlanta.example.com", call_id, ua.port(), extra);
        ua.send(msg.as_bytes(), k.addr());
        downstream
            .recv_matching(WAIT, |m| m.is_request() && m.call_id() == call_id)
            .unwrap_or_else(|| {
                let answer = ua
                    .recv_final(call_id, Duration::from_millis(100))
                    .map(|r| r.start_line().to_string());
                panic!(
                    "kamailio did not forward {call_id} (answered {answer:?}); log:\n{}",
                    k.log_tail(30)
                )
            })
    };

    // 1. Without a Date: Kamailio adds one, signs with rsa-sha1, and vouch verifies it,
    // fetching the certificate from the Identity-Info URL Kamailio wrote.
    let call_id = format!("kamailio-signed-{}", ua.port());
    let signed = sign(&call_id, "");
    assert!(signed.header(HeaderName::Date).is_some(), "no Date added");
    let identity = signed.header(HeaderName::Identity).expect("Identity").value;
    assert!(
        identity.starts_with('"') && identity.ends_with('"'),
        "{identity}"
    );
    assert_eq!(
        signed.header(HeaderName::IdentityInfo).map(|h| h.value),
        Some(format!("<{url}>;alg=rsa-sha1").as_str())
    );
    let fetched = http.hits("/atlanta.der");
    let (code, json) = vouch_verify(dir, "--trust", &atlanta.cert_pem, signed.as_bytes());
    assert_eq!(code, 0, "{json}");
    assert_eq!(json["verified"], true, "{json}");
    assert_eq!(json["aor"], "sip:alice@atlanta.example.com", "{json}");
    assert_eq!(json["signer_domain"], "atlanta.example.com", "{json}");
    assert_eq!(json["alg"], "rsa-sha1", "{json}");
    assert_eq!(
        http.hits("/atlanta.der"),
        fetched + 1,
        "vouch fetched Identity-Info"
    );

    // 2. With the UA's own (current) Date: Kamailio keeps and signs it.
    let dated_id = format!("kamailio-dated-{}", ua.port());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let date = format_sip_date(now).unwrap();
    let dated = sign(&dated_id, &format!("Date: {date}\r\n"));
    assert_eq!(
        dated.header(HeaderName::Date).map(|h| h.value),
        Some(date.as_str())
    );
    let (code, json) = vouch_verify(dir, "--cert", &atlanta.cert_pem, dated.as_bytes());
    assert_eq!(
        (code, &json["verified"]),
        (0, &serde_json::json!(true)),
        "{json}"
    );

    // 3. Body changed after Kamailio signed: 438.
    let tampered = tamper_body(signed.as_bytes(), "PCMU", "PCMA");
    let (code, json) = vouch_verify(dir, "--cert", &atlanta.cert_pem, &tampered);
    assert_eq!(
        (code, &json["status"]),
        (1, &serde_json::json!(438)),
        "{json}"
    );

    // 4. From changed after Kamailio signed: 438.
    let tampered = tamper_header(signed.as_bytes(), "From", "sip:alice@", "sip:malory@");
    let (code, json) = vouch_verify(dir, "--cert", &atlanta.cert_pem, &tampered);
    assert_eq!(
        (code, &json["status"]),
        (1, &serde_json::json!(438)),
        "{json}"
    );
    eprintln!("{test}: {:.2}s", started.elapsed().as_secs_f64());
}
