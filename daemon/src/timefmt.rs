//! Wall-clock helpers: milliseconds since the Unix epoch and RFC 3339 text.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

pub fn rfc3339_ms(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// Seconds from `ms` until now (0 if in the future).
pub fn age_seconds(ms: u64) -> f64 {
    now_ms().saturating_sub(ms) as f64 / 1000.0
}
