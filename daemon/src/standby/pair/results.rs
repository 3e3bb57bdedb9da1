//! The last results of a pair's features as its record persists them: online verify against
//! the source ([`SourceVerifyRecord`]), prune ([`PruneRecord`]), verification of stored chunks
//! ([`VerifyRecord`]), failover ([`FailoverRecord`]) and failback ([`FailbackRecord`]).
//!
//! These are the record's own types, part of its format on disk (`record.rs`,
//! `testdata/pair_record.json`): an API answer may change without changing them. Their JSON is
//! the one the API's types wrote while the record embedded those (the same field names, enum
//! spellings and defaults), so stores written then still open. The standby's features work on
//! these; status and the API see them through the views made here, and only here
//! (`to_view`, and `From` for the one value that comes in from the API: a failback's
//! direction). Ids (pair, point, epoch, task) are the vocabulary's, as elsewhere in the record.

use drpair_types::{self as api, Epoch, PairId, PointId, TaskId};
use serde::{Deserialize, Serialize};

// ---- online verify against the source ----

/// Where an online verify stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceVerifyState {
    /// Asked of the agent; its pass has not begun.
    Requested,
    /// The agent is reading and comparing every chunk.
    Running,
    /// The pass was committed (with or without mismatches).
    Done,
    /// The pass ended without a result (agent disconnected, standby restarted, tracking gap).
    Failed,
}

impl SourceVerifyState {
    /// A verify in this state is still going on.
    pub fn is_active(self) -> bool {
        matches!(self, SourceVerifyState::Requested | SourceVerifyState::Running)
    }

    /// The words an operator sees.
    pub fn label(self) -> &'static str {
        match self {
            SourceVerifyState::Requested => "requested",
            SourceVerifyState::Running => "running",
            SourceVerifyState::Done => "done",
            SourceVerifyState::Failed => "failed",
        }
    }
}

/// The online verify requested or running, or the last one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceVerifyRecord {
    pub state: SourceVerifyState,
    pub requested_unix_ms: u64,
    pub finished_unix_ms: Option<u64>,
    /// The point the source was compared with (the newest when the pass started).
    pub against_point: Option<u64>,
    pub progress_percent: f64,
    pub chunks_compared: u64,
    /// Chunks that differed from the point although the tracker recorded no change.
    pub mismatched_chunks: u64,
    /// Chunks shipped by the pass (mismatches repaired plus ordinary changes).
    pub shipped_chunks: u64,
    /// Up to 50 mismatched chunks.
    pub sample: Vec<MismatchedChunkRecord>,
    /// The point that committed the pass (the repair).
    pub repair_point: Option<u64>,
    /// Plain words: what happened / why it failed.
    pub message: String,
    /// The task that runs (or ran) it. Absent in records written before tasks existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<TaskId>,
}

/// One chunk of one disk that differed from the point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MismatchedChunkRecord {
    pub disk: u32,
    pub chunk: u64,
}

// ---- prune ----

/// What a prune kept and removed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PruneRecord {
    pub pair_id: PairId,
    pub dry_run: bool,
    /// Ran by itself (the prune schedule) rather than on request.
    pub scheduled: bool,
    pub started_unix_ms: u64,
    pub finished_unix_ms: u64,
    pub points_before: u64,
    pub points_kept: u64,
    /// Points removed (or, in a dry run, that would be), oldest first.
    pub removed: Vec<PointMarkRecord>,
    /// Why each kept point stays, oldest first.
    pub kept: Vec<PointMarkRecord>,
    /// Version entries deleted: chunk versions no kept point can see.
    pub versions_deleted: u64,
    /// The space reclaim that followed, if it ran.
    #[serde(default)]
    pub reclaim: Option<ReclaimRecord>,
    /// The task that runs (or ran) it. Absent in records written before tasks existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<TaskId>,
}

/// A point with the reason retention gave it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PointMarkRecord {
    pub id: PointId,
    /// RFC 3339 time of the point.
    pub time: String,
    /// Retention's reason (`newest`, `keep_last`, `grid_N`, `expired`, …).
    pub reason: String,
}

/// What a space reclaim did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReclaimRecord {
    pub candidates_checked: u64,
    pub chunks_deleted: u64,
    pub bytes_freed: u64,
    pub seconds: f64,
    /// With chunks on an object store: packs emptied, rewritten, swept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packs: Option<api::PackReclaimReport>,
}

// ---- verification of stored chunks ----

/// Where a verification of stored chunks stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerifyState {
    Running,
    Done,
    Failed,
}

/// A verification of stored chunks (running, or the last one that finished).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerifyRecord {
    pub state: VerifyState,
    /// Started by the verify schedule rather than on request.
    pub scheduled: bool,
    /// The one point verified, or None for all of them.
    pub point: Option<PointId>,
    pub requested_unix_ms: u64,
    pub finished_unix_ms: Option<u64>,
    pub progress_percent: f64,
    /// Distinct stored chunks read and hashed.
    pub chunks_checked: u64,
    /// Stored (compressed) bytes read.
    pub bytes_checked: u64,
    /// Points found intact.
    pub points_verified: u64,
    /// Points that can see a damaged or missing chunk.
    pub points_damaged: u64,
    /// Up to 50 damaged chunks.
    pub damaged: Vec<DamagedChunkRecord>,
    /// Plain words: the result, or why it failed.
    pub message: String,
    /// The task that runs (or ran) it. Absent in records written before tasks existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<TaskId>,
}

/// A stored chunk that failed verification, and where it is used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DamagedChunkRecord {
    pub disk: u32,
    pub chunk: u64,
    /// blake3 of the chunk as it should be (hex).
    pub hash: String,
    /// `missing`, or what is wrong with the stored bytes.
    pub reason: String,
    /// The points that see this version of the chunk (up to 20).
    pub points: Vec<PointId>,
}

// ---- failover and failback ----

/// A failover's or failback's progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Running,
    Done,
    Failed,
}

/// The failover in force: the point, the targets and how the materialisation went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailoverRecord {
    pub pair_id: PairId,
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
    /// The task that runs (or ran) it. Absent in records written before tasks existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<TaskId>,
    /// An instant failover's session (`standby/instant/`). Absent for a plain failover.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instant: Option<crate::standby::instant::record::InstantRecord>,
}

/// Which way a failback copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailbackDirection {
    /// The recovered side's data onto the original disk.
    ToOriginal,
    /// The original side's data onto the recovered side (the failover is abandoned).
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

/// Where a failback is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailbackPhase {
    KeepingOriginal,
    Comparing,
    Writing,
    Checking,
    Finished,
}

/// A failback (running, or the last one that ended).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailbackRecord {
    pub pair_id: PairId,
    pub state: JobState,
    pub phase: FailbackPhase,
    pub direction: FailbackDirection,
    pub from: Vec<String>,
    /// The point the pair was failed over to.
    pub failover_point: PointId,
    /// The original side's state, committed before anything was overwritten (pinned).
    pub original_point: Option<PointId>,
    pub original_changed_chunks: u64,
    pub recovered_changed_chunks: u64,
    /// Chunks where the two sides differ: the only ones that move.
    pub differing_chunks: u64,
    pub chunks_compared: u64,
    pub chunks_total: u64,
    pub chunks_moved: u64,
    pub bytes_moved: u64,
    pub progress_percent: f64,
    /// The first point committed after the failback, compared with the recovered side.
    pub check_point: Option<PointId>,
    pub check_mismatched_chunks: Option<u64>,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub operator: Option<String>,
    pub message: String,
    /// The task that runs (or ran) it. Absent in records written before tasks existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<TaskId>,
    /// With `from_protected`: the protecting pair's point taken as the recovered side.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_protected: Option<super::protection::ProtectedSourceRecord>,
}

// ---- the views: the only place the record's results meet the API's types ----

impl From<SourceVerifyState> for api::SourceVerifyState {
    fn from(s: SourceVerifyState) -> Self {
        match s {
            SourceVerifyState::Requested => api::SourceVerifyState::Requested,
            SourceVerifyState::Running => api::SourceVerifyState::Running,
            SourceVerifyState::Done => api::SourceVerifyState::Done,
            SourceVerifyState::Failed => api::SourceVerifyState::Failed,
        }
    }
}

impl From<&MismatchedChunkRecord> for api::MismatchedChunk {
    fn from(c: &MismatchedChunkRecord) -> Self {
        api::MismatchedChunk { disk: c.disk, chunk: c.chunk }
    }
}

impl SourceVerifyRecord {
    /// `source_verify` in status, and the answer of `…/verify-source`.
    pub fn to_view(&self) -> api::SourceVerifyStatus {
        api::SourceVerifyStatus {
            state: self.state.into(),
            requested_unix_ms: self.requested_unix_ms,
            finished_unix_ms: self.finished_unix_ms,
            against_point: self.against_point,
            progress_percent: self.progress_percent,
            chunks_compared: self.chunks_compared,
            mismatched_chunks: self.mismatched_chunks,
            shipped_chunks: self.shipped_chunks,
            sample: self.sample.iter().map(Into::into).collect(),
            repair_point: self.repair_point,
            message: self.message.clone(),
            task: self.task,
        }
    }
}

impl From<&PointMarkRecord> for api::PointMark {
    fn from(m: &PointMarkRecord) -> Self {
        api::PointMark { id: m.id, time: m.time.clone(), reason: m.reason.clone() }
    }
}

impl From<&ReclaimRecord> for api::ReclaimReport {
    fn from(r: &ReclaimRecord) -> Self {
        api::ReclaimReport {
            candidates_checked: r.candidates_checked,
            chunks_deleted: r.chunks_deleted,
            bytes_freed: r.bytes_freed,
            seconds: r.seconds,
            packs: r.packs.clone(),
        }
    }
}

impl PruneRecord {
    /// The answer of `…/prune`, and `last_prune` in the retention view.
    pub fn to_view(&self) -> api::PruneReport {
        api::PruneReport {
            pair_id: self.pair_id.clone(),
            dry_run: self.dry_run,
            scheduled: self.scheduled,
            started_unix_ms: self.started_unix_ms,
            finished_unix_ms: self.finished_unix_ms,
            points_before: self.points_before,
            points_kept: self.points_kept,
            removed: self.removed.iter().map(Into::into).collect(),
            kept: self.kept.iter().map(Into::into).collect(),
            versions_deleted: self.versions_deleted,
            reclaim: self.reclaim.as_ref().map(Into::into),
            task: self.task,
        }
    }
}

impl From<VerifyState> for api::VerifyState {
    fn from(s: VerifyState) -> Self {
        match s {
            VerifyState::Running => api::VerifyState::Running,
            VerifyState::Done => api::VerifyState::Done,
            VerifyState::Failed => api::VerifyState::Failed,
        }
    }
}

impl From<&DamagedChunkRecord> for api::DamagedChunk {
    fn from(d: &DamagedChunkRecord) -> Self {
        api::DamagedChunk {
            disk: d.disk,
            chunk: d.chunk,
            hash: d.hash.clone(),
            reason: d.reason.clone(),
            points: d.points.clone(),
        }
    }
}

impl VerifyRecord {
    /// A verification that starts now (`requested_unix_ms`): nothing checked yet.
    pub fn running(scheduled: bool, point: Option<PointId>, requested_unix_ms: u64) -> Self {
        Self {
            state: VerifyState::Running,
            scheduled,
            point,
            requested_unix_ms,
            finished_unix_ms: None,
            progress_percent: 0.0,
            chunks_checked: 0,
            bytes_checked: 0,
            points_verified: 0,
            points_damaged: 0,
            damaged: Vec::new(),
            message: "verifying stored chunks".into(),
            task: None,
        }
    }

    /// `verify` in status, and the answer of `…/verify`.
    pub fn to_view(&self) -> api::VerifyStatus {
        api::VerifyStatus {
            state: self.state.into(),
            scheduled: self.scheduled,
            point: self.point,
            requested_unix_ms: self.requested_unix_ms,
            finished_unix_ms: self.finished_unix_ms,
            progress_percent: self.progress_percent,
            chunks_checked: self.chunks_checked,
            bytes_checked: self.bytes_checked,
            points_verified: self.points_verified,
            points_damaged: self.points_damaged,
            damaged: self.damaged.iter().map(Into::into).collect(),
            message: self.message.clone(),
            task: self.task,
        }
    }
}

impl From<JobState> for api::JobState {
    fn from(s: JobState) -> Self {
        match s {
            JobState::Running => api::JobState::Running,
            JobState::Done => api::JobState::Done,
            JobState::Failed => api::JobState::Failed,
        }
    }
}

impl FailoverRecord {
    /// `failover` in status, and the answer of `…/failover`.
    pub fn to_view(&self) -> api::FailoverStatus {
        api::FailoverStatus {
            pair_id: self.pair_id.clone(),
            state: self.state.into(),
            point: self.point,
            epoch: self.epoch,
            point_time: self.point_time.clone(),
            targets: self.targets.clone(),
            bytes_total: self.bytes_total,
            bytes_written: self.bytes_written,
            progress_percent: self.progress_percent,
            started_at: self.started_at.clone(),
            finished_at: self.finished_at.clone(),
            elapsed_seconds: self.elapsed_seconds,
            throughput_bytes_per_sec: self.throughput_bytes_per_sec,
            operator: self.operator.clone(),
            message: self.message.clone(),
            task: self.task,
            instant: self.instant.as_ref().map(|i| i.view.clone()),
        }
    }
}

/// The direction a failback request names.
impl From<api::FailbackDirection> for FailbackDirection {
    fn from(d: api::FailbackDirection) -> Self {
        match d {
            api::FailbackDirection::ToOriginal => FailbackDirection::ToOriginal,
            api::FailbackDirection::ToRecovered => FailbackDirection::ToRecovered,
        }
    }
}

impl From<FailbackDirection> for api::FailbackDirection {
    fn from(d: FailbackDirection) -> Self {
        match d {
            FailbackDirection::ToOriginal => api::FailbackDirection::ToOriginal,
            FailbackDirection::ToRecovered => api::FailbackDirection::ToRecovered,
        }
    }
}

impl From<FailbackPhase> for api::FailbackPhase {
    fn from(p: FailbackPhase) -> Self {
        match p {
            FailbackPhase::KeepingOriginal => api::FailbackPhase::KeepingOriginal,
            FailbackPhase::Comparing => api::FailbackPhase::Comparing,
            FailbackPhase::Writing => api::FailbackPhase::Writing,
            FailbackPhase::Checking => api::FailbackPhase::Checking,
            FailbackPhase::Finished => api::FailbackPhase::Finished,
        }
    }
}

impl FailbackRecord {
    /// `failback` in status, and the answer of `…/failback`.
    pub fn to_view(&self) -> api::FailbackStatus {
        api::FailbackStatus {
            pair_id: self.pair_id.clone(),
            state: self.state.into(),
            phase: self.phase.into(),
            direction: self.direction.into(),
            from: self.from.clone(),
            failover_point: self.failover_point,
            original_point: self.original_point,
            original_changed_chunks: self.original_changed_chunks,
            recovered_changed_chunks: self.recovered_changed_chunks,
            differing_chunks: self.differing_chunks,
            chunks_compared: self.chunks_compared,
            chunks_total: self.chunks_total,
            chunks_moved: self.chunks_moved,
            bytes_moved: self.bytes_moved,
            progress_percent: self.progress_percent,
            check_point: self.check_point,
            check_mismatched_chunks: self.check_mismatched_chunks,
            started_at: self.started_at.clone(),
            finished_at: self.finished_at.clone(),
            operator: self.operator.clone(),
            message: self.message.clone(),
            task: self.task,
            from_protected: self.from_protected.as_ref().map(|s| s.to_view()),
        }
    }
}
