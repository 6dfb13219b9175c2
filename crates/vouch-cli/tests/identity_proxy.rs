//! RFC 4474 signing by `vouch proxy` (`[identity]`) end to end: SIPp as caller and callee,
//! digest authentication (MD5, relaxed digest-uri, as SIPp needs), and `vouch identity verify`
//! as the verifier fetching the certificate from vouch's own HTTP endpoint.
//!
//! - bob's SIPp UAS registers with digest; alice's SIPp UAC calls him with digest. The INVITE
//!   bob receives (SIPp's `-trace_msg` log) carries Date, Identity and Identity-Info pointing
//!   at vouch's endpoint, and `vouch identity verify --trust <data>/ca.pem` fetches the
//!   certificate from there and verifies it for sip:alice@localhost; with the body changed,
//!   verify answers 438.
//! - The endpoint, fetched with a plain TCP GET, answers `application/pkix-cert` with the DER
//!   of the generated `identity.pem`, which parses as a certificate; HEAD has no body, other
//!   paths are 404.
//! - An authenticated INVITE whose Date is an hour old is refused with 403 (a raw UDP client
//!   answering the 407 with vouch-auth's digest Responder).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use support::*;
use vouch_auth::digest::{Algorithm, Responder, ResponderConfig};
use vouch_msg::headers::auth::Challenge;
use vouch_msg::headers::date::format_sip_date;
use vouch_msg::{HeaderName, Message};

const ALICE: (&str, &str) = ("alice", "alice-Secret-1");
const BOB: (&str, &str) = ("bob", "bob-Secret-2");

/// SIPp's digest needs (MD5 only, any digest-uri), identity signing (the default) with the
/// endpoint on a free port.
const CONFIG: &str = "[auth]\nalgorithms = [\"MD5\"]\ndigest_uri = \"relaxed\"\n[identity]\nhttp_listen = \"127.0.0.1:0\"\n";

fn start_vouch(dir: &Path) -> Vouch {
    let data = dir.join("data");
    add_user(&data, ALICE.0, ALICE.1);
    add_user(&data, BOB.0, BOB.1);
    Vouch::start(dir, CONFIG)
}

/// The Identity-Info URL from the ready line.
fn cert_url(vouch: &Vouch) -> String {
    let ready = vouch
        .stdout
        .iter()
        .find(|l| l.contains("vouch proxy ready"))
        .unwrap();
    let url = ready
        .split("certificate at ")
        .nth(1)
        .unwrap_or_else(|| panic!("no certificate URL in {ready:?}"));
    url.trim_end_matches(')').to_string()
}

fn credentials_csv(dir: &Path, tag: &str, (user, password): (&str, &str)) -> PathBuf {
    let p = dir.join(format!("{tag}.csv"));
    std::fs::write(
        &p,
        format!("SEQUENTIAL\n{user};[authentication username={user} password={password}]\n"),
    )
    .unwrap();
    p
}

/// The messages SIPp received, from its `-trace_msg` file (`... message received [N] bytes :`,
/// an empty line, N bytes).
fn received_messages(path: &Path) -> Vec<Vec<u8>> {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let end = data[pos..]
            .iter()
            .position(|&c| c == b'\n')
            .map_or(data.len(), |i| pos + i);
        let line = String::from_utf8_lossy(&data[pos..end]).into_owned();
        pos = end + 1;
        let Some((_, rest)) = line.split_once(" message received [") else {
            continue;
        };
        if line.starts_with("Unexpected") {
            continue;
        }
        let n: usize = rest
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|d| d.parse().ok())
            .unwrap();
        let start = pos + 1;
        let stop = (start + n).min(data.len());
        out.push(data[start..stop].to_vec());
        pos = stop;
    }
    out
}

fn verify(msg: &Path, ca: &Path) -> (i32, serde_json::Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_vouch"))
        .args(["identity", "verify", "--trust"])
        .arg(ca)
        .arg("--json")
        .arg(msg)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "verify printed no JSON ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), json)
}

/// One HTTP/1.1 request with a plain socket: status line, headers (lower-case names), body.
fn http(addr: &str, method: &str, path: &str) -> (String, Vec<(String, String)>, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let split = resp.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&resp[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().to_string();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, resp[split + 4..].to_vec())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn sipp_call_is_signed_and_verifies_against_vouchs_own_endpoint() {
    if !sipp_available() {
        eprintln!("sipp not installed (Debian sip-tester): skipped");
        return;
    }
    let _serial = serial();
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let vouch = start_vouch(dir);
    let url = cert_url(&vouch);
    let host_port = url
        .strip_prefix("http://127.0.0.1:")
        .and_then(|r| r.strip_suffix("/identity.cer"))
        .unwrap_or_else(|| panic!("unexpected default certificate URL {url}"));
    let http_addr = format!("127.0.0.1:{host_port}");

    // The endpoint: DER of identity.pem as application/pkix-cert; HEAD; 404 elsewhere.
    let (status, headers, body) = http(&http_addr, "GET", "/identity.cer");
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert_eq!(
        header(&headers, "content-type"),
        Some("application/pkix-cert")
    );
    let pem_file = vouch.data_dir().join("identity.pem");
    let leaf = vouch::tls::load_certs(&pem_file).unwrap();
    assert_eq!(body, leaf[0].as_ref(), "not the DER of identity.pem");
    let mut parsed = vouch_auth::identity::TrustStore::new();
    assert_eq!(
        parsed.add_pem_or_der(&body).unwrap(),
        1,
        "the DER parses as one certificate"
    );
    let (status, headers, body) = http(&http_addr, "HEAD", "/identity.cer");
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert_eq!(
        header(&headers, "content-type"),
        Some("application/pkix-cert")
    );
    assert!(body.is_empty());
    let (status, headers, body) = http(&http_addr, "GET", "/identity.pem");
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert_eq!(
        header(&headers, "content-type"),
        Some("application/x-pem-file")
    );
    assert_eq!(body, std::fs::read(&pem_file).unwrap());
    let (status, _, _) = http(&http_addr, "GET", "/ca.key");
    assert!(status.starts_with("HTTP/1.1 404"), "{status}");

    // bob registers with digest and answers; alice calls him with digest.
    let uas_port = free_port();
    let csv = credentials_csv(dir, "reg_bob", BOB);
    let reg = sipp_client(
        Sipp {
            dir,
            tag: "reg_bob",
            transport: "u1",
            port: uas_port,
        },
        &scenario(dir, "register_auth.xml"),
        vouch.udp_addr(),
        &["-m", "1", "-inf", csv.to_str().unwrap()],
        Duration::from_secs(10),
    );
    reg.assert_all_succeeded(1, "bob's REGISTER with digest");
    let uas_trace = dir.join("uas_messages.log");
    let uas = SippServer::start_with(
        dir,
        "uas",
        &scenario(dir, "uas.xml"),
        "u1",
        uas_port,
        &["-trace_msg", "-message_file", uas_trace.to_str().unwrap()],
    );
    let csv = credentials_csv(dir, "uac", ALICE);
    let uac = sipp_client(
        Sipp {
            dir,
            tag: "uac",
            transport: "u1",
            port: free_port(),
        },
        &scenario(dir, "uac_auth.xml"),
        vouch.udp_addr(),
        &["-s", "bob", "-m", "1", "-inf", csv.to_str().unwrap()],
        Duration::from_secs(15),
    );
    if !(uac.status.success() && uac.successful == 1 && uac.failed == 0) {
        panic!(
            "alice's call: {}\nUAS errors:\n{}\nvouch log (tail):\n{}",
            uac.output,
            tail_lines(&uas.errors(), 30),
            tail_lines(&vouch.log_text(), 40)
        );
    }
    drop(uas);

    let invite = received_messages(&uas_trace)
        .into_iter()
        .find(|m| m.starts_with(b"INVITE "))
        .expect("the UAS received no INVITE");
    let msg = Message::parse(invite.clone()).unwrap();
    assert!(msg.header(HeaderName::Date).is_some(), "no Date");
    let identity = msg.header(HeaderName::Identity).expect("no Identity").value;
    assert!(
        identity.starts_with('"') && identity.len() > 100,
        "{identity}"
    );
    assert_eq!(
        msg.header(HeaderName::IdentityInfo).unwrap().value,
        format!("<{url}>;alg=rsa-sha1")
    );

    // The verifier fetches the certificate from vouch and chains it to the development CA.
    let ca = vouch.data_dir().join("ca.pem");
    let path = dir.join("invite.sip");
    std::fs::write(&path, &invite).unwrap();
    let (code, json) = verify(&path, &ca);
    assert_eq!(code, 0, "{json}");
    assert_eq!(json["verified"], true, "{json}");
    assert_eq!(json["aor"], "sip:alice@localhost", "{json}");
    assert_eq!(json["alg"], "rsa-sha1", "{json}");

    // The body is signed: changing it (same length) is 438 Invalid Identity Header.
    let text = String::from_utf8(invite).unwrap();
    let split = text.find("\r\n\r\n").unwrap();
    let (head, body) = text.split_at(split);
    assert!(body.contains("PCMU"), "no SDP in the INVITE body: {body}");
    let tampered = dir.join("tampered.sip");
    std::fs::write(&tampered, format!("{head}{}", body.replace("PCMU", "PCMA"))).unwrap();
    let (code, json) = verify(&tampered, &ca);
    assert_eq!(
        (code, &json["status"]),
        (1, &serde_json::json!(438)),
        "{json}"
    );
    eprintln!(
        "signed SIPp call verified in {:.1}s",
        started.elapsed().as_secs_f64()
    );
}

/// An INVITE from alice to `bob@localhost` with `extra` headers.
fn invite(port: u16, call_id: &str, cseq: u32, extra: &str) -> String {
    format!(
        "INVITE sip:bob@localhost SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-{call_id}-{cseq};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@localhost>;tag=a-{call_id}\r\n\
         To: <sip:bob@localhost>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: {cseq} INVITE\r\n\
         Contact: <sip:alice@127.0.0.1:{port}>\r\n\
         {extra}Content-Length: 0\r\n\r\n"
    )
}

/// Sends `request` and returns the first final response (skipping 100 Trying).
fn final_response(sock: &UdpSocket, to: SocketAddr, request: &str) -> Message {
    sock.send_to(request.as_bytes(), to).unwrap();
    let mut buf = vec![0u8; 65_536];
    loop {
        let (n, _) = sock.recv_from(&mut buf).expect("no answer from vouch");
        let m = Message::parse(buf[..n].to_vec()).unwrap();
        if m.status().is_some_and(|s| s >= 200) {
            return m;
        }
    }
}

#[test]
fn authenticated_invite_with_an_hour_old_date_is_refused_403() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let vouch = start_vouch(dir);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let port = sock.local_addr().unwrap().port();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let date = format!("Date: {}\r\n", format_sip_date(now - 3600).unwrap());

    let r = final_response(&sock, vouch.udp_addr(), &invite(port, "stale", 1, &date));
    assert_eq!(r.status(), Some(407), "{r:?}");
    let values: Vec<String> = r
        .headers_named(HeaderName::ProxyAuthenticate)
        .map(|h| h.value.to_owned())
        .collect();
    let challenges: Vec<Challenge<'_>> = values
        .iter()
        .map(|v| Challenge::parse(v).unwrap())
        .collect();
    let mut alice = Responder::new(ResponderConfig {
        username: ALICE.0.into(),
        password: ALICE.1.into(),
        algorithms: vec![Algorithm::Md5],
        require_mutual_auth: false,
    });
    alice.handle_challenges(&challenges).unwrap();
    let creds = alice.authorize("INVITE", "sip:bob@localhost", b"", 1);
    // The ACK for the 407 (same branch) keeps vouch from retransmitting it.
    let ack = format!(
        "ACK sip:bob@localhost SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-stale-1;rport\r\nMax-Forwards: 70\r\nFrom: <sip:alice@localhost>;tag=a-stale\r\n{}\r\nCall-ID: stale\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
        r.header(HeaderName::To)
            .map(|h| format!("To: {}", h.value))
            .unwrap()
    );
    sock.send_to(ack.as_bytes(), vouch.udp_addr()).unwrap();
    let authorized = format!("{date}Proxy-Authorization: {}\r\n", creds[0]);
    let r = final_response(
        &sock,
        vouch.udp_addr(),
        &invite(port, "stale", 2, &authorized),
    );
    assert_eq!(
        r.status(),
        Some(403),
        "an hour-old Date was not refused: {r:?}\nvouch log (tail):\n{}",
        tail_lines(&vouch.log_text(), 30)
    );
    let warning = r
        .header(HeaderName::Warning)
        .map(|h| h.value)
        .unwrap_or_default();
    assert!(
        warning.contains("Date"),
        "403 for another reason: {warning:?}"
    );
}
