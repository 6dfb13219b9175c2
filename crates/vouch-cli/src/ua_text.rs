//! One line of text per UA event, for `vouch ua` and `vouch demo`.

use vouch_proto::ua::UaEvent;

/// How an event reads to a person: `(good, text)`; `good` is false for refusals and failures.
/// `None` for events not worth a line.
pub fn describe(e: &UaEvent) -> Option<(bool, String)> {
    Some(match e {
        UaEvent::Registered {
            authenticated_realms,
            expires,
        } => (
            true,
            if authenticated_realms.is_empty() {
                format!("registered for {expires} s (registrar not authenticated: no rspauth)")
            } else {
                format!(
                    "registered for {expires} s; registrar's rspauth checked for {}",
                    authenticated_realms.join(", ")
                )
            },
        ),
        UaEvent::RegistrationFailed { status, reason } => {
            (false, format!("REGISTRATION FAILED {status} {reason}"))
        }
        UaEvent::ServerAuthenticated { method, realms } => (
            true,
            format!(
                "rspauth of {} checked on the {method} 200",
                realms.join(", ")
            ),
        ),
        UaEvent::ServerNotAuthenticated { method, reason, .. } => (
            false,
            format!("SERVER NOT AUTHENTICATED on {method}: {reason}"),
        ),
        UaEvent::IncomingCall {
            from, verified_aor, ..
        } => (
            true,
            match verified_aor {
                Some(aor) => format!("incoming call from {from} (identity verified: {aor})"),
                None => format!("incoming call from {from} (unsigned)"),
            },
        ),
        UaEvent::IdentityVerified {
            method,
            aor,
            signer_domain,
            ..
        } => (
            true,
            format!("Identity of {method} verified: {aor}, signed by {signer_domain}"),
        ),
        UaEvent::RequestRefused {
            method,
            status,
            reason,
            ..
        } => (false, format!("REFUSED {method} with {status}: {reason}")),
        UaEvent::BindingCreated {
            aor, fingerprint, ..
        } => (true, format!("binding created: {aor} <-> {fingerprint}")),
        UaEvent::BindingRemoved { aor, reason, .. } => {
            (true, format!("binding removed ({reason:?}): {aor}"))
        }
        UaEvent::CallProgress { status, .. } if *status > 100 => {
            (true, format!("call progress {status}"))
        }
        UaEvent::CallEstablished { .. } => (true, "call established".to_owned()),
        UaEvent::CallFailed { status, reason, .. } => {
            (false, format!("CALL FAILED {status} {reason}"))
        }
        UaEvent::CallEnded { reason, .. } => (true, format!("call ended ({reason})")),
        UaEvent::RequestCompleted { method, status, .. } => (
            (200..300).contains(status),
            format!("{method} answered {status}"),
        ),
        UaEvent::FetchCertificate { url, .. } => (true, format!("fetching Identity-Info {url}")),
        _ => return None,
    })
}
