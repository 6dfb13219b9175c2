//! The HTTP endpoint verifiers fetch the domain certificate from (RFC 4474 §6.1: the
//! Identity-Info URL names it; `application/pkix-cert` is a DER certificate). Two routes, GET
//! and HEAD: the Identity-Info path with the DER certificate, and `/identity.pem` with the PEM
//! file; anything else is 404 (another method on those paths, 405).

use std::net::SocketAddr;

use axum::Router;
use axum::http::header;
use axum::routing::get;
use bytes::Bytes;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// The path the PEM certificate is also served at.
pub const PEM_PATH: &str = "/identity.pem";

/// Serves `der` at `der_path` and `pem` at [`PEM_PATH`] on `listener` until `cancel`.
pub fn serve(
    listener: TcpListener,
    der_path: &str,
    der: Bytes,
    pem: Bytes,
    cancel: CancellationToken,
) -> JoinHandle<()> {
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
    tokio::spawn(async move {
        let r = axum::serve(listener, app)
            .with_graceful_shutdown(cancel.cancelled_owned())
            .await;
        if let Err(e) = r {
            warn!(error = %e, "HTTP endpoint failed");
        }
    })
}

/// Binds the endpoint's listener.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}
