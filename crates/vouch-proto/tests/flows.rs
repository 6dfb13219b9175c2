//! Whole transactions between endpoints on a virtual network with loss, duplication and
//! reordering, in virtual time (RFC 3261 §17). Each scenario runs for many seeds.

#![allow(clippy::unwrap_used)]

mod sim;
mod support;

use std::time::Duration;

use sim::{NetConfig, Network, Sim};
use support::*;
use vouch_proto::transaction::{Reliability, TransactionConfig, TransactionLayer};

const LOSSY: NetConfig = NetConfig {
    loss: 0.30,
    duplicate: 0.10,
    min_delay: Duration::from_millis(5),
    max_delay: Duration::from_millis(120),
};

struct Outcome {
    uac: support::UacLog,
    uas: support::UasLog,
    sent: usize,
    lost: usize,
    idle: bool,
}

/// A UAC (node 0) sends one INVITE (or `method`) to a UAS (node 1); runs until both are quiet.
fn run_flow(
    seed: u64,
    net: NetConfig,
    reliability: Reliability,
    method: &str,
    final_status: u16,
    answer_after: Duration,
    cancel_on_ringing: bool,
) -> Outcome {
    let mut sim = Sim::new(Network::new(net, seed), reliability);
    let uac = Uac {
        peer: 1,
        cancel_on_ringing,
        ..Default::default()
    };
    let uac_log = uac.log.clone();
    let uas = Uas::new(final_status, answer_after);
    let uas_log = uas.log.clone();
    sim.add(
        TransactionLayer::new(TransactionConfig::default()),
        Box::new(uac),
    );
    sim.add(
        TransactionLayer::new(TransactionConfig::default()),
        Box::new(uas),
    );
    let req = request(method, &format!("z9hG4bK{seed}x"));
    sim.act(0, |ctx| {
        ctx.layer
            .send_request(ctx.now, req, 1, reliability)
            .expect("transaction starts");
    });
    sim.run(Duration::from_secs(300));
    let idle = sim.nodes.iter().all(|n| n.layer.is_empty());
    Outcome {
        uac: std::mem::take(&mut *uac_log.borrow_mut()),
        uas: std::mem::take(&mut *uas_log.borrow_mut()),
        sent: sim.net.sent,
        lost: sim.net.lost,
        idle,
    }
}

#[test]
fn lossy_network_completes_invite_flow() {
    let (mut sent, mut lost) = (0, 0);
    for final_status in [486, 200] {
        for seed in 0..100 {
            let o = run_flow(
                seed,
                LOSSY,
                Reliability::Unreliable,
                "INVITE",
                final_status,
                ms(0),
                false,
            );
            sent += o.sent;
            lost += o.lost;
            let why = format!(
                "seed {seed}, final {final_status}: {:?} / {:?}",
                o.uac, o.uas
            );
            assert_eq!(o.uac.invite_finals.first(), Some(&final_status), "{why}");
            assert!(
                o.uac.invite_finals.iter().all(|&s| s == final_status),
                "{why}"
            );
            assert!(o.uac.timeouts.is_empty(), "{why}");
            assert!(
                o.uas.timeouts.is_empty(),
                "the ACK arrived (no Timer H): {why}"
            );
            assert_eq!(o.uas.requests, ["INVITE"], "one server transaction: {why}");
            if final_status == 200 {
                assert!(o.uas.acks_for_2xx >= 1, "{why}");
                assert!(!o.uas.gave_up_2xx, "{why}");
            }
            assert!(o.idle, "all transactions terminated: {why}");
        }
    }
    let rate = lost as f64 / sent as f64;
    assert!(
        (0.27..0.33).contains(&rate),
        "the network lost {rate:.3} of {sent}"
    );
}

#[test]
fn lossy_network_completes_invite_flow_with_late_answer() {
    for seed in 0..100 {
        let o = run_flow(
            seed,
            LOSSY,
            Reliability::Unreliable,
            "INVITE",
            603,
            ms(5_000),
            false,
        );
        let why = format!("seed {seed}: {:?} / {:?}", o.uac, o.uas);
        assert_eq!(o.uac.invite_finals, [603], "{why}");
        assert!(
            o.uac.timeouts.is_empty() && o.uas.timeouts.is_empty(),
            "{why}"
        );
        assert!(o.idle, "{why}");
    }
}

#[test]
fn lossy_network_completes_non_invite_flow() {
    for seed in 0..100 {
        let o = run_flow(
            seed,
            LOSSY,
            Reliability::Unreliable,
            "OPTIONS",
            200,
            ms(0),
            false,
        );
        let why = format!("seed {seed}: {:?} / {:?}", o.uac, o.uas);
        assert_eq!(o.uac.other_finals, [("OPTIONS".to_owned(), 200)], "{why}");
        assert!(o.uac.timeouts.is_empty(), "{why}");
        assert_eq!(o.uas.requests, ["OPTIONS"], "{why}");
        assert!(o.idle, "{why}");
    }
}

#[test]
fn lossy_network_completes_cancelled_invite() {
    // The UAC cancels on its first provisional response (§9.1); the UAS would answer only
    // after 60 s. A seed where no provisional response gets through before Timer B (32 s) is a
    // correct outcome too: the INVITE times out, nothing is cancelled, and the late 2xx is a
    // stray response the UAC acknowledges. It happens with probability about 0.51^7 ≈ 1%.
    let mut timed_out = 0;
    for seed in 0..100 {
        let o = run_flow(
            seed,
            LOSSY,
            Reliability::Unreliable,
            "INVITE",
            200,
            ms(60_000),
            true,
        );
        let why = format!("seed {seed}: {:?} / {:?}", o.uac, o.uas);
        if !o.uac.cancel_sent {
            assert!(o.uac.statuses.is_empty(), "{why}");
            assert_eq!(
                o.uac.timeouts,
                [vouch_proto::transaction::Timer::B],
                "{why}"
            );
            timed_out += 1;
        } else {
            assert_eq!(o.uac.other_finals, [("CANCEL".to_owned(), 200)], "{why}");
            assert_eq!(o.uac.invite_finals, [487], "{why}");
            assert_eq!(o.uas.cancelled_invites, 1, "{why}");
            assert!(o.uas.timeouts.is_empty(), "the ACK for 487 arrived: {why}");
        }
        assert!(o.idle, "{why}");
    }
    assert!(
        timed_out <= 3,
        "{timed_out} seeds never saw a provisional response"
    );
}

#[test]
fn duplicated_and_reordered_datagrams_create_one_server_transaction() {
    let net = NetConfig {
        loss: 0.0,
        duplicate: 1.0,
        min_delay: ms(1),
        max_delay: ms(900),
    };
    for seed in 0..50 {
        let o = run_flow(
            seed,
            net,
            Reliability::Unreliable,
            "INVITE",
            486,
            ms(0),
            false,
        );
        let why = format!("seed {seed}: {:?} / {:?}", o.uac, o.uas);
        assert_eq!(o.uas.requests, ["INVITE"], "{why}");
        assert_eq!(o.uac.invite_finals, [486], "final passed up once: {why}");
        assert!(o.idle, "{why}");
    }
}

#[test]
fn reliable_transport_does_not_retransmit() {
    // The UAS answers after 10 s: on UDP the INVITE would be retransmitted meanwhile until
    // the 100 arrives, and the 486 until the ACK; on a reliable transport each message goes
    // once: INVITE, 100, 180, 486, ACK.
    let o = run_flow(
        1,
        NetConfig::PERFECT,
        Reliability::Reliable,
        "INVITE",
        486,
        ms(10_000),
        false,
    );
    assert_eq!(o.sent, 5);
    assert_eq!(o.uac.invite_finals, [486]);
    assert!(o.idle);
    // OPTIONS: request and response only.
    let o = run_flow(
        1,
        NetConfig::PERFECT,
        Reliability::Reliable,
        "OPTIONS",
        200,
        ms(0),
        false,
    );
    assert_eq!(o.sent, 2);
}

#[test]
fn perfect_network_invite_flow_sends_no_retransmissions() {
    let o = run_flow(
        7,
        NetConfig::PERFECT,
        Reliability::Unreliable,
        "INVITE",
        200,
        ms(2_000),
        false,
    );
    // INVITE, 100, 180, 200, ACK (from the UA core).
    assert_eq!(o.sent, 5);
    assert_eq!(o.uac.acks_sent, 1);
    assert_eq!(o.uas.acks_for_2xx, 1);
    assert!(o.idle);
}

#[test]
fn unanswered_invite_times_out_with_timer_b() {
    let net = NetConfig {
        loss: 1.0,
        ..NetConfig::PERFECT
    };
    let o = run_flow(3, net, Reliability::Unreliable, "INVITE", 200, ms(0), false);
    assert_eq!(o.uac.timeouts, [vouch_proto::transaction::Timer::B]);
    assert_eq!(o.sent, 7, "INVITE at 0, .5, 1.5, 3.5, 7.5, 15.5, 31.5 s");
    assert!(o.idle);
}
