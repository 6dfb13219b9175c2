//! Typed readings of header values. Each parser takes the value text of one header field (as
//! [`crate::HeaderRef::value`] gives it) and borrows from it.

pub mod addr;
pub mod auth;
pub mod basic;
pub mod via;

pub use addr::{Contact, NameAddr};
pub use auth::{
    AuthParamIter, AuthParams, AuthenticationInfo, Challenge, Credentials, ProxyAuthenticationInfo,
    parse_proxy_authentication_info,
};
pub use basic::{CSeq, MediaType};
pub use via::{MAGIC_COOKIE, Via};
