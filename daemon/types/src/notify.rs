//! Notifications (issue 26): what the standby tells operators when something needs one, the
//! message every target receives ([`Notification`], a webhook's JSON body as it is), and the
//! API's view of the targets and the queue (`GET /api/v1/notify`, `POST /api/v1/notify/test`).

use serde::{Deserialize, Serialize};

/// How much a notification matters. Targets take those at or above their `min_severity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "info" => Ok(Severity::Info),
            "warning" => Ok(Severity::Warning),
            "error" => Ok(Severity::Error),
            _ => Err(format!("'{s}' is not a severity: info, warning or error")),
        }
    }
}

/// Whether a condition began (or changed severity), ended, or the notification tells of a
/// single event (a failed drill) or is a test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotificationStatus {
    Firing,
    Resolved,
    Event,
    Test,
}

/// One notification: a webhook receives it as its JSON body, an e-mail tells the same.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// Unique per standby and increasing: a receiver that sees an id twice (a retry after a
    /// lost answer) drops the second.
    pub id: u64,
    pub status: NotificationStatus,
    /// What it is about: `rpo`, `pair_error`, `not_replicating`, `agent_unseen`,
    /// `tracking_gap`, `verify_damage`, `drill_failed`, `low_disk`, `low_memory`,
    /// `spool_full`, `certificate_expiry`, `token_expiry`, `test`.
    pub kind: String,
    /// Names the condition: a firing and its resolution share it (`rpo:web-01`).
    pub key: String,
    pub severity: Severity,
    /// The DR pair, when it is about one.
    pub pair: Option<String>,
    /// One line, e.g. `RPO warning on web-01: the newest point is 45s old (target 30s)`.
    pub summary: String,
    /// More detail in plain words.
    pub message: String,
    /// RFC 3339 time the notification was made.
    pub time: String,
    pub time_unix_ms: u64,
    /// RFC 3339 time the condition began (a resolution: when it began, not when it ended).
    pub since: String,
    /// The standby's host name.
    pub standby: String,
}

/// A target as the API shows it: where it sends (a webhook's scheme, host and port only: its
/// path may hold a secret), its filters and how its deliveries went since the standby started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotifyTarget {
    pub name: String,
    /// `webhook` or `smtp`.
    pub kind: String,
    pub destination: String,
    pub min_severity: Severity,
    /// Pair name patterns (`*` matches any run of characters); empty: every pair.
    pub pairs: Vec<String>,
    /// Notifications waiting for this target.
    pub pending: u64,
    pub delivered: u64,
    pub failed_attempts: u64,
    pub last_delivered_at: Option<String>,
    /// The last failed attempt's reason, until a delivery succeeds.
    pub last_error: Option<String>,
}

/// A condition the standby has told (or is holding before it tells).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActiveCondition {
    pub key: String,
    pub kind: String,
    pub severity: Severity,
    pub pair: Option<String>,
    pub summary: String,
    pub since: String,
    /// Told to the targets; false while the condition waits out `hold`.
    pub notified: bool,
}

/// `GET /api/v1/notify`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotifyStatus {
    pub targets: Vec<NotifyTarget>,
    /// Notifications not yet delivered to every target they are for.
    pub queued: u64,
    pub conditions: Vec<ActiveCondition>,
    /// Seconds a condition must hold before it is told.
    pub hold_seconds: u64,
}

/// `POST /api/v1/notify/test`: one test notification to `target`, or to every target.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyTestRequest {
    #[serde(default)]
    pub target: Option<String>,
}

/// One target's answer to a test.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyTestResult {
    pub target: String,
    pub ok: bool,
    /// What the target answered, or why it could not be reached.
    pub detail: String,
    pub duration_ms: u64,
}

/// The answer to `POST /api/v1/notify/test`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyTestReport {
    pub results: Vec<NotifyTestResult>,
}
