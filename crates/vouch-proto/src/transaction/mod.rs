//! The transaction layer, RFC 3261 §17, with the RFC 6026 corrections ("Accepted" state,
//! Timers L and M).
//!
//! Four state machines, one per file, each a sans-IO object: inputs are `handle_*` calls that
//! take the current time as an argument, outputs are drained with `poll_transmit`,
//! `poll_event` and `poll_timeout`. Nothing here reads a clock or touches a socket.
//!
//! - [`InviteClientTransaction`] — §17.1.1 (Timers A, B, D) and RFC 6026 §7.2 (Timer M);
//! - [`NonInviteClientTransaction`] — §17.1.2 (Timers E, F, K);
//! - [`InviteServerTransaction`] — §17.2.1 (Timers G, H, I) and RFC 6026 §7.1 (Timer L);
//! - [`NonInviteServerTransaction`] — §17.2.2 (Timer J).
//!
//! [`TransactionLayer`] owns many of them, matches incoming messages to them (§17.1.3,
//! §17.2.3), creates server transactions for new requests and hands everything that matches
//! no transaction — stray responses, the ACK for a 2xx — to the transaction user (§17.1.1.3,
//! §13.3.1.4, §18.1.2).
//!
//! Not done here, by design: choosing a destination and transport (RFC 3263, §18.1.1) and
//! checking that a response's sent-by is ours (§18.1.2) belong to the driver; the ACK for a 2xx
//! and 2xx retransmission (§13.2.2.4, §13.3.1.4) belong to the UA core.

mod build;
mod config;
mod invite_client;
mod invite_server;
mod key;
mod layer;
mod non_invite_client;
mod non_invite_server;
#[cfg(test)]
mod testutil;

pub use build::{ack_for, cancel_for, response_for, response_with};
pub use config::{DEFAULT_TIMER_C, Reliability, Timer, TransactionConfig, TryingPolicy};
pub use invite_client::{InviteClientState, InviteClientTransaction};
pub use invite_server::{InviteServerState, InviteServerTransaction};
pub use key::{ClientTransactionKey, ServerTransactionKey, TransactionKey};
pub use layer::{TransactionEvent, TransactionLayer, TransactionState, Transmit};
pub use non_invite_client::{NonInviteClientState, NonInviteClientTransaction};
pub use non_invite_server::{NonInviteServerState, NonInviteServerTransaction};

use std::collections::VecDeque;

use bytes::Bytes;
use vouch_msg::{Limits, Message, Method, Transport};

use crate::error::Error;

/// A method name kept after the message it came from is dropped: the methods `vouch-msg`
/// names cost no allocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MethodName {
    Known(Method<'static>),
    Other(Box<str>),
}

impl MethodName {
    pub(crate) fn of(method: Method<'_>) -> Self {
        match method.to_static() {
            Some(known) => MethodName::Known(known),
            None => MethodName::Other(method.as_str().into()),
        }
    }

    pub(crate) fn method(&self) -> Method<'_> {
        match self {
            MethodName::Known(m) => *m,
            MethodName::Other(s) => Method::Other(s),
        }
    }
}

/// The next message of a transaction's transmit queue. Once `done` (the transaction keeps no
/// parsed message any more) an emptied queue gives its buffer back — a message's worth per
/// slot — for the rest of the transaction's life; a later retransmission allocates briefly.
pub(crate) fn pop_transmit(queue: &mut VecDeque<Bytes>, done: bool) -> Option<Bytes> {
    let m = queue.pop_front();
    if done && queue.is_empty() && queue.capacity() > 0 {
        *queue = VecDeque::new();
    }
    m
}

/// No limits, for what the transaction layer makes only from messages that already passed
/// the endpoint's limits: a kept message parsed again; 100 Trying, ACK, CANCEL and a plain
/// response, which copy fields of an admitted message. Nothing is left to check, and the
/// layer does not know the configured limits — the defaults refused every copy of a message
/// admitted above them.
pub(crate) const ADMITTED: Limits = Limits {
    max_message_size: usize::MAX,
    max_headers: usize::MAX,
    max_line_length: usize::MAX,
    max_vias: usize::MAX,
};

/// The message back from bytes a transaction queued to send, for a caller of a transaction's
/// own `poll_transmit` (the layer hands the transport the bytes and parses nothing). The
/// bytes are [`Message::as_bytes`] of a message that parsed, which `vouch-msg` trims to
/// exactly the message, so they parse again: as a datagram (framing by Content-Length when
/// present) and under [`ADMITTED`].
pub(crate) fn reparse(bytes: &Bytes) -> Option<Message> {
    #[cfg(test)]
    REPARSES.with(|n| n.set(n.get() + 1));
    let m = Message::parse_with(bytes.clone(), &ADMITTED, Transport::Datagram);
    debug_assert!(m.is_ok(), "bytes of a parsed message parse again");
    m.ok()
}

#[cfg(test)]
thread_local! {
    /// How often this thread parsed queued bytes back into a message.
    pub(crate) static REPARSES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// What a client transaction tells its transaction user.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // short-lived, moved once; boxing would only add an allocation
pub enum ClientEvent {
    /// A response to pass up: every provisional, the first final, and (in the RFC 6026
    /// Accepted state) every 2xx, retransmissions and other forks included.
    Response(Message),
    /// Timer B or Timer F fired: no final response came (§17.1.1.2, §17.1.2.2).
    Timeout(Timer),
    /// The transport reported a failure sending the request or ACK (§17.1.4).
    TransportError,
}

/// What a server transaction tells its transaction user.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // short-lived, moved once; boxing would only add an allocation
pub enum ServerEvent {
    /// An ACK that matched an INVITE server transaction in the RFC 6026 Accepted state.
    Ack(Message),
    /// Timer H fired: the ACK for a non-2xx final response never came (§17.2.1).
    Timeout(Timer),
    /// The transport reported a failure sending a response (§17.2.4).
    TransportError,
}

/// The request an INVITE transaction is created for must be an INVITE.
pub(crate) fn require_invite(request: &Message, transaction: &'static str) -> Result<(), Error> {
    match request.method() {
        Some(Method::Invite) => Ok(()),
        Some(m) => Err(Error::WrongMethod {
            method: m.as_str().to_owned(),
            transaction,
        }),
        None => Err(Error::NotARequest),
    }
}

/// The request a non-INVITE transaction is created for must be neither INVITE nor ACK
/// (ACK has no transaction of its own, §17).
pub(crate) fn require_non_invite(
    request: &Message,
    transaction: &'static str,
) -> Result<(), Error> {
    match request.method() {
        Some(Method::Ack) => Err(Error::AckIsNotATransaction),
        Some(Method::Invite) => Err(Error::WrongMethod {
            method: "INVITE".to_owned(),
            transaction,
        }),
        Some(_) => Ok(()),
        None => Err(Error::NotARequest),
    }
}
