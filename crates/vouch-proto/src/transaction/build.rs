//! Messages the transaction layer writes itself: the ACK for a non-2xx final response
//! (RFC 3261 §17.1.1.3), 100 Trying (§8.2.6.1, §17.2.1), and — for the TU — CANCEL (§9.1) and
//! a response skeleton (§8.2.6.2).

use vouch_msg::{HeaderName, Limits, Message, MessageBuilder, Method, reason_phrase, split_commas};

use super::ADMITTED;
use crate::Error;

/// The first value of the first header field named `name` (Via values may be comma-joined).
fn first_value(msg: &Message, name: HeaderName) -> Option<&str> {
    msg.header(name).and_then(|h| split_commas(h.value).next())
}

fn value(msg: &Message, name: HeaderName) -> Option<&str> {
    msg.header(name).map(|h| h.value)
}

/// Writes the headers shared by ACK and CANCEL: a single Via equal to the request's top Via,
/// the request's Route set, Max-Forwards, From, To, Call-ID and `CSeq: n METHOD` — copies of
/// admitted fields, so parsed under [`ADMITTED`].
fn hop_request(
    request: &Message,
    method: Method<'_>,
    to: &str,
    what: &'static str,
) -> Result<Message, Error> {
    let uri = request.request_uri_str().ok_or(Error::NotARequest)?;
    let via = first_value(request, HeaderName::Via).ok_or(Error::MissingBranch)?;
    let from = value(request, HeaderName::From).ok_or(Error::NotARequest)?;
    let mut b = MessageBuilder::request(method, uri);
    b.push("Via", via);
    for r in request.headers_named(HeaderName::Route) {
        b.push("Route", r.value);
    }
    let mf = request.max_forwards().unwrap_or(70).to_string();
    b.push("Max-Forwards", &mf)
        .push("From", from)
        .push("To", to)
        .push("Call-ID", request.call_id())
        .push(
            "CSeq",
            &format!("{} {}", request.cseq().seq, method.as_str()),
        );
    b.build_with(&ADMITTED)
        .map_err(|source| Error::Build { what, source })
}

/// The ACK for a non-2xx final response to `invite` (RFC 3261 §17.1.1.3): same Request-URI,
/// Call-ID, From and CSeq number as the INVITE, To from the response (with its tag), one Via
/// equal to the INVITE's top Via, and the INVITE's Route header fields.
pub fn ack_for(invite: &Message, response: &Message) -> Result<Message, Error> {
    if response.status().is_none() {
        return Err(Error::NotAResponse);
    }
    let to = value(response, HeaderName::To).ok_or(Error::NotAResponse)?;
    hop_request(invite, Method::Ack, to, "ACK")
}

/// The CANCEL for `request` (RFC 3261 §9.1): Request-URI, Call-ID, To, From and the CSeq
/// number identical to the request's, one Via equal to its top Via (so the same branch), and
/// its Route header fields.
pub fn cancel_for(request: &Message) -> Result<Message, Error> {
    let to = value(request, HeaderName::To).ok_or(Error::NotARequest)?;
    hop_request(request, Method::Cancel, to, "CANCEL")
}

/// A response to `request` with the header fields RFC 3261 §8.2.6.2 copies: every Via in
/// order, From, To (with `to_tag` added if the request's To has no tag), Call-ID and CSeq;
/// and Timestamp for 100 Trying (§8.2.6.1). The response is parsed with no limits, so a
/// request with more Vias than the default limit still gets its response: callers must pass
/// a request that was admitted under their configured limits (it copies no more than that).
pub fn response_for(
    request: &Message,
    status: u16,
    reason: &str,
    to_tag: Option<&str>,
) -> Result<Message, Error> {
    response_with(request, status, reason, to_tag, &[], &ADMITTED)
}

/// [`response_for`] with `extra` header fields after the copied ones, built (serialised and
/// parsed) once: building the plain response and then editing it cost a second build, and
/// every challenge and registrar 200 carries extra fields. The extra fields are new material,
/// so the response is parsed under `limits`, those the request was received under.
pub fn response_with(
    request: &Message,
    status: u16,
    reason: &str,
    to_tag: Option<&str>,
    extra: &[(&str, &str)],
    limits: &Limits,
) -> Result<Message, Error> {
    if !request.is_request() {
        return Err(Error::NotARequest);
    }
    let from = value(request, HeaderName::From).ok_or(Error::NotARequest)?;
    let to = value(request, HeaderName::To).ok_or(Error::NotARequest)?;
    let cseq = value(request, HeaderName::CSeq).ok_or(Error::NotARequest)?;
    let mut b = MessageBuilder::response(status, reason);
    for v in request.headers_named(HeaderName::Via) {
        b.push("Via", v.value);
    }
    b.push("From", from);
    match to_tag {
        Some(tag) if request.to_tag().is_none() => b.push("To", &format!("{to};tag={tag}")),
        _ => b.push("To", to),
    };
    b.push("Call-ID", request.call_id()).push("CSeq", cseq);
    if status == 100 {
        for t in request.headers_named_str("Timestamp") {
            b.push("Timestamp", t.value);
        }
    }
    for (name, value) in extra {
        b.push(name, value);
    }
    b.build_with(limits).map_err(|source| Error::Build {
        what: "response",
        source,
    })
}

/// 100 Trying for `request` (§8.2.6.1: no To tag needed, Timestamp copied).
pub(crate) fn trying(request: &Message) -> Result<Message, Error> {
    response_for(request, 100, reason_phrase(100), None)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const INVITE: &str = "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp1, SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776\r\n\
Route: <sip:p1.example.com;lr>\r\n\
Route: <sip:p2.example.com;lr>\r\n\
Max-Forwards: 69\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710\r\n\
CSeq: 314159 INVITE\r\n\
Timestamp: 54\r\n\
Content-Length: 0\r\n\r\n";

    fn invite() -> Message {
        Message::parse(INVITE.as_bytes().to_vec()).unwrap()
    }

    #[test]
    fn ack_copies_top_via_routes_and_response_to_tag() {
        let inv = invite();
        let resp = response_for(&inv, 486, "Busy Here", Some("xyz")).unwrap();
        let ack = ack_for(&inv, &resp).unwrap();
        assert_eq!(ack.method(), Some(Method::Ack));
        assert_eq!(ack.request_uri_str(), Some("sip:bob@biloxi.example.com"));
        assert_eq!(ack.via_count(), 1);
        assert_eq!(ack.top_via_branch(), Some("z9hG4bKp1"));
        assert_eq!(ack.to_tag(), Some("xyz"));
        assert_eq!(ack.from_tag(), Some("1928301774"));
        assert_eq!(ack.cseq().seq, 314159);
        assert_eq!(ack.cseq().method, Method::Ack);
        assert_eq!(ack.route().len(), 2);
        assert_eq!(ack.max_forwards(), Some(69));
    }

    #[test]
    fn cancel_keeps_branch_and_cseq_number() {
        let c = cancel_for(&invite()).unwrap();
        assert_eq!(c.method(), Some(Method::Cancel));
        assert_eq!(c.top_via_branch(), Some("z9hG4bKp1"));
        assert_eq!(c.via_count(), 1);
        assert_eq!(c.cseq().seq, 314159);
        assert_eq!(c.to_tag(), None);
    }

    #[test]
    fn trying_copies_all_vias_and_timestamp() {
        let t = trying(&invite()).unwrap();
        assert_eq!(t.status(), Some(100));
        assert_eq!(t.via_count(), 2);
        assert_eq!(t.to_tag(), None);
        assert_eq!(t.headers_named_str("Timestamp").count(), 1);
        assert_eq!(t.cseq().method, Method::Invite);
    }

    #[test]
    fn response_keeps_existing_to_tag() {
        let inv = invite();
        let r = response_for(&inv, 200, "OK", Some("a")).unwrap();
        let r2 = response_for(&r, 200, "OK", Some("b"));
        assert!(matches!(r2, Err(Error::NotARequest)));
        assert_eq!(r.to_tag(), Some("a"));
    }
}
