//! The INVITE server transaction, RFC 3261 §17.2.1, with the "Accepted" state and Timer L of
//! RFC 6026 §7.1.
//!
//! ```text
//! Proceeding ──300-699 from TU──► Completed ──ACK──► Confirmed ──Timer I──► Terminated
//!     │                              └──Timer H (TU informed)──────────────────┘
//!     └──2xx from TU──► Accepted ──Timer L──► Terminated
//! ```
//!
//! The transaction sends 100 Trying on its own per [`TryingPolicy`] (§17.2.1: unless the TU
//! answers within 200 ms). INVITE retransmissions get the last response again in Proceeding and
//! Completed; they are absorbed in Confirmed and Accepted. Timer G retransmits a non-2xx final
//! response on an unreliable transport (T1 doubling up to T2) until the ACK arrives or Timer H
//! (64·T1) gives up. In Accepted the transaction never retransmits the 2xx itself: the TU does
//! (§13.3.1.4) by passing it again, and an ACK that matches is passed up (RFC 6026 §7.1).
//!
//! After the final response the transaction keeps no parsed message: the INVITE is dropped
//! (its branch is kept for checking the TU's 2xx retransmissions) and the last response is
//! kept as bytes, parsed again for each retransmission (Timer G, a retransmitted INVITE).

use super::require_invite;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use vouch_msg::{Message, Method};

use super::build::trying;
use super::config::{
    MIN_INTERVAL, Reliability, Timer, TransactionConfig, TryingPolicy, after, earliest, expired,
};
use super::{ServerEvent, pop_transmit, reparse};
use crate::Error;

/// The states of Figure 7 of RFC 3261, with RFC 6026's Accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InviteServerState {
    /// The INVITE arrived; provisional responses may have been sent.
    Proceeding,
    /// A non-2xx final response was sent; waiting for the ACK.
    Completed,
    /// The ACK arrived; absorbing its retransmissions.
    Confirmed,
    /// A 2xx was sent (RFC 6026); absorbing INVITE retransmissions.
    Accepted,
    /// Done.
    Terminated,
}

impl InviteServerState {
    /// The state name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Proceeding => "Proceeding",
            Self::Completed => "Completed",
            Self::Confirmed => "Confirmed",
            Self::Accepted => "Accepted",
            Self::Terminated => "Terminated",
        }
    }
}

/// An RFC 3261 §17.2.1 INVITE server transaction.
#[derive(Debug)]
pub struct InviteServerTransaction {
    state: InviteServerState,
    /// The INVITE, until the final response is sent (boxed, so dropping it frees its memory).
    request: Option<Box<Message>>,
    /// The INVITE's top Via branch, which every response must carry.
    branch: Option<Box<str>>,
    /// The bytes of the most recent response sent, and its To tag (for RFC 2543 ACK matching).
    last_response: Option<Bytes>,
    last_to_tag: Option<Box<str>>,
    reliability: Reliability,
    config: TransactionConfig,
    timer_trying: Option<Instant>,
    timer_g: Option<Instant>,
    interval_g: Duration,
    timer_h: Option<Instant>,
    timer_i: Option<Instant>,
    timer_l: Option<Instant>,
    transmits: VecDeque<Bytes>,
    events: VecDeque<ServerEvent>,
}

impl InviteServerTransaction {
    /// Creates the transaction for an INVITE that matched none (§17.2.3). It starts in
    /// Proceeding; per the configured [`TryingPolicy`] a 100 Trying is queued now or later.
    pub fn new(
        now: Instant,
        request: Message,
        reliability: Reliability,
        config: TransactionConfig,
    ) -> Result<Self, Error> {
        require_invite(&request, "INVITE server transaction")?;
        let branch = request.top_via_branch().map(Box::from);
        let mut tx = InviteServerTransaction {
            state: InviteServerState::Proceeding,
            request: Some(Box::new(request)),
            branch,
            last_response: None,
            last_to_tag: None,
            reliability,
            config,
            timer_trying: None,
            timer_g: None,
            interval_g: config.t1,
            timer_h: None,
            timer_i: None,
            timer_l: None,
            transmits: VecDeque::with_capacity(2),
            events: VecDeque::new(),
        };
        match config.trying {
            TryingPolicy::Immediate => tx.send_trying(),
            TryingPolicy::AfterDelay(d) => tx.timer_trying = after(now, d),
            TryingPolicy::Never => {}
        }
        Ok(tx)
    }

    /// The current state.
    pub fn state(&self) -> InviteServerState {
        self.state
    }

    /// True once Terminated.
    pub fn is_terminated(&self) -> bool {
        self.state == InviteServerState::Terminated
    }

    /// The INVITE that created the transaction, while it can still be answered (Proceeding).
    /// `None` once a final response was sent: later states do not keep it.
    pub fn request(&self) -> Option<&Message> {
        self.request.as_deref()
    }

    /// The bytes of the most recent response sent.
    pub fn last_response(&self) -> Option<&Bytes> {
        self.last_response.as_ref()
    }

    /// The To tag of the most recent response sent.
    pub fn last_response_to_tag(&self) -> Option<&str> {
        self.last_to_tag.as_deref()
    }

    /// The transport this transaction runs over.
    pub fn reliability(&self) -> Reliability {
        self.reliability
    }

    /// A request from the transport that matched this transaction (§17.2.3): a retransmitted
    /// INVITE or an ACK. Anything else is ignored.
    pub fn handle_request(&mut self, now: Instant, request: Message) {
        use InviteServerState::*;
        match (request.method(), self.state) {
            (Some(Method::Invite), Proceeding | Completed) => {
                // §17.2.1: resend the most recent provisional (Proceeding) or the final
                // response (Completed).
                if let Some(r) = self.last_response.clone() {
                    self.transmits.push_back(r);
                }
            }
            (Some(Method::Ack), Completed) => {
                self.timer_g = None;
                self.timer_h = None;
                match self.reliability {
                    Reliability::Reliable => self.terminate(),
                    Reliability::Unreliable => {
                        self.state = Confirmed;
                        self.timer_i = after(now, self.config.t4);
                    }
                }
            }
            (Some(Method::Ack), Accepted) => self.events.push_back(ServerEvent::Ack(request)),
            // INVITE in Confirmed/Accepted and ACK in Confirmed are absorbed; an ACK in
            // Proceeding acknowledges nothing.
            _ => {}
        }
    }

    /// A response from the TU (§17.2.1). Provisional responses are sent in Proceeding; a 2xx
    /// moves to Accepted (and further 2xx are sent there); 300-699 moves to Completed. A
    /// response the state does not allow is refused and not sent.
    pub fn send_response(&mut self, now: Instant, response: Message) -> Result<(), Error> {
        let status = response.status().ok_or(Error::NotAResponse)?;
        let method = response.cseq().method;
        if method != Method::Invite {
            return Err(Error::MethodMismatch {
                expected: "INVITE".to_owned(),
                found: method.as_str().to_owned(),
            });
        }
        if response.top_via_branch() != self.branch.as_deref() {
            return Err(Error::BranchMismatch);
        }
        use InviteServerState::*;
        match (self.state, status) {
            (Proceeding, 100..=199) => {}
            (Proceeding, 200..=299) => {
                self.state = Accepted;
                self.timer_l = after(now, self.config.t1x64());
            }
            (Proceeding, _) => {
                self.state = Completed;
                if self.reliability == Reliability::Unreliable {
                    self.timer_g = after(now, self.config.t1);
                }
                self.timer_h = after(now, self.config.t1x64());
            }
            // RFC 6026 §7.1: 2xx retransmissions from the TU are sent in Accepted.
            (Accepted, 200..=299) => {}
            (state, status) => {
                return Err(Error::ResponseNotAllowed {
                    status,
                    state: state.name(),
                });
            }
        }
        self.timer_trying = None;
        self.remember(&response);
        if status >= 200 {
            // Final: nothing reads the INVITE any more.
            self.request = None;
        }
        self.transmits.push_back(response.as_bytes().clone());
        Ok(())
    }

    /// Fires the timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due = expired(
            [
                (Timer::Trying, self.timer_trying),
                (Timer::G, self.timer_g),
                (Timer::H, self.timer_h),
                (Timer::I, self.timer_i),
                (Timer::L, self.timer_l),
            ],
            now,
        );
        for (timer, at) in due {
            match timer {
                Timer::Trying if self.timer_trying == Some(at) => {
                    self.timer_trying = None;
                    if self.state == InviteServerState::Proceeding && self.last_response.is_none() {
                        self.send_trying();
                    }
                }
                Timer::G if self.timer_g == Some(at) => {
                    if let Some(r) = self.last_response.clone() {
                        self.transmits.push_back(r);
                    }
                    self.interval_g = self
                        .interval_g
                        .saturating_mul(2)
                        .min(self.config.t2)
                        .max(MIN_INTERVAL);
                    self.timer_g = after(now, self.interval_g);
                }
                Timer::H if self.timer_h == Some(at) => {
                    self.events.push_back(ServerEvent::Timeout(Timer::H));
                    self.terminate();
                }
                Timer::I if self.timer_i == Some(at) => self.terminate(),
                Timer::L if self.timer_l == Some(at) => self.terminate(),
                _ => {}
            }
        }
    }

    /// The transport failed to send a response (§17.2.4): inform the TU and stop.
    pub fn handle_transport_error(&mut self, _now: Instant) {
        if self.is_terminated() {
            return;
        }
        self.events.push_back(ServerEvent::TransportError);
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
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    /// When [`Self::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        earliest([
            self.timer_trying,
            self.timer_g,
            self.timer_h,
            self.timer_i,
            self.timer_l,
        ])
    }

    fn send_trying(&mut self) {
        // Built from a request that parsed; a failure leaves the TU to answer.
        if let Some(t) = self.request.as_deref().and_then(|r| trying(r).ok()) {
            self.remember(&t);
            self.transmits.push_back(t.as_bytes().clone());
        }
    }

    fn remember(&mut self, response: &Message) {
        self.last_response = Some(response.as_bytes().clone());
        self.last_to_tag = response.to_tag().map(Box::from);
    }

    fn terminate(&mut self) {
        self.state = InviteServerState::Terminated;
        self.request = None;
        self.timer_trying = None;
        self.timer_g = None;
        self.timer_h = None;
        self.timer_i = None;
        self.timer_l = None;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::transaction::testutil::*;

    fn start_with(
        rel: Reliability,
        config: TransactionConfig,
    ) -> (Instant, InviteServerTransaction) {
        let t0 = t0();
        let tx = InviteServerTransaction::new(t0, invite("z9hG4bKs1"), rel, config).unwrap();
        (t0, tx)
    }

    fn start(rel: Reliability) -> (Instant, InviteServerTransaction) {
        start_with(rel, cfg())
    }

    fn drain(tx: &mut InviteServerTransaction) -> Vec<u16> {
        std::iter::from_fn(|| tx.poll_transmit())
            .filter_map(|m| m.status())
            .collect()
    }

    #[test]
    fn sends_100_trying_immediately_by_default() {
        let (_, mut tx) = start(Reliability::Unreliable);
        assert_eq!(drain(&mut tx), [100]);
        assert_eq!(tx.poll_timeout(), None);
    }

    #[test]
    fn delayed_trying_is_skipped_when_tu_answers_within_200_ms() {
        let config = TransactionConfig {
            trying: TryingPolicy::AfterDelay(ms_(200)),
            ..cfg()
        };
        let (t0, mut tx) = start_with(Reliability::Unreliable, config);
        let req = tx.request().unwrap().clone();
        assert!(drain(&mut tx).is_empty());
        let ringing = respond(&req, 180);
        tx.send_response(t0 + ms_(150), ringing).unwrap();
        tx.handle_timeout(t0 + ms_(200));
        assert_eq!(drain(&mut tx), [180]);

        let (t0, mut tx) = start_with(Reliability::Unreliable, config);
        assert_eq!(tx.poll_timeout(), Some(t0 + ms_(200)));
        tx.handle_timeout(t0 + ms_(200));
        assert_eq!(drain(&mut tx), [100]);
    }

    #[test]
    fn trying_unless_answered_at_once_is_skipped_for_an_immediate_answer() {
        let config = TransactionConfig {
            trying: TryingPolicy::AfterDelay(Duration::ZERO),
            ..cfg()
        };
        let (t0, mut tx) = start_with(Reliability::Unreliable, config);
        let req = tx.request().unwrap().clone();
        assert!(drain(&mut tx).is_empty());
        tx.send_response(t0, respond(&req, 407)).unwrap();
        tx.handle_timeout(t0);
        assert_eq!(
            drain(&mut tx),
            [407],
            "no 100 before a final answered at once"
        );

        let (t0, mut tx) = start_with(Reliability::Unreliable, config);
        assert_eq!(tx.poll_timeout(), Some(t0), "due on the next timer run");
        tx.handle_timeout(t0);
        assert_eq!(drain(&mut tx), [100]);
        assert_eq!(tx.poll_timeout(), None);
    }

    #[test]
    fn server_absorbs_retransmitted_request_and_resends_last_response() {
        let (t0, mut tx) = start(Reliability::Unreliable);
        let req = tx.request().unwrap().clone();
        assert_eq!(drain(&mut tx), [100]);
        tx.handle_request(t0 + ms_(500), invite("z9hG4bKs1"));
        assert_eq!(drain(&mut tx), [100]);
        tx.send_response(t0 + ms_(600), respond(&req, 180)).unwrap();
        assert_eq!(drain(&mut tx), [180]);
        tx.handle_request(t0 + ms_(1500), invite("z9hG4bKs1"));
        assert_eq!(drain(&mut tx), [180], "the most recent provisional");
        assert!(
            tx.poll_event().is_none(),
            "retransmissions are not passed up"
        );
    }

    #[test]
    fn non_2xx_final_retransmits_with_timer_g_capped_at_t2_until_timer_h() {
        let (t0, mut tx) = start(Reliability::Unreliable);
        let req = tx.request().unwrap().clone();
        drain(&mut tx);
        tx.send_response(t0, respond(&req, 486)).unwrap();
        assert_eq!(tx.state(), InviteServerState::Completed);
        let mut sent = Vec::new();
        let mut now = t0;
        loop {
            for s in drain(&mut tx) {
                assert_eq!(s, 486);
                sent.push((now - t0).as_millis());
            }
            let Some(at) = tx.poll_timeout() else { break };
            now = at;
            tx.handle_timeout(now);
        }
        assert_eq!(
            sent,
            [
                0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500
            ]
        );
        assert_eq!(now - t0, ms_(32_000), "Timer H = 64*T1");
        assert!(matches!(
            tx.poll_event(),
            Some(ServerEvent::Timeout(Timer::H))
        ));
        assert!(tx.is_terminated());
    }

    #[test]
    fn ack_confirms_and_timer_i_absorbs_ack_retransmissions() {
        let (t0, mut tx) = start(Reliability::Unreliable);
        let req = tx.request().unwrap().clone();
        drain(&mut tx);
        tx.send_response(t0, respond(&req, 404)).unwrap();
        drain(&mut tx);
        tx.handle_request(t0 + ms_(700), invite("z9hG4bKs1"));
        assert_eq!(
            drain(&mut tx),
            [404],
            "INVITE retransmission gets the final again"
        );
        tx.handle_request(t0 + ms_(800), request("ACK", "z9hG4bKs1"));
        assert_eq!(tx.state(), InviteServerState::Confirmed);
        assert_eq!(tx.poll_timeout(), Some(t0 + ms_(5_800)), "Timer I = T4");
        tx.handle_request(t0 + ms_(900), request("ACK", "z9hG4bKs1"));
        tx.handle_request(t0 + ms_(1000), invite("z9hG4bKs1"));
        assert!(drain(&mut tx).is_empty());
        assert!(tx.poll_event().is_none());
        tx.handle_timeout(t0 + ms_(5_800));
        assert!(tx.is_terminated());
        assert!(tx.poll_event().is_none(), "Timer I is silent");
    }

    #[test]
    fn accepted_absorbs_invites_sends_tu_2xx_and_passes_ack_up_until_timer_l() {
        let (t0, mut tx) = start(Reliability::Unreliable);
        let req = tx.request().unwrap().clone();
        drain(&mut tx);
        let ok = respond(&req, 200);
        tx.send_response(t0 + ms_(100), ok.clone()).unwrap();
        assert_eq!(tx.state(), InviteServerState::Accepted);
        assert_eq!(drain(&mut tx), [200]);
        assert_eq!(
            tx.poll_timeout(),
            Some(t0 + ms_(32_100)),
            "Timer L = 64*T1, no G"
        );
        tx.handle_request(t0 + ms_(600), invite("z9hG4bKs1"));
        assert!(
            drain(&mut tx).is_empty(),
            "no 2xx retransmission by the transaction"
        );
        tx.send_response(t0 + ms_(600), ok).unwrap();
        assert_eq!(drain(&mut tx), [200], "TU retransmission is sent");
        assert!(matches!(
            tx.send_response(t0 + ms_(700), respond(&req, 500)),
            Err(Error::ResponseNotAllowed { status: 500, .. })
        ));
        tx.handle_request(t0 + ms_(800), request("ACK", "z9hG4bKs1"));
        assert!(matches!(tx.poll_event(), Some(ServerEvent::Ack(_))));
        tx.handle_timeout(t0 + ms_(32_100));
        assert!(tx.is_terminated());
    }

    #[test]
    fn reliable_transport_does_not_retransmit() {
        let (t0, mut tx) = start(Reliability::Reliable);
        let req = tx.request().unwrap().clone();
        drain(&mut tx);
        tx.send_response(t0, respond(&req, 486)).unwrap();
        drain(&mut tx);
        assert_eq!(
            tx.poll_timeout(),
            Some(t0 + ms_(32_000)),
            "only Timer H, no G"
        );
        tx.handle_request(t0 + ms_(10), request("ACK", "z9hG4bKs1"));
        assert!(tx.is_terminated(), "Timer I is zero");
        assert!(drain(&mut tx).is_empty());
    }

    #[test]
    fn refuses_second_final_and_foreign_responses() {
        let (t0, mut tx) = start(Reliability::Unreliable);
        let req = tx.request().unwrap().clone();
        drain(&mut tx);
        tx.send_response(t0, respond(&req, 486)).unwrap();
        assert!(tx.send_response(t0, respond(&req, 200)).is_err());
        assert!(tx.send_response(t0, respond(&req, 180)).is_err());
        assert!(matches!(
            tx.send_response(t0, respond(&request("BYE", "z9hG4bKs1"), 200)),
            Err(Error::MethodMismatch { .. })
        ));
        assert!(matches!(
            tx.send_response(t0, respond(&invite("z9hG4bKother"), 200)),
            Err(Error::BranchMismatch)
        ));
        assert!(matches!(
            tx.send_response(t0, invite("z9hG4bKs1")),
            Err(Error::NotAResponse)
        ));
        assert_eq!(drain(&mut tx), [486]);
    }

    #[test]
    fn transport_error_is_reported() {
        let (t0, mut tx) = start(Reliability::Unreliable);
        tx.handle_transport_error(t0);
        assert!(matches!(tx.poll_event(), Some(ServerEvent::TransportError)));
        assert!(tx.is_terminated());
    }
}
