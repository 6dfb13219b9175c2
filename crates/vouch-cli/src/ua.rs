//! `vouch ua`: the user agent from the command line, against any SIP server — register (with
//! mutual authentication), call, or answer — printing each verdict (rspauth, Identity,
//! certificate binding). Its certificate is a fresh P-256 one per run (BCP §6) or a device
//! certificate from files. It reaches its proxy over UDP, or over one TCP or TLS connection
//! opened at start (with a client certificate, the TLS handshake is its login).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args as ClapArgs;
use vouch::cert_fetch::FetchConfig;
use vouch::ua::{CertificateSource, Timeouts, UaHandle, UaOutput, UaTransport};
use vouch_auth::session_cert::{CertFingerprint, DEFAULT_LIFETIME_SECS, LoginCertificate};
use vouch_proto::endpoint::{Peer, TransportKind};
use vouch_proto::ua::{CertificateTransport, UaConfig, UaEvent};

use crate::ua_text::describe;

/// How the certificate travels in bodies.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Carriage {
    /// S/MIME certs-only part beside the SDP (multipart/mixed).
    Smime,
    /// SDP a=fingerprint only.
    Fingerprint,
    /// Both.
    Both,
}

/// Arguments of `vouch ua`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Our address-of-record, e.g. sip:alice@localhost.
    #[arg(long)]
    aor: String,
    /// Digest username (default: the AoR's user part).
    #[arg(long)]
    username: Option<String>,
    /// Digest password (default: the VOUCH_PASSWORD environment variable, which other users
    /// cannot see in the process list). Not needed with --tls-cert: the certificate is the
    /// login (a challenge then fails the registration).
    #[arg(long)]
    password: Option<String>,
    /// The outbound proxy and registrar, transport:ip:port with transport udp, tcp or tls.
    /// Over tcp and tls one connection is opened at start and carries every message; if it
    /// drops the UA exits 1 (no reconnection).
    #[arg(long, default_value = "udp:127.0.0.1:5060")]
    proxy: String,
    /// Local address to bind (port 0: any).
    #[arg(long, default_value = "127.0.0.1:0")]
    bind: SocketAddr,
    /// With --proxy tls:…: trust anchors (PEM) for the proxy's certificate, which must name
    /// its IP address (repeatable; required for tls).
    #[arg(long = "tls-ca", value_name = "CA.pem")]
    tls_ca: Vec<PathBuf>,
    /// With --proxy tls:…: a client certificate chain (PEM) to present — a TLS login when it
    /// names our AoR and the proxy trusts its issuer (`[tls] user_ca`); with --tls-key.
    #[arg(long, requires = "tls_key", value_name = "CERT.pem")]
    tls_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, requires = "tls_cert", value_name = "KEY.pem")]
    tls_key: Option<PathBuf>,
    /// Trust anchors (PEM) for Identity-Info certificates (repeatable).
    #[arg(long = "trust", value_name = "CA.pem")]
    trust: Vec<PathBuf>,
    /// Refuse incoming INVITEs without a verified Identity (428).
    #[arg(long)]
    require_identity: bool,
    /// How our certificate travels in INVITE and UPDATE bodies.
    #[arg(long, value_enum, default_value_t = Carriage::Both)]
    cert_transport: Carriage,
    /// Lifetime of the per-login certificate, seconds.
    #[arg(long, default_value_t = DEFAULT_LIFETIME_SECS)]
    cert_lifetime: i64,
    /// A device certificate (PEM) instead of a per-login one; with --device-key.
    #[arg(long, requires = "device_key")]
    device_cert: Option<PathBuf>,
    /// The device certificate's PKCS#8 private key (PEM).
    #[arg(long, requires = "device_cert")]
    device_key: Option<PathBuf>,
    /// Do not register first.
    #[arg(long)]
    no_register: bool,
    /// Call this SIP URI, then hang up after --duration. Without --call or --answer the UA
    /// registers, prints the verdict and exits.
    #[arg(long, conflicts_with = "answer")]
    call: Option<String>,
    /// Seconds the call lasts before we hang up.
    #[arg(long, default_value_t = 2)]
    duration: u64,
    /// Answer incoming calls; with --calls N, exit after N calls ended.
    #[arg(long)]
    answer: bool,
    /// With --answer: how many calls to take before exiting (0: forever).
    #[arg(long, default_value_t = 0)]
    calls: u32,
    /// Give up when nothing completes within this many seconds (0: never).
    #[arg(long, default_value_t = 30)]
    timeout: u64,
}

/// Runs the UA; `Ok` when what was asked completed with every check passing.
pub fn run(args: &Args) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    rt.block_on(run_async(args))
}

async fn run_async(args: &Args) -> Result<()> {
    let password = match &args.password {
        Some(p) => Some(p.clone()),
        None => match std::env::var("VOUCH_PASSWORD") {
            Ok(p) => Some(p),
            // A client certificate logs in without one.
            Err(_) if args.tls_cert.is_some() => None,
            Err(_) => bail!("no password: give --password or set VOUCH_PASSWORD"),
        },
    };
    let username = match &args.username {
        Some(u) => u.clone(),
        None => args
            .aor
            .split_once(':')
            .and_then(|(_, rest)| rest.split_once('@'))
            .map(|(u, _)| u.to_owned())
            .context("the AoR has no user part; give --username")?,
    };
    let proxy: Peer = args
        .proxy
        .parse()
        .with_context(|| format!("--proxy {}", args.proxy))?;
    let mut trust = Vec::new();
    for t in &args.trust {
        trust.push(std::fs::read(t).with_context(|| format!("cannot read {}", t.display()))?);
    }
    let certificate = match (&args.device_cert, &args.device_key) {
        (Some(c), Some(k)) => {
            let cert = std::fs::read(c).with_context(|| format!("cannot read {}", c.display()))?;
            let key = std::fs::read(k).with_context(|| format!("cannot read {}", k.display()))?;
            CertificateSource::Fixed(
                LoginCertificate::from_pem(&args.aor, &cert, &key)
                    .context("the device certificate")?,
            )
        }
        _ => CertificateSource::PerLogin {
            lifetime_secs: args.cert_lifetime,
            device: None,
        },
    };
    let transport = match args.cert_transport {
        Carriage::Smime => CertificateTransport::CertsOnlyPart,
        Carriage::Fingerprint => CertificateTransport::SdpFingerprint,
        Carriage::Both => CertificateTransport::Both,
    };
    let fetch = FetchConfig {
        https_roots_pem: trust.concat(),
        ..FetchConfig::default()
    };
    let aor = args.aor.clone();
    let require_identity = args.require_identity;
    let answer = args.answer;
    let link = proxy_link(args, &proxy)?;
    let (ua, mut out) = UaHandle::start_on(link, certificate, fetch, move |local| {
        let mut c = UaConfig::new(&aor, (proxy.transport, local), proxy);
        if let Some(password) = &password {
            c = c.with_password(&username, password);
        }
        c.trust_pem = trust;
        c.certificate_transport = transport;
        c.auto_answer = answer;
        c.seed = u64::from(local.port()) ^ std::process::id() as u64;
        if require_identity {
            c.require_identity = vec!["INVITE".to_owned()];
        }
        c
    })
    .await
    .context("cannot start the user agent")?;
    println!(
        "vouch ua {} on {} {}",
        args.aor,
        proxy_transport(args),
        ua.local_addr()
    );
    if args.proxy.starts_with("tls:") {
        let login = match &args.tls_cert {
            Some(c) => format!("; client certificate {} presented", c.display()),
            None => String::new(),
        };
        println!(
            "ok TLS to {}: proxy certificate verified{login}",
            args.proxy
        );
    }
    let fingerprint = ua
        .with(|u, _| u.certificate().map(|c| CertFingerprint::of(c).to_string()))
        .await
        .flatten();
    if let Some(fp) = fingerprint {
        let source = if args.device_cert.is_some() {
            "device certificate"
        } else {
            "per-login certificate"
        };
        println!("ok {source} {fp}");
    }

    let mut failures = Vec::new();
    let mut registered = args.no_register;
    if !args.no_register {
        ua.with(|u, now| u.register(now)).await;
    }
    let mut call = None;
    let mut calls_ended = 0u32;
    let mut hangup_at: Option<tokio::time::Instant> = None;
    if registered && let Some(target) = &args.call {
        let target = target.clone();
        call = ua
            .with(move |u, now| u.call(now, &target))
            .await
            .transpose()?;
    }
    let deadline =
        (args.timeout > 0).then(|| tokio::time::Instant::now() + Duration::from_secs(args.timeout));
    loop {
        let sleep_until = |at: Option<tokio::time::Instant>| async move {
            match at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let o = tokio::select! {
            o = out.recv() => match o { Some(o) => o, None => break },
            _ = sleep_until(hangup_at) => {
                hangup_at = None;
                if let Some(c) = call {
                    ua.with(move |u, now| u.hangup(now, c)).await.transpose()?;
                }
                continue;
            }
            _ = sleep_until(deadline) => bail!("timed out after {} s", args.timeout),
            _ = tokio::signal::ctrl_c() => break,
        };
        let e = match o {
            UaOutput::Event(e) => e,
            UaOutput::Closed { reason } => {
                println!("!! connection lost: {reason}");
                bail!("connection to the proxy lost: {reason}");
            }
            _ => continue,
        };
        if let Some((good, line)) = describe(&e) {
            println!("{} {line}", if good { "ok" } else { "!!" });
            if !good {
                failures.push(line);
            }
        }
        match e {
            UaEvent::Registered { .. } if !registered && args.call.is_none() && !args.answer => {
                // Only asked to register: the verdict is printed, done.
                break;
            }
            UaEvent::Registered { .. } if !registered => {
                registered = true;
                if let Some(target) = &args.call {
                    let target = target.clone();
                    call = ua
                        .with(move |u, now| u.call(now, &target))
                        .await
                        .transpose()?;
                }
            }
            UaEvent::RegistrationFailed { .. } => break,
            UaEvent::IncomingCall { .. } if !args.answer => {}
            UaEvent::CallEstablished { call: c } if Some(c) == call => {
                hangup_at = Some(tokio::time::Instant::now() + Duration::from_secs(args.duration));
            }
            UaEvent::CallFailed { call: c, .. } if Some(c) == call => break,
            UaEvent::CallEnded { .. } => {
                calls_ended += 1;
                if args.call.is_some() || (args.answer && calls_ended == args.calls) {
                    break;
                }
            }
            _ => {}
        }
    }
    ua.stop();
    if !failures.is_empty() {
        bail!(
            "{} check(s) failed: {}",
            failures.len(),
            failures.join("; ")
        );
    }
    if args.call.is_some() && calls_ended == 0 {
        bail!("the call did not complete");
    }
    Ok(())
}

fn proxy_transport(args: &Args) -> &str {
    args.proxy.split_once(':').map_or("udp", |(t, _)| t)
}

/// The socket or connection `--proxy` asks for, with the TLS material of `--tls-*`.
fn proxy_link(args: &Args, proxy: &Peer) -> Result<UaTransport> {
    if proxy.transport != TransportKind::Tls && (!args.tls_ca.is_empty() || args.tls_cert.is_some())
    {
        bail!("--tls-ca, --tls-cert and --tls-key need --proxy tls:IP:PORT");
    }
    Ok(match proxy.transport {
        TransportKind::Udp => UaTransport::Udp(args.bind),
        TransportKind::Tcp => UaTransport::Tcp {
            bind: args.bind,
            proxy: proxy.addr,
            timeouts: Timeouts::default(),
        },
        TransportKind::Tls => {
            if args.tls_ca.is_empty() {
                bail!("--proxy tls:… needs --tls-ca CA.pem to verify the proxy's certificate");
            }
            let identity = args.tls_cert.as_deref().zip(args.tls_key.as_deref());
            let client = vouch::tls::client_config(&args.tls_ca, identity)
                .context("the TLS client configuration")?;
            UaTransport::Tls {
                bind: args.bind,
                proxy: proxy.addr,
                client: Arc::new(client),
                timeouts: Timeouts::default(),
            }
        }
    })
}
