//! Smaller headers: RSeq and RAck (RFC 3262 §7.1, §7.2), Event and Subscription-State
//! (RFC 6665 §8.2.1, §8.2.3, grammar §8.4), Warning (RFC 3261 §20.43) and Reason (RFC 3326 §2).
//!
//! Grammar choices: names from the grammar (`active`, `terminated`, …) compare
//! case-insensitively as RFC 5234 strings do; numbers must fit their range (RSeq, RAck, cause
//! and the 3-digit warn-code are refused when they do not; only delta-seconds saturate at
//! 2^32-1, as RFC 3261 §10.2.1.1 asks); a parameter with a typed
//! meaning (`expires`, `reason`, `retry-after`, `cause`, `text`) may appear once, since two
//! would leave its meaning ambiguous.

use std::borrow::Cow;

use crate::error::{ErrorKind, ParseError};
use crate::headers::addr::parse_delta_seconds;
use crate::headers::basic::parse_bounded;
use crate::method::Method;
use crate::scan::{Cursor, Params, is_lws, is_token_char, trim_lws, unquote};
use crate::uri::parse_hostport;

fn bad(offset: usize, detail: &'static str) -> ParseError {
    ParseError::new(ErrorKind::BadHeaderValue, offset, detail)
}

/// RSeq (RFC 3262 §7.1): `response-num = 1*DIGIT`, 1 to 2^32-1.
pub fn parse_rseq(value: &str) -> Result<u32, ParseError> {
    let t = trim_lws(value);
    if !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(0, "RSeq must be a number"));
    }
    parse_bounded(t, u64::from(u32::MAX))
        .filter(|&n| n != 0)
        .ok_or_else(|| bad(0, "RSeq must be from 1 to 2^32-1"))
}

/// RAck (RFC 3262 §7.2): the RSeq and CSeq of the reliable provisional response acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RAck<'a> {
    /// response-num, the RSeq being acknowledged (1 to 2^32-1).
    pub rseq: u32,
    /// CSeq-num of the request the provisional response answered (below 2^31, as CSeq).
    pub cseq: u32,
    /// The method of that request.
    pub method: Method<'a>,
}

impl<'a> RAck<'a> {
    /// Parses `response-num LWS CSeq-num LWS Method`.
    pub fn parse(value: &'a str) -> Result<Self, ParseError> {
        let mut c = Cursor::new(value);
        c.skip_lws();
        let rseq = c.take_while(|b| b.is_ascii_digit());
        let rseq = parse_bounded(rseq, u64::from(u32::MAX))
            .filter(|&n| n != 0)
            .ok_or_else(|| c.err("RAck response-num missing or not from 1 to 2^32-1"))?;
        lws(&mut c, "expected whitespace after RAck response-num")?;
        let cseq = c.take_while(|b| b.is_ascii_digit());
        let cseq = parse_bounded(cseq, 0x7fff_ffff)
            .ok_or_else(|| c.err("RAck CSeq-num missing or not below 2^31"))?;
        lws(&mut c, "expected whitespace after RAck CSeq-num")?;
        let method = Method::from_token(c.token("missing RAck method")?);
        c.skip_lws();
        if !c.at_end() {
            return Err(c.err("unexpected text after RAck method"));
        }
        Ok(RAck { rseq, cseq, method })
    }
}

/// At least one LWS.
fn lws(c: &mut Cursor<'_>, detail: &'static str) -> Result<(), ParseError> {
    let before = c.pos();
    c.skip_lws();
    if c.pos() == before {
        Err(c.err(detail))
    } else {
        Ok(())
    }
}

/// Event (RFC 6665 §8.2.1): `event-type *( SEMI event-param )`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event<'a> {
    /// The event type as written: package and templates, e.g. `presence.winfo`.
    pub event_type: &'a str,
    /// All event-params, `id` included.
    pub params: Params<'a>,
}

impl<'a> Event<'a> {
    /// Parses an Event value. `event-type = event-package *( "." event-template )` with each
    /// part a non-empty token without dots.
    pub fn parse(value: &'a str) -> Result<Self, ParseError> {
        let mut c = Cursor::new(value);
        c.skip_lws();
        let start = c.pos();
        let event_type = c.token("missing event type")?;
        if event_type.split('.').any(str::is_empty) {
            return Err(bad(start, "empty event package or template"));
        }
        let params = c.params(|_| false)?;
        c.skip_lws();
        if !c.at_end() {
            return Err(c.err("unexpected text after Event"));
        }
        Ok(Event { event_type, params })
    }

    /// The event package (`presence` of `presence.winfo`).
    pub fn package(&self) -> &'a str {
        self.event_type.split('.').next().unwrap_or(self.event_type)
    }

    /// The event templates, in order (`winfo` of `presence.winfo`).
    pub fn templates(&self) -> impl Iterator<Item = &'a str> + use<'a> {
        self.event_type.split('.').skip(1)
    }

    /// The `id` parameter that tells subscriptions in one dialog apart.
    pub fn id(&self) -> Option<&'a str> {
        self.params.get("id").flatten()
    }
}

/// A subscription state (RFC 6665 `substate-value`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubState<'a> {
    /// `active`
    Active,
    /// `pending`
    Pending,
    /// `terminated`
    Terminated,
    /// An extension-substate token, as written.
    Other(&'a str),
}

/// Subscription-State (RFC 6665 §8.2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscriptionState<'a> {
    /// The state.
    pub state: SubState<'a>,
    /// `expires` in seconds.
    pub expires: Option<u32>,
    /// `reason` as written (`deactivated`, `probation`, `rejected`, `timeout`, `giveup`,
    /// `noresource`, `invariant` or another token).
    pub reason: Option<&'a str>,
    /// `retry-after` in seconds.
    pub retry_after: Option<u32>,
    /// All parameters as written.
    pub params: Params<'a>,
}

impl<'a> SubscriptionState<'a> {
    /// Parses `substate-value *( SEMI subexp-params )`.
    pub fn parse(value: &'a str) -> Result<Self, ParseError> {
        let mut c = Cursor::new(value);
        c.skip_lws();
        let s = c.token("missing subscription state")?;
        let state = if s.eq_ignore_ascii_case("active") {
            SubState::Active
        } else if s.eq_ignore_ascii_case("pending") {
            SubState::Pending
        } else if s.eq_ignore_ascii_case("terminated") {
            SubState::Terminated
        } else {
            SubState::Other(s)
        };
        let params_at = c.pos();
        let params = c.params(|_| false)?;
        c.skip_lws();
        if !c.at_end() {
            return Err(c.err("unexpected text after Subscription-State"));
        }
        let mut st = SubscriptionState {
            state,
            expires: None,
            reason: None,
            retry_after: None,
            params,
        };
        for (n, v) in params.iter() {
            let seconds = |v: Option<&str>| {
                v.and_then(parse_delta_seconds)
                    .ok_or_else(|| bad(params_at, "expires and retry-after must be delta-seconds"))
            };
            if n.eq_ignore_ascii_case("expires") {
                once(&mut st.expires, seconds(v)?, params_at)?;
            } else if n.eq_ignore_ascii_case("retry-after") {
                once(&mut st.retry_after, seconds(v)?, params_at)?;
            } else if n.eq_ignore_ascii_case("reason") {
                let r = v
                    .filter(|r| r.bytes().all(is_token_char))
                    .ok_or_else(|| bad(params_at, "reason must be a token"))?;
                once(&mut st.reason, r, params_at)?;
            }
        }
        Ok(st)
    }
}

fn once<T>(slot: &mut Option<T>, v: T, offset: usize) -> Result<(), ParseError> {
    if slot.is_some() {
        return Err(bad(offset, "parameter appears twice"));
    }
    *slot = Some(v);
    Ok(())
}

/// One Warning value (RFC 3261 §20.43): `warn-code SP warn-agent SP warn-text`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning<'a> {
    /// The three-digit warn-code.
    pub code: u16,
    /// The warn-agent: a hostport or a pseudonym token, as written.
    pub agent: &'a str,
    /// The warn-text, unquoted.
    pub text: Cow<'a, str>,
}

impl<'a> Warning<'a> {
    fn parse_at(c: &mut Cursor<'a>) -> Result<Self, ParseError> {
        c.skip_lws();
        let at = c.pos();
        let digits = c.take_while(|b| b.is_ascii_digit());
        if digits.len() != 3 {
            // RFC 4475 §3.1.2.5: a 4-digit warn-code is malformed.
            return Err(bad(at, "warn-code must be 3 digits"));
        }
        let code = digits
            .bytes()
            .fold(0u16, |v, b| v * 10 + u16::from(b - b'0'));
        lws(c, "expected space after warn-code")?;
        let agent_at = c.pos();
        let agent = c.take_while(|b| !is_lws(b) && b != b'"' && b != b',');
        if agent.is_empty() || !is_warn_agent(agent, agent_at) {
            return Err(bad(agent_at, "warn-agent must be a hostport or token"));
        }
        lws(c, "expected space after warn-agent")?;
        if c.peek() != Some(b'"') {
            return Err(c.err("warn-text must be a quoted string"));
        }
        let text = unquote(c.quoted_string()?);
        Ok(Warning { code, agent, text })
    }
}

/// warn-agent = hostport / pseudonym.
fn is_warn_agent(s: &str, at: usize) -> bool {
    s.bytes().all(is_token_char)
        || parse_hostport(s, at).is_ok_and(|(_, _, _, used)| used == s.len())
}

/// Reads every Warning value of one header field, in order.
pub fn parse_warnings<'a>(
    value: &'a str,
    mut each: impl FnMut(Warning<'a>),
) -> Result<(), ParseError> {
    parse_list(value, "expected ',' between Warning values", |c| {
        each(Warning::parse_at(c)?);
        Ok(())
    })
}

/// One Reason value (RFC 3326 §2): `protocol *( SEMI reason-params )`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason<'a> {
    /// The protocol as written (`SIP`, `Q.850`, or another token).
    pub protocol: &'a str,
    /// `cause`: a SIP status code or a Q.850 cause value.
    pub cause: Option<u32>,
    /// `text`, unquoted.
    pub text: Option<Cow<'a, str>>,
    /// All reason-params as written.
    pub params: Params<'a>,
}

impl<'a> Reason<'a> {
    fn parse_at(c: &mut Cursor<'a>) -> Result<Self, ParseError> {
        c.skip_lws();
        let protocol = c.token("missing Reason protocol")?;
        let params_at = c.pos();
        let params = c.params(|b| b == b',')?;
        let mut r = Reason {
            protocol,
            cause: None,
            text: None,
            params,
        };
        for (n, v) in params.iter() {
            if n.eq_ignore_ascii_case("cause") {
                let cause = v
                    .filter(|d| d.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|d| parse_bounded(d, u64::from(u32::MAX)))
                    .ok_or_else(|| bad(params_at, "cause must be a number below 2^32"))?;
                once(&mut r.cause, cause, params_at)?;
            } else if n.eq_ignore_ascii_case("text") {
                let t = v
                    .filter(|t| t.starts_with('"'))
                    .ok_or_else(|| bad(params_at, "Reason text must be a quoted string"))?;
                once(&mut r.text, unquote(t), params_at)?;
            }
        }
        Ok(r)
    }

    /// The protocol compared case-insensitively, e.g. `is("Q.850")`.
    pub fn is(&self, protocol: &str) -> bool {
        self.protocol.eq_ignore_ascii_case(protocol)
    }
}

/// Reads every Reason value of one header field, in order.
pub fn parse_reasons<'a>(
    value: &'a str,
    mut each: impl FnMut(Reason<'a>),
) -> Result<(), ParseError> {
    parse_list(value, "expected ',' between Reason values", |c| {
        each(Reason::parse_at(c)?);
        Ok(())
    })
}

/// `item *(COMMA item)` to the end of the value; empty items are refused.
fn parse_list<'a>(
    value: &'a str,
    missing_comma: &'static str,
    mut item: impl FnMut(&mut Cursor<'a>) -> Result<(), ParseError>,
) -> Result<(), ParseError> {
    let mut c = Cursor::new(value);
    loop {
        item(&mut c)?;
        c.skip_lws();
        if c.at_end() {
            return Ok(());
        }
        if !c.eat(b',') {
            return Err(c.err(missing_comma));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn warnings(s: &str) -> Result<Vec<Warning<'_>>, ParseError> {
        let mut v = Vec::new();
        parse_warnings(s, |w| v.push(w)).map(|_| v)
    }

    fn reasons(s: &str) -> Result<Vec<Reason<'_>>, ParseError> {
        let mut v = Vec::new();
        parse_reasons(s, |r| v.push(r)).map(|_| v)
    }

    #[test]
    fn rseq_is_one_to_two_to_the_32_minus_one() {
        assert_eq!(parse_rseq(" 988789 ").unwrap(), 988_789);
        assert_eq!(parse_rseq("4294967295").unwrap(), u32::MAX);
        assert_eq!(parse_rseq("0001").unwrap(), 1);
        for v in [
            "0",
            "4294967296",
            "",
            "-1",
            "1 2",
            "abc",
            "99999999999999999999",
        ] {
            assert!(parse_rseq(v).is_err(), "{v:?}");
        }
    }

    #[test]
    fn rack_reads_numbers_and_method() {
        let r = RAck::parse("776656 1 INVITE").unwrap();
        assert_eq!((r.rseq, r.cseq, r.method), (776_656, 1, Method::Invite));
        let r = RAck::parse("4294967295\r\n 2147483647  UPDATE").unwrap();
        assert_eq!(r.rseq, u32::MAX);
        assert_eq!(r.method, Method::Update);
        for v in [
            "",
            "776656",
            "776656 1",
            "0 1 INVITE",
            "776656 2147483648 INVITE",
            "4294967296 1 INVITE",
            "776656 1INVITE",
            "776656 1 INVITE x",
            "776656,1 INVITE",
        ] {
            assert!(RAck::parse(v).is_err(), "{v:?}");
        }
    }

    #[test]
    fn event_reads_package_templates_and_id() {
        let e = Event::parse("presence.winfo ; id=1234;foo=\"bar\"").unwrap();
        assert_eq!(e.package(), "presence");
        assert_eq!(e.templates().collect::<Vec<_>>(), ["winfo"]);
        assert_eq!(e.id(), Some("1234"));
        assert_eq!(e.params.get("foo"), Some(Some("\"bar\"")));
        let e = Event::parse("refer").unwrap();
        assert_eq!(e.event_type, "refer");
        assert_eq!(e.id(), None);
        assert_eq!(e.templates().count(), 0);
        for v in [
            "",
            "presence.",
            ".winfo",
            "a..b",
            "presence;;",
            "presence id=1",
            "pres ence",
            "presence;id=",
        ] {
            assert!(Event::parse(v).is_err(), "{v:?}");
        }
    }

    #[test]
    fn subscription_state_reads_state_and_parameters() {
        let s = SubscriptionState::parse("active;expires=3600").unwrap();
        assert_eq!(s.state, SubState::Active);
        assert_eq!(s.expires, Some(3600));
        let s = SubscriptionState::parse("Terminated ; reason=timeout ; retry-after=30").unwrap();
        assert_eq!(s.state, SubState::Terminated);
        assert_eq!(s.reason, Some("timeout"));
        assert_eq!(s.retry_after, Some(30));
        assert_eq!(s.expires, None);
        assert_eq!(
            SubscriptionState::parse("pending").unwrap().state,
            SubState::Pending
        );
        let s = SubscriptionState::parse("waiting;x=1").unwrap();
        assert_eq!(s.state, SubState::Other("waiting"));
        assert!(s.params.contains("x"));
        for v in [
            "",
            "active;expires",
            "active;expires=soon",
            "active;expires=1;expires=2",
            "terminated;reason=\"timeout\"",
            "terminated;reason=a;reason=b",
            "terminated;retry-after=-1",
            "active expires=1",
            "active;",
        ] {
            assert!(SubscriptionState::parse(v).is_err(), "{v:?}");
        }
    }

    #[test]
    fn warning_reads_a_list_with_host_and_pseudonym_agents() {
        let w = warnings(
            "307 isi.edu \"Session parameter 'foo' not understood\", 301 [2001:db8::1]:5060 \"Incompatible \\\"E.164\\\"\",399 proxy-7 \"x, y\"",
        )
        .unwrap();
        assert_eq!(w.len(), 3);
        assert_eq!((w[0].code, w[0].agent), (307, "isi.edu"));
        assert_eq!(w[0].text, "Session parameter 'foo' not understood");
        assert_eq!(w[1].agent, "[2001:db8::1]:5060");
        assert_eq!(w[1].text, "Incompatible \"E.164\"");
        assert_eq!(
            (w[2].code, w[2].agent, w[2].text.as_ref()),
            (399, "proxy-7", "x, y")
        );
        assert_eq!(
            warnings("370 host.example.com:5061 \"\"").unwrap()[0].agent,
            "host.example.com:5061"
        );
    }

    #[test]
    fn warning_refuses_four_digit_codes_and_other_damage() {
        // RFC 4475 §3.1.2.5.
        assert!(warnings("1812 overture \"In Progress\"").is_err());
        for v in [
            "",
            "30 isi.edu \"x\"",
            "307isi.edu \"x\"",
            "307 isi.edu x",
            "307 isi.edu",
            "307 \"x\"",
            "307 isi.edu \"x\",",
            "307 isi.edu \"x\" 301 a \"y\"",
            "307 isi.edu \"unterminated",
            "307 a@b \"x\"",
            "307 [::1 \"x\"",
        ] {
            assert!(warnings(v).is_err(), "{v:?}");
        }
    }

    #[test]
    fn reason_reads_protocol_cause_and_text_list() {
        let r = reasons("SIP ;cause=200 ;text=\"Call completed elsewhere\"").unwrap();
        assert_eq!(r.len(), 1);
        assert!(r[0].is("sip"));
        assert_eq!(r[0].cause, Some(200));
        assert_eq!(r[0].text.as_deref(), Some("Call completed elsewhere"));
        let r = reasons("SIP;cause=580;text=\"Precondition, Failure\", Q.850;cause=16;location=LN")
            .unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[1].protocol, "Q.850");
        assert_eq!(r[1].cause, Some(16));
        assert_eq!(r[1].text, None);
        assert_eq!(r[1].params.get("location"), Some(Some("LN")));
        assert_eq!(reasons("preemption").unwrap()[0].cause, None);
    }

    #[test]
    fn reason_refuses_bad_cause_text_and_lists() {
        for v in [
            "",
            "SIP;cause=abc",
            "SIP;cause",
            "SIP;cause=99999999999",
            "SIP;cause=1;cause=2",
            "SIP;text=unquoted",
            "SIP;text=\"a\";text=\"b\"",
            "SIP;cause=200,",
            "SIP;cause=200,,Q.850",
            "SIP cause=200",
            "\"SIP\";cause=200",
        ] {
            assert!(reasons(v).is_err(), "{v:?}");
        }
    }

    #[test]
    fn never_panics_on_prefixes() {
        let samples = [
            "307 [2001:db8::1]:5060 \"Incompatible \\\"x\\\"\u{e9}\", 399 a \"b\"",
            "SIP;cause=580;text=\"Precondition\u{e9}\", Q.850;cause=16",
            "terminated;reason=timeout;retry-after=30",
            "presence.winfo;id=\"\\\u{e9}\"",
            "4294967295 2147483647 UPDATE",
        ];
        for s in samples {
            for i in 0..=s.len() {
                if s.is_char_boundary(i) {
                    let p = &s[..i];
                    let _ = warnings(p);
                    let _ = reasons(p);
                    let _ = SubscriptionState::parse(p);
                    let _ = Event::parse(p);
                    let _ = RAck::parse(p);
                    let _ = parse_rseq(p);
                }
            }
        }
    }
}
