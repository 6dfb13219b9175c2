//! The errors of the engine. A peer's fault never surfaces here (a malformed or unexpected
//! message is ignored or reported as an event); these are local misuse by the layer above.

/// What went wrong when the transaction user asked the engine to do something.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A request was needed, a response was given.
    #[error("expected a request")]
    NotARequest,
    /// A response was needed, a request was given.
    #[error("expected a response")]
    NotAResponse,
    /// The request method cannot start this kind of transaction.
    #[error("a {method} request cannot start a {transaction}")]
    WrongMethod {
        /// The method of the request.
        method: String,
        /// The transaction type that refused it.
        transaction: &'static str,
    },
    /// ACK is never sent through a client transaction (RFC 3261 §17.1.1.3, §13.2.2.4).
    #[error("ACK is not a transaction: send the ACK for a 2xx directly to the transport")]
    AckIsNotATransaction,
    /// The request's top Via has no branch starting with the RFC 3261 magic cookie (§8.1.1.7).
    #[error("the top Via has no RFC 3261 branch (z9hG4bK…)")]
    MissingBranch,
    /// A client transaction with the same branch and method exists already (§17.1.3).
    #[error("a transaction with branch {branch} and method {method} already exists")]
    DuplicateTransaction {
        /// The branch.
        branch: String,
        /// The method.
        method: String,
    },
    /// No live transaction has this key (it may have terminated).
    #[error("no such transaction")]
    NoSuchTransaction,
    /// The key names a transaction of the other role, or of the other kind.
    #[error("the transaction cannot do this: {0}")]
    WrongTransaction(&'static str),
    /// The response's CSeq method differs from the transaction's method.
    #[error("response for {found} passed to a {expected} transaction")]
    MethodMismatch {
        /// The transaction's method.
        expected: String,
        /// The response's CSeq method.
        found: String,
    },
    /// The response's top Via branch differs from the request's (§8.2.6.2: Via is copied).
    #[error("the response's top Via branch differs from the request's")]
    BranchMismatch,
    /// The transaction's state does not accept this response from the TU (e.g. a second final
    /// response, §17.2.1, §17.2.2).
    #[error("a {status} response is not allowed in state {state}")]
    ResponseNotAllowed {
        /// The status code the TU passed.
        status: u16,
        /// The transaction state.
        state: &'static str,
    },
    /// CANCEL before any provisional response (RFC 3261 §9.1: the client must wait).
    #[error("no provisional response yet: CANCEL must wait (RFC 3261 §9.1)")]
    CancelTooEarly,
    /// The INVITE already has its final response; there is nothing to cancel (§9.1).
    #[error("the INVITE has a final response: nothing to cancel")]
    NothingToCancel,
    /// The digest authentication configuration cannot work.
    #[error("invalid digest configuration: {0}")]
    InvalidDigestConfig(&'static str),
    /// A generated message (ACK, CANCEL, 100 Trying) did not parse back.
    #[error("could not build {what}: {source}")]
    Build {
        /// Which message.
        what: &'static str,
        /// Why.
        #[source]
        source: vouch_msg::ParseError,
    },
}
