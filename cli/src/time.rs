//! Times on the command line: Unix milliseconds or RFC 3339 (`2026-11-22T10:00:00Z`), and
//! spans back from now (`24h`, `30d`, `1mo`, `5y`), all in UTC, through `jiff`.

use jiff::{tz::TimeZone, Span, Timestamp};

/// Parses Unix milliseconds or an RFC 3339 time (`2026-11-22T10:00:00Z`, or with an offset).
pub fn parse(text: &str) -> Result<i64, String> {
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    text.parse::<Timestamp>()
        .map(Timestamp::as_millisecond)
        .map_err(|_| {
            format!("not a time: {text:?} (use Unix milliseconds or YYYY-MM-DDTHH:MM:SSZ)")
        })
}

/// Parses a span such as `24h`, `30d`, `2w`, `1mo`, `5y` or `90 days`.
pub fn parse_span(text: &str) -> Result<Span, String> {
    let span: Span = text
        .parse()
        .map_err(|_| format!("not a span of time: {text:?} (for example 24h, 30d, 1mo, 5y)"))?;
    if span.is_negative() || span.is_zero() {
        return Err(format!("{text:?}: a span must be positive"));
    }
    Ok(span)
}

/// The time `span` before `now_ms`, in Unix milliseconds, counted on the UTC calendar (a
/// month back from March 31 is February 28 or 29).
pub fn before(now_ms: i64, span: Span) -> Result<i64, String> {
    Timestamp::from_millisecond(now_ms)
        .map_err(|e| e.to_string())?
        .to_zoned(TimeZone::UTC)
        .checked_sub(span)
        .map(|t| t.timestamp().as_millisecond())
        .map_err(|e| format!("{span} before {now_ms}: {e}"))
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    Timestamp::now().as_millisecond()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_forms() {
        assert_eq!(parse("1795000000000"), Ok(1_795_000_000_000));
        assert_eq!(parse("2026-11-18T11:06:40Z"), Ok(1_795_000_000_000));
        assert_eq!(parse("2000-02-29T00:00:00Z"), Ok(951_782_400_000));
        assert_eq!(parse("2026-11-18T12:06:40+01:00"), Ok(1_795_000_000_000));
        assert!(parse("yesterday").is_err());
        assert!(parse("2026-13-01T00:00:00Z").is_err());
        assert!(parse("2026-02-30T00:00:00Z").is_err());
    }

    #[test]
    fn spans_count_back_on_the_utc_calendar() {
        let now = parse("2026-03-31T12:00:00Z").unwrap();
        let back = |s: &str| before(now, parse_span(s).unwrap()).unwrap();
        assert_eq!(back("24h"), parse("2026-03-30T12:00:00Z").unwrap());
        assert_eq!(back("30d"), parse("2026-03-01T12:00:00Z").unwrap());
        assert_eq!(back("1mo"), parse("2026-02-28T12:00:00Z").unwrap());
        assert_eq!(back("5y"), parse("2021-03-31T12:00:00Z").unwrap());
        assert_eq!(back("90m"), parse("2026-03-31T10:30:00Z").unwrap());
        assert!(parse_span("soon").is_err());
        assert!(parse_span("-3d").is_err());
        assert!(parse_span("0s").is_err());
    }
}
