//! The certificate in a SIP body (seed BCP §4.1, issue 6): sending it as an S/MIME certs-only
//! part beside the SDP and/or as an SDP `a=fingerprint`, and reading either back.

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use vouch_msg::headers::MediaType;
use vouch_msg::multipart::{self, MultipartLimits, Part};

use super::{
    CertFingerprint, CertsOnlyLimits, SessionCertError, decode_certs_only, encode_certs_only,
};

/// Content-Type of the certs-only part (RFC 5751 §3.2.2, §3.6: `smime-type=certs-only`,
/// file name `smime.p7c`).
pub const CERTS_ONLY_CONTENT_TYPE: &str =
    "application/pkcs7-mime;smime-type=certs-only;name=smime.p7c";

/// Content-Disposition of the certs-only part. `attachment` and the file name follow
/// RFC 5751 §3.6; `handling=optional` (RFC 3261 §20.11) lets a UA that does not do S/MIME
/// still take the call from the SDP — the binding is extra assurance for UAs that want it,
/// and a UA that needs it refuses unbound calls itself.
pub const CERTS_ONLY_DISPOSITION: &str = "attachment;handling=optional;filename=smime.p7c";

/// Content-Transfer-Encoding of the certs-only part: SIP is 8-bit clean (RFC 3261 §7.4, and
/// the S/MIME examples of §23.4 use `binary`), so the DER goes as is rather than in base64.
pub const CERTS_ONLY_TRANSFER_ENCODING: &str = "binary";

/// How a UA puts its certificate in a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CertificateCarriage {
    /// `multipart/mixed`: the SDP unchanged, then the certs-only part (RFC 3261 §23.2).
    CertsOnlyPart,
    /// `application/sdp` with a session-level `a=fingerprint:sha-256 …` added (RFC 8122).
    SdpFingerprint,
    /// Both: `multipart/mixed` with the fingerprinted SDP and the certs-only part, so a
    /// receiver that reads either form finds the certificate.
    #[default]
    Both,
}

/// A body ready to send: the bytes and the Content-Type header value that goes with them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingBody {
    /// The Content-Type header value.
    pub content_type: String,
    /// The body.
    pub body: Vec<u8>,
}

/// Builds the body of a request that carries `certificate_der` beside the session
/// description `sdp`, as `carriage` says.
///
/// The multipart boundary is derived from a hash of the content (no randomness or clock
/// needed) and checked not to occur in it.
pub fn body_with_certificate(
    sdp: &[u8],
    certificate_der: &[u8],
    carriage: CertificateCarriage,
) -> Result<OutgoingBody, SessionCertError> {
    let sdp: Cow<'_, [u8]> = match carriage {
        CertificateCarriage::CertsOnlyPart => {
            check_sdp(sdp)?;
            Cow::Borrowed(sdp)
        }
        CertificateCarriage::SdpFingerprint | CertificateCarriage::Both => Cow::Owned(
            add_fingerprint_to_sdp(sdp, &CertFingerprint::of(certificate_der))?,
        ),
    };
    if carriage == CertificateCarriage::SdpFingerprint {
        return Ok(OutgoingBody {
            content_type: "application/sdp".to_owned(),
            body: sdp.into_owned(),
        });
    }
    let certs_only = encode_certs_only([certificate_der])?;
    let parts = [
        Part::new(vec![("Content-Type", "application/sdp")], &sdp),
        Part::new(
            vec![
                ("Content-Type", CERTS_ONLY_CONTENT_TYPE),
                ("Content-Transfer-Encoding", CERTS_ONLY_TRANSFER_ENCODING),
                ("Content-Disposition", CERTS_ONLY_DISPOSITION),
            ],
            &certs_only,
        ),
    ];
    // A boundary inside binary DER is possible in principle; a few hash-derived candidates
    // make a collision with all of them practically impossible, and `encode` checks anyway.
    let mut last_error = SessionCertError::Multipart(multipart::MultipartError::BoundaryInContent);
    for attempt in 0u8..4 {
        let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        ctx.update(&[attempt]);
        ctx.update(&sdp);
        ctx.update(&certs_only);
        let hash = ctx.finish();
        let boundary: String = std::iter::once("vouch-".to_owned())
            .chain(hash.as_ref()[..12].iter().map(|b| format!("{b:02x}")))
            .collect();
        match multipart::encode(&boundary, &parts) {
            Ok(body) => {
                return Ok(OutgoingBody {
                    content_type: multipart::content_type("mixed", &boundary)?,
                    body,
                });
            }
            Err(e) => last_error = e.into(),
        }
    }
    Err(last_error)
}

/// A body that is only the certs-only S/MIME entity (for a request with no session
/// description, such as an UPDATE that only delivers the certificate). Send
/// [`CERTS_ONLY_DISPOSITION`] as its Content-Disposition header.
pub fn certs_only_body(certificate_der: &[u8]) -> Result<OutgoingBody, SessionCertError> {
    Ok(OutgoingBody {
        content_type: CERTS_ONLY_CONTENT_TYPE.to_owned(),
        body: encode_certs_only([certificate_der])?,
    })
}

/// Adds `a=fingerprint:<fingerprint>` at session level: just before the first `m=` line (or at
/// the end when there is none), where SDP's order puts session attributes (RFC 8866 §5). The
/// SDP's own line ending (CRLF or LF) is used. An SDP that already has this exact line is
/// returned unchanged.
pub fn add_fingerprint_to_sdp(
    sdp: &[u8],
    fingerprint: &CertFingerprint,
) -> Result<Vec<u8>, SessionCertError> {
    check_sdp(sdp)?;
    let line = fingerprint.sdp_attribute();
    let eol: &[u8] = if sdp.windows(2).any(|w| w == b"\r\n") {
        b"\r\n"
    } else {
        b"\n"
    };
    let mut starts = std::iter::once(0).chain(
        sdp.iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .map(|(i, _)| i + 1),
    );
    let first_media = starts
        .clone()
        .find(|&i| sdp[i..].starts_with(b"m="))
        .unwrap_or(sdp.len());
    if starts.any(|i| i < first_media && trimmed_line(&sdp[i..]) == line.as_bytes()) {
        return Ok(sdp.to_vec());
    }
    let mut out = Vec::with_capacity(sdp.len() + line.len() + 2);
    out.extend_from_slice(&sdp[..first_media]);
    if !out.is_empty() && !out.ends_with(b"\n") {
        out.extend_from_slice(eol);
    }
    out.extend_from_slice(line.as_bytes());
    out.extend_from_slice(eol);
    out.extend_from_slice(&sdp[first_media..]);
    Ok(out)
}

/// Every `a=fingerprint` of an SDP, session and media level, without duplicates. Hash
/// functions vouch does not know are skipped (RFC 8122 §5 lets a receiver ignore them); a
/// malformed value of a known one is an error.
pub fn sdp_fingerprints(sdp: &[u8]) -> Result<Vec<CertFingerprint>, SessionCertError> {
    let mut out: Vec<CertFingerprint> = Vec::new();
    for line in sdp.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(value) = line
            .get(..14)
            .filter(|p| p.eq_ignore_ascii_case(b"a=fingerprint:"))
            .map(|_| &line[14..])
        else {
            continue;
        };
        let value = std::str::from_utf8(value)
            .map_err(|_| SessionCertError::BadFingerprint("not ASCII"))?;
        match CertFingerprint::parse(value) {
            Ok(fp) if !out.contains(&fp) => out.push(fp),
            Ok(_) | Err(SessionCertError::UnsupportedHash(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// What a received body offers as the sender's certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BodyCertificates {
    /// The session description: the whole body when it is `application/sdp`, else the
    /// `application/sdp` part of the multipart (decoded from its transfer encoding).
    pub sdp: Option<Vec<u8>>,
    /// DER certificates from certs-only parts, in encoded order.
    pub certificates: Vec<Vec<u8>>,
    /// The SDP's `a=fingerprint` values (session and media level).
    pub fingerprints: Vec<CertFingerprint>,
}

impl BodyCertificates {
    /// True when the body offers no certificate and no fingerprint.
    pub fn is_empty(&self) -> bool {
        self.certificates.is_empty() && self.fingerprints.is_empty()
    }

    /// True when something offered is `certificate_der`: one of the certificates, or a
    /// fingerprint of it.
    pub fn offers(&self, certificate_der: &[u8]) -> bool {
        self.certificates.iter().any(|c| c == certificate_der)
            || self.fingerprints.iter().any(|f| f.matches(certificate_der))
    }

    /// True when the body offers something and everything it offers is `certificate_der`.
    /// This is the check for a request inside a bound dialog: any other certificate or
    /// fingerprint, even beside the bound one, means another key (seed BCP §5: the same
    /// certificate for the entire session).
    pub fn offers_exactly(&self, certificate_der: &[u8]) -> bool {
        !self.is_empty()
            && self.certificates.iter().all(|c| c == certificate_der)
            && self.fingerprints.iter().all(|f| f.matches(certificate_der))
    }

    /// True when something offered has the fingerprint `fingerprint` (for a binding that knows
    /// only a fingerprint).
    pub fn offers_fingerprint(&self, fingerprint: &CertFingerprint) -> bool {
        self.fingerprints.contains(fingerprint)
            || self.certificates.iter().any(|c| fingerprint.matches(c))
    }
}

/// Reads the certificate a received body offers, from its Content-Type value and bytes.
///
/// Accepts `application/sdp` (fingerprints only), `multipart/mixed` with at most one
/// `application/sdp` part and any number of certs-only parts (other parts are ignored, as in
/// any multipart/mixed), and a lone certs-only `application/pkcs7-mime`. Parts may be
/// `binary`/`8bit`/`7bit` or `base64` encoded. Anything else, or a malformed body, is an
/// error. A body that offers nothing is not an error: check
/// [`BodyCertificates::is_empty`].
pub fn offered_certificates(
    content_type: &str,
    body: &[u8],
) -> Result<BodyCertificates, SessionCertError> {
    let media = parse_media_type(content_type)?;
    let mut offered = BodyCertificates::default();
    if media.is("application/sdp") {
        offered.fingerprints = sdp_fingerprints(body)?;
        offered.sdp = Some(body.to_vec());
    } else if is_certs_only(&media) {
        offered.certificates = decode_certs_only(body, &CertsOnlyLimits::DEFAULT)?;
    } else if media.is("multipart/mixed") {
        let boundary = multipart::boundary(content_type)?;
        for part in multipart::parse(body, &boundary, &MultipartLimits::DEFAULT)? {
            // RFC 2046 §5.1: a part without Content-Type is text/plain.
            let part_media = parse_media_type(part.content_type().unwrap_or("text/plain"))?;
            if part_media.is("application/sdp") {
                if offered.sdp.is_some() {
                    return Err(SessionCertError::BadBody(
                        "more than one application/sdp part",
                    ));
                }
                let sdp = transfer_decode(&part)?.into_owned();
                offered.fingerprints = sdp_fingerprints(&sdp)?;
                offered.sdp = Some(sdp);
            } else if is_certs_only(&part_media) {
                let der = transfer_decode(&part)?;
                offered
                    .certificates
                    .extend(decode_certs_only(&der, &CertsOnlyLimits::DEFAULT)?);
            }
        }
    } else {
        return Err(SessionCertError::UnsupportedContentType(
            content_type.trim().to_owned(),
        ));
    }
    Ok(offered)
}

fn parse_media_type(value: &str) -> Result<MediaType<'_>, SessionCertError> {
    MediaType::parse(value).map_err(|_| SessionCertError::BadBody("malformed Content-Type"))
}

fn is_certs_only(media: &MediaType<'_>) -> bool {
    media.is("application/pkcs7-mime")
        && media
            .params
            .get("smime-type")
            .flatten()
            .is_some_and(|t| vouch_msg::unquote(t).eq_ignore_ascii_case("certs-only"))
}

/// The part's content with its Content-Transfer-Encoding undone (RFC 2045 §6).
fn transfer_decode<'a>(part: &Part<'a>) -> Result<Cow<'a, [u8]>, SessionCertError> {
    let encoding = part.header("Content-Transfer-Encoding").map(str::trim);
    match encoding {
        None => Ok(Cow::Borrowed(part.body())),
        Some(e)
            if ["binary", "8bit", "7bit"]
                .iter()
                .any(|k| e.eq_ignore_ascii_case(k)) =>
        {
            Ok(Cow::Borrowed(part.body()))
        }
        Some(e) if e.eq_ignore_ascii_case("base64") => {
            let compact: Vec<u8> = part
                .body()
                .iter()
                .copied()
                .filter(|b| !b.is_ascii_whitespace())
                .collect();
            B64.decode(compact)
                .map(Cow::Owned)
                .map_err(|_| SessionCertError::BadBody("bad base64 in a body part"))
        }
        Some(_) => Err(SessionCertError::BadBody(
            "unsupported Content-Transfer-Encoding",
        )),
    }
}

/// A session description starts with its `v=` line (RFC 8866 §5).
fn check_sdp(sdp: &[u8]) -> Result<(), SessionCertError> {
    if sdp.starts_with(b"v=") {
        Ok(())
    } else {
        Err(SessionCertError::BadBody("SDP does not start with v="))
    }
}

/// A line without its CR/LF ending.
fn trimmed_line(from: &[u8]) -> &[u8] {
    let end = from.iter().position(|b| *b == b'\n').unwrap_or(from.len());
    let line = &from[..end];
    line.strip_suffix(b"\r").unwrap_or(line)
}
