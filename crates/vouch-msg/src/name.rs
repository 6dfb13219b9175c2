//! Header field names: the ones vouch reads, their compact forms (RFC 3261 §7.3.3 and the
//! IANA registry), and case-insensitive matching (§7.3.1).

use std::fmt;

macro_rules! header_names {
    ($( $variant:ident => $canonical:literal $(, $compact:literal)? ;)*) => {
        /// A header field name. Known names are variants; anything else is [`HeaderName::Other`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum HeaderName {
            $( #[doc = $canonical] $variant, )*
            /// A header vouch has no typed reading for; kept verbatim.
            Other,
        }

        impl HeaderName {
            /// The canonical (long) name, or `None` for [`HeaderName::Other`].
            pub fn canonical(self) -> Option<&'static str> {
                match self {
                    $( HeaderName::$variant => Some($canonical), )*
                    HeaderName::Other => None,
                }
            }

            /// Classifies a name as written in a message (long or compact form, any case).
            pub fn from_wire(name: &str) -> HeaderName {
                if !name.bytes().all(crate::scan::is_token_char) {
                    return HeaderName::Other;
                }
                Self::from_wire_bytes(name.as_bytes())
            }

            /// As [`HeaderName::from_wire`], on bytes already known to form a token.
            pub(crate) fn from_wire_bytes(name: &[u8]) -> HeaderName {
                if name.len() == 1 {
                    let c = name[0].to_ascii_lowercase();
                    $( $( if c == $compact { return HeaderName::$variant; } )? )*
                    return HeaderName::Other;
                }
                // Length and first letter rule out almost every candidate before the full
                // case-insensitive comparison.
                let first = name.first().map_or(0, u8::to_ascii_lowercase);
                $( if name.len() == $canonical.len()
                    && first == $canonical.as_bytes()[0].to_ascii_lowercase()
                    && same_name(name, $canonical.as_bytes())
                {
                    return HeaderName::$variant;
                } )*
                HeaderName::Other
            }
        }
    };
}

header_names! {
    Via => "Via", b'v';
    From => "From", b'f';
    To => "To", b't';
    CallId => "Call-ID", b'i';
    CSeq => "CSeq";
    MaxForwards => "Max-Forwards";
    Contact => "Contact", b'm';
    Route => "Route";
    RecordRoute => "Record-Route";
    ContentLength => "Content-Length", b'l';
    ContentType => "Content-Type", b'c';
    ContentEncoding => "Content-Encoding", b'e';
    Expires => "Expires";
    MinExpires => "Min-Expires";
    Date => "Date";
    Require => "Require";
    Supported => "Supported", b'k';
    ProxyRequire => "Proxy-Require";
    Unsupported => "Unsupported";
    Allow => "Allow";
    RSeq => "RSeq";
    RAck => "RAck";
    Event => "Event", b'o';
    AllowEvents => "Allow-Events", b'u';
    SubscriptionState => "Subscription-State";
    Warning => "Warning";
    Reason => "Reason";
    Subject => "Subject", b's';
    WwwAuthenticate => "WWW-Authenticate";
    ProxyAuthenticate => "Proxy-Authenticate";
    Authorization => "Authorization";
    ProxyAuthorization => "Proxy-Authorization";
    AuthenticationInfo => "Authentication-Info";
    ProxyAuthenticationInfo => "Proxy-Authentication-Info";
    Identity => "Identity", b'y';
    IdentityInfo => "Identity-Info", b'n';
    ReferTo => "Refer-To", b'r';
    ReferredBy => "Referred-By", b'b';
    SessionExpires => "Session-Expires", b'x';
    UserAgent => "User-Agent";
    Server => "Server";
    Accept => "Accept";
    RetryAfter => "Retry-After";
    Path => "Path";
}

/// Case-insensitive equality for field names. Both sides are tokens (letters, digits and
/// `-.!%*_+`'~`), for which setting bit 0x20 folds case without making two tokens equal.
#[inline]
fn same_name(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x | 0x20) == (y | 0x20))
}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.canonical().unwrap_or("(extension header)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_long_compact_and_any_case() {
        assert_eq!(
            HeaderName::from_wire("MaX-fOrWaRdS"),
            HeaderName::MaxForwards
        );
        assert_eq!(HeaderName::from_wire("v"), HeaderName::Via);
        assert_eq!(HeaderName::from_wire("M"), HeaderName::Contact);
        assert_eq!(HeaderName::from_wire("y"), HeaderName::Identity);
        assert_eq!(HeaderName::from_wire("C%6Fntact"), HeaderName::Other);
        assert_eq!(
            HeaderName::from_wire("Proxy-Authentication-Info"),
            HeaderName::ProxyAuthenticationInfo
        );
    }
}
