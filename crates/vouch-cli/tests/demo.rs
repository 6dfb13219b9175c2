//! `vouch demo` — the README's main command — runs the identity trapezoid end to end and exits
//! 0 only when every check passed; its ladder shows the signed, certificate-carrying messages.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

#[test]
fn demo_passes_every_check_and_prints_the_ladder() {
    let out = Command::new(env!("CARGO_BIN_EXE_vouch"))
        .args(["demo", "--timeout", "30"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("all 12 checks passed"), "{stdout}");
    assert!(!stdout.contains("[FAIL]"), "{stdout}");
    for needle in [
        "INVITE +cert +Identity",
        "UPDATE +cert +Identity",
        "200 INVITE +rspauth",
        "binding created: sip:alice@atlanta.example <-> sha-256 ",
        "binding removed (Bye): sip:bob@biloxi.example",
    ] {
        assert!(stdout.contains(needle), "no {needle:?} in:\n{stdout}");
    }
}
