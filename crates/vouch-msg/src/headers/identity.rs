//! Identity and Identity-Info: RFC 4474 §9 (`Identity: "base64"` plus a separate
//! `Identity-Info: <absoluteURI>;alg=rsa-sha1`) and RFC 8224 §4 (`Identity: PASSporT;info=<URI>
//! ;alg=ES256;ppt=shaken`, one header carrying token and parameters).
//!
//! Grammar choices:
//! * RFC 4474's `signed-identity-digest = LDQUOT 32LHEX RDQUOT` contradicts its own examples,
//!   which carry base64 folded over several lines; the quoted form is read as base64 (RFC 4648
//!   alphabet, `=` padding, length a multiple of 4) and the signature is that text with all LWS
//!   removed.
//! * RFC 8224's token is base64url per errata 6499 (`+` and `/` are refused) and must be a JWS
//!   in full or compact form: exactly two dots and a non-empty signature part. `info=<URI>` is
//!   required (its grammar has no Identity without it) but accepted in any parameter position;
//!   `info`, `alg` and `ppt` may each appear once. `alg` and `ppt` are tokens, also accepted in
//!   quotes because RFC 8588's examples write `ppt="shaken"`. An absent `alg` means ES256
//!   (RFC 8224 §4), which [`Identity::alg`] leaves to the caller.
//! * A value longer than [`MAX_IDENTITY_LEN`] bytes, or with more than [`MAX_IDENTITY_PARAMS`]
//!   parameters, is an error.

use std::borrow::Cow;

use crate::error::{ErrorKind, ParseError};
use crate::scan::{Cursor, Params, is_lws, is_token_char, trim_lws};
use crate::uri::Uri;

/// Longest Identity or Identity-Info value accepted, in bytes.
pub const MAX_IDENTITY_LEN: usize = 8 * 1024;
/// Most parameters accepted after an RFC 8224 Identity token.
pub const MAX_IDENTITY_PARAMS: usize = 32;

fn bad(offset: usize, detail: &'static str) -> ParseError {
    ParseError::new(ErrorKind::BadHeaderValue, offset, detail)
}

/// Which specification an Identity value follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityForm {
    /// RFC 4474: a quoted base64 RSA signature; certificate and algorithm are in Identity-Info.
    Rfc4474,
    /// RFC 8224: a PASSporT (JWS, full or compact) with `info`, `alg` and `ppt` parameters.
    Rfc8224,
}

/// One Identity header value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity<'a> {
    form: IdentityForm,
    signature: Cow<'a, str>,
    info: Option<&'a str>,
    alg: Option<&'a str>,
    ppt: Option<&'a str>,
    params: IdentityParams<'a>,
}

impl<'a> Identity<'a> {
    /// Which form the value has.
    pub fn form(&self) -> IdentityForm {
        self.form
    }

    /// RFC 4474: the base64 signature with folding removed (owned only when the value was
    /// folded). RFC 8224: the PASSporT token as written.
    pub fn signature(&self) -> &Cow<'a, str> {
        &self.signature
    }

    /// RFC 8224 `info`: the URI inside `<…>`.
    pub fn info(&self) -> Option<&'a str> {
        self.info
    }

    /// RFC 8224 `alg` as written (without quotes); `None` means the default, ES256.
    pub fn alg(&self) -> Option<&'a str> {
        self.alg
    }

    /// RFC 8224 `ppt` (PASSporT extension, e.g. `shaken`), without quotes.
    pub fn ppt(&self) -> Option<&'a str> {
        self.ppt
    }

    /// All parameters after the token (RFC 8224), `info` included; empty for RFC 4474.
    pub fn params(&self) -> IdentityParams<'a> {
        self.params
    }

    /// The three base64url parts of an RFC 8224 PASSporT: header, payload, signature. The first
    /// two are empty for the compact form.
    pub fn jws_parts(&self) -> Option<(&str, &str, &str)> {
        if self.form != IdentityForm::Rfc8224 {
            return None;
        }
        let mut it = self.signature.split('.');
        match (it.next(), it.next(), it.next(), it.next()) {
            (Some(h), Some(p), Some(s), None) => Some((h, p, s)),
            _ => None,
        }
    }

    /// True for an RFC 8224 compact-form PASSporT (header and payload omitted).
    pub fn is_compact(&self) -> bool {
        self.jws_parts()
            .is_some_and(|(h, p, _)| h.is_empty() && p.is_empty())
    }

    /// Parses an Identity value of either form.
    pub fn parse(value: &'a str) -> Result<Self, ParseError> {
        if value.len() > MAX_IDENTITY_LEN {
            return Err(bad(MAX_IDENTITY_LEN, "Identity value too long"));
        }
        let mut c = Cursor::new(value);
        c.skip_lws();
        if c.peek() == Some(b'"') {
            Self::parse_rfc4474(&mut c)
        } else {
            Self::parse_rfc8224(&mut c)
        }
    }

    fn parse_rfc4474(c: &mut Cursor<'a>) -> Result<Self, ParseError> {
        let start = c.pos() + 1;
        // The usual case in one pass: `"` base64 `"` with nothing to unfold or unescape (the
        // base64 alphabet has no quote, backslash or whitespace); anything else takes the
        // general quoted-string path below.
        if let Some(inner) = c.rest().strip_prefix('"').and_then(|r| {
            r.trim_end_matches([' ', '\t', '\r', '\n'])
                .strip_suffix('"')
        }) && is_base64(inner)
        {
            return Ok(Identity {
                form: IdentityForm::Rfc4474,
                signature: Cow::Borrowed(inner),
                info: None,
                alg: None,
                ppt: None,
                params: IdentityParams::default(),
            });
        }
        let q = c.quoted_string()?;
        let inner = &q[1..q.len() - 1];
        c.skip_lws();
        if !c.at_end() {
            return Err(c.err("unexpected text after Identity signature"));
        }
        let signature = if inner.bytes().any(is_lws) {
            // Folded across lines: the signature is the base64 without the LWS.
            Cow::Owned(
                inner
                    .chars()
                    .filter(|&ch| !(ch.is_ascii() && is_lws(ch as u8)))
                    .collect(),
            )
        } else {
            Cow::Borrowed(inner)
        };
        if !is_base64(&signature) {
            return Err(bad(start, "Identity signature is not base64"));
        }
        Ok(Identity {
            form: IdentityForm::Rfc4474,
            signature,
            info: None,
            alg: None,
            ppt: None,
            params: IdentityParams::default(),
        })
    }

    fn parse_rfc8224(c: &mut Cursor<'a>) -> Result<Self, ParseError> {
        let start = c.pos();
        let token = c.take_while(|b| is_base64url(b) || b == b'.');
        if token.is_empty() {
            return Err(c.err("expected quoted signature or PASSporT"));
        }
        // A JWS compact serialisation: header.payload.signature (header and payload may be
        // empty in the compact form of RFC 8224 §4.1.1), never an empty signature.
        let dots = token.bytes().filter(|&b| b == b'.').count();
        if dots != 2 || token.ends_with('.') {
            return Err(bad(start, "PASSporT must be header.payload.signature"));
        }
        let mut info = None;
        let mut alg = None;
        let mut ppt = None;
        let params = parse_params(c, |name, value, off| {
            let slot = if name.eq_ignore_ascii_case("info") {
                let uri = value
                    .and_then(|v| v.strip_prefix('<'))
                    .and_then(|v| v.strip_suffix('>'))
                    .ok_or_else(|| bad(off, "info must be <URI>"))?;
                return set_once(&mut info, uri, off);
            } else if name.eq_ignore_ascii_case("alg") {
                &mut alg
            } else if name.eq_ignore_ascii_case("ppt") {
                &mut ppt
            } else {
                return Ok(());
            };
            let v = value.ok_or_else(|| bad(off, "alg and ppt need a value"))?;
            let t = v
                .strip_prefix('"')
                .and_then(|s| s.strip_suffix('"'))
                .unwrap_or(v);
            if t.is_empty() || !t.bytes().all(is_token_char) {
                return Err(bad(off, "alg and ppt must be tokens"));
            }
            set_once(slot, t, off)
        })?;
        if info.is_none() {
            return Err(c.err("Identity without info parameter"));
        }
        Ok(Identity {
            form: IdentityForm::Rfc8224,
            signature: Cow::Borrowed(token),
            info,
            alg,
            ppt,
            params,
        })
    }
}

fn set_once<'a>(slot: &mut Option<&'a str>, v: &'a str, off: usize) -> Result<(), ParseError> {
    if slot.is_some() {
        return Err(bad(off, "Identity parameter appears twice"));
    }
    *slot = Some(v);
    Ok(())
}

fn is_base64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// RFC 4648 §4 base64 with padding.
fn is_base64(s: &str) -> bool {
    let body = s.trim_end_matches('=');
    !body.is_empty()
        && s.len() - body.len() <= 2
        && s.len().is_multiple_of(4)
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

/// Parses `*( SEMI name [ EQUAL value ] )` to the end of the value, where a value is a token,
/// a quoted-string, an IPv6 reference or `<absoluteURI>` (RFC 8224 `ident-info-uri`).
fn parse_params<'a>(
    c: &mut Cursor<'a>,
    mut each: impl FnMut(&'a str, Option<&'a str>, usize) -> Result<(), ParseError>,
) -> Result<IdentityParams<'a>, ParseError> {
    let start = c.pos();
    let mut end = start;
    let mut count = 0;
    loop {
        c.skip_lws();
        if c.at_end() {
            break;
        }
        if !c.eat(b';') {
            return Err(c.err("expected ';' before Identity parameter"));
        }
        count += 1;
        if count > MAX_IDENTITY_PARAMS {
            return Err(c.err("too many Identity parameters"));
        }
        c.skip_lws();
        let name = c.token("empty parameter name")?;
        let save = c.pos();
        c.skip_lws();
        if c.eat(b'=') {
            c.skip_lws();
            let vstart = c.pos();
            match c.peek() {
                Some(b'<') => {
                    c.eat(b'<');
                    let inner = c.take_while(|b| b != b'>' && !is_lws(b));
                    if !c.eat(b'>') {
                        return Err(c.err("unterminated or spaced <URI> in parameter"));
                    }
                    Uri::parse(inner).map_err(|e| e.at(vstart + 1))?;
                }
                Some(b'"') => {
                    c.quoted_string()?;
                }
                Some(b'[') => {
                    c.take_while(|b| b != b']' && !is_lws(b));
                    if !c.eat(b']') {
                        return Err(c.err("unterminated IPv6 reference in parameter"));
                    }
                }
                _ => {
                    c.token("empty parameter value")?;
                }
            }
            each(name, Some(c.slice(vstart, c.pos())), vstart)?;
        } else {
            c.set_pos(save);
            each(name, None, save)?;
        }
        end = c.pos();
    }
    Ok(IdentityParams {
        raw: c.slice(start, end),
    })
}

/// The validated parameter section of an RFC 8224 Identity value, kept raw. Unlike
/// [`Params`], values may be `<URI>` (which can hold `;`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IdentityParams<'a> {
    raw: &'a str,
}

impl<'a> IdentityParams<'a> {
    /// The raw text, starting with `;` (or empty).
    pub fn as_str(&self) -> &'a str {
        self.raw
    }

    /// Iterates `(name, value)`; values as written (`<…>` and quotes kept).
    pub fn iter(&self) -> IdentityParamIter<'a> {
        IdentityParamIter { rest: self.raw }
    }

    /// The value of the first parameter named `name` (case-insensitive); `Some(None)` when it
    /// has no value.
    pub fn get(&self, name: &str) -> Option<Option<&'a str>> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }
}

/// Iterator over [`IdentityParams`].
#[derive(Debug, Clone)]
pub struct IdentityParamIter<'a> {
    rest: &'a str,
}

impl<'a> Iterator for IdentityParamIter<'a> {
    type Item = (&'a str, Option<&'a str>);

    fn next(&mut self) -> Option<Self::Item> {
        let s = self
            .rest
            .trim_start_matches(|c: char| c == ';' || (c.is_ascii() && is_lws(c as u8)));
        if s.is_empty() {
            self.rest = s;
            return None;
        }
        // Validated already: split at the first `;` outside quotes and angle brackets.
        let b = s.as_bytes();
        let mut i = 0;
        let mut in_quote = false;
        let mut in_angle = false;
        while i < b.len() {
            match b[i] {
                b'\\' if in_quote => i += 1,
                b'"' if !in_angle => in_quote = !in_quote,
                b'<' if !in_quote => in_angle = true,
                b'>' if !in_quote => in_angle = false,
                b';' if !in_quote && !in_angle => break,
                _ => {}
            }
            i += 1;
        }
        let i = i.min(s.len());
        let item = &s[..i];
        self.rest = &s[i..];
        Some(match item.split_once('=') {
            Some((n, v)) => (trim_lws(n), Some(trim_lws(v))),
            None => (trim_lws(item), None),
        })
    }
}

/// An RFC 4474 Identity-Info value: `<absoluteURI>` and ident-info-params.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityInfo<'a> {
    uri: Uri<'a>,
    params: Params<'a>,
}

impl<'a> IdentityInfo<'a> {
    /// The certificate URI.
    pub fn uri(&self) -> &Uri<'a> {
        &self.uri
    }

    /// The `alg` parameter (`rsa-sha1` is the only RFC 4474 value; RFC 4474 §9 requires it,
    /// which the verifier checks, not the parser).
    pub fn alg(&self) -> Option<&'a str> {
        self.params.get("alg").flatten()
    }

    /// All ident-info-params.
    pub fn params(&self) -> Params<'a> {
        self.params
    }

    /// Parses `LAQUOT absoluteURI RAQUOT *( SEMI ident-info-params )`.
    pub fn parse(value: &'a str) -> Result<Self, ParseError> {
        if value.len() > MAX_IDENTITY_LEN {
            return Err(bad(MAX_IDENTITY_LEN, "Identity-Info value too long"));
        }
        let mut c = Cursor::new(value);
        c.skip_lws();
        if !c.eat(b'<') {
            return Err(c.err("Identity-Info must start with '<'"));
        }
        let start = c.pos();
        let inner = c.take_while(|b| b != b'>' && !is_lws(b));
        if !c.eat(b'>') {
            return Err(c.err("missing '>' or whitespace inside <URI>"));
        }
        let uri = Uri::parse(inner).map_err(|e| e.at(start))?;
        let params = c.params(|_| false)?;
        c.skip_lws();
        if !c.at_end() {
            return Err(c.err("unexpected text after Identity-Info"));
        }
        if params
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("alg"))
            .count()
            > 1
        {
            return Err(bad(start, "alg appears twice"));
        }
        Ok(IdentityInfo { uri, params })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    // Copied byte for byte from /work/shared/vectors: rfc4474/invite.identity (the Identity
    // value, folded over three lines) and rfc4474/invite.signed.enc (lines joined).
    const INVITE_IDENTITY: &str = "\"ZYNBbHC00VMZr2kZt6VmCvPonWJMGvQTBDqghoWeLxJfzB2a1pxAr3VgrB0SsSAa\r\n           ifsRdiOPoQZYOy2wrVghuhcsMbHWUSFxI6p6q5TOQXHMmz6uEo3svJsSH49thyGn\r\n           FVcnyaZ++yRlBYYQTLqWzJ+KVhPKbfU/pryhVn9Yc6U=\"";
    const INVITE_SIGNED_ENC: &str = "ZYNBbHC00VMZr2kZt6VmCvPonWJMGvQTBDqghoWeLxJfzB2a1pxAr3VgrB0SsSAaifsRdiOPoQZYOy2wrVghuhcsMbHWUSFxI6p6q5TOQXHMmz6uEo3svJsSH49thyGnFVcnyaZ++yRlBYYQTLqWzJ+KVhPKbfU/pryhVn9Yc6U=";
    // stir/rfc8224-4.1.1-identity-full.hdr and -compact.hdr, without "Identity: ".
    const FULL: &str = "eyJhbGciOiJFUzI1NiIsInR5cCI6InBhc3Nwb3J0IiwieDV1IjoiaHR0cHM6Ly9jZXJ0LmV4YW1wbGUub3JnL3Bhc3Nwb3J0LmNlciJ9.eyJkZXN0Ijp7InVyaSI6WyJzaXA6YWxpY2VAZXhhbXBsZS5jb20iXX0sImlhdCI6IjE0NDMyMDgzNDUiLCJvcmlnIjp7InRuIjoiMTIxNTU1NTEyMTIifX0.rq3pjT1hoRwakEGjHCnWSwUnshd0-zJ6F1VOgFWSjHBr8Qjpjlk-cpFYpFYsojNCpTzO3QfPOlckGaS6hEck7w;info=<https://biloxi.example.org/biloxi.cert>";
    const COMPACT: &str = "..rq3pjT1hoRwakEGjHCnWSwUnshd0-zJ6F1VOgFWSjHBr8Qjpjlk-cpFYpFYsojNCpTzO3QfPOlckGaS6hEck7w;info=<https://biloxi.example.org/biloxi.cert>";

    #[test]
    fn folded_rfc4474_signature_equals_the_signed_base64() {
        let id = Identity::parse(INVITE_IDENTITY).unwrap();
        assert_eq!(id.form(), IdentityForm::Rfc4474);
        assert_eq!(id.signature().as_ref(), INVITE_SIGNED_ENC);
        assert!(matches!(id.signature(), Cow::Owned(_)));
        assert_eq!(id.info(), None);
        assert_eq!(id.jws_parts(), None);
    }

    #[test]
    fn unfolded_rfc4474_signature_is_borrowed() {
        let v = format!("\"{INVITE_SIGNED_ENC}\"");
        let id = Identity::parse(&v).unwrap();
        assert!(matches!(id.signature(), Cow::Borrowed(_)));
        assert_eq!(id.signature().as_ref(), INVITE_SIGNED_ENC);
    }

    #[test]
    fn refuses_malformed_rfc4474_values() {
        for v in [
            "\"\"",
            "\"abc!\"",
            "\"abcde\"",
            "\"ab===\"",
            "\"a=bc\"",
            "\"ZYNB",
            "\"ZYNB\" ;alg=x",
            "\"ZY\\NB\"",
        ] {
            assert!(Identity::parse(v).is_err(), "{v:?}");
        }
    }

    #[test]
    fn reads_rfc8224_full_form() {
        let id = Identity::parse(FULL).unwrap();
        assert_eq!(id.form(), IdentityForm::Rfc8224);
        assert_eq!(id.info(), Some("https://biloxi.example.org/biloxi.cert"));
        assert_eq!(id.alg(), None);
        let (h, p, s) = id.jws_parts().unwrap();
        assert!(h.starts_with("eyJhbGciOiJFUzI1NiIs"));
        assert!(p.starts_with("eyJkZXN0Ijp7"));
        assert!(s.ends_with("hEck7w"));
        assert!(!id.is_compact());
        assert!(matches!(id.signature(), Cow::Borrowed(_)));
        assert_eq!(
            id.params().get("info"),
            Some(Some("<https://biloxi.example.org/biloxi.cert>"))
        );
    }

    #[test]
    fn reads_rfc8224_compact_form() {
        let id = Identity::parse(COMPACT).unwrap();
        assert!(id.is_compact());
        assert_eq!(id.jws_parts().unwrap().2.len(), 86);
    }

    #[test]
    fn reads_alg_ppt_and_extensions_in_any_order() {
        let id = Identity::parse(
            "..c2ln ; alg=ES256;ppt=\"shaken\";\r\n info=<https://cert.example.org/passport.cer;x=1>;foo;bar=\"b;c\"",
        )
        .unwrap();
        assert_eq!(id.alg(), Some("ES256"));
        assert_eq!(id.ppt(), Some("shaken"));
        assert_eq!(id.info(), Some("https://cert.example.org/passport.cer;x=1"));
        let names: Vec<_> = id.params().iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["alg", "ppt", "info", "foo", "bar"]);
        assert_eq!(id.params().get("foo"), Some(None));
        assert_eq!(id.params().get("bar"), Some(Some("\"b;c\"")));
    }

    #[test]
    fn refuses_malformed_rfc8224_values() {
        for v in [
            "",
            "..c2ln",
            "a.b.c;alg=ES256",
            "a.b.c;info=https://x.example/c",
            "a.b.c;info=< https://x.example/c >",
            "a.b.c;info=<https://x.example/c",
            "a.b.c;info=<nocolon>",
            "a.b.c;info=<https://a/>;info=<https://b/>",
            "a.b.c;info=<https://a/>;alg=ES256;alg=RS256",
            "a.b.c;info=<https://a/>;ppt=\"sha ken\"",
            "a.b.c;info=<https://a/>;alg",
            "a.b.c;info=<https://a/>;",
            "a.b.c;info=<https://a/> junk",
            "a.b;info=<https://a/>",
            "a.b.c.d;info=<https://a/>",
            "a.b.;info=<https://a/>",
            "a+b.c/d.e;info=<https://a/>",
            // RFC 5763's shape-only examples: unquoted standard base64, no info.
            "CyI4+nAkHrH3ntmaxgr01TMxTmtjP7MASwliNRdupRI1vpkXRvZXx1ja9k",
        ] {
            assert!(Identity::parse(v).is_err(), "{v:?}");
        }
    }

    #[test]
    fn limits_value_length_and_parameter_count() {
        let long = format!("a.b.{};info=<https://a/>", "c".repeat(MAX_IDENTITY_LEN));
        let e = Identity::parse(&long).unwrap_err();
        assert_eq!(e.detail(), "Identity value too long");
        let many = ";x=1".repeat(MAX_IDENTITY_PARAMS);
        assert!(Identity::parse(&format!("a.b.c;info=<https://a/>{many}")).is_err());
        let ok = ";x=1".repeat(MAX_IDENTITY_PARAMS - 1);
        assert!(Identity::parse(&format!("a.b.c;info=<https://a/>{ok}")).is_ok());
    }

    #[test]
    fn reads_identity_info() {
        let ii =
            IdentityInfo::parse("<https://atlanta.example.com/atlanta.cer>;alg=rsa-sha1").unwrap();
        assert_eq!(ii.uri().as_str(), "https://atlanta.example.com/atlanta.cer");
        assert_eq!(ii.alg(), Some("rsa-sha1"));
        let ii =
            IdentityInfo::parse("<https://biloxi.example.org/biloxi.cer> ; alg = rsa-sha1 ; x")
                .unwrap();
        assert_eq!(ii.alg(), Some("rsa-sha1"));
        assert!(ii.params().contains("x"));
        assert_eq!(
            IdentityInfo::parse("<https://a.example/c>").unwrap().alg(),
            None
        );
    }

    #[test]
    fn refuses_malformed_identity_info() {
        for v in [
            "",
            "https://example.com/cert",
            "<https://example.com/cert",
            "< https://example.com/cert>",
            "<>",
            "<no-scheme>",
            "<https://a/>;alg=rsa-sha1;alg=rsa-sha256",
            "<https://a/> alg=rsa-sha1",
            "<https://a/>;;",
        ] {
            assert!(IdentityInfo::parse(v).is_err(), "{v:?}");
        }
    }

    #[test]
    fn never_panics_on_prefixes() {
        for s in [
            INVITE_IDENTITY,
            FULL,
            "a.b.c;x=\"\\\u{e9}\";info=<https://\u{e9}/>",
        ] {
            for i in 0..=s.len() {
                if s.is_char_boundary(i) {
                    let _ = Identity::parse(&s[..i]);
                    let _ = IdentityInfo::parse(&s[..i]);
                }
            }
        }
    }
}
