//! Users authenticated by a TLS client certificate (identity BCP draft §3, RFC 3261 §26.3.2.1):
//! a request on a connection whose certificate names the AoR it speaks for is admitted without
//! a digest challenge and signed by the RFC 4474 authentication service; anything else is left
//! to digest.

#![allow(clippy::unwrap_used)]

mod signing_proxy;

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use rcgen::{
    BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, SanType,
};
use signing_proxy::{WALL, addr};
use vouch_auth::client_cert::{ClientCertificateValidator, ClientIdentity};
use vouch_auth::identity::{TrustStore, Verifier, VerifierConfig};
use vouch_msg::{HeaderName, Message};
use vouch_proto::{Endpoint, FlowId, Output, Peer, TransportKind};

fn proxy() -> (Endpoint, Vec<u8>) {
    signing_proxy::proxy(|s| s)
}

/// A users' CA and a client certificate from it naming `aor`.
fn identity_for(aor: &str) -> Arc<ClientIdentity> {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca = p.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(p, ca_key);
    let mut leaf = CertificateParams::new(Vec::<String>::new()).unwrap();
    leaf.subject_alt_names = vec![SanType::URI(aor.try_into().unwrap())];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let leaf = leaf
        .signed_by(&KeyPair::generate().unwrap(), &issuer)
        .unwrap();
    let validator = ClientCertificateValidator::new(vec![ca.der().to_vec()]);
    Arc::new(validator.validate(&[leaf.der().to_vec()], WALL).unwrap())
}

fn tls_peer(flow: u64) -> Peer {
    Peer {
        transport: TransportKind::Tls,
        addr: addr("192.0.2.10:40000"),
        flow: Some(FlowId(flow)),
    }
}

fn invite(from: &str, call_id: &str) -> Bytes {
    invite_with(from, call_id, "")
}

/// [`invite`] with `extra` (whole header lines) before Content-Length.
fn invite_with(from: &str, call_id: &str, extra: &str) -> Bytes {
    Bytes::from(format!(
        "INVITE sip:bob@example.com SIP/2.0\r\n\
Via: SIP/2.0/TLS 192.0.2.10:40000;branch=z9hG4bK{call_id}\r\n\
Max-Forwards: 70\r\n\
From: <{from}>;tag=a1\r\n\
To: <sip:bob@example.com>\r\n\
Call-ID: {call_id}\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sips:alice@192.0.2.10:40000>\r\n\
{extra}\
Content-Length: 0\r\n\r\n"
    ))
}

/// What the proxy sent for one request: the response to the sender, or the forwarded request.
enum Outcome {
    Answered(u16),
    Forwarded(Box<Message>),
}

fn send(ep: &mut Endpoint, from: Peer, bytes: Bytes) -> Outcome {
    ep.handle_receive(Instant::now(), WALL, from.clone(), bytes);
    let mut outcome = None;
    loop {
        match ep.poll_output() {
            Output::Transmit { to, bytes } => {
                let m = Message::parse(bytes).unwrap();
                if m.is_request() && to.addr == addr("192.0.2.20:5060") {
                    outcome = Some(Outcome::Forwarded(Box::new(m)));
                } else if let Some(status) = m.status().filter(|s| *s >= 200)
                    && to.addr == from.addr
                {
                    outcome = Some(Outcome::Answered(status));
                }
            }
            Output::Event(_) => {}
            Output::Timeout(_) => break,
        }
    }
    outcome.expect("the proxy answered or forwarded")
}

#[test]
fn a_client_certificate_naming_the_from_aor_is_signed_without_a_challenge() {
    let (mut ep, domain_cert) = proxy();
    ep.handle_flow_client_identity(FlowId(1), Some(identity_for("sip:alice@example.com")));
    let Outcome::Forwarded(m) = send(&mut ep, tls_peer(1), invite("sip:alice@example.com", "c1"))
    else {
        panic!("forwarded without a challenge")
    };
    assert!(m.header(HeaderName::Identity).is_some(), "signed");
    let mut trust = TrustStore::new();
    trust.add_pem_or_der(&domain_cert).unwrap();
    let verified = Verifier::new(VerifierConfig::default(), trust)
        .verify(&m, &domain_cert, &[], WALL)
        .expect("the callee verifies it");
    assert_eq!(verified.aor(), "sip:alice@example.com");
    // The certificate's form of the AoR (sips:, case of the host) names the same AoR.
    ep.handle_flow_client_identity(FlowId(2), Some(identity_for("sips:alice@EXAMPLE.com")));
    assert!(matches!(
        send(&mut ep, tls_peer(2), invite("sip:alice@example.com", "c2")),
        Outcome::Forwarded(m) if m.header(HeaderName::Identity).is_some()
    ));
}

#[test]
fn our_realms_credentials_are_consumed_after_a_client_certificate_grant() {
    // RFC 3261 §22.3: the UA pre-authorized for our realm as well as for a proxy further on;
    // the certificate admitted the request, and our realm's credentials still stop here.
    let (mut ep, _) = proxy();
    ep.handle_flow_client_identity(FlowId(1), Some(identity_for("sip:alice@example.com")));
    let ours = "Digest username=\"alice\", realm=\"example.com\", nonce=\"n1\", \
uri=\"sip:bob@example.com\", response=\"0123456789abcdef0123456789abcdef\"";
    let foreign = "Digest username=\"alice\", realm=\"biloxi.example\", nonce=\"n2\", \
uri=\"sip:bob@example.com\", response=\"fedcba9876543210fedcba9876543210\"";
    let extra = format!("Proxy-Authorization: {ours}\r\nProxy-Authorization: {foreign}\r\n");
    let Outcome::Forwarded(m) = send(
        &mut ep,
        tls_peer(1),
        invite_with("sip:alice@example.com", "pa1", &extra),
    ) else {
        panic!("forwarded without a challenge")
    };
    assert!(m.header(HeaderName::Identity).is_some(), "signed");
    let forwarded: Vec<&str> = m
        .headers_named(HeaderName::ProxyAuthorization)
        .map(|h| h.value)
        .collect();
    assert_eq!(forwarded, vec![foreign]);
}

#[test]
fn anything_else_is_left_to_digest() {
    let (mut ep, _) = proxy();
    // No certificate on this connection.
    assert!(matches!(
        send(&mut ep, tls_peer(1), invite("sip:alice@example.com", "n1")),
        Outcome::Answered(407)
    ));
    // A certificate for another user of ours.
    ep.handle_flow_client_identity(FlowId(2), Some(identity_for("sip:bob@example.com")));
    assert!(matches!(
        send(&mut ep, tls_peer(2), invite("sip:alice@example.com", "n2")),
        Outcome::Answered(407)
    ));
    // The same request on another connection than the certificate's.
    ep.handle_flow_client_identity(FlowId(3), Some(identity_for("sip:alice@example.com")));
    assert!(matches!(
        send(&mut ep, tls_peer(4), invite("sip:alice@example.com", "n3")),
        Outcome::Answered(407)
    ));
    // The connection closed: its identity is gone with it.
    ep.handle_flow_client_identity(FlowId(3), None);
    assert!(matches!(
        send(&mut ep, tls_peer(3), invite("sip:alice@example.com", "n4")),
        Outcome::Answered(407)
    ));
}

#[test]
fn a_certificate_never_makes_the_proxy_sign_for_another_domain() {
    let (mut ep, _) = proxy();
    ep.handle_flow_client_identity(FlowId(1), Some(identity_for("sip:alice@elsewhere.example")));
    // From another domain to one of our users: admitted as from any foreign sender, unsigned.
    match send(
        &mut ep,
        tls_peer(1),
        invite("sip:alice@elsewhere.example", "f1"),
    ) {
        Outcome::Forwarded(m) => assert!(m.header(HeaderName::Identity).is_none()),
        Outcome::Answered(s) => panic!("answered {s}"),
    }
}

#[test]
fn a_register_on_the_users_connection_needs_no_challenge() {
    let (mut ep, _) = proxy();
    let register = |call_id: &str| {
        Bytes::from(format!(
            "REGISTER sip:example.com SIP/2.0\r\n\
Via: SIP/2.0/TLS 192.0.2.10:40000;branch=z9hG4bK{call_id}\r\n\
Max-Forwards: 70\r\n\
From: <sip:alice@example.com>;tag=r1\r\n\
To: <sip:alice@example.com>\r\n\
Call-ID: {call_id}\r\n\
CSeq: 1 REGISTER\r\n\
Contact: <sips:alice@192.0.2.10:40000>\r\n\
Expires: 600\r\n\
Content-Length: 0\r\n\r\n"
        ))
    };
    assert!(matches!(
        send(&mut ep, tls_peer(1), register("r1")),
        Outcome::Answered(401)
    ));
    assert!(ep.bindings("sip:alice@example.com").is_empty());
    ep.handle_flow_client_identity(FlowId(1), Some(identity_for("sip:alice@example.com")));
    assert!(matches!(
        send(&mut ep, tls_peer(1), register("r2")),
        Outcome::Answered(200)
    ));
    let bindings = ep.bindings("sip:alice@example.com");
    assert_eq!(bindings.len(), 1);
    assert_eq!(bindings[0].contact, "sips:alice@192.0.2.10:40000");
}
