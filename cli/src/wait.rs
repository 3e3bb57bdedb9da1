//! Waiting for a pair to reach a goal: `status --wait-synced`, and `--wait` of `restart`
//! and `start`. Polls `GET /api/v1/pairs/PAIR` once a second and shows progress on stderr.
//!
//! Invariants: stdout is never written here; a bar is drawn only when stderr is a terminal
//! (and the output is text), otherwise one progress line at most every [`LINE_EVERY`]; a
//! standby that cannot be reached is retried, any other error ends the wait; the timeout is
//! checked after every poll.

use crate::client::{CliError, Client, exit};
use crate::output::{self, OutputFormat, format_duration as dur};
use drpair_types::{PairId, PairState, PairStatus};
use indicatif::{ProgressBar, ProgressStyle};
use std::time::{Duration, Instant};

/// Time between two polls.
const POLL_EVERY: Duration = Duration::from_secs(1);
/// Time between two progress lines when no bar is drawn.
const LINE_EVERY: Duration = Duration::from_secs(10);

/// What the wait waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Goal {
    /// Replicating with no pass left to finish (`status --wait-synced`).
    Synced,
    /// A restart or start has settled: Replicating, ready for failover, no restart pending;
    /// or stopped at the stop position the operator gave. Paused or otherwise Stopped
    /// meanwhile ends the wait with exit code 4.
    Settled,
}

impl Goal {
    pub fn reached(self, s: &PairStatus) -> bool {
        match self {
            Goal::Synced => s.state == PairState::Replicating && s.stats.progress_percent >= 100.0,
            Goal::Settled => {
                let at_stop_position = s.state == PairState::Stopped
                    && matches!(s.stop_reason.as_deref(), Some("STOPPED_AT_POINT" | "STOPPED_AT_TIME"));
                (s.state == PairState::Replicating || at_stop_position) && s.ready_for_failover && s.restart.is_none()
            }
        }
    }

    /// The goal in words, for the error messages.
    fn words(self) -> &'static str {
        match self {
            Goal::Synced => "in sync",
            Goal::Settled => "replicating and ready for failover",
        }
    }

    /// Why the goal will not be reached without an operator, if so.
    fn blocked(self, pair: &PairId, s: &PairStatus) -> Option<CliError> {
        if self != Goal::Settled || self.reached(s) || !matches!(s.state, PairState::Paused | PairState::Stopped) {
            return None;
        }
        let reason = s.stop_reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default();
        Some(CliError::State(format!(
            "pair {pair} is {}{reason}: it will not become {} by itself; see 'drpair status {pair}'",
            s.state_label,
            self.words()
        )))
    }
}

/// Polls until `goal` is reached; returns the last status, raw and typed. `timeout` ends the
/// wait with exit code 7.
pub fn wait(
    client: &Client,
    output: OutputFormat,
    pair: &PairId,
    goal: Goal,
    timeout: Option<Duration>,
) -> Result<(serde_json::Value, PairStatus), CliError> {
    let path = format!("/api/v1/pairs/{pair}");
    let started = Instant::now();
    let bar = ProgressBar::with_draw_target(Some(100), output::progress_target(output)).with_style(
        ProgressStyle::with_template("{spinner} {prefix} [{bar:30}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(pair.to_string());
    if !bar.is_hidden() {
        bar.enable_steady_tick(Duration::from_millis(200));
    }
    let mut last_line: Option<Instant> = None;
    let mut last: String; // the latest state, for the timeout message
    loop {
        match client.get_json::<PairStatus>(&path) {
            Ok((raw, status)) => {
                last = progress_line(&status);
                bar.set_position(output::round_u64(status.stats.progress_percent.clamp(0.0, 100.0)));
                bar.set_message(last.clone());
                if goal.reached(&status) {
                    bar.finish_and_clear();
                    return Ok((raw, status));
                }
                if let Some(e) = goal.blocked(pair, &status) {
                    bar.abandon();
                    return Err(e);
                }
            }
            // The standby restarting during a long wait is not the end of the wait.
            Err(e) if e.exit_code() == exit::UNREACHABLE => {
                last = format!("standby unreachable: {e}");
                bar.set_message(format!("{last} (retrying)"));
            }
            Err(e) => {
                bar.abandon();
                return Err(e);
            }
        }
        if bar.is_hidden() && line_due(last_line, Instant::now()) {
            eprintln!("{pair}: {last}");
            last_line = Some(Instant::now());
        }
        if let Some(limit) = timeout
            && started.elapsed() >= limit
        {
            bar.abandon();
            return Err(CliError::TimedOut(format!(
                "pair {pair} not {} after {}: {last}",
                goal.words(),
                dur(limit.as_secs())
            )));
        }
        std::thread::sleep(POLL_EVERY);
    }
}

/// Whether a progress line is due, the previous one having been printed at `last`.
fn line_due(last: Option<Instant>, now: Instant) -> bool {
    last.is_none_or(|t| now.duration_since(t) >= LINE_EVERY)
}

/// One line of progress: state, percent, ETA, throughput.
pub fn progress_line(s: &PairStatus) -> String {
    let mut line = format!("{} {}", s.state_label, output::format_percent(s.stats.progress_percent));
    if let Some(eta) = s.stats.eta_seconds {
        line.push_str(&format!(", ETA {}", dur(eta)));
    }
    if s.stats.throughput_bytes_per_second > 0.0 {
        line.push_str(&format!(", {}", output::format_rate(s.stats.throughput_bytes_per_second)));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_server::{FakeServer, Reply};
    use crate::status::tests::status;
    use drpair_types::RestartInfo;

    fn reply(s: &PairStatus) -> Reply {
        Reply::json(200, &serde_json::to_string(s).unwrap())
    }

    fn settled() -> PairStatus {
        let mut s = status(PairState::Replicating, 100.0);
        s.ready_for_failover = true;
        s
    }

    fn restarting() -> PairStatus {
        let mut s = status(PairState::InitialSync, 40.0);
        s.restart = Some(RestartInfo {
            requested_at: "2026-05-01T10:00:00Z".into(),
            full_copy: false,
            keep_points_until_synced: true,
            kept_points: 3,
        });
        s
    }

    #[test]
    fn goals() {
        assert!(Goal::Synced.reached(&status(PairState::Replicating, 100.0)));
        assert!(!Goal::Synced.reached(&status(PairState::Replicating, 99.9)));
        assert!(!Goal::Synced.reached(&status(PairState::InitialSync, 100.0)));
        assert!(Goal::Settled.reached(&settled()));
        assert!(!Goal::Settled.reached(&status(PairState::Replicating, 100.0)), "not ready for failover");
        let mut s = settled();
        s.restart = restarting().restart;
        assert!(!Goal::Settled.reached(&s), "restart pending");
    }

    #[test]
    fn progress_line_and_its_pace() {
        let mut s = status(PairState::InitialSync, 42.0);
        assert_eq!(progress_line(&s), "Start Replication 42%, ETA 5m");
        s.stats.throughput_bytes_per_second = 12.5 * 1024.0 * 1024.0;
        assert_eq!(progress_line(&s), "Start Replication 42%, ETA 5m, 12.5 MiB/s");
        let t = Instant::now();
        assert!(line_due(None, t));
        assert!(!line_due(Some(t), t + Duration::from_secs(9)));
        assert!(line_due(Some(t), t + LINE_EVERY));
    }

    #[test]
    fn settles_after_the_new_baseline() {
        let server = FakeServer::start(vec![reply(&restarting()), reply(&settled())]);
        let client = Client::new(&server.url, None).unwrap();
        let pair = PairId::new("web-01").unwrap();
        let (_, last) = wait(&client, OutputFormat::Text, &pair, Goal::Settled, None).unwrap();
        assert!(last.ready_for_failover);
        let reqs = server.finish();
        assert_eq!(reqs.len(), 2);
        assert!(reqs.iter().all(|r| r.method == "GET" && r.path == "/api/v1/pairs/web-01"));
    }

    #[test]
    fn paused_or_stopped_ends_the_wait_with_exit_4() {
        let mut stopped = status(PairState::Stopped, 40.0);
        stopped.stop_reason = Some("STOPPED_BY_USER".into());
        for (s, want) in [(status(PairState::Paused, 40.0), "is Paused:"), (stopped, "is Stopped (STOPPED_BY_USER):")] {
            let server = FakeServer::start(vec![reply(&s)]);
            let client = Client::new(&server.url, None).unwrap();
            let pair = PairId::new("web-01").unwrap();
            let err = wait(&client, OutputFormat::Text, &pair, Goal::Settled, None).unwrap_err();
            assert_eq!(err.exit_code(), exit::INVALID_STATE);
            assert!(err.to_string().contains(want), "{err}");
            server.finish();
        }
    }

    #[test]
    fn reaching_the_stop_position_settles_the_wait() {
        for reason in ["STOPPED_AT_POINT", "STOPPED_AT_TIME"] {
            let mut s = settled();
            s.state = PairState::Stopped;
            s.stop_reason = Some(reason.into());
            assert!(Goal::Settled.reached(&s), "{reason}");
            assert!(Goal::Settled.blocked(&PairId::new("p").unwrap(), &s).is_none(), "{reason}");
        }
    }

    #[test]
    fn times_out_with_exit_7() {
        let server = FakeServer::start(vec![reply(&restarting())]);
        let client = Client::new(&server.url, None).unwrap();
        let pair = PairId::new("web-01").unwrap();
        let err = wait(&client, OutputFormat::Json, &pair, Goal::Settled, Some(Duration::ZERO)).unwrap_err();
        assert_eq!(err.exit_code(), exit::TIMED_OUT);
        let msg = err.to_string();
        assert!(msg.starts_with("pair web-01 not replicating and ready for failover after 0s: Start Replication 40%"));
        server.finish();
    }

    #[test]
    fn api_errors_end_the_wait() {
        let server = FakeServer::start(vec![Reply::json(404, r#"{"code":"PairNotFound","message":"no pair"}"#)]);
        let client = Client::new(&server.url, None).unwrap();
        let pair = PairId::new("web-01").unwrap();
        let err = wait(&client, OutputFormat::Text, &pair, Goal::Synced, None).unwrap_err();
        assert_eq!(err.exit_code(), exit::NOT_FOUND);
        server.finish();
    }
}
