//! The RFC 4474 authentication service in the proxy, driven sans-IO: alice authenticates with
//! digest (407, then credentials) and the proxy forwards her request to bob. Which methods it
//! signs is policy (`AuthenticationService::with_methods`, config `identity.methods`), and a
//! Date more than 600 s from its clock is refused, not signed (RFC 4474 §5 step 3).

#![allow(clippy::unwrap_used)]

mod signing_proxy;

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use rcgen::KeyPair;
use signing_proxy::{BOB, PASSWORD, WALL, addr, proxy, proxy_with_limits};
use vouch_auth::digest::{Algorithm, Responder, ResponderConfig};
use vouch_auth::identity::{RsaSigningKey, TrustStore, Verifier, VerifierConfig};
use vouch_msg::headers::auth::Challenge;
use vouch_msg::headers::date::format_sip_date;
use vouch_msg::{HeaderName, Limits, Message, Transport};
use vouch_proto::{AuthenticationService, Endpoint, Output, Peer, TransportKind};

const ALICE: &str = "192.0.2.10:5060";

/// The methods `AuthenticationService::new` signs (its documented default policy).
const DEFAULT_SIGNED: [&str; 10] = [
    "INVITE",
    "UPDATE",
    "MESSAGE",
    "NOTIFY",
    "SUBSCRIBE",
    "REFER",
    "BYE",
    "PRACK",
    "INFO",
    "PUBLISH",
];

/// Parser limits above the defaults, for [`proxy_with_limits`] and for reading what it sends.
const RAISED: Limits = Limits {
    max_headers: 512,
    ..Limits::DEFAULT
};

/// A request from alice to bob, out of dialog, with `extra` header lines.
fn request(method: &str, call_id: &str, cseq: u32, extra: &str) -> Bytes {
    Bytes::from(format!(
        "{method} sip:bob@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP {ALICE};branch=z9hG4bK-{call_id}-{cseq}\r\n\
Max-Forwards: 70\r\n\
From: <sip:alice@example.com>;tag=a1\r\n\
To: <sip:bob@example.com>\r\n\
Call-ID: {call_id}\r\n\
CSeq: {cseq} {method}\r\n\
Contact: <sip:alice@{ALICE}>\r\n\
{extra}Content-Length: 0\r\n\r\n"
    ))
}

/// What the proxy did with one request: its final answer to alice, or the request it
/// forwarded to bob.
#[derive(Debug)]
enum Outcome {
    Answered(Box<Message>),
    Forwarded(Box<Message>),
}

/// Feeds `bytes` from `from` to the proxy: what it sent, read as a peer configured with
/// [`RAISED`] limits would.
fn exchange(ep: &mut Endpoint, from: &str, bytes: Bytes) -> Vec<(Peer, Message)> {
    let from = Peer::new(TransportKind::Udp, addr(from));
    ep.handle_receive(Instant::now(), WALL, from, bytes);
    let mut sent = Vec::new();
    loop {
        match ep.poll_output() {
            Output::Transmit { to, bytes } => sent.push((
                to,
                Message::parse_with(bytes, &RAISED, Transport::Datagram).unwrap(),
            )),
            Output::Event(_) => {}
            Output::Timeout(_) => break,
        }
    }
    sent
}

fn send(ep: &mut Endpoint, bytes: Bytes) -> Outcome {
    let mut outcome = None;
    for (to, m) in exchange(ep, ALICE, bytes) {
        if m.is_request() && to.addr == addr(BOB) {
            outcome = Some(Outcome::Forwarded(Box::new(m)));
        } else if m.status().is_some_and(|s| s >= 200) && to.addr == addr(ALICE) {
            outcome = Some(Outcome::Answered(Box::new(m)));
        }
    }
    outcome.expect("the proxy answered or forwarded")
}

/// alice sends `method` (with `extra` header lines), answers the proxy's 407 with digest
/// credentials and sends it again: what the proxy did with the authenticated request.
fn authenticated(ep: &mut Endpoint, method: &str, call_id: &str, extra: &str) -> Outcome {
    let Outcome::Answered(challenge) = send(ep, request(method, call_id, 1, extra)) else {
        panic!("{method} from alice was forwarded without a challenge")
    };
    assert_eq!(challenge.status(), Some(407), "{challenge:?}");
    let offered: Vec<String> = challenge
        .headers_named(HeaderName::ProxyAuthenticate)
        .map(|h| h.value.to_owned())
        .collect();
    let offered: Vec<Challenge<'_>> = offered
        .iter()
        .map(|v| Challenge::parse(v).unwrap())
        .collect();
    let mut alice = Responder::new(ResponderConfig {
        username: "alice".into(),
        password: PASSWORD.into(),
        algorithms: Algorithm::STRONGEST_FIRST.to_vec(),
        require_mutual_auth: true,
    });
    alice.handle_challenges(&offered).unwrap();
    let creds = alice.authorize(method, "sip:bob@example.com", b"", 1);
    let extra = format!("{extra}Proxy-Authorization: {}\r\n", creds[0]);
    send(ep, request(method, call_id, 2, &extra))
}

/// The request the proxy forwarded, checked to be authenticated (its credentials consumed).
fn forwarded(outcome: Outcome, method: &str) -> Message {
    match outcome {
        Outcome::Forwarded(m) => {
            assert!(
                m.header(HeaderName::ProxyAuthorization).is_none(),
                "{method}: the proxy consumed alice's credentials, so it authenticated her"
            );
            *m
        }
        Outcome::Answered(r) => panic!("{method} was answered, not forwarded: {r:?}"),
    }
}

fn is_signed(m: &Message) -> bool {
    let identity = m.header(HeaderName::Identity).is_some();
    let info = m.header(HeaderName::IdentityInfo).is_some();
    assert_eq!(identity, info, "Identity and Identity-Info come together");
    identity
}

/// Verifies `m` as the callee would, trusting the proxy's certificate, at `now`.
fn verify(m: &Message, cert: &[u8], now: i64) {
    let mut trust = TrustStore::new();
    trust.add_pem_or_der(cert).unwrap();
    let verified = Verifier::new(VerifierConfig::default(), trust)
        .verify(m, cert, &[], now)
        .expect("the callee verifies the proxy's signature");
    assert_eq!(verified.aor(), "sip:alice@example.com");
}

#[test]
fn with_methods_invite_only_an_authenticated_message_is_forwarded_unsigned() {
    let (mut ep, cert) = proxy(|s| s.with_methods(vec!["INVITE".to_owned()]));
    let invite = forwarded(authenticated(&mut ep, "INVITE", "only-1", ""), "INVITE");
    assert!(is_signed(&invite), "INVITE is in the list: {invite:?}");
    verify(&invite, &cert, WALL);
    let message = forwarded(authenticated(&mut ep, "MESSAGE", "only-2", ""), "MESSAGE");
    assert!(
        !is_signed(&message),
        "MESSAGE is not in the list, so it goes unsigned although alice authenticated: \
         {message:?}"
    );
    assert!(
        message.header(HeaderName::Date).is_none(),
        "an unsigned request is not dated either"
    );
}

#[test]
fn the_default_policy_signs_dialog_creating_and_in_dialog_methods_but_not_options() {
    let (mut ep, cert) = proxy(|s| s);
    for (i, method) in DEFAULT_SIGNED.iter().enumerate() {
        let m = forwarded(
            authenticated(&mut ep, method, &format!("default-{i}"), ""),
            method,
        );
        assert!(is_signed(&m), "{method} is signed by default: {m:?}");
        verify(&m, &cert, WALL);
    }
    // OPTIONS is neither dialog-creating nor in-dialog: authenticated, forwarded, unsigned.
    let options = forwarded(
        authenticated(&mut ep, "OPTIONS", "default-options", ""),
        "OPTIONS",
    );
    assert!(
        !is_signed(&options),
        "OPTIONS is not signed by default: {options:?}"
    );
    let svc = AuthenticationService::new(
        Arc::new(
            RsaSigningKey::from_der(
                &KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256)
                    .unwrap()
                    .serialize_der(),
            )
            .unwrap(),
        ),
        "https://example.com/cert.der",
    );
    for method in DEFAULT_SIGNED {
        assert!(svc.signs(method), "{method}");
    }
    for method in ["OPTIONS", "REGISTER", "ACK", "CANCEL"] {
        assert!(!svc.signs(method), "{method} is not signed by default");
    }
}

/// alice's INVITE carrying a Date `offset` seconds from the proxy's clock.
fn invite_dated(ep: &mut Endpoint, offset: i64, call_id: &str) -> (Outcome, String) {
    let date = format_sip_date(WALL + offset).unwrap();
    let outcome = authenticated(ep, "INVITE", call_id, &format!("Date: {date}\r\n"));
    (outcome, date)
}

#[test]
fn a_date_599_seconds_off_either_way_is_signed_and_forwarded() {
    let (mut ep, cert) = proxy(|s| s);
    for (offset, call_id) in [(-599, "skew-past-599"), (599, "skew-future-599")] {
        let (outcome, date) = invite_dated(&mut ep, offset, call_id);
        let m = forwarded(outcome, "INVITE");
        assert!(is_signed(&m), "Date {offset:+} s is within 600 s: {m:?}");
        assert_eq!(
            m.header(HeaderName::Date).unwrap().value,
            date,
            "the proxy signs alice's Date as it is"
        );
        verify(&m, &cert, WALL);
    }
}

#[test]
fn a_date_601_seconds_off_either_way_is_refused_with_403_and_a_warning() {
    let (mut ep, _) = proxy(|s| s);
    for (offset, call_id) in [(-601, "skew-past-601"), (601, "skew-future-601")] {
        let (outcome, _) = invite_dated(&mut ep, offset, call_id);
        let Outcome::Answered(r) = outcome else {
            panic!("Date {offset:+} s was forwarded: {outcome:?}")
        };
        assert_eq!(r.status(), Some(403), "Date {offset:+} s: {r:?}");
        let warning = r.header(HeaderName::Warning).unwrap().value;
        assert!(
            warning.starts_with("399 ") && warning.contains("600 seconds"),
            "{warning}"
        );
    }
}

#[test]
fn nothing_is_signed_for_a_date_outside_the_certificates_validity() {
    // RFC 4474 §5 step 3: the Date must fall within the signing certificate's validity.
    let (mut ep, cert) = proxy(|s| s.with_certificate_validity(WALL - 1000, WALL + 100));
    let (outcome, _) = invite_dated(&mut ep, 99, "valid-99");
    verify(&forwarded(outcome, "INVITE"), &cert, WALL + 99);
    let (outcome, _) = invite_dated(&mut ep, 101, "valid-101");
    let Outcome::Answered(r) = outcome else {
        panic!("a Date after notAfter was signed: {outcome:?}")
    };
    assert_eq!(r.status(), Some(500), "{r:?}");
    let warning = r.header(HeaderName::Warning).unwrap().value;
    assert!(
        warning.contains("not valid at the request's Date"),
        "{warning}"
    );
    // A request without Date is dated by the proxy's clock, which must be inside too.
    let (mut ep, _) = proxy(|s| s.with_certificate_validity(WALL - 1000, WALL - 1));
    let Outcome::Answered(r) = authenticated(&mut ep, "INVITE", "expired-now", "") else {
        panic!("signed with an expired certificate")
    };
    assert_eq!(r.status(), Some(500), "{r:?}");
}

#[test]
fn under_raised_limits_an_invite_with_many_header_fields_is_signed_and_its_200_proven() {
    // 300 header fields more: over the default 256, under the configured 512. The proxy
    // consumes alice's credentials, signs (Date, Identity, Identity-Info) and forwards, each
    // a re-parse of the request; bob's 200 with as many fields gets our
    // Proxy-Authentication-Info (draft-dotson-sip-mutual-auth §6) on its way back.
    let (mut ep, cert) = proxy_with_limits(RAISED, |s| s);
    let filler: String = (0..300).map(|i| format!("X-Filler-{i}: {i}\r\n")).collect();
    // With alice's Date, and without (the proxy adds one in the same edit).
    let dated = format!("Date: {}\r\n{filler}", format_sip_date(WALL).unwrap());
    let invite = forwarded(
        authenticated(&mut ep, "INVITE", "many-dated", &dated),
        "INVITE",
    );
    assert!(is_signed(&invite));
    verify(&invite, &cert, WALL);
    let invite = forwarded(
        authenticated(&mut ep, "INVITE", "many-signed", &filler),
        "INVITE",
    );
    assert!(is_signed(&invite));
    verify(&invite, &cert, WALL);
    assert_eq!(invite.headers_named_str("X-Filler-299").count(), 1);

    let mut ok = String::from("SIP/2.0 200 OK\r\n");
    for v in invite.headers_named(HeaderName::Via) {
        ok.push_str(&format!("Via: {}\r\n", v.value));
    }
    ok.push_str(&format!(
        "From: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>;tag=b1\r\nCall-ID: many-signed\r\nCSeq: 2 INVITE\r\nContact: <sip:bob@{BOB}>\r\n{filler}Content-Length: 0\r\n\r\n"
    ));
    let sent = exchange(&mut ep, BOB, Bytes::from(ok));
    let ok = sent
        .iter()
        .find(|(to, m)| to.addr == addr(ALICE) && m.status() == Some(200))
        .map(|(_, m)| m)
        .expect("the 200 is relayed to alice");
    assert_eq!(ok.headers_named_str("X-Filler-299").count(), 1);
    assert!(
        ok.header(HeaderName::ProxyAuthenticationInfo).is_some(),
        "the proxy proves itself on the 2xx"
    );
}
