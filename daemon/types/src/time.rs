//! Times as the API and CLI accept them: RFC 3339 in UTC (`2026-11-22T10:30:00Z`, fractions
//! allowed), or Unix seconds (`@1763807400`).

use std::time::UNIX_EPOCH;

/// Milliseconds since the Unix epoch of `text`; the error says what is accepted.
pub fn parse_time_ms(text: &str) -> Result<u64, String> {
    let t = text.trim();
    if let Some(secs) = t.strip_prefix('@') {
        return secs
            .parse::<u64>()
            .ok()
            .and_then(|s| s.checked_mul(1000))
            .ok_or_else(|| format!("'{text}' is not a time: after '@' give whole seconds since 1970"));
    }
    let st = humantime::parse_rfc3339_weak(t).map_err(|e| {
        format!("'{text}' is not a time ({e}): give RFC 3339 in UTC, e.g. 2026-11-22T10:30:00Z, or @UNIX_SECONDS")
    })?;
    let d = st.duration_since(UNIX_EPOCH).map_err(|_| format!("'{text}' is before 1970"))?;
    u64::try_from(d.as_millis()).map_err(|_| format!("'{text}' is too far in the future"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_and_refused() {
        assert_eq!(parse_time_ms("1970-01-01T00:00:01Z").unwrap(), 1000);
        assert_eq!(parse_time_ms("1970-01-01T00:00:01.250Z").unwrap(), 1250);
        assert_eq!(parse_time_ms("@2").unwrap(), 2000);
        assert!(parse_time_ms("yesterday").unwrap_err().contains("RFC 3339"));
        assert!(parse_time_ms("@x").unwrap_err().contains("whole seconds"));
        assert!(parse_time_ms("2026-13-01T00:00:00Z").is_err());
    }
}
