//! The metrics endpoint (`[metrics] listen`) of a running server, scraped over HTTP after real
//! SIP traffic over UDP — an OPTIONS to the server, a digest REGISTER (401, then 200), a
//! malformed request (400), an unknown method (405) and a proxied MESSAGE: every counter has
//! the exact value the traffic implies, the gauges read the engine, and the endpoint is on its
//! own listener, not on the certificate endpoint.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use vouch::Server;
use vouch::config::{Config, ListenAddr};
use vouch::identity::IdentityMaterial;
use vouch::server::wall_unix;
use vouch::store::Store;
use vouch::tls::ensure_dev_identity;

use support::{exchange, register_with_digest, udp_addr};

const PASSWORD: &str = "wonderland";

/// A UDP server for `localhost` with digest authentication (alice's account), the identity
/// certificate endpoint and the metrics endpoint, all on free ports.
async fn start(data: &std::path::Path) -> Server {
    Store::open(data)
        .unwrap()
        .add_user("sip:alice@localhost", PASSWORD, None, &[])
        .unwrap();
    let mut config = Config {
        data_dir: data.to_path_buf(),
        listen: vec!["udp:127.0.0.1:0".parse::<ListenAddr>().unwrap()],
        ..Config::default()
    };
    config.identity.http_listen = "127.0.0.1:0".into();
    config.metrics.listen = Some("127.0.0.1:0".into());
    let dev = ensure_dev_identity(data, &config.domains, wall_unix()).unwrap();
    let material = IdentityMaterial::load(&dev.key, &dev.cert).unwrap();
    Server::start_with_identity(&config, None, Some(material))
        .await
        .unwrap()
}

/// GET `path` over a fresh HTTP/1.1 connection: the status and the body.
async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut reply))
        .await
        .expect("a reply within 5 s")
        .unwrap();
    // Lossy: the certificate endpoint answers DER.
    let reply = String::from_utf8_lossy(&reply);
    let (head, body) = reply.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}

/// A request from another domain's user to the server itself (not challenged), with extra
/// header lines.
fn to_server(method: &str, port: u16, cseq: u32, extra: &str) -> String {
    format!(
        "{method} sip:localhost SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-m-{cseq}\r\n\
         From: <sip:carol@elsewhere.example>;tag=c\r\n\
         To: <sip:localhost>\r\n\
         Call-ID: metrics-{cseq}\r\n\
         CSeq: {cseq} {method}\r\n\
         {extra}Content-Length: 0\r\n\r\n"
    )
}

/// Answers the next request `phone` receives with 200 (Via, From, To with a tag, Call-ID and
/// CSeq copied); returns its start line.
fn answer_one(phone: UdpSocket) -> String {
    let mut buf = vec![0u8; 65_536];
    let (n, from) = phone.recv_from(&mut buf).expect("a request within 5 s");
    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
    let mut out = String::from("SIP/2.0 200 OK\r\n");
    for line in text.split("\r\n").skip(1) {
        let name = line.split(':').next().unwrap_or("").trim();
        match name.to_ascii_lowercase().as_str() {
            "via" | "from" | "call-id" | "cseq" => out.push_str(&format!("{line}\r\n")),
            "to" => out.push_str(&format!("{line};tag=phone\r\n")),
            _ => {}
        }
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    phone.send_to(out.as_bytes(), from).unwrap();
    text.lines().next().unwrap().to_string()
}

/// The value of the sample `series` (name and labels, as rendered) in `text`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_the_traffic_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(tmp.path()).await;
    let sip = udp_addr(&server);
    let metrics = server
        .metrics_addr()
        .expect("the metrics endpoint is serving");

    let ua = UdpSocket::bind("127.0.0.1:0").unwrap();
    ua.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let port = ua.local_addr().unwrap().port();
    let mf = "Max-Forwards: 70\r\n";
    let r = exchange(&ua, sip, to_server("OPTIONS", port, 1, mf), 1).await;
    assert_eq!(r.status(), Some(200), "{r:?}");
    // REGISTER: 401, then 200 with the credentials.
    register_with_digest(&ua, sip, ("alice", "localhost", PASSWORD)).await;
    let bad = "Max-Forwards: many\r\n";
    let r = exchange(&ua, sip, to_server("OPTIONS", port, 3, bad), 3).await;
    assert_eq!(r.status(), Some(400), "{r:?}");
    let r = exchange(&ua, sip, to_server("FOO", port, 4, mf), 4).await;
    assert_eq!(r.status(), Some(405), "{r:?}");
    // Another domain's MESSAGE to alice, proxied to her phone (`ua`), which answers 200.
    let phone = ua.try_clone().unwrap();
    let answered = tokio::task::spawn_blocking(move || answer_one(phone));
    let carol = UdpSocket::bind("127.0.0.1:0").unwrap();
    carol
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let message = to_server("MESSAGE", carol.local_addr().unwrap().port(), 5, mf)
        .replacen("MESSAGE sip:localhost", "MESSAGE sip:alice@localhost", 1)
        .replacen("To: <sip:localhost>", "To: <sip:alice@localhost>", 1);
    let r = exchange(&carol, sip, message, 5).await;
    assert_eq!(r.status(), Some(200), "{r:?}");
    assert!(
        answered
            .await
            .unwrap()
            .starts_with("MESSAGE sip:alice@127.0.0.1:")
    );

    let (status, text) = get(metrics, "/metrics").await;
    assert_eq!(status, 200, "{text}");
    let expected = [
        ("vouch_sip_requests_received_total{method=\"OPTIONS\"}", 2.0),
        ("vouch_sip_requests_received_total{method=\"MESSAGE\"}", 1.0),
        (
            "vouch_sip_requests_received_total{method=\"REGISTER\"}",
            2.0,
        ),
        ("vouch_sip_requests_received_total{method=\"other\"}", 1.0),
        ("vouch_sip_requests_received_total{method=\"INVITE\"}", 0.0),
        ("vouch_sip_responses_sent_total{code=\"200\"}", 3.0),
        ("vouch_sip_responses_sent_total{code=\"401\"}", 1.0),
        ("vouch_sip_responses_sent_total{code=\"400\"}", 1.0),
        ("vouch_sip_responses_sent_total{code=\"405\"}", 1.0),
        ("vouch_sip_messages_rejected_total{status=\"400\"}", 1.0),
        ("vouch_sip_responses_received_total{class=\"2xx\"}", 1.0),
        ("vouch_sip_requests_sent_total{method=\"MESSAGE\"}", 1.0),
        ("vouch_sip_forwarded_total{method=\"MESSAGE\"}", 1.0),
        ("vouch_certificate_fetches_total", 0.0),
        ("vouch_registrar_aors", 1.0),
        ("vouch_registrar_bindings", 1.0),
        // The four answered here and the MESSAGE's server and client transactions linger
        // for Timer J and K (64*T1: 32 s, and T4: 5 s, on UDP).
        ("vouch_transactions", 6.0),
        // Its response context lives as long as its transactions.
        ("vouch_proxied_requests", 1.0),
        ("vouch_connections", 0.0),
        ("vouch_build_info{version=\"0.1.0\"}", 1.0),
    ];
    for (series, value) in expected {
        assert_eq!(sample(&text, series), Some(value), "{series} in\n{text}");
    }
    // No status code that was not sent is listed; nothing else was counted.
    let codes = text
        .lines()
        .filter(|l| l.starts_with("vouch_sip_responses_sent_total{"))
        .count();
    assert_eq!(codes, 4, "{text}");
    for family in [
        "vouch_sip_requests_received_total",
        "vouch_sip_requests_sent_total",
        "vouch_sip_responses_received_total",
        "vouch_sip_forwarded_total",
    ] {
        let total: f64 = text
            .lines()
            .filter(|l| l.starts_with(&format!("{family}{{")))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum();
        let want = if family == "vouch_sip_requests_received_total" {
            6.0
        } else {
            1.0
        };
        assert_eq!(total, want, "{family} in\n{text}");
    }
    assert!(text.contains("# TYPE vouch_sip_requests_received_total counter"));
    assert!(text.contains("# TYPE vouch_registrar_bindings gauge"));

    // Its own listener only: not on the certificate endpoint, and nothing else on it.
    let http = server
        .http_addr()
        .expect("the certificate endpoint is serving");
    assert_eq!(get(http, "/metrics").await.0, 404);
    assert_eq!(get(http, "/identity.cer").await.0, 200);
    assert_eq!(get(metrics, "/identity.cer").await.0, 404);
    assert_eq!(get(metrics, "/").await.0, 404);
    server.shutdown().await;
}

/// A MESSAGE to a domain whose lookup fails (the configured name server's port is closed):
/// one lookup started, one failed, and the 502 counted among the responses sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_lookups_and_their_failures_are_counted() {
    let tmp = tempfile::tempdir().unwrap();
    // A port with nothing behind it: bound, its address noted, then closed.
    let closed = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut config = Config {
        data_dir: tmp.path().to_path_buf(),
        listen: vec!["udp:127.0.0.1:0".parse::<ListenAddr>().unwrap()],
        ..Config::default()
    };
    config.metrics.listen = Some("127.0.0.1:0".into());
    config.dns.nameservers = vec![closed];
    config.dns.timeout_ms = 300;
    // A proxy for localhost without authentication or signing, as in tests/dns.rs.
    config.auth.enabled = false;
    config.identity.sign = false;
    config.identity.http_listen = String::new();
    config.identity.cert_url = Some("http://127.0.0.1/unused".into());
    let server = Server::start(&config, None).await.unwrap();
    let sip = udp_addr(&server);
    let metrics = server.metrics_addr().unwrap();
    let (_, before) = get(metrics, "/metrics").await;
    assert_eq!(sample(&before, "vouch_dns_lookups_total"), Some(0.0));
    assert_eq!(
        sample(&before, "vouch_dns_lookup_failures_total"),
        Some(0.0)
    );

    let ua = UdpSocket::bind("127.0.0.1:0").unwrap();
    ua.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let port = ua.local_addr().unwrap().port();
    // From a user of ours (localhost), so it is not refused as relaying.
    let message = to_server("MESSAGE", port, 1, "Max-Forwards: 70\r\n")
        .replacen(
            "MESSAGE sip:localhost",
            "MESSAGE sip:dave@nowhere.example",
            1,
        )
        .replacen("<sip:carol@elsewhere.example>", "<sip:carol@localhost>", 1);
    let r = exchange(&ua, sip, message, 1).await;
    assert_eq!(r.status(), Some(502), "{r:?}");

    let (_, after) = get(metrics, "/metrics").await;
    assert_eq!(sample(&after, "vouch_dns_lookups_total"), Some(1.0));
    assert_eq!(sample(&after, "vouch_dns_lookup_failures_total"), Some(1.0));
    assert_eq!(
        sample(&after, "vouch_certificate_fetch_failures_total"),
        Some(0.0)
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_metrics_endpoint_unless_configured() {
    let tmp = tempfile::tempdir().unwrap();
    let config = Config {
        data_dir: tmp.path().to_path_buf(),
        listen: vec!["udp:127.0.0.1:0".parse::<ListenAddr>().unwrap()],
        ..Config::default()
    };
    let server = Server::start(&config, None).await.unwrap();
    assert_eq!(server.metrics_addr(), None);
    server.shutdown().await;
}
