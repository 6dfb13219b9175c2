//! Property tests for the SIP parser.
//!
//! 1. `print_then_parse_reads_back_every_field`: arbitrary well-formed requests and responses
//!    (methods, SIP/SIPS/tel URIs with parameters and escapes, display names with quoted pairs,
//!    Via lists with branch/received/rport, tags, CSeq, Contacts with q and expires, extension
//!    headers, compact and odd-case names, LWS and folded lines wherever the grammar allows them,
//!    CRLF or bare-LF line ends, bodies including binary) are printed, parsed, and every field
//!    read back must equal the model; the parsed message must print as the exact input, and the
//!    stream decoder must cut the same message from random-size chunks.
//! 2. `garbage_never_panics` and friends: arbitrary bytes, SIP-shaped fragments, and mutations of
//!    valid messages and of the RFC vectors never panic `Message::parse` or `StreamDecoder`, every
//!    error carries a status in {400, 416, 505, 513}, and every accepted message keeps the
//!    invariants the accessors document.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::sync::OnceLock;

use bytes::Bytes;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::TestCaseError;
use vouch_msg::headers::{Contact, NameAddr};
use vouch_msg::{
    HeaderName, Host, Kind, Limits, Message, Method, ParseError, SipUri, StreamDecoder, Transport,
    Uri,
};

type TestResult = Result<(), TestCaseError>;

// ---- Character sets (RFC 3261 §25.1) ---------------------------------------------------------

const ALNUM: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const TOKEN_MARKS: &str = "-.!%*_+`'~";
const UNRESERVED_MARKS: &str = "-_.!~*'()";
const USER_UNRESERVED: &str = "&=+$,;?/";
const PASSWORD_EXTRA: &str = "&=+$,";
const PARAM_UNRESERVED: &str = "[]/:&+$";
const HNV_UNRESERVED: &str = "[]/?:+$";
const WORD_EXTRA: &str = "()<>:\\\"/[]?{}";

fn set(parts: &[&str]) -> Vec<char> {
    let mut v: Vec<char> = parts.iter().flat_map(|p| p.chars()).collect();
    v.sort_unstable();
    v.dedup();
    v
}

fn string_of(chars: Vec<char>, len: std::ops::Range<usize>) -> impl Strategy<Value = String> {
    vec(select(chars), len).prop_map(|v| v.into_iter().collect())
}

fn token(len: std::ops::Range<usize>) -> impl Strategy<Value = String> {
    string_of(set(&[ALNUM, TOKEN_MARKS]), len)
}

/// `%HH` with either case of hex digits.
fn escape() -> impl Strategy<Value = String> {
    (any::<u8>(), any::<bool>()).prop_map(|(b, upper)| {
        if upper {
            format!("%{b:02X}")
        } else {
            format!("%{b:02x}")
        }
    })
}

/// A sequence of characters from `chars` and `%HH` escapes.
fn escaped_of(chars: Vec<char>, len: std::ops::Range<usize>) -> impl Strategy<Value = String> {
    vec(
        prop_oneof![4 => select(chars).prop_map(String::from), 1 => escape()],
        len,
    )
    .prop_map(|v| v.concat())
}

// ---- Models -----------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum HostM {
    Domain(String),
    V4(Ipv4Addr),
    V6(Ipv6Addr),
}

impl HostM {
    fn print(&self) -> String {
        match self {
            HostM::Domain(d) => d.clone(),
            HostM::V4(a) => a.to_string(),
            HostM::V6(a) => format!("[{a}]"),
        }
    }

    fn check(&self, got: Host<'_>) -> TestResult {
        match (self, got) {
            (HostM::Domain(d), Host::Domain(g)) => prop_assert_eq!(d.as_str(), g),
            (HostM::V4(a), Host::V4(g)) => prop_assert_eq!(*a, g),
            (HostM::V6(a), Host::V6(g)) => prop_assert_eq!(a.to_string(), g),
            (m, g) => prop_assert!(false, "host {:?} read as {:?}", m, g),
        }
        Ok(())
    }
}

fn host() -> impl Strategy<Value = HostM> {
    let label = "[a-zA-Z]([a-zA-Z0-9-]{0,6}[a-zA-Z0-9])?";
    prop_oneof![
        3 => (vec(label, 1..4), any::<bool>()).prop_map(|(l, dot)| {
            // A fully qualified name may end with a dot.
            HostM::Domain(l.join(".") + if dot && l.len() > 1 { "." } else { "" })
        }),
        1 => any::<[u8; 4]>().prop_map(|o| HostM::V4(Ipv4Addr::from(o))),
        1 => any::<[u16; 8]>().prop_map(|s| HostM::V6(Ipv6Addr::from(s))),
        1 => any::<[u8; 4]>().prop_map(|o| HostM::V6(Ipv4Addr::from(o).to_ipv6_mapped())),
    ]
}

type Param = (String, Option<String>);

#[derive(Debug, Clone)]
struct SipUriM {
    secure: bool,
    user: Option<String>,
    password: Option<String>,
    host: HostM,
    port: Option<u16>,
    params: Vec<Param>,
    headers: Option<String>,
}

impl SipUriM {
    fn print(&self) -> String {
        let mut s = String::from(if self.secure { "sips:" } else { "sip:" });
        if let Some(u) = &self.user {
            s += u;
            if let Some(p) = &self.password {
                s.push(':');
                s += p;
            }
            s.push('@');
        }
        s += &self.host.print();
        if let Some(p) = self.port {
            let _ = write!(s, ":{p}");
        }
        for (n, v) in &self.params {
            s.push(';');
            s += n;
            if let Some(v) = v {
                s.push('=');
                s += v;
            }
        }
        if let Some(h) = &self.headers {
            s.push('?');
            s += h;
        }
        s
    }

    /// RFC 3261 §20: a URI with a comma, question mark or semicolon must be in `<>`.
    fn needs_brackets(&self) -> bool {
        self.print().contains([';', '?', ','])
    }

    fn check(&self, u: &SipUri<'_>) -> TestResult {
        prop_assert_eq!(u.as_str(), self.print());
        prop_assert_eq!(u.is_secure(), self.secure);
        prop_assert_eq!(u.user(), self.user.as_deref());
        prop_assert_eq!(u.password(), self.password.as_deref());
        self.host.check(u.host())?;
        prop_assert_eq!(u.host_str(), self.host.print());
        prop_assert_eq!(u.port(), self.port);
        let params: Vec<Param> = u
            .params()
            .iter()
            .map(|(n, v)| (n.to_owned(), v.map(str::to_owned)))
            .collect();
        prop_assert_eq!(&params, &self.params);
        prop_assert_eq!(u.headers(), self.headers.as_deref());
        if let Some(user) = &self.user {
            let got = u.user_unescaped();
            let want = unescape_model(user);
            prop_assert_eq!(got.as_deref(), Some(&want[..]));
        }
        Ok(())
    }
}

fn unescape_model(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).expect("hex");
            out.push(u8::from_str_radix(hex, 16).expect("hex"));
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

fn uri_param() -> impl Strategy<Value = Param> {
    let pc = set(&[ALNUM, UNRESERVED_MARKS, PARAM_UNRESERVED]);
    (
        escaped_of(pc.clone(), 1..8),
        prop::option::of(escaped_of(pc, 1..8)),
    )
}

fn uri_headers() -> impl Strategy<Value = String> {
    let hname = set(&[ALNUM, UNRESERVED_MARKS, HNV_UNRESERVED]);
    let hvalue = hname.clone();
    vec((escaped_of(hname, 1..6), escaped_of(hvalue, 0..8)), 1..3).prop_map(|hs| {
        hs.into_iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("&")
    })
}

fn sip_uri(with_headers: bool) -> impl Strategy<Value = SipUriM> {
    let user = escaped_of(set(&[ALNUM, UNRESERVED_MARKS, USER_UNRESERVED]), 1..10);
    let password = escaped_of(set(&[ALNUM, UNRESERVED_MARKS, PASSWORD_EXTRA]), 0..6);
    (
        any::<bool>(),
        prop::option::weighted(0.7, (user, prop::option::weighted(0.2, password))),
        host(),
        prop::option::weighted(0.3, any::<u16>()),
        vec(uri_param(), 0..3),
        prop::option::weighted(0.3, uri_headers()).prop_map(move |h| h.filter(|_| with_headers)),
    )
        .prop_map(|(secure, up, host, port, params, headers)| {
            let (user, password) = match up {
                Some((u, p)) => (Some(u), p),
                None => (None, None),
            };
            SipUriM {
                secure,
                user,
                password,
                host,
                port,
                params,
                headers,
            }
        })
}

#[derive(Debug, Clone)]
enum UriM {
    Sip(SipUriM),
    Tel(String),
}

impl UriM {
    fn print(&self) -> String {
        match self {
            UriM::Sip(s) => s.print(),
            UriM::Tel(n) => format!("tel:{n}"),
        }
    }

    fn needs_brackets(&self) -> bool {
        match self {
            UriM::Sip(s) => s.needs_brackets(),
            UriM::Tel(_) => false,
        }
    }

    fn check(&self, u: &Uri<'_>) -> TestResult {
        match (self, u) {
            (UriM::Sip(m), Uri::Sip(g)) => m.check(g)?,
            (UriM::Tel(n), Uri::Tel(g)) => prop_assert_eq!(g.number(), n.as_str()),
            (m, g) => prop_assert!(false, "URI {:?} read as {:?}", m, g),
        }
        Ok(())
    }
}

fn uri(with_headers: bool) -> impl Strategy<Value = UriM> {
    prop_oneof![
        6 => sip_uri(with_headers).prop_map(UriM::Sip),
        1 => "\\+?[0-9][-0-9.()]{0,12}".prop_map(UriM::Tel),
    ]
}

/// Any character but CR and LF (biased towards ASCII).
fn text_char() -> impl Strategy<Value = char> {
    prop_oneof![
        3 => (0x20u8..0x7f).prop_map(char::from),
        1 => any::<char>().prop_map(|c| if c == '\r' || c == '\n' { ' ' } else { c }),
    ]
}

/// A visible character: no control characters and no ASCII white space.
fn visible_char() -> impl Strategy<Value = char> {
    prop_oneof![
        3 => (0x21u8..0x7f).prop_map(char::from),
        1 => any::<char>().prop_map(|c| {
            if c.is_control() || c.is_ascii_whitespace() { '~' } else { c }
        }),
    ]
}

#[derive(Debug, Clone)]
enum DisplayM {
    None,
    Tokens(Vec<String>),
    Quoted(String),
}

/// A header parameter value: token or quoted-string.
fn gen_value() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => token(1..10),
        1 => vec(
            prop_oneof![
                5 => select(set(&[ALNUM, " \t!#$&'()*+,-./:;<=>?@[]^_`{|}~"])).prop_map(String::from),
                1 => Just("\\\"".to_owned()),
                1 => Just("\\\\".to_owned()),
                1 => Just("é".to_owned()),
            ],
            0..8
        )
        .prop_map(|v| format!("\"{}\"", v.concat())),
    ]
}

/// A generic header parameter whose name never collides with tag, q, expires, branch,
/// received or rport (all extension names start with `x`).
fn ext_param() -> impl Strategy<Value = Param> {
    (token(0..8), prop::option::of(gen_value())).prop_map(|(n, v)| (format!("x{n}"), v))
}

#[derive(Debug, Clone)]
struct AddrM {
    display: DisplayM,
    uri: UriM,
    bracket: bool,
    /// Header parameters in printed order (`tag` included).
    params: Vec<Param>,
}

impl AddrM {
    fn tag(&self) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("tag"))
            .and_then(|(_, v)| v.as_deref())
    }

    fn check(&self, na: &NameAddr<'_>) -> TestResult {
        self.check_address(na)?;
        let params: Vec<Param> = na
            .params()
            .iter()
            .map(|(n, v)| (n.to_owned(), v.map(str::to_owned)))
            .collect();
        prop_assert_eq!(&params, &self.params);
        prop_assert_eq!(na.tag(), self.tag());
        Ok(())
    }

    /// Display name, brackets and URI.
    fn check_address(&self, na: &NameAddr<'_>) -> TestResult {
        match &self.display {
            DisplayM::None => prop_assert_eq!(na.display_name_raw(), None),
            DisplayM::Tokens(t) => {
                let want = t.join(" ");
                prop_assert_eq!(na.display_name_raw(), Some(want.as_str()));
            }
            DisplayM::Quoted(q) => {
                let got = na.display_name();
                prop_assert_eq!(got.as_deref(), Some(q.as_str()));
            }
        }
        prop_assert_eq!(na.is_name_addr(), self.bracket);
        self.uri.check(na.uri())?;
        Ok(())
    }
}

fn display() -> impl Strategy<Value = DisplayM> {
    let qchar = text_char();
    prop_oneof![
        2 => Just(DisplayM::None),
        1 => vec(token(1..8), 1..4).prop_map(DisplayM::Tokens),
        2 => vec(qchar, 0..12).prop_map(|v| DisplayM::Quoted(v.into_iter().collect())),
    ]
}

fn addr(with_tag: bool, uri_headers: bool) -> impl Strategy<Value = AddrM> {
    (
        display(),
        uri(uri_headers),
        any::<bool>(),
        vec(ext_param(), 0..3),
        prop::option::weighted(0.8, token(1..12)).prop_map(move |t| t.filter(|_| with_tag)),
        any::<prop::sample::Index>(),
    )
        .prop_map(|(display, uri, bracket, mut params, tag, at)| {
            if let Some(t) = tag {
                let i = at.index(params.len() + 1);
                params.insert(i, ("tag".to_owned(), Some(t)));
            }
            let bracket = bracket || !matches!(display, DisplayM::None) || uri.needs_brackets();
            AddrM {
                display,
                uri,
                bracket,
                params,
            }
        })
}

#[derive(Debug, Clone)]
struct ViaM {
    transport: String,
    host: HostM,
    port: Option<u16>,
    /// Parameters in printed order (branch, received, rport, extensions).
    params: Vec<Param>,
}

impl ViaM {
    fn param(&self, name: &str) -> Option<Option<&str>> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_deref())
    }
}

fn via() -> impl Strategy<Value = ViaM> {
    let transport = prop_oneof![
        select(vec!["UDP", "TCP", "TLS", "SCTP", "WS", "WSS", "udp", "tls"]).prop_map(String::from),
        token(1..6),
    ];
    let received = prop_oneof![
        any::<[u8; 4]>().prop_map(|o| Ipv4Addr::from(o).to_string()),
        any::<[u16; 8]>().prop_map(|s| Ipv6Addr::from(s).to_string()),
        any::<[u16; 8]>().prop_map(|s| format!("[{}]", Ipv6Addr::from(s))),
    ];
    (
        transport,
        host(),
        prop::option::weighted(0.5, any::<u16>()),
        prop::option::weighted(0.9, (any::<bool>(), token(1..12))),
        prop::option::weighted(0.3, received),
        prop::option::weighted(0.3, prop::option::of(any::<u16>())),
        vec(ext_param(), 0..2),
    )
        .prop_map(|(transport, host, port, branch, received, rport, ext)| {
            let mut params = Vec::new();
            if let Some((cookie, b)) = branch {
                let b = if cookie { format!("z9hG4bK{b}") } else { b };
                params.push(("branch".to_owned(), Some(b)));
            }
            if let Some(r) = received {
                params.push(("received".to_owned(), Some(r)));
            }
            if let Some(r) = rport {
                params.push(("rport".to_owned(), r.map(|p| p.to_string())));
            }
            params.extend(ext);
            ViaM {
                transport,
                host,
                port,
                params,
            }
        })
}

#[derive(Debug, Clone)]
struct ContactM {
    addr: AddrM,
    expires: Option<u32>,
    q: Option<u16>,
}

fn contact() -> impl Strategy<Value = ContactM> {
    (
        addr(false, true),
        prop::option::weighted(0.4, any::<u32>()),
        prop::option::weighted(0.4, 0u16..=1000),
    )
        .prop_map(|(addr, expires, q)| ContactM { addr, expires, q })
}

#[derive(Debug, Clone)]
enum OpName {
    Ext(String),
    Subject,
    UserAgent,
    Supported,
}

#[derive(Debug, Clone)]
struct OpaqueM {
    name: OpName,
    words: Vec<String>,
    /// Fold the value before this word (index ≥ 1).
    fold_at: Option<usize>,
}

impl OpaqueM {
    fn value(&self, eol: &str) -> String {
        let mut s = String::new();
        for (i, w) in self.words.iter().enumerate() {
            if i > 0 {
                if self.fold_at == Some(i) {
                    s += eol;
                }
                s.push(' ');
            }
            s += w;
        }
        s
    }
}

fn opaque() -> impl Strategy<Value = OpaqueM> {
    let text = visible_char();
    let name = prop_oneof![
        4 => (select(vec!["X-", "P-", "x-", "New"]), token(1..10))
            .prop_map(|(p, t)| OpName::Ext(format!("{p}{t}"))),
        1 => Just(OpName::Subject),
        1 => Just(OpName::UserAgent),
        1 => Just(OpName::Supported),
    ];
    (
        name,
        vec(
            vec(text, 1..8).prop_map(|v| v.into_iter().collect::<String>()),
            0..5,
        ),
        any::<prop::sample::Index>(),
        any::<bool>(),
    )
        .prop_map(|(name, words, at, fold)| {
            let fold_at = (fold && words.len() > 1).then(|| 1 + at.index(words.len() - 1));
            OpaqueM {
                name,
                words,
                fold_at,
            }
        })
}

#[derive(Debug, Clone)]
enum StartM {
    Request { method: String, ruri: UriM },
    Response { code: u16, reason: String },
}

#[derive(Debug, Clone)]
struct MediaM {
    top: String,
    sub: String,
    params: Vec<Param>,
}

#[derive(Debug, Clone)]
struct MsgM {
    start: StartM,
    vias: Vec<ViaM>,
    from: AddrM,
    to: AddrM,
    call_id: String,
    cseq: u32,
    cseq_method: String,
    max_forwards: Option<u8>,
    star: bool,
    contacts: Vec<ContactM>,
    route: Vec<AddrM>,
    record_route: Vec<AddrM>,
    expires: Option<u32>,
    opaque: Vec<OpaqueM>,
    body: Vec<u8>,
    content_type: Option<MediaM>,
    with_content_length: bool,
    lf_only: bool,
    leading_crlf: usize,
    style: u64,
}

impl MsgM {
    fn eol(&self) -> &'static str {
        if self.lf_only { "\n" } else { "\r\n" }
    }
}

fn method() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => select(vec![
            "INVITE", "ACK", "BYE", "CANCEL", "REGISTER", "OPTIONS", "INFO", "PRACK", "UPDATE",
            "SUBSCRIBE", "NOTIFY", "REFER", "MESSAGE", "PUBLISH",
        ])
        .prop_map(String::from),
        1 => token(1..12),
    ]
}

fn call_id() -> impl Strategy<Value = String> {
    let word = || string_of(set(&[ALNUM, TOKEN_MARKS, WORD_EXTRA]), 1..16);
    (word(), prop::option::of(word())).prop_map(|(a, b)| match b {
        Some(b) => format!("{a}@{b}"),
        None => a,
    })
}

fn media() -> impl Strategy<Value = MediaM> {
    (token(1..10), token(1..10), vec(ext_param(), 0..2)).prop_map(|(top, sub, params)| MediaM {
        top,
        sub,
        params,
    })
}

fn start() -> impl Strategy<Value = StartM> {
    let reason = vec(text_char(), 0..20).prop_map(|v| v.into_iter().collect::<String>());
    prop_oneof![
        3 => (method(), uri(false)).prop_map(|(method, ruri)| StartM::Request { method, ruri }),
        1 => (100u16..=699, reason).prop_map(|(code, reason)| StartM::Response { code, reason }),
    ]
}

fn message() -> impl Strategy<Value = MsgM> {
    let headers = (
        vec(via(), 1..5),
        addr(true, false),
        addr(true, false),
        call_id(),
        0u32..=0x7fff_ffff,
        method(),
        prop::option::weighted(0.6, any::<u8>()),
        prop::option::weighted(0.05, Just(())),
        vec(contact(), 0..3),
        vec(opaque(), 0..4),
    );
    // Route and Record-Route entries are always name-addrs (RFC 3261 §20.30, §20.34).
    let route_addr = || {
        addr(false, false).prop_map(|mut a| {
            a.bracket = true;
            a
        })
    };
    let routing = (
        vec(route_addr(), 0..3),
        vec(route_addr(), 0..3),
        prop::option::weighted(0.2, any::<u32>()),
    );
    let body = prop_oneof![
        3 => Just(Vec::new()),
        2 => vec(any::<u8>(), 1..200),
        1 => "[ -~\r\n]{1,120}".prop_map(String::into_bytes),
    ];
    let framing = (
        any::<bool>(),
        prop::bool::weighted(0.85),
        prop::bool::weighted(0.2),
        0usize..3,
        any::<u64>(),
    );
    (start(), headers, routing, body, media(), framing).prop_map(
        |(
            start,
            (vias, from, to, call_id, cseq, cseq_method, max_forwards, star, contacts, opaque),
            (route, record_route, expires),
            body,
            media,
            (want_ct, with_content_length, lf_only, leading_crlf, style),
        )| {
            // A request's CSeq carries its method (RFC 3261 §8.1.1.5).
            let cseq_method = match &start {
                StartM::Request { method, .. } => method.clone(),
                StartM::Response { .. } => cseq_method,
            };
            let star = star.is_some();
            let content_type = (want_ct || !body.is_empty()).then_some(media);
            MsgM {
                start,
                vias,
                from,
                to,
                call_id,
                cseq,
                cseq_method,
                max_forwards,
                star,
                contacts: if star { Vec::new() } else { contacts },
                route,
                record_route,
                expires,
                opaque,
                body,
                content_type,
                with_content_length,
                lf_only,
                leading_crlf,
                style,
            }
        },
    )
}

// ---- Printing ---------------------------------------------------------------------------------

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Prints a model; layout choices (name forms, LWS, folding, grouping, order) come from the
/// style seed and never change what the fields mean.
struct Printer {
    rng: XorShift,
    eol: &'static str,
}

impl Printer {
    /// Optional white space, sometimes a folded line.
    fn sws(&mut self) -> String {
        match self.rng.below(10) {
            0..=4 => String::new(),
            5 => " ".into(),
            6 => "\t".into(),
            7 => "  ".into(),
            8 => format!("{} ", self.eol),
            _ => format!(" {}\t ", self.eol),
        }
    }

    /// Mandatory white space, sometimes a folded line.
    fn lws(&mut self) -> String {
        match self.rng.below(6) {
            0..=2 => " ".into(),
            3 => "\t ".into(),
            4 => format!("{} ", self.eol),
            _ => format!(" {}\t", self.eol),
        }
    }

    fn sep(&mut self, c: char) -> String {
        let (a, b) = (self.sws(), self.sws());
        format!("{a}{c}{b}")
    }

    fn name(&mut self, long: &str, compact: Option<&str>) -> String {
        match (self.rng.below(5), compact) {
            (1 | 2, Some(c)) => {
                if self.rng.below(2) == 0 {
                    c.to_owned()
                } else {
                    c.to_ascii_uppercase()
                }
            }
            (3, _) => long.to_ascii_lowercase(),
            (4, _) => long.to_ascii_uppercase(),
            _ => long.to_owned(),
        }
    }

    fn field(&mut self, name: &str, value: &str) -> String {
        let before = match self.rng.below(8) {
            0 => " ",
            1 => "\t",
            _ => "",
        };
        let after = match self.rng.below(6) {
            0 => String::new(),
            1 => format!("{} ", self.eol),
            2 => "   ".into(),
            _ => " ".into(),
        };
        let trailing = if self.rng.below(10) == 0 { " " } else { "" };
        format!("{name}{before}:{after}{value}{trailing}{}", self.eol)
    }

    fn number(&mut self, n: u64) -> String {
        let zeros = if self.rng.below(6) == 0 {
            self.rng.below(3) as usize + 1
        } else {
            0
        };
        format!("{}{n}", "0".repeat(zeros))
    }

    fn params(&mut self, params: &[Param]) -> String {
        let mut s = String::new();
        for (n, v) in params {
            s += &self.sep(';');
            s += n;
            if let Some(v) = v {
                s += &self.sep('=');
                s += v;
            }
        }
        s
    }

    fn quoted(&mut self, text: &str) -> String {
        let mut s = String::from("\"");
        for c in text.chars() {
            let must = matches!(c, '"' | '\\') || (c.is_ascii_control() && c != '\t');
            if must || (c.is_ascii() && self.rng.below(8) == 0) {
                s.push('\\');
            }
            s.push(c);
        }
        s.push('"');
        s
    }

    fn addr(&mut self, a: &AddrM) -> String {
        let mut s = String::new();
        match &a.display {
            DisplayM::None => {}
            DisplayM::Tokens(t) => {
                s += &t.join(" ");
                s += &self.sws();
            }
            DisplayM::Quoted(q) => {
                s += &self.quoted(q);
                s += &self.sws();
            }
        }
        if a.bracket {
            s += "<";
            s += &a.uri.print();
            s += ">";
        } else {
            s += &a.uri.print();
        }
        s += &self.params(&a.params);
        s
    }

    fn qvalue(&mut self, q: u16) -> String {
        if q == 1000 {
            return ["1", "1.0", "1.000"][self.rng.below(3) as usize].to_owned();
        }
        let frac = format!("{q:03}");
        let frac = match self.rng.below(3) {
            0 => frac.trim_end_matches('0').to_owned(),
            _ => frac,
        };
        if frac.is_empty() {
            ["0", "0.", "0.0"][self.rng.below(3) as usize].to_owned()
        } else {
            format!("0.{frac}")
        }
    }

    fn contact(&mut self, c: &ContactM) -> String {
        let mut s = self.addr(&c.addr);
        if let Some(e) = c.expires {
            s += &self.sep(';');
            s += "expires";
            s += &self.sep('=');
            s += &self.number(u64::from(e));
        }
        if let Some(q) = c.q {
            s += &self.sep(';');
            s += "q";
            s += &self.sep('=');
            s += &self.qvalue(q);
        }
        s
    }

    fn via(&mut self, v: &ViaM) -> String {
        let mut s = String::from("SIP");
        s += &self.sep('/');
        s += "2.0";
        s += &self.sep('/');
        s += &v.transport;
        s += &self.lws();
        s += &v.host.print();
        if let Some(p) = v.port {
            if self.rng.below(4) == 0 {
                s += &self.sep(':');
            } else {
                s.push(':');
            }
            s += &p.to_string();
        }
        s += &self.params(&v.params);
        s
    }
}

/// The parameters of a Contact value in printed order, with the values of `expires` and `q`
/// blanked (they may be printed with leading zeros or trailing zeros; they are compared as
/// numbers through `Contact::expires` and `Contact::q`).
fn contact_params(c: &ContactM) -> Vec<Param> {
    let mut p = c.addr.params.clone();
    if c.expires.is_some() {
        p.push(("expires".into(), None));
    }
    if c.q.is_some() {
        p.push(("q".into(), None));
    }
    p
}

struct Printed {
    bytes: Vec<u8>,
    /// Where the message starts (after the leading CRLFs).
    start: usize,
    fields: usize,
}

fn print(m: &MsgM) -> Printed {
    let eol = m.eol();
    let mut p = Printer {
        rng: XorShift(m.style | 1),
        eol,
    };
    // (kind, field text); fields of the same kind keep their relative order.
    let mut fields: Vec<(String, String)> = Vec::new();
    let mut i = 0;
    while i < m.vias.len() {
        let n = (1 + p.rng.below(3) as usize).min(m.vias.len() - i);
        let values: Vec<String> = m.vias[i..i + n].iter().map(|v| p.via(v)).collect();
        let mut value = values[0].clone();
        for v in &values[1..] {
            value += &p.sep(',');
            value += v;
        }
        let name = p.name("Via", Some("v"));
        fields.push(("via".into(), p.field(&name, &value)));
        i += n;
    }
    let name = p.name("From", Some("f"));
    let v = p.addr(&m.from);
    fields.push(("from".into(), p.field(&name, &v)));
    let name = p.name("To", Some("t"));
    let v = p.addr(&m.to);
    fields.push(("to".into(), p.field(&name, &v)));
    let name = p.name("Call-ID", Some("i"));
    fields.push(("call-id".into(), p.field(&name, &m.call_id)));
    let name = p.name("CSeq", None);
    let v = format!(
        "{}{}{}",
        p.number(u64::from(m.cseq)),
        p.lws(),
        m.cseq_method
    );
    fields.push(("cseq".into(), p.field(&name, &v)));
    if let Some(mf) = m.max_forwards {
        let name = p.name("Max-Forwards", None);
        let v = p.number(u64::from(mf));
        fields.push(("max-forwards".into(), p.field(&name, &v)));
    }
    if m.star {
        let name = p.name("Contact", Some("m"));
        let v = format!("{}*", p.sws().trim_start_matches(['\r', '\n']));
        fields.push(("contact".into(), p.field(&name, &v)));
    }
    let mut i = 0;
    while i < m.contacts.len() {
        let n = (1 + p.rng.below(3) as usize).min(m.contacts.len() - i);
        let mut value = String::new();
        for (k, c) in m.contacts[i..i + n].iter().enumerate() {
            if k > 0 {
                value += &p.sep(',');
            }
            value += &p.contact(c);
        }
        let name = p.name("Contact", Some("m"));
        fields.push(("contact".into(), p.field(&name, &value)));
        i += n;
    }
    for (long, list) in [("Route", &m.route), ("Record-Route", &m.record_route)] {
        let mut i = 0;
        while i < list.len() {
            let n = (1 + p.rng.below(3) as usize).min(list.len() - i);
            let mut value = String::new();
            for (k, a) in list[i..i + n].iter().enumerate() {
                if k > 0 {
                    value += &p.sep(',');
                }
                value += &p.addr(a);
            }
            let name = p.name(long, None);
            fields.push((long.to_ascii_lowercase(), p.field(&name, &value)));
            i += n;
        }
    }
    if let Some(e) = m.expires {
        let name = p.name("Expires", None);
        let v = p.number(u64::from(e));
        fields.push(("expires".into(), p.field(&name, &v)));
    }
    for o in &m.opaque {
        let (kind, name) = match &o.name {
            OpName::Ext(n) => (n.to_ascii_lowercase(), n.clone()),
            OpName::Subject => ("subject".into(), p.name("Subject", Some("s"))),
            OpName::UserAgent => ("user-agent".into(), p.name("User-Agent", None)),
            OpName::Supported => ("supported".into(), p.name("Supported", Some("k"))),
        };
        let v = o.value(eol);
        fields.push((kind, p.field(&name, &v)));
    }
    if let Some(ct) = &m.content_type {
        let name = p.name("Content-Type", Some("c"));
        let v = format!("{}{}{}{}", ct.top, p.sep('/'), ct.sub, p.params(&ct.params));
        fields.push(("content-type".into(), p.field(&name, &v)));
    }
    if m.with_content_length {
        let name = p.name("Content-Length", Some("l"));
        let v = p.number(m.body.len() as u64);
        fields.push(("content-length".into(), p.field(&name, &v)));
    }
    // Shuffle, then put the fields of each kind back in their own order.
    let mut keys: Vec<(u64, usize)> = (0..fields.len()).map(|i| (p.rng.next(), i)).collect();
    keys.sort_unstable();
    let order: Vec<usize> = keys.iter().map(|&(_, i)| i).collect();
    let mut placed: Vec<Option<String>> = vec![None; fields.len()];
    let mut kinds: Vec<String> = fields.iter().map(|(k, _)| k.clone()).collect();
    kinds.dedup();
    let mut kinds_sorted = kinds.clone();
    kinds_sorted.sort();
    kinds_sorted.dedup();
    for kind in kinds_sorted {
        let mine: Vec<&String> = fields
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, f)| f)
            .collect();
        let mut slots: Vec<usize> = order
            .iter()
            .enumerate()
            .filter(|&(_, &src)| fields[src].0 == kind)
            .map(|(slot, _)| slot)
            .collect();
        slots.sort_unstable();
        for (slot, f) in slots.into_iter().zip(mine) {
            placed[slot] = Some(f.clone());
        }
    }
    let mut out = Vec::new();
    for _ in 0..m.leading_crlf {
        out.extend_from_slice(eol.as_bytes());
    }
    let start = out.len();
    match &m.start {
        StartM::Request { method, ruri } => {
            out.extend_from_slice(format!("{method} {} SIP/2.0{eol}", ruri.print()).as_bytes());
        }
        StartM::Response { code, reason } => {
            out.extend_from_slice(format!("SIP/2.0 {code} {reason}{eol}").as_bytes());
        }
    }
    let count = placed.len();
    for f in placed.into_iter().flatten() {
        out.extend_from_slice(f.as_bytes());
    }
    out.extend_from_slice(eol.as_bytes());
    out.extend_from_slice(&m.body);
    Printed {
        bytes: out,
        start,
        fields: count,
    }
}

// ---- Checking a parse against its model -------------------------------------------------------

fn check_message(m: &MsgM, msg: &Message, printed: &Printed) -> TestResult {
    prop_assert_eq!(&msg.as_bytes()[..], &printed.bytes[printed.start..]);
    match &m.start {
        StartM::Request { method, ruri } => {
            prop_assert_eq!(msg.kind(), Kind::Request);
            prop_assert_eq!(msg.method().map(|x| x.as_str()), Some(method.as_str()));
            prop_assert_eq!(msg.method(), Some(Method::from_token(method)));
            let uri_text = ruri.print();
            prop_assert_eq!(msg.request_uri_str(), Some(uri_text.as_str()));
            let u = msg.request_uri();
            prop_assert!(u.is_some());
            ruri.check(&u.expect("checked"))?;
            prop_assert_eq!(msg.status(), None);
        }
        StartM::Response { code, reason } => {
            prop_assert_eq!(msg.kind(), Kind::Response);
            prop_assert_eq!(msg.status(), Some(*code));
            prop_assert_eq!(msg.reason_phrase(), Some(reason.as_str()));
            prop_assert_eq!(msg.method(), None);
        }
    }
    prop_assert_eq!(msg.headers().len(), printed.fields);
    prop_assert_eq!(msg.call_id(), m.call_id.as_str());
    prop_assert_eq!(msg.cseq().seq, m.cseq);
    prop_assert_eq!(msg.cseq().method.as_str(), m.cseq_method.as_str());
    prop_assert_eq!(msg.max_forwards(), m.max_forwards);
    // From / To.
    let from = msg.from();
    prop_assert!(from.is_some(), "From");
    m.from.check(&from.expect("checked"))?;
    prop_assert_eq!(msg.from_tag(), m.from.tag());
    let to = msg.to();
    prop_assert!(to.is_some(), "To");
    m.to.check(&to.expect("checked"))?;
    prop_assert_eq!(msg.to_tag(), m.to.tag());
    // Via.
    prop_assert_eq!(msg.via_count(), m.vias.len());
    let vias = msg.vias();
    prop_assert_eq!(vias.len(), m.vias.len());
    for (g, v) in vias.iter().zip(&m.vias) {
        prop_assert_eq!(g.protocol(), "SIP");
        prop_assert_eq!(g.version(), "2.0");
        prop_assert_eq!(g.transport(), v.transport.as_str());
        v.host.check(g.host())?;
        prop_assert_eq!(g.host_str(), v.host.print());
        prop_assert_eq!(g.port(), v.port);
        let params: Vec<Param> = g
            .params()
            .iter()
            .map(|(n, x)| (n.to_owned(), x.map(str::to_owned)))
            .collect();
        prop_assert_eq!(&params, &v.params);
        prop_assert_eq!(g.branch(), v.param("branch").flatten());
        prop_assert_eq!(g.received(), v.param("received").flatten());
        prop_assert_eq!(
            g.rport(),
            v.param("rport")
                .map(|x| x.map(|p| p.parse::<u16>().expect("model port")))
        );
    }
    prop_assert_eq!(msg.top_via_branch(), m.vias[0].param("branch").flatten());
    let top = msg.top_via();
    prop_assert!(top.is_some());
    prop_assert_eq!(top.as_ref(), vias.first());
    // Contact.
    let contacts = msg.contacts();
    if m.star {
        prop_assert_eq!(contacts, vec![Contact::Star]);
    } else {
        prop_assert_eq!(contacts.len(), m.contacts.len());
        for (g, c) in contacts.iter().zip(&m.contacts) {
            let a = g.addr();
            prop_assert!(a.is_some());
            let a = a.expect("checked");
            c.addr.check_address(a)?;
            let params: Vec<Param> = a
                .params()
                .iter()
                .map(|(n, v)| {
                    let blank = n == "q" || n == "expires";
                    (
                        n.to_owned(),
                        if blank { None } else { v.map(str::to_owned) },
                    )
                })
                .collect();
            prop_assert_eq!(&params, &contact_params(c));
            prop_assert_eq!(g.expires(), c.expires);
            prop_assert_eq!(g.q(), c.q);
        }
    }
    // Route, Record-Route, Expires.
    for (got, want) in [
        (msg.route(), &m.route),
        (msg.record_route(), &m.record_route),
    ] {
        prop_assert_eq!(got.len(), want.len());
        for (g, a) in got.iter().zip(want.iter()) {
            a.check(g)?;
        }
    }
    prop_assert_eq!(msg.expires(), m.expires);
    // Opaque headers: each name reads back its values in order.
    let mut names: Vec<String> = Vec::new();
    for o in &m.opaque {
        let key = match &o.name {
            OpName::Ext(n) => n.to_ascii_lowercase(),
            OpName::Subject => "Subject".into(),
            OpName::UserAgent => "User-Agent".into(),
            OpName::Supported => "Supported".into(),
        };
        if names.contains(&key) {
            continue;
        }
        let want: Vec<String> = m
            .opaque
            .iter()
            .filter(|x| match (&x.name, &o.name) {
                (OpName::Ext(a), OpName::Ext(b)) => a.eq_ignore_ascii_case(b),
                (OpName::Subject, OpName::Subject)
                | (OpName::UserAgent, OpName::UserAgent)
                | (OpName::Supported, OpName::Supported) => true,
                _ => false,
            })
            .map(|x| x.value(m.eol()))
            .collect();
        let got: Vec<&str> = msg.headers_named_str(&key).map(|h| h.value).collect();
        prop_assert_eq!(got, want, "header {}", key);
        names.push(key);
    }
    // Body.
    prop_assert_eq!(msg.body_bytes(), &m.body[..]);
    prop_assert_eq!(&msg.body()[..], &m.body[..]);
    prop_assert_eq!(
        msg.content_length(),
        m.with_content_length.then_some(m.body.len() as u32)
    );
    match &m.content_type {
        Some(ct) => {
            let got = msg.content_type();
            prop_assert!(got.is_some(), "Content-Type");
            let got = got.expect("checked");
            prop_assert_eq!(got.top, ct.top.as_str());
            prop_assert_eq!(got.sub, ct.sub.as_str());
            let params: Vec<Param> = got
                .params
                .iter()
                .map(|(n, v)| (n.to_owned(), v.map(str::to_owned)))
                .collect();
            prop_assert_eq!(&params, &ct.params);
        }
        None => prop_assert!(msg.content_type().is_none()),
    }
    Ok(())
}

/// The header fields, start line and body tile the message.
fn check_tiling(msg: &Message) -> TestResult {
    let bytes = msg.as_bytes();
    let base = bytes.as_ptr() as usize;
    let mut at = None;
    for h in msg.headers() {
        let off = h.raw.as_ptr() as usize - base;
        if let Some(prev) = at {
            prop_assert_eq!(off, prev);
        }
        at = Some(off + h.raw.len());
    }
    let end = at.expect("at least one header");
    let rest = &bytes[end..];
    let eol_len = if rest.starts_with(b"\r\n") { 2 } else { 1 };
    prop_assert!(rest.starts_with(b"\n") || rest.starts_with(b"\r\n"));
    prop_assert_eq!(&rest[eol_len..], msg.body_bytes());
    Ok(())
}

/// Feeds `data` in chunks whose sizes come from `sizes` (cycled) and collects the messages up to
/// the first error.
fn decode_chunks(
    data: &[u8],
    sizes: &[usize],
    limits: Limits,
) -> (Vec<Message>, Option<ParseError>, usize) {
    let mut d = StreamDecoder::new(limits);
    let mut out = Vec::new();
    let mut pos = 0;
    let mut k = 0;
    while pos < data.len() {
        let n = sizes
            .get(k % sizes.len().max(1))
            .copied()
            .unwrap_or(1)
            .max(1);
        k += 1;
        let end = (pos + n).min(data.len());
        d.push(&data[pos..end]);
        pos = end;
        loop {
            match d.decode() {
                Ok(Some(m)) => out.push(m),
                Ok(None) => break,
                Err(e) => return (out, Some(e), d.buffered()),
            }
        }
    }
    let left = d.buffered();
    (out, None, left)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn print_then_parse_reads_back_every_field(m in message(), sizes in vec(1usize..80, 1..8)) {
        let printed = print(&m);
        let msg = Message::parse(Bytes::from(printed.bytes.clone()));
        prop_assert!(
            msg.is_ok(),
            "{:?}\n{}",
            msg.as_ref().err(),
            String::from_utf8_lossy(&printed.bytes)
        );
        let msg = msg.expect("checked");
        check_message(&m, &msg, &printed)?;
        check_tiling(&msg)?;
        // Parsing what the parse prints gives the same message.
        let again = Message::parse(msg.as_bytes().clone());
        prop_assert!(again.is_ok());
        check_message(&m, &again.expect("checked"), &printed)?;
        if m.with_content_length {
            // The same bytes as a stream frame, whole and from random chunks.
            let framed = Message::parse_with(
                Bytes::copy_from_slice(&printed.bytes[printed.start..]),
                &Limits::DEFAULT,
                Transport::Stream,
            );
            prop_assert!(framed.is_ok(), "{:?}", framed.err());
            let (msgs, err, left) = decode_chunks(&printed.bytes, &sizes, Limits::DEFAULT);
            prop_assert!(err.is_none(), "{:?}\n{}", err, String::from_utf8_lossy(&printed.bytes));
            prop_assert_eq!(left, 0);
            prop_assert_eq!(msgs.len(), 1);
            check_message(&m, &msgs[0], &printed)?;
            // An unmodified edit prints the same bytes (CRLF messages: the builder writes CRLF).
            if !m.lf_only {
                let edited = msg.edit().build();
                prop_assert!(edited.is_ok(), "{:?}", edited.err());
                let edited = edited.expect("checked");
                prop_assert_eq!(edited.as_bytes(), msg.as_bytes());
            }
        } else {
            // Without Content-Length the body runs to the end of the datagram; a stream refuses it.
            let framed = Message::parse_with(
                Bytes::copy_from_slice(&printed.bytes[printed.start..]),
                &Limits::DEFAULT,
                Transport::Stream,
            );
            prop_assert!(framed.is_err());
        }
    }

    /// Two messages back to back on a stream, with keep-alives, come out as two messages.
    #[test]
    fn stream_cuts_consecutive_messages(
        a in message(),
        b in message(),
        ka in select(vec!["", "\r\n", "\r\n\r\n", "\n"]),
        sizes in vec(1usize..120, 1..8),
    ) {
        let (mut a, mut b) = (a, b);
        a.with_content_length = true;
        b.with_content_length = true;
        let (pa, pb) = (print(&a), print(&b));
        let mut stream = pa.bytes.clone();
        stream.extend_from_slice(ka.as_bytes());
        stream.extend_from_slice(&pb.bytes);
        let (msgs, err, left) = decode_chunks(&stream, &sizes, Limits::DEFAULT);
        prop_assert!(err.is_none(), "{:?}", err);
        prop_assert_eq!(left, 0);
        prop_assert_eq!(msgs.len(), 2);
        check_message(&a, &msgs[0], &pa)?;
        check_message(&b, &msgs[1], &pb)?;
    }
}

// ---- Robustness -------------------------------------------------------------------------------

const STATUSES: [u16; 4] = [400, 416, 505, 513];

/// Everything a caller may do with an accepted message; checks the documented invariants.
fn exercise(msg: &Message, input: &[u8]) -> TestResult {
    let lead = input
        .iter()
        .take_while(|&&c| c == b'\r' || c == b'\n')
        .count();
    prop_assert!(
        input[lead..].starts_with(msg.as_bytes()),
        "message is a prefix of the input"
    );
    let _ = msg.to_string();
    let _ = msg.start_line();
    for h in msg.headers() {
        prop_assert_eq!(HeaderName::from_wire(h.raw_name), h.name);
        prop_assert!(msg.as_bytes().len() >= h.raw.len());
        let _ = (h.value, h.raw);
    }
    prop_assert!(msg.via_count() >= 1);
    let vias = msg.vias();
    prop_assert_eq!(vias.len(), msg.via_count());
    let top = msg.top_via();
    prop_assert!(top.is_some(), "top Via");
    prop_assert_eq!(top.as_ref().and_then(|v| v.branch()), msg.top_via_branch());
    for v in &vias {
        let _ = (
            v.rport(),
            v.received(),
            v.has_rfc3261_branch(),
            v.host().to_string(),
        );
    }
    let from = msg.from();
    prop_assert!(from.is_some(), "From is validated at parse time");
    prop_assert_eq!(from.as_ref().and_then(|f| f.tag()), msg.from_tag());
    let to = msg.to();
    prop_assert!(to.is_some(), "To is validated at parse time");
    prop_assert_eq!(to.as_ref().and_then(|t| t.tag()), msg.to_tag());
    for na in [from, to].into_iter().flatten() {
        let _ = (na.display_name(), na.uri().to_string(), na.uri().scheme());
        if let Some(s) = na.uri().as_sip() {
            let _ = (s.aor(), s.user_unescaped(), s.transport());
        }
    }
    let _ = msg.cseq();
    let _ = msg.call_id();
    match msg.kind() {
        Kind::Request => {
            prop_assert!(msg.method().is_some());
            prop_assert!(
                msg.request_uri().is_some(),
                "Request-URI is validated at parse time"
            );
            prop_assert_eq!(msg.cseq().method, msg.method().expect("checked"));
        }
        Kind::Response => {
            prop_assert!(msg.status().is_some_and(|s| (100..=699).contains(&s)));
            let _ = msg.reason_phrase();
        }
    }
    for c in msg.contacts() {
        let _ = (c.q(), c.expires());
        if let Some(a) = c.addr() {
            let _ = (a.display_name(), a.uri().to_string());
        }
    }
    let _ = (
        msg.route(),
        msg.record_route(),
        msg.expires(),
        msg.max_forwards(),
    );
    if msg.header(HeaderName::Contact).is_some() {
        prop_assert!(
            !msg.contacts().is_empty(),
            "Contact is validated at parse time"
        );
    }
    if msg.header(HeaderName::ContentType).is_some() {
        prop_assert!(
            msg.content_type().is_some(),
            "Content-Type is validated at parse time"
        );
    }
    if msg.header(HeaderName::Expires).is_some() {
        prop_assert!(
            msg.expires().is_some(),
            "Expires is validated at parse time"
        );
    }
    if let Some(cl) = msg.content_length() {
        prop_assert_eq!(msg.body_bytes().len(), cl as usize);
    }
    // The printed message parses again to the same message.
    let again = Message::parse(msg.as_bytes().clone());
    prop_assert!(again.is_ok(), "reparse: {:?}", again.as_ref().err());
    let again = again.expect("checked");
    prop_assert_eq!(again.as_bytes(), msg.as_bytes());
    prop_assert_eq!(again.headers().len(), msg.headers().len());
    // Editing never panics.
    let _ = msg.edit().build();
    Ok(())
}

fn robust(input: &[u8], limits: Limits, sizes: &[usize]) -> TestResult {
    for transport in [Transport::Datagram, Transport::Stream] {
        match Message::parse_with(Bytes::copy_from_slice(input), &limits, transport) {
            Ok(m) => exercise(&m, input)?,
            Err(e) => {
                prop_assert!(STATUSES.contains(&e.status()), "{:?}", e);
                prop_assert!(e.offset() <= input.len(), "{:?}", e);
                let _ = (
                    e.to_string(),
                    e.reason_phrase(),
                    e.warning_text(),
                    e.header(),
                );
            }
        }
    }
    let (msgs, err, _) = decode_chunks(input, sizes, limits);
    // A datagram with Content-Length is also what a stream decoder cuts first.
    if let Ok(m) = Message::parse_with(Bytes::copy_from_slice(input), &limits, Transport::Datagram)
        && m.content_length().is_some()
    {
        prop_assert!(
            !msgs.is_empty(),
            "decoder lost {:?}: {:?}",
            m.start_line(),
            err
        );
        prop_assert_eq!(msgs[0].as_bytes(), m.as_bytes());
    }
    for m in &msgs {
        prop_assert!(m.content_length().is_some());
        // A framed message is accepted as a datagram too.
        let d = Message::parse_with(m.as_bytes().clone(), &limits, Transport::Datagram);
        prop_assert!(d.is_ok(), "{:?}", d.err());
        let d = d.expect("checked");
        prop_assert_eq!(d.as_bytes(), m.as_bytes());
    }
    if let Some(e) = err {
        prop_assert!(STATUSES.contains(&e.status()), "{:?}", e);
    }
    Ok(())
}

fn limits() -> impl Strategy<Value = Limits> {
    prop_oneof![
        3 => Just(Limits::DEFAULT),
        1 => (20usize..3000, 0usize..24, 4usize..300, 0usize..6).prop_map(
            |(max_message_size, max_headers, max_line_length, max_vias)| Limits {
                max_message_size,
                max_headers,
                max_line_length,
                max_vias,
            }
        ),
    ]
}

/// Fragments that steer random inputs into the parser's deeper paths.
fn sipish() -> impl Strategy<Value = Vec<u8>> {
    let frags = vec![
        "INVITE ",
        "REGISTER ",
        "SIP/2.0",
        "SIP/2.0 ",
        "SIP/7.0",
        "200 ",
        " OK",
        "sip:",
        "sips:",
        "tel:",
        "x:",
        "user",
        "@",
        "host.example.com",
        "[2001:db8::1]",
        "[",
        "]",
        ":5060",
        ":",
        ";",
        "=",
        ",",
        "<",
        ">",
        "\"",
        "\\",
        "%",
        "%4",
        "%41",
        "?",
        "&",
        " ",
        "\t",
        "\r\n",
        "\n",
        "\r",
        "\r\n ",
        "\r\n\r\n",
        "Via: ",
        "v:",
        "SIP/2.0/UDP ",
        ";branch=z9hG4bK",
        ";rport",
        ";received=",
        "From: ",
        "To: ",
        "f:",
        "t:",
        ";tag=",
        "Call-ID: ",
        "i:",
        "CSeq: ",
        "1 ",
        "INVITE",
        "Max-Forwards: ",
        "70",
        "Contact: ",
        "m:",
        "*",
        ";q=",
        "0.5",
        ";expires=",
        "Content-Length: ",
        "l:",
        "0",
        "5",
        "99999999999",
        "-1",
        "Content-Type: ",
        "c:",
        "application/sdp",
        "Route: ",
        "Record-Route: ",
        "Expires: ",
        "X-A: ",
        "é",
        "\u{0}",
        "\u{7f}",
        "0123456789",
        "255.255.255.255",
        "1.2.3",
        "a..b",
    ];
    vec(
        prop_oneof![
            6 => select(frags).prop_map(|s| s.as_bytes().to_vec()),
            1 => any::<u8>().prop_map(|b| vec![b]),
        ],
        0..120,
    )
    .prop_map(|v| v.concat())
}

#[derive(Debug, Clone)]
enum Mutation {
    Set(prop::sample::Index, u8),
    Insert(prop::sample::Index, Vec<u8>),
    Delete(prop::sample::Index, usize),
    Duplicate(prop::sample::Index, usize),
    Truncate(prop::sample::Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let special = select(
        b":;,<>\"\\%@[] \t\r\n=?/0123456789"
            .iter()
            .copied()
            .chain([0u8, 0x7f, 0x80, 0xc3, 0xff])
            .collect::<Vec<u8>>(),
    );
    prop_oneof![
        3 => (any::<prop::sample::Index>(), prop_oneof![special.clone(), any::<u8>()])
            .prop_map(|(i, b)| Mutation::Set(i, b)),
        2 => (any::<prop::sample::Index>(), vec(special, 1..4))
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        1 => (any::<prop::sample::Index>(), 1usize..16).prop_map(|(i, n)| Mutation::Delete(i, n)),
        1 => (any::<prop::sample::Index>(), 1usize..40)
            .prop_map(|(i, n)| Mutation::Duplicate(i, n)),
        1 => any::<prop::sample::Index>().prop_map(Mutation::Truncate),
    ]
}

fn mutate(mut v: Vec<u8>, muts: &[Mutation]) -> Vec<u8> {
    for m in muts {
        if v.is_empty() {
            break;
        }
        match m {
            Mutation::Set(i, b) => {
                let i = i.index(v.len());
                v[i] = *b;
            }
            Mutation::Insert(i, b) => {
                let i = i.index(v.len() + 1);
                v.splice(i..i, b.iter().copied());
            }
            Mutation::Delete(i, n) => {
                let i = i.index(v.len());
                let end = (i + n).min(v.len());
                v.drain(i..end);
            }
            Mutation::Duplicate(i, n) => {
                let i = i.index(v.len());
                let end = (i + n).min(v.len());
                let piece = v[i..end].to_vec();
                v.splice(end..end, piece);
            }
            Mutation::Truncate(i) => {
                let i = i.index(v.len());
                v.truncate(i);
            }
        }
    }
    v
}

/// Every vector file, valid or not.
fn vectors() -> &'static [Vec<u8>] {
    static V: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    V.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors");
        let mut out = Vec::new();
        for dir in ["rfc4475", "rfc5118", "rfc5118/crlf-normalized", "rfc4474"] {
            let mut files: Vec<_> = std::fs::read_dir(root.join(dir))
                .expect("vector directory")
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect();
            files.sort();
            for f in files {
                out.push(std::fs::read(f).expect("vector"));
            }
        }
        out
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    #[test]
    fn garbage_never_panics(
        input in vec(any::<u8>(), 0..1500),
        limits in limits(),
        sizes in vec(1usize..200, 1..6),
    ) {
        robust(&input, limits, &sizes)?;
    }

    #[test]
    fn sip_shaped_garbage_never_panics(
        input in sipish(),
        limits in limits(),
        sizes in vec(1usize..200, 1..6),
    ) {
        robust(&input, limits, &sizes)?;
    }

    #[test]
    fn mutated_messages_never_panic(
        m in message(),
        muts in vec(mutation(), 1..6),
        limits in limits(),
        sizes in vec(1usize..200, 1..6),
    ) {
        let printed = print(&m);
        let input = mutate(printed.bytes, &muts);
        robust(&input, limits, &sizes)?;
    }

    #[test]
    fn mutated_vectors_never_panic(
        which in any::<prop::sample::Index>(),
        muts in vec(mutation(), 1..6),
        limits in limits(),
        sizes in vec(1usize..200, 1..6),
    ) {
        let v = vectors();
        let input = mutate(v[which.index(v.len())].clone(), &muts);
        robust(&input, limits, &sizes)?;
    }
}
