//! The stateful proxy (RFC 3261 §16): request validation (§16.3), route information
//! preprocessing (§16.4), request forwarding (§16.6) and the table of response contexts
//! (§16.7, one state machine per forwarded request, in [`response_context`]).
//!
//! Choices, documented here once:
//! - Requests whose Request-URI is one of our domains or addresses, with no Route left after
//!   ours is removed, are served from the location service: 404 for an AoR never seen, 480
//!   for a known AoR (provisioned or registered once) with no current binding. With a Route
//!   left, the request is forwarded by it without a location lookup (as Kamailio's
//!   `loose_route` does).
//! - Only IP literals, `localhost` and static hosts are resolved here (RFC 3263 with DNS
//!   belongs to the driver): a next hop named by another host name is resolved by the driver
//!   when the endpoint has DNS (see [`crate::EndpointConfig::dns`]; the branch is then built
//!   with [`BranchSpec::resolved`]), and gets 502 Bad Gateway with a Warning otherwise.
//! - A request is Record-Routed when it may create a dialog (INVITE, SUBSCRIBE, REFER without
//!   a To tag) with `<sip:HOST:PORT;transport=…;lr>` of the receiving socket; when it leaves
//!   over another transport a second value for the sending socket is added above it.
//! - A next hop that is the Contact of a current binding is reached through the address and
//!   connection the registration came from (NAT traversal, TCP/TLS flows).
//! - Loop detection (§16.3 step 4) uses the branch: ours is `z9hG4bK<hash>.<random>`, the
//!   hash covering what loop detection needs (see [`crate::wire::loop_hash`]).

pub(crate) mod response_context;

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::time::Instant;

use vouch_msg::headers::NameAddr;
use vouch_msg::{HeaderName, Limits, Message, Method, ParseError, Uri, split_commas};

use bytes::Bytes;

use crate::endpoint::{Peer, TransportKind};
use crate::local::Local;
use crate::policy::Grant;
use crate::transaction::{ClientTransactionKey, ServerTransactionKey};
use crate::wire::{Unresolvable, resolve};
use response_context::ResponseContext;

/// The Route values of a message, as written, in order.
pub(crate) fn route_values(msg: &Message) -> Vec<String> {
    msg.headers_named(HeaderName::Route)
        .flat_map(|h| split_commas(h.value).map(str::to_owned).collect::<Vec<_>>())
        .collect()
}

/// Writes `values` as the message's Route (one field, where the first was).
fn set_routes(b: &mut vouch_msg::MessageBuilder, values: &[String]) {
    if values.is_empty() {
        b.remove("Route");
    } else {
        b.replace("Route", &values.join(", "));
    }
}

/// The URI of a Route value, when it is a SIP URI.
fn route_uri_is<F: Fn(&vouch_msg::SipUri<'_>) -> bool>(value: &str, f: F) -> bool {
    NameAddr::parse(value)
        .ok()
        .is_some_and(|na| matches!(na.uri(), Uri::Sip(u) if f(u)))
}

/// §16.4: a Request-URI we placed in a Record-Route (a strict router upstream put it there)
/// is replaced by the last Route value; then every leading Route value naming us is removed.
/// The result is parsed under `limits`, those the request was received under.
pub(crate) fn preprocess_route(
    request: &Message,
    local: &Local,
    limits: &Limits,
) -> Result<Message, ParseError> {
    let mut routes = route_values(request);
    let mut new_ruri: Option<String> = None;
    let ruri_is_our_rr = matches!(
        request.request_uri(),
        Some(Uri::Sip(u)) if u.user().is_none() && u.is_loose_route() && local.is_our_address(&u)
    );
    if ruri_is_our_rr
        && let Some(last) = routes.pop()
        && let Ok(na) = NameAddr::parse(&last)
    {
        new_ruri = Some(na.uri().as_str().to_owned());
    }
    let before = routes.len();
    while routes
        .first()
        .is_some_and(|r| route_uri_is(r, |u| local.is_ours(u)))
    {
        routes.remove(0);
    }
    if new_ruri.is_none() && routes.len() == before {
        return Ok(request.clone());
    }
    let mut b = request.edit();
    if let Some(u) = &new_ruri {
        b.set_request_uri(u);
    }
    set_routes(&mut b, &routes);
    b.build_with(limits)
}

/// True for a request that may create a dialog and so is Record-Routed.
pub(crate) fn wants_record_route(request: &Message) -> bool {
    request.to_tag().is_none()
        && matches!(
            request.method(),
            Some(Method::Invite | Method::Subscribe | Method::Refer)
        )
}

/// The option tags of Proxy-Require (§16.3 step 5); the proxy supports none.
pub(crate) fn unsupported_proxy_require(request: &Message) -> Vec<String> {
    request
        .headers_named(HeaderName::ProxyRequire)
        .flat_map(|h| split_commas(h.value).map(str::to_owned).collect::<Vec<_>>())
        .filter(|t| !t.is_empty())
        .collect()
}

/// The option tags of Require, for requests this server answers itself (§8.2.2.3).
pub(crate) fn unsupported_require(request: &Message) -> Vec<String> {
    request
        .headers_named(HeaderName::Require)
        .flat_map(|h| split_commas(h.value).map(str::to_owned).collect::<Vec<_>>())
        .filter(|t| !t.is_empty())
        .collect()
}

/// Why a branch could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BranchError {
    /// The next hop needs DNS, or a transport we do not speak.
    Unresolvable(Unresolvable),
    /// The Request-URI or the first Route is not a SIP URI.
    NotSip(String),
    /// The edited request did not build.
    Build(ParseError),
}

/// How one copy of the request is sent (§16.6).
#[derive(Debug, Clone)]
pub(crate) struct BranchSpec<'a> {
    /// The request after route preprocessing.
    pub(crate) request: &'a Message,
    /// The new Request-URI (a registered Contact), or `None` to keep it.
    pub(crate) target: Option<&'a str>,
    /// The registration's source for a registered Contact.
    pub(crate) source: Option<&'a Peer>,
    /// The transport the request came over (for Record-Route).
    pub(crate) received_over: TransportKind,
    /// Whether to Record-Route.
    pub(crate) record_route: bool,
    /// The Via value to add, without transport and sent-by: `branch=…;rport`.
    pub(crate) branch: &'a str,
    /// The parser limits the request was received under, for the copy.
    pub(crate) limits: &'a Limits,
    /// The address the driver resolved the next hop's host name to (RFC 3263), used instead
    /// of resolving the first Route or the Request-URI here.
    pub(crate) resolved: Option<&'a Peer>,
}

/// The next hop for a request with these Route values and Request-URI (§16.6 steps 6–7)
/// and the strict-routing rewrite if the first Route has no `lr`: `(peer, new R-URI, routes)`.
/// `resolved`: the address DNS gave for the host of the URI that names the next hop.
pub(crate) fn next_hop(
    ruri: &str,
    routes: &[String],
    source: Option<&Peer>,
    hosts: &[(String, SocketAddr)],
    resolved: Option<&Peer>,
    contact_source: impl Fn(&str) -> Option<Peer>,
) -> Result<(Peer, Option<String>, Vec<String>), BranchError> {
    let resolve = |u: &vouch_msg::SipUri<'_>| match resolved {
        Some(p) => Ok(p.clone()),
        None => resolve(u, hosts).map_err(BranchError::Unresolvable),
    };
    if let Some(first) = routes.first() {
        let na = NameAddr::parse(first).map_err(|_| BranchError::NotSip(first.clone()))?;
        let Uri::Sip(u) = na.uri() else {
            return Err(BranchError::NotSip(first.clone()));
        };
        let peer = resolve(u)?;
        if u.is_loose_route() {
            return Ok((peer, None, routes.to_vec()));
        }
        // Strict router next (§16.6 step 7).
        let mut rest: Vec<String> = routes[1..].to_vec();
        rest.push(format!("<{ruri}>"));
        return Ok((peer, Some(u.as_str().to_owned()), rest));
    }
    if let Some(p) = source {
        return Ok((p.clone(), None, Vec::new()));
    }
    if let Some(p) = contact_source(ruri) {
        return Ok((p, None, Vec::new()));
    }
    let uri = Uri::parse(ruri).map_err(|_| BranchError::NotSip(ruri.to_owned()))?;
    let Uri::Sip(u) = uri else {
        return Err(BranchError::NotSip(ruri.to_owned()));
    };
    let peer = resolve(&u)?;
    Ok((peer, None, Vec::new()))
}

/// Builds the copy of the request for one target (§16.6 steps 1–8): Request-URI, Max-Forwards,
/// Record-Route, strict-route rewrite, our Via. Returns it with its next hop.
pub(crate) fn build_branch(
    spec: &BranchSpec<'_>,
    local: &Local,
    contact_source: impl Fn(&str) -> Option<Peer>,
) -> Result<(Message, Peer), BranchError> {
    let req = spec.request;
    let ruri = spec
        .target
        .or(req.request_uri_str())
        .unwrap_or_default()
        .to_owned();
    let routes = route_values(req);
    let (peer, strict_ruri, new_routes) = next_hop(
        &ruri,
        &routes,
        spec.source,
        local.hosts(),
        spec.resolved,
        contact_source,
    )?;
    let mut b = req.edit();
    b.set_request_uri(strict_ruri.as_deref().unwrap_or(&ruri));
    if new_routes != routes {
        set_routes(&mut b, &new_routes);
    }
    match req.max_forwards() {
        Some(n) => b.replace("Max-Forwards", &n.saturating_sub(1).to_string()),
        None => b.push("Max-Forwards", "70"),
    };
    if spec.record_route {
        b.insert_before(
            "Record-Route",
            "Record-Route",
            &local.record_route(spec.received_over),
        );
        if peer.transport != spec.received_over {
            b.insert_before(
                "Record-Route",
                "Record-Route",
                &local.record_route(peer.transport),
            );
        }
    }
    b.push_front(
        "Via",
        &format!(
            "SIP/2.0/{} {};{}",
            peer.transport,
            local.sent_by(peer.transport),
            spec.branch
        ),
    );
    let msg = b.build_with(spec.limits).map_err(BranchError::Build)?;
    Ok((msg, peer))
}

/// A forwarded request: its response context and what later branches are built from.
#[derive(Debug)]
pub(crate) struct Forwarding {
    pub(crate) context: ResponseContext,
    /// The request after route preprocessing.
    pub(crate) request: Message,
    pub(crate) received_over: TransportKind,
    pub(crate) record_route: bool,
    pub(crate) loop_hash: String,
    /// The proof of the Proxy-Authorization we verified, kept until the 2xx for its
    /// Proxy-Authentication-Info (draft-dotson-sip-mutual-auth §6).
    pub(crate) grant: Option<Grant>,
    /// The Proxy-Authentication-Info value already sent, and the 2xx body it covers.
    pub(crate) info_sent: Option<(Bytes, String)>,
    scheduled: Option<Instant>,
}

impl Forwarding {
    pub(crate) fn new(
        context: ResponseContext,
        request: Message,
        received_over: TransportKind,
        loop_hash: String,
    ) -> Self {
        let record_route = wants_record_route(&request);
        Forwarding {
            context,
            request,
            received_over,
            record_route,
            loop_hash,
            grant: None,
            info_sent: None,
            scheduled: None,
        }
    }
}

/// The response contexts, found by server transaction, by branch, and by Timer C deadline.
#[derive(Debug, Default)]
pub(crate) struct Proxy {
    next_id: u64,
    /// Boxed so a rehash under load moves pointers, not whole forwarding contexts.
    entries: HashMap<u64, Box<Forwarding>>,
    by_server: HashMap<ServerTransactionKey, u64>,
    by_client: HashMap<ClientTransactionKey, u64>,
    timers: BTreeSet<(Instant, u64)>,
}

impl Proxy {
    pub(crate) fn insert(&mut self, f: Forwarding) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.by_server.insert(f.context.server().clone(), id);
        self.entries.insert(id, Box::new(f));
        id
    }

    pub(crate) fn get(&self, id: u64) -> Option<&Forwarding> {
        self.entries.get(&id).map(|f| &**f)
    }

    pub(crate) fn get_mut(&mut self, id: u64) -> Option<&mut Forwarding> {
        self.entries.get_mut(&id).map(|f| &mut **f)
    }

    pub(crate) fn by_server(&self, key: &ServerTransactionKey) -> Option<u64> {
        self.by_server.get(key).copied()
    }

    pub(crate) fn by_client(&self, key: &ClientTransactionKey) -> Option<u64> {
        self.by_client.get(key).copied()
    }

    pub(crate) fn add_client(&mut self, id: u64, key: ClientTransactionKey) {
        self.by_client.insert(key, id);
    }

    /// Number of live contexts.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Updates the Timer C index of `id` and removes it when all its transactions ended.
    pub(crate) fn refresh(&mut self, id: u64) {
        let Some(f) = self.entries.get_mut(&id) else {
            return;
        };
        let next = f.context.poll_timeout();
        if next != f.scheduled {
            if let Some(old) = f.scheduled {
                self.timers.remove(&(old, id));
            }
            if let Some(at) = next {
                self.timers.insert((at, id));
            }
            f.scheduled = next;
        }
        if f.context.is_done()
            && let Some(f) = self.entries.remove(&id)
        {
            if let Some(at) = f.scheduled {
                self.timers.remove(&(at, id));
            }
            self.by_server.remove(f.context.server());
            for k in f.context.branch_keys() {
                if self.by_client.get(k) == Some(&id) {
                    self.by_client.remove(k);
                }
            }
        }
    }

    /// Forgets a client transaction (it terminated).
    pub(crate) fn remove_client(&mut self, key: &ClientTransactionKey) {
        self.by_client.remove(key);
    }

    /// The contexts whose Timer C is due.
    pub(crate) fn due(&self, now: Instant) -> Vec<u64> {
        self.timers
            .iter()
            .take_while(|&&(at, _)| at <= now)
            .map(|&(_, id)| id)
            .collect()
    }

    /// The earliest Timer C.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|&(at, _)| at)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn local() -> Local {
        Local::new(
            &["example.com".to_owned()],
            &[(TransportKind::Udp, "10.0.0.1:5060".parse().unwrap())],
            None,
        )
    }

    fn req(ruri: &str, routes: &str) -> Message {
        let s = format!(
            "INVITE {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.9;branch=z9hG4bKa\r\n{routes}From: <sip:a@example.com>;tag=f\r\nTo: <sip:bob@example.com>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        );
        Message::parse(s.into_bytes()).unwrap()
    }

    #[test]
    fn strips_our_route_and_keeps_the_next() {
        let m = req(
            "sip:bob@10.0.0.20",
            "Route: <sip:10.0.0.1;lr>, <sip:10.0.0.5;lr>\r\n",
        );
        let r = preprocess_route(&m, &local(), &Limits::DEFAULT).unwrap();
        assert_eq!(route_values(&r), vec!["<sip:10.0.0.5;lr>"]);
        let m = req("sip:bob@10.0.0.20", "Route: <sip:example.com;lr>\r\n");
        let r = preprocess_route(&m, &local(), &Limits::DEFAULT).unwrap();
        assert!(r.header(HeaderName::Route).is_none());
    }

    #[test]
    fn strict_router_upstream_is_undone() {
        let m = req(
            "sip:10.0.0.1;lr",
            "Route: <sip:10.0.0.5;lr>\r\nRoute: <sip:bob@10.0.0.20>\r\n",
        );
        let r = preprocess_route(&m, &local(), &Limits::DEFAULT).unwrap();
        assert_eq!(r.request_uri_str(), Some("sip:bob@10.0.0.20"));
        assert_eq!(route_values(&r), vec!["<sip:10.0.0.5;lr>"]);
    }

    #[test]
    fn strict_router_downstream_gets_the_request_uri_in_route() {
        let (peer, ruri, routes) = next_hop(
            "sip:bob@10.0.0.20",
            &["<sip:10.0.0.5>".to_owned()],
            None,
            &[],
            None,
            |_| None,
        )
        .unwrap();
        assert_eq!(peer.to_string(), "udp:10.0.0.5:5060");
        assert_eq!(ruri.as_deref(), Some("sip:10.0.0.5"));
        assert_eq!(routes, vec!["<sip:bob@10.0.0.20>"]);
    }

    #[test]
    fn branch_has_via_record_route_and_decremented_max_forwards() {
        let m = req("sip:bob@example.com", "");
        let spec = BranchSpec {
            request: &m,
            target: Some("sip:bob@10.0.0.20:5070"),
            source: None,
            received_over: TransportKind::Udp,
            record_route: true,
            branch: "branch=z9hG4bKh.r;rport",
            limits: &Limits::DEFAULT,
            resolved: None,
        };
        let (out, peer) = build_branch(&spec, &local(), |_| None).unwrap();
        assert_eq!(peer.to_string(), "udp:10.0.0.20:5070");
        assert_eq!(out.request_uri_str(), Some("sip:bob@10.0.0.20:5070"));
        assert_eq!(out.max_forwards(), Some(69));
        assert_eq!(out.top_via_branch(), Some("z9hG4bKh.r"));
        assert_eq!(out.via_count(), 2);
        let rr = out.header(HeaderName::RecordRoute).unwrap();
        assert_eq!(rr.value, "<sip:10.0.0.1:5060;transport=udp;lr>");
    }

    #[test]
    fn transport_change_record_routes_twice() {
        let local = Local::new(
            &["example.com".to_owned()],
            &[
                (TransportKind::Udp, "10.0.0.1:5060".parse().unwrap()),
                (TransportKind::Tcp, "10.0.0.1:5060".parse().unwrap()),
            ],
            None,
        );
        let m = req("sip:bob@10.0.0.20;transport=tcp", "");
        let spec = BranchSpec {
            request: &m,
            target: None,
            source: None,
            received_over: TransportKind::Udp,
            record_route: true,
            branch: "branch=z9hG4bKh.r",
            limits: &Limits::DEFAULT,
            resolved: None,
        };
        let (out, peer) = build_branch(&spec, &local, |_| None).unwrap();
        assert_eq!(peer.transport, TransportKind::Tcp);
        let rr: Vec<_> = out
            .record_route()
            .iter()
            .map(|n| n.uri().as_str().to_owned())
            .collect();
        assert_eq!(
            rr,
            vec![
                "sip:10.0.0.1:5060;transport=tcp;lr",
                "sip:10.0.0.1:5060;transport=udp;lr"
            ]
        );
        assert!(out.top_via().unwrap().transport() == "TCP");
    }

    #[test]
    fn host_names_are_not_resolved() {
        let m = req("sip:bob@example.org", "");
        let spec = BranchSpec {
            request: &m,
            target: None,
            source: None,
            received_over: TransportKind::Udp,
            record_route: false,
            branch: "branch=z9hG4bKh.r",
            limits: &Limits::DEFAULT,
            resolved: None,
        };
        assert!(matches!(
            build_branch(&spec, &local(), |_| None),
            Err(BranchError::Unresolvable(Unresolvable::HostName(_)))
        ));
    }
}
