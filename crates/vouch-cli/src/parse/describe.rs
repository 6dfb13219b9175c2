//! One-line typed readings of header values for `vouch parse`.

use vouch_msg::headers::{CSeq, Contact, MediaType, NameAddr, Via, addr, basic};
use vouch_msg::{HeaderName, HeaderRef, Uri};

/// The typed reading of a known header, or why it could not be read.
pub fn typed(h: &HeaderRef<'_>) -> Result<String, String> {
    let v = h.value;
    let e = |e: vouch_msg::ParseError| e.to_string();
    Ok(match h.name {
        HeaderName::Via => {
            let mut parts = Vec::new();
            vouch_msg::headers::via::parse_all(v, |x| parts.push(via(&x))).map_err(e)?;
            parts.join(" | ")
        }
        HeaderName::From | HeaderName::To | HeaderName::ReferTo | HeaderName::ReferredBy => {
            name_addr(&NameAddr::parse(v).map_err(e)?)
        }
        HeaderName::Contact => {
            let mut parts = Vec::new();
            addr::parse_contact_list(v, |c| {
                parts.push(match &c {
                    Contact::Star => "* (all bindings)".to_string(),
                    Contact::Addr(a) => {
                        let mut s = name_addr(a);
                        if let Some(x) = c.expires() {
                            s.push_str(&format!(" (expires {x} s)"));
                        }
                        if let Some(q) = c.q() {
                            s.push_str(&format!(" (q {}.{:03})", q / 1000, q % 1000));
                        }
                        s
                    }
                })
            })
            .map_err(e)?;
            parts.join(" | ")
        }
        HeaderName::Route | HeaderName::RecordRoute | HeaderName::Path => {
            let mut parts = Vec::new();
            addr::parse_route_list(v, |a| parts.push(name_addr(&a))).map_err(e)?;
            parts.join(" | ")
        }
        HeaderName::CallId => format!("call-id {}", basic::parse_call_id(v).map_err(e)?),
        HeaderName::CSeq => {
            let c = CSeq::parse(v).map_err(e)?;
            format!("seq {} method {}", c.seq, c.method)
        }
        HeaderName::MaxForwards => format!("{} hops", basic::parse_max_forwards(v).map_err(e)?),
        HeaderName::ContentLength => {
            format!("{} bytes", basic::parse_content_length(v).map_err(e)?)
        }
        HeaderName::Expires | HeaderName::MinExpires => {
            format!("{} s", basic::parse_expires(v).map_err(e)?)
        }
        HeaderName::ContentType | HeaderName::Accept => {
            let m = MediaType::parse(v).map_err(e)?;
            format!("{}/{}{}", m.top, m.sub, params(m.params.iter()))
        }
        HeaderName::Require
        | HeaderName::Supported
        | HeaderName::ProxyRequire
        | HeaderName::Unsupported
        | HeaderName::Allow => {
            format!("[{}]", basic::parse_token_list(v).map_err(e)?.join(", "))
        }
        _ => return Ok("(read on demand by the engine)".to_string()),
    })
}

fn params<'a>(it: impl Iterator<Item = (&'a str, Option<&'a str>)>) -> String {
    it.map(|(n, v)| match v {
        Some(v) => format!(" {n}={v}"),
        None => format!(" {n}"),
    })
    .collect()
}

fn via(v: &Via<'_>) -> String {
    let mut s = format!(
        "{}/{}/{} sent-by {}",
        v.protocol(),
        v.version(),
        v.transport(),
        v.host_str()
    );
    if let Some(p) = v.port() {
        s.push_str(&format!(":{p}"));
    }
    if let Some(b) = v.branch() {
        s.push_str(&format!(
            " branch={b}{}",
            if v.has_rfc3261_branch() {
                " (RFC 3261)"
            } else {
                " (RFC 2543)"
            }
        ));
    }
    if let Some(r) = v.received() {
        s.push_str(&format!(" received={r}"));
    }
    match v.rport() {
        Some(Some(p)) => s.push_str(&format!(" rport={p}")),
        Some(None) => s.push_str(" rport (requested)"),
        None => {}
    }
    s
}

fn uri(u: &Uri<'_>) -> String {
    match u {
        Uri::Sip(s) => {
            let mut out = format!("{} uri", if s.is_secure() { "sips" } else { "sip" });
            if let Some(user) = s.user() {
                out.push_str(&format!(" user={user}"));
            }
            out.push_str(&format!(" host={}", s.host_str()));
            if let Some(p) = s.port() {
                out.push_str(&format!(" port={p}"));
            }
            out.push_str(&params(s.params().iter()));
            if let Some(h) = s.headers() {
                out.push_str(&format!(" headers={h}"));
            }
            out
        }
        Uri::Tel(t) => format!("tel uri number={}", t.number()),
        Uri::Other(o) => format!("{} uri {}", o.scheme(), o.as_str()),
    }
}

fn name_addr(a: &NameAddr<'_>) -> String {
    let mut s = String::new();
    if let Some(d) = a.display_name() {
        s.push_str(&format!("display={d:?} "));
    }
    s.push_str(&uri(a.uri()));
    if !a.params().is_empty() {
        s.push_str(" ;");
        s.push_str(&params(a.params().iter()));
    }
    s
}
