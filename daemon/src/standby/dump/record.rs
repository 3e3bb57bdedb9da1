//! What the standby records of a pair's third-party dump workflow, persisted with the pair
//! record: the step, the markers, each disk's load, the verification and a log of the
//! workflow in plain words.

use super::progress::LoadStats;
use crate::timefmt::{now_ms, rfc3339_ms};
use drpair_types::{DumpEvent, DumpLoadState, DumpMarker, DumpStep, DumpVerification, Epoch, PairId};
use serde::{Deserialize, Serialize};

/// Lines of the workflow's log kept.
pub(super) const EVENTS_KEPT: usize = 50;

/// One disk's load as persisted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskLoadRecord {
    pub state: DumpLoadState,
    pub image: Option<String>,
    pub format: Option<String>,
    pub stats: Option<LoadStats>,
    pub loaded_unix_ms: Option<u64>,
    pub error: Option<String>,
}

impl DiskLoadRecord {
    fn pending() -> Self {
        Self {
            state: DumpLoadState::Pending,
            image: None,
            format: None,
            stats: None,
            loaded_unix_ms: None,
            error: None,
        }
    }
}

/// The workflow as persisted with the pair record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpRecord {
    pub step: DumpStep,
    pub suspended_unix_ms: u64,
    /// The newest committed epoch at `suspend`.
    pub checkpoint_epoch: Epoch,
    pub purged_versions: u64,
    pub marker: Option<DumpMarker>,
    pub resync_marker_unix_ms: Option<u64>,
    pub dump_marker_unix_ms: Option<u64>,
    pub disks: Vec<DiskLoadRecord>,
    /// The committed `dump-marker` point.
    pub point: Option<Epoch>,
    pub verification: Option<DumpVerification>,
    pub events: Vec<DumpEvent>,
}

impl DumpRecord {
    pub fn new(checkpoint_epoch: Epoch, disks: usize) -> Self {
        Self {
            step: DumpStep::Suspended,
            suspended_unix_ms: now_ms(),
            checkpoint_epoch,
            purged_versions: 0,
            marker: None,
            resync_marker_unix_ms: None,
            dump_marker_unix_ms: None,
            disks: vec![DiskLoadRecord::pending(); disks],
            point: None,
            verification: None,
            events: vec![],
        }
    }

    /// Logs `message` (through tracing, for the standby's log) and keeps it in the record.
    pub fn note(&mut self, pair: &PairId, message: String) {
        tracing::info!(pair = %pair, "dump workflow: {message}");
        self.push_event(message);
    }

    /// As [`DumpRecord::note`], logged as a warning.
    pub fn warn(&mut self, pair: &PairId, message: String) {
        tracing::warn!(pair = %pair, "dump workflow: {message}");
        self.push_event(message);
    }

    fn push_event(&mut self, message: String) {
        if self.events.len() >= EVENTS_KEPT {
            self.events.remove(0);
        }
        self.events.push(DumpEvent { time: rfc3339_ms(now_ms()), message });
    }

    /// Every disk is loaded.
    pub fn all_loaded(&self) -> bool {
        self.disks.iter().all(|d| d.state == DumpLoadState::Loaded)
    }

    /// The first disk that is not loaded, if any.
    pub fn first_unloaded(&self) -> Option<usize> {
        self.disks.iter().position(|d| d.state != DumpLoadState::Loaded)
    }

    /// The workflow is past its last step.
    pub fn finished(&self) -> bool {
        self.step == DumpStep::Done
    }
}
