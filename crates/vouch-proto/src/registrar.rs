//! The registrar (RFC 3261 §10.3): processes a REGISTER whose Request-URI is one of our
//! domains against the location service and says what to answer.
//!
//! Steps as numbered in §10.3: (1) the domain check and (2) Require are done by the caller
//! (which answers 420 for unknown Require option tags, §8.2.2.3); (3)–(4) authentication and
//! authorisation are the [`crate::policy::RequestPolicy`] seam, consulted before this runs;
//! (5) the AoR is taken from To, which must be a SIP or SIPS URI (400 otherwise, RFC 4475
//! §3.3.4) of a domain we serve (404 otherwise); (6) `Contact: *` must stand alone with
//! `Expires: 0` (400 otherwise), and every Contact must be a SIP or SIPS URI (400); (7) each
//! binding is added, refreshed or removed with the Call-ID/CSeq ordering rule — a request
//! with the same Call-ID as a binding and a CSeq not higher than its CSeq fails (500) — and
//! all changes are committed only when all succeed; (8) the 200 lists every current binding
//! with its remaining `expires`.
//!
//! Intervals below `min_expires` (other than 0) are refused with 423 Interval Too Brief and
//! Min-Expires; intervals above `max_expires` are shortened. Expiry is wall-clock time, so
//! bindings survive a restart.

use vouch_msg::headers::Contact;
use vouch_msg::{Message, Uri, reason_phrase};

use crate::endpoint::{Binding, Peer};
use crate::local::Local;
use crate::location::{Location, MAX_BINDINGS_PER_AOR, aor_key, same_uri};

/// Registration intervals.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RegistrarConfig {
    pub(crate) min_expires: u32,
    pub(crate) max_expires: u32,
    pub(crate) default_expires: u32,
}

/// A REGISTER that succeeded: the AoR's bindings after it.
#[derive(Debug, Clone)]
pub(crate) struct Registered {
    pub(crate) aor: String,
    pub(crate) bindings: Vec<Binding>,
    /// True when the bindings differ from before (persist them).
    pub(crate) changed: bool,
}

/// A REGISTER that failed: the final response to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) status: u16,
    pub(crate) reason: &'static str,
    /// Extra header fields (Min-Expires).
    pub(crate) headers: Vec<(&'static str, String)>,
    /// Why, for a Warning header.
    pub(crate) why: String,
}

/// A refusal with `status`'s reason phrase.
fn refuse(status: u16, why: impl Into<String>) -> Refusal {
    Refusal {
        status,
        reason: reason_phrase(status),
        headers: Vec::new(),
        why: why.into(),
    }
}

/// One Contact of the request, read.
struct Wanted {
    contact: String,
    expires: u32,
    q: u16,
}

/// Processes a REGISTER (§10.3 steps 5–8) and commits its changes to `location`.
pub(crate) fn register(
    location: &mut Location,
    local: &Local,
    cfg: &RegistrarConfig,
    request: &Message,
    source: &Peer,
    wall: i64,
) -> Result<Registered, Refusal> {
    // Step 5: the AoR.
    let to = request.to().ok_or_else(|| refuse(400, "no To"))?;
    let Uri::Sip(to_uri) = to.uri() else {
        return Err(refuse(
            400,
            "the To of a REGISTER must be a SIP or SIPS URI",
        ));
    };
    if to_uri.user().is_none() || !local.is_ours(to_uri) {
        return Err(refuse(
            404,
            "the address-of-record is not in a domain this registrar serves",
        ));
    }
    let aor = aor_key(to_uri);

    // Step 6: the Contacts.
    let contacts = request.contacts();
    let star = contacts.iter().any(|c| matches!(c, Contact::Star));
    if star && (contacts.len() != 1 || request.expires() != Some(0)) {
        return Err(refuse(
            400,
            "Contact: * must be the only Contact and needs Expires: 0",
        ));
    }
    let header_expires = request.expires();
    let mut wanted = Vec::with_capacity(contacts.len());
    for c in &contacts {
        let Some(addr) = c.addr() else { continue };
        let Uri::Sip(uri) = addr.uri() else {
            return Err(refuse(
                400,
                format!("Contact {} is not a SIP or SIPS URI", addr.uri().as_str()),
            ));
        };
        let expires = c
            .expires()
            .or(header_expires)
            .unwrap_or(cfg.default_expires);
        if expires != 0 && expires < cfg.min_expires {
            return Err(Refusal {
                status: 423,
                reason: reason_phrase(423),
                headers: vec![("Min-Expires", cfg.min_expires.to_string())],
                why: format!("expiration {expires} s is below {} s", cfg.min_expires),
            });
        }
        wanted.push(Wanted {
            contact: uri.as_str().to_owned(),
            expires: expires.min(cfg.max_expires),
            q: c.q().unwrap_or(1000),
        });
    }

    // Step 7: update the bindings, all or nothing.
    let before = location.current(&aor, wall);
    let call_id = request.call_id();
    let cseq = request.cseq().seq;
    let out_of_order = |b: &Binding| b.call_id == call_id && cseq <= b.cseq;
    let mut after = before.clone();
    if star {
        if let Some(b) = after.iter().find(|b| out_of_order(b)) {
            return Err(refuse(
                500,
                format!("CSeq {cseq} is not higher than {} of the binding", b.cseq),
            ));
        }
        after.clear();
    }
    for w in wanted {
        let existing = after.iter().position(|b| same_uri(&b.contact, &w.contact));
        if let Some(i) = existing {
            if out_of_order(&after[i]) {
                return Err(refuse(
                    500,
                    format!(
                        "CSeq {cseq} is not higher than {} of the binding",
                        after[i].cseq
                    ),
                ));
            }
            if w.expires == 0 {
                after.remove(i);
                continue;
            }
        } else if w.expires == 0 {
            continue;
        }
        let binding = Binding {
            aor: aor.clone(),
            contact: w.contact,
            expires_at: wall.saturating_add(i64::from(w.expires)),
            q: w.q,
            call_id: call_id.to_owned(),
            cseq,
            source: source.clone(),
        };
        match existing {
            Some(i) => after[i] = binding,
            None => after.push(binding),
        }
    }
    if after.len() > MAX_BINDINGS_PER_AOR && after.len() > before.len() {
        return Err(Refusal {
            // Kamailio's phrase for its max_contacts.
            reason: "Too Many Registered Contacts",
            ..refuse(
                503,
                format!("at most {MAX_BINDINGS_PER_AOR} contacts per address-of-record"),
            )
        });
    }
    let changed = after != before;
    if changed {
        location.replace(&aor, after.clone());
    }
    Ok(Registered {
        aor,
        bindings: after,
        changed,
    })
}

/// The Contact values of the 200 (§10.3 step 8): every binding with its remaining interval.
pub(crate) fn contact_values(bindings: &[Binding], wall: i64) -> Vec<String> {
    bindings
        .iter()
        .map(|b| {
            let left = b
                .expires_at
                .saturating_sub(wall)
                .clamp(0, i64::from(u32::MAX));
            let q = if b.q < 1000 {
                format!(";q=0.{:03}", b.q)
            } else {
                String::new()
            };
            format!("<{}>;expires={left}{q}", b.contact)
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::endpoint::TransportKind;

    const CFG: RegistrarConfig = RegistrarConfig {
        min_expires: 60,
        max_expires: 3600,
        default_expires: 3600,
    };

    fn local() -> Local {
        Local::new(
            &["example.com".to_owned()],
            &[(TransportKind::Udp, "10.0.0.1:5060".parse().unwrap())],
            None,
        )
    }

    fn reg(call_id: &str, cseq: u32, extra: &str) -> Message {
        let s = format!(
            "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.9;branch=z9hG4bK{cseq}\r\nFrom: <sip:bob@example.com>;tag=a\r\nTo: <sip:bob@example.com>\r\nCall-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\nMax-Forwards: 70\r\n{extra}Content-Length: 0\r\n\r\n"
        );
        Message::parse(s.into_bytes()).unwrap()
    }

    fn peer() -> Peer {
        "udp:10.0.0.9:5060".parse().unwrap()
    }

    fn run(loc: &mut Location, m: &Message, wall: i64) -> Result<Registered, Refusal> {
        register(loc, &local(), &CFG, m, &peer(), wall)
    }

    #[test]
    fn adds_refreshes_and_removes() {
        let mut loc = Location::default();
        let r = run(
            &mut loc,
            &reg("c1", 1, "Contact: <sip:bob@10.0.0.9>\r\nExpires: 120\r\n"),
            1000,
        )
        .unwrap();
        assert!(r.changed);
        assert_eq!(r.bindings[0].expires_at, 1120);
        let r = run(
            &mut loc,
            &reg("c1", 2, "Contact: <sip:bob@10.0.0.9>;expires=300\r\n"),
            1010,
        )
        .unwrap();
        assert_eq!(r.bindings.len(), 1);
        assert_eq!(r.bindings[0].expires_at, 1310);
        let r = run(
            &mut loc,
            &reg("c1", 3, "Contact: <sip:bob@10.0.0.9>;expires=0\r\n"),
            1020,
        )
        .unwrap();
        assert!(r.bindings.is_empty());
        assert!(loc.is_known("sip:bob@example.com"));
    }

    #[test]
    fn stale_cseq_with_same_call_id_fails() {
        let mut loc = Location::default();
        run(
            &mut loc,
            &reg("c1", 5, "Contact: <sip:bob@10.0.0.9>\r\n"),
            0,
        )
        .unwrap();
        let e = run(
            &mut loc,
            &reg("c1", 5, "Contact: <sip:bob@10.0.0.9>;expires=0\r\n"),
            1,
        )
        .unwrap_err();
        assert_eq!(e.status, 500);
        // Another Call-ID may update it whatever its CSeq.
        let r = run(
            &mut loc,
            &reg("c2", 1, "Contact: <sip:bob@10.0.0.9>;expires=0\r\n"),
            1,
        )
        .unwrap();
        assert!(r.bindings.is_empty());
    }

    #[test]
    fn star_needs_expires_zero_and_no_other_contact() {
        let mut loc = Location::default();
        run(
            &mut loc,
            &reg("c1", 1, "Contact: <sip:bob@10.0.0.9>\r\n"),
            0,
        )
        .unwrap();
        assert_eq!(
            run(&mut loc, &reg("c2", 1, "Contact: *\r\n"), 1)
                .unwrap_err()
                .status,
            400
        );
        assert_eq!(
            run(
                &mut loc,
                &reg(
                    "c2",
                    1,
                    "Contact: *\r\nContact: <sip:x@h>\r\nExpires: 0\r\n"
                ),
                1
            )
            .unwrap_err()
            .status,
            400
        );
        let r = run(&mut loc, &reg("c2", 1, "Contact: *\r\nExpires: 0\r\n"), 1).unwrap();
        assert!(r.bindings.is_empty() && r.changed);
    }

    #[test]
    fn too_brief_gets_423_and_long_is_shortened() {
        let mut loc = Location::default();
        let e = run(
            &mut loc,
            &reg("c1", 1, "Contact: <sip:bob@h>;expires=30\r\n"),
            0,
        )
        .unwrap_err();
        assert_eq!(e.status, 423);
        assert_eq!(e.headers, vec![("Min-Expires", "60".to_owned())]);
        let r = run(
            &mut loc,
            &reg("c1", 2, "Contact: <sip:bob@h>\r\nExpires: 99999\r\n"),
            0,
        )
        .unwrap();
        assert_eq!(r.bindings[0].expires_at, 3600);
    }

    #[test]
    fn non_sip_to_or_contact_is_400_foreign_domain_404() {
        let mut loc = Location::default();
        let e = run(
            &mut loc,
            &reg("c1", 1, "Contact: <mailto:bob@example.com>\r\n"),
            0,
        )
        .unwrap_err();
        assert_eq!(e.status, 400);
        let s = "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.9;branch=z9hG4bKx\r\nFrom: <http://www.example.com>;tag=a\r\nTo: isbn:2983792873\r\nCall-ID: u\r\nCSeq: 1 REGISTER\r\nContact: <name:John_Smith>\r\nContent-Length: 0\r\n\r\n";
        let m = Message::parse(s.as_bytes().to_vec()).unwrap();
        assert_eq!(run(&mut loc, &m, 0).unwrap_err().status, 400);
        let s = "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.9;branch=z9hG4bKx\r\nFrom: <sip:bob@example.org>;tag=a\r\nTo: <sip:bob@example.org>\r\nCall-ID: u\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n";
        let m = Message::parse(s.as_bytes().to_vec()).unwrap();
        assert_eq!(run(&mut loc, &m, 0).unwrap_err().status, 404);
    }

    #[test]
    fn contact_values_show_remaining_time_and_q() {
        let mut loc = Location::default();
        let r = run(
            &mut loc,
            &reg("c1", 1, "Contact: <sip:bob@h>;q=0.5\r\nExpires: 600\r\n"),
            100,
        )
        .unwrap();
        assert_eq!(
            contact_values(&r.bindings, 400),
            vec!["<sip:bob@h>;expires=300;q=0.500"]
        );
    }
}
