//! Heap held by completed non-INVITE server transactions (RFC 3261 §17.2.2, Completed state,
//! kept for Timer J = 64·T1 on UDP).
//!
//! Feeds N REGISTER-like requests into a `TransactionLayer` over an unreliable transport,
//! answers each with a 200 carrying a Contact, drains every output, and reports the heap bytes
//! the layer still holds per transaction, counted by a global allocator that wraps
//! `std::alloc::System`.
//!
//! ```text
//! cargo run --release -p vouch-proto --example txn_memory [-- N]
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/txn_memory/mod.rs"]
mod txn_memory;

use vouch_msg::Message;
use vouch_proto::transaction::{
    InviteClientTransaction, InviteServerTransaction, NonInviteClientTransaction,
    NonInviteServerTransaction,
};

use txn_memory::{completed_registers, live, register};

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("N is a number"))
        .unwrap_or(10_000);
    let before = live();
    let completed = completed_registers(n);
    let held = completed.held;
    println!("transactions:            {n} (all NonInviteServer Completed)");
    println!(
        "request datagram:        {} B, response: {} B",
        register(0).len(),
        completed.response_bytes / n
    );
    println!(
        "size_of: Message {} B; NonInviteServer {} B, InviteServer {} B, \
NonInviteClient {} B, InviteClient {} B",
        size_of::<Message>(),
        size_of::<NonInviteServerTransaction>(),
        size_of::<InviteServerTransaction>(),
        size_of::<NonInviteClientTransaction>(),
        size_of::<InviteClientTransaction>(),
    );
    println!(
        "heap held by the layer:  {held} B = {} B per completed transaction",
        held / n as isize
    );
    drop(completed);
    println!("after dropping layer:    {} B live", live() - before);
}
