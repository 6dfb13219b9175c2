//! The RFC 4474 verification service in the proxy (RFC 4474 §6, §6.2), on the virtual
//! network: INVITEs from atlanta.example.com for bob@example.com, signed by atlanta's domain
//! key (a certificate issued by a test CA the proxy trusts), reach the proxy, which parks them
//! while the test, acting as the driver, answers its `FetchCertificate` events.

#![allow(clippy::unwrap_used)]

mod sim;
mod support;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use sim::{Addr, NetConfig, Network, Sim, WALL0, host, sock};
use support::client_key;
use support::phone::{Phone, PhoneLog, contact_of, register};
use vouch_auth::identity::{
    IdentityAlg, RsaSigningKey, TrustStore, Verifier, VerifierConfig, add_identity,
};
use vouch_msg::headers::date::format_sip_date;
use vouch_msg::{HeaderName, Message};
use vouch_proto::transaction::{Reliability, TransactionConfig, TransactionLayer};
use vouch_proto::{
    CertificateChain, Endpoint, EndpointConfig, Event, FetchId, TransportKind, VerificationPolicy,
    VerificationService,
};

const PROXY: Addr = 100;
const CERT_URL: &str = "https://atlanta.example.com/cert.der";

/// A signing domain: its key and certificate chain.
struct Signer {
    key: RsaSigningKey,
    chain: CertificateChain,
}

/// A CA the proxy trusts (its certificate, DER) and atlanta's signer issued by it.
fn trusted_signer() -> (Vec<u8>, Signer) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Test Identity CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["atlanta.example.com".to_owned()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let signer = Signer {
        key: RsaSigningKey::from_der(&key.serialize_der()).unwrap(),
        chain: CertificateChain {
            end_entity: cert.der().to_vec(),
            intermediates: Vec::new(),
        },
    };
    (ca.der().to_vec(), signer)
}

/// A self-signed atlanta certificate nobody trusts.
fn untrusted_signer() -> Signer {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["atlanta.example.com".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    Signer {
        key: RsaSigningKey::from_der(&key.serialize_der()).unwrap(),
        chain: CertificateChain {
            end_entity: cert.der().to_vec(),
            intermediates: Vec::new(),
        },
    }
}

fn config() -> EndpointConfig {
    EndpointConfig {
        domains: vec!["example.com".to_owned()],
        local: vec![(TransportKind::Udp, sock(PROXY))],
        seed: 7,
        ..EndpointConfig::default()
    }
}

struct World {
    sim: Sim,
    signer: Signer,
    bob: Rc<RefCell<PhoneLog>>,
}

impl World {
    /// The proxy with a verification service trusting the test CA (`policy` tweaked by
    /// `tune`), bob registered.
    fn new(tune: impl FnOnce(&mut VerificationPolicy)) -> Self {
        let (ca, signer) = trusted_signer();
        let mut trust = TrustStore::new();
        trust.add_pem_or_der(&ca).unwrap();
        let mut policy = VerificationPolicy {
            fetch_deadline: Duration::from_secs(5),
            ..VerificationPolicy::default()
        };
        tune(&mut policy);
        let mut endpoint = Endpoint::new(config());
        endpoint.set_verification_service(Some(VerificationService::new(
            Verifier::new(VerifierConfig::default(), trust),
            policy,
        )));
        let mut sim = Sim::new(Network::new(NetConfig::PERFECT, 3), Reliability::Unreliable);
        sim.add_endpoint(PROXY, endpoint);
        let mut w = World {
            sim,
            signer,
            bob: Rc::default(),
        };
        let (bob, log) = w.phone("bob");
        w.bob = log;
        w.send(
            bob,
            register(bob, "bob", "reg-bob", 1, &contact_of(bob, "bob")),
        );
        w.run_for(Duration::from_secs(1));
        assert_eq!(w.bob.borrow().finals_for("REGISTER"), vec![200]);
        w
    }

    fn phone(&mut self, user: &str) -> (Addr, Rc<RefCell<PhoneLog>>) {
        let me = self.sim.nodes.len();
        let p = Phone::new(me, user, Reliability::Unreliable);
        let log = p.log.clone();
        self.sim.add(
            TransactionLayer::new(TransactionConfig::default()),
            Box::new(p),
        );
        (me, log)
    }

    fn send(&mut self, from: Addr, m: Message) {
        self.sim.act(from, |ctx| {
            ctx.layer
                .send_request(ctx.now, m, PROXY, Reliability::Unreliable)
                .expect("transaction starts");
        });
    }

    fn run_for(&mut self, d: Duration) {
        let end = self.sim.now.duration_since(self.sim.t0) + d;
        self.sim.run(end);
        self.sim.now = self.sim.now.max(self.sim.t0 + end);
    }

    /// The certificate fetches the proxy asked for so far.
    fn fetches(&self) -> Vec<(FetchId, String)> {
        self.sim
            .events(PROXY)
            .iter()
            .filter_map(|e| match e {
                Event::FetchCertificate { id, url } => Some((*id, url.clone())),
                _ => None,
            })
            .collect()
    }

    /// Answers fetch `id` as the driver would.
    fn deliver(&mut self, id: FetchId, result: Result<CertificateChain, String>) {
        self.sim.endpoint_input(PROXY, |ep, now, wall| {
            ep.handle_certificate(now, wall, id, result)
        });
    }

    fn forwarded_invites(&self) -> usize {
        self.sim
            .events(PROXY)
            .iter()
            .filter(|e| matches!(e, Event::Forwarded { method, .. } if method == "INVITE"))
            .count()
    }
}

/// alice@atlanta.example.com's INVITE to bob@example.com from node `me`, dated now, with an
/// SDP body; unsigned.
fn invite(me: Addr, call_id: &str) -> Message {
    let body = "v=0\r\no=alice 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 49170 RTP/AVP 0\r\n";
    let s = format!(
        "INVITE sip:bob@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP {h}:5060;branch=z9hG4bKinv{me}x{call_id};rport\r\n\
Max-Forwards: 70\r\n\
From: <sip:alice@atlanta.example.com>;tag=a{me}\r\n\
To: <sip:bob@example.com>\r\n\
Call-ID: {call_id}\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:alice@{h}:5060>\r\n\
Date: {date}\r\n\
Content-Type: application/sdp\r\n\
Content-Length: {len}\r\n\r\n{body}",
        h = host(me),
        date = format_sip_date(WALL0).unwrap(),
        len = body.len()
    );
    Message::parse(s.into_bytes()).unwrap()
}

fn signed(m: &Message, signer: &Signer, url: &str) -> Message {
    add_identity(m, &signer.key, IdentityAlg::RsaSha1, url).unwrap()
}

fn warning(m: &Message) -> String {
    m.header(HeaderName::Warning)
        .map(|h| h.value.to_owned())
        .unwrap_or_default()
}

fn last_final(log: &Rc<RefCell<PhoneLog>>) -> Message {
    log.borrow()
        .finals
        .last()
        .cloned()
        .expect("a final response")
}

#[test]
fn an_unsigned_invite_gets_428_and_is_not_forwarded() {
    let mut w = World::new(|_| {});
    let (alice, log) = w.phone("alice");
    w.send(alice, invite(alice, "unsigned"));
    w.run_for(Duration::from_secs(2));
    let r = last_final(&log);
    assert_eq!(r.status(), Some(428), "{r:?}");
    assert!(warning(&r).starts_with("399 "), "{}", warning(&r));
    assert!(warning(&r).contains("Identity"), "{}", warning(&r));
    assert!(w.fetches().is_empty());
    assert_eq!(w.bob.borrow().received("INVITE"), 0);
}

#[test]
fn unsigned_requests_pass_when_identity_is_not_required() {
    let mut w = World::new(|p| p.require_identity.clear());
    let (alice, log) = w.phone("alice");
    w.send(alice, invite(alice, "unsigned-ok"));
    w.run_for(Duration::from_secs(2));
    assert_eq!(log.borrow().finals_for("INVITE"), vec![200]);
    assert_eq!(w.bob.borrow().received("INVITE"), 1);
}

#[test]
fn a_signed_invite_is_parked_until_its_certificate_comes_then_forwarded_unchanged() {
    let mut w = World::new(|_| {});
    let (alice, log) = w.phone("alice");
    let inv = signed(&invite(alice, "parked"), &w.signer, CERT_URL);
    w.send(alice, inv.clone());
    w.run_for(Duration::from_secs(2));
    let fetches = w.fetches();
    assert_eq!(fetches.len(), 1);
    assert_eq!(fetches[0].1, CERT_URL);
    // Parked: 100 Trying only, nothing forwarded.
    assert_eq!(log.borrow().statuses("INVITE"), vec![100]);
    assert_eq!(w.bob.borrow().received("INVITE"), 0);
    // A retransmission while parked is absorbed by the server transaction.
    w.sim.inject(alice, PROXY, inv.as_bytes().to_vec());
    w.run_for(Duration::from_secs(1));
    assert_eq!(w.fetches().len(), 1);

    let chain = w.signer.chain.clone();
    w.deliver(fetches[0].0, Ok(chain));
    w.run_for(Duration::from_secs(2));
    assert_eq!(log.borrow().finals_for("INVITE"), vec![200]);
    let at_bob = w.bob.borrow().requests[0].clone();
    assert_eq!(w.bob.borrow().received("INVITE"), 1);
    assert_eq!(w.forwarded_invites(), 1);
    // Identity and everything it covers arrive as sent: bob may verify again.
    for name in [
        HeaderName::Identity,
        HeaderName::IdentityInfo,
        HeaderName::Date,
    ] {
        assert_eq!(
            at_bob.header(name).map(|h| h.value),
            inv.header(name).map(|h| h.value)
        );
    }
    assert_eq!(at_bob.body_bytes(), inv.body_bytes());

    // The certificate is cached under its URI: the next call is verified at once.
    let (carol, carol_log) = w.phone("carol");
    w.send(carol, signed(&invite(carol, "cached"), &w.signer, CERT_URL));
    w.run_for(Duration::from_secs(2));
    assert_eq!(carol_log.borrow().finals_for("INVITE"), vec![200]);
    assert_eq!(w.fetches().len(), 1, "no second fetch");
}

#[test]
fn a_body_changed_after_signing_gets_438() {
    let mut w = World::new(|_| {});
    let (alice, log) = w.phone("alice");
    let inv = signed(&invite(alice, "tampered"), &w.signer, CERT_URL);
    // Same length, one codec swapped: framing intact, signature broken.
    let text = String::from_utf8(inv.as_bytes().to_vec()).unwrap();
    let tampered = Message::parse(text.replace("RTP/AVP 0", "RTP/AVP 8").into_bytes()).unwrap();
    w.send(alice, tampered);
    w.run_for(Duration::from_secs(1));
    let id = w.fetches()[0].0;
    let chain = w.signer.chain.clone();
    w.deliver(id, Ok(chain));
    w.run_for(Duration::from_secs(1));
    let r = last_final(&log);
    assert_eq!(r.status(), Some(438), "{r:?}");
    assert!(warning(&r).contains("signature"), "{}", warning(&r));
    assert_eq!(w.bob.borrow().received("INVITE"), 0);
}

#[test]
fn a_certificate_from_an_untrusted_issuer_gets_437() {
    let mut w = World::new(|_| {});
    let (alice, log) = w.phone("alice");
    let rogue = untrusted_signer();
    w.send(alice, signed(&invite(alice, "rogue"), &rogue, CERT_URL));
    w.run_for(Duration::from_secs(1));
    let id = w.fetches()[0].0;
    w.deliver(id, Ok(rogue.chain.clone()));
    w.run_for(Duration::from_secs(1));
    let r = last_final(&log);
    assert_eq!(r.status(), Some(437), "{r:?}");
    assert!(warning(&r).contains("not trusted"), "{}", warning(&r));
    assert_eq!(w.bob.borrow().received("INVITE"), 0);
}

#[test]
fn a_failed_fetch_gets_436_naming_the_failure() {
    let mut w = World::new(|_| {});
    let (alice, log) = w.phone("alice");
    w.send(
        alice,
        signed(&invite(alice, "unreachable"), &w.signer, CERT_URL),
    );
    w.run_for(Duration::from_secs(1));
    let id = w.fetches()[0].0;
    w.deliver(id, Err("connection refused".to_owned()));
    w.run_for(Duration::from_secs(1));
    let r = last_final(&log);
    assert_eq!(r.status(), Some(436), "{r:?}");
    assert_eq!(r.reason_phrase(), Some("Bad Identity-Info"));
    assert!(
        warning(&r).contains("connection refused"),
        "{}",
        warning(&r)
    );
    assert_eq!(w.bob.borrow().received("INVITE"), 0);
}

#[test]
fn a_fetch_that_never_reports_gives_436_at_the_deadline_and_a_late_report_changes_nothing() {
    let mut w = World::new(|p| p.fetch_deadline = Duration::from_secs(4));
    let (alice, log) = w.phone("alice");
    w.send(alice, signed(&invite(alice, "silent"), &w.signer, CERT_URL));
    w.run_for(Duration::from_secs(3));
    assert!(log.borrow().finals.is_empty(), "still parked at 3 s");
    w.run_for(Duration::from_secs(2));
    let r = last_final(&log);
    assert_eq!(r.status(), Some(436), "{r:?}");
    assert!(warning(&r).contains("within"), "{}", warning(&r));
    // The late result resolves nothing and forwards nothing.
    let id = w.fetches()[0].0;
    let chain = w.signer.chain.clone();
    w.deliver(id, Ok(chain));
    w.run_for(Duration::from_secs(2));
    assert_eq!(w.bob.borrow().received("INVITE"), 0);
    assert_eq!(log.borrow().finals.len(), 1);
    assert_eq!(w.forwarded_invites(), 0);
}

#[test]
fn requests_waiting_for_one_certificate_share_one_fetch() {
    let mut w = World::new(|_| {});
    let mut callers = Vec::new();
    for (i, user) in ["alice", "carol", "dave"].into_iter().enumerate() {
        let (node, log) = w.phone(user);
        let inv = signed(&invite(node, &format!("shared-{i}")), &w.signer, CERT_URL);
        w.send(node, inv);
        callers.push(log);
    }
    w.run_for(Duration::from_secs(1));
    let fetches = w.fetches();
    assert_eq!(fetches.len(), 1, "{fetches:?}");
    let chain = w.signer.chain.clone();
    w.deliver(fetches[0].0, Ok(chain));
    w.run_for(Duration::from_secs(2));
    // Every call reached bob and rings (the test phone answers only one call at a time).
    assert_eq!(w.bob.borrow().received("INVITE"), 3);
    for log in &callers {
        assert!(log.borrow().statuses("INVITE").contains(&180));
    }
    assert_eq!(w.fetches().len(), 1);
}

#[test]
fn more_parked_requests_than_the_limit_get_503() {
    let mut w = World::new(|p| p.max_parked = 2);
    let mut callers = Vec::new();
    for i in 0..3 {
        let (node, log) = w.phone(&format!("caller{i}"));
        w.send(
            node,
            signed(&invite(node, &format!("limit-{i}")), &w.signer, CERT_URL),
        );
        w.run_for(Duration::from_millis(100));
        callers.push(log);
    }
    w.run_for(Duration::from_secs(1));
    assert!(callers[0].borrow().finals.is_empty());
    assert!(callers[1].borrow().finals.is_empty());
    assert_eq!(callers[2].borrow().finals_for("INVITE"), vec![503]);
}

#[test]
fn a_cancel_for_a_parked_invite_answers_it_487() {
    let mut w = World::new(|_| {});
    let (alice, log) = w.phone("alice");
    let inv = signed(&invite(alice, "cancelled"), &w.signer, CERT_URL);
    w.send(alice, inv.clone());
    w.run_for(Duration::from_secs(1));
    let key = client_key(&inv);
    w.sim.act(alice, |ctx| {
        ctx.layer.cancel(ctx.now, &key).unwrap();
    });
    w.run_for(Duration::from_secs(1));
    assert_eq!(log.borrow().finals_for("INVITE"), vec![487]);
    assert_eq!(log.borrow().finals_for("CANCEL"), vec![200]);
    // The certificate still arrives and is cached; the cancelled call stays cancelled.
    let id = w.fetches()[0].0;
    let chain = w.signer.chain.clone();
    w.deliver(id, Ok(chain));
    w.run_for(Duration::from_secs(2));
    assert_eq!(w.bob.borrow().received("INVITE"), 0);
}
