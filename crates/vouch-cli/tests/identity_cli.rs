//! `vouch identity sign|verify` as a user runs it: the RFC 4474 §10 INVITE signed byte for
//! byte, verified with --cert, refused when tampered (438), expired (437), misnamed (437) or
//! unreachable (436), and verified with --trust by fetching Identity-Info over real HTTP.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn vectors() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../vouch-auth/tests/vectors/rfc4474"
    ))
}

fn vouch(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vouch"))
        .args(args)
        .output()
        .expect("vouch runs")
}

/// The §10.1 INVITE with Content-Length corrected to its 172-octet body (see the vectors'
/// MANIFEST.md), written to a temp file.
fn invite(dir: &tempfile::TempDir) -> PathBuf {
    let text = std::fs::read_to_string(vectors().join("invite.message"))
        .unwrap()
        .replace("Content-Length: 147", "Content-Length: 172");
    let p = dir.path().join("invite.sip");
    std::fs::write(&p, text).unwrap();
    p
}

fn sign(dir: &tempfile::TempDir, msg: &Path, url: &str) -> PathBuf {
    let key = vectors().join("atlanta.privkey");
    let out = vouch(&[
        "identity",
        "sign",
        "--key",
        key.to_str().unwrap(),
        "--cert-url",
        url,
        "--keep-date",
        msg.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let p = dir.path().join("signed.sip");
    std::fs::write(&p, &out.stdout).unwrap();
    p
}

fn verify(args: &[&str]) -> (i32, String) {
    let out = vouch(args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn sign_reproduces_rfc4474_identity_and_verify_checks_it() {
    let dir = tempfile::tempdir().unwrap();
    let signed = sign(
        &dir,
        &invite(&dir),
        "https://atlanta.example.com/atlanta.cer",
    );
    let text = std::fs::read_to_string(&signed).unwrap();
    let published: String = std::fs::read_to_string(vectors().join("invite.signed.enc"))
        .unwrap()
        .split_whitespace()
        .collect();
    assert!(text.contains(&format!("Identity: \"{published}\"")));

    let cert = vectors().join("atlanta.cer");
    let (code, out) = verify(&[
        "identity",
        "verify",
        "--cert",
        cert.to_str().unwrap(),
        "--no-date-check",
        signed.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("sip:alice@atlanta.example.com"));

    // The certificate expired in 2006.
    let (code, out) = verify(&[
        "identity",
        "verify",
        "--cert",
        cert.to_str().unwrap(),
        "--json",
        signed.to_str().unwrap(),
    ]);
    assert_eq!((code, out.contains("\"status\":437")), (1, true), "{out}");

    let other = vectors().join("biloxi.cer");
    let (code, out) = verify(&[
        "identity",
        "verify",
        "--cert",
        other.to_str().unwrap(),
        "--no-date-check",
        "--json",
        signed.to_str().unwrap(),
    ]);
    assert_eq!((code, out.contains("\"status\":437")), (1, true), "{out}");

    let tampered = dir.path().join("tampered.sip");
    std::fs::write(&tampered, text.replace("PCMU", "PCMA")).unwrap();
    let (code, out) = verify(&[
        "identity",
        "verify",
        "--cert",
        cert.to_str().unwrap(),
        "--no-date-check",
        "--json",
        tampered.to_str().unwrap(),
    ]);
    assert_eq!((code, out.contains("\"status\":438")), (1, true), "{out}");
}

#[test]
fn verify_with_trust_fetches_identity_info_over_http() {
    let cert_pem = std::fs::read(vectors().join("atlanta.cer")).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/atlanta.cer", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut s = stream;
            let mut buf = [0u8; 2048];
            let _ = s.read(&mut buf);
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: application/x-pem-file\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                cert_pem.len()
            );
            let _ = s.write_all(&cert_pem);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let signed = sign(&dir, &invite(&dir), &url);
    let anchors = vectors().join("atlanta.cer");
    let (code, out) = verify(&[
        "identity",
        "verify",
        "--trust",
        anchors.to_str().unwrap(),
        "--no-date-check",
        signed.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}");

    // Nothing listens on the port of a closed listener: 436.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}/c", closed.local_addr().unwrap());
    drop(closed);
    let signed = sign(&dir, &invite(&dir), &dead);
    let (code, out) = verify(&[
        "identity",
        "verify",
        "--trust",
        anchors.to_str().unwrap(),
        "--no-date-check",
        "--json",
        signed.to_str().unwrap(),
    ]);
    assert_eq!((code, out.contains("\"status\":436")), (1, true), "{out}");
    let signed = sign(&dir, &invite(&dir), "file:///etc/passwd");
    let (code, out) = verify(&[
        "identity",
        "verify",
        "--trust",
        anchors.to_str().unwrap(),
        "--no-date-check",
        "--json",
        signed.to_str().unwrap(),
    ]);
    assert_eq!((code, out.contains("\"status\":436")), (1, true), "{out}");
}
