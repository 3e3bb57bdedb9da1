//! The tracker trait: one interface for every source of "which chunks changed".
//!
//! A tracker feeds the change maps of all disks of a pair (one consistency group). The agent
//! calls [`Tracker::start`] once before the first copy, then [`Tracker::collect`] at every cut
//! (after [`ChangeMap::begin_cut`](crate::ChangeMap::begin_cut) on every map), and acts on the
//! returned [`Collected`]: when it asks for a scan, the pass after the cut reads and hashes
//! every chunk and calls [`ChangeMap::observe`](crate::ChangeMap::observe).

use crate::changemap::{ChangeMap, ChangeMapError};
use crate::scan::ScanTracker;
use crate::tracefs::{TracefsConfig, TracefsTracker};
use drpair_types::{Consistency, Epoch};
use std::path::PathBuf;

/// Names accepted by [`tracker_by_name`].
pub const KNOWN_TRACKERS: &[&str] = &["auto", "tracefs", "scan"];

/// What building a tracker needs to know about the pair.
#[derive(Debug, Clone)]
pub struct TrackerSetup {
    /// The pair's disks, in map order.
    pub disks: Vec<PathBuf>,
    /// The agent's state dir (trackers keep their own small state there).
    pub state_dir: PathBuf,
    /// Name of the pair, used to name kernel resources (the tracefs instance).
    pub pair: String,
    /// Per-CPU ring buffer of the tracefs instance, in KiB.
    pub tracefs_buffer_kib: u64,
}

/// Counters a tracker keeps since it started (shown as is in status and metrics).
pub type TrackerStats = drpair_types::TrackingCounters;

/// What the pass after a cut must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collected {
    /// Read and hash every chunk, and compare with the recorded hashes.
    pub scan: bool,
    /// Tracking had a gap since the last cut (why); forces a scan.
    pub gap: Option<String>,
    /// What the cut achieved; never more than that.
    pub consistency: Consistency,
}

impl Collected {
    /// Whether the pass must read and hash every chunk (a scan was asked for, or a gap forces one).
    pub fn needs_scan(&self) -> bool {
        self.scan || self.gap.is_some()
    }
}

/// A source of changes. See the [module docs](self).
pub trait Tracker: Send {
    /// Short name: "scan", "tracefs", "fake".
    fn name(&self) -> &'static str;
    /// Starts tracking; called once before the first copy. Returns why changes made before
    /// this start may be unknown to the maps (a gap since the last run: tracking was not
    /// running, or its record since the last clean stop cannot be trusted); `None` when every
    /// change since the last clean stop is accounted for.
    fn start(&mut self, maps: &mut [ChangeMap]) -> Result<Option<String>, TrackError>;
    /// At a cut of epoch `epoch` (all disks of the pair at once): stamps every change observed
    /// since the last collect into `maps` (indexed by disk) with `epoch`.
    fn collect(&mut self, maps: &mut [ChangeMap], epoch: Epoch) -> Result<Collected, TrackError>;
    /// Stops tracking. A tracker that can keep recording while the agent is down (tracefs)
    /// does so after a clean stop, and its next `start` accounts for what happened meanwhile.
    fn stop(&mut self) -> Result<(), TrackError>;
    /// Whether the maps know *when* a chunk changed (the epoch it is stamped with is the
    /// first cut after the write). A scan tracker only learns of a change when it reads the
    /// chunk again, so a change made before some epoch and one made after it look alike.
    fn dates_changes(&self) -> bool {
        true
    }
    /// The chunks written since the last collect, per disk as `(first, count)` runs, without
    /// collecting them (they are stamped at the next cut as usual); `None` when this tracker
    /// cannot tell (scan).
    fn written_since_collect(&mut self) -> Option<Vec<Vec<(u64, u64)>>> {
        None
    }
    /// Counters since start.
    fn stats(&self) -> TrackerStats {
        TrackerStats::default()
    }
}

/// Why a tracker failed.
#[derive(Debug, thiserror::Error)]
pub enum TrackError {
    /// the change map refused an update
    #[error(transparent)]
    ChangeMap(#[from] ChangeMapError),
    /// no tracker of that name
    #[error("unknown tracker '{name}': known trackers are {}", KNOWN_TRACKERS.join(", "))]
    UnknownTracker { name: String },
    /// `collect` or `stop` before `start`
    #[error("tracker {tracker}: not started")]
    NotStarted { tracker: &'static str },
    /// a change for a disk the pair does not have
    #[error("tracker {tracker}: change on disk {disk}, but the pair has {disks} disks")]
    NoSuchDisk { tracker: &'static str, disk: usize, disks: usize },
    /// the tracker cannot work here (kernel support missing, device type, permissions)
    #[error("tracker {tracker} is not available: {reason}")]
    Unavailable { tracker: &'static str, reason: String },
    /// reading the tracker's source failed
    #[error("tracker {tracker}: {what}: {source}")]
    Io { tracker: &'static str, what: String, source: std::io::Error },
}

/// Builds a tracker by its configured name. `auto` picks tracefs when every disk is a block
/// device and tracefs can serve them, else scan (saying why in the log).
pub fn tracker_by_name(name: &str, setup: &TrackerSetup) -> Result<Box<dyn Tracker>, TrackError> {
    match name {
        "scan" => Ok(Box::new(ScanTracker::new())),
        "tracefs" => Ok(Box::new(TracefsTracker::new(TracefsConfig::for_pair(setup))?)),
        "auto" => match TracefsTracker::new(TracefsConfig::for_pair(setup)) {
            Ok(t) => Ok(Box::new(t)),
            Err(e) => {
                tracing::warn!("tracker auto: {e}; using the scan tracker (reads every chunk at each cut)");
                Ok(Box::new(ScanTracker::new()))
            }
        },
        _ => Err(TrackError::UnknownTracker { name: name.to_string() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trackers_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("disk.img");
        std::fs::write(&file, [0u8; 4096]).unwrap();
        let setup = TrackerSetup {
            disks: vec![file],
            state_dir: dir.path().to_path_buf(),
            pair: "p".into(),
            tracefs_buffer_kib: 1024,
        };
        assert_eq!(tracker_by_name("scan", &setup).unwrap().name(), "scan");
        // A regular file cannot be traced in the block layer: auto falls back, tracefs refuses.
        assert_eq!(tracker_by_name("auto", &setup).unwrap().name(), "scan");
        let err = tracker_by_name("tracefs", &setup).err().unwrap();
        assert!(matches!(err, TrackError::Unavailable { tracker: "tracefs", .. }), "{err}");
        let err = tracker_by_name("magic", &setup).err().unwrap();
        assert_eq!(err.to_string(), "unknown tracker 'magic': known trackers are auto, tracefs, scan");
    }

    #[test]
    fn a_gap_forces_a_scan() {
        let c = Collected { scan: false, gap: None, consistency: Consistency::CrashConsistent };
        assert!(!c.needs_scan());
        assert!(Collected { gap: Some("ring overrun".into()), ..c.clone() }.needs_scan());
        assert!(Collected { scan: true, ..c }.needs_scan());
    }
}
