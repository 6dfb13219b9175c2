//! Lexical building blocks of RFC 3261 §25.1: tokens, LWS (including folded line breaks),
//! quoted strings and generic parameters. Every typed header parser is built from these.

use crate::error::{ErrorKind, ParseError};

/// Character classes as bit flags in one table, so each hot-loop test is a load and a mask.
pub(crate) mod class {
    /// RFC 3261 `token`.
    pub const TOKEN: u16 = 1;
    /// RFC 3261 `unreserved` (alphanum / mark).
    pub const UNRESERVED: u16 = 4;
    /// Letters, digits, `-`, `.`, `_`: host names and IPv4 addresses.
    pub const HOST: u16 = 8;
    /// Hex digits, `:` and `.`: the inside of an IPv6 reference.
    pub const IPV6: u16 = 16;
    /// SIP URI `user` characters besides escapes (unreserved / user-unreserved).
    pub const USER: u16 = 32;
    /// SIP URI `password` characters besides escapes.
    pub const PASSWORD: u16 = 64;
    /// SIP URI `paramchar` besides escapes.
    pub const PARAMCHAR: u16 = 128;
    /// SIP URI `hname`/`hvalue` characters besides escapes, plus the `=` and `&` separators.
    pub const HEADER: u16 = 256;
    /// tel URI characters (RFC 3966), liberally.
    pub const TEL: u16 = 512;
    /// RFC 3986-style characters of an opaque absoluteURI.
    pub const URIC: u16 = 1024;
    /// RFC 3261 `word` (the halves of a Call-ID).
    pub const WORD: u16 = 2048;
    /// `token` and `:`: an unquoted generic-param value as this parser accepts it.
    pub const TOKEN_COLON: u16 = 4096;
    /// ASCII digits.
    pub const DIGIT: u16 = 8192;
    /// Any byte but `>` and LWS: the inside of `<…>`.
    pub const IN_ANGLE: u16 = 16384;

    const fn build() -> [u16; 256] {
        let mut t = [0u16; 256];
        let mut i = 0;
        while i < 256 {
            let c = i as u8;
            let alnum = c.is_ascii_alphanumeric();
            let mut v = 0;
            if alnum
                || matches!(
                    c,
                    b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
                )
            {
                v |= TOKEN;
            }
            if alnum
                || matches!(
                    c,
                    b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
                )
            {
                v |= UNRESERVED;
            }
            if alnum || matches!(c, b'-' | b'.' | b'_') {
                v |= HOST;
            }
            if c.is_ascii_hexdigit() || c == b':' || c == b'.' {
                v |= IPV6;
            }
            if v & TOKEN != 0
                || matches!(
                    c,
                    b'(' | b')'
                        | b'<'
                        | b'>'
                        | b':'
                        | b'\\'
                        | b'"'
                        | b'/'
                        | b'['
                        | b']'
                        | b'?'
                        | b'{'
                        | b'}'
                )
            {
                v |= WORD;
            }
            if c.is_ascii_digit() {
                v |= DIGIT;
            }
            if c != b'>' && !matches!(c, b' ' | b'\t' | b'\r' | b'\n') {
                v |= IN_ANGLE;
            }
            if v & TOKEN != 0 || c == b':' {
                v |= TOKEN_COLON;
            }
            if v & UNRESERVED != 0 {
                v |= USER | PASSWORD | PARAMCHAR | HEADER | TEL | URIC;
            }
            if matches!(c, b'&' | b'=' | b'+' | b'$' | b',' | b';' | b'?' | b'/') {
                v |= USER;
            }
            if matches!(c, b'&' | b'=' | b'+' | b'$' | b',') {
                v |= PASSWORD;
            }
            if matches!(c, b'[' | b']' | b'/' | b':' | b'&' | b'+' | b'$') {
                v |= PARAMCHAR;
            }
            if matches!(
                c,
                b'[' | b']' | b'/' | b'?' | b':' | b'+' | b'$' | b'&' | b'='
            ) {
                v |= HEADER;
            }
            if matches!(
                c,
                b'+' | b';' | b'=' | b'#' | b'/' | b':' | b'&' | b'$' | b','
            ) {
                v |= TEL;
            }
            if matches!(
                c,
                b';' | b'/'
                    | b'?'
                    | b':'
                    | b'@'
                    | b'&'
                    | b'='
                    | b'+'
                    | b'$'
                    | b','
                    | b'['
                    | b']'
                    | b'#'
            ) {
                v |= URIC;
            }
            t[i] = v;
            i += 1;
        }
        t
    }

    /// The table, indexed by byte.
    // A `const` rather than a `static`: each use addresses it directly instead of through the
    // global offset table of a position-independent build.
    pub const TABLE: [u16; 256] = build();

    /// True when byte `b` is in `class`.
    #[inline(always)]
    pub fn is(b: u8, class: u16) -> bool {
        TABLE[b as usize] & class != 0
    }
}

/// `&s[a..b]` for cut points next to ASCII bytes, or `""` if they are not character boundaries
/// (which the callers rule out). Indexing a `str` is an out-of-line call; this inlines to two
/// boundary tests, and it runs for every part of every value read.
#[inline(always)]
pub(crate) fn sub(s: &str, a: usize, b: usize) -> &str {
    match s.split_at_checked(b) {
        Some((head, _)) => head.split_at_checked(a).map_or("", |(_, t)| t),
        None => "",
    }
}

/// The end of the run of `class` bytes in `b` starting at `i`; four bytes per step where it
/// can, since runs (names, hosts, parameter values) are mostly longer than that.
#[inline(always)]
pub(crate) fn scan_class(b: &[u8], i: usize, class: u16) -> usize {
    let Some(rest) = b.get(i..) else {
        return i;
    };
    let mut chunks = rest.chunks_exact(4);
    let mut k = i;
    for w in &mut chunks {
        if !class::is(w[0], class) {
            return k;
        }
        if !class::is(w[1], class) {
            return k + 1;
        }
        if !class::is(w[2], class) {
            return k + 2;
        }
        if !class::is(w[3], class) {
            return k + 3;
        }
        k += 4;
    }
    for &c in chunks.remainder() {
        if !class::is(c, class) {
            return k;
        }
        k += 1;
    }
    k
}

/// RFC 3261 `token` character.
#[inline(always)]
pub(crate) fn is_token_char(b: u8) -> bool {
    class::is(b, class::TOKEN)
}

/// LWS as it can appear inside a header value: SP, HTAB, and the CR LF of a folded line.
#[inline(always)]
pub(crate) fn is_lws(b: u8) -> bool {
    // Compares rather than a table load: LWS is mostly tested one byte at a time, where the
    // comparisons compile to a bit test.
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Trims LWS from both ends.
pub(crate) fn trim_lws(s: &str) -> &str {
    // LWS bytes are ASCII, so cutting next to them is cutting on character boundaries.
    let b = s.as_bytes();
    let mut start = 0;
    while start < b.len() && is_lws(b[start]) {
        start += 1;
    }
    let mut end = b.len();
    while end > start && is_lws(b[end - 1]) {
        end -= 1;
    }
    s.get(start..end).unwrap_or_default()
}

/// A read position in one header value. Offsets in errors are relative to the value.
#[derive(Debug, Clone)]
pub(crate) struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(s: &'a str) -> Self {
        Cursor { s, pos: 0 }
    }

    /// The whole text the cursor reads.
    pub(crate) fn text(&self) -> &'a str {
        self.s
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn set_pos(&mut self, pos: usize) {
        self.pos = pos;
    }

    pub(crate) fn rest(&self) -> &'a str {
        sub(self.s, self.pos, self.s.len())
    }

    pub(crate) fn slice(&self, from: usize, to: usize) -> &'a str {
        sub(self.s, from, to)
    }

    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }

    #[inline]
    pub(crate) fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    #[cold]
    pub(crate) fn err(&self, detail: &'static str) -> ParseError {
        ParseError::new(ErrorKind::BadHeaderValue, self.pos, detail)
    }

    #[inline]
    pub(crate) fn skip_lws(&mut self) {
        let b = self.s.as_bytes();
        let mut i = self.pos;
        while i < b.len() && is_lws(b[i]) {
            i += 1;
        }
        self.pos = i;
    }

    /// Consumes `c` if it is next; does not skip whitespace.
    #[inline]
    pub(crate) fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Skips LWS, then consumes `c` if it is next (SWS c SWS style separators), also skipping
    /// LWS after it. On a miss the position is left after the leading LWS.
    pub(crate) fn eat_sep(&mut self, c: u8) -> bool {
        let save = self.pos;
        self.skip_lws();
        if self.eat(c) {
            self.skip_lws();
            true
        } else {
            self.pos = save;
            false
        }
    }

    pub(crate) fn expect_sep(&mut self, c: u8, detail: &'static str) -> Result<(), ParseError> {
        if self.eat_sep(c) {
            Ok(())
        } else {
            Err(self.err(detail))
        }
    }

    /// Consumes bytes while `f` holds and returns them (possibly empty).
    #[inline]
    pub(crate) fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a str {
        // A local index keeps the loop in registers.
        let b = self.s.as_bytes();
        let start = self.pos;
        let mut i = start;
        while i < b.len() && f(b[i]) {
            i += 1;
        }
        self.pos = i;
        // Only ASCII predicates are used, so the cut is on a char boundary.
        sub(self.s, start, i)
    }

    /// A non-empty RFC 3261 token.
    pub(crate) fn token(&mut self, detail: &'static str) -> Result<&'a str, ParseError> {
        let t = self.take_while(is_token_char);
        if t.is_empty() {
            Err(self.err(detail))
        } else {
            Ok(t)
        }
    }

    /// A quoted-string starting at the cursor (which must be on `"`); returns it with its quotes.
    pub(crate) fn quoted_string(&mut self) -> Result<&'a str, ParseError> {
        let b = self.s.as_bytes();
        let start = self.pos;
        if !self.eat(b'"') {
            return Err(self.err("expected quoted string"));
        }
        while self.pos < b.len() {
            match b[self.pos] {
                b'"' => {
                    self.pos += 1;
                    return Ok(sub(self.s, start, self.pos));
                }
                b'\\' => {
                    // quoted-pair = "\" (%x00-09 / %x0B-0C / %x0E-7F)
                    match b.get(self.pos + 1) {
                        Some(&n) if n != b'\r' && n != b'\n' && n < 0x80 => self.pos += 2,
                        _ => return Err(self.err("bad escape in quoted string")),
                    }
                }
                _ => self.pos += 1,
            }
        }
        self.pos = start;
        Err(self.err("unterminated quoted string"))
    }

    /// Parses `*( SEMI generic-param )` up to a byte for which `stop` is true (or the end) and
    /// returns the raw parameter section (from the first `;`). Validates every parameter.
    pub(crate) fn params(&mut self, stop: impl Fn(u8) -> bool) -> Result<Params<'a>, ParseError> {
        self.params_capturing(stop, "").map(|(p, _)| p)
    }

    /// As [`Cursor::params`], also returning the value of the first parameter named `wanted`
    /// (case-insensitive), found in the same pass (the tag of From/To, the branch of Via).
    pub(crate) fn params_capturing(
        &mut self,
        stop: impl Fn(u8) -> bool,
        wanted: &str,
    ) -> Result<(Params<'a>, Option<&'a str>), ParseError> {
        let (params, captured) = self.params_at(stop, wanted)?;
        Ok((
            Params {
                raw: params.get(self.s),
            },
            captured.map(|c| c.get(self.s)),
        ))
    }

    /// As [`Cursor::params_capturing`], with the section and the value as [`Part`]s of the text.
    pub(crate) fn params_at(
        &mut self,
        stop: impl Fn(u8) -> bool,
        wanted: &str,
    ) -> Result<(Part, Option<Part>), ParseError> {
        // Local index and byte slice keep the loop in registers; LWS is rare, so each skip is
        // one comparison in the common case.
        let b = self.s.as_bytes();
        let skip = |mut i: usize| {
            while i < b.len() && is_lws(b[i]) {
                i += 1;
            }
            i
        };
        let mut captured = None;
        let mut seen_wanted = wanted.is_empty();
        let start = self.pos;
        let mut end = self.pos;
        let mut i = self.pos;
        loop {
            let semi = skip(i);
            if b.get(semi) != Some(&b';') {
                break;
            }
            let name_start = skip(semi + 1);
            let mut j = scan_class(b, name_start, class::TOKEN);
            if j == name_start {
                self.pos = name_start;
                return Err(self.err("empty parameter name"));
            }
            let name = &b[name_start..j];
            let this_one = !seen_wanted
                && name.len() == wanted.len()
                && name.eq_ignore_ascii_case(wanted.as_bytes());
            seen_wanted |= this_one;
            let eq = skip(j);
            if b.get(eq) == Some(&b'=') {
                let value_start = skip(eq + 1);
                let mut k = value_start;
                match b.get(k) {
                    Some(b'"') => {
                        self.pos = k;
                        self.quoted_string()?;
                        k = self.pos;
                    }
                    Some(b'[') => {
                        // IPv6 reference as a gen-value (received=[…], RFC 5118 §4.5).
                        match memchr::memchr(b']', &b[k..]) {
                            Some(close) => k += close + 1,
                            None => {
                                self.pos = b.len();
                                return Err(self.err("unterminated IPv6 reference in parameter"));
                            }
                        }
                    }
                    _ => {
                        k = scan_class(b, k, class::TOKEN_COLON);
                        if k == value_start {
                            self.pos = k;
                            return Err(self.err("empty parameter value"));
                        }
                    }
                }
                if this_one {
                    captured = Some(Part::new(value_start, k));
                }
                j = k;
            }
            end = j;
            i = j;
        }
        self.pos = i;
        if let Some(c) = self.peek_after_lws()
            && !stop(c)
        {
            return Err(self.err("unexpected character after parameters"));
        }
        Ok((Part::new(start, end), captured))
    }

    fn peek_after_lws(&self) -> Option<u8> {
        let b = self.s.as_bytes();
        let mut p = self.pos;
        while p < b.len() && is_lws(b[p]) {
            p += 1;
        }
        b.get(p).copied()
    }
}

/// A validated `*( ";" generic-param )` section, kept raw; iterate for (name, value) pairs.
/// Values are returned as written (quoted strings keep their quotes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Params<'a> {
    raw: &'a str,
}

impl<'a> Params<'a> {
    pub(crate) fn from_raw(raw: &'a str) -> Self {
        Params { raw }
    }

    /// The raw text, starting with `;` (or empty).
    pub fn as_str(&self) -> &'a str {
        self.raw
    }

    /// True when there are no parameters.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// Iterates `(name, value)`; names as written, values with LWS trimmed.
    pub fn iter(&self) -> ParamIter<'a> {
        ParamIter { rest: self.raw }
    }

    /// The value of the first parameter named `name` (case-insensitive). `Some(None)` for a
    /// parameter without value, `None` when absent.
    pub fn get(&self, name: &str) -> Option<Option<&'a str>> {
        self.iter()
            .find(|(n, _)| n.len() == name.len() && n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// True when a parameter named `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

/// Iterator over [`Params`].
#[derive(Debug, Clone)]
pub struct ParamIter<'a> {
    rest: &'a str,
}

impl<'a> Iterator for ParamIter<'a> {
    type Item = (&'a str, Option<&'a str>);

    fn next(&mut self) -> Option<Self::Item> {
        // The section was validated on construction, so one forward scan suffices; `;` inside
        // a quoted value is honoured.
        let s = self.rest;
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() && (b[i] == b';' || is_lws(b[i])) {
            i += 1;
        }
        if i == b.len() {
            self.rest = "";
            return None;
        }
        // Header parameter names are tokens, but URI parameter names (`paramchar`, RFC 3261
        // §25.1) may also hold `[ ] / : & $`: the name runs to `=`, `;` or LWS. Every call
        // consumes at least one byte, so iteration always ends.
        let name_start = i;
        while i < b.len() && !matches!(b[i], b'=' | b';') && !is_lws(b[i]) {
            i += 1;
        }
        let name = &s[name_start..i];
        while i < b.len() && is_lws(b[i]) {
            i += 1;
        }
        let mut value = None;
        if i < b.len() && b[i] == b'=' {
            i += 1;
            while i < b.len() && is_lws(b[i]) {
                i += 1;
            }
            let vstart = i;
            let mut in_quote = false;
            while i < b.len() {
                match b[i] {
                    b'\\' if in_quote => i += 1,
                    b'"' => in_quote = !in_quote,
                    b';' if !in_quote => break,
                    _ => {}
                }
                i += 1;
            }
            let mut vend = i.min(b.len());
            while vend > vstart && is_lws(b[vend - 1]) {
                vend -= 1;
            }
            value = Some(&s[vstart..vend]);
        }
        self.rest = &s[i.min(b.len())..];
        Some((name, value))
    }
}

/// Removes the quotes and backslash escapes of a quoted-string (returned as is when not quoted).
pub fn unquote(s: &str) -> std::borrow::Cow<'_, str> {
    let Some(inner) = s.strip_prefix('"').and_then(|t| t.strip_suffix('"')) else {
        return std::borrow::Cow::Borrowed(s);
    };
    if !inner.contains('\\') {
        return std::borrow::Cow::Borrowed(inner);
    }
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Splits a header value into its comma-separated elements, honouring quoted strings and
/// `<…>` (commas inside a URI in angle brackets do not split). Elements are LWS-trimmed.
pub fn split_commas(value: &str) -> impl Iterator<Item = &str> {
    let b = value.as_bytes();
    let mut start = 0;
    let mut i = 0;
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        let mut in_quote = false;
        let mut in_angle = false;
        while i < b.len() {
            match b[i] {
                b'\\' if in_quote => i += 1,
                b'"' if !in_angle => in_quote = !in_quote,
                b'<' if !in_quote => in_angle = true,
                b'>' if !in_quote => in_angle = false,
                b',' if !in_quote && !in_angle => {
                    let item = trim_lws(&value[start..i]);
                    i += 1;
                    start = i;
                    return Some(item);
                }
                _ => {}
            }
            i += 1;
        }
        done = true;
        Some(trim_lws(&value[start.min(value.len())..]))
    })
}

/// A range of some text stored as offsets instead of a `&str`. Typed values keep their parts
/// this way, relative to their own text, so they stay small and move cheaply; a parsed
/// [`crate::Message`] keeps such values relative to its header text and hands them out again by
/// re-anchoring one slice, without re-parsing. A part is sliced when an accessor asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Part {
    start: u32,
    end: u32,
}

impl Part {
    /// `start..end`; values are bounded by `Limits::max_message_size`, far below `u32::MAX`.
    #[inline]
    pub(crate) fn new(start: usize, end: usize) -> Part {
        Part {
            start: start as u32,
            end: end as u32,
        }
    }

    /// Where `sub`, a slice of `base`, lies in it (empty when it does not).
    #[inline]
    pub(crate) fn of(base: &str, sub: &str) -> Part {
        let off = (sub.as_ptr() as usize).wrapping_sub(base.as_ptr() as usize);
        if off > base.len() || sub.len() > base.len() - off {
            return Part::default();
        }
        Part::new(off, off + sub.len())
    }

    /// The part of `base` (empty if out of range, which construction rules out).
    #[inline]
    pub(crate) fn get(self, base: &str) -> &str {
        sub(base, self.start as usize, self.end as usize)
    }

    /// The byte range.
    pub(crate) fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
}
