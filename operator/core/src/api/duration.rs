//! Go-style duration strings ("10s", "1h30m", "250ms") as the CRDs carry
//! them, because that is what Kubernetes users write (metav1.Duration) and
//! what CEL's `duration()` accepts on the API server.
//!
//! The accepted grammar is a subset of Go's `time.ParseDuration` that the
//! API server can check with one regular expression: `<integer><unit>`
//! parts with units `h`, `m`, `s`, `ms`, `us`, `ns`, largest first, each at
//! most once, no sign and no fractions, and few enough digits per unit
//! (6 for hours, 7 for minutes, 9, 12, 15 and 18 for the smaller units)
//! that the sum stays below Go's longest duration (about 2,562,047 h). So
//! every string this parser accepts is also accepted by Go and by CEL's
//! `duration()`, and a bad value gets one clear message from the API
//! server ([`DURATION_FORMAT`]) instead of a pattern error plus a CEL type
//! conversion error.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

pub use crate::api::rules::DURATION_FORMAT;

/// The grammar as one regular expression (RE2 on the API server, the
/// `regex` crate in cel-rust: the same language), for CEL's `matches`.
#[macro_export]
#[doc(hidden)]
macro_rules! duration_regex {
    () => {
        "^([0-9]{1,6}h)?([0-9]{1,7}m)?([0-9]{1,9}s)?([0-9]{1,12}ms)?([0-9]{1,15}us)?([0-9]{1,18}ns)?$"
    };
}

/// The grammar of [`parse_duration`] as a regular expression.
pub const DURATION_PATTERN: &str = duration_regex!();

/// Longest duration string accepted (keeps CEL cost estimation bounded).
pub const DURATION_MAX_LENGTH: u32 = 64;

/// Why a duration string was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("empty duration")]
    Empty,
    #[error("{text:?}: expected a number at byte {at} (write e.g. \"10s\", \"1h30m\")")]
    ExpectedNumber { text: String, at: usize },
    #[error("{text:?}: missing or unknown unit at byte {at} (units: h, m, s, ms, us, ns)")]
    BadUnit { text: String, at: usize },
    #[error("{text:?}: unit {unit} at byte {at} is out of order or repeated (largest unit first, each at most once)")]
    UnitOrder { text: String, unit: &'static str, at: usize },
    #[error("{text:?}: too long a duration ({unit} takes at most {digits} digits; at most 999999h in all)")]
    Overflow { text: String, unit: &'static str, digits: usize },
}

/// Units from largest to smallest: the order they must appear in, with the
/// most digits each may have.
const UNITS: [(&str, u64, usize); 6] = [
    ("h", 3_600_000_000_000, 6),
    ("m", 60_000_000_000, 7),
    ("s", 1_000_000_000, 9),
    ("ms", 1_000_000, 12),
    ("us", 1_000, 15),
    ("ns", 1, 18),
];

/// Parses `"1h30m"`-style text (see the module docs for the grammar).
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    if text.is_empty() {
        return Err(DurationError::Empty);
    }
    let bytes = text.as_bytes();
    let mut total_nanos: u128 = 0;
    // Index into UNITS of the next unit allowed.
    let mut next_unit = 0;
    let mut at = 0;
    while at < bytes.len() {
        let digits = bytes[at..].iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return Err(DurationError::ExpectedNumber { text: text.to_owned(), at });
        }
        let number_at = at;
        at += digits;
        let rest = &text[at..];
        // Two-letter units first, so that "ms" is not read as "m" then "s".
        let unit_index = [3, 4, 5, 0, 1, 2]
            .into_iter()
            .find(|&i| rest.starts_with(UNITS[i].0))
            .ok_or_else(|| DurationError::BadUnit { text: text.to_owned(), at })?;
        let (unit, nanos_per_unit, max_digits) = UNITS[unit_index];
        if unit_index < next_unit {
            return Err(DurationError::UnitOrder { text: text.to_owned(), unit, at });
        }
        if digits > max_digits {
            return Err(DurationError::Overflow { text: text.to_owned(), unit, digits: max_digits });
        }
        // At most 18 digits: fits a u64, and the product a u128.
        let number: u64 = text[number_at..at].parse().expect("at most 18 ASCII digits");
        total_nanos += u128::from(number) * u128::from(nanos_per_unit);
        next_unit = unit_index + 1;
        at += unit.len();
    }
    // The digit limits keep the total below 2^63 ns; seconds fit a u64.
    let secs = (total_nanos / 1_000_000_000) as u64;
    let nanos = (total_nanos % 1_000_000_000) as u32;
    Ok(Duration::new(secs, nanos))
}

/// Formats a duration in the same grammar, largest units first
/// (`5400s` -> `"1h30m"`, zero -> `"0s"`); `parse_duration` reads it back.
pub fn format_duration(duration: Duration) -> String {
    let mut nanos = duration.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (unit, size) in [
        ("h", 3_600_000_000_000u128),
        ("m", 60_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
        ("us", 1_000),
        ("ns", 1),
    ] {
        if nanos >= size {
            out.push_str(&format!("{}{unit}", nanos / size));
            nanos %= size;
        }
    }
    out
}

/// A duration field of a CRD: kept as the text the user wrote, so that an
/// invalid value still deserializes and the compiler can report it against
/// the object and field instead of the watch failing to decode the object.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct GoDuration(pub String);

impl GoDuration {
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    pub fn from_duration(duration: Duration) -> Self {
        Self(format_duration(duration))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn parse(&self) -> Result<Duration, DurationError> {
        parse_duration(&self.0)
    }
}

impl fmt::Display for GoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl JsonSchema for GoDuration {
    fn schema_name() -> Cow<'static, str> {
        "GoDuration".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_generator: &mut SchemaGenerator) -> Schema {
        // A CEL rule rather than a `pattern`: the API server then answers a
        // bad value with DURATION_FORMAT's message instead of the regex.
        json_schema!({
            "type": "string",
            "minLength": 2,
            "maxLength": DURATION_MAX_LENGTH,
            "x-kubernetes-validations": [{"rule": DURATION_FORMAT.rule, "message": DURATION_FORMAT.message}],
            "description": "A duration such as \"10s\", \"15m\" or \"1h30m\" (units h, m, s, ms, us, ns, largest first)."
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_single_and_compound_durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1m1s1ms1us1ns"), Ok(Duration::new(61, 1_001_001)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("90m"), Ok(Duration::from_secs(5400)));
    }

    #[test]
    fn refuses_what_the_schema_pattern_refuses() {
        assert_eq!(parse_duration(""), Err(DurationError::Empty));
        assert!(matches!(parse_duration("10"), Err(DurationError::BadUnit { at: 2, .. })));
        assert!(matches!(parse_duration("10d"), Err(DurationError::BadUnit { at: 2, .. })));
        assert!(matches!(parse_duration("s"), Err(DurationError::ExpectedNumber { at: 0, .. })));
        assert!(matches!(parse_duration("1.5h"), Err(DurationError::BadUnit { at: 1, .. })));
        assert!(matches!(parse_duration("-1s"), Err(DurationError::ExpectedNumber { at: 0, .. })));
        assert!(matches!(parse_duration("1h "), Err(DurationError::ExpectedNumber { at: 2, .. })));
        assert!(matches!(
            parse_duration("99999999999999999999999999999999999999999h"),
            Err(DurationError::Overflow { .. })
        ));
        assert!(matches!(parse_duration("99999999999999h"), Err(DurationError::Overflow { unit: "h", .. })));
        assert!(matches!(parse_duration("30m1h"), Err(DurationError::UnitOrder { unit: "h", at: 4, .. })));
        assert!(matches!(parse_duration("1s1s"), Err(DurationError::UnitOrder { unit: "s", .. })));
        assert!(matches!(parse_duration("1ms1s"), Err(DurationError::UnitOrder { unit: "s", .. })));
    }

    #[test]
    fn the_largest_accepted_duration_is_below_gos_limit() {
        let largest = parse_duration("999999h9999999m999999999s999999999999ms999999999999999us999999999999999999ns");
        let go_max = Duration::from_nanos(i64::MAX as u64);
        assert!(largest.unwrap() < go_max);
    }

    /// The parser and the regular expression of the CEL rule agree (the
    /// API server and `analyze` refuse the same strings).
    #[test]
    fn the_parser_accepts_exactly_what_the_pattern_matches() {
        let pattern = regex::Regex::new(DURATION_PATTERN).unwrap();
        for text in [
            "0s",
            "10s",
            "1h30m",
            "250ms",
            "1m1s1ms1us1ns",
            "999999h",
            "1000000h",
            "30m1h",
            "1s1s",
            "1ms1s",
            "10",
            "1.5h",
            "-1s",
            "5 minutes",
            "1h0m0s",
            "0ns",
            "12345678m",
            "1234567m",
            "1d",
            "5ms",
            "5m5ms",
            "1h1h",
        ] {
            // The empty string matches the expression; minLength refuses it.
            assert_eq!(parse_duration(text).is_ok(), pattern.is_match(text), "{text}");
        }
    }

    #[test]
    fn errors_say_what_to_write() {
        let error = parse_duration("5 minutes").unwrap_err().to_string();
        assert!(error.contains("\"5 minutes\""), "{error}");
        assert!(error.contains("units: h, m, s"), "{error}");
    }

    #[test]
    fn format_round_trips_through_parse() {
        for text in ["0s", "1h30m", "250ms", "1h1m1s1ms1us1ns", "720h"] {
            let parsed = parse_duration(text).unwrap();
            assert_eq!(format_duration(parsed), text);
        }
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(GoDuration::from_duration(Duration::from_secs(90)).as_str(), "1m30s");
    }
}
