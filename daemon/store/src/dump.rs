//! Version entries of a third-party dump loaded as a pair's base (seeding).
//!
//! A dump is loaded at a dump epoch *D* newer than the pair's newest committed point. Its
//! entries are written at exactly *D* but, unlike an agent epoch's, are NOT listed in
//! `pending`: the standby discards abandoned agent epochs (at start-up, when an agent
//! disconnects) and a loaded dump must survive that. The daemon commits a point at *D* (or a
//! later one) once the load is complete.
//!
//! Durability: chunks are loaded with [`Store::put_chunk_bulk`] (no WAL). Because the dump's
//! entries are not discarded after a crash, an entry must never become durable before the
//! chunk it names: [`Store::write_dump_versions`] first flushes the chunks written without
//! the WAL, then writes the entries. Callers batch many chunks per call to keep those flushes
//! few.

use crate::keys::VersionKey;
use crate::scan::Scope;
use crate::{ChunkVersion, Store, StoreError};
use rocksdb::WriteBatch;

/// Entries deleted per write batch by [`Store::discard_dump_versions`].
const DISCARD_BATCH: usize = 4096;

impl Store {
    /// Writes version entries of a loaded dump at exactly `epoch`, NOT listed in `pending`
    /// (they must survive the standby discarding abandoned agent epochs). Each item is
    /// `(disk, chunk, version)`: `Some(v)` puts the entry, `None` deletes any entry of that
    /// chunk at `epoch` (a reload whose chunk now equals the base).
    ///
    /// Every chunk written with [`Store::put_chunk_bulk`] before the call is made durable
    /// first (the chunks column family is flushed if needed), so that no entry written here
    /// can outlive, after a crash, a chunk it names; then the entries go in one unsynced
    /// batch (durable with the next synced write or [`Store::flush`]).
    ///
    /// Refused with [`StoreError::EpochNotOpen`] when `epoch` is not newer than the pair's
    /// newest committed point (checked under the record lock, so no commit slips in between).
    pub fn write_dump_versions(
        &self,
        pair_no: u32,
        epoch: u64,
        items: &[(u32, u64, Option<ChunkVersion>)],
    ) -> Result<(), StoreError> {
        let _records = self.lock_records();
        self.check_dump_epoch(pair_no, epoch)?;
        if items.is_empty() {
            return Ok(());
        }
        self.make_bulk_durable()?;
        let mut batch = WriteBatch::default();
        for &(disk, chunk, v) in items {
            let vk = VersionKey { pair_no, disk, chunk, epoch };
            // A replaced entry's chunk becomes a reclaim candidate.
            let old = self.get_version(&vk)?;
            if old.is_some() && old != v {
                self.delete_version(&mut batch, &vk, old);
            }
            if let Some(v) = v {
                self.put_version(&mut batch, pair_no, disk, chunk, epoch, v);
            }
        }
        let _gate = self.gate_shared();
        self.check_named_chunks(items.iter().filter_map(|(_, _, v)| v.as_ref()))?;
        self.write_unsynced(batch)
    }

    /// Deletes every version entry of `disk` of the pair written at exactly `epoch` (what an
    /// interrupted or unwanted dump load left there) and returns how many went. One scan of the
    /// disk's entries; synced. Refused with [`StoreError::EpochNotOpen`] when `epoch` is not
    /// newer than the pair's newest committed point: committed data never changes.
    pub fn discard_dump_versions(&self, pair_no: u32, disk: u32, epoch: u64) -> Result<u64, StoreError> {
        let _records = self.lock_records();
        self.check_dump_epoch(pair_no, epoch)?;
        let (mut total, mut batch) = (0u64, WriteBatch::default());
        for entry in self.scan_versions(Scope::Disk(pair_no, disk)) {
            let (vk, v) = entry?;
            if vk.epoch == epoch {
                self.delete_version(&mut batch, &vk, Some(v));
                total += 1;
                if batch.len() >= 4 * DISCARD_BATCH {
                    self.write_synced(std::mem::take(&mut batch))?;
                }
            }
        }
        self.write_synced(batch)?;
        if total > 0 {
            tracing::info!(pair_no, disk, epoch, entries = total, "discarded version entries of a dump load");
        }
        Ok(total)
    }

    /// [`StoreError::EpochNotOpen`] unless `epoch` is newer than the pair's newest point.
    /// The caller holds the record lock.
    fn check_dump_epoch(&self, pair_no: u32, epoch: u64) -> Result<(), StoreError> {
        match self.latest_committed_epoch(pair_no)? {
            Some(committed) if epoch <= committed => Err(StoreError::EpochNotOpen { pair_no, epoch, committed }),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::test_support::{open_seeded, point, record};
    use crate::{ChunkVersion, PairId, Store, StoreError, StoredChunk};

    fn data(b: u8) -> ChunkVersion {
        ChunkVersion::Data([b; 32])
    }

    fn commit(s: &Store, pair_no: u32, epoch: u64) {
        let id = PairId::new("p").unwrap();
        s.commit_point(pair_no, &point("p", epoch), &id, &record("p", epoch)).unwrap();
    }

    #[test]
    fn dump_entries_are_visible_from_their_epoch_on() {
        let (_dir, s) = open_seeded();
        s.write_dump_versions(1, 5, &[(0, 0, Some(data(1))), (0, 1, Some(ChunkVersion::Zero)), (1, 0, Some(data(2)))])
            .unwrap();
        assert_eq!(s.versions_at(1, 0, 4, 0, 3).unwrap(), vec![None, None, None], "invisible at D-1");
        assert_eq!(s.versions_at(1, 0, 5, 0, 3).unwrap(), vec![Some(data(1)), Some(ChunkVersion::Zero), None]);
        assert_eq!(s.versions_at(1, 0, 9, 0, 2).unwrap(), vec![Some(data(1)), Some(ChunkVersion::Zero)]);
        assert_eq!(s.version_at(1, 1, 0, 5).unwrap(), Some((5, data(2))));
        assert_eq!(s.version_at(2, 0, 0, 5).unwrap(), None, "other pair");
    }

    #[test]
    fn dump_entries_survive_discard_pending_and_commit() {
        let (_dir, s) = open_seeded();
        s.write_dump_versions(1, 5, &[(0, 0, Some(data(1)))]).unwrap();
        // An abandoned agent epoch next to the dump goes; the dump stays.
        s.write_versions(1, 6, &[(0, 1, data(3))]).unwrap();
        assert_eq!(s.discard_pending(1).unwrap(), 1);
        assert_eq!(s.version_at(1, 0, 0, 9).unwrap(), Some((5, data(1))));
        assert_eq!(s.version_at(1, 0, 1, 9).unwrap(), None);
        commit(&s, 1, 5);
        assert_eq!(s.version_at(1, 0, 0, 5).unwrap(), Some((5, data(1))));
    }

    #[test]
    fn none_deletes_the_entry_at_the_dump_epoch_only() {
        let (_dir, s) = open_seeded();
        s.write_dump_versions(1, 2, &[(0, 0, Some(data(1))), (0, 1, Some(data(1)))]).unwrap();
        commit(&s, 1, 2);
        s.write_dump_versions(1, 5, &[(0, 0, Some(data(2))), (0, 1, Some(data(2)))]).unwrap();
        // Reload: chunk 1 now equals the base again.
        s.write_dump_versions(1, 5, &[(0, 0, Some(data(3))), (0, 1, None), (0, 7, None)]).unwrap();
        assert_eq!(s.version_at(1, 0, 0, 5).unwrap(), Some((5, data(3))));
        assert_eq!(s.version_at(1, 0, 1, 5).unwrap(), Some((2, data(1))), "base entry untouched");
        assert_eq!(s.version_at(1, 0, 7, 5).unwrap(), None);
    }

    #[test]
    fn dump_refused_at_or_below_the_committed_point() {
        let (_dir, s) = open_seeded();
        commit(&s, 1, 7);
        for epoch in [3, 7] {
            let e = s.write_dump_versions(1, epoch, &[(0, 0, Some(data(1)))]).unwrap_err();
            assert!(matches!(e, StoreError::EpochNotOpen { pair_no: 1, committed: 7, .. }), "{e}");
            let e = s.write_dump_versions(1, epoch, &[]).unwrap_err();
            assert!(matches!(e, StoreError::EpochNotOpen { .. }), "{e}");
            let e = s.discard_dump_versions(1, 0, epoch).unwrap_err();
            assert!(matches!(e, StoreError::EpochNotOpen { .. }), "{e}");
        }
        assert_eq!(s.version_at(1, 0, 0, 9).unwrap(), None);
        s.write_dump_versions(1, 8, &[(0, 0, Some(data(1)))]).unwrap();
        s.write_dump_versions(2, 3, &[(0, 0, Some(data(1)))]).unwrap();
    }

    #[test]
    fn dump_entries_make_bulk_chunks_durable_first() {
        let (_dir, s) = open_seeded();
        let c = vec![9u8; 4096];
        let h = *blake3::hash(&c).as_bytes();
        s.put_chunk_bulk(&h, StoredChunk { compressed: false, raw_len: 4096, payload: &c }).unwrap();
        assert!(s.inner_bulk_pending());
        s.write_dump_versions(1, 5, &[(0, 0, Some(ChunkVersion::Data(h)))]).unwrap();
        assert!(!s.inner_bulk_pending());
        assert_eq!(s.read_chunk(&h).unwrap(), c);
    }

    #[test]
    fn discard_dump_versions_removes_one_epoch_of_one_disk() {
        let (_dir, s) = open_seeded();
        s.write_dump_versions(1, 2, &[(0, 0, Some(data(1)))]).unwrap();
        commit(&s, 1, 2);
        let items: Vec<_> = (0..5000u64).map(|c| (0, c, Some(data(2)))).collect();
        s.write_dump_versions(1, 5, &items).unwrap();
        s.write_dump_versions(1, 5, &[(1, 0, Some(data(2)))]).unwrap();
        s.write_dump_versions(2, 5, &[(0, 0, Some(data(2)))]).unwrap();
        assert_eq!(s.discard_dump_versions(1, 0, 5).unwrap(), 5000);
        assert_eq!(s.version_at(1, 0, 0, 5).unwrap(), Some((2, data(1))), "committed entry kept");
        assert_eq!(s.version_at(1, 0, 1, 5).unwrap(), None);
        assert_eq!(s.version_at(1, 1, 0, 5).unwrap(), Some((5, data(2))), "other disk kept");
        assert_eq!(s.version_at(2, 0, 0, 5).unwrap(), Some((5, data(2))), "other pair kept");
        assert_eq!(s.discard_dump_versions(1, 0, 5).unwrap(), 0);
    }
}
