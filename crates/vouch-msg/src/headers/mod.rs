//! Typed readings of header values. Each parser takes the value text of one header field (as
//! [`crate::HeaderRef::value`] gives it) and borrows from it.

pub mod addr;
pub mod auth;
pub mod basic;
pub mod date;
pub mod identity;
pub mod misc;
pub mod via;

pub use addr::{Contact, NameAddr};
pub use auth::{
    AuthParamIter, AuthParams, AuthenticationInfo, Challenge, Credentials, ProxyAuthenticationInfo,
    parse_proxy_authentication_info,
};
pub use basic::{CSeq, MediaType};
pub use date::{SipDate, format_sip_date};
pub use identity::{Identity, IdentityForm, IdentityInfo, IdentityParamIter, IdentityParams};
pub use misc::{
    Event, RAck, Reason, SubState, SubscriptionState, Warning, parse_reasons, parse_rseq,
    parse_warnings,
};
pub use via::{MAGIC_COOKIE, Via};
