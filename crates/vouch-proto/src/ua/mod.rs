//! The UA core, sans-IO (RFC 3261 §8, §12–§15): registration with mutual authentication,
//! calls with 100rel/PRACK (RFC 3262) and UPDATE (RFC 3311), and the SIP Identity usage BCP
//! (draft-fries-sip-identity-usage-bcp §4, §6): the caller's certificate travels in the INVITE
//! body, which its domain's authentication service signs (RFC 4474); the callee verifies and
//! binds that certificate to the caller's identity for the dialog ([`binding`]); the callee's
//! certificate comes back in an UPDATE through the callee's own authentication service
//! (RFC 4916 connected identity) and is bound by the caller the same way; a NOTIFY for the
//! `certificate` event with an empty body revokes a binding (RFC 6072, BCP §6).
//!
//! Digest (RFC 3261 §22, RFC 7616) with mutual authentication (draft-dotson-sip-mutual-auth):
//! 401/407 are answered with the strongest algorithm offered, credentials are sent again
//! with every later request, and the rspauth of every 2xx to an authenticated request is
//! checked. Under `require_mutual_auth` a missing or wrong rspauth on a REGISTER 2xx reports
//! the registrar as unauthenticated ([`UaEvent::ServerNotAuthenticated`]); on an INVITE 2xx
//! the call is ended with BYE.
//!
//! Driven like [`crate::Endpoint`]: [`UserAgent::handle_receive`], [`UserAgent::handle_timeout`]
//! and [`UserAgent::handle_certificate`] (the answer to [`UaEvent::FetchCertificate`]) are the
//! inputs, commands such as [`UserAgent::call`] are the application's, and
//! [`UserAgent::poll_output`] drains until [`Output::Timeout`]. Nothing here reads a clock,
//! opens a socket or draws entropy; the per-login certificate is made by the caller
//! (`vouch_auth::session_cert`) and handed over with [`UserAgent::set_certificate`].

pub mod binding;
mod body;
mod dialog;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use vouch_auth::digest::{Algorithm, ClientAuthError, Responder, ResponderConfig, SentCredentials};
use vouch_auth::identity::{TrustStore, Verifier, VerifierConfig};
use vouch_msg::headers::auth::{AuthenticationInfo, Challenge};
use vouch_msg::{HeaderName, Limits, Message, MessageBuilder, Method, reason_phrase, split_commas};

pub use binding::{BindingEnd, BindingViolation, Bindings, OfferedCertificate, SessionBinding};
pub use body::CertificateTransport;

use crate::endpoint::{Output, Peer, TransportKind};
use crate::local::ip_host;
use crate::rng::Rng;
use crate::transaction::{
    ClientTransactionKey, ServerTransactionKey, TransactionConfig, TransactionEvent,
    TransactionKey, TransactionLayer, response_for,
};
use crate::verification::{
    CertificateChain, Check, FetchId, IdentityVerdict as Verdict, Refusal, Resolved,
    VerificationPolicy, VerificationService,
};
use crate::wire::{reply_to_unparseable, warning};
use dialog::{Dialog, addr_spec};

/// A call of this UA (one INVITE dialog).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallHandle(pub u64);

/// The user agent's account, addresses and policy.
#[derive(Debug, Clone)]
pub struct UaConfig {
    /// The address-of-record, `sip:alice@atlanta.example`.
    pub aor: String,
    /// The display name for From.
    pub display_name: Option<String>,
    /// Our transport and socket address (Via sent-by, Contact).
    pub local: (TransportKind, SocketAddr),
    /// Where out-of-dialog requests go: the outbound proxy, also the registrar.
    pub outbound_proxy: Peer,
    /// Digest credentials; `None` answers no challenge.
    pub credentials: Option<ResponderConfig>,
    /// The registration interval asked for.
    pub register_expires: u32,
    /// How our certificate travels in INVITE and UPDATE bodies.
    pub certificate_transport: CertificateTransport,
    /// Send an UPDATE with our certificate after answering (RFC 4916, BCP §4.2).
    pub connected_identity: bool,
    /// Answer incoming calls at once (180 with the answer, then 200).
    pub auto_answer: bool,
    /// Offer and use reliable provisional responses (RFC 3262).
    pub use_100rel: bool,
    /// Methods whose requests must carry a verified Identity (others are verified only when
    /// signed). Empty by default: calls from domains without an authentication service work.
    pub require_identity: Vec<String>,
    /// Verifier policy (Date window, replay cache).
    pub verifier: VerifierConfig,
    /// Trust anchors for Identity-Info certificates.
    pub trust_pem: Vec<Vec<u8>>,
    /// The SDP we offer or answer with (without certificate; the fingerprint line is added
    /// when the transport says so).
    pub sdp: Bytes,
    /// Transaction timers.
    pub transaction: TransactionConfig,
    /// Parser limits for what we receive (larger requests get 513), as
    /// [`crate::endpoint::EndpointConfig::limits`]; a driver frames its connection with them.
    pub limits: Limits,
    /// Seed for tags, branches, Call-IDs and cnonces.
    pub seed: u64,
}

impl UaConfig {
    /// A configuration with defaults for everything but the account and the addresses.
    pub fn new(aor: &str, local: (TransportKind, SocketAddr), outbound_proxy: Peer) -> Self {
        UaConfig {
            aor: aor.to_owned(),
            display_name: None,
            local,
            outbound_proxy,
            credentials: None,
            register_expires: 3600,
            certificate_transport: CertificateTransport::Both,
            connected_identity: true,
            auto_answer: true,
            use_100rel: true,
            require_identity: Vec::new(),
            verifier: VerifierConfig::default(),
            trust_pem: Vec::new(),
            sdp: Bytes::from_static(DEFAULT_SDP),
            transaction: TransactionConfig::default(),
            limits: Limits::DEFAULT,
            seed: 0,
        }
    }

    /// Digest credentials with every algorithm allowed and mutual authentication required.
    pub fn with_password(mut self, username: &str, password: &str) -> Self {
        self.credentials = Some(ResponderConfig {
            username: username.to_owned(),
            password: password.to_owned(),
            algorithms: Algorithm::STRONGEST_FIRST.to_vec(),
            require_mutual_auth: true,
        });
        self
    }
}

const DEFAULT_SDP: &[u8] = b"v=0\r\no=vouch 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 49170 RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

/// What the UA tells the application.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UaEvent {
    /// The registrar accepted the registration.
    Registered {
        /// Granted interval (seconds).
        expires: u32,
        /// Realms whose server proved knowledge of the password (rspauth checked).
        authenticated_realms: Vec<String>,
    },
    /// The registration failed.
    RegistrationFailed {
        /// Final status (0: timeout).
        status: u16,
        /// Why.
        reason: String,
    },
    /// A server (registrar or proxy) did not authenticate itself on a 2xx: rspauth missing
    /// (under `require_mutual_auth`) or wrong. For an INVITE the UA has sent BYE.
    ServerNotAuthenticated {
        /// The request's method.
        method: String,
        /// The call, for INVITE and in-dialog requests.
        call: Option<CallHandle>,
        /// Why.
        reason: String,
    },
    /// rspauth of a 2xx checked for these realms.
    ServerAuthenticated {
        /// The request's method.
        method: String,
        /// Realms proven.
        realms: Vec<String>,
    },
    /// A new incoming call (after its Identity, if any, was verified).
    IncomingCall {
        /// The call.
        call: CallHandle,
        /// The From URI.
        from: String,
        /// The verified identity, if the INVITE was signed.
        verified_aor: Option<String>,
    },
    /// A request's Identity passed verification.
    IdentityVerified {
        /// The call it belongs to.
        call: Option<CallHandle>,
        /// Method of the request.
        method: String,
        /// The From AoR vouched for.
        aor: String,
        /// The signing domain.
        signer_domain: String,
    },
    /// We refused a request (Identity refused, binding violated, …).
    RequestRefused {
        /// The call it belonged to.
        call: Option<CallHandle>,
        /// Method.
        method: String,
        /// Status sent.
        status: u16,
        /// Why (also in the response's Warning).
        reason: String,
    },
    /// A certificate was bound to an identity for a call.
    BindingCreated {
        /// The call.
        call: CallHandle,
        /// The identity.
        aor: String,
        /// The certificate's fingerprint.
        fingerprint: String,
    },
    /// A binding was removed.
    BindingRemoved {
        /// The call.
        call: CallHandle,
        /// The identity it was for.
        aor: String,
        /// Why.
        reason: BindingEnd,
    },
    /// A provisional response to our INVITE.
    CallProgress {
        /// The call.
        call: CallHandle,
        /// Status.
        status: u16,
    },
    /// The call is established (2xx sent or received and acknowledged).
    CallEstablished {
        /// The call.
        call: CallHandle,
    },
    /// The call failed before it was established.
    CallFailed {
        /// The call.
        call: CallHandle,
        /// Final status (408 for a timeout).
        status: u16,
        /// Reason phrase or why.
        reason: String,
    },
    /// The call ended.
    CallEnded {
        /// The call.
        call: CallHandle,
        /// Who ended it and how.
        reason: String,
    },
    /// A request we sent in a call got a final response.
    RequestCompleted {
        /// The call.
        call: Option<CallHandle>,
        /// Method.
        method: String,
        /// Final status.
        status: u16,
    },
    /// Fetch the certificate at `url` and report it with [`UserAgent::handle_certificate`].
    FetchCertificate {
        /// The fetch.
        id: FetchId,
        /// http or https URL.
        url: String,
    },
}

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UaError {
    /// No such call, or it is over.
    #[error("no such call")]
    NoSuchCall,
    /// The command does not fit the call's state.
    #[error("not possible now: {0}")]
    WrongState(&'static str),
    /// A message could not be built (a bad URI or header value).
    #[error("cannot build the request: {0}")]
    Build(String),
    /// No certificate set, but the command sends one.
    #[error("no certificate: call set_certificate first")]
    NoCertificate,
}

/// Most authentication retries of one request (a wrong password must not loop).
const MAX_AUTH_ATTEMPTS: u8 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Caller,
    Callee,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// UAC: INVITE sent, no final response.
    Calling,
    /// UAS: INVITE received (verified), not yet answered.
    Ringing,
    /// UAS: reliable 1xx with the answer sent, waiting for PRACK.
    AwaitingPrack,
    /// UAS: PRACK received, UPDATE with our certificate in progress.
    SendingIdentity,
    /// UAS: 2xx sent, waiting for ACK.
    AwaitingAck,
    /// Established.
    Confirmed,
    /// Over.
    Ended,
}

#[derive(Debug)]
struct Call {
    role: Role,
    stage: Stage,
    call_id: String,
    local_tag: String,
    /// Our next CSeq number (the INVITE's for the caller until the dialog takes over).
    cseq: u32,
    /// The INVITE's CSeq number (ACK uses it).
    invite_cseq: u32,
    dialog: Option<Dialog>,
    /// UAC: the INVITE client transaction and the INVITE sent.
    invite_tx: Option<ClientTransactionKey>,
    invite: Option<Message>,
    /// UAS: the INVITE server transaction and the INVITE.
    server_tx: Option<ServerTransactionKey>,
    /// UAC: RSeq numbers already acknowledged with PRACK.
    pracked: Vec<u32>,
    /// UAS: the RSeq of our last reliable provisional.
    rseq: u32,
    /// UAS: the caller supports 100rel.
    peer_100rel: bool,
    /// UAC: the ACK sent for the 2xx (resent when the 2xx is).
    ack: Option<(Peer, Bytes)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Register,
    Invite,
    Prack,
    Update,
    Bye,
    Notify,
}

/// A request we sent and may have to send again with credentials.
#[derive(Debug)]
struct Pending {
    purpose: Purpose,
    call: Option<CallHandle>,
    /// The request without Via and credentials.
    base: MessageBuilder,
    method: String,
    to: Peer,
    digest_uri: String,
    body: Bytes,
    /// Send Authorization (401 seen for this request) as well as Proxy-Authorization.
    www: bool,
    sent_www: SentCredentials,
    sent_proxy: SentCredentials,
    attempts: u8,
}

/// A reliable provisional or a 2xx we send again until it is acknowledged (RFC 3262 §3,
/// RFC 3261 §13.3.1.4).
#[derive(Debug)]
struct Retransmit {
    call: CallHandle,
    key: ServerTransactionKey,
    response: Message,
    next: Instant,
    interval: Duration,
    give_up: Instant,
}

/// A parked incoming request's context.
#[derive(Debug)]
struct Parked {
    key: ServerTransactionKey,
    call: Option<CallHandle>,
}

/// The user agent.
#[derive(Debug)]
pub struct UserAgent {
    config: UaConfig,
    layer: TransactionLayer<Peer>,
    rng: Rng,
    www: Option<Responder>,
    proxy: Option<Responder>,
    verification: VerificationService<Parked>,
    calls: HashMap<CallHandle, Call>,
    next_call: u64,
    pending: HashMap<ClientTransactionKey, Pending>,
    retransmits: Vec<Retransmit>,
    bindings: Bindings,
    out: VecDeque<Output<UaEvent>>,
    certificate: Option<Vec<u8>>,
    register_call_id: String,
    register_cseq: u32,
    register_refresh: Option<Instant>,
    registered: bool,
    /// The wall clock (Unix seconds) at the driver's last input: what verification and
    /// bindings are dated with.
    wall: i64,
}

impl UserAgent {
    /// A user agent; nothing is sent until a command.
    pub fn new(config: UaConfig) -> Self {
        let mut trust = TrustStore::new();
        for pem in &config.trust_pem {
            // A bad anchor only means fewer anchors; verification then fails with 437.
            let _ = trust.add_pem_or_der(pem);
        }
        let verifier = Verifier::new(config.verifier.clone(), trust);
        let policy = VerificationPolicy {
            require_identity: config.require_identity.clone(),
            ..VerificationPolicy::default()
        };
        let mut rng = Rng::new(config.seed);
        let register_call_id = format!("{}@vouch-ua", rng.token());
        UserAgent {
            layer: TransactionLayer::new(config.transaction),
            www: config.credentials.clone().map(Responder::new),
            proxy: config.credentials.clone().map(Responder::new),
            verification: VerificationService::new(verifier, policy),
            calls: HashMap::new(),
            next_call: 1,
            pending: HashMap::new(),
            retransmits: Vec::new(),
            bindings: Bindings::default(),
            out: VecDeque::new(),
            certificate: None,
            register_call_id,
            register_cseq: 0,
            register_refresh: None,
            registered: false,
            wall: 0,
            rng,
            config,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &UaConfig {
        &self.config
    }

    /// Sets the certificate (DER) our INVITEs and UPDATEs carry: the per-login certificate
    /// (BCP §6: a fresh key pair per login) or a device certificate.
    pub fn set_certificate(&mut self, der: Vec<u8>) {
        self.certificate = Some(der);
    }

    /// Our current certificate (DER), if set.
    pub fn certificate(&self) -> Option<&[u8]> {
        self.certificate.as_deref()
    }

    /// The binding of a call, if one exists.
    pub fn binding(&self, call: CallHandle) -> Option<&SessionBinding> {
        self.bindings.get(call)
    }

    /// All bindings.
    pub fn bindings(&self) -> &Bindings {
        &self.bindings
    }

    /// True when the call exists and is established.
    pub fn is_established(&self, call: CallHandle) -> bool {
        self.calls
            .get(&call)
            .is_some_and(|c| c.stage == Stage::Confirmed)
    }

    /// True when the last registration succeeded.
    pub fn is_registered(&self) -> bool {
        self.registered
    }

    // ---------------------------------------------------------------- commands

    /// Registers (and keeps the registration refreshed).
    pub fn register(&mut self, now: Instant) -> Result<(), UaError> {
        self.send_register(now, self.config.register_expires)
    }

    /// Removes the registration (Expires: 0).
    pub fn unregister(&mut self, now: Instant) -> Result<(), UaError> {
        self.register_refresh = None;
        self.send_register(now, 0)
    }

    fn send_register(&mut self, now: Instant, expires: u32) -> Result<(), UaError> {
        let domain = aor_host(&self.config.aor);
        let ruri = format!("sip:{domain}");
        self.register_cseq += 1;
        let mut b = MessageBuilder::request(Method::Register, &ruri);
        b.push("Max-Forwards", "70")
            .push(
                "From",
                &format!("{};tag={}", self.our_from(), self.rng.token()),
            )
            .push("To", &format!("<{}>", self.config.aor))
            .push("Call-ID", &self.register_call_id)
            .push("CSeq", &format!("{} REGISTER", self.register_cseq))
            .push("Contact", &self.contact())
            .push("Expires", &expires.to_string());
        let to = self.config.outbound_proxy.clone();
        self.send_request(
            now,
            Purpose::Register,
            None,
            b,
            "REGISTER",
            &ruri,
            Bytes::new(),
            to,
            true,
        )
    }

    /// Calls `target` (a SIP URI). Our certificate, if set, travels in the body.
    pub fn call(&mut self, now: Instant, target: &str) -> Result<CallHandle, UaError> {
        let handle = CallHandle(self.next_call);
        self.next_call += 1;
        let call_id = format!("{}@vouch-ua", self.rng.token());
        let local_tag = self.rng.token();
        let (content_type, body) = body::offer(
            &self.config.sdp,
            self.certificate.as_deref(),
            self.config.certificate_transport,
        )
        .map_err(UaError::Build)?;
        let mut b = MessageBuilder::request(Method::Invite, target);
        b.push("Max-Forwards", "70")
            .push("From", &format!("{};tag={local_tag}", self.our_from()))
            .push("To", &format!("<{target}>"))
            .push("Call-ID", &call_id)
            .push("CSeq", "1 INVITE")
            .push("Contact", &self.contact())
            .push("Allow", ALLOW);
        if self.config.use_100rel {
            b.push("Supported", "100rel");
        }
        b.set_body(content_type.as_deref(), body.clone());
        self.calls.insert(
            handle,
            Call {
                role: Role::Caller,
                stage: Stage::Calling,
                call_id,
                local_tag,
                cseq: 1,
                invite_cseq: 1,
                dialog: None,
                invite_tx: None,
                invite: None,
                server_tx: None,
                pracked: Vec::new(),
                rseq: 0,
                peer_100rel: false,
                ack: None,
            },
        );
        let to = self.config.outbound_proxy.clone();
        self.send_request(
            now,
            Purpose::Invite,
            Some(handle),
            b,
            "INVITE",
            target,
            body,
            to,
            false,
        )?;
        Ok(handle)
    }

    /// Answers an incoming call: with 100rel a reliable 180 carrying the answer, then (after
    /// PRACK, and the UPDATE with our certificate when `connected_identity`) the 200;
    /// without, the 200 with the answer.
    pub fn answer(&mut self, now: Instant, call: CallHandle) -> Result<(), UaError> {
        let c = self.calls.get(&call).ok_or(UaError::NoSuchCall)?;
        if c.stage != Stage::Ringing {
            return Err(UaError::WrongState("the call is not ringing"));
        }
        if self.config.use_100rel && c.peer_100rel {
            self.send_provisional(now, call, 180, true);
            Ok(())
        } else {
            self.send_invite_2xx(now, call, true)
        }
    }

    /// Ends a call: BYE when a dialog is established, CANCEL while our INVITE is pending,
    /// 603 Decline for an incoming call not yet answered.
    pub fn hangup(&mut self, now: Instant, call: CallHandle) -> Result<(), UaError> {
        let c = self.calls.get(&call).ok_or(UaError::NoSuchCall)?;
        match (c.role, c.stage) {
            (_, Stage::Ended) => Err(UaError::NoSuchCall),
            (Role::Caller, Stage::Calling) => {
                let key = c
                    .invite_tx
                    .clone()
                    .ok_or(UaError::WrongState("no INVITE"))?;
                self.layer
                    .cancel(now, &key)
                    .map_err(|e| UaError::Build(e.to_string()))?;
                self.drain_layer(now);
                Ok(())
            }
            (Role::Callee, Stage::Ringing | Stage::AwaitingPrack | Stage::SendingIdentity) => {
                self.reject_invite(now, call, 603, None);
                self.end_call(call, BindingEnd::Failed, "declined".to_owned());
                Ok(())
            }
            _ => self.send_bye(now, call),
        }
    }

    /// Sends an UPDATE carrying our current certificate in the call (RFC 3311; the connected
    /// identity of RFC 4916 when the callee sends it).
    pub fn send_certificate_update(
        &mut self,
        now: Instant,
        call: CallHandle,
    ) -> Result<(), UaError> {
        let cert = self.certificate.clone().ok_or(UaError::NoCertificate)?;
        let (content_type, body) =
            body::certificate_only(&self.config.sdp, &cert, self.config.certificate_transport)
                .map_err(UaError::Build)?;
        let disposition: &[(&str, &str)] = if content_type.starts_with("application/pkcs7-mime") {
            &[(
                "Content-Disposition",
                vouch_auth::session_cert::CERTS_ONLY_DISPOSITION,
            )]
        } else {
            &[]
        };
        self.send_in_dialog(
            now,
            call,
            Method::Update,
            Purpose::Update,
            Some(&content_type),
            body,
            disposition,
        )
    }

    /// Revokes our certificate in the call: NOTIFY `Event: certificate` with an empty body
    /// (RFC 6072 §6.4, BCP §6), signed by our authentication service like any request.
    pub fn revoke_certificate(&mut self, now: Instant, call: CallHandle) -> Result<(), UaError> {
        self.send_in_dialog(
            now,
            call,
            Method::Notify,
            Purpose::Notify,
            None,
            Bytes::new(),
            &[
                ("Event", "certificate"),
                ("Subscription-State", "terminated;reason=rejected"),
            ],
        )
    }

    // ---------------------------------------------------------------- driver inputs

    /// A message from the transport.
    pub fn handle_receive(&mut self, now: Instant, wall_unix: i64, from: Peer, bytes: Bytes) {
        self.wall = wall_unix;
        let framing = from.transport.framing();
        let msg = match Message::parse_with(bytes.clone(), &self.config.limits, framing) {
            Ok(m) => m,
            Err(e) => {
                // RFC 3261 §8.2 / RFC 4475: a request that cannot be read gets its error
                // response (400 with a Warning naming the problem, 505, 513) when enough of it
                // can be read to route one; responses are dropped.
                let tag = self.rng.token();
                let limits = &self.config.limits;
                if let Some(r) = reply_to_unparseable(&bytes, &e, &self.sent_by(), &tag, limits) {
                    self.out.push_back(Output::Transmit {
                        to: from,
                        bytes: r.as_bytes().clone(),
                    });
                    self.event(UaEvent::RequestRefused {
                        call: None,
                        method: String::new(),
                        status: e.status(),
                        reason: e.to_string(),
                    });
                }
                return;
            }
        };
        let reliability = from.transport.reliability();
        self.layer.handle_receive(now, msg, from, reliability);
        self.drain_layer(now);
    }

    /// Fires timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant, wall_unix: i64) {
        self.wall = wall_unix;
        self.layer.handle_timeout(now);
        let resolved = self.verification.handle_timeout(now);
        for r in resolved {
            self.resolved(now, wall_unix, r);
        }
        self.retransmit(now);
        if self.register_refresh.is_some_and(|t| t <= now) {
            self.register_refresh = None;
            let _ = self.send_register(now, self.config.register_expires);
        }
        self.drain_layer(now);
    }

    /// The result of a [`UaEvent::FetchCertificate`].
    pub fn handle_certificate(
        &mut self,
        now: Instant,
        wall_unix: i64,
        id: FetchId,
        result: Result<CertificateChain, String>,
    ) {
        self.wall = wall_unix;
        for r in self
            .verification
            .certificate_fetched(now, wall_unix, id, result)
        {
            self.resolved(now, wall_unix, r);
        }
        self.drain_layer(now);
    }

    /// The next output; drain until [`Output::Timeout`].
    pub fn poll_output(&mut self) -> Output<UaEvent> {
        if let Some(o) = self.out.pop_front() {
            return o;
        }
        let mut next = self.layer.poll_timeout();
        for t in [
            self.verification.poll_timeout(),
            self.register_refresh,
            self.retransmits.iter().map(|r| r.next).min(),
        ]
        .into_iter()
        .flatten()
        {
            next = Some(next.map_or(t, |n| n.min(t)));
        }
        Output::Timeout(next)
    }

    // ---------------------------------------------------------------- internals: sending

    fn our_from(&self) -> String {
        match &self.config.display_name {
            Some(n) => format!("\"{n}\" <{}>", self.config.aor),
            None => format!("<{}>", self.config.aor),
        }
    }

    fn sent_by(&self) -> String {
        let (_, addr) = self.config.local;
        format!("{}:{}", ip_host(addr.ip()), addr.port())
    }

    fn contact(&self) -> String {
        let (transport, _) = self.config.local;
        let user = aor_user(&self.config.aor);
        let at = if user.is_empty() {
            String::new()
        } else {
            format!("{user}@")
        };
        match transport {
            TransportKind::Udp => format!("<sip:{at}{}>", self.sent_by()),
            t => format!("<sip:{at}{};transport={}>", self.sent_by(), t.as_param()),
        }
    }

    fn via(&mut self) -> String {
        let (transport, _) = self.config.local;
        format!(
            "SIP/2.0/{} {};branch=z9hG4bK{};rport",
            transport.as_str(),
            self.sent_by(),
            self.rng.token()
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn send_request(
        &mut self,
        now: Instant,
        purpose: Purpose,
        call: Option<CallHandle>,
        base: MessageBuilder,
        method: &str,
        digest_uri: &str,
        body: Bytes,
        to: Peer,
        www: bool,
    ) -> Result<(), UaError> {
        let p = Pending {
            purpose,
            call,
            base,
            method: method.to_owned(),
            to,
            digest_uri: digest_uri.to_owned(),
            body,
            www,
            sent_www: SentCredentials::default(),
            sent_proxy: SentCredentials::default(),
            attempts: 0,
        };
        self.transmit_pending(now, p)
    }

    /// Sends (or sends again) a pending request: fresh Via branch, current credentials.
    fn transmit_pending(&mut self, now: Instant, mut p: Pending) -> Result<(), UaError> {
        let mut b = p.base.clone();
        let via = self.via();
        b.push_front("Via", &via);
        let cnonce = self.rng.next_u64();
        if p.www
            && let Some(r) = self.www.as_mut()
        {
            let (values, sent) = r.authorize_request(&p.method, &p.digest_uri, &p.body, cnonce);
            for (_, v) in values {
                b.insert_before("Content-Length", "Authorization", &v);
            }
            p.sent_www = sent;
        }
        if p.purpose != Purpose::Register
            && let Some(r) = self.proxy.as_mut()
        {
            let (values, sent) =
                r.authorize_request(&p.method, &p.digest_uri, &p.body, cnonce ^ 0x5a5a);
            for (_, v) in values {
                b.insert_before("Content-Length", "Proxy-Authorization", &v);
            }
            p.sent_proxy = sent;
        }
        let msg = b
            .build_with(&self.config.limits)
            .map_err(|e| UaError::Build(e.to_string()))?;
        let reliability = p.to.transport.reliability();
        let key = self
            .layer
            .send_request(now, msg.clone(), p.to.clone(), reliability)
            .map_err(|e| UaError::Build(e.to_string()))?;
        if p.purpose == Purpose::Invite
            && let Some(c) = p.call.and_then(|h| self.calls.get_mut(&h))
        {
            c.invite_tx = Some(key.clone());
            c.invite = Some(msg);
        }
        self.pending.insert(key, p);
        self.drain_layer(now);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn send_in_dialog(
        &mut self,
        now: Instant,
        call: CallHandle,
        method: Method<'_>,
        purpose: Purpose,
        content_type: Option<&str>,
        body: Bytes,
        extra: &[(&str, &str)],
    ) -> Result<(), UaError> {
        let hosts: Vec<(String, SocketAddr)> = Vec::new();
        let contact = self.contact();
        let c = self
            .calls
            .get_mut(&call)
            .filter(|c| c.stage != Stage::Ended)
            .ok_or(UaError::NoSuchCall)?;
        let d = c
            .dialog
            .as_ref()
            .ok_or(UaError::WrongState("no dialog yet"))?;
        c.cseq += 1;
        let mut b = d.request(method, c.cseq);
        let to = d.next_hop(&hosts).ok_or(UaError::WrongState(
            "the dialog's next hop cannot be resolved",
        ))?;
        let ruri = d.remote_target.clone();
        b.push("Contact", &contact);
        for (n, v) in extra {
            b.push(n, v);
        }
        b.set_body(content_type, body.clone());
        self.send_request(
            now,
            purpose,
            Some(call),
            b,
            method.as_str(),
            &ruri,
            body,
            to,
            false,
        )
    }

    fn send_bye(&mut self, now: Instant, call: CallHandle) -> Result<(), UaError> {
        self.send_in_dialog(
            now,
            call,
            Method::Bye,
            Purpose::Bye,
            None,
            Bytes::new(),
            &[],
        )?;
        self.end_call(call, BindingEnd::Bye, "BYE sent".to_owned());
        Ok(())
    }

    fn respond(&mut self, now: Instant, key: &ServerTransactionKey, response: Message) {
        if self.layer.respond(now, key, response).is_ok() {
            self.drain_layer(now);
        }
    }

    /// A response to `request` with a To tag, Warning and extra headers.
    fn reply(
        &mut self,
        now: Instant,
        key: &ServerTransactionKey,
        request: &Message,
        status: u16,
        why: Option<&str>,
        phrase: Option<&str>,
    ) {
        let tag = self.rng.token();
        let Ok(r) = response_for(
            request,
            status,
            phrase.unwrap_or(reason_phrase(status)),
            Some(&tag),
        ) else {
            return;
        };
        let r = match why {
            Some(w) => {
                let mut b = r.edit();
                b.insert_before("Content-Length", "Warning", &warning(&self.sent_by(), w));
                b.build_with(&self.config.limits).unwrap_or(r)
            }
            None => r,
        };
        self.respond(now, key, r);
    }

    fn event(&mut self, e: UaEvent) {
        self.out.push_back(Output::Event(e));
    }

    // ---------------------------------------------------------------- internals: events

    fn drain_layer(&mut self, now: Instant) {
        let wall_unix = self.wall;
        loop {
            while let Some(t) = self.layer.poll_transmit() {
                self.out.push_back(Output::Transmit {
                    to: t.remote,
                    bytes: t.bytes,
                });
            }
            let Some(ev) = self.layer.poll_event() else {
                break;
            };
            match ev {
                TransactionEvent::Request {
                    key,
                    request,
                    cancels,
                    ..
                } => self.on_request(now, wall_unix, key, request, cancels),
                TransactionEvent::Response { key, response } => {
                    self.on_response(now, key, response)
                }
                TransactionEvent::StrayResponse { response, .. } => {
                    self.on_stray_response(response)
                }
                TransactionEvent::Ack { ack, .. } | TransactionEvent::StrayAck { ack, .. } => {
                    self.on_ack(&ack)
                }
                TransactionEvent::Timeout { key, .. }
                | TransactionEvent::TransportError { key } => self.on_timeout(key),
                TransactionEvent::Terminated { key } => {
                    if let TransactionKey::Client(k) = key {
                        self.pending.remove(&k);
                    }
                }
            }
        }
    }

    fn find_dialog_call(&self, request: &Message) -> Option<CallHandle> {
        self.calls
            .iter()
            .find(|(_, c)| {
                c.stage != Stage::Ended
                    && c.dialog
                        .as_ref()
                        .is_some_and(|d| d.matches_request(request))
            })
            .map(|(h, _)| *h)
    }

    fn on_request(
        &mut self,
        now: Instant,
        wall_unix: i64,
        key: ServerTransactionKey,
        request: Message,
        cancels: Option<ServerTransactionKey>,
    ) {
        let Some(method) = request.method() else {
            return;
        };
        let method_str = method.as_str().to_owned();
        if method == Method::Cancel {
            self.reply(now, &key, &request, 200, None, None);
            if let Some(inv) = cancels
                && let Some((&h, _)) = self
                    .calls
                    .iter()
                    .find(|(_, c)| c.server_tx.as_ref() == Some(&inv))
            {
                self.reject_invite(now, h, 487, None);
                self.end_call(h, BindingEnd::Cancel, "cancelled by the caller".to_owned());
            }
            return;
        }
        let in_dialog = request.to_tag().is_some();
        let call = if in_dialog {
            match self.find_dialog_call(&request) {
                Some(h) => Some(h),
                None => {
                    self.reply(now, &key, &request, 481, Some("no such dialog"), None);
                    self.event(UaEvent::RequestRefused {
                        call: None,
                        method: method_str,
                        status: 481,
                        reason: "no such dialog".to_owned(),
                    });
                    return;
                }
            }
        } else {
            None
        };
        match method {
            Method::Invite
            | Method::Update
            | Method::Notify
            | Method::Bye
            | Method::Prack
            | Method::Options
            | Method::Message => {}
            _ => {
                self.reply(now, &key, &request, 405, None, None);
                return;
            }
        }
        if method == Method::Invite && in_dialog {
            // Re-INVITE: not offered by this UA (it uses UPDATE).
            self.reply(
                now,
                &key,
                &request,
                488,
                Some("re-INVITE not supported; use UPDATE"),
                None,
            );
            return;
        }
        if let Some(h) = call
            && let Some(d) = self.calls.get_mut(&h).and_then(|c| c.dialog.as_mut())
        {
            // §12.2.2: a lower CSeq than seen is out of order.
            let seq = request.cseq().seq;
            if d.remote_seq.is_some_and(|r| seq < r) && method != Method::Prack {
                self.reply(now, &key, &request, 500, Some("CSeq out of order"), None);
                return;
            }
            d.remote_seq = Some(d.remote_seq.map_or(seq, |r| r.max(seq)));
        }
        let context = Parked {
            key: key.clone(),
            call,
        };
        match self.verification.check(now, wall_unix, &request, context) {
            Check::Verified(v) => self.verified(now, wall_unix, key, request, call, Some(v)),
            Check::Unsigned => self.verified(now, wall_unix, key, request, call, None),
            Check::Refused(r) => self.refuse(now, &key, &request, call, &r),
            Check::NeedCertificate { id, url } => {
                self.event(UaEvent::FetchCertificate { id, url });
            }
            Check::AwaitingCertificate { .. } => {}
        }
    }

    fn resolved(&mut self, now: Instant, wall_unix: i64, r: Resolved<Parked>) {
        let Resolved {
            context,
            request,
            verdict,
        } = r;
        match verdict {
            Verdict::Verified(v) => {
                self.verified(now, wall_unix, context.key, request, context.call, Some(v))
            }
            Verdict::Refused(refusal) => {
                self.refuse(now, &context.key, &request, context.call, &refusal)
            }
        }
    }

    fn refuse(
        &mut self,
        now: Instant,
        key: &ServerTransactionKey,
        request: &Message,
        call: Option<CallHandle>,
        r: &Refusal,
    ) {
        self.reply(now, key, request, r.status, Some(&r.reason), Some(r.phrase));
        self.event(UaEvent::RequestRefused {
            call,
            method: request
                .method()
                .map(|m| m.as_str().to_owned())
                .unwrap_or_default(),
            status: r.status,
            reason: r.reason.clone(),
        });
    }

    fn refuse_binding(
        &mut self,
        now: Instant,
        key: &ServerTransactionKey,
        request: &Message,
        call: Option<CallHandle>,
        violation: &BindingViolation,
    ) {
        let r = Refusal::new(403, violation.to_string());
        self.refuse(now, key, request, call, &r);
    }

    /// A request whose Identity passed (or that was unsigned and allowed to be).
    fn verified(
        &mut self,
        now: Instant,
        wall_unix: i64,
        key: ServerTransactionKey,
        request: Message,
        call: Option<CallHandle>,
        identity: Option<vouch_auth::identity::VerifiedIdentity>,
    ) {
        let Some(method) = request.method() else {
            return;
        };
        let method_str = method.as_str().to_owned();
        if let Some(v) = &identity {
            self.event(UaEvent::IdentityVerified {
                call,
                method: method_str.clone(),
                aor: v.aor().to_owned(),
                signer_domain: v.signer_domain().to_owned(),
            });
        }
        let offered = match body::offered_certificate(&request) {
            Ok(o) => o,
            Err(e) => {
                self.reply(now, &key, &request, 400, Some(&e), None);
                return;
            }
        };
        match method {
            Method::Invite => self.incoming_invite(now, wall_unix, key, request, identity, offered),
            Method::Notify if is_certificate_event(&request) => {
                let Some(h) = call else {
                    self.reply(
                        now,
                        &key,
                        &request,
                        481,
                        Some("revocation outside a dialog"),
                        None,
                    );
                    return;
                };
                if !request.body_bytes().is_empty() {
                    // A NOTIFY with a certificate body would be a new certificate: it must come
                    // through an UPDATE, which rebinds nothing either.
                    self.reply(now, &key, &request, 200, None, None);
                    return;
                }
                let Some(v) = identity else {
                    let r = Refusal::new(428, "a certificate revocation must be signed (RFC 4474)");
                    self.refuse(now, &key, &request, call, &r);
                    return;
                };
                match self.bindings.revoke(h, &v) {
                    Ok(b) => {
                        self.reply(now, &key, &request, 200, None, None);
                        self.event(UaEvent::BindingRemoved {
                            call: h,
                            aor: b.aor().to_owned(),
                            reason: BindingEnd::Revoked,
                        });
                    }
                    Err(e) => self.refuse_binding(now, &key, &request, call, &e),
                }
            }
            _ => {
                let Some(h) = call else {
                    // Out-of-dialog OPTIONS / MESSAGE.
                    self.reply(now, &key, &request, 200, None, None);
                    return;
                };
                if let Some(o) = &offered {
                    let was_bound = self.bindings.get(h).is_some();
                    let bound = match identity {
                        Some(v) => self
                            .bindings
                            .bind(h, v, o.clone(), wall_unix)
                            .map(|b| (b.aor().to_owned(), b.fingerprint().to_owned())),
                        None => self
                            .bindings
                            .check(h, o)
                            .map(|()| (String::new(), String::new())),
                    };
                    match bound {
                        Ok((aor, fingerprint)) if !aor.is_empty() && !was_bound => {
                            self.event(UaEvent::BindingCreated {
                                call: h,
                                aor,
                                fingerprint,
                            });
                        }
                        Ok(_) => {}
                        Err(e) => {
                            self.refuse_binding(now, &key, &request, call, &e);
                            return;
                        }
                    }
                }
                self.in_dialog_request(now, h, key, request);
            }
        }
    }

    fn in_dialog_request(
        &mut self,
        now: Instant,
        h: CallHandle,
        key: ServerTransactionKey,
        request: Message,
    ) {
        let Some(method) = request.method() else {
            return;
        };
        match method {
            Method::Bye => {
                self.reply(now, &key, &request, 200, None, None);
                self.end_call(h, BindingEnd::Bye, "BYE received".to_owned());
            }
            Method::Prack => {
                self.reply(now, &key, &request, 200, None, None);
                self.retransmits
                    .retain(|r| !(r.call == h && r.response.status().is_some_and(|s| s < 200)));
                let stage = self.calls.get(&h).map(|c| c.stage);
                if stage == Some(Stage::AwaitingPrack) {
                    if self.config.connected_identity && self.certificate.is_some() {
                        if let Some(c) = self.calls.get_mut(&h) {
                            c.stage = Stage::SendingIdentity;
                        }
                        if self.send_certificate_update(now, h).is_err() {
                            self.send_invite_2xx(now, h, false).ok();
                        }
                    } else {
                        self.send_invite_2xx(now, h, false).ok();
                    }
                }
            }
            Method::Update => {
                // An UPDATE with SDP is an offer (RFC 3311 §5.2): answer with ours.
                let has_sdp = body::sdp_of(&request).is_some();
                let tag = self.calls.get(&h).map(|c| c.local_tag.clone());
                if let Ok(mut r) = response_for(&request, 200, reason_phrase(200), tag.as_deref()) {
                    if has_sdp {
                        let mut b = r.edit();
                        b.insert_before("Content-Length", "Contact", &self.contact());
                        b.set_body(Some("application/sdp"), self.config.sdp.clone());
                        if let Ok(x) = b.build_with(&self.config.limits) {
                            r = x;
                        }
                    }
                    self.respond(now, &key, r);
                }
            }
            _ => self.reply(now, &key, &request, 200, None, None),
        }
    }

    fn incoming_invite(
        &mut self,
        now: Instant,
        wall_unix: i64,
        key: ServerTransactionKey,
        request: Message,
        identity: Option<vouch_auth::identity::VerifiedIdentity>,
        offered: Option<OfferedCertificate>,
    ) {
        let handle = CallHandle(self.next_call);
        let local_tag = self.rng.token();
        let Some(dialog) = Dialog::from_request(&request, &local_tag) else {
            self.reply(
                now,
                &key,
                &request,
                400,
                Some("INVITE without Contact or From tag"),
                None,
            );
            return;
        };
        self.next_call += 1;
        let peer_100rel = header_has_token(&request, HeaderName::Supported, "100rel")
            || header_has_token(&request, HeaderName::Require, "100rel");
        let verified_aor = identity.as_ref().map(|v| v.aor().to_owned());
        self.calls.insert(
            handle,
            Call {
                role: Role::Callee,
                stage: Stage::Ringing,
                call_id: request.call_id().to_owned(),
                local_tag,
                cseq: 0,
                invite_cseq: request.cseq().seq,
                dialog: Some(dialog),
                invite_tx: None,
                invite: Some(request.clone()),
                server_tx: Some(key),
                pracked: Vec::new(),
                rseq: 0,
                peer_100rel,
                ack: None,
            },
        );
        if let (Some(v), Some(o)) = (identity, offered) {
            match self.bindings.bind(handle, v, o, wall_unix) {
                Ok(b) => {
                    let (aor, fingerprint) = (b.aor().to_owned(), b.fingerprint().to_owned());
                    self.event(UaEvent::BindingCreated {
                        call: handle,
                        aor,
                        fingerprint,
                    });
                }
                Err(e) => {
                    self.reject_invite(now, handle, 403, Some(&e.to_string()));
                    self.end_call(handle, BindingEnd::Failed, e.to_string());
                    return;
                }
            }
        }
        self.event(UaEvent::IncomingCall {
            call: handle,
            from: request
                .header(HeaderName::From)
                .map(|h| addr_spec(h.value))
                .unwrap_or_default(),
            verified_aor,
        });
        if self.config.auto_answer {
            let _ = self.answer(now, handle);
        } else {
            self.send_provisional(now, handle, 180, false);
        }
    }

    fn send_provisional(&mut self, now: Instant, h: CallHandle, status: u16, reliable: bool) {
        let contact = self.contact();
        let Some(c) = self.calls.get_mut(&h) else {
            return;
        };
        let (Some(inv), Some(key)) = (c.invite.clone(), c.server_tx.clone()) else {
            return;
        };
        let Ok(r) = response_for(&inv, status, reason_phrase(status), Some(&c.local_tag)) else {
            return;
        };
        let mut b = r.edit();
        copy_record_route(&inv, &mut b);
        b.insert_before("Content-Length", "Contact", &contact);
        if reliable {
            c.rseq += 1;
            b.insert_before("Content-Length", "Require", "100rel");
            b.insert_before("Content-Length", "RSeq", &c.rseq.to_string());
            b.set_body(Some("application/sdp"), self.config.sdp.clone());
            c.stage = Stage::AwaitingPrack;
        }
        let Ok(r) = b.build_with(&self.config.limits) else {
            return;
        };
        if reliable {
            self.send_until_acknowledged(now, h, key, r);
        } else {
            self.respond(now, &key, r);
        }
    }

    /// Sends a reliable provisional (until PRACK, RFC 3262 §3) or a 2xx (until ACK, RFC 3261
    /// §13.3.1.4) and keeps sending it, T1 doubling up to T2, for 64×T1.
    fn send_until_acknowledged(
        &mut self,
        now: Instant,
        call: CallHandle,
        key: ServerTransactionKey,
        response: Message,
    ) {
        let t1 = self.config.transaction.t1;
        self.retransmits.retain(|x| x.call != call);
        self.retransmits.push(Retransmit {
            call,
            key: key.clone(),
            response: response.clone(),
            next: now + t1,
            interval: t1,
            give_up: now + t1 * 64,
        });
        self.respond(now, &key, response);
    }

    fn send_invite_2xx(
        &mut self,
        now: Instant,
        h: CallHandle,
        with_answer: bool,
    ) -> Result<(), UaError> {
        let contact = self.contact();
        let sdp = self.config.sdp.clone();
        let c = self.calls.get_mut(&h).ok_or(UaError::NoSuchCall)?;
        let (Some(inv), Some(key)) = (c.invite.clone(), c.server_tx.clone()) else {
            return Err(UaError::WrongState("no INVITE to answer"));
        };
        let r = response_for(&inv, 200, reason_phrase(200), Some(&c.local_tag))
            .map_err(|e| UaError::Build(e.to_string()))?;
        let mut b = r.edit();
        copy_record_route(&inv, &mut b);
        b.insert_before("Content-Length", "Contact", &contact);
        b.insert_before("Content-Length", "Allow", ALLOW);
        if with_answer {
            b.set_body(Some("application/sdp"), sdp);
        }
        let r = b
            .build_with(&self.config.limits)
            .map_err(|e| UaError::Build(e.to_string()))?;
        c.stage = Stage::AwaitingAck;
        self.send_until_acknowledged(now, h, key, r);
        Ok(())
    }

    /// Answers the call's INVITE with `status`, and a Warning giving `why` when there is one
    /// to give (a user's decline or a CANCEL needs none).
    fn reject_invite(&mut self, now: Instant, h: CallHandle, status: u16, why: Option<&str>) {
        self.retransmits.retain(|r| r.call != h);
        let Some(c) = self.calls.get(&h) else { return };
        let (Some(inv), Some(key)) = (c.invite.clone(), c.server_tx.clone()) else {
            return;
        };
        let tag = c.local_tag.clone();
        if let Ok(r) = response_for(&inv, status, reason_phrase(status), Some(&tag)) {
            let mut b = r.edit();
            if let Some(why) = why {
                b.insert_before("Content-Length", "Warning", &warning(&self.sent_by(), why));
            }
            if let Ok(r) = b.build_with(&self.config.limits) {
                self.respond(now, &key, r);
            }
        }
    }

    fn retransmit(&mut self, now: Instant) {
        let t2 = self.config.transaction.t2;
        let mut due = Vec::new();
        let mut gave_up = Vec::new();
        self.retransmits.retain_mut(|r| {
            if r.give_up <= now {
                gave_up.push((r.call, r.response.status().unwrap_or_default()));
                return false;
            }
            if r.next <= now {
                due.push((r.key.clone(), r.response.clone()));
                r.interval = (r.interval * 2).min(t2);
                r.next = now + r.interval;
            }
            true
        });
        for (key, response) in due {
            if self.layer.respond(now, &key, response.clone()).is_err() {
                // The server transaction is gone (RFC 6026 Accepted ended): the 2xx goes to
                // the transport directly, to the first Via's address.
                if let Some(to) = response
                    .top_via()
                    .as_ref()
                    .and_then(crate::wire::response_destination)
                {
                    self.out.push_back(Output::Transmit {
                        to,
                        bytes: response.as_bytes().clone(),
                    });
                }
            }
            self.drain_layer(now);
        }
        for (call, status) in gave_up {
            if status >= 200 {
                // RFC 3261 §13.3.1.4: no ACK for 64*T1 — the session is terminated with BYE.
                let _ = self.send_in_dialog(
                    now,
                    call,
                    Method::Bye,
                    Purpose::Bye,
                    None,
                    Bytes::new(),
                    &[],
                );
                self.end_call(call, BindingEnd::Timeout, "no ACK for the 2xx".to_owned());
            } else {
                // RFC 3262 §3: no PRACK for 64*T1 — the INVITE is rejected with a 5xx. 500
                // with the Warning saying why; 504 would blame a server upstream of us.
                self.reject_invite(
                    now,
                    call,
                    500,
                    Some("no PRACK for the reliable provisional response"),
                );
                self.end_call(call, BindingEnd::Timeout, "no PRACK".to_owned());
            }
        }
    }

    fn on_ack(&mut self, ack: &Message) {
        let Some(h) = self.find_dialog_call(ack) else {
            return;
        };
        self.retransmits.retain(|r| r.call != h);
        if let Some(c) = self.calls.get_mut(&h)
            && c.stage == Stage::AwaitingAck
        {
            c.stage = Stage::Confirmed;
            self.event(UaEvent::CallEstablished { call: h });
        }
    }

    fn on_timeout(&mut self, key: TransactionKey) {
        let TransactionKey::Client(k) = key else {
            return;
        };
        let Some(p) = self.pending.remove(&k) else {
            return;
        };
        match (p.purpose, p.call) {
            (Purpose::Register, _) => {
                self.registered = false;
                self.event(UaEvent::RegistrationFailed {
                    status: 408,
                    reason: "no answer from the registrar".to_owned(),
                });
            }
            (Purpose::Invite, Some(h)) => {
                self.event(UaEvent::CallFailed {
                    call: h,
                    status: 408,
                    reason: "no answer".to_owned(),
                });
                self.end_call(h, BindingEnd::Failed, "INVITE timed out".to_owned());
            }
            (_, call) => self.event(UaEvent::RequestCompleted {
                call,
                method: p.method,
                status: 408,
            }),
        }
    }

    fn on_stray_response(&mut self, response: Message) {
        // A 2xx retransmission after the INVITE client transaction ended: ACK it again.
        if response.cseq().method == Method::Invite
            && response.status().is_some_and(|s| (200..300).contains(&s))
        {
            let h = self
                .calls
                .iter()
                .find(|(_, c)| c.call_id == response.call_id() && c.role == Role::Caller)
                .map(|(h, _)| *h);
            if let Some((to, bytes)) = h
                .and_then(|h| self.calls.get(&h))
                .and_then(|c| c.ack.clone())
            {
                self.out.push_back(Output::Transmit { to, bytes });
            }
        }
    }

    fn on_response(&mut self, now: Instant, key: ClientTransactionKey, response: Message) {
        let Some(status) = response.status() else {
            return;
        };
        if status < 200 {
            if let Some(p) = self.pending.get(&key)
                && p.purpose == Purpose::Invite
                && let Some(h) = p.call
            {
                self.invite_provisional(now, h, &response, status);
            }
            return;
        }
        let Some(p) = self.pending.remove(&key) else {
            // A 2xx retransmitted while the INVITE client transaction is Accepted (RFC 6026
            // §7.2): our ACK was lost, send it again (RFC 3261 §13.2.2.4).
            self.on_stray_response(response);
            return;
        };
        if (status == 401 || status == 407) && p.attempts < MAX_AUTH_ATTEMPTS {
            if let Some(p) = self.challenged(p, &response, status) {
                if let Err(e) = self.retry(now, p) {
                    self.event(UaEvent::RegistrationFailed {
                        status,
                        reason: e.to_string(),
                    });
                }
                return;
            }
            return;
        }
        let (realms, authenticated) = if (200..300).contains(&status) {
            self.check_rspauth(now, &p, &response)
        } else {
            (Vec::new(), true)
        };
        match p.purpose {
            Purpose::Register => self.register_final(now, &response, status, realms, authenticated),
            Purpose::Invite => {
                // When the proxy failed to authenticate itself the call was ACKed and ended.
                if let Some(h) = p.call
                    && authenticated
                {
                    self.invite_final(h, &response, status);
                }
            }
            Purpose::Update => {
                if let Some(h) = p.call {
                    let stage = self.calls.get(&h).map(|c| c.stage);
                    if stage == Some(Stage::SendingIdentity) {
                        let _ = self.send_invite_2xx(now, h, false);
                    }
                }
                self.event(UaEvent::RequestCompleted {
                    call: p.call,
                    method: p.method,
                    status,
                });
            }
            _ => self.event(UaEvent::RequestCompleted {
                call: p.call,
                method: p.method,
                status,
            }),
        }
    }

    /// Takes the challenges of a 401/407 into the responder; the request to send again, or
    /// `None` (after an event) when the challenge cannot be answered.
    fn challenged(&mut self, mut p: Pending, response: &Message, status: u16) -> Option<Pending> {
        let (header, responder) = if status == 401 {
            p.www = true;
            (HeaderName::WwwAuthenticate, self.www.as_mut())
        } else {
            (HeaderName::ProxyAuthenticate, self.proxy.as_mut())
        };
        let texts: Vec<String> = response
            .headers_named(header)
            .map(|h| h.value.to_owned())
            .collect();
        let challenges: Vec<Challenge<'_>> = texts
            .iter()
            .filter_map(|t| Challenge::parse(t).ok())
            .collect();
        let result = match responder {
            Some(r) => r.handle_challenges(&challenges).map_err(|e| e.to_string()),
            None => Err("no credentials configured".to_owned()),
        };
        match result {
            Ok(()) => {
                p.attempts += 1;
                Some(p)
            }
            Err(reason) => {
                self.auth_failed(&p, status, reason);
                None
            }
        }
    }

    fn auth_failed(&mut self, p: &Pending, status: u16, reason: String) {
        match (p.purpose, p.call) {
            (Purpose::Register, _) => {
                self.registered = false;
                self.event(UaEvent::RegistrationFailed { status, reason });
            }
            (Purpose::Invite, Some(h)) => {
                self.event(UaEvent::CallFailed {
                    call: h,
                    status,
                    reason,
                });
                self.end_call(h, BindingEnd::Failed, "authentication failed".to_owned());
            }
            (_, call) => self.event(UaEvent::RequestCompleted {
                call,
                method: p.method.clone(),
                status,
            }),
        }
    }

    /// Sends a challenged request again with a new CSeq (RFC 3261 §22.2).
    fn retry(&mut self, now: Instant, mut p: Pending) -> Result<(), UaError> {
        let seq = match (p.purpose, p.call) {
            (Purpose::Register, _) => {
                self.register_cseq += 1;
                self.register_cseq
            }
            (_, Some(h)) => {
                let c = self.calls.get_mut(&h).ok_or(UaError::NoSuchCall)?;
                c.cseq += 1;
                if p.purpose == Purpose::Invite {
                    c.invite_cseq = c.cseq;
                }
                c.cseq
            }
            (_, None) => return Err(UaError::NoSuchCall),
        };
        p.base.replace("CSeq", &format!("{seq} {}", p.method));
        self.transmit_pending(now, p)
    }

    /// Checks Authentication-Info / Proxy-Authentication-Info of a 2xx (mutual auth): the
    /// realms proven, and false when a server failed to authenticate itself.
    fn check_rspauth(
        &mut self,
        now: Instant,
        p: &Pending,
        response: &Message,
    ) -> (Vec<String>, bool) {
        let body = response.body_bytes().to_vec();
        let mut realms = Vec::new();
        let mut failure: Option<ClientAuthError> = None;
        for (header, sent, responder) in [
            (
                HeaderName::AuthenticationInfo,
                &p.sent_www,
                self.www.as_mut(),
            ),
            (
                HeaderName::ProxyAuthenticationInfo,
                &p.sent_proxy,
                self.proxy.as_mut(),
            ),
        ] {
            let (Some(r), false) = (responder, sent.is_empty()) else {
                continue;
            };
            let texts: Vec<String> = response
                .headers_named(header)
                .map(|h| h.value.to_owned())
                .collect();
            let infos: Vec<AuthenticationInfo<'_>> = texts
                .iter()
                .filter_map(|t| AuthenticationInfo::parse(t).ok())
                .collect();
            match r.check_response(sent, &infos, &body) {
                Ok(proofs) => realms.extend(proofs.iter().map(|x| x.realm().to_owned())),
                Err(e) => failure = Some(e),
            }
        }
        if let Some(e) = failure {
            self.event(UaEvent::ServerNotAuthenticated {
                method: p.method.clone(),
                call: p.call,
                reason: e.to_string(),
            });
            if p.purpose == Purpose::Register {
                self.registered = false;
            }
            if p.purpose == Purpose::Invite
                && let Some(h) = p.call
            {
                // The 2xx must still be acknowledged before the dialog is ended (§13.2.2.4).
                self.invite_final(h, response, 200);
                let _ = self.send_bye(now, h);
                if let Some(c) = self.calls.get_mut(&h) {
                    c.stage = Stage::Ended;
                }
            }
            return (realms, false);
        }
        if !realms.is_empty() {
            self.event(UaEvent::ServerAuthenticated {
                method: p.method.clone(),
                realms: realms.clone(),
            });
        }
        (realms, true)
    }

    fn register_final(
        &mut self,
        now: Instant,
        response: &Message,
        status: u16,
        authenticated_realms: Vec<String>,
        authenticated: bool,
    ) {
        if (200..300).contains(&status) {
            let ours = self.contact();
            let ours = addr_spec(&ours);
            let granted = response
                .contacts()
                .iter()
                .find(|c| c.addr().is_some_and(|a| a.uri().as_str() == ours))
                .and_then(|c| c.expires())
                .or(response.expires())
                .unwrap_or(self.config.register_expires);
            if granted == 0 {
                self.registered = false;
                self.register_refresh = None;
            } else {
                self.registered = authenticated;
                self.register_refresh =
                    Some(now + Duration::from_secs(u64::from(granted / 2).max(1)));
            }
            self.event(UaEvent::Registered {
                expires: granted,
                authenticated_realms,
            });
        } else {
            self.registered = false;
            self.event(UaEvent::RegistrationFailed {
                status,
                reason: response.reason_phrase().unwrap_or_default().to_owned(),
            });
        }
    }

    fn invite_provisional(&mut self, now: Instant, h: CallHandle, response: &Message, status: u16) {
        self.event(UaEvent::CallProgress { call: h, status });
        let Some(c) = self.calls.get_mut(&h) else {
            return;
        };
        if c.dialog.is_none()
            && response.to_tag().is_some()
            && let Some(inv) = c.invite.as_ref()
        {
            c.dialog = Dialog::from_response(inv, response);
        }
        // RFC 3262 §4: acknowledge a reliable provisional with PRACK.
        let rseq = response
            .header(HeaderName::RSeq)
            .and_then(|v| v.value.trim().parse::<u32>().ok());
        if let Some(rseq) = rseq
            && header_has_token(response, HeaderName::Require, "100rel")
            && !c.pracked.contains(&rseq)
        {
            c.pracked.push(rseq);
            let rack = format!("{rseq} {} INVITE", c.invite_cseq);
            let _ = self.send_in_dialog(
                now,
                h,
                Method::Prack,
                Purpose::Prack,
                None,
                Bytes::new(),
                &[("RAck", &rack)],
            );
        }
    }

    fn invite_final(&mut self, h: CallHandle, response: &Message, status: u16) {
        if (200..300).contains(&status) {
            let Some(c) = self.calls.get_mut(&h) else {
                return;
            };
            if c.dialog.is_none()
                && let Some(inv) = c.invite.as_ref()
            {
                c.dialog = Dialog::from_response(inv, response);
            }
            let Some(d) = c.dialog.as_mut() else { return };
            // The 2xx's Contact and Record-Route are final (§12.1.2 / §13.2.2.4).
            if let Some(fresh) = c
                .invite
                .as_ref()
                .and_then(|inv| Dialog::from_response(inv, response))
            {
                d.remote_target = fresh.remote_target;
                d.route_set = fresh.route_set;
            }
            let mut b = d.ack(c.invite_cseq);
            let hop = d.next_hop(&[]);
            let (transport, addr) = self.config.local;
            b.push_front(
                "Via",
                &format!(
                    "SIP/2.0/{} {}:{};branch=z9hG4bK{};rport",
                    transport.as_str(),
                    ip_host(addr.ip()),
                    addr.port(),
                    self.rng.token()
                ),
            );
            let first = c.stage == Stage::Calling;
            if let (Some(to), Ok(ack)) = (hop, b.build_with(&self.config.limits)) {
                let bytes = ack.as_bytes().clone();
                c.ack = Some((to.clone(), bytes.clone()));
                self.out.push_back(Output::Transmit { to, bytes });
            }
            if first {
                c.stage = Stage::Confirmed;
                self.event(UaEvent::CallEstablished { call: h });
            }
        } else {
            self.event(UaEvent::CallFailed {
                call: h,
                status,
                reason: response.reason_phrase().unwrap_or_default().to_owned(),
            });
            self.end_call(h, BindingEnd::Failed, format!("{status}"));
        }
    }

    fn end_call(&mut self, h: CallHandle, why: BindingEnd, reason: String) {
        self.retransmits.retain(|r| {
            r.call != h
                || r.response
                    .status()
                    .is_some_and(|s| s >= 200 && why == BindingEnd::Bye)
        });
        let Some(c) = self.calls.get_mut(&h) else {
            return;
        };
        let was_established = c.stage == Stage::Confirmed;
        c.stage = Stage::Ended;
        if let Some(b) = self.bindings.remove(h) {
            self.event(UaEvent::BindingRemoved {
                call: h,
                aor: b.aor().to_owned(),
                reason: why,
            });
        }
        if was_established || matches!(why, BindingEnd::Bye | BindingEnd::Timeout) {
            self.event(UaEvent::CallEnded { call: h, reason });
        }
    }
}

const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, PRACK, UPDATE, NOTIFY, OPTIONS";

fn aor_host(aor: &str) -> &str {
    let rest = aor.split_once(':').map_or(aor, |(_, r)| r);
    let rest = rest.split_once('@').map_or(rest, |(_, h)| h);
    rest.split([';', '>']).next().unwrap_or(rest)
}

fn aor_user(aor: &str) -> &str {
    let rest = aor.split_once(':').map_or(aor, |(_, r)| r);
    rest.split_once('@').map_or("", |(u, _)| u)
}

fn header_has_token(msg: &Message, name: HeaderName, token: &str) -> bool {
    msg.headers_named(name)
        .any(|h| split_commas(h.value).any(|t| t.trim().eq_ignore_ascii_case(token)))
}

fn is_certificate_event(msg: &Message) -> bool {
    msg.header(HeaderName::Event).is_some_and(|h| {
        h.value
            .split(';')
            .next()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("certificate"))
    })
}

/// §12.1.1: a response that creates a dialog copies the request's Record-Route.
fn copy_record_route(request: &Message, b: &mut MessageBuilder) {
    for rr in request.headers_named(HeaderName::RecordRoute) {
        b.insert_before("Content-Length", "Record-Route", rr.value);
    }
}
