//! The third-party dump workflow: seeding or re-seeding the standby from a snapshot taken by
//! another tool (SAN/LVM/cloud snapshot, a disk image on media), so that only the changes
//! made after the dump point cross the link.
//!
//! Steps: `suspend` → `standby skip-to-resync-marker` → (the operator takes the dump) →
//! `marker dump` → `resume --resync` (the agent sends a resync marker, then the dump marker) →
//! `standby load-dump` per disk → `standby resume-apply` (the agent ships what changed after
//! the dump point, then the pair is verified against the source).

use crate::api::{Consistency, QuiesceOutcome};
use crate::ids::{Epoch, PointId};
use serde::{Deserialize, Serialize};

/// Where a pair's dump workflow stands (`dump.step` in status).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DumpStep {
    /// The agent ships nothing and its checkpoint stays where it was; tracking goes on.
    Suspended,
    /// The standby purged its queue for the pair and waits for the agent's resync marker.
    AwaitingResyncMarker,
    /// The resync marker was processed; the dump marker is expected next.
    AwaitingDumpMarker,
    /// The dump marker was processed: apply is suspended until the dump is loaded.
    ApplySuspended,
    /// The agent ships what changed after the dump point and the pair is compared with the
    /// source before it is declared replicating.
    Verifying,
    /// The workflow completed (kept in status until the next one).
    Done,
    /// An operator abandoned the workflow (`resume` without `--resync`, or `--reinit`).
    Abandoned,
}

impl DumpStep {
    /// The words an operator sees.
    pub fn label(self) -> &'static str {
        match self {
            DumpStep::Suspended => "Suspended for a dump",
            DumpStep::AwaitingResyncMarker => "Waiting for resync marker",
            DumpStep::AwaitingDumpMarker => "Waiting for dump marker",
            DumpStep::ApplySuspended => "Apply suspended: load the dump",
            DumpStep::Verifying => "Verifying the dump",
            DumpStep::Done => "Dump applied",
            DumpStep::Abandoned => "Dump workflow abandoned",
        }
    }
}

/// `POST /api/v1/pairs/{pair}/marker/dump`: record the dump point in the agent's change
/// history.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DumpMarkerRequest {
    /// `now` (default: the agent cuts an epoch now), an epoch the agent cut while suspended,
    /// or an RFC 3339 time (the newest epoch the agent cut at or before it). The dump must have
    /// been taken at or after that point: everything changed after it is shipped.
    #[serde(default)]
    pub at: Option<String>,
    /// Freeze these filesystems (mount points on the protected server) around the cut and the
    /// snapshot command. Only with `exec`.
    #[serde(default)]
    pub freeze: Vec<String>,
    /// The operator's snapshot command, run by the agent (`sh -c`) after the cut, while the
    /// filesystems are frozen. The agent runs it only when its config allows it
    /// (`marker_exec = true`).
    #[serde(default)]
    pub exec: Option<String>,
    /// Longest time the filesystems may stay frozen, in milliseconds (100..=600000; default
    /// 30000). Only with `freeze`.
    #[serde(default)]
    pub thaw_budget_ms: Option<u64>,
    /// The command is killed after this many seconds (1..=86400; default 600).
    #[serde(default)]
    pub exec_timeout_seconds: Option<u64>,
}

/// What the snapshot command of a coordinated dump marker did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecOutcome {
    pub command: String,
    /// None when it was killed (timeout) or could not start.
    pub exit_code: Option<i32>,
    pub millis: u64,
    /// The end of its output (stdout and stderr, at most 4 KiB).
    pub output: String,
}

/// A dump point recorded in the agent's change history: the dump holds every change stamped
/// at or before `epoch`; everything changed after it is shipped once the dump is loaded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpMarker {
    pub epoch: Epoch,
    /// RFC 3339 time of the cut that closed `epoch` (agent clock).
    pub time: String,
    pub time_unix_ms: u64,
    /// How the point was given: `now`, `epoch N`, `time T`, or `exec`.
    pub at: String,
    /// `app-consistent` only when the snapshot command ran while every filesystem was frozen.
    pub consistency: Consistency,
    /// The freeze around the cut and the snapshot command, when asked for.
    #[serde(default)]
    pub quiesce: Option<QuiesceOutcome>,
    #[serde(default)]
    pub exec: Option<ExecOutcome>,
}

/// Body of `POST /api/v1/pairs/{pair}/resume` (optional: an empty body resumes plainly).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResumeRequest {
    /// Resume in resync mode: the agent sends a resync marker and the dump marker.
    #[serde(default)]
    pub resync: bool,
    /// With `resync`: re-initialise instead (a full restart: new lineage, every recovery point
    /// deleted, everything copied again), for when the agent's change history no longer
    /// reaches the dump point. Requires `confirm`.
    #[serde(default)]
    pub reinit: bool,
    /// The pair id, required with `reinit`.
    #[serde(default)]
    pub confirm: Option<String>,
}

/// `POST /api/v1/pairs/{pair}/dump/load`: import a dump image of one disk (a path on the
/// standby).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadDumpRequest {
    pub disk: u32,
    /// Absolute path of the image on the standby: a raw image, a qcow2 image or a block device.
    pub image: String,
    /// `raw` or `qcow2` (default: detected from the content).
    #[serde(default)]
    pub format: Option<String>,
}

/// Loading state of one disk's dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DumpLoadState {
    Pending,
    Loading,
    Loaded,
    Failed,
}

/// One disk's dump load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DumpDiskLoad {
    pub disk: u32,
    pub state: DumpLoadState,
    pub image: Option<String>,
    pub format: Option<String>,
    pub percent: f64,
    /// Chunks read from the image.
    pub chunks: u64,
    /// Chunks that differ from the pair's newest point before the dump (all, for a new pair).
    pub changed_chunks: u64,
    pub zero_chunks: u64,
    /// Chunks whose content the standby already held.
    pub dedup_chunks: u64,
    /// Bytes newly written to the chunk store.
    pub stored_bytes: u64,
    pub loaded_at: Option<String>,
    pub error: Option<String>,
}

/// The comparison of the loaded dump with the source after `resume-apply`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpVerification {
    /// The epoch whose pass compared every chunk.
    pub epoch: Epoch,
    pub chunks_compared: u64,
    /// Chunks shipped because they changed after the dump point (or differed).
    pub chunks_shipped: u64,
    /// Chunks that differed from the dump although the agent saw no change after the dump
    /// point: the dump does not match the recorded point. They were repaired from the source.
    pub mismatched_chunks: u64,
    /// Some of those, as `[disk, chunk]`.
    pub mismatched_sample: Vec<[u64; 2]>,
    pub verified_at: String,
}

/// One line of the workflow's log, in plain words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpEvent {
    /// RFC 3339.
    pub time: String,
    pub message: String,
}

/// `dump` in a pair's status: the workflow in progress, or the last one completed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DumpStatus {
    pub step: DumpStep,
    pub step_label: String,
    /// What the operator does next, as a command line.
    pub next_step: String,
    /// RFC 3339 time of `suspend`.
    pub suspended_at: String,
    /// The pair's newest committed epoch at `suspend`: the checkpoint does not move until the
    /// dump is applied.
    pub checkpoint_epoch: Epoch,
    /// Uncommitted chunk versions purged by `skip-to-resync-marker`.
    pub purged_versions: u64,
    pub marker: Option<DumpMarker>,
    pub resync_marker_at: Option<String>,
    pub dump_marker_at: Option<String>,
    pub disks: Vec<DumpDiskLoad>,
    /// The `dump-marker` recovery point, once every disk is loaded.
    pub point: Option<PointId>,
    pub verification: Option<DumpVerification>,
    /// The workflow's log, oldest first (the last 50 lines).
    pub events: Vec<DumpEvent>,
}

/// Answer to [`DumpMarkerRequest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DumpMarkerResponse {
    pub message: String,
    pub marker: DumpMarker,
    pub status: crate::api::PairStatus,
}
