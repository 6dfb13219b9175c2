//! Parse a ~900-byte INVITE with SDP and read Via, From, To, CSeq, Call-ID and Contact as typed
//! values — with vouch-msg and, in the same run, with rsip reading the same headers.
//!
//! `cargo bench -p vouch-msg --bench parse`

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

#[path = "common.rs"]
mod common;
use common::{INVITE, vouch_typed};

fn rsip_typed(input: &[u8]) -> usize {
    use rsip::prelude::*;
    let msg = rsip::SipMessage::try_from(input).expect("rsip parses");
    let rsip::SipMessage::Request(req) = msg else {
        panic!("request")
    };
    let via = req.via_header().expect("Via").typed().expect("typed Via");
    let from = req
        .from_header()
        .expect("From")
        .typed()
        .expect("typed From");
    let to = req.to_header().expect("To").typed().expect("typed To");
    let cseq = req
        .cseq_header()
        .expect("CSeq")
        .typed()
        .expect("typed CSeq");
    let call_id = req.call_id_header().expect("Call-ID");
    let contact = req
        .contact_header()
        .expect("Contact")
        .typed()
        .expect("typed Contact");
    via.params.len()
        + from.params.len()
        + to.uri.to_string().len()
        + cseq.seq as usize
        + call_id.value().len()
        + contact.params.len()
        + req.body.len()
}

fn bench(c: &mut Criterion) {
    let input = Bytes::from_static(INVITE);
    assert!(vouch_typed(&input) > 0);
    assert!(rsip_typed(INVITE) > 0);
    let mut g = c.benchmark_group("parse_invite_typed");
    g.throughput(Throughput::Elements(1));
    g.bench_function("vouch-msg", |b| b.iter(|| vouch_typed(black_box(&input))));
    g.bench_function("rsip", |b| b.iter(|| rsip_typed(black_box(INVITE))));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
