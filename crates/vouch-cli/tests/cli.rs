//! The `vouch` command line: configuration errors name the problem, `user` manages accounts,
//! the zero-configuration start generates development certificates and the nonce secret once,
//! SIGTERM exits 0.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;

use support::*;

fn vouch() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vouch"))
}

#[test]
fn config_errors_name_the_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let cases = [
        ("domian = [\"x\"]\n", "domian"),
        ("listen = [\"sctp:127.0.0.1:5060\"]\n", "unknown transport"),
        (
            "listen = [\"udp:localhost\"]\n",
            "not an IP address and port",
        ),
        (
            "[registrar]\nmin_expires = 100\nmax_expires = 10\n",
            "registrar.min_expires",
        ),
        ("[tls]\ncert = \"c.pem\"\n", "tls.key"),
        ("[auth]\nalgorithms = [\"SHA-1\"]\n", "auth.algorithms"),
        ("[auth]\ndigest_uri = \"lax\"\n", "digest_uri"),
        ("[metrics]\nlisten = \"localhost:9090\"\n", "metrics.listen"),
        (
            "[tls]\ncert = \"missing.pem\"\nkey = \"missing.key\"\n",
            "missing.pem",
        ),
    ];
    for (text, needle) in cases {
        let f = tmp.path().join("bad.toml");
        std::fs::write(&f, text).unwrap();
        let out = vouch()
            .args(["proxy", "--config"])
            .arg(&f)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{text}: {err}");
        assert!(
            err.contains(needle),
            "{text}: error does not mention {needle}: {err}"
        );
    }
    let out = vouch()
        .args(["proxy", "--config", "/nonexistent/vouch.toml"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/vouch.toml"));
}

#[test]
fn user_add_list_remove() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("data");
    let run = |args: &[&str]| {
        let out = vouch()
            .arg("user")
            .args(args)
            .arg("--data-dir")
            .arg(&d)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (ok, out) = run(&[
        "add",
        "sip:alice@localhost",
        "--password",
        "s3cret",
        "--may-assert",
        "sip:sales@localhost",
    ]);
    assert!(ok, "{out}");
    let (ok, out) = run(&["add", "sip:alice@localhost", "--password", "x"]);
    assert!(!ok && out.contains("already exists"), "{out}");
    let (ok, out) = run(&["add", "alice", "--password", "x"]);
    assert!(!ok && out.contains("address-of-record"), "{out}");
    let (ok, out) = run(&["list"]);
    assert!(ok, "{out}");
    assert!(out.contains("sip:alice@localhost"), "{out}");
    assert!(out.contains("sip:sales@localhost"), "{out}");
    assert!(!out.contains("s3cret"), "password printed: {out}");
    let (ok, out) = run(&["remove", "sip:alice@localhost"]);
    assert!(ok, "{out}");
    let (ok, out) = run(&["remove", "sip:alice@localhost"]);
    assert!(!ok && out.contains("no user"), "{out}");
}

/// The zero-configuration start also makes the nonce secret of digest authentication (on by
/// default): 32 bytes, readable by the owner only, kept across restarts.
#[test]
fn development_certificates_are_made_once_and_sigterm_exits_zero() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let mut v = Vouch::start(tmp.path(), "");
    let made = v.stdout.join("\n");
    assert!(made.contains("generated a development CA"), "{made}");
    for f in ["ca.pem", "domain.pem", "domain.key"] {
        assert!(tmp.path().join("data").join(f).exists(), "{f} missing");
    }
    let pem = std::fs::read(tmp.path().join("data/domain.pem")).unwrap();
    let secret_path = tmp.path().join("data/nonce.secret");
    let secret = std::fs::read(&secret_path).unwrap();
    assert_eq!(secret.len(), 32);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&secret_path)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "nonce.secret mode {mode:o}");
    }
    assert!(
        v.log_text().contains("digest authentication on"),
        "{}",
        tail_lines(&v.log_text(), 20)
    );
    v.restart();
    assert!(
        !v.stdout.join("\n").contains("generated"),
        "regenerated on the second run: {:?}",
        v.stdout
    );
    assert_eq!(
        pem,
        std::fs::read(tmp.path().join("data/domain.pem")).unwrap()
    );
    assert_eq!(secret, std::fs::read(&secret_path).unwrap());
    let st = v.stop();
    assert!(st.success(), "exit {st}");
}

/// `[metrics] listen`: the running binary (one-thread runtime) counts an OPTIONS and answers
/// a scrape with the engine's figures and its open connections, and says where in its ready
/// line.
#[test]
fn metrics_are_served_where_the_ready_line_says() {
    use std::io::{Read, Write};
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut v = Vouch::start(
        tmp.path(),
        &format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n"),
    );
    // An OPTIONS to the server, answered 200 by a transaction that lingers (Timer J).
    let ua = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    ua.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let ua_port = ua.local_addr().unwrap().port();
    let options = format!(
        "OPTIONS sip:localhost SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:{ua_port};branch=z9hG4bK-cli-metrics\r\n\
         Max-Forwards: 70\r\nFrom: <sip:carol@elsewhere.example>;tag=c\r\n\
         To: <sip:localhost>\r\nCall-ID: cli-metrics\r\nCSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n"
    );
    ua.send_to(options.as_bytes(), ("127.0.0.1", v.sip_port))
        .unwrap();
    let mut buf = [0u8; 4096];
    let (n, _) = ua.recv_from(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"SIP/2.0 200 "));
    // A TCP connection, served (its CRLFCRLF ping answered, RFC 5626 §4.4.1) and kept open.
    let mut sip_tcp = std::net::TcpStream::connect(("127.0.0.1", v.sip_port)).unwrap();
    sip_tcp
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    sip_tcp.write_all(b"\r\n\r\n").unwrap();
    let mut pong = [0u8; 2];
    sip_tcp.read_exact(&mut pong).unwrap();
    let ready = v.stdout.join("\n");
    let url = format!("http://127.0.0.1:{port}/metrics");
    assert!(ready.contains(&format!("; metrics at {url};")), "{ready}");
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut reply = String::new();
    tcp.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200 "), "{reply}");
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        reply.contains(&format!("\nvouch_build_info{{version=\"{version}\"}} 1\n")),
        "{reply}"
    );
    assert!(
        reply.contains("\nvouch_sip_requests_received_total{method=\"OPTIONS\"} 1\n"),
        "{reply}"
    );
    assert!(
        reply.contains("\nvouch_sip_responses_sent_total{code=\"200\"} 1\n"),
        "{reply}"
    );
    // Read from the engine through the event loop.
    assert!(reply.contains("\nvouch_transactions 1\n"), "{reply}");
    assert!(reply.contains("\nvouch_registrar_bindings 0\n"), "{reply}");
    assert!(reply.contains("\nvouch_connections 1\n"), "{reply}");
    drop(sip_tcp);
    let st = v.stop();
    assert!(st.success(), "exit {st}");
}
