//! Digest authentication as the server's admission policy (RFC 3261 §22, RFC 2617 §3.2,
//! RFC 7616, RFC 8760) with mutual authentication (RFC 2617 §3.2.3 Authentication-Info,
//! draft-dotson-sip-mutual-auth §5–§6 Proxy-Authentication-Info), built on vouch-auth's
//! [`Challenger`].
//!
//! Per request the policy is one small state machine — *exempt → challenged → verified →
//! authorised* — whose only lasting state is the nonce-count table of each realm's
//! challenger (replay detection) and the [`Grant`] the core keeps until the 2xx:
//!
//! ```text
//! request ─► exempt? ──yes──► Admit
//!              │no
//!              ▼
//!   credentials for our realm? ──none / wrong / replayed / stale / algorithm refused──►
//!              │                      401/407 with one challenge per algorithm (stale=true
//!              │                      when only the nonce had expired)
//!              │ malformed ─► 400 + Warning
//!              ▼ verified
//!   may the user use the From AoR (To for REGISTER)? ──no──► 403 + Warning
//!              ▼ yes
//!   Authenticated(Grant) ─► 2xx carries Authentication-Info / Proxy-Authentication-Info
//! ```
//!
//! Which requests are challenged (Kamailio's default script, made configurable):
//! - REGISTER always (401, WWW-Authenticate; the To AoR must be the user's).
//! - Requests to the server itself (its UAS, e.g. OPTIONS) and requests the proxy forwards
//!   (407, Proxy-Authenticate) when their From names this server (one of its domains or
//!   addresses), or every such request with [`ChallengeScope::Everyone`]. Methods listed in
//!   [`DigestConfig::exempt_methods`] never are.
//! - Never ACK or CANCEL (RFC 3261 §22.1: they cannot be resubmitted; the core does not even
//!   ask), and by default not mid-dialog requests that follow our Record-Route (a To tag and
//!   our URI on top of Route): the dialog-creating request was authenticated already.
//! - A request neither from us nor for us is refused with 403 (no open relay) unless
//!   [`DigestConfig::relay_for_foreign_senders`] is set.
//!
//! Answers:
//! - One challenge per configured algorithm, in the configured order (RFC 8760 §2.4: the
//!   strongest first by default; SIPp reads only the first, browsers only the last — see
//!   PEERS.md), qop `auth` (and `auth-int` when enabled), `-sess` variants when enabled, the
//!   same nonce in each.
//! - `stale=true` when the credentials were right but the nonce had expired (RFC 7616 §3.3).
//! - A replayed nonce-count (the same or a lower nc with a nonce, RFC 7616 §3.4, RFC 2617
//!   §3.2.2) gets a fresh challenge (401/407, stale=false), like any other failed attempt:
//!   the replayer learns nothing, and a UA that merely lost count recovers by answering it.
//! - An unknown user gets exactly the answer of a wrong password (vouch-auth computes a
//!   response for a dummy HA1, so even the work done is the same); only the operator's log
//!   tells them apart.
//! - Credentials that do not parse, or more than [`MAX_CREDENTIALS_FIELDS`] credentials
//!   header fields, get 400 with a Warning.
//! - The digest-uri must equal the Request-URI as received (RFC 3261 §22.4 defines
//!   `digest-uri-value = Request-URI`) unless [`DigestConfig::digest_uri_check`] is
//!   [`DigestUriCheck::Relaxed`], for clients that put the transport target there (SIPp
//!   without `-auth_uri`); the response digest still covers whatever uri was sent.
//!
//! Realms: with [`RealmChoice::PerDomain`] (default) the realm is the host of the From URI
//! (To for REGISTER) when it is one of our domains, else our first domain — so a multi-domain
//! server keeps each domain's users in their own realm, and an attacker cannot make the
//! server create state for realms of its choosing. [`RealmChoice::Fixed`] uses one realm
//! for everything. Credentials are looked for only in that realm; values for other realms
//! are left alone (and, by the proxy, forwarded).

use std::collections::HashMap;

use vouch_auth::client_cert::ClientIdentity;
use vouch_auth::digest::{AuthFailure, Challenger, ChallengerConfig};
use vouch_msg::headers::auth::Credentials;
use vouch_msg::{HeaderName, Limits, Message, Method, Uri, reason_phrase};

pub use vouch_auth::digest::{Algorithm, DigestUriCheck, NonceSecret};

use crate::error::Error;
use crate::location::{aor_key, normalize_aor};
use crate::policy::{Grant, RequestContext, RequestPolicy, Role, Verdict};
use crate::rng::Rng;

/// Most Authorization or Proxy-Authorization header fields read from one request; more is a
/// 400 (a chain of proxies needs one per realm, nowhere near this many).
pub const MAX_CREDENTIALS_FIELDS: usize = 16;

/// The realm a challenge names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RealmChoice {
    /// The From host (To for REGISTER) when it is one of our domains, else our first domain
    /// (else `vouch` when no domain is configured).
    PerDomain,
    /// This realm for every request.
    Fixed(String),
}

/// Which requests from users other than the registering ones are challenged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeScope {
    /// Requests whose From names this server (Kamailio's `from_uri==myself`).
    FromLocalUsers,
    /// Every request (a proxy that authenticates all traffic it relays, e.g. an enterprise
    /// outbound proxy behind another domain's proxy).
    Everyone,
}

/// How the digest policy behaves.
#[derive(Debug, Clone)]
pub struct DigestConfig {
    /// The realm of challenges.
    pub realm: RealmChoice,
    /// Algorithms offered, one challenge each, in this order (RFC 8760 §2.4 wants the
    /// strongest first: [`Algorithm::STRONGEST_FIRST`], the default). SIPp reads only the
    /// first challenge and needs MD5 there (or MD5 only); JsSIP and SIP.js keep only the last
    /// and need MD5 last. Credentials with an algorithm not listed are refused (re-challenged).
    pub algorithms: Vec<Algorithm>,
    /// Offer the `-sess` variants instead of the plain ones.
    pub sess: bool,
    /// Offer qop `auth-int` beside `auth` (the request body, and for rspauth the 2xx body,
    /// are then covered).
    pub auth_int: bool,
    /// How long a nonce is accepted, in seconds; older ones are re-challenged with
    /// `stale=true`.
    pub nonce_lifetime_secs: i64,
    /// Whether the digest-uri must equal the Request-URI ([`DigestUriCheck::Strict`], the
    /// default) or may be any URI ([`DigestUriCheck::Relaxed`], for SIPp).
    pub digest_uri_check: DigestUriCheck,
    /// Nonces whose nonce-count is tracked per realm (replay detection); the oldest are
    /// forgotten first.
    pub tracked_nonces_per_realm: usize,
    /// The secret nonces are made with (share it between nodes of a cluster).
    pub nonce_secret: NonceSecret,
    /// Seed of the randomness put in nonces (the core reads no entropy source).
    pub seed: u64,
    /// Which requests besides REGISTER are challenged.
    pub scope: ChallengeScope,
    /// Also challenge mid-dialog requests that follow our Record-Route (default: no).
    pub challenge_in_dialog: bool,
    /// Methods never challenged, e.g. `OPTIONS` for keepalive pings (case-sensitive method
    /// tokens). REGISTER cannot be exempted.
    pub exempt_methods: Vec<String>,
    /// Relay requests that are neither from nor for this server without authentication
    /// (default: no, they get 403). Only meaningful with [`ChallengeScope::FromLocalUsers`].
    pub relay_for_foreign_senders: bool,
}

impl DigestConfig {
    /// Defaults: per-domain realms, SHA-512-256, SHA-256, MD5 (strongest first), qop auth and
    /// auth-int, no `-sess`, 300 s nonces, strict digest-uri, local users challenged,
    /// mid-dialog requests not, no open relay.
    pub fn new(nonce_secret: NonceSecret, seed: u64) -> Self {
        DigestConfig {
            realm: RealmChoice::PerDomain,
            algorithms: Algorithm::STRONGEST_FIRST.to_vec(),
            sess: false,
            auth_int: true,
            nonce_lifetime_secs: 300,
            digest_uri_check: DigestUriCheck::Strict,
            tracked_nonces_per_realm: 100_000,
            nonce_secret,
            seed,
            scope: ChallengeScope::FromLocalUsers,
            challenge_in_dialog: false,
            exempt_methods: Vec::new(),
            relay_for_foreign_senders: false,
        }
    }
}

/// True when a realm can be written in a quoted-string as it is.
fn printable_realm(realm: &str) -> bool {
    !realm.is_empty()
        && realm.len() <= 256
        && realm
            .chars()
            .all(|c| !c.is_control() && c != '"' && c != '\\')
}

/// The digest authentication policy: install it with [`crate::Endpoint::set_policy`] and
/// give it users with [`crate::Endpoint::set_users`].
#[derive(Debug)]
pub struct DigestPolicy {
    config: DigestConfig,
    /// One challenger per realm in use (our domains, or the fixed realm): bounded.
    challengers: HashMap<String, Challenger>,
    rng: Rng,
}

impl DigestPolicy {
    /// A policy with this configuration. Fails when no algorithm is offered, an algorithm is
    /// listed twice, the nonce lifetime is not positive, or a fixed realm cannot be quoted.
    pub fn new(config: DigestConfig) -> Result<Self, Error> {
        if config.algorithms.is_empty() {
            return Err(Error::InvalidDigestConfig("no digest algorithm is offered"));
        }
        for (i, a) in config.algorithms.iter().enumerate() {
            if config.algorithms[..i].contains(a) {
                return Err(Error::InvalidDigestConfig(
                    "a digest algorithm is listed twice",
                ));
            }
        }
        if config.nonce_lifetime_secs <= 0 {
            return Err(Error::InvalidDigestConfig(
                "the nonce lifetime must be positive",
            ));
        }
        if let RealmChoice::Fixed(r) = &config.realm
            && !printable_realm(r)
        {
            return Err(Error::InvalidDigestConfig(
                "the realm must be 1-256 printable characters without '\"' or '\\'",
            ));
        }
        Ok(DigestPolicy {
            rng: Rng::new(config.seed),
            challengers: HashMap::new(),
            config,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &DigestConfig {
        &self.config
    }

    /// The realm challenges for this request name.
    fn realm_for(&self, request: &Message, ctx: &RequestContext<'_>) -> String {
        let host_of = |uri: Option<vouch_msg::headers::NameAddr<'_>>| {
            uri.and_then(|na| match na.uri() {
                Uri::Sip(u) => Some(u.host_str().to_ascii_lowercase()),
                _ => None,
            })
        };
        match &self.config.realm {
            RealmChoice::Fixed(r) => r.clone(),
            RealmChoice::PerDomain => {
                let host = if ctx.role == Role::Registrar {
                    host_of(request.to())
                } else {
                    host_of(request.from())
                };
                host.filter(|h| ctx.domains.iter().any(|d| d.eq_ignore_ascii_case(h)))
                    .or_else(|| ctx.domains.first().map(|d| d.to_ascii_lowercase()))
                    .filter(|r| printable_realm(r))
                    .unwrap_or_else(|| "vouch".to_owned())
            }
        }
    }

    fn challenger(&mut self, realm: &str) -> &mut Challenger {
        let config = &self.config;
        self.challengers.entry(realm.to_owned()).or_insert_with(|| {
            let mut c = ChallengerConfig::new(realm);
            c.algorithms = config.algorithms.clone();
            c.sess = config.sess;
            c.auth_int = config.auth_int;
            c.nonce_lifetime = config.nonce_lifetime_secs;
            c.uri_check = config.digest_uri_check;
            c.nc_capacity = config.tracked_nonces_per_realm;
            Challenger::new(c, config.nonce_secret.clone())
        })
    }

    /// Whether this request must be authenticated; `Some(verdict)` when it is decided
    /// without credentials.
    fn exemption(&self, request: &Message, ctx: &RequestContext<'_>) -> Option<Verdict> {
        let method = request.method();
        if matches!(method, Some(Method::Ack | Method::Cancel)) {
            return Some(Verdict::Admit);
        }
        if ctx.role == Role::Registrar {
            return None;
        }
        let token = method.map(|m| m.as_str()).unwrap_or_default();
        if self.config.exempt_methods.iter().any(|m| m == token) {
            return Some(Verdict::Admit);
        }
        if ctx.in_dialog_via_our_record_route && !self.config.challenge_in_dialog {
            return Some(Verdict::Admit);
        }
        if self.config.scope == ChallengeScope::Everyone || ctx.from_is_local {
            return None;
        }
        // A dialog we record-routed: the peer's mid-dialog requests (PRACK, UPDATE, BYE from
        // the other domain's user) target a Contact, not our domain, and still belong here.
        if ctx.in_dialog_via_our_record_route {
            return Some(Verdict::Admit);
        }
        if ctx.target_is_local || self.config.relay_for_foreign_senders {
            return Some(Verdict::Admit);
        }
        Some(Verdict::Reject {
            status: 403,
            reason: "Relaying Denied".to_owned(),
            headers: Vec::new(),
            warning: Some("relaying denied: neither from nor for this domain".to_owned()),
            log: Some(format!(
                "{token} from {} refused: neither from nor for our domains (no open relay)",
                ctx.source
            )),
        })
    }

    /// A fresh 401/407 with one challenge per algorithm.
    fn challenge(
        &mut self,
        realm: &str,
        role: Role,
        wall: i64,
        stale: bool,
        log: Option<String>,
    ) -> Verdict {
        let random = self.rng.next_u64();
        let digest_role = role.digest_role();
        let headers = self
            .challenger(realm)
            .challenges(wall, random, stale)
            .into_iter()
            .filter(|v| !v.is_empty())
            .map(|v| (digest_role.challenge_header().to_owned(), v))
            .collect();
        Verdict::Reject {
            status: digest_role.status(),
            reason: reason_phrase(digest_role.status()).to_owned(),
            headers,
            warning: None,
            log,
        }
    }
}

fn bad_request(warning: String, log: String) -> Verdict {
    Verdict::Reject {
        status: 400,
        reason: reason_phrase(400).to_owned(),
        headers: Vec::new(),
        warning: Some(warning),
        log: Some(log),
    }
}

/// The AoR key of a From or To value: `sip:user@host` for SIP and SIPS URIs, the URI as
/// written otherwise.
fn aor_of(na: &vouch_msg::headers::NameAddr<'_>) -> String {
    match na.uri() {
        Uri::Sip(u) => aor_key(u),
        other => other.as_str().to_owned(),
    }
}

/// The AoR a request speaks for, and the header it is in: REGISTER's To (RFC 3261 §10.3 step
/// 4), the From of anything else (the server's policy, §22.1). Authorisation compares it with
/// what the authenticated user may use.
fn asserted_aor(request: &Message, role: Role) -> (&'static str, String) {
    #[cfg(test)]
    tests::ASSERTED_AOR_CALLS.with(|n| n.set(n.get() + 1));
    let (what, asserted) = if role == Role::Registrar {
        ("To", request.to())
    } else {
        ("From", request.from())
    };
    (what, asserted.map(|na| aor_of(&na)).unwrap_or_default())
}

/// The grant for a request whose asserted AoR (`aor_of` form) the client certificate names,
/// when that AoR is in one of our domains: our users' certificates speak for our users only.
fn client_certificate_grant(
    identity: &ClientIdentity,
    asserted: &str,
    realm: &str,
    ctx: &RequestContext<'_>,
) -> Option<Grant> {
    let ours = asserted
        .rsplit_once('@')
        .is_some_and(|(_, host)| ctx.domains.iter().any(|d| d.eq_ignore_ascii_case(host)));
    if !ours {
        return None;
    }
    let named = identity.aor_with_key(&normalize_aor(asserted))?;
    Grant::client_certificate(identity, named, realm, ctx.role)
}

impl RequestPolicy for DigestPolicy {
    fn check(&mut self, request: &Message, ctx: &RequestContext<'_>) -> Verdict {
        match self.exemption(request, ctx) {
            None => self.authenticate(request, ctx),
            // A request that need not be authenticated (mid-dialog, an exempt method) but
            // carries credentials anyway — UAs pre-authorize every request with the nonce they
            // hold — is authenticated when they verify, so its 2xx proves us back (draft §5)
            // and a UA requiring mutual authentication is not left without rspauth. When they
            // do not verify it passes, as it would have without them.
            Some(Verdict::Admit)
                if !matches!(request.method(), Some(Method::Ack | Method::Cancel))
                    && request.header(HeaderName::ProxyAuthorization).is_some() =>
            {
                match self.authenticate(request, ctx) {
                    v @ Verdict::Authenticated(_) => v,
                    _ => Verdict::Admit,
                }
            }
            Some(v) => v,
        }
    }

    fn authentication_info(
        &mut self,
        grant: &Grant,
        response_body: &[u8],
        wall_unix: i64,
    ) -> Option<String> {
        let random = self.rng.next_u64();
        let proof = grant.digest_proof()?;
        let challenger = self.challengers.get(proof.realm())?;
        let value = challenger.authentication_info(proof, wall_unix, random, response_body);
        (!value.is_empty()).then_some(value)
    }
}

impl DigestPolicy {
    /// Authenticates (and authorizes) a request that must be: a challenge when it carries no
    /// valid credentials of our realm.
    fn authenticate(&mut self, request: &Message, ctx: &RequestContext<'_>) -> Verdict {
        let realm = self.realm_for(request, ctx);
        // A TLS client certificate naming the AoR the request speaks for, in one of our
        // domains, authenticates it without a challenge (identity BCP draft §3). Any other
        // certificate leaves the request to digest, as if there were none.
        if let Some(grant) = ctx.client_identity.and_then(|id| {
            let (_, asserted) = asserted_aor(request, ctx.role);
            client_certificate_grant(id, &asserted, &realm, ctx)
        }) {
            return Verdict::Authenticated(grant);
        }
        let digest_role = ctx.role.digest_role();
        let header = match digest_role {
            vouch_auth::digest::Role::Registrar => HeaderName::Authorization,
            vouch_auth::digest::Role::Proxy => HeaderName::ProxyAuthorization,
        };
        let method = request.method().map(|m| m.as_str()).unwrap_or_default();
        let wall = ctx.wall_unix;

        // Find our realm's credentials; every value must parse.
        let mut ours: Option<Credentials<'_>> = None;
        for (i, field) in request.headers_named(header).enumerate() {
            if i >= MAX_CREDENTIALS_FIELDS {
                return bad_request(
                    format!(
                        "more than {MAX_CREDENTIALS_FIELDS} {} header fields",
                        digest_role.credentials_header()
                    ),
                    format!("{method} from {}: too many credentials fields", ctx.source),
                );
            }
            let creds = match Credentials::parse(field.value) {
                Ok(c) => c,
                Err(e) => {
                    return bad_request(
                        format!("malformed {}: {e}", digest_role.credentials_header()),
                        format!("{method} from {}: malformed credentials: {e}", ctx.source),
                    );
                }
            };
            if ours.is_none() && creds.is_digest() && creds.realm.as_deref() == Some(&realm) {
                ours = Some(creds);
            }
        }
        let Some(creds) = ours else {
            // The first leg of every authenticated exchange: nothing worth logging.
            return self.challenge(&realm, ctx.role, wall, false, None);
        };
        let username = creds.username.as_deref().unwrap_or_default().to_owned();
        let users = ctx.users;
        let known_user = users.contains(&realm, &username);
        let request_uri = request.request_uri_str().unwrap_or_default();
        let verified = self.challenger(&realm).verify(
            wall,
            &creds,
            method,
            request_uri,
            request.body_bytes(),
            |user, alg| users.ha1(&realm, user, alg),
        );
        let proof = match verified {
            Ok(p) => p,
            Err(AuthFailure::Malformed(why)) => {
                return bad_request(
                    format!("malformed {}: {why}", digest_role.credentials_header()),
                    format!("{method} from {}: malformed credentials: {why}", ctx.source),
                );
            }
            Err(e) => {
                let why = match &e {
                    AuthFailure::WrongResponse if !known_user => "unknown user".to_owned(),
                    other => other.to_string(),
                };
                let log = format!(
                    "{method} from {}: user {username:?} realm {realm:?} refused: {why}",
                    ctx.source
                );
                return self.challenge(&realm, ctx.role, wall, e.stale(), Some(log));
            }
        };
        // Authorisation, once authenticated: a request challenged never needs its AoR.
        let (what, asserted) = asserted_aor(request, ctx.role);
        if !users.may_use(&realm, proof.username(), &asserted) {
            return Verdict::Reject {
                status: 403,
                reason: reason_phrase(403).to_owned(),
                headers: Vec::new(),
                warning: Some(format!(
                    "user {} may not use {what} {asserted}",
                    proof.username()
                )),
                log: Some(format!(
                    "{method} from {}: user {:?} may not use {what} {asserted:?}",
                    ctx.source,
                    proof.username()
                )),
            };
        }
        Verdict::Authenticated(Grant::new(proof, ctx.role))
    }
}

/// RFC 3261 §22.3: before forwarding, a proxy consumes the Proxy-Authorization values of its
/// own realm and MUST NOT touch the others (they are for proxies further on). The kept values
/// stay in their order, in one run of fields where the first was. `Ok(None)`: nothing to
/// remove. The result is parsed under `limits`, those the request was received under.
pub(crate) fn consume_proxy_credentials(
    request: &Message,
    realm: &str,
    limits: &Limits,
) -> Result<Option<Message>, vouch_msg::ParseError> {
    let values: Vec<&str> = request
        .headers_named(HeaderName::ProxyAuthorization)
        .map(|h| h.value)
        .collect();
    let keep: Vec<&str> = values
        .iter()
        .copied()
        .filter(|v| {
            !Credentials::parse(v).is_ok_and(|c| c.is_digest() && c.realm.as_deref() == Some(realm))
        })
        .collect();
    if keep.len() == values.len() {
        return Ok(None);
    }
    const NAME: &str = "Proxy-Authorization";
    let mut b = request.edit();
    match keep.split_last() {
        None => {
            b.remove(NAME);
        }
        Some((last, rest)) => {
            b.replace(NAME, last);
            // Each insertion goes before the first field of the run: add them last to first.
            for v in rest.iter().rev() {
                b.insert_before(NAME, NAME, v);
            }
        }
    }
    b.build_with(limits).map(Some)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::cell::Cell;

    use crate::endpoint::{Peer, TransportKind};
    use crate::users::UserDirectory;

    thread_local! {
        /// How often this thread computed an asserted AoR.
        pub(super) static ASSERTED_AOR_CALLS: Cell<usize> = const { Cell::new(0) };
    }

    fn invite(pa: &[&str]) -> Message {
        let mut s = String::from(
            "INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.9;branch=z9hG4bKa\r\nFrom: <sip:alice@example.com>;tag=f\r\nTo: <sip:bob@example.com>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n",
        );
        for v in pa {
            s.push_str(&format!("Proxy-Authorization: {v}\r\n"));
        }
        s.push_str("Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n");
        Message::parse(s.into_bytes()).unwrap()
    }

    fn creds(realm: &str) -> String {
        format!(
            "Digest username=\"alice\", realm=\"{realm}\", nonce=\"n\", uri=\"sip:bob@example.com\", response=\"00\""
        )
    }

    fn pa_values(m: &Message) -> Vec<String> {
        m.headers_named(HeaderName::ProxyAuthorization)
            .map(|h| h.value.to_owned())
            .collect()
    }

    #[test]
    fn consumes_only_our_realm_and_keeps_the_order_of_the_rest() {
        let (a, b, c) = (creds("a.example"), creds("ours"), creds("c.example"));
        let m = invite(&[&a, &b, "Bearer abc", &c]);
        let out = consume_proxy_credentials(&m, "ours", &Limits::DEFAULT)
            .unwrap()
            .unwrap();
        assert_eq!(pa_values(&out), vec![a.clone(), "Bearer abc".to_owned(), c]);
        let only = invite(&[&b]);
        let out = consume_proxy_credentials(&only, "ours", &Limits::DEFAULT)
            .unwrap()
            .unwrap();
        assert!(pa_values(&out).is_empty());
        assert!(
            consume_proxy_credentials(&invite(&[&a]), "ours", &Limits::DEFAULT)
                .unwrap()
                .is_none()
        );
    }

    /// The asserted AoR is for authorisation after authentication: the first leg of every
    /// exchange (no credentials, or credentials that fail) is challenged without it.
    #[test]
    fn a_challenged_request_does_not_compute_its_asserted_aor() {
        let mut policy =
            DigestPolicy::new(DigestConfig::new(NonceSecret::new([1; 32]), 1)).unwrap();
        let source = Peer::new(TransportKind::Udp, "10.0.0.9:5060".parse().unwrap());
        let users = UserDirectory::new(Vec::new());
        let domains = ["example.com".to_owned()];
        let ctx = RequestContext {
            source: &source,
            wall_unix: 1_800_000_000,
            role: Role::Proxy,
            domains: &domains,
            users: &users,
            from_is_local: true,
            target_is_local: false,
            in_dialog_via_our_record_route: false,
            client_identity: None,
        };
        let realm = policy.realm_for(&invite(&[]), &ctx);
        for request in [invite(&[]), invite(&[&creds(&realm)])] {
            let before = ASSERTED_AOR_CALLS.with(Cell::get);
            let verdict = policy.check(&request, &ctx);
            assert!(
                matches!(verdict, Verdict::Reject { status: 407, .. }),
                "{verdict:?}"
            );
            assert_eq!(ASSERTED_AOR_CALLS.with(Cell::get), before);
        }
    }

    #[test]
    fn rejects_configurations_that_cannot_work() {
        let base = DigestConfig::new(NonceSecret::new([1; 32]), 1);
        let mut c = base.clone();
        c.algorithms.clear();
        assert!(DigestPolicy::new(c).is_err());
        let mut c = base.clone();
        c.algorithms = vec![Algorithm::Md5, Algorithm::Md5];
        assert!(DigestPolicy::new(c).is_err());
        let mut c = base.clone();
        c.realm = RealmChoice::Fixed("a\"b".to_owned());
        assert!(DigestPolicy::new(c).is_err());
        let mut c = base.clone();
        c.nonce_lifetime_secs = 0;
        assert!(DigestPolicy::new(c).is_err());
        assert!(DigestPolicy::new(base).is_ok());
    }
}
