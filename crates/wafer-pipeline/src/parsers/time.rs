//! `time_format`: Fluent Bit's `strptime` (`src/flb_strptime.c`) and its
//! additions (`flb_parser_time_lookup` in `src/flb_parser.c`), on chrono.
//!
//! * `%L`: fractional seconds, up to 9 digits (Fluent Bit splits the format
//!   there, as strptime has no such directive; so does wafer).
//! * `%z`: `Z`, `UT`, `UTC`, `GMT`, `+hh`, `+hhmm`, `+hh:mm`, and the North
//!   American `EST`...`PDT`; `%Z`: a zone abbreviation from Fluent Bit's
//!   table (`UTC`, `CET`, `JST`, ...).
//! * A format without a year (`%b %d %H:%M:%S`, syslog's) gets the current
//!   year, and a format without month and day today's.
//! * As strptime, what follows the last directive is ignored.
//! * Without a zone in the format the time is UTC, unless `time_offset`
//!   (`+0200`), `time_system_timezone` or `time_zone` (see `zone.rs`) says
//!   otherwise.
//!
//! Every other directive is chrono's, which reads strptime's (`%Y %m %d %H
//! %M %S %b %a %e %j %p %I %y %s %T %F`...).

use chrono::format::{Item, Parsed, StrftimeItems, parse_and_remainder};
use chrono::{Datelike, Local, NaiveDateTime, TimeZone, Utc};

/// A compiled `time_format`.
#[derive(Debug, Clone)]
pub(super) struct TimeFormat {
    segments: Vec<Segment>,
    /// The format has a year (`%Y`, `%y`) or is an epoch (`%s`).
    with_year: bool,
    /// The format says the zone (`%z`, `%Z`, or a literal `Z` after the
    /// seconds): `time_offset` and the system zone do not apply.
    with_zone: bool,
    /// The zone of a time whose format does not say it.
    zone: Zone,
}

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    /// strptime directives and literal text, for chrono.
    Chrono(String),
    /// `%L`.
    Fraction,
    /// `%z`.
    Offset,
    /// `%Z`.
    Abbreviation,
}

/// The zone of a time whose format does not say it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Zone {
    /// Seconds east of UTC (`time_offset`; 0 by default).
    Fixed(i32),
    /// The host's zone (`time_system_timezone`).
    Local,
    /// An IANA zone (`time_zone`).
    Named(std::sync::Arc<super::zone::NamedZone>),
}

impl TimeFormat {
    /// Compiles `format`; an error names a directive chrono cannot read.
    pub(super) fn new(format: &str, zone: Zone) -> Result<TimeFormat, String> {
        // chrono refuses a year given twice, so the directives holding one
        // count too (strptime lets the later win).
        let with_year = ["%Y", "%y", "%s", "%F", "%D", "%c", "%G", "%g"]
            .iter()
            .any(|d| format.contains(d));
        let with_zone = ["%z", "%Z", "%SZ", "%S.%LZ"]
            .iter()
            .any(|d| format.contains(d));
        let mut segments = Vec::new();
        if !with_year {
            segments.push(Segment::Chrono("%Y ".into()));
        }
        let mut text = String::new();
        let mut chars = format.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '%' {
                text.push(c);
                continue;
            }
            let special = match chars.peek() {
                Some('L') => Some(Segment::Fraction),
                Some('z') => Some(Segment::Offset),
                Some('Z') => Some(Segment::Abbreviation),
                _ => None,
            };
            match special {
                Some(segment) => {
                    chars.next();
                    if !text.is_empty() {
                        segments.push(Segment::Chrono(std::mem::take(&mut text)));
                    }
                    segments.push(segment);
                }
                None => {
                    // The directive with its modifiers (`%-d`, `%:z`), whole.
                    text.push('%');
                    while let Some(&next) = chars.peek() {
                        text.push(next);
                        chars.next();
                        if next.is_ascii_alphabetic() || next == '%' {
                            break;
                        }
                    }
                }
            }
        }
        if !text.is_empty() {
            segments.push(Segment::Chrono(text));
        }
        for segment in &segments {
            if let Segment::Chrono(text) = segment
                && StrftimeItems::new(text).any(|item| item == Item::Error)
            {
                return Err(format!(
                    "time_format `{format}`: `{text}` holds a directive wafer cannot read"
                ));
            }
        }
        Ok(TimeFormat {
            segments,
            with_year,
            with_zone,
            zone,
        })
    }

    /// The instant `text` says, as seconds and nanoseconds since the
    /// epoch; `now` fills in a missing year (and month and day).
    pub(super) fn parse(
        &self,
        text: &str,
        now: chrono::DateTime<Utc>,
    ) -> Result<(i64, u32), String> {
        let today = match &self.zone {
            Zone::Local => now.with_timezone(&Local).date_naive(),
            Zone::Fixed(_) => now.date_naive(),
            Zone::Named(zone) => {
                let offset = chrono::Duration::seconds(zone.offset_at(now.timestamp()).into());
                (now + offset).date_naive()
            }
        };
        let owned;
        let mut rest = if self.with_year {
            text
        } else {
            owned = format!("{} {text}", today.year());
            owned.as_str()
        };
        let mut parsed = Parsed::new();
        let mut fraction = None;
        let mut offset = None;
        let unreadable = |why: &str| format!("`{text}` does not fit the time_format: {why}");
        for segment in &self.segments {
            match segment {
                Segment::Chrono(format) => {
                    rest = parse_and_remainder(&mut parsed, rest, StrftimeItems::new(format))
                        .map_err(|e| unreadable(&e.to_string()))?;
                }
                Segment::Fraction => {
                    let digits = rest.bytes().take(9).take_while(u8::is_ascii_digit).count();
                    if digits == 0 {
                        return Err(unreadable("no digits where %L is"));
                    }
                    let value: u32 = rest[..digits].parse().unwrap_or(0);
                    fraction = Some(value * 10u32.pow(9 - digits as u32));
                    rest = &rest[digits..];
                }
                Segment::Offset => {
                    let (seconds, after) = numeric_offset(rest)
                        .ok_or_else(|| unreadable("no zone offset where %z is"))?;
                    offset = Some(seconds);
                    rest = after;
                }
                Segment::Abbreviation => {
                    let (seconds, after) = abbreviation(rest)
                        .ok_or_else(|| unreadable("no known zone abbreviation where %Z is"))?;
                    offset = Some(seconds);
                    rest = after;
                }
            }
        }
        let nanos = fraction.or(parsed.nanosecond()).unwrap_or(0);
        if let Some(seconds) = parsed.timestamp() {
            return Ok((seconds, nanos));
        }
        let naive = naive_datetime(&mut parsed, today).map_err(|e| unreadable(&e))?;
        let offset = match (offset.or(parsed.offset()), self.with_zone, &self.zone) {
            (Some(seconds), _, _) => seconds,
            (None, true, _) => 0,
            (None, false, Zone::Fixed(seconds)) => *seconds,
            (None, false, Zone::Local) => Local
                .from_local_datetime(&naive)
                .earliest()
                .map_or(0, |local| local.offset().local_minus_utc()),
            (None, false, Zone::Named(zone)) => zone.offset_of_local(naive.and_utc().timestamp()),
        };
        Ok((naive.and_utc().timestamp() - i64::from(offset), nanos))
    }
}

/// The date and time `parsed` holds; what strptime leaves zero is
/// midnight, and a date without month and day is `today`'s (Fluent Bit's
/// default, for formats without a year) or the year's first.
fn naive_datetime(parsed: &mut Parsed, today: chrono::NaiveDate) -> Result<NaiveDateTime, String> {
    let set = |r: chrono::format::ParseResult<()>| r.map_err(|e| e.to_string());
    if parsed.month().is_none() && parsed.ordinal().is_none() && parsed.isoweek().is_none() {
        if parsed.year() == Some(today.year()) {
            set(parsed.set_month(today.month().into()))?;
            if parsed.day().is_none() {
                set(parsed.set_day(today.day().into()))?;
            }
        } else {
            set(parsed.set_month(1))?;
        }
    }
    if parsed.day().is_none() && parsed.ordinal().is_none() && parsed.weekday().is_none() {
        set(parsed.set_day(1))?;
    }
    if parsed.hour_div_12().is_none() {
        match parsed.hour_mod_12() {
            Some(_) => set(parsed.set_ampm(false))?,
            None => set(parsed.set_hour(0))?,
        }
    }
    if parsed.minute().is_none() {
        set(parsed.set_minute(0))?;
    }
    let date = parsed.to_naive_date().map_err(|e| e.to_string())?;
    let time = parsed.to_naive_time().map_err(|e| e.to_string())?;
    Ok(NaiveDateTime::new(date, time))
}

/// A `time_offset` value (`+0900`, `-05:00`, `Z`): seconds east of UTC.
pub(super) fn parse_time_offset(text: &str) -> Result<i32, String> {
    match numeric_offset(text.trim()) {
        Some((seconds, "")) => Ok(seconds),
        _ => Err(format!(
            "time_offset `{text}` is not an offset like +0900, -05:00 or Z"
        )),
    }
}

/// `%z`: an offset at the start of `text`, and what follows it.
fn numeric_offset(text: &str) -> Option<(i32, &str)> {
    let text = text.trim_start();
    for (name, seconds) in [("UTC", 0), ("UT", 0), ("GMT", 0), ("Z", 0)] {
        if let Some(rest) = text.strip_prefix(name) {
            return Some((seconds, rest));
        }
    }
    for (i, name) in ["EST", "CST", "MST", "PST"].iter().enumerate() {
        if let Some(rest) = text.strip_prefix(name) {
            return Some(((-5 - i as i32) * 3600, rest));
        }
    }
    for (i, name) in ["EDT", "CDT", "MDT", "PDT"].iter().enumerate() {
        if let Some(rest) = text.strip_prefix(name) {
            return Some(((-4 - i as i32) * 3600, rest));
        }
    }
    let sign = match text.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits = |s: &str| -> Option<i32> {
        (s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok())?
    };
    let body = &text[1..];
    let hours = digits(body.get(..2)?)?;
    let after_hours = &body[2..];
    let (minutes, rest) = if let Some(m) = after_hours.strip_prefix(':') {
        (digits(m.get(..2)?)?, &m[2..])
    } else if let Some(m) = after_hours.get(..2).and_then(digits) {
        (m, &after_hours[2..])
    } else {
        (0, after_hours)
    };
    (hours <= 23 && minutes <= 59).then_some((sign * (hours * 3600 + minutes * 60), rest))
}

/// `%Z`: a zone abbreviation at the start of `text` (Fluent Bit's table),
/// not followed by a letter or digit, and what follows it.
fn abbreviation(text: &str) -> Option<(i32, &str)> {
    const H: i32 = 3600;
    #[rustfmt::skip]
    const ZONES: &[(&str, i32)] = &[
        ("GMT", 0), ("UTC", 0), ("Z", 0), ("UT", 0),
        ("EST", -5 * H), ("EDT", -4 * H), ("CST", -6 * H), ("CDT", -5 * H),
        ("MST", -7 * H), ("MDT", -6 * H), ("PST", -8 * H), ("PDT", -7 * H),
        ("AKST", -9 * H), ("AKDT", -8 * H), ("HST", -10 * H), ("HADT", -9 * H),
        ("AST", -4 * H), ("ADT", -3 * H), ("NST", -7 * H / 2), ("NDT", -5 * H / 2),
        ("WET", 0), ("WEST", H), ("CET", H), ("CEST", 2 * H), ("EET", 2 * H),
        ("EEST", 3 * H), ("MSK", 3 * H),
        ("ART", -3 * H), ("BRT", -3 * H), ("BRST", -2 * H), ("CLT", -4 * H), ("CLST", -3 * H),
        ("AEST", 10 * H), ("AEDT", 11 * H), ("ACST", 19 * H / 2), ("ACDT", 21 * H / 2),
        ("AWST", 8 * H), ("NZST", 12 * H), ("NZDT", 13 * H),
        ("JST", 9 * H), ("KST", 9 * H), ("SGT", 8 * H), ("IST", 11 * H / 2), ("GST", 4 * H),
        ("ICT", 7 * H), ("WIB", 7 * H), ("WITA", 8 * H), ("WIT", 9 * H), ("MYT", 8 * H),
        ("BDT", 6 * H), ("NPT", 23 * H / 4),
        ("WAT", H), ("CAT", 2 * H), ("EAT", 3 * H), ("SAST", 2 * H),
    ];
    let text = text.trim_start();
    ZONES.iter().find_map(|&(name, seconds)| {
        let head = text.get(..name.len())?;
        let rest = &text[name.len()..];
        let ends = !rest.starts_with(|c: char| c.is_ascii_alphanumeric());
        (head.eq_ignore_ascii_case(name) && ends).then_some((seconds, rest))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> chrono::DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 3, 4, 5, 6, 7).unwrap()
    }

    fn at(format: &str, text: &str) -> Result<(i64, u32), String> {
        TimeFormat::new(format, Zone::Fixed(0))?.parse(text, now())
    }

    fn epoch(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> i64 {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s)
            .unwrap()
            .timestamp()
    }

    #[test]
    fn fractions_and_offsets_read_as_fluent_bit_reads_them() {
        let t = epoch(2024, 5, 6, 7, 8, 9);
        assert_eq!(
            at("%Y-%m-%dT%H:%M:%S.%L%z", "2024-05-06T09:08:09.123+0200"),
            Ok((t, 123_000_000))
        );
        assert_eq!(
            at("%Y-%m-%dT%H:%M:%S.%L%z", "2024-05-06T09:08:09.5+02:00"),
            Ok((t, 500_000_000))
        );
        assert_eq!(
            at("%Y-%m-%dT%H:%M:%S.%LZ", "2024-05-06T07:08:09.000000001Z"),
            Ok((t, 1))
        );
        assert_eq!(
            at("%Y-%m-%d %H:%M:%S %z", "2024-05-06 07:08:09 Z"),
            Ok((t, 0))
        );
        assert_eq!(
            at("%Y-%m-%d %H:%M:%S %Z", "2024-05-06 16:08:09 JST"),
            Ok((t, 0))
        );
        assert_eq!(
            at("%d/%b/%Y:%H:%M:%S %z", "06/May/2024:02:08:09 -0500"),
            Ok((t, 0))
        );
        assert_eq!(at("%s", "1714979289"), Ok((t, 0)));
        // What follows the format is ignored, as strptime ignores it.
        assert_eq!(
            at("%Y-%m-%d", "2024-05-06 trailing"),
            Ok((epoch(2024, 5, 6, 0, 0, 0), 0))
        );
        assert!(at("%Y-%m-%dT%H:%M:%S.%L", "2024-05-06T07:08:09.x").is_err());
        assert!(at("%Y-%m-%d", "yesterday").is_err());
    }

    #[test]
    fn a_format_without_a_year_takes_the_current_one() {
        assert_eq!(
            at("%b %d %H:%M:%S", "Jan 02 03:04:05"),
            Ok((epoch(2025, 1, 2, 3, 4, 5), 0))
        );
        assert_eq!(
            at("%H:%M:%S", "10:11:12"),
            Ok((epoch(2025, 3, 4, 10, 11, 12), 0))
        );
    }

    #[test]
    fn a_time_without_a_zone_takes_time_offset() {
        let east = TimeFormat::new("%Y-%m-%d %H:%M:%S", Zone::Fixed(9 * 3600)).unwrap();
        assert_eq!(
            east.parse("2024-05-06 16:08:09", now()),
            Ok((epoch(2024, 5, 6, 7, 8, 9), 0))
        );
        // A zone in the text wins.
        let zoned = TimeFormat::new("%Y-%m-%d %H:%M:%S%z", Zone::Fixed(9 * 3600)).unwrap();
        assert_eq!(
            zoned.parse("2024-05-06 07:08:09+0000", now()),
            Ok((epoch(2024, 5, 6, 7, 8, 9), 0))
        );
        assert_eq!(parse_time_offset("-05:30"), Ok(-(5 * 3600 + 1800)));
        assert_eq!(parse_time_offset("+0900"), Ok(9 * 3600));
        assert!(parse_time_offset("nine").is_err());
    }

    #[test]
    fn unknown_directives_are_refused_when_compiled() {
        let refused = TimeFormat::new("%Y %Q", Zone::Fixed(0)).unwrap_err();
        assert!(refused.contains("%Q"), "{refused}");
    }
}
