//! Failover (a recovery point materialised onto a device or file on the standby, with the pair
//! fenced) and failback (the two sides made equal again by a differential resync).

use crate::ids::{Epoch, PairId, PointId};
use serde::{Deserialize, Serialize};

/// `POST /api/v1/pairs/{pair}/failover`. Exactly one of `point` and `latest`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailoverRequest {
    #[serde(default)]
    pub point: Option<PointId>,
    #[serde(default)]
    pub latest: bool,
    /// One block device or file per disk of the pair, in disk order, on the standby's host.
    /// A file that does not exist is created (sparse).
    pub targets: Vec<String>,
    /// Overwrite a regular file that already has data.
    #[serde(default)]
    pub force: bool,
    /// Who ran it (the CLI sends the login name).
    #[serde(default)]
    pub operator: Option<String>,
    /// Instant recovery: the recovered disks are usable at once (served over NBD, or booted in
    /// a guest with `boot`) while the point is copied onto the targets underneath.
    #[serde(default)]
    pub instant: bool,
    /// With `instant`: run the recovered machine in a QEMU guest on the standby (as a boot
    /// drill does); the copy is QEMU's `blockdev-mirror` and ends with a pivot onto the targets.
    #[serde(default)]
    pub boot: Option<crate::BootRequest>,
    /// With `instant`: the copy's bandwidth cap in bytes per second (none: as fast as it goes),
    /// so the running machine keeps the disks' bandwidth (tests use it to watch the copy).
    #[serde(default)]
    pub copy_rate_bytes_per_sec: Option<u64>,
    /// Once the point is on the targets, protect them with an agent under a new pair linked
    /// to this one (as `protect-recovered` with its defaults). Not with `instant`.
    #[serde(default)]
    pub protect: bool,
}

/// `POST /api/v1/pairs/{pair}/failover/instant/stop`: ends an instant failover's session (its
/// guest is powered off, or its NBD export closed) once the targets alone carry the machine.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstantStopRequest {
    #[serde(default)]
    pub operator: Option<String>,
}

/// How an instant failover makes the disks usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstantMode {
    /// Writable NBD exports an outside client attaches; drpair copies underneath.
    Nbd,
    /// A QEMU guest on the standby; QEMU's `blockdev-mirror` copies underneath.
    Boot,
}

/// Where an instant failover's session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstantPhase {
    /// The machine runs from the point (and its writes) while the copy goes on.
    Copying,
    /// The copy is complete: the targets alone carry the machine.
    OnTargets,
    /// The session ended (stopped, or its guest powered off); the targets hold the disks.
    Ended,
    /// The session failed (the failover's message says why).
    Failed,
}

/// An instant failover's own part of `FailoverStatus`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstantStatus {
    pub mode: InstantMode,
    pub phase: InstantPhase,
    /// The NBD exports while they are served (mode `nbd`: the disks to attach; their names
    /// hold a secret of this failover).
    #[serde(default)]
    pub exports: Vec<String>,
    /// Milliseconds from the request to usable disks (exports served; in mode `boot`, QEMU
    /// started).
    pub usable_ms: f64,
    /// When the copy completed and the targets alone carried the machine (RFC 3339 UTC).
    pub on_targets_at: Option<String>,
    /// The copy's bandwidth cap, if any.
    pub copy_rate_bytes_per_sec: Option<u64>,
    /// Times the session was resumed after a standby restart.
    pub resumed: u32,
    /// Mode `boot`: the guest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest: Option<InstantGuest>,
}

/// The recovered machine's guest (mode `boot`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstantGuest {
    pub running: bool,
    pub accel: String,
    pub memory_mib: u64,
    pub cpus: u32,
    pub firmware: String,
    pub expect: String,
    /// Milliseconds from QEMU's start to the console's match, once it matched.
    pub boot_ms: Option<u64>,
    /// The console's last lines.
    pub console_tail: String,
    /// The guest's console log on the standby.
    pub console_log: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// How the guest was stopped (`drpair failover PAIR --stop-instant`), once it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<crate::GuestStop>,
}

/// A failover's or failback's progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Running,
    Done,
    Failed,
}

impl JobState {
    pub fn label(self) -> &'static str {
        match self {
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Failed => "failed",
        }
    }
}

/// The pair's failover: status field `failover`, `GET /api/v1/pairs/{pair}/failover`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailoverStatus {
    pub pair_id: PairId,
    /// Materialising the point onto the targets: running, done, or failed (the pair stays
    /// fenced; run failover again).
    pub state: JobState,
    pub point: PointId,
    pub epoch: Epoch,
    /// The point's cut time (RFC 3339 UTC).
    pub point_time: String,
    pub targets: Vec<String>,
    pub bytes_total: u64,
    pub bytes_written: u64,
    pub progress_percent: f64,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub elapsed_seconds: f64,
    /// Bytes written per second so far.
    pub throughput_bytes_per_sec: f64,
    pub operator: Option<String>,
    pub message: String,
    /// The task that runs (or ran) this operation: `GET /api/v1/tasks/{id}` and its `/log`.
    /// Absent in records written before tasks existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<crate::TaskId>,
    /// An instant failover's session: its mode, phase, exports or guest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instant: Option<InstantStatus>,
}

/// Which way a failback copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailbackDirection {
    /// The recovered side's data is written onto the original disk (through the agent); the
    /// original's state is first kept as a recovery point. The usual failback.
    ToOriginal,
    /// The original side's data is written onto the recovered disk: the failover is
    /// abandoned and the original side stays the source.
    ToRecovered,
}

impl FailbackDirection {
    pub fn as_str(self) -> &'static str {
        match self {
            FailbackDirection::ToOriginal => "to-original",
            FailbackDirection::ToRecovered => "to-recovered",
        }
    }
}

/// `POST /api/v1/pairs/{pair}/failback`. `direction` is required: a failback never guesses
/// which side's data wins.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailbackRequest {
    /// The recovered side: one block device or file per disk, in disk order, on the standby.
    /// Empty with `from_protected`.
    #[serde(default)]
    pub from: Vec<String>,
    /// The recovered side is the newest point of the pair protecting the recovered disks
    /// (`protect-recovered`, on this standby): a final point is cut first, and no disk is
    /// read. Only `to-original` (the default then).
    #[serde(default)]
    pub from_protected: bool,
    #[serde(default)]
    pub direction: Option<FailbackDirection>,
    #[serde(default)]
    pub operator: Option<String>,
}

/// Where a failback is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailbackPhase {
    /// The agent reads every chunk of the original disk and ships what differs from the
    /// newest point: the original's state is committed as a point before anything is
    /// overwritten.
    KeepingOriginal,
    /// The recovered side is read and hashed and compared with that point.
    Comparing,
    /// Differing chunks are written (onto the original disk through the agent, or onto the
    /// recovered side).
    Writing,
    /// Replication resumed; the first point after the failback is compared with the
    /// recovered side.
    Checking,
    Finished,
}

/// The pair's failback: status field `failback`, `GET /api/v1/pairs/{pair}/failback`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailbackStatus {
    pub pair_id: PairId,
    pub state: JobState,
    pub phase: FailbackPhase,
    pub direction: FailbackDirection,
    pub from: Vec<String>,
    /// The point the pair was failed over to.
    pub failover_point: PointId,
    /// The original side's state, committed before anything was overwritten (pinned).
    pub original_point: Option<PointId>,
    /// Chunks of the original side that differ from the failover point.
    pub original_changed_chunks: u64,
    /// Chunks of the recovered side that differ from the failover point.
    pub recovered_changed_chunks: u64,
    /// Chunks where the two sides differ: the only ones that move.
    pub differing_chunks: u64,
    pub chunks_compared: u64,
    pub chunks_total: u64,
    pub chunks_moved: u64,
    pub bytes_moved: u64,
    pub progress_percent: f64,
    /// The first point committed after the failback equals the recovered side (to-original),
    /// or None until checked.
    pub check_point: Option<PointId>,
    pub check_mismatched_chunks: Option<u64>,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub operator: Option<String>,
    pub message: String,
    /// The task that runs (or ran) this operation: `GET /api/v1/tasks/{id}` and its `/log`.
    /// Absent in records written before tasks existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<crate::TaskId>,
    /// With `from_protected`: the protecting pair and its point the recovered side was
    /// taken from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_protected: Option<crate::ProtectedSource>,
}
