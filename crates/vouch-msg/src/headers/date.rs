//! Date (RFC 3261 §20.17): `SIP-date = rfc1123-date`, e.g. `Thu, 21 Feb 2002 13:02:03 GMT`,
//! read and written. An RFC 4474 authentication service adds it (§6.1 step 3) and signs it as
//! printed, and verifiers check its freshness (§6.2 step 4), so the reading is strict.
//!
//! Grammar choices:
//! * Only `GMT` is accepted; any other zone (`EST`, RFC 4475 §3.1.2.12) is an error.
//! * Weekday, month and `GMT` are case-insensitive, as RFC 5234 quoted strings are; the printer
//!   writes the grammar's capitalisation (RFC 4474's digest-string needs that form).
//! * Where the grammar has SP any run of LWS is accepted (RFC 3261 §7.3.1 gives LWS the
//!   meaning of SP), so a folded Date reads; nothing may precede the comma.
//! * Fields are range-checked: day valid for its month in the proleptic Gregorian calendar,
//!   time 00:00:00–23:59:59 as the grammar's comment says (no leap second), year 4DIGIT. The
//!   weekday must agree with the date: a signed Date must mean one instant only.
//!
//! Conversions use the days-from-civil / civil-from-days algorithms of H. Hinnant
//! ("chrono-Compatible Low-Level Date Algorithms"), exact over the whole 0000–9999 range.

use std::fmt;

use crate::error::{ErrorKind, ParseError};
use crate::scan::Cursor;

const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// A SIP-date, always in GMT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SipDate {
    // Field order makes the derived ordering chronological.
    year: u16,
    month: u8,
    day: u8,
    hour: u8,
    minute: u8,
    second: u8,
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: u8) -> u8 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (month 1..=12).
fn days_from_civil(year: i64, month: u8, day: u8) -> i64 {
    let (m, d) = (i64::from(month), i64::from(day));
    // Count years from March so the leap day is the last day of the year.
    let y = if m <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12; // March = 0
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian (year, month, day) of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = (if mp < 10 { mp + 3 } else { mp - 9 }) as u8;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

impl SipDate {
    /// Year (0..=9999).
    pub fn year(&self) -> u16 {
        self.year
    }
    /// Month (1..=12).
    pub fn month(&self) -> u8 {
        self.month
    }
    /// Day of the month (1..=31).
    pub fn day(&self) -> u8 {
        self.day
    }
    /// Hour (0..=23).
    pub fn hour(&self) -> u8 {
        self.hour
    }
    /// Minute (0..=59).
    pub fn minute(&self) -> u8 {
        self.minute
    }
    /// Second (0..=59).
    pub fn second(&self) -> u8 {
        self.second
    }

    fn days(&self) -> i64 {
        days_from_civil(i64::from(self.year), self.month, self.day)
    }

    /// The weekday as the grammar writes it (`Mon` … `Sun`).
    pub fn weekday(&self) -> &'static str {
        // 1970-01-01 was a Thursday (index 3 from Monday).
        WEEKDAYS[(self.days() + 3).rem_euclid(7) as usize]
    }

    /// Seconds since 1970-01-01 00:00:00 GMT (negative before).
    pub fn unix_seconds(&self) -> i64 {
        self.days() * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second)
    }

    /// The date of a Unix time; `None` outside years 0000–9999, which rfc1123-date cannot
    /// write.
    pub fn from_unix_seconds(secs: i64) -> Option<Self> {
        let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
        let rem = secs.rem_euclid(86_400);
        Some(SipDate {
            year: u16::try_from(year).ok().filter(|&y| y <= 9999)?,
            month,
            day,
            hour: (rem / 3600) as u8,
            minute: (rem / 60 % 60) as u8,
            second: (rem % 60) as u8,
        })
    }

    /// Parses `wkday "," SP date1 SP time SP "GMT"`.
    pub fn parse(value: &str) -> Result<Self, ParseError> {
        let mut c = Cursor::new(value);
        c.skip_lws();
        let wk_at = c.pos();
        let wkday = name(&mut c, &WEEKDAYS, "bad weekday in Date")?;
        if !c.eat(b',') {
            return Err(c.err("expected ',' after weekday in Date"));
        }
        space(&mut c)?;
        let day = digits(&mut c, 2, "Date day must be 2 digits")? as u8;
        space(&mut c)?;
        let month = name(&mut c, &MONTHS, "bad month in Date")? as u8 + 1;
        space(&mut c)?;
        let year_at = c.pos();
        let year = digits(&mut c, 4, "Date year must be 4 digits")? as u16;
        if day == 0 || day > days_in_month(i64::from(year), month) {
            return Err(ParseError::new(
                ErrorKind::BadHeaderValue,
                year_at,
                "day out of range for month in Date",
            ));
        }
        space(&mut c)?;
        let hour = digits(&mut c, 2, "Date hour must be 2 digits")? as u8;
        if !c.eat(b':') {
            return Err(c.err("expected ':' in Date time"));
        }
        let minute = digits(&mut c, 2, "Date minute must be 2 digits")? as u8;
        if !c.eat(b':') {
            return Err(c.err("expected ':' in Date time"));
        }
        let second = digits(&mut c, 2, "Date second must be 2 digits")? as u8;
        if hour > 23 || minute > 59 || second > 59 {
            return Err(c.err("time out of range in Date"));
        }
        space(&mut c)?;
        let zone = c.take_while(|b| b.is_ascii_alphanumeric());
        if !zone.eq_ignore_ascii_case("GMT") {
            return Err(c.err("Date must be in GMT"));
        }
        c.skip_lws();
        if !c.at_end() {
            return Err(c.err("unexpected text after Date"));
        }
        let date = SipDate {
            year,
            month,
            day,
            hour,
            minute,
            second,
        };
        if date.weekday() != WEEKDAYS[wkday] {
            return Err(ParseError::new(
                ErrorKind::BadHeaderValue,
                wk_at,
                "weekday does not match the date",
            ));
        }
        Ok(date)
    }
}

/// One of `names`, case-insensitive; returns its index.
fn name(c: &mut Cursor<'_>, names: &[&str], detail: &'static str) -> Result<usize, ParseError> {
    let at = c.pos();
    let w = c.take_while(|b| b.is_ascii_alphabetic());
    names
        .iter()
        .position(|n| n.eq_ignore_ascii_case(w))
        .ok_or_else(|| ParseError::new(ErrorKind::BadHeaderValue, at, detail))
}

/// Exactly `n` digits.
fn digits(c: &mut Cursor<'_>, n: usize, detail: &'static str) -> Result<u32, ParseError> {
    let at = c.pos();
    let d = c.take_while(|b| b.is_ascii_digit());
    if d.len() != n {
        return Err(ParseError::new(ErrorKind::BadHeaderValue, at, detail));
    }
    Ok(d.bytes().fold(0, |v, b| v * 10 + u32::from(b - b'0')))
}

/// At least one LWS where the grammar has SP.
fn space(c: &mut Cursor<'_>) -> Result<(), ParseError> {
    let before = c.pos();
    c.skip_lws();
    if c.pos() == before {
        return Err(c.err("expected space in Date"));
    }
    Ok(())
}

impl fmt::Display for SipDate {
    /// The rfc1123-date form, one SP per SP, capitalised as the grammar writes it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
            self.weekday(),
            self.day,
            MONTHS[usize::from(self.month - 1) % 12],
            self.year,
            self.hour,
            self.minute,
            self.second
        )
    }
}

/// The SIP-date text of a Unix time (for an authentication service adding Date); `None`
/// outside years 0000–9999.
pub fn format_sip_date(unix_seconds: i64) -> Option<String> {
    SipDate::from_unix_seconds(unix_seconds).map(|d| d.to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const MIN: i64 = -62_167_219_200; // 0000-01-01 00:00:00
    const MAX: i64 = 253_402_300_799; // 9999-12-31 23:59:59

    #[test]
    fn reads_the_rfc4474_example_date() {
        let d = SipDate::parse("Thu, 21 Feb 2002 13:02:03 GMT").unwrap();
        assert_eq!(d.unix_seconds(), 1_014_296_523);
        assert_eq!((d.year(), d.month(), d.day()), (2002, 2, 21));
        assert_eq!((d.hour(), d.minute(), d.second()), (13, 2, 3));
        assert_eq!(d.weekday(), "Thu");
        assert_eq!(
            SipDate::parse("Thu, 21 Feb 2002 14:19:51 GMT")
                .unwrap()
                .unix_seconds(),
            1_014_301_191
        );
    }

    #[test]
    fn known_dates_convert_both_ways() {
        for (text, secs) in [
            ("Thu, 01 Jan 1970 00:00:00 GMT", 0),
            ("Wed, 31 Dec 1969 23:59:59 GMT", -1),
            ("Sun, 09 Sep 2001 01:46:40 GMT", 1_000_000_000),
            ("Tue, 29 Feb 2000 12:00:00 GMT", 951_825_600),
            ("Tue, 19 Jan 2038 03:14:08 GMT", 2_147_483_648),
            ("Sat, 01 Jan 0000 00:00:00 GMT", MIN),
            ("Fri, 31 Dec 9999 23:59:59 GMT", MAX),
            ("Wed, 01 Mar 1600 00:00:00 GMT", -11_670_912_000),
        ] {
            let d = SipDate::parse(text).unwrap();
            assert_eq!(d.unix_seconds(), secs, "{text}");
            assert_eq!(format_sip_date(secs).unwrap(), text);
        }
    }

    #[test]
    fn round_trips_across_the_whole_range() {
        // A stride coprime with 86400 visits every time of day and many calendar edges.
        let mut s = MIN;
        while s <= MAX {
            let text = format_sip_date(s).unwrap();
            assert_eq!(SipDate::parse(&text).unwrap().unix_seconds(), s, "{text}");
            s += 7_777_777;
        }
        // Every day around leap-year boundaries, 1896–1904 and 1996–2004.
        for start in [-2_335_219_200_i64, 820_454_400] {
            for day in 0..(9 * 366) {
                let s = start + day * 86_400 + 86_399;
                let d = SipDate::from_unix_seconds(s).unwrap();
                assert_eq!(d.unix_seconds(), s);
                assert_eq!(SipDate::parse(&d.to_string()).unwrap(), d);
            }
        }
    }

    #[test]
    fn out_of_range_unix_times_have_no_sip_date() {
        assert_eq!(SipDate::from_unix_seconds(MIN - 1), None);
        assert_eq!(SipDate::from_unix_seconds(MAX + 1), None);
        assert_eq!(SipDate::from_unix_seconds(i64::MIN), None);
        assert_eq!(SipDate::from_unix_seconds(i64::MAX), None);
    }

    #[test]
    fn accepts_folding_and_any_case_and_prints_canonically() {
        let d = SipDate::parse(" thu,\r\n 21  FEB 2002\t13:02:03 gmt ").unwrap();
        assert_eq!(d.to_string(), "Thu, 21 Feb 2002 13:02:03 GMT");
    }

    #[test]
    fn refuses_other_zones_like_rfc4475_baddate() {
        let e = SipDate::parse("Fri, 01 Jan 2010 16:00:00 EST").unwrap_err();
        assert_eq!(e.detail(), "Date must be in GMT");
        assert!(SipDate::parse("Fri, 01 Jan 2010 16:00:00 UTC").is_err());
        assert!(SipDate::parse("Fri, 01 Jan 2010 16:00:00 +0000").is_err());
        assert!(SipDate::parse("Fri, 01 Jan 2010 16:00:00").is_err());
    }

    #[test]
    fn refuses_malformed_dates() {
        for v in [
            "",
            "Thu 21 Feb 2002 13:02:03 GMT",
            "Thu , 21 Feb 2002 13:02:03 GMT",
            "Thu,21 Feb 2002 13:02:03 GMT",
            "Thursday, 21 Feb 2002 13:02:03 GMT",
            "Thu, 1 Feb 2002 13:02:03 GMT",
            "Thu, 021 Feb 2002 13:02:03 GMT",
            "Thu, 21 February 2002 13:02:03 GMT",
            "Thu, 21 Feb 02 13:02:03 GMT",
            "Thu, 21 Feb 02002 13:02:03 GMT",
            "Thu, 21 Feb 2002 13:2:03 GMT",
            "Thu, 21 Feb 2002 13 :02:03 GMT",
            "Thu, 21 Feb 2002 24:00:00 GMT",
            "Thu, 21 Feb 2002 23:60:00 GMT",
            "Thu, 21 Feb 2002 23:59:60 GMT",
            "Thu, 21 Feb 2002 13:02:03 GMT x",
            "Thu, 21 Feb 2002 13:02:03GMT",
            "Fri, 21 Feb 2002 13:02:03 GMT",
            "Thu, 30 Feb 2002 13:02:03 GMT",
            "Thu, 00 Feb 2002 13:02:03 GMT",
            "Thu, 29 Feb 1900 00:00:00 GMT",
            "Thu, 31 Apr 2002 00:00:00 GMT",
            "Thu, 21 Feb 2002 13:02:03 GMT,",
            "Thu, ２1 Feb 2002 13:02:03 GMT",
        ] {
            assert!(SipDate::parse(v).is_err(), "{v:?}");
        }
        assert!(SipDate::parse("Tue, 29 Feb 2000 00:00:00 GMT").is_ok());
        assert!(SipDate::parse("Mon, 29 Feb 2100 00:00:00 GMT").is_err());
    }

    #[test]
    fn never_panics_on_prefixes() {
        let s = "Thu, 21 Feb 2002 13:02:03 GMT\u{e9}";
        for i in 0..=s.len() {
            if s.is_char_boundary(i) {
                let _ = SipDate::parse(&s[..i]);
            }
        }
    }
}
