//! RFC 3339 timestamps as the CRDs carry them (`2025-01-01T00:00:00Z`,
//! `2025-01-01T02:00:00.5+02:00`), read with the sidecar's own parser
//! ([`fabric_core::time::parse_rfc3339`]: an offset is required). The
//! compiler writes every time in UTC with millisecond precision, the form
//! the sidecar's configs hold.

use fabric_core::Timestamp;

/// Milliseconds since the Unix epoch of an RFC 3339 time (fractions below
/// a millisecond are dropped; times before 1970 are negative).
pub fn parse_rfc3339_millis(text: &str) -> Result<i64, String> {
    fabric_core::time::parse_rfc3339(text).map(|time| time.as_millisecond())
}

/// The same instant as `text`, written in UTC the way the sidecar reads it.
pub fn normalize_rfc3339(text: &str) -> Result<String, String> {
    Timestamp::from_rfc3339(text).map(Timestamp::to_rfc3339)
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
        assert_eq!(parse_rfc3339_millis("1969-12-31T23:59:59Z"), Ok(-1000));
    }

    #[test]
    fn refuses_malformed_times_with_the_text() {
        for bad in ["2025-01-01", "2025-01-01T00:00:00", "2025-13-01T00:00:00Z", "2025-02-29T00:00:00Z", "x"] {
            let error = parse_rfc3339_millis(bad).unwrap_err();
            assert!(error.contains(&format!("{bad:?}")), "{error}");
        }
        let error = parse_rfc3339_millis("2025-01-01T00:00:00").unwrap_err();
        assert!(error.contains("has no UTC offset"), "{error}");
    }

    #[test]
    fn normalizes_to_utc_for_the_sidecar() {
        assert_eq!(normalize_rfc3339("2025-01-01T02:00:00+02:00").unwrap(), "2025-01-01T00:00:00.000Z");
        assert_eq!(normalize_rfc3339("2025-01-01T00:00:00.123456Z").unwrap(), "2025-01-01T00:00:00.123Z");
        assert!(normalize_rfc3339("1969-12-31T23:59:59Z").unwrap_err().contains("before 1970"));
    }
}
