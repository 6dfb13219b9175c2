//! Via (RFC 3261 §20.42, §18.2.1) with the RFC 3581 `rport` parameter. LWS may surround
//! the slashes of sent-protocol (RFC 4475 §3.1.1.1).

use crate::error::ParseError;
use crate::scan::Rel;
use crate::scan::{Cursor, Params, class, is_lws, scan_class};
use crate::uri::{DetachedHost, Host, parse_host, parse_port, plain_host, plain_port};

/// The RFC 3261 branch magic cookie.
pub const MAGIC_COOKIE: &str = "z9hG4bK";

/// One Via value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via<'a> {
    protocol: &'a str,
    version: &'a str,
    transport: &'a str,
    host: Host<'a>,
    host_raw: &'a str,
    port: Option<u16>,
    params: Params<'a>,
    /// Located while validating the parameters.
    branch: Option<&'a str>,
}

impl<'a> Via<'a> {
    /// The protocol name (`SIP`).
    pub fn protocol(&self) -> &'a str {
        self.protocol
    }
    /// The protocol version (`2.0`).
    pub fn version(&self) -> &'a str {
        self.version
    }
    /// The transport as written (`UDP`, `TCP`, `TLS`, `SCTP`, `WS`, or anything else).
    pub fn transport(&self) -> &'a str {
        self.transport
    }
    /// The sent-by host.
    pub fn host(&self) -> Host<'a> {
        self.host
    }
    /// The sent-by host as written.
    pub fn host_str(&self) -> &'a str {
        self.host_raw
    }
    /// The sent-by port, if given.
    pub fn port(&self) -> Option<u16> {
        self.port
    }
    /// All via-params.
    pub fn params(&self) -> Params<'a> {
        self.params
    }
    /// The `branch` parameter.
    pub fn branch(&self) -> Option<&'a str> {
        self.branch
    }
    /// True when the branch starts with the RFC 3261 magic cookie and has more after it.
    pub fn has_rfc3261_branch(&self) -> bool {
        self.branch()
            .is_some_and(|b| b.len() > MAGIC_COOKIE.len() && b.starts_with(MAGIC_COOKIE))
    }
    /// The `received` parameter (brackets of an IPv6 value, RFC 5118 §4.5, are kept).
    pub fn received(&self) -> Option<&'a str> {
        self.params.get("received").flatten()
    }
    /// RFC 3581 `rport`: `None` when absent, `Some(None)` when requested without a value,
    /// `Some(Some(port))` when filled in.
    pub fn rport(&self) -> Option<Option<u16>> {
        self.params
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
        let protocol = &s[i..i + 3];
        let version = &s[i + 4..i + 7];
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
        let host_raw = &s[hs..he];
        let host = plain_host(host_raw)?;
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
            let this_one = !seen_branch && b[ns..ne].eq_ignore_ascii_case(b"branch");
            seen_branch |= this_one;
            i = ne;
            if b.get(i) == Some(&b'=') {
                let vs = i + 1;
                let ve = scan_class(b, vs, class::TOKEN_COLON);
                if ve == vs {
                    return None;
                }
                if this_one {
                    branch = Some(&s[vs..ve]);
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
                protocol,
                version,
                transport: &s[ts..te],
                host,
                host_raw,
                port,
                params: Params::from_raw(&s[params_start..i]),
                branch,
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
        Ok(Via {
            protocol,
            version,
            transport,
            host,
            host_raw,
            port,
            params,
            branch,
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
    protocol: Rel,
    version: Rel,
    transport: Rel,
    host: DetachedHost,
    host_raw: Rel,
    port: Option<u16>,
    params: Rel,
    branch: Option<Rel>,
}

impl Via<'_> {
    pub(crate) fn detach(&self, base: &str) -> DetachedVia {
        let r = |s: &str| Rel::of(base, s);
        DetachedVia {
            protocol: r(self.protocol),
            version: r(self.version),
            transport: r(self.transport),
            host: DetachedHost::of(base, self.host),
            host_raw: r(self.host_raw),
            port: self.port,
            params: self.params.rel(base),
            branch: self.branch.map(|t| Rel::of(base, t)),
        }
    }
}

impl DetachedVia {
    pub(crate) fn attach(self, base: &str) -> Via<'_> {
        Via {
            protocol: self.protocol.get(base),
            version: self.version.get(base),
            transport: self.transport.get(base),
            host: self.host.attach(base),
            host_raw: self.host_raw.get(base),
            port: self.port,
            params: Params::from_raw(self.params.get(base)),
            branch: self.branch.map(|t| t.get(base)),
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
    fn refuses_empty_params_and_values() {
        assert!(vias("SIP/2.0/UDP 192.0.2.15;;,;,,").is_err());
        assert!(vias("SIP/2.0/UDP 192.0.2.15,").is_err());
        assert!(vias("SIP/2.0/UDP").is_err());
    }
}
