//! What the web panel (and any dashboard) reads besides status: a pair's health at a glance,
//! the actions its state allows now, and the short history behind the lag and throughput
//! charts.

use crate::api::PairState;
use serde::{Deserialize, Serialize};

/// How a pair is doing, at a glance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthLevel {
    /// Replicating, recovery point objective within bounds.
    Ok,
    /// Protected but not as it should be: lag above [`LAG_WARNING_SECONDS`], paused, a
    /// (re)sync or rescan running, a dump workflow in progress.
    Warning,
    /// Not protected now, or protection is at risk: disconnected, stopped, no complete
    /// recovery point, lag above [`LAG_CRITICAL_SECONDS`], damaged points.
    Critical,
}

/// The health badge: a level and the reason for it, in words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub level: HealthLevel,
    pub reason: String,
}

/// Lag (seconds since the newest point was cut) above which a replicating pair warns.
pub const LAG_WARNING_SECONDS: f64 = 120.0;
/// Lag above which a pair is critical whatever its state.
pub const LAG_CRITICAL_SECONDS: f64 = 900.0;

/// The facts health is judged on.
#[derive(Debug, Clone, Copy)]
pub struct HealthFacts {
    pub state: PairState,
    pub ready_for_failover: bool,
    pub lag_seconds: f64,
    /// Recovery points the last verification found damaged.
    pub damaged_points: u64,
}

impl Health {
    /// The worst thing the facts show.
    pub fn of(f: HealthFacts) -> Health {
        use HealthLevel::*;
        use PairState as S;
        let h = |level, reason: String| Health { level, reason };
        let lag = format_lag(f.lag_seconds);
        if f.damaged_points > 0 {
            return h(Critical, format!("{} recovery point(s) failed verification", f.damaged_points));
        }
        match f.state {
            S::Disconnected => return h(Critical, format!("the agent is not connected; lag {lag}")),
            S::Stopped => return h(Critical, "replication is stopped".into()),
            S::Initiating => return h(Critical, "replication never started".into()),
            S::FailedOver => {
                return h(
                    Critical,
                    "failed over: the standby's side is the source and nothing protects it until failback".into(),
                );
            }
            S::FailingBack => return h(Warning, "failing back: the two sides are being made equal".into()),
            _ => {}
        }
        if !f.ready_for_failover {
            let why = match f.state {
                S::InitialSync => "the baseline copy is running",
                _ => "no complete recovery point yet",
            };
            return h(
                if f.state == S::InitialSync { Warning } else { Critical },
                format!("not ready for failover: {why}"),
            );
        }
        if f.lag_seconds > LAG_CRITICAL_SECONDS {
            return h(Critical, format!("lag {lag} is above {}", format_lag(LAG_CRITICAL_SECONDS)));
        }
        match f.state {
            S::Paused => return h(Warning, format!("paused by an operator; lag {lag} grows")),
            S::Rescanning => return h(Warning, "rescanning: comparing every chunk after a tracking gap".into()),
            s if s.in_dump_workflow() => return h(Warning, format!("third-party dump workflow: {}", s.label())),
            _ => {}
        }
        if f.lag_seconds > LAG_WARNING_SECONDS {
            return h(Warning, format!("lag {lag} is above {}", format_lag(LAG_WARNING_SECONDS)));
        }
        h(Ok, format!("replicating; lag {lag}"))
    }
}

/// `42s`, `5m 03s`, `2h 10m`.
pub fn format_lag(s: f64) -> String {
    let s = s.max(0.0).round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        _ => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
    }
}

/// Operator actions, by the name the panel and scripts use; `PairStatus.allowed_actions`
/// lists those the pair's state allows now (the API refuses the others with 409).
pub const ACTIONS: &[&str] = &[
    "start",
    "resume",
    "pause",
    "stop",
    "restart",
    "replay",
    "failover",
    "failback",
    "create_point",
    "adopt_growth",
    // The third-party dump workflow, step by step.
    "suspend",
    "skip_to_resync_marker",
    "mark_dump",
    "resume_resync",
    "load_dump",
    "resume_apply",
    // Checks of what is stored and of the source.
    "drill",
    "verify",
    "verify_source",
];

/// One sample of a pair's short history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrendSample {
    /// When the sample was taken, milliseconds since the Unix epoch.
    pub t_unix_ms: u64,
    pub state: PairState,
    /// Recovery point objective at that moment.
    pub lag_seconds: f64,
    /// Bytes per second the agent read (about the last 10 seconds).
    pub read_bytes_per_second: f64,
    /// Bytes per second that crossed the link since the previous sample.
    pub wire_bytes_per_second: f64,
    /// Bytes per second newly written to the chunk store since the previous sample.
    pub stored_bytes_per_second: f64,
    pub backlog_bytes: u64,
    pub progress_percent: f64,
}

/// `GET /api/v1/pairs/{pair}/history`: the samples the standby keeps (oldest first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairTrend {
    pub pair_id: crate::ids::PairId,
    /// Seconds between samples.
    pub interval_seconds: u64,
    /// Seconds of history kept (older samples are dropped).
    pub window_seconds: u64,
    pub samples: Vec<TrendSample>,
}

/// `GET /api/v1/events?pair=ID`: one `pair` event of the pair's stream. The lists the
/// panel shows besides status are named by a short hash of their JSON (`*_rev`), so a page
/// fetches a list again only when its hash changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairEvent {
    /// Exactly what `GET /api/v1/pairs/{pair}` answers for the caller.
    pub status: crate::api::PairStatus,
    /// Hash of `GET /api/v1/pairs/{pair}/points` (16 hex digits).
    pub points_rev: String,
    /// Hash of `GET /api/v1/tasks?pair={pair}`.
    pub tasks_rev: String,
    /// Hash of `GET /api/v1/pairs/{pair}/drills`.
    pub drills_rev: String,
    /// The history samples taken since the newest one this stream sent (all of them in the
    /// first event), oldest first, as in `GET /api/v1/pairs/{pair}/history`.
    pub history: Vec<TrendSample>,
    /// The newest [`EVENT_POINTS`] points (oldest first, as `GET …/points?limit=N`), sent when
    /// `points_rev` differs from the last event's: the panel's first page of points without a
    /// request of its own. Absent when the points did not change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub points: Option<Vec<crate::api::RecoveryPoint>>,
}

/// How many of the newest points a pair's event carries when they changed.
pub const EVENT_POINTS: usize = 50;

/// The `gone` event of a pair's stream: the pair was deleted, and the stream ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairGone {
    pub pair_id: crate::ids::PairId,
    pub message: String,
}

/// `POST /api/v1/pairs/{pair}/points/{point}/disks/{disk}/download`: a one-time link to the
/// disk image, which a browser can follow without the API token (the link is the credential).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DownloadLink {
    /// `/api/v1/downloads/TICKET`: works once, without a token, until `expires_at`.
    pub url: String,
    /// RFC 3339 UTC.
    pub expires_at: String,
    /// `PAIR-pointN-diskD.img`, also sent as the download's `Content-Disposition`.
    pub filename: String,
    pub size_bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use PairState as S;

    fn facts(state: PairState, ready: bool, lag: f64) -> HealthFacts {
        HealthFacts { state, ready_for_failover: ready, lag_seconds: lag, damaged_points: 0 }
    }

    #[test]
    fn health_table() {
        let cases = [
            (facts(S::Replicating, true, 3.0), HealthLevel::Ok, "replicating; lag 3s"),
            (facts(S::Replicating, true, 300.0), HealthLevel::Warning, "lag 5m 00s is above 2m 00s"),
            (facts(S::Replicating, true, 7200.0), HealthLevel::Critical, "lag 2h 00m is above 15m 00s"),
            (facts(S::Paused, true, 30.0), HealthLevel::Warning, "paused by an operator; lag 30s grows"),
            (
                facts(S::InitialSync, false, 30.0),
                HealthLevel::Warning,
                "not ready for failover: the baseline copy is running",
            ),
            (facts(S::Disconnected, true, 30.0), HealthLevel::Critical, "the agent is not connected; lag 30s"),
            (facts(S::Stopped, true, 1.0), HealthLevel::Critical, "replication is stopped"),
            (facts(S::Initiating, false, 1.0), HealthLevel::Critical, "replication never started"),
            (
                facts(S::Rescanning, true, 1.0),
                HealthLevel::Warning,
                "rescanning: comparing every chunk after a tracking gap",
            ),
            (facts(S::Suspended, true, 1.0), HealthLevel::Warning, "third-party dump workflow: Suspended"),
        ];
        for (f, level, reason) in cases {
            let h = Health::of(f);
            assert_eq!((h.level, h.reason.as_str()), (level, reason), "{f:?}");
        }
        let damaged = HealthFacts { damaged_points: 2, ..facts(S::Replicating, true, 1.0) };
        assert_eq!(Health::of(damaged).level, HealthLevel::Critical);
    }

    #[test]
    fn lag_words() {
        assert_eq!(format_lag(-1.0), "0s");
        assert_eq!(format_lag(59.4), "59s");
        assert_eq!(format_lag(61.0), "1m 01s");
        assert_eq!(format_lag(3661.0), "1h 01m");
    }

    #[test]
    fn levels_on_the_wire() {
        assert_eq!(serde_json::to_string(&HealthLevel::Critical).unwrap(), "\"critical\"");
    }
}
