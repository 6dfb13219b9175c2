//! Timer values and transport reliability (RFC 3261 §17.1.1.1, §17.1.2.1, Table 4 of §A;
//! RFC 6026 §8.11 for Timers L and M).

use std::time::{Duration, Instant};

/// Whether the transport carrying a transaction is reliable. On a reliable transport
/// (TCP, TLS, SCTP, WebSocket) Timers A, E and G are not used and Timers D, I, J and K are
/// zero (§17.1.1.2, §17.1.2.2, §17.2.1, §17.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reliability {
    /// TCP, TLS, SCTP, WebSocket.
    Reliable,
    /// UDP.
    Unreliable,
}

/// When an INVITE server transaction sends 100 Trying on its own (§17.2.1: unless the TU
/// answers within 200 ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryingPolicy {
    /// Send 100 Trying as soon as the INVITE arrives.
    Immediate,
    /// Send 100 Trying if the TU has sent no response after this long (RFC 3261: 200 ms).
    /// `AfterDelay(Duration::ZERO)`: at the first timer run after the INVITE arrived, so a TU
    /// that answers while handling the request (a proxy's 407 challenge, a 403) sends only
    /// that answer, and one that forwards it gets the 100 out at once.
    AfterDelay(Duration),
    /// Never: the TU promises to answer within 200 ms itself.
    Never,
}

/// The RFC 3261 timers, by their names in Table 4 (and RFC 6026 for L and M).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timer {
    /// INVITE request retransmit interval, UDP only.
    A,
    /// INVITE transaction timeout.
    B,
    /// Wait time for response retransmissions after a non-2xx final (INVITE client).
    D,
    /// Non-INVITE request retransmit interval, UDP only.
    E,
    /// Non-INVITE transaction timeout.
    F,
    /// INVITE response retransmit interval (INVITE server, non-2xx final).
    G,
    /// Wait time for ACK receipt.
    H,
    /// Wait time for ACK retransmits.
    I,
    /// Wait time for non-INVITE request retransmits.
    J,
    /// Wait time for non-INVITE response retransmits.
    K,
    /// RFC 6026: wait time for INVITE retransmissions after a 2xx (INVITE server, Accepted).
    L,
    /// RFC 6026: wait time for 2xx retransmissions and forks (INVITE client, Accepted).
    M,
    /// The §17.2.1 "200 ms" wait before the server transaction sends 100 Trying itself.
    Trying,
}

/// Timer settings for every transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransactionConfig {
    /// RTT estimate (default 500 ms). Retransmission intervals are at least 1 ms.
    pub t1: Duration,
    /// Maximum retransmit interval for non-INVITE requests and INVITE responses (default 4 s).
    pub t2: Duration,
    /// Maximum duration a message remains in the network (default 5 s).
    pub t4: Duration,
    /// Timer D on an unreliable transport (RFC 3261: at least 32 s; default 32 s).
    pub timer_d: Duration,
    /// When the INVITE server transaction sends 100 Trying itself.
    pub trying: TryingPolicy,
    /// Timer C of a proxy's INVITE branches (RFC 3261 §16.6 step 11, §16.8; default 3
    /// minutes), restarted by each provisional response: when it fires the branch is
    /// CANCELled and counts as 408. The RFC asks for more than 3 minutes; operators often set
    /// less as a no-answer timeout (Kamailio's `fr_inv_timer`).
    pub timer_c: Duration,
}

/// Default [`TransactionConfig::timer_c`]: 3 minutes (RFC 3261 §16.6 step 11).
pub const DEFAULT_TIMER_C: Duration = Duration::from_secs(180);

impl Default for TransactionConfig {
    fn default() -> Self {
        TransactionConfig {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
            timer_d: Duration::from_secs(32),
            trying: TryingPolicy::Immediate,
            timer_c: DEFAULT_TIMER_C,
        }
    }
}

impl TransactionConfig {
    /// 64·T1: Timers B, F, H, J (UDP), L and M.
    pub fn t1x64(&self) -> Duration {
        self.t1.saturating_mul(64)
    }
}

/// The smallest retransmission interval (Timers A, E, G): a T1 of zero must not make a timer
/// that is due again the moment it fires.
pub(crate) const MIN_INTERVAL: Duration = Duration::from_millis(1);

/// `now + d`, or `None` (a timer that never fires) if that is not representable.
pub(crate) fn after(now: Instant, d: Duration) -> Option<Instant> {
    now.checked_add(d)
}

/// The armed timers whose deadline is at or before `now`, earliest first. Each transaction
/// fires each of them at most once per `handle_timeout`, after checking that it is still armed
/// with the same deadline (an earlier one may have cancelled it).
pub(crate) fn expired<const N: usize>(
    timers: [(Timer, Option<Instant>); N],
    now: Instant,
) -> Vec<(Timer, Instant)> {
    let mut out: Vec<(Timer, Instant)> = timers
        .into_iter()
        .filter_map(|(t, at)| at.filter(|&at| at <= now).map(|at| (t, at)))
        .collect();
    out.sort_by_key(|&(_, at)| at);
    out
}

/// The earliest armed deadline.
pub(crate) fn earliest<const N: usize>(timers: [Option<Instant>; N]) -> Option<Instant> {
    timers.into_iter().flatten().min()
}
