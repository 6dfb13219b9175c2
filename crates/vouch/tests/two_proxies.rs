//! Two vouch proxies in series over real UDP sockets on 127.0.0.1, each with digest
//! authentication and mutual authentication (RFC 3261 §22.3, Proxy-Authentication-Info).
//!
//! atlanta is alice's own proxy (scope `local-users`); chicago, a second realm, challenges
//! everyone passing through (scope `everyone`) and has a visitor account for alice in realm
//! chicago.example.com. bob is registered at chicago (with digest). alice's INVITE is
//! preloaded with the route atlanta, chicago: 407 from atlanta, 407 from chicago (relayed by
//! atlanta), then the INVITE with both Proxy-Authorization values; the 200 comes back with
//! chicago's Proxy-Authentication-Info (unchanged by atlanta) and atlanta's, and alice's
//! Responder proves both servers. A relay between the proxies that alters or removes
//! chicago's value makes alice's check fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::{exchange, register_with_digest, responder, spawn_uas, udp_addr, values};
use vouch::Server;
use vouch::config::{Config, ListenAddr, ScopeSetting};
use vouch::store::Store;
use vouch_auth::digest::ClientAuthError;
use vouch_msg::headers::auth::{AuthenticationInfo, Challenge, Credentials};
use vouch_msg::{HeaderName, Message};

const PASSWORD: &str = "wonderland";
const BOB_PASSWORD: &str = "builder";
const ATLANTA: &str = "atlanta.example.com";
const CHICAGO: &str = "chicago.example.com";

/// A UDP-only proxy for `domain` on a free port, digest on with `scope`, identity signing off.
async fn start(data: &Path, domain: &str, scope: ScopeSetting) -> Server {
    let mut config = Config {
        data_dir: data.to_path_buf(),
        domains: vec![domain.to_string()],
        listen: vec!["udp:127.0.0.1:0".parse::<ListenAddr>().unwrap()],
        ..Config::default()
    };
    config.auth.scope = scope;
    config.identity.sign = false;
    config.identity.http_listen = String::new();
    config.identity.cert_url = Some("http://127.0.0.1/unused".into());
    Server::start(&config, None).await.unwrap()
}

/// What the relay between atlanta and chicago does to chicago's Proxy-Authentication-Info
/// on the 200 to the INVITE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tamper {
    /// Pass it on as it is (the relay only watches).
    Nothing,
    /// Change one hex digit of its rspauth.
    Corrupt,
    /// Remove the header.
    Strip,
}

/// A man in the middle on the link atlanta → chicago: atlanta's route names the relay, which
/// rewrites that Route value to chicago and the top Via to itself (so that responses come
/// back through it), and on the way back restores atlanta's Via and applies `tamper`.
/// Returns its address and chicago's Proxy-Authentication-Info values as chicago sent them.
fn spawn_relay(
    atlanta: SocketAddr,
    chicago: SocketAddr,
    tamper: Tamper,
) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let me = sock.local_addr().unwrap();
    let original = Arc::new(Mutex::new(Vec::new()));
    let seen = original.clone();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65_536];
        let (a, c, m) = (atlanta.port(), chicago.port(), me.port());
        loop {
            let Ok((n, from)) = sock.recv_from(&mut buf) else {
                if Arc::strong_count(&original) == 1 {
                    return;
                }
                continue;
            };
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if from == atlanta {
                let out = text
                    .replace(&format!("127.0.0.1:{m};lr"), &format!("127.0.0.1:{c};lr"))
                    .replacen(
                        &format!("SIP/2.0/UDP 127.0.0.1:{a}"),
                        &format!("SIP/2.0/UDP 127.0.0.1:{m}"),
                        1,
                    );
                sock.send_to(out.as_bytes(), chicago).unwrap();
            } else if from == chicago {
                let text = text
                    .replacen(
                        &format!("SIP/2.0/UDP 127.0.0.1:{m}"),
                        &format!("SIP/2.0/UDP 127.0.0.1:{a}"),
                        1,
                    )
                    .replace(&format!("rport={m}"), &format!("rport={a}"));
                let is_invite_ok = text.starts_with("SIP/2.0 200 ") && text.contains(" INVITE\r\n");
                let mut out = String::new();
                for line in text.split_inclusive("\r\n") {
                    let Some(value) = line
                        .split_once(':')
                        .filter(|(n, _)| {
                            is_invite_ok && n.eq_ignore_ascii_case("Proxy-Authentication-Info")
                        })
                        .map(|(_, v)| v.trim().to_string())
                    else {
                        out.push_str(line);
                        continue;
                    };
                    original.lock().unwrap().push(value.clone());
                    match tamper {
                        Tamper::Nothing => out.push_str(line),
                        Tamper::Strip => {}
                        Tamper::Corrupt => {
                            let at = line.find("rspauth=\"").unwrap() + "rspauth=\"".len();
                            let mut l = line.to_string();
                            let d = if &l[at..=at] == "0" { "1" } else { "0" };
                            l.replace_range(at..=at, d);
                            out.push_str(&l);
                        }
                    }
                }
                sock.send_to(out.as_bytes(), atlanta).unwrap();
            }
        }
    });
    (me, seen)
}

/// What one call produced.
struct Outcome {
    /// The final responses alice received, in order.
    finals: Vec<Message>,
    /// Her last INVITE.
    last_invite: Message,
    /// Her Responder's verdict on the 200's Proxy-Authentication-Info values.
    check: Result<Vec<String>, ClientAuthError>,
    /// The INVITEs bob received.
    at_bob: Vec<Message>,
    /// chicago's values as they left chicago (only with a relay).
    from_chicago: Vec<String>,
}

/// Starts atlanta and chicago, registers bob at chicago, and has alice call him through
/// atlanta then chicago (directly, or with a relay between them when `relay` is given).
async fn call(relay: Option<Tamper>) -> Outcome {
    let tmp = tempfile::tempdir().unwrap();
    let (data_a, data_c) = (tmp.path().join("atlanta"), tmp.path().join("chicago"));
    Store::open(&data_a)
        .unwrap()
        .add_user(&format!("sip:alice@{ATLANTA}"), PASSWORD, None, &[])
        .unwrap();
    {
        let mut c = Store::open(&data_c).unwrap();
        // alice's visitor account at chicago: her own AoR, chicago's realm.
        c.add_user(
            &format!("sip:alice@{ATLANTA}"),
            PASSWORD,
            Some(CHICAGO),
            &[],
        )
        .unwrap();
        c.add_user(&format!("sip:bob@{CHICAGO}"), BOB_PASSWORD, None, &[])
            .unwrap();
    }
    let atlanta = start(&data_a, ATLANTA, ScopeSetting::LocalUsers).await;
    let chicago = start(&data_c, CHICAGO, ScopeSetting::Everyone).await;
    let (a_addr, c_addr) = (udp_addr(&atlanta), udp_addr(&chicago));

    let bob = UdpSocket::bind("127.0.0.1:0").unwrap();
    bob.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    register_with_digest(&bob, c_addr, ("bob", CHICAGO, BOB_PASSWORD)).await;
    let at_bob = spawn_uas(bob);

    let (second_hop, from_chicago) = match relay {
        Some(t) => {
            let (r, seen) = spawn_relay(a_addr, c_addr, t);
            (r, Some(seen))
        }
        None => (c_addr, None),
    };

    let ua = UdpSocket::bind("127.0.0.1:0").unwrap();
    ua.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let port = ua.local_addr().unwrap().port();
    let ruri = format!("sip:bob@{CHICAGO}");
    let invite = |cseq: u32, auth: &[String]| {
        let auth: String = auth
            .iter()
            .map(|a| format!("Proxy-Authorization: {a}\r\n"))
            .collect();
        format!(
            "INVITE {ruri} SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-two-{cseq};rport\r\n\
             Max-Forwards: 70\r\n\
             Route: <sip:{a_addr};lr>, <sip:{second_hop};lr>\r\n\
             From: <sip:alice@{ATLANTA}>;tag=alice\r\n\
             To: <sip:bob@{CHICAGO}>\r\n\
             Call-ID: two-proxies\r\n\
             CSeq: {cseq} INVITE\r\n\
             Contact: <sip:alice@127.0.0.1:{port}>\r\n\
             {auth}Content-Length: 0\r\n\r\n"
        )
    };
    // The ACK to a non-2xx final response (same branch, hop by hop to atlanta).
    let ack = |cseq: u32, r: &Message| {
        let to = r.header(HeaderName::To).unwrap().value.to_owned();
        format!(
            "ACK {ruri} SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-two-{cseq};rport\r\n\
             Max-Forwards: 70\r\n\
             Route: <sip:{a_addr};lr>, <sip:{second_hop};lr>\r\n\
             From: <sip:alice@{ATLANTA}>;tag=alice\r\n\
             To: {to}\r\n\
             Call-ID: two-proxies\r\n\
             CSeq: {cseq} ACK\r\n\
             Content-Length: 0\r\n\r\n"
        )
    };

    let mut alice = responder("alice", PASSWORD);
    let mut finals = Vec::new();
    let mut creds: Vec<String> = Vec::new();
    let mut last_invite = String::new();
    for cseq in 1..=3u32 {
        last_invite = invite(cseq, &creds);
        let r = exchange(&ua, a_addr, last_invite.clone(), cseq).await;
        let status = r.status().unwrap();
        finals.push(r);
        if status != 407 {
            break;
        }
        ua.send_to(ack(cseq, finals.last().unwrap()).as_bytes(), a_addr)
            .unwrap();
        let ch = values(finals.last().unwrap(), HeaderName::ProxyAuthenticate);
        let ch: Vec<Challenge<'_>> = ch.iter().map(|v| Challenge::parse(v).unwrap()).collect();
        alice.handle_challenges(&ch).unwrap();
        creds = alice.authorize("INVITE", &ruri, b"", 1000 + u64::from(cseq));
    }
    let last = finals.last().unwrap();
    let infos = values(last, HeaderName::ProxyAuthenticationInfo);
    let infos: Vec<AuthenticationInfo<'_>> = infos
        .iter()
        .map(|v| AuthenticationInfo::parse(v).unwrap())
        .collect();
    let check = alice.check_infos(&infos, b"").map(|proofs| {
        let mut realms: Vec<String> = proofs.iter().map(|p| p.realm().to_owned()).collect();
        realms.sort();
        realms
    });
    let received = at_bob.lock().unwrap().clone();
    let from_chicago = from_chicago.map_or_else(Vec::new, |s| s.lock().unwrap().clone());
    atlanta.shutdown().await;
    chicago.shutdown().await;
    Outcome {
        finals,
        last_invite: Message::parse(last_invite.into_bytes()).unwrap(),
        check,
        at_bob: received,
        from_chicago,
    }
}

fn statuses(o: &Outcome) -> Vec<u16> {
    o.finals.iter().map(|m| m.status().unwrap()).collect()
}

fn realm_of_challenge(m: &Message) -> String {
    let v = values(m, HeaderName::ProxyAuthenticate);
    assert!(!v.is_empty(), "{m:?}");
    let realms: Vec<String> = v
        .iter()
        .map(|v| Challenge::parse(v).unwrap().realm.unwrap().into_owned())
        .collect();
    assert!(realms.iter().all(|r| *r == realms[0]), "{realms:?}");
    realms[0].clone()
}

/// The cnonce alice used for `realm` in her last INVITE.
fn cnonce_for(invite: &Message, realm: &str) -> String {
    values(invite, HeaderName::ProxyAuthorization)
        .iter()
        .map(|v| Credentials::parse(v).unwrap())
        .find(|c| c.realm.as_deref() == Some(realm))
        .and_then(|c| c.cnonce.map(|x| x.into_owned()))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_proxies_challenge_and_both_prove_themselves_in_the_200() {
    let o = call(None).await;
    assert_eq!(statuses(&o), vec![407, 407, 200], "{:?}", o.finals);
    assert_eq!(realm_of_challenge(&o.finals[0]), ATLANTA);
    assert_eq!(realm_of_challenge(&o.finals[1]), CHICAGO);
    assert_eq!(
        values(&o.last_invite, HeaderName::ProxyAuthorization).len(),
        2
    );

    // Two values, atlanta's (added last) above chicago's, each matching its realm's cnonce.
    let infos = values(&o.finals[2], HeaderName::ProxyAuthenticationInfo);
    assert_eq!(infos.len(), 2, "{infos:?}");
    let first = AuthenticationInfo::parse(&infos[0]).unwrap();
    let second = AuthenticationInfo::parse(&infos[1]).unwrap();
    assert_eq!(
        first.cnonce.as_deref(),
        Some(cnonce_for(&o.last_invite, ATLANTA).as_str())
    );
    assert_eq!(
        second.cnonce.as_deref(),
        Some(cnonce_for(&o.last_invite, CHICAGO).as_str())
    );
    assert!(first.rspauth.is_some() && second.rspauth.is_some());
    // alice's Responder proves both servers.
    assert_eq!(
        o.check.unwrap(),
        vec![ATLANTA.to_owned(), CHICAGO.to_owned()]
    );

    // bob got the call once, with no credentials left in it.
    assert_eq!(o.at_bob.len(), 1);
    assert!(o.at_bob[0].header(HeaderName::ProxyAuthorization).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chicago_s_value_reaches_alice_byte_for_byte() {
    let o = call(Some(Tamper::Nothing)).await;
    assert_eq!(statuses(&o), vec![407, 407, 200], "{:?}", o.finals);
    assert_eq!(o.from_chicago.len(), 1, "{:?}", o.from_chicago);
    let infos = values(&o.finals[2], HeaderName::ProxyAuthenticationInfo);
    assert_eq!(infos.len(), 2, "{infos:?}");
    assert_eq!(infos[1], o.from_chicago[0]);
    assert_eq!(
        o.check.unwrap(),
        vec![ATLANTA.to_owned(), CHICAGO.to_owned()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rspauth_altered_between_the_proxies_fails_alice_s_check() {
    let o = call(Some(Tamper::Corrupt)).await;
    // The call itself goes through: only alice can tell.
    assert_eq!(statuses(&o), vec![407, 407, 200], "{:?}", o.finals);
    let infos = values(&o.finals[2], HeaderName::ProxyAuthenticationInfo);
    assert_eq!(infos.len(), 2, "{infos:?}");
    assert_ne!(infos[1], o.from_chicago[0]);
    match o.check {
        Err(ClientAuthError::BadRspauth(realm)) => assert_eq!(realm, CHICAGO),
        other => panic!("expected BadRspauth for chicago, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_removed_between_the_proxies_fails_alice_s_check() {
    let o = call(Some(Tamper::Strip)).await;
    assert_eq!(statuses(&o), vec![407, 407, 200], "{:?}", o.finals);
    assert_eq!(o.from_chicago.len(), 1);
    let infos = values(&o.finals[2], HeaderName::ProxyAuthenticationInfo);
    assert_eq!(infos.len(), 1, "{infos:?}");
    match o.check {
        Err(ClientAuthError::MissingRspauth(realm)) => assert_eq!(realm, CHICAGO),
        other => panic!("expected MissingRspauth for chicago, got {other:?}"),
    }
}
