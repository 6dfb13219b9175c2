//! Users authenticated by a TLS client certificate (RFC 3261 §26.3.2.1 mutual TLS; the
//! identity BCP draft §3: "if the request is received over a TLS connection on which the UA
//! has been authenticated previously, then further authentication may not be necessary").
//!
//! A phone's certificate names its user's address of record in a subjectAltName
//! `uniformResourceIdentifier` (`sip:alice@atlanta.example.com`, the form RFC 5922 §7.1 uses for
//! SIP identities in certificates). The certificate must chain to one of the anchors configured
//! for *user* certificates — not to the anchors trusted for peer servers, since another
//! domain's CA must not be able to speak for this domain's users — and be valid for TLS client
//! authentication at the given time.
//!
//! [`ClientIdentity`] is only made by [`ClientCertificateValidator::validate`], so holding one
//! is proof that the checks ran.

use rustls_pki_types::{CertificateDer, UnixTime};
use webpki::{EndEntityCert, KeyUsage};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

/// Longest certificate chain (leaf included) looked at.
pub const MAX_CHAIN_LEN: usize = 8;

/// Most AoRs taken from one certificate.
pub const MAX_AORS: usize = 16;

/// Why a client certificate does not authenticate a user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientCertError {
    /// No anchor for user certificates is configured.
    #[error("no trust anchor for user certificates is configured")]
    NoAnchors,
    /// The connection presented no certificate.
    #[error("no client certificate")]
    Missing,
    /// More certificates than [`MAX_CHAIN_LEN`].
    #[error("client certificate chain longer than {MAX_CHAIN_LEN}")]
    ChainTooLong,
    /// The chain does not lead to a user anchor, is expired, or is not for client use.
    #[error("client certificate not trusted for users: {0}")]
    Untrusted(String),
    /// The certificate names no `sip:`/`sips:` URI with a user part.
    #[error("client certificate names no SIP address of record")]
    NoAddressOfRecord,
}

/// Validates TLS client certificates against the anchors for user certificates.
#[derive(Clone, Default)]
pub struct ClientCertificateValidator {
    anchors: Vec<Vec<u8>>,
}

impl std::fmt::Debug for ClientCertificateValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCertificateValidator")
            .field("anchors", &self.anchors.len())
            .finish()
    }
}

/// The addresses of record a verified client certificate speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    aors: Vec<String>,
    /// `aors` in [`vouch_msg::aor_key`] form, index for index: made once with the identity,
    /// not on each request the connection carries.
    aor_keys: Vec<String>,
    subject: String,
}

impl ClientIdentity {
    /// The `sip:`/`sips:` URIs of the certificate's subjectAltName that have a user part, as
    /// written there.
    pub fn aors(&self) -> &[String] {
        &self.aors
    }

    /// The AoR of [`Self::aors`] whose key ([`vouch_msg::normalize_aor`]) is `key`, as written.
    pub fn aor_with_key(&self, key: &str) -> Option<&str> {
        let i = self.aor_keys.iter().position(|k| k == key)?;
        Some(&self.aors[i])
    }

    /// The certificate's subject, for logs.
    pub fn subject(&self) -> &str {
        &self.subject
    }
}

impl ClientCertificateValidator {
    /// A validator trusting these anchors (DER certificates) for user certificates.
    pub fn new(anchors: Vec<Vec<u8>>) -> Self {
        ClientCertificateValidator { anchors }
    }

    /// True when no anchor is configured (then nothing validates).
    pub fn is_empty(&self) -> bool {
        self.anchors.is_empty()
    }

    /// Checks `chain` (leaf first, as the TLS handshake delivered it) at `now` (Unix seconds)
    /// and reads the AoRs its leaf names.
    pub fn validate<C: AsRef<[u8]>>(
        &self,
        chain: &[C],
        now: i64,
    ) -> Result<ClientIdentity, ClientCertError> {
        if self.anchors.is_empty() {
            return Err(ClientCertError::NoAnchors);
        }
        let (leaf, intermediates) = chain.split_first().ok_or(ClientCertError::Missing)?;
        if chain.len() > MAX_CHAIN_LEN {
            return Err(ClientCertError::ChainTooLong);
        }
        let anchor_ders: Vec<CertificateDer<'_>> = self
            .anchors
            .iter()
            .map(|c| CertificateDer::from(c.as_slice()))
            .collect();
        let anchors: Vec<_> = anchor_ders
            .iter()
            .filter_map(|c| webpki::anchor_from_trusted_cert(c).ok())
            .collect();
        let inter: Vec<CertificateDer<'_>> = intermediates
            .iter()
            .map(|c| CertificateDer::from(c.as_ref()))
            .collect();
        let leaf_der = CertificateDer::from(leaf.as_ref());
        let ee = EndEntityCert::try_from(&leaf_der)
            .map_err(|e| ClientCertError::Untrusted(format!("bad certificate: {e}")))?;
        let time = UnixTime::since_unix_epoch(std::time::Duration::from_secs(
            u64::try_from(now).unwrap_or(0),
        ));
        ee.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &anchors,
            &inter,
            time,
            KeyUsage::client_auth(),
            None,
            None,
        )
        .map_err(|e| ClientCertError::Untrusted(e.to_string()))?;
        let (_, cert) = X509Certificate::from_der(leaf.as_ref())
            .map_err(|_| ClientCertError::Untrusted("unreadable certificate".into()))?;
        let mut aors = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                if let GeneralName::URI(uri) = name
                    && is_sip_aor(uri)
                    && aors.len() < MAX_AORS
                {
                    aors.push((*uri).to_owned());
                }
            }
        }
        if aors.is_empty() {
            return Err(ClientCertError::NoAddressOfRecord);
        }
        Ok(ClientIdentity {
            aor_keys: aors.iter().map(|a| vouch_msg::normalize_aor(a)).collect(),
            aors,
            subject: cert.subject().to_string(),
        })
    }
}

/// `sip:user@host` or `sips:user@host`: a SIP URI naming a user, not a domain (RFC 5922 §7.1
/// reads a URI without a user part as a domain identity, which is not a user's).
fn is_sip_aor(uri: &str) -> bool {
    let lower = uri
        .get(..5)
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    let rest = if lower.starts_with("sip:") {
        &uri[4..]
    } else if lower == "sips:" {
        &uri[5..]
    } else {
        return false;
    };
    rest.split_once('@')
        .is_some_and(|(user, host)| !user.is_empty() && !host.is_empty())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
        SanType,
    };

    /// Unix seconds inside the validity rcgen gives by default (1975–4096).
    const NOW: i64 = 1_800_000_000;

    fn ca(name: &str) -> (Vec<u8>, Issuer<'static, KeyPair>) {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(rcgen::DnType::CommonName, name);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().unwrap();
        let cert = p.self_signed(&key).unwrap();
        (cert.der().to_vec(), Issuer::new(p, key))
    }

    fn user_cert(
        issuer: &Issuer<'_, KeyPair>,
        sans: Vec<SanType>,
        usage: ExtendedKeyUsagePurpose,
    ) -> Vec<u8> {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "alice");
        p.subject_alt_names = sans;
        p.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        p.signed_by(&key, issuer).unwrap().der().to_vec()
    }

    fn uri(s: &str) -> SanType {
        SanType::URI(s.try_into().unwrap())
    }

    #[test]
    fn a_user_certificate_from_the_user_anchor_names_its_aors() {
        let (anchor, issuer) = ca("users");
        let leaf = user_cert(
            &issuer,
            vec![
                uri("sip:alice@atlanta.example.com"),
                uri("sip:atlanta.example.com"),
                SanType::DnsName("alice.example.com".try_into().unwrap()),
                uri("sips:alice.work@atlanta.example.com"),
            ],
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        let v = ClientCertificateValidator::new(vec![anchor]);
        let id = v.validate(&[leaf], NOW).unwrap();
        // The domain URI and the DNS name are not users.
        assert_eq!(
            id.aors(),
            [
                "sip:alice@atlanta.example.com",
                "sips:alice.work@atlanta.example.com"
            ]
        );
        // Found by AoR key (sips: folded into sip:), given as written.
        assert_eq!(
            id.aor_with_key("sip:alice.work@atlanta.example.com"),
            Some("sips:alice.work@atlanta.example.com")
        );
        assert_eq!(id.aor_with_key("sips:alice.work@atlanta.example.com"), None);
        assert!(id.subject().contains("alice"));
    }

    #[test]
    fn other_anchors_expiry_usage_and_missing_aors_are_refused() {
        let (anchor, issuer) = ca("users");
        let (_, other_issuer) = ca("peer servers");
        let v = ClientCertificateValidator::new(vec![anchor]);
        let alice = vec![uri("sip:alice@atlanta.example.com")];
        let foreign = user_cert(
            &other_issuer,
            alice.clone(),
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        assert!(matches!(
            v.validate(&[foreign], NOW),
            Err(ClientCertError::Untrusted(_))
        ));
        let server_only = user_cert(&issuer, alice.clone(), ExtendedKeyUsagePurpose::ServerAuth);
        assert!(matches!(
            v.validate(&[server_only], NOW),
            Err(ClientCertError::Untrusted(_))
        ));
        let good = user_cert(&issuer, alice, ExtendedKeyUsagePurpose::ClientAuth);
        // rcgen's default validity ends in 4096.
        assert!(matches!(
            v.validate(std::slice::from_ref(&good), 70_000_000_000),
            Err(ClientCertError::Untrusted(_))
        ));
        let no_user = user_cert(
            &issuer,
            vec![uri("sip:atlanta.example.com")],
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        assert_eq!(
            v.validate(&[no_user], NOW),
            Err(ClientCertError::NoAddressOfRecord)
        );
        assert_eq!(
            v.validate::<Vec<u8>>(&[], NOW),
            Err(ClientCertError::Missing)
        );
        assert_eq!(
            ClientCertificateValidator::default().validate(std::slice::from_ref(&good), NOW),
            Err(ClientCertError::NoAnchors)
        );
        let long = vec![good; MAX_CHAIN_LEN + 1];
        assert_eq!(v.validate(&long, NOW), Err(ClientCertError::ChainTooLong));
    }

    #[test]
    fn only_sip_uris_with_a_user_are_aors() {
        assert!(is_sip_aor("sip:alice@example.com"));
        assert!(is_sip_aor("SIPS:alice@example.com"));
        assert!(!is_sip_aor("sip:example.com"));
        assert!(!is_sip_aor("sip:@example.com"));
        assert!(!is_sip_aor("sip:alice@"));
        assert!(!is_sip_aor("tel:+15551234"));
        assert!(!is_sip_aor("https://example.com/alice@x"));
        assert!(!is_sip_aor("si"));
    }
}
