//! Dialog state of the UA core (RFC 3261 §12): created from a response with a To tag on the
//! UAC side (§12.1.2: route set = Record-Route reversed, remote target = Contact) or from the
//! INVITE on the UAS side (§12.1.1: route set = Record-Route in order), and the requests sent
//! in it (§12.2.1.1: Request-URI = remote target, Route = route set, loose routing assumed as
//! RFC 3261 proxies do).

use vouch_msg::{HeaderName, Message, MessageBuilder, Method, Uri, split_commas};

use crate::endpoint::Peer;
use crate::wire::resolve;

/// One dialog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Dialog {
    pub(crate) call_id: String,
    pub(crate) local_tag: String,
    pub(crate) remote_tag: String,
    /// Our URI (From of our requests), without tag.
    pub(crate) local_uri: String,
    /// The peer's URI (To of our requests), without tag.
    pub(crate) remote_uri: String,
    pub(crate) remote_target: String,
    pub(crate) route_set: Vec<String>,
    /// Highest CSeq number received from the peer (§12.2.2).
    pub(crate) remote_seq: Option<u32>,
}

/// The addr-spec of a name-addr or addr-spec header value (the URI between `<>`, or the value
/// up to its parameters).
pub(crate) fn addr_spec(value: &str) -> String {
    let v = value.trim();
    match (v.find('<'), v.find('>')) {
        (Some(a), Some(b)) if a < b => v[a + 1..b].to_owned(),
        _ => v.split(';').next().unwrap_or(v).trim().to_owned(),
    }
}

fn record_route(msg: &Message) -> Vec<String> {
    msg.headers_named(HeaderName::RecordRoute)
        .flat_map(|h| {
            split_commas(h.value)
                .map(|s| s.trim().to_owned())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn contact_uri(msg: &Message) -> Option<String> {
    msg.header(HeaderName::Contact).map(|h| {
        let first = split_commas(h.value).next().unwrap_or(h.value);
        addr_spec(first)
    })
}

impl Dialog {
    /// The UAC's dialog from a response with a To tag to the request it sent (§12.1.2).
    pub(crate) fn from_response(request: &Message, response: &Message) -> Option<Dialog> {
        let mut route_set = record_route(response);
        route_set.reverse();
        Some(Dialog {
            call_id: request.call_id().to_owned(),
            local_tag: request.from_tag()?.to_owned(),
            remote_tag: response.to_tag()?.to_owned(),
            local_uri: addr_spec(request.header(HeaderName::From)?.value),
            remote_uri: addr_spec(request.header(HeaderName::To)?.value),
            remote_target: contact_uri(response)?,
            route_set,
            remote_seq: None,
        })
    }

    /// The UAS's dialog from the INVITE it answers with `local_tag` (§12.1.1).
    pub(crate) fn from_request(request: &Message, local_tag: &str) -> Option<Dialog> {
        Some(Dialog {
            call_id: request.call_id().to_owned(),
            local_tag: local_tag.to_owned(),
            remote_tag: request.from_tag()?.to_owned(),
            local_uri: addr_spec(request.header(HeaderName::To)?.value),
            remote_uri: addr_spec(request.header(HeaderName::From)?.value),
            remote_target: contact_uri(request)?,
            route_set: record_route(request),
            remote_seq: Some(request.cseq().seq),
        })
    }

    /// True when `request` (received) belongs to this dialog: Call-ID, its To tag is ours and
    /// its From tag the peer's (§12.2.2).
    pub(crate) fn matches_request(&self, request: &Message) -> bool {
        request.call_id() == self.call_id
            && request.to_tag() == Some(self.local_tag.as_str())
            && request.from_tag() == Some(self.remote_tag.as_str())
    }

    /// A request in this dialog (§12.2.1.1), without Via and body; `cseq` is the number to use.
    pub(crate) fn request(&self, method: Method<'_>, cseq: u32) -> MessageBuilder {
        self.request_with_cseq_method(method, cseq, method.as_str())
    }

    /// The ACK for a 2xx (§13.2.2.4): the INVITE's CSeq number with method ACK.
    pub(crate) fn ack(&self, invite_cseq: u32) -> MessageBuilder {
        self.request_with_cseq_method(Method::Ack, invite_cseq, "ACK")
    }

    fn request_with_cseq_method(
        &self,
        method: Method<'_>,
        cseq: u32,
        cseq_method: &str,
    ) -> MessageBuilder {
        let mut b = MessageBuilder::request(method, &self.remote_target);
        for r in &self.route_set {
            b.push("Route", r);
        }
        b.push("Max-Forwards", "70")
            .push(
                "From",
                &format!("<{}>;tag={}", self.local_uri, self.local_tag),
            )
            .push(
                "To",
                &format!("<{}>;tag={}", self.remote_uri, self.remote_tag),
            )
            .push("Call-ID", &self.call_id)
            .push("CSeq", &format!("{cseq} {cseq_method}"));
        b
    }

    /// Where requests of this dialog go first: the first route, else the remote target
    /// (§12.2.1.1, §8.1.2), resolved without DNS.
    pub(crate) fn next_hop(&self, hosts: &[(String, std::net::SocketAddr)]) -> Option<Peer> {
        let uri = self
            .route_set
            .first()
            .map(|r| addr_spec(r))
            .unwrap_or_else(|| self.remote_target.clone());
        match Uri::parse(&uri).ok()? {
            Uri::Sip(u) => resolve(&u, hosts).ok(),
            _ => None,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const INVITE: &str = "INVITE sip:bob@biloxi.example SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bKa\r\n\
Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKb\r\n\
Record-Route: <sip:10.0.0.9;lr>, <sip:10.0.0.8;lr>\r\n\
From: Alice <sip:alice@atlanta.example>;tag=a1\r\n\
To: <sip:bob@biloxi.example>\r\n\
Call-ID: c1\r\n\
CSeq: 7 INVITE\r\n\
Contact: <sip:alice@10.0.0.1:5060>\r\n\
Max-Forwards: 68\r\n\
Content-Length: 0\r\n\r\n";

    #[test]
    fn uas_dialog_routes_through_record_route_in_order() {
        let inv = Message::parse(INVITE.as_bytes().to_vec()).unwrap();
        let d = Dialog::from_request(&inv, "b1").unwrap();
        assert_eq!(d.route_set, vec!["<sip:10.0.0.9;lr>", "<sip:10.0.0.8;lr>"]);
        assert_eq!(d.remote_target, "sip:alice@10.0.0.1:5060");
        assert_eq!(d.remote_seq, Some(7));
        assert_eq!(d.next_hop(&[]).unwrap().to_string(), "udp:10.0.0.9:5060");
        let mut bye = d.request(Method::Bye, 1);
        bye.push_front("Via", "SIP/2.0/UDP 10.0.0.2;branch=z9hG4bKx");
        let bye = bye.build().unwrap();
        assert_eq!(bye.request_uri_str(), Some("sip:alice@10.0.0.1:5060"));
        assert_eq!(bye.from_tag(), Some("b1"));
        assert_eq!(bye.to_tag(), Some("a1"));
        assert_eq!(bye.cseq().seq, 1);
        assert_eq!(bye.route().len(), 2);
    }

    #[test]
    fn uac_dialog_reverses_record_route() {
        let inv = Message::parse(INVITE.as_bytes().to_vec()).unwrap();
        let resp = "SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKb\r\n\
Record-Route: <sip:10.0.0.9;lr>\r\nRecord-Route: <sip:10.0.0.8;lr>\r\n\
From: Alice <sip:alice@atlanta.example>;tag=a1\r\n\
To: <sip:bob@biloxi.example>;tag=b1\r\n\
Call-ID: c1\r\nCSeq: 7 INVITE\r\nContact: <sip:bob@10.0.0.2>\r\nContent-Length: 0\r\n\r\n";
        let resp = Message::parse(resp.as_bytes().to_vec()).unwrap();
        let d = Dialog::from_response(&inv, &resp).unwrap();
        assert_eq!(d.route_set, vec!["<sip:10.0.0.8;lr>", "<sip:10.0.0.9;lr>"]);
        assert_eq!(d.remote_tag, "b1");
        let mut ack = d.ack(7);
        ack.push_front("Via", "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKy");
        let ack = ack.build().unwrap();
        assert_eq!(ack.cseq().seq, 7);
        assert_eq!(ack.cseq().method.as_str(), "ACK");
    }
}
