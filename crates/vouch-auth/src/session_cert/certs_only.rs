//! S/MIME certs-only bodies: a degenerate CMS SignedData that carries certificates and no
//! signature (RFC 5751 §3.6, RFC 5652 §5, the "certs-only" message of RFC 3261 §23.2).
//!
//! ```text
//! ContentInfo ::= SEQUENCE {
//!   contentType   id-signedData (1.2.840.113549.1.7.2),
//!   content [0] EXPLICIT SignedData ::= SEQUENCE {
//!     version           INTEGER (1),
//!     digestAlgorithms  SET OF AlgorithmIdentifier (empty),
//!     encapContentInfo  SEQUENCE { eContentType id-data (1.2.840.113549.1.7.1) }  -- no eContent
//!     certificates  [0] IMPLICIT SET OF CertificateChoices,
//!     crls          [1] IMPLICIT ... OPTIONAL,
//!     signerInfos       SET OF SignerInfo (empty) } }
//! ```
//!
//! The codec is written by hand (about a hundred lines) instead of pulling a general ASN.1
//! library: the structure is fixed, and a small reader makes every check explicit. Decoding
//! accepts DER and the definite-length subset of BER that real encoders produce with minimal
//! lengths (OpenSSL's `crl2pkcs7`, `openssl smime`); it refuses indefinite lengths, non-minimal
//! lengths, trailing bytes, a wrong OID, an eContent, any SignerInfo, anything beyond
//! [`CertsOnlyLimits`], and certificates that x509-parser cannot read.

use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer as _;

use super::SessionCertError;

/// DER of OID 1.2.840.113549.1.7.2 (id-signedData), tag and length included.
const OID_SIGNED_DATA: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02,
];
/// DER of OID 1.2.840.113549.1.7.1 (id-data), tag and length included.
const OID_DATA: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01,
];

const TAG_INTEGER: u8 = 0x02;
const TAG_SEQUENCE: u8 = 0x30;
const TAG_SET: u8 = 0x31;
/// `[0]` constructed: ContentInfo.content (EXPLICIT) and SignedData.certificates (IMPLICIT).
const TAG_CONTEXT_0: u8 = 0xa0;
/// `[1]` constructed: SignedData.crls (IMPLICIT).
const TAG_CONTEXT_1: u8 = 0xa1;

/// Limits on what [`decode_certs_only`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CertsOnlyLimits {
    /// Largest encoded blob in bytes.
    pub max_size: usize,
    /// Most entries in the certificates field.
    pub max_certificates: usize,
}

impl CertsOnlyLimits {
    /// 32 KiB and 8 certificates: a user certificate with a short chain fits many times over.
    pub const DEFAULT: CertsOnlyLimits = CertsOnlyLimits {
        max_size: 32 * 1024,
        max_certificates: 8,
    };
}

impl Default for CertsOnlyLimits {
    fn default() -> Self {
        CertsOnlyLimits::DEFAULT
    }
}

/// Encodes DER certificates as a certs-only SignedData (DER, with the certificates sorted as
/// DER requires of a SET OF, X.690 §11.6 — so their order is not kept).
///
/// Each input must be exactly one X.509 certificate; an empty list is refused.
pub fn encode_certs_only<'a>(
    certificates: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Vec<u8>, SessionCertError> {
    let mut certs: Vec<&[u8]> = certificates.into_iter().collect();
    if certs.is_empty() {
        return Err(SessionCertError::BadCertsOnly("no certificate to encode"));
    }
    for cert in &certs {
        check_certificate(cert)?;
    }
    // X.690 §11.6: SET OF elements in ascending order of their encodings, the shorter padded
    // with zero octets at its end.
    certs.sort_by(|a, b| {
        let n = a.len().max(b.len());
        let pad = |s: &'a [u8]| s.iter().copied().chain(std::iter::repeat(0)).take(n);
        pad(a).cmp(pad(b))
    });
    let mut certificates = Vec::new();
    for cert in certs {
        certificates.extend_from_slice(cert);
    }

    let mut signed_data = Vec::new();
    push_tlv(&mut signed_data, TAG_INTEGER, &[1]);
    push_tlv(&mut signed_data, TAG_SET, &[]);
    push_tlv(&mut signed_data, TAG_SEQUENCE, OID_DATA);
    push_tlv(&mut signed_data, TAG_CONTEXT_0, &certificates);
    push_tlv(&mut signed_data, TAG_SET, &[]);

    let mut explicit = Vec::new();
    push_tlv(&mut explicit, TAG_SEQUENCE, &signed_data);
    let mut content_info = OID_SIGNED_DATA.to_vec();
    push_tlv(&mut content_info, TAG_CONTEXT_0, &explicit);
    let mut out = Vec::new();
    push_tlv(&mut out, TAG_SEQUENCE, &content_info);
    Ok(out)
}

/// Decodes a certs-only SignedData into its X.509 certificates (DER, in encoded order).
///
/// Other CertificateChoices (attribute certificates, RFC 5652 §10.2.2) are skipped but count
/// against the limit; CRLs are ignored. A blob without any X.509 certificate is an error.
pub fn decode_certs_only(
    blob: &[u8],
    limits: &CertsOnlyLimits,
) -> Result<Vec<Vec<u8>>, SessionCertError> {
    if blob.len() > limits.max_size {
        return Err(SessionCertError::BadCertsOnly("larger than the size limit"));
    }
    let mut outer = DerReader::new(blob);
    let mut content_info = DerReader::new(outer.expect(TAG_SEQUENCE)?);
    outer.finish()?;
    let oid = content_info.read()?;
    if oid.whole != OID_SIGNED_DATA {
        return Err(SessionCertError::BadCertsOnly(
            "content type is not id-signedData",
        ));
    }
    let mut explicit = DerReader::new(content_info.expect(TAG_CONTEXT_0)?);
    content_info.finish()?;
    let mut signed_data = DerReader::new(explicit.expect(TAG_SEQUENCE)?);
    explicit.finish()?;

    // RFC 5652 §5.1: version is 1, 3, 4 or 5 depending on what else is present.
    let version = signed_data.expect(TAG_INTEGER)?;
    if !matches!(version, [1 | 3 | 4 | 5]) {
        return Err(SessionCertError::BadCertsOnly(
            "unsupported SignedData version",
        ));
    }
    // digestAlgorithms lists the signers' digests; with no signers its content is irrelevant,
    // but it must still be a well-formed SET.
    signed_data.expect(TAG_SET)?;
    let mut encap = DerReader::new(signed_data.expect(TAG_SEQUENCE)?);
    if encap.read()?.whole != OID_DATA {
        return Err(SessionCertError::BadCertsOnly(
            "encapsulated content is not id-data",
        ));
    }
    if !encap.is_empty() {
        // RFC 5751 §3.6: a certs-only message has no content.
        return Err(SessionCertError::BadCertsOnly(
            "certs-only message has content",
        ));
    }

    let mut next = signed_data.read()?;
    if next.tag != TAG_CONTEXT_0 {
        return Err(SessionCertError::BadCertsOnly("no certificates field"));
    }
    let mut choices = DerReader::new(next.content);
    let mut certificates = Vec::new();
    let mut entries = 0usize;
    while !choices.is_empty() {
        entries += 1;
        if entries > limits.max_certificates {
            return Err(SessionCertError::BadCertsOnly(
                "more certificates than the limit",
            ));
        }
        let choice = choices.read()?;
        match choice.tag {
            TAG_SEQUENCE => {
                check_certificate(choice.whole)?;
                certificates.push(choice.whole.to_vec());
            }
            // [0] extendedCertificate, [1] v1AttrCert, [2] v2AttrCert, [3] other.
            0xa0..=0xa3 => {}
            _ => return Err(SessionCertError::BadCertsOnly("unknown CertificateChoices")),
        }
    }
    if certificates.is_empty() {
        return Err(SessionCertError::BadCertsOnly("no X.509 certificate"));
    }

    next = signed_data.read()?;
    if next.tag == TAG_CONTEXT_1 {
        next = signed_data.read()?;
    }
    if next.tag != TAG_SET {
        return Err(SessionCertError::BadCertsOnly("signerInfos missing"));
    }
    if !next.content.is_empty() {
        return Err(SessionCertError::BadCertsOnly(
            "has signers: a signed message, not certs-only",
        ));
    }
    signed_data.finish()?;
    Ok(certificates)
}

/// Exactly one X.509 certificate, nothing after it.
fn check_certificate(der: &[u8]) -> Result<(), SessionCertError> {
    match X509Certificate::from_der(der) {
        Ok(([], _)) => Ok(()),
        _ => Err(SessionCertError::BadCertificate(
            "not exactly one X.509 certificate",
        )),
    }
}

fn push_tlv(out: &mut Vec<u8>, tag: u8, content: &[u8]) {
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
}

/// One TLV: its tag, its content, and the whole encoding.
struct Tlv<'a> {
    tag: u8,
    content: &'a [u8],
    whole: &'a [u8],
}

/// Reads TLVs one after another from a slice, checking every length against what is left.
struct DerReader<'a> {
    rest: &'a [u8],
}

impl<'a> DerReader<'a> {
    fn new(input: &'a [u8]) -> Self {
        DerReader { rest: input }
    }

    fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    fn read(&mut self) -> Result<Tlv<'a>, SessionCertError> {
        let input = self.rest;
        let truncated = SessionCertError::BadCertsOnly("truncated");
        let (&tag, after_tag) = input.split_first().ok_or(truncated.clone())?;
        if tag & 0x1f == 0x1f {
            // High tag numbers never occur in this structure.
            return Err(SessionCertError::BadCertsOnly("high-tag-number form"));
        }
        let (&first, after_first) = after_tag.split_first().ok_or(truncated.clone())?;
        let (len, after_len) = match first {
            0..=0x7f => (usize::from(first), after_first),
            0x80 => {
                return Err(SessionCertError::BadCertsOnly("indefinite length"));
            }
            0x81..=0x84 => {
                let n = usize::from(first & 0x7f);
                let bytes = after_first.get(..n).ok_or(truncated.clone())?;
                let len = bytes
                    .iter()
                    .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
                // DER: the shortest form. A leading zero octet, or the long form for a length
                // under 128, is how one blob could be given two readings.
                if bytes[0] == 0 || len < 0x80 {
                    return Err(SessionCertError::BadCertsOnly("non-minimal length"));
                }
                (len, &after_first[n..])
            }
            _ => return Err(SessionCertError::BadCertsOnly("length too large")),
        };
        if len > after_len.len() {
            return Err(truncated);
        }
        let header = input.len() - after_len.len();
        self.rest = &after_len[len..];
        Ok(Tlv {
            tag,
            content: &after_len[..len],
            whole: &input[..header + len],
        })
    }

    fn expect(&mut self, tag: u8) -> Result<&'a [u8], SessionCertError> {
        let tlv = self.read()?;
        if tlv.tag == tag {
            Ok(tlv.content)
        } else {
            Err(SessionCertError::BadCertsOnly("unexpected ASN.1 tag"))
        }
    }

    fn finish(&self) -> Result<(), SessionCertError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(SessionCertError::BadCertsOnly("trailing bytes"))
        }
    }
}
