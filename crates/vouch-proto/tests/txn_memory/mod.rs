//! The completed-transaction memory workload, shared by the memory test and the `txn_memory`
//! example: N REGISTERs (as a softphone sends them after a digest challenge) into a
//! `TransactionLayer` over UDP, each answered 200, and the heap the layer then holds, counted
//! by a global allocator wrapping `std::alloc::System`. Test and example code only; the
//! library crates hold no `unsafe`.

#![allow(unsafe_code)]
// Shared by a test and an example, each using part of it; the layer is returned to keep it
// alive until the caller drops it.
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Instant;

use bytes::Bytes;
use vouch_msg::{HeaderName, Limits, Message};
use vouch_proto::transaction::{
    NonInviteServerState, Reliability, TransactionConfig, TransactionEvent, TransactionKey,
    TransactionLayer, TransactionState, response_with,
};

static LIVE: AtomicIsize = AtomicIsize::new(0);

struct Counting;

// SAFETY: every call forwards to `System` with the caller's arguments unchanged; the counter
// is bookkeeping only.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator with this layout.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Live heap bytes now.
pub fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

/// A REGISTER as a softphone sends it after a digest challenge (about 700 bytes).
pub fn register(i: usize) -> Bytes {
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

/// A layer holding `n` completed REGISTER transactions, what the heap grew by while it was
/// filled, and the total size of the 200s sent.
pub struct Completed {
    pub layer: TransactionLayer<u32>,
    pub held: isize,
    pub response_bytes: usize,
}

/// Fills a layer with `n` completed REGISTER transactions (each request parsed from its own
/// datagram copy, as the driver does; each 200 carries the Contact and a Date) and checks
/// they are all there, in Completed.
pub fn completed_registers(n: usize) -> Completed {
    let now = Instant::now();
    let mut layer: TransactionLayer<u32> = TransactionLayer::new(TransactionConfig::default());
    let before = live();
    let mut response_bytes = 0;
    let mut last = None;
    for i in 0..n {
        let request = Message::parse(register(i)).expect("REGISTER parses");
        layer.handle_receive(now, request, i as u32, Reliability::Unreliable);
        while let Some(ev) = layer.poll_event() {
            if let TransactionEvent::Request { key, request, .. } = ev {
                let contact = request
                    .header(HeaderName::Contact)
                    .expect("Contact")
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
                    &Limits::DEFAULT,
                )
                .expect("200 builds");
                response_bytes += ok.as_bytes().len();
                layer.respond(now, &key, ok).expect("200 sent");
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
    Completed {
        layer,
        held,
        response_bytes,
    }
}
