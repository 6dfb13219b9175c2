//! The limits of [`Limits`]: each one admits a message exactly at the limit and refuses one a
//! byte (or a field, or a Via value) over it, with the right kind, status, offset and detail —
//! as a datagram (`Message::parse_with`) and on a stream (`StreamDecoder`). Also the documented
//! defaults, and that `Message::parse` applies them.

use bytes::Bytes;
use vouch_msg::{ErrorKind, Limits, Message, ParseError, StreamDecoder, Transport};

/// Start line and five header fields (Via, From, To, Call-ID, CSeq); `message` adds
/// Content-Length, so the smallest message has six fields and one Via value.
const START: &str = "OPTIONS sip:a@example.com SIP/2.0\r\n";
const FIELDS: &str = "Via: SIP/2.0/TCP h.example.com;branch=z9hG4bK1\r\n\
From: <sip:c@example.com>;tag=1\r\n\
To: <sip:a@example.com>\r\n\
Call-ID: x\r\n\
CSeq: 1 OPTIONS\r\n";
const BASE_FIELDS: usize = 6;

fn message(extra: &str, body: &str) -> String {
    format!(
        "{START}{FIELDS}{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// A valid message of exactly `total` bytes (the body pads it).
fn sized(total: usize) -> String {
    // The header section grows with the digits of Content-Length: try each digit count.
    let head = message("", "").len() - 1;
    (1..=10)
        .filter_map(|digits| total.checked_sub(head + digits))
        .map(|n| message("", &"b".repeat(n)))
        .find(|m| m.len() == total)
        .unwrap_or_else(|| panic!("no message of {total} bytes"))
}

/// `n` extension header fields, one per line.
fn fillers(n: usize) -> String {
    (0..n).map(|i| format!("X-Fill-{i}: v\r\n")).collect()
}

/// `n` Via values after the one in `FIELDS`, two values per line (one on the last line when
/// `n` is odd): the limit counts values, not lines.
fn extra_vias(n: usize) -> String {
    let values: Vec<String> = (0..n)
        .map(|i| format!("SIP/2.0/UDP v{i}.example.com;branch=z9hG4bK-v{i}"))
        .collect();
    values
        .chunks(2)
        .map(|c| format!("Via: {}\r\n", c.join(", ")))
        .collect()
}

fn limits(f: impl FnOnce(&mut Limits)) -> Limits {
    let mut l = Limits::DEFAULT;
    f(&mut l);
    l
}

/// The message from feeding `raw` to a stream decoder in one piece.
fn decode_stream(raw: &str, limits: &Limits) -> Result<Message, ParseError> {
    let mut d = StreamDecoder::new(*limits);
    d.push(raw.as_bytes());
    d.decode()
        .map(|m| m.unwrap_or_else(|| panic!("decoder wants more bytes after {}", raw.len())))
}

/// Parses `raw` as a datagram and on a stream; both must accept it whole.
fn assert_accepted(raw: &str, limits: &Limits) -> Message {
    let m = Message::parse_with(Bytes::from(raw.to_owned()), limits, Transport::Datagram)
        .unwrap_or_else(|e| panic!("datagram of {} bytes refused: {e}", raw.len()));
    assert_eq!(
        m.as_bytes(),
        raw.as_bytes(),
        "datagram message is the input"
    );
    let s = decode_stream(raw, limits)
        .unwrap_or_else(|e| panic!("stream message of {} bytes refused: {e}", raw.len()));
    assert_eq!(s.as_bytes(), raw.as_bytes(), "stream message is the input");
    m
}

/// Parses `raw` as a datagram and on a stream; both must refuse it with `kind` and `status`.
/// Returns the two errors (datagram, stream) for the caller to check offsets.
fn assert_refused(
    raw: &str,
    limits: &Limits,
    kind: ErrorKind,
    status: u16,
) -> (ParseError, ParseError) {
    let d = Message::parse_with(Bytes::from(raw.to_owned()), limits, Transport::Datagram)
        .expect_err("datagram over the limit accepted");
    let s = decode_stream(raw, limits).expect_err("stream message over the limit accepted");
    for (what, e) in [("datagram", &d), ("stream", &s)] {
        assert_eq!(e.kind(), kind, "{what}: {e}");
        assert_eq!(e.status(), status, "{what}: {e}");
        assert!(!e.detail().is_empty(), "{what}: no detail");
        assert!(
            e.to_string().contains(e.detail()),
            "{what}: the text names the problem: {e}"
        );
    }
    (d, s)
}

#[test]
fn defaults_are_64_kib_256_headers_8_kib_lines_64_vias() {
    assert_eq!(
        Limits::DEFAULT,
        Limits {
            max_message_size: 64 * 1024,
            max_headers: 256,
            max_line_length: 8 * 1024,
            max_vias: 64,
        }
    );
    assert_eq!(Limits::default(), Limits::DEFAULT);
}

#[test]
fn message_size_at_the_limit_is_accepted_and_one_byte_over_gets_513() {
    let l = limits(|l| l.max_message_size = 600);
    assert_accepted(&sized(600), &l);
    let (d, s) = assert_refused(&sized(601), &l, ErrorKind::MessageTooLarge, 513);
    assert_eq!(d.reason_phrase(), "Message Too Large");
    // The datagram is refused at the first byte past the limit.
    assert_eq!(d.offset(), 600);
    // The stream refuses as soon as Content-Length shows the frame will not fit, before the
    // body arrives: the offset is the start of the frame, which is in the received bytes.
    assert_eq!(s.offset(), 0);
}

#[test]
fn stream_refuses_an_endless_header_section_with_513() {
    let l = limits(|l| l.max_message_size = 600);
    let mut d = StreamDecoder::new(l);
    // No empty line yet, but already more bytes than any message may have.
    d.push(format!("{START}{FIELDS}{}", fillers(60)).as_bytes());
    let e = d.decode().expect_err("endless header section accepted");
    assert_eq!((e.kind(), e.status()), (ErrorKind::MessageTooLarge, 513));
    assert_eq!(e.offset(), 600);
}

#[test]
fn header_count_at_the_limit_is_accepted_and_one_more_gets_400() {
    let l = limits(|l| l.max_headers = 12);
    let m = assert_accepted(&message(&fillers(12 - BASE_FIELDS), ""), &l);
    assert_eq!(m.headers().len(), 12);
    let raw = message(&fillers(12 - BASE_FIELDS + 1), "");
    let (d, s) = assert_refused(&raw, &l, ErrorKind::TooManyHeaders, 400);
    // The thirteenth field is Content-Length, the last one.
    let at = raw.find("Content-Length:").expect("Content-Length");
    assert_eq!((d.offset(), s.offset()), (at, at));
}

#[test]
fn header_line_at_the_limit_is_accepted_and_one_byte_longer_gets_400() {
    let l = limits(|l| l.max_line_length = 100);
    let line = |len: usize| format!("X-Long: {}", "a".repeat(len - "X-Long: ".len()));
    let m = assert_accepted(&message(&format!("{}\r\n", line(100)), ""), &l);
    assert_eq!(m.headers_named_str("X-Long").count(), 1);
    let raw = message(&format!("{}\r\n", line(101)), "");
    let (d, s) = assert_refused(&raw, &l, ErrorKind::LineTooLong, 400);
    let at = raw.find("X-Long:").expect("X-Long");
    assert_eq!((d.offset(), s.offset()), (at, at));
}

#[test]
fn folded_header_is_measured_as_one_line() {
    let l = limits(|l| l.max_line_length = 100);
    // Each physical line is well under the limit; the field they make is not.
    let folded = format!("X-Folded: {}\r\n {}\r\n", "a".repeat(60), "b".repeat(60));
    let raw = message(&folded, "");
    let (d, s) = assert_refused(&raw, &l, ErrorKind::LineTooLong, 400);
    let at = raw.find("X-Folded:").expect("X-Folded");
    assert_eq!((d.offset(), s.offset()), (at, at));
}

#[test]
fn start_line_at_the_limit_is_accepted_and_one_byte_longer_gets_400() {
    let l = limits(|l| l.max_line_length = 100);
    let with_start_line = |len: usize| {
        let fixed = "OPTIONS sip:@example.com SIP/2.0".len();
        let user = "u".repeat(len - fixed);
        let raw = message("", "").replacen(
            START,
            &format!("OPTIONS sip:{user}@example.com SIP/2.0\r\n"),
            1,
        );
        assert_eq!(raw.find("\r\n"), Some(len), "start line of {len} bytes");
        raw
    };
    let m = assert_accepted(&with_start_line(100), &l);
    assert_eq!(m.start_line().len(), 100);
    let (d, s) = assert_refused(&with_start_line(101), &l, ErrorKind::LineTooLong, 400);
    assert_eq!((d.offset(), s.offset()), (0, 0));
}

#[test]
fn via_values_at_the_limit_are_accepted_and_one_more_gets_400() {
    let l = limits(|l| l.max_vias = 5);
    // One Via in FIELDS and four more on two lines of two values.
    let m = assert_accepted(&message(&extra_vias(4), ""), &l);
    assert_eq!(m.via_count(), 5);
    // A fifth extra value, alone on a third line: the count passes the limit on that line.
    let raw = message(&extra_vias(5), "");
    let (d, s) = assert_refused(&raw, &l, ErrorKind::TooManyVias, 400);
    let at = raw
        .find("SIP/2.0/UDP v4.example.com")
        .expect("fifth extra Via");
    assert_eq!((d.offset(), s.offset()), (at, at));
}

/// `Message::parse` and a decoder with `Limits::default()` apply the defaults: each one's
/// boundary is accepted, one over it refused.
#[test]
fn parse_applies_the_default_limits() {
    let d = Limits::DEFAULT;
    let parse = |raw: &str| Message::parse(Bytes::from(raw.to_owned()));
    let stream = |raw: &str| decode_stream(raw, &Limits::default());
    let cases: [(&str, String, String, ErrorKind); 4] = [
        (
            "message size",
            sized(d.max_message_size),
            sized(d.max_message_size + 1),
            ErrorKind::MessageTooLarge,
        ),
        (
            "header count",
            message(&fillers(d.max_headers - BASE_FIELDS), ""),
            message(&fillers(d.max_headers - BASE_FIELDS + 1), ""),
            ErrorKind::TooManyHeaders,
        ),
        (
            "line length",
            message(&format!("X: {}\r\n", "a".repeat(d.max_line_length - 3)), ""),
            message(&format!("X: {}\r\n", "a".repeat(d.max_line_length - 2)), ""),
            ErrorKind::LineTooLong,
        ),
        (
            "Via count",
            message(&extra_vias(d.max_vias - 1), ""),
            message(&extra_vias(d.max_vias), ""),
            ErrorKind::TooManyVias,
        ),
    ];
    for (what, at_limit, over, kind) in cases {
        let m = parse(&at_limit).unwrap_or_else(|e| panic!("{what} at the limit: {e}"));
        assert_eq!(m.as_bytes(), at_limit.as_bytes(), "{what}");
        stream(&at_limit).unwrap_or_else(|e| panic!("{what} at the limit, stream: {e}"));
        assert_eq!(
            parse(&over).expect_err(what).kind(),
            kind,
            "{what} over the limit"
        );
        assert_eq!(
            stream(&over).expect_err(what).kind(),
            kind,
            "{what} over the limit, stream"
        );
    }
}
