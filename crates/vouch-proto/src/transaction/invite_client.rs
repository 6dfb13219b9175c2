//! The INVITE client transaction, RFC 3261 §17.1.1, with the "Accepted" state and Timer M of
//! RFC 6026 §7.2.
//!
//! ```text
//! Calling ──1xx──► Proceeding ──300-699 (send ACK)──► Completed ──Timer D──► Terminated
//!    │                 │                                   ▲
//!    │                 └──2xx──► Accepted ──Timer M──► Terminated
//!    ├──300-699 (send ACK)─────────────────────────────────┘
//!    ├──2xx──► Accepted
//!    └──Timer B / transport error──► Terminated (TU informed)
//! ```
//!
//! Timer A retransmits the INVITE in Calling on an unreliable transport, doubling each time
//! (no T2 cap for INVITE). The ACK for a non-2xx final response is generated here and resent
//! for every retransmission of that response while Timer D runs. 2xx responses — the first,
//! retransmissions and other forks — go to the TU while Timer M runs; the ACK for a 2xx is the
//! TU's (§13.2.2.4).

use super::require_invite;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use vouch_msg::{Message, Method};

use super::build::ack_for;
use super::config::{
    MIN_INTERVAL, Reliability, Timer, TransactionConfig, after, earliest, expired,
};
use super::{ClientEvent, pop_transmit, reparse};
use crate::Error;

/// The states of Figure 5 of RFC 3261, with RFC 6026's Accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InviteClientState {
    /// The INVITE was sent; waiting for any response.
    Calling,
    /// A provisional response came.
    Proceeding,
    /// A non-2xx final response came and was acknowledged; absorbing its retransmissions.
    Completed,
    /// A 2xx came (RFC 6026); passing further 2xx responses to the TU.
    Accepted,
    /// Done.
    Terminated,
}

impl InviteClientState {
    /// The state name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Calling => "Calling",
            Self::Proceeding => "Proceeding",
            Self::Completed => "Completed",
            Self::Accepted => "Accepted",
            Self::Terminated => "Terminated",
        }
    }
}

/// An RFC 3261 §17.1.1 INVITE client transaction.
#[derive(Debug)]
pub struct InviteClientTransaction {
    state: InviteClientState,
    /// The INVITE, retransmitted by Timer A until a response and read to build the ACK and a
    /// CANCEL; not kept after a final response (boxed, so dropping it frees its memory).
    request: Option<Box<Message>>,
    /// The bytes of the ACK for a non-2xx final response, resent for each retransmission of
    /// that response while Completed.
    ack: Option<Bytes>,
    reliability: Reliability,
    config: TransactionConfig,
    timer_a: Option<Instant>,
    interval_a: Duration,
    timer_b: Option<Instant>,
    timer_d: Option<Instant>,
    timer_m: Option<Instant>,
    transmits: VecDeque<Bytes>,
    events: VecDeque<ClientEvent>,
}

impl InviteClientTransaction {
    /// Starts the transaction: the INVITE is queued for transmission, Timer B is started and,
    /// on an unreliable transport, Timer A (§17.1.1.2).
    pub fn new(
        now: Instant,
        request: Message,
        reliability: Reliability,
        config: TransactionConfig,
    ) -> Result<Self, Error> {
        require_invite(&request, "INVITE client transaction")?;
        let timer_a = match reliability {
            Reliability::Unreliable => after(now, config.t1),
            Reliability::Reliable => None,
        };
        let mut transmits = VecDeque::with_capacity(2);
        transmits.push_back(request.as_bytes().clone());
        Ok(InviteClientTransaction {
            state: InviteClientState::Calling,
            request: Some(Box::new(request)),
            ack: None,
            reliability,
            config,
            timer_a,
            interval_a: config.t1,
            timer_b: after(now, config.t1x64()),
            timer_d: None,
            timer_m: None,
            transmits,
            events: VecDeque::new(),
        })
    }

    /// The current state.
    pub fn state(&self) -> InviteClientState {
        self.state
    }

    /// True once Terminated.
    pub fn is_terminated(&self) -> bool {
        self.state == InviteClientState::Terminated
    }

    /// The INVITE this transaction sends, until a final response comes (Calling and
    /// Proceeding, when it can still be cancelled). `None` afterwards: Completed and Accepted
    /// do not keep it.
    pub fn request(&self) -> Option<&Message> {
        self.request.as_deref()
    }

    /// The transport this transaction runs over.
    pub fn reliability(&self) -> Reliability {
        self.reliability
    }

    /// A response from the transport that matched this transaction (§17.1.3). Anything else —
    /// a request, a response for another method — is ignored.
    pub fn handle_response(&mut self, now: Instant, response: Message) {
        let Some(status) = response.status() else {
            return;
        };
        if response.cseq().method != Method::Invite {
            return;
        }
        use InviteClientState::*;
        match (self.state, status) {
            (Calling | Proceeding, 100..=199) => {
                self.stop_calling_timers();
                self.state = Proceeding;
                self.events.push_back(ClientEvent::Response(response));
            }
            (Calling | Proceeding, 200..=299) => {
                // RFC 6026 §7.2: to Accepted, not Terminated.
                self.stop_calling_timers();
                self.request = None;
                self.state = Accepted;
                self.timer_m = after(now, self.config.t1x64());
                self.events.push_back(ClientEvent::Response(response));
            }
            (Calling | Proceeding, _) => {
                self.stop_calling_timers();
                // A failure to build the ACK cannot be the peer's doing with a request we
                // built; the response still goes up.
                let ack = self
                    .request
                    .take()
                    .and_then(|invite| ack_for(&invite, &response).ok());
                if let Some(ack) = ack {
                    self.ack = Some(ack.as_bytes().clone());
                    self.transmits.push_back(ack.as_bytes().clone());
                }
                self.events.push_back(ClientEvent::Response(response));
                match self.reliability {
                    Reliability::Reliable => self.terminate(),
                    Reliability::Unreliable => {
                        self.state = Completed;
                        self.timer_d = after(now, self.config.timer_d);
                    }
                }
            }
            (Completed, 300..) => {
                // §17.1.1.2: retransmissions of the final response get the ACK again and are
                // not passed up.
                if let Some(ack) = &self.ack {
                    self.transmits.push_back(ack.clone());
                }
            }
            (Accepted, 200..=299) => self.events.push_back(ClientEvent::Response(response)),
            _ => {}
        }
    }

    /// Fires the timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due = expired(
            [
                (Timer::A, self.timer_a),
                (Timer::B, self.timer_b),
                (Timer::D, self.timer_d),
                (Timer::M, self.timer_m),
            ],
            now,
        );
        for (timer, at) in due {
            match timer {
                Timer::A if self.timer_a == Some(at) => {
                    // §17.1.1.2: retransmit, double the interval (no T2 cap for INVITE).
                    if let Some(r) = &self.request {
                        self.transmits.push_back(r.as_bytes().clone());
                    }
                    self.interval_a = self.interval_a.saturating_mul(2).max(MIN_INTERVAL);
                    self.timer_a = after(now, self.interval_a);
                }
                Timer::B if self.timer_b == Some(at) => {
                    self.events.push_back(ClientEvent::Timeout(Timer::B));
                    self.terminate();
                }
                Timer::D if self.timer_d == Some(at) => self.terminate(),
                Timer::M if self.timer_m == Some(at) => self.terminate(),
                _ => {}
            }
        }
    }

    /// The transport failed to send the INVITE or the ACK (§17.1.4): inform the TU and stop.
    pub fn handle_transport_error(&mut self, _now: Instant) {
        if self.state == InviteClientState::Terminated {
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
        earliest([self.timer_a, self.timer_b, self.timer_d, self.timer_m])
    }

    fn stop_calling_timers(&mut self) {
        self.timer_a = None;
        self.timer_b = None;
    }

    fn terminate(&mut self) {
        self.state = InviteClientState::Terminated;
        self.request = None;
        self.timer_a = None;
        self.timer_b = None;
        self.timer_d = None;
        self.timer_m = None;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::transaction::testutil::*;

    fn start(rel: Reliability) -> (Instant, InviteClientTransaction) {
        let t0 = t0();
        let tx = InviteClientTransaction::new(t0, invite("z9hG4bKc1"), rel, cfg()).unwrap();
        (t0, tx)
    }

    #[test]
    fn invite_client_retransmits_with_doubling_until_timer_b() {
        let (t0, mut tx) = start(Reliability::Unreliable);
        let mut sent = Vec::new();
        let mut now = t0;
        loop {
            while let Some(m) = tx.poll_transmit() {
                assert_eq!(m.method(), Some(Method::Invite));
                sent.push(now - t0);
            }
            let Some(at) = tx.poll_timeout() else { break };
            assert!(at >= now);
            now = at;
            tx.handle_timeout(now);
        }
        let ms: Vec<u128> = sent.iter().map(|d| d.as_millis()).collect();
        assert_eq!(ms, [0, 500, 1500, 3500, 7500, 15500, 31500]);
        assert_eq!(now - t0, ms_(32_000), "Timer B = 64*T1");
        assert!(matches!(
            tx.poll_event(),
            Some(ClientEvent::Timeout(Timer::B))
        ));
        assert!(tx.is_terminated());
    }

    #[test]
    fn provisional_stops_retransmissions_and_timer_b() {
        let (t0, mut tx) = start(Reliability::Unreliable);
        let req = tx.request().unwrap().clone();
        tx.poll_transmit();
        tx.handle_response(t0 + ms_(100), respond(&req, 180));
        assert_eq!(tx.state(), InviteClientState::Proceeding);
        assert!(
            matches!(tx.poll_event(), Some(ClientEvent::Response(r)) if r.status() == Some(180))
        );
        assert_eq!(tx.poll_timeout(), None, "no timer in Proceeding");
        tx.handle_timeout(t0 + ms_(100_000));
        assert!(tx.poll_transmit().is_none());
        assert!(tx.poll_event().is_none());
    }

    #[test]
    fn ack_for_non_2xx_generated_by_client_transaction() {
        let (t0, mut tx) = start(Reliability::Unreliable);
        let req = tx.request().unwrap().clone();
        tx.poll_transmit();
        let resp = respond(&req, 486);
        tx.handle_response(t0 + ms_(40), resp);
        let ack = tx.poll_transmit().expect("ACK sent");
        assert_eq!(ack.method(), Some(Method::Ack));
        assert_eq!(ack.top_via_branch(), Some("z9hG4bKc1"));
        assert_eq!(ack.cseq().seq, req.cseq().seq);
        assert_eq!(ack.to_tag(), Some("uas-tag"));
        assert!(
            matches!(tx.poll_event(), Some(ClientEvent::Response(r)) if r.status() == Some(486))
        );
        assert_eq!(tx.state(), InviteClientState::Completed);
    }

    #[test]
    fn timer_d_absorbs_response_retransmissions() {
        let (t0, mut tx) = start(Reliability::Unreliable);
        let req = tx.request().unwrap().clone();
        tx.poll_transmit();
        let resp = respond(&req, 603);
        tx.handle_response(t0, resp.clone());
        let first_ack = tx.poll_transmit().unwrap();
        tx.poll_event();
        for i in 1..=5 {
            tx.handle_response(t0 + ms_(i * 1000), resp.clone());
            let ack = tx.poll_transmit().expect("ACK resent");
            assert_eq!(ack.as_bytes(), first_ack.as_bytes());
            assert!(tx.poll_event().is_none(), "retransmission not passed up");
        }
        assert_eq!(tx.poll_timeout(), Some(t0 + ms_(32_000)), "Timer D = 32 s");
        tx.handle_timeout(t0 + ms_(31_999));
        assert_eq!(tx.state(), InviteClientState::Completed);
        tx.handle_timeout(t0 + ms_(32_000));
        assert!(tx.is_terminated());
        assert!(tx.poll_event().is_none(), "Timer D is silent");
    }

    #[test]
    fn two_hundred_enters_accepted_and_passes_retransmissions_until_timer_m() {
        let (t0, mut tx) = start(Reliability::Unreliable);
        let req = tx.request().unwrap().clone();
        tx.poll_transmit();
        tx.handle_response(t0 + ms_(10), respond(&req, 200));
        assert_eq!(tx.state(), InviteClientState::Accepted);
        assert!(
            tx.poll_transmit().is_none(),
            "no ACK for a 2xx from the transaction"
        );
        assert!(matches!(tx.poll_event(), Some(ClientEvent::Response(_))));
        // A retransmission and a 2xx from another fork both go up.
        tx.handle_response(t0 + ms_(510), respond(&req, 200));
        let mut fork = respond(&req, 200).edit();
        fork.replace("To", "<sip:bob@biloxi.example.com>;tag=fork2");
        tx.handle_response(t0 + ms_(600), fork.build().unwrap());
        assert_eq!(std::iter::from_fn(|| tx.poll_event()).count(), 2);
        // Non-2xx in Accepted is ignored.
        tx.handle_response(t0 + ms_(700), respond(&req, 500));
        assert!(tx.poll_event().is_none());
        assert_eq!(
            tx.poll_timeout(),
            Some(t0 + ms_(10 + 32_000)),
            "Timer M = 64*T1"
        );
        tx.handle_timeout(t0 + ms_(10 + 32_000));
        assert!(tx.is_terminated());
    }

    #[test]
    fn reliable_transport_does_not_retransmit() {
        let (t0, mut tx) = start(Reliability::Reliable);
        assert!(tx.poll_transmit().is_some());
        assert_eq!(tx.poll_timeout(), Some(t0 + ms_(32_000)), "only Timer B");
        tx.handle_timeout(t0 + ms_(32_000));
        assert!(tx.poll_transmit().is_none());
        assert!(matches!(
            tx.poll_event(),
            Some(ClientEvent::Timeout(Timer::B))
        ));
    }

    #[test]
    fn reliable_transport_terminates_at_once_after_non_2xx() {
        let (t0, mut tx) = start(Reliability::Reliable);
        let req = tx.request().unwrap().clone();
        tx.poll_transmit();
        tx.handle_response(t0, respond(&req, 404));
        assert!(tx.poll_transmit().is_some(), "ACK still sent");
        assert!(tx.is_terminated(), "Timer D is zero");
    }

    #[test]
    fn configured_t1_scales_timers() {
        let t0 = t0();
        let config = TransactionConfig {
            t1: ms_(100),
            ..cfg()
        };
        let mut tx =
            InviteClientTransaction::new(t0, invite("z9hG4bKc1"), Reliability::Unreliable, config)
                .unwrap();
        tx.poll_transmit();
        assert_eq!(tx.poll_timeout(), Some(t0 + ms_(100)));
        tx.handle_timeout(t0 + ms_(100));
        assert_eq!(tx.poll_timeout(), Some(t0 + ms_(300)));
        tx.handle_timeout(t0 + ms_(6_400));
        assert!(tx.is_terminated(), "Timer B = 64*100 ms");
    }

    #[test]
    fn ignores_requests_wrong_methods_and_late_timeouts() {
        let (t0, mut tx) = start(Reliability::Unreliable);
        tx.poll_transmit();
        tx.handle_response(t0, invite("z9hG4bKc1"));
        tx.handle_response(t0, respond(&request("OPTIONS", "z9hG4bKc1"), 200));
        assert!(tx.poll_event().is_none());
        assert_eq!(tx.state(), InviteClientState::Calling);
        // A very late timeout call fires each due timer once and terminates cleanly.
        tx.handle_timeout(t0 + ms_(1_000_000));
        assert!(tx.is_terminated());
        assert!(
            InviteClientTransaction::new(
                t0,
                request("BYE", "z9hG4bKx"),
                Reliability::Reliable,
                cfg()
            )
            .is_err()
        );
    }

    #[test]
    fn transport_error_is_reported_once() {
        let (t0, mut tx) = start(Reliability::Unreliable);
        tx.handle_transport_error(t0);
        tx.handle_transport_error(t0);
        assert!(matches!(tx.poll_event(), Some(ClientEvent::TransportError)));
        assert!(tx.poll_event().is_none());
        assert!(tx.is_terminated());
    }
}
