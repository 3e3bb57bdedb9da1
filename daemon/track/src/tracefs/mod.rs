//! The tracefs tracker (stub: being written).

use crate::changemap::ChangeMap;
use crate::tracker::{Collected, TrackError, Tracker, TrackerSetup};
use drpair_types::Epoch;
use std::path::PathBuf;
use std::time::Duration;

/// How a [`TracefsTracker`] is set up.
#[derive(Debug, Clone)]
pub struct TracefsConfig {
    /// Instance name under `<tracefs_root>/instances/`.
    pub instance: String,
    /// The pair's disks in map order (block devices or partitions).
    pub disks: Vec<PathBuf>,
    /// Per-CPU ring buffer size, KiB.
    pub buffer_kib: u64,
    /// Where the tracker records what a clean stop left behind.
    pub state_file: PathBuf,
    /// Mount point of tracefs (default `/sys/kernel/tracing`).
    pub tracefs_root: PathBuf,
    /// How often the background drainer empties the per-CPU buffers.
    pub poll_interval: Duration,
}

impl TracefsConfig {
    /// The agent's setup: instance `drpair-<pair>`, state in `<state_dir>/tracefs.state`.
    pub fn for_pair(setup: &TrackerSetup) -> Self {
        Self {
            instance: format!("drpair-{}", setup.pair),
            disks: setup.disks.clone(),
            buffer_kib: setup.tracefs_buffer_kib,
            state_file: setup.state_dir.join("tracefs.state"),
            tracefs_root: PathBuf::from("/sys/kernel/tracing"),
            poll_interval: Duration::from_millis(20),
        }
    }
}

/// Tracker reading `block:block_rq_complete` from a private tracefs instance.
#[derive(Debug)]
pub struct TracefsTracker {}

impl TracefsTracker {
    pub fn new(_cfg: TracefsConfig) -> Result<Self, TrackError> {
        Err(TrackError::Unavailable { tracker: "tracefs", reason: "not built yet".into() })
    }
}

impl Tracker for TracefsTracker {
    fn name(&self) -> &'static str {
        "tracefs"
    }
    fn start(&mut self, _maps: &mut [ChangeMap]) -> Result<Option<String>, TrackError> {
        unimplemented!()
    }
    fn collect(&mut self, _maps: &mut [ChangeMap], _epoch: Epoch) -> Result<Collected, TrackError> {
        unimplemented!()
    }
    fn stop(&mut self) -> Result<(), TrackError> {
        unimplemented!()
    }
}
