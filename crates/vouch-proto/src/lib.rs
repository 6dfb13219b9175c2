//! The sans-IO SIP engine: transactions (RFC 3261 §17), dialogs (§12), proxy core (§16),
//! registrar (§10) and UA core. No sockets, no clock reads, no tokio: the driver feeds inputs
//! and drains outputs.

mod error;
pub mod transaction;

pub use error::Error;
