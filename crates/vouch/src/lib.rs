//! The vouch driver: sockets, the one timer, stores and the HTTP endpoint around the sans-IO
//! engine of `vouch-proto`.

pub mod store;
