//! Test harness: runs the built `vouch` binary on free loopback ports with a temporary data
//! directory, and SIPp with the scenarios in `tests/sipp/`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::mpsc;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Configuration for tests of plain routing: no digest authentication (it is on by default).
pub const NO_AUTH: &str = "[auth]\nenabled = false\n";

/// SIPp tests measure calls against timers: run them one at a time so they do not compete
/// for the two cores.
static SERIAL: Mutex<()> = Mutex::new(());

pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// Ports are probed from a per-process range so that parallel test binaries rarely collide.
static NEXT_PORT: AtomicU16 = AtomicU16::new(0);

/// A port free on 127.0.0.1 for both UDP and TCP (SIP uses both on one port number).
pub fn free_port() -> u16 {
    if NEXT_PORT.load(Ordering::Relaxed) == 0 {
        let base = 20_000 + (std::process::id() % 400) as u16 * 100;
        let _ = NEXT_PORT.compare_exchange(0, base, Ordering::Relaxed, Ordering::Relaxed);
    }
    for _ in 0..2000 {
        let p = NEXT_PORT.fetch_add(1, Ordering::Relaxed);
        if !(1024..=64_000).contains(&p) {
            NEXT_PORT.store(20_000, Ordering::Relaxed);
            continue;
        }
        let udp = UdpSocket::bind(("127.0.0.1", p));
        let tcp = TcpListener::bind(("127.0.0.1", p));
        if udp.is_ok() && tcp.is_ok() {
            return p;
        }
    }
    panic!("no free port");
}

/// True when SIPp runs (panics instead of false when `VOUCH_REQUIRE_PEERS=1`).
pub fn sipp_available() -> bool {
    let ok = Command::new("sipp")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    // scripts/test installs SIPp and sets this: there a skip would hide a broken install.
    if !ok && std::env::var("VOUCH_REQUIRE_PEERS").as_deref() == Ok("1") {
        panic!("sipp is not installed (Debian sip-tester) and VOUCH_REQUIRE_PEERS=1");
    }
    ok
}

/// A running `vouch proxy`.
pub struct Vouch {
    child: Option<Child>,
    pub dir: PathBuf,
    pub config: PathBuf,
    pub sip_port: u16,
    pub tls_port: u16,
    pub stdout: Vec<String>,
    log: PathBuf,
}

impl Vouch {
    /// Writes a configuration in `dir` (extra TOML appended) and starts vouch with it.
    pub fn start(dir: &Path, extra: &str) -> Vouch {
        let sip_port = free_port();
        let tls_port = free_port();
        let config = dir.join("vouch.toml");
        // The certificate endpoint on a free port, so parallel tests do not fight over 8080
        // (unless the test configures [identity] itself).
        let identity = if extra.contains("[identity]") {
            ""
        } else {
            "[identity]\nhttp_listen = \"127.0.0.1:0\"\n"
        };
        std::fs::write(
            &config,
            format!(
                "data_dir = \"data\"\ndomains = [\"localhost\"]\nlisten = [\"udp:127.0.0.1:{sip_port}\", \"tcp:127.0.0.1:{sip_port}\", \"tls:127.0.0.1:{tls_port}\"]\n{extra}\n{identity}"
            ),
        )
        .unwrap();
        let mut v = Vouch {
            child: None,
            dir: dir.to_path_buf(),
            config,
            sip_port,
            tls_port,
            stdout: Vec::new(),
            log: dir.join("vouch.log"),
        };
        v.spawn();
        v
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_vouch"))
            .args(["proxy", "--config"])
            .arg(&self.config)
            .args(["--log-level", "debug"])
            .stdout(Stdio::piped())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("run vouch");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    let ready = line.contains("vouch proxy ready");
                    self.stdout.push(line);
                    if ready {
                        break;
                    }
                }
                Err(_) => panic!(
                    "vouch did not become ready; stdout {:?}; log:\n{}",
                    self.stdout,
                    self.log_text()
                ),
            }
        }
    }

    /// The data directory (`data` under the test directory).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// `vouch user add sip:USER@localhost` on this data directory, while vouch runs.
    pub fn add_user(&self, user: &str, password: &str) {
        add_user(&self.data_dir(), user, password);
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn udp_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.sip_port))
    }

    /// SIGTERM, then waits for a clean exit; returns its status.
    pub fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                return st;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("vouch did not stop on SIGTERM; log:\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops and starts again with the same configuration and data directory.
    pub fn restart(&mut self) {
        let st = self.stop();
        assert!(st.success(), "vouch exited with {st}");
        self.stdout.clear();
        self.spawn();
    }
}

impl Drop for Vouch {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `vouch user add sip:USER@localhost --password PASSWORD --data-dir DATA` (the data
/// directory of a [`Vouch`] started in `dir` is `dir/data`).
pub fn add_user(data: &Path, user: &str, password: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_vouch"))
        .args(["user", "add", &format!("sip:{user}@localhost")])
        .args(["--password", password])
        .arg("--data-dir")
        .arg(data)
        .output()
        .expect("run vouch user add");
    assert!(
        out.status.success(),
        "vouch user add {user}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The scenario files, copied into the test directory so SIPp writes its side files there.
pub fn scenario(dir: &Path, name: &str) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sipp")
        .join(name);
    let dst = dir.join(name);
    std::fs::copy(&src, &dst).unwrap();
    dst
}

/// SIPp's result: exit status and the last row of its statistics file.
#[derive(Debug)]
pub struct SippRun {
    pub status: ExitStatus,
    pub successful: u64,
    pub failed: u64,
    pub output: String,
}

impl SippRun {
    pub fn assert_all_succeeded(&self, calls: u64, what: &str) {
        assert!(
            self.status.success() && self.failed == 0 && self.successful == calls,
            "{what}: sipp exit {}, {} successful, {} failed (wanted {calls});\n{}",
            self.status,
            self.successful,
            self.failed,
            self.output
        );
    }
}

/// Base arguments every SIPp run gets.
fn sipp_command(dir: &Path, tag: &str, transport: &str, port: u16) -> Command {
    let mut c = Command::new("sipp");
    c.current_dir(dir)
        .args(["-i", "127.0.0.1", "-p", &port.to_string(), "-t", transport])
        .args(["-nostdin", "-trace_err", "-error_file"])
        .arg(dir.join(format!("{tag}_errors.log")))
        .args(["-trace_stat", "-fd", "1", "-stf"])
        .arg(dir.join(format!("{tag}_stat.csv")))
        .args(["-trace_screen", "-screen_file"])
        .arg(dir.join(format!("{tag}_screen.log")))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

/// Reads SuccessfulCall(C) and FailedCall(C) from the last row of a SIPp statistics file.
fn read_stats(path: &Path) -> (u64, u64) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let Some(header) = lines.next() else {
        return (0, 0);
    };
    let Some(last) = lines.next_back() else {
        return (0, 0);
    };
    let cols: Vec<&str> = header.split(';').collect();
    let vals: Vec<&str> = last.split(';').collect();
    let get = |name: &str| {
        cols.iter()
            .position(|c| *c == name)
            .and_then(|i| vals.get(i))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    (get("SuccessfulCall(C)"), get("FailedCall(C)"))
}

/// Who runs a SIPp scenario: its files are named after `tag` in `dir`; it uses `transport`
/// (`u1`, `t1`) on 127.0.0.1:`port`.
pub struct Sipp<'a> {
    pub dir: &'a Path,
    pub tag: &'a str,
    pub transport: &'a str,
    pub port: u16,
}

/// Runs a SIPp client scenario to completion (bounded by `limit`).
pub fn sipp_client(
    who: Sipp<'_>,
    scenario: &Path,
    target: SocketAddr,
    extra: &[&str],
    limit: Duration,
) -> SippRun {
    let Sipp {
        dir,
        tag,
        transport,
        port: local_port,
    } = who;
    let mut c = sipp_command(dir, tag, transport, local_port);
    c.arg(target.to_string())
        .arg("-sf")
        .arg(scenario)
        .args([
            "-timeout",
            &format!("{}s", limit.as_secs()),
            "-timeout_error",
        ])
        .args(extra);
    let mut child = c.spawn().expect("run sipp");
    let deadline = Instant::now() + limit + Duration::from_secs(10);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut err);
    }
    let (successful, failed) = read_stats(&dir.join(format!("{tag}_stat.csv")));
    let screen = std::fs::read_to_string(dir.join(format!("{tag}_screen.log"))).unwrap_or_default();
    let errors = std::fs::read_to_string(dir.join(format!("{tag}_errors.log"))).unwrap_or_default();
    let tail = |s: &str, n: usize| -> String {
        let v: Vec<&str> = s.lines().collect();
        v[v.len().saturating_sub(n)..].join("\n")
    };
    SippRun {
        status,
        successful,
        failed,
        output: format!(
            "--- sipp stderr\n{err}\n--- screen (tail)\n{}\n--- unexpected messages (tail)\n{}",
            tail(&screen, 60),
            tail(&errors, 60)
        ),
    }
}

/// A SIPp UAS running in the background until dropped.
pub struct SippServer {
    child: Child,
    pub port: u16,
    pub tag: String,
    dir: PathBuf,
}

impl SippServer {
    pub fn start(dir: &Path, tag: &str, scenario: &Path, transport: &str, port: u16) -> Self {
        Self::start_with(dir, tag, scenario, transport, port, &[])
    }

    /// [`SippServer::start`] with further SIPp arguments (`-trace_msg`, …).
    pub fn start_with(
        dir: &Path,
        tag: &str,
        scenario: &Path,
        transport: &str,
        port: u16,
        extra: &[&str],
    ) -> Self {
        let mut c = sipp_command(dir, tag, transport, port);
        c.arg("-sf").arg(scenario).args(extra);
        let child = c.spawn().expect("run sipp uas");
        // Give it time to bind before calls arrive.
        std::thread::sleep(Duration::from_millis(500));
        SippServer {
            child,
            port,
            tag: tag.to_string(),
            dir: dir.to_path_buf(),
        }
    }

    /// Unexpected messages the UAS logged.
    pub fn errors(&self) -> String {
        std::fs::read_to_string(self.dir.join(format!("{}_errors.log", self.tag)))
            .unwrap_or_default()
    }
}

impl Drop for SippServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Registers `user` at vouch with a Contact on 127.0.0.1:`port` over `transport`, from that
/// same port (so the binding's source and Contact agree).
pub fn register(dir: &Path, vouch: &Vouch, user: &str, transport: &str, port: u16) {
    let sf = scenario(dir, "register.xml");
    let run = sipp_client(
        Sipp {
            dir,
            tag: &format!("register_{user}_{transport}"),
            transport,
            port,
        },
        &sf,
        vouch.udp_addr(),
        &["-s", user, "-m", "1"],
        Duration::from_secs(20),
    );
    assert!(
        run.status.success(),
        "REGISTER failed: {}\n{}\nvouch log (tail):\n{}",
        run.status,
        run.output,
        tail_lines(&vouch.log_text(), 40)
    );
}

pub fn tail_lines(s: &str, n: usize) -> String {
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(n)..].join("\n")
}

/// A process whose standard output is read line by line as it comes (a `vouch ua` answering
/// calls while the test drives another one).
pub struct Watched {
    pub child: Child,
    rx: mpsc::Receiver<String>,
    /// The lines read so far.
    pub lines: Vec<String>,
}

impl Watched {
    /// Spawns `cmd` with its output piped and waits up to 15 s for a line containing
    /// `marker`; `who` names it in the panic.
    pub fn spawn_until(cmd: &mut Command, marker: &str, who: &str) -> Watched {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut lines = Vec::new();
        while !lines.iter().any(|l: &String| l.contains(marker)) {
            lines.push(
                rx.recv_timeout(Duration::from_secs(15))
                    .unwrap_or_else(|_| panic!("{who}: no {marker:?} in {lines:?}")),
            );
        }
        Watched { child, rx, lines }
    }

    /// Waits for the exit and returns the exit status and the whole output.
    pub fn wait(mut self) -> (ExitStatus, String) {
        let status = self.child.wait().unwrap();
        // The reader thread may still be behind the exit: read until it hits end of output
        // (the channel disconnects), not only what has arrived so far.
        while let Ok(line) = self.rx.recv_timeout(Duration::from_secs(5)) {
            self.lines.push(line);
        }
        let mut out = self.lines.join("\n");
        if let Some(mut e) = self.child.stderr.take() {
            use std::io::Read;
            let mut err = String::new();
            let _ = e.read_to_string(&mut err);
            if !err.is_empty() {
                out.push_str("\n[stderr]\n");
                out.push_str(&err);
            }
        }
        (status, out)
    }

    /// [`Watched::wait`], asserting it succeeded; returns the output.
    pub fn finish(self, who: &str) -> String {
        let (status, out) = self.wait();
        assert!(status.success(), "{who} failed:\n{out}");
        out
    }
}
