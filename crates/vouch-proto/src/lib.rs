//! The sans-IO SIP engine: transactions (RFC 3261 §17), dialogs (§12), proxy core (§16),
//! registrar (§10) and UA core. No sockets, no clock reads, no tokio: the driver feeds inputs
//! and drains outputs.
//!
//! The driver's interface is [`Endpoint`] (see [`endpoint`]). Digest authentication with
//! mutual authentication is [`auth::DigestPolicy`], installed with [`Endpoint::set_policy`]
//! and fed accounts with [`Endpoint::set_users`]. The RFC 4474 authentication service that
//! signs authenticated requests is [`AuthenticationService`]
//! ([`Endpoint::set_authentication_service`]).
//! The RFC 4474 verification service is [`VerificationService`], installed in the proxy for
//! inbound requests with [`Endpoint::set_verification_service`] and usable by any UA core.

// Library code never unwraps; tests may.
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod auth;
mod core;
pub mod endpoint;
mod error;
pub mod identity_service;
mod local;
mod location;
pub mod policy;
mod proxy;
mod registrar;
mod rng;
pub mod transaction;
pub mod ua;
pub mod users;
pub mod verification;
mod wire;

pub use endpoint::{
    Binding, Endpoint, EndpointConfig, Event, FlowId, LogLevel, Output, Peer, PeerParseError,
    ResolveId, TransportKind,
};
pub use error::Error;
pub use identity_service::AuthenticationService;
pub use users::{UserCredentials, UserDirectory};
pub use verification::{
    CertificateChain, Check, FetchId, IdentityVerdict, Refusal, Resolved, VerificationPolicy,
    VerificationService,
};
