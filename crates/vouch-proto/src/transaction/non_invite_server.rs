//! The non-INVITE server transaction, RFC 3261 §17.2.2.
//!
//! ```text
//! Trying ──1xx from TU──► Proceeding ──200-699 from TU──► Completed ──Timer J──► Terminated
//!   └──200-699 from TU──────────────────────────────────────┘
//! ```
//!
//! Request retransmissions are absorbed in Trying, get the last provisional in Proceeding and
//! the final response in Completed. Timer J (64·T1 on UDP, zero on a reliable transport) keeps
//! the transaction around for them. The transaction never retransmits on its own.
//!
//! Completed keeps no parsed message: nothing reads the request once the final response is
//! sent, and a retransmitted request only needs the response's bytes. Under REGISTER load a
//! registrar holds 64·T1 worth of Completed transactions (32,000 at 1,000 REGISTER/s), so the
//! ~2.5 KB a parsed request and response cost each were most of its memory (see
//! `examples/txn_memory.rs`).

use super::require_non_invite;
use std::collections::VecDeque;
use std::time::Instant;

use bytes::Bytes;
use vouch_msg::Message;

use super::config::{Reliability, TransactionConfig, after};
use super::{MethodName, ServerEvent, pop_transmit, reparse};
use crate::Error;

/// The states of Figure 8 of RFC 3261.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonInviteServerState {
    /// The request arrived; the TU has not answered.
    Trying,
    /// A provisional response was sent.
    Proceeding,
    /// A final response was sent; absorbing request retransmissions.
    Completed,
    /// Done.
    Terminated,
}

impl NonInviteServerState {
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

/// An RFC 3261 §17.2.2 non-INVITE server transaction.
#[derive(Debug)]
pub struct NonInviteServerTransaction {
    state: NonInviteServerState,
    /// The request, until the final response is sent (boxed, so that dropping it returns its
    /// memory rather than leaving an empty slot in the transaction).
    request: Option<Box<Message>>,
    /// What the checks need once the request is gone: its method and top Via branch.
    method: MethodName,
    branch: Option<Box<str>>,
    /// The bytes of the most recent response sent, which a retransmitted request gets.
    last_response: Option<Bytes>,
    reliability: Reliability,
    config: TransactionConfig,
    timer_j: Option<Instant>,
    transmits: VecDeque<Bytes>,
    events: VecDeque<ServerEvent>,
}

impl NonInviteServerTransaction {
    /// Creates the transaction for a request that matched none (§17.2.3). INVITE and ACK are
    /// refused.
    pub fn new(
        _now: Instant,
        request: Message,
        reliability: Reliability,
        config: TransactionConfig,
    ) -> Result<Self, Error> {
        require_non_invite(&request, "non-INVITE server transaction")?;
        let method = MethodName::of(request.method().ok_or(Error::NotARequest)?);
        let branch = request.top_via_branch().map(Box::from);
        Ok(NonInviteServerTransaction {
            state: NonInviteServerState::Trying,
            request: Some(Box::new(request)),
            method,
            branch,
            last_response: None,
            reliability,
            config,
            timer_j: None,
            transmits: VecDeque::with_capacity(1),
            events: VecDeque::new(),
        })
    }

    /// The current state.
    pub fn state(&self) -> NonInviteServerState {
        self.state
    }

    /// True once Terminated.
    pub fn is_terminated(&self) -> bool {
        self.state == NonInviteServerState::Terminated
    }

    /// The request that created the transaction, while it can still be answered (Trying and
    /// Proceeding). `None` once a final response was sent: Completed does not keep it.
    pub fn request(&self) -> Option<&Message> {
        self.request.as_deref()
    }

    /// The bytes of the most recent response sent (what a retransmitted request gets).
    pub fn last_response(&self) -> Option<&Bytes> {
        self.last_response.as_ref()
    }

    /// The transport this transaction runs over.
    pub fn reliability(&self) -> Reliability {
        self.reliability
    }

    /// A retransmission of the request (matched per §17.2.3). Anything else is ignored.
    pub fn handle_request(&mut self, _now: Instant, request: Message) {
        if request.method() != Some(self.method.method()) {
            return;
        }
        match self.state {
            NonInviteServerState::Proceeding | NonInviteServerState::Completed => {
                if let Some(r) = self.last_response.clone() {
                    self.transmits.push_back(r);
                }
            }
            // Trying: absorbed (§17.2.2).
            NonInviteServerState::Trying | NonInviteServerState::Terminated => {}
        }
    }

    /// A response from the TU (§17.2.2). Once a final response is sent, further responses are
    /// refused and not sent.
    pub fn send_response(&mut self, now: Instant, response: Message) -> Result<(), Error> {
        let status = response.status().ok_or(Error::NotAResponse)?;
        let method = response.cseq().method;
        if method != self.method.method() {
            return Err(Error::MethodMismatch {
                expected: self.method.method().as_str().to_owned(),
                found: method.as_str().to_owned(),
            });
        }
        if response.top_via_branch() != self.branch.as_deref() {
            return Err(Error::BranchMismatch);
        }
        use NonInviteServerState::*;
        match (self.state, status) {
            (Trying | Proceeding, 100..=199) => self.state = Proceeding,
            (Trying | Proceeding, _) => match self.reliability {
                Reliability::Reliable => self.state = Terminated,
                Reliability::Unreliable => {
                    self.state = Completed;
                    self.timer_j = after(now, self.config.t1x64());
                }
            },
            (state, status) => {
                return Err(Error::ResponseNotAllowed {
                    status,
                    state: state.name(),
                });
            }
        }
        self.last_response = Some(response.as_bytes().clone());
        if status >= 200 {
            // Final: nothing reads the request any more.
            self.request = None;
        }
        self.transmits.push_back(response.as_bytes().clone());
        Ok(())
    }

    /// Fires Timer J if due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.timer_j.is_some_and(|at| at <= now) {
            self.terminate();
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

    /// When [`Self::handle_timeout`] must next be called (Timer J).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timer_j
    }

    fn terminate(&mut self) {
        self.state = NonInviteServerState::Terminated;
        self.timer_j = None;
        self.request = None;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::transaction::testutil::*;

    fn start(rel: Reliability) -> (Instant, NonInviteServerTransaction) {
        let t0 = t0();
        let tx = NonInviteServerTransaction::new(t0, request("REGISTER", "z9hG4bKr1"), rel, cfg())
            .unwrap();
        (t0, tx)
    }

    fn drain(tx: &mut NonInviteServerTransaction) -> Vec<u16> {
        std::iter::from_fn(|| tx.poll_transmit())
            .filter_map(|m| m.status())
            .collect()
    }

    #[test]
    fn server_absorbs_retransmitted_request_and_resends_last_response() {
        let (t0, mut tx) = start(Reliability::Unreliable);
        tx.handle_request(t0 + ms_(500), request("REGISTER", "z9hG4bKr1"));
        assert!(drain(&mut tx).is_empty(), "absorbed in Trying");
        tx.send_response(t0 + ms_(600), respond(tx.request().unwrap(), 100))
            .unwrap();
        tx.handle_request(t0 + ms_(1500), request("REGISTER", "z9hG4bKr1"));
        assert_eq!(drain(&mut tx), [100, 100]);
        tx.send_response(t0 + ms_(1600), respond(tx.request().unwrap(), 200))
            .unwrap();
        tx.handle_request(t0 + ms_(3500), request("REGISTER", "z9hG4bKr1"));
        assert_eq!(drain(&mut tx), [200, 200]);
        assert!(tx.poll_event().is_none());
    }

    #[test]
    fn timer_j_keeps_completed_for_64_t1() {
        let (t0, mut tx) = start(Reliability::Unreliable);
        tx.send_response(t0, respond(tx.request().unwrap(), 200))
            .unwrap();
        assert_eq!(tx.state(), NonInviteServerState::Completed);
        assert_eq!(tx.poll_timeout(), Some(t0 + ms_(32_000)));
        let late = respond(&request("REGISTER", "z9hG4bKr1"), 500);
        assert!(tx.send_response(t0, late).is_err());
        tx.handle_timeout(t0 + ms_(31_999));
        assert!(!tx.is_terminated());
        tx.handle_timeout(t0 + ms_(32_000));
        assert!(tx.is_terminated());
        assert_eq!(drain(&mut tx), [200]);
    }

    #[test]
    fn completed_keeps_only_the_final_response_bytes() {
        let (t0, mut tx) = start(Reliability::Unreliable);
        assert!(
            tx.request().is_some(),
            "Trying: the TU may still answer from it"
        );
        let ok = respond(tx.request().unwrap(), 200);
        tx.send_response(t0, ok.clone()).unwrap();
        assert_eq!(tx.state(), NonInviteServerState::Completed);
        assert!(
            tx.request().is_none(),
            "Completed must not hold the parsed request"
        );
        assert_eq!(tx.last_response(), Some(ok.as_bytes()));
        // No parsed message inline either: the struct is smaller than one `Message`.
        assert!(
            std::mem::size_of::<NonInviteServerTransaction>() < std::mem::size_of::<Message>(),
            "{} B",
            std::mem::size_of::<NonInviteServerTransaction>()
        );
        assert_eq!(tx.poll_transmit().unwrap().as_bytes(), ok.as_bytes());
        // A retransmitted request gets the same bytes again, and a parsed 200 for the TU.
        tx.handle_request(t0 + ms_(1000), request("REGISTER", "z9hG4bKr1"));
        let again = tx.poll_transmit().unwrap();
        assert_eq!(again.as_bytes(), ok.as_bytes());
        assert_eq!(again.status(), Some(200));
        assert!(tx.poll_transmit().is_none());
        // The checks that used the request still work without it.
        let other_branch = respond(&request("REGISTER", "z9hG4bKzz"), 500);
        assert!(matches!(
            tx.send_response(t0, other_branch),
            Err(Error::BranchMismatch)
        ));
        let other_method = respond(&request("OPTIONS", "z9hG4bKr1"), 500);
        assert!(matches!(
            tx.send_response(t0, other_method),
            Err(Error::MethodMismatch { .. })
        ));
        tx.handle_request(t0, request("OPTIONS", "z9hG4bKr1"));
        assert!(tx.poll_transmit().is_none(), "another method is ignored");
    }

    #[test]
    fn reliable_transport_terminates_at_once() {
        let (t0, mut tx) = start(Reliability::Reliable);
        tx.send_response(t0, respond(tx.request().unwrap(), 200))
            .unwrap();
        assert!(tx.is_terminated(), "Timer J is zero");
        assert_eq!(drain(&mut tx), [200], "the response is still sent");
    }

    #[test]
    fn refuses_invite_ack_and_mismatched_responses() {
        let t = t0();
        assert!(
            NonInviteServerTransaction::new(t, invite("z9hG4bKa"), Reliability::Reliable, cfg())
                .is_err()
        );
        assert!(
            NonInviteServerTransaction::new(
                t,
                request("ACK", "z9hG4bKa"),
                Reliability::Reliable,
                cfg()
            )
            .is_err()
        );
        let (t0, mut tx) = start(Reliability::Unreliable);
        assert!(
            tx.send_response(t0, respond(&invite("z9hG4bKr1"), 200))
                .is_err()
        );
        tx.handle_request(t0, request("BYE", "z9hG4bKr1"));
        tx.handle_request(t0, respond(tx.request().unwrap(), 200));
        assert!(drain(&mut tx).is_empty());
        assert_eq!(tx.state(), NonInviteServerState::Trying);
    }
}
