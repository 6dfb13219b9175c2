//! vouch's own certificate endpoint (RFC 4474 §9, issue 5): a signing server serves its
//! identity certificate at the Identity-Info URL it signs with, as DER with content type
//! `application/pkix-cert`, checked here with a plain HTTP client (no SIPp needed) — over
//! HTTP and over HTTPS (`[identity] https_listen`, TLS with the development domain
//! certificate), and fetched over HTTPS by vouch's own certificate fetcher.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use vouch::config::{Config, ListenAddr};
use vouch::identity::IdentityMaterial;
use vouch::server::wall_unix;
use vouch::tls::{
    DevCerts, DevIdentity, TlsContext, ensure_dev_ca, ensure_dev_certs, ensure_dev_identity,
};
use vouch::{Server, ServerError};

const ATLANTA: &str = "atlanta.example.com";

/// A signing server for atlanta with its development identity, its HTTP endpoint on a free
/// port (as `start_atlanta` in tests/verification.rs).
async fn start_signing(data: &Path) -> (Server, DevIdentity) {
    let mut config = Config {
        data_dir: data.to_path_buf(),
        domains: vec![ATLANTA.to_string()],
        listen: vec!["udp:127.0.0.1:0".parse::<ListenAddr>().unwrap()],
        ..Config::default()
    };
    config.identity.http_listen = "127.0.0.1:0".into();
    let dev = ensure_dev_identity(data, &config.domains, wall_unix()).unwrap();
    let material = IdentityMaterial::load(&dev.key, &dev.cert).unwrap();
    let server = Server::start_with_identity(&config, None, Some(material))
        .await
        .unwrap();
    (server, dev)
}

/// Every path but the two routes is 404 at `base` (the usual suspects and `secret`), and
/// POST to the certificate `url` is 405.
async fn assert_nothing_else_served(
    client: &reqwest::Client,
    base: &str,
    url: &str,
    secret: &[&str],
) {
    for path in ["/", "/identity.der", "/ca.pem", "/identity.cer/x"]
        .iter()
        .chain(secret)
    {
        let r = client.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
    }
    let r = client.post(url).send().await.unwrap();
    assert_eq!(r.status(), 405, "only GET and HEAD");
}

fn content_type(r: &reqwest::Response) -> Option<String> {
    r.headers()
        .get(reqwest::header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_identity_info_url_serves_the_certificate_as_der_pkix_cert() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, dev) = start_signing(tmp.path()).await;
    let url = server
        .identity_cert_url()
        .expect("a signing server has an Identity-Info URL")
        .to_owned();
    let http = server.http_addr().expect("the endpoint is serving");
    assert_eq!(url, format!("http://{http}/identity.cer"));
    // reqwest is built without a TLS provider of its own (plain http here, but it asks).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let client = reqwest::Client::new();

    let r = client.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        content_type(&r).as_deref(),
        Some("application/pkix-cert"),
        "RFC 4474 §9: a DER certificate"
    );
    let body = r.bytes().await.unwrap();
    let pem = std::fs::read(&dev.cert).unwrap();
    assert_eq!(
        body.as_ref(),
        leaf_der(&dev.cert).as_slice(),
        "the body is the identity certificate, DER"
    );
    assert_eq!(body.first(), Some(&0x30), "DER, not PEM text");

    // The same certificate as PEM beside it.
    let r = client
        .get(format!("http://{http}/identity.pem"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(content_type(&r).as_deref(), Some("application/x-pem-file"));
    assert_eq!(r.bytes().await.unwrap().as_ref(), pem.as_slice());

    // Nothing else is served.
    assert_nothing_else_served(&client, &format!("http://{http}"), &url, &["/identity.key"]).await;

    server.shutdown().await;
}

/// The development CA, domain certificate (naming 127.0.0.1) and identity certificate of
/// atlanta in `data` (one CA issues both), and the TLS context of the domain certificate.
fn dev_material(data: &Path) -> (DevCerts, DevIdentity, TlsContext) {
    let certs = ensure_dev_certs(
        data,
        &[ATLANTA.to_string()],
        &["127.0.0.1".parse().unwrap()],
        wall_unix(),
    )
    .unwrap();
    let dev = ensure_dev_identity(data, &[ATLANTA.to_string()], wall_unix()).unwrap();
    let tls = TlsContext::load(
        &certs.domain_cert,
        &certs.domain_key,
        std::slice::from_ref(&certs.ca_cert),
    )
    .unwrap();
    (certs, dev, tls)
}

/// A signing server with the endpoints `config` (atlanta's) asks for and `tls`.
async fn start_with(
    data: &Path,
    dev: &DevIdentity,
    tls: Option<TlsContext>,
    edit: impl FnOnce(&mut Config),
) -> Result<Server, ServerError> {
    let mut config = Config {
        data_dir: data.to_path_buf(),
        domains: vec![ATLANTA.to_string()],
        listen: vec!["udp:127.0.0.1:0".parse::<ListenAddr>().unwrap()],
        ..Config::default()
    };
    edit(&mut config);
    let material = IdentityMaterial::load(&dev.key, &dev.cert).unwrap();
    Server::start_with_identity(&config, tls, Some(material)).await
}

/// A signing server with only the HTTPS endpoint on (and what `edit` changes), serving with
/// [`dev_material`], which it returns with it.
async fn start_https_only(
    data: &Path,
    edit: impl FnOnce(&mut Config),
) -> (DevCerts, DevIdentity, Server) {
    let (certs, dev, tls) = dev_material(data);
    let server = start_with(data, &dev, Some(tls), |c| {
        c.identity.http_listen = String::new();
        c.identity.https_listen = "127.0.0.1:0".into();
        edit(c);
    })
    .await
    .unwrap();
    (certs, dev, server)
}

/// A rustls client configuration trusting only the CA certificates in `ca_pem`.
fn client_tls(ca_pem: &Path) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca_pem).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// An HTTPS client trusting only `ca_pem`.
fn https_client(ca_pem: &Path) -> reqwest::Client {
    https_client_with(client_tls(ca_pem))
}

/// An HTTPS client with the rustls configuration `tls`.
fn https_client_with(tls: rustls::ClientConfig) -> reqwest::Client {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// The certificate endpoint's router serving `cert_pem` (DER and PEM), a loopback listener
/// for it and its address, and limits of one connection with 1 s handshake and idle timeouts.
async fn one_connection_endpoint(
    cert_pem: &Path,
) -> (
    tokio::net::TcpListener,
    SocketAddr,
    axum::Router,
    vouch::http::EndpointLimits,
) {
    let app = vouch::http::router(
        "/identity.cer",
        leaf_der(cert_pem).into(),
        std::fs::read(cert_pem).unwrap().into(),
    );
    let listener = vouch::http::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let limits = vouch::http::EndpointLimits {
        handshake_timeout: Duration::from_secs(1),
        max_connections: 1,
        idle_timeout: Duration::from_secs(1),
    };
    (listener, addr, app, limits)
}

fn leaf_der(cert_pem: &Path) -> Vec<u8> {
    let pem = std::fs::read(cert_pem).unwrap();
    CertificateDer::pem_slice_iter(&pem)
        .next()
        .unwrap()
        .unwrap()
        .as_ref()
        .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_endpoint_serves_the_certificate_with_the_domain_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let (certs, dev, server) = start_https_only(tmp.path(), |_| {}).await;
    assert_eq!(server.http_addr(), None, "plain HTTP is off");
    let https = server.https_addr().expect("the HTTPS endpoint is serving");
    let url = server.identity_cert_url().unwrap().to_owned();
    assert_eq!(
        url,
        format!("https://{https}/identity.cer"),
        "with only HTTPS on, Identity-Info points at it"
    );

    let client = https_client(&certs.ca_cert);
    let r = client.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(content_type(&r).as_deref(), Some("application/pkix-cert"));
    let body = r.bytes().await.unwrap();
    assert_eq!(
        body.as_ref(),
        leaf_der(&dev.cert).as_slice(),
        "DER identity certificate"
    );
    assert_ne!(
        body.as_ref(),
        leaf_der(&certs.domain_cert).as_slice(),
        "the identity certificate, not the TLS one"
    );

    // The same routes as over HTTP.
    let r = client.head(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(content_type(&r).as_deref(), Some("application/pkix-cert"));
    let r = client
        .get(format!("https://{https}/identity.pem"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(content_type(&r).as_deref(), Some("application/x-pem-file"));
    assert_eq!(
        r.bytes().await.unwrap().as_ref(),
        std::fs::read(&dev.cert).unwrap().as_slice()
    );
    assert_nothing_else_served(&client, &format!("https://{https}"), &url, &["/domain.key"]).await;

    // A client that does not trust the development CA fails the handshake.
    let other = tempfile::tempdir().unwrap();
    ensure_dev_ca(other.path(), wall_unix()).unwrap();
    let e = https_client(&other.path().join("ca.pem"))
        .get(&url)
        .send()
        .await
        .unwrap_err();
    assert!(e.is_connect(), "{e:?}");
    // (BadSignature rather than UnknownIssuer: both development CAs have the same name.)
    assert!(format!("{e:?}").contains("InvalidCertificate"), "{e:?}");
    // And the port does not answer in clear.
    assert!(
        reqwest::Client::new()
            .get(format!("http://{https}/identity.cer"))
            .send()
            .await
            .is_err(),
        "plain HTTP on the HTTPS port"
    );

    server.shutdown().await;
}

/// A verifier fetching the certificate may present a client certificate of its own, from a
/// CA this server has never heard of: the endpoint asks for none (unlike the SIP TLS
/// listeners, which check one against `[tls] ca` and `user_ca`), so it is served all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_endpoint_serves_a_client_presenting_a_certificate_from_an_unrelated_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let (certs, dev, server) = start_https_only(tmp.path(), |_| {}).await;
    let url = server.identity_cert_url().unwrap().to_owned();
    let other = tempfile::tempdir().unwrap();
    let theirs = ensure_dev_certs(
        other.path(),
        &["verifier.example".to_string()],
        &[],
        wall_unix(),
    )
    .unwrap();
    let presenting = vouch::tls::client_config(
        std::slice::from_ref(&certs.ca_cert),
        Some((&theirs.domain_cert, &theirs.domain_key)),
    )
    .unwrap();

    let r = https_client_with(presenting)
        .get(&url)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(content_type(&r).as_deref(), Some("application/pkix-cert"));
    assert_eq!(
        r.bytes().await.unwrap().as_ref(),
        leaf_der(&dev.cert).as_slice()
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_endpoints_serve_one_router_and_an_explicit_cert_url_wins() {
    let tmp = tempfile::tempdir().unwrap();
    let (certs, dev, tls) = dev_material(tmp.path());
    // Both on, no cert_url: HTTPS is the default, HTTP serves the same.
    let server = start_with(tmp.path(), &dev, Some(tls.clone()), |c| {
        c.identity.http_listen = "127.0.0.1:0".into();
        c.identity.https_listen = "127.0.0.1:0".into();
    })
    .await
    .unwrap();
    let (http, https) = (server.http_addr().unwrap(), server.https_addr().unwrap());
    assert_eq!(
        server.identity_cert_url(),
        Some(format!("https://{https}/identity.cer").as_str())
    );
    let der = leaf_der(&dev.cert);
    let client = https_client(&certs.ca_cert);
    for url in [
        format!("http://{http}/identity.cer"),
        format!("https://{https}/identity.cer"),
    ] {
        let r = client.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 200, "{url}");
        assert_eq!(r.bytes().await.unwrap().as_ref(), der.as_slice(), "{url}");
    }
    server.shutdown().await;

    // An explicit cert_url wins, and both endpoints serve its path.
    let server = start_with(tmp.path(), &dev, Some(tls), |c| {
        c.identity.http_listen = "127.0.0.1:0".into();
        c.identity.https_listen = "127.0.0.1:0".into();
        c.identity.cert_url = Some("http://sip.atlanta.example.com/certs/atlanta.cer".into());
    })
    .await
    .unwrap();
    let (http, https) = (server.http_addr().unwrap(), server.https_addr().unwrap());
    assert_eq!(
        server.identity_cert_url(),
        Some("http://sip.atlanta.example.com/certs/atlanta.cer")
    );
    for url in [
        format!("http://{http}/certs/atlanta.cer"),
        format!("https://{https}/certs/atlanta.cer"),
    ] {
        let r = client.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 200, "{url}");
        assert_eq!(r.bytes().await.unwrap().as_ref(), der.as_slice(), "{url}");
        let r = client
            .get(url.replace("atlanta.cer", "identity.cer"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{url}: only the configured path");
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_listen_without_a_tls_certificate_is_a_start_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dev = ensure_dev_identity(tmp.path(), &[ATLANTA.to_string()], wall_unix()).unwrap();
    let e = start_with(tmp.path(), &dev, None, |c| {
        c.identity.https_listen = "127.0.0.1:0".into();
    })
    .await
    .unwrap_err();
    assert!(matches!(e, ServerError::NoHttpsTls(_)), "{e:?}");
    let text = e.to_string();
    assert!(
        text.contains("identity.https_listen") && text.contains("no TLS certificate"),
        "{text}"
    );
}

/// Opens a TCP connection to `addr` and never sends a byte.
async fn stall(addr: SocketAddr) -> TcpStream {
    TcpStream::connect(addr).await.unwrap()
}

/// Waits until the server closes `s` (EOF or reset), returning how long that took.
async fn closed_after(mut s: TcpStream, limit: Duration) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 64];
    loop {
        match tokio::time::timeout(limit, s.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return started.elapsed(),
            Ok(Ok(_)) => {}
            Err(_) => panic!("the server kept the connection open for {limit:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_tls_handshake_blocks_no_one_and_times_out() {
    let tmp = tempfile::tempdir().unwrap();
    let (certs, _, server) =
        start_https_only(tmp.path(), |c| c.transport.connect_timeout_secs = 1).await;
    let https = server.https_addr().unwrap();
    let url = server.identity_cert_url().unwrap().to_owned();
    // Clients that connect and never start (or finish) their handshake…
    let mut stalled = Vec::new();
    for _ in 0..8 {
        stalled.push(stall(https).await);
    }
    // …do not hold up a client that does, while they are still connected.
    let started = Instant::now();
    let r = https_client(&certs.ca_cert).get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    // And each is dropped after the handshake timeout (transport.connect_timeout_secs).
    for s in stalled {
        let t = closed_after(s, Duration::from_secs(5)).await;
        assert!(t < Duration::from_secs(3), "{t:?}");
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_https_listener_limits_connections_and_closes_idle_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let (certs, dev, tls) = dev_material(tmp.path());
    let (listener, addr, app, limits) = one_connection_endpoint(&dev.cert).await;
    let cancel = CancellationToken::new();
    let task =
        vouch::http::serve_tls(listener, app, tls.https.clone(), limits, cancel.clone()).unwrap();

    // One stalled handshake holds the only slot: the next connection is closed at once.
    let first = stall(addr).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t = closed_after(stall(addr).await, Duration::from_millis(500)).await;
    assert!(t < Duration::from_millis(500), "{t:?}");
    // The stalled one times out and frees the slot.
    closed_after(first, Duration::from_secs(3)).await;

    // A finished handshake that then sends nothing is closed after the idle timeout.
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_tls(&certs.ca_cert)));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let mut idle = connector.connect(name, tcp).await.unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 64];
    let r = tokio::time::timeout(Duration::from_secs(5), idle.read(&mut buf))
        .await
        .expect("an idle connection is closed");
    assert!(matches!(r, Ok(0) | Err(_)), "{r:?}");
    let t = started.elapsed();
    assert!(
        t >= Duration::from_millis(800) && t < Duration::from_secs(3),
        "{t:?}"
    );

    // With the slot free again, a client is served.
    let r = https_client(&certs.ca_cert)
        .get(format!("https://{addr}/identity.cer"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the HTTPS endpoint stops on cancel")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_listener_limits_connections_and_closes_idle_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, dev, _) = dev_material(tmp.path());
    let der = leaf_der(&dev.cert);
    let (listener, addr, app, limits) = one_connection_endpoint(&dev.cert).await;
    let cancel = CancellationToken::new();
    let task = vouch::http::serve(listener, app, limits, cancel.clone(), "test").unwrap();

    // A client that connects and sends nothing holds the only slot: the next connection is
    // closed at once, and the silent one after the idle timeout.
    let silent = stall(addr).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t = closed_after(stall(addr).await, Duration::from_millis(500)).await;
    assert!(t < Duration::from_millis(500), "{t:?}");
    let t = closed_after(silent, Duration::from_secs(5)).await;
    assert!(
        t >= Duration::from_millis(700) && t < Duration::from_secs(3),
        "{t:?}"
    );

    // With the slot free again, a client is served.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let r = reqwest::Client::new()
        .get(format!("http://{addr}/identity.cer"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().as_ref(), der.as_slice());

    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the HTTP endpoint stops on cancel")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_certificate_fetcher_fetches_over_https_trusting_the_configured_anchors() {
    use vouch::cert_fetch::{CertFetcher, FetchConfig, FetchError};
    let tmp = tempfile::tempdir().unwrap();
    let (certs, dev, server) = start_https_only(tmp.path(), |_| {}).await;
    let url = server.identity_cert_url().unwrap().to_owned();
    assert!(url.starts_with("https://"), "{url}");

    // The fetcher's https roots are the verification trust anchors ([verification] trust,
    // here the development CA that issued both certificates).
    let fetcher = CertFetcher::new(FetchConfig {
        https_roots_pem: std::fs::read(&certs.ca_cert).unwrap(),
        ..FetchConfig::default()
    })
    .unwrap();
    let chain = fetcher.fetch(&url).await.unwrap();
    assert_eq!(chain.end_entity, leaf_der(&dev.cert));
    assert!(chain.intermediates.is_empty());

    // Trusting another CA only: refused at the handshake (a 436 for the verifier).
    let other = tempfile::tempdir().unwrap();
    ensure_dev_ca(other.path(), wall_unix()).unwrap();
    let fetcher = CertFetcher::new(FetchConfig {
        https_roots_pem: std::fs::read(other.path().join("ca.pem")).unwrap(),
        ..FetchConfig::default()
    })
    .unwrap();
    let e = fetcher.fetch(&url).await.unwrap_err();
    assert!(matches!(e, FetchError::Http { .. }), "{e:?}");
    server.shutdown().await;
}
