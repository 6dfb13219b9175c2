//! Helpers for the unit tests of the state machines.

use std::time::{Duration, Instant};

use vouch_msg::Message;

use super::build::response_for;
use super::config::TransactionConfig;

/// The one base instant of a test; everything after it is `t0 + duration`.
pub(crate) fn t0() -> Instant {
    Instant::now()
}

pub(crate) fn ms_(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub(crate) fn cfg() -> TransactionConfig {
    TransactionConfig::default()
}

pub(crate) fn request(method: &str, branch: &str) -> Message {
    let s = format!(
        "{method} sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch={branch}\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 {method}\r\n\
Content-Length: 0\r\n\r\n"
    );
    Message::parse(s.into_bytes()).expect("test request parses")
}

pub(crate) fn invite(branch: &str) -> Message {
    request("INVITE", branch)
}

/// A response to `req`, with To tag `uas-tag` except for 100.
pub(crate) fn respond(req: &Message, status: u16) -> Message {
    let tag = (status != 100).then_some("uas-tag");
    response_for(req, status, "Reason", tag).expect("test response builds")
}
