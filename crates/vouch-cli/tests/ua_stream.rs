//! `vouch ua` against `vouch proxy` over TCP and TLS (RFC 3261 §18), as separate processes:
//! each UA opens one connection to the proxy at start and everything — its requests, the
//! responses, and the requests the proxy sends it — goes over that connection.
//!
//! Over TCP both UAs register with digest and Bob answers Alice's call, as in `ua_cli.rs` over
//! UDP. Over TLS Alice logs in with a client certificate from the users' CA (`[tls] user_ca`):
//! she has no password at all, so her registration and call can only succeed unchallenged,
//! and Bob (over TCP) prints her INVITE's Identity, which the proxy signed for her.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    SanType,
};
use support::*;

fn ua(vouch: &Vouch, user: &str, proxy: &str, extra: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vouch"));
    c.args(["ua", "--aor", &format!("sip:{user}@localhost")])
        .args(["--proxy", proxy])
        .arg("--trust")
        .arg(vouch.data_dir().join("ca.pem"))
        .args(extra)
        .env_remove("VOUCH_PASSWORD");
    c
}

/// Starts Bob answering one call over TCP and waits until he has registered.
fn bob_answering(vouch: &Vouch) -> Watched {
    Watched::spawn_until(
        ua(
            vouch,
            "bob",
            &format!("tcp:127.0.0.1:{}", vouch.sip_port),
            &[
                "--answer",
                "--calls",
                "1",
                "--require-identity",
                "--timeout",
                "30",
            ],
        )
        .env("VOUCH_PASSWORD", "b-secret"),
        "registered for",
        "bob",
    )
}

fn assert_contains(who: &str, text: &str, needles: &[&str]) {
    for needle in needles {
        assert!(text.contains(needle), "{who}: no {needle:?} in\n{text}");
    }
    assert!(!text.contains("!!"), "{who}: a check failed:\n{text}");
}

#[test]
fn ua_calls_over_tcp_through_vouch_proxy() {
    let tmp = tempfile::tempdir().unwrap();
    add_user(&tmp.path().join("data"), "alice", "a-secret");
    add_user(&tmp.path().join("data"), "bob", "b-secret");
    let vouch = Vouch::start(tmp.path(), "[auth]\nchallenge_in_dialog = true\n");

    let bob = bob_answering(&vouch);
    assert!(
        bob.lines.iter().any(|l| l.contains(" on tcp 127.0.0.1:")),
        "{:?}",
        bob.lines
    );
    let alice = ua(
        &vouch,
        "alice",
        &format!("tcp:127.0.0.1:{}", vouch.sip_port),
        &["--call", "sip:bob@localhost", "--duration", "1"],
    )
    .env("VOUCH_PASSWORD", "a-secret")
    .output()
    .unwrap();
    let alice_out = String::from_utf8_lossy(&alice.stdout);
    assert!(
        alice.status.success(),
        "alice failed:\n{alice_out}\n{}",
        String::from_utf8_lossy(&alice.stderr)
    );
    let bob_out = bob.finish("bob");

    assert_contains(
        "alice",
        &alice_out,
        &[
            " on tcp 127.0.0.1:",
            "registrar's rspauth checked for localhost",
            "rspauth of localhost checked on the INVITE 200",
            "Identity of UPDATE verified: sip:bob@localhost, signed by localhost",
            "binding removed (Bye): sip:bob@localhost",
        ],
    );
    assert_contains(
        "bob",
        &bob_out,
        &[
            "registrar's rspauth checked for localhost",
            "Identity of INVITE verified: sip:alice@localhost, signed by localhost",
            "binding created: sip:alice@localhost <-> sha-256 ",
            "binding removed (Bye): sip:alice@localhost",
        ],
    );
    // Every request reached the proxy over TCP, and nothing over UDP.
    let log = vouch.log_text();
    for needle in [
        "REGISTER from tcp:127.0.0.1:",
        "INVITE from tcp:127.0.0.1:",
        "UPDATE from tcp:127.0.0.1:",
        "BYE from tcp:127.0.0.1:",
    ] {
        assert!(
            log.contains(needle),
            "no {needle:?} in the proxy's log:\n{log}"
        );
    }
    assert!(!log.contains("from udp:"), "{log}");
}

/// A users' CA, and a certificate from it naming `aor` for TLS client authentication: the CA
/// file, the certificate file and its key file.
fn user_certificate(dir: &Path, aor: &str) -> (PathBuf, PathBuf, PathBuf) {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name
        .push(DnType::CommonName, "localhost users");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca = p.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(p, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(Vec::<String>::new()).unwrap();
    leaf.subject_alt_names = vec![SanType::URI(aor.try_into().unwrap())];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    let paths = (
        dir.join("users-ca.pem"),
        dir.join("alice.pem"),
        dir.join("alice.key"),
    );
    std::fs::write(&paths.0, ca.pem()).unwrap();
    std::fs::write(&paths.1, cert.pem()).unwrap();
    std::fs::write(&paths.2, key.serialize_pem()).unwrap();
    paths
}

#[test]
fn ua_logs_in_over_tls_with_a_client_certificate_and_its_invite_is_signed() {
    let tmp = tempfile::tempdir().unwrap();
    // Only bob has a password; alice's certificate is her login.
    add_user(&tmp.path().join("data"), "bob", "b-secret");
    let (user_ca, cert, key) = user_certificate(tmp.path(), "sip:alice@localhost");
    let vouch = Vouch::start(
        tmp.path(),
        &format!(
            "[auth]\nchallenge_in_dialog = true\n[tls]\nuser_ca = [{:?}]\n",
            user_ca.display().to_string()
        ),
    );

    let bob = bob_answering(&vouch);
    let tls = |extra: &[&str]| {
        let mut c = ua(
            &vouch,
            "alice",
            &format!("tls:127.0.0.1:{}", vouch.tls_port),
            extra,
        );
        c.arg("--tls-ca")
            .arg(vouch.data_dir().join("ca.pem"))
            .arg("--tls-cert")
            .arg(&cert)
            .arg("--tls-key")
            .arg(&key);
        c
    };
    let alice = tls(&["--call", "sip:bob@localhost", "--duration", "1"])
        .output()
        .unwrap();
    let alice_out = String::from_utf8_lossy(&alice.stdout);
    assert!(
        alice.status.success(),
        "alice failed:\n{alice_out}\n{}",
        String::from_utf8_lossy(&alice.stderr)
    );
    let bob_out = bob.finish("bob");
    assert_contains(
        "alice",
        &alice_out,
        &[
            " on tls 127.0.0.1:",
            "ok TLS to tls:127.0.0.1:",
            // No password: a challenge could not have been answered.
            "registered for ",
            "Identity of UPDATE verified: sip:bob@localhost, signed by localhost",
            "binding removed (Bye): sip:bob@localhost",
        ],
    );
    assert_contains(
        "bob",
        &bob_out,
        &[
            "Identity of INVITE verified: sip:alice@localhost, signed by localhost",
            "binding created: sip:alice@localhost <-> sha-256 ",
        ],
    );
    let log = vouch.log_text();
    for needle in [
        "TLS client certificate authenticates a user",
        "REGISTER from tls:127.0.0.1:",
        "INVITE from tls:127.0.0.1:",
    ] {
        assert!(
            log.contains(needle),
            "no {needle:?} in the proxy's log:\n{log}"
        );
    }

    // Without the client certificate the same UA has no login: the registrar's challenge
    // cannot be answered, and the UA says so and exits 1.
    let out = ua(
        &vouch,
        "alice",
        &format!("tls:127.0.0.1:{}", vouch.tls_port),
        &["--timeout", "15", "--password", "not-hers"],
    )
    .arg("--tls-ca")
    .arg(vouch.data_dir().join("ca.pem"))
    .output()
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("REGISTRATION FAILED"), "{text}");
}

/// The proxy's certificate must chain to --tls-ca: a CA that did not issue it fails the
/// handshake at start.
#[test]
fn ua_refuses_a_proxy_certificate_it_cannot_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let (other_ca, _, _) = user_certificate(tmp.path(), "sip:alice@localhost");
    let vouch = Vouch::start(tmp.path(), "");
    let out = ua(
        &vouch,
        "alice",
        &format!("tls:127.0.0.1:{}", vouch.tls_port),
        &["--password", "x", "--timeout", "15", "--tls-ca"],
    )
    .arg(&other_ca)
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot connect to 127.0.0.1:"), "{err}");
}

/// When the proxy goes away the connection drops: the UA says so and exits 1 (it does not
/// reconnect).
#[test]
fn ua_exits_1_when_the_connection_to_the_proxy_drops() {
    let tmp = tempfile::tempdir().unwrap();
    add_user(&tmp.path().join("data"), "bob", "b-secret");
    let mut vouch = Vouch::start(tmp.path(), "");
    let bob = bob_answering(&vouch);
    vouch.stop();
    let (status, out) = bob.wait();
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(
        out.contains("!! connection lost: TCP connection to 127.0.0.1:"),
        "{out}"
    );
}
