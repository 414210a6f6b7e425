//! Go-style duration strings ("10s", "1h30m", "250ms") as the CRDs carry
//! them, because that is what Kubernetes users write (metav1.Duration) and
//! what CEL's `duration()` accepts on the API server.
//!
//! The accepted grammar is deliberately a subset of Go's `time.ParseDuration`:
//! one or more `<integer><unit>` parts, units `h`, `m`, `s`, `ms`, `us`, `ns`,
//! no sign and no fractions. Every string this parser accepts is also
//! accepted by Go and by CEL, so the schema pattern, the API server and the
//! compiler agree on what is valid.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// The OpenAPI pattern of [`GoDuration`], the grammar of [`parse_duration`].
pub const DURATION_PATTERN: &str = r"^([0-9]+(ns|us|ms|s|m|h))+$";

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
    #[error("{text:?}: too long a duration")]
    Overflow { text: String },
}

const UNITS: [(&str, u128); 6] = [
    // Two-letter units first, so that "ms" is not read as "m" followed by "s".
    ("ms", 1_000_000),
    ("us", 1_000),
    ("ns", 1),
    ("h", 3_600_000_000_000),
    ("m", 60_000_000_000),
    ("s", 1_000_000_000),
];

/// Parses `"1h30m"`-style text (see the module docs for the grammar).
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    if text.is_empty() {
        return Err(DurationError::Empty);
    }
    let bytes = text.as_bytes();
    let overflow = || DurationError::Overflow { text: text.to_owned() };
    let mut total_nanos: u128 = 0;
    let mut at = 0;
    while at < bytes.len() {
        let digits = bytes[at..].iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return Err(DurationError::ExpectedNumber { text: text.to_owned(), at });
        }
        let mut number: u128 = 0;
        for digit in &bytes[at..at + digits] {
            number =
                number.checked_mul(10).and_then(|n| n.checked_add(u128::from(digit - b'0'))).ok_or_else(overflow)?;
        }
        at += digits;
        let rest = &text[at..];
        let (unit, nanos_per_unit) = UNITS
            .iter()
            .find(|(unit, _)| rest.starts_with(unit))
            .ok_or_else(|| DurationError::BadUnit { text: text.to_owned(), at })?;
        at += unit.len();
        let part = number.checked_mul(*nanos_per_unit).ok_or_else(overflow)?;
        total_nanos = total_nanos.checked_add(part).ok_or_else(overflow)?;
    }
    let secs = u64::try_from(total_nanos / 1_000_000_000).map_err(|_| overflow())?;
    // The remainder is below 1e9 and always fits.
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
        json_schema!({
            "type": "string",
            "pattern": DURATION_PATTERN,
            "maxLength": DURATION_MAX_LENGTH,
            "description": "A duration such as \"10s\", \"15m\" or \"1h30m\" (units h, m, s, ms, us, ns)."
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
