//! The HTTP(S) endpoint verifiers fetch the domain certificate from (RFC 4474 §9: the
//! Identity-Info URL names it; `application/pkix-cert` is a DER certificate). Two routes, GET
//! and HEAD: the Identity-Info path with the DER certificate, and `/identity.pem` with the PEM
//! file; anything else is 404 (another method on those paths, 405).
//!
//! One [`router`] serves both listeners: plain HTTP ([`serve`]) and HTTPS ([`serve_tls`],
//! TLS with the domain certificate, as the SIP TLS listeners). Both accept under a connection
//! limit (with the SIP listeners' accept loop, `accept.rs`) and drop a connection that stays
//! idle; on the HTTPS side each handshake is done in a task of its own under a timeout, and
//! only finished handshakes reach the HTTP server, so a client that stalls (or never
//! finishes) its handshake holds up no one.
//!
//! [`serve`] also runs the metrics endpoint (`crate::metrics`), on a listener of its own.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::http::header;
use axum::routing::get;
use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio::time::{Instant, Sleep};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::accept::{accept_limited, tls_handshake};

/// The path the PEM certificate is also served at.
pub const PEM_PATH: &str = "/identity.pem";

/// The routes: `der` at `der_path` (`application/pkix-cert`) and `pem` at [`PEM_PATH`]
/// (`application/x-pem-file`). Cheap to clone; the HTTP and HTTPS listeners share it.
pub fn router(der_path: &str, der: Bytes, pem: Bytes) -> Router {
    let body = |content_type: &'static str, b: Bytes| {
        get(move || {
            let b = b.clone();
            async move { ([(header::CONTENT_TYPE, content_type)], b) }
        })
    };
    let mut app = Router::new().route(der_path, body("application/pkix-cert", der));
    if der_path != PEM_PATH {
        app = app.route(PEM_PATH, body("application/x-pem-file", pem));
    }
    app
}

/// Serves `app` over plain HTTP on `listener` until `cancel`, under `limits` (the handshake
/// timeout does not apply); `what` names the endpoint in logs.
pub fn serve(
    listener: TcpListener,
    app: Router,
    limits: EndpointLimits,
    cancel: CancellationToken,
    what: &'static str,
) -> io::Result<JoinHandle<()>> {
    let local = listener.local_addr()?;
    let (tx, rx) = mpsc::channel(64);
    let accepting = tokio::spawn(accept(
        listener,
        limits,
        |tcp| async move { Ok::<_, io::Error>(tcp) },
        tx,
        cancel.clone(),
        what,
    ));
    Ok(run(Ready { rx, local }, app, accepting, cancel, what))
}

/// The HTTP server over `incoming` until `cancel`; then waits for the accept loop.
fn run<S>(
    incoming: Ready<S>,
    app: Router,
    accepting: JoinHandle<()>,
    cancel: CancellationToken,
    what: &'static str,
) -> JoinHandle<()>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let r = axum::serve(incoming, app)
            .with_graceful_shutdown(cancel.cancelled_owned())
            .await;
        if let Err(e) = r {
            warn!(error = %e, "{what} failed");
        }
        let _ = accepting.await;
    })
}

/// Binds the endpoint's listener (HTTP or HTTPS: TLS is added per connection).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Limits of the HTTP and HTTPS listeners.
#[derive(Debug, Clone, Copy)]
pub struct EndpointLimits {
    /// A TLS handshake not finished within this is dropped.
    pub handshake_timeout: Duration,
    /// Connections open at once (handshaking or served); more are closed at once.
    pub max_connections: usize,
    /// A connection on which nothing is read or written for this long is closed.
    pub idle_timeout: Duration,
}

impl Default for EndpointLimits {
    fn default() -> Self {
        EndpointLimits {
            handshake_timeout: Duration::from_secs(10),
            max_connections: 256,
            idle_timeout: Duration::from_secs(30),
        }
    }
}

/// Serves `app` over HTTPS on `listener` with `tls` (the domain certificate's rustls server
/// configuration for this endpoint, [`crate::tls::TlsContext::https`]; ALPN is set to
/// `http/1.1` here) until `cancel`.
pub fn serve_tls(
    listener: TcpListener,
    app: Router,
    tls: Arc<rustls::ServerConfig>,
    limits: EndpointLimits,
    cancel: CancellationToken,
) -> io::Result<JoinHandle<()>> {
    let local = listener.local_addr()?;
    let mut config = (*tls).clone();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(config));
    // Handshaken connections, waiting for the HTTP server to take them.
    let (tx, rx) = mpsc::channel(64);
    let accepting = tokio::spawn(accept(
        listener,
        limits,
        move |tcp| tls_handshake(&acceptor, tcp, limits.handshake_timeout),
        tx,
        cancel.clone(),
        "certificate endpoint (HTTPS)",
    ));
    Ok(run(
        Ready { rx, local },
        app,
        accepting,
        cancel,
        "certificate endpoint (HTTPS)",
    ))
}

/// Accepts TCP connections under the connection limit ([`accept_limited`]) and readies each
/// (`ready`: nothing for HTTP, the TLS handshake for HTTPS) in its own task; `what` names the
/// listener in logs.
async fn accept<S, F, Fut>(
    listener: TcpListener,
    limits: EndpointLimits,
    ready: F,
    tx: mpsc::Sender<(LimitedConn<S>, SocketAddr)>,
    cancel: CancellationToken,
    what: &'static str,
) where
    S: Send + 'static,
    F: Fn(TcpStream) -> Fut,
    Fut: Future<Output = io::Result<S>> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let stop = cancel.clone();
    accept_limited(listener, permits, stop, what, move |tcp, addr, permit| {
        let readying = ready(tcp);
        let (tx, cancel) = (tx.clone(), cancel.clone());
        async move {
            let stream = tokio::select! {
                _ = cancel.cancelled() => return,
                r = readying => match r {
                    Ok(s) => s,
                    Err(e) => {
                        debug!(listener = what, %addr, error = %e, "connection not ready");
                        return;
                    }
                },
            };
            let conn = LimitedConn::new(stream, permit, limits.idle_timeout);
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = tx.send((conn, addr)) => {}
            }
        }
    })
    .await;
}

/// The HTTP server's view of a listener: connections ready to serve (for HTTPS, handshaken).
#[derive(Debug)]
struct Ready<S> {
    rx: mpsc::Receiver<(LimitedConn<S>, SocketAddr)>,
    local: SocketAddr,
}

impl<S> axum::serve::Listener for Ready<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Io = LimitedConn<S>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(c) => c,
            // The accept loop stopped (shutdown): graceful shutdown ends the server.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// A served connection: holds its connection-limit permit, and fails with `TimedOut` once
/// nothing has been read or written for the idle timeout (hyper has no timer here, so a
/// client keeping a connection open would otherwise hold its permit for ever).
#[derive(Debug)]
struct LimitedConn<S> {
    stream: S,
    _permit: OwnedSemaphorePermit,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl<S> LimitedConn<S> {
    fn new(stream: S, permit: OwnedSemaphorePermit, idle: Duration) -> Self {
        LimitedConn {
            stream,
            _permit: permit,
            idle,
            deadline: Box::pin(tokio::time::sleep(idle)),
        }
    }

    fn progressed(&mut self) {
        self.deadline.as_mut().reset(Instant::now() + self.idle);
    }

    /// `Pending` from the stream: an error once idle too long (the timer wakes the task).
    fn pending_or_idle<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "HTTP connection idle",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for LimitedConn<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    this.progressed();
                }
                Poll::Ready(r)
            }
            Poll::Pending => this.pending_or_idle(cx),
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for LimitedConn<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_write(cx, data) {
            Poll::Ready(r) => {
                if matches!(r, Ok(n) if n > 0) {
                    this.progressed();
                }
                Poll::Ready(r)
            }
            Poll::Pending => this.pending_or_idle(cx),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_flush(cx) {
            Poll::Ready(r) => Poll::Ready(r),
            Poll::Pending => this.pending_or_idle(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_shutdown(cx) {
            Poll::Ready(r) => Poll::Ready(r),
            Poll::Pending => this.pending_or_idle(cx),
        }
    }
}
