//! Following a long operation of the standby to its end: polls a `GET` that answers the
//! operation's status (`verify`, `verify-source`, `failover`, `failback`) and draws a
//! progress bar on stderr.
//!
//! Invariants: stdout is never written here; the bar is drawn only when stderr is a terminal
//! and the output is text (otherwise a progress line at each new tenth at most); a standby
//! that cannot be reached is retried, any other error ends the wait.

use crate::client::{CliError, Client, exit};
use crate::output::{self, OutputFormat};
use indicatif::{ProgressBar, ProgressStyle};
use serde::de::DeserializeOwned;
use std::time::Duration;

/// What one status of the operation says.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    /// 0..=100.
    pub percent: f64,
    /// The counts shown after the bar (`1234 chunks checked`).
    pub message: String,
    /// The operation has ended (whatever its outcome).
    pub over: bool,
}

/// Polls `path` every `every`, starting from `first` (the answer that started the
/// operation), until `seen` calls the status over; returns the last status, raw and typed.
pub fn follow<T: DeserializeOwned>(
    client: &Client,
    output: OutputFormat,
    path: &str,
    prefix: &str,
    first: (serde_json::Value, T),
    every: Duration,
    seen: impl Fn(&T) -> Seen,
) -> Result<(serde_json::Value, T), CliError> {
    let bar = ProgressBar::with_draw_target(Some(1000), output::progress_target(output)).with_style(
        ProgressStyle::with_template("{spinner} {prefix} [{bar:30}] {msg} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(prefix.to_string());
    if !bar.is_hidden() {
        bar.enable_steady_tick(Duration::from_millis(200));
    }
    let mut printed: Option<u64> = None; // the last tenth reported on a line
    let mut current = first;
    loop {
        let now = seen(&current.1);
        if now.over {
            bar.finish_and_clear();
            return Ok(current);
        }
        let percent = if now.percent.is_nan() { 0.0 } else { now.percent.clamp(0.0, 100.0) };
        let line = format!("{} {}", output::format_percent(percent), now.message);
        bar.set_position(output::round_u64(percent * 10.0));
        bar.set_message(line.clone());
        let tenth = output::round_u64(percent.floor()) / 10;
        if bar.is_hidden() && printed.is_none_or(|p| tenth > p) {
            eprintln!("{prefix}: {line}");
            printed = Some(tenth);
        }
        std::thread::sleep(every);
        current = loop {
            match client.get_json::<T>(path) {
                Ok(answer) => break answer,
                // The standby restarting is not the end of the operation.
                Err(e) if e.exit_code() == exit::UNREACHABLE => {
                    bar.set_message(format!("standby unreachable (retrying): {e}"));
                    std::thread::sleep(every.max(Duration::from_secs(1)));
                }
                Err(e) => {
                    bar.abandon();
                    return Err(e);
                }
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_server::{FakeServer, Reply};

    fn seen(v: &serde_json::Value) -> Seen {
        Seen { percent: v["p"].as_f64().unwrap_or(0.0), message: String::new(), over: v["over"] == true }
    }

    #[test]
    fn polls_until_over_and_stops_on_errors() {
        let server = FakeServer::start(vec![
            Reply::json(200, r#"{"p": 50, "over": false}"#),
            Reply::json(200, r#"{"p": 100, "over": true}"#),
        ]);
        let client = Client::new(&server.url, None).unwrap();
        let first = (serde_json::json!({"p": 0}), serde_json::json!({"p": 0}));
        let (raw, _) = follow(&client, OutputFormat::Text, "/api/v1/x", "x", first, Duration::ZERO, seen).unwrap();
        assert_eq!(raw["p"], 100);
        assert_eq!(server.finish().len(), 2);

        let server = FakeServer::start(vec![Reply::json(404, r#"{"code":"NotFound","message":"gone"}"#)]);
        let client = Client::new(&server.url, None).unwrap();
        let first = (serde_json::json!({}), serde_json::json!({}));
        let err = follow(&client, OutputFormat::Json, "/api/v1/x", "x", first, Duration::ZERO, seen).unwrap_err();
        assert_eq!((err.exit_code(), err.to_string()), (exit::NOT_FOUND, "gone".to_string()));
        server.finish();

        // Already over: no request at all.
        let first = (serde_json::json!({}), serde_json::json!({"over": true}));
        let client = Client::new("http://127.0.0.1:9", None).unwrap();
        follow(&client, OutputFormat::Text, "/api/v1/x", "x", first, Duration::ZERO, seen).unwrap();
    }
}
