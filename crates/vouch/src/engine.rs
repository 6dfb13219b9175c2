//! The engine the driver runs: `vouch-proto`'s [`Endpoint`] and the types of its interface,
//! re-exported so the rest of this crate names them in one place.

pub use vouch_proto::endpoint::{
    Binding, Endpoint, EndpointConfig, Event, FlowId, LogLevel, Occupancy, Output, Peer, ResolveId,
    TransportKind,
};
pub use vouch_proto::transaction::{TransactionConfig, TryingPolicy};
