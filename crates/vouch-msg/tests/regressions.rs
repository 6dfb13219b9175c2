//! Regression tests for parser bugs found by `tests/conformance.rs` and `tests/proptest.rs`.

use bytes::Bytes;
use vouch_msg::{ErrorKind, Limits, Message, StreamDecoder, Transport, Uri};

const HEAD: &str = "OPTIONS sip:a@example.com SIP/2.0\r\n\
Via: SIP/2.0/TCP h.example.com;branch=z9hG4bK1\r\n\
From: <sip:c@example.com>;tag=1\r\n\
To: <sip:a@example.com>\r\n\
Call-ID: x\r\n\
CSeq: 1 OPTIONS\r\n";

fn with(extra: &str, tail: &str) -> Bytes {
    Bytes::from(format!("{HEAD}{extra}{tail}"))
}

/// URI parameter names are `paramchar`s, not tokens: iterating `;a[b]` used to loop forever
/// (an empty name that consumed nothing), exhausting memory in `Vec::from_iter`.
#[test]
fn uri_parameter_names_with_non_token_characters_iterate() {
    let u = Uri::parse("sip:host.example.com;a[b]=c/d;x:y;lr;%41$&+").expect("valid URI");
    let params: Vec<_> = u.as_sip().expect("sip").params().iter().collect();
    assert_eq!(
        params,
        [
            ("a[b]", Some("c/d")),
            ("x:y", None),
            ("lr", None),
            ("%41$&+", None)
        ]
    );
    assert!(u.as_sip().expect("sip").is_loose_route());
    // The same inside a message, through every accessor that reads parameters.
    let m = Message::parse(with(
        "Contact: <sip:b@example.com;a[b]=c;lr>;expires=5\r\n",
        "Content-Length: 0\r\n\r\n",
    ))
    .expect("valid message");
    let c = m.contacts();
    let addr = c[0].addr().expect("address");
    assert_eq!(addr.uri().as_sip().expect("sip").params().iter().count(), 2);
    assert_eq!(c[0].expires(), Some(5));
}

/// `sent-by = host [ COLON port ]` with `COLON = SWS ":" SWS`: white space after the colon
/// used to fail with "bad port".
#[test]
fn via_port_after_colon_and_white_space() {
    for via in [
        "SIP/2.0/UDP a.example.com: 5060;branch=z9hG4bK2",
        "SIP/2.0/UDP a.example.com : 5060;branch=z9hG4bK2",
        "SIP/2.0/UDP a.example.com:\r\n 5060;branch=z9hG4bK2",
        "SIP/2.0/UDP [2001:db8::1] :5060;branch=z9hG4bK2",
        "SIP/2.0/UDP a.example.com:5060;branch=z9hG4bK2",
    ] {
        let m = Message::parse(with(
            &format!("Via: {via}\r\n"),
            "Content-Length: 0\r\n\r\n",
        ))
        .unwrap_or_else(|e| panic!("{via:?}: {e}"));
        assert_eq!(m.vias()[1].port(), Some(5060), "{via:?}");
        assert_eq!(m.vias()[1].branch(), Some("z9hG4bK2"), "{via:?}");
    }
    for bad in [
        "SIP/2.0/UDP a.example.com: ;branch=z9hG4bK2",
        "SIP/2.0/UDP a.example.com:65536",
        "SIP/2.0/UDP a.example.com:x",
    ] {
        let e = Message::parse(with(
            &format!("Via: {bad}\r\n"),
            "Content-Length: 0\r\n\r\n",
        ))
        .expect_err(bad);
        assert_eq!(e.status(), 400, "{bad:?}");
    }
}

/// The stream decoder read Content-Length line by line and failed on a folded value, which the
/// message parser (and RFC 3261 §7.3.1) accepts.
#[test]
fn stream_decoder_reads_a_folded_content_length() {
    for cl in [
        "Content-Length:\r\n 4\r\n",
        "l :\r\n\t 4 \r\n",
        "Content-Length: \r\n  4\r\n",
    ] {
        let raw = with("", &format!("{cl}\r\nbody"));
        let mut d = StreamDecoder::new(Limits::DEFAULT);
        d.push(&raw);
        let m = d
            .decode()
            .unwrap_or_else(|e| panic!("{cl:?}: {e}"))
            .expect("a complete message");
        assert_eq!(m.body_bytes(), b"body");
        assert_eq!(m.as_bytes(), &raw);
        assert_eq!(d.buffered(), 0);
        let direct = Message::parse_with(raw.clone(), &Limits::DEFAULT, Transport::Stream)
            .expect("parser agrees");
        assert_eq!(direct.content_length(), Some(4));
    }
    // A continuation line is not a header of its own: ` l: 9` belongs to X-A.
    let raw = with("X-A: a\r\n l: 9\r\n", "Content-Length: 0\r\n\r\n");
    let mut d = StreamDecoder::new(Limits::DEFAULT);
    d.push(&raw);
    let m = d.decode().expect("no error").expect("a message");
    assert_eq!(m.content_length(), Some(0));
    // The start line is not a header either.
    let raw = Bytes::from(HEAD.replacen("OPTIONS sip:a@example.com", "l:9 sip:a@b", 1) + "\r\n");
    let mut d = StreamDecoder::new(Limits::DEFAULT);
    d.push(&raw);
    assert_eq!(
        d.decode().expect_err("no Content-Length").kind(),
        ErrorKind::MissingContentLengthOnStream
    );
}

/// A CR that does not end a line used to be kept inside a header value, so an element that
/// takes a bare CR for a line break would see a header field (here a second From) this parser
/// did not validate.
#[test]
fn bare_cr_in_the_header_section_is_refused() {
    for extra in [
        "X-A: a\rFrom: <sip:evil@example.com>;tag=2\r\n",
        "X-A: a\r\r\n",
        "Subject: x\r \r\n",
    ] {
        let e = Message::parse(with(extra, "Content-Length: 0\r\n\r\n")).expect_err(extra);
        assert_eq!(
            (e.status(), e.kind()),
            (400, ErrorKind::BadHeaderLine),
            "{extra:?}"
        );
        let mut d = StreamDecoder::new(Limits::DEFAULT);
        d.push(&with(extra, "Content-Length: 0\r\n\r\n"));
        assert_eq!(d.decode().expect_err(extra).status(), 400);
    }
    // CR in the body is data.
    let m = Message::parse(with("", "Content-Length: 3\r\n\r\na\rb")).expect("CR in body");
    assert_eq!(m.body_bytes(), b"a\rb");
    // LF-only line ends stay accepted.
    let lf = with("", "Content-Length: 0\r\n\r\n").to_vec();
    let lf = String::from_utf8(lf).expect("text").replace("\r\n", "\n");
    assert!(Message::parse(lf.into_bytes()).is_ok());
}

/// Spans are 32-bit: a limit above 4 GiB must not admit messages the spans cannot address.
#[test]
fn huge_limits_are_clamped() {
    let limits = Limits {
        max_message_size: usize::MAX,
        ..Limits::DEFAULT
    };
    let m = Message::parse_with(
        with("", "Content-Length: 0\r\n\r\n"),
        &limits,
        Transport::Datagram,
    )
    .expect("small message");
    assert_eq!(m.cseq().seq, 1);
}

/// Editing a message written with bare LF keeps bare LF: an edit never mixes line ends.
#[test]
fn edit_of_lf_only_message_keeps_lf() {
    let raw = "OPTIONS sip:a@b SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\nFrom: <sip:c@d>;tag=1\nTo: <sip:a@b>\nCall-ID: x\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n";
    let m = vouch_msg::Message::parse(raw.as_bytes().to_vec()).unwrap();
    let mut e = m.edit();
    e.push_front("Via", "SIP/2.0/UDP p;branch=z9hG4bK2")
        .set_request_uri("sip:a@192.0.2.1")
        .set_body(Some("text/plain"), &b"hi"[..]);
    let out = e.build().unwrap();
    let bytes = out.as_bytes();
    assert!(
        !bytes.windows(2).any(|w| w == b"\r\n"),
        "{}",
        String::from_utf8_lossy(bytes)
    );
    assert_eq!(out.via_count(), 2);
    assert_eq!(out.body_bytes(), b"hi");
}

/// `first_contact_addr` is the first address Contact that `contacts()` lists, `*` skipped, for
/// one, several, folded and compact Contact fields.
#[test]
fn first_contact_addr_agrees_with_contacts() {
    for contacts in [
        "Contact: <sip:a@10.0.0.1>\r\n",
        "Contact: \"A\" <sip:a@10.0.0.1>;q=0.5, <sip:b@10.0.0.2>\r\n",
        "m: sip:c@host.example;expires=60\r\nContact: <sip:d@10.0.0.4>\r\n",
        "Contact: <sip:e@10.0.0.5>,\r\n <sip:f@10.0.0.6>\r\n",
        "",
    ] {
        let m = Message::parse(with(contacts, "Content-Length: 0\r\n\r\n")).unwrap();
        let expected = m
            .contacts()
            .iter()
            .find_map(|c| c.addr().map(|a| a.uri().as_str().to_owned()));
        let got = m.first_contact_addr().map(|a| a.uri().as_str().to_owned());
        assert_eq!(got, expected, "{contacts:?}");
    }
    let star = "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKs\r\n\
From: <sip:a@example.com>;tag=1\r\nTo: <sip:a@example.com>\r\nCall-ID: s\r\n\
CSeq: 2 REGISTER\r\nContact: *\r\nExpires: 0\r\nContent-Length: 0\r\n\r\n";
    let m = Message::parse(star.as_bytes().to_vec()).unwrap();
    assert!(m.first_contact_addr().is_none());
    assert_eq!(m.contacts().len(), 1);
}
