//! Authentication headers: WWW-Authenticate and Proxy-Authenticate (RFC 3261 §20.44, §20.27),
//! Authorization and Proxy-Authorization (§20.7, §20.28), Authentication-Info (§20.6), with the
//! §25.1 grammar as widened by RFC 8760 §2.7 (SHA-256 and SHA-512-256 algorithms, `*LHEX`
//! digests) and RFC 7616 §3.3–§3.5 (`userhash`), and Proxy-Authentication-Info
//! (draft-dotson-sip-mutual-auth-02 §8).
//!
//! Grammar choices:
//! * One challenge or credentials per header field value, as RFC 3261 writes it
//!   (`HCOLON challenge`): commas separate parameters, never challenges.
//! * Proxy-Authentication-Info is `painfo *(COMMA painfo)` where each `painfo` is a single
//!   parameter, exactly like Authentication-Info's `ainfo`. The commas of a line therefore
//!   separate the parameters of one value, and no rule marks where a second value would start:
//!   the several values a response may carry (one per authenticating proxy, draft §6) travel as
//!   several header lines. [`parse_proxy_authentication_info`] yields the one value of a line;
//!   a parameter named twice in a line is refused rather than guessed to begin another value
//!   (it is what two rows merged under RFC 3261 §7.3.1 would look like, and reading it either
//!   way could let an attacker pick which rspauth a client checks).
//! * Scheme and parameter names are case-insensitive (RFC 5234 strings). In Digest headers
//!   and Authentication-Info a parameter may appear once (RFC 7235 §2.1); a repeat is an error.
//! * Quoting as the grammar says: realm, domain, nonce, opaque, username, uri, response,
//!   cnonce, rspauth and nextnonce must be quoted; `nc` is exactly 8 LHEX unquoted; response and
//!   rspauth are `*LHEX`. Liberal reception only where deployed clients are known to differ:
//!   `algorithm` and `qop` are accepted quoted as well as bare, `stale` and `userhash` in any
//!   case. The printers always write the canonical form.
//! * Authentication-Info keeps unknown parameters (RFC 7615 §3 `#auth-param`) instead of
//!   refusing them, so a future extension does not break mutual authentication.
//! * Schemes other than Digest: `auth-param *(COMMA auth-param)` kept raw (RFC 4475 §3.3.7), a
//!   token68 (RFC 7235 §2.1, as RFC 8898 Bearer uses), or nothing.
//! * Limits: at most [`MAX_AUTH_PARAMS`] parameters of at most [`MAX_AUTH_PARAM_VALUE`] bytes
//!   each; a token68 of at most [`MAX_TOKEN68`] bytes.

use std::borrow::Cow;

use crate::error::{ErrorKind, ParseError};
use crate::scan::{Cursor, is_lws, is_token_char, trim_lws, unquote};

/// Most auth-params accepted in one header value.
pub const MAX_AUTH_PARAMS: usize = 32;
/// Longest auth-param value (as written, quotes included) in bytes.
pub const MAX_AUTH_PARAM_VALUE: usize = 1024;
/// Longest token68 credential or challenge in bytes.
pub const MAX_TOKEN68: usize = 8 * 1024;

fn bad(offset: usize, detail: &'static str) -> ParseError {
    ParseError::new(ErrorKind::BadHeaderValue, offset, detail)
}

/// A validated `auth-param *(COMMA auth-param)` list, kept raw; iterate for `(name, value)`
/// pairs. Values are returned as written (quoted strings keep their quotes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AuthParams<'a> {
    raw: &'a str,
}

impl<'a> AuthParams<'a> {
    /// Parses and validates a parameter list (`charset=UTF-8, x="y"`); empty text gives an
    /// empty list. Useful to attach extension parameters to a header being built.
    pub fn parse(s: &'a str) -> Result<Self, ParseError> {
        let mut c = Cursor::new(s);
        c.skip_lws();
        if c.at_end() {
            return Ok(AuthParams::default());
        }
        parse_param_list(&mut c, |_, _, _| Ok(()))
    }

    /// The raw text.
    pub fn as_str(&self) -> &'a str {
        self.raw
    }

    /// True when there are no parameters.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// Iterates `(name, value)` in order; names as written, values as written.
    pub fn iter(&self) -> AuthParamIter<'a> {
        AuthParamIter { rest: self.raw }
    }

    /// The raw value of the first parameter named `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }
}

/// Iterator over [`AuthParams`].
#[derive(Debug, Clone)]
pub struct AuthParamIter<'a> {
    rest: &'a str,
}

impl<'a> Iterator for AuthParamIter<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        // The list was validated on construction: split at commas outside quoted strings.
        let s = self
            .rest
            .trim_start_matches(|c: char| c == ',' || (c.is_ascii() && is_lws(c as u8)));
        if s.is_empty() {
            self.rest = s;
            return None;
        }
        let b = s.as_bytes();
        let mut i = 0;
        let mut in_quote = false;
        while i < b.len() {
            match b[i] {
                b'\\' if in_quote => i += 1,
                b'"' => in_quote = !in_quote,
                b',' if !in_quote => break,
                _ => {}
            }
            i += 1;
        }
        let i = i.min(s.len());
        let item = &s[..i];
        self.rest = &s[i..];
        // Names are tokens, so the first `=` ends the name.
        Some(match item.split_once('=') {
            Some((n, v)) => (trim_lws(n), trim_lws(v)),
            None => (trim_lws(item), ""),
        })
    }
}

/// Parses `auth-param *(COMMA auth-param)` up to the end of the value, calling `each` with
/// every name, raw value and the value's offset.
fn parse_param_list<'a>(
    c: &mut Cursor<'a>,
    mut each: impl FnMut(&'a str, &'a str, usize) -> Result<(), ParseError>,
) -> Result<AuthParams<'a>, ParseError> {
    c.skip_lws();
    let start = c.pos();
    let mut count = 0;
    loop {
        count += 1;
        if count > MAX_AUTH_PARAMS {
            return Err(c.err("too many auth-params"));
        }
        let name = c.token("expected auth-param name")?;
        c.expect_sep(b'=', "expected '=' after auth-param name")?;
        let vstart = c.pos();
        let value = if c.peek() == Some(b'"') {
            c.quoted_string()?
        } else {
            c.token("empty auth-param value")?
        };
        if value.len() > MAX_AUTH_PARAM_VALUE {
            return Err(bad(vstart, "auth-param value too long"));
        }
        each(name, value, vstart)?;
        let end = c.pos();
        c.skip_lws();
        if c.at_end() {
            return Ok(AuthParams {
                raw: c.slice(start, end),
            });
        }
        if !c.eat(b',') {
            return Err(c.err("expected ',' between auth-params"));
        }
        c.skip_lws();
    }
}

/// Parameter names already seen in one value, to refuse repeats without allocating.
struct Seen<'a> {
    names: [&'a str; MAX_AUTH_PARAMS],
    len: usize,
}

impl<'a> Seen<'a> {
    fn new() -> Self {
        Seen {
            names: [""; MAX_AUTH_PARAMS],
            len: 0,
        }
    }

    fn add(&mut self, name: &'a str, offset: usize) -> Result<(), ParseError> {
        if self.names[..self.len]
            .iter()
            .any(|n| n.eq_ignore_ascii_case(name))
        {
            return Err(bad(offset, "auth-param appears twice"));
        }
        let slot = self
            .names
            .get_mut(self.len)
            .ok_or_else(|| bad(offset, "too many auth-params"))?;
        *slot = name;
        self.len += 1;
        Ok(())
    }
}

/// Requires LWS after the auth-scheme (or the end of the value, returning false).
fn after_scheme(c: &mut Cursor<'_>) -> Result<bool, ParseError> {
    if c.at_end() {
        return Ok(false);
    }
    let before = c.pos();
    c.skip_lws();
    if c.pos() == before {
        return Err(c.err("expected whitespace after auth-scheme"));
    }
    Ok(!c.at_end())
}

fn is_token68_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
}

/// The rest of a non-Digest value: a token68, an auth-param list, or nothing.
fn parse_other<'a>(c: &mut Cursor<'a>) -> Result<(Option<&'a str>, AuthParams<'a>), ParseError> {
    if !after_scheme(c)? {
        return Ok((None, AuthParams::default()));
    }
    // token68 = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=", alone; anything
    // after it means the text was the name of an auth-param instead (RFC 7235 §2.1).
    let start = c.pos();
    if !c.take_while(is_token68_char).is_empty() {
        c.take_while(|b| b == b'=');
        let end = c.pos();
        c.skip_lws();
        if c.at_end() {
            if end - start > MAX_TOKEN68 {
                return Err(bad(start, "token68 too long"));
            }
            return Ok((Some(c.slice(start, end)), AuthParams::default()));
        }
        c.set_pos(start);
    }
    Ok((None, parse_param_list(c, |_, _, _| Ok(()))?))
}

fn strip_quotes(v: &str) -> Option<&str> {
    v.strip_prefix('"').and_then(|s| s.strip_suffix('"'))
}

/// A value the grammar writes as a quoted-string, unquoted.
fn quoted<'a>(v: &'a str, off: usize, detail: &'static str) -> Result<Cow<'a, str>, ParseError> {
    if v.starts_with('"') {
        Ok(unquote(v))
    } else {
        Err(bad(off, detail))
    }
}

/// `LDQUOT *LHEX RDQUOT` (request-digest, response-digest), without the quotes.
fn quoted_lhex<'a>(v: &'a str, off: usize, detail: &'static str) -> Result<&'a str, ParseError> {
    strip_quotes(v)
        .filter(|h| h.bytes().all(is_lhex))
        .ok_or_else(|| bad(off, detail))
}

/// A token, also accepted inside quotes (liberal reception of algorithm and qop).
fn token_maybe_quoted<'a>(
    v: &'a str,
    off: usize,
    detail: &'static str,
) -> Result<&'a str, ParseError> {
    let t = strip_quotes(v).unwrap_or(v);
    if is_token(t) {
        Ok(t)
    } else {
        Err(bad(off, detail))
    }
}

fn boolean(v: &str, off: usize, detail: &'static str) -> Result<bool, ParseError> {
    if v.eq_ignore_ascii_case("true") {
        Ok(true)
    } else if v.eq_ignore_ascii_case("false") {
        Ok(false)
    } else {
        Err(bad(off, detail))
    }
}

fn is_lhex(b: u8) -> bool {
    b.is_ascii_digit() || (b'a'..=b'f').contains(&b)
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_char)
}

/// nc-value = 8LHEX.
fn nonce_count(v: &str, off: usize) -> Result<u32, ParseError> {
    if v.len() != 8 || !v.bytes().all(is_lhex) {
        return Err(bad(off, "nc must be exactly 8 lowercase hex digits"));
    }
    u32::from_str_radix(v, 16).map_err(|_| bad(off, "nc must be exactly 8 lowercase hex digits"))
}

/// qop-options: `LDQUOT qop-value *("," qop-value) RDQUOT` (LWS around the commas tolerated,
/// as RFC 7616 §3.9.1 writes it); a bare token is accepted too. Returns the list text.
fn qop_options(v: &str, off: usize) -> Result<&str, ParseError> {
    let list = strip_quotes(v).unwrap_or(v);
    if list.split(',').all(|q| is_token(trim_lws(q))) {
        Ok(list)
    } else {
        Err(bad(off, "qop must be a list of tokens"))
    }
}

/// Writes `name=value` pairs separated by `, `, checking what it writes.
struct ParamWriter {
    out: String,
    count: usize,
}

impl ParamWriter {
    fn new(scheme: Option<&str>) -> Result<Self, ParseError> {
        let mut out = String::with_capacity(256);
        if let Some(s) = scheme {
            check_token(s, "auth-scheme is not a token")?;
            out.push_str(s);
        }
        Ok(ParamWriter { out, count: 0 })
    }

    fn name(&mut self, name: &str) {
        if self.count > 0 {
            self.out.push_str(", ");
        } else if !self.out.is_empty() {
            self.out.push(' ');
        }
        self.count += 1;
        self.out.push_str(name);
        self.out.push('=');
    }

    /// A quoted-string; `"` and `\` and control characters are escaped. CR and LF cannot be
    /// escaped (RFC 3261 quoted-pair) and would split the header, so they are refused.
    fn quoted(&mut self, name: &str, v: &str) -> Result<(), ParseError> {
        self.name(name);
        let start = self.out.len();
        self.out.push('"');
        for ch in v.chars() {
            match ch {
                '\r' | '\n' => return Err(bad(0, "CR or LF cannot be quoted")),
                '"' | '\\' => {
                    self.out.push('\\');
                    self.out.push(ch);
                }
                c if (c.is_ascii_control() && c != '\t') => {
                    self.out.push('\\');
                    self.out.push(c);
                }
                c => self.out.push(c),
            }
        }
        self.out.push('"');
        // The parser's limit applies to the written form, escapes and quotes included.
        if self.out.len() - start > MAX_AUTH_PARAM_VALUE {
            return Err(bad(0, "auth-param value too long"));
        }
        Ok(())
    }

    fn lhex(&mut self, name: &str, v: &str) -> Result<(), ParseError> {
        if !v.bytes().all(is_lhex) {
            return Err(bad(0, "digest must be lowercase hex"));
        }
        self.quoted(name, v)
    }

    fn token(&mut self, name: &str, v: &str) -> Result<(), ParseError> {
        check_token(v, "value is not a token")?;
        self.name(name);
        self.out.push_str(v);
        Ok(())
    }

    fn boolean(&mut self, name: &str, v: bool) {
        self.name(name);
        self.out.push_str(if v { "true" } else { "false" });
    }

    fn nc(&mut self, v: u32) {
        self.name("nc");
        self.out.push_str(&format!("{v:08x}"));
    }

    /// A parameter taken from a validated [`AuthParams`], written as it was.
    fn raw(&mut self, name: &str, v: &str) {
        self.name(name);
        self.out.push_str(v);
    }

    fn finish(self, need_one: bool) -> Result<String, ParseError> {
        if need_one && self.count == 0 {
            return Err(bad(0, "at least one parameter is required"));
        }
        Ok(self.out)
    }
}

fn check_token(s: &str, detail: &'static str) -> Result<(), ParseError> {
    if is_token(s) {
        Ok(())
    } else {
        Err(bad(0, detail))
    }
}

/// Prints a non-Digest value: scheme, then its token68 or parameters.
fn print_other(
    scheme: &str,
    token68: Option<&str>,
    params: AuthParams<'_>,
) -> Result<String, ParseError> {
    let mut w = ParamWriter::new(Some(scheme))?;
    if let Some(t) = token68 {
        let body = t.trim_end_matches('=');
        if body.is_empty() || !body.bytes().all(is_token68_char) || t.len() > MAX_TOKEN68 {
            return Err(bad(0, "malformed token68"));
        }
        w.out.push(' ');
        w.out.push_str(t);
        return Ok(w.out);
    }
    for (n, v) in params.iter() {
        w.raw(n, v);
    }
    w.finish(false)
}

const CHALLENGE_PARAMS: [&str; 8] = [
    "realm",
    "domain",
    "nonce",
    "opaque",
    "stale",
    "algorithm",
    "qop",
    "userhash",
];

const CREDENTIALS_PARAMS: [&str; 11] = [
    "username",
    "realm",
    "nonce",
    "uri",
    "response",
    "algorithm",
    "cnonce",
    "opaque",
    "qop",
    "nc",
    "userhash",
];

const AUTH_INFO_PARAMS: [&str; 5] = ["nextnonce", "qop", "rspauth", "cnonce", "nc"];

fn is_known(known: &[&str], name: &str) -> bool {
    known.iter().any(|k| k.eq_ignore_ascii_case(name))
}

/// A WWW-Authenticate or Proxy-Authenticate value. For Digest the fields hold the parameters,
/// unquoted; for other schemes only `scheme`, `token68` and `params` are used. Build one with
/// [`Challenge::digest`] and struct update syntax, print it with
/// [`Challenge::to_header_value`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Challenge<'a> {
    /// The auth-scheme as written (`Digest`, or any other token).
    pub scheme: &'a str,
    /// `realm`.
    pub realm: Option<Cow<'a, str>>,
    /// `domain`: URIs separated by spaces (see [`Challenge::domain_uris`]).
    pub domain: Option<Cow<'a, str>>,
    /// `nonce`.
    pub nonce: Option<Cow<'a, str>>,
    /// `opaque`.
    pub opaque: Option<Cow<'a, str>>,
    /// `stale`.
    pub stale: Option<bool>,
    /// `algorithm` as written: `MD5`, `MD5-sess`, `SHA-256`, `SHA-256-sess`, `SHA-512-256`,
    /// `SHA-512-256-sess` or another token. Absent means MD5 (RFC 3261 §22.4).
    pub algorithm: Option<&'a str>,
    /// `qop` options: the comma-separated list inside the quotes (`auth,auth-int`).
    pub qop_options: Option<&'a str>,
    /// `userhash` (RFC 7616 §3.3).
    pub userhash: Option<bool>,
    /// A token68 in place of parameters (schemes other than Digest only).
    pub token68: Option<&'a str>,
    /// Every parameter as written, for a parsed value; extension parameters to print for a
    /// built one. Digest parameters known above are printed from their fields, not from here.
    pub params: AuthParams<'a>,
}

impl<'a> Challenge<'a> {
    /// An empty Digest challenge to fill in.
    pub fn digest() -> Self {
        Challenge {
            scheme: "Digest",
            ..Challenge::default()
        }
    }

    /// True for the Digest scheme (case-insensitive).
    pub fn is_digest(&self) -> bool {
        self.scheme.eq_ignore_ascii_case("Digest")
    }

    /// The qop values offered (`auth`, `auth-int`, …).
    pub fn qop_values(&self) -> impl Iterator<Item = &'a str> + use<'a> {
        self.qop_options
            .unwrap_or("")
            .split(',')
            .map(trim_lws)
            .filter(|q| !q.is_empty())
    }

    /// True when `qop` (case-insensitive) is among the offered values.
    pub fn offers_qop(&self, qop: &str) -> bool {
        self.qop_values().any(|q| q.eq_ignore_ascii_case(qop))
    }

    /// The URIs of the `domain` parameter.
    pub fn domain_uris(&self) -> impl Iterator<Item = &str> {
        self.domain
            .as_deref()
            .unwrap_or("")
            .split(|c: char| c.is_ascii() && is_lws(c as u8))
            .filter(|u| !u.is_empty())
    }

    /// Parameters other than the Digest ones with fields (all of them for other schemes).
    pub fn other_params(&self) -> impl Iterator<Item = (&'a str, &'a str)> + use<'a> {
        let digest = self.is_digest();
        self.params
            .iter()
            .filter(move |(n, _)| !digest || !is_known(&CHALLENGE_PARAMS, n))
    }

    /// Parses one challenge (RFC 3261 `challenge`).
    pub fn parse(value: &'a str) -> Result<Self, ParseError> {
        let mut c = Cursor::new(value);
        c.skip_lws();
        let scheme = c.token("missing auth-scheme")?;
        let mut ch = Challenge {
            scheme,
            ..Challenge::default()
        };
        if !ch.is_digest() {
            (ch.token68, ch.params) = parse_other(&mut c)?;
            return Ok(ch);
        }
        if !after_scheme(&mut c)? {
            return Err(c.err("Digest challenge without parameters"));
        }
        let mut seen = Seen::new();
        let params = parse_param_list(&mut c, |name, v, off| {
            seen.add(name, off)?;
            match name.to_ascii_lowercase().as_str() {
                "realm" => ch.realm = Some(quoted(v, off, "realm must be quoted")?),
                "domain" => ch.domain = Some(quoted(v, off, "domain must be quoted")?),
                "nonce" => ch.nonce = Some(quoted(v, off, "nonce must be quoted")?),
                "opaque" => ch.opaque = Some(quoted(v, off, "opaque must be quoted")?),
                "stale" => ch.stale = Some(boolean(v, off, "stale must be true or false")?),
                "algorithm" => {
                    ch.algorithm = Some(token_maybe_quoted(v, off, "algorithm must be a token")?)
                }
                "qop" => ch.qop_options = Some(qop_options(v, off)?),
                "userhash" => {
                    ch.userhash = Some(boolean(v, off, "userhash must be true or false")?)
                }
                _ => {}
            }
            Ok(())
        })?;
        ch.params = params;
        Ok(ch)
    }

    /// The header value text. Fails when a field cannot be written (a CR or LF in a quoted
    /// value, a non-token algorithm or scheme, a Digest challenge without parameters).
    pub fn to_header_value(&self) -> Result<String, ParseError> {
        if !self.is_digest() {
            return print_other(self.scheme, self.token68, self.params);
        }
        let mut w = ParamWriter::new(Some(self.scheme))?;
        if let Some(v) = &self.realm {
            w.quoted("realm", v)?;
        }
        if let Some(v) = &self.domain {
            w.quoted("domain", v)?;
        }
        if let Some(v) = &self.nonce {
            w.quoted("nonce", v)?;
        }
        if let Some(v) = &self.opaque {
            w.quoted("opaque", v)?;
        }
        if let Some(v) = self.stale {
            w.boolean("stale", v);
        }
        if let Some(v) = self.algorithm {
            w.token("algorithm", v)?;
        }
        if let Some(v) = self.qop_options {
            // Rebuilt from the values so LWS (even folding) inside the list is not copied.
            let list = qop_options(v, 0)?
                .split(',')
                .map(trim_lws)
                .collect::<Vec<_>>()
                .join(",");
            w.quoted("qop", &list)?;
        }
        if let Some(v) = self.userhash {
            w.boolean("userhash", v);
        }
        for (n, v) in self.other_params() {
            w.raw(n, v);
        }
        w.finish(true)
    }
}

/// An Authorization or Proxy-Authorization value. For Digest the fields hold the parameters,
/// unquoted; for other schemes only `scheme`, `token68` and `params` are used.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Credentials<'a> {
    /// The auth-scheme as written.
    pub scheme: &'a str,
    /// `username` (or the userhash when `userhash` is true, RFC 7616 §3.4.4).
    pub username: Option<Cow<'a, str>>,
    /// `realm`.
    pub realm: Option<Cow<'a, str>>,
    /// `nonce`.
    pub nonce: Option<Cow<'a, str>>,
    /// `uri`: the digest-uri, which RFC 8760 §2.6 makes the Request-URI.
    pub uri: Option<Cow<'a, str>>,
    /// `response`: the request-digest in lowercase hex, without quotes.
    pub response: Option<&'a str>,
    /// `algorithm` as written.
    pub algorithm: Option<&'a str>,
    /// `cnonce`.
    pub cnonce: Option<Cow<'a, str>>,
    /// `opaque`.
    pub opaque: Option<Cow<'a, str>>,
    /// `qop` (`auth`, `auth-int`, or another token).
    pub qop: Option<&'a str>,
    /// `nc`, the nonce count.
    pub nc: Option<u32>,
    /// `userhash` (RFC 7616 §3.4.4).
    pub userhash: Option<bool>,
    /// A token68 in place of parameters (schemes other than Digest only).
    pub token68: Option<&'a str>,
    /// Every parameter as written, for a parsed value; extension parameters to print for a
    /// built one.
    pub params: AuthParams<'a>,
}

impl<'a> Credentials<'a> {
    /// Empty Digest credentials to fill in.
    pub fn digest() -> Self {
        Credentials {
            scheme: "Digest",
            ..Credentials::default()
        }
    }

    /// True for the Digest scheme (case-insensitive).
    pub fn is_digest(&self) -> bool {
        self.scheme.eq_ignore_ascii_case("Digest")
    }

    /// Parameters other than the Digest ones with fields (all of them for other schemes).
    pub fn other_params(&self) -> impl Iterator<Item = (&'a str, &'a str)> + use<'a> {
        let digest = self.is_digest();
        self.params
            .iter()
            .filter(move |(n, _)| !digest || !is_known(&CREDENTIALS_PARAMS, n))
    }

    /// Parses one credentials value (RFC 3261 `credentials`).
    pub fn parse(value: &'a str) -> Result<Self, ParseError> {
        let mut c = Cursor::new(value);
        c.skip_lws();
        let scheme = c.token("missing auth-scheme")?;
        let mut cr = Credentials {
            scheme,
            ..Credentials::default()
        };
        if !cr.is_digest() {
            (cr.token68, cr.params) = parse_other(&mut c)?;
            return Ok(cr);
        }
        if !after_scheme(&mut c)? {
            return Err(c.err("Digest credentials without parameters"));
        }
        let mut seen = Seen::new();
        let params = parse_param_list(&mut c, |name, v, off| {
            seen.add(name, off)?;
            match name.to_ascii_lowercase().as_str() {
                "username" => cr.username = Some(quoted(v, off, "username must be quoted")?),
                "realm" => cr.realm = Some(quoted(v, off, "realm must be quoted")?),
                "nonce" => cr.nonce = Some(quoted(v, off, "nonce must be quoted")?),
                // RFC 8760 §2.6: the uri parameter MUST be quoted.
                "uri" => cr.uri = Some(quoted(v, off, "uri must be quoted")?),
                "response" => {
                    cr.response = Some(quoted_lhex(
                        v,
                        off,
                        "response must be quoted lowercase hex",
                    )?)
                }
                "algorithm" => {
                    cr.algorithm = Some(token_maybe_quoted(v, off, "algorithm must be a token")?)
                }
                "cnonce" => cr.cnonce = Some(quoted(v, off, "cnonce must be quoted")?),
                "opaque" => cr.opaque = Some(quoted(v, off, "opaque must be quoted")?),
                "qop" => cr.qop = Some(token_maybe_quoted(v, off, "qop must be a token")?),
                "nc" => cr.nc = Some(nonce_count(v, off)?),
                "userhash" => {
                    cr.userhash = Some(boolean(v, off, "userhash must be true or false")?)
                }
                _ => {}
            }
            Ok(())
        })?;
        cr.params = params;
        Ok(cr)
    }

    /// The header value text. Fails when a field cannot be written (a CR or LF in a quoted
    /// value, a non-token scheme/algorithm/qop, a response that is not lowercase hex, Digest
    /// credentials without parameters).
    pub fn to_header_value(&self) -> Result<String, ParseError> {
        if !self.is_digest() {
            return print_other(self.scheme, self.token68, self.params);
        }
        let mut w = ParamWriter::new(Some(self.scheme))?;
        if let Some(v) = &self.username {
            w.quoted("username", v)?;
        }
        if let Some(v) = &self.realm {
            w.quoted("realm", v)?;
        }
        if let Some(v) = &self.nonce {
            w.quoted("nonce", v)?;
        }
        if let Some(v) = &self.uri {
            w.quoted("uri", v)?;
        }
        if let Some(v) = self.response {
            w.lhex("response", v)?;
        }
        if let Some(v) = self.algorithm {
            w.token("algorithm", v)?;
        }
        if let Some(v) = &self.cnonce {
            w.quoted("cnonce", v)?;
        }
        if let Some(v) = &self.opaque {
            w.quoted("opaque", v)?;
        }
        if let Some(v) = self.qop {
            w.token("qop", v)?;
        }
        if let Some(v) = self.nc {
            w.nc(v);
        }
        if let Some(v) = self.userhash {
            w.boolean("userhash", v);
        }
        for (n, v) in self.other_params() {
            w.raw(n, v);
        }
        w.finish(true)
    }
}

/// An Authentication-Info value (RFC 3261 §20.6, RFC 7616 §3.5), also the value of one
/// Proxy-Authentication-Info line (see [`ProxyAuthenticationInfo`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthenticationInfo<'a> {
    /// `nextnonce`: the nonce to use for the next request.
    pub nextnonce: Option<Cow<'a, str>>,
    /// `qop`.
    pub qop: Option<&'a str>,
    /// `rspauth`: the response digest in lowercase hex, without quotes.
    pub rspauth: Option<&'a str>,
    /// `cnonce`.
    pub cnonce: Option<Cow<'a, str>>,
    /// `nc`.
    pub nc: Option<u32>,
    /// Every parameter as written, for a parsed value; extension parameters to print for a
    /// built one.
    pub params: AuthParams<'a>,
}

/// One Proxy-Authentication-Info value (draft-dotson-sip-mutual-auth-02 §8): the same
/// parameters as Authentication-Info.
pub type ProxyAuthenticationInfo<'a> = AuthenticationInfo<'a>;

impl<'a> AuthenticationInfo<'a> {
    /// Parameters other than the five with fields.
    pub fn other_params(&self) -> impl Iterator<Item = (&'a str, &'a str)> + use<'a> {
        self.params
            .iter()
            .filter(|(n, _)| !is_known(&AUTH_INFO_PARAMS, n))
    }

    /// Parses `ainfo *(COMMA ainfo)` (or `painfo *(COMMA painfo)`): one value.
    pub fn parse(value: &'a str) -> Result<Self, ParseError> {
        let mut c = Cursor::new(value);
        c.skip_lws();
        if c.at_end() {
            return Err(c.err("empty authentication info"));
        }
        let mut ai = AuthenticationInfo::default();
        let mut seen = Seen::new();
        let params = parse_param_list(&mut c, |name, v, off| {
            seen.add(name, off)?;
            match name.to_ascii_lowercase().as_str() {
                "nextnonce" => ai.nextnonce = Some(quoted(v, off, "nextnonce must be quoted")?),
                "qop" => ai.qop = Some(token_maybe_quoted(v, off, "qop must be a token")?),
                "rspauth" => {
                    ai.rspauth = Some(quoted_lhex(v, off, "rspauth must be quoted lowercase hex")?)
                }
                "cnonce" => ai.cnonce = Some(quoted(v, off, "cnonce must be quoted")?),
                "nc" => ai.nc = Some(nonce_count(v, off)?),
                _ => {}
            }
            Ok(())
        })?;
        ai.params = params;
        Ok(ai)
    }

    /// The header value text. Fails when a field cannot be written or none is set.
    pub fn to_header_value(&self) -> Result<String, ParseError> {
        let mut w = ParamWriter::new(None)?;
        if let Some(v) = &self.nextnonce {
            w.quoted("nextnonce", v)?;
        }
        if let Some(v) = self.qop {
            w.token("qop", v)?;
        }
        if let Some(v) = self.rspauth {
            w.lhex("rspauth", v)?;
        }
        if let Some(v) = &self.cnonce {
            w.quoted("cnonce", v)?;
        }
        if let Some(v) = self.nc {
            w.nc(v);
        }
        for (n, v) in self.other_params() {
            w.raw(n, v);
        }
        w.finish(true)
    }
}

/// Reads every value of one Proxy-Authentication-Info header line. The draft's grammar gives
/// a line exactly one value (its commas separate parameters), so `each` is called once; the
/// values of several proxies are several lines, in the order the message carries them.
pub fn parse_proxy_authentication_info<'a>(
    value: &'a str,
    mut each: impl FnMut(ProxyAuthenticationInfo<'a>),
) -> Result<(), ParseError> {
    each(AuthenticationInfo::parse(value)?);
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const RFC2617_CHALLENGE: &str = "Digest\r\n        realm=\"testrealm@host.com\",\r\n        qop=\"auth,auth-int\",\r\n        nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\",\r\n        opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"";

    const RFC2617_CREDENTIALS: &str = "Digest username=\"Mufasa\",\r\n        realm=\"testrealm@host.com\",\r\n        nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\",\r\n        uri=\"/dir/index.html\",\r\n        qop=auth,\r\n        nc=00000001,\r\n        cnonce=\"0a4f113b\",\r\n        response=\"6629fae49393a05397450978507c4ef1\",\r\n        opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"";

    /// Every prefix of `s` must parse or fail, never panic.
    fn no_panic_on_prefixes(s: &str, parse: impl Fn(&str) -> Result<(), ParseError>) {
        for i in 0..=s.len() {
            if s.is_char_boundary(i) {
                let _ = parse(&s[..i]);
            }
        }
    }

    #[test]
    fn reads_folded_rfc2617_challenge() {
        let ch = Challenge::parse(RFC2617_CHALLENGE).unwrap();
        assert!(ch.is_digest());
        assert_eq!(ch.realm.as_deref(), Some("testrealm@host.com"));
        assert_eq!(
            ch.nonce.as_deref(),
            Some("dcd98b7102dd2f0e8b11d0f600bfb0c093")
        );
        assert_eq!(
            ch.opaque.as_deref(),
            Some("5ccc069c403ebaf9f0171e9517f40e41")
        );
        assert_eq!(ch.qop_values().collect::<Vec<_>>(), ["auth", "auth-int"]);
        assert!(ch.offers_qop("AUTH-INT"));
        assert_eq!(ch.stale, None);
        assert_eq!(ch.algorithm, None);
        assert_eq!(ch.other_params().count(), 0);
    }

    #[test]
    fn reads_rfc7616_challenge_with_sha512_256_charset_and_userhash() {
        let v = "Digest\r\n realm=\"api@example.org\",\r\n qop=\"auth, auth-int\",\r\n algorithm=SHA-512-256,\r\n nonce=\"5TsQWLVdgBdmrQ0XsxbDODV+57QdFR34I9HAbC/RVvkK\",\r\n opaque=\"HRPCssKJSGjCrkzDg8OhwpzCiGPChXYjwrI2QmXDnsOS\",\r\n charset=UTF-8,\r\n userhash=true";
        let ch = Challenge::parse(v).unwrap();
        assert_eq!(ch.algorithm, Some("SHA-512-256"));
        assert_eq!(ch.userhash, Some(true));
        assert_eq!(ch.qop_values().collect::<Vec<_>>(), ["auth", "auth-int"]);
        assert_eq!(
            ch.other_params().collect::<Vec<_>>(),
            [("charset", "UTF-8")]
        );
        assert_eq!(ch.params.get("CHARSET"), Some("UTF-8"));
    }

    #[test]
    fn reads_stale_domain_and_every_rfc8760_algorithm() {
        for alg in [
            "MD5",
            "MD5-sess",
            "SHA-256",
            "SHA-256-sess",
            "SHA-512-256",
            "SHA-512-256-sess",
        ] {
            let v = format!(
                "digest realm=\"r\", domain=\"sip:a.example.com /x\", nonce=\"n\", stale=TRUE, algorithm={alg}"
            );
            let ch = Challenge::parse(&v).unwrap();
            assert_eq!(ch.algorithm, Some(alg));
            assert_eq!(ch.stale, Some(true));
            assert_eq!(
                ch.domain_uris().collect::<Vec<_>>(),
                ["sip:a.example.com", "/x"]
            );
        }
    }

    #[test]
    fn reads_rfc2617_credentials() {
        let cr = Credentials::parse(RFC2617_CREDENTIALS).unwrap();
        assert_eq!(cr.username.as_deref(), Some("Mufasa"));
        assert_eq!(cr.realm.as_deref(), Some("testrealm@host.com"));
        assert_eq!(cr.uri.as_deref(), Some("/dir/index.html"));
        assert_eq!(cr.qop, Some("auth"));
        assert_eq!(cr.nc, Some(1));
        assert_eq!(cr.cnonce.as_deref(), Some("0a4f113b"));
        assert_eq!(cr.response, Some("6629fae49393a05397450978507c4ef1"));
        assert_eq!(
            cr.opaque.as_deref(),
            Some("5ccc069c403ebaf9f0171e9517f40e41")
        );
        assert_eq!(cr.algorithm, None);
    }

    #[test]
    fn reads_sha256_response_longer_than_32_hex_digits() {
        let v = "Digest username=\"Mufasa\", realm=\"http-auth@example.org\", uri=\"/dir/index.html\", algorithm=SHA-256, nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", nc=00000001, cnonce=\"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ\", qop=auth, response=\"753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1\", opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"";
        let cr = Credentials::parse(v).unwrap();
        assert_eq!(cr.algorithm, Some("SHA-256"));
        assert_eq!(cr.response.map(str::len), Some(64));
    }

    #[test]
    fn keeps_rfc7616_username_star_and_userhash_as_given() {
        let v = "Digest username*=UTF-8''J%C3%A4s%C3%B8n%20Doe, realm=\"api@example.org\", uri=\"/doe.json\", nc=0000000a, userhash=false";
        let cr = Credentials::parse(v).unwrap();
        assert_eq!(cr.username, None);
        assert_eq!(cr.userhash, Some(false));
        assert_eq!(cr.nc, Some(10));
        assert_eq!(
            cr.other_params().collect::<Vec<_>>(),
            [("username*", "UTF-8''J%C3%A4s%C3%B8n%20Doe")]
        );
    }

    #[test]
    fn accepts_quoted_algorithm_and_qop_from_lenient_clients() {
        let cr =
            Credentials::parse("Digest username=\"a\", qop=\"auth\", algorithm=\"MD5\"").unwrap();
        assert_eq!(cr.qop, Some("auth"));
        assert_eq!(cr.algorithm, Some("MD5"));
    }

    #[test]
    fn unescapes_quoted_pairs_in_username() {
        let cr = Credentials::parse(r#"Digest username="Jo \"Q\" \\ Public", realm="r""#).unwrap();
        assert_eq!(cr.username.as_deref(), Some(r#"Jo "Q" \ Public"#));
    }

    #[test]
    fn other_scheme_keeps_raw_params_rfc4475_3_3_7() {
        let cr = Credentials::parse("NoOneKnowsThisScheme opaque-data=here").unwrap();
        assert!(!cr.is_digest());
        assert_eq!(cr.scheme, "NoOneKnowsThisScheme");
        assert_eq!(cr.token68, None);
        assert_eq!(
            cr.other_params().collect::<Vec<_>>(),
            [("opaque-data", "here")]
        );
        // A Digest-looking name under another scheme is not interpreted.
        let cr = Credentials::parse("Basic realm=\"x\", realm=\"y\"").unwrap();
        assert_eq!(cr.realm, None);
        assert_eq!(cr.other_params().count(), 2);
    }

    #[test]
    fn other_scheme_token68_and_bare_scheme() {
        let cr = Credentials::parse("Bearer eyJhbGciOi.JIUzI1NiJ9-_~+/==").unwrap();
        assert_eq!(cr.token68, Some("eyJhbGciOi.JIUzI1NiJ9-_~+/=="));
        assert!(cr.params.is_empty());
        let ch = Challenge::parse("Negotiate").unwrap();
        assert_eq!(ch.scheme, "Negotiate");
        assert!(ch.params.is_empty() && ch.token68.is_none());
        let long = format!("Bearer {}", "a".repeat(MAX_TOKEN68 + 1));
        assert!(Credentials::parse(&long).is_err());
    }

    #[test]
    fn refuses_unquoted_or_malformed_digest_fields() {
        for v in [
            "Digest realm=testrealm",
            "Digest nonce=abc",
            "Digest stale=maybe",
            "Digest stale=\"true\"",
            "Digest qop=\"auth,,auth-int\"",
            "Digest algorithm=\"SHA 256\"",
            "Digest userhash=yes",
        ] {
            assert!(Challenge::parse(v).is_err(), "{v}");
        }
        for v in [
            "Digest username=Mufasa",
            "Digest uri=/dir/index.html",
            "Digest nc=0000001",
            "Digest nc=000000001",
            "Digest nc=0000000A",
            "Digest nc=\"00000001\"",
            "Digest nc=0000000g",
            "Digest response=6629fae49393a05397450978507c4ef1",
            "Digest response=\"6629FAE49393A05397450978507C4EF1\"",
            "Digest response=\"753927fa0e85d155564e2e272a28d1802ca10daf449\r\n 6794697cf8db5856cb6c1\"",
        ] {
            assert!(Credentials::parse(v).is_err(), "{v}");
        }
    }

    #[test]
    fn refuses_broken_lists() {
        for v in [
            "",
            "Digest",
            "Digest ",
            "Digestrealm=\"x\"",
            "Digest realm=\"x\",",
            "Digest realm=\"x\",, nonce=\"y\"",
            "Digest , realm=\"x\"",
            "Digest realm=\"x\" nonce=\"y\"",
            "Digest realm=",
            "Digest realm",
            "Digest realm=\"unterminated",
            "Digest realm=\"x\", REALM=\"y\"",
            "Foo ,,",
            "Foo a=b c",
            "Foo a=b,",
        ] {
            assert!(Challenge::parse(v).is_err(), "{v:?}");
        }
    }

    #[test]
    fn enforces_param_count_and_value_length_limits() {
        let many = (0..MAX_AUTH_PARAMS)
            .map(|i| format!("p{i}=v"))
            .collect::<Vec<_>>()
            .join(", ");
        assert!(Challenge::parse(&format!("Digest {many}")).is_ok());
        assert!(Challenge::parse(&format!("Digest {many}, extra=1")).is_err());
        let ok = format!("Digest nonce=\"{}\"", "n".repeat(MAX_AUTH_PARAM_VALUE - 2));
        assert!(Challenge::parse(&ok).is_ok());
        let long = format!("Digest nonce=\"{}\"", "n".repeat(MAX_AUTH_PARAM_VALUE - 1));
        let e = Challenge::parse(&long).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadHeaderValue);
        assert_eq!(e.offset(), 13);
    }

    #[test]
    fn challenge_round_trips() {
        let ch = Challenge {
            realm: Some("atlanta.example.com".into()),
            domain: Some("sip:ss1.example.com sip:ss2.example.com".into()),
            nonce: Some("ea9c8e88df84f1cec4341ae6cbe5a359".into()),
            opaque: Some("".into()),
            stale: Some(false),
            algorithm: Some("SHA-256"),
            qop_options: Some("auth,auth-int"),
            userhash: Some(true),
            params: AuthParams::parse("charset=UTF-8").unwrap(),
            ..Challenge::digest()
        };
        let text = ch.to_header_value().unwrap();
        assert_eq!(
            text,
            "Digest realm=\"atlanta.example.com\", domain=\"sip:ss1.example.com sip:ss2.example.com\", nonce=\"ea9c8e88df84f1cec4341ae6cbe5a359\", opaque=\"\", stale=false, algorithm=SHA-256, qop=\"auth,auth-int\", userhash=true, charset=UTF-8"
        );
        let back = Challenge::parse(&text).unwrap();
        assert_eq!(
            Challenge {
                params: ch.params,
                ..back.clone()
            },
            ch
        );
        assert_eq!(back.params.get("charset"), Some("UTF-8"));
        // Parsed, printed and parsed again gives the same fields.
        let p = Challenge::parse(RFC2617_CHALLENGE).unwrap();
        let again = p.to_header_value().unwrap();
        let reparsed = Challenge::parse(&again).unwrap();
        assert_eq!(
            Challenge {
                params: p.params,
                ..reparsed
            },
            p
        );
    }

    #[test]
    fn credentials_round_trip_with_escapes() {
        let cr = Credentials {
            username: Some(r#"bob "the" \builder"#.into()),
            realm: Some("biloxi.com".into()),
            nonce: Some("dcd98b7102dd2f0e8b11d0f600bfb0c093".into()),
            uri: Some("sip:bob@biloxi.com".into()),
            response: Some("245f23415f11432b3434341c022"),
            algorithm: Some("MD5"),
            cnonce: Some("0a4f113b".into()),
            opaque: Some("5ccc069c403ebaf9f0171e9517f40e41".into()),
            qop: Some("auth-int"),
            nc: Some(0xdeadbeef),
            userhash: Some(false),
            ..Credentials::digest()
        };
        let text = cr.to_header_value().unwrap();
        assert!(text.contains("nc=deadbeef"));
        assert!(text.contains("qop=auth-int,"));
        assert!(text.contains("algorithm=MD5,"));
        assert!(text.contains(r#"username="bob \"the\" \\builder""#));
        let back = Credentials::parse(&text).unwrap();
        assert_eq!(
            Credentials {
                params: cr.params,
                ..back
            },
            cr
        );

        let other = Credentials::parse("NoOneKnowsThisScheme opaque-data=here, x=\"y z\"").unwrap();
        assert_eq!(
            other.to_header_value().unwrap(),
            "NoOneKnowsThisScheme opaque-data=here, x=\"y z\""
        );
        let bearer = Credentials {
            scheme: "Bearer",
            token68: Some("abc.def=="),
            ..Credentials::default()
        };
        assert_eq!(bearer.to_header_value().unwrap(), "Bearer abc.def==");
    }

    #[test]
    fn printing_refuses_header_injection_and_bad_tokens() {
        let ch = Challenge {
            realm: Some("evil\r\nVia: x".into()),
            ..Challenge::digest()
        };
        assert!(ch.to_header_value().is_err());
        let ch = Challenge {
            algorithm: Some("MD5, qop=auth"),
            ..Challenge::digest()
        };
        assert!(ch.to_header_value().is_err());
        assert!(Challenge::digest().to_header_value().is_err());
        let cr = Credentials {
            response: Some("XYZ"),
            ..Credentials::digest()
        };
        assert!(cr.to_header_value().is_err());
        let cr = Credentials {
            scheme: "Bad Scheme",
            ..Credentials::default()
        };
        assert!(cr.to_header_value().is_err());
        let cr = Credentials {
            scheme: "Bearer",
            token68: Some("a b"),
            ..Credentials::default()
        };
        assert!(cr.to_header_value().is_err());
    }

    #[test]
    fn authentication_info_reads_and_round_trips() {
        let ai = AuthenticationInfo::parse(
            "nextnonce=\"47364c23432d2e131a5fb210812c\", qop=auth, rspauth=\"376602cfd2f4e8e5e78b948a85263e85\",\r\n cnonce=\"0a4f113b\", nc=00000001",
        )
        .unwrap();
        assert_eq!(
            ai.nextnonce.as_deref(),
            Some("47364c23432d2e131a5fb210812c")
        );
        assert_eq!(ai.qop, Some("auth"));
        assert_eq!(ai.rspauth, Some("376602cfd2f4e8e5e78b948a85263e85"));
        assert_eq!(ai.cnonce.as_deref(), Some("0a4f113b"));
        assert_eq!(ai.nc, Some(1));
        let text = ai.to_header_value().unwrap();
        assert_eq!(
            text,
            "nextnonce=\"47364c23432d2e131a5fb210812c\", qop=auth, rspauth=\"376602cfd2f4e8e5e78b948a85263e85\", cnonce=\"0a4f113b\", nc=00000001"
        );
        let back = AuthenticationInfo::parse(&text).unwrap();
        assert_eq!(
            AuthenticationInfo {
                params: ai.params,
                ..back
            },
            ai
        );
        assert!(AuthenticationInfo::default().to_header_value().is_err());
    }

    #[test]
    fn authentication_info_keeps_extensions_and_refuses_bad_fields() {
        let ai = AuthenticationInfo::parse("rspauth=\"\", future=\"x\"").unwrap();
        assert_eq!(ai.rspauth, Some(""));
        assert_eq!(ai.other_params().collect::<Vec<_>>(), [("future", "\"x\"")]);
        for v in [
            "",
            "   ",
            "nextnonce=abc",
            "rspauth=\"ABC\"",
            "rspauth=abc",
            "nc=1",
            "cnonce=x",
            "qop=\"a b\"",
            "nextnonce=\"a\" rspauth=\"b\"",
        ] {
            assert!(AuthenticationInfo::parse(v).is_err(), "{v:?}");
        }
    }

    #[test]
    fn proxy_authentication_info_is_one_value_per_line() {
        let mut v = Vec::new();
        parse_proxy_authentication_info(
            "qop=auth, cnonce=\"0a4f113b\", nc=00000002, rspauth=\"6629fae49393a05397450978507c4ef1\"",
            |x| v.push(x),
        )
        .unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].nc, Some(2));
        // Two values merged into one line have no boundary in the grammar: refused.
        let merged = "rspauth=\"aa\", cnonce=\"x\", rspauth=\"bb\", cnonce=\"y\"";
        assert!(parse_proxy_authentication_info(merged, |_| {}).is_err());
        let mut calls = 0;
        for line in ["nextnonce=\"a\"", "nextnonce=\"b\""] {
            parse_proxy_authentication_info(line, |_| calls += 1).unwrap();
        }
        assert_eq!(calls, 2);
    }

    #[test]
    fn proxy_authentication_info_draft_example_without_closing_quote_is_refused() {
        // draft-dotson-sip-mutual-auth-02 §6, as the seed copy prints it.
        let e = AuthenticationInfo::parse("nextnonce=\"47364c23432d2e131a5fb210812c").unwrap_err();
        assert_eq!(e.detail(), "unterminated quoted string");
        let ok = AuthenticationInfo::parse("nextnonce=\"47364c23432d2e131a5fb210812c\"").unwrap();
        assert_eq!(
            ok.nextnonce.as_deref(),
            Some("47364c23432d2e131a5fb210812c")
        );
    }

    #[test]
    fn never_panics_on_truncated_or_odd_input() {
        for s in [
            RFC2617_CHALLENGE,
            RFC2617_CREDENTIALS,
            "Digest realm=\"\\\u{e9}\"",
        ] {
            no_panic_on_prefixes(s, |x| Challenge::parse(x).map(drop));
            no_panic_on_prefixes(s, |x| Credentials::parse(x).map(drop));
            no_panic_on_prefixes(s, |x| AuthenticationInfo::parse(x).map(drop));
        }
        for s in [
            "\"",
            "\\",
            "Digest a=\"\\",
            "Digest a=\"\u{7f}\"",
            "X =",
            "X a=\"é\"",
        ] {
            let _ = Challenge::parse(s);
            let _ = Credentials::parse(s);
            let _ = AuthenticationInfo::parse(s);
        }
    }
}
