//! The one interface the driver uses: a sans-IO SIP server endpoint — registrar (RFC 3261
//! §10.3), location service and stateful proxy (§16), with RFC 3581 symmetric response
//! routing — on top of the transaction layer (§17).
//!
//! The driver feeds every datagram or stream-framed message with [`Endpoint::handle_receive`],
//! calls [`Endpoint::handle_timeout`] when the last [`Output::Timeout`] is due, and after every
//! input drains [`Endpoint::poll_output`] until it returns [`Output::Timeout`]:
//!
//! ```text
//! endpoint.handle_receive(now, wall, peer, bytes);
//! loop {
//!     match endpoint.poll_output() {
//!         Output::Transmit { to, bytes } => send(to, bytes),
//!         Output::Event(e) => on_event(e),
//!         Output::Timeout(at) => { sleep_until(at); break }
//!     }
//! }
//! ```
//!
//! Monotonic `now` drives the RFC 3261 timers and Timer C; wall-clock `wall_unix` (Unix
//! seconds) drives binding expiry, which must survive a restart. Nothing here reads a clock,
//! opens a socket or resolves a name.
//!
//! Behaviour, in short (details in the module docs of the registrar, the location service and
//! the proxy):
//! - REGISTER to one of `domains` (or to a listen address) is served by the registrar
//!   (§10.3); every change is reported as [`Event::BindingsChanged`] for the store.
//! - OPTIONS to the server itself (no user part) gets 200 with Allow (§11); other methods
//!   addressed to the server itself get 405.
//! - Requests for a user of our domains go to that user's current bindings, highest q first,
//!   equal q in parallel: 404 when the AoR was never seen, 480 when it is known (see
//!   [`Endpoint::provision_user`]) but has no binding now.
//! - Other requests go to the Route / Request-URI (§16.4–§16.6). Only IP literals,
//!   `localhost` and the names of [`EndpointConfig::static_hosts`] are resolved here. Another
//!   host name gets 502 Bad Gateway with a Warning, unless [`EndpointConfig::dns`] is set:
//!   then the target waits while the driver locates the server (RFC 3263 §4: NAPTR, SRV,
//!   A/AAAA) and reports the ordered addresses:
//!
//!   ```text
//!   Output::Event(Event::Resolve { id, host, port, transport, secure }) => spawn(lookup(..)),
//!   // later, in the event loop:
//!   endpoint.handle_resolved(now, wall, id, result);   // Ok(Vec<Peer>) or Err(why)
//!   ```
//!
//!   The request goes to the first address; when that branch fails — 503, a transport
//!   error, or no response before Timer B/F (RFC 3263 §4.3) — it is sent again, with a new
//!   branch, to the next, up to [`EndpointConfig::max_dns_targets`] addresses. A lookup that
//!   fails or finds nothing counts as a target answering 502 with a Warning naming the host
//!   (RFC 3261 has no status for it: RFC 2543's 478 Unresolvable Destination was dropped).
//! - Received requests get `received`/`rport` on their top Via (RFC 3581); unparseable
//!   requests get 400 (505, 513, 416) with `Warning: 399 host "…"`, unparseable responses are
//!   dropped; both are reported as [`Event::MessageRejected`].
//! - Until an admission policy is installed ([`Endpoint::set_policy`], the seam for digest
//!   authentication) every request is admitted: the proxy relays to any IP-literal target.
//! - Digest authentication with mutual authentication (RFC 3261 §22, RFC 7616, RFC 8760,
//!   draft-dotson-sip-mutual-auth) is [`crate::auth::DigestPolicy`]:
//!
//!   ```text
//!   let policy = DigestPolicy::new(DigestConfig::new(NonceSecret::new(secret), seed))?;
//!   endpoint.set_policy(Box::new(policy));
//!   endpoint.set_users(users_from_the_store);   // again whenever the store changes
//!   ```
//!
//!   REGISTER is challenged with 401, requests from our users with 407; the 200 of an
//!   authenticated REGISTER carries Authentication-Info, a 2xx forwarded for an
//!   authenticated request carries our Proxy-Authentication-Info above those of downstream
//!   proxies (see [`crate::auth`]).
//! - The RFC 4474 verification service ([`Endpoint::set_verification_service`], RFC 4474 §6)
//!   checks the Identity of inbound requests: requests to our domains that the admission
//!   policy did not authenticate (they come from elsewhere; our own users' requests are
//!   signed, not verified). A request without Identity gets 428 when the policy requires one
//!   for its method; one whose certificate is cached is verified at once; otherwise it is
//!   parked (an INVITE's server transaction has already sent 100 Trying and absorbs
//!   retransmissions meanwhile) and the driver is asked for the certificate:
//!
//!   ```text
//!   Output::Event(Event::FetchCertificate { id, url }) => spawn(fetch(url)),
//!   // later, in the event loop:
//!   endpoint.handle_certificate(now, wall, id, result);   // Ok(CertificateChain) or Err(why)
//!   ```
//!
//!   A verified request is forwarded unchanged (Identity stays: the UA may verify again); a
//!   refused one is answered 428/436/437/438/403 with `Warning: 399 host "why"`. A CANCEL
//!   for a parked INVITE answers it 487.

use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Instant;

use bytes::Bytes;
use vouch_msg::Transport;

use crate::core::Core;
use crate::policy::RequestPolicy;
use crate::transaction::{Reliability, ServerTransactionKey, TransactionConfig};
use crate::users::UserCredentials;
use crate::verification::{CertificateChain, FetchId, VerificationService};

/// A SIP transport (RFC 3261 §18).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TransportKind {
    /// UDP: unreliable, one message per datagram.
    Udp,
    /// TCP: reliable, framed by Content-Length.
    Tcp,
    /// TLS over TCP: reliable, framed by Content-Length.
    Tls,
}

impl TransportKind {
    /// True for TCP and TLS (§17.1.1.2: no retransmission timers).
    pub fn is_reliable(self) -> bool {
        !matches!(self, TransportKind::Udp)
    }

    /// The transaction-layer reliability of this transport.
    pub fn reliability(self) -> Reliability {
        if self.is_reliable() {
            Reliability::Reliable
        } else {
            Reliability::Unreliable
        }
    }

    /// How a message received over this transport is framed (§18.3: Content-Length is
    /// mandatory on a stream, optional in a datagram).
    pub fn framing(self) -> Transport {
        if self.is_reliable() {
            Transport::Stream
        } else {
            Transport::Datagram
        }
    }

    /// The token used in Via (`UDP`, `TCP`, `TLS`).
    pub fn as_str(self) -> &'static str {
        match self {
            TransportKind::Udp => "UDP",
            TransportKind::Tcp => "TCP",
            TransportKind::Tls => "TLS",
        }
    }

    /// The lowercase form used in URI `transport=` parameters and [`Peer`] strings.
    pub fn as_param(self) -> &'static str {
        match self {
            TransportKind::Udp => "udp",
            TransportKind::Tcp => "tcp",
            TransportKind::Tls => "tls",
        }
    }

    /// Reads a transport token (case-insensitive). `SCTP`, `WS` and the like are `None`.
    pub fn from_token(t: &str) -> Option<Self> {
        if t.eq_ignore_ascii_case("udp") {
            Some(TransportKind::Udp)
        } else if t.eq_ignore_ascii_case("tcp") {
            Some(TransportKind::Tcp)
        } else if t.eq_ignore_ascii_case("tls") {
            Some(TransportKind::Tls)
        } else {
            None
        }
    }

    /// The default port (RFC 3261 §19.1.2): 5061 for TLS, 5060 otherwise.
    pub fn default_port(self) -> u16 {
        match self {
            TransportKind::Tls => 5061,
            _ => 5060,
        }
    }
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A connection the driver owns (TCP or TLS); opaque to the core.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowId(pub u64);

/// Where a message came from or goes to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Peer {
    /// The transport.
    pub transport: TransportKind,
    /// The remote address.
    pub addr: SocketAddr,
    /// The connection a message came on (TCP/TLS). On output, `None` means "use an open
    /// connection to `addr` or open one".
    pub flow: Option<FlowId>,
}

impl Peer {
    /// A peer without a flow.
    pub fn new(transport: TransportKind, addr: SocketAddr) -> Self {
        Peer {
            transport,
            addr,
            flow: None,
        }
    }
}

/// `udp:127.0.0.1:5070`, `tls:[2001:db8::1]:5061` — the form the store keeps. The flow is not
/// part of it (a connection does not survive a restart).
impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.transport.as_param(), self.addr)
    }
}

/// A string that is not `transport:ip:port`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a peer (transport:ip:port): {0}")]
pub struct PeerParseError(pub String);

impl FromStr for Peer {
    type Err = PeerParseError;

    /// Parses the [`fmt::Display`] form; the flow is `None`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || PeerParseError(s.to_owned());
        let (t, addr) = s.split_once(':').ok_or_else(bad)?;
        let transport = TransportKind::from_token(t).ok_or_else(bad)?;
        let addr = addr.parse::<SocketAddr>().map_err(|_| bad())?;
        Ok(Peer::new(transport, addr))
    }
}

/// One RFC 3263 lookup the driver was asked to perform ([`Event::Resolve`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResolveId(pub u64);

/// How the endpoint behaves.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    /// The domains this server is responsible for (registrar and location service), e.g.
    /// `example.com`. Compared case-insensitively with Request-URI and To hosts.
    pub domains: Vec<String>,
    /// The listen addresses. Used for the sent-by of our Via, the Record-Route URI, and to
    /// recognise our own address in Request-URI, Route and Via (loop detection). A listen
    /// address of `0.0.0.0`/`::` needs `advertised_host`.
    pub local: Vec<(TransportKind, SocketAddr)>,
    /// The host written in Via and Record-Route instead of the listen IP (a public name or
    /// address).
    pub advertised_host: Option<String>,
    /// Next hops for host names, as `(host, address)`, used before any DNS: a Request-URI or
    /// Route naming another domain is sent to the address listed here (with the URI's port
    /// if it names one). Other host names get 502 unless `dns` is set.
    pub static_hosts: Vec<(String, SocketAddr)>,
    /// Whether the driver resolves other host names (RFC 3263, [`Event::Resolve`]).
    pub dns: bool,
    /// How many addresses of one resolved target are tried in turn (RFC 3263 §4.3).
    pub max_dns_targets: usize,
    /// How many lookups may be in progress at once; a target beyond that gets 503.
    pub max_pending_resolutions: usize,
    /// The shortest registration accepted (423 Interval Too Brief below it, §10.3 step 7).
    pub min_expires: u32,
    /// The longest registration granted (longer requests are shortened).
    pub max_expires: u32,
    /// The registration interval when the REGISTER names none.
    pub default_expires: u32,
    /// Transaction timers.
    pub transaction: TransactionConfig,
    /// Parser limits (larger messages get 513).
    pub limits: vouch_msg::Limits,
    /// Seed of the RNG for branches and tags (tests are reproducible).
    pub seed: u64,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        EndpointConfig {
            domains: Vec::new(),
            local: Vec::new(),
            advertised_host: None,
            static_hosts: Vec::new(),
            dns: false,
            max_dns_targets: 8,
            max_pending_resolutions: 1024,
            min_expires: 60,
            max_expires: 3600,
            default_expires: 3600,
            transaction: TransactionConfig::default(),
            limits: vouch_msg::Limits::DEFAULT,
            seed: 0,
        }
    }
}

/// One registrar binding (RFC 3261 §10.3): an AoR bound to a Contact, the same shape as the
/// store's binding (whose `source` is [`Peer`]'s string form).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    /// The address-of-record, `sip:user@domain` (scheme `sip`, host lowercased).
    pub aor: String,
    /// The Contact URI as registered.
    pub contact: String,
    /// Expiry, Unix seconds.
    pub expires_at: i64,
    /// q in thousandths (1000 when the Contact has no q).
    pub q: u16,
    /// Call-ID of the REGISTER that last refreshed it.
    pub call_id: String,
    /// Its CSeq number.
    pub cseq: u32,
    /// Where the REGISTER came from: requests for the AoR are sent there (NAT, TCP flows).
    pub source: Peer,
}

/// How much a [`Event::Log`] matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    /// Per-message detail.
    Debug,
    /// Something an operator may want to see.
    Info,
    /// Something unexpected from a peer.
    Warn,
}

/// What the endpoint tells the driver.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The bindings of `aor` changed: persist them, replacing what was stored (empty: all
    /// removed, by REGISTER or by expiry).
    BindingsChanged {
        /// The AoR.
        aor: String,
        /// All its current bindings.
        bindings: Vec<Binding>,
    },
    /// A message could not be parsed, or a request would not pass the parser limits once
    /// its top Via had `received`/`rport` (RFC 3581 §4). `status` is the response sent (400,
    /// 505, 513, …), or 0 when it was dropped without one (responses, ACKs, requests too
    /// broken to answer).
    MessageRejected {
        /// Who sent it.
        from: Peer,
        /// The response status sent, or 0.
        status: u16,
        /// The parse error.
        reason: String,
    },
    /// A request was forwarded (statefully or, for ACK, statelessly).
    Forwarded {
        /// Its method.
        method: String,
        /// Its Call-ID.
        call_id: String,
        /// The next hop.
        to: Peer,
    },
    /// The verification service needs the certificate at `url` (an Identity-Info URI, http or
    /// https): fetch it without blocking the event loop and report the result with
    /// [`Endpoint::handle_certificate`] under `id`. The requests waiting for it are parked
    /// until then (or until the service's deadline).
    FetchCertificate {
        /// The fetch, to quote in [`Endpoint::handle_certificate`].
        id: FetchId,
        /// What to fetch.
        url: String,
    },
    /// A target's next hop is the host name `host` ([`EndpointConfig::dns`]): locate the
    /// SIP server for it by RFC 3263 §4 without blocking the event loop, and report the
    /// addresses to try, in order, with [`Endpoint::handle_resolved`] under `id`.
    Resolve {
        /// The lookup, to quote in [`Endpoint::handle_resolved`].
        id: ResolveId,
        /// The host name of the URI.
        host: String,
        /// The URI's port: with one, no NAPTR or SRV (§4.2), only A/AAAA.
        port: Option<u16>,
        /// The URI's `transport` parameter (TLS for `sips:` over TCP): with one, no NAPTR
        /// (§4.1).
        transport: Option<TransportKind>,
        /// A `sips:` URI: only TLS will do (§4.1).
        secure: bool,
    },
    /// A diagnostic.
    Log {
        /// Severity.
        level: LogLevel,
        /// Text.
        message: String,
    },
}

/// What the driver must do next. `E` is the engine's event type: [`Event`] for the server
/// endpoint, [`crate::ua::UaEvent`] for the user agent.
#[derive(Clone, Debug)]
pub enum Output<E = Event> {
    /// Send `bytes` to `to` (over `to.flow` when set).
    Transmit {
        /// The destination.
        to: Peer,
        /// One complete SIP message.
        bytes: Bytes,
    },
    /// Tell the application.
    Event(E),
    /// Nothing more for now: call [`Endpoint::handle_timeout`] at this instant (`None`: only
    /// when a message comes).
    Timeout(Option<Instant>),
}

/// What an [`Endpoint`] holds at one moment ([`Endpoint::occupancy`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Occupancy {
    /// Live server and client transactions (RFC 3261 §17).
    pub transactions: usize,
    /// Requests proxied statefully whose transactions are live: their response contexts
    /// (RFC 3261 §16.7).
    pub proxied: usize,
    /// AoRs with at least one binding (RFC 3261 §10.3).
    pub aors: usize,
    /// Their bindings.
    pub bindings: usize,
}

/// A SIP registrar and stateful proxy, sans-IO.
#[derive(Debug)]
pub struct Endpoint {
    core: Core,
}

impl Endpoint {
    /// A new endpoint with no bindings.
    pub fn new(config: EndpointConfig) -> Self {
        Endpoint {
            core: Core::new(config),
        }
    }

    /// Loads the bindings stored before a restart. Expired ones are dropped (with
    /// [`Event::BindingsChanged`]) at the next input: call [`Endpoint::handle_timeout`] once
    /// after restoring. Their AoRs count as known (480 rather than 404 when they lapse).
    pub fn restore_bindings(&mut self, bindings: Vec<Binding>) {
        self.core.restore_bindings(bindings);
    }

    /// Marks an AoR as a provisioned user: with no current binding, requests for it get
    /// 480 Temporarily Unavailable instead of 404 Not Found.
    pub fn provision_user(&mut self, aor: &str) {
        self.core.provision_user(aor);
    }

    /// Installs the admission policy consulted before the registrar or proxy acts on a
    /// request (the seam for digest authentication). The default admits everything.
    pub fn set_policy(&mut self, policy: Box<dyn RequestPolicy>) {
        self.core.set_policy(policy);
    }

    /// Replaces the digest accounts the admission policy authenticates against (RFC 3261
    /// §22): call it at start and whenever the store's users change. The endpoint keeps no
    /// passwords, only H(A1) per algorithm. Requests in progress are not affected; the next
    /// request sees the new accounts.
    pub fn set_users(&mut self, users: Vec<UserCredentials>) {
        self.core.set_users(users);
    }

    /// Installs (or, with `None`, removes) the RFC 4474 authentication service: requests the
    /// policy authenticated are dated and signed before they are forwarded.
    pub fn set_authentication_service(&mut self, service: Option<crate::AuthenticationService>) {
        self.core.set_authentication_service(service);
    }

    /// Installs (or, with `None`, removes) the RFC 4474 verification service for inbound
    /// requests (see the module docs). Build it with [`VerificationService::new`]. Requests
    /// parked in a service that is replaced are dropped unanswered with it (their clients
    /// time out), so install it before traffic flows.
    pub fn set_verification_service(
        &mut self,
        service: Option<VerificationService<ParkedRequest>>,
    ) {
        self.core.set_verification_service(service);
    }

    /// The result of the certificate fetch [`Event::FetchCertificate`] asked for: the chain,
    /// or why it could not be had (every request waiting for it gets 436 Bad Identity-Info).
    pub fn handle_certificate(
        &mut self,
        now: Instant,
        wall_unix: i64,
        id: FetchId,
        result: Result<CertificateChain, String>,
    ) {
        self.core.handle_certificate(now, wall_unix, id, result);
    }

    /// The result of the lookup [`Event::Resolve`] asked for: the addresses to try, best
    /// first (the endpoint tries at most [`EndpointConfig::max_dns_targets`]), or why there
    /// are none (the target counts as answering 502, with that reason in a Warning).
    pub fn handle_resolved(
        &mut self,
        now: Instant,
        wall_unix: i64,
        id: ResolveId,
        result: Result<Vec<Peer>, String>,
    ) {
        self.core.handle_resolved(now, wall_unix, id, result);
    }

    /// The driver could not reach `to` — a TCP or TLS connection to it was refused or timed
    /// out (RFC 3261 §18.4). Proxied requests sent there that have had no response fail at
    /// once with a transport error (503, §16.9), and a resolved target moves on to its next
    /// address (RFC 3263 §4.3) instead of waiting for Timer B/F. The flow is ignored: every
    /// branch to that transport and address is concerned.
    pub fn handle_unreachable(&mut self, now: Instant, wall_unix: i64, to: &Peer) {
        self.core.handle_unreachable(now, wall_unix, to);
    }

    /// The current (unexpired at the last input) bindings of `aor`.
    pub fn bindings(&self, aor: &str) -> Vec<Binding> {
        self.core.bindings(aor)
    }

    /// True when no transaction and no proxied request is in progress.
    pub fn is_idle(&self) -> bool {
        self.core.load() == (0, 0)
    }

    /// What the endpoint holds now, for metrics. Costs a pass over the AoRs: for a scrape,
    /// not for every message.
    pub fn occupancy(&self) -> Occupancy {
        let (transactions, proxied) = self.core.load();
        let (aors, bindings) = self.core.registered();
        Occupancy {
            transactions,
            proxied,
            aors,
            bindings,
        }
    }

    /// The user a TLS connection authenticated with a client certificate (validated by the
    /// driver with [`vouch_auth::client_cert::ClientCertificateValidator`]), before the first
    /// message received on it is handed in; `None` when the connection closes. Requests on
    /// that flow that speak for one of the certificate's AoRs are authenticated without a
    /// digest challenge, and signed by the authentication service like digest-authenticated
    /// ones (identity BCP draft §3).
    pub fn handle_flow_client_identity(
        &mut self,
        flow: FlowId,
        identity: Option<std::sync::Arc<vouch_auth::client_cert::ClientIdentity>>,
    ) {
        self.core.handle_flow_client_identity(flow, identity);
    }

    /// A message from the transport: one UDP datagram, or one message framed from a TCP/TLS
    /// stream (Content-Length mandatory).
    pub fn handle_receive(&mut self, now: Instant, wall_unix: i64, from: Peer, bytes: Bytes) {
        self.core.handle_receive(now, wall_unix, from, bytes);
    }

    /// Fires every timer due at `now`, and expires bindings at `wall_unix`.
    pub fn handle_timeout(&mut self, now: Instant, wall_unix: i64) {
        self.core.handle_timeout(now, wall_unix);
    }

    /// The next output; drain until [`Output::Timeout`].
    pub fn poll_output(&mut self) -> Output {
        self.core.poll_output()
    }
}

/// What the proxy keeps with a request parked in its verification service: enough to resume
/// forwarding (or answer) once the certificate is in.
#[derive(Debug)]
pub struct ParkedRequest {
    pub(crate) key: ServerTransactionKey,
    pub(crate) from: Peer,
    pub(crate) loop_hash: String,
}

/// The outputs waiting for the driver.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    queue: VecDeque<Output>,
}

impl Outbox {
    pub(crate) fn transmit(&mut self, to: Peer, bytes: Bytes) {
        self.queue.push_back(Output::Transmit { to, bytes });
    }

    pub(crate) fn event(&mut self, e: Event) {
        self.queue.push_back(Output::Event(e));
    }

    pub(crate) fn log(&mut self, level: LogLevel, message: String) {
        self.event(Event::Log { level, message });
    }

    pub(crate) fn pop(&mut self) -> Option<Output> {
        self.queue.pop_front()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn peer_round_trips_through_store_form() {
        for s in [
            "udp:127.0.0.1:5070",
            "tls:[2001:db8::1]:5061",
            "tcp:10.0.0.1:5060",
        ] {
            let p: Peer = s.parse().unwrap();
            assert_eq!(p.to_string(), s);
            assert_eq!(p.flow, None);
        }
        assert!("sctp:1.2.3.4:5".parse::<Peer>().is_err());
        assert!("udp:nohost".parse::<Peer>().is_err());
        assert!("".parse::<Peer>().is_err());
    }

    #[test]
    fn transport_tokens() {
        assert_eq!(TransportKind::Udp.to_string(), "UDP");
        assert!(TransportKind::Tls.is_reliable());
        assert!(!TransportKind::Udp.is_reliable());
        assert_eq!(TransportKind::from_token("tCp"), Some(TransportKind::Tcp));
    }
}
