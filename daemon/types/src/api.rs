//! Request and response types of the standby's HTTP API (`/api/v1`).
//!
//! Field names here are the product's contract (CLI `--output json`, the panel, scripts):
//! add fields freely, rename none.

use crate::ids::{Checkpoint, Epoch, Lineage, PairId, PointId};
use serde::{Deserialize, Serialize};

/// State of a DR pair as seen by the standby.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PairState {
    /// Registered; the first copy has not started.
    Initiating,
    /// The first full copy (baseline) is running. Shown as *Start Replication*.
    InitialSync,
    /// Caught up or shipping increments.
    Replicating,
    /// Comparing chunk hashes with the standby after a tracking gap (differential resync).
    Rescanning,
    /// The agent is not connected.
    Disconnected,
    /// An operator paused shipping; the agent keeps tracking, nothing is lost, lag grows.
    Paused,
    /// Stopped at a stop position or by an operator; `stop_reason` says why.
    Stopped,
    /// Suspended for a third-party dump: the agent ships nothing and its checkpoint stays
    /// put; tracking goes on.
    Suspended,
    /// The standby purged its queue for the pair and waits for the agent's resync marker.
    AwaitingResyncMarker,
    /// The resync marker was processed; waiting for the dump marker.
    AwaitingDumpMarker,
    /// The dump marker was processed: apply is suspended until the dump has been loaded
    /// (`standby load-dump`) and apply resumed (`standby resume-apply`).
    ApplySuspended,
    /// Failed over: a point was materialised on the standby's side and the pair is fenced
    /// (the agent ships nothing, the standby commits nothing) until a failback.
    FailedOver,
    /// A failback is making the two sides equal again.
    FailingBack,
    /// The agent came back with other disks than those registered (added, removed, moved,
    /// resized): nothing is shipped and every point is kept until `restart` (or, for disks
    /// that only grew, `pairs adopt-growth`) takes the new disks.
    ConfigurationChanged,
}

impl PairState {
    /// The words an operator sees.
    pub fn label(self) -> &'static str {
        match self {
            PairState::Initiating => "Initiating",
            PairState::InitialSync => "Start Replication",
            PairState::Replicating => "Replicating",
            PairState::Rescanning => "Rescanning",
            PairState::Disconnected => "Disconnected",
            PairState::Paused => "Paused",
            PairState::Stopped => "Stopped",
            PairState::Suspended => "Suspended",
            PairState::AwaitingResyncMarker => "Waiting for resync marker",
            PairState::AwaitingDumpMarker => "Waiting for dump marker",
            PairState::ApplySuspended => "Apply suspended",
            PairState::FailedOver => "Failed over",
            PairState::FailingBack => "Failing back",
            PairState::ConfigurationChanged => "Configuration changed",
        }
    }

    /// Every state, in the order an operator meets them.
    pub const ALL: [PairState; 14] = [
        PairState::Initiating,
        PairState::InitialSync,
        PairState::Replicating,
        PairState::Rescanning,
        PairState::Disconnected,
        PairState::Paused,
        PairState::Stopped,
        PairState::Suspended,
        PairState::AwaitingResyncMarker,
        PairState::AwaitingDumpMarker,
        PairState::ApplySuspended,
        PairState::FailedOver,
        PairState::FailingBack,
        PairState::ConfigurationChanged,
    ];

    /// A step of the third-party dump workflow (the agent holds).
    pub fn in_dump_workflow(self) -> bool {
        matches!(
            self,
            PairState::Suspended
                | PairState::AwaitingResyncMarker
                | PairState::AwaitingDumpMarker
                | PairState::ApplySuspended
        )
    }
}

/// What a recovery point was cut for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PointKind {
    /// The first complete copy of a lineage.
    Baseline,
    /// Cut by the agent's interval timer.
    Scheduled,
    /// Cut under a filesystem freeze or user hooks.
    AppConsistent,
    /// The dump point of a third-party snapshot.
    DumpMarker,
    /// Cut on request (`drpair points create`).
    Manual,
}

/// How consistent the disks of a point are with each other and in time. Never claim more
/// than was achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Consistency {
    /// Cut of a passively tracked or scanned live disk: chunks read at slightly different times.
    Fuzzy,
    /// Every write before the cut is in, none after (interposed write path).
    CrashConsistent,
    /// Cut while the applications' filesystems were frozen.
    AppConsistent,
}

impl Consistency {
    /// The word used in the API, the CLI and the panel.
    pub fn as_str(self) -> &'static str {
        match self {
            Consistency::Fuzzy => "fuzzy",
            Consistency::CrashConsistent => "crash-consistent",
            Consistency::AppConsistent => "app-consistent",
        }
    }
}

/// Sizes of a recovery point.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PointSizes {
    /// Sum of the sizes of the pair's disks.
    pub logical_bytes: u64,
    /// Chunks that changed in this epoch (all chunks for a baseline).
    pub changed_chunks: u64,
    /// Uncompressed bytes of those chunks.
    pub changed_bytes: u64,
    /// Of those, chunks that were all zero (sent as a flag).
    pub zero_chunks: u64,
    /// Of those, chunks the standby already held (sent as a hash only).
    pub dedup_chunks: u64,
    /// Chunk payload bytes that crossed the link for this point.
    pub shipped_bytes: u64,
    /// Bytes newly written to the chunk store for this point.
    pub stored_bytes: u64,
}

/// A committed recovery point: every disk of the pair as of one cut. Never changes once
/// committed (apart from the pinned/verified/tested marks).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecoveryPoint {
    pub id: PointId,
    pub pair_id: PairId,
    pub epoch: Epoch,
    pub lineage: Lineage,
    /// Time of the cut, RFC 3339 UTC.
    pub time: String,
    /// Time of the cut, milliseconds since the Unix epoch.
    pub time_unix_ms: u64,
    /// Time the standby committed the point, milliseconds since the Unix epoch.
    pub committed_unix_ms: u64,
    pub kind: PointKind,
    pub consistency: Consistency,
    pub pinned: bool,
    pub verified_at: Option<String>,
    pub tested_at: Option<String>,
    pub sizes: PointSizes,
    /// How applications were quiesced for this point, when an app-consistent cut was asked
    /// for (also when the attempt failed: then `achieved` is false and the point is fuzzy).
    #[serde(default)]
    pub quiesce: Option<QuiesceOutcome>,
    /// The epoch's pass read and compared every chunk (baseline, scan tracker, or a
    /// differential resync after a tracking gap) instead of only the tracked changes.
    #[serde(default)]
    pub full_pass: bool,
    /// The last verification found chunks this point sees damaged or missing (cleared by a
    /// later verification that finds it intact).
    #[serde(default)]
    pub damage: Option<crate::maintenance::PointDamage>,
    /// Milliseconds from the cut to the last chunk read for this point: the disks could change
    /// under its reads for this long (none for points committed before it was recorded).
    #[serde(default)]
    pub read_window_ms: Option<u64>,
    /// The read window exceeded the standby's `max_read_window` and the point is not
    /// app-consistent: a database may not start from it. "Latest" choices skip it.
    #[serde(default)]
    pub window_exceeded: bool,
}

/// `GET /api/v1/pairs/{pair}/points/{point}/changes[?since=ID]`: the chunks written after
/// point `since` (default: the point before) up to and including `point`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PointChanges {
    pub pair_id: PairId,
    pub point: PointId,
    /// Changes after this point (0: since the beginning of the lineage).
    pub since: PointId,
    pub disks: Vec<DiskChanges>,
}

/// The changed chunks of one disk, as runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskChanges {
    pub disk: u32,
    pub chunk_size: u64,
    pub changed_chunks: u64,
    /// `[first_chunk, count]`, ascending.
    pub runs: Vec<[u64; 2]>,
}

/// What an attempt at an app-consistent cut achieved.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuiesceOutcome {
    /// Filesystems (mount points) that were to be frozen.
    pub freeze: Vec<String>,
    /// The agent's pre/post hook scripts were to run.
    pub hooks: bool,
    /// Every filesystem was frozen (every hook succeeded) and thawed within the budget, after
    /// the cut's reads: the point is app-consistent.
    pub achieved: bool,
    /// How long the applications stayed frozen, in milliseconds.
    pub frozen_ms: u64,
    /// The budget they were allowed, in milliseconds.
    pub budget_ms: u64,
    /// Why the attempt failed, when it did.
    pub failure: Option<String>,
}

/// One protected disk of a pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskInfo {
    pub index: u32,
    /// Path of the disk on the protected server.
    pub path: String,
    pub size_bytes: u64,
    pub chunk_size: u64,
    pub chunk_count: u64,
}

/// The agent of a pair, as last seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentInfo {
    pub host: String,
    pub address: String,
    pub tracker: String,
    pub version: String,
    pub connected: bool,
    /// RFC 3339 time of the last (dis)connection.
    pub since: String,
    /// The tracker's counters since the agent started (kernel trackers only).
    #[serde(default)]
    pub tracking: Option<TrackingCounters>,
}

/// What a kernel tracker saw since the agent started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackingCounters {
    /// Change events for the pair's disks: writes, discards, write-zeroes.
    pub events: u64,
    pub writes: u64,
    pub discards: u64,
    pub zeroes: u64,
    /// Events the kernel reported lost.
    pub lost_events: u64,
    /// Times a loss was detected (each forced a full compare).
    pub losses: u64,
}

/// The pass the agent is running: reading chunks for one epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PassInfo {
    pub epoch: Epoch,
    /// `initial` (baseline copy), `incremental` (changed chunks only), `scan` (every chunk
    /// read and hashed), `reconcile` (after a tracking gap).
    pub kind: String,
    pub chunks_done: u64,
    pub chunks_total: u64,
    /// Why every chunk is read (a `reconcile` after a tracking gap, or a `scan`).
    #[serde(default)]
    pub reason: Option<String>,
}

/// Progress and counters of a pair. Counters count since the standby started.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PairStats {
    /// Progress of the running pass (initial sync, rescan, catch-up); 100 when idle.
    pub progress_percent: f64,
    /// Estimated seconds until the running pass is done.
    pub eta_seconds: Option<u64>,
    /// Seconds the running pass has been going.
    pub elapsed_seconds: Option<u64>,
    pub pass: Option<PassInfo>,
    /// Recovery point objective right now: seconds since the cut of the newest point
    /// (since registration when there is none).
    pub lag_seconds: f64,
    /// Bytes known to be changed on the source and not yet in a committed point.
    pub backlog_bytes: u64,
    pub backlog_chunks: u64,
    /// Bytes of the epoch being shipped that wait in the agent's spool (read at the cut).
    #[serde(default)]
    pub spool_bytes: u64,
    /// The epoch being shipped did not fit the agent's spool: its point's read window grows.
    #[serde(default)]
    pub spool_full: bool,
    /// Epoch the agent is currently shipping (or last shipped).
    pub current_epoch: Epoch,
    /// Bytes the agent read from its disks.
    pub bytes_read: u64,
    /// Chunk payload bytes received over the link.
    pub bytes_shipped: u64,
    /// Bytes newly written to the chunk store.
    pub bytes_stored: u64,
    /// Chunks received: data, zero flags, dedup hashes.
    pub chunks_received: u64,
    pub chunks_zero: u64,
    pub chunks_dedup: u64,
    /// The compression the agent ships with now ("off", "zstd:3"; with `auto`, where its
    /// adaptation to the link and the CPU has taken it), once it has said.
    #[serde(default)]
    pub compression_level: Option<String>,
    /// Connections that ended in a failure (kept under its old name; see `link` for
    /// counters named for what they count).
    pub chunks_errored: u64,
    pub points: u64,
    /// Chunks the running pass covers (0 when idle).
    pub chunks_total: u64,
    /// Chunks of the running pass shipped so far.
    pub chunks_shipped: u64,
    /// Chunks known changed and waiting to be shipped (same as `backlog_chunks`).
    pub chunks_queued: u64,
    /// Bytes of link frames received from the agent (payload, hashes, framing).
    pub bytes_on_wire: u64,
    /// Uncompressed bytes of data chunks divided by their bytes on the link (1.0 = none).
    pub compression_ratio: f64,
    /// Bytes per second the agent read recently (about the last 10 seconds).
    pub throughput_bytes_per_second: f64,
}

/// `GET /api/v1/pairs/{pair}`: everything about a pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairStatus {
    pub pair_id: PairId,
    pub state: PairState,
    /// The state in an operator's words (`Start Replication`, `Replicating`, …).
    pub state_label: String,
    /// One sentence on what the state means now.
    pub state_explanation: String,
    /// False while no complete recovery point exists (initial sync).
    pub ready_for_failover: bool,
    pub lineage: Option<Lineage>,
    /// `LINEAGE:EPOCH` of the newest committed epoch: where replication resumes.
    pub recovery_checkpoint: Option<String>,
    pub checkpoint: Option<Checkpoint>,
    pub last_point: Option<RecoveryPoint>,
    pub agent: Option<AgentInfo>,
    pub disks: Vec<DiskInfo>,
    pub stats: PairStats,
    /// Most recent failures (newest last), e.g. refused connections or chunks.
    pub failure_messages: Vec<String>,
    /// Why the pair stopped or does not replicate: a [`StopReason`] while *Stopped*,
    /// `RECONFIGURATION_RESTART` while *Configuration changed*, `RECOVERABLE_ERROR` or
    /// `FATAL_ERROR` while the agent is away.
    pub stop_reason: Option<String>,
    /// The name an earlier release gave `stop_reason` (`STOPPED_BY_USER`, `STOPPED_AT_TIME`).
    #[serde(default)]
    pub stop_reason_alias: Option<String>,
    /// DMS's dates and times of the pair (`fresh_start_date`, `start_date`, …).
    #[serde(flatten)]
    pub dates: crate::dates::PairDatesView,
    /// When the pair will stop by itself, if a stop position is set.
    pub stop_at: Option<StopAt>,
    /// A restart (new baseline) in progress.
    pub restart: Option<RestartInfo>,
    /// The oldest epoch the agent's change history reaches back to (replay from a point at
    /// or after it is possible); None when unknown.
    pub change_history_from: Option<Epoch>,
    /// RFC 3339 time the pair was registered.
    pub registered_at: String,
    /// The third-party dump workflow in progress, or the last one completed.
    #[serde(default)]
    pub dump: Option<crate::dump::DumpStatus>,
    /// The running or last online verify against the source (`verify-source`).
    #[serde(default)]
    pub source_verify: Option<crate::source_verify::SourceVerifyStatus>,
    /// The pair's retention policy and its last prune.
    #[serde(default)]
    pub retention: Option<crate::maintenance::RetentionView>,
    /// The running or last verification of stored chunks.
    #[serde(default)]
    pub verify: Option<crate::maintenance::VerifyStatus>,
    /// The storage report's totals, as last computed.
    #[serde(default)]
    pub storage: Option<crate::maintenance::StorageSummary>,
    /// The failover materialising now, or the last one (while the pair is failed over).
    #[serde(default)]
    pub failover: Option<crate::failover::FailoverStatus>,
    /// The failback running now, or the last one.
    #[serde(default)]
    pub failback: Option<crate::failover::FailbackStatus>,
    /// The agent protecting this pair's recovered disks while it is failed over
    /// (`protect-recovered`): the new pair, its state, its agent.
    #[serde(default)]
    pub protected_by: Option<crate::protect::ProtectionStatus>,
    /// This pair protects the recovered disks of another: the original pair and its failover
    /// point.
    #[serde(default)]
    pub recovered_from: Option<crate::protect::RecoveredFrom>,
    /// How the pair is doing, at a glance (the panel's badge).
    pub health: crate::panel::Health,
    /// The operator actions the state allows now (names from [`crate::panel::ACTIONS`]);
    /// the API refuses the others with 409.
    pub allowed_actions: Vec<String>,
    /// The standby's TLS fingerprint (`sha256:…`), which its agents pin; `None` when the link
    /// runs in plaintext.
    #[serde(default)]
    pub standby_fingerprint: Option<String>,
    /// The link runs without TLS (`insecure_plaintext`): a warning to show.
    #[serde(default)]
    pub insecure_plaintext: bool,
    /// The agent offers other disks than those registered (state *Configuration changed*).
    #[serde(default)]
    pub configuration_change: Option<crate::reconfig::ConfigurationChange>,
    /// The link: bytes on the wire, liveness, round trip, the bandwidth limit, faults.
    #[serde(default)]
    pub link: crate::link::LinkStatus,
    /// Where the pair stands against its RPO target (None: no target set).
    #[serde(default)]
    pub rpo_state: Option<crate::rpo::RpoState>,
    /// When the pair last committed a point, passed a verify or a drill, cut an app-consistent point.
    #[serde(default)]
    pub last_successes: crate::successes::LastSuccesses,
}

/// `GET /api/v1`: who this standby is (the panel's footer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StandbyInfo {
    pub version: String,
    /// The fingerprint agents and clients pin (`sha256:…`); `None` in plaintext.
    pub fingerprint: Option<String>,
    /// The link runs without TLS.
    pub insecure_plaintext: bool,
    /// Who is asking (`token NAME`), and what their role allows.
    #[serde(default)]
    pub identity: Option<String>,
    #[serde(default)]
    pub role: Option<Role>,
    /// The standby's certificates and its agents' (not tokens): when each ends.
    #[serde(default)]
    pub certificates: Vec<crate::expiry::Expiry>,
}

/// A stop position: the pair stops after the first point at or past it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopAt {
    pub point: Option<PointId>,
    /// RFC 3339 UTC.
    pub time: Option<String>,
}

/// A restart in progress: the new baseline is being copied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestartInfo {
    /// RFC 3339 time of the request.
    pub requested_at: String,
    pub full_copy: bool,
    pub keep_points_until_synced: bool,
    /// Points of the old lineage kept (read-only) until the new baseline completes.
    pub kept_points: u64,
}

/// `GET /api/v1/pairs`: one row per pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairSummary {
    pub pair_id: PairId,
    pub state: PairState,
    pub state_label: String,
    pub ready_for_failover: bool,
    pub source_host: Option<String>,
    pub source_address: Option<String>,
    pub connected: bool,
    pub lag_seconds: f64,
    pub progress_percent: f64,
    pub last_point: Option<RecoveryPoint>,
    pub disks: u32,
    pub health: crate::panel::Health,
    #[serde(default)]
    pub rpo_state: Option<crate::rpo::RpoState>,
}

/// `POST /api/v1/pairs/{pair}/points`: cut now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreatePointRequest {
    /// Answer only once the cut is a committed recovery point.
    #[serde(default)]
    pub wait: bool,
    /// With `wait`: give up after this many seconds (default 600).
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
    /// Freeze these filesystems (absolute mount points on the protected server) around the
    /// cut, for an app-consistent point.
    #[serde(default)]
    pub freeze: Vec<String>,
    /// Run the agent's configured pre/post hook scripts around the cut.
    #[serde(default)]
    pub hooks: bool,
    /// Longest time the applications may stay frozen, in milliseconds (100..=60000; default:
    /// the agent's `thaw_budget`). Only with `freeze` or `hooks`.
    #[serde(default)]
    pub thaw_budget_ms: Option<u64>,
}

/// `POST /api/v1/pairs/{pair}/restart`: wipe the pair's recovery points and copy everything
/// again in a new lineage.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestartRequest {
    /// Must be the pair id: restarting deletes every recovery point of the pair.
    #[serde(default)]
    pub confirm: String,
    /// Ship every chunk's bytes, even those the standby already holds (default: those cross
    /// the link as hashes, verified against the stored chunk).
    #[serde(default)]
    pub full_copy: bool,
    /// Keep the old points (read-only, old lineage) until the new baseline is complete.
    #[serde(default)]
    pub keep_points_until_synced: bool,
}

/// How `start` starts a pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartType {
    /// First run of a pair that never ran.
    Start,
    /// Continue from the recovery checkpoint (or replay from an older point).
    Resume,
    /// Same as restart: new lineage, copy everything.
    Reload,
}

/// A recovery point given by id (`17`), as text (`"17"`), or as a recovery checkpoint
/// (`"LINEAGE:17"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PointSpec {
    Id(PointId),
    Text(String),
}

/// `POST /api/v1/pairs/{pair}/start`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {
    #[serde(rename = "type")]
    pub start_type: StartType,
    /// Replay from this point: points after it are dropped, changes since it shipped again.
    #[serde(default)]
    pub from_point: Option<PointSpec>,
    /// Replay from the newest point cut at or before this time (RFC 3339 UTC).
    #[serde(default)]
    pub from_time: Option<String>,
    /// Stop after the first point at or past this point id.
    #[serde(default)]
    pub stop_at_point: Option<PointId>,
    /// Stop after the first point cut at or past this time (RFC 3339 UTC): the time of the
    /// agent's cut (`STOPPED_AT_COMMIT_TIME`).
    #[serde(default)]
    pub stop_at_time: Option<String>,
    /// Stop when the standby's clock reaches this time (RFC 3339 UTC), whatever is being
    /// shipped (`STOPPED_AT_SERVER_TIME`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_at_server_time: Option<String>,
    /// With a start or reload: stop once the baseline is committed; the changes made
    /// meanwhile wait in the agent's change map (`STOPPED_AFTER_FULL_LOAD`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stop_after_full_load: bool,
    /// With a start or reload: copy the baseline only, then stop (`FULL_LOAD_ONLY_FINISHED`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub full_load_only: bool,
    /// The pair id, required when the start deletes points (reload, replay).
    #[serde(default)]
    pub confirm: Option<String>,
    /// With `reload`: as in [`RestartRequest`].
    #[serde(default)]
    pub full_copy: bool,
    /// With `reload`: as in [`RestartRequest`].
    #[serde(default)]
    pub keep_points_until_synced: bool,
}

/// Answer to restart, start, pause, resume and stop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionResponse {
    /// What was done, in one sentence.
    pub message: String,
    /// Recovery points deleted by this action.
    pub points_deleted: u64,
    pub status: PairStatus,
}

/// Answer to [`CreatePointRequest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreatePointResponse {
    /// The cut request's id; the point that commits it carries the same request.
    pub request_id: u64,
    /// The committed point (only with `wait`).
    pub point: Option<RecoveryPoint>,
}

/// Stable error codes of the API; each maps to one HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ErrorCode {
    /// 400
    InvalidParameter,
    /// 401 without credentials, 403 with wrong ones.
    AccessDenied,
    /// 404
    PairNotFound,
    /// 404
    PointNotFound,
    /// 404
    NotFound,
    /// 409: the pair's state does not allow this now.
    InvalidPairState,
    /// 403: the caller's role does not allow this (the message names the role it needs).
    Forbidden,
    /// 409: the standby is not set up for this (e.g. enrollment on a plaintext link).
    NotConfigured,
    /// 409: another run of the same operation holds what it needs (one store benchmark at a
    /// time); it may succeed once that run ends.
    Busy,
    /// 409: the data filesystem has too little free space for this (the message names how
    /// much is free and how much is needed).
    InsufficientSpace,
    /// 504
    Timeout,
    /// 500
    Internal,
}

impl ErrorCode {
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::InvalidParameter => 400,
            ErrorCode::AccessDenied => 401,
            ErrorCode::PairNotFound | ErrorCode::PointNotFound | ErrorCode::NotFound => 404,
            ErrorCode::InvalidPairState | ErrorCode::NotConfigured | ErrorCode::Busy | ErrorCode::InsufficientSpace => {
                409
            }
            ErrorCode::Forbidden => 403,
            ErrorCode::Timeout => 504,
            ErrorCode::Internal => 500,
        }
    }
}

/// Body of every API error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// For `InvalidParameter`: the parameter at fault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameter: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_on_the_wire() {
        assert_eq!(serde_json::to_string(&PairState::InitialSync).unwrap(), "\"initial_sync\"");
        assert_eq!(serde_json::to_string(&PointKind::AppConsistent).unwrap(), "\"app-consistent\"");
        assert_eq!(serde_json::to_string(&PointKind::DumpMarker).unwrap(), "\"dump-marker\"");
        assert_eq!(serde_json::to_string(&Consistency::CrashConsistent).unwrap(), "\"crash-consistent\"");
        assert_eq!(PairState::InitialSync.label(), "Start Replication");
    }

    #[test]
    fn create_point_rejects_unknown_fields() {
        assert!(serde_json::from_str::<CreatePointRequest>(r#"{"wait":true,"x":1}"#).is_err());
        let r: CreatePointRequest = serde_json::from_str("{}").unwrap();
        assert!(!r.wait);
    }
}

/// One line of the audit log (`GET /api/v1/audit`, `drpair audit`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub time_unix_ms: u64,
    /// RFC 3339.
    pub time: String,
    /// Who: `token NAME`, `anonymous`, `pair PAIR (certificate sha256:…)`, `link ADDRESS`.
    pub identity: String,
    /// The peer's address.
    pub source: String,
    /// What: `restart`, `failover`, `enroll`, `revoke`, `authenticate`, …
    pub action: String,
    pub pair: Option<String>,
    /// `ok` or `refused`.
    pub result: String,
    /// Why it was refused.
    pub message: Option<String>,
}

/// `POST /api/v1/pairs/{pair}/enroll`: a single-use secret for one agent of the pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrollment {
    pub pair_id: String,
    pub secret: String,
    /// RFC 3339: the secret is refused after this.
    pub expires_at: String,
    /// The standby's fingerprint, which the agent pins.
    pub fingerprint: String,
    /// The standby's link port (the host is the one the operator reaches it by).
    pub link_port: u16,
}

/// `POST /api/v1/pairs/{pair}/revoke`: what was revoked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    pub pair_id: String,
    pub revoked_certificates: usize,
    /// The agent's connection was ended.
    pub connection_ended: bool,
}

/// What an API token may do. Each role can do what the ones before it can, but `metrics`,
/// which reads `/metrics` only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// `/metrics` only (a scraper's token).
    Metrics,
    /// Status, points, metrics, the panel.
    Viewer,
    /// Pause, resume, stop, start without replay, points (create, pin, export), drills, verify.
    Operator,
    /// Everything: restart, reload, replay, failover, failback, the dump workflow, retention,
    /// prune, enrollment and revocation, tokens, the audit log.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Metrics => "metrics",
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        [Role::Metrics, Role::Viewer, Role::Operator, Role::Admin].into_iter().find(|r| r.as_str() == s)
    }
}

/// `GET /api/v1/tokens`: one API token (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    pub name: String,
    pub role: Role,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339; `None`: never.
    pub expires_at: Option<String>,
}

/// `POST /api/v1/tokens`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    pub name: String,
    pub role: Role,
    /// A duration (`30d`); absent: never expires.
    #[serde(default)]
    pub expires: Option<String>,
}

/// The answer to `POST /api/v1/tokens`: the secret, shown this once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedToken {
    pub name: String,
    pub role: Role,
    pub secret: String,
    pub expires_at: Option<String>,
}
