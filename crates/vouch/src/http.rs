//! The HTTP(S) endpoint verifiers fetch the domain certificate from (RFC 4474 §6.1: the
//! Identity-Info URL names it; `application/pkix-cert` is a DER certificate). Two routes, GET
//! and HEAD: the Identity-Info path with the DER certificate, and `/identity.pem` with the PEM
//! file; anything else is 404 (another method on those paths, 405).
//!
//! One [`router`] serves both listeners: plain HTTP ([`serve`]) and HTTPS ([`serve_tls`],
//! TLS with the domain certificate, as the SIP TLS listeners). On the HTTPS side each
//! connection is accepted and its handshake done in a task of its own, under a handshake
//! timeout and a connection limit, and dropped when idle; only finished handshakes reach the
//! HTTP server, so a client that stalls (or never finishes) its handshake holds up no one.

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
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

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

/// Serves `app` over plain HTTP on `listener` until `cancel`.
pub fn serve(listener: TcpListener, app: Router, cancel: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        let r = axum::serve(listener, app)
            .with_graceful_shutdown(cancel.cancelled_owned())
            .await;
        if let Err(e) = r {
            warn!(error = %e, "HTTP endpoint failed");
        }
    })
}

/// Binds the endpoint's listener (HTTP or HTTPS: TLS is added per connection).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Limits of the HTTPS listener.
#[derive(Debug, Clone, Copy)]
pub struct TlsLimits {
    /// A TLS handshake not finished within this is dropped.
    pub handshake_timeout: Duration,
    /// Connections open at once (handshaking or served); more are closed at once.
    pub max_connections: usize,
    /// A connection on which nothing is read or written for this long is closed.
    pub idle_timeout: Duration,
}

impl Default for TlsLimits {
    fn default() -> Self {
        TlsLimits {
            handshake_timeout: Duration::from_secs(10),
            max_connections: 256,
            idle_timeout: Duration::from_secs(30),
        }
    }
}

/// Serves `app` over HTTPS on `listener` with `tls` (the domain certificate's rustls server
/// configuration; ALPN is set to `http/1.1` here) until `cancel`.
pub fn serve_tls(
    listener: TcpListener,
    app: Router,
    tls: Arc<rustls::ServerConfig>,
    limits: TlsLimits,
    cancel: CancellationToken,
) -> io::Result<JoinHandle<()>> {
    let local = listener.local_addr()?;
    let mut config = (*tls).clone();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(config));
    // Handshaken connections, waiting for the HTTP server to take them.
    let (tx, rx) = mpsc::channel(64);
    let accepting = tokio::spawn(accept_tls(listener, acceptor, limits, tx, cancel.clone()));
    Ok(tokio::spawn(async move {
        let incoming = Handshaken { rx, local };
        let r = axum::serve(incoming, app)
            .with_graceful_shutdown(cancel.cancelled_owned())
            .await;
        if let Err(e) = r {
            warn!(error = %e, "HTTPS endpoint failed");
        }
        let _ = accepting.await;
    }))
}

/// Accepts TCP connections and handshakes each in its own task, under the limits.
async fn accept_tls(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    limits: TlsLimits,
    tx: mpsc::Sender<(TlsConn, SocketAddr)>,
    cancel: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        let r = tokio::select! {
            _ = cancel.cancelled() => break,
            r = listener.accept() => r,
        };
        let (tcp, addr) = match r {
            Ok(x) => x,
            Err(e) => {
                // Typically EMFILE: back off instead of spinning.
                warn!(error = %e, "HTTPS accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            warn!(%addr, "HTTPS connection limit reached: connection refused");
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let (acceptor, tx, cancel) = (acceptor.clone(), tx.clone(), cancel.clone());
        tokio::spawn(async move {
            let hs = tokio::time::timeout(limits.handshake_timeout, acceptor.accept(tcp));
            let tls = tokio::select! {
                _ = cancel.cancelled() => return,
                r = hs => match r {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        debug!(%addr, error = %e, "HTTPS: TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        debug!(%addr, "HTTPS: TLS handshake timed out");
                        return;
                    }
                },
            };
            let conn = TlsConn::new(tls, permit, limits.idle_timeout);
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = tx.send((conn, addr)) => {}
            }
        });
    }
}

/// The HTTP server's view of the HTTPS listener: connections whose handshake is done.
#[derive(Debug)]
struct Handshaken {
    rx: mpsc::Receiver<(TlsConn, SocketAddr)>,
    local: SocketAddr,
}

impl axum::serve::Listener for Handshaken {
    type Io = TlsConn;
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

/// A served HTTPS connection: holds its connection-limit permit, and fails with `TimedOut`
/// once nothing has been read or written for the idle timeout (hyper has no timer here, so
/// a client keeping a connection open would otherwise hold its permit for ever).
#[derive(Debug)]
struct TlsConn {
    stream: TlsStream<TcpStream>,
    _permit: OwnedSemaphorePermit,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl TlsConn {
    fn new(stream: TlsStream<TcpStream>, permit: OwnedSemaphorePermit, idle: Duration) -> Self {
        TlsConn {
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
                "HTTPS connection idle",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for TlsConn {
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

impl AsyncWrite for TlsConn {
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
