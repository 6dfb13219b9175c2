//! Digest authentication with mutual authentication (RFC 3261 §22, RFC 2617 §3.2.3, RFC 7616,
//! RFC 8760, draft-dotson-sip-mutual-auth §5–§6) through [`Endpoint`]s on the virtual network,
//! in virtual time: the UA is vouch-auth's `Responder` behind a transaction layer
//! (`support::digest_ua`), and it verifies every rspauth it gets.

#![allow(clippy::unwrap_used)]

mod sim;
mod support;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use sim::{Addr, Ctx, NetConfig, Network, Sim, Tu, WALL0, host, sock};
use support::digest_ua::{Call, DigestUa, UaState};
use support::phone::{Phone, PhoneLog};
use vouch_auth::digest::{Algorithm, ha1};
use vouch_msg::headers::auth::{AuthenticationInfo, Challenge, Credentials};
use vouch_msg::{HeaderName, Message, Method};
use vouch_proto::auth::{
    ChallengeScope, DigestConfig, DigestPolicy, DigestUriCheck, NonceSecret, RealmChoice,
};
use vouch_proto::transaction::{
    Reliability, TransactionConfig, TransactionEvent, TransactionLayer, response_for,
};
use vouch_proto::{Binding, Endpoint, EndpointConfig, Event, Peer, TransportKind, UserCredentials};

const PROXY: Addr = 100;
const CHICAGO: Addr = 101;
const PASSWORD: &str = "wonderland";

fn endpoint_config(addr: Addr, domain: &str) -> EndpointConfig {
    EndpointConfig {
        domains: vec![domain.to_owned()],
        local: vec![(TransportKind::Udp, sock(addr))],
        advertised_host: None,
        static_hosts: Vec::new(),
        min_expires: 60,
        max_expires: 3600,
        default_expires: 3600,
        transaction: TransactionConfig::default(),
        limits: vouch_msg::Limits::DEFAULT,
        seed: addr as u64,
        ..EndpointConfig::default()
    }
}

/// An account with H(A1) for every algorithm, as the driver loads it from the store.
fn user(username: &str, realm: &str, aor: &str, password: &str) -> UserCredentials {
    UserCredentials {
        username: username.to_owned(),
        realm: realm.to_owned(),
        aor: aor.to_owned(),
        may_assert: Vec::new(),
        ha1: Algorithm::STRONGEST_FIRST
            .iter()
            .map(|&a| (a, ha1(a, username, realm, password)))
            .collect(),
    }
}

fn alice() -> UserCredentials {
    user("alice", "example.com", "sip:alice@example.com", PASSWORD)
}

/// An endpoint for `domain` at `addr` with the digest policy (tweaked) and these users.
fn digest_endpoint(
    addr: Addr,
    domain: &str,
    users: Vec<UserCredentials>,
    tweak: impl FnOnce(&mut DigestConfig),
) -> Endpoint {
    let mut ep = Endpoint::new(endpoint_config(addr, domain));
    let mut cfg = DigestConfig::new(NonceSecret::new([addr as u8; 32]), addr as u64);
    tweak(&mut cfg);
    ep.set_policy(Box::new(DigestPolicy::new(cfg).unwrap()));
    ep.set_users(users);
    ep
}

struct World {
    sim: Sim,
}

impl World {
    fn new(endpoints: Vec<(Addr, Endpoint)>) -> Self {
        let mut sim = Sim::new(Network::new(NetConfig::PERFECT, 1), Reliability::Unreliable);
        for (a, ep) in endpoints {
            sim.add_endpoint(a, ep);
        }
        World { sim }
    }

    fn single(tweak: impl FnOnce(&mut DigestConfig)) -> Self {
        Self::new(vec![(
            PROXY,
            digest_endpoint(PROXY, "example.com", vec![alice()], tweak),
        )])
    }

    fn ua(
        &mut self,
        username: &str,
        password: &str,
        next_hop: Addr,
    ) -> (Addr, Rc<RefCell<UaState>>) {
        let me = self.sim.nodes.len();
        let state = Rc::new(RefCell::new(UaState::new(me, next_hop, username, password)));
        let at = self.sim.add(
            TransactionLayer::new(TransactionConfig::default()),
            Box::new(DigestUa(state.clone())),
        );
        assert_eq!(at, me);
        (me, state)
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

    fn body_uas(&mut self, body: &str) -> (Addr, Rc<RefCell<Vec<Message>>>) {
        let uas = BodyUas {
            body: body.to_owned(),
            received: Rc::default(),
        };
        let received = uas.received.clone();
        let me = self.sim.add(
            TransactionLayer::new(TransactionConfig::default()),
            Box::new(uas),
        );
        (me, received)
    }

    /// Binds `aor` at the endpoint to node `at` (as if it had registered).
    fn bind(&mut self, endpoint: Addr, aor: &str, at: Addr) {
        let user = aor
            .trim_start_matches("sip:")
            .split('@')
            .next()
            .unwrap_or("");
        let ep = &mut self.sim.endpoints.get_mut(&endpoint).unwrap().engine;
        ep.restore_bindings(vec![Binding {
            aor: aor.to_owned(),
            contact: format!("sip:{user}@{}:5060", host(at)),
            expires_at: WALL0 + 3600,
            q: 1000,
            call_id: format!("bind-{at}"),
            cseq: 1,
            source: Peer::new(TransportKind::Udp, sock(at)),
        }]);
    }

    /// Sends `call` from the UA at `from` in a new client transaction.
    fn start(&mut self, from: Addr, ua: &Rc<RefCell<UaState>>, call: Call) {
        let m = ua.borrow_mut().build(call);
        self.send(from, ua.borrow().next_hop, m);
    }

    fn send(&mut self, from: Addr, to: Addr, m: Message) {
        self.sim.act(from, |ctx| {
            ctx.layer
                .send_request(ctx.now, m, to, Reliability::Unreliable)
                .expect("transaction starts");
        });
    }

    /// The current request of the UA again, with fresh credentials.
    fn retry(&mut self, from: Addr, ua: &Rc<RefCell<UaState>>) {
        let m = ua.borrow_mut().build_retry().unwrap();
        self.send(from, ua.borrow().next_hop, m);
    }

    fn run_for(&mut self, d: Duration) {
        let end = self.sim.now.duration_since(self.sim.t0) + d;
        self.sim.run(end);
        self.sim.now = self.sim.now.max(self.sim.t0 + end);
    }

    fn forwarded(&self, endpoint: Addr, method: &str) -> usize {
        self.sim
            .events(endpoint)
            .iter()
            .filter(|e| matches!(e, Event::Forwarded { method: m, .. } if m == method))
            .count()
    }

    fn logs(&self, endpoint: Addr) -> Vec<String> {
        self.sim
            .events(endpoint)
            .iter()
            .filter_map(|e| match e {
                Event::Log { message, .. } => Some(message.clone()),
                _ => None,
            })
            .collect()
    }
}

/// A UAS answering every request (but ACK) with 200 and a text body.
struct BodyUas {
    body: String,
    received: Rc<RefCell<Vec<Message>>>,
}

impl Tu for BodyUas {
    fn on_event(&mut self, ctx: &mut Ctx<'_>, event: TransactionEvent<Addr>) {
        if let TransactionEvent::Request { key, request, .. } = event {
            self.received.borrow_mut().push(request.clone());
            let mut b = response_for(&request, 200, "OK", Some("uas"))
                .unwrap()
                .edit();
            b.set_body(Some("text/plain"), self.body.clone().into_bytes());
            let _ = ctx.layer.respond(ctx.now, &key, b.build().unwrap());
        }
    }
}

fn statuses(ms: &[Message]) -> Vec<u16> {
    ms.iter().filter_map(Message::status).collect()
}

fn values(m: &Message, name: HeaderName) -> Vec<String> {
    m.headers_named(name).map(|h| h.value.to_owned()).collect()
}

fn challenge_algorithms(m: &Message, name: HeaderName) -> Vec<String> {
    values(m, name)
        .iter()
        .map(|v| {
            Challenge::parse(v)
                .unwrap()
                .algorithm
                .unwrap_or("MD5")
                .to_owned()
        })
        .collect()
}

fn alice_call(method: &str, ruri: &str, call_id: &str) -> Call {
    Call::new(method, ruri, "sip:alice@example.com", call_id)
}

// ---- registrar: 401 and Authentication-Info ---------------------------------------------

#[test]
fn register_is_challenged_and_the_200_proves_the_registrar() {
    let mut w = World::single(|_| {});
    let (a, ua) = w.ua("alice", PASSWORD, PROXY);
    let mut reg = alice_call("REGISTER", "sip:example.com", "reg-1");
    reg.to = "sip:alice@example.com".to_owned();
    w.start(a, &ua, reg.clone());
    w.run_for(Duration::from_secs(2));
    {
        let u = ua.borrow();
        assert_eq!(statuses(&u.finals), vec![401, 200], "{:?}", u.errors);
        // RFC 8760 §2.4: one challenge per algorithm, strongest first by default.
        assert_eq!(
            challenge_algorithms(&u.finals[0], HeaderName::WwwAuthenticate),
            vec!["SHA-512-256", "SHA-256", "MD5"]
        );
        for v in values(&u.finals[0], HeaderName::WwwAuthenticate) {
            let c = Challenge::parse(&v).unwrap();
            assert_eq!(c.realm.as_deref(), Some("example.com"));
            assert!(c.offers_qop("auth") && c.offers_qop("auth-int"));
        }
        assert!(u.sent[1].header(HeaderName::Authorization).is_some());
        assert_eq!(
            values(&u.finals[1], HeaderName::AuthenticationInfo).len(),
            1
        );
        assert_eq!(u.proven, vec![vec!["example.com".to_owned()]]);
        assert!(u.errors.is_empty(), "{:?}", u.errors);
    }
    let ep = &w.sim.endpoints[&PROXY].engine;
    assert_eq!(ep.bindings("sip:alice@example.com").len(), 1);

    // The refresh uses nextnonce: no challenge this time (RFC 7616 §3.5).
    let nextnonce = {
        let u = ua.borrow();
        let info = values(&u.finals[1], HeaderName::AuthenticationInfo).remove(0);
        AuthenticationInfo::parse(&info)
            .unwrap()
            .nextnonce
            .unwrap()
            .into_owned()
    };
    reg.cseq = 10;
    w.start(a, &ua, reg);
    w.run_for(Duration::from_secs(2));
    let u = ua.borrow();
    assert_eq!(statuses(&u.finals), vec![401, 200, 200]);
    let creds = values(u.sent.last().unwrap(), HeaderName::Authorization).remove(0);
    assert_eq!(
        Credentials::parse(&creds).unwrap().nonce.as_deref(),
        Some(nextnonce.as_str())
    );
    assert_eq!(u.proven.len(), 2);
    assert_eq!(u.proven[1], vec!["example.com".to_owned()]);
}

#[test]
fn registering_another_users_address_is_forbidden() {
    let mut w = World::single(|_| {});
    let (a, ua) = w.ua("alice", PASSWORD, PROXY);
    let mut reg = alice_call("REGISTER", "sip:example.com", "reg-carol");
    reg.to = "sip:carol@example.com".to_owned();
    w.start(a, &ua, reg);
    w.run_for(Duration::from_secs(2));
    let u = ua.borrow();
    assert_eq!(statuses(&u.finals), vec![401, 403]);
    let warning = values(&u.finals[1], HeaderName::Warning).remove(0);
    assert!(
        warning.contains("may not use To sip:carol@example.com"),
        "{warning}"
    );
    let ep = &w.sim.endpoints[&PROXY].engine;
    assert!(ep.bindings("sip:carol@example.com").is_empty());
}

#[test]
fn options_to_the_server_itself_is_authenticated_with_401_and_proven() {
    let mut w = World::single(|_| {});
    let (a, ua) = w.ua("alice", PASSWORD, PROXY);
    let mut call = alice_call("OPTIONS", "sip:example.com", "opt-1");
    call.to_server = true;
    w.start(a, &ua, call);
    w.run_for(Duration::from_secs(2));
    let u = ua.borrow();
    assert_eq!(statuses(&u.finals), vec![401, 200], "{:?}", u.errors);
    assert!(u.finals[1].header(HeaderName::AuthenticationInfo).is_some());
    assert_eq!(u.proven, vec![vec!["example.com".to_owned()]]);
}

// ---- proxy: 407 and Proxy-Authentication-Info -------------------------------------------

#[test]
fn invite_is_challenged_forwarded_without_our_credentials_and_the_2xx_proves_the_proxy() {
    let mut w = World::single(|_| {});
    let (a, ua) = w.ua("alice", PASSWORD, PROXY);
    let (b, bob) = w.phone("bob");
    w.bind(PROXY, "sip:bob@example.com", b);
    w.start(
        a,
        &ua,
        alice_call("INVITE", "sip:bob@example.com", "call-1"),
    );
    w.run_for(Duration::from_secs(5));
    let nextnonce = {
        let u = ua.borrow();
        assert_eq!(statuses(&u.finals), vec![407, 200], "{:?}", u.errors);
        assert_eq!(
            challenge_algorithms(&u.finals[0], HeaderName::ProxyAuthenticate),
            vec!["SHA-512-256", "SHA-256", "MD5"]
        );
        assert_eq!(
            values(&u.sent[1], HeaderName::ProxyAuthorization).len(),
            1,
            "the retry carries our credentials"
        );
        let infos = values(&u.finals[1], HeaderName::ProxyAuthenticationInfo);
        assert_eq!(infos.len(), 1);
        assert!(u.finals[1].header(HeaderName::AuthenticationInfo).is_none());
        assert_eq!(u.proven, vec![vec!["example.com".to_owned()]]);
        assert!(u.errors.is_empty(), "{:?}", u.errors);
        let info = AuthenticationInfo::parse(&infos[0]).unwrap();
        assert_eq!(info.qop, Some("auth"));
        assert!(info.cnonce.is_some() && info.nc == Some(1));
        info.nextnonce.unwrap().into_owned()
    };
    {
        let b = bob.borrow();
        assert_eq!(b.received("INVITE"), 1);
        let invite = &b.requests[0];
        assert!(
            invite.header(HeaderName::ProxyAuthorization).is_none(),
            "our Proxy-Authorization is consumed (RFC 3261 §22.3)"
        );
        assert_eq!(b.acks.len(), 1, "the ACK is never challenged");
    }

    // A mid-dialog BYE following our Record-Route is not challenged.
    let (hop, bye) = ua.borrow_mut().in_dialog(Method::Bye, 2).unwrap();
    assert_eq!(hop, PROXY);
    w.send(a, hop, bye);
    w.run_for(Duration::from_secs(2));
    assert_eq!(statuses(&ua.borrow().finals), vec![407, 200, 200]);
    assert_eq!(bob.borrow().received("BYE"), 1);

    // The next request uses nextnonce and is accepted without a new challenge.
    w.start(
        a,
        &ua,
        alice_call("MESSAGE", "sip:bob@example.com", "msg-1"),
    );
    w.run_for(Duration::from_secs(2));
    let u = ua.borrow();
    assert_eq!(statuses(&u.finals), vec![407, 200, 200, 200]);
    let creds = values(u.sent.last().unwrap(), HeaderName::ProxyAuthorization).remove(0);
    let creds = Credentials::parse(&creds).unwrap();
    assert_eq!(creds.nonce.as_deref(), Some(nextnonce.as_str()));
    assert_eq!(creds.nc, Some(1));
    assert_eq!(u.proven.last().unwrap(), &vec!["example.com".to_owned()]);
    assert!(u.errors.is_empty(), "{:?}", u.errors);
}

#[test]
fn two_proxies_in_series_both_prove_themselves_and_the_downstream_value_is_preserved() {
    // atlanta (the UA's own proxy) and chicago (which authenticates everyone it relays, with
    // a visitor account for alice) both challenge.
    let atlanta = digest_endpoint(
        PROXY,
        "atlanta.example.com",
        vec![user(
            "alice",
            "atlanta.example.com",
            "sip:alice@atlanta.example.com",
            PASSWORD,
        )],
        |_| {},
    );
    let chicago = digest_endpoint(
        CHICAGO,
        "chicago.example.com",
        vec![user(
            "alice",
            "chicago.example.com",
            "sip:alice@atlanta.example.com",
            PASSWORD,
        )],
        |c| c.scope = ChallengeScope::Everyone,
    );
    let mut w = World::new(vec![(PROXY, atlanta), (CHICAGO, chicago)]);
    w.sim.net.captured = Some(Vec::new());
    let (a, ua) = w.ua("alice", PASSWORD, PROXY);
    let (b, bob) = w.phone("bob");
    let mut call = Call::new(
        "INVITE",
        &format!("sip:bob@{}:5060", host(b)),
        "sip:alice@atlanta.example.com",
        "two-proxies",
    );
    call.routes = vec![
        format!("<sip:{}:5060;lr>", host(PROXY)),
        format!("<sip:{}:5060;lr>", host(CHICAGO)),
    ];
    w.start(a, &ua, call);
    w.run_for(Duration::from_secs(5));

    let u = ua.borrow();
    assert_eq!(statuses(&u.finals), vec![407, 407, 200], "{:?}", u.errors);
    let realm_of = |m: &Message| {
        let v = values(m, HeaderName::ProxyAuthenticate).remove(0);
        Challenge::parse(&v).unwrap().realm.unwrap().into_owned()
    };
    assert_eq!(realm_of(&u.finals[0]), "atlanta.example.com");
    assert_eq!(realm_of(&u.finals[1]), "chicago.example.com");
    assert_eq!(values(&u.sent[2], HeaderName::ProxyAuthorization).len(), 2);

    // Both values reached the UA and both rspauths verify.
    let ok = &u.finals[2];
    let infos = values(ok, HeaderName::ProxyAuthenticationInfo);
    assert_eq!(infos.len(), 2, "{infos:?}");
    let mut proven = u.proven.last().unwrap().clone();
    proven.sort();
    assert_eq!(proven, vec!["atlanta.example.com", "chicago.example.com"]);
    assert!(u.errors.is_empty(), "{:?}", u.errors);

    // Ours (atlanta) sits above chicago's, matched by the cnonce of each realm's credentials.
    let cnonce_for = |realm: &str| {
        values(&u.sent[2], HeaderName::ProxyAuthorization)
            .iter()
            .map(|v| Credentials::parse(v).unwrap())
            .find(|c| c.realm.as_deref() == Some(realm))
            .and_then(|c| c.cnonce.map(|x| x.into_owned()))
            .unwrap()
    };
    let first = AuthenticationInfo::parse(&infos[0]).unwrap();
    let second = AuthenticationInfo::parse(&infos[1]).unwrap();
    assert_eq!(
        first.cnonce.as_deref(),
        Some(cnonce_for("atlanta.example.com").as_str())
    );
    assert_eq!(
        second.cnonce.as_deref(),
        Some(cnonce_for("chicago.example.com").as_str())
    );

    // chicago's value left atlanta exactly as chicago wrote it.
    let captured = w.sim.net.captured.as_ref().unwrap();
    let from_chicago = captured
        .iter()
        .filter(|d| d.from == CHICAGO && d.to == PROXY)
        .map(|d| Message::parse(d.bytes.clone()).unwrap())
        .find(|m| m.status() == Some(200) && m.cseq().method == Method::Invite)
        .unwrap();
    assert_eq!(
        values(&from_chicago, HeaderName::ProxyAuthenticationInfo),
        vec![infos[1].clone()]
    );
    // Each proxy consumed its own credentials and passed the other's on.
    let to_chicago = captured
        .iter()
        .filter(|d| d.from == PROXY && d.to == CHICAGO)
        .map(|d| Message::parse(d.bytes.clone()).unwrap())
        .rev()
        .find(|m| m.method() == Some(Method::Invite))
        .unwrap();
    let realms: Vec<String> = values(&to_chicago, HeaderName::ProxyAuthorization)
        .iter()
        .map(|v| Credentials::parse(v).unwrap().realm.unwrap().into_owned())
        .collect();
    assert_eq!(realms, vec!["chicago.example.com"]);
    let b = bob.borrow();
    assert_eq!(b.received("INVITE"), 1);
    assert!(
        b.requests[0]
            .header(HeaderName::ProxyAuthorization)
            .is_none()
    );
}

#[test]
fn a_from_address_the_user_may_not_use_is_forbidden_with_a_warning() {
    let mut w = World::single(|_| {});
    let (a, ua) = w.ua("alice", PASSWORD, PROXY);
    let (b, bob) = w.phone("bob");
    w.bind(PROXY, "sip:bob@example.com", b);
    let call = Call::new(
        "INVITE",
        "sip:bob@example.com",
        "sip:carol@example.com",
        "spoof",
    );
    w.start(a, &ua, call);
    w.run_for(Duration::from_secs(3));
    let u = ua.borrow();
    assert_eq!(statuses(&u.finals), vec![407, 403]);
    let warning = values(&u.finals[1], HeaderName::Warning).remove(0);
    assert!(warning.starts_with("399 "), "{warning}");
    assert!(
        warning.contains("alice may not use From sip:carol@example.com"),
        "{warning}"
    );
    assert_eq!(bob.borrow().received("INVITE"), 0);
}

#[test]
fn a_replayed_request_is_challenged_again_and_not_forwarded() {
    let mut w = World::single(|_| {});
    let (a, ua) = w.ua("alice", PASSWORD, PROXY);
    let (b, received) = w.body_uas("ok");
    w.bind(PROXY, "sip:bob@example.com", b);
    w.start(
        a,
        &ua,
        alice_call("MESSAGE", "sip:bob@example.com", "replay"),
    );
    w.run_for(Duration::from_secs(2));
    assert_eq!(statuses(&ua.borrow().finals), vec![407, 200]);
    // The same request, credentials and all, in a new transaction (same nc).
    let replay = {
        let mut u = ua.borrow_mut();
        u.auto_retry = false;
        let mut e = u.sent[1].edit();
        e.replace(
            "Via",
            &format!("SIP/2.0/UDP {}:5060;branch=z9hG4bKreplayed;rport", host(a)),
        );
        e.build().unwrap()
    };
    w.send(a, PROXY, replay);
    w.run_for(Duration::from_secs(2));
    let u = ua.borrow();
    assert_eq!(statuses(&u.finals), vec![407, 200, 407]);
    for v in values(&u.finals[2], HeaderName::ProxyAuthenticate) {
        assert_eq!(
            Challenge::parse(&v).unwrap().stale,
            None,
            "a fresh challenge"
        );
    }
    assert_eq!(received.borrow().len(), 1, "the replay was not forwarded");
    assert_eq!(w.forwarded(PROXY, "MESSAGE"), 1);
    assert!(
        w.logs(PROXY)
            .iter()
            .any(|l| l.contains("nonce-count reused")),
        "{:?}",
        w.logs(PROXY)
    );
}

#[test]
fn an_expired_nonce_is_challenged_with_stale_true() {
    let mut w = World::single(|c| c.nonce_lifetime_secs = 30);
    let (a, ua) = w.ua("alice", PASSWORD, PROXY);
    let (b, received) = w.body_uas("ok");
    w.bind(PROXY, "sip:bob@example.com", b);
    ua.borrow_mut().auto_retry = false;
    w.start(
        a,
        &ua,
        alice_call("MESSAGE", "sip:bob@example.com", "stale"),
    );
    w.run_for(Duration::from_secs(2));
    assert_eq!(statuses(&ua.borrow().finals), vec![407]);
    // The UA answers only after the nonce expired.
    w.run_for(Duration::from_secs(40));
    w.retry(a, &ua);
    w.run_for(Duration::from_secs(2));
    {
        let u = ua.borrow();
        assert_eq!(statuses(&u.finals), vec![407, 407]);
        let stale = values(&u.finals[1], HeaderName::ProxyAuthenticate);
        assert_eq!(stale.len(), 3);
        for v in stale {
            assert_eq!(Challenge::parse(&v).unwrap().stale, Some(true), "{v}");
        }
        assert!(
            u.errors.is_empty(),
            "stale=true is not a refusal: {:?}",
            u.errors
        );
    }
    assert!(received.borrow().is_empty());
    // Answering the stale challenge succeeds.
    w.retry(a, &ua);
    w.run_for(Duration::from_secs(2));
    assert_eq!(statuses(&ua.borrow().finals), vec![407, 407, 200]);
    assert_eq!(received.borrow().len(), 1);
}

#[test]
fn md5_credentials_are_refused_when_the_policy_forbids_md5() {
    let mut w = World::single(|c| c.algorithms = vec![Algorithm::Sha256]);
    let (a, ua) = w.ua("alice", PASSWORD, PROXY);
    let (b, received) = w.body_uas("ok");
    w.bind(PROXY, "sip:bob@example.com", b);
    ua.borrow_mut().auto_retry = false;
    w.start(a, &ua, alice_call("MESSAGE", "sip:bob@example.com", "md5"));
    w.run_for(Duration::from_secs(2));
    {
        let mut u = ua.borrow_mut();
        assert_eq!(
            challenge_algorithms(&u.finals[0], HeaderName::ProxyAuthenticate),
            vec!["SHA-256"]
        );
        // A downgrading client answers the (valid) nonce with MD5 anyway.
        let offered = values(&u.finals[0], HeaderName::ProxyAuthenticate).remove(0);
        let as_md5 = offered.replace("algorithm=SHA-256", "algorithm=MD5");
        u.set_algorithms("alice", PASSWORD, vec![Algorithm::Md5]);
        u.proxy
            .handle_challenges(&[Challenge::parse(&as_md5).unwrap()])
            .unwrap();
    }
    w.retry(a, &ua);
    w.run_for(Duration::from_secs(2));
    let u = ua.borrow();
    assert_eq!(statuses(&u.finals), vec![407, 407]);
    let sent = values(&u.sent[1], HeaderName::ProxyAuthorization).remove(0);
    assert_eq!(Credentials::parse(&sent).unwrap().algorithm, Some("MD5"));
    assert_eq!(
        challenge_algorithms(&u.finals[1], HeaderName::ProxyAuthenticate),
        vec!["SHA-256"]
    );
    assert!(received.borrow().is_empty());
    assert!(
        w.logs(PROXY)
            .iter()
            .any(|l| l.contains("algorithm not allowed: MD5")),
        "{:?}",
        w.logs(PROXY)
    );
}

/// A MESSAGE from the UA at node `a` with extra header lines, as raw bytes.
fn raw_message(a: Addr, branch: &str, extra: &str) -> Vec<u8> {
    format!(
        "MESSAGE sip:bob@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP {h}:5060;branch=z9hG4bK{branch};rport\r\n\
Max-Forwards: 70\r\n\
From: <sip:alice@example.com>;tag=raw\r\n\
To: <sip:bob@example.com>\r\n\
Call-ID: raw-{branch}\r\n\
CSeq: 1 MESSAGE\r\n\
{extra}Content-Length: 0\r\n\r\n",
        h = host(a)
    )
    .into_bytes()
}

#[test]
fn malformed_or_huge_proxy_authorization_gets_400_and_nothing_panics() {
    let mut w = World::single(|_| {});
    let (a, ua) = w.ua("alice", PASSWORD, PROXY);
    let (b, received) = w.body_uas("ok");
    w.bind(PROXY, "sip:bob@example.com", b);
    let other = "Proxy-Authorization: Digest username=\"alice\", realm=\"elsewhere\", nonce=\"n\", uri=\"sip:bob@example.com\", response=\"00\"\r\n";
    let cases: Vec<(&str, String)> = vec![
        ("truncated", "Proxy-Authorization: Digest realm=\r\n".to_owned()),
        (
            "unquoted",
            "Proxy-Authorization: Digest username=alice, realm=\"example.com\"\r\n".to_owned(),
        ),
        (
            "longvalue",
            format!(
                "Proxy-Authorization: Digest username=\"alice\", realm=\"example.com\", nonce=\"{}\", uri=\"sip:bob@example.com\", response=\"00\"\r\n",
                "a".repeat(5000)
            ),
        ),
        (
            "manyparams",
            format!(
                "Proxy-Authorization: Digest realm=\"example.com\"{}\r\n",
                (0..40).map(|i| format!(", x{i}=y")).collect::<String>()
            ),
        ),
        ("manyfields", other.repeat(17)),
        (
            "badnc",
            "Proxy-Authorization: Digest username=\"alice\", realm=\"example.com\", nonce=\"n\", uri=\"sip:bob@example.com\", response=\"00\", qop=auth, nc=zz, cnonce=\"c\"\r\n".to_owned(),
        ),
        (
            "qopwithoutcnonce",
            "Proxy-Authorization: Digest username=\"alice\", realm=\"example.com\", nonce=\"00000000000000000000000000000000000000000000000000000000000000000\", uri=\"sip:bob@example.com\", response=\"00\", qop=auth, nc=00000001\r\n".to_owned(),
        ),
    ];
    for (name, extra) in &cases {
        w.sim.inject(a, PROXY, raw_message(a, name, extra));
    }
    // Larger than a header line may be: the parser refuses the whole message.
    let huge = format!(
        "Proxy-Authorization: Digest realm=\"example.com\", nonce=\"{}\"\r\n",
        "b".repeat(20_000)
    );
    w.sim.inject(a, PROXY, raw_message(a, "huge", &huge));
    w.run_for(Duration::from_secs(2));
    let u = ua.borrow();
    let answer = |name: &str| {
        u.strays
            .iter()
            .find(|m| m.call_id() == format!("raw-{name}"))
            .and_then(Message::status)
    };
    for (name, _) in &cases {
        if *name == "qopwithoutcnonce" {
            // Not our nonce (and cnonce missing): the nonce is checked before the qop
            // parameters, so this one gets a fresh challenge.
            assert_eq!(answer(name), Some(407), "{name}");
            continue;
        }
        assert_eq!(answer(name), Some(400), "{name}");
    }
    assert!(
        matches!(answer("huge"), Some(400 | 513)),
        "{:?}",
        answer("huge")
    );
    for m in u.strays.iter().filter(|m| m.status() == Some(400)) {
        assert!(m.header(HeaderName::Warning).is_some());
    }
    assert!(received.borrow().is_empty());
    drop(u);
    // The endpoint still works.
    w.start(
        a,
        &ua,
        alice_call("MESSAGE", "sip:bob@example.com", "after"),
    );
    w.run_for(Duration::from_secs(2));
    assert_eq!(statuses(&ua.borrow().finals), vec![407, 200]);
}

#[test]
fn an_unknown_user_gets_the_same_answer_as_a_wrong_password() {
    let mut w = World::single(|_| {});
    let (b, _) = w.body_uas("ok");
    w.bind(PROXY, "sip:bob@example.com", b);
    let mut answers = Vec::new();
    for (username, password, from) in [
        ("alice", "not-the-password", "sip:alice@example.com"),
        ("nobody", PASSWORD, "sip:nobody@example.com"),
    ] {
        let (a, ua) = w.ua(username, password, PROXY);
        ua.borrow_mut().max_retries = 1;
        w.start(
            a,
            &ua,
            Call::new(
                "MESSAGE",
                "sip:bob@example.com",
                from,
                &format!("who-{username}"),
            ),
        );
        w.run_for(Duration::from_secs(2));
        let u = ua.borrow();
        assert_eq!(statuses(&u.finals), vec![407, 407], "{username}");
        answers.push(u.finals[1].clone());
    }
    // Same status, same header fields, same challenges but for the nonce.
    let shape = |m: &Message| {
        let names: Vec<String> = m.headers().map(|h| h.raw_name.to_owned()).collect();
        let challenges: Vec<String> = values(m, HeaderName::ProxyAuthenticate)
            .iter()
            .map(|v| {
                let c = Challenge::parse(v).unwrap();
                let nonce = c.nonce.as_deref().unwrap().to_owned();
                v.replace(&nonce, "N")
            })
            .collect();
        (
            m.status(),
            m.reason_phrase().map(str::to_owned),
            names,
            challenges,
        )
    };
    assert_eq!(shape(&answers[0]), shape(&answers[1]));
    // Only the operator's log tells them apart.
    let logs = w.logs(PROXY);
    assert!(
        logs.iter()
            .any(|l| l.contains("\"nobody\"") && l.contains("unknown user"))
    );
    assert!(
        logs.iter()
            .any(|l| l.contains("\"alice\"") && l.contains("wrong username or password"))
    );
}

#[test]
fn the_digest_uri_must_be_the_request_uri_unless_relaxed() {
    for (relaxed, expected) in [(false, vec![407, 407]), (true, vec![407, 200])] {
        let mut w = World::single(|c| {
            if relaxed {
                c.digest_uri_check = DigestUriCheck::Relaxed;
            }
        });
        let (a, ua) = w.ua("alice", PASSWORD, PROXY);
        let (b, _) = w.body_uas("ok");
        w.bind(PROXY, "sip:bob@example.com", b);
        ua.borrow_mut().max_retries = 1;
        let mut call = alice_call("MESSAGE", "sip:bob@example.com", "uri");
        // SIPp's habit: the transport target instead of the Request-URI.
        call.digest_uri = Some(format!("sip:{}:5060", host(PROXY)));
        w.start(a, &ua, call);
        w.run_for(Duration::from_secs(2));
        assert_eq!(statuses(&ua.borrow().finals), expected, "relaxed {relaxed}");
    }
}

#[test]
fn the_challenge_order_follows_the_configuration() {
    for (algorithms, expected) in [
        (vec![Algorithm::Md5], vec!["MD5"]),
        (
            vec![Algorithm::Sha256, Algorithm::Md5],
            vec!["SHA-256", "MD5"],
        ),
        (
            vec![Algorithm::Md5, Algorithm::Sha512_256],
            vec!["MD5", "SHA-512-256"],
        ),
    ] {
        let mut w = World::single(|c| c.algorithms = algorithms.clone());
        let (a, ua) = w.ua("alice", PASSWORD, PROXY);
        let (b, _) = w.body_uas("ok");
        w.bind(PROXY, "sip:bob@example.com", b);
        w.start(
            a,
            &ua,
            alice_call("MESSAGE", "sip:bob@example.com", "order"),
        );
        w.run_for(Duration::from_secs(2));
        let u = ua.borrow();
        assert_eq!(
            challenge_algorithms(&u.finals[0], HeaderName::ProxyAuthenticate),
            expected
        );
        assert_eq!(statuses(&u.finals), vec![407, 200], "{algorithms:?}");
        assert!(u.errors.is_empty(), "{:?}", u.errors);
    }
}

#[test]
fn sess_and_auth_int_rspauth_covers_the_response_body() {
    let mut w = World::single(|c| c.sess = true);
    let (a, ua) = w.ua("alice", PASSWORD, PROXY);
    let (b, received) = w.body_uas("the answer");
    w.bind(PROXY, "sip:bob@example.com", b);
    ua.borrow_mut().prefer_auth_int = true;
    let mut call = alice_call("MESSAGE", "sip:bob@example.com", "int");
    call.body = b"hello".to_vec();
    w.start(a, &ua, call);
    w.run_for(Duration::from_secs(2));
    let u = ua.borrow();
    assert_eq!(statuses(&u.finals), vec![407, 200], "{:?}", u.errors);
    assert_eq!(
        challenge_algorithms(&u.finals[0], HeaderName::ProxyAuthenticate),
        vec!["SHA-512-256-sess", "SHA-256-sess", "MD5-sess"]
    );
    let sent = values(&u.sent[1], HeaderName::ProxyAuthorization).remove(0);
    assert_eq!(Credentials::parse(&sent).unwrap().qop, Some("auth-int"));
    let info = values(&u.finals[1], HeaderName::ProxyAuthenticationInfo).remove(0);
    assert_eq!(
        AuthenticationInfo::parse(&info).unwrap().qop,
        Some("auth-int")
    );
    assert_eq!(u.finals[1].body_bytes(), b"the answer");
    assert_eq!(u.proven, vec![vec!["example.com".to_owned()]]);
    assert_eq!(received.borrow()[0].body_bytes(), b"hello");
}

#[test]
fn foreign_senders_reach_our_users_unchallenged_but_are_not_relayed() {
    let mut w = World::single(|_| {});
    let (a, ua) = w.ua("eve", "x", PROXY);
    let (b, received) = w.body_uas("ok");
    w.bind(PROXY, "sip:bob@example.com", b);
    w.start(
        a,
        &ua,
        Call::new(
            "MESSAGE",
            "sip:bob@example.com",
            "sip:eve@elsewhere.example",
            "in",
        ),
    );
    w.run_for(Duration::from_secs(2));
    assert_eq!(statuses(&ua.borrow().finals), vec![200]);
    assert_eq!(received.borrow().len(), 1);
    w.start(
        a,
        &ua,
        Call::new(
            "MESSAGE",
            &format!("sip:carol@{}:5060", host(b)),
            "sip:eve@elsewhere.example",
            "relay",
        ),
    );
    w.run_for(Duration::from_secs(2));
    assert_eq!(statuses(&ua.borrow().finals), vec![200, 403]);
    assert_eq!(received.borrow().len(), 1);
}

#[test]
fn a_fixed_realm_is_used_for_every_request() {
    let mut w = World::new(vec![(
        PROXY,
        digest_endpoint(
            PROXY,
            "example.com",
            vec![user(
                "alice",
                "vouch test",
                "sip:alice@example.com",
                PASSWORD,
            )],
            |c| c.realm = RealmChoice::Fixed("vouch test".to_owned()),
        ),
    )]);
    let (a, ua) = w.ua("alice", PASSWORD, PROXY);
    let (b, _) = w.body_uas("ok");
    w.bind(PROXY, "sip:bob@example.com", b);
    w.start(
        a,
        &ua,
        alice_call("MESSAGE", "sip:bob@example.com", "fixed"),
    );
    w.run_for(Duration::from_secs(2));
    let u = ua.borrow();
    assert_eq!(statuses(&u.finals), vec![407, 200]);
    assert_eq!(u.proven, vec![vec!["vouch test".to_owned()]]);
}

#[test]
fn users_can_be_replaced_at_run_time() {
    let mut w = World::new(vec![(
        PROXY,
        digest_endpoint(PROXY, "example.com", Vec::new(), |_| {}),
    )]);
    let (a, ua) = w.ua("alice", PASSWORD, PROXY);
    let (b, _) = w.body_uas("ok");
    w.bind(PROXY, "sip:bob@example.com", b);
    ua.borrow_mut().max_retries = 1;
    w.start(
        a,
        &ua,
        alice_call("MESSAGE", "sip:bob@example.com", "nouser"),
    );
    w.run_for(Duration::from_secs(2));
    assert_eq!(statuses(&ua.borrow().finals), vec![407, 407]);
    w.sim
        .endpoints
        .get_mut(&PROXY)
        .unwrap()
        .engine
        .set_users(vec![alice()]);
    w.start(
        a,
        &ua,
        alice_call("MESSAGE", "sip:bob@example.com", "withuser"),
    );
    w.run_for(Duration::from_secs(2));
    // The UA still holds the last nonce: its credentials are accepted at once.
    assert_eq!(statuses(&ua.borrow().finals), vec![407, 407, 200]);
}

// ---- an independent check of rspauth ----------------------------------------------------

/// Runs `tests/rspauth_check.py` on a capture; true when it accepts it.
fn python_accepts(capture: &std::path::Path, username: &str, password: &str) -> bool {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rspauth_check.py");
    let out = std::process::Command::new("python3")
        .arg(&script)
        .arg(capture)
        .arg("--username")
        .arg(username)
        .arg("--password")
        .arg(password)
        .output()
        .expect("python3 runs (it is needed for this test)");
    eprintln!(
        "rspauth_check.py on {}:\n{}{}",
        capture.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.status.success()
}

fn write_capture(
    name: &str,
    challenge: &Message,
    request: &Message,
    ok: &Message,
) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join(name);
    let mut bytes = Vec::new();
    for (label, m) in [
        ("CHALLENGE", challenge),
        ("REQUEST", request),
        ("RESPONSE", ok),
    ] {
        bytes.extend_from_slice(
            format!("=====vouch-capture {label} {}=====\n", m.as_bytes().len()).as_bytes(),
        );
        bytes.extend_from_slice(m.as_bytes());
        bytes.push(b'\n');
    }
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn a_captured_exchange_verifies_with_an_independent_python_script() {
    // An INVITE with qop=auth, and a MESSAGE with -sess and auth-int over both bodies.
    let mut captures = Vec::new();
    for (sess, auth_int) in [(false, false), (true, true)] {
        let mut w = World::single(|c| c.sess = sess);
        let (a, ua) = w.ua("alice", PASSWORD, PROXY);
        let method = if auth_int { "MESSAGE" } else { "INVITE" };
        if auth_int {
            let (b, _) = w.body_uas("a reply body");
            w.bind(PROXY, "sip:bob@example.com", b);
        } else {
            let (b, _) = w.phone("bob");
            w.bind(PROXY, "sip:bob@example.com", b);
        }
        ua.borrow_mut().prefer_auth_int = auth_int;
        let mut call = alice_call(method, "sip:bob@example.com", &format!("py-{method}"));
        if auth_int {
            call.body = b"a request body".to_vec();
        }
        w.start(a, &ua, call);
        w.run_for(Duration::from_secs(5));
        let u = ua.borrow();
        assert_eq!(statuses(&u.finals), vec![407, 200], "{:?}", u.errors);
        let path = write_capture(
            &format!("rspauth_capture_{}.txt", method.to_ascii_lowercase()),
            &u.finals[0],
            &u.sent[1],
            &u.finals[1],
        );
        captures.push((path, u.finals.clone(), u.sent[1].clone()));
    }
    for (path, _, _) in &captures {
        assert!(
            python_accepts(path, "alice", PASSWORD),
            "{}",
            path.display()
        );
    }
    // The script is not vacuous: a wrong password, or one flipped rspauth digit, fails it.
    let (path, finals, request) = &captures[0];
    assert!(!python_accepts(path, "alice", "not-the-password"));
    let info = values(&finals[1], HeaderName::ProxyAuthenticationInfo).remove(0);
    let rspauth = AuthenticationInfo::parse(&info)
        .unwrap()
        .rspauth
        .unwrap()
        .to_owned();
    let flipped_digit = if rspauth.starts_with('0') { "1" } else { "0" };
    let flipped = format!("{flipped_digit}{}", &rspauth[1..]);
    let mut e = finals[1].edit();
    e.replace(
        "Proxy-Authentication-Info",
        &info.replace(&rspauth, &flipped),
    );
    let tampered = write_capture(
        "rspauth_capture_tampered.txt",
        &finals[0],
        request,
        &e.build().unwrap(),
    );
    assert!(!python_accepts(&tampered, "alice", PASSWORD));
}

// ---- robustness ---------------------------------------------------------------------------

/// Drains an endpoint; the status codes it sent, and when to call it next.
fn drain(ep: &mut Endpoint) -> (Vec<Message>, Option<std::time::Instant>) {
    let mut sent = Vec::new();
    for _ in 0..10_000 {
        match ep.poll_output() {
            vouch_proto::Output::Transmit { bytes, .. } => {
                if let Ok(m) = Message::parse(bytes) {
                    sent.push(m);
                }
            }
            vouch_proto::Output::Event(_) => {}
            vouch_proto::Output::Timeout(at) => return (sent, at),
        }
    }
    panic!("the endpoint never stopped producing output");
}

#[test]
fn mutated_credentials_never_panic() {
    use vouch_auth::digest::{Responder, ResponderConfig};
    let t0 = std::time::Instant::now();
    let mut ep = digest_endpoint(PROXY, "example.com", vec![alice()], |c| {
        c.sess = true;
    });
    let from = Peer::new(TransportKind::Udp, sock(0));
    let request = |method: &str, ruri: &str, branch: &str, auth: &str| {
        format!(
            "{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP {h}:5060;branch=z9hG4bK{branch};rport\r\nMax-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=m\r\nTo: <sip:alice@example.com>\r\nCall-ID: mut-{branch}\r\nCSeq: 1 {method}\r\nContact: <sip:alice@{h}:5060>\r\n{auth}Content-Length: 5\r\n\r\nhello",
            h = host(0)
        )
        .into_bytes()
    };
    // Real challenges, answered properly, are the seeds of the mutations.
    let mut seeds = Vec::new();
    for (method, ruri, header) in [
        ("REGISTER", "sip:example.com", "Authorization"),
        ("MESSAGE", "sip:bob@192.0.2.7", "Proxy-Authorization"),
    ] {
        ep.handle_receive(
            t0,
            WALL0,
            from.clone(),
            request(method, ruri, "seed", "").into(),
        );
        let (sent, _) = drain(&mut ep);
        let challenges: Vec<String> = sent
            .iter()
            .flat_map(|m| {
                values(m, HeaderName::WwwAuthenticate)
                    .into_iter()
                    .chain(values(m, HeaderName::ProxyAuthenticate))
            })
            .map(|v| v.replace("qop=\"auth,auth-int\"", "qop=\"auth-int\""))
            .collect();
        let mut r = Responder::new(ResponderConfig {
            username: "alice".to_owned(),
            password: PASSWORD.to_owned(),
            algorithms: Algorithm::STRONGEST_FIRST.to_vec(),
            require_mutual_auth: true,
        });
        let parsed: Vec<Challenge<'_>> = challenges
            .iter()
            .map(|c| Challenge::parse(c).unwrap())
            .collect();
        r.handle_challenges(&parsed).unwrap();
        for (i, v) in r.authorize(method, ruri, b"hello", 1).iter().enumerate() {
            seeds.push(request(
                method,
                ruri,
                &format!("s{i}"),
                &format!("{header}: {v}\r\n"),
            ));
        }
    }
    assert_eq!(seeds.len(), 2);
    // The REGISTER seed itself is accepted (the mutations below are then replays or worse).
    ep.handle_receive(t0, WALL0, from.clone(), seeds[0].clone().into());
    let (sent, _) = drain(&mut ep);
    assert_eq!(statuses(&sent), vec![200]);
    assert_eq!(values(&sent[0], HeaderName::AuthenticationInfo).len(), 1);
    let mut rng = sim::XorShift::new(7);
    let mut t = Duration::ZERO;
    let mut answered = 0;
    for i in 0..5_000u64 {
        let mut m = seeds[rng.below(seeds.len() as u64) as usize].clone();
        // Give each one its own transaction.
        let branch = format!("z9hG4bKmut{i:06}");
        if let Some(at) = m
            .windows(13)
            .position(|w| w == b"z9hG4bKs0;rpo" || w == b"z9hG4bKs1;rpo")
        {
            m.splice(at..at + 9, branch.bytes());
        }
        for _ in 0..=rng.below(4) {
            if m.is_empty() {
                break;
            }
            let at = rng.below(m.len() as u64) as usize;
            match rng.below(5) {
                0 => m[at] = rng.next_u64() as u8,
                1 => m.insert(at, b"\r\n:;,<>@\"=% "[rng.below(12) as usize]),
                2 => {
                    m.remove(at);
                }
                3 => m.truncate(at),
                _ => {
                    let end = (at + rng.below(400) as usize).min(m.len());
                    let chunk = m[at..end].to_vec();
                    m.splice(at..at, chunk);
                }
            }
        }
        t += Duration::from_millis(rng.below(200));
        ep.handle_receive(t0 + t, WALL0 + t.as_secs() as i64, from.clone(), m.into());
        answered += drain(&mut ep).0.len();
    }
    assert!(answered > 1_000, "{answered}");
    // Every timer runs out: nothing is left behind.
    let mut next = drain(&mut ep).1;
    let mut rounds = 0;
    while let Some(at) = next {
        ep.handle_timeout(at, WALL0 + at.duration_since(t0).as_secs() as i64);
        next = drain(&mut ep).1;
        rounds += 1;
        assert!(rounds < 100_000, "timers never stop");
    }
}

/// RFC 4474 §5 in the proxy: an authenticated INVITE is dated and signed before forwarding,
/// and the callee side verifies it (certificate chain, From host, signature, Date); a Date
/// too far from the proxy's clock is refused with 403; an unauthenticated request from a
/// foreign domain is not signed.
#[test]
fn authenticated_requests_are_signed_by_the_authentication_service() {
    use std::sync::Arc;
    use vouch_auth::identity::{RsaSigningKey, TrustStore, Verifier, VerifierConfig};
    use vouch_proto::AuthenticationService;

    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["example.com".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let signing = Arc::new(RsaSigningKey::from_der(&key.serialize_der()).unwrap());
    let mut w = World::single(|_| {});
    w.sim
        .endpoints
        .get_mut(&PROXY)
        .unwrap()
        .engine
        .set_authentication_service(Some(AuthenticationService::new(
            signing,
            "https://example.com/cert.der",
        )));
    let (a, ua) = w.ua("alice", PASSWORD, PROXY);
    let (b, bob) = w.phone("bob");
    w.bind(PROXY, "sip:bob@example.com", b);
    w.start(
        a,
        &ua,
        alice_call("INVITE", "sip:bob@example.com", "signed-1"),
    );
    w.run_for(Duration::from_secs(5));
    assert_eq!(statuses(&ua.borrow().finals), vec![407, 200]);
    let invite = bob.borrow().requests[0].clone();
    assert!(
        invite.header(HeaderName::Date).is_some(),
        "the service adds Date"
    );
    assert_eq!(
        values(&invite, HeaderName::IdentityInfo),
        vec!["<https://example.com/cert.der>;alg=rsa-sha1".to_owned()]
    );
    let mut trust = TrustStore::new();
    trust.add_pem_or_der(cert.der()).unwrap();
    let mut verifier = Verifier::new(VerifierConfig::default(), trust);
    let verified = verifier
        .verify(&invite, cert.der(), &[], WALL0 + 5)
        .expect("the callee verifies the proxy's signature");
    assert_eq!(verified.aor(), "sip:alice@example.com");

    // A Date an hour off the proxy's clock is refused, not signed.
    let mut stale = alice_call("INVITE", "sip:bob@example.com", "signed-2");
    stale.extra.push((
        "Date".to_owned(),
        vouch_msg::headers::date::format_sip_date(WALL0 - 3600).unwrap(),
    ));
    w.start(a, &ua, stale);
    w.run_for(Duration::from_secs(5));
    let finals = statuses(&ua.borrow().finals);
    assert_eq!(finals.last(), Some(&403), "{finals:?}");
    assert_eq!(
        bob.borrow().received("INVITE"),
        1,
        "the stale request was not forwarded"
    );
}
