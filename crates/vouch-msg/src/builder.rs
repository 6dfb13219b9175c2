//! Creating and modifying messages. Untouched header fields keep their exact bytes; the result
//! is printed and parsed again, so a builder can only produce a message the parser accepts, and
//! Content-Length always matches the body.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::ParseError;
use crate::limits::Limits;
use crate::message::{Message, Transport, write_field};
use crate::method::Method;
use crate::name::HeaderName;

#[derive(Debug, Clone)]
struct Entry {
    name: HeaderName,
    /// Lowercased name for extension headers, to match them by name.
    other_name: Option<String>,
    /// The complete field, line end included.
    line: Bytes,
}

impl Entry {
    fn new(name: &str, value: &str, eol: &[u8]) -> Entry {
        let mut out = BytesMut::with_capacity(name.len() + value.len() + 4);
        write_field(&mut out, name, value, eol);
        let kind = HeaderName::from_wire(name);
        Entry {
            name: kind,
            other_name: (kind == HeaderName::Other).then(|| name.to_ascii_lowercase()),
            line: out.freeze(),
        }
    }

    fn is(&self, name: &str) -> bool {
        let kind = HeaderName::from_wire(name);
        if kind == HeaderName::Other {
            self.other_name
                .as_deref()
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
        } else {
            self.name == kind
        }
    }
}

/// Builds a new message or an edited copy of a parsed one.
#[derive(Debug, Clone)]
pub struct MessageBuilder {
    start_line: Bytes,
    entries: Vec<Entry>,
    body: Bytes,
    /// Set when the body changed, so Content-Length must be rewritten.
    body_changed: bool,
    /// The line end in use: CRLF, or LF when editing a message that uses bare LF (so an
    /// edit never mixes the two).
    eol: &'static [u8],
}

impl MessageBuilder {
    /// A request with the given method and Request-URI.
    pub fn request(method: Method<'_>, request_uri: &str) -> Self {
        Self::with_start_line(format!("{} {} SIP/2.0\r\n", method.as_str(), request_uri))
    }

    /// A response with the given status code and reason phrase.
    pub fn response(status: u16, reason: &str) -> Self {
        Self::with_start_line(format!("SIP/2.0 {status} {reason}\r\n"))
    }

    fn with_start_line(line: String) -> Self {
        MessageBuilder {
            start_line: Bytes::from(line),
            entries: Vec::new(),
            body: Bytes::new(),
            body_changed: true,
            eol: b"\r\n",
        }
    }

    pub(crate) fn from_message(m: &Message) -> Self {
        let entries = m
            .raw_fields()
            .map(|(name, line)| {
                let other_name = (name == HeaderName::Other).then(|| {
                    let colon = line.iter().position(|&c| c == b':').unwrap_or(0);
                    String::from_utf8_lossy(&line[..colon])
                        .trim()
                        .to_ascii_lowercase()
                });
                Entry {
                    name,
                    other_name,
                    line,
                }
            })
            .collect();
        let start_line = m.start_line_bytes();
        let eol: &'static [u8] = if start_line.ends_with(b"\r\n") {
            b"\r\n"
        } else {
            b"\n"
        };
        MessageBuilder {
            start_line,
            entries,
            body: m.body(),
            body_changed: false,
            eol,
        }
    }

    /// Replaces the Request-URI (keeps method and version).
    pub fn set_request_uri(&mut self, uri: &str) -> &mut Self {
        let line = String::from_utf8_lossy(&self.start_line).into_owned();
        let mut parts = line.trim_end().splitn(3, ' ');
        let (m, _, v) = (
            parts.next().unwrap_or(""),
            parts.next(),
            parts.next().unwrap_or("SIP/2.0"),
        );
        let eol = if self.eol == b"\n" { "\n" } else { "\r\n" };
        self.start_line = Bytes::from(format!("{m} {uri} {v}{eol}"));
        self
    }

    /// Appends a header field.
    pub fn push(&mut self, name: &str, value: &str) -> &mut Self {
        self.entries.push(Entry::new(name, value, self.eol));
        self
    }

    /// Inserts a header field before all others (as a proxy does with its Via).
    pub fn push_front(&mut self, name: &str, value: &str) -> &mut Self {
        self.entries.insert(0, Entry::new(name, value, self.eol));
        self
    }

    /// Inserts a header field before the first field named `before` (or appends).
    pub fn insert_before(&mut self, before: &str, name: &str, value: &str) -> &mut Self {
        let at = self
            .entries
            .iter()
            .position(|e| e.is(before))
            .unwrap_or(self.entries.len());
        self.entries.insert(at, Entry::new(name, value, self.eol));
        self
    }

    /// Removes every field named `name`; returns how many were removed.
    pub fn remove(&mut self, name: &str) -> usize {
        let before = self.entries.len();
        self.entries.retain(|e| !e.is(name));
        before - self.entries.len()
    }

    /// Removes the first field named `name`; returns whether one was found.
    pub fn remove_first(&mut self, name: &str) -> bool {
        match self.entries.iter().position(|e| e.is(name)) {
            Some(i) => {
                self.entries.remove(i);
                true
            }
            None => false,
        }
    }

    /// Replaces every field named `name` with one field holding `value`, at the position of the
    /// first (or at the end when there was none).
    pub fn replace(&mut self, name: &str, value: &str) -> &mut Self {
        let at = self.entries.iter().position(|e| e.is(name));
        self.entries.retain(|e| !e.is(name));
        let entry = Entry::new(name, value, self.eol);
        match at {
            Some(i) => self.entries.insert(i.min(self.entries.len()), entry),
            None => self.entries.push(entry),
        }
        self
    }

    /// Sets the body and its Content-Type (`None` removes Content-Type); Content-Length follows.
    pub fn set_body(&mut self, content_type: Option<&str>, body: impl Into<Bytes>) -> &mut Self {
        self.body = body.into();
        self.body_changed = true;
        match content_type {
            Some(ct) => {
                self.replace("Content-Type", ct);
            }
            None => {
                self.remove("Content-Type");
            }
        }
        self
    }

    /// Prints the message, fixing Content-Length when the body changed or it is missing, and
    /// parses the result with the default limits.
    pub fn build(&self) -> Result<Message, ParseError> {
        self.build_with(&Limits::DEFAULT)
    }

    /// As [`MessageBuilder::build`] with explicit limits.
    pub fn build_with(&self, limits: &Limits) -> Result<Message, ParseError> {
        // A new Content-Length (body changed, or none yet) takes the place of the first one
        // and the others are dropped; without any it goes last. Written while copying the
        // lines rather than into a copy of the entries: every response and forwarded request
        // is built here.
        let has_cl = self
            .entries
            .iter()
            .any(|e| e.name == HeaderName::ContentLength);
        let new_cl = (self.body_changed || !has_cl)
            .then(|| Entry::new("Content-Length", &self.body.len().to_string(), self.eol));
        let size = self.start_line.len()
            + self.entries.iter().map(|e| e.line.len()).sum::<usize>()
            + new_cl.as_ref().map_or(0, |e| e.line.len())
            + 2
            + self.body.len();
        let mut out = BytesMut::with_capacity(size);
        out.put_slice(&self.start_line);
        let mut cl_written = false;
        for e in &self.entries {
            match &new_cl {
                Some(cl) if e.name == HeaderName::ContentLength => {
                    if !cl_written {
                        out.put_slice(&cl.line);
                        cl_written = true;
                    }
                }
                _ => out.put_slice(&e.line),
            }
        }
        if let Some(cl) = new_cl.as_ref().filter(|_| !cl_written) {
            out.put_slice(&cl.line);
        }
        out.put_slice(self.eol);
        out.put_slice(&self.body);
        Message::parse_with(out.freeze(), limits, Transport::Stream)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> MessageBuilder {
        let mut b = MessageBuilder::request(Method::Invite, "sip:bob@biloxi.example.com");
        b.push(
            "Via",
            "SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds",
        )
        .push("Max-Forwards", "70")
        .push("To", "Bob <sip:bob@biloxi.example.com>")
        .push(
            "From",
            "Alice <sip:alice@atlanta.example.com>;tag=1928301774",
        )
        .push("Call-ID", "a84b4c76e66710@pc33.atlanta.example.com")
        .push("CSeq", "314159 INVITE");
        b
    }

    #[test]
    fn builds_with_content_length() {
        let mut b = base();
        b.set_body(Some("application/sdp"), &b"v=0\r\n"[..]);
        let m = b.build().unwrap();
        assert_eq!(m.content_length(), Some(5));
        assert_eq!(m.body_bytes(), b"v=0\r\n");
        assert_eq!(m.cseq().seq, 314159);
    }

    #[test]
    fn edit_keeps_untouched_bytes() {
        let raw = b"OPTIONS sip:a@b SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bKx\r\nX-Odd :  keep   this \r\nf: <sip:c@d>;tag=1\r\nt: <sip:a@b>\r\ni: 1\r\nCSeq: 1 OPTIONS\r\nl: 0\r\n\r\n";
        let m = Message::parse(&raw[..]).unwrap();
        let mut e = m.edit();
        e.push_front("Via", "SIP/2.0/TCP proxy;branch=z9hG4bKp");
        let m2 = e.build().unwrap();
        assert_eq!(m2.via_count(), 2);
        assert_eq!(m2.top_via_branch(), Some("z9hG4bKp"));
        let text = String::from_utf8_lossy(m2.as_bytes()).into_owned();
        assert!(text.contains("X-Odd :  keep   this \r\n"));
        assert!(text.ends_with("l: 0\r\n\r\n"));
        let mut e = m2.edit();
        assert_eq!(e.remove("via"), 2);
        assert!(e.build().is_err(), "a request without Via is refused");
    }

    #[test]
    fn replace_and_set_uri() {
        let mut b = base();
        b.replace("Max-Forwards", "69")
            .set_request_uri("sip:bob@192.0.2.4:5060");
        let m = b.build().unwrap();
        assert_eq!(m.max_forwards(), Some(69));
        assert_eq!(m.request_uri_str(), Some("sip:bob@192.0.2.4:5060"));
    }
}
