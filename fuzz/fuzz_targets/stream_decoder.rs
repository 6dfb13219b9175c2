//! Any byte stream cut at arbitrary points: the decoder never panics, never returns a message
//! that differs from parsing its frame directly, and stops after an error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vouch_msg::{Limits, StreamDecoder};

fuzz_target!(|data: &[u8]| {
    let Some((&cut, rest)) = data.split_first() else { return };
    let mut d = StreamDecoder::new(Limits { max_message_size: 4096, ..Limits::DEFAULT });
    for chunk in rest.chunks(usize::from(cut).max(1)) {
        d.push(chunk);
        loop {
            match d.decode() {
                Ok(Some(m)) => assert!(m.as_bytes().len() <= 4096),
                Ok(None) => break,
                Err(e) => {
                    assert!(matches!(e.status(), 400 | 416 | 505 | 513));
                    assert!(d.decode().is_err());
                    return;
                }
            }
        }
    }
});
