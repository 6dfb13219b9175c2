//! The registrar (RFC 3261 §10.3) and stateful proxy (§16, RFC 3581) of [`Endpoint`], driven
//! on a virtual network in virtual time with test phones around it.

#![allow(clippy::unwrap_used)]

mod sim;
mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use sim::{Addr, NetConfig, Network, Sim, WALL0, host, sock};
use support::phone::{Phone, PhoneLog, contact_of, register, request};
use vouch_msg::{HeaderName, Limits, Message, Method, Transport};
use vouch_proto::transaction::{
    Reliability, TransactionConfig, TransactionEvent, TransactionLayer,
};
use vouch_proto::{
    Binding, Endpoint, EndpointConfig, Event, Output, Peer, ResolveId, TransportKind,
};

use std::cell::RefCell;
use std::rc::Rc;

const PROXY: Addr = 100;

fn config(seed: u64) -> EndpointConfig {
    EndpointConfig {
        domains: vec!["example.com".to_owned()],
        local: vec![
            (TransportKind::Udp, sock(PROXY)),
            (TransportKind::Tcp, sock(PROXY)),
        ],
        advertised_host: None,
        static_hosts: Vec::new(),
        min_expires: 60,
        max_expires: 3600,
        default_expires: 3600,
        transaction: TransactionConfig::default(),
        limits: vouch_msg::Limits::DEFAULT,
        seed,
        ..EndpointConfig::default()
    }
}

struct World {
    sim: Sim,
    rel: Reliability,
}

impl World {
    fn new(seed: u64, net: NetConfig, rel: Reliability) -> Self {
        Self::with_endpoint(seed, net, rel, Endpoint::new(config(seed)))
    }

    fn with_endpoint(seed: u64, net: NetConfig, rel: Reliability, ep: Endpoint) -> Self {
        let mut sim = Sim::new(Network::new(net, seed), rel);
        sim.add_endpoint(PROXY, ep);
        World { sim, rel }
    }

    fn perfect() -> Self {
        Self::new(1, NetConfig::PERFECT, Reliability::Unreliable)
    }

    /// Adds a phone; returns its address and log.
    fn phone(
        &mut self,
        user: &str,
        setup: impl FnOnce(&mut Phone),
    ) -> (Addr, Rc<RefCell<PhoneLog>>) {
        let me = self.sim.nodes.len();
        let mut p = Phone::new(me, user, self.rel);
        setup(&mut p);
        let log = p.log.clone();
        let at = self.sim.add(
            TransactionLayer::new(TransactionConfig::default()),
            Box::new(p),
        );
        assert_eq!(at, me);
        (me, log)
    }

    /// Sends a request from node `from` to the proxy in a new client transaction.
    fn send(&mut self, from: Addr, m: Message) {
        let rel = self.rel;
        self.sim.act(from, |ctx| {
            ctx.layer
                .send_request(ctx.now, m, PROXY, rel)
                .expect("transaction starts");
        });
    }

    /// Runs for `d` of virtual time.
    fn run_for(&mut self, d: Duration) {
        let end = self.sim.now.duration_since(self.sim.t0) + d;
        self.sim.run(end);
        // Idle time passes too.
        self.sim.now = self.sim.now.max(self.sim.t0 + end);
    }

    fn register(&mut self, from: Addr, user: &str, cseq: u32, extra: &str) {
        let m = register(from, user, &format!("reg-{from}"), cseq, extra);
        self.send(from, m);
        self.run_for(Duration::from_secs(1));
    }

    fn events(&self) -> &[Event] {
        self.sim.events(PROXY)
    }

    fn forwarded(&self, method: &str) -> usize {
        self.events()
            .iter()
            .filter(|e| matches!(e, Event::Forwarded { method: m, .. } if m == method))
            .count()
    }

    fn endpoint(&self) -> &Endpoint {
        &self.sim.endpoints[&PROXY].engine
    }
}

fn last_final(log: &Rc<RefCell<PhoneLog>>) -> Message {
    log.borrow()
        .finals
        .last()
        .cloned()
        .expect("a final response")
}

fn contacts_of(m: &Message) -> Vec<String> {
    m.headers_named(HeaderName::Contact)
        .map(|h| h.value.to_owned())
        .collect()
}

// ---- registrar (§10.3) --------------------------------------------------------------------

#[test]
fn register_adds_binding_and_lists_it_with_expires() {
    let mut w = World::perfect();
    let (bob, log) = w.phone("bob", |_| {});
    w.register(bob, "bob", 1, &contact_of(bob, "bob"));
    let r = last_final(&log);
    assert_eq!(r.status(), Some(200));
    assert_eq!(
        contacts_of(&r),
        vec![format!("<sip:bob@{}:5060>;expires=3600", host(bob))]
    );
    assert!(r.to_tag().is_some());
    assert!(r.header(HeaderName::Date).is_some());
    let changed: Vec<_> = w
        .events()
        .iter()
        .filter_map(|e| match e {
            Event::BindingsChanged { aor, bindings } => Some((aor.clone(), bindings.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].0, "sip:bob@example.com");
    let b = &changed[0].1[0];
    assert_eq!(b.expires_at, WALL0 + 3600);
    assert_eq!(b.source.to_string(), format!("udp:{}", sock(bob)));
    assert_eq!(b.cseq, 1);
    assert_eq!(b.q, 1000);
}

#[test]
fn register_refresh_updates_expiry_and_query_lists_it() {
    let mut w = World::perfect();
    let (bob, log) = w.phone("bob", |_| {});
    w.register(bob, "bob", 1, &contact_of(bob, "bob"));
    w.run_for(Duration::from_secs(100));
    w.register(
        bob,
        "bob",
        2,
        &format!("{}Expires: 600\r\n", contact_of(bob, "bob")),
    );
    assert_eq!(
        contacts_of(&last_final(&log)),
        vec![format!("<sip:bob@{}:5060>;expires=600", host(bob))]
    );
    // A query (no Contact) lists the binding with its remaining time.
    w.run_for(Duration::from_secs(100));
    w.register(bob, "bob", 3, "");
    let r = last_final(&log);
    assert_eq!(r.status(), Some(200));
    let c = contacts_of(&r);
    assert_eq!(c.len(), 1);
    assert!(
        c[0].ends_with("expires=499") || c[0].ends_with("expires=500"),
        "{c:?}"
    );
    assert_eq!(w.endpoint().bindings("sip:bob@example.com").len(), 1);
}

#[test]
fn register_with_expires_zero_removes_binding() {
    let mut w = World::perfect();
    let (bob, log) = w.phone("bob", |_| {});
    w.register(bob, "bob", 1, &contact_of(bob, "bob"));
    w.register(
        bob,
        "bob",
        2,
        &format!("{}Expires: 0\r\n", contact_of(bob, "bob")),
    );
    let r = last_final(&log);
    assert_eq!(r.status(), Some(200));
    assert!(contacts_of(&r).is_empty());
    assert!(w.endpoint().bindings("sip:bob@example.com").is_empty());
    assert!(matches!(
        w.events().iter().rev().find(|e| matches!(e, Event::BindingsChanged { .. })),
        Some(Event::BindingsChanged { bindings, .. }) if bindings.is_empty()
    ));
}

#[test]
fn register_star_removes_all_bindings_only_with_expires_zero() {
    let mut w = World::perfect();
    let (bob, log) = w.phone("bob", |_| {});
    w.register(
        bob,
        "bob",
        1,
        "Contact: <sip:bob@10.9.9.9>\r\nContact: <sip:bob@10.9.9.8>\r\n",
    );
    assert_eq!(contacts_of(&last_final(&log)).len(), 2);
    w.register(bob, "bob", 2, "Contact: *\r\n");
    let r = last_final(&log);
    assert_eq!(r.status(), Some(400));
    assert!(r.header(HeaderName::Warning).is_some());
    w.register(bob, "bob", 3, "Contact: *\r\nExpires: 0\r\n");
    assert_eq!(last_final(&log).status(), Some(200));
    assert!(w.endpoint().bindings("sip:bob@example.com").is_empty());
}

#[test]
fn register_too_brief_gets_423_with_min_expires() {
    let mut w = World::perfect();
    let (bob, log) = w.phone("bob", |_| {});
    w.register(
        bob,
        "bob",
        1,
        &format!("{}Expires: 30\r\n", contact_of(bob, "bob")),
    );
    let r = last_final(&log);
    assert_eq!(r.status(), Some(423));
    assert_eq!(
        r.headers_named_str("Min-Expires").next().unwrap().value,
        "60"
    );
    assert!(w.endpoint().bindings("sip:bob@example.com").is_empty());
}

#[test]
fn register_with_stale_cseq_fails_with_500() {
    let mut w = World::perfect();
    let (bob, log) = w.phone("bob", |_| {});
    w.register(bob, "bob", 5, &contact_of(bob, "bob"));
    // Same Call-ID, lower CSeq (a new transaction: different branch).
    let m = register(
        bob,
        "bob",
        &format!("reg-{bob}"),
        4,
        &format!("{}Expires: 0\r\nX-Try: again\r\n", contact_of(bob, "bob")),
    );
    w.send(bob, m);
    w.run_for(Duration::from_secs(1));
    assert_eq!(last_final(&log).status(), Some(500));
    assert_eq!(w.endpoint().bindings("sip:bob@example.com").len(), 1);
}

#[test]
fn binding_expires_in_wall_time() {
    let mut w = World::perfect();
    let (bob, _) = w.phone("bob", |_| {});
    w.register(
        bob,
        "bob",
        1,
        &format!("{}Expires: 120\r\n", contact_of(bob, "bob")),
    );
    assert_eq!(w.endpoint().bindings("sip:bob@example.com").len(), 1);
    w.run_for(Duration::from_secs(130));
    assert!(w.endpoint().bindings("sip:bob@example.com").is_empty());
    let last = w
        .events()
        .iter()
        .rev()
        .find(|e| matches!(e, Event::BindingsChanged { .. }));
    assert!(
        matches!(last, Some(Event::BindingsChanged { aor, bindings }) if aor == "sip:bob@example.com" && bindings.is_empty())
    );
}

#[test]
fn register_with_non_sip_contact_gets_400() {
    let mut w = World::perfect();
    let (bob, log) = w.phone("bob", |_| {});
    w.register(bob, "bob", 1, "Contact: <mailto:bob@example.com>\r\n");
    assert_eq!(last_final(&log).status(), Some(400));
}

#[test]
fn restored_bindings_route_calls() {
    let mut ep = Endpoint::new(config(3));
    let mut w0 = World::perfect();
    let (_alice, _) = w0.phone("alice", |_| {});
    let (bob, _) = w0.phone("bob", |_| {});
    w0.register(bob, "bob", 1, &contact_of(bob, "bob"));
    let stored = w0.endpoint().bindings("sip:bob@example.com");
    // The driver stores Peer as text and parses it back.
    let restored: Vec<_> = stored
        .into_iter()
        .map(|mut b| {
            b.source = b.source.to_string().parse().unwrap();
            b
        })
        .collect();
    ep.restore_bindings(restored);
    let mut w = World::with_endpoint(3, NetConfig::PERFECT, Reliability::Unreliable, ep);
    let (alice, alice_log) = w.phone("alice", |_| {});
    let (_bob, bob_log) = w.phone("bob", |_| {});
    w.send(
        alice,
        request(
            alice,
            "INVITE",
            "sip:bob@example.com",
            "alice",
            "call-r",
            "",
        ),
    );
    w.run_for(Duration::from_secs(5));
    assert_eq!(alice_log.borrow().finals_for("INVITE"), vec![200]);
    assert_eq!(bob_log.borrow().received("INVITE"), 1);
}

// ---- proxy (§16) --------------------------------------------------------------------------

/// Alice (node 0) and Bob (node 1, registered) around the proxy.
fn call_world(
    seed: u64,
    net: NetConfig,
    rel: Reliability,
    bob_setup: impl FnOnce(&mut Phone),
) -> (World, Rc<RefCell<PhoneLog>>, Rc<RefCell<PhoneLog>>) {
    let mut w = World::new(seed, net, rel);
    let (_alice, alice) = w.phone("alice", |p| p.bye_after = Some(Duration::from_secs(2)));
    let (bob, bob_log) = w.phone("bob", bob_setup);
    w.register(bob, "bob", 1, &contact_of(bob, "bob"));
    w.run_for(Duration::from_secs(40));
    (w, alice, bob_log)
}

fn invite_bob(w: &mut World, call_id: &str) {
    w.send(
        0,
        request(0, "INVITE", "sip:bob@example.com", "alice", call_id, ""),
    );
}

#[test]
fn invite_reaches_registered_phone_and_ack_and_bye_follow_record_route() {
    let (mut w, alice, bob) = call_world(7, NetConfig::PERFECT, Reliability::Unreliable, |_| {});
    invite_bob(&mut w, "call-1");
    w.run_for(Duration::from_secs(60));
    let a = alice.borrow();
    assert_eq!(a.statuses("INVITE"), vec![100, 180, 200]);
    assert_eq!(a.finals_for("BYE"), vec![200]);
    let b = bob.borrow();
    // The INVITE bob got: R-URI is his contact, proxy Via on top (with rport), alice's Via
    // below with received, Record-Route of the proxy, Max-Forwards decremented.
    let inv = b
        .requests
        .iter()
        .find(|m| m.method() == Some(Method::Invite))
        .unwrap();
    assert_eq!(
        inv.request_uri_str(),
        Some(format!("sip:bob@{}:5060", host(1)).as_str())
    );
    let vias = inv.vias();
    assert_eq!(vias.len(), 2);
    assert_eq!(vias[0].host_str(), host(PROXY));
    assert!(vias[0].branch().unwrap().starts_with("z9hG4bK"));
    assert_eq!(vias[1].received(), Some(host(0).as_str()));
    assert_eq!(vias[1].rport(), Some(Some(5060)));
    assert_eq!(
        inv.header(HeaderName::RecordRoute).unwrap().value,
        format!("<sip:{}:5060;transport=udp;lr>", host(PROXY))
    );
    assert_eq!(inv.max_forwards(), Some(69));
    // ACK and BYE went through the proxy (Route), arriving with its Via.
    assert_eq!(b.acks.len(), 1);
    assert_eq!(b.acks[0].top_via().unwrap().host_str(), host(PROXY));
    assert!(
        b.acks[0].header(HeaderName::Route).is_none(),
        "our Route entry is removed"
    );
    let bye = b
        .requests
        .iter()
        .find(|m| m.method() == Some(Method::Bye))
        .unwrap();
    assert_eq!(bye.top_via().unwrap().host_str(), host(PROXY));
    assert_eq!(w.forwarded("ACK"), 1);
    assert_eq!(w.forwarded("BYE"), 1);
    // What alice sent carried the proxy's Route.
    assert!(a.sent_in_dialog.iter().all(|m| m.route().len() == 1));
    drop((a, b));
    w.run_for(Duration::from_secs(60));
    assert!(
        w.endpoint().is_idle(),
        "every transaction and context ended"
    );
}

#[test]
fn cancel_before_answer_gives_487() {
    let mut w = World::perfect();
    let (alice, alice_log) = w.phone("alice", |p| p.cancel_on_ringing = true);
    let (bob, bob_log) = w.phone("bob", |p| p.answer_after = Duration::from_secs(30));
    w.register(bob, "bob", 1, &contact_of(bob, "bob"));
    w.send(
        alice,
        request(
            alice,
            "INVITE",
            "sip:bob@example.com",
            "alice",
            "call-c",
            "",
        ),
    );
    w.run_for(Duration::from_secs(60));
    let a = alice_log.borrow();
    assert!(a.cancel_sent);
    assert_eq!(a.finals_for("CANCEL"), vec![200]);
    assert_eq!(a.finals_for("INVITE"), vec![487]);
    assert_eq!(bob_log.borrow().received("CANCEL"), 1);
    assert_eq!(
        w.forwarded("CANCEL"),
        0,
        "CANCEL is hop by hop, not forwarded"
    );
}

#[test]
fn unknown_user_gets_404() {
    let mut w = World::perfect();
    let (alice, log) = w.phone("alice", |_| {});
    w.send(
        alice,
        request(
            alice,
            "INVITE",
            "sip:nobody@example.com",
            "alice",
            "c404",
            "",
        ),
    );
    w.run_for(Duration::from_secs(5));
    assert_eq!(log.borrow().finals_for("INVITE"), vec![404]);
}

#[test]
fn known_user_without_binding_gets_480() {
    let mut ep = Endpoint::new(config(1));
    ep.provision_user("sip:carol@example.com");
    let mut w = World::with_endpoint(1, NetConfig::PERFECT, Reliability::Unreliable, ep);
    let (alice, log) = w.phone("alice", |_| {});
    w.send(
        alice,
        request(
            alice,
            "INVITE",
            "sip:carol@example.com",
            "alice",
            "c480",
            "",
        ),
    );
    w.run_for(Duration::from_secs(5));
    assert_eq!(log.borrow().finals_for("INVITE"), vec![480]);
    // An AoR whose registration lapsed is known too.
    let (bob, _) = w.phone("bob", |_| {});
    w.register(
        bob,
        "bob",
        1,
        &format!("{}Expires: 60\r\n", contact_of(bob, "bob")),
    );
    w.run_for(Duration::from_secs(70));
    w.send(
        alice,
        request(alice, "MESSAGE", "sip:bob@example.com", "alice", "m480", ""),
    );
    w.run_for(Duration::from_secs(5));
    assert_eq!(log.borrow().finals_for("MESSAGE"), vec![480]);
}

#[test]
fn max_forwards_zero_gets_483() {
    let (mut w, alice, bob) = call_world(1, NetConfig::PERFECT, Reliability::Unreliable, |_| {});
    let m = request(0, "INVITE", "sip:bob@example.com", "alice", "c483", "");
    let m = {
        let mut b = m.edit();
        b.replace("Max-Forwards", "0");
        b.build().unwrap()
    };
    w.send(0, m);
    w.run_for(Duration::from_secs(5));
    assert_eq!(alice.borrow().finals_for("INVITE"), vec![483]);
    assert_eq!(bob.borrow().received("INVITE"), 0);
}

/// A node that sends every INVITE it gets straight back to the proxy, unchanged but for its
/// Via and Max-Forwards, and relays the response.
struct Bouncer {
    upstream: Vec<(
        vouch_proto::transaction::ClientTransactionKey,
        vouch_proto::transaction::ServerTransactionKey,
    )>,
    me: Addr,
}

impl sim::Tu for Bouncer {
    fn on_event(&mut self, ctx: &mut sim::Ctx<'_>, event: TransactionEvent<Addr>) {
        match event {
            TransactionEvent::Request { key, request, .. }
                if request.method() == Some(Method::Invite) =>
            {
                let mut b = request.edit();
                b.push_front(
                    "Via",
                    &format!(
                        "SIP/2.0/UDP {}:5060;branch=z9hG4bKbounce{}",
                        host(self.me),
                        self.upstream.len()
                    ),
                );
                b.replace(
                    "Max-Forwards",
                    &(request.max_forwards().unwrap_or(70) - 1).to_string(),
                );
                let fwd = b.build().unwrap();
                let ck = ctx
                    .layer
                    .send_request(ctx.now, fwd, PROXY, Reliability::Unreliable)
                    .unwrap();
                self.upstream.push((ck, key));
            }
            TransactionEvent::Response { key, response } => {
                let Some((_, sk)) = self.upstream.iter().find(|(c, _)| *c == key) else {
                    return;
                };
                if response.status().unwrap_or(0) >= 200 {
                    let mut b = response.edit();
                    b.remove_first("Via");
                    let _ = ctx.layer.respond(ctx.now, sk, b.build().unwrap());
                }
            }
            _ => {}
        }
    }
}

#[test]
fn looped_request_gets_482() {
    let mut w = World::perfect();
    let (alice, log) = w.phone("alice", |_| {});
    let bouncer = w.sim.add(
        TransactionLayer::new(TransactionConfig::default()),
        Box::new(Bouncer {
            upstream: Vec::new(),
            me: 1,
        }),
    );
    assert_eq!(bouncer, 1);
    w.send(
        alice,
        request(
            alice,
            "INVITE",
            &format!("sip:x@{}", host(bouncer)),
            "alice",
            "loop",
            "",
        ),
    );
    w.run_for(Duration::from_secs(10));
    assert_eq!(log.borrow().finals_for("INVITE"), vec![482]);
    assert_eq!(
        w.forwarded("INVITE"),
        1,
        "forwarded once, refused the second time"
    );
}

#[test]
fn busy_callee_486_is_passed_upstream() {
    let (mut w, alice, _) = call_world(1, NetConfig::PERFECT, Reliability::Unreliable, |p| {
        p.final_status = 486
    });
    invite_bob(&mut w, "busy");
    w.run_for(Duration::from_secs(10));
    let a = alice.borrow();
    assert_eq!(a.statuses("INVITE"), vec![100, 180, 486]);
    // The 486 keeps the callee's To tag (§16.7 step 6) and lost the proxy's Via.
    let r = a.finals.iter().find(|m| m.status() == Some(486)).unwrap();
    assert_eq!(r.to_tag(), Some("tag1"));
    assert_eq!(r.via_count(), 1);
}

#[test]
fn unreachable_callee_times_out_with_408() {
    let mut w = World::perfect();
    let (alice, log) = w.phone("alice", |_| {});
    // Bob registered from an address where no one listens any more.
    let gone: Addr = 50;
    w.sim.inject(
        gone,
        PROXY,
        register(gone, "bob", "reg-gone", 1, &contact_of(gone, "bob"))
            .as_bytes()
            .to_vec(),
    );
    w.run_for(Duration::from_secs(1));
    assert_eq!(w.endpoint().bindings("sip:bob@example.com").len(), 1);
    w.send(
        alice,
        request(alice, "INVITE", "sip:bob@example.com", "alice", "c408", ""),
    );
    w.run_for(Duration::from_secs(60));
    assert_eq!(log.borrow().finals_for("INVITE"), vec![408]);
}

#[test]
fn ringing_for_ever_ends_with_408_after_timer_c() {
    let (mut w, alice, bob) = call_world(1, NetConfig::PERFECT, Reliability::Unreliable, |p| {
        p.final_status = 0
    });
    let start = w.sim.now;
    invite_bob(&mut w, "ring");
    w.run_for(Duration::from_secs(400));
    assert_eq!(alice.borrow().finals_for("INVITE"), vec![408]);
    assert_eq!(
        bob.borrow().received("CANCEL"),
        1,
        "Timer C CANCELs the branch"
    );
    let _ = start;
}

#[test]
fn a_configured_timer_c_is_a_no_answer_timeout() {
    let mut cfg = config(1);
    cfg.transaction.timer_c = Duration::from_secs(30);
    let mut w = World::with_endpoint(
        1,
        NetConfig::PERFECT,
        Reliability::Unreliable,
        Endpoint::new(cfg),
    );
    let (_, alice) = w.phone("alice", |_| {});
    let (bob, bob_log) = w.phone("bob", |p| p.final_status = 0);
    w.register(bob, "bob", 1, &contact_of(bob, "bob"));
    w.run_for(Duration::from_secs(1));
    invite_bob(&mut w, "ring-30");
    // Ringing (180 at once): still ringing after 29 s.
    w.run_for(Duration::from_secs(29));
    assert_eq!(bob_log.borrow().received("CANCEL"), 0);
    assert!(alice.borrow().finals_for("INVITE").is_empty());
    // Timer C fires at 30 s: the branch is CANCELled and the caller gets 408.
    w.run_for(Duration::from_secs(5));
    assert_eq!(bob_log.borrow().received("CANCEL"), 1);
    assert_eq!(alice.borrow().finals_for("INVITE"), vec![408]);
}

#[test]
fn parallel_fork_forwards_the_answer_and_cancels_the_other_branch() {
    let mut w = World::perfect();
    let (alice, alice_log) = w.phone("alice", |_| {});
    let (b1, b1_log) = w.phone("bob", |p| p.answer_after = Duration::from_secs(2));
    let (b2, b2_log) = w.phone("bob", |p| p.final_status = 0);
    w.register(b1, "bob", 1, &contact_of(b1, "bob"));
    w.register(b2, "bob", 1, &contact_of(b2, "bob"));
    assert_eq!(w.endpoint().bindings("sip:bob@example.com").len(), 2);
    w.send(
        alice,
        request(alice, "INVITE", "sip:bob@example.com", "alice", "fork", ""),
    );
    w.run_for(Duration::from_secs(60));
    assert_eq!(b1_log.borrow().received("INVITE"), 1);
    assert_eq!(b2_log.borrow().received("INVITE"), 1);
    assert_eq!(b2_log.borrow().received("CANCEL"), 1);
    assert_eq!(alice_log.borrow().finals_for("INVITE"), vec![200]);
    assert_eq!(w.forwarded("INVITE"), 2);
}

#[test]
fn parallel_fork_chooses_best_final_response() {
    let mut w = World::perfect();
    let (alice, alice_log) = w.phone("alice", |_| {});
    let (b1, _) = w.phone("bob", |p| p.final_status = 603);
    let (b2, _) = w.phone("bob", |p| {
        p.final_status = 486;
        p.answer_after = Duration::from_millis(100);
    });
    let (b3, _) = w.phone("bob", |p| {
        p.final_status = 503;
        p.answer_after = Duration::from_millis(50);
    });
    for b in [b1, b2, b3] {
        w.register(b, "bob", 1, &contact_of(b, "bob"));
    }
    w.send(
        alice,
        request(alice, "INVITE", "sip:bob@example.com", "alice", "best", ""),
    );
    w.run_for(Duration::from_secs(60));
    // 6xx wins over 4xx and 5xx (§16.7 step 6).
    assert_eq!(alice_log.borrow().finals_for("INVITE"), vec![603]);
}

#[test]
fn higher_q_contact_is_tried_first() {
    let mut w = World::perfect();
    let (alice, alice_log) = w.phone("alice", |_| {});
    let (b1, b1_log) = w.phone("bob", |p| p.final_status = 486);
    let (b2, b2_log) = w.phone("bob", |_| {});
    w.register(
        b1,
        "bob",
        1,
        &format!("Contact: <sip:bob@{}:5060>;q=0.9\r\n", host(b1)),
    );
    w.register(
        b2,
        "bob",
        1,
        &format!("Contact: <sip:bob@{}:5060>;q=0.1\r\n", host(b2)),
    );
    w.send(
        alice,
        request(alice, "INVITE", "sip:bob@example.com", "alice", "q", ""),
    );
    w.run_for(Duration::from_secs(60));
    assert_eq!(b1_log.borrow().received("INVITE"), 1);
    assert_eq!(
        b2_log.borrow().received("INVITE"),
        1,
        "tried after the q=0.9 contact failed"
    );
    assert_eq!(alice_log.borrow().finals_for("INVITE"), vec![200]);
}

#[test]
fn malformed_request_gets_400_with_warning() {
    let mut w = World::perfect();
    let (alice, log) = w.phone("alice", |_| {});
    let raw = format!(
        "INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP {h}:5060;branch=z9hG4bKbad\r\nMax-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=1\r\nTo: <sip:bob@example.com>\r\nCall-ID: bad\r\nCSeq: 1 INVITE\r\nContent-Length: 9999\r\n\r\nv=0\r\n",
        h = host(alice)
    );
    w.sim.inject(alice, PROXY, raw.into_bytes());
    w.run_for(Duration::from_secs(2));
    let l = log.borrow();
    assert_eq!(l.strays.len(), 1);
    let r = &l.strays[0];
    assert_eq!(r.status(), Some(400));
    let warning = r.header(HeaderName::Warning).unwrap().value;
    assert!(
        warning.starts_with(&format!("399 {}:5060 \"", host(PROXY))),
        "{warning}"
    );
    assert!(matches!(
        w.events().last(),
        Some(Event::MessageRejected { status: 400, .. })
    ));
}

#[test]
fn malformed_request_whose_via_lies_beyond_16_kib_still_gets_400() {
    // A bad Max-Forwards after 24 KiB of extension fields: within the 64 KiB size limit, so
    // what the 400 copies (Via, From, To, Call-ID, CSeq) is read from all of the header
    // section, not its first 16 KiB.
    let mut ep = Endpoint::new(config(1));
    let alice: Peer = "udp:198.51.100.7:40000".parse().unwrap();
    let padding: String = (0..120)
        .map(|i| format!("X-Pad-{i}: {}\r\n", "p".repeat(200)))
        .collect();
    let raw = format!(
        "OPTIONS sip:bob@example.com SIP/2.0\r\n{padding}Via: SIP/2.0/UDP 198.51.100.7:40000;branch=z9hG4bKfar\r\nMax-Forwards: many\r\nFrom: <sip:alice@example.com>;tag=1\r\nTo: <sip:bob@example.com>\r\nCall-ID: far\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    assert!(raw.find("Via:").unwrap() > 16 * 1024);
    let (sent, events) = exchange_events(&mut ep, &alice, raw);
    assert_eq!(sent.len(), 1, "{:?} {events:?}", summary(&sent));
    assert_eq!(sent[0].1.status(), Some(400));
    assert_eq!(sent[0].1.call_id(), "far");
}

#[test]
fn too_large_request_gets_513() {
    let mut w = World::perfect();
    let (alice, log) = w.phone("alice", |_| {});
    let body = "a".repeat(70 * 1024);
    let raw = format!(
        "MESSAGE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP {h}:5060;branch=z9hG4bKbig\r\nMax-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=1\r\nTo: <sip:bob@example.com>\r\nCall-ID: big\r\nCSeq: 1 MESSAGE\r\nContent-Length: {}\r\n\r\n{body}",
        body.len(),
        h = host(alice)
    );
    w.sim.inject(alice, PROXY, raw.into_bytes());
    w.run_for(Duration::from_secs(2));
    assert_eq!(log.borrow().strays[0].status(), Some(513));
}

/// Parser limits above the defaults (`EndpointConfig::limits`, `[limits]` in the config).
const RAISED: Limits = Limits {
    max_headers: 512,
    max_vias: 128,
    ..Limits::DEFAULT
};

/// A proxy for example.com configured with [`RAISED`].
fn raised_proxy() -> Endpoint {
    Endpoint::new(EndpointConfig {
        limits: RAISED,
        ..config(1)
    })
}

/// `n` extension header fields: with the usual ones, more than the default 256.
fn filler(n: usize) -> String {
    (0..n).map(|i| format!("X-Filler-{i}: {i}\r\n")).collect()
}

/// How many of the [`filler`] fields `m` carries.
fn fillers(m: &Message) -> usize {
    m.headers()
        .filter(|h| h.raw_name.starts_with("X-Filler-"))
        .count()
}

/// Who got what, one line each, for assertion messages.
fn summary(sent: &[(Peer, Message)]) -> Vec<String> {
    sent.iter()
        .map(|(to, m)| {
            let line = m
                .as_bytes()
                .split(|&b| b == b'\r')
                .next()
                .unwrap_or_default();
            format!("{to}: {}", String::from_utf8_lossy(line))
        })
        .collect()
}

/// Feeds `bytes` from `from` to the proxy and returns what it sent, parsed under [`RAISED`].
fn exchange(ep: &mut Endpoint, from: &Peer, bytes: String) -> Vec<(Peer, Message)> {
    exchange_events(ep, from, bytes).0
}

/// [`exchange`], with the events the proxy reported.
fn exchange_events(
    ep: &mut Endpoint,
    from: &Peer,
    bytes: String,
) -> (Vec<(Peer, Message)>, Vec<Event>) {
    ep.handle_receive(Instant::now(), WALL0, from.clone(), Bytes::from(bytes));
    let (mut sent, mut events) = (Vec::new(), Vec::new());
    loop {
        match ep.poll_output() {
            Output::Transmit { to, bytes } => sent.push((
                to,
                Message::parse_with(bytes, &RAISED, Transport::Datagram).unwrap(),
            )),
            Output::Event(e) => events.push(e),
            Output::Timeout(_) => break,
        }
    }
    (sent, events)
}

#[test]
fn raised_limits_also_cover_the_received_and_rport_rewrite() {
    // More header fields than the default limit, fewer than the configured one: admitted, and
    // its top Via still gets received and rport (RFC 3581 §4), which the response carries back.
    let mut ep = raised_proxy();
    let raw = format!(
        "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.9:5070;branch=z9hG4bKmany;rport\r\nMax-Forwards: 70\r\nFrom: <sip:bob@example.com>;tag=1\r\nTo: <sip:bob@example.com>\r\nCall-ID: many\r\nCSeq: 1 REGISTER\r\nContact: <sip:bob@198.51.100.7:40000>\r\nExpires: 600\r\n{}Content-Length: 0\r\n\r\n",
        filler(300)
    );
    assert!(
        Message::parse(raw.clone().into_bytes()).is_err(),
        "over the default limits"
    );
    let src: Peer = "udp:198.51.100.7:40000".parse().unwrap();
    let sent = exchange(&mut ep, &src, raw);
    assert_eq!(sent.len(), 1, "{sent:?}");
    let (to, response) = &sent[0];
    assert_eq!(to, &src);
    assert_eq!(response.status(), Some(200));
    let via = response.top_via().unwrap();
    assert_eq!(via.received(), Some("198.51.100.7"));
    assert_eq!(via.rport(), Some(Some(40000)));
}

#[test]
fn a_request_the_received_parameter_would_take_over_the_limits_is_refused() {
    // RFC 3261 §18.2.1 / RFC 3581 §4: the proxy MUST add received (and fill rport) when the
    // sent-by is not the source. When that edit takes the request over the parser limits it
    // is refused with 513 (§21.5.11: the request as received was well-formed, our edit exceeds
    // what the server accepts), for the size and for a line alike — not passed on without
    // received (nor answered 500 when its copy fails the limits too).
    let mut ep = Endpoint::new(config(1));
    let alice: Peer = "udp:198.51.100.7:40000".parse().unwrap();
    let max = Limits::DEFAULT;
    let message = |method: &str, call_id: &str, via_param: &str, size: usize| {
        let head = format!(
            "{method} sip:bob@192.0.2.20 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.9:5070;branch=z9hG4bK{call_id};rport{via_param}\r\nMax-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=a\r\nTo: <sip:bob@192.0.2.20>\r\nCall-ID: {call_id}\r\nCSeq: 1 {method}\r\nContent-Length: 00000\r\n\r\n"
        );
        let body = size.saturating_sub(head.len());
        head.replace("00000", &format!("{body:05}")) + &"a".repeat(body)
    };
    // ";received=198.51.100.7;rport=40000" is 34 bytes more than ";rport".
    let via_line = "Via: SIP/2.0/UDP 192.0.2.9:5070;branch=z9hG4bKlong;rport;x=";
    let long_param = format!(
        ";x={}",
        "v".repeat(max.max_line_length - 10 - via_line.len())
    );
    let cases = [
        // Ten bytes under the size limit.
        (
            message("MESSAGE", "big", "", max.max_message_size - 10),
            513,
        ),
        // A top Via line ten bytes under the line limit.
        (message("MESSAGE", "long", &long_param, 0), 513),
        // An ACK is never answered (§17): dropped, but not silently.
        (message("ACK", "big-ack", "", max.max_message_size - 10), 0),
    ];
    for (request, status) in cases {
        assert!(
            Message::parse(request.clone().into_bytes()).is_ok(),
            "within the limits as received"
        );
        let (sent, events) = exchange_events(&mut ep, &alice, request);
        let reason = events
            .iter()
            .find_map(|e| match e {
                Event::MessageRejected {
                    status: s, reason, ..
                } if *s == status => Some(reason.clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no MessageRejected {status}: {events:?}"));
        assert!(reason.contains("received"), "{reason}");
        if status == 0 {
            assert!(sent.is_empty(), "{:?}", summary(&sent));
            continue;
        }
        assert_eq!(sent.len(), 1, "{:?}", summary(&sent));
        let (to, r) = &sent[0];
        assert_eq!(to, &alice);
        assert_eq!(r.status(), Some(status));
        let warning = r.header(HeaderName::Warning).unwrap().value;
        assert!(warning.contains("received"), "{warning}");
    }

    // An INVITE: a retransmission gets the same To tag (§8.2.7), and the ACK for the 513 —
    // small enough to be edited, so it reaches the proxy core — is absorbed, not forwarded
    // to bob as a stray ACK (§17.1.1.3). A CANCEL over the limit is ignored (§8.2.7).
    let invite = message("INVITE", "big-invite", "", max.max_message_size - 10);
    let first = exchange(&mut ep, &alice, invite.clone());
    let again = exchange(&mut ep, &alice, invite);
    assert_eq!((first.len(), again.len()), (1, 1), "{:?}", summary(&first));
    assert_eq!(first[0].1.status(), Some(513));
    let tag = first[0].1.to_tag().expect("a To tag").to_owned();
    assert_eq!(again[0].1.to_tag(), Some(tag.as_str()));
    let ack = message("ACK", "big-invite", "", 0).replace(
        "To: <sip:bob@192.0.2.20>",
        &format!("To: <sip:bob@192.0.2.20>;tag={tag}"),
    );
    let sent = exchange(&mut ep, &alice, ack.clone());
    assert!(
        sent.is_empty(),
        "the ACK was passed on: {:?}",
        summary(&sent)
    );
    // The same ACK with another tag is for someone else: forwarded, so the absorption above
    // is the tag's doing.
    let other = exchange(&mut ep, &alice, ack.replace(&tag, "bobs-tag"));
    assert_eq!(other.len(), 1, "{:?}", summary(&other));
    let cancel = message("CANCEL", "big-invite", "", max.max_message_size - 10);
    let (sent, _) = exchange_events(&mut ep, &alice, cancel);
    assert!(sent.is_empty(), "a CANCEL got {:?}", summary(&sent));
}

#[test]
fn a_request_our_own_via_would_take_over_the_limits_gets_513() {
    // The request is within the limits as received and needs no received/rport (its sent-by
    // is its source); the Via the proxy adds to its copy takes it over the size limit. The
    // request was well-formed; it exceeds what this server can forward (§21.5.11): 513.
    let mut ep = Endpoint::new(config(1));
    let alice: Peer = "udp:198.51.100.7:40000".parse().unwrap();
    let max = Limits::DEFAULT;
    let head = "MESSAGE sip:bob@192.0.2.20 SIP/2.0\r\nVia: SIP/2.0/UDP 198.51.100.7:40000;branch=z9hG4bKown\r\nMax-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=a\r\nTo: <sip:bob@192.0.2.20>\r\nCall-ID: own\r\nCSeq: 1 MESSAGE\r\nContent-Length: 00000\r\n\r\n";
    let body = max.max_message_size - 10 - head.len();
    let request = head.replace("00000", &format!("{body:05}")) + &"a".repeat(body);
    assert!(Message::parse(request.clone().into_bytes()).is_ok());
    let sent = exchange(&mut ep, &alice, request);
    let statuses: Vec<_> = sent.iter().filter_map(|(_, m)| m.status()).collect();
    assert_eq!(statuses.last(), Some(&513), "{:?}", summary(&sent));
    assert!(
        sent.iter().all(|(to, _)| to == &alice),
        "nothing goes to bob"
    );
}

/// bob's answer to `request` as the proxy forwarded it, with `extra` header lines: every Via,
/// From, To with bob's tag, Call-ID and CSeq copied (§8.2.6.2).
fn answer(request: &Message, status: u16, reason: &str, extra: &str) -> String {
    let mut s = format!("SIP/2.0 {status} {reason}\r\n");
    for v in request.headers_named(HeaderName::Via) {
        s.push_str(&format!("Via: {}\r\n", v.value));
    }
    for (name, value) in [
        (
            "From",
            request.header(HeaderName::From).unwrap().value.to_owned(),
        ),
        (
            "To",
            format!("{};tag=b", request.header(HeaderName::To).unwrap().value),
        ),
        ("Call-ID", request.call_id().to_owned()),
        (
            "CSeq",
            request.header(HeaderName::CSeq).unwrap().value.to_owned(),
        ),
    ] {
        s.push_str(&format!("{name}: {value}\r\n"));
    }
    s.push_str(extra);
    s.push_str("Content-Length: 0\r\n\r\n");
    s
}

#[test]
fn raised_limits_let_an_invite_with_many_header_fields_through_and_its_200_and_ack() {
    // Over the default 256 header fields, under the configured 512: forwarded (§16.6) with
    // our Via on top, not answered 500 because the copy for the next hop was checked against
    // the defaults; bob's 200 with as many fields goes back (§16.7), and so does the ACK.
    let mut ep = raised_proxy();
    let alice: Peer = "udp:198.51.100.7:40000".parse().unwrap();
    let bob: Peer = "udp:192.0.2.20:5060".parse().unwrap();
    let invite = format!(
        "INVITE sip:bob@192.0.2.20:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 198.51.100.7:40000;branch=z9hG4bKmany;rport\r\nRoute: <sip:{proxy};lr>\r\nMax-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=a\r\nTo: <sip:bob@192.0.2.20>\r\nCall-ID: many-invite\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@198.51.100.7:40000>\r\n{}Content-Length: 0\r\n\r\n",
        filler(300),
        proxy = sock(PROXY),
    );
    assert!(
        Message::parse(invite.clone().into_bytes()).is_err(),
        "over the default limits"
    );
    let sent = exchange(&mut ep, &alice, invite);
    let statuses: Vec<_> = sent.iter().filter_map(|(_, m)| m.status()).collect();
    assert_eq!(statuses, vec![100], "{:?}", summary(&sent));
    let forwarded = sent
        .iter()
        .find(|(to, m)| to == &bob && m.is_request())
        .map(|(_, m)| m.clone())
        .unwrap_or_else(|| panic!("INVITE not forwarded to bob: {:?}", summary(&sent)));
    assert_eq!(fillers(&forwarded), 300);
    assert_eq!(forwarded.via_count(), 2);
    assert_eq!(forwarded.max_forwards(), Some(69));
    assert!(
        forwarded.header(HeaderName::Route).is_none(),
        "our Route removed"
    );

    let sent = exchange(&mut ep, &bob, answer(&forwarded, 200, "OK", &filler(300)));
    assert_eq!(sent.len(), 1, "{:?}", summary(&sent));
    let (to, ok) = &sent[0];
    assert_eq!(to, &alice);
    assert_eq!(ok.status(), Some(200));
    assert_eq!(fillers(ok), 300);
    assert_eq!(ok.via_count(), 1, "our Via removed");
    assert_eq!(ok.top_via_branch(), Some("z9hG4bKmany"));

    // §16.11: the ACK for the 2xx, as big, is forwarded statelessly.
    let ack = format!(
        "ACK sip:bob@192.0.2.20:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 198.51.100.7:40000;branch=z9hG4bKmany-ack;rport\r\nRoute: <sip:{proxy};lr>\r\nMax-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=a\r\nTo: <sip:bob@192.0.2.20>;tag=b\r\nCall-ID: many-invite\r\nCSeq: 1 ACK\r\n{}Content-Length: 0\r\n\r\n",
        filler(300),
        proxy = sock(PROXY),
    );
    let sent = exchange(&mut ep, &alice, ack);
    assert_eq!(sent.len(), 1, "{:?}", summary(&sent));
    let (to, ack) = &sent[0];
    assert_eq!(to, &bob);
    assert_eq!(ack.method(), Some(Method::Ack));
    assert_eq!(fillers(ack), 300);
}

#[test]
fn raised_limits_let_the_challenges_of_two_branches_be_aggregated() {
    // §16.7 step 7: bob's two contacts both answer 407 with many header fields; the 407 sent
    // upstream carries the Proxy-Authenticate of both.
    let mut ep = raised_proxy();
    let contacts: [Peer; 2] = [
        "udp:192.0.2.21:5060".parse().unwrap(),
        "udp:192.0.2.22:5060".parse().unwrap(),
    ];
    ep.restore_bindings(
        contacts
            .iter()
            .enumerate()
            .map(|(i, c)| Binding {
                aor: "sip:bob@example.com".to_owned(),
                contact: format!("sip:bob@{}", c.addr),
                expires_at: WALL0 + 3600,
                q: 1000,
                call_id: format!("bind-{i}"),
                cseq: 1,
                source: c.clone(),
            })
            .collect(),
    );
    let alice: Peer = "udp:198.51.100.7:40000".parse().unwrap();
    let invite = format!(
        "INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 198.51.100.7:40000;branch=z9hG4bKtwo;rport\r\nMax-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=a\r\nTo: <sip:bob@example.com>\r\nCall-ID: many-407\r\nCSeq: 1 INVITE\r\n{}Content-Length: 0\r\n\r\n",
        filler(300)
    );
    let sent = exchange(&mut ep, &alice, invite);
    let mut answers = Vec::new();
    for (i, c) in contacts.iter().enumerate() {
        let forwarded = sent
            .iter()
            .find(|(to, m)| to == c && m.is_request())
            .map(|(_, m)| m.clone())
            .unwrap_or_else(|| panic!("INVITE not forked to {c}: {:?}", summary(&sent)));
        let challenge = format!(
            "Proxy-Authenticate: Digest realm=\"realm{i}.example\", nonce=\"n{i}\"\r\n{}",
            filler(300)
        );
        answers.push((
            c,
            answer(&forwarded, 407, "Proxy Authentication Required", &challenge),
        ));
    }
    let mut sent = Vec::new();
    for (c, a) in answers {
        sent.extend(exchange(&mut ep, c, a));
    }
    let challenge = sent
        .iter()
        .find(|(to, m)| to == &alice && m.status() == Some(407))
        .map(|(_, m)| m)
        .unwrap_or_else(|| panic!("no 407 for alice: {:?}", summary(&sent)));
    let realms: Vec<_> = challenge
        .headers_named(HeaderName::ProxyAuthenticate)
        .map(|h| h.value.to_owned())
        .collect();
    assert_eq!(realms.len(), 2, "{realms:?}");
}

/// `n` Via values, alice's on top, as `n` Via header fields.
fn vias(n: usize) -> String {
    let mut s = String::from("Via: SIP/2.0/UDP 198.51.100.7:40000;branch=z9hG4bKvias;rport\r\n");
    for i in 1..n {
        s.push_str(&format!(
            "Via: SIP/2.0/UDP 203.0.113.{i}:5060;branch=z9hG4bKhop{i}\r\n"
        ));
    }
    s
}

#[test]
fn raised_limits_let_a_request_with_many_vias_be_answered_and_forwarded() {
    // 70 Via values: over the default 64, under the configured 128. The 100 Trying, the
    // responses the proxy makes itself (400 for a request that does not parse, 404) and one
    // it relays (486) copy them all (§8.2.6.2, §16.7); the forwarded INVITE has one more.
    let mut ep = raised_proxy();
    let alice: Peer = "udp:198.51.100.7:40000".parse().unwrap();
    let bob: Peer = "udp:192.0.2.20:5060".parse().unwrap();
    let request = |method: &str, ruri: &str, call_id: &str| {
        format!(
            "{method} {ruri} SIP/2.0\r\n{}Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=a\r\nTo: <{ruri}>\r\nCall-ID: {call_id}\r\nCSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n",
            vias(70)
        )
    };
    // One that does not parse (Content-Length beyond the datagram) still gets its 400.
    let bad = request("OPTIONS", "sip:nobody@example.com", "many-vias-400")
        .replace("Content-Length: 0", "Content-Length: 9999");
    let sent = exchange(&mut ep, &alice, bad);
    assert_eq!(sent.len(), 1, "{:?}", summary(&sent));
    assert_eq!(sent[0].1.status(), Some(400));
    assert_eq!(sent[0].1.via_count(), 70);

    let options = request("OPTIONS", "sip:nobody@example.com", "many-vias-404");
    assert!(
        Message::parse(options.clone().into_bytes()).is_err(),
        "over the default limits"
    );
    let sent = exchange(&mut ep, &alice, options);
    assert_eq!(sent.len(), 1, "{:?}", summary(&sent));
    assert_eq!(sent[0].1.status(), Some(404));
    assert_eq!(sent[0].1.via_count(), 70);

    let invite = request("INVITE", "sip:bob@192.0.2.20:5060", "many-vias-486");
    let sent = exchange(&mut ep, &alice, invite);
    let trying = sent
        .iter()
        .find(|(to, m)| to == &alice && m.status() == Some(100))
        .unwrap_or_else(|| panic!("no 100 Trying: {:?}", summary(&sent)));
    assert_eq!(trying.1.via_count(), 70);
    let forwarded = sent
        .iter()
        .find(|(to, m)| to == &bob && m.is_request())
        .map(|(_, m)| m.clone())
        .unwrap_or_else(|| panic!("INVITE not forwarded to bob: {:?}", summary(&sent)));
    assert_eq!(forwarded.via_count(), 71);

    let sent = exchange(&mut ep, &bob, answer(&forwarded, 486, "Busy Here", ""));
    let busy = sent
        .iter()
        .find(|(to, m)| to == &alice && m.status().is_some())
        .unwrap_or_else(|| panic!("486 not relayed: {:?}", summary(&sent)));
    assert_eq!(busy.1.status(), Some(486));
    assert_eq!(busy.1.via_count(), 70);
    assert!(
        sent.iter()
            .any(|(to, m)| to == &bob && m.method() == Some(Method::Ack)),
        "the proxy ACKs bob's 486 (§17.1.1.3): {:?}",
        summary(&sent)
    );
}

#[test]
fn malformed_response_is_dropped() {
    let mut w = World::perfect();
    let raw = format!(
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP {h}:5060;branch=z9hG4bKx\r\nFrom: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\nCall-ID: r\r\nCSeq: one INVITE\r\nContent-Length: 0\r\n\r\n",
        h = host(PROXY)
    );
    w.sim.inject(3, PROXY, raw.into_bytes());
    w.run_for(Duration::from_secs(2));
    assert!(matches!(
        w.events().last(),
        Some(Event::MessageRejected { status: 0, .. })
    ));
    assert_eq!(w.sim.net.sent, 1, "nothing sent back");
}

#[test]
fn options_to_the_proxy_itself_gets_200_with_allow() {
    let mut w = World::perfect();
    let (alice, log) = w.phone("alice", |_| {});
    w.send(
        alice,
        request(
            alice,
            "OPTIONS",
            &format!("sip:{}", host(PROXY)),
            "alice",
            "opt",
            "",
        ),
    );
    w.run_for(Duration::from_secs(2));
    let r = last_final(&log);
    assert_eq!(r.status(), Some(200));
    assert!(
        r.headers_named_str("Allow")
            .next()
            .unwrap()
            .value
            .contains("REGISTER")
    );
}

#[test]
fn unknown_proxy_require_gets_420_with_unsupported() {
    let (mut w, alice, _) = call_world(1, NetConfig::PERFECT, Reliability::Unreliable, |_| {});
    w.send(
        0,
        request(
            0,
            "OPTIONS",
            "sip:bob@example.com",
            "alice",
            "pr",
            "Proxy-Require: sec-agree, foo\r\n",
        ),
    );
    w.run_for(Duration::from_secs(2));
    let r = last_final(&alice);
    assert_eq!(r.status(), Some(420));
    assert_eq!(
        r.header(HeaderName::Unsupported).unwrap().value,
        "sec-agree, foo"
    );
}

#[test]
fn foreign_host_name_gets_502_and_ip_literal_is_forwarded() {
    let mut w = World::perfect();
    let (alice, log) = w.phone("alice", |_| {});
    let (other, other_log) = w.phone("dave", |_| {});
    w.send(
        alice,
        request(alice, "MESSAGE", "sip:dave@example.org", "alice", "dns", ""),
    );
    w.run_for(Duration::from_secs(2));
    let r = last_final(&log);
    assert_eq!(r.status(), Some(502));
    assert!(
        r.header(HeaderName::Warning)
            .unwrap()
            .value
            .contains("example.org")
    );
    w.send(
        alice,
        request(
            alice,
            "MESSAGE",
            &format!("sip:dave@{}", host(other)),
            "alice",
            "ip",
            "",
        ),
    );
    w.run_for(Duration::from_secs(2));
    assert_eq!(log.borrow().finals_for("MESSAGE"), vec![502, 200]);
    assert_eq!(other_log.borrow().received("MESSAGE"), 1);
}

#[test]
fn tcp_registration_routes_calls_back_over_its_connection() {
    let (mut w, alice, bob) = call_world(2, NetConfig::PERFECT, Reliability::Reliable, |_| {});
    let reg = w.events().iter().find_map(|e| match e {
        Event::BindingsChanged { bindings, .. } => bindings.first().cloned(),
        _ => None,
    });
    let reg = reg.unwrap();
    assert_eq!(reg.source.transport, TransportKind::Tcp);
    assert_eq!(reg.source.flow, Some(vouch_proto::FlowId(1)));
    invite_bob(&mut w, "tcp");
    w.run_for(Duration::from_secs(30));
    assert_eq!(alice.borrow().finals_for("INVITE"), vec![200]);
    assert_eq!(bob.borrow().acks.len(), 1);
    let to = w.events().iter().find_map(|e| match e {
        Event::Forwarded { method, to, .. } if method == "INVITE" => Some(to.clone()),
        _ => None,
    });
    assert_eq!(to.unwrap().flow, Some(vouch_proto::FlowId(1)));
}

#[test]
fn strict_route_in_request_uri_is_converted() {
    // A request from a strict router: R-URI is our Record-Route URI, the real target last.
    let mut w = World::perfect();
    let (alice, log) = w.phone("alice", |_| {});
    let (other, other_log) = w.phone("dave", |_| {});
    let m = request(
        alice,
        "MESSAGE",
        &format!("sip:{}:5060;lr", host(PROXY)),
        "alice",
        "strict",
        &format!("Route: <sip:dave@{}>\r\n", host(other)),
    );
    w.send(alice, m);
    w.run_for(Duration::from_secs(2));
    assert_eq!(log.borrow().finals_for("MESSAGE"), vec![200]);
    let got = other_log.borrow().requests[0].clone();
    assert_eq!(
        got.request_uri_str(),
        Some(format!("sip:dave@{}", host(other)).as_str())
    );
    assert!(got.header(HeaderName::Route).is_none());
}

/// A stand-in for digest authentication: challenges REGISTERs without Authorization (401)
/// and proxied requests without Proxy-Authorization (407).
#[derive(Debug)]
struct Challenger;

impl vouch_proto::policy::RequestPolicy for Challenger {
    fn check(
        &mut self,
        request: &Message,
        context: &vouch_proto::policy::RequestContext<'_>,
    ) -> vouch_proto::policy::Verdict {
        use vouch_proto::policy::{Role, Verdict};
        let (header, status, challenge) = match context.role {
            Role::Registrar | Role::Uas => (HeaderName::Authorization, 401, "WWW-Authenticate"),
            Role::Proxy => (HeaderName::ProxyAuthorization, 407, "Proxy-Authenticate"),
        };
        if request.header(header).is_some() {
            return Verdict::Admit;
        }
        Verdict::Reject {
            status,
            reason: "Unauthorized".to_owned(),
            headers: vec![(
                challenge.to_owned(),
                "Digest realm=\"example.com\", nonce=\"n\"".to_owned(),
            )],
            warning: None,
            log: None,
        }
    }
}

#[test]
fn policy_challenges_before_registrar_and_proxy_act() {
    let mut ep = Endpoint::new(config(1));
    ep.set_policy(Box::new(Challenger));
    let mut w = World::with_endpoint(1, NetConfig::PERFECT, Reliability::Unreliable, ep);
    let (bob, log) = w.phone("bob", |_| {});
    w.register(bob, "bob", 1, &contact_of(bob, "bob"));
    let r = last_final(&log);
    assert_eq!(r.status(), Some(401));
    assert!(r.header(HeaderName::WwwAuthenticate).is_some());
    assert!(w.endpoint().bindings("sip:bob@example.com").is_empty());
    w.register(
        bob,
        "bob",
        2,
        &format!(
            "{}Authorization: Digest username=\"bob\"\r\n",
            contact_of(bob, "bob")
        ),
    );
    assert_eq!(last_final(&log).status(), Some(200));
    w.send(
        bob,
        request(bob, "MESSAGE", "sip:bob@example.com", "bob", "pol", ""),
    );
    w.run_for(Duration::from_secs(2));
    let r = last_final(&log);
    assert_eq!(r.status(), Some(407));
    assert!(r.header(HeaderName::ProxyAuthenticate).is_some());
    assert_eq!(w.forwarded("MESSAGE"), 0);
}

// ---- lossy network ------------------------------------------------------------------------

const LOSSY: NetConfig = NetConfig {
    loss: 0.2,
    duplicate: 0.1,
    min_delay: Duration::from_millis(5),
    max_delay: Duration::from_millis(150),
};

#[test]
fn lossy_network_completes_calls() {
    let mut completed = 0;
    for seed in 0..40 {
        let (mut w, alice, bob) = call_world(seed, LOSSY, Reliability::Unreliable, |_| {});
        assert_eq!(
            w.endpoint().bindings("sip:bob@example.com").len(),
            1,
            "seed {seed}: registered"
        );
        invite_bob(&mut w, &format!("lossy-{seed}"));
        w.run_for(Duration::from_secs(120));
        let a = alice.borrow();
        let b = bob.borrow();
        // Retransmitted 2xx are passed up again while the INVITE transaction is Accepted.
        let finals = a.finals_for("INVITE");
        assert!(
            !finals.is_empty() && finals.iter().all(|&s| s == 200),
            "seed {seed}: {finals:?}"
        );
        assert!(!b.acks.is_empty(), "seed {seed}: bob got the ACK");
        assert_eq!(b.received("BYE"), 1, "seed {seed}: bob got the BYE");
        assert_eq!(a.finals_for("BYE"), vec![200], "seed {seed}");
        drop((a, b));
        w.run_for(Duration::from_secs(120));
        assert!(w.endpoint().is_idle(), "seed {seed}: proxy idle");
        completed += 1;
    }
    assert_eq!(completed, 40);
}

// ---- RFC 3263 server location by the driver --------------------------------------------------

/// A proxy whose driver resolves host names ([`EndpointConfig::dns`]).
/// alice sends `method` to `target` with Call-ID `call_id`, and a second passes: time for the
/// proxy to ask its driver for the lookup.
fn alice_sends(w: &mut World, alice: Addr, method: &str, target: &str, call_id: &str) {
    w.send(alice, request(alice, method, target, "alice", call_id, ""));
    w.run_for(Duration::from_secs(1));
}

fn dns_world() -> World {
    let ep = Endpoint::new(EndpointConfig {
        dns: true,
        ..config(1)
    });
    World::with_endpoint(1, NetConfig::PERFECT, Reliability::Unreliable, ep)
}

/// An [`Event::Resolve`]: id, host, port, transport, secure.
type Lookup = (ResolveId, String, Option<u16>, Option<TransportKind>, bool);

/// The lookups the proxy asked its driver for.
fn lookups(w: &World) -> Vec<Lookup> {
    w.events()
        .iter()
        .filter_map(|e| match e {
            Event::Resolve {
                id,
                host,
                port,
                transport,
                secure,
            } => Some((*id, host.clone(), *port, *transport, *secure)),
            _ => None,
        })
        .collect()
}

/// Answers lookup `id` as the driver would.
fn resolved(w: &mut World, id: ResolveId, result: Result<Vec<Peer>, String>) {
    w.sim.endpoint_input(PROXY, |ep, now, wall| {
        ep.handle_resolved(now, wall, id, result)
    });
}

/// The next hops of the requests the proxy forwarded, in order.
fn forwarded_to(w: &World, method: &str) -> Vec<Peer> {
    w.events()
        .iter()
        .filter_map(|e| match e {
            Event::Forwarded { method: m, to, .. } if m == method => Some(to.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn host_name_target_waits_for_the_driver_and_fails_over_from_503_to_the_next_address() {
    let mut w = dns_world();
    let (alice, log) = w.phone("alice", |_| {});
    let (first, first_log) = w.phone("dave", |p| p.final_status = 503);
    let (second, second_log) = w.phone("dave", |_| {});
    alice_sends(&mut w, alice, "INVITE", "sip:dave@biloxi.example", "srv");
    let asked = lookups(&w);
    assert_eq!(asked.len(), 1, "{asked:?}");
    let (id, name, port, transport, secure) = asked[0].clone();
    assert_eq!(
        (name.as_str(), port, transport, secure),
        ("biloxi.example", None, None, false)
    );
    assert!(
        forwarded_to(&w, "INVITE").is_empty(),
        "parked until resolved"
    );
    assert_eq!(log.borrow().statuses("INVITE"), vec![100]);

    let peers = vec![w.sim.peer_of(first), w.sim.peer_of(second)];
    resolved(&mut w, id, Ok(peers.clone()));
    w.run_for(Duration::from_secs(10));
    // RFC 3263 §4.3: the 503 is a failure of the first address; the same request goes to the
    // next in a new transaction (new branch), and the caller sees only the second's answer.
    assert_eq!(forwarded_to(&w, "INVITE"), peers);
    assert_eq!(first_log.borrow().received("INVITE"), 1);
    assert_eq!(second_log.borrow().received("INVITE"), 1);
    let branch =
        |l: &Rc<RefCell<PhoneLog>>| l.borrow().requests[0].top_via_branch().unwrap().to_owned();
    assert_ne!(branch(&first_log), branch(&second_log));
    assert_eq!(log.borrow().finals_for("INVITE"), vec![200]);
    assert_eq!(lookups(&w).len(), 1);
}

#[test]
fn an_address_that_never_answers_is_given_up_at_timer_b_for_the_next() {
    let mut w = dns_world();
    let (alice, log) = w.phone("alice", |_| {});
    let (second, second_log) = w.phone("dave", |_| {});
    let silent: Addr = 50;
    alice_sends(&mut w, alice, "INVITE", "sip:dave@biloxi.example", "t-b");
    let id = lookups(&w)[0].0;
    let peers = vec![w.sim.peer_of(silent), w.sim.peer_of(second)];
    resolved(&mut w, id, Ok(peers.clone()));
    w.run_for(Duration::from_secs(20));
    assert_eq!(second_log.borrow().received("INVITE"), 0, "Timer B not yet");
    // Timer B is 64·T1 = 32 s: no response at all from the first address is a failure. (An
    // INVITE: the caller's own transaction is kept alive by the proxy's 100 Trying.)
    w.run_for(Duration::from_secs(20));
    assert_eq!(forwarded_to(&w, "INVITE"), peers);
    assert_eq!(second_log.borrow().received("INVITE"), 1);
    assert_eq!(log.borrow().finals_for("INVITE"), vec![200]);
}

#[test]
fn a_failed_lookup_is_answered_502_with_a_warning_naming_the_host() {
    let mut w = dns_world();
    let (alice, log) = w.phone("alice", |_| {});
    alice_sends(&mut w, alice, "MESSAGE", "sip:dave@nowhere.example", "nx");
    let id = lookups(&w)[0].0;
    resolved(&mut w, id, Err("no such domain".to_owned()));
    w.run_for(Duration::from_secs(1));
    let r = last_final(&log);
    assert_eq!(r.status(), Some(502));
    let warning = r.header(HeaderName::Warning).unwrap().value;
    assert!(
        warning.contains("nowhere.example") && warning.contains("no such domain"),
        "{warning}"
    );
    // Nothing found at all is the same answer.
    alice_sends(&mut w, alice, "MESSAGE", "sip:dave@empty.example", "nodata");
    let id = lookups(&w)[1].0;
    resolved(&mut w, id, Ok(Vec::new()));
    w.run_for(Duration::from_secs(1));
    let r = last_final(&log);
    assert_eq!(r.status(), Some(502));
    assert!(
        r.header(HeaderName::Warning)
            .unwrap()
            .value
            .contains("empty.example")
    );
    assert!(forwarded_to(&w, "MESSAGE").is_empty());
}

#[test]
fn ip_literals_and_static_hosts_need_no_lookup_and_the_uri_steers_the_lookup() {
    let ep = Endpoint::new(EndpointConfig {
        dns: true,
        static_hosts: vec![("static.example".to_owned(), sock(60))],
        ..config(1)
    });
    let mut w = World::with_endpoint(1, NetConfig::PERFECT, Reliability::Unreliable, ep);
    let (alice, _) = w.phone("alice", |_| {});
    let (other, other_log) = w.phone("dave", |_| {});
    w.send(
        alice,
        request(
            alice,
            "MESSAGE",
            &format!("sip:dave@{}", host(other)),
            "alice",
            "ip",
            "",
        ),
    );
    w.run_for(Duration::from_secs(2));
    assert_eq!(other_log.borrow().received("MESSAGE"), 1);
    alice_sends(&mut w, alice, "MESSAGE", "sip:dave@static.example", "st");
    assert_eq!(forwarded_to(&w, "MESSAGE").len(), 2);
    assert!(lookups(&w).is_empty());
    // An explicit port and transport, and sips:, go to the driver as they are (RFC 3263 §4.1,
    // §4.2: they decide whether NAPTR and SRV are looked up at all).
    alice_sends(
        &mut w,
        alice,
        "MESSAGE",
        "sips:dave@biloxi.example:5999;transport=tcp",
        "tls",
    );
    let asked = lookups(&w);
    assert_eq!(asked.len(), 1);
    assert_eq!(
        (asked[0].2, asked[0].3, asked[0].4),
        (Some(5999), Some(TransportKind::Tls), true)
    );
}

#[test]
fn cancel_while_the_lookup_runs_gives_487_and_nothing_is_forwarded() {
    let mut w = dns_world();
    let (alice, log) = w.phone("alice", |_| {});
    let (bob, bob_log) = w.phone("dave", |_| {});
    let invite = request(alice, "INVITE", "sip:dave@biloxi.example", "alice", "c", "");
    let mut key = None;
    w.sim.act(alice, |ctx| {
        key = ctx
            .layer
            .send_request(ctx.now, invite, PROXY, Reliability::Unreliable)
            .ok();
    });
    w.run_for(Duration::from_secs(1));
    w.sim.act(alice, |ctx| {
        ctx.layer.cancel(ctx.now, &key.unwrap()).unwrap();
    });
    w.run_for(Duration::from_secs(1));
    // Answered at once, not when the lookup comes back.
    assert_eq!(log.borrow().finals_for("CANCEL"), vec![200]);
    assert_eq!(log.borrow().finals_for("INVITE"), vec![487]);
    let id = lookups(&w)[0].0;
    let peers = vec![w.sim.peer_of(bob)];
    resolved(&mut w, id, Ok(peers));
    w.run_for(Duration::from_secs(5));
    assert_eq!(log.borrow().finals_for("INVITE"), vec![487]);
    assert_eq!(bob_log.borrow().received("INVITE"), 0);
    assert!(forwarded_to(&w, "INVITE").is_empty());
}

#[test]
fn an_unreachable_address_fails_over_at_once_not_at_timer_b() {
    let mut w = dns_world();
    let (alice, log) = w.phone("alice", |_| {});
    let (second, second_log) = w.phone("dave", |_| {});
    alice_sends(
        &mut w,
        alice,
        "INVITE",
        "sip:dave@biloxi.example",
        "refused",
    );
    let id = lookups(&w)[0].0;
    // The first address is a TCP server whose connection the driver will find refused.
    let refused = Peer::new(TransportKind::Tcp, sock(50));
    let peers = vec![refused.clone(), w.sim.peer_of(second)];
    resolved(&mut w, id, Ok(peers));
    w.run_for(Duration::from_millis(100));
    assert_eq!(second_log.borrow().received("INVITE"), 0);
    // Another address, or the same address over another transport, concerns no branch.
    let unconcerned = [
        Peer::new(TransportKind::Tcp, sock(51)),
        Peer::new(TransportKind::Udp, sock(50)),
    ];
    for p in unconcerned {
        w.sim
            .endpoint_input(PROXY, |ep, now, wall| ep.handle_unreachable(now, wall, &p));
    }
    w.run_for(Duration::from_millis(100));
    assert_eq!(second_log.borrow().received("INVITE"), 0);
    w.sim.endpoint_input(PROXY, |ep, now, wall| {
        ep.handle_unreachable(now, wall, &refused)
    });
    w.run_for(Duration::from_secs(2));
    assert_eq!(second_log.borrow().received("INVITE"), 1);
    assert_eq!(log.borrow().finals_for("INVITE"), vec![200]);
}

#[test]
fn an_ack_for_a_host_name_is_forwarded_once_resolved() {
    let mut w = dns_world();
    let (alice, _) = w.phone("alice", |_| {});
    let (bob, bob_log) = w.phone("dave", |_| {});
    // An ACK for a 2xx (§16.11: forwarded statelessly) whose Request-URI is a host name.
    let ack = request(
        alice,
        "ACK",
        "sip:dave@biloxi.example",
        "alice",
        "ack2xx",
        "",
    );
    w.sim.inject(alice, PROXY, ack.as_bytes().to_vec());
    w.run_for(Duration::from_millis(100));
    let asked = lookups(&w);
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert!(forwarded_to(&w, "ACK").is_empty());
    let peers = vec![w.sim.peer_of(bob)];
    resolved(&mut w, asked[0].0, Ok(peers.clone()));
    w.run_for(Duration::from_millis(100));
    assert_eq!(forwarded_to(&w, "ACK"), peers);
    assert_eq!(bob_log.borrow().acks.len(), 1);
}
