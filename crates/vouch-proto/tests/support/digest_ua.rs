//! A user agent that authenticates with digest (RFC 3261 §22.2–§22.3) and insists on mutual
//! authentication (draft-dotson-sip-mutual-auth §4): it answers 401 and 407 with vouch-auth's
//! [`Responder`] (one for WWW-Authenticate, one for Proxy-Authenticate), retries, and checks
//! the rspauth of every Authentication-Info / Proxy-Authentication-Info of the 2xx.
//!
//! The test keeps a handle on its [`UaState`] to start requests and read what happened.

use std::cell::RefCell;
use std::rc::Rc;

use vouch_auth::digest::{Algorithm, Responder, ResponderConfig};
use vouch_msg::headers::auth::{AuthenticationInfo, Challenge};
use vouch_msg::{HeaderName, Message, MessageBuilder, Method, Uri, split_commas};
use vouch_proto::transaction::{Reliability, TransactionEvent};

use crate::sim::{Addr, Ctx, Tu, addr_of_host, host};

/// What to send.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub ruri: String,
    /// The From AoR, e.g. `sip:alice@example.com`.
    pub from: String,
    /// The To URI.
    pub to: String,
    pub routes: Vec<String>,
    pub body: Vec<u8>,
    pub call_id: String,
    pub cseq: u32,
    /// The digest-uri to use instead of the Request-URI (to test the uri check).
    pub digest_uri: Option<String>,
    /// Whether the request is for the registrar / the server itself (Authorization) rather
    /// than through a proxy (Proxy-Authorization).
    pub to_server: bool,
    /// Further header fields, e.g. a Date.
    pub extra: Vec<(String, String)>,
}

impl Call {
    pub fn new(method: &str, ruri: &str, from: &str, call_id: &str) -> Self {
        Call {
            method: method.to_owned(),
            ruri: ruri.to_owned(),
            from: from.to_owned(),
            to: ruri.to_owned(),
            routes: Vec::new(),
            body: Vec::new(),
            call_id: call_id.to_owned(),
            cseq: 1,
            digest_uri: None,
            to_server: method == "REGISTER",
            extra: Vec::new(),
        }
    }
}

/// The dialog of an answered INVITE, to send ACK and BYE along the route set.
#[derive(Debug, Clone)]
pub struct Dialog {
    pub call_id: String,
    pub local: String,
    pub remote: String,
    pub route: Vec<String>,
    pub target: String,
    pub cseq: u32,
}

/// The UA's state, shared between the test and the transaction user.
pub struct UaState {
    pub me: Addr,
    pub next_hop: Addr,
    pub www: Responder,
    pub proxy: Responder,
    /// Answer challenges automatically.
    pub auto_retry: bool,
    /// At most this many retries per request.
    pub max_retries: u32,
    /// Offer only auth-int to the Responders (they prefer auth when both are offered).
    pub prefer_auth_int: bool,
    /// Every request sent, in order.
    pub sent: Vec<Message>,
    /// Every final response.
    pub finals: Vec<Message>,
    /// Per checked 2xx: the realms whose rspauth verified.
    pub proven: Vec<Vec<String>>,
    /// Errors from the Responders (refused, bad or missing rspauth, …).
    pub errors: Vec<String>,
    pub dialog: Option<Dialog>,
    /// Responses no transaction wanted (answers to injected requests).
    pub strays: Vec<Message>,
    current: Option<Call>,
    retries: u32,
    counter: u64,
    checked_cseq: Option<(String, String, u32)>,
}

fn uri_of(value: &str) -> String {
    let v = value.trim();
    match (v.find('<'), v.find('>')) {
        (Some(a), Some(b)) if a < b => v[a + 1..b].to_owned(),
        _ => v.split(';').next().unwrap_or(v).to_owned(),
    }
}

fn hop_of(route: &[String], target: &str) -> Option<Addr> {
    let uri = route
        .first()
        .map(|r| uri_of(r))
        .unwrap_or(target.to_owned());
    match Uri::parse(&uri).ok()? {
        Uri::Sip(u) => addr_of_host(u.host_str()),
        _ => None,
    }
}

impl UaState {
    pub fn new(me: Addr, next_hop: Addr, username: &str, password: &str) -> Self {
        let responder = || {
            Responder::new(ResponderConfig {
                username: username.to_owned(),
                password: password.to_owned(),
                algorithms: Algorithm::STRONGEST_FIRST.to_vec(),
                require_mutual_auth: true,
            })
        };
        UaState {
            me,
            next_hop,
            www: responder(),
            proxy: responder(),
            auto_retry: true,
            max_retries: 2,
            prefer_auth_int: false,
            sent: Vec::new(),
            finals: Vec::new(),
            proven: Vec::new(),
            errors: Vec::new(),
            dialog: None,
            strays: Vec::new(),
            current: None,
            retries: 0,
            counter: 0,
            checked_cseq: None,
        }
    }

    /// Restricts the algorithms both Responders accept.
    pub fn set_algorithms(&mut self, username: &str, password: &str, algorithms: Vec<Algorithm>) {
        let make = || {
            Responder::new(ResponderConfig {
                username: username.to_owned(),
                password: password.to_owned(),
                algorithms: algorithms.clone(),
                require_mutual_auth: true,
            })
        };
        self.www = make();
        self.proxy = make();
    }

    /// Builds `call` with credentials for every realm the UA holds a nonce for, and makes it
    /// the request retries are built from. Also records it in `sent`.
    pub fn build(&mut self, call: Call) -> Message {
        self.counter += 1;
        let mut b = MessageBuilder::request(Method::from_token(&call.method), &call.ruri);
        b.push(
            "Via",
            &format!(
                "SIP/2.0/UDP {}:5060;branch=z9hG4bKua{}x{};rport",
                host(self.me),
                self.me,
                self.counter
            ),
        );
        for r in &call.routes {
            b.push("Route", r);
        }
        b.push("Max-Forwards", "70")
            .push("From", &format!("<{}>;tag=ua{}", call.from, self.me))
            .push("To", &format!("<{}>", call.to))
            .push("Call-ID", &call.call_id)
            .push("CSeq", &format!("{} {}", call.cseq, call.method))
            .push(
                "Contact",
                &format!("<sip:ua{}@{}:5060>", self.me, host(self.me)),
            );
        for (name, value) in &call.extra {
            b.push(name, value);
        }
        let digest_uri = call.digest_uri.clone().unwrap_or(call.ruri.clone());
        let (responder, header) = if call.to_server {
            (&mut self.www, "Authorization")
        } else {
            (&mut self.proxy, "Proxy-Authorization")
        };
        let cnonce_random = 0x5eed_0000_0000 ^ self.counter ^ ((self.me as u64) << 20);
        for value in responder.authorize(&call.method, &digest_uri, &call.body, cnonce_random) {
            b.push(header, &value);
        }
        if !call.body.is_empty() {
            b.set_body(Some("text/plain"), call.body.clone());
        }
        let m = b.build().expect("UA request builds");
        self.sent.push(m.clone());
        self.current = Some(call);
        self.retries = 0;
        m
    }

    /// The current request again with the next CSeq and fresh credentials (after a
    /// challenge).
    pub fn build_retry(&mut self) -> Option<Message> {
        let mut call = self.current.clone()?;
        call.cseq += 1;
        let retries = self.retries + 1;
        let m = self.build(call);
        self.retries = retries;
        Some(m)
    }

    fn take_challenges(&mut self, response: &Message) {
        for (name, to_www) in [
            (HeaderName::WwwAuthenticate, true),
            (HeaderName::ProxyAuthenticate, false),
        ] {
            let texts: Vec<String> = response
                .headers_named(name)
                .map(|h| {
                    let v = h.value.to_owned();
                    if self.prefer_auth_int {
                        v.replace("qop=\"auth,auth-int\"", "qop=\"auth-int\"")
                    } else {
                        v
                    }
                })
                .collect();
            if texts.is_empty() {
                continue;
            }
            let challenges: Vec<Challenge<'_>> = texts
                .iter()
                .filter_map(|t| Challenge::parse(t).ok())
                .collect();
            let responder = if to_www {
                &mut self.www
            } else {
                &mut self.proxy
            };
            if let Err(e) = responder.handle_challenges(&challenges) {
                self.errors.push(e.to_string());
            }
        }
    }

    fn check_2xx(&mut self, response: &Message) {
        let key = (
            response.call_id().to_owned(),
            response.cseq().method.as_str().to_owned(),
            response.cseq().seq,
        );
        if self.checked_cseq.as_ref() == Some(&key) {
            return;
        }
        self.checked_cseq = Some(key);
        let body = response.body_bytes().to_vec();
        let mut realms = Vec::new();
        for (name, www) in [
            (HeaderName::AuthenticationInfo, true),
            (HeaderName::ProxyAuthenticationInfo, false),
        ] {
            let texts: Vec<String> = response
                .headers_named(name)
                .map(|h| h.value.to_owned())
                .collect();
            let mut infos = Vec::new();
            for t in &texts {
                match AuthenticationInfo::parse(t) {
                    Ok(i) => infos.push(i),
                    Err(e) => self.errors.push(format!("unparseable {name:?}: {e}")),
                }
            }
            let responder = if www { &mut self.www } else { &mut self.proxy };
            match responder.check_infos(&infos, &body) {
                Ok(proofs) => realms.extend(proofs.iter().map(|p| p.realm().to_owned())),
                Err(e) => self.errors.push(e.to_string()),
            }
        }
        self.proven.push(realms);
    }

    fn dialog_from(&mut self, response: &Message) -> Dialog {
        let mut route: Vec<String> = response
            .headers_named(HeaderName::RecordRoute)
            .flat_map(|h| split_commas(h.value).map(str::to_owned).collect::<Vec<_>>())
            .collect();
        route.reverse();
        Dialog {
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
            target: response
                .header(HeaderName::Contact)
                .map(|h| uri_of(h.value))
                .unwrap_or_default(),
            cseq: response.cseq().seq,
        }
    }

    /// A request in the dialog (ACK or BYE), along the route set, without credentials.
    pub fn in_dialog(&mut self, method: Method<'_>, cseq: u32) -> Option<(Addr, Message)> {
        let d = self.dialog.clone()?;
        self.counter += 1;
        let mut b = MessageBuilder::request(method, &d.target);
        b.push(
            "Via",
            &format!(
                "SIP/2.0/UDP {}:5060;branch=z9hG4bKdlg{}x{};rport",
                host(self.me),
                self.me,
                self.counter
            ),
        );
        for r in &d.route {
            b.push("Route", r);
        }
        b.push("Max-Forwards", "70")
            .push("From", &d.local)
            .push("To", &d.remote)
            .push("Call-ID", &d.call_id)
            .push("CSeq", &format!("{cseq} {}", method.as_str()));
        let m = b.build().ok()?;
        Some((hop_of(&d.route, &d.target)?, m))
    }
}

/// The transaction user around a shared [`UaState`].
pub struct DigestUa(pub Rc<RefCell<UaState>>);

impl Tu for DigestUa {
    fn on_event(&mut self, ctx: &mut Ctx<'_>, event: TransactionEvent<crate::sim::Addr>) {
        let (key, response) = match event {
            TransactionEvent::Response { key, response } => (key, response),
            TransactionEvent::StrayResponse { response, .. } => {
                self.0.borrow_mut().strays.push(response);
                return;
            }
            _ => return,
        };
        let status = response.status().unwrap_or(0);
        if status < 200 {
            return;
        }
        let mut ua = self.0.borrow_mut();
        let first_final = !ua.finals.iter().any(|f| {
            f.cseq() == response.cseq()
                && f.call_id() == response.call_id()
                && f.status() == response.status()
        });
        if (200..300).contains(&status) && key.method() == Method::Invite {
            // ACK every 2xx (retransmissions too), along the route set (§13.2.2.4).
            let d = ua.dialog_from(&response);
            ua.dialog = Some(d.clone());
            if let Some((to, ack)) = ua.in_dialog(Method::Ack, d.cseq) {
                ctx.wire.push((to, ack));
            }
        }
        if !first_final {
            return;
        }
        ua.finals.push(response.clone());
        if (200..300).contains(&status) {
            ua.check_2xx(&response);
            return;
        }
        if matches!(status, 401 | 407) {
            ua.take_challenges(&response);
            if ua.auto_retry && ua.retries < ua.max_retries {
                let next_hop = ua.next_hop;
                if let Some(m) = ua.build_retry() {
                    let _ = ctx
                        .layer
                        .send_request(ctx.now, m, next_hop, Reliability::Unreliable);
                }
            }
        }
    }
}
