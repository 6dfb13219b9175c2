//! The admission seam: a policy consulted after the RFC 3261 §16.3 validity checks and before
//! the registrar (§10.3 steps 2–4) or the proxy (§16.3 step 6, Proxy-Authorization) acts on a
//! request. Digest authentication (RFC 3261 §22, RFC 7616) plugs in here: it answers with a
//! 401 challenge for requests the registrar serves and a 407 challenge for requests the proxy
//! forwards, carrying the `WWW-Authenticate` / `Proxy-Authenticate` header fields it builds.
//!
//! ACK and CANCEL are never submitted: neither can be challenged (§22.1, §9.2). Responses the
//! policy asks for are sent by the endpoint from the request's server transaction, with a
//! fresh To tag.

use std::fmt;

use vouch_msg::Message;

use crate::endpoint::Peer;

/// Which part of the server is about to act on the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// The registrar (§10.3): a challenge is a 401 with WWW-Authenticate.
    Registrar,
    /// The proxy (§16): a challenge is a 407 with Proxy-Authenticate.
    Proxy,
}

/// What the policy knows about a request besides the message itself.
#[derive(Clone, Copy, Debug)]
pub struct RequestContext<'a> {
    /// Who sent it (after RFC 3581: the real source address and flow).
    pub source: &'a Peer,
    /// Wall-clock time, Unix seconds (for nonce expiry).
    pub wall_unix: i64,
    /// Who acts on it.
    pub role: Role,
}

/// The policy's decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Go on.
    Admit,
    /// Answer with this final response instead (e.g. 401/407 with a challenge, 403).
    Reject {
        /// The status code (300–699).
        status: u16,
        /// The reason phrase.
        reason: String,
        /// Extra header fields, `(name, value)`, e.g. `("WWW-Authenticate", "Digest …")`.
        headers: Vec<(String, String)>,
    },
}

/// An admission policy. Implementations keep their own state (nonces, credential caches).
pub trait RequestPolicy: fmt::Debug + Send {
    /// Decides whether the request may go on.
    fn check(&mut self, request: &Message, context: &RequestContext<'_>) -> Verdict;
}

/// The default policy: every request is admitted (no authentication yet).
#[derive(Clone, Copy, Debug, Default)]
pub struct AdmitAll;

impl RequestPolicy for AdmitAll {
    fn check(&mut self, _request: &Message, _context: &RequestContext<'_>) -> Verdict {
        Verdict::Admit
    }
}
