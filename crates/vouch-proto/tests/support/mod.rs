//! Test messages and test transaction users shared by the flow tests: a UAC and a UAS for the
//! transaction layer, and (in `phone`) a SIP phone for the proxy and registrar tests.

#![allow(dead_code)]

pub mod digest_ua;
pub mod phone;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use vouch_msg::{Message, MessageBuilder, Method};
use vouch_proto::transaction::{
    ClientTransactionKey, ServerTransactionKey, Timer, TransactionEvent, TransactionKey,
    response_for,
};

use crate::sim::{Addr, Ctx, Tu};

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A request from `sent_by` with the given branch (`None`: no branch parameter).
pub fn request_from(method: &str, branch: Option<&str>, sent_by: &str, cseq: u32) -> Message {
    let branch = branch.map(|b| format!(";branch={b}")).unwrap_or_default();
    let s = format!(
        "{method} sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP {sent_by}{branch}\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: {cseq} {method}\r\n\
Content-Length: 0\r\n\r\n"
    );
    Message::parse(s.into_bytes()).expect("test request parses")
}

pub fn request(method: &str, branch: &str) -> Message {
    request_from(method, Some(branch), "pc33.atlanta.example.com", 1)
}

pub fn respond(req: &Message, status: u16) -> Message {
    let tag = (status != 100).then_some("uas-tag");
    response_for(req, status, "Reason", tag).expect("test response builds")
}

/// The ACK for a 2xx, as the UA core sends it (§13.2.2.4): a new branch, To from the
/// response, sent straight to the transport.
pub fn ack_for_2xx(response: &Message) -> Message {
    let mut b = MessageBuilder::request(Method::Ack, "sip:bob@biloxi.example.com");
    let to = response
        .headers()
        .find(|h| h.name == vouch_msg::HeaderName::To)
        .map(|h| h.value.to_owned())
        .unwrap_or_default();
    b.push(
        "Via",
        &format!(
            "SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bKack{}",
            response.cseq().seq
        ),
    )
    .push("Max-Forwards", "70")
    .push("To", &to)
    .push(
        "From",
        "Alice <sip:alice@atlanta.example.com>;tag=1928301774",
    )
    .push("Call-ID", response.call_id())
    .push("CSeq", &format!("{} ACK", response.cseq().seq));
    b.build().expect("ACK builds")
}

/// What the UAC saw.
#[derive(Debug, Default)]
pub struct UacLog {
    pub statuses: Vec<u16>,
    /// Final responses to INVITE passed up (several 2xx in Accepted).
    pub invite_finals: Vec<u16>,
    pub other_finals: Vec<(String, u16)>,
    pub timeouts: Vec<Timer>,
    pub transport_errors: usize,
    pub acks_sent: usize,
    pub stray_responses: usize,
    pub terminated: usize,
    pub cancel_sent: bool,
}

/// A UAC: ACKs every 2xx (also stray ones), optionally CANCELs on the first provisional response.
#[derive(Debug, Default)]
pub struct Uac {
    pub log: Rc<RefCell<UacLog>>,
    pub peer: Addr,
    pub cancel_on_ringing: bool,
}

impl Tu for Uac {
    fn on_event(&mut self, ctx: &mut Ctx<'_>, event: TransactionEvent<Addr>) {
        let mut log = self.log.borrow_mut();
        match event {
            TransactionEvent::Response { key, response } => {
                let status = response.status().unwrap_or(0);
                log.statuses.push(status);
                if key.method() == Method::Invite {
                    if status >= 200 {
                        log.invite_finals.push(status);
                    }
                    if (200..300).contains(&status) {
                        ctx.wire.push((self.peer, ack_for_2xx(&response)));
                        log.acks_sent += 1;
                    }
                    if status < 200 && self.cancel_on_ringing && !log.cancel_sent {
                        ctx.layer
                            .cancel(ctx.now, &key)
                            .expect("CANCEL after a provisional");
                        log.cancel_sent = true;
                    }
                } else if status >= 200 {
                    log.other_finals
                        .push((key.method().as_str().to_owned(), status));
                }
            }
            TransactionEvent::StrayResponse { response, remote } => {
                log.stray_responses += 1;
                if response.cseq().method == Method::Invite
                    && response.status().is_some_and(|s| (200..300).contains(&s))
                {
                    ctx.wire.push((remote, ack_for_2xx(&response)));
                    log.acks_sent += 1;
                }
            }
            TransactionEvent::Timeout { timer, .. } => log.timeouts.push(timer),
            TransactionEvent::TransportError { .. } => log.transport_errors += 1,
            TransactionEvent::Terminated { .. } => log.terminated += 1,
            _ => {}
        }
    }
}

/// What the UAS saw.
#[derive(Debug, Default)]
pub struct UasLog {
    pub requests: Vec<String>,
    pub acks_for_2xx: usize,
    pub timeouts: Vec<Timer>,
    pub cancelled_invites: usize,
    pub gave_up_2xx: bool,
    pub terminated: usize,
}

struct Retransmit {
    key: ServerTransactionKey,
    response: Message,
    next: Instant,
    interval: Duration,
    give_up: Instant,
}

/// A UAS: answers INVITE with 180 then `final_status` after `answer_after`; non-INVITE with
/// 200; CANCEL with 200 and 487 for the INVITE. Retransmits its 2xx (T1 doubling to T2) until
/// the ACK comes, as the UA core must (§13.3.1.4).
pub struct Uas {
    pub log: Rc<RefCell<UasLog>>,
    pub final_status: u16,
    pub answer_after: Duration,
    pending: Option<(Instant, ServerTransactionKey, Message)>,
    retransmit: Option<Retransmit>,
}

impl Uas {
    pub fn new(final_status: u16, answer_after: Duration) -> Self {
        Uas {
            log: Rc::default(),
            final_status,
            answer_after,
            pending: None,
            retransmit: None,
        }
    }

    fn answer(&mut self, ctx: &mut Ctx<'_>, key: ServerTransactionKey, invite: &Message) {
        let resp = respond(invite, self.final_status);
        if ctx.layer.respond(ctx.now, &key, resp.clone()).is_ok()
            && (200..300).contains(&self.final_status)
        {
            let t1 = ctx.layer.config().t1;
            self.retransmit = Some(Retransmit {
                key,
                response: resp,
                next: ctx.now + t1,
                interval: t1,
                give_up: ctx.now + t1 * 64,
            });
        }
    }
}

impl Tu for Uas {
    fn on_event(&mut self, ctx: &mut Ctx<'_>, event: TransactionEvent<Addr>) {
        match event {
            TransactionEvent::Request {
                key,
                request,
                cancels,
                ..
            } => {
                let method = request.method().map(|m| m.as_str().to_owned());
                self.log
                    .borrow_mut()
                    .requests
                    .push(method.clone().unwrap_or_default());
                match request.method() {
                    Some(Method::Invite) => {
                        ctx.layer
                            .respond(ctx.now, &key, respond(&request, 180))
                            .expect("180");
                        if self.answer_after.is_zero() {
                            self.answer(ctx, key, &request);
                        } else {
                            self.pending = Some((ctx.now + self.answer_after, key, request));
                        }
                    }
                    Some(Method::Cancel) => {
                        ctx.layer
                            .respond(ctx.now, &key, respond(&request, 200))
                            .expect("200 for CANCEL");
                        if let Some(inv) = cancels {
                            let invite = ctx
                                .layer
                                .request(&TransactionKey::Server(inv.clone()))
                                .cloned();
                            if let Some(invite) = invite
                                && ctx
                                    .layer
                                    .respond(ctx.now, &inv, respond(&invite, 487))
                                    .is_ok()
                            {
                                self.log.borrow_mut().cancelled_invites += 1;
                                self.pending = None;
                            }
                        }
                    }
                    _ => {
                        ctx.layer
                            .respond(ctx.now, &key, respond(&request, 200))
                            .expect("200");
                    }
                }
            }
            TransactionEvent::StrayAck { .. } | TransactionEvent::Ack { .. } => {
                self.log.borrow_mut().acks_for_2xx += 1;
                self.retransmit = None;
            }
            TransactionEvent::Timeout { timer, .. } => self.log.borrow_mut().timeouts.push(timer),
            TransactionEvent::Terminated { .. } => self.log.borrow_mut().terminated += 1,
            _ => {}
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let a = self.pending.as_ref().map(|p| p.0);
        let b = self.retransmit.as_ref().map(|r| r.next);
        match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn on_timeout(&mut self, ctx: &mut Ctx<'_>) {
        if self.pending.as_ref().is_some_and(|p| p.0 <= ctx.now)
            && let Some((_, key, invite)) = self.pending.take()
        {
            self.answer(ctx, key, &invite);
        }
        if let Some(r) = &mut self.retransmit
            && r.next <= ctx.now
        {
            if ctx.now >= r.give_up {
                self.log.borrow_mut().gave_up_2xx = true;
                self.retransmit = None;
            } else {
                let _ = ctx.layer.respond(ctx.now, &r.key, r.response.clone());
                let t2 = ctx.layer.config().t2;
                r.interval = (r.interval * 2).min(t2);
                r.next = ctx.now + r.interval;
            }
        }
    }
}

pub fn client_key(m: &Message) -> ClientTransactionKey {
    ClientTransactionKey::for_request(m).expect("client key")
}
