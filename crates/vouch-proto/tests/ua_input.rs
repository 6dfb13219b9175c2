//! The UA core on bad input: a request it cannot read gets 400 with a Warning naming the
//! problem (RFC 3261 §8.2, RFC 4475), a response it cannot read is dropped, nothing panics.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use bytes::Bytes;
use vouch_msg::{HeaderName, Limits, Message, Transport};
use vouch_proto::endpoint::{Output, Peer, TransportKind};
use vouch_proto::ua::{UaConfig, UaEvent, UserAgent};

fn ua() -> UserAgent {
    UserAgent::new(UaConfig::new(
        "sip:bob@biloxi.example",
        (TransportKind::Udp, "127.0.0.1:5062".parse().unwrap()),
        Peer::new(TransportKind::Udp, "127.0.0.1:5060".parse().unwrap()),
    ))
}

fn drain(ua: &mut UserAgent) -> (Vec<(Peer, Bytes)>, Vec<UaEvent>) {
    let (mut sent, mut events) = (Vec::new(), Vec::new());
    loop {
        match ua.poll_output() {
            Output::Transmit { to, bytes } => sent.push((to, bytes)),
            Output::Event(e) => events.push(e),
            Output::Timeout(_) => return (sent, events),
        }
    }
}

const BAD_CONTACT: &str = "INVITE sip:bob@biloxi.example SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKbad\r\nMax-Forwards: 70\r\n\
From: <sip:m@evil.example>;tag=1\r\nTo: <sip:bob@biloxi.example>\r\n\
Call-ID: bad\r\nCSeq: 1 INVITE\r\nContact: <sip:m@127.0.0.1\r\nContent-Length: 0\r\n\r\n";

#[test]
fn unreadable_request_gets_400_with_a_warning() {
    let mut ua = ua();
    let from = Peer::new(TransportKind::Udp, "127.0.0.1:5070".parse().unwrap());
    ua.handle_receive(
        Instant::now(),
        1_800_000_000,
        from.clone(),
        Bytes::from(BAD_CONTACT),
    );
    let (sent, events) = drain(&mut ua);
    assert_eq!(sent.len(), 1, "{events:?}");
    let text = String::from_utf8_lossy(&sent[0].1).to_string();
    assert_eq!(sent[0].0, from);
    assert!(text.starts_with("SIP/2.0 400 "), "{text}");
    assert!(
        text.contains("Warning: 399 ") && text.contains("missing '>' in Contact"),
        "{text}"
    );
    assert!(
        matches!(events[..], [UaEvent::RequestRefused { status: 400, .. }]),
        "{events:?}"
    );
}

#[test]
fn unreadable_response_and_garbage_are_dropped_without_panic() {
    let mut ua = ua();
    let from = Peer::new(TransportKind::Udp, "127.0.0.1:5070".parse().unwrap());
    for junk in [
        &b"SIP/2.0 200 OK\r\nVia: nonsense\r\n\r\n"[..],
        b"\x00\x01\x02garbage",
        b"",
        b"INVITE\r\n\r\n",
    ] {
        ua.handle_receive(
            Instant::now(),
            1_800_000_000,
            from.clone(),
            Bytes::copy_from_slice(junk),
        );
        let (sent, _) = drain(&mut ua);
        assert!(sent.is_empty(), "answered {junk:?}");
    }
}

#[test]
fn under_raised_limits_an_invite_with_many_record_routes_is_answered() {
    // 300 Record-Route fields: over the default 256 header fields, under the configured
    // 512. The 180 and 200 copy them all (RFC 3261 §12.1.1), so they too are built under the
    // configured limits, not the defaults.
    let limits = Limits {
        max_headers: 512,
        ..Limits::DEFAULT
    };
    let mut config = UaConfig::new(
        "sip:bob@biloxi.example",
        (TransportKind::Udp, "127.0.0.1:5062".parse().unwrap()),
        Peer::new(TransportKind::Udp, "127.0.0.1:5060".parse().unwrap()),
    );
    config.limits = limits;
    let mut ua = UserAgent::new(config);
    let record_routes: String = (0..300)
        .map(|i| format!("Record-Route: <sip:p{i}.example;lr>\r\n"))
        .collect();
    let invite = format!(
        "INVITE sip:bob@127.0.0.1:5062 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKrr\r\nMax-Forwards: 70\r\n\
From: <sip:alice@atlanta.example>;tag=a\r\nTo: <sip:bob@biloxi.example>\r\n\
Call-ID: many-rr\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@127.0.0.1:5070>\r\n\
{record_routes}Content-Length: 0\r\n\r\n"
    );
    assert!(
        Message::parse(invite.clone().into_bytes()).is_err(),
        "over the default limits"
    );
    let from = Peer::new(TransportKind::Udp, "127.0.0.1:5060".parse().unwrap());
    ua.handle_receive(Instant::now(), 1_800_000_000, from, Bytes::from(invite));
    let (sent, events) = drain(&mut ua);
    let statuses: Vec<(u16, usize)> = sent
        .iter()
        .map(|(_, b)| Message::parse_with(b.clone(), &limits, Transport::Datagram).unwrap())
        .filter_map(|m| {
            let rr = m.headers_named(HeaderName::RecordRoute).count();
            m.status().map(|s| (s, rr))
        })
        .collect();
    assert!(
        statuses.iter().any(|&(s, rr)| s == 200 && rr == 300),
        "{statuses:?} {events:?}"
    );
}

/// An OPTIONS without Content-Length: legal in a datagram, not on a stream.
const NO_CONTENT_LENGTH: &str = "OPTIONS sip:bob@biloxi.example SIP/2.0\r\n\
Via: SIP/2.0/TCP 127.0.0.1:5070;branch=z9hG4bKnocl\r\nMax-Forwards: 70\r\n\
From: <sip:m@atlanta.example>;tag=1\r\nTo: <sip:bob@biloxi.example>\r\n\
Call-ID: nocl\r\nCSeq: 1 OPTIONS\r\n\r\n";

/// RFC 3261 §18.3: on a stream Content-Length is mandatory, so the UA reads what a TCP or TLS
/// flow delivers under stream rules and refuses a request without it, as the server does.
#[test]
fn request_without_content_length_is_refused_on_a_stream_but_not_over_udp() {
    for (transport, refused) in [
        (TransportKind::Udp, false),
        (TransportKind::Tcp, true),
        (TransportKind::Tls, true),
    ] {
        let mut ua = ua();
        let from = Peer::new(transport, "127.0.0.1:5070".parse().unwrap());
        ua.handle_receive(
            Instant::now(),
            1_800_000_000,
            from.clone(),
            Bytes::from(NO_CONTENT_LENGTH),
        );
        let (sent, events) = drain(&mut ua);
        assert_eq!(sent.len(), 1, "{transport:?}: {events:?}");
        let text = String::from_utf8_lossy(&sent[0].1).to_string();
        assert_eq!(
            text.starts_with("SIP/2.0 400 "),
            refused,
            "{transport:?}: {text}"
        );
        assert_eq!(
            matches!(events[..], [UaEvent::RequestRefused { status: 400, .. }]),
            refused,
            "{transport:?}: {events:?}"
        );
    }
}
