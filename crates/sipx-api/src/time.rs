use std::time::{Duration, UNIX_EPOCH};

/// RFC 3339 UTC text for a `*_at_ms` value.
pub fn rfc3339(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_millis(t).to_string()
}

/// Unix milliseconds of an RFC 3339 time (§5.6): any offset (`Z`, `+05:00`, `-08:00`), `T` and
/// `Z` in either case, fractional seconds. `None` for anything else.
pub fn parse_rfc3339_ms(text: &str) -> Option<i64> {
    let t =
        time::OffsetDateTime::parse(text.trim(), &time::format_description::well_known::Rfc3339)
            .ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_times_with_any_offset() {
        let utc = parse_rfc3339_ms("2026-11-29T19:00:00Z").unwrap();
        assert_eq!(parse_rfc3339_ms("2026-11-29T19:00:00.000Z"), Some(utc));
        assert_eq!(parse_rfc3339_ms("2026-11-29t19:00:00z"), Some(utc));
        assert_eq!(parse_rfc3339_ms("2026-11-29T19:00:00+00:00"), Some(utc));
        assert_eq!(parse_rfc3339_ms("2026-11-30T00:00:00+05:00"), Some(utc));
        assert_eq!(parse_rfc3339_ms("2026-11-29T14:00:00-05:00"), Some(utc));
        assert_eq!(
            parse_rfc3339_ms("2026-11-29T19:00:00.250Z"),
            Some(utc + 250)
        );
        for bad in [
            "2026-11-29",
            "2026-11-29T19:00:00",
            "2026-11-29T19:00:00+5:00",
            "yesterday",
            "2026-11-29T19:00:00+24:00",
            "",
        ] {
            assert_eq!(parse_rfc3339_ms(bad), None, "{bad}");
        }
    }
}
