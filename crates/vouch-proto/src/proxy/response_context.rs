//! The response context of a stateful proxy (RFC 3261 §16.7–§16.10): one per forwarded
//! request, tying its server transaction to the client transactions of its branches.
//!
//! ```text
//! branch:  Calling ──1xx──► Proceeding ──final──► Completed
//!             │                 │  └─Timer C─► CANCEL sent (final 487 counts as 408)
//!             ├──final──────────┼─────────────────► Completed
//!             └─Timer B / C, transport error ─► Completed (408 / 503 stored)
//! ```
//!
//! Per §16.7: 101–199 and every 2xx are forwarded at once (a 2xx to an INVITE also after the
//! final response; other responses never after it); 100 is never forwarded; a 2xx or 6xx
//! CANCELs the other pending branches (§16.7 step 10) and stops new ones; other finals are
//! stored, and when every branch has completed the best is sent (step 6): a 6xx if any, else
//! the lowest class, preferring 401, 407, 415, 420 and 484 (and 487 once cancelled), with
//! the challenges of every 401/407 aggregated (step 7); a lone 503 becomes 500; no response
//! at all is 408. Targets come in groups of equal q, highest first: a group is tried in
//! parallel, the next only when the whole group failed (§16.6, serial by q).
//!
//! Timer C (§16.8) runs per INVITE branch, restarted by each provisional response: when it
//! fires after a provisional the branch is CANCELled, before one it is treated as 408.
//! A CANCEL from upstream (§16.10) CANCELs every pending branch; a branch with no
//! provisional response yet is CANCELled as soon as one arrives (§9.1). A CANCELled branch
//! with no final response 64·T1 later is given up (§9.1): it counts as 408 and its client
//! transaction is abandoned.
//!
//! A target whose next hop the driver is still resolving (RFC 3263) is pending like a branch
//! in Calling: the context does not complete before its lookup is back — unless it is closed,
//! since no branch can start then (a CANCEL before any branch started is answered 487).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use vouch_msg::{HeaderName, Limits, Message};

use crate::transaction::{ClientTransactionKey, ServerTransactionKey};

/// Timer C unless the configuration says otherwise (§16.6 step 11, §16.8).
pub(crate) const TIMER_C: Duration = crate::transaction::DEFAULT_TIMER_C;

/// A target not tried yet: the URI to put in the Request-URI and, for a registered contact,
/// the address the registration came from.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) uri: String,
    pub(crate) source: Option<crate::endpoint::Peer>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BranchState {
    Calling,
    Proceeding,
    Completed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CancelState {
    None,
    /// Wanted before any provisional response: sent on the first one (§9.1).
    Wanted,
    Sent,
}

#[derive(Debug)]
struct Branch {
    key: ClientTransactionKey,
    state: BranchState,
    cancel: CancelState,
    /// Timer C; once CANCEL is sent, the §9.1 give-up time.
    timer_c: Option<Instant>,
    /// Timer C fired and the branch was CANCELled: its 487 counts as 408 (§16.8).
    timed_out: bool,
    terminated: bool,
}

/// A final response stored for the best-response choice; `None` when synthesised (timeout,
/// transport error, unreachable target), then with the Warning text explaining it, if any.
#[derive(Debug, Clone)]
struct Candidate {
    status: u16,
    response: Option<Message>,
    warning: Option<String>,
}

/// What the context asks the proxy to do.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // short-lived, moved once
pub(crate) enum Action {
    /// Send this response (our Via already removed) on the server transaction.
    Forward(Message),
    /// Send a response generated here: 408 when nothing answered, 500 for a lone 503, or
    /// the status of a target that could not be tried, with its Warning value.
    Generate(u16, Option<String>),
    /// CANCEL this branch (§9.1).
    Cancel(ClientTransactionKey),
    /// Destroy this branch's client transaction (no final response after its CANCEL).
    Abandon(ClientTransactionKey),
    /// Start branches for these targets (the next q group).
    Fork(Vec<Target>),
}

/// The state of one proxied request.
#[derive(Debug)]
pub(crate) struct ResponseContext {
    server: ServerTransactionKey,
    invite: bool,
    /// 64·T1: how long a CANCELled branch may take to answer.
    give_up: Duration,
    /// Timer C of each INVITE branch.
    timer_c: Duration,
    branches: Vec<Branch>,
    groups: VecDeque<Vec<Target>>,
    candidates: Vec<Candidate>,
    final_sent: bool,
    /// No new branches (CANCEL received, 2xx or 6xx seen).
    closed: bool,
    cancelled: bool,
    server_terminated: bool,
    /// Targets waiting for their next hop to be resolved (RFC 3263): until they are tried,
    /// the context is not complete.
    resolving: usize,
    /// The parser limits the request was received under, for the aggregated challenge.
    limits: Limits,
}

impl ResponseContext {
    /// A context for the request of `server`, with its targets in q groups (highest first).
    pub(crate) fn new(
        server: ServerTransactionKey,
        invite: bool,
        groups: Vec<Vec<Target>>,
        give_up: Duration,
        limits: Limits,
    ) -> Self {
        ResponseContext {
            server,
            invite,
            give_up,
            timer_c: TIMER_C,
            branches: Vec::new(),
            groups: groups.into_iter().filter(|g| !g.is_empty()).collect(),
            candidates: Vec::new(),
            final_sent: false,
            closed: false,
            cancelled: false,
            server_terminated: false,
            resolving: 0,
            limits,
        }
    }

    /// Uses `timer_c` for the INVITE branches instead of [`TIMER_C`].
    pub(crate) fn with_timer_c(mut self, timer_c: Duration) -> Self {
        self.timer_c = timer_c;
        self
    }

    /// The server transaction.
    pub(crate) fn server(&self) -> &ServerTransactionKey {
        &self.server
    }

    /// The client transactions of the branches.
    pub(crate) fn branch_keys(&self) -> impl Iterator<Item = &ClientTransactionKey> + '_ {
        self.branches.iter().map(|b| &b.key)
    }

    /// The next group of targets to fork to (the first, at creation).
    pub(crate) fn next_group(&mut self) -> Option<Vec<Target>> {
        if self.closed {
            self.groups.clear();
            return None;
        }
        self.groups.pop_front()
    }

    /// A branch was started (its client transaction sent the request).
    pub(crate) fn add_branch(&mut self, now: Instant, key: ClientTransactionKey) {
        self.branches.push(Branch {
            key,
            state: BranchState::Calling,
            cancel: CancelState::None,
            timer_c: self.invite.then(|| now.checked_add(self.timer_c)).flatten(),
            timed_out: false,
            terminated: false,
        });
    }

    /// A target could not be tried (e.g. not resolvable): counts as a branch that answered
    /// `status` without a response; `warning` is the Warning value to send with it.
    pub(crate) fn add_failure(&mut self, status: u16, warning: Option<String>) {
        self.candidates.push(Candidate {
            status,
            response: None,
            warning,
        });
    }

    /// A target's next hop is being resolved: the context waits for it before it completes.
    pub(crate) fn add_resolving(&mut self) {
        self.resolving += 1;
    }

    /// A resolution [`Self::add_resolving`] announced is over (its target was tried, or
    /// recorded with [`Self::add_failure`]); call [`Self::finish`] after.
    pub(crate) fn resolved(&mut self) {
        self.resolving = self.resolving.saturating_sub(1);
    }

    /// True when no new branch may start (CANCEL received, 2xx or 6xx seen).
    pub(crate) fn is_closed(&self) -> bool {
        self.closed
    }

    /// RFC 3263 §4.3: the branch failed (503, transport error, timeout) and a new branch to
    /// the next address of the same target, already added, replaces it. The failure is not a
    /// response of the target, so it is not a candidate.
    pub(crate) fn replace_branch(&mut self, key: &ClientTransactionKey) {
        if let Some(b) = self.branch_mut(key) {
            b.state = BranchState::Completed;
            b.timer_c = None;
        }
    }

    /// The earliest Timer C.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.branches.iter().filter_map(|b| b.timer_c).min()
    }

    fn branch_mut(&mut self, key: &ClientTransactionKey) -> Option<&mut Branch> {
        self.branches.iter_mut().find(|b| &b.key == key)
    }

    /// A response from a branch's client transaction, our Via already removed (§16.7).
    pub(crate) fn handle_response(
        &mut self,
        now: Instant,
        key: &ClientTransactionKey,
        response: Message,
    ) -> Vec<Action> {
        let invite = self.invite;
        let final_sent = self.final_sent;
        let give_up = self.give_up;
        let timer_c = self.timer_c;
        let status = response.status().unwrap_or(500);
        let Some(b) = self.branch_mut(key) else {
            return Vec::new();
        };
        let mut actions = Vec::new();
        if status < 200 {
            if b.state == BranchState::Calling {
                b.state = BranchState::Proceeding;
            }
            if b.state == BranchState::Proceeding {
                if invite && status > 100 && b.cancel == CancelState::None {
                    // Step 2: reset Timer C.
                    b.timer_c = now.checked_add(timer_c);
                }
                if b.cancel == CancelState::Wanted {
                    b.cancel = CancelState::Sent;
                    b.timer_c = now.checked_add(give_up);
                    actions.push(Action::Cancel(b.key.clone()));
                }
            }
            if status > 100 && !final_sent {
                actions.push(Action::Forward(response));
            }
            return actions;
        }
        let was_completed = b.state == BranchState::Completed;
        b.state = BranchState::Completed;
        b.timer_c = None;
        let timed_out = b.timed_out;
        if (200..300).contains(&status) {
            if invite || !final_sent {
                self.final_sent = true;
                actions.push(Action::Forward(response));
            }
            self.close(now, &mut actions);
            return actions;
        }
        if was_completed {
            return actions;
        }
        let status = if timed_out && status == 487 {
            408
        } else {
            status
        };
        let response = (!(timed_out && status == 408)).then_some(response);
        self.candidates.push(Candidate {
            status,
            response,
            warning: None,
        });
        if status >= 600 {
            self.close(now, &mut actions);
        }
        self.check_complete(&mut actions);
        actions
    }

    /// Timer B or F fired on a branch (its request got no final response): 408. A transport
    /// error is 503 (§16.9).
    pub(crate) fn handle_branch_failure(
        &mut self,
        key: &ClientTransactionKey,
        status: u16,
    ) -> Vec<Action> {
        let mut actions = Vec::new();
        let Some(b) = self.branch_mut(key) else {
            return actions;
        };
        if b.state == BranchState::Completed {
            return actions;
        }
        b.state = BranchState::Completed;
        b.timer_c = None;
        self.candidates.push(Candidate {
            status,
            response: None,
            warning: None,
        });
        self.check_complete(&mut actions);
        actions
    }

    /// A branch's client transaction terminated (a branch that never completed counts as 408).
    pub(crate) fn handle_branch_terminated(&mut self, key: &ClientTransactionKey) -> Vec<Action> {
        let mut actions = Vec::new();
        if let Some(b) = self.branch_mut(key) {
            b.terminated = true;
            if b.state != BranchState::Completed {
                actions = self.handle_branch_failure(key, 408);
            }
        }
        actions
    }

    /// The server transaction terminated.
    pub(crate) fn handle_server_terminated(&mut self) {
        self.server_terminated = true;
    }

    /// True when every transaction of the context has terminated (§16.7 step 9: keep it
    /// until then).
    pub(crate) fn is_done(&self) -> bool {
        self.server_terminated && self.branches.iter().all(|b| b.terminated)
    }

    /// Timer C (§16.8) and the §9.1 give-up time of CANCELled branches.
    pub(crate) fn handle_timeout(&mut self, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        let mut failed = Vec::new();
        let give_up = self.give_up;
        for b in &mut self.branches {
            if b.timer_c.is_none_or(|t| t > now) {
                continue;
            }
            b.timer_c = None;
            match (b.state, b.cancel) {
                (BranchState::Completed, _) => {}
                (_, CancelState::Sent) => {
                    actions.push(Action::Abandon(b.key.clone()));
                    failed.push(b.key.clone());
                }
                (BranchState::Proceeding, _) => {
                    b.timed_out = true;
                    b.cancel = CancelState::Sent;
                    b.timer_c = now.checked_add(give_up);
                    actions.push(Action::Cancel(b.key.clone()));
                }
                (BranchState::Calling, _) => failed.push(b.key.clone()),
            }
        }
        for key in failed {
            actions.extend(self.handle_branch_failure(&key, 408));
        }
        actions
    }

    /// A CANCEL for the request arrived (§16.10): CANCEL every pending branch, start no more.
    pub(crate) fn handle_cancel(&mut self, now: Instant) -> Vec<Action> {
        self.cancelled = true;
        let mut actions = Vec::new();
        self.close(now, &mut actions);
        self.check_complete(&mut actions);
        actions
    }

    /// No new branches; CANCEL the pending INVITE branches (§16.7 step 10).
    fn close(&mut self, now: Instant, actions: &mut Vec<Action>) {
        self.closed = true;
        self.groups.clear();
        if !self.invite {
            return;
        }
        for b in &mut self.branches {
            match (b.state, b.cancel) {
                (BranchState::Proceeding, CancelState::None) => {
                    b.cancel = CancelState::Sent;
                    b.timer_c = now.checked_add(self.give_up);
                    actions.push(Action::Cancel(b.key.clone()));
                }
                (BranchState::Calling, CancelState::None) => b.cancel = CancelState::Wanted,
                _ => {}
            }
        }
    }

    /// When every branch has completed: the next q group, or the best response (step 6).
    fn check_complete(&mut self, actions: &mut Vec<Action>) {
        // Once closed no lookup can start a branch any more: it is not waited for.
        if self.final_sent
            || (self.resolving > 0 && !self.closed)
            || self
                .branches
                .iter()
                .any(|b| b.state != BranchState::Completed)
        {
            return;
        }
        if let Some(group) = self.next_group() {
            actions.push(Action::Fork(group));
            return;
        }
        self.final_sent = true;
        actions.push(self.best());
    }

    /// True when every branch has completed, no group is left and no final response was sent:
    /// the caller must ask for [`Self::finish`] (after failures while forking).
    pub(crate) fn finish(&mut self) -> Vec<Action> {
        let mut actions = Vec::new();
        self.check_complete(&mut actions);
        actions
    }

    /// The best final response (§16.7 steps 6–7).
    fn best(&self) -> Action {
        let c = &self.candidates;
        if c.is_empty() {
            // Cancelled before any branch started (its target still being resolved).
            let status = if self.cancelled { 487 } else { 408 };
            return Action::Generate(status, None);
        }
        let chosen = if let Some(six) = c.iter().find(|x| x.status >= 600) {
            six
        } else {
            let class = c.iter().map(|x| x.status / 100).min().unwrap_or(4);
            let in_class: Vec<&Candidate> = c.iter().filter(|x| x.status / 100 == class).collect();
            let preferred: &[u16] = if self.cancelled {
                &[487, 401, 407, 415, 420, 484]
            } else {
                &[401, 407, 415, 420, 484]
            };
            let mut pick = in_class.first().copied();
            'outer: for p in preferred {
                for x in &in_class {
                    if x.status == *p {
                        pick = Some(x);
                        break 'outer;
                    }
                }
            }
            match pick {
                Some(p) => p,
                None => return Action::Generate(408, None),
            }
        };
        if chosen.status == 503 {
            return Action::Generate(500, None);
        }
        let Some(response) = &chosen.response else {
            return Action::Generate(chosen.status, chosen.warning.clone());
        };
        if matches!(chosen.status, 401 | 407) {
            return Action::Forward(self.aggregate_challenges(response));
        }
        Action::Forward(response.clone())
    }

    /// Step 7: every WWW-Authenticate and Proxy-Authenticate of the other 401/407 responses
    /// added to the chosen one, unmodified.
    fn aggregate_challenges(&self, chosen: &Message) -> Message {
        let mut b = chosen.edit();
        let mut added = false;
        for other in &self.candidates {
            let Some(r) = &other.response else { continue };
            if !matches!(other.status, 401 | 407) || std::ptr::eq(r, chosen) {
                continue;
            }
            for name in [HeaderName::WwwAuthenticate, HeaderName::ProxyAuthenticate] {
                for h in r.headers_named(name) {
                    b.insert_before("Content-Length", h.raw_name, h.value);
                    added = true;
                }
            }
        }
        if !added {
            return chosen.clone();
        }
        b.build_with(&self.limits)
            .unwrap_or_else(|_| chosen.clone())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::transaction::response_for;

    fn invite(branch: &str) -> Message {
        let s = format!(
            "INVITE sip:bob@10.0.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch={branch}\r\nVia: SIP/2.0/UDP 10.0.0.9;branch=z9hG4bKup\r\nFrom: <sip:a@example.com>;tag=f\r\nTo: <sip:bob@example.com>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nMax-Forwards: 69\r\nContent-Length: 0\r\n\r\n"
        );
        Message::parse(s.into_bytes()).unwrap()
    }

    fn key(branch: &str) -> ClientTransactionKey {
        ClientTransactionKey::for_request(&invite(branch)).unwrap()
    }

    fn resp(branch: &str, status: u16, extra: Option<(&str, &str)>) -> Message {
        let r = response_for(&invite(branch), status, "X", Some("t")).unwrap();
        let mut b = crate::wire::pop_top_via(&r, &vouch_msg::Limits::DEFAULT)
            .unwrap()
            .edit();
        if let Some((n, v)) = extra {
            b.push(n, v);
        }
        b.build().unwrap()
    }

    fn ctx(n: usize) -> (ResponseContext, Instant) {
        let server = ServerTransactionKey::for_request(&invite("z9hG4bKup")).unwrap();
        let mut c = ResponseContext::new(
            server,
            true,
            vec![],
            Duration::from_secs(32),
            Limits::DEFAULT,
        );
        let now = Instant::now();
        for i in 0..n {
            c.add_branch(now, key(&format!("z9hG4bKb{i}")));
        }
        (c, now)
    }

    fn statuses(actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .map(|a| match a {
                Action::Forward(m) => format!("fwd {}", m.status().unwrap()),
                Action::Generate(s, _) => format!("gen {s}"),
                Action::Cancel(k) => format!("cancel {}", k.branch()),
                Action::Abandon(k) => format!("abandon {}", k.branch()),
                Action::Fork(t) => format!("fork {}", t.len()),
            })
            .collect()
    }

    #[test]
    fn lowest_class_wins_after_all_branches_answer() {
        let (mut c, now) = ctx(3);
        assert!(
            c.handle_response(now, &key("z9hG4bKb0"), resp("z9hG4bKb0", 503, None))
                .is_empty()
        );
        assert!(
            c.handle_response(now, &key("z9hG4bKb1"), resp("z9hG4bKb1", 486, None))
                .is_empty()
        );
        let a = c.handle_response(now, &key("z9hG4bKb2"), resp("z9hG4bKb2", 302, None));
        assert_eq!(statuses(&a), vec!["fwd 302"]);
    }

    #[test]
    fn six_xx_cancels_pending_and_wins() {
        let (mut c, now) = ctx(2);
        let a = c.handle_response(now, &key("z9hG4bKb0"), resp("z9hG4bKb0", 180, None));
        assert_eq!(statuses(&a), vec!["fwd 180"]);
        let a = c.handle_response(now, &key("z9hG4bKb1"), resp("z9hG4bKb1", 603, None));
        assert_eq!(statuses(&a), vec!["cancel z9hG4bKb0"]);
        let a = c.handle_response(now, &key("z9hG4bKb0"), resp("z9hG4bKb0", 487, None));
        assert_eq!(statuses(&a), vec!["fwd 603"]);
    }

    #[test]
    fn two_xx_forwarded_at_once_and_cancels_others_even_before_provisional() {
        let (mut c, now) = ctx(2);
        let a = c.handle_response(now, &key("z9hG4bKb0"), resp("z9hG4bKb0", 200, None));
        assert_eq!(statuses(&a), vec!["fwd 200"]);
        // Branch 1 had no provisional yet: CANCEL waits for one (§9.1).
        let a = c.handle_response(now, &key("z9hG4bKb1"), resp("z9hG4bKb1", 180, None));
        assert_eq!(statuses(&a), vec!["cancel z9hG4bKb1"]);
        // A second 2xx (another fork) is still forwarded; a late 487 is not.
        let a = c.handle_response(now, &key("z9hG4bKb1"), resp("z9hG4bKb1", 487, None));
        assert!(a.is_empty());
    }

    #[test]
    fn challenges_are_aggregated() {
        let (mut c, now) = ctx(2);
        c.handle_response(
            now,
            &key("z9hG4bKb0"),
            resp(
                "z9hG4bKb0",
                407,
                Some(("Proxy-Authenticate", "Digest realm=\"a\"")),
            ),
        );
        let a = c.handle_response(
            now,
            &key("z9hG4bKb1"),
            resp(
                "z9hG4bKb1",
                401,
                Some(("WWW-Authenticate", "Digest realm=\"b\"")),
            ),
        );
        let [Action::Forward(m)] = a.as_slice() else {
            panic!("{a:?}")
        };
        assert_eq!(m.headers_named(HeaderName::ProxyAuthenticate).count(), 1);
        assert_eq!(m.headers_named(HeaderName::WwwAuthenticate).count(), 1);
    }

    #[test]
    fn timer_c_cancels_and_the_487_counts_as_408() {
        let (mut c, now) = ctx(1);
        c.handle_response(now, &key("z9hG4bKb0"), resp("z9hG4bKb0", 180, None));
        let at = c.poll_timeout().unwrap();
        assert!(at >= now + TIMER_C);
        let a = c.handle_timeout(at);
        assert_eq!(statuses(&a), vec!["cancel z9hG4bKb0"]);
        let a = c.handle_response(at, &key("z9hG4bKb0"), resp("z9hG4bKb0", 487, None));
        assert_eq!(statuses(&a), vec!["gen 408"]);
    }

    #[test]
    fn cancelled_branch_without_final_is_given_up_after_64_t1() {
        let (mut c, now) = ctx(1);
        c.handle_response(now, &key("z9hG4bKb0"), resp("z9hG4bKb0", 180, None));
        let a = c.handle_cancel(now);
        assert_eq!(statuses(&a), vec!["cancel z9hG4bKb0"]);
        let at = c.poll_timeout().unwrap();
        assert_eq!(at, now + Duration::from_secs(32));
        let a = c.handle_timeout(at);
        assert_eq!(statuses(&a), vec!["abandon z9hG4bKb0", "gen 408"]);
    }

    #[test]
    fn lone_503_becomes_500_and_silence_408() {
        let (mut c, now) = ctx(1);
        let a = c.handle_response(now, &key("z9hG4bKb0"), resp("z9hG4bKb0", 503, None));
        assert_eq!(statuses(&a), vec!["gen 500"]);
        let (mut c, _) = ctx(1);
        let a = c.handle_branch_failure(&key("z9hG4bKb0"), 408);
        assert_eq!(statuses(&a), vec!["gen 408"]);
    }

    #[test]
    fn next_q_group_only_after_the_first_fails() {
        let server = ServerTransactionKey::for_request(&invite("z9hG4bKup")).unwrap();
        let t = |u: &str| Target {
            uri: u.to_owned(),
            source: None,
        };
        let mut c = ResponseContext::new(
            server,
            true,
            vec![vec![t("sip:a@h")], vec![t("sip:b@h")]],
            Duration::from_secs(32),
            Limits::DEFAULT,
        );
        assert_eq!(c.next_group().unwrap().len(), 1);
        let now = Instant::now();
        c.add_branch(now, key("z9hG4bKb0"));
        let a = c.handle_response(now, &key("z9hG4bKb0"), resp("z9hG4bKb0", 486, None));
        assert_eq!(statuses(&a), vec!["fork 1"]);
    }

    #[test]
    fn cancel_prefers_487() {
        let (mut c, now) = ctx(2);
        c.handle_response(now, &key("z9hG4bKb0"), resp("z9hG4bKb0", 180, None));
        c.handle_response(now, &key("z9hG4bKb1"), resp("z9hG4bKb1", 180, None));
        let a = c.handle_cancel(now);
        assert_eq!(statuses(&a), vec!["cancel z9hG4bKb0", "cancel z9hG4bKb1"]);
        c.handle_response(now, &key("z9hG4bKb0"), resp("z9hG4bKb0", 404, None));
        let a = c.handle_response(now, &key("z9hG4bKb1"), resp("z9hG4bKb1", 487, None));
        assert_eq!(statuses(&a), vec!["fwd 487"]);
    }
}
