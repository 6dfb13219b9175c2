//! Heap held by completed non-INVITE server transactions (RFC 3261 §17.2.2, Completed state,
//! kept for Timer J = 64·T1 on UDP).
//!
//! Feeds N REGISTER-like requests into a `TransactionLayer` over an unreliable transport,
//! answers each with a 200 carrying a Contact, drains every output, and reports the heap bytes
//! the layer still holds per transaction, counted by a global allocator that wraps
//! `std::alloc::System`.
//!
//! ```text
//! cargo run --release -p vouch-proto --example txn_memory [-- N]
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/counting_alloc/mod.rs"]
mod counting_alloc;

use counting_alloc::live;
use std::time::Instant;

use bytes::Bytes;
use vouch_msg::{HeaderName, Message};
use vouch_proto::transaction::{
    InviteClientTransaction, InviteServerTransaction, NonInviteClientTransaction,
    NonInviteServerState, NonInviteServerTransaction, Reliability, TransactionConfig,
    TransactionEvent, TransactionKey, TransactionLayer, TransactionState, response_with,
};

/// A REGISTER as a softphone sends it after a digest challenge (about 700 bytes).
fn register(i: usize) -> Bytes {
    Bytes::from(format!(
        "REGISTER sip:example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.{h}:5060;rport;branch=z9hG4bK-{i:08}-reg\r\n\
Max-Forwards: 70\r\n\
From: <sip:user{i}@example.com>;tag=f{i:08}\r\n\
To: <sip:user{i}@example.com>\r\n\
Call-ID: reg-{i:08}@192.0.2.{h}\r\n\
CSeq: 2 REGISTER\r\n\
Contact: <sip:user{i}@192.0.2.{h}:5060;transport=udp>;expires=3600\r\n\
Authorization: Digest username=\"user{i}\", realm=\"example.com\", \
nonce=\"a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4\", uri=\"sip:example.com\", \
response=\"0123456789abcdef0123456789abcdef\", algorithm=MD5, \
cnonce=\"0a4f113b\", qop=auth, nc=00000001\r\n\
User-Agent: softphone/1.0\r\n\
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, MESSAGE, NOTIFY\r\n\
Expires: 3600\r\n\
Content-Length: 0\r\n\r\n",
        h = i % 250 + 1
    ))
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("N is a number"))
        .unwrap_or(10_000);
    let now = Instant::now();
    let request_bytes = register(0).len();

    let mut layer: TransactionLayer<u32> = TransactionLayer::new(TransactionConfig::default());
    let before = live();
    let mut response_bytes = 0;
    let mut last = None;
    for i in 0..n {
        // As the driver does: one datagram copied into its own buffer, then parsed.
        let request = Message::parse(register(i)).expect("REGISTER parses");
        layer.handle_receive(now, request, i as u32, Reliability::Unreliable);
        while let Some(ev) = layer.poll_event() {
            if let TransactionEvent::Request { key, request, .. } = ev {
                let contact = request
                    .header(HeaderName::Contact)
                    .unwrap()
                    .value
                    .to_owned();
                let ok = response_with(
                    &request,
                    200,
                    "OK",
                    Some("reg-tag"),
                    &[
                        ("Contact", &contact),
                        ("Date", "Sat, 13 Nov 2010 23:29:00 GMT"),
                    ],
                )
                .unwrap();
                response_bytes += ok.as_bytes().len();
                layer.respond(now, &key, ok).unwrap();
                last = Some(key);
            }
        }
        while layer.poll_transmit().is_some() {}
    }
    let held = live() - before;
    assert_eq!(layer.len(), n);
    let last = TransactionKey::Server(last.expect("a transaction"));
    assert_eq!(
        layer.state(&last),
        Some(TransactionState::NonInviteServer(
            NonInviteServerState::Completed
        ))
    );
    println!("transactions:            {n} (all NonInviteServer Completed)");
    println!(
        "request datagram:        {request_bytes} B, response: {} B",
        response_bytes / n
    );
    println!(
        "size_of: Message {} B; NonInviteServer {} B, InviteServer {} B, \
NonInviteClient {} B, InviteClient {} B",
        size_of::<Message>(),
        size_of::<NonInviteServerTransaction>(),
        size_of::<InviteServerTransaction>(),
        size_of::<NonInviteClientTransaction>(),
        size_of::<InviteClientTransaction>(),
    );
    println!(
        "heap held by the layer:  {held} B = {} B per completed transaction",
        held / n as isize
    );
    drop(layer);
    println!("after dropping layer:    {} B live", live() - before);
}
