//! The RFC 4474 authentication service in the proxy (RFC 4474 §5; draft-fries-sip-identity-
//! usage-bcp §4.1): after digest authentication admitted a request from one of our users
//! (the policy already checked the user may use the From AoR, §5 step 1), the proxy adds a
//! Date if there is none and refuses one too far from its clock (§5 step 3, 403), then signs
//! the RFC 4474 §9 digest-string with the domain key and adds `Identity` and `Identity-Info`.
//! The signature covers the body, which is how a caller's certificate travels bound to its
//! identity (BCP §4.1). Nothing the proxy changes afterwards (Via, Record-Route,
//! Max-Forwards, Request-URI) is in the digest-string.

use std::sync::Arc;

use vouch_auth::identity::{
    IdentityAlg, IdentityError, RsaSigningKey, add_date_and_identity_with, add_identity_with,
};
use vouch_msg::headers::date::{SipDate, format_sip_date};
use vouch_msg::{HeaderName, Limits, Message};

/// What the authentication service signs with and for which requests.
#[derive(Debug, Clone)]
pub struct AuthenticationService {
    key: Arc<RsaSigningKey>,
    cert_url: String,
    alg: IdentityAlg,
    methods: Vec<String>,
    max_date_skew: i64,
    /// notBefore and notAfter of the certificate at `cert_url`, Unix seconds, when known.
    validity: Option<(i64, i64)>,
}

/// Why the service refused to sign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SignRefusal {
    /// The request's Date is more than the allowed skew from our clock (403).
    DateSkew,
    /// The request's Date is outside the signing certificate's validity (500: the server's
    /// certificate, not the request, is at fault).
    CertificateNotValid,
    /// The request could not be signed (500).
    Failed(String),
}

impl AuthenticationService {
    /// Signs with `key`, pointing verifiers at `cert_url`; `rsa-sha1` as RFC 4474 mandates
    /// and the peers require, dialog-creating and in-dialog requests by default (INVITE,
    /// UPDATE, MESSAGE, NOTIFY, SUBSCRIBE, REFER, BYE, PRACK, INFO, PUBLISH), 600 s Date skew.
    pub fn new(key: Arc<RsaSigningKey>, cert_url: impl Into<String>) -> Self {
        AuthenticationService {
            key,
            cert_url: cert_url.into(),
            alg: IdentityAlg::RsaSha1,
            methods: [
                "INVITE",
                "UPDATE",
                "MESSAGE",
                "NOTIFY",
                "SUBSCRIBE",
                "REFER",
                "BYE",
                "PRACK",
                "INFO",
                "PUBLISH",
            ]
            .map(String::from)
            .to_vec(),
            max_date_skew: 600,
            validity: None,
        }
    }

    /// The validity of the certificate at `cert_url` (notBefore, notAfter, Unix seconds): a
    /// request whose Date falls outside it is not signed (RFC 4474 §5 step 3: "the
    /// authentication service MUST verify that the Date header falls within the validity
    /// period of its certificate").
    pub fn with_certificate_validity(mut self, not_before: i64, not_after: i64) -> Self {
        self.validity = Some((not_before, not_after));
        self
    }

    /// Uses another signature algorithm.
    pub fn with_alg(mut self, alg: IdentityAlg) -> Self {
        self.alg = alg;
        self
    }

    /// Signs only these methods.
    pub fn with_methods(mut self, methods: Vec<String>) -> Self {
        self.methods = methods;
        self
    }

    /// The URL verifiers fetch the certificate from.
    pub fn cert_url(&self) -> &str {
        &self.cert_url
    }

    /// True when requests with this method are signed.
    pub fn signs(&self, method: &str) -> bool {
        self.methods.iter().any(|m| m == method)
    }

    /// The request with Date (added when missing) and a fresh Identity and Identity-Info,
    /// parsed under `limits`, those it was received under.
    pub(crate) fn sign(
        &self,
        request: &Message,
        wall: i64,
        limits: &Limits,
    ) -> Result<Message, SignRefusal> {
        let within_validity = |date: i64| {
            self.validity
                .is_none_or(|(from, until)| (from..=until).contains(&date))
        };
        let signed = match request.header(HeaderName::Date) {
            Some(d) => {
                let date = SipDate::parse(d.value).map_err(|_| SignRefusal::DateSkew)?;
                if (date.unix_seconds() - wall).abs() > self.max_date_skew {
                    return Err(SignRefusal::DateSkew);
                }
                if !within_validity(date.unix_seconds()) {
                    return Err(SignRefusal::CertificateNotValid);
                }
                add_identity_with(request, &self.key, self.alg, &self.cert_url, limits)
            }
            None => {
                if !within_validity(wall) {
                    return Err(SignRefusal::CertificateNotValid);
                }
                let now = format_sip_date(wall)
                    .ok_or_else(|| SignRefusal::Failed("clock out of range".into()))?;
                // Date and Identity in one edit (one print and parse of the request): every
                // request from a UA that sends no Date takes this path.
                add_date_and_identity_with(
                    request,
                    &now,
                    &self.key,
                    self.alg,
                    &self.cert_url,
                    limits,
                )
            }
        };
        signed.map_err(|e: IdentityError| SignRefusal::Failed(e.to_string()))
    }
}
