//! The UA's certificate in request bodies (BCP §4.1; RFC 3261 §23.2 certs-only S/MIME part,
//! RFC 8122 `a=fingerprint`), on `vouch_auth::session_cert`: what our INVITE and UPDATE carry,
//! and the one certificate a received request offers.

use bytes::Bytes;
use vouch_auth::session_cert::{
    CertFingerprint, SessionCertError, body_with_certificate, certs_only_body, offered_certificates,
};
use vouch_msg::{HeaderName, Message};

pub use vouch_auth::session_cert::CertificateCarriage as CertificateTransport;

use super::OfferedCertificate;

/// The body of our INVITE: the SDP offer, with our certificate when we have one.
pub(crate) fn offer(
    sdp: &[u8],
    certificate: Option<&[u8]>,
    transport: CertificateTransport,
) -> Result<(Option<String>, Bytes), String> {
    match certificate {
        None => Ok((
            Some("application/sdp".to_owned()),
            Bytes::copy_from_slice(sdp),
        )),
        Some(cert) => {
            let b = body_with_certificate(sdp, cert, transport).map_err(|e| e.to_string())?;
            Ok((Some(b.content_type), Bytes::from(b.body)))
        }
    }
}

/// The body of an UPDATE that delivers our certificate (RFC 4916 §4.4.1 style): the bare
/// certs-only entity — no SDP, so no new offer — unless the certificate travels only as an
/// SDP fingerprint, which then is an offer of the unchanged session.
pub(crate) fn certificate_only(
    sdp: &[u8],
    certificate: &[u8],
    transport: CertificateTransport,
) -> Result<(String, Bytes), String> {
    let b = match transport {
        CertificateTransport::SdpFingerprint => body_with_certificate(sdp, certificate, transport),
        _ => certs_only_body(certificate),
    }
    .map_err(|e| e.to_string())?;
    Ok((b.content_type, Bytes::from(b.body)))
}

/// The certificate a received request offers in its body, if any. A body of another type
/// (text, an SDP without fingerprint) offers none; a malformed one, or one offering two
/// different certificates, is an error naming the problem.
pub(crate) fn offered_certificate(msg: &Message) -> Result<Option<OfferedCertificate>, String> {
    let body = msg.body_bytes();
    let Some(ct) = msg.header(HeaderName::ContentType) else {
        return Ok(None);
    };
    if body.is_empty() {
        return Ok(None);
    }
    let offered = match offered_certificates(ct.value, body) {
        Ok(o) => o,
        Err(SessionCertError::UnsupportedContentType(_)) => return Ok(None),
        Err(e) => return Err(format!("body: {e}")),
    };
    if let Some(cert) = offered.certificates.first() {
        if !offered.offers_exactly(cert) {
            return Err("the body offers more than one certificate".to_owned());
        }
        return Ok(Some(OfferedCertificate {
            certificate: Some(cert.clone()),
            fingerprint: CertFingerprint::of(cert).to_string(),
        }));
    }
    match offered.fingerprints.first() {
        None => Ok(None),
        Some(f) if offered.fingerprints.iter().all(|x| x == f) => Ok(Some(OfferedCertificate {
            certificate: None,
            fingerprint: f.to_string(),
        })),
        Some(_) => Err("the SDP offers more than one fingerprint".to_owned()),
    }
}

/// The session description of a request, if its body has one.
pub(crate) fn sdp_of(msg: &Message) -> Option<Vec<u8>> {
    let ct = msg.header(HeaderName::ContentType)?;
    offered_certificates(ct.value, msg.body_bytes()).ok()?.sdp
}
