//! The table of open TCP and TLS connections ("flows", RFC 5626 §3.1 terminology): the writer
//! of each, the address it reaches, and for TLS the certificate chain the peer presented.
//!
//! It is what makes connection reuse work (RFC 3261 §18.2.2: a response goes back over the
//! connection its request came on; in the spirit of RFC 5923, a request to an address we
//! already have a connection with uses it rather than opening another), and it is where the
//! policy layer asks "which certificate did the client on flow N present".

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use rustls::pki_types::CertificateDer;
use tokio::sync::mpsc;

use crate::engine::{FlowId, TransportKind};

/// A certificate chain as presented in the TLS handshake, leaf first (DER).
pub type CertChain = Arc<[CertificateDer<'static>]>;

/// What is known about one open connection.
#[derive(Debug, Clone)]
pub struct FlowInfo {
    /// TCP or TLS.
    pub transport: TransportKind,
    /// The remote address.
    pub remote: SocketAddr,
    /// True when the peer connected to us; false when we opened the connection.
    pub inbound: bool,
    /// The peer's certificate chain (TLS only): for an inbound connection the client
    /// certificate, which rustls verified against the configured trust anchors; for an
    /// outbound one the server's. `None` when the peer sent none (or on TCP).
    pub peer_certificates: Option<CertChain>,
}

#[derive(Debug)]
struct Conn {
    info: FlowInfo,
    tx: mpsc::Sender<Bytes>,
}

#[derive(Debug, Default)]
struct Table {
    by_flow: HashMap<FlowId, Conn>,
    /// The newest connection to each (transport, remote address).
    by_addr: HashMap<(TransportKind, SocketAddr), FlowId>,
}

/// A shared handle on the connection table; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Flows {
    table: Arc<Mutex<Table>>,
    next: Arc<AtomicU64>,
}

impl Flows {
    fn lock(&self) -> MutexGuard<'_, Table> {
        // Each update is a single insert or remove, so a lock poisoned by a panic elsewhere
        // still guards consistent maps.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a new connection and returns its id.
    pub(crate) fn insert(&self, info: FlowInfo, tx: mpsc::Sender<Bytes>) -> FlowId {
        let flow = FlowId(self.next.fetch_add(1, Ordering::Relaxed) + 1);
        let mut t = self.lock();
        t.by_addr.insert((info.transport, info.remote), flow);
        t.by_flow.insert(flow, Conn { info, tx });
        flow
    }

    /// Records the certificate chain once the TLS handshake of an outgoing connection is done.
    pub(crate) fn set_peer_certificates(&self, flow: FlowId, certs: Option<CertChain>) {
        if let Some(c) = self.lock().by_flow.get_mut(&flow) {
            c.info.peer_certificates = certs;
        }
    }

    /// Forgets a closed connection.
    pub(crate) fn remove(&self, flow: FlowId) {
        let mut t = self.lock();
        if let Some(c) = t.by_flow.remove(&flow) {
            let key = (c.info.transport, c.info.remote);
            if t.by_addr.get(&key) == Some(&flow) {
                t.by_addr.remove(&key);
            }
        }
    }

    /// The writer for `flow` if it is open, else for the newest open connection of `transport`
    /// to `addr`.
    pub(crate) fn sender(
        &self,
        transport: TransportKind,
        addr: SocketAddr,
        flow: Option<FlowId>,
    ) -> Option<(FlowId, mpsc::Sender<Bytes>)> {
        let t = self.lock();
        let by_flow = flow
            .and_then(|f| t.by_flow.get(&f).map(|c| (f, c)))
            .filter(|(_, c)| c.info.transport == transport);
        by_flow
            .or_else(|| {
                let f = *t.by_addr.get(&(transport, addr))?;
                t.by_flow.get(&f).map(|c| (f, c))
            })
            .map(|(f, c)| (f, c.tx.clone()))
    }

    /// What is known about an open connection.
    pub fn info(&self, flow: FlowId) -> Option<FlowInfo> {
        self.lock().by_flow.get(&flow).map(|c| c.info.clone())
    }

    /// The client certificate chain presented on an inbound TLS connection (verified against
    /// the trust anchors by rustls), if the connection is open and one was presented.
    pub fn client_certificates(&self, flow: FlowId) -> Option<CertChain> {
        self.lock()
            .by_flow
            .get(&flow)
            .filter(|c| c.info.inbound)
            .and_then(|c| c.info.peer_certificates.clone())
    }

    /// Every open connection, ordered by flow id.
    pub fn snapshot(&self) -> Vec<(FlowId, FlowInfo)> {
        let mut v: Vec<(FlowId, FlowInfo)> = self
            .lock()
            .by_flow
            .iter()
            .map(|(f, c)| (*f, c.info.clone()))
            .collect();
        v.sort_by_key(|(f, _)| f.0);
        v
    }

    /// How many connections are open.
    pub fn len(&self) -> usize {
        self.lock().by_flow.len()
    }

    /// Whether no connection is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(port: u16, inbound: bool) -> FlowInfo {
        FlowInfo {
            transport: TransportKind::Tls,
            remote: SocketAddr::from(([127, 0, 0, 1], port)),
            inbound,
            peer_certificates: Some(vec![CertificateDer::from(vec![1, 2, 3])].into()),
        }
    }

    #[test]
    fn reuses_by_address_and_forgets_on_close() {
        let f = Flows::default();
        let (tx, _rx) = mpsc::channel(1);
        let a = f.insert(info(5061, true), tx.clone());
        let addr = SocketAddr::from(([127, 0, 0, 1], 5061));
        assert_eq!(f.sender(TransportKind::Tls, addr, None).unwrap().0, a);
        assert!(f.sender(TransportKind::Tcp, addr, None).is_none());
        assert_eq!(
            f.sender(TransportKind::Tls, addr, Some(FlowId(999)))
                .unwrap()
                .0,
            a,
            "a closed flow falls back to the address"
        );
        assert_eq!(&*f.client_certificates(a).unwrap()[0], &[1, 2, 3]);
        let b = f.insert(info(5062, false), tx);
        assert!(
            f.client_certificates(b).is_none(),
            "outbound: a server cert"
        );
        f.remove(a);
        assert!(f.sender(TransportKind::Tls, addr, None).is_none());
        assert!(f.info(a).is_none());
        assert_eq!(f.len(), 1);
    }
}
