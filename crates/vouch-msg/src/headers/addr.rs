//! name-addr / addr-spec values: From, To (RFC 3261 §20.20, §20.39), Contact (§20.10),
//! Route and Record-Route (§20.34, §20.30). RFC 4475 §3.1.1.6 (no LWS before `<`) is accepted;
//! §3.1.2.14 (LWS inside `<…>`) and §3.1.2.15 (unquoted display name with `,`) are refused.

use std::fmt;

use crate::error::ParseError;
use crate::scan::{Cursor, Params, Part, class, is_lws, is_token_char, scan_class, unquote};
use crate::uri::{DetachedUri, SipUri, Uri};

/// A name-addr or addr-spec with its header parameters.
#[derive(Clone)]
pub struct NameAddr<'a> {
    /// The header value the parts are offsets into.
    text: &'a str,
    display: Option<Part>,
    uri: Uri<'a>,
    bracketed: bool,
    params: Part,
    /// Located while validating the parameters.
    tag: Option<Part>,
}

// Debug and equality as derived over the parts as strings, which the offsets only encode.
impl fmt::Debug for NameAddr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NameAddr")
            .field("display", &self.display_name_raw())
            .field("uri", &self.uri)
            .field("bracketed", &self.bracketed)
            .field("params", &self.params())
            .field("tag", &self.tag())
            .finish()
    }
}

impl PartialEq for NameAddr<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.display_name_raw() == other.display_name_raw()
            && self.uri == other.uri
            && self.bracketed == other.bracketed
            && self.params() == other.params()
            && self.tag() == other.tag()
    }
}

impl Eq for NameAddr<'_> {}

impl<'a> NameAddr<'a> {
    /// The display name as written (quoted strings keep their quotes).
    pub fn display_name_raw(&self) -> Option<&'a str> {
        self.display.map(|d| d.get(self.text))
    }
    /// The display name with quotes and escapes removed.
    pub fn display_name(&self) -> Option<std::borrow::Cow<'a, str>> {
        self.display_name_raw().map(unquote)
    }
    /// The URI.
    pub fn uri(&self) -> &Uri<'a> {
        &self.uri
    }
    /// True when the URI was written in `<…>` (name-addr form).
    pub fn is_name_addr(&self) -> bool {
        self.bracketed
    }
    /// Header parameters after the address.
    pub fn params(&self) -> Params<'a> {
        Params::from_raw(self.params.get(self.text))
    }
    /// The `tag` parameter (From, To).
    pub fn tag(&self) -> Option<&'a str> {
        self.tag.map(|t| t.get(self.text))
    }

    /// Parses one name-addr or addr-spec with parameters at the cursor, stopping before a
    /// top-level `,` when `in_list`, otherwise requiring the end of the value.
    pub(crate) fn parse_at(c: &mut Cursor<'a>, in_list: bool) -> Result<Self, ParseError> {
        c.skip_lws();
        let start = c.pos();
        let mut display = None;
        let mut bracketed = false;
        match c.peek() {
            Some(b'"') => {
                let q = c.pos();
                c.quoted_string()?;
                display = Some(Part::new(q, c.pos()));
                c.skip_lws();
                if c.peek() != Some(b'<') {
                    return Err(c.err("expected '<' after display name"));
                }
            }
            Some(b'<') => {}
            _ => {
                // Either `*(token LWS) <` or an addr-spec; look ahead for the `<`.
                let save = c.pos();
                let mut last_tok_end = save;
                loop {
                    let t = c.take_while(is_token_char);
                    if t.is_empty() {
                        break;
                    }
                    last_tok_end = c.pos();
                    c.skip_lws();
                }
                if c.peek() == Some(b'<') {
                    if last_tok_end > save {
                        display = Some(Part::new(save, last_tok_end));
                    }
                } else {
                    c.set_pos(save);
                }
            }
        }
        let uri = if c.peek() == Some(b'<') {
            bracketed = true;
            c.eat(b'<');
            let rest = c.rest();
            let rb = rest.as_bytes();
            // A plain SIP URI read up to the `>` is the reading of the text between the brackets
            // (it holds neither `>` nor LWS), so only other URIs need the search for `>`.
            if let Some((u, used)) = SipUri::parse_plain(rest)
                && rb.get(used) == Some(&b'>')
            {
                c.set_pos(c.pos() + used + 1);
                Uri::Sip(u)
            } else {
                // One scan finds the first `>` or an LWS before it. LWS inside the brackets is
                // refused (RFC 4475 §3.1.2.14) unless no `>` follows at all.
                let close = scan_class(rb, 0, class::IN_ANGLE);
                match rb.get(close) {
                    Some(b'>') => {}
                    Some(_) if memchr::memchr(b'>', &rb[close..]).is_some() => {
                        return Err(c.err("whitespace inside <URI>"));
                    }
                    _ => return Err(c.err("missing '>'")),
                }
                let inner = &rest[..close];
                let uri = Uri::parse(inner).map_err(|e| e.at(c.pos()))?;
                c.set_pos(c.pos() + close + 1);
                uri
            }
        } else {
            let spec = c.take_while(|b| !is_lws(b) && b != b';' && b != b',');
            if spec.is_empty() {
                return Err(c.err("empty address"));
            }
            let uri = Uri::parse(spec).map_err(|e| e.at(start))?;
            if uri.as_sip().is_some_and(|u| u.headers().is_some()) {
                // RFC 3261 §20: a URI with `?` must be in angle brackets.
                return Err(c.err("URI with headers must be enclosed in <>"));
            }
            uri
        };
        let (params, tag) = c.params_at(|b| in_list && b == b',', "tag")?;
        Ok(NameAddr {
            text: c.text(),
            display,
            uri,
            bracketed,
            params,
            tag,
        })
    }

    /// Parses a value holding exactly one address (From, To, Refer-To, …).
    pub fn parse(value: &'a str) -> Result<Self, ParseError> {
        let mut c = Cursor::new(value);
        let na = Self::parse_at(&mut c, false)?;
        c.skip_lws();
        if !c.at_end() {
            return Err(c.err("unexpected text after address"));
        }
        Ok(na)
    }
}

/// Parses a comma-separated list of addresses (Route, Record-Route, Contact without `*`).
/// `require_name_addr` enforces the `<…>` form Route and Record-Route need.
pub(crate) fn parse_addr_list<'a>(
    value: &'a str,
    require_name_addr: bool,
    mut each: impl FnMut(NameAddr<'a>),
) -> Result<(), ParseError> {
    let mut c = Cursor::new(value);
    loop {
        let na = NameAddr::parse_at(&mut c, true)?;
        if require_name_addr && !na.is_name_addr() {
            return Err(c.err("route entries must be written as <URI>"));
        }
        each(na);
        c.skip_lws();
        if c.at_end() {
            return Ok(());
        }
        if !c.eat(b',') {
            return Err(c.err("expected ',' between addresses"));
        }
    }
}

/// One Contact value (RFC 3261 §20.10): `*` or an address with `expires` and `q`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contact<'a> {
    /// `Contact: *` (remove all bindings, REGISTER only).
    Star,
    /// An address.
    Addr(NameAddr<'a>),
}

impl<'a> Contact<'a> {
    /// The `expires` parameter in seconds; values beyond 2^32-1 saturate (RFC 3261 §10.2.1.1).
    pub fn expires(&self) -> Option<u32> {
        match self {
            Contact::Addr(a) => a
                .params()
                .get("expires")
                .flatten()
                .and_then(parse_delta_seconds),
            Contact::Star => None,
        }
    }
    /// The `q` parameter in thousandths (0..=1000).
    pub fn q(&self) -> Option<u16> {
        match self {
            Contact::Addr(a) => a.params().get("q").flatten().and_then(parse_qvalue),
            Contact::Star => None,
        }
    }
    /// The address, unless this is `*`.
    pub fn addr(&self) -> Option<&NameAddr<'a>> {
        match self {
            Contact::Addr(a) => Some(a),
            Contact::Star => None,
        }
    }
}

/// Parses a Contact header value into its values.
pub(crate) fn parse_contacts<'a>(
    value: &'a str,
    mut each: impl FnMut(Contact<'a>),
) -> Result<(), ParseError> {
    if crate::scan::trim_lws(value) == "*" {
        each(Contact::Star);
        return Ok(());
    }
    parse_addr_list(value, false, |na| each(Contact::Addr(na)))?;
    Ok(())
}

/// delta-seconds (RFC 3261 §25.1); oversized values saturate at 2^32-1 as §10.2.1.1 and
/// RFC 4475 §3.1.2.4 ask.
pub fn parse_delta_seconds(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.parse::<u32>().unwrap_or(u32::MAX))
}

/// qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ), in thousandths.
pub fn parse_qvalue(s: &str) -> Option<u16> {
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, f),
        None => (s, ""),
    };
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut thousandths: u16 = 0;
    for (i, b) in frac.bytes().enumerate() {
        thousandths += u16::from(b - b'0') * [100, 10, 1][i];
    }
    match int {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// Reads every value of one Contact header field (`*` or addresses), in order.
pub fn parse_contact_list<'a>(
    value: &'a str,
    each: impl FnMut(Contact<'a>),
) -> Result<(), ParseError> {
    parse_contacts(value, each)
}

/// Reads every value of one Route, Record-Route or Path field; each must be `<URI>`.
pub fn parse_route_list<'a>(
    value: &'a str,
    each: impl FnMut(NameAddr<'a>),
) -> Result<(), ParseError> {
    parse_addr_list(value, true, each)
}

/// A [`NameAddr`] detached from its text, kept in a parsed message.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DetachedNameAddr {
    text: Part,
    display: Option<Part>,
    uri: DetachedUri,
    bracketed: bool,
    params: Part,
    tag: Option<Part>,
}

impl NameAddr<'_> {
    pub(crate) fn detach(&self, base: &str) -> DetachedNameAddr {
        DetachedNameAddr {
            text: Part::of(base, self.text),
            display: self.display,
            uri: self.uri.detach(base),
            bracketed: self.bracketed,
            params: self.params,
            tag: self.tag,
        }
    }
}

impl DetachedNameAddr {
    pub(crate) fn attach(self, base: &str) -> NameAddr<'_> {
        NameAddr {
            text: self.text.get(base),
            display: self.display,
            uri: self.uri.attach(base),
            bracketed: self.bracketed,
            params: self.params,
            tag: self.tag,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_display_uri_and_tag() {
        let na = NameAddr::parse(
            r#""J Rosenberg \\\""       <sip:jdrosen@example.com>  ;  tag = 98asjd8"#,
        )
        .unwrap();
        assert_eq!(na.display_name().unwrap(), r#"J Rosenberg \""#);
        assert_eq!(na.uri().as_str(), "sip:jdrosen@example.com");
        assert_eq!(na.tag(), Some("98asjd8"));
    }

    #[test]
    fn addr_spec_params_belong_to_the_header() {
        let na = NameAddr::parse("sip:user@host.example.com;unknownparam").unwrap();
        assert_eq!(na.uri().as_str(), "sip:user@host.example.com");
        assert!(na.params().contains("unknownparam"));
        assert!(na.uri().as_sip().unwrap().params().is_empty());
    }

    #[test]
    fn token_display_name_without_space() {
        let na = NameAddr::parse("caller<sip:caller@example.com>;tag=323").unwrap();
        assert_eq!(na.display_name_raw(), Some("caller"));
    }

    #[test]
    fn refuses_bad_forms() {
        assert!(NameAddr::parse("Bell, Alexander <sip:a.g.bell@bell-tel.com>").is_err());
        assert!(NameAddr::parse("< sip:t.watson@example.org >").is_err());
        assert!(NameAddr::parse(r#""Mr. J. User <sip:j.user@example.com>"#).is_err());
        assert!(NameAddr::parse("sip:user@example.com?Route=%3Csip:x%3E").is_err());
    }

    #[test]
    fn contact_list_and_params() {
        let mut v = Vec::new();
        parse_contacts("<sip:a@b;x=1>;expires=60;q=0.5, \"B\" <sip:c@d>", |c| {
            v.push(c)
        })
        .unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].expires(), Some(60));
        assert_eq!(v[0].q(), Some(500));
        assert_eq!(parse_delta_seconds("99999999999999"), Some(u32::MAX));
        let mut star = Vec::new();
        parse_contacts(" * ", |c| star.push(c)).unwrap();
        assert_eq!(star, vec![Contact::Star]);
        assert!(parse_contacts("\"Joe\" <sip:joe@example.org>;;;;", |_| {}).is_err());
    }
}
