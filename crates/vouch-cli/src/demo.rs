//! `vouch demo`: the SIP trapezoid of draft-fries-sip-identity-usage-bcp §4.3 on loopback
//! (see `vouch::trapezoid`): Alice (atlanta.example) and Bob (biloxi.example) register with
//! mutual authentication, Alice calls Bob with her per-login certificate in the INVITE, Bob's
//! certificate comes back in a signed UPDATE (RFC 4916), both bind, Alice hangs up and both
//! bindings go. Prints a ladder diagram of every message with each verdict; exits 0 only when
//! every check passed.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args as ClapArgs;
use vouch::trapezoid::{ALICE, BOB, Tapped, Trapezoid, TrapezoidOptions};
use vouch::ua::UaOutput;
use vouch_msg::{HeaderName, Message};
use vouch_proto::ua::{BindingEnd, CallHandle, UaEvent};

use crate::ua_text::describe;

/// Arguments of `vouch demo`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Where the two domains keep their data (CA, certificates, users). Default: a temporary
    /// directory, removed afterwards.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Print every message in full, not only its summary.
    #[arg(long)]
    verbose: bool,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 20)]
    timeout: u64,
}

/// The ladder's columns: Alice, atlanta's proxy, biloxi's proxy, Bob.
const COLUMNS: [(&str, usize); 4] = [
    ("Alice", 2),
    ("atlanta.example", 30),
    ("biloxi.example", 58),
    ("Bob", 86),
];

/// One line of the ladder: an arrow from column `from` to column `to` labelled `label`.
fn arrow(from: usize, to: usize, label: &str) -> String {
    let (a, b) = (COLUMNS[from].1, COLUMNS[to].1);
    let (lo, hi) = (a.min(b), a.max(b));
    let mut line: Vec<char> = vec![' '; COLUMNS[3].1 + 2];
    for (_, x) in COLUMNS {
        line[x] = '|';
    }
    for c in line.iter_mut().take(hi).skip(lo + 1) {
        *c = '-';
    }
    if b > a {
        line[hi - 1] = '>';
    } else {
        line[lo + 1] = '<';
    }
    let room = hi - lo - 3;
    let text: String = label.chars().take(room).collect();
    for (i, ch) in text.chars().enumerate() {
        line[lo + 2 + i] = ch;
    }
    line.into_iter().collect::<String>().trim_end().to_owned()
}

/// A message's ladder label: method or status, and what it carries that matters here.
fn summary(bytes: &[u8]) -> String {
    let Ok(m) = Message::parse(bytes.to_vec()) else {
        return "(unparseable)".to_owned();
    };
    let mut s = match m.method() {
        Some(method) => method.as_str().to_owned(),
        None => format!(
            "{} {}",
            m.status().unwrap_or_default(),
            m.cseq().method.as_str()
        ),
    };
    let has = |n: HeaderName| m.header(n).is_some();
    let ct = m
        .header(HeaderName::ContentType)
        .map(|h| h.value.to_ascii_lowercase())
        .unwrap_or_default();
    if ct.contains("pkcs7") || ct.contains("multipart") {
        s.push_str(" +cert");
    } else if String::from_utf8_lossy(m.body_bytes()).contains("a=fingerprint:") {
        s.push_str(" +fingerprint");
    }
    if has(HeaderName::Identity) {
        s.push_str(" +Identity");
    }
    if has(HeaderName::ProxyAuthorization) || has(HeaderName::Authorization) {
        s.push_str(" +creds");
    }
    if has(HeaderName::ProxyAuthenticationInfo) || has(HeaderName::AuthenticationInfo) {
        s.push_str(" +rspauth");
    }
    s
}

/// What must have happened for the demo to pass.
#[derive(Debug, Default)]
struct Checks {
    /// Which of [`CHECKS`] passed.
    done: [bool; CHECKS.len()],
    failures: Vec<String>,
}

const CHECKS: [&str; 12] = [
    "Alice's registrar authenticated itself (rspauth)",
    "Bob's registrar authenticated itself (rspauth)",
    "atlanta's proxy authenticated itself to Alice on the INVITE 200",
    "Bob verified the INVITE's Identity (signed by atlanta.example)",
    "Bob bound Alice's certificate to sip:alice@atlanta.example",
    "biloxi's proxy authenticated itself to Bob on the UPDATE 200",
    "Alice verified the UPDATE's Identity (signed by biloxi.example)",
    "Alice bound Bob's certificate to sip:bob@biloxi.example",
    "the call was established on both sides",
    "Bob removed his binding on BYE",
    "Alice removed her binding on BYE",
    "no request refused, no server unauthenticated, no call failed",
];

impl Checks {
    fn pass(&mut self, i: usize) {
        self.done[i] = true;
    }
    fn passed(&self, i: usize) -> bool {
        self.done[i]
    }
}

/// Prints a verdict line and records what it proves.
fn on_event(who: &str, e: &UaEvent, checks: &mut Checks, established: &mut [bool; 2]) {
    let alice = who == "Alice";
    match e {
        UaEvent::Registered {
            authenticated_realms,
            ..
        } if !authenticated_realms.is_empty() => checks.pass(if alice { 0 } else { 1 }),
        UaEvent::ServerAuthenticated { method, .. } => {
            if method == "INVITE" && alice {
                checks.pass(2);
            }
            if method == "UPDATE" && !alice {
                checks.pass(5);
            }
        }
        UaEvent::IdentityVerified {
            method,
            signer_domain,
            ..
        } => {
            if method == "INVITE" && !alice && signer_domain == "atlanta.example" {
                checks.pass(3);
            }
            if method == "UPDATE" && alice && signer_domain == "biloxi.example" {
                checks.pass(6);
            }
        }
        UaEvent::BindingCreated { aor, .. } => {
            if !alice && aor == ALICE {
                checks.pass(4);
            }
            if alice && aor == BOB {
                checks.pass(7);
            }
        }
        UaEvent::BindingRemoved { reason, .. } if *reason == BindingEnd::Bye => {
            checks.pass(if alice { 10 } else { 9 });
        }
        UaEvent::CallEstablished { .. } => {
            established[usize::from(!alice)] = true;
            if established.iter().all(|x| *x) {
                checks.pass(8);
            }
        }
        _ => {}
    }
    let Some((good, line)) = describe(e) else {
        return;
    };
    if !good {
        checks.failures.push(format!("{who}: {line}"));
    }
    println!("      {} {who}: {line}", if good { "ok" } else { "!!" });
}

/// Runs the demo; `Ok` only when every check passed.
pub fn run(args: &Args) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    rt.block_on(run_async(args))
}

async fn run_async(args: &Args) -> Result<()> {
    let temp;
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => {
            temp = tempfile::tempdir().context("cannot make a temporary directory")?;
            temp.path().to_path_buf()
        }
    };
    let started = Instant::now();
    let mut t = Trapezoid::start(&dir, TrapezoidOptions::default())
        .await
        .context("cannot start the trapezoid")?;
    println!("vouch demo: the SIP Identity usage BCP trapezoid on 127.0.0.1");
    println!(
        "  atlanta.example proxy {}, biloxi.example proxy {}; Alice {}, Bob {}",
        t.atlanta
            .local_addrs()
            .first()
            .map(|a| a.1.to_string())
            .unwrap_or_default(),
        t.biloxi
            .local_addrs()
            .first()
            .map(|a| a.1.to_string())
            .unwrap_or_default(),
        t.alice.local_addr(),
        t.bob.local_addr()
    );
    println!();
    let header: String = {
        let mut line = vec![' '; COLUMNS[3].1 + 8];
        for (name, x) in COLUMNS {
            let start = x.saturating_sub(name.len() / 2);
            for (i, c) in name.chars().enumerate() {
                line[start + i] = c;
            }
        }
        line.into_iter().collect::<String>().trim_end().to_owned()
    };
    println!("{header}");

    let mut checks = Checks::default();
    let mut established = [false; 2];
    let mut registered = [false; 2];
    let mut alice_call: Option<CallHandle> = None;
    let mut hung_up = false;
    t.alice.with(|ua, now| ua.register(now)).await;
    t.bob.with(|ua, now| ua.register(now)).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.timeout);
    loop {
        let all_done = (0..11).all(|i| checks.passed(i));
        if all_done {
            break;
        }
        enum Got {
            Alice(UaOutput),
            Bob(UaOutput),
            Tap(Tapped),
        }
        let got = tokio::select! {
            Some(o) = t.alice_out.recv() => Got::Alice(o),
            Some(o) = t.bob_out.recv() => Got::Bob(o),
            Some(x) = t.tap_out.recv() => Got::Tap(x),
            _ = tokio::time::sleep_until(deadline) => break,
        };
        let (who, output) = match got {
            Got::Tap(x) => {
                let (from, to) = if x.to_biloxi { (1, 2) } else { (2, 1) };
                println!("{}", arrow(from, to, &summary(&x.forwarded)));
                if args.verbose {
                    println!("{}", String::from_utf8_lossy(&x.forwarded));
                }
                continue;
            }
            Got::Alice(o) => ("Alice", o),
            Got::Bob(o) => ("Bob", o),
        };
        let (ua_col, proxy_col) = if who == "Alice" { (0, 1) } else { (3, 2) };
        match output {
            UaOutput::Sent { bytes, .. } => {
                println!("{}", arrow(ua_col, proxy_col, &summary(&bytes)));
                if args.verbose {
                    println!("{}", String::from_utf8_lossy(&bytes));
                }
            }
            UaOutput::Received { bytes, .. } => {
                println!("{}", arrow(proxy_col, ua_col, &summary(&bytes)));
                if args.verbose {
                    println!("{}", String::from_utf8_lossy(&bytes));
                }
            }
            UaOutput::Event(e) => {
                on_event(who, &e, &mut checks, &mut established);
                if let UaEvent::Registered { .. } = e {
                    registered[usize::from(who == "Bob")] = true;
                    if registered.iter().all(|x| *x) && alice_call.is_none() {
                        println!("      -- Alice calls Bob");
                        alice_call = t
                            .alice
                            .with(|ua, now| ua.call(now, BOB).ok())
                            .await
                            .flatten();
                    }
                }
                if checks.passed(8)
                    && checks.passed(7)
                    && checks.passed(4)
                    && !hung_up
                    && let Some(call) = alice_call
                {
                    hung_up = true;
                    println!("      -- Alice hangs up");
                    t.alice.with(move |ua, now| ua.hangup(now, call)).await;
                }
            }
            // The demo's UAs use UDP: there is no connection to lose.
            UaOutput::Closed { reason } => bail!("{who}: {reason}"),
        }
    }
    if checks.failures.is_empty() {
        checks.pass(11);
    }
    println!(
        "  (mid-dialog requests go from proxy to proxy along Record-Route, not through the\n   \
         tap that shows the proxy-to-proxy leg of the INVITE; they are shown at the UAs)"
    );
    let elapsed = started.elapsed();
    t.shutdown().await;
    println!();
    let mut failed = 0;
    for (i, name) in CHECKS.iter().enumerate() {
        let ok = checks.passed(i);
        if !ok {
            failed += 1;
        }
        println!("  [{}] {name}", if ok { "pass" } else { "FAIL" });
    }
    for f in &checks.failures {
        println!("  ! {f}");
    }
    println!("  ({:.1} s)", elapsed.as_secs_f64());
    if failed > 0 {
        bail!("{failed} of {} checks failed", CHECKS.len());
    }
    println!("all {} checks passed", CHECKS.len());
    Ok(())
}
