//! The location service (RFC 3261 §10, §16.5): the bindings of each address-of-record, their
//! expiry in wall-clock time, and which AoRs are known (provisioned, or registered at some
//! point) so that a lookup can tell "no such user" (404) from "not reachable now" (480).
//!
//! AoRs are keyed as `sip:user@host`: the user part unescaped (§19.1.4), the host lowercased,
//! and `sips:` folded into `sip:` (a user registered over TLS is still the same user).

use std::collections::{HashMap, HashSet};

use vouch_msg::{Uri, unescape};
// The key form is vouch-msg's, shared with the client-certificate AoRs of vouch-auth.
pub(crate) use vouch_msg::{aor_key, normalize_aor};

use crate::endpoint::Binding;

/// Most bindings one AoR may hold (more REGISTERed contacts get 503, as Kamailio's
/// `max_contacts` does).
pub(crate) const MAX_BINDINGS_PER_AOR: usize = 32;

/// URI equality for Contact comparison (RFC 3261 §19.1.4): scheme, user and password
/// case-sensitive after unescaping, host case-insensitive, port as written; the `user`,
/// `ttl`, `method`, `maddr` and `transport` parameters must match when either URI has them,
/// other parameters only when both have them; headers are ignored. Non-SIP URIs compare as
/// strings.
pub(crate) fn same_uri(a: &str, b: &str) -> bool {
    let (Ok(Uri::Sip(x)), Ok(Uri::Sip(y))) = (Uri::parse(a), Uri::parse(b)) else {
        return a == b;
    };
    if x.is_secure() != y.is_secure()
        || x.user().map(unescape) != y.user().map(unescape)
        || x.password().map(unescape) != y.password().map(unescape)
        || !x.host_str().eq_ignore_ascii_case(y.host_str())
        || x.port() != y.port()
    {
        return false;
    }
    let eq = |p: Option<&str>, q: Option<&str>| match (p, q) {
        (Some(p), Some(q)) => unescape(p).eq_ignore_ascii_case(&unescape(q)),
        (None, None) => true,
        _ => false,
    };
    for (name, value) in x.params().iter() {
        if let Some(other) = y.params().get(name) {
            if !eq(value, other) {
                return false;
            }
        } else if is_must_match(name) {
            return false;
        }
    }
    for (name, _) in y.params().iter() {
        if is_must_match(name) && x.params().get(name).is_none() {
            return false;
        }
    }
    true
}

fn is_must_match(name: &str) -> bool {
    ["user", "ttl", "method", "maddr", "transport"]
        .iter()
        .any(|m| m.eq_ignore_ascii_case(name))
}

/// The bindings of every AoR.
#[derive(Debug, Default)]
pub(crate) struct Location {
    aors: HashMap<String, Vec<Binding>>,
    known: HashSet<String>,
    /// Contact URI as registered → AoR, to reach a Contact through its registration's source.
    by_contact: HashMap<String, String>,
    /// No binding expires before this (it may be earlier than the real first expiry after a
    /// removal: an early look finds nothing and recomputes it).
    next_expiry: Option<i64>,
}

impl Location {
    /// Loads stored bindings (added to what the AoR has; a Contact already bound is kept).
    pub(crate) fn restore(&mut self, bindings: Vec<Binding>) {
        for mut b in bindings {
            b.aor = normalize_aor(&b.aor);
            self.known.insert(b.aor.clone());
            let list = self.aors.entry(b.aor.clone()).or_default();
            if list.len() < MAX_BINDINGS_PER_AOR
                && !list.iter().any(|x| same_uri(&x.contact, &b.contact))
            {
                self.by_contact.insert(b.contact.clone(), b.aor.clone());
                self.next_expiry = Some(
                    self.next_expiry
                        .map_or(b.expires_at, |t| t.min(b.expires_at)),
                );
                list.push(b);
            }
        }
    }

    /// AoRs with at least one binding, and their bindings (expired ones included until the
    /// next expiry run).
    pub(crate) fn counts(&self) -> (usize, usize) {
        (self.aors.len(), self.aors.values().map(Vec::len).sum())
    }

    /// Marks an AoR as provisioned.
    pub(crate) fn provision(&mut self, aor: &str) {
        self.known.insert(normalize_aor(aor));
    }

    /// True when the AoR is provisioned or has ever had a binding.
    pub(crate) fn is_known(&self, aor: &str) -> bool {
        self.known.contains(aor)
    }

    /// The bindings of `aor` not expired at `wall`.
    pub(crate) fn current(&self, aor: &str, wall: i64) -> Vec<Binding> {
        self.aors
            .get(aor)
            .map(|l| l.iter().filter(|b| b.expires_at > wall).cloned().collect())
            .unwrap_or_default()
    }

    /// Replaces the bindings of `aor` (the registrar commits all of a REGISTER's changes at
    /// once, §10.3 step 7).
    pub(crate) fn replace(&mut self, aor: &str, bindings: Vec<Binding>) {
        if !bindings.is_empty() {
            self.known.insert(aor.to_owned());
        }
        if let Some(old) = self.aors.get(aor) {
            for b in old {
                if self.by_contact.get(&b.contact).is_some_and(|a| a == aor) {
                    self.by_contact.remove(&b.contact);
                }
            }
        }
        for b in &bindings {
            self.by_contact.insert(b.contact.clone(), aor.to_owned());
            self.next_expiry = Some(
                self.next_expiry
                    .map_or(b.expires_at, |t| t.min(b.expires_at)),
            );
        }
        if bindings.is_empty() {
            self.aors.remove(aor);
        } else {
            self.aors.insert(aor.to_owned(), bindings);
        }
    }

    /// Removes the bindings expired at `wall`; returns the AoRs that changed with what is left.
    pub(crate) fn expire(&mut self, wall: i64) -> Vec<(String, Vec<Binding>)> {
        if self.next_expiry.is_none_or(|t| t > wall) {
            return Vec::new();
        }
        let mut changed = Vec::new();
        let index = &mut self.by_contact;
        self.aors.retain(|aor, list| {
            let before = list.len();
            list.retain(|b| {
                let keep = b.expires_at > wall;
                if !keep && index.get(&b.contact).is_some_and(|a| a == aor) {
                    index.remove(&b.contact);
                }
                keep
            });
            if list.len() != before {
                changed.push((aor.clone(), list.clone()));
            }
            !list.is_empty()
        });
        changed.sort_by(|a, b| a.0.cmp(&b.0));
        self.next_expiry = self.aors.values().flatten().map(|b| b.expires_at).min();
        changed
    }

    /// The earliest expiry of any binding, Unix seconds (perhaps earlier, never later).
    pub(crate) fn next_expiry(&self) -> Option<i64> {
        self.next_expiry
    }

    /// The source of the current binding whose Contact is exactly `contact`: an in-dialog
    /// request to a registered UA goes where its registration came from (NAT, TCP/TLS flow).
    pub(crate) fn source_for_contact(
        &self,
        contact: &str,
        wall: i64,
    ) -> Option<crate::endpoint::Peer> {
        let aor = self.by_contact.get(contact)?;
        self.aors
            .get(aor)?
            .iter()
            .find(|b| b.contact == contact && b.expires_at > wall)
            .map(|b| b.source.clone())
    }

    /// The AoR `sip:user@domain` for the first of `domains` under which `user` is known — for
    /// a Request-URI that names this server by address rather than by domain.
    pub(crate) fn find_user(&self, user: &str, domains: &[String]) -> Option<String> {
        domains
            .iter()
            .map(|d| format!("sip:{user}@{d}"))
            .find(|aor| self.is_known(aor))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn contact_comparison_follows_19_1_4() {
        assert!(same_uri(
            "sip:bob@Host.example.com",
            "sip:bob@host.example.com"
        ));
        assert!(!same_uri("sip:Bob@host", "sip:bob@host"));
        assert!(same_uri("sip:%61lice@host", "sip:alice@host"));
        assert!(!same_uri("sip:bob@host", "sip:bob@host:5060"));
        assert!(!same_uri("sip:bob@host;transport=tcp", "sip:bob@host"));
        assert!(same_uri("sip:bob@host;foo=1", "sip:bob@host"));
        assert!(!same_uri("sip:bob@host;foo=1", "sip:bob@host;foo=2"));
        assert!(!same_uri("sips:bob@host", "sip:bob@host"));
    }

    #[test]
    fn aor_key_folds_case_scheme_and_escapes() {
        let u = Uri::parse("sips:%61lice@Example.COM:5061;transport=tls").unwrap();
        assert_eq!(aor_key(u.as_sip().unwrap()), "sip:alice@example.com");
    }
}
