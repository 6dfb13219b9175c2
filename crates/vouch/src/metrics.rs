//! Prometheus metrics of a running server, in the text exposition format at `/metrics` on
//! `[metrics] listen`: what a Kamailio operator reads from `kamcmd stats` or xhttp_prom —
//! SIP messages in and out by method and status code, refusals, forwarded requests, certificate
//! fetches, and the registrar's and transaction layer's occupancy.
//!
//! The counters are kept by the driver, not the engine: the event loop sees every message
//! received and every one transmitted (retransmissions included, as Kamailio's core counters
//! count them), and classifies each from its first bytes without parsing it — a response is
//! `SIP/2.0 NNN …` and NNN is its status code, a request's method is its first token
//! (RFC 3261 §7.1, §7.2) — and counts the engine's events as it handles them. The gauges are
//! the engine's own figures ([`Endpoint::occupancy`]), asked for by each scrape, and the
//! driver's open TCP/TLS connections.
//!
//! Every label is bounded: methods are those `vouch_msg::Method` names, anything else is
//! `other`; status codes are 100–699 (a response with anything else counts as `other`).
//!
//! One recorder per server (`metrics-exporter-prometheus`'s [`PrometheusRecorder`], not the
//! process-wide one), so servers in one process — tests, the demo — count apart.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::routing::get;
use metrics::{Counter, Gauge, Key, KeyName, Label, Metadata, Recorder};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use tokio::sync::{mpsc, oneshot};
use vouch_msg::Method;

use crate::engine::{Endpoint, Event, Occupancy};
use crate::flows::Flows;

/// The path the metrics are served at.
pub const PATH: &str = "/metrics";

/// How long a scrape waits for the event loop's figures before it renders without them.
const OCCUPANCY_WAIT: Duration = Duration::from_secs(1);

/// The methods counted by name, in label order; the rest are `other`.
const METHODS: [Method<'static>; 14] = Method::NAMED;
/// Known methods plus `other`.
const METHOD_LABELS: usize = METHODS.len() + 1;
/// Status codes 100–699 plus `other`.
const CODE_LABELS: usize = 601;
/// Status codes 100–699, `other`, and 0 (dropped unanswered).
const REJECTED_LABELS: usize = CODE_LABELS + 1;
/// Classes 1xx–6xx plus `other`.
const CLASS_LABELS: usize = 7;

/// What a message's first bytes say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A request: index into [`METHODS`], or `METHODS.len()` for any other.
    Request(usize),
    /// A response: its status code, when it is one (100–699).
    Response(Option<u16>),
}

/// Classifies a message from its start line alone.
fn classify(bytes: &[u8]) -> Kind {
    if let Some(rest) = bytes.strip_prefix(b"SIP/2.0 ") {
        let code = rest
            .get(..3)
            .filter(|d| d.iter().all(u8::is_ascii_digit))
            .map(|d| d.iter().fold(0u16, |n, &c| n * 10 + u16::from(c - b'0')))
            .filter(|c| (100..700).contains(c));
        return Kind::Response(code);
    }
    // No known method is longer than 9 bytes: a long run of garbage is not scanned.
    let head = &bytes[..bytes.len().min(10)];
    let token = head.split(|&b| b == b' ').next().unwrap_or_default();
    Kind::Request(method_index(token))
}

/// Index into [`METHODS`] (method names are case-sensitive, RFC 3261 §7.1), or
/// `METHODS.len()` for any other.
fn method_index(method: impl AsRef<[u8]>) -> usize {
    let method = method.as_ref();
    METHODS
        .iter()
        .position(|n| n.as_str().as_bytes() == method)
        .unwrap_or(METHODS.len())
}

fn method_label(i: usize) -> String {
    METHODS.get(i).map_or("other", Method::as_str).to_string()
}

/// Index of a status code label: `code - 100`, or the last for anything else.
fn code_index(code: Option<u16>) -> usize {
    code.filter(|c| (100..700).contains(c))
        .map_or(CODE_LABELS - 1, |c| usize::from(c - 100))
}

fn code_label(i: usize) -> String {
    if i + 1 < CODE_LABELS {
        (i + 100).to_string()
    } else {
        "other".to_string()
    }
}

fn class_index(code: Option<u16>) -> usize {
    code.map_or(CLASS_LABELS - 1, |c| usize::from(c / 100 - 1))
}

fn class_label(i: usize) -> String {
    if i + 1 < CLASS_LABELS {
        format!("{}xx", i + 1)
    } else {
        "other".to_string()
    }
}

/// One counter per value of one label, registered with the recorder the first time it is
/// counted (so a scrape lists only the codes seen), or at once when `eager` (so every method
/// is listed from the start, at 0, as in `kamcmd stats`).
#[derive(Debug)]
struct Family<const N: usize> {
    name: &'static str,
    label: &'static str,
    value: fn(usize) -> String,
    counters: [OnceLock<Counter>; N],
}

impl<const N: usize> Family<N> {
    fn new(
        recorder: &PrometheusRecorder,
        (name, help): (&'static str, &'static str),
        label: &'static str,
        value: fn(usize) -> String,
        eager: bool,
    ) -> Self {
        recorder.describe_counter(KeyName::from_const_str(name), None, help.into());
        let f = Family {
            name,
            label,
            value,
            counters: std::array::from_fn(|_| OnceLock::new()),
        };
        if eager {
            for i in 0..N {
                f.counter(recorder, i);
            }
        }
        f
    }

    fn counter(&self, recorder: &PrometheusRecorder, i: usize) -> &Counter {
        self.counters[i].get_or_init(|| {
            let key = Key::from_parts(self.name, vec![Label::new(self.label, (self.value)(i))]);
            recorder.register_counter(&key, &metadata())
        })
    }

    fn increment(&self, recorder: &PrometheusRecorder, i: usize) {
        self.counter(recorder, i.min(N - 1)).increment(1);
    }
}

fn metadata() -> Metadata<'static> {
    Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()))
}

/// The server's counters, kept by the event loop; the [`Scrape`] from [`Metrics::scrape`]
/// renders them.
#[derive(Debug)]
pub struct Metrics {
    recorder: PrometheusRecorder,
    requests_received: Family<METHOD_LABELS>,
    responses_received: Family<CLASS_LABELS>,
    requests_sent: Family<METHOD_LABELS>,
    responses_sent: Family<CODE_LABELS>,
    rejected: Family<REJECTED_LABELS>,
    forwarded: Family<METHOD_LABELS>,
    certificate_fetches: Counter,
    certificate_fetch_failures: Counter,
    dns_lookups: Counter,
    dns_lookup_failures: Counter,
    gauges: Arc<Gauges>,
}

/// The gauges a scrape fills in from [`Occupancy`].
#[derive(Debug)]
struct Gauges {
    transactions: Gauge,
    proxied: Gauge,
    aors: Gauge,
    bindings: Gauge,
    connections: Gauge,
}

impl Gauges {
    fn set(&self, o: Occupancy) {
        // Counts of things held in memory: far below 2^53, exact as f64.
        self.transactions.set(o.transactions as f64);
        self.proxied.set(o.proxied as f64);
        self.aors.set(o.aors as f64);
        self.bindings.set(o.bindings as f64);
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every counter at 0 (status codes appear once seen), and `vouch_build_info`.
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new().build_recorder();
        let r = &recorder;
        let gauge = |name: &'static str, help: &'static str| {
            r.describe_gauge(KeyName::from_const_str(name), None, help.into());
            r.register_gauge(&Key::from_static_name(name), &metadata())
        };
        let gauges = Arc::new(Gauges {
            transactions: gauge(
                "vouch_transactions",
                "Live SIP transactions, server and client (RFC 3261 §17).",
            ),
            proxied: gauge(
                "vouch_proxied_requests",
                "Requests proxied statefully whose transactions are live (RFC 3261 §16.7 response contexts).",
            ),
            aors: gauge(
                "vouch_registrar_aors",
                "Addresses of record with at least one binding.",
            ),
            bindings: gauge("vouch_registrar_bindings", "Registered contacts."),
            connections: gauge(
                "vouch_connections",
                "Open TCP and TLS connections, inbound and outbound.",
            ),
        });
        r.describe_gauge(
            KeyName::from_const_str("vouch_build_info"),
            None,
            "Always 1; the version is the label.".into(),
        );
        let info = Key::from_parts(
            "vouch_build_info",
            vec![Label::new("version", env!("CARGO_PKG_VERSION"))],
        );
        r.register_gauge(&info, &metadata()).set(1.0);
        let counter = |name: &'static str, help: &'static str| {
            r.describe_counter(KeyName::from_const_str(name), None, help.into());
            r.register_counter(&Key::from_static_name(name), &metadata())
        };
        let certificate_fetches = counter(
            "vouch_certificate_fetches_total",
            "Identity-Info certificate fetches started (RFC 4474 §6.2).",
        );
        let certificate_fetch_failures = counter(
            "vouch_certificate_fetch_failures_total",
            "Identity-Info certificate fetches that failed (unreachable, refused, not a certificate).",
        );
        let dns_lookups = counter(
            "vouch_dns_lookups_total",
            "RFC 3263 lookups of next hops started.",
        );
        let dns_lookup_failures = counter(
            "vouch_dns_lookup_failures_total",
            "RFC 3263 lookups that found no address (or failed).",
        );
        Metrics {
            requests_received: Family::new(
                r,
                (
                    "vouch_sip_requests_received_total",
                    "SIP requests received, retransmissions included.",
                ),
                "method",
                method_label,
                true,
            ),
            responses_received: Family::new(
                r,
                (
                    "vouch_sip_responses_received_total",
                    "SIP responses received, by class.",
                ),
                "class",
                class_label,
                true,
            ),
            requests_sent: Family::new(
                r,
                (
                    "vouch_sip_requests_sent_total",
                    "SIP requests sent, retransmissions included.",
                ),
                "method",
                method_label,
                true,
            ),
            responses_sent: Family::new(
                r,
                (
                    "vouch_sip_responses_sent_total",
                    "SIP responses sent (challenges, refusals and relayed responses), by code.",
                ),
                "code",
                code_label,
                false,
            ),
            rejected: Family::new(
                r,
                (
                    "vouch_sip_messages_rejected_total",
                    "Messages refused as unparseable or over the limits, by the status answered (0: dropped unanswered).",
                ),
                "status",
                rejected_label,
                false,
            ),
            forwarded: Family::new(
                r,
                (
                    "vouch_sip_forwarded_total",
                    "Requests forwarded, by method.",
                ),
                "method",
                method_label,
                true,
            ),
            certificate_fetches,
            certificate_fetch_failures,
            dns_lookups,
            dns_lookup_failures,
            gauges,
            recorder,
        }
    }

    /// Counts a message received.
    pub fn received(&self, bytes: &[u8]) {
        match classify(bytes) {
            Kind::Request(m) => self.requests_received.increment(&self.recorder, m),
            Kind::Response(code) => self
                .responses_received
                .increment(&self.recorder, class_index(code)),
        }
    }

    /// Counts a message transmitted.
    pub fn sent(&self, bytes: &[u8]) {
        match classify(bytes) {
            Kind::Request(m) => self.requests_sent.increment(&self.recorder, m),
            Kind::Response(code) => self
                .responses_sent
                .increment(&self.recorder, code_index(code)),
        }
    }

    /// Counts what an engine event reports.
    pub fn event(&self, e: &Event) {
        match e {
            Event::MessageRejected { status, .. } => self
                .rejected
                .increment(&self.recorder, rejected_index(*status)),
            Event::Forwarded { method, .. } => self
                .forwarded
                .increment(&self.recorder, method_index(method)),
            Event::FetchCertificate { .. } => self.certificate_fetches.increment(1),
            Event::Resolve { .. } => self.dns_lookups.increment(1),
            _ => {}
        }
    }

    /// Counts the outcome of a certificate fetch.
    pub fn certificate_fetched(&self, ok: bool) {
        if !ok {
            self.certificate_fetch_failures.increment(1);
        }
    }

    /// Counts the outcome of an RFC 3263 lookup: a failure when it gave no address.
    pub fn resolved(&self, addresses: usize) {
        if addresses == 0 {
            self.dns_lookup_failures.increment(1);
        }
    }

    /// What the HTTP endpoint needs: the rendering handle, the gauges to fill in, where to
    /// ask for the engine's figures, and the connection table.
    pub fn scrape(&self, occupancy: mpsc::Sender<OccupancyRequest>, flows: Flows) -> Scrape {
        Scrape {
            handle: self.recorder.handle(),
            gauges: self.gauges.clone(),
            occupancy,
            flows,
        }
    }
}

/// `MessageRejected` statuses: the status code slots, and 0 (dropped unanswered) after them.
fn rejected_index(status: u16) -> usize {
    if status == 0 {
        REJECTED_LABELS - 1
    } else {
        code_index(Some(status))
    }
}

fn rejected_label(i: usize) -> String {
    if i + 1 < REJECTED_LABELS {
        code_label(i)
    } else {
        "0".to_string()
    }
}

/// A scrape asking the event loop for the engine's figures.
pub type OccupancyRequest = oneshot::Sender<Occupancy>;

/// The next scrape's request; never, when metrics are off (`None`) or no endpoint is left.
pub async fn requested(
    requests: &mut Option<mpsc::Receiver<OccupancyRequest>>,
) -> Option<OccupancyRequest> {
    match requests {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Answers an [`OccupancyRequest`] (in the event loop, which owns the endpoint).
pub fn answer(ep: &Endpoint, request: OccupancyRequest) {
    // The scrape may have given up waiting; nothing to do then.
    let _ = request.send(ep.occupancy());
}

/// The metrics endpoint's side: renders the counters, and asks the event loop for the gauges.
#[derive(Debug, Clone)]
pub struct Scrape {
    handle: PrometheusHandle,
    gauges: Arc<Gauges>,
    occupancy: mpsc::Sender<OccupancyRequest>,
    flows: Flows,
}

impl Scrape {
    /// The exposition text. When the event loop does not answer within a second
    /// (gone, or saturated), the gauges keep their last values.
    pub async fn render(&self) -> String {
        let (tx, rx) = oneshot::channel();
        let asked = async {
            self.occupancy.send(tx).await.ok()?;
            rx.await.ok()
        };
        if let Ok(Some(o)) = tokio::time::timeout(OCCUPANCY_WAIT, asked).await {
            self.gauges.set(o);
        }
        self.gauges.connections.set(self.flows.len() as f64);
        self.handle.render()
    }
}

/// The one route: [`PATH`], GET and HEAD; anything else is 404 (another method, 405).
pub fn router(scrape: Scrape) -> Router {
    Router::new()
        .route(PATH, get(serve))
        .with_state(Arc::new(scrape))
}

async fn serve(State(scrape): State<Arc<Scrape>>) -> impl axum::response::IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        scrape.render().await,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_from_the_first_bytes() {
        assert_eq!(classify(b"INVITE sip:a@b SIP/2.0\r\n"), Kind::Request(0));
        assert_eq!(classify(b"PUBLISH sip:a@b SIP/2.0\r\n"), Kind::Request(13));
        // Method names are case-sensitive (RFC 3261 §7.1).
        assert_eq!(classify(b"invite sip:a@b SIP/2.0\r\n"), Kind::Request(14));
        assert_eq!(classify(b"FOO sip:a@b SIP/2.0\r\n"), Kind::Request(14));
        assert_eq!(classify(b"\xff\xfe"), Kind::Request(14));
        assert_eq!(classify(b""), Kind::Request(14));
        assert_eq!(classify(b"INVITEINVITE sip:a@b SIP/2.0"), Kind::Request(14));
        assert_eq!(classify(b"SUBSCRIBE sip:a@b SIP/2.0"), Kind::Request(9));
        assert_eq!(classify(b"ACK"), Kind::Request(1));
        assert_eq!(
            classify(b"SIP/2.0 407 Proxy Auth"),
            Kind::Response(Some(407))
        );
        assert_eq!(classify(b"SIP/2.0 100"), Kind::Response(Some(100)));
        assert_eq!(classify(b"SIP/2.0 099 x"), Kind::Response(None));
        assert_eq!(classify(b"SIP/2.0 700 x"), Kind::Response(None));
        assert_eq!(classify(b"SIP/2.0 2x0 x"), Kind::Response(None));
        assert_eq!(classify(b"SIP/2.0 20"), Kind::Response(None));
    }

    #[test]
    fn each_named_method_is_its_own_label_and_the_rest_other() {
        for (i, m) in METHODS.iter().enumerate() {
            assert_eq!(method_index(m.as_str()), i);
            assert_eq!(method_label(i), m.as_str());
        }
        assert_eq!(method_label(method_index("FOO")), "other");
    }

    #[test]
    fn labels_are_bounded() {
        assert_eq!(code_label(code_index(Some(100))), "100");
        assert_eq!(code_label(code_index(Some(699))), "699");
        assert_eq!(code_label(code_index(Some(700))), "other");
        assert_eq!(code_label(code_index(None)), "other");
        assert_eq!(class_label(class_index(Some(183))), "1xx");
        assert_eq!(class_label(class_index(Some(699))), "6xx");
        assert_eq!(class_label(class_index(None)), "other");
        assert_eq!(rejected_label(rejected_index(0)), "0");
        assert_eq!(rejected_label(rejected_index(513)), "513");
        assert_eq!(rejected_label(rejected_index(999)), "other");
        assert_eq!(method_label(method_index("PRACK")), "PRACK");
        assert_eq!(method_label(method_index("prack")), "other");
    }

    #[test]
    fn servers_count_apart() {
        let (a, b) = (Metrics::new(), Metrics::new());
        a.received(b"OPTIONS sip:x SIP/2.0\r\n");
        a.sent(b"SIP/2.0 200 OK\r\n");
        let (tx, _rx) = mpsc::channel(1);
        let scrape = |m: &Metrics| m.scrape(tx.clone(), Flows::default()).handle.render();
        let (ra, rb) = (scrape(&a), scrape(&b));
        assert!(
            ra.contains("vouch_sip_requests_received_total{method=\"OPTIONS\"} 1\n"),
            "{ra}"
        );
        assert!(ra.contains("vouch_sip_responses_sent_total{code=\"200\"} 1\n"));
        assert!(rb.contains("vouch_sip_requests_received_total{method=\"OPTIONS\"} 0\n"));
        assert!(!rb.contains("vouch_sip_responses_sent_total{"), "{rb}");
    }
}
