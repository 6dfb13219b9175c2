//! Interoperability with SIPp (Debian `sip-tester`): a SIPp UAS registers at `vouch proxy`,
//! a SIPp UAC calls it through vouch (INVITE / 180 / 200 / ACK / BYE, Record-Route honoured)
//! over UDP and over TCP, and registrations survive a restart of vouch. These test plain
//! routing, so vouch runs with `[auth] enabled = false`; `sipp_auth.rs` does the same with
//! digest authentication.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use support::*;

const CALLS: u64 = 20;

/// Registers a UAS for `bob` and runs `CALLS` calls to it over `transport` (`u1` or `t1`).
fn calls_through_vouch(transport: &str) {
    if !sipp_available() {
        eprintln!("sipp not installed (Debian sip-tester): skipped");
        return;
    }
    let _serial = serial();
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let vouch = Vouch::start(dir, NO_AUTH);
    let uas_port = free_port();
    register(dir, &vouch, "bob", transport, uas_port);
    let uas = SippServer::start(dir, "uas", &scenario(dir, "uas.xml"), transport, uas_port);
    let uac = sipp_client(
        Sipp {
            dir,
            tag: "uac",
            transport,
            port: free_port(),
        },
        &scenario(dir, "uac.xml"),
        vouch.udp_addr(),
        &[
            "-s",
            "bob",
            "-m",
            &CALLS.to_string(),
            "-r",
            "20",
            "-l",
            "10",
        ],
        Duration::from_secs(60),
    );
    if !(uac.status.success() && uac.failed == 0 && uac.successful == CALLS) {
        panic!(
            "calls over {transport} failed: sipp exit {}, {} ok, {} failed\n{}\nUAS unexpected messages:\n{}\nvouch log (tail):\n{}",
            uac.status,
            uac.successful,
            uac.failed,
            uac.output,
            tail_lines(&uas.errors(), 40),
            tail_lines(&vouch.log_text(), 80)
        );
    }
    eprintln!(
        "{CALLS} calls over {transport} in {:.1}s",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn sipp_calls_over_udp_through_vouch() {
    calls_through_vouch("u1");
}

#[test]
fn sipp_calls_over_tcp_through_vouch() {
    calls_through_vouch("t1");
}

#[test]
fn registrations_survive_a_restart() {
    if !sipp_available() {
        eprintln!("sipp not installed (Debian sip-tester): skipped");
        return;
    }
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut vouch = Vouch::start(dir, NO_AUTH);
    let uas_port = free_port();
    register(dir, &vouch, "carol", "u1", uas_port);
    // SIGTERM must flush the binding to the store and exit 0; the new process restores it.
    vouch.restart();
    assert!(
        vouch.log_text().contains("registrations restored"),
        "no restore logged:\n{}",
        tail_lines(&vouch.log_text(), 40)
    );
    let uas = SippServer::start(dir, "uas", &scenario(dir, "uas.xml"), "u1", uas_port);
    let uac = sipp_client(
        Sipp {
            dir,
            tag: "uac",
            transport: "u1",
            port: free_port(),
        },
        &scenario(dir, "uac.xml"),
        vouch.udp_addr(),
        &["-s", "carol", "-m", "3", "-r", "10"],
        Duration::from_secs(30),
    );
    if !(uac.status.success() && uac.failed == 0 && uac.successful == 3) {
        panic!(
            "calls after restart failed: sipp exit {}, {} ok, {} failed\n{}\nUAS:\n{}\nvouch log (tail):\n{}",
            uac.status,
            uac.successful,
            uac.failed,
            uac.output,
            tail_lines(&uas.errors(), 40),
            tail_lines(&vouch.log_text(), 80)
        );
    }
    let st = vouch.stop();
    assert!(st.success(), "vouch exit {st}");
}
