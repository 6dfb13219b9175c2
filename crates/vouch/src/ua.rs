//! The user agent's tokio driver: one UDP socket — or one TCP or TLS connection to the proxy,
//! opened at start (RFC 3261 §18; every request and response to and from the proxy goes over
//! it, and requests to the UA come back over it, as over an RFC 5626 flow) — one event loop
//! around `vouch-proto`'s sans-IO [`UserAgent`], the Identity-Info certificate fetches it asks for (run as tasks so a
//! slow certificate server never holds up signalling), and the per-login certificate
//! (draft-fries-sip-identity-usage-bcp §6: a fresh P-256 key pair per login, renewed before
//! it expires).
//!
//! The application drives the UA through [`UaHandle::with`] (any command, run inside the
//! loop) and reads [`UaOutput`]s: every message sent and received (for ladder diagrams and
//! tests) and every [`UaEvent`].
//!
//! The connection is run as the server runs its own (`stream.rs`): messages framed by
//! Content-Length (§18.3) under the configuration's parser limits ([`UaConfig::limits`]),
//! writes under a timeout ([`Timeouts`]), and a CRLFCRLF keep-alive every [`KEEPALIVE`]
//! (RFC 5626 §4.4.1: the proxy closes idle connections). When the connection drops, a
//! write times out, no pong answers a ping within [`PONG_WITHIN`] (§4.4.1: the flow has
//! failed) or more than [`SEND_QUEUE`] messages wait to be written, the UA stops with
//! [`UaOutput::Closed`]: there is no reconnection.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rustls::ClientConfig;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::debug;
use vouch_auth::session_cert::{DEFAULT_LIFETIME_SECS, LoginCertificate};
use vouch_msg::Limits;
use vouch_proto::endpoint::{Output, Peer, TransportKind};
use vouch_proto::ua::{UaConfig, UaEvent, UserAgent};
use vouch_proto::verification::{CertificateChain, FetchId};

use crate::cert_fetch::{CertFetcher, FetchConfig};
use crate::server::wall_unix;
pub use crate::stream::SEND_QUEUE;
pub use crate::stream::Timeouts;
use crate::stream::{self, Closed, ConnectError, KeepAlive};

/// What the driver reports.
#[derive(Debug, Clone)]
pub enum UaOutput {
    /// A message was sent.
    Sent {
        /// To whom.
        to: SocketAddr,
        /// The message.
        bytes: Bytes,
    },
    /// A message was received.
    Received {
        /// From whom.
        from: SocketAddr,
        /// The message.
        bytes: Bytes,
    },
    /// An event of the UA.
    Event(UaEvent),
    /// The connection to the proxy closed or failed; the UA has stopped (no reconnection).
    Closed {
        /// Why.
        reason: String,
    },
}

/// How the UA reaches its proxy.
#[derive(Debug, Clone)]
pub enum UaTransport {
    /// A UDP socket bound to this address (port 0 picks one).
    Udp(SocketAddr),
    /// One TCP connection to `proxy`, from `bind`.
    Tcp {
        /// Local address (port 0 picks one).
        bind: SocketAddr,
        /// The proxy.
        proxy: SocketAddr,
        /// Connect and write timeouts.
        timeouts: Timeouts,
    },
    /// One TLS connection to `proxy`, from `bind`. The server certificate must name the
    /// proxy's IP address (the UA is given an address, not a host name); `client` holds the
    /// trust anchors and, for a TLS login, the client certificate
    /// ([`crate::tls::client_config`]).
    Tls {
        /// Local address (port 0 picks one).
        bind: SocketAddr,
        /// The proxy.
        proxy: SocketAddr,
        /// The rustls client configuration.
        client: Arc<ClientConfig>,
        /// Connect (and handshake) and write timeouts.
        timeouts: Timeouts,
    },
}

pub use crate::stream::{KEEPALIVE, PONG_WITHIN};

/// Where the UA's own certificate comes from.
#[derive(Debug, Clone)]
pub enum CertificateSource {
    /// None: bodies carry only SDP.
    None,
    /// A fresh P-256 certificate per login, renewed a tenth of its lifetime before it expires.
    PerLogin {
        /// Lifetime in seconds ([`DEFAULT_LIFETIME_SECS`] by default).
        lifetime_secs: i64,
        /// Device instance (`urn:uuid:…`) named in the certificate.
        device: Option<String>,
    },
    /// A device certificate.
    Fixed(LoginCertificate),
}

impl Default for CertificateSource {
    fn default() -> Self {
        CertificateSource::PerLogin {
            lifetime_secs: DEFAULT_LIFETIME_SECS,
            device: None,
        }
    }
}

/// Why the UA could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UaStartError {
    /// The socket could not be bound.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// The connection to the proxy could not be opened (TCP connect or TLS handshake).
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The proxy.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// The certificate could not be made.
    #[error("cannot make the login certificate: {0}")]
    Certificate(String),
    /// The certificate fetcher could not be built.
    #[error("certificate fetcher: {0}")]
    Fetcher(String),
}

type Job = Box<dyn FnOnce(&mut UserAgent, Instant) + Send>;

enum Input {
    Message(Peer, Bytes),
    Certificate(FetchId, Result<CertificateChain, String>),
    Job(Job),
    Closed(String),
}

/// A running user agent.
#[derive(Debug)]
pub struct UaHandle {
    local: SocketAddr,
    input: mpsc::UnboundedSender<Input>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Input::Message(a, b) => write!(f, "Message({a}, {} bytes)", b.len()),
            Input::Certificate(id, r) => write!(f, "Certificate({id:?}, ok={})", r.is_ok()),
            Input::Job(_) => f.write_str("Job"),
            Input::Closed(why) => write!(f, "Closed({why})"),
        }
    }
}

impl UaHandle {
    /// Binds `bind` (UDP; port 0 picks one), starts the UA, and returns it with the channel
    /// of its outputs. `configure` completes the configuration once the local address is known
    /// (Via and Contact need it).
    pub async fn start(
        bind: SocketAddr,
        certificate: CertificateSource,
        fetch: FetchConfig,
        configure: impl FnOnce(SocketAddr) -> UaConfig,
    ) -> Result<(UaHandle, mpsc::UnboundedReceiver<UaOutput>), UaStartError> {
        Self::start_on(UaTransport::Udp(bind), certificate, fetch, configure).await
    }

    /// [`UaHandle::start`] over any transport: for TCP and TLS the connection to the proxy is
    /// opened (and the TLS handshake done) before this returns, and `configure` is given its
    /// local address. The configuration's `local` transport is set to match.
    pub async fn start_on(
        transport: UaTransport,
        certificate: CertificateSource,
        fetch: FetchConfig,
        configure: impl FnOnce(SocketAddr) -> UaConfig,
    ) -> Result<(UaHandle, mpsc::UnboundedReceiver<UaOutput>), UaStartError> {
        let (input_tx, input_rx) = mpsc::unbounded_channel();
        let (opened, local) = open(transport).await?;
        let mut config = configure(local);
        config.local = (opened.kind(), local);
        let limits = config.limits;
        let login = match certificate {
            CertificateSource::None => None,
            CertificateSource::Fixed(c) => Some(Login {
                cert: c,
                renewal: None,
            }),
            CertificateSource::PerLogin {
                lifetime_secs,
                device,
            } => {
                let c = login_certificate(&config.aor, device.as_deref(), lifetime_secs)
                    .map_err(|e| UaStartError::Certificate(e.to_string()))?;
                Some(Login {
                    cert: c,
                    renewal: Some(Renewal {
                        lifetime: lifetime_secs,
                        device,
                    }),
                })
            }
        };
        let fetcher = CertFetcher::new(fetch).map_err(|e| UaStartError::Fetcher(e.to_string()))?;
        let mut ua = UserAgent::new(config);
        if let Some(l) = &login {
            ua.set_certificate(l.cert.der().to_vec());
        }
        let (link, reader) = opened.start(limits, input_tx.clone());
        let (out_tx, out_rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(
            ua,
            link,
            reader,
            input_tx.clone(),
            input_rx,
            out_tx,
            fetcher,
            login,
        ));
        Ok((
            UaHandle {
                local,
                input: input_tx,
                task,
            },
            out_rx,
        ))
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Runs `f` on the UA inside its loop (a command, or a look at its state) and returns
    /// what it returns; `None` when the UA has stopped.
    pub async fn with<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut UserAgent, Instant) -> R + Send + 'static,
    ) -> Option<R> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |ua, now| {
            let _ = tx.send(f(ua, now));
        });
        self.input.send(Input::Job(job)).ok()?;
        rx.await.ok()
    }

    /// Stops the UA (nothing is sent; unregister first if the registrar should know).
    pub fn stop(self) {
        self.task.abort();
    }
}

/// The UA's own certificate, and how to renew it when it was made per login.
#[derive(Debug)]
struct Login {
    cert: LoginCertificate,
    renewal: Option<Renewal>,
}

/// What a per-login certificate is made again with.
#[derive(Debug)]
struct Renewal {
    lifetime: i64,
    device: Option<String>,
}

/// Seconds a fresh certificate is dated back, for peers whose clocks are behind ours.
const CLOCK_SKEW_ALLOWANCE: i64 = 60;

/// A fresh per-login certificate valid from a minute ago until `lifetime` from now.
fn login_certificate(
    aor: &str,
    device: Option<&str>,
    lifetime: i64,
) -> Result<LoginCertificate, vouch_auth::session_cert::SessionCertError> {
    LoginCertificate::generate(
        aor,
        device,
        wall_unix() - CLOCK_SKEW_ALLOWANCE,
        lifetime.saturating_add(CLOCK_SKEW_ALLOWANCE),
    )
}

/// The UA's socket, or its connection before it runs (its framing needs the configuration).
enum Opened {
    Udp(Arc<UdpSocket>),
    Stream {
        kind: TransportKind,
        proxy: SocketAddr,
        // Boxed: a TLS stream is a kilobyte, the socket a pointer.
        stream: Box<stream::Stream>,
        write_timeout: Duration,
        /// Keep-alive ping interval and pong wait.
        keepalive: (Duration, Duration),
    },
}

impl Opened {
    fn kind(&self) -> TransportKind {
        match self {
            Opened::Udp(_) => TransportKind::Udp,
            Opened::Stream { kind, .. } => *kind,
        }
    }

    /// Starts the task that reads the socket, or runs the connection with `limits`.
    fn start(self, limits: Limits, input: mpsc::UnboundedSender<Input>) -> (Link, JoinHandle<()>) {
        match self {
            Opened::Udp(sock) => {
                let reader = tokio::spawn(udp_reader(sock.clone(), input));
                (Link::Udp(sock), reader)
            }
            Opened::Stream {
                kind,
                proxy,
                stream,
                write_timeout,
                keepalive: (every, pong_within),
            } => {
                let settings = stream::Settings {
                    limits,
                    write_timeout,
                    idle: None,
                    keepalive: KeepAlive::Send { every, pong_within },
                };
                let (tx, rx) = mpsc::channel(SEND_QUEUE);
                let reader = tokio::spawn(run_stream(stream, settings, kind, proxy, rx, input));
                (Link::Stream { kind, proxy, tx }, reader)
            }
        }
    }
}

/// Where the UA's messages go: its UDP socket, or the writer of its one connection.
enum Link {
    Udp(Arc<UdpSocket>),
    Stream {
        kind: TransportKind,
        proxy: SocketAddr,
        tx: mpsc::Sender<Bytes>,
    },
}

impl Link {
    /// Sends `bytes` meant for `to`; returns where they went. On a connection that is the
    /// proxy whatever `to` says: the proxy routes everything, in-dialog requests included.
    /// Fails, naming why the connection must close, when its queue is full.
    fn send(&self, to: &Peer, bytes: &Bytes) -> Result<SocketAddr, String> {
        match self {
            Link::Udp(sock) => {
                if let Err(e) = sock.try_send_to(bytes, to.addr) {
                    debug!(to = %to.addr, error = %e, "UA send failed");
                }
                Ok(to.addr)
            }
            Link::Stream { kind, proxy, tx } => {
                if to.addr != *proxy {
                    debug!(to = %to, via = %proxy, "sent over the connection to the proxy");
                }
                match tx.try_send(bytes.clone()) {
                    Ok(()) => Ok(*proxy),
                    // A proxy that stops reading must not grow the queue without limit; a
                    // dropped message would leave the UA's state wrong, so the UA stops.
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        Err(closed_reason(*kind, *proxy, &Closed::QueueFull(SEND_QUEUE)))
                    }
                    // Closed only when the connection has gone, which the loop hears about.
                    Err(mpsc::error::TrySendError::Closed(_)) => Ok(*proxy),
                }
            }
        }
    }
}

/// What [`UaOutput::Closed`] says when the connection to the proxy ends.
fn closed_reason(kind: TransportKind, proxy: SocketAddr, why: &Closed) -> String {
    format!("{} connection to {proxy}: {why}", kind.as_str())
}

/// Binds the socket or opens the connection.
async fn open(transport: UaTransport) -> Result<(Opened, SocketAddr), UaStartError> {
    let (bind, proxy, tls, timeouts) = match transport {
        UaTransport::Udp(bind) => {
            let sock = UdpSocket::bind(bind)
                .await
                .map_err(|source| UaStartError::Bind { addr: bind, source })?;
            let local = sock
                .local_addr()
                .map_err(|source| UaStartError::Bind { addr: bind, source })?;
            return Ok((Opened::Udp(Arc::new(sock)), local));
        }
        UaTransport::Tcp {
            bind,
            proxy,
            timeouts,
        } => (bind, proxy, None, timeouts),
        UaTransport::Tls {
            bind,
            proxy,
            client,
            timeouts,
        } => (bind, proxy, Some(client), timeouts),
    };
    let kind = if tls.is_some() {
        TransportKind::Tls
    } else {
        TransportKind::Tcp
    };
    let c = stream::connect(Some(bind), proxy, tls, timeouts.connect)
        .await
        .map_err(|e| match e {
            ConnectError::Bind(source) => UaStartError::Bind { addr: bind, source },
            e => UaStartError::Connect {
                addr: proxy,
                source: e.into(),
            },
        })?;
    let opened = Opened::Stream {
        kind,
        proxy,
        stream: Box::new(c.stream),
        write_timeout: timeouts.write,
        keepalive: (timeouts.keepalive, timeouts.pong),
    };
    Ok((opened, c.local))
}

async fn udp_reader(sock: Arc<UdpSocket>, tx: mpsc::UnboundedSender<Input>) {
    let mut buf = vec![0u8; 65_536];
    loop {
        match sock.recv_from(&mut buf).await {
            Ok((n, from)) => {
                let data = &buf[..n];
                // CRLF keep-alives carry no message.
                if data.iter().all(|&c| c == b'\r' || c == b'\n') {
                    continue;
                }
                let from = Peer::new(TransportKind::Udp, from);
                if tx
                    .send(Input::Message(from, Bytes::copy_from_slice(data)))
                    .is_err()
                {
                    break;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionReset
                ) => {}
            Err(e) => {
                debug!(error = %e, "UA receive failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Runs the connection to the proxy ([`stream::run`]) until it closes, fails or the UA stops;
/// then tells the loop why, unless the UA stopped.
async fn run_stream(
    conn: Box<stream::Stream>,
    settings: stream::Settings,
    kind: TransportKind,
    proxy: SocketAddr,
    mut rx: mpsc::Receiver<Bytes>,
    input: mpsc::UnboundedSender<Input>,
) {
    let from = Peer::new(kind, proxy);
    let deliver = |bytes| {
        let m = Input::Message(from.clone(), bytes);
        std::future::ready(input.send(m).is_ok())
    };
    let closed = |why: &Closed| {
        if matches!(
            why,
            Closed::Stopped | Closed::NoMoreToSend | Closed::Undelivered
        ) {
            return;
        }
        debug!(%proxy, transport = kind.as_str(), reason = %why, "connection to the proxy closed");
        let _ = input.send(Input::Closed(closed_reason(kind, proxy, why)));
    };
    // The UA stops the connection by closing its queue.
    let stop = std::future::pending();
    stream::run(conn, settings, &mut rx, deliver, stop, closed).await;
}

#[allow(clippy::too_many_arguments)]
async fn run(
    mut ua: UserAgent,
    link: Link,
    reader: JoinHandle<()>,
    input_tx: mpsc::UnboundedSender<Input>,
    mut input: mpsc::UnboundedReceiver<Input>,
    out: mpsc::UnboundedSender<UaOutput>,
    fetcher: CertFetcher,
    mut login: Option<Login>,
) {
    // Looked at often enough to renew within a tenth of the certificate's lifetime.
    let period = login
        .as_ref()
        .and_then(|l| l.renewal.as_ref())
        .map_or(60, |r| (r.lifetime / 20).clamp(1, 60));
    let mut renewal = tokio::time::interval(Duration::from_secs(period.unsigned_abs()));
    let mut deadline = drain(&mut ua, &link, &out, &fetcher, &input_tx);
    loop {
        let at = match deadline {
            Ok(at) => at,
            Err(reason) => {
                let _ = out.send(UaOutput::Closed { reason });
                break;
            }
        };
        let sleep = async {
            match at {
                Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            msg = input.recv() => {
                let Some(msg) = msg else { break };
                let now = Instant::now();
                match msg {
                    Input::Message(from, bytes) => {
                        let _ = out.send(UaOutput::Received { from: from.addr, bytes: bytes.clone() });
                        ua.handle_receive(now, wall_unix(), from, bytes);
                    }
                    Input::Certificate(id, result) => ua.handle_certificate(now, wall_unix(), id, result),
                    Input::Job(job) => job(&mut ua, now),
                    Input::Closed(reason) => {
                        let _ = out.send(UaOutput::Closed { reason });
                        break;
                    }
                }
            }
            _ = sleep => ua.handle_timeout(Instant::now(), wall_unix()),
            _ = renewal.tick() => {
                if let Some(Login { cert, renewal: Some(r) }) = &mut login
                    // A tenth of the lifetime asked for before notAfter (the minute the
                    // certificate is dated back does not count).
                    && wall_unix() >= cert.not_after() - (r.lifetime / 10).max(1)
                    && let Ok(fresh) = login_certificate(cert.aor(), r.device.as_deref(), r.lifetime)
                {
                    ua.set_certificate(fresh.der().to_vec());
                    *cert = fresh;
                }
            }
        }
        deadline = drain(&mut ua, &link, &out, &fetcher, &input_tx);
    }
    reader.abort();
}

/// Sends and reports what the UA has to give out; returns its next timeout, or why the
/// connection to the proxy must close.
fn drain(
    ua: &mut UserAgent,
    link: &Link,
    out: &mpsc::UnboundedSender<UaOutput>,
    fetcher: &CertFetcher,
    input: &mpsc::UnboundedSender<Input>,
) -> Result<Option<Instant>, String> {
    loop {
        match ua.poll_output() {
            Output::Transmit { to, bytes } => {
                let to = link.send(&to, &bytes)?;
                let _ = out.send(UaOutput::Sent { to, bytes });
            }
            Output::Event(e) => {
                if let UaEvent::FetchCertificate { id, url } = &e {
                    let (id, url, fetcher, input) =
                        (*id, url.clone(), fetcher.clone(), input.clone());
                    tokio::spawn(async move {
                        let result = fetcher
                            .fetch(&url)
                            .await
                            .map(|c| CertificateChain {
                                end_entity: c.end_entity.clone(),
                                intermediates: c.intermediates.clone(),
                            })
                            .map_err(|e| e.to_string());
                        let _ = input.send(Input::Certificate(id, result));
                    });
                }
                let _ = out.send(UaOutput::Event(e));
            }
            Output::Timeout(at) => return Ok(at),
        }
    }
}
