//! The accept loop of every TCP listener: SIP over TCP and TLS (RFC 3261 §18) and the HTTP(S)
//! certificate endpoint (RFC 4474 §9). Connections are taken under a connection limit —
//! refused at once when it is reached, so a flood costs a file descriptor for a moment and
//! nothing more — and each is served in a task of its own, so a client that stalls (in its
//! TLS handshake, say) holds up no one.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// Accepts connections on `listener` until `cancel`, each under a permit of `permits`, and
/// runs `serve` (given the connection, its peer and the permit to hold while it is open) in a
/// task of its own. `what` names the listener in logs.
pub(crate) async fn accept_limited<F, Fut>(
    listener: TcpListener,
    permits: Arc<Semaphore>,
    cancel: CancellationToken,
    what: &'static str,
    mut serve: F,
) where
    F: FnMut(TcpStream, SocketAddr, OwnedSemaphorePermit) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    // A flood at the limit would otherwise be a flood of log lines.
    let mut refusals = Throttle::new(Duration::from_secs(10));
    loop {
        let r = tokio::select! {
            _ = cancel.cancelled() => break,
            r = listener.accept() => r,
        };
        let (tcp, addr) = match r {
            Ok(x) => x,
            Err(e) => {
                // Typically EMFILE: back off instead of spinning.
                warn!(listener = what, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            if let Some(unlogged) = refusals.note(Instant::now()) {
                warn!(
                    listener = what,
                    %addr,
                    "connection limit reached: connection refused \
                     ({unlogged} more refused since the last such line)"
                );
            }
            continue;
        };
        // Small requests and responses: latency matters more than packet count.
        let _ = tcp.set_nodelay(true);
        tokio::spawn(serve(tcp, addr, permit));
    }
}

/// The server side of a TLS handshake on `tcp`, failing with `TimedOut` after `timeout`.
/// Borrows nothing, so it can be started in the accept loop and awaited in the connection's
/// task.
pub(crate) fn tls_handshake(
    acceptor: &TlsAcceptor,
    tcp: TcpStream,
    timeout: Duration,
) -> impl Future<Output = io::Result<TlsStream<TcpStream>>> + Send + use<> {
    let hs = acceptor.accept(tcp);
    async move {
        tokio::time::timeout(timeout, hs)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))?
    }
}

/// At most one log line per `every` for a recurring event, with the count of those not logged.
struct Throttle {
    every: Duration,
    last: Option<Instant>,
    unlogged: u64,
}

impl Throttle {
    fn new(every: Duration) -> Self {
        Throttle {
            every,
            last: None,
            unlogged: 0,
        }
    }

    /// Notes one occurrence at `now`: `Some(n)` when it is to be logged, `n` being how many
    /// went unlogged before it.
    fn note(&mut self, now: Instant) -> Option<u64> {
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < self.every)
        {
            self.unlogged += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.unlogged))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_of_refusals_is_one_line_per_period_with_a_count() {
        let mut t = Throttle::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(t.note(t0), Some(0));
        for ms in 1..=1000 {
            assert_eq!(t.note(t0 + Duration::from_millis(ms)), None);
        }
        assert_eq!(t.note(t0 + Duration::from_secs(10)), Some(1000));
        assert_eq!(t.note(t0 + Duration::from_secs(11)), None);
        assert_eq!(t.note(t0 + Duration::from_secs(30)), Some(1));
    }
}
