//! vouch-msg: the SIP wire format (RFC 3261 §7, §18.3, §19, §20, §25).
//!
//! Zero-copy parsing of requests and responses over [`bytes::Bytes`], keeping the exact bytes
//! of every header and of the body; typed readings of the headers a SIP security server needs;
//! builders that keep Content-Length right; and stream framing for TCP/TLS. No I/O, no clock,
//! no crypto. Every failure is a [`ParseError`] that names what, where, and the response a server
//! must send — never a panic.

// Library code never unwraps; tests may.
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

mod builder;
mod error;
mod framing;
pub mod headers;
mod limits;
mod message;
mod method;
pub mod multipart;
mod name;
mod scan;
mod status;
mod uri;
mod vector;

pub use builder::MessageBuilder;
pub use error::{ErrorKind, ParseError};
pub use framing::StreamDecoder;
pub use limits::Limits;
pub use message::{HeaderRef, Kind, Message, Transport};
pub use method::Method;
pub use name::HeaderName;
pub use scan::{ParamIter, Params, split_commas, unquote};
pub use status::reason_phrase;
pub use uri::{Host, OtherUri, SipUri, TelUri, Uri, aor_key, normalize_aor, unescape};
