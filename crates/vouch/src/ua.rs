//! The user agent's tokio driver: one UDP socket, one event loop around `vouch-proto`'s
//! sans-IO [`UserAgent`], the Identity-Info certificate fetches it asks for (run as tasks so a
//! slow certificate server never holds up signalling), and the per-login certificate
//! (draft-fries-sip-identity-usage-bcp §6: a fresh P-256 key pair per login, renewed before
//! it expires).
//!
//! The application drives the UA through [`UaHandle::with`] (any command, run inside the
//! loop) and reads [`UaOutput`]s: every message sent and received (for ladder diagrams and
//! tests) and every [`UaEvent`].

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::debug;
use vouch_auth::session_cert::{DEFAULT_LIFETIME_SECS, LoginCertificate};
use vouch_proto::endpoint::{Output, Peer, TransportKind};
use vouch_proto::ua::{UaConfig, UaEvent, UserAgent};
use vouch_proto::verification::{CertificateChain, FetchId};

use crate::cert_fetch::{CertFetcher, FetchConfig};
use crate::server::wall_unix;

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
}

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
    /// The certificate could not be made.
    #[error("cannot make the login certificate: {0}")]
    Certificate(String),
    /// The certificate fetcher could not be built.
    #[error("certificate fetcher: {0}")]
    Fetcher(String),
}

type Job = Box<dyn FnOnce(&mut UserAgent, Instant) + Send>;

enum Input {
    Datagram(SocketAddr, Bytes),
    Certificate(FetchId, Result<CertificateChain, String>),
    Job(Job),
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
            Input::Datagram(a, b) => write!(f, "Datagram({a}, {} bytes)", b.len()),
            Input::Certificate(id, r) => write!(f, "Certificate({id:?}, ok={})", r.is_ok()),
            Input::Job(_) => f.write_str("Job"),
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
        let sock = UdpSocket::bind(bind)
            .await
            .map_err(|source| UaStartError::Bind { addr: bind, source })?;
        let local = sock
            .local_addr()
            .map_err(|source| UaStartError::Bind { addr: bind, source })?;
        let mut config = configure(local);
        config.local = (TransportKind::Udp, local);
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
        let (input_tx, input_rx) = mpsc::unbounded_channel();
        let (out_tx, out_rx) = mpsc::unbounded_channel();
        let sock = Arc::new(sock);
        let task = tokio::spawn(run(
            ua,
            sock,
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

#[allow(clippy::too_many_arguments)]
async fn run(
    mut ua: UserAgent,
    sock: Arc<UdpSocket>,
    input_tx: mpsc::UnboundedSender<Input>,
    mut input: mpsc::UnboundedReceiver<Input>,
    out: mpsc::UnboundedSender<UaOutput>,
    fetcher: CertFetcher,
    mut login: Option<Login>,
) {
    let reader = {
        let sock = sock.clone();
        let tx = input_tx.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65_536];
            loop {
                match sock.recv_from(&mut buf).await {
                    Ok((n, from)) => {
                        if tx
                            .send(Input::Datagram(from, Bytes::copy_from_slice(&buf[..n])))
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
        })
    };
    // Looked at often enough to renew within a tenth of the certificate's lifetime.
    let period = login
        .as_ref()
        .and_then(|l| l.renewal.as_ref())
        .map_or(60, |r| (r.lifetime / 20).clamp(1, 60));
    let mut renewal = tokio::time::interval(Duration::from_secs(period.unsigned_abs()));
    let mut deadline = drain(&mut ua, &sock, &out, &fetcher, &input_tx);
    loop {
        let sleep = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            msg = input.recv() => {
                let Some(msg) = msg else { break };
                let now = Instant::now();
                match msg {
                    Input::Datagram(from, bytes) => {
                        if bytes.iter().all(|&c| c == b'\r' || c == b'\n') {
                            continue;
                        }
                        let _ = out.send(UaOutput::Received { from, bytes: bytes.clone() });
                        ua.handle_receive(now, wall_unix(), Peer::new(TransportKind::Udp, from), bytes);
                    }
                    Input::Certificate(id, result) => ua.handle_certificate(now, wall_unix(), id, result),
                    Input::Job(job) => job(&mut ua, now),
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
        deadline = drain(&mut ua, &sock, &out, &fetcher, &input_tx);
    }
    reader.abort();
}

fn drain(
    ua: &mut UserAgent,
    sock: &Arc<UdpSocket>,
    out: &mpsc::UnboundedSender<UaOutput>,
    fetcher: &CertFetcher,
    input: &mpsc::UnboundedSender<Input>,
) -> Option<Instant> {
    loop {
        match ua.poll_output() {
            Output::Transmit { to, bytes } => {
                if let Err(e) = sock.try_send_to(&bytes, to.addr) {
                    debug!(to = %to.addr, error = %e, "UA send failed");
                }
                let _ = out.send(UaOutput::Sent { to: to.addr, bytes });
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
            Output::Timeout(at) => return at,
        }
    }
}
