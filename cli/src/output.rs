//! How the CLI shows things: the `--output` switch, aligned tables and key/value blocks,
//! and the words for durations ("3m 12s"), sizes ("1.2 GiB"), ages ("5m ago") and
//! percentages. Pure functions, so the text forms are tested without a server.
//!
//! Everything meant for scripts goes to stdout; progress bars and errors go to stderr.

use indicatif::ProgressDrawTarget;
use serde::Serialize;
use std::io::{IsTerminal, Write};
use std::time::{SystemTime, UNIX_EPOCH};

/// `--output`: what a command prints on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Tables and readable blocks for people.
    Text,
    /// The API's JSON, one document per command (one line per refresh with `--watch`).
    Json,
}

/// Writes `text` to stdout. A closed pipe (`drpair pairs list | head -1`) is not an error.
pub fn emit(text: &str) {
    if cfg!(test) {
        // The test harness captures print!, not direct writes to stdout.
        println!("{}", text.trim_end_matches('\n'));
        return;
    }
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    if !text.ends_with('\n') {
        let _ = out.write_all(b"\n");
    }
    let _ = out.flush();
}

/// Pretty JSON of `value`, as printed by `--output json`.
pub fn to_json<T: Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

/// Prints an API answer: `raw` as JSON, or for people the text `text` makes.
pub fn answer<T: Serialize + ?Sized>(format: OutputFormat, raw: &T, text: impl FnOnce() -> String) {
    match format {
        OutputFormat::Json => emit(&to_json(raw)),
        OutputFormat::Text => emit(&text()),
    }
}

/// Where progress bars and spinners draw: stderr when it is a terminal and the output is
/// text, nowhere otherwise (scripts and `--output json` get no escape codes).
pub fn progress_target(output: OutputFormat) -> ProgressDrawTarget {
    if output == OutputFormat::Text && std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Rounds a non-negative float to a whole number (negative and NaN give 0).
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
pub fn round_u64(v: f64) -> u64 {
    // Saturating float-to-int cast: NaN → 0, out of range → u64::MAX.
    if v.is_nan() || v <= 0.0 { 0 } else { v.round() as u64 }
}

/// A duration in its two largest units: `0s`, `45s`, `3m 12s`, `2h 5m`, `3d 4h`.
pub fn format_duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) if s == 0 => format!("{m}m"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) if m == 0 => format!("{h}h"),
        (0, _, _) => format!("{h}h {m}m"),
        _ if h == 0 => format!("{d}d"),
        _ => format!("{d}d {h}h"),
    }
}

/// A byte count in binary units with one decimal: `512 B`, `64.0 KiB`, `1.2 GiB`.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    #[allow(clippy::cast_precision_loss)] // one decimal is all we show
    let mut v = bytes as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1023.95 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// A rate in bytes per second: `0 B/s`, `12.5 MiB/s`.
pub fn format_rate(bytes_per_second: f64) -> String {
    format!("{}/s", format_size(round_u64(bytes_per_second)))
}

/// How long ago `then_ms` was, seen from `now_ms`: `just now`, `3m 12s ago`.
/// A time in the future (clock skew between hosts) reads `just now`.
pub fn format_age(then_ms: u64, now_ms: u64) -> String {
    let secs = now_ms.saturating_sub(then_ms) / 1000;
    if secs == 0 { "just now".to_string() } else { format!("{} ago", format_duration(secs)) }
}

/// A percentage with at most one decimal: `100%`, `42.5%`, `0%`.
pub fn format_percent(p: f64) -> String {
    let p = if p.is_nan() { 0.0 } else { p.clamp(0.0, 100.0) };
    let s = format!("{p:.1}");
    format!("{}%", s.strip_suffix(".0").unwrap_or(&s))
}

/// A time given in milliseconds since the Unix epoch, as RFC 3339 UTC to the second
/// (`2026-05-01T10:00:00Z`).
pub fn format_time(unix_ms: u64) -> String {
    let t = UNIX_EPOCH + std::time::Duration::from_millis(unix_ms);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// A ratio with two decimals and a times sign (`2.31×`); `-` when it is not a number one
/// can show (nothing stored yet: 0, NaN or infinite).
pub fn format_ratio(r: f64) -> String {
    if r.is_finite() && r > 0.0 { format!("{r:.2}×") } else { "-".to_string() }
}

/// `yes` / `no`.
pub fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// The wire name of a serde enum value (`app-consistent`, `initial_sync`).
pub fn wire_name<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => "?".to_string(),
    }
}

/// A table with a header row; columns are left-aligned and separated by two spaces.
pub struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&'static str]) -> Self {
        Self { headers: headers.to_vec(), rows: Vec::new() }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let headers: Vec<String> = self.headers.iter().map(|h| h.to_string()).collect();
        let mut out = String::new();
        for row in std::iter::once(&headers).chain(&self.rows) {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                line.push_str(cell);
                let pad = widths.get(i).copied().unwrap_or(0).saturating_sub(cell.chars().count());
                line.extend(std::iter::repeat_n(' ', pad));
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// A block of `Key: value` lines with the values aligned; a value may span several lines
/// (continuation lines are indented under the value).
#[derive(Default)]
pub struct Block {
    lines: Vec<(String, String)>,
}

impl Block {
    pub fn line(&mut self, key: &str, value: impl Into<String>) {
        self.lines.push((key.to_string(), value.into()));
    }

    /// An empty line, before a section of the block (values stay aligned across sections).
    pub fn gap(&mut self) {
        self.lines.push((String::new(), String::new()));
    }

    pub fn render(&self) -> String {
        let width = self.lines.iter().map(|(k, _)| k.chars().count() + 1).max().unwrap_or(0);
        let mut out = String::new();
        for (key, value) in &self.lines {
            if key.is_empty() && value.is_empty() {
                out.push('\n');
                continue;
            }
            let mut parts = value.split('\n');
            let first = parts.next().unwrap_or("");
            out.push_str(format!("{:<width$}  {first}", format!("{key}:")).trim_end());
            out.push('\n');
            for more in parts {
                out.push_str(&format!("{:width$}  {more}\n", ""));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let cases = [
            (0, "0s"),
            (45, "45s"),
            (60, "1m"),
            (192, "3m 12s"),
            (3600, "1h"),
            (7500, "2h 5m"),
            (86_400, "1d"),
            (3 * 86_400 + 4 * 3600 + 59, "3d 4h"),
        ];
        for (secs, want) in cases {
            assert_eq!(format_duration(secs), want, "{secs}");
        }
    }

    #[test]
    fn sizes() {
        let cases = [
            (0, "0 B"),
            (512, "512 B"),
            (1023, "1023 B"),
            (1024, "1.0 KiB"),
            (65_536, "64.0 KiB"),
            (1_288_490_189, "1.2 GiB"),
            (1024 * 1024 - 1, "1.0 MiB"),
            (10 * 1024u64.pow(4), "10.0 TiB"),
            (u64::MAX, "16.0 EiB"),
        ];
        for (bytes, want) in cases {
            assert_eq!(format_size(bytes), want, "{bytes}");
        }
    }

    #[test]
    fn ages_and_percentages() {
        assert_eq!(format_age(1_000_000, 1_000_500), "just now");
        assert_eq!(format_age(2_000_000, 1_000_000), "just now");
        assert_eq!(format_age(0, 192_000), "3m 12s ago");
        assert_eq!(format_percent(100.0), "100%");
        assert_eq!(format_percent(42.46), "42.5%");
        assert_eq!(format_percent(f64::NAN), "0%");
        assert_eq!(format_percent(130.0), "100%");
        assert_eq!(format_rate(12.5 * 1024.0 * 1024.0), "12.5 MiB/s");
        assert_eq!(format_rate(f64::NAN), "0 B/s");
        assert_eq!(round_u64(-3.0), 0);
        assert_eq!(round_u64(2.6), 3);
    }

    #[test]
    fn times_and_ratios() {
        assert_eq!(format_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_time(1_777_629_600_400), "2026-05-01T10:00:00Z");
        assert_eq!(format_ratio(2.3149), "2.31×");
        assert_eq!(format_ratio(1.0), "1.00×");
        for r in [0.0, f64::NAN, f64::INFINITY, -1.0] {
            assert_eq!(format_ratio(r), "-", "{r}");
        }
    }

    #[test]
    fn table_aligns_columns() {
        let mut t = Table::new(&["ID", "KIND", "PINNED"]);
        t.row(vec!["7".into(), "baseline".into(), "".into()]);
        t.row(vec!["12".into(), "app-consistent".into(), "yes".into()]);
        assert_eq!(t.render(), "ID  KIND            PINNED\n7   baseline\n12  app-consistent  yes\n");
    }

    #[test]
    fn block_aligns_values() {
        let mut b = Block::default();
        b.line("Pair", "web-01");
        b.line("Failures", "- one\n- two");
        assert_eq!(b.render(), "Pair:      web-01\nFailures:  - one\n           - two\n");
        b.gap();
        b.line("Dump", "x");
        assert_eq!(b.render(), "Pair:      web-01\nFailures:  - one\n           - two\n\nDump:      x\n");
    }

    #[test]
    fn wire_names() {
        assert_eq!(wire_name(&drpair_types::PointKind::AppConsistent), "app-consistent");
        assert_eq!(wire_name(&drpair_types::PairState::InitialSync), "initial_sync");
    }
}

/// `; task N ('drpair tasks log N' shows its steps)` after an accepted operation, or nothing
/// (a standby from before tasks).
pub fn task_note(task: Option<drpair_types::TaskId>) -> String {
    task.map(|t| format!("; task {t} ('drpair tasks log {t}' shows its steps)")).unwrap_or_default()
}
