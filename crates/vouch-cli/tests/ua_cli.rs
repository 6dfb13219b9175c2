//! `vouch ua` against `vouch proxy`, as separate processes over UDP: Bob answers, Alice calls;
//! both check the proxy's rspauth, Bob verifies Alice's Identity and binds her certificate,
//! Alice binds Bob's from his signed UPDATE (the proxy challenges mid-dialog requests here),
//! and both bindings go with the BYE.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;

use support::*;

fn ua(vouch: &Vouch, user: &str, password: &str, extra: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vouch"));
    c.args(["ua", "--aor", &format!("sip:{user}@localhost")])
        .args(["--proxy", &format!("udp:127.0.0.1:{}", vouch.sip_port)])
        .arg("--trust")
        .arg(vouch.data_dir().join("ca.pem"))
        .args(extra)
        .env("VOUCH_PASSWORD", password);
    c
}

#[test]
fn ua_calls_and_answers_through_vouch_proxy_with_bindings_both_ways() {
    let tmp = tempfile::tempdir().unwrap();
    add_user(&tmp.path().join("data"), "alice", "a-secret");
    add_user(&tmp.path().join("data"), "bob", "b-secret");
    let vouch = Vouch::start(tmp.path(), "[auth]\nchallenge_in_dialog = true\n");

    let bob = Watched::spawn_until(
        &mut ua(
            &vouch,
            "bob",
            "b-secret",
            &[
                "--answer",
                "--calls",
                "1",
                "--require-identity",
                "--timeout",
                "30",
            ],
        ),
        "registered for",
        "bob",
    );

    let alice = ua(
        &vouch,
        "alice",
        "a-secret",
        &["--call", "sip:bob@localhost", "--duration", "1"],
    )
    .output()
    .unwrap();
    let alice_out = String::from_utf8_lossy(&alice.stdout);
    assert!(
        alice.status.success(),
        "alice failed:\n{alice_out}\n{}",
        String::from_utf8_lossy(&alice.stderr)
    );
    let bob_out = bob.finish("bob");

    for needle in [
        "registrar's rspauth checked for localhost",
        "rspauth of localhost checked on the INVITE 200",
        "Identity of UPDATE verified: sip:bob@localhost, signed by localhost",
        "binding created: sip:bob@localhost <-> sha-256 ",
        "binding removed (Bye): sip:bob@localhost",
    ] {
        assert!(
            alice_out.contains(needle),
            "alice: no {needle:?} in\n{alice_out}"
        );
    }
    for needle in [
        "Identity of INVITE verified: sip:alice@localhost, signed by localhost",
        "binding created: sip:alice@localhost <-> sha-256 ",
        "rspauth of localhost checked on the UPDATE 200",
        "binding removed (Bye): sip:alice@localhost",
    ] {
        assert!(bob_out.contains(needle), "bob: no {needle:?} in\n{bob_out}");
    }
    assert!(!alice_out.contains("!!") && !bob_out.contains("!!"));
}

#[test]
fn ua_reports_a_wrong_password_and_exits_1() {
    let tmp = tempfile::tempdir().unwrap();
    add_user(&tmp.path().join("data"), "alice", "a-secret");
    let vouch = Vouch::start(tmp.path(), "");
    let out = ua(&vouch, "alice", "wrong", &["--timeout", "15"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("REGISTRATION FAILED"), "{text}");
}

#[test]
fn ua_without_password_names_the_problem() {
    let out = Command::new(env!("CARGO_BIN_EXE_vouch"))
        .args(["ua", "--aor", "sip:alice@localhost"])
        .env_remove("VOUCH_PASSWORD")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("VOUCH_PASSWORD"));
}

/// A device certificate from files (made by openssl, P-256, PKCS#8 key) is used instead of a
/// per-login one: the UA names it by the fingerprint openssl computes for it.
#[test]
fn ua_uses_a_device_certificate_from_files() {
    let tmp = tempfile::tempdir().unwrap();
    let (cert, key) = (tmp.path().join("dev.pem"), tmp.path().join("dev.key"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args([
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=sip:alice@localhost",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output();
    let Ok(made) = made else {
        eprintln!("ua_uses_a_device_certificate_from_files: openssl not installed");
        return;
    };
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let fp = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(&cert)
        .output()
        .unwrap();
    // "sha256 Fingerprint=AB:CD:…" (OpenSSL 3) or "SHA256 Fingerprint=…".
    let fp = String::from_utf8_lossy(&fp.stdout);
    let hex = fp.trim().rsplit('=').next().unwrap().to_ascii_uppercase();

    add_user(&tmp.path().join("data"), "alice", "a-secret");
    let vouch = Vouch::start(tmp.path(), "");
    let out = ua(
        &vouch,
        "alice",
        "a-secret",
        &["--timeout", "15", "--device-cert"],
    )
    .arg(&cert)
    .arg("--device-key")
    .arg(&key)
    .output()
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(&format!("ok device certificate sha-256 {hex}")),
        "{hex} not in:\n{text}"
    );
}
