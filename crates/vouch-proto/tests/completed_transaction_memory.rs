//! Heap held by Completed non-INVITE server transactions (RFC 3261 §17.2.2): under REGISTER
//! load a registrar keeps 64·T1 (32 s) of them, so what each one holds is most of its memory.
//! Completed needs only the final response's bytes; holding the parsed request (its 640-byte
//! `Message`, header index and datagram) or the parsed response again fails this test.
//!
//! Alone in its binary, with one test, so nothing else allocates while it counts.

#![allow(clippy::unwrap_used)]

mod txn_memory;

#[test]
fn completed_non_invite_server_transactions_hold_little_heap() {
    const N: usize = 2_000;
    // Measured: ~1,170 B each (the table, the key, the 355-byte 200); holding the
    // parsed request was ~5,100 B. Either parsed message alone adds more than 800 B.
    const LIMIT: isize = 2_000;
    // Fills N completed transactions and checks they are all there, in Completed.
    let completed = txn_memory::completed_registers(N);
    let per = completed.held / N as isize;
    assert!(
        per < LIMIT,
        "{per} B per Completed non-INVITE server transaction (limit {LIMIT} B)"
    );
}
