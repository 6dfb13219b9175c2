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
            #[inline]
            pub(crate) fn from_wire_bytes(name: &[u8]) -> HeaderName {
                if let [c] = name {
                    return match COMPACT.get(usize::from(*c)) {
                        Some(&k) if k != 0 => ALL[usize::from(k - 1)].0,
                        _ => HeaderName::Other,
                    };
                }
                // Length and first letter select at most two candidates (see `slots`); one
                // case-insensitive comparison settles each.
                let Some(&first) = name.first() else {
                    return HeaderName::Other;
                };
                let Some(slot) = SLOTS.get(name.len() * 32 + usize::from(first & 0x1f)) else {
                    return HeaderName::Other;
                };
                for &k in slot {
                    if k == 0 {
                        break;
                    }
                    let (h, canonical) = ALL[usize::from(k - 1)];
                    if same_name(name, canonical.as_bytes()) {
                        return h;
                    }
                }
                HeaderName::Other
            }
        }

        /// Every known name with its canonical form, in declaration order.
        const ALL: &[(HeaderName, &str)] = &[ $( (HeaderName::$variant, $canonical), )* ];

        /// Compact forms: byte (either case) to 1 + index into `ALL`, 0 for none.
        const COMPACT: [u8; 128] = {
            let mut t = [0u8; 128];
            let mut k = 0;
            $(
                $( t[$compact as usize] = k + 1; t[($compact - 32) as usize] = k + 1; )?
                k += 1;
            )*
            let _ = k;
            t
        };

        /// Long forms by length (below 32) and first byte modulo 32: up to two entries of
        /// 1 + index into `ALL`. A third name in one slot fails the build.
        const SLOTS: [[u8; 2]; 32 * 32] = {
            let mut t = [[0u8; 2]; 32 * 32];
            let mut k = 0;
            while k < ALL.len() {
                let n = ALL[k].1.as_bytes();
                assert!(n.len() < 32);
                let i = n.len() * 32 + (n[0] & 0x1f) as usize;
                if t[i][0] == 0 {
                    t[i][0] = k as u8 + 1;
                } else {
                    assert!(t[i][1] == 0, "more than two header names share a slot");
                    t[i][1] = k as u8 + 1;
                }
                k += 1;
            }
            t
        };
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
/// Compares eight (or four) bytes per step; the last step may overlap the one before it.
#[inline]
pub(crate) fn same_name(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n >= 8 {
        let mut i = 0;
        while i + 8 < n {
            if !same_word::<8>(&a[i..], &b[i..]) {
                return false;
            }
            i += 8;
        }
        same_word::<8>(&a[n - 8..], &b[n - 8..])
    } else if n >= 4 {
        same_word::<4>(a, b) && same_word::<4>(&a[n - 4..], &b[n - 4..])
    } else {
        a.iter().zip(b).all(|(x, y)| (x ^ y) & !0x20 == 0)
    }
}

/// Case-insensitive equality of the first `N` (4 or 8) bytes of two tokens.
#[inline(always)]
fn same_word<const N: usize>(a: &[u8], b: &[u8]) -> bool {
    let (Some(x), Some(y)) = (a.first_chunk::<N>(), b.first_chunk::<N>()) else {
        return false;
    };
    let mut w = [0u8; 8];
    let mut v = [0u8; 8];
    w[..N].copy_from_slice(x);
    v[..N].copy_from_slice(y);
    (u64::from_le_bytes(w) ^ u64::from_le_bytes(v)) & 0xdfdf_dfdf_dfdf_dfdf == 0
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
