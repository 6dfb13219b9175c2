//! The non-INVITE client transaction, RFC 3261 §17.1.2.
//!
//! ```text
//! Trying ──1xx──► Proceeding ──200-699──► Completed ──Timer K──► Terminated
//!   ├──200-699──────────────────────────────┘
//!   └──Timer F / transport error (also from Proceeding)──► Terminated (TU informed)
//! ```
//!
//! On an unreliable transport Timer E retransmits the request, starting at T1 and doubling up
//! to T2 in Trying, every T2 in Proceeding. Timer F (64·T1) bounds the transaction. Timer K
//! (T4 on UDP, zero on a reliable transport) absorbs response retransmissions.

use super::require_non_invite;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use vouch_msg::Message;

use super::config::{
    MIN_INTERVAL, Reliability, Timer, TransactionConfig, after, earliest, expired,
};
use super::{ClientEvent, MethodName, pop_transmit, reparse};
use crate::Error;

/// The states of Figure 6 of RFC 3261.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonInviteClientState {
    /// The request was sent; no response yet.
    Trying,
    /// A provisional response came.
    Proceeding,
    /// A final response came; absorbing its retransmissions.
    Completed,
    /// Done.
    Terminated,
}

impl NonInviteClientState {
    /// The state name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Trying => "Trying",
            Self::Proceeding => "Proceeding",
            Self::Completed => "Completed",
            Self::Terminated => "Terminated",
        }
    }
}

/// An RFC 3261 §17.1.2 non-INVITE client transaction.
#[derive(Debug)]
pub struct NonInviteClientTransaction {
    state: NonInviteClientState,
    /// The request, retransmitted by Timer E until a final response comes; not kept in
    /// Completed (boxed, so dropping it frees its memory).
    request: Option<Box<Message>>,
    /// The request's method, which responses must carry.
    method: MethodName,
    reliability: Reliability,
    config: TransactionConfig,
    timer_e: Option<Instant>,
    interval_e: Duration,
    timer_f: Option<Instant>,
    timer_k: Option<Instant>,
    transmits: VecDeque<Bytes>,
    events: VecDeque<ClientEvent>,
}

impl NonInviteClientTransaction {
    /// Starts the transaction: the request is queued for transmission, Timer F is started
    /// and, on an unreliable transport, Timer E (§17.1.2.2). INVITE and ACK are refused.
    pub fn new(
        now: Instant,
        request: Message,
        reliability: Reliability,
        config: TransactionConfig,
    ) -> Result<Self, Error> {
        require_non_invite(&request, "non-INVITE client transaction")?;
        let timer_e = match reliability {
            Reliability::Unreliable => after(now, config.t1),
            Reliability::Reliable => None,
        };
        let method = MethodName::of(request.method().ok_or(Error::NotARequest)?);
        let mut transmits = VecDeque::with_capacity(1);
        transmits.push_back(request.as_bytes().clone());
        Ok(NonInviteClientTransaction {
            state: NonInviteClientState::Trying,
            request: Some(Box::new(request)),
            method,
            reliability,
            config,
            timer_e,
            interval_e: config.t1,
            timer_f: after(now, config.t1x64()),
            timer_k: None,
            transmits,
            events: VecDeque::new(),
        })
    }

    /// The current state.
    pub fn state(&self) -> NonInviteClientState {
        self.state
    }

    /// True once Terminated.
    pub fn is_terminated(&self) -> bool {
        self.state == NonInviteClientState::Terminated
    }

    /// The request this transaction sends, until a final response comes. `None` afterwards:
    /// Completed does not keep it.
    pub fn request(&self) -> Option<&Message> {
        self.request.as_deref()
    }

    /// The transport this transaction runs over.
    pub fn reliability(&self) -> Reliability {
        self.reliability
    }

    /// A response from the transport that matched this transaction (§17.1.3). A request or a
    /// response whose CSeq method is not this request's is ignored.
    pub fn handle_response(&mut self, now: Instant, response: Message) {
        let Some(status) = response.status() else {
            return;
        };
        if response.cseq().method != self.method.method() {
            return;
        }
        use NonInviteClientState::*;
        match (self.state, status) {
            (Trying | Proceeding, 100..=199) => {
                self.state = Proceeding;
                self.events.push_back(ClientEvent::Response(response));
            }
            (Trying | Proceeding, _) => {
                self.timer_e = None;
                self.timer_f = None;
                self.request = None;
                self.events.push_back(ClientEvent::Response(response));
                match self.reliability {
                    Reliability::Reliable => self.terminate(),
                    Reliability::Unreliable => {
                        self.state = Completed;
                        self.timer_k = after(now, self.config.t4);
                    }
                }
            }
            // Completed absorbs retransmissions; Terminated ignores everything.
            _ => {}
        }
    }

    /// Fires the timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due = expired(
            [
                (Timer::E, self.timer_e),
                (Timer::F, self.timer_f),
                (Timer::K, self.timer_k),
            ],
            now,
        );
        for (timer, at) in due {
            match timer {
                Timer::E if self.timer_e == Some(at) => {
                    if let Some(r) = &self.request {
                        self.transmits.push_back(r.as_bytes().clone());
                    }
                    // §17.1.2.2: MIN(2·interval, T2) in Trying, T2 in Proceeding.
                    self.interval_e = match self.state {
                        NonInviteClientState::Proceeding => self.config.t2,
                        _ => self.interval_e.saturating_mul(2).min(self.config.t2),
                    }
                    .max(MIN_INTERVAL);
                    self.timer_e = after(now, self.interval_e);
                }
                Timer::F if self.timer_f == Some(at) => {
                    self.events.push_back(ClientEvent::Timeout(Timer::F));
                    self.terminate();
                }
                Timer::K if self.timer_k == Some(at) => self.terminate(),
                _ => {}
            }
        }
    }

    /// The transport failed to send the request (§17.1.4): inform the TU and stop.
    pub fn handle_transport_error(&mut self, _now: Instant) {
        if self.is_terminated() {
            return;
        }
        self.events.push_back(ClientEvent::TransportError);
        self.terminate();
    }

    /// The next message to hand to the transport.
    pub fn poll_transmit(&mut self) -> Option<Message> {
        self.poll_transmit_bytes().as_ref().and_then(reparse)
    }

    /// [`Self::poll_transmit`] as the bytes that go on the wire, parsing nothing.
    pub(crate) fn poll_transmit_bytes(&mut self) -> Option<Bytes> {
        pop_transmit(&mut self.transmits, self.request.is_none())
    }

    /// The next event for the TU.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// When [`Self::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        earliest([self.timer_e, self.timer_f, self.timer_k])
    }

    fn terminate(&mut self) {
        self.state = NonInviteClientState::Terminated;
        self.request = None;
        self.timer_e = None;
        self.timer_f = None;
        self.timer_k = None;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::transaction::testutil::*;

    fn start(rel: Reliability) -> (Instant, NonInviteClientTransaction) {
        let t0 = t0();
        let tx = NonInviteClientTransaction::new(t0, request("OPTIONS", "z9hG4bKn1"), rel, cfg())
            .unwrap();
        (t0, tx)
    }

    /// Runs the transaction alone until it has no timer; returns the send offsets in ms.
    fn run(t0: Instant, tx: &mut NonInviteClientTransaction) -> (Vec<u128>, Instant) {
        let mut sent = Vec::new();
        let mut now = t0;
        loop {
            while tx.poll_transmit().is_some() {
                sent.push((now - t0).as_millis());
            }
            let Some(at) = tx.poll_timeout() else { break };
            now = at;
            tx.handle_timeout(now);
        }
        (sent, now)
    }

    #[test]
    fn non_invite_client_times_out_after_64_t1() {
        let (t0, mut tx) = start(Reliability::Unreliable);
        let (sent, end) = run(t0, &mut tx);
        // T1 doubling, capped at T2 = 4 s.
        assert_eq!(
            sent,
            [
                0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500
            ]
        );
        assert_eq!(end - t0, ms_(32_000));
        assert!(matches!(
            tx.poll_event(),
            Some(ClientEvent::Timeout(Timer::F))
        ));
        assert!(tx.is_terminated());
    }

    #[test]
    fn proceeding_retransmits_every_t2() {
        let (t0, mut tx) = start(Reliability::Unreliable);
        let req = tx.request().unwrap().clone();
        tx.poll_transmit();
        tx.handle_response(t0 + ms_(100), respond(&req, 100));
        assert_eq!(tx.state(), NonInviteClientState::Proceeding);
        let (sent, _) = run(t0, &mut tx);
        // The E armed in Trying fires at 500; from then on every T2.
        assert_eq!(sent, [500, 4500, 8500, 12500, 16500, 20500, 24500, 28500]);
        assert!(matches!(tx.poll_event(), Some(ClientEvent::Response(_))));
        assert!(matches!(
            tx.poll_event(),
            Some(ClientEvent::Timeout(Timer::F))
        ));
    }

    #[test]
    fn timer_k_absorbs_response_retransmissions() {
        let (t0, mut tx) = start(Reliability::Unreliable);
        let req = tx.request().unwrap().clone();
        tx.poll_transmit();
        let ok = respond(&req, 200);
        tx.handle_response(t0 + ms_(50), ok.clone());
        assert!(matches!(tx.poll_event(), Some(ClientEvent::Response(_))));
        assert_eq!(tx.state(), NonInviteClientState::Completed);
        tx.handle_response(t0 + ms_(550), ok.clone());
        tx.handle_response(t0 + ms_(560), respond(&req, 180));
        assert!(tx.poll_event().is_none());
        assert!(
            tx.poll_transmit().is_none(),
            "nothing is resent in Completed"
        );
        assert_eq!(tx.poll_timeout(), Some(t0 + ms_(5_050)), "Timer K = T4");
        tx.handle_timeout(t0 + ms_(5_050));
        assert!(tx.is_terminated());
    }

    #[test]
    fn reliable_transport_does_not_retransmit() {
        let (t0, mut tx) = start(Reliability::Reliable);
        let (sent, end) = run(t0, &mut tx);
        assert_eq!(sent, [0]);
        assert_eq!(end - t0, ms_(32_000));
        let (t0, mut tx) = start(Reliability::Reliable);
        let req = tx.request().unwrap().clone();
        tx.poll_transmit();
        tx.handle_response(t0, respond(&req, 200));
        assert!(
            tx.is_terminated(),
            "Timer K is zero on a reliable transport"
        );
    }

    #[test]
    fn refuses_invite_and_ack_and_ignores_foreign_responses() {
        let t = t0();
        assert!(matches!(
            NonInviteClientTransaction::new(
                t,
                request("ACK", "z9hG4bKa"),
                Reliability::Reliable,
                cfg()
            ),
            Err(Error::AckIsNotATransaction)
        ));
        assert!(
            NonInviteClientTransaction::new(t, invite("z9hG4bKa"), Reliability::Reliable, cfg())
                .is_err()
        );
        let (t0, mut tx) = start(Reliability::Unreliable);
        tx.handle_response(t0, respond(&request("BYE", "z9hG4bKn1"), 200));
        tx.handle_response(t0, request("OPTIONS", "z9hG4bKn1"));
        assert!(tx.poll_event().is_none());
        assert_eq!(tx.state(), NonInviteClientState::Trying);
    }
}
