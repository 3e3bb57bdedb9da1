//! An in-process fake tracker for tests of everything above the change map.
//!
//! Test code holds a [`FakeHandle`] and pushes the writes it makes to its fake disks; at each
//! cut, [`FakeTracker::collect`](Tracker::collect) stamps them into the maps with the cut's
//! epoch. [`FakeHandle::gap`] simulates lost events (as on a ring overrun): the writes pending
//! since the last collect are dropped and the next collect reports the gap, which forces a scan.

use crate::changemap::ChangeMap;
use crate::tracker::{Collected, TrackError, Tracker};
use drpair_types::{Consistency, Epoch};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// A write made by a test: (disk index, byte offset, length).
pub type FakeWrite = (usize, u64, u64);

/// The test's side of a [`FakeTracker`]; clones share the same queue.
#[derive(Debug, Clone, Default)]
pub struct FakeHandle {
    /// Writes not collected yet.
    pub writes: Arc<Mutex<Vec<FakeWrite>>>,
    gap: Arc<Mutex<Option<String>>>,
}

impl FakeHandle {
    /// Records a write of `len` bytes at `offset` of disk `disk`.
    pub fn write(&self, disk: usize, offset: u64, len: u64) {
        lock(&self.writes).push((disk, offset, len));
    }

    /// Simulates lost events: pending writes are dropped, the next collect reports `reason`.
    pub fn gap(&self, reason: &str) {
        lock(&self.writes).clear();
        *lock(&self.gap) = Some(reason.to_string());
    }

    /// Number of writes not collected yet.
    pub fn pending(&self) -> usize {
        lock(&self.writes).len()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A test that panicked while holding the lock left plain data behind: keep using it.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The fake tracker. It sees every write, so its cuts are crash-consistent unless told
/// otherwise ([`with_consistency`](Self::with_consistency)) or a gap happened (then fuzzy).
#[derive(Debug)]
pub struct FakeTracker {
    handle: FakeHandle,
    consistency: Consistency,
    started: bool,
}

impl Default for FakeTracker {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeTracker {
    pub fn new() -> Self {
        Self::with_consistency(Consistency::CrashConsistent)
    }

    /// A fake whose gap-free cuts claim `consistency`.
    pub fn with_consistency(consistency: Consistency) -> Self {
        Self { handle: FakeHandle::default(), consistency, started: false }
    }

    /// The handle test code pushes writes into.
    pub fn handle(&self) -> FakeHandle {
        self.handle.clone()
    }
}

impl Tracker for FakeTracker {
    fn name(&self) -> &'static str {
        "fake"
    }

    fn start(&mut self, _maps: &mut [ChangeMap]) -> Result<Option<String>, TrackError> {
        self.started = true;
        Ok(None)
    }

    /// Stamps every pending write; a bad write (unknown disk, out of range) does not stop the
    /// others from being stamped, and the first such error is returned.
    fn collect(&mut self, maps: &mut [ChangeMap], epoch: Epoch) -> Result<Collected, TrackError> {
        if !self.started {
            return Err(TrackError::NotStarted { tracker: self.name() });
        }
        let gap = lock(&self.handle.gap).take();
        let writes = std::mem::take(&mut *lock(&self.handle.writes));
        let disks = maps.len();
        let mut first_error = None;
        for (disk, offset, len) in writes {
            let result = match maps.get_mut(disk) {
                Some(map) => map.mark_bytes(offset, len, epoch).map_err(TrackError::from),
                None => Err(TrackError::NoSuchDisk { tracker: "fake", disk, disks }),
            };
            if let Err(e) = result {
                first_error.get_or_insert(e);
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        let consistency = if gap.is_some() { Consistency::Fuzzy } else { self.consistency };
        Ok(Collected { scan: gap.is_some(), gap, consistency })
    }

    fn stop(&mut self) -> Result<(), TrackError> {
        if !self.started {
            return Err(TrackError::NotStarted { tracker: self.name() });
        }
        self.started = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use drpair_types::{ChunkSize, DiskGeometry, Lineage};

    fn maps(dir: &std::path::Path, n: usize) -> Vec<ChangeMap> {
        let g = DiskGeometry::new(8 * 4096, ChunkSize::new(4096).unwrap()).unwrap();
        (0..n)
            .map(|i| ChangeMap::create(&dir.join(format!("disk-{i}.chmap")), g, Lineage::new_v4(), 0).unwrap())
            .collect()
    }

    #[test]
    fn collect_stamps_pushed_writes_with_the_cut_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let mut maps = maps(dir.path(), 2);
        let mut tracker = FakeTracker::new();
        let h = tracker.handle();
        assert!(matches!(tracker.collect(&mut maps, 1), Err(TrackError::NotStarted { .. })));
        tracker.start(&mut maps).unwrap();
        h.write(0, 4096, 1);
        h.write(1, 4095, 2); // straddles chunks 0 and 1
        assert_eq!(h.pending(), 2);
        let c = tracker.collect(&mut maps, 1).unwrap();
        assert_eq!(c, Collected { scan: false, gap: None, consistency: Consistency::CrashConsistent });
        assert_eq!(h.pending(), 0);
        assert_eq!(maps[0].changed_since(0).collect::<Vec<_>>(), vec![1]);
        assert_eq!(maps[1].changed_since(0).collect::<Vec<_>>(), vec![0, 1]);
        assert_eq!(maps[1].epoch_of(1), 1);
        // Nothing new: nothing stamped.
        tracker.collect(&mut maps, 2).unwrap();
        assert_eq!(maps[0].changed_since(1).count(), 0);
        tracker.stop().unwrap();
    }

    #[test]
    fn a_gap_drops_pending_writes_and_asks_for_a_scan() {
        let dir = tempfile::tempdir().unwrap();
        let mut maps = maps(dir.path(), 1);
        let mut tracker = FakeTracker::new();
        let h = tracker.handle();
        tracker.start(&mut maps).unwrap();
        h.write(0, 0, 10);
        h.gap("ring overrun");
        let c = tracker.collect(&mut maps, 1).unwrap();
        assert_eq!(c.gap.as_deref(), Some("ring overrun"));
        assert!(c.scan && c.needs_scan());
        assert_eq!(c.consistency, Consistency::Fuzzy);
        assert_eq!(maps[0].dirty_count(), 0, "the lost write is for the scan to find");
        assert_eq!(tracker.collect(&mut maps, 2).unwrap().gap, None);
    }

    #[test]
    fn bad_writes_are_errors_and_do_not_hide_good_ones() {
        let dir = tempfile::tempdir().unwrap();
        let mut maps = maps(dir.path(), 1);
        let mut tracker = FakeTracker::new();
        let h = tracker.handle();
        tracker.start(&mut maps).unwrap();
        h.write(3, 0, 1);
        h.write(0, 9 * 4096, 1);
        h.write(0, 0, 1);
        let err = tracker.collect(&mut maps, 1).unwrap_err();
        assert_eq!(err.to_string(), "tracker fake: change on disk 3, but the pair has 1 disks");
        assert_eq!(maps[0].changed_since(0).collect::<Vec<_>>(), vec![0]);
    }
}
