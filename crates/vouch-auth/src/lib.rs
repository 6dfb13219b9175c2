//! Digest authentication (RFC 2617, RFC 7616, RFC 8760, draft-dotson-sip-mutual-auth) and SIP
//! identity (RFC 4474, RFC 8224). The only vouch crate that touches cryptography; it does no I/O
//! and reads no clock (time is an argument).

// Library code never unwraps; tests may.
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod client_cert;
pub mod digest;
pub mod identity;
pub mod session_cert;
