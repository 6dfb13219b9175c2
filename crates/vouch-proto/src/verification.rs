//! The RFC 4474 verification service (§6, §6.2 steps 1–4), sans-IO, for any transaction user:
//! the proxy checks inbound requests for its users with it (see
//! [`crate::Endpoint::set_verification_service`]), and a UA core can check the requests it
//! receives with the same component.
//!
//! [`VerificationService::check`] decides what a request's Identity is worth:
//! - no Identity: 428 'Use Identity Header' when the policy requires one for the method
//!   (RFC 4474 §6), otherwise [`Check::Unsigned`];
//! - an Identity that can never verify (malformed, oversized, not base64): 438 at once;
//! - an Identity-Info that is malformed, names an unsupported `alg` or a URI that is not http
//!   or https (§6.2 step 1, §9 — nothing else is dereferenced): 436 'Bad Identity-Info';
//! - a certificate cached under its Identity-Info URI (§6.2 step 1: "Certificates cached in
//!   this manner should be indexed by the URI") is used at once: [`vouch_auth::identity::
//!   Verifier`] checks chain and name (437), signature (438), Date window and replay (403);
//! - otherwise the request is parked and the caller is asked to fetch the certificate
//!   ([`Check::NeedCertificate`]). Requests for a URI already being fetched wait for that
//!   fetch ([`Check::AwaitingCertificate`]): one fetch per URI, however many requests wait.
//!
//! The caller performs the fetch (the only I/O) and reports it with
//! [`VerificationService::certificate_fetched`], which resolves every request parked on it
//! (a failure is 436). Parking is bounded: at most [`VerificationPolicy::max_parked`] requests
//! wait (more get 503, an overload rather than a fault of the sender), and none waits longer
//! than [`VerificationPolicy::fetch_deadline`] ([`VerificationService::handle_timeout`] answers
//! them 436). Time is an argument: monotonic `now` for deadlines and the cache, wall-clock
//! Unix seconds for certificate validity and the Date window.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use vouch_auth::identity::{
    IdentityError, IdentityHeaders, VerifiedIdentity, Verifier, check_before_fetch,
};
use vouch_msg::{HeaderName, Message, reason_phrase};

/// One certificate fetch the caller was asked to perform.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FetchId(pub u64);

/// What an Identity-Info URI gave: the signer certificate and any intermediates sent with it
/// (DER).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateChain {
    /// The signer certificate.
    pub end_entity: Vec<u8>,
    /// Further certificates of the chain, signer's issuer first.
    pub intermediates: Vec<Vec<u8>>,
}

/// Why a request's Identity was not accepted, as the response a verifier sends (RFC 4474
/// §14: 428, 436, 437, 438; 403 for a stale Date or a replay; 503 when too many requests are
/// already waiting for certificates).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The response status.
    pub status: u16,
    /// Its reason phrase (RFC 4474 §14; "Stale Date" for a Date outside the window, the phrase
    /// RFC 8224 §6.2.1 gave that 403).
    pub phrase: &'static str,
    /// Why, for the response's Warning (399) and the logs.
    pub reason: String,
}

impl Refusal {
    /// A refusal with `status`'s reason phrase.
    pub(crate) fn new(status: u16, reason: impl Into<String>) -> Self {
        Refusal {
            status,
            phrase: reason_phrase(status),
            reason: reason.into(),
        }
    }

    fn from_error(e: &IdentityError) -> Self {
        let mut r = Refusal::new(e.status(), e.to_string());
        if matches!(e, IdentityError::StaleDate) {
            r.phrase = "Stale Date";
        }
        r
    }
}

/// The outcome of [`VerificationService::check`].
#[derive(Debug)]
#[must_use]
pub enum Check {
    /// Every check passed.
    Verified(VerifiedIdentity),
    /// No Identity, and the policy does not require one for this method.
    Unsigned,
    /// Refused: send this response.
    Refused(Refusal),
    /// Parked: fetch the certificate at `url` and report it with
    /// [`VerificationService::certificate_fetched`] under `id`.
    NeedCertificate {
        /// The fetch.
        id: FetchId,
        /// The Identity-Info URI (http or https).
        url: String,
    },
    /// Parked behind a fetch already asked for; nothing to do until it is reported.
    AwaitingCertificate {
        /// The fetch it waits for.
        id: FetchId,
    },
}

/// The final word on a request.
#[derive(Debug)]
pub enum IdentityVerdict {
    /// Every check passed.
    Verified(VerifiedIdentity),
    /// Refused: send this response.
    Refused(Refusal),
}

/// A parked request whose wait is over, handed back with the caller's context.
#[derive(Debug)]
pub struct Resolved<T> {
    /// What the caller parked with the request.
    pub context: T,
    /// The request, as given to [`VerificationService::check`].
    pub request: Message,
    /// Its verdict.
    pub verdict: IdentityVerdict,
}

/// When a verification service insists on Identity, and how long and how many requests may
/// wait for certificates.
#[derive(Clone, Debug)]
pub struct VerificationPolicy {
    /// Methods answered 428 'Use Identity Header' when unsigned (RFC 4474 §6). Default:
    /// INVITE only — a call is what a caller's identity matters for most, and unsigned
    /// in-dialog requests and the like still pass. Empty: Identity is never required (only
    /// checked when present).
    pub require_identity: Vec<String>,
    /// Most requests parked while certificates are fetched; more get 503. Default 1000.
    pub max_parked: usize,
    /// Longest a request waits for its certificate before it gets 436. The caller's fetch
    /// should have a shorter timeout of its own, so that this only catches fetches that never
    /// report. Default 10 s (an INVITE client transaction waits 32 s, Timer B).
    pub fetch_deadline: Duration,
    /// How long a fetched certificate is used for further requests naming the same URI.
    /// Default 1 hour.
    pub certificate_ttl: Duration,
    /// Most certificates cached. Default 1024.
    pub max_cached_certificates: usize,
}

impl Default for VerificationPolicy {
    fn default() -> Self {
        VerificationPolicy {
            require_identity: vec!["INVITE".to_owned()],
            max_parked: 1000,
            fetch_deadline: Duration::from_secs(10),
            certificate_ttl: Duration::from_secs(3600),
            max_cached_certificates: 1024,
        }
    }
}

/// A fetch in flight and the requests waiting for it.
#[derive(Debug)]
struct Fetch<T> {
    url: String,
    deadline: Instant,
    waiting: Vec<Parked<T>>,
}

/// A request waiting for its certificate, with its Identity headers as already read.
#[derive(Debug)]
struct Parked<T> {
    context: T,
    request: Message,
    headers: IdentityHeaders,
}

/// A cached certificate chain.
#[derive(Debug)]
struct Cached {
    expires: Instant,
    chain: Arc<CertificateChain>,
}

/// The verification service: the [`Verifier`] (trust, replay cache), certificates by
/// Identity-Info URI, and the requests parked while certificates are fetched, each with a
/// context `T` of the caller's (a server transaction, say) handed back when it is resolved.
#[derive(Debug)]
pub struct VerificationService<T> {
    verifier: Verifier,
    policy: VerificationPolicy,
    certificates: HashMap<String, Cached>,
    /// Ordered by id so requests are resolved in the order their fetches were asked for.
    fetches: BTreeMap<FetchId, Fetch<T>>,
    fetch_by_url: HashMap<String, FetchId>,
    parked: usize,
    next_id: u64,
}

impl<T> VerificationService<T> {
    /// A service verifying with `verifier` under `policy`.
    pub fn new(verifier: Verifier, policy: VerificationPolicy) -> Self {
        VerificationService {
            verifier,
            policy,
            certificates: HashMap::new(),
            fetches: BTreeMap::new(),
            fetch_by_url: HashMap::new(),
            parked: 0,
            next_id: 1,
        }
    }

    /// The policy.
    pub fn policy(&self) -> &VerificationPolicy {
        &self.policy
    }

    /// Requests parked now.
    pub fn parked(&self) -> usize {
        self.parked
    }

    /// Fetches asked for and not yet reported (or timed out).
    pub fn fetches_in_flight(&self) -> usize {
        self.fetches.len()
    }

    /// Checks the Identity of `request` (see the module docs). When it has to wait for a
    /// certificate, `request` and `context` are kept until [`Self::certificate_fetched`] or
    /// [`Self::handle_timeout`] hands them back; otherwise `context` is dropped.
    pub fn check(&mut self, now: Instant, wall_unix: i64, request: &Message, context: T) -> Check {
        if request.header(HeaderName::Identity).is_none() {
            let method = request.method().map(|m| m.as_str()).unwrap_or_default();
            if self.policy.require_identity.iter().any(|m| m == method) {
                return Check::Refused(Refusal::new(
                    428,
                    format!("{method} requests must carry an Identity header (RFC 4474)"),
                ));
            }
            return Check::Unsigned;
        }
        // An Identity that can never verify (malformed, oversized, not base64: 438) is not
        // worth a fetch nor a parked request. Read once: the verifier is handed what was read.
        let headers = match check_before_fetch(request) {
            Ok(h) => h,
            Err(e) => return Check::Refused(Refusal::from_error(&e)),
        };
        let url = headers.cert_url();
        if !is_http_url(url) {
            return Check::Refused(Refusal::new(
                436,
                format!("Identity-Info {url} is not an http or https URI"),
            ));
        }
        if let Some(cached) = self.certificates.get(url) {
            if cached.expires > now {
                let chain = cached.chain.clone();
                return match self.verify(request, &headers, &chain, wall_unix) {
                    IdentityVerdict::Verified(v) => Check::Verified(v),
                    IdentityVerdict::Refused(r) => Check::Refused(r),
                };
            }
            self.certificates.remove(url);
        }
        if self.parked >= self.policy.max_parked {
            return Check::Refused(Refusal::new(
                503,
                "too many requests are waiting for Identity-Info certificates",
            ));
        }
        self.parked += 1;
        let url = url.to_owned();
        let parked = Parked {
            context,
            request: request.clone(),
            headers,
        };
        if let Some(&id) = self.fetch_by_url.get(&url)
            && let Some(fetch) = self.fetches.get_mut(&id)
        {
            fetch.waiting.push(parked);
            return Check::AwaitingCertificate { id };
        }
        let id = FetchId(self.next_id);
        self.next_id += 1;
        self.fetches.insert(
            id,
            Fetch {
                url: url.clone(),
                deadline: now + self.policy.fetch_deadline,
                waiting: vec![parked],
            },
        );
        self.fetch_by_url.insert(url.clone(), id);
        Check::NeedCertificate { id, url }
    }

    /// The result of fetch `id`: caches a certificate chain under its URI and resolves every
    /// request waiting for it (a failure, `Err` with the reason, is 436 for each). An unknown
    /// `id` (its wait already timed out) resolves nothing.
    pub fn certificate_fetched(
        &mut self,
        now: Instant,
        wall_unix: i64,
        id: FetchId,
        result: Result<CertificateChain, String>,
    ) -> Vec<Resolved<T>> {
        let Some(fetch) = self.fetches.remove(&id) else {
            return Vec::new();
        };
        if self.fetch_by_url.get(&fetch.url) == Some(&id) {
            self.fetch_by_url.remove(&fetch.url);
        }
        self.parked -= fetch.waiting.len();
        match result {
            Ok(chain) => {
                let chain = Arc::new(chain);
                self.cache(now, fetch.url, chain.clone());
                fetch
                    .waiting
                    .into_iter()
                    .map(|p| Resolved {
                        verdict: self.verify(&p.request, &p.headers, &chain, wall_unix),
                        context: p.context,
                        request: p.request,
                    })
                    .collect()
            }
            Err(reason) => {
                let refusal = Refusal::new(
                    436,
                    format!("cannot fetch the Identity-Info certificate: {reason}"),
                );
                fetch
                    .waiting
                    .into_iter()
                    .map(|p| Resolved {
                        context: p.context,
                        request: p.request,
                        verdict: IdentityVerdict::Refused(refusal.clone()),
                    })
                    .collect()
            }
        }
    }

    /// When [`Self::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.fetches.values().map(|f| f.deadline).min()
    }

    /// Gives up on fetches whose deadline passed: their requests get 436. A later report of
    /// such a fetch is ignored.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<Resolved<T>> {
        let due: Vec<FetchId> = self
            .fetches
            .iter()
            .filter(|(_, f)| f.deadline <= now)
            .map(|(&id, _)| id)
            .collect();
        let mut resolved = Vec::new();
        for id in due {
            let Some(fetch) = self.fetches.remove(&id) else {
                continue;
            };
            if self.fetch_by_url.get(&fetch.url) == Some(&id) {
                self.fetch_by_url.remove(&fetch.url);
            }
            self.parked -= fetch.waiting.len();
            let refusal = Refusal::new(
                436,
                format!(
                    "no Identity-Info certificate from {} within {} ms",
                    fetch.url,
                    self.policy.fetch_deadline.as_millis()
                ),
            );
            resolved.extend(fetch.waiting.into_iter().map(|p| Resolved {
                context: p.context,
                request: p.request,
                verdict: IdentityVerdict::Refused(refusal.clone()),
            }));
        }
        resolved
    }

    /// Takes back the parked requests whose context matches (a CANCELled INVITE, a closed
    /// transaction): they will not be resolved. Their fetches go on, so the certificate is
    /// still cached for the next request.
    pub fn withdraw(&mut self, mut matches: impl FnMut(&T) -> bool) -> Vec<(T, Message)> {
        let mut taken = Vec::new();
        for fetch in self.fetches.values_mut() {
            let mut i = 0;
            while i < fetch.waiting.len() {
                if matches(&fetch.waiting[i].context) {
                    let p = fetch.waiting.remove(i);
                    taken.push((p.context, p.request));
                } else {
                    i += 1;
                }
            }
        }
        self.parked -= taken.len();
        taken
    }

    fn verify(
        &mut self,
        request: &Message,
        headers: &IdentityHeaders,
        chain: &CertificateChain,
        wall_unix: i64,
    ) -> IdentityVerdict {
        match self.verifier.verify_read(
            request,
            headers,
            &chain.end_entity,
            &chain.intermediates,
            wall_unix,
        ) {
            Ok(v) => IdentityVerdict::Verified(v),
            Err(e) => IdentityVerdict::Refused(Refusal::from_error(&e)),
        }
    }

    fn cache(&mut self, now: Instant, url: String, chain: Arc<CertificateChain>) {
        if self.certificates.len() >= self.policy.max_cached_certificates {
            self.certificates.retain(|_, c| c.expires > now);
            if self.certificates.len() >= self.policy.max_cached_certificates {
                // Still full of live entries: start over rather than track recency; a
                // certificate dropped too early only costs one more fetch.
                self.certificates.clear();
            }
        }
        if self.policy.max_cached_certificates > 0 {
            self.certificates.insert(
                url,
                Cached {
                    expires: now + self.policy.certificate_ttl,
                    chain,
                },
            );
        }
    }
}

/// RFC 4474 §9, §6.2 step 1: only http and https Identity-Info URIs are dereferenced.
fn is_http_url(url: &str) -> bool {
    let scheme = url.split_once(':').map(|(s, _)| s).unwrap_or_default();
    scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use vouch_auth::identity::{
        IdentityAlg, RsaSigningKey, TrustStore, VerifierConfig, add_identity,
    };
    use vouch_msg::headers::date::format_sip_date;

    const WALL: i64 = 1_700_000_000;

    fn signer() -> (RsaSigningKey, CertificateChain) {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["atlanta.example.com".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (
            RsaSigningKey::from_der(&key.serialize_der()).unwrap(),
            CertificateChain {
                end_entity: cert.der().to_vec(),
                intermediates: Vec::new(),
            },
        )
    }

    fn service(chain: &CertificateChain, policy: VerificationPolicy) -> VerificationService<u32> {
        let mut trust = TrustStore::new();
        trust.add_pem_or_der(&chain.end_entity).unwrap();
        VerificationService::new(Verifier::new(VerifierConfig::default(), trust), policy)
    }

    fn request(call_id: &str, identity_info: Option<(&RsaSigningKey, &str)>) -> Message {
        let m = Message::parse(
            format!(
                "MESSAGE sip:bob@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK{call_id}\r\n\
Max-Forwards: 70\r\n\
From: <sip:alice@atlanta.example.com>;tag=a\r\n\
To: <sip:bob@example.com>\r\n\
Call-ID: {call_id}\r\n\
CSeq: 1 MESSAGE\r\n\
Date: {}\r\n\
Content-Length: 2\r\n\r\nhi",
                format_sip_date(WALL).unwrap()
            )
            .into_bytes(),
        )
        .unwrap();
        match identity_info {
            Some((key, url)) => add_identity(&m, key, IdentityAlg::RsaSha1, url).unwrap(),
            None => m,
        }
    }

    #[test]
    fn an_identity_that_can_never_verify_is_438_without_a_fetch() {
        let (key, chain) = signer();
        let mut s = service(&chain, VerificationPolicy::default());
        let signed = request("bad-1", Some((&key, "http://atlanta.example.com/c")));
        // (An Identity over the 8 KiB bound is refused by the parser's line limit first.)
        for bad in ["\"@@@@\"", "unquoted", "\"not base64!\""] {
            let mut b = signed.edit();
            b.replace("Identity", bad);
            let m = b.build().unwrap();
            let c = s.check(Instant::now(), WALL, &m, 1);
            assert!(
                matches!(&c, Check::Refused(r) if r.status == 438),
                "{bad}: {c:?}"
            );
        }
        assert_eq!(s.fetches_in_flight(), 0);
        assert_eq!(s.parked(), 0);
        // The intact request is fetched.
        assert!(matches!(
            s.check(Instant::now(), WALL, &signed, 1),
            Check::NeedCertificate { .. }
        ));
    }

    #[test]
    fn one_fetch_per_url_resolves_every_waiting_request_in_order() {
        let (key, chain) = signer();
        let mut s = service(&chain, VerificationPolicy::default());
        let t0 = Instant::now();
        let url = "http://atlanta.example.com/c";
        let first = s.check(t0, WALL, &request("c1", Some((&key, url))), 1);
        let Check::NeedCertificate { id, url: asked } = first else {
            panic!("{first:?}");
        };
        assert_eq!(asked, url);
        for (n, call) in [(2, "c2"), (3, "c3")] {
            let c = s.check(t0, WALL, &request(call, Some((&key, url))), n);
            assert!(
                matches!(c, Check::AwaitingCertificate { id: i } if i == id),
                "{c:?}"
            );
        }
        // Another URL is another fetch.
        let other = s.check(
            t0,
            WALL,
            &request("c4", Some((&key, "https://x.example/c"))),
            4,
        );
        assert!(matches!(other, Check::NeedCertificate { id: i, .. } if i != id));
        assert_eq!((s.parked(), s.fetches_in_flight()), (4, 2));
        let done = s.certificate_fetched(t0, WALL, id, Ok(chain.clone()));
        let contexts: Vec<u32> = done.iter().map(|r| r.context).collect();
        assert_eq!(contexts, vec![1, 2, 3]);
        assert!(
            done.iter()
                .all(|r| matches!(r.verdict, IdentityVerdict::Verified(_)))
        );
        assert_eq!(s.parked(), 1);
        // Cached: verified synchronously, until the TTL runs out.
        let c = s.check(t0, WALL, &request("c5", Some((&key, url))), 5);
        assert!(matches!(c, Check::Verified(_)), "{c:?}");
        let later = t0 + VerificationPolicy::default().certificate_ttl;
        let c = s.check(later, WALL, &request("c6", Some((&key, url))), 6);
        assert!(matches!(c, Check::NeedCertificate { .. }), "{c:?}");
        // A report for an unknown fetch resolves nothing.
        assert!(
            s.certificate_fetched(t0, WALL, FetchId(999), Ok(chain))
                .is_empty()
        );
    }

    #[test]
    fn parked_requests_are_bounded_in_number_and_time() {
        let (key, chain) = signer();
        let policy = VerificationPolicy {
            max_parked: 2,
            fetch_deadline: Duration::from_secs(5),
            ..VerificationPolicy::default()
        };
        let mut s = service(&chain, policy);
        let t0 = Instant::now();
        let url = "http://atlanta.example.com/c";
        let _ = s.check(t0, WALL, &request("p1", Some((&key, url))), 1);
        let _ = s.check(t0, WALL, &request("p2", Some((&key, url))), 2);
        match s.check(t0, WALL, &request("p3", Some((&key, url))), 3) {
            Check::Refused(r) => assert_eq!(r.status, 503),
            other => panic!("{other:?}"),
        }
        assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(5)));
        assert!(s.handle_timeout(t0 + Duration::from_secs(4)).is_empty());
        let done = s.handle_timeout(t0 + Duration::from_secs(5));
        assert_eq!(done.len(), 2);
        for r in &done {
            match &r.verdict {
                IdentityVerdict::Refused(r) => assert_eq!(r.status, 436),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(
            (s.parked(), s.fetches_in_flight(), s.poll_timeout()),
            (0, 0, None)
        );
    }

    #[test]
    fn withdrawn_requests_are_not_resolved() {
        let (key, chain) = signer();
        let mut s = service(&chain, VerificationPolicy::default());
        let t0 = Instant::now();
        let url = "http://atlanta.example.com/c";
        let Check::NeedCertificate { id, .. } =
            s.check(t0, WALL, &request("w1", Some((&key, url))), 1)
        else {
            panic!()
        };
        let _ = s.check(t0, WALL, &request("w2", Some((&key, url))), 2);
        let taken = s.withdraw(|&c| c == 1);
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].1.call_id(), "w1");
        let done = s.certificate_fetched(t0, WALL, id, Err("refused".into()));
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].context, 2);
        assert_eq!(s.parked(), 0);
    }

    #[test]
    fn missing_or_unusable_identity_info_is_refused_without_a_fetch() {
        let (key, chain) = signer();
        let mut s = service(&chain, VerificationPolicy::default());
        let t0 = Instant::now();
        // MESSAGE is not in the default require list: unsigned passes.
        assert!(matches!(
            s.check(t0, WALL, &request("u", None), 0),
            Check::Unsigned
        ));
        let mut strict = service(
            &chain,
            VerificationPolicy {
                require_identity: vec!["MESSAGE".into()],
                ..VerificationPolicy::default()
            },
        );
        match strict.check(t0, WALL, &request("u", None), 0) {
            Check::Refused(r) => assert_eq!((r.status, r.phrase), (428, "Use Identity Header")),
            other => panic!("{other:?}"),
        }
        for url in [
            "file:///etc/passwd",
            "ftp://atlanta.example.com/c",
            "cid:abc@x",
        ] {
            match s.check(t0, WALL, &request("f", Some((&key, url))), 0) {
                Check::Refused(r) => assert_eq!(r.status, 436, "{url}"),
                other => panic!("{url}: {other:?}"),
            }
        }
        let m = request("alg", Some((&key, "http://a.example/c")));
        let text = String::from_utf8(m.as_bytes().to_vec()).unwrap();
        let m = Message::parse(text.replace("alg=rsa-sha1", "alg=rsa-md5").into_bytes()).unwrap();
        match s.check(t0, WALL, &m, 0) {
            Check::Refused(r) => assert_eq!((r.status, r.phrase), (436, "Bad Identity-Info")),
            other => panic!("{other:?}"),
        }
        assert_eq!(s.fetches_in_flight(), 0);
    }
}
