//! `vouch parse [--json] FILE...` (`-` reads stdin): for a valid message the start line, each
//! header with its typed reading and the body length; for an invalid one the response a server
//! would send (400 with a reason, 505, 513, 416). Exit 0 when all files are valid, 1 when any is
//! invalid, 2 on usage or I/O errors. The inputs are the RFC 4475 vectors kept in vouch-msg.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn vector(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../vouch-msg/tests/vectors/rfc4475")
        .join(name)
        .to_str()
        .expect("UTF-8 path")
        .to_string()
}

fn vouch_parse(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vouch"))
        .arg("parse")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run vouch")
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("exit code, not a signal")
}

/// One JSON object per stdout line.
fn json_lines(out: &Output) -> Vec<Value> {
    String::from_utf8(out.stdout.clone())
        .expect("UTF-8 output")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn only_line(out: &Output) -> Value {
    let mut lines = json_lines(out);
    assert_eq!(lines.len(), 1, "one line per file: {lines:?}");
    lines.remove(0)
}

/// The header fields of a vector without folded lines, read here independently of vouch:
/// each line between the start line and the empty line, split at its first colon.
fn header_fields(raw: &[u8]) -> Vec<(String, String)> {
    let text = std::str::from_utf8(raw).expect("text");
    let head = &text[..text.find("\r\n\r\n").expect("end of header section")];
    head.split("\r\n")
        .skip(1)
        .map(|l| {
            let (n, v) = l.split_once(':').expect("colon");
            (n.trim().to_string(), v.trim().to_string())
        })
        .collect()
}

fn json_headers(v: &Value) -> Vec<(String, String)> {
    v["headers"]
        .as_array()
        .expect("headers array")
        .iter()
        .map(|h| {
            (
                h["name"].as_str().expect("name").to_string(),
                h["value"].as_str().expect("value").to_string(),
            )
        })
        .collect()
}

fn typed<'v>(v: &'v Value, name: &str) -> &'v Value {
    let h = v["headers"]
        .as_array()
        .expect("headers array")
        .iter()
        .find(|h| h["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {v}"));
    &h["typed"]
}

fn assert_invalid(v: &Value, file: &str, status: u64) {
    assert_eq!(v["file"], file, "{v}");
    assert_eq!(v["valid"], false, "{v}");
    assert_eq!(v["status"], status, "{v}");
    assert!(
        v["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "a reason: {v}"
    );
}

/// A file in `dir` holding an OPTIONS of exactly `total` bytes (the body pads it).
fn sized_options(dir: &Path, total: usize) -> PathBuf {
    let msg = |body: &str| {
        format!(
            "OPTIONS sip:a@example.com SIP/2.0\r\n\
             Via: SIP/2.0/UDP h.example.com;branch=z9hG4bK1\r\n\
             From: <sip:c@example.com>;tag=1\r\n\
             To: <sip:a@example.com>\r\n\
             Call-ID: big\r\n\
             CSeq: 1 OPTIONS\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let head = msg("").len() - 1;
    let text = (1..=10)
        .map(|digits| msg(&"b".repeat(total - head - digits)))
        .find(|m| m.len() == total)
        .expect("a message of that size");
    let path = dir.join(format!("options-{total}.sip"));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn valid_request_json_lists_every_header_as_written() {
    let file = vector("3.3.11-zeromf.sip");
    let out = vouch_parse(&["--json", &file]);
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    let v = only_line(&out);
    assert_eq!(v["file"], file.as_str());
    assert_eq!(v["valid"], true);
    assert_eq!(v["kind"], "request");
    assert_eq!(v["method"], "OPTIONS");
    assert_eq!(v["request_uri"], "sip:user@example.com");
    assert!(v.get("status").is_none(), "a request has no status: {v}");
    let raw = std::fs::read(&file).unwrap();
    let expected = header_fields(&raw);
    assert_eq!(expected.len(), 7, "the vector's seven fields");
    assert_eq!(json_headers(&v), expected);
    assert_eq!(v["body_len"], 0);
    // Known headers carry their typed reading.
    assert_eq!(typed(&v, "Max-Forwards"), "0 hops");
    assert_eq!(typed(&v, "CSeq"), "seq 39234321 method OPTIONS");
}

#[test]
fn valid_response_json_has_status_and_body_length() {
    let file = vector("3.1.1.12-unreason.sip");
    let out = vouch_parse(&["--json", &file]);
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    let v = only_line(&out);
    assert_eq!(v["file"], file.as_str());
    assert_eq!(v["valid"], true);
    assert_eq!(v["kind"], "response");
    assert_eq!(v["status"], 200);
    assert!(v.get("method").is_none(), "a response has no method: {v}");
    let raw = std::fs::read(&file).unwrap();
    assert_eq!(json_headers(&v), header_fields(&raw));
    let body_start = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(raw.len() - body_start, 154, "the vector's body");
    assert_eq!(v["body_len"], 154);
    // The reason phrase, UTF-8 included, is the start line's after the code.
    let start_line = std::str::from_utf8(&raw[..raw.iter().position(|&b| b == b'\r').unwrap()])
        .expect("UTF-8 start line");
    assert_eq!(
        v["reason"],
        start_line.strip_prefix("SIP/2.0 200 ").unwrap()
    );
}

/// RFC 3261 §18.3: octets after Content-Length in a datagram are not part of the message.
#[test]
fn body_len_is_the_framed_body_not_the_file_size() {
    let file = vector("3.1.1.8-dblreq.sip");
    let out = vouch_parse(&["--json", &file]);
    assert_eq!(code(&out), 0);
    let v = only_line(&out);
    assert_eq!(
        (&v["method"], &v["body_len"]),
        (&"REGISTER".into(), &0.into())
    );
}

#[test]
fn bad_version_is_505_and_exit_1() {
    let file = vector("3.1.2.16-badvers.sip");
    let out = vouch_parse(&["--json", &file]);
    assert_eq!(code(&out), 1);
    let v = only_line(&out);
    assert_invalid(&v, &file, 505);
    assert!(
        v["reason"].as_str().unwrap().contains("version"),
        "the reason names the version: {v}"
    );
}

#[test]
fn unknown_request_uri_scheme_is_416() {
    for name in ["3.3.2-unkscm.sip", "3.3.3-novelsc.sip"] {
        let file = vector(name);
        let out = vouch_parse(&["--json", &file]);
        assert_eq!(code(&out), 1, "{name}");
        assert_invalid(&only_line(&out), &file, 416);
    }
}

#[test]
fn malformed_message_is_400_with_the_reason() {
    // RFC 4475 §3.1.2.17: OPTIONS with a CSeq for INVITE.
    let file = vector("3.1.2.17-mismatch01.sip");
    let out = vouch_parse(&["--json", &file]);
    assert_eq!(code(&out), 1);
    let v = only_line(&out);
    assert_invalid(&v, &file, 400);
    assert!(v["reason"].as_str().unwrap().contains("CSeq"), "{v}");
}

/// 64 KiB is the default limit: a message of exactly that size is valid, one byte more gets 513.
#[test]
fn message_over_64_kib_is_513() {
    let dir = tempfile::tempdir().unwrap();
    let at = sized_options(dir.path(), 64 * 1024);
    let over = sized_options(dir.path(), 64 * 1024 + 1);
    let (at, over) = (at.to_str().unwrap(), over.to_str().unwrap());
    let out = vouch_parse(&["--json", at]);
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(only_line(&out)["valid"], true);
    let out = vouch_parse(&["--json", over]);
    assert_eq!(code(&out), 1);
    assert_invalid(&only_line(&out), over, 513);
}

#[test]
fn one_valid_and_one_invalid_file_give_two_lines_and_exit_1() {
    let good = vector("3.3.11-zeromf.sip");
    let bad = vector("3.1.2.16-badvers.sip");
    let out = vouch_parse(&["--json", &good, &bad]);
    assert_eq!(code(&out), 1);
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["file"], good.as_str());
    assert_eq!(lines[0]["valid"], true);
    assert_invalid(&lines[1], &bad, 505);
    // The order of the files does not change the verdict.
    let out = vouch_parse(&["--json", &bad, &good]);
    assert_eq!(code(&out), 1);
    assert_eq!(json_lines(&out).len(), 2);
}

#[test]
fn all_valid_files_exit_0() {
    let files: Vec<String> = [
        "3.3.11-zeromf.sip",
        "3.1.1.12-unreason.sip",
        "3.1.1.1-wsinv.sip",
    ]
    .iter()
    .map(|n| vector(n))
    .collect();
    let args: Vec<&str> = std::iter::once("--json")
        .chain(files.iter().map(String::as_str))
        .collect();
    let out = vouch_parse(&args);
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stdout));
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 3);
    for (v, f) in lines.iter().zip(&files) {
        assert_eq!(
            (&v["file"], &v["valid"]),
            (&f.as_str().into(), &true.into())
        );
    }
}

#[test]
fn missing_file_is_exit_2_naming_it_and_the_others_are_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-message.sip");
    let missing = missing.to_str().unwrap();
    let good = vector("3.3.11-zeromf.sip");
    for json in [true, false] {
        let mut args = vec![missing, good.as_str()];
        if json {
            args.insert(0, "--json");
        }
        let out = vouch_parse(&args);
        assert_eq!(code(&out), 2, "json {json}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(missing), "stderr names the file: {err}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains(&good),
            "the readable file is reported: {stdout}"
        );
    }
    // An I/O error outranks an invalid message.
    let bad = vector("3.1.2.16-badvers.sip");
    assert_eq!(code(&vouch_parse(&["--json", &bad, missing])), 2);
}

#[test]
fn usage_errors_exit_2() {
    let good = vector("3.3.11-zeromf.sip");
    for args in [
        &[][..],
        &["--json"][..],
        &["--no-such-flag", good.as_str()][..],
    ] {
        let out = vouch_parse(args);
        assert_eq!(code(&out), 2, "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}: nothing parsed");
        assert!(!out.stderr.is_empty(), "{args:?}: a usage message");
    }
}

#[test]
fn dash_reads_standard_input() {
    let raw = std::fs::read(vector("3.3.11-zeromf.sip")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_vouch"))
        .args(["parse", "--json", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run vouch");
    child.stdin.take().unwrap().write_all(&raw).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    let v = only_line(&out);
    assert_eq!(v["file"], "-");
    assert_eq!(v["valid"], true);
    assert_eq!(v["method"], "OPTIONS");
    assert_eq!(json_headers(&v), header_fields(&raw));
}

#[test]
fn plain_output_shows_start_line_typed_headers_and_body_length() {
    let file = vector("3.1.1.12-unreason.sip");
    let out = vouch_parse(&[&file]);
    assert_eq!(code(&out), 0);
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    let raw = std::fs::read(&file).unwrap();
    let start_line =
        std::str::from_utf8(&raw[..raw.iter().position(|&b| b == b'\r').unwrap()]).unwrap();
    assert!(
        text.starts_with(&format!("{file}: valid response\n  {start_line}\n")),
        "{text}"
    );
    // Each header as written, its typed reading on the next line.
    assert!(
        text.contains("  CSeq: 35 INVITE\n      = seq 35 method INVITE\n"),
        "{text}"
    );
    assert!(
        text.contains("  Content-Length: 154\n      = 154 bytes\n"),
        "{text}"
    );
    assert!(text.contains("  body: 154 bytes\n"), "{text}");

    // An invalid message: the status a server would send and why.
    let bad = vector("3.1.2.16-badvers.sip");
    let out = vouch_parse(&[&bad]);
    assert_eq!(code(&out), 1);
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    assert!(
        text.starts_with(&format!("{bad}: invalid: 505 Version Not Supported (")),
        "{text}"
    );
}
