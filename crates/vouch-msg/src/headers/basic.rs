//! Scalar and simple headers: CSeq (RFC 3261 §20.16), Call-ID (§20.8), Max-Forwards
//! (§20.22), Content-Length (§20.14), Content-Type (§20.15), Expires (§20.19) and option-tag
//! lists (Require §20.32, Supported §20.37, Proxy-Require §20.29, Unsupported §20.40).

use crate::error::{ErrorKind, ParseError};
use crate::method::Method;
use crate::scan::{Cursor, Params, class, is_token_char, scan_class, sub, trim_lws};

/// CSeq: sequence number and method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CSeq<'a> {
    /// The sequence number (< 2^31, RFC 3261 §8.1.1.5).
    pub seq: u32,
    /// The method.
    pub method: Method<'a>,
}

impl<'a> CSeq<'a> {
    /// Parses `1*DIGIT LWS Method`.
    pub fn parse(value: &'a str) -> Result<Self, ParseError> {
        Self::parse_raw(value).map(|(seq, m)| CSeq {
            seq,
            method: Method::from_token(m),
        })
    }

    /// Parses and returns the method token as written (a slice of `value`).
    pub(crate) fn parse_raw(value: &'a str) -> Result<(u32, &'a str), ParseError> {
        let mut c = Cursor::new(value);
        c.skip_lws();
        let digits = c.take_while(|b| b.is_ascii_digit());
        let seq = parse_bounded(digits, 0x7fff_ffff)
            .ok_or_else(|| c.err("CSeq number missing or not below 2^31"))?;
        let before = c.pos();
        c.skip_lws();
        if c.pos() == before {
            return Err(c.err("expected whitespace after CSeq number"));
        }
        let m = c.token("missing CSeq method")?;
        c.skip_lws();
        if !c.at_end() {
            return Err(c.err("unexpected text after CSeq method"));
        }
        Ok((seq, m))
    }
}

/// Parses a decimal of up to ten digits not above `max`; leading zeros allowed.
pub(crate) fn parse_bounded(digits: &str, max: u64) -> Option<u32> {
    if digits.is_empty() {
        return None;
    }
    // Leading zeros trimmed as bytes; `0` is ASCII, so this is the same cut as on chars.
    let d = digits.as_bytes();
    let trimmed = &d[d.iter().take_while(|&&c| c == b'0').count()..];
    if trimmed.len() > 10 {
        return None;
    }
    let mut v: u64 = 0;
    for &b in trimmed {
        v = v * 10 + u64::from(b - b'0');
    }
    if v > max { None } else { u32::try_from(v).ok() }
}

fn whole_number(value: &str, max: u64, detail: &'static str) -> Result<u32, ParseError> {
    // A few digits and nothing else, the usual value, in one pass.
    let b = value.as_bytes();
    if (1..=9).contains(&b.len()) && b.iter().all(u8::is_ascii_digit) {
        let v = b.iter().fold(0u64, |v, &d| v * 10 + u64::from(d - b'0'));
        return if v <= max {
            Ok(v as u32)
        } else {
            Err(ParseError::new(ErrorKind::BadHeaderValue, 0, detail))
        };
    }
    let t = trim_lws(value);
    if !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError::new(ErrorKind::BadHeaderValue, 0, detail));
    }
    parse_bounded(t, max).ok_or_else(|| ParseError::new(ErrorKind::BadHeaderValue, 0, detail))
}

/// Max-Forwards: 0..=255.
pub fn parse_max_forwards(value: &str) -> Result<u8, ParseError> {
    whole_number(value, 255, "Max-Forwards must be a number from 0 to 255").map(|v| v as u8)
}

/// Content-Length: a non-negative decimal that fits in 32 bits.
pub fn parse_content_length(value: &str) -> Result<u32, ParseError> {
    whole_number(
        value,
        u64::from(u32::MAX),
        "Content-Length must be a non-negative number",
    )
    .map_err(|e| ParseError::new(ErrorKind::BadContentLength, e.offset(), e.detail()))
}

/// Expires / Min-Expires: delta-seconds, saturating at 2^32-1 (RFC 3261 §10.2.1.1).
pub fn parse_expires(value: &str) -> Result<u32, ParseError> {
    let t = trim_lws(value);
    crate::headers::addr::parse_delta_seconds(t).ok_or_else(|| {
        ParseError::new(
            ErrorKind::BadHeaderValue,
            0,
            "Expires must be delta-seconds",
        )
    })
}

/// RFC 3261 `callid = word [ "@" word ]`.
pub fn parse_call_id(value: &str) -> Result<&str, ParseError> {
    let t = trim_lws(value);
    let b = t.as_bytes();
    // One scan per word; `@` is not a word character, so the first stop tells the two forms
    // apart.
    let first = scan_class(b, 0, class::WORD);
    let valid = first > 0
        && (first == b.len()
            || (b[first] == b'@' && {
                let second = scan_class(b, first + 1, class::WORD);
                second > first + 1 && second == b.len()
            }));
    if valid {
        Ok(t)
    } else {
        Err(ParseError::new(
            ErrorKind::BadHeaderValue,
            0,
            "malformed Call-ID",
        ))
    }
}

/// A media type with parameters (Content-Type, Accept entries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaType<'a> {
    /// The type (`application`).
    pub top: &'a str,
    /// The subtype (`sdp`).
    pub sub: &'a str,
    /// Parameters such as `boundary` or `smime-type`.
    pub params: Params<'a>,
}

impl<'a> MediaType<'a> {
    /// Parses `type "/" subtype *( ";" param )`.
    pub fn parse(value: &'a str) -> Result<Self, ParseError> {
        // `type/subtype` alone, the usual value, is read in one pass; the reading below gives
        // the same for it and handles everything else.
        let b = value.as_bytes();
        let slash = scan_class(b, 0, class::TOKEN);
        if slash > 0 && b.get(slash) == Some(&b'/') {
            let end = scan_class(b, slash + 1, class::TOKEN);
            if end > slash + 1 && end == b.len() {
                return Ok(MediaType {
                    top: sub(value, 0, slash),
                    sub: sub(value, slash + 1, end),
                    params: Params::from_raw(sub(value, end, end)),
                });
            }
        }
        let mut c = Cursor::new(value);
        c.skip_lws();
        let top = c.token("missing media type")?;
        c.expect_sep(b'/', "expected '/' in media type")?;
        let sub = c.token("missing media subtype")?;
        let params = c.params(|_| false)?;
        c.skip_lws();
        if !c.at_end() {
            return Err(c.err("unexpected text after media type"));
        }
        Ok(MediaType { top, sub, params })
    }

    /// Case-insensitive comparison with `type/subtype`.
    pub fn is(&self, type_slash_sub: &str) -> bool {
        type_slash_sub.split_once('/').is_some_and(|(t, s)| {
            t.eq_ignore_ascii_case(self.top) && s.eq_ignore_ascii_case(self.sub)
        })
    }
}

/// Splits a comma-separated token list (option tags, methods of Allow); refuses empty items
/// and non-token characters, with the offset of the first offending byte (or of the empty
/// item) in `value`.
pub fn parse_token_list(value: &str) -> Result<Vec<&str>, ParseError> {
    if trim_lws(value).is_empty() {
        return Ok(Vec::new());
    }
    let mut items = Vec::new();
    let mut item_start = 0;
    for item in value.split(',') {
        let t = trim_lws(item);
        let lead = item.len() - item.trim_start_matches([' ', '\t', '\r', '\n']).len();
        let bad = if t.is_empty() {
            Some(lead)
        } else {
            t.bytes().position(|b| !is_token_char(b)).map(|i| lead + i)
        };
        if let Some(at) = bad {
            return Err(ParseError::new(
                ErrorKind::BadHeaderValue,
                item_start + at,
                "malformed token list",
            ));
        }
        items.push(t);
        // `,` is one byte.
        item_start += item.len() + 1;
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cseq_allows_leading_zeros_and_folding() {
        let c = CSeq::parse("0009\r\n  INVITE").unwrap();
        assert_eq!(c.seq, 9);
        assert_eq!(c.method, Method::Invite);
    }

    #[test]
    fn cseq_refuses_out_of_range() {
        assert!(CSeq::parse("36893488147419103232 REGISTER").is_err());
        assert!(CSeq::parse("2147483648 INVITE").is_err());
        assert!(CSeq::parse("2147483647 INVITE").is_ok());
        assert!(CSeq::parse("INVITE").is_err());
    }

    #[test]
    fn scalars() {
        assert_eq!(parse_max_forwards(" 0068 ").unwrap(), 68);
        assert!(parse_max_forwards("300").is_err());
        assert!(parse_content_length("-999").is_err());
        assert!(parse_content_length("five").is_err());
        assert_eq!(parse_expires("10000000000000000000000").unwrap(), u32::MAX);
        assert!(parse_call_id("a b").is_err());
        assert_eq!(parse_call_id(" abc@192.0.2.1 ").unwrap(), "abc@192.0.2.1");
    }

    #[test]
    fn media_type() {
        let m = MediaType::parse("multipart/mixed ; boundary=\"xyz\"").unwrap();
        assert!(m.is("Multipart/Mixed"));
        assert_eq!(m.params.get("boundary"), Some(Some("\"xyz\"")));
        assert_eq!(
            parse_token_list("100rel, timer ,path").unwrap(),
            vec!["100rel", "timer", "path"]
        );
    }
}
