//! The engine's notion of time: an explicit clock value passed with every
//! input. The engine never reads a clock itself, so tests drive time exactly.

use std::ops::{Add, Sub};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch, as read by the caller. Key validity
/// windows are wall-clock times, so the IO layer passes wall-clock time;
/// tests pass whatever they like and move it by hand.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timestamp(pub u64);

impl Timestamp {
    pub const ZERO: Timestamp = Timestamp(0);

    pub fn from_millis(millis: u64) -> Self {
        Timestamp(millis)
    }

    pub fn as_millis(self) -> u64 {
        self.0
    }

    /// Time elapsed since `earlier`, zero when `earlier` is in the future.
    pub fn saturating_since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Timestamp {
    type Output = Timestamp;

    fn add(self, rhs: Duration) -> Timestamp {
        let millis = u64::try_from(rhs.as_millis()).unwrap_or(u64::MAX);
        Timestamp(self.0.saturating_add(millis))
    }
}

impl Sub<Duration> for Timestamp {
    type Output = Timestamp;

    fn sub(self, rhs: Duration) -> Timestamp {
        let millis = u64::try_from(rhs.as_millis()).unwrap_or(u64::MAX);
        Timestamp(self.0.saturating_sub(millis))
    }
}

impl Timestamp {
    /// An RFC 3339 time as unix milliseconds (fractions below a millisecond
    /// are dropped); see [`parse_rfc3339`]. Times before 1970 are refused.
    pub fn from_rfc3339(text: &str) -> Result<Timestamp, String> {
        let millis = parse_rfc3339(text)?.as_millisecond();
        u64::try_from(millis).map(Timestamp).map_err(|_| format!("{text:?} is before 1970"))
    }

    /// RFC 3339 in UTC with milliseconds (`2025-01-31T12:00:00.000Z`), the
    /// form `trustedKeys[].validFrom` / `validUntil` are written in. Times
    /// past the latest jiff represents (late in the year 9999) are written
    /// as that.
    pub fn to_rfc3339(self) -> String {
        let millis = i64::try_from(self.0).unwrap_or(i64::MAX);
        let time = jiff::Timestamp::from_millisecond(millis).unwrap_or(jiff::Timestamp::MAX);
        format!("{time:.3}")
    }
}

/// Parses an RFC 3339 time with its UTC offset: `2025-01-31T12:00:00Z`,
/// `2025-01-31T14:00:00.5+02:00` (a space instead of the `T` is accepted).
/// A time without an offset is refused rather than read as UTC: the same
/// text would name another instant wherever someone meant local time.
pub fn parse_rfc3339(text: &str) -> Result<jiff::Timestamp, String> {
    text.parse::<jiff::Timestamp>().map_err(|error| {
        if text.parse::<jiff::civil::DateTime>().is_ok() {
            format!("{text:?} has no UTC offset: write e.g. 2025-01-31T12:00:00Z or 2025-01-31T14:00:00+02:00")
        } else {
            format!("{text:?} is not an RFC 3339 time such as 2025-01-31T12:00:00Z ({error})")
        }
    })
}

/// Parses a duration as configs and command-line flags write them: `30s`,
/// `1m 30s`, `1h30m`, `250ms`, `1.5s`, `2 hours`, `15 minutes`, or ISO 8601
/// (`PT1M30S`). Days and weeks (`1d`, `2 days`, `1w`) count 24 and 168
/// hours; months and years are refused, they have no fixed length. A bare
/// `0` is zero.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    static FRIENDLY: jiff::fmt::friendly::SpanParser = jiff::fmt::friendly::SpanParser::new();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    if let Ok(duration) = FRIENDLY.parse_unsigned_duration(text) {
        return Ok(duration);
    }
    // Units of a day and above are refused by the duration parser; a span
    // keeps them, and days and weeks convert at 24 hours a day.
    let span = text
        .parse::<jiff::Span>()
        .map_err(|error| format!("{text:?} is not a duration such as 30s, 1m 30s, 250ms or 2h: {error}"))?;
    if span.get_years() != 0 || span.get_months() != 0 {
        return Err(format!("{text:?} is not a duration: months and years have no fixed length (write days or hours)"));
    }
    let duration = span
        .to_duration(jiff::SpanRelativeTo::days_are_24_hours())
        .map_err(|error| format!("{text:?} is not a duration: {error}"))?;
    Duration::try_from(duration).map_err(|_| format!("{text:?} is not a duration: it is negative"))
}

/// A duration the way configs are written: jiff's compact friendly form
/// (`1m 30s`, `250ms`, `48h`; hours are the largest unit).
pub fn format_duration(duration: Duration) -> String {
    static COMPACT: jiff::fmt::friendly::SpanPrinter =
        jiff::fmt::friendly::SpanPrinter::new().designator(jiff::fmt::friendly::Designator::Compact);
    COMPACT.unsigned_duration_to_string(&duration)
}

/// Serde of a [`Duration`] as text: written in jiff's compact friendly
/// form (`1m 30s`, `250ms`, `48h`), read with [`parse_duration`]. For
/// `#[serde(with = "crate::time::duration_text")]`.
pub mod duration_text {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        jiff::fmt::serde::unsigned_duration::friendly::compact::required::serialize(duration, serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        super::parse_duration(&text).map_err(serde::de::Error::custom)
    }

    /// The same for an `Option<Duration>` (absent or null: `None`).
    pub mod optional {
        use std::time::Duration;

        use serde::{Deserialize, Deserializer, Serializer};

        pub fn serialize<S: Serializer>(duration: &Option<Duration>, serializer: S) -> Result<S::Ok, S::Error> {
            jiff::fmt::serde::unsigned_duration::friendly::compact::optional::serialize(duration, serializer)
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Duration>, D::Error> {
            let text = Option::<String>::deserialize(deserializer)?;
            text.map(|text| super::super::parse_duration(&text).map_err(serde::de::Error::custom)).transpose()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_duration_the_docs_and_examples_write_parses() {
        // Every duration text in examples/, docs/, charts/, e2e/, the
        // operator's golden configs and the fuzz seeds, and the defaults of
        // the duration flags.
        let cases: &[(&str, u64)] = &[
            ("0s", 0),
            ("100ms", 100),
            ("3s", 3_000),
            ("5s", 5_000),
            ("10s", 10_000),
            ("15s", 15_000),
            ("30s", 30_000),
            ("50ms", 50),
            ("1s", 1_000),
            ("90s", 90_000),
            ("1m", 60_000),
            ("2m", 120_000),
            ("5m", 300_000),
            ("10m", 600_000),
            ("15m", 900_000),
            ("60m", 3_600_000),
            ("1h", 3_600_000),
            ("3h", 10_800_000),
            ("20m", 1_200_000),
            ("1m 30s", 90_000),
            ("1m 40s", 100_000),
            ("100s", 100_000),
        ];
        for &(text, millis) in cases {
            assert_eq!(parse_duration(text), Ok(Duration::from_millis(millis)), "{text}");
        }
    }

    #[test]
    fn durations_in_the_other_forms_people_write() {
        let cases: &[(&str, Duration)] = &[
            ("1h30m", Duration::from_secs(5_400)),
            ("1h 30m 15s", Duration::from_secs(5_415)),
            ("2 hours", Duration::from_secs(7_200)),
            ("15 minutes", Duration::from_secs(900)),
            ("5 seconds", Duration::from_secs(5)),
            ("5sec", Duration::from_secs(5)),
            ("5secs", Duration::from_secs(5)),
            ("1min", Duration::from_secs(60)),
            ("1hr", Duration::from_secs(3_600)),
            ("250msec", Duration::from_millis(250)),
            ("1.5s", Duration::from_millis(1_500)),
            ("1s 500ms", Duration::from_millis(1_500)),
            ("20us", Duration::from_micros(20)),
            ("20µs", Duration::from_micros(20)),
            ("7ns", Duration::from_nanos(7)),
            ("PT1M30S", Duration::from_secs(90)),
            ("0", Duration::ZERO),
            ("1d", Duration::from_secs(86_400)),
            ("2 days", Duration::from_secs(2 * 86_400)),
            ("1day 2h", Duration::from_secs(93_600)),
            ("1w", Duration::from_secs(7 * 86_400)),
            ("2weeks", Duration::from_secs(14 * 86_400)),
        ];
        for &(text, expected) in cases {
            assert_eq!(parse_duration(text), Ok(expected), "{text}");
        }
    }

    #[test]
    fn every_unit_name_below_a_month_that_configs_were_written_with_still_parses() {
        let units: &[(&[&str], Duration)] = &[
            (&["nanos", "nsec", "ns"], Duration::from_nanos(2)),
            (&["usec", "us", "µs"], Duration::from_micros(2)),
            (&["millis", "msec", "ms"], Duration::from_millis(2)),
            (&["seconds", "second", "secs", "sec", "s"], Duration::from_secs(2)),
            (&["minutes", "minute", "min", "mins", "m"], Duration::from_secs(2 * 60)),
            (&["hours", "hour", "hr", "hrs", "h"], Duration::from_secs(2 * 3_600)),
            (&["days", "day", "d"], Duration::from_secs(2 * 86_400)),
            (&["weeks", "week", "wk", "wks", "w"], Duration::from_secs(2 * 7 * 86_400)),
        ];
        for &(names, expected) in units {
            for name in names {
                assert_eq!(parse_duration(&format!("2{name}")), Ok(expected), "2{name}");
                assert_eq!(parse_duration(&format!("2 {name}")), Ok(expected), "2 {name}");
            }
        }
    }

    #[test]
    fn months_years_negatives_and_bare_numbers_are_refused_with_the_text() {
        for bad in ["1 month", "1M", "1y", "2 years", "-5s", "5", "", "abc", "5 parsecs", "1h -5m"] {
            let error = parse_duration(bad).unwrap_err();
            assert!(error.contains(&format!("{bad:?} is not a duration")), "{bad}: {error}");
        }
    }

    #[test]
    fn durations_are_written_compact_and_read_back() {
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct Timers {
            #[serde(with = "duration_text")]
            every: Duration,
            #[serde(default, skip_serializing_if = "Option::is_none", with = "duration_text::optional")]
            skew: Option<Duration>,
        }
        let cases: &[(Duration, &str)] = &[
            (Duration::ZERO, "0s"),
            (Duration::from_millis(250), "250ms"),
            (Duration::from_secs(90), "1m 30s"),
            (Duration::from_millis(1_500), "1s 500ms"),
            (Duration::from_secs(3_605), "1h 5s"),
            (Duration::from_secs(2 * 86_400), "48h"),
            (Duration::from_micros(1_500), "1ms 500µs"),
        ];
        for &(every, text) in cases {
            assert_eq!(format_duration(every), text);
            let timers = Timers { every, skew: Some(every) };
            let yaml = serde_norway::to_string(&timers).unwrap();
            assert_eq!(yaml, format!("every: {text}\nskew: {text}\n"));
            assert_eq!(serde_norway::from_str::<Timers>(&yaml).unwrap(), timers);
        }
        let absent: Timers = serde_norway::from_str("every: 1d").unwrap();
        assert_eq!(absent, Timers { every: Duration::from_secs(86_400), skew: None });
        assert_eq!(serde_norway::from_str::<Timers>("every: 1s\nskew: null").unwrap().skew, None);
        let error = serde_norway::from_str::<Timers>("every: 1 month").unwrap_err().to_string();
        assert!(error.contains("\"1 month\" is not a duration"), "{error}");
    }

    #[test]
    fn rfc3339_times_need_an_offset_and_become_unix_millis() {
        let cases: &[(&str, u64)] = &[
            ("1970-01-01T00:00:00Z", 0),
            ("2025-01-01T00:00:00Z", 1_735_689_600_000),
            ("2025-01-01T00:00:00.000Z", 1_735_689_600_000),
            ("2025-01-01t00:00:00z", 1_735_689_600_000),
            ("2025-01-01 00:00:00Z", 1_735_689_600_000),
            ("2025-01-01T02:00:00+02:00", 1_735_689_600_000),
            ("2024-12-31T19:00:00-05:00", 1_735_689_600_000),
            ("2025-01-01T00:00:00.1239Z", 1_735_689_600_123),
            ("2024-02-29T12:00:00+00:00", 1_709_208_000_000),
            // A leap second is read as the second before it.
            ("2016-12-31T23:59:60Z", 1_483_228_799_000),
        ];
        for &(text, millis) in cases {
            assert_eq!(Timestamp::from_rfc3339(text), Ok(Timestamp(millis)), "{text}");
        }
        let error = Timestamp::from_rfc3339("2025-01-01T00:00:00").unwrap_err();
        assert!(error.starts_with("\"2025-01-01T00:00:00\" has no UTC offset"), "{error}");
        for bad in ["2025-13-01T00:00:00Z", "2025-02-29T00:00:00Z", "2025-01-01T24:00:00Z", "yesterday"] {
            let error = Timestamp::from_rfc3339(bad).unwrap_err();
            assert!(error.starts_with(&format!("{bad:?} is not an RFC 3339 time")), "{error}");
        }
        let error = Timestamp::from_rfc3339("1969-12-31T23:59:59Z").unwrap_err();
        assert_eq!(error, "\"1969-12-31T23:59:59Z\" is before 1970");
    }

    #[test]
    fn rfc3339_is_written_in_utc_with_milliseconds() {
        assert_eq!(Timestamp(0).to_rfc3339(), "1970-01-01T00:00:00.000Z");
        assert_eq!(Timestamp(1_735_689_600_123).to_rfc3339(), "2025-01-01T00:00:00.123Z");
        assert_eq!(Timestamp(u64::MAX).to_rfc3339(), "9999-12-30T22:00:00.999Z");
        let time = Timestamp(1_735_689_600_500);
        assert_eq!(Timestamp::from_rfc3339(&time.to_rfc3339()), Ok(time));
    }
}
