//! The SIP trapezoid of draft-fries-sip-identity-usage-bcp §4.3 on loopback: two domains,
//! `atlanta.example` and `biloxi.example`, each a vouch proxy with digest authentication and
//! an RFC 4474 authentication service (its own development CA and domain certificate, served
//! over HTTP for Identity-Info), and a user agent in each, Alice and Bob, with per-login
//! certificates. Messages between the two proxies pass a tap, which reports them (for the
//! ladder) and can alter them (the man in the middle of the tests).
//!
//! Used by `vouch demo` and by the end-to-end tests, so both run the same set-up.

use std::net::{SocketAddr, UdpSocket as StdUdpSocket};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use vouch_proto::endpoint::{Peer, TransportKind};
use vouch_proto::ua::UaConfig;

use crate::cert_fetch::FetchConfig;
use crate::config::{Config, ListenAddr};
use crate::identity::IdentityMaterial;
use crate::server::wall_unix;
use crate::server::{Server, ServerError};
use crate::store::Store;
use crate::tls::ensure_dev_identity;
use crate::ua::{CertificateSource, UaHandle, UaOutput, UaStartError};

/// The caller's domain.
pub const ATLANTA: &str = "atlanta.example";
/// The callee's domain.
pub const BILOXI: &str = "biloxi.example";
/// Alice's AoR.
pub const ALICE: &str = "sip:alice@atlanta.example";
/// Bob's AoR.
pub const BOB: &str = "sip:bob@biloxi.example";
const ALICE_PASSWORD: &str = "wonderland";
const BOB_PASSWORD: &str = "builder";

/// Why the trapezoid could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrapezoidError {
    /// A proxy failed to start.
    #[error("proxy {domain}: {source}")]
    Proxy {
        /// Its domain.
        domain: &'static str,
        /// Why.
        source: ServerError,
    },
    /// A user agent failed to start.
    #[error("user agent {aor}: {source}")]
    Ua {
        /// Its AoR.
        aor: &'static str,
        /// Why.
        source: UaStartError,
    },
    /// Set-up I/O (ports, data directories, the user store).
    #[error("{0}")]
    Setup(String),
}

/// A message crossing the tap between the proxies, and what the tap did with it.
#[derive(Debug, Clone)]
pub struct Tapped {
    /// From atlanta's proxy to biloxi's (else the other way).
    pub to_biloxi: bool,
    /// The message as it left the sender.
    pub original: Bytes,
    /// The message as it was passed on (equal to `original` unless altered).
    pub forwarded: Bytes,
}

/// Alters messages between the proxies (identity when `None`).
pub type Tamper = Arc<dyn Fn(bool, &Bytes) -> Option<Bytes> + Send + Sync>;

/// Options of [`Trapezoid::start`].
#[derive(Clone, Default)]
pub struct TrapezoidOptions {
    /// Alters messages crossing between the proxies.
    pub tamper: Option<Tamper>,
    /// Bob refuses INVITEs without Identity (428).
    pub bob_requires_identity: bool,
    /// Puts a second tap between Alice and her proxy, altering what crosses it (`true`:
    /// towards the proxy): the man in the middle of the mutual-authentication tests.
    pub alice_tamper: Option<Tamper>,
    /// Bob rings instead of answering; the test answers or declines.
    pub bob_rings: bool,
    /// How Alice's certificate travels (default: both forms).
    pub alice_carriage: Option<vouch_proto::ua::CertificateTransport>,
}

impl std::fmt::Debug for TrapezoidOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrapezoidOptions")
            .field("tamper", &self.tamper.is_some())
            .field("bob_requires_identity", &self.bob_requires_identity)
            .field("alice_tamper", &self.alice_tamper.is_some())
            .field("bob_rings", &self.bob_rings)
            .field("alice_carriage", &self.alice_carriage)
            .finish()
    }
}

/// The running trapezoid.
#[derive(Debug)]
pub struct Trapezoid {
    /// atlanta.example's proxy.
    pub atlanta: Server,
    /// biloxi.example's proxy.
    pub biloxi: Server,
    /// Alice's UA (atlanta.example).
    pub alice: UaHandle,
    /// Alice's outputs.
    pub alice_out: mpsc::UnboundedReceiver<UaOutput>,
    /// Bob's UA (biloxi.example).
    pub bob: UaHandle,
    /// Bob's outputs.
    pub bob_out: mpsc::UnboundedReceiver<UaOutput>,
    /// Messages between the proxies.
    pub tap_out: mpsc::UnboundedReceiver<Tapped>,
    tap: JoinHandle<()>,
    alice_tap: Option<JoinHandle<()>>,
    /// Each domain's data directory (CA, certificates, users).
    pub dirs: [PathBuf; 2],
}

/// A free UDP port on 127.0.0.1 (bound and released: the proxies need each other's address
/// in their configuration before they start).
fn free_udp_port() -> Result<SocketAddr, TrapezoidError> {
    let s = StdUdpSocket::bind("127.0.0.1:0").map_err(|e| TrapezoidError::Setup(e.to_string()))?;
    s.local_addr()
        .map_err(|e| TrapezoidError::Setup(e.to_string()))
}

fn proxy_config(
    dir: &Path,
    domain: &str,
    listen: SocketAddr,
    other: (&str, SocketAddr),
) -> Result<Config, TrapezoidError> {
    let mut config = Config {
        data_dir: dir.to_path_buf(),
        domains: vec![domain.to_owned()],
        listen: vec![ListenAddr {
            transport: TransportKind::Udp,
            addr: listen,
        }],
        ..Config::default()
    };
    config.hosts.insert(other.0.to_owned(), other.1);
    config.auth.challenge_in_dialog = true;
    config.identity.sign = true;
    config.identity.http_listen = "127.0.0.1:0".to_owned();
    config
        .validate()
        .map_err(|e| TrapezoidError::Setup(e.to_string()))?;
    Ok(config)
}

fn add_user(dir: &Path, aor: &str, password: &str) -> Result<(), TrapezoidError> {
    let mut store = Store::open(dir).map_err(|e| TrapezoidError::Setup(e.to_string()))?;
    if !store
        .users()
        .map_err(|e| TrapezoidError::Setup(e.to_string()))?
        .iter()
        .any(|u| u.aor == aor)
    {
        store
            .add_user(aor, password, None, &[])
            .map_err(|e| TrapezoidError::Setup(e.to_string()))?;
    }
    Ok(())
}

/// The domain's RFC 4474 key and certificate, issued by its development CA (made on first
/// use, like `vouch proxy` does).
fn identity(dir: &Path, domain: &str) -> Result<IdentityMaterial, TrapezoidError> {
    let made = ensure_dev_identity(dir, &[domain.to_owned()], wall_unix())
        .map_err(|e| TrapezoidError::Setup(e.to_string()))?;
    IdentityMaterial::load(&made.key, &made.cert).map_err(|e| TrapezoidError::Setup(e.to_string()))
}

fn udp_addr(s: &Server) -> Option<SocketAddr> {
    s.local_addrs()
        .iter()
        .find(|(k, _)| *k == TransportKind::Udp)
        .map(|(_, a)| *a)
}

impl Trapezoid {
    /// Starts both proxies, the tap and both user agents under `dir` (two data directories
    /// are made there). Nothing is registered yet.
    pub async fn start(dir: &Path, options: TrapezoidOptions) -> Result<Trapezoid, TrapezoidError> {
        let dirs = [dir.join(ATLANTA), dir.join(BILOXI)];
        for d in &dirs {
            std::fs::create_dir_all(d).map_err(|e| TrapezoidError::Setup(e.to_string()))?;
        }
        add_user(&dirs[0], ALICE, ALICE_PASSWORD)?;
        add_user(&dirs[1], BOB, BOB_PASSWORD)?;
        let atlanta_addr = free_udp_port()?;
        let biloxi_addr = free_udp_port()?;
        let tap_sock = UdpSocket::bind("127.0.0.1:0")
            .await
            .map_err(|e| TrapezoidError::Setup(e.to_string()))?;
        let tap_addr = tap_sock
            .local_addr()
            .map_err(|e| TrapezoidError::Setup(e.to_string()))?;
        // atlanta reaches biloxi through the tap; biloxi answers the tap (rport) and reaches
        // atlanta directly for requests it originates.
        let atlanta_config = proxy_config(&dirs[0], ATLANTA, atlanta_addr, (BILOXI, tap_addr))?;
        let biloxi_config = proxy_config(&dirs[1], BILOXI, biloxi_addr, (ATLANTA, atlanta_addr))?;
        let atlanta =
            Server::start_with_identity(&atlanta_config, None, Some(identity(&dirs[0], ATLANTA)?))
                .await
                .map_err(|source| TrapezoidError::Proxy {
                    domain: ATLANTA,
                    source,
                })?;
        let biloxi =
            Server::start_with_identity(&biloxi_config, None, Some(identity(&dirs[1], BILOXI)?))
                .await
                .map_err(|source| TrapezoidError::Proxy {
                    domain: BILOXI,
                    source,
                })?;
        let atlanta_udp = udp_addr(&atlanta).unwrap_or(atlanta_addr);
        let biloxi_udp = udp_addr(&biloxi).unwrap_or(biloxi_addr);
        let (tap_tx, tap_out) = mpsc::unbounded_channel();
        let tap = tokio::spawn(run_tap(
            tap_sock,
            biloxi_udp,
            options.tamper.clone(),
            tap_tx,
        ));
        // Alice's outbound proxy: atlanta itself, or a tap in front of it.
        let (alice_proxy, alice_tap) = match options.alice_tamper.clone() {
            None => (atlanta_udp, None),
            Some(tamper) => {
                let sock = UdpSocket::bind("127.0.0.1:0")
                    .await
                    .map_err(|e| TrapezoidError::Setup(e.to_string()))?;
                let addr = sock
                    .local_addr()
                    .map_err(|e| TrapezoidError::Setup(e.to_string()))?;
                let (tx, _) = mpsc::unbounded_channel();
                let relay = run_tap(sock, atlanta_udp, Some(tamper), tx);
                (addr, Some(tokio::spawn(relay)))
            }
        };

        let read = |p: PathBuf| {
            std::fs::read(&p).map_err(|e| TrapezoidError::Setup(format!("{}: {e}", p.display())))
        };
        let trust = vec![read(dirs[0].join("ca.pem"))?, read(dirs[1].join("ca.pem"))?];
        let fetch = FetchConfig {
            timeout: Duration::from_secs(3),
            ..FetchConfig::default()
        };
        let bob_requires = options.bob_requires_identity;
        let bob_rings = options.bob_rings;
        let alice_carriage = options.alice_carriage;
        let (alice, alice_out) = {
            let trust = trust.clone();
            UaHandle::start(
                "127.0.0.1:0"
                    .parse()
                    .map_err(|_| TrapezoidError::Setup("address".into()))?,
                CertificateSource::default(),
                fetch.clone(),
                move |local| {
                    let mut c = UaConfig::new(
                        ALICE,
                        (TransportKind::Udp, local),
                        Peer::new(TransportKind::Udp, alice_proxy),
                    )
                    .with_password("alice", ALICE_PASSWORD);
                    c.display_name = Some("Alice".into());
                    if let Some(carriage) = alice_carriage {
                        c.certificate_transport = carriage;
                    }
                    c.trust_pem = trust;
                    c.seed = u64::from(local.port());
                    c
                },
            )
            .await
            .map_err(|source| TrapezoidError::Ua { aor: ALICE, source })?
        };
        let (bob, bob_out) = UaHandle::start(
            "127.0.0.1:0"
                .parse()
                .map_err(|_| TrapezoidError::Setup("address".into()))?,
            CertificateSource::default(),
            fetch,
            move |local| {
                let mut c = UaConfig::new(
                    BOB,
                    (TransportKind::Udp, local),
                    Peer::new(TransportKind::Udp, biloxi_udp),
                )
                .with_password("bob", BOB_PASSWORD);
                c.display_name = Some("Bob".into());
                c.auto_answer = !bob_rings;
                c.trust_pem = trust;
                c.seed = u64::from(local.port()) << 16;
                if bob_requires {
                    c.require_identity = vec!["INVITE".into()];
                }
                c
            },
        )
        .await
        .map_err(|source| TrapezoidError::Ua { aor: BOB, source })?;
        Ok(Trapezoid {
            atlanta,
            biloxi,
            alice,
            alice_out,
            bob,
            bob_out,
            tap_out,
            tap,
            alice_tap,
            dirs,
        })
    }

    /// Stops everything.
    pub async fn shutdown(self) {
        self.tap.abort();
        if let Some(t) = self.alice_tap {
            t.abort();
        }
        self.alice.stop();
        self.bob.stop();
        self.atlanta.shutdown().await;
        self.biloxi.shutdown().await;
    }
}

/// Relays between a server (`biloxi`) and its one client (whoever else sends), reporting and
/// optionally altering each datagram.
async fn run_tap(
    sock: UdpSocket,
    biloxi: SocketAddr,
    tamper: Option<Tamper>,
    out: mpsc::UnboundedSender<Tapped>,
) {
    let mut buf = vec![0u8; 65_536];
    let mut atlanta: Option<SocketAddr> = None;
    loop {
        let Ok((n, from)) = sock.recv_from(&mut buf).await else {
            continue;
        };
        let original = Bytes::copy_from_slice(&buf[..n]);
        let to_biloxi = from != biloxi;
        let to = if to_biloxi {
            atlanta = Some(from);
            biloxi
        } else {
            match atlanta {
                Some(a) => a,
                None => continue,
            }
        };
        let forwarded = tamper
            .as_ref()
            .and_then(|t| t(to_biloxi, &original))
            .unwrap_or_else(|| original.clone());
        let _ = sock.send_to(&forwarded, to).await;
        let _ = out.send(Tapped {
            to_biloxi,
            original,
            forwarded,
        });
    }
}
