//! The driver: sockets, connections, the one timer, and persistence around one
//! [`Endpoint`] (RFC 3261 §18 transport layer; the engine makes every protocol decision).
//!
//! Shape:
//! - one task per UDP socket and per TCP/TLS listener feeds received messages into an mpsc
//!   channel;
//! - one event-loop task owns the [`Endpoint`]: it takes input from the channel, calls
//!   `handle_receive` / `handle_timeout` with the monotonic and wall clocks (this crate is the
//!   only one that reads them), drains `poll_output` and sleeps until the next `Timeout`;
//! - one task per TCP/TLS connection reads (cutting the stream into messages, RFC 3261 §18.3),
//!   writes what the event loop queued for it, answers RFC 5626 §4.4.1 CRLFCRLF keep-alive
//!   pings with a CRLF pong and closes after an idle period (`stream.rs`);
//! - one task writes binding changes to the SQLite store off the event loop, write-behind:
//!   coalesced per AoR and written every `registrar.persist_interval_ms`, and on shutdown;
//! - one task polls the store's users version every [`USERS_POLL`] (on a blocking thread)
//!   and hands changed accounts to the event loop, so `vouch user add` takes effect
//!   without a restart.
//!
//! With `[auth] enabled` (the default) the engine gets the digest policy
//! ([`vouch_proto::auth::DigestPolicy`]) with the nonce secret from its file (made on first
//! run) and a seed from the operating system's generator, and the store's users as its
//! accounts.
//!
//! With identity material ([`Server::start_with_identity`]), `[identity] sign` and digest
//! authentication on, the engine also gets the RFC 4474 authentication service, and the
//! certificate is served over HTTP ([`crate::http`]) at the Identity-Info URL.
//!
//! With `[verification] enabled` the engine gets the RFC 4474 verification service for
//! inbound requests ([`crate::identity::verification_setup`]). When it asks for an
//! Identity-Info certificate (`Event::FetchCertificate`), the event loop spawns the fetch
//! ([`CertFetcher`]) as a task and goes on with other messages; the task sends the result back
//! through a channel and the event loop hands it to `Endpoint::handle_certificate`. A slow
//! or silent certificate server delays only the requests waiting for its certificate.
//!
//! With `[metrics] listen`, the event loop counts every message in and out and the events it
//! handles ([`crate::metrics`]), served over HTTP at `/metrics` on that listener; a scrape
//! asks the event loop for the engine's occupancy through a channel.
//! With `[dns] enabled` (the default) the engine resolves next hops named by host names
//! through the driver: on `Event::Resolve` the event loop spawns the RFC 3263 lookup
//! ([`Locator`], hickory-resolver) as a task, which sends the ordered addresses back through
//! a channel for `Endpoint::handle_resolved`, as certificate fetches do.
//!
//! Outgoing messages on TCP/TLS go over the flow they name when it is open, otherwise over an
//! open connection to the same address, otherwise over a new connection (§18.1.1, §18.2.2).
//! A new connection that cannot be opened is reported to the engine
//! (`Endpoint::handle_unreachable`, §18.4), which fails the requests sent there.
//! UDP responses go to the source address and port of the request — RFC 3581 `rport`
//! behaviour is the engine's: it chooses the address; the driver sends from the listening
//! socket, which is what makes symmetric response routing work through NATs.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use rustls::pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use vouch_auth::client_cert::ClientIdentity;
use vouch_msg::Limits;
use vouch_proto::{CertificateChain, FetchId, VerificationService};

use crate::accept::{accept_limited, tls_handshake};
use crate::auth::{self, AuthSetupError};
use crate::cert_fetch::CertFetcher;
use crate::config::{Config, transport_name};
use crate::dns::{DnsSetupError, Locator};
use crate::engine::{
    Binding, Endpoint, EndpointConfig, Event, FlowId, LogLevel, Output, Peer, ResolveId,
    TransportKind,
};
use crate::flows::{CertChain, FlowInfo, Flows};
use crate::identity::{self, IdentityMaterial, IdentitySetupError};
use crate::metrics::{Metrics, OccupancyRequest};
use crate::store::{self, Store, StoreError};
use crate::stream::{self, Closed, ConnectError, KeepAlive, Timeouts};
use crate::tls::TlsContext;

/// Errors starting the server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The store could not be opened or read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A listening socket could not be bound.
    #[error("cannot listen on {listen}: {source}")]
    Bind {
        /// The listen address as configured.
        listen: String,
        /// Why.
        source: io::Error,
    },
    /// A TLS listener is configured but no TLS material was given.
    #[error("a TLS listener ({0}) is configured but no certificate was loaded")]
    NoTls(String),
    /// `[identity] https_listen` is set but no TLS material was given.
    #[error(
        "identity.https_listen ({0}) is set but no TLS certificate was loaded (the HTTPS certificate endpoint serves with the [tls] cert and key, or the development certificates)"
    )]
    NoHttpsTls(String),
    /// Digest authentication could not be set up (nonce secret, randomness, configuration).
    #[error(transparent)]
    Auth(#[from] AuthSetupError),
    /// The RFC 4474 verification service could not be set up (trust anchors, fetcher).
    #[error(transparent)]
    Verification(#[from] IdentitySetupError),
    /// The DNS resolver could not be set up (`[dns]`, `/etc/resolv.conf`).
    #[error(transparent)]
    Dns(#[from] DnsSetupError),
}

/// How often the store is asked whether its users changed.
pub const USERS_POLL: Duration = Duration::from_secs(2);

/// What the socket and connection tasks hand the event loop, in order.
#[derive(Debug)]
enum Input {
    /// One received message.
    Message { from: Peer, bytes: Bytes },
    /// The user a TLS connection's client certificate authenticated, sent before the first
    /// message read from it; `None` once it closed.
    FlowIdentity {
        flow: FlowId,
        identity: Option<Arc<ClientIdentity>>,
    },
    /// A connection to this next hop could not be opened (RFC 3261 §18.4): the requests
    /// waiting on it fail now rather than at Timer B/F (and RFC 3263 moves on).
    Unreachable { to: Peer },
}

/// A binding change on its way to the store.
#[derive(Debug)]
struct StoreWrite {
    aor: String,
    bindings: Vec<store::Binding>,
}

/// Everything the socket and connection tasks share.
#[derive(Debug)]
struct Shared {
    flows: Flows,
    input: mpsc::Sender<Input>,
    limits: Limits,
    idle: Duration,
    timeouts: Timeouts,
    send_queue: usize,
    tls: Option<TlsContext>,
    permits: Arc<Semaphore>,
    cancel: CancellationToken,
    /// UDP sockets with their bound address (to pick one of the destination's family).
    udp: Vec<(SocketAddr, Arc<UdpSocket>)>,
}

/// A running server. Dropping it without [`Server::shutdown`] leaves its tasks running until
/// the runtime stops.
#[derive(Debug)]
pub struct Server {
    local: Vec<(TransportKind, SocketAddr)>,
    flows: Flows,
    cancel: CancellationToken,
    listeners: Vec<JoinHandle<()>>,
    /// `None` once [`Server::engine_failure`] has seen it end.
    event_loop: Option<JoinHandle<()>>,
    store_writer: JoinHandle<()>,
    users_watcher: JoinHandle<()>,
    restored: usize,
    /// The certificate endpoints (HTTP, HTTPS), when serving.
    http: Vec<JoinHandle<()>>,
    http_addr: Option<SocketAddr>,
    https_addr: Option<SocketAddr>,
    metrics_addr: Option<SocketAddr>,
    /// The Identity-Info URL, when signing.
    cert_url: Option<String>,
}

/// Unix time in seconds, for binding expiry (which must survive restarts, so it is wall time).
pub fn wall_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A seed for the engine's RNG (branches, tags) from the operating system's generator, so
/// that two runs do not produce the same branch and tag sequence.
fn random_seed() -> u64 {
    auth::random_seed().unwrap_or_else(|_| {
        // Not reachable with aws-lc-rs; branches and tags need uniqueness, not secrecy, so
        // fall back to the clock rather than fail to start. (Nonces never take this path:
        // the digest policy refuses to start without the generator.)
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        (t as u64) ^ u64::from(std::process::id()).rotate_left(32)
    })
}

impl Server {
    /// Opens the store, binds every listener, restores the stored bindings and starts the
    /// tasks. `tls` is needed when a TLS listener is configured, and for outgoing TLS. No
    /// RFC 4474 signing: see [`Server::start_with_identity`].
    pub async fn start(config: &Config, tls: Option<TlsContext>) -> Result<Server, ServerError> {
        Self::start_with_identity(config, tls, None).await
    }

    /// [`Server::start`], and with `identity`, `[identity] sign` and `[auth] enabled`, signs
    /// the requests digest authentication admitted (RFC 4474 authentication service) and
    /// serves the certificate on `[identity] http_listen` (unless `""`) and, with `tls`, on
    /// `[identity] https_listen` (unless `""`; set without `tls` it is an error).
    pub async fn start_with_identity(
        config: &Config,
        tls: Option<TlsContext>,
        identity: Option<IdentityMaterial>,
    ) -> Result<Server, ServerError> {
        let mut store = Store::open(&config.data_dir)?;
        let cancel = CancellationToken::new();
        let (input_tx, input_rx) = mpsc::channel::<Input>(8192);

        let mut udp = Vec::new();
        let mut tcp = Vec::new();
        let mut local = Vec::new();
        for l in &config.listen {
            let bind_err = |source| ServerError::Bind {
                listen: l.to_string(),
                source,
            };
            match l.transport {
                TransportKind::Udp => {
                    let s = bind_udp(l.addr).map_err(bind_err)?;
                    let a = s.local_addr().map_err(bind_err)?;
                    local.push((TransportKind::Udp, a));
                    udp.push((a, Arc::new(s)));
                }
                TransportKind::Tcp | TransportKind::Tls => {
                    if l.transport == TransportKind::Tls && tls.is_none() {
                        return Err(ServerError::NoTls(l.to_string()));
                    }
                    let s = TcpListener::bind(l.addr).await.map_err(bind_err)?;
                    let a = s.local_addr().map_err(bind_err)?;
                    local.push((l.transport, a));
                    tcp.push((l.transport, s));
                }
            }
        }

        let locator = match config.dns.enabled.then(|| Locator::new(&config.dns)) {
            None => None,
            Some(Ok(locator)) => Some(locator),
            // No resolv.conf (a bare container): run as before DNS rather than not at all.
            Some(Err(e)) if config.dns.nameservers.is_empty() => {
                warn!(error = %e, "no DNS: host names not in [hosts] get 502");
                None
            }
            Some(Err(e)) => return Err(e.into()),
        };
        let mut endpoint = Endpoint::new(EndpointConfig {
            domains: config.domains.clone(),
            local: local.clone(),
            advertised_host: config.advertised_host.clone(),
            static_hosts: config
                .hosts
                .iter()
                .map(|(name, addr)| (name.clone(), *addr))
                .collect(),
            min_expires: config.registrar.min_expires,
            max_expires: config.registrar.max_expires,
            default_expires: config.registrar.default_expires,
            transaction: config.transaction_config(),
            limits: config.limits.into(),
            seed: random_seed(),
            dns: locator.is_some(),
            max_dns_targets: config.dns.max_targets,
            max_pending_resolutions: config.dns.max_pending,
        });
        let users_version = store.users_version()?;
        let users = store.users()?;
        for u in &users {
            endpoint.provision_user(&u.aor);
        }
        if config.auth.enabled {
            let secret_path = config.auth.secret_path(&config.data_dir);
            let (policy, created) = auth::policy(&config.auth, &config.data_dir)?;
            if created {
                info!(file = %secret_path.display(), "generated a new nonce secret");
            } else if auth::readable_by_others(&secret_path) {
                warn!(file = %secret_path.display(), "the nonce secret is readable by other users (chmod 600 it)");
            }
            endpoint.set_policy(Box::new(policy));
            endpoint.set_users(auth::credentials(&users));
            let algorithms = config.auth.algorithms.join(", ");
            info!(users = users.len(), %algorithms, "digest authentication on");
            if users.is_empty() {
                warn!(
                    "digest authentication is on but the store has no users: add them with `vouch user add`"
                );
            }
        } else {
            warn!(
                "digest authentication is off ([auth] enabled = false): anyone may register any AoR and call through this server"
            );
        }
        let mut http_listener = None;
        let mut https_listener = None;
        let mut cert_url = None;
        let mut endpoint_material = None;
        match identity {
            Some(_) if !config.identity.sign => {}
            Some(_) if !config.auth.enabled => warn!(
                "identity signing needs digest authentication ([auth] enabled = false): requests are not signed"
            ),
            Some(material) => {
                if let Some(addr) = config.identity.http_addr() {
                    let bind_err = |source| ServerError::Bind {
                        listen: format!("http:{addr}"),
                        source,
                    };
                    let l = crate::http::bind(addr).await.map_err(bind_err)?;
                    let bound = l.local_addr().map_err(bind_err)?;
                    http_listener = Some((l, bound));
                }
                if let Some(addr) = config.identity.https_addr() {
                    let Some(tls) = &tls else {
                        return Err(ServerError::NoHttpsTls(addr.to_string()));
                    };
                    let bind_err = |source| ServerError::Bind {
                        listen: format!("https:{addr}"),
                        source,
                    };
                    let l = crate::http::bind(addr).await.map_err(bind_err)?;
                    let bound = l.local_addr().map_err(bind_err)?;
                    https_listener = Some((l, bound, tls.https.clone()));
                }
                // An explicit cert_url wins; else the HTTPS endpoint when on, else HTTP.
                let url = match (&config.identity.cert_url, &https_listener, &http_listener) {
                    (Some(u), _, _) => u.clone(),
                    (None, Some((_, bound, _)), _) => {
                        identity::default_https_cert_url(config, *bound)
                    }
                    (None, None, Some((_, bound))) => identity::default_cert_url(config, *bound),
                    // Config::validate requires cert_url when both endpoints are off.
                    (None, None, None) => String::new(),
                };
                if https_listener.is_some() || http_listener.is_some() {
                    endpoint_material = Some(material.clone());
                }
                endpoint.set_authentication_service(Some(identity::authentication_service(
                    &config.identity,
                    &material,
                    &url,
                    wall_unix(),
                )));
                info!(cert_url = %url, alg = config.identity.alg.token(), "RFC 4474 identity signing on");
                cert_url = Some(url);
            }
            None => {}
        }
        let metrics_listener = match config.metrics.addr() {
            Some(addr) => {
                let bind_err = |source| ServerError::Bind {
                    listen: format!("metrics http:{addr}"),
                    source,
                };
                let l = crate::http::bind(addr).await.map_err(bind_err)?;
                let bound = l.local_addr().map_err(bind_err)?;
                Some((l, bound))
            }
            None => None,
        };
        let certificates = if config.verification.enabled {
            let setup = identity::verification_setup(config)?;
            info!(
                anchors = setup.anchors,
                required_for = ?setup.policy.require_identity,
                "RFC 4474 verification of inbound requests on"
            );
            endpoint.set_verification_service(Some(VerificationService::new(
                setup.verifier,
                setup.policy,
            )));
            Some(setup.fetcher)
        } else {
            None
        };
        let stored = store.load_bindings(wall_unix())?;
        let mut restored = Vec::with_capacity(stored.len());
        for b in stored {
            match from_store(&b) {
                Some(b) => restored.push(b),
                None => {
                    warn!(aor = %b.aor, source = %b.source, "stored binding with an unreadable source skipped")
                }
            }
        }
        let n_restored = restored.len();
        if n_restored > 0 {
            info!(
                bindings = n_restored,
                "registrations restored from the store"
            );
        }
        endpoint.restore_bindings(restored);

        let shared = Arc::new(Shared {
            flows: Flows::default(),
            input: input_tx,
            limits: config.limits.into(),
            idle: Duration::from_secs(config.transport.idle_timeout_secs),
            timeouts: Timeouts::new(Duration::from_secs(config.transport.connect_timeout_secs)),
            send_queue: config.transport.send_queue,
            tls,
            permits: Arc::new(Semaphore::new(config.transport.max_connections)),
            cancel: cancel.clone(),
            udp,
        });

        let (store_tx, store_rx) = mpsc::unbounded_channel();
        let store_writer = tokio::spawn(store_writer(
            store,
            store_rx,
            config.registrar.persist_interval(),
        ));
        let mut listeners = Vec::new();
        for (_, s) in &shared.udp {
            listeners.push(tokio::spawn(udp_loop(shared.clone(), s.clone())));
        }
        for (kind, l) in tcp {
            listeners.push(tokio::spawn(accept_loop(shared.clone(), l, kind)));
        }
        let metrics = metrics_listener.as_ref().map(|_| Metrics::new());
        let (occupancy_tx, occupancy_rx) = mpsc::channel(16);
        let scrape = metrics
            .as_ref()
            .map(|m| m.scrape(occupancy_tx, shared.flows.clone()));
        let (users_tx, users_rx) = mpsc::channel(4);
        let users_watcher = tokio::spawn(users_watcher(
            config.data_dir.clone(),
            users_version,
            users_tx,
            cancel.clone(),
        ));
        let event_loop = tokio::spawn(event_loop(
            endpoint,
            input_rx,
            users_rx,
            shared.clone(),
            store_tx,
            Services {
                fetcher: certificates,
                locator,
                metrics: metrics.map(|m| (m, occupancy_rx)),
            },
        ));
        for (kind, addr) in &local {
            info!(listen = %format!("{}:{addr}", transport_name(*kind)), "listening");
        }
        let mut http = Vec::new();
        let mut http_addr = None;
        let mut https_addr = None;
        if let (Some(material), Some(url)) = (endpoint_material, &cert_url) {
            let path = crate::config::url_path(url).unwrap_or("/identity.cer");
            // One router for both endpoints.
            let app = crate::http::router(path, material.cert_der, material.cert_pem);
            let limits = crate::http::EndpointLimits {
                handshake_timeout: Duration::from_secs(config.transport.connect_timeout_secs),
                max_connections: config.identity.endpoint_max_connections,
                idle_timeout: Duration::from_secs(config.identity.endpoint_idle_timeout_secs),
            };
            if let Some((l, bound)) = http_listener {
                let bind_err = |source| ServerError::Bind {
                    listen: format!("http:{bound}"),
                    source,
                };
                let what = "certificate endpoint (HTTP)";
                http.push(
                    crate::http::serve(l, app.clone(), limits, cancel.clone(), what)
                        .map_err(bind_err)?,
                );
                http_addr = Some(bound);
                info!(listen = %format!("http:{bound}"), path, "serving the identity certificate");
            }
            if let Some((l, bound, server_tls)) = https_listener {
                let bind_err = |source| ServerError::Bind {
                    listen: format!("https:{bound}"),
                    source,
                };
                http.push(
                    crate::http::serve_tls(l, app, server_tls, limits, cancel.clone())
                        .map_err(bind_err)?,
                );
                https_addr = Some(bound);
                info!(listen = %format!("https:{bound}"), path, "serving the identity certificate");
            }
        }
        let mut metrics_addr = None;
        if let (Some((l, bound)), Some(scrape)) = (metrics_listener, scrape) {
            let bind_err = |source| ServerError::Bind {
                listen: format!("metrics http:{bound}"),
                source,
            };
            let app = crate::metrics::router(scrape);
            let limits = crate::http::EndpointLimits::default();
            let what = "metrics endpoint";
            http.push(crate::http::serve(l, app, limits, cancel.clone(), what).map_err(bind_err)?);
            metrics_addr = Some(bound);
            info!(listen = %format!("http:{bound}"), path = crate::metrics::PATH, "serving metrics");
        }
        Ok(Server {
            local,
            flows: shared.flows.clone(),
            cancel,
            listeners,
            event_loop: Some(event_loop),
            store_writer,
            users_watcher,
            restored: n_restored,
            http,
            http_addr,
            https_addr,
            metrics_addr,
            cert_url,
        })
    }

    /// The bound listening addresses (with the actual ports when 0 was configured).
    pub fn local_addrs(&self) -> &[(TransportKind, SocketAddr)] {
        &self.local
    }

    /// The connection table: which flows are open and the certificates their peers presented.
    pub fn flows(&self) -> Flows {
        self.flows.clone()
    }

    /// The Identity-Info URL requests are signed with, when signing.
    pub fn identity_cert_url(&self) -> Option<&str> {
        self.cert_url.as_deref()
    }

    /// The bound address of the certificate's HTTP endpoint, when serving.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// The bound address of the certificate's HTTPS endpoint, when serving.
    pub fn https_addr(&self) -> Option<SocketAddr> {
        self.https_addr
    }

    /// The bound address of the metrics endpoint, when serving (`[metrics] listen`).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// How many bindings were restored from the store at start.
    pub fn restored_bindings(&self) -> usize {
        self.restored
    }

    /// Resolves only if the event loop ends by itself, which happens only when the engine
    /// panicked; the server then no longer handles messages and should be shut down (and
    /// restarted by its supervisor) rather than keep its sockets open serving nothing.
    /// Returns the panic message.
    pub async fn engine_failure(&mut self) -> String {
        let Some(h) = self.event_loop.as_mut() else {
            return std::future::pending().await;
        };
        let r = h.await;
        self.event_loop = None;
        match r {
            Ok(()) => "the event loop ended".to_string(),
            Err(e) if e.is_panic() => {
                let p = e.into_panic();
                p.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "the engine panicked".to_string())
            }
            Err(e) => e.to_string(),
        }
    }

    /// Stops accepting, stops the event loop, closes connections and waits until every
    /// pending binding change is written to the store.
    pub async fn shutdown(self) {
        self.cancel.cancel();
        for l in self.listeners {
            let _ = l.await;
        }
        // The event loop owns the store sender: once it ends, the writer drains and ends.
        if let Some(h) = self.event_loop
            && let Err(e) = h.await
        {
            warn!(error = %e, "event loop ended abnormally");
        }
        if let Err(e) = self.store_writer.await {
            warn!(error = %e, "store writer ended abnormally");
        }
        if let Err(e) = self.users_watcher.await {
            warn!(error = %e, "users watcher ended abnormally");
        }
        for h in self.http {
            // Graceful: requests in progress finish; a client holding a connection open
            // does not keep the server from stopping.
            if tokio::time::timeout(Duration::from_secs(5), h)
                .await
                .is_err()
            {
                warn!("HTTP(S) endpoint did not stop within 5 s");
            }
        }
    }
}

fn to_store(b: &Binding) -> store::Binding {
    store::Binding {
        aor: b.aor.clone(),
        contact: b.contact.clone(),
        expires_at: b.expires_at,
        q: b.q,
        call_id: b.call_id.clone(),
        cseq: b.cseq,
        source: b.source.to_string(),
    }
}

fn from_store(b: &store::Binding) -> Option<Binding> {
    Some(Binding {
        aor: b.aor.clone(),
        contact: b.contact.clone(),
        expires_at: b.expires_at,
        q: b.q,
        call_id: b.call_id.clone(),
        cseq: b.cseq,
        source: b.source.parse::<Peer>().ok()?,
    })
}

/// Binding changes not yet written: the newest set per AoR (each REGISTER's set replaces the
/// AoR's previous one, so older sets need not be written at all).
#[derive(Debug, Default)]
struct PendingBindings {
    latest: std::collections::HashMap<String, Vec<store::Binding>>,
}

impl PendingBindings {
    fn put(&mut self, w: StoreWrite) {
        self.latest.insert(w.aor, w.bindings);
    }

    fn is_empty(&self) -> bool {
        self.latest.is_empty()
    }

    fn take(&mut self) -> std::collections::HashMap<String, Vec<store::Binding>> {
        std::mem::take(&mut self.latest)
    }
}

/// Write-behind of binding changes (what Kamailio's usrloc calls `db_mode = 2`): changes are
/// coalesced per AoR and written in one transaction at most `interval` after the first of
/// them, off the async threads, and everything pending is written when the event loop ends
/// (the store sender is dropped), so a clean shutdown loses nothing. One transaction per
/// REGISTER (with its hand-off to a blocking thread) took a quarter of the proxy's CPU under
/// REGISTER load; the price is the crash window: a crash loses up to `interval` of changes
/// (see `registrar.persist_interval_ms`).
async fn store_writer(
    store: Store,
    mut rx: mpsc::UnboundedReceiver<StoreWrite>,
    interval: Duration,
) {
    let mut store = Some(store);
    let mut pending = PendingBindings::default();
    let mut flush_at: Option<tokio::time::Instant> = None;
    let mut open = true;
    while open || !pending.is_empty() {
        if open {
            tokio::select! {
                w = rx.recv() => match w {
                    Some(w) => {
                        pending.put(w);
                        while let Ok(w) = rx.try_recv() {
                            pending.put(w);
                        }
                        if flush_at.is_none() {
                            flush_at = Some(tokio::time::Instant::now() + interval);
                        }
                    }
                    // The event loop ended (shutdown, or an engine panic): write what is left.
                    None => open = false,
                },
                _ = sleep_until(flush_at) => {}
            }
        }
        // Checked after either branch, so a steady stream of changes cannot postpone a write.
        let due = !open || flush_at.is_some_and(|t| t <= tokio::time::Instant::now());
        if !due || pending.is_empty() {
            continue;
        }
        flush_at = None;
        let latest = pending.take();
        let Some(mut s) = store.take() else { break };
        let done = tokio::task::spawn_blocking(move || {
            let changes: Vec<(&str, &[_])> = latest
                .iter()
                .map(|(aor, bindings)| (aor.as_str(), bindings.as_slice()))
                .collect();
            match s.save_bindings_of(&changes) {
                Ok(()) => debug!(aors = changes.len(), "bindings saved"),
                Err(e) => warn!(aors = changes.len(), error = %e, "bindings not saved"),
            }
            s
        })
        .await;
        match done {
            Ok(s) => store = Some(s),
            Err(e) => {
                warn!(error = %e, "store writer failed; binding changes are no longer saved");
                break;
            }
        }
    }
    debug!("store writer done");
}

/// Every [`USERS_POLL`], asks the store (on a blocking thread, over its own connection)
/// whether its users changed, and when they did sends them all to the event loop. The
/// store's `users_version` is bumped by triggers on any change, by any process.
async fn users_watcher(
    data_dir: PathBuf,
    mut version: i64,
    tx: mpsc::Sender<Vec<store::User>>,
    cancel: CancellationToken,
) {
    let mut store: Option<Store> = None;
    let mut failing = false;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(USERS_POLL) => {}
        }
        let dir = data_dir.clone();
        let s = store.take();
        let polled = tokio::task::spawn_blocking(move || {
            let s = match s {
                Some(s) => s,
                None => Store::open(&dir)?,
            };
            let v = s.users_version()?;
            let users = if v == version { None } else { Some(s.users()?) };
            Ok::<_, StoreError>((s, v, users))
        })
        .await;
        match polled {
            Ok(Ok((s, v, users))) => {
                store = Some(s);
                if failing {
                    info!("the store's users can be read again");
                    failing = false;
                }
                if let Some(users) = users {
                    version = v;
                    if tx.send(users).await.is_err() {
                        break;
                    }
                }
            }
            Ok(Err(e)) => {
                if !failing {
                    warn!(error = %e, "cannot read the store's users; keeping the last ones");
                    failing = true;
                }
            }
            Err(e) => {
                warn!(error = %e, "users watcher failed; user changes need a restart");
                break;
            }
        }
    }
    debug!("users watcher done");
}

/// Sleeps until `at`, or forever when there is no timer.
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Most inputs handled in a row before timers are looked at again.
const BATCH: usize = 64;

/// A certificate fetch's result on its way back to the event loop.
type FetchResult = (FetchId, Result<CertificateChain, String>);

/// A lookup's result on its way back to the event loop.
type ResolveResult = (ResolveId, Result<Vec<Peer>, String>);

/// Where the event loop sends what the engine asks for besides transmissions.
struct Sinks {
    /// The RFC 3263 locator for `Event::Resolve` and where its tasks report (with `[dns]`
    /// on).
    dns: Option<(Locator, mpsc::UnboundedSender<ResolveResult>)>,
    store_tx: mpsc::UnboundedSender<StoreWrite>,
    /// The fetcher for `Event::FetchCertificate` and where its tasks report (with
    /// `[verification]` on).
    certificates: Option<(CertFetcher, mpsc::UnboundedSender<FetchResult>)>,
    /// With `[metrics] listen`: what is counted.
    metrics: Option<Metrics>,
}

/// What the event loop drives besides the engine, each when configured.
struct Services {
    /// Certificate fetches (`[verification]`).
    fetcher: Option<CertFetcher>,
    /// RFC 3263 lookups (`[dns]`).
    locator: Option<Locator>,
    /// Counting, and the scrapes' requests for the engine's occupancy (`[metrics]`).
    metrics: Option<(Metrics, mpsc::Receiver<OccupancyRequest>)>,
}

async fn event_loop(
    mut ep: Endpoint,
    mut rx: mpsc::Receiver<Input>,
    mut users_rx: mpsc::Receiver<Vec<store::User>>,
    shared: Arc<Shared>,
    store_tx: mpsc::UnboundedSender<StoreWrite>,
    services: Services,
) {
    let Services {
        fetcher,
        locator,
        metrics,
    } = services;
    let (metrics, mut occupancy) = metrics.unzip();
    // Unbounded: one result per fetch or lookup the engine asked for, and the engine bounds
    // those.
    let (fetched_tx, mut fetched_rx) = mpsc::unbounded_channel::<FetchResult>();
    let (resolved_tx, mut resolved_rx) = mpsc::unbounded_channel::<ResolveResult>();
    let sinks = Sinks {
        dns: locator.map(|l| (l, resolved_tx)),
        store_tx,
        certificates: fetcher.map(|f| (f, fetched_tx)),
        metrics,
    };
    let mut deadline = drain(&mut ep, &shared, &sinks);
    // One timer, re-armed only when the engine's deadline moves. A new `Sleep` in every
    // select registered and dropped a timer-wheel entry per message, and each one earlier
    // than the runtime's own wake-up also woke it through its eventfd.
    let timer = tokio::time::sleep_until(tokio::time::Instant::now());
    tokio::pin!(timer);
    let mut armed: Option<tokio::time::Instant> = None;
    loop {
        // Under a steady stream of input the select below would always find a message ready;
        // look at the timer first so retransmissions and timeouts are never starved.
        if deadline.is_some_and(|d| d <= tokio::time::Instant::now()) {
            ep.handle_timeout(Instant::now(), wall_unix());
            deadline = drain(&mut ep, &shared, &sinks);
        }
        if deadline != armed {
            if let Some(d) = deadline {
                timer.as_mut().reset(d);
            }
            armed = deadline;
        }
        tokio::select! {
            biased;
            _ = shared.cancel.cancelled() => break,
            // Before messages: a scrape is rare and cheap, and wanted most under load.
            Some(request) = crate::metrics::requested(&mut occupancy) => {
                crate::metrics::answer(&ep, request);
            }
            msg = rx.recv() => {
                let Some(mut input) = msg else { break };
                for _ in 0..BATCH {
                    match input {
                        Input::Message { from, bytes } => {
                            if let Some(m) = &sinks.metrics {
                                m.received(&bytes);
                            }
                            ep.handle_receive(Instant::now(), wall_unix(), from, bytes);
                        }
                        Input::FlowIdentity { flow, identity } => {
                            ep.handle_flow_client_identity(flow, identity);
                        }
                        Input::Unreachable { to } => {
                            ep.handle_unreachable(Instant::now(), wall_unix(), &to);
                        }
                    }
                    deadline = drain(&mut ep, &shared, &sinks);
                    match rx.try_recv() {
                        Ok(next) => input = next,
                        Err(_) => break,
                    }
                }
            }
            () = &mut timer, if armed.is_some() => {
                // Fired: re-armed (reset) even if the next deadline is the same instant.
                armed = None;
                ep.handle_timeout(Instant::now(), wall_unix());
                deadline = drain(&mut ep, &shared, &sinks);
            }
            Some((id, result)) = fetched_rx.recv() => {
                if let Some(m) = &sinks.metrics {
                    m.certificate_fetched(result.is_ok());
                }
                ep.handle_certificate(Instant::now(), wall_unix(), id, result);
                deadline = drain(&mut ep, &shared, &sinks);
            }
            Some((id, result)) = resolved_rx.recv() => {
                if let Some(m) = &sinks.metrics {
                    m.resolved(result.as_ref().map_or(0, Vec::len));
                }
                ep.handle_resolved(Instant::now(), wall_unix(), id, result);
                deadline = drain(&mut ep, &shared, &sinks);
            }
            Some(users) = users_rx.recv() => {
                for u in &users {
                    ep.provision_user(&u.aor);
                }
                info!(users = users.len(), "users reloaded from the store");
                ep.set_users(auth::credentials(&users));
            }
        }
    }
    debug!("event loop done");
}

/// Carries out every output until the endpoint asks to be woken; returns when.
fn drain(ep: &mut Endpoint, shared: &Arc<Shared>, sinks: &Sinks) -> Option<tokio::time::Instant> {
    loop {
        match ep.poll_output() {
            Output::Transmit { to, bytes } => {
                if let Some(m) = &sinks.metrics {
                    m.sent(&bytes);
                }
                transmit(shared, to, bytes)
            }
            Output::Event(e) => on_event(e, sinks),
            Output::Timeout(at) => return at.map(tokio::time::Instant::from_std),
        }
    }
}

fn on_event(e: Event, sinks: &Sinks) {
    if let Some(m) = &sinks.metrics {
        m.event(&e);
    }
    match e {
        Event::BindingsChanged { aor, bindings } => {
            // Debug, not info: every refresh changes the bindings (expiry, CSeq), so at info
            // a busy registrar would write one log line per REGISTER.
            debug!(%aor, bindings = bindings.len(), "bindings changed");
            let bindings = bindings.iter().map(to_store).collect();
            if sinks.store_tx.send(StoreWrite { aor, bindings }).is_err() {
                warn!("store writer gone; binding change not saved");
            }
        }
        // A flood of garbage must not become a flood of log lines: debug level.
        Event::MessageRejected {
            from,
            status,
            reason,
        } => debug!(%from, status, %reason, "message rejected"),
        Event::Forwarded {
            method,
            call_id,
            to,
        } => debug!(%method, %call_id, %to, "forwarded"),
        Event::FetchCertificate { id, url } => match &sinks.certificates {
            Some((fetcher, results)) => {
                debug!(%url, fetch = id.0, "fetching an Identity-Info certificate");
                let (fetcher, results) = (fetcher.clone(), results.clone());
                tokio::spawn(async move {
                    let result = fetcher
                        .fetch(&url)
                        .await
                        .map(|chain| CertificateChain {
                            end_entity: chain.end_entity.clone(),
                            intermediates: chain.intermediates.clone(),
                        })
                        .map_err(|e| e.to_string());
                    if let Err(e) = &result {
                        info!(%url, error = %e, "Identity-Info certificate not fetched");
                    }
                    // Fails only when the event loop is gone, i.e. the server stopped.
                    let _ = results.send((id, result));
                });
            }
            // Only a verification service asks, and it is installed with its fetcher.
            None => warn!(%url, "certificate requested but no fetcher is configured"),
        },
        Event::Resolve {
            id,
            host,
            port,
            transport,
            secure,
        } => match &sinks.dns {
            Some((locator, results)) => {
                debug!(%host, lookup = id.0, "locating a SIP server (RFC 3263)");
                let (locator, results) = (locator.clone(), results.clone());
                tokio::spawn(async move {
                    let result = locator.locate(&host, port, transport, secure).await;
                    match &result {
                        Ok(peers) => debug!(%host, ?peers, "SIP server located"),
                        Err(e) => info!(%host, error = %e, "SIP server not located"),
                    }
                    // Fails only when the event loop is gone, i.e. the server stopped.
                    let _ = results.send((id, result));
                });
            }
            // The engine asks only when `[dns]` is on, and then the locator is installed.
            None => warn!(%host, "DNS lookup requested but DNS is off"),
        },
        Event::Log { level, message } => match level {
            LogLevel::Debug => debug!("{message}"),
            LogLevel::Info => info!("{message}"),
            LogLevel::Warn => warn!("{message}"),
        },
        other => debug!(event = ?other, "engine event"),
    }
}

fn transmit(shared: &Arc<Shared>, to: Peer, bytes: Bytes) {
    match to.transport {
        TransportKind::Udp => send_udp(shared, to.addr, bytes),
        TransportKind::Tcp | TransportKind::Tls => send_stream(shared, to, bytes),
    }
}

fn send_udp(shared: &Arc<Shared>, addr: SocketAddr, bytes: Bytes) {
    let Some((_, sock)) = shared
        .udp
        .iter()
        .find(|(local, _)| local.is_ipv4() == addr.is_ipv4())
        .or_else(|| shared.udp.first())
    else {
        debug!(%addr, "no UDP socket to send from");
        return;
    };
    match sock.try_send_to(&bytes, addr) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            // The send buffer is full: wait for room in a task rather than in the event loop.
            let sock = sock.clone();
            tokio::spawn(async move {
                if let Err(e) = sock.send_to(&bytes, addr).await {
                    debug!(%addr, error = %e, "UDP send failed");
                }
            });
        }
        Err(e) => debug!(%addr, error = %e, "UDP send failed"),
    }
}

fn send_stream(shared: &Arc<Shared>, to: Peer, bytes: Bytes) {
    match shared.flows.sender(to.transport, to.addr, to.flow) {
        Some((flow, tx)) => match tx.try_send(bytes) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                warn!(flow = flow.0, %to, "send queue full; message dropped")
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                debug!(flow = flow.0, %to, "connection closing; message dropped")
            }
        },
        None => connect(shared, to.transport, to.addr, bytes),
    }
}

/// Opens a connection to `addr`, queueing `first` to be written once it is up. The flow is
/// registered at once, so messages sent while connecting queue behind `first` instead of
/// opening more connections.
fn connect(shared: &Arc<Shared>, kind: TransportKind, addr: SocketAddr, first: Bytes) {
    let tls = match (kind, &shared.tls) {
        (TransportKind::Tls, None) => {
            warn!(%addr, "no TLS configuration: cannot open a TLS connection");
            unreachable(shared, kind, addr);
            return;
        }
        (TransportKind::Tls, Some(t)) => Some(t.client.clone()),
        _ => None,
    };
    let Ok(permit) = shared.permits.clone().try_acquire_owned() else {
        warn!(%addr, "connection limit reached: not connecting");
        unreachable(shared, kind, addr);
        return;
    };
    let (tx, rx) = mpsc::channel(shared.send_queue);
    // Cannot fail: the channel is new and has room for at least one message.
    let _ = tx.try_send(first);
    let flow = shared.flows.insert(
        FlowInfo {
            transport: kind,
            remote: addr,
            inbound: false,
            peer_certificates: None,
        },
        tx,
    );
    let shared = shared.clone();
    tokio::spawn(async move {
        let connected = stream::connect(None, addr, tls, shared.timeouts.connect).await;
        match connected {
            Ok(c) => {
                debug!(%addr, flow = flow.0, transport = transport_name(kind), "connected");
                if c.peer_certificates.is_some() {
                    shared
                        .flows
                        .set_peer_certificates(flow, c.peer_certificates);
                }
                run_connection(shared, c.stream, flow, kind, addr, rx, permit).await;
            }
            Err(e) => {
                if matches!(
                    e,
                    ConnectError::Handshake(_) | ConnectError::HandshakeTimeout
                ) {
                    warn!(%addr, error = %e, "TLS connection failed");
                } else {
                    info!(%addr, transport = transport_name(kind), error = %e, "connect failed");
                }
                shared.flows.remove(flow);
                let to = Peer::new(kind, addr);
                // Fails only when the event loop is gone, i.e. the server stopped.
                let _ = shared.input.send(Input::Unreachable { to }).await;
            }
        }
    });
}

/// Tells the engine, from the event loop itself, that `addr` cannot be reached over `kind`.
/// Without room in the input channel the report is dropped: the requests then fail at
/// Timer B/F as they would have anyway.
fn unreachable(shared: &Arc<Shared>, kind: TransportKind, addr: SocketAddr) {
    let to = Peer::new(kind, addr);
    if shared.input.try_send(Input::Unreachable { to }).is_err() {
        debug!(%addr, "input queue full: unreachable next hop not reported");
    }
}

/// Receive buffer asked for on UDP sockets. The kernel default (about 200 KiB) overflows in
/// the bursts of a few thousand calls per second while the event loop is busy, and a dropped
/// datagram costs a retransmission 500 ms later; the kernel caps the request at
/// net.core.rmem_max.
const UDP_BUFFER_BYTES: usize = 4 * 1024 * 1024;

/// Binds a UDP socket with large kernel buffers.
fn bind_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // Best effort: a smaller buffer still works, it only drops sooner under load.
    let _ = socket.set_recv_buffer_size(UDP_BUFFER_BYTES);
    let _ = socket.set_send_buffer_size(UDP_BUFFER_BYTES);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

/// Receives datagrams until shutdown. Each datagram is one message (RFC 3261 §18.3).
async fn udp_loop(shared: Arc<Shared>, sock: Arc<UdpSocket>) {
    // Large enough for any UDP datagram, so an oversized message reaches the engine whole
    // and is answered 513 rather than parsed truncated.
    let mut buf = vec![0u8; 65_536];
    loop {
        let r = tokio::select! {
            _ = shared.cancel.cancelled() => break,
            r = sock.recv_from(&mut buf) => r,
        };
        let (n, from) = match r {
            Ok(x) => x,
            // An ICMP port unreachable for an earlier send surfaces here on Linux; it says
            // nothing about this socket.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionReset
                ) =>
            {
                continue;
            }
            Err(e) => {
                warn!(error = %e, "UDP receive failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let data = &buf[..n];
        // CRLF keep-alives (RFC 5626 §4.4.1 over UDP, some phones) carry no message.
        if data.iter().all(|&c| c == b'\r' || c == b'\n') {
            continue;
        }
        let input = Input::Message {
            from: Peer {
                transport: TransportKind::Udp,
                addr: from,
                flow: None,
            },
            bytes: Bytes::copy_from_slice(data),
        };
        if shared.input.send(input).await.is_err() {
            break;
        }
    }
}

/// Accepts SIP connections on `listener` until the server stops, under the connection limit.
async fn accept_loop(shared: Arc<Shared>, listener: TcpListener, kind: TransportKind) {
    let acceptor = match (kind, &shared.tls) {
        (TransportKind::Tls, Some(t)) => Some(TlsAcceptor::from(t.server.clone())),
        _ => None,
    };
    let what = match kind {
        TransportKind::Tls => "SIP over TLS",
        _ => "SIP over TCP",
    };
    let (permits, cancel) = (shared.permits.clone(), shared.cancel.clone());
    accept_limited(listener, permits, cancel, what, move |tcp, addr, permit| {
        let (shared, acceptor) = (shared.clone(), acceptor.clone());
        async move {
            match acceptor {
                Some(acceptor) => serve_tls(shared, &acceptor, tcp, addr, permit).await,
                None => {
                    let (flow, rx) = register_inbound(&shared, kind, addr, None);
                    run_connection(shared, tcp, flow, kind, addr, rx, permit).await;
                }
            }
        }
    })
    .await;
}

/// Handshakes an accepted TLS connection and runs it, telling the engine first which user
/// its client certificate authenticates (if any) and, once it has closed, that it is gone.
async fn serve_tls(
    shared: Arc<Shared>,
    acceptor: &TlsAcceptor,
    tcp: TcpStream,
    addr: SocketAddr,
    permit: OwnedSemaphorePermit,
) {
    let kind = TransportKind::Tls;
    let s = match tls_handshake(acceptor, tcp, shared.timeouts.connect).await {
        Ok(s) => s,
        Err(e) => {
            info!(%addr, error = %e, "TLS handshake failed");
            return;
        }
    };
    let certs: Option<CertChain> = s.get_ref().1.peer_certificates().map(|c| c.to_vec().into());
    if let Some(c) = &certs {
        debug!(%addr, certificates = c.len(), "client certificate presented");
    }
    let identity = certs.as_deref().and_then(|c| user_of(&shared, c, addr));
    let (flow, rx) = register_inbound(&shared, kind, addr, certs);
    let authenticated = identity.is_some();
    if authenticated {
        // Same channel as the messages: the engine knows the user first.
        let input = Input::FlowIdentity { flow, identity };
        if shared.input.send(input).await.is_err() {
            shared.flows.remove(flow);
            return;
        }
    }
    run_connection(shared.clone(), s, flow, kind, addr, rx, permit).await;
    if authenticated {
        let input = Input::FlowIdentity {
            flow,
            identity: None,
        };
        let _ = shared.input.send(input).await;
    }
}

/// The user a TLS client certificate authenticates, when `[tls] user_ca` is set and the
/// chain leads there (a peer server's certificate, from `[tls] ca`, names no user).
fn user_of(
    shared: &Shared,
    chain: &[CertificateDer<'static>],
    addr: SocketAddr,
) -> Option<Arc<ClientIdentity>> {
    let users = &shared.tls.as_ref()?.users;
    if users.is_empty() {
        return None;
    }
    match users.validate(chain, wall_unix()) {
        Ok(identity) => {
            info!(%addr, subject = identity.subject(), aors = ?identity.aors(), "TLS client certificate authenticates a user");
            Some(Arc::new(identity))
        }
        Err(e) => {
            debug!(%addr, reason = %e, "TLS client certificate does not authenticate a user");
            None
        }
    }
}

fn register_inbound(
    shared: &Shared,
    kind: TransportKind,
    addr: SocketAddr,
    certs: Option<CertChain>,
) -> (FlowId, mpsc::Receiver<Bytes>) {
    let (tx, rx) = mpsc::channel(shared.send_queue);
    let flow = shared.flows.insert(
        FlowInfo {
            transport: kind,
            remote: addr,
            inbound: true,
            peer_certificates: certs,
        },
        tx,
    );
    debug!(%addr, flow = flow.0, transport = transport_name(kind), "connection accepted");
    (flow, rx)
}

/// Runs one TCP or TLS connection ([`stream::run`]) until it closes, fails to frame, idles out
/// or the server stops; then forgets the flow.
async fn run_connection<S>(
    shared: Arc<Shared>,
    stream: S,
    flow: FlowId,
    kind: TransportKind,
    addr: SocketAddr,
    mut rx: mpsc::Receiver<Bytes>,
    _permit: OwnedSemaphorePermit,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let peer = Peer {
        transport: kind,
        addr,
        flow: Some(flow),
    };
    let input = &shared.input;
    let deliver = |bytes| {
        let m = Input::Message {
            from: peer.clone(),
            bytes,
        };
        async move { input.send(m).await.is_ok() }
    };
    let settings = stream::Settings {
        limits: shared.limits,
        write_timeout: shared.timeouts.write,
        idle: Some(shared.idle),
        keepalive: KeepAlive::Answer,
    };
    let closed = |why: &Closed| {
        shared.flows.remove(flow);
        if let Closed::Framing(e) = why {
            info!(flow = flow.0, %addr, error = %e, "framing error: closing connection");
        }
        debug!(flow = flow.0, %addr, transport = transport_name(kind), reason = %why, "connection closed");
    };
    let stop = shared.cancel.cancelled();
    stream::run(stream, settings, &mut rx, deliver, stop, closed).await;
}
