//! The responder (UA side): answering 401/407 challenges (RFC 3261 §22.2–§22.3, RFC 8760 §2.4:
//! the strongest supported algorithm), nonce-count and nextnonce handling (RFC 7616 §3.5), and
//! checking rspauth of Authentication-Info / Proxy-Authentication-Info in constant time
//! (draft-dotson-sip-mutual-auth §5: the UA authenticates each proxy).

use std::borrow::Cow;

use subtle::ConstantTimeEq;
use vouch_msg::headers::auth::{AuthenticationInfo, Challenge, Credentials};

use super::compute::{Algorithm, Exchange, Qop, ha1, ha1_sess, hex};

/// What the client may use.
#[derive(Debug, Clone)]
pub struct ResponderConfig {
    /// Digest username.
    pub username: String,
    /// Password (kept in memory only).
    pub password: String,
    /// Algorithms the client accepts (policy may forbid MD5).
    pub algorithms: Vec<Algorithm>,
    /// A missing rspauth on a 2xx to an authenticated request is a failure.
    pub require_mutual_auth: bool,
}

#[derive(Debug, Clone)]
struct Session {
    realm: String,
    alg: Algorithm,
    sess: bool,
    nonce: String,
    opaque: Option<String>,
    qop: Option<&'static str>,
    nc: u32,
    base_ha1: String,
    /// What the last request sent, to check the rspauth that answers it.
    pending: Option<Pending>,
}

#[derive(Debug, Clone)]
struct Pending {
    realm: String,
    nonce: String,
    cnonce: String,
    nc: u32,
    uri: String,
    ha1: String,
    qop: Option<&'static str>,
}

/// What one request sent, per realm, so that the rspauth of the response to *that* request can
/// be checked even when later requests were authorized meanwhile (PRACK, UPDATE and INVITE
/// can be in flight together). Made by [`Responder::authorize_request`].
#[derive(Debug, Clone, Default)]
pub struct SentCredentials {
    sent: Vec<Pending>,
}

impl SentCredentials {
    /// True when the request carried no credentials.
    pub fn is_empty(&self) -> bool {
        self.sent.is_empty()
    }

    /// The realms the request carried credentials for.
    pub fn realms(&self) -> impl Iterator<Item = &str> {
        self.sent.iter().map(|p| p.realm.as_str())
    }
}

/// Proof that a server (registrar or proxy) of `realm` showed it knows the shared secret: only
/// [`Responder::check_infos`] makes it.
#[derive(Debug)]
pub struct ServerAuthenticated {
    realm: String,
}

impl ServerAuthenticated {
    /// The realm of the server that was authenticated.
    pub fn realm(&self) -> &str {
        &self.realm
    }
}

/// Client-side failures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientAuthError {
    /// No challenge offers an algorithm the policy allows (e.g. MD5 only, MD5 forbidden).
    #[error("no acceptable digest challenge (offered: {0})")]
    NoAcceptableChallenge(String),
    /// The challenge is malformed.
    #[error("malformed challenge: {0}")]
    Malformed(&'static str),
    /// The same nonce was challenged again without `stale=true`: the password is wrong.
    #[error("credentials refused for realm {0}")]
    Refused(String),
    /// A 2xx to an authenticated request lacks the rspauth of `realm` while mutual
    /// authentication is required.
    #[error("server of realm {0} did not authenticate itself (no rspauth)")]
    MissingRspauth(String),
    /// rspauth present but wrong: the server does not know the secret (or was tampered with).
    #[error("server of realm {0} sent a wrong rspauth")]
    BadRspauth(String),
}

/// The client side of digest authentication: one per account, keeping a session per realm.
#[derive(Debug)]
pub struct Responder {
    config: ResponderConfig,
    sessions: Vec<Session>,
}

impl Responder {
    /// A responder for one account.
    pub fn new(config: ResponderConfig) -> Self {
        Responder {
            config,
            sessions: Vec::new(),
        }
    }

    /// Takes the challenges of a 401/407 and picks, per realm, the strongest algorithm the
    /// policy allows. A fresh nonce restarts nc at 1. Challenging again the nonce just answered,
    /// without `stale=true`, means the credentials were refused.
    pub fn handle_challenges(
        &mut self,
        challenges: &[Challenge<'_>],
    ) -> Result<(), ClientAuthError> {
        let mut best: Vec<(&Challenge<'_>, Algorithm, bool)> = Vec::new();
        let mut offered = Vec::new();
        for c in challenges.iter().filter(|c| c.is_digest()) {
            let token = c.algorithm.unwrap_or("MD5");
            offered.push(token.to_string());
            let Some((alg, sess)) = Algorithm::parse(token) else {
                continue;
            };
            if !self.config.algorithms.contains(&alg) {
                continue;
            }
            let realm = c
                .realm
                .as_deref()
                .ok_or(ClientAuthError::Malformed("challenge without realm"))?;
            c.nonce
                .as_deref()
                .ok_or(ClientAuthError::Malformed("challenge without nonce"))?;
            let rank = |a: Algorithm| {
                Algorithm::STRONGEST_FIRST
                    .iter()
                    .position(|x| *x == a)
                    .unwrap_or(usize::MAX)
            };
            match best
                .iter_mut()
                .find(|(b, _, _)| b.realm.as_deref() == Some(realm))
            {
                Some(slot) if rank(alg) < rank(slot.1) => *slot = (c, alg, sess),
                Some(_) => {}
                None => best.push((c, alg, sess)),
            }
        }
        if best.is_empty() {
            return Err(ClientAuthError::NoAcceptableChallenge(offered.join(", ")));
        }
        for (c, alg, sess) in best {
            let realm = c.realm.as_deref().unwrap_or_default().to_string();
            let nonce = c.nonce.as_deref().unwrap_or_default().to_string();
            let qop = if c.offers_qop("auth") {
                Some("auth")
            } else if c.offers_qop("auth-int") {
                Some("auth-int")
            } else {
                None
            };
            if let Some(s) = self.sessions.iter().find(|s| s.realm == realm)
                && s.nonce == nonce
                && c.stale != Some(true)
            {
                return Err(ClientAuthError::Refused(realm));
            }
            let base_ha1 = ha1(alg, &self.config.username, &realm, &self.config.password);
            let session = Session {
                realm: realm.clone(),
                alg,
                sess,
                nonce,
                opaque: c.opaque.as_deref().map(str::to_string),
                qop,
                nc: 0,
                base_ha1,
                pending: None,
            };
            self.sessions.retain(|s| s.realm != realm);
            self.sessions.push(session);
        }
        Ok(())
    }

    /// Realms the client holds a nonce for.
    pub fn realms(&self) -> impl Iterator<Item = &str> {
        self.sessions.iter().map(|s| s.realm.as_str())
    }

    /// Credentials for every realm with a session, for a request (`uri` is the digest-uri,
    /// normally the Request-URI). Each call uses the next nonce-count. `cnonce_random` supplies
    /// the client nonce's randomness. [`Responder::check_infos`] checks the answer against the
    /// last call.
    pub fn authorize(
        &mut self,
        method: &str,
        uri: &str,
        body: &[u8],
        cnonce_random: u64,
    ) -> Vec<String> {
        let (values, sent) = self.authorize_request(method, uri, body, cnonce_random);
        for p in sent.sent {
            if let Some(s) = self.sessions.iter_mut().find(|s| s.realm == p.realm) {
                s.pending = Some(p);
            }
        }
        values.into_iter().map(|(_, v)| v).collect()
    }

    /// Like [`Responder::authorize`], but returns `(realm, header value)` pairs and what was
    /// sent, to check the response to this request with [`Responder::check_response`].
    pub fn authorize_request(
        &mut self,
        method: &str,
        uri: &str,
        body: &[u8],
        cnonce_random: u64,
    ) -> (Vec<(String, String)>, SentCredentials) {
        let username = self.config.username.clone();
        let mut out = Vec::new();
        let mut sent = SentCredentials::default();
        for (i, s) in self.sessions.iter_mut().enumerate() {
            s.nc += 1;
            let cnonce =
                hex(&(cnonce_random ^ (i as u64).rotate_left(32) ^ u64::from(s.nc)).to_be_bytes());
            let nc_text = format!("{:08x}", s.nc);
            let ha1 = if s.sess {
                ha1_sess(s.alg, &s.base_ha1, &s.nonce, &cnonce)
            } else {
                s.base_ha1.clone()
            };
            let body_hash;
            let qop = match s.qop {
                Some("auth-int") => {
                    body_hash = s.alg.hash_hex(&[body]);
                    Qop::AuthInt {
                        body_hash: &body_hash,
                    }
                }
                Some(_) => Qop::Auth,
                None => Qop::None,
            };
            let x = Exchange {
                alg: s.alg,
                ha1: &ha1,
                nonce: &s.nonce,
                cnonce: &cnonce,
                nc: &nc_text,
                qop,
                uri,
            };
            let response = x.request_digest(method);
            let algorithm = if s.sess {
                format!("{}-sess", s.alg.token())
            } else {
                s.alg.token().to_string()
            };
            let mut c = Credentials::digest();
            c.username = Some(Cow::Borrowed(&username));
            c.realm = Some(Cow::Borrowed(&s.realm));
            c.nonce = Some(Cow::Borrowed(&s.nonce));
            c.uri = Some(Cow::Borrowed(uri));
            c.response = Some(&response);
            c.algorithm = Some(&algorithm);
            c.opaque = s.opaque.as_deref().map(Cow::Borrowed);
            if s.qop.is_some() {
                c.qop = s.qop;
                c.cnonce = Some(Cow::Borrowed(&cnonce));
                c.nc = Some(s.nc);
            }
            out.push((s.realm.clone(), c.to_header_value().unwrap_or_default()));
            sent.sent.push(Pending {
                realm: s.realm.clone(),
                nonce: s.nonce.clone(),
                cnonce,
                nc: s.nc,
                uri: uri.to_string(),
                ha1,
                qop: s.qop,
            });
        }
        (out, sent)
    }

    /// Checks the Authentication-Info / Proxy-Authentication-Info values of a 2xx against what
    /// the last [`Responder::authorize`] sent: each value is matched to its realm by cnonce and
    /// nc, rspauth compared in constant time, and a nextnonce adopted (nc restarts). Returns
    /// one proof per realm that answered correctly; a wrong rspauth is always an error, a
    /// missing one only under `require_mutual_auth`.
    pub fn check_infos(
        &mut self,
        infos: &[AuthenticationInfo<'_>],
        response_body: &[u8],
    ) -> Result<Vec<ServerAuthenticated>, ClientAuthError> {
        let sent = SentCredentials {
            sent: self
                .sessions
                .iter_mut()
                .filter_map(|s| s.pending.take())
                .collect(),
        };
        self.check_response(&sent, infos, response_body)
    }

    /// Checks the Authentication-Info / Proxy-Authentication-Info values of a 2xx against what
    /// one request sent ([`Responder::authorize_request`]); otherwise as
    /// [`Responder::check_infos`].
    pub fn check_response(
        &mut self,
        sent: &SentCredentials,
        infos: &[AuthenticationInfo<'_>],
        response_body: &[u8],
    ) -> Result<Vec<ServerAuthenticated>, ClientAuthError> {
        let mut proofs = Vec::new();
        for p in &sent.sent {
            let Some(s) = self.sessions.iter_mut().find(|s| s.realm == p.realm) else {
                continue;
            };
            let matching = infos.iter().find(|i| match (i.cnonce.as_deref(), i.nc) {
                (Some(cn), Some(nc)) => cn == p.cnonce && nc == p.nc,
                // RFC 2069-style answers without qop carry no cnonce.
                _ => p.qop.is_none() && infos.len() == 1,
            });
            let Some(rspauth) = matching.and_then(|i| i.rspauth) else {
                if self.config.require_mutual_auth {
                    return Err(ClientAuthError::MissingRspauth(p.realm.clone()));
                }
                continue;
            };
            let nc_text = format!("{:08x}", p.nc);
            let body_hash;
            let qop = match p.qop {
                Some("auth-int") => {
                    body_hash = s.alg.hash_hex(&[response_body]);
                    Qop::AuthInt {
                        body_hash: &body_hash,
                    }
                }
                Some(_) => Qop::Auth,
                None => Qop::None,
            };
            let x = Exchange {
                alg: s.alg,
                ha1: &p.ha1,
                nonce: &p.nonce,
                cnonce: &p.cnonce,
                nc: &nc_text,
                qop,
                uri: &p.uri,
            };
            let expected = x.rspauth();
            if !bool::from(
                expected
                    .as_bytes()
                    .ct_eq(rspauth.to_ascii_lowercase().as_bytes()),
            ) {
                return Err(ClientAuthError::BadRspauth(p.realm.clone()));
            }
            if let Some(next) = matching.and_then(|i| i.nextnonce.as_deref())
                && next != s.nonce
                && p.nonce == s.nonce
            {
                s.nonce = next.to_string();
                s.nc = 0;
            }
            proofs.push(ServerAuthenticated {
                realm: p.realm.clone(),
            });
        }
        Ok(proofs)
    }
}
