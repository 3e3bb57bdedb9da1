//! Waiting for a pair to reach a goal: `status --wait-synced`, and `--wait` of `restart`
//! and `start`. Polls `GET /api/v1/pairs/PAIR` once a second through the follower of
//! [`crate::poll`], which shows progress on stderr.
//!
//! Invariants: stdout is never written here; without a bar, one progress line at most every
//! [`LINE_EVERY`]; the goal's blocking states end the wait with exit code 4; the timeout is
//! checked after every poll.

use crate::client::{CliError, Client};
use crate::output::{self, OutputFormat, format_duration as dur};
use crate::poll::{Follower, Lines, Seen};
use drpair_types::{PairId, PairState, PairStatus};
use std::time::Duration;

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
                    && matches!(
                        s.stop_reason.as_deref(),
                        Some(
                            "STOPPED_AT_POINT"
                                | "STOPPED_AT_TIME"
                                | "STOPPED_AT_COMMIT_TIME"
                                | "STOPPED_AT_SERVER_TIME"
                                | "STOPPED_AFTER_FULL_LOAD"
                                | "FULL_LOAD_ONLY_FINISHED"
                        )
                    );
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
    let seen = |s: &PairStatus| {
        if goal.reached(s) {
            return Seen::Over;
        }
        match goal.blocked(pair, s) {
            Some(e) => Seen::Failed(e),
            None => Seen::Running { percent: s.stats.progress_percent, line: progress_line(s) },
        }
    };
    Follower::new(client, output, pair.to_string(), POLL_EVERY)
        .lines(Lines::Every(LINE_EVERY))
        .timeout(timeout, format!("pair {pair} not {}", goal.words()))
        .follow(&format!("/api/v1/pairs/{pair}"), None, seen)
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
    use crate::client::exit;
    use crate::fake_server::{FakeServer, Reply};
    use crate::status::tests::status;
    use drpair_types::RestartInfo;
    use std::time::Instant;

    fn line_due(last: Option<Instant>, now: Instant) -> bool {
        crate::poll::line_due(last, now, LINE_EVERY)
    }

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
        stopped.stop_reason = Some("NORMAL".into());
        for (s, want) in [(status(PairState::Paused, 40.0), "is Paused:"), (stopped, "is Stopped (NORMAL):")] {
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
        for reason in [
            "STOPPED_AT_POINT",
            "STOPPED_AT_TIME",
            "STOPPED_AT_COMMIT_TIME",
            "STOPPED_AT_SERVER_TIME",
            "STOPPED_AFTER_FULL_LOAD",
            "FULL_LOAD_ONLY_FINISHED",
        ] {
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
