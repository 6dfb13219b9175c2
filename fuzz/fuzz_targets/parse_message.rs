//! Any datagram: parsing never panics; a parsed message prints back to the bytes it came from,
//! its typed readings never panic, and every refusal names a status a server may send.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vouch_msg::Message;

fuzz_target!(|data: &[u8]| {
    match Message::parse(bytes::Bytes::copy_from_slice(data)) {
        Ok(m) => {
            let _ = (m.top_via(), m.from(), m.to(), m.contacts(), m.route(), m.record_route());
            let _ = (m.vias(), m.content_type(), m.expires(), m.request_uri(), m.cseq());
            for h in m.headers() {
                let _ = vouch_msg::split_commas(h.value).count();
            }
            let again = Message::parse(m.as_bytes().clone()).expect("a parsed message parses again");
            assert_eq!(again.as_bytes(), m.as_bytes());
        }
        Err(e) => assert!(matches!(e.status(), 400 | 416 | 505 | 513)),
    }
});
