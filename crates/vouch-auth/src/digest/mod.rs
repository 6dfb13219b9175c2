//! Digest authentication (RFC 2617, RFC 7616, RFC 8760 for SIP, RFC 3261 §22) with mutual
//! authentication (draft-dotson-sip-mutual-auth: Proxy-Authentication-Info).

mod client;
mod compute;
mod nonce;
mod server;

pub use client::{
    ClientAuthError, Responder, ResponderConfig, SentCredentials, ServerAuthenticated,
};
pub use compute::{Algorithm, Exchange, Qop, ha1, ha1_sess, hex};
pub use nonce::{NonceCounts, NonceSecret, NonceStatus};
pub use server::{AuthFailure, Authenticated, Challenger, ChallengerConfig, DigestUriCheck, Role};
