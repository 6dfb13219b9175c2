//! Heap held by Completed non-INVITE server transactions (RFC 3261 §17.2.2): under REGISTER
//! load a registrar keeps 64·T1 (32 s) of them, so what each one holds is most of its memory.
//! Completed needs only the final response's bytes; holding the parsed request (its 640-byte
//! `Message`, header index and datagram) or the parsed response again fails this test.
//!
//! Alone in its binary, with one test, so nothing else allocates while it counts.

#![allow(clippy::unwrap_used)]

mod counting_alloc;

use counting_alloc::live;
use std::time::Instant;

use bytes::Bytes;
use vouch_msg::Message;
use vouch_proto::transaction::{
    NonInviteServerState, Reliability, TransactionConfig, TransactionEvent, TransactionKey,
    TransactionLayer, TransactionState, response_with,
};

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
Expires: 3600\r\n\
Content-Length: 0\r\n\r\n",
        h = i % 250 + 1
    ))
}

#[test]
fn completed_non_invite_server_transactions_hold_little_heap() {
    const N: usize = 2_000;
    // Measured: ~1,170 B each (the table, the key, the 355-byte 200); holding the
    // parsed request was ~5,100 B. Either parsed message alone adds more than 800 B.
    const LIMIT: isize = 2_000;
    let now = Instant::now();
    let mut layer: TransactionLayer<u32> = TransactionLayer::new(TransactionConfig::default());
    let mut last = None;
    let before = live();
    for i in 0..N {
        let request = Message::parse(register(i)).unwrap();
        layer.handle_receive(now, request, i as u32, Reliability::Unreliable);
        while let Some(ev) = layer.poll_event() {
            if let TransactionEvent::Request { key, request, .. } = ev {
                let extra = [("Contact", "<sip:u@192.0.2.1:5060>;expires=3600")];
                let ok = response_with(&request, 200, "OK", Some("t"), &extra).unwrap();
                layer.respond(now, &key, ok).unwrap();
                last = Some(key);
            }
        }
        while layer.poll_transmit().is_some() {}
    }
    let held = live() - before;
    let last = TransactionKey::Server(last.unwrap());
    assert_eq!(layer.len(), N);
    assert_eq!(
        layer.state(&last),
        Some(TransactionState::NonInviteServer(
            NonInviteServerState::Completed
        ))
    );
    let per = held / N as isize;
    assert!(
        per < LIMIT,
        "{per} B per Completed non-INVITE server transaction (limit {LIMIT} B)"
    );
}
