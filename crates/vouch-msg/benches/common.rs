//! The workload shared by the criterion bench and the callgrind harness: the ~900-byte INVITE
//! of `examples/invite.sip`, parsed with Via, From, To, CSeq, Call-ID and Contact read typed.

use bytes::Bytes;
use vouch_msg::Message;

/// The INVITE with SDP shipped as the README's example.
pub const INVITE: &[u8] = include_bytes!("../../../examples/invite.sip");

/// Parse and read the six headers as typed values with vouch-msg; returns a value derived from
/// all of them so nothing is optimised away.
pub fn vouch_typed(input: &Bytes) -> usize {
    let m = Message::parse(input.clone()).expect("valid INVITE");
    let via = m.top_via().expect("Via");
    let from = m.from().expect("From");
    let to = m.to().expect("To");
    let cseq = m.cseq();
    // The Contact as the engine reads it (remote target, digest-string): the first address.
    let contact = m.first_contact_addr().expect("Contact");
    via.branch().map_or(0, str::len)
        + from.tag().map_or(0, str::len)
        + to.uri().as_str().len()
        + cseq.seq as usize
        + m.call_id().len()
        + contact.uri().as_str().len()
        + m.body_bytes().len()
}
