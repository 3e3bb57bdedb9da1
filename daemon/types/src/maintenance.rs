//! Keeping a pair's recovery points in shape: retention and pruning, space reclaim,
//! verification of what is stored, and the storage report.

use crate::ids::{PairId, PointId};
use serde::{Deserialize, Serialize};

/// `GET /api/v1/pairs/{pair}/retention` (and the answer of `PUT`): the pair's policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetentionView {
    /// The retention grid, e.g. `1x10m(keep=all) | 60x1m | 144x10m | 168x1h | 30x1d`.
    pub grid: String,
    /// The newest N points are always kept.
    pub keep_last: u32,
    /// The policy in plain words.
    pub description: String,
    /// True when the pair follows the standby's configured default (no policy of its own).
    pub is_default: bool,
    /// How often the standby prunes, in seconds (0: never by itself).
    pub prune_interval_seconds: u64,
    /// The last prune of this pair.
    #[serde(default)]
    pub last_prune: Option<PruneReport>,
}

/// `PUT /api/v1/pairs/{pair}/retention`. Omitted fields keep their value; `reset` returns
/// the pair to the standby's default policy (and may not be combined with the others).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionUpdate {
    #[serde(default)]
    pub grid: Option<String>,
    #[serde(default)]
    pub keep_last: Option<u32>,
    #[serde(default)]
    pub reset: bool,
}

/// `POST /api/v1/pairs/{pair}/prune`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PruneRequest {
    /// Only compute what would be removed.
    #[serde(default)]
    pub dry_run: bool,
}

/// What a prune kept and removed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PruneReport {
    pub pair_id: PairId,
    pub dry_run: bool,
    /// Ran by itself (the prune schedule) rather than on request.
    pub scheduled: bool,
    pub started_unix_ms: u64,
    pub finished_unix_ms: u64,
    pub points_before: u64,
    pub points_kept: u64,
    /// Points removed (or, in a dry run, that would be), oldest first.
    pub removed: Vec<PointMark>,
    /// Why each kept point stays, oldest first.
    pub kept: Vec<PointMark>,
    /// Version entries deleted: chunk versions no kept point can see.
    pub versions_deleted: u64,
    /// The space reclaim that followed, if it ran.
    #[serde(default)]
    pub reclaim: Option<ReclaimReport>,
    /// The task that runs (or ran) this operation: `GET /api/v1/tasks/{id}` and its `/log`.
    /// Absent in records written before tasks existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<crate::TaskId>,
}

/// A point with the reason retention gave it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PointMark {
    pub id: PointId,
    /// RFC 3339 time of the point.
    pub time: String,
    /// `newest`, `pinned_operator`, `pinned_baseline`, `pinned_dump_marker`, `pinned_drill`,
    /// `keep_last`, `grid_N` (kept for rule N of the grid), `thinned`, `expired`.
    pub reason: String,
}

/// What a space reclaim did: chunks that lost their last reference are deleted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReclaimReport {
    /// Chunks that may have lost their last reference, checked.
    pub candidates_checked: u64,
    /// Of those, chunks deleted (no version of any pair refers to them).
    pub chunks_deleted: u64,
    /// Stored bytes of the deleted chunks.
    pub bytes_freed: u64,
    pub seconds: f64,
    /// With chunks on an object store: what happened to the packs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packs: Option<PackReclaimReport>,
}

/// Space reclaim on an object store: packs emptied, sparse packs rewritten, orphans swept.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackReclaimReport {
    /// Pack objects deleted because no chunk in them was named any more.
    pub packs_emptied: u64,
    /// Sparse packs whose live chunks were copied into new packs, then deleted.
    pub packs_rewritten: u64,
    /// New packs those live chunks went to.
    pub packs_written: u64,
    /// Live chunks copied, and their bytes.
    pub chunks_moved: u64,
    pub bytes_moved: u64,
    /// Objects no chunk entry named (left by a crash), deleted.
    pub orphans_deleted: u64,
    /// Why the rewrite and sweep stopped (the object store failed); they run again with the
    /// next space reclaim. The chunks' deletion itself is done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What the object store's packs hold (store-wide: packs are shared by every pair).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackUsageReport {
    /// Endpoint, bucket and prefix.
    pub store: String,
    /// Pack objects some chunk entry names.
    pub packs: u64,
    /// Their bytes.
    pub pack_bytes: u64,
    /// Bytes of the chunks still named.
    pub live_bytes: u64,
    /// Bytes of chunks named no more, freed when their packs are rewritten or deleted.
    pub garbage_bytes: u64,
    /// Packs under the rewrite threshold (rewritten by the next space reclaim).
    pub sparse_packs: u64,
}

/// `POST /api/v1/pairs/{pair}/verify`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyRequest {
    /// Verify this point only (default: every point of the pair).
    #[serde(default)]
    pub point: Option<PointId>,
    /// Answer once the verification is done (200) instead of at once (202).
    #[serde(default)]
    pub wait: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerifyState {
    Running,
    Done,
    Failed,
}

/// A verification of stored chunks: every chunk a point can see is re-read, decompressed
/// and re-hashed. `GET /api/v1/pairs/{pair}/verify` and the status field `verify`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerifyStatus {
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
    /// Points found intact (marked `verified_at`).
    pub points_verified: u64,
    /// Points that can see a damaged or missing chunk (marked `damage`).
    pub points_damaged: u64,
    /// Up to 50 damaged chunks.
    pub damaged: Vec<DamagedChunk>,
    /// Plain words: the result, or why it failed.
    pub message: String,
    /// The task that runs (or ran) this operation: `GET /api/v1/tasks/{id}` and its `/log`.
    /// Absent in records written before tasks existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<crate::TaskId>,
}

/// A stored chunk that failed verification, and where it is used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DamagedChunk {
    pub disk: u32,
    pub chunk: u64,
    /// blake3 of the chunk as it should be (hex).
    pub hash: String,
    /// `missing`, or what is wrong with the stored bytes.
    pub reason: String,
    /// The points that see this version of the chunk (up to 20).
    pub points: Vec<PointId>,
}

/// On a recovery point: verification found chunks it sees damaged or missing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PointDamage {
    /// RFC 3339 time of the verification that found it.
    pub found_at: String,
    /// Damaged or missing chunks this point sees.
    pub chunks: u64,
    /// Up to 20 of them.
    pub sample: Vec<DamagedChunk>,
}

/// `GET /api/v1/pairs/{pair}/storage`: what the pair's points cost in the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StorageReport {
    pub pair_id: PairId,
    pub computed_unix_ms: u64,
    pub points: u64,
    /// One full copy of the pair's disks.
    pub disk_bytes: u64,
    /// What the points would take as full images: `disk_bytes` × points.
    pub logical_bytes: u64,
    /// Uncompressed bytes of every chunk version the pair stores (zero chunks excluded).
    pub written_bytes: u64,
    /// Uncompressed bytes of the distinct chunks those versions name.
    pub distinct_bytes: u64,
    /// Stored (compressed) bytes of those distinct chunks.
    pub stored_bytes: u64,
    /// Of `stored_bytes`, chunks no other pair refers to: what deleting the pair frees.
    pub unique_stored_bytes: u64,
    /// `distinct_bytes / stored_bytes`.
    pub compression_ratio: f64,
    /// `written_bytes / distinct_bytes`.
    pub dedup_ratio: f64,
    /// `logical_bytes / stored_bytes`: what keeping points as versions saves.
    pub space_saving_ratio: f64,
    /// Oldest first.
    pub per_point: Vec<PointStorage>,
    /// With chunks on an object store: its packs, store-wide.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_store: Option<PackUsageReport>,
}

/// One point's share of the store: the chunk versions it introduced (written after the
/// previous point, up to it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PointStorage {
    pub id: PointId,
    /// RFC 3339.
    pub time: String,
    /// The point as a full image: the size of the pair's disks.
    pub logical_bytes: u64,
    /// Chunk versions the point introduced.
    pub versions: u64,
    /// Their uncompressed bytes (zero chunks excluded).
    pub written_bytes: u64,
    /// Stored bytes of the distinct chunks they name.
    pub stored_bytes: u64,
    /// Of those, chunks no other version of any pair refers to: removing the point (and
    /// every point that shares them) frees at most this.
    pub unique_bytes: u64,
}

/// The storage report's totals, in the pair status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StorageSummary {
    pub computed_unix_ms: u64,
    pub logical_bytes: u64,
    pub stored_bytes: u64,
    pub unique_stored_bytes: u64,
    pub compression_ratio: f64,
    pub dedup_ratio: f64,
    pub space_saving_ratio: f64,
}
