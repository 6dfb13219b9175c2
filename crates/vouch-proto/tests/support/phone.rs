//! A test SIP phone (UAC and UAS) for proxy tests: it registers, calls, answers, CANCELs and
//! hangs up, keeping dialog state (route set from Record-Route, remote target from Contact,
//! RFC 3261 §12) so that ACK and BYE follow the proxy's Record-Route.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use vouch_msg::{HeaderName, Message, MessageBuilder, Method, Uri, split_commas};
use vouch_proto::transaction::{
    Reliability, ServerTransactionKey, Timer, TransactionEvent, TransactionKey, response_for,
};

use crate::sim::{Addr, Ctx, Tu, addr_of_host, host};

/// What a phone saw.
#[derive(Debug, Default)]
pub struct PhoneLog {
    /// Every response its client transactions passed up: (CSeq method, status).
    pub responses: Vec<(String, u16)>,
    /// The final responses, whole.
    pub finals: Vec<Message>,
    /// Responses no transaction wanted.
    pub strays: Vec<Message>,
    /// Every new request received (not ACK).
    pub requests: Vec<Message>,
    /// ACKs for 2xx received.
    pub acks: Vec<Message>,
    /// ACKs and BYEs it sent in a dialog.
    pub sent_in_dialog: Vec<Message>,
    pub timeouts: Vec<Timer>,
    pub cancel_sent: bool,
}

impl PhoneLog {
    pub fn statuses(&self, method: &str) -> Vec<u16> {
        self.responses
            .iter()
            .filter(|(m, _)| m == method)
            .map(|&(_, s)| s)
            .collect()
    }

    pub fn finals_for(&self, method: &str) -> Vec<u16> {
        self.finals
            .iter()
            .filter(|m| m.cseq().method.as_str() == method)
            .filter_map(|m| m.status())
            .collect()
    }

    pub fn received(&self, method: &str) -> usize {
        self.requests
            .iter()
            .filter(|m| m.method().is_some_and(|x| x.as_str() == method))
            .count()
    }
}

#[derive(Debug, Clone)]
struct Dialog {
    call_id: String,
    local: String,
    remote: String,
    route: Vec<String>,
    target: String,
    cseq: u32,
}

struct Retransmit {
    key: ServerTransactionKey,
    response: Message,
    next: Instant,
    interval: Duration,
    give_up: Instant,
}

/// A phone at node `me` whose user is `user@example.com`.
pub struct Phone {
    pub log: Rc<RefCell<PhoneLog>>,
    pub me: Addr,
    pub user: String,
    /// Final status for an incoming INVITE; 0 = ring for ever.
    pub final_status: u16,
    /// Delay before the final response.
    pub answer_after: Duration,
    /// CANCEL an outgoing INVITE on its first 180.
    pub cancel_on_ringing: bool,
    /// Send BYE this long after the call is answered (as caller).
    pub bye_after: Option<Duration>,
    reliability: Reliability,
    counter: u64,
    pending: Option<(Instant, ServerTransactionKey, Message)>,
    retransmit: Option<Retransmit>,
    dialog: Option<Dialog>,
    bye_at: Option<Instant>,
}

/// The first element of a URI-bearing header value, without `<>` and parameters.
fn uri_of(value: &str) -> String {
    let v = value.trim();
    match (v.find('<'), v.find('>')) {
        (Some(a), Some(b)) if a < b => v[a + 1..b].to_owned(),
        _ => v.split(';').next().unwrap_or(v).to_owned(),
    }
}

/// The node a request with this route set and target goes to first.
fn next_hop(route: &[String], target: &str) -> Option<Addr> {
    let uri = route
        .first()
        .map(|r| uri_of(r))
        .unwrap_or(target.to_owned());
    match Uri::parse(&uri).ok()? {
        Uri::Sip(u) => addr_of_host(u.host_str()),
        _ => None,
    }
}

impl Phone {
    pub fn new(me: Addr, user: &str, reliability: Reliability) -> Self {
        Phone {
            log: Rc::default(),
            me,
            user: user.to_owned(),
            final_status: 200,
            answer_after: Duration::from_millis(200),
            cancel_on_ringing: false,
            bye_after: None,
            reliability,
            counter: 0,
            pending: None,
            retransmit: None,
            dialog: None,
            bye_at: None,
        }
    }

    fn transport(&self) -> &'static str {
        match self.reliability {
            Reliability::Unreliable => "UDP",
            Reliability::Reliable => "TCP",
        }
    }

    fn via(&mut self) -> String {
        self.counter += 1;
        format!(
            "SIP/2.0/{} {}:5060;branch=z9hG4bKph{}x{};rport",
            self.transport(),
            host(self.me),
            self.me,
            self.counter
        )
    }

    fn contact(&self) -> String {
        format!("<sip:{}@{}:5060>", self.user, host(self.me))
    }

    fn tag(&self) -> String {
        format!("tag{}", self.me)
    }

    fn in_dialog(&mut self, method: Method<'_>, d: &Dialog, cseq: u32) -> Message {
        let mut b = MessageBuilder::request(method, &d.target);
        let via = self.via();
        b.push("Via", &via);
        for r in &d.route {
            b.push("Route", r);
        }
        b.push("Max-Forwards", "70")
            .push("From", &d.local)
            .push("To", &d.remote)
            .push("Call-ID", &d.call_id)
            .push("CSeq", &format!("{cseq} {}", method.as_str()));
        b.build().expect("in-dialog request builds")
    }

    /// The ACK for a 2xx (§13.2.2.4), sent straight to the transport along the route set.
    fn ack_2xx(&mut self, ctx: &mut Ctx<'_>, response: &Message) {
        let mut route: Vec<String> = response
            .headers_named(HeaderName::RecordRoute)
            .flat_map(|h| split_commas(h.value).map(str::to_owned).collect::<Vec<_>>())
            .collect();
        route.reverse();
        let target = response
            .header(HeaderName::Contact)
            .map(|h| uri_of(h.value))
            .unwrap_or_default();
        let d = Dialog {
            call_id: response.call_id().to_owned(),
            local: response
                .header(HeaderName::From)
                .map(|h| h.value.to_owned())
                .unwrap_or_default(),
            remote: response
                .header(HeaderName::To)
                .map(|h| h.value.to_owned())
                .unwrap_or_default(),
            route,
            target,
            cseq: response.cseq().seq,
        };
        let ack = self.in_dialog(Method::Ack, &d, d.cseq);
        if let Some(to) = next_hop(&d.route, &d.target) {
            ctx.wire.push((to, ack.clone()));
            self.log.borrow_mut().sent_in_dialog.push(ack);
        }
        if self.dialog.is_none()
            && let Some(after) = self.bye_after
        {
            self.bye_at = Some(ctx.now + after);
        }
        self.dialog = Some(d);
    }

    fn respond_invite(
        &mut self,
        ctx: &mut Ctx<'_>,
        key: &ServerTransactionKey,
        inv: &Message,
        status: u16,
    ) {
        let tag = self.tag();
        let mut b = response_for(inv, status, "Reason", Some(&tag))
            .expect("response builds")
            .edit();
        if status < 300 {
            b.insert_before("Content-Length", "Contact", &self.contact());
            for rr in inv.headers_named(HeaderName::RecordRoute) {
                b.insert_before("Content-Length", "Record-Route", rr.value);
            }
        }
        let resp = b.build().expect("response builds");
        if ctx.layer.respond(ctx.now, key, resp.clone()).is_ok() && (200..300).contains(&status) {
            let t1 = ctx.layer.config().t1;
            self.retransmit = Some(Retransmit {
                key: key.clone(),
                response: resp,
                next: ctx.now + t1,
                interval: t1,
                give_up: ctx.now + t1 * 64,
            });
        }
    }
}

/// A REGISTER from node `me` for `user@example.com` to the registrar at node `registrar`.
pub fn register(me: Addr, user: &str, call_id: &str, cseq: u32, extra: &str) -> Message {
    let s = format!(
        "REGISTER sip:example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP {h}:5060;branch=z9hG4bKreg{me}x{call_id}x{cseq};rport\r\n\
Max-Forwards: 70\r\n\
From: <sip:{user}@example.com>;tag=r{me}\r\n\
To: <sip:{user}@example.com>\r\n\
Call-ID: {call_id}\r\n\
CSeq: {cseq} REGISTER\r\n\
{extra}Content-Length: 0\r\n\r\n",
        h = host(me)
    );
    Message::parse(s.into_bytes()).expect("REGISTER parses")
}

/// The usual Contact of a phone at node `me`.
pub fn contact_of(me: Addr, user: &str) -> String {
    format!("Contact: <sip:{user}@{}:5060>\r\n", host(me))
}

/// A request from node `me` (user `from`) to `ruri`, outside any dialog.
pub fn request(
    me: Addr,
    method: &str,
    ruri: &str,
    from: &str,
    call_id: &str,
    extra: &str,
) -> Message {
    let s = format!(
        "{method} {ruri} SIP/2.0\r\n\
Via: SIP/2.0/UDP {h}:5060;branch=z9hG4bKrq{me}x{call_id};rport\r\n\
Max-Forwards: 70\r\n\
From: <sip:{from}@example.com>;tag=t{me}\r\n\
To: <{ruri}>\r\n\
Call-ID: {call_id}\r\n\
CSeq: 1 {method}\r\n\
Contact: <sip:{from}@{h}:5060>\r\n\
{extra}Content-Length: 0\r\n\r\n",
        h = host(me)
    );
    Message::parse(s.into_bytes()).expect("request parses")
}

impl Tu for Phone {
    fn on_event(&mut self, ctx: &mut Ctx<'_>, event: TransactionEvent<Addr>) {
        match event {
            TransactionEvent::Response { key, response } => {
                let status = response.status().unwrap_or(0);
                let method = key.method().as_str().to_owned();
                {
                    let mut log = self.log.borrow_mut();
                    log.responses.push((method.clone(), status));
                    if status >= 200 {
                        log.finals.push(response.clone());
                    }
                }
                if key.method() == Method::Invite {
                    if (200..300).contains(&status) {
                        self.ack_2xx(ctx, &response);
                    }
                    if (101..200).contains(&status)
                        && self.cancel_on_ringing
                        && !self.log.borrow().cancel_sent
                        && ctx.layer.cancel(ctx.now, &key).is_ok()
                    {
                        self.log.borrow_mut().cancel_sent = true;
                    }
                }
            }
            TransactionEvent::StrayResponse { response, .. } => {
                let is_2xx_invite = response.cseq().method == Method::Invite
                    && response.status().is_some_and(|s| (200..300).contains(&s));
                self.log.borrow_mut().strays.push(response.clone());
                if is_2xx_invite {
                    self.ack_2xx(ctx, &response);
                }
            }
            TransactionEvent::Request {
                key,
                request,
                cancels,
                ..
            } => {
                self.log.borrow_mut().requests.push(request.clone());
                match request.method() {
                    Some(Method::Invite) => {
                        self.respond_invite(ctx, &key, &request, 180);
                        if self.final_status != 0 {
                            self.pending = Some((ctx.now + self.answer_after, key, request));
                        }
                    }
                    Some(Method::Cancel) => {
                        let ok = response_for(&request, 200, "OK", Some("c")).expect("200");
                        let _ = ctx.layer.respond(ctx.now, &key, ok);
                        if let Some(inv) = cancels {
                            let invite = ctx
                                .layer
                                .request(&TransactionKey::Server(inv.clone()))
                                .cloned();
                            if let Some(invite) = invite {
                                self.respond_invite(ctx, &inv, &invite, 487);
                                self.pending = None;
                            }
                        }
                    }
                    _ => {
                        let ok = response_for(&request, 200, "OK", Some(&self.tag())).expect("200");
                        let _ = ctx.layer.respond(ctx.now, &key, ok);
                    }
                }
            }
            TransactionEvent::StrayAck { ack, .. } | TransactionEvent::Ack { ack, .. } => {
                self.log.borrow_mut().acks.push(ack);
                self.retransmit = None;
            }
            TransactionEvent::Timeout { timer, .. } => self.log.borrow_mut().timeouts.push(timer),
            _ => {}
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        [
            self.pending.as_ref().map(|p| p.0),
            self.retransmit.as_ref().map(|r| r.next),
            self.bye_at,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn on_timeout(&mut self, ctx: &mut Ctx<'_>) {
        if self.pending.as_ref().is_some_and(|p| p.0 <= ctx.now)
            && let Some((_, key, invite)) = self.pending.take()
        {
            let status = self.final_status;
            self.respond_invite(ctx, &key, &invite, status);
        }
        if let Some(r) = &mut self.retransmit
            && r.next <= ctx.now
        {
            if ctx.now >= r.give_up {
                self.retransmit = None;
            } else {
                let _ = ctx.layer.respond(ctx.now, &r.key, r.response.clone());
                let t2 = ctx.layer.config().t2;
                r.interval = (r.interval * 2).min(t2);
                r.next = ctx.now + r.interval;
            }
        }
        if self.bye_at.is_some_and(|t| t <= ctx.now) {
            self.bye_at = None;
            if let Some(mut d) = self.dialog.clone() {
                d.cseq += 1;
                let bye = self.in_dialog(Method::Bye, &d, d.cseq);
                if let Some(to) = next_hop(&d.route, &d.target) {
                    self.log.borrow_mut().sent_in_dialog.push(bye.clone());
                    let _ = ctx.layer.send_request(ctx.now, bye, to, self.reliability);
                }
                self.dialog = Some(d);
            }
        }
    }
}
