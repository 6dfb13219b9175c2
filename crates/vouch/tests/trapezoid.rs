//! End-to-end over real UDP sockets on 127.0.0.1: the trapezoid of the identity usage BCP
//! (§4.3) — Alice at atlanta.example calls Bob at biloxi.example, each proxy authenticates its
//! own user with digest (mutual authentication checked by the UAs) and signs with RFC 4474;
//! Bob binds Alice's certificate (forward, §4.1), Alice binds Bob's from his UPDATE (reverse,
//! RFC 4916, §4.2); the bindings go with BYE; a revocation NOTIFY removes one; a man in the
//! middle between the proxies, a replayed INVITE and a certificate change mid-dialog are
//! refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc::UnboundedReceiver;
use vouch::trapezoid::{ALICE, BOB, Tapped, Trapezoid, TrapezoidOptions};
use vouch::ua::UaOutput;
use vouch_proto::ua::{BindingEnd, CallHandle, UaEvent};

const WAIT: Duration = Duration::from_secs(10);

/// A UA's outputs: events are consumed by [`Watch::expect`], messages kept.
struct Watch {
    rx: UnboundedReceiver<UaOutput>,
    /// Every message received, in order.
    received: Vec<Bytes>,
}

impl Watch {
    fn take(rx: &mut UnboundedReceiver<UaOutput>) -> Watch {
        let (_, empty) = tokio::sync::mpsc::unbounded_channel();
        Watch {
            rx: std::mem::replace(rx, empty),
            received: Vec::new(),
        }
    }

    /// Waits for the first event `pick` accepts; fails the test after [`WAIT`], listing what
    /// came.
    async fn expect<T>(&mut self, what: &str, mut pick: impl FnMut(&UaEvent) -> Option<T>) -> T {
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let next = tokio::time::timeout_at(deadline, self.rx.recv()).await;
            match next {
                Ok(Some(UaOutput::Event(e))) => {
                    if let Some(t) = pick(&e) {
                        return t;
                    }
                    seen.push(format!("{e:?}"));
                }
                Ok(Some(UaOutput::Received { bytes, .. })) => {
                    trace(&bytes);
                    self.received.push(bytes);
                }
                Ok(Some(UaOutput::Sent { bytes, .. })) => trace(&bytes),
                Ok(Some(UaOutput::Closed { reason })) => panic!("no {what}: {reason}"),
                Ok(None) | Err(_) => panic!("no {what}; events seen:\n{}", seen.join("\n")),
            }
        }
    }

    /// The last message received that starts with `prefix`.
    fn last_received(&mut self, prefix: &str) -> Option<Bytes> {
        while let Ok(o) = self.rx.try_recv() {
            if let UaOutput::Received { bytes, .. } = o {
                self.received.push(bytes);
            }
        }
        self.received
            .iter()
            .rev()
            .find(|b| b.starts_with(prefix.as_bytes()))
            .cloned()
    }
}

/// The message with `tag` inserted into its top Via branch: the same request as a new
/// transaction (the body is binary, so this works on bytes).
fn with_new_branch(msg: &[u8], tag: &[u8]) -> Vec<u8> {
    let marker = b"branch=z9hG4bK";
    let at = msg
        .windows(marker.len())
        .position(|w| w == marker)
        .expect("a branch")
        + marker.len();
    [&msg[..at], tag, &msg[at..]].concat()
}

/// VOUCH_TEST_TRACE=1 shows the messages a failing test saw.
fn trace(bytes: &Bytes) {
    if std::env::var_os("VOUCH_TEST_TRACE").is_some() {
        eprintln!("---\n{}", String::from_utf8_lossy(bytes));
    }
}

struct Parties {
    alice: Watch,
    bob: Watch,
}

fn parties(t: &mut Trapezoid) -> Parties {
    Parties {
        alice: Watch::take(&mut t.alice_out),
        bob: Watch::take(&mut t.bob_out),
    }
}

/// The trapezoid with `options` in a fresh directory (kept alive by the returned guard),
/// both users registered.
async fn registered(options: TrapezoidOptions) -> (tempfile::TempDir, Trapezoid, Parties) {
    let (dir, t, mut p) = started(options).await;
    register_both(&t, &mut p).await;
    (dir, t, p)
}

/// The trapezoid with `options` in a fresh directory, nobody registered.
async fn started(options: TrapezoidOptions) -> (tempfile::TempDir, Trapezoid, Parties) {
    let dir = tempfile::tempdir().unwrap();
    let mut t = Trapezoid::start(dir.path(), options).await.unwrap();
    let p = parties(&mut t);
    (dir, t, p)
}

impl Watch {
    /// The next refusal of a `method` request: (status, reason).
    async fn refused(&mut self, method: &str) -> (u16, String) {
        self.expect(&format!("{method} refused"), |e| match e {
            UaEvent::RequestRefused {
                method: m,
                status,
                reason,
                ..
            } if m == method => Some((*status, reason.clone())),
            _ => None,
        })
        .await
    }

    /// Why the binding of `call` went.
    async fn binding_removed(&mut self, call: CallHandle) -> BindingEnd {
        self.expect("BindingRemoved", |e| match e {
            UaEvent::BindingRemoved {
                call: c, reason, ..
            } if *c == call => Some(*reason),
            _ => None,
        })
        .await
    }

    /// The call of the next binding made.
    async fn binding_created(&mut self) -> CallHandle {
        self.expect("BindingCreated", |e| match e {
            UaEvent::BindingCreated { call, .. } => Some(*call),
            _ => None,
        })
        .await
    }

    /// The final status `call` failed with.
    async fn call_failed(&mut self, call: CallHandle) -> u16 {
        self.expect("CallFailed", |e| match e {
            UaEvent::CallFailed {
                call: c, status, ..
            } if *c == call => Some(*status),
            _ => None,
        })
        .await
    }

    /// Why a server did not authenticate itself on a `method` 2xx.
    async fn not_authenticated(&mut self, method: &str) -> String {
        self.expect(
            &format!("ServerNotAuthenticated on {method}"),
            |e| match e {
                UaEvent::ServerNotAuthenticated {
                    method: m, reason, ..
                } if m == method => Some(reason.clone()),
                _ => None,
            },
        )
        .await
    }
}

async fn register_both(t: &Trapezoid, p: &mut Parties) {
    t.alice
        .with(|ua, now| ua.register(now))
        .await
        .unwrap()
        .unwrap();
    let realms = p
        .alice
        .expect("alice Registered", |e| match e {
            UaEvent::Registered {
                authenticated_realms,
                ..
            } => Some(authenticated_realms.clone()),
            _ => None,
        })
        .await;
    assert_eq!(
        realms,
        vec!["atlanta.example"],
        "registrar's rspauth checked"
    );
    t.bob
        .with(|ua, now| ua.register(now))
        .await
        .unwrap()
        .unwrap();
    p.bob
        .expect("bob Registered", |e| {
            matches!(e, UaEvent::Registered { .. }).then_some(())
        })
        .await;
}

/// Alice calls Bob; returns (alice's call, bob's call) once both bindings exist and the call
/// is established on both sides.
async fn call_with_bindings(t: &Trapezoid, p: &mut Parties) -> (CallHandle, CallHandle) {
    let a = t
        .alice
        .with(|ua, now| ua.call(now, BOB))
        .await
        .unwrap()
        .unwrap();
    let (b, aor) = p
        .bob
        .expect("bob BindingCreated", |e| match e {
            UaEvent::BindingCreated { call, aor, .. } => Some((*call, aor.clone())),
            _ => None,
        })
        .await;
    assert_eq!(aor, ALICE, "bob bound alice's identity");
    let aor = p
        .alice
        .expect("alice BindingCreated", |e| match e {
            UaEvent::BindingCreated { call, aor, .. } if *call == a => Some(aor.clone()),
            _ => None,
        })
        .await;
    assert_eq!(aor, BOB, "alice bound bob's identity (RFC 4916 UPDATE)");
    p.alice
        .expect("alice CallEstablished", |e| {
            matches!(e, UaEvent::CallEstablished { call } if *call == a).then_some(())
        })
        .await;
    p.bob
        .expect("bob CallEstablished", |e| {
            matches!(e, UaEvent::CallEstablished { call } if *call == b).then_some(())
        })
        .await;
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_and_reverse_binding_then_removed_on_bye() {
    let (_dir, t, mut p) = registered(TrapezoidOptions::default()).await;
    let (a, b) = call_with_bindings(&t, &mut p).await;

    // The bound certificates are the peers' per-login certificates.
    let alice_cert = t
        .alice
        .with(|ua, _| ua.certificate().map(<[u8]>::to_vec))
        .await
        .unwrap()
        .unwrap();
    let bob_cert = t
        .bob
        .with(|ua, _| ua.certificate().map(<[u8]>::to_vec))
        .await
        .unwrap()
        .unwrap();
    let bound_at_bob = t
        .bob
        .with(move |ua, _| ua.binding(b).cloned())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bound_at_bob.certificate(), Some(alice_cert.as_slice()));
    assert_eq!(bound_at_bob.signer_domain(), "atlanta.example");
    let bound_at_alice = t
        .alice
        .with(move |ua, _| ua.binding(a).cloned())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bound_at_alice.certificate(), Some(bob_cert.as_slice()));
    assert_eq!(bound_at_alice.signer_domain(), "biloxi.example");

    // Alice hangs up: both bindings go.
    t.alice
        .with(move |ua, now| ua.hangup(now, a))
        .await
        .unwrap()
        .unwrap();
    let why = p.bob.binding_removed(b).await;
    assert_eq!(why, BindingEnd::Bye);
    assert!(
        t.bob
            .with(move |ua, _| ua.binding(b).is_none())
            .await
            .unwrap()
    );
    assert!(
        t.alice
            .with(move |ua, _| ua.binding(a).is_none())
            .await
            .unwrap()
    );
    // Later use of the ended dialog is refused: Bob's signed UPDATE, sent again to Alice,
    // finds no dialog (481), and Bob's UA refuses to send in it.
    let update = p
        .alice
        .last_received("UPDATE ")
        .expect("alice received bob's UPDATE");
    let text = with_new_branch(&update, b"later");
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.send_to(&text, t.alice.local_addr()).await.unwrap();
    let status = p
        .alice
        .expect("alice RequestRefused", |e| match e {
            UaEvent::RequestRefused { method, status, .. } if method == "UPDATE" => Some(*status),
            UaEvent::BindingCreated { .. } => panic!("bound in an ended dialog"),
            _ => None,
        })
        .await;
    assert_eq!(status, 481);
    let r = t
        .bob
        .with(move |ua, now| ua.send_certificate_update(now, b))
        .await
        .unwrap();
    assert!(r.is_err(), "the call is over at bob: {r:?}");
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_by_notify_removes_binding_and_later_use_is_refused() {
    let (_dir, t, mut p) = registered(TrapezoidOptions::default()).await;
    let (a, b) = call_with_bindings(&t, &mut p).await;
    t.alice
        .with(move |ua, now| ua.revoke_certificate(now, a))
        .await
        .unwrap()
        .unwrap();
    let why = p.bob.binding_removed(b).await;
    assert_eq!(why, BindingEnd::Revoked);
    assert!(
        t.bob
            .with(move |ua, _| ua.binding(b).is_none())
            .await
            .unwrap()
    );
    // Alice offers the revoked certificate again: refused.
    t.alice
        .with(move |ua, now| ua.send_certificate_update(now, a))
        .await
        .unwrap()
        .unwrap();
    let (status, reason) = p.bob.refused("UPDATE").await;
    assert!(reason.contains("revoked"), "{reason}");
    assert_eq!(status, 403);
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_change_mid_dialog_is_refused() {
    let (_dir, t, mut p) = registered(TrapezoidOptions::default()).await;
    let (a, b) = call_with_bindings(&t, &mut p).await;
    let other = vouch_auth::session_cert::LoginCertificate::generate(
        ALICE,
        None,
        vouch::server::wall_unix() - 60,
        3600,
    )
    .unwrap();
    let der = other.der().to_vec();
    t.alice
        .with(move |ua, now| {
            ua.set_certificate(der);
            ua.send_certificate_update(now, a)
        })
        .await
        .unwrap()
        .unwrap();
    let (status, reason) = p.bob.refused("UPDATE").await;
    assert_eq!(status, 403);
    assert!(reason.contains("changed mid-dialog"), "{reason}");
    let status = p
        .alice
        .expect("alice's UPDATE refused", |e| match e {
            UaEvent::RequestCompleted { method, status, .. } if method == "UPDATE" => Some(*status),
            _ => None,
        })
        .await;
    assert_eq!(status, 403);
    // The original binding stands.
    let still = t
        .bob
        .with(move |ua, _| ua.binding(b).map(|x| x.aor().to_owned()))
        .await
        .unwrap();
    assert_eq!(still.as_deref(), Some(ALICE));
    t.shutdown().await;
}

/// Replaces the certificate in the INVITE body by another of the same length (flips bytes
/// inside the DER), so the body no longer matches the Identity signature.
fn swap_certificate(to_biloxi: bool, m: &Bytes) -> Option<Bytes> {
    if !to_biloxi || !m.starts_with(b"INVITE ") {
        return None;
    }
    let text = m.to_vec();
    let marker = b"smime.p7c\r\n\r\n";
    let at = text.windows(marker.len()).position(|w| w == marker)? + marker.len();
    let mut out = text;
    // Somewhere inside the certificate's public key.
    for b in &mut out[at + 200..at + 232] {
        *b ^= 0x5a;
    }
    Some(Bytes::from(out))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn man_in_the_middle_swapping_the_certificate_gets_438_and_no_binding() {
    let options = TrapezoidOptions {
        tamper: Some(Arc::new(swap_certificate)),
        ..TrapezoidOptions::default()
    };
    let (_dir, mut t, mut p) = registered(options).await;
    let a = t
        .alice
        .with(|ua, now| ua.call(now, BOB))
        .await
        .unwrap()
        .unwrap();
    let status = p
        .bob
        .expect("bob RequestRefused", |e| match e {
            UaEvent::RequestRefused { method, status, .. } if method == "INVITE" => Some(*status),
            UaEvent::BindingCreated { .. } => panic!("bound a tampered certificate"),
            _ => None,
        })
        .await;
    assert_eq!(status, 438);
    let status = p.alice.call_failed(a).await;
    assert_eq!(status, 438);
    assert!(t.bob.with(|ua, _| ua.bindings().is_empty()).await.unwrap());
    let tapped: Vec<Tapped> = std::iter::from_fn(|| t.tap_out.try_recv().ok()).collect();
    assert!(
        tapped.iter().any(|x| x.original != x.forwarded),
        "the tap altered the INVITE"
    );
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_signed_invite_is_refused() {
    let (_dir, t, mut p) = registered(TrapezoidOptions::default()).await;
    let (_a, _b) = call_with_bindings(&t, &mut p).await;
    // The signed INVITE as it reached Bob, captured from his side.
    let invite = p.bob.last_received("INVITE ");
    let invite = invite.expect("bob received the INVITE");
    // An attacker sends it again to Bob, with a fresh branch so it is a new transaction.
    let text = with_new_branch(&invite, b"replay");
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.send_to(&text, t.bob.local_addr()).await.unwrap();
    let (status, reason) = p
        .bob
        .expect("bob RequestRefused", |e| match e {
            UaEvent::RequestRefused {
                method,
                status,
                reason,
                ..
            } if method == "INVITE" => Some((*status, reason.clone())),
            UaEvent::IncomingCall { .. } => panic!("a replayed INVITE became a call"),
            _ => None,
        })
        .await;
    assert_eq!(status, 403, "{reason}");
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_invite_gets_428_when_identity_required() {
    let options = TrapezoidOptions {
        bob_requires_identity: true,
        ..TrapezoidOptions::default()
    };
    let (_dir, t, mut p) = registered(options).await;
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = sock.local_addr().unwrap().port();
    let invite = format!(
        "INVITE {BOB} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKnosig\r\n\
         Max-Forwards: 70\r\nFrom: <sip:mallory@evil.example>;tag=m\r\nTo: <{BOB}>\r\n\
         Call-ID: nosig\r\nCSeq: 1 INVITE\r\nContact: <sip:m@127.0.0.1:{port}>\r\n\
         Content-Length: 0\r\n\r\n"
    );
    sock.send_to(invite.as_bytes(), t.bob.local_addr())
        .await
        .unwrap();
    let status = p
        .bob
        .expect("bob RequestRefused", |e| match e {
            UaEvent::RequestRefused { status, .. } => Some(*status),
            _ => None,
        })
        .await;
    assert_eq!(status, 428);
    t.shutdown().await;
}

/// A tamper that edits the header lines `edit` picks in responses to `method` towards Alice.
fn edit_responses(
    method: &'static str,
    edit: fn(&str) -> Option<String>,
) -> vouch::trapezoid::Tamper {
    Arc::new(move |to_server: bool, m: &Bytes| {
        if to_server || !m.starts_with(b"SIP/2.0 2") {
            return None;
        }
        let text = std::str::from_utf8(m).ok()?;
        let (head, body) = text.split_once("\r\n\r\n")?;
        if !head
            .lines()
            .any(|l| l.starts_with("CSeq:") && l.ends_with(method))
        {
            return None;
        }
        let head: Vec<String> = head
            .split("\r\n")
            .filter_map(|l| match edit(l) {
                Some(x) if x.is_empty() => None,
                Some(x) => Some(x),
                None => Some(l.to_owned()),
            })
            .collect();
        Some(Bytes::from(format!("{}\r\n\r\n{body}", head.join("\r\n"))))
    })
}

fn strip_infos(line: &str) -> Option<String> {
    (line.starts_with("Proxy-Authentication-Info:") || line.starts_with("Authentication-Info:"))
        .then(String::new)
}

fn corrupt_rspauth(line: &str) -> Option<String> {
    if !line.starts_with("Proxy-Authentication-Info:") {
        return None;
    }
    let at = line.find("rspauth=\"")? + "rspauth=\"".len();
    let mut out = line.to_owned();
    let flipped = if &line[at..=at] == "0" { "1" } else { "0" };
    out.replace_range(at..=at, flipped);
    Some(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stripped_proxy_authentication_info_ends_the_call_with_bye() {
    let options = TrapezoidOptions {
        alice_tamper: Some(edit_responses("INVITE", strip_infos)),
        ..TrapezoidOptions::default()
    };
    let (_dir, t, mut p) = registered(options).await;
    let a = t
        .alice
        .with(|ua, now| ua.call(now, BOB))
        .await
        .unwrap()
        .unwrap();
    let reason = p
        .alice
        .expect("alice ServerNotAuthenticated", |e| match e {
            UaEvent::ServerNotAuthenticated {
                method,
                call,
                reason,
            } if method == "INVITE" => {
                assert_eq!(*call, Some(a));
                Some(reason.clone())
            }
            UaEvent::CallEstablished { .. } => panic!("call accepted without the proxy's rspauth"),
            _ => None,
        })
        .await;
    assert!(reason.contains("did not authenticate"), "{reason}");
    // The UA ended the call: Bob gets the BYE and drops his binding.
    let why = p
        .bob
        .expect("bob BindingRemoved", |e| match e {
            UaEvent::BindingRemoved { reason, .. } => Some(*reason),
            _ => None,
        })
        .await;
    assert_eq!(why, BindingEnd::Bye);
    assert!(
        !t.alice
            .with(move |ua, _| ua.is_established(a))
            .await
            .unwrap()
    );
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_rspauth_is_refused() {
    let options = TrapezoidOptions {
        alice_tamper: Some(edit_responses("INVITE", corrupt_rspauth)),
        ..TrapezoidOptions::default()
    };
    let (_dir, t, mut p) = registered(options).await;
    t.alice
        .with(|ua, now| ua.call(now, BOB))
        .await
        .unwrap()
        .unwrap();
    let reason = p.alice.not_authenticated("INVITE").await;
    assert!(reason.contains("wrong rspauth"), "{reason}");
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrar_without_rspauth_is_reported_unauthenticated() {
    let options = TrapezoidOptions {
        alice_tamper: Some(edit_responses("REGISTER", strip_infos)),
        ..TrapezoidOptions::default()
    };
    let (_dir, t, mut p) = started(options).await;
    t.alice
        .with(|ua, now| ua.register(now))
        .await
        .unwrap()
        .unwrap();
    let reason = p.alice.not_authenticated("REGISTER").await;
    assert!(reason.contains("atlanta.example"), "{reason}");
    assert!(!t.alice.with(|ua, _| ua.is_registered()).await.unwrap());
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_and_decline_remove_the_binding() {
    let options = TrapezoidOptions {
        bob_rings: true,
        ..TrapezoidOptions::default()
    };
    let (_dir, t, mut p) = registered(options).await;

    // Alice cancels while Bob rings.
    let a = t
        .alice
        .with(|ua, now| ua.call(now, BOB))
        .await
        .unwrap()
        .unwrap();
    let b = p.bob.binding_created().await;
    p.alice
        .expect("alice 180", |e| {
            matches!(e, UaEvent::CallProgress { status: 180, .. }).then_some(())
        })
        .await;
    assert!(
        t.bob
            .with(move |ua, _| ua.binding(b).is_some())
            .await
            .unwrap()
    );
    t.alice
        .with(move |ua, now| ua.hangup(now, a))
        .await
        .unwrap()
        .unwrap();
    let why = p.bob.binding_removed(b).await;
    assert_eq!(why, BindingEnd::Cancel);
    let status = p.alice.call_failed(a).await;
    assert_eq!(status, 487);

    // Bob declines the next call: the binding goes with the failure response.
    let a2 = t
        .alice
        .with(|ua, now| ua.call(now, BOB))
        .await
        .unwrap()
        .unwrap();
    let b2 = p.bob.binding_created().await;
    t.bob
        .with(move |ua, now| ua.hangup(now, b2))
        .await
        .unwrap()
        .unwrap();
    let why = p.bob.binding_removed(b2).await;
    assert_eq!(why, BindingEnd::Failed);
    let status = p.alice.call_failed(a2).await;
    assert_eq!(status, 603);
    assert!(t.bob.with(|ua, _| ua.bindings().is_empty()).await.unwrap());
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fingerprint_only_body_binds_the_fingerprint() {
    let options = TrapezoidOptions {
        alice_carriage: Some(vouch_proto::ua::CertificateTransport::SdpFingerprint),
        ..TrapezoidOptions::default()
    };
    let (_dir, t, mut p) = registered(options).await;
    let (_a, b) = call_with_bindings(&t, &mut p).await;
    let alice_cert = t
        .alice
        .with(|ua, _| ua.certificate().map(<[u8]>::to_vec))
        .await
        .unwrap()
        .unwrap();
    let bound = t
        .bob
        .with(move |ua, _| ua.binding(b).cloned())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bound.certificate(), None, "only the fingerprint travelled");
    assert_eq!(
        bound.fingerprint(),
        vouch_auth::session_cert::CertFingerprint::of(&alice_cert).to_string()
    );
    // The INVITE Bob got was plain SDP with the fingerprint, no S/MIME part.
    let invite = p.bob.last_received("INVITE ").unwrap();
    let text = String::from_utf8_lossy(&invite);
    assert!(text.contains("Content-Type: application/sdp"), "{text}");
    assert!(text.contains("a=fingerprint:sha-256 "), "{text}");
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_request_to_the_ua_gets_400_with_a_warning() {
    let (_dir, t, mut p) = started(TrapezoidOptions::default()).await;
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = sock.local_addr().unwrap().port();
    // A Contact without its closing '>' (what can be read is enough to route the 400).
    let bad = format!(
        "INVITE {BOB} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKbad\r\n\
         Max-Forwards: 70\r\nFrom: <sip:m@evil.example>;tag=1\r\nTo: <{BOB}>\r\n\
         Call-ID: bad\r\nCSeq: 1 INVITE\r\nContact: <sip:m@127.0.0.1\r\n\
         Content-Length: 0\r\n\r\n"
    );
    sock.send_to(bad.as_bytes(), t.bob.local_addr())
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let (n, _) = tokio::time::timeout(WAIT, sock.recv_from(&mut buf))
        .await
        .expect("no response")
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(text.starts_with("SIP/2.0 400 "), "{text}");
    assert!(text.contains("Warning: 399 "), "{text}");
    let status = p
        .bob
        .expect("bob RequestRefused", |e| match e {
            UaEvent::RequestRefused { status, .. } => Some(*status),
            _ => None,
        })
        .await;
    assert_eq!(status, 400);
    t.shutdown().await;
}
