//! Test harness for Kamailio (Debian `kamailio`, `kamailio-tls-modules`,
//! `kamailio-sqlite-modules`) as an independent peer: configuration templates from this
//! directory, one Kamailio per test on a free loopback UDP port with its own run directory,
//! started in its own process group and stopped by that group's id; a SIP socket for the test's
//! UA side; a tiny HTTP server for certificates; RSA keys and certificates made with the
//! `openssl` command.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use vouch_msg::Message;

/// The Kamailio binary: `kamailio` on PATH, else Debian's `/usr/sbin/kamailio` (not on a
/// non-root user's PATH).
pub fn kamailio_bin() -> Option<&'static str> {
    ["kamailio", "/usr/sbin/kamailio"]
        .into_iter()
        .find(|bin| command_runs(bin, &["-v"]))
}

/// True when Kamailio runs; otherwise prints why the caller skips (or panics when
/// `VOUCH_REQUIRE_PEERS=1`).
pub fn kamailio_available(test: &str) -> bool {
    let ok = kamailio_bin().is_some();
    // scripts/test installs Kamailio and sets this: there a skip would hide a broken install.
    if !ok && std::env::var("VOUCH_REQUIRE_PEERS").as_deref() == Ok("1") {
        panic!("{test}: kamailio is not installed and VOUCH_REQUIRE_PEERS=1");
    }
    if !ok {
        eprintln!(
            "{test}: skipped: kamailio is not installed (Debian packages kamailio, \
             kamailio-tls-modules, kamailio-sqlite-modules; scripts/test installs them)"
        );
    }
    ok
}

/// True when `cmd args` runs and exits 0 (a probe such as `openssl version`).
pub fn command_runs(cmd: &str, args: &[&str]) -> bool {
    Command::new(cmd)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A UDP port free on 127.0.0.1 right now (the kernel's pick, released for Kamailio to bind).
pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A template from `tests/kamailio/` with each `@NAME@` replaced; panics on a placeholder
/// left unfilled.
pub fn render(template: &str, vars: &[(&str, String)]) -> String {
    let mut text = template.to_string();
    for (name, value) in vars {
        text = text.replace(&format!("@{name}@"), value);
    }
    let bytes = text.as_bytes();
    let mut leftover = Vec::new();
    for (i, _) in text.match_indices('@') {
        let name_len = bytes[i + 1..]
            .iter()
            .take_while(|c| c.is_ascii_uppercase() || **c == b'_')
            .count();
        if name_len > 0 && bytes.get(i + 1 + name_len) == Some(&b'@') {
            leftover.push(&text[i..i + name_len + 2]);
        }
    }
    assert!(
        leftover.is_empty(),
        "unfilled placeholders {leftover:?} in template"
    );
    text
}

/// A running Kamailio, stopped (its whole process group) when dropped.
pub struct Kamailio {
    child: Option<Child>,
    pub port: u16,
    pub dir: PathBuf,
    log: PathBuf,
}

impl Kamailio {
    /// Writes `cfg` (which must listen on udp:127.0.0.1:`port` and answer
    /// an `OPTIONS` without user part with 200) to `dir/<name>.cfg`, starts
    /// `kamailio -f cfg -DD -E -Y dir/<name>.run -w dir/<name>.run` (log in `dir/<name>.log`)
    /// in its own process group and waits until it answers on its port.
    pub fn start(dir: &Path, name: &str, cfg: &str, port: u16) -> Kamailio {
        let cfg_path = dir.join(format!("{name}.cfg"));
        std::fs::write(&cfg_path, cfg).unwrap();
        let log = dir.join(format!("{name}.log"));
        let run = dir.join(format!("{name}.run"));
        std::fs::create_dir_all(&run).unwrap();
        let log_file = std::fs::File::create(&log).unwrap();
        let child = Command::new(kamailio_bin().expect("kamailio installed"))
            .arg("-f")
            .arg(&cfg_path)
            .args(["-DD", "-E", "-m", "32", "-M", "8", "-Y"])
            .arg(&run)
            .arg("-w")
            .arg(&run)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            // Its own process group, so that stopping it reaches every worker it forks.
            .process_group(0)
            .spawn()
            .expect("run kamailio");
        let mut k = Kamailio {
            child: Some(child),
            port,
            dir: dir.to_path_buf(),
            log,
        };
        k.wait_ready();
        k
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `n` lines of the log, for failure messages.
    pub fn log_tail(&self, n: usize) -> String {
        let text = self.log_text();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Sends `OPTIONS sip:127.0.0.1:port` until Kamailio answers 200 (or exits, or 10 s pass).
    fn wait_ready(&mut self) {
        let probe = SipSocket::bind();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut n = 0;
        loop {
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                panic!(
                    "kamailio exited during start-up with {st}; log:\n{}",
                    self.log_tail(60)
                );
            }
            assert!(
                Instant::now() < deadline,
                "kamailio did not answer OPTIONS on port {} within 10 s; log:\n{}",
                self.port,
                self.log_tail(60)
            );
            n += 1;
            let call_id = format!("probe-{n}-{}", self.port);
            let options = format!(
                "OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\n\
                 Via: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bK-probe-{n};rport\r\n\
                 Max-Forwards: 70\r\n\
                 From: <sip:probe@127.0.0.1>;tag=probe\r\n\
                 To: <sip:127.0.0.1:{port}>\r\n\
                 Call-ID: {call_id}\r\n\
                 CSeq: {n} OPTIONS\r\n\
                 Content-Length: 0\r\n\r\n",
                port = self.port,
                me = probe.port(),
            );
            probe.send(options.as_bytes(), self.addr());
            if let Some(reply) = probe.recv_response(&call_id, Duration::from_millis(200)) {
                assert_eq!(
                    reply.status(),
                    Some(200),
                    "kamailio answered the readiness probe with {}",
                    reply.start_line()
                );
                return;
            }
        }
    }

    /// SIGTERM to the process group, wait up to 5 s, then SIGKILL.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let group = format!("-{}", child.id());
        let _ = Command::new("kill")
            .args(["-TERM", "--", &group])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = child.wait();
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A UDP socket on 127.0.0.1 playing a UA or a downstream hop.
pub struct SipSocket {
    sock: UdpSocket,
}

impl SipSocket {
    pub fn bind() -> SipSocket {
        SipSocket {
            sock: UdpSocket::bind("127.0.0.1:0").unwrap(),
        }
    }

    pub fn port(&self) -> u16 {
        self.sock.local_addr().unwrap().port()
    }

    pub fn send(&self, msg: &[u8], to: SocketAddr) {
        self.sock.send_to(msg, to).unwrap();
    }

    /// The next datagram within `timeout`.
    pub fn recv(&self, timeout: Duration) -> Option<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 65_535];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.sock.set_read_timeout(Some(left)).unwrap();
            match self.sock.recv_from(&mut buf) {
                Ok((n, _)) => return Some(buf[..n].to_vec()),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return None;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => panic!("recv: {e}"),
            }
        }
    }

    /// The next message within `timeout` that satisfies `want` (others are skipped).
    pub fn recv_matching(
        &self,
        timeout: Duration,
        want: impl Fn(&Message) -> bool,
    ) -> Option<Message> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let raw = self.recv(left)?;
            let msg = Message::parse(raw.clone()).unwrap_or_else(|e| {
                panic!(
                    "peer sent an unparsable message ({e}):\n{}",
                    String::from_utf8_lossy(&raw)
                )
            });
            if want(&msg) {
                return Some(msg);
            }
        }
    }

    /// The next final or provisional response for `call_id` within `timeout`.
    pub fn recv_response(&self, call_id: &str, timeout: Duration) -> Option<Message> {
        self.recv_matching(timeout, |m| !m.is_request() && m.call_id() == call_id)
    }

    /// The next final (>= 200) response for `call_id` within `timeout`.
    pub fn recv_final(&self, call_id: &str, timeout: Duration) -> Option<Message> {
        self.recv_matching(timeout, |m| {
            !m.is_request() && m.call_id() == call_id && m.status().unwrap_or(0) >= 200
        })
    }
}

/// A tiny HTTP/1.1 server on 127.0.0.1 that serves fixed bodies by path (404 otherwise),
/// one request per connection (`Connection: close`), counting the requests for each path.
pub struct HttpFiles {
    pub base: String,
    hits: Arc<Vec<(String, AtomicUsize)>>,
}

impl HttpFiles {
    /// Serves each `(path, content type, body)`; `path` starts with `/`.
    pub fn serve(files: Vec<(String, &'static str, Vec<u8>)>) -> HttpFiles {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let hits: Arc<Vec<(String, AtomicUsize)>> = Arc::new(
            files
                .iter()
                .map(|(p, _, _)| (p.clone(), AtomicUsize::new(0)))
                .collect(),
        );
        let counters = Arc::clone(&hits);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { continue };
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let mut req = Vec::new();
                let mut buf = [0u8; 2048];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 16_384 {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let line = String::from_utf8_lossy(&req);
                let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                match files.iter().position(|(p, _, _)| *p == path) {
                    Some(i) => {
                        counters[i].1.fetch_add(1, Ordering::SeqCst);
                        let (_, ctype, body) = &files[i];
                        let _ = write!(
                            s,
                            "HTTP/1.1 200 OK\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            body.len()
                        );
                        let _ = s.write_all(body);
                    }
                    None => {
                        let _ = s.write_all(
                            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                        );
                    }
                }
            }
        });
        HttpFiles { base, hits }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// How many requests `path` got.
    pub fn hits(&self, path: &str) -> usize {
        self.hits
            .iter()
            .find(|(p, _)| p == path)
            .map_or(0, |(_, n)| n.load(Ordering::SeqCst))
    }
}

/// An RSA-2048 key and a self-signed certificate (30 days, CN and subjectAltName DNS = the
/// domain) made with the `openssl` command.
pub struct DomainCert {
    pub domain: String,
    pub key_pem: PathBuf,
    pub cert_pem: PathBuf,
    pub cert_der: Vec<u8>,
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("command runs");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn domain_cert(dir: &Path, domain: &str) -> DomainCert {
    assert!(
        command_runs("openssl", &["version"]),
        "the openssl command is needed to make test certificates (Debian package openssl)"
    );
    let key_pem = dir.join(format!("{domain}.key.pem"));
    let cert_pem = dir.join(format!("{domain}.cert.pem"));
    let cert_der_path = dir.join(format!("{domain}.cert.der"));
    run(Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout"])
        .arg(&key_pem)
        .arg("-out")
        .arg(&cert_pem)
        .args(["-days", "30", "-subj"])
        .arg(format!("/CN={domain}"))
        .arg("-addext")
        .arg(format!("subjectAltName=DNS:{domain}")));
    run(Command::new("openssl")
        .args(["x509", "-in"])
        .arg(&cert_pem)
        .args(["-outform", "DER", "-out"])
        .arg(&cert_der_path));
    DomainCert {
        domain: domain.to_string(),
        key_pem,
        cert_pem,
        cert_der: std::fs::read(&cert_der_path).unwrap(),
    }
}

/// Runs the built `vouch` binary.
pub fn vouch(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vouch"))
        .args(args)
        .output()
        .expect("vouch runs")
}

/// Replaces the first `from` in the body of `msg` by `to` (same length, so Content-Length
/// still holds).
pub fn tamper_body(msg: &[u8], from: &str, to: &str) -> Vec<u8> {
    assert_eq!(from.len(), to.len(), "same length keeps Content-Length");
    let text = String::from_utf8(msg.to_vec()).unwrap();
    let split = text.find("\r\n\r\n").expect("header end") + 4;
    let (head, body) = text.split_at(split);
    assert!(body.contains(from), "{from:?} not in body {body:?}");
    format!("{head}{}", body.replacen(from, to, 1)).into_bytes()
}

/// Replaces the first `from` in the header line starting with `header:` by `to`.
pub fn tamper_header(msg: &[u8], header: &str, from: &str, to: &str) -> Vec<u8> {
    let text = String::from_utf8(msg.to_vec()).unwrap();
    let prefix = format!("\r\n{header}:");
    let start = text.find(&prefix).expect("header present") + 2;
    let end = start + text[start..].find("\r\n").unwrap();
    let line = &text[start..end];
    assert!(line.contains(from), "{from:?} not in {line:?}");
    format!(
        "{}{}{}",
        &text[..start],
        line.replacen(from, to, 1),
        &text[end..]
    )
    .into_bytes()
}

/// The value of the first header named `name` (case-insensitive, long form).
pub fn header_value(msg: &Message, name: &str) -> Option<String> {
    msg.headers_named_str(name)
        .next()
        .map(|h| h.value.to_string())
}
