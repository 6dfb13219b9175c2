//! Bad input on the wire: vouch answers a malformed request with 400 and a Warning that names
//! the problem (RFC 3261 §21.4.1, §20.43), an oversized one with 513 (§21.5.14), and keeps
//! serving calls while 10,000 garbage datagrams arrive on its UDP port.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use support::*;

fn exchange(sock: &UdpSocket, to: std::net::SocketAddr, msg: &[u8]) -> Option<String> {
    sock.send_to(msg, to).unwrap();
    let mut buf = vec![0u8; 65_536];
    match sock.recv_from(&mut buf) {
        Ok((n, _)) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
        Err(_) => None,
    }
}

/// An OPTIONS to an AoR nobody registered; `extra` header lines go before Content-Length
/// (a Max-Forwards among them replaces the default one).
fn request(port: u16, call_id: &str, cseq: &str, extra: &str) -> String {
    let max_forwards = if extra.contains("Max-Forwards") {
        ""
    } else {
        "Max-Forwards: 70\r\n"
    };
    format!(
        "OPTIONS sip:nobody@localhost SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-{call_id};rport\r\n\
         From: <sip:tester@localhost>;tag=t-{call_id}\r\n\
         To: <sip:nobody@localhost>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: {cseq}\r\n\
         {max_forwards}{extra}Content-Length: 0\r\n\r\n"
    )
}

fn warning_of(response: &str) -> Option<&str> {
    response.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("warning")
            .then_some(value.trim())
    })
}

#[test]
fn malformed_request_gets_400_naming_the_problem_and_oversized_gets_513() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let vouch = Vouch::start(
        tmp.path(),
        &format!("[limits]\nmax_message_size = 4096\n{NO_AUTH}"),
    );
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let port = sock.local_addr().unwrap().port();

    // A malformed Max-Forwards leaves Via, From, To, Call-ID and CSeq readable, so the
    // engine can answer; the Warning names the header.
    let bad = request(port, "bad-mf", "1 OPTIONS", "Max-Forwards: seventy\r\n");
    let r = exchange(&sock, vouch.udp_addr(), bad.as_bytes()).expect("no answer to a bad request");
    assert!(r.starts_with("SIP/2.0 400 "), "got:\n{r}");
    let w = warning_of(&r).unwrap_or_else(|| panic!("no Warning in:\n{r}"));
    assert!(w.starts_with("399 "), "Warning code: {w}");
    assert!(
        w.contains("Max-Forwards"),
        "Warning does not name Max-Forwards: {w}"
    );
    assert!(
        r.contains("Call-ID: bad-mf"),
        "not a response to our request:\n{r}"
    );

    // Without a readable CSeq no response can be built (CSeq is mandatory in it): the engine
    // drops the request, and carries on.
    let no_cseq = request(port, "bad-cseq", "one OPTIONS", "");
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    if let Some(r) = exchange(&sock, vouch.udp_addr(), no_cseq.as_bytes()) {
        assert!(r.starts_with("SIP/2.0 400 "), "got:\n{r}");
    }
    sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();

    let big = request(
        port,
        "too-big",
        "1 OPTIONS",
        &format!("X-Padding: {}\r\n", "a".repeat(3000)).repeat(2),
    );
    assert!(big.len() > 4096);
    let r =
        exchange(&sock, vouch.udp_addr(), big.as_bytes()).expect("no answer to a large request");
    assert!(r.starts_with("SIP/2.0 513 "), "got:\n{r}");
    assert!(r.contains("too-big"), "not a response to our request:\n{r}");

    // Still serving after both.
    let ok = request(port, "fine", "1 OPTIONS", "");
    let r = exchange(&sock, vouch.udp_addr(), ok.as_bytes()).expect("no answer to a good request");
    assert!(r.starts_with("SIP/2.0 "), "got:\n{r}");
    assert!(
        !r.starts_with("SIP/2.0 400 "),
        "a valid request was refused:\n{r}"
    );
}

/// xorshift64*: reproducible garbage without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Random bytes, or a SIP request (to an AoR nobody registered) mutated by flipping,
/// deleting, duplicating and truncating.
fn garbage(rng: &mut Rng, i: usize) -> Vec<u8> {
    if i.is_multiple_of(3) {
        let n = 1 + rng.below(1500);
        return (0..n).map(|_| rng.next() as u8).collect();
    }
    let methods = [
        "INVITE", "OPTIONS", "REGISTER", "BYE", "ACK", "CANCEL", "MESSAGE",
    ];
    let m = methods[rng.below(methods.len())];
    let base = format!(
        "{m} sip:nobody{i}@localhost SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK-junk{i}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:junk@localhost>;tag=j{i}\r\n\
         To: <sip:nobody{i}@localhost>\r\n\
         Call-ID: junk-{i}\r\n\
         CSeq: {i} {m}\r\n\
         Contact: <sip:junk@127.0.0.1:9>\r\n\
         Content-Length: 0\r\n\r\n"
    );
    let mut b = base.into_bytes();
    for _ in 0..1 + rng.below(8) {
        if b.is_empty() {
            break;
        }
        let at = rng.below(b.len());
        match rng.below(6) {
            0 => b[at] = rng.next() as u8,
            1 => {
                b.remove(at);
            }
            2 => {
                let end = (at + 1 + rng.below(40)).min(b.len());
                let chunk = b[at..end].to_vec();
                b.splice(at..at, chunk);
            }
            3 => b.truncate(at),
            4 => {
                let junk: &[u8] = [
                    &b"\r\n"[..],
                    b":",
                    b";;;",
                    b"<",
                    b"\0",
                    b"99999999999999999999",
                    b"\r\nContent-Length: 7\r\n",
                    b"\r\nVia: SIP/2.0/UDP [::1\r\n",
                ][rng.below(8)];
                b.splice(at..at, junk.iter().copied());
            }
            _ => b[at] = b[at].to_ascii_uppercase() ^ 0x20,
        }
    }
    b
}

#[test]
fn garbage_datagrams_do_not_disturb_calls() {
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
    register(dir, &vouch, "bob", "u1", uas_port);
    let _uas = SippServer::start(dir, "uas", &scenario(dir, "uas.xml"), "u1", uas_port);

    const DATAGRAMS: usize = 10_000;
    let target = vouch.udp_addr();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flood = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
            let mut rng = Rng(0x0005_EED0_F6A5_BA6E);
            let mut sent = 0;
            // Spread over the call flow: ~2,000 per second, bounded in count.
            while sent < DATAGRAMS {
                for _ in 0..20 {
                    let g = garbage(&mut rng, sent);
                    let _ = sock.send_to(&g, target);
                    sent += 1;
                }
                std::thread::sleep(Duration::from_millis(10));
                if stop.load(std::sync::atomic::Ordering::Relaxed) && sent >= DATAGRAMS {
                    break;
                }
            }
            sent
        })
    };
    let uac = sipp_client(
        Sipp {
            dir,
            tag: "uac",
            transport: "u1",
            port: free_port(),
        },
        &scenario(dir, "uac.xml"),
        target,
        &["-s", "bob", "-m", "50", "-r", "10", "-l", "10"],
        Duration::from_secs(40),
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent = flood.join().unwrap();
    assert_eq!(sent, DATAGRAMS);
    if !(uac.status.success() && uac.failed == 0 && uac.successful == 50) {
        panic!(
            "calls under garbage failed: sipp exit {}, {} ok, {} failed\n{}\nvouch log (tail):\n{}",
            uac.status,
            uac.successful,
            uac.failed,
            uac.output,
            tail_lines(&vouch.log_text(), 60)
        );
    }
    // vouch is still up and answering.
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let port = sock.local_addr().unwrap().port();
    let r = exchange(
        &sock,
        target,
        request(port, "after", "1 OPTIONS", "").as_bytes(),
    );
    assert!(r.is_some(), "vouch stopped answering after the garbage");
    eprintln!(
        "50 calls with {DATAGRAMS} garbage datagrams in {:.1}s",
        started.elapsed().as_secs_f64()
    );
}
