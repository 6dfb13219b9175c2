//! Via (RFC 3261 §20.42, §18.2.1) with the RFC 3581 `rport` parameter. LWS may surround
//! the slashes of sent-protocol (RFC 4475 §3.1.1.1).
//!
//! The usual form (`SIP/2.0/`transport, host, port and plain parameters) is read in a single
//! pass; every other form, and every refusal, comes from the general reader.

use std::fmt;

use crate::error::ParseError;
use crate::name::same_name;
use crate::scan::{Cursor, Params, Part, class, is_lws, scan_class};
use crate::uri::{Host, HostPart, parse_host, parse_port, plain_host, plain_port};

/// The RFC 3261 branch magic cookie.
pub const MAGIC_COOKIE: &str = "z9hG4bK";

/// One Via value.
#[derive(Clone)]
pub struct Via<'a> {
    /// The header value the parts are offsets into.
    text: &'a str,
    p: ViaParts,
}

/// The parts of a [`Via`] as offsets into the header value (see [`Part`]).
#[derive(Debug, Clone, Copy)]
struct ViaParts {
    protocol: Part,
    version: Part,
    transport: Part,
    host: HostPart,
    host_raw: Part,
    port: Option<u16>,
    params: Part,
    /// Located while validating the parameters.
    branch: Option<Part>,
}

// Debug and equality as derived over the parts as strings, which the offsets only encode.
impl fmt::Debug for Via<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Via")
            .field("protocol", &self.protocol())
            .field("version", &self.version())
            .field("transport", &self.transport())
            .field("host", &self.host())
            .field("host_raw", &self.host_str())
            .field("port", &self.p.port)
            .field("params", &self.params())
            .field("branch", &self.branch())
            .finish()
    }
}

impl PartialEq for Via<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.protocol() == other.protocol()
            && self.version() == other.version()
            && self.transport() == other.transport()
            && self.host() == other.host()
            && self.host_str() == other.host_str()
            && self.p.port == other.p.port
            && self.params() == other.params()
            && self.branch() == other.branch()
    }
}

impl Eq for Via<'_> {}

impl<'a> Via<'a> {
    /// The protocol name (`SIP`).
    pub fn protocol(&self) -> &'a str {
        self.p.protocol.get(self.text)
    }
    /// The protocol version (`2.0`).
    pub fn version(&self) -> &'a str {
        self.p.version.get(self.text)
    }
    /// The transport as written (`UDP`, `TCP`, `TLS`, `SCTP`, `WS`, or anything else).
    pub fn transport(&self) -> &'a str {
        self.p.transport.get(self.text)
    }
    /// The sent-by host.
    pub fn host(&self) -> Host<'a> {
        self.p.host.get(self.text, self.p.host_raw)
    }
    /// The sent-by host as written.
    pub fn host_str(&self) -> &'a str {
        self.p.host_raw.get(self.text)
    }
    /// The sent-by port, if given.
    pub fn port(&self) -> Option<u16> {
        self.p.port
    }
    /// All via-params.
    pub fn params(&self) -> Params<'a> {
        Params::from_raw(self.p.params.get(self.text))
    }
    /// The `branch` parameter.
    pub fn branch(&self) -> Option<&'a str> {
        self.p.branch.map(|b| b.get(self.text))
    }
    /// True when the branch starts with the RFC 3261 magic cookie and has more after it.
    pub fn has_rfc3261_branch(&self) -> bool {
        self.branch()
            .is_some_and(|b| b.len() > MAGIC_COOKIE.len() && b.starts_with(MAGIC_COOKIE))
    }
    /// The `received` parameter (brackets of an IPv6 value, RFC 5118 §4.5, are kept).
    pub fn received(&self) -> Option<&'a str> {
        self.params().get("received").flatten()
    }
    /// RFC 3581 `rport`: `None` when absent, `Some(None)` when requested without a value,
    /// `Some(Some(port))` when filled in.
    pub fn rport(&self) -> Option<Option<u16>> {
        self.params()
            .get("rport")
            .map(|v| v.and_then(|p| p.parse().ok()))
    }

    /// Reads the usual form of a via-parm in one pass: `SIP/2.0/`transport, LWS, a domain name
    /// or IPv4 address, `:`port without LWS around the colon, and parameters without LWS whose
    /// values are tokens (colons allowed). Returns the value and where [`Via::parse_at`] would
    /// leave the cursor, or `None` for any other form, which the general reader then decides.
    fn parse_plain(s: &'a str, pos: usize) -> Option<(Self, usize)> {
        let b = s.as_bytes();
        let mut i = pos;
        while i < b.len() && is_lws(b[i]) {
            i += 1;
        }
        let sp = b.get(i..)?;
        if !sp.starts_with(b"SIP/2.0/") {
            return None;
        }
        let protocol = Part::new(i, i + 3);
        let version = Part::new(i + 4, i + 7);
        let ts = i + 8;
        let te = scan_class(b, ts, class::TOKEN);
        if te == ts || !b.get(te).copied().is_some_and(is_lws) {
            return None;
        }
        let mut hs = te + 1;
        while hs < b.len() && is_lws(b[hs]) {
            hs += 1;
        }
        let he = scan_class(b, hs, class::HOST);
        let host_raw = Part::new(hs, he);
        let host = HostPart::of(s, plain_host(host_raw.get(s))?);
        let mut i = he;
        let mut port = None;
        if b.get(i) == Some(&b':') {
            let (p, used) = plain_port(&b[i + 1..])?;
            port = Some(p);
            i += 1 + used;
        }
        let params_start = i;
        let mut branch = None;
        let mut seen_branch = false;
        while b.get(i) == Some(&b';') {
            let ns = i + 1;
            let ne = scan_class(b, ns, class::TOKEN);
            if ne == ns {
                return None;
            }
            // The first parameter named branch (any case) is the one read.
            // Parameter names are tokens, so the token comparison of header names applies.
            let this_one = !seen_branch && same_name(&b[ns..ne], b"branch");
            seen_branch |= this_one;
            i = ne;
            if b.get(i) == Some(&b'=') {
                let vs = i + 1;
                let ve = scan_class(b, vs, class::TOKEN_COLON);
                if ve == vs {
                    return None;
                }
                if this_one {
                    branch = Some(Part::new(vs, ve));
                }
                i = ve;
            }
        }
        // The general reader accepts what follows only if it is a `,` or the end after LWS.
        let mut k = i;
        while k < b.len() && is_lws(b[k]) {
            k += 1;
        }
        if k < b.len() && b[k] != b',' {
            return None;
        }
        Some((
            Via {
                text: s,
                p: ViaParts {
                    protocol,
                    version,
                    transport: Part::new(ts, te),
                    host,
                    host_raw,
                    port,
                    params: Part::new(params_start, i),
                    branch,
                },
            },
            i,
        ))
    }

    /// Parses one via-parm at the cursor.
    pub(crate) fn parse_at(c: &mut Cursor<'a>) -> Result<Self, ParseError> {
        if let Some((v, end)) = Self::parse_plain(c.text(), c.pos()) {
            c.set_pos(end);
            return Ok(v);
        }
        Self::parse_general_at(c)
    }

    /// The general reader: every form and every refusal. [`Via::parse_at`] reaches the same
    /// verdict sooner for the usual form.
    fn parse_general_at(c: &mut Cursor<'a>) -> Result<Self, ParseError> {
        c.skip_lws();
        let protocol = c.token("missing protocol name")?;
        c.expect_sep(b'/', "expected '/' in sent-protocol")?;
        let version = c.token("missing protocol version")?;
        c.expect_sep(b'/', "expected '/' in sent-protocol")?;
        let transport = c.token("missing transport")?;
        let before = c.pos();
        c.skip_lws();
        if c.pos() == before {
            return Err(c.err("expected whitespace before sent-by"));
        }
        let start = c.pos();
        let (host, host_raw, used) = parse_host(c.rest(), start)?;
        c.set_pos(start + used);
        // sent-by = host [ COLON port ] with COLON = SWS ":" SWS, so `host: 5060` and
        // `host : 5060` are as good as `host:5060`.
        let mut port = None;
        if c.eat_sep(b':') {
            let at = c.pos();
            let (p, used) = parse_port(c.rest(), at)?;
            c.set_pos(at + used);
            port = Some(p);
        }
        let (params, branch) = c.params_capturing(|b| b == b',', "branch")?;
        let text = c.text();
        let part = |x: &str| Part::of(text, x);
        Ok(Via {
            text,
            p: ViaParts {
                protocol: part(protocol),
                version: part(version),
                transport: part(transport),
                host: HostPart::of(text, host),
                host_raw: part(host_raw),
                port,
                params: part(params.as_str()),
                branch: branch.map(part),
            },
        })
    }
}

/// Parses every Via value in one header line.
pub(crate) fn parse_vias<'a>(
    value: &'a str,
    mut each: impl FnMut(Via<'a>),
) -> Result<(), ParseError> {
    let mut c = Cursor::new(value);
    loop {
        each(Via::parse_at(&mut c)?);
        c.skip_lws();
        if c.at_end() {
            return Ok(());
        }
        if !c.eat(b',') {
            return Err(c.err("expected ',' between Via values"));
        }
        if c.rest().bytes().all(is_lws) {
            return Err(c.err("empty Via value after ','"));
        }
    }
}

/// Reads every Via value of one header field, topmost first.
pub fn parse_all<'a>(value: &'a str, each: impl FnMut(Via<'a>)) -> Result<(), ParseError> {
    parse_vias(value, each)
}

/// A [`Via`] detached from its text, kept in a parsed message.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DetachedVia {
    text: Part,
    p: ViaParts,
}

impl Via<'_> {
    pub(crate) fn detach(&self, base: &str) -> DetachedVia {
        DetachedVia {
            text: Part::of(base, self.text),
            p: self.p,
        }
    }
}

impl DetachedVia {
    pub(crate) fn attach(self, base: &str) -> Via<'_> {
        Via {
            text: self.text.get(base),
            p: self.p,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vias(s: &str) -> Result<Vec<Via<'_>>, ParseError> {
        let mut v = Vec::new();
        parse_vias(s, |x| v.push(x)).map(|_| v)
    }

    #[test]
    fn reads_folded_via_with_spaces() {
        let v = vias("SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;branch=390skdjuw").unwrap();
        assert_eq!(v[0].transport(), "UDP");
        assert_eq!(v[0].branch(), Some("390skdjuw"));
        assert!(!v[0].has_rfc3261_branch());
    }

    #[test]
    fn reads_list_rport_received() {
        let v = vias("SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1;rport=5062;received=192.0.2.1 , SIP/2.0/TCP [2001:db8::9:1];rport").unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].port(), Some(5060));
        assert_eq!(v[0].rport(), Some(Some(5062)));
        assert_eq!(v[0].received(), Some("192.0.2.1"));
        assert!(v[0].has_rfc3261_branch());
        assert_eq!(v[1].rport(), Some(None));
        assert_eq!(v[1].host(), Host::V6("2001:db8::9:1"));
    }

    #[test]
    fn plain_reading_is_the_general_reading() {
        let seeds = [
            "SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds;rport",
            "SIP/2.0/TCP 192.0.2.101;received=192.0.2.1;BRANCH=z9hG4bKa;branch=x",
            "SIP/2.0/UDP host.example.com , SIP/2.0/TLS h2:5061;rport=5062",
            "SIP/2.0/WS x.invalid;branch=z9hG4bK:a:b;maddr=a.b",
        ];
        let mut plain = 0;
        for s in crate::uri::tests::mutations(&seeds, 3000) {
            plain += usize::from(Via::parse_plain(&s, 0).is_some());
            let mut fast = Cursor::new(&s);
            let mut general = Cursor::new(&s);
            let a = Via::parse_at(&mut fast);
            let b = Via::parse_general_at(&mut general);
            assert_eq!(format!("{a:?}"), format!("{b:?}"), "{s:?}");
            if a.is_ok() {
                assert_eq!(fast.pos(), general.pos(), "{s:?}");
            }
        }
        assert!(plain > 3000, "only {plain} plain readings");
    }

    #[test]
    fn refuses_empty_params_and_values() {
        assert!(vias("SIP/2.0/UDP 192.0.2.15;;,;,,").is_err());
        assert!(vias("SIP/2.0/UDP 192.0.2.15,").is_err());
        assert!(vias("SIP/2.0/UDP").is_err());
    }
}
