//! The scan tracker: change tracking with no kernel help.
//!
//! It observes nothing between cuts. Instead, every [`collect`](Tracker::collect) answers
//! "scan": the shipping pass after the cut reads every chunk of every disk, hashes it with
//! blake3 ([`hash_chunk`]) and calls [`ChangeMap::observe`] with the cut's epoch, which stamps
//! the chunk when its hash differs from the one recorded when the agent last read it. Chunks
//! stamped so are then shipped like any other change.
//!
//! It works on any file or block device and is also the engine of a differential resync after
//! a tracking gap. Its cuts are **fuzzy**: the disk is live while it is read, so chunks are
//! read at slightly different times; it never claims more.

use crate::changemap::{ChangeMap, ChangeMapError, Hash};
use crate::tracker::{Collected, TrackError, Tracker};
use drpair_types::{Consistency, Epoch};

/// Tracker that asks for a full read-and-compare at every cut. See the [module docs](self).
#[derive(Debug, Default)]
pub struct ScanTracker {
    started: bool,
}

impl ScanTracker {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Tracker for ScanTracker {
    fn name(&self) -> &'static str {
        "scan"
    }

    fn start(&mut self, _maps: &mut [ChangeMap]) -> Result<Option<String>, TrackError> {
        self.started = true;
        Ok(None)
    }

    fn collect(&mut self, _maps: &mut [ChangeMap], _epoch: Epoch) -> Result<Collected, TrackError> {
        if !self.started {
            return Err(TrackError::NotStarted { tracker: self.name() });
        }
        Ok(Collected { scan: true, gap: None, consistency: Consistency::Fuzzy })
    }

    fn stop(&mut self) -> Result<(), TrackError> {
        self.started = false;
        Ok(())
    }

    fn dates_changes(&self) -> bool {
        false
    }
}

/// The hash a change map records for a chunk's content.
pub fn hash_chunk(data: &[u8]) -> Hash {
    *blake3::hash(data).as_bytes()
}

/// One step of the scan pass: hashes `data` (the content of `chunk` just read) and records it
/// with [`ChangeMap::observe`]; true when the chunk changed and is stamped `epoch`.
pub fn observe_chunk(map: &mut ChangeMap, chunk: u64, data: &[u8], epoch: Epoch) -> Result<bool, ChangeMapError> {
    map.observe(chunk, hash_chunk(data), epoch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use drpair_types::{ChunkSize, DiskGeometry, Lineage};

    #[test]
    fn scan_pass_finds_what_changed() {
        let dir = tempfile::tempdir().unwrap();
        let geometry = DiskGeometry::new(4 * 4096, ChunkSize::new(4096).unwrap()).unwrap();
        let mut maps = vec![ChangeMap::create(&dir.path().join("d0"), geometry, Lineage::new_v4(), 1).unwrap()];
        let mut disk = vec![0u8; 4 * 4096];
        let mut tracker = ScanTracker::new();
        assert!(matches!(tracker.collect(&mut maps, 1), Err(TrackError::NotStarted { .. })));
        tracker.start(&mut maps).unwrap();

        let pass = |maps: &mut [ChangeMap], disk: &[u8], tracker: &mut ScanTracker| {
            let epoch = maps[0].begin_cut().unwrap();
            let c = tracker.collect(maps, epoch).unwrap();
            assert_eq!(c, Collected { scan: true, gap: None, consistency: Consistency::Fuzzy });
            let changed: Vec<u64> = (0u64..)
                .zip(disk.chunks(4096))
                .filter(|(i, data)| observe_chunk(&mut maps[0], *i, data, epoch).unwrap())
                .map(|(i, _)| i)
                .collect();
            maps[0].set_acked(epoch).unwrap();
            changed
        };
        // The first pass learns every hash (all were unknown).
        assert_eq!(pass(&mut maps, &disk, &mut tracker), vec![0, 1, 2, 3]);
        assert_eq!(pass(&mut maps, &disk, &mut tracker), Vec::<u64>::new());
        disk[2 * 4096 + 7] = 1;
        assert_eq!(pass(&mut maps, &disk, &mut tracker), vec![2]);
        assert_eq!(maps[0].epoch_of(2), maps[0].last_cut());
        tracker.stop().unwrap();
    }
}
