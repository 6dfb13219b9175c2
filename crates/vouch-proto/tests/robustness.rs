//! No input makes the endpoint panic or loop: the RFC 4475 torture messages get the answers
//! the RFC expects of a proxy/registrar, and randomly mutated messages are survived.

#![allow(clippy::unwrap_used)]

mod sim;

use std::time::{Duration, Instant};

use bytes::Bytes;
use sim::XorShift;
use vouch_msg::Message;
use vouch_proto::{Endpoint, EndpointConfig, Output, Peer, TransportKind};

fn endpoint(seed: u64) -> Endpoint {
    Endpoint::new(EndpointConfig {
        domains: vec!["example.com".to_owned()],
        local: vec![(TransportKind::Udp, "192.0.2.200:5060".parse().unwrap())],
        seed,
        ..EndpointConfig::default()
    })
}

fn sender() -> Peer {
    "udp:192.0.2.1:5060".parse().unwrap()
}

/// Drains the endpoint; returns the status codes of the responses it sent to `to`.
fn drain(ep: &mut Endpoint, to: &Peer) -> Vec<u16> {
    drain_until(ep, to).0
}

/// Drains the endpoint; returns the statuses sent to `to` and when to call it next.
fn drain_until(ep: &mut Endpoint, to: &Peer) -> (Vec<u16>, Option<Instant>) {
    let mut statuses = Vec::new();
    for _ in 0..10_000 {
        match ep.poll_output() {
            Output::Transmit { to: dst, bytes } => {
                if &dst == to
                    && let Ok(m) = Message::parse(bytes)
                {
                    statuses.extend(m.status());
                }
            }
            Output::Event(_) => {}
            Output::Timeout(at) => return (statuses, at),
        }
    }
    panic!("the endpoint never stopped producing output");
}

fn vectors() -> Vec<(String, Vec<u8>)> {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../vouch-msg/tests/vectors/rfc4475");
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "sip"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    assert!(out.len() >= 40, "RFC 4475 vectors found");
    out
}

#[test]
fn rfc4475_torture_messages_get_the_expected_answers() {
    let now = Instant::now();
    let expect: &[(&str, Option<u16>)] = &[
        ("3.3.4-unksm2.sip", Some(400)),
        ("3.3.5-bext01.sip", Some(420)),
        ("3.3.11-zeromf.sip", Some(483)),
        ("3.3.12-cparam01.sip", Some(200)),
        ("3.3.14-regescrt.sip", Some(200)),
        ("3.3.2-unkscm.sip", Some(416)),
        ("3.1.2.16-badvers.sip", Some(505)),
        ("3.1.2.2-clerr.sip", Some(400)),
        ("3.3.1-insuf.sip", None),
    ];
    for (name, bytes) in vectors() {
        let mut ep = endpoint(1);
        ep.handle_receive(now, 1_700_000_000, sender(), Bytes::from(bytes));
        let statuses = drain(&mut ep, &sender());
        let finals: Vec<u16> = statuses.into_iter().filter(|&s| s >= 200).collect();
        if std::env::var_os("SHOW").is_some() {
            println!("{name}: {finals:?}");
        }
        if let Some((_, want)) = expect.iter().find(|(n, _)| *n == name) {
            assert_eq!(finals.first().copied(), *want, "{name}: {finals:?}");
        }
        // Whatever happens next, timers run out cleanly.
        ep.handle_timeout(now + Duration::from_secs(400), 1_700_000_400);
        drain(&mut ep, &sender());
    }
}

#[test]
fn mutated_messages_never_panic() {
    let mut inputs: Vec<Vec<u8>> = vectors().into_iter().map(|(_, b)| b).collect();
    inputs.push(
        b"REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1;rport\r\nFrom: <sip:bob@example.com>;tag=1\r\nTo: <sip:bob@example.com>\r\nCall-ID: r1\r\nCSeq: 1 REGISTER\r\nContact: <sip:bob@192.0.2.1>;q=0.5, <sip:bob@192.0.2.1:5070>\r\nExpires: 60\r\nContent-Length: 0\r\n\r\n".to_vec(),
    );
    inputs.push(
        b"INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK2\r\nRoute: <sip:192.0.2.200;lr>, <sip:192.0.2.9>\r\nFrom: <sip:a@example.com>;tag=2\r\nTo: <sip:bob@example.com>\r\nCall-ID: i1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 1\r\nContent-Length: 0\r\n\r\n".to_vec(),
    );
    inputs.push(
        b"SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP 192.0.2.200:5060;branch=z9hG4bKx.y, SIP/2.0/UDP 192.0.2.1;received=192.0.2.1;rport=5060\r\nFrom: <sip:a@example.com>;tag=2\r\nTo: <sip:bob@example.com>;tag=9\r\nCall-ID: i1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n".to_vec(),
    );
    let mut rng = XorShift::new(42);
    let t0 = Instant::now();
    let mut ep = endpoint(7);
    let mut t = Duration::ZERO;
    for i in 0..20_000u64 {
        let mut m = inputs[rng.below(inputs.len() as u64) as usize].clone();
        for _ in 0..=rng.below(4) {
            if m.is_empty() {
                break;
            }
            let at = rng.below(m.len() as u64) as usize;
            match rng.below(5) {
                0 => m[at] = rng.next_u64() as u8,
                1 => m.insert(at, b"\r\n:;,<>@\"=% "[rng.below(12) as usize]),
                2 => {
                    m.remove(at);
                }
                3 => m.truncate(at),
                _ => {
                    let end = (at + rng.below(40) as usize).min(m.len());
                    let chunk = m[at..end].to_vec();
                    m.splice(at..at, chunk);
                }
            }
        }
        let from = Peer::new(
            TransportKind::Udp,
            format!("192.0.2.{}:5060", 1 + i % 3).parse().unwrap(),
        );
        t += Duration::from_millis(rng.below(300));
        ep.handle_receive(
            t0 + t,
            1_700_000_000 + t.as_secs() as i64,
            from.clone(),
            Bytes::from(m),
        );
        drain(&mut ep, &from);
        if i % 50 == 0 {
            t += Duration::from_secs(rng.below(40));
            ep.handle_timeout(t0 + t, 1_700_000_000 + t.as_secs() as i64);
            drain(&mut ep, &from);
        }
    }
    // Run every timer out: everything ends.
    let mut next = Some(t0 + t);
    let mut rounds = 0;
    while let Some(at) = next {
        let wall = 1_700_000_000 + at.duration_since(t0).as_secs() as i64;
        ep.handle_timeout(at, wall);
        next = drain_until(&mut ep, &sender()).1;
        rounds += 1;
        if ep.is_idle() || rounds > 10_000 {
            break;
        }
    }
    assert!(ep.is_idle(), "everything ends in time");
}
