//! Why a pair stopped, or does not replicate (`stop_reason` in status).

use serde::{Deserialize, Serialize};

/// Why a pair stopped (`stop_reason` in status), in the words of the reference workflow
/// (DMS). The names drpair used before are accepted on input and shown as
/// `stop_reason_alias`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StopReason {
    /// The stop position (`stop_at_point`) was reached.
    StoppedAtPoint,
    /// A point cut at or after the stop time (`stop_at_time`, the time of the agent's cut)
    /// was committed.
    #[serde(alias = "STOPPED_AT_TIME")]
    StoppedAtCommitTime,
    /// The standby's clock reached the stop time (`stop_at_server_time`).
    StoppedAtServerTime,
    /// An operator stopped the pair (`drpair stop`).
    #[serde(alias = "STOPPED_BY_USER")]
    Normal,
    /// A start with `full_load_only`: the baseline is committed, changes since are not
    /// shipped (the agent keeps tracking them).
    FullLoadOnlyFinished,
    /// A start with `stop_after_full_load`: the baseline is committed and the changes made
    /// meanwhile wait in the agent's change map.
    StoppedAfterFullLoad,
    /// The standby's memory fell below its limit (`memory_limit`); resumes by itself.
    StoppedDueToLowMemory,
    /// The standby's data filesystem reached its reserve (`disk_reserve`); resumes by itself.
    StoppedDueToLowDisk,
}

impl StopReason {
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::StoppedAtPoint => "STOPPED_AT_POINT",
            StopReason::StoppedAtCommitTime => "STOPPED_AT_COMMIT_TIME",
            StopReason::StoppedAtServerTime => "STOPPED_AT_SERVER_TIME",
            StopReason::Normal => "NORMAL",
            StopReason::FullLoadOnlyFinished => "FULL_LOAD_ONLY_FINISHED",
            StopReason::StoppedAfterFullLoad => "STOPPED_AFTER_FULL_LOAD",
            StopReason::StoppedDueToLowMemory => "STOPPED_DUE_TO_LOW_MEMORY",
            StopReason::StoppedDueToLowDisk => "STOPPED_DUE_TO_LOW_DISK",
        }
    }

    /// The name drpair gave this reason before it took the DMS names.
    pub fn alias(self) -> Option<&'static str> {
        match self {
            StopReason::StoppedAtCommitTime => Some("STOPPED_AT_TIME"),
            StopReason::Normal => Some("STOPPED_BY_USER"),
            _ => None,
        }
    }

    /// The standby stopped the pair for a resource and resumes it by itself.
    pub fn resumes_by_itself(self) -> bool {
        matches!(self, StopReason::StoppedDueToLowMemory | StopReason::StoppedDueToLowDisk)
    }
}

/// `stop_reason` of a pair that is not stopped but does not replicate either: the agent is
/// away and will retry by itself.
pub const RECOVERABLE_ERROR: &str = "RECOVERABLE_ERROR";
/// The agent was refused for a reason only an operator can remove (lineage, checkpoint,
/// credentials).
pub const FATAL_ERROR: &str = "FATAL_ERROR";
/// The agent's disks changed: a restart (or an adoption of grown disks) takes them.
pub const RECONFIGURATION_RESTART: &str = "RECONFIGURATION_RESTART";
