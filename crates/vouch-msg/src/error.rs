//! Parse errors and the SIP response each one obliges a server to send (RFC 3261 §21.4,
//! RFC 4475 §3 for the torture cases).

use std::fmt;

/// What was wrong with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The message (or stream frame) is larger than [`crate::Limits::max_message_size`].
    MessageTooLarge,
    /// More header fields than [`crate::Limits::max_headers`].
    TooManyHeaders,
    /// A header line longer than [`crate::Limits::max_line_length`].
    LineTooLong,
    /// More Via values than [`crate::Limits::max_vias`].
    TooManyVias,
    /// The start line is not a Request-Line or Status-Line.
    BadStartLine,
    /// A well-formed SIP-Version other than SIP/2.0.
    UnsupportedVersion,
    /// Request-URI scheme other than sip, sips or tel (RFC 4475 §3.3.2).
    UnsupportedUriScheme,
    /// The header section does not end with an empty line.
    UnterminatedHeaders,
    /// A header line without a valid field name and colon.
    BadHeaderLine,
    /// Header section bytes are not UTF-8.
    NotUtf8,
    /// A header value does not match its grammar.
    BadHeaderValue,
    /// A header that may appear once appears more than once.
    DuplicateHeader,
    /// A header every request or response must carry is absent (RFC 3261 §8.1.1).
    MissingHeader,
    /// Content-Length is malformed, negative or conflicting.
    BadContentLength,
    /// Content-Length promises more body than was received (RFC 4475 §3.1.2.2).
    BodyTruncated,
    /// The CSeq method differs from the request method (RFC 4475 §3.1.2.17).
    CSeqMethodMismatch,
    /// A Request-URI or other URI is malformed.
    BadUri,
    /// A message on a stream transport has no Content-Length (RFC 3261 §18.3).
    MissingContentLengthOnStream,
    /// The status code is not three digits (RFC 4475 §3.1.2.19).
    BadStatusCode,
}

/// A parse failure: what, where (byte offset into the input), in which header, and the
/// response a server must send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    kind: ErrorKind,
    offset: usize,
    header: Option<Box<str>>,
    detail: &'static str,
}

impl ParseError {
    // Errors are the rare path: kept out of line so the parsers' hot loops stay small.
    #[cold]
    #[inline(never)]
    pub(crate) fn new(kind: ErrorKind, offset: usize, detail: &'static str) -> Self {
        ParseError {
            kind,
            offset,
            header: None,
            detail,
        }
    }

    #[cold]
    pub(crate) fn in_header(mut self, name: &str) -> Self {
        self.header = Some(name.into());
        self
    }

    pub(crate) fn at(mut self, base: usize) -> Self {
        self.offset += base;
        self
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Byte offset into the parsed input where the problem was found.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// The header field (as named in the message) the problem is in, if any.
    pub fn header(&self) -> Option<&str> {
        self.header.as_deref()
    }

    /// A short description of the problem.
    pub fn detail(&self) -> &'static str {
        self.detail
    }

    /// The status code a server answers a request that failed this way with.
    pub fn status(&self) -> u16 {
        match self.kind {
            ErrorKind::MessageTooLarge => 513,
            ErrorKind::UnsupportedVersion => 505,
            ErrorKind::UnsupportedUriScheme => 416,
            _ => 400,
        }
    }

    /// True when the message broke one of the configured [`crate::Limits`] (size, header
    /// count, line length, Via count) rather than the grammar.
    pub fn is_over_limit(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::MessageTooLarge
                | ErrorKind::TooManyHeaders
                | ErrorKind::LineTooLong
                | ErrorKind::TooManyVias
        )
    }

    /// The reason phrase matching [`ParseError::status`].
    pub fn reason_phrase(&self) -> &'static str {
        crate::reason_phrase(self.status())
    }

    /// Text for a `Warning: 399 host "…"` header explaining the failure.
    pub fn warning_text(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.header {
            Some(h) => write!(f, "{} in {} header at byte {}", self.detail, h, self.offset),
            None => write!(f, "{} at byte {}", self.detail, self.offset),
        }
    }
}

impl std::error::Error for ParseError {}
