//! The vouch driver: sockets, the one timer, stores and TLS around the sans-IO engine of
//! `vouch-proto`. This is the only crate that reads clocks and does I/O.

// Library code never unwraps; tests may.
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

mod accept;
pub mod auth;
pub mod cert_fetch;
pub mod config;
pub mod dns;
pub mod engine;
pub mod flows;
pub mod http;
pub mod identity;
pub mod metrics;
pub mod server;
pub mod store;
mod stream;
pub mod tls;
pub mod trapezoid;
pub mod ua;

pub use config::Config;
pub use flows::{FlowInfo, Flows};
pub use server::{Server, ServerError};
pub use tls::TlsContext;
