//! Following a long operation of the standby to its end: the one follower every waiting
//! command goes through (`verify`, `verify --source`, `failover`, `failback`, `standby
//! load-dump`, and the `--wait`/`--wait-synced` of `start`, `restart` and `status`). It polls
//! a `GET` that answers the operation's status and draws one progress bar on stderr. Commands
//! that wait for a single long answer (`prune`, `storage`, `marker dump`, `points create
//! --wait`) show the spinner of [`waiting`] instead.
//!
//! Invariants: stdout is never written here; the bar is drawn only when stderr is a terminal
//! and the output is text (otherwise progress lines, paced by [`Lines`]); a standby that
//! cannot be reached is retried, any other error ends the wait; a timeout is checked after
//! every poll.

use crate::client::{ANSWER_TIMEOUT, CliError, Client, exit};
use crate::output::{self, OutputFormat, format_duration as dur};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Display;
use std::time::{Duration, Instant};

/// What one status of the operation says.
#[derive(Debug)]
pub enum Seen {
    /// Still going: how far (0..=100) and the words shown after the prefix.
    Running { percent: f64, line: String },
    /// Over, whatever its outcome: the follower returns this status.
    Over,
    /// Over, with a closing line printed where progress lines go (text output only).
    Finished(String),
    /// Over in a way that ends the command with this error.
    Failed(CliError),
}

impl Seen {
    /// The status of an operation that may be over; while running, its line is the percent
    /// followed by `message` (`42% 1234 chunks checked`).
    pub fn progress(over: bool, percent: f64, message: impl Display) -> Seen {
        if over {
            return Seen::Over;
        }
        let percent = clamp_percent(percent);
        Seen::Running { percent, line: format!("{} {message}", output::format_percent(percent)) }
    }
}

/// When a progress line is printed in place of the bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lines {
    /// At each new tenth of the way (0%, 10%, 20%…); none while the standby is unreachable.
    EachTenth,
    /// At most once per this interval, also while the standby is unreachable.
    Every(Duration),
}

/// Polls a status until it is over, with one bar and one line format.
pub struct Follower<'a> {
    client: &'a Client,
    output: OutputFormat,
    prefix: String,
    every: Duration,
    lines: Lines,
    /// Give up after this long: exit code 7 with `{what} after {limit}: {last line}`.
    timeout: Option<(Duration, String)>,
}

impl<'a> Follower<'a> {
    /// Polls every `every` (at least a second while the standby is unreachable); `prefix`
    /// names the operation on the bar and on each line.
    pub fn new(client: &'a Client, output: OutputFormat, prefix: impl Into<String>, every: Duration) -> Self {
        Follower { client, output, prefix: prefix.into(), every, lines: Lines::EachTenth, timeout: None }
    }

    pub fn lines(mut self, lines: Lines) -> Self {
        self.lines = lines;
        self
    }

    /// Ends the wait after `limit` (if any) with exit code 7, the message starting with `what`.
    pub fn timeout(mut self, limit: Option<Duration>, what: impl Into<String>) -> Self {
        let what = what.into();
        self.timeout = limit.map(|l| (l, what));
        self
    }

    /// Polls `path` until `seen` calls the status over, starting from `first` (the answer
    /// that started the operation; `None`: from a `GET` now); returns the last status, raw
    /// and typed.
    pub fn follow<T: DeserializeOwned>(
        &self,
        path: &str,
        first: Option<(serde_json::Value, T)>,
        seen: impl Fn(&T) -> Seen,
    ) -> Result<(serde_json::Value, T), CliError> {
        let prefix = &self.prefix;
        let bar = progress_bar(self.output, prefix);
        let started = Instant::now();
        let mut pace = Pace { lines: self.lines, tenth: None, at: None };
        let mut next = first;
        let mut last: String; // the latest line, for the timeout message
        loop {
            let mut retrying = false;
            let answer = match next.take() {
                Some(answer) => Ok(answer),
                None => self.client.get_json::<T>(path),
            };
            match answer {
                Ok(answer) => match seen(&answer.1) {
                    Seen::Running { percent, line } => {
                        let percent = clamp_percent(percent);
                        bar.set_position(output::round_u64(percent * 10.0));
                        bar.set_message(line.clone());
                        if bar.is_hidden() && pace.due(Some(percent), Instant::now()) {
                            eprintln!("{prefix}: {line}");
                        }
                        last = line;
                    }
                    Seen::Over => {
                        bar.finish_and_clear();
                        return Ok(answer);
                    }
                    Seen::Finished(line) => {
                        bar.finish_and_clear();
                        if bar.is_hidden() && self.output == OutputFormat::Text {
                            eprintln!("{prefix}: {line}");
                        }
                        return Ok(answer);
                    }
                    Seen::Failed(e) => {
                        bar.abandon();
                        return Err(e);
                    }
                },
                // The standby restarting is not the end of the operation.
                Err(e) if e.exit_code() == exit::UNREACHABLE => {
                    last = format!("standby unreachable: {e}");
                    bar.set_message(format!("{last} (retrying)"));
                    if bar.is_hidden() && pace.due(None, Instant::now()) {
                        eprintln!("{prefix}: {last}");
                    }
                    retrying = true;
                }
                Err(e) => {
                    bar.abandon();
                    return Err(e);
                }
            }
            if let Some((limit, what)) = &self.timeout
                && started.elapsed() >= *limit
            {
                bar.abandon();
                return Err(CliError::TimedOut(format!("{what} after {}: {last}", dur(limit.as_secs()))));
            }
            std::thread::sleep(if retrying { self.every.max(Duration::from_secs(1)) } else { self.every });
        }
    }
}

/// Polls `path` every `every`, starting from `first` (the answer that started the
/// operation), until `seen` calls the status over; a progress line at each new tenth.
pub fn follow<T: DeserializeOwned>(
    client: &Client,
    output: OutputFormat,
    path: &str,
    prefix: &str,
    first: (serde_json::Value, T),
    every: Duration,
    seen: impl Fn(&T) -> Seen,
) -> Result<(serde_json::Value, T), CliError> {
    Follower::new(client, output, prefix, every).follow(path, Some(first), seen)
}

/// A long operation of the standby: started by `POST path`, then followed through `GET
/// path` every `every`.
pub struct Operation<'a> {
    pub client: &'a Client,
    pub output: OutputFormat,
    pub path: String,
    pub every: Duration,
}

impl Operation<'_> {
    /// Starts the operation with `request` and follows it until `seen` calls it over, the bar
    /// named by `prefix` of the first answer; returns the last status, raw and typed. With
    /// `no_wait`, an operation still running is printed as accepted (`accepted` in text) and
    /// `None` is returned.
    pub fn start<R: Serialize, T: DeserializeOwned>(
        &self,
        request: &R,
        no_wait: bool,
        accepted: impl FnOnce(&T) -> String,
        prefix: impl FnOnce(&T) -> String,
        seen: impl Fn(&T) -> Seen,
    ) -> Result<Option<(serde_json::Value, T)>, CliError> {
        let (_, raw, first) = self.client.post_json::<_, T>(&self.path, request, ANSWER_TIMEOUT)?;
        if no_wait && matches!(seen(&first), Seen::Running { .. }) {
            output::answer(self.output, &raw, || accepted(&first));
            return Ok(None);
        }
        let prefix = prefix(&first);
        follow(self.client, self.output, &self.path, &prefix, (raw, first), self.every, seen).map(Some)
    }
}

/// Runs `call` (one request whose answer takes long) with a spinner saying `message` on
/// stderr, cleared once the answer is in.
pub fn waiting<R>(output: OutputFormat, message: impl Into<String>, call: impl FnOnce() -> R) -> R {
    let spinner = ProgressBar::with_draw_target(None, output::progress_target(output))
        .with_style(
            ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        )
        .with_message(message.into());
    if !spinner.is_hidden() {
        spinner.enable_steady_tick(Duration::from_millis(120));
    }
    let result = call();
    spinner.finish_and_clear();
    result
}

/// The bar of every follower: in thousandths, the prefix, the line and the time taken.
fn progress_bar(output: OutputFormat, prefix: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(1000), output::progress_target(output)).with_style(
        ProgressStyle::with_template("{spinner} {prefix} [{bar:30}] {msg} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(prefix.to_string());
    if !bar.is_hidden() {
        bar.enable_steady_tick(Duration::from_millis(200));
    }
    bar
}

/// 0..=100, NaN read as 0.
fn clamp_percent(percent: f64) -> f64 {
    if percent.is_nan() { 0.0 } else { percent.clamp(0.0, 100.0) }
}

/// Whether a line is due, the previous one having been printed at `last`, with `every`
/// between two lines.
pub fn line_due(last: Option<Instant>, now: Instant, every: Duration) -> bool {
    last.is_none_or(|t| now.duration_since(t) >= every)
}

/// The pace of the progress lines: the last tenth and the time of the last line.
struct Pace {
    lines: Lines,
    tenth: Option<u64>,
    at: Option<Instant>,
}

impl Pace {
    /// Whether a line is due now, at `percent` (`None`: the standby is unreachable); if so,
    /// counts it as printed.
    fn due(&mut self, percent: Option<f64>, now: Instant) -> bool {
        match self.lines {
            Lines::EachTenth => {
                let Some(percent) = percent else { return false };
                let tenth = output::round_u64(percent.floor()) / 10;
                let due = self.tenth.is_none_or(|p| tenth > p);
                if due {
                    self.tenth = Some(tenth);
                }
                due
            }
            Lines::Every(every) => {
                let due = line_due(self.at, now, every);
                if due {
                    self.at = Some(now);
                }
                due
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_server::{FakeServer, Reply};

    fn seen(v: &serde_json::Value) -> Seen {
        Seen::progress(v["over"] == true, v["p"].as_f64().unwrap_or(0.0), "")
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

    #[test]
    fn lines_each_tenth_or_paced_by_time() {
        let t = Instant::now();
        let mut tenths = Pace { lines: Lines::EachTenth, tenth: None, at: None };
        let printed: Vec<bool> =
            [Some(0.0), Some(5.0), Some(10.0), None, Some(19.9), Some(35.0)].map(|p| tenths.due(p, t)).to_vec();
        assert_eq!(printed, [true, false, true, false, false, true]);
        let mut timed = Pace { lines: Lines::Every(Duration::from_secs(10)), tenth: None, at: None };
        assert!(timed.due(Some(1.0), t) && !timed.due(None, t + Duration::from_secs(9)));
        assert!(timed.due(None, t + Duration::from_secs(10)));
    }
}
