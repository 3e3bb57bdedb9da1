//! RPO targets (issue 26): how much data a pair may lose, at most, before someone is told.
//! A pair's current RPO is the age of its newest committed point (what a failover now would
//! lose); at the target it is in `warning`, at the error threshold (2× the target unless set)
//! in `error`. A pair without a target of its own takes the standby's default
//! (`[standby] rpo_target`), unless it was set `off`.

use serde::{Deserialize, Serialize};

/// Longest target accepted: 30 days.
pub const RPO_MAX_SECONDS: u64 = 30 * 24 * 3600;

/// Where a pair stands against its RPO target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RpoLevel {
    Ok,
    Warning,
    Error,
}

impl RpoLevel {
    pub const ALL: [RpoLevel; 3] = [RpoLevel::Ok, RpoLevel::Warning, RpoLevel::Error];

    pub fn as_str(self) -> &'static str {
        match self {
            RpoLevel::Ok => "ok",
            RpoLevel::Warning => "warning",
            RpoLevel::Error => "error",
        }
    }

    /// The level of `rpo_seconds` against a target and an error threshold.
    pub fn of(rpo_seconds: f64, target_seconds: u64, error_seconds: u64) -> Self {
        if rpo_seconds >= error_seconds as f64 {
            RpoLevel::Error
        } else if rpo_seconds >= target_seconds as f64 {
            RpoLevel::Warning
        } else {
            RpoLevel::Ok
        }
    }
}

/// Whose RPO target is in force: the pair's own (`drpair pairs set PAIR --rpo-target`) or
/// the standby's default (`[standby] rpo_target` in its config file).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RpoTargetSource {
    #[default]
    Pair,
    Standby,
}

impl RpoTargetSource {
    pub fn as_str(self) -> &'static str {
        match self {
            RpoTargetSource::Pair => "pair",
            RpoTargetSource::Standby => "standby",
        }
    }
}

/// The standby's default RPO target for pairs without their own (`[standby] rpo_target`
/// and `rpo_error` in its config file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RpoDefault {
    pub target_secs: u64,
    /// The error threshold, when not twice the target.
    pub error_secs: Option<u64>,
}

/// `rpo_state` in a pair's status: present when the pair has an RPO target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RpoState {
    /// `ok`, `warning` or `error`.
    pub state: RpoLevel,
    /// RFC 3339 time the pair entered `state` (as far as this standby saw it).
    pub since: String,
    pub since_unix_ms: u64,
    /// The current RPO: seconds since the newest committed point's time (since the pair was
    /// registered, when it has none).
    pub rpo_seconds: f64,
    pub target_seconds: u64,
    pub error_seconds: u64,
    /// `pair` (its own target) or `standby` (the standby's default).
    #[serde(default)]
    pub target_source: RpoTargetSource,
}

/// Reads an RPO duration: `30s`, `5m`, `2h`, `1d`, a number of seconds, or `off`/`none`
/// (`Ok(None)`: no target). Zero, negative, fractional-looking or unparseable values and
/// durations over 30 days are refused, saying why.
pub fn parse_rpo(text: &str) -> Result<Option<u64>, String> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("off") || t.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let scale = match unit.trim() {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(format!("'{text}' is not a duration: write e.g. 30s, 5m, 2h, 1d, or off")),
    };
    let n: u64 =
        digits.parse().map_err(|_| format!("'{text}' is not a duration: write e.g. 30s, 5m, 2h, 1d, or off"))?;
    let secs = n.checked_mul(scale).filter(|&s| s <= RPO_MAX_SECONDS);
    match secs {
        Some(0) => Err(format!("'{text}': an RPO target must be more than 0 (use off to remove it)")),
        Some(s) => Ok(Some(s)),
        None => Err(format!("'{text}' is over the longest RPO target, 30d")),
    }
}

/// A pair's own RPO setting as `rpo_target` takes it: a duration, `off` (no target, even
/// where the standby has a default) or `default` (none of its own: the standby's default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RpoSetting {
    Seconds(u64),
    Off,
    Default,
}

/// Reads a pair's `rpo_target`: what [`parse_rpo`] reads, or `default`.
pub fn parse_rpo_setting(text: &str) -> Result<RpoSetting, String> {
    if text.trim().eq_ignore_ascii_case("default") {
        return Ok(RpoSetting::Default);
    }
    Ok(parse_rpo(text)?.map_or(RpoSetting::Off, RpoSetting::Seconds))
}

/// `30s`, `5m`, `2h`, `1d`, or `90s` when not a whole larger unit.
pub fn rpo_text(seconds: u64) -> String {
    for (unit, scale) in [("d", 86400), ("h", 3600), ("m", 60)] {
        if seconds >= scale && seconds % scale == 0 {
            return format!("{}{unit}", seconds / scale);
        }
    }
    format!("{seconds}s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_rpo("30s"), Ok(Some(30)));
        assert_eq!(parse_rpo("5m"), Ok(Some(300)));
        assert_eq!(parse_rpo("2h"), Ok(Some(7200)));
        assert_eq!(parse_rpo("1d"), Ok(Some(86400)));
        assert_eq!(parse_rpo("45"), Ok(Some(45)));
        assert_eq!(parse_rpo("off"), Ok(None));
        for bad in ["0", "0s", "-5s", "abc", "5x", "1.5m", "31d", "", "s", "99999999999999999999d"] {
            assert!(parse_rpo(bad).is_err(), "{bad} accepted");
        }
        assert!(parse_rpo("0s").unwrap_err().contains("more than 0"));
        assert_eq!(rpo_text(30), "30s");
        assert_eq!(rpo_text(300), "5m");
        assert_eq!(rpo_text(90), "90s");
        assert_eq!(rpo_text(7200), "2h");
        assert_eq!(parse_rpo_setting(" Default "), Ok(RpoSetting::Default));
        assert_eq!(parse_rpo_setting("off"), Ok(RpoSetting::Off));
        assert_eq!(parse_rpo_setting("1m"), Ok(RpoSetting::Seconds(60)));
        assert!(parse_rpo_setting("defaults").is_err());
    }

    #[test]
    fn levels() {
        assert_eq!(RpoLevel::of(10.0, 30, 60), RpoLevel::Ok);
        assert_eq!(RpoLevel::of(30.0, 30, 60), RpoLevel::Warning);
        assert_eq!(RpoLevel::of(59.9, 30, 60), RpoLevel::Warning);
        assert_eq!(RpoLevel::of(60.0, 30, 60), RpoLevel::Error);
    }
}
