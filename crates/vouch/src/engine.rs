//! TEMPORARY stand-in for `vouch_proto::endpoint` while it is being written: the announced API
//! only, no behaviour. Replaced by `pub use vouch_proto::endpoint::*;` once it lands.
#![allow(dead_code, missing_docs, missing_debug_implementations)]

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Instant;

use bytes::Bytes;
pub use vouch_proto::transaction::TransactionConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportKind {
    Udp,
    Tcp,
    Tls,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowId(pub u64);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Peer {
    pub transport: TransportKind,
    pub addr: SocketAddr,
    pub flow: Option<FlowId>,
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = match self.transport {
            TransportKind::Udp => "udp",
            TransportKind::Tcp => "tcp",
            TransportKind::Tls => "tls",
        };
        write!(f, "{t}:{}", self.addr)
    }
}

impl FromStr for Peer {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (t, a) = s.split_once(':').ok_or("no transport")?;
        let transport = match t {
            "udp" => TransportKind::Udp,
            "tcp" => TransportKind::Tcp,
            "tls" => TransportKind::Tls,
            _ => return Err("bad transport".into()),
        };
        Ok(Peer {
            transport,
            addr: a.parse().map_err(|_| "bad address")?,
            flow: None,
        })
    }
}

#[derive(Debug, Clone)]
pub struct EndpointConfig {
    pub domains: Vec<String>,
    pub local: Vec<(TransportKind, SocketAddr)>,
    pub advertised_host: Option<String>,
    pub min_expires: u32,
    pub max_expires: u32,
    pub default_expires: u32,
    pub transaction: TransactionConfig,
    pub limits: vouch_msg::Limits,
    pub seed: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub aor: String,
    pub contact: String,
    pub expires_at: i64,
    pub q: u16,
    pub call_id: String,
    pub cseq: u32,
    pub source: Peer,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
}

#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    BindingsChanged {
        aor: String,
        bindings: Vec<Binding>,
    },
    MessageRejected {
        from: Peer,
        status: u16,
        reason: String,
    },
    Forwarded {
        method: String,
        call_id: String,
        to: Peer,
    },
    Log {
        level: LogLevel,
        message: String,
    },
}

#[derive(Debug)]
pub enum Output {
    Transmit { to: Peer, bytes: Bytes },
    Event(Event),
    Timeout(Option<Instant>),
}

#[derive(Debug)]
pub struct Endpoint {
    config: EndpointConfig,
}

impl Endpoint {
    pub fn new(config: EndpointConfig) -> Self {
        Endpoint { config }
    }
    pub fn restore_bindings(&mut self, _b: Vec<Binding>) {}
    pub fn provision_user(&mut self, _aor: &str) {}
    pub fn handle_receive(&mut self, _now: Instant, _wall: i64, _from: Peer, _bytes: Bytes) {}
    pub fn handle_timeout(&mut self, _now: Instant, _wall: i64) {}
    pub fn poll_output(&mut self) -> Output {
        Output::Timeout(None)
    }
}
