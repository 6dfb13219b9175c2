//! The RFC 4474 verification service end to end, over real UDP sockets on 127.0.0.1: atlanta
//! signs its users' requests (`[identity]`, certificate served from its HTTP endpoint, issued
//! by its development CA), chicago verifies inbound requests (`[verification]`, trusting
//! atlanta's CA) before delivering them to bob.
//!
//! - alice's INVITE, authenticated and signed at atlanta, is verified at chicago (which fetches
//!   atlanta's certificate) and reaches bob with its Identity.
//! - An INVITE whose Identity-Info points at a certificate server that accepts connections
//!   and never answers gets 436 once the fetch times out — and while it waits, alice's call
//!   goes through chicago and is answered: the fetch runs off the event loop.
//! - An unsigned INVITE sent straight to chicago gets 428.
//! - With atlanta serving its certificate over HTTPS only (`[identity] https_listen`, TLS
//!   with its development domain certificate), chicago fetches it over https, trusting
//!   atlanta's CA, and alice's call is verified and answered.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use support::{exchange, register_with_digest, responder, spawn_uas, udp_addr, values};
use vouch::Server;
use vouch::config::{Config, ListenAddr};
use vouch::identity::IdentityMaterial;
use vouch::server::wall_unix;
use vouch::store::Store;
use vouch::tls::{TlsContext, ensure_dev_certs, ensure_dev_identity};
use vouch_auth::identity::{IdentityAlg, RsaSigningKey, add_identity};
use vouch_msg::headers::auth::Challenge;
use vouch_msg::headers::date::format_sip_date;
use vouch_msg::{HeaderName, Message};

const ATLANTA: &str = "atlanta.example.com";
const CHICAGO: &str = "chicago.example.com";
const PASSWORD: &str = "wonderland";
const BOB_PASSWORD: &str = "builder";

fn udp_config(data: &Path, domain: &str) -> Config {
    Config {
        data_dir: data.to_path_buf(),
        domains: vec![domain.to_string()],
        listen: vec!["udp:127.0.0.1:0".parse::<ListenAddr>().unwrap()],
        ..Config::default()
    }
}

/// atlanta: alice's proxy, signing with its development identity, certificate on a free port.
async fn start_atlanta(data: &Path) -> Server {
    Store::open(data)
        .unwrap()
        .add_user(&format!("sip:alice@{ATLANTA}"), PASSWORD, None, &[])
        .unwrap();
    let mut config = udp_config(data, ATLANTA);
    config.identity.http_listen = "127.0.0.1:0".into();
    let dev = ensure_dev_identity(data, &config.domains, wall_unix()).unwrap();
    let material = IdentityMaterial::load(&dev.key, &dev.cert).unwrap();
    Server::start_with_identity(&config, None, Some(material))
        .await
        .unwrap()
}

/// atlanta as [`start_atlanta`], serving its certificate over HTTPS only, with its development
/// domain certificate (naming 127.0.0.1, issued by the same CA as the identity certificate).
async fn start_atlanta_https(data: &Path) -> Server {
    Store::open(data)
        .unwrap()
        .add_user(&format!("sip:alice@{ATLANTA}"), PASSWORD, None, &[])
        .unwrap();
    let mut config = udp_config(data, ATLANTA);
    config.identity.http_listen = String::new();
    config.identity.https_listen = "127.0.0.1:0".into();
    let certs = ensure_dev_certs(
        data,
        &config.domains,
        &["127.0.0.1".parse().unwrap()],
        wall_unix(),
    )
    .unwrap();
    let tls = TlsContext::load(
        &certs.domain_cert,
        &certs.domain_key,
        std::slice::from_ref(&certs.ca_cert),
    )
    .unwrap();
    let dev = ensure_dev_identity(data, &config.domains, wall_unix()).unwrap();
    let material = IdentityMaterial::load(&dev.key, &dev.cert).unwrap();
    Server::start_with_identity(&config, Some(tls), Some(material))
        .await
        .unwrap()
}

/// chicago: bob's proxy, verifying inbound requests against `trust`, fetch timeout 2 s.
async fn start_chicago(data: &Path, trust: &Path) -> Server {
    Store::open(data)
        .unwrap()
        .add_user(&format!("sip:bob@{CHICAGO}"), BOB_PASSWORD, None, &[])
        .unwrap();
    let mut config = udp_config(data, CHICAGO);
    config.identity.sign = false;
    config.identity.http_listen = String::new();
    config.identity.cert_url = Some("http://127.0.0.1/unused".into());
    config.verification.enabled = true;
    config.verification.trust = vec![trust.to_path_buf()];
    config.verification.fetch_timeout_secs = 2;
    Server::start(&config, None).await.unwrap()
}

/// A certificate server that accepts connections and never says a word.
async fn silent_certificate_server() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    addr
}

/// An INVITE for bob@chicago from `user`@atlanta at the socket on `port`, dated now, with
/// `extra` headers.
fn invite(port: u16, user: &str, call_id: &str, cseq: u32, extra: &str) -> String {
    format!(
        "INVITE sip:bob@{CHICAGO} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-{call_id}-{cseq};rport\r\n\
         Max-Forwards: 70\r\n\
         {extra}From: <sip:{user}@{ATLANTA}>;tag={user}\r\n\
         To: <sip:bob@{CHICAGO}>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: {cseq} INVITE\r\n\
         Contact: <sip:{user}@127.0.0.1:{port}>\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

/// An INVITE straight to chicago signed by some RSA key, Identity-Info at `cert_url`.
fn signed_invite(port: u16, call_id: &str, cert_url: &str) -> String {
    let date = format!("Date: {}\r\n", format_sip_date(wall_unix()).unwrap());
    let m = Message::parse(invite(port, "mallory", call_id, 1, &date).into_bytes()).unwrap();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let key = RsaSigningKey::from_der(&key.serialize_der()).unwrap();
    let signed = add_identity(&m, &key, IdentityAlg::RsaSha1, cert_url).unwrap();
    String::from_utf8(signed.as_bytes().to_vec()).unwrap()
}

fn socket() -> (UdpSocket, u16) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let port = s.local_addr().unwrap().port();
    (s, port)
}

/// alice calls bob through atlanta then chicago, answering atlanta's 407; returns the final
/// response.
async fn alice_calls_bob(atlanta: SocketAddr, chicago: SocketAddr) -> Message {
    let (ua, port) = socket();
    let route = format!("Route: <sip:{atlanta};lr>, <sip:{chicago};lr>\r\n");
    let first = exchange(
        &ua,
        atlanta,
        invite(port, "alice", "alice-call", 1, &route),
        1,
    )
    .await;
    assert_eq!(first.status(), Some(407), "{first:?}");
    let to = first.header(HeaderName::To).unwrap().value.to_owned();
    let ack = format!(
        "ACK sip:bob@{CHICAGO} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-alice-call-1;rport\r\n\
         Max-Forwards: 70\r\n\
         {route}From: <sip:alice@{ATLANTA}>;tag=alice\r\n\
         To: {to}\r\n\
         Call-ID: alice-call\r\n\
         CSeq: 1 ACK\r\n\
         Content-Length: 0\r\n\r\n"
    );
    ua.send_to(ack.as_bytes(), atlanta).unwrap();
    let challenges = values(&first, HeaderName::ProxyAuthenticate);
    let challenges: Vec<Challenge<'_>> = challenges
        .iter()
        .map(|v| Challenge::parse(v).unwrap())
        .collect();
    let mut alice = responder("alice", PASSWORD);
    alice.handle_challenges(&challenges).unwrap();
    let creds = alice.authorize("INVITE", &format!("sip:bob@{CHICAGO}"), b"", 1);
    let extra = format!("{route}Proxy-Authorization: {}\r\n", creds[0]);
    exchange(
        &ua,
        atlanta,
        invite(port, "alice", "alice-call", 2, &extra),
        2,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_certificate_server_gets_436_while_other_calls_flow() {
    let tmp = tempfile::tempdir().unwrap();
    let (data_a, data_c) = (tmp.path().join("atlanta"), tmp.path().join("chicago"));
    let atlanta = start_atlanta(&data_a).await;
    let chicago = start_chicago(&data_c, &data_a.join("ca.pem")).await;
    let (a_addr, c_addr) = (udp_addr(&atlanta), udp_addr(&chicago));
    let (bob, _) = socket();
    register_with_digest(&bob, c_addr, ("bob", CHICAGO, BOB_PASSWORD)).await;
    let at_bob = spawn_uas(bob);

    // An unsigned INVITE from elsewhere: 428.
    let (eve, eve_port) = socket();
    let r = exchange(&eve, c_addr, invite(eve_port, "eve", "unsigned", 1, ""), 1).await;
    assert_eq!(r.status(), Some(428), "{r:?}");
    assert!(
        values(&r, HeaderName::Warning)[0].contains("Identity"),
        "{r:?}"
    );

    // mallory's INVITE names a certificate server that never answers: parked at chicago.
    let hole = silent_certificate_server().await;
    let (mallory, mallory_port) = socket();
    let request = signed_invite(
        mallory_port,
        "silent-cert",
        &format!("http://{hole}/cert.der"),
    );
    let started = Instant::now();
    let waiting = tokio::spawn(async move {
        let r = exchange(&mallory, c_addr, request, 1).await;
        (r, Instant::now())
    });

    // Meanwhile alice's call is signed at atlanta, verified at chicago and answered.
    let answered = alice_calls_bob(a_addr, c_addr).await;
    let answered_at = Instant::now();
    assert_eq!(answered.status(), Some(200), "{answered:?}");

    let (refused, refused_at) = waiting.await.unwrap();
    assert_eq!(refused.status(), Some(436), "{refused:?}");
    assert_eq!(refused.reason_phrase(), Some("Bad Identity-Info"));
    let warning = values(&refused, HeaderName::Warning).join(" ");
    assert!(warning.contains("timed out"), "{warning}");
    assert!(
        answered_at < refused_at,
        "alice's call was answered only after the silent fetch gave up ({:?} vs {:?})",
        answered_at - started,
        refused_at - started
    );

    // bob got alice's INVITE, Identity and all, and nothing of mallory's.
    let received = at_bob.lock().unwrap().clone();
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(received[0].call_id(), "alice-call");
    assert!(received[0].header(HeaderName::Identity).is_some());
    assert!(
        received[0]
            .header(HeaderName::IdentityInfo)
            .unwrap()
            .value
            .contains(atlanta.identity_cert_url().unwrap())
    );
    atlanta.shutdown().await;
    chicago.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chicago_fetches_atlantas_certificate_over_https() {
    let tmp = tempfile::tempdir().unwrap();
    let (data_a, data_c) = (tmp.path().join("atlanta"), tmp.path().join("chicago"));
    let atlanta = start_atlanta_https(&data_a).await;
    let url = atlanta.identity_cert_url().unwrap().to_owned();
    assert_eq!(
        url,
        format!("https://{}/identity.cer", atlanta.https_addr().unwrap())
    );
    assert_eq!(atlanta.http_addr(), None, "no plain HTTP to fall back on");
    let chicago = start_chicago(&data_c, &data_a.join("ca.pem")).await;
    let (a_addr, c_addr) = (udp_addr(&atlanta), udp_addr(&chicago));
    let (bob, _) = socket();
    register_with_digest(&bob, c_addr, ("bob", CHICAGO, BOB_PASSWORD)).await;
    let at_bob = spawn_uas(bob);

    let answered = alice_calls_bob(a_addr, c_addr).await;
    assert_eq!(answered.status(), Some(200), "{answered:?}");
    let received = at_bob.lock().unwrap().clone();
    assert_eq!(received.len(), 1, "{received:?}");
    assert!(received[0].header(HeaderName::Identity).is_some());
    let info = received[0]
        .header(HeaderName::IdentityInfo)
        .unwrap()
        .value
        .to_owned();
    assert!(info.contains(&format!("<{url}>")), "{info}");
    atlanta.shutdown().await;
    chicago.shutdown().await;
}
