//! The transaction layer: a table of transactions that matches responses to client
//! transactions (RFC 3261 §17.1.3) and requests to server transactions (§17.2.3), creates a
//! server transaction for each new request, and passes up what matches nothing — a response
//! no client transaction wants (§18.1.2: a proxy forwards it statelessly, a UAC drops it) and
//! an ACK for a 2xx (§17.1.1.3, §13.3.1.4), which is its own transaction-less request.
//!
//! The layer does not know addresses: the driver tags every received message with a `remote`
//! value of its choosing (source address, connection id, …) and every client transaction is
//! created with the `remote` to send to. Every [`Transmit`] carries the `remote` of its
//! transaction back — for a server transaction, that of the request that created it, which is
//! where §18.2.2 sends responses (or the connection it came on).
//!
//! Matching of requests without an RFC 3261 branch (RFC 2543 peers, §17.2.3 second half) is
//! done on Request-URI, From tag, Call-ID, CSeq number, top Via and method; the To tag is not
//! compared for requests other than ACK, for which it must equal the To tag of the response
//! the transaction sent.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::Instant;

use bytes::Bytes;
use vouch_msg::{Message, Method};

use super::build::cancel_for;
use super::config::{Reliability, Timer, TransactionConfig};
use super::key::{ClientTransactionKey, ServerTransactionKey, TransactionKey};
use super::{
    ClientEvent, InviteClientState, InviteClientTransaction, InviteServerState,
    InviteServerTransaction, NonInviteClientState, NonInviteClientTransaction,
    NonInviteServerState, NonInviteServerTransaction, ServerEvent,
};
use crate::Error;

/// A message for the transport to send.
#[derive(Debug, Clone)]
pub struct Transmit<R> {
    /// The transaction that sent it (report a send failure with
    /// [`TransactionLayer::handle_transport_error`]).
    pub key: TransactionKey,
    /// Where to: the `remote` the transaction was created with.
    pub remote: R,
    /// The message as it goes on the wire: first sends and retransmissions alike are handed
    /// over as bytes, so a retransmission costs no parse.
    pub bytes: Bytes,
}

/// What the transaction layer tells the transaction user (UA core or proxy core).
#[derive(Debug, Clone)]
pub enum TransactionEvent<R> {
    /// A new request created a server transaction; answer it with
    /// [`TransactionLayer::respond`]. For a CANCEL, `cancels` names the INVITE server
    /// transaction it matches (§9.2), if one is live.
    Request {
        /// The new server transaction.
        key: ServerTransactionKey,
        /// The request.
        request: Message,
        /// Where it came from.
        remote: R,
        /// For CANCEL: the INVITE server transaction with the same branch and sent-by.
        cancels: Option<ServerTransactionKey>,
    },
    /// A response for a client transaction: every provisional, the first final, and every 2xx
    /// while the INVITE client transaction is Accepted (RFC 6026).
    Response {
        /// The client transaction.
        key: ClientTransactionKey,
        /// The response.
        response: Message,
    },
    /// An ACK that matched an INVITE server transaction in the Accepted state (RFC 6026 §7.1).
    Ack {
        /// The INVITE server transaction.
        key: ServerTransactionKey,
        /// The ACK.
        ack: Message,
    },
    /// A response that matched no client transaction (§18.1.2).
    StrayResponse {
        /// The response.
        response: Message,
        /// Where it came from.
        remote: R,
    },
    /// An ACK that matched no server transaction: the ACK for a 2xx (§13.3.1.4, §17.1.1.3).
    StrayAck {
        /// The ACK.
        ack: Message,
        /// Where it came from.
        remote: R,
    },
    /// Timer B, F or H fired.
    Timeout {
        /// The transaction.
        key: TransactionKey,
        /// Which timer.
        timer: Timer,
    },
    /// The transport failed for this transaction (§17.1.4, §17.2.4).
    TransportError {
        /// The transaction.
        key: TransactionKey,
    },
    /// The transaction reached Terminated and was removed from the table.
    Terminated {
        /// The transaction.
        key: TransactionKey,
    },
}

/// The state of any transaction in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionState {
    /// An [`InviteClientTransaction`].
    InviteClient(InviteClientState),
    /// A [`NonInviteClientTransaction`].
    NonInviteClient(NonInviteClientState),
    /// An [`InviteServerTransaction`].
    InviteServer(InviteServerState),
    /// A [`NonInviteServerTransaction`].
    NonInviteServer(NonInviteServerState),
}

#[derive(Debug)]
enum Machine {
    InviteClient(InviteClientTransaction),
    NonInviteClient(NonInviteClientTransaction),
    InviteServer(InviteServerTransaction),
    NonInviteServer(NonInviteServerTransaction),
}

enum MachineEvent {
    Client(ClientEvent),
    Server(ServerEvent),
}

impl Machine {
    fn poll_transmit(&mut self) -> Option<Bytes> {
        match self {
            Machine::InviteClient(t) => t.poll_transmit_bytes(),
            Machine::NonInviteClient(t) => t.poll_transmit_bytes(),
            Machine::InviteServer(t) => t.poll_transmit_bytes(),
            Machine::NonInviteServer(t) => t.poll_transmit_bytes(),
        }
    }

    fn poll_event(&mut self) -> Option<MachineEvent> {
        match self {
            Machine::InviteClient(t) => t.poll_event().map(MachineEvent::Client),
            Machine::NonInviteClient(t) => t.poll_event().map(MachineEvent::Client),
            Machine::InviteServer(t) => t.poll_event().map(MachineEvent::Server),
            Machine::NonInviteServer(t) => t.poll_event().map(MachineEvent::Server),
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        match self {
            Machine::InviteClient(t) => t.poll_timeout(),
            Machine::NonInviteClient(t) => t.poll_timeout(),
            Machine::InviteServer(t) => t.poll_timeout(),
            Machine::NonInviteServer(t) => t.poll_timeout(),
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        match self {
            Machine::InviteClient(t) => t.handle_timeout(now),
            Machine::NonInviteClient(t) => t.handle_timeout(now),
            Machine::InviteServer(t) => t.handle_timeout(now),
            Machine::NonInviteServer(t) => t.handle_timeout(now),
        }
    }

    fn handle_transport_error(&mut self, now: Instant) {
        match self {
            Machine::InviteClient(t) => t.handle_transport_error(now),
            Machine::NonInviteClient(t) => t.handle_transport_error(now),
            Machine::InviteServer(t) => t.handle_transport_error(now),
            Machine::NonInviteServer(t) => t.handle_transport_error(now),
        }
    }

    fn is_terminated(&self) -> bool {
        match self {
            Machine::InviteClient(t) => t.is_terminated(),
            Machine::NonInviteClient(t) => t.is_terminated(),
            Machine::InviteServer(t) => t.is_terminated(),
            Machine::NonInviteServer(t) => t.is_terminated(),
        }
    }

    fn state(&self) -> TransactionState {
        match self {
            Machine::InviteClient(t) => TransactionState::InviteClient(t.state()),
            Machine::NonInviteClient(t) => TransactionState::NonInviteClient(t.state()),
            Machine::InviteServer(t) => TransactionState::InviteServer(t.state()),
            Machine::NonInviteServer(t) => TransactionState::NonInviteServer(t.state()),
        }
    }

    fn request(&self) -> Option<&Message> {
        match self {
            Machine::InviteClient(t) => t.request(),
            Machine::NonInviteClient(t) => t.request(),
            Machine::InviteServer(t) => t.request(),
            Machine::NonInviteServer(t) => t.request(),
        }
    }
}

#[derive(Debug)]
struct Entry<R> {
    key: TransactionKey,
    remote: R,
    machine: Machine,
    /// The deadline this entry has in the timer index.
    scheduled: Option<Instant>,
}

/// The table of live transactions and the matching rules of RFC 3261 §17.1.3 and §17.2.3.
///
/// `R` is the driver's notion of where a message came from or goes to.
#[derive(Debug)]
pub struct TransactionLayer<R> {
    config: TransactionConfig,
    next_id: u64,
    /// Boxed so the table's rehash, as it doubles under load, moves pointers rather than
    /// whole transactions (it stalled the event loop for tens of ms at 2,000 calls/s).
    entries: HashMap<u64, Box<Entry<R>>>,
    clients: HashMap<ClientTransactionKey, u64>,
    servers: HashMap<ServerTransactionKey, u64>,
    timers: BTreeSet<(Instant, u64)>,
    transmits: VecDeque<Transmit<R>>,
    events: VecDeque<TransactionEvent<R>>,
}

impl<R: Clone> TransactionLayer<R> {
    /// An empty table; every transaction it creates uses `config`.
    pub fn new(config: TransactionConfig) -> Self {
        TransactionLayer {
            config,
            next_id: 0,
            entries: HashMap::new(),
            clients: HashMap::new(),
            servers: HashMap::new(),
            timers: BTreeSet::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The timer settings.
    pub fn config(&self) -> &TransactionConfig {
        &self.config
    }

    /// Number of live transactions.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no transaction is live.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The state of a live transaction.
    pub fn state(&self, key: &TransactionKey) -> Option<TransactionState> {
        self.entry(key).map(|e| e.machine.state())
    }

    /// The request that created a live transaction (e.g. the INVITE to answer 487 after a
    /// CANCEL, §9.2), while the transaction still needs it: a server transaction drops it
    /// with its final response, a client transaction once a final response came (nothing in
    /// RFC 3261 reads it after that). `None` afterwards and for an unknown key.
    pub fn request(&self, key: &TransactionKey) -> Option<&Message> {
        self.entry(key).and_then(|e| e.machine.request())
    }

    fn entry(&self, key: &TransactionKey) -> Option<&Entry<R>> {
        let id = match key {
            TransactionKey::Client(k) => self.clients.get(k),
            TransactionKey::Server(k) => self.servers.get(k),
        }?;
        self.entries.get(id).map(|e| &**e)
    }

    /// A message from the transport. `remote` says where it came from; `reliability` is that
    /// of the transport it came on (it sets the timers of a server transaction created for
    /// it). Responses go to their client transaction or up as [`TransactionEvent::StrayResponse`];
    /// requests to their server transaction, to a new one, or — an ACK matching none — up as
    /// [`TransactionEvent::StrayAck`].
    pub fn handle_receive(
        &mut self,
        now: Instant,
        message: Message,
        remote: R,
        reliability: Reliability,
    ) {
        if message.is_request() {
            self.receive_request(now, message, remote, reliability);
        } else {
            self.receive_response(now, message, remote);
        }
    }

    fn receive_response(&mut self, now: Instant, response: Message, remote: R) {
        let id = ClientTransactionKey::for_response(&response).and_then(|k| self.clients.get(&k));
        let Some(&id) = id else {
            self.events
                .push_back(TransactionEvent::StrayResponse { response, remote });
            return;
        };
        if let Some(e) = self.entries.get_mut(&id) {
            match &mut e.machine {
                Machine::InviteClient(t) => t.handle_response(now, response),
                Machine::NonInviteClient(t) => t.handle_response(now, response),
                Machine::InviteServer(_) | Machine::NonInviteServer(_) => {}
            }
        }
        self.drain(id);
    }

    fn receive_request(
        &mut self,
        now: Instant,
        request: Message,
        remote: R,
        reliability: Reliability,
    ) {
        let Some(method) = request.method() else {
            return;
        };
        let Some(key) = ServerTransactionKey::for_request(&request) else {
            // A parsed request always has a Via; nothing sensible to do otherwise.
            return;
        };
        let is_ack = method == Method::Ack;
        if let Some(&id) = self.servers.get(&key) {
            let Some(e) = self.entries.get_mut(&id) else {
                return;
            };
            match &mut e.machine {
                Machine::InviteServer(t) => {
                    // §17.2.3, RFC 2543 ACK: its To tag must be that of the response sent.
                    let tag_ok =
                        key.is_rfc3261() || !is_ack || t.last_response_to_tag() == request.to_tag();
                    if !tag_ok {
                        self.events.push_back(TransactionEvent::StrayAck {
                            ack: request,
                            remote,
                        });
                        return;
                    }
                    t.handle_request(now, request);
                }
                Machine::NonInviteServer(t) => t.handle_request(now, request),
                Machine::InviteClient(_) | Machine::NonInviteClient(_) => {}
            }
            self.drain(id);
            return;
        }
        if is_ack {
            self.events.push_back(TransactionEvent::StrayAck {
                ack: request,
                remote,
            });
            return;
        }
        let machine = if method == Method::Invite {
            InviteServerTransaction::new(now, request.clone(), reliability, self.config)
                .map(Machine::InviteServer)
        } else {
            NonInviteServerTransaction::new(now, request.clone(), reliability, self.config)
                .map(Machine::NonInviteServer)
        };
        let Ok(machine) = machine else {
            return;
        };
        let cancels = if method == Method::Cancel {
            ServerTransactionKey::for_cancelled_invite(&request)
                .filter(|k| self.servers.contains_key(k))
        } else {
            None
        };
        let id = self.insert(TransactionKey::Server(key.clone()), remote.clone(), machine);
        self.events.push_back(TransactionEvent::Request {
            key,
            request,
            remote,
            cancels,
        });
        self.drain(id);
    }

    /// Starts a client transaction for `request` towards `remote` over a transport of the given
    /// reliability (§17.1). The request's top Via must carry an RFC 3261 branch unique to this
    /// transaction; ACK is refused (an ACK for a 2xx goes straight to the transport, the ACK
    /// for a non-2xx is generated by the INVITE client transaction).
    pub fn send_request(
        &mut self,
        now: Instant,
        request: Message,
        remote: R,
        reliability: Reliability,
    ) -> Result<ClientTransactionKey, Error> {
        let method = request.method().ok_or(Error::NotARequest)?;
        if method == Method::Ack {
            return Err(Error::AckIsNotATransaction);
        }
        if !request.top_via().is_some_and(|v| v.has_rfc3261_branch()) {
            return Err(Error::MissingBranch);
        }
        let key = ClientTransactionKey::for_request(&request).ok_or(Error::MissingBranch)?;
        if self.clients.contains_key(&key) {
            return Err(Error::DuplicateTransaction {
                branch: key.branch().to_owned(),
                method: key.method().as_str().to_owned(),
            });
        }
        let machine = if method == Method::Invite {
            Machine::InviteClient(InviteClientTransaction::new(
                now,
                request,
                reliability,
                self.config,
            )?)
        } else {
            Machine::NonInviteClient(NonInviteClientTransaction::new(
                now,
                request,
                reliability,
                self.config,
            )?)
        };
        let id = self.insert(TransactionKey::Client(key.clone()), remote, machine);
        self.drain(id);
        Ok(key)
    }

    /// Cancels a pending INVITE (§9.1): builds the CANCEL from the INVITE and sends it in its
    /// own non-INVITE client transaction to the same `remote`. Refused before a provisional
    /// response ([`Error::CancelTooEarly`]: try again on the first 1xx) and after a final one.
    pub fn cancel(
        &mut self,
        now: Instant,
        invite: &ClientTransactionKey,
    ) -> Result<ClientTransactionKey, Error> {
        let id = self.clients.get(invite).ok_or(Error::NoSuchTransaction)?;
        let e = self.entries.get(id).ok_or(Error::NoSuchTransaction)?;
        let Machine::InviteClient(t) = &e.machine else {
            return Err(Error::WrongTransaction(
                "only an INVITE client transaction can be cancelled",
            ));
        };
        match t.state() {
            InviteClientState::Calling => return Err(Error::CancelTooEarly),
            InviteClientState::Proceeding => {}
            _ => return Err(Error::NothingToCancel),
        }
        let cancel = cancel_for(t.request().ok_or(Error::NothingToCancel)?)?;
        let (remote, reliability) = (e.remote.clone(), t.reliability());
        self.send_request(now, cancel, remote, reliability)
    }

    /// A response from the TU for a server transaction (§17.2.1, §17.2.2). Refused (and not
    /// sent) if the transaction is gone or its state does not allow it.
    pub fn respond(
        &mut self,
        now: Instant,
        key: &ServerTransactionKey,
        response: Message,
    ) -> Result<(), Error> {
        let &id = self.servers.get(key).ok_or(Error::NoSuchTransaction)?;
        let e = self.entries.get_mut(&id).ok_or(Error::NoSuchTransaction)?;
        match &mut e.machine {
            Machine::InviteServer(t) => t.send_response(now, response)?,
            Machine::NonInviteServer(t) => t.send_response(now, response)?,
            Machine::InviteClient(_) | Machine::NonInviteClient(_) => {
                return Err(Error::WrongTransaction(
                    "a client transaction cannot respond",
                ));
            }
        }
        self.drain(id);
        Ok(())
    }

    /// The transport could not send a message of this transaction (§17.1.4, §17.2.4).
    pub fn handle_transport_error(&mut self, now: Instant, key: &TransactionKey) {
        let id = match key {
            TransactionKey::Client(k) => self.clients.get(k),
            TransactionKey::Server(k) => self.servers.get(k),
        };
        let Some(&id) = id else {
            return;
        };
        if let Some(e) = self.entries.get_mut(&id) {
            e.machine.handle_transport_error(now);
        }
        self.drain(id);
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<u64> = self
            .timers
            .iter()
            .take_while(|&&(at, _)| at <= now)
            .map(|&(_, id)| id)
            .collect();
        for id in due {
            if let Some(e) = self.entries.get_mut(&id) {
                e.machine.handle_timeout(now);
            }
            self.drain(id);
        }
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit<R>> {
        self.transmits.pop_front()
    }

    /// The next event for the TU.
    pub fn poll_event(&mut self) -> Option<TransactionEvent<R>> {
        self.events.pop_front()
    }

    /// When [`Self::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|&(at, _)| at)
    }

    fn insert(&mut self, key: TransactionKey, remote: R, machine: Machine) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        match &key {
            TransactionKey::Client(k) => self.clients.insert(k.clone(), id),
            TransactionKey::Server(k) => self.servers.insert(k.clone(), id),
        };
        self.entries.insert(
            id,
            Box::new(Entry {
                key,
                remote,
                machine,
                scheduled: None,
            }),
        );
        id
    }

    /// Moves a transaction's outputs to the layer's queues, reschedules it, and removes it
    /// once Terminated.
    fn drain(&mut self, id: u64) {
        let Some(e) = self.entries.get_mut(&id) else {
            return;
        };
        while let Some(bytes) = e.machine.poll_transmit() {
            self.transmits.push_back(Transmit {
                key: e.key.clone(),
                remote: e.remote.clone(),
                bytes,
            });
        }
        while let Some(ev) = e.machine.poll_event() {
            let event = match (ev, &e.key) {
                (
                    MachineEvent::Client(ClientEvent::Response(response)),
                    TransactionKey::Client(k),
                ) => TransactionEvent::Response {
                    key: k.clone(),
                    response,
                },
                (MachineEvent::Server(ServerEvent::Ack(ack)), TransactionKey::Server(k)) => {
                    TransactionEvent::Ack {
                        key: k.clone(),
                        ack,
                    }
                }
                (
                    MachineEvent::Client(ClientEvent::Timeout(timer))
                    | MachineEvent::Server(ServerEvent::Timeout(timer)),
                    key,
                ) => TransactionEvent::Timeout {
                    key: key.clone(),
                    timer,
                },
                (
                    MachineEvent::Client(ClientEvent::TransportError)
                    | MachineEvent::Server(ServerEvent::TransportError),
                    key,
                ) => TransactionEvent::TransportError { key: key.clone() },
                // A client event on a server key or the reverse cannot be built.
                _ => continue,
            };
            self.events.push_back(event);
        }
        let next = e.machine.poll_timeout();
        if next != e.scheduled {
            if let Some(old) = e.scheduled {
                self.timers.remove(&(old, id));
            }
            if let Some(at) = next {
                self.timers.insert((at, id));
            }
            e.scheduled = next;
        }
        if e.machine.is_terminated() {
            self.remove(id);
        }
    }

    /// Removes a transaction from the table and reports it Terminated.
    fn remove(&mut self, id: u64) {
        if let Some(e) = self.entries.remove(&id) {
            if let Some(at) = e.scheduled {
                self.timers.remove(&(at, id));
            }
            match &e.key {
                TransactionKey::Client(k) => self.clients.remove(k),
                TransactionKey::Server(k) => self.servers.remove(k),
            };
            self.events
                .push_back(TransactionEvent::Terminated { key: e.key });
        }
    }

    /// Destroys a client transaction the TU gives up on: an INVITE that got no final response
    /// 64·T1 after its CANCEL (RFC 3261 §9.1: "the client SHOULD then consider the transaction
    /// cancelled and destroy it"), which would otherwise stay in Proceeding for ever. A later
    /// response to it is a stray response. Returns false when there is no such transaction.
    pub fn abandon(&mut self, key: &ClientTransactionKey) -> bool {
        match self.clients.get(key) {
            Some(&id) => {
                self.remove(id);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::transaction::testutil::*;
    use bytes::Bytes;

    /// A request as the driver hands it over, and a second handle on its datagram: once
    /// every holder of the request is gone, that handle is the only one.
    fn received(method: &str, branch: &str) -> (Message, Bytes) {
        let m = request(method, branch);
        let bytes = m.as_bytes().clone();
        (m, bytes)
    }

    fn new_server(
        layer: &mut TransactionLayer<u8>,
        t0: Instant,
        m: Message,
    ) -> (ServerTransactionKey, Message) {
        layer.handle_receive(t0, m, 1, Reliability::Unreliable);
        let key = std::iter::from_fn(|| layer.poll_event())
            .find_map(|e| match e {
                TransactionEvent::Request { key, request, .. } => Some((key, request)),
                _ => None,
            })
            .unwrap();
        while layer.poll_transmit().is_some() {}
        key
    }

    #[test]
    fn completed_non_invite_server_transaction_releases_the_request() {
        let t0 = t0();
        let mut layer = TransactionLayer::new(cfg());
        let (m, datagram) = received("REGISTER", "z9hG4bKreg1");
        let (key, request) = new_server(&mut layer, t0, m);
        let tkey = TransactionKey::Server(key.clone());
        assert!(layer.request(&tkey).is_some(), "Trying: still answerable");
        let ok = respond(&request, 200);
        drop(request);
        assert!(!datagram.is_unique(), "Trying holds the request");
        layer.respond(t0, &key, ok.clone()).unwrap();
        let first = layer.poll_transmit().unwrap();
        assert_eq!(&first.bytes, ok.as_bytes());
        drop(first);
        assert_eq!(
            layer.state(&tkey),
            Some(TransactionState::NonInviteServer(
                NonInviteServerState::Completed
            ))
        );
        assert!(layer.request(&tkey).is_none());
        assert!(
            datagram.is_unique(),
            "a Completed non-INVITE server transaction must not hold the request"
        );
        // The retransmitted request still gets the 200, byte for byte, and nothing is parsed
        // to send it.
        let (again, _) = received("REGISTER", "z9hG4bKreg1");
        let parsed = super::super::REPARSES.with(std::cell::Cell::get);
        layer.handle_receive(t0 + ms_(900), again, 1, Reliability::Unreliable);
        let resent = layer.poll_transmit().unwrap();
        assert_eq!(&resent.bytes, ok.as_bytes());
        assert_eq!(super::super::REPARSES.with(std::cell::Cell::get), parsed);
        assert!(layer.poll_transmit().is_none());
    }

    #[test]
    fn invite_server_transaction_releases_the_invite_with_its_final_response() {
        for status in [486, 200] {
            let t0 = t0();
            let mut layer = TransactionLayer::new(cfg());
            let (m, datagram) = received("INVITE", "z9hG4bKinv1");
            let (key, request) = new_server(&mut layer, t0, m);
            let final_response = respond(&request, status);
            drop(request);
            layer.respond(t0, &key, final_response.clone()).unwrap();
            while layer.poll_transmit().is_some() {}
            assert!(datagram.is_unique(), "{status}: the INVITE is released");
            let tkey = TransactionKey::Server(key);
            assert!(layer.request(&tkey).is_none());
            if status == 486 {
                // Timer G still retransmits the same bytes.
                layer.handle_timeout(t0 + ms_(500));
                let resent = layer.poll_transmit().unwrap();
                assert_eq!(&resent.bytes, final_response.as_bytes());
            }
        }
    }

    #[test]
    fn client_transactions_release_the_request_with_a_final_response() {
        for (method, status) in [("OPTIONS", 200), ("INVITE", 486), ("INVITE", 200)] {
            let t0 = t0();
            let mut layer = TransactionLayer::new(cfg());
            let (m, datagram) = received(method, "z9hG4bKcli1");
            let response = respond(&m, status);
            let key = layer
                .send_request(t0, m, 1, Reliability::Unreliable)
                .unwrap();
            while layer.poll_transmit().is_some() {}
            assert!(!datagram.is_unique());
            layer.handle_receive(t0 + ms_(50), response.clone(), 1, Reliability::Unreliable);
            let acks: Vec<_> = std::iter::from_fn(|| layer.poll_transmit()).collect();
            assert!(
                datagram.is_unique(),
                "{method} {status}: the request is released"
            );
            assert!(layer.request(&TransactionKey::Client(key)).is_none());
            if status == 486 {
                // Completed (Timer D): the retransmitted 486 gets the same ACK again.
                assert_eq!(acks.len(), 1);
                layer.handle_receive(t0 + ms_(600), response, 1, Reliability::Unreliable);
                let again = layer.poll_transmit().unwrap();
                assert_eq!(again.bytes, acks[0].bytes);
            }
        }
    }
}
