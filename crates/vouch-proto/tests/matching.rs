//! The transaction layer's table: matching per RFC 3261 §17.1.3 and §17.2.3, what goes up to
//! the TU, and robustness against unexpected input. Virtual time only.

#![allow(clippy::unwrap_used)]

mod sim;
mod support;

use std::time::{Duration, Instant};

use sim::XorShift;
use support::*;
use vouch_msg::{Message, Method};
use vouch_proto::Error;
use vouch_proto::transaction::{
    InviteClientState, InviteServerState, Reliability, ServerTransactionKey, Timer,
    TransactionConfig, TransactionEvent, TransactionKey, TransactionLayer, TransactionState,
};

type Layer = TransactionLayer<&'static str>;

fn layer() -> Layer {
    TransactionLayer::new(TransactionConfig::default())
}

fn events(l: &mut Layer) -> Vec<TransactionEvent<&'static str>> {
    std::iter::from_fn(|| l.poll_event()).collect()
}

fn sent(l: &mut Layer) -> Vec<Message> {
    std::iter::from_fn(|| l.poll_transmit())
        .map(|t| Message::parse(t.bytes).unwrap())
        .collect()
}

fn server_key(events: &[TransactionEvent<&'static str>]) -> ServerTransactionKey {
    events
        .iter()
        .find_map(|e| match e {
            TransactionEvent::Request { key, .. } => Some(key.clone()),
            _ => None,
        })
        .expect("a Request event")
}

#[test]
fn response_matches_client_transaction_by_branch_and_method() {
    let t0 = Instant::now();
    let mut l = layer();
    let inv = request("INVITE", "z9hG4bKm1");
    let ik = l
        .send_request(t0, inv.clone(), "bob", Reliability::Unreliable)
        .unwrap();
    assert_eq!(sent(&mut l).len(), 1);
    l.handle_receive(
        t0 + ms(10),
        respond(&inv, 180),
        "bob",
        Reliability::Unreliable,
    );
    let ck = l.cancel(t0 + ms(20), &ik).unwrap();
    let out = sent(&mut l);
    assert_eq!(out[0].method(), Some(Method::Cancel));
    assert_eq!(
        out[0].top_via_branch(),
        Some("z9hG4bKm1"),
        "CANCEL shares the branch"
    );
    events(&mut l);
    // 200 for the CANCEL and 487 for the INVITE share the branch; CSeq method tells them apart.
    l.handle_receive(
        t0 + ms(30),
        respond(&out[0], 200),
        "bob",
        Reliability::Unreliable,
    );
    l.handle_receive(
        t0 + ms(31),
        respond(&inv, 487),
        "bob",
        Reliability::Unreliable,
    );
    let ev = events(&mut l);
    let matched: Vec<(Method<'_>, u16)> = ev
        .iter()
        .filter_map(|e| match e {
            TransactionEvent::Response { key, response } => {
                Some((key.method(), response.status().unwrap_or(0)))
            }
            _ => None,
        })
        .collect();
    assert_eq!(matched, [(Method::Cancel, 200), (Method::Invite, 487)]);
    assert_eq!(
        l.state(&TransactionKey::Client(ik)),
        Some(TransactionState::InviteClient(InviteClientState::Completed))
    );
    assert!(
        l.state(&TransactionKey::Client(ck)).is_some(),
        "CANCEL in Timer K"
    );
    let ack = sent(&mut l);
    assert_eq!(ack.len(), 1);
    assert_eq!(ack[0].method(), Some(Method::Ack));
}

#[test]
fn stray_response_goes_to_tu() {
    let t0 = Instant::now();
    let mut l = layer();
    let other = request("INVITE", "z9hG4bKnotmine");
    l.handle_receive(t0, respond(&other, 200), "bob", Reliability::Unreliable);
    let ev = events(&mut l);
    assert!(matches!(
        ev.as_slice(),
        [TransactionEvent::StrayResponse { remote: "bob", .. }]
    ));
    assert!(l.is_empty());
}

#[test]
fn abandoned_client_transaction_is_terminated_and_later_responses_are_stray() {
    let t0 = Instant::now();
    let mut l = layer();
    let inv = request("INVITE", "z9hG4bKab1");
    let ik = l
        .send_request(t0, inv.clone(), "bob", Reliability::Unreliable)
        .unwrap();
    l.handle_receive(
        t0 + ms(10),
        respond(&inv, 180),
        "bob",
        Reliability::Unreliable,
    );
    events(&mut l);
    assert!(l.abandon(&ik));
    assert!(matches!(
        events(&mut l).as_slice(),
        [TransactionEvent::Terminated { .. }]
    ));
    assert!(l.is_empty());
    assert!(!l.abandon(&ik), "already gone");
    l.handle_receive(
        t0 + ms(20),
        respond(&inv, 487),
        "bob",
        Reliability::Unreliable,
    );
    assert!(matches!(
        events(&mut l).as_slice(),
        [TransactionEvent::StrayResponse { .. }]
    ));
}

#[test]
fn new_request_creates_server_transaction_and_retransmission_is_absorbed() {
    let t0 = Instant::now();
    let mut l = layer();
    let reg = request("REGISTER", "z9hG4bKr1");
    l.handle_receive(t0, reg.clone(), "alice", Reliability::Unreliable);
    let ev = events(&mut l);
    let key = server_key(&ev);
    assert_eq!(key.method(), Method::Register);
    l.handle_receive(t0 + ms(500), reg.clone(), "alice", Reliability::Unreliable);
    assert!(events(&mut l).is_empty(), "retransmission not passed up");
    l.respond(t0 + ms(600), &key, respond(&reg, 200)).unwrap();
    let out = l.poll_transmit().unwrap();
    assert_eq!(
        out.remote, "alice",
        "responses go where the request came from"
    );
    assert_eq!(out.key, TransactionKey::Server(key.clone()));
    l.handle_receive(t0 + ms(1500), reg, "alice", Reliability::Unreliable);
    assert_eq!(sent(&mut l).len(), 1, "final response resent");
    assert_eq!(l.poll_timeout(), Some(t0 + ms(600 + 32_000)), "Timer J");
    l.handle_timeout(t0 + ms(600 + 32_000));
    assert!(matches!(
        events(&mut l).as_slice(),
        [TransactionEvent::Terminated { .. }]
    ));
    assert!(l.is_empty());
}

#[test]
fn same_branch_from_another_sent_by_is_another_transaction() {
    let t0 = Instant::now();
    let mut l = layer();
    let a = request_from("OPTIONS", Some("z9hG4bKdup"), "a.example.com", 1);
    let b = request_from("OPTIONS", Some("z9hG4bKdup"), "b.example.com", 1);
    l.handle_receive(t0, a, "a", Reliability::Unreliable);
    l.handle_receive(t0, b, "b", Reliability::Unreliable);
    let requests = events(&mut l)
        .into_iter()
        .filter(|e| matches!(e, TransactionEvent::Request { .. }))
        .count();
    assert_eq!(requests, 2);
    assert_eq!(l.len(), 2);
}

#[test]
fn ack_for_non_2xx_is_absorbed_by_the_invite_server_transaction() {
    let t0 = Instant::now();
    let mut l = layer();
    let inv = request("INVITE", "z9hG4bKi1");
    l.handle_receive(t0, inv.clone(), "alice", Reliability::Unreliable);
    let key = server_key(&events(&mut l));
    assert_eq!(sent(&mut l)[0].status(), Some(100));
    let busy = respond(&inv, 486);
    l.respond(t0 + ms(10), &key, busy.clone()).unwrap();
    sent(&mut l);
    let ack = vouch_proto::transaction::ack_for(&inv, &busy).unwrap();
    l.handle_receive(t0 + ms(50), ack.clone(), "alice", Reliability::Unreliable);
    assert!(
        events(&mut l).is_empty(),
        "the ACK for a non-2xx is the transaction's"
    );
    assert_eq!(
        l.state(&TransactionKey::Server(key)),
        Some(TransactionState::InviteServer(InviteServerState::Confirmed))
    );
    l.handle_receive(t0 + ms(60), ack, "alice", Reliability::Unreliable);
    assert!(events(&mut l).is_empty() && sent(&mut l).is_empty());
}

#[test]
fn ack_for_2xx_goes_to_tu_as_stray_ack() {
    let t0 = Instant::now();
    let mut l = layer();
    let inv = request("INVITE", "z9hG4bKi2");
    l.handle_receive(t0, inv.clone(), "alice", Reliability::Unreliable);
    let key = server_key(&events(&mut l));
    let ok = respond(&inv, 200);
    l.respond(t0 + ms(10), &key, ok.clone()).unwrap();
    l.handle_receive(
        t0 + ms(50),
        ack_for_2xx(&ok),
        "alice",
        Reliability::Unreliable,
    );
    let ev = events(&mut l);
    assert!(matches!(
        ev.as_slice(),
        [TransactionEvent::StrayAck {
            remote: "alice",
            ..
        }]
    ));
    assert_eq!(
        l.state(&TransactionKey::Server(key.clone())),
        Some(TransactionState::InviteServer(InviteServerState::Accepted))
    );
    // INVITE retransmissions are absorbed in Accepted; Timer L ends it.
    l.handle_receive(t0 + ms(60), inv, "alice", Reliability::Unreliable);
    assert!(events(&mut l).is_empty());
    l.handle_timeout(t0 + ms(10 + 32_000));
    assert!(matches!(
        events(&mut l).as_slice(),
        [TransactionEvent::Terminated { key: TransactionKey::Server(k) }] if *k == key
    ));
}

#[test]
fn cancel_names_the_invite_server_transaction_it_matches() {
    let t0 = Instant::now();
    let mut l = layer();
    let inv = request("INVITE", "z9hG4bKc9");
    l.handle_receive(t0, inv.clone(), "alice", Reliability::Unreliable);
    let ik = server_key(&events(&mut l));
    let cancel = vouch_proto::transaction::cancel_for(&inv).unwrap();
    l.handle_receive(
        t0 + ms(100),
        cancel.clone(),
        "alice",
        Reliability::Unreliable,
    );
    let ev = events(&mut l);
    match ev.as_slice() {
        [
            TransactionEvent::Request {
                key,
                cancels: Some(target),
                ..
            },
        ] => {
            assert_eq!(key.method(), Method::Cancel);
            assert_eq!(*target, ik);
        }
        other => panic!("unexpected {other:?}"),
    }
    // A CANCEL that matches nothing says so.
    let lone = vouch_proto::transaction::cancel_for(&request("INVITE", "z9hG4bKnone")).unwrap();
    l.handle_receive(t0 + ms(100), lone, "alice", Reliability::Unreliable);
    assert!(matches!(
        events(&mut l).as_slice(),
        [TransactionEvent::Request { cancels: None, .. }]
    ));
}

#[test]
fn cancel_waits_for_a_provisional_response() {
    let t0 = Instant::now();
    let mut l = layer();
    let inv = request("INVITE", "z9hG4bKw1");
    let k = l
        .send_request(t0, inv.clone(), "bob", Reliability::Unreliable)
        .unwrap();
    assert!(matches!(l.cancel(t0, &k), Err(Error::CancelTooEarly)));
    l.handle_receive(t0, respond(&inv, 603), "bob", Reliability::Unreliable);
    assert!(matches!(l.cancel(t0, &k), Err(Error::NothingToCancel)));
}

#[test]
fn send_request_refuses_ack_missing_branch_and_duplicates() {
    let t0 = Instant::now();
    let mut l = layer();
    assert!(matches!(
        l.send_request(t0, request("ACK", "z9hG4bKa"), "b", Reliability::Unreliable),
        Err(Error::AckIsNotATransaction)
    ));
    assert!(matches!(
        l.send_request(
            t0,
            request("OPTIONS", "old-branch"),
            "b",
            Reliability::Unreliable
        ),
        Err(Error::MissingBranch)
    ));
    let r = request("OPTIONS", "z9hG4bKd1");
    l.send_request(t0, r.clone(), "b", Reliability::Unreliable)
        .unwrap();
    assert!(matches!(
        l.send_request(t0, r, "b", Reliability::Unreliable),
        Err(Error::DuplicateTransaction { .. })
    ));
    assert!(matches!(
        l.send_request(
            t0,
            respond(&request("OPTIONS", "z9hG4bKd2"), 200),
            "b",
            Reliability::Unreliable
        ),
        Err(Error::NotARequest)
    ));
}

#[test]
fn respond_to_unknown_transaction_is_an_error() {
    let t0 = Instant::now();
    let mut l = layer();
    let r = request("OPTIONS", "z9hG4bKu1");
    let key = ServerTransactionKey::for_request(&r).unwrap();
    assert!(matches!(
        l.respond(t0, &key, respond(&r, 200)),
        Err(Error::NoSuchTransaction)
    ));
}

#[test]
fn transport_error_is_reported_and_ends_the_transaction() {
    let t0 = Instant::now();
    let mut l = layer();
    let k = l
        .send_request(
            t0,
            request("OPTIONS", "z9hG4bKt1"),
            "b",
            Reliability::Reliable,
        )
        .unwrap();
    let tx = l.poll_transmit().unwrap();
    l.handle_transport_error(t0, &tx.key);
    let ev = events(&mut l);
    assert!(matches!(
        ev.as_slice(),
        [
            TransactionEvent::TransportError { .. },
            TransactionEvent::Terminated { .. }
        ]
    ));
    assert!(l.state(&TransactionKey::Client(k)).is_none());
    // Reporting again, or for an unknown key, is harmless.
    l.handle_transport_error(t0, &tx.key);
    assert!(events(&mut l).is_empty());
}

#[test]
fn timer_h_is_reported_when_the_ack_never_comes() {
    let t0 = Instant::now();
    let mut l = layer();
    let inv = request("INVITE", "z9hG4bKh1");
    l.handle_receive(t0, inv.clone(), "alice", Reliability::Unreliable);
    let key = server_key(&events(&mut l));
    l.respond(t0, &key, respond(&inv, 500)).unwrap();
    let mut now = t0;
    while let Some(at) = l.poll_timeout() {
        now = at;
        l.handle_timeout(now);
    }
    assert_eq!(now - t0, Duration::from_secs(32));
    let ev = events(&mut l);
    assert!(matches!(
        ev.as_slice(),
        [
            TransactionEvent::Timeout {
                timer: Timer::H,
                ..
            },
            TransactionEvent::Terminated { .. }
        ]
    ));
    // 100 Trying, then the 500 and its Timer G retransmissions.
    assert_eq!(sent(&mut l).len(), 1 + 11);
}

#[test]
fn rfc2543_requests_without_cookie_are_matched_on_headers() {
    let t0 = Instant::now();
    let mut l = layer();
    let inv = request_from("INVITE", None, "old.example.com", 5);
    l.handle_receive(t0, inv.clone(), "old", Reliability::Unreliable);
    let key = server_key(&events(&mut l));
    assert!(!key.is_rfc3261());
    l.handle_receive(t0 + ms(500), inv.clone(), "old", Reliability::Unreliable);
    assert!(
        events(&mut l).is_empty(),
        "retransmission matched without a branch"
    );
    let busy = respond(&inv, 486);
    l.respond(t0 + ms(600), &key, busy.clone()).unwrap();
    // An ACK whose To tag is not the one we sent is not ours.
    let mut wrong = vouch_proto::transaction::ack_for(&inv, &busy)
        .unwrap()
        .edit();
    wrong.replace("To", "Bob <sip:bob@biloxi.example.com>;tag=other");
    l.handle_receive(
        t0 + ms(650),
        wrong.build().unwrap(),
        "old",
        Reliability::Unreliable,
    );
    assert!(matches!(
        events(&mut l).as_slice(),
        [TransactionEvent::StrayAck { .. }]
    ));
    let ack = vouch_proto::transaction::ack_for(&inv, &busy).unwrap();
    l.handle_receive(t0 + ms(700), ack, "old", Reliability::Unreliable);
    assert!(events(&mut l).is_empty());
    assert_eq!(
        l.state(&TransactionKey::Server(key)),
        Some(TransactionState::InviteServer(InviteServerState::Confirmed))
    );
    // A new CSeq is a new transaction.
    l.handle_receive(
        t0 + ms(800),
        request_from("INVITE", None, "old.example.com", 6),
        "old",
        Reliability::Unreliable,
    );
    assert_eq!(
        events(&mut l)
            .iter()
            .filter(|e| matches!(e, TransactionEvent::Request { .. }))
            .count(),
        1
    );
}

/// Mutates one byte, drops a line, or swaps the start line of a valid message.
fn mutate(rng: &mut XorShift, m: &Message) -> Vec<u8> {
    let mut b = m.as_bytes().to_vec();
    match rng.below(4) {
        0 if !b.is_empty() => {
            let i = rng.below(b.len() as u64) as usize;
            b[i] = rng.next_u64() as u8;
        }
        1 => {
            let text = String::from_utf8_lossy(&b).into_owned();
            let lines: Vec<&str> = text.split("\r\n").collect();
            let drop = rng.below(lines.len() as u64) as usize;
            b = lines
                .iter()
                .enumerate()
                .filter(|&(i, _)| i != drop)
                .map(|(_, l)| *l)
                .collect::<Vec<_>>()
                .join("\r\n")
                .into_bytes();
        }
        2 => {
            let text = String::from_utf8_lossy(&b).into_owned();
            let starts = [
                "SIP/2.0 200 OK",
                "SIP/2.0 100 Trying",
                "ACK sip:x@y SIP/2.0",
                "BYE sip:x@y SIP/2.0",
                "SIP/2.0 699 X",
            ];
            let s = starts[rng.below(starts.len() as u64) as usize];
            b = match text.split_once("\r\n") {
                Some((_, rest)) => format!("{s}\r\n{rest}").into_bytes(),
                None => b,
            };
        }
        _ => {}
    }
    b
}

#[test]
fn arbitrary_message_sequences_never_panic() {
    let t0 = Instant::now();
    for seed in 0..200 {
        let mut rng = XorShift::new(seed);
        let mut l: TransactionLayer<u8> = TransactionLayer::new(TransactionConfig::default());
        let mut now = t0;
        let branches = ["z9hG4bK1", "z9hG4bK2", "nocookie"];
        let methods = ["INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "PRACK"];
        let mut known: Vec<ServerTransactionKey> = Vec::new();
        for _ in 0..200 {
            now += Duration::from_millis(rng.below(3_000));
            let branch = branches[rng.below(3) as usize];
            let method = methods[rng.below(methods.len() as u64) as usize];
            let req = request_from(
                method,
                Some(branch),
                "h.example.com",
                rng.below(3) as u32 + 1,
            );
            let status = [100, 180, 200, 404, 487, 699][rng.below(6) as usize];
            let msg = if rng.chance(0.5) {
                req.clone()
            } else {
                respond(&req, status)
            };
            match rng.below(6) {
                0 => {
                    let _ = l.send_request(now, req, 1, Reliability::Unreliable);
                }
                1 => {
                    if let Some(k) = known.get(rng.below(known.len() as u64 + 1) as usize) {
                        let _ = l.respond(now, k, respond(&req, status));
                    }
                }
                2 => l.handle_timeout(now),
                _ => {
                    let bytes = mutate(&mut rng, &msg);
                    if let Ok(m) = Message::parse(bytes) {
                        let rel = if rng.chance(0.5) {
                            Reliability::Reliable
                        } else {
                            Reliability::Unreliable
                        };
                        l.handle_receive(now, m, 2, rel);
                    }
                }
            }
            while l.poll_transmit().is_some() {}
            while let Some(e) = l.poll_event() {
                if let TransactionEvent::Request { key, .. } = e {
                    known.push(key);
                }
            }
            if let Some(at) = l.poll_timeout() {
                assert!(at >= t0);
            }
        }
        // Everything terminates once time runs on.
        l.handle_timeout(now + Duration::from_secs(3600));
        let mut guard = 0;
        while let Some(at) = l.poll_timeout() {
            l.handle_timeout(at);
            guard += 1;
            assert!(guard < 10_000, "timers keep firing");
        }
        // What is left waits for a TU answer or a final response (no timer runs there, as
        // §17.2.1, §17.2.2 and §17.1.1.2 say); the loop above proved every timer stops.
        while l.poll_event().is_some() {}
    }
}
