//! Stream framing for TCP and TLS (RFC 3261 §18.3): cuts a byte stream into messages by
//! Content-Length. CRLF keep-alives between messages (RFC 5626 §3.5.1 `CRLFCRLF` pings and
//! `CRLF` pongs) are skipped. A message without Content-Length is an error: on a stream its
//! end cannot be known, and the connection must be closed.

use bytes::{Buf, BytesMut};

use crate::error::{ErrorKind, ParseError};
use crate::limits::Limits;
use crate::message::{Message, Transport};
use crate::name::HeaderName;

/// A push decoder: feed bytes with [`StreamDecoder::push`], take messages with
/// [`StreamDecoder::decode`]. After an error the stream is unusable (close the connection).
#[derive(Debug)]
pub struct StreamDecoder {
    buf: BytesMut,
    limits: Limits,
    /// Where the search for the end of the header section resumes.
    scanned: usize,
    /// Total length of the message being received, once its header section is complete.
    frame_len: Option<usize>,
    keepalives: u64,
    failed: bool,
}

impl StreamDecoder {
    /// A decoder with the given limits.
    pub fn new(limits: Limits) -> Self {
        StreamDecoder {
            buf: BytesMut::new(),
            limits,
            scanned: 0,
            frame_len: None,
            keepalives: 0,
            failed: false,
        }
    }

    /// Appends received bytes.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Bytes buffered but not yet returned as a message.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// How many keep-alive CRLF sequences were skipped so far.
    pub fn keepalives_seen(&self) -> u64 {
        self.keepalives
    }

    /// Returns the next complete message, `Ok(None)` when more bytes are needed.
    pub fn decode(&mut self) -> Result<Option<Message>, ParseError> {
        if self.failed {
            return Err(ParseError::new(
                ErrorKind::BadContentLength,
                0,
                "stream already failed",
            ));
        }
        let r = self.decode_inner();
        if r.is_err() {
            self.failed = true;
        }
        r
    }

    fn decode_inner(&mut self) -> Result<Option<Message>, ParseError> {
        if self.frame_len.is_none() {
            // Skip keep-alives before a message.
            let mut skip = 0;
            while skip < self.buf.len() && matches!(self.buf[skip], b'\r' | b'\n') {
                if self.buf[skip] == b'\n' {
                    self.keepalives += 1;
                }
                skip += 1;
            }
            if skip > 0 {
                self.buf.advance(skip);
                self.scanned = 0;
            }
            let Some(header_end) = self.find_header_end() else {
                if self.buf.len() > self.limits.max_message_size {
                    return Err(ParseError::new(
                        ErrorKind::MessageTooLarge,
                        self.limits.max_message_size,
                        "header section larger than the limit",
                    ));
                }
                return Ok(None);
            };
            let cl = content_length(&self.buf[..header_end])?;
            let total = header_end + cl;
            if total > self.limits.max_message_size {
                return Err(ParseError::new(
                    ErrorKind::MessageTooLarge,
                    0,
                    "message larger than the limit",
                ));
            }
            self.frame_len = Some(total);
        }
        let Some(total) = self.frame_len else {
            return Ok(None);
        };
        if self.buf.len() < total {
            return Ok(None);
        }
        let frame = self.buf.split_to(total).freeze();
        self.frame_len = None;
        self.scanned = 0;
        Message::parse_with(frame, &self.limits, Transport::Stream).map(Some)
    }

    /// Finds the end of the header section (after CRLFCRLF or LFLF), resuming the search.
    fn find_header_end(&mut self) -> Option<usize> {
        let b = &self.buf[..];
        let mut from = self.scanned;
        while let Some(i) = memchr::memchr(b'\n', &b[from..]) {
            let nl = from + i;
            match (b.get(nl + 1), b.get(nl + 2)) {
                (Some(b'\n'), _) => return Some(nl + 2),
                (Some(b'\r'), Some(b'\n')) => return Some(nl + 3),
                (None, _) | (Some(b'\r'), None) => {
                    self.scanned = nl;
                    return None;
                }
                _ => from = nl + 1,
            }
        }
        self.scanned = b.len().saturating_sub(1);
        None
    }
}

/// Reads Content-Length from a complete header section (start line included).
fn content_length(head: &[u8]) -> Result<usize, ParseError> {
    let mut found: Option<u32> = None;
    // The start line is not a header field.
    let mut pos = memchr::memchr(b'\n', head).map_or(head.len(), |i| i + 1);
    while pos < head.len() {
        // One logical header line: a value may be folded onto continuation lines
        // (`Content-Length:\r\n 150`), exactly as the message parser reads it.
        let start = pos;
        let next_nl =
            |from: usize| memchr::memchr(b'\n', &head[from..]).map_or(head.len(), |i| from + i);
        let mut nl = next_nl(start);
        while nl + 1 < head.len() && matches!(head[nl + 1], b' ' | b'\t') {
            nl = next_nl(nl + 1);
        }
        pos = nl + 1;
        let line = &head[start..nl.min(head.len())];
        let Some(colon) = memchr::memchr(b':', line) else {
            continue;
        };
        let name = std::str::from_utf8(&line[..colon])
            .unwrap_or("")
            .trim_end_matches([' ', '\t']);
        if HeaderName::from_wire(name) != HeaderName::ContentLength {
            continue;
        }
        let value = std::str::from_utf8(&line[colon + 1..]).map_err(|_| {
            ParseError::new(
                ErrorKind::BadContentLength,
                start,
                "Content-Length is not text",
            )
        })?;
        let v = crate::headers::basic::parse_content_length(value)
            .map_err(|e| e.at(start).in_header(name))?;
        if found.is_some() {
            return Err(ParseError::new(
                ErrorKind::BadContentLength,
                start,
                "more than one Content-Length",
            ));
        }
        found = Some(v);
    }
    found.map(|v| v as usize).ok_or_else(|| {
        ParseError::new(
            ErrorKind::MissingContentLengthOnStream,
            0,
            "message on a stream without Content-Length",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] = b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nFrom: <sip:c@d>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 4\r\n\r\nbody";

    #[test]
    fn frames_byte_by_byte_with_keepalives() {
        let mut d = StreamDecoder::new(Limits::DEFAULT);
        let mut stream = b"\r\n\r\n".to_vec();
        stream.extend_from_slice(MSG);
        stream.extend_from_slice(b"\r\n");
        stream.extend_from_slice(MSG);
        let mut got = Vec::new();
        for &byte in &stream {
            d.push(&[byte]);
            while let Some(m) = d.decode().unwrap() {
                got.push(m);
            }
        }
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].body_bytes(), b"body");
        assert_eq!(d.keepalives_seen(), 3);
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn refuses_message_without_content_length() {
        let mut d = StreamDecoder::new(Limits::DEFAULT);
        d.push(b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h\r\n\r\n");
        let e = d.decode().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::MissingContentLengthOnStream);
        assert!(d.decode().is_err(), "stays failed");
    }

    #[test]
    fn refuses_oversized_header_section() {
        let mut d = StreamDecoder::new(Limits {
            max_message_size: 100,
            ..Limits::DEFAULT
        });
        d.push(&[b'a'; 200]);
        assert_eq!(d.decode().unwrap_err().status(), 513);
        let mut d = StreamDecoder::new(Limits {
            max_message_size: 200,
            ..Limits::DEFAULT
        });
        d.push(
            &String::from_utf8_lossy(MSG)
                .replace("Content-Length: 4", "Content-Length: 9999")
                .into_bytes(),
        );
        assert_eq!(
            d.decode().unwrap_err().status(),
            513,
            "refused before the body arrives"
        );
    }
}
