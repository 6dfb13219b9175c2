//! Message surgery the server core needs: the RFC 3581 `received`/`rport` parameters on the
//! top Via of a received request (RFC 3261 §18.2.1, RFC 3581 §4), removing our Via from a
//! response (§16.7 step 3), where a response goes (§18.2.2, RFC 3581 §4), turning an IP-literal
//! URI into a next hop (§16.6 step 7; a host name becomes a [`Lookup`] for the driver's RFC
//! 3263 resolver), locally generated responses (§8.2.6), and
//! the 400 for a request that did not parse (§16.3 step 1, RFC 4475).

use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, SocketAddr};

use vouch_msg::headers::Via;
use vouch_msg::{
    HeaderName, Limits, Message, MessageBuilder, ParseError, SipUri, Transport, split_commas,
};

use crate::endpoint::{Peer, TransportKind};
use crate::local::host_ip;
use crate::transaction::response_with;

/// The values of the first Via header field.
fn first_via_field(msg: &Message) -> Option<Vec<&str>> {
    let h = msg.header(HeaderName::Via)?;
    Some(split_commas(h.value).collect())
}

/// Replaces the first Via header field's values with `values` (dropping the field when empty),
/// keeping every other field's bytes. The result is parsed under `limits`, those the message
/// was received under: a message they admitted must not fail here for being bigger than the
/// defaults.
fn rewrite_first_via_field(
    msg: &Message,
    values: &[String],
    limits: &Limits,
) -> Result<Message, ParseError> {
    if let Some(spliced) = splice_first_via_field(msg, values, limits) {
        return spliced;
    }
    let mut b = msg.edit();
    b.remove_first("Via");
    if !values.is_empty() {
        b.insert_before("Via", "Via", &values.join(", "));
    }
    b.build_with(limits)
}

/// [`rewrite_first_via_field`] by copying the bytes before and after the field around the new
/// one and parsing the result once. Every request received gets its top Via rewritten
/// (received, rport), and going through [`MessageBuilder`] split the whole header section
/// into fields and joined them again. `None` (use the builder) when the message has no
/// Content-Length, which the builder adds, or the field is not within the message's bytes.
fn splice_first_via_field(
    msg: &Message,
    values: &[String],
    limits: &Limits,
) -> Option<Result<Message, ParseError>> {
    msg.content_length()?;
    let buf: &[u8] = msg.as_bytes();
    let field = msg.header(HeaderName::Via)?;
    let body = msg.body_bytes();
    // Both are slices of `buf` (vouch-msg hands out views, not copies): their offsets.
    let offset = |part: &[u8]| (part.as_ptr() as usize).checked_sub(buf.as_ptr() as usize);
    let start = offset(field.raw)?;
    let end = start.checked_add(field.raw.len())?;
    let body_start = offset(body)?;
    let body_end = body_start.checked_add(body.len())?;
    if end > body_start || body_end > buf.len() {
        return None;
    }
    let eol: &[u8] = if field.raw.ends_with(b"\r\n") {
        b"\r\n"
    } else {
        b"\n"
    };
    let joined = values.join(", ");
    let mut out = Vec::with_capacity(body_end - (end - start) + joined.len() + 8);
    out.extend_from_slice(&buf[..start]);
    if !values.is_empty() {
        out.extend_from_slice(b"Via: ");
        out.extend_from_slice(joined.as_bytes());
        out.extend_from_slice(eol);
    }
    // Octets after the Content-Length body (UDP, RFC 3261 §18.3) are dropped, as the builder
    // drops them.
    out.extend_from_slice(&buf[end..body_end]);
    Some(Message::parse_with(out.into(), limits, Transport::Stream))
}

/// RFC 3261 §18.2.1 and RFC 3581 §4: adds `received` when the sent-by host is not the source
/// IP (always when `rport` is present) and fills an empty `rport` with the source port.
/// `Ok(None)` when nothing changes. `limits`: the parser limits `request` was received under.
pub(crate) fn apply_received(
    request: &Message,
    src: &Peer,
    limits: &Limits,
) -> Result<Option<Message>, ParseError> {
    let Some(via) = request.top_via() else {
        return Ok(None);
    };
    let ip = src.addr.ip();
    let rport_wanted = via.rport().is_some();
    let same_host = host_ip(via.host()).is_some_and(|h| h == ip)
        && !via.host_str().eq_ignore_ascii_case("localhost");
    if same_host && !rport_wanted {
        return Ok(None);
    }
    let Some(values) = first_via_field(request) else {
        return Ok(None);
    };
    let Some(first) = values.first() else {
        return Ok(None);
    };
    let head = first.split(';').next().unwrap_or(first).trim_end();
    // Sized once and written in place: this runs for every request received.
    let mut new = String::with_capacity(first.len() + 64);
    new.push_str(head);
    for (name, value) in via.params().iter() {
        if name.eq_ignore_ascii_case("received") || name.eq_ignore_ascii_case("rport") {
            continue;
        }
        new.push(';');
        new.push_str(name);
        if let Some(v) = value {
            new.push('=');
            new.push_str(v);
        }
    }
    // RFC 3261 grammar: received = IPv4address / IPv6address (no brackets). Writing to a
    // String cannot fail.
    let _ = write!(new, ";received={ip}");
    if rport_wanted {
        let _ = write!(new, ";rport={}", src.addr.port());
    }
    let mut all: Vec<String> = vec![new];
    all.extend(values.iter().skip(1).map(|v| (*v).to_owned()));
    rewrite_first_via_field(request, &all, limits).map(Some)
}

/// Removes the topmost Via value (§16.7 step 3). `limits`: the parser limits `msg` was
/// received under.
pub(crate) fn pop_top_via(msg: &Message, limits: &Limits) -> Result<Message, ParseError> {
    let values = first_via_field(msg).unwrap_or_default();
    let rest: Vec<String> = values.iter().skip(1).map(|v| (*v).to_owned()).collect();
    rewrite_first_via_field(msg, &rest, limits)
}

/// Where to send a response whose topmost Via (after ours was removed) is `via`: the
/// `received` address (else the sent-by host when it is an IP literal) and the `rport` port
/// (else the sent-by port, else the transport default) — §18.2.2, RFC 3581 §4.
pub(crate) fn response_destination(via: &Via<'_>) -> Option<Peer> {
    let transport = TransportKind::from_token(via.transport())?;
    let ip = match via.received() {
        Some(r) => r.trim_matches(['[', ']']).parse::<IpAddr>().ok()?,
        None => host_ip(via.host())?,
    };
    let port = via
        .rport()
        .flatten()
        .or(via.port())
        .unwrap_or(transport.default_port());
    Some(Peer::new(transport, SocketAddr::new(ip, port)))
}

/// What the driver must resolve for a URI whose host is a name (RFC 3263 §4): the URI's
/// parts that steer the lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Lookup {
    pub(crate) host: String,
    pub(crate) port: Option<u16>,
    /// The `transport` parameter (TLS for `sips:` over TCP), when the URI has one.
    pub(crate) transport: Option<TransportKind>,
    pub(crate) secure: bool,
}

/// Why a URI cannot be turned into a next hop without DNS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unresolvable {
    /// A host name (DNS is not done in the core).
    HostName(Lookup),
    /// A `transport=` the server does not speak.
    Transport(String),
}

/// The next hop a SIP URI names (RFC 3263 without DNS): an IP literal, `localhost`, or a host
/// of the static `hosts` table (name → address, the address's port used when the URI names
/// none, as an SRV record would give it); the `transport` parameter (TLS for `sips:`), the
/// explicit port or the transport's default.
pub(crate) fn resolve(
    uri: &SipUri<'_>,
    hosts: &[(String, SocketAddr)],
) -> Result<Peer, Unresolvable> {
    let explicit = match uri.transport() {
        Some(t) => Some(
            TransportKind::from_token(t).ok_or_else(|| Unresolvable::Transport(t.to_owned()))?,
        ),
        None => None,
    };
    let explicit = match explicit {
        Some(TransportKind::Tcp) if uri.is_secure() => Some(TransportKind::Tls),
        t => t,
    };
    let transport = match explicit {
        Some(t) => t,
        None if uri.is_secure() => TransportKind::Tls,
        None => TransportKind::Udp,
    };
    if let Some((_, addr)) = hosts
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(uri.host_str()))
    {
        let port = uri.port().unwrap_or(addr.port());
        return Ok(Peer::new(transport, SocketAddr::new(addr.ip(), port)));
    }
    let ip = host_ip(uri.host()).ok_or_else(|| {
        Unresolvable::HostName(Lookup {
            host: uri.host_str().to_owned(),
            port: uri.port(),
            transport: explicit,
            secure: uri.is_secure(),
        })
    })?;
    let port = uri.port().unwrap_or(transport.default_port());
    Ok(Peer::new(transport, SocketAddr::new(ip, port)))
}

/// A response to `request` (§8.2.6.2) with extra header fields, parsed under `limits` (those
/// the request was received under); `None` if it cannot be built (the request lacks what a
/// response must copy, or the extra fields take it over the limits).
pub(crate) fn reply(
    request: &Message,
    status: u16,
    reason: &str,
    to_tag: Option<&str>,
    extra: &[(&str, &str)],
    limits: &Limits,
) -> Option<Message> {
    response_with(request, status, reason, to_tag, extra, limits).ok()
}

/// A `Warning: 399 host "text"` value (RFC 3261 §20.43), with the text made safe to quote.
pub(crate) fn warning(host: &str, text: &str) -> String {
    let clean: String = text
        .chars()
        .map(|c| match c {
            '"' | '\\' => '\'',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect();
    format!("399 {host} \"{clean}\"")
}

/// The header section of unparseable bytes, unfolded, as `(name, value)` lines, with the
/// start line first (name empty). Reads at most `limit` bytes.
fn lenient_lines(bytes: &[u8], limit: usize) -> Vec<(String, String)> {
    let bytes = &bytes[..bytes.len().min(limit)];
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim_start_matches(['\r', '\n']);
    let head = text
        .find("\r\n\r\n")
        .or_else(|| text.find("\n\n"))
        .map_or(text, |i| &text[..i]);
    let mut out: Vec<(String, String)> = Vec::new();
    for (i, line) in head.split('\n').enumerate() {
        let line = line.trim_end_matches('\r');
        if i == 0 {
            out.push((String::new(), line.to_owned()));
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if let Some(last) = out.last_mut()
                && !last.0.is_empty()
            {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
            continue;
        }
        if let Some((n, v)) = line.split_once(':') {
            out.push((n.trim().to_owned(), v.trim().to_owned()));
        }
    }
    out
}

/// A response to a request that did not parse (§16.3 step 1: the server must behave as a UAS
/// and answer; RFC 4475 expects 400 for the torture messages), built from what can be
/// recovered: its Via, From, To, Call-ID and CSeq lines, parsed under `limits` (those the
/// bytes were received under). `None` for a response or ACK, or when those cannot be
/// recovered well enough to route the response.
pub(crate) fn reply_to_unparseable(
    bytes: &[u8],
    error: &ParseError,
    host: &str,
    to_tag: &str,
    limits: &Limits,
) -> Option<Message> {
    // As far as a message may reach under the configured limits, and no further.
    let lines = lenient_lines(bytes, limits.max_message_size);
    let (_, start) = lines.first()?;
    let method = start.split(' ').next().unwrap_or("");
    if method.is_empty()
        || method
            .as_bytes()
            .get(..4)
            .is_some_and(|p| p.eq_ignore_ascii_case(b"SIP/"))
        || method == "ACK"
    {
        return None;
    }
    let is = |n: &str, long: &str, short: &str| {
        n.eq_ignore_ascii_case(long) || (!short.is_empty() && n.eq_ignore_ascii_case(short))
    };
    let mut b = MessageBuilder::response(error.status(), error.reason_phrase());
    let mut have = [false; 5];
    for (n, v) in lines.iter().skip(1) {
        if is(n, "Via", "v") {
            b.push("Via", v);
            have[0] = true;
        }
    }
    for (slot, (long, short)) in [("From", "f"), ("To", "t"), ("Call-ID", "i"), ("CSeq", "")]
        .into_iter()
        .enumerate()
    {
        if let Some((_, v)) = lines.iter().skip(1).find(|(n, _)| is(n, long, short)) {
            if long == "To" && !v.to_ascii_lowercase().contains(";tag=") {
                b.push(long, &format!("{v};tag={to_tag}"));
            } else {
                b.push(long, v);
            }
            have[slot + 1] = true;
        }
    }
    if have.iter().any(|h| !h) {
        return None;
    }
    b.push("Warning", &warning(host, &error.warning_text()));
    b.build_with(limits).ok()
}

/// The To tag of a response sent without a transaction. RFC 3261 §8.2.7: the same request
/// must get the same tag, so a retransmission is answered alike. It is derived from what a
/// request and the ACK for a non-2xx response to it share (§17.1.1.3: Call-ID, From tag,
/// CSeq number, top Via branch), so that ACK can be recognised by it and absorbed, as
/// Kamailio's sl module does.
pub(crate) fn stateless_tag(request: &Message) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    request.call_id().hash(&mut h);
    request.from_tag().hash(&mut h);
    request.cseq().seq.hash(&mut h);
    request.top_via_branch().hash(&mut h);
    format!("sl{:016x}", h.finish())
}

/// The loop-detection part of our branch (§16.6 step 8, §16.3 step 4): a hash of everything
/// that affects how the request is processed and that a loop leaves unchanged — the
/// Request-URI and Route as received, the From and To tags, Call-ID, CSeq number,
/// Proxy-Require, Proxy-Authorization — and the originating (bottom) Via, which, unlike the
/// previous hop's Via the RFC suggests, stays the same when the request comes back. The
/// method is not part of it (so a CANCEL or ACK computes the INVITE's value).
pub(crate) fn loop_hash(request: &Message) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    request.request_uri_str().hash(&mut h);
    request.from_tag().hash(&mut h);
    request.to_tag().hash(&mut h);
    request.call_id().hash(&mut h);
    request.cseq().seq.hash(&mut h);
    for name in [
        HeaderName::Route,
        HeaderName::ProxyRequire,
        HeaderName::ProxyAuthorization,
    ] {
        for f in request.headers_named(name) {
            f.value.hash(&mut h);
        }
    }
    if let Some(v) = request
        .headers_named(HeaderName::Via)
        .last()
        .and_then(|f| split_commas(f.value).last())
    {
        v.hash(&mut h);
    }
    format!("{:016x}", h.finish())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn req(via: &str) -> Message {
        let s = format!(
            "OPTIONS sip:bob@example.com SIP/2.0\r\nVia: {via}\r\nVia: SIP/2.0/UDP second.example.com\r\nFrom: <sip:a@example.com>;tag=f\r\nTo: <sip:bob@example.com>\r\nCall-ID: c1\r\nCSeq: 7 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        );
        Message::parse(s.into_bytes()).unwrap()
    }

    fn peer(s: &str) -> Peer {
        s.parse().unwrap()
    }

    #[test]
    fn rport_filled_and_received_added() {
        let m = req("SIP/2.0/UDP 192.0.2.1:5060;rport;branch=z9hG4bKx, SIP/2.0/UDP h2");
        let out = apply_received(&m, &peer("udp:198.51.100.7:40000"), &Limits::DEFAULT)
            .unwrap()
            .unwrap();
        let v = out.top_via().unwrap();
        assert_eq!(v.received(), Some("198.51.100.7"));
        assert_eq!(v.rport(), Some(Some(40000)));
        assert_eq!(v.branch(), Some("z9hG4bKx"));
        assert_eq!(out.via_count(), 3);
        let dest = response_destination(&v).unwrap();
        assert_eq!(dest.to_string(), "udp:198.51.100.7:40000");
    }

    #[test]
    fn nothing_added_when_sent_by_is_source_without_rport() {
        let m = req("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKx");
        assert!(
            apply_received(&m, &peer("udp:192.0.2.1:5060"), &Limits::DEFAULT)
                .unwrap()
                .is_none()
        );
        let out = apply_received(&m, &peer("udp:192.0.2.9:5060"), &Limits::DEFAULT)
            .unwrap()
            .unwrap();
        assert_eq!(out.top_via().unwrap().received(), Some("192.0.2.9"));
        assert_eq!(out.top_via().unwrap().rport(), None);
    }

    #[test]
    fn top_via_rewritten_in_place_other_bytes_kept() {
        // Compact form, a folded first Via field, a body and octets after it (UDP).
        let raw = "MESSAGE sip:bob@example.com SIP/2.0\r\nv: SIP/2.0/UDP 192.0.2.1;rport;branch=z9hG4bKf,\r\n SIP/2.0/UDP h2;branch=z9hG4bK2\r\nFrom: <sip:a@example.com>;tag=f\r\nTo: <sip:bob@example.com>\r\nCall-ID: c2\r\nCSeq: 1 MESSAGE\r\nMax-Forwards: 70\r\nContent-Length: 5\r\n\r\nhello-trailing";
        let m = Message::parse(raw.as_bytes().to_vec()).unwrap();
        let out = apply_received(&m, &peer("udp:198.51.100.7:40000"), &Limits::DEFAULT)
            .unwrap()
            .unwrap();
        let text = String::from_utf8(out.as_bytes().to_vec()).unwrap();
        assert_eq!(
            text,
            "MESSAGE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKf;received=198.51.100.7;rport=40000, SIP/2.0/UDP h2;branch=z9hG4bK2\r\nFrom: <sip:a@example.com>;tag=f\r\nTo: <sip:bob@example.com>\r\nCall-ID: c2\r\nCSeq: 1 MESSAGE\r\nMax-Forwards: 70\r\nContent-Length: 5\r\n\r\nhello"
        );
        assert_eq!(out.body_bytes(), b"hello");
        assert_eq!(out.via_count(), 2);

        // Without Content-Length (allowed over UDP) the builder rewrites it and adds one.
        let raw = "OPTIONS sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;rport;branch=z9hG4bKn\r\nFrom: <sip:a@example.com>;tag=f\r\nTo: <sip:bob@example.com>\r\nCall-ID: c3\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n\r\n";
        let m = Message::parse(raw.as_bytes().to_vec()).unwrap();
        let out = apply_received(&m, &peer("udp:198.51.100.7:40000"), &Limits::DEFAULT)
            .unwrap()
            .unwrap();
        assert_eq!(out.top_via().unwrap().rport(), Some(Some(40000)));
        assert_eq!(out.content_length(), Some(0));
    }

    #[test]
    fn pop_top_via_keeps_the_rest() {
        let m = req("SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/UDP b;branch=z9hG4bK2");
        let p = pop_top_via(&m, &Limits::DEFAULT).unwrap();
        assert_eq!(p.via_count(), 2);
        assert_eq!(p.top_via_branch(), Some("z9hG4bK2"));
        let p = pop_top_via(&p, &Limits::DEFAULT).unwrap();
        assert_eq!(p.top_via().unwrap().host_str(), "second.example.com");
    }

    #[test]
    fn resolves_ip_literals_only() {
        let u = vouch_msg::Uri::parse("sip:bob@10.1.2.3;transport=tcp").unwrap();
        assert_eq!(
            resolve(u.as_sip().unwrap(), &[]).unwrap().to_string(),
            "tcp:10.1.2.3:5060"
        );
        let u = vouch_msg::Uri::parse("sips:[2001:db8::1]").unwrap();
        assert_eq!(
            resolve(u.as_sip().unwrap(), &[]).unwrap().to_string(),
            "tls:[2001:db8::1]:5061"
        );
        let u = vouch_msg::Uri::parse("sip:example.org").unwrap();
        assert!(matches!(
            resolve(u.as_sip().unwrap(), &[]),
            Err(Unresolvable::HostName(_))
        ));
        let u2 = vouch_msg::Uri::parse("sips:bob@Example.net:5999;transport=tcp").unwrap();
        assert_eq!(
            resolve(u2.as_sip().unwrap(), &[]),
            Err(Unresolvable::HostName(Lookup {
                host: "Example.net".to_owned(),
                port: Some(5999),
                transport: Some(TransportKind::Tls),
                secure: true,
            }))
        );
        let hosts = [("Example.org".to_owned(), "127.0.0.2:5080".parse().unwrap())];
        assert_eq!(
            resolve(u.as_sip().unwrap(), &hosts).unwrap().to_string(),
            "udp:127.0.0.2:5080"
        );
        let u = vouch_msg::Uri::parse("sip:bob@example.org:5090;transport=tcp").unwrap();
        assert_eq!(
            resolve(u.as_sip().unwrap(), &hosts).unwrap().to_string(),
            "tcp:127.0.0.2:5090"
        );
    }

    #[test]
    fn unparseable_request_gets_400_with_warning() {
        let raw = b"INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKq\r\nFrom: <sip:a@example.com>;tag=1\r\nTo: <sip:bob@example.com>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nMax-Forwards: eleven\r\nContent-Length: 0\r\n\r\n";
        let err = Message::parse(&raw[..]).unwrap_err();
        let r =
            reply_to_unparseable(raw, &err, "proxy.example.com", "t1", &Limits::DEFAULT).unwrap();
        assert_eq!(r.status(), Some(400));
        assert_eq!(r.to_tag(), Some("t1"));
        let w = r.headers_named(HeaderName::Warning).next().unwrap();
        assert!(
            w.value.starts_with("399 proxy.example.com \""),
            "{}",
            w.value
        );
    }

    #[test]
    fn loop_hash_ignores_method_and_top_via() {
        let a = req("SIP/2.0/UDP a;branch=z9hG4bK1");
        let b = req("SIP/2.0/UDP b;branch=z9hG4bK2");
        assert_eq!(loop_hash(&a), loop_hash(&b));
    }
}
