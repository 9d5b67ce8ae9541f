use std::time::{Duration, UNIX_EPOCH};

/// RFC 3339 UTC text for a `*_at_ms` value.
pub fn rfc3339(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_millis(t).to_string()
}
