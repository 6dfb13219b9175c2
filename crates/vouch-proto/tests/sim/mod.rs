//! A virtual network in virtual time for transaction-layer tests: endpoints exchange
//! datagrams that a seeded xorshift RNG drops, duplicates and delays (a random delay per copy
//! reorders them). Time only moves when the simulation jumps to the next event: nothing
//! sleeps.
//!
//! Three kinds of node share the network: transaction layers with a test TU (`add`), complete
//! [`Endpoint`]s (`add_endpoint`, the proxy/registrar under test) and [`UserAgent`]s
//! (`add_ua`), the last two driven as their tokio drivers drive them. Address `n` is
//! `10.0.0.(n+1):5060` to an endpoint; the wall clock starts at `WALL0`.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use vouch_msg::Message;
use vouch_proto::transaction::{Reliability, TransactionEvent, TransactionLayer};
use vouch_proto::ua::{UaEvent, UserAgent};
use vouch_proto::{Endpoint, Event, FlowId, Output, Peer, TransportKind};

/// An endpoint's address on the virtual network.
pub type Addr = usize;

/// The wall clock (Unix seconds) at the start of every simulation.
pub const WALL0: i64 = 1_700_000_000;

/// The socket address of a node.
pub fn sock(a: Addr) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, (a + 1) as u8)), 5060)
}

/// The IP literal of a node, as written in URIs and Via.
pub fn host(a: Addr) -> String {
    sock(a).ip().to_string()
}

/// The node at a socket address.
pub fn addr_of(s: SocketAddr) -> Option<Addr> {
    match s.ip() {
        IpAddr::V4(ip) if ip.octets()[..3] == [10, 0, 0] && ip.octets()[3] > 0 => {
            Some(ip.octets()[3] as usize - 1)
        }
        _ => None,
    }
}

/// The node a URI host (IP literal of the 10.0.0.0/24 net) names.
pub fn addr_of_host(h: &str) -> Option<Addr> {
    h.parse::<Ipv4Addr>()
        .ok()
        .and_then(|ip| addr_of(SocketAddr::new(IpAddr::V4(ip), 5060)))
}

/// A sans-IO engine the simulation drives like its driver would: the server endpoint or the
/// user agent.
pub trait Engine {
    type Ev;
    fn receive(&mut self, now: Instant, wall: i64, from: Peer, bytes: bytes::Bytes);
    fn timeout(&mut self, now: Instant, wall: i64);
    fn poll(&mut self) -> Output<Self::Ev>;
}

impl Engine for Endpoint {
    type Ev = Event;
    fn receive(&mut self, now: Instant, wall: i64, from: Peer, bytes: bytes::Bytes) {
        self.handle_receive(now, wall, from, bytes);
    }
    fn timeout(&mut self, now: Instant, wall: i64) {
        self.handle_timeout(now, wall);
    }
    fn poll(&mut self) -> Output<Event> {
        self.poll_output()
    }
}

impl Engine for UserAgent {
    type Ev = UaEvent;
    fn receive(&mut self, now: Instant, wall: i64, from: Peer, bytes: bytes::Bytes) {
        self.handle_receive(now, wall, from, bytes);
    }
    fn timeout(&mut self, now: Instant, wall: i64) {
        self.handle_timeout(now, wall);
    }
    fn poll(&mut self) -> Output<UaEvent> {
        self.poll_output()
    }
}

/// An engine under test on the network, with what it reported.
pub struct EngineNode<E: Engine> {
    pub engine: E,
    pub timeout: Option<Instant>,
    pub events: Vec<E::Ev>,
}

/// A server endpoint on the network.
pub type EndpointNode = EngineNode<Endpoint>;

impl<E: Engine> EngineNode<E> {
    fn new(engine: E) -> Self {
        EngineNode {
            engine,
            timeout: None,
            events: Vec::new(),
        }
    }

    /// Moves the outputs: transmits onto the network (from `me`), events into `events`.
    fn drain(&mut self, now: Instant, me: Addr, net: &mut Network) {
        loop {
            match self.engine.poll() {
                Output::Transmit { to, bytes } => {
                    if let Some(dst) = addr_of(to.addr) {
                        net.send(now, me, dst, bytes.to_vec());
                    }
                }
                Output::Event(e) => self.events.push(e),
                Output::Timeout(t) => {
                    self.timeout = t;
                    break;
                }
            }
        }
    }
}

/// xorshift64* — small, seeded, reproducible.
#[derive(Debug, Clone)]
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> Self {
        // splitmix64 of the seed, so seeds 0, 1, 2… give unrelated streams (and never 0).
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        XorShift((z ^ (z >> 31)) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
}

/// How the network treats each datagram.
#[derive(Debug, Clone, Copy)]
pub struct NetConfig {
    /// Probability that a datagram is lost.
    pub loss: f64,
    /// Probability that a datagram that is not lost arrives twice.
    pub duplicate: f64,
    /// Each copy is delayed uniformly in `min_delay..=max_delay`: a spread reorders.
    pub min_delay: Duration,
    pub max_delay: Duration,
}

impl NetConfig {
    pub const PERFECT: NetConfig = NetConfig {
        loss: 0.0,
        duplicate: 0.0,
        min_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(10),
    };
}

#[derive(Debug, Clone)]
pub struct Datagram {
    pub from: Addr,
    pub to: Addr,
    pub bytes: Vec<u8>,
}

/// The datagrams in flight, by delivery time.
#[derive(Debug)]
pub struct Network {
    pub config: NetConfig,
    rng: XorShift,
    seq: u64,
    in_flight: BTreeMap<(Instant, u64), Datagram>,
    /// Datagrams handed to the network, and what it did with them.
    pub sent: usize,
    pub lost: usize,
    pub duplicated: usize,
    /// When set, every datagram handed to the network is recorded here (a wiretap).
    pub captured: Option<Vec<Datagram>>,
    /// When set, datagrams it picks are lost (a firewall), on top of random loss.
    pub drop_if: Option<fn(&Datagram) -> bool>,
}

impl Network {
    pub fn new(config: NetConfig, seed: u64) -> Self {
        Network {
            config,
            rng: XorShift::new(seed),
            seq: 0,
            in_flight: BTreeMap::new(),
            sent: 0,
            lost: 0,
            duplicated: 0,
            captured: None,
            drop_if: None,
        }
    }

    pub fn send(&mut self, now: Instant, from: Addr, to: Addr, bytes: Vec<u8>) {
        self.sent += 1;
        if let Some(c) = &mut self.captured {
            c.push(Datagram {
                from,
                to,
                bytes: bytes.clone(),
            });
        }
        let dropped = self.drop_if.is_some_and(|f| {
            f(&Datagram {
                from,
                to,
                bytes: bytes.clone(),
            })
        });
        if dropped || self.rng.chance(self.config.loss) {
            self.lost += 1;
            return;
        }
        let copies = if self.rng.chance(self.config.duplicate) {
            self.duplicated += 1;
            2
        } else {
            1
        };
        for _ in 0..copies {
            let spread = self
                .config
                .max_delay
                .saturating_sub(self.config.min_delay)
                .as_micros() as u64;
            let delay = self.config.min_delay + Duration::from_micros(self.rng.below(spread + 1));
            self.seq += 1;
            self.in_flight.insert(
                (now + delay, self.seq),
                Datagram {
                    from,
                    to,
                    bytes: bytes.clone(),
                },
            );
        }
    }

    pub fn next_delivery(&self) -> Option<Instant> {
        self.in_flight.keys().next().map(|&(at, _)| at)
    }

    pub fn pop_due(&mut self, now: Instant) -> Option<Datagram> {
        let (&k, _) = self.in_flight.iter().next().filter(|(k, _)| k.0 <= now)?;
        self.in_flight.remove(&k)
    }
}

/// What a transaction user may do while handling an event or a timeout.
pub struct Ctx<'a> {
    pub now: Instant,
    pub me: Addr,
    pub layer: &'a mut TransactionLayer<Addr>,
    /// Messages the TU sends straight to the transport (the ACK for a 2xx, 2xx
    /// retransmissions are sent through the server transaction instead).
    pub wire: &'a mut Vec<(Addr, Message)>,
}

/// A test transaction user.
pub trait Tu {
    fn on_event(&mut self, ctx: &mut Ctx<'_>, event: TransactionEvent<Addr>);
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
    fn on_timeout(&mut self, _ctx: &mut Ctx<'_>) {}
}

pub struct Node {
    pub layer: TransactionLayer<Addr>,
    pub tu: Box<dyn Tu>,
}

/// Endpoints on one network, in one virtual clock.
pub struct Sim {
    pub t0: Instant,
    pub now: Instant,
    pub net: Network,
    pub nodes: Vec<Node>,
    pub reliability: Reliability,
    pub endpoints: BTreeMap<Addr, EndpointNode>,
    pub uas: BTreeMap<Addr, EngineNode<UserAgent>>,
}

impl Sim {
    pub fn new(net: Network, reliability: Reliability) -> Self {
        // The one real clock read of a test: the origin of virtual time.
        let t0 = Instant::now();
        Sim {
            t0,
            now: t0,
            net,
            nodes: Vec::new(),
            reliability,
            endpoints: BTreeMap::new(),
            uas: BTreeMap::new(),
        }
    }

    /// The wall clock now.
    pub fn wall(&self) -> i64 {
        WALL0 + self.now.duration_since(self.t0).as_secs() as i64
    }

    /// Puts an endpoint at `addr` (outside the range of `add`ed nodes).
    pub fn add_endpoint(&mut self, addr: Addr, endpoint: Endpoint) {
        self.endpoints.insert(addr, EngineNode::new(endpoint));
        self.drain_endpoint(addr);
    }

    /// Puts a user agent at `addr` (outside the range of `add`ed nodes).
    pub fn add_ua(&mut self, addr: Addr, ua: UserAgent) {
        self.uas.insert(addr, EngineNode::new(ua));
        self.ua_input(addr, |_, _, _| {});
    }

    /// Gives user agent `a` a command from the test (call, answer, hang up, …) with the
    /// virtual clocks, then moves its outputs; returns what the command returned.
    pub fn ua_input<R>(
        &mut self,
        a: Addr,
        f: impl FnOnce(&mut UserAgent, Instant, i64) -> R,
    ) -> Option<R> {
        let (now, wall) = (self.now, self.wall());
        let node = self.uas.get_mut(&a)?;
        let r = f(&mut node.engine, now, wall);
        node.drain(now, a, &mut self.net);
        Some(r)
    }

    /// Everything user agent `a` reported.
    pub fn ua_events(&self, a: Addr) -> &[UaEvent] {
        self.uas.get(&a).map_or(&[], |u| &u.events)
    }

    /// How a node looks to an endpoint: its address, over UDP or (reliable) TCP with one
    /// connection per node.
    pub fn peer_of(&self, a: Addr) -> Peer {
        match self.reliability {
            Reliability::Unreliable => Peer::new(TransportKind::Udp, sock(a)),
            Reliability::Reliable => Peer {
                transport: TransportKind::Tcp,
                addr: sock(a),
                flow: Some(FlowId(a as u64)),
            },
        }
    }

    /// Puts raw bytes on the network, as if sent by `from`.
    pub fn inject(&mut self, from: Addr, to: Addr, bytes: Vec<u8>) {
        self.net.send(self.now, from, to, bytes);
    }

    /// Everything endpoint `a` reported.
    pub fn events(&self, a: Addr) -> &[Event] {
        self.endpoints.get(&a).map_or(&[], |e| &e.events)
    }

    /// Gives endpoint `a` an input from the test, as its driver would (a fetched certificate,
    /// say), with the virtual clocks, then moves its outputs.
    pub fn endpoint_input(&mut self, a: Addr, f: impl FnOnce(&mut Endpoint, Instant, i64)) {
        let (now, wall) = (self.now, self.wall());
        if let Some(ep) = self.endpoints.get_mut(&a) {
            f(&mut ep.engine, now, wall);
        }
        self.drain_endpoint(a);
    }

    fn drain_endpoint(&mut self, a: Addr) {
        let now = self.now;
        if let Some(ep) = self.endpoints.get_mut(&a) {
            ep.drain(now, a, &mut self.net);
        }
    }

    pub fn add(&mut self, layer: TransactionLayer<Addr>, tu: Box<dyn Tu>) -> Addr {
        self.nodes.push(Node { layer, tu });
        self.nodes.len() - 1
    }

    /// Lets node `n`'s TU act now (e.g. start a transaction), then moves its outputs.
    pub fn act(&mut self, n: Addr, f: impl FnOnce(&mut Ctx<'_>)) {
        let mut wire = Vec::new();
        {
            let node = &mut self.nodes[n];
            let mut ctx = Ctx {
                now: self.now,
                me: n,
                layer: &mut node.layer,
                wire: &mut wire,
            };
            f(&mut ctx);
        }
        self.send_wire(n, wire);
        self.pump(n);
    }

    fn send_wire(&mut self, n: Addr, wire: Vec<(Addr, Message)>) {
        for (to, m) in wire {
            self.net.send(self.now, n, to, m.as_bytes().to_vec());
        }
    }

    /// Moves node `n`'s transmits to the network and its events to its TU until both are dry.
    fn pump(&mut self, n: Addr) {
        loop {
            let mut moved = false;
            while let Some(t) = self.nodes[n].layer.poll_transmit() {
                moved = true;
                self.net.send(self.now, n, t.remote, t.bytes.to_vec());
            }
            while let Some(ev) = self.nodes[n].layer.poll_event() {
                moved = true;
                let mut wire = Vec::new();
                let node = &mut self.nodes[n];
                let mut ctx = Ctx {
                    now: self.now,
                    me: n,
                    layer: &mut node.layer,
                    wire: &mut wire,
                };
                node.tu.on_event(&mut ctx, ev);
                self.send_wire(n, wire);
            }
            if !moved {
                break;
            }
        }
    }

    fn next_wakeup(&self) -> Option<Instant> {
        let mut next = self.net.next_delivery();
        let engine_timeouts = self
            .endpoints
            .values()
            .map(|e| e.timeout)
            .chain(self.uas.values().map(|u| u.timeout));
        for timeout in engine_timeouts {
            next = match (next, timeout) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        for node in &self.nodes {
            for t in [node.layer.poll_timeout(), node.tu.poll_timeout()] {
                next = match (next, t) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
        }
        next
    }

    /// Runs until nothing is left to do or `limit` after the origin; returns the end time.
    pub fn run(&mut self, limit: Duration) -> Instant {
        let deadline = self.t0 + limit;
        while let Some(next) = self.next_wakeup() {
            if next > deadline {
                break;
            }
            self.now = self.now.max(next);
            while let Some(d) = self.net.pop_due(self.now) {
                let (now, wall, peer) = (self.now, self.wall(), self.peer_of(d.from));
                if let Some(ep) = self.endpoints.get_mut(&d.to) {
                    ep.engine
                        .receive(now, wall, peer, bytes::Bytes::from(d.bytes));
                    ep.drain(now, d.to, &mut self.net);
                    continue;
                }
                if let Some(ua) = self.uas.get_mut(&d.to) {
                    ua.engine
                        .receive(now, wall, peer, bytes::Bytes::from(d.bytes));
                    ua.drain(now, d.to, &mut self.net);
                    continue;
                }
                if d.to >= self.nodes.len() {
                    continue;
                }
                // The driver's job: a datagram that does not parse is dropped.
                if let Ok(m) = Message::parse(d.bytes) {
                    self.nodes[d.to]
                        .layer
                        .handle_receive(self.now, m, d.from, self.reliability);
                    self.pump(d.to);
                }
            }
            let due: Vec<Addr> = self
                .endpoints
                .iter()
                .filter(|(_, e)| e.timeout.is_some_and(|t| t <= self.now))
                .map(|(&a, _)| a)
                .collect();
            let (now, wall) = (self.now, self.wall());
            for a in due {
                if let Some(ep) = self.endpoints.get_mut(&a) {
                    ep.engine.timeout(now, wall);
                    ep.drain(now, a, &mut self.net);
                }
            }
            for (&a, ua) in self.uas.iter_mut() {
                if ua.timeout.is_some_and(|t| t <= now) {
                    ua.engine.timeout(now, wall);
                    ua.drain(now, a, &mut self.net);
                }
            }
            for n in 0..self.nodes.len() {
                self.nodes[n].layer.handle_timeout(self.now);
                if self.nodes[n]
                    .tu
                    .poll_timeout()
                    .is_some_and(|t| t <= self.now)
                {
                    let mut wire = Vec::new();
                    let node = &mut self.nodes[n];
                    let mut ctx = Ctx {
                        now: self.now,
                        me: n,
                        layer: &mut node.layer,
                        wire: &mut wire,
                    };
                    node.tu.on_timeout(&mut ctx);
                    self.send_wire(n, wire);
                }
                self.pump(n);
            }
        }
        self.now
    }
}
