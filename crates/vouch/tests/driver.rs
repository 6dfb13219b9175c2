//! The driver on real sockets: TLS client certificates are visible per flow, outgoing TLS
//! verifies the server against the trust anchors and presents the domain certificate, RFC 5626
//! CRLF pings get pongs, a framing error closes the connection, and shutdown flushes binding
//! changes to the store.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{CertificateParams, ExtendedKeyUsagePurpose, Issuer, KeyPair, SanType};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use vouch::config::{Config, ListenAddr};
use vouch::engine::TransportKind;
use vouch::store::Store;
use vouch::tls::{DevCerts, TlsContext, ensure_dev_certs};
use vouch::{Server, server::wall_unix};
use vouch_msg::{Limits, StreamDecoder};

use support::read_message;

type Identity = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

struct Setup {
    _tmp: tempfile::TempDir,
    data: std::path::PathBuf,
    certs: DevCerts,
    server: Server,
}

impl Setup {
    async fn new() -> Setup {
        Setup::with(|_| {}).await
    }

    /// A server whose configuration `edit` changes.
    async fn with(edit: impl FnOnce(&mut Config)) -> Setup {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let certs = ensure_dev_certs(
            &data,
            &["localhost".to_string()],
            &["127.0.0.1".parse().unwrap()],
            wall_unix(),
        )
        .unwrap();
        let server = start_with(&data, &certs, edit).await;
        Setup {
            _tmp: tmp,
            data,
            certs,
            server,
        }
    }

    fn addr(&self, t: TransportKind) -> SocketAddr {
        self.server
            .local_addrs()
            .iter()
            .find(|(k, _)| *k == t)
            .unwrap()
            .1
    }
}

async fn start(data: &Path, certs: &DevCerts) -> Server {
    start_with(data, certs, |_| {}).await
}

async fn start_with(data: &Path, certs: &DevCerts, edit: impl FnOnce(&mut Config)) -> Server {
    let mut config = Config {
        data_dir: data.to_path_buf(),
        ..Config::default()
    };
    config.listen = ["udp:127.0.0.1:0", "tcp:127.0.0.1:0", "tls:127.0.0.1:0"]
        .iter()
        .map(|s| s.parse::<ListenAddr>().unwrap())
        .collect();
    // These tests are about transport and persistence; digest authentication has its own.
    config.auth.enabled = false;
    edit(&mut config);
    let tls = TlsContext::load(
        &certs.domain_cert,
        &certs.domain_key,
        std::slice::from_ref(&certs.ca_cert),
    )
    .unwrap();
    Server::start(&config, Some(tls)).await.unwrap()
}

/// A certificate for a test UA, signed by the development CA (or self-signed), naming
/// 127.0.0.1 so vouch can verify it when connecting by address.
fn ua_cert(certs: &DevCerts, signed_by_ca: bool) -> Identity {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut p = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    p.subject_alt_names
        .push(SanType::URI("sip:ua@localhost".try_into().unwrap()));
    p.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let cert = if signed_by_ca {
        let ca_key = KeyPair::from_pem(&std::fs::read_to_string(&certs.ca_key).unwrap()).unwrap();
        let issuer =
            Issuer::from_ca_cert_pem(&std::fs::read_to_string(&certs.ca_cert).unwrap(), ca_key)
                .unwrap();
        p.signed_by(&key, &issuer).unwrap()
    } else {
        p.self_signed(&key).unwrap()
    };
    let der = PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).unwrap();
    (vec![cert.der().clone()], der)
}

fn roots(certs: &DevCerts) -> Arc<RootCertStore> {
    let mut r = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(&certs.ca_cert).unwrap() {
        r.add(c.unwrap()).unwrap();
    }
    Arc::new(r)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn client_config(certs: &DevCerts, client_cert: Option<Identity>) -> Arc<ClientConfig> {
    let b = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots(certs));
    Arc::new(match client_cert {
        Some((chain, key)) => b.with_client_auth_cert(chain, key).unwrap(),
        None => b.with_no_client_auth(),
    })
}

fn register(user: &str, transport: &str, contact_port: u16) -> String {
    format!(
        "REGISTER sip:localhost SIP/2.0\r\n\
         Via: SIP/2.0/{transport} 127.0.0.1:{contact_port};branch=z9hG4bK-reg-{user}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:{user}@localhost>;tag=r-{user}\r\n\
         To: <sip:{user}@localhost>\r\n\
         Call-ID: reg-{user}\r\n\
         CSeq: 1 REGISTER\r\n\
         Contact: <sip:{user}@127.0.0.1:{contact_port};transport={}>\r\n\
         Expires: 600\r\n\
         Content-Length: 0\r\n\r\n",
        transport.to_ascii_lowercase()
    )
}

/// Waits until vouch has no connection to `remote` any more.
async fn wait_flow_gone(server: &Server, remote: SocketAddr) {
    for _ in 0..250 {
        if !server
            .flows()
            .snapshot()
            .iter()
            .any(|(_, i)| i.remote == remote)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("vouch kept its connection to {remote}");
}

/// Waits until vouch has no outbound TLS connection open.
async fn listener_peer_gone(server: &Server) {
    for _ in 0..250 {
        if !server
            .flows()
            .snapshot()
            .iter()
            .any(|(_, i)| !i.inbound && i.transport == TransportKind::Tls)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("vouch kept its outbound connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_client_certificate_is_visible_for_its_flow() {
    let s = Setup::new().await;
    let tls_addr = s.addr(TransportKind::Tls);
    let (chain, key) = ua_cert(&s.certs, true);
    let presented = chain[0].clone();

    let connector = TlsConnector::from(client_config(&s.certs, Some((chain, key))));
    let tcp = TcpStream::connect(tls_addr).await.unwrap();
    let local = tcp.local_addr().unwrap();
    let mut tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("vouch's development certificate verifies for localhost");
    tls.write_all(register("dave", "TLS", local.port()).as_bytes())
        .await
        .unwrap();
    let mut dec = StreamDecoder::new(Limits::DEFAULT);
    let r = read_message(&mut tls, &mut dec).await;
    assert_eq!(r.status(), Some(200), "{}", r.start_line());

    let flows = s.server.flows();
    let (flow, info) = flows
        .snapshot()
        .into_iter()
        .find(|(_, i)| i.inbound && i.transport == TransportKind::Tls && i.remote == local)
        .expect("the TLS connection is a flow");
    assert!(info.peer_certificates.is_some());
    let got = flows
        .client_certificates(flow)
        .expect("client certificate kept");
    assert_eq!(got[0], presented);

    // Without a client certificate the handshake still succeeds (requested, not required).
    let connector = TlsConnector::from(client_config(&s.certs, None));
    let tcp = TcpStream::connect(tls_addr).await.unwrap();
    let local2 = tcp.local_addr().unwrap();
    let mut tls2 = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    // A ping round trip makes sure the server side has registered the flow.
    tls2.write_all(b"\r\n\r\n").await.unwrap();
    let mut pong = [0u8; 2];
    tls2.read_exact(&mut pong).await.unwrap();
    let (flow2, _) = flows
        .snapshot()
        .into_iter()
        .find(|(_, i)| i.remote == local2)
        .expect("second flow");
    assert!(flows.client_certificates(flow2).is_none());

    // A client certificate from an unknown issuer is refused.
    let connector = TlsConnector::from(client_config(&s.certs, Some(ua_cert(&s.certs, false))));
    let tcp = TcpStream::connect(tls_addr).await.unwrap();
    let refused = async {
        let mut t = connector
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await?;
        // TLS 1.3: the server's verdict on the client certificate arrives after the client
        // considers the handshake done.
        t.write_all(b"\r\n\r\n").await?;
        let mut b = [0u8; 2];
        t.read_exact(&mut b).await?;
        Ok::<_, std::io::Error>(())
    };
    assert!(
        refused.await.is_err(),
        "an untrusted client certificate was accepted"
    );
    s.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crlf_ping_gets_pong_and_framing_error_closes_the_connection() {
    let s = Setup::new().await;
    let mut tcp = TcpStream::connect(s.addr(TransportKind::Tcp))
        .await
        .unwrap();
    // RFC 5626 §4.4.1: CRLFCRLF ping, CRLF pong.
    tcp.write_all(b"\r\n\r\n").await.unwrap();
    let mut pong = [0u8; 2];
    tokio::time::timeout(Duration::from_secs(5), tcp.read_exact(&mut pong))
        .await
        .expect("pong within 5 s")
        .unwrap();
    assert_eq!(&pong, b"\r\n");
    // A message without Content-Length cannot be framed on a stream (RFC 3261 §18.3).
    tcp.write_all(
        b"OPTIONS sip:x@localhost SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bK-x\r\n\
          From: <sip:a@localhost>;tag=1\r\nTo: <sip:x@localhost>\r\nCall-ID: nocl\r\n\
          CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n\r\n",
    )
    .await
    .unwrap();
    let mut rest = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut rest))
        .await
        .expect("connection closed within 5 s");
    assert!(n.is_ok(), "{n:?}");
    assert!(
        rest.is_empty(),
        "unexpected reply {:?}",
        String::from_utf8_lossy(&rest)
    );
    s.server.shutdown().await;
}

/// Whether `s` is served: a CRLFCRLF ping gets its CRLF pong within a second.
async fn served(s: &mut TcpStream) -> bool {
    if s.write_all(b"\r\n\r\n").await.is_err() {
        return false;
    }
    let mut pong = [0u8; 2];
    let r = tokio::time::timeout(Duration::from_secs(1), s.read_exact(&mut pong)).await;
    matches!(r, Ok(Ok(_))) && &pong == b"\r\n"
}

/// `transport.max_connections` bounds the SIP connections: one more is closed at once,
/// unserved, and once one has closed a new one is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_are_refused_until_one_closes() {
    let s = Setup::with(|c| c.transport.max_connections = 1).await;
    let addr = s.addr(TransportKind::Tcp);
    let mut first = TcpStream::connect(addr).await.unwrap();
    assert!(served(&mut first).await, "the first connection is served");

    let mut second = TcpStream::connect(addr).await.unwrap();
    let mut rest = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(2), second.read_to_end(&mut rest))
        .await
        .expect("a connection over the limit is closed at once");
    assert!(rest.is_empty(), "{r:?} {rest:?}");

    drop(first);
    let mut served_again = false;
    for _ in 0..50 {
        let mut next = TcpStream::connect(addr).await.unwrap();
        if served(&mut next).await {
            served_again = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        served_again,
        "a connection is served once the first has closed"
    );
    s.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outgoing_tls_verifies_the_server_and_presents_the_domain_certificate() {
    let s = Setup::new().await;
    let tls_addr = s.addr(TransportKind::Tls);

    // The UA registers over TLS from port P, hangs up, then listens for TLS on P: the
    // binding's source is tls:127.0.0.1:P with a flow that no longer exists, so vouch must
    // open a new TLS connection to it.
    let sock = TcpSocket::new_v4().unwrap();
    sock.set_reuseaddr(true).unwrap();
    sock.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let ua_addr = sock.local_addr().unwrap();
    let tcp = sock.connect(tls_addr).await.unwrap();
    let connector = TlsConnector::from(client_config(&s.certs, None));
    let mut tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    tls.write_all(register("erin", "TLS", ua_addr.port()).as_bytes())
        .await
        .unwrap();
    let mut dec = StreamDecoder::new(Limits::DEFAULT);
    assert_eq!(read_message(&mut tls, &mut dec).await.status(), Some(200));
    tls.shutdown().await.unwrap();
    drop(tls);
    // Until vouch has seen the close, a request would still go to the dead flow (and be
    // lost: this test is about the new connection, not that race).
    wait_flow_gone(&s.server, ua_addr).await;

    let listen = TcpSocket::new_v4().unwrap();
    listen.set_reuseaddr(true).unwrap();
    listen.bind(ua_addr).unwrap();
    let listener = listen.listen(16).unwrap();
    let (chain, key) = ua_cert(&s.certs, true);
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots(&s.certs), provider())
            .build()
            .unwrap();
    let server_cfg = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(server_cfg));

    // A caller on UDP.
    let caller = UdpSocket::bind("127.0.0.1:0").unwrap();
    let cport = caller.local_addr().unwrap().port();
    let invite = format!(
        "INVITE sip:erin@localhost SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:{cport};branch=z9hG4bK-inv1;rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:caller@localhost>;tag=c1\r\n\
         To: <sip:erin@localhost>\r\n\
         Call-ID: out-tls-1\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:caller@127.0.0.1:{cport}>\r\n\
         Content-Length: 0\r\n\r\n"
    );
    caller
        .send_to(invite.as_bytes(), s.addr(TransportKind::Udp))
        .unwrap();

    let (tcp, _) = tokio::time::timeout(Duration::from_secs(5), listener.accept())
        .await
        .expect("vouch connects to the registered TLS source")
        .unwrap();
    let mut tls = acceptor
        .accept(tcp)
        .await
        .expect("TLS handshake with vouch");
    let presented = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    let domain = CertificateDer::pem_file_iter(&s.certs.domain_cert)
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(presented, domain, "vouch presents its domain certificate");
    let mut dec = StreamDecoder::new(Limits::DEFAULT);
    let m = read_message(&mut tls, &mut dec).await;
    assert_eq!(m.start_line().split(' ').next(), Some("INVITE"));
    assert_eq!(m.call_id(), "out-tls-1");
    tls.shutdown().await.unwrap();
    drop(tls);

    // A UA whose certificate does not chain to the trust anchors gets no request.
    let caller2 = UdpSocket::bind("127.0.0.1:0").unwrap();
    let c2port = caller2.local_addr().unwrap().port();
    let (bad_chain, bad_key) = ua_cert(&s.certs, false);
    let bad_cfg = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(bad_chain, bad_key)
        .unwrap();
    let bad_acceptor = TlsAcceptor::from(Arc::new(bad_cfg));
    let invite2 = invite
        .replace("out-tls-1", "out-tls-2")
        .replace("inv1", "inv2")
        .replace(&format!(":{cport}"), &format!(":{c2port}"));
    // Let vouch notice that the first connection closed, so it connects anew.
    let first = listener_peer_gone(&s.server);
    first.await;
    caller2
        .send_to(invite2.as_bytes(), s.addr(TransportKind::Udp))
        .unwrap();
    let (tcp, _) = tokio::time::timeout(Duration::from_secs(5), listener.accept())
        .await
        .expect("vouch connects again")
        .unwrap();
    let r = async {
        let mut t = bad_acceptor.accept(tcp).await?;
        let mut b = [0u8; 1];
        t.read_exact(&mut b).await?;
        Ok::<_, std::io::Error>(())
    };
    assert!(
        tokio::time::timeout(Duration::from_secs(5), r)
            .await
            .is_ok_and(|r| r.is_err()),
        "vouch sent a request to a server it cannot verify"
    );
    s.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_flushes_registrations_to_the_store() {
    let s = Setup::new().await;
    let ua = UdpSocket::bind("127.0.0.1:0").unwrap();
    ua.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let port = ua.local_addr().unwrap().port();
    ua.send_to(
        register("frank", "UDP", port).as_bytes(),
        s.addr(TransportKind::Udp),
    )
    .unwrap();
    let r = tokio::task::spawn_blocking(move || {
        let mut buf = [0u8; 4096];
        let (n, _) = ua.recv_from(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    })
    .await
    .unwrap();
    assert!(r.starts_with("SIP/2.0 200"), "{r}");
    // Shut down at once: the change may still be queued for the store writer.
    let data = s.data.clone();
    let certs = s.certs.clone();
    s.server.shutdown().await;
    let mut store = Store::open(&data).unwrap();
    let b = store.load_bindings(wall_unix()).unwrap();
    assert_eq!(b.len(), 1, "{b:?}");
    assert_eq!(b[0].aor, "sip:frank@localhost");
    assert_eq!(b[0].source, format!("udp:127.0.0.1:{port}"));
    drop(store);

    // And a new server restores it.
    let server = start(&data, &certs).await;
    assert_eq!(server.restored_bindings(), 1);
    server.shutdown().await;
}
