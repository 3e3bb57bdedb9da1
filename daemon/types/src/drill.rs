//! Failover drills: a recovery point served as writable, throw-away NBD exports while
//! replication goes on, and the evidence each drill leaves.

use crate::ids::{PairId, PointId};
use serde::{Deserialize, Serialize};

/// `POST /api/v1/pairs/{pair}/drills`: which point to drill, for how long, what to check.
/// At most one of `point`, `time`, `latest` (none: the newest point).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrillRequest {
    #[serde(default)]
    pub point: Option<PointId>,
    /// The newest point cut at or before this time (RFC 3339 UTC).
    #[serde(default)]
    pub time: Option<String>,
    #[serde(default)]
    pub latest: bool,
    /// Seconds until the drill ends by itself (default 3600; 5..=604800).
    #[serde(default)]
    pub ttl_seconds: Option<u64>,
    /// A shell command run on the standby once the exports are ready (e.g. `fsck -n` through
    /// `nbdfuse`, or a boot probe); it finds the exports in `DRPAIR_DRILL_NBD_0`, `…_1`, ….
    #[serde(default)]
    pub check: Option<String>,
    /// Who runs the drill (the CLI sends the login name); recorded as evidence.
    #[serde(default)]
    pub operator: Option<String>,
    /// Boot the point in a guest on the standby (QEMU, from the drill's exports) and pass
    /// when its console matches (`drill_boot.rs`).
    #[serde(default)]
    pub boot: Option<crate::BootRequest>,
}

/// Where a drill is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DrillState {
    /// The exports are served.
    Running,
    /// Stopped by an operator.
    Stopped,
    /// Its time-to-live ran out.
    Expired,
    /// It could not be started, or the standby stopped under it.
    Failed,
}

/// One disk of a drill, served over NBD.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrillExport {
    pub disk: u32,
    /// `nbd://127.0.0.1:PORT/diskN`, for qemu (`-drive file=…`), `qemu-img`, `nbdfuse`.
    pub uri: String,
    pub size_bytes: u64,
    /// Chunks written into the drill's scratch overlay so far (discarded at its end).
    pub written_chunks: u64,
}

/// The optional check command's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrillCheck {
    pub command: String,
    /// None while it runs, or when it was killed at its time limit.
    pub exit_code: Option<i32>,
    pub passed: Option<bool>,
    /// The last lines of its output.
    pub output: String,
    pub duration_ms: Option<u64>,
}

/// A drill and its evidence (`GET /api/v1/drills`, `…/pairs/{pair}/drills`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrillStatus {
    pub id: String,
    pub pair_id: PairId,
    pub state: DrillState,
    pub point: PointId,
    /// When the point was cut (RFC 3339).
    pub point_time: String,
    /// The point's age when the drill was asked for: the RPO a failover then would have had.
    pub point_age_seconds: f64,
    pub requested_at: String,
    /// From the request to the exports being served, in milliseconds: the RTO of the data.
    pub ready_ms: f64,
    pub expires_at: String,
    pub ended_at: Option<String>,
    pub operator: String,
    pub exports: Vec<DrillExport>,
    pub check: Option<DrillCheck>,
    pub message: String,
    /// The boot, when the drill was asked to boot the point (absent in older records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot: Option<crate::DrillBoot>,
}
