//! SIP messages (RFC 3261 §7): zero-copy parsing over [`bytes::Bytes`], printing, and editing.
//!
//! A parsed [`Message`] keeps the exact bytes it was parsed from; every header and the body are
//! spans into them, so printing an unmodified message reproduces its input and signatures or
//! digests are computed over what was received. Headers the engine depends on (Via, From, To,
//! Call-ID, CSeq, Max-Forwards, Content-Length, Content-Type, Contact, Route, Record-Route,
//! Expires, Require, Proxy-Require) are validated while parsing; the rest are read on demand.
//!
//! Torture-test choices where RFC 4475 / RFC 5118 allow either outcome (checked against every
//! vector by `tests/conformance.rs`):
//! * LF-only line ends are accepted; a CR that does not end a line is refused (400).
//! * Extra SP in the start line (§3.1.2.9 lwsstart, §3.1.2.10 trws) and a Request-URI with
//!   escaped headers (§3.1.2.11) are refused (400); so is LWS inside `<…>` (§3.1.2.14).
//! * A header section without its terminating empty line is refused (400).
//! * Date is read on demand, so a non-GMT Date (§3.1.2.12) does not fail the parse.
//! * A Request-URI scheme other than sip, sips or tel is refused with 416 (§3.3.2, §3.3.3).
//! * A CSeq method that differs from an unknown request method (§3.1.2.18) is refused with 400.
//! * Missing or repeated From, To, Call-ID, CSeq, Max-Forwards (§3.3.1, §3.3.8) are refused (400).
//! * A bare `z9hG4bK` branch (§3.2.1) and a broadcast sent-by (§3.3.10) parse; those are
//!   transaction- and transport-layer matters.
//! * In a datagram, octets after the Content-Length body are ignored (§3.1.1.8, RFC 3261
//!   §18.3); a Content-Length larger than the octets received is refused (400, §3.1.2.2).

use bytes::{BufMut, Bytes, BytesMut};
use bytestring::ByteString;

use crate::error::{ErrorKind, ParseError};
use crate::headers::addr::{Contact, DetachedNameAddr, NameAddr, parse_addr_list, parse_contacts};
use crate::headers::basic::{
    CSeq, MediaType, parse_call_id, parse_content_length, parse_expires, parse_max_forwards,
    parse_token_list,
};
use crate::headers::via::{DetachedVia, Via, parse_vias};
use crate::limits::Limits;
use crate::method::Method;
use crate::name::HeaderName;
use crate::scan::Part;
use crate::uri::Uri;

/// A byte range into the message buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Span {
    start: u32,
    end: u32,
}

impl Span {
    fn new(start: usize, end: usize) -> Span {
        // Messages are bounded by Limits::max_message_size, far below u32::MAX.
        Span {
            start: start as u32,
            end: end as u32,
        }
    }
    /// Where `sub`, a slice of `base`, lies in it (empty when it does not; see [`Part::of`]).
    fn of(base: &str, sub: &str) -> Span {
        let r = Part::of(base, sub).range();
        Span::new(r.start, r.end)
    }

    fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
}

#[derive(Debug, Clone)]
struct Field {
    name: HeaderName,
    name_span: Span,
    value: Span,
    /// The whole field including folding and the line end.
    line: Span,
}

impl Field {
    /// The name as written, in the header text `head`.
    fn raw_name<'h>(&self, head: &'h str) -> &'h str {
        crate::scan::sub(
            head,
            self.name_span.start as usize,
            self.name_span.end as usize,
        )
    }
}

#[derive(Debug, Clone, Copy)]
enum Head {
    Request { method: Span, uri: Span },
    Response { code: u16, reason: Span },
}

/// Fields the transaction and dialog layers read on every message, located once at parse time.
#[derive(Debug, Clone, Copy, Default)]
struct KeyFields {
    call_id: Span,
    cseq_seq: u32,
    cseq_method: Span,
    from_tag: Option<Span>,
    to_tag: Option<Span>,
    branch: Option<Span>,
    max_forwards: Option<u8>,
    content_length: Option<u32>,
    via_count: u32,
    // Typed readings made while validating, handed out again without re-parsing.
    from: Option<DetachedNameAddr>,
    to: Option<DetachedNameAddr>,
    top_via: Option<DetachedVia>,
    first_contact: Option<DetachedNameAddr>,
    contact_values: u32,
    contact_star: bool,
}

/// Whether the bytes came as one datagram or were cut from a stream by Content-Length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// One UDP datagram: without Content-Length the body runs to its end (RFC 3261 §18.3), and
    /// octets after the Content-Length body are ignored (RFC 4475 §3.1.1.8).
    Datagram,
    /// A message framed from TCP/TLS: Content-Length is mandatory.
    Stream,
}

/// A parsed SIP request or response.
#[derive(Debug, Clone)]
pub struct Message {
    buf: Bytes,
    /// The start line and header section of `buf`, validated as UTF-8 once.
    text: ByteString,
    head: Head,
    fields: Vec<Field>,
    body: Span,
    key: KeyFields,
}

/// A borrowed view of one header field.
#[derive(Debug, Clone, Copy)]
pub struct HeaderRef<'a> {
    /// The classified name.
    pub name: HeaderName,
    /// The name as written (`v`, `MaX-fOrWaRdS`, `X-Custom`).
    pub raw_name: &'a str,
    /// The value with leading and trailing LWS removed; inner folding kept.
    pub value: &'a str,
    /// The whole field as received, including folding and line end.
    pub raw: &'a [u8],
}

/// Request or response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A request.
    Request,
    /// A response.
    Response,
}

#[cold]
fn err(kind: ErrorKind, offset: usize, detail: &'static str) -> ParseError {
    ParseError::new(kind, offset, detail)
}

fn is_token_bytes(b: &[u8]) -> bool {
    !b.is_empty() && b.iter().all(|&c| crate::scan::is_token_char(c))
}

/// `SIP/` in any case, by comparisons rather than the general case-insensitive compare.
fn starts_with_sip_slash(v: &[u8]) -> bool {
    matches!(v, [s, i, p, b'/', ..] if (s | 0x20) == b's' && (i | 0x20) == b'i' && (p | 0x20) == b'p')
}

/// Checks `SIP/x.y`: `Ok(true)` for SIP/2.0, `Ok(false)` for another well-formed version.
fn check_version(v: &[u8], offset: usize) -> Result<(), ParseError> {
    if starts_with_sip_slash(v) && &v[4..] == b"2.0" {
        return Ok(());
    }
    let well_formed = v.len() > 4
        && v[..4].eq_ignore_ascii_case(b"SIP/")
        && std::str::from_utf8(&v[4..])
            .ok()
            .and_then(|r| r.split_once('.'))
            .is_some_and(|(a, b)| {
                !a.is_empty()
                    && !b.is_empty()
                    && a.bytes().all(|c| c.is_ascii_digit())
                    && b.bytes().all(|c| c.is_ascii_digit())
            });
    if well_formed {
        Err(err(
            ErrorKind::UnsupportedVersion,
            offset,
            "SIP version other than 2.0",
        ))
    } else {
        Err(err(
            ErrorKind::BadStartLine,
            offset,
            "malformed SIP version",
        ))
    }
}

impl Message {
    /// Parses one datagram with the default limits.
    pub fn parse(buf: impl Into<Bytes>) -> Result<Message, ParseError> {
        Self::parse_with(buf.into(), &Limits::DEFAULT, Transport::Datagram)
    }

    /// Parses with explicit limits and transport semantics.
    pub fn parse_with(
        buf: Bytes,
        limits: &Limits,
        transport: Transport,
    ) -> Result<Message, ParseError> {
        // Spans are 32-bit offsets, so no limit can admit a message of 4 GiB or more.
        let max = limits.max_message_size.min(u32::MAX as usize);
        if buf.len() > max {
            return Err(err(
                ErrorKind::MessageTooLarge,
                max,
                "message larger than the limit",
            ));
        }
        // RFC 3261 §7.5: CRLF before the start line is ignored.
        let lead = buf
            .iter()
            .take_while(|&&c| c == b'\r' || c == b'\n')
            .count();
        if lead == 0 {
            // Returned as is: mapping the error would move the (large) message once more.
            return Self::parse_inner(buf, limits, transport);
        }
        Self::parse_inner(buf.slice(lead..), limits, transport).map_err(|e| e.at(lead))
    }

    fn parse_inner(
        buf: Bytes,
        limits: &Limits,
        transport: Transport,
    ) -> Result<Message, ParseError> {
        let b: &[u8] = &buf;
        // A CR is only ever part of a line end (RFC 3261 §7, §25.1). A bare CR would let an
        // element that takes it for a line break see header fields this parser did not. The
        // line search notes the first one; it is refused once the header section is framed, so
        // framing errors keep precedence.
        let mut bare_cr = None;
        // Start line.
        let nl = next_lf(b, 0, &mut bare_cr).ok_or_else(|| {
            err(
                ErrorKind::UnterminatedHeaders,
                b.len(),
                "no line end after start line",
            )
        })?;
        let line_end = if nl > 0 && b[nl - 1] == b'\r' {
            nl - 1
        } else {
            nl
        };
        if line_end > limits.max_line_length {
            return Err(err(
                ErrorKind::LineTooLong,
                0,
                "start line longer than the limit",
            ));
        }
        let head = parse_start_line(&b[..line_end])?;
        // Header fields.
        let mut fields: Vec<Field> = Vec::with_capacity(16);
        let mut pos = nl + 1;
        let header_end;
        loop {
            match b.get(pos) {
                None => {
                    return Err(err(
                        ErrorKind::UnterminatedHeaders,
                        pos,
                        "header section not ended by an empty line",
                    ));
                }
                Some(b'\n') => {
                    header_end = pos + 1;
                    break;
                }
                Some(b'\r') if b.get(pos + 1) == Some(&b'\n') => {
                    header_end = pos + 2;
                    break;
                }
                Some(b' ' | b'\t') => {
                    return Err(err(
                        ErrorKind::BadHeaderLine,
                        pos,
                        "continuation line without a header",
                    ));
                }
                _ => {}
            }
            let start = pos;
            // Find the end of the logical line, following folds.
            let mut nl = next_lf(b, pos, &mut bare_cr).ok_or_else(|| {
                err(
                    ErrorKind::UnterminatedHeaders,
                    pos,
                    "header section not ended by an empty line",
                )
            })?;
            while matches!(b.get(nl + 1), Some(b' ' | b'\t')) {
                nl = next_lf(b, nl + 1, &mut bare_cr).ok_or_else(|| {
                    err(
                        ErrorKind::UnterminatedHeaders,
                        nl,
                        "header section not ended by an empty line",
                    )
                })?;
            }
            let end = if b[nl - 1] == b'\r' { nl - 1 } else { nl };
            if end - start > limits.max_line_length {
                return Err(err(
                    ErrorKind::LineTooLong,
                    start,
                    "header line longer than the limit",
                ));
            }
            if fields.len() == limits.max_headers {
                return Err(err(
                    ErrorKind::TooManyHeaders,
                    start,
                    "more header fields than the limit",
                ));
            }
            // field-name HCOLON: one pass over the token, then optional SP/HT, then ':'.
            let line = b.get(start..end).unwrap_or_default();
            let name_len = crate::scan::scan_class(line, 0, crate::scan::class::TOKEN);
            let mut colon = name_len;
            while let Some(b' ' | b'\t') = line.get(colon) {
                colon += 1;
            }
            if name_len == 0 || line.get(colon) != Some(&b':') {
                let detail = if memchr::memchr(b':', line).is_some() {
                    "malformed header name"
                } else {
                    "header line without ':'"
                };
                return Err(err(ErrorKind::BadHeaderLine, start, detail));
            }
            // Trim LWS (SP, HTAB and the CR LF of a fold) around the value.
            let mut vs = colon + 1;
            while let Some(b' ' | b'\t' | b'\r' | b'\n') = line.get(vs) {
                vs += 1;
            }
            let mut ve = line.len();
            while ve > vs && matches!(line[ve - 1], b' ' | b'\t' | b'\r' | b'\n') {
                ve -= 1;
            }
            // Header names are tokens, hence ASCII.
            let name = HeaderName::from_wire_bytes(&line[..name_len]);
            fields.push(Field {
                name,
                name_span: Span::new(start, start + name_len),
                value: Span::new(start + vs, start + ve),
                line: Span::new(start, nl + 1),
            });
            pos = nl + 1;
        }
        if let Some(at) = bare_cr {
            return Err(err(
                ErrorKind::BadHeaderLine,
                at,
                "CR not followed by LF in the header section",
            ));
        }
        let text = ByteString::try_from(buf.slice(..header_end)).map_err(|_| {
            let valid_up_to =
                std::str::from_utf8(&b[..header_end]).map_or_else(|e| e.valid_up_to(), |_| 0);
            err(
                ErrorKind::NotUtf8,
                valid_up_to,
                "header section is not UTF-8",
            )
        })?;
        let available = b.len() - header_end;
        // Built before validation, which fills in the key fields in place: the message is
        // large, and this way it is moved once less.
        let mut msg = Message {
            buf,
            text,
            head,
            fields,
            body: Span::default(),
            key: KeyFields::default(),
        };
        validate(&msg.text, &msg.head, &msg.fields, limits, &mut msg.key)?;
        // Body.
        let body_len = match (msg.key.content_length, transport) {
            (Some(cl), _) => {
                let cl = cl as usize;
                if cl > available {
                    return Err(err(
                        ErrorKind::BodyTruncated,
                        header_end,
                        "Content-Length larger than the received body",
                    ));
                }
                cl
            }
            (None, Transport::Datagram) => available,
            (None, Transport::Stream) => {
                return Err(err(
                    ErrorKind::MissingContentLengthOnStream,
                    0,
                    "message on a stream without Content-Length",
                ));
            }
        };
        let total = header_end + body_len;
        if total < msg.buf.len() {
            msg.buf = msg.buf.slice(..total);
        }
        msg.body = Span::new(header_end, total);
        Ok(msg)
    }

    fn str_at(&self, s: Span) -> &str {
        // Spans lie in the header section at ASCII boundaries, so the slice cannot fail.
        crate::scan::sub(&self.text, s.start as usize, s.end as usize)
    }

    /// The whole message exactly as parsed (or built).
    pub fn as_bytes(&self) -> &Bytes {
        &self.buf
    }

    /// Request or response.
    pub fn kind(&self) -> Kind {
        match self.head {
            Head::Request { .. } => Kind::Request,
            Head::Response { .. } => Kind::Response,
        }
    }

    /// True for a request.
    pub fn is_request(&self) -> bool {
        self.kind() == Kind::Request
    }

    /// The request method, for a request.
    pub fn method(&self) -> Option<Method<'_>> {
        match self.head {
            Head::Request { method, .. } => Some(Method::from_token(self.str_at(method))),
            Head::Response { .. } => None,
        }
    }

    /// The Request-URI as written, for a request.
    pub fn request_uri_str(&self) -> Option<&str> {
        match self.head {
            Head::Request { uri, .. } => Some(self.str_at(uri)),
            Head::Response { .. } => None,
        }
    }

    /// The parsed Request-URI, for a request (validated at parse time).
    pub fn request_uri(&self) -> Option<Uri<'_>> {
        self.request_uri_str().and_then(|u| Uri::parse(u).ok())
    }

    /// The status code, for a response.
    pub fn status(&self) -> Option<u16> {
        match self.head {
            Head::Response { code, .. } => Some(code),
            Head::Request { .. } => None,
        }
    }

    /// The reason phrase, for a response.
    pub fn reason_phrase(&self) -> Option<&str> {
        match self.head {
            Head::Response { reason, .. } => Some(self.str_at(reason)),
            Head::Request { .. } => None,
        }
    }

    /// The start line without its line end.
    pub fn start_line(&self) -> &str {
        let first = self
            .fields
            .first()
            .map_or(self.body.start as usize, |f| f.line.start as usize);
        self.str_at(Span::new(0, first))
            .trim_end_matches(['\r', '\n'])
    }

    /// All header fields in order.
    pub fn headers(&self) -> impl ExactSizeIterator<Item = HeaderRef<'_>> + '_ {
        self.fields.iter().map(|f| self.header_ref(f))
    }

    fn header_ref(&self, f: &Field) -> HeaderRef<'_> {
        HeaderRef {
            name: f.name,
            raw_name: self.str_at(f.name_span),
            value: self.str_at(f.value),
            raw: &self.buf[f.line.range()],
        }
    }

    /// Header fields with the given name, in order.
    pub fn headers_named(&self, name: HeaderName) -> impl Iterator<Item = HeaderRef<'_>> + '_ {
        self.fields
            .iter()
            .filter(move |f| f.name == name)
            .map(|f| self.header_ref(f))
    }

    /// Extension header fields with the given name (case-insensitive).
    pub fn headers_named_str<'s>(
        &'s self,
        name: &'s str,
    ) -> impl Iterator<Item = HeaderRef<'s>> + 's {
        let known = HeaderName::from_wire(name);
        self.headers().filter(move |h| {
            if known == HeaderName::Other {
                h.raw_name.eq_ignore_ascii_case(name)
            } else {
                h.name == known
            }
        })
    }

    /// The first header field with the given name.
    pub fn header(&self, name: HeaderName) -> Option<HeaderRef<'_>> {
        self.headers_named(name).next()
    }

    /// The body (a cheap reference-counted slice).
    pub fn body(&self) -> Bytes {
        self.buf.slice(self.body.range())
    }

    /// The body as a byte slice.
    pub fn body_bytes(&self) -> &[u8] {
        &self.buf[self.body.range()]
    }

    /// Call-ID.
    pub fn call_id(&self) -> &str {
        self.str_at(self.key.call_id)
    }

    /// CSeq.
    pub fn cseq(&self) -> CSeq<'_> {
        CSeq {
            seq: self.key.cseq_seq,
            method: Method::from_token(self.str_at(self.key.cseq_method)),
        }
    }

    /// The From tag.
    pub fn from_tag(&self) -> Option<&str> {
        self.key.from_tag.map(|s| self.str_at(s))
    }

    /// The To tag.
    pub fn to_tag(&self) -> Option<&str> {
        self.key.to_tag.map(|s| self.str_at(s))
    }

    /// The branch of the topmost Via.
    pub fn top_via_branch(&self) -> Option<&str> {
        self.key.branch.map(|s| self.str_at(s))
    }

    /// Max-Forwards, if present.
    pub fn max_forwards(&self) -> Option<u8> {
        self.key.max_forwards
    }

    /// Content-Length, if present.
    pub fn content_length(&self) -> Option<u32> {
        self.key.content_length
    }

    /// Number of Via values.
    pub fn via_count(&self) -> usize {
        self.key.via_count as usize
    }

    /// All Via values, topmost first.
    pub fn vias(&self) -> Vec<Via<'_>> {
        let mut out = Vec::with_capacity(self.via_count());
        for h in self.headers_named(HeaderName::Via) {
            // Validated at parse time.
            let _ = parse_vias(h.value, |v| out.push(v));
        }
        out
    }

    /// The topmost Via value.
    pub fn top_via(&self) -> Option<Via<'_>> {
        self.key.top_via.map(|v| v.attach(&self.text))
    }

    /// From (validated at parse time; present in every parsed message).
    pub fn from(&self) -> Option<NameAddr<'_>> {
        self.key.from.map(|a| a.attach(&self.text))
    }

    /// To (validated at parse time; present in every parsed message).
    pub fn to(&self) -> Option<NameAddr<'_>> {
        self.key.to.map(|a| a.attach(&self.text))
    }

    /// The first Contact value that is an address (not `*`), without allocating: the remote
    /// target of a dialog (RFC 3261 §12.1) and the Contact of RFC 4474's digest-string (§9).
    pub fn first_contact_addr(&self) -> Option<NameAddr<'_>> {
        self.key.first_contact.map(|a| a.attach(&self.text))
    }

    /// All Contact values.
    pub fn contacts(&self) -> Vec<Contact<'_>> {
        match (self.key.contact_values, self.key.first_contact) {
            (0, _) => Vec::new(),
            (1, Some(first)) => vec![Contact::Addr(first.attach(&self.text))],
            _ => {
                let mut out = Vec::with_capacity(self.key.contact_values as usize);
                for h in self.headers_named(HeaderName::Contact) {
                    // Validated at parse time.
                    let _ = parse_contacts(h.value, |c| out.push(c));
                }
                out
            }
        }
    }

    /// All Route values, in order.
    pub fn route(&self) -> Vec<NameAddr<'_>> {
        self.addr_list(HeaderName::Route)
    }

    /// All Record-Route values, in order.
    pub fn record_route(&self) -> Vec<NameAddr<'_>> {
        self.addr_list(HeaderName::RecordRoute)
    }

    fn addr_list(&self, name: HeaderName) -> Vec<NameAddr<'_>> {
        let mut out = Vec::new();
        for h in self.headers_named(name) {
            let _ = parse_addr_list(h.value, true, |a| out.push(a));
        }
        out
    }

    /// Content-Type, if present.
    pub fn content_type(&self) -> Option<MediaType<'_>> {
        self.header(HeaderName::ContentType)
            .and_then(|h| MediaType::parse(h.value).ok())
    }

    /// Expires header, if present (saturating).
    pub fn expires(&self) -> Option<u32> {
        self.header(HeaderName::Expires)
            .and_then(|h| parse_expires(h.value).ok())
    }

    /// Starts an edit of this message; untouched fields keep their exact bytes.
    pub fn edit(&self) -> crate::builder::MessageBuilder {
        crate::builder::MessageBuilder::from_message(self)
    }

    pub(crate) fn raw_fields(&self) -> impl Iterator<Item = (HeaderName, Bytes)> + '_ {
        self.fields
            .iter()
            .map(|f| (f.name, self.buf.slice(f.line.range())))
    }

    pub(crate) fn start_line_bytes(&self) -> Bytes {
        let first = self
            .fields
            .first()
            .map_or(self.body.start as usize, |f| f.line.start as usize);
        self.buf.slice(..first)
    }
}

impl std::fmt::Display for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.buf))
    }
}

/// The next LF at or after `from`, noting in `bare_cr` the first CR passed that is not followed
/// by LF. One search serves both line splitting and the CR check.
#[inline]
fn next_lf(b: &[u8], mut from: usize, bare_cr: &mut Option<usize>) -> Option<usize> {
    loop {
        let i = from + crate::vector::find_either(b.get(from..)?, b'\r', b'\n')?;
        if b[i] == b'\n' {
            return Some(i);
        }
        if b.get(i + 1) == Some(&b'\n') {
            return Some(i + 1);
        }
        if bare_cr.is_none() {
            *bare_cr = Some(i);
        }
        from = i + 1;
    }
}

fn parse_start_line(line: &[u8]) -> Result<Head, ParseError> {
    if starts_with_sip_slash(line) {
        // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase
        let sp = memchr::memchr(b' ', line).ok_or_else(|| {
            err(
                ErrorKind::BadStartLine,
                0,
                "status line without status code",
            )
        })?;
        check_version(&line[..sp], 0)?;
        let rest = &line[sp + 1..];
        let code_end = memchr::memchr(b' ', rest).unwrap_or(rest.len());
        let code = &rest[..code_end];
        if code.len() != 3 || !code.iter().all(u8::is_ascii_digit) {
            return Err(err(
                ErrorKind::BadStatusCode,
                sp + 1,
                "status code is not three digits",
            ));
        }
        let code_n = u16::from(code[0] - b'0') * 100
            + u16::from(code[1] - b'0') * 10
            + u16::from(code[2] - b'0');
        if !(100..=699).contains(&code_n) {
            return Err(err(
                ErrorKind::BadStatusCode,
                sp + 1,
                "status code outside 100-699",
            ));
        }
        let reason_start = (sp + 1 + code_end + 1).min(line.len());
        if line[reason_start..]
            .iter()
            .any(|&c| c == b'\r' || c == b'\n')
        {
            return Err(err(
                ErrorKind::BadStartLine,
                reason_start,
                "line break in reason phrase",
            ));
        }
        return Ok(Head::Response {
            code: code_n,
            reason: Span::new(reason_start, line.len()),
        });
    }
    // Request-Line = Method SP Request-URI SP SIP-Version
    let sp1 = memchr::memchr(b' ', line)
        .ok_or_else(|| err(ErrorKind::BadStartLine, 0, "malformed request line"))?;
    let sp2 = memchr::memrchr(b' ', line)
        .filter(|&i| i > sp1)
        .ok_or_else(|| err(ErrorKind::BadStartLine, 0, "malformed request line"))?;
    let method = &line[..sp1];
    if !is_token_bytes(method) {
        return Err(err(ErrorKind::BadStartLine, 0, "malformed method"));
    }
    let uri = &line[sp1 + 1..sp2];
    if uri.is_empty() || memchr::memchr2(b' ', b'\t', uri).is_some() {
        return Err(err(
            ErrorKind::BadStartLine,
            sp1 + 1,
            "whitespace inside or around the Request-URI",
        ));
    }
    check_version(&line[sp2 + 1..], sp2 + 1)?;
    Ok(Head::Request {
        method: Span::new(0, sp1),
        uri: Span::new(sp1 + 1, sp2),
    })
}

fn singleton<T>(slot: &mut Option<T>, v: T, f: &Field, head: &str) -> Result<(), ParseError> {
    if slot.is_some() {
        return Err(err(
            ErrorKind::DuplicateHeader,
            f.line.start as usize,
            "header appears more than once",
        )
        .in_header(f.raw_name(head)));
    }
    *slot = Some(v);
    Ok(())
}

/// Validates the headers the engine depends on and locates the key fields.
fn validate(
    head: &str,
    start: &Head,
    fields: &[Field],
    limits: &Limits,
    key: &mut KeyFields,
) -> Result<(), ParseError> {
    let mut call_id = None;
    let mut cseq: Option<CSeq<'_>> = None;
    let mut cseq_method = Span::default();
    let mut from = None;
    let mut to = None;
    let mut max_forwards = None;
    let mut content_length = None;
    let mut vias = 0usize;
    for f in fields {
        let value = crate::scan::sub(head, f.value.start as usize, f.value.end as usize);
        let vbase = f.value.start as usize;
        // The name as written is only needed for an error.
        let tag_err = |e: ParseError| e.at(vbase).in_header(f.raw_name(head));
        match f.name {
            HeaderName::Via => {
                let mut first = None;
                let mut first_via = None;
                parse_vias(value, |v| {
                    vias += 1;
                    if first.is_none() {
                        first = Some(v.branch());
                        first_via = Some(v.detach(head));
                    }
                })
                .map_err(tag_err)?;
                if vias > limits.max_vias {
                    return Err(err(
                        ErrorKind::TooManyVias,
                        vbase,
                        "more Via values than the limit",
                    ));
                }
                if key.via_count == 0 {
                    key.top_via = first_via;
                    key.branch = first.flatten().map(|b| Span::of(head, b));
                }
                key.via_count = vias as u32;
            }
            HeaderName::From | HeaderName::To => {
                let na = NameAddr::parse(value).map_err(tag_err)?;
                let tag = na.tag().map(|t| Span::of(head, t));
                if f.name == HeaderName::From {
                    singleton(&mut from, tag, f, head)?;
                    key.from = Some(na.detach(head));
                } else {
                    singleton(&mut to, tag, f, head)?;
                    key.to = Some(na.detach(head));
                }
            }
            HeaderName::CallId => {
                let id = parse_call_id(value).map_err(tag_err)?;
                singleton(&mut call_id, Span::of(head, id), f, head)?;
            }
            HeaderName::CSeq => {
                let (seq, m) = CSeq::parse_raw(value).map_err(tag_err)?;
                let c = CSeq {
                    seq,
                    method: Method::from_token(m),
                };
                cseq_method = Span::of(head, m);
                singleton(&mut cseq, c, f, head)?;
            }
            HeaderName::MaxForwards => {
                let v = parse_max_forwards(value).map_err(tag_err)?;
                singleton(&mut max_forwards, v, f, head)?;
            }
            HeaderName::ContentLength => {
                let v = parse_content_length(value).map_err(tag_err)?;
                if content_length.is_some() {
                    return Err(err(
                        ErrorKind::BadContentLength,
                        f.line.start as usize,
                        "more than one Content-Length",
                    )
                    .in_header(f.raw_name(head)));
                }
                content_length = Some(v);
            }
            HeaderName::ContentType => {
                MediaType::parse(value).map_err(tag_err)?;
            }
            HeaderName::Contact => parse_contacts(value, |c| {
                key.contact_values += 1;
                match c {
                    Contact::Star => key.contact_star = true,
                    Contact::Addr(a) => {
                        if key.first_contact.is_none() {
                            key.first_contact = Some(a.detach(head));
                        }
                    }
                }
            })
            .map_err(tag_err)?,
            HeaderName::Route | HeaderName::RecordRoute => {
                parse_addr_list(value, true, |_| {}).map_err(tag_err)?
            }
            HeaderName::Expires => {
                parse_expires(value).map_err(tag_err)?;
            }
            // 1#option-tag (RFC 3261 §20.29, §20.32): the 420 an element answers must name
            // tags it could read, so a malformed or empty list is a 400 here.
            HeaderName::Require | HeaderName::ProxyRequire
                if parse_token_list(value).map_err(tag_err)?.is_empty() =>
            {
                return Err(tag_err(ParseError::new(
                    ErrorKind::BadHeaderValue,
                    0,
                    "empty option-tag list",
                )));
            }
            _ => {}
        }
    }
    let missing =
        |name: &str| err(ErrorKind::MissingHeader, 0, "mandatory header missing").in_header(name);
    if vias == 0 {
        return Err(missing("Via"));
    }
    key.from_tag = from.ok_or_else(|| missing("From"))?;
    key.to_tag = to.ok_or_else(|| missing("To"))?;
    key.call_id = call_id.ok_or_else(|| missing("Call-ID"))?;
    let cseq = cseq.ok_or_else(|| missing("CSeq"))?;
    key.cseq_seq = cseq.seq;
    key.cseq_method = cseq_method;
    key.max_forwards = max_forwards;
    key.content_length = content_length;
    if let Head::Request { method, uri } = *start {
        let m = &head[method.range()];
        if cseq.method.as_str() != m {
            return Err(err(
                ErrorKind::CSeqMethodMismatch,
                0,
                "CSeq method differs from the request method",
            ));
        }
        let uri_str = &head[uri.range()];
        let parsed = Uri::parse(uri_str).map_err(|e| e.at(uri.start as usize))?;
        match &parsed {
            Uri::Sip(s) if s.headers().is_some() => {
                return Err(err(
                    ErrorKind::BadUri,
                    uri.start as usize,
                    "Request-URI must not carry escaped headers",
                ));
            }
            Uri::Other(_) => {
                return Err(err(
                    ErrorKind::UnsupportedUriScheme,
                    uri.start as usize,
                    "Request-URI scheme is not sip, sips or tel",
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Writes `name: value` and the line end.
pub(crate) fn write_field(out: &mut BytesMut, name: &str, value: &str, eol: &[u8]) {
    out.put_slice(name.as_bytes());
    out.put_slice(b": ");
    out.put_slice(value.as_bytes());
    out.put_slice(eol);
}
