//! MIME multipart bodies (RFC 2046 §5.1), as carried in SIP (RFC 3261 §7.4, RFC 5621).
//!
//! [`parse`] splits a multipart body into its [`Part`]s without copying; [`encode`] builds one.
//! The parser is strict where leniency would let two implementations read one body two ways
//! (the body is what an RFC 4474 Identity signs):
//!
//! - lines end in CRLF (RFC 2046 §5.1.1 and SIP's own framing);
//! - a line that starts with `--boundary` must be a delimiter: only transport padding
//!   (spaces/tabs) may follow it, or `--` for the close delimiter; anything else is an error
//!   rather than part content, since RFC 2046 §5.1.1 forbids the boundary inside a part;
//! - the close delimiter must be present (a body cut short is an error, not fewer parts);
//! - each part has a header section ended by an empty line (possibly empty itself);
//! - size, part count and per-part header count are limited ([`MultipartLimits`]).
//!
//! Preamble and epilogue are ignored, as RFC 2046 §5.1.1 requires. Nested multiparts are not
//! descended into: a part whose type is `multipart/*` can be handed to [`parse`] again.

use std::borrow::Cow;

use crate::headers::MediaType;
use crate::scan::unquote;

/// RFC 2046 §5.1.1: a boundary is 1 to 70 characters.
pub const MAX_BOUNDARY_LEN: usize = 70;

/// Limits applied by [`parse`]; exceeding one is an error, never a panic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MultipartLimits {
    /// Largest multipart body, in bytes.
    pub max_body_size: usize,
    /// Most parts.
    pub max_parts: usize,
    /// Most header fields in one part.
    pub max_part_headers: usize,
}

impl MultipartLimits {
    /// 64 KiB (the default SIP message limit), 16 parts, 32 headers per part.
    pub const DEFAULT: MultipartLimits = MultipartLimits {
        max_body_size: 64 * 1024,
        max_parts: 16,
        max_part_headers: 32,
    };
}

impl Default for MultipartLimits {
    fn default() -> Self {
        MultipartLimits::DEFAULT
    }
}

/// Why a multipart body or its Content-Type was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MultipartError {
    /// The Content-Type does not parse as a media type.
    #[error("malformed Content-Type")]
    BadContentType,
    /// The Content-Type is not `multipart/*`.
    #[error("Content-Type is not multipart/*")]
    NotMultipart,
    /// The multipart Content-Type has no `boundary` parameter (RFC 2046 §5.1.1: required).
    #[error("multipart Content-Type has no boundary parameter")]
    MissingBoundary,
    /// The boundary is empty, longer than 70 characters or uses characters outside `bchars`.
    #[error("invalid multipart boundary")]
    BadBoundary,
    /// The body exceeds [`MultipartLimits::max_body_size`].
    #[error("multipart body of {size} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// The body size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// More parts than [`MultipartLimits::max_parts`].
    #[error("more than {limit} parts in multipart body")]
    TooManyParts {
        /// The limit.
        limit: usize,
    },
    /// More header fields in one part than [`MultipartLimits::max_part_headers`].
    #[error("more than {limit} header fields in a body part")]
    TooManyPartHeaders {
        /// The limit.
        limit: usize,
    },
    /// No line starting with `--boundary` opens the first part.
    #[error("no opening boundary delimiter")]
    NoOpeningDelimiter,
    /// The body ends before the close delimiter `--boundary--`.
    #[error("multipart body has no close delimiter (truncated?)")]
    MissingCloseDelimiter,
    /// A line starts with the boundary but is not a delimiter line.
    #[error("text after a boundary delimiter")]
    BadDelimiterLine,
    /// A part's header section is malformed (the detail says how).
    #[error("malformed body part header: {0}")]
    BadPartHeader(&'static str),
    /// [`encode`]: a part contains the delimiter, so the boundary must be changed.
    #[error("boundary occurs inside a part")]
    BoundaryInContent,
}

/// One body part: its header fields (as written, in order) and its content octets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part<'a> {
    headers: Vec<(&'a str, &'a str)>,
    body: &'a [u8],
}

impl<'a> Part<'a> {
    /// A part to [`encode`]: header fields `(name, value)` and the content.
    pub fn new(headers: Vec<(&'a str, &'a str)>, body: &'a [u8]) -> Self {
        Part { headers, body }
    }

    /// The header fields `(name, value)` in order; values are trimmed but may contain folding.
    pub fn headers(&self) -> &[(&'a str, &'a str)] {
        &self.headers
    }

    /// The value of the first header field called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }

    /// The part's Content-Type value, if any (RFC 2046 §5.1: absent means `text/plain`).
    pub fn content_type(&self) -> Option<&'a str> {
        self.header("Content-Type")
    }

    /// The content octets, exactly as between the header section and the next delimiter.
    pub fn body(&self) -> &'a [u8] {
        self.body
    }
}

/// The boundary of a `multipart/*` Content-Type value, unquoted and validated.
pub fn boundary(content_type: &str) -> Result<Cow<'_, str>, MultipartError> {
    let media = MediaType::parse(content_type).map_err(|_| MultipartError::BadContentType)?;
    if !media.top.eq_ignore_ascii_case("multipart") {
        return Err(MultipartError::NotMultipart);
    }
    let raw = media
        .params
        .get("boundary")
        .flatten()
        .ok_or(MultipartError::MissingBoundary)?;
    let boundary = unquote(raw);
    check_boundary(&boundary)?;
    Ok(boundary)
}

/// The Content-Type value `multipart/<subtype>;boundary=<boundary>`, quoting the boundary when
/// it holds characters a token may not.
pub fn content_type(subtype: &str, boundary: &str) -> Result<String, MultipartError> {
    check_boundary(boundary)?;
    let token = boundary
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b));
    Ok(if token {
        format!("multipart/{subtype};boundary={boundary}")
    } else {
        format!("multipart/{subtype};boundary=\"{boundary}\"")
    })
}

/// Checks RFC 2046 §5.1.1 `boundary := 0*69<bchars> bcharsnospace`.
fn check_boundary(boundary: &str) -> Result<(), MultipartError> {
    let b = boundary.as_bytes();
    let bchar = |c: &u8| c.is_ascii_alphanumeric() || b"'()+_,-./:=? ".contains(c);
    if b.is_empty() || b.len() > MAX_BOUNDARY_LEN || !b.iter().all(bchar) || b.ends_with(b" ") {
        return Err(MultipartError::BadBoundary);
    }
    Ok(())
}

/// Splits a multipart body (RFC 2046 §5.1.1) on `boundary` (as from [`boundary`]).
pub fn parse<'a>(
    body: &'a [u8],
    boundary: &str,
    limits: &MultipartLimits,
) -> Result<Vec<Part<'a>>, MultipartError> {
    check_boundary(boundary)?;
    if body.len() > limits.max_body_size {
        return Err(MultipartError::TooLarge {
            size: body.len(),
            limit: limits.max_body_size,
        });
    }
    let dash_boundary = [b"--", boundary.as_bytes()].concat();
    let delimiter = [b"\r\n", dash_boundary.as_slice()].concat();
    let finder = memchr::memmem::Finder::new(&delimiter);

    // The opening dash-boundary may start the body or follow a preamble line.
    let mut pos = if body.starts_with(&dash_boundary) {
        dash_boundary.len()
    } else {
        finder
            .find(body)
            .ok_or(MultipartError::NoOpeningDelimiter)?
            + delimiter.len()
    };
    if body[pos..].starts_with(b"--") {
        // RFC 2046 §5.1.1: at least one body part; a close right away is malformed.
        return Err(MultipartError::BadDelimiterLine);
    }
    pos = end_of_delimiter_line(body, pos, false)?.ok_or(MultipartError::BadDelimiterLine)?;

    let mut parts = Vec::new();
    loop {
        let start = pos;
        let found = finder
            .find(&body[start..])
            .ok_or(MultipartError::MissingCloseDelimiter)?;
        let content = &body[start..start + found];
        let mut after = start + found + delimiter.len();
        let close = body[after..].starts_with(b"--");
        if close {
            after += 2;
        }
        if parts.len() == limits.max_parts {
            return Err(MultipartError::TooManyParts {
                limit: limits.max_parts,
            });
        }
        parts.push(parse_part(content, limits)?);
        match end_of_delimiter_line(body, after, close)? {
            Some(next) if !close => pos = next,
            _ => return Ok(parts),
        }
    }
}

/// Skips transport padding after a delimiter and the CRLF ending its line. Returns where the
/// next line starts, or `None` when a close delimiter ends the body. What follows a close
/// delimiter's CRLF is epilogue and is ignored.
fn end_of_delimiter_line(
    body: &[u8],
    mut pos: usize,
    close: bool,
) -> Result<Option<usize>, MultipartError> {
    while matches!(body.get(pos), Some(b' ' | b'\t')) {
        pos += 1;
    }
    if body[pos..].starts_with(b"\r\n") {
        Ok(Some(pos + 2))
    } else if close && pos == body.len() {
        Ok(None)
    } else {
        Err(MultipartError::BadDelimiterLine)
    }
}

fn parse_part<'a>(content: &'a [u8], limits: &MultipartLimits) -> Result<Part<'a>, MultipartError> {
    let (head, body) = if let Some(body) = content.strip_prefix(b"\r\n") {
        (&content[..0], body)
    } else {
        let end = memchr::memmem::find(content, b"\r\n\r\n").ok_or(
            MultipartError::BadPartHeader("no empty line after the part's header fields"),
        )?;
        (&content[..end], &content[end + 4..])
    };
    let head = std::str::from_utf8(head)
        .map_err(|_| MultipartError::BadPartHeader("header fields are not UTF-8"))?;
    let mut headers: Vec<(&'a str, &'a str)> = Vec::new();
    // Header fields are CRLF-separated lines; a line starting with SP/HTAB folds into the
    // previous field (RFC 5322 §2.2.3), so a field spans up to the next unindented line.
    let mut rest = head;
    while !rest.is_empty() {
        let mut end = 0;
        let field = loop {
            match rest[end..].find("\r\n") {
                Some(i) if rest[end + i + 2..].starts_with([' ', '\t']) => end += i + 2,
                Some(i) => break &rest[..end + i],
                None => break rest,
            }
        };
        rest = rest.get(field.len() + 2..).unwrap_or("");
        if field.bytes().any(|b| b == b'\0')
            || field.split("\r\n").any(|line| line.contains(['\r', '\n']))
        {
            return Err(MultipartError::BadPartHeader("stray CR or LF"));
        }
        let (name, value) = field
            .split_once(':')
            .ok_or(MultipartError::BadPartHeader("header field without ':'"))?;
        let name = name.trim_end_matches([' ', '\t']);
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
            return Err(MultipartError::BadPartHeader("bad header field name"));
        }
        if headers.len() == limits.max_part_headers {
            return Err(MultipartError::TooManyPartHeaders {
                limit: limits.max_part_headers,
            });
        }
        headers.push((name, value.trim_matches([' ', '\t', '\r', '\n'])));
    }
    Ok(Part { headers, body })
}

/// Encodes parts as a multipart body on `boundary`: no preamble, each part's header fields
/// then an empty line then its content, the close delimiter and a final CRLF.
///
/// Refuses a boundary that occurs in a part (choose another: a hash of the content works) and
/// header names or values that would break the framing.
pub fn encode(boundary: &str, parts: &[Part<'_>]) -> Result<Vec<u8>, MultipartError> {
    check_boundary(boundary)?;
    let dash_boundary = [b"--", boundary.as_bytes()].concat();
    let size: usize = parts
        .iter()
        .map(|p| {
            p.body.len()
                + p.headers
                    .iter()
                    .map(|(n, v)| n.len() + v.len() + 4)
                    .sum::<usize>()
                + dash_boundary.len()
                + 6
        })
        .sum();
    let mut out = Vec::with_capacity(size + dash_boundary.len() + 4);
    for part in parts {
        // A part that contains the dash-boundary anywhere could read as a delimiter (at a line
        // start) or confuse lenient parsers; refuse rather than reason about line starts.
        if memchr::memmem::find(part.body, &dash_boundary).is_some() {
            return Err(MultipartError::BoundaryInContent);
        }
        out.extend_from_slice(&dash_boundary);
        out.extend_from_slice(b"\r\n");
        for (name, value) in &part.headers {
            let name_ok =
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && b != b':');
            if !name_ok || value.contains(['\r', '\n']) {
                return Err(MultipartError::BadPartHeader(
                    "header field name or value would break framing",
                ));
            }
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(part.body);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(&dash_boundary);
    out.extend_from_slice(b"--\r\n");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: MultipartLimits = MultipartLimits::DEFAULT;

    #[test]
    fn boundary_from_content_type_quoted_or_not() {
        assert_eq!(boundary("multipart/mixed;boundary=abc").unwrap(), "abc");
        assert_eq!(
            boundary("Multipart/Mixed ; Boundary=\"a b:c\"").unwrap(),
            "a b:c"
        );
        assert_eq!(
            boundary("application/sdp"),
            Err(MultipartError::NotMultipart)
        );
        assert_eq!(
            boundary("multipart/mixed"),
            Err(MultipartError::MissingBoundary)
        );
        assert_eq!(
            boundary("multipart/mixed;boundary=\"\""),
            Err(MultipartError::BadBoundary)
        );
        let long = format!("multipart/mixed;boundary={}", "x".repeat(71));
        assert_eq!(boundary(&long), Err(MultipartError::BadBoundary));
        assert_eq!(boundary("multipart/"), Err(MultipartError::BadContentType));
    }

    #[test]
    fn content_type_quotes_when_needed() {
        assert_eq!(
            content_type("mixed", "abc-1").unwrap(),
            "multipart/mixed;boundary=abc-1"
        );
        assert_eq!(
            content_type("mixed", "a:b").unwrap(),
            "multipart/mixed;boundary=\"a:b\""
        );
        assert!(content_type("mixed", "bad\"").is_err());
    }

    #[test]
    fn parses_rfc3261_style_body_with_preamble_padding_and_epilogue() {
        let body = b"preamble\r\n--boundary1 \t\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n\
                     \r\n--boundary1\r\nContent-Type: application/pkcs7-mime;\r\n smime-type=certs-only\r\n\
                     Content-Disposition: attachment\r\n\r\n\x00\r\n\x01--boundary1\r\n--boundary1--  \r\nepilogue";
        let parts = parse(body, "boundary1", &LIMITS).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].content_type(), Some("application/sdp"));
        assert_eq!(parts[0].body(), b"v=0\r\n");
        assert_eq!(
            parts[1].header("content-type"),
            Some("application/pkcs7-mime;\r\n smime-type=certs-only")
        );
        assert_eq!(parts[1].header("Content-Disposition"), Some("attachment"));
        // Binary content, including a boundary not at a line start, is kept as is.
        assert_eq!(parts[1].body(), b"\x00\r\n\x01--boundary1");
    }

    #[test]
    fn part_without_headers_and_empty_content() {
        let parts = parse(b"--b\r\n\r\n\r\n--b--", "b", &LIMITS).unwrap();
        assert_eq!(parts.len(), 1);
        assert!(parts[0].headers().is_empty());
        assert_eq!(parts[0].body(), b"");
    }

    #[test]
    fn encode_round_trips() {
        let parts = vec![
            Part::new(vec![("Content-Type", "application/sdp")], b"v=0\r\n"),
            Part::new(vec![("Content-Type", "text/plain")], b"\x00\xff"),
        ];
        let body = encode("xyz", &parts).unwrap();
        assert_eq!(parse(&body, "xyz", &LIMITS).unwrap(), parts);
        assert_eq!(
            encode("xyz", &[Part::new(vec![], b"a\r\n--xyz")]),
            Err(MultipartError::BoundaryInContent)
        );
        assert!(encode("xyz", &[Part::new(vec![("A", "b\r\nC: d")], b"")]).is_err());
    }

    #[test]
    fn malformed_bodies_are_errors() {
        let cases: &[(&[u8], MultipartError)] = &[
            (b"no delimiter here", MultipartError::NoOpeningDelimiter),
            (
                b"--b\r\n\r\nbody\r\n--b",
                MultipartError::BadDelimiterLine, // close without "--", then end
            ),
            (b"--b\r\n\r\nbody", MultipartError::MissingCloseDelimiter),
            (
                b"--b\r\n\r\nbody\r\n",
                MultipartError::MissingCloseDelimiter,
            ),
            (b"--bx\r\n\r\n\r\n--b--", MultipartError::BadDelimiterLine),
            (
                b"--b\r\n\r\nx\r\n--bb\r\n\r\n\r\n--b--",
                MultipartError::BadDelimiterLine,
            ),
            (b"--b--\r\n", MultipartError::BadDelimiterLine),
            (
                b"--b\r\nContent-Type: x\r\n--b--",
                MultipartError::BadPartHeader("no empty line after the part's header fields"),
            ),
            (
                b"--b\r\nNoColon\r\n\r\n\r\n--b--",
                MultipartError::BadPartHeader("header field without ':'"),
            ),
            (
                b"--b\r\nA: x\ny\r\n\r\n\r\n--b--",
                MultipartError::BadPartHeader("stray CR or LF"),
            ),
            (
                b"--b\r\n\xff: x\r\n\r\n\r\n--b--",
                MultipartError::BadPartHeader("header fields are not UTF-8"),
            ),
            (b"--b\r\n\r\n\r\n--b--x", MultipartError::BadDelimiterLine),
        ];
        for (body, want) in cases {
            assert_eq!(
                parse(body, "b", &LIMITS).as_ref(),
                Err(want),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn limits_are_enforced() {
        let mut body = Vec::new();
        for _ in 0..17 {
            body.extend_from_slice(b"--b\r\n\r\nx\r\n");
        }
        body.extend_from_slice(b"--b--");
        assert_eq!(
            parse(&body, "b", &LIMITS),
            Err(MultipartError::TooManyParts { limit: 16 })
        );
        let small = MultipartLimits {
            max_body_size: 10,
            ..LIMITS
        };
        assert!(matches!(
            parse(&body, "b", &small),
            Err(MultipartError::TooLarge { .. })
        ));
        let mut many_headers = b"--b\r\n".to_vec();
        for _ in 0..33 {
            many_headers.extend_from_slice(b"X: y\r\n");
        }
        many_headers.extend_from_slice(b"\r\n\r\n--b--");
        assert_eq!(
            parse(&many_headers, "b", &LIMITS),
            Err(MultipartError::TooManyPartHeaders { limit: 32 })
        );
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = parse(&body, "b", &LIMITS);
        }

        #[test]
        fn parse_never_panics_on_framed_noise(
            chunks in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::prelude::Just(b"--b".to_vec()),
                    proptest::prelude::Just(b"\r\n".to_vec()),
                    proptest::prelude::Just(b"--".to_vec()),
                    proptest::prelude::Just(b": ".to_vec()),
                    proptest::collection::vec(proptest::prelude::any::<u8>(), 0..8),
                ],
                0..40,
            )
        ) {
            let _ = parse(&chunks.concat(), "b", &LIMITS);
        }
    }
}
