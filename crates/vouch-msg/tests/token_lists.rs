//! Option-tag lists (Require, Supported, Proxy-Require; RFC 3261 §20.29, §20.32, §20.37):
//! `option-tag *(COMMA option-tag)` with `COMMA = SWS "," SWS`. White space and folding around
//! the commas are accepted; an empty item or a character outside `token` is refused with the
//! offset of the offending byte.

use vouch_msg::headers::basic::parse_token_list;
use vouch_msg::{ErrorKind, HeaderName, Message};

#[test]
fn lws_and_folding_around_commas_are_accepted() {
    for value in [
        "100rel,timer,path",
        "100rel , timer ,path",
        "100rel\t,\ttimer,  path  ",
        "100rel,\r\n timer ,\r\n\tpath",
    ] {
        assert_eq!(
            parse_token_list(value).unwrap_or_else(|e| panic!("{value:?}: {e}")),
            ["100rel", "timer", "path"],
            "{value:?}"
        );
    }
    // Every token character of RFC 3261 §25.1 is allowed in a tag.
    assert_eq!(
        parse_token_list("a-b.c!d%e*f_g+h`i'j~k").expect("token characters"),
        ["a-b.c!d%e*f_g+h`i'j~k"]
    );
}

#[test]
fn empty_items_are_refused_at_the_empty_item() {
    for (value, at) in [
        ("a,,b", 2),
        ("a, ,b", 3),
        (",a", 0),
        ("a,", 2),
        ("a,\r\n ,b", 5),
    ] {
        let e = parse_token_list(value).expect_err(value);
        assert_eq!(
            (e.kind(), e.status(), e.offset()),
            (ErrorKind::BadHeaderValue, 400, at),
            "{value:?}"
        );
        assert_eq!(e.detail(), "malformed token list");
    }
}

#[test]
fn non_token_characters_are_refused_at_the_character() {
    for (value, at) in [
        ("100rel, tim@r", 11),
        ("a b", 1),
        ("timer;x=1", 5),
        ("\"100rel\"", 0),
        ("a/b", 1),
        ("100rel, tïmer", 9),
        ("a, b c", 4),
    ] {
        let e = parse_token_list(value).expect_err(value);
        assert_eq!(
            (e.kind(), e.status(), e.offset()),
            (ErrorKind::BadHeaderValue, 400, at),
            "{value:?}"
        );
    }
}

/// The list headers of a parsed message (compact `k` and folded lines included) read through
/// `parse_token_list`; the parser itself already refuses a malformed Require or Proxy-Require.
#[test]
fn list_headers_of_a_message_read_as_token_lists() {
    let raw = |proxy_require: &str| {
        format!(
            "OPTIONS sip:a@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP h.example.com;branch=z9hG4bK1\r\n\
From: <sip:c@example.com>;tag=1\r\n\
To: <sip:a@example.com>\r\n\
Call-ID: x\r\n\
CSeq: 1 OPTIONS\r\n\
Require: 100rel ,\r\n timer\r\n\
k: path,gruu\r\n\
Proxy-Require: {proxy_require}\r\n\
Content-Length: 0\r\n\r\n"
        )
        .into_bytes()
    };
    let m = Message::parse(raw("sec-agree")).expect("valid message");
    let list = |name| parse_token_list(m.header(name).expect("header present").value);
    assert_eq!(
        list(HeaderName::Require).expect("Require"),
        ["100rel", "timer"]
    );
    assert_eq!(list(HeaderName::Supported).expect("k"), ["path", "gruu"]);
    assert_eq!(
        list(HeaderName::ProxyRequire).expect("one tag"),
        ["sec-agree"]
    );
    // Require and Proxy-Require are read at parse time (an element's 420 must name tags it
    // could read): a malformed or empty list is a 400 pointing into the field.
    let start = String::from_utf8(raw("sec-agree,,x"))
        .unwrap()
        .find("sec-agree")
        .unwrap();
    let e = Message::parse(raw("sec-agree,,x")).expect_err("empty item in Proxy-Require");
    assert_eq!(
        (e.kind(), e.status(), e.offset()),
        (ErrorKind::BadHeaderValue, 400, start + 10)
    );
    assert_eq!(e.header(), Some("Proxy-Require"));
    let e = Message::parse(raw("")).expect_err("empty Proxy-Require");
    assert_eq!((e.kind(), e.status()), (ErrorKind::BadHeaderValue, 400));
}
