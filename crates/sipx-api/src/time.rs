use std::time::{Duration, UNIX_EPOCH};

/// RFC 3339 UTC text for a `*_at_ms` value.
pub fn rfc3339(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_millis(t).to_string()
}

/// Unix milliseconds of an RFC 3339 time (§5.6): any offset (`Z`, `+05:00`, `-08:00`), `T` and
/// `Z` in either case, fractional seconds. `None` for anything else.
pub fn parse_rfc3339_ms(text: &str) -> Option<i64> {
    let text = text.trim().to_ascii_uppercase();
    // The offset, in minutes east of UTC, and the time without it.
    let (local, offset_min) = match text.strip_suffix('Z') {
        Some(local) => (local.to_owned(), 0),
        None => {
            let at = text.len().checked_sub(6)?;
            let (local, offset) = (text.get(..at)?, text.get(at..)?);
            let sign = match offset.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (hh, mm) = offset.get(1..)?.split_once(':')?;
            if hh.len() != 2 || mm.len() != 2 {
                return None;
            }
            let (hh, mm): (i64, i64) = (hh.parse().ok()?, mm.parse().ok()?);
            if hh > 23 || mm > 59 {
                return None;
            }
            (local.to_owned(), sign * (hh * 60 + mm))
        }
    };
    let utc_if_local_were_utc = humantime::parse_rfc3339(&format!("{local}Z")).ok()?;
    let ms = i64::try_from(
        utc_if_local_were_utc
            .duration_since(UNIX_EPOCH)
            .ok()?
            .as_millis(),
    )
    .ok()?;
    ms.checked_sub(offset_min * 60_000)
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
