//! URIs: SIP and SIPS (RFC 3261 §19.1, §25.1), tel (RFC 3966, liberally), and any other
//! absoluteURI kept opaque. IPv6 references per RFC 5118.
//!
//! A plain SIP URI (no escapes, password, IPv6 reference or headers: nearly every one a server
//! sees) is read in a single pass; every other form, and every refusal, comes from the general
//! reader. The single-pass reader only ever answers with the general reader's answer.

use std::borrow::Cow;
use std::fmt;
use std::net::Ipv4Addr;

use crate::error::{ErrorKind, ParseError};
use crate::scan::{Params, Part, class, scan_class, sub};

/// A parsed URI borrowing from the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Uri<'a> {
    /// `sip:` or `sips:`.
    Sip(SipUri<'a>),
    /// `tel:`.
    Tel(TelUri<'a>),
    /// Any other scheme, kept as written.
    Other(OtherUri<'a>),
}

/// A `sip:` or `sips:` URI.
#[derive(Clone)]
pub struct SipUri<'a> {
    raw: &'a str,
    p: SipParts,
}

/// The parts of a [`SipUri`] as offsets into its text (see [`Part`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct SipParts {
    secure: bool,
    user: Option<Part>,
    password: Option<Part>,
    host: HostPart,
    host_raw: Part,
    port: Option<u16>,
    params: Part,
    headers: Option<Part>,
}

/// A [`Host`] with its text as a [`Part`]; a domain is the whole host text.
#[derive(Debug, Clone, Copy)]
pub(crate) enum HostPart {
    Domain,
    V4(Ipv4Addr),
    V6(Part),
}

impl HostPart {
    /// `host`, read from `base`, whose host text is `host_raw`.
    #[inline]
    pub(crate) fn of(base: &str, host: Host<'_>) -> HostPart {
        match host {
            Host::Domain(_) => HostPart::Domain,
            Host::V4(a) => HostPart::V4(a),
            Host::V6(a) => HostPart::V6(Part::of(base, a)),
        }
    }

    #[inline]
    pub(crate) fn get(self, base: &str, host_raw: Part) -> Host<'_> {
        match self {
            HostPart::Domain => Host::Domain(host_raw.get(base)),
            HostPart::V4(a) => Host::V4(a),
            HostPart::V6(p) => Host::V6(p.get(base)),
        }
    }
}

// Debug and equality as derived over the parts as strings, which the offsets only encode.
impl fmt::Debug for SipUri<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SipUri")
            .field("raw", &self.raw)
            .field("secure", &self.p.secure)
            .field("user", &self.user())
            .field("password", &self.password())
            .field("host", &self.host())
            .field("host_raw", &self.host_str())
            .field("port", &self.p.port)
            .field("params", &self.params())
            .field("headers", &self.headers())
            .finish()
    }
}

impl PartialEq for SipUri<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
            && self.p.secure == other.p.secure
            && self.user() == other.user()
            && self.password() == other.password()
            && self.host() == other.host()
            && self.host_str() == other.host_str()
            && self.p.port == other.p.port
            && self.params() == other.params()
            && self.headers() == other.headers()
    }
}

impl Eq for SipUri<'_> {}

/// The host part of a SIP URI or Via sent-by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host<'a> {
    /// A domain name as written.
    Domain(&'a str),
    /// A dotted IPv4 address.
    V4(Ipv4Addr),
    /// An IPv6 reference; the text between the brackets as written.
    V6(&'a str),
}

impl fmt::Display for Host<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Domain(d) => f.write_str(d),
            Host::V4(a) => write!(f, "{a}"),
            Host::V6(a) => write!(f, "[{a}]"),
        }
    }
}

/// A `tel:` URI (RFC 3966); the subscriber part is kept as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelUri<'a> {
    raw: &'a str,
    number: &'a str,
}

/// A URI of another scheme, e.g. `mailto:` or `urn:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtherUri<'a> {
    raw: &'a str,
    scheme: &'a str,
}

#[cold]
fn bad(offset: usize, detail: &'static str) -> ParseError {
    ParseError::new(ErrorKind::BadUri, offset, detail)
}

/// Checks that every byte of `s` is allowed by `ok` or is a valid `%HEX HEX` escape.
fn check_escaped(
    s: &str,
    base: usize,
    ok: impl Fn(u8) -> bool,
    what: &'static str,
) -> Result<(), ParseError> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if i + 2 < b.len() && b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit() {
                i += 3;
                continue;
            }
            return Err(bad(base + i, "bad %-escape"));
        }
        if !ok(b[i]) {
            return Err(bad(base + i, what));
        }
        i += 1;
    }
    Ok(())
}

/// The key an address-of-record is stored and compared by: `sip:user@host`, the user part
/// unescaped (RFC 3261 §19.1.4), the host lowercased and `sips:` folded into `sip:` (a user
/// registered over TLS is still the same user).
pub fn aor_key(uri: &SipUri<'_>) -> String {
    let host = uri.host_str().to_ascii_lowercase();
    match uri.user() {
        Some(u) => format!("sip:{}@{host}", String::from_utf8_lossy(&unescape(u))),
        None => format!("sip:{host}"),
    }
}

/// An AoR written as a string, in [`aor_key`] form (a string that is not a SIP URI is kept).
pub fn normalize_aor(aor: &str) -> String {
    match Uri::parse(aor) {
        Ok(Uri::Sip(u)) => aor_key(&u),
        _ => aor.to_owned(),
    }
}

/// Decodes `%HEX HEX` escapes (RFC 3261 §19.1.4: escaped and unescaped forms are equal).
pub fn unescape(s: &str) -> Cow<'_, [u8]> {
    if !s.contains('%') {
        return Cow::Borrowed(s.as_bytes());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    Cow::Owned(out)
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Parses `host [":" port]` at the start of `s`; returns the host, its raw text, the port and
/// the number of bytes consumed. Stops at the first byte that cannot continue the hostport.
pub(crate) fn parse_hostport(
    s: &str,
    base: usize,
) -> Result<(Host<'_>, &str, Option<u16>, usize), ParseError> {
    let b = s.as_bytes();
    let (host, host_raw, mut i) = parse_host(s, base)?;
    let mut port = None;
    if b.get(i) == Some(&b':') {
        let (p, used) = parse_port(&s[i + 1..], base + i + 1)?;
        port = Some(p);
        i += 1 + used;
    }
    Ok((host, host_raw, port, i))
}

/// Parses `port` (1 to 5 digits, at most 65535) at the start of `s`; returns it and the number
/// of bytes consumed.
pub(crate) fn parse_port(s: &str, base: usize) -> Result<(u16, usize), ParseError> {
    let b = s.as_bytes();
    let j = scan_class(b, 0, class::DIGIT);
    if j == 0 || j > 5 {
        return Err(bad(base, "bad port"));
    }
    plain_port(b).ok_or_else(|| bad(base, "port out of range"))
}

/// Parses `host` (a domain name, an IPv4 address or a bracketed IPv6 reference) at the start
/// of `s`; returns the host, its raw text and the number of bytes consumed.
pub(crate) fn parse_host(s: &str, base: usize) -> Result<(Host<'_>, &str, usize), ParseError> {
    let b = s.as_bytes();
    Ok(if b.first() == Some(&b'[') {
        let close =
            memchr::memchr(b']', b).ok_or_else(|| bad(base, "unterminated IPv6 reference"))?;
        let inner = &s[1..close];
        // RFC 5118 §4.10: tolerate the RFC 3261 ABNF bug (three colons), so check the
        // character set rather than insisting on a canonical address.
        if inner.is_empty()
            || !inner.bytes().all(|c| class::is(c, class::IPV6))
            || !inner.contains(':')
        {
            return Err(bad(base + 1, "bad IPv6 reference"));
        }
        (Host::V6(inner), &s[..=close], close + 1)
    } else {
        let i = scan_class(b, 0, class::HOST);
        let name = sub(s, 0, i);
        let first = match b.first() {
            Some(&c) if i > 0 => c,
            _ => return Err(bad(base, "empty host")),
        };
        let host = if first.is_ascii_digit() && is_digits_and_dots(name.as_bytes()) {
            match parse_ipv4(name.as_bytes()) {
                Some(a) => Host::V4(a),
                None => return Err(bad(base, "bad IPv4 address")),
            }
        } else {
            if matches!(first, b'.' | b'-') || has_double_dot(name.as_bytes()) {
                return Err(bad(base, "bad host name"));
            }
            Host::Domain(name)
        };
        (host, name, i)
    })
}

/// For the single-pass readers (SIP URI, Via): what [`parse_host`] reads from `name`, a run of
/// host characters, or `None` where it would refuse.
#[inline]
pub(crate) fn plain_host(name: &str) -> Option<Host<'_>> {
    let b = name.as_bytes();
    let &first = b.first()?;
    if first.is_ascii_digit() && is_digits_and_dots(b) {
        parse_ipv4(b).map(Host::V4)
    } else if matches!(first, b'.' | b'-') || has_double_dot(b) {
        None
    } else {
        Some(Host::Domain(name))
    }
}

/// What [`parse_port`] reads at the start of `b` (the port and its length), or `None` where it
/// would refuse.
#[inline]
pub(crate) fn plain_port(b: &[u8]) -> Option<(u16, usize)> {
    // One pass: at most six digits are looked at, as more than five is refused anyway.
    let mut v: u32 = 0;
    let mut n = 0;
    while let Some(&d) = b.get(n).filter(|d| d.is_ascii_digit()) {
        if n == 5 {
            return None;
        }
        v = v * 10 + u32::from(d - b'0');
        n += 1;
    }
    if n == 0 {
        return None;
    }
    Some((u16::try_from(v).ok()?, n))
}

/// Dotted-quad IPv4 as `Ipv4Addr::from_str` reads it: four groups of one to three digits, no
/// leading zero in a group of more than one digit, each at most 255. Inline, where the
/// standard parser is a general one.
fn parse_ipv4(b: &[u8]) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut group = 0;
    let mut v: u32 = 0;
    let mut digits = 0;
    for &c in b {
        if c == b'.' {
            if digits == 0 || group == 3 {
                return None;
            }
            octets[group] = v as u8;
            group += 1;
            v = 0;
            digits = 0;
            continue;
        }
        // A fourth digit, or a digit after a leading zero, ends the reading.
        if !c.is_ascii_digit() || digits == 3 || (digits == 1 && v == 0) {
            return None;
        }
        v = v * 10 + u32::from(c - b'0');
        digits += 1;
        if v > 255 {
            return None;
        }
    }
    if digits == 0 || group != 3 {
        return None;
    }
    octets[3] = v as u8;
    Some(Ipv4Addr::from(octets))
}

fn is_digits_and_dots(b: &[u8]) -> bool {
    b.iter().all(|&c| c.is_ascii_digit() || c == b'.')
}

/// True when two dots touch in `h`. Host names are checked eight byte pairs per step: the
/// high bit of each byte lane marks a dot, in `h` and in `h` shifted by one.
fn has_double_dot(h: &[u8]) -> bool {
    const DOTS: u64 = 0x2e2e_2e2e_2e2e_2e2e;
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    let dots = |w: &[u8; 8]| {
        let x = u64::from_le_bytes(*w) ^ DOTS;
        !(((x & LOW7) + LOW7) | x | LOW7)
    };
    let mut i = 0;
    while let (Some(a), Some(b)) = (
        h.get(i..).and_then(<[u8]>::first_chunk::<8>),
        h.get(i + 1..).and_then(<[u8]>::first_chunk::<8>),
    ) {
        if dots(a) & dots(b) != 0 {
            return true;
        }
        i += 8;
    }
    h.get(i..).is_some_and(|t| t.windows(2).any(|w| w == b".."))
}

impl<'a> Uri<'a> {
    /// Parses a whole URI; `s` must contain nothing else.
    pub fn parse(s: &'a str) -> Result<Uri<'a>, ParseError> {
        // Plain SIP URIs are nearly every URI SIP carries; when the single-pass reader takes all
        // of `s` its reading is the verdict, anything else gets the general path below.
        if let Some((u, used)) = SipUri::parse_plain(s)
            && used == s.len()
        {
            return Ok(Uri::Sip(u));
        }
        Self::parse_general(s)
    }

    /// The general reader: every form and every refusal. [`Uri::parse`] reaches the same
    /// verdict sooner for plain SIP URIs.
    fn parse_general(s: &'a str) -> Result<Uri<'a>, ParseError> {
        let colon =
            memchr::memchr(b':', s.as_bytes()).ok_or_else(|| bad(0, "URI has no scheme"))?;
        let scheme = &s[..colon];
        let sb = scheme.as_bytes();
        if sb.is_empty()
            || !sb[0].is_ascii_alphabetic()
            || !sb
                .iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
        {
            return Err(bad(0, "bad URI scheme"));
        }
        if scheme.eq_ignore_ascii_case("sip") {
            SipUri::parse_after_scheme(s, false, colon + 1).map(Uri::Sip)
        } else if scheme.eq_ignore_ascii_case("sips") {
            SipUri::parse_after_scheme(s, true, colon + 1).map(Uri::Sip)
        } else if scheme.eq_ignore_ascii_case("tel") {
            let number = &s[colon + 1..];
            check_escaped(
                number,
                colon + 1,
                |c| class::is(c, class::TEL),
                "bad character in tel URI",
            )?;
            if number.is_empty() {
                return Err(bad(colon + 1, "empty tel URI"));
            }
            Ok(Uri::Tel(TelUri { raw: s, number }))
        } else {
            let rest = &s[colon + 1..];
            check_escaped(
                rest,
                colon + 1,
                |c| class::is(c, class::URIC),
                "bad character in URI",
            )?;
            if rest.is_empty() {
                return Err(bad(colon + 1, "empty URI after scheme"));
            }
            Ok(Uri::Other(OtherUri { raw: s, scheme }))
        }
    }

    /// The URI exactly as written.
    pub fn as_str(&self) -> &'a str {
        match self {
            Uri::Sip(u) => u.raw,
            Uri::Tel(u) => u.raw,
            Uri::Other(u) => u.raw,
        }
    }

    /// The scheme as written.
    pub fn scheme(&self) -> &'a str {
        let s = self.as_str();
        &s[..s.find(':').unwrap_or(0)]
    }

    /// The SIP URI, if this is one.
    pub fn as_sip(&self) -> Option<&SipUri<'a>> {
        match self {
            Uri::Sip(u) => Some(u),
            _ => None,
        }
    }
}

impl fmt::Display for Uri<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'a> SipUri<'a> {
    /// Reads a plain SIP URI at the start of `s` in one pass: `sip:`/`sips:`, an optional user
    /// part of unescaped `user` characters, a domain name or IPv4 address, an optional port and
    /// unescaped parameters. Returns the URI and where it stopped, which is the end of `s` or
    /// the first byte none of those parts can hold.
    ///
    /// `None` means "not plain", never "invalid": the caller then runs the general parser, so
    /// every refusal and its message come from one place. When it answers, the answer is what
    /// [`Uri::parse`] gives for `&s[..stop]`: no part it consumes can hold `@`, so an `@` it
    /// takes is the first in that text, and an `@` it did not take is not in it.
    pub(crate) fn parse_plain(s: &'a str) -> Option<(Self, usize)> {
        let b = s.as_bytes();
        if b.len() < 5 || (b[0] | 0x20) != b's' || (b[1] | 0x20) != b'i' || (b[2] | 0x20) != b'p' {
            return None;
        }
        let (secure, start) = match b[3] {
            b':' => (false, 4),
            c if (c | 0x20) == b's' && b[4] == b':' => (true, 5),
            _ => return None,
        };
        // Host characters are user characters too, so one scan reads the host, or the user part
        // when an `@` ends it; a byte that only a user part can hold sends the scan on to see
        // whether an `@` follows.
        let mut i = scan_class(b, start, class::HOST);
        let mut user_end = None;
        match b.get(i) {
            Some(b'@') => user_end = Some(i),
            Some(&c) if class::is(c, class::USER) => {
                let k = scan_class(b, i, class::USER);
                if b.get(k) == Some(&b'@') {
                    user_end = Some(k);
                }
            }
            _ => {}
        }
        let mut user = None;
        let mut host_start = start;
        if let Some(at) = user_end {
            if at == start {
                return None;
            }
            user = Some(Part::new(start, at));
            host_start = at + 1;
            i = scan_class(b, host_start, class::HOST);
        }
        let host_raw = Part::new(host_start, i);
        let host = HostPart::of(s, plain_host(host_raw.get(s))?);
        let mut port = None;
        if b.get(i) == Some(&b':') {
            let (p, used) = plain_port(&b[i + 1..])?;
            port = Some(p);
            i += 1 + used;
        }
        let params_start = i;
        while b.get(i) == Some(&b';') {
            let ns = i + 1;
            let mut j = scan_class(b, ns, class::PARAMCHAR);
            if j == ns {
                return None;
            }
            if b.get(j) == Some(&b'=') {
                let vs = j + 1;
                j = scan_class(b, vs, class::PARAMCHAR);
                if j == vs {
                    return None;
                }
            }
            i = j;
        }
        if b.get(i) == Some(&b'?') {
            return None;
        }
        Some((
            SipUri {
                raw: sub(s, 0, i),
                p: SipParts {
                    secure,
                    user,
                    password: None,
                    host,
                    host_raw,
                    port,
                    params: Part::new(params_start, i),
                    headers: None,
                },
            },
            i,
        ))
    }

    fn parse_after_scheme(s: &'a str, secure: bool, start: usize) -> Result<Self, ParseError> {
        let rest = &s[start..];
        let rb = rest.as_bytes();
        let (user, password, hp_start) = match memchr::memchr(b'@', rb) {
            Some(at) => {
                let userinfo = &rest[..at];
                let (user, password) = match memchr::memchr(b':', userinfo.as_bytes()) {
                    Some(c) => (&userinfo[..c], Some(&userinfo[c + 1..])),
                    None => (userinfo, None),
                };
                if user.is_empty() {
                    return Err(bad(start, "empty user part"));
                }
                check_escaped(
                    user,
                    start,
                    |c| class::is(c, class::USER),
                    "bad character in user part",
                )?;
                if let Some(p) = password {
                    check_escaped(
                        p,
                        start,
                        |c| class::is(c, class::PASSWORD),
                        "bad character in password",
                    )?;
                }
                (Some(user), password, at + 1)
            }
            None => (None, None, 0),
        };
        let (host, host_raw, port, used) = parse_hostport(&rest[hp_start..], start + hp_start)?;
        let mut i = hp_start + used;
        let params_start = i;
        while i < rb.len() && rb[i] == b';' {
            // One pass per parameter: paramchars or escapes, at most one '=' splitting a
            // non-empty name from a non-empty value.
            let pstart = i + 1;
            let mut j = pstart;
            let mut eq = None;
            while j < rb.len() && rb[j] != b';' && rb[j] != b'?' {
                match rb[j] {
                    b'=' if eq.is_none() => eq = Some(j),
                    b'%' => {
                        if !(j + 2 < rb.len()
                            && rb[j + 1].is_ascii_hexdigit()
                            && rb[j + 2].is_ascii_hexdigit())
                        {
                            return Err(bad(start + j, "bad %-escape"));
                        }
                        j += 2;
                    }
                    c if class::is(c, class::PARAMCHAR) => {}
                    _ => return Err(bad(start + j, "bad character in URI parameter")),
                }
                j += 1;
            }
            let name_end = eq.unwrap_or(j);
            if name_end == pstart {
                return Err(bad(start + pstart, "empty URI parameter"));
            }
            if eq.is_some_and(|e| e + 1 == j) {
                return Err(bad(start + pstart, "empty URI parameter value"));
            }
            i = j;
        }
        let params = Params::from_raw(&rest[params_start..i]);
        let headers = if i < rb.len() && rb[i] == b'?' {
            let h = &rest[i + 1..];
            check_escaped(
                h,
                start + i + 1,
                |c| class::is(c, class::HEADER),
                "bad character in URI headers",
            )?;
            i = rb.len();
            Some(h)
        } else {
            None
        };
        if i != rb.len() {
            return Err(bad(start + i, "unexpected character in SIP URI"));
        }
        let part = |x: &str| Part::of(s, x);
        Ok(SipUri {
            raw: s,
            p: SipParts {
                secure,
                user: user.map(part),
                password: password.map(part),
                host: HostPart::of(s, host),
                host_raw: part(host_raw),
                port,
                params: part(params.as_str()),
                headers: headers.map(part),
            },
        })
    }

    /// The URI exactly as written.
    pub fn as_str(&self) -> &'a str {
        self.raw
    }
    /// True for `sips:`.
    pub fn is_secure(&self) -> bool {
        self.p.secure
    }
    /// The user part as written (escapes kept).
    pub fn user(&self) -> Option<&'a str> {
        self.p.user.map(|u| u.get(self.raw))
    }
    /// The user part with `%HH` escapes decoded (RFC 3261 §19.1.4).
    pub fn user_unescaped(&self) -> Option<Cow<'a, [u8]>> {
        self.user().map(unescape)
    }
    /// The password, if the URI carries one.
    pub fn password(&self) -> Option<&'a str> {
        self.p.password.map(|u| u.get(self.raw))
    }
    /// The host.
    pub fn host(&self) -> Host<'a> {
        self.p.host.get(self.raw, self.p.host_raw)
    }
    /// The host as written (IPv6 with brackets).
    pub fn host_str(&self) -> &'a str {
        self.p.host_raw.get(self.raw)
    }
    /// The explicit port, if any.
    pub fn port(&self) -> Option<u16> {
        self.p.port
    }
    /// The uri-parameters.
    pub fn params(&self) -> Params<'a> {
        Params::from_raw(self.p.params.get(self.raw))
    }
    /// The escaped headers component after `?`, if any.
    pub fn headers(&self) -> Option<&'a str> {
        self.p.headers.map(|u| u.get(self.raw))
    }
    /// The `transport` parameter.
    pub fn transport(&self) -> Option<&'a str> {
        self.params().get("transport").flatten()
    }
    /// True when the `lr` parameter is present (RFC 3261 §19.1.1 loose routing).
    pub fn is_loose_route(&self) -> bool {
        self.params().contains("lr")
    }
    /// The address-of-record form `sip:user@host` (scheme lowercased, no port, parameters or
    /// headers) used to key registrations and identities.
    pub fn aor(&self) -> String {
        let scheme = if self.p.secure { "sips" } else { "sip" };
        let host = self.host_str().to_ascii_lowercase();
        match self.user() {
            Some(u) => format!("{scheme}:{}@{host}", String::from_utf8_lossy(&unescape(u))),
            None => format!("{scheme}:{host}"),
        }
    }
}

impl<'a> TelUri<'a> {
    /// The URI as written.
    pub fn as_str(&self) -> &'a str {
        self.raw
    }
    /// The telephone-subscriber part.
    pub fn number(&self) -> &'a str {
        self.number
    }
}

impl<'a> OtherUri<'a> {
    /// The URI as written.
    pub fn as_str(&self) -> &'a str {
        self.raw
    }
    /// The scheme as written.
    pub fn scheme(&self) -> &'a str {
        self.scheme
    }
}

/// A [`Uri`] detached from its text, kept in a parsed message.
#[derive(Debug, Clone, Copy)]
pub(crate) enum DetachedUri {
    Sip { raw: Part, p: SipParts },
    Tel { raw: Part, number: Part },
    Other { raw: Part, scheme: Part },
}

impl Uri<'_> {
    pub(crate) fn detach(&self, base: &str) -> DetachedUri {
        let r = |s: &str| Part::of(base, s);
        match self {
            Uri::Sip(u) => DetachedUri::Sip {
                raw: r(u.raw),
                p: u.p,
            },
            Uri::Tel(t) => DetachedUri::Tel {
                raw: r(t.raw),
                number: r(t.number),
            },
            Uri::Other(o) => DetachedUri::Other {
                raw: r(o.raw),
                scheme: r(o.scheme),
            },
        }
    }
}

impl DetachedUri {
    pub(crate) fn attach(self, base: &str) -> Uri<'_> {
        match self {
            DetachedUri::Sip { raw, p } => Uri::Sip(SipUri {
                raw: raw.get(base),
                p,
            }),
            DetachedUri::Tel { raw, number } => Uri::Tel(TelUri {
                raw: raw.get(base),
                number: number.get(base),
            }),
            DetachedUri::Other { raw, scheme } => Uri::Other(OtherUri {
                raw: raw.get(base),
                scheme: scheme.get(base),
            }),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn parses_sip_uri_parts() {
        let u = Uri::parse("sips:alice:pw@Atlanta.example.com:5061;transport=tls;lr?Subject=hi")
            .unwrap();
        let Uri::Sip(s) = u else { panic!("not sip") };
        assert!(s.is_secure());
        assert_eq!(s.user(), Some("alice"));
        assert_eq!(s.password(), Some("pw"));
        assert_eq!(s.host(), Host::Domain("Atlanta.example.com"));
        assert_eq!(s.port(), Some(5061));
        assert_eq!(s.transport(), Some("tls"));
        assert!(s.is_loose_route());
        assert_eq!(s.headers(), Some("Subject=hi"));
        assert_eq!(s.aor(), "sips:alice@atlanta.example.com");
    }

    #[test]
    fn user_part_may_hold_escaped_at_and_semicolon() {
        let Uri::Sip(s) = Uri::parse("sip:user;par=u%40example.net@example.com").unwrap() else {
            panic!()
        };
        assert_eq!(s.user(), Some("user;par=u%40example.net"));
        assert_eq!(&*s.user_unescaped().unwrap(), b"user;par=u@example.net");
        assert_eq!(s.host(), Host::Domain("example.com"));
    }

    #[test]
    fn ipv6_needs_brackets() {
        assert!(Uri::parse("sip:[2001:db8::10]:5070").is_ok());
        assert!(Uri::parse("sip:2001:db8::10").is_err());
        let Uri::Sip(s) = Uri::parse("sip:[2001:db8::10:5070]").unwrap() else {
            panic!()
        };
        assert_eq!(s.port(), None);
    }

    #[test]
    fn rejects_bad_escape_and_port() {
        assert!(Uri::parse("sip:us%zzer@host").is_err());
        assert!(Uri::parse("sip:host:99999").is_err());
        assert!(Uri::parse("sip:host;;").is_err());
        assert!(Uri::parse("<sip:host>").is_err());
    }

    /// Seeds and deterministic mutations of them, for comparing fast paths with general ones.
    pub(crate) fn mutations(seeds: &[&str], rounds: usize) -> Vec<String> {
        const BYTES: &[u8] = b"<>;:@%[]\"\r\n \t,=?/.-_09aZ\\*+!~'&$()#";
        const PIECES: &[&str] = &[
            "sip:",
            "sips:",
            "tel:",
            "@",
            "%41",
            "%4",
            "[2001:db8::1]",
            ";lr",
            ";tag=",
            "..",
            ":5060",
            ":99999",
            ":0",
            "?a=b",
            "192.0.2.1",
            "1.2.3.256",
            "01.2.3.4",
            "user:pw@",
            ";x=\"a;b\"",
            ";received=[2001:db8::2]",
            "SIP/2.0/UDP ",
            " , ",
            "\r\n ",
            "=",
        ];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n.max(1) as u64) as usize
        };
        let mut out: Vec<String> = seeds.iter().map(|s| s.to_string()).collect();
        for _ in 0..rounds {
            for seed in seeds {
                let mut v = seed.as_bytes().to_vec();
                for _ in 0..1 + next(3) {
                    let at = next(v.len() + 1);
                    match next(4) {
                        0 if at < v.len() => v[at] = BYTES[next(BYTES.len())],
                        1 => v.insert(at, BYTES[next(BYTES.len())]),
                        2 if at < v.len() => {
                            v.remove(at);
                        }
                        _ => {
                            let p = PIECES[next(PIECES.len())].as_bytes();
                            v.splice(at..at, p.iter().copied());
                        }
                    }
                }
                if let Ok(s) = String::from_utf8(v) {
                    out.push(s);
                }
            }
        }
        out
    }

    #[test]
    fn plain_reading_is_the_general_reading() {
        let seeds = [
            "sip:alice@atlanta.example.com",
            "sips:bob@biloxi.example.com:5061;transport=tls;lr",
            "sip:proxy.atlanta.example.com;lr",
            "sip:192.0.2.1:5060;maddr=192.0.2.2",
            "SIP:user;par=x@example.com",
            "sip:a-b.c_d:65535;x;y=z",
        ];
        let mut plain = 0;
        for s in mutations(&seeds, 3000) {
            if let Some((u, used)) = SipUri::parse_plain(&s) {
                plain += 1;
                let general = Uri::parse_general(&s[..used]);
                assert_eq!(general, Ok(Uri::Sip(u.clone())), "{s:?}");
                assert_eq!(
                    format!("{general:?}"),
                    format!("{:?}", Ok::<_, ParseError>(Uri::Sip(u)))
                );
            }
            assert_eq!(Uri::parse(&s), Uri::parse_general(&s), "{s:?}");
        }
        assert!(plain > 5000, "only {plain} plain readings");
    }

    #[test]
    fn ipv4_reads_as_the_standard_parser() {
        let parts = [
            "", "0", "00", "01", "1", "9", "10", "99", "100", "199", "255", "256", "300", "999",
            "000", "0000", "1000", "25", "250", "260",
        ];
        let mut cases = Vec::new();
        for a in parts {
            for b in parts {
                cases.push(format!("{a}.{b}"));
                cases.push(format!("{a}.{b}.1"));
                for c in parts {
                    for d in ["0", "1", "255", "256", "01", "", "1.2"] {
                        cases.push(format!("{a}.{b}.{c}.{d}"));
                    }
                }
            }
        }
        cases.extend(["1..2.3", "1.2.3.4.", ".1.2.3", "1.2.3.4.5", "12345", ""].map(String::from));
        for c in cases {
            assert_eq!(
                parse_ipv4(c.as_bytes()),
                c.parse::<Ipv4Addr>().ok(),
                "{c:?}"
            );
        }
    }

    #[test]
    fn keeps_other_schemes_opaque() {
        let u = Uri::parse("mailto:alice@example.com").unwrap();
        assert_eq!(u.scheme(), "mailto");
        assert!(matches!(
            Uri::parse("tel:+1-201-555-0123").unwrap(),
            Uri::Tel(_)
        ));
    }
}
