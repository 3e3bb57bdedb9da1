//! The drpair vocabulary, shared by the daemons, the CLI and the web panel.
//!
//! Only plain data lives here (serde, no I/O): identifiers, chunk geometry, and the request
//! and response types of the public HTTP API (`/api/v1`). Everything else depends on this
//! crate; this crate depends on nothing of ours.

pub mod api;
pub mod bandwidth;
pub mod bench;
pub mod dates;
mod deletion;
pub mod drill;
pub mod drill_boot;
pub mod dump;
mod error_class;
pub mod expiry;
pub mod failover;
pub mod geometry;
pub mod ids;
pub mod link;
pub mod maintenance;
pub mod notify;
pub mod panel;
mod paths;
pub mod protect;
pub mod reconfig;
mod recoverable;
pub mod rpo;
mod source_verify;
mod stop;
pub mod successes;
pub mod task;
pub mod time;

pub use api::*;
pub use bandwidth::{PairSettings, Schedule, SettingsUpdate, StandbySettings};
pub use bench::{
    BENCH_SINK_MAX_BYTES, BENCH_STORE_CHUNK_SIZE, BENCH_STORE_DEFAULT_BYTES, BENCH_STORE_MAX_BYTES,
    BENCH_STORE_MIN_BYTES, BenchSinkResult, BenchStoreRequest, BenchStoreResult,
};
pub use deletion::PairDeletion;
pub use drill::*;
pub use drill_boot::*;
pub use dump::*;
pub use error_class::ErrorClass;
pub use expiry::{EXPIRY_CRITICAL_DAYS, EXPIRY_WARNING_DAYS, Expiry, ExpiryLevel, ExpiryRole};
pub use failover::*;
pub use geometry::{ChunkSize, DiskGeometry, GeometryError};
pub use ids::{Checkpoint, Epoch, IdError, Lineage, PairId, PointId};
pub use link::LinkStatus;
pub use maintenance::*;
pub use panel::{
    ACTIONS, DownloadLink, EVENT_POINTS, Health, HealthLevel, PairEvent, PairGone, PairTrend, TrendSample,
};
pub use paths::{DEFAULT_STANDBY_DATA_DIR, standby_store_dir};
pub use protect::{
    ProtectRecoveredRequest, ProtectedSource, ProtectionState, ProtectionStatus, RecoveredFrom,
    UnprotectRecoveredRequest,
};
pub use reconfig::{ConfigurationChange, DiskChange, DiskChangeKind, DiskShape, compare_disks};
pub use recoverable::{Chosen, latest_recoverable, trusted};
pub use rpo::{RpoLevel, RpoState, RpoTargetSource};
pub use source_verify::*;
pub use stop::{FATAL_ERROR, RECONFIGURATION_RESTART, RECOVERABLE_ERROR, StopReason};
pub use successes::{LastSuccess, LastSuccesses};
pub use task::{TaskId, TaskInfo, TaskKind, TaskList, TaskLog, TaskLogLine, TaskState};
pub use time::parse_time_ms;

/// Default port the standby listens on for agents (the replication link).
pub const DEFAULT_LINK_PORT: u16 = 7700;
/// Default port of the standby's HTTP API, panel and metrics.
pub const DEFAULT_API_PORT: u16 = 7701;
