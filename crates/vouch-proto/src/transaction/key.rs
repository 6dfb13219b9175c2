//! Transaction keys: how a response finds its client transaction (RFC 3261 §17.1.3) and a
//! request its server transaction (§17.2.3, including the RFC 2543 fallback).

use std::fmt;

use vouch_msg::{Message, Method};

/// Identifies a client transaction: the branch of the top Via of the request it sent and that
/// request's method (§17.1.3). A CANCEL shares the INVITE's branch, so the method is part of
/// the key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientTransactionKey {
    branch: Box<str>,
    method: Box<str>,
}

impl ClientTransactionKey {
    /// The key a request sent by a client transaction creates (top Via branch, method).
    pub fn for_request(request: &Message) -> Option<Self> {
        Some(ClientTransactionKey {
            branch: request.top_via_branch()?.into(),
            method: request.method()?.as_str().into(),
        })
    }

    /// The key a response matches (§17.1.3: top Via branch and CSeq method).
    pub fn for_response(response: &Message) -> Option<Self> {
        response.status()?;
        Some(ClientTransactionKey {
            branch: response.top_via_branch()?.into(),
            method: response.cseq().method.as_str().into(),
        })
    }

    /// The branch parameter.
    pub fn branch(&self) -> &str {
        &self.branch
    }

    /// The method of the request that created the transaction.
    pub fn method(&self) -> Method<'_> {
        Method::from_token(&self.method)
    }
}

impl fmt::Display for ClientTransactionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.branch, self.method)
    }
}

/// Identifies a server transaction (§17.2.3). For an RFC 3261 branch (magic cookie): the
/// branch, the sent-by of the top Via and the method, with ACK counted as INVITE. Otherwise
/// (RFC 2543 peers): Request-URI, From tag, Call-ID, CSeq number, the top Via and the method.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServerTransactionKey(ServerKey);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum ServerKey {
    Rfc3261 {
        branch: Box<str>,
        sent_by: Box<str>,
        method: Box<str>,
    },
    /// RFC 2543 matching. Simplification: the To tag is not part of the key; for an ACK it is
    /// checked against the To tag of the response sent (see `TransactionLayer`).
    Rfc2543 {
        request_uri: Box<str>,
        from_tag: Option<Box<str>>,
        call_id: Box<str>,
        cseq: u32,
        top_via: Box<str>,
        method: Box<str>,
    },
}

impl ServerTransactionKey {
    /// The key of the transaction a request belongs to (an ACK belongs to its INVITE's).
    pub fn for_request(request: &Message) -> Option<Self> {
        let method = match request.method()? {
            Method::Ack => Method::Invite,
            m => m,
        };
        Self::with_method_of(request, method)
    }

    /// The key of the INVITE server transaction a CANCEL (or any request) would cancel (§9.2):
    /// the same matching rules with the method replaced by INVITE.
    pub fn for_cancelled_invite(request: &Message) -> Option<Self> {
        Self::with_method_of(request, Method::Invite)
    }

    fn with_method_of(request: &Message, method: Method<'_>) -> Option<Self> {
        let via = request.top_via()?;
        let method: Box<str> = method.as_str().into();
        if via.has_rfc3261_branch() {
            let host = via.host_str().to_ascii_lowercase();
            let sent_by = match via.port() {
                Some(p) => format!("{host}:{p}"),
                None => host,
            };
            return Some(ServerTransactionKey(ServerKey::Rfc3261 {
                branch: via.branch()?.into(),
                sent_by: sent_by.into(),
                method,
            }));
        }
        let top_via = request
            .header(vouch_msg::HeaderName::Via)
            .and_then(|h| vouch_msg::split_commas(h.value).next())?;
        Some(ServerTransactionKey(ServerKey::Rfc2543 {
            request_uri: request.request_uri_str()?.into(),
            from_tag: request.from_tag().map(Into::into),
            call_id: request.call_id().into(),
            cseq: request.cseq().seq,
            top_via: top_via.into(),
            method,
        }))
    }

    /// True when the request carried an RFC 3261 branch (magic cookie).
    pub fn is_rfc3261(&self) -> bool {
        matches!(self.0, ServerKey::Rfc3261 { .. })
    }

    /// The branch, for an RFC 3261 key.
    pub fn branch(&self) -> Option<&str> {
        match &self.0 {
            ServerKey::Rfc3261 { branch, .. } => Some(branch),
            ServerKey::Rfc2543 { .. } => None,
        }
    }

    /// The method of the request that created the transaction (INVITE for an ACK).
    pub fn method(&self) -> Method<'_> {
        match &self.0 {
            ServerKey::Rfc3261 { method, .. } | ServerKey::Rfc2543 { method, .. } => {
                Method::from_token(method)
            }
        }
    }
}

impl fmt::Display for ServerTransactionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            ServerKey::Rfc3261 {
                branch,
                sent_by,
                method,
            } => write!(f, "{branch}@{sent_by}/{method}"),
            ServerKey::Rfc2543 {
                call_id,
                cseq,
                method,
                ..
            } => write!(f, "2543:{call_id}/{cseq}/{method}"),
        }
    }
}

/// Either kind of key: names the transaction behind a [`crate::transaction::Transmit`] or an
/// event.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TransactionKey {
    /// A client transaction.
    Client(ClientTransactionKey),
    /// A server transaction.
    Server(ServerTransactionKey),
}

impl fmt::Display for TransactionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransactionKey::Client(k) => write!(f, "client {k}"),
            TransactionKey::Server(k) => write!(f, "server {k}"),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn req(method: &str, via: &str) -> Message {
        let s = format!(
            "{method} sip:b@example.com SIP/2.0\r\nVia: {via}\r\nFrom: <sip:a@example.com>;tag=f\r\nTo: <sip:b@example.com>\r\nCall-ID: c1\r\nCSeq: 7 {method}\r\nContent-Length: 0\r\n\r\n"
        );
        Message::parse(s.into_bytes()).unwrap()
    }

    #[test]
    fn ack_matches_invite_key_but_cancel_does_not() {
        let via = "SIP/2.0/UDP Host.Example.com:5060;branch=z9hG4bKabc";
        let inv = ServerTransactionKey::for_request(&req("INVITE", via));
        let ack = ServerTransactionKey::for_request(&req("ACK", via));
        let cancel = ServerTransactionKey::for_request(&req("CANCEL", via)).unwrap();
        assert_eq!(inv, ack);
        assert_ne!(inv.as_ref(), Some(&cancel));
        assert_eq!(
            ServerTransactionKey::for_cancelled_invite(&req("CANCEL", via)),
            inv
        );
    }

    #[test]
    fn sent_by_distinguishes_equal_branches() {
        let a = ServerTransactionKey::for_request(&req(
            "OPTIONS",
            "SIP/2.0/UDP a.example.com;branch=z9hG4bKsame",
        ));
        let b = ServerTransactionKey::for_request(&req(
            "OPTIONS",
            "SIP/2.0/UDP b.example.com;branch=z9hG4bKsame",
        ));
        let a2 = ServerTransactionKey::for_request(&req(
            "OPTIONS",
            "SIP/2.0/UDP A.EXAMPLE.COM;branch=z9hG4bKsame",
        ));
        assert_ne!(a, b);
        assert_eq!(a, a2, "host comparison is case-insensitive");
    }

    #[test]
    fn branch_without_cookie_uses_rfc2543_key() {
        let k =
            ServerTransactionKey::for_request(&req("INVITE", "SIP/2.0/UDP h;branch=old1")).unwrap();
        assert!(!k.is_rfc3261());
        let k2 = ServerTransactionKey::for_request(&req("INVITE", "SIP/2.0/UDP h")).unwrap();
        assert!(!k2.is_rfc3261());
        assert_ne!(k, k2);
    }

    #[test]
    fn client_key_uses_cseq_method_of_response() {
        let r = Message::parse(
            &b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:b@h>;tag=2\r\nCall-ID: c\r\nCSeq: 1 CANCEL\r\nContent-Length: 0\r\n\r\n"[..],
        )
        .unwrap();
        let k = ClientTransactionKey::for_response(&r).unwrap();
        assert_eq!(k.method(), Method::Cancel);
        assert_eq!(k.branch(), "z9hG4bKx");
    }
}
