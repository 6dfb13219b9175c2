//! The UA core in virtual time on a lossy, reordering virtual network, with a digest-
//! authenticating proxy/registrar (`Endpoint` + `DigestPolicy`) between two user agents:
//! registration with rspauth, a call with reliable provisional (RFC 3262: the 180 is sent again
//! until PRACKed), the 2xx sent again until ACKed and the ACK sent again for each retransmitted
//! 2xx (RFC 3261 §13.2.2.4, §13.3.1.4, RFC 6026), UPDATE, BYE — over twenty seeds at 20 %
//! loss; and 408 for an INVITE nobody answers. Nothing sleeps.
#![allow(clippy::unwrap_used)]

mod sim;
mod support;

use std::time::Duration;

use sim::{Addr, NetConfig, Network, Sim, WALL0, sock};
use vouch_auth::digest::{Algorithm, ha1};
use vouch_auth::session_cert::LoginCertificate;
use vouch_msg::{HeaderName, Message};
use vouch_proto::auth::{DigestConfig, DigestPolicy, NonceSecret};
use vouch_proto::transaction::{Reliability, TransactionConfig};
use vouch_proto::ua::{CallHandle, UaConfig, UaEvent, UserAgent};
use vouch_proto::{Endpoint, EndpointConfig, Peer, TransportKind, UserCredentials};

const PROXY: Addr = 100;
const ALICE: Addr = 101;
const BOB: Addr = 102;

fn user(name: &str, password: &str) -> UserCredentials {
    UserCredentials {
        username: name.to_owned(),
        realm: "example.com".to_owned(),
        aor: format!("sip:{name}@example.com"),
        may_assert: Vec::new(),
        ha1: Algorithm::STRONGEST_FIRST
            .iter()
            .map(|&a| (a, ha1(a, name, "example.com", password)))
            .collect(),
    }
}

fn proxy() -> Endpoint {
    let mut ep = Endpoint::new(EndpointConfig {
        domains: vec!["example.com".to_owned()],
        local: vec![(TransportKind::Udp, sock(PROXY))],
        seed: 7,
        ..EndpointConfig::default()
    });
    let cfg = DigestConfig::new(NonceSecret::new([9; 32]), 7);
    ep.set_policy(Box::new(DigestPolicy::new(cfg).unwrap()));
    ep.set_users(vec![user("alice", "a-pw"), user("bob", "b-pw")]);
    ep
}

fn ua(addr: Addr, name: &str, password: &str) -> UserAgent {
    ua_with(addr, name, password, |_| {})
}

/// [`ua`] with `tweak` applied to its configuration.
fn ua_with(addr: Addr, name: &str, password: &str, tweak: impl FnOnce(&mut UaConfig)) -> UserAgent {
    let mut c = UaConfig::new(
        &format!("sip:{name}@example.com"),
        (TransportKind::Udp, sock(addr)),
        Peer::new(TransportKind::Udp, sock(PROXY)),
    )
    .with_password(name, password);
    c.seed = addr as u64;
    c.transaction = TransactionConfig::default();
    tweak(&mut c);
    let mut ua = UserAgent::new(c);
    // A certificate in the bodies: Bob sends his back in an UPDATE after the PRACK.
    let cert = LoginCertificate::generate(&format!("sip:{name}@example.com"), None, WALL0, 86_400)
        .unwrap();
    ua.set_certificate(cert.der().to_vec());
    ua
}

fn world(net: NetConfig, seed: u64) -> Sim {
    let mut sim = Sim::new(Network::new(net, seed), Reliability::Unreliable);
    sim.add_endpoint(PROXY, proxy());
    sim.add_ua(ALICE, ua(ALICE, "alice", "a-pw"));
    sim.add_ua(BOB, ua(BOB, "bob", "b-pw"));
    sim
}

fn count(sim: &Sim, a: Addr, f: impl Fn(&UaEvent) -> bool) -> usize {
    sim.ua_events(a).iter().filter(|e| f(e)).count()
}

fn lossy() -> NetConfig {
    NetConfig {
        loss: 0.2,
        duplicate: 0.1,
        min_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(60),
    }
}

/// Registers both, calls, waits, hangs up; returns alice's call.
fn full_call(sim: &mut Sim) -> CallHandle {
    sim.ua_input(ALICE, |u, now, _| u.register(now))
        .unwrap()
        .unwrap();
    sim.ua_input(BOB, |u, now, _| u.register(now))
        .unwrap()
        .unwrap();
    sim.run(Duration::from_secs(40));
    let call = sim
        .ua_input(ALICE, |u, now, _| u.call(now, "sip:bob@example.com"))
        .unwrap()
        .unwrap();
    sim.run(Duration::from_secs(120));
    sim.ua_input(ALICE, |u, now, _| u.hangup(now, call))
        .unwrap()
        .unwrap();
    sim.run(Duration::from_secs(200));
    call
}

#[test]
fn call_completes_on_a_perfect_network_with_rspauth_checked() {
    let mut sim = world(NetConfig::PERFECT, 1);
    let call = full_call(&mut sim);
    let registered = |e: &UaEvent| matches!(e, UaEvent::Registered { authenticated_realms, .. } if authenticated_realms == &["example.com"]);
    assert_eq!(
        count(&sim, ALICE, registered),
        1,
        "{:?}",
        sim.ua_events(ALICE)
    );
    assert_eq!(count(&sim, BOB, registered), 1, "{:?}", sim.ua_events(BOB));
    assert_eq!(
        count(
            &sim,
            ALICE,
            |e| matches!(e, UaEvent::ServerAuthenticated { method, .. } if method == "INVITE")
        ),
        1,
        "{:?}",
        sim.ua_events(ALICE)
    );
    assert_eq!(
        count(
            &sim,
            ALICE,
            |e| matches!(e, UaEvent::CallEstablished { call: c } if *c == call)
        ),
        1
    );
    assert_eq!(
        count(&sim, BOB, |e| matches!(e, UaEvent::CallEstablished { .. })),
        1
    );
    assert_eq!(
        count(&sim, BOB, |e| matches!(e, UaEvent::CallEnded { .. })),
        1
    );
    for a in [ALICE, BOB] {
        assert_eq!(
            count(&sim, a, |e| matches!(
                e,
                UaEvent::CallFailed { .. }
                    | UaEvent::ServerNotAuthenticated { .. }
                    | UaEvent::RequestRefused { .. }
                    | UaEvent::RegistrationFailed { .. }
            )),
            0,
            "{:?}",
            sim.ua_events(a)
        );
    }
}

#[test]
fn call_survives_loss_duplication_and_reordering() {
    let mut established = 0;
    for seed in 0..20 {
        let mut sim = world(lossy(), seed);
        full_call(&mut sim);
        let a = count(&sim, ALICE, |e| {
            matches!(e, UaEvent::CallEstablished { .. })
        });
        let b = count(&sim, BOB, |e| matches!(e, UaEvent::CallEstablished { .. }));
        let ended = count(&sim, BOB, |e| matches!(e, UaEvent::CallEnded { .. }));
        // A call that got through must be complete on both sides and end on both sides.
        if a == 1 {
            assert_eq!(b, 1, "seed {seed}: bob {:?}", sim.ua_events(BOB));
            assert_eq!(ended, 1, "seed {seed}: bob {:?}", sim.ua_events(BOB));
            established += 1;
        }
        assert!(a <= 1 && b <= 1, "seed {seed}: established twice");
    }
    eprintln!("{established} of 20 calls completed at 20 % loss");
    // Deterministic per seed; every one of them gets through.
    assert_eq!(established, 20);
}

#[test]
fn unanswered_invite_fails_with_408() {
    let mut sim = world(NetConfig::PERFECT, 3);
    sim.ua_input(ALICE, |u, now, _| u.register(now))
        .unwrap()
        .unwrap();
    sim.run(Duration::from_secs(5));
    // Bob never registered: the proxy answers 480. Calling a host that does not exist (an
    // address with no node) leaves the INVITE unanswered instead.
    let call = sim
        .ua_input(ALICE, |u, now, _| u.call(now, "sip:nobody@10.0.0.250"))
        .unwrap()
        .unwrap();
    sim.run(Duration::from_secs(100));
    let failed: Vec<u16> = sim
        .ua_events(ALICE)
        .iter()
        .filter_map(|e| match e {
            UaEvent::CallFailed {
                call: c, status, ..
            } if *c == call => Some(*status),
            _ => None,
        })
        .collect();
    assert_eq!(failed, vec![408], "{:?}", sim.ua_events(ALICE));
}

/// Registers both and lets Alice call Bob; returns the two calls' events afterwards.
fn call_with_firewall(drop_if: fn(&sim::Datagram) -> bool) -> Sim {
    let mut sim = world(NetConfig::PERFECT, 5);
    sim.ua_input(ALICE, |u, now, _| u.register(now))
        .unwrap()
        .unwrap();
    sim.ua_input(BOB, |u, now, _| u.register(now))
        .unwrap()
        .unwrap();
    sim.run(Duration::from_secs(5));
    sim.net.drop_if = Some(drop_if);
    sim.net.captured = Some(Vec::new());
    sim.ua_input(ALICE, |u, now, _| u.call(now, "sip:bob@example.com"))
        .unwrap()
        .unwrap();
    sim.run(Duration::from_secs(200));
    sim
}

#[test]
fn callee_ends_the_call_with_bye_when_no_ack_comes() {
    // Every ACK to Bob is lost: Bob sends the 2xx for 64×T1, then BYE (RFC 3261 §13.3.1.4).
    let sim = call_with_firewall(|d| d.to == BOB && d.bytes.starts_with(b"ACK "));
    let ended: Vec<String> = sim
        .ua_events(BOB)
        .iter()
        .filter_map(|e| match e {
            UaEvent::CallEnded { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        ended,
        vec!["no ACK for the 2xx"],
        "{:?}",
        sim.ua_events(BOB)
    );
    assert_eq!(
        count(
            &sim,
            ALICE,
            |e| matches!(e, UaEvent::CallEnded { reason, .. } if reason == "BYE received")
        ),
        1,
        "{:?}",
        sim.ua_events(ALICE)
    );
}

#[test]
fn callee_rejects_the_invite_when_no_prack_comes() {
    // Every PRACK to Bob is lost: after 64×T1 of 180s Bob rejects the INVITE (RFC 3262 §3).
    let sim = call_with_firewall(|d| d.to == BOB && d.bytes.starts_with(b"PRACK "));
    let failed: Vec<u16> = sim
        .ua_events(ALICE)
        .iter()
        .filter_map(|e| match e {
            UaEvent::CallFailed { status, .. } => Some(*status),
            _ => None,
        })
        .collect();
    assert_eq!(failed, vec![500], "{:?}", sim.ua_events(ALICE));
    // The 500 says why: a 5xx alone would read as a fault of Bob's (RFC 3262 §3).
    let rejections: Vec<Message> = sim
        .net
        .captured
        .as_ref()
        .unwrap()
        .iter()
        .filter(|d| d.from == BOB)
        .map(|d| Message::parse(d.bytes.clone()).unwrap())
        .filter(|m| m.status().is_some_and(|s| s >= 300))
        .collect();
    assert!(!rejections.is_empty(), "Bob rejected the INVITE");
    for r in &rejections {
        assert_eq!(r.status(), Some(500));
        let warning = r.header(HeaderName::Warning).expect("a Warning").value;
        assert!(
            warning.starts_with("399 ") && warning.contains("no PRACK"),
            "{warning}"
        );
    }
    assert_eq!(
        count(
            &sim,
            BOB,
            |e| matches!(e, UaEvent::CallEnded { reason, .. } if reason == "no PRACK")
        ),
        1
    );
}

#[test]
fn a_call_declined_while_ringing_fails_with_603_decline() {
    // Bob does not answer and hangs up while it rings: 603 with the phrase of RFC 3261
    // §21.6.2, relayed by the proxy (it was "603 Unknown").
    let mut sim = Sim::new(
        Network::new(NetConfig::PERFECT, 11),
        Reliability::Unreliable,
    );
    sim.add_endpoint(PROXY, proxy());
    sim.add_ua(ALICE, ua(ALICE, "alice", "a-pw"));
    sim.add_ua(BOB, ua_with(BOB, "bob", "b-pw", |c| c.auto_answer = false));
    for who in [ALICE, BOB] {
        sim.ua_input(who, |u, now, _| u.register(now))
            .unwrap()
            .unwrap();
    }
    sim.run(Duration::from_secs(5));
    sim.ua_input(ALICE, |u, now, _| u.call(now, "sip:bob@example.com"))
        .unwrap()
        .unwrap();
    sim.run(Duration::from_secs(5));
    let ringing = sim
        .ua_events(BOB)
        .iter()
        .find_map(|e| match e {
            UaEvent::IncomingCall { call, .. } => Some(*call),
            _ => None,
        })
        .expect("the INVITE reached bob");
    sim.ua_input(BOB, |u, now, _| u.hangup(now, ringing))
        .unwrap()
        .unwrap();
    sim.run(Duration::from_secs(5));
    let failed: Vec<(u16, String)> = sim
        .ua_events(ALICE)
        .iter()
        .filter_map(|e| match e {
            UaEvent::CallFailed { status, reason, .. } => Some((*status, reason.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        failed,
        vec![(603, "Decline".to_owned())],
        "{:?}",
        sim.ua_events(ALICE)
    );
}
