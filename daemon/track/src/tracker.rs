//! The tracker trait: one interface for every source of "which chunks changed".
//!
//! A tracker feeds the change maps of all disks of a pair (one consistency group). The agent
//! calls [`Tracker::start`] once before the first copy, then [`Tracker::collect`] at every cut
//! (after [`ChangeMap::begin_cut`](crate::ChangeMap::begin_cut) on every map), and acts on the
//! returned [`Collected`]: when it asks for a scan, the pass after the cut reads and hashes
//! every chunk and calls [`ChangeMap::observe`](crate::ChangeMap::observe).

use crate::changemap::{ChangeMap, ChangeMapError};
use crate::scan::ScanTracker;
use drpair_types::{Consistency, Epoch};

/// Names accepted by [`tracker_by_name`].
pub const KNOWN_TRACKERS: &[&str] = &["scan"];

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
    /// Starts tracking; called once before the first copy.
    fn start(&mut self, maps: &mut [ChangeMap]) -> Result<(), TrackError>;
    /// At a cut of epoch `epoch` (all disks of the pair at once): stamps every change observed
    /// since the last collect into `maps` (indexed by disk) with `epoch`.
    fn collect(&mut self, maps: &mut [ChangeMap], epoch: Epoch) -> Result<Collected, TrackError>;
    /// Stops tracking.
    fn stop(&mut self) -> Result<(), TrackError>;
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

/// Builds a tracker by its configured name.
pub fn tracker_by_name(name: &str) -> Result<Box<dyn Tracker>, TrackError> {
    match name {
        "scan" => Ok(Box::new(ScanTracker::new())),
        _ => Err(TrackError::UnknownTracker { name: name.to_string() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trackers_by_name() {
        assert_eq!(tracker_by_name("scan").unwrap().name(), "scan");
        let err = tracker_by_name("magic").err().unwrap();
        assert_eq!(err.to_string(), "unknown tracker 'magic': known trackers are scan");
    }

    #[test]
    fn a_gap_forces_a_scan() {
        let c = Collected { scan: false, gap: None, consistency: Consistency::CrashConsistent };
        assert!(!c.needs_scan());
        assert!(Collected { gap: Some("ring overrun".into()), ..c.clone() }.needs_scan());
        assert!(Collected { scan: true, ..c }.needs_scan());
    }
}
