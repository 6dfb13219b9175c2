//! The workload shared by the criterion bench (`identity.rs`) and the callgrind harness
//! (`examples/verify_loop.rs`): an INVITE with SDP, dated at [`NOW`], to sign and verify.

use vouch_msg::Message;
use vouch_msg::headers::date::format_sip_date;

/// The verifier's clock (Unix seconds); the INVITE's Date.
pub const NOW: i64 = 1_790_000_000;

/// An INVITE from alice@atlanta.example.com with SDP and Date [`NOW`], with this Call-ID.
pub fn invite(call_id: &str) -> Message {
    let body = "v=0\r\no=alice 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 49172 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n";
    let text = format!(
        "INVITE sip:bob@biloxi.example.org SIP/2.0\r\nVia: SIP/2.0/TLS 192.0.2.1;branch=z9hG4bK1\r\nTo: <sip:bob@biloxi.example.org>\r\nFrom: <sip:alice@atlanta.example.com>;tag=1\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\nDate: {}\r\nContact: <sip:alice@192.0.2.1>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
        format_sip_date(NOW).expect("date"),
        body.len()
    );
    Message::parse(text.into_bytes()).expect("valid INVITE")
}
