//! RFC 3339 timestamps as the CRDs carry them (`2025-01-01T00:00:00Z`,
//! `2025-01-01T02:00:00.5+02:00`). The sidecar accepts UTC (`Z`) only, so
//! the compiler normalizes every time to UTC with millisecond precision.

use fabric_core::Timestamp;
use fabric_core::config::format_rfc3339;

fn number(text: &str, range: std::ops::Range<usize>, what: &str) -> Result<i64, String> {
    let part = text.get(range).ok_or_else(|| format!("{text:?}: too short for an RFC 3339 time"))?;
    if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{text:?}: {what} is not a number"));
    }
    part.parse::<i64>().map_err(|_| format!("{text:?}: {what} is out of range"))
}

fn expect(text: &str, at: usize, separators: &[u8]) -> Result<(), String> {
    match text.as_bytes().get(at) {
        Some(b) if separators.contains(b) => Ok(()),
        _ => Err(format!("{text:?}: not an RFC 3339 time (expected e.g. 2025-01-31T12:00:00Z)")),
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

fn days_in_month(year: i64, month: i64) -> i64 {
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Milliseconds since the Unix epoch of an RFC 3339 time (fractions below
/// a millisecond are dropped).
pub fn parse_rfc3339_millis(text: &str) -> Result<i64, String> {
    expect(text, 4, b"-")?;
    expect(text, 7, b"-")?;
    expect(text, 10, b"Tt")?;
    expect(text, 13, b":")?;
    expect(text, 16, b":")?;
    let year = number(text, 0..4, "year")?;
    let month = number(text, 5..7, "month")?;
    let day = number(text, 8..10, "day")?;
    let hour = number(text, 11..13, "hour")?;
    let minute = number(text, 14..16, "minute")?;
    let second = number(text, 17..19, "second")?;
    if !(1..=12).contains(&month) || !(1..=days_in_month(year, month)).contains(&day) {
        return Err(format!("{text:?}: no such date"));
    }
    if hour > 23 || minute > 59 || second > 60 {
        return Err(format!("{text:?}: no such time of day"));
    }
    let mut at = 19;
    let mut millis = 0;
    if text.as_bytes().get(at) == Some(&b'.') {
        let digits = text[at + 1..].bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!("{text:?}: empty fraction of a second"));
        }
        let fraction = &text[at + 1..at + 1 + digits];
        millis =
            fraction.bytes().chain(std::iter::repeat(b'0')).take(3).fold(0, |acc, b| acc * 10 + i64::from(b - b'0'));
        at += 1 + digits;
    }
    let offset_minutes = match text.get(at..) {
        Some("Z" | "z") => 0,
        Some(offset) if offset.len() == 6 && (offset.starts_with('+') || offset.starts_with('-')) => {
            expect(offset, 3, b":")?;
            let hours = number(offset, 1..3, "offset hours")?;
            let minutes = number(offset, 4..6, "offset minutes")?;
            let sign = if offset.starts_with('-') { -1 } else { 1 };
            sign * (hours * 60 + minutes)
        }
        _ => return Err(format!("{text:?}: needs a time zone (Z or +hh:mm)")),
    };
    let seconds =
        days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second.min(59) - offset_minutes * 60;
    Ok(seconds * 1000 + millis)
}

/// The same instant as `text`, written in UTC the way the sidecar reads it.
pub fn normalize_rfc3339(text: &str) -> Result<String, String> {
    let millis = parse_rfc3339_millis(text)?;
    let millis = u64::try_from(millis).map_err(|_| format!("{text:?}: before 1970"))?;
    Ok(format_rfc3339(Timestamp(millis)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_utc_and_offsets_to_the_same_instant() {
        assert_eq!(parse_rfc3339_millis("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_rfc3339_millis("1970-01-02T00:00:01.5Z"), Ok(86_401_500));
        assert_eq!(parse_rfc3339_millis("2024-02-29T12:00:00Z"), parse_rfc3339_millis("2024-02-29T14:00:00+02:00"));
        assert_eq!(parse_rfc3339_millis("2025-01-01T00:00:00Z"), Ok(1_735_689_600_000));
    }

    #[test]
    fn refuses_malformed_times_with_the_text() {
        for bad in ["2025-01-01", "2025-01-01T00:00:00", "2025-13-01T00:00:00Z", "2025-02-29T00:00:00Z", "x"] {
            let error = parse_rfc3339_millis(bad).unwrap_err();
            assert!(error.contains(bad), "{error}");
        }
    }

    #[test]
    fn normalizes_to_utc_for_the_sidecar() {
        assert_eq!(normalize_rfc3339("2025-01-01T02:00:00+02:00").unwrap(), "2025-01-01T00:00:00.000Z");
        assert!(normalize_rfc3339("1969-12-31T23:59:59Z").unwrap_err().contains("before 1970"));
    }
}
