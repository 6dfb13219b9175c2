//! The admission seam: a policy consulted after the RFC 3261 §16.3 validity checks and before
//! the registrar (§10.3 steps 2–4), the server's own UAS (§8.2) or the proxy (§16.3 step 6,
//! Proxy-Authorization) acts on a request. Digest authentication (RFC 3261 §22, RFC 7616,
//! RFC 8760) plugs in here — see [`crate::auth::DigestPolicy`]: it answers with a 401
//! challenge for requests the registrar or the UAS serves and a 407 challenge for requests the
//! proxy forwards, carrying the `WWW-Authenticate` / `Proxy-Authenticate` header fields it
//! builds.
//!
//! Mutual authentication (RFC 2617 §3.2.3, draft-dotson-sip-mutual-auth §5–§6): a policy that
//! verified credentials admits the request with a [`Grant`], the proof of a correct digest
//! response. The core keeps the grant with the request's server transaction (for the proxy,
//! in its response context) and, for every 2xx it sends or forwards for that request, asks the
//! policy for the `Authentication-Info` (registrar, UAS) or `Proxy-Authentication-Info`
//! (proxy) value through [`RequestPolicy::authentication_info`]. Before forwarding, the proxy
//! consumes the Proxy-Authorization values of the grant's realm and keeps every other one
//! (§22.3).
//!
//! ACK and CANCEL are never submitted: neither can be challenged (§22.1, §9.2). Responses the
//! policy asks for are sent by the endpoint from the request's server transaction, with a
//! fresh To tag.

use std::fmt;

use vouch_auth::client_cert::ClientIdentity;
use vouch_auth::digest::Authenticated;
use vouch_msg::Message;

use crate::endpoint::Peer;
use crate::users::UserDirectory;

/// Which part of the server is about to act on the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// The registrar (§10.3): a challenge is a 401 with WWW-Authenticate.
    Registrar,
    /// The server's own UAS, for requests addressed to the server itself (OPTIONS, §11): a
    /// challenge is a 401 with WWW-Authenticate.
    Uas,
    /// The proxy (§16): a challenge is a 407 with Proxy-Authenticate.
    Proxy,
}

impl Role {
    /// The digest role whose header names apply: 401/WWW-Authenticate/Authorization/
    /// Authentication-Info for the registrar and the UAS, 407/Proxy-… for the proxy.
    pub fn digest_role(self) -> vouch_auth::digest::Role {
        match self {
            Role::Registrar | Role::Uas => vouch_auth::digest::Role::Registrar,
            Role::Proxy => vouch_auth::digest::Role::Proxy,
        }
    }
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
    /// The domains this server is responsible for, lowercased.
    pub domains: &'a [String],
    /// The digest accounts ([`crate::Endpoint::set_users`]).
    pub users: &'a UserDirectory,
    /// The From URI names this server: one of its domains or addresses (Kamailio's
    /// `from_uri==myself`).
    pub from_is_local: bool,
    /// The request is for this server or a user of its domains (no Route left after ours,
    /// Request-URI ours), as opposed to being relayed elsewhere.
    pub target_is_local: bool,
    /// The request has a To tag and its topmost Route named this server: a mid-dialog
    /// request following the Record-Route we added (§16.4, §12.2).
    pub in_dialog_via_our_record_route: bool,
    /// The user the TLS connection it came on authenticated with a client certificate
    /// ([`crate::Endpoint::handle_flow_client_identity`]), if any.
    pub client_identity: Option<&'a ClientIdentity>,
}

/// Proof that a request was authenticated, kept with its server transaction until the 2xx so
/// that the Authentication-Info / Proxy-Authentication-Info rspauth can be computed
/// (RFC 2617 §3.2.3). Made from a [`vouch_auth::digest::Authenticated`], which only
/// [`vouch_auth::digest::Challenger::verify`] makes, or from a
/// [`vouch_auth::client_cert::ClientIdentity`], which only the client certificate validator
/// makes. Not `Clone`: it lives exactly as long as the transaction it belongs to.
#[derive(Debug)]
pub struct Grant {
    proof: Proof,
    role: Role,
}

#[derive(Debug)]
enum Proof {
    /// A correct digest response.
    Digest(Authenticated),
    /// A TLS client certificate naming this AoR (as written in the certificate), and the
    /// realm the policy would have challenged the request in: credentials for it that the UA
    /// sent anyway are ours all the same (§22.3).
    ClientCertificate { aor: String, realm: String },
}

impl Grant {
    /// A grant for a request whose digest response verified in `role`.
    pub fn new(proof: Authenticated, role: Role) -> Self {
        Grant {
            proof: Proof::Digest(proof),
            role,
        }
    }

    /// A grant for a request that came on a TLS connection whose client certificate names
    /// `aor`, one of the identity's addresses of record. `realm` is this server's realm for
    /// the request (the one a challenge would have named).
    pub fn client_certificate(
        identity: &ClientIdentity,
        aor: &str,
        realm: &str,
        role: Role,
    ) -> Option<Self> {
        let aor = identity.aors().iter().find(|a| a.as_str() == aor)?;
        Some(Grant {
            proof: Proof::ClientCertificate {
                aor: aor.clone(),
                realm: realm.to_owned(),
            },
            role,
        })
    }

    /// The digest proof; `None` for a client certificate, which has no rspauth to give (the
    /// TLS handshake already authenticated the server to the client).
    pub fn digest_proof(&self) -> Option<&Authenticated> {
        match &self.proof {
            Proof::Digest(p) => Some(p),
            Proof::ClientCertificate { .. } => None,
        }
    }

    /// The role that verified it (which header carries the answer: Authentication-Info for
    /// the registrar and the UAS, Proxy-Authentication-Info for the proxy).
    pub fn role(&self) -> Role {
        self.role
    }

    /// Who was authenticated: the digest username, or the certificate's AoR.
    pub fn username(&self) -> &str {
        match &self.proof {
            Proof::Digest(p) => p.username(),
            Proof::ClientCertificate { aor, .. } => aor,
        }
    }

    /// This server's realm for the request: the one the digest credentials were for, or for
    /// a client certificate the one a challenge would have named. The proxy consumes the
    /// Proxy-Authorization values of this realm before forwarding (§22.3).
    pub fn realm(&self) -> &str {
        match &self.proof {
            Proof::Digest(p) => p.realm(),
            Proof::ClientCertificate { realm, .. } => realm,
        }
    }

    /// The name of the header the 2xx carries the rspauth in.
    pub fn info_header(&self) -> &'static str {
        self.role.digest_role().info_header()
    }
}

/// The policy's decision.
#[derive(Debug)]
pub enum Verdict {
    /// Go on.
    Admit,
    /// Go on: the request was authenticated. The core keeps the grant until the request's
    /// 2xx (mutual authentication) and, for the proxy, consumes the credentials of the
    /// grant's realm before forwarding.
    Authenticated(Grant),
    /// Answer with this final response instead (e.g. 401/407 with a challenge, 403).
    Reject {
        /// The status code (300–699).
        status: u16,
        /// The reason phrase.
        reason: String,
        /// Extra header fields, `(name, value)`, e.g. `("WWW-Authenticate", "Digest …")`.
        headers: Vec<(String, String)>,
        /// Text for a `Warning: 399 <this server> "…"` header field (sent to the peer).
        warning: Option<String>,
        /// Why, for the operator's log only (never sent).
        log: Option<String>,
    },
}

/// An admission policy. Implementations keep their own state (nonces, credential caches).
pub trait RequestPolicy: fmt::Debug + Send {
    /// Decides whether the request may go on.
    fn check(&mut self, request: &Message, context: &RequestContext<'_>) -> Verdict;

    /// The Authentication-Info (registrar, UAS) or Proxy-Authentication-Info (proxy) value
    /// for a 2xx to a request this policy admitted with `grant`: rspauth, qop, cnonce, nc,
    /// nextnonce (RFC 2617 §3.2.3, draft-dotson-sip-mutual-auth §6). `response_body` is the
    /// body of that 2xx (for qop=auth-int). `None`: no header.
    fn authentication_info(
        &mut self,
        grant: &Grant,
        response_body: &[u8],
        wall_unix: i64,
    ) -> Option<String> {
        let _ = (grant, response_body, wall_unix);
        None
    }
}

/// The default policy: every request is admitted (no authentication).
#[derive(Clone, Copy, Debug, Default)]
pub struct AdmitAll;

impl RequestPolicy for AdmitAll {
    fn check(&mut self, _request: &Message, _context: &RequestContext<'_>) -> Verdict {
        Verdict::Admit
    }
}
