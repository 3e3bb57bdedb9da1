//! Bandwidth limits on the link: a rate (`20MiB/s`, `100Mbit/s`, `unlimited`) or a
//! schedule of rates by weekday and time of day, evaluated in the standby's local time:
//!
//! ```text
//! Mon-Fri 08:00-18:00 = 10MiB/s; Sat,Sun = 50MiB/s; * = unlimited
//! ```
//!
//! Rules are separated by `;` and the first that matches the moment wins; no match means
//! unlimited. A rule's left side is `*`, or days (`Mon`, `Mon-Fri`, `Sat,Sun`, ranges may
//! wrap: `Fri-Mon`), a time range (`22:00-06:00` wraps past midnight; the end is excluded),
//! or days then a time range. A bare rate is the same as `* = RATE`.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Slowest limit accepted: below this the link's own heartbeats would be starved.
pub const MIN_RATE: u64 = 16 << 10;

const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// A rate in bytes per second; `None` is unlimited.
pub type Rate = Option<u64>;

/// Parses a rate: a number with a unit per second (`B`, `KB`, `MB`, `GB`, `KiB`, `MiB`,
/// `GiB` for bytes; `kbit`, `Mbit`, `Gbit` for bits), or `unlimited`.
pub fn parse_rate(s: &str) -> Result<Rate, String> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("unlimited") || t.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    let body = t
        .strip_suffix("/s")
        .or_else(|| t.strip_suffix("ps"))
        .ok_or_else(|| format!("rate '{t}': give it per second, e.g. 20MiB/s or 100Mbit/s, or 'unlimited'"))?;
    let split = body.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(body.len());
    let (num, unit) = body.split_at(split);
    let n: f64 = num.parse().map_err(|_| format!("rate '{t}': '{num}' is not a number"))?;
    let factor: f64 = match unit.trim() {
        "B" => 1.0,
        "KB" | "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "KiB" => 1024.0,
        "MiB" => 1048576.0,
        "GiB" => 1073741824.0,
        "kbit" | "Kbit" | "kb" => 1e3 / 8.0,
        "Mbit" | "Mb" => 1e6 / 8.0,
        "Gbit" | "Gb" => 1e9 / 8.0,
        u => {
            return Err(format!(
                "rate '{t}': unknown unit '{u}' (B, KB, MB, GB, KiB, MiB, GiB per second, or kbit, Mbit, Gbit per second)"
            ));
        }
    };
    let bytes = (n * factor).round();
    if !bytes.is_finite() || bytes < MIN_RATE as f64 {
        return Err(format!("rate '{t}' is below the slowest limit the link keeps alive with (16KiB/s)"));
    }
    Ok(Some(bytes as u64))
}

/// A rate as people write it (`20MiB/s`, `unlimited`).
pub fn rate_text(r: Rate) -> String {
    match r {
        None => "unlimited".into(),
        Some(b) if b % 1048576 == 0 => format!("{}MiB/s", b / 1048576),
        Some(b) if b % 1024 == 0 => format!("{}KiB/s", b / 1024),
        Some(b) => format!("{b}B/s"),
    }
}

/// When a rule applies.
#[derive(Debug, Clone, PartialEq, Eq)]
struct When {
    /// Bit `d` set: weekday `d` (0 = Monday) matches.
    days: u8,
    /// Minutes of the day [from, to), wrapping past midnight when from > to; None: all day.
    minutes: Option<(u16, u16)>,
}

/// A bandwidth schedule (a bare rate is a schedule of one rule).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    rules: Vec<(When, Rate)>,
    text: String,
}

impl Schedule {
    /// No limit at any time.
    pub fn unlimited() -> Self {
        Self { rules: vec![], text: "unlimited".into() }
    }

    /// Parses a schedule or a bare rate; the error names the rule that is wrong.
    pub fn parse(s: &str) -> Result<Self, String> {
        let text = s.trim().to_string();
        if text.is_empty() {
            return Err("empty bandwidth setting: give a rate (20MiB/s), a schedule, or 'unlimited'".into());
        }
        let mut rules = Vec::new();
        for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (when, rate) = match part.split_once('=') {
                Some((w, r)) => (parse_when(w.trim()).map_err(|e| format!("rule '{part}': {e}"))?, r),
                None => (When { days: 0x7f, minutes: None }, part),
            };
            let rate = parse_rate(rate).map_err(|e| format!("rule '{part}': {e}"))?;
            rules.push((when, rate));
        }
        Ok(Self { rules, text })
    }

    /// The rate at a moment of local time (weekday 0 = Monday, minute of the day).
    pub fn at(&self, weekday: u8, minute: u16) -> Rate {
        self.rules.iter().find(|(w, _)| w.matches(weekday, minute)).and_then(|(_, r)| *r)
    }

    /// Whether the rate can differ by the time (a schedule rather than one rate).
    pub fn is_timed(&self) -> bool {
        self.rules.iter().any(|(w, _)| w.days != 0x7f || w.minutes.is_some())
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl When {
    fn matches(&self, weekday: u8, minute: u16) -> bool {
        match self.minutes {
            None => self.days & (1 << weekday) != 0,
            Some((from, to)) if from < to => self.days & (1 << weekday) != 0 && (from..to).contains(&minute),
            Some((from, to)) => {
                // Past midnight: the part after midnight belongs to the day the range began.
                let yesterday = (weekday + 6) % 7;
                (minute >= from && self.days & (1 << weekday) != 0)
                    || (minute < to && self.days & (1 << yesterday) != 0)
            }
        }
    }
}

fn parse_when(w: &str) -> Result<When, String> {
    if w == "*" {
        return Ok(When { days: 0x7f, minutes: None });
    }
    let mut days = None;
    let mut minutes = None;
    for word in w.split_whitespace() {
        if word.contains(':') {
            if minutes.is_some() {
                return Err(format!("two time ranges ('{word}')"));
            }
            minutes = Some(parse_minutes(word)?);
        } else {
            if days.is_some() || minutes.is_some() {
                return Err(format!("'{word}': write the days first, then one time range"));
            }
            days = Some(parse_days(word)?);
        }
    }
    Ok(When { days: days.unwrap_or(0x7f), minutes })
}

fn day(s: &str) -> Result<u8, String> {
    DAYS.iter()
        .position(|d| d.eq_ignore_ascii_case(s))
        .map(|p| p as u8)
        .ok_or_else(|| format!("'{s}' is not a day (Mon, Tue, Wed, Thu, Fri, Sat, Sun)"))
}

fn parse_days(s: &str) -> Result<u8, String> {
    let mut bits = 0u8;
    for item in s.split(',').filter(|i| !i.is_empty()) {
        match item.split_once('-') {
            Some((a, b)) => {
                let (mut d, b) = (day(a)?, day(b)?);
                loop {
                    bits |= 1 << d;
                    if d == b {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
            None => bits |= 1 << day(item)?,
        }
    }
    Ok(bits)
}

fn parse_minutes(s: &str) -> Result<(u16, u16), String> {
    let (a, b) = s.split_once('-').ok_or_else(|| format!("'{s}': a time range is HH:MM-HH:MM"))?;
    let m = |t: &str| -> Result<u16, String> {
        let (h, m) = t.split_once(':').ok_or_else(|| format!("'{t}' is not HH:MM"))?;
        let (h, m): (u16, u16) = (
            h.parse().map_err(|_| format!("'{t}' is not HH:MM"))?,
            m.parse().map_err(|_| format!("'{t}' is not HH:MM"))?,
        );
        if h > 24 || m > 59 || (h == 24 && m != 0) {
            return Err(format!("'{t}' is not a time of day"));
        }
        Ok(h * 60 + m)
    };
    let (from, to) = (m(a)?, m(b)?);
    if from == to {
        return Err(format!("'{s}' is an empty time range"));
    }
    Ok((from, to % 1440))
}

/// The settings of a pair the operator can change (`drpair pairs set`,
/// `PUT /api/v1/pairs/{pair}/settings`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsUpdate {
    /// A rate or schedule for the link (`unlimited` removes the limit).
    #[serde(default)]
    pub bandwidth: Option<String>,
    /// The RPO target: `30s`, `5m`, …, `off` (none, even where the standby has a default) or
    /// `default` (the standby's default, if any) (see [`crate::rpo::parse_rpo_setting`]).
    #[serde(default)]
    pub rpo_target: Option<String>,
    /// The RPO error threshold (default: twice the target); `off` goes back to the default.
    #[serde(default)]
    pub rpo_error: Option<String>,
}

/// A pair's settings as the standby holds them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PairSettings {
    pub pair_id: String,
    /// The pair's own bandwidth setting (`unlimited` when it has none).
    pub bandwidth: String,
    /// The limit in force now in bytes per second (the pair's and the standby-wide one
    /// together), None when unlimited.
    pub bandwidth_limit_bytes_per_second: Option<u64>,
    /// The RPO target in force (`off` when none).
    #[serde(default)]
    pub rpo_target: String,
    #[serde(default)]
    pub rpo_target_seconds: Option<u64>,
    /// The error threshold in force (twice the target unless set).
    #[serde(default)]
    pub rpo_error_seconds: Option<u64>,
    /// Whose setting decides: `pair` (its own target, or its own `off`), `standby` (the
    /// standby's default); None when neither sets a target.
    #[serde(default)]
    pub rpo_target_source: Option<crate::rpo::RpoTargetSource>,
}

/// The standby-wide settings (`drpair standby set`, `PUT /api/v1/standby/settings`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StandbySettings {
    /// The standby-wide bandwidth setting: every pair's link together stays under it.
    pub bandwidth: String,
    /// Its rate now in bytes per second, None when unlimited.
    pub bandwidth_limit_bytes_per_second: Option<u64>,
    /// Every pair's link together now, bytes per second.
    pub wire_bytes_per_second: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates() {
        assert_eq!(parse_rate("20MiB/s"), Ok(Some(20 << 20)));
        assert_eq!(parse_rate("100Mbit/s"), Ok(Some(12_500_000)));
        assert_eq!(parse_rate("1.5GB/s"), Ok(Some(1_500_000_000)));
        assert_eq!(parse_rate("unlimited"), Ok(None));
        for bad in ["20MiB", "fast", "10XB/s", "1KiB/s", "-5MiB/s", "MiB/s"] {
            assert!(parse_rate(bad).is_err(), "{bad} accepted");
        }
        assert_eq!(rate_text(Some(40 << 20)), "40MiB/s");
        assert_eq!(rate_text(None), "unlimited");
    }

    #[test]
    fn schedules_by_day_and_time() {
        let s = Schedule::parse("Mon-Fri 08:00-18:00 = 10MiB/s; Sat,Sun = 50MiB/s; * = unlimited").unwrap();
        assert_eq!(s.at(0, 8 * 60), Some(10 << 20));
        assert_eq!(s.at(4, 18 * 60 - 1), Some(10 << 20));
        assert_eq!(s.at(4, 18 * 60), None);
        assert_eq!(s.at(2, 7 * 60 + 59), None);
        assert_eq!(s.at(5, 3), Some(50 << 20));
        assert!(s.is_timed());
        let night = Schedule::parse("Fri 22:00-06:00 = 1MiB/s").unwrap();
        assert_eq!(night.at(4, 23 * 60), Some(1 << 20));
        assert_eq!(night.at(5, 5 * 60), Some(1 << 20), "Saturday morning belongs to Friday's night");
        assert_eq!(night.at(4, 5 * 60), None, "Friday morning belongs to Thursday's night");
        let wrap = Schedule::parse("Fri-Mon = 2MiB/s").unwrap();
        assert_eq!(
            (0..7).map(|d| wrap.at(d, 0).is_some()).collect::<Vec<_>>(),
            [true, false, false, false, true, true, true]
        );
        let flat = Schedule::parse("40MiB/s").unwrap();
        assert_eq!(flat.at(3, 100), Some(40 << 20));
        assert!(!flat.is_timed());
        assert_eq!(flat.to_string(), "40MiB/s");
    }

    #[test]
    fn bad_schedules_name_the_rule() {
        for (bad, says) in [
            ("", "empty"),
            ("Mon-Fri 08:00-18:00", "per second"),
            ("Funday = 1MiB/s", "not a day"),
            ("Mon 25:00-26:00 = 1MiB/s", "not a time"),
            ("Mon 08:00-08:00 = 1MiB/s", "empty time range"),
            ("08:00-09:00 Mon = 1MiB/s", "days first"),
            ("* = 1KiB/s", "slowest"),
        ] {
            let e = Schedule::parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
