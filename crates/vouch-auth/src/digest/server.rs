//! The challenger: 401/407 challenges, checking Authorization / Proxy-Authorization, and the
//! Authentication-Info / Proxy-Authentication-Info of the 2xx (RFC 2617 §3.2.1–§3.2.3,
//! RFC 7616 §3.3–§3.5, RFC 8760 §2.4 one challenge per algorithm, RFC 3261 §22.3,
//! draft-dotson-sip-mutual-auth §5).

use std::borrow::Cow;

use subtle::ConstantTimeEq;
use vouch_msg::headers::auth::{AuthenticationInfo, Challenge, Credentials};

use super::compute::{Algorithm, Exchange, Qop, ha1_sess};
use super::nonce::{NonceCounts, NonceSecret, NonceStatus};

/// Whether the 401 (registrar, UAS: WWW-Authenticate/Authorization/Authentication-Info) or the
/// 407 (proxy: Proxy-Authenticate/Proxy-Authorization/Proxy-Authentication-Info) set is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// 401 Unauthorized.
    Registrar,
    /// 407 Proxy Authentication Required.
    Proxy,
}

impl Role {
    /// The challenge status code.
    pub fn status(self) -> u16 {
        match self {
            Role::Registrar => 401,
            Role::Proxy => 407,
        }
    }
    /// The challenge header name.
    pub fn challenge_header(self) -> &'static str {
        match self {
            Role::Registrar => "WWW-Authenticate",
            Role::Proxy => "Proxy-Authenticate",
        }
    }
    /// The credentials header name.
    pub fn credentials_header(self) -> &'static str {
        match self {
            Role::Registrar => "Authorization",
            Role::Proxy => "Proxy-Authorization",
        }
    }
    /// The header carrying rspauth in the 2xx.
    pub fn info_header(self) -> &'static str {
        match self {
            Role::Registrar => "Authentication-Info",
            Role::Proxy => "Proxy-Authentication-Info",
        }
    }
}

/// How strictly the digest-uri must match the Request-URI (RFC 3261 §22.4 item 5 wants them
/// equal; SIPp puts the transport target there instead, so deployments may relax this).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestUriCheck {
    /// digest-uri must equal the Request-URI.
    Strict,
    /// Any SIP URI is accepted (the response still covers whatever was sent).
    Relaxed,
}

/// Challenger policy.
#[derive(Debug, Clone)]
pub struct ChallengerConfig {
    /// The realm (usually the domain).
    pub realm: String,
    /// Algorithms offered, in order (RFC 8760: strongest first).
    pub algorithms: Vec<Algorithm>,
    /// Offer `-sess` variants instead of the plain ones.
    pub sess: bool,
    /// Offer `auth-int` beside `auth`.
    pub auth_int: bool,
    /// Nonce lifetime in seconds; older nonces are challenged again with `stale=true`.
    pub nonce_lifetime: i64,
    /// digest-uri check.
    pub uri_check: DigestUriCheck,
    /// Nonces tracked for nonce-count replay.
    pub nc_capacity: usize,
}

impl ChallengerConfig {
    /// SHA-512-256, SHA-256, MD5 (strongest first), qop auth and auth-int, 300 s nonces,
    /// strict digest-uri.
    pub fn new(realm: impl Into<String>) -> Self {
        ChallengerConfig {
            realm: realm.into(),
            algorithms: Algorithm::STRONGEST_FIRST.to_vec(),
            sess: false,
            auth_int: true,
            nonce_lifetime: 300,
            uri_check: DigestUriCheck::Strict,
            nc_capacity: 100_000,
        }
    }
}

/// Proof that a request carried a correct digest response: only [`Challenger::verify`] makes it.
#[derive(Debug)]
pub struct Authenticated {
    username: String,
    realm: String,
    alg: Algorithm,
    ha1: String,
    nonce: String,
    cnonce: String,
    nc: u32,
    qop: Option<&'static str>,
    uri: String,
}

impl Authenticated {
    /// The authenticated username.
    pub fn username(&self) -> &str {
        &self.username
    }
    /// The realm.
    pub fn realm(&self) -> &str {
        &self.realm
    }
    /// The algorithm used.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }
}

/// Why credentials were not accepted; each maps to a response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthFailure {
    /// No credentials for this realm: challenge.
    #[error("no credentials for realm")]
    NoCredentials,
    /// The nonce is ours but expired: challenge with stale=true.
    #[error("nonce expired")]
    StaleNonce,
    /// Nonce not issued by us for this realm (another realm, another secret, forged).
    #[error("nonce not issued for this realm")]
    BadNonce,
    /// nonce-count reused or lower than before: a replay.
    #[error("nonce-count reused (replay)")]
    ReplayedNonceCount,
    /// digest-uri differs from the Request-URI.
    #[error("digest uri does not match the Request-URI")]
    UriMismatch,
    /// Algorithm not offered (e.g. MD5 when policy forbids it).
    #[error("algorithm not allowed: {0}")]
    AlgorithmNotAllowed(String),
    /// Unknown user or wrong password.
    #[error("wrong username or password")]
    WrongResponse,
    /// Missing or malformed parameters (400).
    #[error("malformed credentials: {0}")]
    Malformed(&'static str),
}

impl AuthFailure {
    /// True when the right answer is a fresh challenge (401/407) rather than 403/400.
    pub fn rechallenge(&self) -> bool {
        !matches!(self, AuthFailure::Malformed(_))
    }
    /// True when the challenge must say `stale=true`.
    pub fn stale(&self) -> bool {
        matches!(self, AuthFailure::StaleNonce)
    }
}

/// The server side of digest authentication for one realm.
#[derive(Debug)]
pub struct Challenger {
    config: ChallengerConfig,
    secret: NonceSecret,
    counts: NonceCounts,
}

impl Challenger {
    /// A challenger with the given secret (shared across nodes).
    pub fn new(config: ChallengerConfig, secret: NonceSecret) -> Self {
        let counts = NonceCounts::new(config.nc_capacity);
        Challenger {
            config,
            secret,
            counts,
        }
    }

    /// The realm.
    pub fn realm(&self) -> &str {
        &self.config.realm
    }

    /// Challenge header values, one per algorithm in the configured order (RFC 8760 §2.4).
    pub fn challenges(&self, now: i64, random: u64, stale: bool) -> Vec<String> {
        let nonce = self.secret.issue(now, random, &self.config.realm);
        let qop = if self.config.auth_int {
            "auth,auth-int"
        } else {
            "auth"
        };
        self.config
            .algorithms
            .iter()
            .map(|alg| {
                let algorithm = if self.config.sess {
                    format!("{}-sess", alg.token())
                } else {
                    alg.token().to_string()
                };
                let mut c = Challenge::digest();
                c.realm = Some(Cow::Borrowed(&self.config.realm));
                c.nonce = Some(Cow::Borrowed(&nonce));
                c.algorithm = Some(&algorithm);
                c.qop_options = Some(qop);
                c.stale = stale.then_some(true);
                // Printing only fails on CR/LF or non-token values, which these are not.
                c.to_header_value().unwrap_or_default()
            })
            .collect()
    }

    /// Checks credentials against the request. `ha1_for(username, alg)` gives the stored
    /// H(username:realm:password) or `None` for an unknown user. `body` is the request body
    /// (for auth-int).
    pub fn verify(
        &mut self,
        now: i64,
        creds: &Credentials<'_>,
        method: &str,
        request_uri: &str,
        body: &[u8],
        ha1_for: impl Fn(&str, Algorithm) -> Option<String>,
    ) -> Result<Authenticated, AuthFailure> {
        if !creds.is_digest() {
            return Err(AuthFailure::NoCredentials);
        }
        let realm = creds
            .realm
            .as_deref()
            .ok_or(AuthFailure::Malformed("realm missing"))?;
        if realm != self.config.realm {
            return Err(AuthFailure::NoCredentials);
        }
        let username = creds
            .username
            .as_deref()
            .ok_or(AuthFailure::Malformed("username missing"))?;
        let nonce = creds
            .nonce
            .as_deref()
            .ok_or(AuthFailure::Malformed("nonce missing"))?;
        let uri = creds
            .uri
            .as_deref()
            .ok_or(AuthFailure::Malformed("uri missing"))?;
        let response = creds
            .response
            .ok_or(AuthFailure::Malformed("response missing"))?;
        let token = creds.algorithm.unwrap_or("MD5");
        let (alg, sess) = Algorithm::parse(token)
            .ok_or_else(|| AuthFailure::AlgorithmNotAllowed(token.to_string()))?;
        if !self.config.algorithms.contains(&alg) || sess != self.config.sess {
            return Err(AuthFailure::AlgorithmNotAllowed(token.to_string()));
        }
        let issued =
            match self
                .secret
                .check(nonce, &self.config.realm, now, self.config.nonce_lifetime)
            {
                NonceStatus::Valid { issued } => issued,
                NonceStatus::Stale => return Err(AuthFailure::StaleNonce),
                NonceStatus::Invalid => return Err(AuthFailure::BadNonce),
            };
        if self.config.uri_check == DigestUriCheck::Strict && uri != request_uri {
            return Err(AuthFailure::UriMismatch);
        }
        let qop_token = creds.qop;
        let body_hash;
        let qop = match qop_token {
            None => Qop::None,
            Some(q) if q.eq_ignore_ascii_case("auth") => Qop::Auth,
            Some(q) if q.eq_ignore_ascii_case("auth-int") && self.config.auth_int => {
                body_hash = alg.hash_hex(&[body]);
                Qop::AuthInt {
                    body_hash: &body_hash,
                }
            }
            Some(_) => return Err(AuthFailure::Malformed("unsupported qop")),
        };
        let (cnonce, nc) = match qop {
            Qop::None => ("", 0),
            _ => (
                creds
                    .cnonce
                    .as_deref()
                    .ok_or(AuthFailure::Malformed("cnonce missing with qop"))?,
                creds
                    .nc
                    .ok_or(AuthFailure::Malformed("nc missing with qop"))?,
            ),
        };
        if sess && qop == Qop::None {
            return Err(AuthFailure::Malformed("-sess needs qop"));
        }
        let nc_text = format!("{nc:08x}");
        // An unknown user gets the same answer as a wrong password.
        let stored = ha1_for(username, alg).unwrap_or_else(|| "0".repeat(alg.hex_len()));
        let ha1 = if sess {
            ha1_sess(alg, &stored, nonce, cnonce)
        } else {
            stored
        };
        let x = Exchange {
            alg,
            ha1: &ha1,
            nonce,
            cnonce,
            nc: &nc_text,
            qop,
            uri,
        };
        let expected = x.request_digest(method);
        if !bool::from(
            expected
                .as_bytes()
                .ct_eq(response.to_ascii_lowercase().as_bytes()),
        ) {
            return Err(AuthFailure::WrongResponse);
        }
        // Without qop there is no nc; such a nonce is single-use (counted as nc 0).
        let forget_before = now - self.config.nonce_lifetime;
        if !self.counts.accept(nonce, nc, issued, forget_before) {
            return Err(AuthFailure::ReplayedNonceCount);
        }
        Ok(Authenticated {
            username: username.to_string(),
            realm: realm.to_string(),
            alg,
            ha1,
            nonce: nonce.to_string(),
            cnonce: cnonce.to_string(),
            nc,
            qop: qop.token(),
            uri: uri.to_string(),
        })
    }

    /// The Authentication-Info / Proxy-Authentication-Info value for the 2xx: rspauth (A2 =
    /// ":" digest-uri, with H(response body) for auth-int), qop, cnonce, nc and a nextnonce.
    pub fn authentication_info(
        &self,
        auth: &Authenticated,
        now: i64,
        random: u64,
        response_body: &[u8],
    ) -> String {
        let nextnonce = self.secret.issue(now, random, &self.config.realm);
        let nc_text = format!("{:08x}", auth.nc);
        let body_hash;
        let qop = match auth.qop {
            Some("auth-int") => {
                body_hash = auth.alg.hash_hex(&[response_body]);
                Qop::AuthInt {
                    body_hash: &body_hash,
                }
            }
            Some(_) => Qop::Auth,
            None => Qop::None,
        };
        let x = Exchange {
            alg: auth.alg,
            ha1: &auth.ha1,
            nonce: &auth.nonce,
            cnonce: &auth.cnonce,
            nc: &nc_text,
            qop,
            uri: &auth.uri,
        };
        let rspauth = x.rspauth();
        let info = AuthenticationInfo {
            nextnonce: Some(Cow::Borrowed(&nextnonce)),
            qop: auth.qop,
            rspauth: Some(&rspauth),
            cnonce: auth.qop.map(|_| Cow::Borrowed(auth.cnonce.as_str())),
            nc: auth.qop.map(|_| auth.nc),
            ..AuthenticationInfo::default()
        };
        info.to_header_value().unwrap_or_default()
    }
}
