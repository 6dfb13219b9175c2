//! Users authenticated by their TLS client certificate, over real sockets (identity BCP draft
//! §3; `[tls] user_ca`): alice's phone connects with a certificate from the users' CA naming
//! `sip:alice@example.com`, and its INVITE is signed (RFC 4474) and forwarded without a digest
//! challenge. A certificate naming the same AoR but issued by the CA trusted for peer servers
//! (`[tls] ca`) authenticates nobody: that INVITE is challenged.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio_rustls::TlsConnector;
use vouch::Server;
use vouch::config::{Config, ListenAddr};
use vouch::engine::TransportKind;
use vouch::identity::IdentityMaterial;
use vouch::server::wall_unix;
use vouch::store::Store;
use vouch::tls::TlsError;
use vouch::tls::{DevCerts, TlsContext, ensure_dev_certs, ensure_dev_identity};
use vouch_auth::identity::{TrustStore, Verifier, VerifierConfig};
use vouch_msg::{HeaderName, Message, StreamDecoder};

const DOMAIN: &str = "example.com";

/// An issuer for certificates, and where its own certificate's PEM is.
fn users_ca(dir: &Path) -> (Issuer<'static, KeyPair>, std::path::PathBuf) {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name
        .push(rcgen::DnType::CommonName, "example.com users");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let key = KeyPair::generate().unwrap();
    let cert = p.self_signed(&key).unwrap();
    let path = dir.join("users-ca.pem");
    std::fs::write(&path, cert.pem()).unwrap();
    (Issuer::new(p, key), path)
}

/// A phone certificate naming `aor`, for TLS client authentication, issued by `issuer`.
fn phone_cert(
    issuer: &Issuer<'_, KeyPair>,
    aor: &str,
) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.subject_alt_names = vec![SanType::URI(aor.try_into().unwrap())];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = p.signed_by(&key, issuer).unwrap();
    let der = PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).unwrap();
    (vec![cert.der().clone()], der)
}

/// The development CA as an rcgen issuer (it is the CA `[tls] ca` trusts for peer servers).
fn dev_ca(certs: &DevCerts) -> Issuer<'static, KeyPair> {
    let key = KeyPair::from_pem(&std::fs::read_to_string(&certs.ca_key).unwrap()).unwrap();
    Issuer::from_ca_cert_pem(&std::fs::read_to_string(&certs.ca_cert).unwrap(), key).unwrap()
}

async fn start(data: &Path, certs: &DevCerts, user_ca: &Path) -> Result<Server, TlsError> {
    // bob is a digest user; alice has no password at all here: her certificate is her login.
    Store::open(data)
        .unwrap()
        .add_user("sip:bob@example.com", "builder", None, &[])
        .unwrap();
    let mut config = Config {
        data_dir: data.to_path_buf(),
        domains: vec![DOMAIN.to_string()],
        ..Config::default()
    };
    config.listen = ["udp:127.0.0.1:0", "tls:127.0.0.1:0"]
        .iter()
        .map(|s| s.parse::<ListenAddr>().unwrap())
        .collect();
    config.identity.http_listen = "127.0.0.1:0".into();
    let tls = TlsContext::load_with_users(
        &certs.domain_cert,
        &certs.domain_key,
        std::slice::from_ref(&certs.ca_cert),
        &[user_ca.to_path_buf()],
    )?;
    let dev = ensure_dev_identity(data, &config.domains, wall_unix()).unwrap();
    let material = IdentityMaterial::load(&dev.key, &dev.cert).unwrap();
    Ok(
        Server::start_with_identity(&config, Some(tls), Some(material))
            .await
            .unwrap(),
    )
}

async fn connect(
    server: &Server,
    certs: &DevCerts,
    client: (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>),
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(&certs.ca_cert).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let config = ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_client_auth_cert(client.0, client.1)
    .unwrap();
    let addr = server
        .local_addrs()
        .iter()
        .find(|(k, _)| *k == TransportKind::Tls)
        .unwrap()
        .1;
    let tcp = TcpStream::connect(addr).await.unwrap();
    TlsConnector::from(Arc::new(config))
        .connect(ServerName::IpAddress(addr.ip().into()), tcp)
        .await
        .unwrap()
}

fn invite(bob: SocketAddr, local: SocketAddr, call_id: &str) -> String {
    format!(
        "INVITE sip:bob@{bob} SIP/2.0\r\n\
         Via: SIP/2.0/TLS {local};branch=z9hG4bK-{call_id}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@example.com>;tag=a-{call_id}\r\n\
         To: <sip:bob@{bob}>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sips:alice@{local}>\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

/// The next final response alice's connection gets within 5 s, if any.
async fn final_response(
    tls: &mut tokio_rustls::client::TlsStream<TcpStream>,
    dec: &mut StreamDecoder,
) -> Option<u16> {
    let mut buf = vec![0u8; 8192];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        while let Some(m) = dec.decode().unwrap() {
            if let Some(s) = m.status().filter(|s| *s >= 200) {
                return Some(s);
            }
        }
        let n = tokio::time::timeout_at(deadline, tls.read(&mut buf))
            .await
            .ok()?
            .unwrap();
        if n == 0 {
            return None;
        }
        dec.push(&buf[..n]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_certificate_is_their_login_and_their_requests_are_signed() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let certs = ensure_dev_certs(
        &data,
        &[DOMAIN.to_string()],
        &["127.0.0.1".parse().unwrap()],
        wall_unix(),
    )
    .unwrap();
    let (issuer, user_ca) = users_ca(tmp.path());
    let server = start(&data, &certs, &user_ca).await.unwrap();
    let bob = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let bob_addr = bob.local_addr().unwrap();

    let mut alice = connect(
        &server,
        &certs,
        phone_cert(&issuer, "sip:alice@example.com"),
    )
    .await;
    let local = alice.get_ref().0.local_addr().unwrap();
    alice
        .write_all(invite(bob_addr, local, "tls-user-1").as_bytes())
        .await
        .unwrap();
    let mut buf = vec![0u8; 65536];
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), bob.recv_from(&mut buf))
        .await
        .expect("the INVITE is forwarded without a challenge")
        .unwrap();
    let forwarded = Message::parse(buf[..n].to_vec()).unwrap();
    assert_eq!(forwarded.call_id(), "tls-user-1");
    assert!(forwarded.header(HeaderName::Identity).is_some(), "signed");
    // Verifies with the domain's identity certificate, chained to the development CA.
    let dev = ensure_dev_identity(&data, &[DOMAIN.to_string()], wall_unix()).unwrap();
    let identity_cert = vouch::tls::load_certs(&dev.cert).unwrap();
    let mut trust = TrustStore::new();
    trust
        .add_pem_or_der(&std::fs::read(&dev.ca_cert).unwrap())
        .unwrap();
    let verified = Verifier::new(VerifierConfig::default(), trust)
        .verify(&forwarded, &identity_cert[0], &[], wall_unix())
        .expect("bob's side verifies the signature");
    assert_eq!(verified.aor(), "sip:alice@example.com");

    // The same AoR in a certificate from the CA trusted for peer servers: the handshake
    // succeeds (it chains to `[tls] ca`), but it logs in nobody.
    let mut mallory = connect(
        &server,
        &certs,
        phone_cert(&dev_ca(&certs), "sip:alice@example.com"),
    )
    .await;
    let local = mallory.get_ref().0.local_addr().unwrap();
    mallory
        .write_all(invite(bob_addr, local, "tls-user-2").as_bytes())
        .await
        .unwrap();
    let mut dec = StreamDecoder::new(vouch_msg::Limits::DEFAULT);
    assert_eq!(final_response(&mut mallory, &mut dec).await, Some(407));
    assert!(
        tokio::time::timeout(Duration::from_millis(300), bob.recv_from(&mut buf))
            .await
            .is_err(),
        "nothing more reached bob"
    );
    server.shutdown().await;
}
