//! Session certificate bindings (draft-fries-sip-identity-usage-bcp §4.1, §4.2, §6): after an
//! RFC 4474 verification service vouched for a request's From identity *and* its body, the
//! certificate that body carries is bound to that identity for the duration of the dialog.
//! A later request of the dialog offering another certificate is refused; the binding ends with
//! the dialog (BYE, CANCEL, a failure response, a timeout) or with a revocation (a NOTIFY for
//! the `certificate` event package with an empty body, RFC 6072 §6.4, BCP §6).
//!
//! A binding can only be made from a [`VerifiedIdentity`], which only the verifier builds, and
//! it consumes it: a certificate nobody vouched for is never bound.

use std::collections::{HashMap, HashSet};

use vouch_auth::identity::VerifiedIdentity;

use super::CallHandle;

/// How a request's body offered a certificate: the certificate itself (an S/MIME certs-only
/// part, RFC 3261 §23.2) or only its fingerprint (an SDP `a=fingerprint`, RFC 8122).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferedCertificate {
    /// The certificate (DER), when the body carried it.
    pub certificate: Option<Vec<u8>>,
    /// Its fingerprint as RFC 8122 writes it (`sha-256 AB:CD:…`).
    pub fingerprint: String,
}

/// One binding: dialog → (identity, certificate).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionBinding {
    aor: String,
    signer_domain: String,
    certificate: Option<Vec<u8>>,
    fingerprint: String,
    created_at: i64,
}

impl SessionBinding {
    /// The identity the certificate is bound to (the verified From AoR).
    pub fn aor(&self) -> &str {
        &self.aor
    }
    /// The domain whose authentication service signed the request.
    pub fn signer_domain(&self) -> &str {
        &self.signer_domain
    }
    /// The bound certificate (DER), when the body carried it (with only a fingerprint, the
    /// certificate arrives later, e.g. in the DTLS handshake, and must match it).
    pub fn certificate(&self) -> Option<&[u8]> {
        self.certificate.as_deref()
    }
    /// The bound certificate's fingerprint (`sha-256 AB:CD:…`).
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }
    /// When it was made (Unix seconds).
    pub fn created_at(&self) -> i64 {
        self.created_at
    }
}

/// Why a request of a bound dialog was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BindingViolation {
    /// The request offers a certificate other than the bound one.
    #[error("certificate changed mid-dialog: bound {bound}, offered {offered}")]
    CertificateChanged {
        /// The bound fingerprint.
        bound: String,
        /// The offered one.
        offered: String,
    },
    /// The request offers a certificate revoked in this session.
    #[error("certificate {0} was revoked")]
    Revoked(String),
    /// The request is signed for another identity than the bound one.
    #[error("dialog is bound to {bound}, request is from {from}")]
    OtherIdentity {
        /// The bound AoR.
        bound: String,
        /// The request's verified AoR.
        from: String,
    },
}

/// Why a binding ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindingEnd {
    /// The dialog ended with BYE.
    Bye,
    /// The INVITE was cancelled.
    Cancel,
    /// The INVITE failed or timed out.
    Failed,
    /// The owner revoked the certificate (NOTIFY with an empty body).
    Revoked,
    /// The dialog timed out: no ACK for our 2xx, no PRACK for our reliable provisional.
    Timeout,
}

/// The bindings of one user agent, by call.
#[derive(Debug, Default)]
pub struct Bindings {
    by_call: HashMap<CallHandle, SessionBinding>,
    /// Fingerprints revoked per call: offering one again is refused.
    revoked: HashMap<CallHandle, HashSet<String>>,
}

impl Bindings {
    /// The binding of `call`, if any.
    pub fn get(&self, call: CallHandle) -> Option<&SessionBinding> {
        self.by_call.get(&call)
    }

    /// Number of live bindings.
    pub fn len(&self) -> usize {
        self.by_call.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.by_call.is_empty()
    }

    /// Checks a certificate offered in `call` against its binding and revocations; `Ok` when
    /// there is no binding yet or the certificate is the bound one.
    pub fn check(
        &self,
        call: CallHandle,
        offered: &OfferedCertificate,
    ) -> Result<(), BindingViolation> {
        if self
            .revoked
            .get(&call)
            .is_some_and(|r| r.contains(&offered.fingerprint))
        {
            return Err(BindingViolation::Revoked(offered.fingerprint.clone()));
        }
        match self.by_call.get(&call) {
            Some(b) if b.fingerprint != offered.fingerprint => {
                Err(BindingViolation::CertificateChanged {
                    bound: b.fingerprint.clone(),
                    offered: offered.fingerprint.clone(),
                })
            }
            _ => Ok(()),
        }
    }

    /// Binds the certificate a verified request offered to the identity it was verified for.
    /// Consumes the verification: one verified request, one binding. Refused when the dialog
    /// is already bound to another identity or certificate.
    pub fn bind(
        &mut self,
        call: CallHandle,
        verified: VerifiedIdentity,
        offered: OfferedCertificate,
        now_unix: i64,
    ) -> Result<&SessionBinding, BindingViolation> {
        self.check(call, &offered)?;
        if let Some(b) = self.by_call.get(&call)
            && b.aor != verified.aor()
        {
            return Err(BindingViolation::OtherIdentity {
                bound: b.aor.clone(),
                from: verified.aor().to_owned(),
            });
        }
        let binding = SessionBinding {
            aor: verified.aor().to_owned(),
            signer_domain: verified.signer_domain().to_owned(),
            certificate: offered.certificate,
            fingerprint: offered.fingerprint,
            created_at: now_unix,
        };
        Ok(self.by_call.entry(call).or_insert(binding))
    }

    /// Revokes the binding of `call` at the request of `verified` (its owner): the certificate
    /// may not be used again in this call.
    pub fn revoke(
        &mut self,
        call: CallHandle,
        verified: &VerifiedIdentity,
    ) -> Result<SessionBinding, BindingViolation> {
        match self.by_call.get(&call) {
            Some(b) if b.aor != verified.aor() => Err(BindingViolation::OtherIdentity {
                bound: b.aor.clone(),
                from: verified.aor().to_owned(),
            }),
            Some(_) => {
                let b = self
                    .by_call
                    .remove(&call)
                    .ok_or(BindingViolation::Revoked(String::new()))?;
                self.revoked
                    .entry(call)
                    .or_default()
                    .insert(b.fingerprint.clone());
                Ok(b)
            }
            None => Err(BindingViolation::OtherIdentity {
                bound: String::new(),
                from: verified.aor().to_owned(),
            }),
        }
    }

    /// Removes the binding of a call that ended; returns it.
    pub fn remove(&mut self, call: CallHandle) -> Option<SessionBinding> {
        self.revoked.remove(&call);
        self.by_call.remove(&call)
    }
}
