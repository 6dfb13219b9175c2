//! RFC 3263 server location end to end: a vouch proxy whose `[dns] nameservers` is an
//! authoritative DNS server running in the test (hickory-server, a real zone over a real UDP
//! socket on 127.0.0.1), a caller and bob's phone on real UDP sockets. The proxy finds bob's
//! server for `sip:bob@biloxi.example` by NAPTR → SRV → A (§4.1–4.2), fails over to the next
//! SRV target when the first one never answers, and at once when its TCP connection is
//! refused (§4.3), and answers 502 with a Warning for a name that does not exist.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_server::Server as DnsServer;
use hickory_server::proto::rr::rdata::{A, NAPTR, SOA, SRV};
use hickory_server::proto::rr::{Name, RData, Record};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneHandler, ZoneType};
use support::{spawn_uas, udp_addr};
use vouch::Server;
use vouch::config::{Config, ListenAddr};
use vouch_msg::{HeaderName, Message};

fn name(s: &str) -> Name {
    Name::from_str(s).unwrap()
}

/// The zone `biloxi.example.`:
/// - `biloxi.example` has a NAPTR for SIP over UDP pointing at `_sip._udp.biloxi.example`,
///   whose one SRV target `bob-host` is `127.0.0.1:bob_port`;
/// - `two.biloxi.example` has no NAPTR and two `_sip._udp` SRV targets: `dead` (priority 10,
///   `127.0.0.1:dead_port`, where nothing listens) and `bob-host` (priority 20);
/// - `mixed.biloxi.example` has two NAPTRs: SIP over TCP first, whose SRV target is
///   `dead:dead_tcp_port` (connections refused), then SIP over UDP to `bob-host`.
fn zone(bob_port: u16, dead_port: u16, dead_tcp_port: u16) -> InMemoryZoneHandler {
    let origin = name("biloxi.example.");
    let mut zone = InMemoryZoneHandler::empty(origin.clone(), ZoneType::Primary, AxfrPolicy::Deny);
    let records = [
        Record::from_rdata(
            origin.clone(),
            60,
            RData::SOA(SOA::new(
                name("ns.biloxi.example."),
                name("hostmaster.biloxi.example."),
                1,
                3600,
                600,
                86400,
                60,
            )),
        ),
        Record::from_rdata(
            origin.clone(),
            60,
            RData::NAPTR(NAPTR::new(
                10,
                50,
                b"s".to_vec().into(),
                b"SIP+D2U".to_vec().into(),
                Vec::new().into(),
                name("_sip._udp.biloxi.example."),
            )),
        ),
        Record::from_rdata(
            name("_sip._udp.biloxi.example."),
            60,
            RData::SRV(SRV::new(10, 10, bob_port, name("bob-host.biloxi.example."))),
        ),
        Record::from_rdata(
            name("_sip._udp.two.biloxi.example."),
            60,
            RData::SRV(SRV::new(10, 10, dead_port, name("dead.biloxi.example."))),
        ),
        Record::from_rdata(
            name("_sip._udp.two.biloxi.example."),
            60,
            RData::SRV(SRV::new(20, 10, bob_port, name("bob-host.biloxi.example."))),
        ),
        Record::from_rdata(
            name("mixed.biloxi.example."),
            60,
            RData::NAPTR(NAPTR::new(
                10,
                50,
                b"s".to_vec().into(),
                b"SIP+D2T".to_vec().into(),
                Vec::new().into(),
                name("_sip._tcp.mixed.biloxi.example."),
            )),
        ),
        Record::from_rdata(
            name("mixed.biloxi.example."),
            60,
            RData::NAPTR(NAPTR::new(
                20,
                50,
                b"s".to_vec().into(),
                b"SIP+D2U".to_vec().into(),
                Vec::new().into(),
                name("_sip._udp.mixed.biloxi.example."),
            )),
        ),
        Record::from_rdata(
            name("_sip._tcp.mixed.biloxi.example."),
            60,
            RData::SRV(SRV::new(
                10,
                10,
                dead_tcp_port,
                name("dead.biloxi.example."),
            )),
        ),
        Record::from_rdata(
            name("_sip._udp.mixed.biloxi.example."),
            60,
            RData::SRV(SRV::new(10, 10, bob_port, name("bob-host.biloxi.example."))),
        ),
        Record::from_rdata(
            name("bob-host.biloxi.example."),
            60,
            RData::A(A(Ipv4Addr::LOCALHOST)),
        ),
        Record::from_rdata(
            name("dead.biloxi.example."),
            60,
            RData::A(A(Ipv4Addr::LOCALHOST)),
        ),
    ];
    for r in records {
        assert!(zone.upsert_mut(r, 1));
    }
    zone
}

/// Serves `zone` on a UDP port of 127.0.0.1 until the returned server is dropped.
async fn serve(zone: InMemoryZoneHandler) -> (DnsServer<Catalog>, SocketAddr) {
    let mut catalog = Catalog::new();
    let handler: Arc<dyn ZoneHandler> = Arc::new(zone);
    catalog.upsert(handler.origin().clone(), vec![handler]);
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let mut server = DnsServer::new(catalog);
    server.register_socket(socket);
    (server, addr)
}

/// A proxy for atlanta.example (no authentication, no signing) asking `dns` for other
/// domains, with T1 = 50 ms so that Timer B (64·T1) gives a silent server up in 3.2 s.
async fn proxy(data: &Path, dns: SocketAddr) -> Server {
    let mut config = Config {
        data_dir: data.to_path_buf(),
        domains: vec!["atlanta.example".to_owned()],
        listen: vec![
            "udp:127.0.0.1:0".parse::<ListenAddr>().unwrap(),
            "tcp:127.0.0.1:0".parse::<ListenAddr>().unwrap(),
        ],
        ..Config::default()
    };
    config.auth.enabled = false;
    config.identity.sign = false;
    config.identity.http_listen = String::new();
    config.identity.cert_url = Some("http://127.0.0.1/unused".into());
    config.dns.nameservers = vec![dns];
    config.timers.t1_ms = 50;
    config.timers.t2_ms = 400;
    Server::start(&config, None).await.unwrap()
}

/// alice sends an INVITE for `ruri` through `proxy` and waits (up to 15 s) for the final
/// response.
async fn call(proxy: SocketAddr, ruri: &str, call_id: &str) -> Message {
    let alice = UdpSocket::bind("127.0.0.1:0").unwrap();
    alice
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let port = alice.local_addr().unwrap().port();
    let invite = format!(
        "INVITE {ruri} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-{call_id};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@atlanta.example>;tag=a\r\n\
         To: <{ruri}>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:alice@127.0.0.1:{port}>\r\n\
         Content-Length: 0\r\n\r\n"
    );
    alice.send_to(invite.as_bytes(), proxy).unwrap();
    tokio::task::spawn_blocking(move || {
        let mut buf = vec![0u8; 65_536];
        loop {
            let (n, _) = alice.recv_from(&mut buf).expect("a final response");
            let m = Message::parse(buf[..n].to_vec()).unwrap();
            if m.status().is_some_and(|s| s >= 200) {
                return m;
            }
        }
    })
    .await
    .unwrap()
}

/// A UDP port of 127.0.0.1 where nothing listens (bound, then released).
fn closed_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A TCP port of 127.0.0.1 where connections are refused (bound, then released).
fn closed_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_reach_the_server_dns_names_and_fail_over_to_the_next_srv_target() {
    let bob = UdpSocket::bind("127.0.0.1:0").unwrap();
    let bob_port = bob.local_addr().unwrap().port();
    let invites = spawn_uas(bob);
    let dead_port = closed_port();
    let (_dns, dns_addr) = serve(zone(bob_port, dead_port, closed_tcp_port())).await;
    let data = tempfile::tempdir().unwrap();
    let server = proxy(data.path(), dns_addr).await;
    let proxy_addr = udp_addr(&server);

    // NAPTR → SRV → A.
    let r = call(proxy_addr, "sip:bob@biloxi.example", "naptr").await;
    assert_eq!(r.status(), Some(200), "{r:?}");
    assert_eq!(invites.lock().unwrap().len(), 1);
    let first = invites.lock().unwrap()[0].clone();
    assert_eq!(first.request_uri_str(), Some("sip:bob@biloxi.example"));

    // SRV (no NAPTR): the priority-10 target never answers; after Timer B the same request
    // goes, as a new transaction, to the priority-20 one.
    let started = Instant::now();
    let r = call(proxy_addr, "sip:bob@two.biloxi.example", "failover").await;
    assert_eq!(r.status(), Some(200), "{r:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(3200),
        "bob was not tried before the first target's Timer B"
    );
    let second = {
        let got = invites.lock().unwrap();
        assert_eq!(got.len(), 2);
        got[1].clone()
    };
    assert_eq!(second.call_id(), "failover");

    // A name that does not exist: 502 naming it, nothing forwarded.
    let r = call(proxy_addr, "sip:bob@nowhere.biloxi.example", "nx").await;
    assert_eq!(r.status(), Some(502), "{r:?}");
    let warning = r.header(HeaderName::Warning).unwrap().value.to_owned();
    assert!(warning.contains("nowhere.biloxi.example"), "{warning}");
    assert_eq!(invites.lock().unwrap().len(), 2);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_fails_over_to_the_next_naptr_transport_at_once() {
    let bob = UdpSocket::bind("127.0.0.1:0").unwrap();
    let bob_port = bob.local_addr().unwrap().port();
    let invites = spawn_uas(bob);
    let (_dns, dns_addr) = serve(zone(bob_port, closed_port(), closed_tcp_port())).await;
    let data = tempfile::tempdir().unwrap();
    let server = proxy(data.path(), dns_addr).await;

    // NAPTR order 10 is TCP to a closed port: the refused connection fails that branch
    // (RFC 3263 §4.3) and the request goes to the order-20 UDP server well before the
    // 3.2 s Timer B.
    let started = Instant::now();
    let r = call(udp_addr(&server), "sip:bob@mixed.biloxi.example", "refused").await;
    assert_eq!(r.status(), Some(200), "{r:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}: failed over by timeout, not by the refused connection",
        started.elapsed()
    );
    assert_eq!(invites.lock().unwrap().len(), 1);
    server.shutdown().await;
}
