//! The UA driver's per-login certificate (identity usage BCP §6): a fresh P-256 key pair per
//! login, naming the AoR, renewed before it expires.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use vouch::cert_fetch::FetchConfig;
use vouch::ua::{CertificateSource, UaHandle};
use vouch_proto::endpoint::{Peer, TransportKind};
use vouch_proto::ua::UaConfig;
use x509_parser::prelude::*;

async fn start(lifetime_secs: i64) -> UaHandle {
    let (ua, _out) = UaHandle::start(
        "127.0.0.1:0".parse().unwrap(),
        CertificateSource::PerLogin {
            lifetime_secs,
            device: None,
        },
        FetchConfig::default(),
        |local| {
            UaConfig::new(
                "sip:alice@atlanta.example",
                (TransportKind::Udp, local),
                Peer::new(TransportKind::Udp, "127.0.0.1:9".parse().unwrap()),
            )
        },
    )
    .await
    .unwrap();
    ua
}

async fn certificate(ua: &UaHandle) -> Vec<u8> {
    ua.with(|u, _| u.certificate().map(<[u8]>::to_vec))
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn each_login_gets_a_fresh_key_naming_the_aor() {
    let a = start(86_400).await;
    let b = start(86_400).await;
    let (ca, cb) = (certificate(&a).await, certificate(&b).await);
    let (_, xa) = X509Certificate::from_der(&ca).unwrap();
    let (_, xb) = X509Certificate::from_der(&cb).unwrap();
    assert_ne!(
        xa.public_key().raw,
        xb.public_key().raw,
        "a key pair per login"
    );
    let san = xa.subject_alternative_name().unwrap().unwrap();
    assert!(
        san.value
            .general_names
            .iter()
            .any(|n| matches!(n, GeneralName::URI("sip:alice@atlanta.example"))),
        "{:?}",
        san.value
    );
    let v = xa.validity();
    let life = v.not_after.timestamp() - v.not_before.timestamp();
    assert_eq!(
        life,
        86_400 + 60,
        "24 h from now, dated back a minute for clock skew"
    );
    a.stop();
    b.stop();
}

#[tokio::test]
async fn a_short_lived_certificate_is_renewed_before_it_expires() {
    let ua = start(3).await;
    let first = certificate(&ua).await;
    let mut renewed = None;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = certificate(&ua).await;
        if now != first {
            renewed = Some(now);
            break;
        }
    }
    let renewed = renewed.expect("the certificate was not renewed within 10 s");
    let (_, x) = X509Certificate::from_der(&renewed).unwrap();
    assert!(x.validity().not_after.timestamp() > vouch::server::wall_unix());
    ua.stop();
}
