//! The signing proxy the authentication-service tests drive without a network: example.com
//! with digest, alice's account, bob bound at [`BOB`], and an RFC 4474 authentication service
//! signing with a fresh self-signed example.com certificate.

use std::net::SocketAddr;
use std::sync::Arc;

use rcgen::{CertificateParams, KeyPair};
use vouch_auth::digest::{Algorithm, ha1};
use vouch_auth::identity::RsaSigningKey;
use vouch_msg::Limits;
use vouch_proto::auth::{DigestConfig, DigestPolicy, NonceSecret};
use vouch_proto::transaction::TransactionConfig;
use vouch_proto::{
    AuthenticationService, Binding, Endpoint, EndpointConfig, Peer, TransportKind, UserCredentials,
};

/// The proxy's wall clock in these tests.
pub const WALL: i64 = 1_800_000_000;
/// alice's digest password.
pub const PASSWORD: &str = "wonderland";
/// Where bob is bound.
pub const BOB: &str = "192.0.2.20:5060";

pub fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// The proxy (UDP and TLS), with the authentication service `service` makes from the domain
/// key; returns the certificate (DER) too.
pub fn proxy(
    service: impl FnOnce(AuthenticationService) -> AuthenticationService,
) -> (Endpoint, Vec<u8>) {
    proxy_with_limits(Limits::DEFAULT, service)
}

/// [`proxy`] with these parser limits (`EndpointConfig::limits`).
pub fn proxy_with_limits(
    limits: Limits,
    service: impl FnOnce(AuthenticationService) -> AuthenticationService,
) -> (Endpoint, Vec<u8>) {
    let mut ep = Endpoint::new(EndpointConfig {
        domains: vec!["example.com".to_owned()],
        local: vec![
            (TransportKind::Udp, addr("192.0.2.1:5060")),
            (TransportKind::Tls, addr("192.0.2.1:5061")),
        ],
        advertised_host: None,
        static_hosts: Vec::new(),
        min_expires: 60,
        max_expires: 3600,
        default_expires: 3600,
        transaction: TransactionConfig::default(),
        limits,
        seed: 7,
        ..EndpointConfig::default()
    });
    ep.set_policy(Box::new(
        DigestPolicy::new(DigestConfig::new(NonceSecret::new([7; 32]), 7)).unwrap(),
    ));
    ep.set_users(vec![UserCredentials {
        username: "alice".to_owned(),
        realm: "example.com".to_owned(),
        aor: "sip:alice@example.com".to_owned(),
        may_assert: Vec::new(),
        ha1: Algorithm::STRONGEST_FIRST
            .iter()
            .map(|&a| (a, ha1(a, "alice", "example.com", PASSWORD)))
            .collect(),
    }]);
    ep.restore_bindings(vec![Binding {
        aor: "sip:bob@example.com".to_owned(),
        contact: format!("sip:bob@{BOB}"),
        expires_at: WALL + 3600,
        q: 1000,
        call_id: "bind-bob".to_owned(),
        cseq: 1,
        source: Peer::new(TransportKind::Udp, addr(BOB)),
    }]);
    let key = KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let cert = CertificateParams::new(vec!["example.com".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let signing = Arc::new(RsaSigningKey::from_der(&key.serialize_der()).unwrap());
    ep.set_authentication_service(Some(service(AuthenticationService::new(
        signing,
        "https://example.com/cert.der",
    ))));
    (ep, cert.der().to_vec())
}
