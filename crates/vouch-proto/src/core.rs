//! The server core behind [`crate::Endpoint`]: it parses what the driver receives, applies
//! RFC 3581 to requests, runs the transaction layer (§17) and acts as its transaction user —
//! registrar (§10.3) for REGISTERs to our domains, a small UAS for requests to the server
//! itself (OPTIONS, §11), and a stateful proxy (§16) for everything else.
//!
//! Request handling order (§16.3, §16.4): route preprocessing, then — for a REGISTER to us —
//! Require and the admission policy and the registrar; for a request to the server itself
//! the admission policy, Require and the UAS; otherwise Max-Forwards (483), loop detection (482), Proxy-Require
//! (420), the admission policy, target determination (location service or Request-URI) and
//! forwarding. CANCEL (§16.10) and ACK (§16.11) are not admitted through the policy. The UAS
//! admits before examining anything else (§8.2: "once a request is authenticated (or
//! authentication is skipped)").
//!
//! Mutual authentication (RFC 2617 §3.2.3, draft-dotson-sip-mutual-auth §6): a request the
//! policy admitted with a [`Grant`] gets, on the 200 of the registrar or the UAS, an
//! `Authentication-Info`; for a proxied request the grant lives in the response context, our
//! realm's Proxy-Authorization is consumed before forwarding (§22.3), and every 2xx forwarded
//! for it gets our `Proxy-Authentication-Info` above those of downstream proxies, which are
//! kept as they are.
//!
//! RFC 4474 verification (§6): after the admission policy, a request to our domains that it
//! did not authenticate goes through the verification service when one is installed; a
//! request that must wait for its Identity-Info certificate is parked there with its server
//! transaction key and resumes at target determination once the certificate is in.
//!
//! RFC 3263 server location: with [`EndpointConfig::dns`], a target whose next hop is a host
//! name the core cannot resolve itself waits in the response context (which does not
//! complete meanwhile) for the driver's ordered addresses. Its branch goes to the first; when
//! it fails with a 503, a transport error or a timeout (RFC 3263 §4.3) a new branch to the
//! next address replaces it, and only the last address's failure counts for §16.7. The
//! driver reports a next hop it cannot reach (a refused TCP/TLS connection) with
//! [`crate::Endpoint::handle_unreachable`]: the branches sent there that have had no response
//! fail with a transport error at once, not at Timer B/F. An ACK forwarded statelessly
//! (§16.11) to a host name waits for the lookup too and goes to the first address: nothing
//! would tell its failure.

use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use vouch_auth::client_cert::ClientIdentity;
use vouch_msg::headers::format_sip_date;
use vouch_msg::{Limits, Message, Method, ParseError, Uri, reason_phrase};

use crate::auth::consume_proxy_credentials;
use crate::endpoint::{
    Binding, EndpointConfig, Event, FlowId, LogLevel, Outbox, Output, ParkedRequest, Peer,
    ResolveId, TransportKind,
};
use crate::identity_service::{AuthenticationService, SignRefusal};
use crate::local::Local;
use crate::location::{Location, aor_key, normalize_aor};
use crate::policy::{AdmitAll, Grant, RequestContext, RequestPolicy, Role, Verdict};
use crate::proxy::response_context::{Action, ResponseContext, Target};
use crate::proxy::{
    BranchError, BranchSpec, Forwarding, Proxy, build_branch, preprocess_route, route_values,
    unsupported_proxy_require, unsupported_require,
};
use crate::registrar::{RegistrarConfig, contact_values, register};
use crate::rng::Rng;
use crate::transaction::{
    ClientTransactionKey, InviteClientState, NonInviteClientState, ServerTransactionKey,
    TransactionEvent, TransactionKey, TransactionLayer, TransactionState,
};
use crate::users::{UserCredentials, UserDirectory};
use crate::verification::{
    CertificateChain, Check, FetchId, IdentityVerdict, Refusal, Resolved, VerificationService,
};
use crate::wire::{
    self, Lookup, Unresolvable, apply_received, loop_hash, pop_top_via, reply,
    reply_to_unparseable, response_destination,
};

/// The methods the server itself accepts (Allow in OPTIONS and 405 responses).
const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER";

/// The registrar, location service, proxy and transaction layer, driven by the endpoint.
#[derive(Debug)]
pub(crate) struct Core {
    config: EndpointConfig,
    local: Local,
    registrar: RegistrarConfig,
    layer: TransactionLayer<Peer>,
    location: Location,
    proxy: Proxy,
    policy: Box<dyn RequestPolicy>,
    users: UserDirectory,
    /// RFC 4474 authentication service for requests the policy authenticated.
    identity: Option<AuthenticationService>,
    /// RFC 4474 verification service for inbound requests, with the requests it parked.
    verification: Option<VerificationService<ParkedRequest>>,
    rng: Rng,
    out: Outbox,
    /// When to next look for expired bindings.
    expiry_at: Option<Instant>,
    /// The wall clock at the last input.
    wall: i64,
    /// Users the driver authenticated by TLS client certificate, by connection, until the
    /// connection closes.
    client_identities: HashMap<FlowId, Arc<ClientIdentity>>,
    /// Targets waiting for the driver's RFC 3263 lookup.
    resolutions: HashMap<ResolveId, Resolution>,
    next_resolve: u64,
    /// The addresses not tried yet of the resolved target a branch is trying (RFC 3263 §4.3).
    failover: HashMap<ClientTransactionKey, Failover>,
    /// Where each branch's client transaction sends, until it terminates: the transactions
    /// an unreachable next hop fails.
    branch_remote: HashMap<ClientTransactionKey, Peer>,
}

/// What waits for the lookup of its next hop's host name.
#[derive(Debug)]
enum Resolution {
    /// A target of a forwarded request.
    Target {
        forwarding: u64,
        target: Option<Target>,
        host: String,
    },
    /// An ACK forwarded statelessly (§16.11), after route preprocessing, with its branch
    /// parameters: sent to the first address (no response would tell a failure).
    Ack { ack: Box<Message>, branch: String },
}

/// What a branch to one address of a resolved target falls back on.
#[derive(Debug)]
struct Failover {
    target: Option<Target>,
    rest: VecDeque<Peer>,
}

/// What the core found out about a request before admitting it (see [`RequestContext`]).
#[derive(Clone, Copy, Debug)]
struct RequestFacts {
    from_is_local: bool,
    target_is_local: bool,
    in_dialog_via_our_record_route: bool,
}

/// A final response decided locally.
struct Answer {
    status: u16,
    reason: String,
    headers: Vec<(String, String)>,
}

impl Answer {
    fn new(status: u16) -> Self {
        Answer {
            status,
            reason: reason_phrase(status).to_owned(),
            headers: Vec::new(),
        }
    }

    fn with(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    /// The Warning value, kept when the answer becomes a failed branch of a context.
    fn warning(&self) -> Option<String> {
        self.headers
            .iter()
            .find(|(n, _)| n == "Warning")
            .map(|(_, v)| v.clone())
    }
}

impl Core {
    pub(crate) fn new(config: EndpointConfig) -> Self {
        let local = Local::new(
            &config.domains,
            &config.local,
            config.advertised_host.as_deref(),
        )
        .with_hosts(config.static_hosts.clone());
        let registrar = RegistrarConfig {
            min_expires: config.min_expires,
            max_expires: config.max_expires.max(config.min_expires),
            default_expires: config.default_expires,
        };
        Core {
            layer: TransactionLayer::new(config.transaction),
            rng: Rng::new(config.seed),
            local,
            registrar,
            location: Location::default(),
            proxy: Proxy::default(),
            policy: Box::new(AdmitAll),
            users: UserDirectory::default(),
            identity: None,
            verification: None,
            out: Outbox::default(),
            expiry_at: None,
            wall: 0,
            client_identities: HashMap::new(),
            resolutions: HashMap::new(),
            next_resolve: 0,
            failover: HashMap::new(),
            branch_remote: HashMap::new(),
            config,
        }
    }

    pub(crate) fn restore_bindings(&mut self, bindings: Vec<Binding>) {
        self.location.restore(bindings);
    }

    pub(crate) fn provision_user(&mut self, aor: &str) {
        self.location.provision(aor);
    }

    pub(crate) fn set_policy(&mut self, policy: Box<dyn RequestPolicy>) {
        self.policy = policy;
    }

    pub(crate) fn set_users(&mut self, users: Vec<UserCredentials>) {
        self.users = UserDirectory::new(users);
    }

    pub(crate) fn set_authentication_service(&mut self, service: Option<AuthenticationService>) {
        self.identity = service;
    }

    pub(crate) fn set_verification_service(
        &mut self,
        service: Option<VerificationService<ParkedRequest>>,
    ) {
        self.verification = service;
    }

    pub(crate) fn bindings(&self, aor: &str) -> Vec<Binding> {
        self.location.current(&normalize_aor(aor), i64::MIN)
    }

    /// Live transactions and response contexts (for tests and metrics).
    pub(crate) fn load(&self) -> (usize, usize) {
        (self.layer.len(), self.proxy.len())
    }

    /// AoRs with bindings and their bindings (for metrics).
    pub(crate) fn registered(&self) -> (usize, usize) {
        self.location.counts()
    }

    pub(crate) fn poll_output(&mut self) -> Output {
        if let Some(o) = self.out.pop() {
            return o;
        }
        let next = [
            self.layer.poll_timeout(),
            self.proxy.poll_timeout(),
            self.expiry_at,
            self.verification
                .as_ref()
                .and_then(VerificationService::poll_timeout),
        ]
        .into_iter()
        .flatten()
        .min();
        Output::Timeout(next)
    }

    // ---- inputs ---------------------------------------------------------------------------

    pub(crate) fn handle_receive(&mut self, now: Instant, wall: i64, from: Peer, bytes: Bytes) {
        self.expire_bindings(now, wall);
        // RFC 5626 §3.5.1 keepalives (CRLF) and stray whitespace carry nothing.
        if bytes.iter().all(|b| b.is_ascii_whitespace()) {
            return;
        }
        let framing = from.transport.framing();
        match Message::parse_with(bytes.clone(), &self.config.limits, framing) {
            Err(e) => self.reject_unparseable(&from, &bytes, &e),
            Ok(m) if m.is_request() => {
                // §18.2.1, RFC 3581 §4.
                let m = match apply_received(&m, &from, &self.config.limits) {
                    Ok(Some(edited)) => edited,
                    Ok(None) => m,
                    Err(e) => {
                        self.reject_received_overflow(&from, &m, &e);
                        return;
                    }
                };
                let reliability = from.transport.reliability();
                self.layer.handle_receive(now, m, from, reliability);
            }
            Ok(m) => {
                // §18.1.2: a response whose top Via is not ours is discarded.
                if !m.top_via().is_some_and(|v| self.local.is_our_via(&v)) {
                    self.log(
                        LogLevel::Debug,
                        format!("dropped a response from {from} whose top Via is not ours"),
                    );
                    return;
                }
                let reliability = from.transport.reliability();
                self.layer.handle_receive(now, m, from, reliability);
            }
        }
        self.pump(now, wall);
    }

    pub(crate) fn handle_flow_client_identity(
        &mut self,
        flow: FlowId,
        identity: Option<Arc<ClientIdentity>>,
    ) {
        match identity {
            Some(id) => {
                self.client_identities.insert(flow, id);
            }
            None => {
                self.client_identities.remove(&flow);
            }
        }
    }

    pub(crate) fn handle_timeout(&mut self, now: Instant, wall: i64) {
        self.expire_bindings(now, wall);
        self.layer.handle_timeout(now);
        self.pump(now, wall);
        for id in self.proxy.due(now) {
            let actions = match self.proxy.get_mut(id) {
                Some(f) => f.context.handle_timeout(now),
                None => continue,
            };
            self.execute(now, id, actions);
        }
        let resolved = match &mut self.verification {
            Some(service) => service.handle_timeout(now),
            None => Vec::new(),
        };
        self.resume_verified(now, wall, resolved);
        self.pump(now, wall);
    }

    pub(crate) fn handle_certificate(
        &mut self,
        now: Instant,
        wall: i64,
        id: FetchId,
        result: Result<CertificateChain, String>,
    ) {
        self.expire_bindings(now, wall);
        let resolved = match &mut self.verification {
            Some(service) => service.certificate_fetched(now, wall, id, result),
            None => Vec::new(),
        };
        self.resume_verified(now, wall, resolved);
        self.pump(now, wall);
    }

    /// The driver's answer to [`Event::Resolve`]: the target is tried at the first address
    /// (the rest kept for failover), or counts as a 502 with a Warning naming the host.
    pub(crate) fn handle_resolved(
        &mut self,
        now: Instant,
        wall: i64,
        id: ResolveId,
        result: Result<Vec<Peer>, String>,
    ) {
        self.expire_bindings(now, wall);
        let (forwarding, target, host) = match self.resolutions.remove(&id) {
            Some(Resolution::Target {
                forwarding,
                target,
                host,
            }) => (forwarding, target, host),
            Some(Resolution::Ack { ack, branch }) => {
                match result.as_deref().map(<[Peer]>::first) {
                    Ok(Some(peer)) => {
                        if let Err(e) = self.send_ack(wall, &ack, &branch, Some(peer)) {
                            self.log(LogLevel::Debug, format!("ACK not forwarded: {e:?}"));
                        }
                    }
                    _ => self.log(
                        LogLevel::Debug,
                        format!("ACK not forwarded: {} did not resolve", ack.call_id()),
                    ),
                }
                return;
            }
            None => return,
        };
        let Some(f) = self.proxy.get_mut(forwarding) else {
            return;
        };
        f.context.resolved();
        let received_over = f.received_over;
        let failure = if f.context.is_closed() {
            // CANCELled (or answered by another branch) meanwhile: nothing more is sent.
            Some(Answer::new(487))
        } else {
            match result {
                Ok(peers) if !peers.is_empty() => {
                    let peers = peers
                        .into_iter()
                        .take(self.config.max_dns_targets.max(1))
                        .collect();
                    self.try_peers(now, wall, forwarding, target, peers).err()
                }
                Ok(_) => Some(self.unresolved(received_over, &host, "no address found")),
                Err(why) => Some(self.unresolved(received_over, &host, &why)),
            }
        };
        if let Some(a) = failure
            && let Some(f) = self.proxy.get_mut(forwarding)
        {
            f.context.add_failure(a.status, a.warning());
        }
        let actions = self
            .proxy
            .get_mut(forwarding)
            .map(|f| f.context.finish())
            .unwrap_or_default();
        self.execute(now, forwarding, actions);
        self.pump(now, wall);
    }

    /// The driver cannot reach `to` (RFC 3261 §18.4, RFC 3263 §4.3: a refused connection):
    /// the branches sent there (same transport and address) that have had no response fail
    /// with a transport error — counted as 503 (§16.9), or failed over to the target's next
    /// address. Branches that had a response keep waiting for the rest of it.
    pub(crate) fn handle_unreachable(&mut self, now: Instant, wall: i64, to: &Peer) {
        self.expire_bindings(now, wall);
        let keys: Vec<ClientTransactionKey> = self
            .branch_remote
            .iter()
            .filter(|(_, p)| p.transport == to.transport && p.addr == to.addr)
            .map(|(k, _)| k.clone())
            .collect();
        for k in keys {
            let key = TransactionKey::Client(k);
            if matches!(
                self.layer.state(&key),
                Some(
                    TransactionState::InviteClient(InviteClientState::Calling)
                        | TransactionState::NonInviteClient(NonInviteClientState::Trying)
                )
            ) {
                self.layer.handle_transport_error(now, &key);
            }
        }
        self.pump(now, wall);
    }

    /// 502 for a target whose host name did not resolve: RFC 3261 has no better status (RFC
    /// 2543's 478 Unresolvable Destination was dropped from it), and a proxy that cannot
    /// reach the next hop is a gateway that failed. The Warning names the host.
    fn unresolved(&mut self, received_over: TransportKind, host: &str, why: &str) -> Answer {
        let text = format!("cannot resolve {host}: {why}");
        self.log(LogLevel::Info, text.clone());
        let w = wire::warning(&self.local.sent_by(received_over), &text);
        Answer::new(502).with("Warning", w)
    }

    // ---- plumbing -------------------------------------------------------------------------

    fn log(&mut self, level: LogLevel, message: String) {
        self.out.log(level, message);
    }

    /// Moves the transaction layer's transmits out and handles its events until both are dry.
    fn pump(&mut self, now: Instant, wall: i64) {
        loop {
            while let Some(t) = self.layer.poll_transmit() {
                self.out.transmit(t.remote, t.bytes);
            }
            let Some(ev) = self.layer.poll_event() else {
                break;
            };
            self.on_transaction_event(now, wall, ev);
        }
    }

    fn expire_bindings(&mut self, now: Instant, wall: i64) {
        self.wall = wall;
        for (aor, bindings) in self.location.expire(wall) {
            self.out.event(Event::BindingsChanged { aor, bindings });
        }
        // At most a day ahead: a far-off (or absurd, restored) expiry just means another look
        // later, never a timer that cannot be represented.
        self.expiry_at = self.location.next_expiry().and_then(|at| {
            let secs = u64::try_from(at.saturating_sub(wall)).unwrap_or(0);
            now.checked_add(Duration::from_secs(secs.min(86_400)))
        });
    }

    /// §16.3 step 1 / RFC 4475: a request that did not parse gets its error response (400 with
    /// a Warning, 505, 513, …) when enough of it can be read to route one; responses and the
    /// rest are dropped.
    fn reject_unparseable(&mut self, from: &Peer, bytes: &[u8], e: &ParseError) {
        let host = self.local.sent_by(from.transport);
        // §8.2.7: the same request gets the same tag; what did not parse has no fields to
        // derive it from (see `wire::stateless_tag`), so its bytes do.
        let mut h = std::collections::hash_map::DefaultHasher::new();
        bytes.hash(&mut h);
        let tag = format!("sl{:016x}", h.finish());
        let response = reply_to_unparseable(bytes, e, &host, &tag, &self.config.limits);
        self.rejected(from, response, e.to_string());
    }

    /// RFC 3261 §18.2.1 / RFC 3581 §4: a request whose top Via MUST get `received` (and its
    /// `rport` filled) but would then fail the parser limits (`e`) is refused, statelessly,
    /// with 513 and a Warning: the request as received was well-formed, it is our edit that
    /// exceeds what this server accepts (§21.5.11). Passing it on without them would break
    /// that MUST: a UA behind a NAT would not learn its address, and responses relayed
    /// statelessly (§16.7, late 2xx retransmissions) would go to its sent-by, not its source.
    /// The To tag is [`wire::stateless_tag`], so retransmissions get the same answer and the
    /// ACK for it is absorbed ([`Core::forward_ack`]).
    fn reject_received_overflow(&mut self, from: &Peer, request: &Message, e: &ParseError) {
        let why = format!("with received/rport added to its top Via (RFC 3581): {e}");
        let warning = self.warning(from, &why);
        // §17: an ACK is never answered; §8.2.7: a stateless UAS ignores CANCEL (there is no
        // transaction for it to cancel).
        let answered = !matches!(request.method(), Some(Method::Ack | Method::Cancel));
        let response = answered
            .then(|| {
                reply(
                    request,
                    513,
                    reason_phrase(513),
                    Some(&wire::stateless_tag(request)),
                    &[("Warning", &warning)],
                    &self.config.limits,
                )
            })
            .flatten();
        self.rejected(from, response, why);
    }

    /// Sends the stateless answer to a refused message (when there is one) and reports it.
    fn rejected(&mut self, from: &Peer, response: Option<Message>, reason: String) {
        let status = match response {
            Some(r) => {
                self.out.transmit(from.clone(), r.as_bytes().clone());
                r.status().unwrap_or_default()
            }
            None => 0,
        };
        self.out.event(Event::MessageRejected {
            from: from.clone(),
            status,
            reason,
        });
    }

    fn on_transaction_event(&mut self, now: Instant, wall: i64, ev: TransactionEvent<Peer>) {
        match ev {
            TransactionEvent::Request {
                key,
                request,
                remote,
                cancels,
            } => self.on_request(now, wall, key, request, remote, cancels),
            TransactionEvent::Response { key, response } => {
                self.on_branch_response(now, &key, response)
            }
            TransactionEvent::Ack { ack, .. } => self.forward_ack(wall, &ack),
            TransactionEvent::StrayAck { ack, .. } => self.forward_ack(wall, &ack),
            TransactionEvent::StrayResponse { response, .. } => {
                self.forward_stateless_response(&response)
            }
            TransactionEvent::Timeout {
                key: TransactionKey::Client(k),
                ..
            } => self.on_branch_failure(now, &k, 408),
            TransactionEvent::TransportError {
                key: TransactionKey::Client(k),
            } => self.on_branch_failure(now, &k, 503),
            TransactionEvent::Timeout { key, timer } => {
                self.log(LogLevel::Debug, format!("{key}: timer {timer:?} fired"));
            }
            TransactionEvent::TransportError { key } => {
                self.log(LogLevel::Info, format!("{key}: transport error"));
            }
            TransactionEvent::Terminated {
                key: TransactionKey::Client(k),
            } => {
                if let Some(id) = self.proxy.by_client(&k) {
                    let actions = self
                        .proxy
                        .get_mut(id)
                        .map(|f| f.context.handle_branch_terminated(&k))
                        .unwrap_or_default();
                    self.execute(now, id, actions);
                }
                self.proxy.remove_client(&k);
                self.failover.remove(&k);
                self.branch_remote.remove(&k);
            }
            TransactionEvent::Terminated {
                key: TransactionKey::Server(k),
            } => {
                if let Some(id) = self.proxy.by_server(&k) {
                    if let Some(f) = self.proxy.get_mut(id) {
                        f.context.handle_server_terminated();
                    }
                    self.proxy.refresh(id);
                }
            }
        }
    }

    // ---- requests -------------------------------------------------------------------------

    /// Sends a final (or any) response built here on a server transaction.
    fn answer(&mut self, now: Instant, key: &ServerTransactionKey, request: &Message, a: Answer) {
        let tag = self.rng.token();
        let extra: Vec<(&str, &str)> = a
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let limits = &self.config.limits;
        let Some(r) = reply(request, a.status, &a.reason, Some(&tag), &extra, limits) else {
            self.log(
                LogLevel::Warn,
                format!("could not build a {} response", a.status),
            );
            return;
        };
        if let Err(e) = self.layer.respond(now, key, r) {
            self.log(LogLevel::Debug, format!("response not sent: {e}"));
        }
    }

    fn warning(&self, from: &Peer, text: &str) -> String {
        wire::warning(&self.local.sent_by(from.transport), text)
    }

    /// Consults the admission policy; `Ok(Some(grant))` for an authenticated request, `Err`
    /// the response to send instead.
    fn admit(
        &mut self,
        request: &Message,
        from: &Peer,
        wall: i64,
        role: Role,
        facts: RequestFacts,
    ) -> Result<Option<Grant>, Answer> {
        let ctx = RequestContext {
            source: from,
            wall_unix: wall,
            role,
            domains: self.local.domains(),
            users: &self.users,
            from_is_local: facts.from_is_local,
            target_is_local: facts.target_is_local,
            in_dialog_via_our_record_route: facts.in_dialog_via_our_record_route,
            client_identity: from
                .flow
                .and_then(|f| self.client_identities.get(&f))
                .map(|id| &**id),
        };
        match self.policy.check(request, &ctx) {
            Verdict::Admit => Ok(None),
            Verdict::Authenticated(grant) => {
                self.log(
                    LogLevel::Debug,
                    format!(
                        "{} from {from}: authenticated as {:?} {}",
                        request.method().map(|m| m.as_str()).unwrap_or_default(),
                        grant.username(),
                        match grant.digest_proof() {
                            Some(proof) => format!("in realm {:?}", proof.realm()),
                            None => "by TLS client certificate".to_owned(),
                        }
                    ),
                );
                Ok(Some(grant))
            }
            Verdict::Reject {
                status,
                reason,
                headers,
                warning,
                log,
            } => {
                if let Some(text) = log {
                    self.log(LogLevel::Info, text);
                }
                let mut a = Answer {
                    status: status.clamp(300, 699),
                    reason,
                    headers,
                };
                if let Some(text) = warning {
                    a = a.with("Warning", self.warning(from, &text));
                }
                Err(a)
            }
        }
    }

    /// The Authentication-Info value for the 2xx the registrar or the UAS sends to a request
    /// admitted with `grant` (RFC 2617 §3.2.3; its body is empty).
    fn authentication_info(&mut self, grant: Option<&Grant>) -> Option<String> {
        let grant = grant?;
        self.policy.authentication_info(grant, b"", self.wall)
    }

    fn on_request(
        &mut self,
        now: Instant,
        wall: i64,
        key: ServerTransactionKey,
        request: Message,
        from: Peer,
        cancels: Option<ServerTransactionKey>,
    ) {
        if request.method() == Some(Method::Cancel) {
            self.on_cancel(now, &key, &request, cancels);
            return;
        }
        let result = self.route_request(now, wall, &key, &request, &from);
        if let Err(a) = result {
            self.answer(now, &key, &request, a);
        }
    }

    /// Decides what to do with a new request; an `Err` is the response to send.
    fn route_request(
        &mut self,
        now: Instant,
        wall: i64,
        key: &ServerTransactionKey,
        request: &Message,
        from: &Peer,
    ) -> Result<(), Answer> {
        let method = request.method().unwrap_or(Method::Other(""));
        // §16.4.
        let routed = preprocess_route(request, &self.local, &self.config.limits)
            .map_err(|e| Answer::new(400).with("Warning", self.warning(from, &e.to_string())))?;
        let has_route = routed.header(vouch_msg::HeaderName::Route).is_some();
        let ruri = routed.request_uri();
        let to_us = !has_route && matches!(&ruri, Some(Uri::Sip(u)) if self.local.is_ours(u));
        if !has_route && !matches!(&ruri, Some(Uri::Sip(_))) {
            // §16.3 step 2: tel and other schemes are not routed here.
            return Err(Answer::new(416));
        }
        let user = match &ruri {
            Some(Uri::Sip(u)) => u.user().map(str::to_owned),
            _ => None,
        };
        // Our Route was on top (or a strict router put our Record-Route in the Request-URI).
        let followed_our_route = routed.request_uri_str() != request.request_uri_str()
            || route_values(&routed).len() != route_values(request).len();
        let facts = RequestFacts {
            from_is_local: matches!(
                request.from().as_ref().map(|f| f.uri()),
                Some(Uri::Sip(u)) if self.local.is_ours(u)
            ),
            target_is_local: to_us,
            in_dialog_via_our_record_route: followed_our_route && request.to_tag().is_some(),
        };
        if to_us && method == Method::Register {
            return self.serve_register(now, wall, key, request, from, facts);
        }
        if to_us && user.is_none() {
            return Err(self.serve_locally(request, method, from, wall, facts));
        }
        // §16.3 step 3. (OPTIONS to the server itself was answered above; an OPTIONS for a
        // user with Max-Forwards 0 gets 483 too, as RFC 4475 §3.3.11 expects of a proxy.)
        if request.max_forwards() == Some(0) {
            return Err(Answer::new(483));
        }
        // §16.3 step 4.
        let hash = loop_hash(request);
        let prefix = format!("{}{hash}.", vouch_msg::headers::MAGIC_COOKIE);
        if request
            .vias()
            .iter()
            .any(|v| self.local.is_our_via(v) && v.branch().is_some_and(|b| b.starts_with(&prefix)))
        {
            return Err(Answer::new(482));
        }
        // §16.3 step 5.
        let unsupported = unsupported_proxy_require(request);
        if !unsupported.is_empty() {
            return Err(Answer::new(420).with("Unsupported", unsupported.join(", ")));
        }
        // §16.3 step 6: the admission seam.
        let grant = self.admit(request, from, wall, Role::Proxy, facts)?;
        // §22.3: our realm's credentials are consumed, the others travel on — also when a
        // client certificate, not they, admitted the request.
        let routed = match grant.as_ref().map(Grant::realm) {
            Some(realm) => match consume_proxy_credentials(&routed, realm, &self.config.limits) {
                Ok(Some(stripped)) => stripped,
                Ok(None) => routed,
                Err(e) => {
                    self.log(
                        LogLevel::Warn,
                        format!("could not remove our Proxy-Authorization: {e}"),
                    );
                    return Err(Answer::new(500));
                }
            },
            None => routed,
        };
        // RFC 4474 §5: the authentication service signs what our users send, once the policy
        // authenticated them and checked their From.
        let routed = match (&grant, &self.identity) {
            (Some(_), Some(service)) if service.signs(method.as_str()) => {
                match service.sign(&routed, wall, &self.config.limits) {
                    Ok(signed) => signed,
                    Err(SignRefusal::DateSkew) => {
                        return Err(Answer::new(403).with(
                            "Warning",
                            self.warning(
                                from,
                                "Date is more than 600 seconds from the server's clock",
                            ),
                        ));
                    }
                    Err(SignRefusal::CertificateNotValid) => {
                        self.log(
                            LogLevel::Warn,
                            "not signing: the request's Date is outside the identity \
                             certificate's validity (renew the certificate)"
                                .to_owned(),
                        );
                        return Err(Answer::new(500).with(
                            "Warning",
                            self.warning(
                                from,
                                "the server's identity certificate is not valid at the request's Date",
                            ),
                        ));
                    }
                    Err(SignRefusal::Failed(e)) => {
                        self.log(LogLevel::Warn, format!("could not sign the request: {e}"));
                        return Err(Answer::new(500));
                    }
                }
            }
            _ => routed,
        };
        // RFC 4474 §6: requests for our users from elsewhere (not authenticated here) have
        // their Identity checked before anything is done for them.
        if to_us
            && grant.is_none()
            && let Some(service) = &mut self.verification
        {
            let parked = ParkedRequest {
                key: key.clone(),
                from: from.clone(),
                loop_hash: hash.clone(),
            };
            match service.check(now, wall, &routed, parked) {
                Check::Verified(identity) => self.log(
                    LogLevel::Debug,
                    format!(
                        "{method} {}: Identity verified for {} (signed by {})",
                        routed.call_id(),
                        identity.aor(),
                        identity.signer_domain()
                    ),
                ),
                Check::Unsigned => {}
                Check::Refused(refusal) => {
                    return Err(self.identity_refused(from, &routed, refusal));
                }
                Check::NeedCertificate { id, url } => {
                    self.out.event(Event::FetchCertificate { id, url });
                    return Ok(());
                }
                Check::AwaitingCertificate { .. } => return Ok(()),
            }
        }
        self.forward_request(now, wall, key, routed, from, grant, to_us, hash)
    }

    /// Logs why a request's Identity was refused and builds the answer: the verifier's status
    /// with `Warning: 399 host "why"`.
    fn identity_refused(&mut self, from: &Peer, request: &Message, refusal: Refusal) -> Answer {
        self.log(
            LogLevel::Info,
            format!(
                "{} {} from {from}: Identity refused with {}: {}",
                request.method().map(|m| m.as_str()).unwrap_or_default(),
                request.call_id(),
                refusal.status,
                refusal.reason
            ),
        );
        let mut a =
            Answer::new(refusal.status).with("Warning", self.warning(from, &refusal.reason));
        a.reason = refusal.phrase.to_owned();
        a
    }

    /// Carries on with the requests the verification service is done with: verified ones are
    /// forwarded, refused ones answered.
    fn resume_verified(&mut self, now: Instant, wall: i64, resolved: Vec<Resolved<ParkedRequest>>) {
        for Resolved {
            context,
            request,
            verdict,
        } in resolved
        {
            let ParkedRequest {
                key,
                from,
                loop_hash,
            } = context;
            let result = match verdict {
                IdentityVerdict::Verified(identity) => {
                    self.log(
                        LogLevel::Debug,
                        format!(
                            "{}: Identity verified for {} (signed by {})",
                            request.call_id(),
                            identity.aor(),
                            identity.signer_domain()
                        ),
                    );
                    self.forward_request(
                        now,
                        wall,
                        &key,
                        request.clone(),
                        &from,
                        None,
                        true,
                        loop_hash,
                    )
                }
                IdentityVerdict::Refused(refusal) => {
                    Err(self.identity_refused(&from, &request, refusal))
                }
            };
            if let Err(a) = result {
                self.answer(now, &key, &request, a);
            }
        }
    }

    /// Target determination (§16.5) and forwarding (§16.6) of an admitted request; `routed`
    /// is the request after route preprocessing (and signing), `to_us` whether its
    /// Request-URI is ours (then the location service gives the targets).
    #[allow(clippy::too_many_arguments)]
    fn forward_request(
        &mut self,
        now: Instant,
        wall: i64,
        key: &ServerTransactionKey,
        routed: Message,
        from: &Peer,
        grant: Option<Grant>,
        to_us: bool,
        hash: String,
    ) -> Result<(), Answer> {
        let method = routed.method().unwrap_or(Method::Other(""));
        // §16.5.
        let groups = if to_us {
            self.location_targets(&routed, wall)?
        } else {
            Vec::new()
        };
        let invite = method == Method::Invite;
        let give_up = self.config.transaction.t1x64();
        let context =
            ResponseContext::new(key.clone(), invite, groups, give_up, self.config.limits)
                .with_timer_c(self.config.transaction.timer_c);
        let mut forwarding = Forwarding::new(context, routed, from.transport, hash);
        forwarding.grant = grant;
        let id = if to_us {
            let id = self.proxy.insert(forwarding);
            let group = self
                .proxy
                .get_mut(id)
                .and_then(|f| f.context.next_group())
                .unwrap_or_default();
            self.fork(now, wall, id, group);
            id
        } else {
            // The single target is the Request-URI (§16.5); when it cannot be reached nothing
            // is sent and the answer says why.
            let token = self.rng.token();
            let built = build_for(
                &self.local,
                &self.location,
                &self.config.limits,
                wall,
                &forwarding,
                None,
                None,
                &token,
            );
            let received_over = forwarding.received_over;
            let sent = match built {
                Ok((msg, peer)) => {
                    let id = self.proxy.insert(forwarding);
                    (id, self.send_branch(now, id, msg, peer).map(drop))
                }
                Err(BranchError::Unresolvable(Unresolvable::HostName(lookup)))
                    if self.config.dns =>
                {
                    self.lookup_capacity(received_over)?;
                    let id = self.proxy.insert(forwarding);
                    (id, self.lookup(id, None, lookup))
                }
                Err(e) => return Err(branch_answer(&self.local, received_over, e)),
            };
            if let (id, Err(a)) = &sent
                && let Some(f) = self.proxy.get_mut(*id)
            {
                f.context.add_failure(a.status, a.warning());
            }
            sent.0
        };
        let actions = self
            .proxy
            .get_mut(id)
            .map(|f| f.context.finish())
            .unwrap_or_default();
        self.execute(now, id, actions);
        Ok(())
    }

    /// The location service lookup (§16.5): the current bindings grouped by q, highest first.
    fn location_targets(
        &mut self,
        request: &Message,
        wall: i64,
    ) -> Result<Vec<Vec<Target>>, Answer> {
        let Some(Uri::Sip(u)) = request.request_uri() else {
            return Err(Answer::new(416));
        };
        let aor = if self.local.is_domain(u.host_str()) {
            aor_key(&u)
        } else {
            let user =
                String::from_utf8_lossy(&vouch_msg::unescape(u.user().unwrap_or(""))).into_owned();
            self.location
                .find_user(&user, self.local.domains())
                .unwrap_or_else(|| aor_key(&u))
        };
        let mut bindings = self.location.current(&aor, wall);
        if bindings.is_empty() {
            return Err(if self.location.is_known(&aor) {
                Answer::new(480)
            } else {
                Answer::new(404)
            });
        }
        bindings.sort_by_key(|b| std::cmp::Reverse(b.q));
        let mut groups: Vec<Vec<Target>> = Vec::new();
        let mut last_q = None;
        for b in bindings {
            let t = Target {
                uri: b.contact,
                source: Some(b.source),
            };
            if last_q == Some(b.q)
                && let Some(g) = groups.last_mut()
            {
                g.push(t);
                continue;
            }
            last_q = Some(b.q);
            groups.push(vec![t]);
        }
        Ok(groups)
    }

    /// Starts one branch per target; targets that cannot be tried count as failed branches.
    fn fork(&mut self, now: Instant, wall: i64, id: u64, targets: Vec<Target>) {
        for t in targets {
            if let Err(a) = self.start_target(now, wall, id, Some(t), None)
                && let Some(f) = self.proxy.get_mut(id)
            {
                f.context.add_failure(a.status, a.warning());
            }
        }
    }

    /// Starts the branch for one target of context `id` (`None`: the Request-URI), at the
    /// `resolved` address when DNS gave one. `Ok(None)` when nothing was sent yet: the
    /// target waits for its lookup (or the context is gone).
    fn start_target(
        &mut self,
        now: Instant,
        wall: i64,
        id: u64,
        target: Option<Target>,
        resolved: Option<Peer>,
    ) -> Result<Option<ClientTransactionKey>, Answer> {
        let token = self.rng.token();
        let Some(f) = self.proxy.get(id) else {
            return Ok(None);
        };
        let received_over = f.received_over;
        let built = build_for(
            &self.local,
            &self.location,
            &self.config.limits,
            wall,
            f,
            target.as_ref(),
            resolved.as_ref(),
            &token,
        );
        match built {
            Ok((msg, peer)) => self.send_branch(now, id, msg, peer).map(Some),
            Err(BranchError::Unresolvable(Unresolvable::HostName(lookup)))
                if self.config.dns && resolved.is_none() =>
            {
                self.lookup(id, target, lookup).map(|()| None)
            }
            Err(e) => Err(branch_answer(&self.local, received_over, e)),
        }
    }

    /// 503 when [`EndpointConfig::max_pending_resolutions`] lookups are in progress already.
    fn lookup_capacity(&self, received_over: TransportKind) -> Result<(), Answer> {
        if self.resolutions.len() < self.config.max_pending_resolutions {
            return Ok(());
        }
        let w = wire::warning(
            &self.local.sent_by(received_over),
            "too many DNS lookups in progress",
        );
        Err(Answer::new(503).with("Warning", w))
    }

    /// Parks a target of context `id` until the driver has resolved its host name
    /// ([`Event::Resolve`]); the context will not complete meanwhile.
    fn lookup(&mut self, id: u64, target: Option<Target>, lookup: Lookup) -> Result<(), Answer> {
        let Some(f) = self.proxy.get_mut(id) else {
            return Ok(());
        };
        let received_over = f.received_over;
        self.lookup_capacity(received_over)?;
        if let Some(f) = self.proxy.get_mut(id) {
            f.context.add_resolving();
        }
        let host = lookup.host.clone();
        self.ask_driver(
            lookup,
            Resolution::Target {
                forwarding: id,
                target,
                host,
            },
        );
        Ok(())
    }

    /// Emits [`Event::Resolve`] for `lookup`; `waiting` resumes when the answer comes.
    fn ask_driver(&mut self, lookup: Lookup, waiting: Resolution) {
        let rid = ResolveId(self.next_resolve);
        self.next_resolve += 1;
        self.resolutions.insert(rid, waiting);
        self.out.event(Event::Resolve {
            id: rid,
            host: lookup.host,
            port: lookup.port,
            transport: lookup.transport,
            secure: lookup.secure,
        });
    }

    /// Tries a resolved target at its addresses in order until one branch is sent, keeping
    /// the addresses after it for failover; `Err`: the last address's failure.
    fn try_peers(
        &mut self,
        now: Instant,
        wall: i64,
        id: u64,
        target: Option<Target>,
        mut peers: VecDeque<Peer>,
    ) -> Result<(), Answer> {
        let mut failure = Answer::new(502);
        while let Some(peer) = peers.pop_front() {
            match self.start_target(now, wall, id, target.clone(), Some(peer)) {
                Ok(Some(key)) => {
                    if !peers.is_empty() {
                        self.failover.insert(
                            key,
                            Failover {
                                target,
                                rest: peers,
                            },
                        );
                    }
                    return Ok(());
                }
                Ok(None) => return Ok(()),
                Err(a) => failure = a,
            }
        }
        Err(failure)
    }

    /// RFC 3263 §4.3: the branch `key` failed (503, transport error, timeout); when its
    /// target has addresses left and the context may still fork, a new branch (new
    /// transaction, new branch ID) to the next replaces it. True when it did.
    fn fail_over(&mut self, now: Instant, key: &ClientTransactionKey) -> bool {
        let Some(Failover { target, rest }) = self.failover.remove(key) else {
            return false;
        };
        let Some(id) = self.proxy.by_client(key) else {
            return false;
        };
        if self.proxy.get(id).is_none_or(|f| f.context.is_closed()) {
            return false;
        }
        let wall = self.wall;
        // The new branch is added before the old one completes, so the context never sees
        // all its branches done in between.
        if self.try_peers(now, wall, id, target, rest).is_err() {
            return false;
        }
        if let Some(f) = self.proxy.get_mut(id) {
            f.context.replace_branch(key);
        }
        self.log(
            LogLevel::Info,
            format!("{key} failed: trying the next address (RFC 3263 §4.3)"),
        );
        self.proxy.refresh(id);
        true
    }

    /// Sends one branch in its own client transaction (§16.6 step 11).
    fn send_branch(
        &mut self,
        now: Instant,
        id: u64,
        msg: Message,
        peer: Peer,
    ) -> Result<ClientTransactionKey, Answer> {
        let method = msg
            .method()
            .map(|m| m.as_str().to_owned())
            .unwrap_or_default();
        let call_id = msg.call_id().to_owned();
        let reliability = peer.transport.reliability();
        match self.layer.send_request(now, msg, peer.clone(), reliability) {
            Ok(ckey) => {
                if let Some(f) = self.proxy.get_mut(id) {
                    f.context.add_branch(now, ckey.clone());
                }
                self.proxy.add_client(id, ckey.clone());
                self.branch_remote.insert(ckey.clone(), peer.clone());
                self.out.event(Event::Forwarded {
                    method,
                    call_id,
                    to: peer,
                });
                Ok(ckey)
            }
            Err(e) => {
                self.log(LogLevel::Warn, format!("could not send a branch: {e}"));
                Err(Answer::new(500))
            }
        }
    }

    /// Carries out what a response context asked for.
    fn execute(&mut self, now: Instant, id: u64, actions: Vec<Action>) {
        let mut queue: VecDeque<Action> = actions.into();
        while let Some(action) = queue.pop_front() {
            let Some(server) = self.proxy.get_mut(id).map(|f| f.context.server().clone()) else {
                return;
            };
            match action {
                Action::Forward(response) => {
                    let response = self.with_proxy_authentication_info(id, response);
                    if self.layer.respond(now, &server, response.clone()).is_err() {
                        // §16.7 step 9: no server transaction any more — statelessly.
                        self.send_response_statelessly(&response);
                    }
                }
                Action::Generate(status, warning) => {
                    let request = self
                        .layer
                        .request(&TransactionKey::Server(server.clone()))
                        .cloned();
                    if let Some(request) = request {
                        let mut a = Answer::new(status);
                        if let Some(w) = warning {
                            a = a.with("Warning", w);
                        }
                        self.answer(now, &server, &request, a);
                    }
                }
                Action::Cancel(ckey) => {
                    if let Err(e) = self.layer.cancel(now, &ckey) {
                        self.log(LogLevel::Debug, format!("CANCEL not sent: {e}"));
                    }
                }
                Action::Abandon(ckey) => {
                    self.layer.abandon(&ckey);
                }
                Action::Fork(targets) => {
                    let wall = self.wall;
                    self.fork(now, wall, id, targets);
                    if let Some(f) = self.proxy.get_mut(id) {
                        queue.extend(f.context.finish());
                    }
                }
            }
        }
        self.proxy.refresh(id);
    }

    /// draft-dotson-sip-mutual-auth-02 §6: a 2xx forwarded for a request we authenticated
    /// with Proxy-Authorization gets our Proxy-Authentication-Info (rspauth — over the 2xx's
    /// body for auth-int — qop, cnonce, nc, nextnonce). Other responses, and 2xx to requests
    /// we did not authenticate, pass unchanged.
    ///
    /// Values from downstream proxies: §6 says a proxy "MUST include those values in a
    /// Proxy-Authentication-Info header in the forwarded response" (§3: "must preserve any
    /// Proxy-Authentication-Info header field values"), so they stay byte for byte, in their
    /// order, on their own lines. Ours cannot share a line with theirs: §8's `painfo *(COMMA
    /// painfo)` has no separator between values (see vouch-msg's auth headers), so ours is a
    /// header field of its own. Where it goes the draft does not say; we put it directly
    /// above the first downstream value (at the end of the header when there is none), so
    /// that, as with Via, the value of the hop nearest the UA comes first and a UA matching
    /// values by cnonce and nc meets ours before anything a downstream element added.
    ///
    /// The value is computed once per body: retransmissions and forks with the same body
    /// carry the same nextnonce.
    fn with_proxy_authentication_info(&mut self, id: u64, response: Message) -> Message {
        if !response.status().is_some_and(|s| (200..300).contains(&s)) {
            return response;
        }
        let Some(f) = self.proxy.get_mut(id) else {
            return response;
        };
        let Some(grant) = &f.grant else {
            return response;
        };
        let body = response.body();
        let value = match &f.info_sent {
            Some((sent_for, value)) if *sent_for == body => value.clone(),
            _ => {
                let Some(value) = self.policy.authentication_info(grant, &body, self.wall) else {
                    return response;
                };
                f.info_sent = Some((body, value.clone()));
                value
            }
        };
        const NAME: &str = "Proxy-Authentication-Info";
        let mut b = response.edit();
        if response
            .header(vouch_msg::HeaderName::ProxyAuthenticationInfo)
            .is_some()
        {
            b.insert_before(NAME, NAME, &value);
        } else {
            b.insert_before("Content-Length", NAME, &value);
        }
        match b.build_with(&self.config.limits) {
            Ok(m) => m,
            Err(e) => {
                self.log(
                    LogLevel::Warn,
                    format!("could not add Proxy-Authentication-Info: {e}"),
                );
                response
            }
        }
    }

    /// The registrar (§10.3).
    fn serve_register(
        &mut self,
        now: Instant,
        wall: i64,
        key: &ServerTransactionKey,
        request: &Message,
        from: &Peer,
        facts: RequestFacts,
    ) -> Result<(), Answer> {
        let unsupported = unsupported_require(request);
        if !unsupported.is_empty() {
            return Err(Answer::new(420).with("Unsupported", unsupported.join(", ")));
        }
        let grant = self.admit(request, from, wall, Role::Registrar, facts)?;
        let done = register(
            &mut self.location,
            &self.local,
            &self.registrar,
            request,
            from,
            wall,
        );
        let reg = match done {
            Ok(r) => r,
            Err(refusal) => {
                let mut a = Answer::new(refusal.status);
                a.reason = refusal.reason.to_owned();
                for (n, v) in refusal.headers {
                    a = a.with(n, v);
                }
                if refusal.status != 423 {
                    a = a.with("Warning", self.warning(from, &refusal.why));
                }
                return Err(a);
            }
        };
        let mut a = Answer::new(200);
        for c in contact_values(&reg.bindings, wall) {
            a = a.with("Contact", c);
        }
        if let Some(date) = format_sip_date(wall) {
            a = a.with("Date", date);
        }
        if let Some(info) = self.authentication_info(grant.as_ref()) {
            a = a.with("Authentication-Info", info);
        }
        self.answer(now, key, request, a);
        if reg.changed {
            self.out.event(Event::BindingsChanged {
                aor: reg.aor,
                bindings: reg.bindings,
            });
        }
        self.expire_bindings(now, wall);
        Ok(())
    }

    /// Requests for the server itself (§11 OPTIONS; 405 for the rest), admitted first (§8.2).
    fn serve_locally(
        &mut self,
        request: &Message,
        method: Method<'_>,
        from: &Peer,
        wall: i64,
        facts: RequestFacts,
    ) -> Answer {
        let grant = match self.admit(request, from, wall, Role::Uas, facts) {
            Ok(g) => g,
            Err(a) => return a,
        };
        let unsupported = unsupported_require(request);
        if !unsupported.is_empty() {
            return Answer::new(420).with("Unsupported", unsupported.join(", "));
        }
        match method {
            Method::Options => {
                let a = Answer::new(200)
                    .with("Allow", ALLOW)
                    .with("Accept", "application/sdp");
                match self.authentication_info(grant.as_ref()) {
                    Some(info) => a.with("Authentication-Info", info),
                    None => a,
                }
            }
            _ => Answer::new(405).with("Allow", ALLOW),
        }
    }

    /// §16.10: 200 for the CANCEL and CANCEL every pending branch; 481 when no INVITE matches.
    fn on_cancel(
        &mut self,
        now: Instant,
        key: &ServerTransactionKey,
        request: &Message,
        cancels: Option<ServerTransactionKey>,
    ) {
        let Some(invite) = cancels else {
            self.answer(now, key, request, Answer::new(481));
            return;
        };
        self.answer(now, key, request, Answer::new(200));
        if let Some(id) = self.proxy.by_server(&invite) {
            let actions = self
                .proxy
                .get_mut(id)
                .map(|f| f.context.handle_cancel(now))
                .unwrap_or_default();
            self.execute(now, id, actions);
        } else if let Some(service) = &mut self.verification {
            // Not forwarded yet: still waiting for its Identity-Info certificate.
            for (_, parked) in service.withdraw(|p| p.key == invite) {
                self.answer(now, &invite, &parked, Answer::new(487));
            }
        }
    }

    // ---- responses ------------------------------------------------------------------------

    fn on_branch_response(&mut self, now: Instant, key: &ClientTransactionKey, response: Message) {
        let Some(id) = self.proxy.by_client(key) else {
            // A response to a CANCEL we sent: nothing to do (§16.7 step 3).
            return;
        };
        let Ok(popped) = pop_top_via(&response, &self.config.limits) else {
            return;
        };
        if popped.via_count() == 0 {
            return;
        }
        if popped.status() == Some(503) && self.fail_over(now, key) {
            return;
        }
        let actions = self
            .proxy
            .get_mut(id)
            .map(|f| f.context.handle_response(now, key, popped))
            .unwrap_or_default();
        self.execute(now, id, actions);
    }

    fn on_branch_failure(&mut self, now: Instant, key: &ClientTransactionKey, status: u16) {
        let Some(id) = self.proxy.by_client(key) else {
            return;
        };
        if self.fail_over(now, key) {
            return;
        }
        let actions = self
            .proxy
            .get_mut(id)
            .map(|f| f.context.handle_branch_failure(key, status))
            .unwrap_or_default();
        self.execute(now, id, actions);
    }

    /// §16.7: a response no client transaction wants is forwarded statelessly — late 2xx
    /// retransmissions in particular.
    fn forward_stateless_response(&mut self, response: &Message) {
        let Ok(popped) = pop_top_via(response, &self.config.limits) else {
            return;
        };
        if popped.via_count() == 0 {
            return;
        }
        self.send_response_statelessly(&popped);
    }

    /// Sends a response (our Via already removed) to where its top Via says (§18.2.2).
    fn send_response_statelessly(&mut self, response: &Message) {
        match response.top_via().as_ref().and_then(response_destination) {
            Some(to) => self.out.transmit(to, response.as_bytes().clone()),
            None => self.log(
                LogLevel::Debug,
                "response dropped: its Via names no IP address".to_owned(),
            ),
        }
    }

    /// §16.11: an ACK for a 2xx (or any ACK no transaction wants) is forwarded statelessly
    /// by Route / Request-URI, with a branch derived from the received one so that its
    /// retransmissions carry the same branch. An ACK addressed to one of our domains with no
    /// Route is for no one downstream (a late ACK for a non-2xx) and is absorbed.
    fn forward_ack(&mut self, wall: i64, ack: &Message) {
        if ack.max_forwards() == Some(0) {
            return;
        }
        let Ok(routed) = preprocess_route(ack, &self.local, &self.config.limits) else {
            return;
        };
        let has_route = routed.header(vouch_msg::HeaderName::Route).is_some();
        if !has_route && matches!(routed.request_uri(), Some(Uri::Sip(u)) if self.local.is_ours(&u))
        {
            return;
        }
        // The ACK for a response we sent without a transaction ends here (§17.1.1.3).
        if ack.to_tag() == Some(wire::stateless_tag(ack).as_str()) {
            return;
        }
        let mut h = std::collections::hash_map::DefaultHasher::new();
        ack.top_via_branch().hash(&mut h);
        ack.top_via().map(|v| v.host_str().to_owned()).hash(&mut h);
        let branch = format!(
            "branch={}{}.ack{:016x};rport",
            vouch_msg::headers::MAGIC_COOKIE,
            loop_hash(ack),
            h.finish()
        );
        match self.send_ack(wall, &routed, &branch, None) {
            Ok(()) => {}
            Err(BranchError::Unresolvable(Unresolvable::HostName(lookup)))
                if self.config.dns
                    && self.resolutions.len() < self.config.max_pending_resolutions =>
            {
                self.ask_driver(
                    lookup,
                    Resolution::Ack {
                        ack: Box::new(routed),
                        branch,
                    },
                );
            }
            Err(e) => self.log(LogLevel::Debug, format!("ACK not forwarded: {e:?}")),
        }
    }

    /// Sends the copy of the (route-preprocessed) ACK `routed` with our Via `branch` to its
    /// next hop, at `resolved` when DNS gave it.
    fn send_ack(
        &mut self,
        wall: i64,
        routed: &Message,
        branch: &str,
        resolved: Option<&Peer>,
    ) -> Result<(), BranchError> {
        let spec = BranchSpec {
            request: routed,
            target: None,
            source: None,
            received_over: crate::endpoint::TransportKind::Udp,
            record_route: false,
            branch,
            limits: &self.config.limits,
            resolved,
        };
        let location = &self.location;
        let (msg, peer) =
            build_branch(&spec, &self.local, |c| location.source_for_contact(c, wall))?;
        self.out.transmit(peer.clone(), msg.as_bytes().clone());
        self.out.event(Event::Forwarded {
            method: "ACK".to_owned(),
            call_id: msg.call_id().to_owned(),
            to: peer,
        });
        Ok(())
    }
}

/// Builds the copy of a forwarded request for one target (§16.6 steps 1–8) and finds its
/// next hop (`resolved`: the address DNS gave for it).
#[allow(clippy::too_many_arguments)]
fn build_for(
    local: &Local,
    location: &Location,
    limits: &Limits,
    wall: i64,
    f: &Forwarding,
    target: Option<&Target>,
    resolved: Option<&Peer>,
    token: &str,
) -> Result<(Message, Peer), BranchError> {
    let branch = format!(
        "branch={}{}.{token};rport",
        vouch_msg::headers::MAGIC_COOKIE,
        f.loop_hash
    );
    let spec = BranchSpec {
        request: &f.request,
        target: target.map(|t| t.uri.as_str()),
        source: target.and_then(|t| t.source.as_ref()),
        received_over: f.received_over,
        record_route: f.record_route,
        branch: &branch,
        limits,
        resolved,
    };
    build_branch(&spec, local, |c| location.source_for_contact(c, wall))
}

/// The response explaining why a branch cannot be sent: 502 for a host name the core does
/// not resolve (no DNS) or a transport it does not speak, 416 for a next hop that is not a
/// SIP URI, 513 when our additions take the copy over the limits.
fn branch_answer(local: &Local, received_over: TransportKind, e: BranchError) -> Answer {
    let (status, text) = match e {
        BranchError::Unresolvable(Unresolvable::HostName(l)) => (
            502,
            format!(
                "cannot resolve {}: only IP addresses are routed (no DNS)",
                l.host
            ),
        ),
        BranchError::Unresolvable(Unresolvable::Transport(t)) => {
            (502, format!("unsupported transport {t}"))
        }
        BranchError::NotSip(u) => (416, format!("cannot route to {u}")),
        // Our own additions (Via, Record-Route, Identity) took the copy over the limits the
        // request met as received: it exceeds what this server accepts (§21.5.11).
        BranchError::Build(e) if e.is_over_limit() => (513, e.to_string()),
        BranchError::Build(e) => (500, e.to_string()),
    };
    let host = local.sent_by(received_over);
    Answer::new(status).with("Warning", wire::warning(&host, &text))
}
