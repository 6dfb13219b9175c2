//! SIP methods (RFC 3261 §7.1, §27.4; RFC 3262, 3311, 3265/6665, 3428, 3515, 3903). Method
//! names are case-sensitive.

use std::fmt;

/// A request method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method<'a> {
    /// INVITE
    Invite,
    /// ACK
    Ack,
    /// BYE
    Bye,
    /// CANCEL
    Cancel,
    /// REGISTER
    Register,
    /// OPTIONS
    Options,
    /// INFO
    Info,
    /// PRACK (RFC 3262)
    Prack,
    /// UPDATE (RFC 3311)
    Update,
    /// SUBSCRIBE
    Subscribe,
    /// NOTIFY
    Notify,
    /// REFER
    Refer,
    /// MESSAGE
    Message,
    /// PUBLISH
    Publish,
    /// Any other token.
    Other(&'a str),
}

impl<'a> Method<'a> {
    /// Classifies a method token (case-sensitive, RFC 3261 §7.1).
    pub fn from_token(t: &'a str) -> Self {
        match t {
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "BYE" => Method::Bye,
            "CANCEL" => Method::Cancel,
            "REGISTER" => Method::Register,
            "OPTIONS" => Method::Options,
            "INFO" => Method::Info,
            "PRACK" => Method::Prack,
            "UPDATE" => Method::Update,
            "SUBSCRIBE" => Method::Subscribe,
            "NOTIFY" => Method::Notify,
            "REFER" => Method::Refer,
            "MESSAGE" => Method::Message,
            "PUBLISH" => Method::Publish,
            other => Method::Other(other),
        }
    }

    /// Every method this enum names, in declaration order (for tables indexed by method).
    pub const NAMED: [Method<'static>; 14] = [
        Method::Invite,
        Method::Ack,
        Method::Bye,
        Method::Cancel,
        Method::Register,
        Method::Options,
        Method::Info,
        Method::Prack,
        Method::Update,
        Method::Subscribe,
        Method::Notify,
        Method::Refer,
        Method::Message,
        Method::Publish,
    ];

    /// The method name.
    pub fn as_str(&self) -> &'a str {
        match self {
            Method::Other(s) => s,
            known => known.known_name().unwrap_or_default(),
        }
    }

    /// The same method, borrowing nothing, for the methods this enum names; `None` for
    /// [`Method::Other`]. Lets a method outlive the message it was read from without a copy.
    pub fn to_static(&self) -> Option<Method<'static>> {
        self.known_name().map(Method::from_token)
    }

    fn known_name(&self) -> Option<&'static str> {
        Some(match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Register => "REGISTER",
            Method::Options => "OPTIONS",
            Method::Info => "INFO",
            Method::Prack => "PRACK",
            Method::Update => "UPDATE",
            Method::Subscribe => "SUBSCRIBE",
            Method::Notify => "NOTIFY",
            Method::Refer => "REFER",
            Method::Message => "MESSAGE",
            Method::Publish => "PUBLISH",
            Method::Other(_) => return None,
        })
    }
}

impl fmt::Display for Method<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_methods_round_trip_and_outlive_their_text() {
        let names = [
            "INVITE",
            "ACK",
            "BYE",
            "CANCEL",
            "REGISTER",
            "OPTIONS",
            "INFO",
            "PRACK",
            "UPDATE",
            "SUBSCRIBE",
            "NOTIFY",
            "REFER",
            "MESSAGE",
            "PUBLISH",
        ];
        for name in names {
            let text = String::from(name);
            let m = Method::from_token(&text);
            assert!(!matches!(m, Method::Other(_)), "{name}");
            assert_eq!(m.as_str(), name);
            let kept = m.to_static().expect("a known method");
            drop(text);
            assert_eq!(kept.as_str(), name);
        }
        assert_eq!(Method::NAMED.map(|m| m.as_str()), names);
        let other = Method::from_token("FOO");
        assert_eq!(other.as_str(), "FOO");
        assert_eq!(other.to_static(), None);
        // Method names are case-sensitive (RFC 3261 §7.1).
        assert_eq!(Method::from_token("invite").to_static(), None);
    }
}
