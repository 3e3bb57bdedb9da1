//! Protection while failed over: the failover's targets (the recovered disks) protected by
//! an agent of their own under a new pair linked to the original, so recovery points keep
//! being cut while the original site is down; a failback can then start from that pair's
//! newest point (`FailbackRequest::from_protected`).

use crate::ids::{PairId, PointId};
use serde::{Deserialize, Serialize};

/// `POST /api/v1/pairs/{pair}/protect-recovered`: protect the failed-over pair's targets.
/// Allowed only once its failover completed (not while it materialises, not during an
/// instant copy), and once at a time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProtectRecoveredRequest {
    /// `HOST:PORT` of the standby's link the new agent ships to (default: this standby's own
    /// link, reached on 127.0.0.1). Checked to answer before anything changes.
    #[serde(default)]
    pub standby: Option<String>,
    /// Another standby's TLS fingerprint (`sha256:…`), pinned by the agent. Needed with
    /// `enroll_secret` when `standby` is not this one.
    #[serde(default)]
    pub standby_fingerprint: Option<String>,
    /// An enrollment secret of the other standby for `new_pair` (`drpair pairs enroll` there).
    #[serde(default)]
    pub enroll_secret: Option<String>,
    /// The id of the new pair (default: `ORIGINAL-recovered`).
    #[serde(default)]
    pub new_pair: Option<String>,
    /// The agent's tracker: `tracefs` (default when every target is a block device) or
    /// `scan` (default for files).
    #[serde(default)]
    pub tracker: Option<String>,
    /// How often the agent cuts a point (default `1m`).
    #[serde(default)]
    pub cut_interval: Option<String>,
    #[serde(default)]
    pub operator: Option<String>,
}

/// `POST /api/v1/pairs/{pair}/unprotect-recovered`: stops the agent protecting the
/// recovered disks. The new pair and its points are kept.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnprotectRecoveredRequest {
    #[serde(default)]
    pub operator: Option<String>,
}

/// Where the agent protecting the recovered disks is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProtectionState {
    /// The agent was started and has not registered its pair yet.
    Starting,
    /// The agent runs (supervised by the standby, started again if it exits).
    Running,
    /// Stopped by an operator (`unprotect-recovered`) or by a failback; the new pair and
    /// its points are kept.
    Stopped,
    /// The agent could not be started (the message says why).
    Failed,
}

impl ProtectionState {
    pub fn label(self) -> &'static str {
        match self {
            ProtectionState::Starting => "starting",
            ProtectionState::Running => "running",
            ProtectionState::Stopped => "stopped",
            ProtectionState::Failed => "failed",
        }
    }

    /// The agent is (meant to be) running.
    pub fn active(self) -> bool {
        matches!(self, ProtectionState::Starting | ProtectionState::Running)
    }
}

/// Status field `protected_by` of the original pair, and the answer of
/// `protect-recovered` / `unprotect-recovered`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProtectionStatus {
    /// The pair protecting the recovered disks.
    pub pair: PairId,
    /// The standby its agent ships to (`HOST:PORT` of the link).
    pub standby: String,
    /// The standby is this one (the new pair is in this standby's list).
    pub this_standby: bool,
    /// The original pair's failover point: the recovered disks' state when protection began.
    pub failover_point: PointId,
    /// The protected disks (the failover's targets), in disk order.
    pub disks: Vec<String>,
    pub tracker: String,
    pub cut_interval: String,
    pub state: ProtectionState,
    pub started_at: String,
    pub stopped_at: Option<String>,
    /// The agent's process id while it runs.
    pub agent_pid: Option<u32>,
    /// Times the agent exited and was started again.
    pub agent_restarts: u32,
    /// The agent's log on the standby.
    pub agent_log: String,
    pub operator: Option<String>,
    pub message: String,
}

/// Status field `recovered_from` of a pair protecting the recovered disks of another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveredFrom {
    /// The original pair (failed over).
    pub pair: PairId,
    /// Its failover point: this pair's first point equals it.
    pub point: PointId,
}

/// Where a failback `from_protected` took the recovered side from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtectedSource {
    /// The pair protecting the recovered disks.
    pub pair: PairId,
    /// Its newest point, cut when the failback began.
    pub point: PointId,
}
