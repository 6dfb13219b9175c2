//! vouch's own certificate endpoint (RFC 4474 §6.1, issue 5): a signing server serves its
//! identity certificate at the Identity-Info URL it signs with, as DER with content type
//! `application/pkix-cert`, checked here with a plain HTTP client (no SIPp needed).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use vouch::Server;
use vouch::config::{Config, ListenAddr};
use vouch::identity::IdentityMaterial;
use vouch::server::wall_unix;
use vouch::tls::{DevIdentity, ensure_dev_identity};

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
        "RFC 4474 §6.1: a DER certificate"
    );
    let body = r.bytes().await.unwrap();
    let pem = std::fs::read(&dev.cert).unwrap();
    let leaf = CertificateDer::pem_slice_iter(&pem)
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(
        body.as_ref(),
        leaf.as_ref(),
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
    for path in [
        "/",
        "/identity.der",
        "/ca.pem",
        "/identity.key",
        "/identity.cer/x",
    ] {
        let r = client
            .get(format!("http://{http}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{path}");
    }
    let r = client.post(&url).send().await.unwrap();
    assert_eq!(r.status(), 405, "only GET and HEAD");

    server.shutdown().await;
}
