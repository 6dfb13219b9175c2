//! One-line typed readings of header values for `vouch parse`.

use vouch_msg::headers::{
    CSeq, Contact, MediaType, NameAddr, Via, addr, auth, basic, date, identity, misc,
};
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
        HeaderName::Date => {
            let d = date::SipDate::parse(v).map_err(e)?;
            format!("{d} (unix {})", d.unix_seconds())
        }
        HeaderName::RSeq => format!("rseq {}", misc::parse_rseq(v).map_err(e)?),
        HeaderName::RAck => {
            let r = misc::RAck::parse(v).map_err(e)?;
            format!("rseq {} cseq {} method {}", r.rseq, r.cseq, r.method)
        }
        HeaderName::Event => {
            let ev = misc::Event::parse(v).map_err(e)?;
            format!("event {}{}", ev.event_type, params(ev.params.iter()))
        }
        HeaderName::SubscriptionState => {
            let st = misc::SubscriptionState::parse(v).map_err(e)?;
            let mut out = format!("{:?}", st.state).to_lowercase();
            if let Some(x) = st.expires {
                out.push_str(&format!(" expires={x}s"));
            }
            if let Some(r) = st.reason {
                out.push_str(&format!(" reason={r}"));
            }
            out
        }
        HeaderName::Warning => {
            let mut parts = Vec::new();
            misc::parse_warnings(v, |w| {
                parts.push(format!("{} from {}: {}", w.code, w.agent, w.text))
            })
            .map_err(e)?;
            parts.join(" | ")
        }
        HeaderName::Reason => {
            let mut parts = Vec::new();
            misc::parse_reasons(v, |r| {
                parts.push(format!(
                    "{} cause={} text={}",
                    r.protocol,
                    r.cause.map_or("-".to_string(), |c| c.to_string()),
                    r.text.as_deref().unwrap_or("-")
                ))
            })
            .map_err(e)?;
            parts.join(" | ")
        }
        HeaderName::WwwAuthenticate | HeaderName::ProxyAuthenticate => {
            let c = auth::Challenge::parse(v).map_err(e)?;
            format!(
                "{} challenge realm={} algorithm={} qop={} stale={}",
                c.scheme,
                c.realm.as_deref().unwrap_or("-"),
                c.algorithm.unwrap_or("MD5 (default)"),
                c.qop_options.unwrap_or("-"),
                c.stale.unwrap_or(false)
            )
        }
        HeaderName::Authorization | HeaderName::ProxyAuthorization => {
            let c = auth::Credentials::parse(v).map_err(e)?;
            format!(
                "{} credentials username={} realm={} uri={} algorithm={} qop={} nc={}",
                c.scheme,
                c.username.as_deref().unwrap_or("-"),
                c.realm.as_deref().unwrap_or("-"),
                c.uri.as_deref().unwrap_or("-"),
                c.algorithm.unwrap_or("MD5 (default)"),
                c.qop.unwrap_or("-"),
                c.nc.map_or("-".to_string(), |n| format!("{n:08x}"))
            )
        }
        HeaderName::AuthenticationInfo | HeaderName::ProxyAuthenticationInfo => {
            let mut parts = Vec::new();
            auth::parse_proxy_authentication_info(v, |i| {
                parts.push(format!(
                    "rspauth={} qop={} cnonce={} nc={} nextnonce={}",
                    i.rspauth.unwrap_or("-"),
                    i.qop.unwrap_or("-"),
                    i.cnonce.as_deref().unwrap_or("-"),
                    i.nc.map_or("-".to_string(), |n| format!("{n:08x}")),
                    i.nextnonce.as_deref().unwrap_or("-")
                ))
            })
            .map_err(e)?;
            parts.join(" | ")
        }
        HeaderName::Identity => {
            let id = identity::Identity::parse(v).map_err(e)?;
            format!(
                "{:?} signature of {} chars{}{}",
                id.form(),
                id.signature().len(),
                id.info().map_or(String::new(), |i| format!(" info={i}")),
                id.alg().map_or(String::new(), |a| format!(" alg={a}"))
            )
        }
        HeaderName::IdentityInfo => {
            let i = identity::IdentityInfo::parse(v).map_err(e)?;
            format!(
                "certificate at {} alg={}",
                i.uri(),
                i.alg().unwrap_or("rsa-sha1 (default)")
            )
        }
        _ => return Ok("(no typed reading)".to_string()),
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
