//! The digest accounts the server authenticates (RFC 3261 §22, RFC 7616 §3.4.2): per user the
//! digest username and realm, H(username:realm:password) per algorithm — never the password —
//! and the addresses-of-record the user may put in From (or in To, registering). The driver
//! loads them from its store and hands them over with [`crate::Endpoint::set_users`]; the
//! core does no I/O.

use std::collections::{HashMap, HashSet};
use std::fmt;

use vouch_auth::digest::Algorithm;

use crate::location::normalize_aor;

/// One account, as the driver's store keeps it.
#[derive(Clone, PartialEq, Eq)]
pub struct UserCredentials {
    /// Digest username.
    pub username: String,
    /// Digest realm.
    pub realm: String,
    /// The user's own AoR, `sip:user@domain` (always allowed in From / To).
    pub aor: String,
    /// Further AoRs the user may assert in From (or register in To).
    pub may_assert: Vec<String>,
    /// H(username ":" realm ":" password) per algorithm, lowercase hex.
    pub ha1: Vec<(Algorithm, String)>,
}

impl fmt::Debug for UserCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let algorithms: Vec<&str> = self.ha1.iter().map(|(a, _)| a.token()).collect();
        f.debug_struct("UserCredentials")
            .field("username", &self.username)
            .field("realm", &self.realm)
            .field("aor", &self.aor)
            .field("may_assert", &self.may_assert)
            .field("ha1", &algorithms)
            .finish()
    }
}

/// An account as looked up: its HA1s and the AoR keys it may use.
#[derive(Clone)]
struct Account {
    ha1: Vec<(Algorithm, String)>,
    may_use: HashSet<String>,
}

/// The accounts, by realm and username.
#[derive(Clone, Default)]
pub struct UserDirectory {
    by_realm_and_name: HashMap<(String, String), Account>,
}

impl fmt::Debug for UserDirectory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserDirectory")
            .field("accounts", &self.by_realm_and_name.len())
            .finish()
    }
}

impl UserDirectory {
    /// A directory of these accounts. A later account with the same username and realm
    /// replaces an earlier one.
    pub fn new(users: Vec<UserCredentials>) -> Self {
        let mut by_realm_and_name = HashMap::with_capacity(users.len());
        for u in users {
            let mut may_use: HashSet<String> =
                u.may_assert.iter().map(|a| normalize_aor(a)).collect();
            may_use.insert(normalize_aor(&u.aor));
            by_realm_and_name.insert(
                (u.realm, u.username),
                Account {
                    ha1: u
                        .ha1
                        .into_iter()
                        .map(|(alg, h)| (alg, h.to_ascii_lowercase()))
                        .collect(),
                    may_use,
                },
            );
        }
        UserDirectory { by_realm_and_name }
    }

    /// Number of accounts.
    pub fn len(&self) -> usize {
        self.by_realm_and_name.len()
    }

    /// True when there is no account.
    pub fn is_empty(&self) -> bool {
        self.by_realm_and_name.is_empty()
    }

    fn account(&self, realm: &str, username: &str) -> Option<&Account> {
        self.by_realm_and_name
            .get(&(realm.to_owned(), username.to_owned()))
    }

    /// True when `username` has an account in `realm`.
    pub fn contains(&self, realm: &str, username: &str) -> bool {
        self.account(realm, username).is_some()
    }

    /// The stored H(A1) of `username` in `realm` for `alg`, if the account exists and has one.
    pub fn ha1(&self, realm: &str, username: &str, alg: Algorithm) -> Option<String> {
        self.account(realm, username)?
            .ha1
            .iter()
            .find(|(a, _)| *a == alg)
            .map(|(_, h)| h.clone())
    }

    /// True when the account may use `aor` (compared in the location service's key form:
    /// `sips:` folded into `sip:`, host lowercased, no port or parameters).
    pub fn may_use(&self, realm: &str, username: &str, aor: &str) -> bool {
        self.account(realm, username)
            .is_some_and(|a| a.may_use.contains(&normalize_aor(aor)))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn alice() -> UserCredentials {
        UserCredentials {
            username: "alice".to_owned(),
            realm: "example.com".to_owned(),
            aor: "sip:alice@Example.com".to_owned(),
            may_assert: vec!["sips:sales@example.com".to_owned()],
            ha1: vec![(Algorithm::Sha256, "ABCD".to_owned())],
        }
    }

    #[test]
    fn looks_up_by_realm_and_username_and_normalises_aors() {
        let d = UserDirectory::new(vec![alice()]);
        assert_eq!(
            d.ha1("example.com", "alice", Algorithm::Sha256).as_deref(),
            Some("abcd")
        );
        assert_eq!(d.ha1("example.com", "alice", Algorithm::Md5), None);
        assert_eq!(d.ha1("example.org", "alice", Algorithm::Sha256), None);
        assert!(d.may_use("example.com", "alice", "sip:alice@example.com:5060"));
        assert!(d.may_use("example.com", "alice", "sip:sales@EXAMPLE.com"));
        assert!(!d.may_use("example.com", "alice", "sip:bob@example.com"));
        assert!(!d.may_use("example.com", "mallory", "sip:alice@example.com"));
    }

    #[test]
    fn debug_does_not_show_ha1() {
        let s = format!("{:?}", alice());
        assert!(!s.contains("ABCD"), "{s}");
    }
}
