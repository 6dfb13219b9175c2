//! `vouch identity sign|verify` as a user runs it: the RFC 4474 §10 INVITE signed byte for
//! byte, verified with --cert, refused when tampered (438), expired (437), misnamed (437) or
//! unreachable (436), and verified with --trust by fetching Identity-Info over real HTTP.
//! With a current certificate (vouch's own development CA and identity certificate): an
//! unsigned request is 428 whichever way the certificate comes (RFC 4474 §6), a Date an hour
//! and a second old is 403 (§6.2 step 4), --cert reads DER and PEM, a malformed Identity is
//! 438 without fetching Identity-Info, `sign -` reads stdin, and I/O and usage errors exit 2.

mod kamailio;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use kamailio::HttpFiles;
use vouch::tls::{DevIdentity, ensure_dev_identity};
use vouch_msg::headers::date::format_sip_date;

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

// ---------------------------------------------------------------------------------------------
// With a certificate valid now: vouch's development CA and RSA identity certificate for
// atlanta.example.com (SAN DNS and sip: URI), as `vouch proxy` makes them.

const DOMAIN: &str = "atlanta.example.com";

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn dev_identity(dir: &tempfile::TempDir) -> DevIdentity {
    ensure_dev_identity(dir.path(), &[DOMAIN.to_string()], now_unix()).unwrap()
}

/// An unsigned INVITE from alice@atlanta.example.com dated `date`, written to `name`.
fn unsigned(dir: &tempfile::TempDir, name: &str, date: i64) -> PathBuf {
    let text = format!(
        "INVITE sip:bob@biloxi.example.org SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK77\r\nTo: <sip:bob@biloxi.example.org>\r\nFrom: <sip:alice@{DOMAIN}>;tag=9\r\nCall-ID: {name}@192.0.2.1\r\nCSeq: 1 INVITE\r\nDate: {}\r\nContact: <sip:alice@192.0.2.1>\r\nMax-Forwards: 70\r\nContent-Length: 4\r\n\r\nbody",
        format_sip_date(date).unwrap()
    );
    let p = dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// `vouch identity sign` with the identity key; `extra` before MSG (e.g. `--keep-date`).
fn sign_with(id: &DevIdentity, url: &str, extra: &[&str], msg: &Path) -> Vec<u8> {
    let mut args = vec![
        "identity",
        "sign",
        "--key",
        id.key.to_str().unwrap(),
        "--cert-url",
        url,
    ];
    args.extend_from_slice(extra);
    args.push(msg.to_str().unwrap());
    let out = vouch(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn write(dir: &tempfile::TempDir, name: &str, data: &[u8]) -> PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, data).unwrap();
    p
}

/// `vouch identity verify --json` with `how` (`--cert X` or `--trust X`): exit code and the
/// status named (0 when verified).
fn verify_status(how: &[&str], msg: &Path) -> (i32, u16) {
    let mut args = vec!["identity", "verify", "--json"];
    args.extend_from_slice(how);
    args.push(msg.to_str().unwrap());
    let (code, out) = verify(&args);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| {
        panic!("{e}: {out}");
    });
    let status = v["status"].as_u64().unwrap_or(0) as u16;
    assert_eq!(v["verified"].as_bool(), Some(status == 0), "{out}");
    (code, status)
}

#[test]
fn unsigned_request_is_428_with_cert_and_with_trust() {
    let dir = tempfile::tempdir().unwrap();
    let id = dev_identity(&dir);
    let msg = unsigned(&dir, "unsigned.sip", now_unix());
    let cert = id.cert.to_str().unwrap();
    let ca = id.ca_cert.to_str().unwrap();
    assert_eq!(verify_status(&["--cert", cert], &msg), (1, 428));
    // No Identity-Info either: the missing Identity is the verdict, not 436.
    assert_eq!(verify_status(&["--trust", ca], &msg), (1, 428));
    let (code, out) = verify(&["identity", "verify", "--trust", ca, msg.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(out.contains("428"), "{out}");
}

#[test]
fn stale_date_is_403_with_a_currently_valid_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let id = dev_identity(&dir);
    let cert = id.cert.to_str().unwrap();
    let url = "http://127.0.0.1:9/identity.cer";
    let now = now_unix();
    let old = unsigned(&dir, "old.sip", now - 3601);
    let stale = write(
        &dir,
        "stale.sip",
        &sign_with(&id, url, &["--keep-date"], &old),
    );
    assert_eq!(verify_status(&["--cert", cert], &stale), (1, 403));
    // The same request signed now (sign sets Date) verifies: only the Date made it 403.
    let fresh = write(&dir, "fresh.sip", &sign_with(&id, url, &[], &old));
    assert_eq!(verify_status(&["--cert", cert], &fresh), (0, 0));
    // --no-date-check is what lets the stale one through.
    assert_eq!(
        verify_status(&["--cert", cert, "--no-date-check"], &stale),
        (0, 0)
    );
}

#[test]
fn cert_is_read_as_der_or_pem() {
    let dir = tempfile::tempdir().unwrap();
    let id = dev_identity(&dir);
    let msg = unsigned(&dir, "m.sip", now_unix());
    let signed = write(
        &dir,
        "signed.sip",
        &sign_with(&id, "http://127.0.0.1:9/c", &[], &msg),
    );
    let der_of = |pem: &Path| {
        vouch::cert_fetch::parse_chain(&std::fs::read(pem).unwrap())
            .unwrap()
            .end_entity
    };
    let der = write(&dir, "identity.der", &der_of(&id.cert));
    assert_eq!(der_of(&der), std::fs::read(&der).unwrap(), "DER as written");
    assert_eq!(
        verify_status(&["--cert", id.cert.to_str().unwrap()], &signed),
        (0, 0)
    );
    assert_eq!(
        verify_status(&["--cert", der.to_str().unwrap()], &signed),
        (0, 0)
    );
    // A DER certificate that is not the signer's (the CA: another name) is really read: 437.
    let ca_der = write(&dir, "ca.der", &der_of(&id.ca_cert));
    assert_eq!(
        verify_status(&["--cert", ca_der.to_str().unwrap()], &signed),
        (1, 437)
    );
}

#[test]
fn malformed_identity_or_no_identity_is_refused_without_fetching() {
    let dir = tempfile::tempdir().unwrap();
    let id = dev_identity(&dir);
    let files = HttpFiles::serve(vec![(
        "/identity.cer".to_string(),
        "application/x-pem-file",
        std::fs::read(&id.cert).unwrap(),
    )]);
    let url = files.url("/identity.cer");
    let ca = id.ca_cert.to_str().unwrap();
    let msg = unsigned(&dir, "m.sip", now_unix());
    let signed = String::from_utf8(sign_with(&id, &url, &[], &msg)).unwrap();

    let start = signed.find("Identity: \"").unwrap() + "Identity: ".len();
    let end = start + signed[start..].find("\r\n").unwrap();
    let bad = write(
        &dir,
        "bad.sip",
        format!("{}\"@@@@\"{}", &signed[..start], &signed[end..]).as_bytes(),
    );
    assert_eq!(verify_status(&["--trust", ca], &bad), (1, 438));
    // Identity-Info without Identity: 428, and nothing fetched either.
    let no_identity = write(
        &dir,
        "no-identity.sip",
        format!(
            "{}{}",
            &signed[..start - "Identity: ".len()],
            &signed[end + 2..]
        )
        .as_bytes(),
    );
    assert!(
        !String::from_utf8_lossy(&std::fs::read(&no_identity).unwrap()).contains("Identity: "),
        "Identity removed"
    );
    assert_eq!(verify_status(&["--trust", ca], &no_identity), (1, 428));
    assert_eq!(files.hits("/identity.cer"), 0, "nothing was fetched");

    // The intact request is fetched once and verifies against the CA.
    let good = write(&dir, "good.sip", signed.as_bytes());
    assert_eq!(verify_status(&["--trust", ca], &good), (0, 0));
    assert_eq!(files.hits("/identity.cer"), 1);
}

#[test]
fn sign_reads_the_request_from_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let id = dev_identity(&dir);
    let msg = std::fs::read(unsigned(&dir, "m.sip", now_unix())).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_vouch"))
        .args(["identity", "sign", "--key"])
        .arg(&id.key)
        .args(["--cert-url", "https://atlanta.example.com/c", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&msg).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("Identity-Info: <https://atlanta.example.com/c>;alg=rsa-sha1"),
        "{text}"
    );
    let signed = write(&dir, "signed.sip", text.as_bytes());
    assert_eq!(
        verify_status(&["--cert", id.cert.to_str().unwrap()], &signed),
        (0, 0)
    );
}

#[test]
fn io_and_usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let id = dev_identity(&dir);
    let cert = id.cert.to_str().unwrap();
    let missing = dir.path().join("no-such.sip");
    let missing = missing.to_str().unwrap();
    for (what, args) in [
        (
            "unreadable MSG",
            vec!["identity", "verify", "--cert", cert, missing],
        ),
        (
            "unreadable MSG to sign",
            vec![
                "identity",
                "sign",
                "--key",
                id.key.to_str().unwrap(),
                "--cert-url",
                "https://x/c",
                missing,
            ],
        ),
        (
            "neither --cert nor --trust",
            vec!["identity", "verify", cert],
        ),
        (
            "--cert and --trust together",
            vec!["identity", "verify", "--cert", cert, "--trust", cert, cert],
        ),
        (
            "unknown --alg",
            vec![
                "identity",
                "sign",
                "--key",
                cert,
                "--cert-url",
                "u",
                "--alg",
                "md5",
                cert,
            ],
        ),
    ] {
        let out = vouch(&args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.stdout.is_empty(), "{what}: no verdict printed");
        assert!(!out.stderr.is_empty(), "{what}: the error is said");
    }
    let out = vouch(&["identity", "verify", "--cert", cert, missing]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot read"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
