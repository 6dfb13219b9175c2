//! `MessageBuilder::remove_first` and `insert_before` (the edits a proxy makes to Via and a
//! UA to its requests): exact output bytes, untouched fields byte for byte, names matched in
//! compact form and case-insensitively, and Content-Length right afterwards.

use vouch_msg::{Message, MessageBuilder, Method};

/// Two Via fields (the first in compact form), two fields of one extension header written in
/// different case, and a 4-byte body.
const RAW: &str = "OPTIONS sip:a@example.com SIP/2.0\r\n\
v: SIP/2.0/UDP p.example.com;branch=z9hG4bKp\r\n\
Via: SIP/2.0/UDP h.example.com;branch=z9hG4bK1\r\n\
From: <sip:c@example.com>;tag=1\r\n\
To: <sip:a@example.com>\r\n\
X-Trace :  one \r\n\
Call-ID: x\r\n\
CSeq: 1 OPTIONS\r\n\
x-trace: two\r\n\
Content-Length: 4\r\n\
\r\n\
body";

fn parsed() -> Message {
    Message::parse(RAW.as_bytes().to_vec()).expect("valid message")
}

/// `RAW` with `line` (CRLF included) taken out.
fn without(line: &str) -> String {
    assert_eq!(RAW.matches(line).count(), 1, "{line:?} once in RAW");
    RAW.replacen(line, "", 1)
}

fn text(m: &Message) -> &str {
    std::str::from_utf8(m.as_bytes()).expect("text")
}

#[test]
fn remove_first_removes_only_the_first_field_of_that_name() {
    let mut e = parsed().edit();
    // `Via` matches the compact `v` line, which comes first.
    assert!(e.remove_first("Via"));
    let m = e.build().expect("still valid");
    let expected = without("v: SIP/2.0/UDP p.example.com;branch=z9hG4bKp\r\n");
    assert_eq!(text(&m), expected);
    assert_eq!(m.via_count(), 1);
    assert_eq!(m.top_via_branch(), Some("z9hG4bK1"));
    assert_eq!(m.content_length(), Some(4));
    assert_eq!(m.body_bytes(), b"body");

    // Extension headers match by name without regard to case; only the first goes.
    assert!(e.remove_first("X-TRACE"));
    let m = e.build().expect("still valid");
    let expected = expected.replacen("X-Trace :  one \r\n", "", 1);
    assert_eq!(text(&m), expected);
    assert_eq!(m.headers_named_str("x-trace").count(), 1);

    // Nothing of that name: false, and the message is unchanged.
    assert!(!e.remove_first("Subject"));
    assert_eq!(text(&e.build().expect("valid")), expected);
}

#[test]
fn remove_first_content_length_gets_a_new_one_after_the_last_field() {
    let raw = RAW.replacen(
        "x-trace: two\r\nContent-Length: 4\r\n",
        "l: 4\r\nx-trace: two\r\n",
        1,
    );
    let m = Message::parse(raw.clone().into_bytes()).expect("valid");
    let mut e = m.edit();
    // Matched by its full name although written `l`.
    assert!(e.remove_first("Content-Length"));
    let m = e.build().expect("valid");
    let expected = raw.replacen(
        "l: 4\r\nx-trace: two\r\n",
        "x-trace: two\r\nContent-Length: 4\r\n",
        1,
    );
    assert_eq!(text(&m), expected);
    assert_eq!(m.content_length(), Some(4));
    assert_eq!(m.body_bytes(), b"body");
}

#[test]
fn insert_before_puts_the_field_ahead_of_the_first_of_that_name() {
    let mut e = parsed().edit();
    e.insert_before("Via", "Via", "SIP/2.0/TCP q.example.com;branch=z9hG4bKq")
        .insert_before("x-TRACE", "Subject", "hello")
        .insert_before("Content-Length", "Contact", "<sip:c@192.0.2.1>")
        // No Record-Route: appended after the last field.
        .insert_before("Record-Route", "Warning", "399 q.example.com \"appended\"");
    let m = e.build().expect("valid");
    let expected = "OPTIONS sip:a@example.com SIP/2.0\r\n\
Via: SIP/2.0/TCP q.example.com;branch=z9hG4bKq\r\n\
v: SIP/2.0/UDP p.example.com;branch=z9hG4bKp\r\n\
Via: SIP/2.0/UDP h.example.com;branch=z9hG4bK1\r\n\
From: <sip:c@example.com>;tag=1\r\n\
To: <sip:a@example.com>\r\n\
Subject: hello\r\n\
X-Trace :  one \r\n\
Call-ID: x\r\n\
CSeq: 1 OPTIONS\r\n\
x-trace: two\r\n\
Contact: <sip:c@192.0.2.1>\r\n\
Content-Length: 4\r\n\
Warning: 399 q.example.com \"appended\"\r\n\
\r\n\
body";
    assert_eq!(text(&m), expected);
    assert_eq!(m.via_count(), 3);
    assert_eq!(m.top_via_branch(), Some("z9hG4bKq"));
    assert_eq!(m.content_length(), Some(4));
    assert_eq!(m.body_bytes(), b"body");
}

#[test]
fn insert_before_content_length_with_a_new_body_rewrites_content_length_in_place() {
    let mut e = parsed().edit();
    e.insert_before("Content-Length", "Contact", "<sip:c@192.0.2.1>")
        .set_body(None, &b"a longer body"[..]);
    let m = e.build().expect("valid");
    let expected = without("body").replacen(
        "Content-Length: 4\r\n\r\n",
        "Contact: <sip:c@192.0.2.1>\r\nContent-Length: 13\r\n\r\na longer body",
        1,
    );
    assert_eq!(text(&m), expected);
    assert_eq!(m.content_length(), Some(13));
    assert_eq!(m.body_bytes(), b"a longer body");
}

#[test]
fn insert_before_and_remove_first_on_a_new_request() {
    let mut b = MessageBuilder::request(Method::Message, "sip:bob@example.com");
    b.push("Via", "SIP/2.0/UDP a.example.com;branch=z9hG4bKa")
        .push("From", "<sip:alice@example.com>;tag=9")
        .push("To", "<sip:bob@example.com>")
        .push("Call-ID", "c1")
        .push("CSeq", "7 MESSAGE")
        .insert_before("CSeq", "Max-Forwards", "70")
        .insert_before("From", "Route", "<sip:p.example.com;lr>")
        .set_body(Some("text/plain"), &b"hi"[..]);
    assert!(b.remove_first("Route"));
    let m = b.build().expect("valid");
    assert_eq!(
        text(&m),
        "MESSAGE sip:bob@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP a.example.com;branch=z9hG4bKa\r\n\
From: <sip:alice@example.com>;tag=9\r\n\
To: <sip:bob@example.com>\r\n\
Call-ID: c1\r\n\
Max-Forwards: 70\r\n\
CSeq: 7 MESSAGE\r\n\
Content-Type: text/plain\r\n\
Content-Length: 2\r\n\
\r\n\
hi"
    );
    assert_eq!(m.content_length(), Some(2));
    assert_eq!(m.max_forwards(), Some(70));
}
