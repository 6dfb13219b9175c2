//! `vouch ua` against SIPp, an independent implementation, with no proxy in between: the UA
//! calls a SIPp UAS (INVITE with its certificate body, 180, 200, ACK, BYE), and answers a
//! SIPp UAC (which does not offer 100rel, so the UA answers with 200 and the SDP at once).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::*;

fn vouch_ua(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vouch"));
    c.args(["ua", "--aor", "sip:alice@localhost", "--no-register"])
        .args(args)
        .env("VOUCH_PASSWORD", "unused");
    c
}

#[test]
fn ua_calls_a_sipp_uas() {
    if !sipp_available() {
        eprintln!(
            "ua_calls_a_sipp_uas: sipp not installed (the README's test command installs it)"
        );
        return;
    }
    let _guard = serial();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let uas = SippServer::start(
        dir.path(),
        "uas",
        &scenario(dir.path(), "uas.xml"),
        "u1",
        port,
    );
    let out = vouch_ua(&[
        "--proxy",
        &format!("udp:127.0.0.1:{port}"),
        "--call",
        &format!("sip:service@127.0.0.1:{port}"),
        "--duration",
        "1",
        "--timeout",
        "20",
    ])
    .output()
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}\nsipp: {}",
        String::from_utf8_lossy(&out.stderr),
        uas.errors()
    );
    assert!(text.contains("call established"), "{text}");
    assert!(text.contains("call ended (BYE sent)"), "{text}");
    assert!(
        uas.errors().trim().is_empty(),
        "SIPp saw unexpected messages: {}",
        uas.errors()
    );
}

#[test]
fn ua_answers_a_sipp_uac() {
    if !sipp_available() {
        eprintln!(
            "ua_answers_a_sipp_uac: sipp not installed (the README's test command installs it)"
        );
        return;
    }
    let _guard = serial();
    let dir = tempfile::tempdir().unwrap();
    let ua_port = free_port();
    let ua = vouch_ua(&[
        "--bind",
        &format!("127.0.0.1:{ua_port}"),
        "--answer",
        "--calls",
        "1",
        "--timeout",
        "30",
    ])
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let target: SocketAddr = format!("127.0.0.1:{ua_port}").parse().unwrap();
    let run = sipp_client(
        Sipp {
            dir: dir.path(),
            tag: "uac",
            transport: "u1",
            port: free_port(),
        },
        &scenario(dir.path(), "uac.xml"),
        target,
        &["-s", "alice", "-m", "1"],
        Duration::from_secs(20),
    );
    run.assert_all_succeeded(1, "SIPp UAC calling vouch ua");
    let out = ua.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("incoming call from"), "{text}");
    assert!(text.contains("call ended (BYE received)"), "{text}");
}
